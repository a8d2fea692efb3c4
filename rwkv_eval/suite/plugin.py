"""The pytest plugin of the benchmark suite: options, run context, parametrization, fixtures, gates, summary.

Registered as the pytest entry point `rwkv_eval.suite.plugin` (pyproject.toml), so
`pytest path/to/benchmarks` behaves the same from any directory; the checkout's
conftest.py loads it by the same name, which pytest registers once.

    pytest benchmarks --benchmark-json out.json                      # smoke profile
    pytest benchmarks --rwkv-profile perf --benchmark-json perf.json  # the cost benchmarks
    pytest benchmarks --rwkv-profile paper --device cuda --benchmark-json out.json

Accuracy is computed once per (model, dataset) — one forward pass serves every layer
and pooling — and shared by the layer x pooling cases through a session cache; the
timed benchmarks time real work (encoding a fixed pre-tokenized batch up to the case's
layer), never a cache lookup.
"""

from __future__ import annotations

import os
import sys
import textwrap
from contextlib import nullcontext
from pathlib import Path

import pytest

from rwkv_eval.datasets import DATA_ENV  # the data root when --data-dir is not given (read here, at the edge)
DEFAULT_THRESHOLDS = Path("benchmarks") / "thresholds.json"  # relative to the rootdir (the checkout)
ACCURACY_BATCH = 64  # sentences per forward pass when scoring a whole dataset (recorded)
MIN_TIME_S = 0.25  # timed rounds per case add up to at least this (3..50 rounds), see measure.plan_rounds
BASELINE_MODEL, BASELINE_SETTING = "glove-6b-50d", (0, "mean")  # the "vs GloVe-50d" of paired comparisons


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("rwkv-eval")
    g.addoption("--rwkv-profile", default="smoke",
                help="smoke (default) | perf | paper | sts | ood | pairs | sweep | path/to/profile.toml")
    g.addoption("--device", default="auto", help="auto | cpu | cuda (the current CUDA device) | cuda:N")
    g.addoption("--dtype", default=None, help="float32 | float16 | bfloat16 (or fp32, fp16, bf16; default: float32 "
                                              "on CPU; on CUDA bfloat16 where native (sm_80+), else float16)")
    g.addoption("--model", action="append", default=None,
                help="model (path or hub id) replacing the profile's subject model; repeat for several")
    g.addoption("--data-dir", default=None, help=f"data root (mrpc/, stsb/, sick/, sts12-16/); default ${DATA_ENV}")
    g.addoption("--thresholds", default=None,
                help="committed accuracy references file (default benchmarks/thresholds.json, or the "
                     "profile's [reference] thresholds)")
    g.addoption("--accuracy-baseline", default=None, metavar="RUN.json",
                help="pytest-benchmark JSON of a run whose Spearmans are the references (before history and file)")
    g.addoption("--accept-new-cases", action="store_true",
                help="cases without a reference pass and are recorded as new (seeds a history); default: they fail")
    g.addoption("--length-shapes", default="small", help="small | real: model shapes of benchmarks/test_length_scaling.py")
    add_grid_options(g)
    add_cache_options(g)


def add_grid_options(g) -> None:
    """Quick overrides of the profile's grid, and the shard of it this run takes."""
    g.addoption("--layers", default=None,
                help="layers of the subject models: 1,3,5 | 0-23 | all | emb | final | 50%% (relative depth)")
    g.addoption("--pooling", default=None, help="poolings of the subject models: mean,max,... | all")
    g.addoption("--template", default=None,
                help="prompt template of the subject models: promptEOL (with --pooling last) | a string with "
                     "one {sentence} | none; their keys get +promptEOL / +custom")
    g.addoption("--dataset", action="append", default=None,
                help="NAME[:SPLIT] replacing the profile's datasets; repeat for several (e.g. stsb:test)")
    g.addoption("--rwkv-shard", default=None,
                help="i/N: run the i-th of N disjoint slices of the grid (whole models); merge the JSONs "
                     "with python -m rwkv_eval.suite.shards merge")


