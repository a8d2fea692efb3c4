"""Reading RWKV weights: BlinkDL `.pth` files, Hugging Face model directories, hub ids.

Every loader returns a `Checkpoint` whose state dict uses the BlinkDL names
(`emb.weight`, `blocks.N.att.*`, `blocks.N.ffn.*`, `ln_out.*`, `head.weight`), which are
the parameter names of models/rwkv6.py; `check_state_dict` then fails on any missing or
unexpected key or wrong shape, naming the file and the tensor.

Formats:
    *.pth        torch.load(weights_only=True): a pickle that needs anything beyond
                 tensors and containers is refused, as is any non-tensor value.
    directory    the layout of RWKV/v6-Finch-1B6-HF: config.json and either *.safetensors
                 (preferred) or pytorch_model*.bin, possibly sharded with an index json.
                 Keys: `rwkv.embeddings.` = emb., `rwkv.blocks.0.pre_ln` = blocks.0.ln0,
                 `.attention.` = .att., `.feed_forward.` = .ffn., everything but
                 head.weight under `rwkv.` (see BlinkDL/RWKV-LM's and transformers'
                 convert_rwkv_checkpoint_to_hf.py). A directory with one .pth and no
                 config.json is read as that .pth.
    hub id       huggingface_hub.snapshot_download(repo_id, revision=...), which honours
                 HF_HUB_OFFLINE and the local cache; then read as a directory.

Revision: the hub commit hash for hub ids, else the sha256 of the weights file (of several
shards: sha256 of their sorted "name sha256" lines, as models/hf.py computes it).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

SUPPORTED_ARCHS = ("rwkv6", "rwkv7")
HF_ALLOW_PATTERNS = ["*.json", "*.safetensors", "pytorch_model*.bin", "*.txt", "*.model"]


@dataclass(frozen=True)
class Checkpoint:
    state_dict: dict[str, torch.Tensor]  # BlinkDL names
    arch: str  # "rwkv6"; see detect_arch
    source: str  # the spec as given: file, directory or hub id
    revision: str  # hub commit, or sha256 of the weights
    sha256: str  # of the weights file (several: of their sorted "name sha256" lines)
    files: tuple[Path, ...]  # the weights files read
    directory: Path | None  # model directory (tokenizer files may live there), None for a bare .pth


def detect_arch(keys, source: str) -> str:
    """RWKV generation from BlinkDL key names: "rwkv4", "rwkv5", "rwkv6" or "rwkv7"."""
    keys = list(keys)
    has = lambda part: any(part in k for k in keys)  # noqa: E731
    if has("att.time_maa_w1"):
        return "rwkv6"
    if has("att.x_r") or has("att.w0") or has("att.k_k"):
        return "rwkv7"
    if has("att.time_mix_k") or has("att.time_first"):
        return "rwkv5" if has("att.ln_x") else "rwkv4"
    raise ValueError(f"{source}: not an RWKV checkpoint this suite knows (no att.time_maa_w1, att.x_r, "
                     f"att.time_mix_k among {len(keys)} keys, e.g. {keys[:3]})")


def check_arch(arch: str, source: str) -> None:
    if arch not in SUPPORTED_ARCHS:
        hint = " (RWKV-4 runs through transformers: rwkv_eval.models.hf)" if arch == "rwkv4" else ""
        raise ValueError(f"{source}: {arch} checkpoint; the native encoder supports {', '.join(SUPPORTED_ARCHS)}{hint}")


def sha256_files(files) -> str:
    """sha256 of one file; of several, sha256 of their sorted 'name sha256' lines."""
    digests = []
    for path in sorted(files, key=lambda p: p.name):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
        digests.append(f"{path.name} {h.hexdigest()}")
    if len(digests) == 1:
        return digests[0].split()[1]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def _only_tensors(sd, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: expected a flat state dict {{name: tensor}}; got {type(sd).__name__}")
    for key, value in sd.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor; only plain "
                             "BlinkDL state dicts are read (files pre-converted by the rwkv package are not)")
    return sd


_REFUSED_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    return text.split(". ")[0].rstrip(".")


ZIP_MAGIC = b"PK\x03\x04"


def check_pth_archive(path: Path) -> None:
    """Before anything is unpacked: the sizes a zip-format .pth declares, read from its
    archive headers. torch.save stores its entries uncompressed, so together they cannot
    exceed the file; a few MB declaring GBs (compressed entries) is refused before torch
    inflates them, and a zip cut short (its directory, at the end, missing) is named as
    such. A legacy (pre-1.6, non-zip) .pth is left to torch.load."""
    import zipfile

    with open(path, "rb") as f:
        if f.read(4) != ZIP_MAGIC:
            return
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint, the file may be truncated or corrupted "
                         f"(its zip directory: {e}); compare its sha256 with the published one") from None
    declared = sum(e.file_size for e in entries)
    if declared > size:
        big = max(entries, key=lambda e: e.file_size)
        raise ValueError(f"{path}: refused before unpacking: its archive declares {declared} bytes unpacked from "
                         f"{size} bytes on disk (entry {big.filename!r}: {big.file_size} bytes); torch.save writes "
                         "entries uncompressed, so this file was not written by it. Re-save the weights with "
                         "torch.save, or get them from a source you trust")


def read_pth(path: Path) -> dict[str, torch.Tensor]:
    """A BlinkDL .pth as a state dict; only tensors in a dict, nothing else is unpickled.

    A pickle that asks for any other object (a class, a function such as os.system) is
    refused by torch's weights-only unpickler before anything runs; the message says it
    was refused for safety, which is not the same as a damaged file.
    """
    check_pth_archive(path)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if m := _REFUSED_GLOBAL.search(str(e)):
            raise ValueError(f"{path}: refused for safety, not loaded: it asks to import {m.group(1)}, and a pickle "
                             "that imports code can run it. rwkv_eval reads only plain state dicts of tensors; get "
                             "the weights as such a .pth or as .safetensors from a source you trust") from None
        # torch's text also advises turning the safety check off: keep only what went wrong
        detail = str(e).split("WeightsUnpickler error:")[1].strip() if "WeightsUnpickler error:" in str(e) else ""
        raise ValueError(f"{path}: not a readable PyTorch checkpoint, the file may be truncated or corrupted "
                         f"(UnpicklingError{': ' + detail.splitlines()[0] if detail else ''}); compare its "
                         "sha256 with the published one") from None
    except Exception as e:  # noqa: BLE001 - truncated zip, bad magic number, ...: wrapped with the path
        detail = ": ".join(filter(None, (type(e).__name__, _first_sentence(str(e)))))
        raise ValueError(f"{path}: not a readable PyTorch checkpoint, the file may be truncated or "
                         f"corrupted ({detail}); compare its sha256 with the published one") from e
    return _only_tensors(sd, path)


def _weights_files(directory: Path) -> list[Path]:
    """Safetensors if any, else pytorch_model*.bin; an index json names the shards."""
    for index_name, pattern in (("model.safetensors.index.json", "*.safetensors"),
                                ("pytorch_model.bin.index.json", "pytorch_model*.bin")):
        index = directory / index_name
        if index.is_file():
            names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            missing = [n for n in names if not (directory / n).is_file()]
            if missing:
                raise FileNotFoundError(f"{index}: shard(s) {missing} not found in {directory}")
            return [directory / n for n in names]
        files = sorted(directory.glob(pattern))
        if files:
            return files
    raise FileNotFoundError(f"no weights (*.safetensors or pytorch_model*.bin) in {directory}")


def _read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except Exception as e:
            raise ValueError(f"{path}: not a readable safetensors file, it may be truncated or corrupted "
                             f"({type(e).__name__}: {e})") from e
    return read_pth(path)


def hf_to_blinkdl_key(key: str) -> str:
    if key == "head.weight":
        return key
    if not key.startswith("rwkv."):
        raise KeyError(key)
    key = key.removeprefix("rwkv.")
    if key.startswith("embeddings."):
        key = "emb." + key.removeprefix("embeddings.")
    return key.replace(".pre_ln.", ".ln0.").replace(".attention.", ".att.").replace(".feed_forward.", ".ffn.")


def blinkdl_to_hf_key(key: str) -> str:
    if key == "head.weight":
        return key
    if key.startswith("emb."):
        key = "embeddings." + key.removeprefix("emb.")
    key = key.replace(".ln0.", ".pre_ln.").replace(".att.", ".attention.").replace(".ffn.", ".feed_forward.")
    return "rwkv." + key


def read_hf_dir(directory: Path) -> tuple[dict[str, torch.Tensor], list[Path]]:
    """A Hugging Face RWKV directory as a BlinkDL-named state dict, and the files read."""
    files = _weights_files(directory)
    sd: dict[str, torch.Tensor] = {}
    for path in files:
        for key, value in _read_weights_file(path).items():
            try:
                name = hf_to_blinkdl_key(key)
            except KeyError:
                raise ValueError(f"{path}: unexpected tensor {key!r}; Hugging Face RWKV weights are "
                                 "head.weight and rwkv.*") from None
            if name in sd:
                raise ValueError(f"{path}: tensor {key!r} also appears in another shard")
            sd[name] = value
    return sd, files


def save_hf(sd: dict[str, torch.Tensor], directory: Path, *, safetensors: bool = True,
            shards: int = 1, config: dict | None = None) -> list[Path]:
    """Write a BlinkDL-named RWKV-6 state dict in the Hugging Face layout (config.json + weights).

    Args:
        sd: BlinkDL-named tensors.
        directory: created if missing.
        safetensors: model*.safetensors if True, else pytorch_model*.bin.
        shards: number of weight files; more than one also writes the index json.
        config: extra config.json entries (model_type is "rwkv6").
    Returns:
        the weights files written.
    """
    from .rwkv6 import RWKV6Config

    directory.mkdir(parents=True, exist_ok=True)
    cfg = RWKV6Config.from_state_dict(sd)
    (directory / "config.json").write_text(json.dumps({
        "model_type": "rwkv6", "architectures": ["Rwkv6ForCausalLM"], "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.n_embd, "num_hidden_layers": cfg.n_layer, "attention_hidden_size": cfg.n_embd,
        "head_size": cfg.head_size, "head_size_divisor": 8, "intermediate_size": cfg.dim_ffn,
        "layer_norm_epsilon": 1e-5, "rescale_every": 6, "tie_word_embeddings": False, **(config or {}),
    }, indent=2), encoding="utf-8")
    hf = {blinkdl_to_hf_key(k): v.contiguous() for k, v in sd.items()}
    keys = list(hf)
    ext, stem = (".safetensors", "model") if safetensors else (".bin", "pytorch_model")
    names = [f"{stem}{ext}"] if shards == 1 else [f"{stem}-{i + 1:05d}-of-{shards:05d}{ext}" for i in range(shards)]
    weight_map, files = {}, []
    for i, name in enumerate(names):
        part = {k: hf[k] for k in keys[i::shards]}
        if safetensors:
            from safetensors.torch import save_file

            save_file(part, directory / name, metadata={"format": "pt"})
        else:
            torch.save(part, directory / name)
        weight_map.update({k: name for k in part})
        files.append(directory / name)
    if shards > 1:
        index = f"{stem}{'.safetensors' if safetensors else '.bin'}.index.json"
        (directory / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))
    return files


@lru_cache(maxsize=None)
def hub_unreachable(endpoint: str) -> str | None:
    """Why the Hugging Face hub at `endpoint` cannot be reached (one request, 5 s, no retries),
    or None when it answers. huggingface_hub retries a refused connection for ~25 s and logs
    each try, per file: asked first, a machine without network learns it in one line."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=5).close()
    except urllib.error.HTTPError:  # it answered, if only with an error status
        return None
    except (OSError, ValueError) as e:  # URLError (refused, no route, DNS), a timeout, a malformed endpoint
        reason = getattr(e, "reason", e)
        return f"{type(reason).__name__}: {' '.join(str(reason).split()) or 'no answer'}"
    return None


