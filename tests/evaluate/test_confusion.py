"""The evaluate task's confusion matrix: gold choice x predicted choice, by letter."""

from __future__ import annotations

from teacherlm_core.evaluate import Accuracy, EvalReport, SampleScore, confusion_matrix


def test_confusion_matrix_counts_gold_against_prediction():
    def s(i, n, gold, pred):
        return SampleScore(
            id=str(i),
            task="t",
            choice_loglikelihoods=[0.0] * n,
            prediction=pred,
            correct=gold == pred,
            gold=gold,
        )

    samples = [s(0, 2, 0, 0), s(1, 2, 0, 1), s(2, 3, 2, 0), s(3, 3, 2, 2), s(4, 2, 1, 1)]
    old = SampleScore(
        id="old", task="t", choice_loglikelihoods=[0.0, 0.0], prediction=1, correct=True
    )  # no gold recorded
    report = EvalReport(model="m", tasks={}, overall=Accuracy(accuracy=0.6, n=6), samples=[*samples, old])
    categories, matrix = confusion_matrix(report)
    assert categories == ["A", "B", "C"]
    assert matrix == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
