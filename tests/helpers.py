"""Shared test helpers that are not an oracle (tests/oracle.py: torch) nor the NNX twins'
runner (tests/nnx_helpers.py) nor the example's (tests/example_helpers.py): the
repository's root, small inputs and window configurations. Test modules import helpers,
never each other."""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp

from jaxpool import _geometry as geometry

REPO = pathlib.Path(__file__).resolve().parents[1]

# The 4x4 grid of the hybrid-pooling tutorial's examples (examples/seed_demo.py prints them).
TUTORIAL_GRID = jnp.array([[1.0, 3, 2, 4], [5, 6, 8, 7], [4, 2, 1, 0], [9, 7, 3, 2]])


def axis_windows(sizes, kernel, stride, padding, dilation=1, ceil_mode=False):
    """The per-axis windows (``AxisWindows``) of a sliding-window pooling over ``sizes``."""
    return geometry.sliding_windows("test", sizes, kernel, stride, padding, dilation,
                                    ceil_mode).windows


# XLA options for tests of whole models, where compiling dominates and the code is tiny:
# LLVM at -O0 and, where XLA has them (jax >= 0.5.3), its CPU fusion emitters off.
FAST_COMPILE = {"xla_backend_optimization_level": 0} | (
    {"xla_cpu_use_fusion_emitters": False} if jax.__version_info__ >= (0, 5, 3) else {})
