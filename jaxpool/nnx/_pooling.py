"""Flax NNX modules for the pooling ops: the twins of ``jaxpool/_linen.py``.

Same names, arguments, defaults and numbers as the linen modules; the configuration is
checked at construction (with the op's own messages), and ``__call__`` is one call to
the op. Sizes are tuples whose length sets the rank: ``MaxPool((2, 2))`` pools 2D.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import jax
from flax import nnx
from jax.typing import ArrayLike

from jaxpool import _adaptive as adaptive
from jaxpool import _geometry as geometry
from jaxpool import _module_rules as rules
from jaxpool.nnx import _common as common

Size = Sequence[int]
OptionalSize = Sequence[int | None]
PaddingLike = int | Sequence[int] | str | Sequence[tuple[int, int]]
RngsLike = nnx.Rngs | nnx.RngStream | jax.Array


class MaxPool(nnx.Module):
    """Max pooling, as ``torch.nn.MaxPool{1,2,3}d`` (see :func:`jaxpool.max_pool2d`).

    ``(*batch, *spatial, C) -> (*batch, *out, C)`` with torch's output size per
    spatial dim (:func:`jaxpool.pool_output_shape`); with ``return_indices`` also the
    flat indices, as torch's.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.MaxPool(kernel_size=(3, 3), stride=2, padding=1)
      >>> pool(jnp.ones((8, 32, 32, 16))).shape
      (8, 16, 16, 16)

    Attributes:
      kernel_size: window size per spatial dim; its length (1, 2 or 3) sets the rank.
      stride: window stride; default ``None`` means ``kernel_size``.
      padding: int, per-dim ints, 'SAME', 'VALID' or ``(lo, hi)`` pairs; default 0.
      dilation: spacing between window elements; default 1.
      ceil_mode: ceil instead of floor for the output size; default False.
      return_indices: also return torch-style flat indices; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False (channels-last).

    Raises:
      TypeError, ValueError: at construction, for a configuration the op refuses.
    """

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
        self.kernel_size = common.freeze(kernel_size)
        self.stride = common.freeze(stride)
        self.padding = common.freeze(padding)
        self.dilation = common.freeze(dilation)
        self.ceil_mode = ceil_mode
        self.return_indices = return_indices
        self.channels_first = channels_first
        n = rules.spatial_rank(self, "kernel_size", self.kernel_size)
        common.check_config(
            self, common.window_placeholder(n, kernel_size, stride, padding, dilation), None
        )

    def __call__(self, x: ArrayLike):
        """Pools ``x``: ``(*batch, *spatial, C)`` -> ``(*batch, *out_spatial, C)``."""
        return rules.MAX_POOL[len(self.kernel_size)](
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
            self.return_indices, channels_first=self.channels_first,
        )


class AvgPool(nnx.Module):
    """Average pooling, as ``torch.nn.AvgPool{1,2,3}d`` (see :func:`jaxpool.avg_pool2d`).

    ``(*batch, *spatial, C) -> (*batch, *out, C)`` with torch's output size and divisors.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.AvgPool(kernel_size=(2, 2))
      >>> pool(jnp.arange(1.0, 17.0).reshape(4, 4, 1))[..., 0]
      Array([[ 3.5,  5.5],
             [11.5, 13.5]], dtype=float32)

    Attributes:
      kernel_size: window size per spatial dim; its length sets the rank.
      stride: window stride; default ``None`` means ``kernel_size``.
      padding: int, per-dim ints, 'SAME', 'VALID' or ``(lo, hi)`` pairs; default 0.
      ceil_mode: ceil instead of floor for the output size; default False.
      count_include_pad: padding counts in the divisor; default True.
      divisor_override: if set, the divisor of every window; default None.
      channels_first: input is ``(*batch, C, *spatial)``; default False.

    Raises:
      TypeError, ValueError: at construction, for a configuration the op refuses.
    """

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
        self.kernel_size = common.freeze(kernel_size)
        self.stride = common.freeze(stride)
        self.padding = common.freeze(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override
        self.channels_first = channels_first
        n = rules.spatial_rank(self, "kernel_size", self.kernel_size)
        common.check_config(self, common.window_placeholder(n, kernel_size, stride, padding), None)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``: ``(*batch, *spatial, C)`` -> ``(*batch, *out_spatial, C)``."""
        return rules.AVG_POOL[len(self.kernel_size)](
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override, channels_first=self.channels_first,
        )


