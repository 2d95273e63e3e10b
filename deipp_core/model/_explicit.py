"""Explicit edge-space implementation of the DEIPP decoder: the slow, obviously correct reference.

Everything here works on the ``n × E`` edge matrix itself, the way the MATLAB code does
(``analysis_predict_rating_modeling.m``, ``deipp_methods.md`` §9.2–§9.4): economy SVD of the centred
training rows, scores of the uncentred rows, LASSO support by the standardised-LASSO threshold, OLS
refit by least squares on ``[1, Z_support]``, back-projection ``w = U b``. The nested
leave-one-session-out loop is written out literally. It exists so that tests can check the fast Gram
implementation (:mod:`deipp_core.model._gram`, :mod:`deipp_core.model._cv`) against it, and so that the
benchmark can measure the speed-up. Use :func:`~deipp_core.model.nested_loso` for real work.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from deipp_core.model._gram import _RTOL, MATLAB_EPS, _flip_signs

__all__ = ["nested_loso_explicit"]


def _pca_explicit(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred PCA by SVD of the explicit rows.

    Returns the column mean ``m`` (E,), the principal axes ``U`` (E × q, MATLAB's ``U``) and the
    singular values ``s`` (q,), descending. Like the Gram solver it keeps at most ``n − 1``
    components and only those with ``s_j² > _RTOL·s_1²``, with the same sign convention (largest
    entry of each left singular vector positive).
    """
    n = X.shape[0]
    m = X.mean(axis=0)
    if n < 2:
        return m, np.zeros((X.shape[1], 0)), np.zeros(0)
    left, s, right_t = np.linalg.svd(X - m, full_matrices=False)
    s2 = s**2
    keep = min(n - 1, int(np.count_nonzero(s2 > _RTOL * s2[0]))) if s2[0] > 0 else 0
    left = left[:, :keep].copy()
    U = right_t[:keep].T.copy()
    _flip_signs(left, U)
    return m, U, s[:keep]


def _score_strength(Z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r of each score column with y, and ``|r|·σ_y(ddof=0)`` (the standardised LASSO scale).

    ``strength_j = |cov(Z_j, y)| / sd(Z_j)`` is written without dividing by ``σ_y`` so that a constant
    ``y`` gives strength 0 (nothing selected) instead of NaN.
    """
    Zc = Z - Z.mean(axis=0)
    yc = y - y.mean()
    n = y.shape[0]
    cov = Zc.T @ yc / n
    sd_z = np.sqrt((Zc**2).mean(axis=0))
    sd_y = np.sqrt((yc**2).mean())
    strength = np.abs(cov) / sd_z
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / (sd_z * sd_y)
    return r, strength


def _ols_refit(Z: np.ndarray, y: np.ndarray, support: np.ndarray) -> tuple[float, np.ndarray]:
    """OLS of y on ``[1, Z[:, support]]`` by least squares; returns ``b0, b``.

    LAPACK ``gelsy`` (QR with column pivoting) is what MATLAB's backslash uses for a rectangular
    system, and several times faster than the SVD-based default.
    """
    design = np.column_stack([np.ones(Z.shape[0]), Z[:, support]])
    coef = scipy.linalg.lstsq(design, y, lapack_driver="gelsy", check_finite=False)[0]
    b = np.zeros(Z.shape[1])
    b[support] = coef[1:]
    return float(coef[0]), b


def _fit_path_explicit(
    X: np.ndarray, y: np.ndarray, lambdas: np.ndarray
) -> list[tuple[float, np.ndarray, int]]:
    """Edge-space models ``(b0, w, n_selected)`` of one training set for every λ (MATLAB fold loop)."""
    _, U, _ = _pca_explicit(X)
    Z = X @ U  # uncentred scores; the intercept absorbs the offset
    _, strength = _score_strength(Z, y)
    models: list[tuple[float, np.ndarray, int]] = []
    previous = None
    for lam in lambdas:
        support = strength > lam
        if previous is not None and np.array_equal(support, previous[0]):
            models.append(previous[1])  # same support → same OLS fit (MATLAB's cache)
            continue
        b0, b = _ols_refit(Z, y, support)
        model = (b0, U @ b, int(support.sum()))
        models.append(model)
        previous = (support, model)
    return models


def _fit_topk_explicit(X: np.ndarray, y: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """Edge-space model of the ``k`` components with the largest |corr| with y, OLS-refitted."""
    _, U, _ = _pca_explicit(X)
    Z = X @ U
    _, strength = _score_strength(Z, y)
    support = np.zeros(U.shape[1], dtype=bool)
    support[np.argsort(-strength, kind="stable")[:k]] = True
    b0, b = _ols_refit(Z, y, support)
    return b0, U @ b


def _lambda_grid_explicit(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """λ grid of §9.3 from the explicit PCA of all rows (see :func:`deipp_core.model.lambda_grid`)."""
    n = X.shape[0]
    _, U, _ = _pca_explicit(X)
    _, strength = _score_strength(X @ U, y)
    ranked = np.zeros(n)
    ranked[: strength.size] = np.sort(strength)[::-1]
    n_pcs = np.arange(n - 2, 0, -1)
    return ranked[n_pcs] + MATLAB_EPS, n_pcs


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Plain Pearson r of two vectors (NaN when either is constant)."""
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / den) if den > 0 else float("nan")


def _first_nanargmax(values: np.ndarray) -> int:
    """Index of the first maximum ignoring NaN; 0 when all are NaN (MATLAB ``max`` behaviour)."""
    if np.all(np.isnan(values)):
        return 0
    return int(np.nanargmax(values))


