"""Glass-brain figures of regions and edges (paper Fig. 4–5), drawn with nilearn's matplotlib engine.

The paper draws parcel maps on cortical surfaces (Workbench), a cerebellar flatmap and subcortical
mosaics. Without the individual surfaces, regions are shown here as markers at their MNI coordinates
on nilearn's glass brain (:func:`nilearn.plotting.plot_markers`) and the strongest edges with
:func:`nilearn.plotting.plot_connectome`. Everything runs offline (the glass-brain outlines ship with
nilearn) and returns matplotlib Figures; no interactive widgets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap

from deipp_core.edges import vec_to_sym
from deipp_core.plotting.importance import WARM_CMAP, network_palette

__all__ = [
    "POS_CMAP",
    "NEG_CMAP",
    "plot_region_markers",
    "plot_region_networks",
    "plot_top_edges",
    "plot_brain_grid",
]

#: Red → yellow for positive weight sums (the original's ``wb_ry``).
POS_CMAP = plt.get_cmap("YlOrRd")
#: Blue → light blue for negative weight sums, strongest (most negative) darkest (``wb_blb``).
NEG_CMAP = plt.get_cmap("Blues_r")


def _coords(table: pd.DataFrame) -> np.ndarray:
    return table[["x", "y", "z"]].to_numpy(float)


def _blank(ax, title: str | None, text: str) -> plt.Figure:
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, transform=ax.transAxes)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def plot_region_markers(
    table: pd.DataFrame,
    value: str,
    *,
    ax=None,
    cmap=None,
    vmin: float | None = None,
    vmax: float | None = None,
    mask: np.ndarray | None = None,
    title: str | None = None,
    display_mode: str = "lzr",
) -> plt.Figure:
    """Regions as glass-brain markers coloured by a value (importance, Σ positive or negative weights).

    Parameters
    ----------
    table : DataFrame
        One row per region with ``x``, ``y``, ``z`` (MNI mm) and ``value``.
    value : str
        Column to show (e.g. ``"imp"``, ``"wpos"``, ``"wneg"``).
    ax : Axes, optional
        Axes whose area the glass brain fills (a new figure otherwise).
    cmap : Colormap, optional
        Default: :data:`WARM_CMAP` for non-negative values, :data:`NEG_CMAP` for non-positive ones.
    vmin, vmax : float, optional
        Colour limits (default: 0 and the extreme value).
    mask : ndarray of bool, optional
        Show only these regions (e.g. the top 10 or their union).
    title : str, optional
    display_mode : str, default="lzr"
        nilearn display mode.

    Returns
    -------
    Figure
    """
    from nilearn import plotting

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 2.6))
    t = table if mask is None else table[np.asarray(mask, dtype=bool)]
    vals = t[value].to_numpy(float)
    if vals.size == 0 or not np.isfinite(_coords(t)).all():
        return _blank(ax, title, "no regions with coordinates to show")
    negative = bool(np.nanmax(vals) <= 0)
    if cmap is None:
        cmap = NEG_CMAP if negative else WARM_CMAP
    if vmin is None:
        vmin = float(np.nanmin(vals)) if negative else 0.0
    if vmax is None:
        vmax = 0.0 if negative else float(np.nanmax(vals))
    if vmax <= vmin:
        vmax = vmin + 1e-12
    # larger markers for larger |value|
    size = 12 + 60 * np.abs(vals) / max(float(np.abs(vals).max()), 1e-12)
    plotting.plot_markers(vals, _coords(t), node_size=size, node_cmap=cmap, node_vmin=vmin,
                          node_vmax=vmax, display_mode=display_mode, axes=ax, figure=ax.figure,
                          title=None, annotate=False, colorbar=True, alpha=0.85)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def plot_region_networks(
    table: pd.DataFrame,
    *,
    mask: np.ndarray | None = None,
    palette: Mapping[str, tuple] | None = None,
    ax=None,
    title: str | None = None,
    display_mode: str = "lzr",
) -> plt.Figure:
    """Regions as glass-brain markers coloured by network (e.g. the union of the top-10 sets).

    Parameters
    ----------
    table : DataFrame
        One row per region with ``network``, ``x``, ``y``, ``z``.
    mask : ndarray of bool, optional
        Regions to show.
    palette : mapping of str to colour, optional
        Network colours (default :func:`~deipp_core.plotting.importance.network_palette`).
    ax : Axes, optional
    title : str, optional
    display_mode : str, default="lzr"

    Returns
    -------
    Figure
    """
    from nilearn import plotting

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 2.6))
    t = table if mask is None else table[np.asarray(mask, dtype=bool)]
    if t.empty or not np.isfinite(_coords(t)).all():
        return _blank(ax, title, "no regions with coordinates to show")
    nets = list(dict.fromkeys(table["network"]))
    palette = dict(palette) if palette is not None else network_palette(nets)
    used = list(dict.fromkeys(t["network"]))
    code = t["network"].map({n: k for k, n in enumerate(used)}).to_numpy(float)
    cmap = ListedColormap([palette[n] for n in used])
    plotting.plot_markers(code, _coords(t), node_size=40, node_cmap=cmap, node_vmin=-0.5,
                          node_vmax=len(used) - 0.5, display_mode=display_mode, axes=ax,
                          figure=ax.figure, annotate=False, colorbar=False, alpha=0.95)
    handles = [plt.Line2D([], [], marker="o", ls="", color=palette[n], label=n) for n in used]
    ax.legend(handles=handles, fontsize=6, ncol=min(len(used), 4), loc="upper center",
              bbox_to_anchor=(0.5, 0.02), frameon=False, handletextpad=0.2, columnspacing=0.8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def plot_top_edges(
    weights: np.ndarray,
    regions: pd.DataFrame,
    *,
    n_edges: int = 30,
    ax=None,
    title: str | None = None,
    palette: Mapping[str, tuple] | None = None,
    display_mode: str = "lzr",
) -> plt.Figure:
    """The ``n_edges`` strongest edges of a model (by |weight|) on a glass brain.

    Parameters
    ----------
    weights : ndarray of shape (P(P−1)/2,)
        Edge weights in :func:`~deipp_core.edges.edge_indices` order (e.g. ``cv.final_coef``).
    regions : DataFrame
        One row per included parcel, in the weights' parcel order, with ``network``, ``x``, ``y``,
        ``z`` (e.g. :func:`~deipp_core.analyses.importance.region_weights`).
    n_edges : int, default=30
    ax : Axes, optional
    title : str, optional
    palette : mapping of str to colour, optional
        Node colours by network.
    display_mode : str, default="lzr"

    Returns
    -------
    Figure
        Positive edges red, negative blue; only the nodes of the shown edges are drawn.
    """
    from nilearn import plotting

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 2.6))
    W = vec_to_sym(np.asarray(weights, dtype=float), len(regions))
    iu = np.triu_indices(len(regions), 1)
    strength = np.abs(W[iu])
    k = min(int(n_edges), int(np.count_nonzero(strength)))
    if k == 0 or not np.isfinite(_coords(regions)).all():
        return _blank(ax, title, "no non-zero edges with coordinates to show")
    keep = np.argsort(-strength, kind="stable")[:k]
    A = np.zeros_like(W)
    A[iu[0][keep], iu[1][keep]] = W[iu][keep]
    A = A + A.T
    nodes = np.flatnonzero(np.abs(A).sum(axis=1) > 0)
    nets = list(dict.fromkeys(regions["network"]))
    palette = dict(palette) if palette is not None else network_palette(nets)
    colors = [palette[n] for n in regions["network"].iloc[nodes]]
    vmax = float(np.abs(A).max())
    plotting.plot_connectome(A[np.ix_(nodes, nodes)], _coords(regions.iloc[nodes]), node_color=colors,
                             node_size=18, edge_cmap="RdBu_r", edge_vmin=-vmax, edge_vmax=vmax,
                             display_mode=display_mode, axes=ax, figure=ax.figure, annotate=False,
                             colorbar=True, edge_kwargs={"linewidth": 1.0}, alpha=0.8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def plot_brain_grid(
    panels: Mapping[str, Sequence[dict]],
    *,
    column_titles: Sequence[str] | None = None,
    display_mode: str = "lzr",
) -> plt.Figure:
    """A grid of glass brains: one row per participant, one column per map.

    Parameters
    ----------
    panels : mapping of str to sequence of dict
        Per participant (row title), the panels of its row, each a dict with ``kind`` (``"markers"``,
        ``"networks"`` or ``"edges"``) and the keyword arguments of :func:`plot_region_markers`,
        :func:`plot_region_networks` or :func:`plot_top_edges` (without ``ax``).
    column_titles : sequence of str, optional
        Titles of the columns (shown on the first row).
    display_mode : str, default="lzr"

    Returns
    -------
    Figure
    """
    names = list(panels)
    n_col = max(len(v) for v in panels.values())
    fig, axes = plt.subplots(len(names), n_col, figsize=(5.0 * n_col, 2.9 * len(names)),
                             squeeze=False, gridspec_kw={"hspace": 0.55, "wspace": 0.12})
    draw = {"markers": plot_region_markers, "networks": plot_region_networks, "edges": plot_top_edges}
    for r, name in enumerate(names):
        for c in range(n_col):
            ax = axes[r, c]
            if c >= len(panels[name]):
                ax.set_axis_off()
                continue
            spec = dict(panels[name][c])
            kind = spec.pop("kind")
            spec.setdefault("display_mode", display_mode)
            if spec.get("title") is None:
                head = column_titles[c] if column_titles is not None and c < len(column_titles) else ""
                spec["title"] = f"{name} — {head}" if head else name
            draw[kind](ax=ax, **spec)
    return fig
