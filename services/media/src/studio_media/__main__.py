from __future__ import annotations

from pathlib import Path

from studio_common.cli import run_service_cli
from studio_media.config import MediaSettings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def main() -> None:
    run_service_cli(
        service="media",
        app_factory="studio_media.main:create_app",
        settings_cls=MediaSettings,
        service_dir=SERVICE_DIR,
        default_port=8103,
    )


if __name__ == "__main__":
    main()
