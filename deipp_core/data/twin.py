r"""Digital twin of the DEIPP study: a seeded simulator that writes ds006815-like BIDS with ground truth.

The real data set (OpenNeuro ds006815) cannot be downloaded on the machines the book builds on. So
every chapter runs by default on a **simulated** data set with the same layout. Its ground truth is
known: which edges encode pain, with which sign and strength, and with which lag. The twin is meant
as a scientific instrument. Tests check that the pipeline recovers what was planted, and a null mode
(no pain signal) calibrates the statistics. The data are simulated and say nothing about the real
participants.

Study layout
------------
Two participants with 25 and 30 sessions (55 in all, as in the study). Each session has one
resting-state run and three continuous-rating runs, TR 0.46 s, and 1304 volumes per run after the
10-s dummy period (methods §2). The quick profile (:meth:`TwinConfig.quick`) keeps every structural
feature (two participants with unequal session counts, 3 rating runs + rest, the same TR and run
length, visual parcels left out, all networks present) but has fewer sessions and an 80-parcel
stratified subset of the atlas.

Parcels are the Seitzman 300-ROI set that ships with nilearn (:mod:`deipp_core.data.atlas`), so
network plots and glass brains show real positions.

Generative model
----------------
All sources are unit-variance AR(1) processes with coefficient :math:`\phi` = ``ar_phi`` (0.9 per
TR), started from their stationary distribution. Time is indexed by volume :math:`k` after dummy
removal. Volume :math:`k` is acquired at :math:`t_k = 0.35 + 0.46\,k` s on the rating clock, which
starts at the end of the 10-s disdaq (methods §5.1).

*Latent pain* (felt pain, in [0, 1]) of participant :math:`p`, session :math:`s`, rating run
:math:`r`:

.. math::  \pi(t) = \mathrm{clip}\big(L_{ps} + \delta_{r} + u(t),\ 0,\ 1\big)

* :math:`L_{ps}` is the session level. Across sessions it is an AR(1) with mean ``pain_mean[p]``,
  coefficient ``session_phi`` and stationary SD ``session_sd``, so pain drifts over the months.
* :math:`\delta_r` is the run shift, ``run_shift[r]`` plus N(0, ``run_shift_sd``). Run 2 follows the
  physical activity meant to raise pain.
* :math:`u(t)` is an Ornstein–Uhlenbeck process with time constant ``within_run_tau_s`` and
  stationary SD ``within_run_sd``. It gives slow fluctuations within a run, over minutes. It is
  smoothed by an exponential filter of ``within_run_smooth_s`` (3 s), so felt pain has no
  sub-second jitter and the hand rests between strokes. The SD is restored after smoothing.

In a rest run, :math:`\pi(t) = \mathrm{clip}(L_{ps} + u(t), 0, 1)` with the smaller SD
``rest_within_sd``, so rest pain stays close to the session level.

*Rating behaviour* (the ``_resp.tsv``; methods §2):

* samples arrive at ~60 Hz with jittered intervals and occasional dropped frames, over 600 s;
* the cursor starts at 0 and reaches the felt level within ``rating_reach_s`` (2–6 s), which is why
  the analyses trim the first 30 s;
* after that the hand moves the cursor in short strokes (0.15–0.5 s) towards the felt level
  whenever the gap exceeds ``rating_step_threshold`` (0.02), with a small landing error;
* values are clipped to [0, 1] and quantised to ``rating_quantum`` (1/1000).

*BOLD*, per parcel :math:`i` in network :math:`n(i)`:

.. math::

   x_i(t) = a_g\,g(t) + a_n\,f_{n(i)}(t) + a_e\,e_i(t)
            + \sigma_i\,\sqrt{\gamma_{ps}\,\pi(t - \ell)}\;c_{k(i)}(t)
            + \text{nuisance coupling} + \beta\,\lambda_i\,d(t)

* :math:`g` is a global signal, :math:`f_n` one factor per network (``unassigned`` parcels have
  none), :math:`e_i` private noise. Amplitudes :math:`a_g, a_n, a_e` are ``global_amplitude``,
  ``network_amplitude`` and ``noise_amplitude`` (0.3, 0.7, 1.0). Parcels of one network are
  correlated at ≈ 0.37 and parcels of different networks at ≈ 0.06.
* **Pain coupling.** :math:`\sigma_i = +1` on module A, −1 on module B and 0 elsewhere. A and B
  have ``module_size`` parcels each, drawn from the included parcels of ``module_networks`` (A from
  two networks, B from a third). The two participants' modules come from **disjoint networks**
  (calibration lesson 4), so a model of one should not predict the other. The pain network has
  K = ``n_coupling_signals`` **coupling groups**: A and B are each split at random into K groups of
  (nearly) equal size, and group k of A and group k of B share their own AR(1) coupling signal
  :math:`c_k(t)` (:math:`k(i)` is the group of parcel i; the K signals are independent).
  Co-fluctuation :math:`z_i z_j` of two parcels of one group rises with pain when both lie in A or
  both in B, and falls with pain when one lies in A and the other in B; parcels of different groups
  share no signal. The expected covariance added per unit of pain is ``coupling_gain`` (γ), lagged by
  :math:`\ell` = ``lag_tr`` = 13 TR (5.98 s, the hemodynamic lag the analyses assume). The planted
  edges are the pairs within a group: K·C(2·``module_size``/K, 2) of them, hundreds at paper scale
  (lesson 1).
* **Why several coupling groups** (lesson 3, the training-size curve). A bin's mean co-fluctuation
  on a group's edges is γ·π·mean(c_k²), and mean(c_k²) over a bin of ~100 strongly autocorrelated
  frames varies by ±40 % around 1. With one signal (K = 1, the calibration probe) that multiplicative
  noise lies along the same edge pattern as the pain signal: it adds variance along the pain
  direction, which makes the direction easy to find in a principal-component analysis of a few
  sessions, and it is noise for the rating, which caps the accuracy of even a perfectly learnt
  model. With K independent signals the pain signal is still one shared direction (all groups follow
  the same π), but the multiplicative noise is split over K orthogonal directions. So the pain
  direction carries less variance per training row — it emerges from the noise of the
  principal-component analysis only with more sessions — while a model that has found it averages
  K independent noises and predicts better. Both push the training-size curve towards the paper's:
  little accuracy from a few sessions, high accuracy from many.
* **Encoding that varies between sessions** (lesson 3). γ varies from session to session as
  :math:`\gamma_{ps} = \gamma\,\exp(\sigma_\gamma z - \sigma_\gamma^2/2)` with σ_γ =
  ``session_gain_sd`` (0.15 at paper scale; 0, the probe's setting, in the quick profile). Its
  main effect is on the run and session levels: a session's predictions are scaled by its gain, which
  keeps the session-level r near the paper's range. In each session each module parcel takes part
  with probability 1 − ``module_dropout``, and optional ``n_nuisance_modules`` carry pain-unrelated
  coupling states of strength ``nuisance_gain``; both default to off (untuned).
* ``univariate_gain`` (default 0) optionally adds :math:`\pm` gain·π(t − ℓ) to the module parcels,
  a mean (univariate) pain effect.
* **Motion artefact.** :math:`d(t)` is the framewise displacement of the sudden head movements
  (unfiltered, mm). :math:`\lambda_i \sim N(1, 0.3)` is a participant-specific spatial loading and
  β = ``motion_artifact_gain``. Movement frames thus carry a spatially shared artefact.

*Head motion* (six realignment parameters: mm, radians; relative to the first volume):

* slow drift (a linear trend plus a small random walk);
* apparent motion from respiration near ``respiration_hz`` (0.3 Hz), mostly in z, y and pitch;
* registration noise;
* sudden movements. These are a Poisson process with rate ``motion_event_rate_per_min`` ·
  exp(``motion_pain_slope`` · (π − 0.5)), i.e. about once a minute at pain 0.5 and 60 % more often
  per unit of pain: motion is a mild confound of pain. Each movement has a lognormal size (median
  ``motion_event_median_mm``, as an L1 norm over the six parameters, rotations as mm on a 50-mm
  sphere) and partly returns after a hold.

The confounds table stores the censoring FD of the preprocessing (:mod:`deipp_core.motion`:
Butterworth low-pass 0.1 Hz, MATLAB ``filtfilt``, 50-mm sphere) and the censor flag (FD ≤ 0.15 mm).
The default setting removes about 3–4 % of frames.

*Null mode* (``null=True``) uses the same random draws but removes every route from pain to the
brain data. The coupling and the univariate effect are zero, and movement rates do not depend on
pain. Ratings, latent pain, noise and motion timing are otherwise those of the non-null twin with the
same seed.

Defaults
--------
The brain, the pain and rating behaviour and the motion follow the setting of
``reference/twin_calibration.md``. The pain encoding of :meth:`TwinConfig.paper` is calibrated
(``tests/test_twin_calibration.py``) so that the exact decoder reproduces the paper's qualitative
results: K = 4 coupling groups, modules of 32 parcels (480 planted edges), γ = 0.5 and
``session_gain_sd`` = 0.15. Measured on seed 0, participant 1 (25 sessions): held-out r 0.47, 0.60,
0.66, 0.69 and AUC 0.74, 0.79, 0.86, 0.83 at the 1-min, 2-min, run and session levels; with 1, 2, 4,
8 and 23 training sessions 0, 5, 30, 95 and 100 % of 20 repetitions were significant at the 1-min
level (the probe's setting: 5, 50, 100, 100, 100 %). Participant 2 (30 sessions): r 0.51, 0.61, 0.72,
0.69, AUC 0.73, 0.77, 0.84, 0.78; 0, 0, 25, 100 and 100 % significant with 1, 2, 4, 8 and 28
sessions. Cross-participant 1-min r −0.09 in both directions. :meth:`TwinConfig.quick` keeps
the probe's encoding (K = 1, γ = 0.8, no gain variation). Every effect size is a field of
:class:`TwinConfig`, so it can be tuned with ``TwinConfig.paper(coupling_gain=...)``.

Files written (``root`` is a BIDS data set; ``<a>`` is the atlas name, ``Seitzman300`` at paper scale,
``Seitzman300q80`` at quick scale)::

    dataset_description.json  participants.tsv  README
    sub-XX/sub-XX_sessions.tsv
    sub-XX/ses-YY/func/sub-XX_ses-YY_task-rating_run-N_resp.tsv   (time, rating; no header)
    sub-XX/ses-YY/func/sub-XX_ses-YY_task-rating_run-N_bold.json
    sub-XX/ses-YY/func/sub-XX_ses-YY_task-rest_bold.json
    derivatives/deipp-twin/dataset_description.json
    derivatives/deipp-twin/atlas-<a>_dseg.tsv
    derivatives/deipp-twin/sub-XX/ses-YY/func/
        sub-XX_ses-YY_task-rating_run-N_atlas-<a>_timeseries.tsv.gz (+ .json)
        sub-XX_ses-YY_task-rating_run-N_desc-confounds_timeseries.tsv (+ .json)
        sub-XX_ses-YY_task-rest_atlas-<a>_timeseries.tsv.gz (+ .json)
        sub-XX_ses-YY_task-rest_desc-confounds_timeseries.tsv (+ .json)
    derivatives/deipp-twin-groundtruth/dataset_description.json
    derivatives/deipp-twin-groundtruth/sub-XX/sub-XX_desc-groundtruth_edges.tsv
    derivatives/deipp-twin-groundtruth/sub-XX/sub-XX_desc-groundtruth.json
    derivatives/deipp-twin-groundtruth/sub-XX/ses-YY/
        sub-XX_ses-YY_task-rating_run-N_desc-latentpain_timeseries.tsv
        sub-XX_ses-YY_task-rest_desc-latentpain_timeseries.tsv

Determinism and speed
---------------------
Every run draws from its own :class:`numpy.random.SeedSequence`, keyed by (seed, participant,
session, run, stream). The output is therefore byte-identical for a given seed whatever ``n_jobs``
is, and the null twin shares every draw with the non-null twin. Runs are streamed to disk one
session at a time, so the whole study is never held in memory. The twin is written into a temporary
sibling directory and renamed to ``root`` only when complete.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal

from deipp_core import __version__
from deipp_core.data.atlas import (
    EXCLUDED_NETWORKS,
    atlas_name,
    seitzman_atlas,
    seitzman_subset,
    write_atlas_tsv,
)
from deipp_core.exceptions import ParameterError
from deipp_core.motion import MOTION_COLUMNS, censor_mask, framewise_displacement

__all__ = [
    "TwinConfig",
    "generate_twin",
    "PIPELINE_NAME",
    "GROUNDTRUTH_PIPELINE_NAME",
    "simulate_latent_pain",
    "simulate_rating",
    "simulate_motion",
]

logger = logging.getLogger(__name__)

#: Name of the derivative pipeline holding parcel time series and confounds.
PIPELINE_NAME = "deipp-twin"
#: Name of the derivative folder holding the ground truth.
GROUNDTRUTH_PIPELINE_NAME = "deipp-twin-groundtruth"
BIDS_VERSION = "1.9.0"

# Stream identifiers of the per-run seed sequences (never reorder: they fix the random numbers).
_STREAM_PAIN, _STREAM_RATING, _STREAM_MOTION, _STREAM_BOLD = 0, 1, 2, 3
_REST_RUN_CODE = 0  # rating runs use their run number 1..3 as the code


@dataclass(frozen=True)
class TwinConfig:
    """Every setting of the digital twin: layout, brain, pain encoding, behaviour, motion, output.

    Use :meth:`paper` (the default study layout) or :meth:`quick` (small, for tests); both accept
    field overrides, e.g. ``TwinConfig.paper(coupling_gain=1.0, session_gain_sd=0.3)``. Fields that
    differ per participant are tuples in the order of ``participants``.

    Parameters
    ----------
    scale : str
        Label stored with the data (``"paper"``, ``"quick"`` or anything else for custom settings).
    participants : tuple of str
        Participant labels without ``sub-``.
    n_sessions : tuple of int
        Sessions per participant (paper: 25 and 30, 55 in all).
    n_rating_runs : int
        Continuous-rating runs per session (3).
    include_rest : bool
        Whether every session also has a resting-state run.
    tr : float
        Repetition time in seconds (0.46).
    n_volumes : int
        Volumes per run after dummy removal (1304).
    dummy_s : float
        Dummy (disdaq) period removed at the start of each run, seconds (10).
    rating_duration_s : float
        Length of the rating period on the rating clock, seconds (600).
    n_parcels : int or None
        None for all 300 Seitzman ROIs, or the size of a stratified subset.
    ar_phi : float
        AR(1) coefficient per TR of every BOLD source (0.9).
    global_amplitude, network_amplitude, noise_amplitude : float
        Amplitudes of the global signal, the network factor and the private noise (0.3, 0.7, 1.0).
    coupling_gain : float
        γ: covariance added to each planted edge per unit of latent pain (0.5; quick: 0.8).
    lag_tr : int
        Hemodynamic lag of the encoding in TRs (13 = 5.98 s).
    module_size : int
        Parcels in each of the two pain modules A and B (32; quick: 8). At most 36 with the default
        ``module_networks`` (participant 2's module B has the 36 included FrontoParietal parcels).
    n_coupling_signals : int
        K, the number of independent coupling signals of the pain network (4; quick: 1). Modules A
        and B are each split at random into K groups of (nearly) equal size; group k of A and group
        k of B are coupled by their own signal c_k, so only pairs in the same group are planted
        edges. K > 1 is the calibrated mechanism that steepens the training-size curve (module
        docstring); the quick twin's modules of 8 parcels are too small to split.
    module_networks : tuple
        Per participant, ``(networks of A, networks of B)``. Keep the participants' networks disjoint.
    session_gain_sd : float
        SD of the log coupling gain across sessions (0.15; quick: 0 = same encoding in every session).
    module_dropout : float
        Probability that a module parcel does not take part in a session's encoding (0).
    n_nuisance_modules : int
        Number of modules with pain-unrelated coupling states (0). Each has 2·``module_size``
        included parcels outside the pain modules, split in two halves of opposite sign like A and
        B, coupled by its own AR(1) signal scaled by √(``nuisance_gain``·u(t)), where u is an
        OU state around 0.5 that is independent of pain.
    nuisance_gain : float
        Strength of the nuisance coupling (like ``coupling_gain``).
    univariate_gain : float
        Optional mean (univariate) effect of lagged pain on the module parcels (0).
    pain_mean : tuple of float
        Mean session pain level per participant.
    session_phi, session_sd : float
        AR(1) coefficient and stationary SD of the session levels across sessions (0.7, 0.065).
    run_shift : tuple of float
        Mean shift of the felt pain per rating run (0, +0.06, +0.02: run 2 follows the activity).
    run_shift_sd : float
        SD of the run shift around its mean (0.05).
    within_run_tau_s, within_run_sd : float
        Time constant (s) and stationary SD of the within-run Ornstein–Uhlenbeck pain (60, 0.16).
    within_run_smooth_s : float
        Time constant (s) of an exponential smoother applied to the OU process (3). It removes
        sub-second jitter, so the hand rests between strokes; 0 gives the plain OU process.
    rest_within_sd : float
        Stationary SD of the within-run pain fluctuation during rest (0.05).
    rating_rate_hz : float
        Screen-flip rate of the rating log (60).
    rating_jitter : float
        Relative SD of the sampling interval (0.03).
    rating_drop_prob : float
        Probability that a screen flip is missed, doubling one interval (0.003).
    rating_reach_s : tuple of float
        Range of the time the cursor needs to go from 0 to the felt level (2, 6).
    rating_step_threshold : float
        Gap between felt pain and cursor that triggers a hand movement (0.02).
    rating_stroke_s : tuple of float
        Range of the duration of one hand movement (0.15, 0.5).
    rating_landing_sd : float
        SD of the landing error of a movement (0.004).
    rating_quantum : float
        Quantisation of logged ratings (0.001).
    motion_event_rate_per_min : float
        Rate of sudden movements at pain 0.5, per minute (1).
    motion_pain_slope : float
        Log-rate increase of movements per unit of pain (ln 1.6: 60 % more per unit).
    motion_event_median_mm : float
        Median movement size, L1 norm over the six parameters in mm (1.5). The calibration probe
        used 2 mm with a different movement profile. With this profile (0.5–1.5 s rise, 1–20 s hold,
        partial return over 1–3 s), 1.5 mm gives the probe's censoring rate of ~3.5 %.
    motion_event_log_sd : float
        SD of the log movement size (0.5).
    motion_return : tuple of float
        Range of the fraction of a movement that returns after the hold (0.4, 1.0).
    respiration_hz : float
        Respiratory frequency of the apparent motion (0.3).
    respiration_mm : float
        Amplitude of the respiratory apparent motion in z, mm (0.1).
    drift_mm : float
        SD of the linear drift over a run per parameter, mm (0.15).
    walk_mm : float
        SD per TR of the random-walk part of the drift, mm (0.01; median censoring FD ≈ 0.015 mm).
    motion_noise_mm : float
        SD of the white registration noise per parameter, mm (0.004).
    motion_artifact_gain : float
        BOLD artefact per mm of movement displacement in a frame (1.0).
    head_radius_mm, fd_lowpass_hz, censor_threshold_mm : float
        FD definition of the preprocessing (50 mm, 0.1 Hz, 0.15 mm).
    float_format : str
        printf format of the parcel time series (``"%.6g"``).
    gzip_level : int
        gzip compression level of the time series (1: fastest; the data are noise and gain little
        from higher levels).
    """

    scale: str = "paper"
    # layout
    participants: tuple[str, ...] = ("01", "02")
    n_sessions: tuple[int, ...] = (25, 30)
    n_rating_runs: int = 3
    include_rest: bool = True
    tr: float = 0.46
    n_volumes: int = 1304
    dummy_s: float = 10.0
    rating_duration_s: float = 600.0
    n_parcels: int | None = None
    # brain
    ar_phi: float = 0.9
    global_amplitude: float = 0.3
    network_amplitude: float = 0.7
    noise_amplitude: float = 1.0
    # pain encoding
    coupling_gain: float = 0.5
    lag_tr: int = 13
    module_size: int = 32
    n_coupling_signals: int = 4
    module_networks: tuple = (
        (("SomatomotorDorsal", "Auditory"), ("DefaultMode",)),
        (("CinguloOpercular", "DorsalAttention"), ("FrontoParietal",)),
    )
    session_gain_sd: float = 0.15
    module_dropout: float = 0.0
    n_nuisance_modules: int = 0
    nuisance_gain: float = 0.8
    univariate_gain: float = 0.0
    # latent pain
    pain_mean: tuple[float, ...] = (0.45, 0.35)
    session_phi: float = 0.7
    session_sd: float = 0.065
    run_shift: tuple[float, ...] = (0.0, 0.06, 0.02)
    run_shift_sd: float = 0.05
    within_run_tau_s: float = 60.0
    within_run_sd: float = 0.16
    within_run_smooth_s: float = 3.0
    rest_within_sd: float = 0.05
    # rating behaviour
    rating_rate_hz: float = 60.0
    rating_jitter: float = 0.03
    rating_drop_prob: float = 0.003
    rating_reach_s: tuple[float, float] = (2.0, 6.0)
    rating_step_threshold: float = 0.02
    rating_stroke_s: tuple[float, float] = (0.15, 0.5)
    rating_landing_sd: float = 0.004
    rating_quantum: float = 0.001
    # head motion
    motion_event_rate_per_min: float = 1.0
    motion_pain_slope: float = math.log(1.6)
    motion_event_median_mm: float = 1.5
    motion_event_log_sd: float = 0.5
    motion_return: tuple[float, float] = (0.4, 1.0)
    respiration_hz: float = 0.3
    respiration_mm: float = 0.1
    drift_mm: float = 0.15
    walk_mm: float = 0.01
    motion_noise_mm: float = 0.004
    motion_artifact_gain: float = 1.0
    head_radius_mm: float = 50.0
    fd_lowpass_hz: float = 0.1
    censor_threshold_mm: float = 0.15
    # output
    float_format: str = "%.6g"
    gzip_level: int = 1

    # ------------------------------------------------------------------ constructors
    @classmethod
    def paper(cls, **overrides) -> "TwinConfig":
        """The study layout: sub-01 with 25 sessions, sub-02 with 30, all 300 parcels."""
        return _replace(cls(), overrides)

    @classmethod
    def quick(cls, **overrides) -> "TwinConfig":
        """A small twin for tests: 5 + 6 sessions, 80 parcels, modules of 8; same TR and run length.

        Every structural feature of the paper layout is kept: two participants with unequal session
        counts, three rating runs and a rest run per session, TR 0.46 s, 1304 volumes, excluded
        visual parcels and all 14 network labels. The pain encoding is the calibration probe's (one
        coupling signal, γ = 0.8, the same gain in every session): modules of 8 parcels are too small
        to split into coupling groups and still carry a learnable signal, so the quick twin shows
        that the pipeline works, not the paper-scale training-size curve.
        """
        base = dataclasses.replace(
            cls(), scale="quick", n_sessions=(5, 6), n_parcels=80, module_size=8, n_coupling_signals=1,
            coupling_gain=0.8, session_gain_sd=0.0,
        )
        return _replace(base, overrides)

    # ------------------------------------------------------------------ derived values
    @property
    def atlas_name(self) -> str:
        """BIDS ``atlas-`` label (``Seitzman300``, or ``Seitzman300q<n>`` for a subset)."""
        return atlas_name(self.n_parcels)

    @property
    def n_dummy(self) -> int:
        """Dummy volumes removed: ceil(dummy_s / tr) (22)."""
        return int(math.ceil(round(self.dummy_s / self.tr, 9)))

    @property
    def first_volume_time(self) -> float:
        """Rating-clock time (s) of the middle of volume 0 after dummy removal (0.35 s)."""
        return round(self.n_dummy * self.tr - self.dummy_s + 0.5 * self.tr, 10)

    def volume_times(self) -> np.ndarray:
        """Rating-clock times (s) of the retained volumes, ``t_k = 0.35 + 0.46·k``."""
        return self.first_volume_time + self.tr * np.arange(self.n_volumes)

    def __post_init__(self) -> None:
        n_p = len(self.participants)

        def _fail(msg: str) -> None:
            raise ParameterError(f"TwinConfig: {msg}")

        if n_p < 1 or len(set(self.participants)) != n_p:
            _fail(f"participants must be distinct labels; got {self.participants!r}")
        for name in ("n_sessions", "pain_mean", "module_networks"):
            if len(getattr(self, name)) != n_p:
                _fail(f"{name} needs one entry per participant ({n_p}); got {getattr(self, name)!r}")
        if any(int(s) < 1 for s in self.n_sessions):
            _fail(f"n_sessions must be >= 1; got {self.n_sessions!r}")
        if len(self.run_shift) != self.n_rating_runs:
            _fail(
                f"run_shift needs {self.n_rating_runs} entries (one per rating run); "
                f"got {self.run_shift!r}"
            )
        if not 0 < self.tr:
            _fail(f"tr must be positive; got {self.tr!r}")
        if self.n_volumes < 2 * (self.lag_tr + 10):
            _fail(f"n_volumes={self.n_volumes} is too short for lag_tr={self.lag_tr}")
        last = self.first_volume_time + (self.n_volumes - 1) * self.tr
        if last >= self.rating_duration_s:
            _fail(
                f"the last volume is at {last:.2f} s on the rating clock, after the end of the "
                f"rating period ({self.rating_duration_s} s); lower n_volumes or raise rating_duration_s"
            )
        if not 0 <= self.ar_phi < 1 or not 0 <= self.session_phi < 1:
            _fail("ar_phi and session_phi must lie in [0, 1)")
        if self.lag_tr < 0:
            _fail(f"lag_tr must be >= 0; got {self.lag_tr}")
        if self.module_size < 2:
            _fail(f"module_size must be >= 2; got {self.module_size}")
        if not 1 <= self.n_coupling_signals <= self.module_size:
            _fail(
                f"n_coupling_signals must lie in 1 … module_size ({self.module_size}) so that every "
                f"coupling group has a parcel of module A and one of module B; got {self.n_coupling_signals}"
            )
        if not 0 <= self.module_dropout < 1:
            _fail(f"module_dropout must lie in [0, 1); got {self.module_dropout}")
        for name in ("coupling_gain", "nuisance_gain", "session_gain_sd", "within_run_sd",
                     "rest_within_sd", "session_sd", "run_shift_sd", "motion_artifact_gain"):
            if getattr(self, name) < 0:
                _fail(f"{name} must be >= 0; got {getattr(self, name)}")
        if self.within_run_tau_s <= 0:
            _fail("within_run_tau_s must be positive")
        for mods in self.module_networks:
            if len(mods) != 2 or not all(len(m) >= 1 for m in mods):
                _fail(f"module_networks entries must be (networks of A, networks of B); got {mods!r}")
            for net in (n for m in mods for n in m):
                if net in EXCLUDED_NETWORKS:
                    _fail(f"pain modules cannot use the excluded network {net!r}")
        lo, hi = self.rating_reach_s
        if not 0 < lo <= hi:
            _fail(f"rating_reach_s must be an increasing pair of positive seconds; got {self.rating_reach_s}")
        if self.n_parcels is not None and not 14 <= self.n_parcels <= 300:
            _fail(f"n_parcels must be None or between 14 and 300; got {self.n_parcels}")
        if not 0 <= self.gzip_level <= 9:
            _fail(f"gzip_level must be 0-9; got {self.gzip_level}")


def _replace(config: TwinConfig, overrides: dict) -> TwinConfig:
    known = {f.name for f in dataclasses.fields(TwinConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ParameterError(
            f"TwinConfig has no field(s) {unknown}; the fields are: {', '.join(sorted(known))}"
        )
    return dataclasses.replace(config, **overrides)


# ====================================================================== random helpers


def _seed_sequence(seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(int(k) for k in key))


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(_seed_sequence(seed, *key)))


def _ar1(rng: np.random.Generator, n: int, k: int, phi: float) -> np.ndarray:
    """``k`` independent unit-variance AR(1) series of length ``n`` from their stationary start."""
    u = rng.standard_normal((n, k))
    u[1:] *= math.sqrt(1.0 - phi * phi)
    return signal.lfilter([1.0], [1.0, -phi], u, axis=0)


# ====================================================================== participant plan


@dataclass
class _Plan:
    """Everything about one participant that is fixed across runs (drawn once, from its own seed)."""

    label: str
    number: int
    pain_mean: float
    modules: dict[str, np.ndarray]
    module_networks: dict[str, list[str]]
    nuisance_modules: list[np.ndarray]
    session_level: np.ndarray
    run_shift: np.ndarray  # (n_sessions, n_rating_runs)
    session_gain: np.ndarray
    participation: np.ndarray  # (n_sessions, n_module_parcels) bool, order A then B
    coupling_group: np.ndarray  # (n_module_parcels,) int in 0 … K − 1, order A then B
    artifact_loading: np.ndarray
    session_dates: list[str] = field(default_factory=list)

    @property
    def module_parcels(self) -> np.ndarray:
        return np.concatenate([self.modules["A"], self.modules["B"]])

    @property
    def module_signs(self) -> np.ndarray:
        return np.concatenate([np.ones(len(self.modules["A"])), -np.ones(len(self.modules["B"]))])


def _pick_module(rng, atlas: pd.DataFrame, networks, size: int, taken: set[int]) -> np.ndarray:
    """Draw ``size`` included parcels spread evenly over ``networks`` (capped by availability)."""
    pools = {}
    known = sorted(set(atlas["network"]))
    for net in networks:
        if net not in known:
            raise ParameterError(f"unknown network {net!r} in module_networks; choose from {known}")
        rows = atlas.index[(atlas["network"] == net) & atlas["included"]].to_numpy()
        rows = np.array([r for r in rows if r not in taken], dtype=int)
        if rows.size == 0:
            raise ParameterError(
                f"network {net!r} has no included parcel left for a module in this "
                f"{len(atlas)}-parcel atlas; choose other module_networks"
            )
        pools[net] = rows
    total = sum(p.size for p in pools.values())
    if total < size:
        raise ParameterError(
            f"networks {list(networks)} have only {total} free included parcels, fewer than "
            f"module_size={size}; lower module_size or add networks"
        )
    quota = {net: 0 for net in networks}
    left = size
    while left > 0:  # round-robin over networks with spare parcels
        for net in networks:
            if left and quota[net] < pools[net].size:
                quota[net] += 1
                left -= 1
    chosen = [rng.choice(pools[net], size=quota[net], replace=False) for net in networks]
    return np.sort(np.concatenate(chosen)).astype(int)


def _make_plan(config: TwinConfig, atlas: pd.DataFrame, p_index: int, seed: int) -> _Plan:
    label = config.participants[p_index]
    number = p_index + 1
    rng = _rng(seed, number, 0, 0, 0)
    nets_a, nets_b = config.module_networks[p_index]
    taken: set[int] = set()
    mod_a = _pick_module(rng, atlas, nets_a, config.module_size, taken)
    taken |= set(mod_a.tolist())
    mod_b = _pick_module(rng, atlas, nets_b, config.module_size, taken)
    taken |= set(mod_b.tolist())
    # nuisance modules: random included parcels outside the pain modules
    free = np.array([i for i in atlas.index[atlas["included"]] if i not in taken], dtype=int)
    nuisance = []
    for _ in range(config.n_nuisance_modules):
        m = min(2 * config.module_size, free.size)
        pick = np.sort(rng.choice(free, size=m, replace=False))
        nuisance.append(pick)
    n_ses = int(config.n_sessions[p_index])
    # session levels: stationary AR(1) around the participant mean
    z = rng.standard_normal(n_ses)
    level = np.empty(n_ses)
    dev = config.session_sd * z[0]
    for s in range(n_ses):
        if s > 0:
            dev = config.session_phi * dev + config.session_sd * math.sqrt(1 - config.session_phi**2) * z[s]
        level[s] = config.pain_mean[p_index] + dev
    shift = np.asarray(config.run_shift)[None, :] + config.run_shift_sd * rng.standard_normal(
        (n_ses, config.n_rating_runs)
    )
    sg = config.session_gain_sd
    gain = config.coupling_gain * np.exp(sg * rng.standard_normal(n_ses) - 0.5 * sg * sg)
    n_mod = 2 * config.module_size
    participation = rng.random((n_ses, n_mod)) >= config.module_dropout
    loading = 1.0 + 0.3 * rng.standard_normal(len(atlas))
    # coupling groups from a stream of their own, so that K = 1 leaves every other draw unchanged
    group_rng = _rng(seed, number, 0, 0, 1)
    k_sig = config.n_coupling_signals
    group = np.concatenate(
        [group_rng.permutation(np.arange(config.module_size) % k_sig) for _ in ("A", "B")]
    ).astype(int)
    # acquisition dates: every 4-10 days over months
    start = np.datetime64("2023-01-09") + np.timedelta64(28 * p_index, "D")
    gaps = np.concatenate([[0], np.cumsum(rng.integers(4, 11, size=n_ses - 1))]).astype(int)
    dates = [f"{start + np.timedelta64(int(g), 'D')}T{13 + (s % 4):02d}:00:00" for s, g in enumerate(gaps)]
    return _Plan(
        label=label,
        number=number,
        pain_mean=float(config.pain_mean[p_index]),
        modules={"A": mod_a, "B": mod_b},
        module_networks={"A": list(nets_a), "B": list(nets_b)},
        nuisance_modules=nuisance,
        session_level=level,
        run_shift=shift,
        session_gain=gain,
        participation=participation,
        coupling_group=group,
        artifact_loading=loading,
        session_dates=dates,
    )


# ====================================================================== simulators


def simulate_latent_pain(
    rng: np.random.Generator,
    config: TwinConfig,
    level: float,
    *,
    within_sd: float | None = None,
    n_pre: int | None = None,
    n_post: int = 2,
) -> np.ndarray:
    """Felt pain on the TR grid, extended by ``n_pre`` volumes before and ``n_post`` after the run.

    Returns ``clip(level + u, 0, 1)``, where u is an Ornstein–Uhlenbeck process with time constant
    ``config.within_run_tau_s`` and stationary SD ``within_sd`` (default
    ``config.within_run_sd``), sampled every TR. Element ``n_pre + k`` is the felt pain at volume
    ``k``. The default ``n_pre = lag_tr + 2`` covers the lag and the first rating samples.
    """
    within_sd = config.within_run_sd if within_sd is None else within_sd
    n_pre = config.lag_tr + 2 if n_pre is None else n_pre
    n = n_pre + config.n_volumes + n_post
    phi = math.exp(-config.tr / config.within_run_tau_s)
    if config.within_run_smooth_s > 0:
        # OU passed through an exponential smoother (felt pain has no sub-second jitter); a burn-in
        # of 8 smoothing time constants makes the start stationary, and the stationary SD is restored.
        psi = math.exp(-config.tr / config.within_run_smooth_s)
        burn = int(math.ceil(8 * config.within_run_smooth_s / config.tr))
        x = _ar1(rng, n + burn, 1, phi)[:, 0]
        y = signal.lfilter([1.0 - psi], [1.0, -psi], x, zi=[psi * x[0]])[0][burn:]
        var = (1 - psi) ** 2 * (1 + phi * psi) / ((1 - psi * psi) * (1 - phi * psi))
        u = within_sd * y / math.sqrt(var)
    else:
        u = within_sd * _ar1(rng, n, 1, phi)[:, 0]
    return np.clip(level + u, 0.0, 1.0)


def simulate_rating(
    rng: np.random.Generator,
    config: TwinConfig,
    grid_times: np.ndarray,
    felt: np.ndarray,
) -> np.ndarray:
    """A continuous-rating log like the task's: ``(n_samples, 2)`` of (time s, rating in [0, 1]).

    Parameters
    ----------
    rng : Generator
    config : TwinConfig
    grid_times, felt : ndarray
        Felt pain ``felt`` at rating-clock times ``grid_times`` (linearly interpolated between them).
        They must cover [0, ``config.rating_duration_s``].
    """
    rate = config.rating_rate_hz
    dur = config.rating_duration_s
    m_max = int(dur * rate * 1.2) + 100
    dt = (1.0 / rate) * (1.0 + config.rating_jitter * rng.standard_normal(m_max))
    dt = np.clip(dt, 0.5 / rate, None)
    dt += (rng.random(m_max) < config.rating_drop_prob) / rate
    t = rng.uniform(0.0, 1.0 / rate) + np.concatenate([[0.0], np.cumsum(dt[:-1])])
    t = t[t < dur]
    m = t.size
    f = np.interp(t, grid_times, felt)
    out = np.empty(m)
    # approach from 0: start after a reaction time, reach the felt level at t_reach
    t_reach = rng.uniform(*config.rating_reach_s)
    t_start = rng.uniform(0.2, min(0.8, 0.5 * t_reach))
    i_reach = int(np.searchsorted(t, t_reach))
    target = float(f[min(i_reach, m - 1)])
    ph = np.clip((t[:i_reach] - t_start) / (t_reach - t_start), 0.0, 1.0)
    out[:i_reach] = target * 0.5 * (1.0 - np.cos(np.pi * ph))
    # tracking: strokes towards the felt level whenever the gap exceeds the threshold
    landing = config.rating_landing_sd * rng.standard_normal(m)
    strokes = rng.uniform(*config.rating_stroke_s, size=m)
    thr = config.rating_step_threshold
    tl = t.tolist()
    fl = f.tolist()
    cur = target
    i = i_reach
    k = 0
    while i < m:
        if abs(fl[i] - cur) > thr:
            goal = min(1.0, max(0.0, fl[i] + landing[k]))
            d = float(strokes[k])
            k += 1
            j = int(np.searchsorted(t, tl[i] + d))
            frac = (t[i:j] - tl[i]) / d
            out[i:j] = cur + (goal - cur) * frac
            cur = goal
            i = max(j, i + 1)
        else:
            out[i] = cur
            i += 1
    q = config.rating_quantum
    out = np.clip(np.round(out / q) * q, 0.0, 1.0)
    return np.column_stack([t, out])


def simulate_motion(
    rng: np.random.Generator,
    config: TwinConfig,
    pain: np.ndarray,
    *,
    pain_dependent: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Six realignment parameters (mm, rad) per volume, and the event displacement per frame.

    Parameters
    ----------
    rng : Generator
    config : TwinConfig
    pain : ndarray of shape (n_volumes,)
        Felt pain at each volume; it modulates the rate of sudden movements.
    pain_dependent : bool, default=True
        False makes the movement rate that of pain 0.5 throughout (null mode). The random draws are
        the same either way.

    Returns
    -------
    motion : ndarray of shape (n_volumes, 6)
        ``trans_x, trans_y, trans_z`` (mm) and ``rot_x, rot_y, rot_z`` (rad), relative to volume 0.
    event_fd : ndarray of shape (n_volumes,)
        Unfiltered framewise displacement (mm) due to the sudden movements alone; it drives the
        shared BOLD artefact.
    """
    n = config.n_volumes
    tr = config.tr
    r = config.head_radius_mm
    tk = config.volume_times()
    mm = np.zeros((n, 6))  # all six in mm (rotations as arc on the sphere) until the end
    # slow drift: linear trend + small random walk
    slope = config.drift_mm * rng.standard_normal(6) / (n * tr)
    walk = np.cumsum(config.walk_mm * rng.standard_normal((n, 6)), axis=0)
    mm += slope[None, :] * (tk - tk[0])[:, None] + walk
    # respiration: apparent motion in z, y and pitch at ~0.3 Hz with a wandering rate
    amp = config.respiration_mm * rng.uniform(0.7, 1.3)
    f_wander = 1.0 + 0.08 * _ar1(rng, n, 1, math.exp(-tr / 30.0))[:, 0]
    phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.cumsum(config.respiration_hz * f_wander * tr)
    resp = amp * np.sin(phase)
    mm[:, 2] += resp
    mm[:, 1] += 0.4 * resp
    mm[:, 3] += 0.5 * resp
    mm += config.motion_noise_mm * rng.standard_normal((n, 6))
    # sudden movements: thinned Poisson process (same draws whatever the pain)
    r0 = config.motion_event_rate_per_min / 60.0
    beta = config.motion_pain_slope
    r_max = r0 * math.exp(beta * 0.5)
    span = n * tr
    n_cand = int(rng.poisson(r_max * span))
    onset = np.sort(rng.uniform(tk[0] - tr, tk[-1], size=n_cand))
    accept_u = rng.random(n_cand)
    size = config.motion_event_median_mm * np.exp(config.motion_event_log_sd * rng.standard_normal(n_cand))
    direction = rng.standard_normal((n_cand, 6)) * np.array([0.7, 1.0, 1.2, 1.2, 0.6, 0.6])
    direction /= np.abs(direction).sum(axis=1, keepdims=True)
    rise = rng.uniform(0.5, 1.5, n_cand)
    hold = rng.uniform(1.0, 20.0, n_cand)
    back = rng.uniform(1.0, 3.0, n_cand)
    ret = rng.uniform(*config.motion_return, size=n_cand)
    p_at = np.interp(onset, tk, pain) if pain_dependent else np.full(n_cand, 0.5)
    keep = accept_u < (r0 * np.exp(beta * (p_at - 0.5))) / r_max
    events = np.zeros((n, 6))
    for j in np.flatnonzero(keep):
        s = tk - onset[j]
        up = 0.5 * (1 - np.cos(np.pi * np.clip(s / rise[j], 0, 1)))
        down = 0.5 * (1 - np.cos(np.pi * np.clip((s - rise[j] - hold[j]) / back[j], 0, 1)))
        prof = up - ret[j] * down
        events += np.outer(prof, size[j] * direction[j])
    mm += events
    event_fd = np.zeros(n)
    event_fd[1:] = np.abs(np.diff(events, axis=0)).sum(axis=1)
    mm -= mm[0]
    motion = mm.copy()
    motion[:, 3:] /= r
    return motion, event_fd


