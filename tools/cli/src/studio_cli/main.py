"""`studio`: sign in, manage the catalog, upload episodes and follow their transcode.

Exit codes (studio_cli.errors.Exit): 0 ok, 1 unexpected failure, 2 usage,
3 not signed in / token refused, 4 role too low, 5 not found, 6 request refused
(invalid, conflict, failed check), 7 stack unreachable or failing, 8 transcode
failed, 130 interrupted (an upload resumes on the next run).
"""

from __future__ import annotations

import enum
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urljoin

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from studio_cli import config
from studio_cli.api import Api
from studio_cli.errors import ApiError, CliError, Exit
from studio_cli.upload import (
    Accepted,
    MultipartUpload,
    Target,
    UploadState,
    abort_after_parts_from_env,
    format_parts,
    upload_attached,
)

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

app = typer.Typer(
    name="studio",
    help="Studio.Anime from the command line: catalog, uploads, transcode jobs, users.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
titles_app = typer.Typer(help="Titles: list, create, show, names.", no_args_is_help=True)
names_app = typer.Typer(
    help="A title's names: romaji, English, native and synonyms.", no_args_is_help=True
)
titles_app.add_typer(names_app, name="names")
seasons_app = typer.Typer(help="Seasons of a title.", no_args_is_help=True)
jobs_app = typer.Typer(help="Transcode jobs: list, show, retry.", no_args_is_help=True)
users_app = typer.Typer(help="Users and roles (admins).", no_args_is_help=True)
app.add_typer(titles_app, name="titles")
app.add_typer(seasons_app, name="seasons")
app.add_typer(jobs_app, name="jobs")
app.add_typer(users_app, name="users")


class Role(enum.StrEnum):
    viewer = "viewer"
    editor = "editor"
    admin = "admin"


class TitleType(enum.StrEnum):
    series = "series"
    movie = "movie"
    ova = "ova"
    ona = "ona"
    special = "special"


class NameKind(enum.StrEnum):
    romaji = "romaji"
    english = "english"
    native = "native"
    synonym = "synonym"


class JobStatus(enum.StrEnum):
    queued = "queued"
    processing = "processing"
    ready = "ready"
    failed = "failed"


@dataclass
class Options:
    api_option: str | None
    json_output: bool

    def credentials(self) -> config.Credentials | None:
        return config.load_credentials()

    def api_url(self) -> str:
        return config.resolve_api_url(self.api_option, self.credentials())

    def client(self, *, auth: bool = True) -> Api:
        creds = self.credentials() if auth else None
        url = self.api_url()
        token = creds.token if creds and creds.api.rstrip("/") == url else None
        if auth and creds and token is None:
            err_console.print(
                f"[yellow]The saved sign-in is for {creds.api}, not {url}; sending no token.[/]"
            )
        return Api(url, token)


def _options(ctx: typer.Context) -> Options:
    opts = ctx.find_object(Options)
    assert opts is not None
    return opts


@app.callback()
def root(
    ctx: typer.Context,
    api: Annotated[
        str | None,
        typer.Option(
            "--api",
            help="Base URL of the gateway [env STUDIO_API_URL; default: where you signed in, "
            f"else {config.DEFAULT_API_URL}]",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the API's JSON instead of tables.")
    ] = False,
) -> None:
    ctx.obj = Options(api, json_output)
    if json_output:
        # stdout carries the JSON only; progress bars and notes go to stderr.
        global console
        console = err_console


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# ------------------------------------------------------------------ sign-in


@app.command()
def login(
    ctx: typer.Context,
    dev: Annotated[
        bool, typer.Option("--dev", help="Get a development token from the stack's issuer.")
    ] = False,
    role: Annotated[Role, typer.Option(help="Role of the development token.")] = Role.admin,
    email: Annotated[
        str | None,
        typer.Option(help="Email of the development user [default: dev-<role>@studio.local]."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="A token issued elsewhere (a Clerk session token); '-' reads it from stdin.",
        ),
    ] = None,
    ttl: Annotated[
        int | None, typer.Option(help="Lifetime of a development token, in seconds.", min=60)
    ] = None,
) -> None:
    """Sign in; the token is kept in your config directory, readable by you only."""
    opts = _options(ctx)
    url = config.resolve_api_url(opts.api_option, None)
    if dev == (token is not None):
        raise CliError("Choose one: --dev or --token TOKEN", code=Exit.USAGE)
    if dev:
        address = email or f"dev-{role.value}@studio.local"
        body: dict[str, Any] = {"email": address, "role": role.value}
        if ttl:
            body["ttlSeconds"] = ttl
        with Api(url) as api:
            try:
                issued = api.post("/api/dev/token", body)
            except ApiError as exc:
                if exc.status == 404:
                    raise CliError(
                        "This stack has no development issuer",
                        "POST /api/dev/token exists in development only; "
                        "sign in with --token (a Clerk session token).",
                        Exit.NOT_FOUND,
                    ) from exc
                raise
        creds = config.Credentials(
            api=url,
            token=issued["token"],
            kind="dev",
            email=address,
            role=role.value,
            expires_at=issued.get("expiresAt"),
        )
    else:
        assert token is not None
        from_stdin = token == "-"  # noqa: S105 - "-" means stdin, not a password
        value = sys.stdin.read().strip() if from_stdin else token.strip()
        if not value:
            raise CliError("The token is empty", code=Exit.USAGE)
        creds = config.Credentials(api=url, token=value, kind="token")
    # Check the token where it will be used; identity creates the user on first sight.
    with Api(url, creds.token) as api:
        me = api.get("/api/me")
    creds.email = me.get("email") or creds.email
    creds.role = me.get("role") or creds.role
    path = config.save_credentials(creds)
    if opts.json_output:
        _print_json(me)
        return
    expiry = f", until {creds.expires_at}" if creds.expires_at else ""
    console.print(
        f"Signed in to {url} as {creds.email or me.get('clerkId')} ({creds.role}{expiry})."
    )
    console.print(f"[dim]Token saved in {path}[/]")


@app.command()
def logout() -> None:
    """Forget the saved token."""
    console.print("Signed out." if config.forget_credentials() else "Not signed in.")


@app.command()
def whoami(ctx: typer.Context) -> None:
    """The signed-in user, as identity sees it."""
    opts = _options(ctx)
    if opts.credentials() is None:
        raise CliError("Not signed in", "Run: studio login --dev --role admin", Exit.AUTH)
    with opts.client() as api:
        me = api.get("/api/me")
    if opts.json_output:
        _print_json(me)
        return
    console.print(f"{me.get('email') or me['clerkId']} ({me['role']}) at {api.base_url}")


# ------------------------------------------------------------------ titles


@titles_app.command("list")
def titles_list(
    ctx: typer.Context,
    q: Annotated[str | None, typer.Option("--q", "-q", help="Search words.")] = None,
    genre: Annotated[
        list[str] | None, typer.Option("--genre", "-g", help="Genre (repeat: all must match).")
    ] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=100)] = 20,
    lang: Annotated[
        str | None, typer.Option("--lang", help="Show names in this language (en, ja).")
    ] = None,
) -> None:
    """Titles, filtered and paged (public: no sign-in needed)."""
    opts = _options(ctx)
    with opts.client(auth=False) as api:
        params: dict[str, Any] = {"page": page, "pageSize": page_size}
        if lang:
            params["lang"] = lang
        if q:
            params["q"] = q
        if genre:
            params["genre"] = genre
        data = api.request("GET", "/api/titles", params=params)
    if opts.json_output:
        _print_json(data)
        return
    table = Table()
    table.add_column("slug", no_wrap=True)
    for column in ("name", "type", "year", "genres", "rating"):
        table.add_column(column)
    for t in data["items"]:
        rating = t.get("ratingAvg")
        table.add_row(
            t["slug"],
            t.get("displayName") or t["name"],
            t["type"],
            str(t.get("year") or ""),
            ", ".join(t.get("genres") or []),
            f"{rating:.1f}" if rating is not None else "",
        )
    console.print(table)
    more = "+" if data.get("totalCapped") else ""
    console.print(
        f"[dim]page {data['page']} of {max(data['totalPages'], 1)}{more}, "
        f"{data['total']}{more} titles[/]"
    )


