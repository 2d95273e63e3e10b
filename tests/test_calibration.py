"""Null calibration: the per-seed tables, their cache, and the rejection-rate summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from deipp_core.analyses import calibration
from deipp_core.analyses.calibration import (
    CALIBRATION_LEVELS,
    calibration_summary,
    describe_calibration,
    null_calibration,
)
from deipp_core.data.twin import TwinConfig
from deipp_core.exceptions import ParameterError
from deipp_core.plotting.calibration import plot_null_distributions, plot_pvalue_ecdf, plot_rejection_rates

TINY = TwinConfig.quick(n_sessions=(3, 3), n_parcels=40, module_size=3)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("calibration-cache")


@pytest.fixture(scope="module")
def null_table(tiny_cache):
    return null_calibration(2, scale=TINY, first_seed=7, n_boot=50, cache_dir=tiny_cache)


def test_table_has_one_row_per_seed_participant_and_level(null_table):
    assert list(null_table.columns) == ["seed", "participant", "level", "n_units", "r", "r_p", "auc", "auc_p",
                                        "seconds"]
    assert len(null_table) == 2 * 2 * len(CALIBRATION_LEVELS)
    assert sorted(null_table["seed"].unique()) == [7, 8]
    assert sorted(null_table["participant"].unique()) == ["01", "02"]
    for (_, _), d in null_table.groupby(["seed", "participant"]):
        assert list(d["level"]) == list(CALIBRATION_LEVELS)
    assert null_table["r"].between(-1, 1).all()
    # The original's boot2cip p is 2·min(tail shares with +1 correction): in [2/(B+1), 2], not capped at 1.
    assert null_table["r_p"].between(2 / 51 - 1e-12, 2).all()
    # Within-unit levels have no AUC; pooled levels do.
    within = null_table["level"].str.startswith("within")
    assert null_table.loc[within, ["auc", "auc_p"]].isna().all().all()
    assert null_table.loc[~within, "auc"].between(0, 1).all()
    # 3 sessions per participant at the session level.
    assert (null_table.loc[null_table["level"] == "session", "n_units"] == 3).all()


def test_different_seeds_give_different_null_data(null_table):
    r = null_table[null_table["level"] == "1min"].set_index(["participant", "seed"])["r"].unstack()
    assert not np.allclose(r[7], r[8])


def test_cached_tables_are_reused_and_a_new_key_recomputes(null_table, tiny_cache, monkeypatch):
    files = sorted(tiny_cache.glob("null_*_key-*.tsv"))
    assert len(files) == 2

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although the cache holds this table")

    monkeypatch.setattr(calibration, "null_dataset_table", fail)
    again = null_calibration(2, scale=TINY, first_seed=7, n_boot=50, cache_dir=tiny_cache)
    pd.testing.assert_frame_equal(again, null_table, check_exact=False, rtol=1e-9)

    calls = []
    monkeypatch.setattr(calibration, "null_dataset_table",
                        lambda seed, **kw: calls.append((seed, kw)) or null_table[null_table["seed"] == 7])
    null_calibration(1, scale=TINY, first_seed=7, n_boot=60, cache_dir=tiny_cache)  # other n_boot
    assert calls == [(7, {"scale": TINY, "n_boot": 60})]
    assert len(list(tiny_cache.glob("null_*_key-*.tsv"))) == 3


def test_same_seed_gives_the_same_table_without_cache(null_table):
    fresh = null_calibration(1, scale=TINY, first_seed=7, n_boot=50, use_cache=False)
    expected = null_table[null_table["seed"] == 7].reset_index(drop=True)
    pd.testing.assert_frame_equal(fresh.drop(columns="seconds"), expected.drop(columns="seconds"),
                                  check_exact=False, rtol=1e-9)


def _synthetic(rates: dict[str, tuple[int, int]], rng) -> pd.DataFrame:
    """A table with exactly k of n p-values below 0.05 per level, half of them with a positive r."""
    rows = []
    for level, (k, n) in rates.items():
        p = np.r_[np.full(k, 0.01), np.full(n - k, 0.5)]
        r = np.where(np.arange(n) % 2 == 0, 0.1, -0.1)
        within = level.startswith("within")
        for i in range(n):
            rows.append({"seed": i, "participant": "01", "level": level, "n_units": 5, "r": r[i], "r_p": p[i],
                         "auc": np.nan if within else 0.5 + r[i], "auc_p": np.nan if within else p[i]})
    return pd.DataFrame(rows)


def test_summary_rates_and_exact_binomial_intervals(rng):
    table = _synthetic({"1min": (5, 100), "session": (30, 100), "within_run": (0, 100)}, rng)
    s = calibration_summary(table).set_index("level")
    assert list(s.index) == ["1min", "session", "within_run"]
    assert s.loc["1min", "r_n_reject"] == 5 and s.loc["1min", "r_reject_rate"] == pytest.approx(0.05)
    # Clopper-Pearson interval of 5/100 from the beta quantiles.
    assert s.loc["1min", "r_reject_ci_low"] == pytest.approx(sps.beta.ppf(0.025, 5, 96), rel=1e-6)
    assert s.loc["1min", "r_reject_ci_high"] == pytest.approx(sps.beta.ppf(0.975, 6, 95), rel=1e-6)
    assert bool(s.loc["1min", "r_calibrated"])
    assert not bool(s.loc["session", "r_calibrated"])  # 30 % excludes 5 %
    assert not bool(s.loc["within_run", "r_calibrated"])  # 0/100: upper bound 3.6 % < 5 %
    assert s.loc["within_run", "r_reject_ci_high"] < 0.05
    # Positive-direction rejections: p-values 0.01 at even indices have r = +0.1.
    assert s.loc["1min", "r_pos_reject_rate"] == pytest.approx(3 / 100)
    assert s.loc["session", "auc_pos_reject_rate"] == pytest.approx(15 / 100)
    assert s.loc["1min", "mean_r"] == pytest.approx(0.0)
    assert pd.isna(s.loc["within_run", "auc_reject_rate"]) and pd.isna(s.loc["within_run", "auc_calibrated"])


def test_summary_uniform_p_values_are_calibrated(rng):
    n = 400
    grid = rng.permutation((np.arange(n) + 0.5) / n)  # exactly uniform quantiles
    table = pd.DataFrame({"seed": np.arange(n), "participant": "01", "level": "1min", "n_units": 10,
                          "r": rng.normal(0, 0.1, n), "r_p": grid,
                          "auc": rng.uniform(0.4, 0.6, n), "auc_p": grid ** 3})
    s = calibration_summary(table).iloc[0]
    assert bool(s["r_calibrated"])
    assert not bool(s["auc_calibrated"])  # p**3 is far too small too often


def test_summary_by_participant_and_errors(null_table):
    s = calibration_summary(null_table, by_participant=True)
    assert len(s) == 2 * len(CALIBRATION_LEVELS)
    assert (s["n_tests"] == 2).all()
    with pytest.raises(ParameterError, match="alpha"):
        calibration_summary(null_table, alpha=1.5)
    with pytest.raises(ParameterError, match="lacks columns"):
        calibration_summary(null_table.drop(columns="r_p"))
    with pytest.raises(ParameterError, match="twin scale"):
        null_calibration(1, scale="huge")


def test_description_states_each_level_and_verdict(rng):
    table = _synthetic({"1min": (5, 100), "session": (30, 100), "within_run": (0, 100)}, rng)
    text = describe_calibration(calibration_summary(table))
    lines = text.splitlines()
    assert len(lines) == 3
    assert "1-min bins" in lines[0] and "compatible with the nominal" in lines[0]
    assert "too often (liberal)" in lines[1]
    assert "too rarely (conservative)" in lines[2]


def test_figures(null_table):
    summary = calibration_summary(null_table)
    fig = plot_null_distributions(null_table)
    assert len(fig.axes) == 2 * len(CALIBRATION_LEVELS)
    assert len(plot_pvalue_ecdf(null_table).axes) == 2
    fig = plot_rejection_rates(summary)
    assert [len(ax.get_xticks()) for ax in fig.axes] == [len(CALIBRATION_LEVELS), 4]


def test_default_cache_lives_under_the_data_dir(tmp_path, monkeypatch, null_table):
    monkeypatch.setenv("DEIPP_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(calibration, "null_dataset_table",
                        lambda seed, **kw: null_table[null_table["seed"] == 7].assign(seed=seed))
    table = null_calibration(3, scale=TINY, first_seed=20, n_boot=5)
    assert sorted(table["seed"].unique()) == [20, 21, 22]
    files = sorted(p.name for p in (tmp_path / "calibration").glob("*.tsv"))
    assert len(files) == 3 and all(f.startswith("null_scale-quick_seed-2") for f in files)
    assert not list((tmp_path / "calibration").glob(".*.tmp"))  # no temporary file left behind


# ------------------------------------------------------------------------------------------------
# The quick profile's calibration: 100 null data sets (shared with the chapter through the cache)
# ------------------------------------------------------------------------------------------------


def _binomial_bounds(n: int, alpha: float = 0.05) -> tuple[int, int]:
    """Central 95 % range of the number of p < alpha among n independent calibrated tests."""
    lo, hi = sps.binom.interval(0.95, n, alpha)
    return int(lo), int(hi)


@pytest.fixture(scope="module")
def quick_profile_table(deipp_data_dir):
    """The calibration chapter's table in the quick profile (same seeds, resamples and cache folder)."""
    table = null_calibration("quick", n_jobs=2)
    assert table["seed"].nunique() == calibration.N_NULL_DATASETS["quick"] >= 100
    return table


