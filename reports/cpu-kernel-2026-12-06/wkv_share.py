"""The WKV's share of an encode, chunked vs the compiled CPU kernel, and the operator profile.

Run from the repository root on an idle machine (MRPC validation from a data root):
    RWKV_EVAL_DATA=../shared/data .venv/bin/python reports/cpu-kernel-2026-12-06/wkv_share.py \
        reports/cpu-kernel-2026-12-06/wkv_share.json
Random 12 x 768 RWKV-6 (the perf profile's), 64 MRPC validation sentences, layers 1,3,...,11,
mean, batch 32; the tiny RWKV-7 on the 596 sample sentences, every layer x mean/last/max.
Each WKV call is timed by wrapping the module-level dispatch the models call; best of 3 encodes.
"""

import json
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

import rwkv_eval.models.rwkv6 as m6
import rwkv_eval.models.rwkv7 as m7
from rwkv_eval.datasets import load_pairs, load_sample
from rwkv_eval.models.load import load_encoder
from rwkv_eval.models.random_init import random_rwkv_encoder
from rwkv_eval.models.rwkv import RWKVEncoder
from rwkv_eval.models.rwkv6 import RWKV6
from rwkv_eval.models.rwkv7 import RWKV7

spent = [0.0]


def timed(module, name):
    fn = getattr(module, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        spent[0] += time.perf_counter() - t
        return out

    setattr(module, name, wrapper)


timed(m6, "wkv6")
timed(m7, "wkv7")


def best_of_3(work):
    work()
    runs = []
    for _ in range(3):
        spent[0] = 0.0
        t = time.perf_counter()
        work()
        runs.append((time.perf_counter() - t, spent[0]))
    total, wkv = min(runs)
    return {"encode_seconds": total, "wkv_seconds": wkv, "wkv_share": wkv / total}


pairs = load_pairs("mrpc", "validation", os.environ["RWKV_EVAL_DATA"], allow_hub=False)
mrpc = list(dict.fromkeys(pairs.sentence1 + pairs.sentence2))[:64]
sample = load_sample()
sample = list(dict.fromkeys(sample.sentence1 + sample.sentence2))
result = {"torch": torch.__version__, "threads": torch.get_num_threads()}

small = random_rwkv_encoder("small", seed=0)
ids = small.tokenize(mrpc)
for backend in ("chunked", "cpu"):
    model = RWKV6.random(small.model.config, seed=0, wkv_backend=backend)
    enc = RWKVEncoder(model, small.tokenizer, name="random-rwkv6:small", revision="seed=0")
    work = lambda: enc.encode_tokens(ids, [1, 3, 5, 7, 9, 11], ["mean"], batch_size=32)  # noqa: E731
    result[f"rwkv6-small/{backend}"] = best_of_3(work) | {"wkv_backend": enc.provenance()["wkv_backend"]}
    if backend == "cpu":
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            work()
        ops = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
        total = sum(ops.values())  # aten operators only: the compiled kernel is not one
        result["rwkv6-small/cpu/operator_shares"] = {k: v / total for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:8]}

tiny7 = load_encoder("tiny-rwkv7")
tids = tiny7.tokenize(sample)
for backend in ("chunked", "cpu"):
    model = RWKV7(tiny7.model.config, wkv_backend=backend)
    model.load_state_dict(tiny7.model.state_dict())
    enc = RWKVEncoder(model, tiny7.tokenizer, name="tiny-rwkv7", revision=tiny7.revision)
    work = lambda: enc.encode_tokens(tids, list(enc.layers()), ["mean", "last", "max"], batch_size=32)  # noqa: E731
    result[f"rwkv7-tiny/{backend}"] = best_of_3(work) | {"wkv_backend": enc.provenance()["wkv_backend"]}

json.dump(result, open(sys.argv[1], "w"), indent=1)
print(json.dumps(result, indent=1))
