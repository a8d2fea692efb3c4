"""Native RWKV-6: oracle logits, checkpoint formats and errors, layer numbering, padding.

The oracle is the tiny trained checkpoint shipped in rwkv_eval/data/tiny-rwkv (RWKV/rwkv.cpp test
suite, commit edea0c2): tokens 34, 105, 110 from an empty state give
expected-logits-6v0-1m.bin. Other tests use seeded random-init models built here.
"""

import shutil

import numpy as np
import pytest
import torch

from rwkv_eval.models.checkpoint import load_checkpoint, read_pth, save_hf
from rwkv_eval.models.rwkv import RWKVEncoder, load_rwkv
from rwkv_eval.models.rwkv6 import RWKV6, SHAPES, RWKV6Config
from rwkv_eval.models.tokenizers import ByteTokenizer

TOKENS = [34, 105, 110]  # the bytes of '"in'
SENTENCES = ["A man is playing a guitar.", "", "x", "Two dogs run through a snowy field, chasing a red ball.",
             "Ünïcödé 日本語 👍", "A woman slices an onion on a wooden board in her kitchen at night."]


@pytest.fixture(scope="module")
def tiny(tiny_assets):
    return tiny_assets / "tiny-rwkv-6v0-1m.pth"


@pytest.fixture(scope="module")
def tiny_encoder(tiny):
    return load_rwkv(tiny)


@pytest.fixture(scope="module")
def random_encoder():
    model = RWKV6.random(SHAPES["tiny"], seed=0)
    return RWKVEncoder(model, ByteTokenizer(), name="random-rwkv6:tiny", revision="seed=0")


@pytest.mark.parametrize("backend", ["auto", "chunked", "cpu", "naive"])
def test_tiny_checkpoint_reproduces_expected_logits(tiny, tiny_assets, backend):
    expected = np.fromfile(tiny_assets / "expected-logits-6v0-1m.bin", dtype="<f4")
    enc = load_rwkv(tiny, wkv_backend=backend)
    with torch.no_grad():
        _, logits = enc.model(torch.tensor([TOKENS]), return_logits=True)
    assert expected.shape == (256,)
    diff = np.abs(logits[0, -1].numpy() - expected).max()
    assert diff < 1e-4, f"max abs diff {diff:.3g} vs expected logits (limit 1e-4)"
    assert enc.provenance()["wkv_backend"] == {"auto": "cpu"}.get(backend, backend)  # the backend that ran


@pytest.mark.parametrize("safetensors,shards", [(True, 1), (False, 1), (True, 2), (False, 3)],
                         ids=["safetensors", "bin", "safetensors-2-shards", "bin-3-shards"])
def test_roundtrip_hf_layout_loads_identically(tiny, tiny_encoder, tmp_path, safetensors, shards):
    files = save_hf(read_pth(tiny), tmp_path, safetensors=safetensors, shards=shards)
    enc = load_rwkv(str(tmp_path))
    assert enc.tokenizer.name == "byte" and len(files) == shards
    for key, value in tiny_encoder.model.state_dict().items():
        assert torch.equal(enc.model.state_dict()[key], value), key
    a = tiny_encoder.encode(SENTENCES, layers=["emb", 3, 11], poolings=["mean"])
    b = enc.encode(SENTENCES, layers=["emb", 3, 11], poolings=["mean"])
    for key in a.vectors:
        assert np.array_equal(a[key], b[key]), key
    assert enc.revision == load_checkpoint(str(tmp_path)).sha256 != tiny_encoder.revision


def test_safetensors_preferred_over_bin(tiny, tmp_path):
    save_hf(read_pth(tiny), tmp_path, safetensors=False)
    save_hf(read_pth(tiny), tmp_path, safetensors=True)
    assert [p.name for p in load_checkpoint(str(tmp_path)).files] == ["model.safetensors"]


