"""The Ray launcher on a local Ray instance (2 CPUs): two shards run as two tasks in two
separate worker processes, and the merged JSON is the shards' cases, once each."""

import json
import os

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rwkv-eval[ray]')")

from rwkv_eval.suite.ray_sweep import gather, main, run_sweep  # noqa: E402

PROFILE = """
name = "raytest"
layers = [0]
poolings = ["mean"]

[[models]]
key = "random6-a"
spec = "random-rwkv6:tiny"

[[models]]
key = "random6-b"
spec = "random-rwkv6:tiny"
poolings = ["last"]

[[datasets]]
name = "stsb-sample"
split = "test"
"""


@pytest.fixture(scope="module")
def local_ray():
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")  # the workers inherit the driver's environment
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_two_shards_run_in_separate_workers_and_merge(local_ray, tmp_path, capsys):
    profile = tmp_path / "raytest.toml"
    profile.write_text(PROFILE)
    results = run_sweep(2, ["--rwkv-profile", str(profile), "-k", "test_similarity", "--accept-new-cases"], num_gpus=0)
    assert [r["index"] for r in results] == [1, 2]
    assert all(r["returncode"] == 0 for r in results), [r["output_tail"] for r in results]
    pids = {r["pid"] for r in results}
    assert len(pids) == 2 and os.getpid() not in pids  # each shard in its own worker process
    assert [[b["extra_info"]["model_key"] for b in r["json"]["benchmarks"]] for r in results] == [
        ["random6-a"], ["random6-b"]]
    out = tmp_path / "merged.json"
    assert gather(results, out) == 0
    merged = json.loads(out.read_text())
    assert [b["name"] for b in merged["benchmarks"]] == [
        "test_similarity[random6-a/L00/mean/stsb-sample-test]", "test_similarity[random6-b/L00/last/stsb-sample-test]"]
    assert "2 cases from 2 shards; gates: 2 new (accepted)" in capsys.readouterr().out


def test_usage_errors(capsys):
    assert main(["--shards", "0", "-o", "x.json"]) == 2
    assert "--shards must be >= 1" in capsys.readouterr().err