# ====================================================================== one run


@dataclass
class _RunData:
    pain: np.ndarray  # (n_volumes,)
    rating: np.ndarray | None  # (n_samples, 2)
    motion: np.ndarray  # (n_volumes, 6)
    bold: np.ndarray  # (n_volumes, n_parcels)


def _simulate_run(
    config: TwinConfig,
    plan: _Plan,
    net_index: np.ndarray,
    n_networks: int,
    s_index: int,
    run: int | None,
    seed: int,
    null: bool,
) -> _RunData:
    session = s_index + 1
    code = _REST_RUN_CODE if run is None else run
    key = (plan.number, session, code)
    n = config.n_volumes
    lag = config.lag_tr
    n_pre = lag + 2
    # -- latent pain on the extended TR grid
    if run is None:
        level, within = plan.session_level[s_index], config.rest_within_sd
    else:
        level = plan.session_level[s_index] + plan.run_shift[s_index, run - 1]
        within = config.within_run_sd
    pain_ext = simulate_latent_pain(
        _rng(seed, *key, _STREAM_PAIN), config, level, within_sd=within, n_pre=n_pre
    )
    pain = pain_ext[n_pre : n_pre + n]
    pain_lagged = pain_ext[n_pre - lag : n_pre - lag + n]
    # -- rating
    rating = None
    if run is not None:
        grid = config.first_volume_time + config.tr * np.arange(-n_pre, len(pain_ext) - n_pre)
        rating = simulate_rating(_rng(seed, *key, _STREAM_RATING), config, grid, pain_ext)
    # -- motion
    motion, event_fd = simulate_motion(
        _rng(seed, *key, _STREAM_MOTION), config, pain, pain_dependent=not null
    )
    # -- BOLD
    rng = _rng(seed, *key, _STREAM_BOLD)
    n_parc = net_index.size
    phi = config.ar_phi
    g = _ar1(rng, n, 1, phi)
    fac = _ar1(rng, n, n_networks, phi)
    noise = _ar1(rng, n, n_parc, phi)
    c = _ar1(rng, n, config.n_coupling_signals, phi)  # (n, K); K = 1 draws what the probe drew
    n_nuis = len(plan.nuisance_modules)
    c_nuis = _ar1(rng, n, n_nuis, phi) if n_nuis else None
    u_nuis = None
    if n_nuis:  # pain-unrelated coupling states: OU around 0.5 like the within-run pain
        phi_u = math.exp(-config.tr / config.within_run_tau_s)
        u_nuis = np.clip(0.5 + config.within_run_sd * _ar1(rng, n, n_nuis, phi_u), 0, 1)
    bold = config.noise_amplitude * noise + config.global_amplitude * g
    has_net = net_index >= 0
    bold[:, has_net] += config.network_amplitude * fac[:, net_index[has_net]]
    if not null:
        parcels = plan.module_parcels
        part = plan.participation[s_index]
        signs = plan.module_signs * part
        amp = np.sqrt(plan.session_gain[s_index] * pain_lagged)[:, None] * c[:, plan.coupling_group]
        bold[:, parcels] += amp * signs[None, :]
        if config.univariate_gain:
            bold[:, parcels] += config.univariate_gain * pain_lagged[:, None] * signs[None, :]
    for m, mod in enumerate(plan.nuisance_modules):
        half = mod.size // 2
        sgn = np.concatenate([np.ones(half), -np.ones(mod.size - half)])
        amp = np.sqrt(config.nuisance_gain * u_nuis[:, m]) * c_nuis[:, m]
        bold[:, mod] += amp[:, None] * sgn[None, :]
    bold += config.motion_artifact_gain * event_fd[:, None] * plan.artifact_loading[None, :]
    return _RunData(pain=pain, rating=rating, motion=motion, bold=bold)


