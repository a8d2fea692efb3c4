"""github-action-benchmark export: bigger-is-better and smaller-is-better series."""

from __future__ import annotations

from .fmt import fmt_ci
from .run import Run


def action_benchmark(run: Run) -> tuple[list[dict], list[dict]]:
    """(bigger-is-better, smaller-is-better) entries in github-action-benchmark's custom
    format. Random-init and undefined Spearman values are left out of `bigger`: the first
    is meaningless, the second has no number."""
    bigger, smaller = [], []
    for c in run.cases:
        ctx = (f"{c.extra.get('device', '?')} {c.extra.get('dtype', '')}; commit {run.commit[:7]}; "
               f"profile {c.extra.get('profile', '?')}")
        if c.trained and c.spearman is not None:
            bigger.append({"name": f"{c.label} spearman", "unit": "spearman", "value": round(c.spearman, 6),
                           "extra": f"95% CI{fmt_ci(c) or ' n/a'}; n_pairs {c.n_pairs}; gate {c.gate}; {ctx}"})
        if c.seconds_per_pair is not None:
            smaller.append({"name": f"{c.label} time per pair", "unit": "s/pair", "value": c.seconds_per_pair,
                            "extra": f"batch of {c.extra.get('timed_batch_sentences', '?')} sentences; {ctx}"})
        if c.peak_memory_mb is not None:
            smaller.append({"name": f"{c.label} peak memory", "unit": "MB", "value": round(c.peak_memory_mb, 3),
                            "extra": f"{c.extra.get('memory_kind', '?')}; {ctx}"})
    for t in run.throughput:
        if t.mean_s is not None:
            smaller.append({"name": f"{t.name} mean time", "unit": "s", "value": t.mean_s,
                            "extra": f"pytest-benchmark stats.mean; commit {run.commit[:7]}"})
    return bigger, smaller
