"""Question I: linear vs softmax attention — paired accuracy (from `rwkv-eval compare --output`)
and cost vs sentence length (from benchmarks/test_length_scaling.py in the run), two plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..records import write_bytes_atomic
from .fmt import fmt_interval, fmt_num, fmt_published, fmt_rho, fmt_seconds, md_table
from .run import Run, number, read_json, short_name

DEPTH_PLOT = "linear_vs_softmax__rho_vs_depth.png"
LENGTH_PLOT = "linear_vs_softmax__cost_vs_length.png"


def load_compare(path: str | Path) -> dict:
    """The JSON `rwkv-eval compare --output FILE` writes; ValueError if it is something else."""
    data = read_json(path, "the file written by `rwkv-eval compare ... --output FILE`")
    if not isinstance(data, dict) or data.get("kind") != "compare" or not isinstance(data.get("records"), list):
        raise ValueError(f"{path}: not the output of `rwkv-eval compare --output` (needs kind=compare and records)")
    return data


def length_rows(run: Run) -> list[dict]:
    """The length-scaling benchmarks of the run, sorted by family and length."""
    rows = [b.get("extra_info") or {} for b in run.raw.get("benchmarks", [])]
    rows = [e for e in rows if e.get("analysis") == "length-scaling" and number(e.get("seq_len")) is not None]
    return sorted(rows, key=lambda e: (str(e.get("attention")), str(e.get("family")), e["seq_len"]))


def _depth(d: Any) -> str:
    return "" if number(d) is None else f" ({d:.2f})"


def accuracy_lines(compare: dict) -> list[str]:
    recs = compare["records"]
    if not recs:
        return ["No compare records.", ""]
    out = [f"A = {short_name(recs[0]['model_a'])}, B = {short_name(recs[0]['model_b'])}. Δρ = ρ(A) − ρ(B) on the same pairs; "
           "paired: both models on the same bootstrap resamples; unpaired: independent resamples (what "
           "comparing two separate CIs amounts to). Layer (relative depth = (k+1)/L); an aggregation of "
           "layers (`--aggregate`) has no depth.", ""]
    rows = []
    for r in recs:
        kind = r.get("kind", "?")
        rows.append((kind if kind != "oracle" else "**oracle** (chosen on test)", f"{r['dataset']}/{r['split']}",
                     f"{r['layer_a']}{_depth(r.get('depth_a'))}", f"{r['layer_b']}{_depth(r.get('depth_b'))}",
                     r.get("pooling", "?"),
                     *(fmt_rho(number(r.get(f"spearman_{s}"))) + fmt_interval(r.get(f"spearman_ci95_{s}"))
                       + fmt_published(r.get(f"published_{s}")) for s in "ab"),
                     fmt_rho(number(r.get("delta_spearman"))) + fmt_interval(r.get("delta_ci95")),
                     fmt_interval(r.get("delta_ci95_unpaired")).strip() or "—",
                     fmt_num(number(r.get("p_value")), ".3g"),
                     str(r.get("n_pairs", "?"))))
    out += md_table(("setting", "data", "layer A", "layer B", "pooling", "ρ A [95% CI]", "ρ B [95% CI]",
                     "Δρ [paired 95% CI]", "unpaired CI", "p", "pairs"), rows)
    sel = compare.get("selection")
    if sel:
        srows = []
        for side in ("a", "b"):
            s = sel[side]
            for kind in ("selected", "oracle"):
                x = s[kind]
                srows.append((short_name(s["model"]), kind if kind == "selected" else "oracle — " + x.get("label", ""),
                              f"{x['layer']}{_depth(x.get('depth'))}", x["pooling"],
                              fmt_rho(number(x.get("spearman_validation"))), fmt_rho(number(x.get("spearman_test")))))
        out += [f"Selection on {sel['a']['selected_on']}, reported on {sel['a']['reported_on']}:", ""]
        out += md_table(("model", "setting", "layer (depth)", "pooling", "ρ validation", "ρ test"), srows)
    return out


def cost_lines(rows: list[dict]) -> list[str]:
    if not rows:
        return ["No length-scaling benchmarks in this run (benchmarks/test_length_scaling.py).", ""]
    shapes = sorted({str(r.get("shape")) for r in rows})
    devices = sorted({f"{r.get('device')} {r.get('dtype')}" for r in rows})
    out = [f"Same random token ids, {rows[0].get('n_sentences')} sentences of T tokens per call, up to the last "
           f"block, mean pooling; shapes `{', '.join(shapes)}`, {', '.join(devices)}; random-init weights (cost is "
           "independent of training).", ""]
    by = {(r["family"], r["seq_len"]): r for r in rows}
    families = list(dict.fromkeys(r["family"] for r in rows))
    # time ratios against RWKV, the subject of question I (else the first family)
    ref = next((f for f in families if f.startswith("rwkv")), families[0])
    others = [f for f in families if f != ref]
    lengths = sorted({r["seq_len"] for r in rows})
    table = []
    for t in lengths:
        cells = [str(t)]
        for f in families:
            r = by.get((f, t))
            cells += [fmt_seconds(number(r.get("seconds_per_pair"))) if r else "—",
                      fmt_num(number(r.get("peak_memory_mb")) if r else None, ".0f")]
        a = number(by[(ref, t)].get("seconds_per_pair")) if (ref, t) in by else None
        for f in others:
            b = number(by[(f, t)].get("seconds_per_pair")) if (f, t) in by else None
            cells.append(fmt_num(b / a if a and b else None, ".2f"))
        table.append(cells)
    head = ["T tokens"]
    for f in families:
        att = next(r.get("attention") for r in rows if r["family"] == f)
        head += [f"{f} ({att}) s/pair", f"{f} peak MB"]
    head += [f"{f} / {ref} time" for f in others]
    return out + md_table(head, table)


def linear_vs_softmax_section(run: Run, compare: dict | None) -> list[str]:
    out = ["## Question I: linear vs softmax attention", "",
           "How does RWKV's linear attention compare with softmax attention in zero-shot STS accuracy, and what "
           "does each cost as sentences grow?", ""]
    out += ["### Accuracy, paired", ""]
    out += accuracy_lines(compare) if compare else ["No compare file given (`--compare FILE` from "
                                                    "`rwkv-eval compare ... --output FILE`).", ""]
    out += ["### Cost vs sentence length", ""] + cost_lines(length_rows(run))
    return out


def make_plots(plt, run: Run, compare: dict | None, out_dir: Path) -> list[str]:
    files = []
    if compare:
        recs = [r for r in compare["records"] if r.get("kind") == "matched-depth" and number(r.get("spearman_a"))
                is not None]
        if recs:
            fig, ax = plt.subplots(figsize=(8, 4.6))
            for side, color in (("a", "C0"), ("b", "C3")):
                for j, p in enumerate(dict.fromkeys(r["pooling"] for r in recs)):
                    pts = sorted({(r[f"depth_{side}"], r[f"spearman_{side}"], tuple(r[f"spearman_ci95_{side}"]))
                                  for r in recs if r["pooling"] == p})
                    xs = [x for x, _, _ in pts]
                    ys = [y for _, y, _ in pts]
                    err = [[y - ci[0] for _, y, ci in pts], [ci[1] - y for _, y, ci in pts]]
                    ax.errorbar(xs, ys, yerr=err, marker="os"[side == "b"], capsize=3, color=color,
                                ls=["-", "--", ":", "-."][j % 4], label=f"{short_name(recs[0]['model_' + side])} {p}")
            ax.set_xlabel("relative depth (k+1)/L")
            ax.set_ylabel("Spearman ρ (95% CI)")
            ax.set_title(f"ρ vs relative depth on {recs[0]['dataset']}/{recs[0]['split']}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
            write_bytes_atomic(out_dir / DEPTH_PLOT, lambda f: fig.savefig(f, format="png", dpi=110,
                                                                          bbox_inches="tight"))
            plt.close(fig)
            files.append(DEPTH_PLOT)
    rows = length_rows(run)
    if rows:
        fig, (ax_t, ax_m) = plt.subplots(2, 1, figsize=(7, 6.4), sharex=True)
        for i, f in enumerate(dict.fromkeys(r["family"] for r in rows)):
            fr = [r for r in rows if r["family"] == f]
            label = f"{f} ({fr[0].get('attention')})"
            ax_t.plot([r["seq_len"] for r in fr], [r["seconds_per_pair"] for r in fr], marker="o", color=f"C{i}",
                      label=label)
            mem = [(r["seq_len"], r["peak_memory_mb"]) for r in fr if number(r.get("peak_memory_mb")) is not None]
            if mem:
                ax_m.plot(*zip(*mem), marker="o", color=f"C{i}", label=label)
        ax_t.set_xscale("log", base=2)
        ax_t.set_yscale("log")
        ax_t.set_ylabel("seconds per pair")
        ax_m.set_ylabel("peak memory MB")
        ax_m.set_xlabel("sentence length T (tokens)")
        ax_t.set_title(f"cost vs length — shape {rows[0].get('shape')}, {rows[0].get('device')} "
                       f"{rows[0].get('dtype')}", fontsize=10)
        for ax in (ax_t, ax_m):
            ax.grid(alpha=0.3)
        ax_t.legend(fontsize=8, frameon=False)
        write_bytes_atomic(out_dir / LENGTH_PLOT, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
        plt.close(fig)
        files.append(LENGTH_PLOT)
    return files
