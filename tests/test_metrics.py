"""Metrics against scipy directly, and the errors for undefined correlations."""

import numpy as np
import pytest
from scipy import stats

from rwkv_eval.metrics import UndefinedCorrelation, correlations, pearson, spearman, spearman_ci
from rwkv_eval.similarity import cosine


def test_spearman_and_pearson_match_their_textbook_formulas():
    """Independent of scipy: without ties Spearman is 1 - 6 Σ d² / (n (n² - 1)) on argsort
    ranks; Pearson is the normalised centred dot product."""
    rng = np.random.default_rng(1)
    pred = rng.normal(size=200)
    gold = pred + rng.normal(size=200)
    rank = lambda v: np.argsort(np.argsort(v)).astype(float)  # noqa: E731  (no ties in continuous draws)
    d = rank(pred) - rank(gold)
    n = len(pred)
    assert spearman(pred, gold) == pytest.approx(1 - 6 * (d * d).sum() / (n * (n * n - 1)), abs=1e-12)
    pc, gc = pred - pred.mean(), gold - gold.mean()
    assert pearson(pred, gold) == pytest.approx(pc @ gc / np.sqrt((pc @ pc) * (gc @ gc)), abs=1e-12)


def test_spearman_with_ties_by_hand():
    """gold (0, 0, 1, 1) ranks (1.5, 1.5, 3.5, 3.5); pred (1, 2, 3, 4) ranks 1..4.
    Pearson of the ranks: Σ(x-2.5)(y-2.5) = 4, Σ(x-2.5)² = 5, Σ(y-2.5)² = 4 -> 4/sqrt(20)."""
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([0.0, 0, 1, 1])) == pytest.approx(4 / np.sqrt(20), abs=1e-12)


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(2)
    pred = rng.normal(size=408)
    gold = (pred + rng.normal(size=408) > 0).astype(float)  # binary gold like MRPC
    lo, hi = spearman_ci(pred, gold)
    assert lo < spearman(pred, gold) < hi
    assert 0.05 < hi - lo < 0.3  # ~ 2 * 1.96 / sqrt(408) for a moderate correlation
    assert (lo, hi) == spearman_ci(pred, gold)
    assert (lo, hi) != spearman_ci(pred, gold, seed=1)


def test_vectorised_bootstrap_statistic_is_spearman():
    from rwkv_eval.metrics import _spearman_along

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5, 50)), rng.integers(0, 3, size=(5, 50)).astype(float)  # ties in y
    expected = [stats.spearmanr(a, b).statistic for a, b in zip(x, y)]
    np.testing.assert_allclose(_spearman_along(x, y), expected, atol=1e-12)


def test_constant_predictions_raise_a_clear_error_not_nan():
    with pytest.raises(UndefinedCorrelation, match="all 5 predicted similarities are equal"):
        spearman(np.zeros(5), np.arange(5.0))
    with pytest.raises(UndefinedCorrelation, match="gold"):
        correlations(np.arange(5.0), np.ones(5))


def test_nan_predictions_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        spearman(np.array([0.1, np.nan, 0.3]), np.arange(3.0))


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="one length"):
        spearman(np.arange(4.0), np.arange(5.0))


def test_cosine_matches_a_direct_formula_and_rejects_nonfinite():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(10, 7)), rng.normal(size=(10, 7))
    expected = [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)]
    np.testing.assert_allclose(cosine(a, b), expected, atol=1e-12)
    a[3, 2] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        cosine(a, b)
