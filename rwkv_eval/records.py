"""Provenance of a result, and atomic result files.

Every record says where it came from — model id and revision/hash, dataset, split and
size, layer, pooling, dtype, device, package versions and the git commit (with a dirty
flag) — so two numbers from different nights can be told apart. Files are written to a
temporary name and renamed, so an interrupted run never leaves half a JSON file where a
good one was, nor a temporary file beside it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
LAYER_CONVENTION = ("k = residual stream after block k, 0-based (HF hidden_states[k] for RWKV, [k+1] for "
                    "transformers); 'emb' = embedding; 'final' = after the final norm")


@lru_cache(maxsize=1)
def git_commit() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"git_commit": "unknown", "git_dirty": None}
    if commit.returncode != 0:
        return {"git_commit": "unknown", "git_dirty": None}
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}


def environment(device: Any = None) -> dict[str, Any]:
    """Versions, machine, time and commit. `cuda_device` names the GPU the run used (`device`,
    e.g. "cuda:1"), not whichever is current: a run on cuda:1 of a mixed machine must say so.
    With no device given it names the current CUDA device, if any."""
    import numpy
    import scipy
    import torch
    import transformers

    from . import __version__

    env = {
        "schema_version": SCHEMA_VERSION,
        "rwkv_eval_version": __version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "numpy_version": numpy.__version__,
        "scipy_version": scipy.__version__,
        "python_version": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cuda_device": _cuda_device_name(device),
        "cuda_version": torch.version.cuda,
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return env | git_commit()


def _cuda_device_name(device: Any) -> str | None:
    import torch

    if device is None:
        return torch.cuda.get_device_name() if torch.cuda.is_available() else None
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that cleanup (`finally`, temp-file removal) runs.

    A BaseException, not an Exception: code that catches Exception to add context must not
    swallow a request to stop.
    """


def raise_terminated(signum, frame):
    raise Terminated(f"terminated by signal {signum}")


@contextmanager
def terminate_raises():
    """While inside, SIGTERM raises `Terminated` instead of killing the process on the spot.

    Only where the default action is in place and only in the main thread (signal handlers
    can be set nowhere else); an entry point that installed its own handler keeps it.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | Path, what: str = "output") -> Path:
    """Fail now, before hours of work, if `path` cannot be written atomically.

    `path` must not be a directory, and its nearest existing ancestor must be a writable
    directory (missing parent folders are created at write time).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a directory; give a file path inside it, e.g. {path / 'out'}")
    if path.is_symlink() and not path.exists():
        raise FileNotFoundError(f"{what} {path} is a broken symbolic link; remove it or give another path")
    parent = path.parent
    while not parent.exists():
        if parent.is_symlink():
            raise FileNotFoundError(f"{what} {path}: {parent} is a broken symbolic link; fix it or give another path")
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"{what} {path}: {parent} is a file, not a folder; give a path in a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: folder {parent} is not writable; give a path in a folder you can write")
    return path


def write_bytes_atomic(path: str | Path, writer) -> Path:
    """Write through `writer(file_object)` to a temp file, then rename over `path`.

    The file gets the permissions a plain open() would give (0666 minus the umask: 0644
    under umask 022), not mkstemp's 0600. The temp file is removed on any error, Ctrl-C
    (KeyboardInterrupt) or SIGTERM (`Terminated`, see `terminate_raises`).
    """
    path = check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with terminate_raises():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                writer(f)
                f.flush()
                os.fchmod(f.fileno(), 0o666 & ~_umask())
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def _first_non_finite(obj: Any, where: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "the value"
    if isinstance(obj, dict):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    return next((w for k, v in items if (w := _first_non_finite(v, k))), None)


def to_json(obj: Any, indent: int | None = 2) -> str:
    """JSON that other tools can read: a NaN/inf is an error naming the field, never written."""
    try:
        return json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError:
        raise ValueError(f"refusing to write non-finite number at {_first_non_finite(obj)} (JSON has no NaN/inf); "
                         "this is a bug in the code that made the record: please report it") from None


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    data = (to_json(obj) + "\n").encode("utf-8")
    return write_bytes_atomic(path, lambda f: f.write(data))
