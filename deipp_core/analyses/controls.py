"""Control analyses of the paper's supplement: rest, head motion, sessions 1–12 and run 1 only.

Each control reuses the pieces of the main analysis (:mod:`deipp_core.features`,
:func:`deipp_core.model.nested_loso`, :mod:`deipp_core.evaluation`) and returns a
:class:`ControlResult` with the same tables as the main test (level table, metrics, ROC points):

* :func:`rest_control` — the **final all-session model** applied to each session's resting-state run;
  x = mean rating of rating run 1 of that session, y = mean prediction over the rest run; r and AUC
  with a plain session bootstrap and no single-class rejection (``reference/deipp_methods.md`` §10.3,
  ``analysis_predict_rating_testonrest.m``).
* :func:`motion_control` — framewise displacement from the **unfiltered** realignment parameters at the
  kept brain frames, averaged like the ratings (1-min and 2-min bins, runs, sessions); x = FD,
  y = the held-out predicted pain of the main analysis (§10.4, ``analysis_predict_rating_headmov.m``).
* :func:`first_sessions_control` — nested leave-one-session-out restricted to the first 12 sessions,
  evaluated on them (§9.5, §10.1 ``_ses12test``): equal amounts of data for both participants.
* :func:`run1_control` — the main held-out predictions of rating run 1 only (the run that follows
  the rest scan), at the 1-min, 2-min and run (= session) levels; bootstrap of sessions, then bins
  (§13, ``analysis_visualize_model_testonrun1.m``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deipp_core import evaluation
from deipp_core.data.dataset import Participant
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.features import ParticipantFeatures
from deipp_core.model import NestedLOSOResult, nested_loso
from deipp_core.motion import framewise_displacement
from deipp_core.ratings import bin_means
from deipp_core.reporting import format_ci
from deipp_core.stats import roc_points

__all__ = [
    "ControlResult",
    "rest_control",
    "fd_rows",
    "motion_control",
    "first_sessions",
    "first_sessions_control",
    "run1_control",
    "controls_table",
    "controls_summary",
    "twin_motion_note",
]

logger = logging.getLogger(__name__)

#: Feature-row kinds that the four evaluation levels are built from.
_EVAL_KINDS = ("tbin10", "tbin5", "run")


@dataclass
class ControlResult:
    """The evaluation of one control analysis for one participant.

    Attributes
    ----------
    control : str
        ``"rest"``, ``"motion"``, ``"ses12"`` or ``"run1"``.
    participant : str
        Participant label.
    levels : DataFrame
        Units with ``level``, ``session``, ``run``, ``bin`` and the two value columns ``x`` and
        ``predicted`` (as :func:`deipp_core.evaluation.level_table`).
    metrics : DataFrame
        One row per level: r, AUC, R², MAE with bootstrap CIs and p (as
        :func:`deipp_core.evaluation.evaluate`).
    roc : DataFrame
        ROC points of the median split of x scored by the prediction: ``level``, ``fpr``, ``tpr``.
    x : str
        Name of the x column: ``"actual"`` (pain rating) or ``"fd"`` (framewise displacement, mm).
    n_sessions : int
        Sessions evaluated.
    cv : NestedLOSOResult or None
        The nested cross-validation fitted for this control (only :func:`first_sessions_control`).
    """

    control: str
    participant: str
    levels: pd.DataFrame
    metrics: pd.DataFrame
    roc: pd.DataFrame
    x: str = "actual"
    n_sessions: int = 0
    cv: NestedLOSOResult | None = None


def _roc_table(levels: pd.DataFrame, x: str, y: str = "predicted") -> pd.DataFrame:
    parts = []
    for lv in evaluation.LEVELS:
        d = levels[levels["level"] == lv]
        if d.empty:
            continue
        try:
            fpr, tpr = roc_points(d[x].to_numpy(float), d[y].to_numpy(float))
        except ParameterError:
            logger.warning("level %s: the median split of %s has a single class; no ROC curve", lv, x)
            continue
        parts.append(pd.DataFrame({"level": lv, "fpr": fpr, "tpr": tpr}))
    if not parts:
        return pd.DataFrame(columns=["level", "fpr", "tpr"])
    return pd.concat(parts, ignore_index=True)


def _session_sort_key(label: str):
    return (0, int(label), label) if str(label).isdigit() else (1, 0, str(label))


# ----------------------------------------------------------------------------------------------
# Test on rest (§10.3)
# ----------------------------------------------------------------------------------------------


def rest_control(
    features: ParticipantFeatures,
    cv: NestedLOSOResult,
    *,
    n_boot: int = 10_000,
    seed: int = 0,
) -> ControlResult:
    """Apply the final all-session model to each session's rest run (§10.3).

    Parameters
    ----------
    features : ParticipantFeatures
        With ``"rest"`` rows (mean co-fluctuation over the kept frames of each rest run: same 30-s
        trim, 13-TR offset and censoring as the rating runs) and ``"run"`` rows.
    cv : NestedLOSOResult
        The participant's nested cross-validation; its **final** model (``final_coef``,
        ``final_intercept``), trained on the rating runs of *all* sessions, is applied.
    n_boot : int, default=10_000
        Plain session-bootstrap resamples (:func:`deipp_core.evaluation.session_bootstrap`).
    seed : int, default=0

    Returns
    -------
    ControlResult
        ``levels`` has one ``"session"`` row per session with both a rest run and a rating run 1:
        ``actual`` = mean rating of rating run 1 (``rating_dat(1, :)``), ``predicted`` = mean
        prediction over the rest run. Because the model is linear, the mean of the frame-wise
        predictions equals the prediction of the mean co-fluctuation row.

    Raises
    ------
    DataFormatError
        If there are no rest rows, or no session has both a rest run and a rating run 1.
    """
    rest = features.rows["kind"].to_numpy() == "rest"
    if not rest.any():
        raise DataFormatError(
            f"sub-{features.participant}: the features have no rest rows; build them with "
            "participant_features(..., include_rest=True) on data with rest runs"
        )
    coef = np.asarray(cv.final_coef, dtype=float)
    if coef.shape != (features.n_edges,):
        raise ParameterError(
            f"the final model has {coef.size} edge weights but the features have {features.n_edges} edges"
        )
    pred = pd.DataFrame({
        "session": features.rows.loc[rest, "session"].to_numpy(),
        "predicted": features.X[rest] @ coef + float(cv.final_intercept),
    })
    run1 = features.rows[(features.rows["kind"] == "run") & (features.rows["run"] == 1)]
    table = pred.merge(run1[["session", "rating"]].rename(columns={"rating": "actual"}), on="session",
                       how="inner")
    if table.empty:
        raise DataFormatError(
            f"sub-{features.participant}: no session has both a rest run and a rating run 1"
        )
    dropped = sorted(set(pred["session"]) ^ set(run1["session"]))
    if dropped:
        logger.warning("sub-%s: sessions %s lack a rest run or a rating run 1 and are left out",
                       features.participant, dropped)
    table = table.iloc[sorted(range(len(table)), key=lambda i: _session_sort_key(table["session"].iloc[i]))]
    levels = pd.DataFrame({
        "level": "session", "session": table["session"].to_numpy(), "run": -1, "bin": -1,
        "actual": table["actual"].to_numpy(float), "predicted": table["predicted"].to_numpy(float),
    })
    boot = evaluation.session_bootstrap(levels["actual"], levels["predicted"], n_boot=n_boot, seed=seed)
    metrics = boot.assign(level="session")[["level", *boot.columns]]
    return ControlResult("rest", features.participant, levels, metrics, _roc_table(levels, "actual"),
                         x="actual", n_sessions=len(levels))


# ----------------------------------------------------------------------------------------------
# Head motion (§10.4)
# ----------------------------------------------------------------------------------------------


def fd_rows(participant: Participant, features: ParticipantFeatures) -> pd.DataFrame:
    """Framewise displacement averaged like the ratings: 1-min and 2-min bins and runs (§10.4).

    FD is computed from the **unfiltered** realignment parameters
    (:func:`~deipp_core.motion.framewise_displacement` with ``lowpass_hz=None``; rotations in mm on a
    50-mm sphere; FD of the first volume 0), taken at the kept brain frames of each rating run (the
    frames the features use: after the 30-s trim and 13-TR offset, censored frames removed), then
    averaged within the same time bins.

    Parameters
    ----------
    participant : Participant
        Gives each run's confounds (``trans_*`` in mm, ``rot_*`` in radians) and TR.
    features : ParticipantFeatures
        Gives the kept frames and time-bin labels of every rating run (``features.frames``).

    Returns
    -------
    DataFrame
        Columns ``kind`` (``"tbin10"``, ``"tbin5"``, ``"run"``), ``session``, ``run``, ``bin``
        (−1 for run rows) and ``fd`` (mm), in the feature table's stacking order.

    Raises
    ------
    DataFormatError
        If a run of ``features.frames`` is missing from ``participant``.
    """
    runs = {(r.session, int(r.run)): r for r in participant.rating_runs()}
    blocks: dict[str, list[dict]] = {k: [] for k in _EVAL_KINDS}
    for (session, run_no), rf in sorted(features.frames.items(),
                                        key=lambda kv: (_session_sort_key(kv[0][0]), kv[0][1])):
        run = runs.get((session, run_no))
        if run is None:
            raise DataFormatError(
                f"sub-{participant.label}: the features have ses-{session} run-{run_no}, but the "
                "participant has no such rating run; compute features and FD from the same data"
            )
        fd = framewise_displacement(run.confounds, run.tr, lowpass_hz=None)[rf.frames]
        for kind, n in (("tbin10", 10), ("tbin5", 5)):
            for b, v in enumerate(bin_means(fd, rf.tbin[n], n)):
                blocks[kind].append({"kind": kind, "session": session, "run": run_no, "bin": b, "fd": v})
        blocks["run"].append({"kind": "run", "session": session, "run": run_no, "bin": -1,
                              "fd": float(fd.mean())})
    return pd.DataFrame([row for k in _EVAL_KINDS for row in blocks[k]],
                        columns=["kind", "session", "run", "bin", "fd"])


def motion_control(
    participant: Participant,
    features: ParticipantFeatures,
    predictions: pd.DataFrame,
    *,
    n_boot: int = 10_000,
    seed: int = 0,
) -> ControlResult:
    """Does the held-out predicted pain follow head motion? (§10.4)

    Parameters
    ----------
    participant : Participant
    features : ParticipantFeatures
    predictions : DataFrame
        Held-out predictions of the main analysis (``PredictionResult.predictions``: ``kind``,
        ``session``, ``run``, ``bin``, ``predicted``).
    n_boot, seed : see :func:`deipp_core.evaluation.evaluate`
        Hierarchical bootstrap with single-class rejection, as in the main test.

    Returns
    -------
    ControlResult
        ``x = "fd"``: r between FD (mm) and predicted pain, and the AUC of predicted pain for
        high- vs low-motion units (median split of FD), at the four levels.
    """
    fd = fd_rows(participant, features)
    keys = ["kind", "session", "run", "bin"]
    pred = predictions.loc[predictions["kind"].isin(_EVAL_KINDS), [*keys, "predicted"]]
    merged = fd.merge(pred, on=keys, how="left", validate="one_to_one")
    if merged["predicted"].isna().any():
        first = merged.loc[merged["predicted"].isna()].iloc[0]
        raise DataFormatError(
            f"sub-{participant.label}: no held-out prediction for kind={first['kind']} "
            f"ses-{first['session']} run-{first['run']} bin {first['bin']}; pass the predictions "
            "computed from the same features"
        )
    levels = evaluation.level_table(merged, x="fd", x_name="fd")
    metrics = evaluation.evaluate(levels, x="fd", n_boot=n_boot, seed=seed)
    return ControlResult("motion", participant.label, levels, metrics, _roc_table(levels, "fd"),
                         x="fd", n_sessions=features.n_sessions)


# ----------------------------------------------------------------------------------------------
# Sessions 1–12 (§9.5)
# ----------------------------------------------------------------------------------------------


def first_sessions(sessions, n_sessions: int = 12) -> list[str]:
    """The first ``n_sessions`` session labels in study order (numeric when the labels are digits).

    >>> first_sessions(["10", "2", "1", "3"], 3)
    ['1', '2', '3']
    """
    if int(n_sessions) != n_sessions or n_sessions < 3:
        raise ParameterError(f"n_sessions must be an integer >= 3 (nested LOSO); got {n_sessions!r}")
    ordered = sorted(dict.fromkeys(str(s) for s in sessions), key=_session_sort_key)
    return ordered[: int(n_sessions)]


def first_sessions_control(
    features: ParticipantFeatures,
    *,
    n_sessions: int = 12,
    n_boot: int = 10_000,
    seed: int = 0,
    n_jobs: int | None = 1,
) -> ControlResult:
    """Nested leave-one-session-out on the first ``n_sessions`` sessions only (§9.5, ``ses12``).

    The λ grid, outer and inner folds and the held-out predictions all use only the rows of those
    sessions (so N = 30·12 = 360 training rows and PCs = 358…1 in the paper); the held-out
    predictions of their 1-min, 2-min and run rows are evaluated at the four levels as in the main
    test (§10.1 ``_ses12test``).

    Parameters
    ----------
    features : ParticipantFeatures
    n_sessions : int, default=12
        If the participant has fewer sessions, all of them are used (the model is then the main one)
        and a warning is logged.
    n_boot, seed : see :func:`deipp_core.evaluation.evaluate`
    n_jobs : int or None, default=1
        Outer folds in parallel (:func:`deipp_core.model.nested_loso`).

    Returns
    -------
    ControlResult
        With ``cv`` set to the restricted nested cross-validation.
    """
    keep = first_sessions(features.sessions, n_sessions)
    if len(keep) < n_sessions:
        logger.warning("sub-%s has %d sessions (< %d): the first-%d-sessions model uses all of them",
                       features.participant, len(keep), n_sessions, n_sessions)
    in_keep = features.rows["session"].astype(str).isin(keep).to_numpy()
    kind = features.rows["kind"].to_numpy()
    train = in_keep & (kind == "rbin10")
    ev = in_keep & np.isin(kind, _EVAL_KINDS)
    rows_train, rows_eval = features.rows[train], features.rows[ev]
    cv = nested_loso(
        features.X[train], rows_train["rating"].to_numpy(), rows_train["session"].to_numpy(),
        X_eval=features.X[ev], groups_eval=rows_eval["session"].to_numpy(), n_jobs=n_jobs,
    )
    predictions = rows_eval.assign(predicted=cv.y_pred_eval)
    levels = evaluation.level_table(predictions)
    metrics = evaluation.evaluate(levels, n_boot=n_boot, seed=seed)
    return ControlResult("ses12", features.participant, levels, metrics, _roc_table(levels, "actual"),
                         x="actual", n_sessions=len(keep), cv=cv)


# ----------------------------------------------------------------------------------------------
# Run 1 only (§13 testonrun1)
# ----------------------------------------------------------------------------------------------


def run1_control(
    predictions: pd.DataFrame,
    *,
    participant: str = "",
    run: int = 1,
    n_boot: int = 10_000,
    seed: int = 0,
) -> ControlResult:
    """The main held-out predictions of one rating run per session (run 1: the run after rest).

    Parameters
    ----------
    predictions : DataFrame
        Held-out predictions of the main analysis (``PredictionResult.predictions``).
    participant : str, optional
        Label stored in the result.
    run : int, default=1
        Which rating run to keep.
    n_boot, seed : see :func:`deipp_core.evaluation.evaluate`

    Returns
    -------
    ControlResult
        Levels ``1min``, ``2min`` and ``run`` (one run per session, so the session level would repeat
        the run level and is dropped). With one run per session, the hierarchical bootstrap
        (sessions → runs → bins) reduces to the original's sessions → bins.
    """
    sub = predictions[(predictions["kind"].isin(_EVAL_KINDS)) & (predictions["run"] == run)]
    if sub.empty:
        raise DataFormatError(f"sub-{participant}: no held-out predictions of rating run {run}")
    levels = evaluation.level_table(sub)
    levels = levels[levels["level"] != "session"].reset_index(drop=True)
    metrics = evaluation.evaluate(levels, n_boot=n_boot, seed=seed)
    return ControlResult("run1", participant, levels, metrics, _roc_table(levels, "actual"),
                         x="actual", n_sessions=int(sub["session"].nunique()))


# ----------------------------------------------------------------------------------------------
# Tables and sentences for the book
# ----------------------------------------------------------------------------------------------

_LEVEL_NAMES = {"1min": "1-min bins", "2min": "2-min bins", "run": "runs", "session": "sessions"}


def _ci(value: float, low: float, high: float, p: float) -> str:
    """:func:`~deipp_core.reporting.format_ci`, with undefined bounds written as such (not "nan")."""
    if np.isfinite(low) and np.isfinite(high):
        return format_ci(value, low, high, p)
    lo = f"{low:.2f}" if np.isfinite(low) else "undefined"
    hi = f"{high:.2f}" if np.isfinite(high) else "undefined"
    return f"{value:.2f} [{lo}, {hi}]" + (f", p = {p:.2g}" if p >= 1e-3 else ", p < 0.001")


def controls_table(results: Mapping[str, ControlResult]) -> pd.DataFrame:
    """One readable table of several control results (keys become the first index level).

    Parameters
    ----------
    results : mapping of str to ControlResult
        E.g. ``{"Participant 1": result, ...}``.

    Returns
    -------
    DataFrame
        Index (name, level); columns units, ``r [95% CI]``, ``AUC [95% CI]`` (bootstrap CIs and p).
    """
    blocks = {}
    for name, res in results.items():
        rows = []
        for _, m in res.metrics.iterrows():
            rows.append({
                "level": _LEVEL_NAMES.get(m["level"], m["level"]),
                "units": int(m["n_units"]),
                "r [95% CI]": _ci(m["r"], m["r_ci_low"], m["r_ci_high"], m["r_p"]),
                "AUC [95% CI]": (_ci(m["auc"], m["auc_ci_low"], m["auc_ci_high"], m["auc_p"])
                                 if np.isfinite(m["auc"]) else "undefined"),
            })
        blocks[name] = pd.DataFrame(rows).set_index("level")
    return pd.concat(blocks, names=["participant", "level"])


def controls_summary(results: Mapping[str, ControlResult], *, level: str | None = None) -> str:
    """One clause per participant with r and AUC (and their CIs) at one level, or their range.

    Parameters
    ----------
    results : mapping of str to ControlResult
    level : str, optional
        A level to report (e.g. ``"session"``); default: the range over all levels present.
    """
    parts = []
    for name, res in results.items():
        m = res.metrics
        if level is not None:
            row = m.set_index("level").loc[level]
            parts.append(
                f"{name} ({res.n_sessions} sessions): r = "
                f"{_ci(row['r'], row['r_ci_low'], row['r_ci_high'], row['r_p'])}, AUC = "
                f"{_ci(row['auc'], row['auc_ci_low'], row['auc_ci_high'], row['auc_p'])}"
            )
        else:
            parts.append(
                f"{name} ({res.n_sessions} sessions): r = {m['r'].min():.2f} to {m['r'].max():.2f}, "
                f"AUC = {m['auc'].min():.2f} to {m['auc'].max():.2f}"
            )
    return "; ".join(parts) + "."


def twin_motion_note(dataset) -> str:
    """What the data set plants between pain and head motion (a sentence for the book).

    Parameters
    ----------
    dataset : Dataset

    Returns
    -------
    str
        For the twin: whether movement rates depend on pain in each participant (ground truth
        ``motion_pain_coupled``); for real data: that the link is unknown.
    """
    if not dataset.is_simulated:
        return ("On real data the relation between pain and head motion is unknown; this control is "
                "what bounds it.")
    coupled = sorted(label for label, truth in dataset.ground_truth.items()
                     if truth.get("meta", {}).get("motion_pain_coupled"))
    if not coupled:
        return "On this twin, head motion does not depend on pain (null for motion)."
    who = ", ".join(f"sub-{l}" for l in coupled)
    return (f"On this twin ({who}), sudden head movements are made more frequent by pain and leave a "
            "spatially shared artefact in the BOLD signal, so a weak motion–pain link is planted on "
            "purpose; frames with large filtered FD are censored before they reach the features.")
