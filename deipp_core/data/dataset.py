"""In-memory representation of the study: participants → sessions → runs.

Both the digital twin and the real data set (ds006815) are read into these objects; nothing
downstream knows which tier a :class:`Dataset` came from, apart from :attr:`Dataset.source`, which
the book prints next to every number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["Run", "Participant", "Dataset", "MOTION_COLUMNS", "ATLAS_COLUMNS"]

#: Motion parameter columns of a confounds table (translations in mm, rotations in radians,
#: fMRIPrep naming), followed by framewise displacement (mm) and the censor flag (1 keep, 0 drop).
MOTION_COLUMNS: tuple[str, ...] = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")

#: Columns of a parcellation table (``atlas-<name>_dseg.tsv``).
ATLAS_COLUMNS: tuple[str, ...] = ("index", "name", "network", "x", "y", "z", "included")


@dataclass(frozen=True, eq=False)
class Run:
    """One fMRI run with everything the analyses need.

    Parameters
    ----------
    session : str
        Session label without the ``ses-`` prefix, e.g. ``"01"``.
    task : {"rating", "rest"}
        ``"rating"`` for the continuous-rating runs, ``"rest"`` for the resting-state run.
    run : int or None
        Run number (1-3) of a rating run; ``None`` for rest.
    tr : float
        Repetition time in seconds.
    timeseries : ndarray of shape (n_volumes, n_parcels)
        Parcel time series, one row per volume after dummy removal, columns in atlas order.
    confounds : DataFrame
        ``n_volumes`` rows with at least :data:`MOTION_COLUMNS`, ``framewise_displacement`` (the
        low-pass-filtered FD that censoring uses; the head-motion control recomputes the unfiltered FD
        from the motion columns) and ``censor`` (1 keep, 0 drop).
    rating : DataFrame or None
        Raw continuous rating with columns ``time`` (seconds on the rating clock, which starts at the
        end of the 10-s disdaq) and ``value`` (in [0, 1]); ``None`` for rest.
    source : str
        Where the run was read from (a path), used in error messages.
    """

    session: str
    task: Literal["rating", "rest"]
    run: int | None
    tr: float
    timeseries: np.ndarray
    confounds: pd.DataFrame
    rating: pd.DataFrame | None = None
    source: str = ""

    @property
    def n_volumes(self) -> int:
        """Number of volumes after dummy removal."""
        return int(self.timeseries.shape[0])

    @property
    def censor(self) -> np.ndarray:
        """Boolean keep-mask of shape (n_volumes,): True where the volume is kept."""
        return self.confounds["censor"].to_numpy().astype(bool)

    @property
    def key(self) -> str:
        """A BIDS-like identifier such as ``ses-01_task-rating_run-2``."""
        run = f"_run-{self.run}" if self.run is not None else ""
        return f"ses-{self.session}_task-{self.task}{run}"


@dataclass(frozen=True, eq=False)
class Participant:
    """All runs of one participant, with the parcellation their time series use.

    Parameters
    ----------
    label : str
        Participant label without the ``sub-`` prefix, e.g. ``"01"``.
    atlas : DataFrame
        One row per parcel, in the column order of every run's time series, with
        :data:`ATLAS_COLUMNS` (``included`` is boolean: False for parcels the analysis leaves out).
    runs : tuple of Run
        Rating and rest runs, sorted by session then run.
    """

    label: str
    atlas: pd.DataFrame
    runs: tuple[Run, ...]

    @property
    def sessions(self) -> list[str]:
        """Sorted labels of the sessions that have rating runs."""
        return sorted({r.session for r in self.runs if r.task == "rating"})

    @property
    def n_sessions(self) -> int:
        """Number of sessions with rating runs."""
        return len(self.sessions)

    def rating_runs(self, session: str | None = None) -> list[Run]:
        """Rating runs (of one session, or all), sorted by session then run number."""
        runs = [r for r in self.runs if r.task == "rating" and (session is None or r.session == session)]
        return sorted(runs, key=lambda r: (r.session, r.run))

    def rest_run(self, session: str) -> Run | None:
        """The resting-state run of ``session``, or None if it has none."""
        for r in self.runs:
            if r.task == "rest" and r.session == session:
                return r
        return None

    @property
    def included(self) -> np.ndarray:
        """Boolean mask over parcels: True for parcels the analysis uses."""
        return self.atlas["included"].to_numpy().astype(bool)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A data set laid out like ds006815, read into memory.

    Parameters
    ----------
    participants : dict of str to Participant
        Keyed by participant label (``"01"``, ``"02"``).
    source : {"twin", "bids"}
        Which tier the data came from: the simulated digital twin or a local copy of the real data.
    root : Path
        The BIDS root it was read from.
    description : str
        One human-readable line naming the data, printed by the book next to every result (e.g.
        ``"digital twin (simulated data), seed 0, paper scale"``).
    ground_truth : dict, optional
        For the twin only: per participant label, the planted effect (see
        :func:`deipp_core.data.bids.read_ground_truth`). Empty for real data.
    """

    participants: dict[str, Participant]
    source: Literal["twin", "bids"]
    root: Path
    description: str
    ground_truth: dict = field(default_factory=dict)

    @property
    def is_simulated(self) -> bool:
        """True when the numbers computed from this data set describe simulated data."""
        return self.source == "twin"

    def __getitem__(self, label: str) -> Participant:
        try:
            return self.participants[label]
        except KeyError:
            known = ", ".join(sorted(self.participants)) or "none"
            raise KeyError(
                f"participant {label!r} is not in {self.root} (participants: {known})"
            ) from None
