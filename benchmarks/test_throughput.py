"""What the native RWKV-6 encoder costs, against BlinkDL's `rwkv` package and this machine's limit.

Side by side in one run, on the same random-init weights and the same real sentences:

* the machine's matmul rate in the run's dtype, from back-to-back large matmuls
  (measure.matmul_rate), and on a known GPU the fraction of its fp16/bf16 tensor-core
  peak; divided by 2 x the non-embedding parameter count it gives the FLOP-bound tokens/s;
* the native encoder: all six study layers (1,3,...,11) from one pass, batched,
  length-sorted, packed (each batch one flat sequence, the WKV in packed rows:
  models/rwkv.py pack_rows), mean pooling on the fly; in the same interleaved rounds the
  same encoder without packing and a fixed run of the limit's matmuls, so native / limit
  and packed / padded are ratios of one moment of the machine;
* BlinkDL's `rwkv` package (`RWKV(strategy="cpu fp32").forward(tokens, None)`,
  RWKV_JIT_ON=1), one sentence at a time, as a user of the reference code would run it,
  timed only after its logits were checked against the native model's on the same
  weights and sentences;
* the cost of the 1,3,...,11 sweep as a fraction of a full 24-block pass of a
  Finch-1B6-shaped model (stopping after block 11 should cost about 12/24), and the
  full pass's achieved TFLOP/s as a fraction of the matmul limit and the device peak;
* each model's peak memory against the size of its weights: the larger of encoding and
  building it (measure.build_memory);
* small models: the tiny trained RWKV-6 (1 M parameters, byte-level) against
  all-MiniLM-L6-v2 (22 M) on the same sentences, every layer x 3 poolings as the scorer
  encodes them, interleaved: seconds, tokens/s and parameters side by side.

`--device cuda --dtype bfloat16` (or float16) runs the same benchmarks on a GPU; see
scripts/gpu_check.sh.
"""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from rwkv_eval.measure import build_memory, compare_times, device_info, matmul_rate, weights_bytes
from rwkv_eval.models.random_init import SHAPES, random_rwkv_encoder

pytestmark = pytest.mark.rwkv_cost  # a cost benchmark: the perf profile runs it, smoke does not

STUDY_LAYERS = [1, 3, 5, 7, 9, 11]
N_SENTENCES = 64
SWEEP_SENTENCES = 16  # enough tokens (~180) that fixed per-call costs do not blur the 12/24 ratio
# The package's sequential fp32 RNN and our chunked fp32 WKV sum in different orders; over
# 12 blocks of width 768 their last-token logits (largest ~4.1) differ by 2.4e-6..2.7e-6
# (measured on two sentences). 1e-5 of the largest logit (~4e-5) leaves 15x headroom over
# that; a token shift moves these logits by 0.55, a 1% change of block 11's ln2 weight by
# 1e-2. Small errors inside attention can pass: a 10% change of block 5's value matrix
# moves them by only 1.4e-5..9e-5 (the random model's attention branches are small).
PACKAGE_LOGITS_RTOL = 1e-5
PACKAGE_ENV = {"RWKV_JIT_ON": "1", "RWKV_V7_ON": "0"}  # read by rwkv.model at import
TIMING_ROUNDS = 7  # measure.compare_times: rounds per side, medians; with 3 this host's limit moved by 16% between runs
LIMIT_MATMULS = 4  # 2048^3 matmuls per limit turn in the interleaved rounds (~0.3 s on 2 cores)
TINY_RWKV6 = "tiny-rwkv6"  # shipped in the package (models.load.SHIPPED)
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SMALL_POOLINGS = ["mean", "last", "max"]


def non_embedding_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n not in ("emb.weight", "head.weight"))


@pytest.fixture(scope="module")
def results() -> dict[str, float]:
    """Numbers one test of this module measures and a later one divides by (the matmul rate,
    the native tokens/s); empty when that test was deselected."""
    return {}


