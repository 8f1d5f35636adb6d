"""Sizes and part numbers are JSON integers: a string or a boolean is a 422, not a number."""

from __future__ import annotations

import uuid

import pytest

PROBLEM = "urn:studio:problem:"
LAX = ["1000", True, 1000.0, "1e3"]


def pointers(body: dict) -> dict[str, str]:
    return {e["pointer"]: e["code"] for e in body.get("errors", [])}


@pytest.mark.parametrize("path", ["/api/admin/presign", "/api/admin/uploads"])
@pytest.mark.parametrize("size", LAX, ids=repr)
async def test_a_size_is_a_json_integer(client, auth, path, size):
    # Only the size is looked at: the rest of the body may take any shape.
    r = await client.post(path, json={"size": size}, headers=auth.headers("editor"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == PROBLEM + "validation"
    assert pointers(body).get("body.size") == "int_type", body


@pytest.mark.parametrize("number", LAX, ids=repr)
async def test_a_part_number_is_a_json_integer(client, auth, number):
    url = f"/api/admin/uploads/{uuid.uuid4()}/parts"
    r = await client.post(url, json={"partNumbers": [number]}, headers=auth.headers("editor"))
    assert r.status_code == 422, r.text
    assert pointers(r.json()).get("body.partNumbers.0") == "int_type", r.text
