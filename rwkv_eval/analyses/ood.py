"""Out-of-domain degradation: does RWKV's recurrent state degrade less than attention?

Question II of the follow-up study. Protocol, per model:

1. select (layer, pooling) on STS-B dev (never on test);
2. at that setting score STS-B test (in-domain) and every out-of-domain set: each STS12-16
   domain (SentEval's per-domain test files) and SICK-R test;
3. degradation(domain) = ρ(STS-B test) − ρ(domain), with a bootstrap interval;
4. the cross-domain spread (std and range of ρ over the out-of-domain sets);
5. STS aggregates, over all of STS12-16 (`sts12-16/...`) and per year (`sts12/...`):
   `concat` (Spearman of the domains' pairs pooled: SentEval's "all", the setting SimCSE
   reports), `mean` (mean of per-domain ρ) and `wmean` (mean weighted by pairs). A year's
   aggregate is what papers print as "STS12"; the per-year rows make ours comparable.

Then, for each (linear, softmax) model pair, the question itself: Δdegradation =
degradation(linear) − degradation(softmax) per domain and overall, with a 95% interval
and p-value; "smaller" when the whole interval is below 0.

Resampling: every pair set i has one bootstrap index matrix (`bootstrap_indices`, seed
`seed + i`), shared by all models. A degradation subtracts two different sets, so its
resamples combine independent draws of the two sets; the models see the same draws, so
Δdegradation is paired on both sets (pair-level noise common to the two models cancels).
Mean/wmean aggregate the per-domain resamples row by row.

Layer aggregations (`aggregations`, e.g. BERT's first-last average) are candidate
settings of the selection like single layers. Where a reference model has a published
figure for the selected setting (compare.published), the row carries it.

One forward pass per model serves every set, layer and pooling (evaluation.score_sets).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .compare import published, select_setting
from ..datasets import STS_DOMAINS, PairSet, load_pairs, sample
from ..evaluation import STS_AGGREGATES, Scored, sts_aggregate
from ..metrics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    UndefinedCorrelation,
    bootstrap_indices,
    resampled_summary,
    spearman,
    spearman_resampled,
)

SELECT_ON = ("stsb", "validation")
IN_DOMAIN = ("stsb", "test")
AGGREGATES = tuple(STS_AGGREGATES)  # concat, mean, wmean (evaluation.sts_aggregate)
AGGREGATE_PREFIX = "sts12-16"  # the group of every STS12-16 domain; each year is a group too


@dataclass(frozen=True)
class OODSets:
    """The pair sets of the protocol, in the order `evaluation.score_sets` must see them."""

    validation: PairSet
    in_domain: PairSet
    domains: tuple[PairSet, ...]  # every STS12-16 domain, then SICK-R test

    @property
    def all(self) -> tuple[PairSet, ...]:
        return (self.validation, self.in_domain, *self.domains)


def load_ood_sets(data_dir: str | Path | None = None, subset: int | None = None, seed: int = 0, *,
                  default_root: str | Path | None = None) -> OODSets:
    """STS-B dev and test, every STS12-16 domain and SICK-R test (~20k pairs).

    Args:
        data_dir, default_root: as `datasets.load_pairs`.
        subset: a seeded subset of this many pairs per set (datasets.sample) for quick
            runs and tests; None = the full sets.
    """
    def load(name: str, split: str):
        return load_pairs(name, split, data_dir, default_root=default_root)

    sub = lambda p: sample(p, subset, seed)  # noqa: E731
    domains = [sub(d) for year in STS_DOMAINS for d in load(year, "test")]
    domains.append(sub(load("sickr", "test")))
    return OODSets(sub(load(*SELECT_ON)), sub(load(*IN_DOMAIN)), tuple(domains))


def _is_sts(name: str) -> bool:
    return name.split("/")[0] in STS_DOMAINS


def _stat(rho: float | None, r: np.ndarray | None) -> dict:
    if rho is None:
        return {"spearman": None, "spearman_ci95": [None, None]}
    return {"spearman": rho, "spearman_ci95": resampled_summary(r)["ci95"]}


def _difference(d: float | None, r: np.ndarray | None, name: str) -> dict:
    if d is None:
        return {name: None, f"{name}_ci95": [None, None], f"{name}_p_value": None}
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


class _Model:
    """One model at its selected setting: ρ and resampled ρ per set and aggregate."""

    def __init__(self, scored: Scored, idx: list[np.ndarray | None], concat_idx: dict[str, np.ndarray | None]):
        self.scored = scored
        self.selection = select_setting(scored, 0, 1)
        key = (self.selection["selected"]["layer"], self.selection["selected"]["pooling"])
        sims = scored.sims[key]
        self.rho: dict[str, float | None] = {}
        self.res: dict[str, np.ndarray | None] = {}
        for i, pairs in enumerate(scored.sets[1:], start=1):
            name = pairs.name
            try:
                self.rho[name] = spearman(sims[i], pairs.gold)
                self.res[name] = spearman_resampled(sims[i], pairs.gold, idx[i])
            except UndefinedCorrelation:
                self.rho[name], self.res[name] = None, None
        for group, members in sts_groups(scored.sets).items():
            names = [scored.sets[i].name for i in members]
            if any(self.rho[n] is None for n in names) or concat_idx.get(group) is None:
                continue
            x, g = [sims[i] for i in members], [scored.sets[i].gold for i in members]
            resample = lambda x, g, idx=concat_idx[group]: spearman_resampled(x, g, idx)  # noqa: E731
            for kind in AGGREGATES:
                self.rho[f"{group}/{kind}"] = sts_aggregate(kind, [self.rho[n] for n in names], x, g)
                self.res[f"{group}/{kind}"] = sts_aggregate(kind, [self.res[n] for n in names], x, g, resample)

    def degradation(self, name: str) -> tuple[float | None, np.ndarray | None]:
        in_name = self.scored.sets[1].name
        if self.rho.get(name) is None or self.rho[in_name] is None:
            return None, None
        return self.rho[in_name] - self.rho[name], self.res[in_name] - self.res[name]

    def published(self, name: str, full: bool) -> dict:
        """{"published": ...} for a row whose figure a paper printed at the selected setting:
        STS-B / SICK-R test, and a year's concat ("all"); only on full sets."""
        sel = self.selection["selected"]
        dataset = name.removesuffix("/concat") if name.split("/")[0] in STS_DOMAINS else name
        if not full or "/" in dataset:
            return {}
        anchor = published(self.scored.model, sel.get("aggregation", sel["layer"]), sel["pooling"], dataset)
        return {"published": anchor} if anchor else {}


