"""Explanation beyond weights: activation patterns, weight stability and a whole-pipeline permutation test.

Three questions the paper's weight maps (§11.2) leave open, each answered by one function:

:func:`haufe_pattern`
    What do the edge weights *not* tell? A linear decoder's weights mix signal with noise
    cancellation: an edge can get a large weight because it helps subtract noise shared with the
    pain-carrying edges (a *suppressor*), not because it carries pain. The activation pattern of
    Haufe et al. (2014), ``A = cov(X, ŷ) / var(ŷ)``, is the forward-model counterpart: how each edge
    co-varies with the decoder's output. :func:`pattern_comparison` sets it beside the weights
    per edge and per region (through :func:`~deipp_core.analyses.importance.region_weights`) and,
    on the digital twin, measures how well ``|A|`` and ``|w|`` find the planted edges.
:func:`weight_stability`
    How stable are the weights? Sessions are resampled with replacement and the final model (the
    same number of components as the all-session model, §9.3) is refitted through the Gram-matrix
    kernel of :mod:`deipp_core.model`; per edge: bootstrap mean, SD, sign consistency and a
    stability z (mean / SD), accumulated block by block (memory independent of the number of
    draws).
:func:`permutation_test`
    Is the held-out accuracy above chance when the *whole* pipeline (λ grid, nested
    leave-one-session-out, four-level evaluation) is rerun on ratings whose link with the brain
    data is broken, but whose structure is kept? ``"session"`` hands every session the rating time
    courses of another session (run labels kept); ``"circular"`` shifts each run's rating time
    course circularly by a random offset of at least one 1-min bin. Ratings enter the features only
    through the rating-decile bins, so each permutation recomputes the training rows from cached
    z-scored frames; the evaluation rows (time bins, runs) do not depend on the ratings and are
    reused. The permutation p, ``(1 + #{null ≥ observed}) / (1 + n_perm)``, is reported beside the
    hierarchical-bootstrap p of the main analysis (§10.2) by :func:`permutation_summary`.

None of this is in the paper; it is the kind of check a reviewer asks for.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from deipp_core import evaluation
from deipp_core.analyses.importance import region_weights
from deipp_core.analyses.prediction import EVAL_KINDS, edge_recovery
from deipp_core.data.dataset import Dataset, Participant
from deipp_core.edges import binned_edges, edge_indices, zscore
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.features import ParticipantFeatures, _kept_timeseries, participant_features
from deipp_core.model import NestedLOSOResult, nested_loso
from deipp_core.model._cv import _centred_grams
from deipp_core.model._gram import _decompose, _dual_coef
from deipp_core.ratings import bin_means, rating_bins
from deipp_core.stats import pearson_r

__all__ = [
    "PERMUTATION_SCHEMES",
    "haufe_pattern",
    "PatternComparison",
    "pattern_comparison",
    "WeightStability",
    "weight_stability",
    "permuted_ratings",
    "PermutationTest",
    "permutation_test",
    "cached_permutation_test",
    "permutation_summary",
    "describe_patterns",
    "describe_stability",
    "describe_permutation",
]

logger = logging.getLogger(__name__)

#: Rating permutations that respect the data's structure (see :func:`permuted_ratings`).
PERMUTATION_SCHEMES: tuple[str, ...] = ("session", "circular")

#: The decoder's training rows (rating deciles, §9.1).
TRAIN_KIND = "rbin10"

#: Bootstrap draws per block of :func:`weight_stability`. It fixes how the random stream is split, so
#: results for a seed do not depend on ``n_jobs``; it also bounds memory (one block of weights).
_BOOT_BLOCK = 16

#: Permutations per joblib task of :func:`permutation_test` (results do not depend on it). Small, so
#: that few permutations (the book profile's 19) spread evenly over the workers: each one is a whole
#: nested cross-validation (21–43 s on one core at paper scale), and the task's data are memory-mapped.
_PERM_BLOCK = 2


# ----------------------------------------------------------------------------------------------
# Haufe activation patterns
# ----------------------------------------------------------------------------------------------


def haufe_pattern(
    X: np.ndarray, *, weights: np.ndarray | None = None, predictions: np.ndarray | None = None
) -> np.ndarray:
    """Activation pattern ``A = cov(X, ŷ) / var(ŷ)`` of a linear decoder (Haufe et al. 2014).

    For a single-output linear decoder ``ŷ = b0 + X w`` the pattern is ``Σ_X w / var(ŷ)``, the
    covariance of every feature with the decoder's output per unit of output variance. It is
    computed as ``Xᵀ ŷ_c / (ŷ_cᵀ ŷ_c)`` with ``ŷ_c = ŷ − mean(ŷ)``: ``Xᵀ ŷ_c = X_cᵀ ŷ_c`` because
    ``ŷ_c`` sums to zero, so neither the centred ``X`` nor the ``E × E`` covariance is formed
    (``O(nE)`` time, no copy of ``X``). Degrees of freedom cancel in the ratio.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The rows the decoder was trained on (e.g. the rating-decile bin rows).
    weights : array-like of shape (n_features,), optional
        Decoder weights; ``ŷ = X w`` (the intercept does not matter).
    predictions : array-like of shape (n_samples,), optional
        The decoder's output for the rows of ``X``. Give exactly one of ``weights`` and
        ``predictions``.

    Returns
    -------
    ndarray of shape (n_features,)
        The pattern, in feature units per unit of ``ŷ``. All NaN (with a warning) when ``ŷ`` is
        constant, e.g. a model that selected no component.

    Raises
    ------
    ParameterError
        If both or neither of ``weights`` and ``predictions`` are given, or shapes disagree.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> s, d = rng.standard_normal(500), rng.standard_normal(500)
    >>> X = np.column_stack([s + d, d])          # channel 2 only carries the distractor
    >>> A = haufe_pattern(X, weights=np.array([1.0, -1.0]))   # the decoder recovers s exactly
    >>> np.round(A, 1) + 0.0                     # the suppressor's pattern is ~0
    array([1., 0.])
    """
    if (weights is None) == (predictions is None):
        raise ParameterError("give exactly one of weights= and predictions= to haufe_pattern")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ParameterError(f"X must be 2-D (samples × features); got shape {X.shape}")
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        if w.shape != (X.shape[1],):
            raise ParameterError(f"weights must have {X.shape[1]} entries (one per column of X); got {w.shape}")
        y_hat = X @ w
    else:
        y_hat = np.asarray(predictions, dtype=float)
        if y_hat.shape != (X.shape[0],):
            raise ParameterError(
                f"predictions must have {X.shape[0]} entries (one per row of X); got {y_hat.shape}"
            )
    yc = y_hat - y_hat.mean()
    ss = float(yc @ yc)
    if not ss > 0:
        logger.warning("the decoder's output is constant on these rows; its activation pattern is undefined")
        return np.full(X.shape[1], np.nan)
    return (X.T @ yc) / ss


@dataclass
class PatternComparison:
    """Weights and activation pattern of one decoder, side by side.

    Attributes
    ----------
    edges : DataFrame
        One row per edge: ``parcel_i``, ``parcel_j`` (atlas rows), ``weight``, ``pattern`` and, on the
        twin, ``planted`` (bool) and ``planted_sign`` (±1, 0 off the planted set).
    regions : DataFrame
        One row per region (annotation columns of
        :func:`~deipp_core.analyses.importance.region_weights`) with ``wpos``/``wneg`` (Σ positive /
        negative weights) and ``ppos``/``pneg`` (the same sums of the pattern).
    summary : dict
        ``edge_r``: Pearson r of weight and pattern over edges; ``region_r_pos``/``region_r_neg``:
        r of the regional positive / negative sums; on the twin, ``auc_weight``/``auc_pattern`` (AUC of
        ``|w|`` / ``|A|`` for planted vs other edges), ``sign_weight``/``sign_pattern`` (fraction of
        planted edges whose sign is right) and ``n_planted``; NaN where undefined.
    """

    edges: pd.DataFrame
    regions: pd.DataFrame
    summary: dict


def pattern_comparison(
    weights: np.ndarray,
    pattern: np.ndarray,
    features: ParticipantFeatures,
    *,
    atlas: pd.DataFrame | None = None,
    dataset: Dataset | None = None,
) -> PatternComparison:
    """Compare a decoder's weights with its activation pattern per edge, per region and (twin) by recovery.

    Parameters
    ----------
    weights, pattern : ndarray of shape (n_edges,)
        Edge weights (e.g. ``cv.final_coef``) and the :func:`haufe_pattern` of the same model, in the
        edge order of ``features``.
    features : ParticipantFeatures
        Gives the included parcels (edge → parcel pair map).
    atlas : DataFrame, optional
        The participant's atlas, for region names, networks and coordinates.
    dataset : Dataset, optional
        A twin with ground truth for ``features.participant``: adds planted-edge recovery. Real data
        (no ground truth) are accepted and give NaN recovery.

    Returns
    -------
    PatternComparison
    """
    w = np.asarray(weights, dtype=float)
    a = np.asarray(pattern, dtype=float)
    if w.shape != (features.n_edges,) or a.shape != w.shape:
        raise ParameterError(
            f"weights and pattern must both have {features.n_edges} entries (the edges of the "
            f"features); got {w.shape} and {a.shape}"
        )
    i, j = edge_indices(features.n_parcels)
    edges = pd.DataFrame({"parcel_i": features.parcels[i], "parcel_j": features.parcels[j],
                          "weight": w, "pattern": a})
    a_finite = np.nan_to_num(a, nan=0.0)
    regions = region_weights(w, features.n_parcels, parcels=features.parcels, atlas=atlas)
    pat = region_weights(a_finite, features.n_parcels, parcels=features.parcels)
    regions["ppos"] = pat["wpos"].to_numpy()
    regions["pneg"] = pat["wneg"].to_numpy()
    defined = bool(np.isfinite(a).all())
    summary = {
        "edge_r": _r(w, a) if defined else float("nan"),
        "region_r_pos": _r(regions["wpos"], regions["ppos"]) if defined else float("nan"),
        "region_r_neg": _r(regions["wneg"], regions["pneg"]) if defined else float("nan"),
        "auc_weight": float("nan"), "auc_pattern": float("nan"),
        "sign_weight": float("nan"), "sign_pattern": float("nan"), "n_planted": 0,
    }
    truth = dataset.ground_truth.get(features.participant) if dataset is not None else None
    if truth:
        rec_w = edge_recovery(w, features, dataset)
        summary.update(auc_weight=rec_w["auc"], sign_weight=rec_w["sign_agreement"],
                       n_planted=rec_w["n_planted"])
        if defined:
            rec_a = edge_recovery(a, features, dataset)
            summary.update(auc_pattern=rec_a["auc"], sign_pattern=rec_a["sign_agreement"])
        planted = truth["edges"]
        sign = {(min(p, q), max(p, q)): s for p, q, s in planted[["parcel_i", "parcel_j", "sign"]].to_numpy()}
        keys = zip(np.minimum(edges["parcel_i"], edges["parcel_j"]), np.maximum(edges["parcel_i"], edges["parcel_j"]))
        edges["planted_sign"] = [int(sign.get(k, 0)) for k in keys]
        edges["planted"] = edges["planted_sign"] != 0
    return PatternComparison(edges=edges, regions=regions, summary=summary)


def _r(x, y) -> float:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(pearson_r(x, y))


# ----------------------------------------------------------------------------------------------
# Bootstrap stability of the edge weights
# ----------------------------------------------------------------------------------------------


@dataclass
class WeightStability:
    """Session-bootstrap distribution of the final model's edge weights (summaries only).

    Attributes
    ----------
    reference : ndarray of shape (n_edges,)
        Weights of the all-session final model (``cv.final_coef``).
    mean, sd : ndarray of shape (n_edges,)
        Bootstrap mean and SD (ddof 1) of every edge weight.
    sign_consistency : ndarray of shape (n_edges,)
        Fraction of draws whose weight has the sign of ``reference`` (0 where the reference is 0).
    z : ndarray of shape (n_edges,)
        Stability z (bootstrap ratio) ``mean / sd``; NaN where ``sd`` is 0.
    n_boot : int
        Bootstrap draws.
    n_components : int
        Components of every refit (those of the final model).
    n_sessions : int
        Sessions resampled.
    """

    reference: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    sign_consistency: np.ndarray
    z: np.ndarray
    n_boot: int
    n_components: int
    n_sessions: int

    def table(self, features: ParticipantFeatures) -> pd.DataFrame:
        """One row per edge: parcels, reference weight, mean, SD, sign consistency and z."""
        i, j = edge_indices(features.n_parcels)
        return pd.DataFrame({
            "parcel_i": features.parcels[i], "parcel_j": features.parcels[j],
            "weight": self.reference, "mean": self.mean, "sd": self.sd,
            "sign_consistency": self.sign_consistency, "z": self.z,
        })


def _boot_block(K, X, y, session_rows, n_pcs, reference_sign, n_draws, seed_seq):
    """One block of bootstrap refits: (count, mean, M2, agreeing signs) of the block's weights."""
    rng = np.random.default_rng(seed_seq)
    n_sess = len(session_rows)
    with threadpool_limits(limits=1):
        duals = np.zeros((n_draws, y.size))
        for b in range(n_draws):
            idx = np.concatenate([session_rows[s] for s in rng.integers(0, n_sess, size=n_sess)])
            dec = _decompose(K[np.ix_(idx, idx)], y[idx])
            a = _dual_coef(dec, n_pcs)
            # duplicated rows: w = Σ_k a_k x_idx[k] = Xᵀ (Σ of a over the copies of each row)
            duals[b] = np.bincount(idx, weights=a - a.mean(), minlength=y.size)
        W = duals @ X  # (n_draws, E): one block, never all draws
    mean = W.mean(axis=0)
    m2 = ((W - mean) ** 2).sum(axis=0)
    agree = (np.sign(W) == reference_sign).sum(axis=0)
    return n_draws, mean, m2, agree


