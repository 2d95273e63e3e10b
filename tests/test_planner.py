"""Tests of the study planner (:mod:`deipp_core.analyses.planner`) and its run-subset training draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deipp_core.analyses.planner import (
    SaturatingCurve,
    _first_m,
    _prob,
    fit_saturating,
    format_plan_table,
    plan_table,
    planner_reps,
    run_subset_sizes,
    saturating_model,
    sessions_needed,
)
from deipp_core.analyses.training_size import training_size
from deipp_core.exceptions import ParameterError
from deipp_core.model import nested_loso

# the synthetic participant of the training-size tests (5 sessions × 3 runs, known linear signal)
from test_training_size import _synthetic_features


def _synthetic_reps(K0=0.55, K1=3.0, K2=0.0, minutes=(30.0,), sizes=(1, 2, 3, 5, 8, 12, 18, 25),
                    n_reps=40, tau2=0.04, sigma2=0.002, n_pool=None, seed=0) -> pd.DataFrame:
    """Repetitions drawn from the planner's own model: atanh r ~ N(atanh r(m, T), s²(m))."""
    rng = np.random.default_rng(seed)
    rows = []
    for T in minutes:
        for m in sizes:
            fpc = 1.0 if n_pool is None else (n_pool - m) / (n_pool - 1)
            sd = np.sqrt(tau2 / m * fpc + sigma2)
            z = np.arctanh(saturating_model(m, K0, K1, K2, T)) + rng.normal(0.0, sd, n_reps)
            rows += [(m, T, rep, "1min", float(np.tanh(v))) for rep, v in enumerate(z)]
    out = pd.DataFrame(rows, columns=["n_session", "minutes_per_session", "rep", "level", "r"])
    out.attrs.update(participant="sim", n_pool=n_pool, full_minutes=max(minutes))
    return out


@pytest.fixture(scope="module")
def curve() -> SaturatingCurve:
    return fit_saturating(_synthetic_reps(n_pool=29), levels=["1min"], n_boot=100, seed=1)


# ------------------------------------------------------------------------------------------------
# The model and its fit
# ------------------------------------------------------------------------------------------------


def test_saturating_model_is_ooi_form():
    """r = K0·sqrt(1 / (1 + K1/m + K2/(m·T))), the form of Ooi et al. 2025 with N → m."""
    m, T = np.array([1.0, 4.0, 16.0]), np.array([10.0, 20.0, 30.0])
    want = 0.5 * np.sqrt(1.0 / (1.0 + 2.0 / m + 30.0 / (m * T)))
    np.testing.assert_allclose(saturating_model(m, 0.5, 2.0, 30.0, T), want, rtol=1e-14)
    # without K2 the minutes do not matter
    np.testing.assert_allclose(saturating_model(m, 0.5, 2.0, 0.0, T), saturating_model(m, 0.5, 2.0))


def test_fit_recovers_known_parameters_sessions_form(curve):
    p = curve.params.loc["1min"]
    assert curve.form == "sessions"
    assert p["K0"] == pytest.approx(0.55, abs=0.02)
    assert p["K1"] == pytest.approx(3.0, rel=0.2)
    assert p["K2"] == 0.0 and p["tau2_minutes"] == 0.0
    assert p["tau2_session"] == pytest.approx(0.04, rel=0.35)
    assert p["sigma2"] == pytest.approx(0.002, abs=0.002)
    assert p["r2"] > 0.95 and not p["K0_at_bound"]
    # the bootstrap band covers the true curve over the measured sizes
    m = np.arange(1, 26)
    lo, hi = curve.band(m, level="1min")
    truth = saturating_model(m, 0.55, 3.0)
    assert np.mean((lo <= truth) & (truth <= hi)) > 0.9


def test_fit_recovers_known_parameters_minutes_form():
    reps = _synthetic_reps(K0=0.5, K1=2.0, K2=40.0, minutes=(10.0, 20.0, 30.0), sizes=(1, 2, 4, 7, 14, 28),
                           n_reps=100, tau2=0.02, sigma2=0.001)
    c = fit_saturating(reps, levels=["1min"], n_boot=100, seed=0)
    p = c.params.loc["1min"]
    assert c.form == "sessions_minutes"
    assert p["K0"] == pytest.approx(0.5, abs=0.02)
    assert p["K1"] == pytest.approx(2.0, rel=0.25)
    assert p["K2"] == pytest.approx(40.0, rel=0.25)
    for j, truth in ((1, 2.0), (2, 40.0)):  # bootstrap intervals cover the truth
        lo, hi = np.quantile(c.boot["1min"][:, j], [0.025, 0.975])
        assert lo <= truth <= hi
    assert p["session_share"] == pytest.approx(2.0 / (2.0 + 40.0 / 30.0), abs=0.1)
    # more minutes per session → fewer sessions needed; total minutes needed grow with T when K1 > 0
    by_T = plan_table(c, [0.35], minutes=[10.0, 30.0])
    n10, n30 = by_T["sessions_needed"].to_numpy()
    assert n30 < n10


