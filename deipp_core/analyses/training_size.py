"""Training-data size (paper Fig. 3): how held-out accuracy grows with the number of training sessions.

This is ``analysis_predict_rating_trainsize.m`` + its visualize step (``reference/deipp_methods.md``
§10.7, source data §13.1). For one participant with ``S`` sessions:

1. **Fits.** For every size ``m = 1 … S − 2``, repetition and held-out session ``k``: draw ``m``
   training sessions at random from the ``S − 1`` others, fit LASSO-PCR on their rating-decile bins
   (``rbin10``) with a *single* λ — the one the main model's inner cross-validation chose for outer
   fold ``k``, ``cv.lambdas[cv.icv_best[k]]`` (the original's ``L_matlab(icv_bestidx(k))``) — and
   predict session ``k``'s 1-min bins, 2-min bins and run means. When no component passes the
   threshold the prediction is the intercept (the training mean), as in the original.
2. **Evaluation per (m, repetition).** Pooled Pearson r at the four levels
   (:func:`deipp_core.evaluation.level_table`) and a hierarchical bootstrap p **without** single-class
   rejection; a repetition is *significant* at a level when p < 0.05 and r > 0.
3. **Summary.** Mean r over repetitions ± 1.96·SD/√reps (the source-data CSV), the fraction of
   significant repetitions, the "minimum number of sessions to reach X %" (the original's rule
   ``#sizes with sig < X`` + 1), mean r and % significant at a conventional amount of data (m = 4),
   and the original's size-vs-r regression (which regresses size on r — reversed; its t and p are
   those of the usual direction, its slope is not).

Speed (≈ 110,000 fits for the paper's 100 repetitions of both participants): the Gram matrix of all
rows is computed once, and every fit is the eigendecomposition of the centred ``30m × 30m`` sub-block of
the drawn sessions plus cross-products with the held-out rows
(:func:`deipp_core.model.fit_predict_gram`). All session draws are made first; draws that pick the
same training sessions share one fit (near m = S − 2 most do: there are only S(S − 1)/2 distinct sets
at m = S − 2, against 100·S draws), which predicts each held-out session at that session's λ. The
distinct fits run in chunks on joblib workers (loky processes by default, or the backend chosen with
``joblib.parallel_config``, e.g. a Dask cluster) with one BLAS thread each; joblib memory-maps the
Gram matrices, so each worker reads them once. The bootstrap of all repetitions of a level is a
handful of matrix products over one set of resample counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from scipy import stats as sps
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from deipp_core.data.dataset import Participant
from deipp_core.evaluation import LEVEL_GROUPS, LEVELS, hierarchical_bootstrap, level_table
from deipp_core.exceptions import DeippError, ParameterError
from deipp_core.features import ParticipantFeatures, participant_features
from deipp_core.model import NestedLOSOResult, fit_predict_gram, nested_loso
from deipp_core.profiles import Profile, get_profile
from deipp_core.stats import boot2cip, pearson_r

__all__ = [
    "TrainingSizeResult",
    "training_size",
    "run_training_size",
    "THRESHOLDS",
    "EVAL_KINDS",
    "min_sessions_table",
    "training_size_summary",
]

logger = logging.getLogger(__name__)

#: Feature kinds predicted for the held-out session (they become the 1-min, 2-min and run levels).
EVAL_KINDS: tuple[str, ...] = ("tbin10", "tbin5", "run")

#: Percentages of significant repetitions for which the "minimum number of sessions" is reported.
THRESHOLDS: tuple[float, ...] = (50.0, 90.0, 95.0, 97.5, 99.0)

#: Significance level of a repetition's bootstrap p (``p < ALPHA`` and ``r > 0``).
ALPHA = 0.05

#: Column block used to form the Gram matrices without copying the feature matrix.
_GRAM_BLOCK = 4096

#: Repetition columns evaluated at once in the bootstrap (bounds memory at n_boot × _BOOT_COLS floats).
_BOOT_COLS = 256


@dataclass
class TrainingSizeResult:
    """Everything the training-size analysis produces for one participant.

    Attributes
    ----------
    participant : str
        Participant label.
    sessions : ndarray of str, shape (S,)
        Session labels; session code ``k`` (used in :attr:`train_sessions`) is ``sessions[k]``.
    sizes : ndarray of int, shape (n_sizes,)
        Numbers of training sessions ``m``.
    n_reps : int
        Repetitions per size.
    n_boot : int
        Bootstrap resamples per repetition and level.
    seed : int
        Seed of the session draws and of the bootstrap.
    lambdas : ndarray of shape (S,)
        The λ used for held-out session ``k``: ``cv.lambdas[cv.icv_best[k]]``.
    eval_rows : DataFrame
        The predicted feature rows (``kind`` ∈ :data:`EVAL_KINDS`, ``session``, ``run``, ``bin``,
        ``rating``), in the column order of :attr:`predictions`.
    predictions : ndarray of shape (n_sizes, n_reps, n_eval)
        Held-out prediction of every evaluation row, each session predicted by its own fit.
    train_sessions : ndarray of int16, shape (n_sizes, n_reps, S, max(sizes))
        Codes of the training sessions drawn for each (size, repetition, held-out session), sorted,
        padded with −1 (the original's ``trsz_cvidx``).
    n_selected : ndarray of int, shape (n_sizes, n_reps, S)
        Number of principal components each fit selected (0: intercept-only prediction).
    reps : DataFrame
        One row per (size, rep, level): ``n_session``, ``rep``, ``level``, ``r`` (pooled Pearson r),
        ``p`` (two-sided hierarchical bootstrap p, no single-class rejection) and ``significant``
        (``p < 0.05`` and ``r > 0``).
    summary : DataFrame
        One row per (size, level): ``n_session``, ``level``, ``mean_r``, ``sd_r`` (over repetitions,
        ddof 1), ``ci_lower``, ``ci_upper`` (mean ± 1.96·SD/√reps), ``n_significant`` and
        ``frac_significant``.
    min_sessions : DataFrame
        One row per (level, threshold X in %): ``min_sessions`` = (#sizes with a fraction significant
        below X) + 1 (the original's rule), ``first_reached`` = the smallest size whose fraction
        reaches X (NaN if none does), ``reached`` (bool) and ``monotone`` (whether the fraction never
        decreases with size; the original rule assumes it).
    at_reference : DataFrame
        One row per level at ``n_session = reference_size`` (default 4, a conventional amount of
        data): ``mean_r`` and ``pct_significant``; NaN when that size was not run.
    trend : DataFrame
        One row per level: the original's ``glmfit(mean r, size)`` — size regressed on mean r —
        ``b_reversed``, ``t``, ``p``, and the slope of mean r on size (``b_r_per_session``); t and p
        are the same in both directions.
    reference_size : int
        Size reported in :attr:`at_reference`.
    timings : dict of str to float
        Wall-clock seconds of the steps (``gram``, ``fits``, ``bootstrap``), the number of workers
        (``n_jobs``), of (size, rep, held-out session) draws (``n_draws``) and of distinct fits
        computed (``n_fits``; draws with the same training sessions share one fit).
    runs_per_session : int or None
        ``None`` for the analysis of the paper (every rating run of each drawn session trains the
        model); ``j`` when only ``j`` runs of each drawn session were used (the run-subset variant of
        :func:`training_size`, which varies the minutes of data at a fixed number of sessions).
    train_runs : ndarray of int16, shape (n_sizes, n_reps, S, max(sizes), j), or None
        Run labels used from each drawn session (aligned with :attr:`train_sessions`, padded with
        −1); ``None`` when ``runs_per_session`` is ``None``.
    """

    participant: str
    sessions: np.ndarray
    sizes: np.ndarray
    n_reps: int
    n_boot: int
    seed: int
    lambdas: np.ndarray
    eval_rows: pd.DataFrame
    predictions: np.ndarray = field(repr=False)
    train_sessions: np.ndarray = field(repr=False)
    n_selected: np.ndarray = field(repr=False)
    reps: pd.DataFrame = field(repr=False)
    summary: pd.DataFrame = field(repr=False)
    min_sessions: pd.DataFrame = field(repr=False)
    at_reference: pd.DataFrame = field(repr=False)
    trend: pd.DataFrame = field(repr=False)
    reference_size: int = 4
    timings: dict = field(default_factory=dict)
    runs_per_session: int | None = None
    train_runs: np.ndarray | None = field(default=None, repr=False)

    def prediction_frame(self, size: int, rep: int) -> pd.DataFrame:
        """The held-out predictions of one (size, repetition), ready for :func:`level_table`.

        Parameters
        ----------
        size : int
            Number of training sessions (a value of :attr:`sizes`).
        rep : int
            Repetition, 0-based.

        Returns
        -------
        DataFrame
            :attr:`eval_rows` with a ``predicted`` column.
        """
        hits = np.flatnonzero(self.sizes == size)
        if hits.size == 0 or not 0 <= rep < self.n_reps:
            raise ParameterError(
                f"no repetition {rep} of size {size}; sizes run {self.sizes.min()}–{self.sizes.max()}, "
                f"repetitions 0–{self.n_reps - 1}"
            )
        return self.eval_rows.assign(predicted=self.predictions[hits[0], rep])

    def source_data(self) -> pd.DataFrame:
        """The figure source data ``…_trainsize_<pt>_srcdat_corr.csv`` (``deipp_methods.md`` §13.1).

        Returns
        -------
        DataFrame
            ``n_session``, then for each unit u in (1min, 2min, run, session): ``u_mean``,
            ``u_95ci_lower``, ``u_95ci_upper`` (mean r ± 1.96·SD/√reps over repetitions).
        """
        wide = self.summary.pivot(index="n_session", columns="level")
        out = pd.DataFrame({"n_session": wide.index.to_numpy()})
        for lv in LEVELS:
            unit = "session" if lv == "session" else lv
            out[f"{unit}_mean"] = wide[("mean_r", lv)].to_numpy()
            out[f"{unit}_95ci_lower"] = wide[("ci_lower", lv)].to_numpy()
            out[f"{unit}_95ci_upper"] = wide[("ci_upper", lv)].to_numpy()
        return out


# ----------------------------------------------------------------------------------------------
# Random streams
# ----------------------------------------------------------------------------------------------


def _draw_rng(seed: int, size: int, rep: int) -> np.random.Generator:
    """Generator of the session draws of one (size, repetition).

    ``SeedSequence(seed, spawn_key=(0, size, rep))``: the draws of a repetition depend only on
    ``(seed, size, rep)`` — not on ``n_reps``, the other sizes, the chunking or ``n_jobs``.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, int(size), int(rep))))


