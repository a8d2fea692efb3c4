"""WKV-6 and WKV-7 compiled for the CPU: the token-by-token recurrences in C (wkv_cpu.c),
built once per process with the machine's C compiler. The "cpu" backends of models/wkv6.py
and models/wkv7.py call them, and their "auto" backends choose them here (`resolve`).

Why a compiled kernel: on a CPU the chunked PyTorch forms are dozens of small batched
products and element-wise passes per call over (B, H, N, L, K) tensors (WKV-7's also a
triangular solve per chunk), and packed sentences must first be gathered into rows of whole
chunks and back. The recurrence itself is ~4-5 K^2 FLOPs per token and head with the K x K
state in L1 cache, and compiled it reads a packed flat sequence as it is, a segment per
sentence: no rows, no chunk padding, no gathers. Measured on a 2-core CPU
(reports/cpu-kernel-2026-12-06/wkv_share.json): the perf profile's 12 x 768 RWKV-6 spent
0.065 s of a 1.88 s encode in the WKV, against 0.130 s of 2.03 s chunked (its row gathers
not counted); the tiny RWKV-7's WKV took 0.14 s of 1.04 s, against 2.32 s of 3.20 s chunked.

How it is built: the first `library()` call compiles the shipped C source with the first of
COMPILERS found on PATH, FLAGS as below (`-march=native`: the build is for this machine, in
this process), into a temporary folder that is removed once the library is loaded. The build
takes a fraction of a second. `-fopenmp` links libgomp: torch's Linux wheels load a
`libgomp.so.1` of their own first, and the kernels then run in torch's OpenMP thread pool
(with torch.get_num_threads() threads). Measured: the same kernel threaded from Python beside
torch's pool ran 2-3x slower, its threads competing with the pool's spinning workers.

A machine with no compiler, or a failed build, gets `KernelUnavailable` with the
compiler's own message; "auto" then runs the chunked form and says so.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
import warnings
from importlib import resources
from pathlib import Path

import torch

SOURCE = "wkv_cpu.c"
COMPILERS = ("cc", "gcc", "clang")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-std=c99", "-shared", "-fPIC")
BUILD_TIMEOUT_S = 120


class KernelUnavailable(RuntimeError):
    """The CPU kernels could not be built or loaded here (no C compiler, or the build failed)."""


_built: dict[str, ctypes.CDLL | KernelUnavailable] = {}  # the one build of this process, or why it failed


def _build() -> ctypes.CDLL:
    compiler = next((c for c in COMPILERS if shutil.which(c)), None)
    if compiler is None:
        raise KernelUnavailable(f"no C compiler on PATH (looked for {', '.join(COMPILERS)}); install one "
                                "(e.g. gcc) or choose the 'chunked' WKV backend")
    source = resources.files("rwkv_eval.models").joinpath(SOURCE).read_text()
    with tempfile.TemporaryDirectory(prefix="rwkv-eval-wkv-") as tmp:
        src, lib = Path(tmp) / SOURCE, Path(tmp) / "wkv_cpu.so"
        src.write_text(source)
        cmd = [compiler, *FLAGS, str(src), "-o", str(lib)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise KernelUnavailable(f"building the WKV CPU kernels failed: `{' '.join(cmd)}`: {e}") from e
        if done.returncode != 0:
            raise KernelUnavailable(f"building the WKV CPU kernels failed (exit {done.returncode}): "
                                    f"`{' '.join(cmd)}`:\n{done.stderr.strip()[-2000:]}\n(a C compiler with "
                                    f"OpenMP builds them; or choose the 'chunked' WKV backend)")
        try:
            library = ctypes.CDLL(str(lib))  # mapped: the file may go with the folder
        except OSError as e:
            raise KernelUnavailable(f"loading the built WKV CPU kernels failed: {e}") from e
    for fn, tensors in ((library.wkv6_cpu_forward, 6), (library.wkv7_cpu_forward, 7)):
        fn.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                       *[ctypes.c_void_p] * tensors, ctypes.c_int]
        fn.restype = ctypes.c_int
    return library


def library() -> ctypes.CDLL:
    """The kernels, built on the first call of the process; a failure is remembered and raised again."""
    if "lib" not in _built:
        try:
            _built["lib"] = _build()
        except KernelUnavailable as e:
            _built["lib"] = e
    built = _built["lib"]
    if isinstance(built, KernelUnavailable):
        raise built
    return built


def unavailable() -> str | None:
    """Why the kernels cannot run here, or None when they can (building them if not built yet)."""
    try:
        library()
    except KernelUnavailable as e:
        return str(e)
    return None


def _computes_in_float32(device: str | torch.device, dtype: torch.dtype) -> bool:
    """What the kernels compute: CPU tensors whose accumulation dtype is float32 (fp32, fp16, bf16)."""
    return torch.device(device).type == "cpu" and torch.promote_types(dtype, torch.float32) == torch.float32


def resolve(backend: str, backends: tuple[str, ...], what: str, device: str | torch.device, dtype: torch.dtype
            ) -> str:
    """The backend that `backend` (one of `backends`, for the WKV named `what`) runs for tensors
    on `device` in `dtype` when no state goes in or out (an encoder): "auto" is "cpu" on a CPU in
    float32 compute if the kernels build (else "chunked", with a warning that says why), "chunked"
    elsewhere; other names stand for themselves."""
    if backend not in backends:
        raise ValueError(f"unknown {what} backend {backend!r}; choose from {', '.join(backends)}")
    if backend != "auto":
        return backend
    if not _computes_in_float32(device, dtype):
        return "chunked"
    reason = unavailable()
    if reason is not None:
        warnings.warn(f"{what}: the compiled CPU kernel is unavailable, running the chunked PyTorch form (same "
                      f"results up to fp32 rounding, slower on a CPU): {reason}", RuntimeWarning, stacklevel=3)
        return "chunked"
    return "cpu"


def check_inputs(what: str, r: torch.Tensor, state, final_state: bool) -> None:
    """What the kernels do not compute is an error naming the backend that does."""
    if not _computes_in_float32(r.device, r.dtype):
        raise ValueError(f"the 'cpu' {what} backend computes CPU tensors in float32; got {r.dtype} on {r.device} "
                         f"(use 'chunked', or 'naive' for a float64 reference)")
    if state is not None or final_state:
        raise ValueError(f"the 'cpu' {what} backend computes outputs from an empty state: it takes no `state` and "
                         f"returns no final state; use 'chunked' for states")


def segment_bounds(B: int, T: int, starts: torch.Tensor | None) -> torch.Tensor:
    """(S + 1,) int64 flat positions of a (B, T) batch's segments: each row's start, each
    `starts` mark, and the end."""
    begins = torch.zeros(B, T, dtype=torch.bool)
    begins[:, 0] = True
    if starts is not None:
        begins |= starts.cpu()
    return torch.cat([begins.view(-1).nonzero().view(-1), torch.tensor([B * T])])


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(B, T, H, K) any dtype and strides -> (B*T, H, K) float32 contiguous (no copy when it already is)."""
    return x.reshape(-1, *x.shape[2:]).to(torch.float32).contiguous()