def weight_stability(
    features: ParticipantFeatures,
    cv: NestedLOSOResult,
    *,
    n_boot: int,
    seed: int = 0,
    n_jobs: int | None = 1,
) -> WeightStability:
    """Bootstrap the final model's edge weights over sessions.

    Each draw resamples the participant's sessions with replacement (all rating-decile rows of a
    drawn session enter, as often as the session is drawn) and refits the final model with
    ``cv.final_n_pcs`` components, the number the all-session model uses (the top-``k`` rule of
    §9.3), by the Gram-matrix kernel of :func:`~deipp_core.model.nested_loso`: the eigendecomposition
    of the resampled block of the Gram matrix ``K = X Xᵀ`` (computed once) and ``w = Xᵀ a`` with the
    dual coefficients ``a`` summed over duplicated rows. A draw costs one eigendecomposition of an
    ``N × N`` block plus its share of one ``(block × N) @ (N × E)`` product.

    Parameters
    ----------
    features : ParticipantFeatures
        The participant's features (rows of kind ``"rbin10"`` are used).
    cv : NestedLOSOResult
        The nested cross-validation fitted on those rows (gives ``final_coef`` and ``final_n_pcs``).
    n_boot : int
        Bootstrap draws.
    seed : int, default=0
        Seed of the :class:`numpy.random.SeedSequence`; draws come in fixed blocks of 16, each from
        its own child sequence, so results do not depend on ``n_jobs``.
    n_jobs : int or None, default=1
        Blocks in parallel (joblib, one BLAS thread each). Every block runs with one BLAS thread even
        with ``n_jobs=1``, so results are identical for any ``n_jobs``.

    Returns
    -------
    WeightStability

    Notes
    -----
    Memory: the ``N × N`` Gram matrix and one block of ``16 × E`` weights per worker, merged into
    running means and sums of squares (Chan et al.'s pairwise update); ``n_boot × E`` is never held.
    """
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 2:
        raise ParameterError(f"n_boot must be an integer >= 2; got {n_boot!r}")
    X, rows = features.select(TRAIN_KIND)
    y = rows["rating"].to_numpy(dtype=float)
    if cv.final_coef.shape != (X.shape[1],) or cv.y_pred_train.shape != y.shape:
        raise ParameterError(
            f"cv does not match these features ({X.shape[0]} {TRAIN_KIND} rows × {X.shape[1]} edges): "
            "fit it on the same participant's features"
        )
    sessions = rows["session"].to_numpy()
    session_rows = [np.flatnonzero(sessions == s) for s in np.unique(sessions)]
    K, _ = _centred_grams(X, None)
    n_pcs = int(cv.final_n_pcs)
    reference = np.asarray(cv.final_coef, dtype=float)
    ref_sign = np.sign(reference)
    sizes = [min(_BOOT_BLOCK, n_boot - s) for s in range(0, int(n_boot), _BOOT_BLOCK)]
    children = np.random.SeedSequence(seed).spawn(len(sizes))
    logger.info("sub-%s: %d session-bootstrap refits with %d components (%d blocks)",
                features.participant, n_boot, n_pcs, len(sizes))
    blocks = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_boot_block)(K, X, y, session_rows, n_pcs, ref_sign, size, child)
        for size, child in zip(sizes, children)
    )
    n = 0
    mean = np.zeros(X.shape[1])
    m2 = np.zeros(X.shape[1])
    agree = np.zeros(X.shape[1])
    for nb, mb, m2b, ab in blocks:  # in block order: deterministic whatever n_jobs
        delta = mb - mean
        total = n + nb
        mean += delta * (nb / total)
        m2 += m2b + delta**2 * (n * nb / total)
        agree += ab
        n = total
    sd = np.sqrt(m2 / (n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), np.nan)
    consistency = np.where(ref_sign != 0, agree / n, 0.0)
    return WeightStability(reference=reference, mean=mean, sd=sd, sign_consistency=consistency, z=z,
                           n_boot=int(n), n_components=n_pcs, n_sessions=len(session_rows))


