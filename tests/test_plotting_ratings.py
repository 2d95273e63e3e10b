"""Tests of deipp_core.plotting.ratings: every figure is a Figure with the expected axes and artists."""

from __future__ import annotations

import matplotlib.pyplot as plt  # the Agg backend is set in conftest.py
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.patches import Rectangle

from deipp_core.analyses.ratings_overview import (
    RatingOverview,
    cofluctuation_example,
    rating_units,
    summarize_levels,
    variance_components,
)
from deipp_core.plotting import ratings as rp
from deipp_core.plotting._style import LEVEL_COLORS
from deipp_core.ratings import RunFrames, time_bins


def _overview(label: str, n_sessions: int, seed: int, dated: bool = True) -> RatingOverview:
    rng = np.random.default_rng(seed)
    frames, traces = {}, []
    for s in range(1, n_sessions + 1):
        for r in (1, 2, 3):
            n = 1200 + int(rng.integers(0, 25))
            rating = np.clip(0.4 + 0.1 * rng.standard_normal() + np.cumsum(rng.normal(0, 0.01, n)), 0, 1)
            frames[(f"{s:02d}", r)] = RunFrames(frames=np.arange(n), rating=rating, rating_tr=rating,
                                                tbin={10: time_bins(n, 10), 5: time_bins(n, 5)})
            k = np.arange(66, 1304)
            traces.append(pd.DataFrame({"session": f"{s:02d}", "run": r, "volume": k,
                                        "minute": (0.35 + 0.46 * k) / 60, "rating": rng.random(k.size)}))
    units = rating_units(frames)
    minutes = units[units["level"] == "1min"]
    days = np.cumsum(rng.integers(4, 11, n_sessions)) - 4 if dated else np.full(n_sessions, np.nan)
    timeline = pd.DataFrame({
        "session": [f"{s:02d}" for s in range(1, n_sessions + 1)],
        "index": np.arange(1, n_sessions + 1),
        "n_rating_runs": 3, "has_rest": True,
        "acq_time": pd.to_datetime("2023-01-09") + pd.to_timedelta(days, unit="D"),
        "day": days.astype(float),
    })
    return RatingOverview(
        participant=label, units=units, summary=summarize_levels(units),
        variance=variance_components(minutes["rating"], minutes["session"], minutes["run"]),
        traces=pd.concat(traces, ignore_index=True), censoring=pd.DataFrame(), timeline=timeline,
        timeline_source="test",
    )


@pytest.fixture(scope="module")
def overviews():
    return {"Participant 1": _overview("01", 4, 0), "Participant 2": _overview("02", 6, 1)}


def _scatters(ax) -> list[PathCollection]:
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def test_rating_strip_draws_four_levels_with_borders(overviews):
    units = overviews["Participant 2"].units
    fig = rp.plot_rating_strip(units)
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    scatters = _scatters(ax)
    assert len(scatters) == 4
    assert [len(s.get_offsets()) for s in scatters] == [6 * 30, 6 * 15, 6 * 3, 6]
    np.testing.assert_allclose(scatters[0].get_facecolor()[0][:3], LEVEL_COLORS["1min"])
    np.testing.assert_allclose(scatters[3].get_facecolor()[0][:3], LEVEL_COLORS["session"])
    assert scatters[0].get_sizes()[0] < scatters[3].get_sizes()[0]
    # major ticks at session borders (labelled), minor ticks at run borders
    np.testing.assert_allclose(ax.get_xticks(), np.arange(6) * 30 + 0.5)
    # (matplotlib hides the minor ticks that coincide with a major one)
    run_borders = np.arange(18) * 10 + 0.5
    np.testing.assert_allclose(ax.get_xticks(minor=True), run_borders[np.arange(18) % 3 != 0])
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"ses-{s:02d}" for s in range(1, 7)]
    assert ax.get_ylim() == (0, 1)


def test_rating_strip_level_subset_and_unknown_level(overviews):
    units = overviews["Participant 1"].units
    fig = rp.plot_rating_strip(units, levels=("run", "session"))
    assert len(_scatters(fig.axes[0])) == 2
    with pytest.raises(ValueError, match="unknown level"):
        rp.plot_rating_strip(units, levels=("hour",))


def test_strips_grid_one_row_per_participant(overviews):
    fig = rp.plot_rating_strips_grid(overviews)
    assert len(fig.axes) == 2
    assert all(len(_scatters(ax)) == 4 for ax in fig.axes)


def test_level_histograms_bin_width_and_counts(overviews):
    ov = overviews["Participant 1"]
    fig = rp.plot_level_histograms(ov.units, ov.summary)
    assert len(fig.axes) == 4
    for ax, level, n in zip(fig.axes, ("1min", "2min", "run", "session"), (120, 60, 12, 4)):
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(bars) == 20
        np.testing.assert_allclose([b.get_width() for b in bars], 0.05)
        assert sum(b.get_height() for b in bars) == n
        mean = ov.summary.set_index("level").at[level, "mean"]
        assert f"mean {mean:.2f}" in ax.get_title()
    grid = rp.plot_level_histograms_grid(overviews)
    assert len(grid.axes) == 8


def test_rating_traces_picks_sessions_over_the_study(overviews):
    traces = overviews["Participant 2"].traces
    fig = rp.plot_rating_traces(traces)
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["ses-01", "ses-03", "ses-06"]
    assert all(len(ax.get_lines()) == 3 for ax in fig.axes)
    assert fig.axes[0].get_xlim() == (-1, 11)
    fig = rp.plot_rating_traces(traces, ["02"])
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="no trace"):
        rp.plot_rating_traces(traces, ["99"])
    grid = rp.plot_rating_traces_grid(overviews, n_sessions=2)
    assert len([ax for ax in grid.axes if ax.get_visible()]) == 4


def test_variance_components_stacked_bars(overviews):
    fig = rp.plot_variance_components({k: o.variance for k, o in overviews.items()})
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 6  # 3 components × 2 participants
    # each participant's bar is stacked to a total of 1
    for y in {round(b.get_y() + b.get_height() / 2) for b in bars}:
        row = [b for b in bars if round(b.get_y() + b.get_height() / 2) == y]
        assert sum(b.get_width() for b in row) == pytest.approx(1.0)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Participant 2", "Participant 1"]
    assert len(ax.get_legend().get_texts()) == 3


def test_cofluctuation_schematic_is_labelled_illustration():
    fig = rp.plot_cofluctuation_schematic(cofluctuation_example())
    assert len(fig.axes) == 3
    assert "Illustration" in fig.axes[0].get_title()
    assert len(fig.axes[0].get_lines()) == 2 and len(fig.axes[2].collections) == 2
    with pytest.raises(ValueError, match="3 axes"):
        _, axes = plt.subplots(1, 2)
        rp.plot_cofluctuation_schematic(cofluctuation_example(), axes=axes)


def test_study_design_paradigm_and_timeline(overviews):
    fig = rp.plot_study_design({k: o.timeline for k, o in overviews.items()})
    top, bottom = fig.axes
    blocks = [p for p in top.patches if isinstance(p, Rectangle) and p.get_facecolor()[3] > 0]
    assert len(blocks) == len(rp.SESSION_RUNS)
    assert len(_scatters(bottom)) == 2
    assert [len(s.get_offsets()) for s in _scatters(bottom)] == [6, 4]  # drawn bottom-up
    assert "Days" in bottom.get_xlabel()
    undated = {"P": _overview("03", 3, 2, dated=False).timeline}
    fig = rp.plot_session_timeline(undated)
    assert fig.axes[0].get_xlabel() == "Session"
