"""Figures of the control analyses: scatter + ROC per control, and univariate t maps on a glass brain.

Plots never compute statistics: they take :class:`~deipp_core.analyses.controls.ControlResult` and
:class:`~deipp_core.analyses.univariate.UnivariateResult` objects.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from deipp_core.plotting._style import LEVEL_COLORS, LEVEL_LABELS, LEVEL_SIZES
from deipp_core.plotting.brain import plot_brain_grid

__all__ = ["X_LABELS", "plot_control_row", "plot_controls_grid", "plot_univariate_brain",
           "plot_univariate_networks"]

_LEVELS = ("1min", "2min", "run", "session")

#: Axis label of each kind of x.
X_LABELS = {"actual": "Actual pain", "fd": "Framewise displacement (mm)"}

#: Diverging colour map of the t maps (the original's cyan-blue-black-red-yellow ``wb_rybcbl``).
T_CMAP = plt.get_cmap("RdBu_r")


def plot_control_row(result, axes, *, x_label: str | None = None) -> plt.Figure:
    """Scatter of prediction vs x at each level of a control, with the OLS line, then the ROC curves.

    Parameters
    ----------
    result : ControlResult
    axes : sequence of Axes
        One per level present, plus one for the ROC (extra axes are hidden).
    x_label : str, optional
        Default from :data:`X_LABELS`.

    Returns
    -------
    Figure
    """
    axes = list(np.atleast_1d(axes))
    x = result.x
    levels = [lv for lv in _LEVELS if (result.levels["level"] == lv).any()]
    m = result.metrics.set_index("level")
    for ax, lv in zip(axes, levels):
        d = result.levels[result.levels["level"] == lv]
        xv, yv = d[x].to_numpy(float), d["predicted"].to_numpy(float)
        ax.scatter(xv, yv, s=LEVEL_SIZES[lv] * (2 if len(levels) == 1 else 1), color=LEVEL_COLORS[lv],
                   alpha=0.8, edgecolor="none")
        if xv.size > 1 and np.ptp(xv) > 0:
            b1, b0 = np.polyfit(xv, yv, 1)
            lo, hi = ax.get_xlim()
            ax.plot([lo, hi], [b0 + b1 * lo, b0 + b1 * hi], color="0.5", lw=2.5, zorder=0)
            ax.set_xlim(lo, hi)
        ax.set_title(f"{LEVEL_LABELS[lv]}\nr = {m.loc[lv, 'r']:.2f}, AUC = {m.loc[lv, 'auc']:.2f}",
                     fontsize=9)
        ax.set_xlabel(x_label or X_LABELS.get(x, x), fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    if levels:
        axes[0].set_ylabel("Predicted pain")
    roc_ax = axes[len(levels)] if len(axes) > len(levels) else None
    if roc_ax is not None:
        for lv in levels:
            d = result.roc[result.roc["level"] == lv]
            if d.empty:
                continue
            roc_ax.plot(d["fpr"], d["tpr"], color=LEVEL_COLORS[lv], lw=2,
                        label=f"{LEVEL_LABELS[lv]} ({m.loc[lv, 'auc']:.2f})")
        roc_ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1)
        roc_ax.set_xlabel("1 − specificity", fontsize=8)
        roc_ax.set_ylabel("Sensitivity", fontsize=8)
        roc_ax.set_aspect("equal")
        roc_ax.legend(fontsize=6, frameon=False, loc="lower right")
        roc_ax.set_title("ROC: high vs low " + ("motion" if x == "fd" else "pain"), fontsize=9)
        roc_ax.spines[["top", "right"]].set_visible(False)
    for ax in axes[len(levels) + 1:]:
        ax.set_axis_off()
    return axes[0].figure


def plot_controls_grid(results: Mapping[str, object], *, title: str | None = None) -> plt.Figure:
    """One row per participant: :func:`plot_control_row` of each participant's result.

    Parameters
    ----------
    results : mapping of str to ControlResult
        Row titles → results of one control.
    title : str, optional
        Figure title.
    """
    n_lv = max(int(r.levels["level"].nunique()) for r in results.values())
    n_col = n_lv + 1
    width = 2.8 * n_col if n_col > 2 else 3.2 * n_col
    fig, axes = plt.subplots(len(results), n_col, figsize=(width, 3.1 * len(results)), squeeze=False)
    for row, (name, res) in zip(axes, results.items()):
        plot_control_row(res, row)
        row[0].annotate(name, xy=(0, 1.22), xycoords="axes fraction", fontsize=10, fontweight="bold")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _t_limit(results) -> float:
    tmax = max(float(np.nanmax(np.abs(r.table["t"].to_numpy(float)))) for r in results.values())
    return max(tmax, 1e-6)


def plot_univariate_brain(results: Mapping[str, object], *, vmax: float | None = None) -> plt.Figure:
    """t maps of the rating β on a glass brain, unthresholded and FDR-thresholded (one row each).

    Parameters
    ----------
    results : mapping of str to UnivariateResult
    vmax : float, optional
        Symmetric colour limit ±vmax (the original fixes ±8.5 / ±7.6); default: the largest |t|.
    """
    lim = float(vmax) if vmax is not None else _t_limit(results)
    panels = {}
    for name, res in results.items():
        table = res.table
        panels[name] = [
            dict(kind="markers", table=table, value="t", cmap=T_CMAP, vmin=-lim, vmax=lim),
            dict(kind="markers", table=table, value="t", cmap=T_CMAP, vmin=-lim, vmax=lim,
                 mask=table["significant"].to_numpy(bool)),
        ]
    q = next(iter(results.values())).table.attrs.get("q", 0.05)
    fig = plot_brain_grid(panels, column_titles=["t (unthresholded)", f"t, FDR q < {q:g}"])
    # An empty FDR panel means that no region survives: say so instead of the generic blank text.
    for ax in fig.axes:
        for text in ax.texts:
            if text.get_text().startswith("no regions"):
                text.set_text(f"no region survives FDR (q < {q:g})")
    return fig


def plot_univariate_networks(results: Mapping[str, object], *, axes=None) -> plt.Figure:
    """Per network, the t of every parcel (dots) with a box, and the band of non-significant t.

    Parameters
    ----------
    results : mapping of str to UnivariateResult
    axes : sequence of Axes, optional
        One per participant.
    """
    from deipp_core.plotting.importance import network_palette

    if axes is None:
        fig, axes = plt.subplots(len(results), 1, figsize=(10, 2.7 * len(results)), squeeze=False)
        axes = list(axes[:, 0])
    axes = list(np.atleast_1d(axes))
    rng = np.random.default_rng(0)  # horizontal jitter only
    for ax, (name, res) in zip(axes, results.items()):
        table = res.table
        nets = list(dict.fromkeys(table["network"]))
        palette = network_palette(nets)
        t = table["t"].to_numpy(float)
        data = [t[(table["network"] == n).to_numpy()] for n in nets]
        ax.boxplot(data, positions=range(len(nets)), widths=0.4, showfliers=False,
                   medianprops={"color": "0.3"}, boxprops={"color": "0.5"}, whiskerprops={"color": "0.5"},
                   capprops={"color": "0.5"})
        for k, (n, v) in enumerate(zip(nets, data)):
            sig = table.loc[table["network"] == n, "significant"].to_numpy(bool)
            xs = k + rng.uniform(-0.15, 0.15, v.size)
            ax.scatter(xs[~sig], v[~sig], s=12, color=palette[n], alpha=0.6, edgecolor="none")
            ax.scatter(xs[sig], v[sig], s=30, color=palette[n], edgecolor="k", lw=0.6)
        neg, pos = res.thresholds
        lo = neg if np.isfinite(neg) else -np.inf
        hi = pos if np.isfinite(pos) else np.inf
        ylo, yhi = ax.get_ylim()
        ax.axhspan(max(lo, ylo), min(hi, yhi), color="0.85", zorder=0, lw=0)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_ylim(ylo, yhi)
        ax.set_xticks(range(len(nets)))
        ax.set_xticklabels(nets, rotation=40, ha="right", fontsize=7)
        ax.set_ylabel("t (rating β)")
        ax.set_title(name, fontsize=10, loc="left")
        ax.spines[["top", "right"]].set_visible(False)
    fig = axes[0].figure
    fig.tight_layout()
    return fig
