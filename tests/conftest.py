"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test old code: a compiled module whose source changed since the build (plumbing.compiled)."""
    from plumbing.compiled import stale

    if problems := stale():
        pytest.exit(
            "compiled modules do not match their sources (`make install` rebuilds them):\n  "
            + "\n  ".join(problems),
            returncode=4,
        )


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The repo's `models/` directory, built first if missing or stale (the files `make models` makes)."""
    from modelserver import build_models  # scikit-learn and onnx load only for tests that need models

    out = REPO / "models"
    build_models.build(out)
    return out
