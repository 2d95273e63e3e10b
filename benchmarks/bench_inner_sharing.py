"""Benchmark: nested LOSO with each inner training set fitted once for two outer folds, side by side
with the per-fold scheme that fits every inner training set twice.

In nested leave-one-session-out, outer fold ``i`` without session ``j`` and outer fold ``j`` without
session ``i`` train on the same rows. :func:`deipp_core.model.nested_loso` fits such a set once
(``S(S−1)/2`` inner fits); the per-fold scheme (what the MATLAB loops do, and what ``nested_loso``
did before) fits each one twice (``S(S−1)``). Both are timed here in the same process, alternately
(``--repeats`` rounds, A B A B …), serially with one BLAS thread, on the same Gram matrix; the per-fold
scheme is assembled from the public single-fit kernel :func:`~deipp_core.model.fit_predict_gram`.
The output gives the ratio of medians and checks that both give the same inner-CV r paths.

Run ``python benchmarks/bench_inner_sharing.py --help``; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _per_fold_inner(K: np.ndarray, y: np.ndarray, groups: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """Inner-CV r paths of every outer fold, each fold running its own S − 1 inner fits."""
    from deipp_core.model import fit_predict_gram
    from deipp_core.model._cv import _pooled_r

    sessions = np.unique(groups)
    icv_r = np.empty((lambdas.size, sessions.size))
    for k, label in enumerate(sessions):
        outer_train = np.flatnonzero(groups != label)
        pred = np.empty((lambdas.size, outer_train.size))
        for other in sessions:
            if other == label:
                continue
            train = np.flatnonzero((groups != label) & (groups != other))
            held = np.flatnonzero(groups == other)
            pred[:, np.isin(outer_train, held)] = fit_predict_gram(K, K, y, train, held, lambdas)[0]
        icv_r[:, k] = _pooled_r(pred, y[outer_train])
    return icv_r


def _shared_inner(K: np.ndarray, y: np.ndarray, groups: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """The same paths from ``nested_loso``'s shared scheme (its inner stage only)."""
    from deipp_core.model._cv import _inner_predictions, _pooled_r

    sessions = np.unique(groups)
    codes = np.searchsorted(sessions, groups)
    inner, _ = _inner_predictions(K, y, codes, lambdas, n_jobs=1)
    return np.column_stack([_pooled_r(inner[k], y[codes != k]) for k in range(sessions.size)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=30, help="S (default 30, as participant 1)")
    parser.add_argument("--parcels", type=int, default=300, help="P (default 300: E = 44,850 edges)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from deipp_core.model._cv import _centred_grams
    from deipp_core.model._gram import _decompose
    from deipp_core.model._lassopcr import _grid_from_strength
    from deipp_core.model._synthetic import make_session_data

    d = make_session_data(args.sessions, args.parcels, seed=args.seed)
    X, y, groups = d["X"], d["y"], d["groups"]
    S = np.unique(groups).size
    with threadpool_limits(limits=1):
        K, _ = _centred_grams(X, None)
        lambdas, _ = _grid_from_strength(_decompose(K, y).strength, y.size)
        times: dict[str, list[float]] = {"per-fold": [], "shared": []}
        paths = {}
        for _ in range(args.repeats):
            for name, fn in (("per-fold", _per_fold_inner), ("shared", _shared_inner)):
                t0 = time.perf_counter()
                paths[name] = fn(K, y, groups, lambdas)
                times[name].append(time.perf_counter() - t0)

    diff = float(np.nanmax(np.abs(paths["per-fold"] - paths["shared"])))
    med = {name: float(np.median(t)) for name, t in times.items()}
    print(f"S = {S} sessions, N = {y.size} rows, E = {X.shape[1]} edges; one BLAS thread; "
          f"{args.repeats} alternating rounds")
    print(f"{'scheme':<10} {'inner fits':>10} {'median s':>9}   all rounds (s)")
    for name, n_fits in (("per-fold", S * (S - 1)), ("shared", S * (S - 1) // 2)):
        rounds = " ".join(f"{t:.1f}" for t in times[name])
        print(f"{name:<10} {n_fits:>10} {med[name]:>9.1f}   {rounds}")
    print(f"per-fold / shared = {med['per-fold'] / med['shared']:.2f} "
          f"(fit-count ratio {2.0:.2f}); max |Δ inner r| = {diff:.1e}")


if __name__ == "__main__":
    main()
