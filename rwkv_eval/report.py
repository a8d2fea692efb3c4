"""Turn a pytest-benchmark JSON of the embedding suite into a report people can read.

    pytest benchmarks --benchmark-json out.json
    python -m rwkv_eval.report out.json                              # reports/<time>-<commit>/
    python -m rwkv_eval.report out.json .benchmarks/*/0001_*.json --out reports/ --name nightly

The first file is the run; any further files are older runs: the first of them is the
baseline of the delta tables, all of them feed the history plot. A report folder holds

    summary.md                              provenance, Spearman by layer x pooling, gates,
                                            cost, deltas, throughput, history
    spearman__<model>__<dataset>-<split>.png  Spearman vs layer per pooling, CI bars, GloVe line
    cost_vs_layer.png                       seconds per pair and peak memory vs layer
    history.png                             best Spearman and time per pair across runs
    github-action-benchmark-bigger.json     Spearman, for benchmark-action "customBiggerIsBetter"
    github-action-benchmark-smaller.json    s/pair and peak MB, for "customSmallerIsBetter"

Input: the JSON that `pytest --benchmark-json` writes (pytest-benchmark >= 4): a dict with
machine_info, commit_info, datetime and a list of benchmarks, each with stats and the
extra_info that benchmarks/test_embeddings.py fills (model_key, trained, layer, pooling,
dataset, split, spearman, CI, gate, seconds_per_pair, peak_memory_mb, ...). Benchmarks
without spearman/layer (throughput modules) are listed in their own section.

An undefined Spearman (constant similarities; `null` in the JSON) prints as "undefined",
never "nan". Models with trained=false carry RANDOM_INIT_MARK wherever their accuracy
appears: their Spearman is meaningless, their time and memory are real. Random-init
accuracy is left out of the github-action-benchmark export and of the history's
best-Spearman lines.

Only this module of the package writes report files, all through records.write_*_atomic.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from .profiles import layer_id as layer_label
from .records import write_bytes_atomic, write_json_atomic

RANDOM_INIT_MARK = "⚠ random-init, accuracy meaningless"
BIGGER_FILE = "github-action-benchmark-bigger.json"
SMALLER_FILE = "github-action-benchmark-smaller.json"
SUMMARY_FILE = "summary.md"
# pooling.POOLINGS' order (not imported: that module pulls in torch); unknown ones go last
POOLING_ORDER = ("mean", "max", "last", "first_last", "weighted_mean")
LINESTYLES = ("-", "--", ":", "-.")


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class Case:
    """One accuracy benchmark of the layer x pooling x dataset matrix."""

    model_key: str
    trained: bool
    dataset: str
    split: str
    layer: int | str
    pooling: str
    spearman: float | None  # None: undefined
    ci_low: float | None
    ci_high: float | None
    n_pairs: int | None
    gate: str  # "pass" | "FAIL" | "no floor"
    gate_key: str | None
    floor: float | None
    seconds_per_pair: float | None
    peak_memory_mb: float | None
    extra: dict = field(repr=False, compare=False)

    @property
    def match_key(self) -> tuple:
        """(model_key, dataset, split, layer, pooling): matches cases across profiles."""
        return (self.model_key, self.dataset, self.split, str(self.layer), self.pooling)

    @property
    def label(self) -> str:
        return f"{self.model_key}/{self.dataset}-{self.split}/{layer_label(self.layer)}/{self.pooling}"


@dataclass(frozen=True)
class Throughput:
    """A benchmark without spearman/layer, e.g. from a throughput module."""

    name: str
    mean_s: float | None
    numbers: dict  # the numeric extra_info


@dataclass(frozen=True)
class Run:
    source: str
    raw: dict = field(repr=False)
    cases: tuple[Case, ...]
    throughput: tuple[Throughput, ...]

    @property
    def commit(self) -> str:
        return str((self.raw.get("commit_info") or {}).get("id") or _first(self.cases, "git_commit") or "unknown")

    @property
    def dirty(self) -> Any:
        ci = self.raw.get("commit_info") or {}
        return ci["dirty"] if "dirty" in ci else _first(self.cases, "git_dirty")

    @property
    def time(self) -> datetime | None:
        try:
            return datetime.fromisoformat(str(self.raw.get("datetime")))
        except ValueError:
            return None

    @property
    def label(self) -> str:
        t = self.time
        return f"{t:%Y-%m-%d %H:%M} {self.commit[:7]}" if t else f"{self.source} {self.commit[:7]}"


def _first(cases: Sequence[Case], key: str) -> Any:
    return next((c.extra[key] for c in cases if c.extra.get(key) is not None), None)


def load_run(path: str | Path) -> dict:
    """Read a pytest-benchmark JSON file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not JSON, or not the JSON `pytest --benchmark-json` writes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; pass the file written by `pytest benchmarks "
                                "--benchmark-json PATH`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not JSON ({e}); expected the file written by `pytest benchmarks "
                         "--benchmark-json PATH`") from e
    check_run(data, str(path))
    return data


