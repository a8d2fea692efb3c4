"""The native RWKV encoder: a checkpoint (or an in-memory model) as a `TokenEncoder`.

Layers (the suite's convention, see encoder.py and models/rwkv6.py):
    "emb"  embedding after blocks.0.ln0
    k      residual stream after block k, 0 <= k < n_layer (Hugging Face
           hidden_states[k]); no final norm, no fp16 rescaling
`states` runs only up to the deepest requested block; `block_stepper` runs the same
blocks one at a time (`RWKVStepper`, for early exit).

Batches are right-padded by `TokenEncoder.batches`; RWKV is causal, so the valid
positions of a padded row equal those of the sentence alone and the mask is not needed
by the model (pooling uses it). An RWKV-6 runs a batch's sentences end to end as one
flat sequence instead (`pack_rows`, models/rwkv6.py `Packed`): the per-token work
(projections, mixing, norms, MLP: all but the WKV) computes the real tokens and no
padding; the WKV restarts its state where each sentence starts, on the flat sequence as it
lies (the compiled CPU kernel) or in rows packed first fit, longest first (the chunked
form); the states go back to the padded layout for pooling. The padding a batch of sorted
sentences would have computed (7-20% of its positions, more in the WKV's chunks) is not
computed; the results are those of the padded batch up to fp32 summation order.
float16/bfloat16 run on any device (on CPU slowly, for tests) as mixed precision:
half-precision matmuls, float32 residual stream, WKV state and norms
(models/precision.py); the hidden states handed to pooling are float32.

Example:
    >>> enc = load_rwkv("RWKV-x060-World-1B6-v2.1-20240328-ctx4096.pth")  # doctest: +SKIP
    >>> enc.encode(["a cat", "a dog"], layers=[5], poolings=["mean"])[(5, "mean")].shape  # doctest: +SKIP
    (2, 64)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..encoder import Layer, TokenEncoder
from . import wkv6, wkv7
from .checkpoint import check_state_dict, load_checkpoint
from .precision import MATMUL_DTYPES, to_precision
from .rwkv6 import RWKV6, Packed, RWKV6Config
from .rwkv7 import RWKV7, RWKV7Config
from .tokenizers import ByteTokenizer, HFTokenizer, Tokenizer, WorldTokenizer, choose_tokenizer

DEFAULT_MAX_LENGTH = 512


class RWKVStepper:
    """An RWKV-6/7 model block by block (encoder.BlockStepper): the calls `RWKV6.states` /
    `RWKV7.states` make, one at a time. The carry is RWKV-7's v_first, block 0's values
    (B,T,C), which every later block mixes in; RWKV-6 carries nothing (None)."""

    def __init__(self, model: RWKV6 | RWKV7):
        self._model = model
        self.n_blocks = model.config.n_layer

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self._model.embed(ids)

    def block(self, i: int, x: torch.Tensor, carry: Any) -> tuple[torch.Tensor, Any]:
        return self._model.block(i, x, carry)

    def select(self, x: torch.Tensor, carry: Any, rows: torch.Tensor, length: int) -> tuple[torch.Tensor, Any]:
        # v_first is per row and position like x, so it is cut the same way
        return x[rows, :length], None if carry is None else carry[rows, :length]


class RWKVEncoder(TokenEncoder):
    """Hidden states of a native RWKV model as sentence embeddings.

    Args:
        model: an `RWKV6` or `RWKV7` (weights already loaded; it is put in eval mode).
        tokenizer: a ByteTokenizer, WorldTokenizer or HFTokenizer.
        name: model id for records (path, hub id, or e.g. "random-rwkv6:small").
        revision: sha256 of the weights, hub commit, or e.g. "seed=0" for random init.
        max_length: tokens kept per sentence (the rest is cut and counted).
        arch: "rwkv6" or "rwkv7"; None = from the model's class.
        sha256: of the weights file(s), when there is one.
        pack: pack each batch's sentences into fewer rows (RWKV-6; see `pack_rows`).
    """

    def __init__(self, model: RWKV6 | RWKV7, tokenizer: Tokenizer, *, name: str, revision: str,
                 max_length: int = DEFAULT_MAX_LENGTH, arch: str | None = None, sha256: str | None = None,
                 pack: bool = True):
        if not isinstance(model, (RWKV6, RWKV7)):
            raise TypeError(f"model must be an RWKV6 or RWKV7; got {type(model).__name__}")
        arch = arch or ("rwkv7" if isinstance(model, RWKV7) else "rwkv6")
        if not isinstance(tokenizer, (ByteTokenizer, WorldTokenizer, HFTokenizer)):
            raise TypeError(f"tokenizer must be a ByteTokenizer, WorldTokenizer or HFTokenizer; got {type(tokenizer).__name__}")
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ValueError(f"{name}: tokenizer {tokenizer.name!r} has {tokenizer.vocab_size} ids, the model only "
                             f"{model.config.vocab_size}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1; got {max_length}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name, self.revision, self.arch, self.sha256 = name, revision, arch, sha256
        self.max_length = max_length
        self.device, self.dtype = model.head.weight.device, model.head.weight.dtype  # the matmul dtype
        self.compute_dtype = model.ln_out.weight.dtype  # residual stream, state, norms
        self.pad_id = 0
        self.pack = pack and isinstance(model, RWKV6)  # RWKV-7's WKV has no per-token state reset (yet)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer.encode_batch(texts)

    def layers(self) -> tuple[Layer, ...]:
        return self.model.layers()

    @property
    def n_layers(self) -> int:
        return self.model.config.n_layer

    def states(self, ids: torch.Tensor, mask: torch.Tensor, layers: tuple[Layer, ...]) -> Iterator[tuple[Layer, torch.Tensor]]:
        """Yield (layer, (B, T, C) states) for the requested layers, shallowest first; stop after the deepest.
        `mask` is not read: the model is causal, so right padding cannot reach a valid position."""
        unknown = [l for l in layers if l not in self.layers()]
        if unknown:
            raise ValueError(f"layer {unknown[0]!r} out of range for {self.name} ('emb', 0..{self.n_layers - 1})")
        wanted = set(layers)
        deepest = max((l for l in layers if isinstance(l, int)), default=-1)
        ids = ids.to(self.device)
        packing = pack_rows(mask.sum(dim=1).tolist(), ids.shape[1], self.model.chunk_size) if self.pack else None
        with torch.inference_mode():
            if packing is None:
                yield from ((layer, x) for layer, x in self.model.states(ids, last=deepest) if layer in wanted)
                return
            B, T = ids.shape
            dst = torch.as_tensor(packing.dst, device=self.device)
            flat = ids.view(-1)[dst].unsqueeze(0)  # (1, n): the sentences end to end
            for layer, x in self.model.states(flat, last=deepest, packed=packing.packed(self.device)):
                if layer in wanted:  # back to the padded (B,T,C) layout; padding positions hold zeros
                    out = x.new_zeros(B * T, x.shape[-1])
                    out[dst] = x[0]
                    yield layer, out.view(B, T, -1)

    def wkv_backend(self) -> str:
        """The WKV backend this encoder's batches run: "auto" resolved for its device and dtype."""
        resolve = wkv6.resolve_backend if isinstance(self.model, RWKV6) else wkv7.resolve_backend
        return resolve(self.model.wkv_backend, self.device, self.compute_dtype)

    def block_stepper(self) -> RWKVStepper:
        return RWKVStepper(self.model)

    def provenance(self) -> dict:
        c = self.model.config
        return {**super().provenance(), "arch": self.arch, "backend": "native",
                "sha256": self.sha256, "compute_dtype": str(self.compute_dtype).removeprefix("torch."),
                "precision": "mixed: matmul weights in dtype; residual, WKV state, decays, norms in compute_dtype",
                "tokenizer": self.tokenizer.describe(), "wkv_backend": self.wkv_backend(),
                "wkv_chunk_size": self.model.blocks[0].att.chunk_size, "packed": self.pack,
                "config": asdict(c)}  # RWKV6Config or RWKV7Config fields


