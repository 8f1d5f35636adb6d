"""The S3 stand-in's streamed object GETs answer as moto's own GETs do, and read
only the bytes they send.

Two servers run side by side on moto's one in-process backend: moto as it is
(`streaming=False`) and the stand-in the tests and `make up` use. Each request
is sent to both and the answers compared, besides checking the bytes themselves.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from studio_common.testing.moto_s3 import MotoS3Server

MiB = 1 << 20
KEY = "sources/ep 1+é.mp4"  # a space, a plus and a non-ASCII character, encoded in the path
SIZE = 3 * MiB + 12345
METADATA = {"episode": "ep-1", "uploaded_by": "tests"}
# Differ from one request to the next, whoever answers.
VOLATILE = {"date", "x-amzn-requestid"}
REQUEST_ID = re.compile(rb"<RequestId>[^<]*</RequestId>")


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)


def fetch(server: MotoS3Server, target: str, headers: dict[str, str] | None = None) -> Answer:
    conn = HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("GET", target, headers=headers or {})
        reply = conn.getresponse()
        body = reply.read()
    finally:
        conn.close()
    kept = sorted((k.lower(), v) for k, v in reply.getheaders() if k.lower() not in VOLATILE)
    return Answer(reply.status, kept, body)


def client(server: MotoS3Server, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test-secret",
        config=Config(**config),
    )


class CountingBuffer:
    """Stands in for a moto key's buffer, counting the bytes read from it."""

    def __init__(self, buffer: Any) -> None:
        self.buffer = buffer
        self.read_bytes = 0

    def read(self, *args: Any) -> bytes:
        chunk: bytes = self.buffer.read(*args)
        self.read_bytes += len(chunk)
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self.buffer, name)


def counted(bucket: str, key_name: str) -> CountingBuffer:
    """Counts what is read of the object from now on (moto's copy of it, in-process)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    key = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(bucket, key_name)
    counter = CountingBuffer(key._value_buffer)
    key._value_buffer = counter
    return counter


@dataclass
class Stand:
    plain: MotoS3Server
    streamed: MotoS3Server
    bucket: str
    data: bytes
    counter: CountingBuffer
    streamed_read: int = 0

    def both(self, target: str, headers: dict[str, str] | None = None) -> Answer:
        """The streamed answer, checked to be moto's own."""
        self.counter.read_bytes = 0
        streamed = fetch(self.streamed, target, headers)
        self.streamed_read = self.counter.read_bytes
        plain = fetch(self.plain, target, headers)
        assert (streamed.status, streamed.headers) == (plain.status, plain.headers)
        assert REQUEST_ID.sub(b"", streamed.body) == REQUEST_ID.sub(b"", plain.body)
        return streamed

    def presigned(self, key: str = KEY, **config: Any) -> str:
        url = client(self.streamed, **config).generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=600
        )
        parts = urlsplit(url)
        return f"{parts.path}?{parts.query}"


@pytest.fixture(scope="module")
def stand() -> Iterator[Stand]:
    with MotoS3Server(streaming=False) as plain, MotoS3Server() as streamed:
        bucket = f"moto-s3-{uuid.uuid4().hex[:12]}"
        data = random.Random(7).randbytes(SIZE)
        s3 = client(streamed)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(
            Bucket=bucket,
            Key=KEY,
            Body=data,
            ContentType="video/mp4",
            CacheControl="private, max-age=60",
            Metadata=METADATA,
        )
        yield Stand(plain, streamed, bucket, data, counted(bucket, KEY))


@pytest.fixture
def signed(stand: Stand) -> str:
    """A GET of the object as ffmpeg makes it: a presigned (SigV4) URL."""
    return stand.presigned(signature_version="s3v4")


