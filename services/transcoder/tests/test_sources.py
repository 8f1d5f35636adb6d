"""Sources of every shape: aspect ratios, no audio, anime audio and subtitles, HEVC 10-bit,
and files that are not video at all."""

from __future__ import annotations

import asyncio
import os
import re
import uuid

import pytest


def variants(master: str) -> list[tuple[str, str, str]]:
    """(uri, RESOLUTION, CODECS) of every variant stream."""
    lines = master.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            resolution = re.search(r"RESOLUTION=(\d+x\d+)", line)
            codecs = re.search(r'CODECS="([^"]+)"', line)
            assert resolution is not None
            assert codecs is not None
            out.append((lines[i + 1], resolution.group(1), codecs.group(1)))
    return out


@pytest.fixture
async def worker(start_worker):
    return await start_worker()


async def transcode(jobs, path, **over):
    event = await jobs.submit(path, **over)
    job = await jobs.wait_for(event.episode_id, "ready", "failed")
    assert job.status == "ready", f"{job.error_code}: {job.error_reason}\n{job.log_tail}"
    followed = await jobs.follow(job.result["hlsMasterKey"])
    return job, followed


async def test_a_480p_4_3_source_is_not_upscaled(worker, jobs, media):
    job, followed = await transcode(jobs, media.video("sd-4x3.mp4", size="640x480"))
    assert job.result["renditions"] == ["480p"]
    # moto answers range requests, so ffmpeg read the source straight from storage.
    assert job.result["sourceStreamed"] is True
    assert [(uri, res) for uri, res, _ in variants(followed["master"])] == [
        ("480p/index.m3u8", "640x480")
    ]


async def test_a_portrait_source_keeps_its_aspect(worker, jobs, media, ffprobe, tmp_path):
    job, followed = await transcode(jobs, media.video("portrait.mp4", size="720x1280"))
    # Named by the short side: nothing above the source in either dimension.
    assert job.result["renditions"] == ["720p", "480p"]
    assert [(uri, res) for uri, res, _ in variants(followed["master"])] == [
        ("720p/index.m3u8", "720x1280"),
        ("480p/index.m3u8", "480x854"),
    ]
    prefix = job.result["hlsMasterKey"].removesuffix("master.m3u8")
    seg = jobs.download(f"{prefix}480p/seg_00000.ts", tmp_path / "p.ts")
    stream = ffprobe(seg, "-select_streams", "v:0", "-show_entries", "stream=width,height")
    assert stream["streams"][0] == {"width": 480, "height": 854}


async def test_a_source_without_audio(worker, jobs, media):
    job, followed = await transcode(jobs, media.video("silent.mp4", size="320x240", audio=False))
    # Smaller than every ladder step: one rendition at its own size.
    assert job.result["renditions"] == ["240p"]
    assert job.result["audioLanguages"] == []
    master = followed["master"]
    assert "TYPE=AUDIO" not in master
    assert "AUDIO=" not in master
    [(_, resolution, codecs)] = variants(master)
    assert resolution == "320x240"
    assert re.fullmatch(r"avc1\.6400[0-9a-f]{2}", codecs)
    assert list(followed["playlists"]) == [
        job.result["hlsMasterKey"].replace("master", "240p/index")
    ]


async def test_a_source_can_be_downloaded_first_instead(start_worker, jobs, media):
    await start_worker(source_access="download")
    job, followed = await transcode(jobs, media.video("sd-4x3.mp4", size="640x480"))
    assert job.result["sourceStreamed"] is False
    assert "480p/index.m3u8" in followed["master"]


@pytest.fixture(scope="session")
def anime_mkv(media, tmp_path_factory):
    """Japanese original and English dub, English ASS subtitles, in Matroska."""
    folder = tmp_path_factory.mktemp("anime")
    srt = folder / "en.srt"
    srt.write_text(
        "1\n00:00:00,200 --> 00:00:01,000\nWhere are we going?\n\n"
        "2\n00:00:01,100 --> 00:00:01,900\nTo the sea.\n"
    )
    ass = folder / "en.ass"
    media.make(str(ass), "-i", str(srt))
    return media.make(
        "anime.mkv",
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=24:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000:duration=2",
        "-i", str(ass),
        "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:s",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", "2", "-c:s", "copy",
        "-metadata:s:a:0", "language=jpn", "-metadata:s:a:1", "language=eng",
        "-metadata:s:a:1", "title=English dub",
        "-metadata:s:s:0", "language=eng",
    )  # fmt: skip


