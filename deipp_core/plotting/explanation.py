"""Figures of the explanation chapter: weights vs activation patterns, weight stability, permutation nulls.

They take the results of :mod:`deipp_core.analyses.explanation` and never compute statistics; the
glass-brain maps reuse :func:`deipp_core.plotting.brain.plot_brain_grid`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from deipp_core.analyses.explanation import PatternComparison, PermutationTest, WeightStability
from deipp_core.edges import vec_to_sym
from deipp_core.plotting._style import LEVEL_COLORS, LEVEL_LABELS

__all__ = ["plot_pattern_vs_weight", "plot_weight_stability", "plot_permutation_nulls", "pattern_brain_panels"]

_PLANTED = (0.84, 0.15, 0.16)
_OTHER = (0.55, 0.55, 0.55)
_SCHEME_COLORS = {"session": (0.30, 0.45, 0.69), "circular": (0.87, 0.52, 0.32)}
_SCHEME_LABELS = {"session": "sessions permuted", "circular": "runs circularly shifted"}


def _edge_colors(edges) -> tuple[np.ndarray, bool]:
    if "planted" in edges.columns:
        planted = edges["planted"].to_numpy(bool)
        return planted, True
    return np.zeros(len(edges), dtype=bool), False


def plot_pattern_vs_weight(comparisons: Mapping[str, PatternComparison]) -> plt.Figure:
    """Edge weights against activation patterns, per edge and per region, one row per participant.

    Parameters
    ----------
    comparisons : mapping of str to PatternComparison
        Keyed by display name (:func:`~deipp_core.analyses.explanation.pattern_comparison`).

    Returns
    -------
    Figure
        Left: one dot per edge (planted edges of the twin in red). Middle and right: per region, the
        sums of the positive and of the negative weights against the same sums of the pattern.
    """
    names = list(comparisons)
    fig, axes = plt.subplots(len(names), 3, figsize=(10.5, 3.1 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        comp = comparisons[name]
        e = comp.edges
        planted, has_truth = _edge_colors(e)
        ax = axes[row, 0]
        ax.scatter(e.loc[~planted, "weight"], e.loc[~planted, "pattern"], s=4, color=_OTHER, alpha=0.4,
                   edgecolor="none", label="other edges" if has_truth else "edges", rasterized=True)
        if has_truth:
            ax.scatter(e.loc[planted, "weight"], e.loc[planted, "pattern"], s=9, color=_PLANTED,
                       alpha=0.85, edgecolor="none", label="planted edges")
        ax.axhline(0, color="0.7", lw=0.6)
        ax.axvline(0, color="0.7", lw=0.6)
        ax.set_xlabel("edge weight w")
        ax.set_ylabel("activation pattern A")
        ax.set_title(f"{name}: edges (r = {comp.summary['edge_r']:.2f})", fontsize=9)
        ax.legend(fontsize=7, frameon=False, loc="best")
        reg = comp.regions
        for col, (w, a, label) in enumerate((("wpos", "ppos", "positive"), ("wneg", "pneg", "negative")), 1):
            ax = axes[row, col]
            ax.scatter(reg[w], reg[a], s=14, color="0.25", alpha=0.7, edgecolor="none")
            r = comp.summary[f"region_r_{label[:3]}"]
            ax.set_xlabel(f"Σ {label} weights per region")
            ax.set_ylabel(f"Σ {label} pattern per region")
            ax.set_title(f"{name}: regions, {label} sums (r = {r:.2f})", fontsize=9)
        for ax in axes[row]:
            ax.spines[["top", "right"]].set_visible(False)
            ax.ticklabel_format(style="sci", scilimits=(-2, 3), axis="both")
    fig.tight_layout()
    return fig


def pattern_brain_panels(comparisons: Mapping[str, PatternComparison]) -> dict:
    """Panels for :func:`~deipp_core.plotting.brain.plot_brain_grid`: Σ positive weights and Σ positive
    pattern per region, one row per participant.

    Returns
    -------
    dict
        ``{name: [markers of "wpos", markers of "ppos"]}``; pass it with column titles
        ``("Σ positive weights", "Σ positive pattern")``.
    """
    return {name: [{"kind": "markers", "table": c.regions, "value": "wpos"},
                   {"kind": "markers", "table": c.regions, "value": "ppos"}]
            for name, c in comparisons.items()}


def plot_weight_stability(
    stabilities: Mapping[str, WeightStability],
    planted: Mapping[str, np.ndarray] | None = None,
    n_parcels: Mapping[str, int] | None = None,
) -> plt.Figure:
    """Stability z of the edge weights: a parcel × parcel map and its distribution, one row per participant.

    Parameters
    ----------
    stabilities : mapping of str to WeightStability
        Keyed by display name.
    planted : mapping of str to ndarray of bool, optional
        Planted-edge masks (twin), to split the distribution.
    n_parcels : mapping of str to int, optional
        Parcels of each participant (inferred from the number of edges otherwise).

    Returns
    -------
    Figure
        Left: the symmetric matrix of ``z = mean / SD`` (colour limited to ±the 99th percentile of
        |z|). Right: histogram of z (planted vs other edges on the twin); dashed lines at ±2.
    """
    names = list(stabilities)
    fig, axes = plt.subplots(len(names), 2, figsize=(9.0, 3.6 * len(names)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.0, 1.3]})
    for row, name in enumerate(names):
        st = stabilities[name]
        z = np.nan_to_num(st.z, nan=0.0)
        ax = axes[row, 0]
        Z = vec_to_sym(z, None if n_parcels is None else n_parcels[name])
        lim = float(np.quantile(np.abs(z), 0.99)) or 1.0
        im = ax.imshow(Z, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="stability z")
        ax.set_xlabel("parcel")
        ax.set_ylabel("parcel")
        ax.set_title(f"{name}: stability z of each edge", fontsize=9)
        ax = axes[row, 1]
        bins = np.linspace(float(z.min()), float(z.max()) + 1e-12, 41)
        mask = None if planted is None or name not in planted else np.asarray(planted[name], bool)
        if mask is not None and mask.any():
            ax.hist(z[~mask], bins=bins, color=_OTHER, alpha=0.8, density=True, label="other edges")
            ax.hist(z[mask], bins=bins, color=_PLANTED, alpha=0.6, density=True, label="planted edges")
            ax.legend(fontsize=7, frameon=False)
            ax.set_ylabel("density")
        else:
            ax.hist(z, bins=bins, color=_OTHER)
            ax.set_ylabel("edges")
        for v in (-2, 2):
            ax.axvline(v, color="0.3", ls="--", lw=0.8)
        ax.set_xlabel("stability z = bootstrap mean / SD")
        ax.set_title(f"{name}: {st.n_boot} session-bootstrap refits, {st.n_components} component(s)",
                     fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def plot_permutation_nulls(
    tests: Mapping[str, Sequence[PermutationTest]], *, levels: Sequence[str] | None = None
) -> plt.Figure:
    """Null distributions of the held-out r with the observed r, one row per participant, one column per level.

    Parameters
    ----------
    tests : mapping of str to sequence of PermutationTest
        Per participant (display name), one test per scheme.
    levels : sequence of str, optional
        Levels to show (default: those of the tests, in the evaluation order).

    Returns
    -------
    Figure
        Histograms of the null r per scheme, the observed r as a solid line with the permutation p
        of each scheme, and r = 0 dashed.
    """
    names = list(tests)
    if levels is None:
        present = {lv for ts in tests.values() for t in ts for lv in t.observed["level"]}
        levels = [lv for lv in LEVEL_COLORS if lv in present]
    fig, axes = plt.subplots(len(names), len(levels), figsize=(2.6 * len(levels), 2.7 * len(names)),
                             squeeze=False, sharex=True)
    bins = np.linspace(-1, 1, 31)
    for row, name in enumerate(names):
        for col, lv in enumerate(levels):
            ax = axes[row, col]
            notes = []
            observed = np.nan
            for t in tests[name]:
                vals = t.null.loc[t.null["level"] == lv, "r"].dropna().to_numpy(float)
                color = _SCHEME_COLORS.get(t.scheme, "0.5")
                ax.hist(vals, bins=bins, color=color, alpha=0.55, label=_SCHEME_LABELS.get(t.scheme, t.scheme))
                p = t.p.set_index("level").loc[lv]
                observed = float(p["r"])
                notes.append(f"p ({t.scheme}) = {p['p_perm']:.2f}")
            ax.axvline(0, color="0.5", ls="--", lw=0.8)
            ax.axvline(observed, color=LEVEL_COLORS.get(lv, "k"), lw=2.2)
            ax.text(0.02, 0.97, "\n".join(notes), transform=ax.transAxes, va="top", fontsize=7)
            ax.set_title(f"{name}: {LEVEL_LABELS.get(lv, lv)} (r = {observed:.2f})", fontsize=8.5)
            ax.set_xlabel("held-out r")
            ax.spines[["top", "right"]].set_visible(False)
        axes[row, 0].set_ylabel("permutations")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
