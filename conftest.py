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
import statistics
import time
import tracemalloc
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
DEFAULT_THRESHOLDS = ROOT / "benchmarks" / "thresholds.json"
ACCURACY_BATCH = 64  # sentences per forward pass when scoring a whole dataset (recorded)
BASELINE_MODEL, BASELINE_SETTING = "glove-6b-50d", (0, "mean")  # the "vs GloVe-50d" of paired comparisons


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("rwkv-eval")
    g.addoption("--rwkv-profile", default="smoke", help="smoke (default) | paper | sts | ood")
    g.addoption("--device", default="auto", help="auto | cuda | cpu")
    g.addoption("--dtype", default=None, help="float32 | float16 | bfloat16 (default: float32 on CPU, float16 on CUDA)")
    g.addoption("--model", default=None, help="RWKV model (path or hub id) replacing the profile's default")
    g.addoption("--data-dir", default=None, help="data root (mrpc/, stsb/, sick/, sts12-16/); default $RWKV_EVAL_DATA")
    g.addoption("--thresholds", default=str(DEFAULT_THRESHOLDS),
                help="committed accuracy references file (default benchmarks/thresholds.json)")
    g.addoption("--accuracy-baseline", default=None, metavar="RUN.json",
                help="pytest-benchmark JSON of a run whose Spearmans are the references (before history and file)")
    g.addoption("--accept-new-cases", action="store_true",
                help="cases without a reference pass and are recorded as new (seeds a history); default: they fail")


class RunContext:
    """Session state of a benchmark run: options, profile, and the caches."""

    def __init__(self, config: pytest.Config):
        import torch

        from rwkv_eval.profiles import AssetMissing, build_profile

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
                                         data_dir=config.getoption("--data-dir"))
        except (AssetMissing, ValueError) as e:
            raise pytest.UsageError(str(e)) from e
        self.references, self.reference_sources = load_references(config)
        self.accept_new_cases: bool = config.getoption("--accept-new-cases")
        self.gates: list = []  # rwkv_eval.gates.Verdict per gated number, in run order
        self._evaluations: dict = {}
        self._paired: dict = {}
        self._baseline_sets: dict = {}
        self._encoders: dict = {}
        self._pairs: dict = {}
        self._accuracy: dict = {}

    def encoder(self, case):
        if case.key not in self._encoders:
            import torch

            from rwkv_eval.models.load import load_encoder

            self._encoders[case.key] = load_encoder(case.spec, device=self.device, dtype=getattr(torch, self.dtype),
                                                    seed=0)
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
            from rwkv_eval.evaluation import evaluate_pairs

            pairs = self.pairs(data_case)
            aggregate = data_case.name if isinstance(pairs, list) else None
            ev = evaluate_pairs(self.encoder(model_case), pairs, model_case.layers, model_case.poolings,
                                batch_size=ACCURACY_BATCH, aggregate=aggregate)
            self._evaluations[key] = ev
            self._accuracy[key] = {(r["dataset"], r["layer"], r["pooling"]): r for r in ev.records}
        return self._accuracy[key]

    def paired(self, model_case, data_case, dataset: str) -> dict:
        """{(layer, pooling): {"vs_best", "vs_baseline"}} for a trained model on one pair set
        (paired bootstrap on the similarities of the accuracy pass; {} for random-init models)."""
        key = (model_case.key, data_case.key, dataset)
        if key not in self._paired:
            from rwkv_eval.paired import PairedSet, compare

            self.accuracy(model_case, data_case)
            if not model_case.trained:
                self._paired[key] = {}
                return self._paired[key]
            mine = PairedSet(self._evaluations[(model_case.key, data_case.key)], dataset)
            base_case = next((m for m in self.profile.models if m.key == BASELINE_MODEL), None)
            base = None
            if base_case is not None and base_case.key != model_case.key:
                self.accuracy(base_case, data_case)
                base = self._baseline_sets.get((data_case.key, dataset))
                if base is None:
                    base = PairedSet(self._evaluations[(base_case.key, data_case.key)], dataset)
                    self._baseline_sets[(data_case.key, dataset)] = base
            self._paired[key] = compare(mine, base, BASELINE_SETTING, BASELINE_MODEL)
        return self._paired[key]


