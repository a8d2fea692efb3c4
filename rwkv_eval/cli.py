"""`rwkv-eval` (also `python -m rwkv_eval`): score a model or export embeddings without code.

    rwkv-eval evaluate --model glove-6b-50d --dataset mrpc --split validation --json
    rwkv-eval evaluate --model RWKV/v6-Finch-1B6-HF --layers 1,3,5,7,9,11 --pooling mean,last
    rwkv-eval embed --model tiny.pth --layers 0,1 --pooling mean --input s.txt --output e.npz

Only this module reads argv and environment variables; it builds a frozen RunConfig and
hands plain values to the package. Every flag, path and data root is checked before a
model loads, so a typo costs seconds, not a model load. Errors print one line to stderr,
`rwkv-eval: error: <what, where, what to do>`, and exit with 2 (usage errors too); Ctrl-C
prints one line and exits 130, SIGTERM one line and 143, in both cases after removing any
temporary file. A result that differs from what was asked (sentences cut, duplicate pairs,
no CI) prints `rwkv-eval: warning: ...` and is a field of the records. `--debug` (or
RWKV_EVAL_DEBUG=1) shows the traceback of an error instead.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, NoReturn, Sequence

from . import __version__
from .datasets.registry import SPLITS, get, names
from .options import (DTYPES, SEED_MAX, check_dtype, check_layers, check_poolings, number_list, once_action,
                      real_number, whole_number)

PAIR_COUNT = whole_number(3, meaning=" (pairs: a rank correlation needs at least 3)")  # --subset, --max-pairs
AGGREGATE_NAMES = ("first_last", "emb_last", "all_mean")  # evaluation.STUDY_AGGREGATIONS, kept light (a test ties them)


@dataclass(frozen=True)
class RunConfig:
    model: str
    layers: str | None
    poolings: tuple[str, ...]
    device: str
    dtype: str
    backend: str
    tokenizer: str | None
    revision: str | None
    trust_remote_code: bool
    batch_size: int
    max_length: int | None
    seed: int
    template: str | None = None


PROG = "rwkv-eval"
DEBUG_ENV = "RWKV_EVAL_DEBUG"
CACHE_ENV = "RWKV_EVAL_CACHE_DIR"  # the embedding cache's folder when --cache-dir is not given


class StageError(RuntimeError):
    """An exception the package did not anticipate, with what the command was doing and on which file."""


def _check_split(dataset: str, split: str | None) -> str:
    """The split to load; one that the dataset does not have is an error, never replaced by another."""
    spec = get(dataset)
    if split is None:
        return spec.default_split
    if split not in spec.splits:
        raise ValueError(f"--split {split} does not apply to --dataset {dataset}; it has {', '.join(spec.splits)}"
                         + (f" ({spec.title}, shipped in the package)" if spec.shipped else ""))
    return split


def _data_root() -> str | None:
    """$RWKV_EVAL_DATA, the data root the loaders try when --data-dir is not given."""
    from .datasets import DATA_ENV

    return os.environ.get(DATA_ENV) or None


def _template(args: argparse.Namespace) -> str | None:
    """--template, checked before any model is loaded."""
    from .templates import resolve_template

    spec = getattr(args, "template", None)
    resolve_template(spec)
    return spec


def build_config(args: argparse.Namespace) -> RunConfig:
    """One model's settings, every flag checked (the checks the pytest options share: options.py)."""
    from .measure import resolve_device

    check_layers(args.layers)  # --batch-size, --max-length, --seed: their argparse types (options.whole_number)
    return RunConfig(
        model=args.model,
        layers=args.layers,
        poolings=check_poolings(args.pooling),
        device=resolve_device(args.device, "--device"),
        dtype=check_dtype(args.dtype),
        backend=args.backend,
        tokenizer=args.tokenizer,
        revision=args.revision,
        trust_remote_code=args.trust_remote_code,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        template=_template(args),
    )


def check_data_args(dataset: str, split: str | None, data_dir: str | None) -> str:
    """--dataset / --split / --data-dir -> the split to load. The bundled sample ships inside
    the package: a --data-dir, or a split it does not have, would be silently ignored, so
    both are errors."""
    split = _check_split(dataset, split)
    if get(dataset).shipped and data_dir is not None:
        raise ValueError(f"--data-dir does not apply to --dataset {dataset} (it ships inside the package); "
                         "drop --data-dir, or name a dataset of the data root (e.g. --dataset stsb)")
    return split


class Checked(NamedTuple):
    """What check_args found: one RunConfig per --model, in order, and the split to load."""

    configs: tuple[RunConfig, ...]
    split: str | None  # None: the command takes no --dataset


