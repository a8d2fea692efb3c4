"""Label-free layer diagnostics (analyses/diagnostics.py) and anisotropy post-processing
(postprocess.py) against independent numpy computations on small matrices with known
spectra; the scorer's post-processing settings; `rwkv-eval evaluate --diagnostics`."""

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import spearmanr

from rwkv_eval.analyses.diagnostics import (
    CHOICE,
    METRICS,
    anisotropy,
    covariance_spectrum,
    effective_rank,
    layer_diagnostics,
    layer_metrics,
    outlier_dimensions,
    outlier_share,
    spectral_entropy,
)
from rwkv_eval.cli import main
from rwkv_eval.datasets import load_sample, sample
from rwkv_eval.evaluation import score_sets
from rwkv_eval.models.load import load_encoder
from rwkv_eval.postprocess import PostProcess, fit, parse_postprocess


def with_spectrum(lam, n=40, seed=0) -> np.ndarray:
    """(n, D) vectors whose sample covariance has exactly the eigenvalues `lam` (random eigenvectors)."""
    rng = np.random.default_rng(seed)
    d = len(lam)
    z = rng.standard_normal((n, d))
    z -= z.mean(axis=0)
    q_rows, _ = np.linalg.qr(z)  # (n, d) orthonormal columns, each orthogonal to the ones vector
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return np.sqrt(n - 1) * q_rows @ np.diag(np.sqrt(lam)) @ basis.T + rng.standard_normal(d) * 5


@pytest.mark.parametrize("lam", [[4.0, 2.0, 1.0, 1.0, 0.5], [1.0] * 6, [9.0, 0, 0, 0], [3.0, 1e-3, 1e-3]],
                         ids=["graded", "isotropic", "one-direction", "near-rank-1"])
def test_spectrum_entropy_and_effective_rank_match_the_formulas(lam):
    x = with_spectrum(lam)
    np.testing.assert_allclose(covariance_spectrum(x)[: len(lam)], sorted(lam, reverse=True), atol=1e-9)
    p = np.array([v for v in lam if v > 0]) / sum(lam)
    h = -np.sum(p * np.log(p))
    assert spectral_entropy(x) == pytest.approx(h, abs=1e-6)
    assert effective_rank(x) == pytest.approx(np.exp(h), rel=1e-6)


def test_effective_rank_of_the_extremes():
    assert effective_rank(with_spectrum([1.0] * 6)) == pytest.approx(6.0, rel=1e-9)
    assert effective_rank(with_spectrum([5.0, 0, 0])) == pytest.approx(1.0, abs=1e-6)
    assert effective_rank(np.ones((5, 3))) == 0.0 and spectral_entropy(np.ones((5, 3))) == 0.0


def test_anisotropy_of_a_known_cone_and_of_random_vectors():
    d = 8
    cone = np.eye(d)[1:] + np.eye(d)[0]  # e_0 + e_i: every pair of distinct rows has cosine exactly 1/2
    assert anisotropy(cone, seed=3) == pytest.approx(0.5, abs=1e-12)
    x = np.random.default_rng(1).standard_normal((60, 5)) + 2.0
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    g = u @ u.T
    every_pair = (g.sum() - np.trace(g)) / (len(x) * (len(x) - 1))
    se = np.std(g[~np.eye(len(x), dtype=bool)]) / np.sqrt(2000)
    assert abs(anisotropy(x, seed=0) - every_pair) < 4 * se
    assert anisotropy(x, seed=0) == anisotropy(x, seed=0)  # seeded


def test_outlier_share_matches_the_definition():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 10))
    x[:, 3] += 40.0  # a massive channel: mean |x| ~ 40 vs a median ~ 0.8
    x[:, 7] *= 5.0  # large but below 10 x the median
    m = np.abs(x).mean(axis=0)
    assert m[7] < 10 * np.median(m) < m[3]
    assert outlier_dimensions(x).tolist() == [3]
    assert outlier_share(x) == pytest.approx((x[:, 3] ** 2).sum() / (x**2).sum(), rel=1e-12)
    assert outlier_share(x, k=1e6) == 0.0
    assert outlier_share(np.zeros((3, 4))) == 0.0
    assert layer_metrics(x)["n_outlier_dims"] == 1


