"""The PNG plots: Spearman vs layer, cost vs layer, history across runs (matplotlib optional)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

from ..encoder import layer_id as layer_label
from ..records import write_bytes_atomic
from .cost import cost_rows
from .fmt import (
    best_case,
    datasets_of,
    layer_sort,
    models_of,
    pooling_sort,
    safe_name,
    time_key,
)
from .run import RANDOM_INIT_MARK, Run

LINESTYLES = ("-", "--", ":", "-.")



def _layer_x(layers: Sequence[Any]) -> dict[Any, float]:
    """x position per layer: blocks at their index, 'emb' one step left of the first block."""
    ints = [la for la in layers if isinstance(la, int) and not isinstance(la, bool)]
    lo = min(ints) if ints else 0
    pos, extra = {}, 0
    for la in sorted(layers, key=layer_sort):
        if la in ints:
            pos[la] = float(la)
        elif str(la) == "emb":
            pos[la] = float(lo - 1)
        else:
            extra += 1
            pos[la] = float(max(ints, default=0) + extra)
    return pos


def _layer_ticks(ax, x: dict[Any, float]) -> None:
    """Short tick labels ("emb", "5"), thinned to at most ~13 so they never overlap."""
    layers = sorted(x, key=layer_sort)
    every = max(1, math.ceil(len(layers) / 13))
    shown = [la for i, la in enumerate(layers) if i % every == 0 or la == layers[-1]]
    if len(shown) > 1 and shown[-1] == layers[-1] and (len(layers) - 1) % every:
        shown.pop(-2)  # the last layer is always labelled; drop its crowded neighbour
    ax.set_xticks([x[la] for la in shown], [str(la) for la in shown])
    ax.set_xlabel("layer k (residual stream after block k; emb = embedding)")


def _seconds_axis(ax) -> None:
    """Tick labels like "30 µs", "2 ms" rather than an offset exponent."""
    from matplotlib.ticker import EngFormatter

    ax.yaxis.set_major_formatter(EngFormatter(unit="s"))
    ax.yaxis.set_minor_formatter(EngFormatter(unit="s") if ax.get_yscale() == "linear" else "")


def label_points(ax, points: Sequence[tuple[float, float]], labels: Sequence[str], fontsize: float = 7) -> None:
    """Write labels[i] next to points[i] with no label over another label or over a point.

    Method labels placed at a fixed offset pile up wherever points crowd (the layers of a
    small model cost nearly the same), so each label, nearest-to-the-left first, takes the
    first free spot on rings of growing radius around its point, inside the axes; one moved
    off its point gets a thin leader line. A point keeps clear a square of 7 points around
    it, room for the large markers that flag a point (final layer, best). Call it after
    everything else is drawn: it fixes the axis limits."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    scale = fig.dpi / 72  # offsets are in points, boxes in pixels
    dots = [ax.transData.transform(p) for p in points]
    taken = [Bbox.from_extents(x - 7 * scale, y - 7 * scale, x + 7 * scale, y + 7 * scale) for x, y in dots]
    spots = [(r * math.cos(a), r * math.sin(a)) for r in (8, 14, 22, 32, 44, 58)
             for a in (math.radians(d) for d in (30, -30, 150, -150, 90, -90, 0, 180, 60, -60, 120, -120))]
    for i in sorted(range(len(points)), key=lambda i: (dots[i][0], dots[i][1])):
        best = None
        for dx, dy in spots:
            text = ax.annotate(labels[i], points[i], xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                               ha="left" if dx > 1 else "right" if dx < -1 else "center",
                               va="bottom" if dy > 1 else "top" if dy < -1 else "center")
            box = text.get_window_extent(renderer).padded(1.5 * scale)
            clash = sum(box.overlaps(b) for b in taken) + 10 * (not frame.contains(box.x0, box.y0)
                                                               or not frame.contains(box.x1, box.y1))
            if best is None or clash < best[0]:
                if best is not None:
                    best[1].remove()
                best = (clash, text, box, (dx, dy))
            else:
                text.remove()
            if clash == 0:
                break
        _, text, box, (dx, dy) = best
        taken.append(box)
        if math.hypot(dx, dy) > 6:
            ax.annotate("", points[i], xytext=(dx, dy), textcoords="offset points",
                        arrowprops=dict(arrowstyle="-", lw=0.5, color="0.5", shrinkA=0, shrinkB=2))


def _save(fig, path: Path) -> None:
    write_bytes_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))


