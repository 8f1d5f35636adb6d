from __future__ import annotations

from pathlib import Path

from studio_common.cli import run_service_cli
from studio_identity.config import IdentitySettings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def main() -> None:
    run_service_cli(
        service="identity",
        app_factory="studio_identity.main:create_app",
        settings_cls=IdentitySettings,
        service_dir=SERVICE_DIR,
        default_port=8102,
    )


if __name__ == "__main__":
    main()