def _boot_seed(seed: int, level: str) -> np.random.SeedSequence:
    """Seed of the bootstrap resamples of one level (a stream separate from the draws)."""
    return np.random.SeedSequence(seed, spawn_key=(1, LEVELS.index(level)))


# ----------------------------------------------------------------------------------------------
# Fits
# ----------------------------------------------------------------------------------------------


def _translated_grams(
    X: np.ndarray, train_rows: np.ndarray, eval_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``K = Xt Xtᵀ`` and ``K_eval = Xe Xtᵀ`` after subtracting the training rows' column mean.

    A common translation changes no fit (each fit re-centres its own rows) and removes the large
    common offset of co-fluctuation features, which improves round-off. Columns are processed in
    blocks, so neither the training nor the evaluation rows are ever copied whole.
    """
    K = np.zeros((train_rows.size, train_rows.size))
    K_eval = np.zeros((eval_rows.size, train_rows.size))
    for start in range(0, X.shape[1], _GRAM_BLOCK):
        cols = np.arange(start, min(start + _GRAM_BLOCK, X.shape[1]))
        block = X[np.ix_(train_rows, cols)]
        mu = block.mean(axis=0)
        block -= mu
        K += block @ block.T
        K_eval += (X[np.ix_(eval_rows, cols)] - mu) @ block.T
    return K, K_eval


def _plan(sizes: np.ndarray, n_reps: int, n_ses: int, seed: int) -> np.ndarray:
    """Draw the training sessions of every (size, rep, held-out session), sorted, padded with −1."""
    drawn = np.full((sizes.size, n_reps, n_ses, int(sizes.max())), -1, dtype=np.int16)
    for i_size, size in enumerate(sizes):
        for rep in range(n_reps):
            rng = _draw_rng(seed, size, rep)
            for k in range(n_ses):
                others = np.delete(np.arange(n_ses), k)
                drawn[i_size, rep, k, :size] = np.sort(
                    others[rng.choice(n_ses - 1, size=int(size), replace=False)]
                )
    return drawn


def _unique_fits(drawn: np.ndarray, sizes: np.ndarray) -> list[tuple[int, tuple[int, ...], list]]:
    """Group the (rep, held-out session) pairs of each size by their set of training sessions.

    Returns a list of ``(i_size, training sessions, [(rep, k), …])``: one fit per distinct training
    set, which predicts every held-out session that drew it (each with its own λ). Near S − 2 many
    draws coincide (at m = S − 2 there are only S(S − 1)/2 distinct sets, against S·n_reps draws).
    """
    fits = []
    for i_size, size in enumerate(sizes):
        groups: dict[tuple[int, ...], list[tuple[int, int]]] = {}
        block = drawn[i_size, :, :, :size]
        for rep in range(block.shape[0]):
            for k in range(block.shape[1]):
                groups.setdefault(tuple(int(v) for v in block[rep, k]), []).append((rep, k))
        fits.extend((i_size, key, users) for key, users in groups.items())
    return fits


def _run_subsets(
    rows_train: pd.DataFrame,
    sessions: np.ndarray,
    drawn: np.ndarray,
    sizes: np.ndarray,
    runs_per_session: int,
    seed: int,
    participant: str,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Draw ``runs_per_session`` runs within every drawn training session (run-subset variant).

    The sessions are those of :func:`_plan`, so the session draws are the analysis's own; within
    each drawn session ``j`` of its rating runs are drawn without replacement from
    ``SeedSequence(seed, spawn_key=(2, size, j, rep))`` (a stream separate from the session draws).
    Training units become (session, run) pairs, coded in (session, run) order, so that with ``j``
    equal to every run of every session the training rows — and the fits — are exactly those of the
    session analysis.

    Returns
    -------
    unit_rows : list of ndarray
        Row indices (into ``rows_train``) of each (session, run) unit.
    units : ndarray of int32, shape (n_sizes, n_reps, S, max(sizes) · j)
        Sorted unit codes of each draw, padded with −1 (the input of :func:`_unique_fits`).
    runs : ndarray of int16, shape (n_sizes, n_reps, S, max(sizes), j)
        Run labels drawn in each drawn session, padded with −1.
    """
    j = int(runs_per_session)
    ses_col = rows_train["session"].astype(str).to_numpy()
    run_col = rows_train["run"].to_numpy(int)
    runs_of = [np.unique(run_col[ses_col == s]) for s in sessions]
    short = [f"{s} ({r.size})" for s, r in zip(sessions, runs_of) if r.size < j]
    if j < 1 or short:
        raise ParameterError(
            f"sub-{participant}: runs_per_session must be between 1 and the number of rating runs of "
            f"every session; got {runs_per_session!r}"
            + (f", but sessions {', '.join(short)} have fewer runs" if short else "")
        )
    code: dict[tuple[int, int], int] = {}
    unit_rows: list[np.ndarray] = []
    for s_code, (s, runs) in enumerate(zip(sessions, runs_of)):
        for run in runs:
            code[(s_code, int(run))] = len(unit_rows)
            unit_rows.append(np.flatnonzero((ses_col == s) & (run_col == run)))
    n_sizes, n_reps, n_ses, _ = drawn.shape
    units = np.full((n_sizes, n_reps, n_ses, int(sizes.max()) * j), -1, dtype=np.int32)
    runs = np.full((n_sizes, n_reps, n_ses, int(sizes.max()), j), -1, dtype=np.int16)
    for i_size, size in enumerate(sizes):
        for rep in range(n_reps):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, int(size), j, rep)))
            for k in range(n_ses):
                picked = []
                for pos, s_code in enumerate(drawn[i_size, rep, k, :size]):
                    avail = runs_of[s_code]
                    chosen = np.sort(avail[rng.choice(avail.size, size=j, replace=False)])
                    runs[i_size, rep, k, pos] = chosen
                    picked.extend(code[(int(s_code), int(r))] for r in chosen)
                units[i_size, rep, k, : size * j] = np.sort(picked)
    return unit_rows, units, runs


