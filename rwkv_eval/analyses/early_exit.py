"""Early exit vs fixed-depth pruning: does a sentence need every block of the model?

Question 4 of the follow-up study: how does training-free, confidence-based early exit
compare with simply cutting the model at a fixed depth, in GLUE quality and in compute?

* Fixed-depth pruning runs blocks 0..k for every sentence (layer k, the residual stream
  after block k); sweeping k gives the baseline curve of quality vs depth and vs time.
* Per-sentence early exit ("saturation", the state-saturation criterion of CALM,
  Schuster et al. 2022, arXiv:2207.07061, sec. 3.2, here without any training): after
  block k the sentence's pooled vector v_k is compared with v_{k-1} (v_{-1} = the pooled
  embedding); once cos(v_k, v_{k-1}) >= tau for `patience` blocks in a row, the sentence
  leaves with v_k. tau = 1 (never saturated in practice) is the full pass; tau = -1
  exits every sentence at block patience-1, i.e. fixed depth patience-1.
* Pair-level early exit ("pair", the PABEE analogue for a regression score, Zhou et al.
  2020, arXiv:2006.04152): both sentences of a pair run together and leave together once
  the pair's cosine changed by less than epsilon for `patience` blocks in a row.

Encoders that can run block by block (`Encoder.block_stepper()`: the native RWKV-6/7)
exit rows early: rows that exit leave the batch (and trailing padding no longer needed is
cut), so the active batch shrinks and the remaining rows keep their state — RWKV rows are
independent, so a remaining row is computed exactly as before. The time saved is wall
time measured on the same sentences as the full pass it is compared with, never derived
from layer counts. An encoder without a stepper (GloVe, transformers) is refused; only
when asked (`select_after_full_pass=True`, `rwkv-eval exit --select-after-full-pass`)
is the rule applied to the layers of a full pass instead, and its records say
`skips_work: false`.

MRPC, RTE and QQP labels are binary: besides Spearman, each method gets accuracy and F1
at the cosine threshold that maximises accuracy on a tuning set (MRPC/RTE train)
encoded the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..datasets import PairSet
from ..encoder import EMBEDDING, BlockStepper, Encoder
from ..evaluation import score, score_vectors, unique_sentences
from ..pooling import check_poolings, pool
from ..measure import interleaved_best

CRITERIA = ("saturation", "pair")
MODE_BATCHED = "batched early exit: exited rows leave the batch"
MODE_SELECT = "full pass, then select: no work skipped (asked for with select_after_full_pass)"


@dataclass(frozen=True)
class ExitRule:
    """When a row may stop: criterion "saturation" (threshold = tau, exit when the cosine of
    consecutive pooled vectors >= tau) or "pair" (threshold = epsilon, exit when the pair's
    cosine moved by < epsilon), in both cases for `patience` consecutive blocks."""

    criterion: str
    threshold: float
    patience: int = 1

    def __post_init__(self):
        if self.criterion not in CRITERIA:
            raise ValueError(f"unknown early-exit criterion {self.criterion!r}; choose from {', '.join(CRITERIA)}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"patience must be an integer >= 1 (blocks in a row); got {self.patience!r}")
        t = self.threshold
        if not isinstance(t, (int, float)) or not math.isfinite(t):
            raise ValueError(f"{self.criterion} threshold must be a finite number; got {t!r}")
        if self.criterion == "saturation" and not -1.0 <= t <= 1.0:
            raise ValueError(f"saturation tau is a cosine and must be in [-1, 1]; got {t} (1 = never exit early)")
        if self.criterion == "pair" and t < 0:
            raise ValueError(f"pair epsilon is a change of cosine and must be >= 0; got {t} (0 = never exit early)")

    def describe(self) -> dict:
        return {"criterion": self.criterion, "tau": self.threshold if self.criterion == "saturation" else None,
                "epsilon": self.threshold if self.criterion == "pair" else None, "patience": self.patience}

    @property
    def name(self) -> str:
        symbol = "tau" if self.criterion == "saturation" else "eps"
        return f"{self.criterion} {symbol}={self.threshold:g} p={self.patience}"


@dataclass
class ExitResult:
    vectors: np.ndarray  # (rows, D) float32, input order (pair criterion: rows a0, b0, a1, b1, ...)
    exit_layer: np.ndarray  # (rows,) int: the block after which each row left
    mode: str  # MODE_BATCHED or MODE_SELECT

    @property
    def mean_layers(self) -> float:
        """Blocks executed per row (block k = k + 1 blocks)."""
        return float(np.mean(self.exit_layer + 1))


class _Streak:
    """Blocks in a row for which the rule held, per active row (pair rule: equal on both rows)."""

    def __init__(self, rule: ExitRule, n_rows: int, device: torch.device):
        self.rule = rule
        self.count = torch.zeros(n_rows, dtype=torch.long, device=device)

    def update(self, prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        """(rows,) bool: rows whose streak reached the patience after this block."""
        if self.rule.criterion == "saturation":
            held = F.cosine_similarity(cur, prev, dim=1).clamp(-1.0, 1.0) >= self.rule.threshold
        else:
            now = F.cosine_similarity(cur[0::2], cur[1::2], dim=1)
            before = F.cosine_similarity(prev[0::2], prev[1::2], dim=1)
            held = ((now - before).abs() < self.rule.threshold).repeat_interleave(2)
        self.count = torch.where(held, self.count + 1, 0)
        return self.count >= self.rule.patience

    def keep(self, rows: torch.Tensor) -> None:
        self.count = self.count[rows]


def _check_encoder(encoder: Encoder, select_after_full_pass: bool = False) -> int:
    """The deepest block index. Early exit needs an encoder that runs block by block (or the
    full-pass fallback, asked for by name) and an embedding layer plus several blocks."""
    if not select_after_full_pass and encoder.block_stepper() is None:
        raise ValueError(f"{encoder.name} cannot run block by block (its encoder has no block stepper), and early "
                         "exit needs that to skip work: use e.g. a native RWKV-6/7 checkpoint (a BlinkDL .pth, "
                         "random-rwkv6:SHAPE), or pass --select-after-full-pass (select_after_full_pass=True) to "
                         "score the rule on the layers of a full pass instead (no work skipped; the records say so)")
    blocks = [la for la in encoder.layers() if isinstance(la, int)]
    if len(blocks) < 2 or EMBEDDING not in encoder.layers():
        raise ValueError(f"early exit needs a multi-layer encoder with an embedding layer; {encoder.name} has "
                         f"layers {list(encoder.layers())}")
    return max(blocks)


def _last_block(encoder: Encoder, select_after_full_pass: bool, last: int | None) -> int:
    """`last`, or the deepest block when None, checked against the encoder."""
    deepest = _check_encoder(encoder, select_after_full_pass)
    if last is None:
        return deepest
    if not 0 <= last <= deepest:
        raise ValueError(f"last block {last} out of range for {encoder.name} (blocks 0..{deepest})")
    return last


def _exit_batch(stepper: BlockStepper, ids: torch.Tensor, mask: torch.Tensor, pooling: str, rule: ExitRule,
                last: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one batch block by block; rows leave as soon as the rule says so.

    Returns ((B, D) float32 pooled vectors at each row's exit, (B,) exit block)."""
    B = ids.shape[0]
    x, carry = stepper.embed(ids), None  # (B,T,C)
    prev = pool(x, mask, pooling)  # (B,D)
    streak = _Streak(rule, B, ids.device)
    rows = torch.arange(B, device=ids.device)  # batch row of each active row
    out = torch.zeros_like(prev)
    exit_layer = torch.full((B,), last, dtype=torch.long, device=ids.device)
    for i in range(last + 1):
        x, carry = stepper.block(i, x, carry)
        cur = pool(x, mask, pooling)
        done = streak.update(prev, cur) if i < last else torch.ones(len(rows), dtype=torch.bool, device=ids.device)
        if bool(done.any()):
            out[rows[done]] = cur[done]
            exit_layer[rows[done]] = i
            keep = ~done
            if not bool(keep.any()):
                break
            T = max(1, int(mask[keep].sum(dim=1).max()))  # padding no remaining row needs is cut too
            rows, mask, cur = rows[keep], mask[keep, :T], cur[keep]
            x, carry = stepper.select(x, carry, keep, T)
            streak.keep(keep)
        prev = cur
    return out, exit_layer