# ====================================================================== writers


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def _write_json(path: Path, obj) -> None:
    _write_text(path, json.dumps(obj, indent=2) + "\n")


def _format_matrix(arr: np.ndarray, fmt: str | list[str]) -> str:
    """Rows of ``arr`` as tab-separated lines, every column formatted with ``fmt`` (one C-level call)."""
    arr = np.asarray(arr)
    fmts = [fmt] * arr.shape[1] if isinstance(fmt, str) else list(fmt)
    row_fmt = "\t".join(fmts) + "\n"
    return (row_fmt * arr.shape[0]) % tuple(arr.ravel().tolist())


def _write_tsv_gz(path: Path, header: list[str], arr: np.ndarray, fmt: str, level: int) -> None:
    text = "\t".join(header) + "\n" + _format_matrix(arr, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(text.encode("ascii"), compresslevel=level, mtime=0))


def _written(values: np.ndarray, fmt: str) -> np.ndarray:
    """The values as a reader will parse them back from ``fmt``."""
    values = np.asarray(values, dtype=float)
    text = ((fmt + " ") * values.size) % tuple(values.ravel().tolist())
    return np.array(text.split(), dtype=float).reshape(values.shape)


_CONFOUND_DESCRIPTIONS = {
    "trans_x": {"Description": "Translation along x relative to the first volume", "Units": "mm"},
    "trans_y": {"Description": "Translation along y relative to the first volume", "Units": "mm"},
    "trans_z": {"Description": "Translation along z relative to the first volume", "Units": "mm"},
    "rot_x": {"Description": "Rotation about x relative to the first volume", "Units": "rad"},
    "rot_y": {"Description": "Rotation about y relative to the first volume", "Units": "rad"},
    "rot_z": {"Description": "Rotation about z relative to the first volume", "Units": "rad"},
    "framewise_displacement": {
        "Description": (
            "Censoring FD: motion parameters low-pass filtered (2nd-order Butterworth, 0.1 Hz, "
            "MATLAB filtfilt padding), rotations as arc on a 50-mm sphere, sum of absolute "
            "frame-to-frame differences, first frame 0"
        ),
        "Units": "mm",
    },
    "censor": {"Description": "1 = keep the frame (FD <= 0.15 mm), 0 = censor it"},
}


