"""The benchmark suite end to end, in a subprocess, on the cheapest cases (GloVe on the
bundled sample): the JSON it writes, its two-sided accuracy gates against each reference
source, the nightly seeding and history cycle, clean usage errors, and the report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glove_oracle import glove_sample_spearman

from rwkv_eval.suite.gates import reference_key
from rwkv_eval.suite.plugin import PAIRED_RESAMPLES

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("spearman", "pearson", "spearman_ci95_low", "spearman_ci95_high", "n_pairs", "pairs_per_second",
            "tokens_per_second", "peak_memory_mb", "device", "dtype", "model", "revision", "dataset", "split",
            "dataset_revision", "layer", "layer_convention", "pooling", "torch_version", "transformers_version",
            "git_commit", "gate", "gate_key", "reference", "tolerance", "reference_source", "accept_new_cases",
            "vs_best", "trained")
GLOVE = "glove and stsb-sample"


def run_suite(tmp_path, *args, env=None, name="out.json"):
    out = tmp_path / name
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_embeddings.py"), "-q",
           "-p", "no:cacheprovider", "--benchmark-json", str(out), *args]
    e = {k: v for k, v in os.environ.items() if k != "RWKV_EVAL_DATA"} | {"HF_HUB_OFFLINE": "1",
                                                                          "HF_DATASETS_OFFLINE": "1"} | (env or {})
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=e)
    return res, out


def usage_error(res) -> str:
    """The output of a run that must stop with one clean usage error (exit 4, no traceback)."""
    text = res.stdout + res.stderr
    assert res.returncode == 4, text[-3000:]
    assert "Traceback" not in text and "_pytest" not in text and "conftest.py:" not in text, text[-3000:]
    return text


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """GloVe on the sample, gated by the committed references file."""
    tmp = tmp_path_factory.mktemp("suite")
    res, out = run_suite(tmp, "-k", GLOVE)
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
        # the process holds GloVe's 400k x 50 float32 vectors (76 MiB): its peak is above that
        assert info["peak_memory_mb"] > 76 and info["tokens_per_second"] > 0
        assert info["gate"] == "pass" and info["accept_new_cases"] is False
        assert info["reference_source"].startswith("references file") and info["tolerance"] == 1e-3
    for b in data["benchmarks"]:
        info = b["extra_info"]
        assert info["spearman"] == pytest.approx(glove_sample_spearman(info["pooling"]), abs=1e-6)
    assert data["rwkv_eval_gates"]["accept_new_cases"] is False
    assert "Spearman gates" in res.stdout and "2 pass" in res.stdout


def test_paired_comparison_of_the_two_poolings_is_recorded(smoke_run):
    _, data, _ = smoke_run
    mean, mx = (b["extra_info"] for b in data["benchmarks"])
    # on the sample, max pooling beats mean for GloVe by ~0.22, far outside the pair noise
    assert mx["vs_best"]["is_best"] and not mean["vs_best"]["is_best"]
    d = mean["vs_best"]
    assert d["delta_spearman"] == pytest.approx(mean["spearman"] - mx["spearman"], abs=1e-12)
    assert d["delta_ci95"][1] < 0 and d["significantly_worse"] and d["p_value"] < 0.01
    assert d["n_pairs"] == 300 and d["n_resamples"] == PAIRED_RESAMPLES and d["bootstrap_seed"] == 0
    assert d["correction"] == "holm" and d["resolution"]["sufficient"]
    assert "vs_baseline" not in mean  # GloVe is the baseline itself


def test_the_summary_resamples_enough_for_holm_over_a_tiny_rwkvs_settings():
    """A tiny RWKV has 65 settings (emb + 12 blocks x 5 poolings): with 1000 resamples the
    smallest bootstrap p, 2/1001, is above Holm's smallest threshold 0.05/64, so no setting
    could ever be marked worse; the summary's resamples must reach it."""
    from rwkv_eval.metrics import BOOTSTRAP_RESAMPLES, bootstrap_resolution

    assert not bootstrap_resolution(BOOTSTRAP_RESAMPLES, 64)["sufficient"]
    assert bootstrap_resolution(PAIRED_RESAMPLES, 65)["sufficient"]


