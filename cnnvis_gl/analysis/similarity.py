"""Cosine similarity of feature vectors, on the input's array backend (NumPy or CuPy)."""

from __future__ import annotations

from typing import Any

from cnnvis_gl.xp import get_xp

__all__ = ["row_normalize", "cosine_similarity"]

_EPS = 1e-12


def row_normalize(A: Any) -> Any:
    """Rows of ``A`` scaled to unit Euclidean norm (float64).

    Parameters
    ----------
    A : ndarray[n, c]
        NumPy or CuPy array; the result lives on the same backend.

    Returns
    -------
    ndarray[n, c]
        ``A[i] / ||A[i]||``; all-zero rows stay zero (they have no direction).
    """
    xp = get_xp(A)
    A = xp.asarray(A, dtype=xp.float64)
    if A.ndim != 2:
        raise ValueError(f"row_normalize expects a 2-D array, got shape {A.shape}")
    norms = xp.sqrt((A * A).sum(axis=1, keepdims=True))
    return A / xp.maximum(norms, _EPS)


def cosine_similarity(A: Any) -> Any:
    """Cosine similarity of the rows of ``A``.

    Parameters
    ----------
    A : ndarray[n, c]
        Feature vectors, one per row (NumPy or CuPy).

    Returns
    -------
    ndarray[n, n]
        Symmetric, in ``[-1, 1]``, on the input's backend.  A zero row has similarity 0 with
        every row, itself included.
    """
    X = row_normalize(A)
    xp = get_xp(X)
    S = X @ X.T
    S = 0.5 * (S + S.T)  # exact symmetry, whatever the BLAS did
    return xp.clip(S, -1.0, 1.0)
