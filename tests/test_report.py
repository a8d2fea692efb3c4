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

from rwkv_eval.report import BIGGER_FILE, RANDOM_INIT_MARK, SMALLER_FILE, build_report, layer_label, load_run, main

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
        "| smoke/rwkv6-tiny-1m/mrpc-validation/L05/mean | FAIL | 0.7000 [0.650, 0.750] | 0.9000 |  |")


def test_cost_table_by_model_and_layer(report):
    cost = section((report / "summary.md").read_text(), "## Time and memory")
    # rwkv6-tiny-1m L05: 0.006 s/pair in every case, peak 550 MB, delta 10 MB, 4 cases (2 poolings x 2 datasets)
    assert row(cost, "rwkv6-tiny-1m", "L05") == (
        "| rwkv6-tiny-1m | L05 | 6 ms | 4 | 550.0 | 10.0 | 3.33e+03 | cpu VmHWM (reset per case) |")
    assert row(cost, "glove-6b-50d", "L00").split(" | ")[2] == "10 µs"


def test_deltas_against_the_first_older_run(report):
    deltas = section((report / "summary.md").read_text(), "## Deltas vs 2026-11-25 07:30 0123456")
    assert row(deltas, "rwkv6-tiny-1m", "mrpc-validation", "L03", "mean") == (
        "| rwkv6-tiny-1m | mrpc-validation | L03 | mean | 0.6700 | 0.6800 | +0.0100 | 1.10× | +5.0 |  |")
    assert row(deltas, "rwkv6-tiny-1m", "mrpc-validation", "L01", "max").split(" | ")[4:7] == [
        "undefined", "undefined", "undefined"]
    assert row(deltas, "rwkv6-random-smoke", "stsb-sample-test", "L05", "max").endswith(f"| {RANDOM_INIT_MARK} |")
    assert "New cases" not in deltas and "not in this run" not in deltas


def test_throughput_and_history_sections(report):
    md = (report / "summary.md").read_text()
    tp = section(md, "## Throughput")
    assert row(tp, "test_wkv_throughput[T=512]", "12.3 ms") == (
        "| test_wkv_throughput[T=512] | 12.3 ms | tokens_per_second=4.1e+04 |")
    hist = section(md, "## History")
    assert "| model | dataset | 2026-11-25 07:30 0123456 | 2026-11-26 07:30 abcdef0 |" in hist
    assert row(hist, "rwkv6-tiny-1m", "mrpc-validation") == (
        "| rwkv6-tiny-1m | mrpc-validation | 0.6900 (L05/mean) | 0.7000 (L05/mean) |")
    assert "rwkv6-random-smoke" not in hist  # random-init accuracy has no history


def test_github_action_benchmark_export(report):
    bigger = json.loads((report / BIGGER_FILE).read_text())
    smaller = json.loads((report / SMALLER_FILE).read_text())
    for entry in bigger + smaller:
        assert set(entry) == {"name", "unit", "value", "extra"}
        assert isinstance(entry["value"], (int, float)) and isinstance(entry["extra"], str)
    assert {e["unit"] for e in bigger} == {"spearman"}
    assert {e["unit"] for e in smaller} == {"s/pair", "MB", "s"}
    names = {e["name"]: e for e in bigger + smaller}
    assert names["rwkv6-tiny-1m/mrpc-validation/L03/mean spearman"]["value"] == 0.68
    assert names["rwkv6-tiny-1m/mrpc-validation/L05/mean time per pair"]["value"] == pytest.approx(0.006)
    assert names["rwkv6-tiny-1m/mrpc-validation/L05/mean peak memory"]["value"] == 550.0
    # undefined and random-init Spearman are not tracked; their cost is
    assert "rwkv6-tiny-1m/mrpc-validation/L01/max spearman" not in names
    assert not any(e["name"].startswith("rwkv6-random-smoke") for e in bigger)
    assert "rwkv6-random-smoke/mrpc-validation/L01/max time per pair" in names
    assert len(bigger) == 2 * (3 * 2 + 1) - 1 and len(smaller) == 2 * 2 * (3 * 2 * 2 + 1) + 1


def test_cli_writes_a_named_report(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps(synthetic_run(NEW_COMMIT, "2026-11-26T07:30:00+00:00")))
    assert main([str(tmp_path / "run.json"), "--out", str(tmp_path / "out"), "--name", "nightly"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "nightly")
    md = (tmp_path / "out" / "nightly" / "summary.md").read_text()
    assert md.startswith("# rwkv_eval report: nightly") and "## Deltas" not in md


@pytest.mark.parametrize("content, message", [
    ("not json {", "not JSON"),
    ("[1, 2]", "top level is a list"),
    ('{"results": []}', "no 'benchmarks' list"),
], ids=["not-json", "list", "no-benchmarks"])
def test_cli_rejects_bad_input(tmp_path, capsys, content, message):
    (tmp_path / "bad.json").write_text(content)
    assert main([str(tmp_path / "bad.json"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rwkv_eval.report: error: ") and message in err and "--benchmark-json" in err
    assert not (tmp_path / "out").exists()


def test_cli_missing_file_and_bad_name(tmp_path, capsys):
    assert main([str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "run.json").write_text(json.dumps(synthetic_run(NEW_COMMIT, "2026-11-26T07:30:00+00:00")))
    assert main([str(tmp_path / "run.json"), "--out", str(tmp_path), "--name", "../x"]) == 2
    assert "not a plain folder name" in capsys.readouterr().err


def test_load_run_error_names_the_file(tmp_path):
    (tmp_path / "x.json").write_text('{"benchmarks": [3]}')
    with pytest.raises(ValueError, match=r"x\.json: benchmarks\[0\] is not an object"):
        load_run(tmp_path / "x.json")


def test_multi_domain_cases_get_a_per_domain_table(tmp_path):
    run = synthetic_run(NEW_COMMIT, "2026-11-26T07:30:00+00:00")
    for b in run["benchmarks"]:
        e = b["extra_info"]
        if e.get("dataset") == "mrpc":  # stand-in for an STS12-16 year: pooled "all" is the main record
            e["dataset"] = "sts12/all"
            e["domains"] = {"sts12/MSRpar": {"spearman": 0.31, "n_pairs": 750},
                            "sts12/all": {"spearman": e["spearman"], "n_pairs": 3108},
                            "sts12/mean": {"spearman": None, "n_pairs": 3108}}
    md = (build_report(run, [], tmp_path, "ood") / "summary.md").read_text()
    ood = section(md, "### sts12/all / validation")
    assert "| model | layer | pooling | sts12/MSRpar | sts12/all | sts12/mean | note |" in ood
    assert row(ood, "rwkv6-tiny-1m", "L03", "max") == (
        "| rwkv6-tiny-1m | L03 | max | 0.3100 | 0.6300 | undefined |  |")