def test_a_case_off_its_reference_in_either_direction_fails(tmp_path, smoke_run):
    _, data, _ = smoke_run
    mean, mx = (b["extra_info"] for b in data["benchmarks"])
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"references": {reference_key(mean): {"spearman": mean["spearman"] - 0.002},
                                               reference_key(mx): {"spearman": mx["spearman"] + 0.002}}}))
    res, out = run_suite(tmp_path, "-k", GLOVE, "--thresholds", str(refs))
    assert res.returncode == 1, res.stdout[-3000:]
    assert "2 FAIL" in res.stdout
    assert f"FAIL           {reference_key(mean)}  spearman={mean['spearman']:.4f} reference=" in res.stdout
    assert "Δ=+0.0020 ±0.001" in res.stdout and "Δ=-0.0020 ±0.001" in res.stdout
    assert f"[references file {refs}]" in res.stdout
    gates = {b["extra_info"]["pooling"]: b["extra_info"]["gate"] for b in json.loads(out.read_text())["benchmarks"]}
    assert gates == {"mean": "FAIL", "max": "FAIL"}


def test_nightly_cycle_seed_history_rerun_then_a_perturbed_history_fails(tmp_path):
    """What .github/workflows/nightly-gpu.yml does, on CPU: the first night has no history and
    no references, so it seeds (--accept-new-cases); the next night is gated by the saved
    run; a night whose results differ from the history fails, naming the history file."""
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"references": {}}))
    storage = tmp_path / ".benchmarks"
    common = ("-k", GLOVE, "--thresholds", str(empty), f"--benchmark-storage=file://{storage}")

    res, _ = run_suite(tmp_path, *common)  # no reference anywhere: fails with the list
    assert res.returncode == 1 and "2 no reference" in res.stdout and "--accept-new-cases" in res.stdout

    res, out = run_suite(tmp_path, *common, "--accept-new-cases", "--benchmark-autosave")
    assert res.returncode == 0, res.stdout[-3000:]
    seeded = json.loads(out.read_text())
    assert seeded["rwkv_eval_gates"]["accept_new_cases"] is True
    assert {b["extra_info"]["gate"] for b in seeded["benchmarks"]} == {"new (accepted)"}
    from rwkv_eval.report import build_report

    summary = (build_report(seeded, [], tmp_path / "reports", "seed") / "summary.md").read_text()
    assert "**New cases accepted** (`--accept-new-cases`): 2 cases" in summary
    (saved,) = storage.glob("*/0001_*.json")

    res, _ = run_suite(tmp_path, *common, name="night2.json")
    assert res.returncode == 0 and "2 pass" in res.stdout, res.stdout[-3000:]
    assert f"[history {saved}]" not in res.stdout  # passing cases are counted, not listed

    hist = json.loads(saved.read_text())
    hist["benchmarks"][0]["extra_info"]["spearman"] += 0.01  # the mean case
    saved.write_text(json.dumps(hist))
    res, _ = run_suite(tmp_path, *common, name="night3.json")
    assert res.returncode == 1 and "1 FAIL, 1 pass" in res.stdout, res.stdout[-3000:]
    assert "Δ=-0.0100 ±0.001" in res.stdout and f"[history {saved}]" in res.stdout


PROMPTED = """
layers = [0]
poolings = ["mean"]

[[models]]
spec = "glove-6b-50d"

[[models]]
spec = "glove-6b-50d"
template = "promptEOL"
subject = true

[[datasets]]
name = "stsb-sample"
split = "test"
"""


