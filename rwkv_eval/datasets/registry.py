"""The scored pair sets rwkv_eval knows: one frozen `DatasetSpec` per set, and the only list of them.

The loaders (`load_pairs`), the CLI's `--dataset` choices and split check, the profiles'
validation and the README's datasets table all read this registry, so adding a set is one
`register(DatasetSpec(...))` and its parser (a `parsers.Table` or any callable of that
signature). It imports nothing heavy: the CLI reads it on every `--help`.

Sources (a data root holds one folder per set; the layouts tried are in each entry):

- MRPC (Dolan & Brockett 2005), GLUE split (Wang et al. 2019, https://gluebenchmark.com),
  UTF-8 with a BOM; hub ``nyu-mll/glue`` config ``mrpc``.
- STS Benchmark (Cer et al., SemEval-2017 Task 1, https://aclanthology.org/S17-2001): the
  original csv (tab-separated, no header, 7 columns, some rows with 2 extra trailing source
  notes) or the GLUE copy ``STS-B/``; hub ``sentence-transformers/stsb`` (scores 0-1, scaled
  here to 0-5).
- SICK-R (Marelli et al., SemEval-2014 Task 1); hub ``mteb/sickr-sts`` (test only).
- GLUE RTE and QQP (Wang et al. 2019), binary like MRPC: scored as similarity, with accuracy
  at a threshold tuned on train.
- BIOSSES (Soğancıoğlu et al. 2017, Bioinformatics 33(14)): 100 biomedical sentence pairs
  scored 0-4, a source STS-B was not built from; hub ``mteb/biosses-sts`` (test only). No
  file is published in a plain layout: ``biosses/test.tsv`` is the hub's three columns
  written as a tab-separated file with a header (README: how).
- SemEval STS 2012-2016 (Agirre et al.), one file per domain; hub ``mteb/sts12-sts`` ...
  ``mteb/sts16-sts``. Reference code: facebookresearch/SentEval, senteval/sts.py at commit
  961edcb3160302ba28c71c58e037cc50cc68021d, reads STS12-16 per domain and drops rows with an
  empty gold score as done here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

from . import parsers
from .parsers import Parser

SPLITS = ("train", "train-1000", "validation", "test")  # every split name a set may have, in this order
# split -> (the split it is drawn from, size, seed): a fixed seeded subset (pairs.sample) keeps the
# slow train-split runs comparable across models
SUBSET_SPLITS = {"train-1000": ("train", 1000, 0)}


def base_split(split: str) -> str:
    """The split whose file holds `split`: itself, or the one a subset split is drawn from."""
    return SUBSET_SPLITS[split][0] if split in SUBSET_SPLITS else split


@dataclass(frozen=True)
class Layout:
    """One place a split's file may sit under a data root, and the parser that reads it.

    path: relative to the data root; ``{domain}`` makes it one file per domain (every one of
    the entry's `domains` required, other files matching the pattern loaded too). requires:
    the first columns the file's first row must have for it to be taken; it guards a bare
    name that another set could own (``ROOT/train.tsv`` is MRPC, RTE or QQP).
    """

    path: str
    parser: Parser
    requires: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Hub:
    """The Hugging Face hub copy: id, config, the splits it has with gold, how its columns map.

    columns: (sentence 1, sentence 2, gold). labels: binary sets, hub label -> gold. scale:
    multiplies the hub's scores onto the set's gold range. unscored_ok: as the files' `Table`. note: how the copy differs from
    the files, repeated in every PairSet read from it.
    """

    id: str
    splits: tuple[str, ...]
    config: str | None = None
    columns: tuple[str, str, str] = ("sentence1", "sentence2", "score")
    labels: Mapping[int, float] | None = None
    scale: float = 1.0
    unscored_ok: bool = False  # rows with an empty score are skipped and counted (STS15/16), not refused
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.id} (config {self.config})" if self.config else self.id


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the package knows about one scored pair set.

    files: split -> the layouts tried in order under a data root (a "train-1000" split is
    drawn from train's file). shipped: the files sit inside the package (rwkv_eval/data/),
    a data root does not apply. domains: sets published as one file per domain (STS years);
    the loader returns one PairSet per domain. default_split: the split the CLI and
    profiles use when none is given (the one with public gold labels that is reported).
    """

    name: str
    title: str
    splits: tuple[str, ...]
    files: Mapping[str, tuple[Layout, ...]]
    gold_range: tuple[float, float]
    binary: bool
    how_to_get: str
    default_split: str = "test"
    hub: Hub | None = None
    domains: tuple[str, ...] = ()
    shipped: bool = False
    note: str = ""

    def __post_init__(self):
        where = f"dataset {self.name!r}"
        if not self.name or "/" in self.name or ":" in self.name:
            raise ValueError(f"{where}: a name must be non-empty without '/' or ':' (they separate domains and "
                             "splits); pick another name")
        if unknown := [s for s in self.splits if s not in SPLITS]:
            raise ValueError(f"{where}: unknown split(s) {unknown}; use names from {list(SPLITS)}")
        if self.default_split not in self.splits:
            raise ValueError(f"{where}: default_split {self.default_split!r} is not one of its splits "
                             f"{list(self.splits)}")
        need = {base_split(s) for s in self.splits}
        if missing := sorted(need - set(self.files)):
            raise ValueError(f"{where}: no file layout for split(s) {missing}; add files[split] = (Layout(...),)")
        if self.gold_range[0] >= self.gold_range[1]:
            raise ValueError(f"{where}: gold_range {self.gold_range} is empty; give (min, max) with min < max")

    @property
    def gold_kind(self) -> str:
        return "binary" if self.binary else "graded"


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add a set; every reader of the registry (loaders, CLI, profiles) sees it from now on."""
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"register() takes a DatasetSpec; got {type(spec).__name__}")
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} is already registered; unregister({spec.name!r}) it first")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> DatasetSpec:
    return _REGISTRY.pop(get(name).name)


def get(name: str) -> DatasetSpec:
    """The entry of `name`; an unknown name is a ValueError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(_REGISTRY)}") from None


