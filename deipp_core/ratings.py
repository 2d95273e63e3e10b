"""Continuous ratings on the fMRI time grid: resampling, trimming, lag, censoring and bins.

This module reproduces ``analysis_rating.m`` of the original DEIPP code (methods spec,
``reference/deipp_methods.md`` §5) with pure functions:

1. :func:`resample_to_tr` puts the raw rating (sampled at every screen flip) on the volume grid
   (``rating_dat_orig``), by linear interpolation at the mid-acquisition time of each volume.
2. :func:`align_run` drops the first ``ceil(30 s / TR)`` samples, pairs the rating at TR index ``t``
   with the brain volume at ``t + 13`` (the hemodynamic lag) and removes censored volumes
   (``rating_dat``).
3. :func:`rating_bins` splits the kept frames into rating-quantile bins (``rbin``: deciles train the
   decoder), :func:`time_bins` into MATLAB ``discretize`` time bins (``tbin``: the "1-min" and "2-min"
   evaluation units).
4. :func:`bin_means` averages anything frame-wise (ratings, motion, predictions) within bins.

Labels are 0-based here (MATLAB: 1-based); ``-1`` marks a frame that belongs to no bin (MATLAB: NaN).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from deipp_core.exceptions import AllFramesCensoredError, DataFormatError, ParameterError

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    from deipp_core.data.dataset import Run

__all__ = [
    "RatingParams",
    "RunFrames",
    "resample_to_tr",
    "rating_bins",
    "time_bins",
    "discretize_edges",
    "bin_means",
    "kept_frames",
    "align_run",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatingParams:
    """How ratings are put on the fMRI grid and binned (methods §5; defaults = the original code).

    Parameters
    ----------
    tdummy_s : float, default=10.0
        Dummy time removed at the start of every scan by preprocessing (MATLAB ``rmd.tdummy``).
        The rating clock starts at the end of it.
    trim_s : float, default=30.0
        Extra time dropped at the start of every run because the rating cursor starts at 0
        (MATLAB ``ndvol = ceil(30/TR)``).
    lag_tr : int, default=13
        Hemodynamic lag in volumes: the rating at TR index ``t`` is paired with the brain volume at
        ``t + lag_tr`` (MATLAB ``yhdel``; 13 TR = 5.98 s at TR 0.46 s).
    min_segment : int, default=5
        Runs of equal rating-bin label shorter than this are excluded (MATLAB ``rbin_thr_bad``).
    n_bins : tuple of int, default=(2, 5, 10)
        Numbers of bins per run (MATLAB ``nbin``); 10 is used for modeling and the "1-min" units, 5 for
        the "2-min" units.

    Examples
    --------
    >>> p = RatingParams()
    >>> p.n_dummy(0.46), p.n_trim(0.46)
    (22, 66)
    """

    tdummy_s: float = 10.0
    trim_s: float = 30.0
    lag_tr: int = 13
    min_segment: int = 5
    n_bins: tuple[int, ...] = (2, 5, 10)

    def __post_init__(self) -> None:
        for name in ("tdummy_s", "trim_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not (
                math.isfinite(value) and value >= 0
            ):
                raise ParameterError(
                    f"RatingParams.{name} must be a finite number of seconds >= 0; got {value!r}"
                )
        for name, low in (("lag_tr", 0), ("min_segment", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
                raise ParameterError(
                    f"RatingParams.{name} must be an integer >= {low}; got {value!r}"
                )
        n_bins = self.n_bins
        if isinstance(n_bins, Integral):
            n_bins = (n_bins,)
        try:
            n_bins = tuple(n_bins)
        except TypeError:
            raise ParameterError(
                f"RatingParams.n_bins must be a tuple of integers >= 1; got {self.n_bins!r}"
            ) from None
        if not n_bins or any(
            isinstance(n, bool) or not isinstance(n, Integral) or n < 1 for n in n_bins
        ):
            raise ParameterError(
                "RatingParams.n_bins must be a non-empty tuple of integers >= 1; "
                f"got {self.n_bins!r}"
            )
        if len(set(n_bins)) != len(n_bins):
            raise ParameterError(f"RatingParams.n_bins has repeated values: {self.n_bins!r}")
        object.__setattr__(self, "n_bins", tuple(int(n) for n in n_bins))

    def n_dummy(self, tr: float) -> int:
        """Number of dummy volumes, ``ceil(tdummy_s / tr)`` (22 at TR 0.46 s).

        Computed as in MATLAB (one IEEE division, then ``ceil``), so the two agree bit for bit.
        """
        return math.ceil(self.tdummy_s / _check_tr(tr))

    def n_trim(self, tr: float) -> int:
        """Number of volumes trimmed at the start of a run, ``ceil(trim_s / tr)`` (66 at TR 0.46 s)."""
        return math.ceil(self.trim_s / _check_tr(tr))


def _check_tr(tr: float) -> float:
    if isinstance(tr, bool) or not isinstance(tr, Real) or not (math.isfinite(tr) and tr > 0):
        raise ParameterError(f"the repetition time must be a positive number of seconds; got {tr!r}")
    return float(tr)


# --------------------------------------------------------------------------------------------------
# Resampling (§5.1)
# --------------------------------------------------------------------------------------------------


def resample_to_tr(
    rating: pd.DataFrame, n_volumes: int, tr: float, tdummy_s: float = 10.0
) -> np.ndarray:
    """Resample a continuous rating to the volume grid (MATLAB ``rating_dat_orig``).

    Linear interpolation (MATLAB ``interp1``) of ``value`` over ``time`` at the mid-acquisition time
    of every volume kept after dummy removal,
    ``t_k = n_dummy·TR − tdummy + 0.5·TR + k·TR`` (seconds on the rating clock),
    ``k = 0 … n_volumes−1``.
    Queries outside the sampled time range give NaN, as ``interp1`` does.

    Parameters
    ----------
    rating : DataFrame
        Columns ``time`` (seconds from the end of the disdaq) and ``value``.
    n_volumes : int
        Number of volumes after dummy removal.
    tr : float
        Repetition time in seconds.
    tdummy_s : float, default=10.0
        Dummy time removed by preprocessing; ``n_dummy = ceil(tdummy_s / tr)``.

    Returns
    -------
    ndarray of shape (n_volumes,)
        The rating at each volume, NaN where the rating was not sampled.

    Raises
    ------
    DataFormatError
        If the columns are missing, or the time stamps repeat (``interp1`` refuses repeated grid
        points).

    Examples
    --------
    >>> df = pd.DataFrame({"time": [0.0, 1.0], "value": [0.0, 1.0]})
    >>> resample_to_tr(df, 4, 0.46).round(2)  # t = 0.35, 0.81, 1.27, 1.73 s
    array([0.35, 0.81,  nan,  nan])
    """
    tr = _check_tr(tr)
    if isinstance(n_volumes, bool) or not isinstance(n_volumes, Integral) or n_volumes < 0:
        raise ParameterError(f"n_volumes must be an integer >= 0; got {n_volumes!r}")
    missing = {"time", "value"} - set(rating.columns)
    if missing:
        raise DataFormatError(
            f"a rating table needs columns 'time' and 'value'; missing {sorted(missing)} "
            f"(columns present: {list(rating.columns)})"
        )
    t = rating["time"].to_numpy(dtype=float)
    v = rating["value"].to_numpy(dtype=float)
    ok = np.isfinite(t)
    t, v = t[ok], v[ok]
    if t.size == 0:
        return np.full(int(n_volumes), np.nan)
    order = np.argsort(t, kind="stable")  # interp1 sorts an unsorted grid
    t, v = t[order], v[order]
    if np.any(np.diff(t) == 0):
        dup = t[1:][np.diff(t) == 0][0]
        raise DataFormatError(
            f"rating time stamps must be distinct (MATLAB interp1 refuses repeated grid points); "
            f"time {dup!r} occurs more than once"
        )
    n_dummy = math.ceil(tdummy_s / tr)
    tq = n_dummy * tr - tdummy_s + 0.5 * tr + np.arange(int(n_volumes)) * tr
    out = np.full(tq.shape, np.nan)
    inside = (tq >= t[0]) & (tq <= t[-1])
    if t.size == 1:
        out[inside] = v[0]
    else:
        out[inside] = np.interp(tq[inside], t, v)
    return out


# --------------------------------------------------------------------------------------------------
# Rating-quantile bins (§5.4)
# --------------------------------------------------------------------------------------------------


def _quantile_labels(ratings: np.ndarray, n_bins: int) -> np.ndarray:
    """Rating-quantile labels before the short-segment rule (0 = lowest ratings)."""
    n_f = ratings.size
    order = np.argsort(ratings, kind="stable")  # ties ranked by time order (MATLAB sort is stable)
    rank = np.empty(n_f, dtype=np.int64)
    rank[order] = np.arange(1, n_f + 1)
    # Thresholds: MATLAB quantile of the ranks at p = j/n, which is numpy's 'hazen' method
    # (q_j = clip(n_f·j/n + 0.5, 1, n_f)). Both evaluate it in floating point from p = j/n, so when the
    # exact threshold is an integer (n_f ≡ 5 mod 10 for deciles: common) rounding decides on which
    # side that rank falls; numpy and MATLAB's interpolation (prctile: r = p·n_f, k = floor(r + 0.5),
    # q = (0.5 + r − k)·(k + 1) + (0.5 − r + k)·k) round alike, so we keep the floating-point rule
    # rather than exact arithmetic (tests/test_ratings.py checks the agreement).
    ranks = np.arange(1, n_f + 1, dtype=float)
    q = np.quantile(ranks, np.arange(1, n_bins) / n_bins, method="hazen")
    above = rank[:, None] > q[None, :]
    return above.sum(axis=1).astype(np.int64)


def _segments(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the maximal runs of equal labels."""
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    lengths = np.diff(np.r_[starts, labels.size])
    return starts, lengths


