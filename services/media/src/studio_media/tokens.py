"""Playback tokens: an HMAC over (episode, expiry) that travels in the URL path.

``/hls/{token}/{episodeId}/master.m3u8`` — a player resolves every variant
playlist and segment relative to that URL, so each request carries the token
and each request is checked. The token names no episode itself: the MAC is
computed over the episode id in the path, so a token for one episode opens no
other. Format: ``<expiry unix seconds>.<base64url HMAC-SHA256, 32 bytes>``,
exactly as :func:`sign` writes it: one spelling per token (ASCII digits without
a leading zero, unpadded base64url, nothing before or after), so a token is
either the issued string or refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Callable, Sequence

from studio_common.errors import Forbidden

# [0-9], not \d (which takes any script's digits); fullmatch, not $ (which
# allows a trailing newline).
_TOKEN = re.compile(r"([1-9][0-9]{0,11})\.([A-Za-z0-9_-]{43})")
_CONTEXT = b"studio-media/hls/v1"


class PlaybackTokenInvalid(Forbidden):
    slug, title = "playback-token-invalid", "The playback token is not valid for this episode"


class PlaybackTokenExpired(Forbidden):
    slug, title = "playback-token-expired", "The playback token has expired"


def _mac(key: bytes, episode_id: uuid.UUID, expires_at: int) -> bytes:
    message = b"\n".join((_CONTEXT, str(episode_id).encode(), str(expires_at).encode()))
    return hmac.new(key, message, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(key: bytes, episode_id: uuid.UUID, expires_at: int) -> str:
    return f"{expires_at}.{_b64(_mac(key, episode_id, expires_at))}"


def verify(
    keys: Sequence[bytes],
    token: str,
    episode_id: uuid.UUID,
    *,
    clock: Callable[[], float] = time.time,
) -> int:
    """The token's expiry; raises :class:`PlaybackTokenInvalid` or :class:`PlaybackTokenExpired`.

    The signature is checked before the expiry, so an expired forgery is
    reported as forged and the expiry of a token is only believed once its MAC is.
    """
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise PlaybackTokenInvalid("The playback token is malformed.")
    expires_at = int(match.group(1))
    given = match.group(2)
    if not any(hmac.compare_digest(given, _b64(_mac(key, episode_id, expires_at))) for key in keys):
        raise PlaybackTokenInvalid()
    if clock() >= expires_at:
        raise PlaybackTokenExpired()
    return expires_at