def check_args(args: argparse.Namespace) -> Checked:
    """Every subcommand's shared flags, data arguments and output path, checked before any
    model loads, so a typo costs seconds, not a multi-GB load. Each command calls it first
    and then checks its own flags (still before a model loads). Cheapest first: the output
    path and the data arguments need no torch, so their errors come in a fraction of a second;
    callers import the heavy modules (torch, scipy) after this returns."""
    from .records import check_writable

    if args.output:
        check_writable(args.output, "--output")
    split = check_data_args(args.dataset, args.split, args.data_dir) if "dataset" in args else None
    models = args.model if isinstance(args.model, list) else [args.model]
    layers = [args.layers] * len(models)
    if "layers_b" in args:  # compare: model B's own layers, named by their own flag in an error
        check_layers(args.layers_b, "--layers-b")
        layers = [args.layers, args.layers_b]
    configs = tuple(build_config(argparse.Namespace(**(vars(args) | {"model": m, "layers": la})))
                    for m, la in zip(models, layers))
    return Checked(configs, split)


@contextmanager
def _during(what: str) -> Iterator[None]:
    """Give an exception the package did not anticipate the context a user needs: what was being
    done, on which file. The project's own errors already say so and pass through unchanged."""
    try:
        yield
    except (ValueError, TypeError, OSError, ImportError):
        raise
    except Exception as e:  # noqa: BLE001 - wrapped with context, re-raised, shown in one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise StageError(f"{what}: unexpected {type(e).__name__}{': ' + first if first else ''}") from e


def warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def load_model(cfg: RunConfig):
    import torch

    from .encoder import parse_layers
    from .models.load import load_encoder
    from .templates import with_template

    torch.manual_seed(cfg.seed)
    with _during(f"loading model {cfg.model}"):
        enc = load_encoder(cfg.model, device=cfg.device, dtype=getattr(torch, cfg.dtype), backend=cfg.backend,
                           tokenizer=cfg.tokenizer, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code,
                           max_length=cfg.max_length, seed=cfg.seed)
    enc = with_template(enc, cfg.template)
    return enc, parse_layers(cfg.layers, enc.layers())


def load_models(cfgs: Sequence[RunConfig], aggregations: Sequence[str]) -> list:
    """Every model of a comparison, each with its layers and every --aggregate resolved for it, before
    any of them encodes: a setting one model cannot take (an aggregation of GloVe's single layer)
    fails in seconds, not after the other models have encoded ~20k pairs."""
    from .evaluation import study_aggregation

    models = [load_model(cfg) for cfg in cfgs]
    for enc, _ in models:
        for name in aggregations:
            study_aggregation(name, enc)
    return models


def run_warnings(enc, cfg: RunConfig, n_sentences: int, n_truncated: int) -> list[str]:
    """Where the run differs from what was asked, whatever the data: precision/device, cut sentences."""
    out = []
    prov = enc.provenance()
    if prov.get("dtype") not in (None, cfg.dtype) or prov.get("device") not in (None, cfg.device):
        out.append(f"{enc.name} ran in {prov.get('dtype')} on {prov.get('device')}, not the requested {cfg.dtype} on "
                   f"{cfg.device} (the records say what ran)")
    if n_truncated:
        out.append(f"{n_truncated} of {n_sentences} sentences were longer than {enc.max_length} tokens and cut "
                   "(n_truncated); raise --max-length to keep them whole")
    return out


def data_warnings(record: dict) -> list[str]:
    """What is particular to one record's pair set: duplicate pairs, a missing CI."""
    out = []
    if record.get("n_duplicate_pairs"):
        out.append(f"{record['dataset']} {record.get('split', '')}: {record['n_duplicate_pairs']} of "
                   f"{record['n_pairs']} pairs repeat an earlier pair; kept as published, they weigh twice "
                   "(n_duplicate_pairs)")
    if record.get("spearman_ci95_reason"):
        out.append(f"{record['dataset']} L{record['layer']} {record['pooling']}: {record['spearman_ci95_reason']}")
    return out


def subset_warnings(sets, n: int | None, option: str) -> list[str]:
    """A --subset / --max-pairs larger than a set keeps every pair of it (datasets.sample): said on
    stderr and in the output's "warnings", never a silent "all"."""
    return [f"{option} {n}: {s.name} {s.split} has only {len(s)} pairs; all of them are used"
            for s in sets if n is not None and len(s) < n]