@pytest.fixture
def rwkv_package(monkeypatch):
    """A fresh copy of BlinkDL's rwkv.model imported under PACKAGE_ENV, which is set for this
    test only (a copy, because the module reads the variables once, at import)."""
    spec = importlib.util.find_spec("rwkv.model")
    if spec is None:
        pytest.skip("BlinkDL's `rwkv` package is not installed")
    for name, value in PACKAGE_ENV.items():
        monkeypatch.setenv(name, value)
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("_rwkv_model_jit", spec.origin))
    module.__spec__.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sentences(run) -> list[str]:
    """Real sentences: MRPC validation when the data root has it, else the bundled sample."""
    from rwkv_eval.datasets import load_pairs, load_sample

    try:
        pairs = load_pairs("mrpc", "validation", run.profile.data_dir, allow_hub=False)
    except FileNotFoundError:
        pairs = load_sample()
    return list(dict.fromkeys(pairs.sentence1 + pairs.sentence2))[:N_SENTENCES]


@pytest.fixture(scope="module")
def sentences_small(run) -> list[str]:
    """The bundled STS-B sample's unique sentences (596): what the smoke profile encodes."""
    from rwkv_eval.datasets import load_sample

    pairs = load_sample()
    return list(dict.fromkeys(pairs.sentence1 + pairs.sentence2))


@pytest.fixture(scope="module")
def small_built(run):
    """The 12 x 768 random RWKV-6 and measure.build_memory's record of building it."""
    return build_memory(lambda: random_rwkv_encoder("small", seed=0, device=run.device,
                                                    dtype=getattr(torch, run.dtype)), run.device)


@pytest.fixture(scope="module")
def small(small_built):
    return small_built[0]


def test_matmul_limit(benchmark, run, results):
    """FLOP/s of large square matmuls back to back: the ceiling every dense model runs under."""
    n = 2048 if run.device == "cpu" else 8192
    runner = None if benchmark.disabled else (
        lambda target, rounds: benchmark.pedantic(target, rounds=rounds, iterations=1, warmup_rounds=0))
    rate = matmul_rate(run.device, getattr(torch, run.dtype), n, runner=runner)
    results["gflops"] = rate["flops"] / 1e9
    peak = device_info(run.device).get("device_peak_tflops", {}).get(run.dtype)
    results["device_peak_tflops"] = peak
    benchmark.extra_info.update(rate | {
        "gflops": rate["flops"] / 1e9, "device_peak_tflops": peak,
        "fraction_of_device_peak": rate["tflops"] / peak if peak else None,
        "torch_threads": torch.get_num_threads()})


def test_native_rwkv6_all_study_layers_one_pass(benchmark, run, timed, peak_memory, small, small_built, sentences,
                                                results):
    token_ids = small.tokenize(sentences)
    n_tokens = sum(len(t) for t in token_ids)

    def work():
        return small.encode_tokens(token_ids, STUDY_LAYERS, ["mean"], batch_size=32)

    memory = peak_memory(work, small, build=small_built[1])
    s = timed(work)
    params = non_embedding_params(small.model)
    limit = results["gflops"] * 1e9 / (2 * params) if "gflops" in results else None
    results["native_tokens_per_second"] = n_tokens / s
    # the same moment of the machine for every ratio: packed, padded, and the limit's matmuls
    padded = copy.copy(small)
    padded.pack = False
    n = 2048 if run.device == "cpu" else 8192
    a, b = (torch.randn(n, n, device=run.device, dtype=getattr(torch, run.dtype)) for _ in range(2))

    def matmuls():
        for _ in range(LIMIT_MATMULS):
            torch.mm(a, b)

    timings = compare_times({"packed": work, "padded": lambda: padded.encode_tokens(
        token_ids, STUDY_LAYERS, ["mean"], batch_size=32), "limit": matmuls}, "padded", run.device,
        min_rounds=TIMING_ROUNDS, min_time=0.0)
    best = {k: timings.median(k) for k in timings.seconds}
    limit_now = 2 * n**3 * LIMIT_MATMULS / best["limit"] / (2 * params)
    results["native_fraction_of_limit_interleaved"] = n_tokens / best["packed"] / limit_now
    benchmark.extra_info.update({
        "model": "random-rwkv6:small", "shape": "12 x 768, head 64", "layers": STUDY_LAYERS, "pooling": "mean",
        "n_sentences": len(sentences), "n_tokens": n_tokens, "tokens_per_second": n_tokens / s,
        "pairs_per_second": len(sentences) / 2 / s, "non_embedding_params": params,
        "flop_bound_tokens_per_second": limit, "fraction_of_limit": (n_tokens / s) / limit if limit else None,
        "device": run.device, "dtype": run.dtype, "packed": small.pack,
        "timing_rounds": timings.rounds, "median_seconds": best,
        "packed_speedup_over_padded_ci95": timings.speedup("packed")[1],
        "interleaved_flop_bound_tokens_per_second": limit_now,
        "native_fraction_of_limit_interleaved": n_tokens / best["packed"] / limit_now,
        "padded_fraction_of_limit_interleaved": n_tokens / best["padded"] / limit_now,
        "packed_speedup_over_padded": best["padded"] / best["packed"],
        "wkv_backend": small.wkv_backend(), "wkv_chunk_size": small.model.chunk_size, "trained": False} | memory)


