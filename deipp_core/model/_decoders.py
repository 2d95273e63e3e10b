"""Alternative decoders to compare with LASSO-PCR: principal component regression, ridge, CPM.

Three scikit-learn estimators and the private path kernels the decoder comparison
(:mod:`deipp_core.analyses.decoder_comparison`) runs inside its nested leave-one-session-out loop. The
estimators and the kernels share one implementation of each model, so what a chapter shows for a fold
is what ``Estimator().fit(X_train, y_train).predict(X_new)`` gives.

* :class:`PCRegression` — PCA of the training rows and OLS on the scores of the first ``k``
  components (by variance): ``Pipeline(PCA(k), LinearRegression())``, computed in the span of the
  training rows (Gram matrix) when ``n ≪ p``.
* :class:`GramRidge` — ridge regression with an unpenalised intercept, solved exactly in its dual
  form through the centred ``n × n`` Gram matrix (``sklearn.linear_model.Ridge`` gives the same
  model; the dual is far cheaper when ``n ≪ p``).
* :class:`CPM` — connectome-based predictive modelling (Shen et al. 2017): edges whose Pearson
  correlation with the target is significant at ``p < threshold`` form a positive and a negative
  network; each row's network strengths (sums over the selected edges) enter a linear model.

Linear support vector regression is not re-implemented: the comparison uses
``sklearn.svm.SVR(kernel="precomputed")`` on the linear Gram matrix, which *is* linear SVR with an
unpenalised intercept.

Spectral form of PCR and ridge (see the duality note of :mod:`deipp_core.model._gram`)
--------------------------------------------------------------------------------------
With the centred Gram eigendecomposition ``Kc = V S² Vᵀ`` of the training rows and ``c = Vᵀ(y − ȳ)``,
every model here predicts ``ŷ(x) = ȳ + Σ_j (kc(x)·V_j) c_j h_j`` with a filter ``h``:

* LASSO-PCR: ``h_j = 1/s_j²`` on the selected components (by ``|corr|``), 0 elsewhere;
* PCR with ``k`` components: ``h_j = 1/s_j²`` for the ``k`` largest ``s_j``, 0 elsewhere;
* ridge with penalty ``α``: ``h_j = 1/(s_j² + α)`` for every ``j``.

(Ridge: ``w = Xcᵀ(Kc + αI)⁻¹ yc``; components in the null space of ``Kc`` contribute nothing to
``w`` nor to any prediction, because every ``kc(x)`` lies in the range of ``Kc``.) One
eigendecomposition per training set therefore gives the whole hyperparameter path.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import scipy.linalg
import scipy.stats
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from deipp_core.model._gram import _Decomposition, _decompose
from deipp_core.model._lassopcr import _components, _LinearPredictMixin, _resolve_solver

__all__ = ["PCRegression", "GramRidge", "CPM"]


# ----------------------------------------------------------------------------------------------
# Spectral (Gram) kernels shared by PCRegression, GramRidge and the nested comparison
# ----------------------------------------------------------------------------------------------


def _pcr_filters(s: np.ndarray, n_components) -> np.ndarray:
    """Filters ``h`` (n_grid × q) of PCR with each number of components (first ``k`` by variance)."""
    ks = np.minimum(np.atleast_1d(np.asarray(n_components, dtype=int)), s.size)
    H = np.zeros((ks.size, s.size))
    inv = 1.0 / s**2 if s.size else s
    for g, k in enumerate(ks):
        H[g, :k] = inv[:k]
    return H


def _ridge_filters(s: np.ndarray, alphas) -> np.ndarray:
    """Filters ``h`` (n_grid × q) of ridge regression, ``1/(s_j² + α)``."""
    alphas = np.atleast_1d(np.asarray(alphas, dtype=float))
    return 1.0 / (s[None, :] ** 2 + alphas[:, None])


def _spectral_predictions(dec: _Decomposition, Kc_new: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Predictions (n_grid × n_new) of the filtered models ``ȳ + Σ_j (kc·V_j) c_j H[g, j]``."""
    return dec.y_mean + (H * dec.c[None, :]) @ dec.project(Kc_new).T


def _spectral_dual(dec: _Decomposition, h: np.ndarray) -> np.ndarray:
    """Dual coefficients ``a = Σ_j V_j c_j h_j`` (length n) of one filtered model."""
    return dec.combine(dec.c * h)


