"""Measuring cost on the run's device: time, one model's peak memory, the matmul limit.

Why a module and not fixture code: every CUDA call here must name the run's device
(`torch.cuda.synchronize()` with no argument waits for the *current* device, cuda:0, so
a run on cuda:1 would stop its clock before its kernels finish and read ~0 memory), and
that is only testable with a fake `torch.cuda` that records calls (tests/test_measure.py);
the benchmark fixtures of the pytest plugin (suite/plugin.py) call these functions.

* `DeviceTimer` times one call: synchronize(device) -> start -> work -> stop ->
  synchronize(device), with CUDA events on the device's current stream (GPU time) and
  the wall clock (what a user waits) both recorded.
* `plan_rounds` sizes the number of timed rounds by time (pytest-benchmark's
  min_rounds/min_time idea, which `pedantic` lacks), so a millisecond case gets enough
  rounds for a stable median and a multi-second one is not repeated needlessly.
* `peak_memory` measures one model's peak while it encodes, with only that model
  resident (the caller releases the others), and takes the larger of that and the peak of
  building it (`build_memory`, measured the same way when the model is built): on CUDA `max_memory_allocated(device)`
  after `empty_cache` + `reset_peak_memory_stats(device)`; on CPU torch's allocations
  are invisible to tracemalloc, so it is the model's weights plus the rise of the
  process's resident-set high-water mark (VmHWM, reset through /proc/self/clear_refs)
  above the resident set before the call, after glibc's malloc_trim has returned freed
  heap pages (else the call reuses them and the rise reads 0).
* `default_dtype`: bfloat16 where the GPU has it natively (sm_80+), float16 on older
  GPUs (T4, sm_75), float32 on CPU.
* `device_peak_tflops`: the dense fp16/bf16 tensor-core peak of known GPUs (vendor
  data sheets), to state a measured rate as a fraction of what the chip can do.
* `compare_times` is the one protocol of every A-vs-B cost comparison (early exit vs the
  full pass, aggregation vs the final layer, RWKV vs softmax by length): warm-up of every
  side, alternating order, rounds by time, median per side and a bootstrap CI of the
  ratio, because a first call is 2-3x slower and a shared host's rate drifts by 2x within
  seconds; `bound_check` sets a speed-up beside its compute bound and flags one above it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

MB = 2**20

# Dense (no sparsity) fp16 / bf16 tensor-core peak, TFLOP/s, from the vendors' data
# sheets; matched by substring of torch.cuda.get_device_name, most specific first.
# float16 accumulating in fp32 where the sheet distinguishes (GeForce).
DEVICE_PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"bfloat16": 989.0, "float16": 989.0}),
    ("H100 PCIe", {"bfloat16": 756.0, "float16": 756.0}),
    ("H100", {"bfloat16": 989.0, "float16": 989.0}),  # SXM5
    ("A100", {"bfloat16": 312.0, "float16": 312.0}),
    ("L40S", {"bfloat16": 362.0, "float16": 362.0}),
    ("L4", {"bfloat16": 121.0, "float16": 121.0}),
    ("A10G", {"bfloat16": 70.0, "float16": 70.0}),
    ("A10", {"bfloat16": 125.0, "float16": 125.0}),
    ("RTX 4090", {"bfloat16": 165.0, "float16": 165.0}),
    ("T4", {"float16": 65.0}),  # no bf16 tensor cores
    ("V100", {"float16": 125.0}),
)


def cuda_index(device: str | torch.device) -> int | None:
    """The CUDA device index of `device` (cuda -> the current device), None for a CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.cuda.current_device() if device.index is None else device.index


