"""Adaptive and global pooling with torch's windows.

Adaptive window ``i`` along an axis of length ``L`` with ``O`` outputs is
``[floor(i*L/O), ceil((i+1)*L/O))``: at most two window lengths occur, windows may
overlap by one element, and ``O > L`` (upsampling) repeats elements.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxpool import _geometry as geometry
from jaxpool import _masked as masked
from jaxpool._checks import as_array
from jaxpool._docs import per_rank
from jaxpool._functional import (
    _check_index_volume,
    _spatial_size,
    _window_average,
    _window_max,
)
from jaxpool._kernels import kernel_family


def _adaptive_avg(op: str, n: int, x: ArrayLike, output_size, channels_first) -> jax.Array:
    array = as_array(x, "input", op, kind="float")
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    axes = geometry.spatial_axes(array.shape, n, channels_first, op)
    config = geometry.adaptive_windows(op, _spatial_size(array, axes), output_size)
    return _window_average(array, axes=axes, windows=config.windows, divisor="adaptive",
                           family=kernel_family())


def _adaptive_max(op: str, n: int, x: ArrayLike, output_size, return_indices, channels_first):
    array = as_array(x, "input", op)
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    return_indices = geometry.as_bool(return_indices, "return_indices", op)
    axes = geometry.spatial_axes(array.shape, n, channels_first, op)
    config = geometry.adaptive_windows(op, _spatial_size(array, axes), output_size)
    _check_index_volume(array, axes, op, return_indices)
    return _window_max(array, axes=axes, windows=config.windows, return_index=return_indices,
                       family=kernel_family())


def _global(op: str, x: ArrayLike, spatial_dims, keepdims, channels_first, mask, *, kind: str):
    n = geometry.check_spatial_dims(spatial_dims, op)
    array = as_array(x, "input", op, kind="float" if kind == "avg" else "any")
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    keepdims = geometry.as_bool(keepdims, "keepdims", op)
    axes = geometry.spatial_axes(array.shape, n, channels_first, op)
    channel_axis = array.ndim - n - 1 if channels_first else array.ndim - 1
    kept = masked.check_mask(mask, array.shape, axes, channel_axis, op)
    if kept is not None and kind == "max-index":
        raise ValueError(
            f"{op}: return_indices=True cannot be combined with a mask (a row with nothing "
            "kept has no index); pass one or the other"
        )
    config = geometry.global_windows(_spatial_size(array, axes))
    if kept is not None:
        out = (masked.masked_mean(array, kept, axes=axes) if kind == "avg"
               else masked.masked_max(array, kept, axes, kernel_family()))
        return out if keepdims else jnp.squeeze(out, axis=axes)
    if kind == "avg":
        out = _window_average(array, axes=axes, windows=config.windows, divisor="adaptive",
                              family=kernel_family())
        indices = None
    else:
        _check_index_volume(array, axes, op, kind == "max-index")
        result = _window_max(array, axes=axes, windows=config.windows,
                             return_index=kind == "max-index", family=kernel_family())
        out, indices = result if kind == "max-index" else (result, None)
    if not keepdims:
        out = jnp.squeeze(out, axis=axes)
        indices = None if indices is None else jnp.squeeze(indices, axis=axes)
    return out if indices is None else (out, indices)


_ADAPTIVE_AVG_DOC = """{n}D adaptive average pooling: ``torch.nn.functional.adaptive_avg_pool{n}d``.

    Output ``i`` along an axis of length ``L`` averages input ``[floor(i*L/O),
    ceil((i+1)*L/O))`` — torch's windows (two window lengths at most; equinox's and
    serket's adaptive pooling choose different windows). ``O > L`` upsamples.

{layout}

    Args:
      x: input array, floating dtype.
      output_size: an int or a tuple of {n} entries; ``None`` keeps that dim's size.
      channels_first: whether ``x`` is channels-first.

    Returns:
      The pooled array with spatial size ``output_size``, same dtype as ``x``.

    Raises:
      TypeError: for a non-floating input or non-int sizes.
      ValueError: for a non-positive ``output_size`` or a wrong input rank.

    Example:
      {example}
    """

_ADAPTIVE_MAX_DOC = """{n}D adaptive max pooling, as ``torch.nn.functional.adaptive_max_pool{n}d``.

    Output ``i`` along an axis of length ``L`` is the maximum of input
    ``[floor(i*L/O), ceil((i+1)*L/O))``. Ties, NaN and gradients follow torch (first
    maximum in row-major window order; NaN wins, its last occurrence is the index).

