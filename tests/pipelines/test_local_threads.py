"""The local runner's tasks share the CPUs: tasks that run at once get a share each, a task alone all.

No ``from __future__ import annotations``: KFP reads the component's annotations as types.
"""

import json

import pytest
from kfp import compiler, dsl

from teacherlm_core.cpus import cpu_budget, share, usable_cpus
from teacherlm_core.kfp_support import local as kfp_local


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def report_threads(out: str, tag: str) -> None:
    import json
    import time

    import torch

    start = time.time()
    time.sleep(1.5)  # tasks meant to run at once overlap, however slowly each started
    with open(f"{out}/{tag}.json", "w") as f:
        json.dump({"threads": torch.get_num_threads(), "start": start, "end": time.time()}, f)


@dsl.pipeline(name="threads")
def threads_pipeline(out: str):
    with dsl.ParallelFor(["pair-0", "pair-1"]) as tag:
        report_threads(out=out, tag=tag)
    with dsl.ParallelFor(["single"]) as tag:
        report_threads(out=out, tag=tag)
    report_threads(out=out, tag="alone")


@pytest.mark.integration
@pytest.mark.timeout(180)
@pytest.mark.skipif(usable_cpus() < 2, reason="one CPU: a share is the whole")
def test_tasks_that_run_at_once_share_the_cpus(tmp_path, monkeypatch):
    """Two tasks at once once each started one math thread per core, and spun against each other
    (the demo's two augmentation shards: 256 s together, 106 s with one thread each, 2 cores)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    specs = tmp_path / "specs"
    (specs / "augment").mkdir(
        parents=True
    )  # run_local runs the named pipelines only: this one under that name
    compiler.Compiler().compile(threads_pipeline, str(specs / "augment" / "augment.yaml"))
    out = tmp_path / "out"
    out.mkdir()
    kfp_local.run_local("augment", typed={"out": str(out)}, workdir=tmp_path / "w", specs=specs)
    seen = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    pair = [seen["pair-0"], seen["pair-1"]]
    assert max(t["start"] for t in pair) < min(t["end"] for t in pair)  # they did run at once
    assert [t["threads"] for t in pair] == [share(cpu_budget(), 2)] * 2 == [usable_cpus() // 2] * 2
    assert seen["single"]["threads"] == seen["alone"]["threads"] == usable_cpus()  # alone: every CPU