def resolve_device(device: str, what: str = "device") -> str:
    """The device a run uses, named so that its records say which chip computed them.

    "cpu" -> "cpu"; "cuda:N" -> "cuda:N" once that device exists; "cuda" -> the *current*
    CUDA device (torch's meaning of "cuda": where `.to("cuda")` puts a tensor, i.e. what
    `torch.cuda.set_device` / CUDA_VISIBLE_DEVICES selected), recorded as "cuda:N";
    "auto" -> that same current CUDA device when CUDA is available, else "cpu". A bare
    "cuda" is never passed on: a later `torch.cuda.synchronize()` or a record would not
    say which device ran. Both faces (cli.py, the pytest plugin) call this one function;
    `what` is the option that gave the value ("--device"), named in every error.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    expected = "use cpu, cuda (the current CUDA device), cuda:N or auto"
    try:
        d = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as e:
        raise ValueError(f"{what} {device} is not a device; {expected}") from e
    if d.type == "cpu":
        return "cpu"
    if d.type != "cuda":
        raise ValueError(f"{what} {device} is not a device this suite runs on; {expected}")
    if not torch.cuda.is_available():
        raise ValueError(f"{what} {device} requested but CUDA is not available on this machine; use cpu")
    index = cuda_index(d)
    if index >= torch.cuda.device_count():
        raise ValueError(f"{what} {device} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s), cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return f"cuda:{index}"


def default_dtype(device: str) -> str:
    """float32 on CPU; on CUDA bfloat16 where it is native (sm_80+), float16 before (T4)."""
    index = cuda_index(device)
    if index is None:
        return "float32"
    major, _ = torch.cuda.get_device_capability(index)
    return "bfloat16" if major >= 8 else "float16"


def device_info(device: str) -> dict[str, Any]:
    """Name, capability, memory and fp16/bf16 peak of the run's device (for machine_info)."""
    index = cuda_index(device)
    if index is None:
        return {"device": "cpu", "torch_threads": torch.get_num_threads()}
    name = torch.cuda.get_device_name(index)
    major, minor = torch.cuda.get_device_capability(index)
    props = torch.cuda.get_device_properties(index)
    return {"device": f"cuda:{index}", "cuda_device": name, "cuda_capability": f"{major}.{minor}",
            "cuda_memory_mb": props.total_memory / MB, "cuda_version": torch.version.cuda,
            "cuda_device_count": torch.cuda.device_count(),
            "device_peak_tflops": {dt: device_peak_tflops(name, dt) for dt in ("float16", "bfloat16")}}


def device_peak_tflops(name: str, dtype: str) -> float | None:
    """Dense tensor-core peak of a GPU named `name` in `dtype`, None where unknown."""
    for key, peaks in DEVICE_PEAK_TFLOPS:
        if key in name:
            return peaks.get(dtype)
    return None


@dataclass
class DeviceTimer:
    """Times calls on `device`; every call appends to `wall` and (on CUDA) `cuda_event` seconds."""

    device: str
    wall: list[float] = field(default_factory=list)
    cuda_event: list[float] = field(default_factory=list)

    def __call__(self, fn: Callable[[], Any]) -> Any:
        index = cuda_index(self.device)
        if index is None:
            t0 = time.perf_counter()
            out = fn()
            self.wall.append(time.perf_counter() - t0)
            return out
        stream = torch.cuda.current_stream(index)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(index)
        t0 = time.perf_counter()
        start.record(stream)
        out = fn()
        end.record(stream)
        torch.cuda.synchronize(index)
        self.wall.append(time.perf_counter() - t0)
        self.cuda_event.append(start.elapsed_time(end) / 1000)  # ms -> s
        return out

    def summary(self, rounds: int) -> dict[str, Any]:
        """Medians of the last `rounds` calls (the timed ones; earlier calls were warm-up)."""
        if rounds < 1 or len(self.wall) < rounds:
            raise ValueError(f"summary of {rounds} rounds asked, {len(self.wall)} calls timed")
        wall = statistics.median(self.wall[-rounds:])
        out = {"timed_rounds": rounds, "wall_median_s": wall,
               "wall_spread": (max(self.wall[-rounds:]) - min(self.wall[-rounds:])) / wall if wall else None}
        if self.cuda_event:
            out["cuda_event_median_s"] = statistics.median(self.cuda_event[-rounds:])
        out["seconds"] = out.get("cuda_event_median_s", wall)
        out["timing"] = ("median of CUDA-event times on " if self.cuda_event else "median of wall-clock times on ") \
            + self.device
        return out


def plan_rounds(first_seconds: float, min_time: float, min_rounds: int, max_rounds: int) -> int:
    """Enough rounds that they take `min_time` in all, within [min_rounds, max_rounds]."""
    if not 1 <= min_rounds <= max_rounds:
        raise ValueError(f"need 1 <= min_rounds <= max_rounds; got {min_rounds}, {max_rounds}")
    wanted = math.ceil(min_time / first_seconds) if first_seconds > 0 else max_rounds
    return max(min_rounds, min(max_rounds, wanted))


