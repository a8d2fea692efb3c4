"""Two models (or two settings) on the same pairs: Δρ with a paired bootstrap, fair settings.

Question I of the follow-up study: how does RWKV's linear attention compare with softmax
attention in zero-shot STS accuracy? Three things make the comparison fair:

* **Pairs of models** trained alike (`MODEL_PAIRS`): RWKV-4-Pile and Pythia saw the same
  data with the same tokenizer; Finch-1B6 is set against softmax decoders of its size;
  Mamba is the state-space point. BERT first-last average (the classic zero-shot
  anchor) and all-MiniLM-L6-v2 (supervised, the upper reference) are `REFERENCES`.
  Offline, `random-hf:NAME` (models/random_hf.py) builds each of them at its published
  shape with seeded random weights: their cost without a download, not their accuracy.
* **Relative depth**: block k of an L-block model sits at depth (k+1)/L, so a 12-block
  and a 24-block model line up (`relative_depth`, `match_relative_depth`).
* **Selection without peeking**: each model's (layer, pooling) is chosen on a validation
  split and reported on test (`select_setting`); the best-on-test setting is shown beside
  it, labelled oracle, because it is optimistic.
* **Layer aggregations as settings** (`--aggregate`): BERT's classic zero-shot setting is
  not one layer but the first-last average (evaluation.Aggregation). Aggregations join the
  candidate settings of the selection and are compared kind against kind
  (`compare_aggregations`); where a reference model has a published figure for the
  setting, the record carries it (`published`).

The difference of two Spearmans on the same pairs is tested with the paired bootstrap of
metrics.py: both models see the same resampled pairs, so the pair-level noise they share
(hard pairs are hard for both) cancels. `compare_settings` also reports the unpaired
interval (independent resamples) that a naive comparison of two CIs would use.

One forward pass per model serves every set, layer and pooling (evaluation.score_sets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..encoder import EMBEDDING, Layer
from ..evaluation import Scored, is_block
from ..metrics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    UndefinedCorrelation,
    adjust_p,
    bootstrap_indices,
    paired_difference,
    resampled_summary,
    spearman,
    spearman_resampled,
)

ORACLE_LABEL = "oracle: best on the test split itself (optimistic, not a fair result)"


@dataclass(frozen=True)
class ModelPair:
    """A linear-time model and the softmax-attention model it is fairly compared with."""

    key: str
    linear: str  # hub id of the RWKV / state-space model
    softmax: str  # hub id of its attention partner
    why: str


@dataclass(frozen=True)
class Anchor:
    """A published Spearman (x100) of a reference model at one setting.

    `setting` is a study aggregation name (evaluation.STUDY_AGGREGATIONS) or a block index;
    suite/gates.ANCHORS derives its published-number gates from the block-index anchors.
    """

    setting: str | int
    pooling: str
    published: dict[str, float]  # dataset name (datasets.load_pairs, STS year) -> Spearman x100, test split
    source: str


@dataclass(frozen=True)
class Reference:
    """A model that anchors the scale rather than being compared layer by layer."""

    key: str
    spec: str
    anchors: tuple[Anchor, ...]
    why: str


MODEL_PAIRS: tuple[ModelPair, ...] = (
    ModelPair("rwkv4-169m__pythia-160m", "RWKV/rwkv-4-169m-pile", "EleutherAI/pythia-160m",
              "same data (the Pile), same GPT-NeoX tokenizer, 12 blocks x 768 each"),
    ModelPair("rwkv4-1b5__pythia-1.4b", "RWKV/rwkv-4-1b5-pile", "EleutherAI/pythia-1.4b",
              "same data (the Pile), same GPT-NeoX tokenizer, 24 blocks x 2048 each"),
    ModelPair("finch-1b6__qwen2.5-1.5b", "RWKV/v6-Finch-1B6-HF", "Qwen/Qwen2.5-1.5B",
              "RWKV-6 of the reference study vs a softmax decoder of similar size (28 blocks)"),
    ModelPair("finch-1b6__llama-3.2-1b", "RWKV/v6-Finch-1B6-HF", "meta-llama/Llama-3.2-1B",
              "RWKV-6 of the reference study vs a softmax decoder of similar size (16 blocks)"),
    ModelPair("mamba-1.4b__pythia-1.4b", "state-spaces/mamba-1.4b-hf", "EleutherAI/pythia-1.4b",
              "state-space recurrence trained on the Pile with the GPT-NeoX tokenizer"),
)

# BERT's "first-last avg." has two published figures: the literature averages either block 0
# or the embedding layer with the last block under the same name, so both are anchors.
REFERENCES: tuple[Reference, ...] = (
    Reference("bert-base-uncased", "bert-base-uncased", (
        Anchor("first_last", "mean", {"stsb": 59.04, "sickr": 63.75},
               "first-last avg. of Su et al. 2021 (BERT-whitening), as quoted in SimCSE (Gao et al. 2021) App. B"),
        Anchor("emb_last", "mean", {"sts12": 39.70, "sts13": 59.38, "sts14": 49.67, "sts15": 66.03, "sts16": 66.19,
                                    "stsb": 53.87, "sickr": 62.06},
               "BERT-base (first-last avg.) of SimCSE (Gao et al. 2021) Table 5; a third-party reproduction matches "
               "it only when the embedding layer, not block 0, is averaged with the last block"),
    ), "the classic zero-shot encoder anchor"),
    Reference("all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2", (
        Anchor(5, "mean", {"stsb": 82.03}, "MTEB STSBenchmark test, cos_sim spearman"),
    ), "supervised on 1B sentence pairs: the upper reference, not zero-shot"),
)


def published(model: str, setting: str | int, pooling: str, dataset: str) -> dict | None:
    """The published figure for a reference model (by key, hub id or a path ending in it) at
    a setting (study aggregation name or block) on a dataset's test split; None if there is none."""
    name = model.rstrip("/")
    for ref in REFERENCES:
        if name in (ref.key, ref.spec) or name.endswith("/" + ref.spec.split("/")[-1]):
            for a in ref.anchors:
                if (a.setting, a.pooling) == (setting, pooling) and dataset in a.published:
                    return {"spearman": a.published[dataset] / 100, "source": a.source}
    return None


