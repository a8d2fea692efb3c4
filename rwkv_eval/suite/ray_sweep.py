"""Run a benchmark grid over a Ray cluster: one shard per task, one GPU each, merged.

    python -m rwkv_eval.suite.ray_sweep --address ray://head:10001 --shards 8 -o out.json \\
        -- --rwkv-profile sweep --model RWKV/v6-Finch-1B6-HF --device cuda

Ray schedules; the grid is split by `--rwkv-shard i/N` (rwkv_eval.suite.shards: whole models,
so each task loads its models once) and each task runs the ordinary benchmark suite,
`pytest benchmarks --rwkv-shard i/N --benchmark-json ...`, in a subprocess on its node:
pytest-benchmark, the gates and the records are exactly those of a one-machine run.
The tasks hand back their JSONs; the driver merges them (shards.merge) into one file
for `python -m rwkv_eval.report` and the floors refresh.

Every node needs this checkout at `--root` (a shared file system or the same path), or
pass `--upload` to ship it with Ray's runtime_env working_dir. Needs the `ray` extra:
`pip install 'rwkv-eval[ray]'`. Exit status: 0 all gates pass, 1 a shard or gate
failed (the merged JSON is still written when every shard wrote one), 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from ..records import write_json_atomic
from .gates import FAIL, MISSING
from .shards import gate_counts, merge

ROOT = Path(__file__).resolve().parents[2]
UPLOAD_EXCLUDES = [".venv", ".git", "reports", ".benchmarks", "**/__pycache__", ".hypothesis"]


def run_shard(index: int, count: int, pytest_args: Sequence[str], root: str) -> dict:
    """One shard, in a subprocess of this worker: its JSON, exit status and output tail."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"shard-{index}-of-{count}.json"
        cmd = [sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", "-q",
               "--rwkv-shard", f"{index}/{count}", "--benchmark-json", str(out), *pytest_args]
        res = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        return {"index": index, "returncode": res.returncode, "pid": os.getpid(),
                "json": json.loads(out.read_text()) if out.is_file() else None,
                "output_tail": (res.stdout + res.stderr)[-4000:]}


def run_sweep(shards: int, pytest_args: Sequence[str], *, num_gpus: float = 1, num_cpus: float = 1,
              root: str | Path = ROOT) -> list[dict]:
    """Run shards 1..N as Ray tasks on the cluster `ray.init` connected to; results by index.

    Each task runs in a fresh worker process (max_calls=1): a shard's models and CUDA
    context never outlive it or leak into the next shard."""
    import ray

    if shards < 1:
        raise ValueError(f"--shards must be >= 1; got {shards}")
    task = ray.remote(num_gpus=num_gpus, num_cpus=num_cpus, max_calls=1)(run_shard)
    refs = [task.remote(i, shards, list(pytest_args), str(root)) for i in range(1, shards + 1)]
    return sorted(ray.get(refs), key=lambda r: r["index"])


def gather(results: Sequence[dict], output: Path) -> int:
    """Merge the shards' JSONs into `output`; print each shard's status and the gates."""
    status = 0
    for r in results:
        print(f"shard {r['index']}/{len(results)}: pytest exit {r['returncode']} (worker pid {r['pid']})")
        if r["returncode"] not in (0, 1) or r["json"] is None:
            print(r["output_tail"], file=sys.stderr)
        status = max(status, 1 if r["returncode"] else 0)
    missing = [r["index"] for r in results if r["json"] is None]
    if missing:
        print(f"rwkv_eval.suite.ray_sweep: error: shards {missing} wrote no benchmark JSON; nothing merged", file=sys.stderr)
        return 1
    merged = merge([r["json"] for r in results], [f"shard {r['index']}" for r in results])
    write_json_atomic(output, merged)
    counts = gate_counts(merged)
    print(f"{output}: {len(merged['benchmarks'])} cases from {len(results)} shards; gates: "
          + ", ".join(f"{n} {g}" for g, n in sorted(counts.items())))
    return max(status, 1 if counts.get(FAIL) or counts.get(MISSING) else 0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(prog="python -m rwkv_eval.suite.ray_sweep", description=__doc__.split("\n")[0],
                                 epilog="arguments after -- go to pytest benchmarks (profile, model, device, ...)")
    ap.add_argument("--address", default=None, help="Ray cluster address (ray://host:10001, auto); default: local")
    ap.add_argument("--shards", type=int, required=True, help="number of shards = Ray tasks")
    ap.add_argument("--gpus-per-shard", type=float, default=1.0, help="GPUs each task reserves (default 1)")
    ap.add_argument("--cpus-per-shard", type=float, default=1.0)
    ap.add_argument("--root", default=str(ROOT), help="this checkout's path on every node (default: here)")
    ap.add_argument("--upload", action="store_true", help="ship --root to the nodes (Ray runtime_env working_dir)")
    ap.add_argument("-o", "--output", type=Path, required=True, help="merged benchmark JSON")
    args = ap.parse_args(own)
    try:
        import ray
    except ImportError:
        print("rwkv_eval.suite.ray_sweep: error: Ray is not installed; pip install 'rwkv-eval[ray]'", file=sys.stderr)
        return 2
    if args.shards < 1:
        print(f"rwkv_eval.suite.ray_sweep: error: --shards must be >= 1; got {args.shards}", file=sys.stderr)
        return 2
    runtime_env = {"working_dir": args.root, "excludes": UPLOAD_EXCLUDES} if args.upload else None
    ray.init(address=args.address, runtime_env=runtime_env)
    root = "." if args.upload else args.root
    results = run_sweep(args.shards, pytest_args, num_gpus=args.gpus_per_shard, num_cpus=args.cpus_per_shard,
                        root=root)
    return gather(results, args.output)


if __name__ == "__main__":
    sys.exit(main())
