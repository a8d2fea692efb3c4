"""Paired significance inside a benchmark run: each setting against its model's best, and
against the baseline model (GloVe-50d), on the same pairs.

Every (layer, pooling) of a model and every model of a run are scored on the same pairs,
so two settings differ by Δρ with a paired bootstrap: one matrix of resampled pair
indices is shared by all of them, the pair-level noise they share cancels, and a Δρ
whose 95% interval excludes 0 is a real difference (metrics.paired_difference's rule,
metrics.resampled_summary). The report marks the best setting and every setting not
significantly worse than it, and says better / worse / no significant difference
against the baseline.

Many settings are compared at once, so the verdicts come from Holm-adjusted p-values
(metrics.adjust_p), one family per model and pair set for "vs best" and one for "vs
baseline"; the record names the correction, the family size and whether the resamples
can reach its smallest threshold (metrics.bootstrap_resolution). The best is chosen by
its point estimate on the very pairs it is compared on: its ρ is biased upward (the
winner's curse), so the "vs best" marks are descriptive of this set, not a tested
selection; every vs_best record says so (`BEST_CHOSEN_ON`). A fair selection picks on
validation and reports on test (analyses/compare.select_setting).

The resampled Spearmans of a setting are computed once and reused for all its
comparisons (the similarities come from evaluation.Evaluation: no second forward pass).
"""

from __future__ import annotations

import numpy as np

from ..encoder import Layer
from ..evaluation import Evaluation
from ..metrics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    SIGNIFICANCE,
    UndefinedCorrelation,
    adjust_p,
    bootstrap_indices,
    bootstrap_resolution,
    resampled_summary,
    spearman,
    spearman_resampled,
)

Setting = tuple[Layer, str]
BETTER, WORSE, SAME = "better", "worse", "no significant difference"
CORRECTION = "holm"
BEST_CHOSEN_ON = ("the same pairs (winner's curse: the best's ρ is biased upward, so Δρ to it is biased "
                  "downward; descriptive, not a selection tested on held-out pairs)")


def _verdict(delta: float, p_adjusted: float) -> str:
    if p_adjusted >= SIGNIFICANCE:
        return SAME
    return BETTER if delta > 0 else WORSE


class PairedSet:
    """The settings of one model on one pair set, with their resampled Spearmans."""

    def __init__(self, ev: Evaluation, dataset: str, n_resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED):
        if dataset not in ev.gold:
            raise ValueError(f"no pair set {dataset!r} in this evaluation; it has {sorted(ev.gold)}")
        self.dataset, self.gold, self.seed = dataset, ev.gold[dataset], seed
        self.idx = bootstrap_indices(len(self.gold), n_resamples, seed)
        self.sims = {(l, p): s for (d, l, p), s in ev.similarities.items() if d == dataset}
        self.rho: dict[Setting, float] = {}
        self.resampled: dict[Setting, np.ndarray] = {}
        for setting, sims in self.sims.items():
            try:
                self.rho[setting] = spearman(sims, self.gold)
                self.resampled[setting] = spearman_resampled(sims, self.gold, self.idx)
            except UndefinedCorrelation:
                continue  # a collapsed setting has no Spearman to compare

    def best(self) -> Setting | None:
        return max(self.rho, key=self.rho.get) if self.rho else None

    def difference(self, a: Setting, other: "PairedSet", b: Setting) -> dict:
        """Δρ = ρ(self, a) − ρ(other, b) on the same pairs and the same resamples."""
        if len(other.gold) != len(self.gold) or not np.array_equal(other.gold, self.gold) or other.seed != self.seed:
            raise ValueError(f"paired comparison needs the same pairs and resamples: {self.dataset} "
                             f"({len(self.gold)} pairs, seed {self.seed}) vs {other.dataset} "
                             f"({len(other.gold)} pairs, seed {other.seed})")
        s = resampled_summary(self.resampled[a] - other.resampled[b])
        return {"delta_spearman": self.rho[a] - other.rho[b], "delta_ci95": s["ci95"], "p_value": s["p_value"],
                "n_pairs": int(len(self.gold)), "n_resamples": s["n_resamples"], "bootstrap_seed": self.seed}


def compare(model: PairedSet, baseline: PairedSet | None = None, baseline_setting: Setting | None = None,
            baseline_name: str = "glove-6b-50d") -> dict[Setting, dict]:
    """For every setting of `model`: {"vs_best": ..., "vs_baseline": ...} (extra_info-ready).

    vs_best: Δρ to the model's best setting by point estimate (chosen on these pairs:
    `best_chosen_on`), and whether the setting is significantly worse: Δρ < 0 with a
    Holm-adjusted p below 0.05 over the model's other settings; the best itself has Δρ = 0
    and is not in the family.
    vs_baseline: Δρ to the baseline model's `baseline_setting`, with a verdict from the
    Holm-adjusted p over the model's settings.
    """
    best = model.best()
    out: dict[Setting, dict] = {setting: {} for setting in model.sims}
    vs_best = {s: model.difference(s, model, best) for s in model.sims if s in model.rho and s != best}
    vs_base = ({s: model.difference(s, baseline, baseline_setting) for s in model.sims if s in model.rho}
               if baseline is not None and baseline_setting in baseline.rho else {})
    for setting in model.sims:
        if setting not in model.rho:
            out[setting]["vs_best"] = {"undefined": "this setting's Spearman is undefined"}
    for family, name in ((vs_best, "vs_best"), (vs_base, "vs_baseline")):
        adjusted = adjust_p([d["p_value"] for d in family.values()], CORRECTION)
        n_resamples = len(model.idx)
        for (setting, d), p_adj in zip(family.items(), adjusted):
            out[setting][name] = d | {"p_adjusted": p_adj, "correction": CORRECTION, "family_size": len(family),
                                      "resolution": bootstrap_resolution(n_resamples, len(family))}
    for setting, d in vs_best.items():
        out[setting]["vs_best"] |= {"significantly_worse": _verdict(d["delta_spearman"],
                                                                    out[setting]["vs_best"]["p_adjusted"]) == WORSE}
    if best is not None:
        out[best]["vs_best"] = model.difference(best, model, best) | {"significantly_worse": False}
    for setting in model.rho:
        out[setting]["vs_best"] |= {"best": {"layer": best[0], "pooling": best[1]}, "is_best": setting == best,
                                    "best_chosen_on": BEST_CHOSEN_ON}
    for setting, d in vs_base.items():
        out[setting]["vs_baseline"] |= {"model": baseline_name, "layer": baseline_setting[0],
                                        "pooling": baseline_setting[1],
                                        "verdict": _verdict(d["delta_spearman"], out[setting]["vs_baseline"]["p_adjusted"])}
    return out