def test_a_prompted_model_is_its_own_case_scored_on_the_prompted_text(tmp_path):
    """The same model plain and with promptEOL in one profile: two ids, two records, two gate
    keys, two report rows; the prompted Spearman is GloVe's on prompted text, by hand."""
    profile = tmp_path / "prompted.toml"
    profile.write_text(PROMPTED)
    res, out = run_suite(tmp_path, "--rwkv-profile", str(profile), "--accept-new-cases")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    assert [b["name"] for b in data["benchmarks"]] == ["test_similarity[glove-6b-50d/L00/mean/stsb-sample-test]",
                                                       "test_similarity[glove-6b-50d+promptEOL/L00/mean/stsb-sample-test]"]
    plain, prompted = (b["extra_info"] for b in data["benchmarks"])
    assert (plain["template"], plain["template_text"]) == (None, None)
    assert (prompted["template"], prompted["template_text"]) == (
        "promptEOL", 'This sentence : "{sentence}" means in one word:"')
    assert plain["gate_key"].endswith("/L00/mean/cpu-float32")
    assert prompted["gate_key"].endswith("/L00/mean+promptEOL/cpu-float32")
    assert plain["spearman"] == pytest.approx(glove_sample_spearman("mean"), abs=1e-6)
    assert prompted["spearman"] == pytest.approx(
        glove_sample_spearman("mean", 'This sentence : "{sentence}" means in one word:"'), abs=1e-6)
    assert abs(prompted["spearman"] - plain["spearman"]) > 1e-3  # the prompt reached the encoder
    assert prompted["timed_batch_tokens"] > plain["timed_batch_tokens"]  # and the timed batch

    from rwkv_eval.report import build_report

    summary = (build_report(data, [], tmp_path / "reports", "prompted") / "summary.md").read_text()
    assert "| glove-6b-50d | L00 | mean |" in summary and "| glove-6b-50d+promptEOL | L00 | mean |" in summary

    res = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_embeddings.py"),
                          "--collect-only", "-q", "-p", "no:cacheprovider", "--rwkv-profile", str(profile),
                          "--template", "{sentence}!"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=os.environ | {"HF_HUB_OFFLINE": "1"}, check=False)
    assert res.returncode == 0 and "test_similarity[glove-6b-50d+custom/L00/mean/stsb-sample-test]" in res.stdout


def test_missing_thresholds_file_is_a_clean_usage_error(tmp_path):
    text = usage_error(run_suite(tmp_path, "-k", GLOVE, "--thresholds", str(tmp_path / "nope.json"))[0])
    assert f"references file {tmp_path / 'nope.json'} does not exist" in text


@pytest.mark.parametrize("args,message", [
    (("--device", "cuda"), "cuda requested but CUDA is not available"),
    (("--dtype", "int8"), "--dtype int8: not a dtype; choose from float32, fp32, float16"),  # as rwkv-eval says
    (("--layers", "1,one"), "--layers: 'one' is not a layer; expected ints"),
    (("--rwkv-profile", "nightly"), "unknown profile 'nightly'"),
])
def test_bad_options_are_clean_usage_errors(tmp_path, args, message):
    if args[0] == "--device":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    assert message in usage_error(run_suite(tmp_path, *args)[0])


def test_paper_profile_without_the_model_fails_fast_with_instructions(tmp_path):
    empty_cache = tmp_path / "hf"
    res, _ = run_suite(tmp_path, "--rwkv-profile", "paper", "--device", "cpu",
                       env={"HF_HOME": str(empty_cache), "HF_HUB_CACHE": str(empty_cache / "hub")})
    text = usage_error(res)
    assert "profile 'paper' cannot run here" in text
    assert "RWKV/v6-Finch-1B6-HF" in text and "--model PATH" in text and "--data-dir" in text


def test_report_from_the_run(tmp_path, smoke_run):
    from rwkv_eval.report import build_report

    _, data, _ = smoke_run
    folder = build_report(data, [data], tmp_path, name="t")
    text = (folder / "summary.md").read_text()
    assert "stsb-sample" in text and "glove-6b-50d" in text
    assert "| glove-6b-50d | L00 | mean | 0.3913 | -0.2166" in text and "| significantly worse |" in text


