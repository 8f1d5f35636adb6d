"""Why an attempt failed, and whether trying again can help."""

from __future__ import annotations


class JobFailure(Exception):
    """An attempt failed. ``reason`` is written for a person; ``code`` for metrics."""

    permanent: bool = False
    # Storage or the network was away, not the job at fault: the attempt is
    # redone without counting (see ``studio_transcoder.outage``).
    infrastructure: bool = False

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


class StorageUnavailable(TransientFailure):
    """Storage did not answer for longer than the outage tolerance."""

    infrastructure = True

    def __init__(self, reason: str) -> None:
        super().__init__("storage_unavailable", reason)
