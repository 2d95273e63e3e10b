"""Benchmark of the training-size analysis (paper Fig. 3, ``deipp_methods.md`` §10.7).

Measures, on the full-scale twin (``book``/``paper`` scale: sub-01 with 25 sessions, sub-02 with 30):

1. **Cost per fit, by size.** The fits of ``--reps`` repetitions of every size m = 1 … S − 2, one
   process, one BLAS thread, timed size by size: seconds per fit c(m).
2. **Paper-profile fit time.** The draws of the paper profile (100 repetitions per size) are planned
   exactly (cheap), giving the number of *distinct* fits u(m) per size (draws with the same training
   sessions share one fit); serial time = Σ c(m)·u(m).
3. **Serial vs 2 workers.** :func:`training_size` on the same ``--reps`` repetitions with
   ``n_jobs=1`` and ``n_jobs=2`` (one BLAS thread per worker): the ratio of fit times.
4. **Bootstrap at paper scale**, measured directly: the evaluation step on 100 repetitions per size
   (the measured predictions tiled with small noise) at ``--n-boot`` resamples.

The load average of the machine is recorded: on a shared machine (other jobs on the same cores) every
time here is pessimistic, and the serial/parallel ratio is compressed.

Usage::

    DEIPP_DATA_DIR=... python benchmarks/bench_training_size.py --reps 1 [--cache features.pkl]

``--cache`` stores (and reuses) the participants' features and nested-LOSO models, which take minutes
to compute and are not what is measured here.
"""

from __future__ import annotations

import argparse
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from deipp_core.analyses.training_size import (
    EVAL_KINDS,
    _check_level_maps,
    _evaluate_reps,
    _level_maps,
    _plan,
    _run_fits,
    _translated_grams,
    _unique_fits,
    training_size,
)
from deipp_core.data import load_dataset
from deipp_core.features import participant_features
from deipp_core.model import nested_loso

PAPER_REPS = 100


def _paper_bootstrap_seconds(res, n_boot: int, seed: int) -> float:
    """Time the evaluation step (pooled r, bootstrap p) for PAPER_REPS repetitions of every size."""
    rng = np.random.default_rng(seed)
    reps = np.resize(np.arange(res.n_reps), PAPER_REPS)
    preds = res.predictions[:, reps] + 0.01 * rng.standard_normal(
        (res.sizes.size, PAPER_REPS, res.predictions.shape[2])
    )
    t0 = time.perf_counter()
    table, maps = _level_maps(res.eval_rows)
    _check_level_maps(table, maps, res.eval_rows.assign(predicted=preds[0, 0]))
    _evaluate_reps(table, maps, preds, res.sizes, n_boot, seed)
    return time.perf_counter() - t0


def _models(profile: str, seed: int, cache: Path | None) -> dict:
    if cache is not None and cache.exists():
        with open(cache, "rb") as fh:
            return pickle.load(fh)
    dataset = load_dataset("twin", profile=profile, seed=seed)
    out = {}
    for label in sorted(dataset.participants):
        feats = participant_features(dataset[label])
        X, rows = feats.select("rbin10")
        cv = nested_loso(X, rows["rating"].to_numpy(), rows["session"].to_numpy(), n_jobs=2)
        out[label] = (feats, cv)
    if cache is not None:
        with open(cache, "wb") as fh:
            pickle.dump(out, fh)
    return out


