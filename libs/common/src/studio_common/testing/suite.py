"""Fixtures a service's test suite imports into its conftest to run on a
JetStream namespace of its own::

    from studio_common.testing.suite import own_event_namespace, own_service_settings  # noqa: F401

Other suites' test events then never reach its consumers.
"""

from __future__ import annotations

from typing import Any

import pytest

from studio_common.testing.plugin import EventNamespace, EventNamespaces

__all__ = ["own_event_namespace", "own_service_settings"]


@pytest.fixture(scope="session", name="event_namespace")
def own_event_namespace(event_namespaces: EventNamespaces) -> EventNamespace:
    """This suite's own stream: other suites' test events never reach its consumers."""
    return event_namespaces.new()


@pytest.fixture(scope="session", name="service_settings")
def own_service_settings(
    service_settings: dict[str, Any], event_namespace: EventNamespace
) -> dict[str, Any]:
    return {**service_settings, **EventNamespaces.settings(event_namespace)}
