"""Test configuration: strict JAX, torch as the oracle, reproducible hypothesis runs."""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

import jaxpool

# Implicit rank promotion hides shape bugs; make it an error everywhere in the tests.
jax.config.update("jax_numpy_rank_promotion", "raise")

# Hypothesis profiles, chosen by HYPOTHESIS_PROFILE: how many examples, and whether the
# run is the same every time (derandomized: "ci" and "lower-bounds").
_PROFILE = dict(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture,
    ],
)
settings.register_profile("ci", max_examples=20, derandomize=True, **_PROFILE)
# The run at the lowest supported versions (.ci/run) checks that every path still works
# there; the wide sweep over generated configurations is the main run's job.
settings.register_profile("lower-bounds", max_examples=5, derandomize=True, **_PROFILE)
settings.register_profile("thorough", max_examples=200, **_PROFILE)
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


KERNEL_FAMILIES = ("cpu", "reduce_window")


@pytest.fixture
def kernel_family(request):
    """The kernel family a test runs under (a ``jaxpool.kernels`` block, which wins over
    ``JAXPOOL_KERNELS``); parametrised by :func:`pytest_generate_tests`."""
    with jaxpool.kernels(request.param):
        yield request.param


def pytest_generate_tests(metafunc):
    """Runs every test function of a module that sets ``PER_KERNEL_FAMILY = True`` once
    per kernel family. (unittest classes cannot be parametrised: they subclass
    ``tests.oracle.FamilyTestCase`` once per family instead.)"""
    if metafunc.cls is None and getattr(metafunc.module, "PER_KERNEL_FAMILY", False):
        if "kernel_family" not in metafunc.fixturenames:
            metafunc.fixturenames.append("kernel_family")
        metafunc.parametrize("kernel_family", KERNEL_FAMILIES, indirect=True)
