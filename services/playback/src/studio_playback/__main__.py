from __future__ import annotations

from pathlib import Path

from studio_common.cli import run_service_cli
from studio_playback.config import PlaybackSettings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def main() -> None:
    run_service_cli(
        service="playback",
        app_factory="studio_playback.main:create_app",
        settings_cls=PlaybackSettings,
        service_dir=SERVICE_DIR,
        default_port=8105,
    )


if __name__ == "__main__":
    main()
