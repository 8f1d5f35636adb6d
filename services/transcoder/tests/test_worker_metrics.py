"""The worker's metrics port: loopback by default, a free port when its own is
taken (a second worker on one machine), and served before any job is taken."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from studio_common.testing.infra import free_port
from studio_transcoder import worker as worker_module
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.worker import Worker, serve_metrics


def settings(port: int, **extra: Any) -> TranscoderSettings:
    return TranscoderSettings(environment="test", worker_metrics_port=port, **extra)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def test_metrics_bind_loopback_and_a_second_worker_takes_a_free_port() -> None:
    port = free_port()
    first = serve_metrics(settings(port), CollectorRegistry(), lambda: None)
    second = serve_metrics(settings(port), CollectorRegistry(), lambda: None)
    assert first is not None
    assert second is not None
    try:
        assert first.address == ("127.0.0.1", port)
        assert second.address[0] == "127.0.0.1"
        assert second.port not in (0, port)
        scrape(first.port)
        scrape(second.port)
    finally:
        for server in (first, second):
            server.close()


def test_port_zero_serves_nothing() -> None:
    assert serve_metrics(settings(0), CollectorRegistry(), lambda: None) is None


async def test_the_port_answers_before_the_worker_takes_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    seen: list[bool] = []

    class Stop(Exception):
        pass

    async def start(self: Worker) -> None:
        with socket.socket() as probe:
            seen.append(probe.connect_ex(("127.0.0.1", port)) == 0)
        await stop(self)
        raise Stop

    async def stop(self: Worker, grace: float | None = None) -> None:
        if self._metrics_server is not None:
            self._metrics_server.close()

    monkeypatch.setattr(Worker, "start", start)
    monkeypatch.setattr(Worker, "stop", stop)
    with pytest.raises(Stop):
        await worker_module.run_worker(settings(port, log_json=False))
    assert seen == [True]
