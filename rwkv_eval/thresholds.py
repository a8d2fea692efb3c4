"""Spearman floors for the benchmark gates, refreshed from a run's pytest-benchmark JSON.

    python -m rwkv_eval.thresholds out.json                 # floor = spearman - CI half-width
    python -m rwkv_eval.thresholds out.json --margin 0.01   # floor = spearman - 0.01
    python -m rwkv_eval.thresholds out.json --only-missing  # keep existing floors

The floors file (benchmarks/thresholds.json) maps a case key
`{profile}/{model}/{dataset}-{split}/L{layer}/{pooling}` to the lowest Spearman that
passes. The default margin, the half-width of the bootstrap 95% interval, makes a
failing case one whose drop is larger than the sampling noise of its own dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .records import write_json_atomic

DEFAULT_FILE = Path("benchmarks") / "thresholds.json"


def floors_from_run(run: dict, margin: float | None = None) -> dict[str, float]:
    """Floors for every case of a run that has a defined Spearman."""
    out = {}
    for b in run.get("benchmarks", []):
        info = b.get("extra_info", {})
        s, key = info.get("spearman"), info.get("gate_key")
        if s is None or key is None:
            continue
        if margin is None:
            lo, hi = info.get("spearman_ci95_low"), info.get("spearman_ci95_high")
            m = (hi - lo) / 2 if lo is not None and hi is not None else 0.02
        else:
            m = margin
        out[key] = round(s - m, 4)
    return out


def refresh(run_json: Path, path: Path, margin: float | None, only_missing: bool) -> dict:
    run = json.loads(run_json.read_text(encoding="utf-8"))
    new = floors_from_run(run, margin)
    if not new:
        raise ValueError(f"{run_json} has no benchmark with a spearman and gate_key in extra_info: "
                         "is it a `pytest benchmarks --benchmark-json` output?")
    doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    floors = dict(doc.get("floors", {}))
    for k, v in new.items():
        if not (only_missing and k in floors):
            floors[k] = v
    doc = {
        "about": "Spearman floors per benchmark case; refresh with `python -m rwkv_eval.thresholds RUN.json`",
        "margin": "bootstrap 95% CI half-width" if margin is None else margin,
        "source_commit": run.get("commit_info", {}).get("id"),
        "floors": dict(sorted(floors.items())),
    }
    write_json_atomic(path, doc)
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rwkv_eval.thresholds", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_json", type=Path)
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE, help=f"floors file (default {DEFAULT_FILE})")
    ap.add_argument("--margin", type=float, default=None, help="fixed margin instead of the CI half-width")
    ap.add_argument("--only-missing", action="store_true", help="add floors for new cases, keep existing ones")
    args = ap.parse_args(argv)
    try:
        doc = refresh(args.run_json, args.file, args.margin, args.only_missing)
    except (ValueError, FileNotFoundError, json.JSONDecodeError) as e:
        print(f"thresholds: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(doc['floors'])} floors to {args.file}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
