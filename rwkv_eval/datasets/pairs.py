"""`PairSet`, the frozen result of every loader, and the two ways to make one from others:
`pooled` (an STS year's domains as one set) and `sample` (the one seeded subset)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .registry import SUBSET_SPLITS

MIN_SUBSET = 3  # fewer pairs have no meaningful rank correlation (2 give +-1, 1 none)


@dataclass(frozen=True)
class PairSet:
    """One scored pair set, immutable so a cached set cannot be edited under a benchmark.

    gold_kind is "binary" (MRPC 0/1 paraphrase labels) or "graded" (STS 0-5, SICK 1-5);
    gold_range is the scale's (min, max). revision is the sha256 of the source file(s)
    (or the hub dataset revision); source is the path or hub id it came from.
    """

    name: str  # "mrpc", "stsb", "sickr", "sts12/MSRpar", "stsb-sample", ...
    split: str  # "train", "train-1000", "validation", "test"; "test-50": a seeded subset (`sample`)
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

    @property
    def n_duplicate_pairs(self) -> int:
        """Rows repeating an earlier row's two sentences (either order). They are kept, as
        published, but they weigh twice in a correlation and narrow its bootstrap CI."""
        return len(self) - len({(a, b) if a <= b else (b, a) for a, b in zip(self.sentence1, self.sentence2)})

    def provenance(self) -> dict:
        """Where the pairs came from; a binary set adds `spearman_max`, the ceiling of a
        tie-free scorer's Spearman against its labels (metrics.spearman_max), so a record
        reads ρ against what its class balance allows (0.805 on MRPC validation)."""
        out = {"dataset": self.name, "split": self.split, "n_pairs": len(self), "dataset_source": self.source,
               "dataset_revision": self.revision, "n_skipped": self.n_skipped,
               "n_duplicate_pairs": self.n_duplicate_pairs}
        if self.gold_kind == "binary":
            from ..metrics import UndefinedCorrelation, spearman_max  # scipy: loaded only for a binary set's record

            try:
                out["spearman_max"] = spearman_max(self.gold)
            except UndefinedCorrelation:
                out["spearman_max"] = None  # one class only: no Spearman at all
        return out


def pooled(sets: Sequence[PairSet], name: str) -> PairSet:
    """Concatenate the domain sets of one year into one set (SentEval's "all"), e.g. "sts12/all".

    The sets must share split, gold_kind and gold_range. revision is the sha256 of the members'
    revisions joined by newlines in the given order; source lists the members' sources.
    """
    sets = list(sets)
    if not sets:
        raise ValueError(f"pooled({name!r}) got no sets; pass the list load_pairs returns for an STS year")
    for attr in ("split", "gold_kind", "gold_range"):
        values = {getattr(s, attr) for s in sets}
        if len(values) > 1:
            raise ValueError(f"pooled({name!r}): the sets differ in {attr} ({sorted(map(str, values))}); "
                             "pool only sets of one split and scale")
    revision = hashlib.sha256("\n".join(s.revision for s in sets).encode()).hexdigest()
    skipped = sum(s.n_skipped for s in sets)
    return PairSet(
        name=name, split=sets[0].split,
        sentence1=tuple(x for s in sets for x in s.sentence1),
        sentence2=tuple(x for s in sets for x in s.sentence2),
        gold=np.concatenate([s.gold for s in sets]).astype(np.float64),
        gold_kind=sets[0].gold_kind, gold_range=sets[0].gold_range,
        source="; ".join(s.source for s in sets), revision=revision, n_skipped=skipped,
        note=f"pooled pairs of {', '.join(f'{s.name} ({len(s)})' for s in sets)}; "
             "revision = sha256 of the member revisions joined by newlines"
             + (f"; {skipped} unscored rows skipped in the members" if skipped else ""))


def sample(pairs: PairSet, n: int | None, seed: int = 0) -> PairSet:
    """The one seeded subset: n pairs kept in file order, named and noted as such.

    The draw is ``numpy.random.default_rng(seed).choice(len(pairs), size=n, replace=False)``,
    sorted; the subset's split is ``f"{split}-{n}"`` (MRPC's "train-1000" is this draw with
    seed 0 on train) and its note starts with the method, then the set's own note. Every
    subset in the package (train-1000, `--subset`, `--max-pairs`, the benchmarks' smoke
    samples) is this function, so a subset named in a record can be redrawn from it.

    Edge cases, decided once:
        n None: no subset asked; `pairs` itself is returned.
        n < 3: ValueError; fewer pairs have no meaningful rank correlation.
        n >= len(pairs): every pair is kept, in a copy whose split is unchanged (it is the
            whole split, and published figures for it still apply) and whose note says that
            n were asked and only len(pairs) exist, so a too-large --subset is visible in
            the records instead of silently meaning "all".
    """
    if n is None:
        return pairs
    if n < MIN_SUBSET:
        raise ValueError(f"a subset needs at least {MIN_SUBSET} pairs for a rank correlation; got n={n} "
                         f"({pairs.name} {pairs.split}); ask for more pairs or for the whole set")
    total = len(pairs)
    tail = f"; {pairs.note}" if pairs.note else ""
    if n >= total:
        return replace(pairs, note=f"a subset of {n} pairs was asked; {pairs.split} has {total}: all of them kept"
                                   + tail)
    idx = np.sort(np.random.default_rng(seed=seed).choice(total, size=n, replace=False))
    return replace(pairs, split=f"{pairs.split}-{n}", sentence1=tuple(pairs.sentence1[i] for i in idx),
                   sentence2=tuple(pairs.sentence2[i] for i in idx), gold=pairs.gold[idx].copy(),
                   note=f"{n} of {total} {pairs.split} pairs: numpy.random.default_rng(seed={seed})"
                        f".choice({total}, size={n}, replace=False), sorted into file order" + tail)


def subset_split(pairs: PairSet, split: str) -> PairSet:
    """A named subset split of the registry (train-1000) from its base split: `sample` with the
    registered size and seed. A base split smaller than that is an error: the name promises the size."""
    _, size, seed = SUBSET_SPLITS[split]
    if len(pairs) < size:
        raise ValueError(f"{pairs.source}: {pairs.split} has {len(pairs)} pairs, fewer than the {size} of {split}; "
                         f"use the {pairs.split} split itself")
    return sample(pairs, size, seed)
