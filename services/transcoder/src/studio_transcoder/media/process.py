"""Child processes (ffmpeg, ffprobe) that never outlive the worker.

A worker killed with SIGKILL cannot stop its children; on Linux each child asks
the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), so a crashed
worker leaves no ffmpeg behind still writing into a temp folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import re
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger("studio.transcoder.ffmpeg")

_PR_SET_PDEATHSIG = 1
_SIGNED_QUERY = re.compile(r"\?(?:X-Amz-|AWSAccessKeyId=)[^\s'\"]*")
# Noise ffmpeg prints for JPEG outputs (full-range yuvj formats); not a problem.
_NOISE = ("deprecated pixel format used", "frame size not set")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _preexec() -> Callable[[], None] | None:
    return _die_with_parent if sys.platform.startswith("linux") else None


def redact(line: str, redactions: dict[str, str]) -> str:
    """Hides presigned URLs: they are credentials for as long as they live."""
    for secret, label in redactions.items():
        line = line.replace(secret, label)
    return _SIGNED_QUERY.sub("?<signed>", line)


@dataclass(frozen=True, slots=True)
class ToolResult:
    returncode: int
    stdout: bytes
    stderr: str


async def run_tool(
    argv: Sequence[str], *, time_limit: float, redactions: dict[str, str] | None = None
) -> ToolResult:
    """Runs a short tool (ffprobe, a decode check) to completion."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_preexec(),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), time_limit)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    text = redact(err.decode("utf-8", "replace"), redactions or {})
    return ToolResult(proc.returncode if proc.returncode is not None else -1, out, text)


ProgressCallback = Callable[[float], Awaitable[None]]


class FfmpegRun:
    """One long ffmpeg run: ``-progress pipe:1`` on stdout, a log tail from stderr."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        on_progress: ProgressCallback,
        redactions: dict[str, str] | None = None,
        tail_lines: int = 60,
    ) -> None:
        self.argv = list(argv)
        self.on_progress = on_progress
        self.redactions = redactions or {}
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.proc: asyncio.subprocess.Process | None = None
        self.paused = False
        self.niced = False
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_preexec(),
        )
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read_progress(self.proc.stdout)),
            asyncio.create_task(self._read_log(self.proc.stderr)),
        ]

    async def _read_progress(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            key, _, value = raw.decode("ascii", "replace").strip().partition("=")
            # out_time_us is the furthest timestamp written to any output.
            if key == "out_time_us" and value.lstrip("-").isdigit():
                try:
                    await self.on_progress(max(0, int(value)) / 1_000_000)
                except Exception:
                    # Keep draining the pipe whatever happens to a report:
                    # a full pipe would stall ffmpeg.
                    log.warning("a progress report failed", exc_info=True)

    async def _read_log(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if line and not any(n in line for n in _NOISE):
                self.tail.append(redact(line, self.redactions))

    async def wait(self) -> int:
        assert self.proc is not None
        code = await self.proc.wait()
        # The pipes close when the process exits; let the readers drain them.
        await asyncio.gather(*self._readers, return_exceptions=True)
        return code

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, grace: float = 3.0) -> None:
        """SIGTERM (ffmpeg finishes the current segment and exits), then SIGKILL."""
        if self.proc is None or self.proc.returncode is not None:
            return
        # A stopped process would not act on SIGTERM.
        self.resume()
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    def pause(self) -> None:
        """Stops the run where it is (SIGSTOP) until :meth:`resume`."""
        if self.proc is not None and self.proc.returncode is None and not self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def renice(self, niceness: int) -> None:
        """From now on the run yields the CPU: ``niceness`` above the worker's
        own, on every thread of it (a thread's nice value is its own on Linux)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.niced = True
        pid = self.proc.pid
        target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness)
        try:
            threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            threads = [pid]
        for tid in threads:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.setpriority(os.PRIO_PROCESS, tid, target)

    def log_tail(self) -> str:
        return "\n".join(self.tail)