@pytest.mark.parametrize("which", ["tiny_encoder", "random_encoder"])
def test_pooled_vector_alone_equals_in_padded_batch(which, request):
    enc = request.getfixturevalue(which)
    batch = enc.encode(SENTENCES, layers=["emb", 0, 1], poolings=["mean", "max", "last"], batch_size=len(SENTENCES))
    for i, sentence in enumerate(SENTENCES):
        alone = enc.encode([sentence], layers=["emb", 0, 1], poolings=["mean", "max", "last"], batch_size=1)
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
    assert list(partial) == ["emb", 2, 4]  # shallowest first, whatever the request order
    for layer in ("emb", 2, 4):
        assert torch.equal(partial[layer], full[layer])


def test_layer_numbering(tiny_encoder):
    """'emb' = ln0(embedding); k = residual stream after block k; logits = head(ln_out(layer L-1))."""
    model = tiny_encoder.model
    idx = torch.tensor([TOKENS])
    out, logits = model(idx, layers=("emb", 0, 11), return_logits=True)
    emb = model.blocks[0].ln0(model.emb(idx))
    torch.testing.assert_close(out["emb"], emb, rtol=0, atol=0)
    block0 = model.blocks[0]
    x = emb + block0.att(block0.ln1(emb))
    x = x + block0.ffn(block0.ln2(x))
    torch.testing.assert_close(out[0], x, rtol=0, atol=1e-6)
    torch.testing.assert_close(logits, model.head(model.ln_out(out[11])), rtol=0, atol=0)
    assert tiny_encoder.layers() == ("emb", *range(12))
    with pytest.raises(ValueError, match=r"layer 12 out of range .*0\.\.11"):
        list(tiny_encoder.states(idx, torch.ones_like(idx, dtype=torch.bool), (12,)))


def test_random_init_is_seeded_finite_and_not_degenerate():
    cfg = RWKV6Config(n_layer=3, n_embd=64, n_head=4, head_size=16, dim_ffn=224, vocab_size=256, dim_mix=8, dim_decay=16)
    a, b, c = RWKV6.random(cfg, seed=1), RWKV6.random(cfg, seed=1), RWKV6.random(cfg, seed=2)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.head.weight, c.head.weight)
    enc = RWKVEncoder(a, ByteTokenizer(), name="random", revision="seed=1")
    e = enc.encode(["a cat sits on the mat", "quantum chromodynamics", "a cat sat on a mat"], layers=[0, 2],
                   poolings=["mean"])
    v = e[(2, "mean")]
    assert np.isfinite(v).all() and v.std() > 0.05
    cos = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))  # noqa: E731
    assert cos(v[0], v[2]) > cos(v[0], v[1]) and cos(v[0], v[1]) < 0.999


# ---------------------------------------------------------------- bad files


def test_truncated_file_is_a_clear_error(tiny, tmp_path):
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(tiny.read_bytes()[: tiny.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"truncated\.pth: not a readable PyTorch checkpoint.*truncated or corrupted"):
        load_rwkv(bad)


def test_corrupted_header_is_a_clear_error(tiny, tmp_path):
    data = bytearray(tiny.read_bytes())
    data[:64] = b"\x00" * 64
    bad = tmp_path / "corrupted.pth"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"corrupted\.pth: not a readable PyTorch checkpoint"):
        load_rwkv(bad)


@pytest.mark.parametrize("edit,message", [
    ("drop", r"broken\.pth: tensor 'blocks\.3\.att\.key\.weight' missing"),
    ("reshape", r"broken\.pth: tensor 'blocks\.3\.att\.key\.weight' has shape \(64, 32\), expected \(64, 64\)"),
    ("nan", r"broken\.pth: tensor 'blocks\.3\.att\.key\.weight' holds NaN"),
    ("extra", r"broken\.pth: unexpected tensor 'blocks\.3\.att\.extra'"),
])
def test_bad_tensor_is_named_with_the_file(tiny, tmp_path, edit, message):
    sd = read_pth(tiny)
    key = "blocks.3.att.key.weight"
    if edit == "drop":
        del sd[key]
    elif edit == "reshape":
        sd[key] = sd[key][:, :32].clone()
    elif edit == "nan":
        sd[key] = sd[key].clone()
        sd[key][5, 5] = float("nan")
    else:
        sd["blocks.3.att.extra"] = torch.zeros(3)
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=message):
        load_rwkv(tmp_path / "broken.pth")


