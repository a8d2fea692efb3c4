"""The accuracy section: Spearman by layer x pooling per dataset, best settings with paired
significance (rwkv_eval.analyses.paired, recorded in extra_info as vs_best / vs_baseline), per-domain tables."""

from __future__ import annotations

from ..encoder import layer_id as layer_label
from .fmt import (
    best_case,
    fmt_ci,
    fmt_rho,
    layer_sort,
    md_table,
    models_of,
    pooling_sort,
)
from .run import RANDOM_INIT_MARK, Case, Run, number


def accuracy_section(run: Run, dataset: str, split: str) -> list[str]:
    cases = [c for c in run.cases if (c.dataset, c.split) == (dataset, split)]
    n = sorted({c.n_pairs for c in cases if c.n_pairs is not None})
    out = [f"### {dataset} / {split}" + (f" ({', '.join(map(str, n))} pairs)" if n else ""), ""]
    ceiling = sorted({round(c.extra["spearman_max"], 4) for c in cases
                      if number(c.extra.get("spearman_max")) is not None})
    if ceiling:
        out += [f"Binary gold: a tie-free scorer's Spearman is at most {' / '.join(f'{x:.4f}' for x in ceiling)} "
                "for this class balance (metrics.spearman_max), not 1: read ρ against that ceiling.", ""]
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
                if c is not None and c is best and len(mc) > 1:
                    cell = f"**{cell}**"
                elif c is not None and len(mc) > 1 and not_worse_than_best(c):
                    cell = f"*{cell}*"
                cells.append(cell)
            rows.append((m, layer_label(layer), *cells, note))
    out += ["Spearman ρ of cosine similarity [95% CI]; **bold**: the model's best layer/pooling (chosen on these "
            "same pairs: its ρ is optimistic, the winner's curse); *italic*: not significantly worse than the best "
            "(paired bootstrap on the same pairs, Holm-adjusted p ≥ 0.05 over the model's settings).",
            ""]
    out += md_table(("model", "layer", *poolings, "note"), rows)
    bests = []
    for m in models_of(cases):
        mc = [c for c in cases if c.model_key == m]
        b = best_case(mc)
        if b is not None:
            bests.append(f"- best {m}: {layer_label(b.layer)}/{b.pooling} ρ = {fmt_rho(b.spearman)}{fmt_ci(b)}"
                         + ("" if b.trained else f" ({RANDOM_INIT_MARK})"))
    out += bests + ([""] if bests else [])
    out += paired_table(cases)
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


def not_worse_than_best(c: Case) -> bool:
    vs = c.extra.get("vs_best")
    return isinstance(vs, dict) and "significantly_worse" in vs and not vs["significantly_worse"]


def _delta(d: dict) -> str:
    ci = d.get("delta_ci95") or [None, None]
    if number(d.get("delta_spearman")) is None or None in ci:
        return "—"
    adjusted = f" p_holm={d['p_adjusted']:.3g}" if number(d.get("p_adjusted")) is not None else ""
    return f"{d['delta_spearman']:+.4f} [{ci[0]:+.3f}, {ci[1]:+.3f}] p={d.get('p_value', float('nan')):.3g}{adjusted}"


def paired_table(cases: list[Case]) -> list[str]:
    """Δρ of every trained setting to its model's best and to GloVe-50d, from the paired
    bootstrap the suite recorded (absent for older runs and random-init models)."""
    rows = []
    for c in sorted(cases, key=lambda c: (c.model_key, layer_sort(c.layer), pooling_sort(c.pooling))):
        vb, vg = c.extra.get("vs_best"), c.extra.get("vs_baseline")
        if not isinstance(vb, dict) or "delta_spearman" not in vb:
            continue
        mark = "best" if vb.get("is_best") else ("significantly worse" if vb.get("significantly_worse")
                                                  else "not significantly worse")
        vs_glove = vg.get("verdict", "—") if isinstance(vg, dict) else "—"
        rows.append((c.model_key, layer_label(c.layer), c.pooling, fmt_rho(c.spearman), _delta(vb), mark,
                     _delta(vg) if isinstance(vg, dict) else "—", vs_glove))
    if not rows:
        return []
    return (["Paired comparisons on the same pairs (Δρ [95% CI] p, paired bootstrap, shared resamples; p_holm: "
             "Holm-adjusted over the model's settings, which the marks use):", ""]
            + md_table(("model", "layer", "pooling", "Spearman", "Δρ vs model's best", "vs best",
                        "Δρ vs GloVe-50d mean", "vs GloVe-50d"), rows))
