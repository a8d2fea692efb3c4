"""Out-of-domain degradation: does RWKV's recurrent state degrade less than attention?

Question II of the follow-up study. Protocol, per model:

1. select (layer, pooling) on STS-B dev (never on test);
2. at that setting score STS-B test (in-domain) and every out-of-domain set: each STS12-16
   domain (SentEval's per-domain test files), SICK-R test and, where its file is present,
   BIOSSES;
3. degradation(domain) = ρ(STS-B test) − ρ(domain), with a bootstrap interval;
4. the cross-domain spread (std and range of ρ over the out-of-domain sets);
5. STS aggregates, over all of STS12-16 (`sts12-16/...`) and per year (`sts12/...`):
   `concat` (Spearman of the domains' pairs pooled: SentEval's "all", the setting SimCSE
   reports), `mean` (mean of per-domain ρ) and `wmean` (mean weighted by pairs). A year's
   aggregate is what papers print as "STS12"; the per-year rows make ours comparable.

Then, for each (linear, softmax) model pair, the question itself: Δdegradation =
degradation(linear) − degradation(softmax) per domain and overall, with a 95% interval
and p-value; "smaller" / "larger" when the p-value adjusted for the number of domains
(Benjamini-Hochberg over the per-domain list, Holm over the aggregates; metrics.adjust_p)
is below 0.05.

Overlap, measured (`measure_overlap`): STS-B was built from STS 2012-2017, so many STS12-16
pairs are STS-B pairs (sts16/answer-answer: all 254 in STS-B test; sts15/answers-forums: all
375 in STS-B dev, the selection set). A pair is identified by its two sentences, lower-cased,
whitespace collapsed, in either order (`pair_key`). Every domain's row records its pairs,
the pairs it shares with STS-B train, dev and test, and its novel pairs. The figures of the
protocol are on the **novel** pairs: those shared with the selection set (dev) or the
in-domain test set are removed, so selection never sees an evaluated pair and the two sides
of a degradation are disjoint. STS-B train is not read by a zero-shot model: its overlap is
reported (a domain that shares pairs with any STS-B split is one of STS-B's own sources:
`in_stsb_sources`; pair-disjoint is not genre-disjoint), not removed. The figure on the
whole domain sits beside it under `full_domain`, point estimates labelled as such.
SICK-R (another source, no shared pair) and BIOSSES (biomedical) are the clean anchors.
A domain with fewer than MIN_NOVEL_PAIRS novel pairs gets a ρ but no interval, test or
verdict, and stays out of the aggregates (`too_few_pairs` says so).

Resampling: every pair set i has one bootstrap index matrix (`bootstrap_indices`, seed
`seed + i`, over its novel pairs), shared by all models. A degradation subtracts two
different sets, so its resamples combine independent draws of the two sets: valid because
after the removal they share no pair (checked: `ood_analysis` refuses overlapping sets);
the models see the same draws, so Δdegradation is paired on both sets (pair-level noise
common to the two models cancels). Mean/wmean aggregate the per-domain resamples row by row.

Layer aggregations (`aggregations`, e.g. BERT's first-last average) are candidate
settings of the selection like single layers. Where a reference model has a published
figure for the selected setting (compare.published), the row carries it.

One forward pass per model serves every set, layer and pooling (evaluation.score_sets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .compare import published, select_setting
from ..datasets import STS_DOMAINS, DatasetNotFound, PairSet, get, load_pairs, sample
from ..evaluation import STS_AGGREGATES, Scored, sts_aggregate
from ..metrics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CORRECTIONS,
    SIGNIFICANCE,
    UndefinedCorrelation,
    adjust_p,
    bootstrap_indices,
    bootstrap_resolution,
    resampled_summary,
    spearman,
    spearman_resampled,
)

SELECT_ON = ("stsb", "validation")
IN_DOMAIN = ("stsb", "test")
REFERENCE = ("stsb", "train")  # read for the overlap table only: a zero-shot model never sees it
AGGREGATES = tuple(STS_AGGREGATES)  # concat, mean, wmean (evaluation.sts_aggregate)
AGGREGATE_PREFIX = "sts12-16"  # the group of every STS12-16 domain; each year is a group too
ANCHORS = ("sickr", "biosses")  # sources STS-B was not built from: the clean out-of-domain sets
OPTIONAL_DOMAINS = ("biosses",)  # evaluated where its file is present (README: how to get it)
# Below 30 pairs a percentile-bootstrap interval of Spearman undercovers (its resamples repeat
# a few distinct pairs) and its half-width exceeds ~0.35 on the ρ scale (SE ~ 1/sqrt(n - 3)):
# wider than any degradation it would test. Such a domain gets a ρ, no interval, no verdict.
MIN_NOVEL_PAIRS = 30
PROTOCOL = ("novel pairs: every pair shared with the selection set or the in-domain test set is removed from the "
            "domain (pairs compared lower-cased, whitespace collapsed, in either order); full_domain: the whole "
            "domain, shared pairs included, for comparison with the literature only")
CORRECTION = {"domains": "benjamini-hochberg", "overall": "holm"}


def pair_key(sentence1: str, sentence2: str) -> tuple[str, str]:
    """A pair's identity across data sets: both sentences lower-cased with runs of whitespace
    collapsed, in sorted order (STS files repeat pairs with the sentences swapped, re-cased
    or re-spaced)."""
    a, b = (" ".join(x.lower().split()) for x in (sentence1, sentence2))
    return (a, b) if a <= b else (b, a)


def pair_keys(pairs: PairSet) -> list[tuple[str, str]]:
    return [pair_key(a, b) for a, b in zip(pairs.sentence1, pairs.sentence2)]


@dataclass(frozen=True)
class DomainOverlap:
    """Which pairs of one domain also occur in the reference sets, and the novel rest.

    shared: reference label ("stsb/validation") -> number of the domain's pairs found in it.
    novel: row indices (into the domain as scored) of the pairs in none of the removed references.
    """

    domain: str
    n_pairs: int
    shared: dict[str, int]
    removed: tuple[str, ...]
    novel: np.ndarray = field(repr=False)

    def record(self) -> dict:
        return {"n_pairs": self.n_pairs, "overlap": dict(self.shared), "n_novel": int(len(self.novel)),
                "removed": list(self.removed), "in_stsb_sources": any(self.shared.values())}


def measure_overlap(domain: PairSet, references: Mapping[str, PairSet], remove: Sequence[str]) -> DomainOverlap:
    """Count the domain's pairs found in each reference set (by `pair_key`) and keep as novel
    the rows found in none of the references named in `remove`."""
    if unknown := [r for r in remove if r not in references]:
        raise ValueError(f"measure_overlap: remove names {unknown}, not among the references {list(references)}")
    keys = pair_keys(domain)
    found = {label: np.array([k in ref for k in keys], dtype=bool)
             for label, ref in ((label, set(pair_keys(p))) for label, p in references.items())}
    drop = np.zeros(len(keys), dtype=bool)
    for label in remove:
        drop |= found[label]
    return DomainOverlap(domain.name, len(domain), {label: int(f.sum()) for label, f in found.items()},
                         tuple(remove), np.flatnonzero(~drop))


def _label(p: PairSet) -> str:
    return f"{p.name}/{p.split.split('-')[0]}"


@dataclass(frozen=True)
class OODSets:
    """The pair sets of the protocol, in the order `evaluation.score_sets` must see them, and
    each domain's overlap with STS-B (measured on the full STS-B splits, even for a subset)."""

    validation: PairSet
    in_domain: PairSet
    domains: tuple[PairSet, ...]  # every STS12-16 domain, then SICK-R test, then BIOSSES if present
    overlap: tuple[DomainOverlap, ...] = ()  # one per domain
    missing: tuple[str, ...] = ()  # optional domains not found, with how to get them
    stsb_shared: int = 0  # pairs STS-B dev and test share (kept: both are STS-B as published)

    @property
    def all(self) -> tuple[PairSet, ...]:
        return (self.validation, self.in_domain, *self.domains)


