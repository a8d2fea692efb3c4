"""RWKV-7 (Goose) in one file: config, time mixing, channel mixing, blocks, model.

Paper: Peng et al. 2025, "RWKV-7 "Goose" with Expressive Dynamic State Evolution",
arXiv:2503.14456, section 4. Reference code: BlinkDL/RWKV-LM RWKV-v7 (`RWKV_Tmix_x070`,
`RWKV_CMix_x070`, init) and BlinkDL/ChatRWKV `RWKV_x070_TMix_seq` / `RWKV_x070_CMix_seq`,
as released in the rwkv pip package 0.8.32 (rwkv/model.py).

Parameter names are exactly the BlinkDL checkpoint keys, with the checkpoint's shapes, so
`load_state_dict(strict=True)` takes an `RWKV-x070-*.pth` as is. Block 0 has no v0/v1/v2:
its values are the "first values" v_first that every later block mixes into its own
(value residual), so `RWKV7.states` threads v_first from block 0 through the stack.

Layers, as the rest of rwkv_eval numbers them (the same as models/rwkv6.py):
    "emb"  the token embedding after blocks.0.ln0, i.e. the input of block 0
    k      the residual stream after block k (0 <= k < n_layer); no final norm, no
           fp16 rescaling. Mixed precision as in models/rwkv6.py (models/precision.py).
Logits (ln_out + head) are only computed when asked for, to check against the oracle.

RWKV is causal: with right padding, every valid position is computed exactly as if the
sentence were alone. The token shift sees zeros before position 0 (an empty state).
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
from .wkv7 import DEFAULT_CHUNK_SIZE, WKV7_BACKENDS, wkv7

LN_EPS = 1e-5
GROUP_NORM_EPS = 64e-5  # att.ln_x, as BlinkDL's code uses for every head size
DECAY_SCALE = math.exp(-0.5)  # w = exp(-e^-0.5 * sigmoid(.)): every decay lies in (0.545, 1)


@dataclass(frozen=True)
class RWKV7Config:
    n_layer: int
    n_embd: int  # C, the residual width
    n_head: int  # H
    head_size: int  # K; n_head * head_size == n_embd
    dim_ffn: int  # hidden width of channel mixing (4 x C in the Goose releases)
    vocab_size: int  # 256 (byte-level tiny models) or 65536 (World tokenizer)
    dim_decay: int = 64  # rank of the decay LoRA (w1/w2)
    dim_a: int = 64  # rank of the in-context learning rate LoRA (a1/a2)
    dim_v: int = 32  # rank of the value-residual LoRA (v1/v2, blocks 1..L-1)
    dim_gate: int = 128  # rank of the output gate LoRA (g1/g2)

    def __post_init__(self):
        if self.n_head * self.head_size != self.n_embd:
            raise ValueError(f"n_head * head_size must equal n_embd; got {self.n_head} * {self.head_size} != {self.n_embd}")

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> "RWKV7Config":
        """Read the shape of a model from BlinkDL checkpoint keys."""
        vocab_size, n_embd = sd["emb.weight"].shape
        blocks = {int(k.split(".")[1]) for k in sd if k.startswith("blocks.")}
        H, K = sd["blocks.0.att.r_k"].shape
        v1 = sd.get("blocks.1.att.v1")  # absent in a one-block model
        return cls(
            n_layer=max(blocks) + 1, n_embd=n_embd, n_head=H, head_size=K,
            dim_ffn=sd["blocks.0.ffn.key.weight"].shape[0], vocab_size=vocab_size,
            dim_decay=sd["blocks.0.att.w1"].shape[1], dim_a=sd["blocks.0.att.a1"].shape[1],
            dim_v=cls.dim_v if v1 is None else v1.shape[1], dim_gate=sd["blocks.0.att.g1"].shape[1],
        )


# Named shapes for random-init models (benchmarks, tests).
SHAPES: dict[str, RWKV7Config] = {
    "tiny": RWKV7Config(n_layer=2, n_embd=32, n_head=4, head_size=8, dim_ffn=128, vocab_size=256,
                        dim_decay=8, dim_a=8, dim_v=8, dim_gate=8),
    "goose-0b1": RWKV7Config(n_layer=12, n_embd=768, n_head=12, head_size=64, dim_ffn=3072, vocab_size=65536),
}


def token_shift(x: torch.Tensor) -> torch.Tensor:
    """x_{t-1} for every t, zeros at t = 0: (B, T, C) -> (B, T, C)."""
    return F.pad(x, (0, 0, 1, -1))


class TimeMix7(nn.Module):
    """Goose time mixing: token shift, decay / learning-rate / value-residual / gate LoRAs, WKV-7."""

    def __init__(self, cfg: RWKV7Config, layer_id: int, wkv_backend: str = "auto",
                 chunk_size: int = DEFAULT_CHUNK_SIZE):
        super().__init__()
        C, H, K = cfg.n_embd, cfg.n_head, cfg.head_size
        self.layer_id, self.n_head, self.head_size = layer_id, H, K
        self.wkv_backend, self.chunk_size = wkv_backend, chunk_size
        for name in ("r", "w", "k", "v", "a", "g"):
            setattr(self, f"x_{name}", nn.Parameter(torch.zeros(1, 1, C)))  # token-shift lerp amounts
        lora = {"w": cfg.dim_decay, "a": cfg.dim_a, "v": cfg.dim_v}
        for name, rank in lora.items():
            if name == "v" and layer_id == 0:
                continue  # block 0 makes v_first, it does not mix it in
            setattr(self, f"{name}0", nn.Parameter(torch.zeros(1, 1, C)))
            setattr(self, f"{name}1", nn.Parameter(torch.zeros(C, rank)))
            setattr(self, f"{name}2", nn.Parameter(torch.zeros(rank, C)))
        self.g1 = nn.Parameter(torch.zeros(C, cfg.dim_gate))
        self.g2 = nn.Parameter(torch.zeros(cfg.dim_gate, C))
        self.k_k = nn.Parameter(torch.zeros(1, 1, C))  # xi: removal key = k * k_k
        self.k_a = nn.Parameter(torch.zeros(1, 1, C))  # how much the learning rate scales the written key
        self.r_k = nn.Parameter(torch.zeros(H, K))  # rho: bonus of the current token
        self.receptance = Linear(C, C, bias=False)
        self.key = Linear(C, C, bias=False)
        self.value = Linear(C, C, bias=False)
        self.output = Linear(C, C, bias=False)
        self.ln_x = nn.GroupNorm(H, C, eps=GROUP_NORM_EPS)

    def forward(self, x: torch.Tensor, v_first: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,T,C) input and block 0's values (None in block 0) -> (B,T,C) output, v_first."""
        B, T, C = x.shape
        H, K = self.n_head, self.head_size
        dx = token_shift(x) - x  # x_{t-1} - x_t
        # token shift (paper eq. 3): a fixed lerp towards the previous token per use
        xr, xw, xk = x + dx * self.x_r, x + dx * self.x_w, x + dx * self.x_k
        xv, xa, xg = x + dx * self.x_v, x + dx * self.x_a, x + dx * self.x_g
        # receptance, decay, key, value, in-context learning rate, gate (eq. 4-9)
        r = self.receptance(xr)  # (B,T,C)
        d = self.w0 + torch.tanh(xw @ self.w1) @ self.w2
        w = -DECAY_SCALE * torch.sigmoid(d)  # log-decay, in (-0.607, 0)
        k = self.key(xk)
        v = self.value(xv)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)  # alpha in (0, 1)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        # removal key kappa_hat (unit norm per head) and the written key k~ (eq. 10-12)
        kk = F.normalize((k * self.k_k).view(B, T, H, K), dim=-1)  # (B,T,C) -> (B,T,H,K)
        k = k * (1 + (a - 1) * self.k_a)
        # value residual (eq. 13): later blocks lerp towards block 0's values
        if self.layer_id == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        # WKV-7, the generalized delta rule (eq. 16-18): S <- (diag(w) - kk (a*kk)^T) S + k v^T
        rh, kh, vh = r.view(B, T, H, K), k.view(B, T, H, K), v.view(B, T, H, K)  # (B,T,C) -> (B,T,H,K)
        y, _ = wkv7(rh, kh, vh, w.view(B, T, H, K), -kk, kk * a.view(B, T, H, K),
                    backend=self.wkv_backend, chunk_size=self.chunk_size, final_state=False)
        # group norm per head, plus the current token's bonus (r . (k * r_k)) v, gate, output (eq. 19-21)
        y = self.ln_x(y.reshape(B * T, C)).view(B, T, C)  # (B,T,H,K) -> (B*T,C) -> (B,T,C)
        bonus = (rh * kh * self.r_k).sum(dim=-1, keepdim=True) * vh  # (B,T,H,K)
        return self.output((y + bonus.view(B, T, C)) * g), v_first


