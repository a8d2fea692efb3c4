"""Formatting of numbers and tables, and the grouping every section shares (models, datasets, best case)."""

from __future__ import annotations

import re
from typing import Any, Sequence

from .run import Case, Run, number

# pooling.POOLINGS' order (not imported: that module pulls in torch); unknown ones go last
POOLING_ORDER = ("mean", "max", "last", "first_last", "weighted_mean")



def layer_sort(layer: Any) -> tuple:
    """'emb' first, then blocks by depth, then anything else by name."""
    if isinstance(layer, int) and not isinstance(layer, bool):
        return (1, layer, "")
    return (0, 0, "") if str(layer) == "emb" else (2, 0, str(layer))




def fmt_rho(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.4f}"


def fmt_interval(ci: Any) -> str:
    """" [lo, hi]" of a two-number list as records store CIs; "" when it is missing or undefined."""
    if not isinstance(ci, (list, tuple)) or len(ci) != 2 or number(ci[0]) is None or number(ci[1]) is None:
        return ""
    return f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def fmt_ci(c: Case) -> str:
    return fmt_interval((c.ci_low, c.ci_high))


def fmt_published(published: Any, label: str = "published") -> str:
    """" (published 0.5904)" for a record's published figure (compare.published), else ""."""
    return f" ({label} {fmt_rho(number(published.get('spearman')))})" if isinstance(published, dict) else ""


def fmt_num(x: float | None, spec: str = ".4g") -> str:
    return "—" if x is None else format(x, spec)


def fmt_seconds(x: float | None) -> str:
    if x is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x * 1e9:.3g} ns"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
    return out + [""]


def safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "x"


def default_name(run: Run) -> str:
    t = run.time
    stamp = f"{t:%Y%m%dT%H%M%S}" if t else "run"
    return f"{stamp}-{safe_name(run.commit[:7])}"


def pooling_sort(p: str) -> tuple:
    return (POOLING_ORDER.index(p), "") if p in POOLING_ORDER else (len(POOLING_ORDER), p)


def datasets_of(run: Run) -> list[tuple[str, str]]:
    return sorted({(c.dataset, c.split) for c in run.cases})


def models_of(cases: Sequence[Case]) -> list[str]:
    """Multi-layer (studied) models first, then single-layer references like GloVe."""
    layers: dict[str, set] = {}
    for c in cases:
        layers.setdefault(c.model_key, set()).add(str(c.layer))
    return sorted(layers, key=lambda m: (len(layers[m]) < 2, m))


def best_case(cases: Sequence[Case]) -> Case | None:
    defined = [c for c in cases if c.spearman is not None]
    return max(defined, key=lambda c: c.spearman) if defined else None


def match(new: Run, old: Run) -> list[tuple[Case, Case | None]]:
    """Pair each case of `new` with the case of `old` of the same gate_key, else of the
    same (model_key, dataset, split, layer, pooling)."""
    by_gate = {c.gate_key: c for c in old.cases if c.gate_key}
    by_key = {c.match_key: c for c in old.cases}
    return [(c, by_gate.get(c.gate_key) or by_key.get(c.match_key)) for c in new.cases]


def time_key(r: Run) -> tuple:
    t = r.time
    return (t is None, t.timestamp() if t else 0.0, r.source)