def _cost_per_fit(feats, cv, reps: int, seed: int) -> pd.DataFrame:
    """Seconds per distinct fit for every size (serial, one BLAS thread), and u(m) at 100 reps."""
    rows = feats.rows
    train_rows = np.flatnonzero((rows["kind"] == "rbin10").to_numpy())
    eval_rows = np.flatnonzero(rows["kind"].isin(EVAL_KINDS).to_numpy())
    sessions = [str(s) for s in cv.groups]
    tr_ses = rows["session"].astype(str).to_numpy()[train_rows]
    ev_ses = rows["session"].astype(str).to_numpy()[eval_rows]
    train_of = [np.flatnonzero(tr_ses == s) for s in sessions]
    eval_of = [np.flatnonzero(ev_ses == s) for s in sessions]
    y = rows["rating"].to_numpy(float)[train_rows]
    lambdas = cv.lambdas[cv.icv_best]
    K, K_eval = _translated_grams(feats.X, train_rows, eval_rows)
    n_ses = len(sessions)
    sizes = np.arange(1, n_ses - 1)
    fits = _unique_fits(_plan(sizes, reps, n_ses, seed), sizes)
    fits_paper = _unique_fits(_plan(sizes, PAPER_REPS, n_ses, seed), sizes)
    out = []
    for i, m in enumerate(sizes):
        mine = [f for f in fits if f[0] == i]
        t0 = time.perf_counter()
        _run_fits(K, K_eval, y, train_of, eval_of, lambdas, mine)
        dt = time.perf_counter() - t0
        out.append({"size": int(m), "fits_timed": len(mine), "s_per_fit": dt / len(mine),
                    "draws_paper": PAPER_REPS * n_ses,
                    "fits_paper": sum(1 for f in fits_paper if f[0] == i)})
    table = pd.DataFrame(out)
    table["paper_s"] = table["s_per_fit"] * table["fits_paper"]
    return table


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="book", help="twin scale (book and paper share it)")
    parser.add_argument("--reps", type=int, default=1, help="repetitions per size to time")
    parser.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="pickle of features + models")
    parser.add_argument("--participants", nargs="*", default=None)
    args = parser.parse_args(argv)

    models = _models(args.profile, args.seed, args.cache)
    rows = []
    for label, (feats, cv) in sorted(models.items()):
        if args.participants and label not in args.participants:
            continue
        n_ses = cv.groups.size
        load0 = os.getloadavg()[0]
        per_size = _cost_per_fit(feats, cv, args.reps, args.seed)
        print(f"sub-{label} (S = {n_ses}), seconds per fit by size:\n"
              + per_size.round(4).to_string(index=False), flush=True)
        fit_s = {}
        res = None
        # warm up the loky workers (process start, imports) so that only the fits are timed
        training_size(feats, cv, sizes=[1], n_reps=1, n_boot=10, n_jobs=2, progress=False)
        for n_jobs in (1, 2):
            res = training_size(feats, cv, n_reps=args.reps, n_boot=10, seed=args.seed,
                                n_jobs=n_jobs, progress=False)
            fit_s[n_jobs] = res.timings["fits"]
        boot_s = _paper_bootstrap_seconds(res, args.n_boot, args.seed)
        serial_paper = float(per_size["paper_s"].sum())
        rows.append({
            "participant": label, "S": n_ses, "reps_timed": args.reps,
            "fits_timed": int(res.timings["n_fits"]), "fits_s_serial": fit_s[1],
            "fits_s_2workers": fit_s[2], "speedup_2workers": fit_s[1] / fit_s[2],
            "paper_draws": int(per_size["draws_paper"].sum()),
            "paper_fits": int(per_size["fits_paper"].sum()),
            "paper_fits_min_serial": serial_paper / 60,
            "paper_fits_min_2workers": serial_paper / 60 * fit_s[2] / fit_s[1],
            "paper_boot_min": boot_s / 60, "gram_s": res.timings["gram"],
            "load_before": load0, "load_after": os.getloadavg()[0],
        })
        print(pd.DataFrame(rows[-1:]).round(3).T.to_string(header=False), flush=True)
    table = pd.DataFrame(rows)
    tot1 = float((table["paper_fits_min_serial"] + table["paper_boot_min"] + table["gram_s"] / 60).sum())
    tot2 = float((table["paper_fits_min_2workers"] + table["paper_boot_min"] + table["gram_s"] / 60).sum())
    print("\n" + table.round(3).to_string(index=False))
    print(f"\nextrapolated paper profile ({PAPER_REPS} reps, both participants, {args.n_boot:,} resamples): "
          f"serial {tot1:.1f} min, 2 workers {tot2:.1f} min "
          f"(of which bootstrap {table['paper_boot_min'].sum():.1f} min)")
    print(f"nproc = {os.cpu_count()}, load average now {os.getloadavg()}")
    return table


if __name__ == "__main__":
    main()
