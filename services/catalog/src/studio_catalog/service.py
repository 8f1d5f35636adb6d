"""Catalog use cases. Each runs in the caller's transaction and writes its
events to the outbox in that same transaction."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from studio_catalog.models import Episode, Season, Title, messaging
from studio_catalog.names import lexicon_words, search_document
from studio_catalog.repository import (
    EpisodeRepository,
    SeasonRepository,
    TitleRepository,
)
from studio_catalog.schemas import (
    EpisodeIn,
    EpisodePatch,
    MarkersIn,
    SeasonIn,
    TitleIn,
    TitlePatch,
)
from studio_catalog.sources import check_source
from studio_common.auth import Principal
from studio_common.errors import NotFound, ProblemError
from studio_common.events import (
    EpisodeDeletedV1,
    EpisodeMarker,
    EpisodeMarkersChangedV1,
    EpisodeUploadedV1,
    EpisodeVisibilityChangedV1,
    TitleCreatedV1,
    TitleDeletedV1,
    TitleName,
    TitleUpdatedV1,
)
from studio_common.outbox import enqueue


class UnknownReference(ProblemError):
    status, slug, title = 422, "unknown-reference", "A referenced resource does not exist"


class MarkersInvalid(ProblemError):
    status, slug, title = 422, "markers-invalid", "The markers do not fit the episode"


class DurationUnknown(ProblemError):
    status, slug, title = 409, "episode-duration-unknown", "The episode has no duration yet"


def check_markers(data: MarkersIn, duration: float | None) -> list[dict[str, Any]]:
    """Inside the episode, start before end, one of each kind, no overlaps."""
    if data.markers and duration is None:
        raise DurationUnknown("Markers can be set once the episode is transcoded.")
    ordered = sorted(data.markers, key=lambda m: m.start_sec)
    kinds = [m.kind for m in ordered]
    if len(set(kinds)) != len(kinds):
        raise MarkersInvalid("An episode has at most one opening and one ending.")
    for m in ordered:
        if m.start_sec >= m.end_sec:
            raise MarkersInvalid(f"The {m.kind} must start before it ends.")
        if duration is not None and m.end_sec > duration:
            raise MarkersInvalid(f"The {m.kind} ends after the episode ({duration:.2f} s).")
    for earlier, later in itertools.pairwise(ordered):
        if later.start_sec < earlier.end_sec:
            raise MarkersInvalid(f"The {earlier.kind} and the {later.kind} overlap.")
    return [
        {"kind": m.kind, "startSec": m.start_sec, "endSec": m.end_sec, "source": "editor"}
        for m in ordered
    ]


async def markers_changed(
    session: AsyncSession, episode_id: uuid.UUID, markers: list[dict[str, Any]], *, edited: bool
) -> None:
    """Tells other services (playback: "watched" from the ending) what the markers are now."""
    await enqueue(
        session,
        messaging,
        EpisodeMarkersChangedV1(
            episode_id=episode_id,
            markers=[EpisodeMarker.model_validate(m) for m in markers],
            edited=edited,
        ),
    )


def _title_values(data: TitleIn | TitlePatch, *, exclude_unset: bool) -> dict[str, Any]:
    values = data.model_dump(exclude_unset=exclude_unset)
    for key in ("poster_url", "banner_url"):
        if values.get(key) is not None:
            values[key] = str(values[key])
    return values


def _index_names(title: Title) -> None:
    """Rebuild the title's search document from its name and names (same transaction)."""
    title.search_names, title.name_keys, title.cjk_grams = search_document(title.name, title.names)


def _event_names(title: Title) -> list[TitleName]:
    return [TitleName(**n) for n in title.names]


