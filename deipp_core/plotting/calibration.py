"""Figures of the null calibration: null distributions, p-value ECDFs, false-positive rates.

They take the tables of :func:`deipp_core.analyses.calibration.null_calibration` and
:func:`~deipp_core.analyses.calibration.calibration_summary`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from deipp_core.plotting._style import LEVEL_COLORS, LEVEL_LABELS

__all__ = ["plot_null_distributions", "plot_pvalue_ecdf", "plot_rejection_rates"]

_LEVELS = ("1min", "2min", "run", "session", "within_run", "within_session")
_COLORS = {**LEVEL_COLORS, "within_run": (0.35, 0.35, 0.35), "within_session": (0.65, 0.65, 0.65)}
_LABELS = {**LEVEL_LABELS, "within_run": "Within run", "within_session": "Within session"}
_NULL = {"r": 0.0, "auc": 0.5}
_STAT_LABEL = {"r": "r", "auc": "AUC"}


def _levels(table: pd.DataFrame, stat: str) -> list[str]:
    present = [lv for lv in _LEVELS if lv in set(table["level"])]
    return [lv for lv in present if table.loc[table["level"] == lv, stat].notna().any()]


def plot_null_distributions(table: pd.DataFrame) -> plt.Figure:
    """Histograms of the null r (top row) and AUC (bottom row) per level, both participants pooled.

    Parameters
    ----------
    table : DataFrame
        Columns ``level``, ``r``, ``auc`` (from :func:`~deipp_core.analyses.calibration.null_calibration`).

    Returns
    -------
    Figure
        Dashed line: the value of no effect (r = 0, AUC = 0.5); solid line: the null mean.
    """
    levels = _levels(table, "r")
    fig, axes = plt.subplots(2, len(levels), figsize=(2.3 * len(levels), 4.6), squeeze=False)
    for row, stat in enumerate(("r", "auc")):
        for col, level in enumerate(levels):
            ax = axes[row, col]
            values = table.loc[table["level"] == level, stat].dropna().to_numpy(float)
            if values.size == 0:
                ax.set_axis_off()
                continue
            lo, hi = (-1, 1) if stat == "r" else (0, 1)
            ax.hist(values, bins=np.linspace(lo, hi, 21), color=_COLORS[level], edgecolor="white")
            ax.axvline(_NULL[stat], color="0.3", ls="--", lw=1)
            ax.axvline(values.mean(), color="k", lw=1.5)
            ax.set_xlim(lo, hi)
            ax.set_title(f"{_LABELS[level]}\nmean {_STAT_LABEL[stat]} = {values.mean():.2f}", fontsize=9)
            ax.set_xlabel(f"null {_STAT_LABEL[stat]}")
            ax.spines[["top", "right"]].set_visible(False)
        axes[row, 0].set_ylabel("data sets × participants")
    fig.tight_layout()
    return fig


def plot_pvalue_ecdf(table: pd.DataFrame, *, alpha: float = 0.05) -> plt.Figure:
    """Empirical CDF of the bootstrap p-values per level against the uniform distribution.

    A calibrated test follows the diagonal; a curve above it rejects too often (liberal), below it
    too rarely (conservative). The dotted line marks ``alpha``.

    Parameters
    ----------
    table : DataFrame
        Columns ``level``, ``r_p``, ``auc_p``.
    alpha : float, default=0.05

    Returns
    -------
    Figure
    """
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.5))
    for ax, stat in zip(axes, ("r", "auc")):
        for level in _levels(table, f"{stat}_p"):
            p = np.sort(table.loc[table["level"] == level, f"{stat}_p"].dropna().to_numpy(float))
            ecdf = np.arange(1, p.size + 1) / p.size
            ax.step(np.r_[0, p], np.r_[0, ecdf], where="post", color=_COLORS[level], lw=1.8,
                    label=_LABELS[level])
        ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="uniform")
        ax.axvline(alpha, color="0.5", ls=":", lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel(f"bootstrap p of {_STAT_LABEL[stat]}")
        ax.set_ylabel("share of null tests ≤ p")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig


def plot_rejection_rates(summary: pd.DataFrame, *, alpha: float = 0.05) -> plt.Figure:
    """Share of null tests with p < ``alpha`` per level, with exact binomial 95 % intervals.

    Parameters
    ----------
    summary : DataFrame
        From :func:`~deipp_core.analyses.calibration.calibration_summary` (pooled over participants).
    alpha : float, default=0.05

    Returns
    -------
    Figure
        Dots with bars: all rejections; open diamonds: rejections with an effect in the paper's
        direction (r > 0, AUC > 0.5), which a calibrated two-sided test makes at about ``alpha``/2.
    """
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2), sharey=True)
    for ax, stat in zip(axes, ("r", "auc")):
        d = summary[summary[f"{stat}_reject_rate"].notna()]
        x = np.arange(len(d))
        for i, row in enumerate(d.itertuples(index=False)):
            rate = getattr(row, f"{stat}_reject_rate")
            lo, hi = getattr(row, f"{stat}_reject_ci_low"), getattr(row, f"{stat}_reject_ci_high")
            ax.errorbar(i, rate, yerr=[[rate - lo], [hi - rate]], fmt="o", color=_COLORS[row.level],
                        capsize=3, ms=6)
            ax.plot(i + 0.2, getattr(row, f"{stat}_pos_reject_rate"), "D", mfc="none",
                    mec=_COLORS[row.level], ms=5)
        ax.axhline(alpha, color="0.3", ls="--", lw=1)
        ax.axhline(alpha / 2, color="0.6", ls=":", lw=1)
        ax.set_xticks(x, [_LABELS[lv] for lv in d["level"]], rotation=30, ha="right", fontsize=8)
        ax.set_title(f"p < {alpha:g} for {_STAT_LABEL[stat]}", fontsize=10)
        ax.set_ylim(0, 1)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel("share of null tests")
    fig.tight_layout()
    return fig
