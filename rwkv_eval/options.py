"""The run options both faces take — `rwkv-eval` (cli.py) and the pytest plugin (suite/plugin.py),
and the profile files (suite/profiles) — each checked by one function here.

Why one module: the two faces used to check `--layers`, `--pooling` and `--dtype` each
their own way, and drifted (`rwkv-eval --layers 0-23` was refused while the suite took it).
Here a value means the same and fails with the same sentence whichever face reads it;
`where` names the option or file key that gave it ("--layers", "mine.toml: models[0].layers").
The device is `measure.resolve_device`. Each check runs before any model loads: the
layer *syntax* here, the range against the model later (encoder.parse_layers).

Importing this module loads no torch, so `rwkv-eval --help` stays fast; a check imports
what it needs when it runs.
"""

from __future__ import annotations

from typing import Sequence

# --dtype values -> the torch dtype name a run records
DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
          "bfloat16": "bfloat16", "bf16": "bfloat16"}


def check_layers(spec: str | Sequence | None, where: str = "--layers") -> None:
    """The form of a layer spec (encoder.layer_items: ints, a-b, all, emb, final, 50% / 0.5);
    None means every layer."""
    from .encoder import layer_items

    if spec is None:
        return
    try:
        layer_items(spec)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def check_poolings(spec: str | Sequence[str], where: str = "--pooling") -> tuple[str, ...]:
    """'mean,max' / ['mean', 'max'] / 'all' -> the poolings, in order, each once (pooling.check_poolings)."""
    from .pooling import POOLINGS, check_poolings as known

    if spec == "all":
        return POOLINGS
    items = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else spec
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(p, str) for p in items):
        raise ValueError(f"{where}: expected 'all' or a list of poolings, got {spec!r}")
    try:
        return known(tuple(items))
    except ValueError as e:
        raise ValueError(f"{where}: {e} or 'all'") from None


def check_dtype(value: str, where: str = "--dtype") -> str:
    """A dtype name or alias (fp16, bf16, ...) -> the torch dtype name."""
    if value not in DTYPES:
        raise ValueError(f"{where} {value}: not a dtype; choose from {', '.join(DTYPES)}")
    return DTYPES[value]


# ---------------------------------------------------------------- argparse types, shared by every command

SEED_MAX = 2**32 - 1  # numpy's and torch's seeds both take 0..2**32-1 everywhere


def whole_number(lo: int | None = None, hi: int | None = None, meaning: str = ""):
    """An argparse `type=`: ASCII digits with an optional sign, within [lo, hi]; the message says
    which rule the text broke. int() alone takes "³"-free text only by luck ("invalid literal"),
    and "0" for a count would mean "all" where `if n:` tests it."""
    import argparse
    import re

    bounds = (f">= {lo}" if hi is None else f"in {lo}..{hi}") if lo is not None else f"<= {hi}"

    def parse(text: str) -> int:
        t = text.strip()
        if not re.fullmatch(r"[+-]?\d+", t, re.ASCII):
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; expected one {bounds}{meaning}")
        n = int(t)
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(f"{text} is out of range; expected a whole number {bounds}{meaning}")
        return n

    parse.__name__ = "whole number"
    return parse


def real_number(lo: float | None = None, hi: float | None = None, meaning: str = ""):
    """An argparse `type=`: a finite decimal (datasets.parsers.parse_number: no inf, nan or 0_5)
    within [lo, hi]."""
    import argparse

    from .datasets.parsers import parse_number

    bounds = (f" >= {lo:g}" if hi is None else f" in [{lo:g}, {hi:g}]") if lo is not None else ""

    def parse(text: str) -> float:
        x = parse_number(text)
        if x is None or (lo is not None and x < lo) or (hi is not None and x > hi):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number{bounds}{meaning}")
        return x

    parse.__name__ = "number"
    return parse


def number_list(text: str, option: str, example: str = "0.99,0.995") -> list[float]:
    """'0.99,0.995' -> [0.99, 0.995] (datasets.parsers.parse_number each); an empty list or an
    empty item is an error: an option given means at least one value."""
    from .datasets.parsers import parse_number

    items = [x.strip() for x in text.split(",")]
    values = [parse_number(x) for x in items]
    if None in values:
        bad = items[values.index(None)]
        why = "an empty list" if not any(items) else "an empty item" if not bad else f"{bad!r} is not one"
        raise ValueError(f"{option} takes comma-separated finite numbers, e.g. {example}; got {text!r} ({why})")
    return values


def once_action():
    """The argparse action of a single-valued option: like "store", but given twice it is an
    error (`--pooling mean --pooling max` would silently keep max)."""
    import argparse
    import weakref

    class Once(argparse.Action):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.given: dict = {}  # id(namespace) -> (weak reference to it, the value given first)

        def __call__(self, parser, namespace, values, option_string=None):
            ref, first = self.given.get(id(namespace), (None, None))
            if ref is not None and ref() is namespace:
                parser.error(f"{option_string} given twice ({first!r}, then {values!r}); it takes one value: "
                             "give it once")
            self.given[id(namespace)] = (weakref.ref(namespace), values)
            setattr(namespace, self.dest, values)

    return Once
