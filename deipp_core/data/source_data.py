"""The published figure source data (figshare, doi:10.6084/m9.figshare.31064431).

The original code exports one CSV per figure panel (``reference/deipp_methods.md`` §13.1). This module
finds them in a local copy (any folder layout: files are matched by name, recursively), reads the ones
the book compares with, and turns them into the tidy tables the analyses and figures use:

* ``sub-XX_predict_rating_test_<parctype>_srcdat_y_yfit_<unit>.csv`` — columns ``actualpain``,
  ``predictedpain``, one row per unit; ``unit`` ∈ {1min, 2min, run, session};
* ``sub-XX_predict_rating_test_<parctype>_srcdat_roc_<unit>.csv`` — columns ``1-specificity``,
  ``sensitivity`` (the ``perfcurve`` points, from (0, 0));
* ``sub-<train>_predict_rating_crosstest_sub-<test>_<parctype>_srcdat_y_yfit_<unit>.csv`` — as the
  model test;
* ``sub-XX_predict_rating_trainsize_<parctype>_srcdat_corr.csv`` — ``n_session`` and, per unit,
  ``<unit>_mean``, ``<unit>_95ci_lower``, ``<unit>_95ci_upper``.

Files that are missing, named differently or lack a column are reported in
:attr:`SourceData.problems` (one line each, naming the file and what was expected), never by a crash;
a folder with none of them is an error (:class:`~deipp_core.exceptions.DataLayoutError`).

Tables (all with a ``participant`` column holding labels such as ``"01"``):

* :func:`published_levels` — actual and predicted pain per unit, as :func:`deipp_core.evaluation.level_table`;
* :func:`published_metrics` — r, AUC, R², MAE per level, in the columns of
  :func:`deipp_core.evaluation.evaluate` (the source data hold no bootstrap, so CIs and p are NaN);
* :func:`published_roc` — ROC points per level (``level``, ``fpr``, ``tpr``);
* :func:`published_trainsize` — the training-size curve in the columns of
  :attr:`deipp_core.analyses.training_size.TrainingSizeResult.summary`;
* :func:`published_prediction` bundles the first three for the prediction figures.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deipp_core import stats
from deipp_core.exceptions import DataFormatError, DataLayoutError

__all__ = [
    "UNITS",
    "SourceData",
    "PublishedPrediction",
    "read_source_data",
    "published_levels",
    "published_metrics",
    "published_roc",
    "published_prediction",
    "published_trainsize",
]

logger = logging.getLogger(__name__)

#: Units (levels) as the original names them in the CSV file names; the same names as the levels of
#: :data:`deipp_core.evaluation.LEVELS`.
UNITS: tuple[str, ...] = ("1min", "2min", "run", "session")

_SCATTER_COLUMNS = ("actualpain", "predictedpain")
_ROC_COLUMNS = ("1-specificity", "sensitivity")
_TRAINSIZE_COLUMNS = ("n_session", *(f"{u}_{s}" for u in UNITS for s in ("mean", "95ci_lower", "95ci_upper")))
#: Columns of :func:`deipp_core.evaluation.evaluate` (after ``level``).
_METRIC_COLUMNS = ("n_units", "r", "r_ci_low", "r_ci_high", "r_p", "auc", "auc_ci_low", "auc_ci_high", "auc_p",
                   "r2", "mae")

_TEST = re.compile(
    r"^sub-(?P<sub>[^_]+)_predict_rating_test_(?P<pt>[^_]+)_srcdat_(?P<kind>y_yfit|roc)_(?P<unit>[^_.]+)\.csv$"
)
_CROSS = re.compile(
    r"^sub-(?P<train>[^_]+)_predict_rating_crosstest_sub-(?P<test>[^_]+)_(?P<pt>[^_]+)"
    r"_srcdat_(?P<kind>y_yfit|roc)_(?P<unit>[^_.]+)\.csv$"
)
_TRAINSIZE = re.compile(r"^sub-(?P<sub>[^_]+)_predict_rating_trainsize_(?P<pt>[^_]+)_srcdat_corr\.csv$")


@dataclass
class SourceData:
    """Published source data found in a folder.

    Attributes
    ----------
    root : Path
    test : dict
        ``{(participant, unit): DataFrame(actualpain, predictedpain)}`` of the main model.
    roc : dict
        ``{(participant, unit): DataFrame(1-specificity, sensitivity)}`` of the main model.
    crosstest : dict
        ``{(train, test, unit): DataFrame(actualpain, predictedpain)}``.
    trainsize : dict
        ``{participant: DataFrame}`` of the training-size curve (``n_session``, ``<unit>_mean``, …).
    problems : list of str
        Expected files that were not found, were named differently or could not be read (one line
        each).
    """

    root: Path
    test: dict = field(default_factory=dict)
    roc: dict = field(default_factory=dict)
    crosstest: dict = field(default_factory=dict)
    trainsize: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    @property
    def participants(self) -> list[str]:
        """Participants with model-test or training-size data, sorted."""
        return sorted({s for s, _ in self.test} | {s for s, _ in self.roc} | set(self.trainsize))


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataFormatError(f"{path}: cannot be read as CSV ({err})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"{path.name}: expected columns {', '.join(columns)} (as exported by the original code, "
            f"methods §13.1); missing {', '.join(missing)}; found {', '.join(map(str, df.columns))}"
        )
    return df


def _expected_name(sub: str, parctype: str, kind: str, unit: str) -> str:
    return f"sub-{sub}_predict_rating_test_{parctype}_srcdat_{kind}_{unit}.csv"


def read_source_data(path: str | Path, *, parctype: str = "indparc") -> SourceData:
    """Find and read the published source-data CSVs under ``path``.

    Parameters
    ----------
    path : str or Path
        A local copy of the figshare source data (any folder layout).
    parctype : str, default="indparc"
        Parcellation variant of the main model (``indparc`` in the paper's main figures).

    Returns
    -------
    SourceData
        The tables found; :attr:`SourceData.problems` lists, one line each, every expected file that
        is missing (naming the expected file and any file that looks like a misnamed copy of it) and
        every file whose columns are not the original's.

    Raises
    ------
    DataLayoutError
        If ``path`` is not a folder or holds none of the expected files.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> folder = Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"actualpain": [0.1, 0.5, 0.9], "predictedpain": [0.2, 0.4, 0.8]}).to_csv(
    ...     folder / "sub-01_predict_rating_test_indparc_srcdat_y_yfit_run.csv", index=False)
    >>> source = read_source_data(folder)
    >>> sorted(source.test)
    [('01', 'run')]
    >>> len(source.problems)  # the other three levels of sub-01 are reported missing
    3
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataLayoutError(
            f"source data folder {root} does not exist or is not a folder; pass the folder of the "
            f"figshare download (doi:10.6084/m9.figshare.31064431)"
        )
    out = SourceData(root=root)
    odd_units: dict[tuple[str, str], list[str]] = {}
    seen: set[str] = set()
    for csv in sorted(root.rglob("*.csv")):
        name = csv.name
        seen.add(name)
        try:
            if (m := _TEST.match(name)) and m["pt"] == parctype:
                if m["unit"] not in UNITS:
                    odd_units.setdefault((m["sub"], m["kind"]), []).append(name)
                    continue
                store, cols = (out.test, _SCATTER_COLUMNS) if m["kind"] == "y_yfit" else (out.roc, _ROC_COLUMNS)
                store[(m["sub"], m["unit"])] = _read_csv(csv, cols)
            elif (m := _CROSS.match(name)) and m["pt"] == parctype and m["kind"] == "y_yfit":
                if m["unit"] in UNITS:
                    out.crosstest[(m["train"], m["test"], m["unit"])] = _read_csv(csv, _SCATTER_COLUMNS)
            elif (m := _TRAINSIZE.match(name)) and m["pt"] == parctype:
                out.trainsize[m["sub"]] = _read_csv(csv, _TRAINSIZE_COLUMNS)
        except DataFormatError as err:
            out.problems.append(str(err))
    if not (out.test or out.roc or out.crosstest or out.trainsize):
        raise DataLayoutError(
            f"no source-data CSV found under {root}: expected names such as "
            f"{_expected_name('01', parctype, 'y_yfit', '1min')} (methods §13.1)"
        )
    for sub in sorted({s for s, _ in out.test} | {s for s, kind in odd_units if kind == "y_yfit"}):
        for unit in UNITS:
            expected = _expected_name(sub, parctype, "y_yfit", unit)
            if (sub, unit) in out.test or expected in seen:  # present (or present but unreadable)
                continue
            odd = odd_units.get((sub, "y_yfit"), [])
            hint = f" (found {', '.join(odd)}: the level must be one of {', '.join(UNITS)})" if odd else ""
            out.problems.append(f"missing {expected} under {root}{hint}")
    for problem in out.problems:
        logger.warning("source data: %s", problem)
    return out


