"""The command line every service shares: ``migrate``, ``serve`` and its own extras.

``python -m studio_<service> migrate`` upgrades the service's schema;
``python -m studio_<service> serve --port N`` runs the API with uvicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from studio_common.migrations import upgrade
from studio_common.settings import ServiceSettings

ExtraCommand = Callable[[argparse.Namespace], Coroutine[Any, Any, None] | None]


def run_service_cli(
    *,
    service: str,
    app_factory: str,
    settings_cls: type[ServiceSettings],
    service_dir: Path,
    default_port: int,
    extra: dict[str, tuple[str, ExtraCommand]] | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    parser = argparse.ArgumentParser(prog=f"studio-{service}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="upgrade this service's schema to the latest revision")
    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=default_port)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--reload", action="store_true")
    for name, (help_text, _) in (extra or {}).items():
        sub.add_parser(name, help=help_text)
    args = parser.parse_args(argv)

    if args.command == "migrate":
        upgrade(service_dir, settings_cls().database_url)
        print(f"{service}: schema is at the latest revision", file=sys.stderr)
    elif args.command == "serve":
        import uvicorn

        uvicorn.run(
            app_factory,
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            reload=args.reload,
            # The app decides whose X-Forwarded-* it believes (STUDIO_TRUSTED_PROXIES),
            # so every server and every test sees the same client address.
            proxy_headers=False,
            log_config=None,
            access_log=False,
        )
    else:
        _, command = (extra or {})[args.command]
        result = command(args)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
