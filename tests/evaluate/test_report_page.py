"""report.html is a real page: self-contained, and a real headless browser (chromium) renders its tables and plots."""

from __future__ import annotations

import json
import re

import pytest
from browser import dump_dom, screenshot

from teacherlm_core.compare import write_comparison
from teacherlm_core.evaluate import Accuracy, EvalReport, SampleScore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _report(tmp_path, model, right, cost=None):
    samples = [
        SampleScore(id=f"q{i}", task="claims" if i % 2 else "dates", choice_loglikelihoods=[-1.0, -2.0, -3.0],
                    prediction=0 if i < right else 1, correct=i < right, gold=0)
        for i in range(20)
    ]  # fmt: skip
    acc = right / 20
    r = EvalReport(model=model, tasks={"claims": Accuracy(accuracy=acc, n=10), "dates": Accuracy(accuracy=acc, n=10)},
                   overall=Accuracy(accuracy=acc, n=20), samples=samples, cost=cost)  # fmt: skip
    path = tmp_path / f"{model}.json"
    path.write_text(r.model_dump_json())
    return path


def _augmented(root):
    root.mkdir()
    rec = {"id": "a", "task": "claims", "question": "Is <b>this</b> bold?", "choices": ["yes", "no"], "answer": "yes",
           "fundamentals": "F", "chain_of_thought": "So the answer is (A).", "common_mistakes": "M", "cot_consistent": True}  # fmt: skip
    (root / "train.jsonl").write_text(json.dumps(rec) + "\n")
    (root / "quarantine").mkdir()
    (root / "quarantine" / "s.jsonl").write_text(
        json.dumps({"reason": "empty generation (after 3 attempt(s))"}) + "\n"
    )
    return root


def test_report_html_is_self_contained_and_renders_in_chromium(tmp_path):
    train = {"tokens": 1000, "accelerator_seconds": 36.0, "wall_seconds": 40.0, "samples": 100}
    aug = {"tokens": 500, "accelerator_seconds": 72.0, "wall_seconds": 80.0, "samples": 100}
    reports = {
        "plain": _report(tmp_path, "plain", 8, {"training": train}),
        "augmented": _report(tmp_path, "augmented", 14, {"training": train, "augmentation": aug}),
    }
    out = tmp_path / "report"
    summary = write_comparison(reports, out, title="students", augmented=str(_augmented(tmp_path / "aug")),
                               price_per_accelerator_hour=10.0)  # fmt: skip
    # Cost per 1,000 samples next to the accuracy it bought: 36 s at 10/h over 100 samples = 1.0.
    assert summary["cost"]["augmented"]["per_1000_samples"] == {
        "training": pytest.approx(1.0),
        "augmentation": pytest.approx(2.0),
    }
    page = (out / "report.html").read_text()
    # Self-contained: no reference to another file, every image inlined.
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)
    (moved := tmp_path / "elsewhere").mkdir()
    (moved / "report.html").write_text(page)  # alone, away from its plots

    dom = dump_dom((moved / "report.html").as_uri())
    assert dom.count("<table") >= 5  # accuracy, cost, per-student costs, per-task samples, quarantine
    assert dom.count('src="data:image/png;base64,') == 2  # accuracy and gain plots
    assert "| task |" not in dom  # tables rendered as tables, not left as Markdown text
    assert "Is &lt;b&gt;this&lt;/b&gt; bold?" in dom  # data is escaped, never markup
    assert re.search(
        r"<td[^>]*>augmented</td>\s*<td[^>]*>0\.700</td>\s*<td[^>]*>2\.0000</td>\s*<td[^>]*>1\.0000</td>\s*<td[^>]*>3\.0000</td>",
        dom,
    )
    assert "empty generation" in dom and "reaches the gold answer" in dom

    # The plots are drawn: the screenshot holds matplotlib's bar colours (C0 blue, C1 orange).
    import matplotlib.image as mpimg
    import numpy as np

    shot = mpimg.imread(screenshot((moved / "report.html").as_uri(), tmp_path / "shot.png", height=3000))
    rgb = (shot[..., :3] * 255).round().astype(int)

    def pixels(colour):
        return int((np.abs(rgb - np.array(colour)).sum(axis=-1) < 12).sum())

    assert pixels((31, 119, 180)) > 500 and pixels((255, 127, 14)) > 500


def test_a_pipe_in_a_task_or_model_name_never_shifts_the_cells(tmp_path):
    from html.parser import HTMLParser

    from teacherlm_core.compare import page_html
    from teacherlm_core.evaluate import Accuracy, EvalReport
    from teacherlm_core.report import markdown_table

    def report(acc):
        return EvalReport(model="m", tasks={"a|b": Accuracy(accuracy=acc, n=4), "c": Accuracy(accuracy=acc, n=4)},
                          overall=Accuracy(accuracy=acc, n=8), samples=[])  # fmt: skip

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows: list[list[str]] = []

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.rows[-1].append("")

        def handle_data(self, data):
            if self.rows and self.rows[-1]:
                self.rows[-1][-1] += data.strip()

    parser = Rows()
    parser.feed(page_html("t", markdown_table({"plain|x": report(0.25), "augmented": report(1.0)}), tmp_path))
    assert parser.rows[0] == ["task", "plain|x", "augmented"]
    assert parser.rows[1] == ["a|b", "0.250 (n=4)", "1.000 (n=4)"]
