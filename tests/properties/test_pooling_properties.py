"""Pooling invariants: padding never matters, and each method means what it says."""

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from rwkv_eval.pooling import POOLINGS, pool

finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def states_and_mask(draw, min_valid=1):
    B = draw(st.integers(1, 4))
    T = draw(st.integers(1, 12))
    D = draw(st.integers(1, 8))
    x = draw(arrays(np.float32, (B, T, D), elements=finite))
    lengths = [draw(st.integers(min_valid, T)) for _ in range(B)]
    mask = np.zeros((B, T), dtype=bool)
    for b, n in enumerate(lengths):
        mask[b, :n] = True
    return torch.from_numpy(x), torch.from_numpy(mask)


@given(states_and_mask(min_valid=0), st.sampled_from(POOLINGS), st.integers(1, 5), st.floats(-1e6, 1e6))
def test_padding_values_and_extra_padding_never_change_pooling(sm, method, extra, fill):
    x, mask = sm
    ref = pool(x, mask, method)
    # overwrite padded positions with garbage, and append more padding
    garbage = x.masked_fill(~mask[..., None], fill)
    pad = torch.full((x.shape[0], extra, x.shape[2]), fill)
    x2 = torch.cat([garbage, pad], dim=1)
    m2 = torch.cat([mask, torch.zeros(x.shape[0], extra, dtype=torch.bool)], dim=1)
    # equal up to float32 summation order (a longer row changes the reduction tree)
    torch.testing.assert_close(pool(x2, m2, method), ref, rtol=1e-5, atol=1e-4)


@given(states_and_mask(), st.sampled_from(POOLINGS))
def test_left_and_right_padding_pool_alike(sm, method):
    x, mask = sm
    # move each row's valid tokens to the right end (left padding)
    xl, ml = torch.zeros_like(x), torch.zeros_like(mask)
    for b in range(x.shape[0]):
        n = int(mask[b].sum())
        xl[b, x.shape[1] - n:] = x[b, :n]
        ml[b, x.shape[1] - n:] = True
    torch.testing.assert_close(pool(xl, ml, method), pool(x, mask, method), rtol=1e-5, atol=1e-4)


@given(arrays(np.float32, st.integers(1, 8), elements=finite), st.integers(1, 10), st.sampled_from(POOLINGS))
def test_pooling_identical_rows_returns_that_row(row, n, method):
    x = torch.from_numpy(np.tile(row, (1, n, 1)))
    mask = torch.ones(1, n, dtype=torch.bool)
    torch.testing.assert_close(pool(x, mask, method)[0], torch.from_numpy(row), rtol=1e-5, atol=1e-4)


@given(states_and_mask(), st.sampled_from(["mean", "max"]), st.randoms(use_true_random=False))
def test_mean_and_max_are_permutation_invariant_over_valid_tokens(sm, method, rnd):
    x, mask = sm
    xp = x.clone()
    for b in range(x.shape[0]):
        n = int(mask[b].sum())
        perm = list(range(n))
        rnd.shuffle(perm)
        xp[b, :n] = x[b, perm]
    torch.testing.assert_close(pool(xp, mask, method), pool(x, mask, method), rtol=1e-5, atol=1e-4)


@given(st.integers(1, 12), st.integers(1, 4), st.data())
def test_last_picks_the_last_unmasked_position_for_any_mask(T, D, data):
    mask_np = np.array(data.draw(st.lists(st.booleans(), min_size=T, max_size=T)))
    x = torch.arange(T * D, dtype=torch.float32).reshape(1, T, D)
    out = pool(x, torch.from_numpy(mask_np)[None], "last")[0]
    if mask_np.any():
        last = int(np.flatnonzero(mask_np)[-1])
        torch.testing.assert_close(out, x[0, last])
    else:
        assert torch.equal(out, torch.zeros(D))


@given(states_and_mask())
def test_mean_equals_numpy_mean_of_valid_rows(sm):
    x, mask = sm
    out = pool(x, mask, "mean").numpy()
    for b in range(x.shape[0]):
        np.testing.assert_allclose(out[b], x[b][mask[b]].numpy().astype(np.float64).mean(0), rtol=1e-4, atol=1e-3)


