"""Tests of the decoder comparison (deipp_core.analyses.decoder_comparison)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.svm import SVR
from threadpoolctl import threadpool_limits

from deipp_core.analyses.decoder_comparison import (
    DECODERS,
    SVR_EPSILON,
    cached_decoder_comparison,
    compare_decoders,
    default_grid,
    nested_loso_decoder,
    paired_differences,
)
from deipp_core.exceptions import ParameterError
from deipp_core.model import CPM, GramRidge, PCRegression, nested_loso
from deipp_core.model._synthetic import make_session_data


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def data():
    return make_session_data(4, 14, seed=3)


def _reference_nested(X, y, groups, X_eval, groups_eval, decoder, grid):
    """Literal nested LOSO with the public estimators on explicit rows (no shared loop code)."""
    mu = X.mean(axis=0)
    d = float(np.mean(((X - mu) ** 2).sum(axis=1)))
    y_mean, y_sd = y.mean(), y.std()

    def fit_predict(train, new_X, value):
        if decoder == "pcr":
            return PCRegression(n_components=int(value)).fit(X[train], y[train]).predict(new_X)
        if decoder == "ridge":
            return GramRidge(alpha=value * d).fit(X[train], y[train]).predict(new_X)
        if decoder == "cpm":
            return CPM(threshold=value).fit(X[train], y[train]).predict(new_X)
        svr = SVR(kernel="linear", C=value, epsilon=SVR_EPSILON)
        svr.fit((X[train] - mu) / np.sqrt(d), (y[train] - y_mean) / y_sd)
        return y_mean + y_sd * svr.predict((new_X - mu) / np.sqrt(d))

    sessions = np.unique(groups)
    pred, pred_eval, chosen = np.empty(y.size), np.empty(X_eval.shape[0]), []
    for s in sessions:
        outer = groups != s
        inner_pred = np.empty((len(grid), y.size))
        for ss in sessions[sessions != s]:
            train = np.flatnonzero(outer & (groups != ss))
            for g, value in enumerate(grid):
                inner_pred[g, groups == ss] = fit_predict(train, X[groups == ss], value)
        r = [np.corrcoef(inner_pred[g, outer], y[outer])[0, 1] for g in range(len(grid))]
        best = int(np.nanargmax(r))
        chosen.append(grid[best])
        train = np.flatnonzero(outer)
        pred[groups == s] = fit_predict(train, X[groups == s], grid[best])
        pred_eval[groups_eval == s] = fit_predict(train, X_eval[groups_eval == s], grid[best])
    return pred, pred_eval, np.array(chosen, dtype=float)


@pytest.mark.parametrize("decoder", ["pcr", "ridge", "cpm", "svr"])
def test_nested_loop_matches_a_literal_loop_over_the_estimators(data, decoder):
    n_min = int(data["y"].size * 2 / 4)
    grid = default_grid(decoder, n_min)
    cv = nested_loso_decoder(data["X"], data["y"], data["groups"], decoder=decoder,
                             X_eval=data["X_eval"], groups_eval=data["groups_eval"])
    ref_pred, ref_eval, ref_chosen = _reference_nested(
        data["X"], data["y"], data["groups"], data["X_eval"], data["groups_eval"], decoder, grid)
    np.testing.assert_array_equal(cv.grid, grid)
    np.testing.assert_array_equal(cv.chosen, ref_chosen)
    atol = 1e-6 if decoder == "svr" else 1e-9  # SVR: libsvm's stopping tolerance on two kernels
    np.testing.assert_allclose(cv.y_pred_train, ref_pred, rtol=0, atol=atol)
    np.testing.assert_allclose(cv.y_pred_eval, ref_eval, rtol=0, atol=atol)


def test_lassopcr_rows_are_those_of_nested_loso(data):
    cv = nested_loso_decoder(data["X"], data["y"], data["groups"], decoder="lassopcr",
                             X_eval=data["X_eval"], groups_eval=data["groups_eval"])
    ref = nested_loso(data["X"], data["y"], data["groups"], X_eval=data["X_eval"],
                      groups_eval=data["groups_eval"])
    np.testing.assert_array_equal(cv.y_pred_train, ref.y_pred_train)
    np.testing.assert_array_equal(cv.y_pred_eval, ref.y_pred_eval)
    np.testing.assert_array_equal(cv.icv_r, ref.icv_r)
    np.testing.assert_array_equal(cv.chosen, ref.fold_n_selected)
    assert cv.n_fits == 4 * 4 + 1


def test_fit_counts(data):
    n_sess = 4
    for decoder in ("pcr", "ridge", "cpm"):
        assert nested_loso_decoder(data["X"], data["y"], data["groups"], decoder=decoder).n_fits == n_sess**2
    svr = nested_loso_decoder(data["X"], data["y"], data["groups"], decoder="svr", grid=[0.1, 1.0])
    assert svr.n_fits == 2 * n_sess**2


@pytest.mark.parametrize("decoder", DECODERS)
def test_same_results_whatever_n_jobs(data, decoder):
    kw = dict(decoder=decoder, X_eval=data["X_eval"], groups_eval=data["groups_eval"])
    a = nested_loso_decoder(data["X"], data["y"], data["groups"], n_jobs=1, **kw)
    b = nested_loso_decoder(data["X"], data["y"], data["groups"], n_jobs=2, **kw)
    np.testing.assert_array_equal(a.y_pred_train, b.y_pred_train)
    np.testing.assert_array_equal(a.y_pred_eval, b.y_pred_eval)
    np.testing.assert_array_equal(a.icv_r, b.icv_r)


def test_no_session_is_predicted_by_a_model_trained_on_it(data):
    """The held-out predictions of a session come from a model fitted without that session."""
    X = data["X"].copy()
    y = data["y"].copy()
    s = data["groups"] == 2
    base = nested_loso_decoder(X, y, data["groups"], decoder="ridge", grid=[0.1])
    y[s] = np.random.default_rng(0).uniform(size=s.sum())
    X[s] *= 3.0
    moved = nested_loso_decoder(X, y, data["groups"], decoder="ridge", grid=[0.1])
    # session 2's own predictions come from a model that never saw session 2 ...
    ref = GramRidge(alpha=0.1 * float(np.mean(((X - X.mean(0)) ** 2).sum(1)))).fit(X[~s], y[~s])
    np.testing.assert_allclose(moved.y_pred_train[s], ref.predict(X[s]), atol=1e-9)
    # ... and the other sessions' predictions change, because their fold models include session 2
    assert not np.allclose(moved.y_pred_train[~s], base.y_pred_train[~s])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"decoder": "lasso"}, "unknown decoder"),
        ({"decoder": "lassopcr", "grid": [1.0]}, "paper's λ grid"),
        ({"decoder": "pcr", "grid": [0]}, "numbers of components"),
        ({"decoder": "cpm", "grid": [0.5, 1.0]}, "p thresholds"),
        ({"decoder": "ridge", "grid": [-1.0]}, "must be positive"),
        ({"decoder": "svr", "grid": []}, "finite values"),
    ],
)
def test_invalid_arguments_raise(data, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        nested_loso_decoder(data["X"], data["y"], data["groups"], **kwargs)


def test_default_grids_are_ordered_from_least_to_most_regularised():
    assert default_grid("pcr", 30).tolist() == sorted(default_grid("pcr", 30).tolist(), reverse=True)
    assert default_grid("pcr", 30)[0] == 29 and default_grid("pcr", 30)[-1] == 1
    assert np.all(np.diff(default_grid("ridge", 30)) > 0)
    assert np.all(np.diff(default_grid("svr", 30)) < 0)
    assert np.all(np.diff(default_grid("cpm", 30)) < 0)
    with pytest.raises(ParameterError):
        default_grid("lassopcr", 30)


# ---------------------------------------------------------------------------------------------
# evaluation on the twin


@pytest.fixture(scope="module")
def twin_comparison(quick_twin_root):
    from deipp_core.data import load_dataset
    from deipp_core.features import participant_features

    dataset = load_dataset("twin", profile="quick", seed=0)
    feats = participant_features(dataset["01"])
    return dataset, feats, compare_decoders(feats, profile="quick", seed=5)


def test_comparison_table_shape_and_lassopcr_rows_equal_the_prediction_analysis(twin_comparison):
    from deipp_core.analyses.prediction import run_prediction

    dataset, feats, res = twin_comparison
    table = res.table
    assert list(table.columns[:3]) == ["participant", "decoder", "level"]
    assert table.groupby("decoder").size().to_dict() == {d: 4 for d in DECODERS}
    assert {"r", "r_ci_low", "r_ci_high", "r_p", "auc", "auc_ci_low", "auc_p", "seconds", "n_fits"} <= set(table)
    ref = run_prediction(dataset["01"], profile="quick", seed=5, features=feats)
    ours = table[table["decoder"] == "lassopcr"].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours[ref.metrics.columns], ref.metrics)
    # every decoder is evaluated on the same units
    assert table.groupby("level")["n_units"].nunique().eq(1).all()
    assert set(res.selection["decoder"]) == set(DECODERS)
    assert len(res.selection) == len(DECODERS) * feats.n_sessions


def test_paired_differences_are_differences_on_shared_resamples(twin_comparison):
    _, _, res = twin_comparison
    table, paired = res.table, res.paired
    assert set(paired["decoder"]) == set(DECODERS) - {"lassopcr"}
    for _, row in paired.iterrows():
        a = table[(table.decoder == row.decoder) & (table.level == row.level)].iloc[0]
        b = table[(table.decoder == "lassopcr") & (table.level == row.level)].iloc[0]
        assert row.delta_r == pytest.approx(a.r - b.r, abs=1e-12)
        assert row.delta_auc == pytest.approx(a.auc - b.auc, abs=1e-12)
        assert row.delta_r_ci_low <= row.delta_r_ci_high


def test_paired_difference_of_identical_decoders_is_exactly_zero():
    from deipp_core.evaluation import level_table

    rng = np.random.default_rng(0)
    rows = [("tbin10", f"{s:02d}", r, b) for s in range(1, 6) for r in (1, 2, 3) for b in range(10)]
    preds = pd.DataFrame(rows, columns=["kind", "session", "run", "bin"])
    preds["rating"] = rng.uniform(size=len(preds))
    preds["predicted"] = preds["rating"] + rng.normal(scale=0.3, size=len(preds))
    lv = level_table(preds)
    out = paired_differences({"lassopcr": lv, "twin": lv.copy()}, n_boot=100, seed=1)
    assert out[["delta_r", "delta_r_ci_low", "delta_r_ci_high", "delta_auc"]].abs().max().max() == 0.0
    with pytest.raises(ParameterError, match="reference"):
        paired_differences({"twin": lv}, n_boot=10)


def test_cached_comparison_is_reused(quick_twin_root, tmp_path, monkeypatch):
    from deipp_core.data import load_dataset

    monkeypatch.setenv("DEIPP_OUTPUT_DIR", str(tmp_path))
    dataset = load_dataset("twin", profile="quick", seed=0)
    first = cached_decoder_comparison(dataset, "01", decoders=["lassopcr", "cpm"], profile="quick")
    files = list(tmp_path.rglob("*decodercomparison*.joblib"))
    assert len(files) == 1
    again = cached_decoder_comparison(dataset, "01", decoders=["lassopcr", "cpm"], profile="quick")
    pd.testing.assert_frame_equal(first.table, again.table)
    assert again.table["seconds"].tolist() == first.table["seconds"].tolist()  # loaded, not rerun
    with pytest.raises(ParameterError, match="include 'lassopcr'"):
        cached_decoder_comparison(dataset, "01", decoders=["cpm"], use_cache=False)


# ---------------------------------------------------------------------------------------------
# text, tables and figures for the chapter


def test_chapter_text_and_table(twin_comparison):
    from deipp_core.analyses.decoder_comparison import comparison_summary, cost_summary, format_comparison

    _, _, res = twin_comparison
    shown = format_comparison(res.table)
    assert shown.shape == (len(DECODERS), 4 * 2 + 2)
    assert shown.index.get_level_values("decoder").tolist()[0] == "LASSO-PCR"
    text = comparison_summary(res.table, res.paired)
    assert text.startswith("- **Participant 01** — highest r at 1-min bins:")
    n_better = int((res.paired["delta_r_ci_low"] > 0).sum())
    assert f"entirely above 0 in {n_better} " in text
    cost = cost_summary(res.table)
    assert cost.count(" fits)") == len(DECODERS) and "Relative to LASSO-PCR" in cost


def test_figures_draw_every_decoder(twin_comparison):
    from deipp_core.plotting.decoders import plot_decoder_comparison, plot_decoder_differences

    _, _, res = twin_comparison
    fig = plot_decoder_comparison(res.table)
    assert len(fig.axes) == 3
    ticks = sorted(zip([t.get_position()[1] for t in fig.axes[2].get_yticklabels()],
                       [t.get_text() for t in fig.axes[2].get_yticklabels()]), reverse=True)
    assert [label for _, label in ticks] == ["LASSO-PCR", "PCR", "Ridge", "Linear SVR", "CPM"]  # top down
    fig = plot_decoder_differences(res.paired)
    assert len(fig.axes) == 1 and len(fig.legends[0].get_texts()) == len(DECODERS) - 1
    with pytest.raises(ValueError, match="lacks column"):
        plot_decoder_comparison(res.paired)
