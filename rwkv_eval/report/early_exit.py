"""Question 4 section: early exit vs fixed-depth pruning, per model and dataset.

Reads extra_info["early_exit"] of benchmarks/test_early_exit.py (records of
early_exit.exit_study) and writes a table and one figure per (model, dataset): quality
against mean blocks executed and against measured time per pair, the fixed-depth curve
and the early-exit settings on the same axes. Each speed-up is shown with its CI beside
its compute bound; one the record flags as a measurement fault (CI above the bound) is
shown as such, not as a speed-up, and left off the time axis. Each exit setting shows
its iso-compute Δρ against fixed depth at the same mean blocks, and degenerate exits
(nearly every row leaving at one block) are named.
"""

from __future__ import annotations

from pathlib import Path

from ..records import write_bytes_atomic
from .aggregation import analysis_benchmarks
from .fmt import fmt_interval, fmt_num, fmt_seconds, md_table, safe_name
from .plots import label_points
from .run import RANDOM_INIT_MARK, Run, number, short_name


def _setting(r: dict) -> str:
    if r.get("criterion") == "fixed":
        return f"fixed depth {r.get('depth')}"
    if r.get("criterion") == "saturation":
        return f"saturation τ={r.get('tau')} p={r.get('patience')}"
    return f"pair ε={r.get('epsilon')} p={r.get('patience')}"


def _title(e: dict) -> str:
    return (f"{short_name(str(e.get('model_key', '?')))} · {e.get('exit_dataset', '?')}"
            + ("" if e.get("trained", True) else f" · {RANDOM_INIT_MARK}"))


def early_exit_section(run: Run) -> list[str]:
    benches = analysis_benchmarks(run, "early_exit", "early_exit")
    if not benches:
        return []
    out = ["## Early exit vs fixed-depth pruning (question 4)", "",
           "Fixed depth k runs blocks 0..k for every sentence; saturation exits a sentence once cos(v_k, v_k−1) ≥ τ "
           "for p blocks; pair exits a pair once its cosine moved < ε for p blocks. Each method is timed against the "
           "full pass on the same sentences (warm-up, alternating order, rounds by time, medians); speed-up = "
           "full-pass time / method time with a bootstrap 95% CI (below 1 = overhead). The bound is the compute "
           "ceiling, block tokens of the full pass / block tokens executed (padding included); a speed-up whose CI "
           "lies more than 10% above it is a measurement FAULT, not a result. Iso-compute Δρ: the exit setting minus fixed depth "
           "at the same mean blocks (interpolated), paired bootstrap 95% CI — does routing beat pruning at equal "
           "cost?", ""]
    for e in benches:
        recs = e["early_exit"]
        r0 = recs[0]
        binary = any("accuracy" in r for r in recs)
        out += [f"### {_title(e)}", "",
                f"{r0.get('n_pairs')} pairs{' (seeded sample)' if e.get('smoke_sample') else ''}, pooling "
                f"{r0.get('pooling')}, {r0.get('n_layers')} blocks, full pass "
                f"{fmt_seconds(number(r0.get('full_pass_seconds_per_pair')))} per pair, {e.get('device')} "
                f"{e.get('dtype')}; {r0.get('exit_mode') if r0.get('criterion') != 'fixed' else ''}"
                + (f" accuracy/F1 at a threshold tuned on {r0.get('tune_dataset')} {r0.get('tune_split')} "
                   f"({r0.get('tune_n_pairs')} pairs)" if binary else ""), ""]
        modes = sorted({r["exit_mode"] for r in recs if r.get("criterion") != "fixed"})
        out += [f"Exit mode: {'; '.join(modes)}", ""] if modes else []
        rows = []
        for r in recs:
            lo, hi = (r.get("spearman_ci95") or [None, None])[:2]
            rho = fmt_num(number(r.get("spearman")), ".4f") + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")
            speedup = ("FAULT (above bound)" if r.get("measurement_fault") else
                       fmt_num(number(r.get("speedup")), ".2f") + fmt_interval(r.get("speedup_ci95")))
            row = [_setting(r), fmt_num(number(r.get("mean_layers")), ".2f"), rho,
                   fmt_seconds(number(r.get("seconds_per_pair"))), speedup,
                   fmt_num(number(r.get("speedup_bound")), ".2f"), fmt_num(number(r.get("speedup_vs_bound")), ".2f"),
                   _iso(r.get("iso_compute"))]
            if binary:
                row += [fmt_num(number(r.get("accuracy")), ".3f"), fmt_num(number(r.get("f1")), ".3f")]
            rows.append(row + [_note(r)])
        header = ["setting", "mean blocks", "Spearman [95% CI]", "s/pair", "speed-up [95% CI]", "bound",
                  "measured / bound", "iso-compute Δρ [95% CI]"] + (["accuracy", "F1"] if binary else []) + ["note"]
        out += md_table(header, rows)
        faults = sum(bool(r.get("measurement_fault")) for r in recs)
        if faults:
            out += [f"**{faults} measurement fault(s)**: a speed-up above its compute bound is the timing's error "
                    "(e.g. an unwarmed baseline), not a speed-up; rerun before reading any time here.", ""]
    return out


