"""Nested leave-one-session-out training of the DEIPP decoder (``deipp_methods.md`` §9.3–9.4).

The fast implementation: the Gram matrix of all rows is computed once, every fit is the
eigendecomposition of a centred sub-block, all grid points of a fit are evaluated at once by cumulative
sums, and edge weights are formed only for the S fold models and the final model. The S(S−1) inner
fits of the nested scheme contain every training set twice (outer fold i without session j trains on
the same rows as outer fold j without session i), so only S(S−1)/2 of them are computed, each serving
two folds; with the S outer fits that is S(S+1)/2 eigendecompositions instead of S². Inner fits (by
pairs) and then outer folds run in parallel under joblib, each worker limited to one BLAS thread
(several eigendecompositions competing for the same cores slow down many-fold when BLAS is
oversubscribed).
:func:`~deipp_core.model.nested_loso_explicit` is the literal edge-space reference it is tested against.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from threadpoolctl import threadpool_limits

from deipp_core.exceptions import ParameterError
from deipp_core.model._explicit import nested_loso_explicit
from deipp_core.model._gram import (
    _centre_cross,
    _decompose,
    _dual_coef,
    _n_selected,
    _path_predictions,
)
from deipp_core.model._lassopcr import _grid_from_strength

__all__ = ["NestedLOSOResult", "nested_loso"]

logger = logging.getLogger(__name__)

#: Column block size used to form Gram matrices without copying all of X at once.
_GRAM_BLOCK = 4096


@dataclass
class NestedLOSOResult:
    """Everything the nested leave-one-session-out training produces.

    Grid index ``p`` is 0-based here (MATLAB's ``p − 1``); session index ``k`` follows the sorted
    session labels in ``groups``.

    Attributes
    ----------
    groups : ndarray of shape (S,)
        Sorted session labels; fold ``k`` holds out ``groups[k]``.
    lambdas : ndarray of shape (nP,)
        The λ grid (MATLAB ``L_matlab``), ascending.
    n_pcs : ndarray of shape (nP,)
        Component counts of the grid on all data (``PCs``), ``N − 2 … 1``.
    ocv_r : ndarray of shape (nP,)
        Pooled Pearson r of the outer-fold predictions at every grid point (``res.ocv_r``).
    icv_r : ndarray of shape (nP, S)
        Pooled inner-CV r within outer fold ``k`` (``res.icv_r``).
    icv_best : ndarray of int of shape (S,)
        First ``nanargmax`` of ``icv_r[:, k]`` (``res.icv_bestidx − 1``): the grid point of fold ``k``.
    ocv_best : int
        First ``nanargmax`` of ``ocv_r`` (``res.ocv_bestidx − 1``): the complexity of the final model.
    ocv_pred : ndarray of shape (nP, N)
        Outer-fold predictions of every training row at every grid point (``Yfit_ocv``).
    fold_coef : ndarray of shape (S, E)
        Edge weights of fold ``k``'s model at ``lambdas[icv_best[k]]`` (``beta_best_edge.ocv``).
    fold_intercept : ndarray of shape (S,)
        Their intercepts.
    fold_n_selected : ndarray of int of shape (S,)
        Number of components selected by each fold model.
    final_coef : ndarray of shape (E,)
        Edge weights of the all-data model (``beta_best_edge.all``).
    final_intercept : float
        Its intercept.
    final_n_pcs : int
        Its number of components, ``n_pcs[ocv_best]``.
    y_pred_train : ndarray of shape (N,)
        Held-out prediction of every training row by the fold model of its session.
    y_pred_eval : ndarray of shape (M,) or None
        Same for the extra evaluation rows, if any were given.
    splits : list of tuple
        ``(train_sessions, test_sessions, kind)`` (two label arrays and ``"outer"`` or ``"inner"``)
        for every fit, recorded from the index arrays actually used, for auditing.
    """

    groups: np.ndarray
    lambdas: np.ndarray
    n_pcs: np.ndarray
    ocv_r: np.ndarray
    icv_r: np.ndarray
    icv_best: np.ndarray
    ocv_best: int
    ocv_pred: np.ndarray
    fold_coef: np.ndarray
    fold_intercept: np.ndarray
    fold_n_selected: np.ndarray
    final_coef: np.ndarray
    final_intercept: float
    final_n_pcs: int
    y_pred_train: np.ndarray
    y_pred_eval: np.ndarray | None = None
    splits: list = field(default_factory=list, repr=False)


def _pooled_r(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r between ``y`` and every row of ``pred`` (NaN where a row is constant)."""
    pc = pred - pred.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    num = pc @ yc
    den = np.sqrt(np.einsum("ij,ij->i", pc, pc) * (yc @ yc))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _first_nanargmax(values: np.ndarray) -> int:
    """Index of the first maximum ignoring NaN; 0 if all are NaN (MATLAB ``max``)."""
    if np.all(np.isnan(values)):
        return 0
    return int(np.nanargmax(values))


def _centred_grams(
    X: np.ndarray, X_eval: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``K = Xm Xmᵀ`` and ``K_eval = X_eval,m Xmᵀ`` with the all-row column mean removed first.

    Centring is a translation, which changes no fit (every fit re-centres its own rows); it only
    removes the large common offset of co-fluctuation features from ``K`` and so improves round-off.
    Columns are processed in blocks to avoid a second full copy of ``X``.
    """
    n = X.shape[0]
    mu = X.mean(axis=0)
    K = np.zeros((n, n))
    K_eval = None if X_eval is None else np.zeros((X_eval.shape[0], n))
    for start in range(0, X.shape[1], _GRAM_BLOCK):
        sl = slice(start, start + _GRAM_BLOCK)
        block = X[:, sl] - mu[sl]
        K += block @ block.T
        if X_eval is not None:
            K_eval += (X_eval[:, sl] - mu[sl]) @ block.T
    return K, K_eval


def _inner_pairs(
    K: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    pairs: list[tuple[int, int]],
    lambdas: np.ndarray,
    single_thread: bool,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner fits shared by two outer folds (one worker's job).

    The inner fit of outer fold ``i`` that holds out session ``j`` and the inner fit of outer fold
    ``j`` that holds out session ``i`` train on the same rows (every session but ``i`` and ``j``, in
    the same order), so they are one fit: its predictions of session ``j`` belong to outer fold
    ``i``'s inner CV, those of session ``i`` to outer fold ``j``'s. Each pair ``(i, j)`` returns
    ``(pred_i, pred_j, train_codes)``: the predictions of both sessions' rows at every grid point and
    the session codes the fit actually trained on (for the audit trail ``splits``).
    """
    if single_thread:
        with threadpool_limits(limits=1):
            return _inner_pairs(K, y, codes, pairs, lambdas, False)
    out = []
    for i, j in pairs:
        train = np.flatnonzero((codes != i) & (codes != j))
        dec = _decompose(K[np.ix_(train, train)], y[train])
        n_sel = _n_selected(dec, lambdas)
        preds = []
        for held in (np.flatnonzero(codes == i), np.flatnonzero(codes == j)):
            preds.append(_path_predictions(dec, _centre_cross(K[np.ix_(held, train)], dec), n_sel))
        out.append((preds[0], preds[1], np.unique(codes[train])))
    return out


def _outer_fold(
    K: np.ndarray,
    K_eval: np.ndarray | None,
    y: np.ndarray,
    codes: np.ndarray,
    eval_codes: np.ndarray | None,
    k: int,
    inner_pred: np.ndarray,
    lambdas: np.ndarray,
    single_thread: bool,
) -> dict:
    """Outer fold ``k`` from its inner predictions: grid selection, then the outer fit."""
    if single_thread:
        with threadpool_limits(limits=1):
            return _outer_fold(K, K_eval, y, codes, eval_codes, k, inner_pred, lambdas, False)
    outer_train = np.flatnonzero(codes != k)
    icv_r = _pooled_r(inner_pred, y[outer_train])
    best = _first_nanargmax(icv_r)

    # outer fit: all grid points for the held-out session, the chosen one for evaluation rows
    held = np.flatnonzero(codes == k)
    dec = _decompose(K[np.ix_(outer_train, outer_train)], y[outer_train])
    n_sel = _n_selected(dec, lambdas)
    ocv_pred = _path_predictions(dec, _centre_cross(K[np.ix_(held, outer_train)], dec), n_sel)
    y_eval = None
    if K_eval is not None:
        rows = np.flatnonzero(eval_codes == k)
        y_eval = _path_predictions(
            dec, _centre_cross(K_eval[np.ix_(rows, outer_train)], dec), n_sel[best : best + 1]
        )[0]
    dual = np.zeros(y.size)
    dual[outer_train] = _dual_coef(dec, int(n_sel[best]))
    dual[outer_train] -= dual[outer_train].mean()
    return {
        "icv_r": icv_r,
        "best": best,
        "ocv_pred": ocv_pred,
        "y_eval": y_eval,
        "dual": dual,
        "y_mean": dec.y_mean,
        "n_selected": int(n_sel[best]),
        "train_codes": np.unique(codes[outer_train]),
    }


def _inner_predictions(
    K: np.ndarray, y: np.ndarray, codes: np.ndarray, lambdas: np.ndarray, n_jobs: int | None
) -> tuple[list[np.ndarray], dict[tuple[int, int], np.ndarray]]:
    """Inner-CV predictions of every outer fold: ``S(S−1)/2`` fits, each shared by two folds.

    Returns, for every outer fold ``k``, an array of shape ``(n_lambdas, n_rows_not_k)`` whose columns
    follow the rows of the outer training set in order, exactly as if the fold's ``S − 1`` inner fits
    had been run on their own (bit for bit: the same rows in the same order), and the training
    session codes of every fit by pair ``(i, j)``, ``i < j``.
    """
    n_sess = int(codes.max()) + 1
    pairs = [(i, j) for i in range(n_sess) for j in range(i + 1, n_sess)]
    parallel = n_jobs not in (None, 1)
    n_chunks = 1 if not parallel else min(len(pairs), 4 * effective_n_jobs(n_jobs))
    chunks = [pairs[c::n_chunks] for c in range(n_chunks)]
    done = Parallel(n_jobs=n_jobs)(
        delayed(_inner_pairs)(K, y, codes, chunk, lambdas, parallel) for chunk in chunks
    )
    inner = [np.empty((lambdas.size, int(np.count_nonzero(codes != k)))) for k in range(n_sess)]
    trained_on = {}
    for chunk, results in zip(chunks, done):
        for (i, j), (pred_i, pred_j, train_codes) in zip(chunk, results):
            # session j's rows within outer fold i's training rows, and vice versa
            inner[i][:, codes[codes != i] == j] = pred_j
            inner[j][:, codes[codes != j] == i] = pred_i
            trained_on[i, j] = train_codes
    return inner, trained_on


def _check_inputs(X, y, groups, X_eval, groups_eval):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    groups = np.asarray(groups)
    if X.ndim != 2:
        raise ParameterError(f"X must be a 2-D array (rows × edges); got shape {X.shape}")
    if y.shape != (X.shape[0],) or groups.shape != (X.shape[0],):
        raise ParameterError(
            f"y and groups must have one entry per row of X ({X.shape[0]}); "
            f"got y {y.shape}, groups {groups.shape}"
        )
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ParameterError("X and y must be finite; drop or impute rows with NaN/inf first")
    sessions = np.unique(groups)
    if sessions.size < 3:
        raise ParameterError(
            f"nested leave-one-session-out needs at least 3 sessions; got {sessions.size}"
        )
    if X_eval is not None or groups_eval is not None:
        if X_eval is None or groups_eval is None:
            raise ParameterError("pass X_eval and groups_eval together (or neither)")
        X_eval = np.asarray(X_eval, dtype=float)
        groups_eval = np.asarray(groups_eval)
        if X_eval.ndim != 2 or X_eval.shape[1] != X.shape[1]:
            raise ParameterError(
                f"X_eval must have {X.shape[1]} columns like X; got shape {X_eval.shape}"
            )
        if groups_eval.shape != (X_eval.shape[0],):
            raise ParameterError(
                f"groups_eval must have one label per row of X_eval ({X_eval.shape[0]}); "
                f"got shape {groups_eval.shape}"
            )
        unknown = np.setdiff1d(groups_eval, sessions)
        if unknown.size:
            raise ParameterError(
                f"groups_eval has sessions without training rows (no fold model): {unknown.tolist()}"
            )
        if not np.all(np.isfinite(X_eval)):
            raise ParameterError("X_eval must be finite")
    return X, y, groups, sessions, X_eval, groups_eval


def nested_loso(
    X,
    y,
    groups,
    *,
    X_eval=None,
    groups_eval=None,
    lambdas=None,
    solver: str = "gram",
    n_jobs: int | None = 1,
) -> NestedLOSOResult:
    """Train the DEIPP decoder with nested leave-one-session-out cross-validation (§9.3–9.4).

    1. λ grid from all rows (:func:`~deipp_core.model.lambda_grid`), unless ``lambdas`` is given.
    2. Outer LOSO: for every session ``k``, fit on the other sessions at every grid point and predict
       session ``k`` (``ocv_pred``); ``ocv_r(p)`` is the pooled r over all rows.
    3. Inner LOSO inside every outer training set: ``icv_r(p, k)`` is the pooled r of the inner
       held-out predictions; ``icv_best(k)`` its first ``nanargmax``.
    4. Fold model ``k`` = outer fit at ``λ(icv_best(k))``; it gives the held-out predictions of session
       ``k``'s training rows (``y_pred_train``) and evaluation rows (``y_pred_eval``).
    5. Final model: all rows, the ``n_pcs[ocv_best]`` components with the largest |r| (top-k, §9.3).

    Parameters
    ----------
    X : array-like of shape (N, E)
        Training rows (rating-decile bins × edges), in any order.
    y : array-like of shape (N,)
        Ratings.
    groups : array-like of shape (N,)
        Session label of every row. At least 3 sessions.
    X_eval : array-like of shape (M, E), optional
        Extra rows (e.g. time bins or run means) to predict with the fold model of their session.
    groups_eval : array-like of shape (M,), optional
        Their session labels; every label must occur in ``groups``.
    lambdas : array-like, optional
        A λ grid to use instead of the one derived from all rows (e.g. for a leakage test or to reuse
        a grid); ``n_pcs`` is then still reported from all rows.
    solver : {"gram", "explicit"}, default="gram"
        ``"gram"``: the fast implementation described in Notes. ``"explicit"``: the literal
        edge-space reference :func:`~deipp_core.model.nested_loso_explicit` (slow; for checks).
    n_jobs : int or None, default=1
        Inner fits (in chunks of session pairs) and then outer folds run in parallel with joblib, one
        BLAS thread per worker. ``-1``: all cores. The
        backend is joblib's default (loky processes) unless the caller picks another with
        ``joblib.parallel_config`` (e.g. Dask). With ``n_jobs=1`` the fits run in this process
        under the caller's BLAS settings; beside other jobs, wrap the call in
        ``threadpoolctl.threadpool_limits(1)``. Starting workers costs seconds, so parallel runs pay
        off only at realistic sizes. Ignored by the explicit solver.

    Returns
    -------
    result : NestedLOSOResult
        Paths, selections, fold and final models, held-out predictions.

    Notes
    -----
    Cost: one ``N × N`` Gram matrix (``O(N²E)``), ``S(S+1)/2`` eigendecompositions of blocks of size
    about ``N(S−1)/S`` (each inner training set serves two outer folds) and two ``S × N × E`` products
    for the fold weights. Memory: ``O(N² + S·E)`` on top of ``X``, plus the inner predictions
    (``S × n_lambdas × N`` floats). At ``S = 30`` sessions and ``E = 44,850`` edges the 465
    eigendecompositions dominate (about 0.065 s per fit of 840 rows on one core of the project
    machine with implicit eigenvectors, so about 30 s serially; see ``benchmarks/README.md``).

    Examples
    --------
    >>> import numpy as np
    >>> from deipp_core.model import nested_loso
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(4), 6)
    >>> X = rng.standard_normal((24, 60)); y = X[:, :5].sum(axis=1)
    >>> res = nested_loso(X, y, groups)
    >>> res.icv_r.shape, res.fold_coef.shape, res.y_pred_train.shape
    ((22, 4), (4, 60), (24,))
    """
    if solver not in ("gram", "explicit"):
        raise ParameterError(f"solver must be 'gram' or 'explicit'; got {solver!r}")
    X, y, groups, sessions, X_eval, groups_eval = _check_inputs(X, y, groups, X_eval, groups_eval)
    if lambdas is not None and np.shape(lambdas) != (y.size - 2,):
        raise ParameterError(
            f"lambdas must have N − 2 = {y.size - 2} values (one per grid point); "
            f"got shape {np.shape(lambdas)}"
        )
    if solver == "explicit":
        return NestedLOSOResult(
            **nested_loso_explicit(
                X, y, groups, X_eval=X_eval, groups_eval=groups_eval, lambdas=lambdas
            )
        )
    codes = np.searchsorted(sessions, groups)
    eval_codes = None if X_eval is None else np.searchsorted(sessions, groups_eval)
    n_sess = sessions.size

    K, K_eval = _centred_grams(X, X_eval)
    dec_all = _decompose(K, y)
    grid, n_pcs = _grid_from_strength(dec_all.strength, y.size)
    lambdas = grid if lambdas is None else np.asarray(lambdas, dtype=float)
    logger.info(
        "nested LOSO: %d sessions, %d rows, %d features, %d grid points",
        n_sess, y.size, X.shape[1], lambdas.size,
    )

    parallel = n_jobs not in (None, 1)
    # loky by default; joblib.parallel_config may choose another backend
    inner, trained_on = _inner_predictions(K, y, codes, lambdas, n_jobs)
    folds = Parallel(n_jobs=n_jobs)(
        delayed(_outer_fold)(K, K_eval, y, codes, eval_codes, k, inner[k], lambdas, parallel)
        for k in range(n_sess)
    )

    icv_r = np.column_stack([f["icv_r"] for f in folds])
    icv_best = np.array([f["best"] for f in folds], dtype=int)
    ocv_pred = np.empty((lambdas.size, y.size))
    y_pred_train = np.empty(y.size)
    for k, f in enumerate(folds):
        rows = codes == k
        ocv_pred[:, rows] = f["ocv_pred"]
        y_pred_train[rows] = f["ocv_pred"][icv_best[k]]
    ocv_r = _pooled_r(ocv_pred, y)
    ocv_best = _first_nanargmax(ocv_r)

    # fold weights w_k = X_trᵀ a_k (a_k centred, zero off the training rows); b0_k = ȳ_k − m_k·w_k
    duals = np.vstack([f["dual"] for f in folds])
    fold_coef = duals @ X
    membership = (codes[None, :] == np.arange(n_sess)[:, None]).astype(float)
    train_means = ((1.0 - membership) @ X) / (1.0 - membership).sum(axis=1, keepdims=True)
    fold_intercept = np.array([f["y_mean"] for f in folds]) - np.einsum(
        "ij,ij->i", train_means, fold_coef
    )

    final_n_pcs = int(n_pcs[ocv_best])
    dual = _dual_coef(dec_all, final_n_pcs)
    final_coef = X.T @ (dual - dual.mean())
    final_intercept = float(dec_all.y_mean - X.mean(axis=0) @ final_coef)

    y_pred_eval = None
    if X_eval is not None:
        y_pred_eval = np.empty(X_eval.shape[0])
        for k, f in enumerate(folds):
            y_pred_eval[eval_codes == k] = f["y_eval"]

    splits = []  # fold k's inner fits, then its outer fit (the order of §9.4's loops)
    for k, f in enumerate(folds):
        for kk in range(n_sess):
            if kk != k:
                splits.append((sessions[trained_on[min(k, kk), max(k, kk)]], sessions[[kk]], "inner"))
        splits.append((sessions[f["train_codes"]], sessions[[k]], "outer"))
    return NestedLOSOResult(
        groups=sessions,
        lambdas=lambdas,
        n_pcs=n_pcs,
        ocv_r=ocv_r,
        icv_r=icv_r,
        icv_best=icv_best,
        ocv_best=ocv_best,
        ocv_pred=ocv_pred,
        fold_coef=fold_coef,
        fold_intercept=fold_intercept,
        fold_n_selected=np.array([f["n_selected"] for f in folds], dtype=int),
        final_coef=final_coef,
        final_intercept=final_intercept,
        final_n_pcs=final_n_pcs,
        y_pred_train=y_pred_train,
        y_pred_eval=y_pred_eval,
        splits=splits,
    )