def load_rwkv(spec: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
              tokenizer: str | Tokenizer | None = None, max_length: int = DEFAULT_MAX_LENGTH,
              revision: str | None = None, wkv_backend: str | None = None,
              chunk_size: int | None = None) -> RWKVEncoder:
    """A native RWKV encoder from a BlinkDL .pth, a Hugging Face directory or a hub id.

    Args:
        spec: path or hub id (see models/checkpoint.py).
        device, dtype: float32, float16, bfloat16 (mixed precision, models/precision.py) or
            float64, on any device.
        tokenizer: 'world', 'byte', 'hf', a tokenizer object, or None to detect.
        max_length: tokens kept per sentence.
        revision: hub revision (hub ids only).
        wkv_backend, chunk_size: see models/wkv6.py (RWKV-6) and models/wkv7.py (RWKV-7); None is each
            architecture's default ("auto": the compiled kernel on a CPU; RWKV-6's chunks by head size,
            models/rwkv6.py `default_chunk_size`).
    """
    if dtype not in MATMUL_DTYPES:
        raise ValueError(f"{spec}: dtype {dtype} is not supported; use float32, float16, bfloat16 or float64")
    ckpt = load_checkpoint(spec, revision=revision)
    where = ", ".join(str(f) for f in ckpt.files)
    config_class, model_class = {"rwkv6": (RWKV6Config, RWKV6), "rwkv7": (RWKV7Config, RWKV7)}[ckpt.arch]
    cfg = config_class.from_state_dict(ckpt.state_dict)
    options = {"wkv_backend": wkv_backend, "chunk_size": chunk_size}
    model = model_class(cfg, **{k: v for k, v in options.items() if v is not None})
    check_state_dict(ckpt.state_dict, model.state_dict(), where)
    model.load_state_dict(ckpt.state_dict, strict=True)
    model = to_precision(model, dtype, device)
    if isinstance(tokenizer, str) or tokenizer is None:
        tokenizer = choose_tokenizer(tokenizer, cfg.vocab_size, ckpt.directory, source=ckpt.source)
    return RWKVEncoder(model, tokenizer, name=ckpt.source, revision=ckpt.revision, max_length=max_length,
                       arch=ckpt.arch, sha256=ckpt.sha256)