def _run_fits(
    K: np.ndarray,
    K_eval: np.ndarray,
    y: np.ndarray,
    train_of: list[np.ndarray],
    eval_of: list[np.ndarray],
    lambdas: np.ndarray,
    fits: list[tuple[int, tuple[int, ...], list]],
) -> list[tuple[int, list, list]]:
    """Run a chunk of fits with one BLAS thread (a worker's job).

    Each fit is :func:`~deipp_core.model.fit_predict_gram` on the rbin10 rows of its training
    sessions, predicting the evaluation rows of every held-out session that uses it at that
    session's λ. Returns, per fit, ``(i_size, users, [(prediction, n_selected) per user])``.
    """
    out = []
    with threadpool_limits(limits=1):
        for i_size, train, users in fits:
            train_idx = np.concatenate([train_of[s] for s in train])
            held = sorted({k for _, k in users})
            eval_idx = np.concatenate([eval_of[k] for k in held])
            pred, n_sel = fit_predict_gram(K, K_eval, y, train_idx, eval_idx, lambdas[held])
            offsets = np.cumsum([0] + [eval_of[k].size for k in held])
            per_k = {
                k: (pred[j, offsets[j]:offsets[j + 1]], int(n_sel[j])) for j, k in enumerate(held)
            }
            out.append((i_size, users, [per_k[k] for _, k in users]))
    return out


