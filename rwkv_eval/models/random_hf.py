"""Seeded random-init transformers models at the shapes of the comparison partners: real cost, no download.

compare.py sets RWKV against Pythia, Qwen2.5, Llama-3.2 and Mamba, with BERT as the
classic anchor. Time and memory per token depend on the architecture and its shape, not
on the weights, so offline the cost side is measured on these models built from their
published config.json with random weights (transformers initialises them from the
config; nothing is downloaded). Their Spearman is meaningless — profiles and benchmarks
mark them trained=false — as for the random RWKVs of models/random_init.py.

Shapes (`random-hf:NAME` on the command line). The real ones copy the config.json of the
hub model named beside them (field names as published; transformers maps old names such
as rotary_pct and rope_scaling itself):
    pythia-160m        GPT-NeoX 12 x 768, 12 heads, FFN 3072, vocab 50304   EleutherAI/pythia-160m
    pythia-1.4b        GPT-NeoX 24 x 2048, 16 heads, FFN 8192, vocab 50304  EleutherAI/pythia-1.4b
    qwen2.5-1.5b       Qwen2 28 x 1536, 12 heads / 2 kv, FFN 8960, vocab 151936  Qwen/Qwen2.5-1.5B
    llama-3.2-1b       Llama 16 x 2048, 32 heads / 8 kv, FFN 8192, vocab 128256  meta-llama/Llama-3.2-1B
    mamba-1.4b         Mamba 48 x 2048, state 16, expand 2, vocab 50280     state-spaces/mamba-1.4b-hf
    bert-base-uncased  BERT 12 x 768, 12 heads, FFN 3072, vocab 30522       bert-base-uncased
    small-gptneox, small-llama, small-mamba
                       4 blocks x 256, vocab 1024: benchmarks/test_length_scaling.py on a
                       CPU, matched to its RWKV-6 in blocks, width and vocabulary
    tiny-gptneox, tiny-llama, tiny-qwen2, tiny-mamba, tiny-bert
                       2 x 32, byte vocabulary (tests)
Every model reads the UTF-8 bytes of the text (ByteTokenizer, ids 0..255, inside every
vocabulary here): the real tokenizers would need a download, and cost per token does not
depend on which ids the tokens have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig

from .hf import HFEncoder
from .random_init import state_dict_sha256
from .tokenizers import ByteTokenizer


@dataclass(frozen=True)
class HFShape:
    """One architecture at one size, as config.json fields."""

    model_type: str  # transformers' model_type (AutoConfig.for_model)
    source: str  # the hub model whose config.json `fields` copies, or what the shape is for
    fields: dict = field(default_factory=dict)


LLAMA3_ROPE = {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
               "original_max_position_embeddings": 8192, "rope_type": "llama3"}
_SMALL = {"hidden_size": 256, "vocab_size": 1024, "max_position_embeddings": 2048}
_TINY = {"num_hidden_layers": 2, "hidden_size": 32, "vocab_size": 256}
_TINY_ATTENTION = {**_TINY, "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 512}

SHAPES: dict[str, HFShape] = {
    "pythia-160m": HFShape("gpt_neox", "EleutherAI/pythia-160m", {
        "num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072,
        "vocab_size": 50304, "max_position_embeddings": 2048, "rotary_pct": 0.25, "rotary_emb_base": 10000,
        "use_parallel_residual": True, "layer_norm_eps": 1e-5, "hidden_act": "gelu", "tie_word_embeddings": False,
        "bos_token_id": 0, "eos_token_id": 0}),
    "pythia-1.4b": HFShape("gpt_neox", "EleutherAI/pythia-1.4b", {
        "num_hidden_layers": 24, "hidden_size": 2048, "num_attention_heads": 16, "intermediate_size": 8192,
        "vocab_size": 50304, "max_position_embeddings": 2048, "rotary_pct": 0.25, "rotary_emb_base": 10000,
        "use_parallel_residual": True, "layer_norm_eps": 1e-5, "hidden_act": "gelu", "tie_word_embeddings": False,
        "bos_token_id": 0, "eos_token_id": 0}),
    "qwen2.5-1.5b": HFShape("qwen2", "Qwen/Qwen2.5-1.5B", {
        "num_hidden_layers": 28, "hidden_size": 1536, "num_attention_heads": 12, "num_key_value_heads": 2,
        "intermediate_size": 8960, "vocab_size": 151936, "max_position_embeddings": 131072, "rope_theta": 1e6,
        "rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": True, "use_sliding_window": False,
        "sliding_window": 131072, "max_window_layers": 28, "bos_token_id": 151643, "eos_token_id": 151643}),
    "llama-3.2-1b": HFShape("llama", "meta-llama/Llama-3.2-1B", {
        "num_hidden_layers": 16, "hidden_size": 2048, "num_attention_heads": 32, "num_key_value_heads": 8,
        "head_dim": 64, "intermediate_size": 8192, "vocab_size": 128256, "max_position_embeddings": 131072,
        "rope_theta": 500000.0, "rope_scaling": LLAMA3_ROPE, "rms_norm_eps": 1e-5, "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": True, "bos_token_id": 128000,
        "eos_token_id": 128001}),
    "mamba-1.4b": HFShape("mamba", "state-spaces/mamba-1.4b-hf", {
        "num_hidden_layers": 48, "hidden_size": 2048, "state_size": 16, "expand": 2, "conv_kernel": 4,
        "intermediate_size": 4096, "time_step_rank": 128, "vocab_size": 50280, "layer_norm_epsilon": 1e-5,
        "use_bias": False, "use_conv_bias": True, "residual_in_fp32": True, "hidden_act": "silu",
        "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}),
    "bert-base-uncased": HFShape("bert", "bert-base-uncased", {
        "num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072,
        "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_act": "gelu", "pad_token_id": 0}),
    "small-gptneox": HFShape("gpt_neox", "length scaling on a CPU (Pythia's architecture)", {
        **_SMALL, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}),
    "small-llama": HFShape("llama", "length scaling on a CPU (Llama-3.2's 4:1 grouped-query attention)", {
        **_SMALL, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 1,
        "intermediate_size": 1024}),
    "small-mamba": HFShape("mamba", "length scaling on a CPU (Mamba's selective scan)", {
        **_SMALL, "num_hidden_layers": 4, "state_size": 16, "expand": 2, "conv_kernel": 4}),
    "tiny-gptneox": HFShape("gpt_neox", "tests", _TINY_ATTENTION),
    "tiny-llama": HFShape("llama", "tests", {**_TINY_ATTENTION, "num_key_value_heads": 1}),
    "tiny-qwen2": HFShape("qwen2", "tests", {**_TINY_ATTENTION, "num_key_value_heads": 1}),
    "tiny-mamba": HFShape("mamba", "tests", {**_TINY, "state_size": 4, "expand": 2, "conv_kernel": 4}),
    "tiny-bert": HFShape("bert", "tests", {**_TINY_ATTENTION, "pad_token_id": 0}),
}


def random_hf_config(shape: str) -> PretrainedConfig:
    """The transformers config of a shape: what the model would be, without allocating it."""
    if shape not in SHAPES:
        raise ValueError(f"unknown random-hf shape {shape!r}; choose from {', '.join(SHAPES)} "
                         "(e.g. random-hf:pythia-160m)")
    s = SHAPES[shape]
    return AutoConfig.for_model(s.model_type, **s.fields)


def random_hf_encoder(shape: str, seed: int = 0, device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32, max_length: int = 512) -> HFEncoder:
    """A seeded random-init transformers base model of `shape` as an HFEncoder.

    The same seed gives the same weights (the record carries their sha256); the caller's
    global RNG state is left as it was.
    """
    config = random_hf_config(shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModel.from_config(config)
    # every weight in `dtype`, as from_pretrained(dtype=...) loads a checkpoint (load_hf)
    model = model.eval().requires_grad_(False).to(device=device, dtype=dtype)
    tokenizer = ByteTokenizer()
    return HFEncoder(model, tokenizer.encode, name=f"random-hf:{shape}", revision=f"random-init seed={seed}",
                     device=torch.device(device), dtype=dtype, max_length=max_length,
                     tokenizer_name=tokenizer.describe(), sha256=state_dict_sha256(model))