def ood_analysis(scored: Sequence[Scored], pairs: Sequence[tuple[str, str]] = (),
                 n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """The protocol above for every model, and the degradation question for every pair.

    Args:
        scored: each model's similarities on `OODSets.all` (in that order), from score_sets.
        pairs: (linear model, softmax model) by their Scored.model names.

    Returns:
        A JSON-ready dict: "models" (selection, in-domain ρ, per-domain ρ and degradation
        with CIs, aggregates, spread), "pairs" (Δdegradation per domain and aggregate, CI,
        p-value, verdict) and the resampling parameters.
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
    idx = [None] + [bootstrap_indices(len(p), n_resamples, seed + i) for i, p in enumerate(sets) if i > 0]
    groups = sts_groups(sets)
    group_pairs = {g: sum(len(sets[i]) for i in members) for g, members in groups.items()}
    concat_idx = {g: bootstrap_indices(n, n_resamples, seed + len(sets) + k) if n >= 3 else None
                  for k, (g, n) in enumerate(group_pairs.items())}
    models = {s.model: _Model(s, idx, concat_idx) for s in scored}
    domain_names = [p.name for p in sets[2:]]
    aggregate_names = [f"{g}/{a}" for g in groups for a in AGGREGATES]
    full = all(p.split in ("validation", "test") for p in sets)  # no subset: published figures apply
    out_models = []
    for name, m in models.items():
        in_name = sets[1].name
        rows = []
        for d in domain_names + aggregate_names:
            if d not in m.rho:
                continue
            n = next((len(p) for p in sets if p.name == d), group_pairs.get(d.split("/")[0]))
            rows.append({"domain": d, "n_pairs": n, **_stat(m.rho[d], m.res[d]),
                         **_difference(*m.degradation(d), "degradation"), **m.published(d, full)})
        defined = [m.rho[d] for d in domain_names if m.rho[d] is not None]
        out_models.append({
            "model": name, "provenance": m.scored.provenance, "selection": m.selection,
            "in_domain": {"domain": in_name, "n_pairs": len(sets[1]), **_stat(m.rho[in_name], m.res[in_name]),
                          **m.published(in_name, full)},
            "domains": [r for r in rows if r["domain"] in domain_names],
            "aggregates": [r for r in rows if r["domain"] in aggregate_names],
            "spread": {"std": float(np.std(defined)) if defined else None,
                       "range": float(np.ptp(defined)) if defined else None, "n_domains": len(defined)},
        })
    out_pairs = []
    for lin, soft in pairs:
        missing = [x for x in (lin, soft) if x not in models]
        if missing:
            raise ValueError(f"pair ({lin}, {soft}): no scored model named {missing[0]!r}; models are {list(models)}")
        rows = []
        for d in domain_names + aggregate_names:
            (da, ra), (db, rb) = models[lin].degradation(d), models[soft].degradation(d)
            if da is None or db is None:
                rows.append({"domain": d, "degradation_linear": da, "degradation_softmax": db,
                             "delta_degradation": None, "verdict": "undefined"})
                continue
            s = resampled_summary(ra - rb)
            lo, hi = s["ci95"]
            verdict = "smaller" if hi < 0 else "larger" if lo > 0 else "no significant difference"
            rows.append({"domain": d, "degradation_linear": da, "degradation_softmax": db,
                         "delta_degradation": da - db, "delta_ci95": s["ci95"], "p_value": s["p_value"],
                         "verdict": verdict})
        out_pairs.append({"linear": lin, "softmax": soft, "question": "is the linear model's degradation smaller?",
                          "domains": [r for r in rows if r["domain"] in domain_names],
                          "overall": [r for r in rows if r["domain"] in aggregate_names]})
    return {"analysis": "ood", "selected_on": f"{sets[0].name}/{sets[0].split}",
            "in_domain": f"{sets[1].name}/{sets[1].split}",
            "sets": [{"name": p.name, "split": p.split, "n_pairs": len(p), "revision": p.revision, "note": p.note}
                     for p in sets],
            "n_resamples": n_resamples, "bootstrap_seed": seed, "models": out_models, "pairs": out_pairs}
