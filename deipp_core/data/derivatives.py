"""Results written as BIDS derivatives, atomically, keyed by a hash of their inputs.

Results live under ``<output root>/derivatives/deipp/`` with a ``dataset_description.json``. Every
file is written to a temporary sibling and renamed into place, so an interrupted run never leaves a
half-written result that a later run would read; a result whose key does not match its inputs is
recomputed. Raw input files are never opened for writing.

Intermediate arrays that are slow to recompute (the parsed runs of the reader, the feature tables)
are kept under ``derivatives/deipp/cache/`` by :class:`ArrayCache`, one entry per name: writing an
entry under a new key deletes the entries of that name under other keys, so the cache holds at most
one version of each array. Set the environment variable ``DEIPP_CACHE=0`` (or pass
``use_cache=False``) to neither read nor write it; deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

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
    "atomic_write_stream",
    "cache_enabled",
    "cache_root",
    "file_fingerprint",
    "ArrayCache",
    "CACHE_ENV",
]

logger = logging.getLogger(__name__)


def atomic_write_stream(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` by calling ``write(fh)`` on a temporary file in the same folder, then rename it.

    The temporary file is named ``.<name>.<random>.tmp``; it is synced before the atomic rename, and
    removed if ``write`` fails, so ``path`` holds either its previous content or the complete new one.
    Use this rather than :func:`atomic_write_bytes` for large arrays (no copy in memory).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    atomic_write_stream(path, lambda fh: fh.write(data))


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


#: Environment variable that switches the array cache off when set to ``0``, ``false``, ``no`` or ``off``.
CACHE_ENV = "DEIPP_CACHE"

#: Temporary files of interrupted cache writes older than this many seconds are deleted on the next write.
_STALE_TMP_S = 3600.0


def cache_enabled(use_cache: bool | None = None) -> bool:
    """Whether the array cache is used: ``use_cache`` if given, else ``$DEIPP_CACHE`` (on by default).

    Examples
    --------
    >>> cache_enabled(False)
    False
    """
    if use_cache is not None:
        return bool(use_cache)
    return os.environ.get(CACHE_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def cache_root(data_root: Path) -> Path | None:
    """The array-cache folder of a data set, ``derivatives/deipp/cache``, or None if it cannot be written.

    A read-only copy of a data set (and no ``$DEIPP_OUTPUT_DIR``) is not an error: the cache is then
    skipped with a warning and everything is computed from the raw inputs.
    """
    try:
        root = derivatives_root(Path(data_root)) / "cache"
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        logger.warning("no array cache for %s: %s (set DEIPP_OUTPUT_DIR to a writable folder to cache)",
                       data_root, err)
        return None
    return root


def file_fingerprint(path: Path, root: Path | None = None) -> list:
    """``[name, size, mtime_ns]`` of a file: changes when the file is rewritten or touched.

    Parameters
    ----------
    path : Path
        The file.
    root : Path, optional
        The name is taken relative to ``root`` (so that a moved or copied data set keeps its keys);
        the bare file name otherwise.
    """
    path = Path(path)
    st = path.stat()
    name = str(path.relative_to(root)) if root is not None else path.name
    return [name, int(st.st_size), int(st.st_mtime_ns)]


class ArrayCache:
    """Arrays cached on disk as ``.npy`` / ``.npz`` files, keyed by a hash of their inputs.

    Parameters
    ----------
    root : Path
        Folder of the cached arrays (e.g. ``derivatives/deipp/cache/sub-01``).

    Notes
    -----
    The entry ``name`` under ``key`` is the file ``<name>_key-<key>.npy`` (one array) or ``.npz``
    (several). Writes are atomic (:func:`atomic_write_stream`), so an interrupted write leaves only a
    hidden temporary file that is never read; saving an entry deletes the same name under other keys
    (and temporary files of that name left by writes interrupted over an hour ago), so the disk use is
    bounded by one version of each entry. A file that exists but cannot be read as a complete array
    (damaged outside this package) is a miss. Arrays are written and read without pickling.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, name: str, key: str, suffix: str = ".npy") -> Path:
        """File of entry ``name`` under ``key``."""
        return self.root / f"{name}_key-{key}{suffix}"

    def load(self, name: str, key: str, *, mmap: bool = False) -> np.ndarray | None:
        """The array stored under ``name`` and ``key``, or None when absent or unreadable.

        Parameters
        ----------
        name, key : str
            The entry.
        mmap : bool, default=False
            Memory-map the file read-only (pages are read when used) instead of reading it.
        """
        path = self.path(name, key)
        if not path.is_file():
            return None
        try:
            array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            logger.warning("ignoring the unreadable cache file %s (%s); recomputing", path, err)
            return None
        logger.debug("reusing cached %s", path.name)
        return array.view(np.ndarray) if mmap else array

    def load_npz(self, name: str, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``name`` and ``key`` by :meth:`save_npz`, or None."""
        path = self.path(name, key, ".npz")
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
            logger.warning("ignoring the unreadable cache file %s (%s); recomputing", path, err)
            return None
        logger.debug("reusing cached %s", path.name)
        return arrays

    def save(self, name: str, key: str, array: np.ndarray) -> Path:
        """Store one array (``.npy``) atomically and drop the other keys of ``name``."""
        path = self.path(name, key)
        atomic_write_stream(path, lambda fh: np.save(fh, np.asarray(array), allow_pickle=False))
        self._prune(name, path)
        return path

    def save_npz(self, name: str, key: str, **arrays: np.ndarray) -> Path:
        """Store several arrays (uncompressed ``.npz``) atomically and drop the other keys of ``name``."""
        path = self.path(name, key, ".npz")
        atomic_write_stream(path, lambda fh: np.savez(fh, allow_pickle=False, **arrays))
        self._prune(name, path)
        return path

    def _prune(self, name: str, keep: Path) -> None:
        prefix = f"{name}_key-"
        now = time.time()
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return
        for entry in entries:
            stale = (entry.name.startswith(prefix) and entry.name != keep.name
                     and entry.name.endswith((".npy", ".npz")))
            if not stale and entry.name.startswith("." + prefix) and entry.name.endswith(".tmp"):
                try:
                    stale = now - entry.stat().st_mtime > _STALE_TMP_S
                except OSError:
                    stale = False
            if stale:
                try:
                    os.unlink(entry.path)
                    logger.debug("removed the stale cache file %s", entry.name)
                except OSError:
                    pass
