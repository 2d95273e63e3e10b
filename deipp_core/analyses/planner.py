"""Study planner (beyond the paper): how many sessions does a person need to reach a target accuracy?

The training-size analysis (:mod:`deipp_core.analyses.training_size`, ``deipp_methods.md`` §10.7)
measures held-out r for every number of training sessions ``m`` and repetition (a random draw of the
training sessions). This module turns those measurements into a planning tool.

**Mean curve.** Ooi et al. (2025, *Nature* 644, 731–740) model between-person prediction accuracy as
``r = K0·sqrt(1 / (1 + K1/N + K2/(N·T)))`` with ``N`` participants and ``T`` minutes of scan per
participant (the form of their theoretical model, fitted by least squares; verified against their
published code, ``CBIG_ME_fns.py::gd_pred_acc``, and calculator). In a personalized design the sample
is the sessions of one person, so here ``N`` becomes the number of training sessions ``m`` and ``T``
the minutes of data per session::

    r(m, T) = K0 / sqrt(1 + K1/m + K2/(m·T))

``K0`` is the accuracy with unlimited data (the asymptote), ``K1`` the session-bound shortfall (what
only more sessions can fix: session-to-session variation) and ``K2`` the minute-bound shortfall (what
more minutes of data fix, however they are spread over sessions). With full sessions only (``T``
fixed) ``K1`` and ``K2/T`` cannot be separated, and the fit is ``r(m) = K0 / sqrt(1 + K1/m)``. The
run-subset variant of the training-size analysis (``training_size(..., runs_per_session=j)``) trains
on ``j`` of each drawn session's 10-min runs, so ``T`` varies at fixed ``m`` and both terms are
identified. The curve is fitted to the mean r over repetitions of each (m, T) by unweighted least
squares (:func:`scipy.optimize.least_squares`, bounds ``0 ≤ K0 ≤ 1``, ``K1, K2 ≥ 0``, several starts),
as Ooi et al. fit theirs.

**Spread.** A planner needs more than the mean: "reach r = X with 80 % probability". The repetitions'
r are modelled on Fisher's z scale, ``atanh r ~ Normal(atanh r(m, T), s²(m, T))``, with

    s²(m, T) = (τ₁² + τ₂²/T) / m · fpc(m) + σ₀²,   fpc(m) = (n − m) / (n − 1),

fitted to the per-condition variances by non-negative least squares, reweighted by the inverse fitted
variance (``τ₂ = 0`` in the sessions-only form). ``fpc`` is the finite-population correction of
drawing ``m`` sessions from the ``n = S − 1`` available: near ``m = S − 2`` the draws overlap and
their r barely vary, which says nothing about a new person. Predictions for a new person drop it
(sessions from an unlimited pool):
``s²(m, T) = (τ₁² + τ₂²/T)/m + σ₀²``. Then ``P(r ≥ X | m, T) = 1 − Φ((atanh X − atanh r(m, T)) /
s(m, T))``, and the number of sessions needed is the smallest ``m`` with ``P ≥`` the requested
probability — found on the fitted curve, so it may lie beyond the largest ``m`` measured
(extrapolation, flagged). The curve is fitted to the *mean* r but used as the centre (the median) on
the z scale. For positive r the mean lies below the median by about ``r(1 − r²)s²`` (second order in
``s``): negligible when many sessions keep the spread small, and at very few sessions it makes the
probabilities slightly conservative.

**Uncertainty.** The repetitions of each condition are resampled with replacement (``n_boot`` times)
and both models refitted; the bootstrap distribution of the answer gives its interval. This captures
the Monte-Carlo uncertainty of the curve for *this* person; it does not capture how another person
would differ — with two participants that cannot be estimated, which is why the answers are given per
participant.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats as sps

from deipp_core.analyses.training_size import TrainingSizeResult, cached_training_size
from deipp_core.evaluation import LEVELS
from deipp_core.exceptions import ParameterError

__all__ = [
    "RUN_MINUTES",
    "SaturatingCurve",
    "saturating_model",
    "planner_reps",
    "run_subset_sizes",
    "planner_training_size",
    "fit_saturating",
    "sessions_needed",
    "plan_table",
    "format_plan_table",
    "planner_summary",
]

logger = logging.getLogger(__name__)

#: Nominal length of one rating run in minutes (the study's runs last 10 minutes, §2).
RUN_MINUTES = 10.0

#: Largest number of sessions searched for an answer.
_MAX_SESSIONS = 10_000

#: Starting values (K1, K2) of the multi-start least-squares fit of the mean curve.
_STARTS = ((0.5, 1.0), (2.0, 10.0), (8.0, 40.0), (32.0, 160.0), (128.0, 640.0))

#: r is clipped to this magnitude before Fisher's z.
_R_CLIP = 0.999999


def saturating_model(m, K0: float, K1: float, K2: float = 0.0, minutes=np.inf) -> np.ndarray:
    """Expected accuracy with ``m`` sessions of ``minutes`` minutes each (Ooi et al. 2025's form).

    ``r = K0 / sqrt(1 + K1/m + K2/(m·T))``.

    Parameters
    ----------
    m : array-like of float
        Number of training sessions (> 0).
    K0 : float
        Asymptote: the accuracy with unlimited data.
    K1 : float
        Session-bound term (≥ 0).
    K2 : float, default=0
        Minute-bound term (≥ 0), in session·minutes.
    minutes : array-like of float, default=inf
        Minutes of data per session (broadcast against ``m``); irrelevant when ``K2 = 0``.

    Returns
    -------
    ndarray
        Expected r.

    Examples
    --------
    >>> round(float(saturating_model(4, 0.6, 4.0)), 4)
    0.4243
    """
    m = np.asarray(m, dtype=float)
    T = np.asarray(minutes, dtype=float)
    extra = np.where(np.isinf(T), 0.0, K2 / (m * T)) if K2 else 0.0
    return K0 / np.sqrt(1.0 + K1 / m + extra)


@dataclass
class SaturatingCurve:
    """The fitted planner model of one participant, at one or more evaluation levels.

    Attributes
    ----------
    participant : str
        Participant label (or name).
    form : {"sessions", "sessions_minutes"}
        ``"sessions"``: full sessions only, ``r = K0/sqrt(1 + K1/m)`` (``K2 = τ₂ = 0``);
        ``"sessions_minutes"``: run subsets included, ``K2`` and ``τ₂`` free.
    params : DataFrame
        One row per level (index ``level``): ``K0``, ``K1``, ``K2`` (mean curve), ``tau2_session``,
        ``tau2_minutes``, ``sigma2`` (spread model, z scale), ``r2`` (coefficient of determination of
        the mean curve over the conditions), ``session_share`` (share of the shortfall at full
        sessions that only more sessions can remove, ``K1 / (K1 + K2/T_full)``), ``n_conditions`` and
        ``K0_at_bound`` (the fitted asymptote is at its bound r = 1: the measured sizes lie on the
        rising part of the curve and do not pin the asymptote down, so answers far beyond them are
        weakly determined).
    boot : dict of str to ndarray of shape (n_boot, 6)
        Bootstrap draws of ``(K0, K1, K2, tau2_session, tau2_minutes, sigma2)`` per level.
    observed : DataFrame
        One row per (level, n_session, minutes_per_session): ``n_reps``, ``mean_r``, ``sd_r``,
        ``ci_lower``, ``ci_upper`` (mean ± 1.96·SD/√reps), ``var_z`` (variance of atanh r).
    reps : DataFrame
        The repetitions the curve was fitted to (:func:`planner_reps`).
    n_pool : int or None
        Sessions available to draw from (``S − 1``) for the finite-population correction; ``None``:
        no correction.
    full_minutes : float
        Minutes of data in a full session (the default ``minutes`` of predictions).
    max_observed : int
        Largest number of training sessions measured; answers beyond it are extrapolations.
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the bootstrap.
    """

    participant: str
    form: str
    params: pd.DataFrame
    boot: dict = field(repr=False)
    observed: pd.DataFrame = field(repr=False)
    reps: pd.DataFrame = field(repr=False)
    n_pool: int | None = None
    full_minutes: float = 3 * RUN_MINUTES
    max_observed: int = 0
    n_boot: int = 0
    seed: int = 0

    @property
    def levels(self) -> list[str]:
        """Levels the curve was fitted at."""
        return list(self.params.index)

    def _theta(self, level: str, boot: bool = False) -> np.ndarray:
        if level not in self.params.index:
            raise ParameterError(
                f"the planner curve of {self.participant} was fitted at levels {self.levels}, not "
                f"{level!r}; refit with fit_saturating(..., levels=[{level!r}])"
            )
        if boot:
            return self.boot[level]
        return self.params.loc[level, ["K0", "K1", "K2", "tau2_session", "tau2_minutes", "sigma2"]].to_numpy(float)

    def _minutes(self, minutes) -> np.ndarray:
        T = np.asarray(self.full_minutes if minutes is None else minutes, dtype=float)
        if np.any(T <= 0):
            raise ParameterError(f"minutes per session must be positive; got {minutes!r}")
        return T

    def predict(self, m, *, level: str = "1min", minutes=None) -> np.ndarray:
        """Expected held-out r with ``m`` training sessions.

        Parameters
        ----------
        m : array-like of float
            Numbers of training sessions.
        level : str, default="1min"
        minutes : float or array-like, optional
            Minutes of data per session (default: full sessions, :attr:`full_minutes`).

        Returns
        -------
        ndarray
        """
        K0, K1, K2 = self._theta(level)[:3]
        return saturating_model(_check_m(m), K0, K1, K2, self._minutes(minutes))

    def band(self, m, *, level: str = "1min", minutes=None,
             ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile bootstrap interval of the expected r at each ``m``.

        Parameters
        ----------
        m : array-like of float
            Numbers of training sessions.
        level : str, default="1min"
        minutes : float, optional
            Minutes of data per session (default: full sessions).
        ci : float, default=0.95
            Coverage.

        Returns
        -------
        lower, upper : ndarray
        """
        m = _check_m(m)
        T = self._minutes(minutes)
        B = self._theta(level, boot=True)
        curves = B[:, :1] / np.sqrt(1.0 + B[:, 1:2] / m[None, :] + B[:, 2:3] / (m[None, :] * T))
        alpha = (1 - ci) / 2
        return np.quantile(curves, alpha, axis=0), np.quantile(curves, 1 - alpha, axis=0)

    def sd_z(self, m, *, level: str = "1min", minutes=None) -> np.ndarray:
        """Predicted SD of atanh r for a new person with ``m`` sessions (no finite-population correction)."""
        th = self._theta(level)
        return _sd_z(th, _check_m(m), self._minutes(minutes))

    def prob_reach(self, target_r: float, m, *, level: str = "1min", minutes=None,
                   boot: bool = False) -> np.ndarray:
        """``P(r ≥ target_r)`` with ``m`` training sessions.

        Parameters
        ----------
        target_r : float
        m : array-like of float
        level : str, default="1min"
        minutes : float, optional
            Minutes per session (default: full sessions).
        boot : bool, default=False
            Return one row per bootstrap draw, shape (n_boot, len(m)), instead of the point estimate.

        Returns
        -------
        ndarray
        """
        _check_target(target_r)
        th = self._theta(level, boot=boot)
        return _prob(np.atleast_2d(th), _check_m(m), self._minutes(minutes), float(target_r))[
            slice(None) if boot else 0]


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


class _UnreachableTarget(ParameterError):
    """A target the fitted curve cannot reach with the requested probability (caught by plan_table)."""


def _check_m(m) -> np.ndarray:
    m = np.atleast_1d(np.asarray(m, dtype=float))
    if np.any(~np.isfinite(m)) or np.any(m <= 0):
        raise ParameterError(f"numbers of sessions must be positive and finite; got {m.tolist()[:5]}")
    return m


def _check_target(target_r: float) -> None:
    if not np.isfinite(target_r) or not 0.0 < float(target_r) < 1.0:
        raise ParameterError(f"target r must lie strictly between 0 and 1; got {target_r!r}")


def _check_probability(probability: float) -> None:
    if not np.isfinite(probability) or not 0.5 <= float(probability) < 1.0:
        raise ParameterError(
            f"probability must be in [0.5, 1); got {probability!r} (below 0.5 the 'smallest number of "
            "sessions' is not defined: few sessions can exceed a target by luck)"
        )


def _z(r) -> np.ndarray:
    return np.arctanh(np.clip(np.asarray(r, dtype=float), -_R_CLIP, _R_CLIP))


def _sd_z(theta: np.ndarray, m: np.ndarray, T) -> np.ndarray:
    """Predictive SD (z scale) of one parameter vector ``theta`` (6,) at sessions ``m`` (no fpc)."""
    return np.sqrt((theta[3] + theta[4] / T) / m + theta[5])


def _prob(theta: np.ndarray, m: np.ndarray, T, target: float) -> np.ndarray:
    """P(r ≥ target) for each row of ``theta`` (n, 6) at each m: array (n, len(m))."""
    mu = theta[:, :1] / np.sqrt(1.0 + theta[:, 1:2] / m[None, :] + theta[:, 2:3] / (m[None, :] * T))
    sd = np.sqrt((theta[:, 3:4] + theta[:, 4:5] / T) / m[None, :] + theta[:, 5:6])
    gap = _z(mu) - _z(target)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = sps.norm.cdf(gap / sd)
    return np.where(sd > 0, p, (gap >= 0).astype(float))


def _limit_prob(theta: np.ndarray, target: float) -> np.ndarray:
    """P(r ≥ target) as m → ∞, per row of ``theta``."""
    gap = _z(theta[:, 0]) - _z(target)
    sd = np.sqrt(theta[:, 5])
    with np.errstate(divide="ignore", invalid="ignore"):
        p = sps.norm.cdf(gap / sd)
    return np.where(sd > 0, p, (gap > 0).astype(float))


def _first_m(theta: np.ndarray, T: float, target: float, probability: float,
             max_sessions: int) -> np.ndarray:
    """Smallest integer m with P ≥ probability per row of ``theta`` (inf where none ≤ max_sessions).

    For ``probability ≥ 0.5`` the numbers of sessions that suffice form an upward-closed set: P ≥ 0.5
    means the expected r is at or above the target, and from there more sessions both raise the
    expected r and shrink the spread, so P can only grow. A bisection over integers is therefore exact.
    """
    theta = np.atleast_2d(theta)
    n = theta.shape[0]
    top = np.full(n, float(max_sessions))
    ok_top = _prob_at(theta, top, T, target) >= probability
    lo = np.zeros(n)  # P(lo) < probability (m = 0: no data)
    hi = top.copy()   # P(hi) ≥ probability where ok_top
    while True:
        active = ok_top & (hi - lo > 1)
        if not active.any():
            break
        mid = np.floor((lo + hi) / 2)
        good = _prob_at(theta, np.maximum(mid, 1.0), T, target) >= probability
        hi = np.where(active & good, mid, hi)
        lo = np.where(active & ~good, mid, lo)
    return np.where(ok_top, hi, np.inf)


def _prob_at(theta: np.ndarray, m: np.ndarray, T: float, target: float) -> np.ndarray:
    """P(r ≥ target) of each row of ``theta`` at its own number of sessions ``m[i]``."""
    mu = theta[:, 0] / np.sqrt(1.0 + theta[:, 1] / m + theta[:, 2] / (m * T))
    sd = np.sqrt((theta[:, 3] + theta[:, 4] / T) / m + theta[:, 5])
    gap = _z(mu) - _z(target)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = sps.norm.cdf(gap / sd)
    return np.where(sd > 0, p, (gap >= 0).astype(float))


# ----------------------------------------------------------------------------------------------
# Repetitions → tidy table
# ----------------------------------------------------------------------------------------------


def _full_runs(result: TrainingSizeResult) -> float:
    """Mean number of rating runs per session in a training-size result's evaluation rows."""
    runs = result.eval_rows[result.eval_rows["kind"] == "run"]
    return float(runs.groupby("session")["run"].nunique().mean())


def planner_reps(
    results: TrainingSizeResult | Sequence[TrainingSizeResult],
    *,
    run_minutes: float = RUN_MINUTES,
) -> pd.DataFrame:
    """The repetitions of one participant's training-size results as one tidy table.

    Parameters
    ----------
    results : TrainingSizeResult or sequence of them
        The analysis of the paper (every run of each drawn session) and, optionally, run-subset
        variants (``training_size(..., runs_per_session=j)``) of the same participant.
    run_minutes : float, default=10
        Minutes of data per run (the study's runs last 10 minutes).

    Returns
    -------
    DataFrame
        ``n_session``, ``runs_per_session``, ``minutes_per_session``, ``rep``, ``level``, ``r``, plus
        the attributes ``participant``, ``n_pool`` (S − 1) and ``full_minutes`` in ``.attrs``.

    Raises
    ------
    ParameterError
        If the results belong to different participants or session sets, or ``run_minutes`` ≤ 0.
    """
    if isinstance(results, TrainingSizeResult):
        results = [results]
    results = list(results)
    if not results:
        raise ParameterError("planner_reps needs at least one TrainingSizeResult")
    if not run_minutes > 0:
        raise ParameterError(f"run_minutes must be positive; got {run_minutes!r}")
    first = results[0]
    for res in results[1:]:
        if res.participant != first.participant or not np.array_equal(
                np.asarray(res.sessions).astype(str), np.asarray(first.sessions).astype(str)):
            raise ParameterError(
                f"the training-size results mix participants or session sets (sub-{first.participant} "
                f"and sub-{res.participant}); pass the results of one participant"
            )
    full_runs = _full_runs(first)
    frames = []
    for res in results:
        runs = full_runs if res.runs_per_session is None else float(res.runs_per_session)
        d = res.reps[["n_session", "rep", "level", "r"]].copy()
        d.insert(1, "runs_per_session", runs)
        d.insert(2, "minutes_per_session", runs * float(run_minutes))
        frames.append(d)
    out = pd.concat(frames, ignore_index=True)
    out = out.drop_duplicates(["n_session", "runs_per_session", "rep", "level"]).reset_index(drop=True)
    out.attrs.update(participant=str(first.participant), n_pool=int(np.asarray(first.sessions).size - 1),
                     full_minutes=full_runs * float(run_minutes))
    return out


def run_subset_sizes(n_sessions: int, max_sizes: int = 6) -> list[int]:
    """Numbers of training sessions for the run-subset variant: a geometric grid over 1 … S − 2.

    Keeps the number of extra fits modest: at most ``max_sizes`` sizes, denser where the curve bends.

    Examples
    --------
    >>> run_subset_sizes(30)
    [1, 2, 4, 7, 14, 28]
    >>> run_subset_sizes(5)
    [1, 2, 3]
    """
    top = int(n_sessions) - 2
    if top < 1:
        raise ParameterError(f"the training-size analysis needs at least 3 sessions; got {n_sessions}")
    if top <= max_sizes:
        return list(range(1, top + 1))
    return sorted({int(round(v)) for v in np.geomspace(1, top, max_sizes)})


def planner_training_size(
    dataset,
    label: str,
    *,
    profile="quick",
    seed: int = 0,
    n_jobs: int | None = 1,
    features=None,
    cv=None,
    minutes: bool = True,
    max_sizes: int = 6,
) -> list[TrainingSizeResult]:
    """The training-size results the planner needs for one participant, cached.

    The analysis of the paper (:func:`~deipp_core.analyses.training_size.cached_training_size`, shared
    with the training-size chapter) and, with ``minutes=True``, its run-subset variants with 1 … R − 1
    runs per drawn session (R rating runs per session) at :func:`run_subset_sizes` sizes.

    Parameters
    ----------
    dataset : Dataset
    label : str
        Participant label.
    profile : str or Profile, default="quick"
    seed : int, default=0
    n_jobs : int or None, default=1
    features, cv : optional
        Precomputed features and main model (:func:`~deipp_core.analyses.predict_participant`).
    minutes : bool, default=True
        Also run the run-subset variants (to separate sessions from minutes).
    max_sizes : int, default=6
        Sizes of the run-subset variants.

    Returns
    -------
    list of TrainingSizeResult
        The full analysis first, then one result per number of runs.
    """
    full = cached_training_size(dataset, label, profile=profile, seed=seed, n_jobs=n_jobs,
                                features=features, cv=cv)
    out = [full]
    if minutes:
        n_runs = int(np.floor(_full_runs(full)))
        sizes = run_subset_sizes(np.asarray(full.sessions).size, max_sizes)
        for j in range(1, n_runs):
            out.append(cached_training_size(dataset, label, profile=profile, seed=seed, n_jobs=n_jobs,
                                            features=features, cv=cv, sizes=sizes, runs_per_session=j))
    return out


# ----------------------------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------------------------


def _conditions(reps: pd.DataFrame, level: str) -> tuple[pd.DataFrame, list[np.ndarray]]:
    d = reps[reps["level"] == level]
    keys, r_of = [], []
    for (m, T), g in d.groupby(["n_session", "minutes_per_session"], sort=True):
        keys.append((int(m), float(T)))
        r_of.append(g.sort_values("rep")["r"].to_numpy(float))
    return pd.DataFrame(keys, columns=["n_session", "minutes_per_session"]), r_of


def _fit_mean(m, T, y, free_k2: bool, starts) -> np.ndarray:
    """Least-squares (K0, K1, K2) of the mean curve, best of several starts."""

    def resid(p):
        K0, K1, K2 = p[0], p[1], p[2] if free_k2 else 0.0
        return K0 / np.sqrt(1.0 + K1 / m + K2 / (m * T)) - y

    def jac(p):
        K0, K1, K2 = p[0], p[1], p[2] if free_k2 else 0.0
        D = 1.0 + K1 / m + K2 / (m * T)
        half = -0.5 * K0 * D ** -1.5
        cols = [D ** -0.5, half / m] + ([half / (m * T)] if free_k2 else [])
        return np.column_stack(cols)

    k0 = float(np.clip(np.max(y) * 1.2, 0.01, 0.99))
    best, best_cost = None, np.inf
    n_par = 3 if free_k2 else 2
    lower, upper = np.zeros(n_par), np.r_[1.0, np.full(n_par - 1, np.inf)]
    for start in starts:
        # a start is (K1, K2), with K0 from the data, or a full (K0, K1, K2) (warm start)
        x0 = np.asarray(start if len(start) == 3 else (k0, *start), dtype=float)[:n_par]
        x0 = np.clip(x0, lower, np.r_[1.0 - 1e-9, np.full(n_par - 1, np.inf)])
        fit = optimize.least_squares(resid, x0, jac=jac, bounds=(lower, upper), method="trf", x_scale="jac")
        if fit.cost < best_cost - 1e-15:
            best, best_cost = fit.x, fit.cost
    return np.array([best[0], best[1], best[2] if free_k2 else 0.0])


def _fit_spread(m, T, var, n_pool, free_t2: bool) -> np.ndarray:
    """Non-negative least squares (τ₁², τ₂², σ₀²) of the per-condition variances of atanh r.

    A sample variance of ``n`` values has standard deviation ≈ ``var·sqrt(2/(n − 1))``, proportional
    to the variance itself, so after an unweighted start each condition is weighted by the inverse of
    its fitted variance (two reweighting steps): large variances at few sessions would otherwise
    swamp the small ones that determine σ₀².
    """
    fpc = np.ones_like(m) if n_pool is None or n_pool <= 1 else np.clip((n_pool - m) / (n_pool - 1), 0, 1)
    G = np.column_stack([fpc / m] + ([fpc / (m * T)] if free_t2 else []) + [np.ones_like(m)])
    coef, _ = optimize.nnls(G, var)
    floor = max(float(np.mean(var)) * 1e-3, 1e-12)
    for _ in range(2):
        w = 1.0 / np.maximum(G @ coef, floor)
        coef, _ = optimize.nnls(G * w[:, None], var * w)
    return np.array([coef[0], coef[1] if free_t2 else 0.0, coef[-1]])


def _fit_level(m, T, r_of, n_pool, free: bool, n_boot: int, rng: np.random.Generator):
    mean = np.array([r.mean() for r in r_of])
    var = np.array([_z(r).var(ddof=1) for r in r_of])
    mean_p = _fit_mean(m, T, mean, free, _STARTS)
    theta = np.r_[mean_p, _fit_spread(m, T, var, n_pool, free)]
    # bootstrap: resample the repetitions of every condition
    idx = [rng.integers(0, r.size, size=(n_boot, r.size)) for r in r_of]
    boot = np.empty((n_boot, 6))
    warm = [tuple(mean_p)]
    for b in range(n_boot):
        rb = [r[i[b]] for r, i in zip(r_of, idx)]
        mb = np.array([x.mean() for x in rb])
        vb = np.array([_z(x).var(ddof=1) for x in rb])
        boot[b, :3] = _fit_mean(m, T, mb, free, warm)
        boot[b, 3:] = _fit_spread(m, T, vb, n_pool, free)
    ss_res = float(np.sum((saturating_model(m, *mean_p, T) - mean) ** 2))
    ss_tot = float(np.sum((mean - mean.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else np.nan
    return theta, boot, mean, var, r2


def fit_saturating(
    data: TrainingSizeResult | Sequence[TrainingSizeResult] | pd.DataFrame,
    *,
    levels: Sequence[str] = LEVELS,
    n_boot: int = 500,
    seed: int = 0,
    run_minutes: float = RUN_MINUTES,
    n_pool: int | None = None,
    participant: str | None = None,
) -> SaturatingCurve:
    """Fit the saturating accuracy curve and the spread of one participant's repetitions.

    Parameters
    ----------
    data : TrainingSizeResult, sequence of them, or DataFrame
        Training-size results of one participant (the paper's analysis, optionally with run-subset
        variants: then the minutes-aware form is fitted), or a table as :func:`planner_reps` returns
        (``n_session``, ``minutes_per_session``, ``rep``, ``level``, ``r``).
    levels : sequence of str, default=all four
        Evaluation levels to fit.
    n_boot : int, default=500
        Bootstrap resamples of the repetitions.
    seed : int, default=0
        Seed of the bootstrap (level ``ℓ`` uses ``SeedSequence(seed, spawn_key=(ℓ,))``).
    run_minutes : float, default=10
        Minutes per run (used when ``data`` are results).
    n_pool : int, optional
        Sessions the training sets were drawn from (S − 1), for the finite-population correction of
        the spread; taken from the results when ``data`` are results or carry it in ``.attrs``.
    participant : str, optional
        Name stored in the curve (default: the results' participant).

    Returns
    -------
    SaturatingCurve

    Raises
    ------
    ParameterError
        If a level is unknown, fewer than two numbers of sessions (three conditions for the
        minutes-aware form) were measured, a condition has fewer than two repetitions, or a count is
        not a positive integer.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> m = np.repeat([1, 2, 4, 8, 16], 20)
    >>> r = np.tanh(np.arctanh(saturating_model(m, 0.6, 3.0)) + rng.normal(0, 0.1 / np.sqrt(m)))
    >>> reps = pd.DataFrame({"n_session": m, "minutes_per_session": 30.0, "rep": np.tile(range(20), 5),
    ...                      "level": "1min", "r": r})
    >>> curve = fit_saturating(reps, levels=["1min"], n_boot=50)
    >>> round(float(curve.params.loc["1min", "K0"]), 1)
    0.6
    """
    if int(n_boot) != n_boot or n_boot < 1:
        raise ParameterError(f"n_boot must be a positive integer; got {n_boot!r}")
    if isinstance(data, pd.DataFrame):
        reps = data
        missing = {"n_session", "rep", "level", "r"} - set(reps.columns)
        if missing:
            raise ParameterError(
                f"the repetitions table lacks column(s) {sorted(missing)}; pass planner_reps(...) or "
                "TrainingSizeResult objects"
            )
        if "minutes_per_session" not in reps.columns:
            reps = reps.assign(minutes_per_session=reps.attrs.get("full_minutes", 3 * float(run_minutes)))
    else:
        reps = planner_reps(data, run_minutes=run_minutes)
    n_pool = n_pool if n_pool is not None else reps.attrs.get("n_pool")
    name = participant if participant is not None else reps.attrs.get("participant", "")
    T_all = reps["minutes_per_session"].to_numpy(float)
    full_minutes = float(reps.attrs.get("full_minutes", np.max(T_all)))
    free = np.unique(T_all).size > 1
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown or not levels:
        raise ParameterError(f"levels must be among {list(LEVELS)}; got {list(levels)}")

    rows, boots, observed = [], {}, []
    for lv in levels:
        cond, r_of = _conditions(reps, lv)
        if cond.empty:
            raise ParameterError(f"no repetitions at the {lv!r} level")
        n_sizes = cond["n_session"].nunique()
        need = 3 if free else 2
        if n_sizes < 2 or len(cond) < need:
            raise ParameterError(
                f"{name or 'the participant'}: the curve needs at least 2 different numbers of training "
                f"sessions ({need} conditions); got sizes {sorted(cond['n_session'].unique().tolist())}"
            )
        few = [int(c) for c, r in zip(cond["n_session"], r_of) if r.size < 2]
        if few:
            raise ParameterError(
                f"the spread of r needs at least 2 repetitions per number of sessions; sizes {few} have "
                "one (raise the profile's n_trainsize_reps)"
            )
        m = cond["n_session"].to_numpy(float)
        T = cond["minutes_per_session"].to_numpy(float)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(LEVELS.index(lv),)))
        theta, boot, mean, var, r2 = _fit_level(m, T, r_of, n_pool, free, int(n_boot), rng)
        K1, K2 = theta[1], theta[2]
        short = K1 + K2 / full_minutes
        rows.append({"level": lv, "K0": theta[0], "K1": K1, "K2": K2, "tau2_session": theta[3],
                     "tau2_minutes": theta[4], "sigma2": theta[5], "r2": r2,
                     "session_share": K1 / short if short > 0 else np.nan, "n_conditions": len(cond),
                     "K0_at_bound": bool(theta[0] >= 0.999)})
        boots[lv] = boot
        sd = np.array([r.std(ddof=1) for r in r_of])
        n = np.array([r.size for r in r_of])
        observed.append(cond.assign(level=lv, n_reps=n, mean_r=mean, sd_r=sd,
                                    ci_lower=mean - 1.96 * sd / np.sqrt(n),
                                    ci_upper=mean + 1.96 * sd / np.sqrt(n), var_z=var))
        logger.info("%s %s: K0 = %.3f, K1 = %.3g, K2 = %.3g (R² = %.2f)", name, lv, theta[0], K1, K2, r2)
    params = pd.DataFrame(rows).set_index("level")
    obs = pd.concat(observed, ignore_index=True)[
        ["level", "n_session", "minutes_per_session", "n_reps", "mean_r", "sd_r", "ci_lower", "ci_upper",
         "var_z"]]
    return SaturatingCurve(
        participant=str(name), form="sessions_minutes" if free else "sessions", params=params,
        boot=boots, observed=obs, reps=reps, n_pool=None if n_pool is None else int(n_pool),
        full_minutes=full_minutes, max_observed=int(reps["n_session"].max()), n_boot=int(n_boot),
        seed=int(seed),
    )


# ----------------------------------------------------------------------------------------------
# Answers
# ----------------------------------------------------------------------------------------------


def sessions_needed(
    curve: SaturatingCurve,
    target_r: float,
    probability: float = 0.8,
    level: str = "1min",
    *,
    minutes: float | None = None,
    ci: float = 0.95,
    max_sessions: int = _MAX_SESSIONS,
) -> pd.DataFrame:
    """The smallest number of sessions with which ``P(r ≥ target_r) ≥ probability``, with an interval.

    Parameters
    ----------
    curve : SaturatingCurve
    target_r : float
        Target held-out correlation, in (0, 1).
    probability : float, default=0.8
        Required probability, in [0.5, 1).
    level : str, default="1min"
    minutes : float, optional
        Minutes of data per session (default: full sessions). Other values need the minutes-aware
        form (run-subset results).
    ci : float, default=0.95
        Coverage of the bootstrap interval.
    max_sessions : int, default=10000
        Largest number of sessions searched.

    Returns
    -------
    DataFrame
        One row: ``participant``, ``level``, ``target_r``, ``probability``, ``minutes_per_session``,
        ``sessions_needed`` (inf if beyond ``max_sessions``), ``ci_lower``, ``ci_upper`` (percentile
        interval over the bootstrap; inf where a bootstrap curve never reaches the target),
        ``total_minutes``, ``frac_reachable`` (bootstrap draws that reach the target),
        ``asymptote`` (K0), ``asymptote_at_bound`` (K0 = 1: not identified by the data),
        ``max_observed`` and ``extrapolated`` (answer beyond the largest number of sessions measured).

    Raises
    ------
    ParameterError
        If the target is unreachable: above the fitted asymptote (the accuracy with unlimited
        sessions), or so close to it that even unlimited sessions give ``P < probability``; or if the
        arguments are out of range.
    """
    _check_target(target_r)
    _check_probability(probability)
    if not 0 < ci < 1:
        raise ParameterError(f"ci must be in (0, 1); got {ci!r}")
    if minutes is not None and curve.form == "sessions" and not np.isclose(minutes, curve.full_minutes):
        raise ParameterError(
            f"the planner curve of {curve.participant} was fitted on full sessions only "
            f"({curve.full_minutes:g} min), so it cannot say what {minutes:g}-min sessions give; fit it "
            "with run-subset results (planner_training_size(..., minutes=True))"
        )
    T = float(curve._minutes(minutes))
    theta = curve._theta(level)[None, :]
    K0 = float(theta[0, 0])
    limit = float(_limit_prob(theta, target_r)[0])
    if limit < probability:
        raise _UnreachableTarget(
            f"r = {target_r:g} at the {level} level is out of reach for {curve.participant}: the fitted "
            f"asymptote (mean r with unlimited sessions) is {K0:.3f}, and even unlimited sessions give "
            f"P(r ≥ {target_r:g}) = {limit:.2f} < {probability:g}; choose a target below {K0:.2f} or a "
            "lower probability"
        )
    m_star = float(_first_m(theta, T, target_r, probability, int(max_sessions))[0])
    boot_m = _first_m(curve._theta(level, boot=True), T, target_r, probability, int(max_sessions))
    alpha = (1 - ci) / 2
    lo = float(np.quantile(boot_m, alpha, method="lower"))
    hi = float(np.quantile(boot_m, 1 - alpha, method="higher"))
    return pd.DataFrame([{
        "participant": curve.participant, "level": level, "target_r": float(target_r),
        "probability": float(probability), "minutes_per_session": T, "sessions_needed": m_star,
        "ci_lower": lo, "ci_upper": hi, "total_minutes": m_star * T,
        "frac_reachable": float(np.isfinite(boot_m).mean()), "asymptote": K0,
        "asymptote_at_bound": bool(curve.params.loc[level, "K0_at_bound"]),
        "max_observed": curve.max_observed, "extrapolated": bool(m_star > curve.max_observed),
    }])


def plan_table(
    curves: SaturatingCurve | Mapping[str, SaturatingCurve],
    targets: Sequence[float] = (0.2, 0.3, 0.4),
    probability: float = 0.8,
    *,
    levels: Sequence[str] = ("1min",),
    minutes: Sequence[float] | None = None,
    ci: float = 0.95,
) -> pd.DataFrame:
    """:func:`sessions_needed` over a grid of targets (and levels, minutes per session, participants).

    Unreachable targets do not raise: their row has ``status = "unreachable"`` and NaN answers.

    Parameters
    ----------
    curves : SaturatingCurve or mapping of name to SaturatingCurve
    targets : sequence of float, default=(0.2, 0.3, 0.4)
    probability : float, default=0.8
    levels : sequence of str, default=("1min",)
    minutes : sequence of float, optional
        Minutes of data per session to plan for (default: full sessions only).
    ci : float, default=0.95

    Returns
    -------
    DataFrame
        The columns of :func:`sessions_needed` (``participant`` is the mapping's key) plus
        ``status``: ``"measured"`` (within the sizes measured), ``"extrapolated"``, ``"beyond search"``
        (reachable only beyond the search limit) or ``"unreachable"``.
    """
    _check_probability(probability)
    for t in targets:
        _check_target(t)
    if isinstance(curves, SaturatingCurve):
        curves = {curves.participant: curves}
    rows = []
    for name, curve in curves.items():
        for lv in levels:
            for T in (minutes if minutes is not None else [None]):
                for t in targets:
                    try:
                        row = sessions_needed(curve, t, probability, lv, minutes=T, ci=ci)
                        row["participant"] = name
                        s = float(row["sessions_needed"].iloc[0])
                        row["status"] = ("beyond search" if not np.isfinite(s)
                                         else "extrapolated" if bool(row["extrapolated"].iloc[0])
                                         else "measured")
                    except _UnreachableTarget:
                        row = pd.DataFrame([{
                            "participant": name, "level": lv, "target_r": float(t),
                            "probability": float(probability),
                            "minutes_per_session": float(curve._minutes(T)),
                            "sessions_needed": np.nan, "ci_lower": np.nan, "ci_upper": np.nan,
                            "total_minutes": np.nan, "frac_reachable": np.nan,
                            "asymptote": float(curve.params.loc[lv, "K0"]),
                            "asymptote_at_bound": bool(curve.params.loc[lv, "K0_at_bound"]),
                            "max_observed": curve.max_observed, "extrapolated": False,
                            "status": "unreachable",
                        }])
                    rows.append(row)
    return pd.concat(rows, ignore_index=True)


def _fmt_count(v: float) -> str:
    return "∞" if not np.isfinite(v) else f"{int(v)}"


def format_plan_table(table: pd.DataFrame) -> pd.DataFrame:
    """A readable version of :func:`plan_table` (strings), for the book and the ``deipp plan`` command.

    Returns
    -------
    DataFrame
        Index (participant, level, minutes per session, target r); columns ``sessions needed``
        (``"12 [8–20]"``: estimate and bootstrap interval, ``∞`` where a bootstrap curve never gets
        there), ``total minutes``, ``asymptote r`` and ``note``.
    """
    out = []
    for _, row in table.iterrows():
        if row["status"] == "unreachable":
            need, total = "unreachable", "–"
            note = f"above what unlimited sessions give (asymptote r = {row['asymptote']:.2f})"
        else:
            need = (f"{_fmt_count(row['sessions_needed'])} "
                    f"[{_fmt_count(row['ci_lower'])}–{_fmt_count(row['ci_upper'])}]")
            total = "∞" if not np.isfinite(row["total_minutes"]) else f"{row['total_minutes']:.0f}"
            note = {"measured": "within the sizes measured",
                    "extrapolated": f"extrapolated beyond {int(row['max_observed'])} sessions measured",
                    "beyond search": "reachable only with an impractical number of sessions"}[row["status"]]
            if row["frac_reachable"] < 1:
                note += f"; {100 * row['frac_reachable']:.0f} % of bootstrap curves reach it"
            if row["asymptote_at_bound"]:
                note += "; asymptote not identified by the sizes measured"
        out.append({"participant": row["participant"], "level": row["level"],
                    "min/session": f"{row['minutes_per_session']:g}", "target r": f"{row['target_r']:g}",
                    "sessions needed": need, "total minutes": total,
                    "asymptote r": f"{row['asymptote']:.2f}", "note": note})
    return pd.DataFrame(out).set_index(["participant", "level", "min/session", "target r"])


def planner_summary(
    curves: Mapping[str, SaturatingCurve],
    table: pd.DataFrame,
    *,
    level: str = "1min",
) -> str:
    """One Markdown bullet per participant: the fitted curve and what it says, in words.

    Parameters
    ----------
    curves : mapping of str to SaturatingCurve
        Name → curve (the names used in ``table``).
    table : DataFrame
        :func:`plan_table` of these curves at full sessions (one row per target).
    level : str, default="1min"

    Returns
    -------
    str
        Markdown (numbers formatted from the fits; for gluing into a page).
    """
    lines = []
    for name, curve in curves.items():
        p = curve.params.loc[level]
        if p["K0_at_bound"]:
            asym = ("the measured sizes lie on the rising part of the curve, so the asymptote is not "
                    "identified (it sits at its bound, r = 1)")
        elif p["K0"] <= 0:
            asym = "the mean r does not rise above zero, so no positive target is reachable"
        else:
            asym = f"the fitted asymptote (mean r with unlimited sessions) is {p['K0']:.2f}"
        fit = f"R² = {p['r2']:.2f} over {int(p['n_conditions'])} measured conditions" if np.isfinite(
            p["r2"]) else f"{int(p['n_conditions'])} measured conditions"
        parts = []
        rows = table[(table["participant"] == name) & (table["level"] == level)]
        for _, row in rows.iterrows():
            t = f"r ≥ {row['target_r']:g}"
            if row["status"] == "unreachable":
                parts.append(f"{t}: out of reach")
            elif not np.isfinite(row["sessions_needed"]):
                parts.append(f"{t}: more than {_MAX_SESSIONS:,} sessions")
            else:
                hi = _fmt_count(row["ci_upper"])
                flag = " (extrapolated)" if row["extrapolated"] else ""
                parts.append(f"{t}: {int(row['sessions_needed'])} sessions "
                             f"[{_fmt_count(row['ci_lower'])}–{hi}]{flag}")
        share = ""
        if curve.form == "sessions_minutes" and np.isfinite(p["session_share"]):
            share = (f" Of the shortfall from the asymptote at {curve.full_minutes:g}-min sessions, "
                     f"{100 * p['session_share']:.0f} % is session-bound (only more sessions remove it) "
                     f"and {100 * (1 - p['session_share']):.0f} % minute-bound (more minutes of data "
                     "remove it, however they are spread over sessions)"
                     + ("; with the asymptote unidentified this split is weakly determined." if p["K0_at_bound"]
                        else "."))
        lines.append(f"- **{name}** ({curve.max_observed} training sessions measured at most; {fit}): "
                     f"{asym}. Sessions needed with {100 * rows['probability'].iloc[0]:.0f} % "
                     f"probability: {'; '.join(parts)}.{share}" if len(rows) else
                     f"- **{name}**: {asym}.{share}")
    return "\n".join(lines)
