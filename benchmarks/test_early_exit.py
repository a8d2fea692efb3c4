"""Question 4: early exit vs fixed-depth pruning, quality and measured time, per dataset.

For each native RWKV model and each of MRPC validation, STS-B test and RTE validation
(QQP validation when its data is there; the bundled STS-B sample without a data root):
one `early_exit.exit_study` — the full pass, every fixed depth and every exit setting
timed against the full pass on the same sentences (measure.compare_times: warm-up,
alternating order, rounds by time, median, bootstrap CI of the speed-up), each speed-up
beside its compute bound (a CI above it is flagged `measurement_fault`), each setting
compared with fixed depth at equal mean blocks (`iso_compute`) and marked when its exits
are degenerate. The records go to extra_info["early_exit"]; the report draws quality vs
mean blocks executed and vs measured time per pair, both curves on one plot.

Perf profile (light, for 2 CPU cores, offline; `smoke_sample` in the records): the tiny
trained RWKV-6 (and the random-init smoke shape on one set), a seeded sample of SMOKE_PAIRS
pairs per set, thresholds tuned on SMOKE_TUNE_PAIRS train pairs, sentences cut at SMOKE_MAX_LENGTH tokens, fixed depths
SMOKE_DEPTHS, timing rounds SMOKE_TIMING (at least 5 rounds, 0.5 s) — all recorded.
Any other profile (e.g. `--rwkv-profile paper --model RWKV/v6-Finch-1B6-HF --device cuda`)
runs the full sets, tunes on the full train split and times FULL_TIMING (5 rounds, 2 s).
The saturation threshold is also chosen on the set's tuning split (CHOOSE_ON: the
cheapest within MAX_RHO_LOSS of full depth) and applied to the evaluated split.
"""

from __future__ import annotations

import pytest

from rwkv_eval.models.load import is_shipped
from rwkv_eval.records import environment

pytestmark = pytest.mark.rwkv_cost  # a cost benchmark: the perf profile runs it, smoke does not

SMOKE_PAIRS = 24
SMOKE_TUNE_PAIRS = 32
SMOKE_MAX_LENGTH = 128
SMOKE_RULES = (("saturation", 1.0, 1), ("saturation", 0.995, 1), ("saturation", 0.95, 1), ("pair", 0.01, 1))
SMOKE_DEPTHS = (1, 3, 5, 7, 9, 11)  # the study's layers; every block outside the perf profile
FULL_RULES = tuple(("saturation", t, p) for t in (1.0, 0.999, 0.995, 0.99, 0.98, 0.95) for p in (1, 2)) + tuple(
    ("pair", e, p) for e in (0.01, 0.003, 0.001) for p in (1, 2))
SMOKE_TIMING, FULL_TIMING = (5, 0.5), (5, 2.0)  # (min rounds, min seconds) of measure.compare_times
MAX_RHO_LOSS = 0.01
DATASETS = (("mrpc", "validation", "train"), ("stsb", "test", None), ("rte", "validation", "train"),
            ("qqp", "validation", "train"))
CHOOSE_ON = {"mrpc": "train", "stsb": "validation", "rte": "train", "qqp": "train"}  # never the evaluated split


def _models(run) -> list[tuple[str, str, bool]]:
    """(key, spec, smoke) of the native RWKV models this run studies."""
    given = run.config.getoption("--model") or []  # repeatable option: a list
    if given:
        return [(m.rstrip("/").split("/")[-1].lower(), m, run.profile_name == "perf") for m in given]
    smoke = [(m.key, m.spec, True) for m in run.profile.models if is_shipped(m.spec, "tiny-rwkv6")]
    return smoke + [("rwkv6-random-smoke", "random-rwkv6:smoke", True)]


def _cases(run):
    from rwkv_eval.datasets import load_pairs

    out = []
    for key, spec, smoke in _models(run):
        for name, split, tune in DATASETS:
            if spec.startswith("random-") and name != "stsb":
                continue  # random-init: cost only, on one set
            try:
                load_pairs(name, split, run.profile.data_dir, allow_hub=False)
            except FileNotFoundError:
                continue
            out.append(pytest.param(key, spec, smoke, name, split, tune, id=f"{key}/{name}-{split}"))
        if not any(p.values[0] == key for p in out):
            out.append(pytest.param(key, spec, smoke, "stsb-sample", "test", None, id=f"{key}/stsb-sample-test"))
    return out


def pytest_generate_tests(metafunc):
    if "exit_case" in metafunc.fixturenames:
        from rwkv_eval.suite.plugin import get_run

        metafunc.parametrize("exit_case", [p.values for p in _cases(get_run(metafunc.config))],
                             ids=[p.id for p in _cases(get_run(metafunc.config))])


def test_early_exit_vs_fixed_depth(exit_case, run, benchmark):
    import torch

    from rwkv_eval.datasets import load_pairs, load_sample, sample
    from rwkv_eval.analyses.early_exit import ExitRule, exit_study
    from rwkv_eval.models.load import load_encoder

    key, spec, smoke, name, split, tune_split = exit_case
    enc = load_encoder(spec, device=run.device, dtype=getattr(torch, run.dtype), seed=0,
                       max_length=SMOKE_MAX_LENGTH if smoke else None)
    pairs = load_sample() if name == "stsb-sample" else load_pairs(name, split, run.profile.data_dir)
    tune = load_pairs(name, tune_split, run.profile.data_dir) if tune_split else None
    rules = [ExitRule(c, t, p) for c, t, p in (SMOKE_RULES if smoke else FULL_RULES)]
    choose = None if name == "stsb-sample" else load_pairs(name, CHOOSE_ON[name], run.profile.data_dir)
    if smoke:
        pairs = sample(pairs, SMOKE_PAIRS)
        tune = tune and sample(tune, SMOKE_TUNE_PAIRS)
        choose = choose and sample(choose, SMOKE_TUNE_PAIRS)
    min_rounds, min_time = SMOKE_TIMING if smoke else FULL_TIMING
    n_layer = max(la for la in enc.layers() if isinstance(la, int)) + 1
    depths = sorted({d for d in SMOKE_DEPTHS if d < n_layer} | {n_layer - 1}) if smoke else None
    records = benchmark.pedantic(lambda: exit_study(enc, pairs, rules, "mean", batch_size=32, tune=tune,
                                                    depths=depths, min_rounds=min_rounds, min_time=min_time,
                                                    choose_on=choose, max_rho_loss=MAX_RHO_LOSS),
                                 rounds=1, iterations=1)
    info = benchmark.extra_info
    info.update(environment(enc.device))
    info.update({"analysis": "early_exit", "model_key": key, "trained": not spec.startswith("random-"),
                 "exit_dataset": f"{name}-{split}", "smoke_sample": smoke, "device": run.device, "dtype": run.dtype,
                 "early_exit": records})
    full = next(r for r in records if r["criterion"] == "saturation" and r["tau"] == 1.0)
    # tau = 1 never exits: the same vectors as the full pass (its time differs only by overhead)
    assert full["mean_layers"] == full["n_layers"]
    assert full["spearman"] == next(r for r in records if r["depth"] == full["n_layers"] - 1)["spearman"]
    # no published speed-up above its compute bound: a fault here is the timing's, not the model's
    faults = [r for r in records if r["measurement_fault"]]
    assert not faults, [(r["criterion"], r["tau"], r["depth"], r["speedup"], r["speedup_bound"]) for r in faults]
