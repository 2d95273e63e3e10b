"""Tests of deipp_core.ratings: TR grid, trim/lag/censoring, rating-quantile and MATLAB time bins.

Expected values are computed by hand in the comments (methods spec §5) wherever the arrays are small.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deipp_core.data.dataset import MOTION_COLUMNS, Run
from deipp_core.exceptions import AllFramesCensoredError, DataFormatError, ParameterError
from deipp_core.ratings import (
    RatingParams,
    _quantile_labels,
    _remove_short_segments,
    _segments,
    align_run,
    bin_means,
    discretize_edges,
    kept_frames,
    rating_bins,
    resample_to_tr,
    time_bins,
)


def make_run(
    n_volumes: int,
    *,
    tr: float = 0.46,
    rating: pd.DataFrame | None = None,
    censored=(),
    n_parcels: int = 3,
    session: str = "01",
    run: int | None = 1,
    task: str = "rating",
    seed: int = 0,
) -> Run:
    """A small synthetic run: random time series, given rating, volumes in ``censored`` dropped."""
    rng = np.random.default_rng(seed)
    censor = np.ones(n_volumes, dtype=int)
    censor[list(censored)] = 0
    conf = pd.DataFrame(np.zeros((n_volumes, len(MOTION_COLUMNS))), columns=list(MOTION_COLUMNS))
    conf["framewise_displacement"] = 0.0
    conf["censor"] = censor
    return Run(
        session=session,
        task=task,
        run=run,
        tr=tr,
        timeseries=rng.standard_normal((n_volumes, n_parcels)),
        confounds=conf,
        rating=rating,
        source=f"/synthetic/sub-01_ses-{session}_task-{task}_run-{run}.tsv",
    )


# ------------------------------------------------------------------------------------------------
# RatingParams
# ------------------------------------------------------------------------------------------------


def test_params_defaults_give_the_original_volume_counts_at_tr_046():
    p = RatingParams()
    # ceil(10/0.46) = ceil(21.739…) = 22 ; ceil(30/0.46) = ceil(65.217…) = 66
    assert p.n_dummy(0.46) == 22
    assert p.n_trim(0.46) == 66
    assert isinstance(p.n_dummy(0.46), int)
    assert (p.lag_tr, p.min_segment, p.n_bins) == (13, 5, (2, 5, 10))


def test_params_volume_counts_are_ceilings_of_exact_ratios():
    p = RatingParams(tdummy_s=10.0, trim_s=30.0)
    assert p.n_dummy(0.5) == 20  # 10/0.5 = 20 exactly: no extra volume
    assert p.n_trim(2.0) == 15
    assert p.n_trim(0.7) == 43  # 42.857… → 43


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"trim_s": -1.0}, "trim_s"),
        ({"tdummy_s": float("nan")}, "tdummy_s"),
        ({"lag_tr": 1.5}, "lag_tr"),
        ({"lag_tr": -1}, "lag_tr"),
        ({"min_segment": 0}, "min_segment"),
        ({"n_bins": ()}, "n_bins"),
        ({"n_bins": (2, 0)}, "n_bins"),
        ({"n_bins": (5, 5)}, "repeated"),
        ({"n_bins": "abc"}, "n_bins"),
    ],
)
def test_params_reject_invalid_values_with_a_message_naming_the_field(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        RatingParams(**kwargs)


def test_params_coerce_a_list_of_bins_to_a_tuple_and_reject_a_bad_tr():
    assert RatingParams(n_bins=[10, 5]).n_bins == (10, 5)
    with pytest.raises(ParameterError, match="repetition time"):
        RatingParams().n_trim(0.0)


# ------------------------------------------------------------------------------------------------
# resample_to_tr (§5.1)
# ------------------------------------------------------------------------------------------------


def test_resample_uses_mid_volume_times_after_the_dummy_volumes():
    # TR 0.46, 22 dummies: t_k = 22·0.46 − 10 + 0.23 + 0.46 k
    #                          = 0.35, 0.81, 1.27, 1.73, 2.19, 2.65, 3.11
    rating = pd.DataFrame({"time": [0.0, 1.0, 2.0, 3.0], "value": [0.0, 1.0, 0.0, 1.0]})
    out = resample_to_tr(rating, 7, 0.46)
    expected = [0.35, 0.81, 0.73, 0.27, 0.19, 0.65, np.nan]
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_resample_gives_nan_before_the_first_and_after_the_last_sample():
    # TR 1, tdummy 2.5 → n_dummy 3, t_k = 3 − 2.5 + 0.5 + k = 1, 2, 3, 4, 5
    rating = pd.DataFrame({"time": [1.5, 4.0], "value": [0.0, 1.0]})
    out = resample_to_tr(rating, 5, 1.0, tdummy_s=2.5)
    np.testing.assert_allclose(out, [np.nan, 0.2, 0.6, 1.0, np.nan], atol=1e-12)


def test_resample_sorts_unsorted_times_like_interp1_and_rejects_repeated_times():
    rating = pd.DataFrame({"time": [2.0, 0.0, 1.0], "value": [0.0, 0.0, 1.0]})
    out = resample_to_tr(rating, 3, 1.0, tdummy_s=0.0)  # t = 0.5, 1.5, 2.5
    np.testing.assert_allclose(out, [0.5, 0.5, np.nan])
    dup = pd.DataFrame({"time": [0.0, 1.0, 1.0], "value": [0.0, 1.0, 0.5]})
    with pytest.raises(DataFormatError, match="distinct"):
        resample_to_tr(dup, 3, 1.0)


def test_resample_names_missing_columns():
    with pytest.raises(DataFormatError, match="value"):
        resample_to_tr(pd.DataFrame({"time": [0.0, 1.0]}), 3, 1.0)


# ------------------------------------------------------------------------------------------------
# rating_bins (§5.4)
# ------------------------------------------------------------------------------------------------


def test_rating_bins_split_at_the_hazen_quantile_of_the_ranks():
    # n_f = 9, n = 3: q = 9·1/3 + 0.5 = 3.5 and 6.5 → ranks 1-3 → 0, 4-6 → 1, 7-9 → 2
    ratings = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6])
    # ranks:           5    1    9    3    7    2    8    4    6
    np.testing.assert_array_equal(
        rating_bins(ratings, 3, min_segment=1), [1, 0, 2, 0, 2, 0, 2, 1, 1]
    )


def test_rating_bins_rank_ties_by_time_order():
    # all equal: ranks follow time, so the first half is bin 0 (q = 6·0.5 + 0.5 = 3.5)
    np.testing.assert_array_equal(rating_bins(np.full(6, 0.5), 2, 1), [0, 0, 0, 1, 1, 1])
    # 0.2 at t=0 and t=3 share a value: the earlier one gets the lower rank (1 vs 2)
    # n_f = 4, n = 4: q = 1.5, 2.5, 3.5 → one frame per bin
    np.testing.assert_array_equal(rating_bins([0.2, 0.9, 0.5, 0.2], 4, 1), [0, 3, 2, 1])


def test_rating_bins_exclude_short_segments():
    # n_f = 12, n = 2, q = 6.5; the six 0.1s are bin 0, the six 0.9s bin 1.
    r = np.array([0.1] * 4 + [0.9] * 2 + [0.1] * 2 + [0.9] * 4)
    # segments: 0×4, 1×2, 0×2, 1×4 (last) → with min_segment 3 the two middle ones go
    np.testing.assert_array_equal(
        rating_bins(r, 2, min_segment=3), [0, 0, 0, 0, -1, -1, -1, -1, 1, 1, 1, 1]
    )
    # min_segment 2: nothing is shorter than 2
    np.testing.assert_array_equal(
        rating_bins(r, 2, min_segment=2), [0] * 4 + [1] * 2 + [0] * 2 + [1] * 4
    )


def test_rating_bins_never_check_the_last_segment_but_do_check_the_first():
    # n_f = 10, q = 5.5: labels 1 1 1 0 0 0 0 0 1 1 → segments 1×3, 0×5, 1×2 (last)
    r = np.array([0.9] * 3 + [0.1] * 5 + [0.9] * 2)
    np.testing.assert_array_equal(rating_bins(r, 2, min_segment=3), [1, 1, 1, 0, 0, 0, 0, 0, 1, 1])
    # min_segment 4: the first segment (3 < 4) goes; the last (2 < 4) is kept (§5.4 SUBTLE)
    np.testing.assert_array_equal(
        rating_bins(r, 2, min_segment=4), [-1, -1, -1, 0, 0, 0, 0, 0, 1, 1]
    )


def test_rating_bins_raise_like_splitapply_when_a_bin_is_emptied():
    # alternating labels 0 1 0 1 … 0 1: every segment but the last has length 1
    r = np.tile([0.1, 0.9], 6)
    with pytest.raises(AllFramesCensoredError, match="splitapply"):
        rating_bins(r, 2, min_segment=2)
    # 2 frames cannot fill 3 bins: q = 2/3 + 0.5 = 1.17 and 1.83, so rank 1 → 0, rank 2 → 2
    with pytest.raises(AllFramesCensoredError, match=r"bin\(s\) \[1\] \(0-based\) of 3"):
        rating_bins([0.1, 0.2], 3, min_segment=1)


def test_rating_bins_reject_nan_and_non_vector_input():
    with pytest.raises(DataFormatError, match="NaN"):
        rating_bins([0.1, np.nan, 0.3], 2, 1)
    with pytest.raises(DataFormatError, match="one-dimensional"):
        rating_bins(np.zeros((3, 2)), 2, 1)
    with pytest.raises(ParameterError, match="n_bins"):
        rating_bins([0.1, 0.2], 0, 1)


def _matlab_prctile_thresholds(n_f: int, n: int) -> np.ndarray:
    """MATLAB ``quantile(1:n_f, (1:n-1)/n)`` as prctile evaluates it, step by step in doubles.

    prctile: r = (100·p/100)·n_f; k = floor(r + 0.5); r −= k; y = (0.5 + r)·x(k+1) + (0.5 − r)·x(k),
    with k and k+1 clamped to [1, n_f]; here x(k) = k.
    """
    out = []
    for j in range(1, n):
        r = ((100 * (j / n)) / 100) * n_f
        k = math.floor(r + 0.5)
        kp1 = k + 1
        r = r - k
        k, kp1 = max(k, 1), min(kp1, n_f)
        out.append((0.5 + r) * kp1 + (0.5 - r) * k)
    return np.array(out)


def test_rating_thresholds_round_like_matlab_prctile_where_a_threshold_hits_a_rank():
    # n_f ≡ 5 (mod 10) puts decile thresholds exactly on ranks (e.g. n_f = 45: q_1 = 5); whether that
    # rank goes up or down is decided by floating-point rounding of p = j/n, identically in numpy's
    # 'hazen' and in MATLAB's prctile interpolation.
    n_checked = 0
    for n in (2, 5, 10):
        for n_f in range(20, 1400, 3 if n != 10 else 1):
            ranks = np.arange(1, n_f + 1)
            expected = (ranks[:, None] > _matlab_prctile_thresholds(n_f, n)[None, :]).sum(axis=1)
            got = _quantile_labels(ranks.astype(float), n)
            np.testing.assert_array_equal(got, expected, err_msg=f"n_f={n_f}, n={n}")
            n_checked += 1
    assert n_checked > 1000


@st.composite
def _ratings(draw):
    n_f = draw(st.integers(1, 120))
    # few distinct values so that ties occur often
    levels = draw(st.integers(1, 12))
    return np.array(draw(st.lists(st.integers(0, levels), min_size=n_f, max_size=n_f))) / levels


@settings(max_examples=200, deadline=None)
@given(r=_ratings(), n=st.integers(1, 10), min_segment=st.integers(1, 7))
def test_rating_bins_properties(r, n, min_segment):
    pre = _quantile_labels(r, n)
    n_f = r.size
    # labels are 0..n-1 and ordered like the ratings (stable: ties by time)
    assert pre.min() >= 0 and pre.max() <= n - 1
    order = np.lexsort((np.arange(n_f), r))
    assert np.all(np.diff(pre[order]) >= 0)
    # bin j holds the ranks in (q_j, q_{j+1}]: its size is n_f/n rounded, ±1
    counts = np.bincount(pre, minlength=n)
    assert np.all(np.abs(counts - n_f / n) <= 1.0 + 1e-9) or n_f < n
    post = _remove_short_segments(pre, min_segment)
    starts, lengths = _segments(pre)
    for k, (s, m) in enumerate(zip(starts, lengths)):
        seg = post[s : s + m]
        if k == len(starts) - 1 or m >= min_segment:
            assert np.array_equal(seg, pre[s : s + m])  # kept untouched (last run always)
        else:
            assert np.all(seg == -1)
    present = set(post[post >= 0].tolist())
    if present == set(range(n)):
        np.testing.assert_array_equal(rating_bins(r, n, min_segment), post)
    else:
        with pytest.raises(AllFramesCensoredError):
            rating_bins(r, n, min_segment)


# ------------------------------------------------------------------------------------------------
# time bins: MATLAB discretize (§5.5)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_f, n, sizes",
    [
        (1225, 10, [129] + [130] * 8 + [56]),
        (1225, 5, [249, 250, 250, 250, 226]),
        (1200, 10, [119] + [120] * 8 + [121]),
    ],
)
def test_time_bins_match_the_spec_examples(n_f, n, sizes):
    labels = time_bins(n_f, n)
    np.testing.assert_array_equal(np.bincount(labels, minlength=n), sizes)


def test_discretize_edges_hand_checked():
    # n_f = 1225, N = 10: r = 122.4, w0 = 100 → L = 0; ll = 122.5, ul = 136.1, p10 = 10, w = 130
    np.testing.assert_array_equal(discretize_edges(1225, 10), np.arange(0, 1301, 130))
    # n_f = 1200: r = 119.9, w0 = 100, L = 0; ll = 120, ul = 133.3, p10 = 10, w = 120; last edge = 1200
    np.testing.assert_array_equal(discretize_edges(1200, 10), np.arange(0, 1201, 120))
    # n_f = 11, N = 10: r = 1, w0 = 1 → L = 1; ll = 1, ul = 1.11, p10 = 0.1, w = 1 → edges 1..11
    np.testing.assert_allclose(discretize_edges(11, 10), np.arange(1, 12))
    np.testing.assert_array_equal(time_bins(11, 10), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9])
    # n_f = 1 (constant data): N bins of total width 1 around the value → edges 0.5, 1.0, 1.5
    np.testing.assert_allclose(discretize_edges(1, 2), [0.5, 1.0, 1.5])
    np.testing.assert_array_equal(time_bins(1, 1), [0])


def _floor_log10(x: Fraction) -> int:
    k = 0
    while x >= 10:
        x /= 10
        k += 1
    while x < 1:
        x *= 10
        k -= 1
    return k


def _spec_edges_exact(n_f: int, n: int) -> list[Fraction]:
    """The §5.5 formulas in exact rational arithmetic."""
    r = Fraction(n_f - 1, n)
    p = Fraction(10) ** _floor_log10(r)
    w0 = p * math.floor(r / p)
    left = min(w0 * math.floor(1 / w0), Fraction(1))
    w = w0
    if n > 1:
        ll = (n_f - left) / n
        ul = (n_f - left) / (n - 1)
        p10 = Fraction(10) ** _floor_log10(ul - ll)
        w = p10 * math.ceil(ll / p10)
    return [left + k * w for k in range(n)] + [max(left + n * w, Fraction(n_f))]


def _sizes_from_edges(edges: list[Fraction], n_f: int) -> list[int]:
    """Integers 1..n_f in [e_j, e_{j+1}) (last bin closed)."""
    sizes = []
    for j in range(len(edges) - 1):
        lo = max(math.ceil(edges[j]), 1)
        if j < len(edges) - 2:
            hi = min(math.ceil(edges[j + 1]) - 1, n_f)
        else:
            hi = min(math.floor(edges[j + 1]), n_f)
        sizes.append(max(hi - lo + 1, 0))
    return sizes


def test_binpicker_port_equals_the_spec_formulas_for_realistic_frame_counts():
    # Every n_f a run can realistically keep (100-3000 frames), for the paper's bin numbers.
    for n in (2, 5, 10):
        for n_f in range(100, 3001):
            exact = _spec_edges_exact(n_f, n)
            edges = discretize_edges(n_f, n)
            assert edges.tolist() == [float(e) for e in exact], (n_f, n)
            assert np.bincount(time_bins(n_f, n), minlength=n).tolist() == _sizes_from_edges(
                exact, n_f
            ), (n_f, n)


def test_time_bins_raise_when_a_bin_is_empty():
    # n_f <= N: some bins cannot hold a frame; MATLAB splitapply would error downstream
    with pytest.raises(AllFramesCensoredError, match="time bin"):
        time_bins(5, 10)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 12), extra=st.integers(1, 4000))
def test_time_bins_properties(n, extra):
    n_f = n + extra  # n_f >= N + 1: the width is >= 1, so every bin holds a frame
    labels = time_bins(n_f, n)
    assert labels.shape == (n_f,)
    assert labels[0] == 0 and labels[-1] == n - 1
    assert np.all(np.diff(labels) >= 0) and np.all(np.diff(labels) <= 1)  # contiguous 0..N-1
    sizes = np.bincount(labels, minlength=n)
    assert np.all(sizes > 0)
    edges = discretize_edges(n_f, n)
    assert edges[0] <= 1 and edges[-1] >= n_f
    if n > 1:
        w = edges[1] - edges[0]
        assert np.allclose(np.diff(edges[:-1]), w)  # equal widths but for the last bin
        assert edges[-2] < n_f  # binWidth < ul: the last bin is never empty


# ------------------------------------------------------------------------------------------------
# bin_means
# ------------------------------------------------------------------------------------------------


def test_bin_means_excludes_unlabelled_frames_and_keeps_bin_order():
    v = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 5.0])
    lab = np.array([1, 1, -1, 0, 0, np.nan])
    np.testing.assert_allclose(bin_means(v, lab, 2), [15.0, 1.5])
    np.testing.assert_allclose(
        bin_means(np.c_[v, -v], lab, 2), [[15.0, -15.0], [1.5, -1.5]]
    )


def test_bin_means_propagates_nan_values_and_rejects_empty_bins():
    np.testing.assert_array_equal(np.isnan(bin_means([np.nan, 1.0], [0, 1], 2)), [True, False])
    with pytest.raises(AllFramesCensoredError, match="splitapply"):
        bin_means([1.0, 2.0], [0, 0], 2)
    with pytest.raises(DataFormatError, match="one row per label"):
        bin_means([1.0, 2.0, 3.0], [0, 1], 2)


# ------------------------------------------------------------------------------------------------
# align_run (§5.2-5.3)
# ------------------------------------------------------------------------------------------------

# TR 1 s, tdummy 0.5 s → n_dummy 1, t_k = 1 − 0.5 + 0.5 + k = 1 + k; the rating is time/100, so
# rating_tr[k] = (1 + k)/100. trim 2 s → n_trim 2; lag 3.
_SMALL = RatingParams(tdummy_s=0.5, trim_s=2.0, lag_tr=3, min_segment=1, n_bins=(2, 3))
_LINEAR = pd.DataFrame({"time": np.arange(0.0, 31.0), "value": np.arange(0.0, 31.0) / 100})


def test_align_run_pairs_each_kept_volume_with_the_rating_lag_volumes_earlier():
    run = make_run(20, tr=1.0, rating=_LINEAR, censored=[7, 12, 3])
    rf = align_run(run, _SMALL)
    # volumes 5..19 (2 trimmed + 3 lag), minus censored 7 and 12 (3 is inside the trim anyway)
    expected_frames = [5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19]
    np.testing.assert_array_equal(rf.frames, expected_frames)
    # brain volume f is paired with rating sample f − 3, whose value is (1 + f − 3)/100
    np.testing.assert_allclose(rf.rating, (np.array(expected_frames) - 2) / 100)
    np.testing.assert_allclose(rf.rating_tr, (1 + np.arange(20)) / 100)
    assert rf.n_frames == 13
    # increasing ratings: rank = time order; n_f = 13, n = 2 → q = 7 → 7 frames in bin 0
    np.testing.assert_array_equal(rf.rbin[2], [0] * 7 + [1] * 6)
    np.testing.assert_array_equal(rf.tbin[2], time_bins(13, 2))
    # n = 3: q = 13/3 + 0.5 = 4.83, 9.17 → ranks 1-4, 5-9, 10-13
    np.testing.assert_array_equal(rf.rbin[3], [0] * 4 + [1] * 5 + [2] * 4)
    assert set(rf.rbin) == set(rf.tbin) == {2, 3}


def test_align_run_with_the_original_parameters_keeps_1225_frames_of_1304():
    t = np.arange(0.0, 620.0, 1 / 60)
    rating = pd.DataFrame({"time": t, "value": 0.5 + 0.4 * np.sin(t / 50)})
    rf = align_run(make_run(1304, rating=rating), RatingParams())
    assert rf.frames[0] == 66 + 13 and rf.frames[-1] == 1303 and rf.n_frames == 1225
    assert np.bincount(rf.tbin[10]).tolist() == [129] + [130] * 8 + [56]
    # the first kept rating sample is TR index 66, at t = 0.35 + 66·0.46 s on the rating clock
    assert rf.rating[0] == pytest.approx(0.5 + 0.4 * np.sin((0.35 + 66 * 0.46) / 50), abs=1e-6)


def test_align_run_error_names_the_run_when_the_rating_does_not_cover_a_kept_frame():
    short = _LINEAR[_LINEAR["time"] <= 12.0]  # rating_tr is NaN from k = 12 on (t = 13 s)
    run = make_run(20, tr=1.0, rating=short)
    with pytest.raises(DataFormatError, match=r"ses-01_task-rating_run-1 \(/synthetic/.*NaN"):
        align_run(run, _SMALL)


def test_align_run_error_names_the_run_when_it_is_too_short_for_trim_and_lag():
    run = make_run(5, tr=1.0, rating=_LINEAR)
    with pytest.raises(AllFramesCensoredError, match="ses-01_task-rating_run-1.*too short"):
        align_run(run, _SMALL)


def test_align_run_error_names_the_run_when_too_few_frames_remain_for_the_bins():
    run = make_run(20, tr=1.0, rating=_LINEAR, censored=range(6, 20))  # only volume 5 kept
    with pytest.raises(AllFramesCensoredError, match="ses-01_task-rating_run-1.*1 kept frames"):
        align_run(run, _SMALL)
    run = make_run(20, tr=1.0, rating=_LINEAR, censored=range(5, 20))
    with pytest.raises(AllFramesCensoredError, match="all 15 volumes.*censored"):
        align_run(run, _SMALL)


def test_align_run_rejects_a_run_without_rating_and_kept_frames_handles_rest_runs():
    rest = make_run(20, tr=1.0, rating=None, censored=[9], task="rest", run=None)
    with pytest.raises(DataFormatError, match="no continuous rating"):
        align_run(rest, _SMALL)
    np.testing.assert_array_equal(kept_frames(rest, _SMALL), [5, 6, 7, 8] + list(range(10, 20)))


def test_align_run_reports_an_empty_rating_table_as_not_covering_the_scan():
    empty = pd.DataFrame({"time": np.array([], float), "value": np.array([], float)})
    np.testing.assert_array_equal(np.isnan(resample_to_tr(empty, 3, 1.0)), True)
    with pytest.raises(DataFormatError, match="no valid time stamps"):
        align_run(make_run(20, tr=1.0, rating=empty), _SMALL)
