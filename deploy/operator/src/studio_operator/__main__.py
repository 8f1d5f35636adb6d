"""``python -m studio_operator``: run the operator (kopf) in one namespace.

The chart runs it with ``OPERATOR_NAMESPACE`` set to the release namespace, so
it needs a Role there and nothing cluster-wide.

``python -m studio_operator release`` deletes the namespace's
TranscoderAutoscalers and makes sure no finalizer of the operator is left on
them (the chart's pre-delete hook; studio_operator.release).
"""

from __future__ import annotations

import asyncio
import logging
import os
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
    if args[:1] == ["release"]:
        from studio_operator.release import run

        namespace = settings.namespace or "default"
        wait = float(os.environ.get("OPERATOR_RELEASE_WAIT_SECONDS", "60"))
        report = asyncio.run(run(namespace, wait))
        logging.getLogger("studio_operator").info(
            "released %s: deleted %s, the operator let go of %s, finalizer removed from %s",
            namespace,
            report.deleted,
            report.released,
            report.forced,
        )
        return 0
    if args:
        print(f"usage: python -m studio_operator [release], not {args}", file=sys.stderr)
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
