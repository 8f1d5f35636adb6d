"""Prometheus metrics of the worker process and of the API process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from studio_transcoder.models import JOB_STATUSES

if TYPE_CHECKING:
    from studio_transcoder.pipeline import AttemptResult


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.attempts = Counter(
            "transcoder_job_attempts_total",
            "Finished job attempts by outcome (ready, failed, retried, handed_back, redone_after_outage).",
            ["outcome"],
            registry=registry,
        )
        self.running = Gauge(
            "transcoder_jobs_running", "Jobs this worker is running now.", registry=registry
        )
        self.failures = Counter(
            "transcoder_job_failures_total",
            "Failed attempts by reason code and whether the failure is permanent.",
            ["reason", "permanent"],
            registry=registry,
        )
        self.encode_ratio = Histogram(
            "transcoder_encode_seconds_per_media_second",
            "Wall seconds of the ffmpeg run per second of source (below 1 is faster than realtime).",
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
        )
        self.time_to_playable = Histogram(
            "transcoder_seconds_to_playable",
            "Seconds from the start of an attempt until its first playlists are in storage.",
            registry=registry,
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300),
        )
        self.storage_up = Gauge(
            "transcoder_storage_up",
            "1 while storage answers; 0 during an outage (the worker takes no new job).",
            registry=registry,
        )
        self.dead_letters = Counter(
            "transcoder_dead_letters_total",
            "Messages the worker parked on the dead-letter subject.",
            registry=registry,
        )

    def record_ready(self, result: AttemptResult) -> None:
        self.attempts.labels("ready").inc()
        self.encode_ratio.observe(result.encode_seconds / max(result.duration, 1e-3))
        if result.seconds_to_playable is not None:
            self.time_to_playable.observe(result.seconds_to_playable)


class JobGauge:
    """Jobs by status, from the database (the API process refreshes it)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauge = Gauge("transcoder_jobs", "Jobs by status.", ["status"], registry=registry)
        for status in JOB_STATUSES:
            self.gauge.labels(status).set(0)

    def update(self, counts: dict[str, int]) -> None:
        for status in JOB_STATUSES:
            self.gauge.labels(status).set(counts.get(status, 0))
