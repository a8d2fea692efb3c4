"""Paired significance inside a benchmark run: each setting against its model's best, and
against the baseline model (GloVe-50d), on the same pairs.

Every (layer, pooling) of a model and every model of a run are scored on the same pairs,
so two settings differ by Δρ with a paired bootstrap: one matrix of resampled pair
indices is shared by all of them, the pair-level noise they share cancels, and a Δρ
whose 95% interval excludes 0 is a real difference (metrics.paired_difference's rule,
metrics.resampled_summary). The report marks the best setting and every setting not
significantly worse than it, and says better / worse / no significant difference
against the baseline.

The resampled Spearmans of a setting are computed once and reused for all its
comparisons (the similarities come from evaluation.Evaluation: no second forward pass).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..encoder import Layer
from ..evaluation import Evaluation
from ..metrics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    UndefinedCorrelation,
    bootstrap_indices,
    resampled_summary,
    spearman,
    spearman_resampled,
)

Setting = tuple[Layer, str]
BETTER, WORSE, SAME = "better", "worse", "no significant difference"


def _verdict(ci: Sequence[float]) -> str:
    return BETTER if ci[0] > 0 else WORSE if ci[1] < 0 else SAME


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

    vs_best: Δρ to the model's best setting by point estimate, and whether the setting is
    significantly worse (the 95% CI of Δρ lies below 0); the best itself has Δρ = 0.
    vs_baseline: Δρ to the baseline model's `baseline_setting`, with a verdict.
    """
    best = model.best()
    out: dict[Setting, dict] = {}
    for setting in model.sims:
        rec: dict = {}
        if setting not in model.rho:
            rec["vs_best"] = {"undefined": "this setting's Spearman is undefined"}
        else:
            d = model.difference(setting, model, best)
            rec["vs_best"] = d | {"best": {"layer": best[0], "pooling": best[1]}, "is_best": setting == best,
                                  "significantly_worse": setting != best and d["delta_ci95"][1] < 0}
            if baseline is not None and baseline_setting in baseline.rho:
                b = model.difference(setting, baseline, baseline_setting)
                rec["vs_baseline"] = b | {"model": baseline_name,
                                          "layer": baseline_setting[0], "pooling": baseline_setting[1],
                                          "verdict": _verdict(b["delta_ci95"])}
        out[setting] = rec
    return out
