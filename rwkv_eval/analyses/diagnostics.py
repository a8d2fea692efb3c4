"""Label-free layer diagnostics: which layer, before any gold score.

Layer-by-Layer (Skean et al., ICML 2025, arXiv:2502.02013) shows intermediate layers beat
the last on MTEB and that unsupervised per-layer metrics of the embeddings predict which
layer is best. For every layer of an encoder this module computes, on the unlabelled
sentences of the scored sets (no gold score is read), beside the layer's Spearman:

    anisotropy       mean cosine of ANISOTROPY_PAIRS random pairs of distinct sentences,
                     drawn with numpy.random.default_rng(seed) (Ethayarajh 2019, "How
                     Contextual are Contextualized Word Representations?": a high mean
                     cosine of unrelated inputs is a narrow cone)
    spectral_entropy H = -sum_i p_i log p_i (nats), p_i = lambda_i / sum(lambda), lambda the
                     eigenvalues of the (D, D) sample covariance of the sentence vectors
    effective_rank   exp(H) (Roy & Vetterli 2007, "The effective rank: a measure of
                     effective dimensionality"): 1 when one direction holds all variance,
                     D for an isotropic cloud; 0 when the vectors do not vary at all
    outlier_share    share of the vectors' squared norm, summed over sentences, that lies in
                     outlier dimensions: d with mean_i |x_id| > OUTLIER_K x the median over
                     dimensions of that mean. Why squared norm: cosine and dot products are
                     sums over dimensions of x_d * y_d, so a dimension's share of the squared
                     norm is its weight in every similarity (Timkey & van Schijndel 2021,
                     "All Bark and No Bite: Rogue Dimensions in Transformer Language Models
                     Obscure Representational Quality"). Why a multiple of the median: the
                     "massive activations" criterion of Sun et al. 2024 (arXiv:2402.17762)
                     is relative to the median magnitude; pooled vectors average them out,
                     hence a milder K (10, not their 1000)

and, across layers, the Spearman correlation of each metric with the layer's Spearman.
A label-free layer choice picks the layer a metric ranks best (lowest anisotropy, highest
effective rank, lowest outlier share); it is compared with the layer chosen on the
validation split's gold scores and with the oracle (best on the scored split), paired on
the same pairs (analyses/paired.PairedSet: one bootstrap shared by both layers).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..evaluation import Scored, evaluation_of, unique_sentences
from ..metrics import BOOTSTRAP_RESAMPLES, UndefinedCorrelation, spearman
from ..similarity import cosine
from .paired import PairedSet

ANISOTROPY_PAIRS = 2000
OUTLIER_K = 10.0
# metric -> "min" or "max": which end a label-free choice takes (spectral entropy ranks as effective rank)
CHOICE = {"anisotropy": "min", "effective_rank": "max", "outlier_share": "min"}
METRICS = ("anisotropy", "spectral_entropy", "effective_rank", "outlier_share")


def anisotropy(v: np.ndarray, n_pairs: int = ANISOTROPY_PAIRS, seed: int = 0) -> float:
    """Mean cosine of `n_pairs` random pairs (i, j), i != j, of the (N, D) vectors (N >= 2)."""
    v = np.asarray(v)
    if v.ndim != 2 or len(v) < 2:
        raise ValueError(f"anisotropy needs at least 2 sentence vectors (N, D); got shape {v.shape}")
    rng = np.random.default_rng(seed)
    i = rng.integers(len(v), size=n_pairs)
    j = (i + rng.integers(1, len(v), size=n_pairs)) % len(v)  # never i
    return float(cosine(v[i], v[j]).mean())


def covariance_spectrum(v: np.ndarray) -> np.ndarray:
    """Eigenvalues of the sample covariance of the (N, D) vectors, descending, >= 0 (float64)."""
    x = np.asarray(v, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"a covariance spectrum needs at least 2 sentence vectors (N, D); got shape {x.shape}")
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    return s**2 / (len(x) - 1)


def _entropy(lam: np.ndarray) -> tuple[float, float]:
    """(spectral entropy in nats, effective rank) of a spectrum; (0, 0) without variance."""
    total = lam.sum()
    if total <= 0:
        return 0.0, 0.0
    p = lam[lam > 0] / total
    h = float(-(p * np.log(p)).sum())
    return h, float(np.exp(h))


def spectral_entropy(v: np.ndarray) -> float:
    """H of the normalised covariance spectrum in nats (0 for vectors without variance)."""
    return _entropy(covariance_spectrum(v))[0]


def effective_rank(v: np.ndarray) -> float:
    """exp(spectral_entropy); 0 for vectors without variance."""
    return _entropy(covariance_spectrum(v))[1]


def outlier_dimensions(v: np.ndarray, k: float = OUTLIER_K) -> np.ndarray:
    """Indices of the dimensions whose mean |activation| exceeds k x the median over dimensions."""
    m = np.abs(np.asarray(v, dtype=np.float64)).mean(axis=0)
    return np.flatnonzero(m > k * np.median(m))


def outlier_share(v: np.ndarray, k: float = OUTLIER_K) -> float:
    """Share of the summed squared norm in the outlier dimensions (0 when the vectors are all 0)."""
    x2 = np.asarray(v, dtype=np.float64) ** 2
    total = x2.sum()
    return float(x2[:, outlier_dimensions(v, k)].sum() / total) if total > 0 else 0.0


def layer_metrics(v: np.ndarray, seed: int = 0, k: float = OUTLIER_K) -> dict:
    """Every metric of one layer's (N, D) vectors, plus the number of outlier dimensions."""
    h, erank = _entropy(covariance_spectrum(v))
    return {"anisotropy": anisotropy(v, seed=seed), "spectral_entropy": h, "effective_rank": erank,
            "outlier_share": outlier_share(v, k),
            "n_outlier_dims": int(len(outlier_dimensions(v, k))), "dim": int(np.shape(v)[1])}


