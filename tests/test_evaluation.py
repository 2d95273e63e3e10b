"""Tests of deipp_core.evaluation: level table, hierarchical bootstrap, four-level evaluation."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from deipp_core.evaluation import (
    LEVELS,
    _level_rng,
    evaluate,
    hierarchical_bootstrap,
    level_table,
    roc_source_data,
    scatter_source_data,
    session_bootstrap,
    within_correlations,
)
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.stats import boot2cip, median_split, pearson_r


def make_predictions(
    rng, n_sessions=6, n_runs=3, signal=0.5, *, extra_kinds=True, ratings=None
) -> pd.DataFrame:
    """Predictions as the decoder hands them over: tbin10, tbin5 and run rows (+ rbin10, rest)."""
    rows = []
    for s in range(1, n_sessions + 1):
        for r in range(1, n_runs + 1):
            for kind, n in (("tbin10", 10), ("tbin5", 5)):
                rows += [(kind, f"{s:02d}", r, b) for b in range(n)]
            rows.append(("run", f"{s:02d}", r, -1))
            if extra_kinds:
                rows += [("rbin10", f"{s:02d}", r, b) for b in range(10)]
        if extra_kinds:
            rows.append(("rest", f"{s:02d}", 1, -1))
    df = pd.DataFrame(rows, columns=["kind", "session", "run", "bin"])
    df["rating"] = rng.uniform(size=len(df)) if ratings is None else ratings(len(df))
    df["predicted"] = signal * df["rating"] + rng.normal(scale=0.3, size=len(df))
    return df.sample(frac=1.0, random_state=0).reset_index(drop=True)  # any row order is accepted


@pytest.fixture
def table(rng):
    return level_table(make_predictions(rng))


# --- level table ----------------------------------------------------------------------------


def test_level_table_levels_sizes_and_columns(table):
    assert list(table.columns) == ["level", "session", "run", "bin", "actual", "predicted"]
    sizes = table.groupby("level", sort=False).size()
    assert list(sizes.index) == list(LEVELS)
    assert sizes.tolist() == [6 * 3 * 10, 6 * 3 * 5, 6 * 3, 6]


def test_level_table_orders_bin_fastest_then_run_then_session(table):
    one = table[table["level"] == "1min"]
    keys = list(zip(one["session"].astype(int), one["run"], one["bin"]))
    assert keys == sorted(keys)
    assert keys[:3] == [(1, 1, 0), (1, 1, 1), (1, 1, 2)] and keys[10] == (1, 2, 0)
    assert keys[30] == (2, 1, 0)


def test_level_table_session_is_mean_of_its_run_rows(table):
    runs = table[table["level"] == "run"]
    ses = table[table["level"] == "session"].set_index("session")
    want = runs.groupby("session")[["actual", "predicted"]].mean()
    np.testing.assert_allclose(ses[["actual", "predicted"]], want.loc[ses.index])
    assert (ses["run"] == -1).all() and (ses["bin"] == -1).all()


def test_level_table_ignores_rbin_and_rest_rows(rng):
    preds = make_predictions(rng)
    with_extra = level_table(preds)
    without = level_table(preds[preds["kind"].isin(["tbin10", "tbin5", "run"])])
    pd.testing.assert_frame_equal(with_extra, without)


def test_level_table_sorts_sessions_numerically():
    preds = pd.DataFrame({
        "kind": ["run"] * 3, "session": ["10", "2", "1"], "run": [1, 1, 1], "bin": [-1] * 3,
        "rating": [0.1, 0.2, 0.3], "predicted": [0.0, 0.0, 0.0],
    })
    assert level_table(preds)["session"].tolist()[:3] == ["1", "2", "10"]


def test_level_table_takes_other_value_columns_for_the_motion_control(rng):
    preds = make_predictions(rng).rename(columns={"rating": "fd"})
    t = level_table(preds, x="fd", x_name="fd")
    assert "fd" in t.columns and "actual" not in t.columns
    res = evaluate(t, x="fd", n_boot=50)
    assert res["r"].notna().all()


def test_level_table_errors_name_the_problem(rng):
    preds = make_predictions(rng)
    with pytest.raises(DataFormatError, match="lack column"):
        level_table(preds.drop(columns="bin"))
    with pytest.raises(DataFormatError, match="share"):
        level_table(pd.concat([preds, preds[preds["kind"] == "tbin5"].iloc[[0]]]))
    bad = preds.copy()
    bad.loc[bad["kind"] == "tbin10", "predicted"] = np.nan
    with pytest.raises(DataFormatError, match="non-finite"):
        level_table(bad)
    with pytest.raises(DataFormatError, match="no rows of kind"):
        level_table(preds[preds["kind"] == "rest"])


# --- hierarchical bootstrap: structure -------------------------------------------------------


@st.composite
def nested_structures(draw):
    """Group labels (session, run) of units with unequal runs per session and bins per run."""
    n_ses = draw(st.integers(1, 4))
    ses, run = [], []
    for s in range(n_ses):
        for r in range(draw(st.integers(1, 3))):
            n_bins = draw(st.integers(1, 4))
            ses += [f"s{s}"] * n_bins
            run += [r + 1] * n_bins
    perm = draw(st.permutations(range(len(ses))))
    return np.array(ses)[list(perm)], np.array(run)[list(perm)]


def _check_nesting(res, groups):
    n_levels = len(groups)
    assert len(res.draws) == n_levels + 1
    top = res.draws[0]
    n_top = len(np.unique(groups[0])) if n_levels else res.n_units
    assert top.node.size == res.n_boot * n_top
    np.testing.assert_array_equal(top.resample, np.repeat(np.arange(res.n_boot), n_top))
    assert (top.parent == -1).all()
    assert ((top.node >= 0) & (top.node < n_top)).all()
    for d in range(1, n_levels + 1):
        lv, up = res.draws[d], res.draws[d - 1]
        # each draw sits in a draw of the previous level of the same resample ...
        np.testing.assert_array_equal(lv.resample, up.resample[lv.parent])
        if d < n_levels:
            node_rows = [np.flatnonzero(res.row_node[d] == k)[0] for k in lv.node]
            own_parent = res.row_node[d - 1][node_rows]
            n_children = np.array([
                len(np.unique(res.row_node[d][res.row_node[d - 1] == k])) for k in up.node
            ])
        else:  # units
            assert ((lv.node >= 0) & (lv.node < res.n_units)).all()
            own_parent = res.row_node[d - 1][lv.node]
            n_children = np.array([(res.row_node[d - 1] == k).sum() for k in up.node])
        # ... is one of the children of the node drawn there ...
        np.testing.assert_array_equal(own_parent, up.node[lv.parent])
        # ... and each drawn node gets as many draws as it has children.
        np.testing.assert_array_equal(np.bincount(lv.parent, minlength=up.node.size), n_children)
    # node ids follow the groups: same session label ⇔ same level-0 node
    for d in range(n_levels):
        key = pd.MultiIndex.from_arrays(list(groups[: d + 1]))
        assert len(np.unique(res.row_node[d])) == len(key.unique())


@settings(deadline=None, max_examples=60)
@given(structure=nested_structures(), n_boot=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_every_draw_is_nested_in_its_sampled_parent(structure, n_boot, seed):
    ses, run = structure
    for groups in ((ses, run), (ses,), ()):
        res = hierarchical_bootstrap(groups, n_boot, seed=seed, n_units=ses.size)
        assert res.n_boot == n_boot and res.n_units == ses.size
        _check_nesting(res, groups)
        counts = res.counts()
        assert counts.shape == (n_boot, ses.size)
        np.testing.assert_array_equal(counts.sum(axis=1), res.sizes())
        np.testing.assert_array_equal(np.diff(res.resample) >= 0, True)


@settings(deadline=None, max_examples=60)
@given(structure=nested_structures(), n_boot=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_rejection_never_returns_a_single_class_resample(structure, n_boot, seed):
    ses, run = structure
    labels = np.arange(ses.size) % 2 == 0
    if ses.size < 2:
        with pytest.raises(ParameterError, match="both classes"):
            hierarchical_bootstrap((ses, run), n_boot, seed=seed, labels=labels)
        return
    try:
        res = hierarchical_bootstrap((ses, run), n_boot, seed=seed, labels=labels)
    except ParameterError as err:  # acceptance too rare in a tiny structure: must say so
        assert "too small" in str(err)
        return
    _check_nesting(res, (ses, run))
    counts = res.counts()
    pos = counts @ labels
    assert ((pos > 0) & (pos < counts.sum(axis=1))).all()


def test_balanced_structure_gives_rectangular_indices_and_whole_blocks():
    ses = np.repeat(np.arange(5), 30)
    run = np.tile(np.repeat([1, 2, 3], 10), 5)
    res = hierarchical_bootstrap((ses, run), 400, seed=3)
    idx = res.indices()
    assert idx.shape == (400, 150)
    counts = res.counts()
    # a drawn session always brings 3 run draws of 10 bin draws: session totals are multiples of 30,
    # run totals multiples of 10
    ses_tot = counts.reshape(400, 5, 30).sum(axis=2)
    run_tot = counts.reshape(400, 15, 10).sum(axis=2)
    assert (ses_tot % 30 == 0).all() and (run_tot % 10 == 0).all()
    # every unit is drawn once per resample on average
    assert abs(counts.mean() - 1) < 1e-12
    assert np.abs(counts.mean(axis=0) - 1).max() < 0.35


def test_units_are_drawn_uniformly_in_expectation():
    ses = np.repeat(np.arange(4), 6)
    run = np.tile(np.repeat([1, 2], 3), 4)
    counts = hierarchical_bootstrap((ses, run), 20_000, seed=0).counts()
    np.testing.assert_allclose(counts.mean(axis=0), 1.0, atol=0.05)


def test_unequal_structure_has_varying_sizes_and_no_rectangular_indices():
    ses = np.array(["a"] * 6 + ["b"] * 2)
    run = np.array([1, 1, 1, 2, 2, 2, 1, 1])
    res = hierarchical_bootstrap((ses, run), 200, seed=0)
    assert len(np.unique(res.sizes())) > 1
    with pytest.raises(ParameterError, match="differ in size"):
        res.indices()


def test_hierarchical_bootstrap_is_deterministic_and_seeded():
    ses = np.repeat(np.arange(4), 6)
    run = np.tile(np.repeat([1, 2], 3), 4)
    a = hierarchical_bootstrap((ses, run), 50, seed=11).indices()
    b = hierarchical_bootstrap((ses, run), 50, seed=11).indices()
    c = hierarchical_bootstrap((ses, run), 50, seed=12).indices()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_hierarchical_bootstrap_argument_errors():
    with pytest.raises(ParameterError, match="n_boot"):
        hierarchical_bootstrap([np.zeros(3)], 0)
    with pytest.raises(ParameterError, match="shape"):
        hierarchical_bootstrap([np.zeros(3), np.zeros(4)], 5)
    with pytest.raises(ParameterError, match="n_units"):
        hierarchical_bootstrap([], 5)
    with pytest.raises(ParameterError, match="missing"):
        hierarchical_bootstrap([np.array([1.0, np.nan, 2.0])], 5)


# --- vectorised statistics over resamples ----------------------------------------------------


def test_vectorised_r_and_auc_equal_per_resample_scipy_and_sklearn(table):
    rows = table[table["level"] == "1min"]
    x, y = rows["actual"].to_numpy(), np.round(rows["predicted"].to_numpy(), 1)  # ties in y
    labels = median_split(x)
    res = hierarchical_bootstrap(
        (rows["session"].to_numpy(), rows["run"].to_numpy()), 100, seed=5, labels=labels
    )
    w = res.counts()
    r = pearson_r(x, y, w)
    from deipp_core.stats import auc_midrank

    auc = auc_midrank(labels, y, w)
    for b, idx in enumerate(res.indices()):
        assert r[b] == pytest.approx(sps.pearsonr(x[idx], y[idx])[0], abs=1e-12)
        assert auc[b] == pytest.approx(roc_auc_score(labels[idx], y[idx]), abs=1e-12)


# --- evaluate ---------------------------------------------------------------------------------


def test_evaluate_point_estimates_match_direct_formulas(table):
    res = evaluate(table, n_boot=100).set_index("level")
    assert list(res.columns) == [
        "n_units", "r", "r_ci_low", "r_ci_high", "r_p",
        "auc", "auc_ci_low", "auc_ci_high", "auc_p", "r2", "mae",
    ]
    for level in LEVELS:
        rows = table[table["level"] == level]
        x, y = rows["actual"].to_numpy(), rows["predicted"].to_numpy()
        got = res.loc[level]
        assert got["n_units"] == len(rows)
        assert got["r"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
        assert got["auc"] == pytest.approx(roc_auc_score(x > np.median(x), y), abs=1e-12)
        assert got["r2"] == pytest.approx(1 - np.sum((x - y) ** 2) / np.sum((x - x.mean()) ** 2))
        assert got["mae"] == pytest.approx(np.mean(np.abs(x - y)))
        assert got["r_ci_low"] <= got["r_ci_high"] and got["auc_ci_low"] <= got["auc_ci_high"]
        assert 2 / 101 <= got["r_p"] <= 2 and 2 / 101 <= got["auc_p"] <= 2


def test_evaluate_detects_a_strong_signal():
    res = evaluate(level_table(make_predictions(np.random.default_rng(1), signal=2.0)), n_boot=500)
    one = res.set_index("level").loc["1min"]
    assert one["r_ci_low"] > 0 and one["r_p"] == pytest.approx(2 / 501)
    assert one["auc_ci_low"] > 0.5


def test_evaluate_is_deterministic_and_independent_of_n_jobs_and_other_levels(table):
    a = evaluate(table, n_boot=300, seed=3)
    b = evaluate(table, n_boot=300, seed=3, n_jobs=2)
    pd.testing.assert_frame_equal(a, b)
    only_run = evaluate(table[table["level"] == "run"], n_boot=300, seed=3)
    pd.testing.assert_frame_equal(only_run, a[a["level"] == "run"].reset_index(drop=True))
    c = evaluate(table, n_boot=300, seed=4)
    assert not np.array_equal(a["r_ci_low"], c["r_ci_low"])


def test_evaluate_uses_the_public_generator_stream_and_one_index_set_for_r_and_auc(table):
    rows = table[table["level"] == "run"]
    x, y = rows["actual"].to_numpy(), rows["predicted"].to_numpy()
    labels = median_split(x)
    res = hierarchical_bootstrap(
        (rows["session"].to_numpy(),), 400, seed=_level_rng(9, "run"), labels=labels
    )
    w = res.counts()
    from deipp_core.stats import auc_midrank

    got = evaluate(table, n_boot=400, seed=9).set_index("level").loc["run"]
    assert tuple(got[["r_ci_low", "r_ci_high", "r_p"]]) == boot2cip(pearson_r(x, y, w), 0.0)
    assert tuple(got[["auc_ci_low", "auc_ci_high", "auc_p"]]) == boot2cip(
        auc_midrank(labels, y, w), 0.5
    )


def test_evaluate_without_rejection_still_runs_and_differs_only_by_resamples(table):
    a = evaluate(table, n_boot=200, reject_single_class=False)
    b = evaluate(table, n_boot=200)
    pd.testing.assert_frame_equal(a[["level", "r", "auc", "r2", "mae"]], b[["level", "r", "auc", "r2", "mae"]])


def test_evaluate_rejects_unknown_levels_and_bad_arguments(table):
    bad = table.copy()
    bad.loc[0, "level"] = "3min"
    with pytest.raises(DataFormatError, match="unknown level"):
        evaluate(bad, n_boot=10)
    with pytest.raises(ParameterError, match="n_boot"):
        evaluate(table, n_boot=0)


def test_evaluate_10000_resamples_of_900_units_takes_seconds_not_minutes():
    t = level_table(make_predictions(np.random.default_rng(0), n_sessions=30, extra_kinds=False))
    one = t[t["level"] == "1min"]
    assert len(one) == 900
    start = time.perf_counter()
    evaluate(one, n_boot=10_000)
    assert time.perf_counter() - start < 15  # about 0.7 s on the development machine


# --- within-run and within-session r ----------------------------------------------------------


def test_within_run_r_per_unit_and_mean(table):
    units, summary = within_correlations(table, "run", n_boot=200)
    one = table[table["level"] == "1min"]
    assert list(units.columns) == ["session", "run", "n_bins", "r"]
    assert len(units) == 18 and (units["n_bins"] == 10).all()
    for _, u in units.iterrows():
        g = one[(one["session"] == u["session"]) & (one["run"] == u["run"])]
        assert u["r"] == pytest.approx(np.corrcoef(g["actual"], g["predicted"])[0, 1], abs=1e-12)
    s = summary.iloc[0]
    assert s["by"] == "run" and s["n_units"] == 18
    assert s["r"] == pytest.approx(units["r"].mean())
    assert s["r_ci_low"] <= s["r"] <= s["r_ci_high"]


def test_within_session_r_uses_the_30_bins_of_each_session(table):
    units, summary = within_correlations(table, "session", n_boot=200)
    assert list(units.columns) == ["session", "n_bins", "r"]
    assert (units["n_bins"] == 30).all() and len(units) == 6
    one = table[(table["level"] == "1min") & (table["session"] == "03")]
    assert units.set_index("session").loc["03", "r"] == pytest.approx(
        np.corrcoef(one["actual"], one["predicted"])[0, 1]
    )


@pytest.mark.parametrize("by", ["run", "session"])
def test_within_bootstrap_reuses_the_index_set_of_that_level(table, by):
    units, summary = within_correlations(table, by, n_boot=300, seed=2)
    rows = table[table["level"] == by]
    groups = (rows["session"].to_numpy(),) if by == "run" else ()
    w = hierarchical_bootstrap(
        groups, 300, seed=_level_rng(2, by), labels=median_split(rows["actual"].to_numpy()),
        n_units=len(rows),
    ).counts()
    boot = w @ units["r"].to_numpy() / w.sum(axis=1)
    assert tuple(summary.iloc[0][["r_ci_low", "r_ci_high", "r_p"]]) == pytest.approx(
        boot2cip(boot, 0.0)
    )


def test_within_r_leaves_out_runs_with_undefined_r(table):
    t = table.copy()
    sel = (t["level"] == "1min") & (t["session"] == "01") & (t["run"] == 2)
    t.loc[sel, "predicted"] = 0.5  # a constant prediction (no PC selected) in one run
    units, summary = within_correlations(t, "run", n_boot=100)
    assert units["r"].isna().sum() == 1
    assert summary.iloc[0]["n_units"] == 17
    assert summary.iloc[0]["r"] == pytest.approx(units["r"].mean())  # pandas mean skips NaN
    assert np.isfinite(summary.iloc[0][["r_ci_low", "r_ci_high", "r_p"]].astype(float)).all()


def test_within_correlations_argument_errors(table):
    with pytest.raises(ParameterError, match="by must be"):
        within_correlations(table, "bin")
    with pytest.raises(ParameterError, match="no 'run' rows"):
        within_correlations(table[table["level"] == "1min"], "run", n_boot=10)


# --- rest: plain session bootstrap -------------------------------------------------------------


def test_session_bootstrap_point_estimates_and_determinism(rng):
    x = rng.uniform(size=25)
    y = x + rng.normal(scale=0.2, size=25)
    a = session_bootstrap(x, y, n_boot=500, seed=1)
    b = session_bootstrap(x, y, n_boot=500, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert "level" not in a.columns and a["n_units"].iloc[0] == 25
    assert a["r"].iloc[0] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert a["auc"].iloc[0] == pytest.approx(roc_auc_score(x > np.median(x), y))


def test_session_bootstrap_does_not_reject_single_class_resamples():
    # with 4 sessions, 2·0.5^4 = 1/8 of the resamples hold a single class: their AUC is NaN and, as
    # MATLAB sorts NaN last, the upper AUC bound is NaN
    x = np.array([0.1, 0.2, 0.8, 0.9])
    y = np.array([0.2, 0.1, 0.9, 0.7])
    res = session_bootstrap(x, y, n_boot=1000, seed=0)
    assert np.isnan(res["auc_ci_high"].iloc[0])
    assert np.isfinite(res["r_ci_low"].iloc[0])


# --- source data ---------------------------------------------------------------------------------


def test_source_data_columns_follow_the_published_csvs(table):
    sc = scatter_source_data(table, "2min")
    assert list(sc.columns) == ["actualpain", "predictedpain"] and len(sc) == 90
    np.testing.assert_array_equal(sc["actualpain"], table.loc[table["level"] == "2min", "actual"])
    roc = roc_source_data(table, "run")
    assert list(roc.columns) == ["1-specificity", "sensitivity"]
    assert tuple(roc.iloc[0]) == (0.0, 0.0) and tuple(roc.iloc[-1]) == (1.0, 1.0)


# --- calibration on pure noise ---------------------------------------------------------------------


def test_null_calibration_on_pure_noise():
    """200 null data sets, 200 resamples each.

    r is centred on 0 at every level. At the session level (plain resampling of 20 i.i.d. units)
    p is roughly uniform. At the bin and run levels the hierarchical bootstrap is conservative on
    i.i.d. noise (it resamples between-session and between-run variance the data do not have), so
    p < 0.05 must be rare, not nominal.
    """
    results = []
    for i in range(200):
        g = np.random.default_rng(10_000 + i)
        preds = make_predictions(g, n_sessions=20, n_runs=3, signal=0.0, extra_kinds=False)
        t = level_table(preds)
        t = t[t["level"].isin(["1min", "session"])]
        results.append(evaluate(t, n_boot=200, seed=i))
    res = pd.concat(results)
    for level, g in res.groupby("level"):
        assert abs(g["r"].mean()) < 3 * g["r"].std() / np.sqrt(len(g)) + 1e-3, level
        assert abs(g["auc"].mean() - 0.5) < 3 * g["auc"].std() / np.sqrt(len(g)) + 1e-3, level
    ses = res[res["level"] == "session"]
    for col in ("r_p", "auc_p"):
        p = np.minimum(ses[col].to_numpy(), 1.0)
        assert 0.01 <= np.mean(p < 0.05) <= 0.12, col
        assert 0.35 <= np.mean(p < 0.5) <= 0.65, col
        assert sps.kstest(p, "uniform").pvalue > 1e-3, col
    one = res[res["level"] == "1min"]
    assert np.mean(one["r_p"] < 0.05) <= 0.08
    assert np.mean(one["auc_p"] < 0.05) <= 0.08
