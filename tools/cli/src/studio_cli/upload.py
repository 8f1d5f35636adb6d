"""`studio upload`: a resumable multipart upload, then the episode and its transcode.

The upload's state (media's upload id, the object key, the parts sent and their
ETags) is written after every part to `<state dir>/uploads/<id>.json`, where the
id hashes the API URL, the file's absolute path, size and mtime and the target
episode. Ctrl-C (or a lost connection) leaves it behind; the next run with the
same file and target asks media which parts storage holds
(`GET /api/admin/uploads/{id}`) and sends only the missing ones. A file that
changed (size or mtime) is a new upload.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from studio_cli.api import Api
from studio_cli.config import read_json, write_private_json
from studio_cli.errors import ApiError, CliError, Exit

ACCEPTED_TYPES_PATH = "/api/admin/uploads/accepted-types"
# Media's file-name characters; others become "_" (the language tag in
# "<name>.<lang>.srt" survives).
_UNSAFE = re.compile(r"[^A-Za-z0-9!_.*'()-]")
MAX_FILENAME = 200
CHUNK = 256 * 1024
# A part is sent again, with jittered backoff up to PART_BACKOFF_CAP, for this
# long: storage or the network may be away for a minute and the upload goes on.
PART_RETRY_SECONDS = 90.0
PART_BACKOFF_CAP = 10.0
# Part URLs are asked for in batches so they are fresh when used.
URL_BATCH = 16
# Test hook: stop as if Ctrl-C was pressed once this many parts were sent in this run.
ABORT_AFTER_PARTS_ENV = "STUDIO_CLI_TEST_ABORT_AFTER_PARTS"
STATE_VERSION = 1


def format_parts(numbers: list[int]) -> str:
    """[1, 2, 3, 5] → "1-3, 5"."""
    out: list[str] = []
    for n in sorted(numbers):
        if out and out[-1].split("-")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out) or "none"


@dataclass(frozen=True)
class Accepted:
    """What media accepts per kind (source, subtitle, ...), read from media itself:
    kind → extension (".mp4") → the content type to declare."""

    types: dict[str, dict[str, str]]

    @classmethod
    def fetch(cls, api: Api) -> Accepted:
        answer = api.get(ACCEPTED_TYPES_PATH)
        return cls(
            {
                str(k["kind"]): {
                    f".{e['extension']}": str(e["contentTypes"][0])
                    for e in k["extensions"]
                    if e.get("contentTypes")
                }
                for k in answer["kinds"]
            }
        )

    def content_type(self, kind: str, file: Path, what: str) -> str:
        known = self.types.get(kind, {})
        content_type = known.get(file.suffix.lower())
        if content_type is None:
            raise CliError(
                f"{file.name}: not {what} media accepts",
                f"Accepted: {', '.join(sorted(known)) or 'nothing'}",
                Exit.USAGE,
            )
        return content_type


def upload_filename(file: Path) -> str:
    """The file's name as media accepts it: unsafe characters become '_'."""
    name = _UNSAFE.sub("_", file.name)
    stem, _, ext = name.rpartition(".")
    return f"{stem[: MAX_FILENAME - len(ext) - 1]}.{ext}"


@dataclass(frozen=True)
class Target:
    title: str
    season: int
    episode: int


