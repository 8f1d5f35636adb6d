from __future__ import annotations

import argparse
from pathlib import Path

from studio_common.cli import run_service_cli
from studio_transcoder.config import TranscoderSettings

SERVICE_DIR = Path(__file__).resolve().parents[2]


async def _worker(_: argparse.Namespace) -> None:
    from studio_transcoder.worker import run_worker

    await run_worker(TranscoderSettings())


def main() -> None:
    run_service_cli(
        service="transcoder",
        app_factory="studio_transcoder.main:create_app",
        settings_cls=TranscoderSettings,
        service_dir=SERVICE_DIR,
        default_port=8104,
        extra={"worker": ("run the transcode worker (pulls catalog.episode.uploaded)", _worker)},
    )


if __name__ == "__main__":
    main()
