"""Shared helpers of the example's tests (tests/test_train.py, test_train_nnx.py,
test_checkpoints.py, test_compare.py): tiny data, one tiny run's configuration, tree and
history comparisons, and the command line. Apart from tests/helpers.py because they
import the example (optax, orbax), which the library's tests do not need."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import numpy as np

from examples.cifar10 import data, train
from tests.helpers import REPO


def tiny_dataset(image_size: int = 8, channels: int = 1, train_size: int = 48,
                 test_size: int = 20, seed: int = 3) -> data.Dataset:
    """A learnable random dataset named 'tiny': ``128 + 48 * pattern + 32 * noise``, with a
    random 4x4 pattern per class (of 10) and channel, upsampled to the image size."""
    rng = np.random.default_rng(seed)
    upsample = (np.arange(image_size) * 4) // image_size
    patterns = rng.standard_normal((10, 4, 4, channels))[:, upsample][:, :, upsample]

    def sample(size):
        labels = rng.permutation(np.arange(size) % 10).astype(np.int32)
        noise = rng.standard_normal((size, image_size, image_size, channels))
        return np.clip(np.rint(128 + 48 * patterns[labels] + 32 * noise), 0, 255).astype(np.uint8), labels

    return data.make_dataset("tiny", sample(train_size), sample(test_size), 10,
                             f"tiny random {image_size}x{image_size}x{channels} images")


DATASET = tiny_dataset()
CONFIG = train.TrainConfig(dataset="tiny", model="hybrid_resnet", pool="hybrid", width=2,
                           epochs=3, batch_size=16, eval_batch_size=8, seed=5, fast_compile=True)


def tree_equal(a, b) -> bool:
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def numbers(history):
    """Every number of a history but the timings."""
    timings = {"images_per_second", "seconds", "compile_seconds"}
    return [{key: value for key, value in row.items() if key not in timings} for row in history]


# The ways to start the CLI: as a module from the repository's root, and by path from the
# root and from another folder; without PYTHONPATH, as a user's shell has it.
LAUNCHES = {
    "module": (["-m", "examples.cifar10.{script}"], "repository"),
    "path": (["examples/cifar10/{script}.py"], "repository"),
    "path-elsewhere": ([str(REPO / "examples" / "cifar10" / "{script}.py")], "elsewhere"),
}


def run_cli(script: str, launch: str, arguments, elsewhere: pathlib.Path, *, timeout=300):
    """Runs ``examples/cifar10/<script>.py`` as ``launch`` (a key of LAUNCHES)."""
    command, folder = LAUNCHES[launch]
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, *(part.format(script=script) for part in command), *map(str, arguments)],
        cwd=REPO if folder == "repository" else elsewhere, env=dict(env, JAX_PLATFORMS="cpu"),
        capture_output=True, text=True, timeout=timeout)