class NotATensor:
    pass


def test_pickle_with_non_tensor_objects_is_refused(tiny, tmp_path):
    sd = read_pth(tiny)
    torch.save({**sd, "payload": NotATensor()}, tmp_path / "object.pth")
    with pytest.raises(ValueError, match=r"object\.pth: refused for safety, not loaded: it asks to import"):
        load_rwkv(tmp_path / "object.pth")
    torch.save({**sd, "_version": "0.8"}, tmp_path / "meta.pth")
    with pytest.raises(ValueError, match=r"meta\.pth: entry '_version' is a str, not a tensor"):
        load_rwkv(tmp_path / "meta.pth")


@pytest.mark.parametrize("name,arch", [("tiny-rwkv-7v0-834K.pth", "rwkv7"), ("tiny-rwkv-4v0-660K.pth", "rwkv4")])
def test_other_architectures_are_detected_and_refused(tiny_assets, request, name, arch):
    if arch == "rwkv7":  # RWKV-7 now loads natively (models/rwkv7.py, tests/test_rwkv7.py)
        assert load_rwkv(tiny_assets / name).arch == "rwkv7"
        return
    path = request.getfixturevalue("shared_data") / "rwkv-tiny" / name  # RWKV-4 is not vendored
    with pytest.raises(ValueError, match=f"{name}: {arch} checkpoint; the native encoder supports rwkv6"):
        load_rwkv(path)


def test_directory_with_one_pth(tiny, tmp_path):
    shutil.copy(tiny, tmp_path / "model.pth")
    enc = load_rwkv(str(tmp_path))
    assert enc.revision == load_checkpoint(tiny).sha256


def test_unsupported_dtype_is_refused(tiny):
    with pytest.raises(ValueError, match="dtype torch.int8 is not supported; use float32, float16, bfloat16"):
        load_rwkv(tiny, dtype=torch.int8)


@pytest.mark.parametrize("backend", ["chunked", "cpu", "naive"])
def test_tiny_checkpoint_reproduces_expected_logits_packed_behind_another_sentence(tiny, tiny_assets, backend):
    """The oracle's three tokens start mid-row and mid-chunk after 20 other bytes: with `starts`
    there, token shift and WKV state restart empty, and the logits are the oracle's."""
    expected = np.fromfile(tiny_assets / "expected-logits-6v0-1m.bin", dtype="<f4")
    from rwkv_eval.models.rwkv import pack_rows

    enc = load_rwkv(tiny, wkv_backend=backend, chunk_size=8)
    before = list(b"another sentence, 20")
    packing = pack_rows([len(before), len(TOKENS)], T=len(before), chunk=8)
    assert packing.n_rows == 1 and packing.starts.tolist() == [0, len(before)]  # one row, the oracle's at place 20
    idx = torch.tensor([before + TOKENS])  # the flat sequence: places in order
    with torch.no_grad():
        x = dict(enc.model.states(idx, packed=packing.packed("cpu")))[11]
        logits = enc.model.head(enc.model.ln_out(x))
    diff = np.abs(logits[0, -1].numpy() - expected).max()
    assert diff < 1e-4, f"max abs diff {diff:.3g} vs expected logits (limit 1e-4)"
    alone = dict(enc.model.states(torch.tensor([before])))[11]
    torch.testing.assert_close(x[:, :len(before)], alone, rtol=0, atol=1e-5)  # the first sentence is untouched
    with pytest.raises(ValueError, match=r"packed sentences run as one flat \(1, n\) sequence"):
        next(enc.model.states(idx[:, 1:], packed=packing.packed("cpu")))


