"""S3 clients built from settings (AWS S3 in production, a local S3 API in development)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from studio_common.settings import ServiceSettings


def s3_client(
    settings: ServiceSettings, *, public: bool = False, config: Config | None = None
) -> Any:
    """A boto3 S3 client; ``public=True`` signs for the endpoint browsers and players reach.
    ``config`` adds to (and overrides) the defaults: timeouts, retries."""
    endpoint = (
        settings.s3_public_endpoint_url
        if public and settings.s3_public_endpoint_url
        else settings.s3_endpoint_url
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id or None,
        aws_secret_access_key=settings.s3_secret_access_key or None,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if settings.s3_force_path_style else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
        ).merge(config or Config()),
    )
