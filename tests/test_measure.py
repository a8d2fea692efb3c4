"""rwkv_eval.measure without a GPU: a fake torch.cuda records every call, so the order
(sync -> start -> work -> stop -> sync) and the device each call names are checked; the
CPU side (memory of one call, rounds sized by time, matmul rate) runs for real."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rwkv_eval import measure
from rwkv_eval.models.random_init import random_rwkv_encoder


class FakeCuda:
    """Stands in for torch.cuda: two devices (current: `current`, 0 by default), every call
    logged as (name, device)."""

    def __init__(self, monkeypatch, capability=(8, 0), n_devices=2, current=0):
        self.log: list[tuple] = []
        self.capability, self.n_devices, self.current = capability, n_devices, current
        self.allocated, self.peak = 100 * measure.MB, 0
        fake = self

        class Stream:
            def __init__(self, device):
                self.device = device

        class Event:
            def __init__(self, enable_timing=False):
                assert enable_timing
                self.name = f"event{sum(1 for e in fake.log if e[0] == 'Event')}"
                fake.log.append(("Event", None))

            def record(self, stream=None):
                fake.log.append((f"record {self.name}", None if stream is None else stream.device))

            def elapsed_time(self, end):
                fake.log.append(("elapsed_time", None))
                return 250.0  # ms

        for name, fn in {
            "is_available": lambda: True,
            "device_count": lambda: self.n_devices,
            "current_device": lambda: self.current,
            "synchronize": lambda device=None: self.log.append(("synchronize", device)),
            "current_stream": lambda device=None: Stream(device),
            "Event": Event,
            "empty_cache": lambda: self.log.append(("empty_cache", None)),
            "reset_peak_memory_stats": lambda device=None: self.log.append(("reset_peak_memory_stats", device)),
            "memory_allocated": lambda device=None: self.log.append(("memory_allocated", device)) or self.allocated,
            "max_memory_allocated": lambda device=None: self.log.append(("max_memory_allocated", device)) or self.peak,
            "get_device_capability": lambda device=None: self.capability,
        }.items():
            monkeypatch.setattr(torch.cuda, name, fn)

    def work(self):
        self.log.append(("work", None))
        self.peak = self.allocated + 40 * measure.MB
        return "out"


@pytest.fixture
def fake_cuda(monkeypatch):
    return FakeCuda(monkeypatch)


@pytest.mark.parametrize("device, index", [("cuda:1", 1), ("cuda:0", 0), ("cuda", 0)])
def test_timer_syncs_starts_works_stops_syncs_on_the_run_device(fake_cuda, device, index):
    timer = measure.DeviceTimer(device)
    assert timer(fake_cuda.work) == "out"
    calls = [c for c in fake_cuda.log if c[0] != "Event"]
    assert calls == [("synchronize", index), ("record event0", index), ("work", None), ("record event1", index),
                     ("synchronize", index), ("elapsed_time", None)]
    summary = timer.summary(1)
    assert summary["cuda_event_median_s"] == summary["seconds"] == 0.25
    assert summary["wall_median_s"] >= 0 and "CUDA-event" in summary["timing"]


def test_peak_memory_resets_and_reads_the_run_device_with_only_the_work_in_between(fake_cuda):
    out = measure.peak_memory(fake_cuda.work, "cuda:1", weights=60 * measure.MB)
    assert fake_cuda.log == [("empty_cache", None), ("synchronize", 1), ("reset_peak_memory_stats", 1),
                             ("memory_allocated", 1), ("work", None), ("synchronize", 1), ("max_memory_allocated", 1)]
    assert out["peak_memory_mb"] == 140 and out["peak_memory_delta_mb"] == 40 and out["model_weights_mb"] == 60
    assert "cuda:1" in out["memory_kind"] and "only this model resident" in out["memory_kind"]


def test_release_empties_the_cache_on_cuda_only(fake_cuda):
    measure.release("cpu")
    assert fake_cuda.log == []
    measure.release("cuda:1")
    assert fake_cuda.log == [("empty_cache", None)]


@pytest.mark.parametrize("capability, dtype", [((7, 5), "float16"), ((7, 0), "float16"), ((8, 0), "bfloat16"),
                                               ((9, 0), "bfloat16")])
def test_default_dtype_by_device_capability(monkeypatch, capability, dtype):
    FakeCuda(monkeypatch, capability=capability)
    assert measure.default_dtype("cuda:1") == dtype
    assert measure.default_dtype("cpu") == "float32"


@pytest.mark.parametrize("current", [0, 1])
def test_device_resolution_names_the_current_cuda_device(monkeypatch, current):
    """"cuda" and "auto" mean torch's current CUDA device (set_device / CUDA_VISIBLE_DEVICES),
    always recorded with its index; with the current device set to 1, a resolver that took
    "cuda" for cuda:0 would name the wrong chip in every record."""
    FakeCuda(monkeypatch, current=current)
    assert measure.resolve_device("auto") == f"cuda:{current}"
    assert measure.resolve_device("cuda") == f"cuda:{current}"
    assert measure.resolve_device("cuda:1") == "cuda:1" and measure.resolve_device("cuda:0") == "cuda:0"
    assert measure.resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"^--device cuda:2 does not exist: this machine has 2 CUDA device\(s\), "
                                         r"cuda:0..cuda:1$"):
        measure.resolve_device("cuda:2", "--device")


@pytest.mark.parametrize("device, message", [("gpu", "device gpu is not a device; use cpu, cuda"),
                                             ("cuda:x", "device cuda:x is not a device; use cpu, cuda"),
                                             ("mps", "device mps is not a device this suite runs on; use cpu, cuda")])
def test_a_device_this_suite_does_not_run_on_is_named(fake_cuda, device, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        measure.resolve_device(device)


def test_cuda_requested_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=f"device {device} requested but CUDA is not available on this machine; "
                                             "use cpu"):
            measure.resolve_device(device)
    assert measure.resolve_device("auto") == "cpu"


@pytest.mark.parametrize("name, dtype, peak", [("NVIDIA H100 80GB HBM3", "bfloat16", 989.0),
                                               ("NVIDIA H100 PCIe", "float16", 756.0),
                                               ("Tesla T4", "float16", 65.0), ("Tesla T4", "bfloat16", None),
                                               ("NVIDIA A100-SXM4-40GB", "bfloat16", 312.0),
                                               ("NVIDIA H200", "bfloat16", 989.0), ("Some GPU", "float16", None)])
def test_device_peak_table(name, dtype, peak):
    assert measure.device_peak_tflops(name, dtype) == peak


@pytest.mark.parametrize("first, rounds", [(0.001, 250 // 5), (0.01, 25), (0.1, 3), (5.0, 3), (0.0, 50)])
def test_rounds_are_sized_by_time(first, rounds):
    assert measure.plan_rounds(first, min_time=0.25, min_rounds=3, max_rounds=50) == rounds


def test_time_rounds_warms_up_then_times_the_planned_rounds():
    """Also what `timed` runs under --benchmark-disable: warm-up and rounds, not one cold call."""
    calls = []
    stats = measure.time_rounds(lambda: calls.append(1), "cpu", min_time=0.0, min_rounds=4, max_rounds=9,
                                warmup_rounds=2)
    assert len(calls) == 2 + 4 and stats["timed_rounds"] == 4 and stats["warmup_rounds"] == 2
    seen = []

    def runner(target, n):  # pytest-benchmark's pedantic in the plugin
        seen.append(n)
        for _ in range(n):
            target()

    stats = measure.time_rounds(lambda: None, "cpu", min_time=0.0, min_rounds=3, runner=runner)
    assert seen == [3] and stats["timed_rounds"] == 3


def test_cpu_peak_memory_sees_torch_allocations():
    n = 30_000_000  # 114 MiB of float32
    out = measure.peak_memory(lambda: torch.ones(n).sum(), "cpu", weights=10 * measure.MB)
    assert 100 < out["peak_memory_delta_mb"] < 200, out
    assert out["peak_memory_mb"] == pytest.approx(out["peak_memory_delta_mb"] + 10)
    assert out["process_peak_mb"] > out["peak_memory_delta_mb"] and out["memory_kind"].startswith("cpu: model weights")


def test_weights_bytes_counts_each_tensor_once_in_its_own_dtype():
    enc32 = random_rwkv_encoder("tiny", dtype=torch.float32)
    enc16 = random_rwkv_encoder("tiny", dtype=torch.float16)
    n = sum(p.numel() for p in enc32.model.parameters())
    assert measure.weights_bytes(enc32) == 4 * n
    half = sum(m.weight.numel() for m in enc16.model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)))
    assert measure.weights_bytes(enc16) == 2 * half + 4 * (n - half)

    class Table:  # GloVe keeps a tensor, no module
        def __init__(self):
            self.table = torch.zeros(1000, 50)
            self.same = self.table

    assert measure.weights_bytes(Table()) == 1000 * 50 * 4


def test_matmul_rate_on_cpu():
    rate = measure.matmul_rate("cpu", torch.float32, 128, min_time=0.01)
    assert rate["flops"] > 1e6 and rate["matmuls_per_round"] >= 1 and rate["timed_rounds"] >= 3
    assert rate["tflops"] == pytest.approx(rate["flops"] / 1e12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_cuda_timing_and_memory_on_every_device():
    """Without fakes, on each device: the timer waits for the device's kernels, and the
    peak is read on the device that allocated, not on cuda:0."""
    for i in range(torch.cuda.device_count()):
        device = f"cuda:{i}"
        timer = measure.DeviceTimer(device)
        timer(lambda: torch.cuda._sleep(50_000_000))  # ~25-50 ms of GPU time, returns at once on the host
        assert timer.cuda_event[-1] > 0.005 and timer.wall[-1] > 0.005, (device, timer)
        out = measure.peak_memory(lambda: torch.empty(256 * measure.MB, dtype=torch.uint8, device=device), device, 0)
        assert out["peak_memory_delta_mb"] >= 256, (device, out)


GPU_CHECK = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def test_gpu_check_script_parses():
    subprocess.run(["bash", "-n", str(GPU_CHECK)], check=True)


def test_gpu_check_dry_run_lists_its_steps(tmp_path):
    res = subprocess.run([str(GPU_CHECK), "--dry-run", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    steps = res.stdout.splitlines()[1:]
    assert "-m pytest tests -m gpu" in steps[0]
    for dtype, step in zip(("bfloat16", "float16"), steps[1:3]):
        assert "benchmarks/test_throughput.py" in step and f"--device cuda:0 --dtype {dtype}" in step
        assert "--rwkv-profile perf" in step  # the cost benchmarks are the perf profile's (smoke deselects them)
        assert f"--benchmark-json {tmp_path}/o/throughput-{dtype}.json" in step
    assert "scripts/gpu_summary.py" in steps[3]
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_check_refuses_clearly_without_cuda(tmp_path):
    res = subprocess.run([str(GPU_CHECK), "--out", str(tmp_path / "o")], capture_output=True, text=True,
                         env={**os.environ, "PYTHON": sys.executable})
    assert res.returncode == 2
    assert res.stderr.startswith("gpu_check: no CUDA device visible to torch (torch ")
    assert "run it on a CUDA machine" in res.stderr and not (tmp_path / "o").exists()


def test_gpu_check_unknown_argument():
    res = subprocess.run([str(GPU_CHECK), "--bogus"], capture_output=True, text=True)
    assert res.returncode == 2 and "unknown argument '--bogus'" in res.stderr


def test_gpu_summary_prints_fraction_of_peak(tmp_path):
    bench = {"machine_info": {"cuda_device": "NVIDIA H100 80GB HBM3", "device": "cuda:0", "cuda_capability": "9.0",
                              "dtype": "bfloat16"},
             "benchmarks": [{"name": "test_matmul_limit", "extra_info": {
                 "n": 8192, "matmuls_per_round": 20, "tflops": 700.0, "device_peak_tflops": 989.0,
                 "fraction_of_device_peak": 700 / 989}}]}
    (tmp_path / "t.json").write_text(json.dumps(bench))
    res = subprocess.run([sys.executable, str(GPU_CHECK.parent / "gpu_summary.py"), str(tmp_path / "t.json")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "matmul 8192^3 x20/round: 700 TFLOP/s of 989 peak = 0.71" in res.stdout


GATE_WORK = '''
import os, time

def test_work(timed):
    timed(lambda: time.sleep(0.01 * float(os.environ.get("GATE_SLOWDOWN", "1"))))
'''


def nightly_time_gate() -> str:
    """The --benchmark-compare-fail of the nightly GPU workflow: the gate this test checks."""
    text = (Path(__file__).resolve().parents[1] / ".github" / "workflows" / "nightly-gpu.yml").read_text()
    match = re.search(r"^[^#\n]*--benchmark-compare-fail=(\S+)", text, re.MULTILINE)  # the command, not a comment
    assert match, "nightly-gpu.yml has no --benchmark-compare-fail"
    return match[1]


def test_time_gate_passes_an_unchanged_tree_twice_and_fails_a_2x_slowdown(tmp_path):
    """The nightly's time gate on the plugin's `timed` (rounds sized by time, median): two
    unchanged runs pass against the saved one, a 2x slower one fails, with one line per
    failing case. The work is a sleep, so the host's load cannot make this test flap. It runs
    outside the checkout (--rootdir tmp): the plugin comes from the package's entry point."""
    gate = nightly_time_gate()
    assert gate.startswith("median:"), f"the time gate should use the median (robust to outliers); got {gate}"
    (tmp_path / "test_gate_work.py").write_text(GATE_WORK)
    root = Path(__file__).resolve().parents[1]

    def bench(slowdown: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "pytest", str(tmp_path / "test_gate_work.py"), "-q",
               "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "--benchmark-storage",
               f"file://{tmp_path}/.benchmarks", "--device", "cpu", *args]
        env = {**os.environ, "PYTHONPATH": str(root), "GATE_SLOWDOWN": slowdown}
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)

    saved = bench("1", "--benchmark-autosave")
    assert saved.returncode == 0, saved.stdout[-2000:] + saved.stderr[-2000:]
    for _ in range(2):
        same = bench("1", "--benchmark-compare=0001", f"--benchmark-compare-fail={gate}")
        assert same.returncode == 0, same.stdout[-3000:]
        assert "machine_info is different" not in same.stdout + same.stderr
    slow = bench("2", "--benchmark-compare=0001", f"--benchmark-compare-fail={gate}")
    assert slow.returncode != 0
    failing = [line.strip() for line in (slow.stdout + slow.stderr).splitlines()
               if "has failed PercentageRegressionCheck" in line]
    assert len(failing) == 1 and failing[0].startswith("test_work (0001_") and "Field 'median'" in failing[0]


