"""The published figure source data (figshare, doi:10.6084/m9.figshare.31064431).

The original code exports one CSV per figure panel (``reference/deipp_methods.md`` §13.1). This module
finds them in a local copy (any folder layout: files are matched by name, recursively) and reads the
ones the ledger compares with:

* ``sub-XX_predict_rating_test_<parctype>_srcdat_y_yfit_<unit>.csv`` — columns ``actualpain``,
  ``predictedpain``; ``unit`` ∈ {1min, 2min, run, session};
* ``sub-<train>_predict_rating_crosstest_sub-<test>_<parctype>_srcdat_y_yfit_<unit>.csv`` — same columns;
* ``sub-XX_predict_rating_trainsize_<parctype>_srcdat_corr.csv`` — ``n_session`` and, per unit,
  ``<unit>_mean``, ``<unit>_95ci_lower``, ``<unit>_95ci_upper``.

Files that are missing or named differently are reported in :attr:`SourceData.problems` (one line
each, naming what was expected), never by a crash; a folder with none of them is an error.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from deipp_core.exceptions import DataFormatError, DataLayoutError

__all__ = ["SourceData", "read_source_data", "UNITS"]

logger = logging.getLogger(__name__)

#: Units (levels) as the original names them in the CSV file names.
UNITS: tuple[str, ...] = ("1min", "2min", "run", "session")

_TEST = re.compile(r"^sub-(?P<sub>[^_]+)_predict_rating_test_(?P<pt>[^_]+)_srcdat_y_yfit_(?P<unit>[^_.]+)\.csv$")
_CROSS = re.compile(
    r"^sub-(?P<train>[^_]+)_predict_rating_crosstest_sub-(?P<test>[^_]+)_(?P<pt>[^_]+)_srcdat_y_yfit_(?P<unit>[^_.]+)\.csv$"
)
_TRAINSIZE = re.compile(r"^sub-(?P<sub>[^_]+)_predict_rating_trainsize_(?P<pt>[^_]+)_srcdat_corr\.csv$")


@dataclass
class SourceData:
    """Published source data found in a folder.

    Attributes
    ----------
    root : Path
    test : dict
        ``{(participant, unit): DataFrame(actualpain, predictedpain)}`` of the main model (indparc).
    crosstest : dict
        ``{(train, test, unit): DataFrame}``.
    trainsize : dict
        ``{participant: DataFrame}`` of the training-size curve.
    problems : list of str
        Expected files that were not found or could not be read.
    """

    root: Path
    test: dict = field(default_factory=dict)
    crosstest: dict = field(default_factory=dict)
    trainsize: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataFormatError(f"{path}: cannot be read as CSV ({err})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"{path}: expected columns {', '.join(columns)} (as exported by the original code); "
            f"missing {', '.join(missing)}; found {', '.join(map(str, df.columns))}"
        )
    return df


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

    Raises
    ------
    DataLayoutError
        If ``path`` is not a folder or holds none of the expected files.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataLayoutError(f"source data folder {root} does not exist; pass the folder of the figshare download")
    out = SourceData(root=root)
    for csv in sorted(root.rglob("*.csv")):
        name = csv.name
        try:
            if (m := _TEST.match(name)) and m["pt"] == parctype:
                out.test[(m["sub"], m["unit"])] = _read_csv(csv, ("actualpain", "predictedpain"))
            elif (m := _CROSS.match(name)) and m["pt"] == parctype:
                out.crosstest[(m["train"], m["test"], m["unit"])] = _read_csv(csv, ("actualpain", "predictedpain"))
            elif (m := _TRAINSIZE.match(name)) and m["pt"] == parctype:
                out.trainsize[m["sub"]] = _read_csv(csv, ("n_session",))
        except DataFormatError as err:
            out.problems.append(str(err))
    if not (out.test or out.crosstest or out.trainsize):
        raise DataLayoutError(
            f"no source-data CSV found under {root}: expected names such as "
            f"sub-01_predict_rating_test_{parctype}_srcdat_y_yfit_1min.csv (methods §13.1)"
        )
    for sub in sorted({s for s, _ in out.test}):
        for unit in UNITS:
            if (sub, unit) not in out.test:
                out.problems.append(
                    f"missing sub-{sub}_predict_rating_test_{parctype}_srcdat_y_yfit_{unit}.csv under {root}"
                )
    for problem in out.problems:
        logger.warning("source data: %s", problem)
    return out
