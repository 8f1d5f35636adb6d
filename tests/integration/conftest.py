"""Fixtures shared by the cross-service tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from studio_common.testing.infra import scratch_database


@pytest.fixture
async def own_database(pg_admin_url: str) -> AsyncIterator[str]:
    """A database of one test: identity or catalog apps other tests left running
    share the session database's outbox tables, and their relays would publish
    this test's events on their own streams."""
    async with scratch_database(pg_admin_url, "studio_own") as url:
        yield url
