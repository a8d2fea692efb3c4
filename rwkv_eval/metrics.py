"""Correlation of predicted similarities with gold scores, with a bootstrap interval.

Spearman is the study's metric (rank-based, so the unknown calibration of cosine vs a
0-5 or 0/1 gold scale does not matter). MRPC validation has only 408 pairs: a
difference of 0.02 between two layers is within noise, so every score carries a
percentile-bootstrap 95% interval over resampled pairs (scipy.stats.bootstrap, fixed
seed, recorded).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


class UndefinedCorrelation(ValueError):
    """A correlation asked of a constant vector: there is no ranking to correlate."""


def _check(pred: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.float64)
    if pred.shape != gold.shape or pred.ndim != 1:
        raise ValueError(f"predictions and gold must be two 1-D arrays of one length; got {pred.shape} and {gold.shape}")
    if len(pred) < 3:
        raise UndefinedCorrelation(f"a correlation needs at least 3 pairs; got {len(pred)}")
    if not (np.isfinite(pred).all() and np.isfinite(gold).all()):
        raise ValueError("predictions or gold contain NaN/inf; refusing to report a correlation")
    if np.ptp(pred) == 0:
        raise UndefinedCorrelation(
            f"all {len(pred)} predicted similarities are equal ({pred[0]:.6g}): Spearman is undefined "
            "(a collapsed encoder, or every sentence mapped to the zero vector)"
        )
    if np.ptp(gold) == 0:
        raise UndefinedCorrelation("all gold scores are equal: Spearman is undefined for this pair set")
    return pred, gold


def spearman(pred: np.ndarray, gold: np.ndarray) -> float:
    pred, gold = _check(pred, gold)
    return float(stats.spearmanr(pred, gold).statistic)


def pearson(pred: np.ndarray, gold: np.ndarray) -> float:
    pred, gold = _check(pred, gold)
    return float(stats.pearsonr(pred, gold).statistic)


def _spearman_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Vectorised Spearman for scipy.stats.bootstrap: Pearson of the ranks."""
    rx = stats.rankdata(x, axis=axis)
    ry = stats.rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    num = (rx * ry).sum(axis=axis)
    den = np.sqrt((rx * rx).sum(axis=axis) * (ry * ry).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def spearman_ci(
    pred: np.ndarray,
    gold: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of Spearman over resampled pairs."""
    pred, gold = _check(pred, gold)
    with warnings.catch_warnings():
        # scipy warns (and returns NaN) when resamples are degenerate; the caller gets the NaN and says why
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(
            (pred, gold),
            _spearman_along,
            paired=True,
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    lo, hi = res.confidence_interval
    return float(lo), float(hi)


def correlations(pred: np.ndarray, gold: np.ndarray) -> dict:
    """The scores every record carries: spearman, pearson and the Spearman 95% CI.

    Too few pairs for a bootstrap (some resamples have constant similarities or gold, so
    their Spearman is undefined) give spearman_ci95 [None, None] and the reason in
    spearman_ci95_reason: never a NaN that JSON cannot hold.
    """
    lo, hi = spearman_ci(pred, gold)
    out = {"spearman": spearman(pred, gold), "pearson": pearson(pred, gold), "spearman_ci95": [lo, hi]}
    if not (math.isfinite(lo) and math.isfinite(hi)):
        out["spearman_ci95"] = [None, None]
        out["spearman_ci95_reason"] = (f"no bootstrap CI: {len(np.asarray(gold))} pairs are too few, some of the "
                                       f"{BOOTSTRAP_RESAMPLES} resamples have constant similarities or gold scores")
    return out


def bootstrap_indices(n: int, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(n_resamples, n) pair indices drawn with replacement. Sharing one matrix between
    two settings scored on the same pairs is what makes a comparison paired: both see
    the same resampled pairs, so the pair-level noise they share cancels in the difference."""
    if n < 3:
        raise UndefinedCorrelation(f"a bootstrap of a correlation needs at least 3 pairs; got {n}")
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def spearman_resampled(pred: np.ndarray, gold: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Spearman of every resample `idx[i]` of the pairs: (n_resamples,) (NaN for a
    resample whose predictions or gold happen to be constant)."""
    pred, gold = _check(pred, gold)
    return _spearman_along(pred[idx], gold[idx], axis=1)


def paired_difference(
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    gold: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    idx: np.ndarray | None = None,
) -> dict:
    """Δρ = Spearman(a) − Spearman(b) on the same pairs, with a paired percentile-bootstrap
    interval and a two-sided p-value (`resampled_summary`: floor 2/(n_resamples+1)).

    Returns:
        {"delta_spearman", "delta_ci95": [lo, hi], "p_value", "n_pairs", "n_resamples",
        "bootstrap_seed"}.
    """
    gold = np.asarray(gold, dtype=np.float64)
    delta = spearman(pred_a, gold) - spearman(pred_b, gold)
    if idx is None:
        idx = bootstrap_indices(len(gold), n_resamples, seed)
    d = spearman_resampled(pred_a, gold, idx) - spearman_resampled(pred_b, gold, idx)
    s = resampled_summary(d, confidence)
    return {"delta_spearman": float(delta), "delta_ci95": s["ci95"], "p_value": s["p_value"],
            "n_pairs": int(len(gold)), "n_resamples": s["n_resamples"], "bootstrap_seed": seed}


def resampled_summary(d: np.ndarray, confidence: float = 0.95) -> dict:
    """Percentile interval and two-sided p-value (of "the statistic is 0") of resampled
    values `d` of any difference of correlations (NaN resamples dropped): paired_difference's
    rule, shared by the analyses that build their own differences (e.g. a difference of
    degradations across two pair sets). Returns {"ci95": [lo, hi], "p_value", "n_resamples"}.

    p = min(1, 2 (1 + #{d on the far side of 0}) / (B + 1)) for B resamples: the observed
    statistic counts as one of the B + 1 draws, so p is never 0, and its floor 2/(B + 1) is
    the smallest value a two-sided bootstrap test can give (Davison & Hinkley 1997, ch. 4).
    A multiple-comparison correction needs that floor below its smallest threshold
    (`bootstrap_resolution`)."""
    d = np.asarray(d, dtype=np.float64)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        raise UndefinedCorrelation("every bootstrap resample gave an undefined correlation")
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(d, [alpha, 1 - alpha])
    far = min(int((d <= 0).sum()), int((d >= 0).sum()))
    p = min(1.0, 2 * (1 + far) / (len(d) + 1))
    return {"ci95": [float(lo), float(hi)], "p_value": float(p), "n_resamples": int(len(d))}


# ---------------------------------------------------------------- many comparisons

SIGNIFICANCE = 0.05  # the family-wise (Holm) or false-discovery (Benjamini-Hochberg) level of every verdict
CORRECTIONS = {
    "holm": "Holm step-down: family-wise error rate <= 0.05 over the family (Holm 1979)",
    "benjamini-hochberg": "Benjamini-Hochberg: false discovery rate <= 0.05 over the family "
                          "(scipy.stats.false_discovery_control, method 'bh')",
}


def adjust_p(p_values, method: str) -> list[float | None]:
    """Multiplicity-adjusted p-values of one family; a None p (an undefined comparison) stays
    None and is not counted in the family. A comparison is significant when its adjusted p
    is below SIGNIFICANCE.

    holm: sort p ascending, p_(i) * (m - i + 1) (i = 1..m), made monotone by a running
    maximum, capped at 1 (scipy has no Holm). benjamini-hochberg: scipy.stats.false_discovery_control.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown multiple-comparison correction {method!r}; choose from {', '.join(CORRECTIONS)}")
    p_values = list(p_values)
    defined = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if not defined:
        return out
    p = np.asarray([p_values[i] for i in defined], dtype=np.float64)
    if method == "benjamini-hochberg":
        adj = stats.false_discovery_control(p, method="bh")
    else:
        order = np.argsort(p, kind="stable")
        m = len(p)
        stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
        adj = np.empty(m)
        adj[order] = np.minimum(stepped, 1.0)
    for i, a in zip(defined, adj):
        out[i] = float(a)
    return out


def bootstrap_resolution(n_resamples: int, family: int) -> dict:
    """Whether B resamples can show significance at all under a correction of `family` tests:
    the smallest bootstrap p, 2/(B+1), must be below the correction's smallest threshold
    (SIGNIFICANCE / family for Holm and for Benjamini-Hochberg's first step). Returns the
    record's {"min_p", "smallest_threshold", "sufficient", "n_resamples_needed"}."""
    smallest = SIGNIFICANCE / max(1, family)
    needed = math.floor(2 / smallest)  # 2/(B+1) < smallest  <=>  B + 1 > 2/smallest
    return {"min_p": 2 / (n_resamples + 1), "smallest_threshold": smallest,
            "sufficient": 2 / (n_resamples + 1) < smallest, "n_resamples_needed": needed}


# ---------------------------------------------------------------- binary gold


def spearman_max(gold: np.ndarray) -> float:
    """The largest Spearman a tie-free scorer can reach against binary (0/1) gold.

    With n1 positives and n0 negatives (n = n0 + n1), the gold ranks take two values: every
    negative the midrank (n0 + 1)/2, every positive n0 + (n1 + 1)/2. The best tie-free
    predictions rank all positives above all negatives; their ranks are 1..n. Pearson of the
    two rank vectors: the class means of 1..n differ by n/2, the standard deviation of 1..n is
    sqrt((n^2 - 1)/12), that of the gold ranks (n/2) sqrt(n0 n1)/n, so

        spearman_max = sqrt(3 n0 n1 / (n^2 - 1))

    (0.805 on MRPC validation: 279 of 408 positive). Cosine similarities are tie-free in
    practice, so an MRPC Spearman reads against this ceiling, not against 1. (Predictions with
    the same two-valued ties as the gold would reach 1; no similarity does that.)
    """
    gold = np.asarray(gold, dtype=np.float64)
    if gold.ndim != 1 or not np.isin(gold, (0.0, 1.0)).all():
        raise ValueError(f"spearman_max needs 1-D binary (0/1) gold; got shape {gold.shape} with values "
                         f"{sorted(set(np.unique(gold).tolist()))[:5]}")
    n1 = int(gold.sum())
    n = len(gold)
    n0 = n - n1
    if n0 == 0 or n1 == 0:
        raise UndefinedCorrelation(f"all {n} gold labels are {int(gold[0]) if n else '-'}: Spearman is undefined")
    return math.sqrt(3 * n0 * n1 / (n * n - 1))


MIN_TUNING_PAIRS = 100
TUNING_NOTE = (
    f"a cosine threshold tuned on fewer than {MIN_TUNING_PAIRS} pairs says nothing: the accuracy's own sampling error "
    f"(sqrt(p(1-p)/n) ~ 0.05 at n = {MIN_TUNING_PAIRS}, 0.09 at 24) is as large as the differences between methods, and "
    "on an imbalanced set (MRPC 68% positive) a small tuning set is best served by predicting every pair positive, "
    "which gives every method the same base-rate accuracy")


def too_few_tuning_pairs(n: int, where: str) -> str | None:
    """Why tuned-threshold accuracy/F1 on `n` tuning pairs must not be reported (fewer than
    MIN_TUNING_PAIRS; TUNING_NOTE says why), or None when there are enough."""
    if n >= MIN_TUNING_PAIRS:
        return None
    return (f"accuracy/F1 left out: {where} has {n} tuning pairs for the threshold; {TUNING_NOTE}. Tune on at least "
            f"{MIN_TUNING_PAIRS} pairs (a larger --max-pairs, or none)")