# ----------------------------------------------------------------------------------------------
# Whole-pipeline permutation test
# ----------------------------------------------------------------------------------------------


@dataclass
class _Context:
    """Everything a permutation needs, computed once per participant (shipped to workers)."""

    keys: list  # (session, run) of every rating run, in the features' stacking order
    z: list  # z-scored kept frames of each run (n_kept × P)
    rating: list  # kept-frame ratings of each run
    rating_tr: list  # TR-grid ratings of each run
    frames: list  # kept volume indices of each run
    tbin: list  # {n: time-bin labels} of each run
    n_train: int  # rating-quantile bins per run (10)
    min_segment: int
    lag: int
    X_eval: np.ndarray
    rows_eval: pd.DataFrame


def _context(participant: Participant, features: ParticipantFeatures) -> _Context:
    rows_train = features.rows[features.rows["kind"] == TRAIN_KIND]
    if rows_train.empty:
        raise ParameterError(f"the features have no {TRAIN_KIND} rows; build them with the default kinds")
    n_train = int(TRAIN_KIND.removeprefix("rbin"))
    keys = list(dict.fromkeys(zip(rows_train["session"], rows_train["run"].astype(int))))
    runs = {(r.session, int(r.run)): r for r in participant.rating_runs()}
    missing = [k for k in keys if k not in runs or k not in features.frames]
    if missing:
        raise DataFormatError(
            f"sub-{participant.label}: the features list runs {missing[:3]} that the participant (or "
            "its frame table) lacks; build the features from this participant"
        )
    included = participant.included
    z, rating, rating_tr, frames, tbin = [], [], [], [], []
    for k in keys:
        rf = features.frames[k]
        z.append(zscore(_kept_timeseries(runs[k], rf.frames, included)))
        rating.append(rf.rating)
        rating_tr.append(rf.rating_tr)
        frames.append(rf.frames)
        tbin.append({int(kind.removeprefix("tbin")): rf.tbin[int(kind.removeprefix("tbin"))]
                     for kind in EVAL_KINDS if kind.startswith("tbin")})
    eval_mask = features.rows["kind"].isin(EVAL_KINDS).to_numpy()
    return _Context(keys=keys, z=z, rating=rating, rating_tr=rating_tr, frames=frames, tbin=tbin,
                    n_train=n_train, min_segment=features.params.min_segment, lag=features.params.lag_tr,
                    X_eval=features.X[eval_mask], rows_eval=features.rows[eval_mask].reset_index(drop=True))


