"""Pooling token states into one sentence vector, respecting a padding mask.

Every method takes right- or left-padded states and a boolean mask; padded positions
never influence the result (property-tested in tests/properties), not even when they
hold inf or NaN (a half-precision model may overflow on padding): they are removed by
selection (`where`), never by multiplying with a zero weight, since inf * 0 is NaN. A row with no valid
token pools to the zero vector, which `similarity.cosine` scores as 0.0 rather than NaN:
an empty sentence or a sentence of unknown words is a legitimate input, not an error.

Methods:
    mean         average of valid tokens (the reference study's method)
    max          element-wise max over valid tokens
    last         the last valid token; for a causal model (RWKV, GPT) it has read the
                 whole sentence
    first_last   average of the first and last valid token
    weighted_mean  position-weighted mean, weight of the i-th valid token proportional
                 to i (SGPT, Muennighoff 2022): later tokens of a causal model have seen
                 more context
"""

from __future__ import annotations

import torch

POOLINGS: tuple[str, ...] = ("mean", "max", "last", "first_last", "weighted_mean")


def check_poolings(poolings: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The poolings asked for, in order, each once; an unknown or empty list is an error."""
    unknown = [p for p in poolings if p not in POOLINGS]
    if unknown:
        raise ValueError(f"unknown pooling {unknown[0]!r}; choose from {', '.join(POOLINGS)}")
    if not poolings:
        raise ValueError(f"no pooling requested; choose from {', '.join(POOLINGS)}")
    return tuple(dict.fromkeys(poolings))


def pool(states: torch.Tensor, mask: torch.Tensor, method: str) -> torch.Tensor:
    """Pool token states into sentence vectors.

    Args:
        states: (B, T, D) float tensor of token states.
        mask: (B, T) bool tensor, True at real tokens (any padding side).
        method: one of POOLINGS.

    Returns:
        (B, D) tensor in float32 (pooling in half precision loses the small
        differences between similar sentences that cosine similarity is about).
    """
    if states.ndim != 3 or mask.shape != states.shape[:2]:
        raise ValueError(f"pool expects states (B,T,D) and mask (B,T); got {tuple(states.shape)} and {tuple(mask.shape)}")
    x = states.float()
    m = mask.to(torch.bool)
    B, T, D = x.shape
    n = m.sum(dim=1)  # (B,)
    empty = n == 0
    valid = torch.where(m[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))  # padding -> exactly 0
    if method == "mean":
        out = valid.sum(dim=1) / n.clamp(min=1)[:, None]
    elif method == "weighted_mean":
        w = torch.cumsum(m, dim=1).float() * m  # 1..n at valid positions, 0 at padding
        out = (valid * w[..., None]).sum(dim=1) / w.sum(dim=1).clamp(min=1)[:, None]
    elif method == "max":
        out = x.masked_fill(~m[..., None], float("-inf")).amax(dim=1)
        out = torch.where(empty[:, None], torch.zeros_like(out), out)
    elif method in ("last", "first_last"):
        pos = torch.arange(T, device=x.device).expand(B, T)
        last = torch.where(m, pos, -1).amax(dim=1).clamp(min=0)
        out = x[torch.arange(B, device=x.device), last]
        if method == "first_last":
            first = torch.where(m, pos, T).amin(dim=1).clamp(max=T - 1)
            out = 0.5 * (out + x[torch.arange(B, device=x.device), first])
        out = torch.where(empty[:, None], torch.zeros_like(out), out)
    else:
        raise ValueError(f"unknown pooling {method!r}; choose from {', '.join(POOLINGS)}")
    return out
