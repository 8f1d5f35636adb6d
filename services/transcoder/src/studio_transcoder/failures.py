"""Why an attempt failed, and whether trying again can help."""

from __future__ import annotations


class JobFailure(Exception):
    """An attempt failed. ``reason`` is written for a person; ``code`` for metrics."""

    permanent: bool = False

    def __init__(self, code: str, reason: str, *, log_tail: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.log_tail = log_tail


class PermanentFailure(JobFailure):
    """The source itself is unusable: retrying gives the same answer."""

    permanent = True


class TransientFailure(JobFailure):
    """Storage, network or the process itself: another attempt may succeed."""

    permanent = False