def test_a_whole_get_is_the_object_with_its_headers(stand: Stand, signed: str) -> None:
    answer = stand.both(signed)

    assert answer.status == 200
    assert answer.body == stand.data
    assert answer.header("content-length") == str(SIZE)
    assert answer.header("content-type") == "video/mp4"
    assert answer.header("cache-control") == "private, max-age=60"
    assert answer.header("x-amz-meta-episode") == "ep-1"
    assert answer.header("x-amz-meta-uploaded_by") == "tests"
    assert answer.header("accept-ranges") == "bytes"
    assert (
        answer.header("etag")
        == client(stand.streamed).head_object(Bucket=stand.bucket, Key=KEY)["ETag"]
    )
    assert answer.header("last-modified")
    assert answer.header("content-range") is None


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=1000-1048575", 1000, 1048575),
        ("bytes=2000000-", 2000000, SIZE - 1),
        ("bytes=-4096", SIZE - 4096, SIZE - 1),
        ("bytes=3000000-99999999", 3000000, SIZE - 1),  # an end past the object's
        ("bytes=0-0", 0, 0),
    ],
)
def test_a_range_is_exactly_its_bytes(
    stand: Stand, signed: str, header: str, first: int, last: int
) -> None:
    answer = stand.both(signed, {"Range": header})

    assert answer.status == 206
    assert answer.header("content-range") == f"bytes {first}-{last}/{SIZE}"
    assert answer.header("content-length") == str(last - first + 1)
    assert answer.body == stand.data[first : last + 1]
    assert answer.header("content-type") == "video/mp4"
    assert stand.streamed_read == last - first + 1


@pytest.mark.parametrize("header", ["bytes=0-1,5-9", "bytes=oops", "bytes=9-3"])
def test_a_range_s3_ignores_gets_the_whole_object(stand: Stand, signed: str, header: str) -> None:
    answer = stand.both(signed, {"Range": header})

    assert answer.status == 200
    assert answer.body == stand.data


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"])
def test_a_range_past_the_end_is_416(stand: Stand, signed: str, header: str) -> None:
    answer = stand.both(signed, {"Range": header})

    assert answer.status == 416
    assert b"<Code>InvalidRange</Code>" in answer.body


def test_a_missing_key_is_404_no_such_key(stand: Stand) -> None:
    answer = stand.both(stand.presigned("sources/missing.mp4", signature_version="s3v4"))

    assert answer.status == 404
    assert b"<Code>NoSuchKey</Code>" in answer.body


def test_an_empty_object(stand: Stand) -> None:
    client(stand.streamed).put_object(Bucket=stand.bucket, Key="empty", Body=b"")
    signed = stand.presigned("empty", signature_version="s3v4")

    whole = stand.both(signed)
    assert (whole.status, whole.body, whole.header("content-length")) == (200, b"", "0")
    assert stand.both(signed, {"Range": "bytes=0-"}).status == 416


