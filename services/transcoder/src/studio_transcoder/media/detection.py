"""Openings and endings from the fingerprints of a season's episodes. Pure.

Two episodes share an opening when a stretch of one's head fingerprint matches
a stretch of the other's at some offset. Candidate offsets come from items
with equal values in both (an inverted index, as Jellyfin's intro skipper
does); each candidate is checked item by item with the bit-error distance
(popcount of the XOR of two 32-bit items), and the longest run of close items,
bridging short gaps, is the shared stretch. An episode's opening is the median
of the stretches it shares with its siblings, so one odd sibling does not move
its boundaries; endings work the same way on the tails.
"""

from __future__ import annotations

import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from studio_transcoder.media.fingerprint import ITEM_SECONDS, Fingerprint, window_seconds

MIN_SHARED_SECONDS = 15.0
# An item matches when at most this many of its 32 bits differ (re-encodes flip a few).
MAX_BIT_ERRORS = 5
# Short dips inside a shared stretch (a re-encode artefact, a sound effect) are bridged.
MAX_GAP_SECONDS = 1.0
CANDIDATE_SHIFTS = 4
# Items near a boundary summarise audio on both sides of it, and the nearer
# half matches: a run of close items starts this much before the shared audio
# and its last item starts this much before the shared audio ends (measured on
# generated seasons, see the tests).
LEAD_SECONDS = 0.75
ITEM_SPAN_SECONDS = 1.3
# The last items of a window cover its end: chromaprint drops the final partial frames.
END_ITEMS = 12


@dataclass(frozen=True, slots=True)
class Marker:
    kind: str  # "opening" | "ending"
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class EpisodePrint:
    episode_id: uuid.UUID
    fingerprint: Fingerprint


def _index(items: Sequence[int]) -> dict[int, list[int]]:
    index: dict[int, list[int]] = defaultdict(list)
    for i, value in enumerate(items):
        index[value].append(i)
    return index


def _longest_run(errors: list[int], gap: int) -> tuple[int, int] | None:
    """The longest stretch of close items, allowing up to ``gap`` far ones in a row."""
    best: tuple[int, int] | None = None
    start = last = -1
    for i, err in enumerate(errors):
        if err > MAX_BIT_ERRORS:
            continue
        if start < 0 or i - last > gap + 1:
            start = i
        last = i
        if best is None or last - start > best[1] - best[0]:
            best = (start, last)
    return best


def shared_stretch(
    a: Sequence[int], b: Sequence[int], index_a: dict[int, list[int]] | None = None
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The longest shared stretch of two fingerprints, as item ranges in ``a`` and ``b``."""
    if not a or not b:
        return None
    index = index_a if index_a is not None else _index(a)
    shifts: Counter[int] = Counter()
    for j, value in enumerate(b):
        for i in index.get(value, ()):
            shifts[i - j] += 1
    gap = round(MAX_GAP_SECONDS / ITEM_SECONDS)
    best: tuple[tuple[int, int], tuple[int, int]] | None = None
    tried: set[int] = set()
    for shift, _ in shifts.most_common(CANDIDATE_SHIFTS):
        # Exact matches cluster around the true offset; its neighbours are close too.
        for s in (shift - 1, shift, shift + 1):
            if s in tried:
                continue
            tried.add(s)
            j0, j1 = max(0, -s), min(len(b), len(a) - s)
            if j1 <= j0:
                continue
            errors = [(a[j + s] ^ b[j]).bit_count() for j in range(j0, j1)]
            run = _longest_run(errors, gap)
            if run is None:
                continue
            jb = (run[0] + j0, run[1] + j0)
            if best is None or jb[1] - jb[0] > best[1][1] - best[1][0]:
                best = ((jb[0] + s, jb[1] + s), jb)
    return best


def _touches_end(run: tuple[int, int], items: int) -> bool:
    return run[1] >= items - END_ITEMS


def _seconds(
    run: tuple[int, int], offset: float, items: int, window_end: float
) -> tuple[float, float]:
    start = offset if run[0] == 0 else offset + run[0] * ITEM_SECONDS + LEAD_SECONDS
    if _touches_end(run, items):
        return start, window_end
    return start, offset + run[1] * ITEM_SECONDS + ITEM_SPAN_SECONDS


def _pair_seconds(
    fx: Fingerprint,
    fy: Fingerprint,
    part: int,
    match: tuple[tuple[int, int], tuple[int, int]],
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The shared stretch in seconds in both episodes.

    When it runs to the end of one episode's window (an ending with no preview
    after it), that window's last items are missing (chromaprint drops the
    final partial frames), so the other episode's run stops that much short of
    its true end: its end is then the first one's, carried over by the
    alignment of the two runs."""
    (ox, nx, ex), (oy, ny, ey) = _window(fx, part), _window(fy, part)
    run_x, run_y = match
    sx = _seconds(run_x, ox, nx, ex)
    sy = _seconds(run_y, oy, ny, ey)
    # Time in x minus time in y of the same audio.
    delta = (ox + run_x[0] * ITEM_SECONDS) - (oy + run_y[0] * ITEM_SECONDS)
    x_end, y_end = _touches_end(run_x, nx), _touches_end(run_y, ny)
    if y_end and not x_end:
        sx = (sx[0], max(sx[1], min(ex, sy[1] + delta)))
    elif x_end and not y_end:
        sy = (sy[0], max(sy[1], min(ey, sx[1] - delta)))
    return sx, sy


def _window(fp: Fingerprint, part: int) -> tuple[float, int, float]:
    if part == 0:
        return 0.0, len(fp.head), window_seconds(fp.duration)
    return fp.tail_start, len(fp.tail), fp.duration


def detect_season(episodes: Sequence[EpisodePrint]) -> dict[uuid.UUID, list[Marker]]:
    """Markers of every episode of a season, from all pairs of its episodes."""
    found: dict[uuid.UUID, dict[str, list[tuple[float, float]]]] = {
        e.episode_id: {"opening": [], "ending": []} for e in episodes
    }
    indexes = {
        e.episode_id: (_index(e.fingerprint.head), _index(e.fingerprint.tail)) for e in episodes
    }
    for n, x in enumerate(episodes):
        for y in episodes[n + 1 :]:
            for kind, part in (("opening", 0), ("ending", 1)):
                fx, fy = x.fingerprint, y.fingerprint
                a, b = (fx.head, fy.head) if part == 0 else (fx.tail, fy.tail)
                match = shared_stretch(a, b, indexes[x.episode_id][part])
                if match is None:
                    continue
                sx, sy = _pair_seconds(fx, fy, part, match)
                if sx[1] - sx[0] < MIN_SHARED_SECONDS:
                    continue
                found[x.episode_id][kind].append(sx)
                found[y.episode_id][kind].append(sy)
    result: dict[uuid.UUID, list[Marker]] = {}
    for e in episodes:
        markers = []
        for kind in ("opening", "ending"):
            stretches = found[e.episode_id][kind]
            if not stretches:
                continue
            start = statistics.median(s for s, _ in stretches)
            end = min(statistics.median(t for _, t in stretches), e.fingerprint.duration)
            markers.append(Marker(kind, round(max(0.0, start), 2), round(end, 2)))
        result[e.episode_id] = markers
    return result
