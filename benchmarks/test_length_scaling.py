"""Cost per pair vs sentence length, linear vs softmax attention, measured in one run.

RWKV-6 (a recurrence: O(T) time, a fixed-size state) against a softmax-attention decoder
of matched shape (GPT-NeoX, Pythia's architecture: O(T^2) attention scores), both built
with seeded random weights — cost does not depend on training — and fed the same random
token ids, 16 ... 512 tokens per sentence. Each case encodes N_SENTENCES sentences of
exactly T tokens up to the last block with mean pooling (the suite's encode path) and
records seconds per pair, tokens/s and peak memory; the report draws both curves.

Shapes (`--length-shapes`):
    small (default)  4 blocks x 256, vocabulary 1024: minutes on 2 CPU cores; the
                     trend, not production numbers
    real             12 blocks x 768 with the real vocabularies: RWKV-6 at the shape of
                     RWKV-4-169m / Finch "small" (head 64, FFN 2688) vs Pythia-160m
                     (12 heads, FFN 3072, vocab 50304) — run it on a GPU:
                     pytest benchmarks/test_length_scaling.py --length-shapes real --device cuda
"""

from __future__ import annotations

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXModel

from rwkv_eval.models.hf import HFEncoder
from rwkv_eval.models.rwkv import RWKVEncoder
from rwkv_eval.models.rwkv6 import RWKV6, SHAPES, RWKV6Config
from rwkv_eval.models.tokenizers import ByteTokenizer

LENGTHS = (16, 64, 256, 512)
N_SENTENCES = 2  # one pair per timed call: the smoke budget on 2 CPU cores
SEED = 0

RWKV_SHAPES = {
    "small": RWKV6Config(n_layer=4, n_embd=256, n_head=4, head_size=64, dim_ffn=896, vocab_size=1024),
    "real": SHAPES["small"],
}
NEOX_SHAPES = {  # matched to the RWKV shape of the same name: blocks, width, vocabulary
    "small": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024,
                  vocab_size=1024),
    "real": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                 vocab_size=50304),  # EleutherAI/pythia-160m
}


def rwkv6_encoder(shape: str, device: str, dtype: torch.dtype) -> RWKVEncoder:
    model = RWKV6.random(RWKV_SHAPES[shape], seed=SEED).to(device=device, dtype=dtype)
    return RWKVEncoder(model, ByteTokenizer(), name=f"random-rwkv6:length-{shape}", revision=f"random-init seed={SEED}",
                       max_length=max(LENGTHS))


def gptneox_encoder(shape: str, device: str, dtype: torch.dtype) -> HFEncoder:
    torch.manual_seed(SEED)
    cfg = GPTNeoXConfig(max_position_embeddings=2048, **NEOX_SHAPES[shape])
    model = GPTNeoXModel(cfg).eval().requires_grad_(False).to(device=device, dtype=dtype)
    return HFEncoder(model, lambda s: [], name=f"random-gptneox:length-{shape}", revision=f"random-init seed={SEED}",
                     device=torch.device(device), dtype=dtype, max_length=max(LENGTHS), tokenizer_name="none")


FAMILIES = {"rwkv6": ("linear", rwkv6_encoder), "gptneox": ("softmax", gptneox_encoder)}


@pytest.fixture(scope="module")
def encoders(run, pytestconfig):
    shape = pytestconfig.getoption("--length-shapes")
    if shape not in RWKV_SHAPES:
        raise pytest.UsageError(f"--length-shapes must be one of {', '.join(RWKV_SHAPES)}; got {shape!r}")
    dtype = getattr(torch, run.dtype)
    return shape, {name: build(shape, run.device, dtype) for name, (_, build) in FAMILIES.items()}


@pytest.mark.parametrize("length", LENGTHS, ids=lambda t: f"T{t:03d}")
@pytest.mark.parametrize("family", list(FAMILIES))
def test_cost_vs_length(benchmark, run, timed, peak_memory, encoders, family, length):
    shape, encs = encoders
    enc = encs[family]
    vocab = NEOX_SHAPES[shape]["vocab_size"] if family == "gptneox" else RWKV_SHAPES[shape].vocab_size
    gen = torch.Generator().manual_seed(SEED + length)  # the same ids for both families
    token_ids = torch.randint(0, min(vocab, RWKV_SHAPES[shape].vocab_size, NEOX_SHAPES[shape]["vocab_size"]),
                              (N_SENTENCES, length), generator=gen).tolist()
    last = max(la for la in enc.layers() if isinstance(la, int))

    def work():
        return enc.encode_tokens(token_ids, [last], ["mean"], batch_size=N_SENTENCES)

    memory = peak_memory(work, enc)  # also the warm-up
    seconds = timed(work, min_rounds=1, min_time=0.0, warmup_rounds=0)
    params = sum(p.numel() for p in enc.model.parameters())
    benchmark.extra_info.update({
        "analysis": "length-scaling", "family": family, "attention": FAMILIES[family][0], "shape": shape,
        "model": enc.name, "seq_len": length, "n_sentences": N_SENTENCES, "n_tokens": N_SENTENCES * length,
        "layers_run": last + 1, "params": params,
        "seconds": seconds, "seconds_per_pair": seconds / (N_SENTENCES / 2),
        "tokens_per_second": N_SENTENCES * length / seconds, "device": run.device, "dtype": run.dtype,
        "attn_implementation": getattr(enc.model.config, "_attn_implementation", None),
        "trained": False} | memory)
