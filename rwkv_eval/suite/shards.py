"""Split a benchmark grid into disjoint shards, and merge the shards' JSONs into one run.

pytest-benchmark disables itself under xdist, so a grid too big for one GPU is split
instead: `pytest benchmarks --rwkv-shard i/N` runs the i-th slice and writes its own
benchmark JSON; `python -m rwkv_eval.suite.shards merge a.json b.json ... -o out.json` joins
them into the JSON one unsharded run would have written (same cases, same gate
verdicts), which `python -m rwkv_eval.report` and the floors refresh read as usual.

Slices are whole models, dealt round-robin in profile order (model j -> shard j mod N):
each shard loads each of its models once, the split depends on the profile alone (not
on what is installed or how long anything takes), and every shard of one profile
agrees on it without talking to the others.

    python -m rwkv_eval.suite.shards merge shard-*.json -o out.json   # exit 1: a gate failed
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from .gates import FAIL, MISSING
from .profiles import ModelCase, Profile
from ..records import check_writable, read_json, write_json_atomic


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'2/3' -> (2, 3); None -> None (the whole grid)."""
    if text is None:
        return None
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 1 <= int(index) <= int(count):
        raise ValueError(f"--rwkv-shard {text!r}: expected i/N with 1 <= i <= N, e.g. 1/3")
    return int(index), int(count)


def select_models(models: Sequence[ModelCase], shard: tuple[int, int] | None) -> tuple[ModelCase, ...]:
    """The models of shard (i, N): every N-th model of the profile, starting at the i-th."""
    if shard is None:
        return tuple(models)
    index, count = shard
    return tuple(m for j, m in enumerate(models) if j % count == index - 1)


def shard_header(profile: Profile, shard: tuple[int, int] | None, model_keys: Sequence[str]) -> dict:
    """What merge checks: one profile, one shard count, each shard once."""
    index, count = shard or (1, 1)
    return {"profile": profile.name, "index": index, "count": count, "models": list(model_keys),
            "datasets": [d.key for d in profile.datasets]}


def merge(runs: Sequence[dict], names: Sequence[str] | None = None) -> dict:
    """One benchmark JSON from the JSONs of shards 1..N of one profile.

    Raises ValueError when a shard is missing or repeated, the shards ran different
    profiles or datasets, or two shards hold the same case."""
    names = list(names or [f"input {i + 1}" for i in range(len(runs))])
    if not runs:
        raise ValueError("merge needs the JSON of every shard; got none")
    headers = [check_shard_run(run, name) for run, name in zip(runs, names)]
    first = headers[0]
    for h, name in zip(headers, names):
        for key in ("profile", "count", "datasets"):
            if h[key] != first[key]:
                raise ValueError(f"{name}: {key} {h[key]!r} differs from {names[0]}'s {first[key]!r}; "
                                 "merge shards of one run only")
    indices = sorted(h["index"] for h in headers)
    if indices != list(range(1, first["count"] + 1)):
        missing = sorted(set(range(1, first["count"] + 1)) - set(indices))
        repeated = sorted({i for i in indices if indices.count(i) > 1})
        raise ValueError(f"shards of {first['count']}: missing {missing or 'none'}, repeated {repeated or 'none'}; "
                         "pass each shard's JSON exactly once")
    benchmarks, seen = [], {}
    for run, name in zip(runs, names):
        for b in run.get("benchmarks", []):
            if b["fullname"] in seen:
                raise ValueError(f"case {b['fullname']} is in both {seen[b['fullname']]} and {name}")
            seen[b["fullname"]] = name
            benchmarks.append(b)
    # back to profile order: the k-th model of shard i is model k*N + i-1 (select_models)
    order = {key: k * h["count"] + h["index"] - 1 for h in headers for k, key in enumerate(h["models"])}
    benchmarks.sort(key=lambda b: order.get(b.get("extra_info", {}).get("model_key"), len(order)))
    merged = {k: v for k, v in runs[0].items() if k not in ("benchmarks", "rwkv_shard")}
    merged["benchmarks"] = benchmarks
    merged["rwkv_shard"] = {**first, "index": None, "models": sorted(order, key=order.get)}
    merged["shards"] = [{"file": name, "index": h["index"], "machine_info": run.get("machine_info"),
                         "commit_info": run.get("commit_info"), "n_benchmarks": len(run.get("benchmarks", []))}
                        for run, name, h in zip(runs, names, headers)]
    metas = [run["rwkv_eval_run"] for h, run in sorted(zip(headers, runs), key=lambda hr: hr[0]["index"])
             if isinstance(run.get("rwkv_eval_run"), dict)]
    if metas:  # the report's model table and skipped list: every shard's models and skipped tests
        merged["rwkv_eval_run"] = {**metas[0], "models": [m for meta in metas for m in meta.get("models", [])],
                                   "skipped_tests": [t for meta in metas for t in meta.get("skipped_tests", [])]}
    return merged


