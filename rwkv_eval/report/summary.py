"""summary.md: provenance, then every section in reading order."""

from __future__ import annotations

from typing import Sequence

from .accuracy import accuracy_section
from .aggregation import aggregation_section
from .cost import cost_section, throughput_section
from .early_exit import early_exit_section
from .fmt import datasets_of, md_table, time_key
from .gates import gates_section
from .history import delta_section, history_section
from .run import RANDOM_INIT_MARK, Run, first_extra


def provenance_section(run: Run) -> list[str]:
    mi = run.raw.get("machine_info") or {}
    ci = run.raw.get("commit_info") or {}
    cpu = (mi.get("cpu") or {}).get("brand_raw") or mi.get("processor") or mi.get("machine")
    first = lambda k: first_extra(run.cases, k)  # noqa: E731
    devices = sorted({f"{c.extra.get('device', '?')} {c.extra.get('dtype', '')}".strip() for c in run.cases})
    gpu = mi.get("cuda_device") or first("cuda_device")
    rows = [
        ("commit", f"`{run.commit}`" + (f" ({ci['branch']})" if ci.get("branch") else "")),
        ("dirty", {True: "**yes** (uncommitted changes)", False: "no"}.get(run.dirty, "unknown")),
        ("time", str(run.raw.get("datetime", "unknown"))),
        ("profile", ", ".join(sorted({str(c.extra.get("profile", "?")) for c in run.cases})) or "—"),
        ("machine", f"{mi.get('node', '?')} · {cpu} · {(mi.get('cpu') or {}).get('count', '?')} CPUs"
                    + (f" · GPU {gpu} (CUDA {mi.get('cuda_version') or first('cuda_version')})" if gpu else "")),
        ("device / dtype", ", ".join(devices) or "—"),
        ("torch", str(mi.get("torch") or first("torch_version") or "unknown")
         + f" · transformers {first('transformers_version') or '?'} · python {mi.get('python_version', '?')}"),
        ("pytest-benchmark", str(run.raw.get("version", "?"))),
        ("source", f"`{run.source}`"),
        ("benchmarks", f"{len(run.cases)} accuracy cases, {len(run.throughput)} other"),
    ]
    return md_table(("", ""), rows)


def summary_markdown(run: Run, older: Sequence[Run], name: str, plots: Sequence[str], plot_note: str | None) -> str:
    out = [f"# rwkv_eval report: {name}", ""] + provenance_section(run)
    untrained = sorted({c.model_key for c in run.cases if not c.trained})
    if untrained:
        out += [f"> **{RANDOM_INIT_MARK}**: {', '.join(untrained)} "
                f"{'has' if len(untrained) == 1 else 'have'} random-init weights (trained=false). "
                "Their Spearman is meaningless; their time and memory are real.", ""]
    out += ["## Accuracy", ""]
    if not run.cases:
        out += ["No accuracy benchmarks in this run.", ""]
    for d, s in datasets_of(run):
        out += accuracy_section(run, d, s)
    if run.cases:
        out += gates_section(run) + cost_section(run)
    if older:
        out += delta_section(run, older[0])
    out += throughput_section(run)
    out += aggregation_section(run) + early_exit_section(run)
    out += history_section(sorted([run, *older], key=time_key))
    out += ["## Plots", ""]
    out += [f"![{p}]({p})" for p in plots] or ["No plots."]
    if plot_note:
        out += ["", plot_note]
    return "\n".join(out).rstrip() + "\n"