def _select_after_full_pass(encoder: Encoder, rows: list[list[int]], pooling: str, rule: ExitRule, last: int,
                            batch_size: int) -> ExitResult:
    """The same rule applied to the pooled vectors of a full pass (no work skipped)."""
    layers = [EMBEDDING, *range(last + 1)]
    emb = encoder.encode_tokens(rows, layers, [pooling], batch_size=batch_size)
    N = len(rows)
    prev = torch.from_numpy(emb[(EMBEDDING, pooling)])
    streak = _Streak(rule, N, torch.device("cpu"))
    out = np.zeros_like(emb[(last, pooling)])
    exit_layer = np.full(N, last)
    active = np.ones(N, dtype=bool)
    for i in range(last + 1):
        cur = torch.from_numpy(emb[(i, pooling)])
        done = streak.update(prev, cur).numpy() & active if i < last else active.copy()
        out[done], exit_layer[done] = emb[(i, pooling)][done], i
        active &= ~done
        prev = cur
    return ExitResult(out, exit_layer, MODE_SELECT)


def _exit_in_batches(encoder: Encoder, rows: list[list[int]], pooling: str, rule: ExitRule, last: int,
                     batch_size: int, order: Sequence[int] | None = None) -> ExitResult:
    """Batched early exit over `encoder.batches` (in `order` when given)."""
    stepper = encoder.block_stepper()
    vectors, exit_layer = None, np.zeros(len(rows), dtype=np.int64)
    with torch.inference_mode():
        for idx, ids, mask in encoder.batches(rows, batch_size, order=order):
            v, e = _exit_batch(stepper, ids, mask, pooling, rule, last)
            if vectors is None:
                vectors = np.zeros((len(rows), v.shape[1]), dtype=np.float32)
            vectors[idx], exit_layer[idx] = v.cpu().numpy(), e.cpu().numpy()
    return ExitResult(vectors, exit_layer, MODE_BATCHED)


