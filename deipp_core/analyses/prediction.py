"""The main analysis (paper Fig. 2): held-out prediction of pain at four levels.

For one participant: bin-mean edge co-fluctuations (:mod:`deipp_core.features`) → LASSO-PCR with
nested leave-one-session-out (:func:`deipp_core.model.nested_loso`; models trained on rating-decile
bins) → held-out predictions of the 1-min and 2-min time bins and of the run means (each from the
outer-fold model of its own session) → r, AUC, R², MAE at the 1-min, 2-min, run and session levels
with hierarchical-bootstrap CIs and p (:mod:`deipp_core.evaluation`).
"""

from __future__ import annotations

import dataclasses
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deipp_core import evaluation
from deipp_core.data.dataset import Dataset, Participant
from deipp_core.data.derivatives import atomic_write_bytes, code_digest, derivatives_root, hash_key
from deipp_core.features import ParticipantFeatures, cached_features, participant_features
from deipp_core.model import NestedLOSOResult, nested_loso
from deipp_core.profiles import Profile, get_profile

__all__ = ["PredictionResult", "run_prediction", "predict_participant", "edge_recovery", "save_cv", "load_cv"]

logger = logging.getLogger(__name__)

#: Feature rows that get held-out predictions, and the level each becomes.
EVAL_KINDS = ("tbin10", "tbin5", "run")


@dataclass
class PredictionResult:
    """Everything the prediction chapter shows for one participant.

    Attributes
    ----------
    participant : str
    features : ParticipantFeatures
    cv : NestedLOSOResult
        The fitted nested cross-validation (λ grid, selections, fold and final models).
    predictions : DataFrame
        The feature rows of kinds ``rbin10``, ``tbin10``, ``tbin5`` and ``run`` with their held-out
        ``predicted`` value.
    levels : DataFrame
        Actual and predicted pain per unit at the four levels (``level``, ``session``, ``run``, ``bin``,
        ``actual``, ``predicted``).
    metrics : DataFrame
        One row per level: r, AUC, R², MAE with bootstrap CIs and p.
    within_run, within_session : DataFrame
        Per-unit correlations over the 1-min bins of each run / session.
    within_summary : DataFrame
        Mean within-run and within-session r with bootstrap CI and p.
    roc : DataFrame
        ROC points (``level``, ``fpr``, ``tpr``).
    """

    participant: str
    features: ParticipantFeatures
    cv: NestedLOSOResult
    predictions: pd.DataFrame
    levels: pd.DataFrame
    metrics: pd.DataFrame
    within_run: pd.DataFrame
    within_session: pd.DataFrame
    within_summary: pd.DataFrame
    roc: pd.DataFrame


def run_prediction(
    participant: Participant,
    *,
    profile: str | Profile = "quick",
    seed: int = 0,
    n_jobs: int = 1,
    features: ParticipantFeatures | None = None,
    cv: NestedLOSOResult | None = None,
) -> PredictionResult:
    """Nested leave-one-session-out prediction of one participant's pain, evaluated at four levels.

    Parameters
    ----------
    participant : Participant
        The participant's runs (from :func:`deipp_core.data.load_dataset`).
    profile : str or Profile, default="quick"
        Sets the number of bootstrap resamples (``paper``: 10,000).
    seed : int, default=0
        Seed of the bootstrap.
    n_jobs : int, default=1
        Parallel outer folds (one BLAS thread each).
    features : ParticipantFeatures, optional
        Precomputed features of this participant (computed otherwise).
    cv : NestedLOSOResult, optional
        A nested cross-validation already fitted on these features (see :func:`predict_participant`,
        which caches it on disk); fitted otherwise.

    Returns
    -------
    PredictionResult
    """
    prof = get_profile(profile)
    feats = features if features is not None else participant_features(participant)
    X_train, rows_train = feats.select("rbin10")
    eval_mask = feats.rows["kind"].isin(EVAL_KINDS).to_numpy()
    X_eval, rows_eval = feats.X[eval_mask], feats.rows[eval_mask]
    logger.info("sub-%s: nested LOSO on %d rows × %d edges (%d sessions)", participant.label,
                X_train.shape[0], X_train.shape[1], feats.n_sessions)
    if cv is None:
        cv = nested_loso(
            X_train, rows_train["rating"].to_numpy(), rows_train["session"].to_numpy(),
            X_eval=X_eval, groups_eval=rows_eval["session"].to_numpy(), n_jobs=n_jobs,
        )
    predictions = pd.concat(
        [rows_train.assign(predicted=cv.y_pred_train), rows_eval.assign(predicted=cv.y_pred_eval)],
        ignore_index=True,
    )
    levels = evaluation.level_table(predictions)
    metrics = evaluation.evaluate(levels, n_boot=prof.n_boot, seed=seed)
    within_run = evaluation.within_correlations(levels, by="run", n_boot=prof.n_boot, seed=seed)
    within_session = evaluation.within_correlations(levels, by="session", n_boot=prof.n_boot, seed=seed)
    roc = pd.concat(
        [evaluation.roc_source_data(levels, lv).set_axis(["fpr", "tpr"], axis=1).assign(level=lv)
         for lv in evaluation.LEVELS],
        ignore_index=True,
    )
    return PredictionResult(
        participant=participant.label,
        features=feats,
        cv=cv,
        predictions=predictions,
        levels=levels,
        metrics=metrics,
        within_run=within_run.units,
        within_session=within_session.units,
        within_summary=pd.concat([within_run.summary, within_session.summary], ignore_index=True),
        roc=roc,
    )


