"""Time and memory per model x layer, and the benchmarks without an accuracy record."""

from __future__ import annotations

import statistics

from ..encoder import layer_id as layer_label
from .fmt import fmt_num, fmt_seconds, layer_sort, md_table, models_of
from .run import Run, number


def cost_rows(run: Run) -> list[tuple]:
    """(model, layer, median s/pair, n cases, max peak MB, max delta MB, median tokens/s, memory kinds)."""
    rows = []
    for m in models_of(run.cases):
        mc = [c for c in run.cases if c.model_key == m]
        for layer in sorted({c.layer for c in mc}, key=layer_sort):
            lc = [c for c in mc if c.layer == layer]
            spp = [c.seconds_per_pair for c in lc if c.seconds_per_pair is not None]
            mem = [c.peak_memory_mb for c in lc if c.peak_memory_mb is not None]
            dmem = [number(c.extra.get("peak_memory_delta_mb")) for c in lc]
            dmem = [x for x in dmem if x is not None]
            tps = [x for x in (number(c.extra.get("tokens_per_second")) for c in lc) if x is not None]
            kinds = tuple(sorted({str(c.extra.get("memory_kind")) for c in lc if c.extra.get("memory_kind")}))
            rows.append((m, layer, statistics.median(spp) if spp else None, len(lc), max(mem) if mem else None,
                         max(dmem) if dmem else None, statistics.median(tps) if tps else None, kinds))
    return rows


def cost_section(run: Run) -> list[str]:
    """The table, with the memory method said once under it: it is a sentence, and the same for
    nearly every row (a GPU run has two: the RWKV models on the GPU, GloVe on the CPU); rows
    name theirs by number only when there are several."""
    rows = cost_rows(run)
    kinds = list(dict.fromkeys(k for r in rows for k in r[7]))
    out = ["## Time and memory", "",
           "Per model × layer, over its poolings and datasets: median seconds per pair of the timed "
           "pre-tokenized batch, the largest peak memory and the largest peak increase during the call.", ""]
    numbered = len(kinds) > 1
    out += md_table(("model", "layer", "s/pair (median)", "cases", "peak MB", "Δ peak MB", "tokens/s")
                    + (("memory method",) if numbered else ()),
                    [(m, layer_label(la), fmt_seconds(s), n, fmt_num(p, ".1f"), fmt_num(d, ".1f"), fmt_num(t, ".3g"))
                     + ((", ".join(f"[{kinds.index(x) + 1}]" for x in k) or "—",) if numbered else ())
                     for m, la, s, n, p, d, t, k in rows])
    if numbered:
        out += ["How peak memory was measured:", ""] + [f"{i}. {k}" for i, k in enumerate(kinds, 1)] + [""]
    elif kinds:
        out += [f"How peak memory was measured: {kinds[0]}.", ""]
    return out


def throughput_section(run: Run) -> list[str]:
    if not run.throughput:
        return []
    rows = [(t.name, fmt_seconds(t.mean_s),
             ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(t.numbers.items()))
             or "—") for t in run.throughput]
    intro = "Benchmarks without an accuracy record (stats.mean and the numbers in extra_info)."
    return ["## Throughput", "", intro, ""] + md_table(("benchmark", "mean", "extra_info"), rows)
