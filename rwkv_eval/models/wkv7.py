"""WKV-7: the generalized delta rule at the heart of RWKV-7 (Goose) time mixing.

Paper: Peng et al. 2025, "RWKV-7 "Goose" with Expressive Dynamic State Evolution",
arXiv:2503.14456, section 4 (eq. 16-18). Reference code: BlinkDL/ChatRWKV
rwkv_pip_package/src/rwkv/model.py `RWKV_x070_TMix_seq` (rwkv 0.8.32, the CPU loop), and
the naive recurrence of fla-org/flash-linear-attention fla/ops/rwkv7/.

For each batch row and head, with state S (K x V, here V = K), at every step t:

    S_t = diag(exp(w_t)) S_{t-1} + b_t (a_t^T S_{t-1}) + k_t v_t^T     state update
    o_t = S_t^T r_t                                                   output, reads the NEW state

RWKV-7 uses a = -kappa_hat, b = kappa_hat * alpha (kappa_hat: unit-norm "removal key" per
head, alpha in (0, 1): in-context learning rate), so the transition diag(w) - kappa_hat
(alpha * kappa_hat)^T first decays the state, then removes part of what is stored along
kappa_hat, then writes v along k (the delta rule). The paper and BlinkDL write the state
transposed (V x K, S <- S (diag(w) + a b^T) + v k^T); this file keeps wkv6.py's K x V layout.

Layout shared by every backend:
    r, k, v, w, a, b  (B, T, H, K)  w is the LOG-decay: w <= 0, the decay is exp(w) in (0, 1].
                                     RWKV-7 computes w = -exp(-0.5) * sigmoid(w0 + lora(x)).
    state             (B, H, K, K)  S[b, h, i, j]: key index i, value index j; None = zeros
Returns (out (B, T, H, K) in r's dtype, final state (B, H, K, K) float32).
All arithmetic is float32 whatever the input dtype (float64 for float64 inputs). RWKV-7
has no bonus u in the kernel: the current token's r.(k * r_k) v term is added by the model after the group norm.

Backends (pick one by name with `wkv7(..., backend=...)`; nothing falls back silently):
    "naive"    token-by-token loop, the exact definition above; the test oracle.
    "chunked"  chunks of `chunk_size` tokens; inside a chunk the removal terms
               a_t^T S_{t-1} are found all at once by one unit-triangular solve, across
               chunks the state is carried by matrix products. Loops only over chunks.
    "cpu"      the same recurrence token by token, compiled (models/wkv_cpu.py): CPU
               tensors computed in float32, outputs from an empty state only (no `state`,
               `final_state=False`).
    "auto"     "cpu" where it applies and builds, else "chunked" (as models/wkv6.py's).
"""

from __future__ import annotations

from typing import Callable

import torch

from . import wkv_cpu
from .wkv6 import accumulation_dtype

WKV7_BACKENDS = ("auto", "chunked", "cpu", "naive")
DEFAULT_CHUNK_SIZE = 16


def _check(r, k, v, w, a, b, state) -> None:
    if not (r.ndim == 4 and r.shape == k.shape == v.shape == w.shape == a.shape == b.shape):
        raise ValueError(f"wkv7 expects r, k, v, w, a, b of one shape (B, T, H, K); got r {tuple(r.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}, w {tuple(w.shape)}, a {tuple(a.shape)}, "
                         f"b {tuple(b.shape)}")
    B, T, H, K = r.shape
    if state is not None and tuple(state.shape) != (B, H, K, K):
        raise ValueError(f"wkv7 expects state of shape (B, H, K, K) = {(B, H, K, K)}; got {tuple(state.shape)}")


def _prepare(r, k, v, w, a, b, state):
    """fp32 copies in (B, H, T, K) layout, state zeros if None."""
    B, T, H, K = r.shape
    acc = accumulation_dtype(r.dtype)
    r, k, v, w, a, b = (x.to(acc).transpose(1, 2).contiguous() for x in (r, k, v, w, a, b))  # (B,T,H,K) -> (B,H,T,K)
    S = torch.zeros(B, H, K, K, dtype=acc, device=r.device) if state is None else state.to(acc).clone()
    return r, k, v, w, a, b, S


def wkv7_naive(r, k, v, w, a, b, state=None):
    """Exact token-by-token WKV-7 recurrence in float32 (see the module docstring for shapes)."""
    _check(r, k, v, w, a, b, state)
    dtype = r.dtype
    r, k, v, w, a, b, S = _prepare(r, k, v, w, a, b, state)
    T = r.shape[2]
    out = torch.empty_like(v)  # (B,H,T,V)
    for t in range(T):
        sa = a[:, :, t, None, :] @ S  # (B,H,1,K)@(B,H,K,V) -> (B,H,1,V): a_t^T S_{t-1}
        S = (torch.exp(w[:, :, t, :, None]) * S + b[:, :, t, :, None] * sa
             + k[:, :, t, :, None] * v[:, :, t, None, :])  # (B,H,K,V)
        out[:, :, t] = (r[:, :, t, None, :] @ S).squeeze(2)  # (B,H,1,K)@(B,H,K,V) -> (B,H,V)
    return out.transpose(1, 2).to(dtype), S  # (B,H,T,V) -> (B,T,H,V)


