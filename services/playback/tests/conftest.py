from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from studio_common.events import (
    Envelope,
    EpisodeUploadedV1,
    EventPayload,
    TitleCreatedV1,
    TranscodeCompletedV1,
    UserCreatedV1,
)
from studio_common.testing.issuer import TestIssuer
from studio_common.testing.jetstream import publish_envelope, wait_until
from studio_common.testing.plugin import EventNamespace
from studio_common.testing.served import migrated_settings, served_app_fixtures
from studio_common.testing.suite import own_event_namespace, own_service_settings  # noqa: F401
from studio_playback.config import PlaybackSettings
from studio_playback.main import create_app

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def playback_settings(service_settings: dict[str, Any]) -> PlaybackSettings:
    return PlaybackSettings(
        **migrated_settings(SERVICE_DIR, service_settings), consumer_max_deliver=3, max_page_size=50
    )


playback_app, client = served_app_fixtures("playback_app", create_app, settings="playback_settings")


@pytest.fixture
def runtime(playback_app: Any) -> Any:
    return playback_app.state.runtime


async def fetch(runtime: Any, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with runtime.database.transaction() as s:
        return [dict(r) for r in (await s.execute(text(sql), params)).mappings().all()]


@pytest.fixture(autouse=True)
async def clean_playback(playback_app: Any) -> AsyncIterator[None]:
    yield
    async with playback_app.state.runtime.database.transaction() as s:
        await s.execute(
            text(
                "TRUNCATE playback.titles, playback.episodes, playback.favorites, "
                "playback.positions, playback.tombstones, playback.deleted_users"
            )
        )


class User:
    """A signed-in caller: a fresh subject and its bearer header."""

    def __init__(self, issuer: TestIssuer, role: str = "viewer") -> None:
        self.id = f"user_{uuid.uuid4().hex[:12]}"
        self.headers = {"Authorization": f"Bearer {issuer.mint(sub=self.id, role=role)}"}


@pytest.fixture
def users(test_issuer: TestIssuer) -> Any:
    def make(role: str = "viewer") -> User:
        return User(test_issuer, role)

    return make


async def publish(
    nats_url: str, ns: EventNamespace, payload: EventPayload, *, envelope: Envelope | None = None
) -> Envelope:
    """Put an event on the stream as the producing service's relay would."""
    env = envelope or Envelope.wrap(payload)
    return await publish_envelope(nats_url, ns.subject_root, ns.stream, env)


class Catalog:
    """Creates titles and episodes the way playback learns of them: events."""

    def __init__(self, runtime: Any, nats_url: str, ns: EventNamespace) -> None:
        self.runtime = runtime
        self.nats_url = nats_url
        self.ns = ns

    async def publish(self, payload: EventPayload, **kw: Any) -> Envelope:
        return await publish(self.nats_url, self.ns, payload, **kw)

    @staticmethod
    def uploaded(
        episode_id: uuid.UUID,
        title_id: uuid.UUID,
        slug: str = "x",
        *,
        season: int = 1,
        number: int = 1,
        source_key: str = "uploads/x.mp4",
    ) -> EpisodeUploadedV1:
        """catalog's ``episode.uploaded``: the episode as playback first learns of it."""
        return EpisodeUploadedV1(
            episode_id=episode_id,
            title_id=title_id,
            title_slug=slug,
            season_id=uuid.uuid4(),
            season_number=season,
            episode_number=number,
            source_key=source_key,
        )

    @staticmethod
    def completed(episode_id: uuid.UUID, duration: float) -> TranscodeCompletedV1:
        """The transcoder's ``transcode.completed``, which carries the episode's duration."""
        return TranscodeCompletedV1(
            episode_id=episode_id,
            job_id=uuid.uuid4(),
            hls_master_key="k",
            hls_master_url="u",
            duration_sec=duration,
        )

    async def announce(self, user: User) -> uuid.UUID:
        """identity's ``user.created`` for ``user``: its identity id, once playback knows it."""
        user_id = uuid.uuid4()
        await self.publish(UserCreatedV1(user_id=user_id, clerk_id=user.id))
        await wait_until(
            lambda: fetch(self.runtime, "SELECT 1 FROM playback.users WHERE id = :i", i=user_id)
        )
        return user_id

    async def title(self, name: str = "Some Show") -> uuid.UUID:
        title_id = uuid.uuid4()
        slug = f"show-{title_id.hex[:8]}"
        await self.publish(TitleCreatedV1(title_id=title_id, slug=slug, name=name))
        await wait_until(
            lambda: fetch(self.runtime, "SELECT 1 FROM playback.titles WHERE id = :i", i=title_id)
        )
        return title_id

    async def episode(
        self,
        title_id: uuid.UUID,
        season: int = 1,
        number: int = 1,
        duration: float | None = 1440.0,
    ) -> uuid.UUID:
        episode_id = uuid.uuid4()
        await self.publish(
            self.uploaded(
                episode_id,
                title_id,
                season=season,
                number=number,
                source_key=f"uploads/{episode_id}/source.mp4",
            )
        )

        async def known(with_duration: bool) -> bool:
            rows = await fetch(
                self.runtime,
                "SELECT title_id, duration_sec FROM playback.episodes WHERE id = :i",
                i=episode_id,
            )
            return (
                bool(rows)
                and rows[0]["title_id"] is not None
                and (not with_duration or rows[0]["duration_sec"] == duration)
            )

        # As in the system, the transcode completes after playback has the
        # upload: published back to back, the two consumers could take them in
        # either order, and a completion for an unknown episode is retried a
        # few times, then dead-lettered (seen on a loaded machine).
        await wait_until(lambda: known(False))
        if duration is not None:
            await self.publish(self.completed(episode_id, duration))
            await wait_until(lambda: known(True))
        return episode_id


@pytest.fixture
def catalog(runtime: Any, nats_url: str, event_namespace: EventNamespace) -> Catalog:
    return Catalog(runtime, nats_url, event_namespace)


@pytest.fixture
def sql(runtime: Any) -> Any:
    """``await sql("SELECT ...", name=value)`` → rows as dicts."""

    async def run(statement: str, **params: Any) -> list[dict[str, Any]]:
        return await fetch(runtime, statement, **params)

    return run
