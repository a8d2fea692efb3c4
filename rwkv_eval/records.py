"""Provenance of a result, and atomic result files.

Every record says where it came from — model id and revision/hash, dataset, split and
size, layer, pooling, dtype, device, package versions and the git commit (with a dirty
flag) — so two numbers from different nights can be told apart. Files are written to a
temporary name and renamed, so an interrupted run never leaves half a JSON file where a
good one was.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
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


def environment() -> dict[str, Any]:
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
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cuda_version": torch.version.cuda,
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return env | git_commit()


def write_bytes_atomic(path: str | Path, writer) -> Path:
    """Write through `writer(file_object)` to a temp file, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    data = (json.dumps(obj, indent=2) + "\n").encode("utf-8")
    return write_bytes_atomic(path, lambda f: f.write(data))
