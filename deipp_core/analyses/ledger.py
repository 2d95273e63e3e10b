"""The ledger: every quantitative claim of the paper's abstract beside the number this build computed.

:data:`PAPER_CLAIMS` holds the values *as the paper reports them* (its abstract; the paper's numbers
are the reference, so they are written here once); :func:`build_ledger` fills in the values computed
from the results of the analyses, names the data they come from and the chapter that computes them,
and — when the published figure source data are available (:mod:`deipp_core.data.source_data`) —
recomputes the paper's own numbers from those tables (r and AUC per participant, the 1-min training-size
curve, the 1-min cross-participant r) as a further column. :func:`compare_with_published` puts this
build's r and AUC beside the published ones level by level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deipp_core import stats
from deipp_core.data.dataset import Dataset
from deipp_core.data.source_data import UNITS, SourceData, published_metrics, published_trainsize

__all__ = ["Claim", "PAPER_CLAIMS", "build_ledger", "compare_with_published"]


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
    published = _published_values(source) if source is not None else {}
    rows = []
    for claim in PAPER_CLAIMS:
        if claim.key not in computed:
            continue
        row = {"claim": claim.claim, "paper": claim.paper, "this build": computed[claim.key],
               "data": dataset.description, "chapter": claim.chapter}
        if source is not None:
            answerable = claim.key.startswith(_FROM_SOURCE)
            row["published (source data)"] = published.get(claim.key, "not in the source data" if answerable else "—")
        rows.append(row)
    return pd.DataFrame(rows)


#: Keys (prefixes) of the claims the published source data can answer.
_FROM_SOURCE = ("r_", "auc_", "trainsize_trend", "cross")


def _published_values(source: SourceData) -> dict[str, str]:
    """Ledger cells recomputed from the published source data (claims they can answer)."""
    out: dict[str, str] = {}
    metrics = published_metrics(source)
    for label, sub in metrics.groupby("participant"):
        if set(sub["level"]) == set(UNITS):  # the abstract's ranges are over all four levels
            out[f"r_{label}"] = "r = " + _range(sub["r"])
            out[f"auc_{label}"] = "AUC = " + _range(sub["auc"])
    curves = published_trainsize(source)
    parts = []
    for label, sub in curves[curves["level"] == "1min"].groupby("participant"):
        sub = sub.sort_values("n_session")
        first, last = sub.iloc[0], sub.iloc[-1]
        parts.append(f"P{int(label)}: 1-min r {first['mean_r']:.2f} with {int(first['n_session'])} → "
                     f"{last['mean_r']:.2f} with {int(last['n_session'])} sessions")
    if parts:
        out["trainsize_trend"] = "; ".join(parts)
    cross = [f"{train} → {test}: 1-min r = {stats.pearson_r(df['actualpain'], df['predictedpain']):.2f}"
             for (train, test, unit), df in sorted(source.crosstest.items()) if unit == "1min"]
    if cross:
        out["cross"] = "; ".join(cross)
    return out


def compare_with_published(metrics: Mapping[str, pd.DataFrame], published: pd.DataFrame) -> pd.DataFrame:
    """This build's r and AUC per participant and level beside the published ones.

    Parameters
    ----------
    metrics : mapping of str to DataFrame
        Participant label (``"01"``) → :func:`deipp_core.evaluation.evaluate` table.
    published : DataFrame
        :func:`deipp_core.data.source_data.published_metrics`.

    Returns
    -------
    DataFrame
        One row per (participant, level) of ``metrics``: ``participant``, ``level``, ``r (this build)``,
        ``r (published)``, ``AUC (this build)``, ``AUC (published)``; NaN where the source data lack
        the level.

    Examples
    --------
    >>> m = pd.DataFrame({"level": ["run"], "r": [0.5], "auc": [0.8]})
    >>> p = pd.DataFrame({"participant": ["01"], "level": ["run"], "r": [0.6], "auc": [0.9]})
    >>> compare_with_published({"01": m}, p).iloc[0].to_dict()["r (published)"]
    0.6
    """
    rows = []
    pub = published.set_index(["participant", "level"])
    for label, m in sorted(metrics.items()):
        for rec in m.itertuples():
            key = (label, rec.level)
            has = key in pub.index
            rows.append({"participant": label, "level": rec.level,
                         "r (this build)": float(rec.r), "r (published)": float(pub.loc[key, "r"]) if has else np.nan,
                         "AUC (this build)": float(rec.auc),
                         "AUC (published)": float(pub.loc[key, "auc"]) if has else np.nan})
    return pd.DataFrame(rows, columns=["participant", "level", "r (this build)", "r (published)",
                                       "AUC (this build)", "AUC (published)"])