def time_rounds(fn: Callable[[], Any], device: str, *, min_time: float = 0.5, min_rounds: int = 3,
                max_rounds: int = 50, warmup_rounds: int = 1,
                runner: Callable[[Callable[[], Any], int], None] | None = None) -> dict[str, Any]:
    """Warm up, size the rounds by time, time them; returns `DeviceTimer.summary` + the plan.

    `runner(target, rounds)` runs the timed rounds (the plugin passes pytest-benchmark's
    pedantic, so its statistics and --benchmark-compare see the same rounds); the default
    is a plain loop, which is also what runs under --benchmark-disable.
    """
    timer = DeviceTimer(device)
    for _ in range(max(1, warmup_rounds)):  # at least one: it sizes the rounds
        timer(fn)
    rounds = plan_rounds(timer.wall[-1], min_time, min_rounds, max_rounds)
    target = lambda: timer(fn)  # noqa: E731
    if runner is None:
        for _ in range(rounds):
            target()
    else:
        runner(target, rounds)
    return timer.summary(rounds) | {"warmup_rounds": max(1, warmup_rounds), "min_time_s": min_time}


def weights_bytes(encoder: Any) -> int:
    """Bytes of an encoder's parameters, buffers and tensors (a model's, or GloVe's table)."""
    seen: set[int] = set()
    total = 0
    for value in vars(encoder).values():
        if isinstance(value, torch.nn.Module):
            tensors = [*value.parameters(), *value.buffers()]
        elif isinstance(value, torch.Tensor):
            tensors = [value]
        else:
            continue
        for t in tensors:
            if t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
    return total


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> bool:
    """Hand glibc's freed heap pages back to the OS, so that the resident set is what is in
    use: otherwise a call's activations reuse pages freed earlier and RSS does not rise."""
    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):  # not glibc
        return False


def release(device: str) -> bool:
    """Return freed memory (after dropping a model, before measuring or loading the next).
    Returns whether host memory could be trimmed (glibc)."""
    gc.collect()
    if cuda_index(device) is not None:
        torch.cuda.empty_cache()
    return _malloc_trim()


def _peak_rise(fn: Callable[[], Any], device: str) -> tuple[Any, int | None, int | None, int | None, str]:
    """(fn's result, peak bytes above what was in use before the call (None: unreadable), the
    device's whole peak in bytes (CUDA; None on CPU, where only the rise is seen), the process's
    resident high-water mark in KiB, how it was measured), the previous models already
    released: the one method under `peak_memory` and `build_memory`."""
    index = cuda_index(device)
    trimmed = release(device)
    if index is not None:
        torch.cuda.synchronize(index)
        torch.cuda.reset_peak_memory_stats(index)
        base = torch.cuda.memory_allocated(index)
        out = fn()
        torch.cuda.synchronize(index)
        peak = torch.cuda.max_memory_allocated(index)
        return out, peak - base, peak, _status_kib("VmHWM"), (f"cuda max_memory_allocated(cuda:{index}) after empty_cache "
                                                        "+ reset, only this model resident")
    resettable = _reset_hwm()
    before = _status_kib("VmRSS")
    out = fn()
    hwm = _status_kib("VmHWM")
    if before is None or hwm is None:
        return out, None, None, None, "cpu: /proc/self/status unreadable, not measured"
    kind = ("VmHWM rise above VmRSS before the call (VmHWM reset via /proc/self/clear_refs"
            + (", free heap trimmed first)" if trimmed else "; heap not trimmed: the rise may miss reused pages)")
            if resettable else "process-lifetime VmHWM rise (clear_refs not allowed: the rise may read 0)")
    return out, max(hwm - before, 0) * 1024, None, hwm, kind


def build_memory(build: Callable[[], Any], device: str) -> tuple[Any, dict[str, Any]]:
    """Build a model and measure the peak of building it, which can pass the peak of using it:
    a random init holds its weights twice (the module and the state dict loaded into it), a
    checkpoint its file's tensors beside the model's.

    Returns:
        (the model, {"build_peak_memory_mb": peak above the memory in use before the build,
        "build_memory_kind"}) — hand the dict to `peak_memory(..., build=)`.
    """
    model, rise, _, _, kind = _peak_rise(build, device)
    return model, {"build_peak_memory_mb": None if rise is None else rise / MB, "build_memory_kind": kind}


