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
