"""Layer numbering against an independent implementation: BlinkDL's `rwkv` package.

The package only returns logits, head(ln_out(x)) of the last block's output. A checkpoint
cut after block k is a model whose last block is k, so its logits are head(ln_out(.))
of exactly what we call layer k; comparing them checks the numbering (and the states)
with code we did not write. A layer read one block early or late differs by far more
than the 1e-4 limit (the check fails with the shift).
"""

import importlib.util

import pytest
import torch

from rwkv_eval.models.rwkv import load_rwkv

TOKENS = [34, 105, 110]
LIMIT = 1e-4


def _rwkv_package(v7: bool, monkeypatch):
    """A fresh copy of rwkv.model: it picks RWKV-6 or RWKV-7 from RWKV_V7_ON at import."""
    spec = importlib.util.find_spec("rwkv.model")
    if spec is None:
        pytest.skip("BlinkDL's `rwkv` package is not installed")
    monkeypatch.setenv("RWKV_JIT_ON", "0")
    monkeypatch.setenv("RWKV_V7_ON", "1" if v7 else "0")
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(f"_rwkv_model_v7_{v7}", spec.origin))
    module.__spec__.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name,v7", [("tiny-rwkv-6v0-1m.pth", False), ("tiny-rwkv-7v0-834K.pth", True)],
                         ids=["rwkv6", "rwkv7"])
def test_layer_k_is_the_output_of_block_k(tiny_assets, tmp_path, monkeypatch, name, v7):
    package = _rwkv_package(v7, monkeypatch)
    path = tiny_assets / name
    model = load_rwkv(path).model
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for k in (0, 5, 11):
        cut = {n: v for n, v in sd.items() if not (n.startswith("blocks.") and int(n.split(".")[1]) > k)}
        # the package reads the head count from the first time_faaaa it meets after time_maa
        cut = dict(sorted(cut.items(), key=lambda kv: "time_faaaa" in kv[0]))
        file = tmp_path / f"cut-{k}.pth"
        torch.save(cut, file)
        # the RWKV-7 class appends ".pth" to the name it is given; the RWKV-6 one takes the file
        ref = (package.RWKV(model=str(file)[: -len(".pth")], strategy="cpu fp32") if v7
               else package.RWKV(model=str(file), strategy="cpu fp32", verbose=False))
        expected, _ = ref.forward(TOKENS, None)
        with torch.no_grad():
            states, _ = model(torch.tensor([TOKENS]), layers=(k,))
            ours = model.head(model.ln_out(states[k][0, -1]))
        diff = float((ours - expected.float()).abs().max())
        assert diff < LIMIT, f"{name} layer {k}: max abs diff {diff:.3g} vs the rwkv package cut after block {k}"
