"""An on-disk cache of pooled sentence vectors, so a rerun encodes nothing.

A layer x pooling sweep re-encodes every sentence for every run, profile and history
point; MTEB's most requested features are caching and resuming embeddings
(embeddings-benchmark/mteb#946, #1260). The scorer (evaluation.score_sets) asks this
cache for each (layer, pooling) before encoding and encodes only the settings it lacks,
all of them in one forward pass.

Safe by construction:

* The key is exact. It is the sha256 of the canonical JSON of everything that decides a
  vector: the encoder's whole `provenance()` (model id, revision, weights sha256 — a
  native .pth's file hash, a hub commit, a random-init model's seed and state-dict hash,
  GloVe's files' hash —, dtype, max length, template, tokenizer, backend, config) with the
  device reduced to its type, the content hash of the encoded sentences in order (so the
  dataset file, the split and any subset are covered by what is actually encoded), the
  layer, the pooling and this format's version. Anything that differs is a miss, never a
  stale hit. An encoder whose weights are not pinned (a hub revision that could not be
  resolved, no weights hash) is not cached at all (`key` returns None).
* A file that is not what the index says (bad index JSON, another format, a vector file
  missing, of another size, hash or shape) is a ValueError naming it and saying how to
  fix it; it is never read as a miss.
* Writes are atomic (records.write_bytes_atomic: a temp file in the same folder, then
  os.replace; the temp file is removed on any exit, Ctrl-C and SIGTERM included). A
  vector file is written before its index entry, and removed again if the index cannot be
  written, so an interrupted write leaves neither a temp file nor an entry.
* A size limit: after each store, least-recently-used entries (a hit refreshes an entry)
  are evicted until the vector files fit in `max_bytes`.

Format (plain, readable without this package):

    <root>/index.json     {"format": "rwkv-eval-embedding-cache/1", "clock": int,
                           "entries": {key: {"file", "bytes", "sha256", "shape", "last_used",
                                             "model", "layer", "pooling", "n_sentences",
                                             "n_tokens", "n_truncated", "n_empty"}}}
    <root>/<key>.npy      the (N, D) float32 vectors, rows in the order of the sentences

Several processes may share a root: the index is read, changed and written under an
exclusive lock on <root>/.lock (fcntl.flock, POSIX).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from .records import write_bytes_atomic

FORMAT = "rwkv-eval-embedding-cache/1"
INDEX = "index.json"
DEFAULT_MAX_BYTES = 2 * 1024**3
CACHE_SUBDIR = Path("rwkv-eval") / "embeddings"


def default_cache_dir(xdg_cache_home: str | None, home: str | Path) -> Path:
    """$XDG_CACHE_HOME/rwkv-eval/embeddings, else ~/.cache/rwkv-eval/embeddings (the XDG base
    directory rule). The faces (cli.py, the pytest plugin) read the environment and pass it."""
    base = Path(xdg_cache_home) if xdg_cache_home else Path(home) / ".cache"
    return base / CACHE_SUBDIR


def sentences_digest(sentences: Sequence[str]) -> str:
    """sha256 of the sentences in order (each length-prefixed, so no two lists collide)."""
    h = hashlib.sha256()
    for s in sentences:
        b = s.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def weights_pinned(provenance: Mapping) -> bool:
    """Whether the provenance names the exact weights: a weights sha256, or a resolved revision."""
    rev = str(provenance.get("revision") or "")
    return bool(provenance.get("sha256")) or bool(rev and not rev.startswith("unresolved"))


@dataclass(frozen=True)
class Entry:
    """A hit: the vectors and what the encoding call that made them counted."""

    vectors: np.ndarray  # (N, D) float32
    n_tokens: int
    n_truncated: int
    n_empty: int


class EmbeddingCache:
    """Pooled vectors on disk, one .npy per exact key (see the module docstring)."""

    def __init__(self, root: str | Path, max_bytes: int = DEFAULT_MAX_BYTES):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"embedding cache size limit must be a positive number of bytes; got {max_bytes!r}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"embedding cache {self.root} is not a directory; give a directory (--cache-dir) or "
                             "--no-cache")

    def describe(self) -> dict:
        return {"cache_dir": str(self.root), "cache_max_bytes": self.max_bytes}

    @staticmethod
    def key(provenance: Mapping, digest: str, layer, pooling: str) -> str | None:
        """The exact key of one setting's vectors, or None when the weights are not pinned."""
        if not weights_pinned(provenance):
            return None
        prov = dict(provenance)
        prov["device"] = str(prov.get("device", "")).split(":")[0]  # cuda:0 and cuda:1 compute the same
        blob = json.dumps({"format": FORMAT, "encoder": prov, "sentences": digest, "layer": layer,
                           "pooling": pooling}, sort_keys=True, default=str, ensure_ascii=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    # ------------------------------------------------------------ index under a lock

    @contextmanager
    def _locked(self) -> Iterator[dict]:
        """The index, read under an exclusive lock; what the block leaves in it is written back atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                index = self._read_index()
                before = json.dumps(index, sort_keys=True)
                yield index
                if json.dumps(index, sort_keys=True) != before:
                    data = (json.dumps(index, sort_keys=True, indent=1) + "\n").encode("utf-8")
                    write_bytes_atomic(self.root / INDEX, lambda f: f.write(data))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_index(self) -> dict:
        path = self.root / INDEX
        if not path.exists():
            return {"format": FORMAT, "clock": 0, "entries": {}}
        fix = f"delete {self.root} (or pass another --cache-dir, or --no-cache)"
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"embedding cache index {path} is corrupt ({e}); {fix}") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("entries"), dict):
            found = index.get("format") if isinstance(index, dict) else type(index).__name__
            raise ValueError(f"{path} is not an rwkv-eval embedding cache index (format {found!r}, expected "
                             f"{FORMAT!r}); {fix}")
        return index

    def _load(self, key: str, meta: dict) -> np.ndarray:
        path = self.root / meta["file"]
        fix = f"delete {path} and its entry in {self.root / INDEX} (or the whole cache {self.root})"
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise ValueError(f"embedding cache file {path} of entry {key[:12]} cannot be read ({e.strerror}); "
                             f"{fix}") from None
        if len(raw) != meta["bytes"] or hashlib.sha256(raw).hexdigest() != meta["sha256"]:
            raise ValueError(f"embedding cache file {path} is corrupt or foreign: {len(raw)} bytes with another "
                             f"sha256 than the {meta['bytes']} bytes the index recorded; {fix}")
        try:
            v = np.load(io.BytesIO(raw), allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"embedding cache file {path} is not a .npy array ({e}); {fix}") from None
        if v.dtype != np.float32 or list(v.shape) != meta["shape"]:
            raise ValueError(f"embedding cache file {path} holds {v.dtype} {list(v.shape)}, the index says float32 "
                             f"{meta['shape']}; {fix}")
        return v

    # ------------------------------------------------------------ the two calls the scorer makes

    def get(self, keys: Sequence[str]) -> dict[str, Entry]:
        """The entries of `keys` that are stored (each hit becomes the most recently used)."""
        out: dict[str, Entry] = {}
        with self._locked() as index:
            for key in keys:
                meta = index["entries"].get(key)
                if meta is None:
                    continue
                out[key] = Entry(self._load(key, meta), meta["n_tokens"], meta["n_truncated"], meta["n_empty"])
                index["clock"] += 1
                meta["last_used"] = index["clock"]
        return out

    def put(self, entries: Mapping[str, tuple[np.ndarray, dict]]) -> None:
        """Store key -> ((N, D) vectors, meta: model, layer, pooling, n_sentences, n_tokens,
        n_truncated, n_empty); then evict the least recently used entries beyond the limit.
        An array larger than the whole limit is not stored.

        Vector files are written first; if anything fails before the index is written, the
        new files are removed (no entry without its file, no file without its entry), and
        evicted files are removed only once the index no longer lists them."""
        written: list[Path] = []
        try:
            with self._locked() as index:
                for key, (vectors, meta) in entries.items():
                    buf = io.BytesIO()
                    np.save(buf, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
                    raw = buf.getvalue()
                    if len(raw) > self.max_bytes:
                        continue
                    path = self.root / f"{key}.npy"
                    write_bytes_atomic(path, lambda f, raw=raw: f.write(raw))
                    written.append(path)
                    index["clock"] += 1
                    index["entries"][key] = dict(meta) | {
                        "file": path.name, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(),
                        "shape": list(vectors.shape), "last_used": index["clock"]}
                evicted = self._evict(index)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        for path in evicted:
            path.unlink(missing_ok=True)

    def _evict(self, index: dict) -> list[Path]:
        """Drop least-recently-used entries from the index until the rest fit; their files."""
        entries = index["entries"]
        total = sum(m["bytes"] for m in entries.values())
        out = []
        for key in sorted(entries, key=lambda k: entries[k]["last_used"]):
            if total <= self.max_bytes:
                break
            total -= entries[key]["bytes"]
            out.append(self.root / entries.pop(key)["file"])
        return out
