"""Accuracy gates: which reference a benchmark case is held to, how closely, and the verdict.

A case passes only when its Spearman is within a tolerance of a reference, in either
direction (an unexplained jump up is as much a bug as a drop: a pooling that silently
changed, a layer read one block off). References come from, in this order:

1. an explicit baseline run (`--accuracy-baseline RUN.json`, pytest-benchmark JSON);
2. the history in `--benchmark-storage` (the newest saved run that has the case);
3. the committed references file (`--thresholds`, default benchmarks/thresholds.json).

The reference key holds everything that changes the number — profile, model id and
weights hash, dataset, split and file hash, layer, pooling and prompt template, device
type and dtype — so a different model, prompt or device never meets a stale reference: it has none, and a case
without a reference fails unless the run accepts new cases (`--accept-new-cases`, which
is how the first nightly run seeds the history).

The default tolerance is per (device type, dtype), from measured run-to-run and
batch-composition noise of a fixed model on fixed pairs (README, "How references,
tolerances and seeding work"). Anchors are published numbers a case must reproduce
whatever its reference says (all-MiniLM-L6-v2 on STS-B test: analyses/compare.REFERENCES).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..analyses.compare import REFERENCES
from ..encoder import layer_id
from ..evaluation import is_block
from ..records import read_json

# |Δρ| allowed between a case and its reference, per (device type, dtype).
# cpu/float32: measured max over batch sizes 1/7/32/64, shuffled pair order and repeated
# runs was 2.4e-6 (README); 1e-3 leaves room for other CPUs and BLAS builds while a
# pooling or layer mutant moves the smoke cases by >= 3e-3.
# Half precision and CUDA are provisional until measured (README says how).
TOLERANCES: dict[tuple[str, str], float] = {
    ("cpu", "float32"): 1e-3,
    ("cuda", "float32"): 2e-3,
    ("cpu", "float16"): 1e-2,
    ("cpu", "bfloat16"): 2e-2,
    ("cuda", "float16"): 1e-2,
    ("cuda", "bfloat16"): 2e-2,
}

# Published numbers our implementation must reproduce: key without profile/device
# (model/dataset-split/layer/pooling) -> (value, tolerance, source). Derived from the
# single-block anchors of compare.REFERENCES, where each published figure is written once
# (an aggregation's figure, BERT's first-last avg., has no single-layer case to gate).
ANCHORS: dict[str, tuple[float, float, str]] = {
    f"{ref.key}/{dataset}-test/{layer_id(a.setting)}/{a.pooling}": (value / 100, 0.002, f"{a.source}, {ref.spec}")
    for ref in REFERENCES for a in ref.anchors if is_block(a.setting) for dataset, value in a.published.items()}

PASS, FAIL, NEW, MISSING = "pass", "FAIL", "new (accepted)", "no reference"


def tolerance_for(device: str, dtype: str) -> float:
    """Default tolerance of a (device, dtype); an unknown pair is an error, not a guess."""
    key = (device.split(":")[0], dtype)
    if key not in TOLERANCES:
        raise ValueError(f"no accuracy tolerance for device {device!r} dtype {dtype!r}; "
                         f"known: {sorted(TOLERANCES)}; add a measured one to rwkv_eval.suite.gates.TOLERANCES")
    return TOLERANCES[key]


def _short(x: Any) -> str:
    """12 hex characters identifying a revision (a sha256, a hub commit, a list of file hashes, a label)."""
    if isinstance(x, str) and len(x) >= 12 and all(c in "0123456789abcdef" for c in x.lower()):
        return x[:12].lower()
    return hashlib.sha256(json.dumps(x, sort_keys=True).encode()).hexdigest()[:12]


def reference_key(info: dict, metric: str = "spearman") -> str:
    """The key of one gated number of a case, from its extra_info:
    `{profile}/{model_key}@{weights}/{dataset}-{split}@{data}/{layer}/{pooling}/{device}-{dtype}`,
    plus `/{metric}` for an STS aggregate other than the case's own Spearman. A prompted
    case's pooling reads `last+promptEOL` (`last+custom@{hash of the text}`); unprompted
    keys are as they were before templates existed, so committed references stay valid."""
    weights = info.get("sha256") or info.get("revision")
    dataset = info["dataset"].split("/")[0]
    key = (f"{info['profile']}/{info['model_key']}@{_short(weights)}/{dataset}-{info['split']}@"
           f"{_short(info.get('dataset_revision'))}/{layer_id(info['layer'])}/{_pooling_id(info)}/"
           f"{str(info['device']).split(':')[0]}-{info['dtype']}")
    return key if metric == "spearman" else f"{key}/{metric}"


def _pooling_id(info: dict) -> str:
    """The pooling with the prompt that shaped the pooled states: the key can move a model key
    (a profile names models as it likes), never the fact that the text was prompted."""
    name = info.get("template")
    if name is None:
        return info["pooling"]
    return f"{info['pooling']}+{name if name != 'custom' else 'custom@' + _short(info.get('template_text'))}"


def anchor_key(info: dict) -> str:
    """Published numbers are for unprompted text: a prompted case never matches one."""
    return f"{info['model_key']}/{info['dataset'].split('/')[0]}-{info['split']}/{layer_id(info['layer'])}/{_pooling_id(info)}"


@dataclass(frozen=True)
class Reference:
    value: float | None  # None: the reference run's Spearman was undefined too
    tolerance: float | None  # None: the run's default for its device and dtype
    source: str


@dataclass(frozen=True)
class Verdict:
    key: str
    status: str  # PASS | FAIL | NEW | MISSING
    measured: float | None
    reference: float | None
    tolerance: float | None
    source: str | None

    def line(self) -> str:
        """One line per case, the same for every gate: status, key, measured vs reference and where it came from."""
        m = "undefined" if self.measured is None else f"{self.measured:.4f}"
        if self.status == MISSING:
            return f"{self.status:14s} {self.key}  spearman={m}"
        if self.status == NEW:
            return f"{self.status:14s} {self.key}  spearman={m}  (recorded as the first reference)"
        r = "undefined" if self.reference is None else f"{self.reference:.4f}"
        d = "" if None in (self.measured, self.reference) else f" Δ={self.measured - self.reference:+.4f}"
        return f"{self.status:14s} {self.key}  spearman={m} reference={r}{d} ±{self.tolerance:g}  [{self.source}]"


def judge(key: str, measured: float | None, ref: Reference | None, default_tolerance: float,
          accept_new: bool = False) -> Verdict:
    """Two-sided check of one number against its reference."""
    if ref is None:
        return Verdict(key, NEW if accept_new else MISSING, measured, None, None, None)
    tol = default_tolerance if ref.tolerance is None else ref.tolerance
    if measured is None or ref.value is None:
        ok = measured is None and ref.value is None
    else:
        ok = abs(measured - ref.value) <= tol + 1e-12
    return Verdict(key, PASS if ok else FAIL, measured, ref.value, tol, ref.source)


def check_anchor(info: dict, measured: float | None) -> Verdict | None:
    """The verdict against a published number, for the cases that have one (else None)."""
    a = ANCHORS.get(anchor_key(info))
    if a is None:
        return None
    value, tol, source = a
    return judge(f"anchor {anchor_key(info)}", measured, Reference(value, tol, f"published: {source}"), tol)


def _number(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x))


def load_references_file(path: str | Path) -> dict[str, Reference]:
    """Read a committed references file. Anything unreadable is a ValueError naming the
    file and what is wrong (the suite turns it into a usage error: a gate that silently
    turned off because of a typo in a path would pass everything)."""
    path = Path(path)
    hint = "expected {\"references\": {KEY: {\"spearman\": NUMBER, \"tolerance\": NUMBER (optional)}}}; " \
           "write it with `python -m rwkv_eval.suite.thresholds RUN.json`"
    try:
        doc = read_json(path, f"references file {path}",
                        f"--thresholds FILE (default benchmarks/thresholds.json); {hint}")
    except OSError as e:  # missing or unreadable: a usage error, as the callers report ValueErrors
        raise ValueError(str(e)) from e
    if not isinstance(doc, dict) or not isinstance(doc.get("references"), dict):
        got = type(doc).__name__ if not isinstance(doc, dict) else f"keys {sorted(doc)[:6]}"
        raise ValueError(f"references file {path} has no 'references' object (got {got}); {hint}")
    out = {}
    for key, rec in doc["references"].items():
        if not isinstance(rec, dict) or "spearman" not in rec:
            raise ValueError(f"references file {path}: entry {key!r} is {rec!r}, not an object with 'spearman'; {hint}")
        if not _number(rec["spearman"]):
            raise ValueError(f"references file {path}: entry {key!r} has spearman {rec['spearman']!r}, "
                             f"not a number or null; {hint}")
        tol = rec.get("tolerance")
        if tol is not None and not (_number(tol) and tol >= 0):
            raise ValueError(f"references file {path}: entry {key!r} has tolerance {tol!r}, "
                             f"not a non-negative number; {hint}")
        out[key] = Reference(rec["spearman"], rec.get("tolerance"), f"references file {path}")
    return out


def gated_numbers(info: dict) -> dict[str, float | None]:
    """The numbers a case is gated on: its Spearman, and for an STS year the `mean` and
    `wmean` aggregates beside the `concat` one (the case's own Spearman)."""
    out = {"spearman": info.get("spearman")}
    for name in ("mean", "wmean"):
        if f"spearman_{name}" in info:
            out[name] = info[f"spearman_{name}"]
    return out


def references_from_run(run: object, source: str, tolerance: float | None = None) -> dict[str, Reference]:
    """Every gated number of a pytest-benchmark JSON run, keyed like reference_key: the one
    reader of a run, for the baseline, the history and the references file's refresh
    (suite/thresholds.py).

    Each reference carries `tolerance`, else the default of the device and dtype it was
    measured on (which its key names, so it is the default of any case that meets it).
    Benchmarks without a Spearman (throughput) are skipped.

    Raises:
        ValueError: `run` is not a pytest-benchmark JSON object, or a case with a Spearman
            lacks what its key needs (a case of another suite, or a broken file).
    """
    if not isinstance(run, dict) or not isinstance(run.get("benchmarks"), list):
        raise ValueError(f"{source}: expected a pytest-benchmark JSON object with a 'benchmarks' list, "
                         f"got {type(run).__name__}; pass the file of `pytest benchmarks --benchmark-json`")
    out = {}
    for i, b in enumerate(run["benchmarks"]):
        info = b.get("extra_info") if isinstance(b, dict) else None
        if not isinstance(info, dict) or "spearman" not in info:
            continue  # throughput benchmarks have no accuracy
        try:
            _check_key_fields(info)
            tol = tolerance if tolerance is not None else tolerance_for(str(info["device"]), str(info["dtype"]))
            for metric, value in gated_numbers(info).items():
                if not _number(value):
                    raise TypeError(f"{metric} is {value!r}, not a finite number or null")
                out[reference_key(info, metric)] = Reference(value, tol, source)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{source}: benchmarks[{i}] ({b.get('name', '?')}) cannot be keyed: "
                             f"{type(e).__name__}: {e}; expected extra_info from benchmarks/test_embeddings.py") from e
    return out


