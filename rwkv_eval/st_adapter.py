"""Any encoder here as a sentence-transformers / MTEB model, and results in MTEB's layout.

`SentenceEncoder` puts an `Encoder` at one layer (or several, averaged or concatenated),
one pooling and an optional prompt template (templates.py: promptEOL here is promptEOL
in the CLI and the profiles) behind the two interfaces embedding people use:

* sentence-transformers' `SentenceTransformer.encode` (v6: `inputs`, `batch_size`,
  `convert_to_tensor`, `normalize_embeddings`, `truncate_dim`, ...), `encode_query` /
  `encode_document`, `similarity_fn_name`, `similarity` / `similarity_pairwise` and a
  `model_card_data` that records evaluator metrics, so ST's evaluators
  (EmbeddingSimilarityEvaluator, InformationRetrievalEvaluator, TripletEvaluator) run on it;
* mteb 2's `EncoderProtocol` (mteb/models/models_protocols.py): `encode` of a DataLoader of
  {"text": [...]} batches with `task_metadata`, `hf_split`, `hf_subset`, `prompt_type`,
  and a `mteb_model_meta` whose name and revision are unique per (model, weights,
  layer(s), aggregation, pooling, template, dtype), so mteb's result cache never answers
  for another model (with no meta, mteb files every such model as
  "no_model_name/available" and hands back whatever score is cached there).

    >>> from rwkv_eval.models.load import load_encoder
    >>> model = SentenceEncoder(load_encoder("tiny-rwkv6"), layer=5, pooling="mean")
    >>> model.encode(["A man plays a guitar.", "A dog runs."], batch_size=2).shape
    (2, 64)
    >>> model.name
    'local/tiny-rwkv-6v0-1m@L05-mean'
    >>> # import mteb; mteb.evaluate(model, mteb.get_tasks(tasks=["STSBenchmark"]))

Why a plain class and not a `SentenceTransformer` assembled from a custom module (our
encoder at a layer giving token embeddings + mask) and ST's own `Pooling`: the vectors
must be the ones `evaluation.evaluate` scores. Our poolings (pooling.py) include
first_last, which ST's Pooling lacks, and pool a sentence with no token to a zero vector;
several layers are combined *after* pooling; GloVe is no torch module that ST could move
between devices. A module route would need a second pooling implementation and (B, T, D)
states of every layer leaving the encoder. The plain class
is one call to `Encoder.encode` plus argument handling; what it cannot honour
(`precision` other than float32, `prompt`, token embeddings, multi-process pools,
unknown keywords) is refused by name rather than ignored. sentence-transformers and mteb
stay optional: mteb is imported only by `mteb_model_meta`.

`export_mteb` writes our evaluation records as MTEB results (`{root}/{name}/{revision}/
{Task}.json`, `model_meta.json` that mteb's `ModelMeta` validates, and our layer,
pooling and provenance in `rwkv_eval_provenance.jsonl`, a name mteb's loaders skip).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from .encoder import Encoder, Layer, layer_id, parse_layers
from .pooling import check_poolings
from .records import to_json, write_bytes_atomic, write_json_atomic
from .similarity import cosine
from .templates import with_template

AGGREGATIONS = ("mean", "concat")
# our dataset name -> (MTEB task, its test pair count in mteb 2.26's task metadata): a
# result is filed under the MTEB task only for that very set (tests check the counts)
MTEB_TASKS = {"stsb": ("STSBenchmark", 1379), "sickr": ("SICK-R", 9927), "sts12": ("STS12", 3108),
              "sts13": ("STS13", 1500), "sts14": ("STS14", 3750), "sts15": ("STS15", 3000), "sts16": ("STS16", 1186)}
PROVENANCE_FILE = "rwkv_eval_provenance.jsonl"  # not *.json: mteb reads every */*/*.json as a task result
NO_REVISION = "no_revision_available"  # mteb's own placeholder
_WEIGHT_SUFFIXES = {".pth", ".pt", ".bin", ".safetensors", ".txt", ".gz", ".model"}
_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def model_id(name: str) -> str:
    """The path-free "org/name" a model's results are filed under.

    A hub id keeps its org ("RWKV/v6-Finch-1B6-HF"); a local file or folder (absolute,
    relative with a folder, or a weights suffix) is "local/<stem>"; a built-in or org-less
    name is "rwkv-eval/<name>". Characters outside [A-Za-z0-9._+-] become "-", so the id
    holds exactly one "/" (mteb writes it as "__" on disk) and never "__" or "@"."""
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(".") or name.count("/") > 1 or p.suffix in _WEIGHT_SUFFIXES:
        org, base = "local", p.stem
    elif name.count("/") == 1:
        org, base = name.split("/")
    else:
        org, base = "rwkv-eval", name
    return "/".join(_SAFE.sub("-", part).replace("__", "-") for part in (org, base))


def mteb_name(model: str, layers: str, pooling: str, template: str | None, template_text: str | None,
              dtype: str | None) -> str:
    """`{model_id}@{layers}-{pooling}[-{template}][-{dtype}]`: one name per setting.

    "@" cannot occur in a hub id, so the model part and the setting part never blur. A
    custom template is named by the first 8 hex digits of its text's sha256 (two custom
    texts are two models); dtype is named when not float32 (a bf16 score is another result)."""
    setting = f"{layers}-{pooling}"
    if template == "custom":
        setting += "-custom" + hashlib.sha256((template_text or "").encode()).hexdigest()[:8]
    elif template:
        setting += f"-{template}"
    if dtype and dtype != "float32":
        setting += f"-{dtype}"
    return f"{model_id(model)}@{_SAFE.sub('-', setting)}"


def model_meta_fields(name: str, revision: str, *, embed_dim: int | None, max_tokens: int | None,
                      use_instructions: bool) -> dict:
    """Every field mteb's `ModelMeta` requires (it forbids extras): the one source of the
    adapter's `mteb_model_meta` and of the exported model_meta.json. Unknowns are None."""
    return {"loader": None, "name": name, "revision": revision, "release_date": None, "languages": None,
            "n_parameters": None, "memory_usage_mb": None, "max_tokens": max_tokens, "embed_dim": embed_dim,
            "license": None, "open_weights": None, "public_training_code": None, "public_training_data": None,
            "framework": ["PyTorch"], "similarity_fn_name": "cosine", "use_instructions": use_instructions,
            "training_datasets": None}


