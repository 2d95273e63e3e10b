"""Benchmark: LASSO-PCR fits with implicit eigenvectors (``sytrd`` + ``stevd``, ``Q`` applied from its
reflectors), side by side with the explicit eigenvectors of ``scipy.linalg.eigh(driver="evd")``.

Every fit of the nested LOSO, the training-size analysis and the permutation tests is one
eigendecomposition of a centred Gram block followed by products with its eigenvectors ``V``
(``Vᵀ yc``, ``kc·V``). :func:`deipp_core.model._gram._decompose` never forms ``V = Q Z``: it runs the
first two LAPACK steps of ``syevd`` and applies ``Q`` to the few vectors that need it. The explicit
scheme here is the previous implementation (``syevd`` with eigenvectors, then the same products).

Both schemes fit the same training sets — the first ``m`` sessions of a paper-scale participant, for
every ``m`` in ``--sizes`` — and predict one held-out session at one λ, as a training-size fit does.
They run in the same process, alternately (``--repeats`` rounds, A B A B …), with one BLAS thread.
The output gives, per size, the median time of each, their ratio and the largest difference of the
predictions.

Run ``python benchmarks/bench_eigensolver.py --help``; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _explicit_fit_predict(K_train: np.ndarray, y: np.ndarray, K_new: np.ndarray, lam: float) -> np.ndarray:
    """The previous kernel: explicit ``V`` from ``syevd``, then the prediction at one λ."""
    import scipy.linalg

    from deipp_core.model._gram import _RTOL, _centre_gram

    Kc, col_mean, grand_mean = _centre_gram(K_train)
    n = Kc.shape[0]
    evals, evecs = scipy.linalg.eigh(Kc, driver="evd", overwrite_a=True, check_finite=False)
    evals, evecs = np.maximum(evals[::-1], 0.0), evecs[:, ::-1]
    keep = min(n - 1, int(np.count_nonzero(evals > _RTOL * evals[0])))
    V, s2 = evecs[:, :keep], evals[:keep]
    y_mean = float(y.mean())
    c = V.T @ (y - y_mean)
    selected = np.abs(c) / np.sqrt(n) > lam
    kc = K_new - K_new.mean(axis=1, keepdims=True) - col_mean[None, :] + grand_mean
    return y_mean + (kc @ V[:, selected]) @ (c[selected] / s2[selected])


def _implicit_fit_predict(K_train: np.ndarray, y: np.ndarray, K_new: np.ndarray, lam: float) -> np.ndarray:
    """The package kernel (implicit ``V``)."""
    from deipp_core.model._gram import _centre_cross, _decompose, _n_selected, _path_predictions

    dec = _decompose(K_train, y)
    n_sel = _n_selected(dec, np.array([lam]))
    return _path_predictions(dec, _centre_cross(K_new, dec), n_sel)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=30, help="S (default 30, as participant 2)")
    parser.add_argument("--parcels", type=int, default=300, help="P (default 300: E = 44,850 edges)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20, 28],
                        help="training sessions m of the fits (default 5 10 20 28)")
    parser.add_argument("--fits", type=int, default=10, help="fits per size and round (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from deipp_core.model._cv import _centred_grams
    from deipp_core.model._gram import _decompose
    from deipp_core.model._synthetic import make_session_data

    d = make_session_data(args.sessions, args.parcels, seed=args.seed)
    X, y, groups = d["X"], d["y"], d["groups"]
    sessions = np.unique(groups)
    schemes = {"explicit V": _explicit_fit_predict, "implicit V": _implicit_fit_predict}
    print(f"S = {sessions.size} sessions, {y.size} rows, E = {X.shape[1]} edges; one BLAS thread; "
          f"{args.fits} fits per size, {args.repeats} alternating rounds")
    print(f"{'m':>3} {'n rows':>7} {'explicit s':>11} {'implicit s':>11} {'ratio':>6} {'max |Δ pred|':>13}")
    with threadpool_limits(limits=1):
        K, _ = _centred_grams(X, None)
        held = np.flatnonzero(groups == sessions[-1])
        for m in args.sizes:
            train = np.flatnonzero(np.isin(groups, sessions[:m]))
            K_train, K_new, y_train = K[np.ix_(train, train)], K[np.ix_(held, train)], y[train]
            strength = np.sort(_decompose(K_train, y_train).strength)[::-1]
            half = strength.size // 2  # λ halfway between two strengths: half the components, no tie
            lam = float(strength[half - 1] + strength[half]) / 2
            times: dict[str, list[float]] = {name: [] for name in schemes}
            preds = {}
            for _ in range(args.repeats):
                for name, fn in schemes.items():
                    t0 = time.perf_counter()
                    for _ in range(args.fits):
                        preds[name] = fn(K_train, y_train, K_new, lam)
                    times[name].append(time.perf_counter() - t0)
            med = {name: float(np.median(t)) for name, t in times.items()}
            diff = float(np.max(np.abs(preds["explicit V"] - preds["implicit V"])))
            print(f"{m:>3} {train.size:>7} {med['explicit V']:>11.2f} {med['implicit V']:>11.2f} "
                  f"{med['explicit V'] / med['implicit V']:>6.2f} {diff:>13.1e}")


if __name__ == "__main__":
    main()
