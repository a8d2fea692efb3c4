"""rwkv_eval: RWKV hidden states as zero-shot sentence embeddings, scored and timed.

Data flows one way: dataset -> tokenizer -> encoder (hidden states of the chosen
layers) -> pooling -> similarity -> metrics -> record -> report.
"""

__version__ = "0.1.0"
