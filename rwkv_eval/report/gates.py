"""The gates section: counts and the failing cases."""

from __future__ import annotations

from .fmt import fmt_ci, fmt_rho, md_table
from .run import RANDOM_INIT_MARK, Run


def gates_section(run: Run) -> list[str]:
    counts = {g: sum(c.gate == g for c in run.cases) for g in ("pass", "FAIL", "no floor")}
    counts |= {g: sum(c.gate == g for c in run.cases) for g in {c.gate for c in run.cases} - set(counts)}
    out = ["## Spearman gates", "", " · ".join(f"{g}: {n}" for g, n in counts.items()), ""]
    failing = [c for c in run.cases if c.gate not in ("pass", "no floor")]
    if failing:
        out += ["Failing cases:", ""]
        out += md_table(("gate key", "gate", "Spearman [95% CI]", "floor", "note"),
                      [(c.gate_key or c.label, c.gate, fmt_rho(c.spearman) + fmt_ci(c), fmt_rho(c.floor),
                        "" if c.trained else RANDOM_INIT_MARK) for c in failing])
    else:
        out += ["No failing cases.", ""]
    return out
