"""Cost per pair vs sentence length, linear vs softmax attention, measured in one run.

RWKV-6 and Mamba (recurrences: O(T) time, a fixed-size state) against softmax-attention
decoders (GPT-NeoX, Pythia's architecture, and Llama, the Llama-3.2 / Qwen2.5 kind with
grouped-query attention: O(T^2) attention scores), all built with seeded random weights —
cost does not depend on training — and fed the same random token ids, 16 ... 512 tokens
per sentence. Each case encodes N_SENTENCES sentences of exactly T tokens up to the last
block with mean pooling (the suite's encode path) and records seconds per pair, tokens/s
and peak memory; the report draws one curve per family. Each other family is also timed
against RWKV-6 on the same ids in the same case (measure.compare_times: warm-up, alternating
order, rounds by time, median), so its `time_ratio_vs_rwkv6` (with CI) is a ratio measured
side by side, not across cases.

Shapes (`--length-shapes`); the transformers models are `random-hf:NAME` (models/random_hf.py):
    small (default)  width 256, 4 blocks, vocabulary 1024 (small-gptneox, small-llama,
                     small-mamba): a minute on 2 CPU cores; the trend, not production
                     numbers. Without the mamba_ssm kernel (CUDA only) transformers runs
                     Mamba's selective scan as a Python loop over tokens, ~10 s per call at
                     T=512 here, so on a CPU Mamba stops at T=MAMBA_REFERENCE_SCAN_MAX_T
                     and the records say which scan ran (`mamba_scan`).
    real             12 blocks x 768 with the real vocabularies: RWKV-6 at the shape of
                     RWKV-4-169m / Finch "small" (head 64, FFN 2688) vs Pythia-160m
                     (random-hf:pythia-160m) — run it on a GPU:
                     pytest benchmarks/test_length_scaling.py --rwkv-profile perf --length-shapes real --device cuda
                     Llama and Mamba have no partner of this size in compare.py and skip.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from rwkv_eval.measure import compare_times
from rwkv_eval.models.random_hf import random_hf_encoder
from rwkv_eval.models.rwkv import RWKVEncoder
from rwkv_eval.models.rwkv6 import RWKV6, SHAPES, RWKV6Config
from rwkv_eval.models.tokenizers import ByteTokenizer

pytestmark = pytest.mark.rwkv_cost  # a cost benchmark: the perf profile runs it, smoke does not

LENGTHS = (16, 64, 256, 512)
N_SENTENCES = 2  # one pair per timed call: the smoke budget on 2 CPU cores
SEED = 0
MAMBA_REFERENCE_SCAN_MAX_T = 64

RWKV_SHAPES = {
    "small": RWKV6Config(n_layer=4, n_embd=256, n_head=4, head_size=64, dim_ffn=896, vocab_size=1024),
    "real": SHAPES["small"],
}
# family -> (attention, {--length-shapes: random-hf shape}); matched to the RWKV shape of
# the same name in blocks, width and vocabulary; a family without a shape skips
HF_FAMILIES = {
    "gptneox": ("softmax", {"small": "small-gptneox", "real": "pythia-160m"}),
    "llama": ("softmax", {"small": "small-llama"}),
    "mamba": ("linear", {"small": "small-mamba"}),
}
ATTENTION = {"rwkv6": "linear", **{f: att for f, (att, _) in HF_FAMILIES.items()}}


def rwkv6_encoder(shape: str, device: str, dtype: torch.dtype) -> RWKVEncoder:
    model = RWKV6.random(RWKV_SHAPES[shape], seed=SEED).to(device=device, dtype=dtype)
    return RWKVEncoder(model, ByteTokenizer(), name=f"random-rwkv6:length-{shape}", revision=f"random-init seed={SEED}",
                       max_length=max(LENGTHS))


def mamba_scan() -> str:
    """Which selective scan transformers runs: the fused kernel needs the mamba_ssm package."""
    return "mamba_ssm kernel" if importlib.util.find_spec("mamba_ssm") else "reference PyTorch loop"


@pytest.fixture(scope="module")
def encoders(run, pytestconfig):
    shape = pytestconfig.getoption("--length-shapes")
    if shape not in RWKV_SHAPES:
        raise pytest.UsageError(f"--length-shapes must be one of {', '.join(RWKV_SHAPES)}; got {shape!r}")
    dtype = getattr(torch, run.dtype)
    encs = {"rwkv6": rwkv6_encoder(shape, run.device, dtype)}
    for family, (_, shapes) in HF_FAMILIES.items():
        if shape in shapes:
            encs[family] = random_hf_encoder(shapes[shape], seed=SEED, device=run.device, dtype=dtype,
                                             max_length=max(LENGTHS))
    return shape, encs


@pytest.mark.parametrize("length", LENGTHS, ids=lambda t: f"T{t:03d}")
@pytest.mark.parametrize("family", list(ATTENTION))
def test_cost_vs_length(benchmark, run, timed, peak_memory, encoders, family, length):
    shape, encs = encoders
    if family not in encs:
        pytest.skip(f"{family} has no model of the {shape!r} length shape (HF_FAMILIES)")
    if family == "mamba" and run.device == "cpu" and length > MAMBA_REFERENCE_SCAN_MAX_T and \
            mamba_scan() != "mamba_ssm kernel":
        pytest.skip(f"Mamba's reference scan is a Python loop over tokens: T={length} takes ~10 s per call on a "
                    f"CPU; the smoke stops at T={MAMBA_REFERENCE_SCAN_MAX_T} (run on a GPU with mamba_ssm)")
    enc = encs[family]
    vocab = min(e.model.config.vocab_size for e in encs.values())
    gen = torch.Generator().manual_seed(SEED + length)  # the same ids for every family
    token_ids = torch.randint(0, vocab, (N_SENTENCES, length), generator=gen).tolist()
    last = max(la for la in enc.layers() if isinstance(la, int))

    def work():
        return enc.encode_tokens(token_ids, [last], ["mean"], batch_size=N_SENTENCES)

    memory = peak_memory(work, enc)  # also the warm-up
    seconds = timed(work, min_rounds=1, min_time=0.0, warmup_rounds=0)
    params = sum(p.numel() for p in enc.model.parameters())
    vs_rwkv = {}
    if family != "rwkv6":
        rwkv = encs["rwkv6"]
        rwkv_last = max(la for la in rwkv.layers() if isinstance(la, int))
        t = compare_times({"rwkv6": lambda: rwkv.encode_tokens(token_ids, [rwkv_last], ["mean"], N_SENTENCES),
                           family: work}, "rwkv6", run.device, min_rounds=3, min_time=0.5)
        r = t.record(family)  # speed-up of the family over RWKV-6; its inverse is the time ratio
        vs_rwkv = {"time_ratio_vs_rwkv6": 1 / r["speedup"], "time_ratio_vs_rwkv6_ci95": [1 / r["speedup_ci95"][1],
                                                                                         1 / r["speedup_ci95"][0]],
                   "vs_rwkv6_timing_rounds": r["timing_rounds"], "vs_rwkv6_timing": r["timing"]}
    benchmark.extra_info.update({
        "analysis": "length-scaling", "family": family, "attention": ATTENTION[family], "shape": shape,
        "model": enc.name, "seq_len": length, "n_sentences": N_SENTENCES, "n_tokens": N_SENTENCES * length,
        "layers_run": last + 1, "params": params,
        "seconds": seconds, "seconds_per_pair": seconds / (N_SENTENCES / 2),
        "tokens_per_second": N_SENTENCES * length / seconds, "device": run.device, "dtype": run.dtype,
        "attn_implementation": getattr(enc.model.config, "_attn_implementation", None),
        **({"mamba_scan": mamba_scan()} if family == "mamba" else {}),
        "trained": False} | memory | vs_rwkv)
