"""Flax NNX modules for the pooling ops: the twins of ``jaxpool/_linen.py``.

Each has its linen twin's name, arguments, defaults and numbers (see the twin's
docstring for the shapes and the attributes); the flags are keyword-only. The
configuration is checked at construction, with the same rules as linen's, and stored
as attributes; ``module(x)`` calls the op. Sizes are tuples whose length sets the rank:
``MaxPool((2, 2))`` pools 2D.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from flax import nnx
from jax.typing import ArrayLike

from jaxpool import _adaptive as adaptive
from jaxpool import _module_rules as rules
from jaxpool._module_rules import OptionalSize, PaddingLike, Size
from jaxpool.nnx._common import PoolingModule, configure

RngsLike = nnx.Rngs | nnx.RngStream | jax.Array


class MaxPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.MaxPool`: max pooling, as ``torch.nn.MaxPool{1,2,3}d``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.MaxPool(kernel_size=(3, 3), stride=2, padding=1)
      >>> pool(jnp.ones((8, 32, 32, 16))).shape
      (8, 16, 16, 16)
    """

    op = rules.MAX_POOL

    def __init__(
        self,
        kernel_size: Size,
        stride: int | Size | None = None,
        padding: PaddingLike = 0,
        dilation: int | Size = 1,
        *,
        ceil_mode: bool = False,
        return_indices: bool = False,
        channels_first: bool = False,
    ):
        configure(self, locals())


class AvgPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.AvgPool`: average pooling, as
    ``torch.nn.AvgPool{1,2,3}d``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.AvgPool(kernel_size=(2, 2))
      >>> pool(jnp.arange(1.0, 17.0).reshape(4, 4, 1))[..., 0]
      Array([[ 3.5,  5.5],
             [11.5, 13.5]], dtype=float32)
    """

    op = rules.AVG_POOL

    def __init__(
        self,
        kernel_size: Size,
        stride: int | Size | None = None,
        padding: PaddingLike = 0,
        *,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        channels_first: bool = False,
    ):
        configure(self, locals())


class LPPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.LPPool`: power-average pooling, as
    ``torch.nn.LPPool{1,2,3}d``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.LPPool(norm_type=2, kernel_size=(2, 2))
      >>> pool(jnp.full((2, 2, 1), 3.0))[..., 0]
      Array([[6.]], dtype=float32)
    """

    op = rules.LP_POOL

    def __init__(
        self,
        norm_type: float,
        kernel_size: Size,
        stride: int | Size | None = None,
        *,
        ceil_mode: bool = False,
        channels_first: bool = False,
    ):
        configure(self, locals())


class AdaptiveAvgPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.AdaptiveAvgPool`: adaptive average pooling with
    torch's windows.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.AdaptiveAvgPool(output_size=(7, 7))
      >>> pool(jnp.ones((2, 56, 56, 8))).shape
      (2, 7, 7, 8)
    """

    op = rules.ADAPTIVE_AVG_POOL

    def __init__(self, output_size: OptionalSize, *, channels_first: bool = False):
        configure(self, locals())


class AdaptiveMaxPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.AdaptiveMaxPool`: adaptive max pooling with
    torch's windows and tie rule.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.AdaptiveMaxPool(output_size=(5, 5))
      >>> pool(jnp.ones((2, 10, 10, 8))).shape
      (2, 5, 5, 8)
    """

    op = rules.ADAPTIVE_MAX_POOL

    def __init__(
        self, output_size: OptionalSize, *, return_indices: bool = False,
        channels_first: bool = False,
    ):
        configure(self, locals())


class GlobalPoolBase(PoolingModule):
    """The twin of :class:`jaxpool._linen.GlobalPoolBase`: the arguments of the
    parameter-free global heads; subclasses name their op."""

    def __init__(
        self, *, spatial_dims: int = 2, keepdims: bool = False, channels_first: bool = False
    ):
        configure(self, locals())


class GlobalAvgPool(GlobalPoolBase):
    """The NNX twin of :class:`jaxpool.GlobalAvgPool`: the mean over all spatial positions.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> jpn.GlobalAvgPool()(jnp.ones((8, 7, 7, 512))).shape
      (8, 512)
    """

    op = staticmethod(adaptive.global_avg_pool)


class GlobalMaxPool(GlobalPoolBase):
    """The NNX twin of :class:`jaxpool.GlobalMaxPool`: the maximum over all spatial
    positions.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> jpn.GlobalMaxPool(keepdims=True)(jnp.ones((8, 7, 7, 512))).shape
      (8, 1, 1, 512)
    """

    op = staticmethod(adaptive.global_max_pool)


def _draw_key(rngs: RngsLike, collection: str) -> jax.Array:
    """A key from ``rngs``: an ``nnx.Rngs`` (its ``collection`` stream), an
    ``nnx.RngStream`` or a key itself."""
    if isinstance(rngs, nnx.Rngs):
        return rngs[collection]()
    if isinstance(rngs, nnx.RngStream):
        return rngs()
    if isinstance(rngs, jax.Array):
        return rngs
    raise TypeError(
        f"FractionalMaxPool: rngs must be an nnx.Rngs, an nnx.RngStream or a jax.random "
        f"key, but got {type(rngs).__name__}: {rngs!r}"
    )


def _own_stream(rngs: RngsLike | None, collection: str) -> nnx.Rngs | None:
    """A stream of the module's own, seeded from ``rngs`` (as nnx.Dropout forks one):
    drawing from it never advances the caller's streams."""
    if rngs is None:
        return None
    return nnx.Rngs(**{collection: _draw_key(rngs, collection)})


class FractionalMaxPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.FractionalMaxPool`: fractional max pooling, as
    ``torch.nn.FractionalMaxPool{2,3}d``.

    What differs is where the samples come from. Every call draws fresh pooling
    regions, as torch samples anew each forward, from the ``rng_collection`` stream
    (``'fractional'``): of the ``rngs`` given to the call if any, else of the module's
    own stream, seeded at construction from ``rngs`` (as ``nnx.Dropout`` does with
    ``'dropout'``).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.FractionalMaxPool(kernel_size=(2, 2), output_ratio=(0.5, 0.5),
      ...                              rngs=nnx.Rngs(fractional=0))
      >>> pool(jnp.ones((2, 10, 10, 3))).shape
      (2, 5, 5, 3)
      >>> pool(jnp.ones((2, 10, 10, 3)), rngs=nnx.Rngs(fractional=1)).shape
      (2, 5, 5, 3)

    Attributes:
      rngs: the module's own stream (an ``nnx.Rngs`` seeded from the ``rngs`` argument:
        an ``nnx.Rngs``, an ``nnx.RngStream`` or a key), or None: then every call
        needs ``rngs``.
    """

    op = rules.FRACTIONAL_MAX_POOL

    def __init__(
        self,
        kernel_size: Size,
        output_size: int | Size | None = None,
        output_ratio: float | Sequence[float] | None = None,
        *,
        return_indices: bool = False,
        channels_first: bool = False,
        rng_collection: str = "fractional",
        rngs: RngsLike | None = None,
    ):
        configure(self, locals())
        self.rngs = _own_stream(rngs, rng_collection)

    def __call__(self, x: ArrayLike, *, rngs: RngsLike | None = None, **options: Any):
        """Pools ``x`` with regions drawn from ``rngs`` (an ``nnx.Rngs``, an
        ``nnx.RngStream`` or a key) or, when None, from the module's own stream."""
        source = self.rngs if rngs is None else rngs
        if source is None:
            raise ValueError(
                f"FractionalMaxPool draws its regions from the {self.rng_collection!r} rng "
                f"stream: pass rngs=nnx.Rngs({self.rng_collection}=0) at construction or to the "
                "call"
            )
        return rules.pool(self, x, key=_draw_key(source, self.rng_collection), **options)