def check_run(data: Any, source: str = "run") -> None:
    """Raise ValueError unless `data` looks like pytest-benchmark JSON."""
    hint = "expected pytest-benchmark JSON (`pytest benchmarks --benchmark-json PATH`)"
    if not isinstance(data, dict):
        raise ValueError(f"{source}: top level is a {type(data).__name__}, not an object; {hint}")
    if not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{source}: no 'benchmarks' list (top-level keys: {sorted(data)[:8]}); {hint}")
    for i, b in enumerate(data["benchmarks"]):
        if not isinstance(b, dict) or "name" not in b:
            raise ValueError(f"{source}: benchmarks[{i}] is not an object with a 'name'; {hint}")


def _number(x: Any) -> float | None:
    """A finite float, or None (null, NaN, missing, not a number)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def parse_run(data: dict, source: str = "run") -> Run:
    check_run(data, source)
    cases, throughput, seen = [], [], set()
    for b in data["benchmarks"]:
        e = b.get("extra_info") or {}
        if "spearman" not in e or "layer" not in e:
            numbers = {k: v for k, v in e.items() if _number(v) is not None}
            throughput.append(Throughput(str(b["name"]), _number((b.get("stats") or {}).get("mean")), numbers))
            continue
        c = Case(
            model_key=str(e.get("model_key") or e.get("model") or "unknown"),
            trained=e.get("trained") is not False,
            dataset=str(e.get("dataset", "?")), split=str(e.get("split", "?")),
            layer=e["layer"], pooling=str(e.get("pooling", "?")),
            spearman=_number(e.get("spearman")),
            ci_low=_number(e.get("spearman_ci95_low")), ci_high=_number(e.get("spearman_ci95_high")),
            n_pairs=e.get("n_pairs"), gate=str(e.get("gate", "no floor")), gate_key=e.get("gate_key"),
            floor=_number(e.get("spearman_floor")),
            seconds_per_pair=_number(e.get("seconds_per_pair")),
            peak_memory_mb=_number(e.get("peak_memory_mb")), extra=e)
        if c.match_key not in seen:  # a duplicate case (should not happen) keeps its first record
            seen.add(c.match_key)
            cases.append(c)
    return Run(source, data, tuple(cases), tuple(throughput))


# --------------------------------------------------------------------------- formatting


def layer_sort(layer: Any) -> tuple:
    """'emb' first, then blocks by depth, then anything else by name."""
    if isinstance(layer, int) and not isinstance(layer, bool):
        return (1, layer, "")
    return (0, 0, "") if str(layer) == "emb" else (2, 0, str(layer))




def fmt_rho(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.4f}"


def fmt_ci(c: Case) -> str:
    if c.ci_low is None or c.ci_high is None:
        return ""
    return f" [{c.ci_low:.3f}, {c.ci_high:.3f}]"


def fmt_num(x: float | None, spec: str = ".4g") -> str:
    return "—" if x is None else format(x, spec)


def fmt_seconds(x: float | None) -> str:
    if x is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x * 1e9:.3g} ns"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
    return out + [""]


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "x"


def default_name(run: Run) -> str:
    t = run.time
    stamp = f"{t:%Y%m%dT%H%M%S}" if t else "run"
    return f"{stamp}-{_safe(run.commit[:7])}"


# --------------------------------------------------------------------------- grouping


def pooling_sort(p: str) -> tuple:
    return (POOLING_ORDER.index(p), "") if p in POOLING_ORDER else (len(POOLING_ORDER), p)


def datasets_of(run: Run) -> list[tuple[str, str]]:
    return sorted({(c.dataset, c.split) for c in run.cases})


def models_of(cases: Sequence[Case]) -> list[str]:
    """Multi-layer (studied) models first, then single-layer references like GloVe."""
    layers: dict[str, set] = {}
    for c in cases:
        layers.setdefault(c.model_key, set()).add(str(c.layer))
    return sorted(layers, key=lambda m: (len(layers[m]) < 2, m))


def best_case(cases: Sequence[Case]) -> Case | None:
    defined = [c for c in cases if c.spearman is not None]
    return max(defined, key=lambda c: c.spearman) if defined else None


def match(new: Run, old: Run) -> list[tuple[Case, Case | None]]:
    """Pair each case of `new` with the case of `old` of the same gate_key, else of the
    same (model_key, dataset, split, layer, pooling)."""
    by_gate = {c.gate_key: c for c in old.cases if c.gate_key}
    by_key = {c.match_key: c for c in old.cases}
    return [(c, by_gate.get(c.gate_key) or by_key.get(c.match_key)) for c in new.cases]


# --------------------------------------------------------------------------- markdown


def _provenance(run: Run) -> list[str]:
    mi = run.raw.get("machine_info") or {}
    ci = run.raw.get("commit_info") or {}
    cpu = (mi.get("cpu") or {}).get("brand_raw") or mi.get("processor") or mi.get("machine")
    first = lambda k: _first(run.cases, k)  # noqa: E731
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
    return _table(("", ""), rows)


def _accuracy_section(run: Run, dataset: str, split: str) -> list[str]:
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
    out += _table(("model", "layer", *poolings, "note"), rows)
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
                          *(fmt_rho(_number((dd.get(d) or {}).get("spearman"))) if d in dd else "—" for d in domains),
                          "" if c.trained else RANDOM_INIT_MARK))
        out += ["Per domain (Spearman ρ):", ""] + _table(("model", "layer", "pooling", *domains, "note"), drows)
    return out


def _gates_section(run: Run) -> list[str]:
    counts = {g: sum(c.gate == g for c in run.cases) for g in ("pass", "FAIL", "no floor")}
    counts |= {g: sum(c.gate == g for c in run.cases) for g in {c.gate for c in run.cases} - set(counts)}
    out = ["## Spearman gates", "", " · ".join(f"{g}: {n}" for g, n in counts.items()), ""]
    failing = [c for c in run.cases if c.gate not in ("pass", "no floor")]
    if failing:
        out += ["Failing cases:", ""]
        out += _table(("gate key", "gate", "Spearman [95% CI]", "floor", "note"),
                      [(c.gate_key or c.label, c.gate, fmt_rho(c.spearman) + fmt_ci(c), fmt_rho(c.floor),
                        "" if c.trained else RANDOM_INIT_MARK) for c in failing])
    else:
        out += ["No failing cases.", ""]
    return out


def _cost_rows(run: Run) -> list[tuple]:
    """(model, layer, median s/pair, n cases, max peak MB, max delta MB, median tokens/s, memory kind)."""
    rows = []
    for m in models_of(run.cases):
        mc = [c for c in run.cases if c.model_key == m]
        for layer in sorted({c.layer for c in mc}, key=layer_sort):
            lc = [c for c in mc if c.layer == layer]
            spp = [c.seconds_per_pair for c in lc if c.seconds_per_pair is not None]
            mem = [c.peak_memory_mb for c in lc if c.peak_memory_mb is not None]
            dmem = [_number(c.extra.get("peak_memory_delta_mb")) for c in lc]
            dmem = [x for x in dmem if x is not None]
            tps = [x for x in (_number(c.extra.get("tokens_per_second")) for c in lc) if x is not None]
            kinds = sorted({str(c.extra.get("memory_kind")) for c in lc if c.extra.get("memory_kind")})
            rows.append((m, layer, statistics.median(spp) if spp else None, len(lc), max(mem) if mem else None,
                         max(dmem) if dmem else None, statistics.median(tps) if tps else None, ", ".join(kinds)))
    return rows


def _cost_section(run: Run) -> list[str]:
    out = ["## Time and memory", "",
           "Per model × layer, over its poolings and datasets: median seconds per pair of the timed "
           "pre-tokenized batch, the largest peak memory and the largest peak increase during the call.", ""]
    out += _table(("model", "layer", "s/pair (median)", "cases", "peak MB", "Δ peak MB", "tokens/s", "memory kind"),
                  [(m, layer_label(la), fmt_seconds(s), n, fmt_num(p, ".1f"), fmt_num(d, ".1f"), fmt_num(t, ".3g"), k)
                   for m, la, s, n, p, d, t, k in _cost_rows(run)])
    return out


def _delta_section(run: Run, old: Run) -> list[str]:
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
    out += _table(("model", "dataset", "layer", "pooling", "old ρ", "new ρ", "Δρ", "time ratio", "Δ memory MB",
                   "note"), rows)
    new_only = [n.label for n, p in pairs if p is None]
    gone = sorted({c.match_key for c in old.cases} - {c.match_key for c in run.cases})
    if new_only:
        out += [f"New cases (no baseline): {', '.join(new_only)}", ""]
    if gone:
        out += [f"Cases in the baseline but not in this run: "
                f"{', '.join(f'{m}/{d}-{s}/{layer_label(la)}/{p}' for m, d, s, la, p in gone)}", ""]
    return out


def _throughput_section(run: Run) -> list[str]:
    if not run.throughput:
        return []
    rows = [(t.name, fmt_seconds(t.mean_s),
             ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(t.numbers.items()))
             or "—") for t in run.throughput]
    intro = "Benchmarks without an accuracy record (stats.mean and the numbers in extra_info)."
    return ["## Throughput", "", intro, ""] + _table(("benchmark", "mean", "extra_info"), rows)


def _history_section(runs: Sequence[Run]) -> list[str]:
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
        + _table(("model", "dataset", *(r.label for r in runs)), rows)


def summary_markdown(run: Run, older: Sequence[Run], name: str, plots: Sequence[str], plot_note: str | None) -> str:
    out = [f"# rwkv_eval report: {name}", ""] + _provenance(run)
    untrained = sorted({c.model_key for c in run.cases if not c.trained})
    if untrained:
        out += [f"> **{RANDOM_INIT_MARK}**: {', '.join(untrained)} "
                f"{'has' if len(untrained) == 1 else 'have'} random-init weights (trained=false). "
                "Their Spearman is meaningless; their time and memory are real.", ""]
    out += ["## Accuracy", ""]
    if not run.cases:
        out += ["No accuracy benchmarks in this run.", ""]
    for d, s in datasets_of(run):
        out += _accuracy_section(run, d, s)
    if run.cases:
        out += _gates_section(run) + _cost_section(run)
    if older:
        out += _delta_section(run, older[0])
    out += _throughput_section(run)
    out += _history_section(sorted([run, *older], key=_time_key))
    out += ["## Plots", ""]
    out += [f"![{p}]({p})" for p in plots] or ["No plots."]
    if plot_note:
        out += ["", plot_note]
    return "\n".join(out).rstrip() + "\n"


def _time_key(r: Run) -> tuple:
    t = r.time
    return (t is None, t.timestamp() if t else 0.0, r.source)


# --------------------------------------------------------------------------- plots


def _layer_x(layers: Sequence[Any]) -> dict[Any, float]:
    """x position per layer: blocks at their index, 'emb' one step left of the first block."""
    ints = [la for la in layers if isinstance(la, int) and not isinstance(la, bool)]
    lo = min(ints) if ints else 0
    pos, extra = {}, 0
    for la in sorted(layers, key=layer_sort):
        if la in ints:
            pos[la] = float(la)
        elif str(la) == "emb":
            pos[la] = float(lo - 1)
        else:
            extra += 1
            pos[la] = float(max(ints, default=0) + extra)
    return pos


def _layer_ticks(ax, x: dict[Any, float]) -> None:
    """Short tick labels ("emb", "5"), thinned to at most ~13 so they never overlap."""
    layers = sorted(x, key=layer_sort)
    every = max(1, math.ceil(len(layers) / 13))
    shown = [la for i, la in enumerate(layers) if i % every == 0 or la == layers[-1]]
    if len(shown) > 1 and shown[-1] == layers[-1] and (len(layers) - 1) % every:
        shown.pop(-2)  # the last layer is always labelled; drop its crowded neighbour
    ax.set_xticks([x[la] for la in shown], [str(la) for la in shown])
    ax.set_xlabel("layer k (residual stream after block k; emb = embedding)")


def _seconds_axis(ax) -> None:
    """Tick labels like "30 µs", "2 ms" rather than an offset exponent."""
    from matplotlib.ticker import EngFormatter

    ax.yaxis.set_major_formatter(EngFormatter(unit="s"))
    ax.yaxis.set_minor_formatter(EngFormatter(unit="s") if ax.get_yscale() == "linear" else "")


def _save(fig, path: Path) -> None:
    write_bytes_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))


def _plot_spearman(plt, run: Run, out_dir: Path) -> list[str]:
    files = []
    for d, s in datasets_of(run):
        cases = [c for c in run.cases if (c.dataset, c.split) == (d, s)]
        models = models_of(cases)
        n_layers = {m: len({str(c.layer) for c in cases if c.model_key == m}) for m in models}
        refs = [m for m in models if n_layers[m] == 1]
        for m in (m for m in models if n_layers[m] > 1):
            mc = [c for c in cases if c.model_key == m]
            layers = sorted({c.layer for c in mc}, key=layer_sort)
            x = _layer_x(layers)
            poolings = sorted({c.pooling for c in mc}, key=pooling_sort)
            step = min((b - a for a, b in zip(sorted(x.values()), sorted(x.values())[1:])), default=1.0)
            fig, ax = plt.subplots(figsize=(max(8.0, 3 + 0.3 * len(layers)), 4.6))
            for i, p in enumerate(poolings):
                pc = sorted((c for c in mc if c.pooling == p and c.spearman is not None),
                            key=lambda c: layer_sort(c.layer))
                if not pc:
                    continue
                dodge = (i - (len(poolings) - 1) / 2) * 0.06 * step  # keep error bars apart
                xs = [x[c.layer] + dodge for c in pc]
                ys = [c.spearman for c in pc]
                err = [[c.spearman - (c.ci_low if c.ci_low is not None else c.spearman) for c in pc],
                       [(c.ci_high if c.ci_high is not None else c.spearman) - c.spearman for c in pc]]
                ax.errorbar(xs, ys, yerr=err, marker="o", ms=4, capsize=3, lw=1.5, label=f"{m} {p}")
            styles = ["--", ":", "-."]
            for j, r in enumerate(refs):
                ref_cases = sorted((c for c in cases if c.model_key == r), key=lambda c: pooling_sort(c.pooling))
                for k, c in enumerate(ref_cases):
                    if c.spearman is None:
                        continue
                    color = f"C{len(poolings) + j * 2 + k}"
                    ax.axhline(c.spearman, color=color, ls=styles[(j + k) % 3], lw=1.3,
                               label=f"{r} {c.pooling} ({layer_label(c.layer)})"
                                     + ("" if c.trained else " random-init") + "\nband: its 95% CI")
                    if c.ci_low is not None and c.ci_high is not None:
                        ax.axhspan(c.ci_low, c.ci_high, color=color, alpha=0.10, lw=0)
            undefined = [c for c in mc if c.spearman is None]
            _layer_ticks(ax, x)
            ax.set_ylabel("Spearman ρ (95% CI)")
            title = f"{m} on {d} / {s}"
            if not mc[0].trained:
                title += f"\n{RANDOM_INIT_MARK}"
            if undefined:
                which = ", ".join(f"{layer_label(c.layer)}/{c.pooling}" for c in undefined)
                title += f"\nundefined (not drawn): {which}"
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
            name = f"spearman__{_safe(m)}__{_safe(f'{d}-{s}')}.png"
            _save(fig, out_dir / name)
            plt.close(fig)
            files.append(name)
    return files


def _plot_cost(plt, run: Run, out_dir: Path) -> list[str]:
    rows = _cost_rows(run)
    if not rows:
        return []
    fig, (ax_t, ax_m) = plt.subplots(2, 1, figsize=(8, 6.4), sharex=True)
    x = _layer_x(sorted({r[1] for r in rows}, key=layer_sort))
    trained = {c.model_key: c.trained for c in run.cases}
    for i, m in enumerate(dict.fromkeys(r[0] for r in rows)):
        mr = [r for r in rows if r[0] == m]
        label = m + ("" if trained[m] else " (random-init)")
        t = [(x[r[1]], r[2]) for r in mr if r[2] is not None]
        p = [(x[r[1]], r[4]) for r in mr if r[4] is not None]
        # models of one architecture cost the same: distinct dashes and hollow markers keep
        # a line drawn over another one visible
        style = dict(marker="os^Dv<>"[i % 7], ms=7 - i % 3, lw=1.5, color=f"C{i % 10}", ls=LINESTYLES[i % 4],
                     mfc="none" if i % 2 else f"C{i % 10}", label=label)
        if t:
            ax_t.plot(*zip(*t), **style)
        if p:
            ax_m.plot(*zip(*p), **style)
    times = [r[2] for r in rows if r[2]]
    if times and max(times) / min(times) > 20:
        ax_t.set_yscale("log")
    ax_t.set_ylabel("time per pair\n(median over cases)")
    _seconds_axis(ax_t)
    kinds = sorted({r[7] for r in rows if r[7]})
    ax_m.set_ylabel("peak memory MB")
    ax_m.set_title(f"memory: {'; '.join(kinds)}", fontsize=9)
    _layer_ticks(ax_m, x)
    devices = sorted({f"{c.extra.get('device', '?')} {c.extra.get('dtype', '')}".strip() for c in run.cases})
    ax_t.set_title(f"cost vs layer — {', '.join(devices)}", fontsize=10)
    for ax in (ax_t, ax_m):
        ax.grid(alpha=0.3)
    ax_t.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    _save(fig, out_dir / "cost_vs_layer.png")
    plt.close(fig)
    return ["cost_vs_layer.png"]


def _plot_history(plt, runs: Sequence[Run], out_dir: Path) -> list[str]:
    if not any(r.cases for r in runs):
        return []
    fig, (ax_r, ax_t) = plt.subplots(2, 1, figsize=(9, 6.4), sharex=True)
    xs = list(range(len(runs)))
    models = sorted({c.model_key for r in runs for c in r.cases})
    color = {m: f"C{i % 10}" for i, m in enumerate(models)}  # one color per model in both panels
    datasets = sorted({(c.dataset, c.split) for r in runs for c in r.cases})
    dash = {d: (LINESTYLES[i % 4], "os^Dv<>"[i % 7]) for i, d in enumerate(datasets)}  # one dash per dataset
    keys = sorted({(c.model_key, c.dataset, c.split) for r in runs for c in r.cases if c.trained})
    for m, d, s in keys:
        ys = []
        for r in runs:
            b = best_case([c for c in r.cases if (c.model_key, c.dataset, c.split) == (m, d, s)])
            ys.append(math.nan if b is None else b.spearman)
        ls, marker = dash[(d, s)]
        ax_r.plot(xs, ys, marker=marker, ms=5, color=color[m], ls=ls, label=f"{m} {d}-{s}")
    for m in models:
        ys = []
        for r in runs:
            spp = [c.seconds_per_pair for c in r.cases if c.model_key == m and c.seconds_per_pair is not None]
            ys.append(statistics.median(spp) if spp else math.nan)
        untrained = any(not c.trained for r in runs for c in r.cases if c.model_key == m)
        ax_t.plot(xs, ys, marker="s", ms=7 if untrained else 5, color=color[m], ls="--" if untrained else "-",
                  zorder=3 if untrained else 2,  # dashed and on top: it often shares its cost with a trained twin
                  mfc="none" if untrained else color[m], label=m + (" (random-init)" if untrained else ""))
    times = [c.seconds_per_pair for r in runs for c in r.cases if c.seconds_per_pair]
    if times and max(times) / min(times) > 20:
        ax_t.set_yscale("log")
    ax_r.set_ylabel("best Spearman ρ\n(trained models)")
    ax_r.set_title("metric history, oldest run first", fontsize=10)
    ax_t.set_ylabel("time per pair\n(median over cases)")
    _seconds_axis(ax_t)
    ax_t.set_xticks(xs, [r.label.replace(" ", "\n", 1) for r in runs], fontsize=8,
                    rotation=30 if len(runs) > 6 else 0, ha="right" if len(runs) > 6 else "center")
    if len(runs) == 1:
        ax_t.set_xlim(-0.5, 0.5)
    for ax in (ax_r, ax_t):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    _save(fig, out_dir / "history.png")
    plt.close(fig)
    return ["history.png"]


def make_plots(run: Run, older: Sequence[Run], out_dir: Path) -> tuple[list[str], str | None]:
    """Write the PNGs; returns (file names, a note when plots could not be made)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "Plots skipped: matplotlib is not installed (`pip install 'rwkv-eval[plots]'`)."
    with plt.rc_context({"figure.max_open_warning": 0}):
        files = _plot_spearman(plt, run, out_dir) + _plot_cost(plt, run, out_dir)
        files += _plot_history(plt, sorted([run, *older], key=_time_key), out_dir)
    return files, None


