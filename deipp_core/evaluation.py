"""Four-level evaluation of held-out predictions and the paper's hierarchical bootstrap.

This module implements ``reference/deipp_methods.md`` §10.2 (``analysis_visualize_model_test.m``, whose
evaluation block is reused by the ses12, ToPS, head-motion, cross-participant and run-1 analyses), the
plain session bootstrap of the rest analysis (§10.3) and the bootstrap of the training-size analysis
(§10.7, i.e. :func:`evaluate` with ``reject_single_class=False``).

Pipeline::

    predictions (kind, session, run, bin, rating, predicted)
      └─ level_table ─► rows at four levels: 1min, 2min, run, session
           ├─ evaluate ─────────────► r, AUC (median split), R², MAE per level + bootstrap CI and p
           ├─ within_correlations ──► r within each run / session + bootstrap of their mean
           ├─ scatter_source_data ──► the figure CSVs ``…_srcdat_y_yfit_<level>.csv`` (§13.1)
           └─ roc_source_data ──────► the figure CSVs ``…_srcdat_roc_<level>.csv``

The bootstrap resamples sessions with replacement, then runs within each drawn session, then bins
within each drawn run (levels 1–2); sessions then runs (level 3); sessions (level 4). See
:func:`hierarchical_bootstrap` for the index generator and how it treats unequal structures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.stats import (
    auc_midrank,
    boot2cip,
    mean_absolute_error,
    median_split,
    pearson_r,
    r_squared,
    roc_auc,
    roc_points,
)

__all__ = [
    "LEVELS",
    "LEVEL_OF_KIND",
    "LEVEL_GROUPS",
    "level_table",
    "LevelDraws",
    "HierarchicalResamples",
    "hierarchical_bootstrap",
    "evaluate",
    "within_correlations",
    "WithinCorrelations",
    "session_bootstrap",
    "scatter_source_data",
    "roc_source_data",
]

logger = logging.getLogger(__name__)

#: The four evaluation levels ("units"), in the paper's order; also their names in the figure files.
LEVELS: tuple[str, ...] = ("1min", "2min", "run", "session")

#: Prediction ``kind`` → evaluation level. Other kinds (``rbin10``, ``rest``) are ignored here.
LEVEL_OF_KIND: dict[str, str] = {"tbin10": "1min", "tbin5": "2min", "run": "run"}

#: Grouping columns, outer to inner, under which the units of each level are nested. The bootstrap
#: resamples each of these with replacement, then the units within the innermost group.
LEVEL_GROUPS: dict[str, tuple[str, ...]] = {
    "1min": ("session", "run"),
    "2min": ("session", "run"),
    "run": ("session",),
    "session": (),
}

#: Resamples generated (and held in memory) at once. Part of the definition of the random stream:
#: results for a given seed depend on it, so it is a constant, not an option.
_CHUNK = 1000

#: Columns of :func:`evaluate`'s result, in order.
_RESULT_COLUMNS = (
    "n_units", "r", "r_ci_low", "r_ci_high", "r_p",
    "auc", "auc_ci_low", "auc_ci_high", "auc_p", "r2", "mae",
)


# ----------------------------------------------------------------------------------------------
# Level table
# ----------------------------------------------------------------------------------------------


def _session_order(sessions: pd.Series) -> pd.Series:
    """Rank of each session label: numeric order when all labels are digits, else lexical."""
    uniq = pd.unique(sessions)
    if all(str(s).isdigit() for s in uniq):
        ordered = sorted(uniq, key=lambda s: (int(s), str(s)))
    else:
        ordered = sorted(uniq, key=str)
    rank = {s: i for i, s in enumerate(ordered)}
    return sessions.map(rank)


def level_table(
    predictions: pd.DataFrame,
    *,
    x: str = "rating",
    y: str = "predicted",
    x_name: str = "actual",
    y_name: str = "predicted",
) -> pd.DataFrame:
    """Arrange held-out predictions as the units of the four evaluation levels (§10.2).

    Parameters
    ----------
    predictions : DataFrame
        One row per unit with columns ``kind`` (``"tbin10"``, ``"tbin5"``, ``"run"``; rows of other
        kinds such as ``"rbin10"`` or ``"rest"`` are ignored), ``session`` (label, e.g. ``"01"``),
        ``run`` (int), ``bin`` (0-based int; −1 for run rows) and the two value columns ``x`` and ``y``.
    x, y : str, default="rating", "predicted"
        Names of the value columns: x is what the prediction is compared with (the actual rating; FD in
        the head-motion control, §10.4), y is the prediction (or another score, e.g. ToPS, §10.5).
    x_name, y_name : str, default="actual", "predicted"
        Names of the value columns in the result (e.g. ``x_name="fd"`` for the head-motion control).

    Returns
    -------
    DataFrame
        Columns:

        * ``level`` — ``"1min"`` (from ``tbin10``), ``"2min"`` (``tbin5``), ``"run"`` (``run``) and
          ``"session"``: the mean over the session's run rows, for x and y alike (§10.2 table);
        * ``session`` (str), ``run`` (int; −1 at the session level), ``bin`` (int, 0-based; −1 at the
          run and session levels);
        * ``x_name``, ``y_name`` (float).

        Rows are ordered by level, then session (numerically when the labels are digits), run and bin,
        i.e. within a level bin fastest, then run, then session: the column-major order of the original
        ``rating_dat_tbin``/``Yfit_tbin`` arrays and of the source-data CSVs (§13.1).

    Raises
    ------
    DataFormatError
        If a column is missing, a (kind, session, run, bin) appears twice, or a value is not finite.

    Examples
    --------
    >>> import pandas as pd
    >>> preds = pd.DataFrame({
    ...     "kind": ["run", "run", "tbin10", "rest"], "session": ["01", "01", "01", "01"],
    ...     "run": [1, 2, 1, 1], "bin": [-1, -1, 0, -1],
    ...     "rating": [0.2, 0.4, 0.3, 0.0], "predicted": [0.5, 0.7, 0.6, 0.1]})
    >>> level_table(preds)
         level session  run  bin  actual  predicted
    0     1min      01    1    0     0.3        0.6
    1      run      01    1   -1     0.2        0.5
    2      run      01    2   -1     0.4        0.7
    3  session      01   -1   -1     0.3        0.6
    """
    need = ["kind", "session", "run", "bin", x, y]
    missing = [c for c in need if c not in predictions.columns]
    if missing:
        raise DataFormatError(
            f"predictions lack column(s) {missing}; expected {need} "
            f"(got {list(predictions.columns)})"
        )
    df = predictions.loc[predictions["kind"].isin(LEVEL_OF_KIND), need].copy()
    if df.empty:
        raise DataFormatError(
            f"predictions contain no rows of kind {sorted(LEVEL_OF_KIND)}; "
            f"kinds present: {sorted(pd.unique(predictions['kind']).astype(str))}"
        )
    df["session"] = df["session"].astype(str)
    df["run"] = df["run"].astype(int)
    df["bin"] = df["bin"].astype(int)
    df.loc[df["kind"] == "run", "bin"] = -1
    dup = df.duplicated(["kind", "session", "run", "bin"], keep=False)
    if dup.any():
        first = df.loc[dup].iloc[0]
        raise DataFormatError(
            f"{int(dup.sum())} prediction rows share (kind, session, run, bin) with another row, "
            f"e.g. kind={first['kind']} session={first['session']} run={first['run']} bin={first['bin']}"
        )
    values = df[[x, y]].to_numpy(dtype=float)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        first = df.loc[bad].iloc[0]
        raise DataFormatError(
            f"{int(bad.sum())} prediction rows have a non-finite {x!r} or {y!r}, e.g. "
            f"kind={first['kind']} session={first['session']} run={first['run']} bin={first['bin']}"
        )
    df[[x, y]] = values
    df.insert(0, "level", df.pop("kind").map(LEVEL_OF_KIND))
    runs = df[df["level"] == "run"]
    if not runs.empty:
        ses = runs.groupby("session", sort=False)[[x, y]].mean().reset_index()
        ses.insert(0, "level", "session")
        ses.insert(2, "run", -1)
        ses.insert(3, "bin", -1)
        df = pd.concat([df, ses], ignore_index=True)
    df = df.rename(columns={x: x_name, y: y_name})
    order = pd.DataFrame({
        "l": df["level"].map({lv: i for i, lv in enumerate(LEVELS)}),
        "s": _session_order(df["session"]),
        "r": df["run"],
        "b": df["bin"],
    })
    df = df.loc[order.sort_values(["l", "s", "r", "b"], kind="stable").index].reset_index(drop=True)
    return df[["level", "session", "run", "bin", x_name, y_name]]


def _level_rows(table: pd.DataFrame, level: str, x: str, y: str) -> pd.DataFrame:
    for c in ("level", *LEVEL_GROUPS[level], x, y):
        if c not in table.columns:
            raise DataFormatError(f"the level table lacks column {c!r}; build it with level_table()")
    rows = table[table["level"] == level]
    if rows.empty:
        raise ParameterError(
            f"the level table has no {level!r} rows; levels present: "
            f"{sorted(pd.unique(table['level']).astype(str))}"
        )
    return rows


# ----------------------------------------------------------------------------------------------
# Hierarchical bootstrap indices
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tree:
    """Nesting of units (rows) in groups, as compact arrays.

    ``row_node[d][i]`` is the node id of row i at group level d; the children of node k at level d are
    the level-(d + 1) nodes ``child_start[d][k] : child_start[d][k] + n_child[d][k]``, where the
    level after the last group level is the rows, in the order ``unit_order``.
    """

    n_units: int
    row_node: tuple[np.ndarray, ...]
    n_top: int
    child_start: tuple[np.ndarray, ...]
    n_child: tuple[np.ndarray, ...]
    unit_order: np.ndarray

    @classmethod
    def from_groups(cls, groups: Sequence, n_units: int | None = None) -> _Tree:
        cols = [np.asarray(g) for g in groups]
        if n_units is None:
            if not cols:
                raise ParameterError("n_units is required when there are no groups")
            n_units = cols[0].shape[0]
        for g in cols:
            if g.shape != (n_units,):
                raise ParameterError(
                    f"every group array must have shape ({n_units},); got {g.shape}"
                )
        if n_units == 0:
            raise ParameterError("there are no units to resample")
        row_node: list[np.ndarray] = []
        parent = np.zeros(n_units, dtype=np.intp)
        for g in cols:
            if pd.isna(g).any():
                raise ParameterError("group labels must not be missing (NaN/None)")
            raw, uniq = pd.factorize(pd.MultiIndex.from_arrays([parent, g]), sort=False)
            # Renumber so that the children of a node are contiguous and follow their parent's order.
            perm = np.argsort(np.asarray(uniq.get_level_values(0)), kind="stable")
            new_id = np.empty(perm.size, dtype=np.intp)
            new_id[perm] = np.arange(perm.size)
            parent = new_id[raw]
            row_node.append(parent)
        starts, counts = [], []
        for d, nodes in enumerate(row_node):
            if d + 1 < len(row_node):  # children are the next level's nodes
                child = row_node[d + 1]
                child_parent = np.empty(int(child.max()) + 1, dtype=np.intp)
                child_parent[child] = nodes
            else:  # children are the units
                child_parent = nodes
            cnt = np.bincount(child_parent, minlength=int(nodes.max()) + 1)
            counts.append(cnt)
            starts.append(np.r_[0, np.cumsum(cnt)[:-1]])
        unit_order = (
            np.argsort(row_node[-1], kind="stable") if row_node else np.arange(n_units)
        )
        n_top = int(row_node[0].max()) + 1 if row_node else n_units
        return cls(
            n_units=n_units,
            row_node=tuple(row_node),
            n_top=n_top,
            child_start=tuple(starts),
            n_child=tuple(counts),
            unit_order=unit_order,
        )


class LevelDraws(NamedTuple):
    """The draws at one level of the hierarchy, flattened over resamples.

    Attributes
    ----------
    node : ndarray of int
        Id of each drawn node: for group levels the node id of :attr:`HierarchicalResamples.row_node`,
        for the last level the row index of the unit.
    parent : ndarray of int
        Position, in the previous level's arrays, of the draw this one was made within (−1 at the top).
    resample : ndarray of int
        Resample (0 … n_boot − 1) each draw belongs to.
    """

    node: np.ndarray
    parent: np.ndarray
    resample: np.ndarray


@dataclass(frozen=True)
class HierarchicalResamples:
    """Bootstrap resamples of nested units, as returned by :func:`hierarchical_bootstrap`.

    Attributes
    ----------
    n_boot : int
        Number of resamples.
    n_units : int
        Number of units (rows) resampled.
    draws : tuple of LevelDraws
        One entry per group level (outer to inner), then one for the units; see :class:`LevelDraws`.
    row_node : tuple of ndarray
        For each group level, the node id of every row, so that ``row_node[d][draws[-1].node]`` is the
        level-d group of each drawn unit.
    """

    n_boot: int
    n_units: int
    draws: tuple[LevelDraws, ...]
    row_node: tuple[np.ndarray, ...]

    @property
    def units(self) -> np.ndarray:
        """Row index of every drawn unit, resample by resample."""
        return self.draws[-1].node

    @property
    def resample(self) -> np.ndarray:
        """Resample id of every drawn unit (non-decreasing)."""
        return self.draws[-1].resample

    def sizes(self) -> np.ndarray:
        """Number of units drawn in each resample, shape (n_boot,)."""
        return np.bincount(self.resample, minlength=self.n_boot)

    def counts(self) -> np.ndarray:
        """Multiplicity of every unit in every resample, float array of shape (n_boot, n_units).

        This is the ``weights`` argument of :func:`deipp_core.stats.pearson_r` and
        :func:`deipp_core.stats.auc_midrank`.
        """
        flat = self.resample.astype(np.int64) * self.n_units + self.units
        c = np.bincount(flat, minlength=self.n_boot * self.n_units)
        return c.reshape(self.n_boot, self.n_units).astype(float)

    def indices(self) -> np.ndarray:
        """Drawn row indices as an (n_boot, size) array, when every resample has the same size.

        Raises
        ------
        ParameterError
            If resample sizes differ (an unequal structure); use :attr:`units` with
            :attr:`resample`, or :meth:`counts`, instead.
        """
        sizes = self.sizes()
        if sizes.size and np.any(sizes != sizes[0]):
            raise ParameterError(
                "resamples differ in size (unequal numbers of runs or bins); use .counts() or "
                ".units with .resample instead of .indices()"
            )
        return self.units.reshape(self.n_boot, -1)


def _draw(tree: _Tree, n_boot: int, rng: np.random.Generator) -> list[LevelDraws]:
    node = rng.integers(0, tree.n_top, size=n_boot * tree.n_top)
    resample = np.repeat(np.arange(n_boot), tree.n_top)
    draws = [LevelDraws(node, np.full(node.size, -1), resample)]
    depth = len(tree.row_node)
    for d in range(depth):
        k = tree.n_child[d][node]
        parent = np.repeat(np.arange(node.size), k)
        u = rng.integers(0, np.repeat(k, k))
        node = tree.child_start[d][node][parent] + u
        resample = resample[parent]
        draws.append(LevelDraws(node, parent, resample))
    if depth:
        last = draws[-1]
        draws[-1] = LevelDraws(tree.unit_order[last.node], last.parent, last.resample)
    return draws


def _select(draws: list[LevelDraws], keep: np.ndarray) -> list[LevelDraws]:
    """Keep the resamples flagged in ``keep`` (renumbered 0…), with parents re-pointed."""
    new_id = np.cumsum(keep) - 1
    out, prev_map = [], None
    for lv in draws:
        m = keep[lv.resample]
        parent = lv.parent[m] if prev_map is None else prev_map[lv.parent[m]]
        out.append(LevelDraws(lv.node[m], parent, new_id[lv.resample[m]]))
        prev_map = np.full(lv.node.size, -1)
        prev_map[m] = np.arange(int(m.sum()))
    return out


def _concat(parts: list[list[LevelDraws]], sizes: list[int]) -> list[LevelDraws]:
    if len(parts) == 1:
        return parts[0]
    out = []
    for d in range(len(parts[0])):
        nodes, parents, res = [], [], []
        p_off = r_off = 0
        for part, b in zip(parts, sizes):
            lv = part[d]
            nodes.append(lv.node)
            parents.append(lv.parent if d == 0 else lv.parent + p_off)
            res.append(lv.resample + r_off)
            p_off += part[d - 1].node.size if d else 0
            r_off += b
        out.append(LevelDraws(np.concatenate(nodes), np.concatenate(parents), np.concatenate(res)))
    return out


def _resample(
    tree: _Tree, n_boot: int, rng: np.random.Generator, labels: np.ndarray | None
) -> HierarchicalResamples:
    parts, sizes, need, drawn = [], [], n_boot, 0
    max_draws = max(100 * n_boot, 1000)
    while need > 0:
        draws = _draw(tree, need, rng)
        drawn += need
        if labels is not None:
            last = draws[-1]
            pos = np.bincount(last.resample, weights=labels[last.node], minlength=need)
            tot = np.bincount(last.resample, minlength=need)
            keep = (pos > 0) & (pos < tot)
            if not keep.all():
                draws = _select(draws, keep)
            n_ok = int(keep.sum())
        else:
            n_ok = need
        if n_ok:
            parts.append(draws)
            sizes.append(n_ok)
        need -= n_ok
        if need and drawn > max_draws:
            raise ParameterError(
                f"single-class rejection accepted only {n_boot - need} of {drawn} resamples; the "
                "structure is too small for a two-class resample to be likely; use "
                "reject_single_class=False"
            )
    return HierarchicalResamples(n_boot, tree.n_units, tuple(_concat(parts, sizes)), tree.row_node)


def hierarchical_bootstrap(
    groups: Sequence, n_boot: int, *, seed=0, labels=None, n_units: int | None = None
) -> HierarchicalResamples:
    """Draw hierarchical bootstrap resamples of nested units (§10.2).

    At the top level, as many groups as there are are drawn with replacement; within each drawn group,
    as many of its children as it has are drawn with replacement; and so on down to the units.
    With ``groups = (session, run)`` over 1-min bins this is the paper's scheme for levels 1–2
    (sessions → 3 runs within each drawn session → the bins of each drawn run); ``(session,)`` over
    run rows is level 3 and ``()`` over session rows is level 4, i.e. plain resampling of units.

    Parameters
    ----------
    groups : sequence of array-like of shape (n_units,)
        Group labels of every unit, outer to inner (e.g. ``(sessions, runs)``); inner labels need only
        be unique within their outer group (run 1 of session 01 and run 1 of session 02 are distinct).
    n_boot : int
        Number of resamples.
    seed : int, numpy.random.Generator or numpy.random.SeedSequence, default=0
        Passed to :func:`numpy.random.default_rng`; a Generator is used (and advanced) as is.
    labels : array-like of bool, shape (n_units,), optional
        If given, a resample whose units all carry the same label is rejected and redrawn: the paper's
        single-class rejection, with labels = the original median split carried with each unit (not
        re-split within the resample).
    n_units : int, optional
        Number of units; required only when ``groups`` is empty.

    Returns
    -------
    HierarchicalResamples
        Use ``.counts()`` for statistics and ``.indices()`` for an (n_boot, size) index array.

    Notes
    -----
    **Unequal structures.** Real data may have sessions with fewer than three runs or runs with
    different numbers of bins. Each drawn group contributes as many child draws as that group actually
    has (the direct generalisation of the original ``randi(3, 3, 1)`` / ``randi(nbin, nbin, 1)``), so
    resample sizes then vary between resamples. Statistics are computed from multiplicity counts
    (:meth:`HierarchicalResamples.counts`), which needs neither padding nor equal sizes; for a
    balanced structure the result is identical to indexing with an (n_boot, S·R·N) array.

    **Rejection** keeps the accepted resamples of each batch in order and redraws the rejected ones in
    a further batch, until ``n_boot`` are accepted; this samples the same conditional distribution as
    the original loop. An error is raised when acceptances are too rare (< 1 %).

    Examples
    --------
    >>> ses = ["01"] * 4 + ["02"] * 4
    >>> run = [1, 1, 2, 2] * 2
    >>> res = hierarchical_bootstrap([ses, run], n_boot=3, seed=1)
    >>> res.indices().shape
    (3, 8)
    >>> res.counts().sum(axis=1)
    array([8., 8., 8.])
    """
    if int(n_boot) != n_boot or n_boot < 1:
        raise ParameterError(f"n_boot must be a positive integer; got {n_boot!r}")
    tree = _Tree.from_groups(groups, n_units)
    lab = None
    if labels is not None:
        lab = np.asarray(labels).astype(bool)
        if lab.shape != (tree.n_units,):
            raise ParameterError(f"labels must have shape ({tree.n_units},); got {lab.shape}")
        if lab.all() or not lab.any():
            raise ParameterError(
                "single-class rejection needs both classes among the units; every label is "
                f"{bool(lab[0])}"
            )
    return _resample(tree, int(n_boot), np.random.default_rng(seed), lab)


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def _level_rng(seed, level: str) -> np.random.Generator:
    """The random stream of one level: child ``LEVELS.index(level)`` of ``SeedSequence(seed)``."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(len(LEVELS))[LEVELS.index(level)])


