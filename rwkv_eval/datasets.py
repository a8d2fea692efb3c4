"""Scored sentence-pair sets: GLUE MRPC, STS Benchmark, SICK-R, SemEval STS12-16.

(Loaders to be completed: see `load_pairs`.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DATA_ENV = "RWKV_EVAL_DATA"


@dataclass(frozen=True)
class PairSet:
    """One scored pair set, immutable so a cached set cannot be edited under a benchmark.

    gold_kind is "binary" (MRPC 0/1 paraphrase labels) or "graded" (STS 0-5, SICK 1-5);
    gold_range is the scale's (min, max). revision is the sha256 of the source file(s)
    (or the hub dataset revision); source is the path or hub id it came from.
    """

    name: str  # "mrpc", "stsb", "sickr", "sts12/MSRpar", "stsb-sample", ...
    split: str  # "train", "train-1000", "validation", "test"
    sentence1: tuple[str, ...]
    sentence2: tuple[str, ...]
    gold: np.ndarray  # (N,) float64
    gold_kind: str
    gold_range: tuple[float, float]
    source: str
    revision: str
    n_skipped: int = 0  # rows dropped by a documented rule (e.g. unscored STS15/16 rows)
    note: str = ""  # how a subset was drawn, what was skipped, licence

    def __len__(self) -> int:
        return len(self.gold)

    def provenance(self) -> dict:
        return {"dataset": self.name, "split": self.split, "n_pairs": len(self), "dataset_source": self.source,
                "dataset_revision": self.revision, "n_skipped": self.n_skipped}
