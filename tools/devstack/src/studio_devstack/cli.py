"""`studio-dev`: the local stack's command line.

    studio-dev up                 run everything in the foreground (Ctrl-C stops it)
    studio-dev down               stop a running stack and leftover private servers
    studio-dev gateway-config     print the nginx config generated from the route table
    studio-dev images [NAME...]   build every image with the local Docker engine (`make images`)

`run-service` and `s3` are what `up` runs for each process; they are not meant
to be typed by hand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from studio_devstack import images, s3, services, stack
from studio_devstack.backing import BackingServiceUnavailable
from studio_devstack.gateway import render_nginx_conf
from studio_devstack.routes import RouteTableError, Service
from studio_devstack.settings import DevSettings, environment_with_dotenv, find_root


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio-dev", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--routes", type=Path, help="route table (default: the checkout's)")
        p.add_argument("--data-dir", type=Path, help="state directory (default: .data)")

    up = sub.add_parser("up", help="run the whole stack in the foreground")
    common(up)
    up.add_argument("--no-gateway", action="store_true", help="do not start nginx")

    down = sub.add_parser("down", help="stop the stack and private servers it started")
    common(down)

    config = sub.add_parser("gateway-config", help="print the generated nginx config")
    common(config)

    build = sub.add_parser("images", help="build every image (stand-in bases without a registry)")
    build.add_argument("names", nargs="*", help="images to build (default: all)")
    build.add_argument("--no-pull", action="store_true", help="never try a registry")

    run_service = sub.add_parser("run-service", help=argparse.SUPPRESS)
    run_service.add_argument("name")
    run_service.add_argument("--port", type=int, required=True)
    run_service.add_argument("--host", default="127.0.0.1")
    run_service.add_argument("--seed", action="store_true")
    run_service.add_argument(
        "--worker", help="run this CLI command of the service instead of serve"
    )

    s3_server = sub.add_parser("s3", help=argparse.SUPPRESS)
    s3_server.add_argument("--port", type=int, required=True)
    s3_server.add_argument("--host", default="127.0.0.1")
    s3_server.add_argument("--store", type=Path, help="keep the objects in this directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = find_root(Path.cwd())
    if args.command == "images":
        try:
            images.build(root, args.names, pull=not args.no_pull)
        except images.ImageBuildError as exc:
            print(f"studio-dev images: {exc}", file=sys.stderr)
            return 1
        return 0
    env = environment_with_dotenv(root)
    try:
        settings = DevSettings.from_env(
            env,
            root,
            data_dir=args.__dict__.get("data_dir"),
            routes_file=args.__dict__.get("routes"),
        )
        if args.command == "up":
            return stack.run(settings, with_gateway=not args.no_gateway)
        if args.command == "down":
            return stack.down(settings.data_dir, settings.port_offset)
        if args.command == "gateway-config":
            table = stack.stack_route_table(settings)
            sys.stdout.write(render_nginx_conf(table, stack.gateway_options(settings)))
            return 0
        if args.command == "run-service":
            service = Service(args.name, args.port)
            if args.worker:
                return services.launch_worker(service, args.worker, args.host)
            plan = services.LaunchPlan(service=service, host=args.host, seed=args.seed)
            return services.launch(plan)
        if args.command == "s3":
            location = s3.S3Location(
                endpoint_url=f"http://{args.host}:{args.port}",
                bucket=settings.s3_bucket,
                region=settings.s3_region,
                access_key_id=settings.s3_access_key_id,
                secret_access_key=settings.s3_secret_access_key,
            )
            return s3.serve(args.host, args.port, location, args.store, settings.database_url)
    except (RouteTableError, BackingServiceUnavailable, ValueError, FileNotFoundError) as exc:
        print(f"studio-dev: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
