"""Prompted embeddings (templates.py): the text transform, its errors, and promptEOL on every
causal model family the suite runs — native RWKV-6 and RWKV-7, and transformers decoders
(RWKV-4, and seeded random GPT-NeoX/Pythia, Llama, Qwen2 and Mamba) — checked against the plain encoder fed the
prompted text as written out by hand in this file, with the template recorded in every record; a prompted
encoder is the same encoder (its tokenizer on the prompted text, its block stepper, early exit)."""

import json

import numpy as np
import pytest
import torch

from rwkv_eval.cli import main
from rwkv_eval.datasets import sample as subsample
from rwkv_eval.datasets import load_sample
from rwkv_eval.evaluation import evaluate
from rwkv_eval.models.random_hf import random_hf_encoder
from rwkv_eval.models.random_init import random_rwkv_encoder
from rwkv_eval.analyses.early_exit import MODE_BATCHED, ExitRule, encode_with_exit
from rwkv_eval.models.glove import glove_tokens
from rwkv_eval.models.load import load_encoder
from rwkv_eval.templates import TEMPLATES, apply_template, resolve_template, with_template

SENTENCES = ["A man is playing a guitar.", "Two {braced} dogs", ""]
PROMPTED = ['This sentence : "A man is playing a guitar." means in one word:"',  # promptEOL, by hand
            'This sentence : "Two {braced} dogs" means in one word:"',
            'This sentence : "" means in one word:"']


def test_promptEOL_is_the_published_template():
    # Jiang et al. 2023 (arXiv 2307.16645): This sentence : "[X]" means in one word:"
    assert apply_template(TEMPLATES["promptEOL"], ["A cat."]) == ['This sentence : "A cat." means in one word:"']


def test_custom_template_substitutes_verbatim_even_with_braces():
    assert resolve_template("Q: {sentence} {x}") == ("custom", "Q: {sentence} {x}")
    assert apply_template("Q: {sentence} {x}", SENTENCES) == [
        "Q: A man is playing a guitar. {x}", "Q: Two {braced} dogs {x}", "Q:  {x}"]
    assert resolve_template(None) == (None, None)


@pytest.mark.parametrize("spec,found", [("promptEOl", 0), ("{sentence} and {sentence}", 2), ("X means", 0)])
def test_a_template_without_exactly_one_placeholder_is_a_clear_error(spec, found):
    with pytest.raises(ValueError, match=rf"exactly one {{sentence}} placeholder \(found {found}\)"):
        resolve_template(spec)


# every causal architecture of the comparison (compare.MODEL_PAIRS): native RWKV-6/7 and, through
# transformers, seeded random GPT-NeoX (Pythia), Llama, Qwen2 and Mamba of tiny shapes
CAUSAL = {
    "rwkv6": lambda: random_rwkv_encoder("tiny", seed=0),
    "rwkv7": lambda: random_rwkv_encoder("tiny", seed=0, arch="rwkv7"),
    **{arch: (lambda arch=arch: random_hf_encoder(f"tiny-{arch}", seed=0))
       for arch in ("gptneox", "llama", "qwen2", "mamba")},
}


@pytest.mark.parametrize("family", sorted(CAUSAL))
def test_promptEOL_last_token_equals_the_plain_encoder_on_prompted_text(family):
    enc = CAUSAL[family]()
    prompted = with_template(enc, "promptEOL")
    layers = [enc.layers()[-2]]
    got = prompted.encode(SENTENCES, layers, ["last"])
    ref = enc.encode(PROMPTED, layers, ["last"])
    plain = enc.encode(SENTENCES, layers, ["last"])
    key = (layers[0], "last")
    np.testing.assert_array_equal(got[key], ref[key])
    assert not np.allclose(got[key][:2], plain[key][:2])  # the template did change the input
    assert got.n_empty == 0  # an empty sentence still has the prompt's tokens


def test_rwkv4_through_transformers_runs_promptEOL(shared_data, tmp_path):
    from test_hf import blinkdl_rwkv4_to_hf, byte_tokens
    from transformers import RwkvForCausalLM

    from rwkv_eval.models.hf import load_hf

    sd = torch.load(shared_data / "rwkv-tiny" / "tiny-rwkv-4v0-660K.pth", map_location="cpu", weights_only=True)
    config, hf_sd = blinkdl_rwkv4_to_hf(sd)
    model = RwkvForCausalLM(config)
    model.load_state_dict(hf_sd, strict=True)
    model.save_pretrained(tmp_path)
    enc = with_template(load_hf(str(tmp_path), tokenizer=byte_tokens), "promptEOL")
    recs = evaluate(enc, subsample(load_sample(), 12), [3], ["last"])  # transformers' RWKV-4 CPU path is slow
    assert recs[0]["template"] == "promptEOL" and recs[0]["spearman"] is not None
    assert recs[0]["n_tokens"] > recs[0]["n_sentences"] * len(TEMPLATES["promptEOL"])  # the prompt was tokenized


