"""moto's S3 server, as the tests and `make up` run it: GETs of objects read only
the bytes they send.

moto (5.2.5, pinned in uv.lock) answers every GET of an object by reading the
whole object into memory (`S3Response.get_object` returns `FakeKey.value`) and
only then cutting the requested range out of it (`_handle_range_header`). ffmpeg
reads a source with one `Range: bytes=N-` request per seek, so each of them cost
the stand-in a full copy of the source in memory and CPU time in proportion to
its size, and sent the whole remainder.

`StreamingObjectGets` answers a plain GET of an object itself: moto decides the
status and headers (the same request as a HEAD, which reads no body but applies
the Range and conditional headers as the GET would), and the body is read from
the object's buffer a chunk at a time, only the bytes that answer covers. This
leans on moto's internals (`s3_backends`, `FakeKey._value_buffer` and `lock`);
whenever a request or an object is not the plain case, or moto's GET would
answer with other headers than its HEAD, or any of those internals is not where
it was, the request goes to moto unchanged: moto stays the one that decides what
S3 would answer, this only saves it reading what it does not send.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote

from werkzeug.serving import BaseWSGIServer, make_server

CHUNK = 1 << 20

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# What a presigned URL adds to the query (SigV2 and SigV4); anything else
# (versionId, partNumber, uploadId, tagging, acl, response-* overrides...) asks
# moto for something other than the object's current bytes.
_PRESIGN_PARAMS = {"awsaccesskeyid", "signature", "expires", "x-id"}
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


class _Declined(Exception):
    """The request is not the plain case: moto answers it."""


class StreamingObjectGets:
    """WSGI middleware around moto's app: a GET of an object sends only the
    requested bytes, read from moto's copy of the object as they are sent."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not _plain_get(environ):
            return self.app(environ, start_response)
        try:
            status, headers = self._head(environ)
            if not status.startswith(("200 ", "206 ")):  # moto's error, 304 or 412 is the GET's
                raise _Declined(status)
            key, first, last = _object_range(environ, headers)
        except Exception:  # not the plain case, or moto's internals are not where they were
            return self.app(environ, start_response)
        start_response(status, headers)
        return _read(key, first, last)

    def _head(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
            answer["status"], answer["headers"] = status, headers

        body = self.app({**environ, "REQUEST_METHOD": "HEAD"}, start_response)
        try:
            for _ in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return answer["status"], list(answer["headers"])


def _plain_get(environ: dict[str, Any]) -> bool:
    if environ.get("REQUEST_METHOD") != "GET":
        return False
    # The HEAD and a GET moto answers after it would share the one input stream.
    if environ.get("CONTENT_LENGTH") not in (None, "", "0") or environ.get(
        "HTTP_TRANSFER_ENCODING"
    ):
        return False
    # moto's GET also takes an unquoted ETag here (a 304), its HEAD only a quoted one.
    if environ.get("HTTP_IF_NONE_MATCH"):
        return False
    query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return all(
        name.lower() in _PRESIGN_PARAMS or name.lower().startswith("x-amz-") for name, _ in query
    )


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _object_range(environ: dict[str, Any], headers: list[tuple[str, str]]) -> tuple[Any, int, int]:
    """The moto key the HEAD described, and the first and last byte its answer covers."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.core.request import Request
    from moto.s3.models import FakeKey, s3_backends
    from moto.s3.responses import S3Response
    from moto.s3.utils import ARCHIVE_STORAGE_CLASSES

    # The bucket and key as moto's path-style routing reads them.
    request = Request({**environ}, shallow=True)
    if S3Response.subdomain_based_buckets(request):
        raise _Declined("virtual-hosted-style request")
    _, bucket_name, *parts = unquote(request.raw_path).split("/")
    key_name = "/".join(parts)
    if not bucket_name or not key_name:
        raise _Declined("not an object")
    account = (
        os.environ.get("MOTO_ACCOUNT_ID")
        or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
        or DEFAULT_ACCOUNT_ID
    )
    backend = s3_backends[account]["aws"]
    bucket = backend.get_bucket(bucket_name)
    key = backend.get_object(bucket_name, key_name)
    if not isinstance(key, FakeKey):
        raise _Declined("no such key")
    # Where moto's GET answers other than its HEAD: a bucket policy (the HEAD is
    # checked as s3:HeadObject), CORS headers, archived objects (InvalidObjectState),
    # a version id or a checksum type only the GET adds.
    if bucket.policy or (environ.get("HTTP_ORIGIN") and bucket.cors):
        raise _Declined("policy or CORS")
    if key.storage_class in ARCHIVE_STORAGE_CLASSES:
        raise _Declined("archived")
    if key.version_id != "null" and _header(headers, "x-amz-version-id") is None:
        raise _Declined("version id")
    if key.checksum_algorithm and key.checksum_type:
        checksum = f"x-amz-checksum-{key.checksum_algorithm.lower()}"
        if _header(headers, checksum) is not None:
            raise _Declined("checksum type")
    # The HEAD must have described this very object, as a whole or one range of it.
    if _header(headers, "etag") != key.etag:
        raise _Declined("another object")
    content_range = _header(headers, "content-range")
    if content_range is None:
        first, last, size = 0, key.size - 1, key.size
    else:
        match = _CONTENT_RANGE.match(content_range)
        if match is None:
            raise _Declined(content_range)
        first, last, size = (int(group) for group in match.groups())
    if size != key.size or _header(headers, "content-length") != str(last - first + 1):
        raise _Declined("another length")
    return key, first, last


def _read(key: Any, first: int, last: int) -> Iterator[bytes]:
    position = first
    while position <= last:
        # Per chunk: a slow reader must not hold up moto's own reads and writes.
        with key.lock:
            buffer = key._value_buffer
            if buffer.closed:  # overwritten or deleted meanwhile: the client sees a short body
                return
            buffer.seek(position)
            chunk = buffer.read(min(CHUNK, last + 1 - position))
        if not chunk:
            return
        position += len(chunk)
        yield chunk


class MotoS3Server:
    """moto's server (all of its services, as `ThreadedMotoServer` runs it) on a
    thread, its object GETs streamed unless ``streaming=False``. Port 0 picks a
    free one: see `port` once started."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, streaming: bool = True) -> None:
        self.host = host
        self._port = port
        self.streaming = streaming
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return int(self._server.server_port)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        app: WSGIApp = DomainDispatcherApplication(create_backend_app)
        if self.streaming:
            app = StreamingObjectGets(app)
        self._server = make_server(
            self.host, self._port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-s3", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> MotoS3Server:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