def _session_donor_ratings(ctx: _Context, order: np.ndarray, sessions: list) -> list:
    """Kept-frame ratings when session ``sessions[i]`` receives the runs of ``sessions[order[i]]``."""
    index = {k: i for i, k in enumerate(ctx.keys)}
    out = []
    for (ses, run), frames in zip(ctx.keys, ctx.frames):
        donor_ses = sessions[order[sessions.index(ses)]]
        if (donor_ses, run) not in index:
            raise DataFormatError(
                f"scheme 'session': ses-{donor_ses} has no run {run} to give to ses-{ses}; the session "
                "scheme needs the same runs in every session (use scheme='circular')"
            )
        donor = ctx.rating_tr[index[(donor_ses, run)]]
        n_vol = ctx.rating_tr[index[(ses, run)]].size
        if donor.size != n_vol:  # different run lengths: stretch the donor's time course
            donor = np.interp(np.linspace(0.0, 1.0, n_vol), np.linspace(0.0, 1.0, donor.size), donor)
        # the rating paired with brain volume f is the rating sampled lag volumes earlier (§5.3)
        r = donor[frames - ctx.lag]
        if np.isnan(r).any():
            raise DataFormatError(
                f"scheme 'session': the rating of ses-{donor_ses} run {run} does not cover the kept "
                f"frames of ses-{ses} run {run}; use scheme='circular'"
            )
        out.append(r)
    return out