def test_conditional_gets(stand: Stand, signed: str) -> None:
    etag = client(stand.streamed).head_object(Bucket=stand.bucket, Key=KEY)["ETag"]

    assert stand.both(signed, {"If-None-Match": etag}).status == 304
    assert stand.both(signed, {"If-None-Match": etag.strip('"')}).status == 304
    assert stand.both(signed, {"If-Match": '"0123"'}).status == 412
    assert stand.both(signed, {"If-Match": etag.strip('"')}).body == stand.data
    assert stand.both(signed, {"If-Match": etag, "Range": "bytes=5-9"}).body == stand.data[5:10]
    assert stand.streamed_read == 5
    modified = stand.both(signed, {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert modified.status == 200
    assert modified.body == stand.data


def test_other_gets_of_the_key_are_moto_s(stand: Stand, signed: str) -> None:
    """A query other than a signature's is moto's to answer, as it is."""
    tagging = stand.both(f"{signed}&tagging")
    assert tagging.status == 200
    assert b"<Tagging" in tagging.body
    overridden = stand.both(f"{signed}&response-content-type=text/plain", {"Range": "bytes=0-9"})
    assert overridden.header("content-type") == "text/plain"
    assert overridden.body == stand.data[:10]
    assert stand.both(f"{signed}&partNumber=1").body == stand.data


def test_presigned_urls_of_either_signature_read_a_range(stand: Stand) -> None:
    for version in ("s3v4", "s3"):
        answer = stand.both(stand.presigned(signature_version=version), {"Range": "bytes=10-19"})

        assert answer.status == 206
        assert answer.body == stand.data[10:20]
        assert stand.streamed_read == 10


def test_boto3_reads_whole_and_ranged(stand: Stand) -> None:
    """boto3 signs with an Authorization header and asks for checksums."""
    s3 = client(stand.streamed)

    whole = s3.get_object(Bucket=stand.bucket, Key=KEY)
    assert whole["Body"].read() == stand.data
    assert whole["Metadata"] == METADATA
    checked = stand.both(stand.presigned(), {"x-amz-checksum-mode": "ENABLED"})
    assert checked.header("x-amz-checksum-crc32") == whole["ChecksumCRC32"]
    stand.counter.read_bytes = 0
    ranged = s3.get_object(Bucket=stand.bucket, Key=KEY, Range="bytes=100-199")
    assert ranged["Body"].read() == stand.data[100:200]
    assert ranged["ContentRange"] == f"bytes 100-199/{SIZE}"
    assert stand.counter.read_bytes == 100


def test_a_multipart_object_reads_back_whole_and_ranged(stand: Stand, tmp_path: Path) -> None:
    data = random.Random(11).randbytes(12 * MiB + 777)
    source = tmp_path / "source.mp4"
    source.write_bytes(data)
    key = "sources/multipart.mp4"
    s3 = client(stand.streamed)
    s3.upload_file(
        str(source),
        stand.bucket,
        key,
        ExtraArgs={"ContentType": "video/mp4"},
        Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB),
    )
    assert s3.head_object(Bucket=stand.bucket, Key=key)["ETag"].endswith('-3"')
    signed = stand.presigned(key, signature_version="s3v4")

    assert stand.both(signed).body == data
    checked = stand.both(signed, {"x-amz-checksum-mode": "ENABLED"})
    assert checked.body == data
    across = stand.both(signed, {"Range": f"bytes={5 * MiB - 10}-{10 * MiB + 9}"})
    assert across.status == 206
    assert across.body == data[5 * MiB - 10 : 10 * MiB + 10]
    assert s3.get_object(Bucket=stand.bucket, Key=key)["Body"].read() == data
    counter = counted(stand.bucket, key)
    ranged = s3.get_object(Bucket=stand.bucket, Key=key, Range="bytes=-1000")
    assert ranged["Body"].read() == data[-1000:]
    assert counter.read_bytes == 1000


def test_a_ranged_get_reads_only_its_range(stand: Stand) -> None:
    """What the middleware is for: moto's GET of the first MiB of a 64 MiB object
    reads all 64 of them; the stand-in's reads the one it sends."""
    size = 64 * MiB
    key_name = "sources/large.mp4"
    client(stand.streamed).put_object(Bucket=stand.bucket, Key=key_name, Body=b"\x5a" * size)
    counter = counted(stand.bucket, key_name)
    signed = stand.presigned(key_name, signature_version="s3v4")
    first_mib = {"Range": f"bytes=0-{MiB - 1}"}

    streamed = fetch(stand.streamed, signed, first_mib)
    streamed_read, counter.read_bytes = counter.read_bytes, 0
    plain = fetch(stand.plain, signed, first_mib)

    assert streamed.status == plain.status == 206
    assert streamed.body == plain.body == b"\x5a" * MiB
    # Keeps the measure honest: if moto itself stops reading the whole object,
    # this fails, and the middleware may go.
    assert counter.read_bytes >= size, "moto's own GET no longer reads the whole object"
    assert streamed_read == MiB


def special_bucket(stand: Stand, case: str) -> str:
    bucket = f"moto-s3-{case}-{uuid.uuid4().hex[:8]}"
    s3 = client(stand.streamed)
    s3.create_bucket(Bucket=bucket)
    extra: dict[str, Any] = {}
    if case == "versioned":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket=bucket, Key=KEY, Body=b"an older version")
    elif case == "archived":
        extra["StorageClass"] = "GLACIER"
    elif case == "cors":
        rule = {"AllowedOrigins": ["https://player.example"], "AllowedMethods": ["GET"]}
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
    elif case == "policy":
        deny = {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        }
        policy = json.dumps({"Version": "2012-10-17", "Statement": [deny]})
        s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    s3.put_object(Bucket=bucket, Key=KEY, Body=stand.data[:5000], ContentType="video/mp4", **extra)
    return bucket


@pytest.mark.parametrize("case", ["versioned", "archived", "cors", "policy"])
def test_what_moto_gets_otherwise_than_it_heads_is_moto_s(stand: Stand, case: str) -> None:
    bucket = special_bucket(stand, case)
    url = client(stand.streamed, signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": KEY}, ExpiresIn=600
    )
    parts = urlsplit(url)
    headers = {"Origin": "https://player.example", "Range": "bytes=10-19"}

    answer = stand.both(f"{parts.path}?{parts.query}", headers)

    expected = {"versioned": 206, "archived": 403, "cors": 206, "policy": 403}[case]
    assert answer.status == expected
    if expected == 206:
        assert answer.body == stand.data[10:20]