def test_every_record_says_whether_it_was_prompted():
    enc = random_rwkv_encoder("tiny", seed=0)
    pairs = subsample(load_sample(), 20)
    plain = evaluate(enc, pairs, [1], ["last"])[0]
    prompted = with_template(enc, "promptEOL")
    eol = evaluate(prompted, pairs, [1], ["last"])[0]
    assert plain["template"] is None and plain["template_text"] is None
    assert eol["template"] == "promptEOL" and eol["template_text"] == TEMPLATES["promptEOL"]
    assert eol["spearman"] != plain["spearman"]
    again = evaluate(with_template(prompted, None), pairs, [1], ["last"])[0]  # a template is replaced, not stacked
    assert again["template"] is None and again["spearman"] == plain["spearman"]


@pytest.fixture(scope="module")
def trained(tiny_assets):
    """The vendored tiny trained RWKV-6 and the real GloVe 6B 50d vectors."""
    return {"rwkv6": load_encoder(str(tiny_assets / "tiny-rwkv-6v0-1m.pth")), "glove": load_encoder("glove-6b-50d")}


@pytest.mark.parametrize("kind,layer,pooling", [("rwkv6", 5, "last"), ("glove", 0, "mean")])
def test_prompted_vectors_equal_the_plain_vectors_of_the_prompt_written_out(trained, kind, layer, pooling):
    enc = trained[kind]
    got = with_template(enc, "promptEOL").encode(SENTENCES, [layer], [pooling])[(layer, pooling)]
    np.testing.assert_array_equal(got, enc.encode(PROMPTED, [layer], [pooling])[(layer, pooling)])
    assert not np.allclose(got, enc.encode(SENTENCES, [layer], [pooling])[(layer, pooling)])


def test_tokenize_of_a_prompted_encoder_is_the_tokenizer_on_the_prompt_written_out(trained):
    rwkv, glove = with_template(trained["rwkv6"], "promptEOL"), with_template(trained["glove"], "promptEOL")
    assert rwkv.tokenize(SENTENCES) == trained["rwkv6"].tokenizer.encode_batch(PROMPTED)
    index = trained["glove"].kv.key_to_index
    assert glove.tokenize(SENTENCES[:1]) == [[index[w] for w in glove_tokens(PROMPTED[0]) if w in index]]
    assert glove.tokenize(SENTENCES[:1])[0][:2] == [index["this"], index["sentence"]]


def test_a_prompted_native_encoder_still_exits_early(trained):
    plain = trained["rwkv6"]
    prompted = with_template(plain, "promptEOL")
    assert prompted.block_stepper() is not None
    rule = ExitRule("saturation", 0.96, 2)  # every prompted sentence leaves before block 11 of 0..11
    got = encode_with_exit(prompted, prompted.tokenize(SENTENCES), "mean", rule, batch_size=2)
    ref = encode_with_exit(plain, plain.tokenize(PROMPTED), "mean", rule, batch_size=2)
    assert got.mode == MODE_BATCHED and got.exit_layer.max() < 11
    np.testing.assert_array_equal(got.exit_layer, ref.exit_layer)
    np.testing.assert_array_equal(got.vectors, ref.vectors)


def test_cli_evaluate_and_embed_take_a_template(capsys, tmp_path):
    # GloVe: the CLI path is the same for every model, and GloVe scores 300 pairs in a second
    assert main(["evaluate", "--dataset", "stsb-sample", "--template", "promptEOL", "--json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["template"] == "promptEOL"
    (tmp_path / "s.txt").write_text("a cat\nhi\n")
    out = tmp_path / "e.npz"
    assert main(["embed", "--model", "random-rwkv6:tiny", "--layers", "1", "--pooling", "last", "--template",
                 "Say {sentence} in one word:", "--input", str(tmp_path / "s.txt"), "--output", str(out)]) == 0
    meta = json.loads((tmp_path / "e.provenance.json").read_text())
    assert meta["template"] == "custom" and meta["template_text"] == "Say {sentence} in one word:"
    assert meta["config"]["template"] == "Say {sentence} in one word:"


def test_cli_bad_template_fails_before_loading_a_model(capsys):
    assert main(["evaluate", "--dataset", "stsb-sample", "--template", "no placeholder"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rwkv-eval: error: template 'no placeholder'") and err.count("\n") == 1
