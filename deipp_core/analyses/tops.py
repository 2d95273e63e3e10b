r"""The ToPS comparison (``reference/deipp_methods.md`` §10.5): a group-level dynamic-FC pain signature.

The paper compares its personalized models with the **Tonic Pain Signature** (ToPS; Lee et al. 2021,
*Nat Med*), a group-level predictor of sustained pain built on dynamic functional connectivity. The
original script ``analysis_predict_rating_ToPStest.m`` does, for every rating run:

1. take the denoised, **unsmoothed** volumetric MNI BOLD (``den.bold``), drop the first
   ``ceil(30 s / TR)`` + 13 volumes and the censored volumes (the frames of
   :func:`deipp_core.ratings.align_run`);
2. average the voxels of each of the 279 regions of the Fan et al. (Brainnetome-based) atlas
   ``Fan_et_al_atlas_r279_MNI_2mm.nii`` (:func:`fan_region_timeseries`);
3. ``DCC_jj(·, 'whiten', 'simple')``: ARMA(1,1) prewhitening of every region
   (:func:`arma11_whiten`), then a DCC-GARCH(1,1) model (Engle 2002; Engle & Sheppard 2001) with one
   pair of DCC parameters for all region pairs (:func:`dcc_fit`, :func:`dcc`), flattened to the
   column-major upper triangle (:func:`deipp_core.edges.edge_indices` order; T × E here);
4. ToPS(t) = Σ_edges DCC_edge(t)·w_edge, NaN omitted, no intercept (:func:`tops_scores`);
5. mean per rating bin and time bin, then the four-level evaluation of §10.2 with x = rating and
   y = ToPS (:func:`run_tops`).

The ToPS weights (``model/ToPS_weight.mat``, variable ``ToPS_w``) are available from the authors on
request only, so the book cannot run the real comparison. This module is the whole pipeline;
:func:`read_tops_weights` reads the weights of a reader who has them. On the digital twin (different
atlas, no ToPS), :func:`demonstration_weights` builds a **demonstration** weight vector from the
twin's planted pain edges — not ToPS — to show end to end that the DCC-based score tracks pain when the
weights are right.

DCC as in ``DCC_jj`` (cocoanCORE) and the DCC toolbox of Lindquist et al. (2014)
---------------------------------------------------------------------------------
*Whitening* (``'whiten'``): per region, an ARMA(1,1) with constant,
:math:`y_t = c + \phi y_{t-1} + \varepsilon_t + \theta\varepsilon_{t-1}`, fitted by Gaussian maximum
likelihood (MATLAB ``estimate(arima(1,0,1))``); the series is replaced by its standardised residuals
:math:`\hat\varepsilon_t/\hat\sigma` (``infer`` → ``res./sqrt(v)``).

*Univariate GARCH(1,1)* per region on the whitened series :math:`x` (``fattailed_garch``, normal
errors): :math:`h_t = \omega + \alpha x_{t-1}^2 + \beta h_{t-1}`, with the series preceded by one
pseudo-observation equal to its population SD, so :math:`h_0 = x_{-1}^2 = \mathrm{var}_0(x)`;
(ω, α, β) maximise the Gaussian likelihood under ω, α, β > 0 and α + β < 1, from the starting values
(0.1·var(x), 0.15, 0.75). Standardised residuals :math:`\varepsilon_{it} = x_{it}/\sqrt{h_{it}}`.

*DCC(1,1)* (``dcc_mvgarch_likelihood``): with :math:`\bar Q = \mathrm{cov}(\varepsilon)` (ddof 1),
:math:`Q_{-1} = \bar Q`, :math:`\varepsilon_{-1} = 0` and

.. math::  Q_t = (1-a-b)\,\bar Q + a\,\varepsilon_{t-1}\varepsilon_{t-1}^\top + b\,Q_{t-1},\qquad
           R_t = \mathrm{diag}(Q_t)^{-1/2}\,Q_t\,\mathrm{diag}(Q_t)^{-1/2},

(a, b) minimise the quasi-likelihood :math:`\tfrac12\sum_t \log|R_t| + \varepsilon_t^\top R_t^{-1}
\varepsilon_t` under a, b > 0, a + b < 1, from (0.01, 0.97) (MATLAB ``fmincon`` SQP; SciPy SLSQP
here). ``'simple'`` in ``DCC_jj`` means exactly this: **one** (a, b) estimated from all regions
jointly, instead of a separate bivariate DCC per pair ("Estimate DCC parameters from the whole
connections"). The output is :math:`R_t` for every pair.

Cost: the likelihood needs a P × P Cholesky factor per frame (O(T·P³) per evaluation, a few
seconds for 279 regions × 1,304 frames); one whole run at that size (whitening, 279 GARCH fits, the
(a, b) fit, the scores) took 138 s of CPU on one core (synthetic data, 2026-11). Q and R are
computed in time blocks of
``block_size`` frames, so memory is O(block·P²) for the likelihood and O(block·E) for the edges,
never T × E × E; :func:`tops_scores` never holds the T × E edge matrix.

Differences from the MATLAB code (deterministic, but not bitwise equal): the optimisers (SciPy
SLSQP / L-BFGS-B instead of ``fmincon``); the ARMA presample: the residuals start from the
unconditional mean with a zero presample innovation (conditional likelihood), where MATLAB's
``arima/estimate``/``infer`` treat the presample their own way; and the output R_t is computed from the
same standardised residuals as the fit, whereas the toolbox's ``dcc_mvgarch_full_likelihood``
recomputes the GARCH variances, possibly with another first-frame initialisation (that file was not
available to check). Apart from optimiser tolerances, only the first frames differ. Regions whose
time series is constant (e.g. all zero, outside the brain mask) are left out of the fit and their
edges are NaN, as in ``DCC_garch_jj``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import optimize, signal
from scipy.linalg import solve_triangular

from deipp_core import evaluation
from deipp_core.data.dataset import Participant, Run
from deipp_core.data.derivatives import atomic_write_bytes, code_digest
from deipp_core.edges import edge_indices, n_edges
from deipp_core.exceptions import DataFormatError, DataLayoutError, ParameterError
from deipp_core.ratings import RatingParams, align_run, bin_means

__all__ = [
    "FAN_N_REGIONS",
    "FAN_ATLAS_FILE",
    "TOPS_WEIGHTS_FILE",
    "DEFAULT_BOLD_TEMPLATE",
    "arma11_whiten",
    "Garch11Fit",
    "garch11_fit",
    "DCCModel",
    "dcc_fit",
    "dcc",
    "read_tops_weights",
    "tops_scores",
    "fan_region_timeseries",
    "bold_region_source",
    "demonstration_regions",
    "demonstration_weights",
    "TopsResult",
    "run_tops",
    "DEMO_SESSIONS",
    "TopsComparison",
    "compare_tops",
    "tops_summary",
    "parcellation_summary",
    "describe_comparison",
]

logger = logging.getLogger(__name__)

#: Regions of the ToPS atlas (Fan et al. 2016 Brainnetome 246 + 33 subcortical/cerebellar, 2 mm MNI).
FAN_N_REGIONS = 279
#: The atlas inside a ToPS repository (``topsdir``), as the original script reads it.
FAN_ATLAS_FILE = "data/atlas/Fan_et_al_atlas_r279_MNI_2mm.nii"
#: The weights inside a ToPS repository (variable ``ToPS_w``), on request from the authors.
TOPS_WEIGHTS_FILE = "model/ToPS_weight.mat"
#: Where :func:`bold_region_source` looks for each run's denoised, unsmoothed MNI BOLD by default
#: (relative to the BIDS root; ``{participant}``, ``{session}``, ``{run}`` are filled in).
DEFAULT_BOLD_TEMPLATE = (
    "derivatives/cocoan-preproc/sub-{participant}/ses-{session}/func/"
    "sub-{participant}_ses-{session}_task-rating_run-{run}_space-MNI152_res-2_desc-denoised_bold.nii.gz"
)

# fmincon's TolCon in the original: bounds and the a + b < 1 constraint are kept 2·TolCon inside.
_TOLCON = 1e-6
_FAIL = 1e8  # objective of an infeasible point (the toolbox's 10E+8)


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------


def _as_timeseries(ts, what: str = "region_ts", min_frames: int = 10) -> np.ndarray:
    arr = np.asarray(ts, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataFormatError(f"{what} must be a (frames × regions) array; got shape {arr.shape}")
    if arr.shape[0] < min_frames:
        raise DataFormatError(
            f"{what} has {arr.shape[0]} frames; the ARMA/GARCH/DCC fit needs at least {min_frames}"
        )
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=0))
        raise DataFormatError(
            f"{what} holds non-finite values in {bad.size} region(s) (columns {bad[:5].tolist()}"
            f"{'…' if bad.size > 5 else ''}); fix or drop those regions before the DCC"
        )
    return arr


def _constant_columns(x: np.ndarray) -> np.ndarray:
    return np.ptp(x, axis=0) == 0


# --------------------------------------------------------------------------------------------------
# ARMA(1,1) prewhitening
# --------------------------------------------------------------------------------------------------


def _arma_residuals(y: np.ndarray, c: float, phi: float, theta: float) -> np.ndarray:
    """Innovations of y_t = c + φ y_{t−1} + ε_t + θ ε_{t−1}, presample y = c/(1−φ), ε = 0."""
    mu = c / (1.0 - phi)
    u = y - c - phi * np.r_[mu, y[:-1]]
    return signal.lfilter([1.0], [1.0, theta], u)


def _arma11_one(y: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    n = y.size
    mean = y.mean()
    yc = y - mean
    denom = float(yc @ yc)
    r1 = float(yc[1:] @ yc[:-1]) / denom if denom > 0 else 0.0
    phi0 = float(np.clip(r1, -0.95, 0.95))

    def unpack(p):  # |φ|, |θ| < 1 (stationary, invertible)
        return p[0], 0.9999 * math.tanh(p[1]), 0.9999 * math.tanh(p[2])

    def css(p):
        c, phi, theta = unpack(p)
        e = _arma_residuals(y, c, phi, theta)
        return float(e @ e) / n

    x0 = np.array([mean * (1 - phi0), math.atanh(phi0 / 0.9999), 0.0])
    res = optimize.minimize(css, x0, method="L-BFGS-B")
    c, phi, theta = unpack(res.x)
    e = _arma_residuals(y, c, phi, theta)
    sigma2 = float(e @ e) / n
    return e / math.sqrt(sigma2), (c, phi, theta, sigma2)


def arma11_whiten(region_ts, *, return_params: bool = False):
    """Prewhiten every column by an ARMA(1,1) model: its standardised residuals (``DCC_jj 'whiten'``).

    Parameters
    ----------
    region_ts : array-like of shape (n_frames, n_regions)
        Region time series (one column per region).
    return_params : bool, default=False
        Also return the fitted parameters.

    Returns
    -------
    whitened : ndarray of shape (n_frames, n_regions)
        ε̂_t / σ̂ per region (mean ≈ 0, variance 1). Constant columns stay as they are.
    params : DataFrame, optional
        One row per region: ``c``, ``phi``, ``theta``, ``sigma2`` (NaN for constant columns).

    Notes
    -----
    Gaussian (conditional) maximum likelihood with σ² profiled out, i.e. least squares of the
    innovations, with |φ| < 1 and |θ| < 1 enforced by a tanh parametrisation.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> e = rng.normal(size=2000)
    >>> y = np.zeros(2000)
    >>> for t in range(1, 2000):
    ...     y[t] = 0.8 * y[t - 1] + e[t] + 0.3 * e[t - 1]
    >>> w, p = arma11_whiten(y, return_params=True)
    >>> round(float(p["phi"][0]), 1), round(float(p["theta"][0]), 1)
    (0.8, 0.3)
    """
    x = _as_timeseries(region_ts)
    out = x.copy()
    params = np.full((x.shape[1], 4), np.nan)
    for k in np.flatnonzero(~_constant_columns(x)):
        out[:, k], params[k] = _arma11_one(x[:, k])
    if return_params:
        return out, pd.DataFrame(params, columns=["c", "phi", "theta", "sigma2"])
    return out


# --------------------------------------------------------------------------------------------------
# Univariate GARCH(1,1)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Garch11Fit:
    """A Gaussian GARCH(1,1) fitted to one zero-mean series (``fattailed_garch``, ``'NORMAL'``).

    Attributes
    ----------
    omega, alpha, beta : float
        h_t = ω + α x_{t−1}² + β h_{t−1}.
    h : ndarray of shape (n_frames,)
        Conditional variances of the observations.
    loglik : float
        Gaussian log-likelihood at the estimate.
    converged : bool
        Whether the optimiser reported success.
    """

    omega: float
    alpha: float
    beta: float
    h: np.ndarray
    loglik: float
    converged: bool


def _garch_h(x2_lag: np.ndarray, h0: float, omega: float, alpha: float, beta: float) -> np.ndarray:
    """h_t = ω + α x²_{t−1} + β h_{t−1}; x2_lag[t] = x²_{t−1}, h_{−1} = h0."""
    u = omega + alpha * x2_lag
    h, _ = signal.lfilter([1.0], [1.0, -beta], u, zi=[beta * h0])
    return h


def garch11_fit(x) -> Garch11Fit:
    """Fit a GARCH(1,1) with normal errors by maximum likelihood, as the DCC toolbox does.

    Parameters
    ----------
    x : array-like of shape (n_frames,)
        A zero-mean series (here: ARMA-whitened region time series).

    Returns
    -------
    Garch11Fit

    Notes
    -----
    As ``fattailed_garch``: the series is preceded by one pseudo-observation equal to its population
    SD, so h_0 = ω + (α + β)·var₀(x); the likelihood is summed over the real observations; constraints
    ω, α, β ≥ eps and α + β ≤ 1 − 2·10⁻⁶; start (0.1·var(x), 0.15, 0.75).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> n, (w, a, b) = 6000, (0.1, 0.1, 0.8)
    >>> x, h = np.zeros(n), np.full(n, w / (1 - a - b))
    >>> for t in range(n):
    ...     if t:
    ...         h[t] = w + a * x[t - 1] ** 2 + b * h[t - 1]
    ...     x[t] = np.sqrt(h[t]) * rng.normal()
    >>> fit = garch11_fit(x)
    >>> abs(fit.alpha - a) < 0.05 and abs(fit.beta - b) < 0.1
    True
    """
    x = np.asarray(x, dtype=float).ravel()
    if x.size < 10 or not np.isfinite(x).all():
        raise DataFormatError(f"garch11_fit needs at least 10 finite values; got {x.size}")
    var0 = float(np.var(x))
    if var0 == 0:
        raise DataFormatError("garch11_fit: the series is constant; a GARCH model cannot be fitted")
    x2_lag = np.r_[var0, x[:-1] ** 2]
    n = x.size
    log2pi = math.log(2 * math.pi)
    eps = np.finfo(float).eps

    def nll(p):
        p = np.where(p <= 0, np.finfo(float).tiny, p)
        h = _garch_h(x2_lag, var0, *p)
        if not np.all(h > 0) or not np.isfinite(h).all():
            return _FAIL
        return 0.5 * (float(np.sum(np.log(h) + x * x / h)) + n * log2pi) / n

    x0 = np.array([(1 - 0.15 - 0.75) * float(np.var(x, ddof=1)), 0.15, 0.75])
    cons = [{"type": "ineq", "fun": lambda p: (1 - 2 * _TOLCON) - p[1] - p[2],
             "jac": lambda p: np.array([0.0, -1.0, -1.0])}]
    res = optimize.minimize(nll, x0, method="SLSQP", bounds=[(eps, None)] * 3, constraints=cons,
                            options={"maxiter": 1000, "ftol": 1e-12})
    p = np.maximum(res.x, 0.0)
    if p[0] <= 0:
        p[0] = np.finfo(float).tiny
    h = _garch_h(x2_lag, var0, *p)
    return Garch11Fit(float(p[0]), float(p[1]), float(p[2]), h, float(-nll(p) * n), bool(res.success))


# --------------------------------------------------------------------------------------------------
# DCC(1,1)
# --------------------------------------------------------------------------------------------------


def _q_blocks(eps: np.ndarray, a: float, b: float, qbar_k: np.ndarray,
              products: Callable[[np.ndarray], np.ndarray], block: int
              ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Q_t for t = 0…T−1 in time blocks, in the coordinates ``products`` picks (all P² entries, or
    edges + diagonal): yields (start, stop, q of shape (stop − start, K)).

    Q_{−1} = Q̄, ε_{−1} = 0, Q_t = (1−a−b) Q̄ + a ε_{t−1}ε_{t−1}ᵀ + b Q_{t−1}: a first-order
    linear filter along time for every entry, run block by block with its state carried over.
    """
    T = eps.shape[0]
    prev = qbar_k
    c = 1.0 - a - b
    for s in range(0, T, block):
        e = min(T, s + block)
        prod = products(eps[max(s - 1, 0):e - 1])
        if s == 0:
            prod = np.vstack([np.zeros((1, prod.shape[1])), prod])
        u = c * qbar_k + a * prod
        q, _ = signal.lfilter([1.0], [1.0, -b], u, axis=0, zi=(b * prev)[None, :])
        prev = q[-1].copy()  # the consumer may normalise q in place
        yield s, e, q