# ---------------------------------------------------------------- depth


def relative_depth(layer: Layer, blocks: int) -> float | None:
    """Block k of L -> (k+1)/L; the embedding -> 0.0; other named layers ('final') -> None."""
    if is_block(layer):
        if not 0 <= layer < blocks:
            raise ValueError(f"layer {layer} out of range for a model of {blocks} blocks (0..{blocks - 1})")
        return (layer + 1) / blocks
    return 0.0 if layer == EMBEDDING else None


def match_relative_depth(layers_a: Sequence[Layer], blocks_a: int, layers_b: Sequence[Layer],
                         blocks_b: int) -> list[tuple[Layer, Layer]]:
    """For each block layer of A, the block layer of B nearest in relative depth (ties: the shallower).

    Example: A with 12 blocks, B with 24: block 5 of A (depth 0.5) -> block 11 of B.
    """
    candidates = [lb for lb in layers_b if is_block(lb)]
    if not candidates:
        raise ValueError(f"model B has no block layers among {list(layers_b)}; pass block layers to match depth")
    out = []
    for la in layers_a:
        da = relative_depth(la, blocks_a)
        if da is None or la == EMBEDDING:
            continue
        lb = min(candidates, key=lambda k: (abs(relative_depth(k, blocks_b) - da), k))
        out.append((la, lb))
    if not out:
        raise ValueError(f"model A has no block layers among {list(layers_a)}; nothing to match by depth")
    return out


# ---------------------------------------------------------------- scoring


def _ci(resampled: np.ndarray, confidence: float = 0.95) -> list[float]:
    return resampled_summary(resampled, confidence)["ci95"]


def _setting(scored: Scored, layer: Layer, pooling: str) -> dict:
    name = scored.aggregation_at(layer)
    if name is not None:
        return {"layer": layer, "pooling": pooling, "depth": None, "aggregation": name,
                "layers": list(scored.aggregations[name].layers)}
    return {"layer": layer, "pooling": pooling, "depth": relative_depth(layer, scored.blocks)}