def _boot_counts(tree: _Tree, n_boot: int, rng: np.random.Generator, labels):
    """Yield (start, counts) for successive chunks of at most :data:`_CHUNK` resamples."""
    for start in range(0, n_boot, _CHUNK):
        yield start, _resample(tree, min(_CHUNK, n_boot - start), rng, labels).counts()


def _summarise(x, y, tree: _Tree, n_boot: int, rng, reject: bool, alpha: float, where: str) -> dict:
    labels = median_split(x)
    two_class = bool(labels.any() and not labels.all())
    if reject and not two_class:
        logger.warning(
            "%s: the median split of x has a single class, so the AUC is undefined and single-class "
            "rejection is impossible; resampling without it", where,
        )
    r_boot = np.empty(n_boot)
    auc_boot = np.full(n_boot, np.nan)
    for start, w in _boot_counts(tree, n_boot, rng, labels if (reject and two_class) else None):
        r_boot[start:start + w.shape[0]] = pearson_r(x, y, w)
        if two_class:
            auc_boot[start:start + w.shape[0]] = auc_midrank(labels, y, w)
    for name, b in (("r", r_boot), ("AUC", auc_boot)):
        n_nan = int(np.isnan(b).sum())
        if n_nan and (name == "r" or two_class):
            logger.warning(
                "%s: %d of %d bootstrap %s values are undefined (constant or single-class "
                "resamples); they sort last and count in B, as in MATLAB", where, n_nan, n_boot, name,
            )
    rci = boot2cip(r_boot, 0.0, alpha)
    aci = boot2cip(auc_boot, 0.5, alpha)
    return {
        "n_units": int(x.size),
        "r": pearson_r(x, y),
        "r_ci_low": rci.ci_low,
        "r_ci_high": rci.ci_high,
        "r_p": rci.p,
        "auc": roc_auc(x, y),
        "auc_ci_low": aci.ci_low,
        "auc_ci_high": aci.ci_high,
        "auc_p": aci.p,
        "r2": r_squared(x, y),
        "mae": mean_absolute_error(x, y),
    }


