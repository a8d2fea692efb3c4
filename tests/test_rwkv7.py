"""Native RWKV-7 (Goose): oracle logits, WKV-7 chunked vs naive, layer numbering, padding.

The oracle is the tiny trained checkpoint shipped in rwkv_eval/data/tiny-rwkv (RWKV/rwkv.cpp test
suite, commit 4358e70): tokens 34, 105, 110 from an empty state give
expected-logits-7v0-834K.bin. Its r_k is (1, 64): one head of size 64, so the multi-head
paths are covered by the seeded random models and the kernel grid below.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rwkv_eval.models.checkpoint import read_pth, save_hf
from rwkv_eval.models.rwkv import RWKVEncoder, load_rwkv
from rwkv_eval.models.rwkv7 import RWKV7, SHAPES, RWKV7Config
from rwkv_eval.models.tokenizers import ByteTokenizer
from rwkv_eval.models.wkv7 import wkv7, wkv7_chunked, wkv7_naive

TOKENS = [34, 105, 110]  # the bytes of '"in'
SENTENCES = ["A man is playing a guitar.", "", "x", "Two dogs run through a snowy field, chasing a red ball.",
             "Ünïcödé 日本語 👍", "A woman slices an onion on a wooden board in her kitchen at night."]


@pytest.fixture(scope="module")
def tiny(tiny_assets):
    return tiny_assets / "tiny-rwkv-7v0-834K.pth"


@pytest.fixture(scope="module")
def tiny_encoder(tiny):
    return load_rwkv(tiny)


@pytest.fixture(scope="module")
def random_encoder():
    model = RWKV7.random(SHAPES["tiny"], seed=0)
    return RWKVEncoder(model, ByteTokenizer(), name="random-rwkv7:tiny", revision="seed=0")


@pytest.mark.parametrize("backend", ["auto", "chunked", "cpu", "naive"])
def test_tiny_checkpoint_reproduces_expected_logits(tiny, tiny_assets, backend):
    expected = np.fromfile(tiny_assets / "expected-logits-7v0-834K.bin", dtype="<f4")
    enc = load_rwkv(tiny, wkv_backend=backend)
    with torch.no_grad():
        _, logits = enc.model(torch.tensor([TOKENS]), return_logits=True)
    assert expected.shape == (256,)
    diff = np.abs(logits[0, -1].numpy() - expected).max()
    assert diff < 1e-4, f"max abs diff {diff:.3g} vs expected logits (limit 1e-4)"
    prov = enc.provenance()
    assert prov["arch"] == "rwkv7" and prov["wkv_backend"] == {"auto": "cpu"}.get(backend, backend)  # what ran
    assert prov["config"]["n_layer"] == 12 and prov["config"]["n_embd"] == 64


@pytest.mark.xfail(raises=KeyError, strict=True,
                   reason="save_hf writes an RWKV-6 config (RWKV6Config); published RWKV-7 HF models use fla's "
                          "layout (model.layers.N.attn.*), which checkpoint.py does not map yet")
def test_roundtrip_hf_layout_loads_identically(tiny, tmp_path):
    save_hf(read_pth(tiny), tmp_path)


@pytest.mark.parametrize("which", ["tiny_encoder", "random_encoder"])
def test_pooled_vector_alone_equals_in_padded_batch(which, request):
    enc = request.getfixturevalue(which)
    layers = ["emb", 0, 1]
    batch = enc.encode(SENTENCES, layers=layers, poolings=["mean", "max", "last"], batch_size=len(SENTENCES))
    for i, sentence in enumerate(SENTENCES):
        alone = enc.encode([sentence], layers=layers, poolings=["mean", "max", "last"], batch_size=1)
        for key in batch.vectors:
            diff = np.abs(batch[key][i] - alone[key][0]).max()
            assert diff <= 1e-5, f"{sentence!r} {key}: max abs diff {diff:.3g} alone vs in a padded batch"
    assert not batch[(1, "mean")][1].any()  # the empty sentence pools to zeros


def test_stopping_at_layer_k_gives_the_full_pass_states(tiny_encoder):
    model = tiny_encoder.model
    idx = torch.tensor([list(b"stop early, same states"), list(b"second row of the same len")[:23]])
    full = dict(model.states(idx))
    calls = []
    hooks = [b.register_forward_hook(lambda m, i, o, n=n: calls.append(n)) for n, b in enumerate(model.blocks)]
    try:
        partial = dict(tiny_encoder.states(idx, torch.ones_like(idx, dtype=torch.bool), ("emb", 4, 2)))
    finally:
        for h in hooks:
            h.remove()
    assert calls == [0, 1, 2, 3, 4]  # blocks after the deepest requested layer never run
    assert list(partial) == ["emb", 2, 4]
    for layer in ("emb", 2, 4):
        assert torch.equal(partial[layer], full[layer])


def test_layer_numbering(tiny_encoder):
    """'emb' = ln0(embedding); k = residual stream after block k (block 0's values feed
    every later block); logits = head(ln_out(layer L-1))."""
    model = tiny_encoder.model
    idx = torch.tensor([list(b"layer numbering")])
    out, logits = model(idx, layers=("emb", 0, 1, 11), return_logits=True)
    emb = model.blocks[0].ln0(model.emb(idx))
    torch.testing.assert_close(out["emb"], emb, rtol=0, atol=0)
    b0, b1 = model.blocks[0], model.blocks[1]
    dx, v_first = b0.att(b0.ln1(emb), None)
    x = emb + dx
    x = x + b0.ffn(b0.ln2(x))
    torch.testing.assert_close(out[0], x, rtol=0, atol=1e-6)
    dx, _ = b1.att(b1.ln1(x), v_first)
    x = x + dx
    x = x + b1.ffn(b1.ln2(x))
    torch.testing.assert_close(out[1], x, rtol=0, atol=1e-6)
    torch.testing.assert_close(logits, model.head(model.ln_out(out[11])), rtol=0, atol=0)
    assert tiny_encoder.layers() == ("emb", *range(12))
    with pytest.raises(ValueError, match=r"layer 12 out of range .*0\.\.11"):
        list(tiny_encoder.states(idx, torch.ones_like(idx, dtype=torch.bool), (12,)))


def test_value_residual_reaches_later_blocks(tiny_encoder):
    """Block 1 reads block 0's values: feeding it other v_first changes its output."""
    b1 = tiny_encoder.model.blocks[1]
    x = torch.randn(1, 5, 64, generator=torch.Generator().manual_seed(0))
    v = torch.randn(1, 5, 64, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(b1(x, v)[0], b1(x, torch.zeros_like(v))[0])
    assert b1(x, v)[1] is v  # passed on unchanged


# ---------------------------------------------------------------- WKV-7 kernels

# (B, T, H, K, chunk_size, log-decay kind, initial state)
GRID = {
    "T1": (2, 1, 3, 8, 16, "rwkv7", True),
    "T15-odd": (2, 15, 2, 8, 16, "rwkv7", False),
    "T37-not-chunk-multiple": (1, 37, 2, 16, 16, "rwkv7", True),
    "T50-chunk7": (2, 50, 2, 8, 7, "rwkv7", True),
    "T64-chunk1": (1, 64, 1, 8, 1, "rwkv7", True),
    "T500": (1, 500, 2, 8, 16, "rwkv7", True),
    "T40-strong-decay": (1, 40, 2, 8, 16, "logsigmoid", True),
    "T70-K64": (1, 70, 2, 64, 16, "rwkv7", True),
}


def _wkv7_inputs(B, T, H, K, decay, seed=0):
    """RWKV-7-like inputs: a = -kappa_hat, b = kappa_hat * alpha (unit kappa_hat, alpha in (0,1))."""
    g = torch.Generator().manual_seed(seed)
    rn = lambda: torch.randn(B, T, H, K, generator=g)  # noqa: E731
    r, k, v = rn(), rn(), rn()
    w = -np.exp(-0.5) * torch.sigmoid(2 * rn()) if decay == "rwkv7" else F.logsigmoid(4 * rn() - 4)
    kk = F.normalize(rn(), dim=-1)
    return r, k, v, w, -kk, kk * torch.sigmoid(rn()), torch.randn(B, H, K, K, generator=g)


@pytest.mark.parametrize("grid_id", list(GRID), ids=list(GRID))
def test_wkv7_chunked_matches_naive(grid_id):
    B, T, H, K, chunk_size, decay, with_state = GRID[grid_id]
    r, k, v, w, a, b, s0 = _wkv7_inputs(B, T, H, K, decay)
    s0 = s0 if with_state else None
    ref_o, ref_s = wkv7_naive(r, k, v, w, a, b, s0)
    o, s = wkv7_chunked(r, k, v, w, a, b, s0, chunk_size=chunk_size)
    for name, x, ref in (("out", o, ref_o), ("state", s, ref_s)):
        diff = (x - ref).abs().max().item()
        rel_rms = ((x - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()).item()
        assert diff < 1e-4 and rel_rms < 1e-5, f"{grid_id} {name}: max abs diff {diff:.3g}, relative RMS {rel_rms:.3g}"
    assert o.shape == (B, T, H, K) and s.shape == (B, H, K, K) and s.dtype == torch.float32


def test_wkv7_naive_is_the_recurrence_by_hand():
    """One head, two steps, written out: S1 = diag(e^w1) S0 + b1 (a1^T S0) + k1 v1^T, o1 = S1^T r1."""
    *inputs, s0 = _wkv7_inputs(1, 2, 1, 4, "rwkv7")  # (1,2,1,4) each, s0 (1,1,4,4)
    out, final = wkv7_naive(*inputs, s0)
    r, k, v, w, a, b = (x[0, :, 0] for x in inputs)  # (T=2, K=4)
    S = s0[0, 0]
    for t in range(2):
        S = torch.diag(w[t].exp()) @ S + torch.outer(b[t], a[t] @ S) + torch.outer(k[t], v[t])
        torch.testing.assert_close(out[0, t, 0], S.T @ r[t], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(final[0, 0], S, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grid_id", list(GRID), ids=list(GRID))
def test_wkv7_cpu_kernel_matches_naive(grid_id):
    """The compiled kernel, each row from an empty state (head sizes 8, 16, 64 unrolled; 12 the generic loop)."""
    B, T, H, K, _, decay, _ = GRID[grid_id]
    r, k, v, w, a, b, _ = _wkv7_inputs(B, T, H, K, decay)
    ref, _ = wkv7_naive(r, k, v, w, a, b)
    o, s = wkv7(r, k, v, w, a, b, backend="cpu", final_state=False)
    diff = (o - ref).abs().max().item()
    rel_rms = ((o - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()).item()
    assert s is None and diff < 1e-4 and rel_rms < 1e-5, f"{grid_id}: max abs diff {diff:.3g}, relative RMS {rel_rms:.3g}"
    if grid_id == "T37-not-chunk-multiple":  # a head size no case of the kernel unrolls, and strided inputs
        r, k, v, w, a, b, _ = _wkv7_inputs(2, 21, 2, 12, decay)
        t = lambda x: x.transpose(1, 2).contiguous().transpose(1, 2)  # noqa: E731
        o, _ = wkv7(t(r), t(k), t(v), t(w), t(a), t(b), backend="cpu", final_state=False)
        torch.testing.assert_close(o, wkv7_naive(r, k, v, w, a, b)[0], rtol=0, atol=1e-4)


def test_wkv7_cpu_kernel_refuses_states_and_auto_takes_it_only_without():
    r, k, v, w, a, b, s0 = _wkv7_inputs(1, 5, 1, 8, "rwkv7")
    with pytest.raises(ValueError, match="'cpu' WKV-7 backend computes outputs from an empty state"):
        wkv7(r, k, v, w, a, b, s0, backend="cpu", final_state=False)
    with pytest.raises(ValueError, match="'cpu' WKV-7 backend computes outputs from an empty state"):
        wkv7(r, k, v, w, a, b, backend="cpu")
    with pytest.raises(ValueError, match="'cpu' WKV-7 backend computes CPU tensors in float32"):
        wkv7(*(x.double() for x in (r, k, v, w, a, b)), backend="cpu", final_state=False)
    o, s = wkv7(r, k, v, w, a, b, s0)  # "auto" with a state in and out: the chunked form
    ref_o, ref_s = wkv7_chunked(r, k, v, w, a, b, s0)
    assert torch.equal(o, ref_o) and torch.equal(s, ref_s)


def test_model_backends_agree_and_unknown_backend_is_refused():
    cfg = SHAPES["tiny"]
    naive = RWKV7.random(cfg, seed=3, wkv_backend="naive")
    idx = torch.randint(0, 256, (2, 45), generator=torch.Generator().manual_seed(0))
    a = dict(naive.states(idx))
    for backend in ("chunked", "cpu"):
        b = dict(RWKV7.random(cfg, seed=3, wkv_backend=backend).states(idx))
        for layer in a:
            diff = (a[layer] - b[layer]).abs().max().item()
            assert diff < 1e-4, f"layer {layer}: max abs diff {diff:.3g} {backend} vs naive"
    with pytest.raises(ValueError, match="unknown WKV-7 backend 'cuda'; choose from auto, chunked, cpu, naive"):
        RWKV7(cfg, wkv_backend="cuda")
    with pytest.raises(ValueError, match="unknown WKV-7 backend"):
        wkv7(*_wkv7_inputs(1, 2, 1, 8, "rwkv7")[:6], backend="fast")


def test_random_init_is_seeded_finite_and_not_degenerate():
    cfg = RWKV7Config(n_layer=3, n_embd=64, n_head=4, head_size=16, dim_ffn=256, vocab_size=256,
                      dim_decay=8, dim_a=8, dim_v=8, dim_gate=16)
    a, b, c = RWKV7.random(cfg, seed=1), RWKV7.random(cfg, seed=1), RWKV7.random(cfg, seed=2)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.head.weight, c.head.weight)
    assert RWKV7Config.from_state_dict(a.state_dict()) == cfg
    enc = RWKVEncoder(a, ByteTokenizer(), name="random", revision="seed=1")
    assert enc.arch == "rwkv7"
    v = enc.encode(["a cat sits on the mat", "quantum chromodynamics", "a cat sat on a mat"], layers=[2],
                   poolings=["mean"])[(2, "mean")]
    assert np.isfinite(v).all() and v.std() > 0.05
    cos = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))  # noqa: E731
    assert cos(v[0], v[2]) > cos(v[0], v[1]) and cos(v[0], v[1]) < 0.999


def test_missing_tensor_is_named_with_the_file(tiny, tmp_path):
    sd = read_pth(tiny)
    del sd["blocks.3.att.v1"]
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"broken\.pth: tensor 'blocks\.3\.att\.v1' missing"):
        load_rwkv(tmp_path / "broken.pth")


def test_random_rwkv7_from_the_model_spec_is_seeded():
    from rwkv_eval.models.load import load_encoder

    a = load_encoder("random-rwkv7:tiny", seed=3).encode(["same seed"], [1], ["mean"])[(1, "mean")]
    b = load_encoder("random-rwkv7:tiny", seed=3).encode(["same seed"], [1], ["mean"])[(1, "mean")]
    c = load_encoder("random-rwkv7:tiny", seed=4).encode(["same seed"], [1], ["mean"])[(1, "mean")]
    assert (a == b).all() and not (a == c).all()
