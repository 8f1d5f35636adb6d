"""Opening and ending detection on a season generated with ffmpeg.

Every episode is AAC audio (a re-encode of each block at its own offset): a
cold open of varying length, the shared opening, content of its own, the shared
ending and a preview of its own. One episode has no opening. The episodes are
shortened (10 minutes, 60 s openings and endings) so the test runs in
seconds; the method does not depend on the length.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from studio_common.events import Envelope, EpisodeDeletedV1
from studio_common.testing.jetstream import wait_until
from studio_transcoder.media.detection import EpisodePrint, Marker, detect_season
from studio_transcoder.media.fingerprint import Fingerprint, fingerprint_file, pack, unpack

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seasons

DURATION = 480.0
OPENING = 60.0
ENDING = 60.0
TOLERANCE = 1.0
RATE = 5512
FFMPEG = ("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y")


@dataclass
class Episode:
    path: Path
    opening: tuple[float, float] | None
    ending: tuple[float, float]


def _melody(block: int, seconds: float) -> str:
    """A tune of 0.2 s notes of its own for every block number (cheap to make, tonal
    like music: chromaprint summarises pitch classes, and noise all looks alike)."""
    a, b = 3 * block + 1, block + 1
    n = "floor(t*5)"
    # Modulo a large prime first: the tune does not repeat within a block.
    pitch = f"mod(mod({n}*{a}+{n}*{n}*{b},997),29)"
    return f"aevalsrc='0.5*sin(2*PI*t*(180+50*{pitch}))':s={RATE}:d={seconds:.3f}"


def _silence(seconds: float) -> str:
    return f"anullsrc=r={RATE}:cl=mono:d={seconds:.3f}"


def make_episode(
    folder: Path, n: int, cold_open: float, preview: float, with_opening: bool = True
) -> Episode:
    quarter = DURATION / 4
    own = 10 + 4 * n  # this episode's blocks; 0 and 1 are the opening and the ending
    blocks: list[str] = []
    if cold_open > 0:
        blocks.append(_melody(own, cold_open))
    head = cold_open + (OPENING if with_opening else 0)
    if with_opening:
        blocks.append(_melody(0, OPENING))
    blocks.append(_melody(own + 1, quarter + 5 - head))
    ending_start = DURATION - preview - ENDING
    tail_from = DURATION - quarter - 5
    blocks.append(_silence(tail_from - (quarter + 5)))
    blocks.append(_melody(own + 2, ending_start - tail_from))
    blocks.append(_melody(1, ENDING))
    if preview > 0:
        blocks.append(_melody(own + 3, preview))
    inputs = [arg for b in blocks for arg in ("-f", "lavfi", "-i", b)]
    graph = "".join(f"[{i}]" for i in range(len(blocks))) + f"concat=n={len(blocks)}:v=0:a=1"
    path = folder / f"ep{n}.m4a"
    subprocess.run(
        [*FFMPEG, *inputs, "-filter_complex", graph, "-c:a", "aac", "-b:a", "32k", str(path)],
        check=True,
    )
    return Episode(
        path=path,
        opening=(cold_open, cold_open + OPENING) if with_opening else None,
        ending=(ending_start, ending_start + ENDING),
    )


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Episode, Fingerprint]]:
    folder = tmp_path_factory.mktemp("season")
    shapes = [(0.0, 10.0, True), (22.5, 0.0, True), (41.0, 17.3, True), (50.3, 5.0, True)]
    shapes.append((30.0, 12.0, False))
    episodes = [make_episode(folder, n, c, p, o) for n, (c, p, o) in enumerate(shapes)]
    return [(e, fingerprint_file("ffmpeg", e.path, DURATION)) for e in episodes]


def _detect(
    season: list[tuple[Episode, Fingerprint]],
) -> dict[uuid.UUID, tuple[Episode, list[Marker]]]:
    prints = [(uuid.uuid4(), e, fp) for e, fp in season]
    found = detect_season([EpisodePrint(i, fp) for i, _, fp in prints])
    return {i: (e, found[i]) for i, e, _ in prints}


def test_fingerprints_cover_the_first_and_last_quarter(
    season: list[tuple[Episode, Fingerprint]],
) -> None:
    _, fp = season[0]
    assert fp.tail_start == pytest.approx(DURATION * 0.75)
    # One item every 0.124 s over 120 s, less the classifier's reach at the end.
    assert 900 < len(fp.head) < 970
    assert 900 < len(fp.tail) < 970
    assert unpack(pack(fp.head)) == fp.head


def test_openings_and_endings_are_found_within_a_second(
    season: list[tuple[Episode, Fingerprint]],
) -> None:
    boundaries = misses = 0
    for episode, markers in _detect(season).values():
        by_kind = {m.kind: m for m in markers}
        truth = {"opening": episode.opening, "ending": episode.ending}
        for kind, expected in truth.items():
            if expected is None:
                assert kind not in by_kind, f"{episode.path.name}: a {kind} where there is none"
                continue
            assert kind in by_kind, f"{episode.path.name}: no {kind} found"
            got = by_kind[kind]
            for value, want in ((got.start, expected[0]), (got.end, expected[1])):
                boundaries += 1
                misses += abs(value - want) > TOLERANCE
            print(episode.path.name, kind, expected, (got.start, got.end))
    assert misses <= boundaries * 0.05, f"{misses} of {boundaries} boundaries off by > 1 s"


def test_a_season_of_one_episode_gets_no_markers(
    season: list[tuple[Episode, Fingerprint]],
) -> None:
    assert [m for _, m in _detect(season[:1]).values()] == [[]]


def test_episodes_with_nothing_in_common_get_no_markers(
    tmp_path: Path,
) -> None:
    a = tmp_path / "a.m4a"
    b = tmp_path / "b.m4a"
    for path, seed in ((a, 5), (b, 6)):
        subprocess.run(
            [*FFMPEG, "-f", "lavfi", "-i", _melody(seed, 200), "-c:a", "aac", str(path)],
            check=True,
        )
    prints = [EpisodePrint(uuid.uuid4(), fingerprint_file("ffmpeg", p, 200)) for p in (a, b)]
    assert all(m == [] for m in detect_season(prints).values())


# --- through the worker ------------------------------------------------------

# Long enough that the opening sits well inside the first quarter (30 s).
SHORT = 120.0
SHORT_OPENING = 18.0
SHORT_ENDING = 18.0


def make_video(folder: Path, n: int, cold_open: float, with_opening: bool = True) -> Path:
    """A tiny video whose audio is a cold open, the opening, its own part and the ending."""
    layout = seasons.Layout(
        duration=SHORT,
        cold_open=cold_open,
        opening=SHORT_OPENING if with_opening else None,
        ending=SHORT_ENDING,
    )
    return seasons.make_episode(folder / f"video{n}.mp4", layout, 40 + 4 * n, video=True).path


async def test_a_transcoded_season_gets_markers_through_the_outbox(
    start_worker, jobs, db, tmp_path
):
    from sqlalchemy import select

    from studio_transcoder.models import EpisodeFingerprint

    # The markers come from the audio: segments, stills and tiles as shipped
    # (not the suite's 1 s ones), four times fewer objects to upload per job.
    await start_worker(
        segment_seconds=6.0,
        keyframe_seconds=2.0,
        still_interval_seconds=10.0,
        sprite_interval_seconds=10.0,
    )
    season_id, title_id = uuid.uuid4(), uuid.uuid4()
    cold_opens = [0.0, 1.5, 2.0]
    events = []
    for n, cold in enumerate(cold_opens):
        event = await jobs.submit(
            make_video(tmp_path, n, cold),
            season_id=season_id,
            title_id=title_id,
            episode_number=n + 1,
        )
        job = await jobs.wait_for(event.episode_id, "ready", "failed", within=120)
        assert job.status == "ready", job.error_reason
        events.append(event)

    # The first episode alone had nothing to compare with: an empty event, then
    # markers once a sibling arrived.
    first = await jobs.wait_events(
        "transcoder.episode.markers_detected", 2, episode_id=events[0].episode_id
    )
    assert first[0]["data"]["markers"] == []
    for event, cold in zip(events, cold_opens, strict=True):
        found = await jobs.events(
            "transcoder.episode.markers_detected", episode_id=event.episode_id
        )
        latest = {m["kind"]: m for m in found[-1]["data"]["markers"]}
        assert set(latest) == {"opening", "ending"}
        assert latest["opening"]["startSec"] == pytest.approx(cold, abs=TOLERANCE)
        assert latest["opening"]["endSec"] == pytest.approx(cold + SHORT_OPENING, abs=TOLERANCE)
        assert latest["ending"]["startSec"] == pytest.approx(SHORT - SHORT_ENDING, abs=TOLERANCE)
        assert latest["ending"]["endSec"] == pytest.approx(SHORT, abs=TOLERANCE)
        assert found[-1]["data"]["seasonId"] == str(season_id)

    async with db.transaction() as session:
        rows = (
            await session.scalars(
                select(EpisodeFingerprint).where(EpisodeFingerprint.season_id == season_id)
            )
        ).all()
    assert len(rows) == 3
    assert all(
        len(r.head) > 4 * 100 and r.tail_start_sec == pytest.approx(SHORT * 0.75) for r in rows
    )

    # Re-transcoding the last episode from a source without the opening detects
    # the season again: that episode keeps only its ending.
    again = events[-1]
    await jobs.submit(
        make_video(tmp_path, 9, 2.0, with_opening=False),
        episode_id=again.episode_id,
        season_id=season_id,
        title_id=title_id,
        episode_number=again.episode_number,
    )

    async def redetected() -> list[dict[str, Any]] | None:
        found = await jobs.events(
            "transcoder.episode.markers_detected", episode_id=again.episode_id
        )
        latest = found[-1]["data"]["markers"]
        return latest if [m["kind"] for m in latest] == ["ending"] else None

    await wait_until(redetected, within=120)


async def test_deleting_an_episode_detects_its_season_again(db, jobs, season):
    from studio_transcoder.subscribers import on_episode_deleted

    season_id = uuid.uuid4()
    uploaded = await _two_episodes(db, jobs, season, season_id)
    first, second = (e.episode_id for e in uploaded)
    assert await _markers_of(db, season_id) == {
        first: ["opening", "ending"],
        second: ["opening", "ending"],
    }

    deleted = EpisodeDeletedV1(episode_id=second, title_id=uploaded[1].title_id)
    async with db.transaction() as session:
        await on_episode_deleted(deleted, Envelope.wrap(deleted), session)
    # A season of one episode has no markers; the survivor is told so.
    assert await _markers_of(db, season_id) == {first: []}
    assert (await _announced(db, first))[-1] == []


async def test_a_failed_detection_leaves_the_rest_of_the_transaction_alone(
    db, jobs, season, monkeypatch
):
    from sqlalchemy import text

    from studio_transcoder import markers
    from studio_transcoder.models import EpisodeFingerprint

    def broken(prints):
        raise RuntimeError("detector broke")

    monkeypatch.setattr(markers, "detect_season", broken)
    event = jobs.uploaded_event("uploads/x/ep.mp4")
    async with db.transaction() as session:
        # Stands for the job's completion written earlier in the same transaction.
        await session.execute(text("CREATE TEMP TABLE earlier (x int) ON COMMIT DROP"))
        await session.execute(text("INSERT INTO earlier VALUES (1)"))
        await markers.record_and_detect(session, event, season[0][1])
        assert await session.scalar(text("SELECT x FROM earlier")) == 1
    async with db.transaction() as session:
        assert await session.get(EpisodeFingerprint, event.episode_id) is None


async def _two_episodes(db, jobs, season, season_id: uuid.UUID) -> list[Any]:
    """Episodes 1 and 2 of a season, transcoded with the first two fingerprints of
    ``season`` (an opening and an ending in common)."""
    from studio_transcoder.markers import record_and_detect

    uploaded = [
        jobs.uploaded_event("uploads/x/ep.mp4", season_id=season_id, episode_number=n + 1)
        for n in range(2)
    ]
    for event, (_, fp) in zip(uploaded, season[:2], strict=True):
        async with db.transaction() as session:
            await record_and_detect(session, event, fp)
    return uploaded


async def _markers_of(db, season_id: uuid.UUID) -> dict[uuid.UUID, list[str]]:
    from sqlalchemy import select

    from studio_transcoder.models import EpisodeFingerprint

    async with db.transaction() as session:
        rows = (
            await session.scalars(
                select(EpisodeFingerprint)
                .where(EpisodeFingerprint.season_id == season_id)
                .execution_options(populate_existing=True)
            )
        ).all()
        return {r.episode_id: [m["kind"] for m in r.markers] for r in rows}


async def _announced(db, episode_id: uuid.UUID) -> list[list[str]]:
    """The kinds in each markers_detected event of an episode in the outbox, oldest first."""
    from sqlalchemy import select

    from studio_transcoder.models import messaging

    async with db.transaction() as session:
        sent = (
            await session.execute(
                select(messaging.outbox.c.envelope)
                .where(messaging.outbox.c.event_type == "transcoder.episode.markers_detected")
                .order_by(messaging.outbox.c.created_at)
            )
        ).all()
    return [
        [m["kind"] for m in e["data"]["markers"]]
        for (e,) in sent
        if e["data"]["episodeId"] == str(episode_id)
    ]


async def test_re_transcoding_an_episode_detects_its_season_again(db, jobs, season):
    from studio_transcoder.markers import record_and_detect

    season_id = uuid.uuid4()
    first, second = await _two_episodes(db, jobs, season, season_id)
    both = ["opening", "ending"]
    assert await _markers_of(db, season_id) == {first.episode_id: both, second.episode_id: both}

    # The second episode comes back from a new source without the opening: the
    # first one no longer shares an opening with anyone, and is told so.
    async with db.transaction() as session:
        await record_and_detect(session, second, season[4][1])
    assert await _markers_of(db, season_id) == {
        first.episode_id: ["ending"],
        second.episode_id: ["ending"],
    }
    assert (await _announced(db, first.episode_id))[-1] == ["ending"]
    assert (await _announced(db, second.episode_id))[-1] == ["ending"]

    # Again, and this time the job has no fingerprint (a source without audio):
    # the old one goes, the episode has no markers and its sibling is alone.
    async with db.transaction() as session:
        await record_and_detect(session, second, None)
    assert await _markers_of(db, season_id) == {first.episode_id: []}
    assert (await _announced(db, second.episode_id))[-1] == []
    assert (await _announced(db, first.episode_id))[-1] == []


async def test_an_episode_moved_to_another_season_leaves_the_old_one(db, jobs, season):
    from studio_transcoder.markers import record_and_detect

    old, new = uuid.uuid4(), uuid.uuid4()
    stays, moves = await _two_episodes(db, jobs, season, old)
    moved = moves.model_copy(update={"season_id": new})
    async with db.transaction() as session:
        await record_and_detect(session, moved, season[1][1])
    assert await _markers_of(db, old) == {stays.episode_id: []}
    assert await _markers_of(db, new) == {moves.episode_id: []}
    assert (await _announced(db, stays.episode_id))[-1] == []