def _fmt(v) -> str:
    if v is None:
        return "undefined"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def table(records: list[dict]) -> str:
    cols = ("model", "dataset", "split", "layer", "pooling", "n_pairs", "spearman", "ci95", "pearson", "n_truncated")
    rows = [[_fmt(r.get(c)) if c != "ci95" else
             ("-" if r["spearman_ci95"][0] is None else f"[{r['spearman_ci95'][0]:.3f}, {r['spearman_ci95'][1]:.3f}]")
             for c in cols] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    (cfg,), split = check_args(args)
    cache = embedding_cache(args)
    post, fit_split = _check_postprocess(args, split)
    from .datasets import load_pairs, sample
    from .evaluation import evaluation_of, score_sets
    from .records import environment, to_json, write_json_atomic

    def load(split: str):
        with _during(f"reading {args.dataset} {split}" + (f" from {args.data_dir}" if args.data_dir else "")):
            pairs = load_pairs(args.dataset, split, args.data_dir, default_root=_data_root())
        return [sample(p, args.subset, cfg.seed) for p in pairs] if isinstance(pairs, list) else \
            sample(pairs, args.subset, cfg.seed)

    # Data first: a typo in a path should fail before a multi-GB model load.
    pairs = load(split)
    if args.diagnostics and isinstance(pairs, list):
        raise ValueError(f"--diagnostics takes one pair set; {args.dataset} has {len(pairs)} domains: pick a "
                         "single-set dataset (stsb, sickr, stsb-sample)")
    fit = load(fit_split) if fit_split else None
    val_split = "validation" if args.diagnostics and "validation" in get(args.dataset).splits and \
        split != "validation" else None
    validation = load(val_split) if val_split else None
    enc, layers = load_model(cfg)
    aggregate = args.dataset if isinstance(pairs, list) else None
    settings = {"batch_size": cfg.batch_size, "cache": cache, "postprocess": post, "fit_set": fit}
    with _during(f"encoding with {cfg.model}"):
        scored = score_sets(enc, pairs if isinstance(pairs, list) else [pairs], layers, cfg.poolings,
                            keep_vectors=args.diagnostics, **settings)
        val_scored = validation and score_sets(enc, [validation], layers, cfg.poolings, **settings)
    records = evaluation_of(scored, aggregate).records
    first = records[0]
    common = run_warnings(enc, cfg, first.get("n_sentences", 0), first.get("n_truncated", 0))
    env = environment(enc.device) | {"seed": cfg.seed}
    records = [r | env | {"warnings": common + data_warnings(r)} for r in records]
    diagnostics = None
    if args.diagnostics:
        from .analyses.diagnostics import layer_diagnostics

        diagnostics = [layer_diagnostics(scored, p, val_scored, seed=cfg.seed, n_resamples=args.resamples)
                       for p in cfg.poolings]
    if args.json:
        text = to_json({"records": records, "diagnostics": diagnostics} if diagnostics else records)
    else:
        text = table(records) + ("".join("\n\n" + diagnostics_table(d) for d in diagnostics) if diagnostics else "")
    if args.output:
        write_json_atomic(args.output, {"config": asdict(cfg), "records": records}
                          | ({"diagnostics": diagnostics} if diagnostics else {}))
    for message in dict.fromkeys(m for r in records for m in r["warnings"]):
        warn(message)
    print(text)
    return 0


def read_sentences(path: str) -> list[str]:
    """One sentence per line (LF, CRLF or CR-only line endings; a BOM dropped); an empty line is
    an empty sentence."""
    from .datasets import decode_text
    from .datasets.parsers import text_lines
    from .records import check_input_file

    expected = "give a UTF-8 text file with one sentence per line"
    p = check_input_file(path, f"--input {path}", expected)  # a FIFO would block: refused before opening
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise PermissionError(f"--input {path}: cannot read it ({e.strerror}); {expected}") from e
    sentences = text_lines(decode_text(raw, f"--input {path}"), f"--input {path}")
    if not sentences:
        raise ValueError(f"--input {path} is empty: nothing to embed")
    return sentences


def cmd_embed(args: argparse.Namespace) -> int:
    (cfg,), _ = check_args(args)
    import numpy as np

    from .records import check_writable, environment, to_json, write_files_atomic

    if not args.output.endswith(".npz"):
        raise ValueError(f"--output {args.output} must end in .npz")
    meta_path = args.output[: -len(".npz")] + ".provenance.json"
    check_writable(meta_path, "--output's provenance file")
    sentences = read_sentences(args.input)
    enc, layers = load_model(cfg)
    with _during(f"encoding {args.input} with {cfg.model}"):
        emb = enc.encode(sentences, layers, cfg.poolings, batch_size=cfg.batch_size)
    arrays = {f"L{layer}_{pooling}": v.astype(np.float32) for (layer, pooling), v in emb.vectors.items()}
    warnings = run_warnings(enc, cfg, emb.n_sentences, emb.n_truncated)
    meta = enc.provenance() | environment(enc.device) | {
        "input": str(Path(args.input).resolve()), "n_sentences": emb.n_sentences, "n_tokens": emb.n_tokens,
        "n_truncated": emb.n_truncated, "n_empty": emb.n_empty, "arrays": sorted(arrays), "config": asdict(cfg),
        "warnings": warnings}
    meta_bytes = (to_json(meta) + "\n").encode("utf-8")
    # the arrays and their provenance are one result: both complete, or the previous pair untouched
    write_files_atomic([(args.output, lambda f: np.savez(f, **arrays)), (meta_path, lambda f: f.write(meta_bytes))])
    for message in warnings:
        warn(message)
    print(f"wrote {len(arrays)} arrays of {emb.n_sentences} sentences to {args.output}", file=sys.stderr)
    return 0


def cmd_exit(args: argparse.Namespace) -> int:
    """Early exit vs fixed-depth pruning on one split: one record per setting and per depth."""
    (cfg,), split = check_args(args)
    from .datasets import get, load_pairs, sample
    from .analyses.early_exit import ExitRule, exit_study
    from .records import environment, to_json, write_json_atomic

    if len(cfg.poolings) != 1:
        raise ValueError(f"exit takes one --pooling (it decides the exit); got {', '.join(cfg.poolings)}")
    values = number_list(args.tau if args.criterion == "saturation" else args.epsilon,
                         "--tau" if args.criterion == "saturation" else "--epsilon")
    patience = number_list(args.patience, "--patience", "1,2")
    depths = None if args.depths is None else number_list(args.depths, "--depths", "4,8,12")
    for option, given, numbers in (("--patience", args.patience, patience), ("--depths", args.depths, depths or [])):
        if not all(x.is_integer() for x in numbers):
            raise ValueError(f"{option} takes whole numbers of blocks, e.g. 1,2; got {given!r}")
    patience, depths = [int(p) for p in patience], depths and [int(d) for d in depths]
    rules = [ExitRule(args.criterion, t, p) for t in values for p in patience]
    if args.choose_threshold_on == split:
        raise ValueError(f"--choose-threshold-on {split} is the split being scored: choose the threshold on another "
                         "split (train or validation) so the test figure is not tuned on itself")
    pairs = load_pairs(args.dataset, split, args.data_dir, default_root=_data_root())
    tune = (load_pairs(args.dataset, args.tune_split, args.data_dir, default_root=_data_root())
            if get(args.dataset).binary else None)
    choose = (load_pairs(args.dataset, args.choose_threshold_on, args.data_dir, default_root=_data_root())
              if args.choose_threshold_on else None)
    if args.max_pairs is not None:
        pairs = sample(pairs, args.max_pairs, cfg.seed)
        tune = tune and sample(tune, args.max_pairs, cfg.seed)
        choose = choose and sample(choose, args.max_pairs, cfg.seed)
    warnings = subset_warnings([pairs, *([tune] if tune else []), *([choose] if choose else [])], args.max_pairs,
                               "--max-pairs")
    from .metrics import too_few_tuning_pairs

    omitted = tune and too_few_tuning_pairs(len(tune), f"{tune.name} {tune.split}")
    if omitted:
        warnings.append(omitted)
        tune = None
    enc, _ = load_model(cfg)
    records = exit_study(enc, pairs, rules, cfg.poolings[0], cfg.batch_size, tune=tune, depths=depths,
                         min_rounds=args.rounds, min_time=args.min_time,
                         select_after_full_pass=args.select_after_full_pass, choose_on=choose,
                         max_rho_loss=args.max_rho_loss, seed=cfg.seed)
    env = environment(enc.device) | {"seed": cfg.seed} | ({"accuracy_omitted": omitted} if omitted else {})
    records = [r | env for r in records]
    if args.output:
        write_json_atomic(args.output, {"config": asdict(cfg), "records": records, "warnings": warnings})
    for message in warnings:
        warn(message)
    cols = ("criterion", "tau", "epsilon", "patience", "depth", "mean_layers", "spearman", "seconds_per_pair",
            "speedup", "speedup_ci95", "speedup_bound", "measurement_fault", "accuracy", "f1")
    print(to_json(records) if args.json else
          "\n".join(["  ".join(cols)] + ["  ".join(_fmt(r.get(c)) for c in cols) for r in records]))
    return 0


def compare_table(records: list[dict]) -> str:
    cols = ("kind", "dataset", "layer_a", "layer_b", "pooling", "spearman_a", "spearman_b", "delta_spearman", "delta_ci95",
            "p_value", "p_adjusted")
    cell = lambda r, c: (f"[{r[c][0]:.3f}, {r[c][1]:.3f}]" if r[c][0] is not None else "-") if c == "delta_ci95" \
        else _fmt(r.get(c))  # noqa: E731
    rows = [[cell(r, c) for c in cols] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    head = f"A = {records[0]['model_a']}\nB = {records[0]['model_b']}\n" if records else ""
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    return head + "\n".join(lines + ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows])


def cmd_compare(args: argparse.Namespace) -> int:
    """Two models on the same pairs: one record per (matched-depth layer pair, pooling)."""
    if len(args.model) != 2:
        raise ValueError(f"compare needs exactly two --model options (A and B); got {len(args.model)}")
    cfgs, split = check_args(args)
    cache = embedding_cache(args)
    from .analyses.compare import compare_aggregations, compare_at_matched_depth, compare_selected
    from .evaluation import score_sets
    from .datasets import get, load_pairs, sample
    from .records import environment, to_json, write_json_atomic

    test = load_pairs(args.dataset, split, args.data_dir, default_root=_data_root())
    tests = [sample(t, args.subset, args.seed) for t in (test if isinstance(test, list) else [test])]
    sets = list(tests)
    if args.select_on:
        if args.select_on not in get(args.dataset).splits or isinstance(test, list):
            raise ValueError(f"--select-on needs a dataset with a validation split (stsb, sickr, mrpc); "
                             f"{args.dataset} has none")
        sets.append(sample(load_pairs(args.dataset, args.select_on, args.data_dir, default_root=_data_root()),
                           args.subset, args.seed))
    warnings = subset_warnings(sets, args.subset, "--subset")
    models = load_models(cfgs, args.aggregate)  # both loaded and checked before any encoding
    a, b = (score_sets(enc, sets, layers, cfg.poolings, batch_size=cfg.batch_size, aggregations=args.aggregate,
                       cache=cache)
            for (enc, layers), cfg in zip(models, cfgs))
    kw = {"n_resamples": args.resamples, "seed": cfgs[0].seed}
    records = []
    for i in range(len(tests)):
        records += compare_at_matched_depth(a, b, cfgs[0].poolings, i, **kw)
        records += compare_aggregations(a, b, cfgs[0].poolings, i, **kw)
    selection = None
    if args.select_on:
        sel_a, sel_b, extra = compare_selected(a, b, validation=len(sets) - 1, test=0, **kw)
        records += extra
        selection = {"a": sel_a, "b": sel_b}
    env = environment(models[0][0].device)
    records = [r | env for r in records]
    if args.output:
        write_json_atomic(args.output, {"kind": "compare", "config": [asdict(c) for c in cfgs],
                                        "selection": selection, "records": records, "warnings": warnings})
    for message in warnings:
        warn(message)
    print(to_json(records) if args.json else compare_table(records))
    return 0


def ood_table(result: dict) -> str:
    lines = [f"overlap with STS-B (pairs compared normalised; scored on novel pairs: {', '.join(o['removed'])} "
             f"removed; fewer than {result['min_novel_pairs']} novel pairs: no interval or verdict)"
             for o in result["overlap"][:1]]
    for o in result["overlap"]:
        shared = "  ".join(f"{k} {v}" for k, v in o["overlap"].items())
        lines.append(f"  {o['domain']:32s} pairs {o['n_pairs']:5d}  {shared}  novel {o['n_novel']}"
                     + ("  (too few novel pairs)" if o["too_few_pairs"] else ""))
    for m in result["models"]:
        sel = m["selection"]["selected"]
        lines.append(f"{m['model']}: selected on {result['selected_on']}: layer {sel['layer']} {sel['pooling']}; "
                     f"in-domain {result['in_domain']} rho {_fmt(m['in_domain']['spearman'])}; "
                     f"spread std {_fmt(m['spread']['std'])}")
        for r in m["domains"] + m["aggregates"]:
            pub = f"  published {_fmt(r['published']['spearman'])}" if "published" in r else ""
            whole = (f"  whole domain rho {_fmt(r['full_domain']['spearman'])}"
                     if "full_domain" in r and r.get("n_novel") != r["n_pairs"] else "")
            lines.append(f"  {r['domain']:32s} rho {_fmt(r['spearman'])}  degradation {_fmt(r['degradation'])}{pub}"
                         + whole)
    for p in result["pairs"]:
        lines.append(f"{p['linear']} vs {p['softmax']}: is the linear model's degradation smaller? "
                     f"(verdicts at adjusted p < 0.05: {p['correction']['domains']['method']} over the domains, "
                     f"{p['correction']['overall']['method']} over the aggregates)")
        for r in p["domains"] + p["overall"]:
            lines.append(f"  {r['domain']:32s} delta {_fmt(r['delta_degradation'])}  p_adj {_fmt(r['p_adjusted'])}  "
                         f"{r['verdict']}")
    return "\n".join(lines)


def cmd_ood(args: argparse.Namespace) -> int:
    """Select on STS-B dev, score STS-B test, STS12-16 and SICK-R test; degradation per domain."""
    pairs = [tuple(x.strip() for x in p.split(",")) for p in args.pair or ()]
    bad = [p for p in pairs if len(p) != 2 or not all(p) or not set(p) <= set(args.model)]
    if bad:
        raise ValueError(f"--pair {','.join(bad[0])}: expected LINEAR,SOFTMAX, two of the --model values")
    cfgs, _ = check_args(args)
    cache = embedding_cache(args)
    from .analyses.ood import load_ood_sets, ood_analysis
    from .evaluation import score_sets
    from .records import environment, to_json, write_json_atomic

    sets = load_ood_sets(args.data_dir, args.subset, args.seed, default_root=_data_root())
    models = load_models(cfgs, args.aggregate)
    scored = [score_sets(enc, sets.all, layers, cfg.poolings, batch_size=cfg.batch_size, label=cfg.model,
                         aggregations=args.aggregate, cache=cache)
              for (enc, layers), cfg in zip(models, cfgs)]
    result = ood_analysis(scored, pairs, n_resamples=args.resamples, seed=cfgs[0].seed, overlap=sets.overlap)
    result |= {"missing_domains": list(sets.missing), "stsb_dev_test_shared_pairs": sets.stsb_shared,
               "config": [asdict(c) for c in cfgs], "environment": environment(models[0][0].device),
               "warnings": subset_warnings(sets.all, args.subset, "--subset")}
    if args.output:
        write_json_atomic(args.output, result)
    for message in result["warnings"]:
        warn(message)
    print(to_json(result) if args.json else ood_table(result))
    return 0


def _model_options(p: argparse.ArgumentParser, several: str | None = None,
                   layers_help: str = "comma-separated layers (default: all): 1,3,5 | 0-23 | emb | final | 50%% "
                                      "(relative depth)") -> None:
    """The model and its settings; `several`: the --model help of a command that takes several."""
    if several:
        p.add_argument("--model", action="append", required=True, help=several)
    else:
        p.add_argument("--model", default="glove-6b-50d",
                       help="glove-6b-50d | gensim:NAME | GloVe .txt | random-rwkv6:SHAPE | random-hf:NAME | "
                            "BlinkDL .pth | HF dir | hub id")
    p.add_argument("--layers", default=None, help=layers_help)
    p.add_argument("--pooling", default="mean", help="comma-separated: mean,max,last,first_last,weighted_mean | all")
    p.add_argument("--device", default="cpu", help="cpu | cuda (the current CUDA device) | cuda:N | auto")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="weights and activations")
    p.add_argument("--backend", default="auto", choices=("auto", "native", "hf"),
                   help="native RWKV code or transformers (hf); auto: by the model")
    p.add_argument("--tokenizer", default=None, choices=("world", "byte", "hf"), help="override the detected tokenizer")
    p.add_argument("--revision", default=None, help="hub revision (commit, tag or branch) to pin")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a hub model's own code (RWKV-6 HF backend)")
    p.add_argument("--batch-size", type=whole_number(1), default=32,
                   help="sentences in the first (longest) batch; later batches of shorter sentences hold as many "
                        "as fit in its padded tokens (the same memory)")
    p.add_argument("--max-length", type=whole_number(1), default=None,
                   help="truncate sentences to this many tokens (counted)")
    p.add_argument("--seed", type=whole_number(0, SEED_MAX), default=0,
                   help="seed for random-init models and sampling (recorded)")
    p.add_argument("--template", default=None,
                   help="wrap each sentence before encoding: promptEOL (use with --pooling last) or a string with "
                        "one {sentence}; recorded")


