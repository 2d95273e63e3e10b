"""Framewise displacement and censoring as the DEIPP preprocessing computes them (methods §4.10, §10.4)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.motion import (
    MOTION_COLUMNS,
    butter_lowpass,
    censor_mask,
    framewise_displacement,
    matlab_filtfilt,
)

TR = 0.46


def _matlab_filtfilt_by_hand(b, a, x):
    """MATLAB filtfilt written out: odd reflection of 3(nfilt-1) samples, steady-state initial
    conditions scaled by the first sample of each pass, forward, reverse, forward, reverse."""
    nfact = 3 * (max(len(a), len(b)) - 1)
    head = 2 * x[0] - x[nfact:0:-1]
    tail = 2 * x[-1] - x[-2 : -nfact - 2 : -1]
    y = np.concatenate([head, x, tail])
    zi = signal.lfilter_zi(b, a)
    y, _ = signal.lfilter(b, a, y, zi=zi * y[0])
    y = y[::-1]
    y, _ = signal.lfilter(b, a, y, zi=zi * y[0])
    return y[::-1][nfact:-nfact]


def test_butterworth_coefficients_match_the_bilinear_closed_form():
    b, a = butter_lowpass(TR, 0.1)
    wn = 0.1 / (0.5 / TR)  # MATLAB butter(2, 0.1/(0.5/TR))
    k = math.tan(math.pi * wn / 2)
    norm = 1 / (1 + math.sqrt(2) * k + k * k)
    np.testing.assert_allclose(b, np.array([k * k, 2 * k * k, k * k]) * norm, rtol=1e-12)
    np.testing.assert_allclose(
        a, [1, 2 * (k * k - 1) * norm, (1 - math.sqrt(2) * k + k * k) * norm], rtol=1e-12
    )
    assert b.sum() / a.sum() == pytest.approx(1.0)  # unit DC gain


def test_butter_lowpass_rejects_cutoffs_above_nyquist():
    with pytest.raises(ParameterError, match="Nyquist"):
        butter_lowpass(TR, 1.2)
    with pytest.raises(ParameterError, match="tr"):
        butter_lowpass(0, 0.1)


def test_filtfilt_uses_matlab_padding(rng):
    b, a = butter_lowpass(TR, 0.1)
    x = np.cumsum(rng.standard_normal(200))
    ours = matlab_filtfilt(b, a, x)
    np.testing.assert_allclose(ours, _matlab_filtfilt_by_hand(b, a, x), atol=1e-10)
    scipy_default = signal.filtfilt(b, a, x)  # padlen 9: differs at the edges
    assert np.abs(ours - scipy_default)[:5].max() > 1e-6


def test_unfiltered_fd_by_hand():
    # translations in mm, rotations in radians
    m = pd.DataFrame(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.1, -0.2, 0.0, 0.0, 0.0, 0.0],
            [0.1, -0.2, 0.05, 0.001, 0.0, -0.002],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ],
        columns=MOTION_COLUMNS,
    )
    # row 1: 0.1 + 0.2; row 2: 0.05 + 50*0.001 + 50*0.002; row 3: 0.1+0.2+0.05+0.05+0.1
    expected = [0.0, 0.3, 0.2, 0.5]
    np.testing.assert_allclose(framewise_displacement(m, TR, lowpass_hz=None), expected, atol=1e-12)
    # degrees, as AFNI writes them, are converted as deg*pi/180*50
    deg = m.copy()
    deg[["rot_x", "rot_y", "rot_z"]] = np.degrees(deg[["rot_x", "rot_y", "rot_z"]])
    np.testing.assert_allclose(
        framewise_displacement(deg, TR, lowpass_hz=None, rotation_unit="deg"), expected, atol=1e-12
    )
    # another radius
    np.testing.assert_allclose(
        framewise_displacement(m, TR, lowpass_hz=None, radius_mm=80)[2], 0.05 + 80 * 0.003
    )


def test_columns_are_read_by_name_not_position():
    m = pd.DataFrame(np.zeros((3, 6)), columns=MOTION_COLUMNS)
    m.loc[1, "rot_z"] = 0.001
    shuffled = m[list(reversed(MOTION_COLUMNS))].assign(extra=5.0)
    np.testing.assert_allclose(framewise_displacement(shuffled, TR, None), [0, 0.05, 0.05])


def test_filtered_fd_matches_the_matlab_recipe(rng):
    n = 300
    motion = np.cumsum(0.02 * rng.standard_normal((n, 6)), axis=0)
    motion[:, 3:] /= 50.0  # radians
    b, a = signal.butter(2, 0.1 / (0.5 / TR))
    filt = np.column_stack([_matlab_filtfilt_by_hand(b, a, motion[:, k]) for k in range(6)])
    filt[:, 3:] *= 50.0
    expected = np.r_[0.0, np.abs(np.diff(filt, axis=0)).sum(axis=1)]
    fd = framewise_displacement(motion, TR)  # default low-pass 0.1 Hz, 50 mm
    np.testing.assert_allclose(fd, expected, atol=1e-12)
    assert fd[0] == 0.0
    # the low-pass filter removes respiration-like apparent motion
    t = np.arange(n) * TR
    resp = np.zeros((n, 6))
    resp[:, 2] = 0.1 * np.sin(2 * np.pi * 0.3 * t)
    assert framewise_displacement(resp, TR, None)[10:-10].mean() > 0.05
    assert framewise_displacement(resp, TR)[10:-10].max() < 0.005


def test_constant_motion_has_zero_fd():
    m = np.tile([0.3, -0.1, 0.2, 0.01, 0.0, -0.02], (50, 1))
    np.testing.assert_allclose(framewise_displacement(m, TR), 0, atol=1e-12)
    np.testing.assert_allclose(framewise_displacement(m, TR, None), 0, atol=1e-12)


def test_bad_motion_input_is_rejected():
    with pytest.raises(DataFormatError, match="rot_z"):
        framewise_displacement(pd.DataFrame(np.zeros((5, 5)), columns=MOTION_COLUMNS[:5]), TR)
    with pytest.raises(DataFormatError, match="shape"):
        framewise_displacement(np.zeros((5, 4)), TR)
    bad = np.zeros((20, 6))
    bad[3, 1] = np.nan
    with pytest.raises(DataFormatError, match="rows \\[3\\]"):
        framewise_displacement(bad, TR)
    with pytest.raises(DataFormatError, match="filtfilt"):
        framewise_displacement(np.zeros((6, 6)), TR)
    assert framewise_displacement(np.zeros((6, 6)), TR, None).shape == (6,)
    with pytest.raises(ParameterError, match="rotation_unit"):
        framewise_displacement(np.zeros((10, 6)), TR, None, rotation_unit="grad")


def test_censor_mask_keeps_fd_at_or_below_threshold():
    fd = np.array([0.0, 0.1, 0.15, 0.150001, 0.3, np.nan])
    assert censor_mask(fd).tolist() == [True, True, True, False, False, False]
    assert censor_mask(fd, threshold=0.2).tolist() == [True, True, True, True, False, False]
    assert censor_mask(fd).dtype == bool
