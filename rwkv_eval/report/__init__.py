"""Turn a pytest-benchmark JSON of the embedding suite into a report people can read.

    pytest benchmarks --benchmark-json out.json
    python -m rwkv_eval.report out.json                              # rwkv-eval-report/<time>-<commit>/
    python -m rwkv_eval.report out.json .benchmarks/*/0001_*.json --out reports/ --name nightly
    python -m rwkv_eval.report out.json --compare compare.json --ood ood.json    # + questions I and II

The first file is the run; any further files are older runs: the first of them is the
baseline of the delta tables, all of them feed the history plot. The default root,
rwkv-eval-report/ in the current folder, is ignored by git (.gitignore): a report of a
local run leaves a checkout clean; --out reports/ is for runs meant to be committed. A
report folder holds

    summary.md                              provenance, models (short name -> full id), what was
                                            skipped, Spearman by layer x pooling, gates, cost,
                                            deltas, throughput, history
    spearman__<model>__<dataset>-<split>.png  Spearman vs layer per pooling, CI bars, GloVe line
    cost_vs_layer.png                       seconds per pair and peak memory vs layer
    history.png                             best Spearman and time per pair across runs
    github-action-benchmark-bigger.json     Spearman, for benchmark-action "customBiggerIsBetter"
    github-action-benchmark-smaller.json    s/pair and peak MB, for "customSmallerIsBetter"

Input: the JSON that `pytest --benchmark-json` writes (pytest-benchmark >= 4): a dict with
machine_info, commit_info, datetime and a list of benchmarks, each with stats and the
extra_info that benchmarks/test_embeddings.py fills (model_key, trained, layer, pooling,
dataset, split, spearman, CI, gate, seconds_per_pair, peak_memory_mb, ...). Benchmarks
without spearman/layer (throughput modules) are listed in their own section.

An undefined Spearman (constant similarities; `null` in the JSON) prints as "undefined",
never "nan". Models with trained=false carry RANDOM_INIT_MARK wherever their accuracy
appears: their Spearman is meaningless, their time and memory are real. Random-init
accuracy is left out of the github-action-benchmark export and of the history's
best-Spearman lines.

Only this package writes report files, all through records.write_*_atomic.
The package has one module per report section (accuracy, gates, cost, history, plots,
export); this one builds the folder and is the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..encoder import layer_id as layer_label
from ..records import Terminated, check_writable, terminate_raises, write_bytes_atomic, write_dir_atomic, write_json_atomic
from .aggregation import aggregation_plots
from .early_exit import early_exit_plots
from . import linear_vs_softmax
from . import diagnostics as diagnostics_report
from . import ood as ood_report
from .export import action_benchmark
from .fmt import default_name
from .linear_vs_softmax import length_rows, load_compare
from .plots import make_plots
from .run import RANDOM_INIT_MARK, Case, Run, load_run, parse_run
from .summary import summary_markdown

__all__ = ["BIGGER_FILE", "DEFAULT_OUT", "RANDOM_INIT_MARK", "SMALLER_FILE", "SUMMARY_FILE", "Case", "Run",
           "build_report", "layer_label", "load_run", "main", "parse_run", "write_report"]

BIGGER_FILE = "github-action-benchmark-bigger.json"
SMALLER_FILE = "github-action-benchmark-smaller.json"
SUMMARY_FILE = "summary.md"
DEFAULT_OUT = Path("rwkv-eval-report")  # untracked (.gitignore), unlike reports/, which holds committed runs


def build_report(run: dict, older: list[dict] | None = None, out_dir: Path = DEFAULT_OUT,
                 name: str | None = None) -> Path:
    """Write summary.md, the PNGs and the github-action-benchmark files for one run.

    Args:
        run: pytest-benchmark JSON (as `load_run` returns it) of the run to report.
        older: earlier runs of the same kind; older[0] is the baseline of the deltas, all
            of them go into the history.
        out_dir: the reports root; the report goes into out_dir/name (default rwkv-eval-report/).
        name: folder name; default "<run datetime>-<commit short id>".

    Returns:
        The report folder.

    Example:
        >>> folder = build_report(load_run("out.json"), [load_run("old.json")])  # doctest: +SKIP
    """
    olds = [parse_run(o, f"older[{i}]") for i, o in enumerate(older or [])]
    return write_report(parse_run(run, "run"), olds, Path(out_dir), name)


def write_report(new: Run, olds: Sequence[Run], out_dir: Path, name: str | None = None,
                 compare: dict | None = None, ood: dict | None = None, diagnostics: list[dict] | None = None) -> Path:
    """build_report on parsed runs (whose `source` names their file).

    compare, ood: the JSON of `rwkv-eval compare --output` / `rwkv-eval ood --output`, for
    the sections of questions I and II (question I also shows the run's length-scaling
    benchmarks); diagnostics: the JSONs of `rwkv-eval evaluate --diagnostics --output`."""
    name = name or default_name(new)
    if name in (".", "..") or "/" in name or "\\" in name or not name.strip():
        raise ValueError(f"report name {name!r} is not a plain folder name; pass e.g. --name nightly-2026-11-26")
    # built in a temp folder and swapped in whole: an interrupted re-write leaves the old report
    folder = Path(out_dir) / name
    write_dir_atomic(folder, lambda tmp: _write_report_files(new, olds, tmp, name, compare, ood, diagnostics),
                     "report folder")
    return folder


def _write_report_files(new: Run, olds: Sequence[Run], folder: Path, name: str, compare: dict | None,
                        ood: dict | None, diagnostics: list[dict] | None) -> None:
    extra, questions = [], []
    if compare or length_rows(new):
        extra.append(lambda plt, out: linear_vs_softmax.make_plots(plt, new, compare, out))
        questions += linear_vs_softmax.linear_vs_softmax_section(new, compare)
    if ood:
        extra.append(lambda plt, out: ood_report.make_plots(plt, ood, out))
        questions += ood_report.ood_section(ood)
    if diagnostics:
        extra.append(lambda plt, out: diagnostics_report.make_plots(plt, diagnostics, out))
        questions += diagnostics_report.diagnostics_section(diagnostics)
    extra += [lambda plt, out: aggregation_plots(plt, new, out), lambda plt, out: early_exit_plots(plt, new, out)]
    plots, note = make_plots(new, olds, folder, extra)
    bigger, smaller = action_benchmark(new)
    write_json_atomic(folder / BIGGER_FILE, bigger)
    write_json_atomic(folder / SMALLER_FILE, smaller)
    text = summary_markdown(new, olds, name, plots, note, questions, compare, ood).encode("utf-8")
    write_bytes_atomic(folder / SUMMARY_FILE, lambda f: f.write(text))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m rwkv_eval.report RUN.json [OLDER.json ...] [--out rwkv-eval-report/] [--name NAME]`."""
    ap = argparse.ArgumentParser(prog="python -m rwkv_eval.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="pytest-benchmark JSON of the run to report")
    ap.add_argument("older", nargs="*", help="older runs: the first is the delta baseline, all go into the history")
    ap.add_argument("--out", default=str(DEFAULT_OUT),
                    help=f"reports root (default: {DEFAULT_OUT}/, untracked; reports/ holds committed runs)")
    ap.add_argument("--name", default=None, help="report folder name (default: <datetime>-<commit>)")
    prog = "rwkv_eval.report"
    ap.error = lambda message: ap.exit(2, f"{prog}: error: {message}; see {ap.prog} --help\n")  # one line
    ap.add_argument("--compare", default=None, help="`rwkv-eval compare --output` JSON: question I section")
    ap.add_argument("--ood", default=None, help="`rwkv-eval ood --output` JSON: question II section")
    ap.add_argument("--diagnostics", action="append", default=[],
                    help="`rwkv-eval evaluate --diagnostics --output` JSON (repeatable): layer diagnostics section")
    args = ap.parse_args(argv)
    try:
        check_writable(args.out, "--out", folder=True)  # the folder that holds the reports
        with terminate_raises():
            new = parse_run(load_run(args.run), args.run)
            olds = [parse_run(load_run(p), p) for p in args.older]
            compare = load_compare(args.compare) if args.compare else None
            ood = ood_report.load_ood(args.ood) if args.ood else None
            diagnostics = [diagnostics_report.load_diagnostics(p) for p in args.diagnostics]
            folder = write_report(new, olds, Path(args.out), args.name, compare, ood, diagnostics)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{prog}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except (ValueError, OSError) as e:
        print(f"{prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a record this module did not foresee: one line, with the files
        print(f"{prog}: error: unexpected {type(e).__name__} ({' '.join(str(e).split())}) while reporting "
              f"{', '.join([args.run, *args.older])}; please report it with that file", file=sys.stderr)
        return 2
    print(folder)
    return 0
