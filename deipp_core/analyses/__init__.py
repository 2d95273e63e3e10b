"""One module per analysis of the paper. Each returns tidy results and never draws.

===========================  ==========================================================================
module                       analysis (``reference/deipp_methods.md`` section)
===========================  ==========================================================================
``ratings_overview``         ratings at four levels, variance across sessions/runs/minutes (§5, Fig. 1)
``prediction``               nested leave-one-session-out prediction, four-level evaluation (§9–10.2)
``training_size``            performance vs number of training sessions (§10.7, Fig. 3)
``importance``               hierarchical-permutation region importance, weights, networks (§11)
``cross_participant``        one participant's model on the other, feature overlap (§10.6)
``controls``                 rest, head motion, sessions 1–12, run 1 only (§9.5, §10.3–10.4)
``univariate``               parcel-wise GLM per session, t-test across sessions, FDR (§12)
``calibration``              null-twin calibration of r, AUC and bootstrap p (beyond the paper)
``decoder_comparison``       LASSO-PCR vs PCR, ridge, linear SVR and CPM (beyond the paper)
``explanation``              Haufe patterns, weight stability, pipeline permutation test (beyond the paper)
``ledger``                   the abstract's claims beside this build's numbers
``planner``                  study planner: sessions needed for a target r (beyond the paper)
``tops``                     ToPS comparison pipeline (DCC-GARCH), twin demonstration (§10.5)
===========================  ==========================================================================
"""

from deipp_core.analyses.calibration import calibration_summary, null_calibration
from deipp_core.analyses.controls import first_sessions_control, motion_control, rest_control, run1_control
from deipp_core.analyses.cross_participant import cross_participant, feature_overlap, generalization_table
from deipp_core.analyses.importance import region_importance, region_weights
from deipp_core.analyses.ledger import build_ledger
from deipp_core.analyses.planner import fit_saturating, plan_table, sessions_needed
from deipp_core.analyses.prediction import (
    PredictionResult,
    edge_recovery,
    predict_participant,
    run_prediction,
)
from deipp_core.analyses.ratings_overview import rating_overview, variance_components
from deipp_core.analyses.training_size import cached_training_size, run_training_size, training_size
from deipp_core.analyses.univariate import run_univariate

__all__ = [
    "PredictionResult",
    "run_prediction",
    "predict_participant",
    "edge_recovery",
    "rating_overview",
    "variance_components",
    "training_size",
    "run_training_size",
    "cached_training_size",
    "region_importance",
    "region_weights",
    "cross_participant",
    "generalization_table",
    "feature_overlap",
    "rest_control",
    "motion_control",
    "first_sessions_control",
    "run1_control",
    "run_univariate",
    "null_calibration",
    "calibration_summary",
    "build_ledger",
    "fit_saturating",
    "sessions_needed",
    "plan_table",
]
