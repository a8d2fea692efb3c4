"""Comparisons across runs: deltas against a baseline run, and the best-Spearman history."""

from __future__ import annotations

from typing import Sequence

from ..encoder import layer_id as layer_label
from .fmt import best_case, fmt_rho, match, md_table
from .run import RANDOM_INIT_MARK, Run


def delta_section(run: Run, old: Run) -> list[str]:
    out = [f"## Deltas vs {old.label}", "",
           f"Baseline: `{old.source}` (commit `{old.commit}`, {old.raw.get('datetime')}). "
           "Δρ = new − old; time ratio = new s/pair ÷ old s/pair (> 1: slower); "
           "Δ memory = new − old peak MB.", ""]
    pairs = match(run, old)
    rows = []
    for new, prev in pairs:
        if prev is None:
            continue
        d_rho = None if new.spearman is None or prev.spearman is None else new.spearman - prev.spearman
        ratio = (new.seconds_per_pair / prev.seconds_per_pair
                 if new.seconds_per_pair is not None and prev.seconds_per_pair else None)
        d_mem = (new.peak_memory_mb - prev.peak_memory_mb
                 if new.peak_memory_mb is not None and prev.peak_memory_mb is not None else None)
        rows.append((new.model_key, f"{new.dataset}-{new.split}", layer_label(new.layer), new.pooling,
                     fmt_rho(prev.spearman), fmt_rho(new.spearman),
                     "undefined" if d_rho is None else f"{d_rho:+.4f}",
                     "—" if ratio is None else f"{ratio:.2f}×", "—" if d_mem is None else f"{d_mem:+.1f}",
                     "" if new.trained else RANDOM_INIT_MARK))
    out += md_table(("model", "dataset", "layer", "pooling", "old ρ", "new ρ", "Δρ", "time ratio", "Δ memory MB",
                   "note"), rows)
    new_only = [n.label for n, p in pairs if p is None]
    gone = sorted({c.match_key for c in old.cases} - {c.match_key for c in run.cases})
    if new_only:
        out += [f"New cases (no baseline): {', '.join(new_only)}", ""]
    if gone:
        out += [f"Cases in the baseline but not in this run: "
                f"{', '.join(f'{m}/{d}-{s}/{layer_label(la)}/{p}' for m, d, s, la, p in gone)}", ""]
    return out


def history_section(runs: Sequence[Run]) -> list[str]:
    keys = sorted({(c.model_key, c.dataset, c.split) for r in runs for c in r.cases if c.trained})
    if len(runs) < 2 or not keys:
        return []
    rows = []
    for m, d, s in keys:
        cells = []
        for r in runs:
            b = best_case([c for c in r.cases if (c.model_key, c.dataset, c.split) == (m, d, s)])
            cells.append("—" if b is None else f"{fmt_rho(b.spearman)} ({layer_label(b.layer)}/{b.pooling})")
        rows.append((m, f"{d}-{s}", *cells))
    return ["## History", "", "Best Spearman ρ (layer/pooling) of each trained model, oldest run first.", ""] \
        + md_table(("model", "dataset", *(r.label for r in runs)), rows)
