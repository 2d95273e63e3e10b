"""Training-data size figures (paper Fig. 3): accuracy and significance vs number of training sessions.

The functions draw the tables of :class:`deipp_core.analyses.training_size.TrainingSizeResult`; they
compute nothing. The accuracy curve can overlay the paper's published curve (``published=``, from
:func:`deipp_core.data.source_data.published_trainsize`), dashed with open markers and labelled
"published (source data)".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from deipp_core.plotting._style import LEVEL_COLORS, LEVEL_LABELS
from deipp_core.plotting.prediction import PUBLISHED_LABEL

__all__ = ["plot_training_size_curve", "plot_significance_fraction", "plot_training_size_grid"]

LEVELS = ("1min", "2min", "run", "session")

#: Percentages of significant repetitions marked on the significance panel.
THRESHOLDS: tuple[float, ...] = (50.0, 90.0, 95.0, 97.5, 99.0)


def _axes(ax, size=(4.2, 3.2)):
    if ax is None:
        fig, ax = plt.subplots(figsize=size)
        return fig, ax
    return ax.figure, ax


def _check(summary: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in ("n_session", "level", *cols) if c not in summary.columns]
    if missing:
        raise ValueError(
            f"the summary lacks column(s) {missing}; pass TrainingSizeResult.summary"
        )


def plot_training_size_curve(
    summary: pd.DataFrame,
    *,
    ax=None,
    levels: Sequence[str] = LEVELS,
    reference_size: int | None = 4,
    title: str | None = None,
    published: pd.DataFrame | None = None,
    build_label: str = "this build",
) -> plt.Figure:
    """Mean held-out r over repetitions vs number of training sessions, one line per level.

    Error bars are mean ± 1.96·SD/√reps (the original's plot and source-data CSV).

    Parameters
    ----------
    summary : DataFrame
        :attr:`TrainingSizeResult.summary` (``n_session``, ``level``, ``mean_r``, ``ci_lower``,
        ``ci_upper``).
    ax : Axes, optional
    levels : sequence of str, default=all four
    reference_size : int or None, default=4
        Draw a vertical dotted line at this number of sessions (a "conventional" amount of data).
    title : str, optional
    published : DataFrame, optional
        The paper's curve for the same participant (``n_session``, ``level``, ``mean_r``,
        ``ci_lower``, ``ci_upper``), drawn dashed with open markers.
    build_label : str, default="this build"
        Legend name of this build's curves when a published curve is shown.

    Returns
    -------
    Figure
    """
    _check(summary, ("mean_r", "ci_lower", "ci_upper"))
    if published is not None:
        _check(published, ("mean_r", "ci_lower", "ci_upper"))
    fig, ax = _axes(ax)
    for i, lv in enumerate(levels):
        d = summary[summary["level"] == lv].sort_values("n_session")
        if d.empty:
            continue
        m = d["n_session"].to_numpy(float) + (i - (len(levels) - 1) / 2) * 0.08  # dodge
        mean = d["mean_r"].to_numpy(float)
        err = np.vstack([mean - d["ci_lower"].to_numpy(float), d["ci_upper"].to_numpy(float) - mean])
        ax.errorbar(m, mean, yerr=np.nan_to_num(err), color=LEVEL_COLORS[lv], label=LEVEL_LABELS[lv],
                    marker="o", ms=3, lw=1.5, elinewidth=1, capsize=0)
    has_published = published is not None and len(published) > 0
    if has_published:
        for lv in levels:
            d = published[published["level"] == lv].sort_values("n_session")
            mean = d["mean_r"].to_numpy(float)
            err = np.vstack([mean - d["ci_lower"].to_numpy(float), d["ci_upper"].to_numpy(float) - mean])
            ax.errorbar(d["n_session"].to_numpy(float), mean, yerr=np.nan_to_num(err), color=LEVEL_COLORS[lv],
                        marker="o", ms=3.5, mfc="none", lw=1, ls="--", elinewidth=0.6, capsize=0, alpha=0.85)
        ax.plot([], [], color="k", marker="o", ms=3, lw=1.5, label=build_label)
        ax.plot([], [], color="k", marker="o", ms=3.5, mfc="none", lw=1, ls="--", label=PUBLISHED_LABEL)
    ax.axhline(0, color="0.6", lw=0.8, zorder=0)
    if reference_size is not None and (summary["n_session"] == reference_size).any():
        ax.axvline(reference_size, color="0.4", ls=":", lw=1, zorder=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Number of training sessions")
    ax.set_ylabel("Held-out r (mean over repetitions)")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=7 if has_published else 8, loc="lower right", ncol=2 if has_published else 1)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_significance_fraction(
    summary: pd.DataFrame,
    *,
    ax=None,
    levels: Sequence[str] = LEVELS,
    thresholds: Sequence[float] = THRESHOLDS,
    title: str | None = None,
) -> plt.Figure:
    """Percentage of repetitions with a significant positive r vs number of training sessions.

    Dashed horizontal lines mark the thresholds of the "minimum number of sessions" (50, 90, 95,
    97.5 and 99 %).

    Parameters
    ----------
    summary : DataFrame
        :attr:`TrainingSizeResult.summary` (``n_session``, ``level``, ``frac_significant``).
    ax : Axes, optional
    levels : sequence of str, default=all four
    thresholds : sequence of float, default=(50, 90, 95, 97.5, 99)
        Percentages to mark.
    title : str, optional

    Returns
    -------
    Figure
    """
    _check(summary, ("frac_significant",))
    fig, ax = _axes(ax)
    for X in thresholds:
        ax.axhline(X, color="0.75", ls="--", lw=0.8, zorder=0)
    # label the lines without overlap: thresholds closer than 8 points share one label
    groups: list[list[float]] = []
    for X in sorted(thresholds):
        if groups and X - groups[-1][-1] < 8:
            groups[-1].append(X)
        else:
            groups.append([X])
    for g in groups:
        text = f"{g[0]:g}%" if len(g) == 1 else f"{g[0]:g}–{g[-1]:g}%"
        ax.annotate(text, xy=(1.0, g[0]), xycoords=("axes fraction", "data"), xytext=(2, 0),
                    textcoords="offset points", va="center", fontsize=7, color="0.45")
    for lv in levels:
        d = summary[summary["level"] == lv].sort_values("n_session")
        if d.empty:
            continue
        ax.plot(d["n_session"], 100 * d["frac_significant"], color=LEVEL_COLORS[lv],
                label=LEVEL_LABELS[lv], marker="o", ms=3, lw=1.5)
    ax.set_ylim(-3, 103)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Number of training sessions")
    ax.set_ylabel("Significant repetitions (%)")
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_training_size_grid(
    results: Mapping[str, object],
    *,
    published: pd.DataFrame | None = None,
    build_label: str = "this build",
) -> plt.Figure:
    """Both panels for several participants: one row per participant.

    Parameters
    ----------
    results : mapping of str to TrainingSizeResult
        Row title → result (anything with ``summary``, ``n_reps``, ``reference_size`` and
        ``participant``).
    published : DataFrame, optional
        :func:`deipp_core.data.source_data.published_trainsize`; each row's accuracy panel overlays
        the published curve of its participant when there is one.
    build_label : str, default="this build"
        Legend name of this build's curves when a published curve is shown.

    Returns
    -------
    Figure
    """
    n = len(results)
    if n == 0:
        raise ValueError("no results to plot")
    fig, axes = plt.subplots(n, 2, figsize=(9.5, 3.3 * n), squeeze=False)
    for row, (name, res) in zip(axes, results.items()):
        pub = published[published["participant"] == res.participant] if published is not None else None
        plot_training_size_curve(res.summary, ax=row[0], reference_size=res.reference_size,
                                 title=f"{name}: held-out r ({res.n_reps} repetitions per size)",
                                 published=pub, build_label=build_label)
        plot_significance_fraction(res.summary, ax=row[1],
                                   title=f"{name}: repetitions with p < 0.05 and r > 0")
    fig.tight_layout()
    return fig
