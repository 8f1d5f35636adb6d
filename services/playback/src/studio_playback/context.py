"""What playback builds on top of the common runtime, typed for its routes."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from studio_playback.config import PlaybackSettings
from studio_playback.positions import PositionWriter


@dataclass
class PlaybackContext:
    settings: PlaybackSettings
    # Position writes bypass the ORM on a pool of their own.
    positions_pool: asyncpg.Pool
    positions: PositionWriter