def _across_layers(metric: Sequence[float], rho: Sequence[float | None]) -> dict:
    """Spearman, across layers, of a metric with the layers' Spearman (None with a reason when undefined)."""
    pairs = [(m, r) for m, r in zip(metric, rho) if r is not None]
    if len(pairs) < 3:
        return {"spearman": None, "reason": f"{len(pairs)} layers with a defined Spearman; needs at least 3"}
    if len({m for m, _ in pairs}) == 1:
        return {"spearman": None, "reason": f"the metric is constant ({pairs[0][0]:.4g}) at every layer"}
    try:
        return {"spearman": spearman(np.array([m for m, _ in pairs]), np.array([r for _, r in pairs])),
                "n_layers": len(pairs)}
    except UndefinedCorrelation as e:
        return {"spearman": None, "reason": str(e)}


def layer_diagnostics(scored: Scored, pooling: str, validation: Scored | None = None, seed: int = 0,
                      n_resamples: int = BOOTSTRAP_RESAMPLES, k: float = OUTLIER_K) -> dict:
    """Per-layer metrics, their correlation with Spearman, and the label-free layer choices.

    Args:
        scored: score_sets(..., keep_vectors=True) on ONE pair set (the scored split); the
            metrics use its unlabelled sentences.
        pooling: the pooling whose layers are compared.
        validation: the same encoder's score_sets on the validation split (same layers and
            pooling), for the best-on-validation choice; None leaves it out.
        seed: anisotropy's pair draw and the paired bootstrap's.
    Returns:
        {"pooling", "metrics_on", "layers": [{"layer", "spearman", <metrics>}],
         "correlation_with_spearman": {metric: {...}}, "choices": {"oracle", "validation",
         <metric>: {"layer", "spearman", "vs_validation", "vs_oracle"}}}.
    """
    if scored.vectors is None:
        raise ValueError("layer_diagnostics needs the scored vectors; call score_sets(..., keep_vectors=True)")
    if len(scored.sets) != 1:
        raise ValueError(f"layer diagnostics take one pair set; {scored.model} was scored on "
                         f"{len(scored.sets)} ({', '.join(s.name for s in scored.sets)}); score one domain at a time")
    test = scored.sets[0]
    layers = [la for la, p in scored.settings if p == pooling and scored.aggregation_at(la) is None]
    if not layers:
        raise ValueError(f"no layer was scored with pooling {pooling!r}; scored: {scored.settings}")
    rows = []
    for la in layers:
        rows.append({"layer": la, "spearman": scored.correlations((la, pooling), 0)["spearman"]}
                    | layer_metrics(scored.vectors[(la, pooling)], seed, k))
    rho = [r["spearman"] for r in rows]
    corr = {m: _across_layers([r[m] for r in rows], rho) for m in METRICS}
    paired = PairedSet(evaluation_of(scored), test.name, n_resamples, seed)

    def choice(layer) -> dict:
        return {"layer": layer, "spearman": paired.rho.get((layer, pooling))}

    def versus(layer, other) -> dict | None:
        if other is None or (layer, pooling) not in paired.rho or (other, pooling) not in paired.rho:
            return None
        return paired.difference((layer, pooling), paired, (other, pooling))

    defined = [la for la in layers if (la, pooling) in paired.rho]
    choices: dict = {"oracle": choice(max(defined, key=lambda la: paired.rho[(la, pooling)]) if defined else None)}
    if validation is not None:
        val_rho = {la: validation.correlations((la, pooling), 0)["spearman"] for la in layers}
        val_ok = [la for la in layers if val_rho[la] is not None]
        best = max(val_ok, key=val_rho.get) if val_ok else None
        choices["validation"] = choice(best) | {"validation_spearman": val_rho.get(best),
                                                "validation_set": f"{validation.sets[0].name}/{validation.sets[0].split}"}
    for metric, end in CHOICE.items():
        if len({r[metric] for r in rows}) == 1 and len(rows) > 1:  # a tie everywhere ranks nothing
            choices[metric] = {"layer": None, "spearman": None, "rule": f"{end} {metric}",
                               "reason": f"{metric} is the same at every layer"}
            continue
        pick = (min if end == "min" else max)(rows, key=lambda r: r[metric])["layer"]
        choices[metric] = choice(pick) | {"rule": f"{end} {metric}",
                                          "vs_validation": versus(pick, choices.get("validation", {}).get("layer")),
                                          "vs_oracle": versus(pick, choices["oracle"]["layer"])}
    return {"model": scored.model, "pooling": pooling, "postprocess": scored.provenance.get("postprocess"),
            "metrics_on": f"unlabelled sentences of {test.name}/{test.split} "
                          f"({len(unique_sentences([test])[0])}); no gold score read",
            "outlier_k": k, "anisotropy_pairs": ANISOTROPY_PAIRS, "seed": seed,
            "layers": rows, "correlation_with_spearman": corr, "choices": choices}
