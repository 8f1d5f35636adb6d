"""The identity schema. Only this service reads or writes it."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from studio_common.db import service_metadata
from studio_common.outbox import messaging_tables

SCHEMA = "identity"
metadata = service_metadata(SCHEMA)
messaging = messaging_tables(metadata)


class Base(DeclarativeBase):
    metadata = metadata