def edge_recovery(weights: np.ndarray, features: ParticipantFeatures, dataset: Dataset) -> dict:
    """How well edge weights recover the twin's planted pain edges.

    Parameters
    ----------
    weights : ndarray of shape (n_edges,)
        Edge weights in the feature order of ``features`` (e.g. ``cv.final_coef``).
    features : ParticipantFeatures
        Gives the included parcels, hence the edge → parcel-pair map.
    dataset : Dataset
        A twin with ground truth for ``features.participant``.

    Returns
    -------
    dict
        ``auc``: AUC of |w| for planted vs other edges; ``sign_agreement``: fraction of planted edges
        with a non-zero weight whose sign matches the planted sign; ``n_planted``: planted edges among
        the included parcels.
    """
    from sklearn.metrics import roc_auc_score

    from deipp_core.edges import edge_indices

    truth = dataset.ground_truth.get(features.participant)
    if not truth:
        raise ValueError(f"no ground truth for sub-{features.participant}: edge recovery needs the digital twin")
    i, j = edge_indices(len(features.parcels))
    pi, pj = features.parcels[i], features.parcels[j]
    planted = truth["edges"]
    sign = {(min(a, b), max(a, b)): s for a, b, s in planted[["parcel_i", "parcel_j", "sign"]].to_numpy()}
    keys = list(zip(np.minimum(pi, pj), np.maximum(pi, pj)))
    is_planted = np.array([k in sign for k in keys])
    planted_sign = np.array([sign.get(k, 0) for k in keys])
    w = np.asarray(weights, dtype=float)
    nz = is_planted & (w != 0)
    return {
        "auc": float(roc_auc_score(is_planted, np.abs(w))) if 0 < is_planted.sum() < len(w) else float("nan"),
        "sign_agreement": float(np.mean(np.sign(w[nz]) == planted_sign[nz])) if nz.any() else float("nan"),
        "n_planted": int(is_planted.sum()),
    }


def save_cv(cv: NestedLOSOResult, path: Path) -> None:
    """Write a :class:`NestedLOSOResult` to ``path`` (``.npz``) atomically (fold splits are not kept)."""
    arrays = {}
    for f in dataclasses.fields(cv):
        value = getattr(cv, f.name)
        if f.name == "splits" or value is None:
            continue
        value = np.asarray(value)
        # Session labels come as an object array; store text so the file loads without pickle.
        arrays[f.name] = value.astype(str) if value.dtype == object else value
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_cv(path: Path) -> NestedLOSOResult:
    """Read a result written by :func:`save_cv`."""
    with np.load(path, allow_pickle=False) as npz:
        values = {}
        for f in dataclasses.fields(NestedLOSOResult):
            if f.name == "splits":
                continue
            if f.name in npz:
                v = npz[f.name]
                values[f.name] = v.item() if v.ndim == 0 else v
            else:
                values[f.name] = None
    return NestedLOSOResult(**values)


def predict_participant(
    dataset: Dataset,
    label: str,
    *,
    profile: str | Profile = "quick",
    seed: int = 0,
    n_jobs: int = 1,
    use_cache: bool = True,
) -> PredictionResult:
    """:func:`run_prediction` for one participant of a data set, with the fitted cross-validation
    cached under ``derivatives/deipp/sub-<label>/``.

    The cache key covers the data set's fingerprint, the participant and the ``deipp_core`` source, so
    any change to the data or the code refits; the file is written atomically. Features come from
    :func:`~deipp_core.features.cached_features` (cached unless ``use_cache=False`` or ``DEIPP_CACHE=0``); the
    bootstrap statistics are recomputed for the requested profile.
    """
    from deipp_core.data import data_fingerprint

    participant = dataset[label]
    features = cached_features(dataset, label, use_cache=None if use_cache else False)
    cv = None
    path = None
    if use_cache:
        key = hash_key(data_fingerprint(dataset.root), label, code_digest(), "nested_loso")
        path = derivatives_root(dataset.root) / f"sub-{label}" / f"sub-{label}_desc-nestedloso_key-{key}.npz"
        if path.is_file():
            logger.info("sub-%s: reusing the cached nested cross-validation %s", label, path.name)
            cv = load_cv(path)
    result = run_prediction(participant, profile=profile, seed=seed, n_jobs=n_jobs, features=features, cv=cv)
    if use_cache and cv is None:
        save_cv(result.cv, path)
    return result