def _remove_short_segments(labels: np.ndarray, min_segment: int) -> np.ndarray:
    """Set runs of equal labels shorter than ``min_segment`` to −1, except the last run (§5.4)."""
    out = labels.copy()
    starts, lengths = _segments(labels)
    # [SUBTLE] the original compares each segment start with the *next* start, so the final
    # segment is never checked and survives whatever its length.
    for s, n in zip(starts[:-1], lengths[:-1]):
        if n < min_segment:
            out[s : s + n] = -1
    return out


def rating_bins(ratings: np.ndarray, n_bins: int, min_segment: int = 5) -> np.ndarray:
    """Rating-quantile bin labels of a run's kept frames (MATLAB ``rbin_idx``; methods §5.4).

    The ratings are ranked 1…n_f with a stable ascending sort (ties ranked by time order). The
    thresholds are the MATLAB quantiles of the ranks at ``j/n``, ``j = 1…n−1`` (numpy
    ``method='hazen'``: ``q_j = n_f·j/n + 0.5``), and the label of a frame is the number of thresholds
    its rank exceeds. Maximal runs of equal labels shorter than ``min_segment`` frames are then
    excluded, **except the last run, which the original code never checks**.

    Parameters
    ----------
    ratings : array-like of shape (n_frames,)
        Ratings of the kept frames, in time order (no NaN).
    n_bins : int
        Number of bins (10 gives the deciles the decoder is trained on).
    min_segment : int, default=5
        Minimum length of a run of equal labels.

    Returns
    -------
    ndarray of int64, shape (n_frames,)
        Labels 0…n_bins−1 (0 = lowest ratings); −1 for frames excluded by the short-segment rule.

    Raises
    ------
    DataFormatError
        If a rating is NaN.
    AllFramesCensoredError
        If some label 0…n_bins−1 has no frame left (MATLAB ``splitapply`` would stop with an error).

    Examples
    --------
    >>> rating_bins([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 2, min_segment=1)
    array([0, 0, 0, 1, 1, 1])
    >>> rating_bins([0.9, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9], 2, min_segment=2)  # ranks 5 1 2 3 4 6 7
    array([-1,  0,  0,  0,  0,  1,  1])
    """
    ratings = np.asarray(ratings, dtype=float)
    n_bins = _check_int(n_bins, "n_bins", 1)
    min_segment = _check_int(min_segment, "min_segment", 1)
    if ratings.ndim != 1:
        raise DataFormatError(f"ratings must be one-dimensional; got shape {ratings.shape}")
    if np.isnan(ratings).any():
        raise DataFormatError(
            f"{int(np.isnan(ratings).sum())} of {ratings.size} ratings are NaN; rating bins need a "
            "rating for every kept frame"
        )
    if ratings.size == 0:
        raise AllFramesCensoredError(f"no frame to split into {n_bins} rating-quantile bins")
    labels = _remove_short_segments(_quantile_labels(ratings, n_bins), min_segment)
    _require_all_labels(labels, n_bins, "rating-quantile")
    return labels


