"""What a running attempt reports: progress and "playable", on the job row and
in the worker's outbox, in one transaction each."""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from studio_common.db import Database
from studio_common.events import EventPayload, TranscodePlayableV1, TranscodeProgressV1
from studio_common.outbox import enqueue
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.jobstate import job_row
from studio_transcoder.models import worker_messaging
from studio_transcoder.repository import clip_log

log = logging.getLogger("studio.transcoder.worker")


class ProgressThrottle:
    """At most one progress report per interval, unless the step in percent is bigger."""

    def __init__(
        self, interval: float, step: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.step = step
        self.clock = clock
        self.last_percent = 0.0
        self.last_at: float | None = None

    def should_emit(self, percent: float) -> bool:
        if percent <= self.last_percent:
            return False
        now = self.clock()
        due = self.last_at is None or now - self.last_at >= self.interval
        if due or percent - self.last_percent >= self.step:
            self.last_percent, self.last_at = percent, now
            return True
        return False


class JobReporter:
    """What an attempt reports, written to the job row and the outbox together."""

    def __init__(
        self,
        database: Database,
        settings: TranscoderSettings,
        job_id: uuid.UUID,
        episode_id: uuid.UUID,
    ) -> None:
        self.database = database
        self.job_id = job_id
        self.episode_id = episode_id
        self.throttle = ProgressThrottle(
            settings.progress_interval_seconds, settings.progress_step_percent
        )
        self.is_playable = False
        self.notes: deque[str] = deque(maxlen=40)

    def restart(self) -> None:
        """The attempt starts over: progress from zero, not playable yet."""
        self.throttle.last_percent, self.throttle.last_at = 0.0, None
        self.is_playable = False

    async def progress(self, percent: float) -> None:
        percent = round(max(0.0, min(99.0, percent)), 2)
        if not self.throttle.should_emit(percent):
            return
        event = TranscodeProgressV1(
            episode_id=self.episode_id,
            job_id=self.job_id,
            percent=percent,
            playable=self.is_playable,
        )
        await self._record(event, progress=percent)

    async def playable(self, master_key: str, renditions: list[str]) -> None:
        self.is_playable = True
        event = TranscodePlayableV1(
            episode_id=self.episode_id,
            job_id=self.job_id,
            hls_master_key=master_key,
            renditions=renditions,
        )
        await self._record(event, playable=True)

    async def _record(self, event: EventPayload, **row: Any) -> None:
        """The row's new values and their event, while the attempt still runs."""
        async with job_row(self.database, self.job_id, processing=True) as (session, job):
            if job is None:
                return
            for name, value in row.items():
                setattr(job, name, value)
            await enqueue(session, worker_messaging, event)

    def note(self, line: str) -> None:
        log.info(line, extra={"job_id": str(self.job_id)})
        self.notes.append(line)

    def log(self, tail: str | None = None) -> str | None:
        parts = list(self.notes)
        if tail:
            parts += ["--- ffmpeg ---", tail]
        return clip_log("\n".join(parts))
