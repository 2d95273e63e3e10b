"""The ledger: every quantitative claim of the paper's abstract beside the number this build computed.

:data:`PAPER_CLAIMS` holds the values *as the paper reports them* (its abstract; the paper's numbers
are the reference, so they are written here once); :func:`build_ledger` fills in the values computed
from the results of the analyses, names the data they come from and the chapter that computes them,
and — when the published figure source data are available (:mod:`deipp_core.data.source_data`) —
recomputes the paper's r and AUC from those tables as a third column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deipp_core import stats
from deipp_core.data.dataset import Dataset
from deipp_core.data.source_data import UNITS, SourceData

__all__ = ["Claim", "PAPER_CLAIMS", "build_ledger", "published_metrics"]


@dataclass(frozen=True)
class Claim:
    """One quantitative claim of the abstract.

    Attributes
    ----------
    key : str
    claim : str
        The claim, in the abstract's words.
    paper : str
        The value the paper reports.
    chapter : str
        Slug of the chapter that computes it.
    paper_range : tuple of float, optional
        The reported range as numbers, for claims that have one (r and AUC over the four levels).
    """

    key: str
    claim: str
    paper: str
    chapter: str
    paper_range: tuple[float, float] | None = None


#: The abstract of Lee, Jo, Cho & Woo (Nat. Neurosci. 2026), claim by claim (shared/paper/).
PAPER_CLAIMS: tuple[Claim, ...] = (
    Claim("n_sessions", "Precision fMRI from two individuals with chronic pain (sessions in all)", "55",
          "study-and-data"),
    Claim("r_01", "Participant 1: prediction–outcome correlation across sessions, runs and minutes",
          "r = 0.40–0.61", "prediction", (0.40, 0.61)),
    Claim("r_02", "Participant 2: prediction–outcome correlation across sessions, runs and minutes",
          "r = 0.51–0.65", "prediction", (0.51, 0.65)),
    Claim("auc_01", "Participant 1: high vs low pain (median split), area under the curve", "AUC = 0.71–0.87",
          "prediction", (0.71, 0.87)),
    Claim("auc_02", "Participant 2: high vs low pain (median split), area under the curve", "AUC = 0.76–0.93",
          "prediction", (0.76, 0.93)),
    Claim("trainsize_trend", "Model performance improved with increased training data",
          "improves with more sessions", "training-size"),
    Claim("trainsize_small", "Conventional data quantities fail to achieve significant predictive accuracy",
          "not significant with conventional amounts", "training-size"),
    Claim("cross", "Models did not generalize across participants", "no generalization", "specificity"),
    Claim("unique", "Each model relied on individually unique brain features", "individually unique",
          "specificity"),
)


def _range(values, fmt: str = ".2f") -> str:
    values = np.asarray(list(values), dtype=float)
    return f"{values.min():{fmt}}–{values.max():{fmt}}"


def published_metrics(source: SourceData) -> pd.DataFrame:
    """r and AUC per participant and level recomputed from the published source-data tables.

    Returns
    -------
    DataFrame
        Columns ``participant``, ``level``, ``n_units``, ``r``, ``auc`` (median split of the actual
        pain, strict ``>``, as the original).
    """
    rows = []
    for (sub, unit), df in sorted(source.test.items()):
        x, y = df["actualpain"].to_numpy(float), df["predictedpain"].to_numpy(float)
        rows.append({"participant": sub, "level": unit, "n_units": len(x),
                     "r": float(stats.pearson_r(x, y)), "auc": float(stats.roc_auc(x, y))})
    return pd.DataFrame(rows, columns=["participant", "level", "n_units", "r", "auc"])


def build_ledger(
    dataset: Dataset,
    metrics: Mapping[str, pd.DataFrame],
    *,
    trainsize: Mapping[str, pd.DataFrame] | None = None,
    generalization: pd.DataFrame | None = None,
    overlap: pd.DataFrame | None = None,
    source: SourceData | None = None,
) -> pd.DataFrame:
    """The ledger table.

    Parameters
    ----------
    dataset : Dataset
        The data the results were computed from (named in every row).
    metrics : mapping of str to DataFrame
        Participant label (``"01"``) → :func:`deipp_core.evaluation.evaluate` table of the main model.
    trainsize : mapping of str to TrainingSizeResult, optional
        Participant label → :func:`deipp_core.analyses.training_size.training_size` result (its
        ``summary``, ``trend`` and ``reference_size`` are used).
    generalization : DataFrame, optional
        :func:`deipp_core.analyses.cross_participant.generalization_table` output.
    overlap : DataFrame, optional
        :func:`deipp_core.analyses.cross_participant.feature_overlap` output.
    source : SourceData, optional
        Published source data; adds the column ``published (source data)``.

    Returns
    -------
    DataFrame
        Columns ``claim``, ``paper``, ``this build``, ``data``, ``chapter`` (and
        ``published (source data)`` when ``source`` is given); one row per claim whose inputs were
        given.
    """
    computed: dict[str, str] = {}
    computed["n_sessions"] = str(sum(p.n_sessions for p in dataset.participants.values()))
    for label, m in metrics.items():
        computed[f"r_{label}"] = "r = " + _range(m["r"])
        computed[f"auc_{label}"] = "AUC = " + _range(m["auc"])
    if trainsize:
        parts_trend, parts_small = [], []
        for label, res in sorted(trainsize.items()):
            s1 = res.summary[res.summary["level"] == "1min"].sort_values("n_session")
            first, last = s1.iloc[0], s1.iloc[-1]
            trend = res.trend.set_index("level").loc["1min"]
            parts_trend.append(
                f"P{int(label)}: 1-min r {first['mean_r']:.2f} with {int(first['n_session'])} → "
                f"{last['mean_r']:.2f} with {int(last['n_session'])} sessions "
                f"(slope p = {trend['p']:.2g})"
            )
            small = s1[s1["n_session"] <= res.reference_size]
            if len(small):
                parts_small.append(
                    f"P{int(label)}: at most {100 * small['frac_significant'].max():.0f}% of repetitions "
                    f"significant at 1 min with ≤ {res.reference_size} sessions"
                )
        computed["trainsize_trend"] = "; ".join(parts_trend)
        if parts_small:
            computed["trainsize_small"] = "; ".join(parts_small)
    if generalization is not None:
        cross = generalization[(generalization["test_kind"] == "cross") & (generalization["level"] == "1min")]
        computed["cross"] = "; ".join(
            f"{row.train} → {row.test}: 1-min r = {row.r:.2f} [{row.r_ci_low:.2f}, {row.r_ci_high:.2f}]"
            for row in cross.itertuples()
        )
    if overlap is not None:
        w = overlap[(overlap["measure"] == "edge weights") & (overlap["statistic"] == "pearson_r")]
        if len(w):
            row = w.iloc[0]
            computed["unique"] = f"weight correlation r = {row['value']:.3f} (permutation p = {row['p']:.2g})"
    rows = []
    published = published_metrics(source) if source is not None and source.test else None
    for claim in PAPER_CLAIMS:
        if claim.key not in computed:
            continue
        row = {"claim": claim.claim, "paper": claim.paper, "this build": computed[claim.key],
               "data": dataset.description, "chapter": claim.chapter}
        if source is not None:
            row["published (source data)"] = _published_cell(claim.key, published)
        rows.append(row)
    return pd.DataFrame(rows)


def _published_cell(key: str, published: pd.DataFrame | None) -> str:
    if published is None or not (key.startswith("r_") or key.startswith("auc_")):
        return "—"
    stat, label = key.split("_", 1)
    sub = published[published["participant"] == label]
    if sub.empty or set(sub["level"]) != set(UNITS):
        return "not in the source data"
    return f"{'r' if stat == 'r' else 'AUC'} = {_range(sub[stat])}"