def hub_error(spec: str, repo_type: str = "model") -> str | None:
    """One line saying that `spec` (a model, or a dataset with repo_type="dataset") cannot come
    from the hub (what, from where, how to work offline), or None when the hub is enabled and
    answers (or huggingface_hub is absent: the loader reports that)."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    download = f"`huggingface-cli download {spec}{' --repo-type dataset' if repo_type == 'dataset' else ''}`"
    if constants.HF_HUB_OFFLINE:
        return (f"{spec} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set (the hub is off); "
                f"on a machine with network run {download}, or pass a local path")
    why = hub_unreachable(constants.ENDPOINT)
    return why and (f"{spec} is not in the local Hugging Face cache and the hub at {constants.ENDPOINT} is "
                    f"unreachable ({why}); on a machine with network run {download}, "
                    "then work offline with HF_HUB_OFFLINE=1, or pass a local path")


def _snapshot(repo_id: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise ImportError(f"{repo_id}: loading a hub id needs huggingface_hub (pip install rwkv-eval[hub])") from e
    if problem := hub_error(repo_id):  # offline or unreachable: the local cache only, else one line
        try:
            return Path(snapshot_download(repo_id, revision=revision, allow_patterns=HF_ALLOW_PATTERNS,
                                          local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached (or not that revision)
            raise FileNotFoundError(f"{repo_id}@{revision or 'main'}: {problem}") from None
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=HF_ALLOW_PATTERNS))
    except Exception as e:  # offline and not cached, unknown repo or revision, network error
        raise FileNotFoundError(
            f"{repo_id}@{revision or 'main'}: cannot get it from the Hugging Face hub or the local cache "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); download it once online "
            "(HF_HUB_OFFLINE unset) or pass a local directory or .pth file") from e


def load_checkpoint(spec: str | Path, revision: str | None = None) -> Checkpoint:
    """Read weights from a .pth file, a model directory or a hub id ("owner/name").

    Args:
        spec: path or hub id.
        revision: hub branch, tag or commit (hub ids only).
    Returns:
        a `Checkpoint` (state dict with BlinkDL names, arch, revision, files, directory).
    """
    source = str(spec)
    path = Path(spec).expanduser()
    commit = None
    if not path.exists():
        if source.startswith((".", "/", "~")) or source.endswith(".pth") or source.count("/") != 1:
            raise FileNotFoundError(f"model {source!r} does not exist (expected a .pth file, a model directory "
                                    "or a hub id owner/name)")
        path = _snapshot(source, revision)
        commit = path.name  # the snapshot folder is named after the commit hash
    elif revision is not None:
        raise ValueError(f"{source}: revision={revision!r} only applies to hub ids, not local paths")
    if path.is_dir() and not (path / "config.json").is_file():
        pths = sorted(path.glob("*.pth"))
        if len(pths) != 1:
            raise FileNotFoundError(f"{path}: no config.json, and {len(pths)} .pth files (expected exactly one)")
        path = pths[0]
    if path.is_dir():
        sd, files = read_hf_dir(path)
        directory = path
    else:
        sd, files, directory = read_pth(path), [path], None
    arch = detect_arch(sd, source)
    check_arch(arch, source)
    check_orientation(sd, ", ".join(str(f) for f in files))
    digest = sha256_files(files)
    return Checkpoint(state_dict=sd, arch=arch, source=source, revision=commit or digest, sha256=digest,
                      files=tuple(files), directory=directory)


# Which axis of a 2-D tensor is the model width C (nn.Linear weights are (out, in)). The shape
# of a model is read from these tensors, so a transposed one must be caught before that, or
# the error names whichever later tensor disagrees with the wrong shape.
_WIDTH_AXIS = {"emb.weight": 1, "head.weight": 1, "ffn.key.weight": 1, "ffn.value.weight": 0,
               "att.time_maa_w1": 0, "att.time_decay_w1": 0, "att.time_decay_w2": 1,
               "att.w1": 0, "att.w2": 1, "att.a1": 0, "att.a2": 1, "att.v1": 0, "att.v2": 1,
               "att.g1": 0, "att.g2": 1}


def check_orientation(sd: dict[str, torch.Tensor], source: str) -> None:
    """Every 2-D tensor with a known width axis has the model width C there, C from ln_out.weight.

    Raises:
        ValueError: naming the tensor, its shape and the expected one (and "transposed" when
            the two are each other's reverse).
    """
    ln_out = sd.get("ln_out.weight")
    if ln_out is None or ln_out.ndim != 1:
        raise ValueError(f"{source}: tensor 'ln_out.weight' is "
                         + ("missing" if ln_out is None else f"of shape {tuple(ln_out.shape)}")
                         + "; expected a 1-D (C,) tensor in an RWKV checkpoint")
    C = ln_out.shape[0]
    for key, t in sd.items():
        axis = _WIDTH_AXIS.get(key) if key in _WIDTH_AXIS else _WIDTH_AXIS.get(key.split(".", 2)[-1])
        if axis is None or (t.ndim == 2 and t.shape[axis] == C):
            continue
        shape = tuple(t.shape)
        if t.ndim != 2:
            raise ValueError(f"{source}: tensor {key!r} has shape {shape}; expected a 2-D tensor with C = {C} "
                             f"(the width of ln_out.weight) on axis {axis}")
        other = shape[1 - axis]
        expected = (other, C) if axis == 1 else (C, other)
        flipped = " (it looks transposed)" if shape[axis] != C and shape[1 - axis] == C else ""
        expected = shape[::-1] if flipped else expected
        raise ValueError(f"{source}: tensor {key!r} has shape {shape}, expected {expected}{flipped}; C = {C} is the "
                         "width of ln_out.weight. The file was not written for this architecture, or was converted "
                         "wrongly")


def check_state_dict(sd: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str) -> None:
    """Fail on any missing or unexpected key, wrong shape or non-finite value, naming the tensor."""
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing:
        raise ValueError(f"{source}: tensor {missing[0]!r} missing" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                         + "; the file is incomplete or not the architecture it looks like")
    if unexpected:
        raise ValueError(f"{source}: unexpected tensor {unexpected[0]!r}"
                         + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
    for key, ref in expected.items():
        if tuple(sd[key].shape) != tuple(ref.shape):
            raise ValueError(f"{source}: tensor {key!r} has shape {tuple(sd[key].shape)}, expected {tuple(ref.shape)}")
        if sd[key].is_floating_point() and not torch.isfinite(sd[key]).all():
            raise ValueError(f"{source}: tensor {key!r} holds NaN or inf values; the file may be corrupted")
