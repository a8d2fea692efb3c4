"""Cosine and Spearman invariants."""

import numpy as np
from hypothesis import assume, given, strategies as st
from hypothesis.extra.numpy import arrays

from rwkv_eval.metrics import spearman
from rwkv_eval.similarity import cosine

elem = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def pair_of_batches(draw, nonzero=True):
    N = draw(st.integers(1, 6))
    D = draw(st.integers(1, 8))
    a = draw(arrays(np.float64, (N, D), elements=elem))
    b = draw(arrays(np.float64, (N, D), elements=elem))
    if nonzero:
        assume((np.linalg.norm(a, axis=1) > 1e-3).all() and (np.linalg.norm(b, axis=1) > 1e-3).all())
    return a, b


@given(pair_of_batches(nonzero=False))
def test_cosine_is_symmetric_and_bounded(ab):
    a, b = ab
    c = cosine(a, b)
    np.testing.assert_allclose(c, cosine(b, a), rtol=0, atol=1e-12)
    assert np.isfinite(c).all() and (np.abs(c) <= 1.0).all()


@given(pair_of_batches(), st.floats(1e-3, 1e3), st.floats(1e-3, 1e3))
def test_cosine_is_invariant_to_positive_scaling(ab, s, t):
    a, b = ab
    np.testing.assert_allclose(cosine(s * a, t * b), cosine(a, b), rtol=1e-9, atol=1e-9)


@given(pair_of_batches())
def test_cosine_with_itself_is_one_and_negation_flips_sign(ab):
    a, b = ab
    np.testing.assert_allclose(cosine(a, a), 1.0, atol=1e-12)
    np.testing.assert_allclose(cosine(-a, b), -cosine(a, b), atol=1e-12)


@given(pair_of_batches(nonzero=False))
def test_zero_vector_scores_zero_not_nan(ab):
    a, b = ab
    a[0] = 0.0
    assert cosine(a, b)[0] == 0.0


@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=3, max_size=60, unique=True),
       st.sampled_from([np.exp, np.arctan, lambda x: x ** 3, lambda x: 5 * x + 2]))
def test_spearman_is_invariant_under_strictly_increasing_maps(pred, f):
    pred = np.array(pred)
    gold = np.sin(np.arange(len(pred)) * 1.7)  # fixed, non-constant, tie-free gold
    transformed = f(pred)
    assume(len(np.unique(transformed)) == len(pred))  # the map must stay strictly increasing in floats
    np.testing.assert_allclose(spearman(transformed, gold), spearman(pred, gold), atol=1e-12)