def load_ood_sets(data_dir: str | Path | None = None, subset: int | None = None, seed: int = 0, *,
                  default_root: str | Path | None = None) -> OODSets:
    """STS-B dev and test, every STS12-16 domain, SICK-R test and BIOSSES where present (~20k
    pairs), with each domain's overlap with STS-B train, dev and test.

    Args:
        data_dir, default_root: as `datasets.load_pairs`. BIOSSES is optional: a data root
            without it is noted in `missing`; the hub is tried for it only when no data root
            is given at all.
        subset: a seeded subset of this many pairs per set (datasets.sample) for quick
            runs and tests; None = the full sets. The overlap is measured against the full
            STS-B splits either way.
    """
    def load(name: str, split: str):
        return load_pairs(name, split, data_dir, default_root=default_root)

    sub = lambda p: sample(p, subset, seed)  # noqa: E731
    full = {split: load("stsb", split) for split in (REFERENCE[1], SELECT_ON[1], IN_DOMAIN[1])}
    domains = [sub(d) for year in STS_DOMAINS for d in load(year, "test")]
    domains.append(sub(load("sickr", "test")))
    missing = []
    for name in OPTIONAL_DOMAINS:
        try:
            domains.append(sub(load_pairs(name, "test", data_dir, default_root=default_root,
                                          allow_hub=data_dir is None and not default_root)))
        except DatasetNotFound:
            missing.append(f"{name}: not found; {get(name).how_to_get}")
    references = {_label(p): p for p in full.values()}
    remove = (_label(full[SELECT_ON[1]]), _label(full[IN_DOMAIN[1]]))
    overlap = tuple(measure_overlap(d, references, remove) for d in domains)
    shared = len(set(pair_keys(full[SELECT_ON[1]])) & set(pair_keys(full[IN_DOMAIN[1]])))
    return OODSets(sub(full[SELECT_ON[1]]), sub(full[IN_DOMAIN[1]]), tuple(domains), overlap, tuple(missing), shared)


