"""Benchmark options and fixtures: profiles, device-correct timing, each model's peak memory, gates.

    pytest benchmarks --benchmark-json out.json                      # smoke profile
    pytest benchmarks --rwkv-profile paper --device cuda --benchmark-json out.json

Accuracy is computed once per (model, dataset) — one forward pass serves every layer
and pooling — and shared by the layer x pooling cases through a session cache; the
timed benchmarks time real work (encoding a fixed pre-tokenized batch up to the case's
layer), never a cache lookup.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
DEFAULT_THRESHOLDS = ROOT / "benchmarks" / "thresholds.json"
ACCURACY_BATCH = 64  # sentences per forward pass when scoring a whole dataset (recorded)
MIN_TIME_S = 0.25  # timed rounds per case add up to at least this (3..50 rounds), see measure.plan_rounds


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("rwkv-eval")
    g.addoption("--rwkv-profile", default="smoke", help="smoke (default) | paper | sts | ood")
    g.addoption("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.addoption("--dtype", default=None, help="float32 | float16 | bfloat16 (default: float32 on CPU; on CUDA "
                                              "bfloat16 where native (sm_80+), else float16)")
    g.addoption("--model", default=None, help="RWKV model (path or hub id) replacing the profile's default")
    g.addoption("--data-dir", default=None, help="data root (mrpc/, stsb/, sick/, sts12-16/); default $RWKV_EVAL_DATA")
    g.addoption("--thresholds", default=str(DEFAULT_THRESHOLDS), help="Spearman floors file")


class RunContext:
    """Session state of a benchmark run: options, profile, and the caches."""

    def __init__(self, config: pytest.Config):
        from rwkv_eval.measure import default_dtype, resolve_device
        from rwkv_eval.profiles import AssetMissing, build_profile

        self.config = config
        try:
            self.device = resolve_device(config.getoption("--device"))
        except ValueError as e:
            raise pytest.UsageError(f"--device: {e}") from e
        dtype = config.getoption("--dtype")
        if dtype not in (None, "float32", "float16", "bfloat16"):
            raise pytest.UsageError(f"--dtype must be float32, float16 or bfloat16; got {dtype}")
        self.dtype = dtype or default_dtype(self.device)
        self.dtype_source = "--dtype" if dtype else f"default for {self.device}"
        self.profile_name = config.getoption("--rwkv-profile")
        try:
            self.profile = build_profile(self.profile_name, model=config.getoption("--model"),
                                         data_dir=config.getoption("--data-dir"))
        except (AssetMissing, ValueError) as e:
            raise pytest.UsageError(str(e)) from e
        path = Path(config.getoption("--thresholds"))
        self.thresholds_path = path
        self.floors: dict[str, float] = json.loads(path.read_text())["floors"] if path.is_file() else {}
        self.gates: list[tuple[str, str, float | None, float | None]] = []  # (case, status, measured, floor)
        self._encoders: dict = {}
        self._pairs: dict = {}
        self._accuracy: dict = {}

    def encoder(self, case):
        """The case's encoder; loading one releases the previous (one model resident at a time)."""
        if case.key not in self._encoders:
            import torch

            from rwkv_eval.measure import release
            from rwkv_eval.models.load import load_encoder

            self._encoders.clear()
            release(self.device)
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
def peak_memory():
    """peak_memory(fn, encoder): the peak memory of one call of fn() by `encoder`'s model,
    on the encoder's own device (GloVe: cpu in every profile), in a separate untimed run;
    see measure.peak_memory for the method, named in memory_kind."""
    from rwkv_eval.measure import peak_memory as measure_peak, weights_bytes

    def measure(fn, encoder) -> dict:
        return measure_peak(fn, str(encoder.device), weights_bytes(encoder))

    return measure


def pytest_benchmark_update_machine_info(config, machine_info):
    import torch

    from rwkv_eval.measure import device_info

    machine_info["torch"] = torch.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
    # from the options, not the RunContext: --benchmark-compare asks before collection, and
    # a machine_info that differs from the saved run's makes pytest-benchmark warn
    from rwkv_eval.measure import default_dtype, resolve_device

    try:
        device = resolve_device(config.getoption("--device"))
    except ValueError:
        return  # RunContext reports the bad option as a usage error
    machine_info.update(device_info(device))
    machine_info["dtype"] = config.getoption("--dtype") or default_dtype(device)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    ctx = getattr(config, "_rwkv_run", None)
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
