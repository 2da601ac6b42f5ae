"""Flax NNX modules for vision pooling: the twins of ``jaxpool/_vision_modules.py``.

Each has its linen twin's name, arguments, defaults and numbers (see the twin's
docstring for the shapes and the attributes); the flags are keyword-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from jax.typing import ArrayLike

from jaxpool import _module_rules as rules
from jaxpool import _pyramid as pyramid
from jaxpool._module_rules import Size
from jaxpool.nnx._common import PoolingModule, configure


class BlurPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.BlurPool`: kornia's anti-aliased ``BlurPool2D``,
    in 1, 2 or 3D.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> jpn.BlurPool(kernel_size=(3, 3))(jnp.ones((2, 32, 32, 16))).shape
      (2, 16, 16, 16)
    """

    op = rules.BLUR_POOL

    def __init__(self, kernel_size: Size, stride: int | Size = 2, *, channels_first: bool = False):
        configure(self, locals())


class MaxBlurPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.MaxBlurPool`: kornia's ``MaxBlurPool2D``, in 1, 2
    or 3D.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> jpn.MaxBlurPool((3,), max_pool_size=3)(jnp.ones((2, 40, 4))).shape   # 1D
      (2, 19, 4)
    """

    op = rules.MAX_BLUR_POOL

    def __init__(
        self, kernel_size: Size, stride: int | Size = 2, max_pool_size: int | Size = 2, *,
        channels_first: bool = False,
    ):
        configure(self, locals())


class RoIAlign(PoolingModule):
    """The NNX twin of :class:`jaxpool.RoIAlign`: torchvision's ``ops.RoIAlign``, called
    as ``module(x, boxes)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.RoIAlign((7, 7), spatial_scale=1 / 16, sampling_ratio=2, aligned=True)
      >>> boxes = jnp.array([[0.0, 16.0, 16.0, 200.0, 240.0]])   # [batch_index, x1, y1, x2, y2]
      >>> pool(jnp.ones((1, 32, 32, 8)), boxes).shape
      (1, 7, 7, 8)
    """

    op = rules.ROI_ALIGN

    def __init__(
        self, output_size: int | Size, spatial_scale: float, sampling_ratio: int, *,
        aligned: bool = False, max_sampling_ratio: int | Size | None = None,
        channels_first: bool = False,
    ):
        configure(self, locals())

    # Two inputs, as torchvision's forward(input, rois); the base's call takes one.
    def __call__(self, x: ArrayLike, boxes: Any) -> jax.Array:  # type: ignore[override]
        """The features of each box of ``boxes`` (torchvision's ``rois``) in ``x``."""
        return super().__call__(x, boxes=boxes)


class SpatialPyramidPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.SpatialPyramidPool`: a fixed-length vector from a
    map of any size.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> jpn.SpatialPyramidPool(levels=(1, 2), mode="avg")(jnp.ones((2, 13, 9, 8))).shape
      (2, 40)
    """

    op = staticmethod(pyramid.spatial_pyramid_pool)

    def __init__(
        self, levels: Sequence[int | Size] = (1, 2, 4), mode: str = "max", *,
        spatial_dims: int = 2, channels_first: bool = False,
    ):
        configure(self, locals())
