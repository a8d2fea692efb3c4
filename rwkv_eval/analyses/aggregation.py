"""Layer aggregations as embedding methods beside single layers, and what they cost.

Question 3 of the follow-up study: how does the overhead of aggregating intermediate
RWKV layers compare with the latency of plain final-layer inference?

An aggregation combines the pooled vectors of several layers of ONE forward pass, which
stops after the deepest layer it needs (`depth`): an aggregation of layers 0..5 of a
12-block model runs 6 blocks and can be cheaper than the final layer. Kinds:

    single                one layer k (the baseline methods)
    layer_mean            mean over a contiguous layer range a..b
    concat                concatenation (vector size = number of layers x width)
    first_last_layer_avg  average of the first and the last layer, the "first-last avg" of
                          BERT-flow (Li et al. 2020) and SimCSE (Gao et al. 2021). Not the
                          `first_last` TOKEN pooling, which averages the first and last token
                          of one layer; here the layers are averaged after token pooling.
                          "First" is block 0 or the embedding ("emb"): the literature uses
                          both under one name, and their published figures differ
                          (compare.REFERENCES), so both are settings (`STUDY_AGGREGATIONS`).
    weighted_sum          fixed weights (given, or by default proportional to k + 1, so deeper
                          layers weigh more), normalised to sum 1

Each combines with every token pooling: the sentence vector of layer k is pooled first
(pooling.py), then the layers are combined. For mean pooling, averaging layers commutes
with pooling; for max/last it is the average of the pooled vectors.

The cost of a method is measured, not assumed: the same pre-tokenized sentences, the same
batch, in interleaved rounds with the final layer alone (measure.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..datasets import PairSet
from ..encoder import EMBEDDING, Encoder, Layer
from ..evaluation import score, unique_sentences
from ..pooling import check_poolings
from ..similarity import cosine, zero_vector_pairs
from ..measure import interleaved_best

KINDS = ("single", "layer_mean", "concat", "first_last_layer_avg", "weighted_sum")


def _is_block(layer) -> bool:
    return isinstance(layer, int) and not isinstance(layer, bool)


@dataclass(frozen=True)
class Aggregation:
    kind: str
    layers: tuple[Layer, ...]  # block indices >= 0; first_last_layer_avg may start at "emb"
    weights: tuple[float, ...] | None = None  # weighted_sum only, normalised to sum 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown aggregation {self.kind!r}; choose from {', '.join(KINDS)}")
        emb_ok = self.kind == "first_last_layer_avg" and self.layers[:1] == (EMBEDDING,)
        if not self.layers or not all((_is_block(la) and la >= 0) or (emb_ok and i == 0)
                                      for i, la in enumerate(self.layers)):
            raise ValueError(f"{self.kind} needs block indices >= 0 (first_last_layer_avg may start at "
                             f"{EMBEDDING!r}); got layers {self.layers!r}")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"{self.kind}: layer listed twice in {self.layers}")
        want = {"single": 1, "first_last_layer_avg": 2}.get(self.kind)
        if want and len(self.layers) != want:
            raise ValueError(f"{self.kind} takes {want} layer(s); got {self.layers}")
        if self.kind in ("layer_mean", "concat", "weighted_sum") and len(self.layers) < 2:
            raise ValueError(f"{self.kind} combines at least 2 layers; got {self.layers} (use single)")
        if (self.weights is not None) != (self.kind == "weighted_sum"):
            raise ValueError(f"weights are for weighted_sum only (and required there); got kind {self.kind} with "
                             f"weights {self.weights}")
        if self.weights is not None and (len(self.weights) != len(self.layers)
                                         or not all(math.isfinite(w) and w >= 0 for w in self.weights)
                                         or not math.isclose(sum(self.weights), 1.0, abs_tol=1e-9)):
            raise ValueError(f"weighted_sum needs one finite weight >= 0 per layer summing to 1; got {self.weights} "
                             f"for layers {self.layers} (use weighted_sum() to normalise)")

    @property
    def name(self) -> str:
        ls = self.layers
        if self.kind == "single":
            return f"L{ls[0]}"
        if self.kind == "layer_mean":
            return f"layer_mean[{ls[0]}..{ls[-1]}]"
        if self.kind == "weighted_sum":
            return "weighted_sum[" + ",".join(f"{la}:{w:.3g}" for la, w in zip(ls, self.weights)) + "]"
        return f"{self.kind}[{','.join(map(str, ls))}]"

    @property
    def depth(self) -> int:
        """Blocks the forward pass runs: up to the deepest layer used."""
        return max((la for la in self.layers if _is_block(la)), default=-1) + 1

    def combine(self, vectors: Mapping[tuple[Layer, str], np.ndarray], pooling: str) -> np.ndarray:
        """(N, D') float32 sentence vectors from the pooled per-layer vectors of one pass."""
        parts = [np.asarray(vectors[(la, pooling)], dtype=np.float32) for la in self.layers]
        if self.kind == "single":
            return parts[0]
        if self.kind == "concat":
            return np.concatenate(parts, axis=1)
        if self.kind == "weighted_sum":
            return sum(np.float32(w) * p for w, p in zip(self.weights, parts)).astype(np.float32)
        return np.mean(parts, axis=0, dtype=np.float32)  # layer_mean, first_last_layer_avg


def single(layer: int) -> Aggregation:
    return Aggregation("single", (layer,))


def layer_mean(first: int, last: int) -> Aggregation:
    if last <= first:
        raise ValueError(f"layer_mean needs first < last; got {first}..{last}")
    return Aggregation("layer_mean", tuple(range(first, last + 1)))


def concat(*layers: int) -> Aggregation:
    return Aggregation("concat", tuple(layers))


def first_last_layer_avg(first: Layer, last: int) -> Aggregation:
    return Aggregation("first_last_layer_avg", (first, last))


def weighted_sum(layers: Sequence[int], weights: Sequence[float] | None = None) -> Aggregation:
    """Fixed weights, normalised to sum 1; default proportional to k + 1."""
    layers = tuple(layers)
    w = np.asarray([la + 1 for la in layers] if weights is None else weights, dtype=np.float64)
    if w.shape != (len(layers),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weighted_sum needs one finite weight >= 0 per layer, not all 0; got {weights} for "
                         f"layers {layers}")
    return Aggregation("weighted_sum", layers, tuple(float(x) for x in w / w.sum()))


def default_aggregations(n_layer: int) -> list[Aggregation]:
    """Every single layer, and the aggregations the study compares, for an n-block model."""
    if n_layer < 2:
        raise ValueError(f"aggregations need a model with at least 2 blocks; got {n_layer}")
    last, half = n_layer - 1, n_layer // 2
    aggs = [single(k) for k in range(n_layer)]
    aggs += [layer_mean(0, last), layer_mean(0, half - 1) if half >= 2 else layer_mean(0, 1),
             layer_mean(half, last), concat(half - 1, last) if half >= 2 else concat(0, last),
             first_last_layer_avg(0, last), weighted_sum(range(n_layer))]
    return list(dict.fromkeys(aggs))


# The aggregations the comparison commands offer by name (`--aggregate`), for a model of L
# blocks: the two "first-last avg" of the literature and the mean of every block.
STUDY_AGGREGATIONS = {
    "first_last": lambda n_layer: first_last_layer_avg(0, n_layer - 1),
    "emb_last": lambda n_layer: first_last_layer_avg(EMBEDDING, n_layer - 1),
    "all_mean": lambda n_layer: layer_mean(0, n_layer - 1),
}


def study_aggregation(name: str, encoder: Encoder) -> Aggregation:
    """A named aggregation (STUDY_AGGREGATIONS) resolved for this encoder's depth."""
    if name not in STUDY_AGGREGATIONS:
        raise ValueError(f"unknown aggregation {name!r}; choose from {', '.join(STUDY_AGGREGATIONS)}")
    layers = encoder.layers()
    n_layer = sum(1 for la in layers if _is_block(la))
    if n_layer < 2:
        raise ValueError(f"aggregation {name} combines layers of a model with at least 2 blocks; {encoder.name} has "
                         f"{n_layer}; leave it out of --aggregate for this model")
    agg = STUDY_AGGREGATIONS[name](n_layer)
    if EMBEDDING in agg.layers and EMBEDDING not in layers:
        raise ValueError(f"aggregation {name} needs the embedding layer, which {encoder.name} does not expose")
    return agg


def layers_needed(aggregations: Sequence[Aggregation]) -> list[Layer]:
    """Every layer the aggregations use, shallowest first (the embedding before block 0)."""
    return sorted({la for a in aggregations for la in a.layers}, key=lambda la: la if _is_block(la) else -1)


def evaluate_aggregations(encoder: Encoder, pairs: PairSet, aggregations: Sequence[Aggregation],
                          poolings: Sequence[str], batch_size: int = 32) -> list[dict]:
    """Score every (aggregation, pooling) from one forward pass over the sentences of `pairs`.

    Returns:
        One record per (aggregation, pooling): aggregation (name), kind, layers, weights,
        pooling, depth (blocks run), vector_size, spearman, pearson, spearman_ci95,
        n_zero_vector_pairs, and the model and data provenance.
    """
    poolings = check_poolings(tuple(poolings))
    if not aggregations:
        raise ValueError("no aggregation given; see aggregation.default_aggregations")
    available = [la for la in encoder.layers() if _is_block(la)]
    missing = [la for la in layers_needed(aggregations) if la not in encoder.layers()]
    if missing:
        raise ValueError(f"layers {missing} not in {encoder.name} (blocks {min(available)}..{max(available)})")
    sentences, [(i1, i2)] = unique_sentences([pairs])
    emb = encoder.encode(sentences, layers_needed(aggregations), poolings, batch_size=batch_size)
    common = encoder.provenance() | pairs.provenance() | {"batch_size": batch_size, "n_sentences": emb.n_sentences}
    records = []
    for a in aggregations:
        for p in poolings:
            v = a.combine(emb.vectors, p)
            records.append({"aggregation": a.name, "kind": a.kind, "layers": list(a.layers),
                            "weights": None if a.weights is None else list(a.weights), "pooling": p,
                            "depth": a.depth, "vector_size": int(v.shape[1]),
                            "n_zero_vector_pairs": zero_vector_pairs(v[i1], v[i2])}
                           | score(cosine(v[i1], v[i2]), pairs.gold) | common)
    return records


def aggregation_seconds(encoder, token_ids: list[list[int]], aggregations: Sequence[Aggregation], pooling: str,
                        batch_size: int = 32, rounds: int = 2) -> dict[str, float]:
    """Measured seconds per method on the same sentences and batch, interleaved with the
    final layer alone ("final" in the result); each method runs only to its depth."""
    last = max(la for la in encoder.layers() if _is_block(la))

    def method(a: Aggregation):
        return lambda: a.combine(encoder.encode_tokens(token_ids, list(a.layers), [pooling], batch_size).vectors,
                                 pooling)

    fns = {"final": method(single(last))} | {a.name: method(a) for a in aggregations}
    return interleaved_best(fns, rounds, str(encoder.device))
