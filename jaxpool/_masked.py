"""Masked global reductions: the mean and the maximum over the elements a mask keeps.

The global ops (:func:`jaxpool.global_avg_pool`, :func:`jaxpool.global_max_pool`, the
hybrid, GeM and avg+max heads) take ``mask=``: a boolean array of the input's shape
without its channel axis (``(*batch, *spatial)``, or anything that broadcasts to it),
True where the element counts. For each row (a batch entry and channel):

* mean: ``sum(x[kept]) / count(kept)``, the sentence-embedding idiom
  ``(x * m).sum(1) / m.sum(1)`` (an element that is not kept takes no part, even if it
  is NaN or inf);
* maximum: the maximum of the kept elements, with torch's first-maximum gradient and
  NaN rule among them (the kernels' ``window_max`` over the input with the other
  elements set to the dtype's lowest value);
* a row with nothing kept gives 0, with a zero gradient (never NaN or inf).

Everything keeps the reduced spatial dims with size 1, as the window kernels do; the
ops squeeze them. This sits at the ops floor: it calls the kernel switch for the
maximum.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxpool import _geometry as geometry
from jaxpool import _kernels as kernels
from jaxpool._checks import as_array
from jaxpool._kernel_common import lowest


def check_mask(
    mask, shape: tuple[int, ...], axes: tuple[int, ...], channel_axis: int, op: str
) -> jax.Array | None:
    """The mask as a boolean array of the input's rank (size 1 on the channel axis).

    Args:
      mask: None, or an array-like of booleans that broadcasts (NumPy's rules) to
        ``shape`` without ``channel_axis``.
      shape: the input's shape.
      axes: the input's spatial axes (non-negative).
      channel_axis: the input's channel axis (non-negative).
      op: the op's name, for messages.

    Returns:
      None for ``mask=None``; else the mask with ``len(shape)`` dims: the input's
      spatial sizes, 1 on the channel axis, and the batch sizes or 1 where one mask is
      shared by the batch; ready for ``jnp.where`` and for counting.

    Raises:
      TypeError: if the mask is not a boolean array.
      ValueError: if its shape does not broadcast to the input's shape without channels.
    """
    if mask is None:
        return None
    array = as_array(mask, "mask", op, kind="bool")
    expected = tuple(size for axis, size in enumerate(shape) if axis != channel_axis)
    try:
        fits = np.broadcast_shapes(tuple(array.shape), expected) == expected
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{op}: mask must have the input's shape without the channel axis, {expected}, "
            f"or broadcast to it, but got mask of shape {tuple(array.shape)} for an input of "
            f"shape {tuple(shape)}"
        )
    padded = list((1,) * (len(expected) - array.ndim) + tuple(array.shape))
    padded.insert(channel_axis, 1)
    # The spatial dims are broadcast here, so that a sum over them counts the kept
    # elements; batch dims may stay 1 (one mask shared by the batch).
    target = [shape[axis] if axis in axes else size for axis, size in enumerate(padded)]
    return jnp.broadcast_to(array.reshape(padded), target)


def _kept_count(mask: jax.Array, axes: tuple[int, ...], dtype) -> jax.Array:
    """The number of kept elements per row, at least 1 (an empty row divides 0 by 1)."""
    count = jnp.sum(mask, axis=axes, keepdims=True, dtype=jnp.int32)
    return jnp.maximum(count, 1).astype(dtype)


def _any_kept(mask: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    return jnp.any(mask, axis=axes, keepdims=True)


def sum_and_count(x: jax.Array, mask: jax.Array, axes: tuple[int, ...]):
    """The kept elements' sum and their count (at least 1), in ``x``'s dtype."""
    total = jnp.sum(jnp.where(mask, x, jnp.zeros((), x.dtype)), axis=axes, keepdims=True)
    return total, _kept_count(mask, axes, x.dtype)


@functools.partial(jax.jit, static_argnames=("axes",))
def masked_mean(x: jax.Array, mask: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """The mean of the kept elements of each row (0 for a row with none), in ``x``'s
    dtype; summed in float32 for narrower floats."""
    compute = jnp.promote_types(x.dtype, jnp.float32)
    total, count = sum_and_count(x.astype(compute), mask, axes)
    return (total / count).astype(x.dtype)


def masked_maximum(
    x: jax.Array, mask: jax.Array, axes: tuple[int, ...], family: str
) -> jax.Array:
    """The maximum of the kept elements of each row (0 for a row with none).

    The other elements are set to the dtype's lowest value (``-inf``, or the integer
    minimum) and the kernels' global maximum does the rest, so ties, NaN and the
    gradient follow torch's max pooling among the kept elements; the ``where`` sends no
    gradient to the others. (A row whose kept elements all equal that lowest value
    returns it, and its gradient is dropped, as ``x.masked_fill(~m, -inf).amax()``
    drops the share of the filled elements.)
    """
    windows = geometry.global_windows(tuple(x.shape[a] for a in axes)).windows
    filled = jnp.where(mask, x, jnp.asarray(lowest(x.dtype), x.dtype))
    maximum = kernels.window_max(filled, axes, windows, family=family)
    return jnp.where(_any_kept(mask, axes), maximum, jnp.zeros((), x.dtype))


_masked_maximum = jax.jit(masked_maximum, static_argnames=("axes", "family"))


def masked_max(x: jax.Array, mask: jax.Array, axes: tuple[int, ...], family: str) -> jax.Array:
    """:func:`masked_maximum`, jitted with static ``axes`` and ``family``."""
    return _masked_maximum(x, mask, axes=axes, family=family)


@functools.partial(jax.jit, static_argnames=("axes", "family"))
def masked_hybrid(
    x: jax.Array, alpha: jax.Array, mask: jax.Array, axes: tuple[int, ...], family: str
) -> jax.Array:
    """``alpha * max + (1 - alpha) * mean`` over the kept elements, mixed in float32
    for narrower floats (as the unmasked hybrid); 0 for a row with nothing kept."""
    compute = jnp.promote_types(x.dtype, jnp.float32)
    maxima = masked_maximum(x, mask, axes, family).astype(compute)
    total, count = sum_and_count(x.astype(compute), mask, axes)
    alpha = alpha.astype(compute)
    return (alpha * maxima + (1 - alpha) * (total / count)).astype(x.dtype)


@functools.partial(jax.jit, static_argnames=("axes", "channel_axis", "family"))
def masked_mean_and_max(
    x: jax.Array, mask: jax.Array, axes: tuple[int, ...], channel_axis: int, family: str
) -> jax.Array:
    """``concat([mean, max])`` over the kept elements, along the channel axis."""
    compute = jnp.promote_types(x.dtype, jnp.float32)
    total, count = sum_and_count(x.astype(compute), mask, axes)
    mean = (total / count).astype(x.dtype)
    return jnp.concatenate([mean, masked_maximum(x, mask, axes, family)], axis=channel_axis)


def masked_power_mean(
    values: jax.Array, power: jax.Array, mask: jax.Array, axes: tuple[int, ...]
) -> jax.Array:
    """``mean(values ** power) ** (1 / power)`` over the kept elements (GeM after its
    clamp; ``values > 0``), in ``values``' dtype; 0 with a zero gradient for a row with
    nothing kept (the root of 0 has an infinite derivative, so it is never taken)."""
    # Elements that are not kept are replaced before the power: a NaN or inf there would
    # otherwise make the power's derivative NaN, which the mask's zero cannot undo.
    kept_values = jnp.where(mask, values, jnp.ones((), values.dtype))
    total, count = sum_and_count(kept_values**power, mask, axes)
    kept = _any_kept(mask, axes)
    mean = jnp.where(kept, total / count, jnp.ones((), values.dtype))
    return jnp.where(kept, mean ** (1 / power), jnp.zeros((), values.dtype))