def _plot_spearman(plt, run: Run, out_dir: Path) -> list[str]:
    files = []
    for d, s in datasets_of(run):
        cases = [c for c in run.cases if (c.dataset, c.split) == (d, s)]
        models = models_of(cases)
        n_layers = {m: len({str(c.layer) for c in cases if c.model_key == m}) for m in models}
        refs = [m for m in models if n_layers[m] == 1]
        for m in (m for m in models if n_layers[m] > 1):
            mc = [c for c in cases if c.model_key == m]
            layers = sorted({c.layer for c in mc}, key=layer_sort)
            x = _layer_x(layers)
            poolings = sorted({c.pooling for c in mc}, key=pooling_sort)
            step = min((b - a for a, b in zip(sorted(x.values()), sorted(x.values())[1:])), default=1.0)
            fig, ax = plt.subplots(figsize=(max(8.0, 3 + 0.3 * len(layers)), 4.6))
            for i, p in enumerate(poolings):
                pc = sorted((c for c in mc if c.pooling == p and c.spearman is not None),
                            key=lambda c: layer_sort(c.layer))
                if not pc:
                    continue
                dodge = (i - (len(poolings) - 1) / 2) * 0.06 * step  # keep error bars apart
                xs = [x[c.layer] + dodge for c in pc]
                ys = [c.spearman for c in pc]
                err = [[c.spearman - (c.ci_low if c.ci_low is not None else c.spearman) for c in pc],
                       [(c.ci_high if c.ci_high is not None else c.spearman) - c.spearman for c in pc]]
                ax.errorbar(xs, ys, yerr=err, marker="o", ms=4, capsize=3, lw=1.5, label=p)  # the title names m
            styles = ["--", ":", "-."]
            bands = False  # the band's meaning goes into the legend once
            for j, r in enumerate(refs):
                ref_cases = sorted((c for c in cases if c.model_key == r), key=lambda c: pooling_sort(c.pooling))
                for k, c in enumerate(ref_cases):
                    if c.spearman is None:
                        continue
                    color = f"C{len(poolings) + j * 2 + k}"
                    ax.axhline(c.spearman, color=color, ls=styles[(j + k) % 3], lw=1.3,
                               label=f"{r} {c.pooling} ({layer_label(c.layer)})" + ("" if c.trained else " random-init"))
                    if c.ci_low is not None and c.ci_high is not None:
                        ax.axhspan(c.ci_low, c.ci_high, color=color, alpha=0.10, lw=0)
                        bands = True
            undefined = [c for c in mc if c.spearman is None]
            _layer_ticks(ax, x)
            ax.set_ylabel("Spearman ρ (95% CI)")
            title = f"{m} on {d} / {s}"
            if not mc[0].trained:
                title += f"\n{RANDOM_INIT_MARK}"
            if undefined:
                which = ", ".join(f"{layer_label(c.layer)}/{c.pooling}" for c in undefined)
                title += f"\nundefined (not drawn): {which}"
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
            handles, labels = ax.get_legend_handles_labels()
            if bands:
                from matplotlib.patches import Patch

                handles.append(Patch(color="0.5", alpha=0.2, lw=0))
                labels.append("band: a reference line's 95% CI")
            ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
            name = f"spearman__{safe_name(m)}__{safe_name(f'{d}-{s}')}.png"
            _save(fig, out_dir / name)
            plt.close(fig)
            files.append(name)
    return files


def _plot_cost(plt, run: Run, out_dir: Path) -> list[str]:
    rows = cost_rows(run)
    if not rows:
        return []
    fig, (ax_t, ax_m) = plt.subplots(2, 1, figsize=(8, 6.4), sharex=True)
    x = _layer_x(sorted({r[1] for r in rows}, key=layer_sort))
    trained = {c.model_key: c.trained for c in run.cases}
    for i, m in enumerate(dict.fromkeys(r[0] for r in rows)):
        mr = [r for r in rows if r[0] == m]
        label = m + ("" if trained[m] else " (random-init)")
        t = [(x[r[1]], r[2]) for r in mr if r[2] is not None]
        p = [(x[r[1]], r[4]) for r in mr if r[4] is not None]
        # models of one architecture cost the same: distinct dashes and hollow markers keep
        # a line drawn over another one visible
        style = dict(marker="os^Dv<>"[i % 7], ms=7 - i % 3, lw=1.5, color=f"C{i % 10}", ls=LINESTYLES[i % 4],
                     mfc="none" if i % 2 else f"C{i % 10}", label=label)
        if t:
            ax_t.plot(*zip(*t), **style)
        if p:
            ax_m.plot(*zip(*p), **style)
    times = [r[2] for r in rows if r[2]]
    if times and max(times) / min(times) > 20:
        ax_t.set_yscale("log")
    ax_t.set_ylabel("time per pair\n(median over cases)")
    _seconds_axis(ax_t)
    ax_m.set_ylabel("peak memory MB\n(method: summary.md)")
    _layer_ticks(ax_m, x)
    devices = sorted({f"{c.extra.get('device', '?')} {c.extra.get('dtype', '')}".strip() for c in run.cases})
    ax_t.set_title(f"cost vs layer — {', '.join(devices)}", fontsize=10)
    for ax in (ax_t, ax_m):
        ax.grid(alpha=0.3)
    ax_t.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    _save(fig, out_dir / "cost_vs_layer.png")
    plt.close(fig)
    return ["cost_vs_layer.png"]