def _outer_products(rows: np.ndarray) -> np.ndarray:
    return (rows[:, :, None] * rows[:, None, :]).reshape(rows.shape[0], -1)


def _dcc_nll(ab, eps: np.ndarray, qbar: np.ndarray, block: int) -> float:
    """½ Σ_t (log|R_t| + ε_tᵀ R_t⁻¹ ε_t) / T: the DCC quasi-likelihood (``dcc_mvgarch_likelihood``)."""
    a, b = float(ab[0]), float(ab[1])
    if a < 0 or b < 0 or a + b >= 1:
        return _FAIL
    T, P = eps.shape
    total = 0.0
    for s, e, q in _q_blocks(eps, a, b, qbar.ravel(), _outer_products, block):
        R = q.reshape(e - s, P, P)
        inv = 1.0 / np.sqrt(np.einsum("tii->ti", R))
        R *= inv[:, :, None]
        R *= inv[:, None, :]
        try:
            C = np.linalg.cholesky(R)
        except np.linalg.LinAlgError:
            return _FAIL
        y = solve_triangular(C, eps[s:e, :, None], lower=True, check_finite=False)[..., 0]
        total += 2.0 * float(np.log(np.einsum("tii->ti", C)).sum()) + float(np.sum(y * y))
    if not math.isfinite(total):
        return _FAIL
    return 0.5 * total / T