def _fit_spectral(estimator, X: np.ndarray, y: np.ndarray, filters) -> None:
    """Fit a filtered Gram model: set ``coef_``, ``intercept_``, ``n_components_``, ``singular_values_``."""
    mean = X.mean(axis=0)
    Xc = X - mean
    dec = _decompose(Xc @ Xc.T, y)
    a = _spectral_dual(dec, filters(dec.s)[0])
    estimator.coef_ = Xc.T @ (a - a.mean())  # w = Xcᵀ a (a ⟂ 1 up to round-off)
    estimator.intercept_ = float(dec.y_mean - mean @ estimator.coef_)
    estimator.n_components_ = int(dec.s.size)
    estimator.singular_values_ = dec.s


class PCRegression(_LinearPredictMixin, RegressorMixin, BaseEstimator):
    """Principal component regression: PCA, then OLS on the scores of the first components.

    The textbook alternative to the DEIPP decoder's LASSO selection: components are kept by
    *variance* (the first ``n_components``), not by their correlation with the target. The model is
    the same as ``make_pipeline(PCA(n_components), LinearRegression())``, expressed as edge weights:
    ``predict(X) = intercept_ + X @ coef_``. Centred PC scores are orthogonal, so the OLS refit is a
    set of univariate slopes (``deipp_methods.md`` §9.2, closed form).

    Parameters
    ----------
    n_components : int or None, default=None
        Number of leading components kept. ``None`` keeps all of them (minimum-norm least squares,
        which interpolates the training data when ``n_samples ≤ n_features``). Capped at the number of
        numerically non-zero components.
    solver : {"auto", "gram", "explicit"}, default="auto"
        How the PCA is computed, as in :class:`~deipp_core.model.LassoPCR`: ``"gram"`` through the
        centred ``n × n`` Gram matrix (``O(n²p + n³)``), ``"explicit"`` by SVD of the centred rows;
        ``"auto"`` picks ``"gram"`` when ``n_samples < n_features``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Feature weights.
    intercept_ : float
        Intercept.
    n_components_ : int
        Number of components used (``min(n_components, usable components)``).
    explained_variance_ : ndarray of shape (n_components_,)
        Variance of the scores of each used component (ddof = 1), descending.
    solver_ : str
        The solver used.
    n_features_in_ : int
        Number of features seen during fit.

    See Also
    --------
    deipp_core.model.LassoPCR : Components selected by the LASSO instead of by variance.
    GramRidge : Shrinks every component instead of truncating.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((30, 200)); y = X[:, :5].sum(axis=1)
    >>> model = PCRegression(n_components=10).fit(X, y)
    >>> model.n_components_, model.coef_.shape
    (10, (200,))
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "solver": [StrOptions({"auto", "gram", "explicit"})],
    }

    def __init__(self, n_components=None, *, solver="auto"):
        self.n_components = n_components
        self.solver = solver

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the PCA and the OLS regression on the first components.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows.
        y : array-like of shape (n_samples,)
            Target.

        Returns
        -------
        self : PCRegression
            The fitted estimator.
        """
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        self.solver_ = _resolve_solver(self.solver, *X.shape)
        comps = _components(X, y, self.solver_)
        q = comps["s"].size
        k = q if self.n_components is None else min(int(self.n_components), q)
        self.n_components_ = k
        self.explained_variance_ = comps["s"][:k] ** 2 / max(X.shape[0] - 1, 1)
        self.coef_ = comps["coef"](np.arange(k)) if k else np.zeros(X.shape[1])
        self.intercept_ = float(comps["y_mean"] - comps["mean"] @ self.coef_)
        return self


