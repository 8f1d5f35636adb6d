"""The TranscoderAutoscaler spec the operator's tests start from."""

from __future__ import annotations

from typing import Any


def autoscaler_spec(**changes: Any) -> dict[str, Any]:
    """A spec for the transcoder worker's queue, with ``changes`` over it."""
    return {
        "targetDeployment": "studio-transcoder-worker",
        "natsUrl": "nats://nats:4222",
        "stream": "STUDIO",
        "consumer": "transcoder-worker-catalog-episode-uploaded",
        "minReplicas": 0,
        "maxReplicas": 5,
        "jobsPerReplica": 1,
        "scaleDownCooldownSeconds": 0,
        **changes,
    }
