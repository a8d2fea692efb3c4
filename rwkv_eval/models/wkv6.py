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
    starts      (B, T) bool    or None: True where a new sequence begins in the row (packed
                                sentences, models/rwkv.py): S is reset to zeros before that
                                token, as if the sequence ran alone from an empty state
Returns (out (B, T, H, K) in r's dtype, final state (B, H, K, K) float32); out may be a
non-contiguous view.
All arithmetic is float32 whatever the input dtype (fla's convention: compute in fp32,
cast back); float64 inputs are computed in float64 (the precision tests' reference).

Backends (pick one by name with `wkv6(..., backend=...)`; nothing falls back silently):
    "naive"    token-by-token loop, the exact definition above; the test oracle.
    "chunked"  chunks of `chunk_size` tokens; within a chunk every pair (t, s < t) is
               summed at once, across chunks the state is carried by matrix products.
               No Python loop over tokens, only over chunks. Any device, any dtype.
    "cpu"      the same recurrence token by token, compiled (models/wkv_cpu.py): CPU
               tensors computed in float32, outputs from an empty state only (no `state`,
               no final state); each segment between `starts` runs from an empty state.
    "auto"     the default: "cpu" where it applies and builds (CPU, float32 compute, no
               state in or out), else "chunked"; a CPU run that cannot build the kernel
               warns with the compiler's reason. `resolve_backend` names the choice, and
               models record it in their provenance.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from . import wkv_cpu

WKV6_BACKENDS = ("auto", "chunked", "cpu", "naive")
DEFAULT_CHUNK_SIZE = 16
# exp(60) ~ 1e26: k * exp(-b) stays far below fp32's 3e38 and r * exp(a) far above its
# smallest normal 1e-38, so the factorized intra-chunk product loses nothing
FACTORIZE_LIMIT = 60.0
# elements of the pairwise L x L x K decay tensor formed at once for the chunks past FACTORIZE_LIMIT
PAIRWISE_ELEMENTS = 1 << 24
# a call whose share of (row, head, chunk) past FACTORIZE_LIMIT exceeds this runs with chunks half as
# long (down to MIN_CHUNK_SIZE): the pairwise form costs L x K per token, the factorised one K
UNSAFE_SHARE = 1 / 8
MIN_CHUNK_SIZE = 16


def _check(r, k, v, w, u, state, starts=None) -> None:
    if not (r.ndim == 4 and r.shape == k.shape == v.shape == w.shape):
        raise ValueError(f"wkv6 expects r, k, v, w of one shape (B, T, H, K); got r {tuple(r.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}, w {tuple(w.shape)}")
    B, T, H, K = r.shape
    if tuple(u.shape) != (H, K):
        raise ValueError(f"wkv6 expects u of shape (H, K) = {(H, K)}; got {tuple(u.shape)}")
    if state is not None and tuple(state.shape) != (B, H, K, K):
        raise ValueError(f"wkv6 expects state of shape (B, H, K, K) = {(B, H, K, K)}; got {tuple(state.shape)}")
    if starts is not None and (tuple(starts.shape) != (B, T) or starts.dtype != torch.bool):
        raise ValueError(f"wkv6 expects starts as a (B, T) = {(B, T)} bool mask; got {starts.dtype} "
                         f"{tuple(starts.shape)}")


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half and single precision inputs, float64 for float64."""
    return torch.promote_types(dtype, torch.float32)


def _prepare(r, k, v, w, u, state):
    """fp32 copies in (B, H, T, K) layout, u as float32 (H, K), state zeros if None."""
    B, T, H, K = r.shape
    acc = accumulation_dtype(r.dtype)
    r, k, v, w = (x.to(acc).transpose(1, 2).contiguous() for x in (r, k, v, w))  # (B,T,H,K) -> (B,H,T,K)
    u = u.to(acc)
    S = torch.zeros(B, H, K, K, dtype=acc, device=r.device) if state is None else state.to(acc).clone()
    return r, k, v, w, u, S


def wkv6_naive(r, k, v, w, u, state=None, starts=None):
    """Exact token-by-token WKV-6 recurrence in float32 (see the module docstring for shapes)."""
    _check(r, k, v, w, u, state, starts)
    dtype = r.dtype
    r, k, v, w, u, S = _prepare(r, k, v, w, u, state)
    T = r.shape[2]
    out = torch.empty_like(v)  # (B,H,T,K)
    for t in range(T):
        if starts is not None:  # a new sequence: forget the state of the one before it in the row
            S = S * (~starts[:, t]).to(S.dtype)[:, None, None, None]
        kv = k[:, :, t, :, None] * v[:, :, t, None, :]  # (B,H,K,V) = k_t v_t^T
        out[:, :, t] = (r[:, :, t, None, :] @ (u[:, :, None] * kv + S)).squeeze(2)  # (B,H,1,K)@(B,H,K,V)
        S = torch.exp(w[:, :, t, :, None]) * S + kv
    return out.transpose(1, 2).to(dtype), S  # (B,H,T,K) -> (B,T,H,K)


def wkv6_chunked(r, k, v, w, u, state=None, chunk_size: int = DEFAULT_CHUNK_SIZE, starts=None,
                 final_state: bool = True):
    """WKV-6 in chunks of `chunk_size` tokens; same result as `wkv6_naive` up to fp32 rounding.

    Inside a chunk, with b_t = w_1 + ... + w_t (cumulative log-decay from the chunk start)
    and a_t = b_t - w_t = b_{t-1}:

        o_t = (r_t * exp(a_t))^T S_0                                     from earlier chunks
            + sum_{s<t} [sum_i r_t,i k_s,i exp(a_t,i - b_s,i)] v_s       earlier tokens of the chunk
            + (r_t . (u * k_t)) v_t                                      the current token
        S_L = exp(b_L) * S_0 + sum_s (k_s * exp(b_L - b_s)) v_s^T

    All chunks are computed at once; only the state S is carried by a loop over chunks.
    The intra-chunk weights are a matrix product (r_t * exp(a_t)) . (k_s * exp(-b_s)),
    which is exact while exp(-b_s) stays far from fp32 overflow: for a (row, head,
    chunk) whose decay summed over the chunk passes FACTORIZE_LIMIT, they are formed
    pairwise as exp(a_t - b_s) instead (an L x L x K tensor, as fla's chunk_naive does),
    where every exponent used is <= 0, so nothing overflows however strong the decay.
    The current token's bonus goes on the diagonal of the same L x L matrix, so one
    product with v gives both intra-chunk terms.

    Cost on a CPU, where these are many small operations on activations the size of the
    model's width: every (B, H, N, L, K) operand of a batched matmul is written once, in
    that layout, by the element-wise operation that produces it (r * exp(a) straight from
    the (B, T, H, K) input, no separate transposed copy), and the state term accumulates
    into the output in place (`baddbmm_`). Measured while writing it, over the calls of one
    encode of the perf profile's 12 x 768 model: 0.19 s against 0.29-0.34 s for the form
    with one transposed copy per input.

    With `starts` (packed rows), c_t counts the starts in the chunk up to t: a pair (t, s)
    counts only when c_t = c_s (same sequence), S_0 reaches only the rows with c_t = 0 (the
    sequence that entered the chunk), and the chunk's final state keeps S_0 only when the
    chunk has no start, and only the tokens of its last sequence. Every decay product used
    then spans tokens of one sequence, as if each ran alone.

    `final_state=False` returns None for the state: an encoder reads only the outputs, and
    the last chunk's state update is (B, H, K, K) of work per call for nothing; one chunk
    from an empty state then needs no state at all (packed rows one chunk wide).

    Long chunks suit wide heads (models/rwkv6.py `default_chunk_size`), but strong decays
    pass FACTORIZE_LIMIT sooner in a long chunk: when more than UNSAFE_SHARE of a call's
    (row, head, chunk) would take the pairwise form, the call runs with chunks half as long.
    """
    _check(r, k, v, w, u, state, starts)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    dtype = r.dtype
    acc = accumulation_dtype(dtype)
    B, T, H, K = r.shape
    dev = r.device
    S = torch.zeros(B, H, K, K, dtype=acc, device=dev) if state is None else state.to(acc).clone()
    if T == 0:
        return r.new_empty(B, 0, H, K), S
    L = min(chunk_size, T)  # a sequence shorter than a chunk is one chunk
    N = -(-T // L)
    pad = N * L - T  # padding at the end: k = 0 adds nothing, w = 0 decays nothing

    def chunks(x):  # (B,T,H,K) -> (B,N,L,H,K) in the accumulation dtype, a view where it can be
        x = x.to(acc)
        return (F.pad(x, (0, 0, 0, 0, 0, pad)) if pad else x).reshape(B, N, L, H, K)

    def head_major(op, *args, keys_last=False):  # op(*args) written straight into a new (B,H,N,L,K) tensor,
        if keys_last:  # or (B,H,N,K,L): the layout a product wants its right operand in
            out = torch.empty(B, H, N, K, L, dtype=acc, device=dev)
            op(*args, out=out.permute(0, 2, 4, 1, 3))
        else:
            out = torch.empty(B, H, N, L, K, dtype=acc, device=dev)
            op(*args, out=out.permute(0, 2, 3, 1, 4))
        return out

    inputs = (r, k, v, w, u)
    r, k, v, w = (chunks(x) for x in (r, k, v, w))
    u = u.to(acc)
    carry = N > 1 or state is not None  # a state reaches some chunk's outputs
    need_kv = carry or final_state  # the chunks' key-value sums are needed
    b = w.cumsum(dim=2)  # (B,N,L,H,K) inclusive cumulative log-decay
    b_last = b[:, :, -1].permute(0, 2, 1, 3).unsqueeze(3)  # (B,H,N,1,K)
    unsafe = b_last.amin(dim=(-2, -1)) < -FACTORIZE_LIMIT  # (B,H,N)
    if L > MIN_CHUNK_SIZE and L % 2 == 0 and float(unsafe.float().mean()) > UNSAFE_SHARE:
        # strong decays: the pairwise form would take too many chunks (its cost per token grows with L)
        return wkv6_chunked(*inputs, state=state, chunk_size=L // 2, starts=starts, final_state=final_state)
    e = torch.sub(b, w).exp_()  # exp(a_t), a_t = b_{t-1}: decay from the chunk start up to, not including, t
    ra = head_major(torch.mul, r, e)  # (B,H,N,L,K)
    kb = head_major(torch.mul, k, torch.neg(b, out=e).exp_(), keys_last=True)  # (B,H,N,K,L): k_s * exp(-b_s)
    vh = head_major(lambda x, out: out.copy_(x), v)
    bonus = torch.mul(r, k).mul_(u).sum(dim=-1)  # (B,N,L,H): r_t . (u * k_t)
    att = ra @ kb  # (B,H,N,L_t,L_s), exact where no overflow
    # (B,H,N,K,L): k_s exp(b_L - b_s); kb is not needed any more
    k_last = kb.mul_(b_last.exp().transpose(-1, -2)) if need_kv else None
    unsafe = unsafe.nonzero(as_tuple=True)  # (row, head, chunk) indices
    rows_per_step = max(1, PAIRWISE_ELEMENTS // (L * L * K))  # bounds the pairwise tensor
    for i in range(0, len(unsafe[0]), rows_per_step):
        bi, hi, ni = (x[i:i + rows_per_step] for x in unsafe)
        bn, wn, rn, kn = (x[bi, ni, :, hi] for x in (b, w, r, k))  # (M,L,K)
        # pairwise decays exp(a_t - b_s): only s < t is used, and there the exponent is <= 0;
        # the clamp keeps the unused s >= t entries finite
        decay = (bn - wn)[:, :, None, :].sub(bn[:, None, :, :]).clamp_(max=0).exp_()  # (M,L_t,L_s,K)
        att[bi, hi, ni] = (decay.mul_(kn[:, None]) @ rn[..., None]).squeeze(-1)  # (M,L_t,L_s)
        if need_kv:
            k_last[bi, hi, ni] = (kn * (bn[:, -1:] - bn).exp_()).transpose(-1, -2)
    lower = torch.ones(L, L, dtype=torch.bool, device=dev).tril()  # the diagonal is overwritten by the bonus
    decay_last = b_last.exp().transpose(-1, -2) if need_kv else None  # (B,H,N,K,1)
    ra_in = ra  # rows that read the state entering the chunk
    if starts is None:
        att.masked_fill_(~lower, 0.0)
    else:
        c = F.pad(starts, (0, pad)).view(B, N, L).cumsum(dim=-1)  # (B,N,L) starts in the chunk up to t
        same = (c[..., :, None] == c[..., None, :]) & lower  # (B,N,L_t,L_s)
        att.masked_fill_(~same[:, None], 0.0)
        if carry:
            ra_in = ra.mul_((c == 0)[:, None, ..., None])  # (B,H,N,L,K); ra is not needed any more
        if need_kv:
            k_last.mul_((c == c[..., -1:])[:, None, :, None, :])  # only the chunk's last sequence
            decay_last = decay_last * (c[..., -1] == 0)[:, None, :, None, None]  # S_0 survives no start
    att.diagonal(dim1=-2, dim2=-1).copy_(bonus.permute(0, 3, 1, 2))
    out = att @ vh  # (B,H,N,L,V): earlier tokens of the chunk and the current one
    if not need_kv:  # one chunk from an empty state, and no final state asked for: nothing more to add
        return out.view(B, H, N * L, K).transpose(1, 2)[:, :T].to(dtype), None
    # state entering each chunk: S_n = exp(b_L) * S_{n-1} + sum_s (k_s * exp(b_L - b_s)) v_s^T
    kv = k_last @ vh  # (B,H,N,K,V)
    S_in = torch.empty_like(kv)  # (B,H,N,K,V), each chunk's entering state written in place
    if state is None:
        S_in[:, :, 0].zero_()
    else:
        S_in[:, :, 0] = S
    for n in range(N - 1):
        torch.addcmul(kv[:, :, n], decay_last[:, :, n], S_in[:, :, n], out=S_in[:, :, n + 1])
    S = torch.addcmul(kv[:, :, -1], decay_last[:, :, -1], S_in[:, :, -1]) if final_state else None
    if carry:
        out.view(-1, L, K).baddbmm_(ra_in.view(-1, L, K), S_in.view(-1, K, K))  # + what earlier chunks left
    # (B,H,N,L,V) -> (B,T,H,V) as a view: a caller that gathers tokens (packed rows) reads it in one pass
    return out.view(B, H, N * L, K).transpose(1, 2)[:, :T].to(dtype), S


def wkv6_cpu_kernel(r, k, v, w, u, state=None, starts=None, final_state: bool = False):
    """WKV-6 by the compiled CPU kernel (models/wkv_cpu.py), same result as `wkv6_naive` up to
    fp32 rounding; the state is None. The (B, T) batch runs as B * T flat tokens, a segment from
    each row's start and each `starts` on, every segment from an empty state: packed sentences
    run as they lie, with no rows and no padding."""
    _check(r, k, v, w, u, state, starts)
    wkv_cpu.check_inputs("WKV-6", r, state, final_state)
    B, T, H, K = r.shape
    if B * T == 0:
        return r.new_empty(B, T, H, K), None
    y = wkv_cpu.wkv6_forward(wkv_cpu.segment_bounds(B, T, starts), r, k, v, w, u)
    return y.view(B, T, H, K).to(r.dtype), None


def resolve_backend(backend: str, device: str | torch.device, dtype: torch.dtype) -> str:
    """The WKV-6 backend that `backend` runs for tensors on `device` in `dtype` when no state goes
    in or out (an encoder): "auto" is "cpu" on a CPU in float32 compute if the kernel builds (else
    "chunked", with a warning that says why), "chunked" elsewhere; other names stand for themselves."""
    return wkv_cpu.resolve(backend, WKV6_BACKENDS, "WKV-6", device, dtype)


def wkv6(r, k, v, w, u, state=None, backend: str = "auto", chunk_size: int = DEFAULT_CHUNK_SIZE, starts=None,
         final_state: bool = True):
    """Dispatch to a WKV-6 backend by name (WKV6_BACKENDS); unknown names are an error.
    `final_state=False` lets the chunked backend skip the last state update (its state is None);
    "auto" runs "cpu" only where nothing needs a state (`state` None, `final_state` False)."""
    if backend == "auto":
        backend = resolve_backend(backend, r.device, r.dtype) if state is None and not final_state else "chunked"
    fns: dict[str, Callable] = {"chunked": lambda *a: wkv6_chunked(*a, chunk_size=chunk_size, starts=starts,
                                                                   final_state=final_state),
                                "cpu": lambda *a: wkv6_cpu_kernel(*a, starts=starts, final_state=final_state),
                                "naive": lambda *a: wkv6_naive(*a, starts=starts)}
    if backend not in fns:
        raise ValueError(f"unknown WKV-6 backend {backend!r}; choose from {', '.join(WKV6_BACKENDS)}")
    return fns[backend](r, k, v, w, u, state)
