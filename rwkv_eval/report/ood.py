"""Question II: out-of-domain degradation (from `rwkv-eval ood --output`): per-domain ρ and
degradation per model, the linear-vs-softmax verdicts, and a degradation plot."""

from __future__ import annotations

from pathlib import Path

from ..records import write_bytes_atomic
from .fmt import fmt_interval, fmt_num, fmt_published, fmt_rho, md_table
from .run import number, read_json, short_name

DEGRADATION_PLOT = "ood__degradation_per_domain.png"


def load_ood(path: str | Path) -> dict:
    """The JSON `rwkv-eval ood --output FILE` writes; ValueError if it is something else."""
    data = read_json(path, "the file written by `rwkv-eval ood ... --output FILE`")
    if not isinstance(data, dict) or data.get("analysis") != "ood" or not isinstance(data.get("models"), list):
        raise ValueError(f"{path}: not the output of `rwkv-eval ood --output` (needs analysis=ood and models)")
    return data


def overlap_lines(ood: dict) -> list[str]:
    """The measured overlap of every domain with STS-B, or a warning for a run made before it was measured."""
    if "overlap" not in ood:
        return ["> An older run: domains scored whole, overlap with STS-B not measured, verdicts not corrected for "
                "multiple comparisons. STS-B shares most STS12-16 pairs (sts16/answer-answer: all in STS-B test; "
                "sts15/answers-forums: all in STS-B dev, the selection set): rerun `rwkv-eval ood`.", ""]
    splits = list(ood["overlap"][0]["overlap"]) if ood["overlap"] else []
    rows = [(o["domain"] + (" (clean anchor)" if o["domain"] in ood.get("anchors", []) else ""), str(o["n_pairs"]),
             *(str(o["overlap"][k]) for k in splits), str(o["n_novel"]),
             "too few for a CI" if o["too_few_pairs"] else ("STS-B source" if o["in_stsb_sources"] else "other source"))
            for o in ood["overlap"]]
    removed = ", ".join(ood["overlap"][0]["removed"]) if ood["overlap"] else "—"
    return ([f"**Overlap with STS-B, measured** (pairs compared lower-cased, whitespace collapsed, either order). "
             f"Scored on novel pairs: those in {removed} are removed; STS-B train is never read by a zero-shot "
             f"model, its overlap is shown, not removed. A domain with fewer than {ood['min_novel_pairs']} novel "
             "pairs gets no interval or verdict.", ""]
            + md_table(("domain", "pairs", *(f"shared with {k}" for k in splits), "novel", "note"), rows))