def _check_boot_args(n_boot, alpha) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise ParameterError(f"n_boot must be a positive integer; got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ParameterError(f"alpha must be in (0, 1); got {alpha!r}")


def _evaluate_level(table, level, x, y, n_boot, seed, reject, alpha) -> dict:
    rows = _level_rows(table, level, x, y)
    tree = _Tree.from_groups([rows[c].to_numpy() for c in LEVEL_GROUPS[level]], len(rows))
    res = _summarise(
        rows[x].to_numpy(float), rows[y].to_numpy(float), tree, int(n_boot),
        _level_rng(seed, level), reject, alpha, f"level {level}",
    )
    return {"level": level, **res}


def evaluate(
    table: pd.DataFrame,
    *,
    x: str = "actual",
    y: str = "predicted",
    n_boot: int = 10_000,
    seed: int = 0,
    reject_single_class: bool = True,
    alpha: float = 0.05,
    n_jobs: int | None = 1,
) -> pd.DataFrame:
    """Pooled r, AUC, R² and MAE at each level, with hierarchical bootstrap CIs and p (§10.2).

    Parameters
    ----------
    table : DataFrame
        A :func:`level_table`; every level present in ``table["level"]`` is evaluated.
    x, y : str, default="actual", "predicted"
        Value columns: x is split at its median for the AUC and is the reference of R² and MAE.
    n_boot : int, default=10_000
        Bootstrap resamples per level (accepted resamples when rejecting).
    seed : int, default=0
        Level ℓ uses the ``LEVELS.index(ℓ)``-th child of ``numpy.random.SeedSequence(seed)``, so its
        resamples do not depend on which other levels are present or on ``n_jobs``.
    reject_single_class : bool, default=True
        Redraw resamples whose median-split labels are all one class (main test; ``False`` in the
        training-size analysis, §10.7).
    alpha : float, default=0.05
        1 − CI coverage.
    n_jobs : int or None, default=1
        Levels evaluated in parallel threads (joblib).

    Returns
    -------
    DataFrame
        One row per level present, in :data:`LEVELS` order, with columns

        * ``level``; ``n_units``: number of units at the level;
        * ``r``: Pearson r between x and y, pooled over sessions; ``r_ci_low``, ``r_ci_high``: 95 %
          percentile CI; ``r_p``: two-sided bootstrap p against 0 (:func:`~deipp_core.stats.boot2cip`,
          not capped at 1);
        * ``auc``: area under the ROC curve of y for high (x > median of x) vs low units;
          ``auc_ci_low``, ``auc_ci_high``, ``auc_p``: as for r, null 0.5;
        * ``r2``: 1 − Σ(x − y)²/Σ(x − x̄)² (can be negative); ``mae``: mean |x − y|.

    Notes
    -----
    The same resamples give r and AUC. Resamples are drawn by :func:`hierarchical_bootstrap` with the
    level's groups (:data:`LEVEL_GROUPS`) in chunks of 1,000 from the level's generator; statistics of
    all resamples come from count matrices (:func:`~deipp_core.stats.pearson_r`,
    :func:`~deipp_core.stats.auc_midrank`): 10,000 resamples of 900 units take about a second.

    **Monte-Carlo error.** MATLAB's ``rng('default')`` + ``randi`` stream cannot be reproduced bitwise,
    so CIs and p differ from the published ones by Monte-Carlo error. With B = 10,000: a CI bound (the
    2.5th/97.5th percentile) has a standard error of about √(0.025·0.975/B)/φ(1.96) ≈ 0.027 bootstrap
    SDs (e.g. ±0.001 in r when the bootstrap SD of r is 0.05); a p-value near 0.05 has a standard
    error of 2·√(0.025·0.975/B) ≈ 0.003 (≈ 0.0014 near p = 0.01); the smallest attainable p is
    2/(B + 1) ≈ 0.0002. Point estimates (r, AUC, R², MAE) are exact.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> rows = [("tbin10", f"{s:02d}", r, b) for s in range(1, 7) for r in (1, 2, 3) for b in range(10)]
    >>> preds = pd.DataFrame(rows, columns=["kind", "session", "run", "bin"])
    >>> preds["rating"] = rng.uniform(size=len(preds))
    >>> preds["predicted"] = preds["rating"] + rng.normal(scale=0.2, size=len(preds))
    >>> res = evaluate(level_table(preds), n_boot=200)
    >>> res[["level", "n_units"]].to_dict("records")
    [{'level': '1min', 'n_units': 180}]
    >>> bool(res["r_ci_low"].iloc[0] > 0)
    True
    """
    _check_boot_args(n_boot, alpha)
    if "level" not in table.columns:
        raise DataFormatError("the level table lacks column 'level'; build it with level_table()")
    present = set(pd.unique(table["level"]).astype(str))
    unknown = present - set(LEVELS)
    if unknown:
        raise DataFormatError(f"unknown level(s) {sorted(unknown)}; expected some of {LEVELS}")
    levels = [lv for lv in LEVELS if lv in present]
    rows = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(_evaluate_level)(table, lv, x, y, n_boot, seed, reject_single_class, alpha)
        for lv in levels
    )
    return pd.DataFrame(rows, columns=["level", *_RESULT_COLUMNS])


