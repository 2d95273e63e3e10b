"""Tests of the nested leave-one-session-out training (deipp_core.model.nested_loso)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from deipp_core.exceptions import ParameterError
from deipp_core.model import (
    LassoPCR,
    NestedLOSOResult,
    fit_predict_gram,
    nested_loso,
    nested_loso_explicit,
)
from deipp_core.model._cv import _first_nanargmax, _pooled_r
from deipp_core.model._synthetic import make_session_data

ATOL = 1e-8


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """One BLAS thread: the tests run beside other jobs on few cores, and oversubscribed BLAS
    threads slow small SVDs and eigendecompositions many-fold."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def data():
    return make_session_data(5, 18, seed=11)


@pytest.fixture(scope="module")
def fast(data):
    return nested_loso(
        data["X"], data["y"], data["groups"], X_eval=data["X_eval"], groups_eval=data["groups_eval"]
    )


@pytest.fixture(scope="module")
def explicit(data):
    return nested_loso_explicit(
        data["X"], data["y"], data["groups"], X_eval=data["X_eval"], groups_eval=data["groups_eval"]
    )


def _close(a, b, atol=ATOL):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(1.0, float(np.nanmax(np.abs(b))))
    np.testing.assert_allclose(a, b, rtol=0, atol=atol * scale, equal_nan=True)


# ---------------------------------------------------------------------------------------------
# fast Gram implementation == explicit edge-space reference


def test_grid_and_paths_agree(fast, explicit):
    _close(fast.lambdas, explicit["lambdas"])
    np.testing.assert_array_equal(fast.n_pcs, explicit["n_pcs"])
    _close(fast.ocv_pred, explicit["ocv_pred"])
    _close(fast.ocv_r, explicit["ocv_r"])
    _close(fast.icv_r, explicit["icv_r"])


def test_selections_agree(fast, explicit):
    np.testing.assert_array_equal(fast.icv_best, explicit["icv_best"])
    assert fast.ocv_best == explicit["ocv_best"]
    assert fast.final_n_pcs == explicit["final_n_pcs"]
    np.testing.assert_array_equal(fast.fold_n_selected, explicit["fold_n_selected"])
    np.testing.assert_array_equal(fast.groups, explicit["groups"])


def test_models_and_predictions_agree(fast, explicit):
    _close(fast.fold_coef, explicit["fold_coef"])
    _close(fast.fold_intercept, explicit["fold_intercept"])
    _close(fast.final_coef, explicit["final_coef"])
    _close(fast.final_intercept, explicit["final_intercept"])
    _close(fast.y_pred_train, explicit["y_pred_train"])
    _close(fast.y_pred_eval, explicit["y_pred_eval"])


def test_agreement_on_paper_shaped_sessions():
    """30 rows per session (3 runs × 10 bins), more sessions, more edges than rows."""
    d = make_session_data(6, 22, seed=3)
    fast = nested_loso(d["X"], d["y"], d["groups"])
    ref = nested_loso_explicit(d["X"], d["y"], d["groups"])
    assert d["X"].shape == (180, 231)
    np.testing.assert_array_equal(fast.icv_best, ref["icv_best"])
    assert fast.ocv_best == ref["ocv_best"]
    _close(fast.icv_r, ref["icv_r"])
    _close(fast.ocv_r, ref["ocv_r"])
    _close(fast.y_pred_train, ref["y_pred_train"])
    _close(fast.fold_coef, ref["fold_coef"])
    _close(fast.final_coef, ref["final_coef"])


def test_parallel_equals_serial(data, fast):
    par = nested_loso(
        data["X"],
        data["y"],
        data["groups"],
        X_eval=data["X_eval"],
        groups_eval=data["groups_eval"],
        n_jobs=2,
    )
    np.testing.assert_array_equal(par.icv_best, fast.icv_best)
    _close(par.y_pred_train, fast.y_pred_train, atol=1e-12)
    _close(par.y_pred_eval, fast.y_pred_eval, atol=1e-12)
    _close(par.fold_coef, fast.fold_coef, atol=1e-12)


