"""Figures of the study and its ratings (paper Fig. 1): design, time courses, levels, variance split.

Every function takes the tables of :mod:`deipp_core.analyses.ratings_overview` (never raw data),
draws into given axes or a new figure, and returns the Figure. The ``*_grid`` functions draw one row
per participant, so a chapter gets one figure whatever the participant selection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from deipp_core.plotting._style import LEVEL_COLORS, LEVEL_LABELS

__all__ = [
    "SESSION_RUNS",
    "plot_paradigm",
    "plot_session_timeline",
    "plot_study_design",
    "plot_rating_traces",
    "plot_rating_traces_grid",
    "plot_rating_strip",
    "plot_rating_strips_grid",
    "plot_level_histograms",
    "plot_level_histograms_grid",
    "plot_variance_components",
    "plot_cofluctuation_schematic",
]

LEVELS = ("1min", "2min", "run", "session")

#: Dot sizes of the study-wide strip per level (the original's 10/20/40/80).
STRIP_SIZES: dict[str, float] = {"1min": 10, "2min": 20, "run": 40, "session": 80}

#: Runs of one visit in order, with durations in minutes and whether the analyses use them
#: (methods §2; PREP and RELISTEN are not scanned, speaking and listening runs are not analysed).
SESSION_RUNS: tuple[tuple[str, float, bool], ...] = (
    ("REST", 10, True), ("RATE1", 10, True), ("RATE2", 10, True), ("RATE3", 10, True),
    ("PREP", 7, False), ("SPEAK1", 5, False), ("SPEAK2", 5, False), ("LISTEN1", 5, False),
    ("LISTEN2", 5, False), ("RELISTEN1", 5, False), ("RELISTEN2", 5, False),
)

#: Colours of the three rating runs in the time-course panels (run 2 follows the physical activity).
RUN_COLORS: dict[int, str] = {1: "0.35", 2: "#d1495b", 3: "#30638e"}

#: Colours of the variance components (matching the level each one drives).
COMPONENT_COLORS: dict[str, tuple[float, float, float]] = {
    "session": LEVEL_COLORS["session"], "run": LEVEL_COLORS["run"], "minute": LEVEL_COLORS["1min"],
}
COMPONENT_LABELS: dict[str, str] = {
    "session": "between sessions", "run": "between runs (within session)", "minute": "within runs (minutes)",
}


def _clean(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)


def _axes_row(n: int, axes, width: float, height: float):
    if axes is None:
        fig, ax = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
        return fig, list(ax[0])
    axes = list(np.atleast_1d(axes))
    if len(axes) != n:
        raise ValueError(f"expected {n} axes, got {len(axes)}")
    return axes[0].figure, axes


def _row_title(ax, name: str) -> None:
    ax.annotate(name, xy=(0, 1.2), xycoords="axes fraction", fontsize=11, fontweight="bold")


# --------------------------------------------------------------------------------------------------
# Study design
# --------------------------------------------------------------------------------------------------


def plot_paradigm(*, ax=None, trim_s: float = 30.0) -> plt.Figure:
    """One visit of the study: the order and length of its runs, the analysed ones highlighted.

    Parameters
    ----------
    ax : Axes, optional
    trim_s : float, default=30.0
        Length of the start of each rating run dropped by the analyses (cursor starts at 0), drawn
        hatched.

    Returns
    -------
    Figure
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 1.8))
    fig = ax.figure
    x, gap = 0.0, 1.0
    for name, minutes, analysed in SESSION_RUNS:
        rating = name.startswith("RATE")
        color = LEVEL_COLORS["run"] if rating else ("0.55" if analysed else "0.88")
        ax.add_patch(Rectangle((x, 0), minutes, 1, facecolor=color, edgecolor="white", lw=0.5))
        if rating:
            ax.add_patch(Rectangle((x, 0), trim_s / 60, 1, facecolor="none", edgecolor="white",
                                   hatch="////", lw=0))
        ax.text(x + minutes / 2, 0.5, name, ha="center", va="center", fontsize=7,
                color="white" if analysed else "0.35")
        if name == "RATE2":
            ax.annotate("physical activity", xy=(x - gap / 2, 1.0), xytext=(x - gap / 2, 1.55),
                        ha="center", fontsize=7, arrowprops={"arrowstyle": "->", "lw": 0.8})
        x += minutes + gap
    ax.set_xlim(-1, x)
    ax.set_ylim(-0.2, 1.9)
    ax.set_yticks([])
    ax.set_xlabel("Minutes into the visit (runs drawn back to back; gaps not to scale)")
    ax.spines[["top", "right", "left"]].set_visible(False)
    ax.set_title("One visit: rest + three 10-min continuous-rating runs are analysed", fontsize=10, loc="left")
    return fig


