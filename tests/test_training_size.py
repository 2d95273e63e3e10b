"""Tests of the training-size analysis (``deipp_methods.md`` §10.7, paper Fig. 3)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from deipp_core.analyses.training_size import (
    EVAL_KINDS,
    TrainingSizeResult,
    _boot_seed,
    _min_sessions,
    _summarise,
    training_size,
)
from deipp_core.evaluation import LEVEL_GROUPS, LEVELS, hierarchical_bootstrap, level_table
from deipp_core.exceptions import ParameterError
from deipp_core.features import ParticipantFeatures
from deipp_core.model import LassoPCR, nested_loso
from deipp_core.ratings import RatingParams
from deipp_core.stats import boot2cip, pearson_r

N_SES = 5
N_EDGES = 150


def _synthetic_features(seed: int = 0) -> ParticipantFeatures:
    """5 sessions × 3 runs: rbin10, tbin10, tbin5 and run rows whose rating is linear in 20 edges."""
    rng = np.random.default_rng(seed)
    w = np.zeros(N_EDGES)
    w[:20] = rng.normal(size=20)
    blocks, rows = [], []
    for kind, n_bin in (("rbin10", 10), ("tbin10", 10), ("tbin5", 5), ("run", 1)):
        for s in range(1, N_SES + 1):
            for r in (1, 2, 3):
                X = rng.normal(size=(n_bin, N_EDGES)) + 0.3 * s  # a session offset
                blocks.append(X)
                rating = 0.5 + 0.05 * (X @ w) + 0.1 * rng.normal(size=n_bin)
                for b in range(n_bin):
                    rows.append((kind, f"{s:02d}", r, b if kind != "run" else -1, rating[b], 40))
    X = np.vstack(blocks)
    rows = pd.DataFrame(rows, columns=["kind", "session", "run", "bin", "rating", "n_frames"])
    return ParticipantFeatures("01", X, rows, np.arange(18), {}, RatingParams())


@pytest.fixture(scope="module")
def setup():
    feats = _synthetic_features()
    Xt, rt = feats.select("rbin10")
    cv = nested_loso(Xt, rt["rating"].to_numpy(), rt["session"].to_numpy())
    res = training_size(feats, cv, n_reps=3, n_boot=60, seed=3, progress=False)
    return feats, cv, res


def test_one_fit_equals_explicit_lassopcr(setup):
    """A (size, rep, held-out session) prediction equals LassoPCR(alpha=λ_k) fitted explicitly."""
    feats, cv, res = setup
    Xt, rt = feats.select("rbin10")
    eval_mask = feats.rows["kind"].isin(EVAL_KINDS).to_numpy()
    X_eval, rows_eval = feats.X[eval_mask], feats.rows[eval_mask].reset_index(drop=True)
    checked = 0
    for i_size, size in enumerate(res.sizes):
        for rep in range(res.n_reps):
            # every held-out session at the largest size, where draws share fits
            for k in range(N_SES) if size == res.sizes.max() else (0, 3):
                codes = res.train_sessions[i_size, rep, k, :size]
                train = rt["session"].isin(res.sessions[codes]).to_numpy()
                held = (rows_eval["session"] == res.sessions[k]).to_numpy()
                lam = cv.lambdas[cv.icv_best[k]]
                model = LassoPCR(alpha=lam, solver="explicit").fit(Xt[train], rt["rating"][train])
                want = model.predict(X_eval[held])
                np.testing.assert_allclose(res.predictions[i_size, rep, held], want, rtol=0, atol=1e-8)
                checked += 1
    assert checked == (len(res.sizes) - 1) * res.n_reps * 2 + res.n_reps * N_SES
    # at m = S − 2 = 3, 3 reps × 5 held-out sessions = 15 draws map onto at most C(5, 2) = 10 sets
    assert res.timings["n_fits"] < res.timings["n_draws"]


def test_draws_exclude_held_out_session_and_have_size_m(setup):
    _, _, res = setup
    for i_size, size in enumerate(res.sizes):
        d = res.train_sessions[i_size]
        assert np.all(d[..., size:] == -1)
        chosen = d[..., :size]
        assert np.all(chosen >= 0)
        for rep in range(res.n_reps):
            for k in range(N_SES):
                c = chosen[rep, k]
                assert k not in c
                assert np.unique(c).size == size
    # different repetitions draw different sessions somewhere
    assert not np.array_equal(res.train_sessions[0, 0], res.train_sessions[0, 1])


def test_deterministic_for_a_seed_and_seed_matters(setup):
    feats, cv, res = setup
    again = training_size(feats, cv, n_reps=3, n_boot=60, seed=3, progress=False)
    np.testing.assert_array_equal(again.predictions, res.predictions)
    pd.testing.assert_frame_equal(again.reps, res.reps)
    other = training_size(feats, cv, n_reps=3, n_boot=60, seed=4, progress=False)
    assert not np.array_equal(other.train_sessions, res.train_sessions)


def test_repetition_does_not_depend_on_n_reps_or_sizes(setup):
    feats, cv, res = setup
    sub = training_size(feats, cv, sizes=[2], n_reps=2, n_boot=60, seed=3, progress=False)
    np.testing.assert_array_equal(sub.predictions[0], res.predictions[1, :2])


def test_n_jobs_1_and_2_identical(setup):
    feats, cv, res = setup
    par = training_size(feats, cv, n_reps=3, n_boot=60, seed=3, n_jobs=2, progress=False)
    np.testing.assert_array_equal(par.predictions, res.predictions)
    np.testing.assert_array_equal(par.train_sessions, res.train_sessions)
    pd.testing.assert_frame_equal(par.reps, res.reps)


def test_rep_r_and_p_match_level_table_and_bootstrap(setup):
    """r is the pooled r of level_table(predictions); p the boot2cip p of the level's resamples."""
    _, _, res = setup
    i_size, rep = 2, 1
    size = int(res.sizes[i_size])
    table = level_table(res.prediction_frame(size, rep))
    for lv in LEVELS:
        units = table[table["level"] == lv]
        x, y = units["actual"].to_numpy(), units["predicted"].to_numpy()
        W = hierarchical_bootstrap(
            [units[c].to_numpy() for c in LEVEL_GROUPS[lv]], res.n_boot,
            seed=_boot_seed(res.seed, lv), n_units=len(units),
        ).counts()
        row = res.reps[(res.reps["n_session"] == size) & (res.reps["rep"] == rep) & (res.reps["level"] == lv)]
        assert len(row) == 1
        assert row["r"].iloc[0] == pytest.approx(pearson_r(x, y), abs=1e-12)
        assert row["p"].iloc[0] == pytest.approx(boot2cip(pearson_r(x, y, W), 0.0).p, abs=1e-12)
        assert bool(row["significant"].iloc[0]) == bool(row["p"].iloc[0] < 0.05 and row["r"].iloc[0] > 0)


