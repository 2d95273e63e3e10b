"""Benchmark of the training-size analysis (paper Fig. 3, ``deipp_methods.md`` §10.7).

Measures, on the full-scale twin (``book``/``paper`` scale: sub-01 with 25 sessions, sub-02 with 30):

* the fits of ``--reps`` repetitions of every size m = 1 … S − 2, serial (one process, one BLAS thread)
  and with 2 loky workers (one BLAS thread each), on exactly the same work: fits per second and the
  serial / parallel ratio;
* the bootstrap of those repetitions at 10,000 resamples;
* the extrapolated wall time of the paper profile (100 repetitions per size): ``reps`` repetitions of
  every size are the same mix of block sizes as the full run, so the time scales by ``100 / reps``.

The load average of the machine is recorded before and after: on a shared machine (other jobs on the
same cores) every number here is pessimistic, and the ratios are the more meaningful part.

Usage::

    DEIPP_DATA_DIR=... python benchmarks/bench_training_size.py --reps 2 [--cache features.pkl]

``--cache`` stores (and reuses) the participants' features and nested-LOSO models, which take minutes
to compute and are not what is measured here.
"""

from __future__ import annotations

import argparse
import os
import pickle
import time
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from deipp_core.analyses.training_size import training_size
from deipp_core.data import load_dataset
from deipp_core.features import participant_features
from deipp_core.model import nested_loso

PAPER_REPS = 100


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


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="book", help="twin scale (book and paper share it)")
    parser.add_argument("--reps", type=int, default=2, help="repetitions per size to time")
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
        for n_jobs in (1, 2):
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            with threadpool_limits(limits=1 if n_jobs == 1 else None):
                res = training_size(feats, cv, n_reps=args.reps, n_boot=args.n_boot, seed=args.seed,
                                    n_jobs=n_jobs, progress=False)
            wall = time.perf_counter() - t0
            n_fits = res.sizes.size * args.reps * n_ses
            t = res.timings
            rows.append({
                "participant": label, "S": n_ses, "n_jobs": n_jobs, "reps": args.reps,
                "n_fits": n_fits, "gram_s": t["gram"], "fits_s": t["fits"],
                "fits_per_s": n_fits / t["fits"], "bootstrap_s": t["bootstrap"], "wall_s": wall,
                "paper_fits_min": t["fits"] * PAPER_REPS / args.reps / 60,
                "paper_boot_min": t["bootstrap"] * PAPER_REPS / args.reps / 60,
                "load_before": load_before, "load_after": os.getloadavg()[0],
            })
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    serial = table[table["n_jobs"] == 1].set_index("participant")
    par = table[table["n_jobs"] == 2].set_index("participant")
    ratio = (serial["fits_s"] / par["fits_s"]).rename("speed-up of fits, 2 workers vs serial")
    total = {
        n: float((t["paper_fits_min"] + t["paper_boot_min"] + t["gram_s"] / 60).sum())
        for n, t in ((1, serial), (2, par))
    }
    print("\n" + table.round(3).to_string(index=False))
    print("\n" + ratio.round(2).to_string())
    print(f"\nextrapolated paper profile ({PAPER_REPS} reps, both participants, 10,000 resamples if "
          f"--n-boot 10000): serial {total[1]:.1f} min, 2 workers {total[2]:.1f} min")
    print(f"nproc = {os.cpu_count()}, load average now {os.getloadavg()}")
    return table


if __name__ == "__main__":
    main()