class EvaluationLog:
    """`model_card_data` for sentence-transformers' evaluators: they report their metrics
    through `set_evaluation_metrics`; this keeps them in `metrics`, in call order."""

    def __init__(self) -> None:
        self.metrics: list[dict] = []

    def set_evaluation_metrics(self, evaluator: Any, metrics: dict, epoch: int = 0, step: int = 0) -> None:
        self.metrics.append({"evaluator": type(evaluator).__name__, "metrics": dict(metrics), "epoch": epoch,
                             "step": step})


class SentenceEncoder:
    """sentence-transformers / MTEB encoder over an Encoder at a fixed layer and pooling.

    Args:
        encoder: any Encoder (models.load.load_encoder).
        layer: one layer name (5, "emb", "final", "50%") or several, combined by `aggregation`.
        pooling: one of pooling.POOLINGS.
        aggregation: "mean" (average of the layers' pooled vectors) or "concat".
        template: a templates.TEMPLATES name ("promptEOL") or a string with one {sentence}
            where the sentence goes, e.g. 'In one word, "{sentence}" means:"'; None = the
            encoder's own (none unless it was given one).
        batch_size: default when the caller gives none.
        model_name: the model id results are filed under (default: `encoder.name`, made
            path-free by `model_id`); give the hub id when loading a local copy of a hub model.

    Attributes:
        calls: one dict per `encode` call: n_inputs, batch_size, and what mteb passed
            (task_name, hf_split, hf_subset, prompt_type).
        model_card_data: the metrics sentence-transformers' evaluators reported (EvaluationLog).
    """

    similarity_fn_name = "cosine"

    def __init__(self, encoder: Encoder, layer: Layer | str | Sequence[Layer] = "final", pooling: str = "mean", *,
                 aggregation: str = "mean", template: str | None = None, batch_size: int = 32,
                 model_name: str | None = None):
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}; got {aggregation!r}")
        spec = [layer] if isinstance(layer, (int, str)) and not (isinstance(layer, str) and "," in layer) else layer
        self.encoder = encoder if template is None else with_template(encoder, template)
        self.layers = parse_layers(spec, encoder.layers())
        self.pooling = check_poolings((pooling,))[0]
        self.aggregation = aggregation
        self.batch_size = batch_size
        self.model_name = model_name or encoder.name
        self.calls: list[dict] = []
        self.model_card_data = EvaluationLog()
        self._dim: int | None = None

    @property
    def name(self) -> str:
        """The MTEB model name: model id @ layers, aggregation, pooling, template, dtype (`mteb_name`)."""
        layers = "+".join(layer_id(la) for la in self.layers)
        if len(self.layers) > 1:
            layers += f"-{self.aggregation}"
        dtype = str(self.encoder.dtype).removeprefix("torch.")
        return mteb_name(self.model_name, layers, self.pooling, self.encoder.template, self.encoder.template_text,
                         dtype)

    @property
    def revision(self) -> str:
        """The encoder's revision (hub commit or sha256 of the weights): with `name`, the cache key."""
        return self.encoder.revision or NO_REVISION

    @property
    def mteb_model_meta(self):
        """mteb's ModelMeta for this setting (needs mteb installed)."""
        from mteb.models.model_meta import ModelMeta

        return ModelMeta(**model_meta_fields(self.name, self.revision, embed_dim=self.get_embedding_dimension(),
                                             max_tokens=self.encoder.max_length,
                                             use_instructions=self.encoder.template is not None))

    def get_embedding_dimension(self) -> int:
        """D of the vectors `encode` returns (from one encoded sentence, once)."""
        if self._dim is None:
            self._vectors([""], 1)
        return self._dim

    def _vectors(self, texts: list[str], batch_size: int) -> np.ndarray:
        emb = self.encoder.encode(texts, self.layers, [self.pooling], batch_size=batch_size)
        parts = [emb.vectors[(la, self.pooling)] for la in self.layers]
        out = np.mean(parts, axis=0) if self.aggregation == "mean" else np.concatenate(parts, axis=1)
        out = out.astype(np.float32, copy=False)
        self._dim = out.shape[1]
        return out

    def encode(self, inputs: str | Sequence[str] | Iterable[dict] | None = None, prompt_name: str | None = None,
               prompt: str | None = None, batch_size: int | None = None, show_progress_bar: bool | None = None,
               output_value: str | None = "sentence_embedding", precision: str | None = "float32",
               convert_to_numpy: bool = True, convert_to_tensor: bool = False, device: Any = None,
               normalize_embeddings: bool = False, truncate_dim: int | None = None, *,
               sentences: str | Sequence[str] | None = None, task_metadata: Any = None, hf_split: str | None = None,
               hf_subset: str | None = None, prompt_type: Any = None, **unsupported: Any):
        """(N, D) float32 vectors in input order, as `SentenceTransformer.encode` returns them.

        Args:
            inputs: a string (gives (D,)), a list of strings, or mteb 2's DataLoader of
                {"text": [...]} batches; `sentences=` is the older name of the same argument.
            batch_size: sentences per forward pass (default: the adapter's).
            show_progress_bar: accepted; the encoder shows its own.
            convert_to_tensor: one torch tensor; convert_to_numpy=False alone: a list of
                (D,) tensors; else an ndarray (sentence-transformers' rules).
            normalize_embeddings: unit vectors (a zero vector stays zero).
            truncate_dim: keep the first truncate_dim dimensions (before normalizing, as ST).
            task_metadata, hf_split, hf_subset, prompt_type: what mteb passes; recorded
                in `calls`, they change nothing (the prompt is the adapter's template).
            prompt_name, prompt, output_value, precision, device: only their defaults;
                anything else is a ValueError saying what to do instead.
        Returns:
            ndarray (N, D) float32, a tensor, or a list of tensors (see above); no input
            gives an empty (0, D) array.
        Raises:
            TypeError: a keyword this adapter does not know (sentence-transformers' `pool`,
                `chunk_size`, `task`, model kwargs, typos), named.
        """
        if unsupported:
            raise TypeError(f"SentenceEncoder.encode() got unsupported keyword argument(s) {sorted(unsupported)}; "
                            "it takes sentence-transformers' inputs, batch_size, show_progress_bar, convert_to_numpy, "
                            "convert_to_tensor, normalize_embeddings, truncate_dim and mteb's task_metadata, hf_split, "
                            "hf_subset, prompt_type")
        if sentences is not None:
            if inputs is not None:
                raise TypeError("SentenceEncoder.encode() got both inputs and sentences; pass the texts once, as inputs")
            inputs = sentences
        if inputs is None:
            raise TypeError("SentenceEncoder.encode() missing the texts: pass inputs=[...]")
        self._check_defaults(prompt_name=prompt_name, prompt=prompt, output_value=output_value, precision=precision,
                             device=device)
        batch_size = self.batch_size if batch_size is None else batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
        single = isinstance(inputs, str)
        texts = [inputs] if single else _texts(inputs)
        self.calls.append({"n_inputs": len(texts), "batch_size": batch_size,
                           "task_name": None if task_metadata is None else task_metadata.name,
                           "hf_split": hf_split, "hf_subset": hf_subset,
                           "prompt_type": prompt_type})
        out = (self._vectors(texts, batch_size) if texts else
               np.empty((0, self.get_embedding_dimension()), dtype=np.float32))
        if truncate_dim is not None:
            if isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int) or not 1 <= truncate_dim <= out.shape[1]:
                raise ValueError(f"truncate_dim must be an int in 1..{out.shape[1]} (this model's dimension); "
                                 f"got {truncate_dim!r}")
            out = out[:, :truncate_dim]
        if normalize_embeddings:
            norm = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.where(norm == 0, 1, norm)
        out = out[0] if single else out
        if convert_to_tensor:
            return torch.from_numpy(np.ascontiguousarray(out))
        if not convert_to_numpy:
            return list(torch.from_numpy(np.ascontiguousarray(out))) if not single else torch.from_numpy(out)
        return out

    def _check_defaults(self, **given: Any) -> None:
        fixes = {
            "prompt_name": (None, "the prompt is the adapter's template: SentenceEncoder(..., template=...)"),
            "prompt": (None, "the prompt is the adapter's template: SentenceEncoder(..., template='query: {sentence}')"),
            "output_value": ("sentence_embedding", "for token states use the encoder: "
                                                   "encoder.encode(texts, layers, poolings, keep_states=True)"),
            "precision": ("float32", "quantize the float32 output with sentence_transformers.quantize_embeddings"),
        }
        for key, (default, fix) in fixes.items():
            if given[key] is not None and given[key] != default:
                raise ValueError(f"SentenceEncoder.encode() supports only {key}={default!r}; got {given[key]!r}: {fix}")
        device = given["device"]
        if device is not None and torch.device(device) != torch.device(self.encoder.device):
            raise ValueError(f"SentenceEncoder.encode() runs where its encoder is ({self.encoder.device}); got "
                             f"device={device!r}: load the encoder there (load_encoder(..., device=...))")

    def encode_query(self, inputs: Any = None, **kwargs: Any):
        """`encode` with prompt_type "query": the same vectors (one template for both sides)."""
        return self.encode(inputs, prompt_type=kwargs.pop("prompt_type", "query"), **kwargs)

    def encode_document(self, inputs: Any = None, **kwargs: Any):
        """`encode` with prompt_type "document": the same vectors (one template for both sides)."""
        return self.encode(inputs, prompt_type=kwargs.pop("prompt_type", "document"), **kwargs)

    def similarity(self, a: Any, b: Any) -> torch.Tensor:
        """(N, M) float32 cosine matrix: unit rows of a times unit rows of b transposed.

        Memory is the two inputs once more plus the (N, M) result, never N*M*D; a zero
        vector scores 0 against everything, as in our evaluation."""
        a, b = _unit_rows(a, "a"), _unit_rows(b, "b")
        return a @ b.T

    def similarity_pairwise(self, a: Any, b: Any) -> torch.Tensor:
        """(N,) cosine of row i of a with row i of b, in float64 by `similarity.cosine`: the
        very numbers `evaluation.evaluate` correlates, so mteb's "spearman" equals ours."""
        return torch.from_numpy(cosine(_as_numpy(a), _as_numpy(b)))