class RunContext:
    """Session state of a benchmark run: options, profile, and the caches."""

    def __init__(self, config: pytest.Config):
        from rwkv_eval.measure import default_dtype, resolve_device
        from rwkv_eval.options import check_dtype
        from rwkv_eval.suite.profiles import AssetMissing, build_profile
        from rwkv_eval.suite.shards import parse_shard

        self.config = config
        check_options(config)
        # the values the CLI takes too go through its checks: the device and dtype here, --layers
        # and --pooling in build_profile (both rwkv_eval.options)
        dtype = config.getoption("--dtype")
        try:
            self.device = resolve_device(config.getoption("--device"), "--device")
            dtype = dtype and check_dtype(dtype)
        except ValueError as e:
            raise pytest.UsageError(str(e)) from e  # "--device cuda:2 does not exist: ..."
        self.dtype = dtype or default_dtype(self.device)
        self.dtype_source = "--dtype" if dtype else f"default for {self.device}"
        self.profile_name = config.getoption("--rwkv-profile")
        try:
            self.profile = build_profile(self.profile_name, model=config.getoption("--model"),
                                         data_dir=config.getoption("--data-dir") or os.environ.get(DATA_ENV),
                                         layers=config.getoption("--layers"), poolings=config.getoption("--pooling"),
                                         template=config.getoption("--template"),
                                         datasets=config.getoption("--dataset") or (), **hub_access())
            self.shard = parse_shard(config.getoption("--rwkv-shard"))
        except (AssetMissing, ValueError) as e:
            raise pytest.UsageError(str(e)) from e
        self.model_layers = check_models(config, self.profile)
        self.profile_name = self.profile.name  # a .toml profile is named by its file (gate keys start with it)
        self.references, self.reference_sources = load_references(config, self.profile.thresholds)
        self.accept_new_cases: bool = config.getoption("--accept-new-cases")
        self.gates: list = []  # rwkv_eval.suite.gates.Verdict per gated number, in run order
        self._evaluations: dict = {}
        self._paired: dict = {}
        self._baseline_sets: dict = {}
        self._encoders: dict = {}
        self._build_memory: dict = {}  # (spec, revision) -> measure.build_memory's dict
        self._pairs: dict = {}
        self._accuracy: dict = {}

    def model(self, case):
        """The case's loaded model, shared by its plain and prompted keys; loading one releases
        the previous (one model resident at a time)."""
        key = (case.spec, case.revision)
        if key not in self._encoders:
            import torch

            from rwkv_eval.measure import build_memory
            from rwkv_eval.models.load import load_encoder

            self._encoders.clear()  # build_memory releases it before measuring
            self._encoders[key], self._build_memory[key] = build_memory(
                lambda: load_encoder(case.spec, device=self.device, dtype=getattr(torch, self.dtype), seed=0,
                                     revision=case.revision), self.device)
        return self._encoders[key]

    def build_memory(self, encoder) -> dict | None:
        """measure.build_memory's record of building `encoder` (a model this context loaded), else None."""
        return next((self._build_memory[k] for k, e in self._encoders.items() if e is encoder), None)

    def encoder(self, case):
        """What the case is scored with: its model, or a copy of it sharing the weights that applies
        the case's template (templates.with_template)."""
        from rwkv_eval.templates import with_template

        model = self.model(case)
        return model if case.template is None else with_template(model, case.template)

    def pairs(self, case):
        if case.key not in self._pairs:
            from rwkv_eval.datasets import get, load_pairs

            # a shipped set (stsb-sample) takes no data root; the profile's is --data-dir, else $RWKV_EVAL_DATA
            self._pairs[case.key] = load_pairs(case.name, case.split,
                                               None if get(case.name).shipped else self.profile.data_dir)
        return self._pairs[case.key]

    def accuracy(self, model_case, data_case, encoder=None) -> dict:
        """{(dataset, layer, pooling): record}, computed once per (model, dataset) (with
        `encoder` if given, e.g. one that must not evict the resident model)."""
        key = (model_case.key, data_case.key)
        if key not in self._accuracy:
            from rwkv_eval.evaluation import evaluate_pairs

            self.progress(model_case, data_case)
            pairs = self.pairs(data_case)
            aggregate = data_case.name if isinstance(pairs, list) else None
            ev = evaluate_pairs(encoder or self.encoder(model_case), pairs, model_case.layers, model_case.poolings,
                                batch_size=ACCURACY_BATCH, aggregate=aggregate, cache=embedding_cache(self.config))
            self._evaluations[key] = ev
            self._accuracy[key] = {(r["dataset"], r["layer"], r["pooling"]): r for r in ev.records}
        return self._accuracy[key]

    def progress(self, model_case, data_case) -> None:
        """One line as a (model, dataset) accuracy pass starts: what runs, k of n, so a long run
        never looks hung. Written past pytest's capture to the terminal (stderr without one);
        --benchmark-json goes to its file and is untouched."""
        passes = [(m.key, d.key) for m in shard_models(self) for d in self.profile.datasets]
        key = (model_case.key, data_case.key)
        k = passes.index(key) + 1 if key in passes else len(passes)
        text = (f"rwkv-eval [{k}/{len(passes)}] {model_case.key} on {data_case.key}: "
                f"{len(model_case.layers)} layers x {len(model_case.poolings)} poolings, one pass")
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:
            print(text, file=sys.stderr, flush=True)
            return
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
            tr.write_line(text)

    def paired(self, model_case, data_case, dataset: str) -> dict:
        """{(layer, pooling): {"vs_best", "vs_baseline"}} for a trained model on one pair set
        (paired bootstrap on the similarities of the accuracy pass; {} for random-init models)."""
        key = (model_case.key, data_case.key, dataset)
        if key not in self._paired:
            from rwkv_eval.analyses.paired import PairedSet, compare

            self.accuracy(model_case, data_case)
            if not model_case.trained:
                self._paired[key] = {}
                return self._paired[key]
            mine = PairedSet(self._evaluations[(model_case.key, data_case.key)], dataset, PAIRED_RESAMPLES)
            base_case = next((m for m in self.profile.models if m.key == BASELINE_MODEL), None)
            base = None
            if base_case is not None and base_case.key != model_case.key:
                if (base_case.key, data_case.key) not in self._accuracy:  # GloVe, loaded beside the resident model
                    import torch

                    from rwkv_eval.models.load import load_encoder

                    glove = load_encoder(base_case.spec, device="cpu", dtype=torch.float32, seed=0)
                    self.accuracy(base_case, data_case, glove)
                base = self._baseline_sets.get((data_case.key, dataset))
                if base is None:
                    base = PairedSet(self._evaluations[(base_case.key, data_case.key)], dataset, PAIRED_RESAMPLES)
                    self._baseline_sets[(data_case.key, dataset)] = base
            self._paired[key] = compare(mine, base, BASELINE_SETTING, BASELINE_MODEL)
        return self._paired[key]


