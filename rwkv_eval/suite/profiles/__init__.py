"""Benchmark profiles as data: which models, layers, poolings and datasets a run covers.

A profile is a small TOML file. The built-ins ship beside this module (smoke.toml, perf.toml,
paper.toml, sts.toml, ood.toml, pairs.toml, sweep.toml); `--rwkv-profile path/to/mine.toml` runs a
user's. Keeping the grid in data means "my two models, all 24 layers + final, every
pooling, STS-B and SICK-R" is a file or four command-line options, not a code change.

    smoke  (default) runs anywhere, offline, in minutes on 2 CPU cores: the tiny trained
           RWKV-6 / RWKV-7 (every layer x pooling), GloVe-50d and MiniLM on the STS-B sample.
    perf   the cost benchmarks: throughput vs package vs matmul limit, layer sweep, length
           scaling, aggregation and early-exit cost, a random-init RWKV-6 per layer x pooling.
    paper  the reference study: RWKV/v6-Finch-1B6-HF at layers 1,3,5,7,9,11, mean, vs GloVe.
    sts    STS-B test and SICK-R test: the RWKV model vs GloVe vs all-MiniLM-L6-v2.
    ood    out-of-domain STS12-16, per domain, pooled and mean.
    pairs  question I, linear vs softmax attention: compare.MODEL_PAIRS + REFERENCES, every
           layer, mean and last, causal models also promptEOL; STS-B val + test, SICK-R test.
    sweep  every layer of every model x every pooling x every dataset present (opt-in).

Format (every key but `spec` and dataset `name`/`split` optional; unknown keys are errors):

    name = "mine"                     # default: the file name; gate keys start with it
    description = "..."
    layers = "1,3,5"                  # default layers of models that do not set their own
    poolings = ["mean"]               # or "all"
    template = "promptEOL"            # default template of models that do not set their own (none)
    benchmarks = ["accuracy", "cost"] # which benchmarks run (default both): "accuracy" = the
                                      # layer x pooling grid (test_embeddings.py), "cost" = the
                                      # benchmarks marked rwkv_cost (throughput, length scaling,
                                      # aggregation, early exit)

    [[models]]
    spec = "RWKV/v6-Finch-1B6-HF"     # what models.load.load_encoder takes; {data} = data root
    key = "rwkv6-finch-1b6"           # id in test names and reports (default: from spec)
    revision = "main"                 # hub revision to pin
    layers = "emb,0-23,50%"           # ints, a-b, all, emb, final, 50% / 0.5 (relative depth)
    poolings = "all"
    template = "promptEOL"            # wrap each sentence (templates.py): a name, a string with one
                                      # {sentence}, or "none"; the default key gets "+promptEOL"
                                      # ("+custom"), so one model plain and prompted is two keys
    trained = true                    # false: Spearman meaningless (random init), cost real
    subject = true                    # the model under study: --model replaces it,
                                      # --layers / --pooling / --template apply to it
    optional = true                   # absent here -> skipped with a note (else an error)
    note = "..."                      # printed under the run's summary

    [[datasets]]
    name = "stsb"                     # mrpc, stsb, sickr, sts12..sts16, stsb-sample
    split = "test"
    optional = true                   # used when on disk under the data root, else skipped with a
                                      # note ("every dataset present"); required ones may come from the hub

    [reference]
    thresholds = "floors.json"        # Spearman floors, relative to this file

A required model or dataset that is missing stops the run with what to download and
how to point the suite at it: a nightly gate must not turn green because its model was
not there.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from ...datasets.registry import check_split, get
from ...options import check_layers, check_poolings

BUILTIN_DIR = Path(__file__).resolve().parent
PROFILES = ("smoke", "perf", "paper", "sts", "ood", "pairs", "sweep")
BENCHMARK_GROUPS = ("accuracy", "cost")  # the `benchmarks` key: the plugin deselects the groups not named
_TOP_KEYS = {"name", "description", "layers", "poolings", "template", "benchmarks", "models", "datasets", "reference"}
_MODEL_KEYS = {"spec", "key", "revision", "layers", "poolings", "template", "trained", "subject", "optional", "note"}
_DATASET_KEYS = {"name", "split", "optional"}
_REFERENCE_KEYS = {"thresholds"}


@dataclass(frozen=True)
class ModelCase:
    key: str  # short id used in test ids and reports, e.g. "rwkv6-finch-1b6"
    spec: str  # what models.load.load_encoder takes
    layers: tuple  # layer spec items as written: ints, "emb", "final", "all", "0-23", "50%"
    poolings: tuple[str, ...]
    trained: bool = True
    revision: str | None = None
    subject: bool = False
    template: str | None = None  # templates.TEMPLATES name or custom text; None = the sentence as is

    def static_layers(self) -> tuple | None:
        """The layer list when it needs no model to resolve: None for "all", relative
        depths and negative indices (they need the model's depth) and "final" (only some
        models have it: checked against the model before any case runs)."""
        from ...encoder import layer_items

        out: list = []
        for item in layer_items(self.layers):
            if isinstance(item, tuple) and item[0] == "range":
                out.extend(range(item[1], item[2] + 1))
            elif isinstance(item, tuple) or item in ("all", "final") or (isinstance(item, int) and item < 0):
                return None
            else:
                out.append(item)
        return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class DataCase:
    name: str  # a datasets registry name (datasets.load_pairs)
    split: str

    @property
    def key(self) -> str:
        return f"{self.name}-{self.split}"


@dataclass(frozen=True)
class Profile:
    name: str
    models: tuple[ModelCase, ...]
    datasets: tuple[DataCase, ...]
    data_dir: str | None
    notes: tuple[str, ...] = field(default=())
    source: str = ""  # the TOML file it came from
    thresholds: str | None = None  # [reference] thresholds, absolute
    benchmarks: tuple[str, ...] = BENCHMARK_GROUPS  # which benchmark groups run


@dataclass(frozen=True)
class _Entry:
    """A model or dataset as written in the file, before this machine is consulted."""

    case: ModelCase | DataCase
    optional: bool = False
    note: str | None = None


@dataclass(frozen=True)
class ProfileSpec:
    """A parsed, validated profile file (nothing resolved against this machine yet)."""

    name: str
    source: str
    models: tuple[_Entry, ...]
    datasets: tuple[_Entry, ...]
    layers: tuple
    poolings: tuple[str, ...]
    template: str | None
    thresholds: str | None
    benchmarks: tuple[str, ...] = BENCHMARK_GROUPS


class AssetMissing(RuntimeError):
    """A profile needs something that is not on this machine."""


class ProfileError(ValueError):
    """A profile file with an unknown key or a bad value (one line: file, key, fix)."""


def profile_path(name_or_path: str) -> Path:
    """A built-in name or a .toml path -> the file."""
    if name_or_path in PROFILES:
        return BUILTIN_DIR / f"{name_or_path}.toml"
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise ValueError(f"profile file {name_or_path} does not exist")
        return path
    raise ValueError(f"unknown profile {name_or_path!r}; choose from {', '.join(PROFILES)} or give a .toml file")


def load_profile(name_or_path: str) -> ProfileSpec:
    """Parse and check a profile file; every problem is a ProfileError naming file and key."""
    path = profile_path(name_or_path)
    where = str(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{where}: not valid TOML ({e})") from None
    _check_keys(doc, _TOP_KEYS, where, "")
    name = _string(doc.get("name", path.stem), where, "name")
    layers = _layers(doc.get("layers", "all"), where, "layers")
    poolings = _poolings(doc.get("poolings", ["mean"]), where, "poolings")
    template = _template(doc.get("template"), where, "template")
    benchmarks = _benchmarks(doc.get("benchmarks", list(BENCHMARK_GROUPS)), where)
    models = tuple(_model_entry(m, i, where, layers, poolings, template)
                   for i, m in enumerate(_tables(doc.get("models"), where, "models")))
    datasets = tuple(_dataset_entry(d, i, where) for i, d in enumerate(_tables(doc.get("datasets"), where, "datasets")))
    if not models:
        raise ProfileError(f"{where}: models: no [[models]] table; a profile needs at least one model")
    if not datasets:
        raise ProfileError(f"{where}: datasets: no [[datasets]] table; a profile needs at least one dataset")
    keys = [e.case.key for e in models]
    if dup := sorted({k for k in keys if keys.count(k) > 1}):
        raise ProfileError(f"{where}: models.key: {', '.join(dup)} used twice; give each model its own key")
    reference = doc.get("reference", {})
    if not isinstance(reference, dict):
        raise ProfileError(f"{where}: reference: expected a table, got {type(reference).__name__}")
    _check_keys(reference, _REFERENCE_KEYS, where, "reference.")
    thresholds = None
    if "thresholds" in reference:
        thresholds = str((path.parent / _string(reference["thresholds"], where, "reference.thresholds")).resolve())
    return ProfileSpec(name, where, models, datasets, layers, poolings, template, thresholds, benchmarks)


def build_profile(name: str, *, model: str | Sequence[str] | None = None, data_dir: str | None = None,
                  layers: str | None = None, poolings: str | None = None, template: str | None = None,
                  datasets: Sequence[str] = (), hub_models: bool = False, hub_datasets: bool = False) -> Profile:
    """Resolve a profile against this machine, with the command-line overrides.

    Args:
        name: built-in profile name or a .toml path.
        model: one or more models (--model, repeated): they replace the profile's subject
            models (taking their settings), or join the profile with its default layers
            and poolings when it has none.
        layers, poolings: --layers / --pooling for the subject models (and --model ones).
        template: --template for the subject models: a template name, a string with one
            {sentence}, or "none" to drop theirs; their keys follow (+promptEOL).
        datasets: --dataset NAME[:SPLIT], repeated; they replace the profile's datasets.

        data_dir: the data root (--data-dir, else $RWKV_EVAL_DATA: the plugin reads it), or None.
        hub_models, hub_datasets: whether a model / a required dataset that is not here may come
            from the Hugging Face hub at load time (the plugin: unless HF_HUB_OFFLINE /
            HF_DATASETS_OFFLINE). The default, False, reports what is missing instead of
            assuming it can be downloaded.

    Raises AssetMissing with what to download and how to point the suite at it.
    """
    spec = load_profile(name)
    extra = [model] if isinstance(model, str) else list(model or [])
    over_layers = _layers(layers, "--layers", "") if layers is not None else None
    over_poolings = _poolings(poolings, "--pooling", "") if poolings is not None else None
    over_template = _template(template, "--template", "") if template is not None else None
    entries = list(spec.models)
    if extra:
        subjects = [e for e in entries if e.case.subject]
        like = subjects[0].case if subjects else ModelCase("", "", spec.layers, spec.poolings, subject=True,
                                                           template=spec.template)
        added = [_Entry(replace(like, key=_model_key(m, like.template), spec=m, revision=None, subject=True))
                 for m in extra]
        entries = ([e for e in entries if not e.case.subject] + added) if subjects else entries + added
    if over_layers is not None or over_poolings is not None or template is not None:
        entries = [_Entry(_override(e.case, over_layers, over_poolings, template is not None, over_template),
                          e.optional, e.note) if e.case.subject else e for e in entries]
    data_entries = [_Entry(_dataset_arg(d)) for d in datasets] if datasets else list(spec.datasets)

    notes, problems, models, cases = [], [], [], []
    for e in entries:
        resolved = _resolve_model(e.case, data_dir, hub_models)
        if resolved is None:
            if e.optional:
                notes.append(f"model {e.case.key} ({e.case.spec}) not found here: skipped")
                continue
            problems.append(_model_missing(e.case.spec, data_dir))
            continue
        if e.note:
            notes.append(f"{e.case.key}: {e.note}")
        models.append(replace(e.case, spec=resolved))
    keys = [m.key for m in models]
    if dup := sorted({k for k in keys if keys.count(k) > 1}):
        raise ValueError(f"model key {', '.join(dup)} appears twice in profile {spec.name!r}; pass distinct models")
    for e in data_entries:
        # an optional dataset is one "present" on disk; a required one may come from the hub
        if _data_available(data_dir, e.case) or (not e.optional and hub_datasets and _datasets_installed()):
            cases.append(e.case)
        elif e.optional:
            notes.append(f"dataset {e.case.key} not found under the data root ({data_dir or 'unset'}): skipped")
        else:
            problems.append(
                f"dataset {e.case.key} not found under --data-dir/RWKV_EVAL_DATA ({data_dir or 'unset'}) and the hub "
                "`datasets` package is unavailable: put GLUE MRPC / STS-B / SICK / STS12-16 under one root "
                "(mrpc/, stsb/, sick/, sts12-16/YEAR/) and pass --data-dir ROOT, or "
                "`pip install 'rwkv-eval[hub]'` with network access")
    if problems:
        # a model plain and prompted is one download: listed once
        raise AssetMissing(f"profile {spec.name!r} cannot run here ({spec.source}):\n  - "
                           + "\n  - ".join(dict.fromkeys(problems)))
    return Profile(spec.name, tuple(models), tuple(cases), data_dir, tuple(notes), spec.source, spec.thresholds,
                   spec.benchmarks)


def _override(case: ModelCase, layers: tuple | None, poolings: tuple | None, retemplate: bool,
              template: str | None) -> ModelCase:
    """A subject model with the command line's grid; a new template renames it (+label) so
    its test ids and report rows never pass for the other template's."""
    case = replace(case, layers=layers or case.layers, poolings=poolings or case.poolings)
    if not retemplate or template == case.template:
        return case
    old = f"+{_template_label(case.template)}" if case.template else ""
    base = case.key.removesuffix(old) if old else case.key
    return replace(case, template=template, key=base + (f"+{_template_label(template)}" if template else ""))


