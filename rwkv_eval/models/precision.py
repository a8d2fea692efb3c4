"""Mixed precision for the native RWKV models: half-precision matmuls, fp32 everything else.

Why not simply `model.half()`: the residual stream of a large RWKV grows with depth
and passes float16's 65504 in the deep blocks of the released models (BlinkDL's
`rescale_every=6` halves it in fp16 for this reason), and the decays (`time_decay`,
`w0`), the bonus (`time_faaaa`, `r_k`) and the per-head group norm `ln_x` lose what
makes them work when rounded to 8 or 11 mantissa bits (BlinkDL's reference code keeps
them in fp32). So, as in BlinkDL's fp16/bf16 strategies minus the rescaling:

* the weights of every `Linear` (the projections r, k, v, g, output, the channel-mix
  MLP, the head) and the embedding table are stored in the run's dtype, and those
  matmuls run in it: they are >97% of the FLOPs and of the bytes;
* the residual stream, token-shift mixing, the low-rank LoRAs, decays, bonus, WKV
  state and accumulation, and every LayerNorm/GroupNorm run in the compute dtype,
  float32 (float64 for a float64 reference). Hidden states handed to pooling are this
  unscaled fp32 residual stream, the README's convention.

`Linear` casts its input to its weight's dtype and its output back to the input's, so
one code path serves float32, float64, float16 and bfloat16 on any device (half
precision runs on CPU too, slowly: that is how CI exercises the GPU's code path).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

MATMUL_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class Linear(nn.Linear):
    """nn.Linear (same parameter names) whose matmul runs in its weight's dtype and whose
    output comes back in the input's dtype (the residual stream's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.weight.dtype), self.weight, self.bias).to(x.dtype)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the residual stream, state and norms for a given matmul dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def to_precision(model: nn.Module, dtype: torch.dtype, device: str | torch.device | None = None) -> nn.Module:
    """Move `model` to `device`: matmul weights (Linear, Embedding) in `dtype`, the rest in
    `compute_dtype(dtype)`. Returns the model (modified in place), in eval mode, frozen."""
    if dtype not in MATMUL_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(str(d).removeprefix('torch.') for d in MATMUL_DTYPES)}; "
                         f"got {dtype}")
    model.to(device=device, dtype=compute_dtype(dtype))
    for m in model.modules():
        if isinstance(m, (Linear, nn.Embedding)):
            m.to(dtype)
    return model.eval().requires_grad_(False)