@dataclass(frozen=True)
class Packing:
    """Where a batch's tokens go: the flat sequence, in the order of their places in the
    WKV's (n_rows, row_tokens) rows, and back to the padded (B, T) batch."""

    n_rows: int
    row_tokens: int
    src: np.ndarray  # (n,) each real token's place in the rows, increasing: the flat order
    dst: np.ndarray  # (n,) the same tokens' positions in the padded (B, T) batch
    starts: np.ndarray  # places in the rows where a sentence begins
    pads: np.ndarray  # places where a row's padding begins (rows with room left after their sentences)

    def packed(self, device: str | torch.device) -> Packed:
        """The model's view of it (models/rwkv6.py `Packed`), on `device`."""
        places = self.n_rows * self.row_tokens
        tokens = np.zeros(places, dtype=np.int64)  # padding: a copy of the flat sequence's first token
        tokens[self.src] = np.arange(len(self.src))
        row_starts = np.zeros(places, dtype=bool)
        row_starts[self.starts] = row_starts[self.pads] = True  # padding is a segment of its own
        as_tensor = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
        starts = np.searchsorted(self.src, self.starts)  # flat positions
        flat_starts = np.zeros((1, len(self.src)), dtype=bool)
        flat_starts[0, starts] = True
        return Packed(starts=as_tensor(starts), flat_starts=as_tensor(flat_starts), rows=as_tensor(self.src // self.row_tokens),
                      places=as_tensor(self.src % self.row_tokens), tokens=as_tensor(tokens),
                      row_starts=as_tensor(row_starts).view(self.n_rows, self.row_tokens))


def pack_rows(lengths: list[int], T: int, chunk: int, max_widen: int = 4) -> Packing | None:
    """Sentences of these lengths (a padded batch of width T) laid end to end, and packed
    into WKV rows first fit, longest first; None when there is no padding to skip.

    Rows are a whole number of WKV chunks wide (the chunked WKV pads to one anyway): the
    narrowest width that holds the longest sentence, or up to `max_widen` times it when
    wider rows hold the same tokens in fewer places (short sentences beside a long one).
    Empty sentences take no place: their states stay zero, as pooling's mask reads them.
    """
    if sum(lengths) in (0, len(lengths) * T):  # only empty sentences, or no padding: the padded batch as is
        return None
    base = -(-max(T, 1) // chunk) * chunk
    order = sorted((i for i, n in enumerate(lengths) if n > 0), key=lambda i: -lengths[i])
    best: tuple[int, int, list[list[int]]] | None = None
    for width in range(base, base * max_widen + 1, base):
        rows: list[list[int]] = []
        free: list[int] = []
        for i in order:
            r = next((j for j, f in enumerate(free) if f >= lengths[i]), None)
            if r is None:
                rows.append([])
                free.append(width)
                r = len(rows) - 1
            rows[r].append(i)
            free[r] -= lengths[i]
        if best is None or len(rows) * width < best[0] * best[1]:
            best = (len(rows), width, rows)
    n_rows, width, rows = best
    src, dst, starts, pads = [], [], [], []
    for r, members in enumerate(rows):
        offset = r * width
        for i in members:
            n = lengths[i]
            starts.append(offset)
            src.append(np.arange(offset, offset + n))
            dst.append(np.arange(i * T, i * T + n))
            offset += n
        if offset < (r + 1) * width:
            pads.append(offset)
    return Packing(n_rows, width, np.concatenate(src), np.concatenate(dst), np.asarray(starts, dtype=np.int64),
                   np.asarray(pads, dtype=np.int64))
