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


# ---------------------------------------------------------------- p-values and many comparisons


def test_bootstrap_p_value_counts_the_observed_statistic_and_has_floor_two_over_b_plus_one():
    """p = min(1, 2 (1 + #far side) / (B + 1)): every resample above 0 gives the floor 2/(B+1),
    not 1/(B+1) (a two-sided p below 2/(B+1) cannot come from B resamples)."""
    from rwkv_eval.metrics import resampled_summary

    assert resampled_summary(np.linspace(0.1, 1.0, 999))["p_value"] == pytest.approx(2 / 1000)
    d = np.r_[-np.ones(30), np.ones(69)]  # 30 of 99 at or below 0
    assert resampled_summary(d)["p_value"] == pytest.approx(2 * 31 / 100)
    assert resampled_summary(np.r_[-np.ones(50), np.ones(49)])["p_value"] == 1.0


def test_holm_by_hand_and_benjamini_hochberg_against_its_definition():
    from rwkv_eval.metrics import adjust_p

    p = [0.01, None, 0.04, 0.03, 0.2]
    # Holm, m = 4: sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1 = 0.04, 0.09, 0.08, 0.2; running max
    assert adjust_p(p, "holm") == pytest.approx([0.04, None, 0.09, 0.09, 0.2])
    # BH: p_(i) m / i, then the running minimum from the top: 0.04, 0.06, 0.0533 -> 0.0533, 0.2
    assert adjust_p(p, "benjamini-hochberg") == pytest.approx([0.04, None, 0.16 / 3, 0.16 / 3, 0.2])
    assert adjust_p([None], "holm") == [None]
    with pytest.raises(ValueError, match="unknown multiple-comparison correction 'bonf'"):
        adjust_p(p, "bonf")


def test_bootstrap_resolution_says_when_b_is_too_small_for_the_family():
    from rwkv_eval.metrics import bootstrap_resolution

    ok = bootstrap_resolution(1000, 24)  # 2/1001 < 0.05/24
    assert ok["sufficient"] and ok["min_p"] == pytest.approx(2 / 1001)
    low = bootstrap_resolution(1000, 51)  # 0.05/51 < 2/1001: Holm's first step cannot reject
    assert not low["sufficient"] and low["n_resamples_needed"] == 2040
    assert bootstrap_resolution(2040, 51)["sufficient"] and not bootstrap_resolution(2039, 51)["sufficient"]


# ---------------------------------------------------------------- binary gold


@pytest.mark.parametrize("n0,n1", [(1, 2), (2, 3), (3, 4), (1, 6)])
def test_spearman_max_is_the_best_spearman_of_any_tie_free_ranking(n0, n1):
    """Brute force: scipy's Spearman of every ordering of n0 + n1 distinct predictions against
    the binary gold; the largest equals the closed form."""
    from itertools import permutations

    from rwkv_eval.metrics import spearman_max

    gold = np.r_[np.zeros(n0), np.ones(n1)]
    n = n0 + n1
    best = max(stats.spearmanr(np.array(order, dtype=float), gold).statistic
               for order in permutations(range(n)))
    assert spearman_max(gold) == pytest.approx(best, abs=1e-12)
    assert spearman_max(gold) == pytest.approx(np.sqrt(3 * n0 * n1 / (n * n - 1)), abs=1e-12)


def test_spearman_max_of_mrpc_validation_balance_and_its_errors():
    from rwkv_eval.metrics import spearman_max

    gold = np.r_[np.ones(279), np.zeros(129)]  # MRPC validation: 279 of 408 positive
    assert spearman_max(gold) == pytest.approx(0.8054, abs=1e-4)
    assert spearman_max(gold) == pytest.approx(stats.spearmanr(np.arange(408.0), np.sort(gold)).statistic)
    with pytest.raises(ValueError, match="binary"):
        spearman_max(np.array([0.0, 0.5, 1.0]))
    with pytest.raises(UndefinedCorrelation, match="all 4 gold labels"):
        spearman_max(np.ones(4))


def test_tuned_threshold_on_too_few_pairs_is_refused():
    from rwkv_eval.metrics import MIN_TUNING_PAIRS, too_few_tuning_pairs

    assert too_few_tuning_pairs(MIN_TUNING_PAIRS, "mrpc train") is None
    why = too_few_tuning_pairs(MIN_TUNING_PAIRS - 1, "mrpc train-99")
    assert why.startswith("accuracy/F1 left out: mrpc train-99 has 99 tuning pairs")
    assert f"at least {MIN_TUNING_PAIRS} pairs" in why and "base-rate accuracy" in why


def test_exit_on_24_mrpc_pairs_leaves_accuracy_out_and_says_why(shared_data, tiny_assets, tmp_path, capsys):
    """`--max-pairs 24` used to tune the threshold on 24 train pairs and print the same base-rate
    accuracy for every method; now the records carry no accuracy/F1, only the reason."""
    import json

    from rwkv_eval.cli import main

    out = tmp_path / "exit.json"
    assert main(["exit", "--model", str(tiny_assets / "tiny-rwkv-6v0-1m.pth"), "--dataset", "mrpc",
                 "--data-dir", str(shared_data), "--max-pairs", "24", "--tau", "0.99", "--patience", "1",
                 "--depths", "5", "--output", str(out)]) == 0
    records = json.loads(out.read_text())["records"]
    assert records and all("accuracy" not in r and "f1" not in r for r in records)
    assert all(r["accuracy_omitted"].startswith("accuracy/F1 left out: mrpc train-24 has 24 tuning pairs")
               for r in records)
    assert "warning: accuracy/F1 left out" in capsys.readouterr().err
    assert all(r["spearman_max"] == pytest.approx(records[0]["spearman_max"]) for r in records)
    assert 0.5 < records[0]["spearman_max"] < 1  # the 24 pairs' own class balance


def test_binary_records_carry_their_spearman_ceiling(shared_data):
    """Every record built from a binary set's provenance (evaluate, exit) carries spearman_max
    for that set's own class balance; graded sets carry none."""
    from rwkv_eval.datasets import load_pairs, sample
    from rwkv_eval.metrics import spearman_max

    mrpc = load_pairs("mrpc", "validation", shared_data)
    assert mrpc.provenance()["spearman_max"] == pytest.approx(0.8054, abs=1e-4)
    small = sample(mrpc, 24, 0)
    assert small.provenance()["spearman_max"] == pytest.approx(spearman_max(small.gold))
    assert "spearman_max" not in load_pairs("stsb", "validation", shared_data).provenance()
