"""Generic statistics of the DEIPP evaluation, with the MATLAB semantics the paper's code relies on.

These functions know nothing about sessions, runs or bins; :mod:`deipp_core.evaluation` composes them
into the four-level evaluation of ``reference/deipp_methods.md`` §10.2.

* :func:`pearson_r` and :func:`auc_midrank` accept a matrix of **multiplicity weights** (one row per
  bootstrap resample, one column per unit: how often the unit was drawn), so that the statistic of
  every resample comes out of a few matrix products instead of a Python loop (netneurotools'
  ``efficient_pearsonr`` in spirit). A weight row of counts gives exactly the statistic of the
  resampled vectors.
* :func:`median_split` is MATLAB's ``x > quantile(x, 0.5)`` (NumPy ``method="hazen"``, §16 item 3).
* :func:`boot2cip` is the original ``boot2cip(boot, 'perc', null, alpha)`` (§15): MATLAB rounding of
  the CI positions (§16 item 13) and an uncapped two-sided p (§17 item 11).
* :func:`benjamini_hochberg` is ``fdr_bh(p, q, 'pdep')`` (§15).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from deipp_core.exceptions import ParameterError

__all__ = [
    "pearson_r",
    "auc_midrank",
    "median_split",
    "r_squared",
    "mean_absolute_error",
    "roc_auc",
    "roc_points",
    "round_half_away",
    "boot2cip",
    "BootCI",
    "benjamini_hochberg",
    "FDRResult",
]


def _as_1d(a, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    if arr.ndim != 1:
        raise ParameterError(f"{name} must be one-dimensional; got shape {arr.shape}")
    return arr


def _check_pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = _as_1d(x, "x")
    y = _as_1d(y, "y")
    if x.shape != y.shape:
        raise ParameterError(f"x and y must have the same length; got {x.size} and {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ParameterError("x and y must be finite (no NaN or inf)")
    return x, y


def _check_weights(weights, n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.shape[-1:] != (n,):
        raise ParameterError(
            f"weights must have {n} columns (one per unit); got shape {w.shape}"
        )
    if np.any(w < 0):
        raise ParameterError("weights must be non-negative multiplicities")
    return w


def pearson_r(x, y, weights=None):
    """Pearson correlation of ``x`` and ``y``, optionally for many weightings and columns at once.

    Parameters
    ----------
    x : array-like of shape (n,)
        Paired, finite observations.
    y : array-like of shape (n,) or (n, k)
        One or ``k`` columns, each correlated with ``x`` (e.g. the predictions of ``k`` repetitions).
    weights : array-like of shape (..., n), optional
        Non-negative multiplicities, e.g. a (n_boot, n) matrix of how often each unit appears in each
        bootstrap resample. A row of integer counts gives exactly the r of the resampled vectors
        ``np.repeat(x, row)``, ``np.repeat(y, row)``.

    Returns
    -------
    r : float or ndarray of shape (...) or (..., k)
        NaN where x or y is constant over the units with positive weight (MATLAB ``corr`` returns NaN
        there too). A trailing axis of length ``k`` is present when ``y`` is two-dimensional.

    Notes
    -----
    x and y are centred on their unweighted means first, then the weighted moments come from three
    matrix products, so 10,000 resamples of 900 units take a few tens of milliseconds (and ``k``
    columns cost little more than one). Constancy is tested exactly (weighted min equals weighted
    max), not through a variance tolerance. The result equals the "z-score-product" r of the original
    code, mean(zscore(x)·zscore(y))·n/(n−1).

    Examples
    --------
    >>> import numpy as np
    >>> x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    >>> float(round(pearson_r(x, y), 6))
    0.5
    >>> pearson_r(x, y, weights=[[1, 1, 1], [2, 0, 1], [0, 3, 0]]).round(6)
    array([0.5, 1. , nan])
    >>> pearson_r(x, np.c_[y, -y], weights=[[1, 1, 1], [2, 0, 1]]).round(6)
    array([[ 0.5, -0.5],
           [ 1. , -1. ]])
    """
    x = _as_1d(x, "x")
    y = np.asarray(y, dtype=float)
    columns = y.ndim == 2
    Y = y if columns else _as_1d(y, "y")[:, None]
    if Y.ndim != 2 or Y.shape[0] != x.size:
        raise ParameterError(
            f"x and y must have the same length (y may also be a matrix of shape (n, k)); "
            f"got x of length {x.size} and y of shape {y.shape}"
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(Y))):
        raise ParameterError("x and y must be finite (no NaN or inf)")
    xc = x - x.mean() if x.size else x
    Yc = Y - Y.mean(axis=0) if x.size else Y
    if weights is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.clip((xc @ Yc) / np.sqrt((xc @ xc) * (Yc * Yc).sum(axis=0)), -1.0, 1.0)
        const = (x.size < 2) | (np.ptp(x) == 0 if x.size else True) | (np.ptp(Y, axis=0) == 0 if x.size else True)
        r = np.where(const, np.nan, r)
        return r if columns else float(r[0])
    w = _check_weights(weights, x.size)
    sw = w.sum(axis=-1)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (w @ xc)[..., None] / sw
        my = (w @ Yc) / sw
        sxx = (w @ (xc * xc))[..., None] / sw - mx * mx
        syy = (w @ (Yc * Yc)) / sw - my * my
        sxy = (w @ (xc[:, None] * Yc)) / sw - mx * my
        r = np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0)
    present = w > 0
    const = _constant_where(xc, present)[..., None] | _constant_columns(Yc, present)
    r = np.where(const, np.nan, r)
    return r if columns else r[..., 0]


def _constant_columns(Yc: np.ndarray, present: np.ndarray) -> np.ndarray:
    """:func:`_constant_where` for every column of ``Yc``: shape (..., k).

    A column whose values are all distinct is constant only where at most one unit is present, which
    avoids the (..., n) masked extrema for it (the common case: continuous predictions).
    """
    out = np.empty(present.shape[:-1] + (Yc.shape[1],), dtype=bool)
    few = present.sum(axis=-1) <= 1
    for j in range(Yc.shape[1]):
        col = Yc[:, j]
        out[..., j] = few if np.unique(col).size == col.size else _constant_where(col, present)
    return out


def _constant_where(v: np.ndarray, present: np.ndarray) -> np.ndarray:
    """True for each weight row whose present units all share one value of ``v`` (or are < 2)."""
    hi = np.where(present, v, -np.inf).max(axis=-1)
    lo = np.where(present, v, np.inf).min(axis=-1)
    return ~(hi > lo)


def auc_midrank(labels, scores, weights=None):
    """Area under the ROC curve by the Mann–Whitney statistic, ties counted ½.

    Parameters
    ----------
    labels : array-like of bool, shape (n,)
        True for the positive class ("high").
    scores : array-like of shape (n,)
        Continuous scores (the prediction); higher means more likely positive.
    weights : array-like of shape (..., n), optional
        Multiplicities as in :func:`pearson_r`: a row of bootstrap counts gives exactly the AUC of the
        resampled labels and scores.

    Returns
    -------
    auc : float or ndarray of shape (...)
        P(score of a random positive > score of a random negative) + ½ P(tie); NaN where a weight row
        contains only one class. Equals ``sklearn.metrics.roc_auc_score(labels, scores)`` and MATLAB
        ``perfcurve``'s AUC.

    Notes
    -----
    The scores are sorted once; for each weight row the negatives below each tie group come from a
    cumulative sum over tie groups, so the cost is O(n_rows · n) after an O(n log n) sort.

    Examples
    --------
    >>> float(auc_midrank([False, True, False, True], [0.1, 0.4, 0.4, 0.9]))
    0.875
    """
    lab = np.asarray(labels).astype(bool)
    s = _as_1d(scores, "scores")
    if lab.shape != s.shape:
        raise ParameterError(f"labels and scores must have the same length; got {lab.size}, {s.size}")
    if not np.all(np.isfinite(s)):
        raise ParameterError("scores must be finite (no NaN or inf)")
    squeeze = weights is None
    w = np.ones((1, s.size)) if squeeze else _check_weights(weights, s.size)
    order = np.argsort(s, kind="stable")
    ss = s[order]
    if ss.size == 0:
        out = np.full(w.shape[:-1], np.nan)
        return float(out[0]) if squeeze else out
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    wo = w[..., order]
    pos = lab[order]
    wp = np.add.reduceat(wo * pos, starts, axis=-1)
    wn = np.add.reduceat(wo * ~pos, starts, axis=-1)
    neg_below = np.cumsum(wn, axis=-1) - wn
    u = np.sum(wp * (neg_below + 0.5 * wn), axis=-1)
    n_pos = wp.sum(axis=-1)
    n_neg = wn.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
    return float(auc[0]) if squeeze else auc


def median_split(x) -> np.ndarray:
    """High/low labels of the paper's AUC: ``x > quantile(x, 0.5)`` with MATLAB's quantile.

    MATLAB ``quantile(x, 0.5)`` equals ``numpy.quantile(x, 0.5, method="hazen")`` (for p = 0.5 this is
    the ordinary median). The comparison is strict, so units equal to the median are "low".

    Examples
    --------
    >>> median_split([1.0, 2.0, 2.0, 3.0])
    array([False, False, False,  True])
    """
    x = _as_1d(x, "x")
    if x.size == 0:
        return np.zeros(0, dtype=bool)
    return x > np.quantile(x, 0.5, method="hazen")


def r_squared(x, y) -> float:
    """The paper's R² = 1 − Σ(x − y)² / Σ(x − x̄)², x actual and y predicted.

    It compares the prediction with the identity line, so it is negative when the prediction is worse
    than the mean of x; it is not r². NaN when x is constant.

    Examples
    --------
    >>> r_squared([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    -3.0
    """
    x, y = _check_pair(x, y)
    ss_tot = np.sum((x - x.mean()) ** 2)
    if ss_tot == 0:
        return float("nan")
    return float(1.0 - np.sum((x - y) ** 2) / ss_tot)


def mean_absolute_error(x, y) -> float:
    """Mean |x − y|.

    Examples
    --------
    >>> mean_absolute_error([1.0, 2.0], [2.0, 4.0])
    1.5
    """
    x, y = _check_pair(x, y)
    return float(np.mean(np.abs(x - y)))


def roc_auc(x, y) -> float:
    """The paper's AUC: labels = :func:`median_split` of x, scores = y, positive class = high.

    Computed with ``sklearn.metrics.roc_auc_score`` (equal to MATLAB ``perfcurve``); NaN when the
    median split leaves one class empty (e.g. constant x).
    """
    x, y = _check_pair(x, y)
    lab = median_split(x)
    if lab.all() or not lab.any():
        return float("nan")
    return float(roc_auc_score(lab, y))


def roc_points(x, y) -> tuple[np.ndarray, np.ndarray]:
    """ROC points of the median split of x scored by y, as ``perfcurve`` returns them.

    Returns
    -------
    fpr, tpr : ndarray
        1 − specificity and sensitivity, one point per distinct score threshold, starting at (0, 0)
        (``sklearn.metrics.roc_curve(..., drop_intermediate=False)``).
    """
    x, y = _check_pair(x, y)
    lab = median_split(x)
    if lab.all() or not lab.any():
        raise ParameterError("the median split of x has a single class; no ROC curve exists")
    fpr, tpr, _ = roc_curve(lab, y, drop_intermediate=False)
    return fpr, tpr


def round_half_away(v):
    """MATLAB ``round``: to the nearest integer, halves away from zero.

    Unlike ``np.floor(v + 0.5)``, this is exact for every double (e.g. 0.49999999999999994 → 0).

    Examples
    --------
    >>> round_half_away(np.array([0.5, 1.5, 2.5, -2.5, 0.49999999999999994]))
    array([ 1.,  2.,  3., -3.,  0.])
    """
    v = np.asarray(v, dtype=float)
    t = np.trunc(v)
    frac = np.abs(v - t)  # exact for doubles
    out = t + np.sign(v) * (frac >= 0.5)
    return out if out.ndim else float(out)


class BootCI(NamedTuple):
    """Percentile CI and two-sided p of :func:`boot2cip`."""

    ci_low: float
    ci_high: float
    p: float


def boot2cip(boot, null: float, alpha: float = 0.05) -> BootCI:
    """Percentile bootstrap CI and p-value, exactly as the original ``boot2cip(boot, 'perc', null)``.

    Parameters
    ----------
    boot : array-like of shape (B,)
        Bootstrap replicates of a statistic.
    null : float
        Value under the null hypothesis (0 for r, 0.5 for AUC).
    alpha : float, default=0.05
        1 − coverage of the CI.

    Returns
    -------
    BootCI
        ``ci_low``, ``ci_high``: the sorted replicates at 1-based positions round(α/2·B) and
        round((1 − α/2)·B), MATLAB rounding (halves away from zero); for B = 10,000 these are 0-based
        ``s[249]`` and ``s[9749]``. ``p`` = 2·min((#{boot ≤ null} + 1)/(B + 1),
        (#{boot ≥ null} + 1)/(B + 1)).

    Notes
    -----
    * p is **not** capped at 1 (``reference/deipp_methods.md`` §17 item 11): when many replicates equal
      the null it can reach 2·(B + 1)/(B + 1) = 2. The smallest attainable p is 2/(B + 1).
    * NaN replicates (a resample whose statistic is undefined) follow MATLAB: ``sort`` puts them last,
      they count in B and satisfy neither ≤ nor ≥.
    * For B < 20 at α = 0.05 the lower position rounds to 0, which would be an indexing error in
      MATLAB; here positions are clipped to [1, B].

    Examples
    --------
    >>> boot2cip(np.arange(1.0, 21.0), null=0.0)
    BootCI(ci_low=1.0, ci_high=20.0, p=0.09523809523809523)
    """
    b = _as_1d(boot, "boot")
    n = b.size
    if n == 0:
        raise ParameterError("boot is empty")
    if not 0 < alpha < 1:
        raise ParameterError(f"alpha must be in (0, 1); got {alpha}")
    s = np.sort(b)  # NaN last, as MATLAB sort
    lo = int(np.clip(round_half_away(alpha / 2 * n), 1, n))
    hi = int(np.clip(round_half_away((1 - alpha / 2) * n), 1, n))
    n_le = np.count_nonzero(b <= null)
    n_ge = np.count_nonzero(b >= null)
    p = 2 * min((n_le + 1) / (n + 1), (n_ge + 1) / (n + 1))
    return BootCI(float(s[lo - 1]), float(s[hi - 1]), float(p))


class FDRResult(NamedTuple):
    """Result of :func:`benjamini_hochberg` (``[h, crit_p, ~, adj_p] = fdr_bh(...)``)."""

    h: np.ndarray
    crit_p: float
    adj_p: np.ndarray


def benjamini_hochberg(p, q: float = 0.05) -> FDRResult:
    """Benjamini–Hochberg FDR control, as ``fdr_bh(p, q, 'pdep')`` of the original code.

    Parameters
    ----------
    p : array-like
        p-values of any shape, in [0, 1].
    q : float, default=0.05
        Desired false discovery rate.

    Returns
    -------
    FDRResult
        ``h`` (bool, same shape as p): rejected hypotheses, ``p <= crit_p``; ``crit_p``: the largest
        sorted p with p_(i) ≤ i·q/m (0 when there is none, as ``fdr_bh``); ``adj_p``: BH-adjusted
        p-values, min over j ≥ i of m·p_(j)/j.

    Examples
    --------
    >>> res = benjamini_hochberg([0.03, 0.001, 0.2, 0.035])
    >>> res.h, res.crit_p
    (array([ True,  True, False,  True]), 0.035)
    """
    arr = np.asarray(p, dtype=float)
    flat = arr.ravel()
    if flat.size == 0:
        raise ParameterError("p is empty")
    if np.any(~np.isfinite(flat)) or np.any((flat < 0) | (flat > 1)):
        raise ParameterError("p-values must be finite and in [0, 1]")
    if not 0 < q < 1:
        raise ParameterError(f"q must be in (0, 1); got {q}")
    m = flat.size
    order = np.argsort(flat, kind="stable")
    ps = flat[order]
    i = np.arange(1, m + 1)
    thresh = i * q / m
    below = np.flatnonzero(ps <= thresh)
    crit = float(ps[below[-1]]) if below.size else 0.0
    h = (arr <= crit) if below.size else np.zeros(arr.shape, dtype=bool)
    wtd = m * ps / i
    adj_sorted = np.minimum.accumulate(wtd[::-1])[::-1]
    adj = np.empty(m)
    adj[order] = adj_sorted
    return FDRResult(h, crit, adj.reshape(arr.shape))
