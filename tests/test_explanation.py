"""Tests of deipp_core.analyses.explanation (Haufe patterns, weight stability, pipeline permutation test)
and of its figures."""

from __future__ import annotations

import tracemalloc

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from deipp_core.analyses import explanation as ex
from deipp_core.analyses.prediction import run_prediction
from deipp_core.data.dataset import ATLAS_COLUMNS, MOTION_COLUMNS, Participant, Run
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.features import ParticipantFeatures, participant_features
from deipp_core.model import LassoPCR, nested_loso
from deipp_core.model._synthetic import make_session_data
from deipp_core.ratings import RatingParams

TR = 0.46


# ----------------------------------------------------------------------------------------------
# Synthetic participants (time series + continuous ratings), with or without a pain signal
# ----------------------------------------------------------------------------------------------


def _smooth(rng, n, width=15):
    x = rng.standard_normal(n + width)
    return np.convolve(x, np.ones(width) / width, mode="valid")[:n]


def make_participant(*, n_sessions=4, n_runs=2, n_parcels=8, n_volumes=420, signal=0.0, censor_rate=0.0,
                     seed=0) -> Participant:
    """Random AR-like parcel series and smooth ratings; ``signal`` couples parcels 0-3 with the rating."""
    rng = np.random.default_rng(seed)
    atlas = pd.DataFrame({"index": np.arange(1, n_parcels + 1), "name": [f"p{k}" for k in range(n_parcels)],
                          "network": ["NONE"] * n_parcels, "x": 0.0, "y": 0.0, "z": 0.0,
                          "included": True})[list(ATLAS_COLUMNS)]
    lag = RatingParams().lag_tr
    runs = []
    for s in range(1, n_sessions + 1):
        level = rng.uniform(0.2, 0.8)
        for r in range(1, n_runs + 1):
            t = np.arange(0.0, n_volumes * TR + 5.0, 0.1)
            v = np.clip(level + 0.25 * np.sin(2 * np.pi * t / rng.uniform(60, 120) + rng.uniform(0, 6.3))
                        + 0.08 * np.sin(2 * np.pi * t / 23.0 + rng.uniform(0, 6.3)), 0.0, 1.0)
            ts = np.column_stack([_smooth(rng, n_volumes) for _ in range(n_parcels)]) * 4.0
            if signal:
                # rating on the TR grid (mid-volume times), delayed by the lag, drives a shared module signal
                rt = np.interp((np.arange(n_volumes) + 0.5) * TR, t, v)
                drive = np.r_[np.full(lag, rt[0]), rt[:-lag]]
                shared = _smooth(rng, n_volumes, 3) * 3.0
                ts[:, :4] += (signal * drive)[:, None] * shared[:, None]
            censor = (rng.random(n_volumes) >= censor_rate).astype(int)
            conf = pd.DataFrame(np.zeros((n_volumes, len(MOTION_COLUMNS))), columns=list(MOTION_COLUMNS))
            conf["framewise_displacement"] = 0.0
            conf["censor"] = censor
            runs.append(Run(session=f"{s:02d}", task="rating", run=r, tr=TR, timeseries=ts, confounds=conf,
                            rating=pd.DataFrame({"time": t, "value": v}), source=f"/synthetic/ses-{s}/run-{r}"))
    return Participant("01", atlas, tuple(runs))


@pytest.fixture(scope="module")
def signal_participant():
    return make_participant(signal=1.5, censor_rate=0.05, seed=3)


@pytest.fixture(scope="module")
def signal_features(signal_participant):
    return participant_features(signal_participant)


def _features_from_arrays(X, y, groups, n_parcels) -> ParticipantFeatures:
    rows = pd.DataFrame({"kind": "rbin10", "session": [f"{g:02d}" for g in groups], "run": 1, "bin": 0,
                         "rating": y, "n_frames": 1})
    return ParticipantFeatures("01", X, rows, np.arange(n_parcels), {}, RatingParams())


# ----------------------------------------------------------------------------------------------
# Haufe patterns
# ----------------------------------------------------------------------------------------------