def test_post_processing_against_numpy():
    rng = np.random.default_rng(4)
    train = with_spectrum([6.0, 3.0, 1.0, 0.5, 0.2], n=50, seed=5)
    test = rng.standard_normal((7, 5)) * 2 + 1
    mu = train.mean(axis=0)
    np.testing.assert_allclose(fit(PostProcess("center"), train).apply(test), test - mu, rtol=1e-5, atol=1e-5)
    _, _, vt = np.linalg.svd(train - mu)
    out = fit(parse_postprocess("abtt:2"), train).apply(test)
    want = (test - mu) - (test - mu) @ vt[:2].T @ vt[:2]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    white = fit(PostProcess("whiten"), train).apply(train)
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(5), atol=1e-5)
    np.testing.assert_array_equal(fit(PostProcess(), train).apply(test), test.astype(np.float32))


def test_whitening_drops_the_directions_without_fitted_variance():
    train = with_spectrum([4.0, 1.0, 0.0, 0.0], n=20)
    white = fit(PostProcess("whiten"), train).apply(train)
    assert white.shape == (20, 2)
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(2), atol=1e-5)


@pytest.mark.parametrize("spec,message", [("abtt", "abtt needs the number"), ("abtt:0", "abtt needs the number"),
                                          ("whiten:2", "only abtt takes a number"), ("pca", "unknown post-processing")])
def test_bad_post_processing_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_postprocess(spec)


@pytest.fixture(scope="module")
def tiny_scored(tiny_assets):
    """Tiny RWKV-6 on 24 sample pairs (test) and 24 others (standing in for validation), every block."""
    enc = load_encoder(str(tiny_assets / "tiny-rwkv-6v0-1m.pth"))
    full = load_sample()
    test = sample(full, 24, 0)
    val = sample(full, 24, 1)
    layers = [la for la in enc.layers() if isinstance(la, int)]
    return (enc, score_sets(enc, [test], layers, ["mean"], keep_vectors=True),
            score_sets(enc, [replace(val, split="validation")], layers, ["mean"]), layers)


def test_layer_diagnostics_against_independent_computations(tiny_scored):
    _, scored, val, layers = tiny_scored
    d = layer_diagnostics(scored, "mean", val, seed=0, n_resamples=200)
    assert [r["layer"] for r in d["layers"]] == layers
    rho = [r["spearman"] for r in d["layers"]]
    assert rho == [scored.correlations((la, "mean"), 0)["spearman"] for la in layers]
    for m in METRICS:
        values = [r[m] for r in d["layers"]]
        got = d["correlation_with_spearman"][m]
        if len(set(values)) == 1:  # a constant metric (no outlier dimension in any layer) has no correlation
            assert got["spearman"] is None and "constant" in got["reason"], m
        else:
            assert got["spearman"] == pytest.approx(spearmanr(values, rho).statistic, abs=1e-12), m
    for r in d["layers"]:
        v = scored.vectors[(r["layer"], "mean")]
        assert r["effective_rank"] == pytest.approx(effective_rank(v)) and r["anisotropy"] == anisotropy(v)
    oracle = layers[int(np.argmax(rho))]
    val_rho = [val.correlations((la, "mean"), 0)["spearman"] for la in layers]
    chosen_on_val = layers[int(np.argmax(val_rho))]
    assert d["choices"]["oracle"]["layer"] == oracle
    assert d["choices"]["validation"]["layer"] == chosen_on_val
    assert set(CHOICE) == {"anisotropy", "effective_rank", "outlier_share"}
    for metric, end in {"anisotropy": "min", "effective_rank": "max", "outlier_share": "min"}.items():
        values = [r[metric] for r in d["layers"]]
        c = d["choices"][metric]
        if len(set(values)) == 1:  # e.g. no outlier dimension at any layer: no choice, and why
            assert c["layer"] is None and "same at every layer" in c["reason"]
            continue
        pick = layers[int(np.argmin(values) if end == "min" else np.argmax(values))]
        assert c["layer"] == pick, metric
        assert c["vs_validation"]["delta_spearman"] == pytest.approx(rho[layers.index(pick)]
                                                                     - rho[layers.index(chosen_on_val)])
        assert c["vs_oracle"]["delta_spearman"] == pytest.approx(rho[layers.index(pick)] - max(rho))
        assert c["vs_oracle"]["delta_ci95"][1] >= 0 or pick == oracle  # the oracle is best on these pairs


