"""Tests of deipp_core.stats: hand-computed values and agreement with SciPy / scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from deipp_core.exceptions import ParameterError
from deipp_core.stats import (
    auc_midrank,
    benjamini_hochberg,
    boot2cip,
    mean_absolute_error,
    median_split,
    pearson_r,
    r_squared,
    roc_auc,
    roc_points,
    round_half_away,
)


# --- Pearson r ------------------------------------------------------------------------------


def test_pearson_r_equals_numpy_corrcoef(rng):
    x = rng.normal(size=50)
    y = 0.3 * x + rng.normal(size=50)
    assert pearson_r(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-14)


def test_pearson_r_equals_the_matlab_zscore_product(rng):
    x, y = rng.normal(size=30), rng.normal(size=30)
    zx = (x - x.mean()) / x.std(ddof=1)
    zy = (y - y.mean()) / y.std(ddof=1)
    assert pearson_r(x, y) == pytest.approx(np.sum(zx * zy) / (x.size - 1), abs=1e-14)


def test_pearson_r_with_count_weights_equals_r_of_each_resample(rng):
    x = rng.uniform(size=40)
    y = x + rng.normal(scale=0.5, size=40)
    idx = rng.integers(0, 40, size=(200, 40))
    counts = np.stack([np.bincount(i, minlength=40) for i in idx])
    got = pearson_r(x, y, counts)
    want = [np.corrcoef(x[i], y[i])[0, 1] for i in idx]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_pearson_r_is_nan_for_constant_input_and_resamples():
    assert np.isnan(pearson_r([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert np.isnan(pearson_r([1.0], [2.0]))
    w = np.array([[0, 3, 0], [1, 0, 1], [2, 0, 0]])
    r = pearson_r([1.0, 2.0, 3.0], [1.0, 5.0, 2.0], w)
    assert np.isnan(r[0]) and np.isnan(r[2]) and r[1] == pytest.approx(1.0)


def test_pearson_r_rejects_mismatched_or_nan_input():
    with pytest.raises(ParameterError, match="same length"):
        pearson_r([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ParameterError, match="finite"):
        pearson_r([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ParameterError, match="columns"):
        pearson_r([1.0, 2.0], [1.0, 2.0], weights=np.ones((3, 3)))


# --- AUC ------------------------------------------------------------------------------------


def test_auc_midrank_hand_example_with_a_tie():
    # positives 0.4, 0.9; negatives 0.1, 0.4: pairs 1 + ½ + 1 + 1 = 3.5 of 4
    assert auc_midrank([False, True, False, True], [0.1, 0.4, 0.4, 0.9]) == 0.875


def test_auc_midrank_equals_roc_auc_score_with_many_ties(rng):
    for _ in range(20):
        lab = rng.uniform(size=60) > 0.4
        s = rng.integers(0, 6, size=60).astype(float)
        assert auc_midrank(lab, s) == pytest.approx(roc_auc_score(lab, s), abs=1e-14)


def test_auc_midrank_with_count_weights_equals_roc_auc_score_per_resample(rng):
    lab = rng.uniform(size=30) > 0.5
    s = np.round(rng.normal(size=30), 1)
    idx = rng.integers(0, 30, size=(100, 30))
    counts = np.stack([np.bincount(i, minlength=30) for i in idx])
    got = auc_midrank(lab, s, counts)
    for g, i in zip(got, idx):
        if lab[i].all() or not lab[i].any():
            assert np.isnan(g)
        else:
            assert g == pytest.approx(roc_auc_score(lab[i], s[i]), abs=1e-12)


def test_auc_midrank_is_nan_when_a_class_is_missing():
    assert np.isnan(auc_midrank([True, True], [0.1, 0.2]))


# --- median split, R², MAE, ROC -------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "high"),
    [
        ([1.0, 2.0, 3.0, 4.0], [False, False, True, True]),  # MATLAB median 2.5
        ([3.0, 1.0, 2.0], [True, False, False]),  # median 2, strict >
        ([1.0, 2.0, 2.0, 3.0], [False, False, False, True]),  # ties at the median are low
    ],
)
def test_median_split_is_strict_matlab_median(x, high):
    np.testing.assert_array_equal(median_split(x), high)


def test_r_squared_and_mae_hand_values():
    x, y = [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]
    # Σ(x−y)² = 8, Σ(x−x̄)² = 2
    assert r_squared(x, y) == -3.0
    assert r_squared(x, x) == 1.0
    assert mean_absolute_error(x, y) == pytest.approx(4 / 3)
    assert np.isnan(r_squared([1.0, 1.0], [1.0, 2.0]))


def test_roc_auc_uses_the_median_split_and_positive_high(rng):
    x = rng.uniform(size=25)
    y = x + rng.normal(scale=0.3, size=25)
    assert roc_auc(x, y) == pytest.approx(roc_auc_score(x > np.median(x), y))
    assert np.isnan(roc_auc([1.0, 1.0, 1.0], [0.1, 0.2, 0.3]))


def test_roc_points_start_at_origin_and_match_roc_curve():
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    y = np.array([0.2, 0.1, 0.4, 0.3, 0.6, 0.6])
    fpr, tpr = roc_points(x, y)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    # high = x > 0.35: scores 0.3, 0.6, 0.6; low: 0.2, 0.1, 0.4.
    # thresholds ≥0.6, ≥0.4, ≥0.3, ≥0.2, ≥0.1
    np.testing.assert_allclose(fpr, [0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 2 / 3, 2 / 3, 1, 1, 1])
    want = roc_curve(x > 0.35, y, drop_intermediate=False)
    np.testing.assert_allclose(fpr, want[0])


# --- MATLAB round and boot2cip --------------------------------------------------------------


def test_round_half_away_from_zero():
    got = round_half_away(np.array([0.5, 1.5, 2.5, -0.5, -2.5, 2.4999, 0.49999999999999994, 3.0]))
    np.testing.assert_array_equal(got, [1, 2, 3, -1, -3, 2, 0, 3])
    assert round_half_away(249.5) == 250.0


def test_boot2cip_b10_positions_are_clipped_to_one():
    boot = np.array([5, 3, 9, 1, 7, 2, 8, 4, 10, 6], dtype=float)
    # positions round(0.25) = 0 → clipped to 1, round(9.75) = 10; #≤0 = 0, #≥0 = 10
    assert boot2cip(boot, 0.0) == (1.0, 10.0, 2 / 11)


def test_boot2cip_b10_alpha_02_hand_values():
    boot = np.array([5, 3, 9, 1, 7, 2, 8, 4, 10, 6], dtype=float)
    # positions round(1.0) = 1, round(9.0) = 9; #≤3.5 = 3, #≥3.5 = 7
    low, high, p = boot2cip(boot, 3.5, alpha=0.2)
    assert (low, high) == (1.0, 9.0)
    assert p == pytest.approx(2 * 4 / 11)


def test_boot2cip_b20_rounds_halves_up():
    boot = np.arange(20, 0, -1, dtype=float)
    # α/2·B = 0.5 → 1 and (1 − α/2)·B = 19.5 → 20 (half away from zero)
    low, high, p = boot2cip(boot, 0.0)
    assert (low, high) == (1.0, 20.0)
    assert p == pytest.approx(2 / 21)


def test_boot2cip_b60_rounds_halves_up():
    boot = np.arange(1, 61, dtype=float)
    # 1.5 → 2 and 58.5 → 59 (banker's rounding would give 2 and 58)
    assert boot2cip(boot, 0.0)[:2] == (2.0, 59.0)


def test_boot2cip_b10000_uses_positions_250_and_9750():
    rng = np.random.default_rng(0)
    boot = rng.permutation(np.arange(10_000, dtype=float))
    low, high, _ = boot2cip(boot, 0.0)
    assert (low, high) == (249.0, 9749.0)


def test_boot2cip_p_is_not_capped_at_one():
    boot = np.arange(1, 21, dtype=float)
    # #≤10 = 10, #≥10 = 11 → p = 2·min(11, 12)/21 = 22/21
    assert boot2cip(boot, 10.0).p == pytest.approx(22 / 21)
    assert boot2cip(np.full(100, 0.5), 0.5).p == 2.0


def test_boot2cip_nan_replicates_sort_last_and_count_in_b():
    boot = np.r_[np.arange(1.0, 19.0), np.nan, np.nan]
    low, high, p = boot2cip(boot, 0.0)
    assert low == 1.0 and np.isnan(high)
    assert p == pytest.approx(2 / 21)


# --- Benjamini–Hochberg ---------------------------------------------------------------------


def test_benjamini_hochberg_step_up_hand_example():
    # sorted 0.001, 0.03, 0.035, 0.2 against i·0.05/4 = 0.0125, 0.025, 0.0375, 0.05:
    # 0.03 fails its own threshold but is rejected because 0.035 (rank 3) passes.
    res = benjamini_hochberg([0.03, 0.001, 0.2, 0.035], q=0.05)
    np.testing.assert_array_equal(res.h, [True, True, False, True])
    assert res.crit_p == 0.035
    np.testing.assert_allclose(res.adj_p, [0.035 * 4 / 3, 0.004, 0.2, 0.035 * 4 / 3])


def test_benjamini_hochberg_without_discoveries_and_shape():
    res = benjamini_hochberg(np.array([[0.5, 0.2], [0.9, 0.04]]))
    assert res.crit_p == 0.0 and res.h.shape == (2, 2) and not res.h.any()
    with pytest.raises(ParameterError):
        benjamini_hochberg([0.1, np.nan])


def test_benjamini_hochberg_matches_statsmodels(rng):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.r_[rng.uniform(size=80), rng.uniform(0, 0.005, size=20)]
    res = benjamini_hochberg(p, q=0.05)
    h, adj, _, _ = multitest.multipletests(p, alpha=0.05, method="fdr_bh")
    np.testing.assert_array_equal(res.h, h)
    np.testing.assert_allclose(np.minimum(res.adj_p, 1), adj)


def test_pearson_r_of_many_columns_equals_one_column_at_a_time(rng):
    x = rng.normal(size=12)
    x[:3] = 1.0  # ties in x
    Y = rng.normal(size=(12, 4))
    Y[:, 1] = np.repeat([0.2, 0.5, 0.7], 4)  # ties (intercept-like predictions per session)
    Y[:, 2] = 0.3  # constant
    W = rng.integers(0, 3, size=(200, 12)).astype(float)
    W[0] = 0.0
    W[0, 0] = 5  # one unit only: undefined
    W[1] = 0.0
    W[1, :3] = 1  # x constant (the tied units)
    W[2] = 0.0
    W[2, [0, 3]] = 2  # Y[:, 1] constant over units 0 and 3 (x is not)
    got = pearson_r(x, Y, weights=W)
    assert got.shape == (200, 4)
    for j in range(Y.shape[1]):
        want = pearson_r(x, Y[:, j], weights=W)
        np.testing.assert_allclose(got[:, j], want, rtol=0, atol=1e-12, equal_nan=True)
    assert np.isnan(got[2, 1]) and not np.isnan(got[2, 0])


    unweighted = pearson_r(x, Y)
    assert unweighted.shape == (4,) and np.isnan(unweighted[2])
    assert unweighted[0] == pytest.approx(np.corrcoef(x, Y[:, 0])[0, 1])