def wkv7_chunked(r, k, v, w, a, b, state=None, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """WKV-7 in chunks of `chunk_size` tokens; same result as `wkv7_naive` up to fp32 rounding.

    Inside a chunk, with c_t = w_1 + ... + w_t (cumulative log-decay from the chunk start,
    c_0 = 0) and u_t = S_{t-1}^T a_t (the part of the state the removal reads), unrolling
    the recurrence gives

        S_t = exp(c_t) * S_0 + sum_{s<=t} exp(c_t - c_s) * (k_s v_s^T + b_s u_s^T)
        u_t = (a_t * exp(c_{t-1}))^T S_0
            + sum_{s<t} [a_t . (exp(c_{t-1} - c_s) * k_s)] v_s + [a_t . (exp(c_{t-1} - c_s) * b_s)] u_s

    The second line is a unit lower-triangular system (I - M_ab) U = rhs for the L x V
    matrix U, solved at once; the outputs o_t = S_t^T r_t and the chunk's final state then
    follow from the first line. As in wkv6.py every exponent is a pairwise difference
    <= 0, so strong decays cannot overflow fp32.
    """
    _check(r, k, v, w, a, b, state)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    dtype = r.dtype
    r, k, v, w, a, b, S = _prepare(r, k, v, w, a, b, state)
    B, H, T, K = r.shape
    out = torch.empty_like(v)  # (B,H,T,V)
    lower = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=r.device).tril()
    for start in range(0, T, chunk_size):
        end = min(start + chunk_size, T)
        L = end - start
        rc, kc, vc, wc, ac, bc = (x[:, :, start:end] for x in (r, k, v, w, a, b))  # (B,H,L,K)
        c = wc.cumsum(dim=2)  # (B,H,L,K) inclusive: c_t
        c_prev = c - wc  # exclusive: c_{t-1}

        def pair(x_t, c_t, y_s, diagonal: bool):
            """[x_t . (exp(c_t - c_s) * y_s)] for s <= t (s < t unless diagonal), else 0: (B,H,L_t,L_s)."""
            mask = lower[:L, :L] if diagonal else lower[:L, :L].tril(-1)
            # only the masked-in pairs are used, and there the exponent is <= 0; the clamp
            # keeps the others finite (so no inf * 0)
            decay = (c_t[:, :, :, None, :] - c[:, :, None, :, :]).clamp_(max=0).exp_()  # (B,H,L_t,L_s,K)
            m = (decay.mul_(y_s[:, :, None]) @ x_t[..., None]).squeeze(-1)  # (B,H,L_t,L_s)
            return m.masked_fill_(~mask, 0.0)

        # removal terms U (B,H,L,V): (I - M_ab) U = M_ak V + (a * exp(c_{t-1}))^T S_0
        m_ab = pair(ac, c_prev, bc, diagonal=False)
        m_ak = pair(ac, c_prev, kc, diagonal=False)
        rhs = m_ak @ vc + (ac * c_prev.exp()) @ S  # (B,H,L,V)
        eye = torch.eye(L, dtype=r.dtype, device=r.device)
        U = torch.linalg.solve_triangular(eye - m_ab, rhs, upper=False, unitriangular=True)  # (B,H,L,V)
        # outputs o_t = S_t^T r_t
        o = pair(rc, c, kc, diagonal=True) @ vc + pair(rc, c, bc, diagonal=True) @ U + (rc * c.exp()) @ S
        out[:, :, start:end] = o
        # carry the state to the chunk's end
        to_end = (c[:, :, -1:, :] - c).exp()  # (B,H,L,K): exp(c_L - c_s) <= 1
        S = (c[:, :, -1:, :].exp().transpose(2, 3) * S
             + (kc * to_end).transpose(2, 3) @ vc + (bc * to_end).transpose(2, 3) @ U)  # (B,H,K,V)
    return out.transpose(1, 2).to(dtype), S  # (B,H,T,V) -> (B,T,H,V)


def wkv7_cpu_kernel(r, k, v, w, a, b, state=None, final_state: bool = False):
    """WKV-7 by the compiled CPU kernel (models/wkv_cpu.py), same result as `wkv7_naive` up to
    fp32 rounding, each row from an empty state; the state is None."""
    _check(r, k, v, w, a, b, state)
    wkv_cpu.check_inputs("WKV-7", r, state, final_state)
    B, T, H, K = r.shape
    if B * T == 0:
        return r.new_empty(B, T, H, K), None
    y = wkv_cpu.wkv7_forward(wkv_cpu.segment_bounds(B, T, None), r, k, v, w, a, b)
    return y.view(B, T, H, K).to(r.dtype), None


def resolve_backend(backend: str, device: str | torch.device, dtype: torch.dtype) -> str:
    """The WKV-7 backend that `backend` runs on `device` in `dtype` with no state in or out (see
    models/wkv6.py `resolve_backend`)."""
    return wkv_cpu.resolve(backend, WKV7_BACKENDS, "WKV-7", device, dtype)


def wkv7(r, k, v, w, a, b, state=None, backend: str = "auto", chunk_size: int = DEFAULT_CHUNK_SIZE,
         final_state: bool = True):
    """Dispatch to a WKV-7 backend by name (WKV7_BACKENDS); unknown names are an error.
    `final_state=False` says the caller reads only the outputs: "auto" then runs "cpu" where it
    applies, whose state is None (the other backends return theirs anyway)."""
    if backend == "auto":
        backend = resolve_backend(backend, r.device, r.dtype) if state is None and not final_state else "chunked"
    fns: dict[str, Callable] = {"chunked": lambda *x: wkv7_chunked(*x, chunk_size=chunk_size), "naive": wkv7_naive,
                                "cpu": lambda *x: wkv7_cpu_kernel(*x, final_state=final_state)}
    if backend not in fns:
        raise ValueError(f"unknown WKV-7 backend {backend!r}; choose from {', '.join(WKV7_BACKENDS)}")
    return fns[backend](r, k, v, w, a, b, state)