# ---------------------------------------------------------------- file checks


def _check_keys(table: dict, allowed: set[str], where: str, prefix: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ProfileError(f"{where}: {prefix}{unknown[0]}: unknown key; allowed: {', '.join(sorted(allowed))}")


def _string(value, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProfileError(f"{where}: {key}: expected a non-empty string, got {value!r}")
    return value


def _bool(value, where: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise ProfileError(f"{where}: {key}: expected true or false, got {value!r}")
    return value


def _tables(value, where: str, key: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ProfileError(f"{where}: {key}: expected [[{key}]] tables, got {type(value).__name__}")
    return value


def _at(where: str, key: str) -> str:
    """'file.toml: models[0].layers', or just '--layers' for a command-line value."""
    return f"{where}: {key}" if key else where


def _layers(value, where: str, key: str) -> tuple:
    """A layer spec as written, checked by the grammar the CLI uses (options.check_layers)."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value] if isinstance(value, int) else value
    elif not isinstance(value, list):
        raise ProfileError(f"{_at(where, key)}: expected a string like '1,3,5' / '0-23' / 'all' or a list, "
                           f"got {value!r}")
    try:
        check_layers(value, _at(where, key))
    except ValueError as e:
        raise ProfileError(str(e)) from None
    return tuple(value.split(",") if isinstance(value, str) else value)


def _poolings(value, where: str, key: str) -> tuple[str, ...]:
    """Poolings as written ('all', 'mean,max' or a list), checked as --pooling is (options.check_poolings)."""
    try:
        return check_poolings(value, _at(where, key))
    except ValueError as e:
        raise ProfileError(str(e)) from None


def _benchmarks(value, where: str) -> tuple[str, ...]:
    """The benchmark groups a profile runs: a non-empty list drawn from BENCHMARK_GROUPS."""
    if (not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value)
            or set(value) - set(BENCHMARK_GROUPS)):
        raise ProfileError(f"{where}: benchmarks: expected a non-empty list drawn from "
                           f"{', '.join(map(repr, BENCHMARK_GROUPS))}, got {value!r}")
    return tuple(dict.fromkeys(value))


def _template(value, where: str, key: str) -> str | None:
    """A template as written (name or custom text), None for none; checked like --template."""
    from ...templates import PLACEHOLDER, TEMPLATES, resolve_template

    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ProfileError(f"{_at(where, key)}: expected a template name ({', '.join(TEMPLATES)}), a string with "
                           f"one {PLACEHOLDER} or 'none', got {value!r}")
    try:
        name, text = resolve_template(value)
    except ValueError as e:
        raise ProfileError(f"{_at(where, key)}: {e}") from None
    return None if name is None else name if name != "custom" else text


def _template_label(template: str) -> str:
    """What a template adds to a model key: its name, or "custom"."""
    from ...templates import TEMPLATES

    return template if template in TEMPLATES else "custom"


def _model_entry(table: dict, i: int, where: str, layers: tuple, poolings: tuple, template: str | None) -> _Entry:
    at = f"models[{i}]."
    _check_keys(table, _MODEL_KEYS, where, at)
    if "spec" not in table:
        raise ProfileError(f"{where}: {at}spec: missing; every model needs a spec (path, hub id or built-in name)")
    spec = _string(table["spec"], where, at + "spec")
    template = _template(table["template"], where, at + "template") if "template" in table else template
    case = ModelCase(
        key=_string(table.get("key", _model_key(spec, template)), where, at + "key"),
        spec=spec,
        layers=_layers(table["layers"], where, at + "layers") if "layers" in table else layers,
        poolings=_poolings(table["poolings"], where, at + "poolings") if "poolings" in table else poolings,
        trained=_bool(table.get("trained", True), where, at + "trained"),
        revision=_string(table["revision"], where, at + "revision") if "revision" in table else None,
        subject=_bool(table.get("subject", False), where, at + "subject"),
        template=template,
    )
    note = _string(table["note"], where, at + "note") if "note" in table else None
    return _Entry(case, _bool(table.get("optional", False), where, at + "optional"), note)


def _dataset_entry(table: dict, i: int, where: str) -> _Entry:
    at = f"datasets[{i}]."
    _check_keys(table, _DATASET_KEYS, where, at)
    for k in ("name", "split"):
        if k not in table:
            raise ProfileError(f"{where}: {at}{k}: missing; every dataset needs name and split")
    name = _string(table["name"], where, at + "name")
    try:
        get(name)
    except ValueError as e:
        raise ProfileError(f"{where}: {at}name: {e}") from None
    split = _string(table["split"], where, at + "split")
    try:
        check_split(name, split)
    except ValueError as e:
        raise ProfileError(f"{where}: {at}split: {e}") from None
    return _Entry(DataCase(name, split), _bool(table.get("optional", False), where, at + "optional"))


def _dataset_arg(arg: str) -> DataCase:
    """--dataset NAME[:SPLIT]; the split defaults to the registry entry's default (public gold labels)."""
    name, _, split = arg.partition(":")
    try:
        split = split or get(name).default_split
        check_split(name, split)
    except ValueError as e:
        raise ValueError(f"--dataset {arg}: {e}") from None
    return DataCase(name, split)


# ---------------------------------------------------------------- this machine


def _model_key(spec: str, template: str | None = None) -> str:
    name = Path(spec.rstrip("/")).name if Path(spec).exists() else spec.split("/")[-1]
    name = name.lower().removesuffix(".pth").removesuffix("-hf")
    name = {"v6-finch-1b6": "rwkv6-finch-1b6"}.get(name, name)
    return name + (f"+{_template_label(template)}" if template else "")


def _resolve_model(case: ModelCase, data_dir: str | None, hub: bool) -> str | None:
    """The spec to load on this machine, or None when the model is not here."""
    from ...models.load import GLOVE_NAMES, RANDOM_RE, SHIPPED, local_spec

    spec = case.spec
    if "{data}" in spec:
        if not data_dir:
            return None
        spec = spec.replace("{data}", str(data_dir))
    if spec in GLOVE_NAMES or spec in SHIPPED or spec.startswith("gensim:") or RANDOM_RE.match(spec):
        return spec  # built in: load_encoder knows the name (a shipped name keeps it, as GloVe's does)
    if local := local_spec(spec, case.revision):
        return local
    path = Path(spec).expanduser()
    if path.exists():
        return str(path)
    if spec.startswith((".", "/", "~")) or spec.endswith((".pth", ".txt")) or spec.count("/") != 1:
        return None
    return spec if _hub_model_available(spec, case.revision, hub) else None


def _model_missing(spec: str, data_dir: str | None) -> str:
    if "{data}" in spec:
        return (f"model {spec} needs a data root: pass --data-dir ROOT or set RWKV_EVAL_DATA "
                f"({data_dir or 'unset'} now)")
    return (f"model {spec} is not here: not a file, not in the local Hugging Face cache, and the hub is "
            f"unreachable (HF_HUB_OFFLINE): on a machine with network run `huggingface-cli download {spec}` "
            "(or download the BlinkDL .pth) and pass --model PATH, or unset HF_HUB_OFFLINE")


def _hub_model_available(spec: str, revision: str | None, hub: bool) -> bool:
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(spec, revision=revision, local_files_only=True)
        return True
    except Exception:  # not in the local cache (or huggingface_hub missing)
        # not cached: it can only come from the hub (a download failure at load time is
        # reported by the loader with the same instructions)
        return hub


def _data_available(data_dir: str | None, case: DataCase) -> bool:
    from ...datasets import load_pairs

    if get(case.name).shipped:
        return True
    try:
        load_pairs(case.name, case.split, data_dir, allow_hub=False)
        return True
    except FileNotFoundError:
        return False


def _datasets_installed() -> bool:
    try:
        import datasets  # noqa: F401
    except ImportError:
        return False
    return True
