"""The one interface every model plugs into: texts in, pooled vectors per (layer, pooling) out.

GloVe, the native RWKV models and Hugging Face transformers all implement `Encoder`;
evaluation, benchmarks and the CLI see nothing else (the mteb pattern: the encoder is a
Protocol).  `TokenEncoder` holds the machinery they share, so that each model only says
how to tokenize and how to produce hidden states:

* sentences are tokenized once, sorted by length (longest first, so the first batch
  shows the peak memory) and batched with right padding and a mask, every later batch
  filled to the first one's padded tokens;
* the model yields the states of each requested layer as soon as it has computed
  them, and they are pooled on the spot: no (B, T, D) tensor of any layer outlives its
  pooling unless `keep_states=True`;
* the model stops after the deepest requested layer;
* a prompt template (templates.py) is a text transform that `tokenize` applies before
  the tokenizer, so a prompted encoder is the same encoder (a shallow copy sharing the
  weights, `templates.with_template`), not a wrapper that could hide a member.

Running block by block (early exit, analyses/early_exit.py) is an optional capability:
`Encoder.block_stepper()` returns a `BlockStepper`, or None for an encoder that can only
run its whole stack in one call (GloVe, transformers).

Layer names: an int k is the residual stream after block k (the Hugging Face
`hidden_states[k]` convention for RWKV, see models/rwkv6.py); "emb" is the input
embedding (after ln0 for RWKV). A model with one layer (GloVe) calls it 0.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence, Union, runtime_checkable

import numpy as np
import torch
from tqdm.auto import tqdm

from .pooling import check_poolings, pool
from .templates import apply_template

Layer = Union[int, str]
EMBEDDING = "emb"
# the names of the layer grammar (layer_items), the one list: "all" = every layer, "final" =
# after the final norm (Hugging Face models that have one)
LAYER_NAMES = ("all", EMBEDDING, "final")


def layer_id(layer) -> str:
    """L05 for block 5, Lemb for the embedding: ids that sort by depth."""
    return f"L{layer:02d}" if isinstance(layer, int) and not isinstance(layer, bool) else f"L{layer}"


class NonFiniteEmbedding(ValueError):
    """A pooled vector holds NaN or inf: overflow in half precision, or broken weights."""


@dataclass
class Embeddings:
    """Pooled sentence vectors: `vectors[(layer, pooling)]` is (N, D) float32, input order."""

    vectors: dict[tuple[Layer, str], np.ndarray]
    n_sentences: int
    n_tokens: int = 0
    n_truncated: int = 0  # sentences cut at the encoder's max_length
    n_empty: int = 0  # sentences with no token left (pooled to zero vectors)
    states: dict[Layer, list[np.ndarray]] | None = field(default=None, repr=False)

    def __getitem__(self, key: tuple[Layer, str]) -> np.ndarray:
        return self.vectors[key]


@runtime_checkable
class BlockStepper(Protocol):
    """An encoder's stack run one block at a time, so a caller can stop rows early.

    Rows are independent (a causal model with right padding): between blocks a caller may
    drop rows, and padding positions no remaining row needs, with `select`; the rows kept
    are then computed exactly as in one pass. `embed` gives layer "emb", and after
    `block(k, ...)` x is layer k of `Encoder.encode_tokens` (same numbering, same values).
    """

    n_blocks: int  # blocks 0..n_blocks-1

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) long token ids on the encoder's device -> (B, T, C) layer "emb"."""
        ...

    def block(self, i: int, x: torch.Tensor, carry: Any) -> tuple[torch.Tensor, Any]:
        """Block i on the (B, T, C) output of block i-1 (or of `embed`); `carry` is what the
        model threads between blocks besides x (None before block 0): (x after block i, carry)."""
        ...

    def select(self, x: torch.Tensor, carry: Any, rows: torch.Tensor, length: int) -> tuple[torch.Tensor, Any]:
        """x and carry of the kept `rows` ((B,) bool mask or row indices), cut to the first
        `length` positions: the batch early exit goes on with."""
        ...