def test_suite_records_the_device_and_dtype_that_computed_each_case(tmp_path):
    """GloVe runs in float32 on the CPU whatever the run's --dtype: a bfloat16 run's GloVe
    records say so, with its own weights (the 400k x 50 table) and memory method."""
    out = tmp_path / "out.json"
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "pytest", str(root / "benchmarks" / "test_embeddings.py"), "-q", "-p",
           "no:cacheprovider", "--device", "cpu", "--dtype", "bfloat16", "-k", "glove-6b-50d/L00/mean/stsb-sample",
           "--benchmark-json", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "RWKV_EVAL_DATA"} | {"HF_HUB_OFFLINE": "1"}
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (bench,) = json.loads(out.read_text())["benchmarks"]
    e = bench["extra_info"]
    assert (e["device"], e["dtype"], e["run_device"], e["run_dtype"]) == ("cpu", "float32", "cpu", "bfloat16")
    assert 70 < e["model_weights_mb"] < 80 and e["model_weights_mb"] <= e["peak_memory_mb"] < e["process_peak_mb"]
    assert e["memory_kind"].startswith("cpu: model weights + VmHWM rise")
    assert 0 < e["build_peak_memory_mb"] <= e["peak_memory_mb"]  # the fixture took the build's peak into account
    assert e["timed_rounds"] >= 3 and e["timing"] == "median of wall-clock times on cpu"
    assert bench["stats"]["rounds"] == e["timed_rounds"]


