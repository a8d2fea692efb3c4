"""`load_pairs`: one split of a registered set, from a data root, the package or the hub.

Where the data is looked for: a `data_dir` argument is the only place tried (a path the user
gave that does not hold the set is an error, never a silent switch to other data); without
one, `default_root` (the data root the caller read from $RWKV_EVAL_DATA: only `cli.py` and
the pytest plugin read environment variables; it must be a directory when given), then the
Hugging Face hub; `DatasetNotFound` lists every place it tried. A set shipped inside the
package (stsb-sample) has no data root: giving one is an error.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from . import registry
from .pairs import PairSet, subset_split
from .parsers import DatasetFormatError, first_row, rows
from .registry import DatasetSpec, Layout

DATA_ENV = "RWKV_EVAL_DATA"  # named in messages: the variable the faces read to pass `default_root`


class DatasetNotFound(FileNotFoundError):
    """No copy of the requested set in any place tried; the message lists them and how to get one."""


def load_pairs(name: str, split: str, data_dir: str | Path | None = None, *, default_root: str | Path | None = None,
               allow_hub: bool = True) -> PairSet | list[PairSet]:
    """Load one split of a registered pair set.

    Args:
        name: a registered name (`registry.names()`): "mrpc", "stsb", "sickr", "sts12" ...
            "sts16", "rte", "qqp", "stsb-sample".
        split: one of the entry's splits. "validation" is MRPC/STS-B dev.tsv / sts-dev.csv and
            SICK's trial file. "train-1000" is ``sample(train, 1000, seed=0)``: numpy
            ``default_rng(seed=0).choice(n_train, size=1000, replace=False)``, sorted back into
            file order (the method is repeated in the set's `note`).
        data_dir: a data root laid out as the entry's layouts say (``mrpc/``, ``stsb/`` or
            GLUE's ``STS-B/``, ``sick/``, ``sts12-16/YEAR/``, ...), or the set's own folder
            (e.g. ``.../mrpc``, ``.../sts12-16/2012``). When given, nothing else is tried.
        default_root: without data_dir, the data root to try first: the value of
            $RWKV_EVAL_DATA, which the caller (the CLI, the pytest plugin) reads and passes.
        allow_hub: without data_dir, if default_root has no copy, read the Hugging Face hub
            copy (needs the `datasets` package and the network).

    Returns:
        A PairSet with gold of shape (N,) float64; for a set with domains (sts12 ... sts16) a
        list of PairSets, one per domain, named "sts12/MSRpar" etc. (`pooled` makes the
        "sts12/all" set). STS15/16 rows with an empty score (not gold-annotated) are dropped
        and counted in n_skipped.

    Raises:
        ValueError: unknown name or split; a data root given for a set shipped in the package.
        DatasetNotFound: no copy in data_dir (or, without it, in default_root or the hub);
            a data_dir or default_root that is not a directory. Lists every try, on one line.
        DatasetFormatError: a malformed row (file, 1-based line, what was expected).

    Example:
        >>> sets = load_pairs("sts12", "test", "/data")           # doctest: +SKIP
        >>> [s.name for s in sets][:2], len(pooled(sets, "sts12/all"))  # doctest: +SKIP
        (['sts12/MSRpar', 'sts12/MSRvid'], 3108)
    """
    spec = registry.check_split(name, split)
    if spec.shipped:
        if data_dir is not None:
            raise ValueError(f"data_dir {data_dir} does not apply to {name} (it ships inside the package); drop "
                             "--data-dir (data_dir=), or name a dataset of the data root")
        return _shipped(spec, split)
    tried: list[str] = []
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise DatasetNotFound(f"data_dir {root}: {'not a directory' if root.exists() else 'does not exist'}; "
                                  f"give the data root that holds {name} (nothing else is tried when a data "
                                  f"directory is given: not ${DATA_ENV}, not the hub)")
        found = _load_local(spec, split, root, tried, "data_dir")
        if found is not None:
            return found
        raise DatasetNotFound(f"{name} split {split!r} not found in data_dir {root}. Tried: " + "; ".join(tried)
                              + f". To get it: {spec.how_to_get}; then pass --data-dir ROOT (data_dir=ROOT). "
                              f"${DATA_ENV} and the hub are not tried when a data directory is given")
    tried.append("data_dir: not given")
    if default_root:
        env = Path(default_root)
        if not env.is_dir():
            raise DatasetNotFound(f"${DATA_ENV}={env} is {'not a directory' if env.exists() else 'missing'}; "
                                  f"point it at the data root that holds {name}, or unset it")
        found = _load_local(spec, split, env, tried, f"${DATA_ENV}")
        if found is not None:
            return found
    else:
        tried.append(f"${DATA_ENV}: not set")
    if allow_hub and spec.hub is not None:
        from .hub import load_hub

        found = load_hub(spec, split, tried)
        if found is not None:
            return found
    else:
        tried.append("hub: not tried (allow_hub=False)" if spec.hub else f"hub: {name} has no hub copy")
    hub = (f" Or install the hub extra (pip install 'rwkv-eval[hub]') to read {spec.hub.label} from the Hugging "
           "Face hub." if spec.hub else "")
    raise DatasetNotFound(
        f"{name} split {split!r} not found. Tried: " + "; ".join(tried) + ". "
        f"To get it: {spec.how_to_get}; then pass --data-dir ROOT (data_dir=ROOT) or set {DATA_ENV}=ROOT.{hub}")


def load_sample() -> PairSet:
    """The bundled 300-pair STS Benchmark test sample: the no-download default.

    How it was made (nothing changed but the selection; see data/stsb_sample.NOTICE.md):
    from the original ``sts-test.csv`` (stsbenchmark.tar.gz) take every row whose source-file
    column (2nd) is ``images`` or ``track5.en-en`` — the only genres whose text and scores are
    CC BY-SA — i.e. 375 rows, all with exactly 7 columns. Order those rows by score (a stable
    sort, ties in file order) and keep the rows at ranks ``round(i * 374 / 299)`` for
    i = 0..299 (``numpy.linspace(0, 374, 300).round()``): a systematic sample stratified over
    the score distribution, keeping the lowest and highest score. The rows are written back in
    file order, unchanged, LF-terminated. tests/test_datasets.py re-derives the file this way
    and checks it byte for byte.

    Returns:
        PairSet "stsb-sample", split "test", gold in [0, 5] of shape (300,) float64.
    """
    return load_pairs("stsb-sample", "test")


# ---------------------------------------------------------------- files


def _shipped(spec: DatasetSpec, split: str) -> PairSet:
    [layout] = spec.files[split]
    ref = resources.files("rwkv_eval") / "data" / layout.path
    return _build(spec, split, ref.read_bytes(), str(ref), layout)


def _load_local(spec: DatasetSpec, split: str, root: Path, tried: list[str],
                label: str) -> PairSet | list[PairSet] | None:
    """Try the layouts of `spec` under `root`; record each miss in `tried`; None if none matched."""
    base = registry.base_split(split)
    for layout in spec.files[base]:
        if "{domain}" in layout.path:
            found = _load_domains(spec, split, root, layout, tried, label)
            if found is not None:
                return found
            continue
        path = root / layout.path
        if not path.exists():
            tried.append(f"{label}: {path} ({'broken symbolic link' if path.is_symlink() else 'missing'})")
            continue
        if not path.is_file():
            raise DatasetFormatError(f"{path} is a directory (or another non-file); expected the {spec.name} "
                                     "data file")
        if layout.requires is not None and _first_line(path)[:len(layout.requires)] != list(layout.requires):
            # A bare train.tsv may belong to another GLUE task: only take it if the header fits.
            tried.append(f"{label}: {path} (header is not {spec.name}'s: {' '.join(layout.requires)})")
            continue
        pairs = _build(spec, base, _read(path), str(path), layout)
        return pairs if base == split else subset_split(pairs, split)
    return None


def _load_domains(spec: DatasetSpec, split: str, root: Path, layout: Layout, tried: list[str],
                  label: str) -> list[PairSet] | None:
    folder_rel, pattern = layout.path.rsplit("/", 1) if "/" in layout.path else ("", layout.path)
    folder = root / folder_rel
    missing = [d for d in spec.domains if not (folder / pattern.format(domain=d)).is_file()]
    if missing:
        tried.append(f"{label}: {folder} (missing {', '.join(pattern.format(domain=d) for d in missing)})")
        return None
    # Extra files of the pattern (e.g. 2013 SMT from the LDC) are loaded too, under their own names.
    head, tail = pattern.split("{domain}")
    extra = sorted(p.name[len(head):len(p.name) - len(tail)] for p in folder.glob(f"{head}*{tail}"))
    sets = []
    for domain in (*spec.domains, *(e for e in extra if e not in spec.domains)):
        path = folder / pattern.format(domain=domain)
        pairs = _build(spec, split, _read(path), str(path), layout)
        sets.append(replace(pairs, name=f"{spec.name}/{domain}"))
    return sets


def _first_line(path: Path) -> list[str]:
    with path.open("rb") as f:
        return first_row(f.readline())


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DatasetFormatError(f"{path}: cannot read it ({e.strerror or type(e).__name__}); check its "
                                 "permissions") from e


def _build(spec: DatasetSpec, split: str, raw: bytes, where: str, layout: Layout) -> PairSet:
    parsed = layout.parser(rows(raw, where), where, spec.gold_range)
    notes = [spec.note] if spec.note else []
    if parsed.n_skipped:
        notes.append(f"{parsed.n_skipped} rows with an empty score skipped: not gold-annotated, not part of the "
                     "SemEval evaluation")
    return PairSet(name=spec.name, split=split, sentence1=parsed.sentence1, sentence2=parsed.sentence2,
                   gold=np.asarray(parsed.gold, dtype=np.float64), gold_kind=spec.gold_kind,
                   gold_range=spec.gold_range, source=where, revision=hashlib.sha256(raw).hexdigest(),
                   n_skipped=parsed.n_skipped, note="; ".join(notes))
