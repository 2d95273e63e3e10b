"""Held-out prediction figures (paper Fig. 2): scatter per level, within-run/-session lines, ROC.

The scatter and ROC panels can overlay the paper's published values (``published=`` tables from
:mod:`deipp_core.data.source_data`), drawn as open grey circles and dashed curves and labelled
:data:`PUBLISHED_LABEL`, beside this build's values (labelled by ``build_label``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from deipp_core.plotting._style import LEVEL_COLORS, LEVEL_LABELS, LEVEL_SIZES

__all__ = ["PUBLISHED_LABEL", "plot_level_scatter", "plot_roc", "plot_within", "plot_prediction_grid"]

LEVELS = ("1min", "2min", "run", "session")

#: Legend label of values taken from the paper's published figure source data.
PUBLISHED_LABEL = "published (source data)"


def _metric_line(m: pd.Series) -> str:
    return f"r = {m['r']:.2f}, AUC = {m['auc']:.2f}"


def _new_axes(n: int, axes, width: float = 3.0, height: float = 3.0):
    if axes is None:
        fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
        return fig, list(axes[0])
    axes = list(np.atleast_1d(axes))
    return axes[0].figure, axes


def plot_level_scatter(
    levels: pd.DataFrame,
    metrics: pd.DataFrame | None = None,
    *,
    axes=None,
    title: str | None = None,
    published: pd.DataFrame | None = None,
    published_metrics: pd.DataFrame | None = None,
    build_label: str = "this build",
) -> plt.Figure:
    """Predicted vs actual pain at the four levels, with the OLS line (paper Fig. 2a).

    Parameters
    ----------
    levels : DataFrame
        Columns ``level``, ``actual``, ``predicted`` (as returned by
        :func:`deipp_core.evaluation.level_table`).
    metrics : DataFrame, optional
        One row per level with ``r`` and ``auc`` (from :func:`deipp_core.evaluation.evaluate`); shown
        in the panel titles.
    axes : sequence of 4 Axes, optional
    title : str, optional
        Figure title.
    published : DataFrame, optional
        The paper's units (``level``, ``actual``, ``predicted``; e.g.
        :func:`deipp_core.data.source_data.published_levels` of one participant), drawn as open grey
        circles with a dashed least-squares line.
    published_metrics : DataFrame, optional
        The paper's ``r`` and ``auc`` per ``level`` (:func:`~deipp_core.data.source_data.published_metrics`),
        shown in the titles under this build's.
    build_label : str, default="this build"
        How this build's values are named when published values are shown too (e.g.
        ``"this build (twin)"``).

    Returns
    -------
    Figure
    """
    fig, axes = _new_axes(4, axes)
    pub_m = published_metrics.set_index("level") if published_metrics is not None else None
    for ax, level in zip(axes, LEVELS):
        d = levels[levels["level"] == level]
        x, y = d["actual"].to_numpy(float), d["predicted"].to_numpy(float)
        ax.scatter(x, y, s=LEVEL_SIZES[level], color=LEVEL_COLORS[level], alpha=0.8, edgecolor="none",
                   label=build_label)
        p = published[published["level"] == level] if published is not None else None
        if p is not None and len(p):
            ax.scatter(p["actual"], p["predicted"], s=LEVEL_SIZES[level], facecolor="none", edgecolor="0.35",
                       lw=0.7, alpha=0.8, label=PUBLISHED_LABEL)
        lo, hi = ax.get_xlim()
        fits = [(x, y, {"color": "0.5", "lw": 2.5})]
        if p is not None and len(p):
            fits.append((p["actual"].to_numpy(float), p["predicted"].to_numpy(float),
                         {"color": "0.35", "lw": 1.2, "ls": "--"}))
        for xs, ys, style in fits:
            if len(xs) > 1 and np.ptp(xs) > 0:
                b1, b0 = np.polyfit(xs, ys, 1)
                ax.plot([lo, hi], [b0 + b1 * lo, b0 + b1 * hi], zorder=0, **style)
        ax.set_xlim(lo, hi)
        label = LEVEL_LABELS[level]
        if metrics is not None:
            m = metrics.set_index("level").loc[level]
            label += ("\n" + (f"{build_label}: " if pub_m is not None else "") + _metric_line(m))
        if pub_m is not None and level in pub_m.index:
            label += "\npublished: " + _metric_line(pub_m.loc[level])
        ax.set_title(label, fontsize=10 if pub_m is None else 8)
        ax.set_xlabel("Actual pain")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel("Predicted pain")
    if published is not None and len(published):
        axes[0].legend(fontsize=7, frameon=False, loc="upper left", handletextpad=0.2)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_within(levels: pd.DataFrame, within: pd.DataFrame, *, by: str = "run", ax=None) -> plt.Figure:
    """1-min bins of each run (or session) with that unit's OLS line coloured by its r (Fig. 2b).

    Parameters
    ----------
    levels : DataFrame
        Level table; its ``1min`` rows are used.
    within : DataFrame
        Per-unit correlations with columns ``session`` (and ``run`` when ``by="run"``) and ``r``, as
        returned by :func:`deipp_core.evaluation.within_correlations`.
    by : {"run", "session"}
    ax : Axes, optional
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.4, 3.0))
    fig = ax.figure
    cmap = plt.get_cmap("RdYlBu_r")
    d = levels[levels["level"] == "1min"]
    keys = ["session", "run"] if by == "run" else ["session"]
    rs = within.set_index(keys)["r"]
    for key, unit in sorted(d.groupby(keys), key=lambda kv: rs.get(kv[0], 0.0)):
        r = rs.get(key, np.nan)
        color = cmap((np.nan_to_num(r) + 1) / 2)
        x, y = unit["actual"].to_numpy(float), unit["predicted"].to_numpy(float)
        ax.scatter(x, y, s=6, color=color, alpha=0.6, edgecolor="none")
        if len(x) > 1 and np.ptp(x) > 0:
            b1, b0 = np.polyfit(x, y, 1)
            pad = 0.1 * np.ptp(x)
            xs = np.array([x.min() - pad, x.max() + pad])
            ax.plot(xs, b0 + b1 * xs, color=color, lw=1)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(-1, 1))
    fig.colorbar(sm, ax=ax, label=f"within-{by} r")
    ax.set_xlabel("Actual pain")
    ax.set_ylabel("Predicted pain")
    ax.set_title(f"Within {by}s (1-min bins)", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_roc(
    roc: pd.DataFrame,
    metrics: pd.DataFrame | None = None,
    *,
    ax=None,
    published: pd.DataFrame | None = None,
    build_label: str = "this build",
) -> plt.Figure:
    """ROC curves of the median split (high vs low pain) at the four levels (Fig. 2c).

    Parameters
    ----------
    roc : DataFrame
        Columns ``level``, ``fpr``, ``tpr`` (points starting at (0, 0)).
    metrics : DataFrame, optional
        With ``level`` and ``auc`` for the legend.
    ax : Axes, optional
    published : DataFrame, optional
        The paper's ROC points (``level``, ``fpr``, ``tpr``; e.g.
        :func:`deipp_core.data.source_data.published_roc` of one participant), drawn as thin dashed
        curves in the level colours.
    build_label : str, default="this build"
        Legend label of this build's (solid) curves when published curves are shown.

    Returns
    -------
    Figure
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.2, 3.0))
    fig = ax.figure
    auc = metrics.set_index("level")["auc"] if metrics is not None else None
    for level in LEVELS:
        d = roc[roc["level"] == level]
        label = LEVEL_LABELS[level] + (f" (AUC {auc[level]:.2f})" if auc is not None else "")
        ax.plot(d["fpr"], d["tpr"], color=LEVEL_COLORS[level], lw=2, label=label, drawstyle="default")
    if published is not None and len(published):
        for level in LEVELS:
            d = published[published["level"] == level]
            ax.plot(d["fpr"], d["tpr"], color=LEVEL_COLORS[level], lw=1, ls=(0, (3, 1.5)))
        ax.plot([], [], color="k", lw=2, label=build_label)
        ax.plot([], [], color="k", lw=1, ls=(0, (3, 1.5)), label=PUBLISHED_LABEL)
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1)
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("Sensitivity")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_prediction_grid(
    results,
    *,
    kind: str = "scatter",
    published=None,
    build_label: str = "this build",
) -> plt.Figure:
    """One row per participant: the four level scatters (``kind="scatter"``), or within-run,
    within-session and ROC panels (``kind="within"``).

    Parameters
    ----------
    results : mapping of str to PredictionResult
        Row titles → results of :func:`deipp_core.analyses.run_prediction`.
    kind : {"scatter", "within"}
    published : PublishedPrediction, optional
        :func:`deipp_core.data.source_data.published_prediction`; each row overlays the published
        units, metrics and ROC curves of its participant (``result.participant``) when there are any.
    build_label : str, default="this build"
        Name of this build's values in legends and titles when published values are shown.

    Returns
    -------
    Figure
    """
    if kind not in ("scatter", "within"):
        raise ValueError(f"kind must be 'scatter' or 'within', got {kind!r}")
    panels, width = (4, 12.0) if kind == "scatter" else (3, 11.0)
    fig, axes = plt.subplots(len(results), panels, figsize=(width, 3.2 * len(results)), squeeze=False)
    for row, (name, res) in zip(axes, results.items()):
        pub = published.for_participant(res.participant) if published is not None else None
        if kind == "scatter":
            plot_level_scatter(res.levels, res.metrics, axes=row, build_label=build_label,
                               published=pub.levels if pub is not None else None,
                               published_metrics=pub.metrics if pub is not None else None)
        else:
            plot_within(res.levels, res.within_run, by="run", ax=row[0])
            plot_within(res.levels, res.within_session, by="session", ax=row[1])
            plot_roc(res.roc, res.metrics, ax=row[2], build_label=build_label,
                     published=pub.roc if pub is not None else None)
            row[2].set_title("High vs low pain (median split)", fontsize=10)
        row[0].set_ylabel(f"{name}\n{row[0].get_ylabel()}", fontsize=10)
    fig.tight_layout()
    return fig
