"""Univariate GLM of pain ratings (paper's supplementary univariate maps; methods §12).

First level (``analysis_univariate_rating_firstlevel.m``), one GLM per session:

* Y: the time series of every parcel (the original uses the 91k grayordinates of the non-denoised,
  6-mm-smoothed CIFTI; on the digital twin and on parcel-wise derivatives the **parcel time series
  play the role of the grayordinates**), frames ``[n_trim : n_volumes]`` of the three rating runs,
  stacked;
* regressor of interest: the rating on the TR grid (``rating_dat_orig``) convolved with the SPM
  canonical HRF (:func:`spm_hrf`), truncated causally to the run length, frames ``[n_trim :]`` kept,
  concatenated over runs into **one column** — one rating β per session. There is no 13-TR lag: the
  HRF replaces it;
* nuisance, block-diagonal per run: intercept and linear trend, the six realignment parameters and one
  spike regressor per censored frame (the original's ``ort`` matrix also holds 0.005-Hz high-pass
  sinusoids and 10 CompCor components, which parcel-wise derivatives do not provide); all-zero
  columns dropped;
* β by least squares; only the rating β is kept.

Second level (``analysis_univariate_rating_secondlevel.m``): a one-sample t-test across the session
βs of each parcel (df = S − 1, two-sided) and Benjamini–Hochberg FDR at q = 0.05 over all parcels
(:func:`deipp_core.stats.benjamini_hochberg`, ``fdr_bh`` 'pdep').
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from threadpoolctl import threadpool_limits

from deipp_core.data.dataset import MOTION_COLUMNS, Participant, Run
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.ratings import RatingParams, resample_to_tr
from deipp_core.stats import benjamini_hochberg

__all__ = [
    "spm_hrf",
    "rating_regressor",
    "session_design",
    "first_level",
    "second_level",
    "fdr_thresholds",
    "network_counts",
    "UnivariateResult",
    "run_univariate",
    "univariate_summary",
    "twin_univariate_note",
]

logger = logging.getLogger(__name__)


def spm_hrf(tr: float, *, length_s: float = 32.0) -> np.ndarray:
    """The SPM canonical haemodynamic response sampled every ``tr`` seconds (``spm_hrf`` defaults).

    h(t) = Γpdf(t; 6, 1) − Γpdf(t; 16, 1)/6 at t = 0, TR, 2·TR, … ≤ ``length_s``, normalised to sum 1
    (methods §12.1, §16.18). It peaks about 5 s after the event and undershoots after ~10 s.

    Parameters
    ----------
    tr : float
        Repetition time in seconds.
    length_s : float, default=32
        Kernel length in seconds.

    Returns
    -------
    ndarray of shape (floor(length_s / tr) + 1,)

    Examples
    --------
    >>> h = spm_hrf(0.46)
    >>> round(float(h.sum()), 12), round(float(h.argmax() * 0.46), 2)
    (1.0, 5.06)
    """
    if not (np.isfinite(tr) and tr > 0):
        raise ParameterError(f"tr must be a positive number of seconds; got {tr!r}")
    if not (np.isfinite(length_s) and length_s >= tr):
        raise ParameterError(f"length_s must be at least one TR ({tr} s); got {length_s!r}")
    t = np.arange(int(np.floor(length_s / tr + 1e-9)) + 1) * tr
    h = sps.gamma.pdf(t, 6.0, scale=1.0) - sps.gamma.pdf(t, 16.0, scale=1.0) / 6.0
    return h / h.sum()


def rating_regressor(run: Run, params: RatingParams = RatingParams()) -> np.ndarray:
    """The HRF-convolved rating of one rating run on its full volume grid (length ``n_volumes``).

    ``rating_dat_orig`` (:func:`~deipp_core.ratings.resample_to_tr`) convolved with
    :func:`spm_hrf` and truncated causally (``conv(...)[:n_volumes]``).

    Raises
    ------
    DataFormatError
        If the run has no rating, or the rating is missing (NaN) at a volume the GLM uses
        (``n_trim`` onwards, or any earlier volume that feeds them through the HRF).
    """
    where = f"{run.key} ({run.source or 'no source recorded'})"
    if run.rating is None:
        raise DataFormatError(f"{where} has no continuous rating; the univariate GLM needs a rating run")
    rating = resample_to_tr(run.rating, run.n_volumes, run.tr, params.tdummy_s)
    if np.isnan(rating).any():
        bad = np.flatnonzero(np.isnan(rating))
        raise DataFormatError(
            f"{where}: the rating is missing at {bad.size} volume(s) (first {bad[:5].tolist()}); the "
            "HRF convolution needs the rating at every volume. Check the rating file's time range"
        )
    return np.convolve(rating, spm_hrf(run.tr))[: run.n_volumes]


def session_design(
    runs: Sequence[Run], params: RatingParams = RatingParams(), *, n_parcels: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Design matrix and data of one session's GLM (methods §12.1).

    Parameters
    ----------
    runs : sequence of Run
        The session's rating runs.
    params : RatingParams, optional
        Gives the trim (frames ``[n_trim : n_volumes]`` of each run are used).
    n_parcels : int, optional
        Expected number of columns of each time series (checked when given).

    Returns
    -------
    X : ndarray of shape (T, 1 + k)
        Column 0: the HRF-convolved rating, concatenated over runs. Then, block-diagonal per run:
        intercept, linear trend (centred, unit range), the six realignment parameters, and one spike
        regressor (1 at that frame, 0 elsewhere) per censored frame. All-zero columns are dropped.
    Y : ndarray of shape (T, n_parcels)
        The parcel time series at the same frames, stacked over runs.
    """
    if not runs:
        raise DataFormatError("a session GLM needs at least one rating run")
    reg, blocks, ys = [], [], []
    for run in runs:
        first = params.n_trim(run.tr)
        n = run.n_volumes - first
        where = f"{run.key} ({run.source or 'no source recorded'})"
        if n <= 2:
            raise DataFormatError(f"{where}: {run.n_volumes} volumes leave {n} after the {first}-volume trim")
        ts = np.asarray(run.timeseries, dtype=float)
        if n_parcels is not None and ts.shape[1] != n_parcels:
            raise DataFormatError(f"{where}: the time series has {ts.shape[1]} parcels; expected {n_parcels}")
        missing = [c for c in MOTION_COLUMNS if c not in run.confounds.columns]
        if missing:
            raise DataFormatError(f"{where}: the confounds lack the motion columns {missing}")
        reg.append(rating_regressor(run, params)[first:])
        ys.append(ts[first:])
        trend = np.linspace(-0.5, 0.5, n)
        motion = run.confounds.loc[:, list(MOTION_COLUMNS)].to_numpy(float)[first:]
        spikes = np.flatnonzero(~run.censor[first:])
        S = np.zeros((n, spikes.size))
        S[spikes, np.arange(spikes.size)] = 1.0
        blocks.append(np.column_stack([np.ones(n), trend, motion, S]))
    T = sum(b.shape[0] for b in blocks)
    nuis = np.zeros((T, sum(b.shape[1] for b in blocks)))
    r0 = c0 = 0
    for b in blocks:
        nuis[r0:r0 + b.shape[0], c0:c0 + b.shape[1]] = b
        r0, c0 = r0 + b.shape[0], c0 + b.shape[1]
    X = np.column_stack([np.concatenate(reg), nuis])
    X = X[:, np.any(X != 0, axis=0)]
    Y = np.concatenate(ys)
    if not np.isfinite(Y).all():
        raise DataFormatError(
            f"ses-{runs[0].session}: non-finite values in the parcel time series after the trim"
        )
    return X, Y


