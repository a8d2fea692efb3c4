"""The research questions, each a layer of statistics on top of the one scorer (evaluation.py).

compare (linear vs softmax attention, Δρ with a paired bootstrap), paired (best-setting and
vs-GloVe significance), ood (out-of-domain degradation), aggregation (layer aggregations
and their cost), early_exit (early exit vs fixed-depth pruning). They take encoders through
the Encoder interface only and never import the benchmark suite.
"""
