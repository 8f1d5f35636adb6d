"""Private HLS at the edge (ADR 8), through a real nginx generated from the route
table, the real media service and the S3 stand-in: media checks the token and
names the object, nginx fetches the bytes from storage."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from studio_common.migrations import upgrade
from studio_common.testing.infra import scratch_database
from studio_common.testing.s3 import s3_client
from studio_devstack.backing import wait_for_tcp
from studio_devstack.gateway import GatewayOptions, find_nginx, nginx_command, write_nginx_conf
from studio_devstack.routes import ROUTES_RELATIVE_PATH, load_route_table
from studio_media import tokens
from studio_media.config import MediaSettings
from studio_media.main import create_app
from studio_media.storage import MediaStorage

pytestmark = pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed")

ROOT = Path(__file__).resolve().parents[2]
MEDIA_DIR = ROOT / "services" / "media"
KEY = "edge-test-signing-key-" + "k" * 32
VERSION = uuid.uuid4().hex
SEGMENT = bytes(range(256)) * 4096  # 1 MiB, every byte position distinct mod 256
PLAYLIST = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:4,\nseg0.ts\n"
MASTER = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n720p/index.m3u8\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Edge:
    base: str
    episode: uuid.UUID
    other_episode: uuid.UUID
    media_reads: list[str]
    runtime_dir: Path

    def url(self, path: str, *, token: str | None = None, episode: uuid.UUID | None = None) -> str:
        episode = episode or self.episode
        token = token or tokens.sign(KEY.encode(), episode, int(time.time()) + 600)
        return f"{self.base}/hls/{token}/{episode}/{VERSION}/{path}"


@pytest.fixture(scope="module")
async def own_db(pg_admin_url: str) -> AsyncIterator[str]:
    async with scratch_database(pg_admin_url, "studio_edge") as url:
        yield url


@pytest.fixture(scope="module")
def stored(s3_endpoint_url: str) -> tuple[str, uuid.UUID]:
    """A bucket holding one version folder, with the transcoder's Cache-Control."""
    bucket = f"edge-{uuid.uuid4().hex[:8]}"
    s3 = s3_client(s3_endpoint_url)
    s3.create_bucket(Bucket=bucket)
    episode = uuid.uuid4()
    folder = f"hls/{episode}/{VERSION}/"
    for name, body, content_type, cache in (
        ("master.m3u8", MASTER.encode(), "application/vnd.apple.mpegurl", "no-cache"),
        ("720p/index.m3u8", PLAYLIST.encode(), "application/vnd.apple.mpegurl", "no-cache"),
        ("720p/seg0.ts", SEGMENT, "video/mp2t", "public, max-age=86400"),
    ):
        s3.put_object(
            Bucket=bucket,
            Key=folder + name,
            Body=body,
            ContentType=content_type,
            CacheControl=cache,
        )
    return bucket, episode