def test_haufe_pattern_equals_covariance_formula(rng):
    X = rng.standard_normal((40, 25)) + rng.uniform(-3, 3, 25)
    w = rng.standard_normal(25)
    y_hat = X @ w + 1.7
    explicit = np.cov(X, y_hat, rowvar=False)[:-1, -1] / np.var(y_hat, ddof=1)
    np.testing.assert_allclose(ex.haufe_pattern(X, weights=w), explicit, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ex.haufe_pattern(X, predictions=y_hat), explicit, rtol=0, atol=1e-10)
    # the full covariance route: Σ_X w / var(ŷ)
    full = np.cov(X, rowvar=False) @ w / np.var(X @ w, ddof=1)
    np.testing.assert_allclose(ex.haufe_pattern(X, weights=w), full, rtol=0, atol=1e-10)


def test_haufe_pattern_arguments(rng):
    X = rng.standard_normal((10, 4))
    with pytest.raises(ParameterError, match="exactly one"):
        ex.haufe_pattern(X)
    with pytest.raises(ParameterError, match="exactly one"):
        ex.haufe_pattern(X, weights=np.ones(4), predictions=np.ones(10))
    with pytest.raises(ParameterError, match="4 entries"):
        ex.haufe_pattern(X, weights=np.ones(3))
    assert np.isnan(ex.haufe_pattern(X, weights=np.zeros(4))).all()  # constant output: undefined


def test_pattern_recovers_signal_where_weights_hold_suppressors(rng):
    """Forward model x = a·s + b·d + noise: features 0-4 carry the signal s, features 5-9 only the
    distractor d that also contaminates features 0-4. The decoder needs features 5-9 to cancel d
    (suppressors: large weights), but they do not co-vary with its output (pattern ≈ 0)."""
    n, p = 2000, 30
    a = np.zeros(p)
    a[:5] = 1.0
    b = np.zeros(p)
    b[:10] = 1.0
    s, d = rng.standard_normal(n), 2.0 * rng.standard_normal(n)
    X = np.outer(s, a) + np.outer(d, b) + 0.3 * rng.standard_normal((n, p))
    model = LassoPCR(n_components=10).fit(X, s)
    w = model.coef_
    A = ex.haufe_pattern(X, weights=w)
    suppressors = slice(5, 10)
    assert np.abs(w[suppressors]).mean() > 0.5 * np.abs(w[:5]).mean()  # weights: suppressors are large
    assert np.abs(A[suppressors]).max() < 0.1 * np.abs(A[:5]).min()  # pattern: near zero
    assert np.corrcoef(A, a)[0, 1] > 0.99
    assert np.corrcoef(w, a)[0, 1] < 0.8


def test_pattern_on_synthetic_session_data_finds_planted_edges():
    from sklearn.metrics import roc_auc_score

    data = make_session_data(n_sessions=5, n_parcels=20, seed=1)
    cv = nested_loso(data["X"], data["y"], data["groups"])
    A = ex.haufe_pattern(data["X"], weights=cv.final_coef)
    assert roc_auc_score(data["planted"], np.abs(A)) > 0.9
    assert roc_auc_score(data["planted"], np.abs(A)) >= roc_auc_score(data["planted"], np.abs(cv.final_coef)) - 0.02


# ----------------------------------------------------------------------------------------------
# Weight stability
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def session_data():
    data = make_session_data(n_sessions=5, n_parcels=16, n_bins=6, seed=2)
    feats = _features_from_arrays(data["X"], data["y"], data["groups"], 16)
    cv = nested_loso(data["X"], data["y"], data["groups"])
    return data, feats, cv


def test_bootstrap_draw_equals_lassopcr_refit(session_data):
    data, feats, cv = session_data
    X, y = data["X"], data["y"]
    sessions = np.unique(data["groups"])
    session_rows = [np.flatnonzero(data["groups"] == s) for s in sessions]
    from deipp_core.model._cv import _centred_grams

    K, _ = _centred_grams(X, None)
    seed_seq = np.random.SeedSequence(7)
    n, mean, m2, agree = ex._boot_block(K, X, y, session_rows, cv.final_n_pcs, np.sign(cv.final_coef), 1, seed_seq)
    draw = np.random.default_rng(np.random.SeedSequence(7)).integers(0, sessions.size, size=sessions.size)
    idx = np.concatenate([session_rows[s] for s in draw])
    ref = LassoPCR(n_components=cv.final_n_pcs, solver="explicit").fit(X[idx], y[idx]).coef_
    assert n == 1 and np.all(m2 == 0)
    np.testing.assert_allclose(mean, ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())


