"""Prometheus metrics of a run's generation: what a platform team watches and alerts on.

A shard (``stage`` ``augment_shard``) reports, labelled ``run`` (the KFP run id), ``stage`` and
``shard``:

| series | what |
|---|---|
| ``teacherlm_records_out_total`` | records written (augmented) |
| ``teacherlm_records_quarantined_total`` | records quarantined |
| ``teacherlm_generated_tokens_total`` | tokens the teacher generated |
| ``teacherlm_parts_done_total`` | parts finished (by this pod or found finished) |
| ``teacherlm_progress_ratio`` | records done / records of the shard |
| ``teacherlm_eta_seconds`` | time left at this pod's rate |
| ``teacherlm_last_part_timestamp_seconds`` | when the last part finished (the shard's start before one did) |

They are served on the pod (``TEACHERLM_METRICS_PORT``: a PodMonitor scrapes it, with vLLM's own
``vllm:*`` series, which :class:`~teacherlm_core.engines.vllm.VLLMEngine` switches on in the same
default registry), and pushed to a Pushgateway (``TEACHERLM_PUSHGATEWAY``) when the shard ends,
for pods too short-lived to be scraped. A Pushgateway keeps every group until deleted, so the
merge deletes the run's groups (:func:`delete_run_groups`). Neither set: nothing is recorded.
"""

from __future__ import annotations

import os
import time

__all__ = [
    "JOB",
    "PORT_ENV",
    "PUSHGATEWAY_ENV",
    "ShardMetrics",
    "delete_run_groups",
    "metrics_enabled",
]

PORT_ENV = "TEACHERLM_METRICS_PORT"
PUSHGATEWAY_ENV = "TEACHERLM_PUSHGATEWAY"
JOB = "teacherlm"  # the Pushgateway job of every group
LABELS = ("run", "stage", "shard")


def metrics_enabled() -> bool:
    """Whether this process reports metrics (a port to serve them on, or a Pushgateway)."""
    return bool(os.environ.get(PORT_ENV) or os.environ.get(PUSHGATEWAY_ENV))


class ShardMetrics:
    """One shard's series in its own registry (pushed as one group); also in the default registry when served."""

    def __init__(self, run: str, stage: str, shard: str, total_records: int):
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.labels = {"run": run or "local", "stage": stage, "shard": shard}
        self.total, self.done, self.own_done = total_records, 0, 0
        self.started = time.time()
        self.registry, self.collectors = CollectorRegistry(), []

        def make(kind, name: str, doc: str):
            self.collectors.append(kind(name, doc, LABELS, registry=self.registry))
            return self.collectors[-1].labels(**self.labels)

        self.out = make(Counter, "teacherlm_records_out", "Records written (augmented).")
        self.quarantined = make(Counter, "teacherlm_records_quarantined", "Records quarantined.")
        self.tokens = make(Counter, "teacherlm_generated_tokens", "Tokens the teacher generated.")
        self.parts = make(Counter, "teacherlm_parts_done", "Parts finished (here, or found finished).")
        self.progress = make(Gauge, "teacherlm_progress_ratio", "Records done / records of the shard.")
        self.eta = make(Gauge, "teacherlm_eta_seconds", "Seconds left at this pod's rate.")
        self.last_part = make(
            Gauge,
            "teacherlm_last_part_timestamp_seconds",
            "When the last part finished (the shard's start before one did).",
        )
        self.last_part.set(self.started)
        self.progress.set(0.0 if total_records else 1.0)

    def part_done(self, stats) -> None:
        """After each part (a :class:`~teacherlm_core.augment.shard.PartStats`)."""
        n = stats.samples + stats.quarantined
        self.out.inc(stats.samples)
        self.quarantined.inc(stats.quarantined)
        self.tokens.inc(stats.tokens)
        self.parts.inc()
        self.done += n
        self.own_done += 0 if stats.skipped else n  # the rate counts only what this pod generated
        now = time.time()
        self.last_part.set(now)
        self.progress.set(min(1.0, self.done / self.total) if self.total else 1.0)
        left = max(0, self.total - self.done)
        if self.own_done:
            self.eta.set(left * (now - self.started) / self.own_done)
        elif not left:
            self.eta.set(0.0)

    def finish(self) -> None:
        self.progress.set(1.0)
        self.eta.set(0.0)

    def serve(self, port: int) -> None:
        """Serve the default registry (with vLLM's series) and this shard's on ``port``."""
        from prometheus_client import REGISTRY, start_http_server

        for collector in self.collectors:  # the same objects, in both registries
            REGISTRY.register(collector)
        start_http_server(port)

    def push(self, gateway: str) -> None:
        """Replace this shard's group on the Pushgateway with its current values."""
        from prometheus_client import push_to_gateway

        push_to_gateway(gateway, job=JOB, grouping_key=self.labels, registry=self.registry)


def delete_run_groups(gateway: str, run: str, stage: str, shards: list[str]) -> None:
    """Delete a run's groups from the Pushgateway (it keeps every group forever otherwise)."""
    from prometheus_client import delete_from_gateway

    for shard in shards:
        delete_from_gateway(
            gateway, job=JOB, grouping_key={"run": run or "local", "stage": stage, "shard": shard}
        )


def from_env(run: str, stage: str, shard: str, total_records: int) -> ShardMetrics | None:
    """The shard's metrics, served and/or pushed as the environment says; ``None`` when neither is set."""
    if not metrics_enabled():
        return None
    metrics = ShardMetrics(run, stage, shard, total_records)
    if os.environ.get(PORT_ENV):
        metrics.serve(int(os.environ[PORT_ENV]))
    return metrics
