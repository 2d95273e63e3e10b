"""Read the digital twin or a local copy of ds006815 into a :class:`~deipp_core.data.dataset.Dataset`.

One reader serves both data tiers (DESIGN §2). It expects the layout of ``reference/deipp_methods.md``
§1 plus the parcel time-series derivatives of DESIGN §2::

    <root>/dataset_description.json                 # a "DeippTwin" object marks the simulated twin
    <root>/participants.tsv                         # column participant_id: sub-01, sub-02, …
    <root>/sub-XX/ses-YY/func/sub-XX_ses-YY_task-rating_run-N_resp.tsv   # or _beh, .tsv.gz, beh/
    <root>/sub-XX/ses-YY/func/sub-XX_ses-YY_task-rating_run-N_bold.json  # RepetitionTime (inherited)
    <root>/derivatives/<pipeline>/atlas-<name>_dseg.tsv                  # or atlas-<name>_sub-XX_dseg.tsv
    <root>/derivatives/<pipeline>/sub-XX/ses-YY/func/
        sub-XX_ses-YY_task-rating_run-N_atlas-<name>_timeseries.tsv.gz (+ .json)
        sub-XX_ses-YY_task-rating_run-N_desc-confounds_timeseries.tsv
        sub-XX_ses-YY_task-rest_atlas-<name>_timeseries.tsv.gz, …_task-rest_desc-confounds_timeseries.tsv

The real data may instead come as CIFTI dense time series (ciftify output, found by name anywhere
under the pipeline folder) with a parcellation passed as ``dlabel=``; parcel means are then computed
by :mod:`deipp_core.data.cifti`, and censoring/motion come from a confounds table as above or from the
original pipeline's ``…_desc-censoring_timeseries.txt`` and ``…_desc-mc_rp.txt`` (methods §4 step 10).

Everything is validated before a :class:`Dataset` is returned; every problem raises one
:class:`~deipp_core.exceptions.DataLayoutError` (a file is missing or forbidden),
:class:`~deipp_core.exceptions.DataFormatError` (a file's content is wrong) or
:class:`~deipp_core.exceptions.ParameterError` (an argument is wrong), naming the file and what was
expected. Inputs are only ever opened for reading.

Decisions where the original code is silent or fragile:

* **Session numbering.** ``analysis_rating.m`` rebuilds session labels as ``ses-01 … ses-S``
  (methods §1.1). Sessions are carried here by their labels, so a gap (ses-01, ses-02, ses-04) is
  harmless downstream; it is reported with a :class:`SessionNumberingWarning`, not an error, because
  a real data set may legitimately lack a session. Sessions with no rating run at all (e.g. an
  anatomy-only visit) are skipped with a log message; a session with one or two rating runs is an
  error.
* **Run length.** The original takes ``nvol`` from run 1 of session 1; here every rating run of a
  participant must have the same number of volumes, and at least
  :func:`min_volumes` (``ceil(30/TR) + 13 + 10 × 5``) for the trim, the lag and ten rating bins.
* **TR.** Raw BOLD sidecars (with BIDS inheritance), derivative JSON sidecars and the CIFTI series
  step must agree within 10 µs, and all runs of a participant must share one TR.
* **Framewise displacement.** A confounds table's ``framewise_displacement`` may be ``n/a`` in its first
  row (fMRIPrep writes it so); it is set to 0, the original's FD₁ = 0. Any other missing value is an
  error. From the original ``_desc-mc_rp.txt`` the column is computed as the censoring FD (0.1-Hz
  low-pass, methods §4 step 10), the FD the twin writes; the head-motion control (§10.4) recomputes
  the unfiltered FD from the motion columns.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import math
import os
import re
import warnings
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from deipp_core.data.dataset import ATLAS_COLUMNS, MOTION_COLUMNS, Dataset, Participant, Run
from deipp_core.data.derivatives import ArrayCache, cache_enabled, cache_root, code_digest, file_fingerprint, hash_key
from deipp_core.exceptions import (
    AllFramesCensoredError,
    DataFormatError,
    DataLayoutError,
    ParameterError,
)
from deipp_core.ratings import RatingParams

__all__ = [
    "BIDSName",
    "SessionNumberingWarning",
    "parse_bids_filename",
    "read_dataset",
    "read_ground_truth",
    "read_rating",
    "read_atlas",
    "read_parcel_timeseries",
    "read_confounds",
    "read_afni_motion",
    "min_volumes",
    "RATING_RUNS",
    "RATING_SUFFIXES",
    "GROUND_TRUTH_PIPELINE",
]

logger = logging.getLogger(__name__)

#: Rating runs every session must have (methods §1.1: the analyses use a {run, session} grid).
RATING_RUNS: tuple[int, ...] = (1, 2, 3)
#: Suffixes accepted for the continuous rating file (the original reads ``_resp.tsv``; OpenNeuro may
#: use ``_beh.tsv``, methods §1.1 [ASSUMPTION]).
RATING_SUFFIXES: tuple[str, ...] = ("resp", "beh")
#: Derivative folder of the twin's ground truth (never read as analysis input).
GROUND_TRUTH_PIPELINE = "deipp-twin-groundtruth"
#: Derivative folders that are outputs of this package, never inputs.
_NOT_INPUT_PIPELINES = frozenset({GROUND_TRUTH_PIPELINE, "deipp"})

_TABLE_EXTENSIONS = (".tsv", ".tsv.gz")
_TIME_COLUMNS = ("time", "onset")
_VALUE_COLUMNS = ("value", "rating")
_TR_TOLERANCE_S = 1e-5
_CONFOUND_COLUMNS = (*MOTION_COLUMNS, "framewise_displacement", "censor")
_GT_EDGE_COLUMNS = ("parcel_i", "parcel_j", "sign", "weight")
#: Modules whose code determines a parsed run: the code digest of the reader's cache covers only these.
_READER_SOURCES = ("data/bids.py", "data/dataset.py", "motion.py")


class SessionNumberingWarning(UserWarning):
    """Session labels are not ``01 … S`` without gaps, as the original code assumes (methods §1.1)."""


# --------------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------------


class BIDSName(NamedTuple):
    """The parts of a BIDS file name: key-value entities, suffix and extension."""

    entities: dict[str, str]
    suffix: str
    extension: str


def parse_bids_filename(path: str | os.PathLike) -> BIDSName:
    """Split a BIDS file name into entities, suffix and extension (no pybids needed).

    Entities are the ``key-value`` tokens in order; the suffix is the last ``_``-separated token when
    it has no hyphen; the extension is everything from the first dot. Tokens without a hyphen before
    the last one (ciftify's ``…_bold_Atlas_s6.dtseries.nii``) are not entities and are ignored.

    Parameters
    ----------
    path : str or path-like
        A file name or path (only the name is parsed).

    Returns
    -------
    BIDSName

    Examples
    --------
    >>> parse_bids_filename("sub-01_ses-02_task-rating_run-3_resp.tsv.gz")
    BIDSName(entities={'sub': '01', 'ses': '02', 'task': 'rating', 'run': '3'}, suffix='resp', extension='.tsv.gz')
    >>> parse_bids_filename("derivatives/x/atlas-Seitzman300_dseg.tsv").entities
    {'atlas': 'Seitzman300'}
    >>> parse_bids_filename("sub-01_ses-01_task-rating_run-1_desc-denoise_bold_Atlas_s6.dtseries.nii")[1:]
    ('s6', '.dtseries.nii')
    """
    name = Path(path).name
    stem, dot, rest = name.partition(".")
    tokens = stem.split("_")
    entities: dict[str, str] = {}
    suffix = ""
    for i, token in enumerate(tokens):
        key, sep, value = token.partition("-")
        if sep and key and value:
            entities.setdefault(key, value)
        elif i == len(tokens) - 1:
            suffix = token
    return BIDSName(entities, suffix, dot + rest)


def _run_number(name: BIDSName, path: Path) -> int | None:
    value = name.entities.get("run")
    if value is None:
        return None
    if not value.isdigit():
        raise DataFormatError(f"{path}: the run entity must be a number (run-1), got run-{value}")
    return int(value)


def _table_extension(name: BIDSName) -> bool:
    return name.extension in _TABLE_EXTENSIONS


class _Listing:
    """Sorted directory listings, each read once per call of :func:`read_dataset`."""

    def __init__(self) -> None:
        self._cache: dict[str, list[str]] = {}

    def __call__(self, folder: Path) -> list[str]:
        key = str(folder)
        if key not in self._cache:
            try:
                self._cache[key] = sorted(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):
                self._cache[key] = []
        return self._cache[key]


# --------------------------------------------------------------------------------------------------
# Small readers (every one opens its file read-only and names it in every error)
# --------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise DataLayoutError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(f"{path}: not a readable JSON file ({err})") from err
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_nan(values: np.ndarray) -> tuple[int, int] | None:
    bad = np.argwhere(np.isnan(values))
    return None if bad.size == 0 else (int(bad[0][0]), int(bad[0][-1]))


def _read_table(path: Path, what: str, **kwargs) -> pd.DataFrame:
    """``pandas.read_csv`` (C engine) with every failure turned into a DataFormatError naming ``path``.

    A gzipped file is decompressed in one call before parsing (up to ~15 % faster than letting pandas
    stream it through :mod:`gzip`, benchmarks/bench_data_cache.py; the parsed values are the same).
    """
    try:
        source = path
        if str(path).endswith(".gz"):
            with open(path, "rb") as fh:
                source = io.BytesIO(gzip.decompress(fh.read()))
        return pd.read_csv(source, engine="c", **kwargs)
    except FileNotFoundError:
        raise DataLayoutError(f"{path} does not exist ({what})") from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: the file is empty; expected {what}") from None
    except (OSError, EOFError, UnicodeDecodeError, ValueError, zlib.error, pd.errors.ParserError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataFormatError(f"{path}: cannot be read as {what} ({reason})") from err


def read_rating(path: str | os.PathLike) -> pd.DataFrame:
    """Read one continuous-rating file (methods §1.1).

    The original format has two numeric columns and no header: time in seconds on the rating clock
    (from the end of the 10-s disdaq) and the rating in [0, 1]. A header is accepted if it names a time
    column (``time`` or ``onset``) and a value column (``value`` or ``rating``), case-insensitively;
    tab-, comma- or space-separated text, optionally gzipped.

    Parameters
    ----------
    path : str or path-like
        The rating file.

    Returns
    -------
    DataFrame
        Columns ``time`` and ``value`` (float64).

    Raises
    ------
    DataFormatError
        If the file is unreadable or empty, has not exactly two columns (without header) or lacks the
        named columns (with header), or holds missing values, ratings outside [0, 1] or time stamps
        that do not strictly increase.
    """
    path = Path(path)
    expected = "two numeric columns without header (time in s, rating in [0, 1]) or a header with time/onset and value/rating"
    try:
        with _open_text(path) as fh:
            first = next((line for line in fh if line.strip()), "")
    except FileNotFoundError:
        raise DataLayoutError(f"{path} does not exist (continuous rating)") from None
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise DataFormatError(f"{path}: the rating file cannot be read ({err}); expected {expected}") from err
    if not first:
        raise DataFormatError(f"{path}: the rating file is empty; expected {expected}")
    sep = "\t" if "\t" in first else ("," if "," in first else r"\s+")
    fields = re.split(sep, first.strip())
    has_header = not all(_is_number(f) for f in fields)
    if not has_header:
        if len(fields) != 2:
            raise DataFormatError(f"{path}: the rating file has {len(fields)} columns; expected {expected}")
        df = _read_table(path, expected, sep=sep, header=None, names=["time", "value"], dtype=np.float64,
                         na_values=["n/a"], skip_blank_lines=True)
    else:
        raw = _read_table(path, expected, sep=sep, header=0, na_values=["n/a"])
        lower = {str(c).strip().lower(): c for c in raw.columns}
        tcol = next((lower[c] for c in _TIME_COLUMNS if c in lower), None)
        vcol = next((lower[c] for c in _VALUE_COLUMNS if c in lower), None)
        if tcol is None or vcol is None:
            raise DataFormatError(
                f"{path}: the rating file's header {list(map(str, raw.columns))} has no "
                f"{'time/onset' if tcol is None else 'value/rating'} column; expected {expected}"
            )
        try:
            df = pd.DataFrame({
                "time": pd.to_numeric(raw[tcol], errors="raise").astype(np.float64),
                "value": pd.to_numeric(raw[vcol], errors="raise").astype(np.float64),
            })
        except (ValueError, TypeError) as err:
            raise DataFormatError(f"{path}: non-numeric rating data ({err}); expected {expected}") from err
    if len(df) < 2:
        raise DataFormatError(f"{path}: the rating file has {len(df)} sample(s); expected a continuous rating")
    values = df.to_numpy()
    nan = _first_nan(values)
    if nan is not None:
        raise DataFormatError(
            f"{path}: {int(np.isnan(values).sum())} missing value(s) in the rating, first in data row "
            f"{nan[0] + 1} (column {df.columns[nan[1]]}); expected complete numeric samples"
        )
    time, value = values[:, 0], values[:, 1]
    step = np.diff(time)
    if np.any(step <= 0):
        i = int(np.flatnonzero(step <= 0)[0])
        raise DataFormatError(
            f"{path}: rating time must increase strictly, but data row {i + 2} has time {time[i + 1]:g} "
            f"after {time[i]:g}"
        )
    out = (value < 0) | (value > 1)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise DataFormatError(
            f"{path}: ratings must lie in [0, 1]; {int(out.sum())} do not (range {value.min():g}–"
            f"{value.max():g}, first in data row {i + 1})"
        )
    return df


def read_atlas(path: str | os.PathLike) -> pd.DataFrame:
    """Read a parcellation table ``atlas-<name>[_sub-XX]_dseg.tsv`` (DESIGN §2).

    Parameters
    ----------
    path : str or path-like
        The table: columns ``index name network x y z`` and optionally ``included`` (0/1; all parcels
        included when absent). Row order is the parcel order of the time series.

    Returns
    -------
    DataFrame
        Columns :data:`~deipp_core.data.dataset.ATLAS_COLUMNS` (``index`` int, ``name``/``network``
        str, ``x y z`` float, ``included`` bool).

    Raises
    ------
    DataFormatError
        If a column is missing, the table is empty, ``index`` is not a unique integer, ``name`` is
        missing or repeated, coordinates are not numeric or ``included`` is not 0/1.
    """
    path = Path(path)
    required = [c for c in ATLAS_COLUMNS if c != "included"]
    what = f"a parcellation table with columns {' '.join(ATLAS_COLUMNS)} (included optional)"
    df = _read_table(path, what, sep="\t", dtype={"name": str, "network": str}, na_values=["n/a"],
                     keep_default_na=False)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; expected {what}, found {list(df.columns)}")
    if df.empty:
        raise DataFormatError(f"{path}: the parcellation table has no rows; expected one row per parcel")
    index = pd.to_numeric(df["index"], errors="coerce")
    if index.isna().any() or not np.all(index == np.round(index)) or index.duplicated().any():
        raise DataFormatError(f"{path}: column 'index' must hold unique integers")
    names = df["name"]
    if names.isna().any() or (names.str.strip() == "").any():
        raise DataFormatError(f"{path}: column 'name' has empty entries; every parcel needs a name")
    if names.duplicated().any():
        dup = names[names.duplicated()].iloc[0]
        raise DataFormatError(f"{path}: parcel name {dup!r} occurs more than once; names must be unique")
    out = pd.DataFrame({"index": index.astype(np.int64), "name": names.astype(str),
                        "network": df["network"].fillna("n/a").astype(str)})
    for c in ("x", "y", "z"):
        try:
            out[c] = pd.to_numeric(df[c], errors="raise").astype(np.float64)
        except (ValueError, TypeError):
            raise DataFormatError(f"{path}: column {c!r} must be numeric (MNI mm)") from None
    if "included" in df.columns:
        inc = pd.to_numeric(df["included"].astype(str).str.lower().replace({"true": "1", "false": "0"}),
                            errors="coerce")
        if inc.isna().any() or not inc.isin([0, 1]).all():
            raise DataFormatError(f"{path}: column 'included' must hold 0 or 1 for every parcel")
        out["included"] = inc.astype(bool)
    else:
        out["included"] = True
    if not out["included"].any():
        raise DataFormatError(f"{path}: no parcel is included (column 'included' is 0 everywhere)")
    return out.reset_index(drop=True)


def read_parcel_timeseries(path: str | os.PathLike, names: Iterable[str] | None = None) -> np.ndarray:
    """Read a parcel time-series table (``…_atlas-<name>_timeseries.tsv.gz``).

    Parameters
    ----------
    path : str or path-like
        Tab-separated, optionally gzipped; header = parcel names, one row per volume.
    names : iterable of str, optional
        The parcel names of the atlas, in order; the header must equal them.

    Returns
    -------
    ndarray of shape (n_volumes, n_parcels), float64

    Raises
    ------
    DataFormatError
        If the file is unreadable, empty or not numeric, holds missing values, or its header differs
        from ``names`` (count, names or order).
    """
    path = Path(path)
    what = "a parcel time-series table (header = parcel names, one numeric row per volume)"
    df = _read_table(path, what, sep="\t", dtype=np.float64, na_values=["n/a"])
    header = [str(c) for c in df.columns]
    if names is not None:
        names = list(names)
        if header != names:
            if len(header) != len(names):
                detail = f"the header has {len(header)} columns but the atlas lists {len(names)} parcels"
            else:
                i = next(k for k, (a, b) in enumerate(zip(header, names)) if a != b)
                detail = (f"column {i + 1} is {header[i]!r} but the atlas lists {names[i]!r} there"
                          f"{' (same names, different order)' if sorted(header) == sorted(names) else ''}")
            raise DataFormatError(f"{path}: {detail}; the header must be the atlas's parcel names in atlas order")
    if df.shape[0] == 0:
        raise DataFormatError(f"{path}: the time series has no rows; expected one row per volume")
    values = df.to_numpy(dtype=np.float64)
    nan = _first_nan(values)
    if nan is not None:
        raise DataFormatError(
            f"{path}: {int(np.isnan(values).sum())} missing value(s) in the time series, first at volume "
            f"{nan[0]} (0-based), parcel {header[nan[1]]!r}"
        )
    return values


def _check_confounds(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Validate the columns of a confounds table and return exactly :data:`_CONFOUND_COLUMNS`."""
    missing = [c for c in _CONFOUND_COLUMNS if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"{path}: missing confound column(s) {missing}; expected at least {' '.join(_CONFOUND_COLUMNS)} "
            "(translations in mm, rotations in rad, FD in mm, censor 1 keep / 0 drop)"
        )
    if df.shape[0] == 0:
        raise DataFormatError(f"{path}: the confounds table has no rows; expected one row per volume")
    out = df.loc[:, list(_CONFOUND_COLUMNS)].copy()
    try:
        out = out.apply(pd.to_numeric, errors="raise").astype(np.float64)
    except (ValueError, TypeError) as err:
        raise DataFormatError(f"{path}: non-numeric confounds ({err})") from None
    fd = out["framewise_displacement"].to_numpy()
    if np.isnan(fd[0]):
        out.loc[out.index[0], "framewise_displacement"] = 0.0  # fMRIPrep writes n/a; the original FD_1 = 0
    values = out.to_numpy()
    nan = _first_nan(values)
    if nan is not None:
        raise DataFormatError(
            f"{path}: {int(np.isnan(values).sum())} missing value(s) in the confounds, first at volume "
            f"{nan[0]} (0-based), column {out.columns[nan[1]]!r}"
        )
    censor = out["censor"].to_numpy()
    if not np.isin(censor, (0.0, 1.0)).all():
        bad = censor[~np.isin(censor, (0.0, 1.0))][0]
        raise DataFormatError(f"{path}: column 'censor' must be 1 (keep) or 0 (drop); found {bad:g}")
    out["censor"] = censor.astype(np.int64)
    return out


def read_confounds(path: str | os.PathLike) -> pd.DataFrame:
    """Read a confounds table (``…_desc-confounds_timeseries.tsv``).

    Returns
    -------
    DataFrame
        Exactly the columns ``trans_x … rot_z``, ``framewise_displacement`` (float64) and ``censor``
        (int, 1 keep, 0 drop), one row per volume. Other columns of the file are not kept.

    Raises
    ------
    DataFormatError
        If a required column is missing, a value is missing (except FD in the first row, set to 0) or
        ``censor`` is not 0/1.
    """
    path = Path(path)
    df = _read_table(path, "a confounds table", sep="\t", na_values=["n/a"])
    return _check_confounds(df, path)


def read_afni_motion(path: str | os.PathLike) -> pd.DataFrame:
    """Read an AFNI ``3dvolreg`` motion file (``…_desc-mc_rp.txt``) in the confounds convention.

    AFNI writes ``roll pitch yaw`` (degrees; rotations about the I-S, R-L and A-P axes) and
    ``dS dL dP`` (mm). They become ``trans_x = dL``, ``trans_y = dP``, ``trans_z = dS`` (mm) and
    ``rot_x = pitch``, ``rot_y = yaw``, ``rot_z = roll`` (radians), the column order nipype uses for
    AFNI. Signs follow AFNI; framewise displacement does not depend on them.

    Returns
    -------
    DataFrame
        Columns :data:`~deipp_core.data.dataset.MOTION_COLUMNS`, one row per volume.

    Raises
    ------
    DataFormatError
        If the file is not a whitespace-separated table of six numbers per row without missing values.
    """
    path = Path(path)
    try:
        with _open_text(path) as fh:
            rows = [line.split() for line in fh if line.strip() and not line.lstrip().startswith("#")]
        values = np.array(rows, dtype=np.float64)
    except FileNotFoundError:
        raise DataLayoutError(f"{path} does not exist (AFNI motion parameters)") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataFormatError(
            f"{path}: cannot be read as AFNI motion parameters ({err}); expected six numbers per row "
            "(roll pitch yaw [deg] dS dL dP [mm])"
        ) from err
    if values.ndim != 2 or values.shape[1] != 6 or values.shape[0] == 0:
        raise DataFormatError(
            f"{path}: expected rows of six numbers (roll pitch yaw [deg] dS dL dP [mm]), found shape "
            f"{values.shape}"
        )
    if np.isnan(values).any():
        raise DataFormatError(f"{path}: missing values in the motion parameters")
    roll, pitch, yaw, d_s, d_l, d_p = values.T
    return pd.DataFrame(
        {"trans_x": d_l, "trans_y": d_p, "trans_z": d_s,
         "rot_x": np.deg2rad(pitch), "rot_y": np.deg2rad(yaw), "rot_z": np.deg2rad(roll)}
    )


def _read_censoring(path: Path) -> np.ndarray:
    try:
        with _open_text(path) as fh:
            tokens = fh.read().split()
        values = np.array(tokens, dtype=np.float64)
    except FileNotFoundError:
        raise DataLayoutError(f"{path} does not exist (censoring vector)") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataFormatError(f"{path}: cannot be read as a censoring vector ({err}); expected one 0/1 per volume") from err
    if values.size == 0 or not np.isin(values, (0.0, 1.0)).all():
        raise DataFormatError(f"{path}: a censoring vector must hold one 0 or 1 per volume (1 = keep)")
    return values.astype(np.int64)


def min_volumes(tr: float, params: RatingParams | None = None) -> int:
    """Fewest volumes a run needs: the start trim, the lag and ``max(n_bins) × min_segment`` frames.

    ``ceil(30/TR) + 13 + 10 × 5`` with the original parameters (129 at TR 0.46 s): ten rating-decile
    bins need at least five kept frames each (methods §5.4).

    Examples
    --------
    >>> min_volumes(0.46)
    129
    """
    p = params or RatingParams()
    return p.n_trim(tr) + p.lag_tr + max(p.n_bins) * p.min_segment


def _check_tr_value(value, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise DataFormatError(f"{path}: RepetitionTime must be a positive number of seconds, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------------
# Ground truth of the twin
# --------------------------------------------------------------------------------------------------


def read_ground_truth(root: str | os.PathLike, participant: str) -> dict:
    """Read the planted effect of one participant of the digital twin.

    Parameters
    ----------
    root : str or path-like
        The twin's BIDS root.
    participant : str
        Label, with or without ``sub-``.

    Returns
    -------
    dict
        ``"edges"``: DataFrame ``parcel_i, parcel_j, sign, weight`` (the pain-encoding edges);
        ``"meta"``: the ``sub-XX_desc-groundtruth.json`` object; ``"latent_pain"``: dict keyed by
        ``(session, run)`` (``("01", 1)``) of the latent pain of each rating run on the volume grid
        (ndarray); ``"latent_pain_rest"``: the same for rest runs, keyed by session.

    Raises
    ------
    DataLayoutError
        If the ground-truth folder or one of its files is missing.
    DataFormatError
        If a table lacks its columns or holds missing values.
    """
    root = Path(root)
    label = _strip_prefix(participant)
    folder = root / "derivatives" / GROUND_TRUTH_PIPELINE / f"sub-{label}"
    if not folder.is_dir():
        raise DataLayoutError(f"{folder} does not exist; ground truth exists only for the digital twin")
    edges_path = folder / f"sub-{label}_desc-groundtruth_edges.tsv"
    edges = _read_table(edges_path, "a ground-truth edge table", sep="\t")
    missing = [c for c in _GT_EDGE_COLUMNS if c not in edges.columns]
    if missing:
        raise DataFormatError(f"{edges_path}: missing column(s) {missing}; expected {' '.join(_GT_EDGE_COLUMNS)}")
    meta = _read_json(folder / f"sub-{label}_desc-groundtruth.json")
    latent: dict[tuple[str, int], np.ndarray] = {}
    latent_rest: dict[str, np.ndarray] = {}
    for ses_dir in sorted(folder.glob("ses-*")):
        for path in sorted(ses_dir.iterdir()):
            name = parse_bids_filename(path)
            if name.entities.get("desc") != "latentpain" or not _table_extension(name):
                continue
            task, run = name.entities.get("task"), _run_number(name, path)
            table = _read_table(path, "a latent-pain table with column 'pain'", sep="\t")
            if "pain" not in table.columns:
                raise DataFormatError(f"{path}: missing column 'pain'; found {list(table.columns)}")
            pain = pd.to_numeric(table["pain"], errors="coerce").to_numpy(dtype=np.float64)
            if np.isnan(pain).any():
                raise DataFormatError(f"{path}: missing or non-numeric values in column 'pain'")
            session = ses_dir.name[len("ses-"):]
            if task == "rating" and run is not None:
                latent[(session, run)] = pain
            elif task == "rest":
                latent_rest[session] = pain
    return {"edges": edges, "meta": meta, "latent_pain": latent, "latent_pain_rest": latent_rest}


# --------------------------------------------------------------------------------------------------
# Layout: find every file of every run before reading any of them
# --------------------------------------------------------------------------------------------------


def _strip_prefix(label: str) -> str:
    label = str(label)
    return label[len("sub-"):] if label.startswith("sub-") else label


def _read_participants(root: Path) -> list[str]:
    path = root / "participants.tsv"
    if not path.is_file():
        raise DataLayoutError(f"{path} does not exist; a BIDS root needs participants.tsv (column participant_id)")
    table = _read_table(path, "a participants table with column participant_id", sep="\t", dtype=str,
                        keep_default_na=False)
    if "participant_id" not in table.columns:
        raise DataFormatError(f"{path}: no participant_id column (found {list(table.columns)})")
    ids = [s.strip() for s in table["participant_id"]]
    bad = [s for s in ids if not re.fullmatch(r"sub-[A-Za-z0-9]+", s)]
    if bad:
        raise DataFormatError(f"{path}: participant_id {bad[0]!r} is not of the form sub-<label>")
    if len(set(ids)) != len(ids):
        dup = next(s for s in ids if ids.count(s) > 1)
        raise DataFormatError(f"{path}: participant_id {dup!r} occurs more than once")
    if not ids:
        raise DataFormatError(f"{path}: no participants listed")
    return [_strip_prefix(s) for s in ids]


def _select_participants(known: list[str], requested, root: Path) -> list[str]:
    if requested is None:
        return known
    if isinstance(requested, (str, os.PathLike)) or not isinstance(requested, Iterable):
        requested = [requested]
    labels = list(dict.fromkeys(_strip_prefix(str(r)) for r in requested))
    if not labels:
        raise ParameterError("participants is empty; pass None for all participants or a list of labels")
    unknown = [lab for lab in labels if lab not in known]
    if unknown:
        raise ParameterError(
            f"participant(s) {', '.join(unknown)} not in {root / 'participants.tsv'} "
            f"(participants: {', '.join(known)})"
        )
    return labels


def _is_timeseries_file(filename: str) -> bool:
    if "task-rating" not in filename:
        return False
    if filename.endswith(".dtseries.nii"):
        return True
    name = parse_bids_filename(filename)
    return name.suffix == "timeseries" and "atlas" in name.entities and _table_extension(name)


def _holds_timeseries(folder: Path) -> bool:
    for _, _, files in os.walk(folder):
        if any(_is_timeseries_file(f) for f in files):
            return True
    return False


def _find_pipeline(root: Path, pipeline: str | None) -> Path:
    deriv = root / "derivatives"
    # this package's own outputs (results, caches, the twin's ground truth) are never input pipelines
    folders = sorted(p.name for p in deriv.iterdir() if p.is_dir()) if deriv.is_dir() else []
    available = [n for n in folders if n not in _NOT_INPUT_PIPELINES]
    if pipeline is not None:
        path = deriv / str(pipeline)
        if not path.is_dir():
            raise DataLayoutError(
                f"{path} does not exist; derivatives/ holds: {', '.join(available) or 'nothing'}"
            )
        return path
    candidates = [n for n in available if n not in _NOT_INPUT_PIPELINES and _holds_timeseries(deriv / n)]
    if not candidates:
        raise DataLayoutError(
            f"no folder under {deriv} holds rating-run time series (…_task-rating_run-N_atlas-<name>_"
            "timeseries.tsv.gz or *.dtseries.nii); the reader needs preprocessed derivatives "
            f"(found: {', '.join(available) or 'no derivatives folder'})"
        )
    if len(candidates) > 1:
        raise ParameterError(
            f"several derivative folders under {deriv} hold time series ({', '.join(candidates)}); "
            "pass pipeline=<one of them>"
        )
    return deriv / candidates[0]


@dataclass(frozen=True)
class _RunPlan:
    """Every file of one run, found and TR-resolved before anything is read (picklable)."""

    participant: str
    session: str
    task: str
    run: int | None
    timeseries: Path
    rating: Path | None = None
    confounds: Path | None = None
    censoring: Path | None = None
    motion: Path | None = None
    raw_tr: float | None = None
    raw_tr_source: Path | None = None

    @property
    def label(self) -> str:
        run = f" run-{self.run}" if self.run is not None else ""
        return f"sub-{self.participant} ses-{self.session} task-{self.task}{run}"


def _bold_tr(root: Path, participant: str, session: str, task: str, run: int | None,
             listing: _Listing, json_cache: dict) -> tuple[float | None, Path | None]:
    """RepetitionTime from the raw ``_bold.json`` sidecars, following BIDS inheritance."""
    wanted = {"sub": participant, "ses": session, "task": task}
    if run is not None:
        wanted["run"] = str(run)
    found: list[tuple[int, int, Path]] = []
    folders = [root, root / f"sub-{participant}", root / f"sub-{participant}" / f"ses-{session}",
               root / f"sub-{participant}" / f"ses-{session}" / "func"]
    for depth, folder in enumerate(folders):
        for filename in listing(folder):
            if not filename.endswith(".json"):
                continue
            name = parse_bids_filename(filename)
            if name.suffix != "bold" or name.extension != ".json":
                continue
            ents = dict(name.entities)
            if "run" in ents:
                ents["run"] = str(_run_number(name, folder / filename))
            if all(wanted.get(k) == v for k, v in ents.items()):
                found.append((depth, len(ents), folder / filename))
    tr, source = None, None
    for _, _, path in sorted(found):
        if path not in json_cache:
            json_cache[path] = _read_json(path)
        if "RepetitionTime" in json_cache[path]:
            tr, source = _check_tr_value(json_cache[path]["RepetitionTime"], path), path
    return tr, source


def _pick_one(candidates: list[Path], what: str, hint: str) -> Path | None:
    if len(candidates) > 1:
        raise DataLayoutError(
            f"several files for {what}: {', '.join(str(c) for c in candidates)}; {hint}"
        )
    return candidates[0] if candidates else None


def _raw_ratings(ses_dir: Path, participant: str, session: str, listing: _Listing) -> dict[int, list[Path]]:
    found: dict[int, list[Path]] = {}
    for sub in ("func", "beh"):
        for filename in listing(ses_dir / sub):
            name = parse_bids_filename(filename)
            if (name.suffix in RATING_SUFFIXES and _table_extension(name)
                    and name.entities.get("task") == "rating"):
                path = ses_dir / sub / filename
                if name.entities.get("sub") != participant or name.entities.get("ses") != session:
                    raise DataLayoutError(
                        f"{path}: its sub-/ses- entities do not match the folder sub-{participant}/ses-{session}"
                    )
                run = _run_number(name, path)
                if run is None:
                    raise DataLayoutError(f"{path}: a rating file needs a run entity (run-1, run-2, run-3)")
                found.setdefault(run, []).append(path)
    return found


def _derivative_files(folder: Path, participant: str, session: str, listing: _Listing,
                      atlas: str | None) -> dict[tuple[str, int | None], dict[str, list[Path]]]:
    """Time series (TSV) and confounds found in one derivative ``func`` folder, by (task, run)."""
    out: dict[tuple[str, int | None], dict[str, list[Path]]] = {}
    for filename in listing(folder):
        name = parse_bids_filename(filename)
        e = name.entities
        if e.get("sub") != participant or e.get("ses") != session or e.get("task") not in ("rating", "rest"):
            continue
        path = folder / filename
        key = (e["task"], _run_number(name, path))
        if name.suffix in ("timeseries", "regressors") and _table_extension(name) and e.get("desc") == "confounds":
            out.setdefault(key, {}).setdefault("confounds", []).append(path)
        elif name.suffix == "timeseries" and _table_extension(name) and "atlas" in e:
            if atlas is None or e["atlas"] == atlas:
                out.setdefault(key, {}).setdefault("timeseries", []).append(path)
        elif name.suffix == "timeseries" and name.extension == ".txt" and e.get("desc") == "censoring":
            out.setdefault(key, {}).setdefault("censoring", []).append(path)
        elif name.suffix == "rp" and name.extension == ".txt" and e.get("desc") == "mc":
            out.setdefault(key, {}).setdefault("motion", []).append(path)
    return out


def _dtseries_index(pipeline: Path, pattern: str | None) -> dict[tuple[str, str, str, int | None], list[Path]]:
    """All dense time series under ``pipeline``, keyed by (sub, ses, task, run) from their names."""
    index: dict[tuple[str, str, str, int | None], list[Path]] = {}
    for folder, _, files in os.walk(pipeline):
        for filename in files:
            if not filename.endswith(".dtseries.nii") or (pattern is not None and not fnmatch(filename, pattern)):
                continue
            name = parse_bids_filename(filename)
            e = name.entities
            if not {"sub", "ses", "task"} <= e.keys():
                continue
            path = Path(folder) / filename
            index.setdefault((e["sub"], e["ses"], e["task"], _run_number(name, path)), []).append(path)
    return index


def _prefer_denoised(candidates: list[Path]) -> list[Path]:
    """Among several dtseries of one run, keep what the original decodes: desc-denoise, 6-mm (``_s6``)."""
    for keep in (lambda p: parse_bids_filename(p).entities.get("desc") == "denoise",
                 lambda p: p.name.endswith("_s6.dtseries.nii")):
        chosen = [p for p in candidates if keep(p)]
        if chosen:
            candidates = chosen
    return candidates


def _atlas_path(pipeline: Path, atlas: str, participant: str) -> Path:
    individual = pipeline / f"atlas-{atlas}_sub-{participant}_dseg.tsv"
    group = pipeline / f"atlas-{atlas}_dseg.tsv"
    if individual.is_file():
        return individual
    if group.is_file():
        return group
    raise DataLayoutError(
        f"no parcellation table for atlas {atlas!r}: expected {group} or {individual} "
        f"(columns {' '.join(ATLAS_COLUMNS)})"
    )


def _dlabel_for(dlabel, participant: str) -> Path:
    if isinstance(dlabel, Mapping):
        key = next((k for k in dlabel if _strip_prefix(str(k)) == participant), None)
        if key is None:
            raise ParameterError(f"dlabel has no parcellation for participant {participant!r} (keys: {list(dlabel)})")
        return Path(dlabel[key])
    return Path(str(dlabel).replace("{participant}", participant))


def _plan_participant(root: Path, pipeline: Path, participant: str, *, atlas: str | None, cifti: bool,
                      include_rest: bool, dtseries: dict | None, listing: _Listing,
                      json_cache: dict) -> tuple[list[_RunPlan], str | None]:
    """Find and check every file of one participant; return the run plans and the atlas name."""
    subject = root / f"sub-{participant}"
    if not subject.is_dir():
        raise DataLayoutError(f"{subject} does not exist, but participants.tsv lists sub-{participant}")
    sessions = [n[len("ses-"):] for n in listing(subject) if n.startswith("ses-") and (subject / n).is_dir()]
    if not sessions:
        raise DataLayoutError(f"{subject} has no ses-* folders; the study layout is sub-XX/ses-YY/func")
    deriv_subject = pipeline / f"sub-{participant}"

    # atlas name: given, or the single one the participant's time series use
    if not cifti and atlas is None:
        names = set()
        for ses in sessions:
            for filename in listing(deriv_subject / f"ses-{ses}" / "func"):
                if _is_timeseries_file(filename) and not filename.endswith(".dtseries.nii"):
                    names.add(parse_bids_filename(filename).entities["atlas"])
        if len(names) > 1:
            raise ParameterError(
                f"{deriv_subject} holds time series of several atlases ({', '.join(sorted(names))}); "
                "pass atlas=<one of them>"
            )
        if not names:
            if _dtseries_under(pipeline, participant):
                raise ParameterError(
                    f"{pipeline} holds CIFTI dense time series but no parcel time-series tables for "
                    f"sub-{participant}; pass dlabel=<parcellation .dlabel.nii> to average them per parcel"
                )
            raise DataLayoutError(
                f"no parcel time series for sub-{participant} under {deriv_subject} (expected "
                f"ses-YY/func/sub-{participant}_ses-YY_task-rating_run-N_atlas-<name>_timeseries.tsv.gz)"
            )
        atlas = names.pop()

    plans: list[_RunPlan] = []
    rating_sessions = []
    for ses in sessions:
        raw = _raw_ratings(subject / f"ses-{ses}", participant, ses, listing)
        deriv = _derivative_files(deriv_subject / f"ses-{ses}" / "func", participant, ses, listing,
                                  None if cifti else atlas)
        if cifti:
            series = {(k[2], k[3]) for k in dtseries if k[:2] == (participant, ses)}
        else:
            series = {key for key, files in deriv.items() if "timeseries" in files}
        series_runs = {run for task, run in series if task == "rating"}
        extra = sorted(r for r in set(raw) | series_runs if r not in RATING_RUNS)
        if extra:
            files = [str(p) for r in extra for p in raw.get(r, [])] or [f"derivative time series of run-{extra[0]}"]
            raise DataLayoutError(
                f"sub-{participant} ses-{ses}: rating run(s) {extra} found ({', '.join(files)}), but every "
                f"session has exactly runs {', '.join(map(str, RATING_RUNS))}; remove or rename the extra run"
            )
        if not raw and not series_runs:
            logger.info("sub-%s ses-%s has no rating run; session skipped", participant, ses)
        else:
            for run in RATING_RUNS:
                if run not in raw:
                    raise DataLayoutError(
                        f"sub-{participant} ses-{ses}: rating run {run} has no rating file (expected "
                        f"{subject / f'ses-{ses}' / 'func' / f'sub-{participant}_ses-{ses}_task-rating_run-{run}_resp.tsv'}"
                        ", or _beh.tsv / .tsv.gz); every "
                        f"session needs runs {', '.join(map(str, RATING_RUNS))}"
                    )
                rating = _pick_one(raw[run], f"the rating of sub-{participant} ses-{ses} run-{run}",
                                   "keep one rating file per run")
                plans.append(_plan_run(root, pipeline, participant, ses, "rating", run, rating, deriv, dtseries,
                                       atlas, cifti, listing, json_cache))
            rating_sessions.append(ses)
        rest_runs = sorted((run for task, run in series if task == "rest"), key=lambda r: (r is not None, r))
        if include_rest and rest_runs:
            if len(rest_runs) > 1:
                raise DataLayoutError(
                    f"sub-{participant} ses-{ses}: {len(rest_runs)} resting-state runs ({rest_runs}); the study "
                    "has one per session. Pass include_rest=False to skip them"
                )
            plans.append(_plan_run(root, pipeline, participant, ses, "rest", rest_runs[0], None, deriv, dtseries,
                                   atlas, cifti, listing, json_cache))
    if not rating_sessions:
        raise DataLayoutError(
            f"sub-{participant} has no rating runs (looked for ses-YY/func/sub-{participant}_ses-YY_task-rating_"
            f"run-N_{'|'.join(RATING_SUFFIXES)}.tsv under {subject})"
        )
    numbers = [int(s) for s in rating_sessions if s.isdigit()]
    if len(numbers) == len(rating_sessions) and sorted(numbers) != list(range(1, len(numbers) + 1)):
        warnings.warn(
            f"sub-{participant}: rating sessions are {', '.join(rating_sessions)}, not 01..{len(numbers):02d} "
            "without gaps as the original code assumes; sessions are kept by their labels (leave-one-session-"
            "out is unaffected; 'the first k sessions' means the first k in label order)",
            SessionNumberingWarning, stacklevel=3,
        )
    return plans, atlas


def _dtseries_under(pipeline: Path, participant: str) -> bool:
    for _, _, files in os.walk(pipeline):
        if any(f.endswith(".dtseries.nii") and f"sub-{participant}_" in f and "task-rating" in f for f in files):
            return True
    return False


def _plan_run(root: Path, pipeline: Path, participant: str, ses: str, task: str, run: int | None,
              rating: Path | None, deriv: dict, dtseries: dict | None, atlas: str | None, cifti: bool,
              listing: _Listing, json_cache: dict) -> _RunPlan:
    files = deriv.get((task, run), {})
    label = f"sub-{participant} ses-{ses} task-{task}{f' run-{run}' if run is not None else ''}"
    base = f"sub-{participant}_ses-{ses}_task-{task}{f'_run-{run}' if run is not None else ''}"
    folder = pipeline / f"sub-{participant}" / f"ses-{ses}" / "func"
    if cifti:
        candidates = _prefer_denoised(dtseries.get((participant, ses, task, run), []))
        if not candidates:
            raise DataLayoutError(
                f"{label}: no dense time series {base}*.dtseries.nii under {pipeline}"
                + (f" (the rating file {rating} exists)" if rating else "")
            )
        series = _pick_one(candidates, f"{label} (dense time series)",
                           "pass dtseries_glob='<pattern>' (e.g. '*desc-denoise_bold_Atlas_s6.dtseries.nii')")
    else:
        series = _pick_one(files.get("timeseries", []), f"{label} (atlas {atlas})", "keep one per run and atlas")
        if series is None:
            raise DataLayoutError(
                f"{label}: parcel time series {folder / f'{base}_atlas-{atlas}_timeseries.tsv.gz'} does not exist"
                + (f" (the rating file {rating} does)" if rating else "")
            )
    confounds = _pick_one(files.get("confounds", []), f"{label} (confounds)", "keep one confounds table per run")
    censoring = motion = None
    if confounds is None:  # the original pipeline's files (methods §1.2)
        censoring = _pick_one(files.get("censoring", []), f"{label} (censoring)", "keep one per run")
        motion = _pick_one(files.get("motion", []), f"{label} (motion parameters)", "keep one per run")
        if censoring is None or motion is None:
            raise DataLayoutError(
                f"{label}: no confounds for the censor mask and motion: expected "
                f"{folder / (base + '_desc-confounds_timeseries.tsv')} (columns {' '.join(_CONFOUND_COLUMNS)}), "
                f"or {folder / (base + '_desc-censoring_timeseries.txt')} with {folder / (base + '_desc-mc_rp.txt')}"
            )
    raw_tr, raw_source = _bold_tr(root, participant, ses, task, run, listing, json_cache)
    return _RunPlan(participant=participant, session=ses, task=task, run=run, timeseries=series, rating=rating,
                    confounds=confounds, censoring=censoring, motion=motion, raw_tr=raw_tr,
                    raw_tr_source=raw_source)


# --------------------------------------------------------------------------------------------------
# Reading one run (pure and picklable, so joblib can run it in parallel)
# --------------------------------------------------------------------------------------------------


def _resolve_tr(plan: _RunPlan, other: float | None, other_source: Path | None) -> float:
    trs = [(tr, src) for tr, src in ((plan.raw_tr, plan.raw_tr_source), (other, other_source)) if tr is not None]
    if not trs:
        raise DataLayoutError(
            f"{plan.label}: no RepetitionTime found: neither a raw _bold.json sidecar (with BIDS inheritance) "
            f"nor {other_source or plan.timeseries} gives one"
        )
    if len(trs) == 2 and abs(trs[0][0] - trs[1][0]) > _TR_TOLERANCE_S:
        raise DataFormatError(
            f"{plan.label}: the TR disagrees between files: {trs[0][0]:g} s in {trs[0][1]} but "
            f"{trs[1][0]:g} s in {trs[1][1]}"
        )
    return trs[0][0]


@dataclass(frozen=True)
class _RunCache:
    """Where the reader caches parsed runs (picklable, for joblib workers)."""

    folder: Path  # derivatives/deipp/cache of the data set
    root: Path  # the BIDS root, to which the source fingerprints are relative
    digest: str  # code digest of _READER_SOURCES


def _run_cache_entry(plan: _RunPlan, names: tuple[str, ...] | None, tr: float,
                     cache: _RunCache) -> tuple[ArrayCache, str, str]:
    """(store, name, key) of the cached parse of one run.

    The entry is two files: ``<name>_key-<key>.npy`` holds the time series (memory-mapped when read)
    and ``<name>tables_key-<key>.npz`` the confounds and rating; the second is written last, so its
    presence means the entry is complete.

    The key covers every source file of the run (relative name, size, modification time in ns), the
    atlas's parcel names the header was checked against, the TR (the AFNI route's FD depends on it)
    and the reader's code, so any change to them misses and the run is parsed again.
    """
    sources = [None if f is None else file_fingerprint(f, cache.root)
               for f in (plan.timeseries, plan.confounds, plan.censoring, plan.motion, plan.rating)]
    key = hash_key("parsed-run", cache.digest, sources, None if names is None else list(names), repr(tr))
    run = f"_run-{plan.run}" if plan.run is not None else ""
    name = f"sub-{plan.participant}_ses-{plan.session}_task-{plan.task}{run}_desc-parsed"
    store = ArrayCache(cache.folder / f"sub-{plan.participant}" / f"ses-{plan.session}")
    return store, name, key


def _save_run(entry: tuple[ArrayCache, str, str], plan: _RunPlan, timeseries: np.ndarray,
              confounds: pd.DataFrame, rating: pd.DataFrame | None) -> None:
    store, name, key = entry
    tables = {"confounds": confounds.loc[:, list(_CONFOUND_COLUMNS)].to_numpy(np.float64)}
    if rating is not None:
        tables["rating"] = rating.loc[:, ["time", "value"]].to_numpy(np.float64)
    try:
        store.save(name, key, timeseries)
        store.save_npz(name + "tables", key, **tables)
    except OSError as err:
        logger.warning("%s: could not cache the parsed run (%s); continuing without", plan.label, err)


def _load_run(entry: tuple[ArrayCache, str, str],
              plan: _RunPlan) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame | None] | None:
    """The run's parsed tables from its cache entry, exactly as the readers return them, or None.

    The time series comes back memory-mapped and read-only.
    """
    store, name, key = entry
    tables = store.load_npz(name + "tables", key)
    if tables is None:
        return None
    ts = store.load(name, key, mmap=True)
    conf, rating = tables.get("confounds"), tables.get("rating")
    if (ts is None or conf is None or ts.ndim != 2 or conf.shape != (ts.shape[0], len(_CONFOUND_COLUMNS))
            or (rating is None) != (plan.rating is None) or (rating is not None and rating.shape[1:] != (2,))):
        return None
    confounds = pd.DataFrame(conf[:, :-1], columns=list(_CONFOUND_COLUMNS[:-1]))
    confounds["censor"] = conf[:, -1].astype(np.int64)
    if rating is not None:
        rating = pd.DataFrame({"time": rating[:, 0].copy(), "value": rating[:, 1].copy()})
    return ts, confounds, rating


def _read_run(plan: _RunPlan, names: tuple[str, ...] | None, parcel_map, cache: _RunCache | None = None) -> Run:
    entry = None
    if plan.timeseries.name.endswith(".dtseries.nii"):
        from deipp_core.data.cifti import parcel_timeseries, read_dtseries_info

        info = read_dtseries_info(plan.timeseries)
        tr = _resolve_tr(plan, info.tr, plan.timeseries)
        timeseries = parcel_timeseries(plan.timeseries, parcel_map)
        nan = _first_nan(timeseries)
        if nan is not None:
            raise DataFormatError(
                f"{plan.timeseries}: the parcel means are NaN for {int(np.isnan(timeseries).any(axis=0).sum())} "
                f"parcel(s), first at volume {nan[0]}, parcel {parcel_map.labels['name'].iloc[nan[1]]!r} "
                "(the dense time series has missing values in that parcel)"
            )
    else:
        sidecar = plan.timeseries.with_name(plan.timeseries.name.split(".")[0] + ".json")
        deriv_tr = None
        if sidecar.is_file():
            meta = _read_json(sidecar)
            if "RepetitionTime" in meta:
                deriv_tr = _check_tr_value(meta["RepetitionTime"], sidecar)
        tr = _resolve_tr(plan, deriv_tr, sidecar)
        if cache is not None:
            entry = _run_cache_entry(plan, names, tr, cache)
            unpacked = _load_run(entry, plan)
            if unpacked is not None:
                timeseries, confounds, rating = unpacked
                return Run(session=plan.session, task=plan.task, run=plan.run if plan.task == "rating" else None,
                           tr=tr, timeseries=timeseries, confounds=confounds, rating=rating,
                           source=str(plan.timeseries))
        timeseries = read_parcel_timeseries(plan.timeseries, names)
    n_vol = timeseries.shape[0]
    if plan.confounds is not None:
        confounds = read_confounds(plan.confounds)
        conf_source = plan.confounds
    else:
        censor = _read_censoring(plan.censoring)
        motion = read_afni_motion(plan.motion)
        for path, n in ((plan.censoring, censor.size), (plan.motion, len(motion))):
            if n != n_vol:
                raise DataFormatError(f"{path}: {n} rows, but {plan.timeseries} has {n_vol} volumes")
        from deipp_core.motion import framewise_displacement

        # the censoring FD (defaults: 0.1-Hz low-pass, 50-mm radius), as the twin's confounds column holds it
        fd = np.asarray(framewise_displacement(motion, tr), dtype=np.float64)
        confounds = motion.assign(framewise_displacement=fd, censor=censor)
        conf_source = plan.motion
    if len(confounds) != n_vol:
        raise DataFormatError(
            f"{conf_source}: {len(confounds)} rows, but the time series {plan.timeseries} has {n_vol} volumes"
        )
    rating = read_rating(plan.rating) if plan.rating is not None else None
    if entry is not None:
        _save_run(entry, plan, timeseries, confounds, rating)
    return Run(session=plan.session, task=plan.task, run=plan.run if plan.task == "rating" else None, tr=tr,
               timeseries=timeseries, confounds=confounds, rating=rating, source=str(plan.timeseries))


def _check_participant_runs(participant: str, runs: list[Run], params: RatingParams) -> None:
    first = runs[0]
    for r in runs[1:]:
        if abs(r.tr - first.tr) > _TR_TOLERANCE_S:
            raise DataFormatError(
                f"sub-{participant}: the TR differs between runs: {first.tr:g} s in {first.source} but "
                f"{r.tr:g} s in {r.source}; all runs of a participant must share one TR"
            )
    rating = [r for r in runs if r.task == "rating"]
    ref = rating[0]
    for r in rating[1:]:
        if r.n_volumes != ref.n_volumes:
            raise DataFormatError(
                f"sub-{participant}: rating runs differ in length: {ref.n_volumes} volumes in {ref.source} but "
                f"{r.n_volumes} in {r.source}; the original code reads nvol once (run 1 of session 1), so all "
                "rating runs must have the same number of volumes"
            )
    for r in runs:
        need = min_volumes(r.tr, params)
        if r.n_volumes < need:
            raise AllFramesCensoredError(
                f"{r.source}: {r.n_volumes} volumes, but at least {need} are needed (ceil({params.trim_s:g}/TR) = "
                f"{params.n_trim(r.tr)} trimmed + {params.lag_tr} lag + {max(params.n_bins)} bins × "
                f"{params.min_segment} frames)"
            )


def _describe(root: Path, description: dict, source: str, pipeline: Path, atlas_label: str) -> str:
    if source == "twin":
        twin = description["DeippTwin"]
        parts = []
        if "seed" in twin:
            parts.append(f"seed {twin['seed']}")
        if twin.get("scale"):
            parts.append(f"{twin['scale']} scale")
        if twin.get("null"):
            parts.append("null mode: no pain signal")
        return f"digital twin (SIMULATED data{'; ' + ', '.join(parts) if parts else ''})"
    blob = json.dumps(description)
    name = "ds006815" if ("ds006815" in blob or "ds006815" in root.name) else (description.get("Name") or root.name)
    return f"{name} (real data) at {root}; derivatives {pipeline.name}, {atlas_label}"


# --------------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------------


def read_dataset(
    root: str | os.PathLike,
    *,
    participants: str | Iterable[str] | None = None,
    pipeline: str | None = None,
    atlas: str | None = None,
    dlabel: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
    include_rest: bool = True,
    dtseries_glob: str | None = None,
    n_jobs: int | None = 1,
    use_cache: bool | None = None,
) -> Dataset:
    """Read the digital twin or a local copy of ds006815 into a :class:`Dataset`.

    Parameters
    ----------
    root : str or path-like
        The BIDS root (the folder with ``dataset_description.json``).
    participants : str or iterable of str, optional
        Labels to read (``"01"`` or ``"sub-01"``); all of ``participants.tsv`` by default.
    pipeline : str, optional
        Name of the folder under ``derivatives/`` that holds the time series. By default, the one
        folder that holds ``…_task-rating_…_atlas-<name>_timeseries.tsv.gz`` or ``….dtseries.nii`` files
        (``deipp-twin`` for the twin).
    atlas : str, optional
        Atlas name of the parcel time series (``atlas-<name>``); by default the only one present. With
        ``dlabel``, names a ``atlas-<name>_dseg.tsv`` that supplies parcel names, networks and
        coordinates for the CIFTI parcels (its ``index`` must equal the parcel ids).
    dlabel : path-like or mapping, optional
        Read CIFTI dense time series and average them within the parcels of this parcellation
        (``.dlabel.nii``, or ``.dscalar.nii``/``.dtseries.nii`` of integer ids, 0 = none). A path may
        contain ``{participant}`` (replaced by the label), or pass a mapping label → path for
        individual parcellations.
    include_rest : bool, default=True
        Also read each session's resting-state run when its time series exists.
    dtseries_glob : str, optional
        With ``dlabel``, keep only dense time series whose file name matches this pattern, e.g.
        ``"*desc-denoise_bold_Atlas_s6.dtseries.nii"``. By default ``desc-denoise`` and ``_s6`` files are
        preferred when a run has several (what the original decodes).
    n_jobs : int, optional
        Runs read in parallel by joblib (``-1``: all cores). Default 1.
    use_cache : bool, optional
        Keep each parsed run (time series, confounds, rating; float64 exactly as parsed) in
        ``derivatives/deipp/cache/sub-XX/ses-YY/`` and read it from there next time: the time series
        as a ``.npy`` that is memory-mapped read-only (pages are read when used), the tables as a
        small ``.npz``. The key covers the run's source files (name, size, modification time), the
        atlas's parcel names, the TR and the reader's code, so a changed input is parsed again. By
        default on unless the environment variable ``DEIPP_CACHE`` is ``0``. CIFTI runs are not
        cached.

    Returns
    -------
    Dataset
        ``source`` is ``"twin"`` when ``dataset_description.json`` has a ``DeippTwin`` object, else
        ``"bids"``; ``ground_truth`` holds :func:`read_ground_truth` for twin participants that have it.

    Raises
    ------
    DataLayoutError
        A required file or folder is missing, or a forbidden one is present (e.g. a run-4, a session
        with fewer than three rating runs).
    DataFormatError
        A file's content is wrong (unreadable, empty, NaN, ratings outside [0, 1], non-monotonic time,
        TR disagreement, runs of different length, too few volumes, header/atlas mismatch, confounds
        without censor or FD).
    ParameterError
        An argument is wrong (unknown participant, ambiguous pipeline or atlas).

    Warns
    -----
    SessionNumberingWarning
        When rating sessions are not numbered 01..S without gaps.

    Examples
    --------
    >>> ds = read_dataset("data/twin-quick-seed0")  # doctest: +SKIP
    >>> ds.description  # doctest: +SKIP
    'digital twin (SIMULATED data; seed 0, quick scale)'
    """
    from joblib import Parallel, delayed

    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataLayoutError(f"{root} is not a folder; pass the root of a BIDS data set")
    description = _read_json(root / "dataset_description.json")
    source = "twin" if isinstance(description.get("DeippTwin"), dict) else "bids"
    labels = _select_participants(_read_participants(root), participants, root)
    pipe = _find_pipeline(root, pipeline)
    cifti = dlabel is not None
    listing, json_cache = _Listing(), {}
    dtseries = _dtseries_index(pipe, dtseries_glob) if cifti else None
    params = RatingParams()
    cache = None
    if not cifti and cache_enabled(use_cache):
        folder = cache_root(root)
        if folder is not None:
            cache = _RunCache(folder=folder, root=root, digest=code_digest(_READER_SOURCES))

    plans: list[_RunPlan] = []
    atlases: dict[str, pd.DataFrame] = {}
    names: dict[str, tuple[str, ...] | None] = {}
    maps: dict[str, object] = {}
    used_atlases: list[str] = []
    for label in labels:
        runs, atlas_name = _plan_participant(root, pipe, label, atlas=atlas, cifti=cifti, include_rest=include_rest,
                                             dtseries=dtseries, listing=listing, json_cache=json_cache)
        plans.extend(runs)
        if cifti:
            atlases[label], maps[label] = _cifti_atlas(pipe, label, runs, dlabel, atlas)
            names[label] = None
        else:
            atlases[label] = read_atlas(_atlas_path(pipe, atlas_name, label))
            names[label] = tuple(atlases[label]["name"])
            used_atlases.append(atlas_name)

    logger.info("reading %d runs of %d participant(s) from %s", len(plans), len(labels), pipe)
    read = Parallel(n_jobs=n_jobs)(
        delayed(_read_run)(p, names[p.participant], maps.get(p.participant), cache) for p in plans
    )
    by_participant: dict[str, list[Run]] = {label: [] for label in labels}
    for plan, run in zip(plans, read):
        by_participant[plan.participant].append(run)

    result: dict[str, Participant] = {}
    for label in labels:
        runs = sorted(by_participant[label], key=lambda r: (r.session, -1 if r.run is None else r.run))
        _check_participant_runs(label, runs, params)
        result[label] = Participant(label=label, atlas=atlases[label], runs=tuple(runs))

    ground_truth = {}
    if source == "twin":
        for label in labels:
            if (root / "derivatives" / GROUND_TRUTH_PIPELINE / f"sub-{label}").is_dir():
                ground_truth[label] = read_ground_truth(root, label)
    if cifti:
        atlas_label = ("individual CIFTI parcellations" if isinstance(dlabel, Mapping)
                       else f"parcellation {Path(str(dlabel)).name}")
    else:
        atlas_label = f"atlas {', '.join(sorted(set(used_atlases)))}"
    return Dataset(participants=result, source=source, root=root,
                   description=_describe(root, description, source, pipe, atlas_label),
                   ground_truth=ground_truth)


def _cifti_atlas(pipeline: Path, participant: str, runs: list[_RunPlan], dlabel, atlas: str | None):
    """Load the participant's CIFTI parcellation, map it onto the dtseries and build the atlas table."""
    from deipp_core.data.cifti import load_parcellation, map_parcellation, read_dtseries_info

    parc = load_parcellation(_dlabel_for(dlabel, participant))
    first = next(r for r in runs if r.task == "rating")
    info = read_dtseries_info(first.timeseries)
    parcel_map = map_parcellation(parc, info.axis, first.timeseries)
    labels = parcel_map.labels
    if atlas is not None:
        path = _atlas_path(pipeline, atlas, participant)
        table = read_atlas(path)
        ids, keys = np.sort(table["index"].to_numpy()), labels["index"].to_numpy()
        if not np.array_equal(ids, keys):
            extra, missing = np.setdiff1d(ids, keys), np.setdiff1d(keys, ids)
            raise DataFormatError(
                f"{path}: its index column does not match the parcel ids of {parc.path} "
                f"(only in the table: {extra[:5].tolist()}, only in the parcellation: {missing[:5].tolist()})"
            )
        table = table.set_index("index").loc[keys].reset_index()
    else:
        table = pd.DataFrame({"index": labels["index"].to_numpy(np.int64), "name": labels["name"].astype(str),
                              "network": "n/a", "x": np.nan, "y": np.nan, "z": np.nan, "included": True})
    return table.loc[:, list(ATLAS_COLUMNS)], parcel_map