def first_level(participant: Participant, params: RatingParams = RatingParams()) -> pd.DataFrame:
    """Rating β of every parcel in every session (one least-squares GLM per session, §12.1).

    Parameters
    ----------
    participant : Participant
    params : RatingParams, optional

    Returns
    -------
    DataFrame of shape (n_sessions, n_parcels)
        Index: session labels (sorted); columns: atlas row positions 0…P−1 (all parcels, including
        those the decoder leaves out).
    """
    n_parcels = len(participant.atlas)
    betas = {}
    # The designs are small (a few thousand frames × ~150 columns): multi-threaded BLAS only adds
    # overhead here, and oversubscribes the cores when other jobs run (measured: 0.25 s vs 23 s for
    # 11 sessions on a loaded 2-core machine).
    with threadpool_limits(limits=1):
        for session in participant.sessions:
            X, Y = session_design(participant.rating_runs(session), params, n_parcels=n_parcels)
            beta, _, rank, _ = np.linalg.lstsq(X, Y, rcond=None)
            if rank < X.shape[1]:
                logger.warning("sub-%s ses-%s: the GLM design is rank-deficient (%d of %d columns); "
                               "the minimum-norm least-squares solution is used (MATLAB backslash "
                               "would give a basic one)", participant.label, session, rank, X.shape[1])
            betas[session] = beta[0]
    return pd.DataFrame.from_dict(betas, orient="index", columns=range(n_parcels))


