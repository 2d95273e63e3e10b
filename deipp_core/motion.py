"""Framewise displacement (FD) and censoring as the DEIPP pipeline computes them.

The original pipeline uses FD in two ways (``reference/deipp_methods.md``):

* **Censoring (§4 step 10).** The six realignment parameters are low-pass filtered first: a
  2nd-order Butterworth filter with cutoff 0.1 Hz (normalised by the Nyquist frequency 1/(2·TR)),
  applied forwards and backwards with MATLAB ``filtfilt``. Rotations are then turned into mm of arc
  on a 50-mm sphere, and FD_t = Σ|Δ| over the 3 translations and 3 rotations, with FD_1 = 0 (the first
  row is repeated before differencing). A frame is kept iff FD_t ≤ 0.15 mm. The filter removes the
  apparent motion that respiration puts into fast (multiband) acquisitions.
* **Head-motion control (§10.4).** The same FD, computed from the *unfiltered* parameters.

:func:`framewise_displacement` does both: ``lowpass_hz=0.1`` (the default) gives the censoring FD and
``lowpass_hz=None`` the unfiltered FD.

MATLAB ``filtfilt`` semantics (§16.8)
-------------------------------------
MATLAB pads both ends with ``3·(nfilt − 1)`` samples (6 for a 2nd-order filter), using an odd
reflection about the end sample (``2·x₁ − x[7:-1:2]``). It starts each pass from the filter's
steady-state initial conditions, scaled by the first padded sample. This equals
``scipy.signal.filtfilt(b, a, x, padtype="odd", padlen=3 * (max(len(a), len(b)) - 1))``. SciPy's
default ``padlen`` is ``3 * max(len(a), len(b))`` (9), which gives slightly different values at the
run edges.

Units
-----
Motion tables follow fMRIPrep naming: ``trans_x``, ``trans_y``, ``trans_z`` in mm and ``rot_x``,
``rot_y``, ``rot_z`` in **radians**. For AFNI ``3dvolreg`` parameters in degrees, as the original
pipeline reads them, pass ``rotation_unit="deg"``. Then a rotation is converted as deg·π/180·50,
as in the MATLAB code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import signal

from deipp_core.exceptions import DataFormatError, ParameterError

__all__ = [
    "MOTION_COLUMNS",
    "CENSOR_THRESHOLD_MM",
    "LOWPASS_HZ",
    "HEAD_RADIUS_MM",
    "butter_lowpass",
    "matlab_filtfilt",
    "framewise_displacement",
    "censor_mask",
]

#: Realignment parameters in the order of a confounds table (translations mm, rotations rad).
MOTION_COLUMNS: tuple[str, ...] = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")

#: Censoring threshold on the low-pass-filtered FD, in mm (``cenfdthr``).
CENSOR_THRESHOLD_MM = 0.15

#: Low-pass cutoff applied to the motion parameters before the censoring FD, in Hz (``cenlpfthr``).
LOWPASS_HZ = 0.1

#: Radius of the sphere on which rotations become mm of arc.
HEAD_RADIUS_MM = 50.0


def butter_lowpass(tr: float, cutoff_hz: float = LOWPASS_HZ, order: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients ``(b, a)`` of MATLAB ``butter(order, cutoff_hz / (0.5 / tr))``.

    Parameters
    ----------
    tr : float
        Repetition time in seconds (sampling interval of the motion parameters).
    cutoff_hz : float, default=0.1
        Cutoff frequency in Hz. It must be below the Nyquist frequency 1/(2·tr).
    order : int, default=2
        Filter order.
    """
    if not tr > 0:
        raise ParameterError(f"tr must be a positive number of seconds; got {tr!r}")
    nyquist = 0.5 / tr
    wn = cutoff_hz / nyquist
    if not 0 < wn < 1:
        raise ParameterError(
            f"lowpass_hz must lie between 0 and the Nyquist frequency {nyquist:.4g} Hz "
            f"(TR {tr} s); got {cutoff_hz!r}"
        )
    b, a = signal.butter(order, wn, btype="low")
    return np.asarray(b, float), np.asarray(a, float)