def hub_access() -> dict[str, bool]:
    """Whether assets missing here may come from the Hugging Face hub, by its own switches
    (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE): read here, at the edge, and handed to build_profile."""
    def on(name: str) -> bool:
        return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")

    return {"hub_models": not on("HF_HUB_OFFLINE"),
            "hub_datasets": not on("HF_HUB_OFFLINE") and not on("HF_DATASETS_OFFLINE")}


@pytest.fixture(scope="session")
def run(pytestconfig: pytest.Config) -> RunContext:
    return get_run(pytestconfig)


def get_run(config: pytest.Config) -> RunContext:
    """The RunContext at collection time (pytest_generate_tests has no fixtures)."""
    if getattr(config, "_rwkv_run", None) is None:
        config._rwkv_run = RunContext(config)
    return config._rwkv_run


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `case` over this shard's model x dataset x layer x pooling matrix,
    with readable ids: rwkv6-finch-1b6/L05/mean/mrpc-validation."""
    if "case" not in metafunc.fixturenames:
        return
    from rwkv_eval.encoder import layer_id

    run = get_run(metafunc.config)
    cases, ids = [], []
    for m in shard_models(run):
        for d in run.profile.datasets:
            for layer in m.layers:
                for pooling in m.poolings:
                    cases.append((m, d, layer, pooling))
                    ids.append(f"{m.key}/{layer_id(layer)}/{pooling}/{d.key}")
    metafunc.parametrize("case", cases, ids=ids)


def shard_models(run: RunContext) -> tuple:
    """This shard's models (whole models, so each shard loads a model once) with their
    layer lists resolved: "all", relative depths and negative indices ask the model."""
    if getattr(run, "_shard_models", None) is None:
        from dataclasses import replace

        from rwkv_eval.encoder import parse_layers
        from rwkv_eval.suite.shards import select_models

        models = []
        # last to first: the model left resident (run.encoder keeps one) is the first the run needs
        for m in reversed(select_models(run.profile.models, run.shard)):
            layers = run.model_layers[m.key] if m.key in run.model_layers else m.static_layers()
            if layers is None:
                try:
                    layers = parse_layers(m.layers, run.encoder(m).layers())
                except ValueError as e:
                    raise pytest.UsageError(f"model {m.key} ({m.spec}): {e}") from None
            models.append(replace(m, layers=layers))
        run._shard_models = tuple(reversed(models))
    return run._shard_models


COST_MARKER = "rwkv_cost"  # the benchmarks of the profiles' "cost" group (benchmarks/test_throughput.py, ...)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{COST_MARKER}: a cost benchmark; runs when the profile's `benchmarks` "
                                       "names \"cost\" (the perf profile; not smoke)")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Keep the benchmark groups the profile names (`benchmarks`: "accuracy" = the grid,
    "cost" = tests marked rwkv_cost); tests outside the grid (throughput, machine limits)
    run in shard 1 only, so the merged shards hold each of them once."""
    run = getattr(config, "_rwkv_run", None)
    if run is None:
        return
    groups = run.profile.benchmarks
    left_out = [item for item in items
                if ("cost" not in groups and item.get_closest_marker(COST_MARKER) is not None)
                or ("accuracy" not in groups and "case" in getattr(item, "fixturenames", ()))]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        dropped = set(map(id, left_out))
        items[:] = [item for item in items if id(item) not in dropped]
    if run.shard is None or run.shard[0] == 1:
        return
    other = [item for item in items if "case" not in getattr(item, "fixturenames", ())]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if "case" in getattr(item, "fixturenames", ())]


