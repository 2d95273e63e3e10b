"""Decoder comparison (beyond the paper): LASSO-PCR against PCR, ridge, linear SVR and CPM.

Every decoder is trained and tested under the paper's nested leave-one-session-out scheme
(``deipp_methods.md`` §9.4) and evaluated with the paper's four-level evaluation and hierarchical
bootstrap (§10.2):

* outer LOSO: for every session ``k``, train on the other sessions and predict session ``k``'s
  evaluation rows (1-min and 2-min time bins, run means) with the hyperparameter chosen for fold ``k``;
* inner LOSO inside every outer training set: predict each remaining session from the others at every
  grid value; the grid value with the highest pooled inner r is chosen (first maximum, as MATLAB
  ``max``);
* models are trained on the rating-decile bins (``rbin10``), as in the paper.

LASSO-PCR comes from :func:`deipp_core.model.nested_loso` itself (its λ grid from all sessions, §9.3).
The other decoders use the same splits through one generic loop (:func:`nested_loso_decoder`):

=========  ===========================================  =====================================================
decoder    model                                        grid (chosen by inner LOSO)
=========  ===========================================  =====================================================
``pcr``    :class:`~deipp_core.model.PCRegression`      number of leading components, 8 values log-spaced
                                                        from 1 to the smallest inner training size − 1
``ridge``  :class:`~deipp_core.model.GramRidge`         ``α = ρ·d``, ``ρ ∈`` :data:`RIDGE_GRID`, ``d`` the
                                                        mean diagonal of the centred Gram matrix of all rows
``svr``    ``sklearn.svm.SVR(kernel="precomputed")``    ``C ∈`` :data:`SVR_GRID` on the kernel ``K/d`` and
           on the linear Gram matrix (= linear SVR       the target ``(y − ȳ)/σ_y``, ``ε =``
           with an unpenalised intercept)               :data:`SVR_EPSILON`
``cpm``    :class:`~deipp_core.model.CPM` (combined)     edge p threshold ``∈`` :data:`CPM_GRID`
=========  ===========================================  =====================================================

Like the paper's λ grid, the scales ``d``, ``ȳ`` and ``σ_y`` that make the ridge and SVR grids
dimensionless are taken once from all training rows; they fix what a grid value means, not which one
is chosen. PCR and ridge read their whole grid off one eigendecomposition of each training set's
centred Gram block (the kernel LASSO-PCR uses); SVR solves one problem per grid value; CPM computes
the edge correlations once per training set from per-session sums.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.svm import SVR
from threadpoolctl import threadpool_limits

from deipp_core import evaluation
from deipp_core.exceptions import ParameterError
from deipp_core.features import ParticipantFeatures
from deipp_core.model import nested_loso
from deipp_core.model._cv import _centred_grams, _check_inputs, _first_nanargmax, _pooled_r
from deipp_core.model._decoders import (
    _cpm_fit,
    _cpm_predict,
    _edge_r,
    _pcr_filters,
    _ridge_filters,
    _spectral_predictions,
)
from deipp_core.model._gram import _centre_cross, _decompose
from deipp_core.profiles import Profile, get_profile
from deipp_core.stats import auc_midrank, boot2cip, median_split, pearson_r

__all__ = [
    "DECODERS",
    "DECODER_LABELS",
    "HYPERPARAMETERS",
    "RIDGE_GRID",
    "SVR_GRID",
    "SVR_EPSILON",
    "CPM_GRID",
    "DecoderCV",
    "DecoderComparison",
    "default_grid",
    "nested_loso_decoder",
    "compare_decoders",
    "paired_differences",
    "cached_decoder_comparison",
    "format_comparison",
    "comparison_summary",
    "cost_summary",
]

logger = logging.getLogger(__name__)

#: Decoders compared, in display order; ``lassopcr`` is the paper's.
DECODERS: tuple[str, ...] = ("lassopcr", "pcr", "ridge", "svr", "cpm")

#: Display names.
DECODER_LABELS: dict[str, str] = {
    "lassopcr": "LASSO-PCR", "pcr": "PCR", "ridge": "Ridge", "svr": "Linear SVR", "cpm": "CPM",
}

#: What each decoder's grid value (and chosen value) is.
HYPERPARAMETERS: dict[str, str] = {
    "lassopcr": "components selected",
    "pcr": "components",
    "ridge": "α / mean Gram diagonal",
    "svr": "C (normalised kernel and target)",
    "cpm": "edge p threshold",
}

#: Ridge penalties relative to the mean diagonal ``d`` of the centred all-row Gram matrix (the mean
#: eigenvalue of the centred Gram matrix is about ``d``): from almost no shrinkage (close to the
#: minimum-norm interpolant, i.e. PCR with every component) to keeping only components far above
#: average variance.
RIDGE_GRID: tuple[float, ...] = (0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0)

#: SVR ``C`` on the normalised problem (kernel ``K/d``, target ``(y − ȳ)/σ_y``).
SVR_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)

#: SVR ``ε`` on the normalised target (0.1 SD of the ratings).
SVR_EPSILON: float = 0.1

#: CPM edge-selection thresholds (two-sided p of the edge–rating correlation).
CPM_GRID: tuple[float, ...] = (0.0001, 0.001, 0.01, 0.05)

#: Number of PCR grid values.
_N_PCR = 8

#: Package sources that determine a cached comparison (its cache key hashes them): an edit elsewhere
#: in ``deipp_core`` (plotting, other analyses, the book) does not invalidate it.
_RESULT_SOURCES = (
    "data", "model", "analyses/prediction.py", "analyses/decoder_comparison.py", "edges.py",
    "evaluation.py", "features.py", "motion.py", "ratings.py", "stats.py",
)


@dataclass
class DecoderCV:
    """Nested leave-one-session-out results of one decoder.

    Attributes
    ----------
    decoder : str
        One of :data:`DECODERS`.
    groups : ndarray of shape (S,)
        Sorted session labels; fold ``k`` holds out ``groups[k]``.
    grid : ndarray of shape (G,)
        Hyperparameter values (for ``lassopcr``: the λ grid of §9.3).
    icv_r : ndarray of shape (G, S)
        Pooled inner-LOSO r of every grid value within outer fold ``k``.
    icv_best : ndarray of int of shape (S,)
        Grid index chosen for fold ``k`` (first maximum of ``icv_r[:, k]``).
    chosen : ndarray of shape (S,)
        The value chosen for fold ``k`` (for ``lassopcr``: the number of components its fold model
        selected).
    ocv_pred : ndarray of shape (G, N)
        Outer-fold predictions of every training row at every grid value.
    y_pred_train : ndarray of shape (N,)
        Held-out prediction of every training row by its session's fold model.
    y_pred_eval : ndarray of shape (M,) or None
        Same for the evaluation rows.
    n_fits : int
        Training runs of the decoder's solver: one per training set for decoders that read the whole
        grid off one solution (``lassopcr``, ``pcr``, ``ridge``: one eigendecomposition; ``cpm``: one
        set of edge correlations), one per training set and grid value for ``svr``. ``lassopcr`` also
        counts its all-data decomposition (the λ grid).
    seconds : float
        Wall time of the whole nested cross-validation (Gram matrix included).
    """

    decoder: str
    groups: np.ndarray
    grid: np.ndarray
    icv_r: np.ndarray
    icv_best: np.ndarray
    chosen: np.ndarray
    ocv_pred: np.ndarray
    y_pred_train: np.ndarray
    y_pred_eval: np.ndarray | None
    n_fits: int
    seconds: float


@dataclass
class DecoderComparison:
    """All decoders of one participant, evaluated at the four levels.

    Attributes
    ----------
    participant : str
    table : DataFrame
        One row per decoder and level: ``participant``, ``decoder``, ``level``, ``n_units``, ``r``,
        ``r_ci_low``, ``r_ci_high``, ``r_p``, ``auc``, ``auc_ci_low``, ``auc_ci_high``, ``auc_p``,
        ``r2``, ``mae`` (as :func:`deipp_core.evaluation.evaluate`), ``seconds``, ``n_fits``.
    paired : DataFrame
        Each decoder minus LASSO-PCR on the same bootstrap resamples (:func:`paired_differences`).
    selection : DataFrame
        ``decoder``, ``session``, ``chosen``: the hyperparameter each outer fold chose.
    predictions : DataFrame
        Held-out predictions: the feature rows (``kind``, ``session``, ``run``, ``bin``, ``rating``)
        with one column per decoder.
    cv : dict of str to DecoderCV
        The nested cross-validation of every decoder.
    """

    participant: str
    table: pd.DataFrame
    paired: pd.DataFrame
    selection: pd.DataFrame
    predictions: pd.DataFrame
    cv: dict


# ----------------------------------------------------------------------------------------------
# Generic nested leave-one-session-out
# ----------------------------------------------------------------------------------------------


def default_grid(decoder: str, n_min: int) -> np.ndarray:
    """The hyperparameter grid of a decoder (see the module table).

    Parameters
    ----------
    decoder : {"pcr", "ridge", "svr", "cpm"}
    n_min : int
        Smallest training-set size of the nested loop (an inner fold's); bounds the PCR grid.

    Returns
    -------
    ndarray
        Grid values, from least to most regularised (PCR: most to fewest components), so that ties
        are broken towards the less regularised model.

    Examples
    --------
    >>> default_grid("pcr", 90).tolist()
    [89, 47, 25, 13, 7, 4, 2, 1]
    """
    if decoder == "pcr":
        hi = max(int(n_min) - 1, 1)
        return np.unique(np.round(np.geomspace(1, hi, _N_PCR)).astype(int))[::-1]
    grids = {"ridge": RIDGE_GRID, "svr": SVR_GRID[::-1], "cpm": CPM_GRID[::-1]}
    if decoder not in grids:
        raise ParameterError(f"no default grid for decoder {decoder!r}; choose one of pcr, ridge, svr, cpm")
    return np.asarray(grids[decoder], dtype=float)


def _context(decoder: str, X, y, codes, X_eval, n_sess: int) -> dict:
    """Data a fold worker needs, computed once: Gram blocks (pcr, ridge, svr) or per-session sums (cpm)."""
    ctx = {"y": y}
    if decoder in ("pcr", "ridge", "svr"):
        K, K_eval = _centred_grams(X, X_eval)
        d = float(np.mean(np.diag(K)))
        if not d > 0:
            raise ParameterError("all training rows are identical (zero Gram diagonal); nothing to decode")
        ctx.update(K=K, K_eval=K_eval, scale=d)
        if decoder == "svr":
            sd = float(y.std())
            ctx.update(K=K / d, K_eval=None if K_eval is None else K_eval / d, y_mean=float(y.mean()),
                       y_sd=sd if sd > 0 else 1.0)
    else:  # cpm: per-session sums of the globally centred features (r of any session subset)
        mu = X.mean(axis=0)
        sx = np.zeros((n_sess, X.shape[1]))
        sx2 = np.zeros((n_sess, X.shape[1]))
        for s in range(n_sess):
            block = X[codes == s] - mu
            sx[s] = block.sum(axis=0)
            sx2[s] = np.einsum("ij,ij->j", block, block)
        ctx.update(X=X, X_eval=X_eval, sx=sx, sx2=sx2)
    return ctx


def _fit_predict(ctx: dict, decoder: str, grid: np.ndarray, codes: np.ndarray, train: np.ndarray,
                 held: np.ndarray, eval_rows: np.ndarray | None) -> tuple:
    """Fit one training set at every grid value; predict ``held`` rows (and evaluation rows).

    Returns ``(pred_held (G, n_held), pred_eval (G, n_eval) or None, n_fits)``.
    """
    y = ctx["y"]
    if decoder in ("pcr", "ridge"):
        K, K_eval = ctx["K"], ctx["K_eval"]
        dec = _decompose(K[np.ix_(train, train)], y[train])
        H = _pcr_filters(dec.s, grid) if decoder == "pcr" else _ridge_filters(dec.s, grid * ctx["scale"])
        pred = _spectral_predictions(dec, _centre_cross(K[np.ix_(held, train)], dec), H)
        pred_eval = None
        if eval_rows is not None:
            pred_eval = _spectral_predictions(dec, _centre_cross(K_eval[np.ix_(eval_rows, train)], dec), H)
        return pred, pred_eval, 1
    if decoder == "svr":
        K, K_eval = ctx["K"], ctx["K_eval"]
        yt = (y[train] - ctx["y_mean"]) / ctx["y_sd"]
        K_tt, K_ht = K[np.ix_(train, train)], K[np.ix_(held, train)]
        K_et = None if eval_rows is None else K_eval[np.ix_(eval_rows, train)]
        pred = np.empty((grid.size, held.size))
        pred_eval = None if eval_rows is None else np.empty((grid.size, eval_rows.size))
        for g, C in enumerate(grid):
            svr = SVR(kernel="precomputed", C=float(C), epsilon=SVR_EPSILON).fit(K_tt, yt)
            pred[g] = ctx["y_mean"] + ctx["y_sd"] * svr.predict(K_ht)
            if K_et is not None:
                pred_eval[g] = ctx["y_mean"] + ctx["y_sd"] * svr.predict(K_et)
        return pred, pred_eval, int(grid.size)
    # cpm
    X = ctx["X"]
    sessions = np.unique(codes[train])
    v = np.zeros(y.size)
    v[train] = y[train] - y[train].mean()
    r = _edge_r(ctx["sx"][sessions].sum(axis=0), ctx["sx2"][sessions].sum(axis=0), X.T @ v, 0.0,
                float(v @ v), train.size)
    all_strengths = {}

    def strengths(masks):
        all_strengths["X"] = X @ masks
        return all_strengths["X"][train]

    masks, coefs = _cpm_fit(r, strengths, y[train], grid, "combined")
    pred = _cpm_predict(all_strengths["X"][held], coefs)
    pred_eval = None if eval_rows is None else _cpm_predict(ctx["X_eval"][eval_rows] @ masks, coefs)
    return pred, pred_eval, 1


def _outer_fold(ctx, decoder, grid, codes, eval_codes, k, single_thread) -> dict:
    """Outer fold ``k``: inner LOSO at every grid value, choice, outer fit (one worker's job)."""
    if single_thread:
        with threadpool_limits(limits=1):
            return _outer_fold(ctx, decoder, grid, codes, eval_codes, k, False)
    outer_train = np.flatnonzero(codes != k)
    codes_outer = codes[outer_train]
    inner_pred = np.empty((grid.size, outer_train.size))
    n_fits = 0
    for kk in np.unique(codes_outer):
        local = np.flatnonzero(codes_outer == kk)
        pred, _, nf = _fit_predict(ctx, decoder, grid, codes, outer_train[codes_outer != kk],
                                   outer_train[local], None)
        inner_pred[:, local] = pred
        n_fits += nf
    icv_r = _pooled_r(inner_pred, ctx["y"][outer_train])
    best = _first_nanargmax(icv_r)
    held = np.flatnonzero(codes == k)
    eval_rows = None if eval_codes is None else np.flatnonzero(eval_codes == k)
    pred, pred_eval, nf = _fit_predict(ctx, decoder, grid, codes, outer_train, held, eval_rows)
    return {"icv_r": icv_r, "best": best, "ocv_pred": pred,
            "y_eval": None if pred_eval is None else pred_eval[best], "n_fits": n_fits + nf}


def nested_loso_decoder(
    X,
    y,
    groups,
    *,
    decoder: str,
    X_eval=None,
    groups_eval=None,
    grid=None,
    n_jobs: int | None = 1,
) -> DecoderCV:
    """Nested leave-one-session-out training and held-out prediction with any compared decoder.

    The same scheme as :func:`deipp_core.model.nested_loso` (§9.4): outer LOSO; inside each outer
    training set an inner LOSO over the decoder's grid; the fold model is refitted on the outer
    training set at the grid value with the best pooled inner r and predicts the held-out session's
    training and evaluation rows. ``decoder="lassopcr"`` calls :func:`~deipp_core.model.nested_loso`.

    Parameters
    ----------
    X : array-like of shape (N, E)
        Training rows (rating-decile bins × edges).
    y : array-like of shape (N,)
        Ratings.
    groups : array-like of shape (N,)
        Session of every row (at least 3 sessions).
    decoder : {"lassopcr", "pcr", "ridge", "svr", "cpm"}
        See the module table.
    X_eval, groups_eval : array-like, optional
        Evaluation rows (time bins, run means) and their sessions, predicted by their session's fold
        model.
    grid : array-like, optional
        Hyperparameter values instead of :func:`default_grid` (not for ``lassopcr``, whose λ grid is
        the paper's). Ridge values are relative to the mean Gram diagonal, SVR values are ``C`` of the
        normalised problem.
    n_jobs : int or None, default=1
        Outer folds in parallel (joblib), each worker limited to one BLAS thread; every fold always
        runs under one BLAS thread, so the result does not depend on ``n_jobs``.

    Returns
    -------
    DecoderCV

    Examples
    --------
    >>> from deipp_core.model._synthetic import make_session_data
    >>> d = make_session_data(4, 12)
    >>> cv = nested_loso_decoder(d["X"], d["y"], d["groups"], decoder="ridge")
    >>> cv.icv_r.shape, cv.y_pred_train.shape, cv.n_fits
    ((7, 4), (120,), 16)
    """
    if decoder not in DECODERS:
        raise ParameterError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    start = time.perf_counter()
    if decoder == "lassopcr":
        if grid is not None:
            raise ParameterError("LASSO-PCR uses the paper's λ grid from all sessions; do not pass grid")
        with threadpool_limits(limits=1):
            cv = nested_loso(X, y, groups, X_eval=X_eval, groups_eval=groups_eval, n_jobs=n_jobs)
        n_sess = cv.groups.size
        return DecoderCV(
            decoder=decoder, groups=cv.groups, grid=cv.lambdas, icv_r=cv.icv_r, icv_best=cv.icv_best,
            chosen=cv.fold_n_selected.astype(float), ocv_pred=cv.ocv_pred, y_pred_train=cv.y_pred_train,
            y_pred_eval=cv.y_pred_eval, n_fits=n_sess * n_sess + 1, seconds=time.perf_counter() - start,
        )
    X, y, groups, sessions, X_eval, groups_eval = _check_inputs(X, y, groups, X_eval, groups_eval)
    codes = np.searchsorted(sessions, groups)
    eval_codes = None if X_eval is None else np.searchsorted(sessions, groups_eval)
    n_sess = sessions.size
    counts = np.bincount(codes, minlength=n_sess)
    n_min = int(y.size - np.sort(counts)[-2:].sum())  # smallest inner training set
    grid = default_grid(decoder, n_min) if grid is None else np.atleast_1d(np.asarray(grid, dtype=float))
    if grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ParameterError(f"grid must hold finite values; got {grid!r}")
    if decoder == "pcr":
        grid = grid.astype(int)
        if np.any(grid < 1):
            raise ParameterError(f"PCR grid values are numbers of components (≥ 1); got {grid.tolist()}")
    elif decoder == "cpm" and np.any((grid <= 0) | (grid >= 1)):
        raise ParameterError(f"CPM grid values are p thresholds in (0, 1); got {grid.tolist()}")
    elif np.any(grid <= 0):
        raise ParameterError(f"{decoder} grid values must be positive; got {grid.tolist()}")
    logger.info("nested LOSO (%s): %d sessions, %d rows, %d features, %d grid values",
                decoder, n_sess, y.size, X.shape[1], grid.size)
    with threadpool_limits(limits=1):
        ctx = _context(decoder, X, y, codes, X_eval, n_sess)
        folds = Parallel(n_jobs=n_jobs)(
            delayed(_outer_fold)(ctx, decoder, grid, codes, eval_codes, k, n_jobs not in (None, 1))
            for k in range(n_sess)
        )
    ocv_pred = np.empty((grid.size, y.size))
    y_pred_train = np.empty(y.size)
    icv_best = np.array([f["best"] for f in folds], dtype=int)
    for k, f in enumerate(folds):
        ocv_pred[:, codes == k] = f["ocv_pred"]
        y_pred_train[codes == k] = f["ocv_pred"][icv_best[k]]
    y_pred_eval = None
    if X_eval is not None:
        y_pred_eval = np.empty(X_eval.shape[0])
        for k, f in enumerate(folds):
            y_pred_eval[eval_codes == k] = f["y_eval"]
    return DecoderCV(
        decoder=decoder, groups=sessions, grid=grid, icv_r=np.column_stack([f["icv_r"] for f in folds]),
        icv_best=icv_best, chosen=grid[icv_best].astype(float), ocv_pred=ocv_pred,
        y_pred_train=y_pred_train, y_pred_eval=y_pred_eval, n_fits=int(sum(f["n_fits"] for f in folds)),
        seconds=time.perf_counter() - start,
    )


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def paired_differences(
    levels: dict[str, pd.DataFrame],
    *,
    reference: str = "lassopcr",
    n_boot: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Differences in r and AUC between each decoder and a reference, on shared bootstrap resamples.

    The units of every level are resampled hierarchically as in the main evaluation
    (:func:`deipp_core.evaluation.hierarchical_bootstrap` with :data:`~deipp_core.evaluation.LEVEL_GROUPS`
    and single-class rejection on the median split of the actual ratings); every decoder is scored on
    the *same* resamples, so the difference's CI accounts for the pairing.

    Parameters
    ----------
    levels : dict of str to DataFrame
        Decoder → its :func:`~deipp_core.evaluation.level_table` (same units for every decoder).
    reference : str, default="lassopcr"
        The decoder subtracted.
    n_boot, seed, alpha
        Resamples, seed (level ℓ uses child ``LEVELS.index(ℓ)`` of ``SeedSequence(seed)``) and
        1 − CI coverage.

    Returns
    -------
    DataFrame
        ``decoder``, ``level``, ``delta_r``, ``delta_r_ci_low``, ``delta_r_ci_high``, ``delta_r_p``,
        ``delta_auc`` (+ CI and p); the p-values are two-sided bootstrap p against 0
        (:func:`~deipp_core.stats.boot2cip`). The reference itself is not listed.
    """
    if reference not in levels:
        raise ParameterError(f"reference decoder {reference!r} is not among {sorted(levels)}")
    ref = levels[reference]
    seeds = np.random.SeedSequence(seed).spawn(len(evaluation.LEVELS))
    rows = []
    for i, lv in enumerate(evaluation.LEVELS):
        ref_lv = ref[ref["level"] == lv]
        if ref_lv.empty:
            continue
        x = ref_lv["actual"].to_numpy(float)
        labels = median_split(x)
        two_class = bool(labels.any() and not labels.all())
        boot = evaluation.hierarchical_bootstrap(
            [ref_lv[c].to_numpy() for c in evaluation.LEVEL_GROUPS[lv]], n_boot, seed=seeds[i],
            labels=labels if two_class else None, n_units=len(ref_lv))
        w = boot.counts()
        y_ref = ref_lv["predicted"].to_numpy(float)
        r_ref, auc_ref = pearson_r(x, y_ref, w), auc_midrank(labels, y_ref, w)
        for name, table in levels.items():
            if name == reference:
                continue
            other = table[table["level"] == lv]
            if not np.array_equal(other[["session", "run", "bin"]].to_numpy(),
                                  ref_lv[["session", "run", "bin"]].to_numpy()):
                raise ParameterError(f"decoder {name!r} has other units than {reference!r} at level {lv}")
            y = other["predicted"].to_numpy(float)
            d_r = pearson_r(x, y, w) - r_ref
            d_auc = auc_midrank(labels, y, w) - auc_ref
            ci_r, ci_auc = boot2cip(d_r, 0.0, alpha), boot2cip(d_auc, 0.0, alpha)
            rows.append({
                "decoder": name, "level": lv,
                "delta_r": pearson_r(x, y) - pearson_r(x, y_ref),
                "delta_r_ci_low": ci_r.ci_low, "delta_r_ci_high": ci_r.ci_high, "delta_r_p": ci_r.p,
                "delta_auc": (auc_midrank(labels, y) - auc_midrank(labels, y_ref)) if two_class else np.nan,
                "delta_auc_ci_low": ci_auc.ci_low, "delta_auc_ci_high": ci_auc.ci_high,
                "delta_auc_p": ci_auc.p,
            })
    return pd.DataFrame(rows)


def compare_decoders(
    features: ParticipantFeatures,
    *,
    decoders: Sequence[str] = DECODERS,
    profile: str | Profile = "quick",
    seed: int = 0,
    n_jobs: int | None = 1,
) -> DecoderComparison:
    """Train every decoder with nested LOSO on one participant and evaluate it at the four levels.

    Parameters
    ----------
    features : ParticipantFeatures
        The participant's feature rows (:func:`deipp_core.features.participant_features`).
    decoders : sequence of str, default=DECODERS
        Which decoders; ``"lassopcr"`` must be among them (it is the reference of the paired
        differences).
    profile : str or Profile, default="quick"
        Sets the bootstrap resamples.
    seed : int, default=0
        Bootstrap seed, the same for every decoder (identical resamples of the identical units).
    n_jobs : int or None, default=1
        Parallel outer folds. The worker pool is started before the first decoder is timed.

    Returns
    -------
    DecoderComparison
    """
    from deipp_core.analyses.prediction import EVAL_KINDS

    decoders = list(dict.fromkeys(decoders))
    unknown = [d for d in decoders if d not in DECODERS]
    if unknown or "lassopcr" not in decoders:
        raise ParameterError(
            f"decoders must be among {', '.join(DECODERS)} and include 'lassopcr'; got {decoders}")
    prof = get_profile(profile)
    X_train, rows_train = features.select("rbin10")
    eval_mask = features.rows["kind"].isin(EVAL_KINDS).to_numpy()
    X_eval, rows_eval = features.X[eval_mask], features.rows[eval_mask].reset_index(drop=True)
    y, groups = rows_train["rating"].to_numpy(float), rows_train["session"].to_numpy()
    predictions = pd.concat([rows_train, rows_eval], ignore_index=True)[
        ["kind", "session", "run", "bin", "rating"]]
    cvs, levels, tables, selection = {}, {}, [], []
    if n_jobs not in (None, 1):
        # start the workers and import this module (hence the model code) in them now, so that no
        # decoder's time includes the start-up
        Parallel(n_jobs=n_jobs)(delayed(default_grid)("ridge", 3) for _ in range(4))
    for name in decoders:
        logger.info("sub-%s: decoder %s", features.participant, name)
        cv = nested_loso_decoder(X_train, y, groups, decoder=name, X_eval=X_eval,
                                 groups_eval=rows_eval["session"].to_numpy(), n_jobs=n_jobs)
        cvs[name] = cv
        predictions[name] = np.concatenate([cv.y_pred_train, cv.y_pred_eval])
        levels[name] = evaluation.level_table(predictions, y=name, y_name="predicted")
        metrics = evaluation.evaluate(levels[name], n_boot=prof.n_boot, seed=seed)
        tables.append(metrics.assign(participant=features.participant, decoder=name,
                                     seconds=cv.seconds, n_fits=cv.n_fits))
        selection.append(pd.DataFrame({"decoder": name, "session": cv.groups.astype(str),
                                       "chosen": cv.chosen}))
    table = pd.concat(tables, ignore_index=True)
    first = ["participant", "decoder", "level"]
    table = table[first + [c for c in table.columns if c not in first]]
    paired = paired_differences(levels, n_boot=prof.n_boot, seed=seed)
    paired.insert(0, "participant", features.participant)
    return DecoderComparison(participant=features.participant, table=table, paired=paired,
                             selection=pd.concat(selection, ignore_index=True),
                             predictions=predictions, cv=cvs)


def cached_decoder_comparison(
    dataset,
    label: str,
    *,
    decoders: Sequence[str] = DECODERS,
    profile: str | Profile = "quick",
    seed: int = 0,
    n_jobs: int | None = 1,
    features: ParticipantFeatures | None = None,
    use_cache: bool = True,
) -> DecoderComparison:
    """:func:`compare_decoders` for one participant of a data set, cached under ``derivatives/deipp``.

    The key covers the data set's fingerprint, the participant, the ``deipp_core`` sources the result
    depends on (``_RESULT_SOURCES``), the decoders, the bootstrap count and the seed; the file is
    written atomically. The recorded ``seconds`` are those of the run that filled the cache.
    """
    import joblib

    from deipp_core.data import data_fingerprint
    from deipp_core.data.derivatives import atomic_write_bytes, code_digest, derivatives_root, hash_key
    from deipp_core.features import cached_features

    prof = get_profile(profile)
    decoders = list(dict.fromkeys(decoders))
    path = None
    if use_cache:
        key = hash_key(data_fingerprint(dataset.root), label, code_digest(_RESULT_SOURCES), decoders,
                       prof.n_boot, seed, "decoder_comparison")
        path = (derivatives_root(dataset.root) / f"sub-{label}"
                / f"sub-{label}_desc-decodercomparison_key-{key}.joblib")
        if path.is_file():
            logger.info("sub-%s: reusing the cached decoder comparison %s", label, path.name)
            return joblib.load(path)
    feats = features if features is not None else cached_features(dataset, label)
    result = compare_decoders(feats, decoders=decoders, profile=prof, seed=seed, n_jobs=n_jobs)
    if use_cache:
        buffer = io.BytesIO()
        joblib.dump(result, buffer)
        atomic_write_bytes(path, buffer.getvalue())
    return result


# ----------------------------------------------------------------------------------------------
# Text and tables for the chapter
# ----------------------------------------------------------------------------------------------

_LEVEL_NAMES = {"1min": "1-min bins", "2min": "2-min bins", "run": "runs", "session": "sessions"}


def _num(v: float) -> str:
    text = f"{v:.2f}"
    return "0.00" if text == "-0.00" else text


def _ci(v: float, lo: float, hi: float) -> str:
    return f"{_num(v)} [{_num(lo)}, {_num(hi)}]"


def format_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """A readable table: one row per participant and decoder, r and AUC [95 % CI] per level, cost.

    Parameters
    ----------
    table : DataFrame
        :attr:`DecoderComparison.table` of one or more participants.

    Returns
    -------
    DataFrame
        Index (participant, decoder name); columns (level, ``r``/``AUC``) plus ``seconds`` and
        ``fits``.
    """
    rows = {}
    for (part, dec), t in table.groupby(["participant", "decoder"], sort=False):
        t = t.set_index("level")
        row = {}
        for lv in evaluation.LEVELS:
            if lv in t.index:
                m = t.loc[lv]
                row[(_LEVEL_NAMES[lv], "r")] = _ci(m["r"], m["r_ci_low"], m["r_ci_high"])
                row[(_LEVEL_NAMES[lv], "AUC")] = _ci(m["auc"], m["auc_ci_low"], m["auc_ci_high"])
        row[("cost", "seconds")] = f"{float(t['seconds'].iloc[0]):.2g}"
        row[("cost", "fits")] = f"{int(t['n_fits'].iloc[0]):,}"
        rows[(f"Participant {part}", DECODER_LABELS.get(dec, dec))] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index = out.index.set_names(["participant", "decoder"])
    return out


def comparison_summary(table: pd.DataFrame, paired: pd.DataFrame) -> str:
    """Markdown: for each participant and level, the decoder with the highest r and its paired
    difference from LASSO-PCR; then how many decoder × level differences exclude 0.

    Parameters
    ----------
    table, paired : DataFrame
        :attr:`DecoderComparison.table` and :attr:`DecoderComparison.paired` (one or more
        participants).

    Returns
    -------
    str
    """
    lines = []
    for part, t in table.groupby("participant", sort=False):
        items = []
        for lv in evaluation.LEVELS:
            tl = t[t["level"] == lv]
            if tl.empty:
                continue
            best = tl.loc[tl["r"].idxmax()]
            ref = tl[tl["decoder"] == "lassopcr"].iloc[0]
            if best["decoder"] == "lassopcr":
                items.append(f"{_LEVEL_NAMES[lv]}: LASSO-PCR itself (r = {_num(ref['r'])})")
                continue
            d = paired[(paired["participant"] == part) & (paired["level"] == lv)
                       & (paired["decoder"] == best["decoder"])].iloc[0]
            items.append(
                f"{_LEVEL_NAMES[lv]}: {DECODER_LABELS[best['decoder']]} (r = {_num(best['r'])} vs "
                f"{_num(ref['r'])}; difference {_ci(d['delta_r'], d['delta_r_ci_low'], d['delta_r_ci_high'])})"
            )
        lines.append(f"- **Participant {part}** — highest r at " + "; ".join(items) + ".")
    p = paired.dropna(subset=["delta_r_ci_low", "delta_r_ci_high"])
    better = int((p["delta_r_ci_low"] > 0).sum())
    worse = int((p["delta_r_ci_high"] < 0).sum())
    lines.append(
        f"\nOf {len(p)} comparisons with LASSO-PCR (decoder × level × participant), the paired 95 % "
        f"CI of the difference in r lies entirely above 0 in {better} and entirely below 0 in {worse}; "
        f"in the other {len(p) - better - worse} the data cannot tell the decoders apart."
    )
    return "\n".join(lines)


def cost_summary(table: pd.DataFrame) -> str:
    """Markdown sentence: wall time and solver runs of each decoder (mean over participants).

    Parameters
    ----------
    table : DataFrame
        :attr:`DecoderComparison.table`.

    Returns
    -------
    str
    """
    cost = table.drop_duplicates(["participant", "decoder"]).groupby("decoder", sort=False)[
        ["seconds", "n_fits"]].mean()
    parts = [f"{DECODER_LABELS.get(d, d)} {row['seconds']:.2g} s ({row['n_fits']:,.0f} fits)"
             for d, row in cost.iterrows()]
    ref = cost.loc["lassopcr", "seconds"] if "lassopcr" in cost.index else np.nan
    ratio = ", ".join(f"{DECODER_LABELS.get(d, d)} {row['seconds'] / ref:.1f}×"
                      for d, row in cost.iterrows() if d != "lassopcr")
    return ("Wall time of the whole nested cross-validation, per participant: " + "; ".join(parts)
            + f". Relative to LASSO-PCR: {ratio}.")
