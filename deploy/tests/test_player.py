"""The demo player's image (web/player/Dockerfile) and its generated nginx
config, checked without Docker."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from studio_devstack.gateway import find_nginx

from .conftest import ROOT

PLAYER = ROOT / "web" / "player"
DOCKERFILE = PLAYER / "Dockerfile"
NGINX_CONF = PLAYER / "nginx.conf"


def player_conf_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("player_nginx_conf", PLAYER / "nginx_conf.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_nginx_config_is_up_to_date():
    assert NGINX_CONF.read_text(encoding="utf-8") == player_conf_module().render(), (
        "regenerate: uv run --frozen python web/player/nginx_conf.py > web/player/nginx.conf"
    )


def test_the_image_is_unprivileged_nginx_with_the_config_and_every_file_the_page_loads():
    module = player_conf_module()
    instructions = dockerfile_instructions()
    (base,) = [arg for op, arg in instructions if op == "FROM"]
    assert base.startswith("nginxinc/nginx-unprivileged:")
    copies = [shlex.split(arg) for op, arg in instructions if op == "COPY"]
    assert ["web/player/nginx.conf", "/etc/nginx/nginx.conf"] in copies
    root = str(module.ROOT_IN_IMAGE).rstrip("/") + "/"
    in_image: set[str] = set()
    for *sources, target in copies:
        if target.rstrip("/") + "/" == root:
            in_image |= {Path(s).name for s in sources}
        elif target.startswith(root):
            in_image |= {target.removeprefix(root).strip("/")}
    # What index.html loads (and index.html itself), by its path under /player/.
    page = (PLAYER / "index.html").read_text(encoding="utf-8")
    loaded = set(re.findall(r'(?:src|href)="/player/([^"]+)"', page)) | {"index.html"}
    assert {"app.js", "style.css", "vendor/hls.min.js"} <= loaded
    for path in loaded:
        assert (PLAYER / path).is_file(), path
        assert path in in_image or path.split("/", 1)[0] in in_image, path
    # Nothing but the player's files: not the generator, the Dockerfile or docs.
    assert not {"nginx_conf.py", "Dockerfile", "README.md", "nginx.conf"} & in_image
    assert ("EXPOSE", str(module.LISTEN_PORT)) in instructions
    # nginx alone, none of the base image's entrypoint scripts (they write to /etc/nginx).
    assert ("ENTRYPOINT", "[]") in instructions
    (cmd,) = [arg for op, arg in instructions if op == "CMD"]
    assert cmd.startswith('["nginx"')


def test_the_nginx_config_is_valid_nginx(tmp_path: Path):
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx is not installed")
    module = player_conf_module()
    conf = NGINX_CONF.read_text(encoding="utf-8")
    assert f"pid {module.PlayerServerOptions.runtime_dir}/nginx.pid;" in conf
    # Its /tmp and files as they are here; nginx -t opens no listening socket.
    conf = re.sub(r"(?m)^(\s*(?:pid|\w+_temp_path)) /tmp/", rf"\1 {tmp_path}/", conf)
    conf = conf.replace(str(module.ROOT_IN_IMAGE), str(PLAYER))
    conf = conf.replace(str(module.CONFIG_DIR), str(tmp_path / "config"))
    (tmp_path / "nginx.conf").write_text(conf, encoding="utf-8")
    argv = [nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    result = subprocess.run(
        [*argv, "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