@runtime_checkable
class Encoder(Protocol):
    """Every member a caller of an encoder may use (evaluation, analyses, suite, CLI, adapter).

    A caller needing something more adds it here, never probes a model with getattr."""

    name: str  # model id as the user gave it (hub id, path, or built-in name)
    revision: str  # hub revision, or sha256 of the weights file
    device: torch.device  # where token ids must be and states are computed
    dtype: torch.dtype  # the matmul dtype
    max_length: int  # tokens kept per sentence; longer ones are cut (and counted)
    template: str | None  # prompt template name ("custom" for a custom text), None = the sentence as is
    template_text: str | None  # its text with one {sentence}, None without a template

    def layers(self) -> tuple[Layer, ...]:
        """Every layer this encoder can return, in depth order."""
        ...

    def tokenize(self, sentences: Sequence[str]) -> list[list[int]]:
        """Token ids per sentence, the template (if any) applied first; not cut at max_length."""
        ...

    def encode(
        self,
        sentences: Sequence[str],
        layers: Sequence[Layer],
        poolings: Sequence[str],
        batch_size: int = 32,
        keep_states: bool = False,
    ) -> Embeddings:
        """`tokenize`, then `encode_tokens`."""
        ...

    def encode_tokens(
        self,
        token_ids: list[list[int]],
        layers: Sequence[Layer],
        poolings: Sequence[str],
        batch_size: int = 32,
        keep_states: bool = False,
    ) -> Embeddings:
        """Pooled vectors per (layer, pooling) of tokenized sentences from one pass per batch."""
        ...

    def batches(self, token_ids: list[list[int]], batch_size: int, order: Sequence[int] | None = None
                ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        """Right-padded batches on `device`: (row indices into token_ids, ids (B,T), mask (B,T))."""
        ...

    def block_stepper(self) -> BlockStepper | None:
        """The stack block by block, or None when this encoder runs it only in one call."""
        ...

    def provenance(self) -> dict:
        """What a result needs to be reproduced: model id, revision/hash, dtype, device, template, ..."""
        ...


_RANGE = re.compile(r"^(\d+)-(\d+)$", re.ASCII)
_RELATIVE = re.compile(r"^(?:(\d+(?:\.\d*)?)%|(\d*\.\d+))$", re.ASCII)  # 50% | 0.5 (a dot marks a fraction of depth)


def layer_items(spec: str | Sequence[Layer]) -> list[Layer | tuple[str, float | int, int]]:
    """Split a layer spec into items without an encoder, so a profile is checked on load.

    Items: an int (negative counts from the deepest block), a name ("all", "emb",
    "final"), ("range", a, b) for "a-b" inclusive, ("relative", f, 0) for "50%" / "0.5"
    (f in [0, 1]: 0 = first block, 1 = deepest block)."""
    raw = spec.split(",") if isinstance(spec, str) else list(spec)
    if not raw:
        raise ValueError("empty layer list; expected e.g. '1,3,5', '0-23', 'all', 'emb', 'final' or '50%'")
    out: list = []
    for i, item in enumerate(raw, start=1):
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ValueError(f"layer {item!r} is a {type(item).__name__}; expected an int or a string like '0-23', "
                             "'all', 'emb', 'final', '50%'")
        if isinstance(item, int):
            out.append(item)
            continue
        item = item.strip()
        if item.isascii() and item.lstrip("-").isdigit():  # "³" is a digit to str, not to int()
            out.append(int(item))
        elif m := _RANGE.match(item):
            a, b = int(m[1]), int(m[2])
            if a > b:
                raise ValueError(f"layer range {item!r} runs backwards; write it low-high, e.g. '{b}-{a}'")
            out.append(("range", a, b))
        elif m := _RELATIVE.match(item):
            f = float(m[1]) / 100 if m[1] is not None else float(m[2])
            if not 0.0 <= f <= 1.0:
                raise ValueError(f"relative depth {item!r} is outside 0%..100% (0.0..1.0)")
            out.append(("relative", f, 0))
        elif item in LAYER_NAMES:
            out.append(item)
        elif item:
            raise ValueError(f"{item!r} is not a layer; expected ints (block index from 0, negative from the deepest), "
                             "ranges 'a-b', 'all', 'emb', 'final' or relative depths '50%' / '0.5'")
        else:
            raise ValueError(f"item {i} of layer list {spec!r} is empty; give comma-separated layers, e.g. '1,3,5'")
    return out


def parse_layers(spec: str | Sequence[Layer] | None, available: Sequence[Layer]) -> tuple[Layer, ...]:
    """'1,3,5' / [1, 3] / 'emb,0' / 'all' / '0-23' / '50%' / '0.5' / None (= all) -> validated layer names.

    A relative depth picks the block nearest to that fraction of the blocks (0.5 of 24
    blocks -> block 12, halves rounded up), so one spec means the same depth in models
    of different sizes."""
    if spec is None:
        return tuple(available)
    ints = [a for a in available if isinstance(a, int)]
    out: list[Layer] = []
    for item in layer_items(spec):
        if item == "all":
            out.extend(available)
            continue
        if isinstance(item, tuple):
            kind, a, b = item
            if kind == "range":
                missing = [k for k in range(a, b + 1) if k not in ints]
                if missing:
                    have = f"layers {min(ints)}..{max(ints)}" if ints else "no numbered blocks"
                    raise ValueError(f"layer range {a}-{b} not available; this encoder has {have}")
                out.extend(range(a, b + 1))
                continue
            if not ints:
                raise ValueError(f"relative depth {a:g} needs numbered blocks; this encoder has only {list(available)}")
            out.append(ints[int(a * (len(ints) - 1) + 0.5)])
            continue
        layer = item
        if isinstance(layer, int) and layer < 0:
            layer = ints[layer] if -len(ints) <= layer else layer
        if layer not in available:
            rng = f"{min(ints)}..{max(ints)}" if ints else "none"
            names = ", ".join(repr(a) for a in available if not isinstance(a, int))
            raise ValueError(
                f"layer {layer!r} not available; this encoder has layers {rng}" + (f" and {names}" if names else "")
            )
        out.append(layer)
    return tuple(dict.fromkeys(out))


class TokenEncoder:
    """Shared batching/pooling for encoders that map token ids to per-layer states.

    Subclasses set `name`, `revision`, `device`, `dtype`, `max_length`, `pad_id` and
    implement `_tokenize` (texts -> ids), `layers` and `states`; one that can run block
    by block overrides `block_stepper`. `tokenize` applies the template, so every
    subclass takes one the same way.
    """

    name: str
    revision: str
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    max_length: int = 512
    pad_id: int = 0
    # the progress bar of encode_tokens, on stderr: None = only when stderr is a terminal (so a
    # log or a pipe gets no carriage-return noise), True = always, False = never
    show_progress: bool | None = None
    progress_delay_s: float = 2.0  # the bar appears once an encoding has run this long: short ones stay quiet
    template: str | None = None  # set by templates.with_template on a copy
    template_text: str | None = None

    def tokenize(self, sentences: Sequence[str]) -> list[list[int]]:
        if isinstance(sentences, str):
            raise TypeError("tokenize expects a sequence of sentences, not one string; wrap it in a list")
        texts = list(sentences) if self.template_text is None else apply_template(self.template_text, sentences)
        return self._tokenize(texts)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of texts that already hold the template."""
        raise NotImplementedError

    def layers(self) -> tuple[Layer, ...]:
        raise NotImplementedError

    def states(self, ids: torch.Tensor, mask: torch.Tensor, layers: tuple[Layer, ...]) -> Iterator[tuple[Layer, torch.Tensor]]:
        """Yield (layer, (B, T, D) states) for each requested layer, shallowest first,
        and stop once the deepest has been yielded."""
        raise NotImplementedError

    def block_stepper(self) -> BlockStepper | None:
        return None

    def provenance(self) -> dict:
        return {"model": self.name, "revision": self.revision, "dtype": str(self.dtype).removeprefix("torch."),
                "device": str(self.device), "max_length": self.max_length, "template": self.template,
                "template_text": self.template_text}

    def batches(self, token_ids: list[list[int]], batch_size: int, order: Sequence[int] | None = None
                ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        """Right-padded batches: (row indices into token_ids, ids (B,T), mask (B,T)).

        Rows go longest first, and the first batch holds `batch_size` of them: it is the
        largest (the peak memory shows at once) and its padded size, batch_size x its
        length, is the token budget of every later batch, which holds as many of the
        shorter rows as fit in it (at least batch_size). A model's per-batch and per-block
        costs then fall on a few large batches rather than many small ones (the tiny
        models are bound by them), at the memory the user chose with batch_size.
        In the caller's `order` (a permutation of the rows, kept as given: early exit keeps
        a pair's two sentences in one batch) every batch holds batch_size rows."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if order is None:
            order = np.argsort([-len(t) for t in token_ids], kind="stable")
            budget = batch_size * max(1, len(token_ids[order[0]])) if len(order) else 0
        else:
            order = np.asarray(order, dtype=np.int64)
            if order.shape != (len(token_ids),) or not np.array_equal(np.sort(order), np.arange(len(token_ids))):
                raise ValueError(f"batches: order must be a permutation of the {len(token_ids)} row indices; got "
                                 f"{len(order)} indices" + ("" if len(order) != len(token_ids) else
                                                            " with repeats or values out of range"))
            budget = None
        start = 0
        while start < len(order):
            size = batch_size if budget is None else max(batch_size, budget // max(1, len(token_ids[order[start]])))
            idx = order[start : start + size]
            start += size
            T = max(1, max(len(token_ids[i]) for i in idx))
            ids = torch.full((len(idx), T), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), T), dtype=torch.bool)
            for row, i in enumerate(idx):
                t = token_ids[i]
                ids[row, : len(t)] = torch.as_tensor(t, dtype=torch.long)
                mask[row, : len(t)] = True
            yield idx, ids.to(self.device), mask.to(self.device)

    def _check_finite_states(self, h: torch.Tensor, mask: torch.Tensor, idx: np.ndarray, layer: Layer) -> None:
        """A NaN/inf at a real token poisons every later token of a recurrent model even when the
        pooled vector hides it (last-token pooling of a state that saturated): stop, naming the sentence."""
        # a float64 sum is finite exactly when every term is (3.4e38 x any width stays far below 1.8e308), in
        # one pass: ~5x cheaper than isfinite(h).all(-1) on a CPU
        bad = (mask & ~torch.isfinite(h.sum(dim=-1, dtype=torch.float64))).any(dim=-1).cpu().numpy()
        if bad.any():
            first = int(np.sort(idx[bad])[0])
            raise NonFiniteEmbedding(
                f"{self.name}: non-finite hidden state at layer {layer!r} in {self.dtype} matmuls (a block's output "
                f"passed the dtype's range); use --dtype bfloat16 or float32. {int(bad.sum())} sentence(s) of a "
                f"batch, the first being sentence index {first} (0-based, input order); nothing was written")

    def _check_finite(self, v: np.ndarray, idx: np.ndarray, layer: Layer, pooling: str) -> None:
        """A NaN/inf vector would turn into a NaN cosine (or a silent 0 after ranking): stop, naming it."""
        bad = ~np.isfinite(v).all(axis=1)
        if bad.any():
            first = int(np.sort(idx[bad])[0])
            raise NonFiniteEmbedding(
                f"{self.name} produced NaN/inf at layer {layer} ({pooling} pooling) for {int(bad.sum())} sentence(s) "
                f"of a batch, the first being sentence index {first} (0-based, input order) in "
                f"{str(self.dtype).removeprefix('torch.')}; nothing was written. Check the weights, or run in "
                "float32 if this was half precision")

    def encode(
        self,
        sentences: Sequence[str],
        layers: Sequence[Layer],
        poolings: Sequence[str],
        batch_size: int = 32,
        keep_states: bool = False,
    ) -> Embeddings:
        if isinstance(sentences, str):
            raise TypeError("encode expects a sequence of sentences, not one string; wrap it in a list")
        if len(sentences) == 0:
            raise ValueError("encode received no sentences")
        return self.encode_tokens(self.tokenize(sentences), layers, poolings, batch_size, keep_states)

    def encode_tokens(
        self,
        token_ids: list[list[int]],
        layers: Sequence[Layer],
        poolings: Sequence[str],
        batch_size: int = 32,
        keep_states: bool = False,
    ) -> Embeddings:
        """`encode` after tokenization: what benchmarks time (tokenizing is not the model's cost)."""
        layers = parse_layers(layers, self.layers())
        poolings = check_poolings(tuple(poolings))
        n_truncated = sum(len(t) > self.max_length for t in token_ids)
        token_ids = [t[: self.max_length] for t in token_ids]
        N = len(token_ids)
        vectors: dict[tuple[Layer, str], np.ndarray] = {}
        states: dict[Layer, list[np.ndarray]] | None = {l: [None] * N for l in layers} if keep_states else None
        # the one progress bar of every encoding (CLI, suite, analyses): stderr, never stdout,
        # so --json on stdout stays parseable; tqdm's disable=None is "off unless a terminal"
        bar = tqdm(total=N, desc=f"encode {self.name}", unit="sent", leave=False, file=sys.stderr,
                   delay=self.progress_delay_s, disable=None if self.show_progress is None else not self.show_progress)
        with torch.inference_mode():
            for idx, ids, mask in self.batches(token_ids, batch_size):
                for layer, h in self.states(ids, mask, layers):
                    self._check_finite_states(h, mask, idx, layer)
                    for p in poolings:
                        v = pool(h, mask, p).cpu().numpy()
                        self._check_finite(v, idx, layer, p)
                        if (layer, p) not in vectors:
                            vectors[(layer, p)] = np.zeros((N, v.shape[1]), dtype=np.float32)
                        vectors[(layer, p)][idx] = v
                    if states is not None:
                        hs = h.float().cpu().numpy()
                        for row, i in enumerate(idx):
                            states[layer][i] = hs[row, : int(mask[row].sum())]
                bar.update(len(idx))
        bar.close()
        return Embeddings(
            vectors=vectors,
            n_sentences=N,
            n_tokens=int(sum(len(t) for t in token_ids)),
            n_truncated=int(n_truncated),
            n_empty=int(sum(len(t) == 0 for t in token_ids)),
            states=states,
        )