def _require_all_labels(labels: np.ndarray, n_bins: int, what: str) -> None:
    present = np.zeros(n_bins, dtype=bool)
    valid = labels[labels >= 0]
    present[valid] = True
    if not present.all():
        absent = np.flatnonzero(~present).tolist()
        raise AllFramesCensoredError(
            f"{what} bin(s) {absent} (0-based) of {n_bins} have no frame among the {labels.size} "
            f"kept frames ({int((labels < 0).sum())} excluded by the short-segment rule); the "
            "original MATLAB splitapply would stop with an error here. The run has too few usable "
            "frames for this number of bins: use fewer bins or exclude the run"
        )


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ParameterError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------------
# Time bins: MATLAB discretize(1:n_f, N) with its "nice" bin picker (§5.5)
# --------------------------------------------------------------------------------------------------


def discretize_edges(n_frames: int, n_bins: int) -> np.ndarray:
    """Bin edges that MATLAB ``discretize(1:n_frames, n_bins)`` uses (methods §5.5).

    A port of MATLAB's ``binpicker`` for a requested number of bins, applied to the data 1…n_f
    (``xmin = 1``, ``xmax = n_f``, raw width ``(n_f − 1)/N``)::

        w0 = 10^floor(log10 r) · floor(r / 10^floor(log10 r))      # "nice" base width
        L  = min(w0 · floor(1 / w0), 1)                            # left edge (0 when w0 > 1)
        if N > 1:  ll = (n_f − L)/N;  ul = (n_f − L)/(N − 1);  p10 = 10^floor(log10(ul − ll))
                   w  = p10 · ceil(ll / p10)
        edges = [L, L + w, …, L + (N−1)·w, max(L + N·w, n_f)]

    For ``n_frames = 1`` (constant data) ``binpicker`` centres ``N`` bins of total width 1 on the
    value: edges ``0.5 + k/N``. The arithmetic follows MATLAB operation by operation, so the edges are
    the same doubles.

    Parameters
    ----------
    n_frames : int
        Number of kept frames (>= 1).
    n_bins : int
        Number of bins (>= 1).

    Returns
    -------
    ndarray of float64, shape (n_bins + 1,)

    Examples
    --------
    >>> discretize_edges(1225, 10).tolist()
    [0.0, 130.0, 260.0, 390.0, 520.0, 650.0, 780.0, 910.0, 1040.0, 1170.0, 1300.0]
    """
    n_f = _check_int(n_frames, "n_frames", 1)
    n = _check_int(n_bins, "n_bins", 1)
    xmin, xmax = 1.0, float(n_f)
    xscale = max(abs(xmin), abs(xmax))
    xrange = xmax - xmin
    raw = max(xrange / n, float(np.spacing(xscale)))
    if xrange > max(math.sqrt(float(np.spacing(xscale))), np.finfo(float).tiny):
        pow10 = 10.0 ** math.floor(math.log10(raw))
        rel = raw / pow10
        width = pow10 * math.floor(rel)
        left = min(width * math.floor(xmin / width), xmin)
        if n > 1:
            ll = (xmax - left) / n
            ul = (xmax - left) / (n - 1)
            p10 = 10.0 ** math.floor(math.log10(ul - ll))
            width = p10 * math.ceil(ll / p10)
        right = max(left + n * width, xmax)
    else:  # constant data (n_f == 1)
        bin_range = max(1.0, math.ceil(n * float(np.spacing(xscale))))
        left = math.floor(2 * (xmin - bin_range / 4)) / 2
        right = math.ceil(2 * (xmax + bin_range / 4)) / 2
        width = (right - left) / n
    return np.r_[left, left + np.arange(1, n) * width, right].astype(float)


