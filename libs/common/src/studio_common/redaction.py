"""Credentials out of logs, spans and error reports: a leaf module, imported by
telemetry and observability alike (neither imports the other's side)."""

from __future__ import annotations

import re

# A path segment that looks like a credential (playback tokens, signed ids):
# long and made of token characters, but not a UUID. It never reaches a log
# line or a span attribute.
_SECRETISH_SEGMENT = re.compile(r"^[A-Za-z0-9._~+=-]{32,}$")
_UUID_SEGMENT = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
REDACTED = "[redacted]"


def redact_path(path: str) -> str:
    """The path with credential-like segments replaced, and no query string."""
    path = path.split("?", 1)[0]
    return "/".join(
        REDACTED if _SECRETISH_SEGMENT.match(seg) and not _UUID_SEGMENT.match(seg) else seg
        for seg in path.split("/")
    )


def redact_url(url: str) -> str:
    """``scheme://host/path?query`` with the path redacted and no query."""
    scheme, sep, rest = url.partition("://")
    host, slash, tail = rest.partition("/")
    return f"{scheme}{sep}{host}{slash}{redact_path(tail)}" if slash else url
