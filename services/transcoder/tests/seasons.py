"""Seasons generated with ffmpeg, for the marker tests, bench/markers.py and demos.

Every episode is encoded on its own (so the shared opening and ending are
re-encoded at a different AAC frame alignment in each): a cold open, the
season's opening, content of its own, the season's ending and a preview of
its own. The audio is tonal, a tune of 0.2 s notes per block: chromaprint
summarises pitch classes, and noise of any seed looks alike to it. The tunes
are put together from pre-rendered notes in Python and piped to ffmpeg as PCM,
so a season costs little more than its AAC encodes.

Only the first and last quarter (at most ten minutes) are fingerprinted; the
middle is a plain tone of the episode's own, which costs next to nothing to
make.
"""

from __future__ import annotations

import math
import random
import subprocess
from array import array
from dataclasses import dataclass, field
from pathlib import Path

# 0.2 s notes are 1,000 samples; chromaprint resamples to 11,025 Hz anyway.
RATE = 5000
NOTE_SAMPLES = RATE // 5
PITCHES = 29
FFMPEG = ("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y")
# The fingerprinted windows (studio_transcoder.media.fingerprint), plus a margin.
WINDOW_FRACTION = 0.25
WINDOW_MAX_SECONDS = 600.0
MARGIN = 5.0


def _note(frequency: float) -> bytes:
    samples = array(
        "h",
        (round(16000 * math.sin(2 * math.pi * frequency * i / RATE)) for i in range(NOTE_SAMPLES)),
    )
    return samples.tobytes()


_NOTES = [_note(180 + 50 * p) for p in range(PITCHES)]
_SAMPLE_BYTES = 2


