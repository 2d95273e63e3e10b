"""Are the statistics calibrated? The prediction analysis run on many null data sets.

The digital twin's null mode (:func:`deipp_core.data.twin.generate_twin` with ``null=True``) keeps
every property of the simulated study — autocorrelated ratings with their session structure,
autocorrelated network BOLD, head motion and censoring — but no route from pain to the brain data.
Running the whole prediction analysis (:func:`deipp_core.analyses.run_prediction`) on many such
data sets, each with its own seed, gives the null distribution of every reported statistic: r and
AUC at the four levels, the mean within-run and within-session r, and their hierarchical-bootstrap
p-values. A calibrated test rejects at about its nominal rate (5 % at p < 0.05).

Pipeline::

    seed ─► null twin (temporary folder) ─► read_dataset ─► run_prediction per participant
         └─► one row per (seed, participant, level)            [cached per seed, atomically]
    null_calibration (joblib over seeds) ─► calibration_summary (rates with exact binomial CIs)

Per-seed tables are cached under ``$DEIPP_DATA_DIR/calibration/`` (see
:class:`deipp_core.data.derivatives.ResultCache`), keyed by the seed, the twin scale, the number of
bootstrap resamples and the source of the modules that produce them, so a book build reuses them and
any change to the simulator, features, model or statistics recomputes them.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats as sps
from threadpoolctl import threadpool_limits

from deipp_core.data.derivatives import ResultCache, code_digest, hash_key
from deipp_core.exceptions import ParameterError
from deipp_core.profiles import Profile, get_profile

if TYPE_CHECKING:
    from deipp_core.data.twin import TwinConfig

__all__ = [
    "CALIBRATION_LEVELS",
    "N_NULL_DATASETS",
    "calibration_dir",
    "null_dataset_table",
    "null_calibration",
    "calibration_summary",
    "describe_calibration",
]

logger = logging.getLogger(__name__)

#: Levels of the calibration table: the four pooled levels, then the mean within-unit correlations.
CALIBRATION_LEVELS = ("1min", "2min", "run", "session", "within_run", "within_session")

#: Null data sets per profile (each is a quick-scale twin; ~3–5 s each on one core at quick n_boot).
#: At least 100 in every profile, so that a rejection rate of 5 % is measured to about ±4 points
#: (exact binomial 95 % interval of 5/100: 1.6–11.3 %; of 10/200: 2.4–9.0 %; of 50/1000: 3.7–6.5 %).
N_NULL_DATASETS = {"quick": 100, "book": 200, "paper": 1000}

_TABLE_COLUMNS = ["seed", "participant", "level", "n_units", "r", "r_p", "auc", "auc_p", "seconds"]

#: Modules whose source determines the per-seed results (the cache key covers them).
_RESULT_SOURCES = (
    "data", "model", "analyses/prediction.py", "analyses/calibration.py", "edges.py", "evaluation.py",
    "features.py", "motion.py", "ratings.py", "stats.py",
)


def calibration_dir() -> Path:
    """Folder of the cached per-seed null tables: ``$DEIPP_DATA_DIR/calibration``."""
    from deipp_core.data import data_dir

    return data_dir() / "calibration"


def _twin_config(scale):
    """Settings of the null twins of ``scale``.

    The named scales leave out the rest runs, which the prediction analysis does not read, and write
    the time series uncompressed: the rating runs are drawn from streams keyed by their own
    (participant, session, run), so they are the same data as in the full twin of that scale and seed,
    for about a third less time per null data set.
    """
    from deipp_core.data.twin import TwinConfig

    if isinstance(scale, TwinConfig):
        return scale
    configs = {"quick": TwinConfig.quick, "paper": TwinConfig.paper}
    if scale not in configs:
        raise ParameterError(f"unknown twin scale {scale!r}; choose 'quick', 'paper' or pass a TwinConfig")
    return configs[scale](include_rest=False, gzip_level=0)


def null_dataset_table(seed: int, *, scale: str | TwinConfig = "quick", n_boot: int = 200) -> pd.DataFrame:
    """Generate one null twin, run the prediction analysis on each participant, tabulate the results.

    Parameters
    ----------
    seed : int
        Seed of the null twin; also the seed of the bootstrap.
    scale : {"quick", "paper"} or TwinConfig, default="quick"
        Twin scale (:meth:`TwinConfig.quick` or :meth:`TwinConfig.paper`, without rest runs and with
        uncompressed time series, which leaves the rating runs unchanged), or the settings themselves.
    n_boot : int, default=200
        Hierarchical bootstrap resamples per statistic.

    Returns
    -------
    DataFrame
        One row per (participant, level) with columns ``seed``, ``participant``, ``level`` (one of
        :data:`CALIBRATION_LEVELS`), ``n_units``, ``r``, ``r_p``, ``auc``, ``auc_p`` (NaN for the
        within-unit levels, which have no AUC) and ``seconds`` (wall time of this data set: generation,
        reading and fitting, shared by its rows).
    """
    from deipp_core.analyses.prediction import run_prediction
    from deipp_core.data.bids import read_dataset
    from deipp_core.data.twin import generate_twin

    config = _twin_config(scale)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"deipp-null-{seed}-") as tmp:
        root = generate_twin(Path(tmp) / f"twin-{config.scale}-seed{seed}-null", config, seed=seed, null=True)
        dataset = read_dataset(root, use_cache=False)  # read once: a parse cache would only cost writes
        for label in sorted(dataset.participants):
            res = run_prediction(dataset[label], profile=_profile(n_boot), seed=seed)
            for m in res.metrics.itertuples(index=False):
                rows.append([seed, label, m.level, m.n_units, m.r, m.r_p, m.auc, m.auc_p])
            for w in res.within_summary.itertuples(index=False):
                rows.append([seed, label, f"within_{w.by}", w.n_units, w.r, w.r_p, np.nan, np.nan])
    seconds = time.perf_counter() - start
    table = pd.DataFrame(rows, columns=_TABLE_COLUMNS[:-1]).assign(seconds=seconds)
    return table.astype({"seed": int, "participant": str, "level": str, "n_units": int})


def _profile(n_boot: int) -> Profile:
    return Profile("calibration", twin_scale="quick", n_boot=int(n_boot), n_perm=0, n_trainsize_reps=0)


def _cached_table(
    seed: int, scale, n_boot: int, use_cache: bool, cache_root: Path, code: str
) -> pd.DataFrame:
    cache = ResultCache(cache_root)
    config = _twin_config(scale)
    name = f"null_scale-{config.scale}_seed-{seed}_nboot-{n_boot}"
    key = hash_key(seed, repr(config), n_boot, code)
    path = cache.path(name, key)
    if use_cache and path.is_file():
        logger.info("reusing the cached null table %s", path.name)
        # Labels such as "01" must stay text (read_tsv would turn them into numbers).
        table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                            dtype={"participant": str, "level": str})
        return table.astype({"seed": int, "n_units": int})
    with threadpool_limits(1):
        table = null_dataset_table(seed, scale=scale, n_boot=n_boot)
    if use_cache:
        cache.put(name, key, table)
    return table


def null_calibration(
    n_datasets: int | str | Profile,
    *,
    scale: str | TwinConfig = "quick",
    first_seed: int = 1000,
    n_boot: int | None = None,
    n_jobs: int = 1,
    use_cache: bool = True,
    cache_dir: str | Path | None = None,
) -> pd.DataFrame:
    """The prediction analysis on ``n_datasets`` null twins (seeds ``first_seed``, ``first_seed + 1``, …).

    Parameters
    ----------
    n_datasets : int, str or Profile
        Number of null data sets, or a profile (name), which gives :data:`N_NULL_DATASETS` and, unless
        ``n_boot`` is set, its ``n_boot``.
    scale : {"quick", "paper"} or TwinConfig, default="quick"
        Twin scale of every null data set, or its settings.
    first_seed : int, default=1000
        Seed of the first null data set (kept away from the seeds of the chapters' twins).
    n_boot : int, optional
        Bootstrap resamples per statistic; the profile's (or 200) by default.
    n_jobs : int, default=1
        Null data sets processed in parallel (joblib, one BLAS thread each).
    use_cache : bool, default=True
        Reuse and write the per-seed tables under ``cache_dir``.
    cache_dir : path, optional
        Cache folder; :func:`calibration_dir` by default.

    Returns
    -------
    DataFrame
        The tables of :func:`null_dataset_table` stacked, sorted by seed, participant and level.

    Examples
    --------
    >>> table = null_calibration(2, n_boot=100)  # doctest: +SKIP
    >>> calibration_summary(table)  # doctest: +SKIP
    """
    if isinstance(n_datasets, (str, Profile)):
        prof = get_profile(n_datasets)
        n_boot = prof.n_boot if n_boot is None else n_boot
        n_datasets = N_NULL_DATASETS[prof.name]
    n_boot = 200 if n_boot is None else n_boot
    if int(n_datasets) < 1 or int(n_boot) < 1:
        raise ParameterError(f"n_datasets and n_boot must be positive; got {n_datasets} and {n_boot}")
    _twin_config(scale)  # fail early on a bad scale
    seeds = range(int(first_seed), int(first_seed) + int(n_datasets))
    # Resolved here, not in the workers, whose environment may predate a change of $DEIPP_DATA_DIR.
    cache_root = Path(cache_dir) if cache_dir is not None else calibration_dir()
    logger.info("null calibration: %d data sets (%s scale, %d resamples)", len(seeds),
                _twin_config(scale).scale, n_boot)
    code = code_digest(_RESULT_SOURCES)[:16]  # once, so that every seed of this call has the same key
    tables = Parallel(n_jobs=n_jobs)(
        delayed(_cached_table)(s, scale, int(n_boot), use_cache, cache_root, code) for s in seeds
    )
    table = pd.concat(tables, ignore_index=True)
    order = {lv: i for i, lv in enumerate(CALIBRATION_LEVELS)}
    table = table.sort_values(["seed", "participant", "level"], key=lambda c: c.map(order) if c.name == "level" else c)
    return table.reset_index(drop=True)[_TABLE_COLUMNS]


def _rate(p: np.ndarray, alpha: float, mask: np.ndarray | None = None) -> tuple[int, int, float, float, float]:
    p = np.asarray(p, dtype=float)
    keep = ~np.isnan(p)
    k = int(np.sum((p[keep] < alpha) & (mask[keep] if mask is not None else True)))
    n = int(keep.sum())
    if n == 0:
        return 0, 0, np.nan, np.nan, np.nan
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return k, n, k / n, float(ci.low), float(ci.high)


def calibration_summary(table: pd.DataFrame, *, alpha: float = 0.05, by_participant: bool = False) -> pd.DataFrame:
    """Mean null statistics and false-positive rates per level, with exact binomial 95 % intervals.

    Parameters
    ----------
    table : DataFrame
        From :func:`null_calibration`.
    alpha : float, default=0.05
        Nominal level of the tests.
    by_participant : bool, default=False
        One row per (participant, level) instead of pooling the participants.

    Returns
    -------
    DataFrame
        One row per level (in :data:`CALIBRATION_LEVELS` order) with ``n_tests``, ``mean_r``, ``sd_r``,
        ``mean_auc`` (NaN for within-unit levels), and for ``stat`` ∈ {r, auc}: ``<stat>_n_reject``,
        ``<stat>_reject_rate`` (share of p < ``alpha``), ``<stat>_reject_ci_low`` /
        ``<stat>_reject_ci_high`` (Clopper–Pearson 95 %), ``<stat>_calibrated`` (``alpha`` lies inside
        that interval) and ``<stat>_pos_reject_rate`` (share with p < ``alpha`` *and* an effect in the
        paper's direction, r > 0 or AUC > 0.5; a calibrated two-sided test gives about ``alpha``/2).

    Notes
    -----
    The tests of one null data set are not independent of each other (the levels share predictions and
    both participants share nothing but the seed), but the tests of one level and participant are
    independent across seeds, which is what the binomial interval assumes.
    """
    if not 0 < alpha < 1:
        raise ParameterError(f"alpha must be in (0, 1); got {alpha}")
    missing = {"level", "r", "r_p", "auc", "auc_p", "participant"} - set(table.columns)
    if missing:
        raise ParameterError(f"calibration table lacks columns {sorted(missing)}; pass the output of null_calibration")
    keys = ["participant", "level"] if by_participant else ["level"]
    out = []
    for key, d in table.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key))
        row.update(n_tests=len(d), mean_r=d["r"].mean(), sd_r=d["r"].std(ddof=1), mean_auc=d["auc"].mean())
        for stat, null in (("r", 0.0), ("auc", 0.5)):
            p = d[f"{stat}_p"].to_numpy(float)
            k, n, rate, lo, hi = _rate(p, alpha)
            row.update({
                f"{stat}_n_reject": k, f"{stat}_reject_rate": rate,
                f"{stat}_reject_ci_low": lo, f"{stat}_reject_ci_high": hi,
                f"{stat}_calibrated": bool(lo <= alpha <= hi) if n else pd.NA,
                f"{stat}_pos_reject_rate": _rate(p, alpha, d[stat].to_numpy(float) > null)[2],
            })
        out.append(row)
    summary = pd.DataFrame(out).astype({"r_calibrated": "boolean", "auc_calibrated": "boolean"})
    order = {lv: i for i, lv in enumerate(CALIBRATION_LEVELS)}
    summary = summary.sort_values(keys, key=lambda c: c.map(order) if c.name == "level" else c)
    return summary.reset_index(drop=True)


def describe_calibration(summary: pd.DataFrame, *, alpha: float = 0.05) -> str:
    """Sentences (Markdown) stating, per level, the null mean and whether the rejection rate is nominal.

    Parameters
    ----------
    summary : DataFrame
        From :func:`calibration_summary` (pooled over participants).
    alpha : float, default=0.05

    Returns
    -------
    str
    """
    names = {"1min": "1-min bins", "2min": "2-min bins", "run": "runs", "session": "sessions",
             "within_run": "mean within-run r", "within_session": "mean within-session r"}
    parts = []
    for row in summary.itertuples(index=False):
        verdicts = []
        for stat, label in (("r", "r"), ("auc", "AUC")):
            rate = getattr(row, f"{stat}_reject_rate")
            if pd.isna(rate):
                continue
            lo, hi = getattr(row, f"{stat}_reject_ci_low"), getattr(row, f"{stat}_reject_ci_high")
            if lo > alpha:
                word = "too often (liberal)"
            elif hi < alpha:
                word = "too rarely (conservative)"
            else:
                word = "at a rate compatible with the nominal one"
            verdicts.append(f"p < {alpha:g} for {label} in {rate:.1%} [{lo:.1%}, {hi:.1%}] of tests, {word}; "
                            f"{getattr(row, f'{stat}_pos_reject_rate'):.1%} in the paper's direction")
        mean = f"mean r = {row.mean_r:.2f}"
        if not pd.isna(row.mean_auc):
            mean += f", mean AUC = {row.mean_auc:.2f}"
        name = names.get(row.level, row.level)
        parts.append(f"- **{name}** ({row.n_tests} tests): {mean}; " + "; ".join(verdicts) + ".")
    return "\n".join(parts)
