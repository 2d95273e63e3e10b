"""Small synthetic session data for testing and benchmarking the decoder (arrays only).

This is not the digital twin (:mod:`deipp_core.data`): it makes just enough structure for the model
code: per run, random frames of ``P`` parcels whose coupling within a planted module grows with a
latent rating, z-scored per parcel over the run; rows are bin means of the edge co-fluctuations in the
original edge order (MATLAB column-major upper triangle, ``deipp_methods.md`` §8).
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_session_data"]


def make_session_data(
    n_sessions: int = 6,
    n_parcels: int = 30,
    *,
    n_runs: int = 3,
    n_bins: int = 10,
    frames_per_bin: int = 20,
    module_size: int | None = None,
    coupling: float = 2.0,
    seed: int = 0,
) -> dict:
    """Make binned edge co-fluctuation rows with a planted linear rating signal.

    Parameters
    ----------
    n_sessions, n_parcels : int
        Sessions ``S`` and parcels ``P`` (``E = P(P−1)/2`` edges).
    n_runs, n_bins : int
        Runs per session and bins per run: ``N = S·n_runs·n_bins`` training rows.
    frames_per_bin : int
        Frames averaged into one bin.
    module_size : int, optional
        Parcels whose mutual coupling follows the rating (default ``max(4, P // 4)``).
    coupling : float
        Strength of the planted coupling at rating 1.
    seed : int
        Seed of the ``numpy.random.Generator``.

    Returns
    -------
    data : dict
        ``X`` (N, E) rating-bin rows, ``y`` (N,), ``groups`` (N,) session labels 1…S; ``X_eval``,
        ``y_eval``, ``groups_eval``: one extra "time-bin" row per bin from other frames of the same
        runs; ``edges`` (E, 2) parcel pairs ``(i, j)``, ``i < j``; ``planted`` (E,) bool mask of the
        edges inside the module.
    """
    rng = np.random.default_rng(seed)
    P = n_parcels
    module = np.arange(module_size if module_size is not None else max(4, P // 4))
    j_idx, i_idx = np.tril_indices(P, -1)  # (i, j), i < j, ordered by j then i (MATLAB order)
    planted = np.isin(i_idx, module) & np.isin(j_idx, module)

    X, y, groups, X_eval, y_eval, groups_eval = [], [], [], [], [], []
    for sess in range(1, n_sessions + 1):
        level = rng.uniform(0.2, 0.8)
        for _ in range(n_runs):
            ratings = np.clip(level + 0.15 * rng.standard_normal(n_bins), 0.0, 1.0)
            frames = []
            for rating in np.concatenate([ratings, ratings]):  # training bins, then eval bins
                f = rng.standard_normal((frames_per_bin, P))
                shared = rng.standard_normal((frames_per_bin, 1))
                f[:, module] += np.sqrt(coupling * rating) * shared
                frames.append(f)
            z = np.concatenate(frames)
            z = (z - z.mean(axis=0)) / z.std(axis=0, ddof=1)  # z-score per run (MATLAB zscore)
            for b, block in enumerate(np.split(z, 2 * n_bins)):
                row = (block[:, i_idx] * block[:, j_idx]).mean(axis=0)
                if b < n_bins:
                    X.append(row), y.append(ratings[b]), groups.append(sess)
                else:
                    X_eval.append(row), y_eval.append(ratings[b - n_bins]), groups_eval.append(sess)
    return {
        "X": np.asarray(X),
        "y": np.asarray(y),
        "groups": np.asarray(groups),
        "X_eval": np.asarray(X_eval),
        "y_eval": np.asarray(y_eval),
        "groups_eval": np.asarray(groups_eval),
        "edges": np.column_stack([i_idx, j_idx]),
        "planted": planted,
    }
