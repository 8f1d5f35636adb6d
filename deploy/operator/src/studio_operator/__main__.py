"""``python -m studio_operator``: run the operator (kopf) in one namespace.

The chart runs it with ``OPERATOR_NAMESPACE`` set to the release namespace, so
it needs a Role there and nothing cluster-wide.
"""

from __future__ import annotations

import logging

import kopf

from studio_operator import handlers


def main() -> None:
    settings = handlers.SETTINGS
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    kopf.run(
        standalone=True,
        clusterwide=settings.namespace is None,
        namespaces=[settings.namespace] if settings.namespace else (),
        liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz",
    )


if __name__ == "__main__":
    main()