def test_each_inner_training_set_is_fitted_once_for_two_folds(data, fast, monkeypatch):
    """Outer fold i without session j and outer fold j without session i train on the same rows:
    one eigendecomposition serves both, so a nested LOSO costs 1 + S(S+1)/2 of them, not 1 + S²,
    and every fold's inner CV equals the one it would have run alone."""
    import deipp_core.model._cv as cv_module

    sizes = []
    real = cv_module._decompose

    def counting(K_train, y_train):
        sizes.append(K_train.shape[0])
        return real(K_train, y_train)

    monkeypatch.setattr(cv_module, "_decompose", counting)
    X, y, groups = data["X"], data["y"], data["groups"]
    res = nested_loso(X, y, groups)
    S = fast.groups.size
    assert len(sizes) == 1 + S * (S + 1) // 2

    # each fold's inner CV on its own, with the public single-fit kernel
    K, _ = cv_module._centred_grams(np.asarray(X, dtype=float), None)
    for k, label in enumerate(res.groups):
        outer_train = np.flatnonzero(groups != label)
        pred = np.empty((res.lambdas.size, outer_train.size))
        for other in res.groups:
            if other == label:
                continue
            train = np.flatnonzero((groups != label) & (groups != other))
            held = np.flatnonzero(groups == other)
            pred[:, np.isin(outer_train, held)] = fit_predict_gram(
                K, K, y, train, held, res.lambdas
            )[0]
        _close(_pooled_r(pred, y[outer_train]), res.icv_r[:, k], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# internal consistency of the result


def test_result_is_self_consistent(data, fast):
    X, y, groups = data["X"], data["y"], data["groups"]
    S, N, E = 5, X.shape[0], X.shape[1]
    assert isinstance(fast, NestedLOSOResult)
    assert fast.icv_r.shape == (N - 2, S) and fast.fold_coef.shape == (S, E)
    np.testing.assert_array_equal(fast.groups, np.arange(1, S + 1))
    # selections are first nanargmax of their paths
    for k in range(S):
        assert fast.icv_best[k] == np.nanargmax(fast.icv_r[:, k])
    assert fast.ocv_best == np.nanargmax(fast.ocv_r)
    assert fast.final_n_pcs == N - 2 - fast.ocv_best
    _close(fast.ocv_r, _pooled_r(fast.ocv_pred, y), atol=1e-12)
    # held-out predictions come from the fold model of the row's own session
    for k, session in enumerate(fast.groups):
        rows = groups == session
        _close(fast.y_pred_train[rows], fast.fold_intercept[k] + X[rows] @ fast.fold_coef[k])
        _close(fast.y_pred_train[rows], fast.ocv_pred[fast.icv_best[k], rows], atol=1e-12)
        ev = data["groups_eval"] == session
        _close(fast.y_pred_eval[ev], fast.fold_intercept[k] + data["X_eval"][ev] @ fast.fold_coef[k])


def test_fold_model_is_lassopcr_at_inner_cv_lambda(data, fast):
    X, y, groups = data["X"], data["y"], data["groups"]
    for k, session in enumerate(fast.groups):
        train = groups != session
        model = LassoPCR(alpha=fast.lambdas[fast.icv_best[k]], solver="explicit")
        model.fit(X[train], y[train])
        assert model.n_selected_ == fast.fold_n_selected[k]
        _close(fast.fold_coef[k], model.coef_)
        _close(fast.fold_intercept[k], model.intercept_)


def test_final_model_is_top_k_on_all_rows(data, fast):
    model = LassoPCR(n_components=fast.final_n_pcs, solver="explicit").fit(data["X"], data["y"])
    _close(fast.final_coef, model.coef_)
    _close(fast.final_intercept, model.intercept_)


def test_recovers_planted_edges():
    d = make_session_data(6, 30, seed=1)
    res = nested_loso(d["X"], d["y"], d["groups"], X_eval=d["X_eval"], groups_eval=d["groups_eval"])
    assert np.corrcoef(res.y_pred_eval, d["y_eval"])[0, 1] > 0.2
    # coupling inside the module rises with the rating: its edges get the largest positive weights
    assert roc_auc_score(d["planted"], res.final_coef) > 0.9


def test_row_order_does_not_matter(data, fast):
    perm = np.random.default_rng(0).permutation(data["X"].shape[0])
    res = nested_loso(data["X"][perm], data["y"][perm], data["groups"][perm])
    np.testing.assert_array_equal(res.icv_best, fast.icv_best)
    _close(res.icv_r, fast.icv_r)
    _close(res.y_pred_train, fast.y_pred_train[perm])
    _close(res.fold_coef, fast.fold_coef)


# ---------------------------------------------------------------------------------------------
# no session on both sides of a split; no information from the held-out session


def test_no_session_on_both_sides_of_any_split(fast):
    sessions = set(fast.groups.tolist())
    S = len(sessions)
    outer = [sp for sp in fast.splits if sp[2] == "outer"]
    inner = [sp for sp in fast.splits if sp[2] == "inner"]
    assert len(outer) == S and len(inner) == S * (S - 1)
    for train, test, _ in fast.splits:
        assert test.size == 1
        assert test[0] not in set(train.tolist())
    for train, test, _ in outer:
        assert set(train.tolist()) | {test[0]} == sessions
    for outer_train, outer_test, _ in outer:
        held_out = outer_test[0]
        fold_inner = [sp for sp in inner if set(sp[0].tolist()) | {sp[1][0]} == sessions - {held_out}]
        assert len(fold_inner) == S - 1  # every inner fit of this fold excludes the outer session
        assert {sp[1][0] for sp in fold_inner} == sessions - {held_out}


def test_explicit_reference_splits_are_disjoint(explicit):
    S = explicit["groups"].size
    assert len(explicit["splits"]) == S * S
    for train, test, _ in explicit["splits"]:
        assert test.size == 1 and test[0] not in set(train.tolist())


def test_held_out_session_cannot_leak_into_its_fold(data, fast):
    """With the grid fixed, rewriting session k's rows changes nothing of fold k's model."""
    X, y, groups = data["X"].copy(), data["y"].copy(), data["groups"]
    k = 2
    rows = groups == fast.groups[k]
    rng = np.random.default_rng(5)
    X[rows] = rng.standard_normal((rows.sum(), X.shape[1])) * 3 + 1
    y[rows] = rng.uniform(0, 1, rows.sum())
    res = nested_loso(X, y, groups, lambdas=fast.lambdas)
    assert res.icv_best[k] == fast.icv_best[k]
    _close(res.icv_r[:, k], fast.icv_r[:, k], atol=1e-10)
    _close(res.fold_coef[k], fast.fold_coef[k], atol=1e-10)
    _close(res.fold_intercept[k], fast.fold_intercept[k], atol=1e-10)
    # … while the other folds, which train on session k, do change
    assert np.abs(res.fold_coef[k - 1] - fast.fold_coef[k - 1]).max() > 1e-3


# ---------------------------------------------------------------------------------------------
# helpers and input checks


def test_first_nanargmax_follows_matlab_max():
    assert _first_nanargmax(np.array([np.nan, 0.2, 0.5, 0.5])) == 2
    assert _first_nanargmax(np.array([np.nan, np.nan])) == 0


def test_pooled_r_is_nan_for_constant_predictions():
    r = _pooled_r(np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]]), np.array([3.0, 2.0, 1.0]))
    assert np.isnan(r[0]) and r[1] == pytest.approx(-1.0)


