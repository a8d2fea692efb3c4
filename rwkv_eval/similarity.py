"""Pairwise cosine similarity of sentence embeddings.

Computed in float64 on the host: the embeddings of two near-paraphrases differ in the
fourth decimal, and a Spearman correlation over hundreds of pairs is sensitive to ties
that float16 rounding would create.
"""

from __future__ import annotations

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity.

    Args:
        a, b: (N, D) arrays of the two sides of N pairs.

    Returns:
        (N,) float64 array in [-1, 1]. A pair in which either vector is zero (a sentence
        with no known token) scores 0.0: defined, counted, never NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"cosine expects two (N, D) arrays of one shape; got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("cosine received non-finite embeddings (NaN or inf): the encoder overflowed; try float32")
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    denom = na * nb
    dot = np.einsum("nd,nd->n", a, b)
    out = np.divide(dot, denom, out=np.zeros_like(dot), where=denom > 0)
    return np.clip(out, -1.0, 1.0)


def zero_vector_pairs(a: np.ndarray, b: np.ndarray) -> int:
    """How many pairs have a zero vector on either side (reported with every score)."""
    a = np.asarray(a)
    b = np.asarray(b)
    return int(np.sum(~a.any(axis=1) | ~b.any(axis=1)))