@given(states_and_mask(min_valid=0), st.sampled_from(POOLINGS))
def test_empty_rows_pool_to_zero_and_nothing_is_nan(sm, method):
    x, mask = sm
    out = pool(x, mask, method)
    assert torch.isfinite(out).all()
    empty = mask.sum(1) == 0
    assert torch.equal(out[empty], torch.zeros_like(out[empty]))


# ---- closed forms on arbitrary masks (any padding side, holes included), against numpy
# written from the definitions, never from pool() itself: a wrong weighting, a first_last
# that ignores the first token or a max that sees padding fails here.


@st.composite
def states_and_any_mask(draw, min_valid=1):
    """States and a mask with valid tokens anywhere: right, left or both-sided padding."""
    B = draw(st.integers(1, 4))
    T = draw(st.integers(1, 12))
    D = draw(st.integers(1, 6))
    x = draw(arrays(np.float32, (B, T, D), elements=finite))
    mask = np.zeros((B, T), dtype=bool)
    for b in range(B):
        n = draw(st.integers(min_valid, T))
        side = draw(st.sampled_from(["right", "left", "both"]))
        start = 0 if side == "right" else T - n if side == "left" else draw(st.integers(0, T - n))
        mask[b, start:start + n] = True
    return x, mask


@given(states_and_any_mask())
def test_weighted_mean_is_sum_of_i_times_x_i_over_sum_of_i(sm):
    x, mask = sm
    out = pool(torch.from_numpy(x), torch.from_numpy(mask), "weighted_mean").numpy()
    for b in range(x.shape[0]):
        valid = x[b][mask[b]].astype(np.float64)  # (n, D), in sentence order
        i = np.arange(1, len(valid) + 1, dtype=np.float64)  # 1 for the first valid token
        np.testing.assert_allclose(out[b], (i[:, None] * valid).sum(0) / i.sum(), rtol=1e-4, atol=1e-3)


def test_weighted_mean_of_arange_states_has_its_closed_form():
    """States x_i = i (i = 1..n): Σ i·i / Σ i = (2n+1)/3, whereas the plain mean is (n+1)/2."""
    for n in (2, 5, 9):
        x = torch.arange(1, n + 1, dtype=torch.float32)[None, :, None]
        for pad_left in (0, 3):
            xp = torch.cat([torch.full((1, pad_left, 1), 1e6), x], dim=1)
            m = torch.cat([torch.zeros(1, pad_left, dtype=torch.bool), torch.ones(1, n, dtype=torch.bool)], dim=1)
            assert pool(xp, m, "weighted_mean").item() == pytest.approx((2 * n + 1) / 3, rel=1e-6)


@given(states_and_any_mask())
def test_first_last_is_the_mean_of_first_and_last_valid_tokens(sm):
    x, mask = sm
    out = pool(torch.from_numpy(x), torch.from_numpy(mask), "first_last").numpy()
    for b in range(x.shape[0]):
        valid = np.flatnonzero(mask[b])
        expected = (x[b, valid[0]].astype(np.float64) + x[b, valid[-1]]) / 2
        np.testing.assert_allclose(out[b], expected, rtol=1e-5, atol=1e-4)


@given(states_and_any_mask())
def test_last_is_the_last_valid_token_under_any_padding(sm):
    x, mask = sm
    out = pool(torch.from_numpy(x), torch.from_numpy(mask), "last").numpy()
    for b in range(x.shape[0]):
        np.testing.assert_array_equal(out[b], x[b, np.flatnonzero(mask[b])[-1]])


@given(states_and_any_mask(), st.floats(101, 1e6))
def test_max_ignores_padding_holding_the_largest_values(sm, big):
    x, mask = sm
    x = np.where(mask[..., None], x, np.float32(big))  # padding larger than any valid value
    out = pool(torch.from_numpy(x), torch.from_numpy(mask), "max").numpy()
    for b in range(x.shape[0]):
        np.testing.assert_array_equal(out[b], x[b][mask[b]].max(0))


@given(states_and_any_mask())
def test_mean_is_the_mean_of_valid_tokens_under_any_padding(sm):
    x, mask = sm
    out = pool(torch.from_numpy(x), torch.from_numpy(mask), "mean").numpy()
    for b in range(x.shape[0]):
        np.testing.assert_allclose(out[b], x[b][mask[b]].astype(np.float64).mean(0), rtol=1e-4, atol=1e-3)
