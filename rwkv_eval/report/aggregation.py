"""Question 3 section: layer aggregations vs the final layer, quality against measured cost.

Reads extra_info["aggregation"] of benchmarks/test_aggregation.py (one record per method:
single layers and aggregations) and writes a table per (model, dataset) and a Pareto
plot: Spearman with its 95% CI against measured seconds per pair, the final layer and the
best single layer marked, the Pareto front (no method both faster and better) drawn.
"""

from __future__ import annotations

from pathlib import Path

from ..records import write_bytes_atomic
from .fmt import fmt_num, fmt_seconds, md_table, safe_name
from .plots import label_points
from .run import RANDOM_INIT_MARK, Run, number, short_name


def analysis_benchmarks(run: Run, analysis: str, key: str) -> list[dict]:
    """extra_info of the benchmarks of one analysis whose list of records `key` is there."""
    out = []
    for b in run.raw.get("benchmarks", []):
        e = b.get("extra_info") or {}
        if e.get("analysis") == analysis and isinstance(e.get(key), list) and e[key]:
            out.append(e)
    return out


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of (seconds, rho) points no other point beats on both (faster or equal and better or equal)."""
    front = []
    for i, (t, r) in enumerate(points):
        if not any((t2 <= t and r2 >= r) and (t2 < t or r2 > r) for j, (t2, r2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _marks(records: list[dict]) -> tuple[dict | None, dict | None, set[str]]:
    """(final layer, best single layer, names on the Pareto front) of one benchmark."""
    scored = [r for r in records if number(r.get("spearman")) is not None and number(r.get("seconds_per_pair"))]
    final = next((r for r in records if r.get("is_final_layer")), None)
    singles = [r for r in scored if r.get("kind") == "single"]
    best = max(singles, key=lambda r: r["spearman"]) if singles else None
    front = pareto_front([(r["seconds_per_pair"], r["spearman"]) for r in scored])
    return final, best, {scored[i]["aggregation"] for i in front}


def _title(e: dict) -> str:
    return (f"{short_name(str(e.get('model_key', '?')))} · {e.get('aggregation_dataset', '?')}"
            + ("" if e.get("trained", True) else f" · {RANDOM_INIT_MARK}"))


def aggregation_section(run: Run) -> list[str]:
    benches = analysis_benchmarks(run, "aggregation", "aggregation")
    if not benches:
        return []
    out = ["## Layer aggregation vs final layer (question 3)", "",
           "Every single layer and each aggregation, from one forward pass that stops at the deepest layer used; "
           "time measured on the same pre-tokenized batch in interleaved rounds with the final layer alone. "
           "★ final layer, ◆ best single layer, P on the Pareto front (nothing both faster and better).", ""]
    for e in benches:
        recs = e["aggregation"]
        final, best, front = _marks(recs)
        n = recs[0].get("n_pairs")
        out += [f"### {_title(e)}", "",
                f"{n} pairs, pooling {recs[0].get('pooling')}, {e.get('timed_sentences')} timed sentences, "
                f"{e.get('device')} {e.get('dtype')}" + (" (seeded sample)" if e.get("smoke_sample") else ""), ""]
        rows = []
        for r in recs:
            mark = ("★" if r is final else "") + ("◆" if r is best else "") + ("P" if r["aggregation"] in front else "")
            lo, hi = (r.get("spearman_ci95") or [None, None])[:2]
            rho = fmt_num(number(r.get("spearman")), ".4f") + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")
            rows.append((mark, r["aggregation"], r.get("depth"), r.get("vector_size"), rho,
                         fmt_seconds(number(r.get("seconds_per_pair"))),
                         fmt_seconds(number(r.get("extra_seconds_per_pair"))) if (r.get("extra_seconds_per_pair") or 0)
                         >= 0 else "−" + fmt_seconds(-r["extra_seconds_per_pair"]),
                         fmt_num(number(r.get("time_ratio_vs_final")), ".2f"),
                         fmt_num(number(r.get("extra_peak_memory_mb")), ".1f")))
        out += md_table(("", "method", "blocks run", "size", "Spearman [95% CI]", "s/pair", "extra s/pair vs final",
                         "time / final", "extra peak MB"), rows)
    return out


def aggregation_plots(plt, run: Run, out_dir: Path) -> list[str]:
    benches = analysis_benchmarks(run, "aggregation", "aggregation")
    if not benches:
        return []
    files = []
    for e in benches:
        recs = [r for r in e["aggregation"] if number(r.get("spearman")) is not None
                and number(r.get("seconds_per_pair")) is not None]
        if not recs:
            continue
        final, best, front = _marks(e["aggregation"])
        fig, ax = plt.subplots(figsize=(8.5, 5))
        for kind, style in (("single", dict(marker="o", color="C0")), (None, dict(marker="s", color="C1"))):
            sel = [r for r in recs if (r["kind"] == "single") == (kind == "single")]
            if not sel:
                continue
            x = [r["seconds_per_pair"] for r in sel]
            y = [r["spearman"] for r in sel]
            err = [[r["spearman"] - (r["spearman_ci95"][0] or r["spearman"]) for r in sel],
                   [(r["spearman_ci95"][1] or r["spearman"]) - r["spearman"] for r in sel]]
            ax.errorbar(x, y, yerr=err, ls="none", capsize=2, alpha=0.8, ms=5,
                        label="single layer" if kind else "aggregation", **style)
        pts = sorted((r["seconds_per_pair"], r["spearman"]) for r in recs if r["aggregation"] in front)
        if len(pts) > 1:
            ax.plot(*zip(*pts), color="C2", lw=1, ls="--", label="Pareto front")
        for r, marker, label in ((final, "*", "final layer"), (best, "D", "best single layer")):
            if r is not None and number(r.get("spearman")) is not None:
                ax.plot(r["seconds_per_pair"], r["spearman"], marker=marker, ms=14, mfc="none", mec="k", ls="none",
                        label=label)
        ax.set_xlabel("measured time per pair (s)")
        ax.set_ylabel("Spearman ρ (95% CI)")
        ax.set_title(_title(e), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        # a weighted sum's name lists every weight: the plot shows its kind, the table the weights
        label_points(ax, [(r["seconds_per_pair"], r["spearman"]) for r in recs],
                     [r["aggregation"] if len(r["aggregation"]) <= 28 else r["aggregation"].split("[")[0] + "[…]"
                      for r in recs])
        name = f"aggregation_pareto__{safe_name(short_name(str(e.get('model_key'))))}__{safe_name(str(e.get('aggregation_dataset')))}.png"
        write_bytes_atomic(Path(out_dir) / name, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
        plt.close(fig)
        files.append(name)
    return files
