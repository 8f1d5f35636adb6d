"""Sending a part: retried with backoff for as long as storage may be away (at
least a minute by default), and a progress bar whose rate never goes negative."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.progress import Progress

from studio_cli.errors import CliError
from studio_cli.upload import (
    PART_RETRY_SECONDS,
    MultipartUpload,
    WireProgress,
    retry_delay,
)


class Storage:
    """A local HTTP server that refuses the first `failures` part PUTs with 503."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.puts = 0
        storage = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                storage.puts += 1
                if storage.puts <= storage.failures:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", '"part-etag"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/part"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    file = tmp_path / "episode.mkv"
    file.write_bytes(b"x" * 300_000)
    return file


def uploader(file: Path, retry_seconds: float) -> MultipartUpload:
    upload = MultipartUpload(None, Console(file=io.StringIO()), None, file, "video/x-matroska")  # type: ignore[arg-type]
    upload.part_retry_seconds = retry_seconds
    upload.part_backoff_cap = 0.05
    return upload


@pytest.fixture
def storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    s = Storage(request.param)
    yield s
    s.close()


def test_the_default_retry_window_outlasts_a_minute() -> None:
    assert PART_RETRY_SECONDS >= 60
    delays = [retry_delay(n) for n in range(1, 12)]
    assert all(0 < d <= 10 for d in delays)
    assert delays[0] < delays[3], "the wait grows"


@pytest.mark.parametrize("storage", [6], indirect=True)
def test_a_part_refused_many_times_is_sent_once_storage_is_back(
    storage: Storage, source: Path
) -> None:
    moved: list[int] = []
    etag = uploader(source, retry_seconds=30)._send_part(1, storage.url, {}, 300_000, moved.append)
    assert etag == '"part-etag"'
    assert storage.puts == 7
    assert sum(moved) == 300_000, "the bytes of refused attempts are given back"


@pytest.mark.parametrize("storage", [10**6], indirect=True)
def test_a_part_gives_up_after_its_retry_window(storage: Storage, source: Path) -> None:
    started = time.monotonic()
    with pytest.raises(CliError, match=r"could not be sent in 0\.5 s"):
        uploader(source, retry_seconds=0.5)._send_part(1, storage.url, {}, 300_000, lambda n: None)
    assert 0.4 < time.monotonic() - started < 5
    assert storage.puts > 2


def test_the_rate_never_goes_negative_when_a_part_is_sent_again() -> None:
    now = [0.0]
    progress = Progress(console=Console(file=io.StringIO()), get_time=lambda: now[0])
    task = progress.add_task("upload", total=1000)
    bar = WireProgress(progress, task, 1000)
    # 600 bytes of a part go out, the part fails, it is sent again in full.
    for n in (300, 300, -600, 500, 500):
        now[0] += 1.0
        bar.advance(n)
        state = progress.tasks[0]
        assert (state.speed or 0) >= 0, f"negative rate after {n}"
    state = progress.tasks[0]
    assert state.completed == state.total == 1600
    assert state.finished
