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
`random-rwkv7:NAME` builds an RWKV-7 (Goose) of the shapes in models/rwkv7.py
(goose-0b1: 12 x 768; tiny).
"""

from __future__ import annotations

import hashlib

import torch

from .precision import to_precision
from .rwkv import RWKVEncoder
from .rwkv6 import RWKV6, SHAPES as MODEL_SHAPES, RWKV6Config
from .rwkv7 import RWKV7, SHAPES as RWKV7_SHAPES
from .tokenizers import ByteTokenizer, WorldTokenizer

SHAPES: dict[str, RWKV6Config] = {
    "smoke": RWKV6Config(n_layer=12, n_embd=256, n_head=4, head_size=64, dim_ffn=896, vocab_size=65536),
    **MODEL_SHAPES,
}


def state_dict_sha256(model: torch.nn.Module) -> str:
    """Digest of the weights, so a record shows that two runs used the same random model."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def random_rwkv_encoder(shape: str = "smoke", seed: int = 0, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float32, max_length: int = 512, arch: str = "rwkv6") -> RWKVEncoder:
    model_cls, shapes = (RWKV6, SHAPES) if arch == "rwkv6" else (RWKV7, RWKV7_SHAPES)
    if shape not in shapes:
        raise ValueError(f"unknown random {arch} shape {shape!r}; choose from {', '.join(shapes)}")
    cfg = shapes[shape]
    model = to_precision(model_cls.random(cfg, seed=seed), dtype, device)
    tokenizer = ByteTokenizer() if cfg.vocab_size == 256 else WorldTokenizer()
    return RWKVEncoder(model, tokenizer, name=f"random-{arch}:{shape}",
                       revision=f"random-init seed={seed}", max_length=max_length, arch=arch,
                       sha256=state_dict_sha256(model))
