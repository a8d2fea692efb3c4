"""Encoders: one file per model family (GloVe, native RWKV, Hugging Face transformers)."""
