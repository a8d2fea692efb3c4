"""Benchmark options and fixtures: profiles, CUDA-synchronised timing, peak memory, gates.

    pytest benchmarks --benchmark-json out.json                      # smoke profile
    pytest benchmarks --rwkv-profile paper --device cuda --benchmark-json out.json

Accuracy is computed once per (model, dataset) — one forward pass serves every layer
and pooling — and shared by the layer x pooling cases through a session cache; the
timed benchmarks time real work (encoding a fixed pre-tokenized batch up to the case's
layer), never a cache lookup.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
import tracemalloc
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
DEFAULT_THRESHOLDS = ROOT / "benchmarks" / "thresholds.json"
ACCURACY_BATCH = 64  # sentences per forward pass when scoring a whole dataset (recorded)


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("rwkv-eval")
    g.addoption("--rwkv-profile", default="smoke",
                help="smoke (default) | paper | sts | ood | sweep | path/to/profile.toml")
    g.addoption("--device", default="auto", help="auto | cuda | cpu")
    g.addoption("--dtype", default=None, help="float32 | float16 | bfloat16 (default: float32 on CPU, float16 on CUDA)")
    g.addoption("--model", action="append", default=None,
                help="model (path or hub id) replacing the profile's subject model; repeat for several")
    g.addoption("--data-dir", default=None, help="data root (mrpc/, stsb/, sick/, sts12-16/); default $RWKV_EVAL_DATA")
    g.addoption("--thresholds", default=str(DEFAULT_THRESHOLDS), help="Spearman floors file")
    add_grid_options(g)


def add_grid_options(g) -> None:
    """Quick overrides of the profile's grid, and the shard of it this run takes."""
    g.addoption("--layers", default=None,
                help="layers of the subject models: 1,3,5 | 0-23 | all | emb | final | 50%% (relative depth)")
    g.addoption("--pooling", default=None, help="poolings of the subject models: mean,max,... | all")
    g.addoption("--dataset", action="append", default=None,
                help="NAME[:SPLIT] replacing the profile's datasets; repeat for several (e.g. stsb:test)")
    g.addoption("--rwkv-shard", default=None,
                help="i/N: run the i-th of N disjoint slices of the grid (whole models); merge the JSONs "
                     "with python -m rwkv_eval.shards merge")


class RunContext:
    """Session state of a benchmark run: options, profile, and the caches."""

    def __init__(self, config: pytest.Config):
        import torch

        from rwkv_eval.profiles import AssetMissing, build_profile
        from rwkv_eval.shards import parse_shard

        self.config = config
        device = config.getoption("--device")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise pytest.UsageError(f"--device {device} requested but CUDA is not available on this machine")
        self.device = device
        dtype = config.getoption("--dtype") or ("float16" if device.startswith("cuda") else "float32")
        if dtype not in ("float32", "float16", "bfloat16"):
            raise pytest.UsageError(f"--dtype must be float32, float16 or bfloat16; got {dtype}")
        self.dtype = dtype
        self.profile_name = config.getoption("--rwkv-profile")
        try:
            self.profile = build_profile(self.profile_name, model=config.getoption("--model"),
                                         data_dir=config.getoption("--data-dir"), layers=config.getoption("--layers"),
                                         poolings=config.getoption("--pooling"),
                                         datasets=config.getoption("--dataset") or ())
            self.shard = parse_shard(config.getoption("--rwkv-shard"))
        except (AssetMissing, ValueError) as e:
            raise pytest.UsageError(str(e)) from e
        self.profile_name = self.profile.name  # a .toml profile is named by its file (gate keys start with it)
        path = Path(config.getoption("--thresholds"))
        if self.profile.thresholds and config.getoption("--thresholds") == str(DEFAULT_THRESHOLDS):
            path = Path(self.profile.thresholds)  # the profile's [reference] floors, unless given on the command line
        self.thresholds_path = path
        self.floors: dict[str, float] = json.loads(path.read_text())["floors"] if path.is_file() else {}
        self.gates: list[tuple[str, str, float | None, float | None]] = []  # (case, status, measured, floor)
        self._encoders: dict = {}
        self._pairs: dict = {}
        self._accuracy: dict = {}

    def encoder(self, case):
        if case.key not in self._encoders:
            import torch

            from rwkv_eval.models.load import load_encoder

            self._encoders[case.key] = load_encoder(case.spec, device=self.device, dtype=getattr(torch, self.dtype),
                                                    seed=0, revision=case.revision)
        return self._encoders[case.key]

    def pairs(self, case):
        if case.key not in self._pairs:
            from rwkv_eval.datasets import load_pairs, load_sample

            self._pairs[case.key] = (load_sample() if case.name == "stsb-sample"
                                     else load_pairs(case.name, case.split, self.profile.data_dir))
        return self._pairs[case.key]

    def accuracy(self, model_case, data_case) -> dict:
        """{(dataset, layer, pooling): record}, computed once per (model, dataset)."""
        key = (model_case.key, data_case.key)
        if key not in self._accuracy:
            from rwkv_eval.evaluation import evaluate

            pairs = self.pairs(data_case)
            aggregate = data_case.name if isinstance(pairs, list) else None
            records = evaluate(self.encoder(model_case), pairs, model_case.layers, model_case.poolings,
                               batch_size=ACCURACY_BATCH, aggregate=aggregate)
            self._accuracy[key] = {(r["dataset"], r["layer"], r["pooling"]): r for r in records}
        return self._accuracy[key]


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
    from rwkv_eval.profiles import layer_id

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
        from rwkv_eval.shards import select_models

        models = []
        for m in select_models(run.profile.models, run.shard):
            layers = m.static_layers()
            if layers is None:
                try:
                    layers = parse_layers(m.layers, run.encoder(m).layers())
                except ValueError as e:
                    raise pytest.UsageError(f"model {m.key} ({m.spec}): {e}") from None
            models.append(replace(m, layers=layers))
        run._shard_models = tuple(models)
    return run._shard_models


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Tests outside the grid (throughput, machine limits) run in shard 1 only, so the
    merged shards hold each of them once."""
    run = getattr(config, "_rwkv_run", None)
    if run is None or run.shard is None or run.shard[0] == 1:
        return
    other = [item for item in items if "case" not in getattr(item, "fixturenames", ())]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if "case" in getattr(item, "fixturenames", ())]


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Mark the JSON with its profile and shard, so shards merge into one run (rwkv_eval.shards)."""
    run = getattr(config, "_rwkv_run", None)
    if run is not None:
        from rwkv_eval.shards import shard_header

        output_json["rwkv_shard"] = shard_header(run.profile, run.shard, [m.key for m in shard_models(run)])


