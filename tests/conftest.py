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
