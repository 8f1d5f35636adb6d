"""One id for a user: the `id` that identity's /api/me returns names the user in
playback's routes too, learnt from identity.user.created (never from identity's
tables); an unknown id is a 404, never an empty list."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from studio_common.events import Envelope, TitleCreatedV1
from studio_common.migrations import upgrade
from studio_common.testing.jetstream import publish_envelope, wait_until
from studio_common.testing.plugin import serve_app
from studio_identity.config import IdentitySettings
from studio_identity.main import create_app as create_identity
from studio_playback.config import PlaybackSettings
from studio_playback.main import create_app as create_playback

ROOT = Path(__file__).resolve().parents[2]


async def test_the_id_from_api_me_names_the_user_in_playback(
    own_settings: dict[str, Any],
    auth: Any,
    tmp_path: Path,
) -> None:
    settings = own_settings
    for name in ("identity", "playback"):
        upgrade(ROOT / "services" / name, settings["database_url"])
    identity_app = create_identity(
        IdentitySettings(**settings, dev_key_path=tmp_path / "jwt-key.pem")
    )
    async with (
        serve_app(identity_app) as identity,
        serve_app(create_playback(PlaybackSettings(**settings))) as playback,
    ):
        owner = auth.headers("viewer", sub=f"user_owner_{uuid.uuid4().hex[:8]}")
        other = auth.headers("viewer", sub=f"user_other_{uuid.uuid4().hex[:8]}")
        admin = auth.headers("admin", sub=f"user_admin_{uuid.uuid4().hex[:8]}")
        user_id = (await identity.get("/api/me", headers=owner)).json()["id"]
        await identity.get("/api/me", headers=other)
        path = f"/api/users/{user_id}/watchlist"

        async def known() -> bool:
            return (await playback.get(path, headers=owner)).status_code == 200

        await wait_until(known, within=10)

        title_id = uuid.uuid4()
        envelope = Envelope.wrap(TitleCreatedV1(title_id=title_id, slug="one-id", name="One Id"))
        await publish_envelope(
            settings["nats_url"], settings["event_subject_root"], settings["event_stream"], envelope
        )

        async def favorited() -> bool:
            r = await playback.post(
                "/api/favorites", json={"titleId": str(title_id)}, headers=owner
            )
            return r.status_code == 200

        await wait_until(favorited, within=10)

        for headers in (owner, admin):
            r = await playback.get(path, headers=headers)
            assert r.status_code == 200, r.text
            assert [i["titleId"] for i in r.json()["items"]] == [str(title_id)]
        r = await playback.get(path, headers=other)
        assert r.status_code == 403
        r = await playback.get(f"/api/users/{uuid.uuid4()}/watchlist", headers=admin)
        assert r.status_code == 404
        assert r.json()["type"] == "urn:studio:problem:not-found"
