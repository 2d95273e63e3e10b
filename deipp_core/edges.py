"""Edge co-fluctuations: per-run z-scores, the MATLAB edge order, bin means and frame-wise algebra.

The DEIPP features (methods spec ``reference/deipp_methods.md`` §8) are *edge co-fluctuations*: with
``z_i(t)`` the z-scored time series of parcel ``i`` over the kept frames of a run,
``e_ij(t) = z_i(t)·z_j(t)`` for every pair ``i < j``. A feature row is the mean of ``e(t)`` over the
frames of a bin.

Edge order
    Pairs are listed in MATLAB's **column-major upper-triangle** order, (0,1), (0,2), (1,2), (0,3),
    (1,3), (2,3), … (0-based), the order of the original ``refmt_r`` and of every saved weight vector.
    It equals nilearn's ``sym_matrix_to_vec(..., discard_diagonal=True)`` and differs from numpy's
    row-major ``triu_indices`` (:func:`edge_order_permutation` converts).

Never building T × E
    ``mean_t e(t)`` over a set of frames is the upper triangle of ``ZᵀZ / n`` (:func:`binned_edges`),
    ``e(t)·w = ½ z(t)ᵀ W z(t)`` with ``W`` the symmetric zero-diagonal matrix of ``w``
    (:func:`predict_frames`) and ``e(t)·e(s) = ½[(z(t)·z(s))² − Σ_i z_i(t)² z_i(s)²]``
    (:func:`edge_gram`). :func:`edge_timeseries` builds ``e(t)`` explicitly, as the reference
    implementation the fast paths are tested against.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from deipp_core.exceptions import AllFramesCensoredError, DataFormatError, ParameterError

__all__ = [
    "edge_indices",
    "edge_order_permutation",
    "n_edges",
    "zscore",
    "edge_timeseries",
    "binned_edges",
    "mean_edges",
    "vec_to_sym",
    "sym_to_vec",
    "predict_frames",
    "edge_gram",
]


def _check_n_parcels(n_parcels) -> int:
    if isinstance(n_parcels, bool) or not isinstance(n_parcels, Integral) or n_parcels < 0:
        raise ParameterError(f"n_parcels must be an integer >= 0; got {n_parcels!r}")
    return int(n_parcels)


def n_edges(n_parcels: int) -> int:
    """Number of edges ``P(P−1)/2`` between ``n_parcels`` parcels."""
    p = _check_n_parcels(n_parcels)
    return p * (p - 1) // 2


def edge_indices(n_parcels: int) -> tuple[np.ndarray, np.ndarray]:
    """Parcel pairs ``(i, j)``, ``i < j``, in MATLAB column-major upper-triangle order.

    Parameters
    ----------
    n_parcels : int
        Number of parcels ``P``.

    Returns
    -------
    i, j : ndarray of int64, shape (P(P−1)/2,)
        Row and column of each edge; ordered by ``j``, then ``i`` (methods §8.5, §16.1).

    Examples
    --------
    >>> i, j = edge_indices(4)
    >>> list(zip(i.tolist(), j.tolist()))
    [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    """
    p = _check_n_parcels(n_parcels)
    j, i = np.tril_indices(p, -1)  # row-major lower triangle = column-major upper triangle
    return i.astype(np.int64), j.astype(np.int64)


def edge_order_permutation(n_parcels: int, *, inverse: bool = False) -> np.ndarray:
    """Index array converting edge vectors between our order and numpy's ``triu_indices`` order.

    Parameters
    ----------
    n_parcels : int
        Number of parcels ``P``.
    inverse : bool, default=False
        ``False``: return ``perm`` with ``w_triu = w_ours[perm]`` (ours → numpy row-major
        ``np.triu_indices(P, 1)`` order). ``True``: return ``inv`` with ``w_ours = w_triu[inv]``
        (numpy → ours). The two are inverse permutations of each other.

    Returns
    -------
    ndarray of int64, shape (P(P−1)/2,)

    Examples
    --------
    >>> edge_order_permutation(4)  # triu order (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    array([0, 1, 3, 2, 4, 5])
    """
    p = _check_n_parcels(n_parcels)
    i, j = edge_indices(p)
    # position of each pair in numpy's row-major triu order
    triu_pos = i * p - i * (i + 1) // 2 + (j - i - 1)
    if inverse:
        return triu_pos.astype(np.int64)
    perm = np.empty_like(triu_pos)
    perm[triu_pos] = np.arange(triu_pos.size)
    return perm.astype(np.int64)


def zscore(ts: np.ndarray) -> np.ndarray:
    """Z-score each column like MATLAB ``zscore``: sample SD (ddof = 1), a constant column becomes 0.

    Parameters
    ----------
    ts : array-like of shape (n_frames, n_parcels)

    Returns
    -------
    ndarray of float64, same shape

    Notes
    -----
    MATLAB divides by 1 where the SD is exactly 0. A column whose values are all equal is set to 0
    here directly, so that rounding in the mean cannot leave tiny non-zero residues (MATLAB's own
    summation order can differ from numpy's; the intent, a constant series → 0, is what is kept).

    Examples
    --------
    >>> zscore([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    array([[-1.,  0.],
           [ 0.,  0.],
           [ 1.,  0.]])
    """
    x = np.asarray(ts, dtype=float)
    if x.ndim != 2:
        raise DataFormatError(f"zscore expects a (frames, parcels) array; got shape {x.shape}")
    if x.shape[0] < 2:
        raise AllFramesCensoredError(
            f"z-scoring needs at least 2 frames (sample SD); got {x.shape[0]}"
        )
    mu = x.mean(axis=0)
    sd = x.std(axis=0, ddof=1)
    constant = (x == x[0]).all(axis=0)
    sd = np.where(constant | (sd == 0), 1.0, sd)
    z = (x - mu) / sd
    z[:, constant] = 0.0
    return z


def edge_timeseries(z: np.ndarray) -> np.ndarray:
    """Explicit edge time series ``e_ij(t) = z_i(t)·z_j(t)`` (reference implementation; small data).

    Parameters
    ----------
    z : array-like of shape (n_frames, n_parcels)
        Z-scored parcel time series.

    Returns
    -------
    ndarray of shape (n_frames, P(P−1)/2)
        Columns in :func:`edge_indices` order. Memory grows as ``T·P²/2``: use
        :func:`binned_edges`, :func:`predict_frames` or :func:`edge_gram` for real data.
    """
    z = _as_2d(z)
    i, j = edge_indices(z.shape[1])
    return z[:, i] * z[:, j]


def binned_edges(z: np.ndarray, labels: np.ndarray, n_bins: int) -> np.ndarray:
    """Mean edge co-fluctuation over the frames of each bin, without building ``e(t)``.

    For bin ``b`` with frames ``Z_b`` (``n_b × P``) the mean of ``e(t)`` is the upper triangle of
    ``Z_bᵀ Z_b / n_b`` in :func:`edge_indices` order (methods §8.6).

    Parameters
    ----------
    z : array-like of shape (n_frames, n_parcels)
        Z-scored parcel time series of one run.
    labels : array-like of shape (n_frames,)
        Bin labels 0…n_bins−1; frames labelled −1 belong to no bin.
    n_bins : int
        Number of bins.

    Returns
    -------
    ndarray of shape (n_bins, P(P−1)/2)

    Raises
    ------
    AllFramesCensoredError
        If a bin has no frame (the original's ``splitapply`` would stop with an error).
    """
    z = _as_2d(z)
    labels = np.asarray(labels)
    if labels.shape != (z.shape[0],):
        raise DataFormatError(
            f"labels (shape {labels.shape}) need one entry per frame of z (shape {z.shape})"
        )
    if isinstance(n_bins, bool) or not isinstance(n_bins, Integral) or n_bins < 1:
        raise ParameterError(f"n_bins must be an integer >= 1; got {n_bins!r}")
    flat = _triu_flat(z.shape[1])
    out = np.empty((int(n_bins), flat.size))
    for b in range(int(n_bins)):
        zb = z[labels == b]
        if zb.shape[0] == 0:
            raise AllFramesCensoredError(
                f"bin {b} (0-based) of {n_bins} has no frame; every bin needs at least one"
            )
        out[b] = (zb.T @ zb).ravel()[flat] / zb.shape[0]
    return out


def mean_edges(z: np.ndarray) -> np.ndarray:
    """Mean edge co-fluctuation over all frames, shape ``(P(P−1)/2,)`` (run or rest-run feature)."""
    z = _as_2d(z)
    if z.shape[0] == 0:
        raise AllFramesCensoredError("mean_edges needs at least one frame")
    return (z.T @ z).ravel()[_triu_flat(z.shape[1])] / z.shape[0]


def _triu_flat(n_parcels: int) -> np.ndarray:
    """Flat (row-major) indices into a P × P matrix of the edges, in :func:`edge_indices` order."""
    i, j = edge_indices(n_parcels)
    return i * n_parcels + j


def _n_parcels_from_edges(e: int) -> int:
    p = int(round((1 + np.sqrt(1 + 8 * e)) / 2))
    if p * (p - 1) // 2 != e:
        raise DataFormatError(f"{e} is not a number of edges P(P−1)/2 for any integer P")
    return p


def vec_to_sym(w: np.ndarray, n_parcels: int | None = None) -> np.ndarray:
    """Edge vector → symmetric matrix with a zero diagonal (MATLAB ``refmt_r``, vector → matrix).

    Parameters
    ----------
    w : array-like of shape (P(P−1)/2,)
        Edge values in :func:`edge_indices` order.
    n_parcels : int, optional
        ``P``; inferred from the length of ``w`` when omitted.

    Returns
    -------
    ndarray of shape (P, P)

    Examples
    --------
    >>> vec_to_sym([1.0, 2.0, 3.0])
    array([[0., 1., 2.],
           [1., 0., 3.],
           [2., 3., 0.]])
    """
    w = np.asarray(w, dtype=float)
    if w.ndim != 1:
        raise DataFormatError(f"an edge vector must be one-dimensional; got shape {w.shape}")
    p = _n_parcels_from_edges(w.size) if n_parcels is None else _check_n_parcels(n_parcels)
    if w.size != p * (p - 1) // 2:
        raise DataFormatError(
            f"an edge vector for {p} parcels has {p * (p - 1) // 2} entries; got {w.size}"
        )
    i, j = edge_indices(p)
    out = np.zeros((p, p))
    out[i, j] = w
    out[j, i] = w
    return out


def sym_to_vec(W: np.ndarray) -> np.ndarray:
    """Square matrix → edge vector: upper triangle without diagonal, column-major (``refmt_r``).

    Examples
    --------
    >>> sym_to_vec(vec_to_sym([1.0, 2.0, 3.0]))
    array([1., 2., 3.])
    """
    W = np.asarray(W, dtype=float)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise DataFormatError(f"sym_to_vec expects a square matrix; got shape {W.shape}")
    i, j = edge_indices(W.shape[0])
    return W[i, j]


def predict_frames(z: np.ndarray, w: np.ndarray, intercept: float = 0.0) -> np.ndarray:
    """Frame-wise prediction ``ŷ(t) = b0 + e(t)·w``, computed as ``b0 + ½ z(t)ᵀ W z(t)`` (§10.1).

    Parameters
    ----------
    z : array-like of shape (n_frames, n_parcels)
        Z-scored parcel time series.
    w : array-like of shape (P(P−1)/2,)
        Edge weights in :func:`edge_indices` order.
    intercept : float, default=0.0
        ``b0``.

    Returns
    -------
    ndarray of shape (n_frames,)
        Costs ``O(T·P²)`` time and ``O(P²)`` memory; never builds the ``T × E`` edge matrix.
    """
    z = _as_2d(z)
    W = vec_to_sym(w, z.shape[1])
    return float(intercept) + 0.5 * np.einsum("tp,tp->t", z @ W, z)


def edge_gram(z_a: np.ndarray, z_b: np.ndarray) -> np.ndarray:
    """Inner products of edge vectors of two sets of frames, without building them.

    ``e(t)·e(s) = ½[(z(t)·z(s))² − Σ_i z_i(t)² z_i(s)²]``.

    Parameters
    ----------
    z_a : array-like of shape (T_a, P)
    z_b : array-like of shape (T_b, P)

    Returns
    -------
    ndarray of shape (T_a, T_b)
    """
    z_a, z_b = _as_2d(z_a), _as_2d(z_b)
    if z_a.shape[1] != z_b.shape[1]:
        raise DataFormatError(
            f"both sets of frames need the same parcels; got {z_a.shape[1]} and {z_b.shape[1]}"
        )
    g = z_a @ z_b.T
    return 0.5 * (g * g - (z_a * z_a) @ (z_b * z_b).T)


def _as_2d(z) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    if z.ndim != 2:
        raise DataFormatError(f"expected a (frames, parcels) array; got shape {z.shape}")
    return z
