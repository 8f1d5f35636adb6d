"""Runs the stack's processes and starts again any that exits on its own.

honcho's `Manager` stops every process as soon as one exits, so one crash (or
one `kill -9` to try a fault) took the whole local stack down. `Supervisor` is
the same manager with another loop: a process that exits while the stack is
not stopping is started again in place, after a delay that doubles with each
quick failure (1 s, 2 s, 4 s ... up to 30 s) and resets once it has stayed up
for a minute. Every other process keeps running. Ctrl-C or SIGTERM (what
`studio-dev down` sends) still stops them all.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from honcho.manager import KILL_WAIT, SIGNALS, Manager
from honcho.printer import Printer

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 30.0
# Up this long, a process is healthy again: its next failure waits INITIAL_BACKOFF.
STABLE_AFTER = 60.0


def restart_delay(
    failures: int, initial: float = INITIAL_BACKOFF, cap: float = MAX_BACKOFF
) -> float:
    """The wait before the restart that follows `failures` quick exits in a row (>= 1)."""
    return min(cap, initial * float(2 ** max(0, failures - 1)))


class Supervisor(Manager):  # type: ignore[misc]  # honcho has no type hints
    def __init__(
        self,
        printer: Printer | None = None,
        *,
        initial_backoff: float = INITIAL_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        stable_after: float = STABLE_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(printer)
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self._now = clock
        self._started_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._restart_due: dict[str, float] = {}
        self.restarts: dict[str, int] = {}

    def loop(self) -> None:
        def _terminate(signum: int, frame: FrameType | None) -> None:
            self._system_print(f"{SIGNALS[signum]['name']} received\n")
            self.returncode = SIGNALS[signum]["rc"]
            self.terminate()

        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGINT, _terminate)
        for name in self._processes:
            self._start_one(name)

        kill_at: float | None = None
        while True:
            with contextlib.suppress(queue.Empty):
                self._handle(self.events.get(timeout=0.1))
            now = self._now()
            if not self._terminating:
                for name, due in list(self._restart_due.items()):
                    if now >= due:
                        del self._restart_due[name]
                        self._start_one(name)
                continue
            if self._all_stopped():
                break
            if kill_at is None:
                kill_at = now + KILL_WAIT
            elif now > kill_at:
                self.kill()
                kill_at = now + KILL_WAIT

    def _handle(self, msg: Any) -> None:
        if msg.type == "line":
            self._printer.write(msg)
            return
        p = self._processes[msg.name]
        if msg.type == "start":
            p["pid"] = msg.data["pid"]
            self._started_at[msg.name] = self._now()
            self._system_print(f"{msg.name} started (pid={p['pid']})\n")
            if self._terminating:  # started while the stack was being stopped
                self._procmgr.terminate(p["pid"])
        elif msg.type == "stop":
            p["returncode"] = msg.data["returncode"]
            if self._terminating:
                self._system_print(f"{msg.name} stopped (rc={p['returncode']})\n")
            else:
                self._schedule_restart(msg.name, p["returncode"])

    def _schedule_restart(self, name: str, returncode: int) -> None:
        up_for = self._now() - self._started_at.get(name, self._now())
        failures = 1 if up_for >= self.stable_after else self._failures.get(name, 0) + 1
        self._failures[name] = failures
        delay = restart_delay(failures, self.initial_backoff, self.max_backoff)
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self._system_print(
            f"{name} exited (rc={returncode}) after {up_for:.1f} s; restarting it in "
            f"{delay:g} s (restart {self.restarts[name]}); the rest of the stack keeps running\n"
        )
        self._restart_due[name] = self._now() + delay

    def _start_one(self, name: str) -> None:
        p = self._processes[name]
        p.pop("pid", None)
        p.pop("returncode", None)
        p["process"] = multiprocessing.Process(
            name=name, target=p["obj"].run, args=(self.events, True)
        )
        p["process"].start()

    def _all_stopped(self) -> bool:
        return all(
            "returncode" in p or not p["process"].is_alive() for p in self._processes.values()
        )

    def _killall(self, force: bool = False) -> None:
        for name, p in self._processes.items():
            # A process between its exit and its restart has nothing to stop; one
            # whose start is not reported yet is stopped when it is (`_handle`).
            if "returncode" in p or "pid" not in p:
                continue
            signame = "SIGKILL" if force else "SIGTERM"
            self._system_print(f"sending {signame} to {name} (pid {p['pid']})\n")
            if force:
                self._procmgr.kill(p["pid"])
            else:
                self._procmgr.terminate(p["pid"])
