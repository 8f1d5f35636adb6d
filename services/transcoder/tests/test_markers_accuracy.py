"""Detection accuracy at the issue's full size: 24-minute episodes, openings and
endings of 60-90 s, cold opens of 0-3 minutes, one episode per season without
an opening. Generated with ffmpeg (seasons.py): about 40 s of CPU, mostly the
AAC encodes of eleven 24-minute episodes; several minutes of wall time on a
loaded machine, hence the longer timeout.

Criteria: every detected boundary within ±1.0 s of the truth for at least 95 %
of the markers' boundaries, and no marker where there is none.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from studio_transcoder.media.detection import EpisodePrint, detect_season
from studio_transcoder.media.fingerprint import Fingerprint, fingerprint_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seasons import Episode, SeasonSpec, make_season

pytestmark = pytest.mark.timeout(900)

TOLERANCE = 1.0
SEASONS = [
    # Six episodes, a long opening, a mid-length ending.
    SeasonSpec("long-op", episodes=6, opening=89.5, ending=75.25, seed=1),
    # Five episodes, a short opening, a long ending.
    SeasonSpec("short-op", episodes=5, opening=61.0, ending=88.75, seed=2),
]


def score(
    season: list[tuple[Episode, Fingerprint]],
) -> tuple[int, int, list[str], list[str]]:
    """(boundaries, within tolerance, lines of detail, markers where there are none)."""
    ids = [uuid.uuid4() for _ in season]
    found = detect_season([EpisodePrint(i, fp) for i, (_, fp) in zip(ids, season, strict=True)])
    total = good = 0
    lines: list[str] = []
    phantom: list[str] = []
    for i, (episode, _) in zip(ids, season, strict=True):
        got = {m.kind: (m.start, m.end) for m in found[i]}
        for kind, truth in (("opening", episode.opening), ("ending", episode.ending)):
            if truth is None:
                if kind in got:
                    phantom.append(f"{episode.path.name}: {kind} {got[kind]} where there is none")
                continue
            mark = got.get(kind)
            for n, want in enumerate(truth):
                total += 1
                value = mark[n] if mark is not None else None
                ok = value is not None and abs(value - want) <= TOLERANCE
                good += ok
                lines.append(f"{episode.path.name} {kind}[{n}] truth {want:.2f} got {value}")
    return total, good, lines, phantom


@pytest.fixture(scope="module")
def seasons(tmp_path_factory: pytest.TempPathFactory) -> list[list[tuple[Episode, Fingerprint]]]:
    folder = tmp_path_factory.mktemp("full-seasons")
    made = []
    for n, spec in enumerate(SEASONS):
        episodes = make_season(folder, spec, first_block=10 + 100 * n)
        made.append([(e, fingerprint_file("ffmpeg", e.path, e.duration)) for e in episodes])
    return made


def test_full_size_seasons_are_found_within_a_second(
    seasons: list[list[tuple[Episode, Fingerprint]]],
) -> None:
    total = good = 0
    phantoms: list[str] = []
    for season in seasons:
        t, g, lines, phantom = score(season)
        total, good = total + t, good + g
        phantoms += phantom
        print("\n".join(lines))
    assert not phantoms, phantoms
    # 11 episodes: 9 openings and 11 endings, 40 boundaries.
    assert total == 40
    assert good >= 0.95 * total, f"{total - good} of {total} boundaries off by more than 1 s"


def test_two_seasons_together_share_nothing(
    seasons: list[list[tuple[Episode, Fingerprint]]],
) -> None:
    """Episodes of two different shows in one season: each show's own opening and
    ending are still found (the longest shared stretch is the right one), and the
    ones without an opening get none."""
    mixed = seasons[0][:3] + seasons[1][:3]
    ids = [uuid.uuid4() for _ in mixed]
    found = detect_season([EpisodePrint(i, fp) for i, (_, fp) in zip(ids, mixed, strict=True)])
    for i, (episode, _) in zip(ids, mixed, strict=True):
        got = {m.kind: m for m in found[i]}
        assert set(got) == {"opening", "ending"}, episode.path.name
        assert episode.opening is not None
        assert got["opening"].start == pytest.approx(episode.opening[0], abs=TOLERANCE)
