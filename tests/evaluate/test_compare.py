"""The comparison says how sure it is: accuracy intervals, the paired difference, McNemar's exact test."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from teacherlm_core.compare import accuracy_interval, paired_comparison, write_comparison
from teacherlm_core.evaluate import SampleScore, summarize

pytestmark = pytest.mark.timeout(60)


def _report(model: str, correct: list[bool]):
    scores = [SampleScore(id=f"q{i}", task=f"t{i % 3}", choice_loglikelihoods=[-1.0, -2.0], prediction=0, correct=c)
              for i, c in enumerate(correct)]  # fmt: skip
    return summarize(model, scores)


def _pair(n: int, both: int, only_other: int, only_base: int):
    """``n`` items: ``both`` right for both, then discordant ones, the rest wrong for both."""
    base = [True] * both + [False] * only_other + [True] * only_base
    other = [True] * both + [True] * only_other + [False] * only_base
    rest = n - len(base)
    return _report("plain", base + [False] * rest), _report("augmented", other + [False] * rest)


def test_a_clear_gain_is_significant_and_said_so():
    base, other = _pair(400, 150, 30, 10)
    result = paired_comparison(base, other)
    assert result["items"] == 400 and result["discordant"] == [30, 10]
    assert result["difference"] == pytest.approx(20 / 400)
    assert result["p_value"] == pytest.approx(binomtest(30, 40, 0.5).pvalue)
    lo, hi = result["interval"]
    assert lo < 0.05 < hi and lo > 0  # the interval excludes no difference
    assert result["significant"] and "significant at the 5% level" in result["verdict"]
    assert "better" in result["verdict"]


def test_a_small_difference_is_not_significant_and_said_so():
    base, other = _pair(400, 150, 12, 10)
    result = paired_comparison(base, other)
    assert not result["significant"] and result["p_value"] > 0.5
    assert result["interval"][0] < 0 < result["interval"][1]
    assert "not significant at the 5% level, on 400 items" in result["verdict"]


def test_accuracy_interval_covers_the_accuracy_and_narrows_with_more_items():
    small = accuracy_interval([True, False] * 50)
    large = accuracy_interval([True, False] * 500)
    assert small[0] < 0.5 < small[1] and large[0] < 0.5 < large[1]
    assert (large[1] - large[0]) < (small[1] - small[0])
    assert accuracy_interval([True] * 10) == (1.0, 1.0)


def test_the_report_gives_intervals_and_the_verdict(tmp_path):
    base, other = _pair(300, 100, 40, 15)
    paths = {}
    for r in (base, other):
        paths[r.model] = tmp_path / f"{r.model}.json"
        paths[r.model].write_text(r.model_dump_json())
    summary = write_comparison(paths, tmp_path / "out")
    assert (
        set(summary["intervals"]) == {"plain", "augmented"} and summary["paired"]["augmented"]["significant"]
    )
    text = (tmp_path / "out" / "report.md").read_text()
    assert "(300 items)" in text and "95% CI" in text and "McNemar p =" in text


def test_each_task_is_judged_on_its_own_items():
    """A gain confined to one family must show there, not only diluted in the pooled number."""
    from teacherlm_core.compare import summarize as compare_summary

    n = 300  # tasks t0, t1, t2 by i % 3
    base = [False] * n
    other = [i % 3 == 0 and i < 150 for i in range(n)]  # 50 more right, all in t0
    s = compare_summary({"plain": _report("plain", base), "augmented": _report("augmented", other)})
    t0, t1 = s["task_paired"]["t0"]["augmented"], s["task_paired"]["t1"]["augmented"]
    assert t0["items"] == 100 and t0["discordant"] == [50, 0] and t0["significant"]
    assert t1["discordant"] == [0, 0] and not t1["significant"]
    lo, hi = s["task_intervals"]["t0"]["augmented"]
    assert lo < 0.5 < hi
