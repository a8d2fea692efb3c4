"""Seeded random-init native RWKV-6 encoders: real architecture, real cost, no download.

Their Spearman is meaningless (untrained weights) — benchmarks mark them trained=false —
but their time and memory per token are those of a trained model of the same shape,
which is what the smoke profile and the throughput benchmarks measure.

Shapes (`random-rwkv6:NAME` on the command line):
    smoke      12 blocks x 256 wide, head size 64, World vocabulary: layers 1..11 of the
               study exist, and a CPU encodes the smoke data in seconds
    small      12 x 768, head size 64 (the throughput comparison with the rwkv package)
    finch-1b6  24 x 2048, 32 heads x 64, FFN 7168, vocab 65536: RWKV-6 Finch 1B6
    tiny       2 x 32, byte vocabulary (tests)
    growth     8 x 64, byte vocabulary, with "massive activations": every block's FFN
               pushes two channels up, so the residual stream passes float16's 65504
               after a few blocks, as in the deep blocks of large trained RWKVs
               (the half-precision tests; also `random-rwkv7:growth`)
`random-rwkv7:NAME` builds an RWKV-7 (Goose) of the shapes in models/rwkv7.py
(goose-0b1: 12 x 768; tiny) or `growth`.
"""

from __future__ import annotations

import hashlib

import torch

from .precision import to_precision
from .rwkv import RWKVEncoder
from .rwkv6 import RWKV6, SHAPES as MODEL_SHAPES, RWKV6Config
from .rwkv7 import RWKV7, SHAPES as RWKV7_SHAPES, RWKV7Config
from .tokenizers import ByteTokenizer, WorldTokenizer

SHAPES: dict[str, RWKV6Config] = {
    "smoke": RWKV6Config(n_layer=12, n_embd=256, n_head=4, head_size=64, dim_ffn=896, vocab_size=65536),
    **MODEL_SHAPES,
}
GROWTH_SHAPES = {
    "rwkv6": RWKV6Config(n_layer=8, n_embd=64, n_head=2, head_size=32, dim_ffn=224, vocab_size=256, dim_mix=8,
                         dim_decay=16),
    "rwkv7": RWKV7Config(n_layer=8, n_embd=64, n_head=2, head_size=32, dim_ffn=256, vocab_size=256, dim_decay=8,
                         dim_a=8, dim_v=8, dim_gate=16),
}
MASSIVE_CHANNELS = (5, 40)
MASSIVE_PUSH = 30000.0  # per block, below 65504 so one block's matmul output fits float16


def add_massive_activations(model: RWKV6 | RWKV7, channels: tuple[int, ...] = MASSIVE_CHANNELS,
                            push: float = MASSIVE_PUSH) -> RWKV6 | RWKV7:
    """Make every block's channel mixing add about `push` to `channels` of the residual.

    The "massive activations" of trained LLMs (Sun et al. 2024, arXiv:2402.17762): a few
    channels orders of magnitude above the rest, constant across tokens. A positive row
    of the FFN's value matrix turns the non-negative squared-ReLU hidden units (mean
    square ~0.5 after the LayerNorm) into a positive output of ~push on that channel,
    so the stream grows by ~push per block (times RWKV-6's receptance gate, ~0.5).
    """
    with torch.no_grad():
        for block in model.blocks:
            w = block.ffn.value.weight  # (C, dim_ffn)
            w[list(channels)] = 2 * push / w.shape[1]
    return model


def state_dict_sha256(model: torch.nn.Module) -> str:
    """Digest of the weights, so a record shows that two runs used the same random model."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def random_rwkv_encoder(shape: str = "smoke", seed: int = 0, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float32, max_length: int = 512, arch: str = "rwkv6") -> RWKVEncoder:
    model_cls, shapes = (RWKV6 if arch == "rwkv6" else RWKV7), random_shapes(arch)
    if shape not in shapes:
        raise ValueError(f"unknown random {arch} shape {shape!r}; choose from {', '.join(shapes)}")
    cfg = shapes[shape]
    model = model_cls.random(cfg, seed=seed)
    if shape == "growth":
        add_massive_activations(model)
    model = to_precision(model, dtype, device)
    tokenizer = ByteTokenizer() if cfg.vocab_size == 256 else WorldTokenizer()
    return RWKVEncoder(model, tokenizer, name=f"random-{arch}:{shape}",
                       revision=f"random-init seed={seed}", max_length=max_length, arch=arch,
                       sha256=state_dict_sha256(model))


def random_shapes(arch: str) -> dict:
    """The shapes random-ARCH:SHAPE may name: the model file's own, smoke (RWKV-6) and growth."""
    return {**(SHAPES if arch == "rwkv6" else RWKV7_SHAPES), "growth": GROWTH_SHAPES[arch]}
