"""Shared test helpers that are not an oracle (tests/oracle.py: torch) nor the NNX twins'
runner (tests/nnx_helpers.py): the repository's root, the example's command line, small
inputs and window configurations. Test modules import helpers, never each other."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax.numpy as jnp

from jaxpool import _geometry as geometry

REPO = pathlib.Path(__file__).resolve().parents[1]

# The 4x4 grid of the hybrid-pooling tutorial's examples (examples/seed_demo.py prints them).
TUTORIAL_GRID = jnp.array([[1.0, 3, 2, 4], [5, 6, 8, 7], [4, 2, 1, 0], [9, 7, 3, 2]])


def axis_windows(sizes, kernel, stride, padding, dilation=1, ceil_mode=False):
    """The per-axis windows (``AxisWindows``) of a sliding-window pooling over ``sizes``."""
    return geometry.sliding_windows("test", sizes, kernel, stride, padding, dilation,
                                    ceil_mode).axes


# The three ways to start the example's command line: as a module from the repository's
# root, and by path from the root and from another folder.
LAUNCHES = {
    "module": (["-m", "examples.cifar10.{script}"], "repository"),
    "path": (["examples/cifar10/{script}.py"], "repository"),
    "path-elsewhere": ([str(REPO / "examples" / "cifar10" / "{script}.py")], "elsewhere"),
}


def run_cli(script: str, launch: str, arguments, elsewhere: pathlib.Path, *, timeout: float = 300):
    """Runs ``examples/cifar10/<script>.py`` as ``launch`` (a key of LAUNCHES), without
    PYTHONPATH, as a user's shell has it."""
    command, folder = LAUNCHES[launch]
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run(
        [sys.executable, *(part.format(script=script) for part in command), *map(str, arguments)],
        cwd=REPO if folder == "repository" else elsewhere, env=env, capture_output=True,
        text=True, timeout=timeout)
