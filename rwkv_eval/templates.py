"""Prompted sentence embeddings: each sentence is wrapped in a template before it is encoded.

PromptEOL (Jiang et al. 2023, "Scaling Sentence Embeddings with Large Language Models",
arXiv 2307.16645, Table 1) asks a causal LM to squeeze the sentence into one word,

    This sentence : "X" means in one word:"

and takes the hidden state of the last token (pooling `last`): the state that has to
predict that word summarises the sentence. It is the strongest training-free sentence
embedding of causal LMs in the literature (OPT-1.3B: STS average 77.5 without
fine-tuning). No RWKV result with it is published.

The template is a transform of the text, applied where texts become tokens
(`encoder.TokenEncoder.tokenize`), so every encoder takes it unchanged (native
RWKV-6/7, transformers decoders, even GloVe and BERT, where it is less meaningful) and a
prompted encoder keeps every member of the plain one, block-by-block stepping included.
`with_template` gives that encoder as a shallow copy sharing the weights (one model
resident, scored plain and prompted); its provenance records `template` and
`template_text` in every result. Custom templates are strings with exactly one `{sentence}` placeholder; the
sentence is substituted verbatim (no `str.format`, so braces in the sentence or the
template stay as they are).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Sequence, TypeVar

if TYPE_CHECKING:  # encoder.py imports this module: apply_template is where texts become tokens
    from .encoder import Encoder

E = TypeVar("E", bound="Encoder")

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


def with_template(encoder: E, spec: str | None) -> E:
    """`encoder` with the template `spec` (a name in TEMPLATES, a custom string, or None for
    none): a shallow copy that shares the weights and replaces any template it had.

    Raises:
        ValueError: `spec` is neither a known name nor a string with exactly one {sentence}.
        TypeError: `encoder` does not carry a template (see encoder.Encoder).
    """
    from .encoder import Encoder

    name, text = resolve_template(spec)
    if not isinstance(encoder, Encoder):
        raise TypeError(f"with_template takes an Encoder (e.g. one from models.load.load_encoder), which carries "
                        f"`template` and `template_text`; got a {type(encoder).__name__}")
    out = copy.copy(encoder)
    out.template, out.template_text = name, text
    return out