class LPPool(nnx.Module):
    """Power-average pooling, as ``torch.nn.LPPool{1,2,3}d`` (see :func:`jaxpool.lp_pool2d`).

    ``(sum over the window of x ** p) ** (1 / p)``; ``(*batch, *spatial, C) ->
    (*batch, *out, C)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.LPPool(norm_type=2, kernel_size=(2, 2))
      >>> pool(jnp.full((2, 2, 1), 3.0))[..., 0]
      Array([[6.]], dtype=float32)

    Attributes:
      norm_type: the power ``p`` > 0 (``inf`` gives max pooling of ``|x|``).
      kernel_size: window size per spatial dim; its length sets the rank.
      stride: window stride; default ``None`` means ``kernel_size``.
      ceil_mode: ceil instead of floor for the output size; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.

    Raises:
      TypeError, ValueError: at construction, for a configuration the op refuses.
    """

    def __init__(
        self,
        norm_type: float,
        kernel_size: Size,
        stride: int | Size | None = None,
        *,
        ceil_mode: bool = False,
        channels_first: bool = False,
    ):
        self.norm_type = norm_type
        self.kernel_size = common.freeze(kernel_size)
        self.stride = common.freeze(stride)
        self.ceil_mode = ceil_mode
        self.channels_first = channels_first
        n = rules.spatial_rank(self, "kernel_size", self.kernel_size)
        common.check_config(self, common.window_placeholder(n, kernel_size, stride, 0), None)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``: ``(*batch, *spatial, C)`` -> ``(*batch, *out_spatial, C)``."""
        return rules.LP_POOL[len(self.kernel_size)](
            x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode,
            channels_first=self.channels_first,
        )


class AdaptiveAvgPool(nnx.Module):
    """Adaptive average pooling, as ``torch.nn.AdaptiveAvgPool{1,2,3}d``.

    ``(*batch, *spatial, C) -> (*batch, *output_size, C)`` with torch's windows.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.AdaptiveAvgPool(output_size=(7, 7))
      >>> pool(jnp.ones((2, 56, 56, 8))).shape
      (2, 7, 7, 8)

    Attributes:
      output_size: output size per spatial dim (``None`` keeps a dim); its length sets
        the rank.
      channels_first: input is ``(*batch, C, *spatial)``; default False.

    Raises:
      TypeError, ValueError: at construction, for a configuration the op refuses.
    """

    def __init__(self, output_size: OptionalSize, *, channels_first: bool = False):
        self.output_size = common.freeze(output_size)
        self.channels_first = channels_first
        n = rules.spatial_rank(self, "output_size", self.output_size)
        common.check_config(self, (common.largest_int(output_size),) * n, None)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``: ``(*batch, *spatial, C)`` -> ``(*batch, *output_size, C)``."""
        return rules.ADAPTIVE_AVG_POOL[len(self.output_size)](
            x, self.output_size, channels_first=self.channels_first
        )


class AdaptiveMaxPool(nnx.Module):
    """Adaptive max pooling, as ``torch.nn.AdaptiveMaxPool{1,2,3}d``.

    ``(*batch, *spatial, C) -> (*batch, *output_size, C)`` with torch's windows and
    tie rule.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.AdaptiveMaxPool(output_size=(5, 5))
      >>> pool(jnp.ones((2, 10, 10, 8))).shape
      (2, 5, 5, 8)

    Attributes:
      output_size: output size per spatial dim (``None`` keeps a dim); its length sets
        the rank.
      return_indices: also return flat indices; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.

    Raises:
      TypeError, ValueError: at construction, for a configuration the op refuses.
    """

    def __init__(
        self,
        output_size: OptionalSize,
        *,
        return_indices: bool = False,
        channels_first: bool = False,
    ):
        self.output_size = common.freeze(output_size)
        self.return_indices = return_indices
        self.channels_first = channels_first
        n = rules.spatial_rank(self, "output_size", self.output_size)
        common.check_config(self, (common.largest_int(output_size),) * n, None)

    def __call__(self, x: ArrayLike):
        """Pools ``x``: ``(*batch, *spatial, C)`` -> ``(*batch, *output_size, C)``."""
        return rules.ADAPTIVE_MAX_POOL[len(self.output_size)](
            x, self.output_size, self.return_indices, channels_first=self.channels_first
        )


