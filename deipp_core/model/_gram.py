"""Gram-matrix kernels of the DEIPP decoder (``deipp_methods.md`` §9.2, §9.4 "Efficient Python form").

Every quantity the LASSO-PCR decoder needs lives in the span of the training rows, so a fit on any
subset of rows needs only the Gram matrix ``K = X Xᵀ`` of all rows (computed once), and a prediction
for any new row needs only its cross-products with the training rows.

Maintenance note on the duality (primal PCA ↔ Gram eigendecomposition)
----------------------------------------------------------------------
Let ``X`` be the ``n × E`` training rows, ``m`` their column mean, ``Xc = X − 1 mᵀ`` and
``H = I − 11ᵀ/n`` the centring matrix, so ``Xc = H X`` and the centred Gram matrix is
``Kc = H K H = Xc Xcᵀ``. With the economy SVD ``Xc = V S Uᵀ``:

* ``Kc = V S² Vᵀ``: the eigenvectors of ``Kc`` are the *left* singular vectors ``V`` (``n × q``) and its
  eigenvalues the squared singular values. We clamp eigenvalues that are negative by round-off to zero,
  sort them in descending order and fix signs so that the largest-magnitude entry of every ``V_j`` is
  positive (as ``sklearn.utils.extmath.svd_flip``); signs do not change any prediction or weight.
* The principal axes (MATLAB ``U``, ``E × q``) are ``U = Xcᵀ V S⁻¹``; they are never formed.
* The centred PC scores of the training rows are ``Xc U = V S``. They are mutually orthogonal, which is
  why the standardised LASSO over them is soft-thresholding (§9.2): with ``yc = y − ȳ`` the quantity
  MATLAB ``lasso`` thresholds is ``|corr(Z_j, y)|·σ_y = |V_jᵀ yc| / √n`` and the OLS refit slope of
  component ``j`` is ``b_j = V_jᵀ yc / s_j``.
* For any row ``x`` (training or new), ``(x − m)·U_j = kc(x)·V_j / s_j`` with the centred cross-kernel
  ``kc(x) = k(x) − mean(k(x)) − mean_rows(K) + mean(K)`` and ``k(x) = x Xᵀ`` (as in
  ``sklearn.preprocessing.KernelCenterer.transform``). Hence a fitted model predicts
  ``ŷ(x) = ȳ + kc(x)·a`` with the dual coefficients ``a = Σ_{j selected} V_j (V_jᵀ yc) / s_j²``,
  and its edge weights and intercept are ``w = Xcᵀ a = Xᵀ (a − mean(a))`` and ``b0 = ȳ − m·w``.
* Implicit eigenvectors: no quantity of a fit needs ``V`` itself, only products with it (``Vᵀ yc``,
  ``kc·V`` and ``V w``). LAPACK's ``syevd`` is three steps: a Householder reduction ``Kc = Q T Qᵀ``
  to tridiagonal form (``sytrd``), the eigenvectors ``Z`` of ``T`` (divide and conquer, ``stedc``),
  and the back-transformation ``V = Q Z`` (``ormtr``, about a third of the time at n ≈ 850). We run
  the first two steps (``sytrd`` + ``stevd``) and apply ``Q`` to the few vectors that need it from
  its reflectors (``ormqr``, as ``ormtr`` does). The eigenvalues are bit for bit those of
  ``scipy.linalg.eigh(driver="evd")`` (the same LAPACK steps), and every prediction and weight
  equals the one from an explicit ``V`` up to round-off (≈1e-15 relative; tested). Component signs
  are whatever LAPACK returns: they cancel in every prediction and weight.
* Precision: eigenvalues of ``Kc`` carry an absolute error of about ``n·eps·s_1²``, so components with
  ``s_j² < _RTOL·s_1²`` cannot be told from the null space of the centring and are dropped (see
  :data:`_RTOL`). For full-rank data this only removes the null component MATLAB also drops (the
  ``n``-th); it matters for rank-deficient rows (duplicated rows, fewer features than rows, …), where
  MATLAB would hand numerically-zero, arbitrary directions to the LASSO.

The functions here trust their inputs (no validation): they are the hot loop of the nested CV and of
the training-size analysis. Public entry points validate once at the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

__all__ = ["fit_predict_gram"]

#: Relative eigenvalue tolerance: component ``j`` is kept iff ``s_j² > _RTOL · s_1²``. Round-off in the
#: eigenvalues of an ``n × n`` Gram block is ``O(n·eps)·s_1²`` (≈ 2e-13 at n = 900), so 1e-10 separates
#: numerical null directions from real ones with a margin of ~500; real components of binned
#: co-fluctuation features are many orders of magnitude above it. Both solvers use the same rule.
_RTOL = 1e-10

#: MATLAB ``eps``, added to every λ of the grid (§9.3).
MATLAB_EPS = float(np.finfo(np.float64).eps)

#: Block size assumed for the LAPACK ``ormqr`` workspace (LAPACK's ``NBMAX``; its default block is 32).
_ORMQR_BLOCK = 64

#: Up to this many vectors, ``Q`` is applied reflector by reflector (minimal workspace: faster there).
_ORMQR_UNBLOCKED = 4


@dataclass
class _Decomposition:
    """Centred PCA of a set of training rows, in Gram (dual) form, with implicit eigenvectors.

    The eigenvectors ``V = Q Z`` of the centred Gram block are never formed: ``Q`` is kept as the
    Householder reflectors of the tridiagonal reduction and ``Z`` as the kept eigenvectors of the
    tridiagonal matrix. Use :meth:`project` for ``K_new V`` and :meth:`combine` for ``V w``.

    Attributes
    ----------
    reflectors : ndarray of shape (n − 1, n − 1), Fortran order
        The block ``A[1:, :-1]`` of LAPACK ``sytrd``'s output (``uplo="L"``): the Householder
        vectors of ``Q = diag(1, Q′)`` below its diagonal, in the layout ``ormqr`` expects.
    tau : ndarray of shape (n − 1,)
        Scalar factors of the reflectors.
    Z : ndarray of shape (n, q)
        Eigenvectors of the tridiagonal matrix, in the order of ``s``.
    s : ndarray of shape (q,)
        Singular values (square roots of the eigenvalues), descending, all above tolerance.
    c : ndarray of shape (q,)
        ``V_jᵀ (y − ȳ)``: covariance of each score with y, up to the factor ``s_j / n``.
    strength : ndarray of shape (q,)
        ``|corr(score_j, y)| · σ_y(ddof=0) = |c_j| / √n``; component ``j`` enters the LASSO iff
        ``strength_j > λ``.
    order : ndarray of shape (q,)
        Component indices by decreasing ``strength`` (stable), the order of entry into the path.
    y_mean : float
        Mean of the training ``y``.
    col_mean : ndarray of shape (n,)
        Row means of the training Gram block (needed to centre cross-kernels).
    grand_mean : float
        Mean of the training Gram block.
    """

    reflectors: np.ndarray
    tau: np.ndarray
    Z: np.ndarray
    s: np.ndarray
    c: np.ndarray
    strength: np.ndarray
    order: np.ndarray
    y_mean: float
    col_mean: np.ndarray
    grand_mean: float

    def _apply_q(self, A: np.ndarray, side: str, trans: str) -> np.ndarray:
        """``Q A`` / ``Qᵀ A`` (side ``"L"``) or ``A Q`` (side ``"R"``) for a 2-D ``A``; a new array."""
        out = np.array(A, dtype=float, order="F", copy=True)
        if self.tau.size == 0 or out.size == 0:
            return out
        sub = out[1:, :] if side == "L" else out[:, 1:]  # Q = diag(1, Q'), Q' from the n − 1 reflectors
        nw = sub.shape[1] if side == "L" else sub.shape[0]
        # a workspace with room for the block reflector T makes ormqr use its blocked (BLAS-3) code,
        # 4–6× faster on a 30-row block; one or a few vectors are faster reflector by reflector
        lwork = nw if nw <= _ORMQR_UNBLOCKED else nw * _ORMQR_BLOCK + (_ORMQR_BLOCK + 1) * _ORMQR_BLOCK
        res, _, info = scipy.linalg.lapack.dormqr(
            side.encode(), trans.encode(), self.reflectors, self.tau,
            np.asfortranarray(sub), lwork,
        )
        if info != 0:  # pragma: no cover - LAPACK argument error, a bug here
            raise RuntimeError(f"LAPACK dormqr failed (info={info})")
        sub[...] = res
        return out

    def project(self, K_new: np.ndarray) -> np.ndarray:
        """``K_new @ V`` (shape ``(m, q)``) for centred cross-products ``K_new`` of shape ``(m, n)``."""
        return self._apply_q(np.atleast_2d(K_new), "R", "N") @ self.Z

    def combine(self, w: np.ndarray) -> np.ndarray:
        """``V @ w`` (shape ``(n,)``) for component weights ``w`` of shape ``(q,)``."""
        return self._apply_q((self.Z @ w)[:, None], "L", "N")[:, 0]

    def components(self) -> np.ndarray:
        """The eigenvectors ``V`` (n × q) themselves, formed on request (for checks and teaching)."""
        return self._apply_q(self.Z, "L", "N")


def _centre_gram(K: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Return ``H K H`` for a symmetric block, with its row means and grand mean."""
    col_mean = K.mean(axis=0)
    grand_mean = float(col_mean.mean())
    Kc = K - col_mean[:, None] - col_mean[None, :] + grand_mean
    return Kc, col_mean, grand_mean


