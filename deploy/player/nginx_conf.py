"""The player image's nginx config (deploy/player/Dockerfile), generated.

    uv run --frozen python deploy/player/nginx_conf.py > deploy/player/nginx.conf

The same code as the local and compose gateways renders it, so the player gets
the same locations, security headers and problem bodies wherever it is served.
The chart mounts its ConfigMap at CONFIG_DIR (config.json and the Clerk origin);
deploy/tests/test_player.py fails when the checked-in file is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from studio_devstack.gateway import PlayerServerOptions, render_player_nginx_conf

OUTPUT = Path(__file__).resolve().parent / "nginx.conf"
# Inside the image: where the Dockerfile copies the files, where the chart mounts
# the player's ConfigMap, and the port its Deployment names.
ROOT_IN_IMAGE = Path("/usr/share/nginx/player")
CONFIG_DIR = Path("/etc/studio/player")
LISTEN_PORT = 8080


def render() -> str:
    return render_player_nginx_conf(
        PlayerServerOptions(root=ROOT_IN_IMAGE, config_dir=CONFIG_DIR, listen=str(LISTEN_PORT))
    )


if __name__ == "__main__":
    sys.stdout.write(render())
