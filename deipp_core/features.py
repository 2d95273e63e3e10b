"""The per-participant feature table: bin-mean edge co-fluctuations of every run.

:func:`participant_features` reproduces ``analysis_predict_rating_feature.m`` (methods spec
``reference/deipp_methods.md`` §8) for one participant, plus the rows the evaluation and the rest
control need:

* ``rbin10`` — rating-decile bins (the decoder's training rows, §9.1);
* ``tbin10`` / ``tbin5`` — the "1-min" and "2-min" time bins (evaluation units, §10.2);
* ``run`` — the mean over all kept frames of a run (level 3);
* ``rest`` — the mean over the kept frames of each session's rest run (test on rest, §10.3).

Per run: :func:`~deipp_core.ratings.align_run` gives the kept frames (30-s trim, 13-TR lag, censoring)
and their bins; the included parcels' time series at those frames are z-scored over the run (ddof 1);
each row is the mean of ``e(t) = z_i(t) z_j(t)`` over its frames, computed as ``ZᵀZ / n`` without
ever building the edge time series (:func:`~deipp_core.edges.binned_edges`). Because the model is
linear, predicting a bin row equals averaging the frame-wise predictions over that bin.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from deipp_core.data.dataset import Participant, Run
from deipp_core.edges import binned_edges, mean_edges, n_edges, zscore
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.ratings import RatingParams, RunFrames, align_run, bin_means, kept_frames

__all__ = ["ParticipantFeatures", "participant_features", "BIN_KINDS", "ROW_COLUMNS"]

logger = logging.getLogger(__name__)

#: Bin kinds of the paper, in stacking order: rating deciles (training), 1-min and 2-min time bins.
BIN_KINDS: tuple[str, ...] = ("rbin10", "tbin10", "tbin5")

#: Columns of :attr:`ParticipantFeatures.rows`.
ROW_COLUMNS: tuple[str, ...] = ("kind", "session", "run", "bin", "rating", "n_frames")

_KIND_RE = re.compile(r"^(rbin|tbin)([1-9][0-9]*)$")


def _parse_bin_kind(kind: str, params: RatingParams) -> tuple[str, int]:
    m = _KIND_RE.match(kind) if isinstance(kind, str) else None
    if m is None:
        raise ParameterError(
            f"bin kind {kind!r} is not of the form 'rbin<N>' or 'tbin<N>' (e.g. 'rbin10', 'tbin5')"
        )
    family, n = m.group(1), int(m.group(2))
    if n not in params.n_bins:
        raise ParameterError(
            f"bin kind {kind!r} needs {n} bins, but RatingParams.n_bins = {params.n_bins}; add {n} "
            "to n_bins or drop the kind"
        )
    return family, n


@dataclass
class ParticipantFeatures:
    """Bin-mean edge co-fluctuations of every run of one participant.

    Attributes
    ----------
    participant : str
        Participant label (without ``sub-``).
    X : ndarray of float64, shape (n_rows, n_edges)
        One feature row per bin / run / rest run; edges between the **included** parcels only, in
        :func:`~deipp_core.edges.edge_indices` (MATLAB column-major) order.
    rows : DataFrame
        One row per row of ``X``, with :data:`ROW_COLUMNS`: ``kind`` (``"rbin10"``, ``"tbin10"``,
        ``"tbin5"``, ``"run"``, ``"rest"``), ``session`` (label), ``run`` (1-3; 0 for rest), ``bin``
        (0-based; −1 for run and rest rows), ``rating`` (mean actual rating of those frames; NaN for
        rest) and ``n_frames``. Rows are stacked by kind block in that order, then session ascending,
        run 1..3, bin — the original's stacking order (§9.1).
    parcels : ndarray of int64
        Positional row indices (0-based) in the participant's atlas of the included parcels, i.e. the
        columns of the time series the edges are built from.
    frames : dict of (str, int) to RunFrames
        Kept frames, paired ratings and bin labels of every rating run, keyed by (session, run).
    params : RatingParams
        The parameters the table was built with.
    rest_frames : dict of str to ndarray
        Kept volume indices of each session's rest run (same trim, lag and censoring), keyed by
        session.
    """

    participant: str
    X: np.ndarray
    rows: pd.DataFrame
    parcels: np.ndarray
    frames: dict[tuple[str, int], RunFrames]
    params: RatingParams
    rest_frames: dict[str, np.ndarray] = field(default_factory=dict)

    def select(self, kind: str) -> tuple[np.ndarray, pd.DataFrame]:
        """Feature rows of one kind and their descriptions (index reset to 0…n−1).

        Parameters
        ----------
        kind : str
            One of the values of ``rows["kind"]``, e.g. ``"rbin10"``.

        Returns
        -------
        X_sub : ndarray of shape (n_kind_rows, n_edges)
        rows_sub : DataFrame
        """
        mask = (self.rows["kind"] == kind).to_numpy()
        if not mask.any():
            present = ", ".join(dict.fromkeys(self.rows["kind"])) or "none"
            raise ParameterError(f"no feature rows of kind {kind!r} (kinds present: {present})")
        return self.X[mask], self.rows.loc[mask].reset_index(drop=True)

    @property
    def sessions(self) -> list[str]:
        """Sorted labels of the sessions with rating runs."""
        return sorted({s for s, _ in self.frames})

    @property
    def n_sessions(self) -> int:
        """Number of sessions with rating runs."""
        return len(self.sessions)

    @property
    def n_parcels(self) -> int:
        """Number of included parcels."""
        return int(self.parcels.size)

    @property
    def n_edges(self) -> int:
        """Number of edges, ``P(P−1)/2``."""
        return int(self.X.shape[1])


def _kept_timeseries(run: Run, frames: np.ndarray, included: np.ndarray) -> np.ndarray:
    if run.timeseries.ndim != 2 or run.timeseries.shape[1] != included.size:
        raise DataFormatError(
            f"{run.key} ({run.source or 'no source recorded'}): the time series has shape "
            f"{run.timeseries.shape}, but the atlas has {included.size} parcels"
        )
    ts = np.asarray(run.timeseries[frames][:, included], dtype=float)
    if not np.isfinite(ts).all():
        bad = np.flatnonzero(~np.isfinite(ts).all(axis=0))
        raise DataFormatError(
            f"{run.key} ({run.source or 'no source recorded'}): non-finite values in the kept "
            f"frames of {bad.size} included parcel(s) (atlas rows "
            f"{np.flatnonzero(included)[bad][:5].tolist()}{'…' if bad.size > 5 else ''}); exclude "
            "those parcels in the atlas or fix the time series"
        )
    return ts


def _rating_run_block(
    run: Run, included: np.ndarray, params: RatingParams, specs: list[tuple[str, int]]
):
    """Features of one rating run: (RunFrames, [(X, rating, n_frames) per kind], run row)."""
    rf = align_run(run, params)
    z = zscore(_kept_timeseries(run, rf.frames, included))
    blocks = []
    for family, n in specs:
        labels = rf.rbin[n] if family == "rbin" else rf.tbin[n]
        blocks.append(
            (
                binned_edges(z, labels, n),
                bin_means(rf.rating, labels, n),
                np.bincount(labels[labels >= 0], minlength=n),
            )
        )
    return rf, blocks, mean_edges(z)


def _rest_run_block(run: Run, included: np.ndarray, params: RatingParams):
    frames = kept_frames(run, params)
    return frames, mean_edges(zscore(_kept_timeseries(run, frames, included)))


def participant_features(
    participant: Participant,
    params: RatingParams = RatingParams(),
    *,
    include_rest: bool = True,
    kinds: Sequence[str] = BIN_KINDS,
    n_jobs: int | None = 1,
) -> ParticipantFeatures:
    """Build the feature table of one participant (methods §8; rest rows §10.3).

    Parameters
    ----------
    participant : Participant
        Rating runs (and rest runs) with parcel time series, censor flags and ratings.
    params : RatingParams, optional
        Trim, lag, bin numbers, minimum segment length. Every kind's number of bins must be in
        ``params.n_bins``.
    include_rest : bool, default=True
        Add one ``"rest"`` row per rest run (mean co-fluctuation over its kept frames).
    kinds : sequence of str, default=("rbin10", "tbin10", "tbin5")
        Bin kinds, ``"rbin<N>"`` (rating-quantile bins) or ``"tbin<N>"`` (time bins), stacked in this
        order before the ``"run"`` and ``"rest"`` blocks.
    n_jobs : int or None, default=1
        Runs processed in parallel by joblib (threads by default; numpy releases the GIL in the matrix
        products). ``None`` or 1 runs sequentially; the backend can be changed with
        ``joblib.parallel_config``.

    Returns
    -------
    ParticipantFeatures

    Raises
    ------
    DataFormatError
        If the participant has no rating run, a time series does not match the atlas or holds
        non-finite values, or a rating does not cover a kept frame.
    AllFramesCensoredError
        If a run keeps too few frames for its bins.
    ParameterError
        If a kind is malformed or needs a number of bins that ``params.n_bins`` lacks.
    """
    specs = [_parse_bin_kind(k, params) for k in kinds]
    kinds = tuple(kinds)
    if len(set(kinds)) != len(kinds) or {"run", "rest"} & set(kinds):
        raise ParameterError(f"kinds must be distinct bin kinds; got {kinds!r}")
    included = participant.included
    parcels = np.flatnonzero(included).astype(np.int64)
    if parcels.size < 2:
        raise DataFormatError(
            f"sub-{participant.label}: {parcels.size} parcel(s) are included in the atlas; edges need "
            "at least 2"
        )
    runs = participant.rating_runs()
    if not runs:
        raise DataFormatError(f"sub-{participant.label} has no rating run")
    lengths = {r.n_volumes for r in runs}
    if len(lengths) > 1:
        # The original reads nvol from run 1 of session 1 and assumes it for every run (§5.1); here
        # each run keeps its own length.
        logger.warning(
            "sub-%s: rating runs differ in length (%s volumes); each run is aligned with its own "
            "length, whereas the original code assumed the length of ses-01 run 1 for all",
            participant.label,
            sorted(lengths),
        )
    rest_runs = (
        sorted((r for r in participant.runs if r.task == "rest"), key=lambda r: r.session)
        if include_rest
        else []
    )

    n_runs = len(runs)
    n_edge = n_edges(parcels.size)
    block_sizes = [n_runs * n for _, n in specs] + [n_runs, len(rest_runs)]
    offsets = np.r_[0, np.cumsum(block_sizes)]
    X = np.empty((int(offsets[-1]), n_edge))
    kind_col: list[str] = []
    session_col: list[str] = []
    run_col: list[int] = []
    bin_col: list[int] = []
    for kind, (_, n) in zip(kinds, specs):
        for r in runs:
            kind_col += [kind] * n
            session_col += [r.session] * n
            run_col += [int(r.run)] * n
            bin_col += list(range(n))
    for r in runs:
        kind_col.append("run")
        session_col.append(r.session)
        run_col.append(int(r.run))
        bin_col.append(-1)
    for r in rest_runs:
        kind_col.append("rest")
        session_col.append(r.session)
        run_col.append(0)
        bin_col.append(-1)
    rating_col = np.full(X.shape[0], np.nan)
    nframes_col = np.zeros(X.shape[0], dtype=np.int64)

    parallel = n_jobs not in (None, 1)
    tasks = [delayed(_rating_run_block)(r, included, params, specs) for r in runs]
    results = (
        Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(tasks)
        if parallel
        else (f(*a, **kw) for f, a, kw in tasks)
    )
    frames: dict[tuple[str, int], RunFrames] = {}
    for k, (r, (rf, blocks, run_row)) in enumerate(zip(runs, results)):
        frames[(r.session, int(r.run))] = rf
        for b, ((_, n), (xb, rating_b, count_b)) in enumerate(zip(specs, blocks)):
            rows = slice(int(offsets[b]) + k * n, int(offsets[b]) + (k + 1) * n)
            X[rows] = xb
            rating_col[rows] = rating_b
            nframes_col[rows] = count_b
        row = int(offsets[len(specs)]) + k
        X[row] = run_row
        rating_col[row] = rf.rating.mean()
        nframes_col[row] = rf.n_frames

    rest_frames: dict[str, np.ndarray] = {}
    if rest_runs:
        tasks = [delayed(_rest_run_block)(r, included, params) for r in rest_runs]
        results = (
            Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(tasks)
            if parallel
            else (f(*a, **kw) for f, a, kw in tasks)
        )
        for k, (r, (fr, row_x)) in enumerate(zip(rest_runs, results)):
            rest_frames[r.session] = fr
            row = int(offsets[len(specs) + 1]) + k
            X[row] = row_x
            nframes_col[row] = fr.size

    rows_df = pd.DataFrame(
        {
            "kind": kind_col,
            "session": session_col,
            "run": np.asarray(run_col, dtype=np.int64),
            "bin": np.asarray(bin_col, dtype=np.int64),
            "rating": rating_col,
            "n_frames": nframes_col,
        }
    )
    logger.info(
        "sub-%s: %d feature rows x %d edges (%d included parcels, %d rating runs, %d rest runs)",
        participant.label,
        X.shape[0],
        n_edge,
        parcels.size,
        n_runs,
        len(rest_runs),
    )
    return ParticipantFeatures(
        participant=participant.label,
        X=X,
        rows=rows_df,
        parcels=parcels,
        frames=frames,
        params=params,
        rest_frames=rest_frames,
    )