def add_shard_header(config, output_json) -> None:
    """Mark the JSON with its profile and shard, so shards merge into one run (rwkv_eval.suite.shards)."""
    run = getattr(config, "_rwkv_run", None)
    if run is not None:
        from rwkv_eval.suite.shards import shard_header

        output_json["rwkv_shard"] = shard_header(run.profile, run.shard, [m.key for m in shard_models(run)])


@pytest.fixture
def timed(benchmark, run):
    """Time fn() on `device` (default: the run's; measure.time_rounds): warm-up, rounds sized by time
    (MIN_TIME_S, 3..50 rounds), each synchronised on the run's device, CUDA events and
    wall clock both recorded in extra_info; the timed rounds go through pytest-benchmark's
    pedantic so its statistics and --benchmark-compare see them. Under --benchmark-disable
    the same warm-up and rounds run in a plain loop. Returns the median seconds."""
    from rwkv_eval.measure import time_rounds

    def go(fn, *, device: str | None = None, min_rounds: int = 3, min_time: float = MIN_TIME_S,
           max_rounds: int = 50, warmup_rounds: int = 1) -> float:
        runner = None if benchmark.disabled else (
            lambda target, rounds: benchmark.pedantic(target, rounds=rounds, iterations=1, warmup_rounds=0))
        stats = time_rounds(fn, device or run.device, min_time=min_time, min_rounds=min_rounds, max_rounds=max_rounds,
                            warmup_rounds=warmup_rounds, runner=runner)
        benchmark.extra_info.update({k: v for k, v in stats.items() if k != "seconds"})
        return stats["seconds"]

    return go


@pytest.fixture
def peak_memory(run):
    """peak_memory(fn, encoder, build=None): the peak memory of one call of fn() by `encoder`'s model,
    on the encoder's own device (GloVe: cpu in every profile), in a separate untimed run, or of
    building that model if that was higher: `build` is measure.build_memory's record, by default
    the one taken when `run.model` loaded the encoder; see measure.peak_memory, named in memory_kind."""
    from rwkv_eval.measure import peak_memory as measure_peak, weights_bytes

    def measure(fn, encoder, build: dict | None = None) -> dict:
        return measure_peak(fn, str(encoder.device), weights_bytes(encoder), build or run.build_memory(encoder))

    return measure


def pytest_benchmark_update_machine_info(config, machine_info):
    import torch

    from rwkv_eval.measure import device_info

    machine_info["torch"] = torch.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
    # from the options, not the RunContext: --benchmark-compare asks before collection, and
    # a machine_info that differs from the saved run's makes pytest-benchmark warn
    from rwkv_eval.measure import default_dtype, resolve_device

    from rwkv_eval.options import check_dtype

    try:
        device = resolve_device(config.getoption("--device"), "--device")
        dtype = config.getoption("--dtype") and check_dtype(config.getoption("--dtype"))
    except ValueError:
        return  # RunContext reports the bad option as a usage error
    machine_info.update(device_info(device))
    machine_info["dtype"] = dtype or default_dtype(device)


