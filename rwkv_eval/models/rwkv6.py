"""RWKV-6 (Finch) in one file: config, time mixing, channel mixing, blocks, model.

Paper: Peng et al. 2024, "Eagle and Finch: RWKV with Matrix-Valued States and Dynamic
Recurrence", arXiv:2404.05892, section 4 (Finch). Reference code: BlinkDL/ChatRWKV
RWKV_v6_demo.py and BlinkDL/RWKV-LM RWKV-v5/src/model.py (`RWKV_Tmix_x060`,
`RWKV_CMix_x060`, init), as released in the rwkv pip package 0.8.32 (`att_seq_v6_0`).

Parameter names are exactly the BlinkDL checkpoint keys, with the checkpoint's shapes,
so `load_state_dict(strict=True)` takes a `.pth` as is (models/checkpoint.py also maps
the Hugging Face layout onto these names).

Layers, as the rest of rwkv_eval numbers them:
    "emb"  the token embedding after blocks.0.ln0, i.e. the input of block 0
    k      the residual stream after block k (0 <= k < n_layer): Hugging Face
           `hidden_states[k]`; no final norm, no fp16 rescaling.
In float16/bfloat16 only the matmuls run in half precision; the residual stream, WKV
state, decays, bonus and norms stay float32 (models/precision.py).
Logits (ln_out + head) are only computed when asked for, to check against the oracle.

RWKV is causal: with right padding, every valid position is computed exactly as if the
sentence were alone (padding only ever comes after it). The token shift sees zeros
before position 0, as from an empty state. Several sentences may instead run as one flat
sequence (`Packed`, built by models/rwkv.py `pack_rows`): every per-token operation runs
on the real tokens only, the token shift sees zeros where a sentence starts, and the WKV
restarts from an empty state at each start (the compiled CPU kernel on the flat sequence
itself, the chunked form in rows of whole chunks), so each sentence is computed as if alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..encoder import EMBEDDING, Layer
from .precision import Linear, to_precision
from .wkv6 import WKV6_BACKENDS, resolve_backend, wkv6

LN_EPS = 1e-5
GROUP_NORM_EPS = 64e-5  # att.ln_x, as BlinkDL's code uses for every head size


@dataclass(frozen=True)
class RWKV6Config:
    n_layer: int
    n_embd: int  # C, the residual width
    n_head: int  # H
    head_size: int  # K; n_head * head_size == n_embd
    dim_ffn: int  # hidden width of channel mixing (3.5 x C in the Finch releases)
    vocab_size: int  # 256 (byte-level tiny models) or 65536 (World tokenizer)
    dim_mix: int = 32  # D_mix, rank of the five token-shift LoRAs (time_maa_w1/w2)
    dim_decay: int = 64  # D_decay, rank of the decay LoRA (time_decay_w1/w2)

    def __post_init__(self):
        if self.n_head * self.head_size != self.n_embd:
            raise ValueError(f"n_head * head_size must equal n_embd; got {self.n_head} * {self.head_size} != {self.n_embd}")

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> "RWKV6Config":
        """Read the shape of a model from BlinkDL checkpoint keys."""
        n_embd_vocab = sd["emb.weight"].shape
        blocks = {int(k.split(".")[1]) for k in sd if k.startswith("blocks.")}
        H, K = sd["blocks.0.att.time_faaaa"].shape
        return cls(
            n_layer=max(blocks) + 1,
            n_embd=n_embd_vocab[1],
            n_head=H,
            head_size=K,
            dim_ffn=sd["blocks.0.ffn.key.weight"].shape[0],
            vocab_size=n_embd_vocab[0],
            dim_mix=sd["blocks.0.att.time_maa_w1"].shape[1] // 5,
            dim_decay=sd["blocks.0.att.time_decay_w1"].shape[1],
        )


# Named shapes for random-init models (benchmarks, tests).
SHAPES: dict[str, RWKV6Config] = {
    "tiny": RWKV6Config(n_layer=2, n_embd=32, n_head=4, head_size=8, dim_ffn=112, vocab_size=256, dim_mix=8, dim_decay=16),
    "small": RWKV6Config(n_layer=12, n_embd=768, n_head=12, head_size=64, dim_ffn=2688, vocab_size=65536),
    "finch-1b6": RWKV6Config(n_layer=24, n_embd=2048, n_head=32, head_size=64, dim_ffn=7168, vocab_size=65536),
}


def default_chunk_size(head_size: int) -> int:
    """The WKV-6 chunk length for a head size: about K, within 16..64. A chunk hands the next
    one a K x K state per head, against L x K values of its own tokens: wide heads want
    longer chunks (fewer states to write and read, and packed rows of short sentences one
    chunk wide need no state at all), narrow ones shorter (smaller L x L products). Measured
    on a 2-core CPU, interleaved: head size 64 (the 12 x 768 model), L = 32 / 64 ran at
    0.80-0.84 / 0.83-0.85 of the matmul limit; head size 8 (the tiny RWKV-6), L = 16 was
    fastest of 8 / 16 / 32. wkv6_chunked halves L for calls whose decays are too strong."""
    return min(64, max(16, head_size))


@dataclass(frozen=True)
class Packed:
    """Sentences laid end to end as one flat sequence of n tokens, the model's (1, n) input,
    and the rows the WKV runs them in.

    Why both: the projections, norms, mixing and MLP are per token, so on the flat sequence
    they compute the n real tokens and no padding at all; the WKV works on whole chunks and
    carries a state along a row, so it gathers the tokens into R rows of W places (W a whole
    number of chunks, each sentence in one row, never split), runs them with `row_starts`,
    and its output is gathered back. Places after a row's last sentence hold a copy of some
    token and start a segment of their own: causal, they reach no real token. The compiled CPU
    WKV needs no rows: it runs the flat sequence with `flat_starts`.
    """

    starts: torch.Tensor  # (S,) long: flat positions where a sentence begins (the token shift sees zeros there)
    flat_starts: torch.Tensor  # (1, n) bool: the same as a mask (the WKV's `starts` on the flat sequence)
    rows: torch.Tensor  # (n,) long: each flat token's row
    places: torch.Tensor  # (n,) long: and its place in that row
    tokens: torch.Tensor  # (R*W,) long: the flat token at each place of the rows
    row_starts: torch.Tensor  # (R, W) bool: where a segment begins in the rows (the WKV's `starts`)

    def to_rows(self, x: torch.Tensor) -> torch.Tensor:
        """(1, n, H, K) flat -> (R, W, H, K) rows."""
        return x[0, self.tokens].view(*self.row_starts.shape, *x.shape[2:])

    def from_rows(self, y: torch.Tensor) -> torch.Tensor:
        """(R, W, H, K) rows, any strides (the WKV's output is a view) -> (1, n, H, K) flat, in one gather."""
        return y[self.rows, self.places].unsqueeze(0)


def token_shift_delta(x: torch.Tensor, packed: Packed | None = None) -> torch.Tensor:
    """x_{t-1} - x_t for every t, with x_{-1} = 0 and x_{t-1} = 0 where a `packed` sentence
    starts: (B, T, C) -> (B, T, C), in one pass."""
    dx = torch.empty_like(x)
    torch.sub(x[:, :-1], x[:, 1:], out=dx[:, 1:])
    torch.neg(x[:, :1], out=dx[:, :1])
    if packed is not None:
        dx[0, packed.starts] = -x[0, packed.starts]
    return dx


class TimeMix6(nn.Module):
    """Finch time mixing: data-dependent token shift (ddlerp), data-dependent decay, WKV-6."""

    def __init__(self, cfg: RWKV6Config, wkv_backend: str, chunk_size: int):
        super().__init__()
        C, H, K = cfg.n_embd, cfg.n_head, cfg.head_size
        self.n_head, self.head_size = H, K
        self.wkv_backend, self.chunk_size = wkv_backend, chunk_size
        for name in ("x", "w", "k", "v", "r", "g"):
            setattr(self, f"time_maa_{name}", nn.Parameter(torch.zeros(1, 1, C)))
        self.time_maa_w1 = nn.Parameter(torch.zeros(C, 5 * cfg.dim_mix))
        self.time_maa_w2 = nn.Parameter(torch.zeros(5, cfg.dim_mix, C))
        self.time_decay = nn.Parameter(torch.zeros(1, 1, C))
        self.time_decay_w1 = nn.Parameter(torch.zeros(C, cfg.dim_decay))
        self.time_decay_w2 = nn.Parameter(torch.zeros(cfg.dim_decay, C))
        self.time_faaaa = nn.Parameter(torch.zeros(H, K))  # u, the bonus of the current token
        self.receptance = Linear(C, C, bias=False)
        self.key = Linear(C, C, bias=False)
        self.value = Linear(C, C, bias=False)
        self.output = Linear(C, C, bias=False)
        self.gate = Linear(C, C, bias=False)
        self.ln_x = nn.GroupNorm(H, C, eps=GROUP_NORM_EPS)

    def forward(self, x: torch.Tensor, packed: Packed | None = None) -> torch.Tensor:
        B, T, C = x.shape
        H, K = self.n_head, self.head_size
        dx = token_shift_delta(x, packed)  # x_{t-1} - x_t
        # ddlerp (paper eq. 16-19): five mixing amounts, each shifted by a low-rank function of x
        # tanh(y) W2 = (2 sigmoid(2y) - 1) W2 = 2 sigmoid(2y) W2 - colsum(W2): sigmoid is ~6x cheaper than
        # tanh on a CPU (measured: 0.1 vs 0.65 ms on 3000 x 160), and the tiny models' LoRAs are wider than C
        s = (torch.addcmul(x, dx, self.time_maa_x) @ self.time_maa_w1).mul_(2).sigmoid_()  # (B,T,5*D_mix)
        s = s.view(B * T, 5, -1)  # (B*T, 5, D_mix)
        w2 = self.time_maa_w2  # (5, D_mix, C)
        maa = torch.cat([self.time_maa_w, self.time_maa_k, self.time_maa_v, self.time_maa_r, self.time_maa_g])
        maa = maa.view(5, C) - w2.sum(dim=1)
        x2, dx2 = x.view(B * T, C), dx.view(B * T, C)

        def mixed(j: int) -> torch.Tensor:  # x + dx * (maa_j + m_j) for j = w, k, v, r, g (0..4), one at a
            m = torch.addmm(maa[j], s[:, j], w2[j], alpha=2)  # time: its (B*T, C) is used while in cache
            return torch.addcmul(x2, dx2, m, out=m)

        # projections (eq. 20-23) and the data-dependent decay (eq. 24-25), w = log-decay <= 0
        r = self.receptance(mixed(3)).view(B, T, H, K)  # (B*T,C) -> (B,T,H,K)
        k = self.key(mixed(1)).view(B, T, H, K)
        v = self.value(mixed(2)).view(B, T, H, K)
        g = F.silu(self.gate(mixed(4)), inplace=True).view(B, T, C)
        d = torch.addmm(self.time_decay.view(C) - self.time_decay_w2.sum(dim=0),  # the same sigmoid form of tanh
                        (mixed(0) @ self.time_decay_w1).mul_(2).sigmoid_(), self.time_decay_w2,
                        alpha=2)  # (B*T,C): time_decay + tanh(xw W1) W2
        w = d.exp_().neg_().view(B, T, H, K)
        # WKV (eq. 26-27), fp32 state math; then group norm per head, gate, output (eq. 28)
        backend = resolve_backend(self.wkv_backend, r.device, r.dtype)
        if packed is None or backend == "cpu":  # the compiled kernel runs packed sentences where they lie
            y, _ = wkv6(r, k, v, w, self.time_faaaa, backend=backend, chunk_size=self.chunk_size, final_state=False,
                        starts=None if packed is None else packed.flat_starts)
        else:  # the flat tokens into the WKV's rows and back
            y, _ = wkv6(*(packed.to_rows(t) for t in (r, k, v, w)), self.time_faaaa, backend=backend,
                        chunk_size=self.chunk_size, starts=packed.row_starts, final_state=False)
            y = packed.from_rows(y)
        # ln_x is GroupNorm(H, C): a layer norm over each head's K channels, then the per-channel affine
        # (as one layer_norm over K, ~1.6x faster than native_group_norm on (B*T, C) on a CPU)
        y = F.layer_norm(y.reshape(B * T, H, K), (K,), eps=self.ln_x.eps).view(B, T, C)
        return self.output(torch.addcmul(self.ln_x.bias, y, self.ln_x.weight, out=y).mul_(g))


class ChannelMix6(nn.Module):
    """Finch channel mixing: token shift, squared-ReLU MLP, sigmoid receptance gate."""

    def __init__(self, cfg: RWKV6Config):
        super().__init__()
        C = cfg.n_embd
        self.time_maa_k = nn.Parameter(torch.zeros(1, 1, C))
        self.time_maa_r = nn.Parameter(torch.zeros(1, 1, C))
        self.key = Linear(C, cfg.dim_ffn, bias=False)
        self.receptance = Linear(C, C, bias=False)
        self.value = Linear(cfg.dim_ffn, C, bias=False)

    def forward(self, x: torch.Tensor, packed: Packed | None = None) -> torch.Tensor:
        dx = token_shift_delta(x, packed)  # x_{t-1} - x_t
        k = torch.relu_(self.key(torch.addcmul(x, dx, self.time_maa_k))).square_()  # (B,T,dim_ffn)
        return torch.sigmoid_(self.receptance(torch.addcmul(x, dx, self.time_maa_r))).mul_(self.value(k))


class Block6(nn.Module):
    def __init__(self, cfg: RWKV6Config, layer_id: int, wkv_backend: str, chunk_size: int):
        super().__init__()
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)  # applied to the embeddings, see RWKV6.states
        self.ln1 = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)
        self.ln2 = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)
        self.att = TimeMix6(cfg, wkv_backend, chunk_size)
        self.ffn = ChannelMix6(cfg)

    def forward(self, x: torch.Tensor, packed: Packed | None = None) -> torch.Tensor:
        x = x + self.att(self.ln1(x), packed)
        return x + self.ffn(self.ln2(x), packed)