def _run_entities(plan: _Plan, session: int, run: int | None) -> str:
    task = "task-rest" if run is None else f"task-rating_run-{run}"
    return f"sub-{plan.label}_ses-{session:02d}_{task}"


def _write_run(
    root: Path,
    config: TwinConfig,
    plan: _Plan,
    session: int,
    run: int | None,
    data: _RunData,
    parcel_names: list[str],
) -> dict:
    """Write one run's raw, derivative and ground-truth files; return a few summary numbers."""
    ses = f"ses-{session:02d}"
    sub = f"sub-{plan.label}"
    stem = _run_entities(plan, session, run)
    task = "rest" if run is None else "rating"
    raw_func = root / sub / ses / "func"
    der_func = root / "derivatives" / PIPELINE_NAME / sub / ses / "func"
    gt_dir = root / "derivatives" / GROUNDTRUTH_PIPELINE_NAME / sub / ses
    # raw
    _write_json(raw_func / f"{stem}_bold.json", {"RepetitionTime": config.tr, "TaskName": task})
    if data.rating is not None:
        _write_text(
            raw_func / f"{stem}_resp.tsv",
            _format_matrix(data.rating, ["%.4f", "%.3f"]),
        )
    # derivatives: time series
    atlas = config.atlas_name
    _write_tsv_gz(
        der_func / f"{stem}_atlas-{atlas}_timeseries.tsv.gz",
        parcel_names,
        data.bold,
        config.float_format,
        config.gzip_level,
    )
    _write_json(
        der_func / f"{stem}_atlas-{atlas}_timeseries.json",
        {
            "RepetitionTime": config.tr,
            "TaskName": task,
            "Atlas": atlas,
            "Description": "SIMULATED parcel time series of the deipp_core digital twin "
            "(arbitrary units; one row per volume after dummy removal, columns in atlas order)",
        },
    )
    # derivatives: confounds (FD and censor computed from the values as written)
    motion = _written(data.motion, "%.6g")
    fd = _written(
        framewise_displacement(motion, config.tr, config.fd_lowpass_hz, config.head_radius_mm), "%.6g"
    )
    keep = censor_mask(fd, config.censor_threshold_mm)
    table = np.column_stack([motion, fd, keep.astype(float)])
    _write_text(
        der_func / f"{stem}_desc-confounds_timeseries.tsv",
        "\t".join([*MOTION_COLUMNS, "framewise_displacement", "censor"]) + "\n"
        + _format_matrix(table, ["%.6g"] * 7 + ["%d"]),
    )
    _write_json(der_func / f"{stem}_desc-confounds_timeseries.json", _CONFOUND_DESCRIPTIONS)
    # ground truth: latent pain per volume
    _write_text(
        gt_dir / f"{stem}_desc-latentpain_timeseries.tsv",
        "pain\n" + _format_matrix(data.pain[:, None], "%.6g"),
    )
    return {"censored": int((~keep).sum()), "frames": int(keep.size)}