class WithinCorrelations(NamedTuple):
    """Result of :func:`within_correlations`.

    Attributes
    ----------
    units : DataFrame
        One row per run (``by="run"``: columns ``session``, ``run``, ``n_bins``, ``r``) or per session
        (``by="session"``: ``session``, ``n_bins``, ``r``), in level-table order: r between x and y
        over that unit's bins (NaN when x or y is constant within it).
    summary : DataFrame
        One row: ``by``, ``n_units`` (units with a defined r), ``r`` (mean of the units' r),
        ``r_ci_low``, ``r_ci_high``, ``r_p`` (bootstrap of the mean, null 0).
    """

    units: pd.DataFrame
    summary: pd.DataFrame


def within_correlations(
    table: pd.DataFrame,
    by: str = "run",
    *,
    n_boot: int = 10_000,
    seed: int = 0,
    level: str = "1min",
    x: str = "actual",
    y: str = "predicted",
    reject_single_class: bool = True,
    alpha: float = 0.05,
) -> WithinCorrelations:
    """Within-run or within-session correlation of x and y, and a bootstrap of its mean (§10.2).

    Parameters
    ----------
    table : DataFrame
        A :func:`level_table` with rows at ``level`` and at the ``by`` level.
    by : {"run", "session"}, default="run"
        ``"run"``: r over the 1-min bins of each run (10 per run); ``"session"``: r over the 1-min bins
        of each session (30 per session).
    n_boot, seed, alpha : see :func:`evaluate`.
    level : str, default="1min"
        Level whose bins are correlated.
    x, y : str, default="actual", "predicted"
        Value columns.
    reject_single_class : bool, default=True
        As in :func:`evaluate`. With the same ``seed`` and ``n_boot`` the resamples are exactly those
        :func:`evaluate` uses for the ``by`` level: the original reuses the level-3 (runs) or level-4
        (sessions) indices, whose rejection uses the median split of the run or session means.

    Returns
    -------
    WithinCorrelations
        ``units`` (per-unit r) and ``summary`` (mean r with CI and p); see :class:`WithinCorrelations`.

    Notes
    -----
    The bootstrap statistic is the mean of the resampled units' r. Units whose r is undefined
    (constant x or y within the unit) are left out of the mean (a NaN-mean), where the original
    ``mean`` would return NaN for everything; a warning is logged when that happens.
    """
    if by not in ("run", "session"):
        raise ParameterError(f"by must be 'run' or 'session'; got {by!r}")
    _check_boot_args(n_boot, alpha)
    bins = _level_rows(table, level, x, y)
    outer = _level_rows(table, by, x, y)
    keys = ["session", "run"] if by == "run" else ["session"]
    per = [
        {**dict(zip(keys, k if isinstance(k, tuple) else (k,))), "n_bins": len(g),
         "r": pearson_r(g[x].to_numpy(float), g[y].to_numpy(float))}
        for k, g in bins.groupby(keys, sort=False)
    ]
    units = pd.DataFrame(per, columns=[*keys, "n_bins", "r"])
    # Units are the rows of the `by` level, so that resamples match evaluate()'s for that level.
    joined = outer[keys].merge(units, on=keys, how="left", validate="one_to_one")
    r_units = joined["r"].to_numpy(float)
    valid = np.isfinite(r_units)
    if not valid.any():
        raise ParameterError(f"no {by} has a defined within-{by} r")
    if not valid.all():
        logger.warning(
            "within-%s r: %d of %d units have an undefined r and are left out of the mean",
            by, int((~valid).sum()), valid.size,
        )
    tree = _Tree.from_groups([outer[c].to_numpy() for c in LEVEL_GROUPS[by]], len(outer))
    labels = median_split(outer[x].to_numpy(float))
    use_labels = labels if (reject_single_class and labels.any() and not labels.all()) else None
    r0 = np.where(valid, r_units, 0.0)
    boot = np.empty(int(n_boot))
    with np.errstate(invalid="ignore", divide="ignore"):
        for start, w in _boot_counts(tree, int(n_boot), _level_rng(seed, by), use_labels):
            boot[start:start + w.shape[0]] = (w @ r0) / (w @ valid)
    ci = boot2cip(boot, 0.0, alpha)
    summary = pd.DataFrame([{
        "by": by, "n_units": int(valid.sum()), "r": float(r_units[valid].mean()),
        "r_ci_low": ci.ci_low, "r_ci_high": ci.ci_high, "r_p": ci.p,
    }])
    return WithinCorrelations(joined[[*keys, "n_bins", "r"]], summary)


