"""Figures of the decoder comparison: accuracy per level with CIs, paired differences, cost.

They draw the tables of :class:`deipp_core.analyses.decoder_comparison.DecoderComparison`
(``table`` and ``paired``); they compute nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from deipp_core.plotting._style import LEVEL_LABELS

__all__ = ["DECODER_COLORS", "DECODER_MARKERS", "plot_decoder_comparison", "plot_decoder_differences"]

_LEVELS = ("1min", "2min", "run", "session")
_DECODERS = ("lassopcr", "pcr", "ridge", "svr", "cpm")
_LABELS = {"lassopcr": "LASSO-PCR", "pcr": "PCR", "ridge": "Ridge", "svr": "Linear SVR", "cpm": "CPM"}

#: One colour per decoder (LASSO-PCR, the paper's, in black).
DECODER_COLORS: dict[str, str] = {
    "lassopcr": "#000000", "pcr": "#0072B2", "ridge": "#009E73", "svr": "#D55E00", "cpm": "#CC79A7",
}

#: One marker per decoder.
DECODER_MARKERS: dict[str, str] = {"lassopcr": "o", "pcr": "s", "ridge": "D", "svr": "^", "cpm": "v"}

_NULL = {"r": 0.0, "auc": 0.5}
_STAT_LABEL = {"r": "r", "auc": "AUC"}


def _check(table: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in ("participant", "decoder", "level", *cols) if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks column(s) {missing}; pass DecoderComparison.{what}")


def _order(table: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(table["decoder"]))
    return [d for d in _DECODERS if d in present] + [d for d in present if d not in _DECODERS]


def _dodged(ax, table: pd.DataFrame, decoders: list[str], value: str, low: str, high: str) -> None:
    levels = [lv for lv in _LEVELS if lv in set(table["level"])]
    width = 0.7 / max(len(decoders), 1)
    for i, dec in enumerate(decoders):
        d = table[table["decoder"] == dec].set_index("level").reindex(levels)
        x = np.arange(len(levels)) + (i - (len(decoders) - 1) / 2) * width
        v = d[value].to_numpy(float)
        err = np.vstack([v - d[low].to_numpy(float), d[high].to_numpy(float) - v])
        ax.errorbar(x, v, yerr=np.nan_to_num(np.abs(err)), color=DECODER_COLORS.get(dec, "0.4"),
                    marker=DECODER_MARKERS.get(dec, "o"), ms=4.5, lw=0, elinewidth=1.1, capsize=0,
                    label=_LABELS.get(dec, dec))
    ax.set_xticks(np.arange(len(levels)), [LEVEL_LABELS[lv] for lv in levels])
    ax.spines[["top", "right"]].set_visible(False)


def plot_decoder_comparison(table: pd.DataFrame, *, participants: Sequence[str] | None = None) -> plt.Figure:
    """r and AUC per level and decoder with 95 % CIs, and the cost of each decoder.

    One row per participant: held-out r (left) and AUC (middle) at the four levels, one marker per
    decoder with its hierarchical-bootstrap CI; wall time of the nested cross-validation per decoder
    (right, log scale), labelled with the number of solver runs.

    Parameters
    ----------
    table : DataFrame
        :attr:`DecoderComparison.table` of one or more participants (concatenated).
    participants : sequence of str, optional
        Participants to show, in this order (default: all in the table).

    Returns
    -------
    Figure
    """
    _check(table, ("r", "r_ci_low", "r_ci_high", "auc", "auc_ci_low", "auc_ci_high", "seconds",
                   "n_fits"), "table")
    parts = list(dict.fromkeys(table["participant"])) if participants is None else list(participants)
    decoders = _order(table)
    fig, axes = plt.subplots(len(parts), 3, figsize=(11.5, 3.1 * len(parts)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.25, 1.25, 1.0]})
    for row, part in enumerate(parts):
        t = table[table["participant"] == part]
        for col, stat in enumerate(("r", "auc")):
            ax = axes[row, col]
            _dodged(ax, t, decoders, stat, f"{stat}_ci_low", f"{stat}_ci_high")
            ax.axhline(_NULL[stat], color="0.5", ls="--", lw=0.8, zorder=0)
            ax.set_ylim(*((-1.05, 1.05) if stat == "r" else (-0.02, 1.02)))
            ax.set_ylabel(f"Participant {part}\nheld-out {_STAT_LABEL[stat]}" if col == 0
                          else f"held-out {_STAT_LABEL[stat]}")
        cost = t.drop_duplicates("decoder").set_index("decoder").reindex(decoders)
        ax = axes[row, 2]
        y = np.arange(len(decoders))[::-1]
        ax.barh(y, cost["seconds"].to_numpy(float), color=[DECODER_COLORS.get(d, "0.4") for d in decoders],
                height=0.6)
        ax.set_yticks(y, [_LABELS.get(d, d) for d in decoders])
        ax.set_xscale("log")
        for yy, (sec, nf) in zip(y, cost[["seconds", "n_fits"]].to_numpy()):
            ax.text(sec * 1.15, yy, f"{sec:.2g} s, {int(nf):,} fits", va="center", fontsize=8)
        hi = float(np.nanmax(cost["seconds"].to_numpy(float)))
        lo = float(np.nanmin(cost["seconds"].to_numpy(float)))
        ax.set_xlim(lo / 2, hi * 12)
        ax.set_xlabel("wall time of nested LOSO (s)")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_title("Pearson r", fontsize=10)
    axes[0, 1].set_title("AUC (high vs low pain)", fontsize=10)
    axes[0, 2].set_title("Cost", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(decoders), frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.06 if len(parts) == 1 else 0.035, 1, 1))
    return fig


def plot_decoder_differences(
    paired: pd.DataFrame, *, participants: Sequence[str] | None = None, stat: str = "r"
) -> plt.Figure:
    """Each decoder minus LASSO-PCR per level, with paired-bootstrap 95 % CIs.

    Parameters
    ----------
    paired : DataFrame
        :attr:`DecoderComparison.paired` of one or more participants.
    participants : sequence of str, optional
        Participants to show (one panel each).
    stat : {"r", "auc"}, default="r"

    Returns
    -------
    Figure
        Above the dashed zero line a decoder beats LASSO-PCR on these data.
    """
    col = f"delta_{stat}"
    _check(paired, (col, f"{col}_ci_low", f"{col}_ci_high"), "paired")
    parts = list(dict.fromkeys(paired["participant"])) if participants is None else list(participants)
    decoders = _order(paired)
    fig, axes = plt.subplots(1, len(parts), figsize=(max(4.6 * len(parts), 6.0), 3.2), squeeze=False,
                             sharey=True)
    for i, part in enumerate(parts):
        ax = axes[0, i]
        _dodged(ax, paired[paired["participant"] == part], decoders, col, f"{col}_ci_low", f"{col}_ci_high")
        ax.axhline(0, color="0.4", ls="--", lw=0.9, zorder=0)
        ax.set_title(f"Participant {part}", fontsize=10)
        if i == 0:
            ax.set_ylabel(f"{_STAT_LABEL[stat]} minus LASSO-PCR's")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(decoders), frameon=False)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    return fig