{layout}

    Args:
      x: input array, floating or integer dtype.
      output_size: an int or a tuple of {n} entries; ``None`` keeps that dim's size.
      return_indices: also return flat indices into the spatial volume (as torch).
      channels_first: whether ``x`` is channels-first.

    Returns:
      The pooled array, or ``(pooled, indices)`` when ``return_indices``.

    Raises:
      TypeError: for a bool/complex input or non-int sizes.
      ValueError: for a non-positive ``output_size`` or a wrong input rank.

    Example:
      {example}
    """

_AVG_EXAMPLES = {
    1: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0])[:, None]
      >>> jaxpool.adaptive_avg_pool1d(x, 2)[:, 0]   # windows [0, 3) and [2, 5)
      Array([2., 4.], dtype=float32)""",
    2: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
      >>> jaxpool.adaptive_avg_pool2d(x, (1, 2))[0, ..., 0]
      Array([[7.5, 9.5]], dtype=float32)""",
    3: """>>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.adaptive_avg_pool3d(jnp.ones((4, 4, 4, 2)), (2, None, 1)).shape
      (2, 4, 1, 2)""",
}

_MAX_EXAMPLES = {
    1: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.array([1.0, 5.0, 3.0, 4.0, 2.0])[:, None]
      >>> y, i = jaxpool.adaptive_max_pool1d(x, 2, return_indices=True)
      >>> y[:, 0], i[:, 0]
      (Array([5., 4.], dtype=float32), Array([1, 3], dtype=int32))""",
    2: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(1.0, 17.0).reshape(4, 4, 1)
      >>> jaxpool.adaptive_max_pool2d(x, 3)[..., 0]
      Array([[ 6.,  7.,  8.],
             [10., 11., 12.],
             [14., 15., 16.]], dtype=float32)""",
    3: """>>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.adaptive_max_pool3d(jnp.arange(8.0).reshape(2, 2, 2, 1), 1).reshape(-1)
      Array([7.], dtype=float32)""",
}


@per_rank(_ADAPTIVE_AVG_DOC, _AVG_EXAMPLES, 1)
def adaptive_avg_pool1d(x: ArrayLike, output_size, *, channels_first=False) -> jax.Array:
    return _adaptive_avg("adaptive_avg_pool1d", 1, x, output_size, channels_first)


@per_rank(_ADAPTIVE_AVG_DOC, _AVG_EXAMPLES, 2)
def adaptive_avg_pool2d(x: ArrayLike, output_size, *, channels_first=False) -> jax.Array:
    return _adaptive_avg("adaptive_avg_pool2d", 2, x, output_size, channels_first)


@per_rank(_ADAPTIVE_AVG_DOC, _AVG_EXAMPLES, 3)
def adaptive_avg_pool3d(x: ArrayLike, output_size, *, channels_first=False) -> jax.Array:
    return _adaptive_avg("adaptive_avg_pool3d", 3, x, output_size, channels_first)


@per_rank(_ADAPTIVE_MAX_DOC, _MAX_EXAMPLES, 1)
def adaptive_max_pool1d(x: ArrayLike, output_size, return_indices=False, *, channels_first=False):
    return _adaptive_max("adaptive_max_pool1d", 1, x, output_size, return_indices, channels_first)


@per_rank(_ADAPTIVE_MAX_DOC, _MAX_EXAMPLES, 2)
def adaptive_max_pool2d(x: ArrayLike, output_size, return_indices=False, *, channels_first=False):
    return _adaptive_max("adaptive_max_pool2d", 2, x, output_size, return_indices, channels_first)


@per_rank(_ADAPTIVE_MAX_DOC, _MAX_EXAMPLES, 3)
def adaptive_max_pool3d(x: ArrayLike, output_size, return_indices=False, *, channels_first=False):
    return _adaptive_max("adaptive_max_pool3d", 3, x, output_size, return_indices, channels_first)


def global_avg_pool(
    x: ArrayLike,
    *,
    spatial_dims: int = 2,
    keepdims: bool = False,
    channels_first: bool = False,
    mask: ArrayLike | None = None,
) -> jax.Array:
    """Mean over all spatial positions, as ``adaptive_avg_pool{n}d(x, 1)``; or over the
    positions a mask keeps.

    Layout: ``(*batch, *spatial, C)``, or ``(*batch, C, *spatial)`` with
    ``channels_first=True``; ``spatial_dims`` says how many spatial dims there are.
    Sums accumulate in float32 for bfloat16/float16 inputs.

    With ``mask``, each row is ``sum(x[kept]) / count(kept)``: the sentence-embedding
    idiom ``(x * m).sum(1) / m.sum(1)`` is ``global_avg_pool(tokens, spatial_dims=1,
    mask=m)`` for tokens ``(N, L, C)`` and ``m`` ``(N, L)``. Elements that are not kept
    take no part in the value or the gradient (even NaN or inf); a row with nothing kept
    gives 0 and a zero gradient (the idiom gives NaN there).

    Args:
      x: input array, floating dtype.
      spatial_dims: number of spatial dims (1, 2 or 3).
      keepdims: keep the spatial dims with size 1 (torch's shape) instead of dropping them.
      channels_first: whether ``x`` is channels-first.
      mask: optional boolean array, True where the element counts: the input's shape
        without the channel axis, ``(*batch, *spatial)``, or any shape that broadcasts
        to it (e.g. ``(*spatial)`` for one mask shared by the batch).

    Returns:
      ``(*batch, C)``, or with ``keepdims`` the input's rank with spatial dims of size 1.

    Raises:
      TypeError: for a non-floating input or a non-boolean mask.
      ValueError: for a bad ``spatial_dims``, input rank or mask shape.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.array([[1.0, 3, 2, 4], [5, 6, 8, 7], [4, 2, 1, 0], [9, 7, 3, 2]])
      >>> jaxpool.global_avg_pool(x[None, :, :, None])   # 64 / 16
      Array([[4.]], dtype=float32)
      >>> tokens = jnp.array([[[1.0], [3.0], [100.0]]])  # (N, L, C); the last is padding
      >>> jaxpool.global_avg_pool(tokens, spatial_dims=1, mask=jnp.array([[True, True, False]]))
      Array([[2.]], dtype=float32)
    """
    return _global("global_avg_pool", x, spatial_dims, keepdims, channels_first, mask,
                   kind="avg")


def global_max_pool(
    x: ArrayLike,
    *,
    spatial_dims: int = 2,
    keepdims: bool = False,
    channels_first: bool = False,
    return_indices: bool = False,
    mask: ArrayLike | None = None,
):
    """Maximum over all spatial positions, as ``adaptive_max_pool{n}d(x, 1)``; or over
    the positions a mask keeps.

    torch's tie, NaN and gradient rules (the first maximum in row-major order gets the
    whole gradient; NaN propagates). With ``mask``, the same rules among the kept
    elements (``x.masked_fill(~m, -inf).amax(...)``, with max pooling's gradient); the
    others take no part in the value or the gradient, and a row with nothing kept gives
    0 and a zero gradient (never ``-inf``).

    Args:
      x: input array, floating or integer dtype.
      spatial_dims: number of spatial dims (1, 2 or 3).
      keepdims: keep the spatial dims with size 1 instead of dropping them.
      channels_first: whether ``x`` is channels-first.
      return_indices: also return the flat spatial index of each maximum (not with
        ``mask``).
      mask: optional boolean array, True where the element counts: the input's shape
        without the channel axis, or any shape that broadcasts to it.

    Returns:
      ``(*batch, C)`` (or keepdims' shape); with ``return_indices`` a pair.

    Raises:
      TypeError: for a bool/complex input or a non-boolean mask.
      ValueError: for a bad ``spatial_dims``, input rank or mask shape, or a mask with
        ``return_indices=True``.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.array([[1.0, 3, 2, 4], [5, 6, 8, 7], [4, 2, 1, 0], [9, 7, 3, 2]])
      >>> jaxpool.global_max_pool(x[None, :, :, None])
      Array([[9.]], dtype=float32)
      >>> top_left = jnp.array([[True, True, False, False]] * 2 + [[False] * 4] * 2)
      >>> jaxpool.global_max_pool(x[None, :, :, None], mask=top_left)
      Array([[6.]], dtype=float32)
    """
    with_index = geometry.as_bool(return_indices, "return_indices", "global_max_pool")
    kind = "max-index" if with_index else "max"
    return _global("global_max_pool", x, spatial_dims, keepdims, channels_first, mask,
                   kind=kind)
