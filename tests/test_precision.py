"""Half precision that cannot overflow: float16 / bfloat16 / float32 against float64, per layer.

The native RWKV models run their matmuls in the requested dtype and everything else
(residual stream, WKV state, decays, bonus, norms) in float32 (models/precision.py).
Half precision runs on CPU, so these tests exercise the code path a GPU runs.

Models: the tiny trained RWKV-6 and RWKV-7 (shipped in rwkv_eval/data/tiny-rwkv) and the
`growth` random models, whose FFNs push two channels of the residual up by ~15-30k per
block, past float16's 65504 after a few blocks (the "massive activations" of trained
LLMs). An all-half model (`model.half()`, the code before mixed precision) turns those
into inf and the pooled vectors into NaN.

Errors, per layer, over mean and last pooling of the same sentences, against float64:
    1 - cos(v_dtype, v_float64)      worst sentence
    |cos_ij(dtype) - cos_ij(float64)| worst sentence pair (the quantity STS scores)
On the growth models both are taken without the two massive channels, which would
otherwise make every vector nearly parallel and every error look tiny.
Limits = about 10x the worst value measured (32 sentences of the bundled STS-B sample,
48 tokens each, every layer, the four models; the tests use 6 x 24 to stay fast):

    dtype     1-cos measured  limit    pairwise measured  limit
    float32   1e-13           1e-10    2e-7               2e-6
    float16   3e-7            5e-6     2.3e-4             2e-3
    bfloat16  4.5e-5          5e-4     1.7e-3             1.5e-2
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from rwkv_eval.cli import main
from rwkv_eval.datasets import load_sample
from rwkv_eval.models.precision import to_precision
from rwkv_eval.models.random_init import GROWTH_SHAPES, MASSIVE_CHANNELS, add_massive_activations, random_rwkv_encoder
from rwkv_eval.models.rwkv import RWKVEncoder, load_rwkv
from rwkv_eval.models.rwkv6 import RWKV6
from rwkv_eval.models.tokenizers import ByteTokenizer
from rwkv_eval.pooling import POOLINGS, pool

LIMITS = {  # dtype: (1 - cos, pairwise cosine)
    torch.float32: (1e-10, 2e-6),
    torch.float16: (5e-6, 2e-3),
    torch.bfloat16: (5e-4, 1.5e-2),
}
FP16_MAX = torch.finfo(torch.float16).max  # 65504
MODELS = ("growth-rwkv6", "growth-rwkv7", "tiny-rwkv6", "tiny-rwkv7")
TINY = {"tiny-rwkv6": "tiny-rwkv-6v0-1m.pth", "tiny-rwkv7": "tiny-rwkv-7v0-834K.pth"}
MAX_TOKENS = 24  # bytes per sentence: keeps the float64 and half runs at seconds on a loaded 2-core host


def sentences() -> list[str]:
    pairs = load_sample()
    return list(dict.fromkeys(pairs.sentence1[:4] + pairs.sentence2[:4]))[:6]


def encoder(model: str, dtype: torch.dtype, data: Path | None):
    if model.startswith("growth"):
        return random_rwkv_encoder("growth", arch=model.split("-")[1], dtype=dtype, max_length=MAX_TOKENS)
    return load_rwkv(data / TINY[model], dtype=dtype, max_length=MAX_TOKENS)


@lru_cache(maxsize=None)
def vectors(model: str, dtype: torch.dtype, data: Path | None = None) -> dict:
    enc = encoder(model, dtype, data)
    return enc.encode(sentences(), enc.layers(), ["mean", "last"]).vectors


def errors(a: np.ndarray, b: np.ndarray, drop: tuple[int, ...]) -> tuple[float, float]:
    """(worst 1 - cos(a_i, b_i), worst |cos(a_i, a_j) - cos(b_i, b_j)|), in float64."""
    keep = [i for i in range(a.shape[1]) if i not in drop]
    a, b = a[:, keep].astype(np.float64), b[:, keep].astype(np.float64)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return float(1 - (a * b).sum(1).min()), float(np.abs(a @ a.T - b @ b.T).max())


def test_growth_models_pass_the_float16_range():
    """The test models do what they are for: the fp64 residual passes 65504 in later layers."""
    for model in ("growth-rwkv6", "growth-rwkv7"):
        ref = vectors(model, torch.float64)
        deepest = max(l for l, _ in ref if isinstance(l, int))
        assert np.abs(ref[(deepest, "mean")]).max() > 1.5 * FP16_MAX, model
        assert np.abs(ref[(deepest, "mean")][:, list(MASSIVE_CHANNELS)]).min() > FP16_MAX, model


@pytest.mark.parametrize("model, dtype", [(m, d) for m in MODELS for d in (torch.float16, torch.bfloat16)]
                         + [("growth-rwkv6", torch.float32)], ids=lambda x: str(x).removeprefix("torch."))
def test_half_precision_matches_float64_per_layer(model, dtype, request):
    data = request.getfixturevalue("tiny_assets") if model.startswith("tiny") else None
    ref, got = vectors(model, torch.float64, data), vectors(model, dtype, data)
    drop = MASSIVE_CHANNELS if model.startswith("growth") else ()
    cos_limit, pair_limit = LIMITS[dtype]
    assert set(got) == set(ref)
    for key in ref:
        assert got[key].dtype == np.float32
        assert np.isfinite(got[key]).all(), f"{model} {dtype} {key}: non-finite pooled vector"
        cos_err, pair_err = errors(got[key], ref[key], drop)
        assert cos_err <= cos_limit, f"{model} {dtype} {key}: 1 - cos = {cos_err:.2e} > {cos_limit:.0e}"
        assert pair_err <= pair_limit, f"{model} {dtype} {key}: pairwise cosine error {pair_err:.2e} > {pair_limit:.0e}"


def test_model_keeps_residual_state_and_norms_in_float32():
    enc = random_rwkv_encoder("growth", arch="rwkv6", dtype=torch.float16)
    m = enc.model
    assert m.emb.weight.dtype == m.head.weight.dtype == m.blocks[0].att.key.weight.dtype == torch.float16
    a = m.blocks[0].att
    for t in (a.time_decay, a.time_faaaa, a.ln_x.weight, a.time_maa_w1, m.blocks[0].ln1.weight, m.ln_out.weight):
        assert t.dtype == torch.float32
    ids = torch.tensor([[65, 66, 67]])
    assert all(x.dtype == torch.float32 for _, x in m.states(ids))
    prov = enc.provenance()
    assert prov["dtype"] == "float16" and prov["compute_dtype"] == "float32"


def test_branch_output_past_the_dtype_range_is_a_clear_error():
    """One block's FFN output above 65504 cannot be stored in float16: a one-line error, never a NaN."""
    model = to_precision(add_massive_activations(RWKV6.random(GROWTH_SHAPES["rwkv6"]), push=2e5), torch.float16)
    enc = RWKVEncoder(model, ByteTokenizer(), name="growth-2e5", revision="test")
    with pytest.raises(ValueError, match=r"growth-2e5: non-finite hidden state at layer 0 in torch.float16 matmuls "
                                         r"\(a block's output passed the dtype's range\); use --dtype bfloat16.*"
                                         r"the first being sentence index 0 "):
        enc.encode(["a sentence"], [0, 4], ["mean"])
    # the index is the input position, not the row of the length-sorted batch: "" has no token
    # to overflow, the sentence after it does and sorts first
    with pytest.raises(ValueError, match=r"1 sentence\(s\) of a batch, the first being sentence index 1 "):
        enc.encode(["", "a sentence"], [0], ["mean"])