def test_weight_stability_summaries_and_determinism(session_data):
    data, feats, cv = session_data
    a = ex.weight_stability(feats, cv, n_boot=40, seed=3, n_jobs=1)
    b = ex.weight_stability(feats, cv, n_boot=40, seed=3, n_jobs=2)
    for field in ("mean", "sd", "sign_consistency", "z"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = ex.weight_stability(feats, cv, n_boot=40, seed=4)
    assert not np.array_equal(a.mean, c.mean)
    assert a.n_boot == 40 and a.n_components == cv.final_n_pcs and a.n_sessions == 5
    assert np.all(a.sd >= 0) and np.all((a.sign_consistency >= 0) & (a.sign_consistency <= 1))
    np.testing.assert_allclose(a.z, a.mean / a.sd)
    table = a.table(feats)
    assert list(table.columns) == ["parcel_i", "parcel_j", "weight", "mean", "sd", "sign_consistency", "z"]
    # planted edges are the stable ones
    stable = np.abs(a.z) > 2
    assert stable[data["planted"]].mean() > 5 * max(stable[~data["planted"]].mean(), 0.01)


def test_weight_stability_running_moments_match_stored_draws(session_data, monkeypatch):
    """Chan's merge of block moments equals the moments of all draws computed at once."""
    data, feats, cv = session_data
    draws = []
    original = ex._boot_block

    def spy(K, X, y, session_rows, n_pcs, ref_sign, n_draws, seed_seq):
        out = original(K, X, y, session_rows, n_pcs, ref_sign, n_draws, seed_seq)
        draws.append(out)
        return out

    monkeypatch.setattr(ex, "_boot_block", spy)
    res = ex.weight_stability(feats, cv, n_boot=37, seed=0)  # 16 + 16 + 5
    assert [d[0] for d in draws] == [16, 16, 5]
    means = np.array([d[1] for d in draws])
    counts = np.array([d[0] for d in draws], dtype=float)
    grand = (counts[:, None] * means).sum(0) / counts.sum()
    m2 = sum(d[2] + d[0] * (d[1] - grand) ** 2 for d in draws)
    np.testing.assert_allclose(res.mean, grand, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.sd, np.sqrt(m2 / 36), rtol=1e-10)


def test_weight_stability_memory_does_not_grow_with_n_boot():
    data = make_session_data(n_sessions=4, n_parcels=160, n_bins=4, n_runs=2, frames_per_bin=5, seed=0)
    feats = _features_from_arrays(data["X"], data["y"], data["groups"], 160)
    cv = nested_loso(data["X"], data["y"], data["groups"])
    E = data["X"].shape[1]

    def peak(n_boot):
        tracemalloc.start()
        ex.weight_stability(feats, cv, n_boot=n_boot, seed=0)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(16), peak(320)
    # storing every draw would add (320 − 16) × E × 8 bytes ≈ 31 MB; the running sums add nothing
    assert large - small < 0.1 * (320 - 16) * E * 8


def test_weight_stability_checks_inputs(session_data):
    data, feats, cv = session_data
    with pytest.raises(ParameterError, match="n_boot"):
        ex.weight_stability(feats, cv, n_boot=1)
    other = nested_loso(data["X"][:, :10], data["y"], data["groups"])
    with pytest.raises(ParameterError, match="does not match"):
        ex.weight_stability(feats, other, n_boot=4)


# ----------------------------------------------------------------------------------------------
# Permutation schemes
# ----------------------------------------------------------------------------------------------


def test_session_scheme_hands_whole_sessions_over():
    participant = make_participant(n_sessions=5, censor_rate=0.0, seed=1)
    feats = participant_features(participant)
    keys = list(feats.frames)
    original = {k: feats.frames[k].rating for k in keys}
    ratings, info = ex.permuted_ratings(feats, "session", np.random.default_rng(5))
    order = info["order"]
    assert sorted(order.tolist()) == list(range(5)) and not np.array_equal(order, np.arange(5))
    sessions = sorted({s for s, _ in keys})
    for (ses, run), r in zip(keys, ratings):
        donor = sessions[order[sessions.index(ses)]]
        np.testing.assert_array_equal(r, original[(donor, run)])
    # each session's ratings stay intact as a set: the multiset of sessions is unchanged
    def by_session(values):
        return sorted(tuple(np.concatenate([values[k] for k in keys if k[0] == s]).round(12)) for s in sessions)

    assert by_session(dict(zip(keys, ratings))) == by_session(original)


def test_session_scheme_reads_donor_at_own_kept_frames():
    participant = make_participant(n_sessions=4, censor_rate=0.1, seed=2)
    feats = participant_features(participant)
    keys = list(feats.frames)
    lag = feats.params.lag_tr
    ratings, info = ex.permuted_ratings(feats, "session", np.random.default_rng(0))
    sessions = sorted({s for s, _ in keys})
    for (ses, run), r in zip(keys, ratings):
        donor = sessions[info["order"][sessions.index(ses)]]
        rf = feats.frames[(ses, run)]
        np.testing.assert_array_equal(r, feats.frames[(donor, run)].rating_tr[rf.frames - lag])
        assert r.size == rf.n_frames
    # identity permutation gives back the original kept-frame ratings
    same = ex._session_donor_ratings(ex._frames_context(feats), np.arange(4), sessions)
    for k, r in zip(keys, same):
        np.testing.assert_array_equal(r, feats.frames[k].rating)


def test_circular_scheme_keeps_each_run_distribution():
    participant = make_participant(n_sessions=3, censor_rate=0.05, seed=4)
    feats = participant_features(participant)
    keys = list(feats.frames)
    ratings, info = ex.permuted_ratings(feats, "circular", np.random.default_rng(1))
    for k, r, shift in zip(keys, ratings, info["shifts"]):
        orig = feats.frames[k].rating
        np.testing.assert_array_equal(np.sort(r), np.sort(orig))
        np.testing.assert_array_equal(r, np.roll(orig, shift))
        m = int(np.ceil(orig.size / 10))
        assert m <= shift <= orig.size - m
    with pytest.raises(ParameterError, match="too few"):
        ex.permuted_ratings(feats, "circular", np.random.default_rng(1), min_shift=10_000)
    with pytest.raises(ParameterError, match="scheme"):
        ex.permuted_ratings(feats, "shuffle", np.random.default_rng(1))


def test_session_scheme_needs_matching_runs():
    p = make_participant(n_sessions=3, seed=5)
    runs = tuple(r for r in p.runs if not (r.session == "02" and r.run == 2))
    p = Participant(p.label, p.atlas, runs)
    feats = participant_features(p)
    with pytest.raises(DataFormatError, match="same runs"):
        ex._session_donor_ratings(ex._frames_context(feats), np.array([1, 0, 2]), ["01", "02", "03"])


# ----------------------------------------------------------------------------------------------
# Whole-pipeline permutation test
# ----------------------------------------------------------------------------------------------


def test_observed_equals_main_analysis(signal_participant, signal_features):
    main = run_prediction(signal_participant, features=signal_features, profile="quick")
    res = ex.permutation_test(signal_participant, n_perm=3, scheme="circular", features=signal_features)
    obs = res.observed.set_index("level")["r"]
    ref = main.metrics.set_index("level")["r"]
    np.testing.assert_allclose(obs.loc[ref.index].to_numpy(), ref.to_numpy(), rtol=0, atol=1e-10)
    assert len(res.null) == 3 * len(ref)
    assert set(res.p.columns) >= {"level", "r", "p_perm", "null_mean", "null_q95", "n_undefined"}
    for lv, p in zip(res.p["level"], res.p["p_perm"]):
        nr = res.null.loc[res.null["level"] == lv, "r"].to_numpy()
        assert p == (1 + np.sum(nr >= obs[lv])) / 4
    summary = ex.permutation_summary([res], main.metrics)
    assert list(summary.columns) == ["level", "r", "p_circular", "null_q95_circular", "p_bootstrap"]
    np.testing.assert_array_equal(summary["p_bootstrap"], main.metrics.set_index("level").loc[summary["level"], "r_p"])


def test_permutation_test_deterministic_across_n_jobs(signal_participant, signal_features):
    a = ex.permutation_test(signal_participant, n_perm=6, scheme="session", features=signal_features, seed=2)
    b = ex.permutation_test(signal_participant, n_perm=6, scheme="session", features=signal_features, seed=2,
                            n_jobs=2)
    pd.testing.assert_frame_equal(a.null, b.null)
    pd.testing.assert_frame_equal(a.p, b.p)
    c = ex.permutation_test(signal_participant, n_perm=6, scheme="session", features=signal_features, seed=3)
    assert not a.null["r"].equals(c.null["r"])


def test_signal_beats_the_permutation_null(signal_participant, signal_features):
    res = ex.permutation_test(signal_participant, n_perm=9, scheme="circular", features=signal_features)
    p = res.p.set_index("level")
    assert p.loc["1min", "r"] > 0.3
    assert p.loc["1min", "p_perm"] == pytest.approx(0.1)  # the smallest possible p with 9 permutations


def test_permutation_test_checks_arguments(signal_participant):
    with pytest.raises(ParameterError, match="scheme"):
        ex.permutation_test(signal_participant, n_perm=2, scheme="bins")
    with pytest.raises(ParameterError, match="n_perm"):
        ex.permutation_test(signal_participant, n_perm=0)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["circular", "session"])
