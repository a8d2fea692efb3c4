"""The checks bite: each of three plausible bugs, applied to a copy of the source, makes
both the unit tests and the smoke accuracy gates fail.

    weighted_mean -> mean    position weights replaced by ones
    first_last    -> last    the first token dropped from first_last
    layer k       -> k+1     RWKV-6 yields the state before block k under the name k,
                             so the state of layer k is reported as layer k+1

Each mutant is a textual edit of a copy of the repository (the edit must apply, so a
refactor that moves the code fails here and gets the mutant updated); pytest then runs,
in the copy, the unit tests that guard the code and the benchmark cases of the random-init
RWKV-6 (perf profile) gated by the committed references (benchmarks/thresholds.json). Both must fail, and the benchmark
must fail on its Spearman gate (status FAIL with a Δ), not on a crash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MUTANTS = {
    "weighted_mean->mean": (
        "rwkv_eval/pooling.py",
        "w = torch.cumsum(m, dim=1).float() * m",
        "w = m.float()",
        ["tests/properties/test_pooling_properties.py::test_weighted_mean_is_sum_of_i_times_x_i_over_sum_of_i",
         "tests/properties/test_pooling_properties.py::test_weighted_mean_of_arange_states_has_its_closed_form"],
        "rwkv6-random-smoke/L05/weighted_mean/stsb-sample-test",
    ),
    "first_last->last": (
        "rwkv_eval/pooling.py",
        "out = 0.5 * (out + x[torch.arange(B, device=x.device), first])",
        "out = out",
        ["tests/properties/test_pooling_properties.py::test_first_last_is_the_mean_of_first_and_last_valid_tokens"],
        "rwkv6-random-smoke/L05/first_last/stsb-sample-test",
    ),
    "layer k->k+1": (
        "rwkv_eval/models/rwkv6.py",
        "            x = self.blocks[i](x, packed)\n            yield i, x\n",
        "            yield i, x\n            x = self.blocks[i](x, packed)\n",
        ["tests/test_rwkv6.py::test_layer_numbering"],
        # adjacent layers of the random model differ by 8e-4 under mean pooling, by 1e-2 under last
        "rwkv6-random-smoke/L05/last/stsb-sample-test",
    ),
}


def mutated_copy(tmp_path: Path, file: str, old: str, new: str) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(
        ".git", "reports", ".benchmarks", ".hypothesis", "__pycache__", "*.egg-info", ".venv"))
    path = copy / file
    text = path.read_text()
    assert text.count(old) == 1, f"mutant no longer applies: {old!r} not found once in {file}; update MUTANTS"
    path.write_text(text.replace(old, new))
    return copy


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant_fails_unit_tests_and_smoke_gate(name, tmp_path, request):
    file, old, new, unit_tests, case = MUTANTS[name]
    data = {}
    if any("test_rwkv6" in t for t in unit_tests):  # its unit test runs the tiny trained checkpoint
        data = {"RWKV_EVAL_DATA": str(request.getfixturevalue("shared_data"))}
    copy = mutated_copy(tmp_path, file, old, new)
    junit = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if k != "RWKV_EVAL_DATA"} | {
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(copy),
        "OMP_NUM_THREADS": "1"} | data  # two torch threads spin-wait on a loaded 2-core machine (10x slower)
    bench = f"benchmarks/test_embeddings.py::test_similarity[{case}]"
    res = subprocess.run([sys.executable, "-m", "pytest", *unit_tests, bench, "--rwkv-profile", "perf",
                          "-p", "no:cacheprovider",
                          "-q", "--benchmark-disable", f"--junitxml={junit}", "-o", "testpaths="],
                         cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    out = res.stdout + res.stderr
    assert "import file mismatch" not in out and str(ROOT / "rwkv_eval") not in out, out[-2000:]
    outcome = {}
    for tc in ET.parse(junit).getroot().iter("testcase"):
        failed = tc.find("failure") is not None or tc.find("error") is not None
        outcome[f"{tc.get('classname')}::{tc.get('name')}"] = "failed" if failed else (
            "skipped" if tc.find("skipped") is not None else "passed")
    assert len(outcome) == len(unit_tests) + 1, (outcome, out[-2000:])
    assert all(v == "failed" for v in outcome.values()), f"{name} survived: {outcome}\n{out[-3000:]}"
    assert "Spearman gate: FAIL" in out and "Δ=" in out, out[-2000:]