def second_level(betas: pd.DataFrame, atlas: pd.DataFrame | None = None, *, q: float = 0.05) -> pd.DataFrame:
    """One-sample t-test of the session βs of every parcel, with Benjamini–Hochberg FDR (§12.2).

    Parameters
    ----------
    betas : DataFrame of shape (n_sessions, n_parcels)
        From :func:`first_level`.
    atlas : DataFrame, optional
        The participant's atlas (same parcel order); its ``index``, ``name``, ``network``, ``x``,
        ``y``, ``z`` and ``included`` columns are carried into the result.
    q : float, default=0.05
        FDR level, over all parcels together.

    Returns
    -------
    DataFrame
        One row per parcel: the atlas columns, ``mean_beta``, ``t``, ``p`` (two-sided, df = S − 1),
        ``p_fdr`` (BH-adjusted) and ``significant`` (p ≤ the BH critical p).
    """
    B = betas.to_numpy(float)
    if B.shape[0] < 2:
        raise ParameterError(f"the second level needs at least 2 sessions; got {B.shape[0]}")
    t, p = sps.ttest_1samp(B, 0.0, axis=0)
    t, p = np.asarray(t, float), np.asarray(p, float)
    ok = np.isfinite(p)
    fdr = benjamini_hochberg(p[ok] if ok.any() else np.ones(1), q)
    sig = np.zeros(p.shape, dtype=bool)
    adj = np.full(p.shape, np.nan)
    if ok.any():
        sig[ok], adj[ok] = fdr.h, fdr.adj_p
    out = pd.DataFrame({"mean_beta": B.mean(axis=0), "t": t, "p": p, "p_fdr": adj, "significant": sig})
    if atlas is not None:
        if len(atlas) != B.shape[1]:
            raise DataFormatError(f"the atlas has {len(atlas)} parcels but the βs have {B.shape[1]}")
        cols = [c for c in ("index", "name", "network", "x", "y", "z", "included") if c in atlas.columns]
        out = pd.concat([atlas[cols].reset_index(drop=True), out], axis=1)
    out.attrs["crit_p"] = fdr.crit_p if ok.any() else 0.0
    out.attrs["q"] = q
    out.attrs["n_sessions"] = int(B.shape[0])
    return out


def fdr_thresholds(table: pd.DataFrame) -> tuple[float, float]:
    """The display thresholds of the original: (max t among significant negatives, min t among
    significant positives); NaN where a side has no significant parcel."""
    sig = table["significant"].to_numpy(bool)
    t = table["t"].to_numpy(float)
    neg, pos = t[sig & (t < 0)], t[sig & (t > 0)]
    return (float(neg.max()) if neg.size else float("nan"), float(pos.min()) if pos.size else float("nan"))