def test_permutation_p_not_anticonservative_on_null_data(scheme):
    """No pain signal: the fraction of p ≤ α stays near α (binomial bound), and p is not too small on
    average, over small null data sets."""
    n_sets, n_perm, alpha = 24, 19, 0.1
    ps = []
    for k in range(n_sets):
        participant = make_participant(n_sessions=5, n_runs=2, n_parcels=6, n_volumes=300, seed=100 + k)
        res = ex.permutation_test(participant, n_perm=n_perm, scheme=scheme, seed=k)
        ps.append(res.p.set_index("level").loc["1min", "p_perm"])
    ps = np.array(ps)
    # P(Binomial(24, 0.1) ≥ 8) ≈ 0.004
    assert np.sum(ps <= alpha) < 8
    assert ps.mean() > 0.35


# ----------------------------------------------------------------------------------------------
# Twin: pattern comparison, cache
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def twin(quick_twin_root):
    from deipp_core.data import load_dataset

    return load_dataset("twin", profile="quick", participants="02")


def test_pattern_comparison_on_twin(twin):
    from deipp_core.analyses import predict_participant

    res = predict_participant(twin, "02", profile="quick")
    X, _ = res.features.select("rbin10")
    A = ex.haufe_pattern(X, weights=res.cv.final_coef)
    comp = ex.pattern_comparison(res.cv.final_coef, A, res.features, atlas=twin["02"].atlas, dataset=twin)
    s = comp.summary
    assert s["n_planted"] > 0 and 0.5 < s["auc_pattern"] <= 1 and 0.5 < s["auc_weight"] <= 1
    assert comp.edges["planted"].sum() == s["n_planted"]
    assert {"wpos", "wneg", "ppos", "pneg", "network"} <= set(comp.regions.columns)
    np.testing.assert_allclose(comp.regions["ppos"].sum() + comp.regions["pneg"].sum(), 2 * A.sum())
    text = ex.describe_patterns({"P2": comp}, {"P2": res.cv.final_n_pcs})
    assert "P2" in text and "planted" in text
    # real data (no ground truth): no recovery numbers, no planted column
    plain = ex.pattern_comparison(res.cv.final_coef, A, res.features)
    assert np.isnan(plain.summary["auc_pattern"]) and "planted" not in plain.edges
    with pytest.raises(ParameterError, match="entries"):
        ex.pattern_comparison(res.cv.final_coef[:-1], A, res.features)


