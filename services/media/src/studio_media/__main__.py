from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from studio_common.cli import run_service_cli
from studio_media.config import MediaSettings

SERVICE_DIR = Path(__file__).resolve().parents[2]


async def _cleanup_uploads(_: argparse.Namespace) -> None:
    from studio_common.db import Database
    from studio_media.service.cleanup import cleanup_uploads
    from studio_media.storage import MediaStorage

    settings = MediaSettings()
    database = Database.connect(settings.database_url, pool_size=1)
    try:
        report = await cleanup_uploads(
            database,
            MediaStorage(settings),
            max_age=timedelta(hours=settings.upload_max_age_hours),
        )
    finally:
        await database.dispose()
    print(
        f"media: aborted {report.aborted} multipart uploads, expired {report.expired} presigned "
        f"uploads, aborted {report.orphans_aborted} orphaned S3 uploads "
        f"(older than {settings.upload_max_age_hours} h)"
    )


def main() -> None:
    run_service_cli(
        service="media",
        app_factory="studio_media.main:create_app",
        settings_cls=MediaSettings,
        service_dir=SERVICE_DIR,
        default_port=8103,
        extra={
            "cleanup-uploads": (
                "abort multipart uploads older than MEDIA_UPLOAD_MAX_AGE_HOURS",
                _cleanup_uploads,
            )
        },
    )


if __name__ == "__main__":
    main()