def _run(fn, bounds: torch.Tensor, r: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
    n, H, K = r.shape
    y = torch.empty_like(r)
    failed = fn(len(bounds) - 1, bounds.data_ptr(), H, K, r.data_ptr(), *(t.data_ptr() for t in tensors),
                y.data_ptr(), torch.get_num_threads())
    if failed:
        raise MemoryError(f"a WKV CPU kernel could not allocate its {K} x {K} state")
    return y


def wkv6_forward(bounds, r, k, v, w, u) -> torch.Tensor:
    """WKV-6 outputs (n, H, K) float32 for flat tokens: r, k, v, log-decay w (B, T, H, K) any
    dtype and strides, u (H, K); segments [bounds[s], bounds[s+1]) each from an empty state."""
    return _run(library().wkv6_cpu_forward, bounds, _flat(r), _flat(k), _flat(v), _flat(w).exp(),
                u.to(torch.float32).contiguous())


def wkv7_forward(bounds, r, k, v, w, a, b) -> torch.Tensor:
    """WKV-7 outputs (n, H, K) float32 for flat tokens, as `wkv6_forward`, with the removal
    vectors a, b (B, T, H, K) in place of the bonus."""
    return _run(library().wkv7_cpu_forward, bounds, _flat(r), _flat(k), _flat(v), _flat(w).exp(), _flat(a),
                _flat(b))