def network_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per network: parcels with significant positive t, not significant, significant negative t
    (the original's pie charts), and the mean t."""
    t = table["t"].to_numpy(float)
    sig = table["significant"].to_numpy(bool)
    d = pd.DataFrame({"network": table["network"].to_numpy(), "positive": sig & (t > 0),
                      "n.s.": ~sig, "negative": sig & (t < 0), "t": t})
    out = d.groupby("network", sort=False).agg(
        parcels=("t", "size"), positive=("positive", "sum"), ns=("n.s.", "sum"),
        negative=("negative", "sum"), mean_t=("t", "mean"))
    return out.rename(columns={"ns": "n.s."})


@dataclass
class UnivariateResult:
    """First and second level of one participant.

    Attributes
    ----------
    participant : str
    betas : DataFrame of shape (n_sessions, n_parcels)
    table : DataFrame
        :func:`second_level` result.
    networks : DataFrame
        :func:`network_counts` result.
    thresholds : tuple of float
        :func:`fdr_thresholds` result.
    """

    participant: str
    betas: pd.DataFrame
    table: pd.DataFrame
    networks: pd.DataFrame
    thresholds: tuple[float, float]

    @property
    def n_significant(self) -> int:
        """Parcels surviving FDR."""
        return int(self.table["significant"].sum())


def run_univariate(participant: Participant, params: RatingParams = RatingParams(), *,
                   q: float = 0.05) -> UnivariateResult:
    """First and second level of the univariate rating GLM for one participant (§12)."""
    betas = first_level(participant, params)
    table = second_level(betas, participant.atlas, q=q)
    return UnivariateResult(participant.label, betas, table, network_counts(table), fdr_thresholds(table))


def univariate_summary(results: Mapping[str, UnivariateResult]) -> str:
    """One clause per participant: parcels surviving FDR (positive / negative) and the largest |t|."""
    parts = []
    for name, res in results.items():
        t = res.table["t"].to_numpy(float)
        sig = res.table["significant"].to_numpy(bool)
        k = int(np.nanargmax(np.abs(t)))
        top = res.table.iloc[k]
        label = f"{top['name']} ({top['network']})" if "name" in res.table else f"parcel {k}"
        parts.append(
            f"{name} ({len(res.betas)} sessions): {int(sig.sum())} of {len(t)} parcels survive FDR "
            f"q = {res.table.attrs.get('q', 0.05):g} ({int((sig & (t > 0)).sum())} positive, "
            f"{int((sig & (t < 0)).sum())} negative); the largest |t| is {t[k]:.2f} in {label}"
        )
    return "; ".join(parts) + "."


def twin_univariate_note(dataset) -> str:
    """What the data set plants in the mean activity of regions (a sentence for the book).

    Parameters
    ----------
    dataset : Dataset

    Returns
    -------
    str
        For the twin: whether a univariate pain effect was planted (ground truth ``univariate_gain``)
        besides the co-fluctuation effect; for real data, an empty string.
    """
    if not dataset.is_simulated:
        return ""
    gains = {l: float(t.get("meta", {}).get("univariate_gain", 0.0)) for l, t in dataset.ground_truth.items()}
    if not any(gains.values()):
        return ("On this twin the contrast is built in: pain is planted only in the co-fluctuation of two "
                "modules of regions (their variance grows with pain, their mean does not), so the "
                "univariate maps show what a null looks like, apart from what motion and chance leave.")
    parts = ", ".join(f"sub-{l}: {g:g}" for l, g in sorted(gains.items()))
    return ("On this twin a univariate effect was planted too (the module regions' mean activity moves "
            f"with pain, gain {parts}), so the maps should find the module regions.")
