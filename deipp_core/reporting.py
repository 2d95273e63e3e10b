"""Text and tables for the book: data-source statements, formatted metric tables, summaries.

Numbers shown in the book's prose come from these functions (glued into the page), never typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from deipp_core.data.dataset import Dataset
from deipp_core.profiles import Profile

if TYPE_CHECKING:  # the Styler module needs jinja2, imported only when a table is rendered
    from pandas.io.formats.style import Styler

__all__ = ["data_source_admonition", "format_metrics", "format_ci", "format_table", "prediction_summary"]

LEVEL_NAMES = {"1min": "1-min bins", "2min": "2-min bins", "run": "runs", "session": "sessions"}


def data_source_admonition(dataset: Dataset, profile: Profile) -> str:
    """A MyST admonition saying which data (and how many resamples) a page's numbers come from."""
    n_sessions = ", ".join(f"sub-{k}: {p.n_sessions} sessions" for k, p in sorted(dataset.participants.items()))
    null = any(bool(truth.get("meta", {}).get("null")) for truth in dataset.ground_truth.values())
    if dataset.is_simulated:
        head = ":::{admonition} Data: digital twin — SIMULATED data\n:class: warning\n"
        signal = ("no pain signal at all (null mode), so any apparent prediction is chance" if null
                  else "a known, planted pain signal")
        body = (f"Every number and figure on this page was computed from **simulated data** "
                f"({dataset.description}; {n_sessions}). They show how the pipeline behaves on data with "
                f"{signal}; they are **not** the study's results.")
    else:
        head = ":::{admonition} Data: real data set\n:class: important\n"
        body = f"Computed from {dataset.description} ({n_sessions})."
    return (f"{head}{body} Profile `{profile.name}`: {profile.n_boot:,} bootstrap resamples, "
            f"{profile.n_perm:,} permutations, {profile.n_trainsize_reps} training-size repetitions.\n:::")


def format_ci(value: float, low: float, high: float, p: float | None = None, digits: int = 2) -> str:
    """``0.52 [0.41, 0.60]`` with an optional ``p = …``."""
    text = f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    if p is not None:
        text += f", p = {p:.2g}" if p >= 1e-3 else ", p < 0.001"
    return text


def format_table(table: pd.DataFrame, digits: int = 3, missing: str = "—") -> Styler:
    """A table ready for the page: floats to ``digits`` decimals, undefined values shown as ``missing``.

    Analyses mark a statistic that does not apply with NaN (an AUC for the mean within-run r, which is
    a correlation and has none; a p-value for an overlap that has no test). On the page that reads as
    "not defined", not as a numerical failure, so it is shown as a dash.

    Parameters
    ----------
    table : pandas.DataFrame
        The table; its values are not changed.
    digits : int, default=3
        Decimals shown for floating-point columns; integer columns are shown as they are.
    missing : str, default="—"
        What is shown for NaN.

    Returns
    -------
    pandas.io.formats.style.Styler
        Renders as HTML in a notebook and in the book, styled like a DataFrame (``class="dataframe"``).
    """
    if digits < 0:
        raise ValueError(f"digits must be >= 0, got {digits}")
    # the "dataframe" class gives it the book theme's table style, like a DataFrame shown directly
    return table.style.format(precision=digits, na_rep=missing).set_table_attributes('class="dataframe"')


def format_metrics(metrics: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One readable table of :func:`deipp_core.evaluation.evaluate` results, a block per participant."""
    blocks = {}
    for name, m in metrics.items():
        rows = []
        for _, row in m.iterrows():
            rows.append({
                "level": LEVEL_NAMES.get(row["level"], row["level"]),
                "units": int(row["n_units"]),
                "r [95% CI]": format_ci(row["r"], row["r_ci_low"], row["r_ci_high"], row["r_p"]),
                "AUC [95% CI]": format_ci(row["auc"], row["auc_ci_low"], row["auc_ci_high"], row["auc_p"]),
                "R²": f"{row['r2']:.2f}",
                "MAE": f"{row['mae']:.3f}",
            })
        blocks[name] = pd.DataFrame(rows).set_index("level")
    return pd.concat(blocks, names=["participant", "level"])


def prediction_summary(metrics: Mapping[str, pd.DataFrame], n_sessions: Mapping[str, int]) -> str:
    """One sentence per participant with the range of r and AUC over the four levels."""
    parts = []
    for name, m in metrics.items():
        parts.append(
            f"{name} ({n_sessions[name]} sessions): r = {m['r'].min():.2f}–{m['r'].max():.2f}, "
            f"AUC = {m['auc'].min():.2f}–{m['auc'].max():.2f}"
        )
    return "; ".join(parts) + "."