def _as_numpy(x: Any) -> np.ndarray:
    return np.atleast_2d(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x))


def _unit_rows(x: Any, what: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float32)
    t = t.unsqueeze(0) if t.ndim == 1 else t
    if t.ndim != 2:
        raise ValueError(f"similarity expects (N, D) or (D,) embeddings; {what} has shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"similarity received non-finite embeddings in {what} (NaN or inf): the encoder overflowed; "
                         "try float32")
    return torch.nn.functional.normalize(t, dim=1)  # x / max(|x|, eps): a zero row stays zero


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


# ---------------------------------------------------------------- export


def mteb_task(dataset: str, split: str, n_pairs: int | None) -> str:
    """The task a result is filed under: the MTEB task only when the set is that task's
    set (its split and pair count, MTEB_TASKS), otherwise our own path-free name
    ("sickr" for SICK-R test's 4927 pairs, which MTEB's SICK-R (9927) is not)."""
    base = dataset.split("/")[0]
    task, n = MTEB_TASKS.get(base, (None, None))
    return task if split == "test" and n_pairs == n else _SAFE.sub("-", base)


def export_mteb(records: Sequence[dict], root: str | Path, *,
                model_names: Mapping[str, str] | None = None) -> list[Path]:
    """Write evaluation records (evaluation.evaluate) as MTEB results, readable by mteb's
    `ResultCache(root_parent)` when `root` is its "results" folder.

    Per (model setting, revision) folder `{root}/{name with "/" as "__"}/{revision}/`
    (name: `mteb_name`, the one `SentenceEncoder.name` gives for the same setting):
    `{Task}.json` (a TaskResult; STS scores raw, not x100, main_score = cosine_spearman),
    `model_meta.json` (mteb ModelMeta fields only) and `rwkv_eval_provenance.jsonl` (one
    line per task: the task name and the whole record: layer, pooling, dtype, data
    source, ...). A multi-domain year (sts12..16) is filed from its pooled record
    ("/concat" or "/all"); per-domain and mean-of-domains records, and undefined
    correlations, are not written. `mteb_version` is null: mteb did not compute these.

    Args:
        model_names: record "model" -> the id to file it under (e.g. a local copy's hub id).
    Returns:
        The task-result paths written.
    """
    model_names = model_names or {}
    folders: dict[Path, dict] = {}
    for r in records:
        dataset = r["dataset"]
        if "/" in dataset and not dataset.endswith(("/all", "/concat")):
            continue
        if r.get("spearman") is None:
            continue
        task = mteb_task(dataset, r["split"], r.get("n_pairs"))
        name = mteb_name(model_names.get(r["model"], r["model"]), layer_id(r["layer"]), r["pooling"],
                         r.get("template"), r.get("template_text"), r.get("dtype"))
        revision = _SAFE.sub("-", str(r.get("revision") or NO_REVISION))
        folder = Path(root) / name.replace("/", "__") / revision
        entry = folders.setdefault(folder, {"meta": model_meta_fields(
            name, revision, embed_dim=None, max_tokens=r.get("max_length"),
            use_instructions=r.get("template") is not None), "tasks": {}})
        doc = entry["tasks"].setdefault(task, {
            "dataset_revision": _revision(r.get("dataset_revision")), "task_name": task, "mteb_version": None,
            "scores": {}, "evaluation_time": 0.0, "kg_co2_emissions": None,
            "date": r.get("time_utc") or datetime.datetime.now(datetime.timezone.utc).isoformat(), "records": []})
        if r["split"] in doc["scores"]:
            raise ValueError(f"two records for {name} on {task} {r['split']} (datasets "
                             f"{doc['records'][0]['dataset']!r} and {dataset!r}); export one result per task and split")
        doc["scores"][r["split"]] = [{
            "cosine_spearman": r["spearman"], "cosine_pearson": r["pearson"], "spearman": r["spearman"],
            "pearson": r["pearson"], "main_score": r["spearman"], "hf_subset": "default", "languages": ["eng-Latn"],
            "spearman_ci95": r.get("spearman_ci95"), "n_pairs": r.get("n_pairs")}]
        doc["evaluation_time"] += r.get("encode_seconds") or 0.0
        doc["records"].append(r)
    written = []
    for folder, entry in folders.items():
        write_json_atomic(folder / "model_meta.json", entry["meta"])
        lines = _provenance_lines(folder / PROVENANCE_FILE, set(entry["tasks"]))
        for task, doc in entry["tasks"].items():
            lines += [to_json({"task_name": task} | r, indent=None) for r in doc.pop("records")]
            written.append(write_json_atomic(folder / f"{task}.json", doc))
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        write_bytes_atomic(folder / PROVENANCE_FILE, lambda f: f.write(data))
    return written


def _provenance_lines(path: Path, replaced: set[str]) -> list[str]:
    """The lines of an earlier export to this folder, minus those of the tasks written now."""
    if not path.is_file():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines()
            if line and json.loads(line)["task_name"] not in replaced]


def _revision(value) -> str:
    if isinstance(value, list):
        return json.dumps(value)
    return str(value) if value else "unknown"
