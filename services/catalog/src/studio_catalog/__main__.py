from __future__ import annotations

import argparse
from pathlib import Path

from studio_catalog.config import CatalogSettings
from studio_common.cli import run_service_cli

SERVICE_DIR = Path(__file__).resolve().parents[2]


async def _seed(_: argparse.Namespace) -> None:
    from studio_catalog.seed import seed_demo_titles

    created = await seed_demo_titles(CatalogSettings())
    print(f"catalog: seeded {created} demo titles")


def main() -> None:
    run_service_cli(
        service="catalog",
        app_factory="studio_catalog.main:create_app",
        settings_cls=CatalogSettings,
        service_dir=SERVICE_DIR,
        default_port=8101,
        extra={"seed": ("insert the demo titles (idempotent)", _seed)},
    )


if __name__ == "__main__":
    main()