def test_summary_and_source_data(setup):
    _, _, res = setup
    src = res.source_data()
    expected = ["n_session"] + [f"{u}_{s}" for u in LEVELS for s in ("mean", "95ci_lower", "95ci_upper")]
    assert list(src.columns) == expected
    assert src["n_session"].tolist() == [1, 2, 3]
    r = res.reps[(res.reps["n_session"] == 2) & (res.reps["level"] == "run")]["r"].to_numpy()
    half = 1.96 * r.std(ddof=1) / np.sqrt(res.n_reps)
    row = src[src["n_session"] == 2].iloc[0]
    assert row["run_mean"] == pytest.approx(r.mean())
    assert row["run_95ci_lower"] == pytest.approx(r.mean() - half)
    assert row["run_95ci_upper"] == pytest.approx(r.mean() + half)
    frac = res.summary[(res.summary["n_session"] == 2) & (res.summary["level"] == "run")]["frac_significant"]
    sig = res.reps[(res.reps["n_session"] == 2) & (res.reps["level"] == "run")]["significant"]
    assert frac.iloc[0] == pytest.approx(sig.mean())


def test_min_sessions_rule():
    sizes = np.arange(1, 7)
    n_sig = [0, 40, 60, 55, 95, 100]
    reps = pd.DataFrame({
        "n_session": np.repeat(sizes, 100), "rep": np.tile(np.arange(100), 6), "level": "1min",
        "r": 0.1, "p": 0.0,
        "significant": np.concatenate([np.arange(100) < k for k in n_sig]),
    })
    for lv in LEVELS[1:]:
        reps = pd.concat([reps, reps[reps["level"] == "1min"].assign(level=lv)])
    out = _min_sessions(_summarise(reps, 100), 100, (50, 97.5, 99)).set_index(["level", "threshold"])
    row = out.loc[("1min", 50.0)]
    assert row["min_sessions"] == 3  # two sizes below 50 %
    assert row["first_reached"] == 3 and not row["monotone"]
    assert out.loc[("1min", 97.5), "min_sessions"] == 6  # 95 % < 97.5 %
    assert out.loc[("1min", 99.0), "first_reached"] == 6
    never = _min_sessions(_summarise(reps.assign(significant=False), 100), 100, (50,))
    assert never["min_sessions"].iloc[0] == 7 and not never["reached"].iloc[0]