def encode_with_exit(encoder: Encoder, token_ids: list[list[int]], pooling: str, rule: ExitRule,
                     batch_size: int = 32, last: int | None = None,
                     select_after_full_pass: bool = False) -> ExitResult:
    """Pooled vectors of sentences that each leave the model on their own.

    Args:
        encoder: an encoder with a block stepper (native RWKV-6/7), or with
            select_after_full_pass any multi-layer encoder with an embedding layer.
        token_ids: tokenized sentences (cut at encoder.max_length as `encode_tokens` does).
        pooling: one of pooling.POOLINGS; the exit decision and the output use it.
        rule: an ExitRule; the "pair" criterion needs `encode_pairs_with_exit`.
        last: deepest block allowed (default: the last block).
        select_after_full_pass: run the full pass and apply the rule to its layers (no work
            skipped; `mode` says so) instead of exiting early.
    Returns:
        ExitResult with (N, D) vectors in input order.
    Raises:
        ValueError: the encoder cannot run block by block and select_after_full_pass is False.
    """
    if rule.criterion != "saturation":
        raise ValueError(f"encode_with_exit takes the per-sentence 'saturation' criterion; got {rule.criterion!r} "
                         "(use encode_pairs_with_exit)")
    check_poolings((pooling,))
    last = _last_block(encoder, select_after_full_pass, last)
    token_ids = [t[: encoder.max_length] for t in token_ids]
    if select_after_full_pass:
        return _select_after_full_pass(encoder, token_ids, pooling, rule, last, batch_size)
    return _exit_in_batches(encoder, token_ids, pooling, rule, last, batch_size)


