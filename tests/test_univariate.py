"""Tests of deipp_core.analyses.univariate: SPM HRF, session GLM, second level with FDR."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from deipp_core.analyses.univariate import (
    fdr_thresholds,
    first_level,
    network_counts,
    rating_regressor,
    run_univariate,
    second_level,
    session_design,
    spm_hrf,
    univariate_summary,
)
from deipp_core.data.dataset import ATLAS_COLUMNS, MOTION_COLUMNS, Participant, Run
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.ratings import RatingParams
from deipp_core.stats import benjamini_hochberg

TR = 0.46
N_VOL = 260


def test_hrf_sums_to_one_and_peaks_near_five_seconds():
    h = spm_hrf(TR)
    assert h.sum() == pytest.approx(1.0, abs=1e-12)
    assert h.size == int(32 / TR) + 1
    assert 4.5 <= h.argmax() * TR <= 5.5
    assert h[0] == 0.0 and h.min() < 0  # starts at 0, has an undershoot
    assert 12 <= h.argmin() * TR <= 18
    t = np.arange(h.size) * TR
    raw = sps.gamma.pdf(t, 6) - sps.gamma.pdf(t, 16) / 6
    np.testing.assert_allclose(h, raw / raw.sum())
    with pytest.raises(ParameterError):
        spm_hrf(0.0)


def _run(rng, session, run, *, betas, censor_rate=0.05, motion_gain=0.3, spike_value=1e3):
    """A run whose parcel p is betas[p]·(HRF-convolved rating) + intercept + trend + motion.

    Censored frames (after the trim) hold a huge value: spike regressors must absorb them.
    """
    t = np.arange(0.0, 130.0, 1 / 20)
    v = 0.5 + 0.3 * np.sin(2 * np.pi * t / rng.uniform(20, 60) + rng.uniform(0, 6))
    rating = pd.DataFrame({"time": t, "value": v})
    motion = np.cumsum(rng.normal(scale=0.01, size=(N_VOL, 6)), axis=0)
    conf = pd.DataFrame(motion, columns=list(MOTION_COLUMNS))
    conf["framewise_displacement"] = 0.0
    censor = rng.random(N_VOL) > censor_rate
    conf["censor"] = censor.astype(int)
    probe = Run(session, "rating", run, TR, np.zeros((N_VOL, len(betas))), conf, rating)
    reg = rating_regressor(probe)
    trend = np.linspace(0, 1, N_VOL)
    n = len(betas)
    ts = (reg[:, None] * betas[None, :] + rng.normal(size=n) + trend[:, None] * rng.normal(size=n)
          + motion_gain * motion @ rng.normal(size=(6, len(betas))))
    ts[~censor] = spike_value
    return Run(session, "rating", run, TR, ts, conf, rating, source=f"/synthetic/ses-{session}/run-{run}")


def _participant(session_betas, seed=0, **kw):
    rng = np.random.default_rng(seed)
    n_parcels = session_betas.shape[1]
    atlas = pd.DataFrame({"index": np.arange(1, n_parcels + 1), "name": [f"p{k}" for k in range(n_parcels)],
                          "network": ["A", "A", "B", "B", "C"][:n_parcels] + ["C"] * max(0, n_parcels - 5),
                          "x": 0.0, "y": 0.0, "z": 0.0, "included": True})[list(ATLAS_COLUMNS)]
    runs = tuple(_run(rng, f"{s + 1:02d}", r, betas=session_betas[s], **kw)
                 for s in range(session_betas.shape[0]) for r in (1, 2, 3))
    return Participant("01", atlas, runs)


def test_glm_recovers_planted_betas_despite_motion_trends_and_censored_spikes():
    betas = np.array([[1.0, -2.0, 0.0, 0.5], [0.7, -1.5, 0.2, 0.5]])
    p = _participant(betas)
    got = first_level(p)
    assert list(got.index) == ["01", "02"]
    np.testing.assert_allclose(got.to_numpy(), betas, atol=1e-8)


def test_design_has_one_rating_column_and_block_diagonal_nuisance():
    p = _participant(np.ones((1, 3)), seed=1)
    runs = p.rating_runs("01")
    X, Y = session_design(runs, RatingParams())
    n_trim = RatingParams().n_trim(TR)
    T = 3 * (N_VOL - n_trim)
    assert X.shape[0] == Y.shape[0] == T and Y.shape[1] == 3
    n_spikes = sum(int((~r.censor[n_trim:]).sum()) for r in runs)
    assert X.shape[1] == 1 + 3 * (2 + 6) + n_spikes
    # intercept of run 2 is 1 exactly on run 2's frames
    block = N_VOL - n_trim
    # rating, run-1 block (intercept, trend, 6 motion, its spikes), then run-2 intercept
    col = 1 + 8 + int((~runs[0].censor[n_trim:]).sum())
    np.testing.assert_array_equal(X[:, col], np.r_[np.zeros(block), np.ones(block), np.zeros(block)])
    # the rating column is the HRF-convolved rating from the trim on, with no 13-TR lag
    np.testing.assert_allclose(X[:block, 0], rating_regressor(runs[0])[n_trim:])


def test_rating_regressor_needs_the_rating_at_every_volume():
    p = _participant(np.ones((1, 2)), seed=2)
    run = p.rating_runs("01")[0]
    short = Run(run.session, run.task, run.run, TR, run.timeseries, run.confounds,
                run.rating[run.rating["time"] < 60].reset_index(drop=True), source="/x/run-1")
    with pytest.raises(DataFormatError, match="missing at"):
        rating_regressor(short)


def test_second_level_t_test_and_fdr():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(20, 6))
    B[:, 0] += 2.0  # strongly positive
    B[:, 1] -= 2.0  # strongly negative
    atlas = pd.DataFrame({"index": range(1, 7), "name": list("abcdef"), "network": list("AABBCC"),
                          "x": 0.0, "y": 0.0, "z": 0.0, "included": True})
    table = second_level(pd.DataFrame(B), atlas, q=0.05)
    t, p = sps.ttest_1samp(B, 0.0, axis=0)
    np.testing.assert_allclose(table["t"], t)
    np.testing.assert_allclose(table["p"], p)
    fdr = benjamini_hochberg(p, 0.05)
    np.testing.assert_array_equal(table["significant"], fdr.h)
    assert table["significant"].iloc[0] and table["significant"].iloc[1]
    neg, pos = fdr_thresholds(table)
    assert neg == pytest.approx(t[fdr.h & (t < 0)].max()) and pos == pytest.approx(t[fdr.h & (t > 0)].min())
    counts = network_counts(table)
    assert counts.loc["A", ["positive", "negative"]].tolist() == [1, 1]
    assert counts["parcels"].sum() == 6
    assert (counts["positive"] + counts["n.s."] + counts["negative"] == counts["parcels"]).all()


def test_run_univariate_finds_a_consistent_effect_only_where_planted():
    rng = np.random.default_rng(3)
    betas = np.column_stack([1.0 + 0.1 * rng.normal(size=6), 0.1 * rng.normal(size=6),
                             0.1 * rng.normal(size=6)])
    res = run_univariate(_participant(betas, seed=3))
    assert res.table["significant"].tolist()[0]
    assert res.table["mean_beta"].iloc[0] == pytest.approx(betas[:, 0].mean(), abs=1e-8)
    text = univariate_summary({"Participant 1": res})
    assert f"{res.n_significant} of 3 parcels survive FDR" in text
    assert "largest |t|" in text and "in p0 (A)" in text


def test_univariate_figures_say_when_nothing_survives_fdr():
    from deipp_core.plotting.controls import plot_univariate_brain, plot_univariate_networks

    rng = np.random.default_rng(5)
    atlas = pd.DataFrame({"index": range(1, 5), "name": list("abcd"), "network": list("AABB"),
                          "x": [-40.0, 40, 0, 10], "y": [0.0, 10, -50, 20], "z": [10.0, 20, 30, 0],
                          "included": True})
    res = {"P": SimpleNamespace(table=second_level(pd.DataFrame(rng.normal(size=(8, 4))), atlas),
                                thresholds=(np.nan, np.nan))}
    assert not res["P"].table["significant"].any()
    fig = plot_univariate_brain(res)
    assert any("no region survives FDR" in t.get_text() for ax in fig.axes for t in ax.texts)
    fig = plot_univariate_networks(res)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["A", "B"]