def _is_sts(name: str) -> bool:
    return name.split("/")[0] in STS_DOMAINS


def _stat(rho: float | None, r: np.ndarray | None) -> dict:
    if rho is None:
        return {"spearman": None, "spearman_ci95": [None, None]}
    if r is None:
        return {"spearman": rho, "spearman_ci95": [None, None]}
    return {"spearman": rho, "spearman_ci95": resampled_summary(r)["ci95"]}


def _difference(d: float | None, r: np.ndarray | None, name: str) -> dict:
    if d is None or r is None:
        return {name: d, f"{name}_ci95": [None, None], f"{name}_p_value": None}
    s = resampled_summary(r)
    return {name: d, f"{name}_ci95": s["ci95"], f"{name}_p_value": s["p_value"]}


def sts_groups(sets: Sequence[PairSet]) -> dict[str, list[int]]:
    """Aggregate group -> indices of its STS domains in `sets` (after the two STS-B sets):
    all of STS12-16 first, then each year present."""
    sts = [i for i, p in enumerate(sets) if i > 1 and _is_sts(p.name)]
    groups = {AGGREGATE_PREFIX: sts} if sts else {}
    for year in STS_DOMAINS:
        members = [i for i in sts if sets[i].name.split("/")[0] == year]
        if members:
            groups[year] = members
    return groups


def _rho(x: np.ndarray, gold: np.ndarray, idx: np.ndarray | None) -> tuple[float | None, np.ndarray | None]:
    try:
        return spearman(x, gold), (None if idx is None else spearman_resampled(x, gold, idx))
    except UndefinedCorrelation:
        return None, None


