"""The benchmark suite end to end, in a subprocess, on the cheapest cases (GloVe on the
bundled sample): the JSON it writes, its gates, its profiles' failures, floors refresh,
and the report built from it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rwkv_eval.thresholds import refresh

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("spearman", "pearson", "spearman_ci95_low", "spearman_ci95_high", "n_pairs", "pairs_per_second",
            "tokens_per_second", "peak_memory_mb", "device", "dtype", "model", "revision", "dataset", "split",
            "dataset_revision", "layer", "layer_convention", "pooling", "torch_version", "transformers_version",
            "git_commit", "gate", "trained")


def run_suite(tmp_path, *args, env=None):
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_embeddings.py"), "-q",
           "-p", "no:cacheprovider", "--benchmark-json", str(out), *args]
    e = {k: v for k, v in os.environ.items() if k != "RWKV_EVAL_DATA"} | {"HF_HUB_OFFLINE": "1",
                                                                          "HF_DATASETS_OFFLINE": "1"} | (env or {})
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=e)
    return res, out


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("suite")
    res, out = run_suite(tmp, "-k", "glove and stsb-sample")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res, json.loads(out.read_text()), tmp


def test_every_case_records_the_extra_info(smoke_run):
    res, data, _ = smoke_run
    names = [b["name"] for b in data["benchmarks"]]
    assert names == ["test_similarity[glove-6b-50d/L00/mean/stsb-sample-test]",
                     "test_similarity[glove-6b-50d/L00/max/stsb-sample-test]"]
    for b in data["benchmarks"]:
        missing = [k for k in REQUIRED if k not in b["extra_info"]]
        assert not missing, missing
        info = b["extra_info"]
        assert info["n_pairs"] == 300 and info["trained"] is True
        assert info["spearman_ci95_low"] < info["spearman"] < info["spearman_ci95_high"]
        assert info["peak_memory_mb"] > 0 and info["tokens_per_second"] > 0
    assert "Spearman gates" in res.stdout


def test_a_case_below_its_floor_fails_with_measured_vs_floor(tmp_path, smoke_run):
    _, data, _ = smoke_run
    key = data["benchmarks"][0]["extra_info"]["gate_key"]
    floors = tmp_path / "floors.json"
    floors.write_text(json.dumps({"floors": {key: 0.99}}))
    res, out = run_suite(tmp_path, "-k", "glove and mean and stsb-sample", "--thresholds", str(floors))
    assert res.returncode == 1
    assert f"Spearman regression for {key}: measured 0." in res.stdout and "< floor 0.9900" in res.stdout
    assert "1 FAIL" in res.stdout


def test_cases_without_floor_are_reported_not_silently_passed(smoke_run):
    res, data, _ = smoke_run
    assert all(b["extra_info"]["gate"] in ("pass", "no floor") for b in data["benchmarks"])
    gates = {b["extra_info"]["gate"] for b in data["benchmarks"]}
    if "no floor" in gates:
        assert "no floor" in res.stdout


def test_refreshed_floors_pass_the_same_run(tmp_path, smoke_run):
    _, data, tmp = smoke_run
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps(data))
    floors = tmp_path / "floors.json"
    doc = refresh(run_json, floors, margin=None, only_missing=False)
    for b in data["benchmarks"]:
        info = b["extra_info"]
        half = (info["spearman_ci95_high"] - info["spearman_ci95_low"]) / 2
        assert doc["floors"][info["gate_key"]] == pytest.approx(info["spearman"] - half, abs=1e-4)
    res, _ = run_suite(tmp_path, "-k", "glove and stsb-sample", "--thresholds", str(floors))
    assert res.returncode == 0 and "2 pass" in res.stdout


def test_paper_profile_without_the_model_fails_fast_with_instructions(tmp_path):
    empty_cache = tmp_path / "hf"
    res, _ = run_suite(tmp_path, "--rwkv-profile", "paper", "--device", "cpu",
                       env={"HF_HOME": str(empty_cache), "HF_HUB_CACHE": str(empty_cache / "hub")})
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert "profile 'paper' cannot run here" in text
    assert "RWKV/v6-Finch-1B6-HF" in text and "--model PATH" in text and "--data-dir" in text


def test_unknown_profile_is_a_usage_error(tmp_path):
    res, _ = run_suite(tmp_path, "--rwkv-profile", "nightly")
    assert res.returncode != 0 and "unknown profile 'nightly'" in res.stdout + res.stderr


def test_report_from_the_run(tmp_path, smoke_run):
    from rwkv_eval.report import build_report

    _, data, _ = smoke_run
    folder = build_report(data, [data], tmp_path, name="t")
    text = (folder / "summary.md").read_text()
    assert "stsb-sample" in text and "glove-6b-50d" in text