def plot_session_timeline(timelines: Mapping[str, pd.DataFrame], *, ax=None) -> plt.Figure:
    """When each participant was scanned: one row of session markers per participant.

    Parameters
    ----------
    timelines : mapping of str to DataFrame
        Row names → :func:`~deipp_core.analyses.ratings_overview.session_timeline` tables. When every
        table has acquisition times the x axis is days since each participant's first session;
        otherwise it is the session index.
    ax : Axes, optional

    Returns
    -------
    Figure
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.6 + 0.5 * len(timelines)))
    fig = ax.figure
    dated = all(t["acq_time"].notna().all() for t in timelines.values())
    names = list(timelines)
    for y, name in enumerate(reversed(names)):
        t = timelines[name]
        x = t["day"].to_numpy(float) if dated else t["index"].to_numpy(float)
        ax.plot([x.min(), x.max()], [y, y], color="0.8", lw=1, zorder=0)
        ax.scatter(x, np.full(x.size, y), s=22, color=LEVEL_COLORS["session"], zorder=2)
        ax.text(x.max(), y + 0.25, f"{len(t)} sessions", fontsize=7, ha="right", color="0.3")
    ax.set_yticks(range(len(names)), list(reversed(names)))
    ax.set_ylim(-0.6, len(names) - 0.3)
    ax.set_xlabel("Days since the participant's first session" if dated else "Session")
    _clean(ax)
    ax.spines["left"].set_visible(False)
    return fig


def plot_study_design(timelines: Mapping[str, pd.DataFrame]) -> plt.Figure:
    """Figure: one visit's runs (top) and the sessions of every participant over time (bottom)."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 2.4 + 0.5 * len(timelines)),
        gridspec_kw={"height_ratios": [1.6, 0.6 + 0.5 * len(timelines)]},
    )
    plot_paradigm(ax=top)
    plot_session_timeline(timelines, ax=bottom)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Time courses
# --------------------------------------------------------------------------------------------------


def _example_sessions(sessions: Sequence[str], n: int) -> list[str]:
    """``n`` sessions spread over the study: first, …, last."""
    sessions = list(sessions)
    if n >= len(sessions):
        return sessions
    idx = np.unique(np.round(np.linspace(0, len(sessions) - 1, n)).astype(int))
    return [sessions[i] for i in idx]


def plot_rating_traces(
    traces: pd.DataFrame, sessions: Sequence[str] | None = None, *, n_sessions: int = 3, axes=None
) -> plt.Figure:
    """Rating time courses of example sessions, the three runs of a session in one panel.

    Parameters
    ----------
    traces : DataFrame
        :func:`~deipp_core.analyses.ratings_overview.rating_traces` (``session``, ``run``,
        ``minute``, ``rating``).
    sessions : sequence of str, optional
        Sessions to show; by default ``n_sessions`` spread over the study (first, middle, last).
    n_sessions : int, default=3
    axes : sequence of Axes, optional
        One per session.

    Returns
    -------
    Figure
    """
    order = list(dict.fromkeys(traces["session"]))
    chosen = list(sessions) if sessions is not None else _example_sessions(order, n_sessions)
    unknown = [s for s in chosen if s not in order]
    if unknown:
        raise ValueError(f"session(s) {unknown} have no trace; sessions present: {order}")
    fig, axes = _axes_row(len(chosen), axes, 3.2, 2.2)
    for ax, ses in zip(axes, chosen):
        d = traces[traces["session"] == ses]
        for run, r in d.groupby("run"):
            ax.plot(r["minute"], r["rating"], color=RUN_COLORS.get(int(run), "0.5"), lw=1, label=f"run {run}")
        ax.set_xlim(-1, 11)
        ax.set_ylim(0, 1)
        ax.set_title(f"ses-{ses}", fontsize=9)
        ax.set_xlabel("Minutes")
        ax.grid(True, lw=0.4, color="0.9")
        _clean(ax)
    axes[0].set_ylabel("Pain rating")
    axes[-1].legend(fontsize=7, frameon=False, loc="upper right")
    return fig


