"""Image mode (`STUDIO_IMAGES=1`): each service command becomes a `docker run` of
its image, read-only as uid 10001 on the host network, settings passed by name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studio_devstack import services
from studio_devstack.routes import Service, load_route_table
from studio_devstack.settings import DevSettings
from studio_devstack.stack import plan_stack

ROOT = Path(__file__).resolve().parents[3]


def test_a_service_command_runs_in_its_image_with_settings_by_name() -> None:
    env = {
        "STUDIO_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/x",
        "MEDIA_PLAYBACK_SIGNING_KEY": "secret-value",
        "STUDIO_DATA_DIR": "/srv/studio-data",
        "STUDIO_PORT_OFFSET": "20000",
        "STUDIO_IMAGES": "1",
        "HOME": "/root",
    }
    argv = services.container_argv(Service("media", 28103), ["migrate"], env)
    assert argv[1:3] == ["run", "--rm"]
    joined = " ".join(argv)
    for flag in ("--network host", "--read-only", "--user 10001", "--tmpfs /tmp"):
        assert flag in joined
    assert "--label studio.stack=20000" in joined
    # Values stay out of the command line (ps shows it); docker reads them by name.
    assert "secret-value" not in joined
    assert "-e MEDIA_PLAYBACK_SIGNING_KEY" in joined
    assert "-e HOME" not in joined
    assert "-e STUDIO_IMAGES" not in joined
    assert "-v /srv/studio-data:/srv/studio-data" in joined
    assert argv[-5:] == ["studio/studio-media:dev", "python", "-m", "studio_media", "migrate"]


@pytest.mark.parametrize(("value", "on"), [("1", True), ("true", True), ("0", False), ("", False)])
def test_image_mode_is_read_from_studio_images(value: str, on: bool, tmp_path: Path) -> None:
    assert services.image_mode({"STUDIO_IMAGES": value}) is on
    assert DevSettings.from_env({"STUDIO_IMAGES": value}, tmp_path).images is on


def test_the_plan_passes_image_mode_the_data_dir_and_the_key_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IDENTITY_DEV_KEY_PATH", raising=False)
    settings = DevSettings.from_env({"STUDIO_IMAGES": "1", "STUDIO_PORT_OFFSET": "3000"}, tmp_path)
    table = load_route_table(ROOT / "deploy/helm/studio/routes.yaml").shifted(3000)
    plan = plan_stack(settings, table, reachable=lambda host, port: True)
    env = {p.name: p.env for p in plan.processes}
    for name in ("catalog", "transcoder-worker"):
        assert env[name]["STUDIO_IMAGES"] == "1"
        assert env[name]["STUDIO_DATA_DIR"] == str(tmp_path / ".data")
        assert env[name]["STUDIO_PORT_OFFSET"] == "3000"
    # The default key path is relative to a checkout the image does not have.
    assert env["identity"]["IDENTITY_DEV_KEY_PATH"] == str(tmp_path / ".data/identity/jwt-key.pem")


def test_the_data_dir_is_made_writable_for_the_containers_user(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    services.prepare_data_dir(data)
    assert data.stat().st_mode & 0o001
    for name in ("identity", "transcode"):
        path = data / name
        if os.geteuid() == 0:
            assert path.stat().st_uid == services.CONTAINER_UID
        else:
            assert path.stat().st_mode & 0o777 == 0o777
