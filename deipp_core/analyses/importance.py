"""Which brain regions does a personalized model rely on? (paper Fig. 4–5)

Three summaries of a participant's decoder, following ``reference/deipp_methods.md`` §11:

:func:`region_importance` (§11.1, ``analysis_predict_rating_featimp.m``)
    Region-wise **hierarchical permutation importance** of the held-out predictions. Each 1-min bin
    (``tbin10`` row) is predicted by the outer-fold model of its session, ``ŷ = b0_s + Σ_e C_e`` with
    contributions ``C = X_tbin10 ∘ w_s``. The contribution of region ``i`` is the sum of ``C`` over the
    edges touching ``i`` (each edge counts for both endpoints). Shuffling region ``i``'s contribution
    over bins with a hierarchical permutation (sessions, then runs within a session, then bins within a
    run) and measuring the drop in the 1-min-level Pearson r gives ``importance_i``.
:func:`region_weights` (§11.2, ``analysis_visualize_model_weight.m``)
    Sums of the positive and of the negative weights of the final all-session model per region.
:func:`network_summary` (§11.3, ``analysis_visualize_model_netimpwei.m``)
    The three region metrics by network, in the paper's network order, with the top-10 regions of each
    metric chosen by the original's quantile rules.

All tables carry the atlas row (``parcel``), the atlas ``index`` (``ROI``), ``name``, ``network`` and
MNI coordinates of each region; :func:`featimp_source_data` writes the paper's source-data CSV layout
(§13.1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import sparse

from deipp_core.edges import edge_indices, n_edges, vec_to_sym
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.features import ParticipantFeatures
from deipp_core.model import NestedLOSOResult

__all__ = [
    "PAPER_NETWORK_ORDER",
    "SEITZMAN_NETWORK_ORDER",
    "UNASSIGNED_NETWORKS",
    "RegionImportance",
    "hierarchical_permutations",
    "region_contributions",
    "region_importance",
    "region_weights",
    "network_summary",
    "top_regions",
    "featimp_source_data",
    "planted_region_recovery",
]

logger = logging.getLogger(__name__)

#: Network order of the paper's network-level plot (§11.3); regions labelled ``NONE`` are dropped.
PAPER_NETWORK_ORDER: tuple[str, ...] = (
    "DMN", "AMTL", "PMTL", "CAN", "PMN", "FPN", "DAN", "PMOT", "LANG", "SAL", "AMN", "SCAN",
    "FSMN", "HSMN", "LSMN", "AUD", "CB", "THA", "BG", "HCAMY", "BS",
)

#: The Seitzman et al. (2020) networks of the digital twin, arranged like :data:`PAPER_NETWORK_ORDER`
#: (default mode and medial temporal first, control and attention, then sensorimotor and auditory).
SEITZMAN_NETWORK_ORDER: tuple[str, ...] = (
    "DefaultMode", "MedialTemporalLobe", "ParietoMedial", "FrontoParietal", "DorsalAttention",
    "VentralAttention", "Salience", "CinguloOpercular", "Reward", "SomatomotorDorsal",
    "SomatomotorLateral", "Auditory", "Visual",
)

#: Labels of regions without a network; they are left out of the network summary (as ``NONE`` is).
UNASSIGNED_NETWORKS: frozenset[str] = frozenset({"NONE", "unassigned"})

#: Permutations generated (and held in memory) at once. It fixes how the random stream is split into
#: blocks, so results for a seed do not depend on ``n_jobs``; it is a constant, not an option.
_PERM_BLOCK = 250

#: Upper bound (bytes) of the gathered ``R[π]`` array of one block in :func:`_importance_block`.
_GATHER_BYTES = 64 * 2**20


# ----------------------------------------------------------------------------------------------
# Region annotations
# ----------------------------------------------------------------------------------------------


def _region_frame(parcels: np.ndarray, atlas: pd.DataFrame | None) -> pd.DataFrame:
    """One row per included parcel: atlas row, ROI index, name, network and MNI coordinates."""
    parcels = np.asarray(parcels, dtype=np.int64)
    if atlas is None:
        return pd.DataFrame({
            "parcel": parcels, "ROI": parcels, "name": [f"parcel{p:03d}" for p in parcels],
            "network": "NONE", "x": np.nan, "y": np.nan, "z": np.nan,
        })
    missing = [c for c in ("index", "name", "network", "x", "y", "z") if c not in atlas.columns]
    if missing:
        raise DataFormatError(
            f"the atlas table lacks column(s) {missing}; expected index, name, network, x, y, z"
        )
    if parcels.size and (parcels.min() < 0 or parcels.max() >= len(atlas)):
        raise DataFormatError(
            f"parcel rows {parcels.min()}…{parcels.max()} do not fit an atlas of {len(atlas)} rows; "
            "pass the atlas of the participant whose features these are"
        )
    sub = atlas.iloc[parcels]
    return pd.DataFrame({
        "parcel": parcels,
        "ROI": sub["index"].to_numpy(),
        "name": sub["name"].astype(str).to_numpy(),
        "network": sub["network"].astype(str).to_numpy(),
        "x": sub["x"].to_numpy(float),
        "y": sub["y"].to_numpy(float),
        "z": sub["z"].to_numpy(float),
    })


# ----------------------------------------------------------------------------------------------
# Hierarchical permutation indices
# ----------------------------------------------------------------------------------------------


def _grid(sessions: np.ndarray, runs: np.ndarray) -> tuple[np.ndarray | list, bool]:
    """Row indices arranged as a (session, run, bin) grid, in order of first appearance.

    Returns the grid as an int array of shape (S, R, B) when every session has R runs of B bins,
    else a list (per session) of lists (per run) of row-index arrays; and whether the design is
    balanced.
    """
    frame = pd.DataFrame({"s": sessions, "r": runs, "i": np.arange(len(sessions))})
    per_session = []
    for _, sdf in frame.groupby("s", sort=False):
        per_session.append([rdf["i"].to_numpy() for _, rdf in sdf.groupby("r", sort=False)])
    shapes = {(len(s), *{len(r) for r in s}) for s in per_session}
    if len(shapes) == 1 and len(next(iter(shapes))) == 2:
        return np.array(per_session, dtype=np.int64), True
    return per_session, False


def hierarchical_permutations(
    sessions: Sequence, runs: Sequence, n_perm: int, *, seed=0
) -> np.ndarray:
    """Hierarchical permutations of bins: sessions, then runs within session, then bins within run.

    The index generator of the region importance (§11.1). On the (session × run × bin) grid of the
    rows, a permutation first permutes the order of the sessions, then, within each session slot,
    the order of its runs, then, within each run slot, the order of its bins. Row ``n`` of the result
    then receives the value of row ``perm[n]``: bins stay with their run and runs with their session,
    so structure at every level is moved as a block.

    Parameters
    ----------
    sessions, runs : sequence of shape (n_rows,)
        Session and run label of every row (e.g. the ``tbin10`` rows of
        :class:`~deipp_core.features.ParticipantFeatures`). Rows of one run are taken in their given
        order as the bins of that run.
    n_perm : int
        Number of permutations.
    seed : int, numpy.random.Generator or numpy.random.SeedSequence, default=0
        Source of randomness.

    Returns
    -------
    ndarray of int64, shape (n_perm, n_rows)
        ``perm[p, n]`` is the source row whose value row ``n`` receives in permutation ``p``.

    Notes
    -----
    With a balanced design (every session has the same number of runs and every run the same number
    of bins, as in the paper: 10 bins × 3 runs) this is exactly the original's scheme. With an
    unbalanced design, sessions are permuted only among sessions with the same number of runs and
    runs only among runs (of the same session) with the same number of bins, so every row still
    receives exactly one value and the nesting is kept.

    Examples
    --------
    >>> sessions = ["01"] * 4 + ["02"] * 4
    >>> runs = [1, 1, 2, 2] * 2
    >>> perm = hierarchical_permutations(sessions, runs, 3, seed=0)
    >>> perm.shape
    (3, 8)
    >>> sorted(perm[0].tolist()) == list(range(8))
    True
    """
    sessions = np.asarray(sessions)
    runs = np.asarray(runs)
    if sessions.ndim != 1 or sessions.shape != runs.shape:
        raise DataFormatError(
            f"sessions and runs need one label per row; got shapes {sessions.shape} and {runs.shape}"
        )
    if isinstance(n_perm, bool) or not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise ParameterError(f"n_perm must be an integer >= 1; got {n_perm!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    grid, balanced = _grid(sessions, runs)
    if balanced:
        S, R, B = grid.shape
        # argsort of uniform keys = uniform random permutations, vectorised over all levels.
        ses = np.argsort(rng.random((n_perm, S)), axis=1)
        run = np.argsort(rng.random((n_perm, S, R)), axis=2)
        bins = np.argsort(rng.random((n_perm, S, R, B)), axis=3)
        # out[p, s, r, b] = grid[ses[p, s], run[p, s, r], bins[p, s, r, b]]: slot (s, r, b) receives
        # bin bins[p, s, r, b] of run run[p, s, r] of session ses[p, s].
        out = grid[ses[:, :, None, None], run[:, :, :, None], bins]
        perm = np.empty((n_perm, sessions.size), dtype=np.int64)
        perm[:, grid.reshape(-1)] = out.reshape(n_perm, -1)
        return perm
    return _unbalanced_permutations(grid, sessions.size, n_perm, rng)


def _unbalanced_permutations(grid, n_rows: int, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """Hierarchical permutations when sessions differ in run count or runs in bin count.

    Sessions are exchanged only with sessions of the same multiset of run lengths; within a session
    slot, runs are exchanged only with runs of the same length; bins are permuted within each run.
    """
    perm = np.empty((n_perm, n_rows), dtype=np.int64)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for k, ses in enumerate(grid):
        by_shape.setdefault(tuple(sorted(len(r) for r in ses)), []).append(k)
    for p in range(n_perm):
        for members in by_shape.values():
            for dst_k, src_k in zip(members, rng.permutation(members)):
                dst_runs, src_runs = grid[dst_k], grid[src_k]
                for length in sorted({len(r) for r in dst_runs}):
                    dst = [r for r in dst_runs if len(r) == length]
                    src = [src_runs[i] for i in rng.permutation(
                        [i for i, r in enumerate(src_runs) if len(r) == length])]
                    for d, s in zip(dst, src):
                        perm[p, d] = s[rng.permutation(length)]
    return perm


# ----------------------------------------------------------------------------------------------
# Importance
# ----------------------------------------------------------------------------------------------


def _incidence(n_parcels: int) -> sparse.csr_matrix:
    """Edge × region incidence matrix (1 where the edge touches the region), in edge order."""
    i, j = edge_indices(n_parcels)
    e = np.arange(i.size)
    return sparse.csr_matrix(
        (np.ones(2 * i.size), (np.r_[e, e], np.r_[i, j])), shape=(i.size, n_parcels)
    )


def region_contributions(
    X: np.ndarray, coef: np.ndarray, n_parcels: int
) -> np.ndarray:
    """Region contributions ``R = (X ∘ w) A`` with ``A`` the edge × region incidence matrix.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_edges)
        Feature rows.
    coef : ndarray of shape (n_edges,) or (n_rows, n_edges)
        Edge weights: one model for all rows, or one weight vector per row.
    n_parcels : int
        Number of (included) parcels.

    Returns
    -------
    ndarray of shape (n_rows, n_parcels)
        ``R[n, i]`` = sum of ``X[n, e]·w[e]`` over the edges ``e`` touching region ``i``. Every edge
        counts for both endpoints, so ``R.sum(axis=1) = 2 · X·w`` (the original builds the symmetric
        matrix with ``refmt_r`` and sums its columns).

    Examples
    --------
    >>> X = np.array([[1.0, 2.0, 3.0]])        # edges (0,1), (0,2), (1,2)
    >>> region_contributions(X, np.array([1.0, 0.0, -1.0]), 3)
    array([[ 1., -2., -3.]])
    """
    X = np.asarray(X, dtype=float)
    coef = np.asarray(coef, dtype=float)
    if X.ndim != 2 or X.shape[1] != n_edges(n_parcels):
        raise DataFormatError(
            f"X must have shape (n_rows, {n_edges(n_parcels)}) for {n_parcels} parcels; got {X.shape}"
        )
    if coef.shape not in (X.shape, X.shape[1:]):
        raise DataFormatError(f"coef must have shape {X.shape[1:]} or {X.shape}; got {coef.shape}")
    A = _incidence(n_parcels)
    return np.asarray((A.T @ (X * coef).T).T)


def _importance_block(
    R: np.ndarray, y_c: np.ndarray, pred: np.ndarray, perm: np.ndarray
) -> np.ndarray:
    """Pearson r of every (permutation, region) prediction, from sums instead of N-vectors.

    For region ``i`` and permutation ``π``, ``ŷ_π = ŷ − R[:, i] + R[π, i]``. Its mean equals the mean
    of ``ŷ`` (a permutation keeps the sum), and with ``b_i = ŷ − R[:, i]``

    * ``Σ_n y_c[n] ŷ_π[n] = y_c·b_i + Σ_n y_c[n] R[π(n), i]`` — the second term for all regions at
      once is ``Z R`` with ``Z[p, π_p(n)] = y_c[n]``;
    * ``‖ŷ_π‖² = ‖b_i‖² + ‖R_i‖² + 2 (ŷ·R[π, i] − R_i·R[π, i])`` — the first cross term is again a
      matrix product; the second is a column-wise dot product of ``R`` with the gathered ``R[π]``.

    Returns
    -------
    ndarray of shape (n_perm_block, n_parcels)
    """
    n_perm, N = perm.shape
    Z_y = np.zeros((n_perm, N))
    Z_p = np.zeros((n_perm, N))
    rows = np.arange(n_perm)[:, None]
    Z_y[rows, perm] = y_c
    Z_p[rows, perm] = pred
    base = pred[:, None] - R                                 # b_i, (N, P)
    yb = y_c @ base                                          # (P,)
    bb = np.einsum("np,np->p", base, base)
    rr = np.einsum("np,np->p", R, R)
    cov = yb[None, :] + Z_y @ R                              # (n_perm, P)
    # Σ_n R[n, i] R[π(n), i], gathered in sub-blocks bounded by _GATHER_BYTES
    self_term = np.empty((n_perm, R.shape[1]))
    step = max(1, int(_GATHER_BYTES // max(1, R.nbytes)))
    for a in range(0, n_perm, step):
        self_term[a:a + step] = np.einsum("bnp,np->bp", R[perm[a:a + step]], R)
    sq = bb[None, :] + rr[None, :] + 2.0 * (Z_p @ R - self_term)
    ss = sq - N * pred.mean() ** 2
    denom = np.sqrt(np.clip(ss, 0.0, None)) * np.sqrt(y_c @ y_c)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, cov / denom, np.nan)


def _permutation_block(R, y_c, pred, r_orig, sessions, runs, n_perm, seed_seq):
    """Sum and sum of squares over one block of permutations of the drop in r, per region."""
    perm = hierarchical_permutations(sessions, runs, n_perm, seed=np.random.default_rng(seed_seq))
    drop = r_orig - _importance_block(R, y_c, pred, perm)
    return drop.sum(axis=0), (drop ** 2).sum(axis=0)


@dataclass
class RegionImportance:
    """Result of :func:`region_importance`.

    Attributes
    ----------
    table : DataFrame
        One row per included parcel, in ``features.parcels`` order: ``parcel`` (atlas row), ``ROI``
        (atlas ``index``), ``name``, ``network``, ``x``, ``y``, ``z`` (MNI mm), ``imp`` (mean drop in r,
        the paper's ``fimp.reg``), ``imp_sd`` (SD of the drop over permutations) and ``rank``
        (1 = most important).
    r_orig : float
        Pearson r of the held-out 1-min predictions (the level-1 r of the main evaluation).
    n_perm : int
        Permutations per region.
    contributions : ndarray of shape (n_rows, n_parcels)
        Region contributions ``R`` of the 1-min rows (rows in ``rows`` order).
    rows : DataFrame
        The ``tbin10`` feature rows (``session``, ``run``, ``bin``, ``rating``) with the held-out
        ``predicted`` value.
    """

    table: pd.DataFrame
    r_orig: float
    n_perm: int
    contributions: np.ndarray
    rows: pd.DataFrame


def _fold_index(cv: NestedLOSOResult, sessions: np.ndarray) -> np.ndarray:
    groups = [str(g) for g in np.asarray(cv.groups)]
    pos = {g: k for k, g in enumerate(groups)}
    missing = sorted(set(map(str, sessions)) - set(pos))
    if missing:
        raise DataFormatError(
            f"session(s) {missing} of the features have no outer-fold model (fold sessions: {groups}); "
            "pass the NestedLOSOResult trained on these features"
        )
    return np.array([pos[str(s)] for s in sessions], dtype=np.int64)


def region_importance(
    features: ParticipantFeatures,
    cv: NestedLOSOResult,
    *,
    n_perm: int,
    seed: int = 0,
    n_jobs: int | None = 1,
    atlas: pd.DataFrame | None = None,
    kind: str = "tbin10",
) -> RegionImportance:
    """Region-wise hierarchical permutation importance of the held-out predictions (§11.1).

    Parameters
    ----------
    features : ParticipantFeatures
        The participant's features; its ``kind`` rows (1-min bins) are the evaluation units.
    cv : NestedLOSOResult
        The nested LOSO fit on these features; ``cv.fold_coef[k]`` predicts session ``cv.groups[k]``.
    n_perm : int
        Hierarchical permutations per region (paper: 10,000).
    seed : int, default=0
        Seed of the permutations. Permutations are drawn in blocks of 250, block ``b`` from the
        ``b``-th child of ``numpy.random.SeedSequence(seed)``, so results do not depend on ``n_jobs``.
    n_jobs : int or None, default=1
        Permutation blocks evaluated in parallel threads (joblib).
    atlas : DataFrame, optional
        The participant's atlas (``participant.atlas``), for region names, networks and coordinates.
    kind : str, default="tbin10"
        Feature rows used as units (the paper: 1-min bins).

    Returns
    -------
    RegionImportance

    Notes
    -----
    **Computation.** All regions and a block of permutations are handled with matrix products
    (see :func:`_importance_block`): the r of every permuted prediction needs only ``Z R`` products
    (``Z`` holds the permuted ratings and predictions) and a gathered ``R[π]`` for the region's own
    cross term. Memory per block is about ``n_block·N·(2 + P)`` floats with the gather capped at
    64 MB, so the permutations are never materialised as ``n_perm × N × P`` predictions. Measured
    (one BLAS thread per worker, N = 900 bins, P = 263 regions, a shared 2-core machine): 1,000
    permutations 2.0 s on one worker, 10,000 permutations 12 s with ``n_jobs=2`` — instead of
    2.6 million separate N-vector correlations.

    **Structure.** Row ``n`` of a permutation keeps its own rating and the prediction of the other
    regions; only region ``i``'s contribution is replaced by that of another bin, drawn with
    :func:`hierarchical_permutations`. Importance = ``r_orig − mean_π r(ŷ_π, y)``: positive when the
    region's contribution, in its true place, carries information about pain.
    """
    if isinstance(n_perm, bool) or not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise ParameterError(f"n_perm must be an integer >= 1; got {n_perm!r}")
    X, rows = features.select(kind)
    P = features.n_parcels
    if cv.fold_coef.shape[1] != X.shape[1]:
        raise DataFormatError(
            f"the fold models have {cv.fold_coef.shape[1]} edge weights but the features of "
            f"sub-{features.participant} have {X.shape[1]} edges; pass the matching NestedLOSOResult"
        )
    fold = _fold_index(cv, rows["session"].to_numpy())
    R = np.empty((X.shape[0], P))
    pred = np.empty(X.shape[0])
    A = _incidence(P)
    for k in np.unique(fold):
        m = fold == k
        C = X[m] * cv.fold_coef[k]
        R[m] = np.asarray((A.T @ C.T).T)
        pred[m] = C.sum(axis=1) + cv.fold_intercept[k]
    y = rows["rating"].to_numpy(float)
    y_c = y - y.mean()
    r_orig = float(np.corrcoef(pred, y)[0, 1])
    sessions = rows["session"].to_numpy()
    runs = rows["run"].to_numpy()

    seeds = np.random.SeedSequence(seed).spawn(-(-n_perm // _PERM_BLOCK))
    sizes = [min(_PERM_BLOCK, n_perm - b * _PERM_BLOCK) for b in range(len(seeds))]

    logger.info("sub-%s: region importance, %d regions × %d permutations", features.participant, P, n_perm)
    parts = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(_permutation_block)(R, y_c, pred, r_orig, sessions, runs, n, ss)
        for ss, n in zip(seeds, sizes)
    )
    s1 = np.sum([p[0] for p in parts], axis=0)
    s2 = np.sum([p[1] for p in parts], axis=0)
    imp = s1 / n_perm
    var = (s2 - n_perm * imp ** 2) / max(n_perm - 1, 1)
    table = _region_frame(features.parcels, atlas)
    table["imp"] = imp
    table["imp_sd"] = np.sqrt(np.clip(var, 0.0, None))
    table["rank"] = table["imp"].rank(ascending=False, method="first").astype(int)
    return RegionImportance(
        table=table,
        r_orig=r_orig,
        n_perm=int(n_perm),
        contributions=R,
        rows=rows.assign(predicted=pred),
    )


# ----------------------------------------------------------------------------------------------
# Weights and networks
# ----------------------------------------------------------------------------------------------


def region_weights(
    final_coef: np.ndarray,
    n_parcels: int,
    *,
    parcels: np.ndarray | None = None,
    atlas: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Sums of positive and negative edge weights per region (§11.2).

    Parameters
    ----------
    final_coef : ndarray of shape (P(P−1)/2,)
        Edge weights of the final all-session model (``cv.final_coef``), in
        :func:`~deipp_core.edges.edge_indices` (MATLAB ``refmt_r``) order.
    n_parcels : int
        Number of included parcels ``P``.
    parcels : ndarray of int, optional
        Atlas rows of the included parcels (``features.parcels``); default ``0…P−1``.
    atlas : DataFrame, optional
        The participant's atlas, for names, networks and coordinates.

    Returns
    -------
    DataFrame
        One row per region with the annotation columns of :class:`RegionImportance` and ``wpos`` =
        Σ_j max(W_ij, 0), ``wneg`` = Σ_j min(W_ij, 0), where W is the symmetric zero-diagonal matrix.

    Examples
    --------
    >>> region_weights(np.array([0.5, -0.2, 0.1]), 3)[["parcel", "wpos", "wneg"]]
       parcel  wpos  wneg
    0       0   0.5  -0.2
    1       1   0.6   0.0
    2       2   0.1  -0.2
    """
    W = vec_to_sym(np.asarray(final_coef, dtype=float), n_parcels)
    parcels = np.arange(n_parcels) if parcels is None else np.asarray(parcels)
    if parcels.size != n_parcels:
        raise DataFormatError(f"parcels has {parcels.size} entries for {n_parcels} parcels")
    table = _region_frame(parcels, atlas)
    table["wpos"] = np.clip(W, 0.0, None).sum(axis=1)
    table["wneg"] = np.clip(W, None, 0.0).sum(axis=1)
    return table


def _hazen_top(values: np.ndarray, k: int, *, low: bool = False) -> np.ndarray:
    """The original's top-k rule: ``v ≥ quantile(v, 1 − k/n)`` or, for ``low``, ``v < quantile(v, k/n)``."""
    n = values.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    q = min(max(k / n, 0.0), 1.0)
    if low:
        return values < np.quantile(values, q, method="hazen")
    return values >= np.quantile(values, 1.0 - q, method="hazen")


def top_regions(values: np.ndarray, k: int = 10, *, low: bool = False) -> np.ndarray:
    """Boolean mask of the top-``k`` regions by the original's quantile rule (§11.3).

    ``values ≥ quantile(values, 1 − k/n)`` (``low=False``) or ``values < quantile(values, k/n)``
    (``low=True``, used for the negative weights), with MATLAB's quantile = NumPy ``"hazen"``. Ties
    can make the set larger than ``k``; the strict ``<`` of the low rule can make it smaller. With
    ``n ≤ k`` the quantile level is clipped to [0, 1].

    Examples
    --------
    >>> top_regions(np.arange(20.0), 3).nonzero()[0].tolist()
    [17, 18, 19]
    >>> top_regions(-np.arange(20.0), 3, low=True).nonzero()[0].tolist()
    [17, 18, 19]
    """
    return _hazen_top(np.asarray(values, dtype=float), int(k), low=low)


def network_summary(
    importance: pd.DataFrame,
    weights: pd.DataFrame,
    *,
    network_order: Sequence[str] | None = None,
    k: int = 10,
) -> pd.DataFrame:
    """Region importance and weights by network, with the top-``k`` regions of each metric (§11.3).

    Parameters
    ----------
    importance : DataFrame
        :attr:`RegionImportance.table` (columns ``parcel``, ``imp`` and the annotations).
    weights : DataFrame
        :func:`region_weights` of the same participant (``parcel``, ``wpos``, ``wneg``).
    network_order : sequence of str, optional
        Networks to show, in order. Default: :data:`PAPER_NETWORK_ORDER` when the atlas uses the
        paper's labels, :data:`SEITZMAN_NETWORK_ORDER` when it uses Seitzman's, else the networks in
        order of first appearance. Regions of other networks, and unassigned ones (``NONE``,
        ``unassigned``), are dropped; networks absent from the data are removed from the order.
    k : int, default=10
        Size of the top sets (paper: 10).

    Returns
    -------
    DataFrame
        Long format, one row per (region, metric) with the annotation columns, ``metric``
        (``"imp"``, ``"pos"``, ``"neg"``), ``value``, ``top`` (in that metric's top-``k`` set: imp and
        pos ``≥ quantile(·, 1 − k/n)``, neg ``< quantile(·, k/n)``, n = regions kept), ``in_union``
        (in the union of the three sets: the regions shown on the brain) and ``network_rank``
        (position of the network in the order). ``df.attrs["network_order"]`` holds the order used.
    """
    for name, df, cols in (("importance", importance, ("parcel", "imp")),
                           ("weights", weights, ("parcel", "wpos", "wneg"))):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataFormatError(f"{name} lacks column(s) {missing}")
    merged = importance.merge(weights[["parcel", "wpos", "wneg"]], on="parcel", how="inner",
                              validate="one_to_one")
    if len(merged) != len(importance) or len(merged) != len(weights):
        raise DataFormatError(
            f"importance ({len(importance)} regions) and weights ({len(weights)} regions) describe "
            "different parcels; compute both from the same participant's features"
        )
    present = list(dict.fromkeys(merged["network"].astype(str)))
    if network_order is None:
        if set(present) & set(PAPER_NETWORK_ORDER):
            network_order = PAPER_NETWORK_ORDER
        elif set(present) & set(SEITZMAN_NETWORK_ORDER):
            network_order = SEITZMAN_NETWORK_ORDER
        else:
            network_order = present
    order = [n for n in network_order if n in present and n not in UNASSIGNED_NETWORKS]
    if not order:
        raise DataFormatError(
            f"no region belongs to a network of the order {list(network_order)}; networks present: {present}"
        )
    kept = merged[merged["network"].isin(order)].reset_index(drop=True)
    rank = {n: i for i, n in enumerate(order)}
    tops = {
        "imp": _hazen_top(kept["imp"].to_numpy(float), k),
        "pos": _hazen_top(kept["wpos"].to_numpy(float), k),
        "neg": _hazen_top(kept["wneg"].to_numpy(float), k, low=True),
    }
    union = tops["imp"] | tops["pos"] | tops["neg"]
    annot = [c for c in ("parcel", "ROI", "name", "network", "x", "y", "z") if c in kept.columns]
    parts = []
    for metric, col in (("imp", "imp"), ("pos", "wpos"), ("neg", "wneg")):
        part = kept[annot].copy()
        part["metric"] = metric
        part["value"] = kept[col].to_numpy(float)
        part["top"] = tops[metric]
        part["in_union"] = union
        part["network_rank"] = kept["network"].map(rank).to_numpy()
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out.attrs["network_order"] = order
    return out


def featimp_source_data(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's feature-importance source-data table (§13.1, ``…_featimp_<pt>_srcdat.csv``).

    Parameters
    ----------
    table : DataFrame
        :attr:`RegionImportance.table`.

    Returns
    -------
    DataFrame
        Columns ``ROI``, ``imp``, ``name``, ``MNI_1``, ``MNI_2``, ``MNI_3`` (coordinates rounded to
        the nearest mm, half away from zero as MATLAB ``round``) and ``netnames``, one row per
        included parcel in atlas order.
    """
    def mround(v):
        v = np.asarray(v, dtype=float)
        return np.sign(v) * np.floor(np.abs(v) + 0.5)

    t = table.sort_values("parcel", kind="stable")
    return pd.DataFrame({
        "ROI": t["ROI"].to_numpy(),
        "imp": t["imp"].to_numpy(float),
        "name": t["name"].to_numpy(),
        "MNI_1": mround(t["x"]),
        "MNI_2": mround(t["y"]),
        "MNI_3": mround(t["z"]),
        "netnames": t["network"].to_numpy(),
    })


def planted_region_recovery(
    table: pd.DataFrame, modules: Mapping[str, Sequence[int]], *, value: str = "imp", k: int = 10,
    low: bool = False,
) -> dict:
    """How well a region metric finds the digital twin's planted pain modules.

    Parameters
    ----------
    table : DataFrame
        Region table with ``parcel`` (atlas row) and ``value`` (e.g. the importance table).
    modules : mapping of str to sequence of int
        Planted modules as atlas rows (the twin's ``ground_truth[label]["meta"]["modules"]``).
    value : str, default="imp"
        Column to assess.
    k : int, default=10
        Size of the top set (the original's hazen rule, :func:`top_regions`).
    low : bool, default=False
        Rank from the most negative (for ``wneg``).

    Returns
    -------
    dict
        ``n_regions``; ``n_module``: module regions among them; ``auc``: probability that a module
        region has a larger value (smaller, with ``low``) than a non-module region; ``n_top``: size
        of the top set; ``top_in_module``: how many of them are module regions; ``top_chance``: the
        number expected by chance, ``n_top · n_module / n_regions``.
    """
    from sklearn.metrics import roc_auc_score

    planted = {int(p) for members in modules.values() for p in members}
    is_mod = table["parcel"].astype(int).isin(planted).to_numpy()
    vals = table[value].to_numpy(float)
    score = -vals if low else vals
    top = _hazen_top(vals, k, low=low)
    n = vals.size
    return {
        "n_regions": int(n),
        "n_module": int(is_mod.sum()),
        "auc": float(roc_auc_score(is_mod, score)) if 0 < is_mod.sum() < n else float("nan"),
        "n_top": int(top.sum()),
        "top_in_module": int((top & is_mod).sum()),
        "top_chance": float(top.sum() * is_mod.sum() / n) if n else float("nan"),
    }


def module_recovery_table(
    importance: pd.DataFrame, weights: pd.DataFrame, modules: Mapping[str, Sequence[int]], *, k: int = 10
) -> pd.DataFrame:
    """:func:`planted_region_recovery` of importance, Σ positive and Σ negative weights, one row each.

    Parameters
    ----------
    importance : DataFrame
        :attr:`RegionImportance.table`.
    weights : DataFrame
        :func:`region_weights` of the same participant.
    modules : mapping of str to sequence of int
        The twin's planted modules (atlas rows).
    k : int, default=10

    Returns
    -------
    DataFrame
        Index ``metric`` (``imp``, ``wpos``, ``wneg``), columns of :func:`planted_region_recovery`.
    """
    rows = {
        "imp": planted_region_recovery(importance, modules, value="imp", k=k),
        "wpos": planted_region_recovery(weights, modules, value="wpos", k=k),
        "wneg": planted_region_recovery(weights, modules, value="wneg", k=k, low=True),
    }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("metric")


def importance_summary(
    importance: Mapping[str, RegionImportance],
    recovery: Mapping[str, pd.DataFrame] | None = None,
    *,
    n_top: int = 3,
) -> str:
    """One sentence per participant naming the most important regions (and, on the twin, how many of
    the top-10 regions lie in the planted modules).

    Parameters
    ----------
    importance : mapping of str to RegionImportance
        Keyed by display name.
    recovery : mapping of str to DataFrame, optional
        :func:`module_recovery_table` per participant (twin only).
    n_top : int, default=3

    Returns
    -------
    str
        Markdown.
    """
    parts = []
    for name, res in importance.items():
        top = res.table.nsmallest(n_top, "rank")
        regions = ", ".join(f"{nm} ({net}, Δr = {v:.3f})"
                            for nm, net, v in zip(top["name"], top["network"], top["imp"]))
        text = f"**{name}**: {regions}"
        if recovery is not None and name in recovery:
            rec = recovery[name].loc["imp"]
            text += (f"; {int(rec['top_in_module'])} of its {int(rec['n_top'])} top-importance regions "
                     f"lie in the planted modules ({rec['top_chance']:.1f} expected by chance; AUC of "
                     f"importance for module vs other regions {rec['auc']:.2f})")
        parts.append(text)
    return ";\n".join(parts) + "."