def _simulate_and_write_session(
    root: Path,
    config: TwinConfig,
    plan: _Plan,
    net_index: np.ndarray,
    n_networks: int,
    parcel_names: list[str],
    s_index: int,
    seed: int,
    null: bool,
) -> dict:
    session = s_index + 1
    runs: list[int | None] = [None] if config.include_rest else []
    runs += list(range(1, config.n_rating_runs + 1))
    out = {"censored": 0, "frames": 0}
    for run in runs:
        data = _simulate_run(config, plan, net_index, n_networks, s_index, run, seed, null)
        summary = _write_run(root, config, plan, session, run, data, parcel_names)
        out["censored"] += summary["censored"]
        out["frames"] += summary["frames"]
    return out


def _planted_edges(config: TwinConfig, plan: _Plan, null: bool) -> pd.DataFrame:
    parcels = plan.module_parcels
    signs = plan.module_signs
    order = np.argsort(parcels, kind="stable")
    parcels, signs, group = parcels[order], signs[order], plan.coupling_group[order]
    ii, jj = np.triu_indices(parcels.size, 1)
    same = group[ii] == group[jj]  # parcels of different coupling groups share no signal
    ii, jj = ii[same], jj[same]
    weight = config.coupling_gain * (1.0 - config.module_dropout) ** 2
    df = pd.DataFrame(
        {
            "parcel_i": parcels[ii].astype(int),
            "parcel_j": parcels[jj].astype(int),
            "sign": (signs[ii] * signs[jj]).astype(int),
            "weight": np.full(ii.size, weight),
        }
    )
    if null:
        df = df.iloc[:0]
    return df.sort_values(["parcel_i", "parcel_j"], kind="stable").reset_index(drop=True)