def plot_rating_traces_grid(overviews: Mapping, *, n_sessions: int = 3) -> plt.Figure:
    """One row per participant of :func:`plot_rating_traces` (example sessions over the study)."""
    fig, axes = plt.subplots(len(overviews), n_sessions, figsize=(3.3 * n_sessions, 2.6 * len(overviews)),
                             squeeze=False)
    for row, (name, ov) in zip(axes, overviews.items()):
        chosen = _example_sessions(list(dict.fromkeys(ov.traces["session"])), n_sessions)
        for ax in row[len(chosen):]:
            ax.set_visible(False)
        plot_rating_traces(ov.traces, chosen, axes=row[: len(chosen)])
        _row_title(row[0], name)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# The study-wide dot strip
# --------------------------------------------------------------------------------------------------


def plot_rating_strip(units: pd.DataFrame, *, levels: Sequence[str] = LEVELS, ax=None) -> plt.Figure:
    """Pain over the whole study at the four levels, one dot per unit.

    The 1-min bins of the k-th run sit at ``10k + 1 … 10k + 10``; coarser units at the centre of the
    span they cover (``position`` of :func:`~deipp_core.analyses.ratings_overview.rating_units`).
    Session borders are major ticks (labelled ``ses-YY``), run borders minor ticks. Dot sizes and
    colours follow the original (``fourunits``; 10/20/40/80).

    Parameters
    ----------
    units : DataFrame
        :func:`~deipp_core.analyses.ratings_overview.rating_units`.
    levels : sequence of str, default=("1min", "2min", "run", "session")
        Levels to draw, finest first (drawn in that order, so coarse dots lie on top).
    ax : Axes, optional

    Returns
    -------
    Figure
    """
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad:
        raise ValueError(f"unknown level(s) {bad}; choose from {LEVELS}")
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 2.4))
    fig = ax.figure
    for level in levels:
        d = units[units["level"] == level]
        coarse = level in ("run", "session")
        ax.scatter(d["position"], d["rating"], s=STRIP_SIZES[level], color=LEVEL_COLORS[level],
                   alpha=0.85 if coarse else 0.7, edgecolor="white" if level == "session" else "none",
                   linewidth=0.5, label=LEVEL_LABELS[level], zorder=2 + LEVELS.index(level))
    runs = units[units["level"] == "run"]
    ses = units[units["level"] == "session"]
    ax.set_xticks(runs["start"].to_numpy(float), minor=True)
    ax.set_xticks(ses["start"].to_numpy(float), [f"ses-{s}" for s in ses["session"]], rotation=90, fontsize=6)
    ax.tick_params(axis="x", which="major", length=6)
    ax.tick_params(axis="x", which="minor", length=2.5)
    ax.set_xlim(units["start"].min(), units["stop"].max())
    ax.set_ylim(0, 1)
    ax.grid(True, axis="y", ls="--", lw=0.5, color="0.8")
    ax.set_ylabel("Pain rating")
    ax.legend(fontsize=7, frameon=False, ncol=len(levels), loc="upper left", bbox_to_anchor=(0, 1.2))
    _clean(ax)
    return fig


def plot_rating_strips_grid(overviews: Mapping) -> plt.Figure:
    """One row per participant of :func:`plot_rating_strip`; widths scale with the session counts."""
    n_runs = [int((ov.units["level"] == "run").sum()) for ov in overviews.values()]
    width = max(8.0, min(14.0, 0.12 * max(n_runs)))
    fig, axes = plt.subplots(len(overviews), 1, figsize=(width, 2.7 * len(overviews)), squeeze=False)
    for ax, (name, ov) in zip(axes[:, 0], overviews.items()):
        plot_rating_strip(ov.units, ax=ax)
        ax.set_title(name, fontsize=11, fontweight="bold", loc="right")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Distributions per level and the variance split
# --------------------------------------------------------------------------------------------------


