"""Shared fixtures (keep this file small: fixtures used by several test files only)."""

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator with a fixed seed, so every test sees the same numbers."""
    return np.random.default_rng(0)


import graphc.validate

# Every plan a test compiles is checked by the independent validator.
graphc.validate.VALIDATE_PLANS = True


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/*.txt from the plans compiled now (review them with git diff)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether the golden tests rewrite their files instead of comparing with them."""
    return request.config.getoption("--update-golden")
