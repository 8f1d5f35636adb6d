"""``python -m studio_identity migrate|serve|token|rotate-key``.

``token`` prints a development token signed with the same key file the server
uses (no server needed)::

    curl -H "Authorization: Bearer $(uv run python -m studio_identity token --role admin)" \\
        localhost:8080/api/admin/users

``rotate-key`` replaces the development signing key; the old public key stays
in the JWKS for a grace period, and a running server picks the change up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from studio_identity.config import IdentitySettings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def _token(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="studio-identity token", description="Print a development token."
    )
    parser.add_argument("--role", choices=["viewer", "editor", "admin"], default="viewer")
    parser.add_argument("--email", default=None, help="default: <role>@studio.local")
    parser.add_argument("--sub", default=None, help="default: derived from the email")
    parser.add_argument("--ttl", type=int, default=None, help="seconds (default 3600)")
    args = parser.parse_args(argv)

    from studio_identity.issuer import dev_key_store, issue_dev_token

    settings = IdentitySettings()
    if not settings.dev_issuer_enabled:
        print("studio-identity: no development tokens in production", file=sys.stderr)
        return 2
    email = args.email or f"{args.role}@studio.local"
    try:
        issued = issue_dev_token(
            settings,
            dev_key_store(settings),
            role=args.role,
            email=email,
            sub=args.sub,
            ttl_seconds=args.ttl,
        )
    except ValueError as exc:
        print(f"studio-identity: {exc}", file=sys.stderr)
        return 2
    print(issued.token)
    return 0


def _rotate_key(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="studio-identity rotate-key",
        description="Replace the development signing key; the old public key stays in the JWKS.",
    )
    parser.add_argument(
        "--grace", type=float, default=None, help="seconds the old key stays (default: settings)"
    )
    args = parser.parse_args(argv)

    from studio_identity.issuer import dev_key_store

    settings = IdentitySettings()
    store = dev_key_store(settings)
    old = store.load_or_create().kid
    new = store.rotate(grace_seconds=args.grace)
    print(
        f"studio-identity: signing key {old} retired, now signing with {new.kid}", file=sys.stderr
    )
    print(new.kid)
    return 0


LOCAL_COMMANDS: dict[str, tuple[str, Callable[[Sequence[str]], int]]] = {
    "token": ("print a development token (--role, --email, --sub, --ttl)", _token),
    "rotate-key": ("replace the development signing key (--grace SECONDS)", _rotate_key),
}


def _listed_only(_: argparse.Namespace) -> None:  # handled before the shared CLI parses
    raise AssertionError("unreachable")


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in LOCAL_COMMANDS:
        raise SystemExit(LOCAL_COMMANDS[args[0]][1](args[1:]))
    # Imported here: the token commands stay quick without the server stack.
    from studio_common.cli import run_service_cli

    run_service_cli(
        service="identity",
        app_factory="studio_identity.main:create_app",
        settings_cls=IdentitySettings,
        service_dir=SERVICE_DIR,
        default_port=8102,
        extra={name: (text, _listed_only) for name, (text, _) in LOCAL_COMMANDS.items()},
        argv=args,
    )


if __name__ == "__main__":
    main()
