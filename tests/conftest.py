"""Shared fixtures. Helpers only append fixtures here."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_SAMPLES = REPO.parent / "shared" / "real-samples"


@pytest.fixture(scope="session")
def real_samples() -> Path:
    """The real drop photos beside the checkout (never copied into the repo)."""
    if not (REAL_SAMPLES / "labels.csv").is_file():
        pytest.skip("../shared/real-samples is not beside this checkout")
    return REAL_SAMPLES
