"""Tests of deipp_core.analyses.ratings_overview: levels, variance decomposition, traces, timeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deipp_core.analyses.ratings_overview import (
    LEVELS,
    censoring_table,
    cofluctuation_example,
    overview_sentence,
    overview_table,
    rating_overview,
    rating_traces,
    rating_units,
    session_timeline,
    sessions_sentence,
    summarize_levels,
    variance_components,
)
from deipp_core.data.dataset import MOTION_COLUMNS, Participant, Run
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.ratings import RatingParams, align_run

TR = 0.46
N_VOL = 1304


# --------------------------------------------------------------------------------------------------
# Synthetic participants
# --------------------------------------------------------------------------------------------------


def _rating_table(rng, level: float) -> pd.DataFrame:
    """A ~60 Hz continuous rating over 600 s around ``level`` (slow random walk)."""
    t = np.arange(0, 600, 1 / 60) + rng.uniform(0, 1 / 120)
    walk = np.cumsum(rng.normal(0, 0.0002, t.size))
    return pd.DataFrame({"time": t, "value": np.clip(level + walk, 0, 1)})


def _run(rng, session: str, run: int | None, level: float, censored=()) -> Run:
    censor = np.ones(N_VOL, dtype=int)
    censor[list(censored)] = 0
    fd = np.full(N_VOL, 0.05)
    fd[list(censored)] = 0.3
    confounds = pd.DataFrame(np.zeros((N_VOL, 6)), columns=list(MOTION_COLUMNS))
    confounds["framewise_displacement"] = fd
    confounds["censor"] = censor
    return Run(
        session=session, task="rating" if run is not None else "rest", run=run, tr=TR,
        timeseries=rng.standard_normal((N_VOL, 3)), confounds=confounds,
        rating=_rating_table(rng, level) if run is not None else None,
        source=f"synthetic ses-{session} run-{run}",
    )


def _participant(rng, sessions=("01", "02", "03"), censored=None, rest=True) -> Participant:
    runs = []
    for i, s in enumerate(sessions):
        for r in (1, 2, 3):
            runs.append(_run(rng, s, r, 0.2 + 0.1 * i + 0.05 * r, (censored or {}).get((s, r), ())))
        if rest:
            runs.append(_run(rng, s, None, 0.0))
    atlas = pd.DataFrame({"index": [1, 2, 3], "name": list("abc"), "network": ["n"] * 3,
                          "x": 0.0, "y": 0.0, "z": 0.0, "included": True})
    return Participant(label="01", atlas=atlas, runs=tuple(runs))


@pytest.fixture(scope="module")
def participant():
    return _participant(np.random.default_rng(0), censored={("02", 2): range(200, 260)})


# --------------------------------------------------------------------------------------------------
# Variance decomposition
# --------------------------------------------------------------------------------------------------


def _nested_sample(rng, n_ses, n_run, n_unit, sd_s, sd_r, sd_e):
    ses = np.repeat(np.arange(n_ses), n_run * n_unit)
    run = np.tile(np.repeat(np.arange(n_run), n_unit), n_ses)
    a = rng.normal(0, sd_s, n_ses)[ses]
    b = rng.normal(0, sd_r, (n_ses, n_run))[ses, run]
    e = rng.normal(0, sd_e, ses.size)
    return 0.4 + a + b + e, ses, run


def test_variance_components_recover_known_components():
    rng = np.random.default_rng(1)
    y, ses, run = _nested_sample(rng, 400, 3, 10, 0.12, 0.08, 0.15)
    vc = variance_components(y, ses, run).set_index("component")
    np.testing.assert_allclose(vc["estimate"], [0.12**2, 0.08**2, 0.15**2], rtol=0.15)
    np.testing.assert_allclose(vc["share"].sum(), 1.0)
    assert vc.attrs["n_sessions"] == 400 and vc.attrs["n_runs"] == 1200 and vc.attrs["n_units"] == 12000
    # balanced design: k1 = k2 = units per run, k3 = units per session
    assert vc.attrs["k1"] == pytest.approx(10) and vc.attrs["k2"] == pytest.approx(10)
    assert vc.attrs["k3"] == pytest.approx(30)


def test_variance_components_unbalanced_design_recovers_components():
    rng = np.random.default_rng(2)
    y, ses, run = _nested_sample(rng, 500, 3, 10, 0.1, 0.1, 0.1)
    # drop whole runs and single units at random: unequal runs per session and units per run
    keep = rng.random(y.size) > 0.3
    drop_run = rng.random((500, 3)) < 0.2
    keep &= ~drop_run[ses, run]
    vc = variance_components(y[keep], ses[keep], run[keep])
    np.testing.assert_allclose(vc["estimate"], [0.01, 0.01, 0.01], rtol=0.2)
    assert not np.isclose(vc.attrs["k1"], vc.attrs["k3"])


def test_variance_components_sums_of_squares_partition_total():
    rng = np.random.default_rng(3)
    y, ses, run = _nested_sample(rng, 7, 3, 10, 0.1, 0.1, 0.1)
    keep = rng.random(y.size) > 0.25
    vc = variance_components(y[keep], ses[keep], run[keep])
    total = ((y[keep] - y[keep].mean()) ** 2).sum()
    assert vc["ss"].sum() == pytest.approx(total)
    assert vc["df"].sum() == keep.sum() - 1


def test_variance_components_hand_example_and_run_labels_nested():
    y = [1.0, 1.2, 2.0, 2.2, 5.0, 5.2, 6.0, 6.2]
    ses = ["01"] * 4 + ["02"] * 4
    run = [1, 1, 2, 2] * 2  # run 1 of ses-01 and run 1 of ses-02 are different runs
    vc = variance_components(y, ses, run)
    np.testing.assert_allclose(vc["estimate"], [7.75, 0.49, 0.02])
    np.testing.assert_allclose(vc["ms"], [32.0, 1.0, 0.02])


def test_variance_components_truncates_negative_estimates():
    # no session effect at all: the moment estimate is negative about half the time
    for seed in range(20):
        y, ses, run = _nested_sample(np.random.default_rng(seed), 6, 3, 10, 0.0, 0.05, 0.1)
        vc = variance_components(y, ses, run)
        if vc.at[0, "estimate"] < 0:
            break
    else:  # pragma: no cover - 20 seeds without a negative estimate would be astonishing
        pytest.fail("no negative session estimate found")
    assert vc.at[0, "variance"] == 0.0 and vc.at[0, "share"] == 0.0
    np.testing.assert_allclose(vc["share"].sum(), 1.0)
    raw = variance_components(y, ses, run, truncate=False)
    assert raw.at[0, "variance"] < 0


@pytest.mark.parametrize(
    "ses, run",
    [
        (["01"] * 4, [1, 1, 2, 2]),  # one session
        (["01", "01", "02", "02"], [1, 1, 1, 1]),  # one run per session
        (["01", "01", "02", "02"], [1, 2, 1, 2]),  # one unit per run
    ],
)
def test_variance_components_rejects_designs_that_cannot_separate(ses, run):
    with pytest.raises(DataFormatError, match="nested variance decomposition needs"):
        variance_components([0.1, 0.2, 0.3, 0.5], ses, run)


def test_variance_components_rejects_bad_input():
    with pytest.raises(DataFormatError, match="equal length"):
        variance_components([0.1, 0.2], ["01"], [1, 1])
    with pytest.raises(DataFormatError, match="not finite"):
        variance_components([0.1, np.nan], ["01", "02"], [1, 1])


# --------------------------------------------------------------------------------------------------
# Levels
# --------------------------------------------------------------------------------------------------


def test_rating_units_shapes_order_and_positions(participant):
    frames = {(r.session, r.run): align_run(r) for r in participant.rating_runs()}
    units = rating_units(frames)
    sizes = units.groupby("level", sort=False).size()
    assert list(sizes.index) == list(LEVELS)
    assert sizes.tolist() == [3 * 3 * 10, 3 * 3 * 5, 3 * 3, 3]
    for level in LEVELS:
        d = units[units["level"] == level]
        assert d["position"].is_monotonic_increasing
        assert list(dict.fromkeys(d["session"])) == ["01", "02", "03"]
    one = units[units["level"] == "1min"]
    np.testing.assert_allclose(one["position"], np.arange(1, 91))
    np.testing.assert_allclose(units.loc[units["level"] == "2min", "position"], np.arange(45) * 2 + 1.5)
    np.testing.assert_allclose(units.loc[units["level"] == "run", "position"], np.arange(9) * 10 + 5.5)
    ses = units[units["level"] == "session"]
    np.testing.assert_allclose(ses["position"], np.arange(3) * 30 + 15.5)
    np.testing.assert_allclose(ses["start"], [0.5, 30.5, 60.5])
    assert (ses["run"] == -1).all() and (ses["bin"] == -1).all()
    # session = mean of the run means; run = mean over kept frames; bins cover every kept frame
    runs = units[units["level"] == "run"]
    np.testing.assert_allclose(ses["rating"], runs.groupby("session")["rating"].mean().to_numpy())
    rf = frames[("02", 2)]
    assert runs.set_index(["session", "run"]).at[("02", 2), "rating"] == pytest.approx(rf.rating.mean())
    assert one.groupby(["session", "run"])["n_frames"].sum().loc[("02", 2)] == rf.n_frames


def test_rating_units_numeric_session_order():
    from deipp_core.ratings import RunFrames, time_bins

    rf = RunFrames(frames=np.arange(50), rating=np.linspace(0, 1, 50), rating_tr=np.zeros(80),
                   tbin={10: time_bins(50, 10), 5: time_bins(50, 5)})
    units = rating_units({("10", 1): rf, ("9", 1): rf, ("9", 2): rf})
    assert units.loc[units["level"] == "run", "session"].tolist() == ["9", "9", "10"]


def test_rating_units_match_feature_rows(participant):
    """The 1-min/2-min/run ratings are those the decoder's feature rows carry."""
    from deipp_core.features import participant_features

    feats = participant_features(participant, include_rest=False)
    units = rating_units(feats.frames)
    rows = feats.rows
    for kind, level in (("tbin10", "1min"), ("tbin5", "2min"), ("run", "run")):
        np.testing.assert_allclose(
            units.loc[units["level"] == level, "rating"].to_numpy(),
            rows.loc[rows["kind"] == kind, "rating"].to_numpy(),
        )