def test_reversed_regression_shares_t_with_usual_direction(setup):
    _, _, res = setup
    from scipy import stats

    s = res.summary[res.summary["level"] == "1min"]
    fwd = stats.linregress(s["n_session"], s["mean_r"])
    tr = res.trend.set_index("level").loc["1min"]
    assert tr["t"] == pytest.approx(fwd.slope / fwd.stderr)
    assert tr["b_r_per_session"] == pytest.approx(fwd.slope)
    assert tr["b_reversed"] == pytest.approx(stats.linregress(s["mean_r"], s["n_session"]).slope)


def test_reference_size_absent_gives_nan(setup):
    _, _, res = setup
    assert res.reference_size == 4 and res.sizes.max() == 3
    assert res.at_reference["mean_r"].isna().all()


def test_no_component_selected_predicts_training_mean(setup):
    feats, cv, _ = setup
    huge = dataclasses.replace(cv, lambdas=np.full_like(cv.lambdas, 1e6))
    res = training_size(feats, huge, sizes=[2], n_reps=1, n_boot=20, seed=0, progress=False)
    assert np.all(res.n_selected == 0)
    Xt, rt = feats.select("rbin10")
    for k in range(N_SES):
        chosen = res.sessions[res.train_sessions[0, 0, k, :2]]
        mean = rt.loc[rt["session"].isin(chosen), "rating"].mean()
        held = (res.eval_rows["session"] == res.sessions[k]).to_numpy()
        np.testing.assert_allclose(res.predictions[0, 0, held], mean, rtol=0, atol=1e-12)


def test_input_errors(setup):
    feats, cv, _ = setup
    with pytest.raises(ParameterError, match="sizes"):
        training_size(feats, cv, sizes=[0], n_reps=1, n_boot=10, progress=False)
    with pytest.raises(ParameterError, match="sizes"):
        training_size(feats, cv, sizes=[N_SES], n_reps=1, n_boot=10, progress=False)
    with pytest.raises(ParameterError, match="n_reps"):
        training_size(feats, cv, n_reps=0, n_boot=10, progress=False)
    other = dataclasses.replace(cv, groups=np.array(["01", "02", "03", "04", "09"]))
    with pytest.raises(ParameterError, match="sessions"):
        training_size(feats, other, n_reps=1, n_boot=10, progress=False)


def test_result_type(setup):
    _, _, res = setup
    assert isinstance(res, TrainingSizeResult)
    assert res.predictions.shape == (3, 3, len(res.eval_rows))
    assert set(res.reps["level"]) == set(LEVELS)
    assert len(res.reps) == 3 * 3 * 4


def test_plots_draw_levels_and_thresholds(setup):
    from deipp_core.plotting._style import LEVEL_COLORS
    from deipp_core.plotting.training_size import (
        plot_significance_fraction,
        plot_training_size_curve,
        plot_training_size_grid,
    )
    from matplotlib.colors import to_rgb

    _, _, res = setup
    fig = plot_training_size_curve(res.summary)
    ax = fig.axes[0]
    assert len(ax.containers) == 4  # one errorbar per level
    colors = {to_rgb(c.lines[0].get_color()) for c in ax.containers}
    assert colors == {to_rgb(c) for c in LEVEL_COLORS.values()}
    one = ax.containers[0].lines[0]
    s = res.summary[res.summary["level"] == "1min"].sort_values("n_session")
    np.testing.assert_allclose(one.get_ydata(), s["mean_r"])

    fig = plot_significance_fraction(res.summary, thresholds=(50, 90, 95, 97.5, 99))
    ax = fig.axes[0]
    hlines = sorted(l.get_ydata()[0] for l in ax.lines if l.get_linestyle() == "--")
    assert hlines == [50, 90, 95, 97.5, 99]
    data = [l for l in ax.lines if l.get_linestyle() != "--"]
    assert len(data) == 4
    np.testing.assert_allclose(data[0].get_ydata(), 100 * s["frac_significant"])

    grid = plot_training_size_grid({"A": res, "B": res})
    assert len(grid.axes) == 4