def _explicit_outer_fold(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, session, lambdas: np.ndarray
) -> dict:
    """One outer fold of the reference: inner LOSO over all grid points, then the outer fit.

    Returns the inner-CV r path ``icv_r`` (nP,), its first ``nanargmax`` ``best``, the outer-fold
    predictions of the held-out session at every grid point ``ocv_pred`` (nP × n_held), the chosen
    fold model ``(b0, w, n_selected)`` and the ``(train_sessions, test_sessions, kind)`` of every fit.
    """
    n_grid = lambdas.size
    outer_train = groups != session
    splits = []
    inner_pred = np.full((n_grid, y.size), np.nan)
    for other in np.unique(groups[outer_train]):
        inner_train = outer_train & (groups != other)
        held = groups == other
        splits.append((np.unique(groups[inner_train]), np.unique(groups[held]), "inner"))
        models = _fit_path_explicit(X[inner_train], y[inner_train], lambdas)
        for p, (b0, w, _) in enumerate(models):
            inner_pred[p, held] = b0 + X[held] @ w
    icv_r = np.array([_pearson(inner_pred[p, outer_train], y[outer_train]) for p in range(n_grid)])
    best = _first_nanargmax(icv_r)

    held = groups == session
    splits.append((np.unique(groups[outer_train]), np.unique(groups[held]), "outer"))
    models = _fit_path_explicit(X[outer_train], y[outer_train], lambdas)
    ocv_pred = np.array([b0 + X[held] @ w for b0, w, _ in models])
    return {
        "icv_r": icv_r,
        "best": best,
        "ocv_pred": ocv_pred,
        "model": models[best],
        "splits": splits,
    }


def nested_loso_explicit(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    X_eval: np.ndarray | None = None,
    groups_eval: np.ndarray | None = None,
    lambdas: np.ndarray | None = None,
) -> dict:
    """Nested leave-one-session-out LASSO-PCR, written out literally in edge space (reference).

    Same contract as :func:`deipp_core.model.nested_loso` (which is the fast implementation to use),
    but every fit is an SVD of the explicit ``n × E`` rows followed by one least-squares OLS refit
    per distinct support, exactly as the MATLAB code. Slow: ``S + S(S−1)`` SVDs and up to ``N − 2``
    least-squares refits per fit.

    Parameters
    ----------
    X : ndarray of shape (N, E)
        Training rows (rating-decile bins × edges).
    y : ndarray of shape (N,)
        Ratings.
    groups : ndarray of shape (N,)
        Session label of every row.
    X_eval, groups_eval : ndarray of shape (M, E) and (M,), optional
        Extra rows predicted by the outer-fold model of their own session.
    lambdas : ndarray of shape (N − 2,), optional
        A λ grid to use instead of the one derived from all rows.

    Returns
    -------
    result : dict
        Keys and values as the fields of :class:`~deipp_core.model.NestedLOSOResult`.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    groups = np.asarray(groups)
    sessions = np.unique(groups)
    n_sess = sessions.size
    grid, n_pcs = _lambda_grid_explicit(X, y)
    lambdas = grid if lambdas is None else np.asarray(lambdas, dtype=float)
    n_grid = lambdas.size
    splits = []

    ocv_pred = np.full((n_grid, y.size), np.nan)
    icv_r = np.full((n_grid, n_sess), np.nan)
    icv_best = np.zeros(n_sess, dtype=int)
    fold_models = []
    for k in range(n_sess):
        fold = _explicit_outer_fold(X, y, groups, sessions[k], lambdas)
        held = groups == sessions[k]
        ocv_pred[:, held] = fold["ocv_pred"]
        icv_r[:, k] = fold["icv_r"]
        icv_best[k] = fold["best"]
        fold_models.append(fold["model"])
        splits.extend(fold["splits"])

    ocv_r = np.array([_pearson(ocv_pred[p], y) for p in range(n_grid)])
    ocv_best = _first_nanargmax(ocv_r)
    final_n_pcs = int(n_pcs[ocv_best])
    final_intercept, final_coef = _fit_topk_explicit(X, y, final_n_pcs)

    fold_intercept = np.array([m[0] for m in fold_models])
    fold_n_selected = np.array([m[2] for m in fold_models], dtype=int)
    fold_coef = np.vstack([m[1] for m in fold_models])
    session_index = {s: i for i, s in enumerate(sessions)}
    fold_of_row = np.array([session_index[g] for g in groups])
    y_pred_train = fold_intercept[fold_of_row] + np.einsum("ij,ij->i", X, fold_coef[fold_of_row])
    result = {
        "groups": sessions,
        "lambdas": lambdas,
        "n_pcs": n_pcs,
        "ocv_r": ocv_r,
        "icv_r": icv_r,
        "icv_best": icv_best,
        "ocv_best": ocv_best,
        "ocv_pred": ocv_pred,
        "fold_coef": fold_coef,
        "fold_intercept": fold_intercept,
        "fold_n_selected": fold_n_selected,
        "final_coef": final_coef,
        "final_intercept": final_intercept,
        "final_n_pcs": final_n_pcs,
        "y_pred_train": y_pred_train,
        "y_pred_eval": None,
        "splits": splits,
    }
    if X_eval is not None:
        X_eval = np.asarray(X_eval, dtype=float)
        eval_fold = np.array([session_index[g] for g in np.asarray(groups_eval)])
        result["y_pred_eval"] = fold_intercept[eval_fold] + np.einsum(
            "ij,ij->i", X_eval, fold_coef[eval_fold]
        )
    return result
