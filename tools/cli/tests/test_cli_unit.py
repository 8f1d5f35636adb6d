"""The CLI without a stack: credentials on disk, problem+json, exit codes, upload state."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from studio_cli import config
from studio_cli.api import Api, problem_from_response
from studio_cli.errors import ApiError, CliError, Exit, exit_for_status
from studio_cli.main import edit_names, main
from studio_cli.upload import Accepted, Target, UploadState, format_parts, upload_filename


@pytest.fixture(autouse=True)
def _dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_CLI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("STUDIO_CLI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("STUDIO_API_URL", raising=False)


def test_credentials_are_private(tmp_path: Path) -> None:
    path = config.save_credentials(
        config.Credentials(api="http://x.test", token="t0k", kind="dev", role="admin")
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = config.load_credentials()
    assert loaded is not None
    assert loaded.token == "t0k"
    assert loaded.role == "admin"
    assert config.forget_credentials()
    assert config.load_credentials() is None


def test_api_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    creds = config.Credentials(api="http://saved.test/", token="t", kind="dev")
    assert config.resolve_api_url(None, None) == config.DEFAULT_API_URL
    assert config.resolve_api_url(None, creds) == "http://saved.test"
    monkeypatch.setenv("STUDIO_API_URL", "http://env.test")
    assert config.resolve_api_url(None, creds) == "http://env.test"
    assert config.resolve_api_url("http://flag.test/", creds) == "http://flag.test"


def test_problem_details_become_api_errors() -> None:
    body = {
        "type": "urn:studio:problem:validation",
        "title": "Invalid request",
        "status": 422,
        "detail": "One or more fields are invalid.",
        "errors": [{"pointer": "body.slug", "message": "bad", "code": "x"}],
    }
    error = problem_from_response(httpx.Response(422, json=body))
    assert (error.title, error.detail, error.code, error.slug) == (
        "Invalid request",
        "One or more fields are invalid.",
        Exit.REJECTED,
        "validation",
    )
    assert error.errors[0]["pointer"] == "body.slug"
    plain = problem_from_response(httpx.Response(502, text="<html>bad gateway</html>"))
    assert plain.title == "HTTP 502 Bad Gateway"
    assert plain.code == Exit.UNAVAILABLE


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, Exit.AUTH),
        (403, Exit.FORBIDDEN),
        (404, Exit.NOT_FOUND),
        (409, Exit.REJECTED),
        (413, Exit.REJECTED),
        (422, Exit.REJECTED),
        (429, Exit.UNAVAILABLE),
        (503, Exit.UNAVAILABLE),
    ],
)
def test_exit_codes_follow_the_status(status: int, code: Exit) -> None:
    assert exit_for_status(status) == code


def test_a_401_says_how_to_sign_in() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer old"
        return httpx.Response(401, json={"title": "Not authenticated", "status": 401})

    with (
        Api("http://x.test", "old", transport=httpx.MockTransport(handler)) as api,
        pytest.raises(ApiError) as caught,
    ):
        api.get("/api/me")
    assert caught.value.code == Exit.AUTH
    assert "studio login" in (caught.value.detail or "")


def _flaky(answers: list[httpx.Response]) -> tuple[list[str], httpx.MockTransport]:
    """A transport that gives `answers` in turn and records each request's method."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return answers[min(len(seen), len(answers)) - 1]

    return seen, httpx.MockTransport(handler)


def _busy(status: int, retry_after: str) -> httpx.Response:
    return httpx.Response(
        status, headers={"Retry-After": retry_after}, json={"title": "Busy", "status": status}
    )


def test_a_short_retry_after_is_waited_out() -> None:
    seen, transport = _flaky([_busy(503, "1"), _busy(429, "2"), httpx.Response(200, json=[])])
    with Api("http://x.test", "t", transport=transport) as api:
        waits: list[float] = []
        api.sleep = waits.append
        assert api.get("/api/titles") == []
    assert seen == ["GET", "GET", "GET"]
    assert waits == [1.0, 2.0]


@pytest.mark.parametrize(
    ("method", "answer", "attempts"),
    [
        # Not idempotent: a 503 may have come after part of the work.
        ("POST", _busy(503, "1"), 1),
        # A 429 was refused before any work: safe to repeat.
        ("POST", _busy(429, "1"), 4),
        # Too long a wait, or none said: reported at once.
        ("GET", _busy(503, "600"), 1),
        ("GET", httpx.Response(503, json={"title": "Down", "status": 503}), 1),
        ("GET", _busy(500, "1"), 1),
    ],
)
def test_what_is_not_retried(method: str, answer: httpx.Response, attempts: int) -> None:
    seen, transport = _flaky([answer])
    with Api("http://x.test", "t", transport=transport) as api:
        api.sleep = lambda _: None
        with pytest.raises(ApiError) as caught:
            api.request(method, "/api/admin/titles", json={} if method == "POST" else None)
    assert len(seen) == attempts
    assert caught.value.code == Exit.UNAVAILABLE


def test_unreachable_stack_is_an_error_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--api", "http://127.0.0.1:1", "titles", "list"]) == Exit.UNAVAILABLE
    err = capsys.readouterr().err
    assert "Cannot reach http://127.0.0.1:1" in err
    assert "Traceback" not in err


