"""WKV-6 compiled for the CPU: the token-by-token recurrence in C (wkv6_cpu.c), built once
per process with the machine's C compiler. models/wkv6.py's "cpu" backend calls it.

Why a compiled kernel: on a CPU the chunked PyTorch form is dozens of small batched products
and element-wise passes per call over (B, H, N, L, K) tensors, and packed sentences must first
be gathered into rows of whole chunks and back. The recurrence itself is ~4 K^2 FLOPs per
token and head with the K x K state in L1 cache, and compiled it reads the packed flat
sequence as it is, a segment per sentence: no rows, no chunk padding, no gathers. Measured on
the perf profile's 12 x 768 model on a 2-core CPU, interleaved: the encoder's WKV time fell
from ~0.2 s to ~0.06 s per encode, the whole encode ran ~14% faster.

How it is built: the first `library()` call compiles the shipped C source with the first of
COMPILERS found on PATH, FLAGS as below (`-march=native`: the build is for this machine, in
this process), into a temporary folder that is removed once the library is loaded. The build
takes a fraction of a second. `-fopenmp` links libgomp: torch's Linux wheels load a
`libgomp.so.1` of their own first, and the kernel then runs in torch's OpenMP thread pool
(with torch.get_num_threads() threads). Measured: the same kernel threaded from Python beside
torch's pool ran 2-3x slower, its threads competing with the pool's spinning workers.

A machine with no compiler, or a failed build, gets `KernelUnavailable` with the
compiler's own message; wkv6's "auto" backend then runs the chunked form and says so.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import torch

SOURCE = "wkv6_cpu.c"
COMPILERS = ("cc", "gcc", "clang")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-std=c99", "-shared", "-fPIC")
BUILD_TIMEOUT_S = 120


class KernelUnavailable(RuntimeError):
    """The CPU kernel could not be built or loaded here (no C compiler, or the build failed)."""


_built: dict[str, ctypes.CDLL | KernelUnavailable] = {}  # the one build of this process, or why it failed


def _build() -> ctypes.CDLL:
    compiler = next((c for c in COMPILERS if shutil.which(c)), None)
    if compiler is None:
        raise KernelUnavailable(f"no C compiler on PATH (looked for {', '.join(COMPILERS)}); install one "
                                "(e.g. gcc) or choose the 'chunked' WKV-6 backend")
    source = resources.files("rwkv_eval.models").joinpath(SOURCE).read_text()
    with tempfile.TemporaryDirectory(prefix="rwkv-eval-wkv6-") as tmp:
        src, lib = Path(tmp) / SOURCE, Path(tmp) / "wkv6_cpu.so"
        src.write_text(source)
        cmd = [compiler, *FLAGS, str(src), "-o", str(lib)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise KernelUnavailable(f"building the WKV-6 CPU kernel failed: `{' '.join(cmd)}`: {e}") from e
        if done.returncode != 0:
            raise KernelUnavailable(f"building the WKV-6 CPU kernel failed (exit {done.returncode}): "
                                    f"`{' '.join(cmd)}`:\n{done.stderr.strip()[-2000:]}\n(a C compiler with "
                                    f"OpenMP builds it; or choose the 'chunked' WKV-6 backend)")
        try:
            library = ctypes.CDLL(str(lib))  # mapped: the file may go with the folder
        except OSError as e:
            raise KernelUnavailable(f"loading the built WKV-6 CPU kernel failed: {e}") from e
    fn = library.wkv6_cpu_forward
    fn.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, *[ctypes.c_void_p] * 6,
                   ctypes.c_int]
    fn.restype = ctypes.c_int
    return library


def library() -> ctypes.CDLL:
    """The kernel, built on the first call of the process; a failure is remembered and raised again."""
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
    """Why the kernel cannot run here, or None when it can (building it if not built yet)."""
    try:
        library()
    except KernelUnavailable as e:
        return str(e)
    return None


def forward(bounds: torch.Tensor, r: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay: torch.Tensor,
            u: torch.Tensor) -> torch.Tensor:
    """y for flat tokens: r, k, v, decay (n, H, K) and u (H, K) float32 contiguous CPU tensors,
    segments [bounds[s], bounds[s+1]) (int64) each from an empty state; returns y (n, H, K)."""
    n, H, K = r.shape
    y = torch.empty_like(r)
    failed = library().wkv6_cpu_forward(len(bounds) - 1, bounds.data_ptr(), H, K, r.data_ptr(), k.data_ptr(),
                                        v.data_ptr(), decay.data_ptr(), u.data_ptr(), y.data_ptr(),
                                        torch.get_num_threads())
    if failed:
        raise MemoryError(f"the WKV-6 CPU kernel could not allocate its {K} x {K} state")
    return y