class GramRidge(_LinearPredictMixin, RegressorMixin, BaseEstimator):
    """Ridge regression with an unpenalised intercept, solved exactly through the Gram matrix.

    Minimises ``‖y − b0 − X w‖² + alpha·‖w‖²`` (the objective of ``sklearn.linear_model.Ridge``).
    With the centred rows ``Xc`` the solution is ``w = Xcᵀ (Xc Xcᵀ + alpha·I)⁻¹ (y − ȳ)`` and
    ``b0 = ȳ − mean(X)·w``: one ``n × n`` problem instead of a ``p × p`` one. It is solved by the
    eigendecomposition of the centred Gram matrix (the same kernel as LASSO-PCR, see the module
    notes), so a whole path of ``alpha`` values costs one decomposition.

    Parameters
    ----------
    alpha : float, default=1.0
        Penalty on ``‖w‖²`` (≥ 0; 0 gives the minimum-norm least-squares solution). Its scale is that
        of the Gram matrix: ``alpha`` comparable to ``trace(Xc Xcᵀ)/n`` is strong shrinkage.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Feature weights ``w``.
    intercept_ : float
        Intercept ``b0``.
    n_components_ : int
        Numerically non-zero components of the centred rows (relative variance above ``1e-10``).
    singular_values_ : ndarray of shape (n_components_,)
        Their singular values, descending.
    n_features_in_ : int
        Number of features seen during fit.

    Notes
    -----
    Cost ``O(n²p + n³)`` time and ``O(n²)`` memory beyond ``X``; for ``n > p`` the primal solver of
    ``sklearn.linear_model.Ridge`` is cheaper.

    See Also
    --------
    sklearn.linear_model.Ridge : The same model, solved in feature space.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((20, 500)); y = rng.standard_normal(20)
    >>> bool(np.allclose(GramRidge(alpha=3.0).fit(X, y).coef_, Ridge(alpha=3.0).fit(X, y).coef_))
    True
    """

    _parameter_constraints: dict = {"alpha": [Interval(Real, 0, None, closed="left")]}

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Solve the dual ridge problem.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows.
        y : array-like of shape (n_samples,)
            Target.

        Returns
        -------
        self : GramRidge
            The fitted estimator.
        """
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        _fit_spectral(self, X, y, lambda s: _ridge_filters(s, self.alpha))
        return self


# ----------------------------------------------------------------------------------------------
# Connectome-based predictive modelling
# ----------------------------------------------------------------------------------------------

#: Network strengths that enter the CPM's linear model.
_CPM_MODELS = ("combined", "positive", "negative")


def _edge_r(sum_x, sum_x2, sum_xy, sum_y: float, sum_y2: float, n: int) -> np.ndarray:
    """Pearson r of every feature with y from sufficient statistics over ``n`` rows (NaN if constant).

    Pass features translated by a common constant (e.g. a column mean) for round-off: r is unchanged.
    """
    cov = sum_xy - sum_x * (sum_y / n)
    var_x = sum_x2 - sum_x**2 / n
    var_y = sum_y2 - sum_y**2 / n
    tol = 1e-12 * np.maximum(sum_x2, np.finfo(float).tiny)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(np.where(var_x > tol, var_x, np.nan) * var_y)
    if not var_y > 1e-12 * max(sum_y2, np.finfo(float).tiny):
        r[:] = np.nan
    return np.clip(r, -1.0, 1.0)


def _r_critical(thresholds, n: int) -> np.ndarray:
    """``|r|`` above which a two-sided Pearson test on ``n`` rows gives ``p < threshold``.

    ``p = 2·P(T_{n−2} > |t|)`` with ``t = r √((n−2)/(1−r²))`` (MATLAB ``corr``, scipy ``pearsonr``);
    inverting, ``|r| > t_c / √(n − 2 + t_c²)`` with ``t_c`` the upper ``threshold/2`` quantile.
    """
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=float))
    if n < 3:
        return np.full(thresholds.shape, np.inf)
    t_c = scipy.stats.t.isf(thresholds / 2.0, n - 2)
    return t_c / np.sqrt(n - 2 + t_c**2)


def _cpm_masks(r: np.ndarray, r_crit: np.ndarray) -> np.ndarray:
    """Positive then negative edge masks for every threshold, as an (E, 2G) float matrix."""
    with np.errstate(invalid="ignore"):
        pos = r[:, None] > r_crit[None, :]
        neg = r[:, None] < -r_crit[None, :]
    return np.concatenate([pos, neg], axis=1).astype(float)


def _cpm_regressions(strengths: np.ndarray, y: np.ndarray, n_grid: int, model: str) -> np.ndarray:
    """Linear models of y on the network strengths of each threshold: (n_grid, 3) ``[b0, b_pos, b_neg]``.

    An empty network has a zero strength column; least squares (minimum norm) gives it a zero slope.
    """
    coefs = np.zeros((n_grid, 3))
    ones = np.ones(y.size)
    for g in range(n_grid):
        cols = {"combined": (0, 1), "positive": (0,), "negative": (1,)}[model]
        design = np.column_stack([ones] + [strengths[:, g + c * n_grid] for c in cols])
        sol = scipy.linalg.lstsq(design, y, lapack_driver="gelsd", check_finite=False)[0]
        coefs[g, 0] = sol[0]
        for i, c in enumerate(cols):
            coefs[g, 1 + c] = sol[1 + i]
    return coefs


def _cpm_fit(r: np.ndarray, strengths_fn, y: np.ndarray, thresholds, model: str):
    """Masks (E, 2G) and ``[b0, b_pos, b_neg]`` (G, 3) of the CPMs at every threshold.

    ``strengths_fn(masks)`` returns the training rows' strengths ``X_train @ masks`` (so callers can
    compute them without copying rows out of a larger matrix).
    """
    masks = _cpm_masks(r, _r_critical(thresholds, y.size))
    n_grid = masks.shape[1] // 2
    return masks, _cpm_regressions(strengths_fn(masks), y, n_grid, model)


def _cpm_predict(strengths_new: np.ndarray, coefs: np.ndarray) -> np.ndarray:
    """Predictions (G, n_new) from the new rows' strengths (n_new, 2G) and the fitted coefficients."""
    G = coefs.shape[0]
    return (coefs[:, 0:1] + coefs[:, 1:2] * strengths_new[:, :G].T
            + coefs[:, 2:3] * strengths_new[:, G:].T)


