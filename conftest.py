"""Test configuration: strict JAX, torch as the oracle, reproducible hypothesis runs."""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

# Implicit rank promotion hides shape bugs; make it an error everywhere in the tests.
jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _torch_threads():
    """One torch thread: deterministic reductions and no oversubscription of 2 cores."""
    try:
        import torch
    except ImportError:  # the oracle is a test dependency; tests that need it import it
        yield
        return
    torch.set_num_threads(1)
    yield
