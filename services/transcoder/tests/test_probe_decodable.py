"""The probe and the first-frame decode, run side by side on real files."""

from __future__ import annotations

import pytest

from studio_transcoder.failures import PermanentFailure
from studio_transcoder.media.probe import probe_decodable


async def check(path: str):
    return await probe_decodable("ffprobe", "ffmpeg", path, label="source", redactions={})


async def test_a_video_that_decodes_is_probed(media):
    info = await check(str(media.video("plain.mp4", size="320x240")))
    assert (info.video.index, info.video.width, info.video.height) == (0, 320, 240)


async def test_a_stream_ffprobe_names_but_nothing_decodes_fails_for_good(media, tmp_path):
    whole = media.make(
        "faststart.mp4",
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=24:duration=2"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-movflags", "+faststart"),
    )
    data = whole.read_bytes()
    # The index (moov, first with +faststart) is whole; the frames after it are not.
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: data.index(b"mdat") + 200])
    with pytest.raises(PermanentFailure) as failed:
        await check(str(cut))
    assert failed.value.code == "undecodable"
    assert "(h264) could not be decoded" in failed.value.reason


async def test_a_file_that_is_no_video_fails_on_the_probe(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 1000)
    with pytest.raises(PermanentFailure) as failed:
        await check(str(junk))
    assert failed.value.code == "not_video"