@dataclass
class UploadState:
    """What survives an interruption. Saved after every part."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_file(cls, root: Path, api: str, file: Path, target: Target) -> UploadState:
        stat = file.stat()
        ident = "|".join(
            [
                api,
                str(file.resolve()),
                str(stat.st_size),
                str(stat.st_mtime_ns),
                target.title,
                str(target.season),
                str(target.episode),
            ]
        )
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        path = root / "uploads" / f"{digest}.json"
        data = read_json(path) or {}
        if data.get("version") != STATE_VERSION:
            data = {}
        data.update(
            {
                "version": STATE_VERSION,
                "api": api,
                "file": str(file.resolve()),
                "size": stat.st_size,
                "mtimeNs": stat.st_mtime_ns,
                "title": target.title,
                "season": target.season,
                "episode": target.episode,
            }
        )
        data.setdefault("parts", {})
        return cls(path, data)

    def save(self) -> None:
        write_private_json(self.path, self.data)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    @property
    def parts(self) -> dict[str, str]:
        parts: dict[str, str] = self.data["parts"]
        return parts


def upload_attached(
    api: Api, file: Path, kind: str, content_type: str, attach_to: str
) -> dict[str, Any]:
    """One small file (a subtitle) attached to a source upload: presigned PUT, then verify."""
    presigned = api.post(
        "/api/admin/presign",
        {
            "kind": kind,
            "filename": upload_filename(file),
            "contentType": content_type,
            "size": file.stat().st_size,
            "attachTo": attach_to,
        },
    )
    try:
        response = httpx.put(
            presigned["url"], content=file.read_bytes(), headers=presigned["headers"], timeout=60
        )
    except httpx.HTTPError as exc:
        raise CliError(f"Could not upload {file.name}", str(exc), Exit.UNAVAILABLE) from exc
    if not response.is_success:
        raise CliError(
            f"Storage refused {file.name} (HTTP {response.status_code})",
            response.text[:300],
            Exit.UNAVAILABLE,
        )
    verified: dict[str, Any] = api.post(
        "/api/admin/uploads/verify", {"uploadId": presigned["uploadId"]}
    )
    return verified


class _Cancelled(Exception):
    pass


@dataclass
class UploadOutcome:
    upload_id: str
    key: str
    already_stored: list[int]
    sent: list[int]
    bytes_sent: int


def retry_delay(attempt: int, cap: float = PART_BACKOFF_CAP) -> float:
    """Before attempt `attempt + 1`: 1 s, 2 s, 4 s ... up to `cap`, each with up
    to a quarter taken off at random so parallel parts do not retry in step."""
    base = min(cap, 0.5 * 2.0**attempt)
    return base * (1 - random.random() / 4)  # noqa: S311 - jitter, not a secret


class WireProgress:
    """The bar of bytes put on the wire. It never runs backwards: bytes of a part
    that has to be sent again are added to the total rather than taken off what
    was done, so the transfer rate rich shows (a difference of `completed`
    over time) stays the true, positive rate, and the bar still ends full."""

    def __init__(self, progress: Progress, task: TaskID, total: int) -> None:
        self.progress = progress
        self.task = task
        self.total = total

    def advance(self, n: int) -> None:
        if n >= 0:
            self.progress.advance(self.task, n)
        else:
            self.total -= n
            self.progress.update(self.task, total=self.total)


class MultipartUpload:
    """Sends the missing parts of one file, several at a time, with a progress bar."""

    def __init__(
        self,
        api: Api,
        console: Console,
        state: UploadState,
        file: Path,
        content_type: str,
        *,
        parallel: int = 3,
        abort_after_parts: int | None = None,
    ) -> None:
        self.api = api
        self.console = console
        self.state = state
        self.file = file
        self.filename = upload_filename(file)
        self.content_type = content_type
        self.parallel = max(1, parallel)
        self.abort_after_parts = abort_after_parts
        self.size = file.stat().st_size
        self.cancel = threading.Event()
        self.lock = threading.Lock()
        self.part_retry_seconds = PART_RETRY_SECONDS
        self.part_backoff_cap = PART_BACKOFF_CAP
        # S3 is reached directly with presigned URLs: no bearer token goes there.
        self.s3 = httpx.Client(timeout=httpx.Timeout(120.0, connect=10.0))

    # --- media's view -------------------------------------------------------

    def _open_or_resume(self) -> tuple[dict[str, Any], list[int], dict[int, str]]:
        """The upload (resumed when the state names one that is still open), the
        missing part numbers, and the ETags of the parts storage holds."""
        upload_id = self.state.data.get("uploadId")
        if upload_id:
            try:
                progress = self.api.get(f"/api/admin/uploads/{upload_id}")
            except ApiError as exc:
                if exc.status not in (403, 404):
                    raise
                progress = None
            if progress and progress.get("key") == self.state.data.get("key"):
                status = progress.get("status")
                if status == "uploading":
                    stored = {int(p["partNumber"]): str(p["etag"]) for p in progress["parts"]}
                    return progress, [int(n) for n in progress["missingParts"]], stored
                if status in ("completed", "verified"):
                    return progress, [], {}
            # Aborted, rejected, expired or someone else's: start over.
            self.console.print(
                f"[yellow]The saved upload {upload_id} cannot be resumed "
                f"({(progress or {}).get('status', 'gone')}); starting a new one.[/]"
            )
            self.state.data.pop("uploadId", None)
            self.state.data["parts"] = {}
        # Media names the object (uploads/<uploadId>/<file name>); we say what it is.
        upload = self.api.post(
            "/api/admin/uploads",
            {
                "kind": "source",
                "filename": self.filename,
                "contentType": self.content_type,
                "size": self.size,
            },
        )
        self.state.data.update(
            {
                "uploadId": upload["uploadId"],
                "key": upload["key"],
                "partSize": upload["partSize"],
                "partCount": upload["partCount"],
                "parts": {},
            }
        )
        self.state.save()
        return upload, list(range(1, int(upload["partCount"]) + 1)), {}

    # --- parts --------------------------------------------------------------

    def _part_range(self, number: int, part_size: int) -> tuple[int, int]:
        start = (number - 1) * part_size
        return start, min(part_size, self.size - start)

    def _body(self, start: int, length: int, advance: Callable[[int], None]) -> Iterator[bytes]:
        with self.file.open("rb") as f:
            f.seek(start)
            left = length
            while left > 0:
                if self.cancel.is_set():
                    raise _Cancelled
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise CliError(
                        "The file got shorter while it was being uploaded",
                        str(self.file),
                        Exit.REJECTED,
                    )
                left -= len(chunk)
                advance(len(chunk))
                yield chunk

    def _send_part(
        self,
        number: int,
        url: str,
        headers: dict[str, str],
        part_size: int,
        advance: Callable[[int], None],
    ) -> str:
        start, length = self._part_range(number, part_size)
        last_error: Exception | None = None
        deadline = time.monotonic() + self.part_retry_seconds
        attempt = 0
        while True:
            attempt += 1
            sent = 0

            def counted(n: int) -> None:
                nonlocal sent
                sent += n
                advance(n)

            try:
                response = self.s3.put(
                    url,
                    content=self._body(start, length, counted),
                    headers={**headers, "Content-Length": str(length)},
                )
                if response.is_success:
                    etag = str(response.headers.get("ETag") or "")
                    if not etag:
                        raise CliError("Storage accepted a part but sent no ETag", f"part {number}")
                    return etag
                last_error = CliError(
                    f"Storage refused part {number} (HTTP {response.status_code})",
                    response.text[:300],
                    Exit.UNAVAILABLE,
                )
                if response.status_code < 500 and response.status_code != 429:
                    advance(-sent)
                    raise last_error
            except httpx.HTTPError as exc:
                last_error = exc
            advance(-sent)
            delay = retry_delay(attempt, self.part_backoff_cap)
            if time.monotonic() + delay > deadline:
                break
            # Ctrl-C (or another part's failure) ends the wait at once.
            if self.cancel.wait(delay):
                raise _Cancelled
        raise CliError(
            f"Part {number} could not be sent in {self.part_retry_seconds:g} s "
            f"({attempt} attempts)",
            str(last_error),
            Exit.UNAVAILABLE,
        )

    def run(self) -> UploadOutcome:
        upload, missing, stored = self._open_or_resume()
        upload_id = str(upload["uploadId"])
        part_size = int(upload["partSize"])
        part_count = int(upload["partCount"])
        if upload.get("status") in ("completed", "verified"):
            self.console.print(f"Upload {upload_id} was already assembled in storage.")
            return UploadOutcome(
                upload_id, str(upload["key"]), list(range(1, part_count + 1)), [], 0
            )
        # Storage is the truth: keep the ETags of exactly the parts it holds.
        self.state.data["parts"] = {str(n): etag for n, etag in stored.items()}
        self.state.save()
        already = sorted(stored)
        if already:
            self.console.print(
                f"Resuming upload {upload_id}: parts {format_parts(already)} of {part_count} "
                f"already stored; sending {format_parts(missing)}."
            )
        sent: list[int] = []
        bytes_sent = 0
        if missing:
            done_bytes = self.size - sum(self._part_range(n, part_size)[1] for n in missing)
            bytes_sent = self._send_missing(upload_id, missing, part_size, done_bytes, sent)
        return UploadOutcome(upload_id, str(upload["key"]), already, sent, bytes_sent)

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]upload   [/]"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )

    def _send_missing(
        self, upload_id: str, missing: list[int], part_size: int, done_bytes: int, sent: list[int]
    ) -> int:
        """Sends `missing` (appending each stored part to `sent`); returns the bytes sent."""
        queue = list(missing)
        urls: dict[int, tuple[str, dict[str, str]]] = {}
        totals = {"bytes": 0}

        def url_for(number: int) -> tuple[str, dict[str, str]]:
            if number not in urls:
                batch = [number, *(n for n in queue if n not in urls)][:URL_BATCH]
                answer = self.api.post(
                    f"/api/admin/uploads/{upload_id}/parts", {"partNumbers": batch}
                )
                for p in answer["parts"]:
                    urls[int(p["partNumber"])] = (str(p["url"]), dict(p["headers"]))
            return urls.pop(number)

        with self._progress() as progress:
            task = progress.add_task("upload", total=self.size, completed=done_bytes)
            bar = WireProgress(progress, task, self.size)

            def advance(n: int) -> None:
                with self.lock:
                    totals["bytes"] += n
                    bar.advance(n)

            pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="part")
            running: dict[Future[str], int] = {}
            try:
                while queue or running:
                    while queue and len(running) < self.parallel:
                        number = queue.pop(0)
                        url, headers = url_for(number)
                        future = pool.submit(
                            self._send_part, number, url, headers, part_size, advance
                        )
                        running[future] = number
                    done, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in done:
                        number = running.pop(future)
                        self.state.parts[str(number)] = future.result()
                        self.state.save()
                        sent.append(number)
                        if (
                            self.abort_after_parts is not None
                            and len(sent) >= self.abort_after_parts
                        ):
                            raise KeyboardInterrupt
            except BaseException:
                self.cancel.set()
                pool.shutdown(wait=True, cancel_futures=True)
                # A part that finished while stopping is stored: keep its ETag.
                for future, number in running.items():
                    if future.done() and not future.cancelled() and future.exception() is None:
                        self.state.parts[str(number)] = future.result()
                        sent.append(number)
                self.state.save()
                raise
            pool.shutdown(wait=True)
        return totals["bytes"]

    def complete(self, upload_id: str) -> dict[str, Any]:
        status = None
        try:
            status = self.api.get(f"/api/admin/uploads/{upload_id}").get("status")
        except ApiError:
            status = None
        if status in ("completed", "verified"):
            result: dict[str, Any] = self.api.post(
                "/api/admin/uploads/verify", {"uploadId": upload_id}
            )
            return result
        parts = [
            {"partNumber": int(n), "etag": etag}
            for n, etag in sorted(self.state.parts.items(), key=lambda kv: int(kv[0]))
        ]
        try:
            result = self.api.post(f"/api/admin/uploads/{upload_id}/complete", {"parts": parts})
        except ApiError as exc:
            if exc.slug != "upload-parts-mismatch":
                raise
            # Our ETags disagree with storage (e.g. the state file was edited): use storage's.
            result = self.api.post(f"/api/admin/uploads/{upload_id}/complete", {})
        return result

    def close(self) -> None:
        self.s3.close()


def abort_after_parts_from_env() -> int | None:
    raw = os.environ.get(ABORT_AFTER_PARTS_ENV, "").strip()
    return int(raw) if raw.isdigit() else None