def test_rating_units_requires_both_bin_levels(participant):
    rf = align_run(participant.rating_runs()[0], RatingParams(n_bins=(10,)))
    with pytest.raises(DataFormatError, match="no 5 time bins"):
        rating_units({("01", 1): rf})
    with pytest.raises(DataFormatError, match="at least one run"):
        rating_units({})


def test_summarize_levels(participant):
    units = rating_overview(participant).units
    summ = summarize_levels(units)
    assert summ["level"].tolist() == list(LEVELS)
    assert summ["n"].tolist() == [90, 45, 9, 3]
    r = units.loc[units["level"] == "run", "rating"]
    row = summ.set_index("level").loc["run"]
    assert row["mean"] == pytest.approx(r.mean()) and row["sd"] == pytest.approx(r.std(ddof=1))


# --------------------------------------------------------------------------------------------------
# Traces, censoring, timeline
# --------------------------------------------------------------------------------------------------


def test_rating_traces_are_unlagged_uncensored_from_30_s(participant):
    traces = rating_traces(participant)
    n_trim = RatingParams().n_trim(TR)
    assert n_trim == 66
    per_run = traces.groupby(["session", "run"]).size()
    assert (per_run == N_VOL - n_trim).all() and len(per_run) == 9
    run = participant.rating_runs("02")[1]
    d = traces[(traces["session"] == "02") & (traces["run"] == 2)]
    np.testing.assert_array_equal(d["rating"].to_numpy(), align_run(run).rating_tr[n_trim:])
    # volume k at 0.35 + 0.46 k s on the rating clock
    assert d["minute"].iloc[0] == pytest.approx((0.35 + 0.46 * 66) / 60)
    assert np.diff(d["minute"].to_numpy()) == pytest.approx(np.full(len(d) - 1, TR / 60))


