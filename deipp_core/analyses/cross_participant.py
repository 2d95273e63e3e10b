"""Are personalized models individually specific? Cross-participant tests (paper Fig. 3e–f, §10.6).

:func:`cross_participant` applies the training participant's **final all-session model**
(``beta_best_edge.all``) to every 1-min bin, 2-min bin and run of the test participant and evaluates
the predictions with the four-level block of the main analysis (:mod:`deipp_core.evaluation`, §10.2).
:func:`generalization_table` runs every ordered pair of participants and sets the cross-participant
metrics beside each participant's own held-out (within-participant) metrics.

:func:`feature_overlap` asks whether the two models rely on the same features: the correlation of
their edge-weight vectors (with a node-permutation null that keeps the matrix structure), the overlap
of their strongest edges and of their top regions, each with its expectation under chance.

The original (``analysis_predict_rating_crosstest.m``) builds the test participant's edges on a
parcellation path from an undefined variable; the edges only match the weights with the **training**
participant's parcellation (§17.1), which is what this module requires. On the digital twin both
participants share the Seitzman atlas, so the included parcels coincide.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from deipp_core import evaluation
from deipp_core.analyses.importance import top_regions as _top_mask
from deipp_core.analyses.prediction import EVAL_KINDS, PredictionResult
from deipp_core.edges import edge_indices, sym_to_vec, vec_to_sym
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.features import ParticipantFeatures

__all__ = [
    "CrossParticipantResult",
    "cross_participant",
    "generalization_table",
    "feature_overlap",
    "edge_columns",
    "generalization_summary",
    "overlap_summary",
]

logger = logging.getLogger(__name__)


@dataclass
class CrossParticipantResult:
    """One direction of the cross-participant test.

    Attributes
    ----------
    train, test : str
        Labels of the participant whose final model is applied and of the participant it predicts.
    predictions : DataFrame
        The test participant's ``tbin10``, ``tbin5`` and ``run`` feature rows with ``predicted``.
    levels : DataFrame
        :func:`deipp_core.evaluation.level_table` of those predictions.
    metrics : DataFrame
        :func:`deipp_core.evaluation.evaluate`: r, AUC, R², MAE with hierarchical-bootstrap CIs and p.
    roc : DataFrame
        ROC points per level.
    """

    train: str
    test: str
    predictions: pd.DataFrame
    levels: pd.DataFrame
    metrics: pd.DataFrame
    roc: pd.DataFrame


def edge_columns(train_parcels: np.ndarray, test_parcels: np.ndarray) -> np.ndarray:
    """Columns of the test features that hold the training model's edges, in the model's order.

    Parameters
    ----------
    train_parcels, test_parcels : ndarray of int
        Atlas rows of the included parcels of the model and of the test features (both in the
        **same** atlas: the training participant's parcellation).

    Returns
    -------
    ndarray of int64, shape (P_train(P_train−1)/2,)
        ``X_test[:, cols]`` lines up with the model's weights.

    Raises
    ------
    DataFormatError
        If a parcel of the model is not among the test parcels.

    Examples
    --------
    >>> edge_columns(np.array([0, 1, 2]), np.array([0, 1, 2])).tolist()
    [0, 1, 2]
    >>> edge_columns(np.array([0, 2]), np.array([0, 1, 2])).tolist()   # edge (0, 2) of 3 parcels
    [1]
    """
    train_parcels = np.asarray(train_parcels, dtype=np.int64)
    test_parcels = np.asarray(test_parcels, dtype=np.int64)
    pos = {int(p): k for k, p in enumerate(test_parcels)}
    missing = [int(p) for p in train_parcels if int(p) not in pos]
    if missing:
        raise DataFormatError(
            f"{len(missing)} parcel(s) of the training model (atlas rows {missing[:5]}"
            f"{'…' if len(missing) > 5 else ''}) are not among the test participant's included parcels; "
            "build the test features with the training participant's parcellation (methods §10.6)"
        )
    i, j = edge_indices(train_parcels.size)
    qi = np.array([pos[int(p)] for p in train_parcels[i]], dtype=np.int64)
    qj = np.array([pos[int(p)] for p in train_parcels[j]], dtype=np.int64)
    lo, hi = np.minimum(qi, qj), np.maximum(qi, qj)
    return hi * (hi - 1) // 2 + lo  # column-major upper-triangle position of (lo, hi)


def cross_participant(
    train_result: PredictionResult,
    test_features: ParticipantFeatures,
    *,
    n_boot: int,
    seed: int = 0,
) -> CrossParticipantResult:
    """Apply one participant's final model to another participant's data and evaluate it (§10.6).

    Parameters
    ----------
    train_result : PredictionResult
        The training participant's nested LOSO result; its final all-session model
        (``cv.final_coef``, ``cv.final_intercept``) is applied.
    test_features : ParticipantFeatures
        The test participant's features, built on the training participant's parcellation (on the
        twin both share the atlas). Frames and bins are the test participant's own.
    n_boot : int
        Hierarchical bootstrap resamples (paper: 10,000).
    seed : int, default=0
        Seed of the bootstrap.

    Returns
    -------
    CrossParticipantResult

    Notes
    -----
    Every session of the test participant is unseen by the model, so no cross-validation is needed;
    the same evaluation as the within-participant test is used (pooled r and AUC at four levels,
    single-class resamples rejected).
    """
    if train_result.participant == test_features.participant:
        raise ParameterError(
            f"train and test are the same participant (sub-{test_features.participant}); the "
            "within-participant test is run_prediction's held-out evaluation"
        )
    cols = edge_columns(train_result.features.parcels, test_features.parcels)
    mask = test_features.rows["kind"].isin(EVAL_KINDS).to_numpy()
    X = test_features.X[mask][:, cols]
    rows = test_features.rows.loc[mask].reset_index(drop=True)
    pred = X @ train_result.cv.final_coef + train_result.cv.final_intercept
    predictions = rows.assign(predicted=pred)
    levels = evaluation.level_table(predictions)
    metrics = evaluation.evaluate(levels, n_boot=n_boot, seed=seed)
    logger.info("model of sub-%s on sub-%s: 1-min r = %.3f", train_result.participant,
                test_features.participant, float(metrics["r"].iloc[0]))
    return CrossParticipantResult(
        train=train_result.participant,
        test=test_features.participant,
        predictions=predictions,
        levels=levels,
        metrics=metrics,
        roc=pd.concat(
            [evaluation.roc_source_data(levels, lv).set_axis(["fpr", "tpr"], axis=1).assign(level=lv)
             for lv in evaluation.LEVELS],
            ignore_index=True,
        ),
    )


def generalization_table(
    results: Mapping[str, PredictionResult],
    *,
    n_boot: int,
    seed: int = 0,
    tests: Sequence[str] | None = None,
) -> tuple[dict[tuple[str, str], CrossParticipantResult], pd.DataFrame]:
    """Within- and cross-participant metrics for every ordered pair of participants.

    Parameters
    ----------
    results : mapping of str to PredictionResult
        Each participant's nested LOSO result (keys are display names, e.g. ``"Participant 1"``).
    n_boot : int
        Bootstrap resamples of each cross-participant evaluation.
    seed : int, default=0
    tests : sequence of str, optional
        Test participants to include (default: all); every other participant's model is applied to
        each of them.

    Returns
    -------
    cross : dict of (str, str) to CrossParticipantResult
        Keyed by (train name, test name).
    table : DataFrame
        Long format: ``train``, ``test``, ``test_kind`` (``"within"``: the participant's own held-out
        predictions; ``"cross"``: the other participant's model) and the columns of
        :func:`deipp_core.evaluation.evaluate`, ordered by test participant, then train participant,
        then level.
    """
    names = list(results)
    if len(names) < 2:
        raise ParameterError(
            f"a cross-participant test needs at least two participants; got {names}. Load every "
            "participant of the data set (participants=None)"
        )
    tests = names if tests is None else list(tests)
    unknown = [t for t in tests if t not in results]
    if unknown:
        raise ParameterError(f"test participant(s) {unknown} are not among the results {names}")
    cross: dict[tuple[str, str], CrossParticipantResult] = {}
    parts = []
    for test in tests:
        for train in names:
            if train == test:
                m = results[test].metrics.copy()
                kind = "within"
            else:
                res = cross_participant(results[train], results[test].features, n_boot=n_boot, seed=seed)
                cross[(train, test)] = res
                m = res.metrics.copy()
                kind = "cross"
            m.insert(0, "test_kind", kind)
            m.insert(0, "test", test)
            m.insert(0, "train", train)
            parts.append(m)
    return cross, pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


# ----------------------------------------------------------------------------------------------
# Feature overlap
# ----------------------------------------------------------------------------------------------


def _overlap_row(measure: str, a: np.ndarray, b: np.ndarray) -> list[dict]:
    """Set overlap of two boolean masks over the same N items, with its hypergeometric chance level."""
    n, ka, kb = a.size, int(a.sum()), int(b.sum())
    inter = int((a & b).sum())
    union = int((a | b).sum())
    expected = ka * kb / n if n else float("nan")
    p = float(stats.hypergeom.sf(inter - 1, n, ka, kb)) if n else float("nan")
    dice = 2 * inter / (ka + kb) if ka + kb else float("nan")
    exp_dice = 2 * expected / (ka + kb) if ka + kb else float("nan")
    # E[Jaccard] is not E[∩]/E[∪]; report the plug-in chance value E[∩] / (ka + kb − E[∩])
    exp_jacc = expected / (ka + kb - expected) if ka + kb else float("nan")
    return [
        {"measure": measure, "statistic": "shared", "value": float(inter), "chance": expected, "p": p,
         "k_a": ka, "k_b": kb, "n": n},
        {"measure": measure, "statistic": "dice", "value": dice, "chance": exp_dice, "p": p,
         "k_a": ka, "k_b": kb, "n": n},
        {"measure": measure, "statistic": "jaccard", "value": inter / union if union else float("nan"),
         "chance": exp_jacc, "p": p, "k_a": ka, "k_b": kb, "n": n},
    ]


def _corr_row(measure: str, a: np.ndarray, b: np.ndarray, rng, n_perm: int, *, spearman: bool) -> dict:
    """Correlation of two region vectors with a label-permutation p (two-sided)."""
    if spearman:
        a, b = stats.rankdata(a), stats.rankdata(b)
    r = float(np.corrcoef(a, b)[0, 1])
    perms = np.argsort(rng.random((n_perm, b.size)), axis=1)
    bc = b[perms] - b.mean()
    ac = a - a.mean()
    null = (bc @ ac) / (np.linalg.norm(ac) * np.linalg.norm(bc, axis=1))
    p = (np.sum(np.abs(null) >= abs(r)) + 1) / (n_perm + 1)
    return {"measure": measure, "statistic": "spearman_r" if spearman else "pearson_r", "value": r,
            "chance": 0.0, "p": float(p), "k_a": a.size, "k_b": b.size, "n": a.size}


def _mantel_row(Wa: np.ndarray, Wb: np.ndarray, rng, n_perm: int) -> dict:
    """Pearson r of two edge-weight vectors; p from permuting the node labels of one matrix."""
    va, vb = sym_to_vec(Wa), sym_to_vec(Wb)
    r = float(np.corrcoef(va, vb)[0, 1])
    ac = (va - va.mean()) / np.linalg.norm(va - va.mean())
    i, j = edge_indices(Wa.shape[0])
    null = np.empty(n_perm)
    for p in range(n_perm):  # one gather of E entries per permutation; memory O(E)
        perm = rng.permutation(Wa.shape[0])
        v = Wb[perm[i], perm[j]]
        v = v - v.mean()
        null[p] = ac @ v / np.linalg.norm(v)
    p = (np.sum(np.abs(null) >= abs(r)) + 1) / (n_perm + 1)
    return {"measure": "edge weights", "statistic": "pearson_r", "value": r, "chance": 0.0,
            "p": float(p), "k_a": va.size, "k_b": vb.size, "n": va.size}


def feature_overlap(
    result_a: PredictionResult,
    result_b: PredictionResult,
    *,
    importance_a: pd.DataFrame | None = None,
    importance_b: pd.DataFrame | None = None,
    top_edges: float = 0.01,
    k_regions: int = 10,
    n_perm: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Do two participants' models rely on the same features?

    Compares the final all-session models of two participants over the parcels they share.

    Parameters
    ----------
    result_a, result_b : PredictionResult
        The two participants' nested LOSO results (parcels in the same atlas).
    importance_a, importance_b : DataFrame, optional
        Their :attr:`~deipp_core.analyses.importance.RegionImportance.table`; adds the importance
        rows.
    top_edges : float, default=0.01
        Fraction of edges (by |weight|) taken as each model's strongest edges.
    k_regions : int, default=10
        Size of the top-region sets (the original's hazen rule, :func:`top_regions`).
    n_perm : int, default=1000
        Permutations of the correlation nulls.
    seed : int, default=0

    Returns
    -------
    DataFrame
        One row per (``measure``, ``statistic``) with ``value``, ``chance`` (expected value under
        independence), ``p`` (one-sided hypergeometric for overlaps; two-sided permutation for
        correlations), ``k_a``, ``k_b`` (set sizes or vector lengths) and ``n`` (items compared):

        * ``edge weights`` / ``pearson_r``: r of the two weight vectors; the null permutes the
          node labels of one weight matrix (a Mantel test), which keeps the dependence between the
          edges of one region that an edge-wise test would ignore;
        * ``top edges (|w|)`` and ``top edges (same sign)``: ``shared``, ``dice``, ``jaccard`` of the
          strongest edges (chance: ``k_a·k_b/n``, hypergeometric);
        * ``top regions (wpos)``, ``top regions (wneg)``, ``top regions (imp)``: the same for the
          top-``k_regions`` regions;
        * ``wpos``, ``wneg``, ``imp`` / ``spearman_r``: rank correlation of the region metrics
          (region-label permutation null).

    Notes
    -----
    The chance Jaccard is the plug-in ``E[∩]/(k_a + k_b − E[∩])``; the p-value of the three overlap
    statistics of a measure is the same (they are monotone in the shared count).
    """
    from deipp_core.analyses.importance import region_weights

    if not 0 < top_edges <= 1:
        raise ParameterError(f"top_edges must be a fraction in (0, 1]; got {top_edges!r}")
    pa, pb = result_a.features.parcels, result_b.features.parcels
    common = np.intersect1d(pa, pb)
    if common.size < 3:
        raise DataFormatError(
            f"sub-{result_a.participant} and sub-{result_b.participant} share {common.size} parcel(s); "
            "feature overlap needs models on the same parcellation"
        )
    pos_a = {int(p): k for k, p in enumerate(pa)}
    pos_b = {int(p): k for k, p in enumerate(pb)}
    ia = np.array([pos_a[int(c)] for c in common], dtype=np.int64)
    ib = np.array([pos_b[int(c)] for c in common], dtype=np.int64)
    Wa = vec_to_sym(result_a.cv.final_coef, pa.size)[np.ix_(ia, ia)]
    Wb = vec_to_sym(result_b.cv.final_coef, pb.size)[np.ix_(ib, ib)]
    rng = np.random.default_rng(seed)
    rows = [_mantel_row(Wa, Wb, rng, n_perm)]

    va, vb = sym_to_vec(Wa), sym_to_vec(Wb)
    k = max(1, math.ceil(top_edges * va.size))
    top_a = np.zeros(va.size, bool)
    top_b = np.zeros(vb.size, bool)
    top_a[np.argsort(-np.abs(va), kind="stable")[:k]] = True
    top_b[np.argsort(-np.abs(vb), kind="stable")[:k]] = True
    rows += _overlap_row("top edges (|w|)", top_a, top_b)
    # shared strongest edges whose weights also agree in sign; chance = E[shared] · P(signs agree)
    # with each model's own fraction of positive weights among its strongest edges
    agree = top_a & top_b & (np.sign(va) == np.sign(vb))
    frac_a, frac_b = float(np.mean(va[top_a] > 0)), float(np.mean(vb[top_b] > 0))
    rows.append({"measure": "top edges (same sign)", "statistic": "shared", "value": float(agree.sum()),
                 "chance": k * k / va.size * (frac_a * frac_b + (1 - frac_a) * (1 - frac_b)),
                 "p": float("nan"), "k_a": k, "k_b": k, "n": va.size})

    wa = region_weights(sym_to_vec(Wa), common.size)
    wb = region_weights(sym_to_vec(Wb), common.size)
    for col, low in (("wpos", False), ("wneg", True)):
        rows += _overlap_row(f"top regions ({col})", _top_mask(wa[col].to_numpy(), k_regions, low=low),
                             _top_mask(wb[col].to_numpy(), k_regions, low=low))
        rows.append(_corr_row(col, wa[col].to_numpy(), wb[col].to_numpy(), rng, n_perm, spearman=True))
    if importance_a is not None and importance_b is not None:
        imp_a = importance_a.set_index("parcel").loc[common, "imp"].to_numpy(float)
        imp_b = importance_b.set_index("parcel").loc[common, "imp"].to_numpy(float)
        rows += _overlap_row("top regions (imp)", _top_mask(imp_a, k_regions), _top_mask(imp_b, k_regions))
        rows.append(_corr_row("imp", imp_a, imp_b, rng, n_perm, spearman=True))
    out = pd.DataFrame(rows, columns=["measure", "statistic", "value", "chance", "p", "k_a", "k_b", "n"])
    out.attrs["participants"] = (result_a.participant, result_b.participant)
    return out


def generalization_summary(table: pd.DataFrame, *, level: str = "1min") -> str:
    """A Markdown sentence per test participant: own-model vs other-model r and AUC at one level.

    Parameters
    ----------
    table : DataFrame
        :func:`generalization_table`.
    level : str, default="1min"

    Returns
    -------
    str
    """
    d = table[table["level"] == level]
    parts = []
    for test in dict.fromkeys(d["test"]):
        own = d[(d["test"] == test) & (d["test_kind"] == "within")]
        text = f"**{test}**"
        if not own.empty:
            o = own.iloc[0]
            text += (f": own model r = {o['r']:.2f} [{o['r_ci_low']:.2f}, {o['r_ci_high']:.2f}], "
                     f"AUC = {o['auc']:.2f} [{o['auc_ci_low']:.2f}, {o['auc_ci_high']:.2f}]")
        for _, c in d[(d["test"] == test) & (d["test_kind"] == "cross")].iterrows():
            text += (f"; model of {c['train']} r = {c['r']:.2f} [{c['r_ci_low']:.2f}, {c['r_ci_high']:.2f}], "
                     f"AUC = {c['auc']:.2f} [{c['auc_ci_low']:.2f}, {c['auc_ci_high']:.2f}]")
        parts.append(text)
    return ";\n".join(parts) + "."


def overlap_summary(overlap: pd.DataFrame) -> str:
    """A Markdown sentence on the two models' shared features, each value beside its chance level.

    Parameters
    ----------
    overlap : DataFrame
        :func:`feature_overlap`.

    Returns
    -------
    str
    """
    t = overlap.set_index(["measure", "statistic"])
    w = t.loc[("edge weights", "pearson_r")]
    e = t.loc[("top edges (|w|)", "shared")]
    text = (f"the two models' edge weights correlate at r = {w['value']:.3f} (node-permutation "
            f"p = {w['p']:.2g}); of their {int(e['k_a'])} strongest edges each, {int(e['value'])} are "
            f"shared ({e['chance']:.1f} expected by chance)")
    for measure in ("top regions (imp)", "top regions (wpos)", "top regions (wneg)"):
        if (measure, "dice") in t.index:
            d = t.loc[(measure, "dice")]
            text += f"; {measure}: Dice = {d['value']:.2f} (chance {d['chance']:.2f}, p = {d['p']:.2g})"
    return text[0].upper() + text[1:] + "."
