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
from .run import RANDOM_INIT_MARK, Run, first_extra, short_name


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


def summary_markdown(run: Run, older: Sequence[Run], name: str, plots: Sequence[str], plot_note: str | None,
                     questions: Sequence[str] = (), compare: dict | None = None, ood: dict | None = None) -> str:
    """questions: markdown lines of the research sections (linear_vs_softmax, ood), placed before the plots;
    compare, ood: their input files, whose models join the model table."""
    out = [f"# rwkv_eval report: {name}", ""] + provenance_section(run) + models_section(run, compare, ood)
    out += skipped_section(run)
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
    out += list(questions)
    out += ["## Plots", ""]
    out += [f"![{p}]({p})" for p in plots] or ["No plots."]
    if plot_note:
        out += ["", plot_note]
    return "\n".join(out).rstrip() + "\n"


def models_section(run: Run, compare: dict | None = None, ood: dict | None = None) -> list[str]:
    """The one place full model ids appear: each short name of the report (headers, legends,
    tables) with the full id or path, revision and file hash it stands for, gathered from
    the run's cases, the suite's run metadata, its analysis benchmarks and the compare/OOD
    files."""
    seen: dict[str, dict[str, dict]] = {}

    def add(name: str, full: object, revision: object = None, sha256: object = None, trained: object = None):
        row = seen.setdefault(name, {"ids": {}, "revisions": {}, "sha256": {}, "weights": {}})
        for col, value in (("ids", full), ("revisions", revision), ("sha256", sha256)):
            if value not in (None, ""):
                row[col][str(value)] = None
        if trained is not None:
            row["weights"]["trained" if trained else "random init"] = None

    for c in run.cases:
        add(c.model_key, c.extra.get("model") or c.extra.get("model_key"), c.extra.get("revision"),
            c.extra.get("sha256"), c.trained)
    for m in (run.raw.get("rwkv_eval_run") or {}).get("models") or []:
        add(short_name(str(m.get("key"))), m.get("spec"), m.get("revision"), None, m.get("trained"))
    for b in run.raw.get("benchmarks", []):
        e = b.get("extra_info") or {}
        if e.get("analysis") and e.get("model_key"):
            name = short_name(str(e["model_key"]))
            add(name, None if name in seen else e["model_key"], None, None, e.get("trained"))
    for m in (ood or {}).get("models") or []:
        prov = m.get("provenance") or {}
        add(short_name(str(m.get("model"))), m.get("model"), prov.get("revision"), prov.get("sha256"))
    for m in (compare or {}).get("config") or []:
        add(short_name(str(m.get("model"))), m.get("model"), m.get("revision"))
    if not seen:
        return []
    code = lambda values: "<br>".join(f"`{v}`" for v in values) or "—"  # noqa: E731
    rows = []
    for name, r in sorted(seen.items()):
        revisions = [v for v in r["revisions"] if v not in r["sha256"]]  # a checkpoint's revision is its hash
        rows.append((name, code(r["ids"]), code(revisions) if revisions or not r["revisions"] else "= file sha256",
                     code(r["sha256"]), ", ".join(r["weights"]) or "—"))
    return (["## Models", "", "Models go by short names in this report; each stands for:", ""]
            + md_table(("name", "model (full id or path)", "revision", "file sha256", "weights"), rows))


def skipped_section(run: Run) -> list[str]:
    """What the run left out and why, from the suite's run metadata: the optional models and
    datasets of the profile absent here (its notes on them end "skipped") and the tests pytest
    skipped, grouped by reason. A report that silently lacks a model reads as if the model was
    studied."""
    meta = run.raw.get("rwkv_eval_run")
    out = ["## Skipped, and why", ""]
    if meta is None:
        return out + ["Not recorded: this run's JSON has no `rwkv_eval_run` metadata (a suite older than the "
                      "report), so what it skipped is unknown.", ""]
    notes = [str(n) for n in meta.get("notes") or []]
    lines = [f"- {n}" for n in notes if "skipped" in n]
    by_reason: dict[str, list[str]] = {}
    for t in (t for t in meta.get("skipped_tests") or [] if isinstance(t, dict)):
        by_reason.setdefault(str(t.get("reason") or "no reason given"), []).append(str(t.get("test")))
    for reason, tests in by_reason.items():
        shown = ", ".join(f"`{t}`" for t in tests[:3]) + (f" and {len(tests) - 3} more" if len(tests) > 3 else "")
        lines.append(f"- {len(tests)} test{'s' if len(tests) > 1 else ''} skipped: {reason} ({shown})")
    out += lines or [f"Nothing: every model and dataset of profile {meta.get('profile', '?')} ran, no test skipped."]
    others = [n for n in notes if "skipped" not in n]
    if others:
        out += ["", "Profile notes:", ""] + [f"- {n}" for n in others]
    return out + [""]