def time_bins(n_frames: int, n_bins: int) -> np.ndarray:
    """Time-bin labels of a run's kept frames: MATLAB ``discretize(1:n_frames, n_bins)`` (§5.5).

    Bin ``j`` is ``[e_j, e_{j+1})`` over the **kept-frame index** 1…n_f (censored frames were removed
    first, so these are not wall-clock minutes); the last bin is closed. The bins are *not* equal:
    MATLAB's "nice" bin picker (:func:`discretize_edges`) rounds the width up, so the first bin is one
    frame short and the last one takes the remainder, e.g. n_f = 1225 in 10 bins gives sizes
    (129, 130 × 8, 56).

    Parameters
    ----------
    n_frames : int
        Number of kept frames.
    n_bins : int
        Number of bins (10: the paper's "1-min" units; 5: "2-min").

    Returns
    -------
    ndarray of int64, shape (n_frames,)
        Non-decreasing labels 0…n_bins−1.

    Raises
    ------
    AllFramesCensoredError
        If a bin holds no frame (possible only when ``n_frames <= n_bins``); MATLAB's ``splitapply``
        would stop with an error.

    Examples
    --------
    >>> np.bincount(time_bins(1225, 5))
    array([249, 250, 250, 250, 226])
    """
    edges = discretize_edges(n_frames, n_bins)
    x = np.arange(1, int(n_frames) + 1, dtype=float)
    labels = np.searchsorted(edges, x, side="right") - 1
    labels[x == edges[-1]] = int(n_bins) - 1  # the last bin is closed on the right
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() > n_bins - 1:  # pragma: no cover - edges always cover 1..n_f
        raise AssertionError("discretize edges do not cover the frames")
    _require_all_labels(labels, int(n_bins), "time")
    return labels


