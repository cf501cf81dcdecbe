"""The statistics of the fidelity benchmark and the demo: pooled McNemar, hierarchical bootstrap, MDE."""

from __future__ import annotations

import pytest

from teacherlm_core.compare import hierarchical_bootstrap, minimum_detectable_effect, pooled_mcnemar


def test_pooled_mcnemar_sums_discordant_pairs_over_seeds():
    from scipy.stats import binomtest

    # each seed alone is far from significant; pooled, 24 to 6 is
    seeds = [[8, 2], [8, 2], [8, 2]]
    assert all(pooled_mcnemar([s]) > 0.05 for s in seeds)
    assert pooled_mcnemar(seeds) == pytest.approx(binomtest(24, 30, 0.5).pvalue)
    assert pooled_mcnemar(seeds) < 0.01
    assert pooled_mcnemar([[0, 0]]) == 1.0


def test_hierarchical_interval_widens_when_seeds_disagree():
    agree = [[1, 0, 0, 1] * 25, [1, 0, 1, 0] * 25, [0, 1, 1, 0] * 25]  # +0.5 in every seed
    disagree = [[1] * 100, [0] * 100, [-1] * 50 + [1] * 50]  # +1.0, 0.0, 0.0: same mean, +0.33
    lo, hi = hierarchical_bootstrap(agree, resamples=500)
    assert lo <= 0.5 <= hi and hi - lo < 0.25
    lo2, hi2 = hierarchical_bootstrap(disagree, resamples=500)
    assert lo2 <= 1 / 3 <= hi2 and hi2 - lo2 > 2 * (hi - lo)  # the seed level counts


def test_minimum_detectable_effect_shrinks_with_the_square_root_of_the_items():
    small, large = minimum_detectable_effect(100, 0.3), minimum_detectable_effect(400, 0.3)
    assert large == pytest.approx(small / 2)
    assert 0.13 < small < 0.16  # (1.96 + 0.84) * sqrt(0.3 / 100) = 0.153
    assert minimum_detectable_effect(0, 0.3) == float("inf")
