"""rwkv_eval.suite.gates and rwkv_eval.suite.thresholds: keys, two-sided verdicts, reference sources and
their errors, on hand-written records (the suite end to end is tests/test_benchmark_suite.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rwkv_eval.suite import gates
from rwkv_eval.suite.gates import (
    FAIL,
    MISSING,
    NEW,
    PASS,
    Reference,
    history_references,
    judge,
    judge_case,
    load_references_file,
    reference_key,
)
from rwkv_eval.suite.thresholds import main as thresholds_main
from rwkv_eval.suite.thresholds import refresh

INFO = {"profile": "smoke", "model_key": "rwkv6-tiny-1m", "sha256": "83c304fc424bbf477761d94c415707c2",
        "revision": "83c304fc424bbf477761d94c415707c2", "dataset": "stsb-sample", "split": "test",
        "dataset_revision": "a3e5d3e1cb9d0000", "layer": 5, "pooling": "weighted_mean", "device": "cpu",
        "dtype": "float32", "spearman": 0.5}


def test_reference_key_names_everything_that_changes_the_number():
    key = reference_key(INFO)
    assert key == "smoke/rwkv6-tiny-1m@83c304fc424b/stsb-sample-test@a3e5d3e1cb9d/L05/weighted_mean/cpu-float32"
    changes = {"profile": "sts", "model_key": "x", "sha256": "ffff" * 16, "dataset": "stsb", "split": "validation",
               "dataset_revision": "0" * 64, "layer": 6, "pooling": "mean", "device": "cuda:0", "dtype": "float16"}
    for field, value in changes.items():
        assert reference_key(INFO | {field: value}) != key, f"{field} does not change the key"
    assert reference_key(INFO | {"device": "cuda:1"}) == reference_key(INFO | {"device": "cuda:0"})  # device type
    assert reference_key(INFO | {"dataset": "sts12/concat"}, "wmean").endswith("/wmean")


@pytest.mark.parametrize("measured,status", [(0.5, PASS), (0.5009, PASS), (0.4991, PASS), (0.5011, FAIL),
                                             (0.4989, FAIL), (None, FAIL)])
def test_verdict_is_two_sided(measured, status):
    v = judge("k", measured, Reference(0.5, None, "file f"), default_tolerance=1e-3)
    assert v.status == status
    if status == FAIL and measured is not None:
        assert f"spearman={measured:.4f} reference=0.5000 Δ={measured - 0.5:+.4f} ±0.001  [file f]" in v.line()


def test_reference_tolerance_overrides_the_default_and_undefined_matches_undefined():
    assert judge("k", 0.52, Reference(0.5, 0.05, "f"), 1e-3).status == PASS
    assert judge("k", None, Reference(None, None, "f"), 1e-3).status == PASS
    assert judge("k", 0.5, Reference(None, None, "f"), 1e-3).status == FAIL


def test_a_case_without_reference_fails_unless_new_cases_are_accepted():
    info = dict(INFO)
    (v,) = judge_case(info, {}, accept_new=False)
    assert v.status == MISSING and info["gate"] == MISSING and info["accept_new_cases"] is False
    info = dict(INFO)
    (v,) = judge_case(info, {}, accept_new=True)
    assert v.status == NEW and info["gate"] == NEW and info["accept_new_cases"] is True
    assert any("--accept-new-cases" in line for line in gates.summary_lines([judge("k", 0.1, None, 1e-3)]))


def test_sts_aggregates_are_gated_each():
    info = INFO | {"dataset": "sts12/concat", "spearman": 0.5, "spearman_mean": 0.4, "spearman_wmean": 0.45}
    refs = {reference_key(info, m): Reference(v, None, "f") for m, v in (("spearman", 0.5), ("mean", 0.4),
                                                                       ("wmean", 0.46))}
    verdicts = judge_case(info, refs)
    assert [v.status for v in verdicts] == [PASS, PASS, FAIL] and info["gate"] == FAIL


def test_published_anchor_is_checked_whatever_the_reference():
    info = INFO | {"model_key": "all-minilm-l6-v2", "dataset": "stsb", "layer": 5, "pooling": "mean",
                   "spearman": 0.80}
    refs = {reference_key(info): Reference(0.80, None, "f")}
    verdicts = judge_case(info, refs)
    assert [v.status for v in verdicts] == [PASS, FAIL] and "0.8203" in verdicts[1].line()
    assert [v.status for v in judge_case(info | {"spearman": 0.8205}, {reference_key(info): Reference(0.8205, None, "f")})] == [PASS, PASS]


PROMPT_EOL = {"template": "promptEOL", "template_text": 'This sentence : "{sentence}" means in one word:"'}


def test_a_prompted_case_never_meets_the_plain_cases_reference():
    plain = INFO | {"template": None, "template_text": None}  # what the suite records when unprompted
    assert reference_key(plain) == reference_key(INFO)  # keys of the committed references file stay valid
    prompted = INFO | PROMPT_EOL
    assert reference_key(prompted) == (
        "smoke/rwkv6-tiny-1m@83c304fc424b/stsb-sample-test@a3e5d3e1cb9d/L05/weighted_mean+promptEOL/cpu-float32")
    a, b = (INFO | {"template": "custom", "template_text": t} for t in ("Q: {sentence}", "Q:{sentence}"))
    assert len({reference_key(x) for x in (plain, prompted, a, b)}) == 4
    assert "/weighted_mean+custom@" in reference_key(a)
    (v,) = judge_case(prompted, {reference_key(plain): Reference(0.5, None, "f")})
    assert v.status == MISSING


def test_a_published_anchor_is_for_unprompted_text_only():
    info = INFO | {"model_key": "all-minilm-l6-v2", "dataset": "stsb", "layer": 5, "pooling": "mean",
                   "spearman": 0.70}
    refs = {reference_key(info | PROMPT_EOL): Reference(0.70, None, "f")}
    assert [v.status for v in judge_case(info | PROMPT_EOL, refs)] == [PASS]


def test_unknown_device_dtype_has_no_silent_tolerance():
    with pytest.raises(ValueError, match="no accuracy tolerance for device 'mps' dtype 'float32'"):
        gates.tolerance_for("mps", "float32")


@pytest.mark.parametrize("content,message", [
    (None, "does not exist"),
    ("{not json", "is not JSON"),
    ("{}", "has no 'references' object"),
    ("[1, 2]", "has no 'references' object \\(got list\\)"),
    ('{"floors": {"k": 0.5}}', "has no 'references' object"),
    ('{"references": {"k": "0.5"}}', "entry 'k' is '0.5'"),
    ('{"references": {"k": {"spearman": "high"}}}', "has spearman 'high', not a number"),
    ('{"references": {"k": {"spearman": 0.5, "tolerance": -1}}}', "has tolerance -1"),
])
def test_malformed_references_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "refs.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message) as e:
        load_references_file(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def _run(refs: dict[str, float]) -> dict:
    return {"benchmarks": [{"name": k, "extra_info": INFO | {"pooling": k, "spearman": v}} for k, v in refs.items()]}


def test_history_takes_the_newest_saved_run_that_has_the_case(tmp_path):
    machine = tmp_path / "Linux-CPython-3.11-64bit"
    machine.mkdir()
    (machine / "0001_aaa_20261126.json").write_text(json.dumps(_run({"mean": 0.1, "max": 0.2})))
    (machine / "0002_bbb_20261127.json").write_text(json.dumps(_run({"mean": 0.3})))
    (machine / "0003_ccc_20261128.json").write_text("{broken")  # pytest-benchmark's file: skipped, not fatal
    refs = history_references(f"file://{tmp_path}")
    mean, mx = refs[reference_key(INFO | {"pooling": "mean"})], refs[reference_key(INFO | {"pooling": "max"})]
    assert (mean.value, mx.value) == (0.3, 0.2)
    assert "0002_bbb" in mean.source and "0001_aaa" in mx.source


def test_refresh_writes_measured_value_and_measured_tolerance_not_the_ci(tmp_path):
    run = _run({"mean": 0.61234567})
    run["benchmarks"][0]["extra_info"] |= {"spearman_ci95_low": 0.5, "spearman_ci95_high": 0.7}
    src = tmp_path / "run.json"
    src.write_text(json.dumps(run))
    doc = refresh(src, tmp_path / "refs.json")
    assert doc["references"] == {reference_key(INFO | {"pooling": "mean"}): {"spearman": 0.612346, "tolerance": 1e-3}}
    assert load_references_file(tmp_path / "refs.json")[reference_key(INFO | {"pooling": "mean"})].value == 0.612346


@pytest.mark.parametrize("content,message", [
    ("[1, 2]", "expected a pytest-benchmark JSON object with a 'benchmarks' list, got list"),
    ("{oops", "is not JSON"),
    ('{"benchmarks": [{"name": "t", "extra_info": {"spearman": 0.5}}]}', "benchmarks[0] (t) cannot be keyed"),
    ('{"benchmarks": []}', "has no benchmark with a spearman"),
])
def test_thresholds_command_bad_input_is_one_line_exit_2(tmp_path, capsys, content, message):
    src = tmp_path / "run.json"
    src.write_text(content)
    assert thresholds_main([str(src), "--file", str(tmp_path / "refs.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("thresholds: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "refs.json").exists()


def test_thresholds_command_missing_file_exits_2_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "rwkv_eval.suite.thresholds", str(tmp_path / "nope.json")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1
