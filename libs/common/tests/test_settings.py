from __future__ import annotations

import os

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from studio_common.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COMMONTEST_")

    greeting: str = "hello"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith(("STUDIO_", "COMMONTEST_")):
            monkeypatch.delenv(key)


def test_defaults() -> None:
    s = DemoSettings()
    assert s.environment == "production"
    assert s.log_level == "INFO"
    assert s.database_url.startswith("postgresql+asyncpg://")
    assert s.event_subject_root == "studio"
    assert s.event_stream == "STUDIO"
    assert s.consumer_max_deliver == 5
    assert s.jwt_role_claim == "role"
    assert s.jwt_audience is None
    assert s.jwt_authorized_parties == []
    assert s.run_outbox_relay is True
    assert s.greeting == "hello"
    assert s.service_name == "commontest"


def test_shared_prefix_applies_when_service_prefix_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_NATS_URL", "nats://shared:4222")
    monkeypatch.setenv("STUDIO_GREETING", "shared hello")
    s = DemoSettings()
    assert s.nats_url == "nats://shared:4222"
    assert s.greeting == "shared hello"


def test_service_prefix_beats_shared_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_NATS_URL", "nats://shared:4222")
    monkeypatch.setenv("COMMONTEST_NATS_URL", "nats://own:4222")
    monkeypatch.setenv("STUDIO_LOG_LEVEL", "DEBUG")
    s = DemoSettings()
    assert s.nats_url == "nats://own:4222"
    # Untouched fields still come from the shared prefix.
    assert s.log_level == "DEBUG"


def test_prefix_is_case_insensitive_and_init_kwargs_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("commontest_greeting", "lower")
    assert DemoSettings().greeting == "lower"
    assert DemoSettings(greeting="explicit").greeting == "explicit"


def test_complex_values_parse_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_JWT_AUTHORIZED_PARTIES", '["https://a.test", "https://b.test"]')
    monkeypatch.setenv("COMMONTEST_RUN_CONSUMERS", "false")
    monkeypatch.setenv("COMMONTEST_DATABASE_POOL_SIZE", "3")
    s = DemoSettings()
    assert s.jwt_authorized_parties == ["https://a.test", "https://b.test"]
    assert s.run_consumers is False
    assert s.database_pool_size == 3


@pytest.mark.parametrize(
    ("var", "value", "field"),
    [
        ("COMMONTEST_DATABASE_POOL_SIZE", "0", "database_pool_size"),
        ("STUDIO_DATABASE_POOL_SIZE", "many", "database_pool_size"),
        ("COMMONTEST_ENVIRONMENT", "staging", "environment"),
        ("COMMONTEST_EVENT_SUBJECT_ROOT", "a.b", "event_subject_root"),
        ("STUDIO_OUTBOX_POLL_INTERVAL", "0", "outbox_poll_interval"),
        ("COMMONTEST_JWT_LEEWAY_SECONDS", "3600", "jwt_leeway_seconds"),
    ],
)
def test_bad_value_is_a_validation_error(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, field: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError) as info:
        DemoSettings()
    assert [e["loc"] for e in info.value.errors()] == [(field,)]


def test_base_class_service_name() -> None:
    assert ServiceSettings().service_name == "studio"