class RWKV6(nn.Module):
    """RWKV-6 language model whose hidden states are read layer by layer.

    Args:
        cfg: the shape (see `RWKV6Config.from_state_dict`).
        wkv_backend: "auto" (default: the compiled kernel on a CPU, else chunked), "cpu", "chunked"
            or "naive", see models/wkv6.py; `resolve_backend` names what "auto" runs.
        chunk_size: tokens per chunk of the chunked WKV (None: `default_chunk_size` of the head size).
    """

    def __init__(self, cfg: RWKV6Config, wkv_backend: str = "auto", chunk_size: int | None = None):
        super().__init__()
        chunk_size = default_chunk_size(cfg.head_size) if chunk_size is None else chunk_size
        if wkv_backend not in WKV6_BACKENDS:
            raise ValueError(f"unknown WKV-6 backend {wkv_backend!r}; choose from {', '.join(WKV6_BACKENDS)}")
        self.config = cfg
        self.wkv_backend, self.chunk_size = wkv_backend, chunk_size
        self.emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block6(cfg, i, wkv_backend, chunk_size) for i in range(cfg.n_layer))
        self.ln_out = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)
        self.head = Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    def layers(self) -> tuple[Layer, ...]:
        return (EMBEDDING, *range(self.config.n_layer))

    def states(self, idx: torch.Tensor, last: int | None = None, packed: Packed | None = None
               ) -> Iterator[tuple[Layer, torch.Tensor]]:
        """Yield ("emb", x) and then (k, x) after each block k, up to block `last` included.

        Args:
            idx: (B, T) long token ids; right padding needs no mask (the model is causal).
            last: deepest block to run (None = all; -1 = only the embedding).
            packed: idx is (1, n), sentences end to end, laid out as `packed` says (None: one
                sentence per row of idx).
        Yields:
            (layer, (B, T, C) tensor in the compute dtype: float32, float64 for a float64 model).
        """
        L = self.config.n_layer
        last = L - 1 if last is None else last
        if not -1 <= last < L:
            raise ValueError(f"block {last} out of range for an RWKV-6 with {L} blocks (-1..{L - 1})")
        if idx.ndim != 2:
            raise ValueError(f"idx must be (B, T) token ids; got shape {tuple(idx.shape)}")
        if packed is not None and (idx.shape[0] != 1 or packed.rows.shape != idx.shape[1:]):
            raise ValueError(f"packed sentences run as one flat (1, n) sequence with a place per token; got idx of "
                             f"shape {tuple(idx.shape)} and {len(packed.rows)} places")
        x = self.embed(idx)  # (B,T,C), fp32 from here on
        yield EMBEDDING, x
        for i in range(last + 1):
            x = self.blocks[i](x, packed)
            yield i, x

    def forward(self, idx: torch.Tensor, layers: Sequence[Layer] = (), return_logits: bool = False
                ) -> tuple[dict[Layer, torch.Tensor], torch.Tensor | None]:
        """Run up to the deepest requested layer (all blocks if logits are asked for).

        Returns:
            ({layer: (B, T, C)} for the requested layers, (B, T, vocab) logits or None).
        """
        unknown = [l for l in layers if l not in self.layers()]
        if unknown:
            raise ValueError(f"layers {unknown} out of range for an RWKV-6 with {self.config.n_layer} blocks "
                             f"('emb', 0..{self.config.n_layer - 1})")
        deepest = max((l for l in layers if isinstance(l, int)), default=-1)
        last = self.config.n_layer - 1 if return_logits else deepest
        out, x = {}, None
        for layer, x in self.states(idx, last):
            if layer in layers:
                out[layer] = x
        logits = self.head(self.ln_out(x)) if return_logits else None
        return out, logits

    @classmethod
    def random(cls, cfg: RWKV6Config, seed: int = 0, dtype: torch.dtype = torch.float32, **kwargs) -> "RWKV6":
        """A randomly initialised model with RWKV-LM's x060 init for the mixing and decay
        parameters (per-layer ramps), and scaled Gaussian weights (not RWKV-LM's zero
        output projections, which would make every block the identity). Same seed, same model."""
        with torch.device("meta"):  # no storage: the state dict below becomes the weights (assign=True),
            model = cls(cfg, **kwargs)  # so the build holds them once, not twice
        gen = torch.Generator().manual_seed(seed)
        C, L = cfg.n_embd, cfg.n_layer

        def normal(*shape, std):
            return torch.randn(*shape, generator=gen) * std

        def uniform(*shape, bound):
            return (torch.rand(*shape, generator=gen) * 2 - 1) * bound

        sd = {"emb.weight": normal(cfg.vocab_size, C, std=1.0),
              "ln_out.weight": torch.ones(C), "ln_out.bias": torch.zeros(C),
              "head.weight": normal(cfg.vocab_size, C, std=C ** -0.5)}
        ddd = torch.arange(C) / C
        n = torch.arange(C) / max(C - 1, 1)
        for i in range(L):
            p = f"blocks.{i}."
            r0 = i / max(L - 1, 1)  # 0 -> 1 across the layers
            r1 = 1.0 - i / L  # 1 -> almost 0
            if i == 0:
                sd[p + "ln0.weight"], sd[p + "ln0.bias"] = torch.ones(C), torch.zeros(C)
            for ln in ("ln1", "ln2"):
                sd[f"{p}{ln}.weight"], sd[f"{p}{ln}.bias"] = torch.ones(C), torch.zeros(C)
            a = p + "att."
            maa = {"x": 1 - ddd ** r1, "w": 1 - ddd ** r1, "k": 1 - ddd ** r1,
                   "v": 1 - (ddd ** r1 + 0.3 * r0), "r": 1 - ddd ** (0.5 * r1), "g": 1 - ddd ** (0.5 * r1)}
            for name, value in maa.items():
                sd[f"{a}time_maa_{name}"] = value.view(1, 1, C)
            sd[a + "time_maa_w1"] = uniform(C, 5 * cfg.dim_mix, bound=0.1)
            sd[a + "time_maa_w2"] = uniform(5, cfg.dim_mix, C, bound=0.1)
            sd[a + "time_decay"] = (-6 + 5 * n ** (0.7 + 1.3 * r0)).view(1, 1, C)
            sd[a + "time_decay_w1"] = uniform(C, cfg.dim_decay, bound=0.1)
            sd[a + "time_decay_w2"] = uniform(cfg.dim_decay, C, bound=0.1)
            sd[a + "time_faaaa"] = (r0 * (1 - n) + ((torch.arange(C) + 1) % 3 - 1) * 0.1).view(cfg.n_head, cfg.head_size)
            out_std = C ** -0.5 / math.sqrt(2 * L)  # residual branches sum to O(1) over the depth
            for name in ("receptance", "key", "value", "gate"):
                sd[f"{a}{name}.weight"] = normal(C, C, std=C ** -0.5)
            sd[a + "output.weight"] = normal(C, C, std=out_std)
            sd[a + "ln_x.weight"] = torch.full((C,), ((1 + i) / L) ** 0.7)
            sd[a + "ln_x.bias"] = torch.zeros(C)
            f = p + "ffn."
            sd[f + "time_maa_k"] = (1 - ddd ** r1).view(1, 1, C)
            sd[f + "time_maa_r"] = (1 - ddd ** r1).view(1, 1, C)
            sd[f + "key.weight"] = normal(cfg.dim_ffn, C, std=C ** -0.5)
            sd[f + "receptance.weight"] = normal(C, C, std=C ** -0.5)
            sd[f + "value.weight"] = normal(C, cfg.dim_ffn, std=cfg.dim_ffn ** -0.5 / math.sqrt(2 * L))
        model.load_state_dict(sd, strict=True, assign=True)
        return to_precision(model, dtype)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Layer "emb" of `states` (which calls it), for callers that run the blocks one at a time
        (early exit)."""
        return self.blocks[0].ln0(self.emb(idx).to(self.ln_out.weight.dtype))

    def block(self, i: int, x: torch.Tensor, carry: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        """Block i alone, as `states` runs it. Rows are independent, so a caller may drop rows
        of x between blocks (early exit shrinks the batch). `carry` is RWKV-7's v_first; RWKV-6
        has nothing to carry and returns None."""
        return self.blocks[i](x), None
