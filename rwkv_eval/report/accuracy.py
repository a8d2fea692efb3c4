"""The accuracy section: Spearman by layer x pooling per dataset, best settings, per-domain tables."""

from __future__ import annotations

from ..profiles import layer_id as layer_label
from .fmt import (
    best_case,
    fmt_ci,
    fmt_rho,
    layer_sort,
    md_table,
    models_of,
    pooling_sort,
)
from .run import RANDOM_INIT_MARK, Run, number


def accuracy_section(run: Run, dataset: str, split: str) -> list[str]:
    cases = [c for c in run.cases if (c.dataset, c.split) == (dataset, split)]
    n = sorted({c.n_pairs for c in cases if c.n_pairs is not None})
    out = [f"### {dataset} / {split}" + (f" ({', '.join(map(str, n))} pairs)" if n else ""), ""]
    poolings = sorted({c.pooling for c in cases}, key=pooling_sort)
    rows = []
    for m in models_of(cases):
        mc = [c for c in cases if c.model_key == m]
        best = best_case(mc) if mc[0].trained else None
        note = "" if mc[0].trained else RANDOM_INIT_MARK
        for layer in sorted({c.layer for c in mc}, key=layer_sort):
            cells = []
            for p in poolings:
                c = next((c for c in mc if c.layer == layer and c.pooling == p), None)
                cell = "—" if c is None else fmt_rho(c.spearman) + fmt_ci(c)
                cells.append(f"**{cell}**" if c is not None and c is best and len(mc) > 1 else cell)
            rows.append((m, layer_label(layer), *cells, note))
    out += ["Spearman ρ of cosine similarity [95% CI]; **bold**: the model's best layer/pooling.", ""]
    out += md_table(("model", "layer", *poolings, "note"), rows)
    bests = []
    for m in models_of(cases):
        mc = [c for c in cases if c.model_key == m]
        b = best_case(mc)
        if b is not None:
            bests.append(f"- best {m}: {layer_label(b.layer)}/{b.pooling} ρ = {fmt_rho(b.spearman)}{fmt_ci(b)}"
                         + ("" if b.trained else f" ({RANDOM_INIT_MARK})"))
    out += bests + ([""] if bests else [])
    with_domains = [c for c in cases if isinstance(c.extra.get("domains"), dict)]
    if with_domains:
        domains = sorted({d for c in with_domains for d in c.extra["domains"]})
        drows = []
        for c in with_domains:
            dd = c.extra["domains"]
            drows.append((c.model_key, layer_label(c.layer), c.pooling,
                          *(fmt_rho(number((dd.get(d) or {}).get("spearman"))) if d in dd else "—" for d in domains),
                          "" if c.trained else RANDOM_INIT_MARK))
        out += ["Per domain (Spearman ρ):", ""] + md_table(("model", "layer", "pooling", *domains, "note"), drows)
    return out
