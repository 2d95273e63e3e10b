"""Benchmark: nested leave-one-session-out LASSO-PCR, three ways, on the same synthetic data.

(a) ``explicit``: the edge-space reference :func:`deipp_core.model.nested_loso_explicit` (SVD of the
    explicit training rows per fit, one OLS refit per grid point), the way the MATLAB code works;
(b) ``sklearn``: what a user would write with scikit-learn, an outer leave-one-session-out loop around
    ``GridSearchCV(Pipeline([PCA(), Lasso()]), cv=LeaveOneGroupOut())`` on a small alpha grid
    (it is not the DEIPP estimator: no standardised-LASSO scale, no OLS refit, R² scoring per fold);
(c) ``gram``: :func:`deipp_core.model.nested_loso` (Gram-matrix identities, all grid points at once).

(a) and (b) are bounded: only the first ``--explicit-folds`` / ``--sklearn-folds`` outer folds are run
and the full time is extrapolated as (time per outer fold) × S; the output says so. Every stage runs in
its own fresh process; its peak memory is the sampled RSS of that process and its joblib workers
(psutil) and the tracemalloc peak of its own allocations. (a) and (c') run serially with one BLAS
thread (threaded BLAS on a shared machine is erratic); (b) and (c) use ``--n-jobs`` cores, (b) as
GridSearchCV workers, (c) as outer-fold workers with one BLAS thread each.

Run ``python benchmarks/bench_nested_cv.py --help``; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np


class _PeakMemory:
    """Peak memory of a block: sampled RSS of this process plus its children, and tracemalloc.

    ``tree_mb``: the largest sum of resident set sizes of this process and all its descendants
    (joblib workers), sampled every 0.1 s with psutil (``ru_maxrss`` is not used for workers: a child
    that forks from a large parent reports the parent's size). ``alloc_mb``: the tracemalloc peak of
    the Python/NumPy allocations made in this process during the block.
    """

    def __init__(self):
        import psutil

        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.tree_mb = 0.0
        self.alloc_mb = 0.0

    def _sample(self) -> None:
        import psutil

        while True:
            total = self._proc.memory_info().rss
            for child in self._proc.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.tree_mb = max(self.tree_mb, total / 2**20)
            if self._stop.wait(0.1):
                return

    def __enter__(self):
        tracemalloc.start()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.alloc_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        return False


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _load(path: str) -> dict:
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def _stage_gram(path: str, n_jobs: int) -> dict:
    from joblib.externals.loky import get_reusable_executor
    from threadpoolctl import threadpool_limits

    from deipp_core.model import nested_loso

    d = _load(path)
    base = _rss_mb()
    # serial: one BLAS thread, like (a); parallel: nested_loso gives each worker one thread
    with threadpool_limits(limits=1 if n_jobs == 1 else None), _PeakMemory() as mem:
        t0 = time.perf_counter()
        res = nested_loso(
            d["X"], d["y"], d["groups"], X_eval=d["X_eval"], groups_eval=d["groups_eval"],
            n_jobs=n_jobs,
        )
        elapsed = time.perf_counter() - t0
        get_reusable_executor().shutdown(wait=True)
    r_eval = float(np.corrcoef(res.y_pred_eval, d["y_eval"])[0, 1])
    return {
        "time": elapsed,
        "total": elapsed,
        "mem_tree": mem.tree_mb,
        "mem_alloc": mem.alloc_mb,
        "mem_before": base,
        "ocv_pred": res.ocv_pred,
        "icv_r": res.icv_r,
        "note": f"all {res.groups.size} outer folds; held-out r(eval rows) = {r_eval:.3f}",
    }


def _stage_explicit(path: str, n_folds: int) -> dict:
    from threadpoolctl import threadpool_limits

    from deipp_core.model._explicit import _explicit_outer_fold, _lambda_grid_explicit

    d = _load(path)
    X, y, groups = d["X"], d["y"], d["groups"]
    sessions = np.unique(groups)
    base = _rss_mb()
    with threadpool_limits(limits=1), _PeakMemory() as mem:
        t0 = time.perf_counter()
        lambdas, _ = _lambda_grid_explicit(X, y)
        t_grid = time.perf_counter() - t0
        folds = []
        t1 = time.perf_counter()
        for k in range(n_folds):
            folds.append(_explicit_outer_fold(X, y, groups, sessions[k], lambdas))
        t_folds = time.perf_counter() - t1
    per_fold = t_folds / n_folds
    return {
        "time": t_grid + t_folds,
        "total": t_grid + per_fold * sessions.size,
        "mem_tree": mem.tree_mb,
        "mem_alloc": mem.alloc_mb,
        "mem_before": base,
        "ocv_pred": [f["ocv_pred"] for f in folds],
        "icv_r": np.column_stack([f["icv_r"] for f in folds]),
        "note": (
            f"{n_folds} of {sessions.size} outer folds run ({per_fold:.1f} s each)"
            + ("" if n_folds == sessions.size else "; total extrapolated")
        ),
    }


def _sklearn_folds(X, y, groups, sessions, n_folds, alphas, n_jobs) -> None:
    """The user's code: outer LOSO loop around an inner LOSO grid search of PCA + Lasso."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Lasso
    from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut
    from sklearn.pipeline import Pipeline

    for k in range(n_folds):
        train = groups != sessions[k]
        search = GridSearchCV(
            Pipeline([("pca", PCA()), ("lasso", Lasso(max_iter=10_000))]),
            {"lasso__alpha": alphas},
            cv=LeaveOneGroupOut(),
            n_jobs=n_jobs,
        )
        search.fit(X[train], y[train], groups=groups[train])
        search.predict(X[~train])


def _stage_sklearn(path: str, n_folds: int, n_alphas: int, n_jobs: int) -> dict:
    from joblib.externals.loky import get_reusable_executor
    from sklearn.decomposition import PCA

    d = _load(path)
    X, y, groups = d["X"], d["y"], d["groups"]
    sessions = np.unique(groups)
    # a user's alpha grid: log-spaced below alpha_max of the PC scores of all rows
    scores = PCA().fit_transform(X)
    alpha_max = np.abs(scores.T @ (y - y.mean())).max() / y.size
    alphas = alpha_max * np.logspace(-3, -0.3, n_alphas)
    base = _rss_mb()
    with _PeakMemory() as mem:
        t0 = time.perf_counter()
        _sklearn_folds(X, y, groups, sessions, n_folds, alphas, n_jobs)
        elapsed = time.perf_counter() - t0
        get_reusable_executor().shutdown(wait=True)
    per_fold = elapsed / n_folds
    n_fits = (sessions.size - 1) * n_alphas + 1
    return {
        "time": elapsed,
        "total": per_fold * sessions.size,
        "mem_tree": mem.tree_mb,
        "mem_alloc": mem.alloc_mb,
        "mem_before": base,
        "note": (
            f"{n_folds} of {sessions.size} outer folds run ({per_fold:.1f} s each, {n_fits} fits "
            f"each), {n_alphas} alphas vs {y.size - 2} grid points in (a)/(c); total extrapolated"
        ),
    }


def _child(stage: str, kwargs: dict, queue) -> None:
    try:
        queue.put(("ok", globals()[f"_stage_{stage}"](**kwargs)))
    except BaseException as exc:  # report any failure to the parent instead of hanging
        queue.put(("error", repr(exc)))


def _run_in_fresh_process(stage: str, **kwargs) -> dict:
    print(f"running {stage} {kwargs} ...", flush=True)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(stage, kwargs, queue))
    proc.start()
    status, payload = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"stage {stage!r} failed: {payload}")
    print(f"  done: {payload['time']:.1f} s measured, {payload['note']}", flush=True)
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=30, help="sessions S (30 rows each)")
    parser.add_argument("--parcels", type=int, default=300, help="parcels P (E = P(P-1)/2 edges)")
    parser.add_argument("--quick", action="store_true", help="S=6, P=40, every explicit fold")
    parser.add_argument("--n-jobs", type=int, default=2, help="cores per stage (default 2)")
    parser.add_argument("--explicit-folds", type=int, default=None,
                        help="outer folds of (a) to run (default: all with --quick, else 2)")
    parser.add_argument("--sklearn-folds", type=int, default=1, help="outer folds of (b) to run")
    parser.add_argument("--sklearn-alphas", type=int, default=5, help="alpha grid size of (b)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["explicit", "sklearn"],
                        help="stages to leave out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.parcels = 6, 40
    n_explicit = args.explicit_folds or (args.sessions if args.quick else 2)
    n_explicit = min(n_explicit, args.sessions)
    n_sklearn = min(args.sklearn_folds, args.sessions)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from deipp_core.model._synthetic import make_session_data

    n_edges = args.parcels * (args.parcels - 1) // 2
    print(
        f"Synthetic data: S={args.sessions} sessions x 3 runs x 10 bins = {30 * args.sessions} "
        f"training rows (+ as many eval rows), P={args.parcels} parcels -> E={n_edges} edges; "
        f"{args.n_jobs} cores per stage; os.cpu_count()={os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    t0 = time.perf_counter()
    data = make_session_data(args.sessions, args.parcels, seed=args.seed)
    print(f"data generated in {time.perf_counter() - t0:.1f} s "
          f"(X: {data['X'].nbytes / 2**20:.0f} MB, X_eval: {data['X_eval'].nbytes / 2**20:.0f} MB)")

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, **{k: data[k] for k in ("X", "y", "groups", "X_eval", "y_eval", "groups_eval")})
        results["gram"] = _run_in_fresh_process("gram", path=path, n_jobs=args.n_jobs)
        if args.n_jobs != 1:
            results["gram1"] = _run_in_fresh_process("gram", path=path, n_jobs=1)
        if "explicit" not in args.skip:
            results["explicit"] = _run_in_fresh_process("explicit", path=path, n_folds=n_explicit)
        if "sklearn" not in args.skip:
            results["sklearn"] = _run_in_fresh_process(
                "sklearn", path=path, n_folds=n_sklearn, n_alphas=args.sklearn_alphas,
                n_jobs=args.n_jobs,
            )

    best = min(("gram", "gram1"), key=lambda key: results[key]["total"] if key in results else np.inf)
    ours = results[best]["total"]
    labels = {
        "explicit": "(a) explicit edge-space reference",
        "sklearn": "(b) sklearn GridSearchCV(PCA+Lasso)",
        "gram": f"(c) deipp_core nested_loso, n_jobs={args.n_jobs}",
        "gram1": "(c') deipp_core nested_loso, n_jobs=1",
    }
    print()
    print(f"{'stage':38s} {'run (s)':>9s} {'full CV (s)':>12s} {'x ours':>8s} "
          f"{'peak RSS (MB)':>14s} {'alloc (MB)':>11s}")
    for key in ("explicit", "sklearn", "gram", "gram1"):
        if key not in results:
            continue
        r = results[key]
        print(f"{labels[key]:38s} {r['time']:9.1f} {r['total']:12.1f} {r['total'] / ours:8.1f} "
              f"{r['mem_tree']:14.0f} {r['mem_alloc']:11.0f}")
    print()
    print("peak RSS: process + joblib workers during the run (sampled; includes the loaded data); "
          "alloc: tracemalloc peak of the run's allocations in the main process")
    print(f"ratios ('x ours') are relative to the faster of (c)/(c'): {labels[best]}, {ours:.1f} s")
    for key in ("explicit", "sklearn", "gram", "gram1"):
        if key in results:
            print(f"{labels[key]}: {results[key]['note']}; "
                  f"RSS after loading data {results[key]['mem_before']:.0f} MB")
    if "explicit" in results:
        groups = np.unique(data["groups"])
        diffs = []
        for k, pred in enumerate(results["explicit"]["ocv_pred"]):
            rows = data["groups"] == groups[k]
            diffs.append(np.abs(results["gram"]["ocv_pred"][:, rows] - pred).max())
        n = len(diffs)
        icv_diff = np.abs(results["gram"]["icv_r"][:, :n] - results["explicit"]["icv_r"]).max()
        print(f"(a) vs (c) on the {n} outer folds run by both: max |diff| outer predictions "
              f"{max(diffs):.1e}, inner-CV r paths {icv_diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