def test_censoring_table_counts_window(participant):
    cen = censoring_table(participant).set_index(["session", "run"])
    window = N_VOL - 66 - 13
    assert (cen["n_window"] == window).all()
    assert cen.at[("02", 2), "n_censored"] == 60
    assert cen.at[("02", 2), "pct_censored"] == pytest.approx(100 * 60 / window)
    assert cen.at[("01", 1), "n_censored"] == 0
    assert cen.at[("02", 2), "mean_fd"] > cen.at[("01", 1), "mean_fd"]


def test_session_timeline_with_and_without_dates(tmp_path, participant):
    plain = session_timeline(participant)
    assert plain["index"].tolist() == [1, 2, 3]
    assert plain["acq_time"].isna().all() and plain.attrs["source"] == "session index only"
    assert plain["has_rest"].all() and (plain["n_rating_runs"] == 3).all()
    sub = tmp_path / "sub-01"
    sub.mkdir()
    (sub / "sub-01_sessions.tsv").write_text(
        "session_id\tacq_time\nses-01\t2023-01-09T13:00:00\nses-02\t2023-01-18T13:00:00\n"
        "ses-03\t2023-02-08T01:00:00\n"
    )
    dated = session_timeline(participant, tmp_path)
    np.testing.assert_allclose(dated["day"], [0.0, 9.0, 29.5])
    assert dated.attrs["source"].endswith("sub-01_sessions.tsv")
    (sub / "sub-01_sessions.tsv").write_text("session_id\tacq_time\nses-01\tnot a date\n")
    with pytest.raises(DataFormatError, match="acq_time"):
        session_timeline(participant, tmp_path)


