"""Label-free layer diagnostics (from `rwkv-eval evaluate --diagnostics --output`): per-layer
Spearman, anisotropy, effective rank and outlier share on one shared layer axis, their
correlation with Spearman across layers, and the label-free layer choices against the
validation choice and the oracle (paired Δρ with 95% CI)."""

from __future__ import annotations

import re
from pathlib import Path

from ..records import write_bytes_atomic
from .fmt import fmt_interval, fmt_num, fmt_rho, md_table
from .run import number, read_json

PANELS = (("spearman", "Spearman ρ"), ("anisotropy", "anisotropy\n(mean random cosine)"),
          ("effective_rank", "effective rank"), ("outlier_share", "outlier share\n(of squared norm)"))


def load_diagnostics(path: str | Path) -> dict:
    """The JSON `rwkv-eval evaluate --diagnostics --output FILE` writes; ValueError if it is something else."""
    data = read_json(path, "the file written by `rwkv-eval evaluate --diagnostics ... --output FILE`")
    if not isinstance(data, dict) or not isinstance(data.get("diagnostics"), list) or not data["diagnostics"]:
        raise ValueError(f"{path}: not the output of `rwkv-eval evaluate --diagnostics --output` (needs a "
                         "non-empty diagnostics list)")
    return data


def _each(files: list[dict]):
    for data in files:
        yield from data["diagnostics"]


def diagnostics_section(files: list[dict]) -> list[str]:
    out = ["## Label-free layer diagnostics", "",
           "Per layer, on the unlabelled sentences of the scored split (no gold score read): anisotropy = mean "
           "cosine of random sentence pairs; effective rank = exp(entropy of the sentence-vector covariance "
           "spectrum); outlier share = share of the squared norm in dimensions whose mean |activation| exceeds "
           "k x the median (rwkv_eval/analyses/diagnostics.py). \"corr\" = Spearman across layers of the metric "
           "with the layer's Spearman. Choices: the layer a metric ranks best, against the layer chosen on the "
           "validation split and the oracle (best on the scored split); Δρ with paired-bootstrap 95% CI.", ""]
    rows, choices = [], []
    for d in _each(files):
        corr = d["correlation_with_spearman"]
        rows.append((d["model"], d["pooling"], d.get("postprocess") or "none", str(len(d["layers"])),
                     *(fmt_num(number(corr[m]["spearman"]), "+.2f") for m in ("anisotropy", "effective_rank",
                                                                              "outlier_share"))))
        for name, c in d["choices"].items():
            cells = [d["model"], d["pooling"], name, c.get("reason") or str(c["layer"]),
                     fmt_rho(number(c["spearman"]))]
            for vs in ("vs_validation", "vs_oracle"):
                v = c.get(vs)
                cells.append("—" if not v else fmt_rho(number(v["delta_spearman"])) + fmt_interval(v["delta_ci95"]))
            choices.append(cells)
    out += md_table(("model", "pooling", "postprocess", "layers", "corr anisotropy", "corr effective rank",
                     "corr outlier share"), rows)
    out += md_table(("model", "pooling", "choice", "layer", "ρ", "Δρ vs validation [95% CI]",
                     "Δρ vs oracle [95% CI]"), choices)
    return out


def plot_name(d: dict) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{Path(str(d['model'])).name}__{d['pooling']}__{d.get('postprocess')}")
    return f"diagnostics__{slug}.png"


def make_plots(plt, files: list[dict], out_dir: Path) -> list[str]:
    """One figure per (model, pooling): the metrics stacked over one shared layer axis."""
    names = []
    for d in _each(files):
        layers = [r["layer"] for r in d["layers"]]
        xs = list(range(len(layers)))
        fig, axes = plt.subplots(len(PANELS), 1, sharex=True, figsize=(max(5.0, 0.35 * len(layers) + 3), 7.5))
        for ax, (key, label) in zip(axes, PANELS):
            pts = [(x, number(r[key])) for x, r in zip(xs, d["layers"]) if number(r[key]) is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3)
            ax.set_ylabel(label, fontsize=8)
            ax.grid(alpha=0.3)
        axes[-1].set_xticks(xs, [str(la) for la in layers], fontsize=7)
        axes[-1].set_xlabel("layer")
        axes[0].set_title(f"{Path(str(d['model'])).name}, {d['pooling']} pooling, postprocess "
                          f"{d.get('postprocess') or 'none'}", fontsize=9)
        name = plot_name(d)
        write_bytes_atomic(out_dir / name, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
        plt.close(fig)
        names.append(name)
    return names
