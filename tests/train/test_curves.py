"""The training tasks' page in the pipeline UI: loss curve of every stage plus the final metrics."""

from __future__ import annotations

import json

from teacherlm_core.cost import Cost, write_cost
from teacherlm_core.train.curves import loss_curves, training_page


def test_training_page_has_every_stage_curve_and_metrics(tmp_path):
    model = tmp_path / "teacher"
    for n, name, losses in ((1, "multitask", [3.0, 2.0, 1.5]), (2, "personalise", [1.4, 1.2])):
        d = model / "stages" / f"{n}-{name}"
        d.mkdir(parents=True)
        d.joinpath("metrics.jsonl").write_text(
            "".join(json.dumps({"step": i + 1, "loss": v}) + "\n" for i, v in enumerate(losses))
        )
    (model / "metrics.jsonl").write_text(json.dumps({"step": 2, "loss": 1.2}) + "\n")
    write_cost(model, {"training": Cost(tokens=10, accelerator_seconds=4.0, samples=5)})
    assert loss_curves(model) == {
        "1-multitask": [(1, 3.0), (2, 2.0), (3, 1.5)],
        "2-personalise": [(1, 1.4), (2, 1.2)],
    }
    metrics = training_page(model, tmp_path / "page.html", title="teacher")
    assert (
        metrics["steps"] == 2
        and metrics["final_loss"] == 1.2
        and metrics["training.accelerator_seconds"] == 4.0
    )
    page = (tmp_path / "page.html").read_text()
    assert page.count('src="data:image/png;base64,') == 1 and "<table>" in page and "final_loss" in page
