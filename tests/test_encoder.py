"""The Encoder interface (encoder.py): every encoder type, plain and prompted, has every
declared member, and the block-by-block stepper of RWKV-6/7 is the one-pass model."""

import inspect

import numpy as np
import pytest
import torch

from rwkv_eval.encoder import BlockStepper, Encoder
from rwkv_eval.models.load import load_encoder
from rwkv_eval.templates import TEMPLATES, with_template

SENTENCES = ["A man is playing a guitar.", "x", "", "the quick brown fox jumps over the lazy dog, twice over"]
MEMBERS = ("name", "revision", "device", "dtype", "max_length", "template", "template_text", "layers", "tokenize",
           "encode", "encode_tokens", "batches", "block_stepper", "provenance")
STEPS = ("rwkv6", "rwkv7")


def _hf(tmp_path_factory):
    from test_hf import char_tokens, random_model

    from rwkv_eval.models.hf import load_hf

    path = tmp_path_factory.mktemp("gpt2")
    random_model("gpt2").save_pretrained(path)
    return load_hf(str(path), tokenizer=char_tokens)


@pytest.fixture(scope="module")
def encoders(tiny_assets, tmp_path_factory):
    return {"glove": load_encoder("glove-6b-50d"),
            "rwkv6": load_encoder(str(tiny_assets / "tiny-rwkv-6v0-1m.pth")),
            "rwkv7": load_encoder(str(tiny_assets / "tiny-rwkv-7v0-834K.pth")),
            "hf": _hf(tmp_path_factory)}


def test_the_protocol_declares_what_callers_use():
    declared = set(Encoder.__annotations__) | {n for n, _ in inspect.getmembers(Encoder, inspect.isfunction)}
    assert set(MEMBERS) <= declared


@pytest.mark.parametrize("template", [None, "promptEOL"])
@pytest.mark.parametrize("kind", ["glove", "rwkv6", "rwkv7", "hf"])
def test_every_encoder_plain_and_prompted_is_an_encoder_with_every_member(encoders, kind, template):
    enc = with_template(encoders[kind], template)
    assert isinstance(enc, Encoder)
    for member in MEMBERS:
        assert hasattr(enc, member), member
    assert isinstance(enc.device, torch.device) and isinstance(enc.dtype, torch.dtype)
    assert isinstance(enc.max_length, int) and enc.max_length > 0
    stepper = enc.block_stepper()
    if kind in STEPS:
        assert isinstance(stepper, BlockStepper) and stepper.n_blocks == len(enc.layers()) - 1
    else:
        assert stepper is None  # GloVe and transformers cannot run block by block
    prov = enc.provenance()
    assert (prov["template"], prov["template_text"]) == ((None, None) if template is None else
                                                         ("promptEOL", TEMPLATES["promptEOL"]))
    idx, ids, mask = next(enc.batches(enc.tokenize(SENTENCES), 2))
    assert ids.device == enc.device and ids.shape == mask.shape == (2, int(mask.sum(1).max()))


def test_a_template_is_a_copy_sharing_the_weights(encoders):
    plain = encoders["rwkv6"]
    prompted = with_template(plain, "promptEOL")
    assert type(prompted) is type(plain) and prompted.model is plain.model
    assert plain.template is None and with_template(prompted, None).template is None
    with pytest.raises(TypeError, match="takes an Encoder"):
        with_template(object(), "promptEOL")


@pytest.mark.parametrize("kind", STEPS)
def test_the_stepper_reproduces_the_one_pass_states_per_layer(encoders, kind):
    """Block by block (the stepper) vs the states `encode_tokens` keeps from `RWKV*.states` in one pass."""
    enc = encoders[kind]
    tok = enc.tokenize(SENTENCES)
    ref = enc.encode_tokens(tok, list(enc.layers()), ["mean"], batch_size=len(tok), keep_states=True).states
    stepper = enc.block_stepper()
    idx, ids, mask = next(enc.batches(tok, len(tok)))
    with torch.inference_mode():
        x, carry = stepper.embed(ids), None
        got = {"emb": x}
        for i in range(stepper.n_blocks):
            x, carry = stepper.block(i, x, carry)
            got[i] = x
    for layer, h in got.items():
        for row, i in enumerate(idx):
            n = int(mask[row].sum())
            np.testing.assert_allclose(h[row, :n].numpy(), ref[layer][i], rtol=1e-5, atol=1e-5,
                                       err_msg=f"{kind} layer {layer} sentence {i}")


def test_batches_keep_a_caller_order(encoders):
    enc = encoders["rwkv6"]
    tok = enc.tokenize(SENTENCES)
    order = [2, 3, 0, 1]
    got = [i for idx, _, _ in enc.batches(tok, 2, order=order) for i in idx]
    assert got == order
    assert [i for idx, _, _ in enc.batches(tok, 2) for i in idx] == [3, 0, 1, 2]  # default: longest first
    with pytest.raises(ValueError, match="permutation of the 4 row indices"):
        next(enc.batches(tok, 2, order=[0, 0, 1, 2]))


def test_later_batches_fill_the_first_batchs_padded_tokens(encoders):
    """batch_size sentences in the first (longest) batch; its rows x length is the budget every
    later batch keeps to, with as many shorter sentences as fit; a caller's order keeps batch_size."""
    enc = encoders["rwkv6"]
    tok = [[1] * 10, [1] * 9] + [[1] * 3] * 13 + [[]] * 4
    sizes = [tuple(ids.shape) for _, ids, _ in enc.batches(tok, 2)]
    assert sizes == [(2, 10), (6, 3), (6, 3), (5, 3)]  # budget 2 x 10 = 20 tokens; the empty ones join the last
    assert sorted(i for idx, _, _ in enc.batches(tok, 2) for i in idx) == list(range(len(tok)))
    assert [tuple(ids.shape)[0] for _, ids, _ in enc.batches(tok, 2, order=list(range(len(tok))))] == [2] * 9 + [1]


def test_the_progress_bar_goes_to_stderr_once_an_encoding_runs_long(encoders, capfd):
    """One bar for every encoding (encode_tokens): on stderr only, so --json on stdout stays clean;
    shown when asked (or on a terminal) and only after progress_delay_s, so short encodings stay quiet."""
    import copy

    enc = copy.copy(encoders["glove"])
    enc.show_progress, enc.progress_delay_s = True, 0.0
    enc.encode(SENTENCES, [0], ["mean"])
    out, err = capfd.readouterr()
    assert out == "" and "encode glove-6b-50d" in err and "/4 [" in err
    enc.progress_delay_s = 60.0  # a short encoding under the default delay shows nothing
    enc.encode(SENTENCES, [0], ["mean"])
    assert capfd.readouterr() == ("", "")
    enc.show_progress, enc.progress_delay_s = None, 0.0  # default: stderr is no terminal here
    enc.encode(SENTENCES, [0], ["mean"])
    assert capfd.readouterr() == ("", "")