def _data_options(p: argparse.ArgumentParser, datasets: Sequence[str] | None) -> None:
    """--dataset (when the command takes one: `datasets` are its choices), --split, --data-dir."""
    if datasets is not None:
        p.add_argument("--dataset", required=True, choices=datasets)
        p.add_argument("--split", default=None, choices=SPLITS,
                       help="default: the dataset's (validation for mrpc, rte, qqp; test otherwise)")
    p.add_argument("--data-dir", default=None, help="data root (default: $RWKV_EVAL_DATA, then the hub)")


def _output_options(p: argparse.ArgumentParser, what: str = "a JSON array of records") -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} instead of a table")
    p.add_argument("--output", default=None, help=f"also write the config and {what} to this JSON file (atomically)")


def _statistics_options(p: argparse.ArgumentParser) -> None:
    """The seeded statistics of compare and ood (their seed is --seed)."""
    p.add_argument("--aggregate", action="append", default=[], choices=AGGREGATE_NAMES,
                   help="also score a layer aggregation as a setting of every model (repeatable): first_last = "
                        "blocks 0 and L-1 averaged, emb_last = embedding and block L-1 (the two 'first-last avg.' of "
                        "the BERT literature), all_mean = every block")
    p.add_argument("--subset", type=PAIR_COUNT, default=None, help="a seeded subset of N pairs per set (quick runs)")
    p.add_argument("--resamples", type=whole_number(1), default=1000, help="bootstrap resamples (seed = --seed)")


