"""`studio-dev images`: build every image of the project with the local Docker engine.

The Dockerfiles take their base images as build arguments (`PYTHON_IMAGE`,
`UV_IMAGE`, `NGINX_IMAGE`), defaulting to the real upstream images. For each
base this uses the image when the engine already has it, else tries to pull it,
else builds a stand-in from Debian packages, so a machine that reaches no image
registry still builds and runs every image:

- python: a `debootstrap` bookworm rootfs with python3 (`docker import`), the
  machine's CA bundle trusted (package downloads inside builds go through it);
- uv: an image holding only `/uv`, the uv binary this machine runs;
- nginx-unprivileged: the python stand-in with Debian's nginx, run as uid 101
  with the real image's paths.

Stand-ins are tagged `studio-base/...` and built once: an existing one is reused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

UPSTREAM = {
    "PYTHON_IMAGE": "python:3.11-slim",
    "UV_IMAGE": "ghcr.io/astral-sh/uv:0.13",
    "NGINX_IMAGE": "nginxinc/nginx-unprivileged:1.27-alpine",
}
STAND_INS = {
    "PYTHON_IMAGE": "studio-base/python:3.11",
    "UV_IMAGE": "studio-base/uv:local",
    "NGINX_IMAGE": "studio-base/nginx-unprivileged:local",
}
DEBIAN_MIRROR = "http://deb.debian.org/debian"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PULL_TIMEOUT = 60.0
DAEMON_START_TIMEOUT = 60.0
# Only loopback: no docker0 bridge, no iptables rules; builds and containers use
# the host's network.
DOCKERD_ARGV = ["dockerd", "--bridge=none", "--iptables=false"]


@dataclass(frozen=True)
class Image:
    name: str
    dockerfile: str
    # Build arguments naming base images this Dockerfile uses.
    bases: tuple[str, ...]
    # Other build arguments: which service services/Dockerfile builds.
    args: tuple[tuple[str, str], ...] = ()

    @property
    def tag(self) -> str:
        return f"studio/studio-{self.name}:dev"


SERVICES = ("catalog", "identity", "media", "transcoder", "playback")
# One Dockerfile for every service, which one chosen by `--build-arg SERVICE=`.
SERVICE_DOCKERFILE = "services/Dockerfile"
IMAGES: tuple[Image, ...] = (
    *(
        Image(s, SERVICE_DOCKERFILE, ("PYTHON_IMAGE", "UV_IMAGE"), (("SERVICE", s),))
        for s in SERVICES
    ),
    Image("operator", "deploy/operator/Dockerfile", ("PYTHON_IMAGE", "UV_IMAGE")),
    Image("player", "deploy/player/Dockerfile", ("NGINX_IMAGE",)),
)


class ImageBuildError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[studio-dev images] {message}", flush=True)


def _run(argv: Sequence[str], **kwargs: object) -> None:
    log("$ " + " ".join(argv))
    code = subprocess.run(list(argv), check=False, **kwargs).returncode  # type: ignore[call-overload]  # noqa: S603
    if code != 0:
        raise ImageBuildError(f"{argv[0]} {argv[1]} failed with exit code {code}")


def _quiet(argv: Sequence[str], timeout: float | None = None) -> bool:
    try:
        return (
            subprocess.run(  # noqa: S603 - fixed argv
                list(argv),
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
            ).returncode
            == 0
        )
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return False


def docker_works() -> bool:
    return _quiet(["docker", "info"], timeout=20)


def ensure_docker() -> None:
    """Make `docker` answer: install docker.io and start dockerd as root when needed."""
    if docker_works():
        return
    is_root = os.geteuid() == 0
    if shutil.which("dockerd") is None:
        if not (is_root and shutil.which("apt-get")):
            raise ImageBuildError("no Docker engine: install docker.io (apt-get) as root")
        log("installing docker.io")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run(["apt-get", "update", "-qq"], env=env)
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io"], env=env)
    if not is_root:
        raise ImageBuildError("dockerd is not running; start it as root: " + " ".join(DOCKERD_ARGV))
    log("starting " + " ".join(DOCKERD_ARGV))
    with open("/var/log/studio-dockerd.log", "ab") as out:
        subprocess.Popen(  # noqa: S603 - a daemon that outlives this command
            DOCKERD_ARGV, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + DAEMON_START_TIMEOUT
    while time.monotonic() < deadline:
        if docker_works():
            return
        time.sleep(1)
    raise ImageBuildError("dockerd did not answer; see /var/log/studio-dockerd.log")


def image_exists(ref: str) -> bool:
    return _quiet(["docker", "image", "inspect", ref], timeout=30)


def find_uv_binary() -> Path:
    """The uv executable itself (not a pyenv or shell shim)."""
    candidates: list[str] = []
    found = shutil.which("uv")
    if found:
        candidates.append(found)
    if shutil.which("pyenv"):
        pyenv = subprocess.run(
            ["pyenv", "which", "uv"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        candidates.append(pyenv.stdout.strip())
    for python in (sys.executable, shutil.which("python3") or ""):
        if not python:
            continue
        probe = subprocess.run(  # noqa: S603
            [python, "-c", "import uv; print(uv.find_uv_bin())"],
            capture_output=True,
            text=True,
            check=False,
        )
        candidates.append(probe.stdout.strip())
    for candidate in candidates:
        path = Path(candidate).resolve() if candidate else None
        if path and path.is_file() and path.read_bytes()[:4] == b"\x7fELF":
            return path
    raise ImageBuildError("no uv binary found (install uv: scripts/bootstrap.sh)")


def build_python_stand_in(tag: str) -> None:
    if shutil.which("debootstrap") is None:
        if os.geteuid() == 0 and shutil.which("apt-get"):
            _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"])
        else:
            raise ImageBuildError("debootstrap is missing (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="studio-rootfs-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "rootfs"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(root),
                DEBIAN_MIRROR,
            ],
            stdout=subprocess.DEVNULL,
        )
        # The machine's bundle: it may hold the CA that downloads are re-signed with.
        if CA_BUNDLE.is_file():
            shutil.copyfile(CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")
        # `python` as in the upstream image.
        (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for child in (root / leftover).glob("*"):
                if child.is_file():
                    child.unlink()
        tar = subprocess.Popen(  # noqa: S603
            ["tar", "-C", str(root), "-c", "."],  # noqa: S607
            stdout=subprocess.PIPE,
        )
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            'CMD ["python3"]',
        ]
        argv = ["docker", "import"]
        for change in changes:
            argv += ["--change", change]
        _run([*argv, "-", tag], stdin=tar.stdout)
        tar.wait()


def _build_from_dockerfile(tag: str, dockerfile: str, files: dict[str, Path]) -> None:
    with tempfile.TemporaryDirectory(prefix="studio-base-") as tmp:
        for name, source in files.items():
            shutil.copy2(source, Path(tmp) / name)
        (Path(tmp) / "Dockerfile").write_text(dockerfile)
        _run(["docker", "build", "--network", "host", "-t", tag, tmp])


def build_uv_stand_in(tag: str) -> None:
    _build_from_dockerfile(tag, "FROM scratch\nCOPY uv /uv\n", {"uv": find_uv_binary()})


def build_nginx_stand_in(tag: str, python_base: str) -> None:
    # The real image: user nginx (uid/gid 101), /etc/nginx, /usr/share/nginx,
    # listening on 8080; deploy/player/nginx.conf keeps pid and temp files in /tmp.
    dockerfile = f"""FROM {python_base}