def names() -> tuple[str, ...]:
    """The registered names, in registration order (read at call time: late registrations show)."""
    return tuple(_REGISTRY)


def specs() -> Iterator[DatasetSpec]:
    return iter(tuple(_REGISTRY.values()))


def check_split(name: str, split: str) -> DatasetSpec:
    """The entry of `name` if it has `split`; otherwise a ValueError listing its splits."""
    spec = get(name)
    if split not in spec.splits:
        raise ValueError(f"unknown split {split!r} for {name}; expected one of {list(spec.splits)}")
    return spec


def markdown_table() -> str:
    """The README's datasets table (tests/test_registry.py checks the README holds exactly this).

    Print it with ``python -c "from rwkv_eval.datasets import registry; print(registry.markdown_table())"``.
    """
    lines = ["| dataset | splits | files under the data root | hub | gold |", "|---|---|---|---|---|"]
    for s in specs():
        # the first layout of each split; the alternatives are in the entry and in "not found" messages
        files = ", ".join(f"`{s.files[split][0].path}`" for split in s.files)
        files = f"shipped: `rwkv_eval/data/{files.strip('`')}`" if s.shipped else files
        gold = "binary 0/1" if s.binary else f"graded {s.gold_range[0]:g}-{s.gold_range[1]:g}"
        hub = f"`{s.hub.id}`" + (f" `{s.hub.config}`" if s.hub.config else "") if s.hub else "-"
        lines.append(f"| `{s.name}` ({s.title}) | {', '.join(s.splits)} | {files} | {hub} | {gold} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- the built-in sets

_GLUE_HOW = "run GLUE's download_glue_data.py (https://gluebenchmark.com)"


def _glue(name: str, stem: str, table: parsers.Table, requires: tuple[str, ...] | None = None) -> tuple[Layout, ...]:
    """GLUE's task folder (lower or upper case) or, guarded by its header, a bare file in the root."""
    f = f"{stem}.tsv"
    return (Layout(f"{name}/{f}", table), Layout(f"{name.upper()}/{f}", table),
            Layout(f, table, requires or table.columns))


def _stsb(stem: str) -> tuple[Layout, ...]:
    # the GLUE check omits the score column so that GLUE's unlabelled test.tsv is taken and
    # refused with a clear message rather than reported missing
    glue = tuple(parsers.GLUE_STSB_UNLABELLED)
    g = f"{stem}.tsv"
    return (Layout(f"stsb/sts-{stem}.csv", parsers.STSB), Layout(f"sts-{stem}.csv", parsers.STSB),
            Layout(f"STS-B/{g}", parsers.glue_stsb, glue), Layout(f"stsb/STS-B/{g}", parsers.glue_stsb, glue),
            Layout(g, parsers.glue_stsb, glue))


def _sick(file: str) -> tuple[Layout, ...]:
    return Layout(f"sick/{file}", parsers.SICK), Layout(file, parsers.SICK)


_STEMS = {"train": "train", "validation": "dev", "test": "test"}
_MRPC_HUB_NOTE = "hub text is tokenized (\"doesn 't\"), unlike the GLUE files"

register(DatasetSpec(
    "mrpc", "GLUE MRPC", ("train", "train-1000", "validation", "test"),
    {s: _glue("mrpc", stem, parsers.MRPC) for s, stem in _STEMS.items()},
    (0.0, 1.0), binary=True, default_split="validation",
    # GLUE's test labels are -1 on the hub
    hub=Hub("nyu-mll/glue", ("train", "validation"), "mrpc", ("sentence1", "sentence2", "label"), {0: 0.0, 1: 1.0},
            note=_MRPC_HUB_NOTE),
    how_to_get=f"GLUE MRPC: {_GLUE_HOW} or take msr_paraphrase_{{train,test}}.txt from "
               "https://www.microsoft.com/en-us/download/details.aspx?id=52398; put train.tsv, dev.tsv, test.tsv in "
               "ROOT/mrpc/"))
register(DatasetSpec(
    "stsb", "STS Benchmark", ("train", "validation", "test"), {s: _stsb(stem) for s, stem in _STEMS.items()},
    (0.0, 5.0), binary=False,
    hub=Hub("sentence-transformers/stsb", ("train", "validation", "test"), scale=5.0,
            note="hub scores are 0-1; multiplied by 5 to the 0-5 scale"),
    how_to_get="STS Benchmark: unpack stsbenchmark.tar.gz (http://ixa2.si.ehu.eus/stswiki/index.php/STSbenchmark) "
               "so that ROOT/stsb/sts-{train,dev,test}.csv exist (or GLUE's STS-B/ folder as ROOT/STS-B/)"))
register(DatasetSpec(
    "sickr", "SICK-R", ("train", "validation", "test"),
    {"train": _sick("SICK_train.txt"), "validation": _sick("SICK_trial.txt"),
     "test": _sick("SICK_test_annotated.txt")},
    (1.0, 5.0), binary=False, hub=Hub("mteb/sickr-sts", ("test",)),
    how_to_get="SICK: download SICK_train.txt, SICK_trial.txt, SICK_test_annotated.txt "
               "(https://marcobaroni.org/composes/sick.html, SemEval-2014 Task 1) into ROOT/sick/"))

# The scored domains of each year as released (2013's SMT is LDC-licensed and not public).
_STS_YEARS = {
    "2012": ("MSRpar", "MSRvid", "OnWN", "SMTeuroparl", "SMTnews"),
    "2013": ("FNWN", "OnWN", "headlines"),
    "2014": ("OnWN", "deft-forum", "deft-news", "headlines", "images", "tweet-news"),
    "2015": ("answers-forums", "answers-students", "belief", "headlines", "images"),
    "2016": ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}
for _year, _domains in _STS_YEARS.items():
    _name = f"sts{_year[2:]}"
    _table = parsers.STS_DOMAIN_UNSCORED_OK if _year in ("2015", "2016") else parsers.STS_DOMAIN
    register(DatasetSpec(
        _name, f"SemEval STS {_year}", ("test",),
        {"test": tuple(Layout(f"{folder}{{domain}}.test.tsv", _table)
                       for folder in (f"sts12-16/{_year}/", f"{_year}/", ""))},
        (0.0, 5.0), binary=False, domains=_domains,
        hub=Hub(f"mteb/{_name}-sts", ("test",), unscored_ok=_table.unscored_ok),
        how_to_get=f"SemEval STS {_year}: put the per-domain DOMAIN.test.tsv files (score, s1, s2) in "
                   f"ROOT/sts12-16/{_year}/ (e.g. from https://github.com/brmson/dataset-sts "
                   f"data/sts/semeval-sts/{_year}/)"))

SAMPLE_SIZE = 300  # the selection is in rwkv_eval/data/stsb_sample.NOTICE.md and load.load_sample
SAMPLE_SOURCES = ("images", "track5.en-en")
register(DatasetSpec(
    "stsb-sample", "300 STS-B test pairs, CC BY-SA", ("test",), {"test": (Layout("stsb_sample.tsv", parsers.STSB),)},
    (0.0, 5.0), binary=False, shipped=True,
    how_to_get="it ships inside the package (rwkv_eval/data/stsb_sample.tsv); reinstall rwkv_eval",
    note=f"{SAMPLE_SIZE} STS-B test pairs of the CC BY-SA sources {', '.join(SAMPLE_SOURCES)}; selection in "
         "rwkv_eval/data/stsb_sample.NOTICE.md; scores and text CC BY-SA 4.0"))
for _name, _table, _title in (("rte", parsers.RTE, "GLUE RTE"), ("qqp", parsers.QQP, "GLUE QQP")):
    register(DatasetSpec(
        _name, _title, ("train", "train-1000", "validation"),  # GLUE's test labels are not public
        {s: _glue(_name, _STEMS[s], _table) for s in ("train", "validation")},
        (0.0, 1.0), binary=True, default_split="validation",
        # GLUE hub RTE: 0 = entailment, 1 = not_entailment
        hub=Hub("nyu-mll/glue", ("train", "validation"), _name,
                ("question1", "question2", "label") if _name == "qqp" else ("sentence1", "sentence2", "label"),
                {0: 1.0, 1: 0.0} if _name == "rte" else {0: 0.0, 1: 1.0}),
        how_to_get=f"{_title}: {_GLUE_HOW} and put train.tsv and dev.tsv (header {', '.join(_table.columns)}) "
                   f"in ROOT/{_name}/"))

register(DatasetSpec(
    "biosses", "BIOSSES, biomedical", ("test",), {"test": (Layout("biosses/test.tsv", parsers.BIOSSES),)},
    (0.0, 4.0), binary=False, hub=Hub("mteb/biosses-sts", ("test",)),
    how_to_get="BIOSSES: write the hub copy mteb/biosses-sts (split test) as ROOT/biosses/test.tsv with the header "
               "sentence1, sentence2, score (tab-separated; the README has the five lines of Python)"))

# The SemEval years' domains, for analyses that group by year (the OOD protocol).
STS_DOMAINS: dict[str, tuple[str, ...]] = {f"sts{y[2:]}": d for y, d in _STS_YEARS.items()}
