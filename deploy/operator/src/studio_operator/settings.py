"""The operator's own settings (``OPERATOR_*``), read once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

GROUP = "studio.anime"
VERSION = "v1alpha1"
PLURAL = "transcoderautoscalers"
KIND = "TranscoderAutoscaler"


@dataclass(frozen=True)
class OperatorSettings:
    # The namespace watched; the chart sets it to the release's own.
    namespace: str | None = None
    # How often each TranscoderAutoscaler is evaluated.
    interval_seconds: float = 15.0
    # kopf's liveness endpoint, probed by the kubelet.
    liveness_port: int = 8080
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env
        interval = float(env.get("OPERATOR_INTERVAL_SECONDS", "15"))
        if interval <= 0:
            raise ValueError("OPERATOR_INTERVAL_SECONDS must be above 0")
        port = int(env.get("OPERATOR_LIVENESS_PORT", "8080"))
        if not 0 < port < 65536:
            raise ValueError("OPERATOR_LIVENESS_PORT must be a TCP port")
        return cls(
            namespace=env.get("OPERATOR_NAMESPACE") or None,
            interval_seconds=interval,
            liveness_port=port,
            log_level=env.get("OPERATOR_LOG_LEVEL", "INFO").upper(),
        )