def test_pack_rows_places_every_token_once_in_fewer_positions():
    from rwkv_eval.models.rwkv import pack_rows

    lengths = [30, 3, 17, 0, 12, 9, 30, 1]
    p = pack_rows(lengths, T=30, chunk=16)
    assert p is not None and p.n_rows * p.row_tokens < len(lengths) * 30 and p.row_tokens % 16 == 0
    assert sorted(p.dst.tolist()) == [i * 30 + t for i, n in enumerate(lengths) for t in range(n)]
    assert len(set(p.src.tolist())) == sum(lengths) and p.src.max() < p.n_rows * p.row_tokens
    row_of = p.src // p.row_tokens
    for i, n in enumerate(lengths):  # each sentence in one row, contiguous, starting at a start
        mine = p.src[(p.dst >= i * 30) & (p.dst < i * 30 + n)]
        if n:
            assert len(set(row_of[np.isin(p.src, mine)].tolist())) == 1 and np.all(np.diff(mine) == 1)
            assert mine[0] in p.starts
    assert len(p.starts) == sum(n > 0 for n in lengths)
    # the model's view: flat order is place order; padding places are a segment of their own
    packed = p.packed("cpu")
    assert np.all(np.diff(p.src) > 0) and packed.tokens.view(p.n_rows, -1)[packed.rows, packed.places].tolist() == list(range(sum(lengths)))
    used = np.bincount(row_of, minlength=p.n_rows)
    assert sorted(p.pads.tolist()) == [r * p.row_tokens + used[r] for r in range(p.n_rows) if used[r] < p.row_tokens]
    assert set(np.flatnonzero(packed.row_starts.view(-1).numpy()).tolist()) == set(p.starts.tolist()) | set(p.pads.tolist())
    assert packed.starts.tolist() == np.searchsorted(p.src, p.starts).tolist()
    assert pack_rows([16, 16, 16], T=16, chunk=16) is None  # no padding: the padded batch as is
    assert pack_rows([16, 16, 15], T=16, chunk=16) is not None  # one padding token fewer to compute
    assert pack_rows([0, 0], T=1, chunk=16) is None  # only empty sentences: nothing to run


@pytest.mark.parametrize("backend", ["cpu", "chunked"])  # the flat sequence; rows of whole chunks
@pytest.mark.parametrize("which", ["tiny", "random"])
def test_packed_batch_gives_the_padded_batch_vectors(which, backend, tiny):
    """Packing changes the work, not the result: every pooled vector of a packed batch equals the
    padded batch's (fp32 summation order only), and the batch really was packed."""
    import copy

    from rwkv_eval.models.rwkv import pack_rows

    if which == "tiny":
        enc = load_rwkv(tiny, wkv_backend=backend)
    else:
        enc = RWKVEncoder(RWKV6.random(SHAPES["tiny"], seed=0, wkv_backend=backend), ByteTokenizer(),
                          name="random-rwkv6:tiny", revision="seed=0")
    assert enc.provenance()["wkv_backend"] == backend
    sentences = SENTENCES * 3 + ["a", "short one", "a much longer sentence than the others, with commas, and more"]
    tokens = enc.tokenize(sentences)
    T = max(map(len, tokens))
    assert pack_rows([len(t) for t in tokens], T, enc.model.chunk_size) is not None
    padded = copy.copy(enc)
    padded.pack = False
    poolings = ["mean", "max", "last", "first_last", "weighted_mean"]
    a = enc.encode_tokens(tokens, enc.layers(), poolings, batch_size=len(sentences), keep_states=True)
    b = padded.encode_tokens(tokens, enc.layers(), poolings, batch_size=len(sentences), keep_states=True)
    for key in b.vectors:
        scale = max(1.0, float(np.abs(b[key]).max()))
        diff = float(np.abs(a[key] - b[key]).max())
        assert diff <= 1e-5 * scale, f"{key}: packed vs padded max abs diff {diff:.3g} (scale {scale:.3g})"
    for layer in b.states:
        for i, (x, y) in enumerate(zip(a.states[layer], b.states[layer])):
            assert x.shape == y.shape and np.allclose(x, y, rtol=0, atol=1e-5 * max(1.0, float(np.abs(y).max(initial=0)))), \
                (layer, i)
    assert enc.provenance()["packed"] and not padded.provenance()["packed"]
