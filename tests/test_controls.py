"""Tests of deipp_core.analyses.controls: rest, head motion, sessions 1–12 and run-1 controls."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from deipp_core.analyses.controls import (
    ControlResult,
    controls_summary,
    controls_table,
    fd_rows,
    first_sessions,
    first_sessions_control,
    motion_control,
    rest_control,
    run1_control,
)
from deipp_core.data.dataset import ATLAS_COLUMNS, MOTION_COLUMNS, Participant, Run
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.features import participant_features
from deipp_core.model import nested_loso
from deipp_core.motion import framewise_displacement
from deipp_core.ratings import bin_means
from deipp_core.stats import pearson_r

TR = 0.46
N_VOL = 300


def _participant(n_sessions=3, *, n_parcels=6, rest=True, seed=0, spike=None, rest_sessions=None):
    """Synthetic participant: random BOLD, smooth ratings, no censoring except 1 % at random.

    ``spike=(session, run, volume)`` puts a 1-mm jump in ``trans_x`` at that volume (unfiltered FD
    = 1 mm there and 0 elsewhere).
    """
    rng = np.random.default_rng(seed)
    atlas = pd.DataFrame({"index": np.arange(1, n_parcels + 1), "name": [f"p{k}" for k in range(n_parcels)],
                          "network": "NONE", "x": 0.0, "y": 0.0, "z": 0.0,
                          "included": True})[list(ATLAS_COLUMNS)]
    runs = []
    t = np.arange(0.0, 150.0, 1 / 20)
    for s in range(1, n_sessions + 1):
        ses = f"{s:02d}"
        tasks = [("rating", r) for r in (1, 2, 3)]
        if rest and (rest_sessions is None or ses in rest_sessions):
            tasks.append(("rest", None))
        for task, r in tasks:
            motion = np.zeros((N_VOL, 6))
            if spike is not None and (ses, r) == spike[:2]:
                motion[spike[2]:, 0] = 1.0
            conf = pd.DataFrame(motion, columns=list(MOTION_COLUMNS))
            conf["framewise_displacement"] = 0.0
            conf["censor"] = (rng.random(N_VOL) > 0.01).astype(int)
            rating = None
            if task == "rating":
                v = 0.5 + 0.3 * np.sin(2 * np.pi * t / rng.uniform(180, 260) + rng.uniform(0, 6))
                rating = pd.DataFrame({"time": t, "value": v})
            runs.append(Run(ses, task, r, TR, rng.standard_normal((N_VOL, n_parcels)), conf, rating,
                            source=f"/synthetic/ses-{ses}/{task}-{r}"))
    return Participant("01", atlas, tuple(runs))


@pytest.fixture(scope="module")
def small():
    p = _participant(3, spike=("02", 2, 200))
    return p, participant_features(p)


def _predictions(features, rng):
    """Fake held-out predictions for every evaluation row (kind, session, run, bin, rating, predicted)."""
    rows = features.rows[features.rows["kind"].isin(["tbin10", "tbin5", "run"])]
    return rows.assign(predicted=rng.normal(size=len(rows)))


# ---------------------------------------------------------------------------------------------
# head motion
# ---------------------------------------------------------------------------------------------


def test_fd_rows_bin_the_unfiltered_fd_of_the_kept_frames(small):
    participant, features = small
    fd = fd_rows(participant, features)
    n_runs = 3 * 3
    expected = {"tbin10": 10 * n_runs, "tbin5": 5 * n_runs, "run": n_runs}
    assert fd["kind"].value_counts().to_dict() == expected
    rf = features.frames[("02", 2)]
    # one 1-mm jump at volume 200: unfiltered FD is 1 there and 0 everywhere else
    kept = np.isin(200, rf.frames)
    assert kept, "the test needs volume 200 kept"
    pos = int(np.flatnonzero(rf.frames == 200)[0])
    expect10 = np.zeros(10)
    b = rf.tbin[10][pos]
    expect10[b] = 1.0 / np.count_nonzero(rf.tbin[10] == b)
    got10 = fd[(fd.kind == "tbin10") & (fd.session == "02") & (fd.run == 2)]["fd"].to_numpy()
    np.testing.assert_allclose(got10, expect10)
    run_mean = fd[(fd.kind == "run") & (fd.session == "02") & (fd.run == 2)]["fd"].item()
    assert run_mean == pytest.approx(1.0 / rf.n_frames)
    # every other run has no motion at all
    others = fd[~((fd.session == "02") & (fd.run == 2))]
    assert np.all(others["fd"] == 0)
    # the low-pass-filtered FD (censoring FD) would spread the jump over neighbouring frames
    run = next(r for r in participant.rating_runs("02") if r.run == 2)
    filtered = framewise_displacement(run.confounds, TR)[rf.frames]
    assert not np.allclose(bin_means(filtered, rf.tbin[10], 10), expect10)


def test_motion_control_correlates_fd_with_the_predictions(small):
    participant, features = small
    # the control recomputes FD; plant a prediction that is an exact linear function of it
    real = fd_rows(participant, features)
    preds = real.assign(predicted=3 * real["fd"] + 0.2, rating=0.5).drop(columns="fd")
    res = motion_control(participant, features, preds, n_boot=50, seed=0)
    assert isinstance(res, ControlResult) and res.x == "fd"
    assert list(res.metrics["level"]) == ["1min", "2min", "run", "session"]
    # a perfectly motion-driven prediction gives r = 1 wherever FD varies
    r = res.metrics.set_index("level")["r"]
    assert r["1min"] == pytest.approx(1.0) and r["run"] == pytest.approx(1.0)
    np.testing.assert_allclose(res.levels["predicted"], 3 * res.levels["fd"] + 0.2)


def test_motion_control_needs_a_prediction_for_every_unit(small):
    participant, features = small
    preds = _predictions(features, np.random.default_rng(0))
    with pytest.raises(DataFormatError, match="no held-out prediction"):
        motion_control(participant, features, preds.iloc[1:], n_boot=10)


# ---------------------------------------------------------------------------------------------
# rest
# ---------------------------------------------------------------------------------------------


def test_rest_control_applies_the_final_model_to_rest_rows(small):
    _, features = small
    rng = np.random.default_rng(0)
    cv = SimpleNamespace(final_coef=rng.normal(size=features.n_edges), final_intercept=0.3)
    res = rest_control(features, cv, n_boot=100, seed=0)
    X_rest, rows_rest = features.select("rest")
    np.testing.assert_allclose(res.levels["predicted"], X_rest @ cv.final_coef + 0.3)
    run1 = features.rows[(features.rows.kind == "run") & (features.rows.run == 1)]
    np.testing.assert_allclose(res.levels["actual"], run1["rating"].to_numpy())
    assert list(res.levels["session"]) == ["01", "02", "03"]
    assert res.metrics["r"].item() == pytest.approx(pearson_r(res.levels["actual"], res.levels["predicted"]))
    assert list(res.metrics["level"]) == ["session"] and res.n_sessions == 3


def test_rest_control_skips_sessions_without_rest_and_needs_rest_rows():
    p = _participant(4, rest_sessions={"01", "03", "04"}, seed=2)
    features = participant_features(p)
    cv = SimpleNamespace(final_coef=np.ones(features.n_edges), final_intercept=0.0)
    res = rest_control(features, cv, n_boot=20)
    assert list(res.levels["session"]) == ["01", "03", "04"]
    no_rest = participant_features(p, include_rest=False)
    with pytest.raises(DataFormatError, match="no rest rows"):
        rest_control(no_rest, cv, n_boot=20)
    with pytest.raises(ParameterError, match="edge weights"):
        rest_control(features, SimpleNamespace(final_coef=np.ones(3), final_intercept=0.0), n_boot=20)


# ---------------------------------------------------------------------------------------------
# sessions 1–12
# ---------------------------------------------------------------------------------------------


def test_first_sessions_are_in_numeric_order():
    assert first_sessions(["10", "2", "1", "11", "3"], 3) == ["1", "2", "3"]
    assert first_sessions([f"{s:02d}" for s in range(14, 0, -1)], 12)[-1] == "12"
    with pytest.raises(ParameterError):
        first_sessions(["1", "2", "3"], 2)


def test_first_sessions_control_restricts_training_and_evaluation_rows():
    p = _participant(7, rest=False, seed=3, n_parcels=5)
    features = participant_features(p, include_rest=False)
    with threadpool_limits(1):
        res = first_sessions_control(features, n_sessions=5, n_boot=30)
    keep = [f"{s:02d}" for s in range(1, 6)]
    assert list(res.cv.groups) == keep
    assert set(res.levels["session"]) == set(keep)
    assert res.metrics.set_index("level").loc["session", "n_units"] == 5
    assert res.metrics.set_index("level").loc["1min", "n_units"] == 5 * 3 * 10
    # the same as nested LOSO called on those rows directly
    m = features.rows["session"].isin(keep).to_numpy()
    tr = m & (features.rows["kind"] == "rbin10").to_numpy()
    with threadpool_limits(1):
        direct = nested_loso(features.X[tr], features.rows.loc[tr, "rating"].to_numpy(),
                             features.rows.loc[tr, "session"].to_numpy())
    np.testing.assert_allclose(res.cv.y_pred_train, direct.y_pred_train)
    np.testing.assert_allclose(res.cv.final_coef, direct.final_coef)


# ---------------------------------------------------------------------------------------------
# run 1 only
# ---------------------------------------------------------------------------------------------


def test_run1_control_level_shapes(small):
    _, features = small
    preds = _predictions(features, np.random.default_rng(4))
    res = run1_control(preds, participant="01", n_boot=40)
    counts = res.levels["level"].value_counts().to_dict()
    assert counts == {"1min": 10 * 3, "2min": 5 * 3, "run": 3}
    assert set(res.levels["run"]) == {1}
    assert list(res.metrics["level"]) == ["1min", "2min", "run"]
    assert res.n_sessions == 3
    # the run-level values are the run-1 rows of the predictions, unchanged
    r1 = preds[(preds.kind == "run") & (preds.run == 1)]
    np.testing.assert_allclose(res.levels.loc[res.levels.level == "run", "predicted"], r1["predicted"])
    with pytest.raises(DataFormatError, match="rating run 4"):
        run1_control(preds, run=4, n_boot=10)


def test_tables_and_summary_cover_every_participant(small):
    _, features = small
    preds = _predictions(features, np.random.default_rng(5))
    res = {"Participant 1": run1_control(preds, n_boot=20), "Participant 2": run1_control(preds, n_boot=20)}
    table = controls_table(res)
    assert table.index.get_level_values(0).unique().tolist() == ["Participant 1", "Participant 2"]
    assert len(table) == 6
    text = controls_summary(res)
    assert text.count("Participant") == 2 and "AUC" in text


def test_undefined_bootstrap_bounds_are_written_as_undefined(small):
    _, features = small
    res = run1_control(_predictions(features, np.random.default_rng(6)), n_boot=20)
    res.metrics.loc[0, "auc_ci_high"] = np.nan
    table = controls_table({"P": res})
    assert "undefined" in table.iloc[0]["AUC [95% CI]"] and "nan" not in table.to_string()


def test_control_figures_have_a_row_per_participant_and_a_panel_per_level(small):
    from deipp_core.plotting.controls import plot_controls_grid

    _, features = small
    res = run1_control(_predictions(features, np.random.default_rng(7)), n_boot=20)
    fig = plot_controls_grid({"P1": res, "P2": res})
    titled = [ax for ax in fig.axes if ax.get_title()]
    # 3 levels + ROC per row, two rows
    assert len(titled) == 8
    assert sum("ROC" in ax.get_title() for ax in titled) == 2
    assert any(ax.get_title().startswith("1 min\nr = ") for ax in titled)