# --------------------------------------------------------------------------------------------------
# Bin means
# --------------------------------------------------------------------------------------------------


def bin_means(values: np.ndarray, labels: np.ndarray, n_bins: int) -> np.ndarray:
    """Mean of frame-wise values within each bin (MATLAB ``splitapply(@mean, …)``).

    Parameters
    ----------
    values : array-like of shape (n_frames,) or (n_frames, k)
        Ratings, framewise displacement, predictions, … one row per kept frame.
    labels : array-like of shape (n_frames,)
        Bin labels 0…n_bins−1; frames labelled −1 (or NaN) belong to no bin and are ignored.
    n_bins : int
        Number of bins.

    Returns
    -------
    ndarray of shape (n_bins,) or (n_bins, k)
        Bin means, ordered by bin. A NaN *value* inside a bin makes that bin's mean NaN, as in MATLAB.

    Raises
    ------
    AllFramesCensoredError
        If a bin has no frame (``splitapply`` requires every group to be present).

    Examples
    --------
    >>> bin_means([1.0, 2.0, 3.0, 10.0], [0, 0, -1, 1], 2)
    array([ 1.5, 10. ])
    """
    values = np.asarray(values, dtype=float)
    labels = np.asarray(labels, dtype=float)
    n_bins = _check_int(n_bins, "n_bins", 1)
    if labels.ndim != 1 or values.shape[:1] != labels.shape:
        raise DataFormatError(
            f"values (shape {values.shape}) need one row per label (labels shape {labels.shape})"
        )
    lab = np.where(np.isnan(labels), -1, labels).astype(np.int64)
    if (lab >= n_bins).any():
        raise DataFormatError(f"labels must be < n_bins = {n_bins}; got {int(lab.max())}")
    _require_all_labels(lab, n_bins, "the")
    out = np.empty((n_bins,) + values.shape[1:])
    for b in range(n_bins):
        out[b] = values[lab == b].mean(axis=0)
    return out


# --------------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------------


@dataclass
class RunFrames:
    """The frames of one rating run that enter the analyses, with their ratings and bins.

    Attributes
    ----------
    frames : ndarray of int64, shape (n_kept,)
        Indices (0-based, after dummy removal) of the brain volumes kept:
        ``n_trim + lag … n_volumes−1`` minus censored volumes.
    rating : ndarray of float64, shape (n_kept,)
        The rating paired with each kept brain volume, i.e. sampled ``lag`` volumes earlier
        (MATLAB ``rating_dat``).
    rating_tr : ndarray of float64, shape (n_volumes,)
        The rating on the full volume grid (MATLAB ``rating_dat_orig``).
    rbin : dict of int to ndarray
        Rating-quantile labels over the kept frames for every ``n`` in ``params.n_bins``
        (−1 = excluded by the short-segment rule).
    tbin : dict of int to ndarray
        Time-bin labels over the kept frames for every ``n`` in ``params.n_bins``.
    """

    frames: np.ndarray
    rating: np.ndarray
    rating_tr: np.ndarray
    rbin: dict[int, np.ndarray] = field(default_factory=dict)
    tbin: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        """Number of kept frames."""
        return int(self.frames.size)