def test_cached_permutation_test_roundtrip(twin, monkeypatch):
    first = ex.cached_permutation_test(twin, "02", n_perm=2, scheme="circular", seed=1)

    def boom(*args, **kwargs):
        raise AssertionError("the cached result should have been used")

    monkeypatch.setattr(ex, "_pipeline_r", boom)
    again = ex.cached_permutation_test(twin, "02", n_perm=2, scheme="circular", seed=1)
    pd.testing.assert_frame_equal(first.p, again.p)
    pd.testing.assert_frame_equal(first.null, again.null)
    with pytest.raises(AssertionError, match="cached"):
        ex.cached_permutation_test(twin, "02", n_perm=2, scheme="session", seed=1)


def test_cached_permutation_test_extends_and_resumes(twin, monkeypatch):
    """More permutations later reuse the cached ones; a lost block is recomputed alone; the result
    always equals the uncached test."""
    calls = []
    real = ex._pipeline_r

    def counting(ctx, ratings):
        calls.append(1)
        return real(ctx, ratings)

    monkeypatch.setattr(ex, "_pipeline_r", counting)
    ex.cached_permutation_test(twin, "02", n_perm=2, scheme="circular", seed=4)
    assert len(calls) == 1 + 2  # observed + 2 permutations
    calls.clear()
    five = ex.cached_permutation_test(twin, "02", n_perm=5, scheme="circular", seed=4)
    assert len(calls) == 3  # permutations 2, 3, 4 only
    reference = ex.permutation_test(twin["02"], n_perm=5, scheme="circular", seed=4)
    pd.testing.assert_frame_equal(five.null, reference.null)
    pd.testing.assert_frame_equal(five.p, reference.p)

    # an interrupted run: the block holding permutation 4 is lost, the rest is kept
    from deipp_core.data.derivatives import derivatives_root

    folders = list((derivatives_root(twin.root) / "sub-02").glob("*permtestcircular*"))
    folders = [f for f in folders if list(f.glob("perms-*-000004.tsv"))]
    assert len(folders) == 1
    lost = next(folders[0].glob("perms-*-000004.tsv"))
    n_lost = int(lost.stem.split("-")[2]) - int(lost.stem.split("-")[1]) + 1
    lost.unlink()
    calls.clear()
    resumed = ex.cached_permutation_test(twin, "02", n_perm=5, scheme="circular", seed=4)
    assert len(calls) == n_lost
    pd.testing.assert_frame_equal(resumed.null, reference.null)
    # fewer permutations than cached: a prefix, nothing computed
    calls.clear()
    three = ex.cached_permutation_test(twin, "02", n_perm=3, scheme="circular", seed=4)
    assert not calls
    pd.testing.assert_frame_equal(three.null, reference.null[reference.null["perm"] < 3])


