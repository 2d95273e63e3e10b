"""The DEIPP estimator: PCA → LASSO selection of components → OLS refit (``deipp_methods.md`` §9.2–9.3).

MATLAB names (``analysis_predict_rating_modeling.m``) are given in comments where a block reproduces
them: ``U`` principal axes, ``Z`` uncentred scores, ``L_matlab`` the λ grid, ``PCs`` the component
counts of the grid, ``beta_best_edge`` = ``[intercept_; coef_]``.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from deipp_core.exceptions import ParameterError
from deipp_core.model._explicit import _pca_explicit
from deipp_core.model._gram import (
    MATLAB_EPS,
    _component_stats,
    _decompose,
)

__all__ = ["LassoPCR", "lambda_grid"]


def _components(X: np.ndarray, y: np.ndarray, solver: str) -> dict:
    """Centred PCA of ``X`` and the per-component statistics the selection and refit need.

    Returns a dict with ``mean`` (E,), ``s`` (q,) singular values in descending order, ``c`` (q,)
    ``= V_jᵀ(y − ȳ)`` (V the unit left singular vectors), ``strength`` ``= |c|/√n = |r|·σ_y``,
    ``order`` (entry order), ``y_mean`` and a callable ``coef(selected)`` that back-projects the
    OLS slopes of the selected components to edge weights.
    """
    n = X.shape[0]
    mean = X.mean(axis=0)
    if solver == "explicit":
        # MATLAB: U = svd((X - mean)')  (E × n), Z = X·U, last (null) component dropped
        _, U, s = _pca_explicit(X)
        T = (X - mean) @ U  # centred scores = V·S
        V = T / s if s.size else T
        c, strength, order, y_mean = _component_stats(V, y)

        def coef(selected: np.ndarray) -> np.ndarray:
            return U[:, selected] @ (c[selected] / s[selected])  # w = U·b, b_j = c_j / s_j

    else:
        Xc = X - mean
        dec = _decompose(Xc @ Xc.T, y)
        s, c, strength, order, y_mean = dec.s, dec.c, dec.strength, dec.order, dec.y_mean

        def coef(selected: np.ndarray) -> np.ndarray:
            h = np.zeros(s.size)  # per-component weights c_j / s_j² of the selected components
            h[selected] = c[selected] / s[selected] ** 2
            dual = dec.combine(h)
            return Xc.T @ (dual - dual.mean())  # w = Xcᵀ·a  (= U·b, see _gram's duality note)

    return {
        "n": n,
        "mean": mean,
        "s": s,
        "c": c,
        "strength": strength,
        "order": order,
        "y_mean": y_mean,
        "coef": coef,
    }


def _grid_from_strength(strength: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """λ grid of §9.3 from the all-data component strengths ``|r_j|·σ_y`` (see :func:`lambda_grid`)."""
    ranked = np.zeros(max(n, 1))
    ranked[: strength.size] = np.sort(strength)[::-1]
    n_pcs = np.arange(n - 2, 0, -1)  # PCs(p) = N − 1 − p for p = 1 … N − 2
    return ranked[n_pcs] + MATLAB_EPS, n_pcs  # λ_M(p) = |r|_(k+1)·σ_y + eps


def _resolve_solver(solver: str, n_samples: int, n_features: int) -> str:
    if solver == "auto":
        return "gram" if n_samples < n_features else "explicit"
    return solver


def lambda_grid(X, y, *, solver: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The λ grid of the DEIPP decoder, derived once from all rows ("Training: All", §9.3).

    The PCA of all ``N`` rows gives ``N − 1`` usable components with correlations ``r_j`` between
    their scores and ``y``. Grid point ``p = 1 … N − 2`` (returned in this order, 0-based here) stands
    for ``k = N − 1 − p`` components and gets

    ``λ(p) = |r|_(k+1) · σ_y + eps``,

    where ``|r|_(k+1)`` is the ``(k+1)``-th largest ``|r_j|``, ``σ_y`` the population SD of ``y`` and
    ``eps = 2.22e-16`` (MATLAB ``eps``). λ is ascending in ``p``; on the all-data fit, λ(p) selects
    exactly the ``k`` components with the largest ``|r|``.

    The original code obtains these values from a LARS-LASSO path (``lasso_rocha``) on the
    standardised scores and converts them to MATLAB's ``lasso`` scale. It is not ported: centred PC
    scores are orthogonal, so the LASSO path is soft-thresholding and its knots are exactly
    ``|r|_(k)·σ_y`` on MATLAB's scale (``lasso_rocha``'s own scale differs by ``√(N/(N−1))·SD(y)``,
    which the original conversion undoes). The closed form is exact, not an approximation.

    Parameters
    ----------
    X : array-like of shape (N, E)
        All training rows.
    y : array-like of shape (N,)
        Their ratings.
    solver : {"auto", "gram", "explicit"}, default="auto"
        How the PCA is computed (see :class:`LassoPCR`).

    Returns
    -------
    lambdas : ndarray of shape (N − 2,)
        MATLAB ``L_matlab``, ascending.
    n_pcs : ndarray of shape (N − 2,)
        MATLAB ``PCs``: ``N − 2, N − 3, …, 1``.
        Components beyond the numerical rank count as ``|r| = 0`` (their λ is ``eps``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((12, 50)); y = rng.standard_normal(12)
    >>> lambdas, n_pcs = lambda_grid(X, y)
    >>> n_pcs.tolist()
    [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    >>> bool(np.all(np.diff(lambdas) > 0))
    True
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ParameterError(
            f"lambda_grid needs X of shape (N, E) and y of shape (N,); got X {X.shape}, y {y.shape}"
        )
    if X.shape[0] < 3:
        raise ParameterError(f"lambda_grid needs at least 3 rows to form a grid; got {X.shape[0]}")
    comps = _components(X, y, _resolve_solver(solver, *X.shape))
    return _grid_from_strength(comps["strength"], X.shape[0])


class _LinearPredictMixin:
    """``predict(X) = intercept_ + X @ coef_`` for the fitted linear decoders (LassoPCR, ``_decoders``)."""

    def predict(self, X):
        """Predict ``intercept_ + X @ coef_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to predict.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predictions.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.intercept_ + X @ self.coef_