_KEY_TEXT = ("profile", "model_key", "dataset", "split", "pooling", "device", "dtype")


def _check_key_fields(info: dict) -> None:
    """The extra_info fields reference_key reads, with their JSON types (a TypeError naming the field)."""
    for field in _KEY_TEXT:
        if field not in info:
            raise KeyError(field)
        if not isinstance(info[field], str):
            raise TypeError(f"field {field!r} is {json.dumps(info[field])[:40]}, not a string")
    if isinstance(info.get("layer"), bool) or not isinstance(info.get("layer"), (int, str)):
        raise TypeError(f"field 'layer' is {json.dumps(info.get('layer'))[:40]}, not a block index or a layer name")
    if not isinstance(info.get("template"), (str, type(None))):
        raise TypeError(f"field 'template' is {json.dumps(info['template'])[:40]}, not a string or null")


def load_run_references(path: str | Path) -> dict[str, Reference]:
    """References from one baseline run file; a missing or foreign file is a ValueError."""
    try:
        run = read_json(path, f"--accuracy-baseline {path}", "a JSON written by `pytest benchmarks "
                        "--benchmark-json` or saved by --benchmark-autosave")
    except OSError as e:  # a file that cannot be read is a usage error of the option, as a missing one is
        raise ValueError(str(e)) from e
    refs = references_from_run(run, f"baseline run {path}")
    if not refs:
        raise ValueError(f"--accuracy-baseline {path} has no benchmark with a spearman in "
                         "extra_info: is it a `pytest benchmarks --benchmark-json` output of this suite?")
    return refs


