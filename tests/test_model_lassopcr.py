"""Tests of the LASSO-PCR estimator, the λ grid and the Gram kernel (deipp_core.model)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Lasso, lars_path
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from deipp_core.exceptions import ParameterError
from deipp_core.model import LassoPCR, fit_predict_gram, lambda_grid
from deipp_core.model._synthetic import make_session_data

@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """One BLAS thread: the tests run beside other jobs on few cores, and oversubscribed BLAS
    threads slow small SVDs and eigendecompositions many-fold."""
    with threadpool_limits(limits=1):
        yield


# ---------------------------------------------------------------------------------------------
# data


def _wide(seed=0, n=40, p=300):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) + 0.5  # non-zero mean: the intercept must absorb it
    y = X[:, :10].sum(axis=1) * 0.3 + rng.standard_normal(n)
    return X, y


def _tall(seed=0, n=80, p=25):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) @ rng.standard_normal((p, p)) + 1.0
    y = X @ rng.standard_normal(p) * 0.1 + rng.standard_normal(n)
    return X, y


def _rank_deficient(seed=0, n=50, p=200, rank=12):
    """Rank-12 rows plus duplicated rows: most of the spectrum is numerically zero."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, p)) + 2.0
    X[-5:] = X[:5]
    y = X[:, 0] - X[:, 1] + 0.5 * rng.standard_normal(n)
    return X, y


def _tall_rank_deficient(seed=0, n=60, p=20):
    """Fewer features than rows and two identical columns."""
    X, y = _tall(seed, n, p)
    X[:, -1] = X[:, 0]
    return X, y


DATASETS = {
    "wide": _wide,
    "tall": _tall,
    "rank_deficient": _rank_deficient,
    "tall_rank_deficient": _tall_rank_deficient,
    "edges": lambda seed=0: (lambda d: (d["X"], d["y"]))(make_session_data(3, 16, seed=seed)),
}


def _reference_pca(X, y):
    """Independent PCA by SVD (no shared code): uncentred scores and |r|·σ_y, null space removed."""
    Xc = X - X.mean(axis=0)
    _, s, vt = np.linalg.svd(Xc, full_matrices=False)
    q = min(X.shape[0] - 1, int(np.sum(s**2 > 1e-10 * s[0] ** 2)))
    Z = X @ vt[:q].T
    zc = Z - Z.mean(axis=0)
    yc = y - y.mean()
    r = (zc.T @ yc) / np.sqrt((zc**2).sum(axis=0) * (yc @ yc))
    return Z, vt[:q].T, np.abs(r) * y.std()


def _midpoint_lambdas(strength, n=6):
    """λ values strictly between consecutive knots (never on a knot)."""
    knots = np.sort(strength)[::-1]
    picks = np.linspace(0, knots.size - 2, n).astype(int)
    return [(knots[i] + knots[i + 1]) / 2 for i in picks] + [knots[0] * 1.5]


# ---------------------------------------------------------------------------------------------
# scikit-learn conventions

_EXPECTED_FAILURES = {
    "check_regressors_train": (
        "the check requires a training R² > 0.5 on its dataset; a model restricted to 2 principal "
        "components cannot reach it. The estimator is right, the setting is too small."
    )
}


@parametrize_with_checks(
    [
        LassoPCR(),
        LassoPCR(solver="gram"),
        LassoPCR(alpha=0.05, solver="explicit"),
        LassoPCR(n_components=2),
    ],
    expected_failed_checks=lambda est: _EXPECTED_FAILURES if est.n_components == 2 else {},
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "params",
    [{"alpha": -0.1}, {"n_components": 0}, {"solver": "svd"}, {"n_components": 1.5}],
)
def test_invalid_parameters_raise(params):
    X, y = _wide()
    with pytest.raises(InvalidParameterError, match="parameter of LassoPCR must be"):
        LassoPCR(**params).fit(X, y)


def test_init_stores_arguments_only():
    est = LassoPCR(0.3, n_components=4, solver="gram")
    assert est.get_params() == {"alpha": 0.3, "n_components": 4, "solver": "gram"}
    assert not hasattr(est, "coef_")


# ---------------------------------------------------------------------------------------------
# the estimator reproduces MATLAB's LASSO on standardised scores + OLS refit