def kept_frames(run: Run, params: RatingParams = RatingParams()) -> np.ndarray:
    """Indices of the brain volumes of ``run`` that enter the analyses (rating or rest runs).

    Volumes ``n_trim + lag … n_volumes−1`` (0-based) whose censor flag is 1 (methods §5.2-5.3, §8.1;
    rest runs use the same frames, §10.3).

    Raises
    ------
    AllFramesCensoredError
        If the run has no volume after the trim and lag, or every remaining volume is censored.
    """
    first = params.n_trim(run.tr) + params.lag_tr
    n_vol = run.n_volumes
    where = f"{run.key} ({run.source or 'no source recorded'})"
    if n_vol <= first:
        raise AllFramesCensoredError(
            f"{where} has {n_vol} volumes, but the first {params.n_trim(run.tr)} (trim of "
            f"{params.trim_s} s) plus {params.lag_tr} (lag) = {first} are dropped; the run is too "
            "short for this trim and lag"
        )
    censor = run.censor
    if censor.shape != (n_vol,):
        raise DataFormatError(
            f"{where}: the censor vector has {censor.shape[0]} entries but the run has {n_vol} volumes"
        )
    frames = np.arange(first, n_vol)[censor[first:]]
    if frames.size == 0:
        raise AllFramesCensoredError(
            f"all {n_vol - first} volumes of {where} after the trim and lag are censored"
        )
    return frames.astype(np.int64)


def align_run(run: Run, params: RatingParams = RatingParams()) -> RunFrames:
    """Align a rating run's continuous rating with its brain volumes and bin the kept frames (§5).

    Parameters
    ----------
    run : Run
        A rating run (``run.rating`` with columns ``time``/``value``, ``run.censor``, ``run.tr``).
    params : RatingParams, optional
        Trim, lag, dummy time, bin numbers and minimum segment length.

    Returns
    -------
    RunFrames
        Kept frames, their paired ratings, the full TR-grid rating and rbin/tbin labels for every
        ``n`` in ``params.n_bins``.

    Raises
    ------
    DataFormatError
        If the run has no rating, or a kept frame's rating is NaN (the rating does not cover the scan).
    AllFramesCensoredError
        If the run is too short for the trim and lag, or too few frames are kept to fill every bin.
        Every message names the run and its source file.
    """
    where = f"{run.key} ({run.source or 'no source recorded'})"
    if run.rating is None:
        raise DataFormatError(f"{where} has no continuous rating; align_run needs a rating run")
    try:
        rating_tr = resample_to_tr(run.rating, run.n_volumes, run.tr, params.tdummy_s)
    except DataFormatError as err:
        raise DataFormatError(f"{where}: {err}") from err
    frames = kept_frames(run, params)
    first = params.n_trim(run.tr) + params.lag_tr
    keep = run.censor[first:]
    # rating sample t is paired with brain volume t + lag
    paired = rating_tr[params.n_trim(run.tr) : run.n_volumes - params.lag_tr]
    rating = paired[keep]
    if np.isnan(rating).any():
        bad = frames[np.isnan(rating)]
        t = run.rating["time"].to_numpy(dtype=float)
        t = t[np.isfinite(t)]
        span = f"{t.min():.2f}-{t.max():.2f} s" if t.size else "no valid time stamps"
        raise DataFormatError(
            f"{where}: the rating is NaN for {bad.size} kept frame(s) (brain volumes "
            f"{bad[:5].tolist()}{'…' if bad.size > 5 else ''}); the rating does not cover the "
            f"scan (sampled {span} on the rating clock). Check the rating file, or increase the "
            "trim (a late start) or the lag (an early end)"
        )
    rbin: dict[int, np.ndarray] = {}
    tbin: dict[int, np.ndarray] = {}
    for n in params.n_bins:
        try:
            rbin[n] = rating_bins(rating, n, params.min_segment)
            tbin[n] = time_bins(rating.size, n)
        except AllFramesCensoredError as err:
            raise AllFramesCensoredError(
                f"{where}: {rating.size} kept frames cannot fill {n} bins: {err}"
            ) from err
    return RunFrames(frames=frames, rating=rating, rating_tr=rating_tr, rbin=rbin, tbin=tbin)
