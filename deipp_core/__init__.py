"""deipp_core: the analysis core of the DEIPP living paper.

A re-implementation of *Personalized brain decoding of spontaneous pain in individuals with chronic
pain* (Lee, Jo, Cho & Woo, Nature Neuroscience 2026): continuous pain ratings are aligned to fMRI
volumes (:mod:`deipp_core.ratings`), parcel time series become edge co-fluctuations
(:mod:`deipp_core.edges`), a LASSO-PCR decoder is trained with nested leave-one-session-out
cross-validation (:mod:`deipp_core.model`) and evaluated at four levels with a hierarchical bootstrap
(:mod:`deipp_core.evaluation`). :mod:`deipp_core.data` reads the study's BIDS layout and simulates a
digital twin of it with known ground truth.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
