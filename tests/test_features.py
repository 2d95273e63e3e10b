"""Tests of deipp_core.features: the per-participant table of bin-mean edge co-fluctuations."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from deipp_core.data.dataset import ATLAS_COLUMNS, MOTION_COLUMNS, Participant, Run
from deipp_core.edges import edge_timeseries, n_edges, predict_frames, zscore
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.features import ROW_COLUMNS, ParticipantFeatures, participant_features
from deipp_core.ratings import RatingParams, bin_means

TR = 0.46


def _rating_table(rng, duration=620.0, hz=30.0) -> pd.DataFrame:
    """A smooth rating sampled at ``hz`` (a slow and a faster sinusoid with random phases)."""
    t = np.arange(0.0, duration, 1.0 / hz)
    period = rng.uniform(50.0, 90.0)
    v = 0.5 + 0.3 * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.3))
    v += 0.1 * np.sin(2 * np.pi * t / 23.0 + rng.uniform(0, 6.3))
    return pd.DataFrame({"time": t, "value": np.clip(v, 0.0, 1.0)})


def _confounds(censor: np.ndarray) -> pd.DataFrame:
    conf = pd.DataFrame(np.zeros((censor.size, len(MOTION_COLUMNS))), columns=list(MOTION_COLUMNS))
    conf["framewise_displacement"] = 0.0
    conf["censor"] = censor.astype(int)
    return conf


def make_participant(
    *,
    n_sessions: int = 2,
    n_parcels: int = 7,
    excluded=(2,),
    n_volumes: int = 400,
    censor_rate: float = 0.05,
    rest: bool = True,
    seed: int = 0,
    run_lengths: dict | None = None,
) -> Participant:
    """Synthetic participant: random parcel time series, smooth ratings, random censoring."""
    rng = np.random.default_rng(seed)
    atlas = pd.DataFrame(
        {
            "index": np.arange(1, n_parcels + 1),
            "name": [f"parcel {k}" for k in range(n_parcels)],
            "network": ["NONE"] * n_parcels,
            "x": 0.0,
            "y": 0.0,
            "z": 0.0,
            "included": [k not in set(excluded) for k in range(n_parcels)],
        }
    )[list(ATLAS_COLUMNS)]
    runs = []
    for s in range(1, n_sessions + 1):
        ses = f"{s:02d}"
        tasks = [("rating", r) for r in (3, 1, 2)] + ([("rest", None)] if rest else [])
        for task, r in tasks:  # deliberately unsorted: the table must sort them
            n_vol = (run_lengths or {}).get((ses, r), n_volumes)
            censor = rng.random(n_vol) >= censor_rate
            runs.append(
                Run(
                    session=ses,
                    task=task,
                    run=r,
                    tr=TR,
                    timeseries=rng.standard_normal((n_vol, n_parcels)),
                    confounds=_confounds(censor),
                    rating=_rating_table(rng) if task == "rating" else None,
                    source=f"/synthetic/sub-01/ses-{ses}/{task}-{r}",
                )
            )
    return Participant(label="01", atlas=atlas, runs=tuple(runs))


@pytest.fixture(scope="module")
def participant():
    return make_participant()


@pytest.fixture(scope="module")
def features(participant):
    return participant_features(participant)


def _run(participant, session, run):
    return next(r for r in participant.runs if r.session == session and r.run == run)


def _explicit_z(participant, run_obj, frames):
    return zscore(run_obj.timeseries[frames][:, participant.included])


def test_rows_are_stacked_by_kind_then_session_run_bin(features, participant):
    rows = features.rows
    assert list(rows.columns) == list(ROW_COLUMNS)
    n_runs = 2 * 3
    assert len(rows) == features.X.shape[0] == n_runs * (10 + 10 + 5) + n_runs + 2
    kinds = list(dict.fromkeys(rows["kind"]))
    assert kinds == ["rbin10", "tbin10", "tbin5", "run", "rest"]
    rb = rows[rows["kind"] == "rbin10"]
    expected = [(s, r, b) for s in ("01", "02") for r in (1, 2, 3) for b in range(10)]
    assert list(zip(rb["session"], rb["run"], rb["bin"])) == expected
    t5 = rows[rows["kind"] == "tbin5"]
    assert list(zip(t5["session"], t5["run"], t5["bin"]))[:6] == [
        ("01", 1, 0), ("01", 1, 1), ("01", 1, 2), ("01", 1, 3), ("01", 1, 4), ("01", 2, 0)
    ]
    runs = rows[rows["kind"] == "run"]
    assert list(zip(runs["session"], runs["run"], runs["bin"])) == [
        (s, r, -1) for s in ("01", "02") for r in (1, 2, 3)
    ]
    rest = rows[rows["kind"] == "rest"]
    assert list(zip(rest["session"], rest["run"], rest["bin"])) == [("01", 0, -1), ("02", 0, -1)]
    assert rest["rating"].isna().all()
    assert not rows.loc[rows["kind"] != "rest", "rating"].isna().any()
    assert rows["run"].dtype == np.int64 and rows["bin"].dtype == np.int64
    assert rows["n_frames"].dtype == np.int64


def test_edges_use_only_the_included_parcels(features, participant):
    np.testing.assert_array_equal(features.parcels, [0, 1, 3, 4, 5, 6])
    assert features.n_parcels == 6 and features.n_edges == n_edges(6) == features.X.shape[1]
    assert features.n_sessions == 2 and features.participant == "01"
    # an excluded parcel may even hold NaN: it is never read
    runs = tuple(
        Run(r.session, r.task, r.run, r.tr, np.where(np.arange(7) == 2, np.nan, r.timeseries),
            r.confounds, r.rating, r.source)
        for r in participant.runs
    )
    poisoned = Participant(participant.label, participant.atlas, runs)
    np.testing.assert_array_equal(participant_features(poisoned).X, features.X)


@pytest.mark.parametrize(
    "kind, family, n", [("rbin10", "rbin", 10), ("tbin10", "tbin", 10), ("tbin5", "tbin", 5)]
)
def test_bin_rows_equal_explicit_edge_means_over_the_bin_frames(
    features, participant, kind, family, n
):
    X, rows = features.select(kind)
    for session, run in [("01", 1), ("02", 3)]:
        rf = features.frames[(session, run)]
        labels = (rf.rbin if family == "rbin" else rf.tbin)[n]
        e = edge_timeseries(_explicit_z(participant, _run(participant, session, run), rf.frames))
        sel = ((rows["session"] == session) & (rows["run"] == run)).to_numpy()
        assert rows.loc[sel, "bin"].tolist() == list(range(n))
        for b in range(n):
            np.testing.assert_allclose(X[sel][b], e[labels == b].mean(axis=0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            rows.loc[sel, "rating"], bin_means(rf.rating, labels, n), atol=1e-15
        )
        np.testing.assert_array_equal(
            rows.loc[sel, "n_frames"], np.bincount(labels[labels >= 0], minlength=n)
        )


def test_run_and_rest_rows_are_means_over_all_kept_frames(features, participant):
    X, rows = features.select("run")
    rf = features.frames[("02", 2)]
    e = edge_timeseries(_explicit_z(participant, _run(participant, "02", 2), rf.frames))
    k = rows.index[(rows["session"] == "02") & (rows["run"] == 2)][0]
    np.testing.assert_allclose(X[k], e.mean(axis=0), atol=1e-12)
    assert rows.loc[k, "rating"] == pytest.approx(rf.rating.mean())
    assert rows.loc[k, "n_frames"] == rf.n_frames
    # rest: volumes 66 + 13 = 79 … end, minus censored, z-scored over those frames
    Xr, rows_r = features.select("rest")
    rest = participant.rest_run("01")
    frames = np.arange(79, rest.n_volumes)[rest.censor[79:]]
    np.testing.assert_array_equal(features.rest_frames["01"], frames)
    e_rest = edge_timeseries(_explicit_z(participant, rest, frames))
    np.testing.assert_allclose(Xr[0], e_rest.mean(axis=0), atol=1e-12)
    assert rows_r.loc[0, "n_frames"] == frames.size


def test_frames_are_the_aligned_runs(features, participant):
    assert set(features.frames) == {(s, r) for s in ("01", "02") for r in (1, 2, 3)}
    rf = features.frames[("01", 3)]
    run = _run(participant, "01", 3)
    np.testing.assert_array_equal(rf.frames, np.arange(79, 400)[run.censor[79:]])
    assert set(rf.rbin) == set(rf.tbin) == {2, 5, 10}


def test_tbin_prediction_equals_the_mean_of_frame_predictions(features, participant, rng):
    # linearity (§10.1): averaging ŷ(t) over a time bin = predicting the bin's feature row
    w = rng.standard_normal(features.n_edges)
    b0 = 0.3
    X, rows = features.select("tbin10")
    for (session, run), rf in features.frames.items():
        z = _explicit_z(participant, _run(participant, session, run), rf.frames)
        per_bin = bin_means(predict_frames(z, w, b0), rf.tbin[10], 10)
        sel = ((rows["session"] == session) & (rows["run"] == run)).to_numpy()
        np.testing.assert_allclose(X[sel] @ w + b0, per_bin, rtol=0, atol=1e-10)


def test_parallel_runs_give_the_same_table(participant, features):
    par = participant_features(participant, n_jobs=2)
    np.testing.assert_array_equal(par.X, features.X)
    pd.testing.assert_frame_equal(par.rows, features.rows)


def test_options_change_the_blocks(participant):
    f = participant_features(participant, include_rest=False, kinds=("tbin5", "rbin2"))
    assert list(dict.fromkeys(f.rows["kind"])) == ["tbin5", "rbin2", "run"]
    assert len(f.rows) == 6 * (5 + 2 + 1) and f.rest_frames == {}
    with pytest.raises(ParameterError, match="no feature rows of kind 'rest'"):
        f.select("rest")


def test_kinds_must_match_the_bin_numbers_in_params(participant):
    with pytest.raises(ParameterError, match=r"needs 10 bins, but RatingParams.n_bins = \(2, 5\)"):
        participant_features(participant, RatingParams(n_bins=(2, 5)))
    with pytest.raises(ParameterError, match="rbin<N>"):
        participant_features(participant, kinds=("decile10",))
    with pytest.raises(ParameterError, match="distinct"):
        participant_features(participant, kinds=("tbin5", "tbin5"))


def test_errors_name_the_run(participant):
    bad_runs = []
    for r in participant.runs:
        ts = r.timeseries
        if r.session == "02" and r.run == 1:
            ts = ts.copy()
            ts[200, 4] = np.inf
        bad_runs.append(Run(r.session, r.task, r.run, r.tr, ts, r.confounds, r.rating, r.source))
    bad = Participant(participant.label, participant.atlas, tuple(bad_runs))
    with pytest.raises(
        DataFormatError, match=r"ses-02_task-rating_run-1 .*non-finite.*atlas rows \[4\]"
    ):
        participant_features(bad)
    narrow = Participant(
        participant.label,
        participant.atlas,
        tuple(
            Run(r.session, r.task, r.run, r.tr, r.timeseries[:, :5], r.confounds, r.rating, r.source)
            for r in participant.runs
        ),
    )
    with pytest.raises(DataFormatError, match="atlas has 7 parcels"):
        participant_features(narrow)
    rest_only = tuple(r for r in participant.runs if r.task == "rest")
    no_rating = Participant(participant.label, participant.atlas, rest_only)
    with pytest.raises(DataFormatError, match="no rating run"):
        participant_features(no_rating)


def test_unequal_run_lengths_are_aligned_per_run_and_logged(caplog):
    p = make_participant(n_sessions=1, rest=False, run_lengths={("01", 2): 380})
    with caplog.at_level(logging.WARNING, logger="deipp_core.features"):
        f = participant_features(p)
    assert "differ in length" in caplog.text
    assert f.frames[("01", 2)].frames[-1] == 379 and f.frames[("01", 1)].frames[-1] == 399


@pytest.mark.slow
def test_paper_scale_table_builds_well_under_a_minute():
    # 30 sessions × 3 rating runs of 1304 volumes (+ 30 rest runs), 280 parcels of which 260 included
    n_sessions, n_vol, n_parcels = 30, 1304, 280
    rng = np.random.default_rng(1)
    atlas = pd.DataFrame(
        {
            "index": np.arange(1, n_parcels + 1),
            "name": [f"p{k}" for k in range(n_parcels)],
            "network": "NONE",
            "x": 0.0,
            "y": 0.0,
            "z": 0.0,
            "included": np.arange(n_parcels) >= 20,
        }
    )
    runs = []
    for s in range(1, n_sessions + 1):
        for task, r in [("rating", 1), ("rating", 2), ("rating", 3), ("rest", None)]:
            runs.append(
                Run(f"{s:02d}", task, r, TR, rng.standard_normal((n_vol, n_parcels)),
                    _confounds(rng.random(n_vol) >= 0.03),
                    _rating_table(rng, hz=10.0) if task == "rating" else None, "synthetic")
            )
    p = Participant("01", atlas, tuple(runs))
    with threadpool_limits(1):
        t0 = time.perf_counter()
        f = participant_features(p)
        elapsed = time.perf_counter() - t0
    logging.getLogger(__name__).warning("paper-scale feature table: %.1f s", elapsed)
    assert f.X.shape == (90 * 26 + 30, n_edges(260))
    assert np.isfinite(f.X).all()
    assert elapsed < 60.0, f"feature table took {elapsed:.1f} s"
