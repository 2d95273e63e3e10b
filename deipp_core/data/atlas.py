"""Parcels with real anatomy and network labels: the Seitzman et al. (2020) 300-ROI atlas.

The digital twin needs parcels that sit at real brain positions and belong to real functional
networks, so that network summaries, connectograms and glass-brain plots of the twin look like those
of a brain. We use the **Seitzman 300-ROI set** (Seitzman et al. 2020, *NeuroImage* 206:116290): 300
spheres of 4–5 mm radius in MNI space covering cortex, subcortex and cerebellum, each assigned to one
of 13 resting-state networks or ``unassigned``. Its coordinates and labels ship inside nilearn
(``nilearn/datasets/data/seitzman_2018_ROIs_300inVol_MNI_allInfo.txt``), and
:func:`nilearn.datasets.fetch_coords_seitzman_2018` reads them **offline**; nothing is downloaded.

This is *not* the paper's parcellation. The paper used individual cortical parcels (or Schaefer-500)
plus 66 subcortical ROIs (``reference/deipp_methods.md`` §7). The twin only needs a plausible
parcellation with network labels. Like the paper's main model, it leaves the visual network out of the
analysis (``included`` is False for the ``Visual`` network).

Row order and names
-------------------
Rows are grouped by network, with networks in alphabetical order and ``unassigned`` last. Within a
network, rows run from anterior to posterior (descending MNI y), with ties broken by ROI number. This
puts networks in contiguous blocks of a connectivity matrix. ``index`` is the 0-based row number.
``name`` is ``ROI<nnn>_<network>``, where ``nnn`` is the ROI's 1-based line number in Seitzman's file,
so a name points back to the source ROI whatever subset or order it appears in.

The quick profile uses :func:`seitzman_subset`, a deterministic stratified subset that keeps every
network (at least one parcel each, the rest shared out in proportion to network size) and spreads
the chosen parcels evenly along each network's anterior–posterior order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deipp_core.exceptions import DataFormatError, ParameterError

__all__ = [
    "ATLAS_COLUMNS",
    "EXCLUDED_NETWORKS",
    "atlas_name",
    "seitzman_atlas",
    "seitzman_subset",
    "write_atlas_tsv",
    "read_atlas_tsv",
]

#: Columns of an atlas table, in order (as ``deipp_core.data.dataset.ATLAS_COLUMNS``).
ATLAS_COLUMNS: tuple[str, ...] = ("index", "name", "network", "x", "y", "z", "included")

#: Networks left out of the analysis. The paper's main model excludes visual parcels.
EXCLUDED_NETWORKS: frozenset[str] = frozenset({"Visual"})

#: Name of the full atlas in BIDS ``atlas-<name>`` entities.
FULL_ATLAS_NAME = "Seitzman300"

_N_FULL = 300


def atlas_name(n_parcels: int | None = None) -> str:
    """BIDS ``atlas-`` label of the full atlas or of its stratified subset of ``n_parcels``.

    >>> atlas_name(), atlas_name(300), atlas_name(80)
    ('Seitzman300', 'Seitzman300', 'Seitzman300q80')
    """
    if n_parcels is None or n_parcels == _N_FULL:
        return FULL_ATLAS_NAME
    return f"{FULL_ATLAS_NAME}q{int(n_parcels)}"


def _network_sort_key(network: str) -> tuple[int, str]:
    return (1 if network == "unassigned" else 0, network)


def seitzman_atlas() -> pd.DataFrame:
    """The 300 Seitzman ROIs as an atlas table, built offline from nilearn's bundled coordinates.

    Returns
    -------
    DataFrame of shape (300, 7)
        Columns :data:`ATLAS_COLUMNS`: ``index`` (0-based int, the row number), ``name`` (unique,
        ``ROI<nnn>_<network>``), ``network`` (13 Seitzman networks plus ``unassigned``), ``x``, ``y``,
        ``z`` (MNI mm) and ``included`` (bool; False for the visual network).

    Examples
    --------
    >>> atlas = seitzman_atlas()
    >>> atlas.shape, int(atlas["included"].sum())
    ((300, 7), 263)
    """
    from nilearn.datasets import fetch_coords_seitzman_2018

    bunch = fetch_coords_seitzman_2018(ordered_regions=False)
    rois = bunch.rois.reset_index(drop=True)
    df = pd.DataFrame(
        {
            "roi": np.arange(1, len(rois) + 1),
            "network": np.asarray(bunch.networks, dtype=str),
            "x": rois["x"].to_numpy(float),
            "y": rois["y"].to_numpy(float),
            "z": rois["z"].to_numpy(float),
        }
    )
    if len(df) != _N_FULL:
        raise DataFormatError(
            f"nilearn's Seitzman coordinates have {len(df)} ROIs, expected {_N_FULL}; "
            "check the installed nilearn version"
        )
    df["_net_key"] = [_network_sort_key(n) for n in df["network"]]
    df = df.sort_values(["_net_key", "y", "roi"], ascending=[True, False, True], kind="stable")
    df = df.reset_index(drop=True)
    out = pd.DataFrame(
        {
            "index": np.arange(len(df), dtype=int),
            "name": [f"ROI{r:03d}_{n}" for r, n in zip(df["roi"], df["network"])],
            "network": df["network"].astype(str).to_numpy(),
            "x": df["x"].to_numpy(),
            "y": df["y"].to_numpy(),
            "z": df["z"].to_numpy(),
            "included": ~df["network"].isin(EXCLUDED_NETWORKS).to_numpy(),
        }
    )
    return out


def _allocate(sizes: pd.Series, n: int) -> dict[str, int]:
    """Largest-remainder allocation of ``n`` parcels over networks, at least one each."""
    networks = list(sizes.index)
    if n < len(networks):
        raise ParameterError(
            f"a stratified subset must keep all {len(networks)} networks, so n_parcels must be "
            f">= {len(networks)}; got {n}"
        )
    alloc = {k: 1 for k in networks}
    rest = n - len(networks)
    spare = sizes - 1
    quota = spare / spare.sum() * rest
    base = np.floor(quota).astype(int)
    for k in networks:
        alloc[k] += int(min(base[k], spare[k]))
    left = n - sum(alloc.values())
    # Hand out the remaining parcels by largest fractional remainder (ties: larger network first,
    # then name), never exceeding a network's size.
    order = sorted(networks, key=lambda k: (-(quota[k] - base[k]), -sizes[k], k))
    while left > 0:
        progressed = False
        for k in order:
            if left == 0:
                break
            if alloc[k] < sizes[k]:
                alloc[k] += 1
                left -= 1
                progressed = True
        if not progressed:  # pragma: no cover - n <= total is checked by the caller
            break
    return alloc


def seitzman_subset(n_parcels: int, atlas: pd.DataFrame | None = None) -> pd.DataFrame:
    """A deterministic, stratified subset of the atlas that keeps every network.

    Each network keeps at least one parcel. The other parcels are shared out in proportion to
    network size (largest remainder). Within a network, the parcels are taken at evenly spaced
    positions along its anterior–posterior order, so the subset still covers the network in space.
    The rows keep the atlas order and their ``name``. ``index`` is renumbered 0…n−1.

    Parameters
    ----------
    n_parcels : int
        Number of parcels to keep (between the number of networks and the atlas size).
    atlas : DataFrame, optional
        Atlas to subset; default :func:`seitzman_atlas`.

    Returns
    -------
    DataFrame
        Same columns as the atlas.

    Examples
    --------
    >>> sub = seitzman_subset(80)
    >>> len(sub), sub["network"].nunique()
    (80, 14)
    """
    atlas = seitzman_atlas() if atlas is None else atlas
    n_parcels = int(n_parcels)
    if n_parcels > len(atlas):
        raise ParameterError(f"n_parcels must be <= {len(atlas)} (the atlas size); got {n_parcels}")
    if n_parcels == len(atlas):
        return atlas.copy()
    sizes = atlas["network"].value_counts().sort_index()
    alloc = _allocate(sizes, n_parcels)
    keep: list[int] = []
    for net, q in alloc.items():
        rows = np.flatnonzero(atlas["network"].to_numpy() == net)  # already anterior → posterior
        pos = np.unique(np.round(np.linspace(0, len(rows) - 1, q)).astype(int))
        keep.extend(rows[pos].tolist())
    sub = atlas.iloc[sorted(keep)].reset_index(drop=True).copy()
    sub["index"] = np.arange(len(sub), dtype=int)
    return sub


def write_atlas_tsv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write an atlas table as ``atlas-<name>_dseg.tsv`` (``included`` as 0/1, coordinates in mm).

    Returns the path written.
    """
    missing = [c for c in ATLAS_COLUMNS if c not in df.columns]
    if missing:
        raise DataFormatError(f"atlas table lacks columns {missing}; expected {list(ATLAS_COLUMNS)}")
    path = Path(path)
    out = df.loc[:, list(ATLAS_COLUMNS)].copy()
    out["included"] = out["included"].astype(bool).astype(int)
    out.to_csv(path, sep="\t", index=False, float_format="%.2f", lineterminator="\n")
    return path


def read_atlas_tsv(path: str | Path) -> pd.DataFrame:
    """Read an atlas table written by :func:`write_atlas_tsv` (``included`` back to bool).

    A table without an ``included`` column gets ``included = True`` for every parcel.
    """
    path = Path(path)
    df = pd.read_csv(path, sep="\t", dtype={"name": str, "network": str})
    required = [c for c in ATLAS_COLUMNS if c != "included"]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"{path}: atlas table lacks columns {missing}; expected {list(ATLAS_COLUMNS)}"
        )
    if "included" not in df.columns:
        df["included"] = True
    df["included"] = df["included"].astype(int).astype(bool)
    df["index"] = df["index"].astype(int)
    return df.loc[:, list(ATLAS_COLUMNS)]
