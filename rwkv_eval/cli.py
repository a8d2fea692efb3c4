"""`rwkv-eval` (also `python -m rwkv_eval`): score a model or export embeddings without code.

    rwkv-eval evaluate --model glove-6b-50d --dataset mrpc --split validation --json
    rwkv-eval evaluate --model RWKV/v6-Finch-1B6-HF --layers 1,3,5,7,9,11 --pooling mean,last
    rwkv-eval embed --model tiny.pth --layers 0,1 --pooling mean --input s.txt --output e.npz

Only this module reads argv and environment variables; it builds a frozen RunConfig and
hands plain values to the package. Errors print one line to stderr and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

DATASET_NAMES = ("mrpc", "stsb", "sickr", "sts12", "sts13", "sts14", "sts15", "sts16", "stsb-sample")
DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
          "bfloat16": "bfloat16", "bf16": "bfloat16"}


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


def _default_split(dataset: str) -> str:
    return "validation" if dataset == "mrpc" else "test"


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} requested but CUDA is not available here; use --device cpu")
    return device


def _template(args: argparse.Namespace) -> str | None:
    """--template, checked before any model is loaded."""
    from .templates import resolve_template

    spec = getattr(args, "template", None)
    resolve_template(spec)
    return spec


def build_config(args: argparse.Namespace) -> RunConfig:
    from .pooling import check_poolings

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1; got {args.batch_size}")
    return RunConfig(
        model=args.model,
        layers=args.layers,
        poolings=check_poolings(tuple(p.strip() for p in args.pooling.split(",") if p.strip())),
        device=_resolve_device(args.device),
        dtype=DTYPES[args.dtype],
        backend=args.backend,
        tokenizer=args.tokenizer,
        revision=args.revision,
        trust_remote_code=args.trust_remote_code,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        template=_template(args),
    )


def load_model(cfg: RunConfig):
    import torch

    from .encoder import parse_layers
    from .models.load import load_encoder
    from .templates import with_template

    torch.manual_seed(cfg.seed)
    enc = load_encoder(cfg.model, device=cfg.device, dtype=getattr(torch, cfg.dtype), backend=cfg.backend,
                       tokenizer=cfg.tokenizer, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code,
                       max_length=cfg.max_length, seed=cfg.seed)
    enc = with_template(enc, cfg.template)
    return enc, parse_layers(cfg.layers, enc.layers())


def _fmt(v) -> str:
    if v is None:
        return "undefined"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def table(records: list[dict]) -> str:
    cols = ("model", "dataset", "split", "layer", "pooling", "n_pairs", "spearman", "ci95", "pearson")
    rows = [[_fmt(r.get(c)) if c != "ci95" else
             ("-" if r["spearman_ci95"][0] is None else f"[{r['spearman_ci95'][0]:.3f}, {r['spearman_ci95'][1]:.3f}]")
             for c in cols] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .datasets import load_pairs, load_sample
    from .evaluation import evaluate
    from .records import environment, write_json_atomic

    cfg = build_config(args)
    split = args.split or _default_split(args.dataset)
    # Data first: a typo in a path should fail before a multi-GB model load.
    pairs = load_sample() if args.dataset == "stsb-sample" else load_pairs(args.dataset, split, args.data_dir)
    enc, layers = load_model(cfg)
    aggregate = args.dataset if isinstance(pairs, list) else None
    records = evaluate(enc, pairs, layers, cfg.poolings, batch_size=cfg.batch_size, aggregate=aggregate)
    env = environment() | {"seed": cfg.seed}
    records = [r | env for r in records]
    if args.output:
        write_json_atomic(args.output, {"config": asdict(cfg), "records": records})
    print(json.dumps(records, indent=2) if args.json else table(records))
    return 0


def read_sentences(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--input {path} does not exist; give a UTF-8 text file with one sentence per line")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"--input {path} is not UTF-8 (byte {e.start}): re-encode it as UTF-8") from e
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start an empty one
    sentences = [line.removesuffix("\r") for line in lines]
    if not sentences:
        raise ValueError(f"--input {path} is empty: nothing to embed")
    return sentences


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from .records import environment, write_bytes_atomic, write_json_atomic

    cfg = build_config(args)
    sentences = read_sentences(args.input)
    if not args.output.endswith(".npz"):
        raise ValueError(f"--output {args.output} must end in .npz")
    enc, layers = load_model(cfg)
    emb = enc.encode(sentences, layers, cfg.poolings, batch_size=cfg.batch_size)
    arrays = {f"L{layer}_{pooling}": v.astype(np.float32) for (layer, pooling), v in emb.vectors.items()}
    write_bytes_atomic(args.output, lambda f: np.savez(f, **arrays))
    meta = enc.provenance() | environment() | {
        "input": str(Path(args.input).resolve()), "n_sentences": emb.n_sentences, "n_tokens": emb.n_tokens,
        "n_truncated": emb.n_truncated, "n_empty": emb.n_empty, "arrays": sorted(arrays), "config": asdict(cfg)}
    write_json_atomic(args.output[: -len(".npz")] + ".provenance.json", meta)
    print(f"wrote {len(arrays)} arrays of {emb.n_sentences} sentences to {args.output}"
          + (f" ({emb.n_truncated} truncated at {enc.max_length} tokens)" if emb.n_truncated else ""), file=sys.stderr)
    return 0


def compare_table(records: list[dict]) -> str:
    cols = ("kind", "dataset", "layer_a", "layer_b", "pooling", "spearman_a", "spearman_b", "delta_spearman", "delta_ci95",
            "p_value")
    cell = lambda r, c: (f"[{r[c][0]:.3f}, {r[c][1]:.3f}]" if r[c][0] is not None else "-") if c == "delta_ci95" \
        else _fmt(r.get(c))  # noqa: E731
    rows = [[cell(r, c) for c in cols] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    head = f"A = {records[0]['model_a']}\nB = {records[0]['model_b']}\n" if records else ""
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    return head + "\n".join(lines + ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows])


def cmd_compare(args: argparse.Namespace) -> int:
    """Two models on the same pairs: one record per (matched-depth layer pair, pooling)."""
    from .compare import compare_at_matched_depth, compare_selected, score_sets, subsample
    from .datasets import load_pairs, load_sample
    from .records import environment, write_json_atomic

    if len(args.model) != 2:
        raise ValueError(f"compare needs exactly two --model options (A and B); got {len(args.model)}")
    split = args.split or _default_split(args.dataset)
    sample = args.dataset == "stsb-sample"
    test = load_sample() if sample else load_pairs(args.dataset, split, args.data_dir)
    tests = [subsample(t, args.subset, args.seed) for t in (test if isinstance(test, list) else [test])]
    sets = list(tests)
    if args.select_on:
        if sample or isinstance(test, list):
            raise ValueError(f"--select-on needs a dataset with a validation split (stsb, sickr, mrpc); "
                             f"{args.dataset} has none")
        sets.append(subsample(load_pairs(args.dataset, args.select_on, args.data_dir), args.subset, args.seed))
    cfgs = [build_config(argparse.Namespace(**(vars(args) | {"model": m, "layers": la})))
            for m, la in zip(args.model, (args.layers, args.layers_b))]
    models = [load_model(cfg) for cfg in cfgs]  # both loaded (and their layers checked) before any encoding
    a, b = (score_sets(enc, sets, layers, cfg.poolings, batch_size=cfg.batch_size)
            for (enc, layers), cfg in zip(models, cfgs))
    kw = {"n_resamples": args.resamples, "seed": cfgs[0].seed}
    records = []
    for i in range(len(tests)):
        records += compare_at_matched_depth(a, b, cfgs[0].poolings, i, **kw)
    selection = None
    if args.select_on:
        sel_a, sel_b, extra = compare_selected(a, b, validation=len(sets) - 1, test=0, **kw)
        records += extra
        selection = {"a": sel_a, "b": sel_b}
    env = environment()
    records = [r | env for r in records]
    if args.output:
        write_json_atomic(args.output, {"kind": "compare", "config": [asdict(c) for c in cfgs],
                                        "selection": selection, "records": records})
    print(json.dumps(records, indent=2) if args.json else compare_table(records))
    return 0


def ood_table(result: dict) -> str:
    lines = []
    for m in result["models"]:
        sel = m["selection"]["selected"]
        lines.append(f"{m['model']}: selected on {result['selected_on']}: layer {sel['layer']} {sel['pooling']}; "
                     f"in-domain {result['in_domain']} rho {_fmt(m['in_domain']['spearman'])}; "
                     f"spread std {_fmt(m['spread']['std'])}")
        for r in m["domains"] + m["aggregates"]:
            lines.append(f"  {r['domain']:32s} rho {_fmt(r['spearman'])}  degradation {_fmt(r['degradation'])}")
    for p in result["pairs"]:
        lines.append(f"{p['linear']} vs {p['softmax']}: is the linear model's degradation smaller?")
        for r in p["overall"]:
            lines.append(f"  {r['domain']:32s} delta {_fmt(r['delta_degradation'])}  {r['verdict']}")
    return "\n".join(lines)


def cmd_ood(args: argparse.Namespace) -> int:
    """Select on STS-B dev, score STS-B test, STS12-16 and SICK-R test; degradation per domain."""
    from .compare import score_sets
    from .ood import load_ood_sets, ood_analysis
    from .records import environment, write_json_atomic

    pairs = [tuple(x.strip() for x in p.split(",")) for p in args.pair or ()]
    bad = [p for p in pairs if len(p) != 2 or not all(p) or not set(p) <= set(args.model)]
    if bad:
        raise ValueError(f"--pair {','.join(bad[0])}: expected LINEAR,SOFTMAX, two of the --model values")
    sets = load_ood_sets(args.data_dir, args.subset, args.seed)
    cfgs = [build_config(argparse.Namespace(**(vars(args) | {"model": m}))) for m in args.model]
    models = [load_model(cfg) for cfg in cfgs]
    scored = [score_sets(enc, sets.all, layers, cfg.poolings, batch_size=cfg.batch_size, label=cfg.model)
              for (enc, layers), cfg in zip(models, cfgs)]
    result = ood_analysis(scored, pairs, n_resamples=args.resamples, seed=cfgs[0].seed)
    result |= {"config": [asdict(c) for c in cfgs], "environment": environment()}
    if args.output:
        write_json_atomic(args.output, result)
    print(json.dumps(result, indent=2) if args.json else ood_table(result))
    return 0


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="glove-6b-50d",
                   help="glove-6b-50d | gensim:NAME | GloVe .txt | random-rwkv6:SHAPE | BlinkDL .pth | HF dir | hub id")
    p.add_argument("--layers", default=None, help="comma-separated layers, 'emb' for the embedding; default: all")
    p.add_argument("--pooling", default="mean", help="comma-separated: mean,max,last,first_last,weighted_mean")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    p.add_argument("--backend", default="auto", choices=("auto", "native", "hf"))
    p.add_argument("--tokenizer", default=None, choices=("world", "byte", "hf"), help="override the detected tokenizer")
    p.add_argument("--revision", default=None, help="hub revision (commit, tag or branch) to pin")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a hub model's own code (RWKV-6 HF backend)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=None, help="truncate sentences to this many tokens (counted)")
    p.add_argument("--seed", type=int, default=0, help="seed for random-init models and sampling (recorded)")
    p.add_argument("--template", default=None,
                   help="wrap each sentence before encoding: promptEOL (use with --pooling last) or a string with "
                        "one {sentence}; recorded")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rwkv-eval", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="Spearman/Pearson of cosine similarity vs gold, per layer and pooling")
    _model_options(ev)
    ev.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    ev.add_argument("--split", default=None, choices=("train", "train-1000", "validation", "test"),
                    help="default: validation for mrpc, test otherwise")
    ev.add_argument("--data-dir", default=None, help="data root (default: $RWKV_EVAL_DATA, then the hub)")
    ev.add_argument("--json", action="store_true", help="print a JSON array of records instead of a table")
    ev.add_argument("--output", default=None, help="also write config + records to this JSON file (atomically)")
    ev.set_defaults(func=cmd_evaluate)
    em = sub.add_parser("embed", help="write pooled sentence vectors to an .npz (arrays L{layer}_{pooling})")
    _model_options(em)
    em.add_argument("--input", required=True, help="UTF-8 text file, one sentence per line")
    em.add_argument("--output", required=True, help="output .npz path")
    em.set_defaults(func=cmd_embed)
    cp = sub.add_parser("compare", conflict_handler="resolve",
                        help="two models on the same pairs: Δρ at matched relative depth, paired bootstrap CI")
    _model_options(cp)
    cp.add_argument("--model", action="append", required=True, help="give twice: model A, then model B")
    cp.add_argument("--layers", default=None, help="layers of model A (default: all); B is matched by relative depth")
    cp.add_argument("--layers-b", default=None, help="candidate layers of model B (default: all)")
    cp.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    cp.add_argument("--split", default=None, choices=("train", "train-1000", "validation", "test"))
    cp.add_argument("--select-on", default=None, choices=("validation",),
                    help="also compare each model at its (layer, pooling) chosen on this split, and the oracle")
    cp.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (seed = --seed)")
    cp.add_argument("--subset", type=int, default=None, help="a seeded subset of N pairs per set (seed = --seed)")
    cp.add_argument("--data-dir", default=None, help="data root (default: $RWKV_EVAL_DATA, then the hub)")
    cp.add_argument("--json", action="store_true", help="print a JSON array of records instead of a table")
    cp.add_argument("--output", default=None, help="also write config + records to this JSON file (atomically)")
    cp.set_defaults(func=cmd_compare)
    od = sub.add_parser("ood", conflict_handler="resolve",
                        help="out-of-domain degradation: select on STS-B dev, score STS12-16 and SICK-R")
    _model_options(od)
    od.add_argument("--model", action="append", required=True, help="one or more models")
    od.add_argument("--pair", action="append", default=None, help="LINEAR,SOFTMAX: two --model values to compare")
    od.add_argument("--subset", type=int, default=None, help="a seeded subset of N pairs per set (quick runs)")
    od.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (seed = --seed)")
    od.add_argument("--data-dir", default=None, help="data root (default: $RWKV_EVAL_DATA, then the hub)")
    od.add_argument("--json", action="store_true", help="print the JSON result instead of a table")
    od.add_argument("--output", default=None, help="also write the result to this JSON file (atomically)")
    od.set_defaults(func=cmd_ood)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
        print(f"rwkv-eval: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
