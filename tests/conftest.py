"""Shared fixtures: the shared data directory (integration tests skip without it)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ARCHCOUNT_SHARED", REPO.parent / "shared")) / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout, or skip with the reason."""
    if not (SHARED_DATA / "cifar10-jpeg.zip").is_file():
        pytest.skip(f"integration data not found: {SHARED_DATA}/cifar10-jpeg.zip is missing "
                    f"(set ARCHCOUNT_SHARED to the folder holding data/)")
    return SHARED_DATA


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the golden files under tests/golden instead of comparing with them")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