def test_environment_names_the_gpu_of_the_run_not_the_current_one(monkeypatch):
    """On a mixed machine a run on cuda:1 must record cuda:1's name; a CPU run records none."""
    import torch

    from rwkv_eval.records import environment

    names = {0: "NVIDIA T4", 1: "NVIDIA H200"}
    asked = []

    def name(device=None):
        asked.append(device)
        return names[0 if device is None else torch.device(device).index or 0]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", name)
    assert environment("cuda:1")["cuda_device"] == "NVIDIA H200"
    assert environment(torch.device("cuda:0"))["cuda_device"] == "NVIDIA T4"
    assert environment("cpu")["cuda_device"] is None
    assert environment()["cuda_device"] == "NVIDIA T4"  # no device given: the current one


def test_build_memory_sees_a_build_that_peaks_above_what_it_keeps():
    """A random init holds its weights twice while it builds (module + state dict): the
    recorded peak of a case is the larger of building and encoding, each kept apart."""
    n = 200 * measure.MB // 4

    def build():
        scratch = torch.ones(n)  # ~200 MB, dropped when the build returns
        return scratch[: n // 20].clone()  # ~10 MB kept: the "weights"

    model, built = measure.build_memory(build, "cpu")
    assert model.numel() == n // 20
    assert 150 < built["build_peak_memory_mb"] < 260, built
    assert built["build_memory_kind"].startswith("VmHWM rise")
    out = measure.peak_memory(lambda: model.sum(), "cpu", weights=10 * measure.MB, build=built)
    assert out["encode_peak_memory_mb"] < 100, out
    assert out["peak_memory_mb"] == built["build_peak_memory_mb"] and out["build_peak_memory_mb"] == out["peak_memory_mb"]
    assert "the larger of that and the build's peak" in out["memory_kind"]
    without = measure.peak_memory(lambda: model.sum(), "cpu", weights=10 * measure.MB)
    assert "build_peak_memory_mb" not in without and without["peak_memory_mb"] < 100, without


def test_build_memory_on_cuda_reads_the_run_device(fake_cuda):
    model, built = measure.build_memory(fake_cuda.work, "cuda:1")
    assert model == "out" and built["build_peak_memory_mb"] == 40 and "cuda:1" in built["build_memory_kind"]
    assert fake_cuda.log[1:] == [("synchronize", 1), ("reset_peak_memory_stats", 1), ("memory_allocated", 1),
                                 ("work", None), ("synchronize", 1), ("max_memory_allocated", 1)]
    # the encoding's peak (all 140 allocated) is above the build's 40: the case records the encoding's
    out = measure.peak_memory(fake_cuda.work, "cuda:1", weights=60 * measure.MB, build=built)
    assert (out["peak_memory_mb"], out["encode_peak_memory_mb"], out["build_peak_memory_mb"]) == (140, 140, 40)


def test_the_suite_records_the_build_peak_of_the_model_it_loaded():
    """RunContext.model measures building the model; the peak_memory fixture hands that record
    on, so a case's peak_memory_mb covers its model's build."""
    from rwkv_eval.suite import plugin

    ctx = plugin.RunContext.__new__(plugin.RunContext)
    ctx.device, ctx.dtype, ctx._encoders, ctx._build_memory = "cpu", "float32", {}, {}
    case = type("Case", (), {"spec": "random-rwkv6:tiny", "revision": None})()
    enc = ctx.model(case)
    record = ctx.build_memory(enc)
    assert record is not None and record["build_peak_memory_mb"] >= 0 and record["build_memory_kind"]
    assert ctx.build_memory(object()) is None


# ---------------------------------------------------------------- the A-vs-B timing protocol
def test_compare_times_warms_up_every_side_then_alternates_the_order():
    log = []
    fns = {name: (lambda name=name: log.append(name)) for name in ("A", "B", "C")}
    t = measure.compare_times(fns, "A", min_rounds=4, min_time=0.0, warmup_rounds=2)
    assert log[:6] == ["A", "B", "C"] * 2  # warm-up: every side before anything is timed
    assert log[6:] == ["A", "B", "C", "C", "B", "A"] * 2  # ABC CBA ...: no side always first
    assert t.rounds == 4 and all(len(s) == 4 for s in t.seconds.values())
    assert t.warmup_rounds == 2 and t.baseline == "A"


def test_compare_times_sizes_the_rounds_by_time():
    import time

    t = measure.compare_times({"A": lambda: time.sleep(0.01), "B": lambda: time.sleep(0.01)}, "A",
                              min_rounds=2, min_time=0.2, max_rounds=50)
    assert t.rounds >= 6  # 0.2 s of ~0.02 s rounds (a loaded host only makes rounds slower: fewer, not < 2)
    assert sum(sum(s) for s in t.seconds.values()) >= 0.1
    assert measure.compare_times({"A": lambda: None}, "A", min_rounds=3, min_time=0.0).rounds == 3


def test_a_cold_first_call_does_not_reach_the_ratio():
    """The fault of the old protocol: the first call of a process pays a start-up cost and the
    baseline always ran first, unwarmed. Warm-up absorbs it; without warm-up the baseline
    (first) of a one-round comparison would be ~20x slower than the same work."""
    import time

    cold = [True]

    def work():
        if cold[0]:
            cold[0] = False
            time.sleep(1.0)
        time.sleep(0.05)  # long enough that a loaded host's late wake-ups (~10 ms) stay well inside 3x

    t = measure.compare_times({"full": work, "same": work}, "full", min_rounds=1, min_time=0.0)
    ratio, _ = t.speedup("same")
    assert t.rounds == 1 and 1 / 3 < ratio < 3.0


def test_speedup_is_the_ratio_of_medians_with_a_seeded_bootstrap_ci():
    t = measure.Timings("full", {"full": (2.0, 2.0, 2.2, 1.8, 9.0), "exit": (1.0, 1.1, 0.9, 1.0, 1.0)},
                        warmup_rounds=1, min_rounds=5, min_time_s=0.0, device="cpu")
    ratio, ci = t.speedup("exit")
    assert ratio == pytest.approx(2.0)  # the 9 s round does not move a median
    assert ci[0] <= ratio <= ci[1] and ci[0] < ci[1]
    assert t.speedup("exit") == (ratio, ci)  # seeded: the same interval every time
    rec = t.record("exit")
    assert rec["seconds"] == 1.0 and rec["baseline_seconds"] == 2.0 and rec["speedup_ci95"] == ci
    assert rec["timing_rounds"] == 5 and rec["timing_seed"] == 0 and "alternating order" in rec["timing"]
    assert t.speedup("full") == (1.0, [1.0, 1.0])


@pytest.mark.parametrize("speedup, ci, bound, fault", [
    (3.0, [2.5, 3.5], 2.0, True),  # the whole CI above the bound
    (3.0, [1.5, 3.5], 2.0, False),  # above it, but within the noise
    (1.9, [1.8, 2.0], 2.0, False),
    (2.1, [2.05, 2.15], 2.0, False),  # within BOUND_SLACK: caches make a shallower pass a little cheaper per block
    (2.3, [2.25, 2.35], 2.0, True),
    (0.98, [0.9, 1.05], 0.5, False),  # more work than the baseline: fixed costs let it approach 1
    (1.3, [1.2, 1.4], 0.5, True),
])
def test_bound_check_flags_a_speedup_above_its_compute_bound(speedup, ci, bound, fault):
    out = measure.bound_check(speedup, ci, bound)
    assert out == {"speedup_bound": bound, "speedup_vs_bound": pytest.approx(speedup / bound),
                   "measurement_fault": fault, "bound_slack": measure.BOUND_SLACK}


def test_compare_times_refuses_an_unwarmed_or_unknown_baseline():
    with pytest.raises(ValueError, match="baseline 'X' is not one of the timed methods"):
        measure.compare_times({"A": lambda: None}, "X")
    with pytest.raises(ValueError, match="warmup_rounds must be >= 1"):
        measure.compare_times({"A": lambda: None}, "A", warmup_rounds=0)
    with pytest.raises(ValueError, match="positive ratio of work"):
        measure.bound_check(1.0, [1.0, 1.0], 0.0)


def test_compare_times_on_a_gpu_takes_cuda_event_seconds_on_the_run_device(fake_cuda):
    t = measure.compare_times({"A": fake_cuda.work, "B": fake_cuda.work}, "A", "cuda:1", min_rounds=2, min_time=0.0)
    assert t.seconds == {"A": (0.25, 0.25), "B": (0.25, 0.25)}  # the fake's event time, not the wall clock
    synced = {c[1] for c in fake_cuda.log if c[0] == "synchronize"}
    assert synced == {1} and "cuda:1" in t.record("B")["timing"]