def session_bootstrap(x, y, *, n_boot: int = 10_000, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """r and AUC with a plain bootstrap over sessions and no single-class rejection (rest test, §10.3).

    Parameters
    ----------
    x, y : array-like of shape (n_sessions,)
        One value per session: x = mean rating of rating run 1, y = mean prediction over the rest run.
    n_boot : int, default=10_000
        Resamples (``randi(S, S, 10000)`` in the original).
    seed : int, default=0
        ``numpy.random.default_rng(seed)`` draws the resamples (in chunks of 1,000).
    alpha : float, default=0.05
        1 − CI coverage.

    Returns
    -------
    DataFrame
        One row with the columns of :func:`evaluate` except ``level``. Resamples with a single class
        have an undefined AUC (NaN); as in MATLAB they count in B and sort last (rare unless there are
        few sessions: probability 2·0.5^S).
    """
    _check_boot_args(n_boot, alpha)
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.ndim != 1 or xa.shape != ya.shape:
        raise ParameterError(f"x and y must be 1-D of equal length; got {xa.shape} and {ya.shape}")
    tree = _Tree.from_groups([], xa.size)
    res = _summarise(xa, ya, tree, int(n_boot), np.random.default_rng(seed), False, alpha, "sessions")
    return pd.DataFrame([res], columns=list(_RESULT_COLUMNS))


# ----------------------------------------------------------------------------------------------
# Source data for figures (§13.1)
# ----------------------------------------------------------------------------------------------


def scatter_source_data(
    table: pd.DataFrame, level: str, *, x: str = "actual", y: str = "predicted"
) -> pd.DataFrame:
    """The scatter source data of one level: columns ``actualpain``, ``predictedpain``.

    Rows in the order of the original ``…_srcdat_y_yfit_<level>.csv`` (bin fastest, then run, then
    session), which is the order of :func:`level_table`.
    """
    rows = _level_rows(table, level, x, y)
    return pd.DataFrame({
        "actualpain": rows[x].to_numpy(float), "predictedpain": rows[y].to_numpy(float)
    })


def roc_source_data(
    table: pd.DataFrame, level: str, *, x: str = "actual", y: str = "predicted"
) -> pd.DataFrame:
    """The ROC points of one level: columns ``1-specificity``, ``sensitivity``, from (0, 0).

    As the original ``…_srcdat_roc_<level>.csv`` (``perfcurve`` points of the median split of x
    scored by y).
    """
    rows = _level_rows(table, level, x, y)
    fpr, tpr = roc_points(rows[x].to_numpy(float), rows[y].to_numpy(float))
    return pd.DataFrame({"1-specificity": fpr, "sensitivity": tpr})
