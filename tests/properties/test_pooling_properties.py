"""Pooling invariants: padding never matters, and each method means what it says."""

import numpy as np
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