@pytest.mark.parametrize("method", POOLINGS)
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_pooling_ignores_non_finite_padding(method, bad):
    g = torch.Generator().manual_seed(0)
    states = torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    clean = pool(states, mask, method)
    dirty = states.clone()
    dirty[~mask] = bad
    out = pool(dirty, mask, method)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, clean, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["rwkv6", "rwkv7"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cli_embed_half_precision_on_cpu_matches_float64(tmp_path, arch, dtype):
    """The issue's acceptance line: `rwkv-eval embed --dtype float16 --device cpu` on a model
    whose residual passes 65504 gives finite vectors matching float64."""
    inp = tmp_path / "s.txt"
    inp.write_text("\n".join(sentences()) + "\n", encoding="utf-8")
    out = tmp_path / "e.npz"
    assert main(["embed", "--model", f"random-{arch}:growth", "--layers", "3,7",
                 "--pooling", "mean", "--input", str(inp), "--output", str(out), "--device", "cpu",
                 "--dtype", dtype, "--max-length", str(MAX_TOKENS)]) == 0
    got = np.load(out)
    ref = vectors(f"growth-{arch}", torch.float64)
    cos_limit, pair_limit = LIMITS[getattr(torch, dtype)]
    for layer in (3, 7):
        v = got[f"L{layer}_mean"]
        assert np.isfinite(v).all() and np.abs(v).max() > FP16_MAX
        cos_err, pair_err = errors(v, ref[(layer, "mean")], MASSIVE_CHANNELS)
        assert cos_err <= cos_limit and pair_err <= pair_limit, (layer, cos_err, pair_err)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_cuda_half_precision_matches_float64_on_every_device(dtype):
    """The same limits on each CUDA device (cuda:N included): the GPU check's precision part."""
    ref = vectors("growth-rwkv6", torch.float64)
    for i in range(torch.cuda.device_count()):
        enc = random_rwkv_encoder("growth", arch="rwkv6", dtype=dtype, device=f"cuda:{i}", max_length=MAX_TOKENS)
        got = enc.encode(sentences(), enc.layers(), ["mean", "last"]).vectors
        assert next(enc.model.parameters()).device == torch.device(f"cuda:{i}")
        for key in ref:
            cos_err, pair_err = errors(got[key], ref[key], MASSIVE_CHANNELS)
            assert np.isfinite(got[key]).all()
            assert cos_err <= LIMITS[dtype][0] and pair_err <= LIMITS[dtype][1], (i, key, cos_err, pair_err)
