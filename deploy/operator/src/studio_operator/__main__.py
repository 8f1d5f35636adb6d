"""``python -m studio_operator``: run the operator (kopf) in one namespace.

The chart runs it with ``OPERATOR_NAMESPACE`` set to the release namespace, so
it needs a Role there and nothing cluster-wide.
"""

from __future__ import annotations

import logging
import sys

import kopf

from studio_operator import handlers


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    settings = handlers.SETTINGS
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if args:
        print(f"usage: python -m studio_operator (no arguments), not {args}", file=sys.stderr)
        return 2
    kopf.run(
        standalone=True,
        clusterwide=settings.namespace is None,
        namespaces=[settings.namespace] if settings.namespace else (),
        liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