def permuted_ratings(
    features: ParticipantFeatures, scheme: str, rng: np.random.Generator, *, min_shift: int | None = None
) -> tuple[list, dict]:
    """Kept-frame ratings of every rating run after one structure-preserving permutation.

    Parameters
    ----------
    features : ParticipantFeatures
        The participant's features (their frame table: kept frames, ratings, time bins).
    scheme : {"session", "circular"}
        ``"session"``: a random permutation ``π`` of the sessions; run ``r`` of session ``s`` receives
        the whole TR-grid rating time course of run ``r`` of session ``π(s)``, read at its own kept
        frames (its own trim, lag and censoring; a donor of another length is stretched linearly in
        time). ``"circular"``: each run's kept-frame rating is rotated by an offset drawn uniformly
        from ``min_shift … n − min_shift`` (``n`` kept frames), so it keeps exactly its own values.
    rng : numpy.random.Generator
    min_shift : int, optional
        Smallest circular offset in frames; default one 1-min bin, ``ceil(n / 10)``.

    Returns
    -------
    ratings : list of ndarray
        One array per rating run, in the order of ``features.frames`` restricted to the training
        rows' runs (session, run ascending), aligned with that run's kept frames.
    info : dict
        ``order`` (the session permutation, as indices into the sorted sessions) or ``shifts`` (the
        offset of each run).
    """
    if scheme not in PERMUTATION_SCHEMES:
        raise ParameterError(f"scheme must be one of {PERMUTATION_SCHEMES}; got {scheme!r}")
    return _permute(_frames_context(features), scheme, rng, min_shift)


def _permute(ctx: _Context, scheme: str, rng: np.random.Generator, min_shift: int | None) -> tuple[list, dict]:
    if scheme == "session":
        sessions = sorted({s for s, _ in ctx.keys})
        order = rng.permutation(len(sessions))
        return _session_donor_ratings(ctx, order, sessions), {"order": order}
    shifts = []
    out = []
    for (ses, run), r in zip(ctx.keys, ctx.rating):
        n = r.size
        m = math.ceil(n / ctx.n_train) if min_shift is None else int(min_shift)
        if m < 1 or n - m < m:
            raise ParameterError(
                f"scheme 'circular': ses-{ses} run {run} has {n} kept frames, too few for shifts of at "
                f"least {m} frames"
            )
        shift = int(rng.integers(m, n - m + 1))
        shifts.append(shift)
        out.append(np.roll(r, shift))
    return out, {"shifts": np.asarray(shifts)}


def _frames_context(features: ParticipantFeatures) -> _Context:
    """A context without time series: enough to permute ratings (not to rebuild features)."""
    rows_train = features.rows[features.rows["kind"] == TRAIN_KIND]
    keys = list(dict.fromkeys(zip(rows_train["session"], rows_train["run"].astype(int))))
    rf = [features.frames[k] for k in keys]
    return _Context(keys=keys, z=[], rating=[f.rating for f in rf], rating_tr=[f.rating_tr for f in rf],
                    frames=[f.frames for f in rf], tbin=[], n_train=int(TRAIN_KIND.removeprefix("rbin")),
                    min_segment=features.params.min_segment, lag=features.params.lag_tr,
                    X_eval=np.zeros((0, 0)), rows_eval=pd.DataFrame())


def _pipeline_r(ctx: _Context, ratings: list) -> dict:
    """The whole pipeline on one set of kept-frame ratings: features → nested LOSO → r per level."""
    n = ctx.n_train
    X_train = np.empty((len(ctx.keys) * n, ctx.X_eval.shape[1]))
    y = np.empty(len(ctx.keys) * n)
    groups = []
    new = {}
    for k, ((ses, run), z, r) in enumerate(zip(ctx.keys, ctx.z, ratings)):
        labels = rating_bins(r, n, ctx.min_segment)
        X_train[k * n:(k + 1) * n] = binned_edges(z, labels, n)
        y[k * n:(k + 1) * n] = bin_means(r, labels, n)
        groups += [ses] * n
        for nb, tl in ctx.tbin[k].items():
            for b, v in enumerate(bin_means(r, tl, nb)):
                new[(f"tbin{nb}", ses, run, b)] = v
        new[("run", ses, run, -1)] = float(r.mean())
    rows = ctx.rows_eval
    rating = np.array([new[(kd, s, int(rn), int(b))]
                       for kd, s, rn, b in zip(rows["kind"], rows["session"], rows["run"], rows["bin"])])
    cv = nested_loso(X_train, y, np.asarray(groups), X_eval=ctx.X_eval,
                     groups_eval=rows["session"].to_numpy(), n_jobs=1)
    table = evaluation.level_table(rows.assign(rating=rating, predicted=cv.y_pred_eval))
    return {lv: _r(g["actual"], g["predicted"]) for lv, g in table.groupby("level", sort=False)}


def _perm_child(seed: int, i: int) -> np.random.SeedSequence:
    """Seed of permutation ``i``: the ``i``-th child of ``SeedSequence(seed)``, made directly.

    Equal to ``SeedSequence(seed).spawn(n)[i]`` for every ``n > i``, so permutation ``i`` is the same
    whatever the number of permutations asked for, and any subset of them can be computed alone.
    """
    return np.random.SeedSequence(seed, spawn_key=(int(i),))