def spearman_matrix_summary(tr, ctx: RunContext) -> None:
    """The answer a user runs the suite for, where they look: per model x dataset, the best
    layer x pooling with its CI, the settings not significantly worse than it, and which beat
    GloVe-50d on the same pairs; then the Spearman matrix layer (rows) x pooling (columns), each
    cell marked by the paired comparisons the cases recorded (analyses.paired, RunContext.paired)."""
    from rwkv_eval.encoder import layer_id

    models = {m.key: m for m in shard_models(ctx)}
    tables = [(models[mk], dk, acc) for (mk, dk), acc in getattr(ctx, "_accuracy", {}).items() if mk in models]
    if not tables:
        return
    tr.section(f"rwkv-eval: which layer x pooling, and vs {BASELINE_MODEL} (profile {ctx.profile_name})")
    tr.line(f"marks: paired bootstrap on the same pairs (95% CI of Δρ, {PAIRED_RESAMPLES} resamples; "
            f"{MULTIPLICITY}); vs the model's best: * best, = not significantly worse, blank worse; vs "
            f"{BASELINE_MODEL} {layer_id(BASELINE_SETTING[0])}/{BASELINE_SETTING[1]}: "
            f"+ better, ~ not different, - worse")
    for m, dk, acc in tables:
        main = [r for r in acc.values() if "/" not in r["dataset"] or r["dataset"].endswith("/concat")]
        if not main:
            continue
        paired = ctx._paired.get((m.key, dk, main[0]["dataset"]), {})
        rec = {(r["layer"], r["pooling"]): r for r in main}
        tr.line("")
        tr.line(f"{m.key} on {dk} ({max(r['n_pairs'] for r in main)} pairs)"
                + ("" if m.trained else "  [random init: Spearman meaningless, no comparisons]"))
        for line in _verdict_lines(rec, paired):
            tr.line("  " + line)
        with_base = any("vs_baseline" in c for c in paired.values())
        width = max(17 if with_base else 9, *(len(p) + 1 for p in m.poolings))
        tr.line("  layer " + "".join(p.rjust(width) for p in m.poolings)
                + (f"   (cell: ρ, mark; Δρ vs {BASELINE_MODEL}, mark)" if with_base else ""))
        for layer in m.layers:
            cells = [_cell(rec.get((layer, p)), paired.get((layer, p), {})).rjust(width) for p in m.poolings]
            tr.line(f"  {layer_id(layer):5s} " + "".join(cells))
    _cost_lines(tr, ctx, models)


# Multiplicity: analyses.paired decides `significantly_worse` and `verdict` from Holm-adjusted
# p-values over a model's settings (65 for a tiny RWKV: emb + 12 blocks x 5 poolings); _marks
# reads those fields only. A bootstrap p is at least 2/(B+1), and Holm's smallest threshold is
# 0.05/65 = 0.00077: with the default 1000 resamples no setting could ever be called worse
# (every mark "="), so the summary's paired comparisons take PAIRED_RESAMPLES, enough for
# families up to 124 settings (B + 1 > 40 x family; metrics.bootstrap_resolution, in the records).
PAIRED_RESAMPLES = 5_000
MULTIPLICITY = "Holm-adjusted p < 0.05 over each model's settings"


def _marks(comparison: dict) -> tuple[str, str]:
    """(vs best, vs baseline) marks of one setting from its recorded paired comparisons."""
    from rwkv_eval.analyses.paired import BETTER, WORSE

    best = comparison.get("vs_best", {})
    mark_best = "" if "is_best" not in best else "*" if best["is_best"] else (
        " " if best["significantly_worse"] else "=")
    base = comparison.get("vs_baseline")
    mark_base = "" if base is None else {BETTER: "+", WORSE: "-"}.get(base["verdict"], "~")
    return mark_best, mark_base


def _cell(record: dict | None, comparison: dict) -> str:
    if record is None:
        return "-"
    if record["spearman"] is None:
        return "undefined"
    mark_best, mark_base = _marks(comparison)
    text = f"{record['spearman']:.4f}{mark_best or ' '}"
    if "vs_baseline" in comparison:
        text += f" {comparison['vs_baseline']['delta_spearman']:+.3f}{mark_base}"
    return text


