"""The Hugging Face hub copy of a registered set, pinned to the commit the hub reports now.

Needs the `datasets` and `huggingface_hub` packages and the network (tests use fake modules).
Differences from the files are in each entry's `Hub` (columns, labels, scale, note): MRPC's
hub text is tokenized ("doesn 't") and its test split has no labels (only train/validation
are offered); sentence-transformers/stsb scores are 0-1 and are multiplied by 5;
mteb/sts1x-sts carry no domain column, so a set with domains comes back as a one-element
list holding the pooled set "sts1x/all" (per-domain scores need the files). Rows with an
empty score are skipped and counted for sets whose files allow unscored rows (STS15/16).
"""

from __future__ import annotations

import numpy as np

from . import registry
from .pairs import PairSet, subset_split
from .parsers import DatasetFormatError, clip, score, sentence
from .registry import DatasetSpec


def load_hub(spec: DatasetSpec, split: str, tried: list[str]) -> PairSet | list[PairSet] | None:
    """Read the hub copy of `spec`; record a miss in `tried` and return None."""
    hub = spec.hub
    base = registry.base_split(split)
    if base not in hub.splits:
        tried.append(f"hub {hub.id}: has no gold-scored {base!r} split (only {', '.join(hub.splits)})")
        return None
    try:
        import datasets
        import huggingface_hub
    except ImportError as e:
        tried.append(f"hub {hub.id}: the `datasets` package is not installed ({e}); pip install 'rwkv-eval[hub]'")
        return None
    try:
        sha = huggingface_hub.HfApi().dataset_info(hub.id).sha
        args = (hub.id, hub.config) if hub.config else (hub.id,)
        ds = datasets.load_dataset(*args, split=base, revision=sha)
    except Exception as e:  # offline, no such repo, auth: reported with the other tries, not hidden
        tried.append(f"hub {hub.id}: {type(e).__name__}: {clip(str(e), 200)}")
        return None
    source = f"{hub.id}{f'[{hub.config}]' if hub.config else ''}@{sha}"
    where = f"{source} split {base}"
    missing = [c for c in hub.columns if c not in ds.column_names]
    if missing:
        raise DatasetFormatError(f"{where}: expected columns {list(hub.columns)}, missing {missing} "
                                 f"(has {list(ds.column_names)})")
    a, b, g = (list(ds[c]) for c in hub.columns)
    lo, hi = spec.gold_range[0] / hub.scale, spec.gold_range[1] / hub.scale
    s1, s2, gold, skipped = [], [], [], 0
    for i, (x, y, z) in enumerate(zip(a, b, g), start=1):
        row = f"{where}, row {i}"
        if hub.labels is not None:
            if z not in hub.labels:
                raise DatasetFormatError(f"{row}: label {z!r}; expected {' or '.join(map(str, hub.labels))}")
            z = hub.labels[z]
        elif z is None or z == "":
            if not hub.unscored_ok:
                raise DatasetFormatError(f"{row}: empty score; expected a number in [{lo:g}, {hi:g}]")
            skipped += 1
            continue
        gold.append(score(z, row, lo, hi))
        s1.append(sentence(x, row, "sentence1"))
        s2.append(sentence(y, row, "sentence2"))
    notes = [hub.note] if hub.note else []
    if skipped:
        notes.append(f"{skipped} rows with an empty score skipped (not gold-annotated)")
    if spec.domains:
        notes.append("the hub copy has no domain column: one pooled set, not per-domain sets")
    pairs = PairSet(name=f"{spec.name}/all" if spec.domains else spec.name, split=base, sentence1=tuple(s1),
                    sentence2=tuple(s2), gold=np.asarray(gold, dtype=np.float64) * hub.scale,
                    gold_kind=spec.gold_kind, gold_range=spec.gold_range, source=source, revision=sha,
                    n_skipped=skipped, note="; ".join(notes))
    if base != split:
        return subset_split(pairs, split)
    return [pairs] if spec.domains else pairs
