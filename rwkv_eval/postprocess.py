"""Zero-shot post-processing of sentence vectors that targets anisotropy: a setting of the scorer.

Contextual sentence vectors crowd into a narrow cone (anisotropy: Ethayarajh 2019,
"How Contextual are Contextualized Word Representations?"; Li et al. 2020, BERT-flow),
which compresses cosine similarities. The standard label-free corrections, each fitted on
unlabelled sentences of ANOTHER split (the train split: `evaluation.score_sets` refuses
the evaluated split) and then applied to the evaluated vectors:

    none       the vectors as pooled
    center     x - mu
    abtt:K     all-but-the-top (Mu & Viswanath, ICLR 2018, arXiv:1702.01417): x - mu, minus
               its projection on the top K principal directions of the fitted vectors
    whiten     BERT-whitening (Su et al. 2021, arXiv:2103.15316, bojone/BERT-whitening):
               (x - mu) U diag(1 / sqrt(lambda)), U, lambda the eigenvectors / eigenvalues
               of the fitted covariance; directions with lambda <= WHITEN_RTOL * max(lambda)
               (no fitted variance, e.g. fewer sentences than dimensions) are dropped,
               since dividing by ~0 would only amplify noise

All fits run in float64 and return float32 vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("none", "center", "abtt", "whiten")
WHITEN_RTOL = 1e-8


@dataclass(frozen=True)
class PostProcess:
    kind: str = "none"
    k: int = 0  # abtt: principal directions removed

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown post-processing {self.kind!r}; choose from none, center, abtt:K, whiten")
        if (self.kind == "abtt") != (self.k > 0) or isinstance(self.k, bool) or not isinstance(self.k, int):
            raise ValueError(f"abtt takes K >= 1 principal directions to remove (abtt:K) and the others none; got "
                             f"{self.kind} with k={self.k!r}")

    @property
    def name(self) -> str:
        return f"abtt:{self.k}" if self.kind == "abtt" else self.kind


def parse_postprocess(spec: str | PostProcess | None) -> PostProcess:
    """'none' | 'center' | 'abtt:K' | 'whiten' (or a PostProcess, or None = none)."""
    if spec is None or isinstance(spec, PostProcess):
        return spec or PostProcess()
    kind, _, k = spec.strip().partition(":")
    if kind == "abtt":
        if not k.isdigit() or int(k) < 1:
            raise ValueError(f"post-processing {spec!r}: abtt needs the number of directions, e.g. abtt:1 or abtt:3")
        return PostProcess("abtt", int(k))
    if k:
        raise ValueError(f"post-processing {spec!r}: only abtt takes a number (abtt:K); write {kind}")
    return PostProcess(kind)


@dataclass(frozen=True)
class Fitted:
    """x -> (x - mu) @ proj: proj is (D, D') (the identity for center)."""

    post: PostProcess
    mu: np.ndarray  # (D,) float64
    proj: np.ndarray | None  # (D, D') float64, None = identity

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, D') float32."""
        y = np.asarray(x, dtype=np.float64)
        if self.post.kind == "none":
            return np.asarray(x, dtype=np.float32)
        y = y - self.mu
        return (y if self.proj is None else y @ self.proj).astype(np.float32)


def fit(post: PostProcess, x: np.ndarray) -> Fitted:
    """Fit `post` on (M, D) unlabelled sentence vectors (M >= 2)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"post-processing {post.name} is fitted on at least 2 sentence vectors (M, D); got shape "
                         f"{x.shape}")
    mu = x.mean(axis=0)
    if post.kind in ("none", "center"):
        return Fitted(post, mu, None)
    xc = x - mu
    lam, u = np.linalg.eigh(xc.T @ xc / (len(x) - 1))  # ascending eigenvalues of the (D, D) covariance
    lam, u = lam[::-1], u[:, ::-1]
    if post.kind == "abtt":
        if post.k >= x.shape[1]:
            raise ValueError(f"abtt:{post.k} would remove every one of the {x.shape[1]} dimensions; use K < "
                             f"{x.shape[1]}")
        top = u[:, : post.k]  # (D, K)
        return Fitted(post, mu, np.eye(x.shape[1]) - top @ top.T)
    keep = lam > WHITEN_RTOL * max(lam[0], 0.0)
    if not keep.any():
        raise ValueError(f"whiten: the {len(x)} fitted vectors have no variance; fit on more varied sentences")
    return Fitted(post, mu, u[:, keep] / np.sqrt(lam[keep]))
