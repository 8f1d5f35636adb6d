"""The one-pass ladder end to end: episode.uploaded → worker → HLS in storage → events."""

from __future__ import annotations

import asyncio
import re

from prometheus_client import generate_latest

from studio_common.events import Envelope


def stream_inf(master: str) -> list[dict[str, str]]:
    out = []
    lines = master.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            attrs = {k: v.strip('"') for k, v in attrs.items()}
            attrs["URI"] = lines[i + 1]
            out.append(attrs)
    return out


def media_tags(master: str, kind: str) -> list[dict[str, str]]:
    out = []
    for line in master.splitlines():
        if line.startswith(f"#EXT-X-MEDIA:TYPE={kind},"):
            attrs = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            out.append({k: v.strip('"') for k, v in attrs.items()})
    return out


async def test_1080p_stereo_becomes_three_renditions_a_client_can_follow(
    start_worker, jobs, media, ffprobe, tmp_path
):
    worker = await start_worker()
    source = media.video("1080p.mp4", size="1920x1080", seconds=2)
    event = jobs.uploaded_event("placeholder")
    key = f"uploads/{event.episode_id}/source.mp4"
    jobs.upload(source, key)
    event = event.model_copy(update={"source_key": key})
    env = await jobs.publish(event)
    # The same event delivered again (a new message id, as a redelivery looks).
    await jobs.publish(event, envelope=env)

    job = await jobs.wait_for(event.episode_id, "ready", "failed")
    assert job.status == "ready", job.error_reason
    assert job.attempts == 1
    # Immutable ids only: the episode, then this attempt's version.
    prefix = job.output_prefix
    assert re.fullmatch(rf"hls/{event.episode_id}/[0-9a-f]{{32}}/", prefix)
    assert job.result["hlsMasterKey"] == prefix + "master.m3u8"
    assert job.result["renditions"] == ["1080p", "720p", "480p"]

    completed = await jobs.wait_events("transcoder.transcode.completed", job_id=job.id)
    data = completed[0]["data"]
    assert data["hlsMasterKey"] == prefix + "master.m3u8"
    # No storage URL leaves the transcoder (s3://bucket/... was one).
    assert data["hlsMasterUrl"] is None
    assert data["durationSec"] > 1.9
    assert data["renditions"] == ["1080p", "720p", "480p"]

    followed = await jobs.follow(data["hlsMasterKey"])
    variants = stream_inf(followed["master"])
    assert [(v["URI"], v["RESOLUTION"]) for v in variants] == [
        ("1080p/index.m3u8", "1920x1080"),
        ("720p/index.m3u8", "1280x720"),
        ("480p/index.m3u8", "854x480"),
    ]
    for v in variants:
        # The peak is at least the average and at least every segment's own rate,
        # from the bytes in storage and the playlist's durations (RFC 8216 4.3.4.2).
        assert int(v["BANDWIDTH"]) >= int(v["AVERAGE-BANDWIDTH"]) > 0
        playlist = followed["playlists"][prefix + v["URI"]]
        durations = [
            float(x.split(":")[1].rstrip(",")) for x in playlist.split() if x.startswith("#EXTINF:")
        ]
        names = [line for line in playlist.splitlines() if line and not line.startswith("#")]
        folder = prefix + v["URI"].rsplit("/", 1)[0] + "/"
        rates = [
            jobs.size(folder + name) * 8 / duration
            for name, duration in zip(names, durations, strict=True)
        ]
        assert int(v["BANDWIDTH"]) >= max(rates)
        assert re.fullmatch(r"avc1\.6400[0-9a-f]{2},mp4a\.40\.2", v["CODECS"])
        assert v["AUDIO"] == "audio"
    audio = media_tags(followed["master"], "AUDIO")
    assert len(audio) == 1
    assert audio[0]["DEFAULT"] == "YES"
    # 2 s in 1 s segments: every rendition has them all, closed with ENDLIST.
    for key, text in followed["playlists"].items():
        assert "#EXT-X-ENDLIST" in text, key
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text
        # AAC frames do not end exactly on the second: audio may have a short tail segment.
        assert followed["segments"][key] == 2 or "audio" in key, text

    # Every segment starts on a keyframe, at the same instants in every rendition.
    starts = {}
    for name in ("1080p", "720p", "480p"):
        times = []
        for i in range(2):
            seg = jobs.download(f"{prefix}{name}/seg_{i:05d}.ts", tmp_path / f"{name}-{i}.ts")
            frame = ffprobe(
                seg,
                "-select_streams",
                "v:0",
                "-read_intervals",
                "%+#1",
                "-show_entries",
                "frame=key_frame,pts_time",
                "-show_entries",
                "stream=codec_name,profile,pix_fmt,width,height",
            )
            assert frame["frames"][0]["key_frame"] == 1
            times.append(round(float(frame["frames"][0]["pts_time"]), 3))
            stream = frame["streams"][0]
            assert (stream["codec_name"], stream["pix_fmt"], stream["profile"]) == (
                "h264",
                "yuv420p",
                "High",
            )
        starts[name] = times
    assert starts["1080p"] == starts["720p"] == starts["480p"]

    # Thumbnails: a poster, a still per second, a sprite sheet and its map.
    thumbs = data["thumbnails"]
    # Paths inside the folder, never storage keys.
    assert thumbs[0] == "thumbs/poster.jpg"
    assert "thumbs/still_0001.jpg" in thumbs
    assert "thumbs/sprite_001.jpg" in thumbs
    assert "thumbs/sprite.vtt" in thumbs
    sprite_map = jobs.get_text(prefix + "thumbs/sprite.vtt")
    assert sprite_map.startswith("WEBVTT")
    assert "00:00:00.000 --> 00:00:00.500\nsprite_001.jpg#xywh=0,0,160,90" in sprite_map
    poster = ffprobe(
        jobs.download(prefix + thumbs[0], tmp_path / "poster.jpg"),
        "-show_entries",
        "stream=width,height",
    )
    assert poster["streams"][0] == {"width": 1280, "height": 720}

    # Redelivered, yet one job, one attempt, one of each event.
    await asyncio.sleep(1.0)
    assert len(await jobs.events("transcoder.transcode.started", job_id=job.id)) == 1
    assert len(await jobs.events("transcoder.transcode.completed", job_id=job.id)) == 1
    assert (await jobs.job(event.episode_id)).attempts == 1

    metrics = generate_latest(worker.registry).decode()
    assert 'transcoder_job_attempts_total{outcome="ready"} 1.0' in metrics
    assert "transcoder_encode_seconds_per_media_second_count 1.0" in metrics
    assert isinstance(env, Envelope)