def _cache_options(p: argparse.ArgumentParser) -> None:
    """The embedding cache (cache.py): where, how large, or off."""
    p.add_argument("--no-cache", action="store_true", help="encode everything; read and write no embedding cache")
    p.add_argument("--cache-dir", default=None,
                   help=f"embedding cache folder (default ${CACHE_ENV}, else $XDG_CACHE_HOME/rwkv-eval/embeddings, "
                        "else ~/.cache/rwkv-eval/embeddings)")
    p.add_argument("--cache-max-mb", type=int, default=2048,
                   help="size limit of the cache's vector files; least recently used entries are evicted")


def _diagnostics_options(p: argparse.ArgumentParser) -> None:
    """Label-free layer diagnostics and anisotropy post-processing (evaluate)."""
    p.add_argument("--diagnostics", action="store_true",
                   help="also print per-layer anisotropy, effective rank, outlier share, their correlation with "
                        "Spearman across layers, and the label-free layer choices vs validation and oracle (paired)")
    p.add_argument("--postprocess", default="none",
                   help="none | center | abtt:K (remove the top K principal directions) | whiten; fitted on the "
                        "unlabelled sentences of --fit-split")
    p.add_argument("--fit-split", default="train", choices=SPLITS,
                   help="split --postprocess is fitted on (never the evaluated one)")
    p.add_argument("--subset", type=PAIR_COUNT, default=None, help="a seeded subset of N pairs per split (quick runs)")
    p.add_argument("--resamples", type=whole_number(1), default=1000, help="bootstrap resamples of the paired choices "
                                                                "(seed = --seed)")


