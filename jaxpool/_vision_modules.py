"""Flax linen modules for vision pooling: blur pooling (kornia's), RoIAlign
(torchvision's) and spatial pyramid pooling.

Each is its configuration (the op's argument names, the torch library's defaults) and
the op: :func:`jaxpool.blur_pool2d`, :func:`jaxpool.max_blur_pool2d`,
:func:`jaxpool.roi_align`, :func:`jaxpool.spatial_pyramid_pool`, which hold the math,
the shapes and the errors. The configuration is checked at construction with the ops'
rules; the NNX twins are in ``jaxpool/nnx/_vision.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from jax.typing import ArrayLike

from jaxpool import _module_rules as rules
from jaxpool import _pyramid as pyramid
from jaxpool._linen import PoolingModule
from jaxpool._module_rules import Size


class BlurPool(PoolingModule):
    """Anti-aliased pooling (Zhang, 2019): a binomial blur, then every ``stride``-th
    sample; kornia's ``BlurPool2D`` (see :func:`jaxpool.blur_pool2d`), in 1, 2 or 3D.

    ``(*batch, *spatial, C) -> (*batch, *out, C)``, ``out = ceil(L / stride)`` per
    spatial dim (``(*batch, C, *spatial)`` with ``channels_first``).

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.BlurPool(kernel_size=(3, 3))
      >>> pool.apply({}, jnp.eye(5)[:, :, None])[..., 0]     # kornia's docstring example
      Array([[0.3125, 0.0625, 0.    ],
             [0.0625, 0.375 , 0.0625],
             [0.    , 0.0625, 0.3125]], dtype=float32)

    Attributes:
      kernel_size: the binomial kernel's size per spatial dim; its length sets the rank.
      stride: subsampling step, an int or one per dim; default 2 (kornia's).
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    kernel_size: Size
    stride: int | Size = 2
    channels_first: bool = False

    op = rules.BLUR_POOL


class MaxBlurPool(PoolingModule):
    """Max-blur pooling: torch's max pooling at stride 1 over ``max_pool_size``, then
    :class:`jaxpool.BlurPool`; kornia's ``MaxBlurPool2D`` (see :func:`jaxpool.max_blur_pool2d`).

    ``(*batch, *spatial, C) -> (*batch, *out, C)`` with ``out = ceil((L - max_pool_size
    + 1) / stride)``. kornia's ``ceil_mode`` is left out: it changes nothing at stride 1
    (kornia deprecates it).

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.MaxBlurPool((3, 3), channels_first=True)
      >>> pool.apply({}, jnp.eye(5)[None, None])[0, 0]       # (N, C, H, W), as kornia's
      Array([[0.5625, 0.3125],
             [0.3125, 0.875 ]], dtype=float32)

    Attributes:
      kernel_size, stride, channels_first: as :class:`jaxpool.BlurPool`'s.
      max_pool_size: the max pooling's window, an int or one per dim, at most the
        input's size; default 2.
    """

    kernel_size: Size
    stride: int | Size = 2
    max_pool_size: int | Size = 2
    channels_first: bool = False

    op = rules.MAX_BLUR_POOL


class RoIAlign(PoolingModule):
    """RoIAlign (Mask R-CNN): torchvision's ``ops.RoIAlign`` (see :func:`jaxpool.roi_align`).

    Called as ``module.apply({}, x, boxes)``: features ``(N, H, W, C)`` (or ``(N, C, H,
    W)`` with ``channels_first``) and boxes ``(K, 5)`` of ``[batch_index, x1, y1, x2,
    y2]`` or a list of per-image ``(K_i, 4)`` arrays -> ``(K, *output_size, C)`` (``(K,
    C, *output_size)``). Under ``jit`` with traced boxes, adaptive sampling
    (``sampling_ratio <= 0``) needs the static ``max_sampling_ratio``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.RoIAlign(output_size=2, spatial_scale=1.0, sampling_ratio=-1)
      >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)         # x[0, i, j, 0] = 4i + j
      >>> pool.apply({}, x, jnp.array([[0.0, 0.0, 0.0, 2.0, 2.0]]))[0, ..., 0]
      Array([[2.5, 3.5],
             [6.5, 7.5]], dtype=float32)
      >>> bounded = jaxpool.RoIAlign(7, 1 / 16, 0, max_sampling_ratio=2)
      >>> step = jax.jit(lambda boxes: bounded.apply({}, jnp.ones((2, 32, 32, 8)), boxes))
      >>> step(jnp.array([[0.0, 16.0, 16.0, 200.0, 240.0], [1.0, 0.0, 0.0, 64.0, 64.0]])).shape
      (2, 7, 7, 8)

    Attributes:
      output_size: bins per box, an int or ``(height, width)``.
      spatial_scale: box coordinates to the map's (e.g. 1/16 for a stride-16 map).
      sampling_ratio: samples per bin and axis; ``<= 0`` for the adaptive count.
      aligned: shift the boxes by -0.5 pixel (Detectron2's ``ROIAlignV2``); default False.
      max_sampling_ratio: static bound on the adaptive count (an int or ``(rows,
        columns)``), needed for traced boxes; default None.
      channels_first: input is ``(N, C, H, W)``; default False.
    """

    output_size: int | Size
    spatial_scale: float
    sampling_ratio: int
    aligned: bool = False
    max_sampling_ratio: int | Size | None = None
    channels_first: bool = False

    op = rules.ROI_ALIGN

    # Two inputs, as torchvision's forward(input, rois); the base's call takes one.
    def __call__(self, x: ArrayLike, boxes: Any) -> jax.Array:  # type: ignore[override]
        """The features of each box of ``boxes`` (torchvision's ``rois``) in ``x``."""
        return super().__call__(x, boxes=boxes)


class SpatialPyramidPool(PoolingModule):
    """Spatial pyramid pooling (He et al., 2014): adaptive pooling to each level's grid,
    flattened and concatenated (see :func:`jaxpool.spatial_pyramid_pool`).

    ``(*batch, *spatial, C) -> (*batch, C * sum(prod(level)))`` whatever the spatial
    size; channels-last input flattens position-major, channels-first as torch's
    ``flatten(1)``.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.SpatialPyramidPool(levels=(1, 2, 4))
      >>> pool.apply({}, jnp.ones((2, 37, 23, 8))).shape    # 8 * (1 + 4 + 16)
      (2, 168)

    Attributes:
      levels: the output size of each level, an int or one per spatial dim; default
        ``(1, 2, 4)``.
      mode: ``'max'`` or ``'avg'``; default ``'max'``.
      spatial_dims: number of spatial dims (1, 2 or 3); default 2.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    levels: Sequence[int | Size] = (1, 2, 4)
    mode: str = "max"
    spatial_dims: int = 2
    channels_first: bool = False

    op = staticmethod(pyramid.spatial_pyramid_pool)
