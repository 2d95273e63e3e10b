"""One module per analysis of the paper. Each returns tidy results and never draws."""

from deipp_core.analyses.prediction import PredictionResult, edge_recovery, run_prediction

__all__ = ["PredictionResult", "run_prediction", "edge_recovery"]