def _perm_block(ctx: _Context, scheme: str, seed: int, indices: list, min_shift) -> list:
    with threadpool_limits(limits=1):
        out = []
        for i in indices:
            ratings, _ = _permute(ctx, scheme, np.random.default_rng(_perm_child(seed, i)), min_shift)
            out.append((int(i), _pipeline_r(ctx, ratings)))
        return out


def _null_rows(block: list) -> pd.DataFrame:
    """Long table (``perm``, ``level``, ``r``) of the results of some permutations."""
    return pd.DataFrame([(i, lv, r) for i, res in block for lv, r in res.items()],
                        columns=["perm", "level", "r"]).astype({"perm": int, "level": object, "r": float})


def _run_permutations(
    ctx: _Context,
    scheme: str,
    seed: int,
    indices: list,
    n_jobs: int | None,
    min_shift: int | None,
    on_block=None,
) -> pd.DataFrame:
    """Permutations ``indices`` in blocks on joblib workers; ``on_block(rows)`` as each block ends."""
    blocks = [indices[s:s + _PERM_BLOCK] for s in range(0, len(indices), _PERM_BLOCK)]
    parts = []
    out = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(  # backend: joblib.parallel_config
        delayed(_perm_block)(ctx, scheme, seed, block, min_shift) for block in blocks
    )
    for block in out:
        rows = _null_rows(block)
        if on_block is not None:
            on_block(rows)
        parts.append(rows)
    if not parts:
        return pd.DataFrame({"perm": pd.Series(dtype=int), "level": pd.Series(dtype=object),
                             "r": pd.Series(dtype=float)})
    # sort by permutation (stable: each permutation keeps the level order of the evaluation table)
    return pd.concat(parts, ignore_index=True).sort_values("perm", kind="stable").reset_index(drop=True)


@dataclass
class PermutationTest:
    """Whole-pipeline permutation test of one participant.

    Attributes
    ----------
    participant : str
    scheme : str
        ``"session"`` or ``"circular"``.
    n_perm : int
    observed : DataFrame
        ``level``, ``r``: the held-out r of the unpermuted pipeline (equal to the main analysis).
    null : DataFrame
        ``perm`` (0-based), ``level``, ``r``: one row per permutation and level.
    p : DataFrame
        ``level``, ``r``, ``p_perm`` = ``(1 + #{null r ≥ observed r}) / (1 + n_perm)`` (one-sided;
        an undefined null r counts as not exceeding), ``null_mean``, ``null_q95``, ``n_undefined``.
    """

    participant: str
    scheme: str
    n_perm: int
    observed: pd.DataFrame
    null: pd.DataFrame
    p: pd.DataFrame


def _p_table(observed: pd.DataFrame, null: pd.DataFrame, n_perm: int) -> pd.DataFrame:
    rows = []
    for lv, r_obs in zip(observed["level"], observed["r"]):
        nr = null.loc[null["level"] == lv, "r"].to_numpy(float)
        exceed = int(np.sum(nr >= r_obs)) if np.isfinite(r_obs) else n_perm
        finite = nr[np.isfinite(nr)]
        rows.append({
            "level": lv, "r": float(r_obs), "p_perm": (1 + exceed) / (1 + n_perm),
            "null_mean": float(finite.mean()) if finite.size else float("nan"),
            "null_q95": float(np.quantile(finite, 0.95)) if finite.size else float("nan"),
            "n_undefined": int(nr.size - finite.size),
        })
    return pd.DataFrame(rows)


def permutation_test(
    participant: Participant,
    *,
    n_perm: int,
    scheme: str = "circular",
    features: ParticipantFeatures | None = None,
    seed: int = 0,
    n_jobs: int | None = 1,
    min_shift: int | None = None,
) -> PermutationTest:
    """Rerun the whole prediction pipeline on structure-preserving permutations of the ratings.

    Every permutation repeats exactly what the main analysis does (:func:`~deipp_core.analyses.
    prediction.run_prediction`): rating-decile bins of each run's kept frames and their bin-mean
    edge co-fluctuations, the λ grid from all rows, nested leave-one-session-out, held-out
    predictions of the 1-min, 2-min and run rows and the pooled r at the four levels (§9–10.2).

    Cheapest exact route: ratings enter the features only through the assignment of frames to
    rating-decile bins. The z-scored kept frames of every run are computed once; a permutation
    re-bins them (``ZᵀZ`` per bin, ``O(n_frames P²)``), which is cheaper than frame-level Gram
    blocks (``O(n_frames² P)``) at the study's scale. The 1-min, 2-min and run rows are time bins,
    independent of the ratings: their features are reused and only their mean ratings change.

    Parameters
    ----------
    participant : Participant
        The participant's runs (time series and ratings).
    n_perm : int
        Permutations (paper profile: 1,000).
    scheme : {"circular", "session"}, default="circular"
        How ratings are permuted (:func:`permuted_ratings`).
    features : ParticipantFeatures, optional
        The participant's features with the default parameters (computed otherwise).
    seed : int, default=0
        Permutation ``i`` uses the ``i``-th child of ``numpy.random.SeedSequence(seed)``: results do
        not depend on ``n_jobs``.
    n_jobs : int or None, default=1
        Permutations in parallel (joblib, one BLAS thread each; blocks of 4).
    min_shift : int, optional
        Smallest circular shift in frames (default: one 1-min bin of the run).

    Returns
    -------
    PermutationTest

    Notes
    -----
    A permutation costs one nested cross-validation, re-binned features included: at paper scale on
    one core of the project machine 21 s for 25 sessions and 43 s for 30. The paper profile's 1,000
    permutations per scheme and participant are therefore 3–6 hours on two cores (about 18 hours
    for both schemes and both twin participants); :func:`cached_permutation_test` keeps every
    permutation, so such a run can be split over several sessions or machines.
    """
    _check_permutation_args(n_perm, scheme)
    feats = features if features is not None else participant_features(participant)
    ctx = _context(participant, feats)
    with threadpool_limits(limits=1):
        observed = _pipeline_r(ctx, ctx.rating)
    logger.info("sub-%s: %d %s permutations of the whole pipeline", participant.label, n_perm, scheme)
    null = _run_permutations(ctx, scheme, seed, list(range(int(n_perm))), n_jobs, min_shift)
    obs = pd.DataFrame({"level": list(observed), "r": list(observed.values())})
    return PermutationTest(participant=participant.label, scheme=scheme, n_perm=int(n_perm),
                           observed=obs, null=null, p=_p_table(obs, null, int(n_perm)))


