"""Access logging for the hot path.

A player reports its position every few seconds, so one access-log line per
successful write would be most of the service's log volume and a quarter of
its CPU. Those lines are dropped; the request metrics still count every write,
and failed writes (status >= 400) are still logged.
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "studio.access"
POSITION_WRITE_ROUTE = "/api/playback"


class SkipSuccessfulPositionWrites(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            getattr(record, "route", None) == POSITION_WRITE_ROUTE
            and getattr(record, "method", None) == "POST"
            and getattr(record, "status", 500) < 400
        )


def skip_successful_position_writes() -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, SkipSuccessfulPositionWrites) for f in logger.filters):
        logger.addFilter(SkipSuccessfulPositionWrites())