@pytest.fixture(scope="session")
def run(pytestconfig: pytest.Config) -> RunContext:
    return get_run(pytestconfig)


def get_run(config: pytest.Config) -> RunContext:
    """The RunContext at collection time (pytest_generate_tests has no fixtures)."""
    if getattr(config, "_rwkv_run", None) is None:
        config._rwkv_run = RunContext(config)
    return config._rwkv_run


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `case` over the profile's model x dataset x layer x pooling matrix,
    with readable ids: rwkv6-finch-1b6/L05/mean/mrpc-validation."""
    if "case" not in metafunc.fixturenames:
        return
    from rwkv_eval.profiles import layer_id

    run = get_run(metafunc.config)
    cases, ids = [], []
    for m in run.profile.models:
        for d in run.profile.datasets:
            for layer in m.layers:
                for pooling in m.poolings:
                    cases.append((m, d, layer, pooling))
                    ids.append(f"{m.key}/{layer_id(layer)}/{pooling}/{d.key}")
    metafunc.parametrize("case", cases, ids=ids)


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


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    ctx = getattr(config, "_rwkv_run", None)
    if ctx is None:
        return
    if ctx.gates:
        gate_summary(terminalreporter, ctx)
    for note in ctx.profile.notes:
        terminalreporter.line(f"note: {note}")


# ---------------------------------------------------------------- accuracy gates (rwkv_eval.gates)


def load_references(config: pytest.Config) -> tuple[dict, list[str]]:
    """The references of this run: --accuracy-baseline, then the --benchmark-storage history
    (when the storage is given on the command line), then the --thresholds file. A missing or
    malformed file is a usage error: a gate that silently turned off would pass everything."""
    from rwkv_eval.gates import history_references, load_references_file, load_run_references, merge

    layers, sources = [], []
    try:
        if baseline := config.getoption("--accuracy-baseline"):
            layers.append(load_run_references(baseline))
            sources.append(f"baseline run {baseline}")
        if any(a.startswith("--benchmark-storage") for a in config.invocation_params.args):
            storage = config.getoption("benchmark_storage")
            layers.append(history_references(storage))
            sources.append(f"history {storage} ({len(layers[-1])} references)")
        path = config.getoption("--thresholds")
        layers.append(load_references_file(path))
        sources.append(f"references file {path}")
    except ValueError as e:
        raise pytest.UsageError(str(e)) from e
    return merge(*layers), sources


def pytest_collection(session: pytest.Session) -> None:
    """Resolve the run (options, profile, references) before any module is collected, so a
    bad option or a profile that cannot run here is one clean usage error, not a collection
    traceback."""
    bench = ROOT / "benchmarks"
    for arg in session.config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == bench or bench in path.parents or path in bench.parents:
            get_run(session.config)
            return


def gate_summary(tr, ctx: RunContext) -> None:
    from rwkv_eval.gates import summary_lines

    tr.section(f"rwkv-eval Spearman gates (profile {ctx.profile_name})")
    lines = summary_lines(ctx.gates)
    tr.line(lines[0] + f"  [references: {'; '.join(ctx.reference_sources)}]"
            + ("  [--accept-new-cases]" if ctx.accept_new_cases else ""))
    for line in lines[1:]:
        tr.line(line)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Record how the accuracy gates were set up: which references, whether new cases were accepted."""
    ctx = getattr(config, "_rwkv_run", None)
    if ctx is not None:
        from rwkv_eval.gates import tolerance_for

        output_json["rwkv_eval_gates"] = {"accept_new_cases": ctx.accept_new_cases,
                                          "reference_sources": ctx.reference_sources,
                                          "default_tolerance": tolerance_for(ctx.device, ctx.dtype)}