def _make_chunks(fits: list, sizes: np.ndarray, n_chunks: int) -> list[list]:
    """Deal fits, largest first, round-robin into chunks of similar cost (fit cost ~ size³)."""
    order = sorted(fits, key=lambda f: -int(sizes[f[0]]))
    chunks = [order[i::n_chunks] for i in range(n_chunks)]
    return [c for c in chunks if c]


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def _level_maps(eval_rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Units of the four levels and, per level, the matrix mapping evaluation rows to its units.

    The units come from :func:`level_table`; ``maps[level] @ predictions`` reproduces its
    ``predicted`` column (a unit is one evaluation row, or the mean of a session's run rows).
    """
    template = eval_rows.assign(predicted=0.0)
    table = level_table(template)
    key = eval_rows["kind"].map({"tbin10": "1min", "tbin5": "2min", "run": "run"})
    index = {
        (lv, str(s), int(r), int(b) if lv != "run" else -1): i
        for i, (lv, s, r, b) in enumerate(
            zip(key, eval_rows["session"], eval_rows["run"], eval_rows["bin"])
        )
    }
    maps: dict[str, np.ndarray] = {}
    for lv in LEVELS:
        units = table[table["level"] == lv]
        M = np.zeros((len(units), len(eval_rows)))
        for u, (s, r, b) in enumerate(zip(units["session"], units["run"], units["bin"])):
            if lv == "session":
                cols = [i for (l2, s2, _, _), i in index.items() if l2 == "run" and s2 == s]
                M[u, cols] = 1.0 / len(cols)
            else:
                M[u, index[(lv, s, int(r), int(b))]] = 1.0
        maps[lv] = M
    return table, maps


def _check_level_maps(table: pd.DataFrame, maps: dict[str, np.ndarray], frame: pd.DataFrame) -> None:
    """Guard: the level maps must reproduce :func:`level_table` on an actual prediction."""
    ref = level_table(frame)
    for lv in LEVELS:
        got = maps[lv] @ frame["predicted"].to_numpy(float)
        want = ref.loc[ref["level"] == lv, "predicted"].to_numpy(float)
        if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=1e-12):
            raise DeippError(
                f"internal error: the {lv!r} units of the training-size evaluation do not match "
                "level_table(); please report this"
            )
        actual = ref.loc[ref["level"] == lv, "actual"].to_numpy(float)
        if not np.array_equal(actual, table.loc[table["level"] == lv, "actual"].to_numpy(float)):
            raise DeippError(f"internal error: the {lv!r} actual ratings do not match level_table()")


def _evaluate_reps(
    table: pd.DataFrame,
    maps: dict[str, np.ndarray],
    predictions: np.ndarray,
    sizes: np.ndarray,
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """Pooled r and bootstrap p of every (size, rep) at every level (long table)."""
    n_sizes, n_reps, n_eval = predictions.shape
    flat = predictions.reshape(-1, n_eval)
    size_col = np.repeat(sizes, n_reps)
    rep_col = np.tile(np.arange(n_reps), n_sizes)
    frames = []
    for lv in LEVELS:
        units = table[table["level"] == lv]
        x = units["actual"].to_numpy(float)
        Y = maps[lv] @ flat.T  # (n_units, n_sizes·n_reps)
        groups = [units[c].to_numpy() for c in LEVEL_GROUPS[lv]]
        W = hierarchical_bootstrap(groups, n_boot, seed=_boot_seed(seed, lv), n_units=len(units)).counts()
        r = np.array([pearson_r(x, Y[:, j]) for j in range(Y.shape[1])])
        p = np.empty(Y.shape[1])
        for start in range(0, Y.shape[1], _BOOT_COLS):
            cols = slice(start, start + _BOOT_COLS)
            boot = pearson_r(x, Y[:, cols], weights=W)
            p[cols] = [boot2cip(boot[:, j], 0.0).p for j in range(boot.shape[1])]
        frames.append(pd.DataFrame({
            "n_session": size_col, "rep": rep_col, "level": lv, "r": r, "p": p,
            "significant": (p < ALPHA) & (r > 0),
        }))
    return pd.concat(frames, ignore_index=True)


def _summarise(reps: pd.DataFrame, n_reps: int) -> pd.DataFrame:
    g = reps.groupby(["n_session", "level"], sort=False)
    out = g.agg(
        mean_r=("r", "mean"), sd_r=("r", lambda v: v.std(ddof=1) if len(v) > 1 else np.nan),
        n_significant=("significant", "sum"),
    ).reset_index()
    half = 1.96 * out["sd_r"] / np.sqrt(n_reps)
    out["ci_lower"] = out["mean_r"] - half
    out["ci_upper"] = out["mean_r"] + half
    out["n_significant"] = out["n_significant"].astype(int)
    out["frac_significant"] = out["n_significant"] / n_reps
    out["level"] = pd.Categorical(out["level"], categories=list(LEVELS), ordered=True)
    out = out.sort_values(["level", "n_session"]).reset_index(drop=True)
    out["level"] = out["level"].astype(str)
    return out[["n_session", "level", "mean_r", "sd_r", "ci_lower", "ci_upper",
                "n_significant", "frac_significant"]]


def _min_sessions(summary: pd.DataFrame, n_reps: int, thresholds: Sequence[float]) -> pd.DataFrame:
    rows = []
    for lv in LEVELS:
        s = summary[summary["level"] == lv].sort_values("n_session")
        n_sig = s["n_significant"].to_numpy()
        sizes = s["n_session"].to_numpy()
        monotone = bool(np.all(np.diff(n_sig) >= 0))
        for X in thresholds:
            below = n_sig * 100 < X * n_reps  # fraction < X %, in exact integer arithmetic
            hit = np.flatnonzero(~below)
            rows.append({
                "level": lv, "threshold": float(X),
                "min_sessions": int(below.sum()) + 1,
                "first_reached": float(sizes[hit[0]]) if hit.size else np.nan,
                "reached": bool(hit.size), "monotone": monotone,
            })
    return pd.DataFrame(rows)


def _at_reference(summary: pd.DataFrame, reference_size: int) -> pd.DataFrame:
    rows = []
    for lv in LEVELS:
        s = summary[(summary["level"] == lv) & (summary["n_session"] == reference_size)]
        rows.append({
            "level": lv, "n_session": reference_size,
            "mean_r": float(s["mean_r"].iloc[0]) if len(s) else np.nan,
            "pct_significant": 100 * float(s["frac_significant"].iloc[0]) if len(s) else np.nan,
        })
    return pd.DataFrame(rows)


def _trend(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for lv in LEVELS:
        s = summary[summary["level"] == lv]
        m, r = s["n_session"].to_numpy(float), s["mean_r"].to_numpy(float)
        ok = np.isfinite(r)
        if ok.sum() >= 3 and np.ptp(r[ok]) > 0:
            rev = sps.linregress(r[ok], m[ok])  # the original: glmfit(mean r, size)
            fwd = sps.linregress(m[ok], r[ok])
            rows.append({"level": lv, "b_reversed": rev.slope, "t": rev.slope / rev.stderr,
                         "p": rev.pvalue, "b_r_per_session": fwd.slope})
        else:
            rows.append({"level": lv, "b_reversed": np.nan, "t": np.nan, "p": np.nan,
                         "b_r_per_session": np.nan})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def training_size(
    features: ParticipantFeatures,
    cv: NestedLOSOResult,
    *,
    sizes: Sequence[int] | None = None,
    n_reps: int = 100,
    seed: int = 0,
    n_boot: int = 10_000,
    n_jobs: int | None = 1,
    reference_size: int = 4,
    thresholds: Sequence[float] = THRESHOLDS,
    progress: bool = True,
    runs_per_session: int | None = None,
) -> TrainingSizeResult:
    """Held-out accuracy as a function of the number of training sessions (§10.7, paper Fig. 3).

    Parameters
    ----------
    features : ParticipantFeatures
        The participant's feature table, with ``rbin10`` (training) and ``tbin10``, ``tbin5`` and
        ``run`` (evaluation) rows.
    cv : NestedLOSOResult
        The participant's main model (:func:`deipp_core.model.nested_loso` on the ``rbin10`` rows):
        held-out session ``k`` uses ``cv.lambdas[cv.icv_best[k]]``.
    sizes : sequence of int, optional
        Numbers of training sessions, each in 1 … S − 1; default ``1 … S − 2`` as the original.
    n_reps : int, default=100
        Repetitions per size (the original: 100; see ``Profile.n_trainsize_reps``).
    seed : int, default=0
        Seed of the session draws and of the bootstrap. The draws of (size, rep) come from
        ``numpy.random.default_rng(SeedSequence(seed, spawn_key=(0, size, rep)))``: one
        ``rng.choice(S − 1, size, replace=False)`` (≙ ``randperm(S−1, m)``) per held-out session, in
        session order. The original also draws ``randperm(S, m)`` once per (size, rep) and never uses
        it; in MATLAB that shifts the stream, but with an independent NumPy stream per (size, rep) an
        unused draw can change nothing, so it is not made. MATLAB's stream cannot be reproduced
        bitwise anyway (§16 item 15).
    n_boot : int, default=10_000
        Hierarchical bootstrap resamples for the p of each (size, rep) and level.
    n_jobs : int or None, default=1
        Parallel workers for the fits, one BLAS thread each; ``-1``: all cores. The joblib backend
        is loky unless the caller picks another with ``joblib.parallel_config`` (e.g.
        ``backend="dask"``). Fits use one BLAS thread in every case, so results are identical for
        any ``n_jobs`` and backend.
    reference_size : int, default=4
        The "conventional" amount of data whose mean r and % significant are reported.
    thresholds : sequence of float, default=(50, 90, 95, 97.5, 99)
        Percentages for :attr:`TrainingSizeResult.min_sessions`.
    progress : bool, default=True
        Show a tqdm progress bar over the repetitions.
    runs_per_session : int, optional
        Not in the paper (used by :mod:`deipp_core.analyses.planner`). Train each model on only this
        many rating runs (10 minutes each in the study) of each drawn session, drawn at random, so
        that the minutes of training data vary at a fixed number of sessions. The sessions drawn are
        the same as without it; the runs come from a separate stream
        (``SeedSequence(seed, spawn_key=(2, size, runs_per_session, rep))``). With every run of every
        session the result equals the default analysis. Everything else (λ, evaluation, bootstrap)
        is unchanged.

    Returns
    -------
    TrainingSizeResult

    Raises
    ------
    ParameterError
        If ``cv`` does not belong to ``features`` (different sessions), a size is out of range, a
        count is not a positive integer, or a session has fewer than ``runs_per_session`` runs.

    Notes
    -----
    **Bootstrap.** For each level one set of ``n_boot`` hierarchical resamples (sessions → runs →
    bins, as :func:`deipp_core.evaluation.evaluate`, without single-class rejection) is drawn and
    applied to every (size, rep) of the participant: the units and their nesting are the same for all
    repetitions, only the predictions differ. Each p is therefore an ordinary bootstrap p; sharing
    the resamples (common random numbers) only correlates the small Monte-Carlo errors of different
    repetitions' p (standard error ≈ 0.002 near p = 0.05 at B = 10,000) and makes the whole analysis
    cost a few matrix products per level.

    **Cost.** At most ``len(sizes) · n_reps · S`` fits, each dominated by the eigendecomposition of
    a ``30m × 30m`` block (cost ∝ m³), so at S = 30 the sizes ≥ 20 dominate. Draws with identical
    training sessions share one fit (the decomposition does not depend on λ or on the held-out
    session); at S = 30 and 100 repetitions this removes most fits of the largest size and about a
    third of the next, ≈ 15 % of the total cost. Each decomposition leaves its eigenvectors implicit
    (:mod:`deipp_core.model._gram`), 1.3× faster than forming them at 840 rows.

    Examples
    --------
    >>> res = training_size(features, cv, n_reps=10, n_boot=2000, n_jobs=2)  # doctest: +SKIP
    >>> res.source_data().head()  # doctest: +SKIP
    """
    for name, v in (("n_reps", n_reps), ("n_boot", n_boot)):
        if int(v) != v or v < 1:
            raise ParameterError(f"{name} must be a positive integer; got {v!r}")
    n_reps, n_boot = int(n_reps), int(n_boot)
    X_rows = features.rows
    train_mask = (X_rows["kind"] == "rbin10").to_numpy()
    eval_mask = X_rows["kind"].isin(EVAL_KINDS).to_numpy()
    if not train_mask.any() or not eval_mask.any():
        raise ParameterError(
            f"sub-{features.participant}: the features need rbin10 rows (training) and "
            f"{', '.join(EVAL_KINDS)} rows (evaluation); kinds present: "
            f"{sorted(pd.unique(X_rows['kind']))}"
        )
    train_rows = np.flatnonzero(train_mask)
    eval_rows_idx = np.flatnonzero(eval_mask)
    rows_train = X_rows.iloc[train_rows].reset_index(drop=True)
    eval_rows = X_rows.iloc[eval_rows_idx][["kind", "session", "run", "bin", "rating"]].reset_index(drop=True)

    sessions = np.asarray(cv.groups)
    train_ses = np.unique(rows_train["session"].to_numpy())
    same = sessions.shape == train_ses.shape and np.array_equal(
        np.sort(sessions.astype(str)), np.sort(train_ses.astype(str))
    )
    if not same:
        raise ParameterError(
            f"sub-{features.participant}: cv was trained on sessions {list(sessions)} but the features "
            f"have rbin10 rows of sessions {list(train_ses)}; pass the nested_loso result of these features"
        )
    n_ses = sessions.size
    if np.asarray(cv.icv_best).shape != (n_ses,):
        raise ParameterError(f"cv.icv_best must have one entry per session ({n_ses})")
    lambdas = np.asarray(cv.lambdas, dtype=float)[np.asarray(cv.icv_best, dtype=int)]

    sizes_arr = np.arange(1, n_ses - 1) if sizes is None else np.asarray(sizes, dtype=int).ravel()
    if sizes_arr.size == 0:
        raise ParameterError(
            f"sub-{features.participant}: no training sizes to run (S = {n_ses} sessions; the default "
            "sizes 1 … S − 2 need S ≥ 3)"
        )
    if np.any(sizes_arr < 1) or np.any(sizes_arr > n_ses - 1) or np.unique(sizes_arr).size != sizes_arr.size:
        raise ParameterError(
            f"sizes must be distinct numbers of training sessions in 1 … {n_ses - 1} (S − 1); got "
            f"{sizes_arr.tolist()}"
        )
    sizes_arr = np.sort(sizes_arr)

    sess_str = sessions.astype(str)
    train_of = [np.flatnonzero(rows_train["session"].astype(str).to_numpy() == s) for s in sess_str]
    eval_of = [np.flatnonzero(eval_rows["session"].astype(str).to_numpy() == s) for s in sess_str]
    missing = [s for s, e in zip(sess_str, eval_of) if e.size == 0]
    if missing:
        raise ParameterError(
            f"sub-{features.participant}: sessions {missing} have no evaluation rows "
            f"({', '.join(EVAL_KINDS)})"
        )
    y = rows_train["rating"].to_numpy(float)
    if not np.all(np.isfinite(y)):
        raise ParameterError(f"sub-{features.participant}: some rbin10 ratings are not finite")

    t0 = time.perf_counter()
    K, K_eval = _translated_grams(features.X, train_rows, eval_rows_idx)
    t_gram = time.perf_counter() - t0
    drawn = _plan(sizes_arr, n_reps, n_ses, seed)
    units, unit_counts, train_runs = drawn, sizes_arr, None
    if runs_per_session is not None:
        train_of, units, train_runs = _run_subsets(rows_train, sess_str, drawn, sizes_arr, runs_per_session,
                                                   seed, features.participant)
        unit_counts = sizes_arr * int(runs_per_session)
    fits = _unique_fits(units, unit_counts)
    n_draws = sizes_arr.size * n_reps * n_ses
    logger.info(
        "sub-%s training size: %d sizes × %d repetitions × %d held-out sessions = %d fits, of which "
        "%d distinct training sets", features.participant, sizes_arr.size, n_reps, n_ses, n_draws,
        len(fits),
    )

    predictions = np.empty((sizes_arr.size, n_reps, len(eval_rows)))
    n_selected = np.empty((sizes_arr.size, n_reps, n_ses), dtype=np.int64)
    bar = tqdm(total=len(fits), desc=f"sub-{features.participant} training size",
               unit="fit", disable=not progress)

    def collect(chunk_out):
        for i_size, users, results in chunk_out:
            for (rep, k), (pred, ns) in zip(users, results):
                predictions[i_size, rep, eval_of[k]] = pred
                n_selected[i_size, rep, k] = ns
        bar.update(len(chunk_out))

    args = (K, K_eval, y, train_of, eval_of, lambdas)
    if n_jobs in (None, 1):
        for chunk in _make_chunks(fits, unit_counts, max(1, len(fits) // 50)):
            collect(_run_fits(*args, chunk))
    else:
        n_workers = effective_n_jobs(n_jobs)
        chunks = _make_chunks(fits, unit_counts, min(len(fits), 16 * n_workers))
        out = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(  # backend: joblib.parallel_config
            delayed(_run_fits)(*args, chunk) for chunk in chunks
        )
        for chunk_out in out:
            collect(chunk_out)
    bar.close()
    t_fits = time.perf_counter() - t0 - t_gram

    table, maps = _level_maps(eval_rows)
    _check_level_maps(table, maps, eval_rows.assign(predicted=predictions[0, 0]))
    reps = _evaluate_reps(table, maps, predictions, sizes_arr, n_boot, seed)
    summary = _summarise(reps, n_reps)
    t_boot = time.perf_counter() - t0 - t_gram - t_fits
    logger.info("sub-%s training size: Gram %.1f s, %d fits %.1f s, bootstrap %.1f s",
                features.participant, t_gram, len(fits), t_fits, t_boot)
    return TrainingSizeResult(
        participant=features.participant,
        sessions=sessions,
        sizes=sizes_arr,
        n_reps=n_reps,
        n_boot=n_boot,
        seed=int(seed),
        lambdas=lambdas,
        eval_rows=eval_rows,
        predictions=predictions,
        train_sessions=drawn,
        n_selected=n_selected,
        reps=reps,
        summary=summary,
        min_sessions=_min_sessions(summary, n_reps, thresholds),
        at_reference=_at_reference(summary, reference_size),
        trend=_trend(summary),
        reference_size=int(reference_size),
        timings={"gram": t_gram, "fits": t_fits, "bootstrap": t_boot,
                 "n_jobs": float(effective_n_jobs(n_jobs)), "n_draws": float(n_draws),
                 "n_fits": float(len(fits))},
        runs_per_session=None if runs_per_session is None else int(runs_per_session),
        train_runs=train_runs,
    )


def run_training_size(
    participant: Participant,
    *,
    profile: str | Profile = "quick",
    seed: int = 0,
    n_jobs: int | None = 1,
    features: ParticipantFeatures | None = None,
    cv: NestedLOSOResult | None = None,
    progress: bool = True,
    sizes: Sequence[int] | None = None,
    runs_per_session: int | None = None,
) -> TrainingSizeResult:
    """Features → main model (nested LOSO) → :func:`training_size`, with the profile's counts.

    Parameters
    ----------
    participant : Participant
        The participant's runs (from :func:`deipp_core.data.load_dataset`).
    profile : str or Profile, default="quick"
        ``n_trainsize_reps`` repetitions per size and ``n_boot`` bootstrap resamples
        (``paper``: 100 and 10,000).
    seed : int, default=0
        Seed of the draws and the bootstrap.
    n_jobs : int or None, default=1
        Parallel workers for the nested LOSO and the training-size fits.
    features : ParticipantFeatures, optional
        Precomputed features (computed otherwise).
    cv : NestedLOSOResult, optional
        Precomputed main model of these features (computed otherwise).
    progress : bool, default=True
        Show progress bars.
    sizes : sequence of int, optional
        Numbers of training sessions (default ``1 … S − 2``, as the paper).
    runs_per_session : int, optional
        Run-subset variant: train on this many runs of each drawn session (see
        :func:`training_size`).

    Returns
    -------
    TrainingSizeResult
    """
    prof = get_profile(profile)
    feats = features if features is not None else participant_features(participant)
    if cv is None:
        X_train, rows_train = feats.select("rbin10")
        cv = nested_loso(X_train, rows_train["rating"].to_numpy(), rows_train["session"].to_numpy(),
                         n_jobs=n_jobs)
    return training_size(feats, cv, n_reps=prof.n_trainsize_reps, seed=seed, n_boot=prof.n_boot,
                         n_jobs=n_jobs, progress=progress, sizes=sizes, runs_per_session=runs_per_session)


def min_sessions_table(results: Mapping[str, TrainingSizeResult]) -> pd.DataFrame:
    """The "minimum number of training sessions to reach X %" of several participants, as one table.

    Parameters
    ----------
    results : mapping of str to TrainingSizeResult
        Participant name → result.

    Returns
    -------
    DataFrame
        Index (participant, level); one column per threshold (``"≥ 50 %"`` …) holding the original
        rule's number of sessions, or ``"> S−2"``-style text (``"not reached (≤ 23 tested)"``) when no
        tested size reaches the threshold.
    """
    blocks = {}
    for name, res in results.items():
        ms = res.min_sessions
        wide = {}
        for X, g in ms.groupby("threshold", sort=True):
            g = g.set_index("level").loc[list(LEVELS)]
            wide[f"≥ {X:g} %"] = [
                str(int(row["min_sessions"])) if row["reached"]
                else f"not reached (≤ {int(res.sizes.max())} tested)"
                for _, row in g.iterrows()
            ]
        blocks[name] = pd.DataFrame(wide, index=pd.Index(list(LEVELS), name="level"))
    return pd.concat(blocks, names=["participant", "level"])


def training_size_summary(results: Mapping[str, TrainingSizeResult]) -> str:
    """One Markdown bullet per participant: accuracy at the reference size and minimum sessions.

    Parameters
    ----------
    results : mapping of str to TrainingSizeResult
        Participant name → result.

    Returns
    -------
    str
        Markdown text (numbers formatted from the results; for gluing into a page).
    """
    names = {"1min": "1 min", "2min": "2 min", "run": "run", "session": "session"}
    lines = []
    for name, res in results.items():
        ref = res.at_reference.set_index("level")
        m0 = res.reference_size
        if ref["mean_r"].notna().any():
            rs = ", ".join(f"{ref.loc[lv, 'mean_r']:.2f} ({names[lv]})" for lv in LEVELS)
            ps = ", ".join(f"{ref.loc[lv, 'pct_significant']:.0f} %" for lv in LEVELS)
            at_ref = (f"with {m0} training sessions the mean held-out r was {rs}, and {ps} of the "
                      "repetitions were significant (p < 0.05, r > 0) at these levels")
        else:
            at_ref = (f"{m0} training sessions were not tested (sizes 1 … {int(res.sizes.max())} were "
                      "run)")
        ms = res.min_sessions.set_index(["level", "threshold"])
        reach = []
        for X in (50.0, 99.0):
            if X not in set(ms.index.get_level_values("threshold")):
                continue
            parts = []
            for lv in LEVELS:
                row = ms.loc[(lv, X)]
                parts.append(f"{int(row['min_sessions'])} ({names[lv]})" if row["reached"]
                             else f"not reached ({names[lv]})")
            reach.append(f"training sessions needed for ≥ {X:g} % significant repetitions: "
                         f"{', '.join(parts)}")
        nonmono = [names[lv] for lv in LEVELS if not ms.loc[lv]["monotone"].iloc[0]]
        note = (f" The fraction of significant repetitions was not monotone in the number of sessions "
                f"at the {', '.join(nonmono)} level(s), so the original's counting rule is only "
                "approximate there." if nonmono else "")
        lines.append(f"- **{name}** ({res.sessions.size} sessions, {res.n_reps} repetitions per size): "
                     f"{at_ref}; {'; '.join(reach)}.{note}")
    return "\n".join(lines)


def cached_training_size(
    dataset,
    label: str,
    *,
    profile: str | Profile = "quick",
    seed: int = 0,
    n_jobs: int | None = 1,
    features: ParticipantFeatures | None = None,
    cv: NestedLOSOResult | None = None,
    progress: bool = False,
    sizes: Sequence[int] | None = None,
    runs_per_session: int | None = None,
) -> TrainingSizeResult:
    """:func:`run_training_size` for one participant of a data set, cached under ``derivatives/deipp``.

    The key covers the data set's fingerprint, the participant, the ``deipp_core`` source, the
    profile's counts and the seed; the result file is written atomically, so the training-size chapter
    and the ledger share one computation and an interrupted run leaves nothing a later run would read.
    ``sizes`` and ``runs_per_session`` (the run-subset variant, see :func:`training_size`) are passed
    on and, when given, enter the key and the file name (``desc-trainingsizeruns``).
    """
    import io

    import joblib

    from deipp_core.data import data_fingerprint
    from deipp_core.data.derivatives import atomic_write_bytes, code_digest, derivatives_root, hash_key

    prof = get_profile(profile)
    variant = () if sizes is None and runs_per_session is None else (
        None if sizes is None else [int(m) for m in sizes], runs_per_session)
    key = hash_key(data_fingerprint(dataset.root), label, code_digest(), prof.n_trainsize_reps,
                   prof.n_boot, seed, "training_size", *variant)
    desc = "trainingsizeruns" if variant else "trainingsize"
    path = derivatives_root(dataset.root) / f"sub-{label}" / f"sub-{label}_desc-{desc}_key-{key}.joblib"
    if path.is_file():
        logger.info("sub-%s: reusing the cached training-size analysis %s", label, path.name)
        return joblib.load(path)
    result = run_training_size(dataset[label], profile=prof, seed=seed, n_jobs=n_jobs, features=features,
                               cv=cv, progress=progress, sizes=sizes, runs_per_session=runs_per_session)
    buffer = io.BytesIO()
    joblib.dump(result, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return result
