from __future__ import annotations

from pathlib import Path

from studio_common.cli import run_service_cli
from studio_transcoder.config import TranscoderSettings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def main() -> None:
    run_service_cli(
        service="transcoder",
        app_factory="studio_transcoder.main:create_app",
        settings_cls=TranscoderSettings,
        service_dir=SERVICE_DIR,
        default_port=8104,
    )


if __name__ == "__main__":
    main()
