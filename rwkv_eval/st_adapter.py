"""Any encoder here as a sentence-transformers / MTEB model, and results in MTEB's layout.

Embedding people evaluate with `mteb` and embed with sentence-transformers; both only
call `encode(sentences, batch_size=..., **kwargs) -> np.ndarray` (mteb 2 passes a
DataLoader of {"text": [...]} batches and task keywords, sentence-transformers a list of
strings), plus `similarity` / `similarity_pairwise`. `SentenceEncoder` puts that face on
an `Encoder` at one layer (or several, averaged or concatenated), one pooling and an
optional prompt template (templates.py, the one the CLI and the profiles use: promptEOL
here is promptEOL there), so an RWKV layer runs on any MTEB task unchanged:

    >>> from rwkv_eval.models.load import load_encoder
    >>> model = SentenceEncoder(load_encoder("tiny-rwkv6"), layer=5, pooling="mean")
    >>> model.encode(["A man plays a guitar.", "A dog runs."], batch_size=2).shape
    (2, 64)
    >>> # import mteb; mteb.evaluate(model, mteb.get_tasks(tasks=["STSBenchmark"]))

`export_mteb` writes our evaluation records as MTEB task-result JSON files
(`{root}/{model}/{revision}/{Task}.json` with `scores[split][i]["main_score"]`), so
mteb's result loaders and leaderboard tooling read them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .encoder import Encoder, Layer, parse_layers
from .pooling import check_poolings
from .encoder import layer_id
from .records import write_json_atomic
from .similarity import cosine
from .templates import with_template

AGGREGATIONS = ("mean", "concat")
# our dataset names -> MTEB task names (STS tasks: main_score = cosine_spearman)
MTEB_TASKS = {"stsb": "STSBenchmark", "sickr": "SICK-R", "sts12": "STS12", "sts13": "STS13", "sts14": "STS14",
              "sts15": "STS15", "sts16": "STS16"}


class SentenceEncoder:
    """sentence-transformers / MTEB `encode` over an Encoder at a fixed layer and pooling.

    Args:
        encoder: any Encoder (models.load.load_encoder).
        layer: one layer name (5, "emb", "final", "50%") or several, combined by `aggregation`.
        pooling: one of pooling.POOLINGS.
        aggregation: "mean" (average of the layers' pooled vectors) or "concat".
        template: a templates.TEMPLATES name ("promptEOL") or a string with one {sentence}
            where the sentence goes, e.g. 'In one word, "{sentence}" means:"'; None = the
            sentence as is.
        batch_size: default when the caller gives none.
    """

    def __init__(self, encoder: Encoder, layer: Layer | str | Sequence[Layer] = "final", pooling: str = "mean", *,
                 aggregation: str = "mean", template: str | None = None, batch_size: int = 32):
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}; got {aggregation!r}")
        spec = [layer] if isinstance(layer, (int, str)) and not (isinstance(layer, str) and "," in layer) else layer
        self.encoder = encoder if template is None else with_template(encoder, template)
        self.template_name = self.encoder.template  # "promptEOL" | "custom" | None
        self.layers = parse_layers(spec, encoder.layers())
        self.pooling = check_poolings((pooling,))[0]
        self.aggregation = aggregation
        self.batch_size = batch_size

    @property
    def name(self) -> str:
        """Model id with the layer and pooling: what a result is filed under."""
        layers = "+".join(layer_id(l) for l in self.layers)
        agg = f"-{self.aggregation}" if len(self.layers) > 1 else ""
        prompt = f"-{self.template_name}" if self.template_name else ""
        return f"{self.encoder.name}__{layers}{agg}-{self.pooling}{prompt}"

    def encode(self, sentences: str | Sequence[str] | Iterable[dict], batch_size: int | None = None, *,
               normalize_embeddings: bool = False, **kwargs: Any) -> np.ndarray:
        """(N, D) float32 in input order; a single string gives (D,), as in sentence-transformers.

        Keywords sentence-transformers and mteb pass (show_progress_bar, convert_to_numpy,
        task_metadata, task_name, hf_split, hf_subset, prompt_type, ...) are accepted and
        change nothing: the prompt is this adapter's `template`."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else _texts(sentences)
        if not texts:
            raise ValueError("encode received no sentences")
        emb = self.encoder.encode(texts, self.layers, [self.pooling], batch_size=batch_size or self.batch_size)
        parts = [emb.vectors[(l, self.pooling)] for l in self.layers]
        out = np.mean(parts, axis=0) if self.aggregation == "mean" else np.concatenate(parts, axis=1)
        out = out.astype(np.float32, copy=False)
        if normalize_embeddings:
            norm = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.where(norm == 0, 1, norm)
        return out[0] if single else out

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(N, M) cosine matrix (zero vectors score 0, as in our evaluation)."""
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        return cosine(np.repeat(a, len(b), axis=0), np.tile(b, (len(a), 1))).reshape(len(a), len(b))

    def similarity_pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(N,) cosine of row i of a with row i of b."""
        return cosine(np.atleast_2d(a), np.atleast_2d(b))


def _texts(inputs: Sequence[str] | Iterable[dict]) -> list[str]:
    """A list of strings, or mteb 2's DataLoader of {"text": [...]} batches, flattened."""
    items = list(inputs)
    if all(isinstance(t, str) for t in items):
        return items
    texts: list[str] = []
    for batch in items:
        if not (isinstance(batch, dict) and "text" in batch):
            raise TypeError(f"encode expects strings or batches with a 'text' list; got a {type(batch).__name__}")
        texts.extend(batch["text"])
    return texts


def export_mteb(records: Sequence[dict], root: str | Path, *, mteb_version: str = "rwkv-eval") -> list[Path]:
    """Write evaluation records (evaluation.evaluate) as MTEB task-result files.

    One file per (model, layer, pooling, task): `{root}/{model}__{layer}-{pooling}/{revision}/{Task}.json`,
    model "/" written as "__" as mteb does. STS scores are cosine Spearman / Pearson,
    raw (not x100); main_score = cosine_spearman. A multi-domain year (sts12..16) is
    filed from its pooled "/all" record. Datasets without an MTEB task (mrpc,
    stsb-sample) keep our name. Returns the paths written."""
    written = []
    for r in records:
        dataset = r["dataset"]
        if "/" in dataset and not dataset.endswith("/all"):
            continue  # per-domain and mean-of-domains records: MTEB scores the pooled set
        base = dataset.split("/")[0]
        task = MTEB_TASKS.get(base, base)
        model = f"{r['model']}__{layer_id(r['layer'])}-{r['pooling']}".replace("/", "__")
        revision = str(r.get("revision") or "no_revision_available")
        revision = revision if len(revision) <= 64 else revision[:64]
        scores = {"cosine_spearman": r["spearman"], "cosine_pearson": r["pearson"], "spearman": r["spearman"],
                  "pearson": r["pearson"], "main_score": r["spearman"], "hf_subset": "default",
                  "languages": ["eng-Latn"], "spearman_ci95": r.get("spearman_ci95"), "n_pairs": r.get("n_pairs")}
        doc = {"dataset_revision": _revision(r.get("dataset_revision")), "task_name": task,
               "mteb_version": mteb_version, "scores": {r["split"]: [scores]},
               "evaluation_time": r.get("encode_seconds"), "kg_co2_emissions": None,
               "date": time.time()}
        path = Path(root) / model / revision / f"{task}.json"
        write_json_atomic(path, doc)
        meta = {"name": f"{r['model']}__{layer_id(r['layer'])}-{r['pooling']}", "revision": revision,
                "framework": ["PyTorch"], "layer": r["layer"], "pooling": r["pooling"],
                "provenance": {k: r[k] for k in ("dtype", "device", "arch", "max_length") if k in r}}
        write_json_atomic(path.parent / "model_meta.json", meta)
        written.append(path)
    return written


def _revision(value) -> str:
    if isinstance(value, list):
        return json.dumps(value)
    return str(value) if value else "unknown"