def _check_permutation_args(n_perm, scheme: str) -> None:
    if scheme not in PERMUTATION_SCHEMES:
        raise ParameterError(f"scheme must be one of {PERMUTATION_SCHEMES}; got {scheme!r}")
    if isinstance(n_perm, bool) or int(n_perm) != n_perm or n_perm < 1:
        raise ParameterError(f"n_perm must be a positive integer; got {n_perm!r}")


#: Sources whose change invalidates a cached permutation test.
_CACHE_SOURCES = ("analyses/explanation.py", "model", "features.py", "ratings.py", "edges.py",
                  "evaluation.py", "stats.py")


def cached_permutation_test(
    dataset: Dataset,
    label: str,
    *,
    n_perm: int,
    scheme: str = "circular",
    seed: int = 0,
    n_jobs: int | None = 1,
    features: ParticipantFeatures | None = None,
    use_cache: bool = True,
) -> PermutationTest:
    """:func:`permutation_test` of one participant of a data set, cached permutation by permutation.

    Permutation ``i`` does not depend on ``n_perm`` (its seed is the ``i``-th child of
    ``SeedSequence(seed)``), so the cache keeps every permutation computed so far, in one folder under
    ``derivatives/deipp`` keyed by the data set's fingerprint, the participant, the relevant
    ``deipp_core`` sources, the scheme and the seed. A call computes only the permutations
    ``0 … n_perm − 1`` it does not find there, and writes each block of them (TSV, atomically) as
    soon as it is done. Hence:

    * asking for more permutations later (the ``paper`` profile's 1,000 after the ``book`` profile's
      19) reuses the ones already computed;
    * an interrupted run resumes where it stopped;
    * the result equals :func:`permutation_test` with the same arguments, whatever mix of cached and
      new permutations it was assembled from.
    """
    from deipp_core.data import data_fingerprint
    from deipp_core.data.derivatives import atomic_write_bytes, code_digest, derivatives_root, hash_key

    _check_permutation_args(n_perm, scheme)
    n_perm = int(n_perm)
    if not use_cache:
        return permutation_test(dataset[label], n_perm=n_perm, scheme=scheme, features=features, seed=seed,
                                n_jobs=n_jobs)
    key = hash_key(data_fingerprint(dataset.root), label, code_digest(_CACHE_SOURCES), scheme, seed,
                   "permutation_test", "by-permutation")
    folder = derivatives_root(dataset.root) / f"sub-{label}" / f"sub-{label}_desc-permtest{scheme}_key-{key}"

    def write(rows: pd.DataFrame, name: str) -> None:
        buffer = io.StringIO()
        rows.to_csv(buffer, sep="\t", index=False, float_format="%.17g")
        atomic_write_bytes(folder / name, buffer.getvalue().encode())

    parts = [pd.read_csv(path, sep="\t") for path in sorted(folder.glob("*.tsv"))]
    have = (pd.concat(parts, ignore_index=True).drop_duplicates(["perm", "level"])
            if parts else pd.DataFrame(columns=["perm", "level", "r"]))
    done = set(have["perm"].astype(int))
    need = [i for i in range(n_perm) if i not in done]
    if need or -1 not in done:
        logger.info("sub-%s: %d of %d %s permutations cached in %s; computing %d", label,
                    n_perm - len(need), n_perm, scheme, folder.name, len(need))
        ctx = _context(dataset[label], features if features is not None
                       else participant_features(dataset[label]))
        folder.mkdir(parents=True, exist_ok=True)
        if -1 not in done:
            with threadpool_limits(limits=1):
                observed = _pipeline_r(ctx, ctx.rating)
            obs_rows = pd.DataFrame({"perm": -1, "level": list(observed), "r": list(observed.values())})
            write(obs_rows, "observed.tsv")
            have = pd.concat([have, obs_rows], ignore_index=True)
        new = _run_permutations(
            ctx, scheme, seed, need, n_jobs, None,
            on_block=lambda rows: write(rows, f"perms-{rows['perm'].min():06d}-{rows['perm'].max():06d}.tsv"),
        )
        have = pd.concat([have, new], ignore_index=True)
    else:
        logger.info("sub-%s: reusing %d cached %s permutations (%s)", label, n_perm, scheme, folder.name)
    have = have.astype({"perm": int, "level": object, "r": float})
    obs = have[have["perm"] == -1][["level", "r"]].reset_index(drop=True)
    null = (have[(have["perm"] >= 0) & (have["perm"] < n_perm)]
            .sort_values("perm", kind="stable").reset_index(drop=True)[["perm", "level", "r"]])
    return PermutationTest(participant=label, scheme=scheme, n_perm=n_perm, observed=obs, null=null,
                           p=_p_table(obs, null, n_perm))


