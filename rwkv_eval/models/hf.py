"""Hugging Face encoders through `transformers` AutoModel: softmax-attention models, RWKV-4, RWKV-6 (opt-in).

Reference code: huggingface/transformers src/transformers/models/rwkv/modeling_rwkv.py
(RWKV-4, read at transformers 5.24) and the remote code of RWKV/v6-Finch-1B6-HF
(modeling_rwkv6.py, which copies RWKV-4's hidden-state loop).

Layer names — every encoder of this suite numbers blocks from 0:
    "emb"    the input embedding. Embedding-first models: `hidden_states[0]`, the input of
             block 0 (for BERT the word + position + type embeddings after their
             LayerNorm; for GPT-2 token + position embeddings). Block-first models: the
             output of `get_input_embeddings()` (Mamba: block 0's input), and for RWKV the
             embedding after `blocks.0.pre_ln` (BlinkDL's ln0), as in the native RWKV
             encoders.
    k        the residual stream after block k, 0 <= k < L. Where block k's output sits in
             `hidden_states` differs between transformers models, so the encoder finds out
             once, at construction, by running the model on two tokens with a forward hook
             on block 0 and asking which entry is that hook's output (`_detect_layout`):
               embedding-first  (emb, block 0, ..., block L-1): GPT-2, GPT-NeoX, Llama,
                             Qwen2, BERT, ... Layer k = `hidden_states[k + 1]`; for k = L-1
                             the output of the last block, read with a forward hook,
                             because transformers replaces `hidden_states[L]` by the
                             final-norm output in pre-LN models (GPT-2 ln_f, Llama/Qwen
                             norm). In post-LN models (BERT, MiniLM) the two are the same.
               block-first   (block 0, ..., block L-1, final norm): RWKV-4 / -6, Mamba,
                             Mamba2, FalconMamba (transformers 5.24 modeling_mamba.py
                             MambaModel.forward appends after each block and once more
                             after norm_f). Layer k = `hidden_states[k]`.
             Any other layout is an error: reading it as either would shift every layer.
             RWKV's eval-mode halving of the residual every `rescale_every` blocks (RWKV-4
             in every dtype, the RWKV-6 remote code in fp16/bf16, every 6 blocks) is
             switched off in fp32 (`rescale_every=0`) and undone (x 2**((k+1)//R), exact
             powers of two) in half precision.
    "final"  `hidden_states[L]` = `last_hidden_state`: after the final norm (ln_f, norm,
             norm_f, RWKV's ln_out) where the model has one, else the same as layer L-1.

All hidden states come from one forward pass (AutoModel cannot stop after a given block);
`states` then yields the requested ones, shallowest first.

Tokens: the model's own tokenizer *with* its special tokens (BERT: [CLS] ... [SEP];
GPT-2, RWKV: none), no truncation by the tokenizer; a sentence whose only tokens are
special ones (empty, or blank) has no token at all, so it pools to the zero vector and is
counted in n_empty as with every other encoder, rather than to a [CLS][SEP] vector — `TokenEncoder` cuts at `max_length`
(so a long BERT input loses its [SEP]) and counts the cut sentences. `max_length` is
clamped to the model's `max_position_embeddings` and the tokenizer's `model_max_length`.
Batches are right-padded; the attention mask goes to softmax-attention models (pad id =
the tokenizer's pad token, else its eos token, else 0). RWKV ignores the mask and needs
none: it is causal, so padding on the right never reaches a valid position.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from ..encoder import EMBEDDING, Layer, TokenEncoder
from .checkpoint import hub_error, sha256_files

FINAL = "final"
EMBEDDING_FIRST = "embedding-first"  # hidden_states = (emb, block 0, ..., block L-2, block L-1 or final norm)
BLOCK_FIRST = "block-first"  # hidden_states = (block 0, ..., block L-1, final norm): RWKV, Mamba
NATIVE_RWKV_TYPES = ("rwkv5", "rwkv6", "rwkv7", "rwkv-6", "rwkv-7")
WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin", "*.pth", "*.pt")
# transformers renamed from_pretrained's torch_dtype to dtype in 4.56
DTYPE_KWARG = "dtype" if tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (4, 56) else "torch_dtype"
TokenizerSpec = str | PreTrainedTokenizerBase | Callable[[str], Sequence[int]] | None


def sha256_weights(directory: Path) -> str:
    """sha256 of the weights file; for several (shards), sha256 of their 'name sha256' lines, sorted."""
    files = sorted({p for g in WEIGHT_GLOBS for p in directory.glob(g) if p.is_file()})
    if not files:
        raise FileNotFoundError(f"{directory} has config.json but no weights file ({', '.join(WEIGHT_GLOBS)}); "
                                "copy the model's weights into it, or point --model at the complete directory")
    return sha256_files(files)


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def _config_dict(spec: str, revision: str | None, local: bool) -> dict:
    """config.json as a plain dict, read without running any remote code."""
    if local and not (Path(spec) / "config.json").is_file():
        raise FileNotFoundError(f"{spec} has no config.json; expected a transformers model directory "
                                "(config.json + weights), e.g. one written by save_pretrained")
    problem = None if local else hub_error(spec)  # hub off or unreachable: the local cache only
    try:
        cfg, _ = transformers.PretrainedConfig.get_config_dict(spec, revision=revision,
                                                               local_files_only=problem is not None)
    except (OSError, ValueError) as e:
        if problem:  # not cached either: one line, not ~25 s of retries
            raise FileNotFoundError(f"model {spec!r} (revision {revision!r}): {problem}") from None
        hint = ("HF_HUB_OFFLINE is set and it is not in the local cache; download it once online"
                if _hub_offline() else "check the hub id, the revision and the network")
        raise FileNotFoundError(f"cannot read the config of model {spec!r} (revision {revision!r}): {hint}. "
                                f"({e})") from e
    return cfg


def _hub_commit(spec: str, revision: str | None, config) -> str:
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return commit
    if not _hub_offline():
        try:
            from huggingface_hub import HfApi

            return HfApi().model_info(spec, revision=revision).sha
        except Exception:  # noqa: BLE001, S110 - the record then says the revision is unresolved
            pass
    return f"unresolved:{revision or 'main'}"


class HFEncoder(TokenEncoder):
    """A `transformers` base model (AutoModel) as an `Encoder`; build it with `load_hf`.

    Args:
        model: the base model in eval mode, already on `device` in `dtype`.
        tokenizer: a `transformers` tokenizer, or a callable str -> list[int].
        name, revision: what records show (hub id or path; commit hash or weights sha256).
        max_length: token limit after clamping to the model's positions.
        sha256: of the weights when `revision` does not pin them (random init: models/random_hf.py).
    """

    def __init__(self, model: torch.nn.Module, tokenizer, *, name: str, revision: str, device: torch.device,
                 dtype: torch.dtype, max_length: int, tokenizer_name: str, remote_code: bool = False,
                 sha256: str | None = None):
        self.model, self.tokenizer, self.sha256 = model, tokenizer, sha256
        self.name, self.revision, self.device, self.dtype = name, revision, device, dtype
        self.tokenizer_name, self.remote_code = tokenizer_name, remote_code
        config = model.config
        self.vocab_size = int(config.vocab_size)
        # RWKV-4 (RwkvModel) and the RWKV-6 remote code share this layout.
        self.is_rwkv = all(hasattr(model, a) for a in ("embeddings", "blocks", "ln_out"))
        self.n_layers = int(config.num_hidden_layers)
        self.blocks = self._find_blocks(model, self.n_layers)
        limits = [max_length]
        if isinstance(getattr(config, "max_position_embeddings", None), int):
            limits.append(config.max_position_embeddings)
        if isinstance(tokenizer, PreTrainedTokenizerBase) and 0 < (tokenizer.model_max_length or 0) < 1_000_000:
            limits.append(int(tokenizer.model_max_length))
        self.max_length = min(limits)
        pad = eos = None
        if isinstance(tokenizer, PreTrainedTokenizerBase):
            pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
        pad = pad if pad is not None else getattr(config, "pad_token_id", None)
        eos = eos if eos is not None else getattr(config, "eos_token_id", None)
        eos = eos[0] if isinstance(eos, (list, tuple)) else eos
        self.pad_id = int(pad if pad is not None else eos if eos is not None else 0)
        self._takes_use_cache = "use_cache" in inspect.signature(model.forward).parameters
        self.layout = self._detect_layout()
        if self.is_rwkv:  # after ln0 (pre_ln), else the raw embedding
            self._embedding_module = getattr(self.blocks[0], "pre_ln", model.embeddings)
        elif self.layout == BLOCK_FIRST:
            self._embedding_module = model.get_input_embeddings()
        else:
            self._embedding_module = None  # hidden_states[0]

    @staticmethod
    def _find_blocks(model: torch.nn.Module, n_layers: int) -> torch.nn.ModuleList:
        """The ModuleList of the L blocks (model.blocks, .h, .layers, .encoder.layer, ...)."""
        for _, module in model.named_modules():
            if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers:
                return module
        raise ValueError(f"{type(model).__name__} has no ModuleList of num_hidden_layers={n_layers} blocks; the "
                         "layer numbering hooks block 0 and block L-1 to place them in hidden_states. Use a model "
                         "whose blocks form one ModuleList (model.layers, .h, .blocks, .encoder.layer)")

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor):
        kwargs = {"use_cache": False} if self._takes_use_cache else {}
        if not self.is_rwkv:
            kwargs["attention_mask"] = mask.long()
        out = self.model(input_ids=ids, output_hidden_states=True, return_dict=True, **kwargs)
        if len(out.hidden_states) != self.n_layers + 1:
            raise ValueError(f"{type(self.model).__name__} returned {len(out.hidden_states)} hidden states; expected "
                             f"{self.n_layers + 1} for {self.n_layers} layers")
        return out

    def _detect_layout(self) -> str:
        """Where block 0's output sits in `hidden_states`, found by running the model once.

        transformers has no single convention (GPT-NeoX and Llama start with the embedding,
        RWKV and Mamba with block 0), and reading one layout as the other shifts every
        layer by one without any error, so the forward itself decides, not a class list.
        """
        seen: dict[str, torch.Tensor] = {}

        def keep(module, args, output):
            seen["block0"] = output[0] if isinstance(output, tuple) else output

        ids = torch.zeros((1, 2), dtype=torch.long, device=self.device)
        hook = self.blocks[0].register_forward_hook(keep)
        try:
            with torch.no_grad():
                hs = self._forward(ids, torch.ones_like(ids, dtype=torch.bool)).hidden_states
        finally:
            hook.remove()
        block0 = seen["block0"]
        # transformers stores the block's own output tensor; compare values only where it
        # does not (RWKV with rescale_every=1 stores block 0's output halved), because
        # near-identity blocks (untrained, zero-initialised) can give equal values
        found = [i for i in (0, 1) if hs[i] is block0]
        if not found:
            scale = self._rwkv_scale(0)
            found = [i for i in (0, 1) if hs[i].shape == block0.shape and torch.equal(hs[i] * scale, block0)]
        if len(found) != 1:
            where = "both hidden_states[0] and [1]" if found else "neither hidden_states[0] nor [1]"
            raise ValueError(f"{type(self.model).__name__}: the output of block 0 ({type(self.blocks[0]).__name__}) "
                             f"is {where}, so the layer numbering cannot tell whether hidden_states starts with the "
                             "embedding or with block 0; this encoder supports only those two layouts "
                             "(see rwkv_eval/models/hf.py)")
        return EMBEDDING_FIRST if found[0] == 1 else BLOCK_FIRST

    def layers(self) -> tuple[Layer, ...]:
        return (EMBEDDING, *range(self.n_layers), FINAL)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        if isinstance(self.tokenizer, PreTrainedTokenizerBase):
            ids = self.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        else:
            ids = [list(self.tokenizer(s)) for s in texts]
        if isinstance(self.tokenizer, PreTrainedTokenizerBase):
            special = set(self.tokenizer.all_special_ids)
            ids = [row if any(t not in special for t in row) else [] for row in ids]
        bad = [t for row in ids for t in row if not 0 <= t < self.vocab_size]
        if bad:
            raise ValueError(f"tokenizer {self.tokenizer_name} produced token id {bad[0]} outside the vocabulary of "
                             f"{self.name} (0..{self.vocab_size - 1}); pass the model's own tokenizer")
        return [list(map(int, row)) for row in ids]

    def _rwkv_scale(self, k: int) -> float:
        """Undo the eval-mode halving: after block k the stream was divided by 2**((k+1)//R)."""
        every = int(getattr(self.model.config, "rescale_every", 0) or 0)
        if every > 0 and getattr(self.model, "layers_are_rescaled", False):
            return float(2 ** ((k + 1) // every))
        return 1.0

    def states(self, ids: torch.Tensor, mask: torch.Tensor, layers: tuple[Layer, ...]) -> Iterator[tuple[Layer, torch.Tensor]]:
        wanted = set(layers)
        L = self.n_layers
        first = self.layout == EMBEDDING_FIRST  # else block-first: hidden_states[k] is block k
        captured: dict[str, torch.Tensor] = {}

        def keep(key):
            def hook(module, args, output):
                captured[key] = output[0] if isinstance(output, tuple) else output
            return hook

        hooks = []
        if EMBEDDING in wanted and self._embedding_module is not None:
            hooks.append(self._embedding_module.register_forward_hook(keep("emb")))
        if first and (L - 1) in wanted:  # hidden_states[L] may be the final norm's output
            hooks.append(self.blocks[L - 1].register_forward_hook(keep("last")))
        try:
            hs = self._forward(ids, mask).hidden_states
        finally:
            for h in hooks:
                h.remove()
        if "last" in captured and captured["last"].shape != hs[L].shape:
            raise ValueError(f"the hook on {type(self.blocks[L - 1]).__name__} gave shape "
                             f"{tuple(captured['last'].shape)}, not the hidden states' {tuple(hs[L].shape)}")
        for layer in self.layers():
            if layer not in wanted:
                continue
            if layer == EMBEDDING:
                h = captured["emb"] if self._embedding_module is not None else hs[0]
            elif layer == FINAL:
                h = hs[L]
            elif first:
                h = captured["last"] if layer == L - 1 else hs[layer + 1]
            else:
                scale = self._rwkv_scale(layer)
                h = hs[layer] if scale == 1.0 else hs[layer].float() * scale
            # padded positions may hold anything (NaN from fully masked rows): zero them
            yield layer, torch.where(mask[..., None], h, torch.zeros((), dtype=h.dtype, device=h.device))

    def provenance(self) -> dict:
        last = "hook on the last block" if self.layout == EMBEDDING_FIRST else "hidden_states[L-1]"
        return {**super().provenance(), "backend": "hf-remote-code" if self.remote_code else "hf",
                "model_class": type(self.model).__name__, "transformers": transformers.__version__,
                "tokenizer": self.tokenizer_name, "n_layers": self.n_layers, "hidden_states_layout": self.layout,
                "last_block_source": last, "sha256": self.sha256}


def _load_tokenizer(tokenizer: TokenizerSpec, spec: str, revision: str | None, trust_remote_code: bool):
    if tokenizer is not None and not isinstance(tokenizer, str):
        if not callable(tokenizer):
            raise TypeError(f"tokenizer must be a name/path, a transformers tokenizer or a callable str -> list[int]; "
                            f"got {type(tokenizer).__name__}")
        name = (getattr(tokenizer, "name_or_path", None) or getattr(tokenizer, "__qualname__", None)
                or type(tokenizer).__name__)
        return tokenizer, str(name)
    source = tokenizer or spec
    try:
        tok = AutoTokenizer.from_pretrained(source, revision=None if tokenizer else revision,
                                            trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ValueError(f"no usable tokenizer for {source!r} ({type(e).__name__}: {e}); pass tokenizer= a "
                         "name/path, a transformers tokenizer, or a callable str -> list[int]") from e
    return tok, source


def load_hf(
    spec: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    revision: str | None = None,
    trust_remote_code: bool = False,
    max_length: int = 512,
    tokenizer: TokenizerSpec = None,
) -> HFEncoder:
    """Load a local model directory or a hub id as an `HFEncoder`.

    Args:
        spec: a directory with config.json and weights, or a hub id "owner/name".
        device, dtype: where and in which precision the model runs.
        revision: hub branch, tag or commit (hub ids only); the record stores the resolved
            commit hash. For a directory the record stores the weights' sha256.
        trust_remote_code: run the model repository's own code — needed, and only then
            allowed, for RWKV-5/6/7 checkpoints such as RWKV/v6-Finch-1B6-HF.
        max_length: tokens kept per sentence (clamped to the model's positions).
        tokenizer: None (the model's own), a name/path for AutoTokenizer, a transformers
            tokenizer, or a callable str -> list[int] for models without tokenizer files.

    Example:
        >>> enc = load_hf("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> enc.encode(["A cat sat."], layers=[5], poolings=["mean"])[(5, "mean")].shape  # doctest: +SKIP
        (1, 384)
    """
    spec = str(spec)
    path = Path(spec).expanduser()
    local = path.is_dir()
    if path.is_file():
        raise ValueError(f"{spec} is a file; load_hf expects a model directory (config.json + weights) or a hub id")
    if not local and (spec.startswith((".", "/", "~")) or spec.count("/") != 1):
        raise FileNotFoundError(f"model directory {spec} does not exist (and it is not a hub id of the form owner/name)")
    if local and revision is not None:
        raise ValueError(f"revision={revision!r} applies to hub ids only; {spec} is a local directory")
    raw = _config_dict(str(path) if local else spec, revision, local)
    model_type = raw.get("model_type", "")
    needs_remote = model_type not in CONFIG_MAPPING
    if needs_remote and not trust_remote_code:
        native = (" The native RWKV backend (rwkv_eval.models.rwkv, backend='native') runs it without remote "
                  "code." if model_type in NATIVE_RWKV_TYPES else "")
        raise ValueError(f"{spec} has model_type {model_type!r}, which transformers {transformers.__version__} does not "
                         f"implement; its own repository code would run only with trust_remote_code=True "
                         f"(--trust-remote-code).{native}")
    overrides = {}
    if model_type == "rwkv" and dtype == torch.float32:
        overrides["rescale_every"] = 0  # fp32 needs no halving; the hidden states stay unscaled
    source = str(path) if local else spec
    # hashed first: a directory without weights fails here in one line, not inside transformers
    weights_sha = sha256_weights(path) if local else None
    try:
        config = AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code,
                                            **overrides)
        model, info = AutoModel.from_pretrained(source, config=config, revision=revision, **{DTYPE_KWARG: dtype},
                                                trust_remote_code=trust_remote_code, output_loading_info=True)
    except (OSError, ValueError, KeyError, RuntimeError) as e:  # unreadable weights, shape mismatch, bad config
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(f"{spec}: transformers could not load it as {model_type!r} ({type(e).__name__}: {first}); "
                         "check that config.json and the weights belong together and are complete") from e
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ValueError(f"{spec}: {len(missing)} weights missing from the checkpoint (e.g. {missing[:3]}); "
                         f"{type(model).__name__} would use random values for them")
    if unused := _unused_weights(model, info.get("unexpected_keys") or ()):
        raise ValueError(f"{spec}: {len(unused)} weights of the checkpoint fit no part of the model built from its "
                         f"config.json (e.g. {unused[:3]}): config.json and the weights disagree (fewer layers in the "
                         "config than in the weights?), so 'final' and the layer numbers would be wrong. Use the "
                         "config.json that came with these weights")
    model.eval().requires_grad_(False)
    device = torch.device(device)
    model.to(device)
    tok, tok_name = _load_tokenizer(tokenizer, source, revision, trust_remote_code)
    vocab = getattr(model.config, "vocab_size", None)
    if (tokenizer is None and isinstance(tok, PreTrainedTokenizerBase) and isinstance(vocab, int)
            and 2 * len(tok) < vocab):
        # AutoTokenizer builds a tokenizer of special tokens only when the vocabulary files are absent
        raise ValueError(f"{spec}: its tokenizer has {len(tok)} tokens for a model of vocab_size {vocab}: the "
                         "tokenizer files (tokenizer.json, vocab.txt, vocab.json + merges.txt, *.model) are missing "
                         "or incomplete; copy them from the model's repository into the directory")
    rev = weights_sha or _hub_commit(spec, revision, config)
    return HFEncoder(model, tok, name=spec, revision=rev, device=device, dtype=dtype, max_length=max_length,
                     tokenizer_name=tok_name, remote_code=needs_remote)


def _unused_weights(model: torch.nn.Module, unexpected: Sequence[str]) -> list[str]:
    """The unexpected checkpoint keys that name a part of this model (its blocks, embeddings, ...),
    not a head AutoModel leaves out (lm_head, cls.*, pooler of another class): such a key means the
    config built a smaller model than the weights describe (e.g. num_hidden_layers too low)."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    parts = {name.split(".")[0] for name, _ in model.named_modules() if name}
    return sorted(k for k in unexpected if k.removeprefix(prefix + ".").split(".")[0] in parts)

