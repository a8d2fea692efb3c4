"""The one scorer: pair sets + encoder + settings -> pair similarities -> correlations.

Like sentence-transformers' EmbeddingSimilarityEvaluator, data in and a flat dict of
scores out, but for many settings at once. A setting is a (layer, pooling) or a
(layer aggregation, pooling); a template is part of the encoder (templates.py). The
unique sentences of every pair set are encoded in ONE call (one forward pass serves
every set, layer, pooling and aggregation), each setting's cosine similarity of every
pair is kept (`Scored`, raw like MTEB's evaluator), and correlations are computed from
those similarities against the gold labels. `evaluate` / `evaluate_pairs` are the flat
records of `rwkv-eval evaluate` and the benchmark suite; the analyses (compare, ood,
aggregation, early exit) take `Scored` or `score_vectors` and add their own statistics.

Also here, because a setting names them: layer aggregations (`Aggregation`), and the STS
aggregates of per-domain correlations (`sts_aggregate`: concat / mean / wmean).

Example:
    >>> from rwkv_eval.datasets import load_sample
    >>> from rwkv_eval.models.glove import load_glove
    >>> recs = evaluate(load_glove(), load_sample(), layers=[0], poolings=["mean"])
    >>> round(recs[0]["spearman"], 3)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable, Mapping, Sequence, TypeVar

import numpy as np

from .cache import EmbeddingCache, sentences_digest
from .datasets import PairSet
from .encoder import EMBEDDING, Encoder, Layer, parse_layers
from .metrics import UndefinedCorrelation, correlations, spearman
from .postprocess import PostProcess, fit, parse_postprocess
from .records import LAYER_CONVENTION
from .similarity import cosine, zero_vector_pairs

# ---------------------------------------------------------------- layer aggregations
#
# An aggregation combines the pooled vectors of several layers of ONE forward pass (the
# study of what they cost is analyses/aggregation.py). Kinds:
#
#     single                one layer k
#     layer_mean            mean over a contiguous layer range a..b
#     concat                concatenation (vector size = number of layers x width)
#     first_last_layer_avg  average of the first and the last layer, the "first-last avg" of
#                           BERT-flow (Li et al. 2020) and SimCSE (Gao et al. 2021); "first" is
#                           block 0 or the embedding ("emb"): the literature uses both under one
#                           name (analyses/compare.REFERENCES). Not the `first_last` TOKEN pooling.
#     weighted_sum          fixed weights (by default proportional to k + 1), normalised to sum 1

KINDS = ("single", "layer_mean", "concat", "first_last_layer_avg", "weighted_sum")


def is_block(layer) -> bool:
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
        if not self.layers or not all((is_block(la) and la >= 0) or (emb_ok and i == 0)
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
        return max((la for la in self.layers if is_block(la)), default=-1) + 1

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
    n_layer = n_blocks(layers)
    if n_layer < 2:
        raise ValueError(f"aggregation {name} combines layers of a model with at least 2 blocks; {encoder.name} has "
                         f"{n_layer}; leave it out of --aggregate for this model")
    agg = STUDY_AGGREGATIONS[name](n_layer)
    if EMBEDDING in agg.layers and EMBEDDING not in layers:
        raise ValueError(f"aggregation {name} needs the embedding layer, which {encoder.name} does not expose")
    return agg


def layers_needed(aggregations: Sequence[Aggregation]) -> list[Layer]:
    """Every layer the aggregations use, shallowest first (the embedding before block 0)."""
    return sorted({la for a in aggregations for la in a.layers}, key=lambda la: la if is_block(la) else -1)


def n_blocks(layers: Sequence[Layer]) -> int:
    """Number of blocks of an encoder, from its layer names (GloVe: 1)."""
    return sum(1 for la in layers if is_block(la))


# ---------------------------------------------------------------- scoring

Setting = tuple[Layer, str]  # (layer or aggregation name, pooling)
K = TypeVar("K", bound=Hashable)


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


def score_vectors(vectors: Mapping[K, np.ndarray], idx: Sequence[tuple[np.ndarray, np.ndarray]]
                  ) -> tuple[dict[K, tuple[np.ndarray, ...]], dict[K, tuple[int, ...]]]:
    """Cosine of every pair of every set, per setting: the building block of every scorer.

    Args:
        vectors: setting -> (N, D) sentence vectors (any key: `score_sets` uses (layer,
            pooling), early exit its methods).
        idx: per pair set, the rows of `vectors` holding each pair's two sentences
            (`unique_sentences`).
    Returns:
        (sims, zero): sims[key][i] is set i's (N_i,) float64 similarities in pair order;
        zero[key][i] counts set i's pairs with a zero vector on either side.
    """
    sims, zero = {}, {}
    for key, v in vectors.items():
        sims[key] = tuple(cosine(v[i1], v[i2]) for i1, i2 in idx)
        zero[key] = tuple(zero_vector_pairs(v[i1], v[i2]) for i1, i2 in idx)
    return sims, zero


@dataclass(frozen=True)
class EncodeStats:
    """What the one encoding call of a `Scored` saw and cost (recorded with every score)."""

    n_sentences: int
    n_tokens: int
    n_truncated: int  # sentences cut at the encoder's max_length
    n_empty: int  # sentences with no token left
    seconds: float  # wall time of the encoding call (cache reads included)
    batch_size: int
    n_encoded: int = 0  # sentences run through the model: 0 when the cache held every setting
    cache_hits: int = 0  # (layer, pooling) settings read from the embedding cache
    cache_misses: int = 0  # settings encoded while a cache was in use (0 without one)


@dataclass(frozen=True)
class Scored:
    """One model's cosine similarities on several pair sets, all from one forward pass.

    sims[(layer, pooling)][i] is the (N_i,) float64 array of set i's pair similarities;
    an aggregation's setting is (aggregation.name, pooling).
    """

    model: str
    provenance: dict
    blocks: int
    sets: tuple[PairSet, ...]
    sims: dict[Setting, tuple[np.ndarray, ...]]
    # aggregation key (a study name such as "first_last", else the aggregation's name) -> the Aggregation
    aggregations: dict[str, Aggregation] = field(default_factory=dict)
    zero_vector_pairs: dict[Setting, tuple[int, ...]] = field(default_factory=dict)
    vector_sizes: dict[Setting, int] = field(default_factory=dict)
    encode: EncodeStats | None = None
    # the (N, D) vectors scored per setting, rows = unique_sentences(sets) (score_sets(keep_vectors=True))
    vectors: dict[Setting, np.ndarray] | None = field(default=None, repr=False)

    def index(self, name: str, split: str | None = None) -> int:
        for i, s in enumerate(self.sets):
            if s.name == name and (split is None or s.split == split):
                return i
        have = ", ".join(f"{s.name}/{s.split}" for s in self.sets)
        raise ValueError(f"{self.model} was not scored on {name}" + (f"/{split}" if split else "") + f"; it has {have}")

    @property
    def settings(self) -> list[Setting]:
        return list(self.sims)

    def correlations(self, setting: Setting, i: int) -> dict:
        """`score` of set i at a setting: spearman, pearson, spearman_ci95 (None when undefined)."""
        return score(self.sims[setting][i], self.sets[i].gold)

    def aggregation_at(self, layer: Layer) -> str | None:
        """The aggregation key whose setting key is `layer` (e.g. "first_last_layer_avg[0,11]"
        -> "first_last"); None for a single layer."""
        return next((k for k, a in self.aggregations.items() if a.name == layer), None)

    def study_name(self, layer: Layer) -> str | Layer:
        """The setting as a published figure names it: the aggregation name, else the layer."""
        return self.aggregation_at(layer) or layer


def encode_settings(encoder: Encoder, sentences: Sequence[str], layers: Sequence[Layer], poolings: Sequence[str],
                    batch_size: int = 32, cache: EmbeddingCache | None = None
                    ) -> tuple[dict[tuple[Layer, str], np.ndarray], EncodeStats]:
    """Pooled vectors per (layer, pooling): the cache's where it has them (exact keys, see
    cache.py), every other setting from ONE encode call (the layers and poolings missing).

    Returns:
        ({(layer, pooling): (N, D) float32}, in depth order then pooling order; EncodeStats).
    """
    t0 = time.perf_counter()
    depth = {la: i for i, la in enumerate(encoder.layers())}
    wanted = [(la, p) for la in sorted(parse_layers(list(layers), encoder.layers()), key=depth.get)
              for p in dict.fromkeys(poolings)]
    keys: dict[tuple[Layer, str], str] = {}
    if cache is not None:
        prov, digest = encoder.provenance(), sentences_digest(sentences)
        keys = {s: k for s in wanted if (k := cache.key(prov, digest, *s)) is not None}
    hits = cache.get(list(keys.values())) if keys else {}
    vectors = {s: hits[keys[s]].vectors for s in wanted if keys.get(s) in hits}
    missing = [s for s in wanted if s not in vectors]
    if missing:
        emb = encoder.encode(sentences, list(dict.fromkeys(la for la, _ in missing)),
                             [p for p in dict.fromkeys(poolings) if any(m == p for _, m in missing)],
                             batch_size=batch_size)
        counts = (emb.n_tokens, emb.n_truncated, emb.n_empty)
        new = {s: v for s, v in emb.vectors.items() if s not in vectors}
        vectors |= new
        if cache is not None:
            meta = {"model": encoder.name, "n_sentences": len(sentences), "n_tokens": counts[0],
                    "n_truncated": counts[1], "n_empty": counts[2]}
            cache.put({keys[s]: (v, meta | {"layer": s[0], "pooling": s[1]}) for s, v in new.items() if s in keys})
    else:
        first = hits[keys[wanted[0]]]
        counts = (first.n_tokens, first.n_truncated, first.n_empty)
    stats = EncodeStats(len(sentences), *counts, time.perf_counter() - t0, batch_size,
                        n_encoded=len(sentences) if missing else 0, cache_hits=len(wanted) - len(missing),
                        cache_misses=len(missing) if cache is not None else 0)
    return {s: vectors[s] for s in wanted if s in vectors}, stats  # what the encoder gave, in order


def score_sets(encoder: Encoder, sets: Sequence[PairSet], layers: Sequence[Layer], poolings: Sequence[str],
               batch_size: int = 32, label: str | None = None,
               aggregations: Sequence[str | Aggregation] = (), cache: EmbeddingCache | None = None,
               postprocess: str | PostProcess | None = None, fit_set: PairSet | None = None,
               keep_vectors: bool = False) -> Scored:
    """Encode the unique sentences of every set once; cosine of every pair per (layer, pooling)
    and per (aggregation, pooling).

    Args:
        label: the model's name in results (default: encoder.name).
        aggregations: study aggregation names (STUDY_AGGREGATIONS, resolved for this model's
            depth and keyed by that name) or Aggregation objects (keyed by their name). Their
            layers come from the same pass; only `layers` become single-layer settings.
        cache: read vectors from / store them in this embedding cache (cache.py); None encodes
            everything. Timing never goes through here.
        postprocess: "none" | "center" | "abtt:K" | "whiten" (postprocess.py), fitted per setting
            on the unlabelled sentences of `fit_set`, which must be another split than every
            scored set (the train split), and applied to every set's vectors.
        keep_vectors: keep the scored vectors in `Scored.vectors` (label-free diagnostics).
    """
    sets = tuple(sets)
    if not sets:
        raise ValueError("score_sets got no pair sets; pass at least one PairSet")
    post = parse_postprocess(postprocess)
    if post.kind != "none" and fit_set is None:
        raise ValueError(f"post-processing {post.name} is fitted on unlabelled sentences of another split; pass "
                         "fit_set (e.g. the train split)")
    if fit_set is not None and any((s.name, s.split) == (fit_set.name, fit_set.split) for s in sets):
        raise ValueError(f"post-processing is fitted on {fit_set.name}/{fit_set.split}, a split this run scores; "
                         "fit it on another split (the train split), never on the evaluated one")
    aggs = {a: study_aggregation(a, encoder) if isinstance(a, str) else a for a in dict.fromkeys(aggregations)}
    aggs = {(k if isinstance(k, str) else k.name): a for k, a in aggs.items()}
    only_aggregated = [la for la in layers_needed(list(aggs.values())) if la not in layers]
    sentences, idx = unique_sentences(sets)

    def settings(sentences: Sequence[str]) -> tuple[dict, EncodeStats]:
        emb, stats = encode_settings(encoder, sentences, [*layers, *only_aggregated], poolings, batch_size, cache)
        vectors = {(la, p): v for (la, p), v in emb.items() if la not in only_aggregated}
        return vectors | {(a.name, p): a.combine(emb, p) for a in aggs.values() for p in poolings}, stats

    vectors, stats = settings(sentences)
    # what the cache did, in every record built on this result (evaluate, compare, ood)
    provenance = encoder.provenance() | {"n_sentences_encoded": stats.n_encoded, "cache_hits": stats.cache_hits,
                                         "cache_misses": stats.cache_misses}
    if fit_set is not None and post.kind != "none":
        fit_vectors, fit_stats = settings(unique_sentences([fit_set])[0])
        vectors = {k: fit(post, fit_vectors[k]).apply(v) for k, v in vectors.items()}
        provenance |= {"postprocess": post.name, "postprocess_fit": {
            "dataset": fit_set.name, "split": fit_set.split, "n_sentences": fit_stats.n_sentences,
            "n_encoded": fit_stats.n_encoded, "cache_hits": fit_stats.cache_hits}}
    else:
        provenance |= {"postprocess": "none"}
    sims, zero = score_vectors(vectors, idx)
    return Scored(label or encoder.name, provenance, n_blocks(encoder.layers()), sets, sims, aggs, zero,
                  {k: int(v.shape[1]) for k, v in vectors.items()}, stats, vectors if keep_vectors else None)


# ---------------------------------------------------------------- STS aggregates

STS_AGGREGATES = {
    "concat": "Spearman of the pooled pairs of all domains",
    "mean": "mean of the per-domain correlations",
    "wmean": "mean of the per-domain correlations weighted by their pair counts",
}
X = TypeVar("X")


def sts_aggregate(kind: str, per_domain: Sequence[X], sims: Sequence[np.ndarray], gold: Sequence[np.ndarray],
                  correlate: Callable[[np.ndarray, np.ndarray], X] = spearman) -> X:
    """One STS aggregate over domains, as the STS literature names them.

    Args:
        kind: "concat" (correlate the concatenated pairs of every domain: SentEval's "all",
            the figure SimCSE prints per STS year), "mean" (unweighted mean of the per-domain
            correlations) or "wmean" (mean weighted by the domains' pair counts).
        per_domain: each domain's correlation, a float or a (R,) array of bootstrap
            resamples (averaged row by row); mean/wmean only.
        sims, gold: each domain's (N_i,) similarities and gold scores, in domain order.
        correlate: concat only: what to compute on the concatenated pairs (default:
            metrics.spearman; a resampling of them; `score` for the full record).
    Returns:
        A float for float correlations, else what `correlate` or the arrays give.
    """
    if kind not in STS_AGGREGATES:
        raise ValueError(f"unknown STS aggregate {kind!r}; choose from {', '.join(STS_AGGREGATES)}")
    if kind == "concat":
        return correlate(np.concatenate(sims), np.concatenate(gold))
    if len(per_domain) != len(gold) or not per_domain:
        raise ValueError(f"{kind} needs one correlation per domain; got {len(per_domain)} for {len(gold)} domains")
    weights = np.array([len(g) for g in gold], dtype=np.float64) if kind == "wmean" else None
    out = np.average(np.asarray(per_domain, dtype=np.float64), axis=0, weights=weights)
    return float(out) if np.ndim(out) == 0 else out


# ---------------------------------------------------------------- flat records


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
    cache: EmbeddingCache | None = None,
) -> list[dict]:
    """Encode the sentences of `pairs` once and score every (layer, pooling).

    Args:
        pairs: one pair set, or several (e.g. the domains of STS12) encoded together.
        aggregate: with several sets, also score the STS aggregates of the per-set
            correlations (`sts_aggregate`) as "{aggregate}/concat", "{aggregate}/mean"
            and "{aggregate}/wmean".
        cache: an embedding cache (cache.py) to read and fill; None encodes everything.

    Returns:
        One dict per (set, layer, pooling) with at least model, layer, pooling, dataset,
        split, n_pairs, spearman, pearson, spearman_ci95, n_zero_vector_pairs and the
        provenance of model and data. Correlations are raw (not x100).
    """
    return evaluate_pairs(encoder, pairs, layers, poolings, batch_size, aggregate, cache).records


def evaluate_pairs(
    encoder: Encoder,
    pairs: PairSet | Sequence[PairSet],
    layers: Sequence[Layer],
    poolings: Sequence[str],
    batch_size: int = 32,
    aggregate: str | None = None,
    cache: EmbeddingCache | None = None,
) -> Evaluation:
    """`evaluate`, keeping the pair similarities and gold scores (see Evaluation)."""
    sets = [pairs] if isinstance(pairs, PairSet) else list(pairs)
    return evaluation_of(score_sets(encoder, sets, layers, poolings, batch_size=batch_size, cache=cache), aggregate)


def evaluation_of(scored: Scored, aggregate: str | None = None) -> Evaluation:
    """The flat records of `evaluate` from a scorer's result (see `evaluate` for `aggregate`)."""
    sets, stats = scored.sets, scored.encode
    n_pairs = sum(len(p) for p in sets)
    common = scored.provenance | {
        "layer_convention": LAYER_CONVENTION,
        "n_sentences": stats.n_sentences,
        "n_tokens": stats.n_tokens,
        "n_truncated": stats.n_truncated,
        "n_empty_sentences": stats.n_empty,
        "encode_seconds": stats.seconds,
        "pairs_per_second": n_pairs / stats.seconds if stats.seconds > 0 else None,
        "batch_size": stats.batch_size,
    }
    aggregated = bool(aggregate) and len(sets) > 1
    gold = {p.name: p.gold for p in sets}
    if aggregated:
        gold[f"{aggregate}/concat"] = np.concatenate([p.gold for p in sets])
    records, similarities = [], {}
    for (layer, pooling), sims in scored.sims.items():
        head = {"model": scored.model, "layer": layer, "pooling": pooling}
        per_set = []
        for i, p in enumerate(sets):
            similarities[(p.name, layer, pooling)] = sims[i]
            per_set.append(head | p.provenance() | scored.correlations((layer, pooling), i)
                           | {"n_zero_vector_pairs": scored.zero_vector_pairs[(layer, pooling)][i]} | common)
        records += per_set
        if not aggregated:
            continue
        golds = [p.gold for p in sets]
        similarities[(f"{aggregate}/concat", layer, pooling)] = np.concatenate(sims)
        base = head | {"split": sets[0].split, "n_pairs": n_pairs, "dataset_revision": [p.revision for p in sets]}
        records.append(base | {"dataset": f"{aggregate}/concat", "aggregate": STS_AGGREGATES["concat"]}
                       | sts_aggregate("concat", per_set, sims, golds, correlate=score)
                       | {"n_zero_vector_pairs": sum(r["n_zero_vector_pairs"] for r in per_set)} | common)
        for kind in ("mean", "wmean"):
            if any(r["spearman"] is None for r in per_set):
                value = {"spearman": None, "pearson": None, "spearman_ci95": [None, None],
                         "undefined_reason": "a domain's correlation is undefined"}
            else:
                value = {m: sts_aggregate(kind, [r[m] for r in per_set], sims, golds) for m in ("spearman", "pearson")}
                value["spearman_ci95"] = [None, None]
            records.append(base | {"dataset": f"{aggregate}/{kind}", "aggregate": STS_AGGREGATES[kind]} | value
                           | common)
    return Evaluation(records, similarities, gold)
