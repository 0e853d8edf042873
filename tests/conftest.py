"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The repo's `models/` directory, built first if missing or stale (the files `make models` makes)."""
    from modelserver import build_models  # scikit-learn and onnx load only for tests that need models

    out = REPO / "models"
    build_models.build(out)
    return out