SUMMARY_PROFILE = """
name = "summary"
poolings = ["mean", "max"]

[[models]]
key = "glove-6b-50d"
spec = "glove-6b-50d"
layers = [0]

[[models]]
key = "rwkv6-tiny-1m"
spec = "tiny-rwkv6"
layers = [3, 5]

[[datasets]]
name = "stsb-sample"
split = "test"
"""


def test_the_summary_answers_best_setting_not_worse_ones_and_vs_glove_as_the_json_records(tmp_path):
    """The terminal summary names, per model, the best layer x pooling with its CI, the settings not
    significantly worse, and the verdict against GloVe-50d, each as the cases' paired comparisons
    (analyses.paired) recorded them in the JSON; a progress line per model (k of n) comes first."""
    profile = tmp_path / "summary.toml"
    profile.write_text(SUMMARY_PROFILE)
    res, out = run_suite(tmp_path, "--rwkv-profile", str(profile), "--accept-new-cases")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    text = res.stdout
    assert text.index("rwkv-eval [1/2] glove-6b-50d on stsb-sample-test") < text.index(
        "rwkv-eval [2/2] rwkv6-tiny-1m on stsb-sample-test: 2 layers x 2 poolings") < text.index("which layer")
    infos = {(b["extra_info"]["layer"], b["extra_info"]["pooling"]): b["extra_info"]
             for b in json.loads(out.read_text())["benchmarks"] if b["extra_info"]["model_key"] == "rwkv6-tiny-1m"}
    [best] = [s for s, i in infos.items() if i["vs_best"]["is_best"]]
    i = infos[best]
    base = i["vs_baseline"]
    lo, hi = base["delta_ci95"]
    flat = " ".join(text.split())  # the verdict lines wrap at the terminal's width
    assert (f"best L{best[0]:02d}/{best[1]}: ρ {i['spearman']:.4f} [{i['spearman_ci95_low']:.3f}, "
            f"{i['spearman_ci95_high']:.3f}]; vs glove-6b-50d L00/mean: Δρ {base['delta_spearman']:+.4f} "
            f"[{lo:+.3f}, {hi:+.3f}], {base['verdict']}") in flat
    same = [f"L{layer:02d}/{p}" for (layer, p), i in infos.items()
            if not i["vs_best"]["is_best"] and not i["vs_best"]["significantly_worse"]]
    assert f"not significantly worse than the best ({len(same)} of 3): {', '.join(same) or 'none'}" in flat
    marks = {"better": "+", "worse": "-", "no significant difference": "~"}
    for layer in (3, 5):
        cells = []
        for p in ("mean", "max"):
            i = infos[(layer, p)]
            mark = "*" if i["vs_best"]["is_best"] else " " if i["vs_best"]["significantly_worse"] else "="
            cells.append(f"{i['spearman']:.4f}{mark} {i['vs_baseline']['delta_spearman']:+.3f}"
                         f"{marks[i['vs_baseline']['verdict']]}".rjust(17))
        assert f"  L{layer:02d}   " + "".join(cells) in text
    assert "cost per model" in text and "rwkv6-tiny-1m" in text.split("cost per model")[1]


@pytest.mark.parametrize("profile,cost", [("smoke", False), ("perf", True)])
def test_the_profile_names_the_benchmark_groups_that_run(tmp_path, profile, cost):
    """smoke runs the accuracy grid only; perf adds the cost benchmarks (marked rwkv_cost)."""
    res = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "benchmarks"), "--collect-only", "-q",
                          "-p", "no:cacheprovider", "--rwkv-profile", profile], cwd=ROOT, capture_output=True,
                         text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "RWKV_EVAL_DATA"} | {"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    files = {line.split("::")[0] for line in res.stdout.splitlines() if "::" in line}
    cost_files = {f"benchmarks/test_{n}.py" for n in ("throughput", "length_scaling", "aggregation", "early_exit")}
    assert "benchmarks/test_embeddings.py" in files
    assert (cost_files <= files) if cost else not (cost_files & files)
    assert ("rwkv6-random-smoke/" in res.stdout) is cost  # the random-init model is cost only
