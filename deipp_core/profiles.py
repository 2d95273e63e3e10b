"""Run profiles: how much Monte-Carlo work, and which twin scale, an analysis uses.

``quick`` keeps every structural feature of the study at a size that runs in seconds (tests, CI
smoke runs of every chapter); ``book`` is the default of the website build (the full-scale twin,
fewer resamples, stated on each page); ``paper`` uses the repetition counts of the original code
(10,000 bootstrap resamples and permutations, 100 training-size repetitions).
"""

from __future__ import annotations

from dataclasses import dataclass

from deipp_core.exceptions import ParameterError

__all__ = ["Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """Settings shared by every chapter for one run of the book.

    Parameters
    ----------
    name : str
        Profile name.
    twin_scale : {"quick", "paper"}
        Which embedded twin the chapter runs on when the data source is ``"twin"``.
    n_boot : int
        Hierarchical bootstrap resamples (paper: 10,000).
    n_perm : int
        Permutations of the region-importance and pipeline permutation tests (paper: 10,000).
    n_trainsize_reps : int
        Repetitions per training-set size (paper: 100).
    n_pipeline_perm : int, default=1000
        Permutations of the whole-pipeline permutation test of the explanation chapter (each reruns
        the nested cross-validation; not in the paper, 1,000 in the paper profile).
    pipeline_perm_schemes : tuple of str, default=("session", "circular")
        Permutation schemes of that test (see
        :func:`deipp_core.analyses.explanation.permutation_test`). The ``book`` profile runs only the
        circular scheme: at full scale every permutation is a nested cross-validation of 25–55 s per
        participant on one core, and the book build stays well under an hour.
    """

    name: str
    twin_scale: str
    n_boot: int
    n_perm: int
    n_trainsize_reps: int
    n_pipeline_perm: int = 1000
    pipeline_perm_schemes: tuple[str, ...] = ("session", "circular")


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", twin_scale="quick", n_boot=200, n_perm=50, n_trainsize_reps=3,
                     n_pipeline_perm=19),
    "book": Profile("book", twin_scale="paper", n_boot=2000, n_perm=1000, n_trainsize_reps=10,
                    n_pipeline_perm=19, pipeline_perm_schemes=("circular",)),
    "paper": Profile("paper", twin_scale="paper", n_boot=10_000, n_perm=10_000, n_trainsize_reps=100,
                     n_pipeline_perm=1000),
}


def get_profile(name: str | Profile) -> Profile:
    """Return the :class:`Profile` called ``name`` (a Profile is returned unchanged)."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise ParameterError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}"
        ) from None