def melody(block: int, seconds: float) -> bytes:
    """A tune of 0.2 s notes of its own for every block number, as 16-bit PCM.

    Built from 29 pre-rendered notes: making a season costs its AAC encodes, not
    an expression evaluated per sample."""
    a, b = 3 * block + 1, block + 1
    # Each block starts at a note of its own: blocks that all began on the same
    # note would share audio across every boundary. Modulo a large prime first:
    # the tune does not repeat within a block.
    first = (37 * block) % 101 + 1
    total = round(seconds * RATE)
    notes = -(-total // NOTE_SAMPLES)
    pcm = b"".join(
        _NOTES[((n + first) * a + (n + first) ** 2 * b) % 997 % PITCHES] for n in range(notes)
    )
    return pcm[: total * _SAMPLE_BYTES]


def tone(block: int, seconds: float) -> bytes:
    """A steady note of the block's own (what is never fingerprinted)."""
    total = round(seconds * RATE)
    note = _NOTES[block % PITCHES]
    return (note * (-(-total // NOTE_SAMPLES)))[: total * _SAMPLE_BYTES]


def silence(seconds: float) -> bytes:
    return bytes(round(seconds * RATE) * _SAMPLE_BYTES)


@dataclass
class Episode:
    path: Path
    duration: float
    opening: tuple[float, float] | None
    ending: tuple[float, float] | None


@dataclass
class Layout:
    """One episode's shape; times in seconds."""

    duration: float
    cold_open: float = 0.0
    opening: float | None = 60.0  # None: no opening
    ending: float | None = 60.0  # None: no ending
    preview: float = 0.0
    # Blocks: 0 and 1 are the season's opening and ending, unless told otherwise.
    opening_block: int = 0
    ending_block: int = 1
    bitrate: str = "32k"
    middle: str = "tone"  # "tone" or "silence": what is never fingerprinted


def _audio(layout: Layout, own: int) -> tuple[bytes, Episode]:
    d = layout.duration
    window = min(WINDOW_MAX_SECONDS, d * WINDOW_FRACTION)
    head_end = min(window + MARGIN, d)
    tail_from = max(d - window - MARGIN, head_end)
    parts: list[bytes] = []
    t = 0.0

    def add(pcm: bytes, seconds: float) -> None:
        nonlocal t
        if seconds > 1e-3:
            parts.append(pcm)
            t += seconds

    add(melody(own, layout.cold_open), layout.cold_open)
    opening = None
    if layout.opening:
        opening = (t, t + layout.opening)
        add(melody(layout.opening_block, layout.opening), layout.opening)
    ending_start = d - layout.preview - (layout.ending or 0.0)
    content_end = min(head_end, ending_start)
    add(melody(own + 1, content_end - t), content_end - t)
    if tail_from > t and ending_start > tail_from:
        middle = tone(own, tail_from - t) if layout.middle == "tone" else silence(tail_from - t)
        add(middle, tail_from - t)
    add(melody(own + 2, ending_start - t), ending_start - t)
    ending = None
    if layout.ending:
        ending = (t, t + layout.ending)
        add(melody(layout.ending_block, layout.ending), layout.ending)
    add(melody(own + 3, d - t), d - t)
    return b"".join(parts), Episode(Path(), d, opening, ending)


def make_episode(path: Path, layout: Layout, own: int, *, video: bool = False) -> Episode:
    """Writes one episode (``.m4a`` audio, or with ``video`` a tiny H.264 ``.mp4``)."""
    pcm, episode = _audio(layout, own)
    inputs = (
        ["-f", "lavfi", "-i", f"testsrc2=size=192x108:rate=10:duration={layout.duration:.3f}"]
        if video
        else []
    )
    inputs += ["-f", "s16le", "-ar", str(RATE), "-ac", "1", "-i", "pipe:0"]
    maps = ["-map", "0:v", "-map", "1:a"] if video else []
    # The fast AAC coder: half the CPU of the default, the same frames and artefacts' kind.
    codecs = ["-c:a", "aac", "-aac_coder", "fast", "-b:a", layout.bitrate]
    if video:
        codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *codecs]
    subprocess.run(
        [*FFMPEG, *inputs, *maps, *codecs, str(path)], input=pcm, check=True, timeout=600
    )
    episode.path = path
    return episode


@dataclass
class SeasonSpec:
    """A season of the issue's shape: episodes sharing an opening and an ending of
    60-90 s, cold opens of 0-3 min, previews of 0-30 s, and ``without_opening``
    episodes that have none."""

    name: str
    episodes: int
    opening: float
    ending: float
    duration: float = 1440.0
    without_opening: int = 1
    seed: int = 17
    layouts: list[Layout] = field(default_factory=list)

    def build(self) -> list[Layout]:
        rng = random.Random(self.seed)
        # Spread over 0-3 min, the first without a cold open.
        colds = [0.0] + [round(rng.uniform(5.0, 180.0), 2) for _ in range(self.episodes - 1)]
        layouts = []
        for n in range(self.episodes):
            has_opening = n < self.episodes - self.without_opening
            layouts.append(
                Layout(
                    duration=self.duration,
                    cold_open=colds[n],
                    opening=self.opening if has_opening else None,
                    ending=self.ending,
                    preview=round(rng.choice([0.0, rng.uniform(5.0, 30.0)]), 2),
                    bitrate=rng.choice(["32k", "48k"]),
                )
            )
        self.layouts = layouts
        return layouts


def make_season(
    folder: Path, spec: SeasonSpec, *, first_block: int = 10, video: bool = False
) -> list[Episode]:
    """Every episode of ``spec``; the season's own blocks start at ``first_block``."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".mp4" if video else ".m4a"
    episodes = []
    for n, layout in enumerate(spec.build()):
        own = first_block + 4 * (n + 1)
        # Distinct opening and ending tunes per season: seasons never share them.
        layout.opening_block = first_block
        layout.ending_block = first_block + 1
        path = folder / f"{spec.name}-e{n + 1:02d}{suffix}"
        episodes.append(make_episode(path, layout, own, video=video))
    return episodes