def peak_memory(fn: Callable[[], Any], device: str, weights: int, build: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
    """Peak memory of one call of fn() by the one model resident on `device`, and of building
    that model when `build` (from `build_memory`) is given: the case's peak is the larger.

    Args:
        fn: the work (encoding a batch), already warmed up.
        device: where the model runs ("cpu", "cuda:N").
        weights: the model's `weights_bytes`.
        build: `build_memory`'s measurement of building this model, or None (not known).
    Returns:
        model_weights_mb, peak_memory_mb (max of the encoding's peak, weights + activations
        (on CUDA all that is allocated on the device), and the build's), peak_memory_delta_mb (activations), process_peak_mb (host RSS high-water
        mark during the call, all resident), memory_kind; with `build` also
        encode_peak_memory_mb and build_peak_memory_mb.
    """
    _, rise, whole, hwm, kind = _peak_rise(fn, device)
    encode_peak = whole / MB if whole is not None else None if rise is None else (weights + rise) / MB
    out = {"model_weights_mb": weights / MB, "peak_memory_mb": encode_peak,
           "peak_memory_delta_mb": None if rise is None else rise / MB,
           "process_peak_mb": hwm / 1024 if hwm is not None else None,
           "memory_kind": kind if cuda_index(device) is not None or rise is None else f"cpu: model weights + {kind}"}
    if build is None:
        return out
    built = build.get("build_peak_memory_mb")
    peaks = [p for p in (encode_peak, built) if p is not None]
    return out | {"encode_peak_memory_mb": encode_peak, "build_peak_memory_mb": built,
                  "peak_memory_mb": max(peaks) if peaks else None,
                  "memory_kind": f"{out['memory_kind']}; the larger of that and the build's peak "
                                 f"({build.get('build_memory_kind')})"}


def matmul_rate(device: str, dtype: torch.dtype, n: int, runner=None, min_time: float = 0.5) -> dict[str, Any]:
    """FLOP/s of back-to-back n x n matmuls in `dtype` on `device`.

    One matmul per timed round would measure launch and synchronisation on a GPU (a
    4096^3 bf16 matmul takes ~0.1 ms on an H100): each round runs enough matmuls
    back to back to take ~10 ms of device time, and one sync closes the round.
    """
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    timer = DeviceTimer(device)
    for _ in range(2):  # the first: kernel selection, allocator; the second: one matmul's time
        timer(lambda: torch.mm(a, b, out=out))
    one = timer.cuda_event[-1] if timer.cuda_event else timer.wall[-1]
    per_round = max(1, min(1000, math.ceil(0.01 / max(one, 1e-7))))

    def work():
        for _ in range(per_round):
            torch.mm(a, b, out=out)

    stats = time_rounds(work, device, min_time=min_time, min_rounds=3, max_rounds=50, runner=runner)
    flops = 2 * n**3 * per_round / stats["seconds"]
    return stats | {"n": n, "matmuls_per_round": per_round, "flops": flops, "tflops": flops / 1e12,
                    "dtype": str(dtype).removeprefix("torch."), "device": device}


# ---------------------------------------------------------------- A-vs-B cost comparison
TIMING_PROTOCOL = ("warm-up of every side, then rounds in alternating order (ABBA...) sized by time (at least "
                   "min_rounds, at least min_time_s in all); median per side; seeded bootstrap 95% CI of the "
                   "speed-up over resampled rounds")
TIMING_RESAMPLES = 2000
TIMING_SEED = 0
# How far above its compute bound a speed-up's whole CI may lie before it is called a fault: the
# bound counts block tokens, and a shallower pass can be a few percent cheaper per block (its
# weights and states stay in cache; measured up to ~5% on the tiny RWKV-6), while the faults
# this catches are 20% and more (an unwarmed, always-first baseline: 1.24-2x at equal work).
BOUND_SLACK = 0.1


@dataclass(frozen=True)
class Timings:
    """The timed rounds of `compare_times`: seconds per method, round by round (round r of
    every method was taken within one alternating turn, so rounds are paired in time)."""

    baseline: str
    seconds: Mapping[str, tuple[float, ...]]
    warmup_rounds: int
    min_rounds: int
    min_time_s: float
    device: str
    seed: int = TIMING_SEED
    n_resamples: int = TIMING_RESAMPLES

    @property
    def rounds(self) -> int:
        return len(self.seconds[self.baseline])

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def speedup(self, name: str) -> tuple[float, list[float]]:
        """(median(baseline) / median(name), its 95% bootstrap interval). Rounds are resampled
        jointly for both sides (one index draw per resample), so drift shared by a turn stays paired."""
        base, other = np.asarray(self.seconds[self.baseline]), np.asarray(self.seconds[name])
        idx = np.random.default_rng(self.seed).integers(0, len(base), size=(self.n_resamples, len(base)))
        ratios = np.median(base[idx], axis=1) / np.median(other[idx], axis=1)
        lo, hi = np.percentile(ratios, [2.5, 97.5])
        return float(np.median(base) / np.median(other)), [float(lo), float(hi)]

    def record(self, name: str) -> dict[str, Any]:
        """What a speed-up record carries: both medians, the speed-up and its CI, the plan."""
        ratio, ci = self.speedup(name)
        return {"seconds": self.median(name), "baseline_seconds": self.median(self.baseline), "speedup": ratio,
                "speedup_ci95": ci, "timing_rounds": self.rounds, "timing_warmup_rounds": self.warmup_rounds,
                "timing_min_rounds": self.min_rounds, "timing_min_time_s": self.min_time_s,
                "timing_seed": self.seed, "timing": f"{TIMING_PROTOCOL}; {self.device}"}


def compare_times(fns: Mapping[str, Callable[[], Any]], baseline: str, device: str = "cpu", *, min_rounds: int = 5,
                  min_time: float = 1.0, max_rounds: int = 200, warmup_rounds: int = 1,
                  seed: int = TIMING_SEED) -> Timings:
    """Time methods against a baseline: THE protocol of every A-vs-B cost comparison.

    Why each step: a first call pays for allocation, kernel selection and cold caches (2-3x
    on a CPU), so every side is called `warmup_rounds` times before any is timed; a shared
    host drifts within seconds, so the sides take turns in alternating order (A B, B A, ...;
    with more methods the order reverses every round) and no side always runs first; one
    round is noise, so rounds are sized by time (`plan_rounds` on the warm-up round: at
    least `min_rounds`, `min_time` seconds in all, at most `max_rounds`); the median per
    side resists the odd slow turn, and the bootstrap CI of the ratio (`Timings.speedup`)
    says how far to trust it. Each timed call is `DeviceTimer`'s (CUDA-synchronised,
    CUDA-event seconds on a GPU, wall seconds on a CPU).

    Args:
        fns: name -> zero-argument call (its result is the caller's: closures keep it).
        baseline: the name the speed-ups are relative to.
    """
    if baseline not in fns:
        raise ValueError(f"baseline {baseline!r} is not one of the timed methods {list(fns)}")
    if warmup_rounds < 1:
        raise ValueError(f"warmup_rounds must be >= 1 (a first call is not a measurement); got {warmup_rounds}")
    timers = {name: DeviceTimer(device) for name in fns}
    names = list(fns)
    for _ in range(warmup_rounds):
        for name in names:
            timers[name](fns[name])

    def last(name: str) -> float:
        t = timers[name]
        return t.cuda_event[-1] if t.cuda_event else t.wall[-1]

    rounds = plan_rounds(sum(last(n) for n in names), min_time, min_rounds, max_rounds)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            timers[name](fns[name])
            seconds[name].append(last(name))
    return Timings(baseline, {n: tuple(s) for n, s in seconds.items()}, warmup_rounds, min_rounds, min_time, device,
                   seed)


def bound_check(speedup: float, ci95: Sequence[float], bound: float) -> dict[str, Any]:
    """A measured speed-up against its compute bound (work of the baseline / work of the method).

    Removing work cannot speed a call up by more than the work removed: a speed-up whose
    whole CI lies above max(bound, 1) by more than BOUND_SLACK is a measurement fault (an
    unwarmed or always-first baseline, say), not a result. max(bound, 1): a method doing
    more work than the baseline (bound < 1) may still approach 1 when fixed costs outside
    the counted work dominate. Returns speedup_bound, speedup_vs_bound (measured / bound),
    measurement_fault and the bound_slack used.
    """
    if not bound > 0:
        raise ValueError(f"a compute bound is a positive ratio of work; got {bound}")
    return {"speedup_bound": bound, "speedup_vs_bound": speedup / bound,
            "measurement_fault": bool(ci95[0] > max(bound, 1.0) * (1 + BOUND_SLACK)), "bound_slack": BOUND_SLACK}