def matlab_filtfilt(b: np.ndarray, a: np.ndarray, x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Zero-phase filtering with MATLAB ``filtfilt`` edge handling (odd padding of 3·(nfilt−1)).

    Raises
    ------
    DataFormatError
        If the series is too short for the padding (MATLAB raises an error here as well).
    """
    x = np.asarray(x, dtype=float)
    padlen = 3 * (max(len(a), len(b)) - 1)
    if x.shape[axis] <= padlen:
        raise DataFormatError(
            f"the motion series has {x.shape[axis]} samples; filtfilt needs more than {padlen}"
        )
    return signal.filtfilt(b, a, x, axis=axis, padtype="odd", padlen=padlen)


def _motion_array(motion: pd.DataFrame | np.ndarray) -> np.ndarray:
    if isinstance(motion, pd.DataFrame):
        missing = [c for c in MOTION_COLUMNS if c not in motion.columns]
        if missing:
            raise DataFormatError(
                f"motion table lacks columns {missing}; expected {list(MOTION_COLUMNS)} "
                "(translations in mm, rotations in radians)"
            )
        arr = motion.loc[:, list(MOTION_COLUMNS)].to_numpy(dtype=float)
    else:
        arr = np.asarray(motion, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 6:
            raise DataFormatError(
                f"motion array must have shape (n_volumes, 6) in the column order {list(MOTION_COLUMNS)}; "
                f"got shape {arr.shape}"
            )
    if arr.shape[0] < 1:
        raise DataFormatError("motion table has no rows")
    if not np.all(np.isfinite(arr)):
        bad = np.unique(np.nonzero(~np.isfinite(arr))[0])
        raise DataFormatError(
            f"motion parameters contain NaN or inf at rows {bad[:10].tolist()}"
            f"{' ...' if bad.size > 10 else ''}; fill or drop them before computing FD"
        )
    return arr


def framewise_displacement(
    motion: pd.DataFrame | np.ndarray,
    tr: float,
    lowpass_hz: float | None = LOWPASS_HZ,
    radius_mm: float = HEAD_RADIUS_MM,
    *,
    rotation_unit: str = "rad",
) -> np.ndarray:
    """Framewise displacement in mm, as DEIPP computes it for censoring or for the motion control.

    Parameters
    ----------
    motion : DataFrame or ndarray of shape (n_volumes, 6)
        Realignment parameters: columns :data:`MOTION_COLUMNS` (translations in mm, rotations in
        radians unless ``rotation_unit="deg"``). An array must use that column order.
    tr : float
        Repetition time in seconds.
    lowpass_hz : float or None, default=0.1
        Cutoff of the 2nd-order Butterworth low-pass filter applied (zero-phase, MATLAB ``filtfilt``
        padding) before differencing. ``0.1`` gives the censoring FD of the preprocessing
        (methods §4 step 10). ``None`` gives the unfiltered FD of the head-motion analysis (§10.4).
    radius_mm : float, default=50
        Radius of the sphere on which rotations are turned into mm of arc.
    rotation_unit : {"rad", "deg"}, default="rad"
        Unit of the rotation columns.

    Returns
    -------
    ndarray of shape (n_volumes,)
        FD_t = Σ_k |p_k(t) − p_k(t−1)| over the 6 parameters (rotations in mm), with FD_0 = 0.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((3, 6)); m[1, 0] = 0.1; m[2, 3] = 0.002   # 0.1 mm in x, then 0.002 rad
    >>> framewise_displacement(m, tr=0.46, lowpass_hz=None).round(6).tolist()
    [0.0, 0.1, 0.2]
    """
    arr = _motion_array(motion)
    if rotation_unit == "rad":
        rot_scale = radius_mm
    elif rotation_unit == "deg":
        rot_scale = np.pi / 180.0 * radius_mm
    else:
        raise ParameterError(f"rotation_unit must be 'rad' or 'deg'; got {rotation_unit!r}")
    if lowpass_hz is not None:
        b, a = butter_lowpass(tr, lowpass_hz)
        arr = matlab_filtfilt(b, a, arr, axis=0)
    mm = arr.copy()
    mm[:, 3:] *= rot_scale
    fd = np.zeros(mm.shape[0])
    fd[1:] = np.abs(np.diff(mm, axis=0)).sum(axis=1)
    return fd


def censor_mask(fd: np.ndarray, threshold: float = CENSOR_THRESHOLD_MM) -> np.ndarray:
    """Keep-mask of the censoring rule: True where FD ≤ ``threshold`` (NaN FD is dropped).

    >>> censor_mask(np.array([0.0, 0.15, 0.1500001, np.nan])).tolist()
    [True, True, False, False]
    """
    fd = np.asarray(fd, dtype=float)
    with np.errstate(invalid="ignore"):
        return fd <= threshold
