"""Feature-importance, weight and specificity figures (paper Fig. 3e–f, 4, 5).

Every function takes the tables of :mod:`deipp_core.analyses.importance` or
:mod:`deipp_core.analyses.cross_participant`, draws into given axes (or a new figure) and returns the
Figure. Nothing here computes a statistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap, Normalize

from deipp_core.analyses.importance import PAPER_NETWORK_ORDER, SEITZMAN_NETWORK_ORDER
from deipp_core.plotting._style import LEVEL_COLORS, LEVEL_LABELS

__all__ = [
    "WARM_CMAP",
    "network_palette",
    "plot_top_regions",
    "plot_network_metric",
    "plot_importance_grid",
    "plot_generalization",
    "plot_feature_overlap",
]

LEVELS = ("1min", "2min", "run", "session")

#: The warm half of a cool-warm map (the original's ``wb_cw_w``), for importance.
WARM_CMAP = LinearSegmentedColormap.from_list(
    "deipp_warm", plt.get_cmap("coolwarm")(np.linspace(0.5, 1.0, 128))
)

_METRIC_LABELS = {"imp": "Importance (Δr)", "pos": "Σ positive weights", "neg": "Σ negative weights"}


def network_palette(networks: Sequence[str]) -> dict[str, tuple]:
    """One distinct colour per network, the same in every figure.

    Networks of the paper's list or of the Seitzman atlas get the colour of their position in that
    list (:data:`~deipp_core.analyses.importance.PAPER_NETWORK_ORDER`,
    :data:`~deipp_core.analyses.importance.SEITZMAN_NETWORK_ORDER`), so a network keeps its colour
    whichever subset a figure shows; other labels follow in the given order (``tab20``, ``tab20b``).

    Examples
    --------
    >>> pal = network_palette(["Auditory", "DefaultMode"])
    >>> pal["DefaultMode"] == network_palette(["DefaultMode"])["DefaultMode"]
    True
    """
    colors = list(plt.get_cmap("tab20").colors) + list(plt.get_cmap("tab20b").colors)
    known = {n: k for order in (PAPER_NETWORK_ORDER, SEITZMAN_NETWORK_ORDER) for k, n in enumerate(order)}
    others = [n for n in dict.fromkeys(networks) if n not in known]
    out = {}
    for n in dict.fromkeys(networks):
        k = known[n] if n in known else len(SEITZMAN_NETWORK_ORDER) + others.index(n)
        out[n] = colors[(2 * k) % len(colors)] if n in known else colors[k % len(colors)]
    return out


def _axes(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def plot_top_regions(
    table: pd.DataFrame,
    *,
    value: str = "imp",
    n: int = 5,
    ax=None,
    cmap=WARM_CMAP,
    vmax: float | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Lollipop of the ``n`` regions with the largest ``value`` (rows top to bottom; paper Fig. 4a).

    Parameters
    ----------
    table : DataFrame
        Region table with ``name``, ``network`` and ``value`` columns (e.g.
        :attr:`~deipp_core.analyses.importance.RegionImportance.table`).
    value : str, default="imp"
        Column to rank and draw.
    n : int, default=5
    ax : Axes, optional
    cmap : Colormap, default=WARM_CMAP
        Colours the dots by value over ``[0, vmax]``.
    vmax : float, optional
        Upper colour limit (default: the largest value shown).
    title : str, optional

    Returns
    -------
    Figure
    """
    fig, ax = _axes(ax, (3.2, 0.45 * n + 0.8))
    top = table.nlargest(n, value)
    y = np.arange(len(top))[::-1]
    vals = top[value].to_numpy(float)
    norm = Normalize(0.0, vmax if vmax is not None else max(float(vals.max()), 1e-12))
    ax.hlines(y, 0, vals, color="0.6", lw=1.5)
    ax.scatter(vals, y, s=70, c=cmap(norm(vals)), edgecolor="0.2", zorder=3)
    ax.set_yticks(y, [f"{nm} ({net})" if net not in str(nm) else str(nm)
                      for nm, net in zip(top["name"], top["network"])], fontsize=8)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel(_METRIC_LABELS.get(value, value))
    ax.set_ylim(-0.7, len(top) - 0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def _spread(values: np.ndarray, width: float = 0.32) -> np.ndarray:
    """Deterministic horizontal offsets for a strip of points: neighbours in value get different x.

    Points are visited in order of value and placed at 0, −1, +1, −2, +2 (× width/4) in turn, a
    cheap, reproducible stand-in for a beeswarm.
    """
    pattern = np.array([0.0, -1.0, 1.0, -2.0, 2.0]) * width / 4
    out = np.empty(values.size)
    out[np.argsort(values, kind="stable")] = pattern[np.arange(values.size) % pattern.size]
    return out


def plot_network_metric(
    summary: pd.DataFrame,
    metric: str = "imp",
    *,
    ax=None,
    palette: Mapping[str, tuple] | None = None,
    show_names: bool = False,
) -> plt.Figure:
    """One metric by network: grey boxes and one dot per region, top-10 regions as big dots (Fig. 5).

    Parameters
    ----------
    summary : DataFrame
        :func:`~deipp_core.analyses.importance.network_summary` result.
    metric : {"imp", "pos", "neg"}, default="imp"
        The ``neg`` axis is reversed, as in the paper, so the strongest negative sums are on top.
    ax : Axes, optional
    palette : mapping of str to colour, optional
        Network colours (default :func:`network_palette` of the summary's order).
    show_names : bool, default=False
        Label the top regions.

    Returns
    -------
    Figure
    """
    order = list(summary.attrs.get("network_order") or dict.fromkeys(summary["network"]))
    palette = dict(palette) if palette is not None else network_palette(order)
    d = summary[summary["metric"] == metric]
    fig, ax = _axes(ax, (max(6.0, 0.55 * len(order)), 2.6))
    data = [d.loc[d["network"] == n, "value"].to_numpy(float) for n in order]
    ax.boxplot(data, positions=np.arange(len(order)), widths=0.4, showfliers=False,
               patch_artist=True, boxprops={"facecolor": "0.88", "edgecolor": "0.55"},
               medianprops={"color": "0.35"}, whiskerprops={"color": "0.55"},
               capprops={"color": "0.55"}, zorder=1)
    for k, net in enumerate(order):
        g = d[d["network"] == net]
        vals = g["value"].to_numpy(float)
        x = k + _spread(vals)
        top = g["top"].to_numpy(bool)
        ax.scatter(x[~top], vals[~top], s=14, color=palette[net], alpha=0.75, edgecolor="none", zorder=2)
        ax.scatter(x[top], vals[top], s=48, color=palette[net], alpha=0.95, edgecolor="0.15", lw=0.8,
                   zorder=3)
        if show_names:
            for xi, vi, nm in zip(x[top], vals[top], g.loc[g["top"], "name"]):
                ax.annotate(str(nm), (xi, vi), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xticks(np.arange(len(order)), order, rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric), fontsize=9)
    if metric == "neg":
        ax.invert_yaxis()
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_importance_grid(
    summaries: Mapping[str, pd.DataFrame],
    importance: Mapping[str, pd.DataFrame],
    *,
    n_top: int = 5,
) -> plt.Figure:
    """A row per participant: top-``n_top`` lollipop, then importance, Σ positive, Σ negative by network.

    Parameters
    ----------
    summaries : mapping of str to DataFrame
        :func:`~deipp_core.analyses.importance.network_summary` per participant (display name).
    importance : mapping of str to DataFrame
        :attr:`~deipp_core.analyses.importance.RegionImportance.table` per participant.
    n_top : int, default=5

    Returns
    -------
    Figure
    """
    names = list(summaries)
    orders = [list(summaries[n].attrs.get("network_order", [])) for n in names]
    all_nets = list(dict.fromkeys(sum(orders, [])))
    palette = network_palette(all_nets)
    width = max(5.0, 0.42 * len(all_nets))
    fig, axes = plt.subplots(len(names), 4, figsize=(3.2 + 3 * width, 2.9 * len(names)),
                             gridspec_kw={"width_ratios": [0.8, 1, 1, 1]}, squeeze=False)
    for row, name in zip(axes, names):
        plot_top_regions(importance[name], n=n_top, ax=row[0], title=f"{name}: top {n_top}")
        for ax, metric in zip(row[1:], ("imp", "pos", "neg")):
            plot_network_metric(summaries[name], metric, ax=ax, palette=palette)
    fig.tight_layout()
    return fig


def plot_generalization(
    table: pd.DataFrame, *, metrics: Sequence[str] = ("r", "auc"), axes=None
) -> plt.Figure:
    """Within- vs cross-participant performance per level: a column per test participant, a row per
    metric (paper Fig. 3e–f).

    Parameters
    ----------
    table : DataFrame
        :func:`~deipp_core.analyses.cross_participant.generalization_table` (columns ``train``,
        ``test``, ``test_kind``, ``level`` and, per metric, ``<m>``, ``<m>_ci_low``, ``<m>_ci_high``).
    metrics : sequence of {"r", "auc"}, default=("r", "auc")
    axes : array of Axes of shape (len(metrics), n_tests), optional

    Returns
    -------
    Figure
        Filled circles: the participant's own held-out predictions; open squares: the other
        participant's final model; bars: 95 % bootstrap CIs; dashed line: chance.
    """
    tests = list(dict.fromkeys(table["test"]))
    if axes is None:
        fig, axes = plt.subplots(len(metrics), len(tests), figsize=(3.4 * len(tests), 2.7 * len(metrics)),
                                 squeeze=False, sharey="row")
    else:
        axes = np.asarray(axes, dtype=object).reshape(len(metrics), len(tests))
        fig = axes[0, 0].figure
    for m_row, metric in enumerate(metrics):
        null = 0.5 if metric == "auc" else 0.0
        for ax, test in zip(axes[m_row], tests):
            d = table[table["test"] == test]
            for kind, offset, marker, face in (("within", -0.15, "o", True), ("cross", 0.15, "s", False)):
                for _, row in d[d["test_kind"] == kind].iterrows():
                    x = LEVELS.index(row["level"]) + offset
                    color = LEVEL_COLORS[row["level"]]
                    err = [[row[metric] - row[f"{metric}_ci_low"]], [row[f"{metric}_ci_high"] - row[metric]]]
                    ax.errorbar(x, row[metric], yerr=err, fmt=marker, color=color,
                                mfc=color if face else "white", mew=1.5, ms=7, capsize=2)
            ax.axhline(null, color="0.5", ls="--", lw=0.8)
            ax.set_xticks(range(len(LEVELS)), [LEVEL_LABELS[lv] for lv in LEVELS])
            if m_row == 0:
                trains = ", ".join(dict.fromkeys(d.loc[d["test_kind"] == "cross", "train"]))
                ax.set_title(f"Tested on {test}\n● own model   □ model of {trains}", fontsize=9)
            ax.spines[["top", "right"]].set_visible(False)
        axes[m_row, 0].set_ylabel("AUC" if metric == "auc" else "Pearson r")
    fig.tight_layout()
    return fig


def plot_feature_overlap(overlap: pd.DataFrame, *, statistic: str = "dice", ax=None) -> plt.Figure:
    """Observed overlap of the two models' top features against the overlap expected by chance.

    Parameters
    ----------
    overlap : DataFrame
        :func:`~deipp_core.analyses.cross_participant.feature_overlap` result.
    statistic : {"dice", "jaccard", "shared"}, default="dice"
    ax : Axes, optional

    Returns
    -------
    Figure
    """
    d = overlap[overlap["statistic"] == statistic].reset_index(drop=True)
    fig, ax = _axes(ax, (4.2, 0.5 * len(d) + 1.0))
    y = np.arange(len(d))[::-1]
    ax.barh(y, d["value"], color="0.35", height=0.55, label="observed")
    ax.scatter(d["chance"], y, marker="|", s=260, color="tab:red", lw=2, zorder=3, label="chance")
    ax.set_yticks(y, d["measure"], fontsize=8)
    ax.set_xlabel({"dice": "Dice overlap", "jaccard": "Jaccard overlap"}.get(statistic, statistic))
    if statistic in ("dice", "jaccard"):
        ax.set_xlim(0, 1)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
