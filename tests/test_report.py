"""rwkv_eval.report on a synthetic pytest-benchmark JSON: summary numbers, deltas,
"undefined", the random-init marker, gates, PNGs, the github-action-benchmark export and
the CLI.

The synthetic run: rwkv6-tiny-1m (trained) and rwkv6-random-smoke (random-init) at
layers 1, 3, 5 with mean and max pooling, GloVe (layer 0, mean), on stsb-sample/test and
mrpc/validation, plus one throughput benchmark without an accuracy record. One Spearman
is undefined (rwkv6-tiny-1m L01/max on mrpc) and one gate fails (rwkv6-tiny-1m L05/mean on
mrpc). The older run has every Spearman 0.01 lower, times 10% faster and 5 MB less memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rwkv_eval.report import BIGGER_FILE, RANDOM_INIT_MARK, SMALLER_FILE, build_report, layer_label, load_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATASETS = (("stsb-sample", "test", 300), ("mrpc", "validation", 408))
MODELS = (("rwkv6-tiny-1m", True, (1, 3, 5), ("mean", "max")),
          ("rwkv6-random-smoke", False, (1, 3, 5), ("mean", "max")),
          ("glove-6b-50d", True, (0,), ("mean",)))
UNDEFINED = ("rwkv6-tiny-1m", "mrpc", 1, "max")
FAILING = ("rwkv6-tiny-1m", "mrpc", 5, "mean")


def spearman_of(model: str, dataset: str, layer: int, pooling: str, shift: float) -> float | None:
    """Deterministic, distinct values: 0.5 + layer/100 (+0.05 for mean, +0.1 on mrpc)."""
    if (model, dataset, layer, pooling) == UNDEFINED:
        return None
    base = {"rwkv6-tiny-1m": 0.5, "rwkv6-random-smoke": 0.05, "glove-6b-50d": 0.4}[model]
    return round(base + layer / 100 + (0.05 if pooling == "mean" else 0) + (0.1 if dataset == "mrpc" else 0)
                 - shift, 4)


def synthetic_run(commit: str, when: str, shift: float = 0.0, time_scale: float = 1.0, mem_shift: float = 0.0) -> dict:
    benchmarks = []
    for model, trained, layers, poolings in MODELS:
        for dataset, split, n in DATASETS:
            for layer in layers:
                for pooling in poolings:
                    rho = spearman_of(model, dataset, layer, pooling, shift)
                    key = f"smoke/{model}/{dataset}-{split}/{layer_label(layer)}/{pooling}"
                    floor = 0.9 if (model, dataset, layer, pooling) == FAILING else None
                    gate = "no floor" if floor is None else ("pass" if rho is not None and rho >= floor else "FAIL")
                    depth = layer if isinstance(layer, int) else 0  # "emb"
                    spp = (0.001 * (depth + 1) if model != "glove-6b-50d" else 1e-5) * time_scale
                    extra = {
                        "profile": "smoke", "model": model, "model_key": model, "trained": trained,
                        "revision": "r1", "arch": "glove" if model.startswith("glove") else "rwkv6",
                        "layer": layer, "layer_convention": "k = residual stream after block k", "pooling": pooling,
                        "dataset": dataset, "split": split, "n_pairs": n, "spearman": rho,
                        "pearson": rho, "spearman_ci95_low": None if rho is None else rho - 0.05,
                        "spearman_ci95_high": None if rho is None else rho + 0.05,
                        "spearman_floor": floor, "gate": gate, "gate_key": key,
                        "seconds_per_pair": spp, "pairs_per_second": 1 / spp, "tokens_per_second": 20 / spp,
                        "sentences_per_second": 2 / spp, "timed_batch_sentences": 32, "timed_batch_tokens": 320,
                        "peak_memory_mb": 500.0 + 10 * depth + mem_shift, "peak_memory_delta_mb": 2.0 * depth,
                        "memory_kind": "cpu VmHWM (reset per case)", "device": "cpu", "dtype": "float32",
                        "torch_version": "2.13.0+cpu", "transformers_version": "5.24.0", "git_commit": commit,
                        "git_dirty": False, "time_utc": when, "dataset_revision": "d1",
                    }
                    if not trained:
                        extra["note"] = "random-init weights: Spearman is meaningless; timing and memory are real"
                    mean_s = spp * 16
                    benchmarks.append({
                        "group": None,
                        "name": f"test_similarity[{model}/{layer_label(layer)}/{pooling}/{dataset}-{split}]",
                        "fullname": "benchmarks/test_embeddings.py::test_similarity[...]", "params": {},
                        "stats": {"mean": mean_s, "median": mean_s, "min": mean_s, "max": mean_s, "stddev": 0.0,
                                  "rounds": 3}, "extra_info": extra})
    benchmarks.append({"group": None, "name": "test_wkv_throughput[T=512]", "fullname": "benchmarks/x.py::t",
                       "params": {}, "stats": {"mean": 0.0123 * time_scale},
                       "extra_info": {"tokens_per_second": 41000.0 / time_scale, "backend": "naive"}})
    return {"machine_info": {"node": "ci-node", "machine": "x86_64", "python_version": "3.11.7",
                             "cpu": {"brand_raw": "Test CPU", "count": 2}, "torch": "2.13.0+cpu"},
            "commit_info": {"id": commit, "dirty": False, "branch": "main"},
            "benchmarks": benchmarks, "datetime": when, "version": "5.3.1"}


NEW_COMMIT = "abcdef0123456789abcdef0123456789abcdef01"
OLD_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    new = synthetic_run(NEW_COMMIT, "2026-11-26T07:30:00+00:00")
    old = synthetic_run(OLD_COMMIT, "2026-11-25T07:30:00+00:00", shift=0.01, time_scale=1 / 1.1, mem_shift=-5.0)
    (tmp / "new.json").write_text(json.dumps(new))
    (tmp / "old.json").write_text(json.dumps(old))
    return build_report(load_run(tmp / "new.json"), [load_run(tmp / "old.json")], tmp / "reports", None)


def section(md: str, title: str) -> str:
    """The text of the markdown section whose heading starts with `title`."""
    start = md.index(title)
    end = md.find("\n#", start + len(title))
    return md[start:] if end < 0 else md[start:end]


def row(md: str, *cells: str) -> str:
    """The one table row whose cells start with `cells`."""
    prefix = "| " + " | ".join(cells) + " |"
    rows = [line for line in md.splitlines() if line.startswith(prefix)]
    assert len(rows) == 1, f"expected one row starting {prefix!r}, got {rows}"
    return rows[0]


def test_report_folder_name_and_files(report):
    assert report.name == "20261126T073000-abcdef0"
    for name in ("summary.md", BIGGER_FILE, SMALLER_FILE, "cost_vs_layer.png", "history.png",
                 "spearman__rwkv6-tiny-1m__mrpc-validation.png", "spearman__rwkv6-tiny-1m__stsb-sample-test.png",
                 "spearman__rwkv6-random-smoke__mrpc-validation.png"):
        assert (report / name).is_file(), f"missing {name}; have {sorted(p.name for p in report.iterdir())}"
    assert not list(report.glob(".*.tmp")), "atomic writes left temp files behind"


def test_pngs_are_valid(report):
    pngs = sorted(report.glob("*.png"))
    assert len(pngs) == 6  # 2 models x 2 datasets (GloVe is a line, not a figure) + cost + history
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", f"{p.name} is not a PNG"
        assert len(data) > 5000, f"{p.name} is suspiciously small ({len(data)} bytes)"
    summary = (report / "summary.md").read_text()
    for p in pngs:
        assert f"]({p.name})" in summary, f"{p.name} not linked from summary.md"


def test_summary_provenance_and_accuracy_table(report):
    md = (report / "summary.md").read_text()
    assert f"`{NEW_COMMIT}` (main)" in md and "| profile | smoke |" in md and "Test CPU" in md
    assert "| torch | 2.13.0+cpu" in md and "| device / dtype | cpu float32 |" in md
    mrpc = section(md, "### mrpc / validation (408 pairs)")
    # layer rows x pooling columns (mean before max), with the 95% CI; GloVe in the same table
    assert "| model | layer | mean | max | note |" in mrpc
    assert row(mrpc, "rwkv6-tiny-1m", "L03") == (
        "| rwkv6-tiny-1m | L03 | 0.6800 [0.630, 0.730] | 0.6300 [0.580, 0.680] |  |")
    assert row(mrpc, "glove-6b-50d", "L00") == "| glove-6b-50d | L00 | 0.5500 [0.500, 0.600] | — |  |"
    # the best trained cell is bold
    assert "**0.7000 [0.650, 0.750]**" in row(mrpc, "rwkv6-tiny-1m", "L05")


def test_undefined_spearman_is_never_nan(report):
    md = (report / "summary.md").read_text()
    mrpc = section(md, "### mrpc / validation")
    assert row(mrpc, "rwkv6-tiny-1m", "L01").split(" | ")[3] == "undefined"
    assert "nan" not in md.lower().replace("nanoseconds", "")


def test_random_init_marker_on_untrained_rows(report):
    md = (report / "summary.md").read_text()
    for title in ("### mrpc / validation", "### stsb-sample / test"):
        for layer in ("L01", "L03", "L05"):
            assert row(section(md, title), "rwkv6-random-smoke", layer).endswith(f"| {RANDOM_INIT_MARK} |")
        assert RANDOM_INIT_MARK not in row(section(md, title), "rwkv6-tiny-1m", "L03")
        assert RANDOM_INIT_MARK not in row(section(md, title), "glove-6b-50d", "L00")
    assert f"> **{RANDOM_INIT_MARK}**: rwkv6-random-smoke has random-init weights" in md


def test_gates_count_and_list_the_failing_case(report):
    gates = section((report / "summary.md").read_text(), "## Spearman gates")
    assert "pass: 0 · FAIL: 1 · no floor: 25" in gates
    assert row(gates, "smoke/rwkv6-tiny-1m/mrpc-validation/L05/mean", "FAIL") == (
        "| smoke/rwkv6-tiny-1m/mrpc-validation/L05/mean | FAIL | 0.7000 [0.650, 0.750] | floor 0.9000 | — |  |")


def test_paired_marks_best_not_significantly_worse_and_vs_glove(tmp_path):
    """The marks come from the recorded paired bootstrap, not from the point estimates:
    L03/mean (0.68) is italic (its Δρ CI includes 0), L03/max (0.63) is not."""
    run = synthetic_run(NEW_COMMIT, "2026-11-26T07:30:00+00:00")
    for b in run["benchmarks"]:
        e = b["extra_info"]
        if e.get("model_key") != "rwkv6-tiny-1m" or e["dataset"] != "mrpc" or e["spearman"] is None:
            continue
        best = (e["layer"], e["pooling"]) == (5, "mean")
        worse = e["pooling"] == "max"
        d = round(e["spearman"] - 0.70, 4)
        e["vs_best"] = {"delta_spearman": d, "delta_ci95": [d - 0.01, d + (0.005 if worse else 0.05)],
                        "p_value": 0.01 if worse else 0.4, "is_best": best, "significantly_worse": worse and not best}
        e["vs_baseline"] = {"delta_spearman": e["spearman"] - 0.55, "delta_ci95": [0.05, 0.2], "p_value": 0.002,
                            "verdict": "better"}
    (tmp_path / "r.json").write_text(json.dumps(run))
    md = (build_report(load_run(tmp_path / "r.json"), [], tmp_path, "p") / "summary.md").read_text()
    mrpc, paired = section(md, "### mrpc / validation (408 pairs)").split("Paired comparisons")
    assert row(mrpc, "rwkv6-tiny-1m", "L03") == (
        "| rwkv6-tiny-1m | L03 | *0.6800 [0.630, 0.730]* | 0.6300 [0.580, 0.680] |  |")
    assert "**0.7000 [0.650, 0.750]**" in row(mrpc, "rwkv6-tiny-1m", "L05")
    assert row(paired, "rwkv6-tiny-1m", "L05", "max").endswith(
        "| -0.0500 [-0.060, -0.045] p=0.01 | significantly worse | +0.1000 [+0.050, +0.200] p=0.002 | better |")
    assert row(paired, "rwkv6-tiny-1m", "L03", "mean").split(" | ")[5] == "not significantly worse"
    assert row(paired, "rwkv6-tiny-1m", "L05", "mean").split(" | ")[5] == "best"