@titles_app.command("create")
def titles_create(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="URL name: lower-case words joined by '-'.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    type_: Annotated[TitleType, typer.Option("--type")] = TitleType.series,
    year: Annotated[int | None, typer.Option(min=1900, max=2100)] = None,
    synopsis: Annotated[str | None, typer.Option()] = None,
    genre: Annotated[list[str] | None, typer.Option("--genre", "-g")] = None,
    language: Annotated[list[str] | None, typer.Option("--language", "-l")] = None,
    romaji: Annotated[str | None, typer.Option(help="Romaji name (ja).")] = None,
    english: Annotated[str | None, typer.Option(help="English name.")] = None,
    native: Annotated[str | None, typer.Option(help="Native name (ja).")] = None,
    synonym: Annotated[
        list[str] | None, typer.Option("--synonym", help="Synonym or abbreviation (repeat).")
    ] = None,
) -> None:
    """Create a title (editor)."""
    opts = _options(ctx)
    body: dict[str, Any] = {"slug": slug, "name": name, "type": type_.value}
    names = [
        {"kind": kind, "language": lang, "name": value}
        for kind, lang, value in (
            ("romaji", "ja", romaji),
            ("english", "en", english),
            ("native", "ja", native),
        )
        if value
    ] + [{"kind": "synonym", "language": "en", "name": s} for s in synonym or []]
    if names:
        body["names"] = names
    if year is not None:
        body["year"] = year
    if synopsis:
        body["synopsis"] = synopsis
    if genre:
        body["genres"] = genre
    if language:
        body["languages"] = language
    with opts.client() as api:
        title = api.post("/api/admin/titles", body)
    if opts.json_output:
        _print_json(title)
        return
    console.print(f"Created {title['slug']} ({title['id']}).")


