"""The dataset registry is the only list of sets: a set registered at run time reaches the CLI's
choices, the profiles' validation and the loader; the README table and the pytest options follow it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rwkv_eval import cli
from rwkv_eval.datasets import DatasetSpec, Layout, get, load_pairs, names, register, registry, unregister
from rwkv_eval.datasets.parsers import Parsed
from rwkv_eval.suite.profiles import ProfileError, build_profile, load_profile

ROOT = Path(__file__).resolve().parents[1]
TOY = "toy-pairs"


def parse_toy(rows, where, gold_range):
    """A layout of our own: sentence, sentence, score; no header."""
    s1, s2, gold = zip(*((f[0], f[1], float(f[2])) for _, f in rows))
    return Parsed(s1, s2, gold)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """One file in a tmp data root and one registration; removed after the test."""
    monkeypatch.delenv("RWKV_EVAL_DATA", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "pairs.tsv").write_text("a cat\ta dog\t0.5\nrain\tsnow\t0.25\nup\tdown\t1\n", encoding="utf-8")
    assert TOY not in names()
    register(DatasetSpec(TOY, "toy pairs of this test", ("test",), {"test": (Layout("toy/pairs.tsv", parse_toy),)},
                         (0.0, 1.0), binary=False, how_to_get="tests/test_registry.py writes it"))
    yield tmp_path
    unregister(TOY)


def test_a_set_registered_at_run_time_reaches_cli_profiles_and_loader(toy, capsys):
    # the loader
    p = load_pairs(TOY, "test", toy)
    assert (p.name, p.split, p.sentence1, p.gold_kind, p.gold_range) == (TOY, "test", ("a cat", "rain", "up"),
                                                                         "graded", (0.0, 1.0))
    assert p.gold.dtype == np.float64 and list(p.gold) == [0.5, 0.25, 1.0]
    assert p.source == str(toy / "toy" / "pairs.tsv")
    # the CLI: --dataset choices (parse and --help) and the split check
    args = cli.parser().parse_args(["evaluate", "--dataset", TOY])
    assert args.dataset == TOY and cli._check_split(TOY, None) == "test"
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["evaluate", "--help"])
    assert TOY in capsys.readouterr().out
    with pytest.raises(ValueError, match=f"--split validation does not apply to --dataset {TOY}; it has test"):
        cli._check_split(TOY, "validation")
    # the profiles: a TOML naming it loads, build_profile accepts it (and its --dataset override)
    toml = toy / "toy.toml"
    toml.write_text(f'name = "toy"\n\n[[models]]\nspec = "glove-6b-50d"\nsubject = true\n\n'
                    f'[[datasets]]\nname = "{TOY}"\nsplit = "test"\n')
    assert [e.case.key for e in load_profile(str(toml)).datasets] == [f"{TOY}-test"]
    prof = build_profile(str(toml), data_dir=str(toy))
    assert [(d.name, d.split) for d in prof.datasets] == [(TOY, "test")]
    assert [(d.name, d.split) for d in build_profile(str(toml), data_dir=str(toy), datasets=[TOY]).datasets] == [
        (TOY, "test")]


def test_an_unregistered_set_is_refused_everywhere(tmp_path):
    assert TOY not in names()
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["evaluate", "--dataset", TOY])
    with pytest.raises(ValueError, match=f"unknown dataset '{TOY}'"):
        load_pairs(TOY, "test", tmp_path)
    toml = tmp_path / "toy.toml"
    toml.write_text(f'name = "toy"\n\n[[models]]\nspec = "glove-6b-50d"\n\n[[datasets]]\nname = "{TOY}"\n'
                    'split = "test"\n')
    with pytest.raises(ProfileError, match=rf"datasets\[0\].name: unknown dataset '{TOY}'"):
        load_profile(str(toml))


def test_cli_choices_and_profile_splits_are_the_registry(shared_data, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sub = next(a for a in cli.parser()._actions if a.dest == "command").choices["evaluate"]
    choices = next(a for a in sub._actions if a.dest == "dataset").choices
    assert tuple(choices) == names() and "rte" in choices and "qqp" in choices
    # the default split is the entry's: validation where the test labels are not public or not reported
    assert [cli._check_split(n, None) for n in ("mrpc", "rte", "qqp", "stsb", "stsb-sample")] == [
        "validation", "validation", "validation", "test", "test"]
    # the drift of issue 17: rte was accepted by the CLI and refused by the pytest options
    assert [(d.name, d.split) for d in build_profile("smoke", data_dir=str(shared_data),
                                                                  datasets=["rte:validation", "rte"]).datasets] == [
        ("rte", "validation"), ("rte", "validation")]
    with pytest.raises(ValueError, match=r"--dataset rte:test: unknown split 'test' for rte"):
        build_profile("smoke", data_dir=str(shared_data), datasets=["rte:test"])


def test_registration_errors_say_what_to_fix():
    toy = dict(name=TOY, title="t", splits=("test",), files={"test": (Layout("x.tsv", parse_toy),)},
               gold_range=(0.0, 1.0), binary=False, how_to_get="-")
    with pytest.raises(ValueError, match="already registered"):
        register(DatasetSpec(**toy | {"name": "stsb"}))
    with pytest.raises(ValueError, match=r"unknown split\(s\) \['dev'\]"):
        DatasetSpec(**toy | {"splits": ("dev",)})
    with pytest.raises(ValueError, match=r"no file layout for split\(s\) \['train'\]"):
        DatasetSpec(**toy | {"splits": ("test", "train-1000")})
    with pytest.raises(ValueError, match="default_split 'test' is not one of its splits"):
        DatasetSpec(**toy | {"splits": ("train",), "files": {"train": toy["files"]["test"]}})
    with pytest.raises(ValueError, match="without '/' or ':'"):
        DatasetSpec(**toy | {"name": "a:b"})
    with pytest.raises(TypeError, match="takes a DatasetSpec"):
        register(toy)
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        unregister("nope")


def test_readme_datasets_table_is_the_registry():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- datasets table:", 1)[1].split("-->", 1)[1].split("<!-- end of the datasets table -->")[0]
    assert table.strip() == registry.markdown_table()
    # independently of markdown_table: every entry (name + splits) is a row, and nothing else is
    rows = {m[0]: tuple(m[1].split(", ")) for m in re.findall(r"^\| `([^`]+)` \([^)]*\) \| ([^|]+?) \|", table,
                                                               flags=re.M)}
    assert rows == {n: get(n).splits for n in names()}
    assert len(table.strip().splitlines()) == 2 + len(names())


def test_registry_import_is_light():
    """`rwkv-eval --help` builds its choices from the registry: neither numpy nor torch is imported."""
    code = ("import sys; import rwkv_eval.cli as c; c.parser().format_help(); "
            "print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_pytest_benchmarks_collects_rte_validation(shared_data):
    """`pytest benchmarks --dataset rte:validation` collects, as `rwkv-eval --dataset rte` runs."""
    env = os.environ | {"RWKV_EVAL_DATA": str(shared_data), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "benchmarks"),
                          "--dataset", "rte:validation", "--collect-only", "-q", "-p", "no:cacheprovider"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert re.search(r"test_similarity\[glove-6b-50d/L00/mean/rte-validation\]", res.stdout), res.stdout[-3000:]
