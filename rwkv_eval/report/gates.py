"""The gates section: counts, whether new cases were accepted, and every case that did not pass
with measured vs reference ± tolerance and where the reference came from."""

from __future__ import annotations

from .fmt import fmt_ci, fmt_rho, md_table
from .run import RANDOM_INIT_MARK, Run, number

NEW = "new (accepted)"


def _reference(c) -> str:
    ref, tol = number(c.extra.get("reference")), number(c.extra.get("tolerance"))
    if ref is None:  # older runs: a one-sided floor
        return "—" if c.floor is None else f"floor {fmt_rho(c.floor)}"
    return fmt_rho(ref) + ("" if tol is None else f" ± {tol:g}")


def gates_section(run: Run) -> list[str]:
    counts = {g: sum(c.gate == g for c in run.cases) for g in ("pass", "FAIL")}
    counts |= {g: sum(c.gate == g for c in run.cases) for g in sorted({c.gate for c in run.cases} - set(counts))}
    out = ["## Spearman gates", "", " · ".join(f"{g}: {n}" for g, n in counts.items()), ""]
    accepted = [c for c in run.cases if c.extra.get("accept_new_cases")]
    if accepted:
        out += [f"**New cases accepted** (`--accept-new-cases`): {counts.get(NEW, 0)} cases had no reference "
                "and were recorded as the first one; this run seeds the history.", ""]
    failing = [c for c in run.cases if c.gate not in ("pass", "no floor", NEW)]
    if failing:
        out += ["Failing cases (two-sided: a jump up fails like a drop):", ""]
        out += md_table(("gate key", "gate", "Spearman [95% CI]", "reference", "reference from", "note"),
                        [(c.gate_key or c.label, c.gate, fmt_rho(c.spearman) + fmt_ci(c), _reference(c),
                          c.extra.get("reference_source") or "—", "" if c.trained else RANDOM_INIT_MARK)
                         for c in failing])
    else:
        out += ["No failing cases.", ""]
    return out