def encode_pairs_with_exit(encoder: Encoder, pairs: Sequence[tuple[list[int], list[int]]], pooling: str,
                           rule: ExitRule, batch_size: int = 32, last: int | None = None,
                           select_after_full_pass: bool = False) -> ExitResult:
    """Pooled vectors of sentence pairs that leave the model together (any criterion).

    Rows come back interleaved, a0, b0, a1, b1, ...: (2P, D). Pairs are sorted by their
    longer sentence and batched `batch_size` rows (batch_size // 2 pairs) at a time, a
    pair's two rows always in one batch. Encoder and select_after_full_pass as in
    `encode_with_exit`.
    """
    check_poolings((pooling,))
    last = _last_block(encoder, select_after_full_pass, last)
    rows = [t[: encoder.max_length] for a, b in pairs for t in (a, b)]
    if select_after_full_pass:
        return _select_after_full_pass(encoder, rows, pooling, rule, last, batch_size)
    by_length = np.argsort([-max(len(rows[2 * j]), len(rows[2 * j + 1])) for j in range(len(pairs))], kind="stable")
    order = np.stack([2 * by_length, 2 * by_length + 1], 1).ravel()  # (2P,): a pair's rows adjacent
    return _exit_in_batches(encoder, rows, pooling, rule, last, 2 * max(1, batch_size // 2), order)


# ---------------------------------------------------------------- binary labels


def tune_threshold(sims: np.ndarray, labels: np.ndarray) -> float:
    """The cosine threshold (predict 1 when sim > threshold) with the best accuracy on
    (sims, labels): a midpoint between consecutive distinct similarities, the lowest
    such threshold on ties."""
    sims, labels = np.asarray(sims, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if sims.shape != labels.shape or sims.ndim != 1 or len(sims) == 0:
        raise ValueError(f"tune_threshold needs two 1-D arrays of one non-zero length; got {sims.shape} and "
                         f"{labels.shape}")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("tune_threshold needs binary labels (0/1); got other values: use it for MRPC/RTE/QQP only")
    order = np.argsort(sims, kind="stable")
    s, y = sims[order], labels[order]
    # cut c = number of rows predicted 0 (the c lowest); valid where s[c-1] < s[c]
    correct = np.concatenate([[0.0], np.cumsum(1 - y)]) + (y.sum() - np.concatenate([[0.0], np.cumsum(y)]))
    valid = np.ones(len(s) + 1, dtype=bool)
    valid[1:-1] = s[:-1] < s[1:]
    c = int(np.flatnonzero(valid)[np.argmax(correct[valid])])
    if c == 0:
        return float(s[0] - 1.0)
    if c == len(s):
        return float(s[-1] + 1.0)
    return float((s[c - 1] + s[c]) / 2)


def binary_scores(sims: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Accuracy and F1 (positive class 1) of `sim > threshold`."""
    pred = np.asarray(sims) > threshold
    y = np.asarray(labels) == 1
    tp, fp, fn = int(np.sum(pred & y)), int(np.sum(pred & ~y)), int(np.sum(~pred & y))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"accuracy": float(np.mean(pred == y)), "f1": float(f1)}


# ---------------------------------------------------------------- the study


def exit_study(encoder, pairs: PairSet, rules: Sequence[ExitRule], pooling: str = "mean", batch_size: int = 32,
               tune: PairSet | None = None, depths: Sequence[int] | None = None, rounds: int = 1,
               select_after_full_pass: bool = False) -> list[dict]:
    """Fixed-depth pruning and early exit on one pair set, timed in the same run.

    Every method (the full pass, each fixed depth, each rule) is timed on the same
    sentences in interleaved rounds (best of `rounds`), so its speed-up is a ratio of two
    measurements taken side by side; the vectors come from the timed calls themselves.

    Args:
        pairs: the evaluation set.
        rules: early-exit settings to run.
        tune: for binary sets, the set the cosine threshold is tuned on (each method encodes
            it the same way, untimed); None leaves accuracy and F1 out.
        depths: fixed depths (block indices) to sweep; default every block.
        select_after_full_pass: the rules on the layers of a full pass (see encode_with_exit).
    Returns:
        One record per fixed depth (criterion "fixed") and per rule: criterion, tau,
        epsilon, patience, depth, mean_layers, spearman, pearson, spearman_ci95,
        seconds_per_pair, full_pass_seconds_per_pair, speedup, exit_mode, skips_work,
        (binary sets) threshold, accuracy, f1; plus model and data provenance.
    """
    last = _check_encoder(encoder, select_after_full_pass)
    exit_kw = {"select_after_full_pass": select_after_full_pass}
    depths = list(range(last + 1)) if depths is None else [int(d) for d in depths]
    bad = [d for d in depths if not 0 <= d <= last]
    if bad:
        raise ValueError(f"fixed depths {bad} out of range for {encoder.name} (blocks 0..{last})")
    check_poolings((pooling,))
    if tune is not None and tune.gold_kind != "binary":
        raise ValueError(f"a tuning set is for binary labels; {tune.name} is {tune.gold_kind}")

    def prepare(p: PairSet):
        sentences, [(i1, i2)] = unique_sentences([p])
        tok = encoder.tokenize(sentences)
        return tok, i1, i2, [(tok[a], tok[b]) for a, b in zip(i1, i2)]

    tok, i1, i2, pair_tok = prepare(pairs)
    results: dict[str, object] = {}

    def remember(name, fn):
        def call():
            results[name] = fn()
        return call

    methods = {"full": remember("full", lambda: encoder.encode_tokens(tok, [last], [pooling], batch_size))}
    for d in depths:
        methods[f"fixed {d}"] = remember(d, lambda d=d: encoder.encode_tokens(tok, [d], [pooling], batch_size))
    for rule in rules:
        if rule.criterion == "saturation":
            fn = lambda rule=rule: encode_with_exit(encoder, tok, pooling, rule, batch_size, last, **exit_kw)  # noqa: E731
        else:
            fn = lambda rule=rule: encode_pairs_with_exit(encoder, pair_tok, pooling, rule, batch_size, last,  # noqa: E731
                                                          **exit_kw)
        methods[rule.name] = remember(rule, fn)
    seconds = interleaved_best(methods, rounds, str(encoder.device))
    n = len(pairs)
    full_s = seconds["full"]

    def sims_of(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, paired: bool) -> np.ndarray:
        """The pair similarities of one method's vectors (pair rule: rows a0, b0, a1, b1, ...)."""
        pair_rows = (np.arange(0, len(vectors), 2), np.arange(1, len(vectors), 2)) if paired else (a, b)
        return score_vectors({"method": vectors}, [pair_rows])[0]["method"][0]

    tuned: dict = {}
    if tune is not None:
        ttok, t1, t2, tpair = prepare(tune)
        temb = encoder.encode_tokens(ttok, depths, [pooling], batch_size)
        for d in depths:
            tuned[d] = tune_threshold(sims_of(temb[(d, pooling)], t1, t2, False), tune.gold)
        for rule in rules:
            r = (encode_with_exit(encoder, ttok, pooling, rule, batch_size, last, **exit_kw)
                 if rule.criterion == "saturation"
                 else encode_pairs_with_exit(encoder, tpair, pooling, rule, batch_size, last, **exit_kw))
            tuned[rule] = tune_threshold(sims_of(r.vectors, t1, t2, rule.criterion == "pair"), tune.gold)

    common = encoder.provenance() | pairs.provenance() | {
        "pooling": pooling, "batch_size": batch_size, "timing_rounds": rounds, "n_layers": last + 1,
        "n_sentences": len(tok), "full_pass_seconds_per_pair": full_s / n, "dataset_note": pairs.note,
        "timing": "wall time on the same sentences, interleaved rounds, best of timing_rounds"}
    if tune is not None:
        common |= {"tune_dataset": tune.name, "tune_split": tune.split, "tune_n_pairs": len(tune)}

    def record(key, head: dict, sims: np.ndarray, s: float) -> dict:
        rec = head | score(sims, pairs.gold) | {"seconds_per_pair": s / n, "speedup": full_s / s} | common
        if key in tuned:
            rec |= {"threshold": tuned[key]} | binary_scores(sims, pairs.gold, tuned[key])
        return rec

    records = []
    for d in depths:
        v = results[d][(d, pooling)]
        head = {"criterion": "fixed", "tau": None, "epsilon": None, "patience": None, "depth": d,
                "mean_layers": float(d + 1), "exit_mode": "fixed depth: blocks 0..depth", "skips_work": True}
        records.append(record(d, head, sims_of(v, i1, i2, False), seconds[f"fixed {d}"]))
    for rule in rules:
        r: ExitResult = results[rule]
        head = rule.describe() | {"depth": None, "mean_layers": r.mean_layers, "exit_mode": r.mode,
                                  "skips_work": r.mode == MODE_BATCHED,
                                  "exit_layer_counts": np.bincount(r.exit_layer, minlength=last + 1).tolist()}
        records.append(record(rule, head, sims_of(r.vectors, i1, i2, rule.criterion == "pair"), seconds[rule.name]))
    return records
