"""Does torch.compile pay for the native RWKV-6 on a CPU? (issue 22: "an optional torch.compile
path is worth measuring; keep eager the default if it does not pay on CPU")

Every block's forward compiled (dynamic shapes; the WKV's data-dependent branch breaks the
graph), against the same model eager, interleaved with the limit's 2048^3 matmuls as in
benchmarks/test_throughput.py; the compile time is the first call's. Writes JSON to argv[1].
Run from the repository root: python reports/cpu-throughput-2026-12-06/compile_check.py out.json
"""

import copy
import json
import statistics
import sys
import time

import torch

from rwkv_eval.datasets import load_sample
from rwkv_eval.models.load import load_encoder
from rwkv_eval.models.random_init import random_rwkv_encoder

STUDY_LAYERS = [1, 3, 5, 7, 9, 11]
ROUNDS = 5


def compiled(enc):
    enc = copy.deepcopy(enc)
    for block in enc.model.blocks:
        block.forward = torch.compile(block.forward, dynamic=True)
    return enc


sample = load_sample()
sentences = list(dict.fromkeys(sample.sentence1 + sample.sentence2))
small = random_rwkv_encoder("small", seed=0)
tiny = load_encoder("tiny-rwkv6")
ids_small = small.tokenize(sentences[:64])
ids_tiny = tiny.tokenize(sentences)
params = sum(p.numel() for n, p in small.model.named_parameters() if n not in ("emb.weight", "head.weight"))
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
work = {
    "small eager": lambda e=small: e.encode_tokens(ids_small, STUDY_LAYERS, ["mean"], batch_size=32),
    "tiny eager": lambda e=tiny: e.encode_tokens(ids_tiny, list(e.layers()), ["mean", "last", "max"], batch_size=32),
    "limit": lambda: [torch.mm(a, b) for _ in range(4)],
}
compile_seconds = {}
for name, enc, ids, layers, poolings in (("small", small, ids_small, STUDY_LAYERS, ["mean"]),
                                         ("tiny", tiny, ids_tiny, list(tiny.layers()), ["mean", "last", "max"])):
    c = compiled(enc)
    t = time.perf_counter()
    c.encode_tokens(ids, layers, poolings, batch_size=32)
    compile_seconds[name] = time.perf_counter() - t
    work[f"{name} compiled"] = lambda c=c, ids=ids, layers=layers, poolings=poolings: c.encode_tokens(
        ids, layers, poolings, batch_size=32)
for f in work.values():
    f()
seconds = {k: [] for k in work}
for _ in range(ROUNDS):
    for k, f in work.items():
        t = time.perf_counter()
        f()
        seconds[k].append(time.perf_counter() - t)
median = {k: statistics.median(v) for k, v in seconds.items()}
limit_tokens_per_s = 2 * 2048**3 * 4 / median["limit"] / (2 * params)
n_small = sum(map(len, ids_small))
result = {
    "torch": torch.__version__, "threads": torch.get_num_threads(), "rounds": ROUNDS, "median_seconds": median,
    "compile_seconds_first_call": compile_seconds,
    "small_fraction_of_limit": {k: n_small / median[f"small {k}"] / limit_tokens_per_s for k in ("eager", "compiled")},
    "tiny_compiled_speedup": median["tiny eager"] / median["tiny compiled"],
}
json.dump(result, open(sys.argv[1], "w"), indent=1)
print(json.dumps(result, indent=1))
