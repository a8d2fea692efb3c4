"""Shared test fixtures: where the real data lives, and the Hypothesis CI profile."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from rwkv_eval.models.load import shipped_dir

# the one data variable of the CLI and the suite; default: the shared folder beside the checkout
SHARED_DATA = Path(os.environ.get("RWKV_EVAL_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def pytest_configure(config: pytest.Config) -> None:
    """Hermetic embedding cache: the CLI, the plugin and every subprocess test of this session read
    and write a fresh folder (RWKV_EVAL_CACHE_DIR), so no result depends on an earlier run; removed
    at the end of the session."""
    import tempfile

    config._rwkv_cache = tempfile.TemporaryDirectory(prefix="rwkv-eval-cache-")
    os.environ["RWKV_EVAL_CACHE_DIR"] = config._rwkv_cache.name


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(config, "_rwkv_cache"):
        config._rwkv_cache.cleanup()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (set RWKV_EVAL_DATA to the shared/data folder)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_assets() -> Path:
    """The tiny trained RWKV-6/7 checkpoints and their logits, shipped in the package
    (rwkv_eval/data/tiny-rwkv, see NOTICE there): oracle tests never skip."""
    return shipped_dir()
