"""Cosine similarity on plain arrays."""

from __future__ import annotations

import numpy as np

from cnnvis_gl.analysis import cosine_similarity, row_normalize


def test_cosine_matches_definition() -> None:
    rng = np.random.default_rng(0)
    A = rng.normal(size=(20, 7))
    S = cosine_similarity(A)
    norms = np.linalg.norm(A, axis=1)
    assert np.allclose(S, (A @ A.T) / np.outer(norms, norms))
    assert np.array_equal(S, S.T)
    assert np.allclose(np.diag(S), 1.0)


def test_zero_rows_and_scale_invariance() -> None:
    A = np.array([[1.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    S = cosine_similarity(A)
    assert S[0, 2] == 1.0 and S[1].tolist() == [0.0, 0.0, 0.0]
    assert np.allclose(np.linalg.norm(row_normalize(A), axis=1), [1, 0, 1])
    assert cosine_similarity(np.zeros((0, 3))).shape == (0, 0)