def test_layer_diagnostics_need_the_vectors_and_one_set(tiny_scored):
    _, _, val, _ = tiny_scored
    with pytest.raises(ValueError, match="keep_vectors=True"):
        layer_diagnostics(val, "mean")


def test_post_processing_is_a_setting_of_the_scorer_fitted_on_another_split(tiny_scored):
    enc, scored, val, _ = tiny_scored
    test = scored.sets[0]
    with pytest.raises(ValueError, match="never on the evaluated one"):
        score_sets(enc, [test], [0], ["mean"], postprocess="center", fit_set=test)
    with pytest.raises(ValueError, match="pass fit_set"):
        score_sets(enc, [test], [0], ["mean"], postprocess="center")
    fit_set = val.sets[0]
    centred = score_sets(enc, [test], [0], ["mean"], postprocess="center", fit_set=fit_set, keep_vectors=True)
    mu = val_vectors(enc, fit_set).mean(axis=0)
    np.testing.assert_allclose(centred.vectors[(0, "mean")], scored.vectors[(0, "mean")] - mu, atol=1e-5)
    assert centred.provenance["postprocess"] == "center"
    assert centred.provenance["postprocess_fit"]["split"] == "validation"
    assert scored.provenance["postprocess"] == "none"


def val_vectors(enc, pairs) -> np.ndarray:
    from rwkv_eval.evaluation import unique_sentences

    return enc.encode(unique_sentences([pairs])[0], [0], ["mean"]).vectors[(0, "mean")]


def test_cli_diagnostics_and_postprocess(tmp_path, shared_data, capsys):
    out = tmp_path / "d.json"
    args = ["evaluate", "--model", "glove-6b-50d", "--dataset", "stsb", "--data-dir", str(shared_data), "--subset",
            "40", "--resamples", "50", "--diagnostics", "--postprocess", "abtt:1", "--output", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "diagnostics: glove-6b-50d pooling mean, postprocess abtt:1" in text
    assert "choice validation: layer 0" in text and "choice effective_rank: layer 0" in text
    data = json.loads(out.read_text())
    assert data["records"][0]["postprocess"] == "abtt:1"
    assert data["records"][0]["postprocess_fit"]["split"] == "train-40"
    assert data["diagnostics"][0]["choices"]["validation"]["validation_set"] == "stsb/validation-40"
    # the report section reads that file: a table row per choice and one figure with a panel per metric
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rwkv_eval.report.diagnostics import diagnostics_section, load_diagnostics, make_plots

    files = [load_diagnostics(out)]
    text = "\n".join(diagnostics_section(files))
    assert "| glove-6b-50d | mean | abtt:1 | 1 | — | — | — |" in text
    assert "| glove-6b-50d | mean | effective_rank | 0 |" in text
    assert make_plots(plt, files, tmp_path) == ["diagnostics__glove-6b-50d__mean__abtt-1.png"]
    assert (tmp_path / "diagnostics__glove-6b-50d__mean__abtt-1.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="not the output of `rwkv-eval evaluate --diagnostics"):
        load_diagnostics(out.with_name("x.json")) if out.with_name("x.json").write_text("[]") else None


@pytest.mark.parametrize("extra,message", [(["--postprocess", "center", "--fit-split", "test"], "the split being "
                                                                                                  "evaluated"),
                                           (["--postprocess", "whiten", "--dataset", "stsb-sample"],
                                            "does not have"),
                                           (["--postprocess", "abtt"], "abtt needs the number")])
def test_cli_postprocess_is_checked_before_the_model_loads(extra, message, capsys):
    args = ["evaluate", "--model", "no-such-model.pth", "--dataset", "stsb", *extra]
    if "--dataset" in extra[2:]:
        args = ["evaluate", "--model", "no-such-model.pth", *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err
