"""Results written as BIDS derivatives, atomically, keyed by a hash of their inputs.

Results live under ``<output root>/derivatives/deipp/`` with a ``dataset_description.json``. Every
file is written to a temporary sibling and renamed into place, so an interrupted run never leaves a
half-written result that a later run would read; a result whose key does not match its inputs is
recomputed. Raw input files are never opened for writing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from deipp_core import __version__

__all__ = [
    "atomic_write_bytes",
    "write_tsv",
    "read_tsv",
    "derivatives_root",
    "hash_key",
    "code_digest",
    "ResultCache",
]

logger = logging.getLogger(__name__)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tsv(df: pd.DataFrame, path: Path) -> None:
    """Write a table as a BIDS TSV (tab-separated, ``n/a`` for missing values) atomically."""
    text = df.to_csv(sep="\t", index=False, na_rep="n/a", lineterminator="\n", float_format="%.10g")
    atomic_write_bytes(path, text.encode())


def read_tsv(path: Path) -> pd.DataFrame:
    """Read a TSV written by :func:`write_tsv`."""
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False, dtype={"session": str})


def derivatives_root(data_root: Path) -> Path:
    """``derivatives/deipp`` of a data set (or under ``$DEIPP_OUTPUT_DIR`` when it is set)."""
    env = os.environ.get("DEIPP_OUTPUT_DIR")
    base = Path(env) / Path(data_root).name if env else Path(data_root)
    root = base / "derivatives" / "deipp"
    desc = root / "dataset_description.json"
    if not desc.is_file():
        meta = {
            "Name": "DEIPP living-paper results",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "deipp_core", "Version": __version__}],
        }
        atomic_write_bytes(desc, (json.dumps(meta, indent=2) + "\n").encode())
    return root


def hash_key(*parts) -> str:
    """A short, stable hash of JSON-serialisable parts (numbers, strings, lists, dicts)."""

    def default(obj):
        if isinstance(obj, np.ndarray):
            return hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()
        if isinstance(obj, (np.integer, np.floating)):
            return obj.item()
        return str(obj)

    blob = json.dumps(parts, sort_keys=True, default=default).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def code_digest(sources: tuple[str, ...] | None = None) -> str:
    """Hash of ``deipp_core`` source files, part of cache keys so that a code change recomputes.

    Parameters
    ----------
    sources : tuple of str, optional
        Files or folders relative to the package (e.g. ``("model", "stats.py")``) that determine a
        result; the whole package by default.
    """
    pkg = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for target in [pkg / name for name in sources] if sources is not None else [pkg]:
        for path in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
            h.update(str(path.relative_to(pkg)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


class ResultCache:
    """Tables cached on disk under a derivatives folder, keyed by a hash of their inputs.

    Parameters
    ----------
    root : Path
        Folder of the cached tables (e.g. ``derivatives/deipp/sub-01``).

    Notes
    -----
    A table ``name`` is stored as ``<name>_key-<key>.tsv``; a lookup with another key misses and the
    caller recomputes. Writes are atomic, so a reader sees either nothing or a complete table.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, name: str, key: str) -> Path:
        return self.root / f"{name}_key-{key}.tsv"

    def get(self, name: str, key: str) -> pd.DataFrame | None:
        path = self.path(name, key)
        if path.is_file():
            logger.info("reusing cached %s", path)
            return read_tsv(path)
        return None

    def put(self, name: str, key: str, df: pd.DataFrame) -> Path:
        path = self.path(name, key)
        write_tsv(df, path)
        return path
