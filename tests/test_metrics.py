"""Prometheus metrics for real: a shard's series served and pushed, scraped by Debian's prometheus from
the pod and from Debian's prometheus-pushgateway, read back with PromQL; the run's groups deleted."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from fake_engines import StreamingScriptedEngine
from servers import Prometheus, Pushgateway, free_port

from teacherlm_core.augment import AugmentConfig, augment, shard_name
from teacherlm_core.metrics import ShardMetrics, delete_run_groups

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _dataset(path, n=24):
    path.write_text("".join(json.dumps({"id": f"q{i}", "task": "t", "question": f"What is {i}?",
                                        "choices": ["yes", "no"], "answer": "yes"}) + "\n" for i in range(n)))  # fmt: skip
    return path


def _wait_for(prometheus: Prometheus, promql: str, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = prometheus.query(promql)
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"no series for {promql} after {timeout:.0f}s")


def test_a_shards_metrics_are_scraped_and_pushed_then_read_back_with_promql(tmp_path):
    port = free_port()
    with Pushgateway(tmp_path / "pgw") as gateway:
        targets = {"pod": f"127.0.0.1:{port}", "pushgateway": f"127.0.0.1:{gateway.port}"}
        with Prometheus(tmp_path / "prom", targets) as prometheus:
            cfg = AugmentConfig(model="scripted-teacher", input=str(_dataset(tmp_path / "in.jsonl")),
                                output=str(tmp_path / "out"), engine="hf", num_shards=2, part_size=4)  # fmt: skip
            shard = shard_name(0, 2)
            started = time.time()
            metrics = ShardMetrics("run-1", "augment_shard", shard, total_records=0)
            metrics.serve(port)  # what a pod does with TEACHERLM_METRICS_PORT
            # the plan decides the shard's size; progress and ETA follow it from the first part
            from teacherlm_core.augment.plan import ensure_plan

            metrics.total = ensure_plan(cfg)["inputs"][f"{shard}.jsonl"]["records"]
            engine = StreamingScriptedEngine(batch=4, empty_rate=0.2)
            done = augment(cfg, 0, engine=lambda: engine, on_part=metrics.part_done)
            metrics.finish()
            metrics.push(gateway.url)  # what a shard does at its end with TEACHERLM_PUSHGATEWAY
            sel = f'run="run-1",stage="augment_shard",shard="{shard}"'
            for job in ("pod", "teacherlm"):  # scraped from the pod; pushed (the group's job, honor_labels)
                out = _wait_for(prometheus, f'teacherlm_records_out_total{{{sel},job="{job}"}}')
                assert float(out[0]["value"][1]) == done["out"] > 0, job
                quarantined = prometheus.query(f'teacherlm_records_quarantined_total{{{sel},job="{job}"}}')
                assert float(quarantined[0]["value"][1]) == done["quarantined"]
                eta = prometheus.query(f'teacherlm_eta_seconds{{{sel},job="{job}"}}')
                assert float(eta[0]["value"][1]) == 0.0
                last = prometheus.query(f'teacherlm_last_part_timestamp_seconds{{{sel},job="{job}"}}')
                assert started <= float(last[0]["value"][1]) <= time.time()
                progress = prometheus.query(f'teacherlm_progress_ratio{{{sel},job="{job}"}}')
                assert float(progress[0]["value"][1]) == 1.0
            parts = prometheus.query(f'teacherlm_parts_done_total{{{sel},job="teacherlm"}}')
            assert float(parts[0]["value"][1]) == len(done["parts"])
            # The merge deletes the run's groups: a Pushgateway never forgets on its own.
            delete_run_groups(gateway.url, "run-1", "augment_shard", [shard_name(i, 2) for i in range(2)])
            with urllib.request.urlopen(f"{gateway.url}/api/v1/metrics", timeout=10) as r:
                assert "run-1" not in r.read().decode()


def test_eta_follows_this_pods_rate_and_skipped_parts_count_as_progress():
    from teacherlm_core.augment.shard import PartStats

    metrics = ShardMetrics("r", "augment_shard", "shard-00000-of-00001", total_records=100)
    metrics.started -= 100  # 100 s ago
    metrics.part_done(PartStats(shard=0, part=0, samples=40, quarantined=10, skipped=True))  # done before
    assert metrics.progress._value.get() == 0.5 and metrics.eta._value.get() == 0  # no rate of its own yet
    metrics.part_done(PartStats(shard=0, part=1, samples=20, quarantined=5, tokens=900))
    assert metrics.progress._value.get() == 0.75
    assert metrics.eta._value.get() == pytest.approx(25 * 100 / 25, rel=0.05)  # 25 left at 25 per 100 s


def test_pipeline_shards_push_their_groups_and_the_merge_deletes_them(tmp_path, monkeypatch):
    """The stages as a pipeline runs them (dry run: no model): with TEACHERLM_PUSHGATEWAY each shard task
    pushes its final values, labelled with the KFP run; the merge task deletes the run's groups."""
    from teacherlm_core.data import build_builtin
    from teacherlm_core.run_context import RUN_ID_ENV
    from teacherlm_core.stages.augment_merge import augment_merge
    from teacherlm_core.stages.augment_plan import augment_plan
    from teacherlm_core.stages.augment_shard import augment_shard

    def groups(gateway) -> list[dict]:
        with urllib.request.urlopen(f"{gateway.url}/api/v1/metrics", timeout=10) as r:
            return [g["labels"] for g in json.loads(r.read())["data"]]

    build_builtin(tmp_path / "data", ["claims"], per_task=6, seed=0)
    augment_plan(str(tmp_path / "data"), 2, split=str(tmp_path / "split"))
    with Pushgateway(tmp_path / "pgw") as gateway:
        monkeypatch.setenv("TEACHERLM_PUSHGATEWAY", gateway.url)
        monkeypatch.setenv(RUN_ID_ENV, "run-7")
        outs, counts = [str(tmp_path / f"task-{i}") for i in range(2)], []
        for i, out in enumerate(outs):
            counts.append(augment_shard("no-such-teacher", str(tmp_path / "split"), out, shard_index=i,
                                        num_shards=2, engine="vllm", dry_run=True))  # fmt: skip
        pushed = sorted(groups(gateway), key=lambda g: g["shard"])
        assert [(g["job"], g["run"], g["stage"], g["shard"]) for g in pushed] == [
            ("teacherlm", "run-7", "augment_shard", shard_name(i, 2)) for i in range(2)
        ]
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=10) as r:
            families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
        out = {s.labels["shard"]: s.value for s in families["teacherlm_records_out"].samples
               if s.name == "teacherlm_records_out_total" and s.labels["run"] == "run-7"}  # fmt: skip
        assert out == {shard_name(i, 2): c["out"] for i, c in enumerate(counts)}
        assert sum(out.values()) > 0
        augment_merge(str(tmp_path / "merged"), outs)
        assert groups(gateway) == []


def test_vllms_own_series_are_switched_on_when_metrics_are(tiny_model, monkeypatch):
    """Offline vLLM defaults to disable_log_stats=True (no vllm:* series); with metrics on, the engine
    asks for them (they land in prometheus_client's default registry, the one the pod serves)."""
    import vllm

    from teacherlm_core.engines.vllm import VLLMEngine

    made: list[dict] = []

    class LLM:  # records what VLLMEngine asks vLLM for, without starting an engine
        def __init__(self, **kwargs):
            made.append(kwargs)

        def generate(self, *args, **kwargs):
            return []

        def get_tokenizer(self):
            return None

    monkeypatch.setattr(vllm, "LLM", LLM)
    monkeypatch.delenv("TEACHERLM_METRICS_PORT", raising=False)
    monkeypatch.delenv("TEACHERLM_PUSHGATEWAY", raising=False)
    VLLMEngine(tiny_model)
    monkeypatch.setenv("TEACHERLM_METRICS_PORT", "9400")
    VLLMEngine(tiny_model)
    assert "disable_log_stats" not in made[0] and made[1]["disable_log_stats"] is False