class ChannelMix7(nn.Module):
    """Goose channel mixing: token shift and a squared-ReLU MLP (no receptance gate, unlike RWKV-6)."""

    def __init__(self, cfg: RWKV7Config):
        super().__init__()
        C = cfg.n_embd
        self.x_k = nn.Parameter(torch.zeros(1, 1, C))
        self.key = Linear(C, cfg.dim_ffn, bias=False)
        self.value = Linear(cfg.dim_ffn, C, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = torch.relu(self.key(x + (token_shift(x) - x) * self.x_k)) ** 2  # (B,T,dim_ffn)
        return self.value(k)


class Block7(nn.Module):
    def __init__(self, cfg: RWKV7Config, layer_id: int, wkv_backend: str = "auto",
                 chunk_size: int = DEFAULT_CHUNK_SIZE):
        super().__init__()
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)  # applied to the embeddings, see RWKV7.states
        self.ln1 = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)
        self.ln2 = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)
        self.att = TimeMix7(cfg, layer_id, wkv_backend, chunk_size)
        self.ffn = ChannelMix7(cfg)

    def forward(self, x: torch.Tensor, v_first: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        dx, v_first = self.att(self.ln1(x), v_first)
        x = x + dx
        return x + self.ffn(self.ln2(x)), v_first


class RWKV7(nn.Module):
    """RWKV-7 language model whose hidden states are read layer by layer.

    Args:
        cfg: the shape (see `RWKV7Config.from_state_dict`).
        wkv_backend: "auto" (default: the compiled kernel on a CPU, else chunked), "cpu", "chunked"
            or "naive", see models/wkv7.py; `resolve_backend` names what "auto" runs.
        chunk_size: tokens per chunk of the chunked WKV.
    """

    def __init__(self, cfg: RWKV7Config, wkv_backend: str = "auto", chunk_size: int = DEFAULT_CHUNK_SIZE):
        super().__init__()
        if wkv_backend not in WKV7_BACKENDS:
            raise ValueError(f"unknown WKV-7 backend {wkv_backend!r}; choose from {', '.join(WKV7_BACKENDS)}")
        self.config = cfg
        self.wkv_backend = wkv_backend
        self.emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block7(cfg, i, wkv_backend, chunk_size) for i in range(cfg.n_layer))
        self.ln_out = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)
        self.head = Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    def layers(self) -> tuple[Layer, ...]:
        return (EMBEDDING, *range(self.config.n_layer))

    def states(self, idx: torch.Tensor, last: int | None = None) -> Iterator[tuple[Layer, torch.Tensor]]:
        """Yield ("emb", x) and then (k, x) after each block k, up to block `last` included.

        Args:
            idx: (B, T) long token ids; right padding needs no mask (the model is causal).
            last: deepest block to run (None = all; -1 = only the embedding).
        Yields:
            (layer, (B, T, C) tensor in the compute dtype: float32, float64 for a float64 model).
        """
        L = self.config.n_layer
        last = L - 1 if last is None else last
        if not -1 <= last < L:
            raise ValueError(f"block {last} out of range for an RWKV-7 with {L} blocks (-1..{L - 1})")
        if idx.ndim != 2:
            raise ValueError(f"idx must be (B, T) token ids; got shape {tuple(idx.shape)}")
        x = self.embed(idx)  # (B,T,C), fp32 from here on
        yield EMBEDDING, x
        v_first = None  # block 0's values (B,T,C), set by block 0, read by the others
        for i in range(last + 1):
            x, v_first = self.blocks[i](x, v_first)
            yield i, x

    def forward(self, idx: torch.Tensor, layers: Sequence[Layer] = (), return_logits: bool = False
                ) -> tuple[dict[Layer, torch.Tensor], torch.Tensor | None]:
        """Run up to the deepest requested layer (all blocks if logits are asked for).

        Returns:
            ({layer: (B, T, C)} for the requested layers, (B, T, vocab) logits or None).
        """
        unknown = [l for l in layers if l not in self.layers()]
        if unknown:
            raise ValueError(f"layers {unknown} out of range for an RWKV-7 with {self.config.n_layer} blocks "
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
    def random(cls, cfg: RWKV7Config, seed: int = 0, dtype: torch.dtype = torch.float32, **kwargs) -> "RWKV7":
        """A randomly initialised model with RWKV-LM's x070 ramps for the token-shift, decay,
        k_k/k_a and ln_x parameters, and small random LoRAs and scaled Gaussian weights where
        RWKV-LM starts at zero (which would make every block the identity). Same seed, same model."""
        with torch.device("meta"):  # no storage: the state dict below becomes the weights (assign=True),
            model = cls(cfg, **kwargs)  # so the build holds them once, not twice
        gen = torch.Generator().manual_seed(seed)
        C, L = cfg.n_embd, cfg.n_layer

        def normal(*shape, std):
            return torch.randn(*shape, generator=gen) * std

        sd = {"emb.weight": normal(cfg.vocab_size, C, std=1.0),
              "ln_out.weight": torch.ones(C), "ln_out.bias": torch.zeros(C),
              "head.weight": normal(cfg.vocab_size, C, std=C ** -0.5)}
        ddd = (torch.arange(C) / C).view(1, 1, C)
        n = torch.arange(C) / max(C - 1, 1)
        out_std = C ** -0.5 / math.sqrt(2 * L)  # residual branches sum to O(1) over the depth
        for i in range(L):
            p, r0, r1 = f"blocks.{i}.", i / max(L - 1, 1), 1.0 - i / L  # r0: 0 -> 1, r1: 1 -> almost 0
            for ln in ("ln0", "ln1", "ln2") if i == 0 else ("ln1", "ln2"):
                sd[f"{p}{ln}.weight"], sd[f"{p}{ln}.bias"] = torch.ones(C), torch.zeros(C)
            a = p + "att."
            for name, power in {"r": 0.2, "w": 0.9, "k": 0.7, "v": 0.7, "a": 0.9, "g": 0.2}.items():
                sd[f"{a}x_{name}"] = 1 - ddd ** (power * r1)
            sd[a + "w0"] = (-7 + 5 * n ** (0.85 + r0 ** 0.5) + 0.5).view(1, 1, C)
            sd[a + "a0"] = torch.zeros(1, 1, C)
            if i > 0:
                sd[a + "v0"] = torch.ones(1, 1, C)
            for name, rank in {"w": cfg.dim_decay, "a": cfg.dim_a, "v": cfg.dim_v, "g": cfg.dim_gate}.items():
                if name != "v" or i > 0:
                    sd[f"{a}{name}1"] = normal(C, rank, std=0.1 * C ** -0.5)
                    sd[f"{a}{name}2"] = normal(rank, C, std=0.1 * rank ** -0.5)
            sd[a + "k_k"] = torch.full((1, 1, C), 0.85)
            sd[a + "k_a"] = torch.ones(1, 1, C)
            sd[a + "r_k"] = normal(cfg.n_head, cfg.head_size, std=0.1)
            for name in ("receptance", "key", "value"):
                sd[f"{a}{name}.weight"] = normal(C, C, std=C ** -0.5)
            sd[a + "output.weight"] = normal(C, C, std=out_std)
            sd[a + "ln_x.weight"] = torch.full((C,), ((1 + i) / L) ** 0.7)
            sd[a + "ln_x.bias"] = torch.zeros(C)
            f = p + "ffn."
            sd[f + "x_k"] = 1 - ddd ** (r1 ** 4)
            sd[f + "key.weight"] = normal(cfg.dim_ffn, C, std=C ** -0.5)
            sd[f + "value.weight"] = normal(C, cfg.dim_ffn, std=cfg.dim_ffn ** -0.5 / math.sqrt(2 * L))
        model.load_state_dict(sd, strict=True, assign=True)
        return to_precision(model, dtype)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Layer "emb" of `states` (which calls it), for callers that run the blocks one at a time
        (early exit)."""
        return self.blocks[0].ln0(self.emb(idx).to(self.ln_out.weight.dtype))

    def block(self, i: int, x: torch.Tensor, carry: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Block i alone, as `states` runs it; `carry` is v_first (None before block 0, which sets
        it). Rows are independent: a caller may drop the same rows of x and carry between blocks."""
        return self.blocks[i](x, carry)
