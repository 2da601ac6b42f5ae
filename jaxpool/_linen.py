"""Flax linen modules for the pooling ops: configuration fields, then the op.

The spatial rank comes from ``len(kernel_size)`` (or ``len(output_size)``), so sizes are
tuples: ``MaxPool((2, 2))`` pools 2D, ``MaxPool((3,))`` 1D. Every other argument keeps
torch's name and default. The configuration is checked at construction, with the op's
messages; the modules hold no logic of their own (see the functional ops for the math,
the shapes and the errors, and ``jaxpool/_module_rules.py`` for how to add a module).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
from jax.typing import ArrayLike

from jaxpool import _adaptive as adaptive
from jaxpool import _module_rules as rules
from jaxpool._module_rules import OptionalSize, PaddingLike, Size


class PoolingModule(nn.Module):
    """The base of jaxpool's linen modules: fields checked at construction, and ``op``.

    A subclass declares its fields (the op's argument names) and ``op``, the op per
    rank or one op; "How to add a module" in ``jaxpool/_module_rules.py`` says how.
    Construction checks the fields (:func:`jaxpool._module_rules.check_config`, the same
    rules as the op's and the NNX twin's) and stores the rank; ``__call__`` calls the op.
    """

    op: ClassVar[rules.Op]
    _rank: ClassVar[int]  # per instance, set at construction

    def __post_init__(self) -> None:
        # Before Flax's own __post_init__, so that a refused module never joins a parent;
        # beside the fields (Flax's own bookkeeping is set the same way).
        object.__setattr__(self, "_rank", rules.check_config(self))
        super().__post_init__()

    def __call__(self, x: ArrayLike, **options: Any) -> Any:
        """Pools ``x`` with the module's op; keyword arguments go to the op."""
        return rules.pool(self, x, **options)


class MaxPool(PoolingModule):
    """Max pooling, as ``torch.nn.MaxPool{1,2,3}d`` (see :func:`jaxpool.max_pool2d`).

    ``(*batch, *spatial, C) -> (*batch, *out, C)`` with torch's output size per
    spatial dim (:func:`jaxpool.pool_output_shape`); with ``return_indices`` also the
    flat indices, as torch's.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.MaxPool(kernel_size=(3, 3), stride=(2, 2), padding=1)
      >>> pool.apply({}, jnp.ones((8, 32, 32, 16))).shape
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

    kernel_size: Size
    stride: int | Size | None = None
    padding: PaddingLike = 0
    dilation: int | Size = 1
    ceil_mode: bool = False
    return_indices: bool = False
    channels_first: bool = False

    op = rules.MAX_POOL


class AvgPool(PoolingModule):
    """Average pooling, as ``torch.nn.AvgPool{1,2,3}d`` (see :func:`jaxpool.avg_pool2d`).

    ``(*batch, *spatial, C) -> (*batch, *out, C)`` with torch's output size and divisors.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.AvgPool(kernel_size=(2, 2))
      >>> pool.apply({}, jnp.arange(1.0, 17.0).reshape(4, 4, 1))[..., 0]
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
    """

    kernel_size: Size
    stride: int | Size | None = None
    padding: PaddingLike = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None
    channels_first: bool = False

    op = rules.AVG_POOL


class LPPool(PoolingModule):
    """Power-average pooling, as ``torch.nn.LPPool{1,2,3}d`` (see :func:`jaxpool.lp_pool2d`).

    ``(sum over the window of x ** p) ** (1 / p)``; ``(*batch, *spatial, C) ->
    (*batch, *out, C)``.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.LPPool(norm_type=2, kernel_size=(2, 2))
      >>> pool.apply({}, jnp.full((2, 2, 1), 3.0))[..., 0]
      Array([[6.]], dtype=float32)

    Attributes:
      norm_type: the power ``p`` > 0 (``inf`` gives max pooling of ``|x|``).
      kernel_size: window size per spatial dim; its length sets the rank.
      stride: window stride; default ``None`` means ``kernel_size``.
      ceil_mode: ceil instead of floor for the output size; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    norm_type: float
    kernel_size: Size
    stride: int | Size | None = None
    ceil_mode: bool = False
    channels_first: bool = False

    op = rules.LP_POOL


class AdaptiveAvgPool(PoolingModule):
    """Adaptive average pooling, as ``torch.nn.AdaptiveAvgPool{1,2,3}d``.

    ``(*batch, *spatial, C) -> (*batch, *output_size, C)`` with torch's windows.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.AdaptiveAvgPool(output_size=(7, 7))
      >>> pool.apply({}, jnp.ones((2, 56, 56, 8))).shape
      (2, 7, 7, 8)

    Attributes:
      output_size: output size per spatial dim (``None`` keeps a dim); its length sets
        the rank.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    output_size: OptionalSize
    channels_first: bool = False

    op = rules.ADAPTIVE_AVG_POOL


class AdaptiveMaxPool(PoolingModule):
    """Adaptive max pooling, as ``torch.nn.AdaptiveMaxPool{1,2,3}d``.

    ``(*batch, *spatial, C) -> (*batch, *output_size, C)`` with torch's windows and
    tie rule; with ``return_indices`` also the flat indices, as torch's.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.AdaptiveMaxPool(output_size=(3, 3), return_indices=True)
      >>> y, indices = pool.apply({}, jnp.ones((2, 10, 10, 8)))   # every window a tie
      >>> y.shape
      (2, 3, 3, 8)
      >>> indices[0, :, :, 0]              # each window's first element, as torch's
      Array([[ 0,  3,  6],
             [30, 33, 36],
             [60, 63, 66]], dtype=int32)

    Attributes:
      output_size, channels_first: as :class:`jaxpool.AdaptiveAvgPool`'s.
      return_indices: also return flat indices; default False.
    """

    output_size: OptionalSize
    return_indices: bool = False
    channels_first: bool = False

    op = rules.ADAPTIVE_MAX_POOL


class GlobalPoolBase(PoolingModule):
    """The fields of the parameter-free global heads, ``(*batch, *spatial, C) ->
    (*batch, C)`` (or keepdims' shape); subclasses name their op.

    Attributes:
      spatial_dims: number of spatial dims (1, 2 or 3); default 2.
      keepdims: keep the spatial dims with size 1; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    spatial_dims: int = 2
    keepdims: bool = False
    channels_first: bool = False


class GlobalAvgPool(GlobalPoolBase):
    """Mean over all spatial positions (a CNN head); see :func:`jaxpool.global_avg_pool`.

    ``(*batch, *spatial, C) -> (*batch, C)``.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.GlobalAvgPool().apply({}, jnp.ones((8, 7, 7, 512))).shape
      (8, 512)

    Attributes:
      spatial_dims: number of spatial dims (1, 2 or 3); default 2.
      keepdims: keep the spatial dims with size 1; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    op = staticmethod(adaptive.global_avg_pool)


class GlobalMaxPool(GlobalPoolBase):
    """Maximum over all spatial positions; see :func:`jaxpool.global_max_pool`.

    ``(*batch, *spatial, C) -> (*batch, C)``.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.GlobalMaxPool(keepdims=True).apply({}, jnp.ones((8, 7, 7, 512))).shape
      (8, 1, 1, 512)

    Attributes:
      spatial_dims, keepdims, channels_first: as :class:`jaxpool.GlobalAvgPool`'s.
    """

    op = staticmethod(adaptive.global_max_pool)


class FractionalMaxPool(PoolingModule):
    """Fractional max pooling, as ``torch.nn.FractionalMaxPool{2,3}d``.

    Every call draws fresh pooling regions from the ``rng_collection`` stream (pass
    ``rngs={'fractional': key}`` to ``apply``), as torch samples anew each forward.
    ``(*batch, *spatial, C) -> (*batch, *out, C)``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.FractionalMaxPool(kernel_size=(2, 2), output_ratio=(0.5, 0.5))
      >>> x = jnp.ones((2, 10, 10, 3))
      >>> pool.apply({}, x, rngs={"fractional": jax.random.key(0)}).shape
      (2, 5, 5, 3)

    Attributes:
      kernel_size: window size per spatial dim; its length (2 or 3) sets the rank.
      output_size: output size per spatial dim (exactly one of this and output_ratio).
      output_ratio: output size as a fraction in (0, 1) of the input size.
      return_indices: also return flat indices; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
      rng_collection: the rng stream the samples come from; default 'fractional'.
    """

    kernel_size: Size
    output_size: int | Size | None = None
    output_ratio: float | Sequence[float] | None = None
    return_indices: bool = False
    channels_first: bool = False
    rng_collection: str = "fractional"

    op = rules.FRACTIONAL_MAX_POOL

    @nn.compact
    def __call__(self, x: ArrayLike, **options: Any) -> Any:
        """Pools ``x`` with regions drawn from ``rng_collection``."""
        return rules.pool(self, x, key=self.make_rng(self.rng_collection), **options)
