"""Figures of the teaching chapter ("How personalized decoding works").

Each function draws one step of the pipeline from objects the package already returns — a
:class:`~deipp_core.ratings.RunFrames`, z-scored time series and edge co-fluctuations from
:mod:`deipp_core.edges`, a fitted :class:`~deipp_core.model.LassoPCR`, the session labels (or recorded
splits) of a :class:`~deipp_core.model.NestedLOSOResult` — draws into given axes or a new figure and
returns the Figure. Nothing here changes a result; the few quantities a panel needs (the censored
volumes of a run, frames per bin, component strengths) are read off those objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from deipp_core.ratings import RatingParams, RunFrames

__all__ = [
    "censored_volumes",
    "plot_run_alignment",
    "plot_bin_comparison",
    "plot_edge_pair",
    "component_strength",
    "plot_soft_thresholding",
    "loso_split_matrix",
    "plot_loso_splits",
]

_RATING_COLOR = "#30638e"
_CENSOR_COLOR = "#d1495b"
_TRIM_COLOR = "0.85"
_SELECTED_COLOR = "#d1495b"
_OTHER_COLOR = "0.6"
_STRENGTH_LABEL = r"$|c_j| = |\mathrm{corr}(s_j, y)|\,\sigma_y$"

#: Codes of :func:`loso_split_matrix` and their colours / legend labels.
SPLIT_CODES: dict[int, tuple[str, str]] = {
    0: ("#d9e3ec", "training"),
    1: ("#d1495b", "held out (test)"),
    2: ("0.35", "outer test session: never seen"),
}


def _clean(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)


def _axes(n: int, axes, figsize) -> tuple[plt.Figure, list]:
    if axes is None:
        fig, axes = plt.subplots(n, 1, figsize=figsize, squeeze=False)
        return fig, list(axes[:, 0])
    axes = list(np.atleast_1d(axes))
    if len(axes) != n:
        raise ValueError(f"expected {n} axes, got {len(axes)}")
    return axes[0].figure, axes


# --------------------------------------------------------------------------------------------------
# Step 1: a rating run on the volume grid
# --------------------------------------------------------------------------------------------------


def censored_volumes(frames: RunFrames, params: RatingParams, tr: float) -> np.ndarray:
    """Volumes of the analysis window (after the trim and the lag) that censoring removed.

    Parameters
    ----------
    frames : RunFrames
        The aligned run (:func:`deipp_core.ratings.align_run`).
    params : RatingParams
        The parameters the run was aligned with.
    tr : float
        Repetition time in seconds.

    Returns
    -------
    ndarray of int64
        0-based volume indices in ``n_trim + lag … n_volumes − 1`` that are not among the kept frames.

    Examples
    --------
    >>> rf = RunFrames(frames=np.array([80, 81, 83]), rating=np.zeros(3), rating_tr=np.zeros(85))
    >>> censored_volumes(rf, RatingParams(), 0.46).tolist()  # window 79…84 (66 + 13 = 79)
    [79, 82, 84]
    """
    first = params.n_trim(tr) + params.lag_tr
    window = np.arange(first, frames.rating_tr.size)
    return np.setdiff1d(window, frames.frames).astype(np.int64)


def plot_run_alignment(
    frames: RunFrames, params: RatingParams, tr: float, *, ax=None, title: str | None = None
) -> plt.Figure:
    """A rating run on the fMRI grid: trim, hemodynamic lag and censored volumes.

    The grey line is the rating on the volume grid (``frames.rating_tr``), the shaded band the
    trimmed start, the blue dots the rating paired with each kept brain volume — the same curve shifted
    right by ``lag_tr`` volumes — and the red ticks the censored volumes of the analysis window.

    Parameters
    ----------
    frames : RunFrames
        From :func:`deipp_core.ratings.align_run`.
    params : RatingParams
        The parameters used for the alignment.
    tr : float
        Repetition time in seconds (the x axis is in seconds from the end of the dummy scans).
    ax : Axes, optional
    title : str, optional

    Returns
    -------
    Figure
    """
    fig, (ax,) = _axes(1, None if ax is None else [ax], (7.5, 2.8))
    n_vol = frames.rating_tr.size
    t = np.arange(n_vol) * tr
    n_trim = params.n_trim(tr)
    ax.axvspan(0, n_trim * tr, color=_TRIM_COLOR, lw=0, label=f"trimmed ({params.trim_s:g} s)")
    ax.plot(t, frames.rating_tr, color="0.45", lw=1.2, label="rating on the volume grid")
    ax.scatter(frames.frames * tr, frames.rating, s=3, color=_RATING_COLOR, lw=0,
               label=f"paired with brain volume (+{params.lag_tr} TR)")
    cens = censored_volumes(frames, params, tr)
    if cens.size:
        ax.plot(cens * tr, np.zeros(cens.size), "|", color=_CENSOR_COLOR, ms=10, mew=1.0,
                label=f"censored volumes ({cens.size})")
    ax.set_xlim(0, n_vol * tr)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Pain rating")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    _clean(ax)
    return fig


# --------------------------------------------------------------------------------------------------
# Step 2: rating-quantile bins vs time bins
# --------------------------------------------------------------------------------------------------


def plot_bin_comparison(frames: RunFrames, n_bins: int = 10, *, axes=None) -> plt.Figure:
    """Rating-quantile bins (training units) against MATLAB ``discretize`` time bins (test units).

    Top: the kept frames' ratings coloured by rating-quantile bin (grey: excluded by the
    short-segment rule). Middle: the same frames coloured by time bin. Bottom: frames per bin for both
    kinds — rating bins hold about equal numbers of frames scattered over the run; time bins are
    contiguous and, because MATLAB's bin picker rounds the width up, the last one is short.

    Parameters
    ----------
    frames : RunFrames
        From :func:`deipp_core.ratings.align_run`; must hold ``n_bins`` in ``rbin`` and ``tbin``.
    n_bins : int, default=10
    axes : sequence of 3 Axes, optional

    Returns
    -------
    Figure
    """
    if n_bins not in frames.rbin or n_bins not in frames.tbin:
        raise ValueError(
            f"the run was aligned without {n_bins} bins (has {sorted(frames.rbin)}); add {n_bins} to "
            "RatingParams.n_bins"
        )
    fig, axes = _axes(3, axes, (7.5, 6.0))
    x = np.arange(frames.n_frames)
    cmap = plt.get_cmap("viridis", n_bins)
    for ax, labels, name in ((axes[0], frames.rbin[n_bins], "rating-quantile bin"),
                             (axes[1], frames.tbin[n_bins], "time bin")):
        out = labels < 0
        ax.scatter(x[out], frames.rating[out], s=3, color="0.75", lw=0)
        sc = ax.scatter(x[~out], frames.rating[~out], s=3, c=labels[~out], cmap=cmap,
                        vmin=-0.5, vmax=n_bins - 0.5, lw=0)
        cb = fig.colorbar(sc, ax=ax, pad=0.01, ticks=[0, n_bins - 1])
        cb.ax.set_ylabel(name, fontsize=8)
        ax.set_ylabel("Pain rating")
        _clean(ax)
    axes[1].set_xlabel("Kept frame")
    r_counts = np.bincount(frames.rbin[n_bins][frames.rbin[n_bins] >= 0], minlength=n_bins)
    t_counts = np.bincount(frames.tbin[n_bins], minlength=n_bins)
    b = np.arange(n_bins)
    axes[2].bar(b - 0.2, r_counts, width=0.4, color=_OTHER_COLOR, label="rating-quantile bins")
    axes[2].bar(b + 0.2, t_counts, width=0.4, color=_RATING_COLOR, label="time bins (discretize)")
    axes[2].set_xticks(b)
    axes[2].set_xlabel("Bin (0-based)")
    axes[2].set_ylabel("Frames")
    axes[2].legend(fontsize=7, frameon=False, loc="lower left")
    _clean(axes[2])
    fig.colorbar(sc, ax=axes[2], pad=0.01).ax.set_visible(False)  # keep the x axes aligned
    return fig


# --------------------------------------------------------------------------------------------------
# Step 3: z-scores and the edge co-fluctuation of one pair
# --------------------------------------------------------------------------------------------------


def plot_edge_pair(
    z: np.ndarray,
    edge: np.ndarray,
    labels: np.ndarray,
    bin_means: np.ndarray,
    *,
    names: Sequence[str] = ("region A", "region B"),
    axes=None,
) -> plt.Figure:
    """Two z-scored regions, their edge co-fluctuation ``e(t) = z_a(t)·z_b(t)`` and its bin means.

    Parameters
    ----------
    z : ndarray of shape (n_frames, 2)
        Z-scored time series of the two regions over the kept frames
        (:func:`deipp_core.edges.zscore`).
    edge : ndarray of shape (n_frames,)
        Their edge time series (:func:`deipp_core.edges.edge_timeseries`).
    labels : ndarray of shape (n_frames,)
        Bin label of every frame (−1: no bin), e.g. ``RunFrames.rbin[10]``.
    bin_means : ndarray of shape (n_bins,)
        Mean of ``edge`` in each bin (:func:`deipp_core.edges.binned_edges`): the features.
    names : pair of str
    axes : sequence of 2 Axes, optional

    Returns
    -------
    Figure
    """
    z = np.asarray(z, dtype=float)
    edge = np.asarray(edge, dtype=float)
    labels = np.asarray(labels)
    bin_means = np.asarray(bin_means, dtype=float)
    if z.ndim != 2 or z.shape[1] != 2 or edge.shape != (z.shape[0],) or labels.shape != edge.shape:
        raise ValueError(
            f"need z of shape (n, 2), edge and labels of shape (n,); got {z.shape}, {edge.shape}, "
            f"{labels.shape}"
        )
    if labels.max() >= bin_means.size:
        raise ValueError(f"labels go up to {labels.max()} but only {bin_means.size} bin means were given")
    fig, axes = _axes(2, axes, (7.5, 4.0))
    x = np.arange(z.shape[0])
    axes[0].plot(x, z[:, 0], color=_RATING_COLOR, lw=0.8, label=names[0])
    axes[0].plot(x, z[:, 1], color="#edae49", lw=0.8, label=names[1])
    axes[0].set_ylabel("z-score")
    axes[0].legend(fontsize=7, frameon=False, ncol=2, loc="upper right")
    axes[1].fill_between(x, 0, edge, where=edge >= 0, color=_CENSOR_COLOR, lw=0, interpolate=True)
    axes[1].fill_between(x, 0, edge, where=edge < 0, color=_RATING_COLOR, lw=0, interpolate=True)
    inbin = labels >= 0
    mean_line = np.full(edge.shape, np.nan)
    mean_line[inbin] = bin_means[labels[inbin]]
    axes[1].plot(x, mean_line, color="k", lw=1.5, label="bin mean (the feature)")
    axes[1].axhline(0, color="0.5", lw=0.6)
    axes[1].set_ylabel("e(t) = product")
    axes[1].set_xlabel("Kept frame")
    axes[1].legend(fontsize=7, frameon=False, loc="upper right")
    for ax in axes:
        _clean(ax)
    return fig


# --------------------------------------------------------------------------------------------------
# Step 4: LASSO over orthogonal PC scores is soft-thresholding
# --------------------------------------------------------------------------------------------------


def component_strength(model, y: np.ndarray) -> np.ndarray:
    """``|corr(score_j, y)|·σ_y`` of every component of a fitted :class:`~deipp_core.model.LassoPCR`.

    ``σ_y`` is the population SD of ``y`` (MATLAB ``lasso`` standardises with it). A component is
    selected at penalty λ iff its strength exceeds λ.

    Parameters
    ----------
    model : LassoPCR
        Fitted on ``(X, y)``.
    y : array-like of shape (n_samples,)
        The target it was fitted on.

    Returns
    -------
    ndarray of shape (model.n_components_,)
    """
    y = np.asarray(y, dtype=float)
    return np.abs(model.score_corr_) * y.std()


def plot_soft_thresholding(
    model,
    y: np.ndarray,
    *,
    lasso_coef: np.ndarray | None = None,
    axes=None,
) -> plt.Figure:
    """Why LASSO over principal-component scores selects by a threshold.

    Left: the strength ``|corr(score_j, y)|·σ_y`` of every component (in order of explained variance)
    against the penalty λ = ``model.alpha`` (dashed line); components above it are the model's
    ``selected_`` support. Right (if ``lasso_coef`` is given): the coefficients of a generic LASSO
    solver on the standardised scores against the strengths, on the soft-thresholding line
    ``|b_j| = max(strength_j − λ, 0)``.

    Parameters
    ----------
    model : LassoPCR
        Fitted with ``alpha`` set (thresholding, not ``n_components``).
    y : array-like of shape (n_samples,)
        The target the model was fitted on.
    lasso_coef : array-like of shape (model.n_components_,), optional
        Coefficients of a LASSO fitted on the standardised component scores, same component order.
    axes : sequence of 1 or 2 Axes, optional

    Returns
    -------
    Figure
    """
    if getattr(model, "alpha", None) is None or getattr(model, "n_components", None) is not None:
        raise ValueError("plot_soft_thresholding needs a LassoPCR fitted with alpha (a λ), not n_components")
    strength = component_strength(model, y)
    lam = float(model.alpha)
    n_panels = 1 if lasso_coef is None else 2
    if axes is None:
        fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels, 3.2), squeeze=False)
        fig.subplots_adjust(wspace=0.4)
        axes = list(axes[0])
    else:
        fig, axes = _axes(n_panels, axes, None)
    sel = np.asarray(model.selected_, dtype=bool)
    k = np.arange(1, strength.size + 1)
    ax = axes[0]
    ax.scatter(k[~sel], strength[~sel], s=10, color=_OTHER_COLOR, lw=0, label="not selected")
    ax.scatter(k[sel], strength[sel], s=14, color=_SELECTED_COLOR, lw=0,
               label=f"selected ({int(sel.sum())})")
    ax.axhline(lam, color="k", ls="--", lw=1, label=r"$\lambda$")
    ax.set_xlabel("Component (by explained variance)")
    ax.set_ylabel(_STRENGTH_LABEL)
    ax.legend(fontsize=7, frameon=False)
    _clean(ax)
    if lasso_coef is not None:
        b = np.abs(np.asarray(lasso_coef, dtype=float))
        if b.shape != strength.shape:
            raise ValueError(f"lasso_coef has shape {b.shape}; the model has {strength.size} components")
        ax = axes[1]
        grid = np.linspace(0, strength.max() * 1.05, 200)
        ax.plot(grid, np.maximum(grid - lam, 0), color="k", lw=1, label=r"$\max(|c_j| - \lambda, 0)$")
        ax.scatter(strength, b, s=14, c=np.where(sel, _SELECTED_COLOR, _OTHER_COLOR), lw=0, zorder=3)
        ax.axvline(lam, color="k", ls="--", lw=1)
        ax.set_xlabel(_STRENGTH_LABEL)
        ax.set_ylabel("|LASSO coefficient| (standardised)")
        ax.legend(fontsize=7, frameon=False)
        _clean(ax)
    return fig


# --------------------------------------------------------------------------------------------------
# Step 5: nested leave-one-session-out
# --------------------------------------------------------------------------------------------------


def loso_split_matrix(
    groups: Sequence, *, splits: Sequence | None = None, outer: int | None = None
) -> np.ndarray:
    """The session-by-fold layout of leave-one-session-out, as codes for an image.

    Parameters
    ----------
    groups : sequence of session labels
        The sorted sessions (``NestedLOSOResult.groups``).
    splits : sequence of (train, test, kind), optional
        ``NestedLOSOResult.splits``. If given, the matrix is read from the recorded splits (and must
        be leave-one-session-out); otherwise it is the leave-one-session-out layout of ``groups``.
    outer : int, optional
        ``None``: the outer folds (one row per session). An index ``k``: the inner folds run inside
        outer fold ``k`` (one row per other session; session ``k`` is code 2 in every row).

    Returns
    -------
    ndarray of int, shape (n_folds, n_sessions)
        0 training, 1 held out, 2 the outer test session (inner folds only).

    Examples
    --------
    >>> loso_split_matrix(["a", "b", "c"]).tolist()
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    >>> loso_split_matrix(["a", "b", "c"], outer=0).tolist()
    [[2, 1, 0], [2, 0, 1]]
    """
    sessions = np.asarray(groups)
    n = sessions.size
    if n < 2:
        raise ValueError(f"leave-one-session-out needs at least 2 sessions; got {n}")
    pos = {s: i for i, s in enumerate(sessions.tolist())}
    if outer is not None and not 0 <= outer < n:
        raise ValueError(f"outer must index one of the {n} sessions; got {outer}")
    if splits is None:
        outer_rows = np.eye(n, dtype=int)
        if outer is None:
            return outer_rows
        rows = outer_rows[np.arange(n) != outer]
        rows[:, outer] = 2
        return rows
    want = "outer" if outer is None else "inner"
    rows = []
    for train, test, kind in splits:
        if kind != want:
            continue
        train = [pos[s] for s in np.asarray(train).tolist()]
        test = [pos[s] for s in np.asarray(test).tolist()]
        if outer is not None and outer in train + test:
            continue  # an inner split of another outer fold (inner splits carry no outer index)
        if outer is not None and len(train) + len(test) != n - 1:
            raise ValueError("an inner split does not cover the other sessions of its outer fold")
        row = np.full(n, 2 if outer is not None else -1, dtype=int)
        row[train] = 0
        row[test] = 1
        if (row < 0).any() or len(test) != 1:
            raise ValueError("the recorded splits are not leave-one-session-out")
        rows.append(row)
    if not rows:
        raise ValueError(f"no {want} split found in the recorded splits")
    rows = np.array(rows)
    order = np.argsort(np.argmax(rows == 1, axis=1), kind="stable")
    return rows[order]


def plot_loso_splits(
    groups: Sequence,
    *,
    splits: Sequence | None = None,
    outer: int = 0,
    fold_n_selected: Sequence[int] | None = None,
    axes=None,
) -> plt.Figure:
    """Outer and inner folds of nested leave-one-session-out, one square per session.

    Left: the outer folds, one row per held-out session; optionally annotated with the number of
    components each fold model selected. Right: the inner folds inside outer fold ``outer``: the
    outer test session (dark) is never used to choose λ.

    Parameters
    ----------
    groups : sequence of session labels
        ``NestedLOSOResult.groups``.
    splits : sequence, optional
        ``NestedLOSOResult.splits`` (drawn from the recorded splits if given; a cached result may have
        none, then the layout is derived from ``groups``).
    outer : int, default=0
        Which outer fold's inner folds to draw.
    fold_n_selected : sequence of int, optional
        ``NestedLOSOResult.fold_n_selected``, written beside each outer row.
    axes : sequence of 2 Axes, optional

    Returns
    -------
    Figure
    """
    sessions = np.asarray(groups)
    n = sessions.size
    splits = splits if splits else None
    outer_m = loso_split_matrix(sessions, splits=splits)
    inner_m = loso_split_matrix(sessions, splits=splits, outer=outer)
    if axes is None:
        size = min(max(2.5, 0.22 * n + 1.5), 7.0)
        fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1.2, size), squeeze=False)
        axes = list(axes[0])
    else:
        fig, axes = _axes(2, axes, None)
    cmap = ListedColormap([SPLIT_CODES[c][0] for c in sorted(SPLIT_CODES)])
    step = max(1, n // 10)
    for ax, m, title, ylab in (
        (axes[0], outer_m, "Outer folds: predict each session", "Outer fold (held-out session)"),
        (axes[1], inner_m, f"Inner folds of outer fold {outer + 1}: choose λ",
         "Inner fold"),
    ):
        ax.imshow(m, cmap=cmap, vmin=-0.5, vmax=2.5, aspect="auto", interpolation="nearest")
        ax.set_xticks(np.arange(0, n, step))
        ax.set_xticklabels(sessions[::step], fontsize=7)
        ax.set_xlabel("Session")
        ax.set_ylabel(ylab)
        ax.set_title(title, fontsize=9)
        ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, m.shape[0], 1), minor=True)
        ax.grid(which="minor", color="white", lw=0.5)
        ax.tick_params(which="minor", length=0)
    axes[0].set_yticks(np.arange(0, n, step))
    axes[0].set_yticklabels(sessions[::step], fontsize=7)
    axes[1].set_yticks(np.arange(0, n - 1, step))
    axes[1].set_yticklabels(np.arange(1, n, step), fontsize=7)
    if fold_n_selected is not None:
        k = np.asarray(fold_n_selected)
        if k.shape != (n,):
            raise ValueError(f"fold_n_selected needs one value per session ({n}); got shape {k.shape}")
        for i, v in enumerate(k):
            axes[0].text(n - 0.3, i, f"{int(v)}", fontsize=6, va="center", ha="left", clip_on=False)
        axes[0].text(n - 0.3, -1, "PCs", fontsize=6, va="center", ha="left", clip_on=False)
    handles = [Patch(color=SPLIT_CODES[c][0], label=SPLIT_CODES[c][1]) for c in sorted(SPLIT_CODES)]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    height = fig.get_figheight()
    fig.subplots_adjust(bottom=min(0.3, 0.75 / height), wspace=0.35)
    return fig
