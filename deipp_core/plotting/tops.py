"""Figures of the ToPS comparison (paper §13: ToPS scatter and ROC per level) and its demonstration.

The per-level scatter and ROC are the main analysis's figures
(:func:`~deipp_core.plotting.prediction.plot_level_scatter`,
:func:`~deipp_core.plotting.prediction.plot_roc`) drawn from a
:class:`~deipp_core.analyses.tops.TopsResult`; :func:`plot_score_trace` shows one run's frame-wise
score beside the rating.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from deipp_core.plotting.prediction import plot_level_scatter, plot_roc

__all__ = ["plot_tops_grid", "plot_score_trace"]


def plot_tops_grid(results: Mapping[str, object]) -> plt.Figure:
    """One row per participant: score vs actual pain at the four levels, then the ROC curves.

    Parameters
    ----------
    results : mapping of str to TopsResult
        Row titles → results of :func:`deipp_core.analyses.tops.run_tops`.

    Returns
    -------
    Figure
    """
    fig, axes = plt.subplots(len(results), 5, figsize=(14.5, 3.2 * len(results)), squeeze=False)
    for row, (name, res) in zip(axes, results.items()):
        plot_level_scatter(res.levels, res.metrics, axes=row[:4])
        plot_roc(res.roc, res.metrics, ax=row[4])
        row[4].set_title("High vs low pain (median split)", fontsize=10)
        row[0].set_ylabel(f"{name}\n{res.label} score", fontsize=10)
    fig.tight_layout()
    return fig


def plot_score_trace(result, session: str | None = None, run: int | None = None, *, ax=None) -> plt.Figure:
    """Frame-wise score and rating of one run, both z-scored over the run's kept frames.

    Parameters
    ----------
    result : TopsResult
    session, run : optional
        The run to show; by default the first run of ``result.frames``.
    ax : Axes, optional

    Returns
    -------
    Figure
    """
    frames = result.frames
    if session is None or run is None:
        session, run = frames.iloc[0][["session", "run"]]
    d = frames[(frames["session"] == session) & (frames["run"] == int(run))]
    if d.empty:
        raise ValueError(f"no frames for session {session!r} run {run!r} in this result")
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 2.8))
    fig = ax.figure

    def z(v):
        v = np.asarray(v, dtype=float)
        sd = v.std()
        return (v - v.mean()) / sd if sd > 0 else v - v.mean()

    minutes = d["time_s"].to_numpy(float) / 60
    ax.plot(minutes, z(d["rating"]), color="0.2", lw=1.5, label="Actual pain (rating)")
    ax.plot(minutes, z(d["score"]), color=(232 / 255, 77 / 255, 138 / 255), lw=0.8, alpha=0.8,
            label=f"{result.label} score (DCC)")
    ax.set_xlabel("Time in run (min, kept frames)")
    ax.set_ylabel("z-score")
    who = int(result.participant) if str(result.participant).isdigit() else result.participant
    ax.set_title(f"Participant {who}, session {session}, run {int(run)}", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    ax.spines[["top", "right"]].set_visible(False)
    return fig