def _write_ground_truth(
    root: Path, config: TwinConfig, plan: _Plan, atlas: pd.DataFrame, seed: int, null: bool
) -> None:
    gt = root / "derivatives" / GROUNDTRUTH_PIPELINE_NAME / f"sub-{plan.label}"
    edges = _planted_edges(config, plan, null)
    lines = ["parcel_i\tparcel_j\tsign\tweight"] + [
        f"{i}\t{j}\t{s}\t{w:.6g}" for i, j, s, w in edges.itertuples(index=False)
    ]
    _write_text(gt / f"sub-{plan.label}_desc-groundtruth_edges.tsv", "\n".join(lines) + "\n")
    names = atlas["name"].tolist()
    sessions = [f"{s + 1:02d}" for s in range(len(plan.session_level))]
    mod_list = plan.module_parcels.tolist()
    info = {
        "participant": plan.label,
        "null": bool(null),
        "seed": int(seed),
        "atlas": config.atlas_name,
        "lag_tr": int(config.lag_tr),
        "lag_s": round(config.lag_tr * config.tr, 6),
        "gain": 0.0 if null else float(config.coupling_gain),
        "edge_weight": "expected covariance (in units of the unit-variance sources) added to the "
        "edge per unit of latent pain, lagged by lag_tr; sign +1 within module A and within "
        "module B, -1 between them; 0 for every edge in null mode (no edges listed)",
        "modules": {k: v.astype(int).tolist() for k, v in plan.modules.items()},
        "module_names": {k: [names[i] for i in v] for k, v in plan.modules.items()},
        "module_networks": plan.module_networks,
        "module_signs": {"A": 1, "B": -1},
        "n_coupling_signals": int(config.n_coupling_signals),
        "coupling_groups": [
            sorted(int(p) for p in plan.module_parcels[plan.coupling_group == k])
            for k in range(config.n_coupling_signals)
        ],
        "networks": sorted({n for v in plan.module_networks.values() for n in v}),
        "n_planted_edges": 0 if null else int(len(edges)),
        "session_gain_sd": float(config.session_gain_sd),
        "session_gain": {s: (0.0 if null else float(g)) for s, g in zip(sessions, plan.session_gain)},
        "module_dropout": float(config.module_dropout),
        "session_participation": {
            s: [p for p, on in zip(mod_list, plan.participation[k]) if on] for k, s in enumerate(sessions)
        },
        "nuisance_modules": [m.astype(int).tolist() for m in plan.nuisance_modules],
        "nuisance_gain": float(config.nuisance_gain) if plan.nuisance_modules else 0.0,
        "univariate_gain": 0.0 if null else float(config.univariate_gain),
        "pain_mean": plan.pain_mean,
        "session_level": {s: round(float(v), 6) for s, v in zip(sessions, plan.session_level)},
        "run_shift": {
            s: [round(float(v), 6) for v in plan.run_shift[k]] for k, s in enumerate(sessions)
        },
        "motion_pain_coupled": not null,
    }
    _write_json(gt / f"sub-{plan.label}_desc-groundtruth.json", info)