@dataclass
class DCCModel:
    """A fitted DCC-GARCH(1,1) of region time series (``DCC_jj(·, 'whiten', 'simple')``).

    Attributes
    ----------
    std_resid : ndarray of shape (n_frames, n_fitted)
        GARCH-standardised residuals ε of the regions that were fitted.
    regions : ndarray of int
        Column indices (in the input) of the fitted regions; the other (constant) regions get NaN.
    n_regions : int
        Number of regions of the input.
    a, b : float
        The DCC parameters, one pair for all region pairs.
    qbar : ndarray of shape (n_fitted, n_fitted)
        Unconditional covariance of ε (ddof 1).
    garch : DataFrame
        ``omega``, ``alpha``, ``beta``, ``converged`` per fitted region.
    converged : bool
        Whether the (a, b) optimiser reported success (always True when (a, b) were given).
    block_size : int
        Frames per block when Q and R are computed.
    """

    std_resid: np.ndarray
    regions: np.ndarray
    n_regions: int
    a: float
    b: float
    qbar: np.ndarray
    garch: pd.DataFrame
    converged: bool = True
    block_size: int = 64

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.std_resid.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of edges of the input's regions, P(P−1)/2."""
        return n_edges(self.n_regions)

    def iter_edges(self, block_size: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, R)`` with R of shape (stop − start, n_edges): the dynamic conditional
        correlations of every edge (column-major upper-triangle order), NaN for edges of constant
        regions. Memory O(block · E)."""
        block = int(block_size or self.block_size)
        P = self.n_regions
        i_all, j_all = edge_indices(P)
        pos = np.full(P, -1)
        pos[self.regions] = np.arange(self.regions.size)
        fi, fj = pos[i_all], pos[j_all]
        ok = (fi >= 0) & (fj >= 0)
        k = self.regions.size
        ii = np.r_[fi[ok], np.arange(k)]
        jj = np.r_[fj[ok], np.arange(k)]
        n_e = int(ok.sum())

        def products(rows: np.ndarray) -> np.ndarray:
            return rows[:, ii] * rows[:, jj]

        for s, e, q in _q_blocks(self.std_resid, self.a, self.b, self.qbar[ii, jj], products, block):
            d = np.sqrt(q[:, n_e:])
            r = np.full((e - s, i_all.size), np.nan)
            r[:, ok] = q[:, :n_e] / (d[:, fi[ok]] * d[:, fj[ok]])
            yield s, e, r

    def edges(self) -> np.ndarray:
        """All edge time series, shape (n_frames, n_edges) (the transpose of ``DCC_jj``'s output)."""
        out = np.empty((self.n_frames, self.n_edges))
        for s, e, r in self.iter_edges():
            out[s:e] = r
        return out

    def scores(self, weights) -> np.ndarray:
        """Σ_edges R_t·w per frame, NaN omitted (MATLAB ``sum(·, 'omitnan')``), without storing T × E."""
        w = np.asarray(weights, dtype=float).ravel()
        if w.size != self.n_edges:
            raise DataFormatError(
                f"{w.size} weights for {self.n_regions} regions; expected {self.n_edges:,} "
                f"= {self.n_regions}·{self.n_regions - 1}/2 edge weights"
            )
        w = np.nan_to_num(w, nan=0.0)
        out = np.empty(self.n_frames)
        for s, e, r in self.iter_edges():
            out[s:e] = np.nan_to_num(r, nan=0.0) @ w
        return out


def dcc_fit(
    region_ts,
    *,
    whiten: bool = True,
    a: float | None = None,
    b: float | None = None,
    block_size: int = 64,
) -> DCCModel:
    """Fit ``DCC_jj(region_ts, 'whiten', 'simple')``: ARMA(1,1) whitening, GARCH(1,1), DCC(1,1).

    Parameters
    ----------
    region_ts : array-like of shape (n_frames, n_regions)
        Region mean time series of the kept frames of one run.
    whiten : bool, default=True
        ARMA(1,1) prewhitening first (:func:`arma11_whiten`; the original's ``'whiten'``).
    a, b : float, optional
        Fix the DCC parameters instead of estimating them (both or neither; a, b ≥ 0, a + b < 1).
        ``a = b = 0`` gives the static correlation of the standardised residuals at every frame.
    block_size : int, default=64
        Frames per block in the likelihood and edge computations (memory O(block · P²)).

    Returns
    -------
    DCCModel

    Raises
    ------
    DataFormatError
        If the input is not a finite 2-D array with at least 10 frames and 2 non-constant regions.
    ParameterError
        If only one of a, b is given or they are outside the stationarity region.
    """
    x = _as_timeseries(region_ts)
    if (a is None) != (b is None):
        raise ParameterError("give both DCC parameters a and b, or neither (to estimate them)")
    if a is not None and not (a >= 0 and b >= 0 and a + b < 1):
        raise ParameterError(f"DCC parameters need a ≥ 0, b ≥ 0 and a + b < 1; got a={a}, b={b}")
    if int(block_size) < 1:
        raise ParameterError(f"block_size must be a positive integer; got {block_size!r}")
    regions = np.flatnonzero(~_constant_columns(x))
    if regions.size < 2:
        raise DataFormatError(
            f"region_ts has {regions.size} non-constant region(s); a dynamic correlation needs at least 2"
        )
    if regions.size < x.shape[1]:
        logger.warning("%d constant region(s) left out of the DCC; their edges are NaN",
                       x.shape[1] - regions.size)
    data = x[:, regions]
    if whiten:
        data = arma11_whiten(data)
    eps = np.empty_like(data)
    rows = []
    for k in range(data.shape[1]):
        fit = garch11_fit(data[:, k])
        eps[:, k] = data[:, k] / np.sqrt(fit.h)
        rows.append((fit.omega, fit.alpha, fit.beta, fit.converged))
    garch = pd.DataFrame(rows, columns=["omega", "alpha", "beta", "converged"])
    qbar = np.cov(eps, rowvar=False)
    converged = True
    if a is None:
        cons = [{"type": "ineq", "fun": lambda p: (1 - 2 * _TOLCON) - p[0] - p[1],
                 "jac": lambda p: np.array([-1.0, -1.0])}]
        res = optimize.minimize(_dcc_nll, np.array([0.01, 0.97]), args=(eps, qbar, int(block_size)),
                                method="SLSQP", bounds=[(2 * _TOLCON, 1.0)] * 2, constraints=cons,
                                options={"maxiter": 200, "ftol": 1e-10})
        a, b = (float(v) for v in res.x)
        converged = bool(res.success)
        if not converged:
            logger.warning("DCC (a, b) optimiser did not report convergence: %s", res.message)
    return DCCModel(std_resid=eps, regions=regions, n_regions=x.shape[1], a=float(a), b=float(b),
                    qbar=qbar, garch=garch, converged=converged, block_size=int(block_size))


def dcc(region_ts, *, whiten: bool = True, a: float | None = None, b: float | None = None,
        block_size: int = 64) -> np.ndarray:
    """Dynamic conditional correlation of every region pair (``DCC_jj(·, 'whiten', 'simple')``).

    Parameters
    ----------
    region_ts : array-like of shape (n_frames, n_regions)
    whiten, a, b, block_size
        See :func:`dcc_fit`.

    Returns
    -------
    ndarray of shape (n_frames, n_edges)
        R_t of every edge in :func:`deipp_core.edges.edge_indices` (MATLAB column-major upper
        triangle) order, NaN for edges of constant regions. This is the transpose of the original's
        E × T output; for a weighted sum use :func:`tops_scores`, which never stores it.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 3))
    >>> r = dcc(x, whiten=False, a=0.0, b=0.0)
    >>> r.shape
    (200, 3)
    """
    return dcc_fit(region_ts, whiten=whiten, a=a, b=b, block_size=block_size).edges()


def tops_scores(region_ts, weights, *, whiten: bool = True, block_size: int = 64,
                return_model: bool = False):
    """ToPS(t) = Σ_edges DCC_edge(t)·w_edge (NaN omitted, no intercept) for one run (§10.5).

    Parameters
    ----------
    region_ts : array-like of shape (n_frames, n_regions)
        Region means of the run's kept frames.
    weights : array-like of shape (n_edges,)
        Edge weights in column-major upper-triangle order (:func:`read_tops_weights`).
    whiten, block_size
        See :func:`dcc_fit`.
    return_model : bool, default=False
        Also return the fitted :class:`DCCModel`.

    Returns
    -------
    scores : ndarray of shape (n_frames,)
    model : DCCModel, optional
    """
    x = _as_timeseries(region_ts)
    w = np.asarray(weights, dtype=float).ravel()
    if w.size != n_edges(x.shape[1]):
        raise DataFormatError(
            f"{w.size:,} weights for {x.shape[1]} regions; expected {n_edges(x.shape[1]):,} edge weights "
            "(the column-major upper triangle of the regions' correlation matrix)"
        )
    model = dcc_fit(x, whiten=whiten, block_size=block_size)
    scores = model.scores(w)
    return (scores, model) if return_model else scores


# --------------------------------------------------------------------------------------------------
# Weights and region time series
# --------------------------------------------------------------------------------------------------


def read_tops_weights(path, *, n_regions: int = FAN_N_REGIONS, variable: str = "ToPS_w",
                      allow_nan: bool = False) -> np.ndarray:
    """Read ToPS edge weights from ``.mat`` (variable ``ToPS_w``), ``.npy``, ``.csv`` or ``.tsv``.

    Parameters
    ----------
    path : path-like
        The ToPS repository's ``model/ToPS_weight.mat`` or an export of it (one number per edge,
        one column or one row, no header).
    n_regions : int, default=279
        Regions of the atlas the weights belong to; the file must hold n(n−1)/2 weights (38,781).
    variable : str, default="ToPS_w"
        Variable name in a ``.mat`` file.
    allow_nan : bool, default=False
        Accept NaN weights (the score omits them, as MATLAB ``sum(·, 'omitnan')``).

    Returns
    -------
    ndarray of shape (n_edges,)

    Raises
    ------
    DataLayoutError
        If the file does not exist.
    DataFormatError
        If the file cannot be read, lacks the variable, has the wrong number of weights or holds
        non-finite values; the one-line message names the file and what was expected.
    """
    path = Path(path).expanduser()
    expected = n_edges(n_regions)
    want = (f"expected {expected:,} edge weights = {n_regions}·{n_regions - 1}/2, the column-major upper "
            f"triangle of the {n_regions}-region atlas")
    if not path.is_file():
        raise DataLayoutError(f"ToPS weights file {path} does not exist; {want} "
                              f"(the ToPS repository's {TOPS_WEIGHTS_FILE}, available from its authors)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".mat":
            from scipy.io import loadmat

            try:
                mat = loadmat(path)
            except NotImplementedError:
                raise DataFormatError(
                    f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; re-save it in "
                    f"MATLAB with save(..., '{variable}', '-v7') or export {variable} to .npy/.csv"
                ) from None
            if variable not in mat:
                found = sorted(k for k in mat if not k.startswith("__"))
                raise DataFormatError(f"{path} has no variable {variable!r} (variables: {found}); {want}")
            w = np.asarray(mat[variable], dtype=float)
        elif suffix == ".npy":
            w = np.asarray(np.load(path, allow_pickle=False), dtype=float)
        elif suffix in (".csv", ".tsv", ".txt"):
            w = np.loadtxt(path, delimiter="\t" if suffix == ".tsv" else ",", ndmin=1, dtype=float)
        else:
            raise DataFormatError(f"{path}: unknown weights format {suffix!r}; use .mat (variable "
                                  f"{variable}), .npy, .csv or .tsv")
    except DataFormatError:
        raise
    except (ValueError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataFormatError(f"{path} could not be read as weights ({first}); {want}") from None
    if w.ndim > 1 and sorted(w.shape)[:-1] != [1] * (w.ndim - 1):
        raise DataFormatError(f"{path}: weights have shape {w.shape}; {want} as one row or one column")
    w = w.ravel()
    if w.size != expected:
        raise DataFormatError(f"{path} holds {w.size:,} weights; {want}")
    bad = ~np.isfinite(w)
    if bad.any() and not (allow_nan and not np.isinf(w).any()):
        raise DataFormatError(f"{path} holds {int(bad.sum())} non-finite weight(s) (first at edge "
                              f"{int(np.flatnonzero(bad)[0])}); {want}, all finite (allow_nan=True "
                              "omits NaN weights as the original's sum(·, 'omitnan'))")
    return w


def fan_region_timeseries(bold, atlas, *, n_regions: int = FAN_N_REGIONS) -> np.ndarray:
    """Mean BOLD of every atlas region over time (the original's ``splitapply(@mean, …, topsparc_id)``).

    Parameters
    ----------
    bold : path-like or Niimg
        4-D denoised, **unsmoothed** BOLD in MNI space, one volume per volume of the run after dummy
        removal, on the atlas's grid (MNI 2 mm).
    atlas : path-like or Niimg
        ``Fan_et_al_atlas_r279_MNI_2mm.nii`` (integer labels 1…279, 0 = none).
    n_regions : int, default=279
        Labels the atlas must have.

    Returns
    -------
    ndarray of shape (n_volumes, n_regions)
        Columns in ascending label order.

    Raises
    ------
    DataFormatError
        If the images do not share a grid or a label is missing.
    """
    from nilearn.maskers import NiftiLabelsMasker

    masker = NiftiLabelsMasker(labels_img=str(atlas) if isinstance(atlas, Path) else atlas,
                               strategy="mean", standardize=None, detrend=False,
                               resampling_target=None, keep_masked_labels=False)
    try:
        ts = masker.fit_transform(str(bold) if isinstance(bold, Path) else bold)
    except ValueError as err:
        first = str(err).splitlines()[0]
        raise DataFormatError(
            f"{bold}: region means over {atlas} failed ({first}); the BOLD must be in MNI space on the "
            "atlas's 2-mm grid (same shape and affine), as the original reshapes both voxel-wise"
        ) from None
    if ts.shape[1] != n_regions:
        raise DataFormatError(f"{atlas}: {ts.shape[1]} labelled regions inside the BOLD's field of view; "
                              f"expected {n_regions}")
    return np.asarray(ts, dtype=float)


def bold_region_source(root, atlas, *, template: str = DEFAULT_BOLD_TEMPLATE,
                       n_regions: int = FAN_N_REGIONS) -> Callable[[Run], np.ndarray]:
    """A ``region_timeseries`` function for :func:`run_tops` that reads each run's BOLD NIfTI.

    Parameters
    ----------
    root : path-like
        The BIDS root.
    atlas : path-like
        The Fan 279-region atlas (``<topsdir>/data/atlas/Fan_et_al_atlas_r279_MNI_2mm.nii``).
    template : str, default=DEFAULT_BOLD_TEMPLATE
        Path of a run's denoised, unsmoothed MNI BOLD relative to ``root``, with ``{participant}``,
        ``{session}`` and ``{run}``.
    n_regions : int, default=279

    Returns
    -------
    callable
        ``f(run, participant) -> ndarray (n_volumes, n_regions)``; raises :class:`DataLayoutError`
        naming the expected file when it is missing, :class:`DataFormatError` when its number of
        volumes differs from the run's.
    """
    root = Path(root)
    atlas = Path(atlas)
    if not atlas.is_file():
        raise DataLayoutError(f"ToPS atlas {atlas} does not exist; expected the ToPS repository's "
                              f"{FAN_ATLAS_FILE}")

    def read(run: Run, participant: str) -> np.ndarray:
        path = root / template.format(participant=participant, session=run.session, run=run.run)
        if not path.is_file():
            raise DataLayoutError(
                f"sub-{participant} {run.key}: no BOLD at {path}; the ToPS comparison needs the denoised, "
                "unsmoothed MNI 2-mm BOLD of every rating run (set the file-name template)"
            )
        ts = fan_region_timeseries(path, atlas, n_regions=n_regions)
        if ts.shape[0] != run.n_volumes:
            raise DataFormatError(
                f"{path} has {ts.shape[0]} volumes but {run.key} has {run.n_volumes} (after dummy "
                "removal); the BOLD must have the same volumes as the run's censor vector"
            )
        return ts

    return read


def _planted(dataset, participant: str) -> dict:
    truth = dataset.ground_truth.get(participant)
    if not truth:
        raise ParameterError(
            f"no ground truth for sub-{participant}: demonstration weights exist only on the digital twin; "
            "on real data pass the ToPS weights (read_tops_weights)"
        )
    key = {(min(a, b), max(a, b)): s
           for a, b, s in truth["edges"][["parcel_i", "parcel_j", "sign"]].to_numpy()}
    if not key or not any(key.values()):
        raise DataFormatError(f"sub-{participant}: the twin plants no pain edge (null twin?); nothing "
                              "to demonstrate")
    return key


def demonstration_regions(dataset, participant: str, *, n_other: int = 8, seed: int = 0) -> np.ndarray:
    """Parcels for a small DEMONSTRATION DCC: the twin's planted pain parcels plus ``n_other`` others.

    The DCC-GARCH is fitted on every region jointly; on a laptop the demonstration uses the parcels
    that carry the planted pain coupling and ``n_other`` parcels drawn at random (seeded) from the
    rest, instead of all parcels.

    Parameters
    ----------
    dataset : Dataset
        A digital twin with ground truth.
    participant : str
    n_other : int, default=8
        Parcels without planted coupling to add (they get zero weight).
    seed : int, default=0

    Returns
    -------
    ndarray of int
        Sorted column indices into the participant's parcel time series.
    """
    key = _planted(dataset, participant)
    planted = np.unique(np.array(list(key), dtype=np.int64).ravel())
    n_parcels = len(dataset[participant].atlas)
    rest = np.setdiff1d(np.arange(n_parcels), planted)
    if not 0 <= int(n_other) <= rest.size:
        raise ParameterError(f"n_other must be between 0 and {rest.size}; got {n_other!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(participant) if participant.isdigit()
                                                        else 0]))
    other = rng.choice(rest, size=int(n_other), replace=False)
    return np.sort(np.r_[planted, other]).astype(np.int64)


def demonstration_weights(dataset, participant: str, regions: Sequence[int] | None = None) -> np.ndarray:
    """A DEMONSTRATION weight vector from the twin's planted pain edges — **not ToPS**.

    The planted sign (+1 within a module, −1 between modules), divided by the number of planted
    edges, on the edges the twin's ground truth says encode pain, 0 elsewhere.

    Parameters
    ----------
    dataset : Dataset
        A digital twin with ground truth.
    participant : str
    regions : sequence of int, optional
        Column indices of the parcels the DCC is fitted on (e.g. :func:`demonstration_regions`);
        all parcels of the participant's atlas by default.

    Returns
    -------
    ndarray of shape (n_edges,)
        Over the edges among ``regions``, in column-major upper-triangle order.
    """
    key = _planted(dataset, participant)
    if regions is None:
        regions = np.arange(len(dataset[participant].atlas))
    regions = np.asarray(regions, dtype=np.int64)
    i, j = edge_indices(regions.size)
    pi, pj = regions[i], regions[j]
    w = np.array([key.get((min(a, b), max(a, b)), 0.0) for a, b in zip(pi, pj)], dtype=float)
    if not np.any(w):
        raise DataFormatError(f"sub-{participant}: no planted pain edge among the {regions.size} regions")
    return w / np.count_nonzero(w)


# --------------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------------


@dataclass
class TopsResult:
    """The ToPS comparison (or its demonstration) for one participant.

    Attributes
    ----------
    participant : str
    rows : DataFrame
        ``kind`` (``rbin10``, ``tbin10``, ``tbin5``, ``run``), ``session``, ``run``, ``bin``, ``rating``
        (mean actual rating) and ``predicted`` (mean score) — the main analysis's row format.
    levels, metrics, roc : DataFrame
        As :class:`deipp_core.analyses.prediction.PredictionResult` (x = rating, y = score).
    within_run : DataFrame
        r over the 1-min bins of each run (:func:`deipp_core.evaluation.within_correlations`).
    within_summary : DataFrame
        Mean within-run r with bootstrap CI and p.
    frames : DataFrame
        Frame-wise ``session``, ``run``, ``frame`` (volume index after dummy removal), ``time_s``
        (frame × TR), ``rating``, ``score``.
    fits : DataFrame
        Per run: ``session``, ``run``, ``n_frames``, ``n_regions``, ``a``, ``b``, ``converged``.
    label : str
        What the score is (``"ToPS"`` or ``"demonstration"``).
    """

    participant: str
    rows: pd.DataFrame
    levels: pd.DataFrame
    metrics: pd.DataFrame
    roc: pd.DataFrame
    within_run: pd.DataFrame
    within_summary: pd.DataFrame
    frames: pd.DataFrame
    fits: pd.DataFrame
    label: str


def _run_scores(run: Run, participant: str, weights: np.ndarray, region_timeseries, regions,
                params: RatingParams, whiten: bool, block_size: int, cache_dir: Path | None, cache_key: str):
    rf = align_run(run, params)
    path = None
    if cache_dir is not None:
        path = cache_dir / f"sub-{participant}_{run.key}_desc-dcc_key-{cache_key}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as npz:
                return rf, npz["scores"], {k: npz[k].item() for k in ("a", "b", "converged", "n_regions")}
    full = region_timeseries(run, participant) if region_timeseries is not None else run.timeseries
    ts = np.asarray(full, dtype=float)[rf.frames]
    if regions is not None:
        ts = ts[:, regions]
    scores, model = tops_scores(ts, weights, whiten=whiten, block_size=block_size, return_model=True)
    info = {"a": model.a, "b": model.b, "converged": model.converged, "n_regions": model.n_regions}
    if path is not None:
        buf = io.BytesIO()
        np.savez(buf, scores=scores, **{k: np.asarray(v) for k, v in info.items()})
        atomic_write_bytes(path, buf.getvalue())
    return rf, scores, info


def run_tops(
    participant: Participant,
    weights,
    *,
    region_timeseries: Callable[[Run, str], np.ndarray] | None = None,
    regions: Sequence[int] | None = None,
    sessions: Sequence[str] | None = None,
    params: RatingParams = RatingParams(),
    whiten: bool = True,
    n_boot: int = 10_000,
    seed: int = 0,
    n_jobs: int | None = 1,
    block_size: int = 64,
    cache_dir: str | Path | None = None,
    label: str = "ToPS",
) -> TopsResult:
    """Score every rating run with a DCC-based edge signature and evaluate it like the main analysis.

    Parameters
    ----------
    participant : Participant
        Rating runs with censor flags and ratings (and, for the twin, parcel time series).
    weights : array-like of shape (n_edges,)
        Edge weights over the regions that ``region_timeseries`` returns (ToPS: 38,781 for the 279
        Fan regions, :func:`read_tops_weights`; on the twin: :func:`demonstration_weights`).
    region_timeseries : callable, optional
        ``f(run, participant_label) -> (n_volumes, n_regions)`` region means of the whole run (after
        dummy removal), e.g. :func:`bold_region_source`. Default: the run's own parcel time series
        (all parcels of the atlas, including those the main analysis leaves out).
    regions : sequence of int, optional
        Use only these columns of the region time series (e.g. :func:`demonstration_regions`); all
        by default.
    sessions : sequence of str, optional
        Restrict to these sessions (e.g. a few sessions for a quick demonstration).
    params : RatingParams, optional
        Trim, lag, censoring and bins — the main analysis's.
    whiten : bool, default=True
        ARMA(1,1) prewhitening (the original's ``'whiten'``).
    n_boot, seed : int
        Hierarchical bootstrap of :func:`deipp_core.evaluation.evaluate`.
    n_jobs : int or None, default=1
        Runs scored in parallel (joblib processes; one BLAS thread each is advisable).
    block_size : int, default=64
        See :func:`dcc_fit`.
    cache_dir : path-like, optional
        Keep each run's frame-wise scores there (``.npz``, keyed by a hash of the run's data, the
        weights, the settings and the source of this module, :mod:`deipp_core.ratings` and
        :mod:`deipp_core.edges`), so a rerun does not refit the DCC.
    label : str, default="ToPS"
        Name of the score in tables and figures.

    Returns
    -------
    TopsResult
    """
    w = np.asarray(weights, dtype=float).ravel()
    runs = participant.rating_runs()
    if sessions is not None:
        wanted = {str(s) for s in sessions}
        unknown = wanted - {r.session for r in runs}
        if unknown:
            raise ParameterError(f"sub-{participant.label} has no rating runs in session(s) "
                                 f"{sorted(unknown)}; sessions: {participant.sessions}")
        runs = [r for r in runs if r.session in wanted]
    if not runs:
        raise DataFormatError(f"sub-{participant.label} has no rating run")
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    keys = []
    code = code_digest(("analyses/tops.py", "ratings.py", "edges.py")) if cache is not None else ""
    for r in runs:
        h = hashlib.sha256(code.encode())
        for part in (w.tobytes(), repr((params, whiten, block_size, region_timeseries is None,
                                        None if regions is None else list(map(int, regions)))).encode(),
                     r.source.encode(), np.ascontiguousarray(r.confounds["censor"].to_numpy()).tobytes()):
            h.update(part)
        if region_timeseries is None:
            h.update(np.ascontiguousarray(r.timeseries).tobytes())
        keys.append(h.hexdigest()[:16])
    sel = None if regions is None else np.asarray(regions, dtype=np.int64)
    tasks = [delayed(_run_scores)(r, participant.label, w, region_timeseries, sel, params, whiten,
                                  block_size, cache, k) for r, k in zip(runs, keys)]
    if n_jobs in (None, 1):
        results = [f(*a, **kw) for f, a, kw in tasks]
    else:
        results = Parallel(n_jobs=n_jobs)(tasks)
    rows, frames, fits = [], [], []
    for r, (rf, scores, info) in zip(runs, results):
        frames.append(pd.DataFrame({"session": r.session, "run": int(r.run), "frame": rf.frames,
                                    "time_s": rf.frames * float(r.tr), "rating": rf.rating, "score": scores}))
        fits.append({"session": r.session, "run": int(r.run), "n_frames": rf.n_frames,
                     "n_regions": int(info["n_regions"]), "a": float(info["a"]), "b": float(info["b"]),
                     "converged": bool(info["converged"])})
        for family, n in (("rbin", 10), ("tbin", 10), ("tbin", 5)):
            labels = (rf.rbin if family == "rbin" else rf.tbin)[n]
            for bn, (x, y) in enumerate(zip(bin_means(rf.rating, labels, n), bin_means(scores, labels, n))):
                rows.append((f"{family}{n}", r.session, int(r.run), bn, float(x), float(y)))
        rows.append(("run", r.session, int(r.run), -1, float(rf.rating.mean()), float(scores.mean())))
    rows_df = pd.DataFrame(rows, columns=["kind", "session", "run", "bin", "rating", "predicted"])
    order = {k: i for i, k in enumerate(("rbin10", "tbin10", "tbin5", "run"))}
    rows_df = rows_df.sort_values(["kind", "session", "run", "bin"], key=lambda s: s.map(order)
                                  if s.name == "kind" else s, kind="stable").reset_index(drop=True)
    levels = evaluation.level_table(rows_df)
    metrics = evaluation.evaluate(levels, n_boot=n_boot, seed=seed)
    roc = pd.concat(
        [evaluation.roc_source_data(levels, lv).set_axis(["fpr", "tpr"], axis=1).assign(level=lv)
         for lv in evaluation.LEVELS if (levels["level"] == lv).any()],
        ignore_index=True,
    )
    within = evaluation.within_correlations(levels, by="run", n_boot=n_boot, seed=seed)
    return TopsResult(participant=participant.label, rows=rows_df, levels=levels, metrics=metrics, roc=roc,
                      within_run=within.units, within_summary=within.summary,
                      frames=pd.concat(frames, ignore_index=True), fits=pd.DataFrame(fits), label=label)


#: Sessions per participant of the twin demonstration, per profile (0 = all).
DEMO_SESSIONS = {"quick": 3, "book": 6, "paper": 0}


@dataclass
class TopsComparison:
    """What the "what cannot be rerun" chapter shows: the ToPS comparison or its demonstration.

    Attributes
    ----------
    mode : {"tops", "demonstration"}
        ``"tops"`` when real data and the ToPS weights were given; otherwise the twin demonstration.
    results : dict of str to TopsResult
        Keyed by participant label.
    n_regions : dict of str to int
        Regions the DCC was fitted on, per participant.
    n_weighted : dict of str to int
        Edges with a non-zero weight, per participant.
    sessions : dict of str to list of str
        Sessions scored per participant.
    """

    mode: str
    results: dict
    n_regions: dict
    n_weighted: dict
    sessions: dict


def compare_tops(
    dataset,
    participants: Sequence[str],
    *,
    tops_weights: str | Path = "",
    tops_atlas: str | Path = "",
    bold_template: str = "",
    n_sessions: int | None = None,
    n_other: int = 8,
    n_boot: int = 10_000,
    seed: int = 0,
    n_jobs: int | None = 1,
    use_cache: bool = True,
) -> TopsComparison:
    """Run the ToPS comparison when the weights and real data are given, else the twin demonstration.

    Parameters
    ----------
    dataset : Dataset
    participants : sequence of str
        Participant labels.
    tops_weights : path-like, default=""
        The ToPS weights (:func:`read_tops_weights`). Empty: the demonstration (twin only).
    tops_atlas : path-like, default=""
        The Fan 279-region atlas; by default ``<topsdir>/`` :data:`FAN_ATLAS_FILE`, with ``topsdir``
        the folder two levels above the weights file (the ToPS repository's layout).
    bold_template : str, default=""
        File-name template of the BOLD (:func:`bold_region_source`); empty = :data:`DEFAULT_BOLD_TEMPLATE`.
    n_sessions : int, optional
        Demonstration only: score the first ``n_sessions`` sessions of each participant (None or 0:
        all).
    n_other : int, default=8
        Demonstration only: parcels without planted coupling added to the planted ones
        (:func:`demonstration_regions`).
    n_boot, seed, n_jobs
        See :func:`run_tops`.
    use_cache : bool, default=True
        Keep per-run scores under ``derivatives/deipp/tops/`` of the data set.

    Returns
    -------
    TopsComparison

    Raises
    ------
    ParameterError
        If weights are given with the digital twin (ToPS needs the real MNI BOLD), or no weights are
        given with real data (there is nothing to demonstrate with).
    """
    from deipp_core.data.derivatives import derivatives_root

    cache = derivatives_root(dataset.root) / "tops" if use_cache else None
    if str(tops_weights):
        if dataset.is_simulated:
            raise ParameterError(
                "tops_weights was given, but the data are the digital twin: ToPS is defined on the 279 "
                "regions of the Fan atlas in MNI space, which the twin does not simulate; pass the real "
                "data set (--bids PATH) with the weights, or leave tops_weights empty for the demonstration"
            )
        weights_path = Path(tops_weights).expanduser()
        weights = read_tops_weights(weights_path)
        atlas = (Path(tops_atlas).expanduser() if str(tops_atlas)
                 else weights_path.parent.parent / FAN_ATLAS_FILE)
        source = bold_region_source(dataset.root, atlas, template=bold_template or DEFAULT_BOLD_TEMPLATE)
        results = {label: run_tops(dataset[label], weights, region_timeseries=source, n_boot=n_boot,
                                   seed=seed, n_jobs=n_jobs, cache_dir=cache, label="ToPS")
                   for label in participants}
        n_weighted = int(np.count_nonzero(np.nan_to_num(weights)))
        return TopsComparison("tops", results, dict.fromkeys(results, FAN_N_REGIONS),
                              dict.fromkeys(results, n_weighted),
                              {label: dataset[label].sessions for label in participants})
    if not dataset.is_simulated:
        raise ParameterError(
            "the ToPS comparison on real data needs the ToPS weights: pass tops_weights (deipp chapter "
            "what-cannot-be-rerun --tops-weights PATH); the demonstration runs only on the digital twin"
        )
    results, sessions, n_regions, n_weighted = {}, {}, {}, {}
    for label in participants:
        participant = dataset[label]
        regions = demonstration_regions(dataset, label, n_other=n_other, seed=seed)
        weights = demonstration_weights(dataset, label, regions)
        chosen = participant.sessions[: n_sessions] if n_sessions else participant.sessions
        results[label] = run_tops(participant, weights, regions=regions, sessions=chosen, n_boot=n_boot,
                                  seed=seed, n_jobs=n_jobs, cache_dir=cache, label="Demonstration")
        sessions[label] = list(chosen)
        n_regions[label], n_weighted[label] = int(regions.size), int(np.count_nonzero(weights))
    return TopsComparison("demonstration", results, n_regions, n_weighted, sessions)


def tops_summary(comparison: TopsComparison) -> str:
    """Markdown bullets: per participant, r at the 1-min and run levels, mean within-run r, and the
    fitted DCC parameters (median over runs)."""
    from deipp_core.reporting import format_ci

    lines = []
    for label, res in comparison.results.items():
        m = res.metrics.set_index("level")
        w = res.within_summary.iloc[0]
        one, run = m.loc["1min"], m.loc["run"]
        lines.append(
            f"- **Participant {int(label) if label.isdigit() else label}** "
            f"({len(comparison.sessions[label])} sessions, {len(res.fits)} runs): 1-min r = "
            f"{format_ci(one['r'], one['r_ci_low'], one['r_ci_high'])}, run-level r = "
            f"{format_ci(run['r'], run['r_ci_low'], run['r_ci_high'])}, mean within-run r = "
            f"{format_ci(w['r'], w['r_ci_low'], w['r_ci_high'])}; "
            f"DCC a = {float(res.fits['a'].median()):.2g}, "
            f"b = {float(res.fits['b'].median()):.2f} (medians over runs)."
        )
    return "\n".join(lines)


def parcellation_summary(dataset) -> str:
    """One sentence naming the parcellation each participant's time series use (e.g. the twin's
    Seitzman subset), with its parcel, included-parcel and network counts."""
    parts = []
    for label, p in sorted(dataset.participants.items()):
        atlas = p.atlas
        parts.append(f"sub-{label}: {len(atlas)} parcels ({int(atlas['included'].sum())} included in the "
                     f"model), {atlas['network'].nunique()} network labels")
    return "; ".join(parts)


def describe_comparison(comparison: TopsComparison) -> dict[str, str]:
    """The chapter's two data-dependent paragraphs (Markdown): ``"mode"`` (what was run) and
    ``"reading"`` (how to read the figures, with the fitted DCC parameters and the score's
    within-run vs between-run spread)."""
    first = next(iter(comparison.results))
    if comparison.mode == "demonstration":
        mode = (
            "**This is a demonstration, not ToPS.** The twin has neither the Fan atlas nor ToPS. The weight "
            "vector is built from the twin's *planted* pain edges (+1 within a planted module, −1 between "
            "the two modules, 0 elsewhere), and the DCC is fitted on the "
            f"{comparison.n_regions[first]} parcels that carry the planted coupling plus a few others, over "
            f"the first {len(comparison.sessions[first])} sessions of each participant, so that the page "
            "runs in seconds. It shows that the pipeline runs end to end and how a DCC-based score behaves "
            "when the weights are right; it says nothing about ToPS or about the real participants."
        )
    else:
        mode = (
            "**The real ToPS comparison**, with the ToPS weights supplied by the reader "
            f"({comparison.n_weighted[first]:,} non-zero edge weights over the 279 Fan regions), on all "
            "sessions of each participant."
        )
    fits = pd.concat([r.fits for r in comparison.results.values()])
    frames = pd.concat([r.frames.assign(participant=k) for k, r in comparison.results.items()])
    by_run = frames.groupby(["participant", "session", "run"])["score"]
    within_sd = float(by_run.std().mean())
    between_sd = float(by_run.mean().groupby(level="participant").std().mean())
    n_ses = min(len(s) for s in comparison.sessions.values())
    reading = (
        "How to read {numref}`fig-what-cannot-be-rerun-levels` and {numref}`fig-what-cannot-be-rerun-trace`: "
        f"the fitted DCC parameters are a = {fits['a'].median():.2g} and b = {fits['b'].median():.2f} "
        "(medians over runs; when a is this small, b hardly changes anything). A small a means that "
        "the correlations move little from frame to frame; "
        "what moves is a·(an exponentially weighted average of the recent co-fluctuations, over about "
        "1/(1 − b) frames), so the score's changes within a run are small in absolute terms "
        f"(standard deviation within runs {within_sd:.2g}, against {between_sd:.2g} between the run "
        "means of a participant) "
        "but can still follow pain, which correlations, being scale-free, pick up (the within-run r "
        "above). Pooled over runs, the 1-min and 2-min levels therefore mix the small within-run "
        f"changes with the differences between runs. The session level has only {n_ses} units per "
        "participant here, too few for its r, AUC or bootstrap interval to mean anything."
    )
    if comparison.mode == "demonstration":
        reading += (" All of this describes the DCC estimator on simulated data; how ToPS itself fares is "
                    "what the comparison with the real weights shows.")
    return {"mode": mode, "reading": reading}
