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

:func:`cached_features` is the same table for a participant of a :class:`~deipp_core.data.Dataset`,
kept on disk under ``derivatives/deipp/cache/`` (``X`` as a memory-mapped ``.npy``) so that the next
chapter that needs it reads it instead of recomputing it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from deipp_core.data.dataset import Dataset, Participant, Run
from deipp_core.data.derivatives import ArrayCache, cache_enabled, cache_root, code_digest, hash_key
from deipp_core.edges import binned_edges, mean_edges, n_edges, zscore
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.ratings import RatingParams, RunFrames, align_run, bin_means, kept_frames

__all__ = ["ParticipantFeatures", "participant_features", "cached_features", "BIN_KINDS", "ROW_COLUMNS"]

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


#: Modules whose code determines a feature table: the code digest of the feature cache covers only these.
_FEATURE_SOURCES = ("features.py", "edges.py", "ratings.py", "data/dataset.py")


def _participant_digest(participant: Participant) -> str:
    """SHA-256 of everything of a participant the feature table depends on (the arrays' bytes)."""
    h = hashlib.sha256()

    def text(*parts) -> None:
        h.update(json.dumps(parts, default=str).encode())

    def array(a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        text(a.dtype.str, a.shape)
        h.update(a.data)

    text(participant.label, list(participant.atlas.columns))
    array(participant.atlas["name"].astype(str).to_numpy(dtype=str))
    array(participant.included)
    for run in participant.runs:
        text(run.session, run.task, run.run, repr(run.tr), list(map(str, run.confounds.columns)))
        array(np.asarray(run.timeseries))
        array(run.confounds.to_numpy(dtype=np.float64))
        if run.rating is None:
            text(None)
        else:
            text(list(map(str, run.rating.columns)))
            array(run.rating.to_numpy(dtype=np.float64))
    return h.hexdigest()


def _pack_feature_meta(feats: ParticipantFeatures) -> dict[str, np.ndarray]:
    """Everything of a feature table but ``X`` as plain arrays (no pickling)."""
    rows = feats.rows
    out: dict[str, np.ndarray] = {
        "kind": rows["kind"].to_numpy(dtype=str),
        "session": rows["session"].to_numpy(dtype=str),
        "run": rows["run"].to_numpy(),
        "bin": rows["bin"].to_numpy(),
        "rating": rows["rating"].to_numpy(),
        "n_frames": rows["n_frames"].to_numpy(),
        "parcels": feats.parcels,
        "frame_sessions": np.array([s for s, _ in feats.frames], dtype=str),
        "frame_runs": np.array([r for _, r in feats.frames], dtype=np.int64),
        "rest_sessions": np.array(list(feats.rest_frames), dtype=str),
    }
    for i, rf in enumerate(feats.frames.values()):
        out[f"f{i}_frames"], out[f"f{i}_rating"], out[f"f{i}_rating_tr"] = rf.frames, rf.rating, rf.rating_tr
        for family, bins in (("rbin", rf.rbin), ("tbin", rf.tbin)):
            out[f"f{i}_{family}"] = np.array(list(bins), dtype=np.int64)
            for n, labels in bins.items():
                out[f"f{i}_{family}{n}"] = labels
    for i, frames in enumerate(feats.rest_frames.values()):
        out[f"r{i}_frames"] = frames
    return out


def _unpack_features(participant: str, X: np.ndarray, meta: dict[str, np.ndarray],
                     params: RatingParams) -> ParticipantFeatures | None:
    """Rebuild a :class:`ParticipantFeatures` from its cache entry, or None if the entry is malformed."""
    try:
        rows = pd.DataFrame({
            "kind": meta["kind"].tolist(),
            "session": meta["session"].tolist(),
            "run": meta["run"],
            "bin": meta["bin"],
            "rating": meta["rating"],
            "n_frames": meta["n_frames"],
        })
        parcels = meta["parcels"]
        frames = {}
        for i, (ses, run) in enumerate(zip(meta["frame_sessions"].tolist(), meta["frame_runs"].tolist())):
            bins = {family: {int(n): meta[f"f{i}_{family}{int(n)}"] for n in meta[f"f{i}_{family}"]}
                    for family in ("rbin", "tbin")}
            frames[(ses, int(run))] = RunFrames(frames=meta[f"f{i}_frames"], rating=meta[f"f{i}_rating"],
                                                rating_tr=meta[f"f{i}_rating_tr"], rbin=bins["rbin"],
                                                tbin=bins["tbin"])
        rest_frames = {ses: meta[f"r{i}_frames"] for i, ses in enumerate(meta["rest_sessions"].tolist())}
    except (KeyError, ValueError) as err:
        logger.warning("sub-%s: malformed feature cache entry (%s); recomputing", participant, err)
        return None
    if X.shape != (len(rows), n_edges(parcels.size)):
        logger.warning("sub-%s: cached features of shape %s do not match their %d rows and %d parcels; "
                       "recomputing", participant, X.shape, len(rows), parcels.size)
        return None
    return ParticipantFeatures(participant=participant, X=X, rows=rows, parcels=parcels, frames=frames,
                               params=params, rest_frames=rest_frames)


def cached_features(
    dataset: Dataset,
    label: str,
    params: RatingParams = RatingParams(),
    *,
    include_rest: bool = True,
    kinds: Sequence[str] = BIN_KINDS,
    n_jobs: int | None = 1,
    use_cache: bool | None = None,
) -> ParticipantFeatures:
    """:func:`participant_features` of one participant of a data set, cached on disk.

    The table is stored under ``derivatives/deipp/cache/sub-<label>/``: ``X`` as
    ``sub-<label>_desc-features_key-<key>.npy`` (float64, read back memory-mapped and read-only, so
    pages are read from disk only when used) and the rows, parcels and kept frames as
    ``sub-<label>_desc-featurerows_key-<key>.npz``. The key is a hash of the participant's data
    (the bytes of every run's time series, confounds and rating, and the atlas's included parcels),
    ``params``, ``include_rest``, ``kinds`` and the code of the feature modules, so the cached table is
    the one :func:`participant_features` would return, bit for bit. Each setting of ``params``,
    ``include_rest`` and ``kinds`` other than the defaults gets its own entry (``desc-features<hash>``),
    so chapters that use different settings do not evict each other; a new key of the same setting
    (changed data or code) replaces the old entry.

    Parameters
    ----------
    dataset : Dataset
        From :func:`deipp_core.data.load_dataset`; its root decides where the cache lives.
    label : str
        Participant label (``"01"``).
    params, include_rest, kinds, n_jobs
        As for :func:`participant_features`.
    use_cache : bool, optional
        False computes without reading or writing the cache; by default on unless the environment
        variable ``DEIPP_CACHE`` is ``0``. Without a writable ``derivatives`` folder the table is
        computed (with a warning).

    Returns
    -------
    ParticipantFeatures
        ``X`` is read-only when it comes from the cache.

    Examples
    --------
    >>> from deipp_core.data import load_dataset
    >>> ds = load_dataset("twin", profile="quick")  # doctest: +SKIP
    >>> feats = cached_features(ds, "01")  # doctest: +SKIP
    """
    participant = dataset[label]
    folder = cache_root(dataset.root) if cache_enabled(use_cache) else None
    if folder is None:
        return participant_features(participant, params, include_rest=include_rest, kinds=kinds, n_jobs=n_jobs)
    for kind in kinds:
        _parse_bin_kind(kind, params)
    key = hash_key("features", code_digest(_FEATURE_SOURCES), _participant_digest(participant),
                   dataclasses.asdict(params), bool(include_rest), list(kinds))
    setting = [dataclasses.asdict(params), bool(include_rest), list(kinds)]
    default = [dataclasses.asdict(RatingParams()), True, list(BIN_KINDS)]
    variant = "" if setting == default else hash_key(*setting)[:8]
    store = ArrayCache(folder / f"sub-{participant.label}")
    x_name = f"sub-{participant.label}_desc-features{variant}"
    meta_name = f"sub-{participant.label}_desc-featurerows{variant}"
    meta = store.load_npz(meta_name, key)  # written after X: present means X is complete
    if meta is not None:
        X = store.load(x_name, key, mmap=True)
        feats = None if X is None else _unpack_features(participant.label, X, meta, params)
        if feats is not None:
            logger.info("sub-%s: reusing the cached feature table %s", participant.label,
                        store.path(x_name, key).name)
            return feats
    feats = participant_features(participant, params, include_rest=include_rest, kinds=kinds, n_jobs=n_jobs)
    try:
        store.save(x_name, key, feats.X)
        store.save_npz(meta_name, key, **_pack_feature_meta(feats))
    except OSError as err:
        logger.warning("sub-%s: could not cache the feature table (%s); continuing without",
                       participant.label, err)
    return feats