def test_fit_from_training_size_results_end_to_end():
    """Run-subset results make the minutes-aware form; the full analysis alone the sessions form."""
    feats = _synthetic_features()
    Xt, rt = feats.select("rbin10")
    cv = nested_loso(Xt, rt["rating"].to_numpy(), rt["session"].to_numpy())
    full = training_size(feats, cv, n_reps=3, n_boot=40, seed=2, progress=False)
    one = training_size(feats, cv, n_reps=3, n_boot=40, seed=2, progress=False, runs_per_session=1)
    reps = planner_reps([full, one])
    assert set(reps["minutes_per_session"]) == {10.0, 30.0}
    assert reps.attrs["n_pool"] == 4 and reps.attrs["full_minutes"] == 30.0
    assert fit_saturating(full, levels=["1min"], n_boot=5).form == "sessions"
    c = fit_saturating([full, one], levels=["1min", "run"], n_boot=5)
    assert c.form == "sessions_minutes" and list(c.params.index) == ["1min", "run"]
    assert c.max_observed == 3 and c.n_pool == 4
    with pytest.raises(ParameterError, match="one participant"):
        other = training_size(_synthetic_features(1), cv, n_reps=2, n_boot=10, progress=False)
        other.participant = "02"
        planner_reps([full, other])


# ------------------------------------------------------------------------------------------------
# Answers
# ------------------------------------------------------------------------------------------------


def test_monotonicity(curve):
    m = np.arange(1, 200, dtype=float)
    assert np.all(np.diff(curve.predict(m, level="1min")) > 0)
    assert np.all(np.diff(curve.sd_z(m, level="1min")) < 0)
    p = curve.prob_reach(0.4, m, level="1min")
    above = p >= 0.5
    assert above.any() and np.all(np.diff(p[above]) >= 0)
    needed = plan_table(curve, [0.2, 0.3, 0.4, 0.45])["sessions_needed"].to_numpy()
    assert np.all(np.diff(needed) >= 0)
    by_prob = [float(sessions_needed(curve, 0.4, q)["sessions_needed"].iloc[0]) for q in (0.5, 0.8, 0.95)]
    assert by_prob == sorted(by_prob)


def test_sessions_needed_is_the_first_m_reaching_the_probability(curve):
    row = sessions_needed(curve, 0.4, 0.8, "1min").iloc[0]
    m_star = int(row["sessions_needed"])
    p = curve.prob_reach(0.4, [m_star - 1, m_star], level="1min")
    assert p[0] < 0.8 <= p[1]
    assert row["ci_lower"] <= m_star <= row["ci_upper"]
    assert row["total_minutes"] == m_star * 30.0
    assert row["extrapolated"] == (m_star > 25)


def test_bisection_equals_brute_force_scan(rng):
    theta = np.column_stack([rng.uniform(0.2, 0.9, 200), rng.uniform(0, 50, 200), rng.uniform(0, 300, 200),
                             rng.uniform(0, 0.2, 200), rng.uniform(0, 1, 200), rng.uniform(0, 0.01, 200)])
    got = _first_m(theta, 20.0, 0.3, 0.8, 2000)
    grid = np.arange(1, 2001, dtype=float)
    ok = _prob(theta, grid, 20.0, 0.3) >= 0.8
    want = np.where(ok.any(axis=1), grid[ok.argmax(axis=1)], np.inf)
    np.testing.assert_array_equal(got, want)
    assert np.isfinite(got).any() and np.isinf(got).any()


def test_target_above_the_asymptote_raises_and_is_marked_in_the_table(curve):
    with pytest.raises(ParameterError, match="asymptote"):
        sessions_needed(curve, 0.7)
    table = plan_table(curve, [0.3, 0.7])
    assert table["status"].tolist()[1] == "unreachable" and np.isnan(table["sessions_needed"].iloc[1])
    assert "unreachable" in format_plan_table(table).to_string()


