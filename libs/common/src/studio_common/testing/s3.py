"""Clients of the S3 stand-in for tests.

The stand-in (moto, or STUDIO_TEST_S3_ENDPOINT_URL) takes any credentials; the
test settings of every service carry these, so a client made here sees what the
service under test wrote.
"""

from __future__ import annotations

import contextlib
from typing import Any

import boto3


def s3_client(endpoint_url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test-secret",  # noqa: S106 - the stand-in takes any key
    )


def s3_with_bucket(endpoint_url: str, bucket: str) -> Any:
    """A client, with `bucket` made if it is not there yet (tests share one stand-in)."""
    client = s3_client(endpoint_url)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
    return client