def _tridiagonal_eigh(Kc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Eigendecomposition of a centred Gram block with ``Q`` left implicit, null space removed.

    Returns ``(reflectors, tau, Z, s)`` with ``V = Q Z`` (see :class:`_Decomposition`), ``s``
    descending. At most ``n − 1`` components are returned (centring costs one rank: MATLAB never
    passes the ``n``-th component to the LASSO), and only those with ``s_j² > _RTOL · s_1²``.
    """
    n = Kc.shape[0]
    if n < 2:
        return np.zeros((0, 0), order="F"), np.zeros(0), np.zeros((n, 0)), np.zeros(0)
    lwork = int(scipy.linalg.lapack.dsytrd_lwork(n, lower=1)[0])
    # LAPACK sytrd + stevd: the first two steps of syevd (divide and conquer), the fastest full
    # symmetric eigensolver here; its third step (V = Q Z) is left out, see the module note
    reflectors, d, e, tau, info = scipy.linalg.lapack.dsytrd(
        np.asfortranarray(Kc), lower=1, lwork=lwork, overwrite_a=1
    )
    if info == 0:
        evals, Z, info = scipy.linalg.lapack.dstevd(d, e, compute_v=1, overwrite_d=1, overwrite_e=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"the eigendecomposition of a Gram block did not converge (info={info})")
    evals = evals[::-1]
    np.maximum(evals, 0.0, out=evals)  # clamp round-off negatives (kernel PCA does the same)
    top = evals[0]
    keep = min(n - 1, int(np.count_nonzero(evals > _RTOL * top))) if top > 0 else 0
    Z = np.ascontiguousarray(Z[:, ::-1][:, :keep])
    return np.asfortranarray(reflectors[1:, :-1]), tau, Z, np.sqrt(evals[:keep])


def _flip_signs(V: np.ndarray, *others: np.ndarray) -> None:
    """In place: make the largest-|.| entry of each column of ``V`` positive (``svd_flip`` convention).

    ``others`` are flipped column-wise with ``V`` (e.g. the right singular vectors of an SVD).
    """
    if V.shape[1] == 0:
        return
    idx = np.argmax(np.abs(V), axis=0)
    signs = np.sign(V[idx, np.arange(V.shape[1])])
    signs[signs == 0] = 1.0
    V *= signs
    for arr in others:
        arr *= signs


def _component_stats(V: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``c = Vᵀ yc``, ``strength = |c|/√n``, entry order and ``ȳ`` for unit, zero-mean ``V``."""
    y_mean = float(y.mean())
    return (*_stats_from_c(V.T @ (y - y_mean), y.shape[0]), y_mean)


def _stats_from_c(c: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``c``, ``strength = |c|/√n`` and the entry order (decreasing strength, stable)."""
    strength = np.abs(c) / np.sqrt(n)
    return c, strength, np.argsort(-strength, kind="stable")


def _decompose(K_train: np.ndarray, y: np.ndarray) -> _Decomposition:
    """Centred PCA (dual form) and component/y statistics of one training set."""
    Kc, col_mean, grand_mean = _centre_gram(K_train)
    reflectors, tau, Z, s = _tridiagonal_eigh(Kc)
    y_mean = float(y.mean())
    dec = _Decomposition(reflectors, tau, Z, s, np.zeros(0), np.zeros(0), np.zeros(0, dtype=int),
                         y_mean, col_mean, grand_mean)
    qty = dec._apply_q((y - y_mean)[:, None], "L", "T")[:, 0]  # Qᵀ yc, so that c = Zᵀ Qᵀ yc = Vᵀ yc
    dec.c, dec.strength, dec.order = _stats_from_c(Z.T @ qty, y.shape[0])
    return dec


def _centre_cross(K_new: np.ndarray, dec: _Decomposition) -> np.ndarray:
    """Centre cross-products ``K_new = X_new X_trainᵀ`` against the training rows."""
    return K_new - K_new.mean(axis=1, keepdims=True) - dec.col_mean[None, :] + dec.grand_mean


def _n_selected(dec: _Decomposition, lambdas: np.ndarray) -> np.ndarray:
    """Number of components with ``strength > λ`` for every λ (LASSO support size, §9.2)."""
    sorted_strength = dec.strength[dec.order]  # descending
    # count of strictly-greater values in a descending array = len − (#values ≤ λ)
    return np.searchsorted(-sorted_strength, -np.asarray(lambdas, dtype=float), side="left")


def _path_predictions(dec: _Decomposition, Kc_new: np.ndarray, n_sel: np.ndarray) -> np.ndarray:
    """Predictions of new rows for supports made of the ``n_sel[i]`` strongest components.

    Returns an array of shape ``(len(n_sel), n_new)``. Uses cumulative sums of the per-component
    contributions ``(kc·V_j) c_j / s_j²`` ordered by decreasing strength, so every grid point costs
    one lookup.
    """
    order = dec.order
    contrib = dec.project(Kc_new)[:, order] * (dec.c[order] / dec.s[order] ** 2)
    cum = np.zeros((Kc_new.shape[0], order.size + 1))
    np.cumsum(contrib, axis=1, out=cum[:, 1:])
    return dec.y_mean + cum[:, n_sel].T


def _dual_coef(dec: _Decomposition, n_sel: int) -> np.ndarray:
    """Dual coefficients ``a`` (length n) of the model made of the ``n_sel`` strongest components."""
    sel = dec.order[:n_sel]
    w = np.zeros(dec.s.size)
    w[sel] = dec.c[sel] / dec.s[sel] ** 2
    return dec.combine(w)


def _primal_from_dual(
    X_train: np.ndarray, y_mean: float, dual: np.ndarray
) -> tuple[np.ndarray, float]:
    """Edge weights ``w = Xcᵀ a`` and intercept ``b0 = ȳ − m·w`` from dual coefficients."""
    a = dual - dual.mean()  # = H a; exact in exact arithmetic (a ⟂ 1), removes round-off drift
    w = X_train.T @ a
    b0 = y_mean - float(X_train.mean(axis=0) @ w)
    return w, b0


def fit_predict_gram(
    K: np.ndarray,
    K_eval: np.ndarray,
    y: np.ndarray,
    train_idx: np.ndarray,
    eval_idx: np.ndarray | None,
    lambdas: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit LASSO-PCR on a subset of rows and predict other rows for every λ, from Gram blocks only.

    This is the low-level kernel of :func:`~deipp_core.model.nested_loso`, exposed for analyses that
    need many fits on row subsets, e.g. the training-size analysis (``deipp_methods.md`` §10.7: one
    λ per fit, held-out session predicted from its cross-products with the training rows). It does
    not validate its inputs.

    Parameters
    ----------
    K : ndarray of shape (N, N)
        Gram matrix ``X Xᵀ`` of all candidate training rows (any common translation of the rows,
        e.g. subtracting a global column mean first, leaves the results unchanged and improves
        round-off).
    K_eval : ndarray of shape (M, N)
        Cross-products ``X_eval Xᵀ`` of the rows to predict with the same ``N`` rows (translated the
        same way as ``K``). To predict held-out rows of ``X`` itself, pass ``K``.
    y : ndarray of shape (N,)
        Targets of the ``N`` rows.
    train_idx : ndarray of int
        Indices (into ``N``) of the training rows.
    eval_idx : ndarray of int or None
        Indices (into ``M``) of the rows of ``K_eval`` to predict; ``None`` predicts all ``M``.
    lambdas : array-like of shape (n_lambdas,)
        MATLAB-scale λ values (§9.3); component ``j`` is selected iff ``|r_j|·σ_y > λ``.

    Returns
    -------
    y_pred : ndarray of shape (n_lambdas, n_eval)
        Predictions for every λ. Where no component is selected the prediction is the training mean.
    n_selected : ndarray of shape (n_lambdas,)
        Number of components selected at each λ.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 200)); y = X[:, 0] + 0.1 * rng.standard_normal(40)
    >>> K = X @ X.T
    >>> pred, n_sel = fit_predict_gram(K, K, y, np.arange(30), np.arange(30, 40), [0.0, 0.5])
    >>> pred.shape, n_sel.tolist()
    ((2, 10), [29, 0])
    """
    train_idx = np.asarray(train_idx)
    lambdas = np.atleast_1d(np.asarray(lambdas, dtype=float))
    dec = _decompose(K[np.ix_(train_idx, train_idx)], y[train_idx])
    K_new = K_eval[:, train_idx] if eval_idx is None else K_eval[np.ix_(eval_idx, train_idx)]
    n_sel = _n_selected(dec, lambdas)
    return _path_predictions(dec, _centre_cross(K_new, dec), n_sel), n_sel
