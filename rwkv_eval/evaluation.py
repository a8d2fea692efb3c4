"""Score an encoder on pair sets: one record per (layer, pooling).

Like sentence-transformers' EmbeddingSimilarityEvaluator, data in and a flat dict of
scores out, but for many layers and poolings at once: the unique sentences of a pair
set are encoded in ONE call (one forward pass serves every layer and pooling), then
each (layer, pooling) is scored by cosine similarity against the gold labels.

Example:
    >>> from rwkv_eval.datasets import load_sample
    >>> from rwkv_eval.models.glove import load_glove
    >>> recs = evaluate(load_glove(), load_sample(), layers=[0], poolings=["mean"])
    >>> round(recs[0]["spearman"], 3)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .datasets import PairSet
from .encoder import Embeddings, Encoder, Layer
from .metrics import UndefinedCorrelation, correlations
from .records import LAYER_CONVENTION
from .similarity import cosine, zero_vector_pairs


def unique_sentences(sets: Sequence[PairSet]) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray]]]:
    """Deduplicate both sides of every set: (sentences, [(index of s1, index of s2)] per set)."""
    index: dict[str, int] = {}
    for pairs in sets:
        for s in pairs.sentence1 + pairs.sentence2:
            index.setdefault(s, len(index))
    idx = [(np.array([index[s] for s in p.sentence1], dtype=np.int64),
            np.array([index[s] for s in p.sentence2], dtype=np.int64)) for p in sets]
    return list(index), idx


def score(sims: np.ndarray, gold: np.ndarray) -> dict:
    """Correlations of cosine similarities with gold labels.

    An undefined correlation (constant predictions) is recorded as spearman=None with
    the reason, so a report shows "undefined" instead of a NaN.
    """
    try:
        return correlations(sims, gold)
    except UndefinedCorrelation as e:
        return {"spearman": None, "pearson": None, "spearman_ci95": [None, None], "undefined_reason": str(e)}


@dataclass(frozen=True)
class Evaluation:
    """Records plus what paired comparisons need without a second forward pass: the cosine
    similarity of every pair per (dataset, layer, pooling), and the gold scores per dataset
    (both in pair order)."""

    records: list[dict]
    similarities: dict[tuple[str, Layer, str], np.ndarray]
    gold: dict[str, np.ndarray]


def evaluate(
    encoder: Encoder,
    pairs: PairSet | Sequence[PairSet],
    layers: Sequence[Layer],
    poolings: Sequence[str],
    batch_size: int = 32,
    aggregate: str | None = None,
) -> list[dict]:
    """Encode the sentences of `pairs` once and score every (layer, pooling).

    Args:
        pairs: one pair set, or several (e.g. the domains of STS12) encoded together.
        aggregate: with several sets, also score the aggregates of the per-set
            correlations under the names the STS literature uses: "{aggregate}/concat"
            (Spearman of the concatenated pairs, SentEval's "all"), "{aggregate}/mean"
            (unweighted mean of the per-domain correlations) and "{aggregate}/wmean"
            (mean weighted by the domains' pair counts).

    Returns:
        One dict per (set, layer, pooling) with at least model, layer, pooling, dataset,
        split, n_pairs, spearman, pearson, spearman_ci95, n_zero_vector_pairs and the
        provenance of model and data. Correlations are raw (not x100).
    """
    return evaluate_pairs(encoder, pairs, layers, poolings, batch_size, aggregate).records


def evaluate_pairs(
    encoder: Encoder,
    pairs: PairSet | Sequence[PairSet],
    layers: Sequence[Layer],
    poolings: Sequence[str],
    batch_size: int = 32,
    aggregate: str | None = None,
) -> Evaluation:
    """`evaluate`, keeping the pair similarities and gold scores (see Evaluation)."""
    sets = [pairs] if isinstance(pairs, PairSet) else list(pairs)
    sentences, idx = unique_sentences(sets)
    t0 = time.perf_counter()
    emb: Embeddings = encoder.encode(sentences, layers, poolings, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    n_pairs = sum(len(p) for p in sets)
    common = encoder.provenance() | {
        "layer_convention": LAYER_CONVENTION,
        "n_sentences": emb.n_sentences,
        "n_tokens": emb.n_tokens,
        "n_truncated": emb.n_truncated,
        "n_empty_sentences": emb.n_empty,
        "encode_seconds": seconds,
        "pairs_per_second": n_pairs / seconds if seconds > 0 else None,
        "batch_size": batch_size,
    }
    aggregated = bool(aggregate) and len(sets) > 1
    gold = {p.name: p.gold for p in sets}
    if aggregated:
        gold[f"{aggregate}/concat"] = np.concatenate([p.gold for p in sets])
    records, similarities = [], {}
    for (layer, pooling), vectors in emb.vectors.items():
        head = {"model": encoder.name, "layer": layer, "pooling": pooling}
        sims, per_set = [], []
        for p, (i1, i2) in zip(sets, idx):
            a, b = vectors[i1], vectors[i2]
            sims.append(cosine(a, b))
            similarities[(p.name, layer, pooling)] = sims[-1]
            rec = head | p.provenance() | score(sims[-1], p.gold) | {"n_zero_vector_pairs": zero_vector_pairs(a, b)} | common
            per_set.append(rec)
        records += per_set
        if aggregated:
            similarities[(f"{aggregate}/concat", layer, pooling)] = np.concatenate(sims)
            base = head | {"split": sets[0].split, "n_pairs": n_pairs, "dataset_revision": [p.revision for p in sets]}
            records.append(base | {"dataset": f"{aggregate}/concat", "aggregate": "Spearman of the pooled pairs of all domains"}
                           | score(np.concatenate(sims), gold[f"{aggregate}/concat"])
                           | {"n_zero_vector_pairs": sum(r["n_zero_vector_pairs"] for r in per_set)} | common)
            records += [base | {"dataset": f"{aggregate}/{name}", "aggregate": what} | _mean_of(per_set, weighted)
                        | common for name, what, weighted in (
                            ("mean", "mean of the per-domain correlations", False),
                            ("wmean", "mean of the per-domain correlations weighted by their pair counts", True))]
    return Evaluation(records, similarities, gold)


def _mean_of(per_set: list[dict], weighted: bool) -> dict:
    """Mean (or pair-count-weighted mean) of the per-domain correlations; undefined if any is."""
    if any(r["spearman"] is None for r in per_set):
        return {"spearman": None, "pearson": None, "spearman_ci95": [None, None],
                "undefined_reason": "a domain's correlation is undefined"}
    w = np.array([r["n_pairs"] for r in per_set], dtype=np.float64) if weighted else None
    return {"spearman": float(np.average([r["spearman"] for r in per_set], weights=w)),
            "pearson": float(np.average([r["pearson"] for r in per_set], weights=w)),
            "spearman_ci95": [None, None]}