def edit_names(
    names: list[dict[str, Any]], kind: str, language: str, name: str | None, *, remove: bool
) -> list[dict[str, Any]]:
    """A title's names after adding (replacing the one romaji, English or native
    name of that language) or removing one (by kind and language, and by name
    for synonyms)."""
    language = language.lower()

    def same(n: dict[str, Any]) -> bool:
        if n["kind"] != kind or n["language"].lower() != language:
            return False
        if kind == "synonym":
            return name is None or n["name"].casefold() == name.casefold()
        return True

    kept = [n for n in names if not same(n)]
    if remove:
        if len(kept) == len(names):
            raise CliError(
                "No such name", f"The title has no {kind} name in '{language}'.", Exit.NOT_FOUND
            )
        return kept
    assert name is not None
    return [*kept, {"kind": kind, "language": language, "name": name}]


def _names_table(title: dict[str, Any]) -> None:
    table = Table()
    for column in ("kind", "language", "name"):
        table.add_column(column)
    for n in title.get("names") or []:
        table.add_row(n["kind"], n["language"], n["name"])
    console.print(table)


def _change_names(
    ctx: typer.Context, slug: str, kind: NameKind, language: str, name: str | None, remove: bool
) -> None:
    opts = _options(ctx)
    with opts.client() as api:
        title = api.get(f"/api/titles/{slug}")
        names = edit_names(title.get("names") or [], kind.value, language, name, remove=remove)
        title = api.patch(f"/api/admin/titles/{title['id']}", {"names": names})
    if opts.json_output:
        _print_json(title.get("names") or [])
        return
    _names_table(title)


@names_app.command("list")
def names_list(ctx: typer.Context, slug: str) -> None:
    """A title's names."""
    opts = _options(ctx)
    with opts.client(auth=False) as api:
        title = api.get(f"/api/titles/{slug}")
    if opts.json_output:
        _print_json(title.get("names") or [])
        return
    _names_table(title)


