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

DATASET_NAMES = ("mrpc", "stsb", "sickr", "sts12", "sts13", "sts14", "sts15", "sts16", "stsb-sample", "rte", "qqp")
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


def _default_split(dataset: str) -> str:
    return "validation" if dataset == "mrpc" else "test"


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} requested but CUDA is not available here; use --device cpu")
    return device


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
    )


def load_model(cfg: RunConfig):
    import torch

    from .encoder import parse_layers
    from .models.load import load_encoder

    torch.manual_seed(cfg.seed)
    enc = load_encoder(cfg.model, device=cfg.device, dtype=getattr(torch, cfg.dtype), backend=cfg.backend,
                       tokenizer=cfg.tokenizer, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code,
                       max_length=cfg.max_length, seed=cfg.seed)
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


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{option} takes comma-separated numbers, e.g. 0.99,0.995; got {text!r}") from None


def cmd_exit(args: argparse.Namespace) -> int:
    """Early exit vs fixed-depth pruning on one split: one record per setting and per depth."""
    from .datasets import BINARY, load_pairs, sample
    from .early_exit import ExitRule, exit_study
    from .records import environment, write_json_atomic

    cfg = build_config(args)
    if len(cfg.poolings) != 1:
        raise ValueError(f"exit takes one --pooling (it decides the exit); got {', '.join(cfg.poolings)}")
    values = _floats(args.tau if args.criterion == "saturation" else args.epsilon,
                     "--tau" if args.criterion == "saturation" else "--epsilon")
    patience = _floats(args.patience, "--patience")
    if not all(p.is_integer() for p in patience):
        raise ValueError(f"--patience takes whole numbers of blocks, e.g. 1,2; got {args.patience!r}")
    patience = [int(p) for p in patience]
    rules = [ExitRule(args.criterion, t, p) for t in values for p in patience]
    split = args.split or _default_split(args.dataset)
    pairs = load_pairs(args.dataset, split, args.data_dir)
    tune = load_pairs(args.dataset, args.tune_split, args.data_dir) if args.dataset in BINARY else None
    if args.max_pairs:
        pairs = sample(pairs, args.max_pairs, cfg.seed)
        tune = tune and sample(tune, args.max_pairs, cfg.seed)
    enc, _ = load_model(cfg)
    depths = None if args.depths is None else [int(d) for d in _floats(args.depths, "--depths")]
    records = exit_study(enc, pairs, rules, cfg.poolings[0], cfg.batch_size, tune=tune, depths=depths,
                         rounds=args.rounds)
    env = environment() | {"seed": cfg.seed}
    records = [r | env for r in records]
    if args.output:
        write_json_atomic(args.output, {"config": asdict(cfg), "records": records})
    cols = ("criterion", "tau", "epsilon", "patience", "depth", "mean_layers", "spearman", "seconds_per_pair",
            "speedup", "accuracy", "f1")
    print(json.dumps(records, indent=2) if args.json else
          "\n".join(["  ".join(cols)] + ["  ".join(_fmt(r.get(c)) for c in cols) for r in records]))
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
    ex = sub.add_parser("exit", help="early exit (saturation / pair) vs fixed-depth pruning: quality and measured time")
    _model_options(ex)
    ex.add_argument("--dataset", required=True, choices=[d for d in DATASET_NAMES if d != "stsb-sample"])
    ex.add_argument("--split", default=None, choices=("train", "train-1000", "validation", "test"))
    ex.add_argument("--data-dir", default=None, help="data root (default: $RWKV_EVAL_DATA, then the hub)")
    ex.add_argument("--criterion", default="saturation", choices=("saturation", "pair"))
    ex.add_argument("--tau", default="0.99,0.995,0.999", help="saturation: exit when cos(v_k, v_k-1) >= tau")
    ex.add_argument("--epsilon", default="0.01,0.003,0.001", help="pair: exit when the pair cosine moves < epsilon")
    ex.add_argument("--patience", default="1,2", help="blocks in a row the criterion must hold")
    ex.add_argument("--depths", default=None, help="fixed depths (blocks) to compare; default every block")
    ex.add_argument("--tune-split", default="train", help="binary sets: split the cosine threshold is tuned on")
    ex.add_argument("--max-pairs", type=int, default=None,
                    help="score a seeded sample of this many pairs (and as many tuning pairs); recorded in the note")
    ex.add_argument("--rounds", type=int, default=1, help="timing rounds (interleaved, best of)")
    ex.add_argument("--json", action="store_true", help="print a JSON array of records instead of a table")
    ex.add_argument("--output", default=None, help="also write config + records to this JSON file (atomically)")
    ex.set_defaults(func=cmd_exit)
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
