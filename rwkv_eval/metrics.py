"""Correlation of predicted similarities with gold scores, with a bootstrap interval.

Spearman is the study's metric (rank-based, so the unknown calibration of cosine vs a
0-5 or 0/1 gold scale does not matter). MRPC validation has only 408 pairs: a
difference of 0.02 between two layers is within noise, so every score carries a
percentile-bootstrap 95% interval over resampled pairs (scipy.stats.bootstrap, fixed
seed, recorded).
"""

from __future__ import annotations

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


def correlations(pred: np.ndarray, gold: np.ndarray) -> dict[str, float | list[float]]:
    """The scores every record carries: spearman, pearson and the Spearman 95% CI."""
    lo, hi = spearman_ci(pred, gold)
    return {"spearman": spearman(pred, gold), "pearson": pearson(pred, gold), "spearman_ci95": [lo, hi]}


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
    interval and a two-sided p-value (twice the share of resampled Δρ on the far side of
    zero, floored at 1/(n_resamples+1)).

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
    degradations across two pair sets). Returns {"ci95": [lo, hi], "p_value", "n_resamples"}."""
    d = np.asarray(d, dtype=np.float64)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        raise UndefinedCorrelation("every bootstrap resample gave an undefined correlation")
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(d, [alpha, 1 - alpha])
    p = min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean()))
    return {"ci95": [float(lo), float(hi)], "p_value": float(max(p, 1 / (len(d) + 1))), "n_resamples": int(len(d))}