@names_app.command("set")
def names_set(
    ctx: typer.Context,
    slug: str,
    name: Annotated[str, typer.Argument(help="The name.")],
    kind: Annotated[NameKind, typer.Option("--kind", "-k")],
    language: Annotated[str, typer.Option("--language", "-l", help="ja, en, zh, ko, ...")],
) -> None:
    """Add a name, or replace the title's romaji, English or native name in that
    language (editor). Synonyms are added."""
    _change_names(ctx, slug, kind, language, name, remove=False)


@names_app.command("remove")
def names_remove(
    ctx: typer.Context,
    slug: str,
    kind: Annotated[NameKind, typer.Option("--kind", "-k")],
    language: Annotated[str, typer.Option("--language", "-l")],
    name: Annotated[str | None, typer.Argument(help="For a synonym: which one.")] = None,
) -> None:
    """Remove a name (editor)."""
    _change_names(ctx, slug, kind, language, name, remove=True)


def _episode_state(e: dict[str, Any]) -> str:
    state = str(e.get("transcodeState") or "")
    if state == "processing" and e.get("transcodeProgress") is not None:
        state += f" {e['transcodeProgress']:.0f}%"
    if e.get("playable") and state != "ready":
        state += ", playable"
    return state


@titles_app.command("show")
def titles_show(ctx: typer.Context, slug: str) -> None:
    """A title with its seasons and episodes."""
    opts = _options(ctx)
    with opts.client(auth=False) as api:
        title = api.get(f"/api/titles/{slug}")
    if opts.json_output:
        _print_json(title)
        return
    console.print(
        f"[bold]{title.get('displayName') or title['name']}[/] "
        f"({title['slug']}, {title['type']}, {title.get('year') or '-'})"
    )
    others = [n["name"] for n in title.get("names") or [] if n["name"] != title.get("displayName")]
    if others:
        console.print(f"[dim]also: {'; '.join(others)}[/]")
    console.print(
        f"[dim]id {title['id']}; genres: {', '.join(title.get('genres') or []) or '-'}[/]"
    )
    if title.get("synopsis"):
        console.print(title["synopsis"])
    if not title.get("seasons"):
        console.print(
            "No seasons yet: studio seasons create --title " + title["slug"] + " --number 1"
        )
    for season in title.get("seasons") or []:
        table = Table(
            "episode", "name", "state", "duration", "id", title=f"Season {season['number']}"
        )
        for e in season.get("episodes") or []:
            duration = e.get("durationSec")
            table.add_row(
                str(e["number"]),
                e["name"],
                _episode_state(e),
                f"{duration:.0f}s" if duration else "",
                e["id"],
            )
        console.print(table)