def test_at_least_100_null_data_sets_in_every_profile():
    assert all(n >= 100 for n in calibration.N_NULL_DATASETS.values())


@pytest.mark.slow
def test_quick_profile_null_calibration_over_100_data_sets(quick_profile_table):
    """Centring and false-positive rates over the quick profile's 100 null data sets × 2 participants.

    * The within-run and within-session r remove each unit's mean: centred on 0 within 4 standard
      errors of the mean.
    * The pooled levels are *not* centred: leave-one-session-out predictions are anti-correlated with
      the held-out session's mean (explained in the calibration chapter), so the null mean r is below 0
      and the null AUC below 0.5, increasingly from 1-min bins to sessions. The test pins that
      direction and order, which is what the chapter states.
    * At the 1-min and 2-min levels (many units, where the bootstrap design is valid) the number of
      p < 0.05 for r lies within the central 95 % binomial range around 5 %, and for r and AUC it is
      never above that range (not anti-conservative). Rejections in the paper's direction (r > 0,
      AUC > 0.5) are not above the range around 2.5 % at any pooled level.
    * The run, session and within-session levels are known to be liberal (LOSO artefact, few
      sessions); their rates are reported, not asserted.
    """
    table = quick_profile_table
    summary = calibration_summary(table).set_index("level")
    print("\n" + describe_calibration(summary.reset_index()))  # shown with pytest -s / -rA
    n = int(summary.loc["1min", "n_tests"])
    assert n == 2 * calibration.N_NULL_DATASETS["quick"]
    for level in ("within_run", "within_session"):
        se = summary.loc[level, "sd_r"] / np.sqrt(n)
        assert abs(summary.loc[level, "mean_r"]) < 4 * se, level
    pooled = ["1min", "2min", "run", "session"]
    assert (summary.loc[pooled, "mean_r"] < 0).all() and (summary.loc[pooled, "mean_auc"] < 0.5).all()
    assert summary.loc[pooled, "mean_r"].is_monotonic_decreasing
    lo, hi = _binomial_bounds(n)
    _, hi_pos = _binomial_bounds(n, 0.025)
    for level in ("1min", "2min"):
        assert lo <= summary.loc[level, "r_n_reject"] <= hi, (level, summary.loc[level, "r_n_reject"], (lo, hi))
        assert summary.loc[level, "auc_n_reject"] <= hi, level
    for level in pooled:
        for stat in ("r", "auc"):
            assert summary.loc[level, f"{stat}_pos_reject_rate"] * n <= hi_pos, (level, stat)
