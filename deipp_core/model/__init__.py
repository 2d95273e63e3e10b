"""The DEIPP decoder: LASSO-PCR and its nested leave-one-session-out training.

:class:`LassoPCR` is the estimator of ``analysis_predict_rating_modeling.m`` (``deipp_methods.md``
§9.2): PCA of the training rows, LASSO selection of components (soft-thresholding, because centred PC
scores are orthogonal), OLS refit, back-projection to edge weights. :func:`lambda_grid` builds the
original λ grid from all sessions (§9.3) and :func:`nested_loso` runs the outer and inner
leave-one-session-out cross-validation (§9.4) through Gram-matrix identities, exactly and fast;
:func:`nested_loso_explicit` is the literal edge-space reference. :func:`fit_predict_gram` is the
low-level kernel (fit on a row subset, predict rows from cross-products) for analyses that need many
fits, such as the training-size analysis (§10.7).

:class:`PCRegression`, :class:`GramRidge` and :class:`CPM` are the alternative decoders of the
decoder comparison (beyond the paper; :mod:`deipp_core.analyses.decoder_comparison`).
"""

from deipp_core.model._cv import NestedLOSOResult, nested_loso
from deipp_core.model._decoders import CPM, GramRidge, PCRegression
from deipp_core.model._explicit import nested_loso_explicit
from deipp_core.model._gram import fit_predict_gram
from deipp_core.model._lassopcr import LassoPCR, lambda_grid

__all__ = [
    "LassoPCR",
    "lambda_grid",
    "nested_loso",
    "nested_loso_explicit",
    "NestedLOSOResult",
    "fit_predict_gram",
    "PCRegression",
    "GramRidge",
    "CPM",
]
