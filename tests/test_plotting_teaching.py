"""Teaching figures (deipp_core.plotting.teaching) and the solution code of the teaching chapter."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import Lasso
from sklearn.preprocessing import StandardScaler

from deipp_core.data.dataset import Run
from deipp_core.edges import binned_edges, edge_timeseries, zscore
from deipp_core.model import LassoPCR, nested_loso
from deipp_core.plotting.teaching import (
    censored_volumes,
    component_strength,
    loso_split_matrix,
    plot_bin_comparison,
    plot_edge_pair,
    plot_loso_splits,
    plot_run_alignment,
    plot_soft_thresholding,
)
from deipp_core.ratings import RatingParams, align_run

CHAPTER = Path(__file__).resolve().parent.parent / "notebooks" / "how-it-works.md"


@pytest.fixture
def run_frames(rng):
    """A synthetic rating run (400 volumes, some censored) aligned with the default parameters."""
    n_vol, tr = 400, 0.46
    censor = np.ones(n_vol, dtype=int)
    censor[[100, 101, 150, 220, 221, 222, 399]] = 0
    t = np.arange(0.0, n_vol * tr + 15, 1 / 60)
    rating = pd.DataFrame({"time": t, "value": 0.5 + 0.4 * np.sin(t / 20)})
    run = Run(
        session="01", task="rating", run=1, tr=tr,
        timeseries=rng.standard_normal((n_vol, 4)),
        confounds=pd.DataFrame({"framewise_displacement": np.zeros(n_vol), "censor": censor}),
        rating=rating, source="synthetic",
    )
    params = RatingParams()
    return run, params, align_run(run, params)


# --------------------------------------------------------------------------------------------------
# Step 1
# --------------------------------------------------------------------------------------------------


def test_censored_volumes_are_the_censored_volumes_of_the_analysis_window(run_frames):
    run, params, frames = run_frames
    first = params.n_trim(run.tr) + params.lag_tr  # 66 + 13 = 79
    expected = first + np.flatnonzero(~run.censor[first:])
    np.testing.assert_array_equal(censored_volumes(frames, params, run.tr), expected)
    assert censored_volumes(frames, params, run.tr).tolist() == [100, 101, 150, 220, 221, 222, 399]


def test_run_alignment_draws_the_paired_rating_at_the_brain_volume_and_every_censored_volume(run_frames):
    run, params, frames = run_frames
    fig = plot_run_alignment(frames, params, run.tr)
    ax = fig.axes[0]
    dots = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(dots[:, 0], frames.frames * run.tr)
    np.testing.assert_allclose(dots[:, 1], frames.rating)
    ticks = [line for line in ax.lines if line.get_marker() == "|"]
    assert len(ticks) == 1 and len(ticks[0].get_xdata()) == 7
    # the paired rating is the grid rating lag volumes earlier
    np.testing.assert_allclose(frames.rating, frames.rating_tr[frames.frames - params.lag_tr])


# --------------------------------------------------------------------------------------------------
# Step 2
# --------------------------------------------------------------------------------------------------


def test_bin_comparison_bars_count_the_frames_of_each_bin(run_frames):
    _, _, frames = run_frames
    fig = plot_bin_comparison(frames, 10)
    bars = fig.axes[2].patches
    heights = np.array([b.get_height() for b in bars])
    rb = frames.rbin[10]
    np.testing.assert_array_equal(heights[:10], np.bincount(rb[rb >= 0], minlength=10))
    np.testing.assert_array_equal(heights[10:], np.bincount(frames.tbin[10], minlength=10))
    assert heights[10:].sum() == frames.n_frames


def test_bin_comparison_refuses_a_bin_count_the_run_was_not_aligned_with(run_frames):
    _, _, frames = run_frames
    with pytest.raises(ValueError, match="without 7 bins"):
        plot_bin_comparison(frames, 7)


# --------------------------------------------------------------------------------------------------
# Step 3
# --------------------------------------------------------------------------------------------------


def test_edge_pair_draws_each_frame_at_its_bin_mean(run_frames):
    run, _, frames = run_frames
    z = zscore(run.timeseries[frames.frames][:, [0, 2]])
    e = edge_timeseries(z)[:, 0]
    labels = frames.rbin[10]
    means = binned_edges(z, labels, 10)[:, 0]
    fig = plot_edge_pair(z, e, labels, means)
    line = [ln for ln in fig.axes[1].lines if ln.get_label() == "bin mean (the feature)"][0]
    y = np.asarray(line.get_ydata(), dtype=float)
    for b in range(10):
        np.testing.assert_allclose(y[labels == b], e[labels == b].mean())
    assert np.isnan(y[labels < 0]).all()


def test_edge_pair_checks_shapes(run_frames):
    run, _, frames = run_frames
    z = zscore(run.timeseries[frames.frames][:, :3])
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        plot_edge_pair(z, z[:, 0], frames.rbin[10], np.zeros(10))
    with pytest.raises(ValueError, match="bin means"):
        plot_edge_pair(z[:, :2], z[:, 0], frames.rbin[10], np.zeros(3))


# --------------------------------------------------------------------------------------------------
# Step 4
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def lasso_problem(rng):
    X = rng.standard_normal((40, 300))
    y = X[:, :10].sum(axis=1) + 2 * rng.standard_normal(40)
    strength = component_strength(LassoPCR().fit(X, y), y)
    lam = float(np.sort(strength)[-6:-4].mean())  # between the 6th and 5th strongest: 5 selected
    return X, y, LassoPCR(alpha=lam).fit(X, y), lam


def test_component_strength_thresholds_the_lassopcr_support(lasso_problem):
    X, y, model, lam = lasso_problem
    strength = component_strength(model, y)
    np.testing.assert_array_equal(model.selected_, strength > lam)
    assert model.n_selected_ == 5


@pytest.mark.parametrize("at_knot", [False, True])
def test_a_generic_lasso_on_standardised_scores_is_soft_thresholding(lasso_problem, at_knot):
    """The claim the chapter's figure makes, checked with scikit-learn's coordinate descent."""
    X, y, model, lam = lasso_problem
    if at_knot:  # λ on a grid knot (as the chapter's λ): that component's coefficient is ~0
        lam = float(np.sort(component_strength(model, y))[-6])
        model = LassoPCR(alpha=lam).fit(X, y)
    scores = StandardScaler().fit_transform(PCA(n_components=model.n_components_).fit_transform(X))
    coef = Lasso(alpha=lam, tol=1e-12, max_iter=100_000).fit(scores, y).coef_
    np.testing.assert_array_equal(np.abs(coef) > 1e-8, model.selected_)
    np.testing.assert_allclose(np.abs(coef), np.maximum(component_strength(model, y) - lam, 0), atol=1e-8)


def test_soft_thresholding_plot_colours_exactly_the_selected_components(lasso_problem):
    X, y, model, lam = lasso_problem
    fig = plot_soft_thresholding(model, y)
    ax = fig.axes[0]
    not_sel, sel = ax.collections[0].get_offsets(), ax.collections[1].get_offsets()
    assert len(sel) == model.n_selected_ and len(not_sel) == model.n_components_ - model.n_selected_
    assert (sel[:, 1] > lam).all() and (not_sel[:, 1] <= lam).all()
    assert ax.lines[0].get_ydata()[0] == pytest.approx(lam)


def test_soft_thresholding_plot_needs_a_thresholded_model(lasso_problem):
    X, y, _, _ = lasso_problem
    with pytest.raises(ValueError, match="alpha"):
        plot_soft_thresholding(LassoPCR(n_components=3).fit(X, y), y)
    model = LassoPCR(alpha=0.1).fit(X, y)
    with pytest.raises(ValueError, match="components"):
        plot_soft_thresholding(model, y, lasso_coef=np.zeros(3))


# --------------------------------------------------------------------------------------------------
# Step 5
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def small_cv(rng):
    groups = np.repeat(np.array(["01", "02", "03", "04"]), 8)
    X = rng.standard_normal((32, 50))
    y = X[:, :4].sum(axis=1)
    return nested_loso(X, y, groups)


def test_split_matrix_from_recorded_splits_equals_the_leave_one_session_out_layout(small_cv):
    cv = small_cv
    assert len(cv.splits) == 16
    np.testing.assert_array_equal(loso_split_matrix(cv.groups, splits=cv.splits), np.eye(4, dtype=int))
    for k in range(4):
        from_splits = loso_split_matrix(cv.groups, splits=cv.splits, outer=k)
        np.testing.assert_array_equal(from_splits, loso_split_matrix(cv.groups, outer=k))
        assert (from_splits[:, k] == 2).all() and (from_splits == 1).sum() == 3


def test_split_matrix_rejects_splits_that_are_not_leave_one_session_out(small_cv):
    g = small_cv.groups
    bad = [(g[2:], g[:2], "outer")]
    with pytest.raises(ValueError, match="not leave-one-session-out"):
        loso_split_matrix(g, splits=bad)
    with pytest.raises(ValueError, match="no inner split"):
        loso_split_matrix(g, splits=[s for s in small_cv.splits if s[2] == "outer"], outer=0)
    with pytest.raises(ValueError, match="outer must index"):
        loso_split_matrix(g, outer=4)


def test_loso_plot_shows_both_matrices_and_the_fold_sizes(small_cv):
    cv = small_cv
    fig = plot_loso_splits(cv.groups, splits=cv.splits, outer=1, fold_n_selected=cv.fold_n_selected)
    left, right = fig.axes[:2]
    np.testing.assert_array_equal(left.images[0].get_array(), np.eye(4, dtype=int))
    np.testing.assert_array_equal(right.images[0].get_array(), loso_split_matrix(cv.groups, outer=1))
    texts = [t.get_text() for t in left.texts]
    assert texts[:4] == [str(int(v)) for v in cv.fold_n_selected]
    # a cached result has no splits: the layout comes from the groups
    fig2 = plot_loso_splits(cv.groups, splits=[], outer=1)
    np.testing.assert_array_equal(fig2.axes[1].images[0].get_array(), right.images[0].get_array())


# --------------------------------------------------------------------------------------------------
# The chapter's hidden solutions are the code it runs
# --------------------------------------------------------------------------------------------------


def _code_cells(text: str) -> list[str]:
    return re.findall(r"```\{code-cell\} ipython3\n(.*?)```", text, flags=re.S)


def test_every_solution_block_is_code_the_chapter_executes():
    text = CHAPTER.read_text()
    solutions = re.findall(r"````\{admonition\} Solution\n:class: dropdown\n(.*?)\n````", text, flags=re.S)
    assert len(solutions) == 3
    cells = _code_cells(text)
    for sol in solutions:
        blocks = re.findall(r"```python\n(.*?)```", sol, flags=re.S)
        assert len(blocks) == 1, "each solution shows one code block"
        assert any(blocks[0] in cell for cell in cells), (
            f"solution code not executed by the chapter:\n{blocks[0]}"
        )
