"""NatsLink: the reconnect schedule and the state it reports (no server needed;
tests/faults takes a real one away)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from studio_common.natsconn import NatsLink, reconnect_delay


def test_reconnect_delays_double_up_to_the_cap_with_jitter() -> None:
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (5, 10.0), (500, 10.0)]:
        delays = {reconnect_delay(attempt, base=0.5, cap=10.0) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, delays)
        assert len(delays) > 1  # jittered, not one fixed wait


def test_the_connection_never_gives_up() -> None:
    options = NatsLink("svc").options()
    # nats-py's default is 60 attempts, then the connection is closed for good.
    assert options["max_reconnect_attempts"] == -1
    server, delay = options["reconnect_to_server_handler"](
        [SimpleNamespace(reconnects=9), SimpleNamespace(reconnects=2)], {}
    )
    assert server.reconnects == 2
    assert 1.0 <= delay <= 2.0


async def test_one_warning_per_state_change_and_a_gauge(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    link = NatsLink("svc", registry=registry)
    woken: list[bool] = []
    link.on_reconnected(lambda: woken.append(True))

    def gauge() -> float | None:
        return registry.get_sample_value("studio_nats_connected", {"service": "svc"})

    assert gauge() == 0
    assert link.state == "reconnecting"
    link.mark_connected()
    assert gauge() == 1
    assert link.state == "ok"

    options = link.options()
    with caplog.at_level(logging.DEBUG, logger="studio.nats"):
        await options["disconnected_cb"]()
        for _ in range(20):
            await options["error_cb"](ConnectionRefusedError())
            await options["disconnected_cb"]()
        assert gauge() == 0
        assert not await link.wait_connected(0.05)
        await options["reconnected_cb"]()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["NATS disconnected; reconnecting", "NATS reconnected"]
    assert gauge() == 1
    assert woken == [True]
    assert await link.wait_connected(0)

    caplog.clear()
    link.mark_closing()
    await options["disconnected_cb"]()
    await options["closed_cb"]()
    assert link.state == "closed"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
