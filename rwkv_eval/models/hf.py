"""Hugging Face encoders through `transformers` AutoModel: softmax-attention models, RWKV-4, RWKV-6 (opt-in).

Reference code: huggingface/transformers src/transformers/models/rwkv/modeling_rwkv.py
(RWKV-4, read at transformers 5.24) and the remote code of RWKV/v6-Finch-1B6-HF
(modeling_rwkv6.py, which copies RWKV-4's hidden-state loop).

Layer names — every encoder of this suite numbers blocks from 0:
    "emb"    the input embedding. Transformers: `hidden_states[0]` (for BERT the word +
             position + type embeddings after their LayerNorm). RWKV: the embedding after
             `blocks.0.pre_ln` (BlinkDL's ln0), as in the native RWKV encoders.
    k        the residual stream after block k, 0 <= k < L:
               transformers  `hidden_states[k + 1]`; for k = L-1 the output of the last
                             block, read with a forward hook, because transformers
                             replaces `hidden_states[L]` by the final-norm output in
                             pre-LN models (GPT-2 ln_f, Llama/Qwen norm). In post-LN
                             models (BERT, MiniLM) the two are the same tensor.
               RWKV-4 / -6   `hidden_states[k]`: these models have no embedding entry.
                             Their eval-mode halving of the residual every
                             `rescale_every` blocks (RWKV-4 in every dtype, the RWKV-6
                             remote code in fp16/bf16, every 6 blocks) is switched off in
                             fp32 (`rescale_every=0`) and undone (x 2**((k+1)//R), exact
                             powers of two) in half precision.
    "final"  `hidden_states[L]` = `last_hidden_state`: after the final norm (ln_f, norm,
             RWKV's ln_out) where the model has one, else the same as layer L-1.

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
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from ..encoder import EMBEDDING, Layer, TokenEncoder
from .checkpoint import sha256_files

FINAL = "final"
NATIVE_RWKV_TYPES = ("rwkv5", "rwkv6", "rwkv7", "rwkv-6", "rwkv-7")
WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin", "*.pth", "*.pt")
# transformers renamed from_pretrained's torch_dtype to dtype in 4.56
DTYPE_KWARG = "dtype" if tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (4, 56) else "torch_dtype"
TokenizerSpec = Union[str, PreTrainedTokenizerBase, Callable[[str], Sequence[int]], None]


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
    try:
        cfg, _ = transformers.PretrainedConfig.get_config_dict(spec, revision=revision)
    except (OSError, ValueError) as e:
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
        except Exception:  # noqa: BLE001 - the record then says the revision is unresolved
            pass
    return f"unresolved:{revision or 'main'}"


class HFEncoder(TokenEncoder):
    """A `transformers` base model (AutoModel) as an `Encoder`; build it with `load_hf`.

    Args:
        model: the base model in eval mode, already on `device` in `dtype`.
        tokenizer: a `transformers` tokenizer, or a callable str -> list[int].
        name, revision: what records show (hub id or path; commit hash or weights sha256).
        max_length: token limit after clamping to the model's positions.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, *, name: str, revision: str, device: torch.device,
                 dtype: torch.dtype, max_length: int, tokenizer_name: str, remote_code: bool = False):
        self.model, self.tokenizer = model, tokenizer
        self.name, self.revision, self.device, self.dtype = name, revision, device, dtype
        self.tokenizer_name, self.remote_code = tokenizer_name, remote_code
        config = model.config
        self.vocab_size = int(config.vocab_size)
        # RWKV-4 (RwkvModel) and the RWKV-6 remote code share this layout.
        self.is_rwkv = all(hasattr(model, a) for a in ("embeddings", "blocks", "ln_out"))
        self.blocks = self._find_blocks(model, int(config.num_hidden_layers))
        self.n_layers = int(config.num_hidden_layers)
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

    @staticmethod
    def _find_blocks(model: torch.nn.Module, n_layers: int) -> torch.nn.ModuleList | None:
        """The ModuleList of the L blocks (model.blocks, .h, .layers, .encoder.layer, ...)."""
        for _, module in model.named_modules():
            if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers:
                return module
        return None

    def layers(self) -> tuple[Layer, ...]:
        return (EMBEDDING, *range(self.n_layers), FINAL)

    def tokenize(self, sentences: Sequence[str]) -> list[list[int]]:
        if isinstance(self.tokenizer, PreTrainedTokenizerBase):
            ids = self.tokenizer(list(sentences), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        else:
            ids = [list(self.tokenizer(s)) for s in sentences]
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
        captured: dict[str, torch.Tensor] = {}

        def keep(key):
            def hook(module, args, output):
                captured[key] = output[0] if isinstance(output, tuple) else output
            return hook

        hooks = []
        if self.is_rwkv and EMBEDDING in wanted:  # after ln0 (pre_ln), else the raw embedding
            hooks.append(getattr(self.blocks[0], "pre_ln", self.model.embeddings).register_forward_hook(keep("emb")))
        if not self.is_rwkv and (L - 1) in wanted and self.blocks is not None:
            hooks.append(self.blocks[L - 1].register_forward_hook(keep("last")))
        kwargs = {"use_cache": False} if self._takes_use_cache else {}
        if not self.is_rwkv:
            kwargs["attention_mask"] = mask.long()
        try:
            out = self.model(input_ids=ids, output_hidden_states=True, return_dict=True, **kwargs)
        finally:
            for h in hooks:
                h.remove()
        hs = out.hidden_states  # transformers: L+1 entries (emb, blocks); RWKV: L+1 (blocks, ln_out)
        if len(hs) != L + 1:
            raise ValueError(f"{type(self.model).__name__} returned {len(hs)} hidden states; expected {L + 1} "
                             f"for {L} layers")
        if "last" in captured and captured["last"].shape != hs[L].shape:
            raise ValueError(f"the hook on {type(self.blocks[L - 1]).__name__} gave shape "
                             f"{tuple(captured['last'].shape)}, not the hidden states' {tuple(hs[L].shape)}")
        for layer in self.layers():
            if layer not in wanted:
                continue
            if layer == EMBEDDING:
                h = captured["emb"] if self.is_rwkv else hs[0]
            elif layer == FINAL:
                h = hs[L]
            elif self.is_rwkv:
                scale = self._rwkv_scale(layer)
                h = hs[layer] if scale == 1.0 else hs[layer].float() * scale
            else:
                h = captured.get("last", hs[L]) if layer == L - 1 else hs[layer + 1]
            # padded positions may hold anything (NaN from fully masked rows): zero them
            yield layer, torch.where(mask[..., None], h, torch.zeros((), dtype=h.dtype, device=h.device))

    def provenance(self) -> dict:
        last = ("hidden_states[L-1]" if self.is_rwkv else
                "hook on the last block" if self.blocks is not None else "hidden_states[L] (may include a final norm)")
        return {**super().provenance(), "backend": "hf-remote-code" if self.remote_code else "hf",
                "model_class": type(self.model).__name__, "transformers": transformers.__version__,
                "tokenizer": self.tokenizer_name, "n_layers": self.n_layers, "last_block_source": last}


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
    model.eval().requires_grad_(False)
    device = torch.device(device)
    model.to(device)
    tok, tok_name = _load_tokenizer(tokenizer, source, revision, trust_remote_code)
    rev = weights_sha or _hub_commit(spec, revision, config)
    return HFEncoder(model, tok, name=spec, revision=rev, device=device, dtype=dtype, max_length=max_length,
                     tokenizer_name=tok_name, remote_code=needs_remote)