def _iso(iso) -> str:
    """"+0.012 [−0.010, 0.030] vs depth 4–5, no significant difference" of a record's iso_compute."""
    if not isinstance(iso, dict) or number(iso.get("delta_spearman")) is None:
        return "—"
    depths = "–".join(str(d) for d in iso.get("baseline_depths", []))
    return f"{iso['delta_spearman']:+.3f}{fmt_interval(iso.get('delta_ci95'))} vs depth {depths}, {iso.get('verdict')}"


def _note(r: dict) -> str:
    """Degenerate exits and where a threshold was chosen."""
    notes = [r["exit_note"]] if r.get("degenerate_exit") and r.get("exit_note") else []
    chosen = r.get("threshold_chosen_on")
    if isinstance(chosen, dict):
        notes.append(f"threshold chosen on {chosen.get('chosen_on')} (≤ {chosen.get('max_rho_loss')} ρ below full "
                     "depth there)")
    return "; ".join(notes)


def early_exit_plots(plt, run: Run, out_dir: Path) -> list[str]:
    benches = analysis_benchmarks(run, "early_exit", "early_exit")
    if not benches:
        return []
    files = []
    for e in benches:
        recs = [r for r in e["early_exit"] if number(r.get("spearman")) is not None]
        if not recs:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
        for ax, xkey, xlabel in ((axes[0], "mean_layers", "mean blocks executed per sentence"),
                                 (axes[1], "seconds_per_pair", "measured time per pair (s)")):
            shown = [r for r in recs if xkey != "seconds_per_pair" or not r.get("measurement_fault")]
            fixed = sorted((r for r in shown if r["criterion"] == "fixed"), key=lambda r: r["depth"])
            if fixed:
                ax.errorbar([r[xkey] for r in fixed], [r["spearman"] for r in fixed],
                            yerr=[[r["spearman"] - (r["spearman_ci95"][0] or r["spearman"]) for r in fixed],
                                  [(r["spearman_ci95"][1] or r["spearman"]) - r["spearman"] for r in fixed]],
                            marker="o", ms=4, capsize=2, color="C0", label="fixed depth")
            exits = [r for r in shown if r["criterion"] in ("saturation", "pair")]
            for crit, marker, color in (("saturation", "s", "C1"), ("pair", "^", "C2")):
                sel = [r for r in shown if r["criterion"] == crit]
                if not sel:
                    continue
                ax.plot([r[xkey] for r in sel], [r["spearman"] for r in sel], ls="none", marker=marker, color=color,
                        ms=7, label=f"early exit: {crit}")
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
            label_points(ax, [(r[xkey], r["spearman"]) for r in exits], [_setting(r).split(" ", 1)[1] for r in exits])
        axes[0].set_ylabel("Spearman ρ")
        axes[1].legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       frameon=False)
        fig.suptitle(_title(e), fontsize=10)
        name = f"early_exit__{safe_name(short_name(str(e.get('model_key'))))}__{safe_name(str(e.get('exit_dataset')))}.png"
        write_bytes_atomic(Path(out_dir) / name, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
        plt.close(fig)
        files.append(name)
    return files