def embedding_cache(args: argparse.Namespace):
    """The embedding cache the flags ask for (None with --no-cache); the default folder is
    $RWKV_EVAL_CACHE_DIR, else the XDG cache folder (read here: only the faces read the environment)."""
    if args.cache_max_mb < 1:
        raise ValueError(f"--cache-max-mb must be >= 1; got {args.cache_max_mb}")
    if args.no_cache:
        if args.cache_dir is not None:
            raise ValueError("--no-cache and --cache-dir contradict each other; give one of them")
        return None
    from .cache import EmbeddingCache, default_cache_dir

    root = args.cache_dir or os.environ.get(CACHE_ENV) or default_cache_dir(os.environ.get("XDG_CACHE_HOME"),
                                                                            Path.home())
    return EmbeddingCache(root, args.cache_max_mb * 1024**2)


def _check_postprocess(args: argparse.Namespace, split: str) -> tuple[object, str | None]:
    """(--postprocess parsed, the split it is fitted on or None), checked before any model loads."""
    from .postprocess import parse_postprocess

    post = parse_postprocess(args.postprocess)
    if post.kind == "none":
        return post, None
    if args.fit_split == split:
        raise ValueError(f"--postprocess {post.name} is fitted on --fit-split {args.fit_split}, the split being "
                         "evaluated; fit it on another split (train)")
    if args.fit_split not in get(args.dataset).splits:
        raise ValueError(f"--postprocess {post.name} needs unlabelled sentences of --fit-split {args.fit_split}, which "
                         f"{args.dataset} does not have (it has {', '.join(get(args.dataset).splits)}); pick one of "
                         "those or a dataset with a train split (stsb, sickr)")
    return post, args.fit_split