def permutation_summary(tests: list[PermutationTest], metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """Permutation p of every scheme beside the hierarchical-bootstrap p of the main analysis.

    Parameters
    ----------
    tests : list of PermutationTest
        Tests of one participant (e.g. one per scheme).
    metrics : DataFrame, optional
        ``PredictionResult.metrics`` of the same participant (``level``, ``r``, ``r_p``).

    Returns
    -------
    DataFrame
        One row per level: ``level``, ``r`` (observed), ``p_<scheme>`` and ``null_q95_<scheme>`` per
        test, and ``p_bootstrap`` (two-sided hierarchical-bootstrap p, §10.2) when ``metrics`` is
        given.
    """
    if not tests:
        raise ParameterError("give at least one PermutationTest")
    out = tests[0].p[["level", "r"]].copy()
    for t in tests:
        part = t.p.set_index("level")
        out[f"p_{t.scheme}"] = out["level"].map(part["p_perm"]).to_numpy()
        out[f"null_q95_{t.scheme}"] = out["level"].map(part["null_q95"]).to_numpy()
    if metrics is not None:
        out["p_bootstrap"] = out["level"].map(metrics.set_index("level")["r_p"]).to_numpy()
    return out


# ----------------------------------------------------------------------------------------------
# One-paragraph descriptions for the chapter (Markdown)
# ----------------------------------------------------------------------------------------------


def _fmt(v: float, digits: int = 2) -> str:
    return "undefined" if not np.isfinite(v) else f"{v:.{digits}f}"


def describe_patterns(comparisons: dict[str, PatternComparison], n_components: dict[str, int]) -> str:
    """One sentence per participant: agreement of weights and pattern, and (twin) planted-edge recovery.

    Parameters
    ----------
    comparisons : dict of str to PatternComparison
        Keyed by display name.
    n_components : dict of str to int
        Components of each final model (same keys).

    Returns
    -------
    str
        Markdown.
    """
    parts = []
    for name, c in comparisons.items():
        s = c.summary
        k = n_components[name]
        text = (f"**{name}** (final model with {k} component{'s' if k != 1 else ''}): weights and pattern "
                f"correlate at r = {_fmt(s['edge_r'])} over edges and r = {_fmt(s['region_r_pos'])} / "
                f"{_fmt(s['region_r_neg'])} over the regional positive / negative sums")
        if s["n_planted"]:
            text += (f"; the AUC for the {s['n_planted']} planted edges is {_fmt(s['auc_weight'])} by |weight| "
                     f"and {_fmt(s['auc_pattern'])} by |pattern|")
        parts.append(text)
    return ";\n".join(parts) + "."


def describe_stability(stabilities: dict[str, WeightStability], planted: dict[str, np.ndarray] | None = None) -> str:
    """One sentence per participant: how many edges have |z| > 2 and a consistent sign (and, on the
    twin, how many of them are planted).

    Returns
    -------
    str
        Markdown.
    """
    parts = []
    for name, st in stabilities.items():
        stable = (np.abs(np.nan_to_num(st.z)) > 2) & (st.sign_consistency >= 0.95)
        text = (f"**{name}**: {int(stable.sum()):,} of {st.z.size:,} edges have |z| > 2 and keep their sign "
                f"in at least 95 % of the {st.n_boot:,} refits (median |z| {_fmt(float(np.nanmedian(np.abs(st.z))))})")
        if planted is not None and name in planted and np.any(planted[name]):
            mask = np.asarray(planted[name], bool)
            text += (f"; {int((stable & mask).sum())} of them are planted edges ({int(mask.sum())} planted "
                     f"in all, {stable.sum() * mask.mean():.1f} expected by chance)")
        parts.append(text)
    return ";\n".join(parts) + "."


def describe_permutation(summaries: dict[str, pd.DataFrame], alpha: float = 0.05) -> str:
    """One sentence per participant: at which levels each p is at most ``alpha``.

    A permutation p of ``(1 + b) / (1 + n_perm)`` rejects at level α when ``p ≤ α`` (exact size α when
    ``α (n_perm + 1)`` is an integer), so ``≤`` is used for every p here.

    Parameters
    ----------
    summaries : dict of str to DataFrame
        :func:`permutation_summary` per participant (with ``p_bootstrap`` when available).
    alpha : float, default=0.05

    Returns
    -------
    str
        Markdown.
    """
    from deipp_core.reporting import LEVEL_NAMES

    labels = {"p_session": "sessions permuted", "p_circular": "runs circularly shifted",
              "p_bootstrap": "hierarchical bootstrap"}
    parts = []
    for name, s in summaries.items():
        bits = []
        for col in [c for c in s.columns if c.startswith("p_")]:
            sig = [LEVEL_NAMES.get(lv, lv) for lv, p in zip(s["level"], s[col]) if p <= alpha]
            bits.append(f"{', '.join(sig) if sig else 'no level'} ({labels.get(col, col[2:])})")
        parts.append(f"**{name}**: p ≤ {alpha:g} at " + "; ".join(bits))
    return ";\n".join(parts) + "."
