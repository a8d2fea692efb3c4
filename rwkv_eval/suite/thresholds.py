"""The committed accuracy references of the benchmark gates, refreshed from a run's pytest-benchmark JSON.

    python -m rwkv_eval.suite.thresholds out.json                    # every case of the run
    python -m rwkv_eval.suite.thresholds out.json --only-missing     # add new cases, keep the rest
    python -m rwkv_eval.suite.thresholds out.json --tolerance 0.005  # a wider band for these cases

The file (benchmarks/thresholds.json) maps a reference key (rwkv_eval.suite.gates.reference_key:
profile, model and weights hash, dataset, split and file hash, layer, pooling, device
type and dtype) to the Spearman measured in that run and the tolerance allowed around
it in both directions. The tolerance is the run-to-run noise of a fixed model on fixed
pairs (gates.TOLERANCES, per device and dtype), not the bootstrap CI of the dataset: the
CI says how well the dataset measures the model, not whether the code still computes
the same number. Published numbers are anchored separately (gates.ANCHORS).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .gates import references_from_run
from ..options import real_number
from ..records import check_writable, read_json, write_json_atomic

DEFAULT_FILE = Path("benchmarks") / "thresholds.json"
ABOUT = ("Spearman references per benchmark case, gated two-sided within `tolerance`; refresh with "
         "`python -m rwkv_eval.suite.thresholds RUN.json` (README: how references, tolerances and seeding work)")


def refresh(run_json: Path, path: Path, tolerance: float | None = None, only_missing: bool = False) -> dict:
    """Merge the references of `run_json` into the file at `path` (atomically)."""
    check_writable(path, "--file")  # before reading anything: a device or a folder there is refused
    run = read_json(run_json, str(run_json), "the file of `pytest benchmarks --benchmark-json`")
    new = {k: {"spearman": None if r.value is None else round(float(r.value), 6), "tolerance": r.tolerance}
           for k, r in references_from_run(run, str(run_json), tolerance).items()}
    if not new:
        raise ValueError(f"{run_json} has no benchmark with a spearman in extra_info: "
                         "is it a `pytest benchmarks --benchmark-json` output?")
    doc = {}
    if path.is_file():
        doc = read_json(path, f"--file {path}", "a references file written by this command, or a new path")
        if not isinstance(doc, dict) or not isinstance(doc.get("references", {}), dict):
            raise ValueError(f"{path} is not a references file (no 'references' object); "
                             "move it away or pass another --file")
    refs = dict(doc.get("references", {}))
    for k, v in new.items():
        if not (only_missing and k in refs):
            refs[k] = v
    commit = run.get("commit_info") or {}
    if not isinstance(commit, dict):
        raise ValueError(f"{run_json}: field 'commit_info' is {json.dumps(commit)[:40]}, not an object; expected the "
                         "file of `pytest benchmarks --benchmark-json`")
    doc = {"about": ABOUT, "source_commit": commit.get("id"), "source_dirty": commit.get("dirty"),
           "references": dict(sorted(refs.items()))}
    write_json_atomic(path, doc)
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rwkv_eval.suite.thresholds", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_json", type=Path)
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE, help=f"references file (default {DEFAULT_FILE})")
    ap.add_argument("--tolerance", type=real_number(0), default=None,
                    help="tolerance for these cases (default: measured noise of their device and dtype)")
    ap.add_argument("--only-missing", action="store_true", help="add references for new cases, keep existing ones")
    ap.error = lambda message: ap.exit(2, f"thresholds: error: {message}; see {ap.prog} --help\n")  # one line
    args = ap.parse_args(argv)
    try:
        doc = refresh(args.run_json, args.file, args.tolerance, args.only_missing)
    except (ValueError, OSError) as e:
        print(f"thresholds: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(doc['references'])} references to {args.file}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