def published_levels(source: SourceData) -> pd.DataFrame:
    """Actual and predicted pain per unit of the main model, from the ``…_srcdat_y_yfit_<unit>.csv``.

    Returns
    -------
    DataFrame
        Columns ``participant``, ``level``, ``unit`` (row number within the level, in the file's order:
        bin fastest, then run, then session), ``actual``, ``predicted``.
    """
    frames = [
        pd.DataFrame({"participant": sub, "level": unit, "unit": np.arange(len(df)),
                      "actual": df["actualpain"].to_numpy(float), "predicted": df["predictedpain"].to_numpy(float)})
        for (sub, unit), df in sorted(source.test.items(), key=lambda kv: (kv[0][0], UNITS.index(kv[0][1])))
    ]
    if not frames:
        return pd.DataFrame(columns=["participant", "level", "unit", "actual", "predicted"])
    return pd.concat(frames, ignore_index=True)


def published_metrics(source: SourceData) -> pd.DataFrame:
    """r, AUC, R² and MAE per participant and level recomputed from the published scatter tables.

    The point estimates are exactly those of :func:`deipp_core.evaluation.evaluate` (pooled Pearson r,
    AUC of the median split of the actual pain with strict ``>``, the paper's R², MAE). The source data
    do not say which session and run each unit belongs to, so no hierarchical bootstrap is possible:
    the CI and p columns are NaN.

    Returns
    -------
    DataFrame
        Columns ``participant``, ``level`` and those of :func:`~deipp_core.evaluation.evaluate`.
    """
    rows = []
    for (sub, unit), df in sorted(source.test.items(), key=lambda kv: (kv[0][0], UNITS.index(kv[0][1]))):
        x, y = df["actualpain"].to_numpy(float), df["predictedpain"].to_numpy(float)
        rows.append({"participant": sub, "level": unit, "n_units": int(x.size),
                     "r": float(stats.pearson_r(x, y)), "r_ci_low": np.nan, "r_ci_high": np.nan, "r_p": np.nan,
                     "auc": stats.roc_auc(x, y), "auc_ci_low": np.nan, "auc_ci_high": np.nan, "auc_p": np.nan,
                     "r2": stats.r_squared(x, y), "mae": stats.mean_absolute_error(x, y)})
    return pd.DataFrame(rows, columns=["participant", "level", *_METRIC_COLUMNS])


