"""Benchmark: nested leave-one-session-out LASSO-PCR, three ways, on the same synthetic data.

(a) ``explicit``: the edge-space reference :func:`deipp_core.model.nested_loso_explicit` (SVD of the
    explicit training rows per fit, one OLS refit per grid point), the way the MATLAB code works;
(b) ``sklearn``: what a user would write with scikit-learn, an outer leave-one-session-out loop around
    ``GridSearchCV(Pipeline([PCA(), Lasso()]), cv=LeaveOneGroupOut())`` on a small alpha grid
    (it is not the DEIPP estimator: no standardised-LASSO scale, no OLS refit, R² scoring per fold);
(c) ``gram``: :func:`deipp_core.model.nested_loso` (Gram-matrix identities, all grid points at once).

(a) and (b) are bounded: only the first ``--explicit-folds`` / ``--sklearn-folds`` outer folds are run
and the full time is extrapolated as (time per outer fold) × S; the output says so. Every stage runs in
its own fresh process so that its peak resident memory (``getrusage`` ``ru_maxrss``; for joblib
workers, the largest worker) is its own. All stages use ``--n-jobs`` cores: (a) as BLAS threads,
(b) as GridSearchCV workers, (c) as outer-fold workers with one BLAS thread each.

Run ``python benchmarks/bench_nested_cv.py --help``; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _peak_mb() -> tuple[float, float]:
    """Peak RSS (MB) of this process and of its largest terminated child (Linux: ru_maxrss in kB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def _load(path: str) -> dict:
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def _stage_gram(path: str, n_jobs: int) -> dict:
    from joblib.externals.loky import get_reusable_executor

    from deipp_core.model import nested_loso

    d = _load(path)
    base = _peak_mb()[0]
    t0 = time.perf_counter()
    res = nested_loso(
        d["X"], d["y"], d["groups"], X_eval=d["X_eval"], groups_eval=d["groups_eval"], n_jobs=n_jobs
    )
    elapsed = time.perf_counter() - t0
    get_reusable_executor().shutdown(wait=True)  # so that the workers' peak RSS is reported
    own, worker = _peak_mb()
    r_eval = float(np.corrcoef(res.y_pred_eval, d["y_eval"])[0, 1])
    return {
        "time": elapsed,
        "total": elapsed,
        "mem": own,
        "mem_before": base,
        "mem_worker": worker,
        "ocv_pred": res.ocv_pred,
        "icv_r": res.icv_r,
        "note": f"all {res.groups.size} outer folds; held-out r(eval rows) = {r_eval:.3f}",
    }


def _stage_explicit(path: str, n_folds: int, n_jobs: int) -> dict:
    from threadpoolctl import threadpool_limits

    from deipp_core.model._explicit import _explicit_outer_fold, _lambda_grid_explicit

    d = _load(path)
    X, y, groups = d["X"], d["y"], d["groups"]
    sessions = np.unique(groups)
    base = _peak_mb()[0]
    with threadpool_limits(limits=n_jobs):
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
        "mem": _peak_mb()[0],
        "mem_before": base,
        "mem_worker": 0.0,
        "ocv_pred": [f["ocv_pred"] for f in folds],
        "icv_r": np.column_stack([f["icv_r"] for f in folds]),
        "note": (
            f"{n_folds} of {sessions.size} outer folds run ({per_fold:.1f} s each)"
            + ("" if n_folds == sessions.size else "; total extrapolated")
        ),
    }


def _stage_sklearn(path: str, n_folds: int, n_alphas: int, n_jobs: int) -> dict:
    from joblib.externals.loky import get_reusable_executor
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Lasso
    from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut
    from sklearn.pipeline import Pipeline

    d = _load(path)
    X, y, groups = d["X"], d["y"], d["groups"]
    sessions = np.unique(groups)
    # a user's alpha grid: log-spaced below alpha_max of the PC scores of all rows
    scores = PCA().fit_transform(X)
    alpha_max = np.abs(scores.T @ (y - y.mean())).max() / y.size
    alphas = alpha_max * np.logspace(-3, -0.3, n_alphas)
    base = _peak_mb()[0]
    t0 = time.perf_counter()
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
    elapsed = time.perf_counter() - t0
    get_reusable_executor().shutdown(wait=True)
    own, worker = _peak_mb()
    per_fold = elapsed / n_folds
    n_fits = (sessions.size - 1) * n_alphas + 1
    return {
        "time": elapsed,
        "total": per_fold * sessions.size,
        "mem": own,
        "mem_before": base,
        "mem_worker": worker,
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
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(stage, kwargs, queue))
    proc.start()
    status, payload = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"stage {stage!r} failed: {payload}")
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
            results["explicit"] = _run_in_fresh_process(
                "explicit", path=path, n_folds=n_explicit, n_jobs=args.n_jobs
            )
        if "sklearn" not in args.skip:
            results["sklearn"] = _run_in_fresh_process(
                "sklearn", path=path, n_folds=n_sklearn, n_alphas=args.sklearn_alphas,
                n_jobs=args.n_jobs,
            )

    ours = results["gram"]["total"]
    labels = {
        "explicit": "(a) explicit edge-space reference",
        "sklearn": "(b) sklearn GridSearchCV(PCA+Lasso)",
        "gram": f"(c) deipp_core nested_loso, n_jobs={args.n_jobs}",
        "gram1": "(c') deipp_core nested_loso, n_jobs=1",
    }
    print()
    print(f"{'stage':38s} {'run (s)':>9s} {'full CV (s)':>12s} {'x ours':>8s} "
          f"{'peak RSS (MB)':>14s} {'worker (MB)':>12s}")
    for key in ("explicit", "sklearn", "gram", "gram1"):
        if key not in results:
            continue
        r = results[key]
        print(f"{labels[key]:38s} {r['time']:9.1f} {r['total']:12.1f} {r['total'] / ours:8.1f} "
              f"{r['mem']:14.0f} {r['mem_worker']:12.0f}")
    print()
    print(f"ratios ('x ours') are relative to (c), {ours:.1f} s")
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