def diagnostics_table(d: dict) -> str:
    """The per-layer metrics, their correlation with Spearman, and the label-free choices, as text."""
    cols = ("layer", "spearman", "anisotropy", "spectral_entropy", "effective_rank", "outlier_share", "n_outlier_dims")
    rows = [[_fmt(r[c]) for c in cols] for r in d["layers"]]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    lines = [f"diagnostics: {d['model']} pooling {d['pooling']}, postprocess {d['postprocess']}; metrics on "
             f"{d['metrics_on']}", "  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    lines.append("Spearman across layers of each metric with the layer's Spearman: " + ", ".join(
        f"{m} {_fmt(c['spearman'])}" for m, c in d["correlation_with_spearman"].items()))
    for name, c in d["choices"].items():
        line = f"choice {name}: " + (f"none ({c['reason']})" if c.get("reason") else
                                     f"layer {c['layer']} rho {_fmt(c['spearman'])}")
        for vs in ("vs_validation", "vs_oracle"):
            if c.get(vs):
                lo, hi = c[vs]["delta_ci95"]
                line += f"; {vs} delta {_fmt(c[vs]['delta_spearman'])} [{_fmt(lo)}, {_fmt(hi)}]"
        lines.append(line)
    return "\n".join(lines)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help shows each option's default (unless it is None or False, or the help already says
    it); the examples of the epilogs keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