def test_not_signed_in(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whoami"]) == Exit.AUTH
    assert "Not signed in" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["titles", "show"]) == Exit.USAGE
    assert main(["login"]) == Exit.USAGE  # neither --dev nor --token
    assert "Traceback" not in capsys.readouterr().err


def test_upload_state_is_keyed_by_file_and_target(tmp_path: Path) -> None:
    video = tmp_path / "ep.mp4"
    video.write_bytes(b"x" * 100)
    root = tmp_path / "state"
    target = Target("show", 1, 2)
    first = UploadState.for_file(root, "http://a.test", video, target)
    first.data["uploadId"] = "u1"
    first.save()
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    again = UploadState.for_file(root, "http://a.test", video, target)
    assert again.path == first.path
    assert again.data["uploadId"] == "u1"
    assert (
        UploadState.for_file(root, "http://a.test", video, Target("show", 1, 3)).path != first.path
    )
    video.write_bytes(b"y" * 101)  # another size (and mtime): another upload
    changed = UploadState.for_file(root, "http://a.test", video, target)
    assert changed.path != first.path
    assert "uploadId" not in changed.data
    assert json.loads(first.path.read_text())["uploadId"] == "u1"


def test_format_parts() -> None:
    assert format_parts([]) == "none"
    assert format_parts([3, 1, 2, 5, 7, 8]) == "1-3, 5, 7-8"


def test_accepted_types_come_from_media(tmp_path: Path) -> None:
    kinds = {
        "kinds": [
            {
                "kind": "source",
                "maxBytes": 10,
                "attachable": False,
                "extensions": [
                    {"extension": "mkv", "contentTypes": ["video/x-matroska"]},
                    {"extension": "mp4", "contentTypes": ["video/mp4"]},
                ],
            },
            {
                "kind": "subtitle",
                "maxBytes": 10,
                "attachable": True,
                "extensions": [{"extension": "vtt", "contentTypes": ["text/vtt"]}],
            },
        ]
    }
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=kinds)

    with Api("http://a.test", "t", transport=httpx.MockTransport(handler)) as api:
        accepted = Accepted.fetch(api)
    assert seen == ["/api/admin/uploads/accepted-types"]
    assert accepted.content_type("source", tmp_path / "Ep 1.MKV", "a video") == "video/x-matroska"
    assert accepted.content_type("subtitle", tmp_path / "ep.en.vtt", "subs") == "text/vtt"
    # What media does not list is refused before anything is sent (no copy of the list here).
    with pytest.raises(CliError) as refused:
        accepted.content_type("source", tmp_path / "ep.m4v", "a video file")
    assert refused.value.code == Exit.USAGE
    assert refused.value.detail == "Accepted: .mkv, .mp4"


def test_upload_file_names_are_made_safe_for_media() -> None:
    assert upload_filename(Path("/x/My Show: Ep 1é.en.srt")) == "My_Show__Ep_1_.en.srt"
    assert upload_filename(Path("ep.mkv")) == "ep.mkv"
    long = upload_filename(Path("a" * 300 + ".mkv"))
    assert len(long) == 200
    assert long.endswith(".mkv")


def test_a_relative_playback_url_is_made_absolute_on_the_gateway() -> None:
    from studio_cli.main import absolute_url

    gateway = "http://127.0.0.1:8080"
    assert absolute_url(gateway, "/hls/t/e/master.m3u8") == f"{gateway}/hls/t/e/master.m3u8"
    cdn = "https://cdn.example/hls/e/master.m3u8?Signature=x"
    assert absolute_url(gateway + "/", cdn) == cdn


AOT_NAMES = [
    {"kind": "romaji", "language": "ja", "name": "Shingeki no Kyojin"},
    {"kind": "synonym", "language": "en", "name": "AoT"},
]


def test_edit_names_replaces_one_per_kind_and_language_and_adds_synonyms() -> None:
    names = edit_names(AOT_NAMES, "romaji", "JA", "Shingeki", remove=False)
    assert names == [AOT_NAMES[1], {"kind": "romaji", "language": "ja", "name": "Shingeki"}]
    names = edit_names(AOT_NAMES, "synonym", "en", "SnK", remove=False)
    assert [n["name"] for n in names] == ["Shingeki no Kyojin", "AoT", "SnK"]
    assert edit_names(AOT_NAMES, "synonym", "en", "aot", remove=True) == AOT_NAMES[:1]
    with pytest.raises(CliError):
        edit_names(AOT_NAMES, "english", "en", None, remove=True)


def test_names_set_patches_the_whole_list(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        sent.append((request.method, request.url.path, body))
        if request.method == "GET":
            return httpx.Response(200, json={"id": "t1", "slug": "aot", "names": AOT_NAMES})
        return httpx.Response(200, json={"id": "t1", "slug": "aot", "names": body["names"]})

    monkeypatch.setattr(
        "studio_cli.main.Api",
        lambda url, token: Api(url, token, transport=httpx.MockTransport(handler)),
    )
    args = ["--api", "http://a.test", "titles", "names", "set", "aot", "Attack on Titan"]
    assert main([*args, "--kind", "english", "--language", "en"]) == Exit.OK
    assert sent[1] == (
        "PATCH",
        "/api/admin/titles/t1",
        {"names": [*AOT_NAMES, {"kind": "english", "language": "en", "name": "Attack on Titan"}]},
    )