def history_references(storage: str | Path) -> dict[str, Reference]:
    """References from pytest-benchmark's file storage: for each key the newest saved run
    that has it (runs are NNNN_*.json, the counter orders them). Unreadable files are skipped
    (the storage is pytest-benchmark's, not ours)."""
    if "://" in str(storage) and not str(storage).startswith("file://"):
        raise ValueError(f"--benchmark-storage {storage}: only a file:// storage can serve as accuracy history")
    root = Path(str(storage).removeprefix("file://"))
    files = sorted(root.glob("*/*.json"), key=lambda p: (p.name.split("_")[0], p.stat().st_mtime))
    out: dict[str, Reference] = {}
    for f in files:  # oldest first, so newer runs overwrite
        try:
            out.update(references_from_run(read_json(f, f"history {f}", "a pytest-benchmark JSON"), f"history {f}"))
        except (OSError, ValueError):  # read_json refuses FIFOs and devices (opening one would block)
            continue
    return out


def merge(*layers: dict[str, Reference]) -> dict[str, Reference]:
    """Earlier arguments win: baseline run, then history, then the references file."""
    out: dict[str, Reference] = {}
    for layer in reversed(layers):
        out.update(layer)
    return out


def judge_case(info: dict, references: dict[str, Reference], accept_new: bool = False) -> list[Verdict]:
    """Judge a case's gated numbers (and its published anchor, if any) and record the
    verdicts in its extra_info `info`: gate (the worst status), gate_key, reference,
    tolerance, reference_source, gates (every verdict) and accept_new_cases."""
    tolerance = tolerance_for(str(info["device"]), str(info["dtype"]))
    verdicts = [judge(reference_key(info, metric), value, references.get(reference_key(info, metric)),
                      tolerance, accept_new) for metric, value in gated_numbers(info).items()]
    if (anchor := check_anchor(info, info.get("spearman"))) is not None:
        verdicts.append(anchor)
    main = verdicts[0]
    info["gate_key"] = main.key
    info["gate"] = next((v.status for v in verdicts if v.status in (FAIL, MISSING)), main.status)
    info["reference"], info["tolerance"], info["reference_source"] = main.reference, main.tolerance, main.source
    info["gates"] = [{"key": v.key, "status": v.status, "measured": v.measured, "reference": v.reference,
                      "tolerance": v.tolerance, "source": v.source} for v in verdicts]
    info["accept_new_cases"] = accept_new
    return verdicts


def summary_lines(verdicts: Iterable[Verdict]) -> list[str]:
    """Counts, then one line per case that did not pass."""
    verdicts = list(verdicts)
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.status] = counts.get(v.status, 0) + 1
    lines = [", ".join(f"{n} {s}" for s, n in sorted(counts.items()))]
    lines += ["  " + v.line() for v in verdicts if v.status != PASS]
    if any(v.status == MISSING for v in verdicts):
        lines.append("cases without a reference fail: give a baseline (--accuracy-baseline RUN.json or "
                     "--benchmark-storage with a saved run), add them to the references file "
                     "(python -m rwkv_eval.suite.thresholds RUN.json), or accept them with --accept-new-cases")
    return lines