def select_setting(scored: Scored, validation: int, test: int) -> dict:
    """(layer, pooling) with the best Spearman on set `validation`, reported on set `test`,
    with the oracle best-on-test setting beside it.

    Ties go to the first setting in encoding order (shallowest layer, pooling order as asked).
    Settings whose Spearman is undefined on validation are never selected.
    """
    def rho(key, i):
        try:
            return spearman(scored.sims[key][i], scored.sets[i].gold)
        except UndefinedCorrelation:
            return None

    val = {k: rho(k, validation) for k in scored.settings}
    tst = {k: rho(k, test) for k in scored.settings}
    defined_val = [k for k in scored.settings if val[k] is not None]
    defined_tst = [k for k in scored.settings if tst[k] is not None]
    if not defined_val or not defined_tst:
        raise UndefinedCorrelation(f"{scored.model}: no setting has a defined Spearman on "
                                   f"{scored.sets[validation if not defined_val else test].name}")
    chosen = max(defined_val, key=lambda k: val[k])
    oracle = max(defined_tst, key=lambda k: tst[k])
    v, t = scored.sets[validation], scored.sets[test]
    return {
        "model": scored.model,
        "selected_on": f"{v.name}/{v.split}", "reported_on": f"{t.name}/{t.split}",
        "selected": _setting(scored, *chosen) | {"spearman_validation": val[chosen], "spearman_test": tst[chosen]},
        "oracle": _setting(scored, *oracle) | {"spearman_validation": val[oracle], "spearman_test": tst[oracle],
                                               "label": ORACLE_LABEL},
        "n_settings": len(scored.settings),
    }


