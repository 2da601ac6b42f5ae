"""NNX models behind linen's functional interface, so one training loop serves both APIs.

``python -m examples.cifar10.train --api nnx`` trains :mod:`jaxpool.nnx` models
(``jaxpool.nnx.make_model``) with exactly the loop, optimizer state, sharding,
checkpoints and resume of the default ``--api linen``: :class:`NNXClassifier` gives an
NNX model linen's ``init(key, x)`` and ``apply(variables, x, train=..., mutable=...)``
over the same variables dict ``{'params': ..., 'batch_stats': ...}``
(:func:`jaxpool.nnx.variables` / :func:`jaxpool.nnx.load_variables`; jaxpool's NNX
twins name their variables as the linen modules do). Inside a jitted step ``apply``
rebuilds the module from that dict, runs it in training (``module.train()``) or
evaluation mode (``module.eval()``), and reads the updated BatchNorm statistics back out:
the forward and backward passes are the NNX modules' own.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from examples.cifar10.nnx_model import NNXClassifier
  >>> model = NNXClassifier("resnet18", in_features=3, pool="hybrid", width=4)
  >>> x = jnp.zeros((2, 8, 8, 3))
  >>> variables = model.init(jax.random.key(0), x)
  >>> sorted(variables)
  ['batch_stats', 'params']
  >>> logits, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
  >>> logits.shape, sorted(updates)
  ((2, 10), ['batch_stats'])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

import jaxpool.nnx as jpn


@dataclasses.dataclass(frozen=True)
class NNXClassifier:
    """A :func:`jaxpool.nnx.make_model` model with linen's ``init`` / ``apply``.

    Attributes:
      name: the ``--model`` name ('resnet18' or 'hybrid_resnet').
      in_features: image channels.
      num_classes: classes.
      pool: the ``--pool`` name.
      width: the model's width (``None``: the model's default).
      dtype: computation dtype.
      image_size: ``(H, W)`` of the images (``pool='gated'`` sizes its gate from it).
    """

    name: str
    in_features: int
    num_classes: int = 10
    pool: str = "max"
    width: int | None = None
    dtype: Any = jnp.float32
    image_size: tuple[int, int] | None = None

    def build(self, rngs: nnx.Rngs) -> nnx.Module:
        """The NNX model, parameters drawn from ``rngs``."""
        return jpn.make_model(
            self.name, in_features=self.in_features, num_classes=self.num_classes,
            pool=self.pool, width=self.width, dtype=self.dtype, image_size=self.image_size,
            rngs=rngs,
        )

    def init(self, key: jax.Array, x: jax.Array, train: bool = False) -> dict[str, Any]:
        """The variables of a freshly initialised model (``x`` is unused: NNX modules are
        sized at construction; it is accepted for linen's signature)."""
        del x, train
        return jpn.variables(self.build(nnx.Rngs(key)))

    def apply(
        self,
        variables: dict[str, Any],
        x: jax.Array,
        train: bool = False,
        mutable: Sequence[str] | bool = False,
    ):
        """Runs the model on ``x`` with ``variables``; with ``mutable=['batch_stats']``
        also returns ``{'batch_stats': ...}`` after the update a training step makes."""
        # Shapes only: the weights come from ``variables``, nothing is initialised.
        module = nnx.eval_shape(lambda: self.build(nnx.Rngs(0)))
        jpn.load_variables(module, variables)
        if train:
            module.train()
        else:
            module.eval()
        logits = module(x)
        if not mutable:
            return logits
        return logits, {"batch_stats": jpn.variables(module).get("batch_stats", {})}
