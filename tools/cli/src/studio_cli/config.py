"""Where the CLI keeps the sign-in and upload state.

- credentials: `<user config dir>/studio-anime/credentials.json`, mode 0600 in a
  0700 directory (`STUDIO_CLI_CONFIG_DIR` moves it);
- resumable uploads: `<user state dir>/studio-anime/uploads/*.json`
  (`STUDIO_CLI_STATE_DIR` moves it).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import platformdirs

APP_NAME = "studio-anime"
DEFAULT_API_URL = "http://127.0.0.1:8080"


def config_dir() -> Path:
    override = os.environ.get("STUDIO_CLI_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME))


def state_dir() -> Path:
    override = os.environ.get("STUDIO_CLI_STATE_DIR")
    return Path(override) if override else Path(platformdirs.user_state_dir(APP_NAME))


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):  # not ours to change (e.g. a shared parent)
        path.chmod(0o700)
    return path


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically replace `path` with `data`, readable by the owner only (0600)
    from the moment it exists."""
    _private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class Credentials:
    api: str
    token: str
    # "dev" (from POST /api/dev/token) or "token" (given, e.g. a Clerk session token).
    kind: str
    email: str | None = None
    role: str | None = None
    expires_at: str | None = None


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def load_credentials() -> Credentials | None:
    data = read_json(credentials_path())
    if not data or not isinstance(data.get("token"), str) or not isinstance(data.get("api"), str):
        return None
    fields = Credentials.__dataclass_fields__
    return Credentials(**{k: v for k, v in data.items() if k in fields})


def save_credentials(creds: Credentials) -> Path:
    path = credentials_path()
    write_private_json(path, asdict(creds))
    return path


def forget_credentials() -> bool:
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True


def resolve_api_url(option: str | None, creds: Credentials | None) -> str:
    """`--api`, else STUDIO_API_URL, else where the saved sign-in was made, else the default."""
    url = option or os.environ.get("STUDIO_API_URL") or (creds.api if creds else None)
    return (url or DEFAULT_API_URL).rstrip("/")
