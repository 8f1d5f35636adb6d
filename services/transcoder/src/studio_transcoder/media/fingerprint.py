"""Chromaprint fingerprints of an episode's first and last minutes.

A second, audio-only ffmpeg reads just those minutes (``-t`` for the head,
``-ss`` for the tail: no video is decoded) and writes the raw fingerprint:
one little-endian 32-bit item every :data:`ITEM_SECONDS`. Openings and endings
sit inside the first and last quarter (at most ten minutes) of an episode, so
nothing else is fingerprinted.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from pathlib import Path

from studio_transcoder.media.probe import input_options
from studio_transcoder.media.process import run_tool

# Chromaprint works at 11025 Hz with 4096-sample frames overlapping by two thirds.
SAMPLE_RATE = 11025
ITEM_SECONDS = 1365 / SAMPLE_RATE
# Openings lie in the first quarter of an episode, endings in the last, each at most 10 minutes.
WINDOW_FRACTION = 0.25
WINDOW_MAX_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The head (from 0 s) and tail (from ``tail_start`` s) of one episode's audio."""

    duration: float
    head: tuple[int, ...]
    tail: tuple[int, ...]
    tail_start: float


def window_seconds(duration: float) -> float:
    return min(WINDOW_MAX_SECONDS, duration * WINDOW_FRACTION)


def pack(items: tuple[int, ...] | list[int]) -> bytes:
    return struct.pack(f"<{len(items)}I", *items)


def unpack(raw: bytes) -> tuple[int, ...]:
    usable = len(raw) - len(raw) % 4
    return struct.unpack(f"<{usable // 4}I", raw[:usable])


def fingerprint_command(
    ffmpeg: str, source: str, audio_index: int, start: float, length: float
) -> list[str]:
    seek = ["-ss", f"{start:.3f}"] if start > 0 else []
    return [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        *input_options(source),
        *seek,
        "-t",
        f"{length:.3f}",
        "-i",
        source,
        "-map",
        f"0:{audio_index}",
        "-vn",
        "-sn",
        "-dn",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-f",
        "chromaprint",
        "-fp_format",
        "raw",
        "pipe:1",
    ]


class FingerprintError(Exception):
    pass


async def fingerprint(
    ffmpeg: str,
    source: str,
    audio_index: int,
    duration: float,
    *,
    redactions: dict[str, str] | None = None,
) -> Fingerprint:
    """Head and tail fingerprints of one source; two short audio-only ffmpeg runs."""
    window = window_seconds(duration)
    tail_start = max(0.0, duration - window)

    async def one(start: float) -> tuple[int, ...]:
        result = await run_tool(
            fingerprint_command(ffmpeg, source, audio_index, start, window),
            time_limit=max(120.0, window),
            redactions=redactions,
        )
        if result.returncode != 0:
            raise FingerprintError(result.stderr[-300:] or f"ffmpeg exited {result.returncode}")
        return unpack(result.stdout)

    head, tail = await asyncio.gather(one(0.0), one(tail_start))
    return Fingerprint(duration=duration, head=head, tail=tail, tail_start=tail_start)


def fingerprint_file(ffmpeg: str, path: Path, duration: float) -> Fingerprint:
    """Synchronous form for tools and tests."""
    return asyncio.run(fingerprint(ffmpeg, str(path), 0, duration))