def cuda_sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


@pytest.fixture
def timed(benchmark, run):
    """Time fn() with pytest-benchmark's pedantic mode, synchronising CUDA around each round
    so GPU work is inside the timed region; warm-up rounds absorb allocator and kernel
    set-up. Returns the median seconds of the timed rounds (also with
    --benchmark-disable, where pytest-benchmark keeps no stats)."""

    def go(fn, rounds: int = 3, warmup_rounds: int = 1) -> float:
        seconds: list[float] = []

        def target():
            cuda_sync(run.device)
            t0 = time.perf_counter()
            out = fn()
            cuda_sync(run.device)
            seconds.append(time.perf_counter() - t0)
            return out

        benchmark.pedantic(target, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)
        return statistics.median(seconds[-rounds:])

    return go


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


@pytest.fixture
def peak_memory(run):
    """Peak memory of one call of fn(), in a separate, untimed run.

    CUDA: torch.cuda.max_memory_allocated after reset_peak_memory_stats. CPU: the process
    RSS high-water mark (VmHWM, reset through /proc/self/clear_refs where the kernel
    allows it) above the RSS before the call — it sees torch's allocations — plus
    tracemalloc's peak of Python-level allocations (numpy arrays included).
    """

    def measure(fn) -> dict:
        import torch

        gc.collect()
        if run.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            return {"peak_memory_mb": peak / 2**20, "peak_memory_delta_mb": (peak - base) / 2**20,
                    "memory_kind": "cuda max_memory_allocated"}
        try:
            Path("/proc/self/clear_refs").write_text("5")
            resettable = True
        except OSError:
            resettable = False
        before = _rss_kib("VmRSS")
        tracemalloc.start()
        fn()
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        hwm = _rss_kib("VmHWM")
        return {"peak_memory_mb": hwm / 1024, "peak_memory_delta_mb": max(hwm - before, 0) / 1024 if resettable else None,
                "python_peak_mb": py_peak / 2**20,
                "memory_kind": "cpu VmHWM (reset per case)" if resettable else "cpu VmHWM (process lifetime)"}

    return measure


def pytest_benchmark_update_machine_info(config, machine_info):
    import torch

    machine_info["torch"] = torch.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        machine_info["cuda_device"] = torch.cuda.get_device_name()
        machine_info["cuda_version"] = torch.version.cuda


def spearman_matrix_summary(tr, ctx: RunContext) -> None:
    """Per model x dataset, Spearman by layer (rows) x pooling (columns), best marked:
    the answer a user runs the suite for, where they look (CIs are in the JSON)."""
    from rwkv_eval.profiles import layer_id

    models = {m.key: m for m in shard_models(ctx)}
    tables = [(models[mk], dk, acc) for (mk, dk), acc in getattr(ctx, "_accuracy", {}).items() if mk in models]
    if not tables:
        return
    tr.section(f"rwkv-eval Spearman, layer x pooling (profile {ctx.profile_name}; * = best, 95% CIs in the JSON)")
    for m, dk, acc in tables:
        main = [r for r in acc.values() if "/" not in r["dataset"] or r["dataset"].endswith("/all")]
        cell = {(r["layer"], r["pooling"]): r["spearman"] for r in main}
        n_pairs = max((r["n_pairs"] for r in main), default=0)
        defined = [v for v in cell.values() if v is not None]
        best = max(defined) if defined else None
        width = max(9, *(len(p) + 1 for p in m.poolings))
        tr.line(f"{m.key} on {dk} ({n_pairs} pairs){'' if m.trained else '  [random init: meaningless]'}")
        tr.line("  layer " + "".join(p.rjust(width) for p in m.poolings))
        for layer in m.layers:
            row = []
            for p in m.poolings:
                v = cell.get((layer, p))
                text = "-" if (layer, p) not in cell else "undefined" if v is None else f"{v:.4f}"
                row.append((text + ("*" if v is not None and v == best else " ")).rjust(width))
            tr.line(f"  {layer_id(layer):5s} " + "".join(row))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    ctx = getattr(config, "_rwkv_run", None)
    if ctx is not None:
        spearman_matrix_summary(terminalreporter, ctx)
    if ctx is None or not ctx.gates:
        return
    counts: dict[str, int] = {}
    for _, status, _, _ in ctx.gates:
        counts[status] = counts.get(status, 0) + 1
    tr = terminalreporter
    tr.section(f"rwkv-eval Spearman gates (profile {ctx.profile_name})")
    tr.line(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f"  [floors: {ctx.thresholds_path}]")
    for case, status, measured, floor in ctx.gates:
        if status != "pass":
            m = "undefined" if measured is None else f"{measured:.4f}"
            f = "-" if floor is None else f"{floor:.4f}"
            tr.line(f"  {status:9s} {case}  spearman={m} floor={f}")
    for note in ctx.profile.notes:
        tr.line(f"note: {note}")
