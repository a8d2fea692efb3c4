"""Scored sentence-pair sets: GLUE MRPC, RTE, QQP, STS Benchmark, SICK-R, SemEval STS12-16.

    registry.py   one frozen DatasetSpec per set (files, parser, splits, gold range, hub id,
                  how to get it): the only list of sets; the CLI, profiles and README derive from it
    parsers.py    bytes -> rows -> sentences and gold, one parser per layout; the UTF-8/NUL check
    pairs.py      PairSet (frozen), pooled (an STS year's domains), sample (the one seeded subset)
    load.py       load_pairs: data_dir, else the caller's default root ($RWKV_EVAL_DATA), else the hub
    hub.py        the Hugging Face hub copy, pinned to a commit

Every loader returns a frozen `PairSet`: sentences, gold scores, the gold scale, and where
the data came from (file path and sha256, or hub id and commit).

The registry and the parsers are imported with the package; PairSet and the loaders (numpy)
on first use: `rwkv-eval --help` reads the registry for its choices and must stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .parsers import DatasetFormatError, Table, decode_text
from .registry import STS_DOMAINS, DatasetSpec, Hub, Layout, get, names, register, unregister

if TYPE_CHECKING:
    from .load import DATA_ENV, DatasetNotFound, load_pairs, load_sample
    from .pairs import PairSet, pooled, sample

_LAZY = {"PairSet": "pairs", "pooled": "pairs", "sample": "pairs",
         "DATA_ENV": "load", "DatasetNotFound": "load", "load_pairs": "load", "load_sample": "load"}

__all__ = ["DatasetFormatError", "Table", "decode_text", "STS_DOMAINS", "DatasetSpec", "Hub", "Layout", "get",
           "names", "register", "unregister", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
