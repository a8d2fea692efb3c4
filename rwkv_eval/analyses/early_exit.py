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
independent, so a remaining row is computed exactly as before. The time saved is
measured on the same sentences as the full pass it is compared with (`measure.compare_times`:
warm-up, alternating order, rounds by time, median and a CI of the speed-up), never
derived from layer counts; the layer counts give its ceiling instead: the compute bound
(block tokens of the full pass / block tokens executed, padding included), and a speed-up
whose CI lies above it (beyond measure.BOUND_SLACK) is flagged as a measurement fault,
not reported as a result.

The research question is iso-compute: does routing beat pruning at equal cost? Each rule
is compared with fixed depth at its own mean number of blocks (interpolated between the
adjacent depths), Δρ with a paired bootstrap on shared resamples (analyses/paired.py).
A threshold meant for the test split is chosen on train/validation (`choose_rule`: the
cheapest within a Spearman loss of full depth). A rule whose rows nearly all leave at
one block is a fixed depth, not routing, and its record says so (`degenerate_exit`). An encoder without a stepper (GloVe, transformers) is refused; only
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
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..datasets import PairSet
from ..encoder import EMBEDDING, BlockStepper, Encoder
from ..evaluation import Evaluation, score, score_vectors, unique_sentences
from ..measure import Timings, bound_check, compare_times
from ..metrics import BOOTSTRAP_SEED, resampled_summary
from ..pooling import check_poolings, pool
from .paired import SAME, PairedSet

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
    block_tokens: int  # work executed: sum over block calls of rows x padded tokens

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
                last: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Run one batch block by block; rows leave as soon as the rule says so.

    Returns ((B, D) float32 pooled vectors at each row's exit, (B,) exit block, block
    tokens executed: rows x padded length summed over the block calls)."""
    B = ids.shape[0]
    x, carry = stepper.embed(ids), None  # (B,T,C)
    prev = pool(x, mask, pooling)  # (B,D)
    streak = _Streak(rule, B, ids.device)
    rows = torch.arange(B, device=ids.device)  # batch row of each active row
    out = torch.zeros_like(prev)
    exit_layer = torch.full((B,), last, dtype=torch.long, device=ids.device)
    work = 0
    for i in range(last + 1):
        work += x.shape[0] * x.shape[1]
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
    return out, exit_layer, work


def padded_tokens(encoder: Encoder, rows: list[list[int]], batch_size: int, order: Sequence[int] | None = None) -> int:
    """Rows x padded length summed over `encoder.batches`: what one block costs on these rows
    (the unit of the compute bound; a full pass to block k costs (k + 1) times this). Rows are
    cut at `encoder.max_length` first, as `encode_tokens` and the exit paths cut them."""
    rows = [t[: encoder.max_length] for t in rows]
    return sum(ids.shape[0] * ids.shape[1] for _, ids, _ in encoder.batches(rows, batch_size, order=order))


def _apply_rule(emb, pooling: str, rule: ExitRule, last: int) -> tuple[np.ndarray, np.ndarray]:
    """The rule on per-layer pooled vectors {(layer, pooling): (N, D)} of layers emb, 0..last
    (pair rule: rows a0, b0, a1, b1, ...): (vectors at each row's exit, exit block)."""
    prev = torch.from_numpy(np.ascontiguousarray(emb[(EMBEDDING, pooling)]))
    N = len(prev)
    streak = _Streak(rule, N, torch.device("cpu"))
    out = np.zeros_like(emb[(last, pooling)])
    exit_layer = np.full(N, last)
    active = np.ones(N, dtype=bool)
    for i in range(last + 1):
        cur = torch.from_numpy(np.ascontiguousarray(emb[(i, pooling)]))
        done = streak.update(prev, cur).numpy() & active if i < last else active.copy()
        out[done], exit_layer[done] = emb[(i, pooling)][done], i
        active &= ~done
        prev = cur
    return out, exit_layer


def _select_after_full_pass(encoder: Encoder, rows: list[list[int]], pooling: str, rule: ExitRule, last: int,
                            batch_size: int) -> ExitResult:
    """The same rule applied to the pooled vectors of a full pass (no work skipped)."""
    emb = encoder.encode_tokens(rows, [EMBEDDING, *range(last + 1)], [pooling], batch_size=batch_size)
    out, exit_layer = _apply_rule(emb, pooling, rule, last)
    return ExitResult(out, exit_layer, MODE_SELECT, (last + 1) * padded_tokens(encoder, rows, batch_size))


def _exit_in_batches(encoder: Encoder, rows: list[list[int]], pooling: str, rule: ExitRule, last: int,
                     batch_size: int, order: Sequence[int] | None = None) -> ExitResult:
    """Batched early exit over `encoder.batches` (in `order` when given)."""
    stepper = encoder.block_stepper()
    vectors, exit_layer, work = None, np.zeros(len(rows), dtype=np.int64), 0
    with torch.inference_mode():
        for idx, ids, mask in encoder.batches(rows, batch_size, order=order):
            v, e, w = _exit_batch(stepper, ids, mask, pooling, rule, last)
            if vectors is None:
                vectors = np.zeros((len(rows), v.shape[1]), dtype=np.float32)
            vectors[idx], exit_layer[idx], work = v.cpu().numpy(), e.cpu().numpy(), work + w
    return ExitResult(vectors, exit_layer, MODE_BATCHED, work)


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


DEGENERATE_SHARE = 0.9  # this share of rows leaving at one block is a fixed depth, not routing
# candidate thresholds `choose_rule` tries besides the given ones (ordered from no exit to exit at once)
TAU_GRID = (1.0, 0.9999, 0.9995, 0.999, 0.998, 0.995, 0.99, 0.98, 0.95, 0.9, 0.8, 0.5, 0.0, -1.0)
EPSILON_GRID = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1)
ISO_COMPUTE = ("fixed-depth baseline at the rule's mean blocks: Spearman linearly interpolated between the two "
               "adjacent depths (every depth scored from one untimed full pass), exact where the mean is whole; "
               "paired bootstrap of delta rho on shared resamples (analyses/paired.py)")