def plot_level_histograms(
    units: pd.DataFrame, summary: pd.DataFrame | None = None, *, binwidth: float = 0.05, axes=None
) -> plt.Figure:
    """Histograms of the rating at each level (bin width 0.05 on [0, 1], as the original).

    Parameters
    ----------
    units : DataFrame
        :func:`~deipp_core.analyses.ratings_overview.rating_units`.
    summary : DataFrame, optional
        :func:`~deipp_core.analyses.ratings_overview.summarize_levels`; its mean and SD are printed in
        each panel.
    binwidth : float, default=0.05
    axes : sequence of 4 Axes, optional

    Returns
    -------
    Figure
    """
    fig, axes = _axes_row(len(LEVELS), axes, 2.6, 1.8)
    edges = np.linspace(0, 1, int(round(1 / binwidth)) + 1)
    stats = summary.set_index("level") if summary is not None else None
    for ax, level in zip(axes, LEVELS):
        r = units.loc[units["level"] == level, "rating"].to_numpy(float)
        ax.hist(r, bins=edges, color=LEVEL_COLORS[level], edgecolor="white", lw=0.4)
        title = LEVEL_LABELS[level]
        if stats is not None and level in stats.index:
            st = stats.loc[level]
            title += f"\nmean {st['mean']:.2f}, SD {st['sd']:.2f}, n = {int(st['n'])}"
        ax.set_title(title, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("Pain rating")
        _clean(ax)
    axes[0].set_ylabel("Units")
    return fig


def plot_level_histograms_grid(overviews: Mapping) -> plt.Figure:
    """One row per participant of :func:`plot_level_histograms`."""
    fig, axes = plt.subplots(len(overviews), len(LEVELS), figsize=(10.5, 2.6 * len(overviews)), squeeze=False)
    for row, (name, ov) in zip(axes, overviews.items()):
        plot_level_histograms(ov.units, ov.summary, axes=row)
        row[0].set_ylabel(f"{name}\nUnits")
    fig.tight_layout()
    return fig


def plot_variance_components(variances: Mapping[str, pd.DataFrame], *, ax=None) -> plt.Figure:
    """Share of the variance of pain between sessions, between runs and within runs (stacked bars).

    Parameters
    ----------
    variances : mapping of str to DataFrame
        Row names → :func:`~deipp_core.analyses.ratings_overview.variance_components` tables
        (``component``, ``share``, ``sd``).
    ax : Axes, optional

    Returns
    -------
    Figure
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.9 + 0.55 * len(variances)))
    fig = ax.figure
    names = list(variances)
    for y, name in enumerate(reversed(names)):
        v = variances[name].set_index("component")
        left = 0.0
        for comp in ("session", "run", "minute"):
            share = float(v.at[comp, "share"])
            ax.barh(y, share, left=left, color=COMPONENT_COLORS[comp], edgecolor="white", height=0.6,
                    label=COMPONENT_LABELS[comp] if y == 0 else None)
            if share >= 0.06:
                ax.text(left + share / 2, y, f"{share:.0%}\nSD {v.at[comp, 'sd']:.2f}", ha="center",
                        va="center", fontsize=7, color="white")
            left += share
    ax.set_yticks(range(len(names)), list(reversed(names)))
    ax.set_xlim(0, 1)
    ax.set_xlabel("Share of the variance of 1-min pain ratings")
    ax.legend(fontsize=7, frameon=False, ncol=3, loc="lower left", bbox_to_anchor=(0, 1.0))
    _clean(ax)
    return fig


# --------------------------------------------------------------------------------------------------
# Schematic
# --------------------------------------------------------------------------------------------------


def plot_cofluctuation_schematic(example: pd.DataFrame, *, axes=None) -> plt.Figure:
    """Illustration of an edge co-fluctuation time series: two z-scored signals and their product.

    The product ``z_a(t)·z_b(t)`` is positive (red) when the two regions deviate from their means in
    the same direction and negative (blue) when in opposite directions; its mean over time is their
    correlation. **An illustration on random noise**, not data of the study.

    Parameters
    ----------
    example : DataFrame
        :func:`~deipp_core.analyses.ratings_overview.cofluctuation_example` (``sample``, ``a``, ``b``,
        ``product``).
    axes : sequence of 3 Axes, optional

    Returns
    -------
    Figure
    """
    if axes is None:
        fig, axes = plt.subplots(3, 1, figsize=(5, 3.4), sharex=True)
    axes = list(np.atleast_1d(axes))
    if len(axes) != 3:
        raise ValueError(f"expected 3 axes, got {len(axes)}")
    fig = axes[0].figure
    t = example["sample"].to_numpy(float)
    series = ((axes[0], "a", "#30638e", "region A (z)"), (axes[1], "b", "#edae49", "region B (z)"))
    for ax, col, color, label in series:
        ax.plot(t, example[col], color=color, lw=1.5)
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_ylabel(label, fontsize=8)
    p = example["product"].to_numpy(float)
    axes[2].fill_between(t, 0, p, where=p >= 0, color="#d1495b", lw=0, interpolate=True)
    axes[2].fill_between(t, 0, p, where=p < 0, color="#30638e", lw=0, interpolate=True)
    axes[2].axhline(0, color="0.5", lw=0.6)
    axes[2].set_ylabel("A × B", fontsize=8)
    axes[2].set_xlabel("Time (samples)")
    for ax in axes:
        ax.set_yticks([])
        _clean(ax)
    axes[0].set_title("Illustration (random noise): edge co-fluctuation = product of z-scores", fontsize=9)
    return fig