def test_rwkv_package_sentence_by_sentence(benchmark, run, timed, small, sentences, results, rwkv_package,
                                           tmp_path_factory):
    if not run.device == "cpu" or run.dtype != "float32":
        pytest.skip("the rwkv-package comparison is defined for CPU float32 (its 'cpu fp32' strategy)")
    path = tmp_path_factory.mktemp("rwkv-package") / "small.pth"
    torch.save({k: v.clone() for k, v in small.model.state_dict().items()}, path)
    ref = rwkv_package.RWKV(model=str(path), strategy="cpu fp32", verbose=False)
    token_ids = small.tokenize(sentences)
    n_tokens = sum(len(t) for t in token_ids)
    # the same computation before its time: last-token logits of the first and the longest sentence
    for ids in {0: token_ids[0], 1: max(token_ids, key=len)}.values():
        expected, _ = ref.forward(ids, None)
        with torch.inference_mode():
            _, logits = small.model(torch.tensor([ids]), return_logits=True)
        diff = float((logits[0, -1] - expected.float()).abs().max())
        limit = PACKAGE_LOGITS_RTOL * float(expected.abs().max())
        assert diff <= limit, (f"the rwkv package's logits differ from the native model's by {diff:.3g} "
                               f"(limit {limit:.3g}) on a {len(ids)}-token sentence: not the same model, not timed")

    def work():
        for ids in token_ids:
            if ids:
                ref.forward(ids, None)

    s = timed(work, min_rounds=2)
    params = non_embedding_params(small.model)
    limit = results["gflops"] * 1e9 / (2 * params) if "gflops" in results else None
    native = results.get("native_tokens_per_second")
    benchmark.extra_info.update({
        "model": "random-rwkv6:small via rwkv package", "strategy": "cpu fp32",
        "rwkv_jit_on": PACKAGE_ENV["RWKV_JIT_ON"], "logits_checked_rtol": PACKAGE_LOGITS_RTOL,
        "n_sentences": len(sentences), "n_tokens": n_tokens, "tokens_per_second": n_tokens / s,
        "pairs_per_second": len(sentences) / 2 / s,
        "flop_bound_tokens_per_second": limit, "fraction_of_limit": (n_tokens / s) / limit if limit else None,
        "native_tokens_per_second": native,
        "native_over_package": native / (n_tokens / s) if native else None,
        "native_fraction_of_limit": native / limit if native and limit else None,
        "native_fraction_of_limit_interleaved": results.get("native_fraction_of_limit_interleaved")})