async def test_two_audio_languages_and_subtitles_become_selectable_renditions(
    worker, jobs, anime_mkv
):
    event = jobs.uploaded_event("placeholder")
    folder = f"uploads/{event.episode_id}"
    jobs.upload(anime_mkv, f"{folder}/source.mkv")
    # An extra subtitle uploaded for the source, for a language the file lacks:
    # attached by id, it reaches the transcoder in the event.
    french = f"subtitles/{uuid.uuid4()}/episode.fr.srt"
    jobs.upload(None, french, b"1\n00:00:00,500 --> 00:00:01,500\nBonjour\n")
    # Someone else's file dropped "next to" the source is not part of it.
    jobs.upload(
        None,
        f"subtitles/{event.episode_id}/episode.de.srt",
        b"1\n00:00:00,500 --> 00:00:01,500\nHallo\n",
    )
    event = event.model_copy(
        update={"source_key": f"{folder}/source.mkv", "subtitle_keys": [french]}
    )
    await jobs.publish(event)
    job = await jobs.wait_for(event.episode_id, "ready", "failed")
    assert job.status == "ready", job.error_reason
    followed = await jobs.follow(job.result["hlsMasterKey"])
    master = followed["master"]

    audio = [line for line in master.splitlines() if line.startswith("#EXT-X-MEDIA:TYPE=AUDIO")]
    assert len(audio) == 2
    assert 'NAME="Japanese",LANGUAGE="ja",DEFAULT=YES' in audio[0]
    assert 'NAME="English dub",LANGUAGE="en",DEFAULT=NO' in audio[1]
    subs = [line for line in master.splitlines() if line.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES")]
    assert len(subs) == 2
    assert 'LANGUAGE="en"' in subs[0]
    assert 'URI="subs/en.m3u8"' in subs[0]
    assert 'LANGUAGE="fr"' in subs[1]
    for _, _, codecs in variants(master):
        assert codecs.endswith(",mp4a.40.2")
    stream_inf = [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF")]
    assert all('AUDIO="audio"' in s and 'SUBTITLES="subs"' in s for s in stream_inf)

    prefix = job.result["hlsMasterKey"].removesuffix("master.m3u8")
    english = jobs.get_text(prefix + "subs/en.vtt")
    assert english.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:")
    assert "Where are we going?" in english
    assert "Bonjour" in jobs.get_text(prefix + "subs/fr.vtt")
    # The styled original is kept next to the WebVTT.
    assert "[Script Info]" in jobs.get_text(prefix + "subs/en.ass")

    completed = await jobs.wait_events("transcoder.transcode.completed", job_id=job.id)
    tracks = {(t["language"], t["format"]): t["url"] for t in completed[0]["data"]["subtitles"]}
    assert tracks == {
        ("en", "vtt"): "subs/en.vtt",
        ("en", "ass"): "subs/en.ass",
        ("fr", "vtt"): "subs/fr.vtt",
    }


async def test_10_bit_hevc_in_matroska_becomes_8_bit_h264(worker, jobs, media, ffprobe, tmp_path):
    source = media.video(
        "hevc10.mkv",
        size="320x240",
        codec=[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p10le",
            "-x265-params",
            "log-level=error",
        ],
    )
    assert (
        ffprobe(source, "-show_entries", "stream=pix_fmt")["streams"][0]["pix_fmt"] == "yuv420p10le"
    )
    job, _ = await transcode(jobs, source)
    prefix = job.result["hlsMasterKey"].removesuffix("master.m3u8")
    seg = jobs.download(f"{prefix}240p/seg_00000.ts", tmp_path / "h.ts")
    [video] = ffprobe(seg, "-show_entries", "stream=codec_name,pix_fmt,profile")["streams"]
    assert (video["codec_name"], video["pix_fmt"], video["profile"]) == ("h264", "yuv420p", "High")
    # The audio is its own rendition (an alternate audio group), AAC.
    seg = jobs.download(f"{prefix}audio-und/seg_00000.ts", tmp_path / "a.ts")
    [audio] = ffprobe(seg, "-show_entries", "stream=codec_name,channels")["streams"]
    assert audio == {"codec_name": "aac", "channels": 2}


@pytest.mark.parametrize(
    ("name", "body", "code", "reason"),
    [
        ("random.mp4", os.urandom(64_000), "not_video", "not a video"),
        ("empty.mp4", b"", "empty_source", "empty"),
    ],
)
async def test_files_that_are_not_video_fail_at_once_with_a_reason(
    worker, jobs, name, body, code, reason
):
    event = jobs.uploaded_event(f"uploads/bad/{name}")
    jobs.upload(None, event.source_key, body)
    await jobs.publish(event)
    job = await jobs.wait_for(event.episode_id, "failed")
    assert job.error_code == code
    assert reason in job.error_reason
    failed = await jobs.wait_events("transcoder.transcode.failed", job_id=job.id)
    assert failed[0]["data"]["permanent"] is True
    assert failed[0]["data"]["code"] == code
    assert reason in failed[0]["data"]["reason"]
    # No retry loop: one attempt, one start, and nothing more comes.
    await asyncio.sleep(1.5)
    job = await jobs.job(event.episode_id)
    assert (job.status, job.attempts) == ("failed", 1)
    assert len(await jobs.events("transcoder.transcode.started", job_id=job.id)) == 1


async def test_an_audio_file_has_no_video_stream(worker, jobs, media):
    audio = media.make("audio.m4a", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac")
    event = await jobs.submit(audio)
    job = await jobs.wait_for(event.episode_id, "failed")
    assert job.error_code == "no_video_stream"
    assert job.error_reason == "The file has no video stream (it holds: audio)."


async def test_a_missing_source_is_retried_with_backoff_then_dead_lettered(worker, jobs, settings):
    event = jobs.uploaded_event("uploads/nowhere/source.mp4")
    await jobs.publish(event)
    job = await jobs.wait_for(event.episode_id, "failed", within=20)
    assert (job.error_code, job.attempts) == ("source_missing", settings.max_attempts)
    assert "is not in storage" in job.error_reason
    # The reason names the key, never the bucket or a storage URL.
    assert "s3://" not in job.error_reason
    assert jobs.settings.s3_bucket not in job.error_reason
    failed = await jobs.wait_events("transcoder.transcode.failed", job_id=job.id)
    assert failed[0]["data"]["permanent"] is False
    starts = await jobs.events("transcoder.transcode.started", job_id=job.id)
    assert [s["data"]["attempt"] for s in starts] == [1, 2, 3]
    dead = await jobs.wait_events(
        "dlq.transcoder-worker-catalog-episode-uploaded.catalog.episode.uploaded",
        episode_id=event.episode_id,
    )
    assert len(dead) == 1