@seasons_app.command("create")
def seasons_create(
    ctx: typer.Context,
    title: Annotated[str, typer.Option("--title", help="The title's slug.")],
    number: Annotated[int, typer.Option("--number", "-n", min=0, max=1000)],
    name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Add a season to a title (editor)."""
    opts = _options(ctx)
    with opts.client() as api:
        title_data = api.get(f"/api/titles/{title}")
        body: dict[str, Any] = {"titleId": title_data["id"], "number": number}
        if name:
            body["name"] = name
        season = api.post("/api/admin/seasons", body)
    if opts.json_output:
        _print_json(season)
        return
    console.print(f"Created season {season['number']} of {title} ({season['id']}).")


# ------------------------------------------------------------------ upload


def _season(title: dict[str, Any], number: int) -> dict[str, Any]:
    for season in title.get("seasons") or []:
        if season["number"] == number:
            return dict(season)
    raise CliError(
        f"{title['slug']} has no season {number}",
        f"Create it: studio seasons create --title {title['slug']} --number {number}",
        Exit.NOT_FOUND,
    )


def _upload_subtitles(
    api: Api,
    state: UploadState,
    files: Sequence[tuple[Path, str]],
    source_upload_id: str,
) -> list[str]:
    """Each subtitle file is attached to the source upload by its id (one presigned
    PUT each, then verified); returns their upload ids. A file sent in an earlier
    run of the same upload is not sent again."""
    done: dict[str, str] = state.data.setdefault("subtitleUploads", {})
    ids = []
    for file, content_type in files:
        path = str(file.resolve())
        if path not in done:
            verified = upload_attached(api, file, "subtitle", content_type, source_upload_id)
            done[path] = str(verified["uploadId"])
            state.save()
            console.print(f"Subtitles {file.name} uploaded.")
        ids.append(done[path])
    return ids


def follow_transcode(api: Api, episode_id: str, *, timeout: float | None = None) -> dict[str, Any]:
    """Polls the episode until it is ready and playable, or failed, with a progress bar."""
    deadline = time.monotonic() + timeout if timeout else None
    columns = (
        TextColumn("[bold]transcode[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("transcode", total=100, state="queued")
        while True:
            episode: dict[str, Any] = api.get(f"/api/admin/episodes/{episode_id}")
            state = str(episode.get("transcodeState"))
            percent = float(episode.get("transcodeProgress") or 0)
            label = state + (" (playable)" if episode.get("playable") and state != "ready" else "")
            progress.update(task, completed=100 if state == "ready" else percent, state=label)
            # Ready is the job's word; playable is media's (it serves the episode).
            # The playback URL is asked for only once both say so.
            if state == "failed" or (state == "ready" and episode.get("playable")):
                return episode
            if deadline is not None and time.monotonic() > deadline:
                raise CliError(
                    "Gave up waiting for the transcode",
                    f"The episode is still {state}; follow it with: studio jobs list",
                    Exit.UNAVAILABLE,
                )
            time.sleep(1.0)


def _failure_reason(api: Api, episode: dict[str, Any]) -> str:
    job_id = episode.get("transcodeJobId")
    if job_id:
        try:
            job = api.get(f"/api/admin/jobs/{job_id}")
            if job.get("errorReason"):
                return f"{job['errorReason']} (job {job_id}; studio jobs show {job_id})"
        except ApiError:
            pass
    log = str(episode.get("transcodeLog") or "").strip()
    return log.splitlines()[0] if log else "no reason was recorded"


@app.command()
def upload(
    ctx: typer.Context,
    episode_file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="The source video."),
    ],
    title: Annotated[str, typer.Option("--title", help="The title's slug.")],
    season: Annotated[int, typer.Option("--season", min=0, max=1000)],
    episode: Annotated[int, typer.Option("--episode", min=0, max=10000)],
    name: Annotated[str | None, typer.Option(help="Episode name [default: Episode N].")] = None,
    subtitles: Annotated[
        list[Path] | None,
        typer.Option(
            "--subtitles",
            exists=True,
            dir_okay=False,
            help="A subtitle file (.vtt, .srt, .ass) named <name>.<lang>.<ext>; repeat.",
        ),
    ] = None,
    wait_for_transcode: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the transcode until it ends.")
    ] = True,
    public: Annotated[
        bool,
        typer.Option("--public/--private", help="Public episodes get plain CDN URLs in CDN mode."),
    ] = False,
    parallel: Annotated[int, typer.Option(min=1, max=16, help="Parts sent at once.")] = 3,
    timeout: Annotated[
        float | None, typer.Option(help="Longest wait for the transcode, in seconds.")
    ] = None,
) -> None:
    """Upload an episode (resumable: rerun after Ctrl-C), create it and follow its transcode."""
    opts = _options(ctx)
    if opts.credentials() is None:
        raise CliError("Not signed in", "Run: studio login --dev --role editor", Exit.AUTH)
    target = Target(title, season, episode)
    with opts.client() as api:
        # Media's own list: what it accepts is checked before anything is sent.
        accepted = Accepted.fetch(api)
        content_type = accepted.content_type("source", episode_file, "a video file")
        subtitle_files = [
            (sub, accepted.content_type("subtitle", sub, "a subtitle file"))
            for sub in subtitles or []
        ]
        state = UploadState.for_file(config.state_dir(), api.base_url, episode_file, target)
        episode_id = state.data.get("episodeId")
        if not episode_id:
            title_data = api.get(f"/api/titles/{title}")
            season_data = _season(title_data, season)
            existing = [e for e in season_data.get("episodes") or [] if e["number"] == episode]
            if existing:
                raise CliError(
                    f"Episode {episode} of season {season} already exists",
                    f"Its id is {existing[0]['id']}; delete it first to upload a new source.",
                    Exit.REJECTED,
                )
            uploader = MultipartUpload(
                api,
                console,
                state,
                episode_file,
                content_type,
                parallel=parallel,
                abort_after_parts=abort_after_parts_from_env(),
            )
            try:
                try:
                    outcome = uploader.run()
                except KeyboardInterrupt:
                    held = sorted(int(n) for n in state.parts)
                    raise CliError(
                        "Upload interrupted",
                        f"Parts {format_parts(held)} of {state.data.get('partCount')} are stored "
                        "(upload "
                        f"{state.data.get('uploadId')}). Run the same command again to send the rest.",
                        Exit.INTERRUPTED,
                    ) from None
                verified = uploader.complete(outcome.upload_id)
            finally:
                uploader.close()
            console.print(
                f"Uploaded {verified['key']} ({verified['size']} bytes, {verified['format']}): "
                f"sent parts {format_parts(outcome.sent)} this run"
                + (
                    f"; {format_parts(outcome.already_stored)} were already stored."
                    if outcome.already_stored
                    else "."
                )
            )
            subtitle_ids = _upload_subtitles(api, state, subtitle_files, str(verified["uploadId"]))
            # Catalog accepts only a source media verified for this editor; it
            # waits briefly for media's word to reach it.
            created = api.post(
                "/api/admin/episodes",
                {
                    "seasonId": season_data["id"],
                    "number": episode,
                    "name": name or f"Episode {episode}",
                    "sourceKey": verified["key"],
                    "subtitleUploadIds": subtitle_ids,
                    "public": public,
                },
            )
            episode_id = str(created["id"])
            state.data["episodeId"] = episode_id
            state.save()
            console.print(f"Episode {episode_id} created; transcode queued.")
        if not wait_for_transcode:
            state.discard()
            console.print(f"Follow it with: studio titles show {title}")
            return
        try:
            final = follow_transcode(api, episode_id, timeout=timeout)
        except KeyboardInterrupt:
            raise CliError(
                "Stopped following the transcode",
                f"It goes on. Rerun the same command to follow it again, or: studio titles show {title}",
                Exit.INTERRUPTED,
            ) from None
        state.discard()
        if final["transcodeState"] == "failed":
            raise CliError(
                "The transcode failed", _failure_reason(api, final), Exit.TRANSCODE_FAILED
            )
        hls = api.get(f"/api/episodes/{episode_id}/hls")
    if opts.json_output:
        _print_json({"episode": final, "hls": hls})
        return
    console.print(f"[green]Ready.[/] Renditions: {', '.join(final.get('renditions') or []) or '-'}")
    url = absolute_url(api.base_url, hls["url"])
    console.print(f"Playback URL (until {hls.get('expiresAt')}): {url}")
    console.print(f"Watch it: {api.base_url}/#/watch/{episode_id}")


def absolute_url(base_url: str, url: str) -> str:
    """A URL the API returned, absolute: development without MEDIA_PUBLIC_BASE_URL
    answers a path on the gateway."""
    return urljoin(f"{base_url.rstrip('/')}/", url)


# ------------------------------------------------------------------ jobs


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    status: Annotated[JobStatus | None, typer.Option()] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=100)] = 20,
) -> None:
    """Transcode jobs, newest first (editor)."""
    opts = _options(ctx)
    with opts.client() as api:
        data = api.get(
            "/api/admin/jobs",
            status=status.value if status else None,
            page=page,
            pageSize=page_size,
        )
    if opts.json_output:
        _print_json(data)
        return
    table = Table("id", "status", "progress", "attempts", "episode", "error")
    for j in data["items"]:
        table.add_row(
            j["id"],
            j["status"],
            f"{j['progress']:.0f}%",
            str(j["attempts"]),
            j["episodeId"],
            j.get("errorReason") or "",
        )
    console.print(table)
    console.print(
        f"[dim]page {data['page']} of {max(data['totalPages'], 1)}, {data['total']} jobs[/]"
    )


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: str) -> None:
    """One job with its error and the tail of its log."""
    opts = _options(ctx)
    with opts.client() as api:
        job = api.get(f"/api/admin/jobs/{job_id}")
    if opts.json_output:
        _print_json(job)
        return
    for label, key in (
        ("id", "id"),
        ("status", "status"),
        ("episode", "episodeId"),
        ("source", "sourceKey"),
        ("attempts", "attempts"),
        ("progress", "progress"),
        ("playable", "playable"),
        ("error", "errorReason"),
        ("queued", "queuedAt"),
        ("started", "startedAt"),
        ("finished", "finishedAt"),
    ):
        if job.get(key) is not None:
            console.print(f"[bold]{label:>9}[/] {job[key]}")
    if job.get("logTail"):
        console.rule("log tail")
        console.print(job["logTail"], markup=False, highlight=False)


@jobs_app.command("retry")
def jobs_retry(ctx: typer.Context, job_id: str) -> None:
    """Queue a failed job again."""
    opts = _options(ctx)
    with opts.client() as api:
        job = api.post(f"/api/admin/jobs/{job_id}/retry")
    if opts.json_output:
        _print_json(job)
        return
    console.print(f"Job {job['id']} queued again ({job['status']}).")


# ------------------------------------------------------------------ users


@users_app.command("role")
def users_role(
    ctx: typer.Context,
    email: str,
    role: Role,
) -> None:
    """Set the role of the user with this email (admin)."""
    opts = _options(ctx)
    with opts.client() as api:
        found = api.get("/api/admin/users", email=email, pageSize=100)
        matches = [u for u in found["items"] if (u.get("email") or "").lower() == email.lower()]
        if not matches:
            raise CliError(
                f"No user with the email {email}",
                "A user exists once they have signed in (or called /api/me).",
                Exit.NOT_FOUND,
            )
        user = api.put(f"/api/admin/users/{matches[0]['id']}/role", {"role": role.value})
    if opts.json_output:
        _print_json(user)
        return
    console.print(f"{user['email']} is now {user['role']}.")


# ------------------------------------------------------------------ entry point


def _report(error: CliError) -> None:
    err_console.print(f"[bold red]Error:[/] {error.title}", highlight=False)
    if error.detail:
        err_console.print(error.detail, markup=False, highlight=False)
    if isinstance(error, ApiError):
        for item in error.errors[:10]:
            err_console.print(
                f"  {item.get('pointer', '')}: {item.get('message', '')}",
                markup=False,
                highlight=False,
            )


def main(argv: Sequence[str] | None = None) -> int:
    command = typer.main.get_command(app)
    try:
        command.main(
            args=list(argv) if argv is not None else sys.argv[1:],
            prog_name="studio",
            standalone_mode=False,
        )
    except CliError as error:
        _report(error)
        return int(error.code)
    except typer.Exit as done:
        return int(done.exit_code)
    except typer.Abort:
        err_console.print("Interrupted.")
        return int(Exit.INTERRUPTED)
    except typer.TyperException as error:
        # Usage errors (the vendored click's): printed as click does, exit code 2.
        show = getattr(error, "show", None)
        if show is None:
            raise
        show()
        return int(getattr(error, "exit_code", Exit.USAGE))
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        return int(Exit.INTERRUPTED)
    except OSError as error:
        _report(CliError(error.strerror or type(error).__name__, str(error), Exit.FAILURE))
        return int(Exit.FAILURE)
    except Exception as error:
        if os.environ.get("STUDIO_CLI_DEBUG"):
            raise
        _report(
            CliError(
                f"Unexpected error: {type(error).__name__}",
                f"{error} (set STUDIO_CLI_DEBUG=1 for the traceback)",
            )
        )
        return int(Exit.FAILURE)
    return 0