def _rows_of(sentence_emb, pooling: str, rows: np.ndarray, last: int) -> dict:
    """Per-layer pooled vectors of the sentences `rows` (emb, 0..last) from vectors of unique sentences."""
    return {(la, pooling): sentence_emb[(la, pooling)][rows] for la in (EMBEDDING, *range(last + 1))}


def _pair_rows(i1: np.ndarray, i2: np.ndarray) -> np.ndarray:
    """(2P,) sentence index of the rows a0, b0, a1, b1, ... of the pair criterion."""
    return np.stack([i1, i2], 1).ravel()


def _rule_sims(sentence_emb, pooling: str, rule: ExitRule, last: int, i1: np.ndarray, i2: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """(pair similarities, exit block per row) of a rule applied to one all-layer pass."""
    if rule.criterion == "saturation":
        rows, a, b = np.arange(len(sentence_emb[(EMBEDDING, pooling)])), i1, i2
    else:
        rows = _pair_rows(i1, i2)
        a, b = np.arange(0, len(rows), 2), np.arange(1, len(rows), 2)
    vectors, exit_layer = _apply_rule(_rows_of(sentence_emb, pooling, rows, last), pooling, rule, last)
    return score_vectors({"rule": vectors}, [(a, b)])[0]["rule"][0], exit_layer


def choose_rule(encoder: Encoder, pairs: PairSet, criterion: str, patiences: Sequence[int], pooling: str = "mean",
                batch_size: int = 32, last: int | None = None, max_rho_loss: float = 0.01,
                extra: Sequence[float] = ()) -> tuple[ExitRule, dict]:
    """The rule that runs the fewest mean blocks on `pairs` while losing at most `max_rho_loss`
    Spearman against the full depth there: the threshold is chosen on one split (train or
    validation) and only then applied to the test split, so the test figure is not tuned on itself.

    Candidates: TAU_GRID (saturation) or EPSILON_GRID (pair) plus `extra`, for every patience.
    All are applied to one untimed all-layer pass (the batched exit takes the same decisions
    from the same vectors, tests/test_early_exit.py); ties in mean blocks go to the more
    conservative threshold (later exit). τ = 1 / ε = 0 always qualify.
    Returns (rule, the choice's record: split, pairs, target, ρ and mean blocks there).
    """
    if not max_rho_loss >= 0:
        raise ValueError(f"max_rho_loss is a Spearman loss and must be >= 0; got {max_rho_loss}")
    last = _last_block(encoder, True, last)
    grid = TAU_GRID if criterion == "saturation" else EPSILON_GRID
    thresholds = sorted(set(grid) | set(extra), reverse=criterion == "saturation")  # conservative first
    sentences, [(i1, i2)] = unique_sentences([pairs])
    emb = encoder.encode_tokens(encoder.tokenize(sentences), [EMBEDDING, *range(last + 1)], [pooling], batch_size)
    full = score_vectors({"full": emb[(last, pooling)]}, [(i1, i2)])[0]["full"][0]
    full_rho = score(full, pairs.gold)["spearman"]
    if full_rho is None:
        raise ValueError(f"cannot choose an exit threshold on {pairs.name} {pairs.split}: the full depth's Spearman "
                         "is undefined there (constant similarities)")
    best = None
    for p in patiences:
        for t in thresholds:
            rule = ExitRule(criterion, t, p)
            sims, exit_layer = _rule_sims(emb, pooling, rule, last, i1, i2)
            rho, blocks = score(sims, pairs.gold)["spearman"], float(np.mean(exit_layer + 1))
            if rho is not None and rho >= full_rho - max_rho_loss and (best is None or blocks < best[2]):
                best = (rule, rho, blocks)
    rule, rho, blocks = best
    return rule, {"chosen_on": f"{pairs.name} {pairs.split}", "chosen_on_n_pairs": len(pairs),
                  "max_rho_loss": max_rho_loss, "chosen_on_spearman": rho, "chosen_on_full_spearman": full_rho,
                  "chosen_on_mean_layers": blocks, "candidates": [*thresholds], "patiences": list(patiences)}


def _degenerate(exit_layer: np.ndarray) -> dict:
    """Whether the exits route at all: when DEGENERATE_SHARE of the rows leave at one block,
    the rule is that fixed depth, and calling it routing would mislead."""
    counts = np.bincount(exit_layer)
    k = int(np.argmax(counts))
    share = float(counts[k] / len(exit_layer))
    out = {"exit_modal_block": k, "exit_modal_share": share, "degenerate_exit": share >= DEGENERATE_SHARE}
    if out["degenerate_exit"]:
        out["exit_note"] = (f"{int(counts[k])} of {len(exit_layer)} rows leave at block {k}: a fixed depth, "
                            "not routing")
    return out


def _iso_compute(ps: PairedSet, key, mean_layers: float, pooling: str) -> dict:
    """Δρ of a rule against fixed depth at its mean blocks (paired, shared resamples)."""
    lo_blocks = int(math.floor(mean_layers))
    w = mean_layers - lo_blocks
    lo, hi = (("fixed", lo_blocks - 1), pooling), (("fixed", lo_blocks if w else lo_blocks - 1), pooling)
    if key not in ps.rho or lo not in ps.rho or hi not in ps.rho:
        return {"undefined": "a Spearman of this comparison is undefined (constant similarities)"}
    if w == 0:
        d = ps.difference(key, ps, lo)
        base, depths, weights = ps.rho[lo], [lo[0][1]], [1.0]
    else:
        base = (1 - w) * ps.rho[lo] + w * ps.rho[hi]
        s = resampled_summary(ps.resampled[key] - ((1 - w) * ps.resampled[lo] + w * ps.resampled[hi]))
        d = {"delta_spearman": ps.rho[key] - base, "delta_ci95": s["ci95"], "p_value": s["p_value"],
             "n_resamples": s["n_resamples"], "bootstrap_seed": ps.seed}
        depths, weights = [lo[0][1], hi[0][1]], [1 - w, w]
    lo_ci, hi_ci = d["delta_ci95"]
    verdict = "routing better" if lo_ci > 0 else "routing worse" if hi_ci < 0 else SAME
    return {"baseline_depths": depths, "baseline_weights": weights, "baseline_spearman": base,
            "delta_spearman": d["delta_spearman"], "delta_ci95": d["delta_ci95"], "p_value": d["p_value"],
            "n_resamples": d["n_resamples"], "bootstrap_seed": d["bootstrap_seed"], "verdict": verdict,
            "method": ISO_COMPUTE}


def exit_study(encoder, pairs: PairSet, rules: Sequence[ExitRule], pooling: str = "mean", batch_size: int = 32,
               tune: PairSet | None = None, depths: Sequence[int] | None = None, min_rounds: int = 5,
               min_time: float = 1.0, select_after_full_pass: bool = False, choose_on: PairSet | None = None,
               max_rho_loss: float = 0.01, seed: int = BOOTSTRAP_SEED,
               timer: Callable[..., Timings] = compare_times) -> list[dict]:
    """Fixed-depth pruning and early exit on one pair set, timed in the same run.

    Every method (the full pass, each fixed depth, each rule) is timed against the full
    pass on the same sentences with `measure.compare_times` (warm-up, alternating order,
    rounds by time: at least `min_rounds` and `min_time` s, median, bootstrap CI of the
    speed-up); the vectors come from the timed calls themselves. Each speed-up sits beside
    its compute bound (block tokens of the full pass / block tokens the method executed,
    padding included) and is flagged `measurement_fault` when its CI lies above it (beyond
    measure.BOUND_SLACK). Each rule is compared at equal compute with fixed depth
    (`iso_compute`), and says whether its exits route at all (`degenerate_exit`).

    Args:
        pairs: the evaluation set.
        rules: early-exit settings to run.
        tune: for binary sets, the set the cosine threshold is tuned on (each method encodes
            it the same way, untimed); None leaves accuracy and F1 out.
        depths: fixed depths (block indices) to sweep; default every block.
        select_after_full_pass: the rules on the layers of a full pass (see encode_with_exit).
        choose_on: a train/validation set on which `choose_rule` picks, per criterion of
            `rules`, the cheapest threshold within `max_rho_loss` of full depth; that rule
            is added (marked `threshold_chosen_on`) and applied to `pairs`.
        seed: the bootstrap seed of the Spearman CIs and the iso-compute comparison.
        timer: the timing protocol (tests put a broken one here to see the bound catch it).
    Returns:
        One record per fixed depth (criterion "fixed") and per rule: criterion, tau,
        epsilon, patience, depth, mean_layers, spearman, pearson, spearman_ci95,
        seconds_per_pair, full_pass_seconds_per_pair, speedup, speedup_ci95, timing_*,
        block_tokens, full_block_tokens, speedup_bound, speedup_vs_bound,
        measurement_fault, exit_mode, skips_work; rules also exit_layer_counts,
        degenerate_exit, iso_compute, threshold_chosen_on; (binary sets) threshold,
        accuracy, f1; plus model and data provenance.
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
    rules = list(rules)
    chosen: dict[ExitRule, dict] = {}
    if choose_on is not None:
        if (choose_on.name, choose_on.split) == (pairs.name, pairs.split):
            raise ValueError(f"the exit threshold must be chosen on another split than the one scored "
                             f"({pairs.name} {pairs.split}); choose on train or validation")
        for criterion in dict.fromkeys(r.criterion for r in rules):
            same = [r for r in rules if r.criterion == criterion]
            rule, info = choose_rule(encoder, choose_on, criterion, sorted({r.patience for r in same}), pooling,
                                     batch_size, last, max_rho_loss, [r.threshold for r in same])
            chosen[rule] = info
            rules += [] if rule in rules else [rule]

    def prepare(p: PairSet):
        sentences, [(i1, i2)] = unique_sentences([p])
        tok = encoder.tokenize(sentences)
        return tok, i1, i2, [(tok[a], tok[b]) for a, b in zip(i1, i2)]

    tok, i1, i2, pair_tok = prepare(pairs)
    results: dict[object, object] = {}

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
    timings = timer(methods, "full", str(encoder.device), min_rounds=min_rounds, min_time=min_time)
    n = len(pairs)
    block = padded_tokens(encoder, tok, batch_size)  # one block over the unique sentences, as the full pass runs them

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

    # iso-compute: every depth from one untimed pass, the rules' similarities beside them, one resample matrix
    every = encoder.encode_tokens(tok, list(range(last + 1)), [pooling], batch_size)
    rule_sims = {rule: sims_of(results[rule].vectors, i1, i2, rule.criterion == "pair") for rule in rules}
    similarities = {(pairs.name, ("fixed", d), pooling): sims_of(every[(d, pooling)], i1, i2, False)
                    for d in range(last + 1)} | {(pairs.name, ("exit", rule.name), pooling): s
                                                 for rule, s in rule_sims.items()}
    paired = PairedSet(Evaluation([], similarities, {pairs.name: np.asarray(pairs.gold)}), pairs.name, seed=seed)

    common = encoder.provenance() | pairs.provenance() | {
        "pooling": pooling, "batch_size": batch_size, "n_layers": last + 1, "n_sentences": len(tok),
        "full_block_tokens": (last + 1) * block, "dataset_note": pairs.note}
    if tune is not None:
        common |= {"tune_dataset": tune.name, "tune_split": tune.split, "tune_n_pairs": len(tune)}

    def record(key, name: str, head: dict, sims: np.ndarray, work: int) -> dict:
        t = timings.record(name)
        rec = head | score(sims, pairs.gold) | {
            "seconds_per_pair": t["seconds"] / n, "full_pass_seconds_per_pair": t["baseline_seconds"] / n,
            "speedup": t["speedup"], "speedup_ci95": t["speedup_ci95"],
            **{k: v for k, v in t.items() if k.startswith("timing")}, "block_tokens": work,
        } | bound_check(t["speedup"], t["speedup_ci95"], (last + 1) * block / work) | common
        if rec["measurement_fault"]:
            rec["speedup_note"] = (f"measurement fault: speed-up {t['speedup']:.2f} (CI {t['speedup_ci95'][0]:.2f}-"
                                   f"{t['speedup_ci95'][1]:.2f}) above its compute bound "
                                   f"{rec['speedup_bound']:.2f}; not a speed-up")
        if key in tuned:
            rec |= {"threshold": tuned[key]} | binary_scores(sims, pairs.gold, tuned[key])
        return rec

    records = []
    for d in depths:
        v = results[d][(d, pooling)]
        head = {"criterion": "fixed", "tau": None, "epsilon": None, "patience": None, "depth": d,
                "mean_layers": float(d + 1), "exit_mode": "fixed depth: blocks 0..depth", "skips_work": True}
        records.append(record(d, f"fixed {d}", head, sims_of(v, i1, i2, False), (d + 1) * block))
    for rule in rules:
        r: ExitResult = results[rule]
        head = rule.describe() | {"depth": None, "mean_layers": r.mean_layers, "exit_mode": r.mode,
                                  "skips_work": r.mode == MODE_BATCHED,
                                  "exit_layer_counts": np.bincount(r.exit_layer, minlength=last + 1).tolist()}
        head |= _degenerate(r.exit_layer) | {
            "iso_compute": _iso_compute(paired, (("exit", rule.name), pooling), r.mean_layers, pooling),
            "threshold_chosen_on": chosen[rule] if rule in chosen else "given"}
        records.append(record(rule, rule.name, head, rule_sims[rule], r.block_tokens))
    return records