class _Model:
    """One model at its selected setting: ρ and resampled ρ per set (on its novel rows) and
    aggregate, and ρ on each whole domain (`full`)."""

    def __init__(self, scored: Scored, rows: list[np.ndarray], idx: list[np.ndarray | None],
                 groups: dict[str, list[int]], concat_idx: dict[str, np.ndarray | None]):
        self.scored = scored
        self.selection = select_setting(scored, 0, 1)
        key = (self.selection["selected"]["layer"], self.selection["selected"]["pooling"])
        sims = scored.sims[key]
        self.rho: dict[str, float | None] = {}
        self.res: dict[str, np.ndarray | None] = {}
        self.full: dict[str, float | None] = {}
        for i, pairs in enumerate(scored.sets[1:], start=1):
            r = rows[i]
            self.rho[pairs.name], self.res[pairs.name] = _rho(sims[i][r], pairs.gold[r], idx[i])
            self.full[pairs.name] = _rho(sims[i], pairs.gold, None)[0]
        for group, members in groups.items():
            if concat_idx.get(group) is None:
                continue
            names = [scored.sets[i].name for i in members]
            if any(self.rho[n] is None for n in names):
                continue
            x = [sims[i][rows[i]] for i in members]
            g = [scored.sets[i].gold[rows[i]] for i in members]
            resample = lambda x, g, idx=concat_idx[group]: spearman_resampled(x, g, idx)  # noqa: E731
            for kind in AGGREGATES:
                self.rho[f"{group}/{kind}"] = sts_aggregate(kind, [self.rho[n] for n in names], x, g)
                self.res[f"{group}/{kind}"] = sts_aggregate(kind, [self.res[n] for n in names], x, g, resample)

    def degradation(self, name: str) -> tuple[float | None, np.ndarray | None]:
        in_name = self.scored.sets[1].name
        if self.rho.get(name) is None or self.rho[in_name] is None:
            return None, None
        res = self.res[name]
        return self.rho[in_name] - self.rho[name], None if res is None else self.res[in_name] - res

    def full_domain(self, name: str) -> dict:
        """ρ and degradation on the whole domain, shared pairs included: point estimates only
        (an interval from independent resamples of two sets that share pairs would be wrong)."""
        rho, rho_in = self.full.get(name), self.rho[self.scored.sets[1].name]
        return {"spearman": rho, "degradation": None if rho is None or rho_in is None else rho_in - rho,
                "label": "whole domain, pairs shared with STS-B dev/test included: not an out-of-domain figure"}

    def published(self, name: str, full: bool) -> dict:
        """{"published": ...} for a row whose figure a paper printed at the selected setting:
        STS-B / SICK-R test, and a year's concat ("all"); only on full sets."""
        sel = self.selection["selected"]
        dataset = name.removesuffix("/concat") if name.split("/")[0] in STS_DOMAINS else name
        if not full or "/" in dataset:
            return {}
        anchor = published(self.scored.model, sel.get("aggregation", sel["layer"]), sel["pooling"], dataset)
        return {"published": anchor} if anchor else {}


def _overlaps(sets: Sequence[PairSet], overlap: Sequence[DomainOverlap] | None) -> list[DomainOverlap]:
    """The given overlap (checked against the sets), or one measured against the scored STS-B sets."""
    domains = sets[2:]
    if overlap is None:
        refs = {_label(sets[0]): sets[0], _label(sets[1]): sets[1]}
        return [measure_overlap(d, refs, tuple(refs)) for d in domains]
    if [(o.domain, o.n_pairs) for o in overlap] != [(d.name, len(d)) for d in domains]:
        raise ValueError("overlap does not describe the scored domains (names and pair counts differ); pass the "
                         "OODSets.overlap of the OODSets whose .all was scored")
    return list(overlap)


def _check_disjoint(sets: Sequence[PairSet], rows: list[np.ndarray]) -> None:
    """The selection set and the in-domain set share no pair with any evaluated (novel) domain."""
    for ref in sets[:2]:
        ref_keys = set(pair_keys(ref))
        for i, d in enumerate(sets[2:], start=2):
            keys = [pair_key(d.sentence1[j], d.sentence2[j]) for j in rows[i]]
            if shared := sum(k in ref_keys for k in keys):
                raise ValueError(f"{d.name}: {shared} evaluated pairs also occur in {ref.name}/{ref.split}; the "
                                 "selection and in-domain sets must share no pair with an evaluated domain "
                                 "(measure the overlap with measure_overlap against the full STS-B splits)")