# --------------------------------------------------------------------------- github-action-benchmark


def action_benchmark(run: Run) -> tuple[list[dict], list[dict]]:
    """(bigger-is-better, smaller-is-better) entries in github-action-benchmark's custom
    format. Random-init and undefined Spearman values are left out of `bigger`: the first
    is meaningless, the second has no number."""
    bigger, smaller = [], []
    for c in run.cases:
        ctx = (f"{c.extra.get('device', '?')} {c.extra.get('dtype', '')}; commit {run.commit[:7]}; "
               f"profile {c.extra.get('profile', '?')}")
        if c.trained and c.spearman is not None:
            bigger.append({"name": f"{c.label} spearman", "unit": "spearman", "value": round(c.spearman, 6),
                           "extra": f"95% CI{fmt_ci(c) or ' n/a'}; n_pairs {c.n_pairs}; gate {c.gate}; {ctx}"})
        if c.seconds_per_pair is not None:
            smaller.append({"name": f"{c.label} time per pair", "unit": "s/pair", "value": c.seconds_per_pair,
                            "extra": f"batch of {c.extra.get('timed_batch_sentences', '?')} sentences; {ctx}"})
        if c.peak_memory_mb is not None:
            smaller.append({"name": f"{c.label} peak memory", "unit": "MB", "value": round(c.peak_memory_mb, 3),
                            "extra": f"{c.extra.get('memory_kind', '?')}; {ctx}"})
    for t in run.throughput:
        if t.mean_s is not None:
            smaller.append({"name": f"{t.name} mean time", "unit": "s", "value": t.mean_s,
                            "extra": f"pytest-benchmark stats.mean; commit {run.commit[:7]}"})
    return bigger, smaller


