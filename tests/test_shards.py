"""Shards: deterministic, disjoint slices of whole models; shards 1/3..3/3 merged equal
the unsharded run (same cases, Spearman, gate verdicts), and the merge feeds the report."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rwkv_eval.suite.profiles import ModelCase
from rwkv_eval.suite.shards import main as shards_main
from rwkv_eval.suite.shards import merge, parse_shard, select_models

ROOT = Path(__file__).resolve().parents[1]

# three model groups as cheap as they come; random6's "all" is resolved against the model
CHEAP = """
name = "small"
layers = [0]
poolings = ["mean"]

[[models]]
key = "glove"
spec = "glove-6b-50d"
poolings = ["mean", "max"]

[[models]]
key = "random6"
spec = "random-rwkv6:tiny"
layers = "all"

[[models]]
key = "glove2"
spec = "glove-6b-50d"

[[datasets]]
name = "stsb-sample"
split = "test"
"""


def test_parse_shard():
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) is None
    for bad in ("0/3", "4/3", "1", "a/b", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="expected i/N with 1 <= i <= N"):
            parse_shard(bad)


@pytest.mark.parametrize("n_models,count", [(1, 1), (3, 3), (5, 2), (2, 4), (7, 3)])
def test_shards_are_disjoint_whole_models_covering_the_profile(n_models, count):
    models = [ModelCase(f"m{i}", f"spec{i}", (0,), ("mean",)) for i in range(n_models)]
    slices = [select_models(models, (i, count)) for i in range(1, count + 1)]
    flat = [m for s in slices for m in s]
    assert sorted(m.key for m in flat) == sorted(m.key for m in models) and len(flat) == n_models
    assert slices == [select_models(list(models), (i, count)) for i in range(1, count + 1)]  # deterministic
    assert select_models(models, None) == tuple(models)


def _run(i, n, names):
    return {"machine_info": {"node": f"gpu{i}"}, "commit_info": {"id": "abc"},
            "rwkv_shard": {"profile": "p", "index": i, "count": n, "models": names, "datasets": ["d"]},
            "benchmarks": [{"name": f"t[{m}]", "fullname": f"f::t[{m}]",
                            "extra_info": {"model_key": m, "gate": "pass"}} for m in names]}


def test_merge_checks_every_shard_exactly_once():
    a, b = _run(1, 2, ["x", "z"]), _run(2, 2, ["y"])  # round-robin: x, z in shard 1 of 2
    merged = merge([b, a])
    assert [x["name"] for x in merged["benchmarks"]] == ["t[x]", "t[y]", "t[z]"]  # profile order, not file order
    assert merged["rwkv_shard"]["models"] == ["x", "y", "z"] and len(merged["shards"]) == 2
    with pytest.raises(ValueError, match=r"shards of 2: missing \[2\], repeated none"):
        merge([a])
    with pytest.raises(ValueError, match=r"missing none, repeated \[1\]"):
        merge([a, copy.deepcopy(a), b])
    with pytest.raises(ValueError, match="profile 'q' differs"):
        merge([a, {**b, "rwkv_shard": {**b["rwkv_shard"], "profile": "q"}}])
    clash = _run(2, 2, ["x"])
    with pytest.raises(ValueError, match=r"case f::t\[x\] is in both input 1 and input 2"):
        merge([a, clash])
    with pytest.raises(ValueError, match="no rwkv_shard header"):
        merge([{"benchmarks": []}])


def test_merge_command_writes_atomically_and_gates(tmp_path, capsys):
    a, b = _run(1, 2, ["x"]), _run(2, 2, ["y"])
    b["benchmarks"][0]["extra_info"].update(gate="FAIL", gate_key="p/y/d/L00/mean")
    paths = []
    for i, r in enumerate((a, b)):
        paths.append(tmp_path / f"s{i}.json")
        paths[-1].write_text(json.dumps(r))
    out = tmp_path / "merged" / "out.json"
    assert shards_main(["merge", *map(str, paths), "-o", str(out)]) == 1
    assert "2 cases from 2 shards; gates: 1 FAIL, 1 pass" in capsys.readouterr().out
    assert len(json.loads(out.read_text())["benchmarks"]) == 2 and os.listdir(out.parent) == ["out.json"]
    assert shards_main(["merge", str(paths[0]), "-o", str(out)]) == 2
    assert "error: shards of 2: missing [2]" in capsys.readouterr().err


def test_tests_outside_the_grid_run_in_shard_1_only(tmp_path):
    profile = tmp_path / "small.toml"
    profile.write_text(CHEAP)
    res = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p",
                          "no:cacheprovider",
                          "--rwkv-profile", str(profile), "--rwkv-shard", "2/3"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=_env())
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    items = [l for l in res.stdout.splitlines() if "::" in l]
    assert items == [f"benchmarks/test_embeddings.py::test_similarity[random6/{l}/mean/stsb-sample-test]"
                     for l in ("Lemb", "L00", "L01")]
    assert "deselected" in res.stdout


def _env():
    return {k: v for k, v in os.environ.items() if k != "RWKV_EVAL_DATA"} | {
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def run_suite(tmp_path, name, *extra):
    out = tmp_path / f"{name}.json"
    res = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_embeddings.py"), "-q",
                          "-p", "no:cacheprovider", "--benchmark-json", str(out), *extra],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, env=_env())
    return res, out


def test_shards_merged_equal_the_unsharded_run(tmp_path):
    """GloVe twice and a 2-block random RWKV-6, one model per shard, one floor passing and
    one failing: the merged JSON is the unsharded one, case for case, and reports."""
    profile = tmp_path / "small.toml"
    profile.write_text(CHEAP)
    # references for two cases (one passes, one fails), the rest new and accepted
    whole_res, whole_out = run_suite(tmp_path, "whole", "--rwkv-profile", str(profile), "--accept-new-cases")
    assert whole_res.returncode == 0, whole_res.stdout[-3000:] + whole_res.stderr[-3000:]
    whole = json.loads(whole_out.read_text())
    keys = {b["name"]: b["extra_info"]["gate_key"] for b in whole["benchmarks"]}
    spearman = {b["name"]: b["extra_info"]["spearman"] for b in whole["benchmarks"]}
    glove_mean = "test_similarity[glove/L00/mean/stsb-sample-test]"
    refs = {keys[glove_mean]: {"spearman": spearman[glove_mean], "tolerance": 0.01},
            keys["test_similarity[random6/L01/mean/stsb-sample-test]"]: {"spearman": 0.99, "tolerance": 0.0}}
    floors = tmp_path / "refs.json"
    floors.write_text(json.dumps({"references": refs}))
    common = ("--rwkv-profile", str(profile), "--thresholds", str(floors), "--accept-new-cases")
    assert "rwkv-eval: which layer x pooling" in whole_res.stdout
    assert "random6 on stsb-sample-test" in whole_res.stdout
    shard_outs = []
    for i in (1, 2, 3):
        res, out = run_suite(tmp_path, f"shard{i}", *common, "--rwkv-shard", f"{i}/3")
        assert res.returncode == (1 if i == 2 else 0), res.stdout[-3000:] + res.stderr[-3000:]
        shard_outs.append(out)
    merged_path = tmp_path / "merged.json"
    assert shards_main(["merge", *map(str, reversed(shard_outs)), "-o", str(merged_path)]) == 1
    merged = json.loads(merged_path.read_text())

    def view(run):
        return [(b["name"], b["extra_info"]["spearman"]) for b in run["benchmarks"]]
    assert view(merged) == view(whole)
    # the verdict one run gives with these references: the rule applied to the unsharded Spearmans
    expected = {name: ("new (accepted)" if key not in refs else
                       "pass" if abs(s - refs[key]["spearman"]) <= refs[key]["tolerance"] else "FAIL")
                for (name, s), key in zip(view(whole), keys.values())}
    assert {b["name"]: b["extra_info"]["gate"] for b in merged["benchmarks"]} == expected
    assert set(expected.values()) == {"pass", "FAIL", "new (accepted)"}
    assert [b["name"] for b in merged["benchmarks"]][2:5] == [  # the shard that resolved "all" against its model
        "test_similarity[random6/Lemb/mean/stsb-sample-test]", "test_similarity[random6/L00/mean/stsb-sample-test]",
        "test_similarity[random6/L01/mean/stsb-sample-test]"]
    best = max(b["extra_info"]["spearman"] for b in whole["benchmarks"] if b["extra_info"]["model_key"] == "glove")
    summary = whole_res.stdout.split("rwkv-eval: which layer x pooling")[1]  # past the progress lines
    glove = summary.split("glove on stsb-sample-test")[1].split(" on ")[0]
    assert f"{best:.4f}*" in glove and glove.count("*") == 1  # the matrix stars the best cell

    from rwkv_eval.report import build_report
    folder = build_report(merged, [merged], tmp_path / "reports", name="merged")
    text = (folder / "summary.md").read_text()
    assert "random6" in text and "glove2" in text and "FAIL" in text
