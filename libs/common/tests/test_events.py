from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from studio_common.events import (
    Envelope,
    EpisodeUploadedV1,
    TranscodeProgressV1,
    UnknownEventError,
    dead_letter_subject,
    event,
    payload_class,
    registered_events,
    subject_for,
)


def test_catalog_types_are_three_part_and_unique() -> None:
    events = registered_events()
    assert ("catalog.episode.uploaded", 1) in events
    for (event_type, version), cls in events.items():
        assert len(event_type.split(".")) == 3
        assert cls.event_type == event_type
        assert cls.event_version == version
        assert payload_class(event_type, version) is cls


def test_envelope_round_trip_in_camel_case() -> None:
    payload = EpisodeUploadedV1(
        episode_id=uuid.uuid4(),
        title_id=uuid.uuid4(),
        title_slug="frieren",
        season_id=uuid.uuid4(),
        season_number=1,
        episode_number=3,
        source_key="sources/x.mkv",
    )
    env = Envelope.wrap(payload)
    wire = env.model_dump(mode="json", by_alias=True)
    assert wire["type"] == "catalog.episode.uploaded"
    assert wire["version"] == 1
    assert "occurredAt" in wire
    assert wire["data"]["titleSlug"] == "frieren"
    back = Envelope.model_validate(wire)
    assert back == env
    assert back.payload() == payload


def test_unknown_event_and_invalid_payload() -> None:
    env = Envelope(type="nobody.knows.this", version=1, data={})
    with pytest.raises(UnknownEventError):
        env.payload()
    bad = Envelope(
        type="transcoder.transcode.progress",
        version=1,
        data={"episodeId": str(uuid.uuid4()), "jobId": str(uuid.uuid4()), "percent": 140},
    )
    with pytest.raises(ValidationError):
        bad.payload()
    assert TranscodeProgressV1.model_config.get("frozen") is True


def test_event_decorator_validates() -> None:
    with pytest.raises(ValueError, match=r"<service>\.<entity>\.<verb>"):
        event("only.two")
    with pytest.raises(ValueError, match="registered twice"):
        event("catalog.title.created")(type("Dup", (), {}))


def test_subjects() -> None:
    assert subject_for("studio", "catalog.title.created") == "studio.catalog.title.created"
    assert (
        dead_letter_subject("studio", "media-catalog-title-created", "catalog.title.created")
        == "studio.dlq.media-catalog-title-created.catalog.title.created"
    )
