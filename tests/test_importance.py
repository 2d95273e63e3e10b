"""Tests of deipp_core.analyses.importance: hierarchical permutations, region importance, weights,
network summaries (methods §11)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from deipp_core.analyses.importance import (
    _importance_block,
    featimp_source_data,
    hierarchical_permutations,
    network_summary,
    region_contributions,
    region_importance,
    region_weights,
    top_regions,
)
from deipp_core.edges import edge_indices, n_edges, vec_to_sym
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.features import ParticipantFeatures
from deipp_core.ratings import RatingParams


def _labels(n_ses=3, n_runs=2, n_bins=3):
    ses = np.repeat([f"{s + 1:02d}" for s in range(n_ses)], n_runs * n_bins)
    run = np.tile(np.repeat(np.arange(1, n_runs + 1), n_bins), n_ses)
    return ses, run


def _source_groups(ses, run, perm_row):
    """For each target (session, run): the set of source (session, run) pairs of its rows."""
    out = {}
    for n, src in enumerate(perm_row):
        out.setdefault((ses[n], run[n]), set()).add((ses[src], run[src]))
    return out


# ----------------------------------------------------------------------------------------------
# Hierarchical permutations
# ----------------------------------------------------------------------------------------------


def test_hierarchical_permutation_keeps_runs_within_sessions_and_bins_within_runs():
    ses, run = _labels(3, 2, 3)
    perm = hierarchical_permutations(ses, run, 200, seed=1)
    assert perm.shape == (200, 18)
    for row in perm:
        assert sorted(row.tolist()) == list(range(18))  # a permutation of the rows
        groups = _source_groups(ses, run, row)
        # all bins of a target run come from one source run
        assert all(len(src) == 1 for src in groups.values())
        # both runs of a target session come from one source session
        for s in np.unique(ses):
            src_sessions = {next(iter(groups[(s, r)]))[0] for r in (1, 2)}
            assert len(src_sessions) == 1


def test_hierarchical_permutation_moves_every_level():
    ses, run = _labels(3, 2, 3)
    perm = hierarchical_permutations(ses, run, 300, seed=2)
    # sessions move: slot of session 01 receives each session sometimes
    assert set(ses[perm[:, 0]]) == {"01", "02", "03"}
    # runs move within a session slot and bins move within a run
    assert set(run[perm[:, 0]]) == {1, 2}
    bin_of = np.tile(np.arange(3), 6)
    assert set(bin_of[perm[:, 0]]) == {0, 1, 2}
    # uniform over the 3 * 2 * 3 = 18 sources of slot 0 (expected 300/18 ≈ 17 each)
    counts = np.bincount(perm[:, 0], minlength=18)
    assert counts.min() > 3


def test_hierarchical_permutation_hand_example():
    # 2 sessions x 1 run x 2 bins: the 4 reachable permutations, each with probability 1/4
    ses = np.array(["a", "a", "b", "b"])
    run = np.ones(4, dtype=int)
    perm = hierarchical_permutations(ses, run, 2000, seed=3)
    allowed = {(0, 1, 2, 3), (1, 0, 2, 3), (0, 1, 3, 2), (1, 0, 3, 2),
               (2, 3, 0, 1), (3, 2, 0, 1), (2, 3, 1, 0), (3, 2, 1, 0)}
    seen = {tuple(p) for p in perm.tolist()}
    assert seen == allowed
    # (0, 2, 1, 3) would mix bins across sessions: never drawn
    assert (0, 2, 1, 3) not in seen


def test_hierarchical_permutation_is_seeded():
    ses, run = _labels()
    a = hierarchical_permutations(ses, run, 10, seed=5)
    b = hierarchical_permutations(ses, run, 10, seed=5)
    c = hierarchical_permutations(ses, run, 10, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_hierarchical_permutation_unbalanced_design_keeps_nesting():
    # session 02 has a single run; session 03 a run of 2 bins
    ses = np.array(["01"] * 6 + ["02"] * 3 + ["03"] * 5)
    run = np.array([1, 1, 1, 2, 2, 2] + [1, 1, 1] + [1, 1, 1, 2, 2])
    perm = hierarchical_permutations(ses, run, 100, seed=0)
    for row in perm:
        assert sorted(row.tolist()) == list(range(14))
        groups = _source_groups(ses, run, row)
        assert all(len(src) == 1 for src in groups.values())
        # session 02 (one run) can only receive itself
        assert {next(iter(groups[("02", 1)]))[0]} == {"02"}


def test_hierarchical_permutation_rejects_bad_input():
    with pytest.raises(ParameterError, match="n_perm"):
        hierarchical_permutations(["a"], [1], 0)
    with pytest.raises(DataFormatError, match="one label per row"):
        hierarchical_permutations(["a", "a"], [1], 3)


# ----------------------------------------------------------------------------------------------
# Region contributions and importance
# ----------------------------------------------------------------------------------------------


def test_region_contributions_sum_each_edge_for_both_endpoints(rng):
    P = 6
    X = rng.normal(size=(5, n_edges(P)))
    w = rng.normal(size=n_edges(P))
    R = region_contributions(X, w, P)
    np.testing.assert_allclose(R.sum(axis=1), 2 * X @ w)
    # row 0 by hand through the symmetric matrix (refmt_r, then column sums)
    np.testing.assert_allclose(R[0], vec_to_sym(X[0] * w).sum(axis=0))


def _features(rng, P=8, n_ses=4, n_runs=3, n_bins=10, planted=2, noise=0.5):
    """tbin10 rows whose rating depends on the edges of region ``planted``; fold models = truth."""
    ses, run = _labels(n_ses, n_runs, n_bins)
    N, E = ses.size, n_edges(P)
    X = rng.normal(size=(N, E))
    i, j = edge_indices(P)
    w = np.where((i == planted) | (j == planted), 1.0, 0.0)
    w[(i == 5) & (j == 6)] = 0.3            # a weak edge elsewhere
    y = X @ w + noise * rng.normal(size=N)
    rows = pd.DataFrame({"kind": "tbin10", "session": ses, "run": run,
                         "bin": np.tile(np.arange(n_bins), n_ses * n_runs), "rating": y,
                         "n_frames": 50})
    feats = ParticipantFeatures("01", X, rows, np.arange(P) + 10, {}, RatingParams())
    groups = np.unique(ses)
    cv = SimpleNamespace(groups=groups, fold_coef=np.tile(w, (len(groups), 1)),
                         fold_intercept=np.linspace(0, 0.3, len(groups)))
    return feats, cv, w


def _atlas(P_total=20):
    return pd.DataFrame({
        "index": np.arange(P_total), "name": [f"R{k}" for k in range(P_total)],
        "network": ["DefaultMode", "Auditory", "unassigned", "Salience"] * (P_total // 4),
        "x": np.linspace(-50, 50, P_total), "y": 0.4, "z": -0.6, "included": True,
    })


def test_importance_block_matches_a_direct_loop(rng):
    N, P = 24, 5
    R = rng.normal(size=(N, P))
    pred = R.sum(axis=1) / 2 + rng.normal(size=N)
    y = pred + rng.normal(size=N)
    ses, run = _labels(2, 3, 4)
    perm = hierarchical_permutations(ses, run, 7, seed=0)
    fast = _importance_block(R, y - y.mean(), pred, perm)
    slow = np.array([[np.corrcoef(pred - R[:, i] + R[p, i], y)[0, 1] for i in range(P)] for p in perm])
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_planted_region_is_most_important_and_silent_region_is_zero(rng):
    feats, cv, w = _features(rng)
    res = region_importance(feats, cv, n_perm=300, seed=0, atlas=_atlas())
    t = res.table
    assert t.loc[t["imp"].idxmax(), "parcel"] == 12        # planted region 2 → atlas row 12
    assert t.loc[t["parcel"] == 12, "rank"].item() == 1
    # regions 0, 1, 3, 4, 7 carry only one planted edge each; a region whose contribution is zero
    # everywhere has zero importance: make one by zeroing its edges' weights
    i, j = edge_indices(8)
    cv.fold_coef[:, (i == 7) | (j == 7)] = 0.0
    res0 = region_importance(feats, cv, n_perm=100, seed=0)
    assert abs(res0.table.loc[res0.table["parcel"] == 17, "imp"].item()) < 1e-12
    # the original r is the r of the held-out predictions
    pred = feats.X @ w + cv.fold_intercept[np.searchsorted(cv.groups, feats.rows["session"])]
    assert res.r_orig == pytest.approx(np.corrcoef(pred, feats.rows["rating"])[0, 1])
    np.testing.assert_allclose(res.rows["predicted"], pred)


def test_region_importance_matches_explicit_permutations(rng):
    feats, cv, _ = _features(rng, P=5, n_ses=3, n_runs=2, n_bins=4)
    res = region_importance(feats, cv, n_perm=20, seed=4)
    # recompute with the same permutation stream (one block, first child of SeedSequence(4))
    perm = hierarchical_permutations(feats.rows["session"], feats.rows["run"], 20,
                                     seed=np.random.default_rng(np.random.SeedSequence(4).spawn(1)[0]))
    R, pred, y = res.contributions, res.rows["predicted"].to_numpy(), feats.rows["rating"].to_numpy()
    imp = [np.mean([res.r_orig - np.corrcoef(pred - R[:, i] + R[p, i], y)[0, 1] for p in perm])
           for i in range(5)]
    np.testing.assert_allclose(res.table["imp"], imp, atol=1e-12)


def test_region_importance_does_not_depend_on_n_jobs(rng):
    feats, cv, _ = _features(rng, P=6)
    a = region_importance(feats, cv, n_perm=600, seed=1, n_jobs=1)
    b = region_importance(feats, cv, n_perm=600, seed=1, n_jobs=2)
    np.testing.assert_allclose(a.table["imp"], b.table["imp"], atol=1e-12)


def test_region_importance_checks_its_inputs(rng):
    feats, cv, _ = _features(rng, P=6)
    with pytest.raises(ParameterError, match="n_perm"):
        region_importance(feats, cv, n_perm=0)
    bad = SimpleNamespace(groups=np.array(["01", "02"]), fold_coef=cv.fold_coef[:2],
                          fold_intercept=cv.fold_intercept[:2])
    with pytest.raises(DataFormatError, match="no outer-fold model"):
        region_importance(feats, bad, n_perm=5)


def test_featimp_source_data_has_the_paper_columns(rng):
    feats, cv, _ = _features(rng, P=6)
    res = region_importance(feats, cv, n_perm=10, seed=0, atlas=_atlas())
    src = featimp_source_data(res.table)
    assert list(src.columns) == ["ROI", "imp", "name", "MNI_1", "MNI_2", "MNI_3", "netnames"]
    assert src["ROI"].tolist() == list(range(10, 16))
    # MATLAB round: half away from zero
    assert src["MNI_2"].unique().tolist() == [0.0] and src["MNI_3"].unique().tolist() == [-1.0]


# ----------------------------------------------------------------------------------------------
# Weights and networks
# ----------------------------------------------------------------------------------------------


def test_region_weights_hand_example():
    # P = 4, edges (0,1) (0,2) (1,2) (0,3) (1,3) (2,3)
    w = np.array([0.5, -0.2, 0.1, 0.0, -0.4, 0.3])
    t = region_weights(w, 4)
    np.testing.assert_allclose(t["wpos"], [0.5, 0.6, 0.4, 0.3])
    np.testing.assert_allclose(t["wneg"], [-0.2, -0.4, -0.2, -0.4])
    with pytest.raises(DataFormatError):
        region_weights(w, 5)


def test_top_regions_follow_the_hazen_rules():
    v = np.arange(1.0, 21.0)
    assert top_regions(v, 10).sum() == 10
    assert top_regions(v, 10).nonzero()[0].tolist() == list(range(10, 20))
    # low rule is strict: quantile(v, 0.5, hazen) = 10.5, v < 10.5 → 1…10
    assert top_regions(v, 10, low=True).nonzero()[0].tolist() == list(range(10))
    # with fewer regions than k every region is in the set
    assert top_regions(v[:5], 10).all()


def test_network_summary_drops_unassigned_and_marks_the_union(rng):
    feats, cv, _ = _features(rng, P=16)
    atlas = _atlas(40)
    imp = region_importance(feats, cv, n_perm=20, seed=0, atlas=atlas).table
    wt = region_weights(rng.normal(size=n_edges(16)), 16, parcels=feats.parcels, atlas=atlas)
    s = network_summary(imp, wt, k=3)
    assert "unassigned" not in set(s["network"])
    assert s.attrs["network_order"] == ["DefaultMode", "Salience", "Auditory"]
    assert set(s["metric"]) == {"imp", "pos", "neg"}
    n = s[s["metric"] == "imp"].shape[0]
    assert n == 12  # 16 regions minus the 4 unassigned
    for metric in ("imp", "pos"):
        d = s[s["metric"] == metric]
        assert d["top"].sum() == 3
        assert d.loc[d["top"], "value"].min() >= d.loc[~d["top"], "value"].max()
    d = s[s["metric"] == "neg"]
    assert d.loc[d["top"], "value"].max() < d.loc[~d["top"], "value"].min()
    union = set(s.loc[s["top"], "parcel"])
    assert set(s.loc[s["in_union"], "parcel"]) == union
    with pytest.raises(DataFormatError, match="different parcels"):
        network_summary(imp, wt.iloc[:-1], k=3)


# ----------------------------------------------------------------------------------------------
# Twin recovery, summaries and figures
# ----------------------------------------------------------------------------------------------


def test_planted_region_recovery_counts_module_regions():
    from deipp_core.analyses.importance import module_recovery_table, planted_region_recovery

    table = pd.DataFrame({"parcel": np.arange(20), "imp": np.r_[np.ones(5), np.zeros(15)]})
    rec = planted_region_recovery(table, {"A": [0, 1, 2], "B": [3, 4]}, k=5)
    assert rec["auc"] == 1.0 and rec["top_in_module"] == 5 and rec["n_module"] == 5
    assert rec["top_chance"] == pytest.approx(5 * 5 / 20)
    # modules among the low values: each loses to the 5 high regions and ties the 10 other low ones
    rec0 = planted_region_recovery(table, {"A": [10, 11, 12, 13, 14]}, k=5)
    assert rec0["auc"] == pytest.approx((5 * 0 + 10 * 0.5) / 15) and rec0["top_in_module"] == 0
    weights = pd.DataFrame({"parcel": np.arange(20), "wpos": np.arange(20.0), "wneg": -np.arange(20.0)})
    t = module_recovery_table(table, weights, {"A": [17, 18, 19]}, k=3)
    assert list(t.index) == ["imp", "wpos", "wneg"]
    assert t.loc["wpos", "auc"] == 1.0 and t.loc["wneg", "auc"] == 1.0  # most negative = top


def test_importance_summary_names_the_top_regions(rng):
    from deipp_core.analyses.importance import importance_summary

    feats, cv, _ = _features(rng)
    res = region_importance(feats, cv, n_perm=50, seed=0, atlas=_atlas())
    text = importance_summary({"Participant 1": res}, n_top=1)
    assert text.startswith("**Participant 1**: R12 (")


def test_network_palette_is_stable_across_subsets():
    from deipp_core.plotting.importance import network_palette

    full = network_palette(["DefaultMode", "Auditory", "Salience", "custom"])
    assert network_palette(["Salience"])["Salience"] == full["Salience"]
    assert len(set(full.values())) == 4


def test_importance_figures_draw_the_top_sets(rng):
    import matplotlib.pyplot as plt

    from deipp_core.plotting.importance import plot_importance_grid, plot_network_metric

    feats, cv, _ = _features(rng, P=16)
    atlas = _atlas(40)
    imp = region_importance(feats, cv, n_perm=20, seed=0, atlas=atlas).table
    wt = region_weights(rng.normal(size=n_edges(16)), 16, parcels=feats.parcels, atlas=atlas)
    s = network_summary(imp, wt, k=3)
    fig = plot_importance_grid({"P1": s}, {"P1": imp})
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 4
    fig, ax = plt.subplots()
    plot_network_metric(s, "neg", ax=ax)
    assert ax.yaxis_inverted()
    big = [c for c in ax.collections if len(c.get_sizes()) and c.get_sizes()[0] == 48]
    assert sum(len(c.get_offsets()) for c in big) == s[(s["metric"] == "neg") & s["top"]].shape[0]


def test_brain_figures_return_figures(rng):
    import matplotlib.pyplot as plt

    from deipp_core.plotting.brain import plot_brain_grid

    atlas = _atlas(40)
    wt = region_weights(rng.normal(size=n_edges(16)), 16, parcels=np.arange(16) + 10, atlas=atlas)
    fig = plot_brain_grid({"P1": [dict(kind="markers", table=wt, value="wpos"),
                                  dict(kind="networks", table=wt, mask=wt["wpos"] > 0.5),
                                  dict(kind="edges", weights=rng.normal(size=n_edges(16)), regions=wt,
                                       n_edges=5)]})
    assert isinstance(fig, plt.Figure)
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert titles == ["P1", "P1", "P1"]
