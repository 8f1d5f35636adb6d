"""The pure parts: ladder planning, command lines, playlists, names, throttling."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from studio_transcoder.config import Rung, TranscoderSettings, parse_ladder
from studio_transcoder.media.command import (
    OutputLayout,
    filter_graph,
    ladder_command,
)
from studio_transcoder.media.ladder import h264_level, plan_ladder, scaled_size
from studio_transcoder.media.playlists import (
    Segment,
    measure,
    parse_media_playlist,
    parse_segment_list,
    render_media_playlist,
    sprite_vtt,
    target_duration,
    with_timestamp_map,
)
from studio_transcoder.media.probe import (
    AudioStream,
    SourceInfo,
    SubtitleStream,
    VideoStream,
    parse_probe,
)
from studio_transcoder.naming import language_tag, new_version, output_prefix
from studio_transcoder.pipeline import subtitle_language
from studio_transcoder.worker import ProgressThrottle, advisory_key, retry_delay


def source(width: int, height: int, *, audio=(), subtitles=(), fps=24.0) -> SourceInfo:
    return SourceInfo(
        format_name="matroska,webm",
        duration=1440.0,
        video=VideoStream(
            index=0, codec="hevc", width=width, height=height, fps=fps, pix_fmt="yuv420p10le"
        ),
        audio=tuple(audio),
        subtitles=tuple(subtitles),
    )


def audio(index: int, language: str, *, original=False, title=None) -> AudioStream:
    return AudioStream(
        index=index,
        codec="aac",
        language=language,
        tagged=language != "und",
        title=title,
        channels=2,
        default=False,
        original=original,
    )


SETTINGS = TranscoderSettings(_env_file=None)


def test_the_ladder_setting_parses_and_validates():
    assert parse_ladder("720:2800k, 1080:5000,480:1400") == [
        Rung(1080, 5000),
        Rung(720, 2800),
        Rung(480, 1400),
    ]
    for bad in ("", "1080", "1081:5000", "1080:5000,1080:4000"):
        with pytest.raises(ValueError, match="ladder"):
            parse_ladder(bad)
    with pytest.raises(ValidationError, match="multiple of keyframe_seconds"):
        TranscoderSettings(segment_seconds=5, keyframe_seconds=2)


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1920, 1080, [("1080p", 1920, 1080), ("720p", 1280, 720), ("480p", 854, 480)]),
        (640, 480, [("480p", 640, 480)]),
        (720, 1280, [("720p", 720, 1280), ("480p", 480, 854)]),
        (1920, 800, [("720p", 1728, 720), ("480p", 1152, 480)]),
        (853, 480, [("480p", 852, 480)]),
        (320, 240, [("240p", 320, 240)]),
        (3840, 2160, [("1080p", 1920, 1080), ("720p", 1280, 720), ("480p", 854, 480)]),
    ],
)
def test_renditions_never_exceed_the_source_and_keep_its_aspect(width, height, expected):
    plan = plan_ladder(source(width, height), SETTINGS)
    assert [(v.name, v.width, v.height) for v in plan.video] == expected
    for v in plan.video:
        assert v.width % 2 == 0
        assert v.height % 2 == 0


def test_codecs_come_from_the_level_each_rendition_needs():
    assert h264_level(1920, 1080, 24, 5350) == ("4.0", 40)
    assert h264_level(1920, 1080, 60, 5350) == ("4.2", 42)
    assert h264_level(1280, 720, 24, 2996) == ("3.1", 31)
    assert h264_level(854, 480, 24, 1498) == ("3.0", 30)
    plan = plan_ladder(source(1920, 1080, audio=[audio(1, "ja")]), SETTINGS)
    assert plan.codecs == {
        "1080p": "avc1.640028,mp4a.40.2",
        "720p": "avc1.64001f,mp4a.40.2",
        "480p": "avc1.64001e,mp4a.40.2",
    }
    assert scaled_size(1000, 1000, 480) == (480, 480)


def test_every_tagged_audio_language_is_a_rendition_and_the_original_is_default():
    plan = plan_ladder(
        source(
            1920,
            1080,
            audio=[
                audio(1, "en", title="English dub"),
                audio(2, "ja", original=True),
                audio(3, "und"),
            ],
            subtitles=[
                SubtitleStream(index=4, codec="ass", language="en", title=None, forced=False),
                SubtitleStream(
                    index=5, codec="hdmv_pgs_subtitle", language="en", title=None, forced=False
                ),
                SubtitleStream(index=6, codec="subrip", language="en", title="Signs", forced=True),
            ],
        ),
        SETTINGS,
    )
    assert [(a.name, a.label, a.default) for a in plan.audio] == [
        ("audio-en", "English dub", False),
        ("audio-ja", "Japanese", True),
    ]
    assert [(s.name, s.keep_ass, s.forced) for s in plan.subtitles] == [
        ("en", True, False),
        ("en-2", False, True),
    ]
    assert len(plan.ignored) == 2  # the untagged audio and the bitmap subtitles
    assert plan.track_names == ["1080p", "720p", "480p", "audio-en", "audio-ja"]


def test_an_untagged_single_audio_stream_is_kept():
    plan = plan_ladder(source(640, 360, audio=[audio(1, "und")]), SETTINGS)
    assert [(a.name, a.default) for a in plan.audio] == [("audio-und", True)]


def test_one_ffmpeg_command_decodes_once_for_ladder_and_thumbnails(tmp_path):
    plan = plan_ladder(source(1920, 1080, audio=[audio(1, "ja")]), SETTINGS)
    argv = ladder_command(SETTINGS, plan, "https://s3/x.mkv?sig", 0, OutputLayout(tmp_path))
    assert argv.count("-i") == 1
    graph = filter_graph(plan, 0)
    assert graph.startswith("[0:0]split=6")
    assert graph.count("format=yuv420p") == 3
    assert "expr:gte(t,n_forced*2)" in argv
    # One segment muxer per rendition, each with its own list, cutting on the
    # grid: three 2 s segments, then 6 s ones (timestamps start at 1 s).
    lists = [argv[i + 1] for i, a in enumerate(argv) if a == "-segment_list"]
    assert lists == [str(tmp_path / "hls" / n / "index.m3u8") for n in plan.track_names]
    cuts = {argv[i + 1] for i, a in enumerate(argv) if a == "-segment_times"}
    assert len(cuts) == 1
    assert cuts.pop().startswith("3,5,7,13,19,")
    assert argv.count("libx264") == 3
    assert argv[argv.index("-b:v") + 1] == "5000k"
    assert argv[argv.index("-preset") + 1] == "veryfast"
    assert "-rw_timeout" in argv  # reading over HTTP times out instead of hanging
    assert argv[-5:] == ["-progress", "pipe:1", "-stats_period", "1", "-nostats"]


def test_ffmpeg_playlists_are_read_and_ours_written():
    text = "#EXTM3U\n#EXTINF:6.000000,\nseg_00000.ts\n#EXTINF:5.96,\nseg_00001.ts\n#EXTINF:2"
    playlist = parse_media_playlist(text)
    assert playlist == parse_media_playlist(text)
    assert playlist.segments == (Segment("seg_00000.ts", 6.0), Segment("seg_00001.ts", 5.96))
    assert not playlist.ended
    growing = render_media_playlist(playlist.segments, target=6, ended=False)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing
    assert "#EXT-X-ENDLIST" not in growing
    assert render_media_playlist(playlist.segments, target=6, ended=True).endswith(
        "#EXT-X-ENDLIST\n"
    )
    # The segment muxer's list: rewritten in place (a read may end mid-line),
    # and its first duration counted from timestamp 0, not the output's start.
    listed = (
        "#EXTM3U\n#EXTINF:3.000000,\nseg_00000.ts\n#EXTINF:2.000000,\nseg_00001.ts\n#EXTINF:2.0"
    )
    assert parse_segment_list(listed, 1.0).segments == (
        Segment("seg_00000.ts", 2.0),
        Segment("seg_00001.ts", 2.0),
    )
    assert parse_segment_list(listed + "00000,\nseg_0", 1.0).segments[-1].uri == "seg_00001.ts"
    assert parse_segment_list("#EXTM3U\n#EXTINF:67.0,\nseg_00010.ts\n", 61.0).segments == (
        Segment("seg_00010.ts", 6.0),
    )
    assert target_duration(6, [Segment("a", 6.4)]) == 6
    assert target_duration(6, [Segment("a", 6.6)]) == 7


def test_bandwidth_peak_is_over_every_segment_the_short_tail_too():
    bw = measure([(6.0, 3_000_000), (6.0, 3_750_000), (0.04, 40_000)], 6.0)
    assert bw is not None
    # 40 kB in 0.04 s is the largest rate of any segment (RFC 8216 4.3.4.2).
    assert bw.peak == 8_000_000
    assert bw.peak >= bw.average
    assert bw.average == round((6_790_000 * 8) / 12.04 + 0.5)


def test_subtitles_get_the_segments_clock_and_sprites_a_map():
    vtt = with_timestamp_map("WEBVTT\n\n00:00.500 --> 00:01.000\nHi\n", 133500)
    assert vtt.splitlines()[:2] == ["WEBVTT", "X-TIMESTAMP-MAP=MPEGTS:133500,LOCAL:00:00:00.000"]
    sprite = sprite_vtt(
        duration=11,
        count=3,
        interval=5,
        columns=2,
        rows=1,
        tile=(160, 90),
        sheets=["s1.jpg", "s2.jpg"],
    )
    assert sprite.splitlines()[2:4] == ["00:00:00.000 --> 00:00:05.000", "s1.jpg#xywh=0,0,160,90"]
    assert "00:00:10.000 --> 00:00:11.000\ns2.jpg#xywh=0,0,160,90" in sprite


def test_output_keys_are_made_of_ids_only():
    episode = uuid.UUID("0b6f8f7e-2a44-4d8e-9c55-1f0c1f4c6a11")
    first, second = new_version(), new_version()
    assert first != second
    assert output_prefix(episode, first) == f"hls/{episode}/{first}/"
    for bad in ("../etc", "v1", "", first.upper(), first + "/x"):
        with pytest.raises(ValueError, match="not a version"):
            output_prefix(episode, bad)


def test_names_are_safe_in_keys():
    assert language_tag("jpn") == "ja"
    assert language_tag("pt_BR") == "pt-BR"
    assert language_tag("not a language") == "und"
    assert subtitle_language("up/x/subtitles/ep1.pt-BR.ass") == "pt-BR"
    assert subtitle_language("up/x/subtitles/en.srt") == "en"
    assert subtitle_language("up/x/subtitles/signs.srt") == "und"


def test_probe_results_that_are_not_usable_video():
    from studio_transcoder.failures import PermanentFailure

    def fails(data, code):
        with pytest.raises(PermanentFailure) as info:
            parse_probe(data)
        assert info.value.code == code

    fails({}, "not_video")
    fails(
        {
            "format": {"format_name": "png_pipe"},
            "streams": [{"codec_type": "video", "width": 9, "height": 9}],
        },
        "not_video",
    )
    fails({"format": {"format_name": "mp3", "duration": "3"}, "streams": [
        {"index": 0, "codec_type": "audio"},
        {"index": 1, "codec_type": "video", "disposition": {"attached_pic": 1}},
    ]}, "no_video_stream")  # fmt: skip
    fails({"format": {"format_name": "mov", "duration": "0"}, "streams": [
        {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 64, "height": 64},
    ]}, "zero_duration")  # fmt: skip
    info = parse_probe({"format": {"format_name": "mov", "duration": "2.5"}, "streams": [
        {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 1080, "height": 1920,
         "avg_frame_rate": "30000/1001", "side_data_list": [{"rotation": -90}]},
    ]})  # fmt: skip
    assert (info.video.width, info.video.height) == (1920, 1080)  # rotated phone video
    assert round(info.video.fps, 2) == 29.97


def test_progress_is_throttled_by_time_or_step():
    now = [0.0]
    throttle = ProgressThrottle(interval=2.0, step=5.0, clock=lambda: now[0])
    assert throttle.should_emit(1.0)
    now[0] = 1.0
    assert not throttle.should_emit(2.0)  # too soon, too small
    assert throttle.should_emit(6.5)  # a big step
    assert not throttle.should_emit(6.5)  # never the same or backwards
    now[0] = 3.5
    assert throttle.should_emit(7.0)  # time is up


def test_retry_backoff_and_lock_keys():
    s = TranscoderSettings(retry_backoff_seconds=10)
    assert [retry_delay(s, n) for n in (1, 2, 3)] == [10, 20, 40]
    import uuid

    key = advisory_key(uuid.UUID("ffffffff-ffff-ffff-0000-000000000000"))
    assert key == -1