def test_input_errors(data):
    X, y, groups = data["X"], data["y"], data["groups"]
    with pytest.raises(ParameterError, match="at least 3 sessions"):
        nested_loso(X, y, np.where(groups > 2, 2, groups))
    with pytest.raises(ParameterError, match="one entry per row"):
        nested_loso(X, y[:-1], groups)
    with pytest.raises(ParameterError, match="without training rows"):
        nested_loso(X, y, groups, X_eval=X[:2], groups_eval=np.array([99, 1]))
    with pytest.raises(ParameterError, match="together"):
        nested_loso(X, y, groups, X_eval=X[:2])
    with pytest.raises(ParameterError, match="finite"):
        nested_loso(np.where(np.arange(X.shape[1]) == 0, np.nan, X), y, groups)
    with pytest.raises(ParameterError, match="N − 2"):
        nested_loso(X, y, groups, lambdas=np.ones(3))
    with pytest.raises(ParameterError, match="solver"):
        nested_loso(X, y, groups, solver="svd")


def test_explicit_solver_returns_the_reference_as_a_result():
    d = make_session_data(3, 8, n_runs=1, seed=2)
    res = nested_loso(d["X"], d["y"], d["groups"], solver="explicit")
    ref = nested_loso_explicit(d["X"], d["y"], d["groups"])
    assert isinstance(res, NestedLOSOResult)
    np.testing.assert_array_equal(res.fold_coef, ref["fold_coef"])
    fast = nested_loso(d["X"], d["y"], d["groups"])
    np.testing.assert_array_equal(res.fold_n_selected, fast.fold_n_selected)
