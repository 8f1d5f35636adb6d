"""What counts as storage being away, and the gate that waits for it to answer."""

from __future__ import annotations

import asyncio

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from studio_transcoder.outage import StorageGate, is_unavailable


def client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
    )


def wrapped(error: Exception) -> S3UploadFailedError:
    """How boto3's upload_file reports a ClientError: a new exception raised inside the except."""
    try:
        raise error
    except Exception:
        try:
            raise S3UploadFailedError("Failed to upload x to b/k: ...")
        except S3UploadFailedError as outer:
            return outer


def test_no_connection_timeouts_and_5xx_are_outages_refusals_are_not():
    assert is_unavailable(EndpointConnectionError(endpoint_url="http://s3"))
    assert is_unavailable(ReadTimeoutError(endpoint_url="http://s3"))
    assert is_unavailable(client_error(503, "SlowDown"))
    assert is_unavailable(client_error(500, "InternalError"))
    assert is_unavailable(wrapped(client_error(502, "BadGateway")))
    assert not is_unavailable(client_error(403, "AccessDenied"))
    assert not is_unavailable(client_error(400, "InvalidRequest"))
    assert not is_unavailable(wrapped(client_error(403, "AccessDenied")))
    assert not is_unavailable(ValueError("x"))


async def test_the_gate_closes_once_probes_with_backoff_and_opens_when_storage_answers():
    answers = [False, False, True]
    probes = 0
    changes: list[bool] = []

    async def probe() -> None:
        nonlocal probes
        probes += 1
        if not answers[min(probes - 1, len(answers) - 1)]:
            raise EndpointConnectionError(endpoint_url="http://s3")

    gate = StorageGate(
        probe, probe_min_seconds=0.05, probe_max_seconds=0.1, on_change=changes.append
    )
    assert gate.is_up
    gate.report(EndpointConnectionError(endpoint_url="http://s3"))
    gate.report(EndpointConnectionError(endpoint_url="http://s3"))  # the same outage
    assert not gate.is_up
    assert gate.outages == 1
    assert not await gate.wait_up(0)
    assert await gate.wait_up(5)
    assert probes == 3
    assert changes == [False, True]
    assert gate.remaining(60) == 60
    await gate.close()


async def test_a_check_that_meets_an_outage_closes_the_gate():
    async def down() -> None:
        raise EndpointConnectionError(endpoint_url="http://s3")

    gate = StorageGate(down, probe_min_seconds=10)
    assert not await gate.check()
    assert not gate.is_up
    assert 0 < gate.remaining(60) <= 60
    await gate.close()

    async def refuses() -> None:
        raise client_error(403, "AccessDenied")

    # Storage that answers, even with a refusal, is there.
    assert await StorageGate(refuses).check()
    await asyncio.sleep(0)
