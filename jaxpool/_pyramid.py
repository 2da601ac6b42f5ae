"""Spatial pyramid pooling (He et al., 2014, "Spatial Pyramid Pooling in Deep
Convolutional Networks for Visual Recognition"): a fixed-length vector from a feature
map of any size.

Level ``l`` is adaptive pooling to an ``l x l`` grid (torch's adaptive windows, see
:mod:`jaxpool._adaptive`); the levels' grids, flattened, are concatenated. The length is
``C * sum(l**n)`` whatever the input's spatial size, so a classifier after it takes any
image size. (YOLO's "SPP" block is another construction: stride-1 max pools of several
sizes concatenated along the channels, the map's size kept; that is ``max_pool2d`` with
``stride=1`` and ``padding=k // 2``.)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxpool import _geometry as geometry
from jaxpool._adaptive import _adaptive_avg, _adaptive_max
from jaxpool._checks import as_array

_OP = "spatial_pyramid_pool"


def spatial_pyramid_pool(
    x: ArrayLike,
    levels=(1, 2, 4),
    mode="max",
    *,
    spatial_dims: int = 2,
    channels_first: bool = False,
) -> jax.Array:
    """Spatial pyramid pooling: adaptive pooling to each level's grid, flattened, joined.

    With ``channels_first=True`` this is exactly torch's

        ``torch.cat([F.adaptive_max_pool2d(x, l).flatten(1) for l in levels], 1)``

    (``adaptive_avg_pool2d`` for ``mode="avg"``; the 1D/3D ops for ``spatial_dims`` 1, 3):
    per level, channel-major, ``(c, i, j)`` at ``c*l*l + i*l + j``. Channels-last input
    gives the channels-last flattening instead, position-major: ``(i, j, c)`` at
    ``(i*l + j)*C + c`` (what a ``Dense`` layer after Flax's layout expects), the levels
    in the order given. Values, ties, NaN and gradients are torch's adaptive pooling's.

    Layout: ``x`` is ``(*batch, *spatial, C)`` or, with ``channels_first=True``,
    ``(*batch, C, *spatial)``; any number of batch dims, zero included.

    Args:
      x: input array; floating dtype (integers too with ``mode="max"``).
      levels: a non-empty sequence of output sizes, one per level: an int ``l`` (an
        ``l x l`` grid) or a tuple of ``spatial_dims`` ints.
      mode: ``"max"`` or ``"avg"``.
      spatial_dims: number of spatial dims (1, 2 or 3).
      channels_first: whether ``x`` is channels-first.

    Returns:
      ``(*batch, C * sum(prod(level)))``, same dtype as ``x``.

    Raises:
      TypeError: for a bad dtype, ``levels`` that is not a sequence of sizes, or a
        ``mode`` that is not a string.
      ValueError: for an unknown ``mode``, a non-positive level, a bad ``spatial_dims``
        or a wrong input rank.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)              # (N, H, W, C)
      >>> jaxpool.spatial_pyramid_pool(x, (1, 2))               # max of all, then of quarters
      Array([[15.,  5.,  7., 13., 15.]], dtype=float32)
      >>> jaxpool.spatial_pyramid_pool(jnp.ones((2, 37, 23, 8)), (1, 2, 4)).shape
      (2, 168)
    """
    n = geometry.check_spatial_dims(spatial_dims, _OP)
    mode = geometry.check_pyramid_mode(_OP, mode)
    array = as_array(x, "input", _OP, kind="float" if mode == "avg" else "any")
    channels_first = geometry.as_bool(channels_first, "channels_first", _OP)
    geometry.spatial_axes(array.shape, n, channels_first, _OP)
    sizes = geometry.check_levels(_OP, n, levels)
    batch = array.shape[: array.ndim - n - 1]
    channels = array.shape[array.ndim - n - 1 if channels_first else -1]
    pieces = []
    for size in sizes:
        if mode == "max":
            pooled = _adaptive_max(_OP, n, array, size, False, channels_first)
        else:
            pooled = _adaptive_avg(_OP, n, array, size, channels_first)
        pieces.append(jnp.reshape(pooled, (*batch, channels * math.prod(size))))
    return jnp.concatenate(pieces, axis=-1)