def ood_section(ood: dict) -> list[str]:
    models = ood["models"]
    out = ["## Question II: out-of-domain degradation", "",
           "Does RWKV's recurrent state formulation degrade less than attention out of distribution? Each model's "
           f"layer and pooling are selected on {ood['selected_on']}; degradation = ρ({ood['in_domain']}) − "
           f"ρ(domain), 95% bootstrap CI ({ood['n_resamples']} resamples, seed {ood['bootstrap_seed']}, one "
           "resample matrix per set shared by all models)." + (f" Protocol: {ood['protocol']}." if "protocol" in ood
                                                                else ""), ""]
    subsets = sorted({s["note"] for s in ood.get("sets", []) if "subset" in (s.get("note") or "")})
    if subsets:
        out += ["> Subsets, not the full sets: " + subsets[0].split("; ")[-1], ""]
    out += overlap_lines(ood)
    if ood.get("anchors"):
        arows = [(m["model"], *(f"{fmt_rho(number(r['spearman']))} / {fmt_rho(number(r.get('degradation')))}"
                                f"{fmt_interval(r.get('degradation_ci95'))}" for r in m.get("anchors", [])))
                 for m in models]
        out += [f"**Clean out-of-domain anchors** ({', '.join(ood['anchors'])}: sources STS-B was not built from), "
                "ρ / degradation [95% CI]:", ""] + md_table(("model", *ood["anchors"]), arows)
    for missing in ood.get("missing_domains", []):
        out += [f"> Not evaluated: {missing}", ""]
    rows = []
    for m in models:
        s = m["selection"]
        sel, ora = s["selected"], s["oracle"]
        rows.append((short_name(m["model"]), f"{sel['layer']} / {sel['pooling']}", fmt_rho(number(sel.get("spearman_test"))),
                     f"{ora['layer']} / {ora['pooling']}", fmt_rho(number(ora.get("spearman_test"))),
                     fmt_num(number(m["spread"].get("std")), ".3f"), fmt_num(number(m["spread"].get("range")), ".3f")))
    out += md_table(("model", "selected (layer / pooling)", "ρ in-domain", "oracle: best on in-domain test",
                     "oracle ρ", "spread std", "spread range"), rows)
    names = [r["domain"] for r in models[0]["domains"] + models[0]["aggregates"]]
    header = ["domain", "pairs scored"] + [f"{short_name(m['model'])} ρ / degradation [95% CI]" for m in models]
    table = []
    for d in names:
        cells = [d]
        first = next((r for r in models[0]["domains"] + models[0]["aggregates"] if r["domain"] == d), {})
        cells.append(str(first.get("n_novel", first.get("n_pairs", "—"))))
        for m in models:
            r = next((r for r in m["domains"] + m["aggregates"] if r["domain"] == d), None)
            whole = (r or {}).get("full_domain")
            beside = (f"; whole domain ρ {fmt_rho(number(whole['spearman']))}"
                      if whole and r.get("n_novel") != r.get("n_pairs") else "")
            cells.append("—" if r is None else
                         f"{fmt_rho(number(r['spearman']))}{fmt_published(r.get('published'), 'pub.')} / "
                         f"{fmt_rho(number(r.get('degradation')))}{fmt_interval(r.get('degradation_ci95'))}{beside}")
        table.append(cells)
    out += ["Per domain (on its novel pairs; \"whole domain\": every pair, shared ones included — not an "
            "out-of-domain figure, shown for comparison with the literature), then the aggregates over all of "
            "STS12-16 and per year (concat = pooled pairs, SentEval's \"all\"; mean; wmean = weighted by pairs). "
            "\"pub.\": the published figure of a reference model at the selected setting (full sets only).", ""]
    out += md_table(header, table)
    for p in ood.get("pairs", []):
        corr = p.get("correction")
        rule = (f"*smaller* / *larger* when the adjusted p < {corr['domains']['level']} "
                f"({corr['domains']['method']} over the {corr['domains']['family_size']} domains, "
                f"{corr['overall']['method']} over the {corr['overall']['family_size']} aggregates)"
                if corr else "*smaller* when the whole CI is below 0 (uncorrected: an older run)")
        out += [f"**{short_name(p['linear'])}** (linear) vs **{short_name(p['softmax'])}** (softmax): Δ = degradation(linear) − "
                f"degradation(softmax); {rule}.", ""]
        prow = [(r["domain"], fmt_rho(number(r.get("degradation_linear"))), fmt_rho(number(r.get("degradation_softmax"))),
                 fmt_rho(number(r.get("delta_degradation"))) + fmt_interval(r.get("delta_ci95")),
                 fmt_num(number(r.get("p_value")), ".3g"), fmt_num(number(r.get("p_adjusted")), ".3g"),
                 r.get("verdict", "?"))
                for r in p["domains"] + p["overall"]]
        out += md_table(("domain", "degradation linear", "degradation softmax", "Δ [95% CI]", "p", "p adjusted",
                         "verdict"), prow)
    return out


def make_plots(plt, ood: dict, out_dir: Path) -> list[str]:
    models = ood["models"]
    domains = [r["domain"] for r in models[0]["domains"] + models[0]["aggregates"]]
    if not domains:
        return []
    fig, ax = plt.subplots(figsize=(max(8.0, 0.45 * len(domains) * max(1, len(models)) / 2), 4.8))
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        rows = {r["domain"]: r for r in m["domains"] + m["aggregates"]}
        xs, ys, lo, hi = [], [], [], []
        for j, d in enumerate(domains):
            r = rows.get(d)
            if r is None or number(r.get("degradation")) is None:
                continue
            ci = r.get("degradation_ci95") or [None, None]
            xs.append(j + (i - (len(models) - 1) / 2) * width)
            ys.append(r["degradation"])
            lo.append(r["degradation"] - (ci[0] if number(ci[0]) is not None else r["degradation"]))
            hi.append((ci[1] if number(ci[1]) is not None else r["degradation"]) - r["degradation"])
        ax.bar(xs, ys, width=width, yerr=[lo, hi], capsize=2, color=f"C{i}", label=short_name(m["model"]))
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(domains)), domains, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(f"degradation ρ({ood['in_domain']}) − ρ(domain)")
    ax.set_title(f"out-of-domain degradation per domain (95% CI); selected on {ood['selected_on']}", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    write_bytes_atomic(out_dir / DEGRADATION_PLOT, lambda f: fig.savefig(f, format="png", dpi=110,
                                                                        bbox_inches="tight"))
    plt.close(fig)
    return [DEGRADATION_PLOT]