# --------------------------------------------------------------------------- entry points


def build_report(run: dict, older: list[dict] | None = None, out_dir: Path = Path("reports"),
                 name: str | None = None) -> Path:
    """Write summary.md, the PNGs and the github-action-benchmark files for one run.

    Args:
        run: pytest-benchmark JSON (as `load_run` returns it) of the run to report.
        older: earlier runs of the same kind; older[0] is the baseline of the deltas, all
            of them go into the history.
        out_dir: the reports root; the report goes into out_dir/name.
        name: folder name; default "<run datetime>-<commit short id>".

    Returns:
        The report folder.

    Example:
        >>> folder = build_report(load_run("out.json"), [load_run("old.json")], Path("reports"))  # doctest: +SKIP
    """
    olds = [parse_run(o, f"older[{i}]") for i, o in enumerate(older or [])]
    return write_report(parse_run(run, "run"), olds, Path(out_dir), name)


def write_report(new: Run, olds: Sequence[Run], out_dir: Path, name: str | None = None) -> Path:
    """build_report on parsed runs (whose `source` names their file)."""
    name = name or default_name(new)
    if name in (".", "..") or "/" in name or "\\" in name or not name.strip():
        raise ValueError(f"report name {name!r} is not a plain folder name; pass e.g. --name nightly-2026-11-26")
    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    plots, note = make_plots(new, olds, folder)
    bigger, smaller = action_benchmark(new)
    write_json_atomic(folder / BIGGER_FILE, bigger)
    write_json_atomic(folder / SMALLER_FILE, smaller)
    text = summary_markdown(new, olds, name, plots, note).encode("utf-8")
    write_bytes_atomic(folder / SUMMARY_FILE, lambda f: f.write(text))
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m rwkv_eval.report RUN.json [OLDER.json ...] [--out reports/] [--name NAME]`."""
    ap = argparse.ArgumentParser(prog="python -m rwkv_eval.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="pytest-benchmark JSON of the run to report")
    ap.add_argument("older", nargs="*", help="older runs: the first is the delta baseline, all go into the history")
    ap.add_argument("--out", default="reports", help="reports root (default: reports/)")
    ap.add_argument("--name", default=None, help="report folder name (default: <datetime>-<commit>)")
    args = ap.parse_args(argv)
    try:
        new = parse_run(load_run(args.run), args.run)
        olds = [parse_run(load_run(p), p) for p in args.older]
        folder = write_report(new, olds, Path(args.out), args.name)
    except (ValueError, OSError) as e:
        print(f"rwkv_eval.report: error: {e}", file=sys.stderr)
        return 2
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
