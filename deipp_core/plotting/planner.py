"""Study-planner figures: the fitted saturating curve and the probability of reaching a target.

The functions draw a :class:`deipp_core.analyses.planner.SaturatingCurve` (its observed means, its
fitted curve and bootstrap band, and the probabilities it implies); they fit nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from deipp_core.analyses.planner import SaturatingCurve
from deipp_core.plotting._style import LEVEL_COLORS, LEVEL_LABELS

__all__ = ["plot_planner_curve", "plot_reach_probability", "plot_minutes_curves", "plot_planner_grid"]

#: Colours of the target lines in the probability panel.
_TARGET_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e")


def _axes(ax, size=(4.2, 3.2)):
    if ax is None:
        fig, ax = plt.subplots(figsize=size)
        return fig, ax
    return ax.figure, ax


def _horizon(curve: SaturatingCurve, max_sessions: int | None) -> int:
    return int(max_sessions) if max_sessions is not None else max(10, 4 * curve.max_observed)


def plot_planner_curve(
    curve: SaturatingCurve,
    *,
    level: str = "1min",
    ax=None,
    max_sessions: int | None = None,
    ci: float = 0.95,
    title: str | None = None,
) -> plt.Figure:
    """Mean held-out r vs number of sessions: measurements, fitted curve, bootstrap band, asymptote.

    Full sessions only. Points are the mean r over repetitions (± 1.96·SD/√reps), small dots the
    repetitions; the fitted curve is solid over the measured sizes and dashed where it extrapolates.

    Parameters
    ----------
    curve : SaturatingCurve
    level : str, default="1min"
    ax : Axes, optional
    max_sessions : int, optional
        Right end of the x axis (default: 4 × the largest size measured, at least 10).
    ci : float, default=0.95
        Coverage of the band.
    title : str, optional

    Returns
    -------
    Figure
    """
    fig, ax = _axes(ax)
    color = LEVEL_COLORS[level]
    T = curve.full_minutes
    obs = curve.observed[(curve.observed["level"] == level)
                         & np.isclose(curve.observed["minutes_per_session"], T)]
    reps = curve.reps[(curve.reps["level"] == level) & np.isclose(curve.reps["minutes_per_session"], T)]
    ax.scatter(reps["n_session"], reps["r"], s=6, color=color, alpha=0.35, lw=0, zorder=1)
    ax.errorbar(obs["n_session"], obs["mean_r"],
                yerr=np.vstack([obs["mean_r"] - obs["ci_lower"], obs["ci_upper"] - obs["mean_r"]]),
                fmt="o", ms=4, color=color, ecolor=color, elinewidth=1, capsize=0, zorder=3,
                label="measured (mean ± 95 % CI)")
    horizon = _horizon(curve, max_sessions)
    m = np.linspace(1, horizon, 400)
    lo, hi = curve.band(m, level=level, ci=ci)
    ax.fill_between(m, lo, hi, color=color, alpha=0.18, lw=0, label=f"{100 * ci:.0f} % bootstrap band")
    fit = curve.predict(m, level=level)
    inside = m <= curve.max_observed
    ax.plot(m[inside], fit[inside], color="0.15", lw=1.5, label="fitted curve")
    ax.plot(m[~inside], fit[~inside], color="0.15", lw=1.5, ls="--", label="extrapolation")
    K0 = float(curve.params.loc[level, "K0"])
    if not bool(curve.params.loc[level, "K0_at_bound"]):
        ax.axhline(K0, color="0.4", lw=0.8, ls=":", label=f"asymptote r = {K0:.2f}")
    ax.axhline(0, color="0.7", lw=0.6, zorder=0)
    ax.set_xlim(0, horizon)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training sessions")
    ax.set_ylabel(f"held-out r ({LEVEL_LABELS[level]} level)")
    ax.legend(frameon=False, fontsize=7, loc="best")
    ax.set_title(title if title is not None else f"{curve.participant}: accuracy vs sessions", fontsize=9)
    return fig


def plot_reach_probability(
    curve: SaturatingCurve,
    targets: Sequence[float] = (0.2, 0.3, 0.4),
    *,
    probability: float = 0.8,
    level: str = "1min",
    ax=None,
    max_sessions: int | None = None,
    ci: float = 0.95,
    title: str | None = None,
) -> plt.Figure:
    """P(r ≥ target) vs number of full sessions, one line (and bootstrap band) per target.

    Parameters
    ----------
    curve : SaturatingCurve
    targets : sequence of float, default=(0.2, 0.3, 0.4)
    probability : float, default=0.8
        Drawn as a horizontal line (the planning criterion).
    level : str, default="1min"
    ax : Axes, optional
    max_sessions : int, optional
    ci : float, default=0.95
    title : str, optional

    Returns
    -------
    Figure
    """
    fig, ax = _axes(ax)
    horizon = _horizon(curve, max_sessions)
    m = np.arange(1, horizon + 1, dtype=float)
    alpha = (1 - ci) / 2
    for i, target in enumerate(targets):
        color = _TARGET_COLORS[i % len(_TARGET_COLORS)]
        boot = curve.prob_reach(target, m, level=level, boot=True)
        ax.fill_between(m, np.quantile(boot, alpha, axis=0), np.quantile(boot, 1 - alpha, axis=0),
                        color=color, alpha=0.15, lw=0)
        ax.plot(m, curve.prob_reach(target, m, level=level), color=color, lw=1.5, label=f"r ≥ {target:g}")
    ax.axhline(probability, color="0.3", lw=0.8, ls="--")
    ax.axvline(curve.max_observed, color="0.6", lw=0.8, ls=":")
    ax.text(curve.max_observed, 1.02, " largest measured", fontsize=7, color="0.4", va="bottom")
    ax.set_ylim(0, 1.08)
    ax.set_xlim(0, horizon)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training sessions")
    ax.set_ylabel("probability of reaching the target")
    ax.legend(frameon=False, fontsize=7, loc="best")
    ax.set_title(title if title is not None else f"{curve.participant}: P(r ≥ target)", fontsize=9)
    return fig


def plot_minutes_curves(
    curve: SaturatingCurve,
    *,
    level: str = "1min",
    ax=None,
    title: str | None = None,
) -> plt.Figure:
    """Mean r vs total minutes of training data, one colour per minutes-per-session.

    If only total minutes mattered (``K1 = 0``) the fitted lines would coincide; the more they fan
    out, the more the number of sessions matters by itself.

    Parameters
    ----------
    curve : SaturatingCurve
        A minutes-aware curve (``form == "sessions_minutes"``); a sessions-only curve draws its single
        series.
    level : str, default="1min"
    ax : Axes, optional
    title : str, optional

    Returns
    -------
    Figure
    """
    fig, ax = _axes(ax)
    obs = curve.observed[curve.observed["level"] == level]
    minutes = np.unique(obs["minutes_per_session"].to_numpy(float))
    shades = plt.get_cmap("viridis")(np.linspace(0.15, 0.85, max(len(minutes), 1)))
    for T, shade in zip(minutes, shades):
        d = obs[np.isclose(obs["minutes_per_session"], T)].sort_values("n_session")
        ax.errorbar(d["n_session"] * T, d["mean_r"],
                    yerr=np.vstack([d["mean_r"] - d["ci_lower"], d["ci_upper"] - d["mean_r"]]),
                    fmt="o", ms=3.5, color=shade, elinewidth=0.8, capsize=0)
        m = np.linspace(d["n_session"].min(), d["n_session"].max(), 200)
        ax.plot(m * T, curve.predict(m, level=level, minutes=T), color=shade, lw=1.4,
                label=f"{T:g} min per session")
    ax.axhline(0, color="0.7", lw=0.6, zorder=0)
    ax.set_xscale("log")
    ax.set_xlabel("total minutes of training data")
    ax.set_ylabel(f"held-out r ({LEVEL_LABELS[level]} level)")
    ax.legend(frameon=False, fontsize=7, loc="best")
    ax.set_title(title if title is not None else f"{curve.participant}: sessions or minutes?", fontsize=9)
    return fig


def plot_planner_grid(
    curves: Mapping[str, SaturatingCurve],
    targets: Sequence[float] = (0.2, 0.3, 0.4),
    *,
    probability: float = 0.8,
    level: str = "1min",
    max_sessions: int | None = None,
) -> plt.Figure:
    """One row per participant: fitted curve, probability of reaching each target, and (when the
    curve is minutes-aware) accuracy vs total minutes.

    Parameters
    ----------
    curves : mapping of str to SaturatingCurve
        Row label → curve.
    targets : sequence of float, default=(0.2, 0.3, 0.4)
    probability : float, default=0.8
    level : str, default="1min"
    max_sessions : int, optional
        Right end of the x axes (default per curve).

    Returns
    -------
    Figure
    """
    if not curves:
        raise ValueError("plot_planner_grid needs at least one curve")
    minutes_aware = any(c.form == "sessions_minutes" for c in curves.values())
    n_col = 3 if minutes_aware else 2
    fig, axes = plt.subplots(len(curves), n_col, figsize=(4.0 * n_col, 3.3 * len(curves)), squeeze=False)
    for row, (name, curve) in zip(axes, curves.items()):
        plot_planner_curve(curve, level=level, ax=row[0], max_sessions=max_sessions,
                           title=f"{name}: accuracy vs sessions")
        plot_reach_probability(curve, targets, probability=probability, level=level, ax=row[1],
                               max_sessions=max_sessions, title=f"{name}: P(r ≥ target)")
        if minutes_aware:
            if curve.form == "sessions_minutes":
                plot_minutes_curves(curve, level=level, ax=row[2], title=f"{name}: sessions or minutes?")
            else:
                row[2].set_axis_off()
    fig.tight_layout()
    return fig