def test_permutation_i_does_not_depend_on_n_perm(signal_participant, signal_features):
    a = ex.permutation_test(signal_participant, n_perm=2, scheme="circular", features=signal_features, seed=7)
    b = ex.permutation_test(signal_participant, n_perm=3, scheme="circular", features=signal_features, seed=7)
    pd.testing.assert_frame_equal(a.null, b.null[b.null["perm"] < 2])


# ----------------------------------------------------------------------------------------------
# Descriptions and figures
# ----------------------------------------------------------------------------------------------


def test_describe_permutation_uses_at_most_alpha():
    s = pd.DataFrame({"level": ["1min", "run"], "r": [0.3, 0.1], "p_session": [0.05, 0.5],
                      "p_bootstrap": [0.01, 0.2]})
    text = ex.describe_permutation({"P1": s})
    assert "1-min bins (sessions permuted)" in text and "no level (hierarchical bootstrap)" not in text
    assert "1-min bins (hierarchical bootstrap)" in text


def test_figures(session_data, signal_participant, signal_features):
    from deipp_core.plotting.explanation import (
        pattern_brain_panels,
        plot_pattern_vs_weight,
        plot_permutation_nulls,
        plot_weight_stability,
    )

    data, feats, cv = session_data
    A = ex.haufe_pattern(data["X"], weights=cv.final_coef)
    comp = ex.pattern_comparison(cv.final_coef, A, feats)
    fig = plot_pattern_vs_weight({"P1": comp, "P2": comp})
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 6
    panels = pattern_brain_panels({"P1": comp})
    assert [p["value"] for p in panels["P1"]] == ["wpos", "ppos"]
    st = ex.weight_stability(feats, cv, n_boot=8)
    fig = plot_weight_stability({"P1": st}, {"P1": data["planted"]}, {"P1": 16})
    assert len([a for a in fig.axes if a.get_label() != "<colorbar>"]) == 2
    tests = [ex.permutation_test(signal_participant, n_perm=2, scheme=s, features=signal_features)
             for s in ex.PERMUTATION_SCHEMES]
    fig = plot_permutation_nulls({"P1": tests})
    assert len(fig.axes) == 4
