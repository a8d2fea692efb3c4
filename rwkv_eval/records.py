"""Provenance of a result, and atomic result files.

Every record says where it came from — model id and revision/hash, dataset, split and
size, layer, pooling, dtype, device, package versions and the git commit (with a dirty
flag) — so two numbers from different nights can be told apart. Files are written to a
temporary name and renamed, so an interrupted run never leaves half a JSON file where a
good one was, nor a temporary file beside it; a result of several files (arrays and their
provenance) or a folder (a report) is replaced as a unit. An output path that exists must be
a regular file (a folder, for a folder): renaming over a device or a FIFO would replace it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

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


def file_kind(path: str | Path) -> str | None:
    """What `path` is when it is neither a regular file nor a folder ("a FIFO", "a character
    device", ...; following symbolic links), else None. Opening a FIFO blocks until a writer
    comes, and renaming over a device replaces it: both are refused before any work."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def check_input_file(path: str | Path, what: str, expected: str) -> Path:
    """A file to read: it must exist and be a regular file; the error says which of these it is not.

    `what` names the option ("--input s.txt"), `expected` what to give instead."""
    path = Path(path)
    if kind := file_kind(path):
        raise ValueError(f"{what} is {kind}, not a regular file; {expected}")
    if path.is_dir():
        raise IsADirectoryError(f"{what} is a directory; {expected}")
    if not path.is_file():
        state = "is a broken symbolic link" if path.is_symlink() else "does not exist"
        raise FileNotFoundError(f"{what} {state}; {expected}")
    return path


def check_writable(path: str | Path, what: str = "output", folder: bool = False) -> Path:
    """Fail now, before hours of work, if `path` cannot be written atomically.

    `path` must be a regular file (a folder when `folder`) or not exist: a device, FIFO or
    socket (or a link to one) would be replaced by the rename of the temp file, so it is an
    error, as is a folder where a file goes. Its nearest existing ancestor must be a writable
    directory (missing parent folders are created at write time).
    """
    path = Path(path)
    if kind := file_kind(path):
        raise ValueError(f"{what} {path} is {kind}; an output must be a regular file or not exist yet: "
                         "give a file path")
    if path.is_dir() and not folder:
        raise IsADirectoryError(f"{what} {path} is a directory; give a file path inside it, e.g. {path / 'out'}")
    if folder and path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {path} is a file; give a folder path")
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


@contextmanager
def _signals_held():
    """SIGINT and SIGTERM wait while inside (main thread only): the renames that publish a
    multi-part result are never split by a signal; one that came is handled right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def write_files_atomic(parts: Sequence[tuple[str | Path, Callable]]) -> list[Path]:
    """Write a result of one or more files as a unit: each `(path, writer)` is written through
    `writer(file_object)` to a temp file beside `path`; only when all are complete are they
    renamed over their paths, with SIGINT/SIGTERM held for the renames.

    So on any error, Ctrl-C (KeyboardInterrupt), SIGTERM (`Terminated`, see
    `terminate_raises`) or a full disk while writing, every previous file is left byte-identical
    and no temp file remains: a result never sits beside the provenance of another.
    Files get the permissions a plain open() would give (0666 minus the umask: 0644 under
    umask 022), not mkstemp's 0600.
    """
    paths = [check_writable(path) for path, _ in parts]
    temps: list[str] = []
    with terminate_raises():
        try:
            for path, (_, writer) in zip(paths, parts):
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
                temps.append(tmp)
                with os.fdopen(fd, "wb") as f:
                    writer(f)
                    f.flush()
                    os.fchmod(f.fileno(), 0o666 & ~_umask())
                    os.fsync(f.fileno())
            with _signals_held():
                for path in paths:  # checked again: something may have appeared there meanwhile
                    check_writable(path)
                for tmp, path in zip(temps, paths):
                    os.replace(tmp, path)
        except BaseException as e:
            for tmp in temps:
                Path(tmp).unlink(missing_ok=True)
            if isinstance(e, OSError) and e.filename is None:  # ENOSPC, EIO: errno text alone names no file
                kept = "left as they were" if len(paths) > 1 else "left as it was"
                raise OSError(e.errno, f"writing {', '.join(map(str, paths))}: {e.strerror or e}; nothing was "
                                       f"replaced (any previous file {kept})") from e
            raise
    return paths


def write_bytes_atomic(path: str | Path, writer) -> Path:
    """One file written through `writer(file_object)`, atomically (write_files_atomic)."""
    return write_files_atomic([(path, writer)])[0]


def write_dir_atomic(folder: str | Path, build: Callable[[Path], Any], what: str = "output folder") -> Any:
    """Build a folder in a temp folder beside it through `build(temp_folder)`, then swap it in
    whole: a folder re-written under the same name and interrupted is the old one, never a mix.

    The old folder is renamed aside, the new one renamed in, the old one removed, with
    SIGINT/SIGTERM held for the swap; on any failure the temp folder is removed.
    Returns what `build` returns.
    """
    folder = check_writable(folder, what, folder=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with terminate_raises():
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
        old, swapped = None, False
        try:
            os.chmod(tmp, 0o777 & ~_umask())
            result = build(tmp)
            with _signals_held():
                if folder.exists():
                    old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".old"))
                    os.replace(folder, old)
                os.replace(tmp, folder)
                swapped = True
        except BaseException:
            if not swapped:  # a signal held during the swap arrives after it: the new folder stays
                shutil.rmtree(tmp, ignore_errors=True)
                if old is not None and not folder.exists():
                    os.replace(old, folder)
                    old = None
            raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    return result


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


def read_json(path: str | Path, what: str, expected: str) -> Any:
    """The JSON in a file we did not necessarily write; any failure is a ValueError/OSError naming
    `what` (the option or role, e.g. "--accuracy-baseline run.json") and `expected` (what to pass).

    A FIFO or device is refused before it is opened (opening a FIFO blocks). Callers check
    the shape of what it returns."""
    path = check_input_file(path, what, f"pass {expected}")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise OSError(e.errno, f"{what}: cannot read it ({e.strerror}); pass {expected}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{what} is not JSON ({e}); pass {expected}") from None
