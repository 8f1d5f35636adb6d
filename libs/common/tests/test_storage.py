"""The storage conventions services share."""

from __future__ import annotations

import pytest

from studio_common.storage import sidecar_subtitles_prefix


@pytest.mark.parametrize(
    ("source", "prefix"),
    [
        ("uploads/ab12/episode.mkv", "subtitles/ab12/"),
        ("uploads/show/s1/e1/source.mp4", "subtitles/show/s1/e1/"),
        ("uploads/episode.mkv", "subtitles/"),
        ("episode.mkv", "subtitles/"),
    ],
)
def test_subtitles_for_a_source_live_under_the_subtitles_prefix(source: str, prefix: str) -> None:
    assert sidecar_subtitles_prefix(source) == prefix