RUN apt-get update \\
 && apt-get install -y --no-install-recommends nginx-light \\
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \\
 && groupadd --system --gid 101 nginx \\
 && useradd --system --uid 101 --gid 101 --no-create-home --shell /usr/sbin/nologin nginx \\
 && chown -R 101:101 /var/lib/nginx /var/log/nginx /usr/share/nginx
STOPSIGNAL SIGQUIT
USER 101
EXPOSE 8080
CMD ["nginx", "-g", "daemon off;"]
"""
    _build_from_dockerfile(tag, dockerfile, {})


def choose_bases(pull: bool = True) -> dict[str, str]:
    """The image each base build argument names: upstream when available, else a stand-in."""
    chosen: dict[str, str] = {}
    for arg in ("PYTHON_IMAGE", "UV_IMAGE", "NGINX_IMAGE"):
        upstream = UPSTREAM[arg]
        if image_exists(upstream) or (
            pull and _quiet(["docker", "pull", upstream], timeout=PULL_TIMEOUT)
        ):
            log(f"{arg}={upstream}")
            chosen[arg] = upstream
            continue
        stand_in = STAND_INS[arg]
        if not image_exists(stand_in):
            log(f"{upstream} cannot be pulled: building the stand-in {stand_in}")
            if arg == "PYTHON_IMAGE":
                build_python_stand_in(stand_in)
            elif arg == "UV_IMAGE":
                build_uv_stand_in(stand_in)
            else:
                build_nginx_stand_in(stand_in, chosen["PYTHON_IMAGE"])
        log(f"{arg}={stand_in} (stand-in)")
        chosen[arg] = stand_in
    return chosen


def build(root: Path, names: Sequence[str] = (), pull: bool = True) -> list[str]:
    """Build the named images (all by default); returns their tags."""
    ensure_docker()
    bases = choose_bases(pull)
    selected = [image for image in IMAGES if not names or image.name in names]
    unknown = set(names) - {image.name for image in IMAGES}
    if unknown:
        raise ImageBuildError(f"unknown image(s): {', '.join(sorted(unknown))}")
    for image in selected:
        started = time.monotonic()
        argv = ["docker", "build", "--network", "host", "-f", image.dockerfile, "-t", image.tag]
        for arg in image.bases:
            argv += ["--build-arg", f"{arg}={bases[arg]}"]
        for arg, value in image.args:
            argv += ["--build-arg", f"{arg}={value}"]
        _run([*argv, "."], cwd=root)
        log(f"{image.tag} built in {time.monotonic() - started:.0f}s")
    return [image.tag for image in selected]
