"""Data tiers of the living paper: the digital twin and the real data set, behind one reader.

``load_dataset("twin", profile="quick")`` returns the embedded digital twin of the profile's scale,
generating it first if it is absent; ``load_dataset("/path/to/ds006815")`` reads a local copy of the
real data. Both give a :class:`~deipp_core.data.dataset.Dataset`.

The embedded twin lives under ``$DEIPP_DATA_DIR`` (the Makefile sets it to ``data/`` in the
repository), or ``~/.cache/deipp`` when the variable is unset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from deipp_core.data.dataset import Dataset, Participant, Run
from deipp_core.exceptions import DataLayoutError, ParameterError
from deipp_core.profiles import get_profile

__all__ = [
    "Dataset",
    "Participant",
    "Run",
    "data_dir",
    "twin_root",
    "ensure_twin",
    "resolve_data",
    "load_dataset",
    "participant_labels",
    "data_fingerprint",
]

logger = logging.getLogger(__name__)

TWIN = "twin"


def data_dir() -> Path:
    """Folder holding the embedded twins (``$DEIPP_DATA_DIR`` or ``~/.cache/deipp``)."""
    env = os.environ.get("DEIPP_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "deipp"


def twin_root(scale: str, seed: int = 0, null: bool = False) -> Path:
    """Where the twin of ``scale`` (``"quick"`` or ``"paper"``) for ``seed`` is (or will be) stored."""
    return data_dir() / f"twin-{scale}-seed{seed}{'-null' if null else ''}"


def ensure_twin(scale: str, seed: int = 0, null: bool = False) -> Path:
    """Return the root of the embedded twin, generating it if it does not exist yet."""
    from deipp_core.data.twin import TwinConfig, generate_twin

    root = twin_root(scale, seed, null)
    if (root / "dataset_description.json").is_file():
        return root
    configs = {"quick": TwinConfig.quick, "paper": TwinConfig.paper}
    if scale not in configs:
        raise ParameterError(f"unknown twin scale {scale!r}; choose 'quick' or 'paper'")
    logger.info("generating the %s digital twin (seed %d%s) in %s", scale, seed, ", null" if null else "", root)
    root.parent.mkdir(parents=True, exist_ok=True)
    return generate_twin(root, configs[scale](), seed=seed, null=null)


def resolve_data(data: str | os.PathLike, *, profile: str = "quick", seed: int = 0, null: bool = False) -> Path:
    """Turn a chapter's ``data`` parameter into a BIDS root.

    Parameters
    ----------
    data : str or path-like
        ``"twin"`` for the embedded digital twin of the profile's scale, or the path of a local copy of
        ds006815 (or of any data set in the same layout).
    profile : str
        Run profile (``quick``, ``book`` or ``paper``); selects the twin scale.
    seed : int
        Seed of the twin.
    null : bool
        Use the twin's null mode (no pain signal).
    """
    if str(data) == TWIN:
        return ensure_twin(get_profile(profile).twin_scale, seed=seed, null=null)
    root = Path(data).expanduser()
    if not root.is_dir():
        raise DataLayoutError(
            f"data source {str(data)!r} is neither 'twin' nor an existing folder; pass 'twin' or the "
            "path of a local copy of ds006815 (the folder that holds dataset_description.json)"
        )
    if not (root / "dataset_description.json").is_file():
        raise DataLayoutError(f"{root} has no dataset_description.json; is it the root of a BIDS data set?")
    return root


def load_dataset(
    data: str | os.PathLike = TWIN,
    *,
    profile: str = "quick",
    participants: list[str] | str | None = None,
    seed: int = 0,
    null: bool = False,
    **reader_options,
) -> Dataset:
    """Load the digital twin or a local copy of the real data set.

    Parameters
    ----------
    data : str or path-like, default="twin"
        ``"twin"`` or a BIDS root (see :func:`resolve_data`).
    profile : str, default="quick"
        Run profile; selects the twin scale when ``data="twin"``.
    participants : str or list of str, optional
        Participant labels to read (``"01"``); all by default.
    seed : int, default=0
        Seed of the twin.
    null : bool, default=False
        The twin's null mode (no pain signal).
    **reader_options
        Passed to :func:`deipp_core.data.bids.read_dataset` (``pipeline``, ``atlas``, ``dlabel``).

    Returns
    -------
    Dataset
    """
    from deipp_core.data.bids import read_dataset

    root = resolve_data(data, profile=profile, seed=seed, null=null)
    if isinstance(participants, str):
        participants = [participants]
    return read_dataset(root, participants=participants, **reader_options)


def participant_labels(data: str | os.PathLike = TWIN) -> list[str]:
    """Participant labels (without ``sub-``) of a data source, without reading any run.

    Parameters
    ----------
    data : str or path-like, default="twin"
        ``"twin"`` (its participants do not depend on the scale, and nothing is generated) or a BIDS
        root, whose ``participants.tsv`` is read.

    Returns
    -------
    list of str

    Examples
    --------
    >>> participant_labels("twin")
    ['01', '02']
    """
    if str(data) == TWIN:
        from deipp_core.data.twin import TwinConfig

        return list(TwinConfig.quick().participants)
    from deipp_core.data.bids import _read_participants

    return _read_participants(resolve_data(data))


def data_fingerprint(root: Path) -> str:
    """A short hash that changes when the data set at ``root`` changes (names, sizes, mtimes).

    Results written by deipp itself under ``derivatives/deipp`` are not part of the fingerprint.
    """
    h = hashlib.sha256()
    desc = root / "dataset_description.json"
    if desc.is_file():
        h.update(desc.read_bytes())
    results = root / "derivatives" / "deipp"  # our own outputs must not change the inputs' identity
    for path in sorted(root.rglob("*")):
        if path.is_file() and results not in path.parents:
            st = path.stat()
            h.update(json.dumps([str(path.relative_to(root)), st.st_size, int(st.st_mtime)]).encode())
    return h.hexdigest()[:16]