# one example per subcommand, shown under its --help (they run offline: the tiny models ship in the package)
EXAMPLES = {
    "evaluate": f"{PROG} evaluate --model tiny-rwkv6 --dataset stsb-sample --layers all --pooling mean,last",
    "embed": f"{PROG} embed --model tiny-rwkv7 --layers 5 --pooling mean --input sentences.txt --output vectors.npz",
    "compare": f"{PROG} compare --model tiny-rwkv6 --model tiny-rwkv7 --dataset stsb-sample --pooling mean",
    "ood": f"{PROG} ood --model tiny-rwkv6 --model glove-6b-50d --data-dir ROOT --subset 200",
    "exit": f"{PROG} exit --model tiny-rwkv6 --dataset stsb --data-dir ROOT --max-pairs 200",
}


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error of the rest of the command (argparse prints usage first),
    defaults in --help, and a subcommand's example (EXAMPLES) under its --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        command = self.prog.removeprefix(PROG).strip()
        if self.epilog is None and command in EXAMPLES:
            self.epilog = f"example:\n  {EXAMPLES[command]}"

    def add_argument(self, *args, **kwargs):
        """A single-valued option given twice is an error (options.once_action), not the last one kept."""
        if args and args[0].startswith("-") and "action" not in kwargs:
            kwargs["action"] = once_action()
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix(PROG).strip()
        self.exit(2, f"{PROG}: error: {command + ': ' if command else ''}{message}; see {self.prog} --help\n")


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog=PROG, description=__doc__.split("\n\n")[0],
                 epilog="examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES.values()))
    ap.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    ap.add_argument("--debug", action="store_true", help=f"show the traceback of an error (or set {DEBUG_ENV}=1)")
    sub = ap.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="Spearman/Pearson of cosine similarity vs gold, per layer and pooling")
    _model_options(ev)
    _data_options(ev, names())  # the registry as it is now: a set registered at run time is a choice
    _output_options(ev)
    _cache_options(ev)
    _diagnostics_options(ev)
    ev.set_defaults(func=cmd_evaluate)
    em = sub.add_parser("embed", help="write pooled sentence vectors to an .npz (arrays L{layer}_{pooling})")
    _model_options(em)
    em.add_argument("--input", required=True, help="UTF-8 text file, one sentence per line")
    em.add_argument("--output", required=True, help="output .npz path")
    em.set_defaults(func=cmd_embed)
    cp = sub.add_parser("compare", help="two models on the same pairs: Δρ at matched relative depth, paired bootstrap CI")
    _model_options(cp, several="give twice: model A, then model B",
                   layers_help="layers of model A (default: all); B is matched by relative depth")
    cp.add_argument("--layers-b", default=None, help="candidate layers of model B (default: all)")
    _data_options(cp, names())
    _statistics_options(cp)
    cp.add_argument("--select-on", default=None, choices=("validation",),
                    help="also compare each model at its (layer, pooling) chosen on this split, and the oracle")
    _output_options(cp)
    _cache_options(cp)
    cp.set_defaults(func=cmd_compare)
    od = sub.add_parser("ood", help="out-of-domain degradation: select on STS-B dev, score STS12-16 and SICK-R")
    _model_options(od, several="one or more models")
    od.add_argument("--pair", action="append", default=None, help="LINEAR,SOFTMAX: two --model values to compare")
    _data_options(od, None)
    _statistics_options(od)
    _output_options(od, "the JSON result")
    _cache_options(od)
    od.set_defaults(func=cmd_ood)
    ex = sub.add_parser("exit", help="early exit (saturation / pair) vs fixed-depth pruning: quality and measured time")
    _model_options(ex)
    _data_options(ex, [d for d in names() if not get(d).shipped])
    ex.add_argument("--criterion", default="saturation", choices=("saturation", "pair"))
    ex.add_argument("--tau", default="0.99,0.995,0.999", help="saturation: exit when cos(v_k, v_k-1) >= tau")
    ex.add_argument("--epsilon", default="0.01,0.003,0.001", help="pair: exit when the pair cosine moves < epsilon")
    ex.add_argument("--patience", default="1,2", help="blocks in a row the criterion must hold")
    ex.add_argument("--depths", default=None, help="fixed depths (blocks) to compare; default every block")
    ex.add_argument("--tune-split", default="train", help="binary sets: split the cosine threshold is tuned on")
    ex.add_argument("--max-pairs", type=PAIR_COUNT, default=None,
                    help="score a seeded sample of this many pairs (and as many tuning pairs); recorded in the note")
    ex.add_argument("--rounds", type=whole_number(1), default=5,
                    help="minimum timing rounds (each side warmed up, alternating order, median; more rounds until "
                         "--min-time)")
    ex.add_argument("--select-after-full-pass", action="store_true",
                    help="for a model that cannot run block by block (e.g. transformers): apply the rule to the "
                         "layers of a full pass; no work is skipped (records: skips_work false)")
    ex.add_argument("--min-time", type=real_number(0), default=1.0, help="timed rounds add up to at least this many seconds")
    ex.add_argument("--choose-threshold-on", default=None, choices=SPLITS,
                    help="also choose the cheapest threshold within --max-rho-loss of full depth on this split "
                         "(train or validation) and apply it to --split; the record names the split")
    ex.add_argument("--max-rho-loss", type=real_number(0), default=0.01,
                    help="with --choose-threshold-on: the Spearman the chosen threshold may lose vs full depth")
    _output_options(ex)
    ex.set_defaults(func=cmd_exit)
    return ap


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """The command; returns the exit status: 0, 2 on any error, 130 on Ctrl-C, 143 on SIGTERM."""
    from .records import Terminated, terminate_raises

    args = parser().parse_args(argv)
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        with terminate_raises():  # SIGTERM: cleanup, then one line
            return args.func(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (Ctrl-C); no partial output left behind", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{PROG}: terminated (SIGTERM); no partial output left behind", file=sys.stderr)
        return 143
    except Exception as e:  # noqa: BLE001 - one line instead of a traceback; --debug shows it
        if debug:
            raise
        known = isinstance(e, (ValueError, TypeError, OSError, ImportError))
        what = _one_line(e) if known or isinstance(e, StageError) else f"unexpected {type(e).__name__}: {_one_line(e)}"
        hint = "" if known else f" (rerun with --debug or {DEBUG_ENV}=1 for the traceback)"
        print(f"{PROG}: error: {what}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
