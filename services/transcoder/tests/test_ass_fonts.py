"""ASS/SSA tracks kept as their authors styled them, with the MKV's font attachments."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import uuid
from pathlib import Path

import pytest

from studio_transcoder.subtitles import (
    Attachment,
    BrokenFont,
    check_ass,
    collect_fonts,
    font_attachments,
    read_font,
)

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
# fonts-ipafont-gothic (scripts/bootstrap.sh): a font with Japanese glyphs.
IPA_GOTHIC = Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf")

SCRIPT = """[Script Info]
ScriptType: v4.00+
PlayResX: 320
PlayResY: 240

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,DejaVu Sans,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1
Style: Sign,@IPAGothic,18,&H0000FF00,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,0,0,7,0,0,0,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.00,0:00:02.00,Sign,,0,0,0,,{\\pos(40,40)\\fnIPAGothic}看板
Dialogue: 0,0:00:00.20,0:00:01.90,Default,,0,0,0,,{\\fnNot Attached Serif\\b1}Where are we going?
"""


# --- pure parts ---------------------------------------------------------------


def test_a_script_lists_the_families_of_its_styles_and_overrides():
    check = check_ass(SCRIPT.encode())
    assert check.ok, check.reason
    # "@IPAGothic" (vertical) is the same file as IPAGothic: listed once.
    assert check.fonts == ("DejaVu Sans", "IPAGothic", "Not Attached Serif")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "no [Script Info] section"),
        (b"\x00\x01\x02binary", "not a text file"),
        (b"[Script Info]\nTitle: x\n", "no [Events] section with a Format line naming Text"),
        (b"[Events]\nFormat: Layer, Start\n", "no [Script Info] section"),
        (b"1\n00:00:00,000 --> 00:00:01,000\nan SRT\n", "no [Script Info] section"),
    ],
)
def test_a_malformed_script_is_refused_with_a_reason(body, reason):
    check = check_ass(body)
    assert not check.ok
    assert check.reason == reason


def test_family_names_come_from_the_name_table():
    assert "DejaVu Sans" in read_font(DEJAVU.read_bytes()).families
    info = read_font(IPA_GOTHIC.read_bytes())
    assert info.kind == "ttf"
    assert "IPAGothic" in info.families


@pytest.mark.parametrize(
    "body",
    [b"", b"not a font at all", b"\x00\x01\x00\x00\x00\x40", b"OTTO" + b"\xff" * 40],
)
def test_broken_fonts_are_recognised(body):
    with pytest.raises((BrokenFont, struct.error)):
        read_font(body)


def test_fonts_are_kept_once_by_content_and_refused_over_the_limit(tmp_path):
    copies = []
    for name in ("a.ttf", "b.ttf"):
        shutil.copyfile(DEJAVU, tmp_path / name)
        copies.append((Attachment(len(copies), name, "font/ttf", None), tmp_path / name))
    (tmp_path / "junk.ttf").write_bytes(b"junk" * 100)
    shutil.copyfile(IPA_GOTHIC, tmp_path / "bold.ttf")
    fonts = collect_fonts(
        [
            *copies,
            (Attachment(2, "junk.ttf", "font/ttf", None), tmp_path / "junk.ttf"),
            (Attachment(3, "bold.ttf", "font/ttf", None), tmp_path / "bold.ttf"),
            (Attachment(4, "gone.ttf", "font/ttf", None), tmp_path / "gone.ttf"),
        ],
        max_bytes=DEJAVU.stat().st_size,
    )
    digest = hashlib.sha256(DEJAVU.read_bytes()).hexdigest()
    [kept] = fonts.fonts
    assert kept.path == f"fonts/{digest}.ttf"
    assert kept.filenames == ("a.ttf", "b.ttf")
    notes = "\n".join(fonts.notes)
    assert "'junk.ttf' (stream #2) is not a usable font" in notes
    assert "'bold.ttf' (stream #3) is" in notes
    assert "TRANSCODER_FONT_MAX_BYTES); refused" in notes
    assert "'gone.ttf' (stream #4) could not be extracted" in notes


def test_font_attachments_by_mime_type_or_extension():
    streams = {
        "streams": [
            {"index": 0, "codec_type": "video"},
            {"index": 3, "codec_type": "attachment", "tags": {"filename": "a.TTF"}},
            {
                "index": 4,
                "codec_type": "attachment",
                "tags": {"filename": "noext", "mimetype": "application/vnd.ms-opentype"},
            },
            {
                "index": 5,
                "codec_type": "attachment",
                "tags": {"filename": "cover.jpg", "mimetype": "image/jpeg"},
            },
        ]
    }
    assert [a.index for a in font_attachments(streams)] == [3, 4]


# --- a whole job --------------------------------------------------------------


@pytest.fixture(scope="session")
def styled_mkv(media, tmp_path_factory):
    """A Japanese ASS track with a sign at \\pos, a malformed second ASS track,
    fonts attached twice (same bytes), once broken, once as an image."""
    folder = tmp_path_factory.mktemp("styled")
    good = folder / "ja.ass"
    good.write_text(SCRIPT, encoding="utf-8")
    bad = folder / "en.srt"
    bad.write_text("1\n00:00:00,200 --> 00:00:01,000\nPlain line\n")
    broken = folder / "broken.ttf"
    broken.write_bytes(b"\x00\x01\x00\x00" + b"\x00" * 60)
    shutil.copyfile(DEJAVU, folder / "copy.ttf")
    return media.make(
        "styled.mkv",
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=24:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
        "-i", str(good), "-i", str(bad),
        "-map", "0:v", "-map", "1:a", "-map", "2:s", "-map", "3:s",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", "2",
        "-c:s:0", "copy", "-c:s:1", "ass",
        "-metadata:s:a:0", "language=jpn",
        "-metadata:s:s:0", "language=jpn", "-metadata:s:s:0", "title=Signs & Songs",
        "-disposition:s:0", "default+forced",
        "-metadata:s:s:1", "language=eng", "-disposition:s:1", "0",
        "-attach", str(IPA_GOTHIC), "-metadata:s:t:0", "mimetype=application/x-truetype-font",
        "-attach", str(DEJAVU), "-metadata:s:t:1", "mimetype=application/x-truetype-font",
        "-attach", str(folder / "copy.ttf"), "-metadata:s:t:2", "mimetype=font/ttf",
        "-attach", str(broken), "-metadata:s:t:3", "mimetype=application/x-truetype-font",
    )  # fmt: skip


async def test_ass_tracks_and_their_fonts_are_kept_beside_the_webvtt(
    start_worker, jobs, styled_mkv, tmp_path
):
    await start_worker()
    event = await jobs.submit(styled_mkv)
    job = await jobs.wait_for(event.episode_id, "ready", "failed", within=120)
    assert job.status == "ready", f"{job.error_code}: {job.error_reason}\n{job.log_tail}"
    prefix = job.result["hlsMasterKey"].removesuffix("master.m3u8")
    meta = json.loads(jobs.get_text(prefix + "subs/subtitles.json"))
    tracks = {t["language"]: t for t in meta["tracks"]}
    ja, en = tracks["ja"], tracks["en"]
    assert (ja["default"], ja["forced"], en["default"]) == (True, True, False)
    assert ja["label"] == "Signs & Songs"
    # Kept byte for byte as the author wrote it.
    assert ja["ass"] == f"subs/{ja['name']}.ass"
    assert "{\\pos(40,40)\\fnIPAGothic}看板" in jobs.get_text(prefix + ja["ass"])
    assert jobs.get_text(prefix + ja["webvtt"]).startswith("WEBVTT")
    assert ja["fonts"] == ["DejaVu Sans", "IPAGothic", "Not Attached Serif"]
    assert ja["missingFonts"] == ["Not Attached Serif"]
    # Each distinct font once, named by its content.
    digests = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in (DEJAVU, IPA_GOTHIC)}
    assert sorted(f["sha256"] for f in meta["fonts"]) == sorted(digests)
    assert sorted(ja["fontFiles"]) == sorted(f"fonts/{d}.ttf" for d in digests)
    fonts_in_storage = sorted(k.removeprefix(prefix) for k in jobs.keys(prefix + "fonts/"))
    assert fonts_in_storage == sorted(f"fonts/{d}.ttf" for d in digests)
    for font in meta["fonts"]:
        assert font["contentType"] == "font/ttf"
        assert jobs.size(prefix + font["path"]) == font["size"]
        head = jobs.s3.head_object(Bucket=jobs.settings.s3_bucket, Key=prefix + font["path"])
        assert head["ContentType"] == "font/ttf"
    # The event keeps both forms of the kept track.
    formats = {(s["url"], s.get("format", "vtt")) for s in job.result["subtitles"]}
    assert (ja["ass"], "ass") in formats
    assert "broken.ttf" in job.log_tail
    assert "not a usable font" in job.log_tail
    assert "Not Attached Serif" in job.log_tail


async def test_a_malformed_ass_upload_keeps_only_its_webvtt_and_big_fonts_are_refused(
    start_worker, jobs, styled_mkv
):
    await start_worker(font_max_bytes=1024 * 1024)
    event = jobs.uploaded_event("placeholder")
    source = f"uploads/{event.episode_id}/source.mkv"
    jobs.upload(styled_mkv, source)
    # Dialogue lines only: ffmpeg can still read the text, a renderer cannot use it.
    sidecar = f"subtitles/{uuid.uuid4()}/episode.fr.ass"
    jobs.upload(
        None,
        sidecar,
        b"[Events]\nFormat: Start, End, Text\nDialogue: 0:00:00.50,0:00:01.50,Bonjour\n",
    )
    event = event.model_copy(update={"source_key": source, "subtitle_keys": [sidecar]})
    await jobs.publish(event)
    job = await jobs.wait_for(event.episode_id, "ready", "failed", within=120)
    assert job.status == "ready", f"{job.error_code}: {job.error_reason}\n{job.log_tail}"
    prefix = job.result["hlsMasterKey"].removesuffix("master.m3u8")
    meta = json.loads(jobs.get_text(prefix + "subs/subtitles.json"))
    fr = next(t for t in meta["tracks"] if t["language"] == "fr")
    assert fr["ass"] is None
    assert not jobs.keys(prefix + f"subs/{fr['name']}.ass")
    assert "ASS track fr is malformed" in job.log_tail
    # IPA Gothic (6 MiB) is over the 1 MiB limit: refused, DejaVu (0.7 MiB) kept.
    assert "ipag.ttf" in job.log_tail
    assert "refused" in job.log_tail
    [kept] = meta["fonts"]
    assert "DejaVu Sans" in kept["families"]
