"""The ledger figure: the paper's reported ranges beside the values this build computed."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd

from deipp_core.analyses.ledger import PAPER_CLAIMS
from deipp_core.plotting._style import LEVEL_COLORS, LEVEL_LABELS
from deipp_core.plotting.prediction import PUBLISHED_LABEL

__all__ = ["plot_ledger_ranges"]


def plot_ledger_ranges(metrics: Mapping[str, pd.DataFrame], published: pd.DataFrame | None = None) -> plt.Figure:
    """r and AUC per participant: the paper's range (grey bar) and this build's four levels (dots).

    Parameters
    ----------
    metrics : mapping of str to DataFrame
        Participant label (``"01"``) → :func:`deipp_core.evaluation.evaluate` table.
    published : DataFrame, optional
        :func:`deipp_core.data.source_data.published_metrics` (values recomputed from the published
        source data), drawn as open circles labelled "published (source data)".

    Returns
    -------
    Figure
    """
    ranges = {c.key: c.paper_range for c in PAPER_CLAIMS if c.paper_range is not None}
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.9 + 0.8 * len(metrics)), sharey=True)
    labels = sorted(metrics)
    for ax, stat, name in zip(axes, ("r", "auc"), ("Correlation r", "AUC (high vs low pain)")):
        for i, label in enumerate(labels):
            rng = ranges.get(f"{stat}_{label}")
            if rng is not None:
                ax.plot(rng, [i, i], color="0.75", lw=10, solid_capstyle="butt", zorder=0,
                        label="paper (abstract)" if i == 0 else None)
            m = metrics[label].set_index("level")
            for level in m.index:
                ax.scatter(m.loc[level, stat], i, s=45, color=LEVEL_COLORS[level], zorder=2,
                           label=LEVEL_LABELS[level] if i == 0 else None)
            if published is not None:
                p = published[published["participant"] == label]
                ax.scatter(p[stat], [i] * len(p), s=70, facecolor="none", edgecolor="k", zorder=3,
                           label=PUBLISHED_LABEL if i == 0 else None)
        ax.axvline(0.5 if stat == "auc" else 0.0, color="0.5", ls="--", lw=1)
        ax.set_title(name, fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_yticks(range(len(labels)), [f"Participant {int(label)}" for label in labels])
    axes[0].set_ylim(-0.6, len(labels) - 0.4)
    axes[0].invert_yaxis()
    axes[1].legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig
