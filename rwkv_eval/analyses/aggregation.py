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

The Aggregation type, its constructors and the named study aggregations live in the core
(evaluation.py): the scorer treats an aggregation as a setting like a layer. This module
is the study: which aggregations to compare, their records, and their measured cost.

The cost of a method is measured, not assumed: the same pre-tokenized sentences, the same
batch, timed against the final layer alone with the project's one A-vs-B protocol
(`measure.compare_times`: warm-up, alternating order, rounds by time, median, CI).
"""

from __future__ import annotations

from typing import Sequence

from ..datasets import PairSet
from ..encoder import Encoder
from ..evaluation import (
    Aggregation,
    concat,
    first_last_layer_avg,
    is_block,
    layer_mean,
    layers_needed,
    score_sets,
    single,
    weighted_sum,
)
from ..pooling import check_poolings
from ..measure import Timings, compare_times


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
    available = [la for la in encoder.layers() if is_block(la)]
    missing = [la for la in layers_needed(aggregations) if la not in encoder.layers()]
    if missing:
        raise ValueError(f"layers {missing} not in {encoder.name} (blocks {min(available)}..{max(available)})")
    scored = score_sets(encoder, [pairs], [], poolings, batch_size=batch_size, aggregations=aggregations)
    common = scored.provenance | pairs.provenance() | {"batch_size": batch_size,
                                                       "n_sentences": scored.encode.n_sentences}
    records = []
    for a in aggregations:
        for p in poolings:
            key = (a.name, p)
            records.append({"aggregation": a.name, "kind": a.kind, "layers": list(a.layers),
                            "weights": None if a.weights is None else list(a.weights), "pooling": p,
                            "depth": a.depth, "vector_size": scored.vector_sizes[key],
                            "n_zero_vector_pairs": scored.zero_vector_pairs[key][0]}
                           | scored.correlations(key, 0) | common)
    return records


def aggregation_seconds(encoder, token_ids: list[list[int]], aggregations: Sequence[Aggregation], pooling: str,
                        batch_size: int = 32, min_rounds: int = 5, min_time: float = 1.0) -> Timings:
    """Every method timed against the final layer alone (baseline "final") on the same
    sentences and batch; each method runs only to its depth."""
    last = max(la for la in encoder.layers() if is_block(la))

    def method(a: Aggregation):
        return lambda: a.combine(encoder.encode_tokens(token_ids, list(a.layers), [pooling], batch_size).vectors,
                                 pooling)

    fns = {"final": method(single(last))} | {a.name: method(a) for a in aggregations}
    return compare_times(fns, "final", str(encoder.device), min_rounds=min_rounds, min_time=min_time)