_HEADER_TYPES = {"profile": (str, "a string"), "index": (int, "a whole number"), "count": (int, "a whole number"),
                 "models": (list, "a list"), "datasets": (list, "a list")}
_EXPECTED = "expected the --benchmark-json of a `pytest benchmarks --rwkv-shard i/N` run"


def check_shard_run(run: object, name: str) -> dict:
    """The rwkv_shard header of one shard's JSON, after checking every field merge reads: a
    foreign or damaged file is a ValueError naming the file and the field, never a traceback."""
    def wrong(field: str, value: object, expected: str) -> ValueError:
        return ValueError(f"{name}: {field} is {json.dumps(value)[:40]} ({type(value).__name__}), expected "
                          f"{expected}; {_EXPECTED}")

    if not isinstance(run, dict):
        raise wrong("the top level", run, "an object")
    h = run.get("rwkv_shard")
    if not isinstance(h, dict):
        raise ValueError(f"{name}: no rwkv_shard header; {_EXPECTED}")
    for key, (kind, described) in _HEADER_TYPES.items():
        if key not in h:
            raise ValueError(f"{name}: rwkv_shard has no {key!r}; {_EXPECTED}")
        if isinstance(h[key], bool) or not isinstance(h[key], kind):
            raise wrong(f"rwkv_shard.{key}", h[key], described)
    if not 1 <= h["index"] <= h["count"]:
        raise ValueError(f"{name}: rwkv_shard index {h['index']} of count {h['count']}; expected 1 <= index <= count")
    if not all(isinstance(m, str) for m in h["models"]):
        raise wrong("rwkv_shard.models", h["models"], "a list of model keys (strings)")
    benchmarks = run.get("benchmarks", [])
    if not isinstance(benchmarks, list):
        raise wrong("benchmarks", benchmarks, "a list")
    for i, b in enumerate(benchmarks):
        if not isinstance(b, dict):
            raise wrong(f"benchmarks[{i}]", b, "an object")
        if not isinstance(b.get("fullname"), str):
            raise wrong(f"benchmarks[{i}].fullname", b.get("fullname"), "a string (the case's test id)")
        if not isinstance(info := b.get("extra_info", {}), dict):
            raise wrong(f"benchmarks[{i}].extra_info", info, "an object")
        for key in ("model_key", "gate", "gate_key"):
            if not isinstance(info.get(key, ""), str):
                raise wrong(f"benchmarks[{i}].extra_info.{key}", info[key], "a string")
    return h


def gate_counts(run: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for b in run["benchmarks"]:
        gate = b.get("extra_info", {}).get("gate", "no gate")
        counts[gate] = counts.get(gate, 0) + 1
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rwkv_eval.suite.shards", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    m = sub.add_parser("merge", help="merge the benchmark JSONs of shards 1..N into one")
    m.add_argument("inputs", nargs="+", type=Path)
    m.add_argument("-o", "--output", type=Path, required=True)
    ap.error = lambda message: ap.exit(2, f"rwkv_eval.suite.shards: error: {message}; see {ap.prog} --help\n")
    args = ap.parse_args(argv)
    try:
        check_writable(args.output, "-o")  # before reading the shards
        runs = [read_json(p, str(p), "a benchmark JSON of a `pytest benchmarks --rwkv-shard i/N` run")
                for p in args.inputs]
        merged = merge(runs, [str(p) for p in args.inputs])
        write_json_atomic(args.output, merged)
    except (ValueError, OSError) as e:
        print(f"rwkv_eval.suite.shards: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    counts = gate_counts(merged)
    print(f"{args.output}: {len(merged['benchmarks'])} cases from {len(runs)} shards; gates: "
          + ", ".join(f"{n} {g}" for g, n in sorted(counts.items())))
    for b in merged["benchmarks"]:
        if b.get("extra_info", {}).get("gate") in (FAIL, MISSING):
            print(f"  {b['extra_info']['gate']} {b['extra_info'].get('gate_key', b['fullname'])}")
    return 1 if counts.get(FAIL) or counts.get(MISSING) else 0


if __name__ == "__main__":
    sys.exit(main())