def test_layer_sweep_cost_vs_full_pass_finch_1b6_shape(benchmark, run, timed, peak_memory, small, sentences,
                                                       results):
    """Layers 1..11 of a 24-block Finch-1B6-shaped model: the run stops after block 11."""
    small.model.cpu()  # one model resident: the 12 x 768 model's weights must not count in this peak
    enc, built = build_memory(lambda: random_rwkv_encoder("finch-1b6", seed=0, device=run.device,
                                                          dtype=getattr(torch, run.dtype)), run.device)
    token_ids = enc.tokenize(sentences[:SWEEP_SENTENCES])
    n_tokens = sum(len(t) for t in token_ids)

    def full():
        return enc.encode_tokens(token_ids, [SHAPES["finch-1b6"].n_layer - 1], ["mean"], batch_size=SWEEP_SENTENCES)

    def sweep():
        return enc.encode_tokens(token_ids, STUDY_LAYERS, ["mean"], batch_size=SWEEP_SENTENCES)

    memory = peak_memory(sweep, enc, build=built)  # also the warm-up
    timed(sweep, min_rounds=1, min_time=0.0)
    # the ratio from measure.compare_times (warm-up, alternating order, median): this host's
    # matmul rate drifts by 2x within seconds, and taking turns keeps both sides under the same drift
    timings = compare_times({"sweep": sweep, "full": full}, "full", run.device, min_rounds=2, min_time=0.0)
    sweep_s, full_s = timings.median("sweep"), timings.median("full")
    full_tflops = n_tokens * 2 * non_embedding_params(enc.model) / full_s / 1e12
    peak = results.get("device_peak_tflops")
    benchmark.extra_info.update({
        "model": "random-rwkv6:finch-1b6", "shape": "24 x 2048, 32 heads x 64, ffn 7168, vocab 65536",
        "layers": STUDY_LAYERS, "n_sentences": len(token_ids), "n_tokens": n_tokens,
        "sweep_seconds": sweep_s, "full_pass_seconds": full_s, "sweep_fraction_of_full_pass": sweep_s / full_s,
        "target_fraction": 0.55, "tokens_per_second": n_tokens / sweep_s,
        "full_pass_tflops": full_tflops,
        "full_pass_fraction_of_matmul_limit": full_tflops * 1e3 / results["gflops"] if "gflops" in results else None,
        "device_peak_tflops": peak, "full_pass_fraction_of_device_peak": full_tflops / peak if peak else None,
        "device": run.device, "dtype": run.dtype, "trained": False} | memory)
    del enc
    small.model.to(run.device)


def test_tiny_rwkv6_vs_minilm_same_sentences(benchmark, run, sentences_small):
    """Small models fast: the 1 M-parameter trained RWKV-6 against the 22 M all-MiniLM-L6-v2,
    every layer x 3 poolings (what the scorer asks), the same sentences, interleaved rounds."""
    from rwkv_eval.models.load import load_encoder

    dtype = getattr(torch, run.dtype)
    try:
        encoders = {"rwkv6-tiny": load_encoder(TINY_RWKV6, device=run.device, dtype=dtype),
                    "minilm": load_encoder(MINILM, device=run.device, dtype=dtype)}
    except (OSError, ValueError) as e:
        pytest.skip(f"all-MiniLM-L6-v2 not available offline: {e}")
    token_ids = {k: e.tokenize(sentences_small) for k, e in encoders.items()}

    def encode(key):
        enc = encoders[key]
        return lambda: enc.encode_tokens(token_ids[key], list(enc.layers()), SMALL_POOLINGS, batch_size=32)

    work = {k: encode(k) for k in encoders}
    timings = compare_times(work, "minilm", run.device, min_rounds=TIMING_ROUNDS, min_time=0.0)
    seconds = {k: timings.median(k) for k in work}
    if not benchmark.disabled:  # pytest-benchmark's record of the RWKV side
        benchmark.pedantic(work["rwkv6-tiny"], rounds=1, iterations=1, warmup_rounds=0)
    info = {}
    for k, enc in encoders.items():
        n_tokens = sum(len(t) for t in token_ids[k])
        weights = weights_bytes(enc)
        info[k] = {"model": enc.name, "weights_mb": weights / 2**20,
                   "parameters": weights // 4 if run.dtype == "float32" else None,  # fp32: 4 bytes each
                   "layers": len(enc.layers()), "n_tokens": n_tokens, "seconds": seconds[k],
                   "tokens_per_second": n_tokens / seconds[k], "sentences_per_second": len(sentences_small) / seconds[k]}
    benchmark.extra_info.update({
        "n_sentences": len(sentences_small), "poolings": SMALL_POOLINGS, "batch_size": 32,
        "timing_rounds": timings.rounds, "device": run.device, "dtype": run.dtype, **info,
        "minilm_seconds_over_rwkv6_tiny": seconds["minilm"] / seconds["rwkv6-tiny"],
        "minilm_seconds_over_rwkv6_tiny_ci95": timings.speedup("rwkv6-tiny")[1]})
