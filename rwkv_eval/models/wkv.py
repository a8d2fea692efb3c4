"""WKV-6: the linear-attention recurrence at the heart of RWKV-6 (Finch) time mixing.

Paper: Peng et al. 2024, "Eagle and Finch: RWKV with Matrix-Valued States and Dynamic
Recurrence" (arXiv:2404.05892), section 4. Reference code: BlinkDL/ChatRWKV
rwkv_pip_package/src/rwkv/model.py `att_seq_v6_0` (rwkv 0.8.32), and the naive chunked
form of fla-org/flash-linear-attention fla/ops/rwkv6/chunk_naive.py.

For each batch row and head, with state S (K x V, here V = K), at every step t:

    o_t = r_t^T (diag(u) k_t v_t^T + S_{t-1})          output, reads the bonus u
    S_t = diag(exp(w_t)) S_{t-1} + k_t v_t^T           state update

Layout shared by every backend:
    r, k, v, w  (B, T, H, K)   w is the LOG-decay: w <= 0, the decay is exp(w) in (0, 1].
                                RWKV-6 computes it as w = -exp(time_decay + lora(x)).
    u           (H, K)         the "bonus" for the current token (checkpoint: time_faaaa)
    state       (B, H, K, K)   S[b, h, i, j]: key index i, value index j; None = zeros
Returns (out (B, T, H, K) in r's dtype, final state (B, H, K, K) float32).
All arithmetic is float32 whatever the input dtype (fla's convention: compute in fp32,
cast back).

Backends (pick one by name with `wkv6(..., backend=...)`; nothing falls back silently):
    "naive"    token-by-token loop, the exact definition above; the test oracle.
    "chunked"  the default: chunks of `chunk_size` tokens; within a chunk every pair
               (t, s < t) is summed at once, across chunks the state is carried by
               matrix products. No Python loop over tokens, only over chunks.
"""

from __future__ import annotations

from typing import Callable

import torch

WKV6_BACKENDS = ("chunked", "naive")
DEFAULT_CHUNK_SIZE = 16


def _check(r, k, v, w, u, state) -> None:
    if not (r.ndim == 4 and r.shape == k.shape == v.shape == w.shape):
        raise ValueError(f"wkv6 expects r, k, v, w of one shape (B, T, H, K); got r {tuple(r.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}, w {tuple(w.shape)}")
    B, T, H, K = r.shape
    if tuple(u.shape) != (H, K):
        raise ValueError(f"wkv6 expects u of shape (H, K) = {(H, K)}; got {tuple(u.shape)}")
    if state is not None and tuple(state.shape) != (B, H, K, K):
        raise ValueError(f"wkv6 expects state of shape (B, H, K, K) = {(B, H, K, K)}; got {tuple(state.shape)}")


def _prepare(r, k, v, w, u, state):
    """fp32 copies in (B, H, T, K) layout, u as float32 (H, K), state zeros if None."""
    B, T, H, K = r.shape
    r, k, v, w = (x.float().transpose(1, 2).contiguous() for x in (r, k, v, w))  # (B,T,H,K) -> (B,H,T,K)
    u = u.float()
    S = torch.zeros(B, H, K, K, dtype=torch.float32, device=r.device) if state is None else state.float().clone()
    return r, k, v, w, u, S


def wkv6_naive(r, k, v, w, u, state=None):
    """Exact token-by-token WKV-6 recurrence in float32 (see the module docstring for shapes)."""
    _check(r, k, v, w, u, state)
    dtype = r.dtype
    r, k, v, w, u, S = _prepare(r, k, v, w, u, state)
    T = r.shape[2]
    out = torch.empty_like(v)  # (B,H,T,K)
    for t in range(T):
        kv = k[:, :, t, :, None] * v[:, :, t, None, :]  # (B,H,K,V) = k_t v_t^T
        out[:, :, t] = (r[:, :, t, None, :] @ (u[:, :, None] * kv + S)).squeeze(2)  # (B,H,1,K)@(B,H,K,V)
        S = torch.exp(w[:, :, t, :, None]) * S + kv
    return out.transpose(1, 2).to(dtype), S  # (B,H,T,K) -> (B,T,H,K)


def wkv6_chunked(r, k, v, w, u, state=None, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """WKV-6 in chunks of `chunk_size` tokens; same result as `wkv6_naive` up to fp32 rounding.

    Inside a chunk, with b_t = w_1 + ... + w_t (cumulative log-decay from the chunk start)
    and a_t = b_t - w_t = b_{t-1}:

        o_t = (r_t * exp(a_t))^T S_0                                     from earlier chunks
            + sum_{s<t} [sum_i r_t,i k_s,i exp(a_t,i - b_s,i)] v_s       earlier tokens of the chunk
            + (r_t . (u * k_t)) v_t                                      the current token
        S_L = exp(b_L) * S_0 + sum_s (k_s * exp(b_L - b_s)) v_s^T

    Every exponent is <= 0, so nothing overflows however strong the decay: the intra-chunk
    weights exp(a_t - b_s) are formed pairwise (an L x L x K tensor per chunk, as fla's
    chunk_naive does) instead of as exp(a_t) * exp(-b_s), which overflows fp32 once the
    decay summed over a chunk passes ~88.
    """
    _check(r, k, v, w, u, state)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    dtype = r.dtype
    r, k, v, w, u, S = _prepare(r, k, v, w, u, state)
    B, H, T, K = r.shape
    out = torch.empty_like(v)  # (B,H,T,K)
    strict_lower = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=r.device).tril(-1)
    for start in range(0, T, chunk_size):
        end = min(start + chunk_size, T)
        L = end - start
        rc, kc, vc, wc = (x[:, :, start:end] for x in (r, k, v, w))  # (B,H,L,K)
        b = wc.cumsum(dim=2)  # (B,H,L,K) inclusive cumulative log-decay
        a = b - wc  # exclusive: decay from the chunk start up to, not including, t
        # pairwise decays exp(a_t - b_s); only s < t is used, and there the exponent is
        # <= 0; the clamp keeps the unused s >= t entries finite (so no inf * 0 below)
        decay = (a[:, :, :, None, :] - b[:, :, None, :, :]).clamp_(max=0).exp_()  # (B,H,L_t,L_s,K)
        att = (decay.mul_(kc[:, :, None]) @ rc[..., None]).squeeze(-1)  # (B,H,L_t,L_s)
        att.masked_fill_(~strict_lower[:L, :L], 0.0)
        bonus = (rc * u[:, None, :] * kc).sum(dim=-1)  # (B,H,L): r_t . (u * k_t)
        o = att @ vc + bonus[..., None] * vc + (rc * a.exp()) @ S  # (B,H,L,V)
        out[:, :, start:end] = o
        b_last = b[:, :, -1:, :]  # (B,H,1,K)
        S = b_last.exp().transpose(2, 3) * S + (kc * (b_last - b).exp()).transpose(2, 3) @ vc  # (B,H,K,V)
    return out.transpose(1, 2).to(dtype), S  # (B,H,T,K) -> (B,T,H,K)


def wkv6(r, k, v, w, u, state=None, backend: str = "chunked", chunk_size: int = DEFAULT_CHUNK_SIZE):
    """Dispatch to a WKV-6 backend by name ("chunked" or "naive"); unknown names are an error."""
    fns: dict[str, Callable] = {"chunked": lambda *a: wkv6_chunked(*a, chunk_size=chunk_size), "naive": wkv6_naive}
    if backend not in fns:
        raise ValueError(f"unknown WKV-6 backend {backend!r}; choose from {', '.join(WKV6_BACKENDS)}")
    return fns[backend](r, k, v, w, u, state)
