"""The local stack's process runner: a process that exits is started again in
place, with backoff, while the others keep running; SIGTERM stops them all."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from studio_devstack.supervisor import restart_delay

RUNNER = """
import sys
from honcho.printer import Printer
from studio_devstack.supervisor import Supervisor

manager = Supervisor(Printer(sys.stdout), initial_backoff=0.2, max_backoff=1.0)
state = sys.argv[1]
# Exits at once twice, then stays up.
manager.add_process(
    "flaky",
    f"n=$(cat {state}/count 2>/dev/null || echo 0); echo $((n+1)) > {state}/count; "
    f"[ $n -ge 2 ] && exec sleep 120; exit 3",
)
manager.add_process("steady", f"echo $$ >> {state}/steady; exec sleep 120")
manager.loop()
sys.exit(manager.returncode or 0)
"""


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [restart_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def _wait_for(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def test_a_crashed_process_is_restarted_and_the_rest_keeps_running(tmp_path: Path) -> None:
    script = tmp_path / "runner.py"
    script.write_text(textwrap.dedent(RUNNER))
    log = tmp_path / "out.log"
    with log.open("wb") as sink:
        runner = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)], stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        count = tmp_path / "count"
        assert _wait_for(lambda: count.exists() and count.read_text().strip() == "3"), (
            log.read_text()
        )
        time.sleep(0.5)
        steady = (tmp_path / "steady").read_text().split()
        assert len(steady) == 1, "the other process was never stopped nor restarted"
        assert _alive(int(steady[0]))
        assert runner.poll() is None, "the stack is still up"
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=20) == 143
        assert _wait_for(lambda: not _alive(int(steady[0])), 10), "SIGTERM stops every process"
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    out = log.read_text()
    assert out.count("flaky exited (rc=3)") == 2, out
    assert "restarting it in 0.2 s (restart 1)" in out
    assert "restarting it in 0.4 s (restart 2)" in out, "the second quick exit waits twice as long"
    assert "steady exited" not in out