class CPM(_LinearPredictMixin, RegressorMixin, BaseEstimator):
    """Connectome-based predictive modelling (Shen et al. 2017).

    1. Feature selection: the Pearson correlation of every feature (edge) with the target over the
       training rows; edges with a two-sided ``p < threshold`` and ``r > 0`` form the positive
       network, those with ``r < 0`` the negative network.
    2. Summary: each row's *network strengths*, the sums of its values over the positive and over
       the negative edges.
    3. Model: OLS of the target on the strengths. ``model="combined"`` uses both strengths as two
       predictors (the protocol's combined model); ``"positive"`` / ``"negative"`` only one.

    The fitted model is linear in the features: ``coef_`` is ``b_pos`` on positive edges, ``b_neg``
    on negative edges and 0 elsewhere.

    Parameters
    ----------
    threshold : float, default=0.01
        p-value threshold of the edge selection (the protocol's usual 0.01), in (0, 1).
    model : {"combined", "positive", "negative"}, default="combined"
        Which network strengths enter the linear model.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Feature weights of the fitted linear model.
    intercept_ : float
        Intercept.
    edge_r_ : ndarray of shape (n_features,)
        Pearson r of every feature with the target (NaN for constant features).
    r_threshold_ : float
        ``|r|`` a feature must exceed to be selected (from ``threshold`` and ``n_samples``).
    positive_mask_, negative_mask_ : ndarray of bool of shape (n_features,)
        The two networks.
    strength_coef_ : ndarray of shape (2,)
        Slopes of the positive and negative strengths (0 for a strength not in the model or an
        empty network).
    n_features_in_ : int
        Number of features seen during fit.

    Notes
    -----
    Rows are treated as independent observations in the edge tests; with bins of the same session
    they are not, so ``threshold`` is a tuning parameter here (chosen by inner cross-validation in
    the decoder comparison), not a significance level. Greene et al. (2018) combine the networks as
    a single predictor ``pos − neg`` instead; that variant is not provided.

    References
    ----------
    Shen, X. et al. (2017). Using connectome-based predictive modeling to predict individual behavior
    from brain connectivity. *Nature Protocols* 12, 506–518.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 50)); y = X[:, :3].sum(axis=1) - X[:, 3]
    >>> model = CPM(threshold=0.001).fit(X, y)
    >>> np.flatnonzero(model.positive_mask_).tolist(), np.flatnonzero(model.negative_mask_).tolist()
    ([0, 1, 2], [3])
    """

    _parameter_constraints: dict = {
        "threshold": [Interval(Real, 0, 1, closed="neither")],
        "model": [StrOptions(set(_CPM_MODELS))],
    }

    def __init__(self, threshold=0.01, *, model="combined"):
        self.threshold = threshold
        self.model = model

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Select the networks and fit the linear model on their strengths.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows (e.g. rating bins × edges).
        y : array-like of shape (n_samples,)
            Target.

        Returns
        -------
        self : CPM
            The fitted estimator.
        """
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        n = X.shape[0]
        Xc = X - X.mean(axis=0)
        yc = y - y.mean()
        r = _edge_r(Xc.sum(axis=0), (Xc**2).sum(axis=0), Xc.T @ yc, float(yc.sum()),
                    float(yc @ yc), n)
        masks, coefs = _cpm_fit(r, lambda m: X @ m, y, [self.threshold], self.model)
        self.edge_r_ = r
        self.r_threshold_ = float(_r_critical([self.threshold], n)[0])
        self.positive_mask_ = masks[:, 0].astype(bool)
        self.negative_mask_ = masks[:, 1].astype(bool)
        self.strength_coef_ = coefs[0, 1:].copy()
        self.coef_ = masks @ self.strength_coef_
        self.intercept_ = float(coefs[0, 0])
        return self