class GlobalPoolBase(nnx.Module):
    """Shared arguments of the parameter-free global heads; subclasses name their op.

    Attributes:
      spatial_dims: number of spatial dims (1, 2 or 3); default 2.
      keepdims: keep the spatial dims with size 1; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    pool_function: ClassVar[Callable[..., jax.Array]]

    def __init__(self, *, spatial_dims: int = 2, keepdims: bool = False,
                 channels_first: bool = False):
        self.spatial_dims = spatial_dims
        self.keepdims = keepdims
        self.channels_first = channels_first
        n = geometry.check_spatial_dims(spatial_dims, type(self).__name__)
        common.check_config(self, (1,) * n, None)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """``(*batch, *spatial, C)`` -> ``(*batch, C)`` (or keepdims' shape)."""
        return type(self).pool_function(
            x, spatial_dims=self.spatial_dims, keepdims=self.keepdims,
            channels_first=self.channels_first,
        )


class GlobalAvgPool(GlobalPoolBase):
    """Mean over all spatial positions (a CNN head); see :func:`jaxpool.global_avg_pool`.

    ``(*batch, *spatial, C) -> (*batch, C)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> jpn.GlobalAvgPool()(jnp.ones((8, 7, 7, 512))).shape
      (8, 512)

    Attributes:
      spatial_dims: number of spatial dims (1, 2 or 3); default 2.
      keepdims: keep the spatial dims with size 1; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    pool_function = staticmethod(adaptive.global_avg_pool)


class GlobalMaxPool(GlobalPoolBase):
    """Maximum over all spatial positions; see :func:`jaxpool.global_max_pool`.

    ``(*batch, *spatial, C) -> (*batch, C)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> jpn.GlobalMaxPool(keepdims=True)(jnp.ones((8, 7, 7, 512))).shape
      (8, 1, 1, 512)

    Attributes:
      spatial_dims: number of spatial dims (1, 2 or 3); default 2.
      keepdims: keep the spatial dims with size 1; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    pool_function = staticmethod(adaptive.global_max_pool)


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


class FractionalMaxPool(nnx.Module):
    """Fractional max pooling, as ``torch.nn.FractionalMaxPool{2,3}d``.

    Every call draws fresh pooling regions, as torch samples anew each forward, from
    the ``rng_collection`` stream (``'fractional'``): of the ``rngs`` given to the call
    if any, else of the module's own stream, seeded at construction from ``rngs`` (as
    ``nnx.Dropout`` does with ``'dropout'``). ``(*batch, *spatial, C) -> (*batch, *out,
    C)``.

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
      kernel_size: window size per spatial dim; its length (2 or 3) sets the rank.
      output_size: output size per spatial dim (exactly one of this and output_ratio).
      output_ratio: output size as a fraction in (0, 1) of the input size.
      return_indices: also return flat indices; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
      rng_collection: the rng stream the samples come from; default 'fractional'.
      rngs: the module's own stream (an ``nnx.Rngs`` seeded from the ``rngs`` argument:
        an ``nnx.Rngs``, an ``nnx.RngStream`` or a key), or None: then every call
        needs ``rngs``.

    Raises:
      TypeError, ValueError: at construction, for a configuration the op refuses.
    """

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
        self.kernel_size = common.freeze(kernel_size)
        self.output_size = common.freeze(output_size)
        self.output_ratio = common.freeze(output_ratio)
        self.return_indices = return_indices
        self.channels_first = channels_first
        if not isinstance(rng_collection, str):
            raise TypeError(
                f"FractionalMaxPool: rng_collection must be a str, but got {rng_collection!r}"
            )
        self.rng_collection = rng_collection
        n = rules.spatial_rank(self, "kernel_size", self.kernel_size, ranks=(2, 3))
        size = common.fractional_placeholder(n, kernel_size, output_size, output_ratio)
        common.check_config(
            self, size, None, call=lambda x: self._pool(x, jax.random.key(0))
        )
        self.rngs = _own_stream(rngs, rng_collection)

    def _pool(self, x: ArrayLike, key: jax.Array):
        return rules.FRACTIONAL_MAX_POOL[len(self.kernel_size)](
            x, self.kernel_size, self.output_size, self.output_ratio, self.return_indices,
            key=key, channels_first=self.channels_first,
        )

    def __call__(self, x: ArrayLike, *, rngs: RngsLike | None = None):
        """Pools ``x`` with regions drawn from ``rngs`` (an ``nnx.Rngs``, an
        ``nnx.RngStream`` or a key) or, when None, from the module's own stream."""
        source = self.rngs if rngs is None else rngs
        if source is None:
            raise ValueError(
                f"FractionalMaxPool draws its regions from the {self.rng_collection!r} rng "
                f"stream: pass rngs=nnx.Rngs({self.rng_collection}=0) at construction or to the "
                "call"
            )
        return self._pool(x, _draw_key(source, self.rng_collection))