_README = """\
DEIPP digital twin -- SIMULATED DATA
====================================

Every number in this data set is SIMULATED. It was generated by the digital twin of
deipp_core (the DEIPP living paper), a seeded simulator of the study

  Lee, Jo, Cho & Woo (2026). Personalized brain decoding of spontaneous pain in individuals
  with chronic pain. Nature Neuroscience.

and says nothing about the study's participants. The layout mirrors OpenNeuro ds006815
(two participants, sessions of three 10-min continuous pain-rating runs and one rest run,
TR 0.46 s), but no images are simulated: the raw folders hold the rating logs (_resp.tsv) and
BOLD sidecars only, and derivatives/{pipeline} holds parcel time series (Seitzman 300-ROI
coordinates bundled with nilearn) and confounds.

The ground truth (which edges encode pain, their sign and strength, the 13-TR lag, and the
latent pain per volume) is in derivatives/{gt}/. dataset_description.json (DeippTwin) records
the seed and every setting of the generator.

Seed: {seed}; scale: {scale}; null mode (no pain signal): {null}.
"""


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def generate_twin(
    root: str | Path,
    config: TwinConfig | None = None,
    *,
    seed: int = 0,
    null: bool = False,
    overwrite: bool = False,
    n_jobs: int | None = 1,
) -> Path:
    """Simulate the study and write it as a BIDS data set at ``root``, with its ground truth.

    Parameters
    ----------
    root : path
        Folder to create (its parent is created if needed).
    config : TwinConfig, optional
        Settings; default :meth:`TwinConfig.paper`.
    seed : int, default=0
        Seed of every random draw; the same seed gives byte-identical files.
    null : bool, default=False
        Write the same data with no pain signal in the brain (see the module docstring).
    overwrite : bool, default=False
        Replace an existing ``root``. The old content stays intact until the new twin is complete.
    n_jobs : int or None, default=1
        Sessions simulated in parallel (joblib; ``-1`` for all cores). The output does not depend on it.

    Returns
    -------
    Path
        ``root``.

    Raises
    ------
    FileExistsError
        If ``root`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> from deipp_core.data.twin import TwinConfig, generate_twin
    >>> root = generate_twin(tmp / "twin", TwinConfig.quick(n_sessions=(1, 1)), seed=1)  # doctest: +SKIP
    """
    root = Path(root)
    config = TwinConfig.paper() if config is None else config
    if not isinstance(config, TwinConfig):
        raise ParameterError(f"config must be a TwinConfig; got {type(config).__name__}")
    if root.exists() and not overwrite:
        raise FileExistsError(f"{root} already exists; pass overwrite=True to replace it")
    root.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    tmp = root.parent / f".{root.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    logger.info(
        "Generating the digital twin (%s scale, seed %d%s) into %s",
        config.scale, seed, ", NULL mode" if null else "", root,
    )
    try:
        _generate_into(tmp, config, seed=seed, null=null, n_jobs=n_jobs)
        if root.exists():
            old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(root, old)
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info(
        "Digital twin written to %s in %.1f s (%.0f MB)",
        root, time.perf_counter() - t_start, _dir_size(root) / 1e6,
    )
    return root