def published_roc(source: SourceData) -> pd.DataFrame:
    """ROC points per participant and level of the main model.

    From the ``…_srcdat_roc_<unit>.csv`` when present; otherwise computed from the scatter table with
    :func:`deipp_core.stats.roc_points` (the same ``perfcurve`` points the original wrote).

    Returns
    -------
    DataFrame
        Columns ``participant``, ``level``, ``fpr``, ``tpr``.
    """
    frames = []
    for sub in source.participants:
        for unit in UNITS:
            if (sub, unit) in source.roc:
                d = source.roc[(sub, unit)]
                fpr, tpr = d["1-specificity"].to_numpy(float), d["sensitivity"].to_numpy(float)
            elif (sub, unit) in source.test:
                d = source.test[(sub, unit)]
                x, y = d["actualpain"].to_numpy(float), d["predictedpain"].to_numpy(float)
                if np.unique(stats.median_split(x)).size < 2:
                    continue
                fpr, tpr = stats.roc_points(x, y)
            else:
                continue
            frames.append(pd.DataFrame({"participant": sub, "level": unit, "fpr": fpr, "tpr": tpr}))
    if not frames:
        return pd.DataFrame(columns=["participant", "level", "fpr", "tpr"])
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class PublishedPrediction:
    """The published tables of the prediction figures (paper Fig. 2), for one or more participants.

    Attributes
    ----------
    levels : DataFrame
        :func:`published_levels`.
    metrics : DataFrame
        :func:`published_metrics`.
    roc : DataFrame
        :func:`published_roc`.
    """

    levels: pd.DataFrame
    metrics: pd.DataFrame
    roc: pd.DataFrame

    def for_participant(self, label: str) -> PublishedPrediction | None:
        """The tables of one participant (``"01"``), or None when the source data have none."""
        parts = [t[t["participant"] == label] for t in (self.levels, self.metrics, self.roc)]
        if all(p.empty for p in parts):
            return None
        return PublishedPrediction(*parts)


def published_prediction(source: SourceData) -> PublishedPrediction:
    """:func:`published_levels`, :func:`published_metrics` and :func:`published_roc` together."""
    return PublishedPrediction(published_levels(source), published_metrics(source), published_roc(source))


def published_trainsize(source: SourceData) -> pd.DataFrame:
    """The published training-size curves in the long format of ``TrainingSizeResult.summary``.

    Returns
    -------
    DataFrame
        Columns ``participant``, ``n_session``, ``level``, ``mean_r``, ``ci_lower``, ``ci_upper`` (the
        original's mean ± 1.96·SD/√100 over repetitions), sorted by participant, level and size.
    """
    frames = []
    for sub, df in sorted(source.trainsize.items()):
        for unit in UNITS:
            frames.append(pd.DataFrame({
                "participant": sub, "n_session": df["n_session"].to_numpy(int), "level": unit,
                "mean_r": df[f"{unit}_mean"].to_numpy(float), "ci_lower": df[f"{unit}_95ci_lower"].to_numpy(float),
                "ci_upper": df[f"{unit}_95ci_upper"].to_numpy(float),
            }))
    if not frames:
        return pd.DataFrame(columns=["participant", "n_session", "level", "mean_r", "ci_lower", "ci_upper"])
    return pd.concat(frames, ignore_index=True)
