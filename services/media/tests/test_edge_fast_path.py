"""Which requests the gateway's fast path answers itself (studio_media.api.edge)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from studio_media.api.edge import EdgeFile, HlsEdgeFastPath

EPISODE = uuid.uuid4()
EDGE = [(b"x-studio-hls-edge", b"storage")]


def scope(path: str, method: str = "GET", headers: Any = EDGE) -> dict[str, Any]:
    return {"type": "http", "path": path, "method": method, "headers": headers}


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called")


MATCHER = HlsEdgeFastPath(_app)


def test_a_file_with_the_gateway_header_is_answered_before_routing():
    assert MATCHER.match(scope(f"/hls/tok/{EPISODE}/v1/720p/seg_001.ts")) == EdgeFile(
        "tok", EPISODE, "v1/720p/seg_001.ts", head=False
    )
    assert MATCHER.match(scope(f"/hls/tok/{EPISODE}/v1/master.m3u8", "HEAD")) == EdgeFile(
        "tok", EPISODE, "v1/master.m3u8", head=True
    )


@pytest.mark.parametrize(
    "request_scope",
    [
        scope(f"/hls/tok/{EPISODE}/v1/seg.ts", headers=[]),  # no gateway
        scope(f"/hls/tok/{EPISODE}/v1/seg.ts", headers=[(b"x-studio-hls-edge", b"other")]),
        scope(f"/hls/tok/{EPISODE}/v1/seg.ts", "POST"),
        scope(f"/hls/tok/{EPISODE}/v1/seg.ts", "DELETE"),
        scope("/hls/tok/not-a-uuid-at-all-but-thirty-six-chr/v1/seg.ts"),
        scope(f"/hls/tok/{EPISODE.hex}/v1/seg.ts"),  # another spelling: the route decides
        scope(f"/hls//{EPISODE}/v1/seg.ts"),
        scope(f"/api/hls/tok/{EPISODE}/v1/seg.ts"),
    ],
)
def test_everything_else_goes_through_the_routes(request_scope):
    assert MATCHER.match(request_scope) is None
