"""Row parsing: bytes of a published file -> sentences and gold scores, one parser per layout.

Files are read exactly as published, with quoting disabled (`csv.QUOTE_NONE`): MRPC and STS
sentences carry unbalanced double quotes that a quote-aware parser would silently merge
across lines. A parser is any callable ``parser(rows, where, gold_range) -> Parsed``; most
layouts are a `Table` (header, columns, which column holds what), which is the parser.

No numpy, no torch: the registry imports this module and the CLI builds its choices from
the registry on every `--help`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple, Sequence

Rows = list[tuple[int, list[str]]]  # (1-based line, tab-separated fields)


class DatasetFormatError(ValueError):
    """A row that does not fit the published layout; the message names file, 1-based line and expectation."""


class Parsed(NamedTuple):
    sentence1: tuple[str, ...]
    sentence2: tuple[str, ...]
    gold: tuple[float, ...]
    n_skipped: int = 0  # rows dropped by the layout's documented rule (unscored STS15/16 rows)


Parser = Callable[[Rows, str, "tuple[float, float]"], Parsed]


def decode_text(raw: bytes, where: str, error: type[ValueError] = ValueError) -> str:
    """`raw` as UTF-8 text without its BOM; a decoding error or a NUL byte raises `error`.

    The one check for every text file the package reads (data files, `rwkv-eval embed
    --input`): the message says what is wrong, where (line, and the 0-based byte offset in
    the file as stored, BOM included, so `head -c`/`xxd` find it) and how to fix it. A NUL
    byte is refused although it is valid UTF-8: it means a binary or corrupted file, which
    would otherwise be read as text.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise error(f"{where}: not UTF-8 at line {line}, byte offset {e.start}: {raw[e.start]:#04x} (0-based, in "
                    "the file as stored); re-encode it as UTF-8") from e
    if (nul := raw.find(b"\0")) >= 0:
        line = raw[:nul].count(b"\n") + 1
        raise error(f"{where}: NUL byte on line {line}, byte offset {nul} (0-based, in the file as stored); "
                    "expected a text file: is it binary, or corrupted?")
    return text.removeprefix("\ufeff")


def text_lines(text: str, where: str) -> list[str]:
    """The lines of a text file, whatever its line endings: LF, CRLF, or CR alone (classic Mac
    OS; read as one line, every sentence would become one). The final line break ends the last
    line, it does not start an empty one. A CR inside a line of an LF file is an error naming
    the line: it is a mix of conventions, and which one was meant cannot be told."""
    if "\r" in text and "\n" not in text:
        lines = text.split("\r")
    else:
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        if bad := next((n for n, line in enumerate(lines, start=1) if "\r" in line), None):
            raise ValueError(f"{where}, line {bad}: a carriage return (CR) inside the line; line endings must be LF, "
                             "CRLF or CR alone, not mixed: convert the file (e.g. dos2unix)")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def rows(raw: bytes, where: str) -> Rows:
    """(1-based line, fields) of a tab-separated file read with quoting off; a BOM is dropped.

    Trailing blank lines are allowed; a blank line inside the file is an error.
    """
    text = decode_text(raw, where, DatasetFormatError)
    # a sentence may be longer than csv's default field limit (131072 characters); no field can be
    # longer than the file, so that bound loses nothing
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    try:
        out = [(reader.line_num, fields) for fields in reader]
    except csv.Error as e:
        raise DatasetFormatError(f"{where}, line {reader.line_num}: {e}") from e
    while out and not out[-1][1]:
        out.pop()
    for line, fields in out:
        if not fields:
            raise DatasetFormatError(f"{where}, line {line}: blank line inside the file; expected a tab-separated row")
    return out


def first_row(raw_first_line: bytes) -> list[str]:
    """The fields of a file's first line, leniently decoded: only used to tell GLUE tasks apart."""
    return raw_first_line.decode("utf-8-sig", errors="replace").rstrip("\r\n").split("\t")


