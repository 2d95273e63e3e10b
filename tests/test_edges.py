"""Tests of deipp_core.edges: MATLAB edge order, z-scores, binned edges and frame-wise algebra."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nilearn.connectome import sym_matrix_to_vec

from deipp_core.edges import (
    binned_edges,
    edge_gram,
    edge_indices,
    edge_order_permutation,
    edge_timeseries,
    mean_edges,
    n_edges,
    predict_frames,
    sym_to_vec,
    vec_to_sym,
    zscore,
)
from deipp_core.exceptions import AllFramesCensoredError, DataFormatError, ParameterError


def _random_symmetric(rng, p):
    a = rng.standard_normal((p, p))
    return a + a.T


# ------------------------------------------------------------------------------------------------
# edge order
# ------------------------------------------------------------------------------------------------


def test_edge_order_is_matlab_column_major_upper_triangle_for_p4():
    i, j = edge_indices(4)
    # MATLAB (1-based): (1,2) (1,3) (2,3) (1,4) (2,4) (3,4)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert n_edges(4) == 6 and n_edges(1) == 0 and edge_indices(0)[0].size == 0


@pytest.mark.parametrize("p", [2, 3, 7, 30])
def test_edge_order_equals_nilearn_sym_matrix_to_vec_without_diagonal(p, rng):
    W = _random_symmetric(rng, p)
    np.testing.assert_array_equal(sym_to_vec(W), sym_matrix_to_vec(W, discard_diagonal=True))


@pytest.mark.parametrize("p", [2, 4, 9, 25])
def test_edge_order_permutation_converts_both_ways(p, rng):
    W = _random_symmetric(rng, p)
    ours = sym_to_vec(W)
    triu = W[np.triu_indices(p, 1)]
    perm = edge_order_permutation(p)
    inv = edge_order_permutation(p, inverse=True)
    np.testing.assert_array_equal(ours[perm], triu)
    np.testing.assert_array_equal(triu[inv], ours)
    np.testing.assert_array_equal(perm[inv], np.arange(n_edges(p)))


def test_edge_order_permutation_for_p4_by_hand():
    # triu order (0,1) (0,2) (0,3) (1,2) (1,3) (2,3) takes our edges 0 1 3 2 4 5
    np.testing.assert_array_equal(edge_order_permutation(4), [0, 1, 3, 2, 4, 5])
    np.testing.assert_array_equal(edge_order_permutation(4, inverse=True), [0, 1, 3, 2, 4, 5])
    # P = 5 is not an involution: ours (0,1)(0,2)(1,2)(0,3)(1,3)(2,3)(0,4)(1,4)(2,4)(3,4)
    # triu       (0,1)(0,2)(0,3)(0,4)(1,2)(1,3)(1,4)(2,3)(2,4)(3,4)
    np.testing.assert_array_equal(edge_order_permutation(5), [0, 1, 3, 6, 2, 4, 7, 5, 8, 9])


def test_vec_to_sym_and_sym_to_vec_round_trip_refmt(rng):
    w = rng.standard_normal(n_edges(6))
    W = vec_to_sym(w)
    assert W.shape == (6, 6)
    np.testing.assert_array_equal(W, W.T)
    np.testing.assert_array_equal(np.diag(W), 0)
    np.testing.assert_array_equal(sym_to_vec(W), w)
    # hand: w = (a, b, c) for P = 3 → [[0 a b] [a 0 c] [b c 0]]
    np.testing.assert_array_equal(vec_to_sym([1.0, 2.0, 3.0], 3), [[0, 1, 2], [1, 0, 3], [2, 3, 0]])


def test_vec_to_sym_rejects_lengths_that_are_not_edge_counts():
    with pytest.raises(DataFormatError, match="not a number of edges"):
        vec_to_sym(np.zeros(5))
    with pytest.raises(DataFormatError, match="4 parcels has 6 entries"):
        vec_to_sym(np.zeros(3), 4)
    with pytest.raises(DataFormatError, match="square"):
        sym_to_vec(np.zeros((3, 4)))
    with pytest.raises(ParameterError, match="n_parcels"):
        edge_indices(-1)


# ------------------------------------------------------------------------------------------------
# z-score
# ------------------------------------------------------------------------------------------------


def test_zscore_uses_sample_sd_and_maps_constant_columns_to_zero():
    x = np.array([[1.0, 7.0, 0.1], [2.0, 7.0, 0.1], [4.0, 7.0, 0.1]])
    z = zscore(x)
    # column 0: mean 7/3, sample SD sqrt(((−4/3)² + (−1/3)² + (5/3)²)/2) = sqrt(7/3)
    np.testing.assert_allclose(z[:, 0], (x[:, 0] - 7 / 3) / np.sqrt(7 / 3))
    np.testing.assert_array_equal(z[:, 1:], 0.0)  # constant (also 0.1, whose mean may round)
    np.testing.assert_allclose(z[:, 0].std(ddof=1), 1.0)


def test_zscore_needs_two_frames_and_a_2d_array():
    with pytest.raises(AllFramesCensoredError, match="at least 2 frames"):
        zscore(np.zeros((1, 3)))
    with pytest.raises(DataFormatError, match="frames, parcels"):
        zscore(np.zeros(3))


# ------------------------------------------------------------------------------------------------
# edge time series, bin means, prediction, Gram
# ------------------------------------------------------------------------------------------------


def test_edge_timeseries_by_hand():
    z = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    # edges (0,1) (0,2) (1,2)
    np.testing.assert_array_equal(edge_timeseries(z), [[2.0, 3.0, 6.0], [-0.5, -2.0, 1.0]])


def test_binned_edges_equal_the_mean_of_the_explicit_edge_time_series(rng):
    z = zscore(rng.standard_normal((60, 11)))
    labels = rng.integers(-1, 4, size=60)
    labels[:4] = [0, 1, 2, 3]
    e = edge_timeseries(z)
    got = binned_edges(z, labels, 4)
    for b in range(4):
        np.testing.assert_allclose(got[b], e[labels == b].mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(mean_edges(z), e.mean(axis=0), rtol=0, atol=1e-12)


def test_mean_edges_of_a_zscored_run_is_the_correlation_scaled_by_n_minus_1_over_n(rng):
    x = rng.standard_normal((40, 5))
    r = np.corrcoef(x, rowvar=False)
    np.testing.assert_allclose(mean_edges(zscore(x)), sym_to_vec(r) * 39 / 40, atol=1e-12)


def test_binned_edges_reject_an_empty_bin_and_mismatched_labels(rng):
    z = rng.standard_normal((10, 3))
    with pytest.raises(AllFramesCensoredError, match="bin 2"):
        binned_edges(z, np.r_[np.zeros(5, int), np.ones(5, int)], 3)
    with pytest.raises(DataFormatError, match="one entry per frame"):
        binned_edges(z, np.zeros(9, int), 1)


def test_predict_frames_equals_explicit_edges_times_weights(rng):
    z = zscore(rng.standard_normal((200, 23)))
    w = rng.standard_normal(n_edges(23))
    b0 = 0.37
    np.testing.assert_allclose(
        predict_frames(z, w, b0), edge_timeseries(z) @ w + b0, rtol=0, atol=1e-10
    )


def test_predict_frames_by_hand():
    # P = 3, w = (1, 0, 0) keeps edge (0,1): ŷ = b0 + z0·z1
    z = np.array([[2.0, 3.0, 5.0], [1.0, -1.0, 4.0]])
    np.testing.assert_allclose(predict_frames(z, [1.0, 0.0, 0.0], 1.0), [7.0, 0.0])


def test_edge_gram_equals_explicit_inner_products(rng):
    za = rng.standard_normal((17, 9))
    zb = rng.standard_normal((13, 9))
    np.testing.assert_allclose(
        edge_gram(za, zb), edge_timeseries(za) @ edge_timeseries(zb).T, rtol=0, atol=1e-10
    )
    with pytest.raises(DataFormatError, match="same parcels"):
        edge_gram(za, zb[:, :5])


@settings(max_examples=50, deadline=None)
@given(p=st.integers(2, 12), t=st.integers(2, 30), seed=st.integers(0, 2**32 - 1))
def test_fast_paths_agree_with_the_explicit_edges(p, t, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((t, p))
    e = edge_timeseries(z)
    w = rng.standard_normal(n_edges(p))
    np.testing.assert_allclose(predict_frames(z, w), e @ w, atol=1e-9)
    np.testing.assert_allclose(edge_gram(z, z), e @ e.T, atol=1e-9)
    np.testing.assert_allclose(mean_edges(z), e.mean(axis=0), atol=1e-12)
