"""An attempt's temp folder, and the folders dead workers left behind."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

WORKDIR_PREFIX = "studio-transcode-"


def new_workdir(work_dir: str | None, job_id: uuid.UUID) -> Path:
    """Named after this process, so a later worker knows whether its owner lives."""
    prefix = f"{WORKDIR_PREFIX}{os.getpid()}-{job_id.hex[:8]}-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=work_dir or None))


def remove_orphaned_workdirs(work_dir: str | None) -> None:
    """Temp folders of workers that died (kill -9 cannot clean up after itself)."""
    root = Path(work_dir or tempfile.gettempdir())
    for path in root.glob(f"{WORKDIR_PREFIX}*"):
        try:
            pid = int(path.name.removeprefix(WORKDIR_PREFIX).split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