def _verdict_lines(records: dict, paired: dict) -> list[str]:
    """The best setting with its CI, those not significantly worse, and those that beat the baseline."""
    from rwkv_eval.encoder import layer_id

    if not paired:
        return []
    name = lambda s: f"{layer_id(s[0])}/{s[1]}"  # noqa: E731
    marks = {s: _marks(c) for s, c in paired.items()}
    best = next((s for s, (b, _) in marks.items() if b == "*"), None)
    if best is None:
        return ["no setting has a defined Spearman"]
    r, c = records[best], paired[best]
    lo, hi = r["spearman_ci95"]
    ci = f"[{lo:.3f}, {hi:.3f}]" if lo is not None else "[no CI]"
    line = f"best {name(best)}: ρ {r['spearman']:.4f} {ci}"
    if base := c.get("vs_baseline"):
        dlo, dhi = base["delta_ci95"]
        line += (f"; vs {base['model']} {layer_id(base['layer'])}/{base['pooling']}: Δρ "
                 f"{base['delta_spearman']:+.4f} [{dlo:+.3f}, {dhi:+.3f}], {base['verdict']}")
    same = [name(s) for s, (b, _) in marks.items() if b == "="]
    out = [line, f"not significantly worse than the best ({len(same)} of {len(marks) - 1}): "
           + (", ".join(same) or "none")]
    if any(b for _, b in marks.values()):
        better = [name(s) for s, (_, b) in marks.items() if b == "+"]
        out.append(f"better than {BASELINE_MODEL} ({len(better)} of {len(marks)}): " + (", ".join(better) or "none"))
    return [wrapped for line in out for wrapped in textwrap.wrap(line, 116, subsequent_indent="    ")]


def _cost_lines(tr, ctx: RunContext, models: dict) -> None:
    """Time per pair and peak memory per model, from the timed cases' extra_info (absent under
    --benchmark-disable, which times nothing into pytest-benchmark)."""
    session = getattr(ctx.config, "_benchmarksession", None)
    infos = [b.extra_info for b in getattr(session, "benchmarks", ())
             if b.extra_info.get("model_key") in models and "seconds_per_pair" in b.extra_info]
    if not infos:
        return
    tr.line("")
    tr.line("cost per model (a timed batch of 32 sentences per layer x pooling case; peak memory of one such "
            "call, weights included):")
    for key in models:
        mine = [i for i in infos if i["model_key"] == key]
        if not mine:
            continue
        ms = sorted(1e3 * i["seconds_per_pair"] for i in mine)
        peaks = [i["peak_memory_mb"] for i in mine if i.get("peak_memory_mb") is not None]
        memory = f"peak {max(peaks):.0f} MB" if peaks else "peak not measured"
        tr.line(f"  {key:24s} {ms[0]:.2f}-{ms[-1]:.2f} ms per pair (median {ms[len(ms) // 2]:.2f}), {memory} "
                f"(weights {mine[0].get('model_weights_mb', 0):.1f} MB)")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    ctx = getattr(config, "_rwkv_run", None)
    if ctx is None:
        return
    spearman_matrix_summary(terminalreporter, ctx)
    if ctx.gates:
        gate_summary(terminalreporter, ctx)
    for note in ctx.profile.notes:
        terminalreporter.line(f"note: {note}")


# ---------------------------------------------------------------- accuracy gates (rwkv_eval.suite.gates)


def load_references(config: pytest.Config, profile_file: str | None = None) -> tuple[dict, list[str]]:
    """The references of this run: --accuracy-baseline, then the --benchmark-storage history
    (when the storage is given on the command line), then the --thresholds file. A missing or
    malformed file is a usage error: a gate that silently turned off would pass everything."""
    from rwkv_eval.suite.gates import history_references, load_references_file, load_run_references, merge

    layers, sources = [], []
    try:
        if baseline := config.getoption("--accuracy-baseline"):
            layers.append(load_run_references(baseline))
            sources.append(f"baseline run {baseline}")
        if any(a.startswith("--benchmark-storage") for a in config.invocation_params.args):
            storage = config.getoption("benchmark_storage")
            layers.append(history_references(storage))
            sources.append(f"history {storage} ({len(layers[-1])} references)")
        # the profile's [reference] file, unless --thresholds is given; else the checkout's file.
        # Outside a checkout (no rootdir/benchmarks/thresholds.json) there is none: every gated
        # case then lacks a reference and fails unless --accept-new-cases, so nothing passes silently.
        path = config.getoption("--thresholds") or profile_file
        default = config.rootpath / DEFAULT_THRESHOLDS
        if path is None and not default.is_file():
            sources.append(f"no references file ({default} absent)")
        else:
            path = path or str(default)
            layers.append(load_references_file(path))
            sources.append(f"references file {path}")
    except ValueError as e:
        raise pytest.UsageError(str(e)) from e
    return merge(*layers), sources