def test_rating_overview_and_table(participant):
    ov = rating_overview(participant)
    assert ov.n_sessions == 3 and not ov.has_dates
    assert ov.variance["component"].tolist() == ["session", "run", "minute"]
    # the synthetic sessions differ by 0.1 and runs by 0.05: between-session variance dominates
    share = ov.variance.set_index("component")["share"]
    assert share["session"] > share["run"] > 0
    table = overview_table({"Participant 1": ov})
    row = table.loc["Participant 1"]
    assert row["n_sessions"] == 3 and row["n_runs"] == 9
    assert row[["share_session", "share_run", "share_minute"]].sum() == pytest.approx(1.0)
    assert row["pct_censored"] == pytest.approx(100 * 60 / (9 * (N_VOL - 79)))
    assert np.isnan(row["span_days"])
    assert row["n_censored"] == 60 and row["n_window"] == 9 * (N_VOL - 79) and not row["has_dates"]
    assert sessions_sentence(table) == "Participant 1: 3 sessions (9 rating runs)."
    text = overview_sentence(table)
    assert text.startswith("Participant 1 (3 sessions): ") and f"{row['share_session']:.0%}" in text


def test_rating_overview_reuses_given_frames(participant):
    frames = {(r.session, r.run): align_run(r) for r in participant.rating_runs()}
    ov = rating_overview(participant, frames=frames)
    pd.testing.assert_frame_equal(ov.units, rating_overview(participant).units)
    frames.pop(("03", 3))
    with pytest.raises(DataFormatError, match="ses-03 run-3"):
        rating_overview(participant, frames=frames)


# --------------------------------------------------------------------------------------------------
# Schematic
# --------------------------------------------------------------------------------------------------


def test_cofluctuation_example_is_seeded_product_of_zscores():
    ex = cofluctuation_example()
    assert ex.shape == (375, 4)
    np.testing.assert_allclose(ex["product"], ex["a"] * ex["b"])
    pd.testing.assert_frame_equal(ex, cofluctuation_example())
    assert not np.allclose(ex["a"], cofluctuation_example(seed=2020)["a"])
    full = cofluctuation_example(n_shown=500)
    np.testing.assert_allclose(full[["a", "b"]].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(full[["a", "b"]].std(ddof=1), 1)
    # low-passed: neighbouring samples are almost equal (white noise would have lag-1 r ≈ 0)
    assert np.corrcoef(full["a"][:-1], full["a"][1:])[0, 1] > 0.99
    with pytest.raises(ParameterError):
        cofluctuation_example(cutoff=1.5)
    with pytest.raises(ParameterError):
        cofluctuation_example(n_shown=600)