def _verdict(delta: float, p_adjusted: float | None) -> str:
    if p_adjusted is None or p_adjusted >= SIGNIFICANCE:
        return "no significant difference"
    return "smaller" if delta < 0 else "larger"


def ood_analysis(scored: Sequence[Scored], pairs: Sequence[tuple[str, str]] = (),
                 n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                 overlap: Sequence[DomainOverlap] | None = None) -> dict:
    """The protocol above for every model, and the degradation question for every pair.

    Args:
        scored: each model's similarities on `OODSets.all` (in that order), from score_sets.
        pairs: (linear model, softmax model) by their Scored.model names.
        overlap: `OODSets.overlap` (measured on the full STS-B splits); None measures it
            against the scored STS-B sets themselves (complete only when they are not subsets).

    Returns:
        A JSON-ready dict: "protocol", "overlap" (per domain: pairs, shared per STS-B split,
        novel), "models" (selection, in-domain ρ, per-domain ρ and degradation on novel pairs
        with CIs, the full-domain figure beside, aggregates, spread, the clean anchors),
        "pairs" (Δdegradation per domain and aggregate, CI, p-value, adjusted p, verdict),
        "correction" and the resampling parameters.
    """
    if not scored:
        raise ValueError("ood_analysis got no models")
    sets = scored[0].sets
    for s in scored[1:]:
        if [(p.name, p.split, len(p)) for p in s.sets] != [(p.name, p.split, len(p)) for p in sets]:
            raise ValueError(f"{s.model} was scored on other sets than {scored[0].model}; score every model on the "
                             "same OODSets.all")
    if len(sets) < 3 or (sets[0].name, sets[0].split.split("-")[0]) != SELECT_ON:
        raise ValueError("the sets must be OODSets.all: STS-B validation, STS-B test, then the out-of-domain sets")
    overlaps = _overlaps(sets, overlap)
    rows = [np.arange(len(sets[0])), np.arange(len(sets[1]))] + [o.novel for o in overlaps]
    _check_disjoint(sets, rows)
    n_eval = [len(r) for r in rows]
    enough = [i < 2 or n >= MIN_NOVEL_PAIRS for i, n in enumerate(n_eval)]
    idx = [None] + [bootstrap_indices(n, n_resamples, seed + i) if enough[i] and n >= 3 else None
                    for i, n in enumerate(n_eval) if i > 0]
    groups = {g: [i for i in members if enough[i]] for g, members in sts_groups(sets).items()}
    groups = {g: members for g, members in groups.items() if members}
    group_pairs = {g: sum(n_eval[i] for i in members) for g, members in groups.items()}
    concat_idx = {g: bootstrap_indices(n, n_resamples, seed + len(sets) + k) if n >= 3 else None
                  for k, (g, n) in enumerate(group_pairs.items())}
    models = {s.model: _Model(s, rows, idx, groups, concat_idx) for s in scored}
    domain_names = [p.name for p in sets[2:]]
    aggregate_names = [f"{g}/{a}" for g in groups for a in AGGREGATES]
    info = {p.name: o.record() | {"too_few_pairs": not enough[i]}
            for i, (p, o) in enumerate(zip(sets[2:], overlaps), start=2)}
    few = (f"fewer than {MIN_NOVEL_PAIRS} novel pairs: no interval, no test, left out of the aggregates "
           "(MIN_NOVEL_PAIRS)")
    full = all(p.split in ("validation", "test") for p in sets)  # no subset: published figures apply
    out_models = []
    for name, m in models.items():
        in_name = sets[1].name
        rows_out = []
        for d in domain_names:
            row = {"domain": d, **info[d], **_stat(m.rho[d], m.res[d]),
                   **_difference(*m.degradation(d), "degradation"), "full_domain": m.full_domain(d),
                   **m.published(d, full)}
            if info[d]["too_few_pairs"]:
                row["too_few_pairs_reason"] = few
            rows_out.append(row | ({"clean_anchor": True} if d in ANCHORS else {}))
        for a in aggregate_names:
            if a not in m.rho:
                continue
            group = a.rsplit("/", 1)[0]
            rows_out.append({"domain": a, "n_pairs": group_pairs[group],
                             "members": [sets[i].name for i in groups[group]], **_stat(m.rho[a], m.res[a]),
                             **_difference(*m.degradation(a), "degradation"), **m.published(a, full)})
        defined = [m.rho[d] for d in domain_names if m.rho[d] is not None and not info[d]["too_few_pairs"]]
        out_models.append({
            "model": name, "provenance": m.scored.provenance, "selection": m.selection,
            "in_domain": {"domain": in_name, "n_pairs": len(sets[1]), **_stat(m.rho[in_name], m.res[in_name]),
                          **m.published(in_name, full)},
            "anchors": [r for r in rows_out if r.get("clean_anchor")],
            "domains": [r for r in rows_out if r["domain"] in domain_names],
            "aggregates": [r for r in rows_out if r["domain"] in aggregate_names],
            "spread": {"std": float(np.std(defined)) if defined else None,
                       "range": float(np.ptp(defined)) if defined else None, "n_domains": len(defined)},
        })
    out_pairs = []
    for lin, soft in pairs:
        missing = [x for x in (lin, soft) if x not in models]
        if missing:
            raise ValueError(f"pair ({lin}, {soft}): no scored model named {missing[0]!r}; models are {list(models)}")
        families = {}
        for family, names in (("domains", domain_names), ("overall", aggregate_names)):
            rows_f = []
            for d in names:
                (da, ra), (db, rb) = models[lin].degradation(d), models[soft].degradation(d)
                row = {"domain": d, "degradation_linear": da, "degradation_softmax": db}
                if da is None or db is None or ra is None or rb is None:
                    few_pairs = info.get(d, {}).get("too_few_pairs") or (da is not None and db is not None)
                    reason = "too few novel pairs" if few_pairs else "undefined"
                    rows_f.append(row | {"delta_degradation": None if da is None or db is None else da - db,
                                         "delta_ci95": [None, None], "p_value": None, "p_adjusted": None,
                                         "verdict": reason})
                    continue
                s = resampled_summary(ra - rb)
                rows_f.append(row | {"delta_degradation": da - db, "delta_ci95": s["ci95"], "p_value": s["p_value"]})
            tested = [r for r in rows_f if r["p_value"] is not None]
            for r, p_adj in zip(tested, adjust_p([r["p_value"] for r in tested], CORRECTION[family])):
                r |= {"p_adjusted": p_adj, "verdict": _verdict(r["delta_degradation"], p_adj)}
            families[family] = rows_f
            families[f"{family}_family_size"] = len(tested)
        out_pairs.append({"linear": lin, "softmax": soft, "question": "is the linear model's degradation smaller?",
                          "domains": families["domains"], "overall": families["overall"],
                          "correction": {f: {"method": CORRECTION[f], "family_size": families[f"{f}_family_size"],
                                             "level": SIGNIFICANCE, "what": CORRECTIONS[CORRECTION[f]],
                                             "resolution": bootstrap_resolution(n_resamples,
                                                                                families[f"{f}_family_size"])}
                                         for f in CORRECTION}})
    return {"analysis": "ood", "protocol": PROTOCOL, "min_novel_pairs": MIN_NOVEL_PAIRS,
            "selected_on": f"{sets[0].name}/{sets[0].split}", "in_domain": f"{sets[1].name}/{sets[1].split}",
            "anchors": [d for d in domain_names if d in ANCHORS],
            "overlap": [{"domain": d, **info[d]} for d in domain_names],
            "sets": [{"name": p.name, "split": p.split, "n_pairs": len(p), "revision": p.revision, "note": p.note}
                     for p in sets],
            "n_resamples": n_resamples, "bootstrap_seed": seed, "models": out_models, "pairs": out_pairs}
