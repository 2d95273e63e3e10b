"""Parcel time series from CIFTI dense time series (the real data's ciftify output).

The original code averages the denoised, 6-mm smoothed 91k-grayordinate time series
(``…_desc-denoise_bold_Atlas_s6.dtseries.nii``) within each parcel of a parcellation given as one
value per grayordinate (methods §7-§8): parcels in ascending id order, 0/NaN = no parcel, and every
parcel must own at least one grayordinate (MATLAB ``splitapply`` needs consecutive groups).

Here the parcellation can be a ``.dlabel.nii`` (names from its label table) or a ``.dscalar.nii`` /
``.dtseries.nii`` of integer ids (the original's individual parcels are a dtseries of ids). Both files
carry a :class:`nibabel.cifti2.BrainModelAxis`; grayordinates are matched by *surface vertex* (per
structure) and *voxel index* rather than by position, so a parcellation on the full 32k surface
(64,984 vertices, medial wall included, as the Schaefer dlabel) maps onto a dtseries without the
medial wall (59,412 cortical grayordinates) exactly as the original's ``brainstructure == -1`` mask
does (methods §7, §16 item 16). Any labelled grayordinate that the dtseries lacks, a different surface
mesh or a different voxel grid is an error that names both files.

All files are opened read-only (:func:`nibabel.load` opens with ``"rb"``; slices are read through
the image's array proxy, so a run is never held in memory as a whole).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel import cifti2

from deipp_core.exceptions import DataFormatError, DataLayoutError

__all__ = [
    "CiftiParcellation",
    "ParcelMap",
    "DtseriesInfo",
    "load_parcellation",
    "map_parcellation",
    "read_dtseries_info",
    "parcel_timeseries",
]

logger = logging.getLogger(__name__)

#: Rows of a dense time series read at once (bounds memory: 256 × 91,282 float32 ≈ 93 MB).
_CHUNK_ROWS = 256

# Key space for matching grayordinates: surface vertices get structure_code · 2**32 + vertex,
# voxels 2**62 + flat voxel index (structures are not compared for voxels: the grid position is
# what identifies a voxel, and templates may name subcortical structures differently).
_VOXEL_KEY_BASE = np.int64(2**62)


def _load_cifti(path: Path, what: str) -> cifti2.Cifti2Image:
    if not path.is_file():
        raise DataLayoutError(f"{path} does not exist ({what})")
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for corrupt files
        raise DataFormatError(f"{path}: cannot be read as a CIFTI-2 file ({what}): {err}") from err
    if not isinstance(img, cifti2.Cifti2Image):
        raise DataFormatError(
            f"{path}: expected a CIFTI-2 file ({what}), got a {type(img).__name__}; "
            "pass a .dtseries.nii, .dscalar.nii or .dlabel.nii"
        )
    return img


def _brain_model_axis(img: cifti2.Cifti2Image, path: Path) -> cifti2.BrainModelAxis:
    try:
        axis = img.header.get_axis(1)
    except Exception as err:
        raise DataFormatError(f"{path}: the CIFTI header has no readable column axis: {err}") from err
    if not isinstance(axis, cifti2.BrainModelAxis):
        raise DataFormatError(
            f"{path}: columns are a {type(axis).__name__}, expected dense grayordinates "
            "(BrainModelAxis); a parcellated (.ptseries) file cannot be used here"
        )
    return axis


@dataclass(frozen=True)
class CiftiParcellation:
    """A parcellation given as one parcel id per grayordinate.

    Parameters
    ----------
    path : Path
        The file it was read from.
    axis : nibabel.cifti2.BrainModelAxis
        Its grayordinates.
    ids : ndarray of shape (n_grayordinates,)
        Integer parcel id per grayordinate, 0 where no parcel (0 and NaN in the file).
    labels : DataFrame
        One row per parcel in ascending id order: ``index`` (the id) and ``name`` (from the dlabel
        label table, else ``"parcel-<id>"``).
    """

    path: Path
    axis: cifti2.BrainModelAxis
    ids: np.ndarray
    labels: pd.DataFrame


def load_parcellation(path: str | Path) -> CiftiParcellation:
    """Read a CIFTI parcellation (``.dlabel.nii``, or ``.dscalar.nii``/``.dtseries.nii`` of ids).

    Parameters
    ----------
    path : str or Path
        The file. It must hold exactly one map (row); values are non-negative integer parcel ids with
        0 (or NaN) meaning "no parcel".

    Returns
    -------
    CiftiParcellation

    Raises
    ------
    DataFormatError
        If the file is not a one-map dense CIFTI file of non-negative integer ids, or a dlabel's
        label table names a parcel that no grayordinate carries.
    """
    path = Path(path)
    img = _load_cifti(path, "parcellation: a .dlabel.nii, or a .dscalar.nii/.dtseries.nii of ids")
    axis = _brain_model_axis(img, path)
    data = np.asarray(img.dataobj, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] != 1:
        raise DataFormatError(
            f"{path}: a parcellation must hold exactly one map (one row of parcel ids), found "
            f"{data.shape[0]}; extract the map you want (wb_command -cifti-merge -column)"
        )
    values = data[0]
    finite = np.isfinite(values)
    if np.any(values[finite] < 0) or np.any(np.abs(values[finite] - np.round(values[finite])) > 1e-6):
        bad = values[finite][(values[finite] < 0) | (np.abs(values[finite] - np.round(values[finite])) > 1e-6)]
        raise DataFormatError(
            f"{path}: parcel ids must be non-negative integers (0 = no parcel); found e.g. {bad[0]:g}"
        )
    ids = np.where(finite, np.round(values), 0).astype(np.int64)
    present = np.unique(ids[ids > 0])
    row_axis = img.header.get_axis(0)
    if isinstance(row_axis, cifti2.LabelAxis):
        table = row_axis.label[0]
        keys = np.array(sorted(k for k in table if k > 0), dtype=np.int64)
        missing = np.setdiff1d(keys, present)
        if missing.size:
            names = [table[int(k)][0] for k in missing[:5]]
            raise DataFormatError(
                f"{path}: {missing.size} label(s) of the label table have no grayordinate "
                f"(ids {missing[:5].tolist()}, names {names}{'…' if missing.size > 5 else ''}); every "
                "parcel needs at least one (MATLAB splitapply needs consecutive groups)"
            )
        unknown = np.setdiff1d(present, keys)
        if unknown.size:
            raise DataFormatError(
                f"{path}: grayordinates carry label key(s) {unknown[:5].tolist()} that the label table "
                "does not define"
            )
        names = [str(table[int(k)][0]) for k in keys]
    else:
        keys = present
        names = [f"parcel-{k}" for k in keys]
    if keys.size == 0:
        raise DataFormatError(f"{path}: no grayordinate carries a parcel id (all values are 0 or NaN)")
    labels = pd.DataFrame({"index": keys, "name": names})
    return CiftiParcellation(path=path, axis=axis, ids=ids, labels=labels)


def _structure_codes(*axes: cifti2.BrainModelAxis) -> dict[str, int]:
    names = sorted({str(n) for ax in axes for n in np.unique(ax.name)})
    return {n: i for i, n in enumerate(names)}


def _grayordinate_keys(axis: cifti2.BrainModelAxis, codes: dict[str, int]) -> np.ndarray:
    keys = np.empty(len(axis), dtype=np.int64)
    surf = axis.surface_mask
    if surf.any():
        struct = np.array([codes[str(n)] for n in axis.name[surf]], dtype=np.int64)
        keys[surf] = struct * np.int64(2**32) + axis.vertex[surf].astype(np.int64)
    vol = axis.volume_mask
    if vol.any():
        flat = np.ravel_multi_index(tuple(axis.voxel[vol].T), axis.volume_shape).astype(np.int64)
        keys[vol] = _VOXEL_KEY_BASE + flat
    return keys


@dataclass(frozen=True)
class ParcelMap:
    """Which dtseries columns belong to which parcel (the result of :func:`map_parcellation`).

    Parameters
    ----------
    columns : ndarray of int
        Dtseries column indices of the grayordinates that belong to a parcel, sorted by parcel.
    starts : ndarray of int
        Start of each parcel's block in ``columns`` (for :func:`numpy.add.reduceat`).
    counts : ndarray of int
        Number of grayordinates per parcel.
    labels : DataFrame
        ``index`` and ``name`` of each parcel, in ascending id order (the column order of the parcel
        time series).
    axis : nibabel.cifti2.BrainModelAxis
        The dtseries grayordinates the map was built for; every run is checked against it.
    """

    columns: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    labels: pd.DataFrame
    axis: cifti2.BrainModelAxis

    @property
    def n_parcels(self) -> int:
        """Number of parcels."""
        return int(self.counts.size)


def _describe_axis(axis: cifti2.BrainModelAxis) -> str:
    names, first, counts = np.unique(axis.name, return_index=True, return_counts=True)
    parts = [f"{names[i].replace('CIFTI_STRUCTURE_', '')}: {counts[i]}" for i in np.argsort(first)]
    return f"{len(axis)} grayordinates ({', '.join(parts[:4])}{', …' if len(parts) > 4 else ''})"


def map_parcellation(
    parcellation: CiftiParcellation, target: cifti2.BrainModelAxis, target_path: str | Path
) -> ParcelMap:
    """Match a parcellation's grayordinates to those of a dense time series.

    Grayordinates are identical when both files have the same :class:`~nibabel.cifti2.BrainModelAxis`
    (the usual case: the parcellation was made on the same template). Otherwise they are matched by
    (structure, vertex) on surfaces and by voxel index in the volume, which requires the same surface
    meshes (vertex counts) and the same voxel grid (affine and shape); grayordinates of the time series
    without a parcel are ignored.

    Parameters
    ----------
    parcellation : CiftiParcellation
        From :func:`load_parcellation`.
    target : nibabel.cifti2.BrainModelAxis
        The grayordinates (columns) of the dense time series.
    target_path : str or Path
        The dense time series file, for error messages.

    Returns
    -------
    ParcelMap

    Raises
    ------
    DataFormatError
        If the surfaces or voxel grids differ, or a labelled grayordinate of the parcellation is not in
        the time series (so every parcel keeps at least one grayordinate).
    """
    src = parcellation.axis
    where = f"parcellation {parcellation.path} vs dense time series {target_path}"
    if src == target:
        ids = parcellation.ids
    else:
        for name, n_src in src.nvertices.items():
            n_tgt = target.nvertices.get(name)
            labelled = np.any(parcellation.ids[src.name == name] > 0)
            if n_tgt is not None and n_tgt != n_src and labelled:
                raise DataFormatError(
                    f"{where}: {name.replace('CIFTI_STRUCTURE_', '')} is on a {n_src}-vertex mesh in the "
                    f"parcellation but a {n_tgt}-vertex mesh in the time series; both must use the same "
                    "surface (e.g. 32k fs_LR)"
                )
        if src.volume_mask.any() and target.volume_mask.any() and np.any(parcellation.ids[src.volume_mask] > 0):
            if src.volume_shape != target.volume_shape or not np.allclose(src.affine, target.affine):
                raise DataFormatError(
                    f"{where}: the subcortical voxel grids differ (shape {src.volume_shape} vs "
                    f"{target.volume_shape}); both must use the same grid (e.g. MNI 2 mm of the 91k "
                    "template)"
                )
        codes = _structure_codes(src, target)
        src_keys = _grayordinate_keys(src, codes)
        tgt_keys = _grayordinate_keys(target, codes)
        if np.unique(tgt_keys).size != tgt_keys.size:
            raise DataFormatError(f"{target_path}: a grayordinate occurs twice in the CIFTI brain models")
        index = pd.Index(tgt_keys)
        labelled = np.flatnonzero(parcellation.ids > 0)
        pos = index.get_indexer(src_keys[labelled])
        absent = pos < 0
        if absent.any():
            per_struct = pd.Series(src.name[labelled[absent]]).str.replace("CIFTI_STRUCTURE_", "")
            counts = per_struct.value_counts().head(4).to_dict()
            raise DataFormatError(
                f"{where}: {int(absent.sum())} labelled grayordinate(s) of the parcellation are not in the "
                f"time series ({counts}); the parcellation has {_describe_axis(src)}, the time series "
                f"{_describe_axis(target)}. Both must be in the same grayordinate space"
            )
        ids = np.zeros(len(target), dtype=np.int64)
        ids[pos] = parcellation.ids[labelled]
        logger.info(
            "%s: grayordinates matched by vertex/voxel (%d labelled of %d in the time series)",
            where, labelled.size, len(target),
        )
    keys = parcellation.labels["index"].to_numpy()
    # position of each grayordinate's parcel in ascending id order; -1 = no parcel
    parcel = np.full(ids.shape, -1, dtype=np.int64)
    assigned = ids > 0
    parcel[assigned] = np.searchsorted(keys, ids[assigned])
    # every parcel keeps >= 1 grayordinate: load_parcellation lists only ids that occur, and every
    # labelled grayordinate was found in the time series above
    counts = np.bincount(parcel[assigned], minlength=keys.size)
    columns = np.flatnonzero(assigned)
    order = np.argsort(parcel[columns], kind="stable")
    columns = columns[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return ParcelMap(columns=columns, starts=starts, counts=counts, labels=parcellation.labels, axis=target)


@dataclass(frozen=True)
class DtseriesInfo:
    """Header facts of a dense time series: grayordinates, number of volumes and TR (seconds)."""

    path: Path
    axis: cifti2.BrainModelAxis
    n_volumes: int
    tr: float | None


def read_dtseries_info(path: str | Path) -> DtseriesInfo:
    """Read the header of a ``.dtseries.nii``: its grayordinates, length and TR.

    The TR is the step of the series axis when its unit is seconds (``None`` otherwise).

    Raises
    ------
    DataFormatError
        If the file is not a dense CIFTI-2 time series.
    """
    path = Path(path)
    img = _load_cifti(path, "dense time series")
    axis = _brain_model_axis(img, path)
    series = img.header.get_axis(0)
    if not isinstance(series, cifti2.SeriesAxis):
        raise DataFormatError(
            f"{path}: rows are a {type(series).__name__}, expected a time series (SeriesAxis); "
            "pass a .dtseries.nii"
        )
    tr = float(series.step) if series.unit.upper() == "SECOND" else None
    return DtseriesInfo(path=path, axis=axis, n_volumes=int(series.size), tr=tr)


def parcel_timeseries(path: str | Path, parcel_map: ParcelMap) -> np.ndarray:
    """Mean time series of each parcel of a dense time series (methods §8.2).

    Parameters
    ----------
    path : str or Path
        A ``.dtseries.nii`` on the grayordinates ``parcel_map`` was built for.
    parcel_map : ParcelMap
        From :func:`map_parcellation`.

    Returns
    -------
    ndarray of shape (n_volumes, n_parcels), float64
        Plain means over each parcel's grayordinates (a NaN grayordinate makes its parcel NaN, as
        MATLAB ``mean`` does; the reader rejects NaN time series).

    Raises
    ------
    DataFormatError
        If the file's grayordinates differ from those of the map.
    """
    path = Path(path)
    img = _load_cifti(path, "dense time series")
    axis = _brain_model_axis(img, path)
    if axis != parcel_map.axis:
        raise DataFormatError(
            f"{path}: its grayordinates ({_describe_axis(axis)}) differ from those of the other runs "
            f"({_describe_axis(parcel_map.axis)}); all runs must be in the same grayordinate space"
        )
    proxy = img.dataobj
    n_vol = proxy.shape[0]
    out = np.empty((n_vol, parcel_map.n_parcels), dtype=np.float64)
    for start in range(0, n_vol, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n_vol)
        chunk = np.asarray(proxy[start:stop])[:, parcel_map.columns]
        out[start:stop] = np.add.reduceat(chunk, parcel_map.starts, axis=1, dtype=np.float64)
    out /= parcel_map.counts
    return out
