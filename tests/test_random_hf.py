"""Seeded random-init transformers models (models/random_hf.py) through `random-hf:NAME`.

The small and tiny shapes are built and run; the real shapes (up to 1.5B parameters) are
only configured and checked against published parameter counts on the meta device,
which allocates no memory.
"""

from itertools import pairwise

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM

from rwkv_eval.models.hf import BLOCK_FIRST, EMBEDDING_FIRST, FINAL
from rwkv_eval.models.load import load_encoder
from rwkv_eval.models.random_hf import SHAPES, random_hf_config

BUILT = [s for s in SHAPES if s.startswith(("tiny-", "small-"))]
# Total parameters of each published model, with its language-model head (tied heads count
# once; BERT: the base model with pooler), from a source other than its config.json:
PUBLISHED_PARAMS = {
    "pythia-160m": 162_322_944,  # Pythia README / Biderman et al. 2023, table 1
    "pythia-1.4b": 1_414_647_808,  # same table
    "qwen2.5-1.5b": 1.54e9,  # Qwen/Qwen2.5-1.5B model card: "Number of Parameters: 1.54B"
    "llama-3.2-1b": 1.23e9,  # meta-llama/Llama-3.2-1B model card: 1.23B
    "mamba-1.4b": 1.37e9,  # state-spaces/mamba-1.4b: pytorch_model.bin 5.49 GB in fp32
    "bert-base-uncased": 110e6,  # Devlin et al. 2019: BERT-base, 110M
}
# (blocks, width, attention heads, key/value heads) in each hub model's config.json
PUBLISHED_SHAPE = {
    "pythia-160m": (12, 768, 12, 12), "pythia-1.4b": (24, 2048, 16, 16), "qwen2.5-1.5b": (28, 1536, 12, 2),
    "llama-3.2-1b": (16, 2048, 32, 8), "mamba-1.4b": (48, 2048, None, None), "bert-base-uncased": (12, 768, 12, 12),
}


def test_every_real_shape_is_listed_with_its_published_values():
    real = [s for s in SHAPES if s not in BUILT]
    assert sorted(real) == sorted(PUBLISHED_PARAMS) == sorted(PUBLISHED_SHAPE)


@pytest.mark.parametrize("shape", list(PUBLISHED_PARAMS))
def test_real_shape_matches_the_published_model_without_allocating_it(shape):
    config = random_hf_config(shape)
    heads = getattr(config, "num_attention_heads", None)
    kv = getattr(config, "num_key_value_heads", heads)
    assert (config.num_hidden_layers, config.hidden_size, heads, kv) == PUBLISHED_SHAPE[shape]
    assert config.vocab_size >= 256  # the byte tokenizer's ids fit
    with torch.device("meta"):  # parameters without storage
        model = (AutoModel if config.model_type == "bert" else AutoModelForCausalLM).from_config(config)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n / PUBLISHED_PARAMS[shape] - 1) < 0.02, (shape, n)


@pytest.fixture(scope="module")
def encoders():
    return {s: load_encoder(f"random-hf:{s}") for s in BUILT}


@pytest.mark.parametrize("shape", BUILT)
def test_each_shape_loads_with_its_blocks_and_layout(encoders, shape):
    enc = encoders[shape]
    config = random_hf_config(shape)
    L = SHAPES[shape].fields["num_hidden_layers"]
    assert enc.n_layers == config.num_hidden_layers == L
    assert enc.layers() == ("emb", *range(L), FINAL)
    p = enc.provenance()
    assert p["model"] == f"random-hf:{shape}" and p["revision"] == "random-init seed=0" and p["tokenizer"] == "byte"
    assert p["hidden_states_layout"] == (BLOCK_FIRST if config.model_type == "mamba" else EMBEDDING_FIRST)
    ids = torch.tensor([enc.tokenize(["state space"])[0]])
    with torch.no_grad():
        assert len(enc.model(ids, output_hidden_states=True).hidden_states) == L + 1
    e = enc.encode(["A cat sat.", "state space"], layers="all", poolings=["mean"])
    vectors = [e[(la, "mean")] for la in enc.layers()]
    assert all(np.isfinite(v).all() and v.shape == (2, config.hidden_size) for v in vectors)
    assert all(np.abs(a - b).max() > 1e-4 for a, b in pairwise(vectors[:-1]))  # emb, 0, ..., L-1 differ


@pytest.mark.parametrize("shape", ["tiny-llama", "tiny-mamba"])
def test_the_seed_fixes_the_weights_and_leaves_the_global_rng_alone(encoders, shape):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = load_encoder(f"random-hf:{shape}", seed=0)
    assert torch.equal(torch.rand(3), expected)  # the build forked the RNG
    other = load_encoder(f"random-hf:{shape}", seed=1)
    sha = encoders[shape].provenance()["sha256"]
    assert len(sha) == 64 and again.provenance()["sha256"] == sha
    assert other.provenance()["sha256"] != sha and other.provenance()["revision"] == "random-init seed=1"
    first = encoders[shape].model.state_dict()
    assert all(torch.equal(t, first[n]) for n, t in again.model.state_dict().items())


@pytest.mark.parametrize("spec,kwargs,message", [
    ("random-hf:gpt-5", {}, r"unknown random-hf shape 'gpt-5'; choose from pythia-160m, "),
    ("random-hf", {}, r"random-hf needs a shape: random-hf:NAME with NAME one of pythia-160m, "),
    ("random-hf:tiny-bert", {"tokenizer": "bert-base-uncased"}, r"tokenizer does not apply to a random-init model"),
])
def test_bad_random_hf_specs_are_clear_errors(spec, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_encoder(spec, **kwargs)