def pytest_collection(session: pytest.Session) -> None:
    """Resolve the run (options, profile, references) before any module is collected, so a
    bad option or a profile that cannot run here is one clean usage error, not a collection
    traceback."""
    bench = session.config.rootpath / "benchmarks"
    for arg in session.config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == bench or bench in path.parents or path in bench.parents:
            get_run(session.config)
            return


def gate_summary(tr, ctx: RunContext) -> None:
    from rwkv_eval.suite.gates import summary_lines

    tr.section(f"rwkv-eval Spearman gates (profile {ctx.profile_name})")
    lines = summary_lines(ctx.gates)
    tr.line(lines[0] + f"  [references: {'; '.join(ctx.reference_sources)}]"
            + ("  [--accept-new-cases]" if ctx.accept_new_cases else ""))
    for line in lines[1:]:
        tr.line(line)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Record how the accuracy gates were set up: which references, whether new cases were accepted."""
    add_shard_header(config, output_json)
    ctx = getattr(config, "_rwkv_run", None)
    if ctx is not None:
        from rwkv_eval.suite.gates import tolerance_for

        output_json["rwkv_eval_gates"] = {"accept_new_cases": ctx.accept_new_cases,
                                          "reference_sources": ctx.reference_sources,
                                          "default_tolerance": tolerance_for(ctx.device, ctx.dtype)}
        output_json["rwkv_eval_run"] = run_metadata(config, ctx)


def add_cache_options(g) -> None:
    """The embedding cache of the accuracy pass (rwkv_eval.cache); timed benchmarks never read it."""
    g.addoption("--no-cache", action="store_true", help="accuracy: encode everything, no embedding cache")
    g.addoption("--rwkv-cache-dir", default=None,
                help="embedding cache folder of the accuracy pass (default $RWKV_EVAL_CACHE_DIR, else "
                     "$XDG_CACHE_HOME/rwkv-eval/embeddings, else ~/.cache/rwkv-eval/embeddings)")


def embedding_cache(config: pytest.Config):
    """The run's embedding cache (None with --no-cache), made once; its folder is read here, at the edge."""
    if not hasattr(config, "_rwkv_embedding_cache"):
        from rwkv_eval.cache import EmbeddingCache, default_cache_dir

        root = (config.getoption("--rwkv-cache-dir") or os.environ.get("RWKV_EVAL_CACHE_DIR")
                or default_cache_dir(os.environ.get("XDG_CACHE_HOME"), Path.home()))
        if config.getoption("--no-cache") and config.getoption("--rwkv-cache-dir"):
            raise pytest.UsageError("--no-cache and --rwkv-cache-dir contradict each other; give one of them")
        try:
            config._rwkv_embedding_cache = None if config.getoption("--no-cache") else EmbeddingCache(root)
        except ValueError as e:
            raise pytest.UsageError(str(e)) from e
    return config._rwkv_embedding_cache


# ---------------------------------------------------------------- option checks, before collection

SINGLE_VALUED = ("--rwkv-profile", "--device", "--dtype", "--data-dir", "--thresholds", "--accuracy-baseline",
                 "--length-shapes", "--layers", "--pooling", "--template", "--rwkv-shard")
LENGTH_SHAPES = ("small", "real")  # benchmarks/test_length_scaling.py's shape sets


def check_options(config: pytest.Config) -> None:
    """Every path and value option of the suite, checked once, before anything is collected:
    a usage error in one line, never a note or a silently smaller run (a --data-dir typo
    used to drop every dataset and model under it with notes only). The profile, --layers
    and --pooling syntax and --device/--dtype are checked where they are read (build_profile,
    RunContext); the models and their depths by check_models."""
    from rwkv_eval.records import check_input_file

    args = config.invocation_params.args
    for option in SINGLE_VALUED:
        given = [a for a in args if a == option or str(a).startswith(option + "=")]
        if len(given) > 1:
            raise pytest.UsageError(f"{option} given {len(given)} times; it takes one value: give it once")
    for option, env in (("--data-dir", None), (None, DATA_ENV)):
        root = config.getoption(option) if option else None if config.getoption("--data-dir") else os.environ.get(env)
        name = option or f"${env}"
        if root and not Path(root).is_dir():
            state = "is not a folder" if Path(root).exists() else "does not exist"
            raise pytest.UsageError(f"{name} {root} {state}; give the data root (the folder holding mrpc/, stsb/, "
                                    f"sick/, sts12-16/, rwkv-tiny/) or leave it out")
    for option, what, expected in (
            ("--thresholds", "references file", "a references file (python -m rwkv_eval.suite.thresholds RUN.json)"),
            ("--accuracy-baseline", "baseline run", "a JSON of `pytest benchmarks --benchmark-json`")):
        if path := config.getoption(option):
            try:
                check_input_file(path, f"{option}: {what} {path}", f"give {expected}")
            except (ValueError, OSError) as e:
                raise pytest.UsageError(str(e)) from None
    if (shapes := config.getoption("--length-shapes")) not in LENGTH_SHAPES:
        raise pytest.UsageError(f"--length-shapes {shapes}: expected one of {', '.join(LENGTH_SHAPES)}")


