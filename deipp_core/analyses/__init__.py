"""One module per analysis of the paper. Each returns tidy results and never draws."""

from deipp_core.analyses.prediction import (
    PredictionResult,
    edge_recovery,
    predict_participant,
    run_prediction,
)

__all__ = ["PredictionResult", "run_prediction", "predict_participant", "edge_recovery"]