def _generate_into(root: Path, config: TwinConfig, *, seed: int, null: bool, n_jobs: int | None) -> None:
    from joblib import Parallel, delayed

    atlas = seitzman_atlas() if config.n_parcels is None else seitzman_subset(config.n_parcels)
    names = atlas["name"].tolist()
    networks = sorted(n for n in atlas["network"].unique() if n != "unassigned")
    net_pos = {n: k for k, n in enumerate(networks)}
    net_index = np.array([net_pos.get(n, -1) for n in atlas["network"]], dtype=int)
    plans = [_make_plan(config, atlas, p, seed) for p in range(len(config.participants))]
    if len(plans) > 1:
        used = [set(n for m in pl.module_networks.values() for n in m) for pl in plans]
        for a in range(len(used)):
            for b in range(a + 1, len(used)):
                if used[a] & used[b]:
                    logger.warning(
                        "participants %s and %s share pain networks %s; their models may cross-predict",
                        plans[a].label, plans[b].label, sorted(used[a] & used[b]),
                    )
    # top-level files
    description = {
        "Name": "DEIPP digital twin (SIMULATED data laid out like OpenNeuro ds006815)",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "License": "CC0",
        "Authors": ["deipp_core digital twin"],
        "GeneratedBy": [
            {
                "Name": "deipp_core digital twin",
                "Version": __version__,
                "Description": "Seeded simulator of the DEIPP study with known ground truth "
                "(deipp_core.data.twin.generate_twin). All data are simulated.",
            }
        ],
        "ReferencesAndLinks": [
            "Lee, Jo, Cho & Woo (2026), Personalized brain decoding of spontaneous pain in "
            "individuals with chronic pain, Nature Neuroscience",
            "https://openneuro.org/datasets/ds006815",
        ],
        "DeippTwin": {
            "seed": int(seed),
            "scale": config.scale,
            "null": bool(null),
            "atlas": config.atlas_name,
            "config": dataclasses.asdict(config),
        },
    }
    _write_json(root / "dataset_description.json", description)
    _write_text(
        root / "participants.tsv",
        "participant_id\n" + "".join(f"sub-{p}\n" for p in config.participants),
    )
    _write_text(
        root / "README",
        _README.format(
            pipeline=PIPELINE_NAME, gt=GROUNDTRUTH_PIPELINE_NAME, seed=seed, scale=config.scale, null=null
        ),
    )
    generated_by = description["GeneratedBy"]
    der = root / "derivatives" / PIPELINE_NAME
    _write_json(
        der / "dataset_description.json",
        {
            "Name": "DEIPP digital twin: parcel time series and confounds (SIMULATED)",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": generated_by,
        },
    )
    write_atlas_tsv(atlas, der / f"atlas-{config.atlas_name}_dseg.tsv")
    gtd = root / "derivatives" / GROUNDTRUTH_PIPELINE_NAME
    _write_json(
        gtd / "dataset_description.json",
        {
            "Name": "DEIPP digital twin: ground truth of the planted pain encoding (SIMULATED)",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": generated_by,
        },
    )
    for plan in plans:
        _write_text(
            root / f"sub-{plan.label}" / f"sub-{plan.label}_sessions.tsv",
            "session_id\tacq_time\n"
            + "".join(f"ses-{k + 1:02d}\t{d}\n" for k, d in enumerate(plan.session_dates)),
        )
        _write_ground_truth(root, config, plan, atlas, seed, null)
    # runs, streamed one session at a time
    jobs = [(plan, s) for plan in plans for s in range(len(plan.session_level))]
    results = []
    outputs = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_simulate_and_write_session)(
            root, config, plan, net_index, len(networks), names, s, seed, null
        )
        for plan, s in jobs
    )
    for k, ((plan, s), res) in enumerate(zip(jobs, outputs), start=1):
        results.append(res)
        logger.info("sub-%s ses-%02d written (%d/%d sessions)", plan.label, s + 1, k, len(jobs))
    for plan in plans:
        res = [r for (pl, _), r in zip(jobs, results) if pl is plan]
        cens = sum(r["censored"] for r in res)
        frames = sum(r["frames"] for r in res)
        logger.info(
            "sub-%s: %d sessions written, %.1f %% of frames censored",
            plan.label, len(res), 100.0 * cens / max(frames, 1),
        )