class CatalogService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.titles = TitleRepository(session)
        self.seasons = SeasonRepository(session)
        self.episodes = EpisodeRepository(session)

    # --- titles -------------------------------------------------------------

    async def title_by_slug(self, slug: str) -> Title:
        title = await self.titles.get_by_slug_with_episodes(slug)
        if title is None:
            raise NotFound(f"No title with slug '{slug}'.")
        return title

    async def _announce(
        self, title: Title, event: type[TitleCreatedV1] | type[TitleUpdatedV1]
    ) -> Title:
        """A saved title's words go into the search lexicon and its state into an event."""
        await self.titles.index_words(lexicon_words(title.name, title.names))
        await enqueue(
            self.session,
            messaging,
            event(title_id=title.id, slug=title.slug, name=title.name, names=_event_names(title)),
        )
        return title

    async def create_title(self, data: TitleIn) -> Title:
        title = Title(**_title_values(data, exclude_unset=False))
        _index_names(title)
        title = await self.titles.add(title)
        return await self._announce(title, TitleCreatedV1)

    async def update_title(
        self, title_id: uuid.UUID, data: TitleIn | TitlePatch, *, partial: bool
    ) -> Title:
        title = await self.titles.get(title_id)
        if title is None:
            raise NotFound(f"No title with id {title_id}.")
        values = _title_values(data, exclude_unset=partial)
        if values.get("names", ()) is None:
            del values["names"]  # PATCH names: null leaves them as they are
        for key, value in values.items():
            setattr(title, key, value)
        _index_names(title)
        title = await self.titles.save(title)
        return await self._announce(title, TitleUpdatedV1)

    async def delete_title(self, title_id: uuid.UUID) -> None:
        title = await self.titles.get(title_id)
        if title is None:
            raise NotFound(f"No title with id {title_id}.")
        episode_ids = await self.titles.delete(title_id)
        await enqueue(
            self.session,
            messaging,
            TitleDeletedV1(title_id=title_id, slug=title.slug, episode_ids=episode_ids),
        )

    # --- seasons ------------------------------------------------------------

    async def create_season(self, data: SeasonIn) -> Season:
        if await self.titles.get(data.title_id) is None:
            raise UnknownReference(f"No title with id {data.title_id}.")
        season = Season(title_id=data.title_id, number=data.number, name=data.name)
        season = await self.seasons.add(season)
        return season

    async def delete_season(self, season_id: uuid.UUID) -> None:
        if await self.seasons.get(season_id) is None:
            raise NotFound(f"No season with id {season_id}.")
        for episode_id, title_id in await self.seasons.delete(season_id):
            await enqueue(
                self.session, messaging, EpisodeDeletedV1(episode_id=episode_id, title_id=title_id)
            )

    # --- episodes -----------------------------------------------------------

    async def episode(self, episode_id: uuid.UUID) -> Episode:
        episode = await self.episodes.get(episode_id)
        if episode is None:
            raise NotFound(f"No episode with id {episode_id}.")
        return episode

    async def next_episode(self, episode: Episode) -> Episode | None:
        """What "Next episode" leads to: the following episode, when it can be played."""
        following = await self.episodes.next_after(episode)
        return following if following is not None and following.transcode_playable else None

    async def create_episode(
        self, data: EpisodeIn, principal: Principal, *, source_wait: float = 0.0
    ) -> Episode:
        """A queued episode of a source media verified and the caller may use (any re-source
        path must go through the same check)."""
        season = await self.seasons.get(data.season_id)
        if season is None:
            raise UnknownReference(f"No season with id {data.season_id}.")
        source = await check_source(
            self.session, principal, data.source_key, data.subtitle_upload_ids, wait=source_wait
        )
        episode = await self.episodes.add(
            Episode(
                season_id=season.id,
                title_id=season.title_id,
                number=data.number,
                name=data.name,
                synopsis=data.synopsis,
                source_key=data.source_key,
                transcode_state="queued",
                public=data.public,
            )
        )
        await self._visibility_changed(episode)
        await enqueue(
            self.session,
            messaging,
            EpisodeUploadedV1(
                episode_id=episode.id,
                title_id=season.title_id,
                title_slug=season.title.slug,
                season_id=season.id,
                season_number=season.number,
                episode_number=episode.number,
                source_key=source.key,
                source_upload_id=source.upload_id,
                subtitle_keys=source.subtitle_keys,
            ),
        )
        return episode

    async def update_episode(self, episode_id: uuid.UUID, data: EpisodePatch) -> Episode:
        episode = await self.episode(episode_id)
        was_public = episode.public
        for key, value in data.model_dump(exclude_unset=True).items():
            setattr(episode, key, value)
        episode = await self.episodes.save(episode)
        if episode.public != was_public:
            await self._visibility_changed(episode)
        return episode

    async def set_markers(self, episode_id: uuid.UUID, data: MarkersIn) -> Episode:
        """An editor's markers replace the episode's; detection leaves them alone from now on."""
        episode = await self.episodes.get(episode_id, for_update=True)
        if episode is None:
            raise NotFound(f"No episode with id {episode_id}.")
        episode.markers = check_markers(data, episode.duration_sec)
        episode.markers_edited = True
        episode = await self.episodes.save(episode)
        await markers_changed(self.session, episode.id, episode.markers, edited=True)
        return episode

    async def _visibility_changed(self, episode: Episode) -> None:
        await enqueue(
            self.session,
            messaging,
            EpisodeVisibilityChangedV1(
                episode_id=episode.id, title_id=episode.title_id, public=episode.public
            ),
        )

    async def delete_episode(self, episode_id: uuid.UUID) -> None:
        episode = await self.episode(episode_id)
        await self.episodes.delete(episode_id)
        await enqueue(
            self.session,
            messaging,
            EpisodeDeletedV1(episode_id=episode_id, title_id=episode.title_id),
        )