def clip(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[:n] + "..."


def sentence(text: object, loc: str, column: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DatasetFormatError(f"{loc}: {column} is empty; expected a sentence")
    return text


NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def parse_number(text: object) -> float | None:
    """The one reader of a number written in a file or on a command line: a plain decimal such
    as 4, -0.5, .25 or 1e-3 (ASCII, surrounding spaces allowed) -> a finite float; anything
    else -> None. A value that already is a number (a hub dataset's column) is taken when finite.

    Python's float() also takes "0_5" (= 5.0), "inf", "nan", "1e999" (= inf) and non-ASCII
    digits: a score or a setting written that way is a typo or a broken file, never read
    as a number."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        x = float(text)
    elif isinstance(text, str) and NUMBER_RE.fullmatch(text.strip()):
        x = float(text)
    else:
        return None
    return x if math.isfinite(x) else None


def score(text: object, loc: str, lo: float, hi: float, what: str = "score") -> float:
    x = parse_number(text)
    if x is None:
        raise DatasetFormatError(f"{loc}: {what} {text!r} is not a number; expected a number in [{lo:g}, {hi:g}]")
    if not lo <= x <= hi:
        raise DatasetFormatError(f"{loc}: {what} {x:g} out of range; expected [{lo:g}, {hi:g}]")
    return x


@dataclass(frozen=True)
class Table:
    """A tab-separated layout, and its parser: which columns hold the two sentences and the gold.

    header: the exact first row, or None when the file has none. columns: every column's
    name, in order (the header's, or the documented ones). extra_columns: other accepted
    column counts (STS-B rows with two trailing source notes). labels: for a binary set, the
    label text -> gold (0/1); otherwise the gold column is a score checked against the
    set's gold range. unscored_ok: a row with an empty score is skipped and counted, not
    refused (STS15/16 ship rows that were never gold-annotated).
    """

    columns: tuple[str, ...]
    sentence1: str
    sentence2: str
    gold: str
    header: bool = True
    extra_columns: tuple[int, ...] = ()
    labels: Mapping[str, float] | None = None
    unscored_ok: bool = False
    columns_note: str = ""

    def __call__(self, table_rows: Rows, where: str, gold_range: tuple[float, float]) -> Parsed:
        body = self._after_header(table_rows, where)
        counts = (len(self.columns), *self.extra_columns)
        i1, i2, ig = (self.columns.index(c) for c in (self.sentence1, self.sentence2, self.gold))
        s1, s2, gold, skipped = [], [], [], 0
        for line, f in body:
            loc = f"{where}, line {line}"
            if len(f) not in counts:
                raise DatasetFormatError(f"{loc}: expected {len(self.columns)} columns: {', '.join(self.columns)}"
                                         f"{self.columns_note}; found {len(f)} tab-separated column(s): "
                                         f"{clip(chr(9).join(f))!r}")
            if self.unscored_ok and f[ig] == "":
                skipped += 1
                continue
            gold.append(self._gold(f[ig], loc, gold_range))
            s1.append(sentence(f[i1], loc, self.sentence1))
            s2.append(sentence(f[i2], loc, self.sentence2))
        if not gold:  # else the first sign would be an encoder's "no sentences", far from the file
            raise DatasetFormatError(f"{where}: no pairs" + (f" with a score ({skipped} unscored rows)" if skipped
                                                             else "") + "; expected tab-separated rows of "
                                     + ", ".join(self.columns))
        return Parsed(tuple(s1), tuple(s2), tuple(gold), skipped)

    def _after_header(self, table_rows: Rows, where: str) -> Rows:
        if not self.header:
            return table_rows
        if not table_rows or tuple(table_rows[0][1]) != self.columns:
            got = "an empty file" if not table_rows else repr("\t".join(table_rows[0][1]))
            raise DatasetFormatError(f"{where}, line 1: expected the header {chr(9).join(self.columns)!r}, got {got}")
        return table_rows[1:]

    def _gold(self, text: str, loc: str, gold_range: tuple[float, float]) -> float:
        if self.labels is None:
            return score(text, loc, *gold_range, what=self.gold)
        if text not in self.labels:
            raise DatasetFormatError(f"{loc}: {self.gold} {text!r}; expected {' or '.join(self.labels)}")
        return self.labels[text]


BINARY_01 = {"0": 0.0, "1": 1.0}

MRPC = Table(("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), "#1 String", "#2 String", "Quality",
             labels=BINARY_01)
# original STS-B csv: genre, file, year, id, score, s1, s2 [, 2 source notes]
STSB = Table(("genre", "file", "year", "id", "score", "sentence 1", "sentence 2"), "sentence 1", "sentence 2",
             "score", header=False, extra_columns=(9,), columns_note=" (or 9, with two trailing source notes)")
GLUE_STSB = Table(("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
                    "sentence2", "score"), "sentence1", "sentence2", "score")
SICK = Table(("pair_ID", "sentence_A", "sentence_B", "relatedness_score", "entailment_judgment"),
             "sentence_A", "sentence_B", "relatedness_score")
# GLUE RTE: entailment is the "similar" class
RTE = Table(("index", "sentence1", "sentence2", "label"), "sentence1", "sentence2", "label",
            labels={"entailment": 1.0, "not_entailment": 0.0})
QQP = Table(("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), "question1", "question2",
            "is_duplicate", labels=BINARY_01)
# SemEval per-domain file: score, s1, s2; STS15/16 rows with an empty score are skipped and counted
STS_DOMAIN = Table(("score", "sentence 1", "sentence 2"), "sentence 1", "sentence 2", "score", header=False)
STS_DOMAIN_UNSCORED_OK = Table(STS_DOMAIN.columns, "sentence 1", "sentence 2", "score", header=False,
                               unscored_ok=True)

# BIOSSES as written from the hub copy (mteb/biosses-sts): the hub's column names as the header
BIOSSES = Table(("sentence1", "sentence2", "score"), "sentence1", "sentence2", "score")

GLUE_STSB_UNLABELLED: Sequence[str] = GLUE_STSB.columns[:-1]  # GLUE's test.tsv


def glue_stsb(table_rows: Rows, where: str, gold_range: tuple[float, float]) -> Parsed:
    """GLUE's STS-B/{train,dev}.tsv; its test.tsv (no score column) is refused with what to use instead."""
    if table_rows and tuple(table_rows[0][1]) == tuple(GLUE_STSB_UNLABELLED):
        raise DatasetFormatError(f"{where}, line 1: this GLUE STS-B file has no score column (GLUE's test.tsv "
                                 "is unlabelled); use sts-test.csv of the original stsbenchmark.tar.gz")
    return GLUE_STSB(table_rows, where, gold_range)