def check_models(config: pytest.Config, profile) -> dict:
    """Each model and dataset of the profile against what it must be, before collection: a
    model file readable (a truncated .pth, a FIFO), its layers within its depth (read cheaply:
    models.load.model_layers; a subject model whose depth only loading tells is loaded at
    collection when --layers names its layers: None in the result), a hub model or dataset not
    cached here reachable. --layers/--pooling/--template given to a profile without a model they
    apply to is an error, not ignored. Returns {model key: its resolved layers, or None}."""
    from rwkv_eval.encoder import parse_layers
    from rwkv_eval.models.checkpoint import hub_error
    from rwkv_eval.models.load import model_layers

    given = [o for o in ("--layers", "--pooling", "--template") if config.getoption(o) is not None]
    if given and not any(m.subject for m in profile.models):
        raise pytest.UsageError(f"{'/'.join(given)} apply to the subject models of a profile, and profile "
                                f"{profile.name} has none: add --model SPEC, or edit the profile's layers/poolings")
    out = {}
    for m in profile.models:
        try:
            available = model_layers(m.spec)
            if available is None and m.spec.count("/") == 1 and not Path(m.spec).expanduser().exists() \
                    and (problem := _uncached_hub_problem(m.spec, m.revision)):
                raise ValueError(problem)
            if available is not None:
                out[m.key] = parse_layers(m.layers, available)
            elif m.subject and config.getoption("--layers") is not None:
                out[m.key] = None  # only loading tells its depth: shard_models loads it at collection
        except (ValueError, OSError) as e:
            raise pytest.UsageError(f"model {m.key} ({m.spec}): {' '.join(str(e).split())}") from None
    if hub_access()["hub_datasets"]:  # a dataset not under the data root comes from the hub: reachable?
        from rwkv_eval.datasets import get, load_pairs

        for d in profile.datasets:
            spec = get(d.name)
            if spec.shipped or spec.hub is None:
                continue
            try:
                load_pairs(d.name, d.split, profile.data_dir, allow_hub=False)
            except FileNotFoundError:
                if problem := hub_error(spec.hub.id, "dataset"):
                    raise pytest.UsageError(f"dataset {d.key}: not under the data root "
                                            f"({profile.data_dir or 'unset'}), and {problem}") from None
    return out


def _uncached_hub_problem(spec: str, revision: str | None) -> str | None:
    """Why a hub model that is not in the local cache cannot be fetched, or None."""
    from rwkv_eval.models.checkpoint import hub_error

    try:
        from huggingface_hub import snapshot_download

        snapshot_download(spec, revision=revision, local_files_only=True)
        return None
    except Exception:  # noqa: BLE001 - not cached (or huggingface_hub missing: the loader says so)
        return hub_error(spec)


def run_metadata(config: pytest.Config, ctx: RunContext) -> dict:
    """What the report needs beyond the benchmarks: the profile's models (key -> spec, revision),
    its notes (optional models and datasets absent here are skipped with one) and every test
    pytest skipped, with its reason; a run that left things out says so in its report."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    skipped = []
    for rep in (reporter.stats.get("skipped", []) if reporter is not None else []):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr or "")
        skipped.append({"test": rep.nodeid, "reason": reason.removeprefix("Skipped: ")})
    return {"profile": ctx.profile_name, "profile_source": str(ctx.profile.source),
            "models": [{"key": m.key, "spec": m.spec, "revision": m.revision, "trained": m.trained}
                       for m in shard_models(ctx)],
            "notes": list(ctx.profile.notes), "skipped_tests": skipped}
