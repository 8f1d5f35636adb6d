"""A demotion in identity takes effect in another service within about a second
(ADR 7): the demoted admin's unexpired token is refused by catalog's editor
routes, a catalog started afterwards refuses it from its first request, and
the demoted admin cannot promote themselves back.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from studio_catalog.config import CatalogSettings
from studio_catalog.main import create_app as create_catalog
from studio_common.migrations import upgrade
from studio_common.testing.jetstream import wait_until
from studio_common.testing.plugin import serve_app
from studio_identity.config import IdentitySettings
from studio_identity.main import create_app as create_identity

ROOT = Path(__file__).resolve().parents[2]
# The design target is about a second; the bound leaves room for a loaded machine.
BOUND_SECONDS = 5.0


async def test_a_demotion_reaches_another_service_and_sticks(
    own_settings: dict[str, Any],
    auth: Any,
    tmp_path: Path,
) -> None:
    settings = own_settings
    for name in ("identity", "catalog"):
        upgrade(ROOT / "services" / name, settings["database_url"])
    identity_app = create_identity(
        IdentitySettings(**settings, dev_key_path=tmp_path / "jwt-key.pem")
    )
    editor_route = f"/api/admin/episodes/{uuid.uuid4()}"  # 404 for an editor, 403 below

    async with (
        serve_app(identity_app) as identity,
        serve_app(create_catalog(CatalogSettings(**settings))) as catalog,
    ):
        chief_headers = auth.headers("admin", sub=f"user_chief_{uuid.uuid4().hex[:8]}")
        assert (await identity.get("/api/me", headers=chief_headers)).status_code == 200
        demoted_sub = f"user_demoted_{uuid.uuid4().hex[:8]}"
        demoted_headers = auth.headers("admin", sub=demoted_sub)
        me = await identity.get("/api/me", headers=demoted_headers)
        assert me.json()["role"] == "admin"
        assert (await catalog.get(editor_route, headers=demoted_headers)).status_code == 404

        r = await identity.put(
            f"/api/admin/users/{me.json()['id']}/role",
            json={"role": "viewer"},
            headers=chief_headers,
        )
        assert r.status_code == 200, r.text
        answered = time.monotonic()

        async def refused() -> bool:
            resp = await catalog.get(editor_route, headers=demoted_headers)
            return resp.status_code == 403

        await wait_until(refused, within=BOUND_SECONDS, interval=0.05)
        took = time.monotonic() - answered
        assert took < BOUND_SECONDS
        forbidden = await catalog.get(editor_route, headers=demoted_headers)
        assert forbidden.json()["type"] == "urn:studio:problem:forbidden"

        # The demoted admin's still-valid token cannot undo it.
        again = await identity.put(
            f"/api/admin/users/{me.json()['id']}/role",
            json={"role": "admin"},
            headers=demoted_headers,
        )
        assert again.status_code == 403, again.text
        assert (await identity.get("/api/me", headers=demoted_headers)).json()["role"] == "viewer"

        # A service (re)started after the demotion knows it before its first request.
        async with serve_app(create_catalog(CatalogSettings(**settings))) as restarted:
            first = await restarted.get(editor_route, headers=demoted_headers)
            assert first.status_code == 403, first.text
            chief = await restarted.get(editor_route, headers=chief_headers)
            assert chief.status_code == 404
