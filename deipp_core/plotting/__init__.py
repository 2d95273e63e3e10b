"""Figures of the paper. Each function draws into given axes (or a new figure) and returns the Figure;
plots never compute statistics — they take the tables that :mod:`deipp_core.analyses` return."""

from deipp_core.plotting._style import LEVEL_COLORS, LEVEL_LABELS, data_source_note
from deipp_core.plotting.prediction import plot_level_scatter, plot_prediction_grid, plot_roc, plot_within

__all__ = [
    "LEVEL_COLORS",
    "LEVEL_LABELS",
    "data_source_note",
    "plot_level_scatter",
    "plot_prediction_grid",
    "plot_roc",
    "plot_within",
]