class LassoPCR(_LinearPredictMixin, RegressorMixin, BaseEstimator):
    """Principal component regression with LASSO component selection and OLS refit (DEIPP decoder).

    The estimator of Lee et al. (2026), as coded in ``analysis_predict_rating_modeling.m``
    (``deipp_methods.md`` §9.2):

    1. PCA of the centred training rows; the scores of the *uncentred* rows are the predictors (the
       intercept absorbs the offset). The last (null) component and numerically-zero components are
       excluded.
    2. LASSO over the scores with MATLAB ``lasso``'s defaults (predictors standardised by their
       population SD, ``y`` centred, objective ``(1/2n)‖y − b0 − Z_s b‖² + λ‖b‖₁``). Centred scores
       are orthogonal, so this is soft-thresholding: component ``j`` is selected iff
       ``|corr(score_j, y)| · σ_y > alpha`` (``σ_y`` the population SD). Only the support is used.
    3. OLS refit with intercept on the selected scores. By orthogonality this is the univariate slope
       of each selected score.
    4. Back-projection to feature (edge) weights: ``predict(X) = intercept_ + X @ coef_``.

    Parameters
    ----------
    alpha : float or None, default=None
        λ on MATLAB ``lasso``'s scale (``L_matlab`` in the original code, see :func:`lambda_grid`).
        ``None`` with ``n_components=None`` keeps every component (unpenalised PCR, which interpolates
        the training data when ``n_samples ≤ n_features``).
    n_components : int or None, default=None
        If given, select the ``n_components`` components with the largest ``|corr|`` with ``y``
        instead of thresholding (fewer if fewer exist). This is how the all-data model of the
        original code is defined (§9.3 [SUBTLE]: its λ sits exactly on a knot of the path, so
        thresholding there is at the mercy of round-off). When given, ``alpha`` is ignored.
    solver : {"auto", "gram", "explicit"}, default="auto"
        ``"explicit"``: economy SVD of the centred ``n × p`` matrix, ``O(n p min(n, p))`` time and the
        ``p × min(n, p)`` axes in memory. ``"gram"``: eigendecomposition of the centred ``n × n`` Gram
        matrix ``H X Xᵀ H`` (``O(n² p + n³)``; the axes are never formed), far cheaper when
        ``n ≪ p`` (edge features). Both are exact up to round-off; the Gram route cannot resolve
        components whose variance is below ``1e-10`` of the first, which both solvers therefore treat
        as null. ``"auto"`` uses ``"gram"`` when ``n_samples < n_features``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Feature (edge) weights ``w`` (``beta_best_edge(2:end)``).
    intercept_ : float
        Intercept ``b0`` (``beta_best_edge(1)``).
    n_components_ : int
        Number of usable components (at most ``n_samples − 1``, numerically non-zero).
    explained_variance_ : ndarray of shape (n_components_,)
        Variance of each component's scores (ddof = 1), descending.
    score_corr_ : ndarray of shape (n_components_,)
        Pearson r between each component's scores and ``y`` (NaN if ``y`` is constant). Component signs
        follow the ``svd_flip`` convention, so the sign of r is conventional.
    selected_ : ndarray of bool of shape (n_components_,)
        The LASSO support.
    n_selected_ : int
        Number of selected components.
    pc_coef_ : ndarray of shape (n_components_,)
        OLS coefficients of the component scores (0 off-support).
    solver_ : str
        The solver used (``"auto"`` resolved).
    n_features_in_ : int
        Number of features seen during fit.

    Notes
    -----
    Components whose variance is at most ``1e-10`` times the first one are treated as null and never
    selected (``deipp_core.model._gram._RTOL``), in both solvers. For rows in general position this
    removes only the ``n``-th component, which centring makes exactly zero and MATLAB also drops; it
    matters for rank-deficient rows (duplicates, fewer features than rows), where MATLAB would pass
    numerically-zero, arbitrary directions to the standardised LASSO, whose rescaling can select them.

    See Also
    --------
    lambda_grid : The λ grid of the original code.
    deipp_core.model.nested_loso : Nested leave-one-session-out training with this estimator.

    References
    ----------
    Lee, Jo, Cho & Woo (2026). Personalized brain decoding of spontaneous pain in individuals with
    chronic pain. *Nature Neuroscience*. Code: ``cocoanlab/DEIPP``, ``analysis_predict_rating_modeling.m``.

    Examples
    --------
    >>> import numpy as np
    >>> from deipp_core.model import LassoPCR
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((30, 400))
    >>> y = X[:, :20].sum(axis=1) + rng.standard_normal(30)
    >>> model = LassoPCR(n_components=5).fit(X, y)
    >>> model.n_selected_, model.coef_.shape
    (5, (400,))
    >>> bool(np.allclose(model.predict(X), model.intercept_ + X @ model.coef_))
    True
    """

    _parameter_constraints: dict = {
        "alpha": [Interval(Real, 0, None, closed="left"), None],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "solver": [StrOptions({"auto", "gram", "explicit"})],
    }

    def __init__(self, alpha=None, *, n_components=None, solver="auto"):
        self.alpha = alpha
        self.n_components = n_components
        self.solver = solver

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the PCA, select components and refit them by OLS.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows (e.g. rating-decile bins × edges).
        y : array-like of shape (n_samples,)
            Target (ratings).

        Returns
        -------
        self : LassoPCR
            The fitted estimator.
        """
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        self.solver_ = _resolve_solver(self.solver, *X.shape)
        comps = _components(X, y, self.solver_)
        s, c, strength, order = comps["s"], comps["c"], comps["strength"], comps["order"]
        q = s.size
        selected = np.zeros(q, dtype=bool)
        if self.n_components is not None:
            selected[order[: self.n_components]] = True
        elif self.alpha is not None:
            selected = strength > self.alpha
        else:
            selected[:] = True

        n = X.shape[0]
        yc_norm = np.sqrt(np.sum((y - comps["y_mean"]) ** 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            self.score_corr_ = c / yc_norm
        self.n_components_ = q
        self.explained_variance_ = s**2 / max(n - 1, 1)
        self.selected_ = selected
        self.n_selected_ = int(selected.sum())
        self.pc_coef_ = np.where(selected, c / np.where(s > 0, s, 1.0), 0.0)
        self.coef_ = comps["coef"](np.flatnonzero(selected)) if q else np.zeros(X.shape[1])
        # b0 = ȳ − m·w: the scores' means are absorbed by the intercept
        self.intercept_ = float(comps["y_mean"] - comps["mean"] @ self.coef_)
        return self