@pytest.mark.parametrize("kwargs, match", [
    ({"target_r": 1.2}, "between 0 and 1"),
    ({"target_r": 0.3, "probability": 0.3}, "probability"),
    ({"target_r": 0.3, "level": "run"}, "levels"),
    ({"target_r": 0.3, "minutes": 10.0}, "full sessions only"),
])
def test_bad_arguments_raise(curve, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        sessions_needed(curve, **kwargs)


def test_too_few_sizes_or_repetitions_raise():
    reps = _synthetic_reps(sizes=(3,))
    with pytest.raises(ParameterError, match="at least 2 different numbers"):
        fit_saturating(reps, levels=["1min"], n_boot=5)
    reps = _synthetic_reps(n_reps=1)
    with pytest.raises(ParameterError, match="2 repetitions"):
        fit_saturating(reps, levels=["1min"], n_boot=5)


def test_determinism():
    reps = _synthetic_reps(n_reps=10)
    a = fit_saturating(reps, levels=["1min"], n_boot=40, seed=3)
    b = fit_saturating(reps, levels=["1min"], n_boot=40, seed=3)
    c = fit_saturating(reps, levels=["1min"], n_boot=40, seed=4)
    pd.testing.assert_frame_equal(a.params, b.params)
    np.testing.assert_array_equal(a.boot["1min"], b.boot["1min"])
    pd.testing.assert_frame_equal(plan_table(a), plan_table(b))
    assert not np.array_equal(a.boot["1min"], c.boot["1min"])


def test_run_subset_sizes():
    assert run_subset_sizes(30) == [1, 2, 4, 7, 14, 28]
    assert run_subset_sizes(5) == [1, 2, 3]
    with pytest.raises(ParameterError):
        run_subset_sizes(2)


# ------------------------------------------------------------------------------------------------
# The run-subset variant of the training-size analysis
# ------------------------------------------------------------------------------------------------


def test_run_subsets_with_every_run_equal_the_training_size_analysis():
    feats = _synthetic_features()
    Xt, rt = feats.select("rbin10")
    cv = nested_loso(Xt, rt["rating"].to_numpy(), rt["session"].to_numpy())
    full = training_size(feats, cv, n_reps=2, n_boot=30, seed=5, progress=False)
    every = training_size(feats, cv, n_reps=2, n_boot=30, seed=5, progress=False, runs_per_session=3)
    np.testing.assert_array_equal(full.predictions, every.predictions)
    pd.testing.assert_frame_equal(full.reps, every.reps)
    one = training_size(feats, cv, n_reps=2, n_boot=30, seed=5, progress=False, runs_per_session=1)
    # the same sessions are drawn; one run of each is used
    np.testing.assert_array_equal(one.train_sessions, full.train_sessions)
    used = one.train_runs[..., 0]
    drawn = one.train_sessions >= 0
    assert np.all(np.isin(used[drawn], [1, 2, 3])) and np.all(used[~drawn] == -1)
    assert one.runs_per_session == 1 and full.runs_per_session is None and full.train_runs is None
    assert not np.array_equal(one.predictions, full.predictions)
    with pytest.raises(ParameterError, match="runs_per_session"):
        training_size(feats, cv, n_reps=1, n_boot=10, progress=False, runs_per_session=4)


# ------------------------------------------------------------------------------------------------
# Figure and command line
# ------------------------------------------------------------------------------------------------


def test_plot_planner_grid(curve):
    from deipp_core.plotting.planner import plot_planner_grid

    minutes = fit_saturating(_synthetic_reps(K2=40.0, minutes=(10.0, 30.0), sizes=(1, 2, 4, 8), n_reps=5),
                             levels=["1min"], n_boot=10)
    fig = plot_planner_grid({"A": curve, "B": minutes}, [0.2, 0.4])
    assert len(fig.axes) == 6
    assert fig.axes[0].get_xlabel() == "training sessions"
    assert not fig.axes[2].axison and fig.axes[5].axison  # the sessions-only row has no minutes panel


def test_cli_plan_end_to_end(quick_twin_root, capsys):
    from deipp_core.cli import main

    rc = main(["-q", "plan", "--participant", "01", "--target-r", "0.2", "0.3", "--n-boot", "20"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "sessions needed" in out and "sub-01" in out and "SIMULATED" in out
    assert out.count("\n") >= 4


def test_cli_plan_bad_argument_one_line(capsys):
    from deipp_core.cli import main

    rc = main(["plan", "--target-r", "1.5"])
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert "--target-r" in err and len(err.splitlines()) == 1


def test_planner_summary_says_what_the_table_says(curve):
    from deipp_core.analyses.planner import planner_summary

    table = plan_table({"P": curve}, [0.3, 0.7])
    text = planner_summary({"P": curve}, table)
    n = int(table["sessions_needed"].iloc[0])
    assert text.startswith("- **P**") and f"r ≥ 0.3: {n} sessions" in text and "r ≥ 0.7: out of reach" in text
    assert f"asymptote (mean r with unlimited sessions) is {curve.params.loc['1min', 'K0']:.2f}" in text