def _plot_history(plt, runs: Sequence[Run], out_dir: Path) -> list[str]:
    if not any(r.cases for r in runs):
        return []
    fig, (ax_r, ax_t) = plt.subplots(2, 1, figsize=(9, 6.4), sharex=True)
    xs = list(range(len(runs)))
    models = sorted({c.model_key for r in runs for c in r.cases})
    color = {m: f"C{i % 10}" for i, m in enumerate(models)}  # one color per model in both panels
    datasets = sorted({(c.dataset, c.split) for r in runs for c in r.cases})
    dash = {d: (LINESTYLES[i % 4], "os^Dv<>"[i % 7]) for i, d in enumerate(datasets)}  # one dash per dataset
    keys = sorted({(c.model_key, c.dataset, c.split) for r in runs for c in r.cases if c.trained})
    for m, d, s in keys:
        ys = []
        for r in runs:
            b = best_case([c for c in r.cases if (c.model_key, c.dataset, c.split) == (m, d, s)])
            ys.append(math.nan if b is None else b.spearman)
        ls, marker = dash[(d, s)]
        ax_r.plot(xs, ys, marker=marker, ms=5, color=color[m], ls=ls, label=f"{m} {d}-{s}")
    for m in models:
        ys = []
        for r in runs:
            spp = [c.seconds_per_pair for c in r.cases if c.model_key == m and c.seconds_per_pair is not None]
            ys.append(statistics.median(spp) if spp else math.nan)
        untrained = any(not c.trained for r in runs for c in r.cases if c.model_key == m)
        ax_t.plot(xs, ys, marker="s", ms=7 if untrained else 5, color=color[m], ls="--" if untrained else "-",
                  zorder=3 if untrained else 2,  # dashed and on top: it often shares its cost with a trained twin
                  mfc="none" if untrained else color[m], label=m + (" (random-init)" if untrained else ""))
    times = [c.seconds_per_pair for r in runs for c in r.cases if c.seconds_per_pair]
    if times and max(times) / min(times) > 20:
        ax_t.set_yscale("log")
    ax_r.set_ylabel("best Spearman ρ\n(trained models)")
    ax_r.set_title("metric history, oldest run first", fontsize=10)
    ax_t.set_ylabel("time per pair\n(median over cases)")
    _seconds_axis(ax_t)
    ax_t.set_xticks(xs, [r.label.replace(" ", "\n", 1) for r in runs], fontsize=8,
                    rotation=30 if len(runs) > 6 else 0, ha="right" if len(runs) > 6 else "center")
    if len(runs) == 1:
        ax_t.set_xlim(-0.5, 0.5)
    for ax in (ax_r, ax_t):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    _save(fig, out_dir / "history.png")
    plt.close(fig)
    return ["history.png"]


def make_plots(run: Run, older: Sequence[Run], out_dir: Path,
               extra: Sequence[Callable[[Any, Path], list[str]]] = ()) -> tuple[list[str], str | None]:
    """Write the PNGs; returns (file names, a note when plots could not be made).

    extra: plotters of further sections, each called as fn(pyplot, out_dir) -> file names."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "Plots skipped: matplotlib is not installed (`pip install 'rwkv-eval[plots]'`)."
    with plt.rc_context({"figure.max_open_warning": 0}):
        files = _plot_spearman(plt, run, out_dir) + _plot_cost(plt, run, out_dir)
        files += _plot_history(plt, sorted([run, *older], key=time_key), out_dir)
        for plot in extra:
            files += plot(plt, out_dir)
    return files, None
