from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Query
from pydantic import AwareDatetime, BaseModel, Field, HttpUrl, ValidationError

from studio_common.errors import install_problem_handlers
from studio_common.schemas import RequestModel, StrictModel


class Lax(BaseModel):
    count: int


class Part(RequestModel):
    number: Annotated[int, Field(ge=1)]


class Body(RequestModel):
    flag: bool | None = None
    count: int = Field(default=1, ge=0)
    ratio: float = 0.0
    numbers: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    parts: list[Part] | None = None
    lax: Lax | None = None
    id: uuid.UUID | None = None
    at: AwareDatetime | None = None
    url: HttpUrl | None = None
    display_name: str | None = None


LAX_VALUES = [
    ("flag", "yes"),
    ("flag", "true"),
    ("flag", 1),
    ("flag", 0),
    ("count", "1000"),
    ("count", True),
    ("count", 1.0),
    ("ratio", "1.5"),
    ("ratio", True),
    ("numbers", ["1"]),
    ("numbers", [True]),
    ("parts", [{"number": "1"}]),
]


@pytest.mark.parametrize(("field", "value"), LAX_VALUES, ids=lambda v: repr(v))
def test_lax_scalars_are_refused_from_python_and_json(field, value):
    with pytest.raises(ValidationError):
        Body.model_validate({field: value})
    with pytest.raises(ValidationError):
        Body.model_validate_json(json.dumps({field: value}))


def test_json_types_and_strings_of_other_kinds_still_pass():
    body = Body.model_validate(
        {
            "flag": False,
            "count": 3,
            "ratio": 2,  # an integer where a number is asked for
            "numbers": [1, 2],
            "parts": [{"number": 4}],
            "id": "5b8d3c1e-0e43-4c8a-9d4c-1f9e0f1f2a3b",
            "at": "2026-01-01T00:00:00Z",
            "url": "https://example.com/a.png",
            "displayName": "x",
        }
    )
    assert body.flag is False
    assert body.count == 3
    assert body.ratio == 2.0
    assert body.parts == [Part(number=4)]
    assert isinstance(body.id, uuid.UUID)
    assert isinstance(body.at, datetime)
    assert Body.model_validate({"display_name": "by name"}).display_name == "by name"
    with pytest.raises(ValidationError):
        Body.model_validate({"unknown": 1})


def test_a_lax_model_nested_in_a_strict_one_stays_lax():
    assert Body.model_validate({"lax": {"count": "3"}}).lax == Lax(count=3)
    assert Lax.model_validate({"count": "3"}).count == 3


def test_strictness_without_the_wire_conventions():
    class Plain(StrictModel):
        enabled: bool

    with pytest.raises(ValidationError):
        Plain.model_validate({"enabled": "on"})
    assert Plain.model_validate({"enabled": True}).enabled is True


async def test_a_request_body_is_strict_and_query_parameters_still_parse():
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/things")
    async def create(body: Body, limit: Annotated[int, Query()] = 5) -> dict[str, object]:
        return {"flag": body.flag, "count": body.count, "limit": limit}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        ok = await client.post("/things?limit=7", json={"flag": True, "count": 2})
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"flag": True, "count": 2, "limit": 7}
        for field, value in (("flag", "yes"), ("count", "1000"), ("count", True)):
            r = await client.post("/things", json={field: value})
            assert r.status_code == 422, (field, value, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert [e["pointer"] for e in r.json()["errors"]] == [f"body.{field}"]


def test_a_field_named_type_is_a_field_like_any_other():
    class Typed(RequestModel):
        type: str
        count: int

    assert Typed.model_validate({"type": "series", "count": 1}).type == "series"
    with pytest.raises(ValidationError):
        Typed.model_validate({"type": "series", "count": "1"})
