"""The `studio` CLI against the running stack, as a user runs it: a subprocess
with its own config and state directories."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import struct
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

PART_SIZE = 5 * 1024 * 1024  # MEDIA_MULTIPART_PART_SIZE of the e2e stack
SRT = """1
00:00:00,500 --> 00:00:02,500
Hello from the test

2
00:00:03,000 --> 00:00:05,000
Second line
"""


@dataclass
class Cli:
    api: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_CLI_")}
        env.update(
            STUDIO_API_URL=self.api,
            STUDIO_CLI_CONFIG_DIR=str(self.home / "config"),
            STUDIO_CLI_STATE_DIR=str(self.home / "state"),
            COLUMNS="200",
            NO_COLOR="1",
            TERM="dumb",
        )
        env.update(extra)
        return env

    def __call__(
        self, *args: str, timeout: float = 180, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "studio_cli", *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def make_cli(stack, home: Path, role: str = "admin", email: str | None = None) -> Cli:
    cli = Cli(stack.gateway_url, home)
    args = ["login", "--dev", "--role", role]
    if email:
        args += ["--email", email]
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    return cli


def make_source(ffmpeg: str, path: Path, *, seconds: int = 6, pad_to: int = 0) -> Path:
    """A 720p source with two audio languages (ja, en) and English subtitles; a
    trailing `free` box pads it to `pad_to` bytes (players and ffmpeg skip it)."""
    srt = path.with_suffix(".srt")
    srt.write_text(SRT)
    subprocess.run(
        [
            ffmpeg, "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=24:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=880:duration={seconds}",
            "-i", str(srt),
            "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:s",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k", "-c:s", "mov_text",
            "-metadata:s:a:0", "language=jpn", "-metadata:s:a:1", "language=eng",
            "-metadata:s:s:0", "language=eng",
            "-movflags", "+faststart", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    missing = pad_to - path.stat().st_size
    if missing > 8:
        with path.open("ab") as f:
            f.write(struct.pack(">I4s", missing, b"free"))
            f.write(b"\0" * (missing - 8))
    return path


def new_title(cli: Cli, prefix: str) -> str:
    slug = f"{prefix}-{uuid.uuid4().hex[:8]}"
    created = cli("titles", "create", slug, "--name", f"E2E {slug}", "-g", "e2e", "-l", "ja")
    assert created.returncode == 0, created.stderr
    season = cli("seasons", "create", "--title", slug, "--number", "1")
    assert season.returncode == 0, season.stderr
    return slug


def upload_json(cli: Cli, source: Path, slug: str, episode: int = 1) -> dict:
    done = cli(
        "--json", "upload", str(source), "--title", slug, "--season", "1",
        "--episode", str(episode), "--name", "Pilot", "--timeout", "150",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr
    assert "Traceback" not in done.stdout


# ------------------------------------------------------------------ tests


def test_login_keeps_a_private_token(stack, tmp_path: Path) -> None:
    cli = make_cli(stack, tmp_path, "editor", "cli-editor@e2e.studio.test")
    creds = tmp_path / "config" / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert stat.S_IMODE(creds.parent.stat().st_mode) == 0o700
    saved = json.loads(creds.read_text())
    assert saved["api"] == stack.gateway_url
    assert saved["role"] == "editor"
    me = cli("--json", "whoami")
    assert me.returncode == 0, me.stderr
    assert json.loads(me.stdout)["email"] == "cli-editor@e2e.studio.test"
    assert cli("logout").returncode == 0
    assert not creds.exists()
    assert cli("whoami").returncode == 3

    # A token issued elsewhere (Clerk's, in production) is checked with /api/me, then kept.
    given = cli("login", "--token", stack.token("viewer", "cli-given@e2e.studio.test"))
    assert given.returncode == 0, given.stderr
    assert json.loads(creds.read_text())["role"] == "viewer"
    refused = cli("login", "--token", "not-a-token")
    assert refused.returncode == 3
    _no_traceback(refused)


def test_errors_are_problem_lines_with_exit_codes(stack, tmp_path: Path) -> None:
    admin = make_cli(stack, tmp_path / "admin")
    missing = admin("titles", "show", "no-such-title-here")
    assert missing.returncode == 5
    assert "Error: Not found" in missing.stderr
    _no_traceback(missing)

    invalid = admin("titles", "create", "Not A Slug", "--name", "x")
    assert invalid.returncode == 6
    assert "body.slug" in invalid.stderr
    _no_traceback(invalid)

    viewer = make_cli(stack, tmp_path / "viewer", "viewer")
    refused = viewer("titles", "create", f"v-{uuid.uuid4().hex[:6]}", "--name", "x")
    assert refused.returncode == 4, refused.stderr
    _no_traceback(refused)

    anonymous = Cli(stack.gateway_url, tmp_path / "nobody")
    assert anonymous("jobs", "list").returncode == 3

    unreachable = admin("--api", "http://127.0.0.1:9", "titles", "list")
    assert unreachable.returncode == 7
    assert "Cannot reach" in unreachable.stderr
    _no_traceback(unreachable)


def test_titles_and_seasons(stack, tmp_path: Path) -> None:
    cli = make_cli(stack, tmp_path)
    slug = new_title(cli, "cli-title")
    found = cli("--json", "titles", "list", "-q", slug)
    assert found.returncode == 0, found.stderr
    assert slug in [t["slug"] for t in json.loads(found.stdout)["items"]]
    shown = cli("--json", "titles", "show", slug)
    assert [s["number"] for s in json.loads(shown.stdout)["seasons"]] == [1]
    table = cli("titles", "show", slug)
    assert table.returncode == 0
    assert "Season 1" in table.stdout
    again = cli("seasons", "create", "--title", slug, "--number", "1")
    assert again.returncode == 6
    _no_traceback(again)


def _parts_stored(stderr: str) -> list[int]:
    found = re.search(r"Parts ([\d, -]+) of (\d+) are stored", stderr)
    assert found, stderr
    numbers: list[int] = []
    for piece in found.group(1).split(","):
        a, _, b = piece.strip().partition("-")
        numbers += list(range(int(a), int(b or a) + 1))
    return numbers


def test_upload_resumes_after_an_interruption_then_transcodes(
    stack, tmp_path: Path, ffmpeg: str
) -> None:
    cli = make_cli(stack, tmp_path)
    slug = new_title(cli, "cli-upload")
    source = make_source(ffmpeg, tmp_path / "episode.mp4", pad_to=3 * PART_SIZE + 123_457)
    size = source.stat().st_size
    args = ["upload", str(source), "--title", slug, "--season", "1", "--episode", "1"]

    # The hook stops the run like Ctrl-C once two parts are stored.
    first = cli(*args, "--parallel", "1", STUDIO_CLI_TEST_ABORT_AFTER_PARTS="2")
    assert first.returncode == 130, first.stderr
    assert "Upload interrupted" in first.stderr
    _no_traceback(first)
    stored = _parts_stored(first.stderr)
    assert stored == [1, 2]
    (state_file,) = (tmp_path / "state" / "uploads").glob("*.json")
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    state = json.loads(state_file.read_text())
    assert state["partCount"] == 4
    # What storage holds for those parts is this file's bytes (an S3 part's ETag is its MD5).
    with source.open("rb") as f:
        for number, etag in state["parts"].items():
            f.seek((int(number) - 1) * state["partSize"])
            assert etag.strip('"') == hashlib.md5(f.read(state["partSize"])).hexdigest()  # noqa: S324

    french = tmp_path / "episode.fr.srt"
    french.write_text("1\n00:00:00,500 --> 00:00:02,000\nBonjour\n", encoding="utf-8")
    second = cli("--json", *args, "--public", "--subtitles", str(french), "--timeout", "150")
    assert second.returncode == 0, second.stderr
    assert "parts 1-2 of 4 already stored; sending 3-4" in second.stderr
    assert "sent parts 3-4 this run; 1-2 were already stored" in second.stderr
    assert "transcode" in second.stderr
    result = json.loads(second.stdout)
    episode = result["episode"]
    assert episode["transcodeState"] == "ready"
    assert episode["public"] is True
    assert set(episode["renditions"]) >= {"720p", "480p"}
    assert "/master.m3u8" in result["hls"]["url"]
    assert not state_file.exists(), "the state goes once the episode is ready"

    # The assembled object is the file, byte for byte.
    s3_port = stack.env.get("STUDIO_S3_PORT")
    if s3_port:
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{s3_port}",
            aws_access_key_id="devstack",
            aws_secret_access_key="devstack-not-a-secret",
            region_name="us-east-1",
        )
        body = s3.get_object(Bucket="studio-anime", Key=episode["sourceKey"])["Body"].read()
        assert len(body) == size
        assert hashlib.sha256(body).digest() == hashlib.sha256(source.read_bytes()).digest()

    master = httpx.get(result["hls"]["url"], timeout=10)
    assert master.status_code == 200
    assert 'LANGUAGE="ja"' in master.text
    assert 'LANGUAGE="en"' in master.text
    # The sidecar subtitle file became a subtitle rendition.
    assert any(
        "TYPE=SUBTITLES" in line and 'LANGUAGE="fr"' in line for line in master.text.splitlines()
    ), master.text

    jobs = cli("--json", "jobs", "list", "--status", "ready", "--page-size", "100")
    assert jobs.returncode == 0, jobs.stderr
    job_id = episode["transcodeJobId"]
    assert job_id in [j["id"] for j in json.loads(jobs.stdout)["items"]]
    shown = cli("jobs", "show", job_id)
    assert shown.returncode == 0
    assert "ready" in shown.stdout
    retry = cli("jobs", "retry", job_id)  # only failed jobs are retried
    assert retry.returncode == 6
    assert "Error:" in retry.stderr
    _no_traceback(retry)

    duplicate = cli(*args, "--no-wait")
    assert duplicate.returncode == 6
    assert "already exists" in duplicate.stderr


def test_a_broken_source_ends_with_the_transcode_failure(stack, tmp_path: Path) -> None:
    cli = make_cli(stack, tmp_path)
    slug = new_title(cli, "cli-broken")
    # An MP4 header (media's check passes), but nothing a decoder can read.
    junk = tmp_path / "broken.mp4"
    junk.write_bytes(b"\0\0\0\x18ftypisom\0\0\0\0isomiso2" + os.urandom(64 * 1024))
    done = cli(
        "upload", str(junk), "--title", slug, "--season", "1", "--episode", "1", "--timeout", "120"
    )
    assert done.returncode == 8, done.stdout + done.stderr
    assert "The transcode failed" in done.stderr
    _no_traceback(done)


def test_users_role(stack, tmp_path: Path) -> None:
    email = f"promote-{uuid.uuid4().hex[:8]}@e2e.studio.test"
    # A user exists once identity has seen their token.
    me = httpx.get(f"{stack.gateway_url}/api/me", headers=stack.headers("viewer", email))
    assert me.status_code == 200
    cli = make_cli(stack, tmp_path)
    done = cli("users", "role", email, "editor")
    assert done.returncode == 0, done.stderr
    assert f"{email} is now editor" in done.stdout
    unknown = cli("users", "role", "nobody-" + email, "editor")
    assert unknown.returncode == 5
    listed = httpx.get(
        f"{stack.gateway_url}/api/admin/users",
        params={"email": email},
        headers=stack.headers("admin"),
    ).json()
    assert [u["role"] for u in listed["items"]] == ["editor"]
