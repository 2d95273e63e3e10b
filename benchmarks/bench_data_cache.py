"""Benchmark of the data and feature caches: what a chapter pays to get its data and features.

Side by side in one run, each stage in a fresh Python process (as a chapter's kernel is), on the twin
of ``--profile`` (``book``: the paper-scale twin, 55 sessions × 4 runs, 300 parcels):

* **load** ``load_dataset(...)``: (a) without the cache (``use_cache=False``: every gzipped TSV is
  parsed), (b) cold (the run cache deleted first: parse and write it), (c) warm (read it);
* **features** per participant: (d) ``participant_features`` (computed), (e) ``cached_features`` cold
  (its entry deleted first: compute and write), (f) warm (read; ``X`` memory-mapped), and (f') warm
  plus reading every page of ``X`` once (what a chapter that uses all rows pays at most);
* **parsers**: the time-series parser alone on ``--parser-files`` files: pandas streaming the gzip
  (the reader before this change), decompress-then-pandas (the reader now) and ``numpy.loadtxt``;
* **exactness**: the warm cached data and features against the uncached ones with ``np.array_equal``.

Times are wall-clock seconds including the imports the stage needs (measured inside the process,
after ``import deipp_core``); the load average is recorded before and after. The raw files are in
the page cache for every stage (the cache files after their first write too), so the ratios compare
parsing and computing, not disk reads. Run it on a quiet machine.

Usage::

    DEIPP_DATA_DIR=/tmp/deipp-data-perf python benchmarks/bench_data_cache.py --profile book
    DEIPP_DATA_DIR=/tmp/deipp-data-perf python benchmarks/bench_data_cache.py --profile quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _stage(name: str, profile: str, label: str | None) -> dict:
    """Run one stage in this process and return its measurements."""
    import numpy as np

    from deipp_core.data import load_dataset, resolve_data
    from deipp_core.features import cached_features, participant_features

    root = resolve_data("twin", profile=profile)
    cache = root / "derivatives" / "deipp" / "cache"
    out: dict = {}
    if name in ("load_uncached", "load_cold", "load_warm"):
        if name == "load_cold":
            for folder in cache.glob("sub-*/ses-*"):
                shutil.rmtree(folder)
        t = time.perf_counter()
        load_dataset("twin", profile=profile, use_cache=name != "load_uncached")
        out["seconds"] = time.perf_counter() - t
        return out
    ds = load_dataset("twin", profile=profile)
    if name == "features_computed":
        t = time.perf_counter()
        feats = participant_features(ds[label])
        out["seconds"] = time.perf_counter() - t
        out["shape"] = list(feats.X.shape)
        out["mb"] = feats.X.nbytes / 1e6
        return out
    if name in ("features_cold", "features_warm"):
        if name == "features_cold":
            for path in (cache / f"sub-{label}").glob(f"sub-{label}_desc-feature*"):
                path.unlink()
        t = time.perf_counter()
        feats = cached_features(ds, label)
        out["seconds"] = time.perf_counter() - t
        float(np.asarray(feats.X).sum())  # read every page of X once
        out["seconds_touch_all"] = time.perf_counter() - t
        return out
    if name == "exact":
        ref = load_dataset("twin", profile=profile, use_cache=False)
        ok_runs = all(
            np.array_equal(r.timeseries, s.timeseries) and r.confounds.equals(s.confounds)
            and ((r.rating is None and s.rating is None) or r.rating.equals(s.rating))
            for lab in ref.participants for r, s in zip(ref[lab].runs, ds[lab].runs)
        )
        ok_feats = True
        for lab in ref.participants:
            a, b = participant_features(ref[lab]), cached_features(ds, lab)
            ok_feats &= bool(np.array_equal(a.X, b.X) and a.rows.equals(b.rows))
        return {"runs_equal": ok_runs, "features_equal": ok_feats}
    raise SystemExit(f"unknown stage {name}")


def _parsers(profile: str, n_files: int) -> dict:
    import gzip
    import io

    import numpy as np
    import pandas as pd

    from deipp_core.data import resolve_data
    from deipp_core.data.bids import read_parcel_timeseries

    root = resolve_data("twin", profile=profile)
    files = sorted(root.glob("derivatives/deipp-twin/sub-01/ses-*/func/*_atlas-*_timeseries.tsv.gz"))[:n_files]

    def pandas_stream(p):
        return pd.read_csv(p, engine="c", sep="\t", dtype=np.float64, na_values=["n/a"]).to_numpy(np.float64)

    def numpy_loadtxt(p):
        with gzip.open(p, "rt") as fh:
            return np.loadtxt(fh, delimiter="\t", skiprows=1, dtype=np.float64)

    ref = [pandas_stream(p) for p in files]
    out = {}
    for name, fn in (("pandas, streaming gzip (before)", pandas_stream),
                     ("decompress, then pandas (reader now)", read_parcel_timeseries),
                     ("numpy.loadtxt", numpy_loadtxt)):
        t = time.perf_counter()
        arrays = [fn(p) for p in files]
        out[name] = {"ms_per_file": (time.perf_counter() - t) / len(files) * 1e3,
                     "equal": all(np.array_equal(a, b) for a, b in zip(ref, arrays))}
    out["n_files"] = len(files)
    out["mb_per_file_uncompressed"] = len(gzip.decompress(files[0].read_bytes())) / 1e6
    return out


def _run(args: list[str]) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"stage {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _du(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="book", choices=["quick", "book", "paper"])
    parser.add_argument("--parser-files", type=int, default=12)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "parsers":
        print(json.dumps(_parsers(args.profile, args.parser_files)))
        return
    if args.stage:
        print(json.dumps(_stage(args.stage, args.profile, args.label)))
        return

    from deipp_core.data import load_dataset, resolve_data

    root = resolve_data("twin", profile=args.profile)
    labels = sorted(load_dataset("twin", profile=args.profile).participants)  # also warms the run cache
    load_before = os.getloadavg()
    p = ["--profile", args.profile]
    load = {s: _run([*p, "--stage", s])["seconds"] for s in ("load_uncached", "load_cold", "load_warm")}
    feats = {}
    for label in labels:
        feats[label] = {s: _run([*p, "--stage", s, "--label", label])
                        for s in ("features_computed", "features_cold", "features_warm")}
    parsers = _run([*p, "--stage", "parsers", "--parser-files", str(args.parser_files)])
    exact = _run([*p, "--stage", "exact"])
    load_after = os.getloadavg()

    raw = _du(root) - _du(root / "derivatives" / "deipp")
    cache = root / "derivatives" / "deipp" / "cache"
    print(f"# bench_data_cache: profile {args.profile}, {root}")
    print(f"load average (1/5/15 min) before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, "
          f"after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}")
    print(f"raw data {raw:.0f} MB; cache {_du(cache):.0f} MB "
          f"(parsed runs {sum(_du(d) for d in cache.glob('sub-*/ses-*')):.0f} MB, "
          f"feature tables {sum(p.stat().st_size for p in cache.glob('sub-*/sub-*_desc-feature*')) / 1e6:.0f} MB)")
    print()
    print("| step | uncached (s) | cache cold (s) | cache warm (s) | uncached / warm |")
    print("|---|---|---|---|---|")
    print(f"| load_dataset | {load['load_uncached']:.1f} | {load['load_cold']:.1f} | {load['load_warm']:.2f} | "
          f"{load['load_uncached'] / load['load_warm']:.0f}× |")
    for label, f in feats.items():
        c, cold, warm = f["features_computed"], f["features_cold"], f["features_warm"]
        print(f"| features sub-{label} ({c['shape'][0]} × {c['shape'][1]}, {c['mb']:.0f} MB) | {c['seconds']:.1f} | "
              f"{cold['seconds']:.1f} | {warm['seconds']:.2f} ({warm['seconds_touch_all']:.2f} reading all of X) | "
              f"{c['seconds'] / warm['seconds']:.0f}× ({c['seconds'] / warm['seconds_touch_all']:.0f}×) |")
    print()
    n = parsers.pop("n_files")
    size = parsers.pop("mb_per_file_uncompressed")
    print(f"Parsers, {n} time-series files of {size:.1f} MB uncompressed:")
    print()
    print("| parser | ms per file | equal to before |")
    print("|---|---|---|")
    for name, r in parsers.items():
        print(f"| {name} | {r['ms_per_file']:.0f} | {r['equal']} |")
    print()
    print(f"exactness (warm cache vs uncached, np.array_equal): runs {exact['runs_equal']}, "
          f"features {exact['features_equal']}")


if __name__ == "__main__":
    main()