def compare_settings(a: Scored, b: Scored, settings: Sequence[tuple[Layer, Layer, str] | tuple[Layer, Layer, str, str]],
                     set_a: int = 0, set_b: int | None = None, kind: str = "matched-depth",
                     n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> list[dict]:
    """Δρ = ρ(A) − ρ(B) per setting on the same pairs, with paired and unpaired 95% intervals.

    Args:
        settings: (layer_a, layer_b, pooling) or (layer_a, layer_b, pooling_a, pooling_b).
        set_a, set_b: index of the pair set in a.sets / b.sets (set_b defaults to set_a);
            the two must be the same pairs (checked on sentences and gold).
        kind: what the settings are ("matched-depth", "selected", "oracle", ...), recorded.

    Returns:
        One record per setting: model_a, model_b, layer_a, layer_b, depth_a, depth_b,
        pooling (pooling_a, pooling_b), dataset, split, n_pairs, spearman_a, spearman_b
        (and their CIs from the same resamples), delta_spearman, delta_ci95 (paired),
        delta_ci95_unpaired (independent resamples of A and B), p_value, p_adjusted (Holm
        over the settings of this call: one family of comparisons), correction, family_size,
        n_resamples, bootstrap_seed, the dataset revision and both models' provenance.
    """
    set_b = set_a if set_b is None else set_b
    pa_set, pb_set = a.sets[set_a], b.sets[set_b]
    if (pa_set.sentence1, pa_set.sentence2) != (pb_set.sentence1, pb_set.sentence2) or not np.array_equal(
            pa_set.gold, pb_set.gold):
        raise ValueError(f"a paired comparison needs the same pairs: {a.model} has {pa_set.name}/{pa_set.split} "
                         f"({len(pa_set)} pairs), {b.model} has {pb_set.name}/{pb_set.split} ({len(pb_set)}); "
                         "score both models on the same PairSet")
    gold = pa_set.gold
    idx = bootstrap_indices(len(gold), n_resamples, seed)
    idx_other = bootstrap_indices(len(gold), n_resamples, seed + 1)  # the unpaired comparison's B side
    records = []
    for s in settings:
        la, lb, pool_a = s[0], s[1], s[2]
        pool_b = s[3] if len(s) > 3 else pool_a
        for model, key in ((a, (la, pool_a)), (b, (lb, pool_b))):
            if key not in model.sims:
                raise ValueError(f"{model.model} was not scored at layer {key[0]!r} with pooling {key[1]!r}; "
                                 f"it has {model.settings}")
        xa, xb = a.sims[(la, pool_a)][set_a], b.sims[(lb, pool_b)][set_b]
        rec = {"kind": kind, "model_a": a.model, "model_b": b.model, "layer_a": la, "layer_b": lb,
               "depth_a": relative_depth(la, a.blocks), "depth_b": relative_depth(lb, b.blocks),
               "pooling": pool_a if pool_a == pool_b else f"{pool_a} / {pool_b}",
               "pooling_a": pool_a, "pooling_b": pool_b}
        rec |= {"dataset": pa_set.name, "split": pa_set.split, "n_pairs": len(gold),
                "dataset_revision": pa_set.revision}
        try:
            ra, rb = spearman_resampled(xa, gold, idx), spearman_resampled(xb, gold, idx)
            unpaired = resampled_summary(ra - spearman_resampled(xb, gold, idx_other))
            rec |= {"spearman_a": spearman(xa, gold), "spearman_b": spearman(xb, gold),
                    "spearman_ci95_a": _ci(ra), "spearman_ci95_b": _ci(rb)}
            rec |= paired_difference(xa, xb, gold, n_resamples=n_resamples, seed=seed, idx=idx)
            rec |= {"delta_ci95_unpaired": unpaired["ci95"], "p_value_unpaired": unpaired["p_value"]}
        except UndefinedCorrelation as e:
            rec |= {"spearman_a": None, "spearman_b": None, "delta_spearman": None, "delta_ci95": [None, None],
                    "p_value": None, "undefined_reason": str(e)}
        for side, model, layer, pool in (("a", a, la, pool_a), ("b", b, lb, pool_b)):
            if model.aggregation_at(layer) is not None:
                rec[f"aggregation_{side}"] = model.aggregation_at(layer)
            anchor = published(model.model, model.study_name(layer), pool, pa_set.name) \
                if pa_set.split == "test" else None
            if anchor is not None:
                rec[f"published_{side}"] = anchor
        records.append(rec | {"provenance_a": a.provenance, "provenance_b": b.provenance})
    adjusted = adjust_p([r.get("p_value") for r in records], "holm")
    family = sum(p is not None for p in adjusted)
    return [r | {"p_adjusted": p, "correction": "holm", "family_size": family} for r, p in zip(records, adjusted)]


def compare_at_matched_depth(a: Scored, b: Scored, poolings: Sequence[str], set_a: int = 0, set_b: int | None = None,
                             layers_a: Sequence[Layer] | None = None, **kw) -> list[dict]:
    """Each block layer of A against B's block nearest in relative depth, per pooling."""
    la = layers_a if layers_a is not None else list(dict.fromkeys(k[0] for k in a.settings))
    lb = list(dict.fromkeys(k[0] for k in b.settings))
    settings = [(x, y, p) for x, y in match_relative_depth(la, a.blocks, lb, b.blocks) for p in poolings]
    return compare_settings(a, b, settings, set_a, set_b, kind="matched-depth", **kw)


def compare_aggregations(a: Scored, b: Scored, poolings: Sequence[str], set_a: int = 0, set_b: int | None = None,
                         **kw) -> list[dict]:
    """Each study aggregation scored for both models (first_last of A vs first_last of B, each
    at its own depth), per pooling."""
    common = [name for name in a.aggregations if name in b.aggregations]
    settings = [(a.aggregations[n].name, b.aggregations[n].name, p) for n in common for p in poolings]
    return compare_settings(a, b, settings, set_a, set_b, kind="aggregate", **kw) if settings else []


def compare_selected(a: Scored, b: Scored, validation: int, test: int, **kw) -> tuple[dict, dict, list[dict]]:
    """Each model at its own validation-selected setting, and at its oracle, compared on `test`.

    Returns (selection of A, selection of B, [the "selected" record, the "oracle" record]).
    """
    sel_a, sel_b = select_setting(a, validation, test), select_setting(b, validation, test)
    records = []
    for kind in ("selected", "oracle"):
        sa, sb = sel_a[kind], sel_b[kind]
        rec = compare_settings(a, b, [(sa["layer"], sb["layer"], sa["pooling"], sb["pooling"])], test, test,
                               kind=kind, **kw)[0]
        rec["selected_on"] = sel_a["selected_on"] if kind == "selected" else ORACLE_LABEL
        records.append(rec)
    return sel_a, sel_b, records
