"""Prompted sentence embeddings: each sentence is wrapped in a template before it is encoded.

PromptEOL (Jiang et al. 2023, "Scaling Sentence Embeddings with Large Language Models",
arXiv 2307.16645, Table 1) asks a causal LM to squeeze the sentence into one word,

    This sentence : "X" means in one word:"

and takes the hidden state of the last token (pooling `last`): the state that has to
predict that word summarises the sentence. It is the strongest training-free sentence
embedding of causal LMs in the literature (OPT-1.3B: STS average 77.5 without
fine-tuning). No RWKV result with it is published.

The template is a transform of the text, applied before tokenization, so every encoder
takes it unchanged (native RWKV-6/7, transformers decoders, even GloVe and BERT, where
it is less meaningful); `TemplatedEncoder` records it in the provenance of every
result. Custom templates are strings with exactly one `{sentence}` placeholder; the
sentence is substituted verbatim (no `str.format`, so braces in the sentence or the
template stay as they are).
"""

from __future__ import annotations

from typing import Sequence

from .encoder import Embeddings, Encoder, Layer

PLACEHOLDER = "{sentence}"
TEMPLATES: dict[str, str] = {
    "promptEOL": 'This sentence : "{sentence}" means in one word:"',
}


def resolve_template(spec: str | None) -> tuple[str | None, str | None]:
    """A template name or custom string -> (name, template text); (None, None) for no template.

    Raises:
        ValueError: neither a known name nor a string with exactly one {sentence}.
    """
    if spec is None or spec == "none":
        return None, None
    if spec in TEMPLATES:
        return spec, TEMPLATES[spec]
    if spec.count(PLACEHOLDER) != 1:
        raise ValueError(
            f"template {spec!r} is neither a known template ({', '.join(TEMPLATES)}) nor a string with exactly one "
            f"{PLACEHOLDER} placeholder (found {spec.count(PLACEHOLDER)}); e.g. --template "
            "'In one word, \"{sentence}\" means:\"'")
    return "custom", spec


def apply_template(template: str, sentences: Sequence[str]) -> list[str]:
    """Each sentence put in place of {sentence}, verbatim."""
    if isinstance(sentences, str):
        raise TypeError("apply_template expects a sequence of sentences, not one string; wrap it in a list")
    head, tail = template.split(PLACEHOLDER)
    return [head + s + tail for s in sentences]


class TemplatedEncoder:
    """An `Encoder` that wraps every sentence in a template before handing it to `inner`.

    Everything else (layers, pooling, batching, the forward pass) is the inner encoder's;
    the provenance adds `template` (name or "custom") and `template_text`, both None when
    no template is used, so every record says whether it was prompted.
    """

    def __init__(self, inner: Encoder, spec: str | None):
        if isinstance(inner, TemplatedEncoder):
            raise TypeError("the encoder already has a template; wrap the inner encoder instead")
        self.inner = inner
        self.template_name, self.template = resolve_template(spec)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def revision(self) -> str:
        return self.inner.revision

    @property
    def max_length(self) -> int:
        return self.inner.max_length

    @property
    def device(self):
        return self.inner.device

    def layers(self) -> tuple[Layer, ...]:
        return self.inner.layers()

    def texts(self, sentences: Sequence[str]) -> list[str]:
        return list(sentences) if self.template is None else apply_template(self.template, sentences)

    def tokenize(self, sentences: Sequence[str]) -> list[list[int]]:
        return self.inner.tokenize(self.texts(sentences))

    def encode_tokens(self, token_ids: list[list[int]], layers: Sequence[Layer], poolings: Sequence[str],
                      batch_size: int = 32, keep_states: bool = False) -> Embeddings:
        """Token ids from `tokenize` (template already applied) -> pooled vectors."""
        return self.inner.encode_tokens(token_ids, layers, poolings, batch_size, keep_states)

    def encode(self, sentences: Sequence[str], layers: Sequence[Layer], poolings: Sequence[str],
               batch_size: int = 32, keep_states: bool = False) -> Embeddings:
        if isinstance(sentences, str):
            raise TypeError("encode expects a sequence of sentences, not one string; wrap it in a list")
        return self.inner.encode(self.texts(sentences), layers, poolings, batch_size=batch_size,
                                 keep_states=keep_states)

    def provenance(self) -> dict:
        return self.inner.provenance() | {"template": self.template_name, "template_text": self.template}


def with_template(encoder: Encoder, spec: str | None) -> TemplatedEncoder:
    """`encoder` with the template `spec` (a name in TEMPLATES, a custom string, or None)."""
    return TemplatedEncoder(encoder, spec)