@pytest.fixture(scope="module")
async def edge(
    service_settings: dict[str, Any],
    own_db: str,
    s3_endpoint_url: str,
    stored: tuple[str, uuid.UUID],
    gateway: tuple[str, Path],
    media_port: int,
) -> AsyncIterator[Edge]:
    bucket, episode = stored
    upgrade(MEDIA_DIR, own_db)
    settings = MediaSettings(
        **{
            **service_settings,
            "database_url": own_db,
            "s3_endpoint_url": s3_endpoint_url,
            "s3_bucket": bucket,
            "s3_access_key_id": "test",
            "s3_secret_access_key": "test-secret",
            "rate_limit_prefix": f"test:{uuid.uuid4().hex[:10]}:rl",
            "upload_cleanup_interval_seconds": 0,
            "hls_sweep_interval_seconds": 0,
            "playback_signing_key": KEY,
            "public_base_url": "http://edge.test",
        }
    )
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=media_port, lifespan="on", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)

    # Every way media could hand out a file's bytes records the call.
    reads: list[str] = []
    originals = {name: getattr(MediaStorage, name) for name in ("stream", "read", "head")}

    def recording(name: str) -> Any:
        async def record(self: MediaStorage, key: str, *args: Any) -> Any:
            reads.append(f"{name} {key}")
            return await originals[name](self, key, *args)

        return record

    for name in originals:
        setattr(MediaStorage, name, recording(name))
    try:
        yield Edge(
            base=gateway[0],
            episode=episode,
            other_episode=uuid.uuid4(),
            media_reads=reads,
            runtime_dir=gateway[1],
        )
    finally:
        for name, original in originals.items():
            setattr(MediaStorage, name, original)
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
def media_port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def gateway(
    media_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """nginx with the route table's config, media on `media_port`."""
    table = load_route_table(ROOT / ROUTES_RELATIVE_PATH)
    ports = {service.name: _free_port() for service in table.services}
    ports["media"] = media_port
    runtime = tmp_path_factory.mktemp("edge") / "gateway"
    options = GatewayOptions(runtime_dir=runtime, listen_port=_free_port())
    write_nginx_conf(table.with_ports(ports), options)
    nginx = find_nginx()
    assert nginx is not None
    proc = subprocess.Popen(
        nginx_command(nginx, runtime), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        if not wait_for_tcp("127.0.0.1", options.listen_port, timeout=10):
            proc.kill()
            pytest.fail(f"nginx did not start:\n{proc.communicate()[0].decode()}")
        yield f"http://127.0.0.1:{options.listen_port}", runtime
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def test_a_playlist_and_a_segment_play_with_storage_headers(
    edge: Edge, http: httpx.AsyncClient
) -> None:
    master = await http.get(edge.url("master.m3u8"))
    assert master.status_code == 200, master.text
    assert master.text == MASTER
    assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert master.headers["cache-control"] == "no-cache"

    segment = await http.get(edge.url("720p/seg0.ts"))
    assert segment.status_code == 200
    assert segment.content == SEGMENT
    assert segment.headers["content-type"] == "video/mp2t"
    assert segment.headers["cache-control"] == "public, max-age=86400"
    assert segment.headers["etag"]
    # One Cache-Control (storage's), none of media's check answer or storage's own headers.
    assert segment.headers.get_list("cache-control") == ["public, max-age=86400"]
    assert "x-studio-storage-url" not in segment.headers
    assert not [name for name in segment.headers if name.startswith("x-amz-")], segment.headers
    # The gateway's headers still apply.
    assert segment.headers["x-content-type-options"] == "nosniff"
    assert edge.media_reads == []


async def test_range_gives_206_with_content_range(edge: Edge, http: httpx.AsyncClient) -> None:
    reply = await http.get(edge.url("720p/seg0.ts"), headers={"Range": "bytes=1000-1999"})
    assert reply.status_code == 206
    assert reply.headers["content-range"] == f"bytes 1000-1999/{len(SEGMENT)}"
    assert reply.content == SEGMENT[1000:2000]
    assert edge.media_reads == []


async def test_head_gives_the_length_without_a_body(edge: Edge, http: httpx.AsyncClient) -> None:
    reply = await http.head(edge.url("720p/seg0.ts"))
    assert reply.status_code == 200
    assert reply.headers["content-length"] == str(len(SEGMENT))
    assert reply.headers["cache-control"] == "public, max-age=86400"
    assert reply.content == b""
    playlist = await http.head(edge.url("720p/index.m3u8"))
    assert playlist.status_code == 200
    assert playlist.headers["content-length"] == str(len(PLAYLIST))
    assert edge.media_reads == []


@pytest.mark.parametrize("path", ["master.m3u8", "720p/index.m3u8", "720p/seg0.ts"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_bad_tokens_are_403_problems(
    edge: Edge, http: httpx.AsyncClient, path: str, method: str
) -> None:
    now = int(time.time())
    cases = {
        "playback-token-invalid": [
            edge.url(path, token=f"{now + 600}." + "A" * 43),  # forged
            edge.url(path, token=tokens.sign(KEY.encode(), edge.other_episode, now + 600)),
            # another episode's token on this episode's path
            edge.url(path, token=tokens.sign(KEY.encode(), edge.other_episode, now + 600)).replace(
                str(edge.other_episode), str(edge.episode)
            ),
        ],
        "playback-token-expired": [
            edge.url(path, token=tokens.sign(KEY.encode(), edge.episode, now - 1)),
        ],
    }
    for slug, urls in cases.items():
        for url in urls:
            reply = await http.request(method, url)
            assert reply.status_code == 403, (url, reply.status_code)
            assert reply.headers["content-type"] == "application/problem+json"
            if method == "GET":
                assert reply.json()["type"] == f"urn:studio:problem:{slug}", url
    assert edge.media_reads == []


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_missing_file_is_a_404_problem(
    edge: Edge, http: httpx.AsyncClient, method: str
) -> None:
    for path in ("720p/seg9.ts", "1080p/index.m3u8"):
        reply = await http.request(method, edge.url(path))
        assert reply.status_code == 404
        assert reply.headers["content-type"] == "application/problem+json"
        if method == "GET":
            body = reply.json()
            assert body["type"] == "urn:studio:problem:not-found"
            assert body["request_id"] == reply.headers["x-request-id"]
    # A version folder that does not exist is storage's 404 as well.
    other = edge.url("master.m3u8").replace(VERSION, uuid.uuid4().hex)
    reply = await http.get(other)
    assert reply.status_code == 404
    assert reply.json()["type"] == "urn:studio:problem:not-found"


async def test_bad_paths_and_unsatisfiable_ranges_are_problems(
    edge: Edge, http: httpx.AsyncClient
) -> None:
    bad = await http.get(edge.url("720p/seg0.exe"))
    assert bad.status_code == 400
    assert bad.json()["type"] == "urn:studio:problem:invalid-hls-path"
    beyond = await http.get(edge.url("720p/seg0.ts"), headers={"Range": "bytes=99999999-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-type"] == "application/problem+json"
    assert beyond.json()["type"] == "urn:studio:problem:range-not-satisfiable"


async def test_the_internal_storage_location_is_not_reachable(
    edge: Edge, http: httpx.AsyncClient
) -> None:
    reply = await http.get(
        f"{edge.base}/__studio/hls-storage",
        headers={"X-Studio-Storage-Url": "http://127.0.0.1:1/"},
    )
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"


async def test_the_bytes_never_pass_through_media(edge: Edge, http: httpx.AsyncClient) -> None:
    """The access log: media (the first upstream) answered a few hundred bytes at most,
    storage (the second) the whole segment."""
    reply = await http.get(edge.url("720p/seg0.ts"), headers={"X-Request-ID": "edge-bytes-1"})
    assert reply.status_code == 200
    line = ""
    for _ in range(50):
        lines = (edge.runtime_dir / "access.log").read_text().splitlines()
        line = next((x for x in lines if '"edge-bytes-1"' in x), "")
        if line:
            break
        await asyncio.sleep(0.05)
    record = json.loads(line)
    # Two upstreams: media's check, then storage.
    assert len(record["upstream"].split(" : ")) == 2, record
    assert record["upstream_status"] == "200 : 200", record
    assert record["bytes_sent"] == len(SEGMENT)
    assert edge.media_reads == []