@pytest.mark.parametrize("name", ["wide", "tall", "edges"])
def test_selection_equals_sklearn_lasso_on_standardised_scores(name):
    X, y = DATASETS[name](seed=3)
    Z, _, strength = _reference_pca(X, y)
    Zs = (Z - Z.mean(axis=0)) / Z.std(axis=0)  # population SD, as MATLAB lasso's Standardize
    yc = y - y.mean()
    for lam in _midpoint_lambdas(strength):
        lasso = Lasso(alpha=lam, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(Zs, yc)
        model = LassoPCR(alpha=lam, solver="explicit").fit(X, y)
        np.testing.assert_array_equal(model.selected_, lasso.coef_ != 0)
        assert model.n_selected_ == np.count_nonzero(lasso.coef_)


@pytest.mark.parametrize("name", ["wide", "tall", "rank_deficient", "edges"])
@pytest.mark.parametrize("solver", ["explicit", "gram"])
def test_closed_form_equals_ols_refit(name, solver):
    X, y = DATASETS[name](seed=5)
    Z, U, strength = _reference_pca(X, y)
    rng = np.random.default_rng(1)
    X_new = X[rng.permutation(X.shape[0])[:7]] + rng.standard_normal((7, X.shape[1]))
    for lam in _midpoint_lambdas(strength):
        support = strength > lam
        design = np.column_stack([np.ones(len(y)), Z[:, support]])
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        w = U[:, support] @ coef[1:]
        model = LassoPCR(alpha=lam, solver=solver).fit(X, y)
        np.testing.assert_array_equal(model.selected_, support)
        np.testing.assert_allclose(model.coef_, w, rtol=1e-7, atol=1e-9 * np.abs(w).max())
        np.testing.assert_allclose(model.intercept_, coef[0], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(model.predict(X_new), coef[0] + X_new @ w, rtol=1e-8, atol=1e-8)


def test_null_component_and_numerical_zeros_are_excluded():
    X, y = _rank_deficient()  # rank 12 after centring at most
    model = LassoPCR(solver="gram").fit(X, y)
    assert model.n_components_ == np.linalg.matrix_rank(X - X.mean(axis=0))
    X, y = _wide(n=20)
    model = LassoPCR(solver="explicit").fit(X, y)
    assert model.n_components_ == 19  # the n-th (null) component of the centred rows is dropped
    np.testing.assert_allclose(model.predict(X), y, atol=1e-8)  # all 19 components interpolate


@pytest.mark.parametrize("solver", ["explicit", "gram"])
def test_top_k_selects_largest_abs_corr(solver):
    X, y = _wide(seed=2)
    _, _, strength = _reference_pca(X, y)
    for k in (1, 3, 10, 39, 100):
        model = LassoPCR(n_components=k, alpha=123.0, solver=solver).fit(X, y)  # alpha ignored
        expected = np.zeros(strength.size, dtype=bool)
        expected[np.argsort(-strength)[:k]] = True
        np.testing.assert_array_equal(model.selected_, expected)


def test_constant_target_gives_constant_prediction():
    X, _ = _wide()
    y = np.full(X.shape[0], 0.7)
    for solver in ("explicit", "gram"):
        model = LassoPCR(alpha=0.0, solver=solver).fit(X, y)
        assert model.n_selected_ == 0
        np.testing.assert_allclose(model.predict(X), 0.7)


def test_attributes_describe_the_fit():
    X, y = _wide(seed=4)
    model = LassoPCR(n_components=5, solver="gram").fit(X, y)
    Z, _, strength = _reference_pca(X, y)
    np.testing.assert_allclose(np.abs(model.score_corr_) * y.std(), strength, rtol=1e-9)
    np.testing.assert_allclose(model.explained_variance_, Z.var(axis=0, ddof=1), rtol=1e-9)
    assert model.solver_ == "gram" and model.n_selected_ == 5
    assert np.count_nonzero(model.pc_coef_) == 5


# ---------------------------------------------------------------------------------------------
# Gram vs explicit solver


@pytest.mark.parametrize("name", list(DATASETS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gram_equals_explicit(name, seed):
    X, y = DATASETS[name](seed=seed)
    rng = np.random.default_rng(seed)
    X_new = rng.standard_normal((9, X.shape[1])) + X.mean(axis=0)
    _, _, strength = _reference_pca(X, y)
    settings = [{"alpha": lam} for lam in _midpoint_lambdas(strength)]
    settings += [{"n_components": k} for k in (1, 4, strength.size)] + [{}]
    for params in settings:
        gram = LassoPCR(solver="gram", **params).fit(X, y)
        expl = LassoPCR(solver="explicit", **params).fit(X, y)
        np.testing.assert_array_equal(gram.selected_, expl.selected_)
        scale = max(1.0, np.abs(expl.coef_).max())
        np.testing.assert_allclose(gram.coef_, expl.coef_, rtol=0, atol=1e-8 * scale)
        np.testing.assert_allclose(gram.intercept_, expl.intercept_, rtol=0, atol=1e-8 * scale)
        np.testing.assert_allclose(gram.predict(X_new), expl.predict(X_new), rtol=0, atol=1e-8)
        np.testing.assert_allclose(gram.explained_variance_, expl.explained_variance_, rtol=1e-8)


def test_auto_solver_picks_gram_for_wide_data():
    assert LassoPCR().fit(*_wide()).solver_ == "gram"
    assert LassoPCR().fit(*_tall()).solver_ == "explicit"


# ---------------------------------------------------------------------------------------------
# λ grid


@pytest.mark.parametrize("name", ["wide", "tall", "edges"])
def test_lambda_grid_matches_top_k_and_is_ascending(name):
    X, y = DATASETS[name](seed=7)
    lambdas, n_pcs = lambda_grid(X, y)
    N = X.shape[0]
    np.testing.assert_array_equal(n_pcs, np.arange(N - 2, 0, -1))
    assert np.all(np.diff(lambdas) >= 0)
    _, _, strength = _reference_pca(X, y)
    ranked = np.concatenate([np.sort(strength)[::-1], np.zeros(N)])
    np.testing.assert_allclose(lambdas, ranked[n_pcs] + np.finfo(float).eps, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(lambda_grid(X, y, solver="explicit")[0], lambdas, rtol=1e-9)
    # on the all-data fit, the threshold at λ(p) (just above the knot) selects exactly PCs(p) …
    for p in np.linspace(0, N - 3, 8).astype(int):
        k = int(n_pcs[p])
        if k >= strength.size:
            continue
        threshold = LassoPCR(alpha=lambdas[p] * (1 + 1e-9)).fit(X, y)
        top_k = LassoPCR(n_components=k).fit(X, y)
        assert threshold.n_selected_ == k
        np.testing.assert_allclose(threshold.coef_, top_k.coef_, rtol=0, atol=1e-10)


def test_lambda_grid_knots_match_sklearn_lars_path():
    """The closed-form grid equals the knots of a LARS-LASSO path (what ``lasso_rocha`` computes)."""
    X, y = _wide(seed=8)
    lambdas, n_pcs = lambda_grid(X, y)
    Z, _, _ = _reference_pca(X, y)
    Zs = (Z - Z.mean(axis=0)) / Z.std(axis=0)
    knots, _, coefs = lars_path(Zs, y - y.mean(), method="lasso")  # same (1/2n) scale as MATLAB
    np.testing.assert_allclose(lambdas - np.finfo(float).eps, knots[n_pcs], rtol=1e-10)
    # the path has exactly PCs(p) non-zeros at the knot of grid point p
    np.testing.assert_array_equal(np.count_nonzero(coefs, axis=0)[n_pcs], n_pcs)


def test_lambda_grid_rejects_bad_input():
    with pytest.raises(ParameterError, match="at least 3 rows"):
        lambda_grid(np.ones((2, 5)), np.ones(2))
    with pytest.raises(ParameterError, match="shape"):
        lambda_grid(np.ones((4, 5)), np.ones(3))


# ---------------------------------------------------------------------------------------------
# low-level Gram kernel


def test_fit_predict_gram_matches_estimator_on_subsets():
    d = make_session_data(4, 14, seed=9)
    X, y = d["X"], d["y"]
    X_eval = d["X_eval"]
    train = np.flatnonzero(d["groups"] != 2)
    eval_idx = np.flatnonzero(d["groups_eval"] == 2)
    lambdas = np.array([0.0, 0.005, 0.01, 0.02, 1.0])
    mu = X.mean(axis=0)  # any common translation leaves the result unchanged
    K = (X - mu) @ (X - mu).T
    K_eval = (X_eval - mu) @ (X - mu).T
    pred, n_sel = fit_predict_gram(K, K_eval, y, train, eval_idx, lambdas)
    assert pred.shape == (lambdas.size, eval_idx.size)
    for i, lam in enumerate(lambdas):
        model = LassoPCR(alpha=lam, solver="explicit").fit(X[train], y[train])
        assert n_sel[i] == model.n_selected_
        np.testing.assert_allclose(pred[i], model.predict(X_eval[eval_idx]), rtol=0, atol=1e-9)
    # no component at a huge λ: the prediction is the training mean
    np.testing.assert_allclose(pred[-1], y[train].mean())
    # eval_idx=None predicts every row of K_eval
    pred_all, _ = fit_predict_gram(K, K_eval, y, train, None, lambdas[:1])
    np.testing.assert_allclose(pred_all[0, eval_idx], pred[0], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# implicit eigenvectors (sytrd + stevd, Q applied from its reflectors)


def _centred_gram_of(X):
    Xc = X - X.mean(axis=0)
    return Xc @ Xc.T


@pytest.mark.parametrize("n, p", [(2, 5), (3, 40), (25, 300), (60, 30), (120, 800)])
def test_implicit_eigenvectors_equal_explicit_eigh(n, p):
    import scipy.linalg

    from deipp_core.model._gram import _RTOL, _centre_gram, _decompose

    rng = np.random.default_rng(n + p)
    X = rng.standard_normal((n, p)) * np.linspace(3.0, 0.1, p)  # a spread spectrum
    y = X[:, 0] + 0.5 * rng.standard_normal(n)
    K = _centred_gram_of(X)
    dec = _decompose(K, y)
    evals, evecs = scipy.linalg.eigh(_centre_gram(K)[0], driver="evd", check_finite=False)
    evals, evecs = np.maximum(evals[::-1], 0.0), evecs[:, ::-1]
    q = dec.s.size
    assert q == min(n - 1, int(np.sum(evals > _RTOL * evals[0])))
    # the same LAPACK steps as syevd: eigenvalues bit for bit
    np.testing.assert_array_equal(dec.s, np.sqrt(evals[:q]))
    V = dec.components()
    np.testing.assert_allclose(V.T @ V, np.eye(q), atol=1e-12)
    signs = np.sign(np.sum(V * evecs[:, :q], axis=0))
    np.testing.assert_allclose(V * signs, evecs[:, :q], atol=1e-9)
    # products with V, without forming it
    yc = y - y.mean()
    np.testing.assert_allclose(dec.c, V.T @ yc, rtol=0, atol=1e-12 * np.abs(yc).sum())
    K_new = rng.standard_normal((7, n))
    np.testing.assert_allclose(dec.project(K_new), K_new @ V, rtol=0, atol=1e-12 * np.abs(K_new).sum())
    w = rng.standard_normal(q)
    np.testing.assert_allclose(dec.combine(w), V @ w, rtol=0, atol=1e-12 * np.abs(w).sum())


def test_implicit_eigenvectors_of_a_rank_deficient_block():
    from deipp_core.model._gram import _decompose

    X, y = _rank_deficient()
    dec = _decompose(_centred_gram_of(X), y)
    rank = np.linalg.matrix_rank(X - X.mean(axis=0))
    assert dec.s.size == rank and dec.Z.shape == (X.shape[0], rank)
    V = dec.components()
    np.testing.assert_allclose(V.T @ V, np.eye(rank), atol=1e-12)
    np.testing.assert_allclose(V.sum(axis=0), 0.0, atol=1e-10)  # kept components are centred


def test_decomposition_of_a_single_row_has_no_component():
    from deipp_core.model._gram import _decompose

    dec = _decompose(np.array([[4.0]]), np.array([1.5]))
    assert dec.s.size == 0 and dec.project(np.ones((3, 1))).shape == (3, 0)
    np.testing.assert_array_equal(dec.combine(np.zeros(0)), [0.0])
