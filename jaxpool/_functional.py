"""Sliding-window pooling with torch.nn.functional's names, arguments and numbers.

max / min / average / LP pooling in 1, 2 and 3 spatial dims, max unpooling and
fractional max pooling. Layout is channels-last ``(*batch, *spatial, C)`` by default
(Flax's); ``channels_first=True`` takes torch's ``(*batch, C, *spatial)``. The output
keeps the input's layout.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxpool import _geometry as geometry
from jaxpool import _jax_internals as internals
from jaxpool import _kernels as kernels
from jaxpool._checks import as_array
from jaxpool._docs import per_rank
from jaxpool._kernel_common import index_dtype

# The kernel family is a static argument: a trace is never reused across families.
_window_max = jax.jit(
    kernels.window_max, static_argnames=("axes", "windows", "return_index", "family")
)
_window_average = jax.jit(
    kernels.window_average, static_argnames=("axes", "windows", "divisor", "family")
)


@functools.partial(jax.jit, static_argnames=("axes", "windows", "return_index", "family"))
def _window_min(x, axes, windows, return_index, family):
    result = kernels.window_max(
        _order_reversed(x), axes, windows, return_index=return_index, family=family
    )
    if return_index:
        return _order_reversed(result[0]), result[1]
    return _order_reversed(result)


def _spatial_size(x: jax.Array, axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x.shape[a] for a in axes)


# ----------------------------------------------------------------------------------
# Generic implementations (n = number of spatial dims)


def _max_pool(
    op: str,
    n: int,
    x: ArrayLike,
    kernel_size,
    stride,
    padding,
    dilation,
    ceil_mode,
    return_indices,
    channels_first,
    *,
    negate: bool = False,
):
    array = as_array(x, "input", op)
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    return_indices = geometry.as_bool(return_indices, "return_indices", op)
    axes = geometry.spatial_axes(array.shape, n, channels_first, op)
    config = geometry.sliding_windows(
        op, _spatial_size(array, axes), kernel_size, stride, padding, dilation, ceil_mode
    )
    _check_index_volume(array, axes, op, return_indices)
    pool = _window_min if negate else _window_max
    return pool(array, axes=axes, windows=config.windows, return_index=return_indices,
                family=kernels.kernel_family())


def _order_reversed(x: jax.Array) -> jax.Array:
    """An order-reversing bijection: -x for floats, ~x for integers (no overflow)."""
    if jnp.issubdtype(x.dtype, jnp.integer):
        return jnp.invert(x)
    return -x


def _check_index_volume(array, axes, op, return_indices):
    if return_indices:
        geometry.index_dtype_bits(
            math.prod(array.shape[a] for a in axes), index_dtype() == np.int64, op
        )


class AverageWindows(NamedTuple):
    """A validated input and the windows of an average over torch's ``avg_pool`` windows."""

    array: jax.Array
    channels_first: bool
    axes: tuple[int, ...]
    config: geometry.WindowConfig
    divisor: str  # 'with_padding' (count_include_pad) or 'without_padding'


def average_windows(op, n, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                    channels_first) -> AverageWindows:
    """The checks every average over torch's average-pooling windows starts with (average,
    LP, hybrid and gated pooling): a floating input, the layout, the windows, and torch's
    refusal of 3D inputs smaller than the kernel."""
    array = as_array(x, "input", op, kind="float")
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    count_include_pad = geometry.as_bool(count_include_pad, "count_include_pad", op)
    axes = geometry.spatial_axes(array.shape, n, channels_first, op)
    size = _spatial_size(array, axes)
    geometry.check_average_input(op, size, kernel_size)
    config = geometry.sliding_windows(op, size, kernel_size, stride, padding, 1, ceil_mode)
    divisor = "with_padding" if count_include_pad else "without_padding"
    return AverageWindows(array, channels_first, axes, config, divisor)


def _avg_pool(
    op: str,
    n: int,
    x: ArrayLike,
    kernel_size,
    stride,
    padding,
    ceil_mode,
    count_include_pad,
    divisor_override,
    channels_first,
) -> jax.Array:
    windows = average_windows(op, n, x, kernel_size, stride, padding, ceil_mode,
                              count_include_pad, channels_first)
    override = geometry.check_divisor_override(op, divisor_override)
    divisor: str | int = windows.divisor if override is None else override
    return _window_average(windows.array, axes=windows.axes, windows=windows.config.windows,
                           divisor=divisor, family=kernels.kernel_family())


def _lp_pool(op, n, x, norm_type, kernel_size, stride, ceil_mode, channels_first) -> jax.Array:
    norm_type = geometry.check_norm_type(op, norm_type)
    # torch's lp_pool goes through avg_pool (no padding), so it refuses what avg_pool does.
    windows = average_windows(op, n, x, kernel_size, stride, 0, ceil_mode, True, channels_first)
    return _lp_impl(windows.array, norm_type=norm_type, axes=windows.axes,
                    windows=windows.config.windows, family=kernels.kernel_family())


@functools.partial(jax.jit, static_argnames=("norm_type", "axes", "windows", "family"))
def _lp_impl(x, norm_type, axes, windows, family):
    if math.isinf(norm_type):
        return kernels.window_max(jnp.abs(x), axes, windows, family=family)
    out = kernels.window_average(x**norm_type, axes, windows, "with_padding", family=family)
    # torch: (sign(S) * relu(|S|)) * prod(kernel), then ** (1/p), where S is the average
    # of x**p. torch's relu passes the gradient unless its input is <= 0, so a window
    # whose sum is zero gets zero gradient and a NaN window passes NaN on; jax.nn.relu
    # would block NaN, hence the explicit where.
    # torch.sign(NaN) is 0 (jnp.sign gives NaN), which decides NaN windows' gradients.
    magnitude = jnp.abs(out)
    rectified = jnp.where(magnitude <= 0, jnp.zeros_like(magnitude), magnitude)
    sign = jnp.where(out > 0, 1, jnp.where(out < 0, -1, 0)).astype(out.dtype)
    scaled = sign * rectified * math.prod(w.kernel for w in windows)
    return scaled ** (1.0 / norm_type)


# ----------------------------------------------------------------------------------
# Max unpooling


def _max_unpool(
    op: str,
    n: int,
    x: ArrayLike,
    indices: ArrayLike,
    kernel_size,
    stride,
    padding,
    output_size,
    channels_first,
) -> jax.Array:
    array = as_array(x, "input", op)
    index = as_array(indices, "indices", op, kind="int")
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    if index.shape != array.shape:
        raise ValueError(
            f"{op}: Expected shape of indices to be same as that of the input tensor "
            f"({tuple(array.shape)}) but got indices tensor with shape: {tuple(index.shape)}"
        )
    axes = geometry.spatial_axes(array.shape, n, channels_first, op)
    kernel = geometry.as_tuple(kernel_size, n, "kernel_size", op)
    no_stride = stride is None or (isinstance(stride, Sequence) and len(stride) == 0)
    strides = kernel if no_stride else geometry.as_tuple(stride, n, "stride", op)
    pads = geometry.as_tuple(padding, n, "padding", op)
    if any(k <= 0 for k in kernel):
        raise ValueError(
            f"{op}: kernel size should be greater than zero, but got kernel_size={kernel_size!r}"
        )
    if any(s <= 0 for s in strides):
        raise ValueError(f"{op}: stride should be greater than zero, but got stride={stride!r}")
    if any(p < 0 for p in pads):
        raise ValueError(f"{op}: pad must be non-negative, but got padding={padding!r}")
    in_size = _spatial_size(array, axes)
    default = tuple((in_size[i] - 1) * strides[i] + kernel[i] - 2 * pads[i] for i in range(n))
    if output_size is None:
        out_size = default
    else:
        requested = geometry.as_tuple(
            output_size if not isinstance(output_size, int) else (output_size,) * n,
            len(output_size) if isinstance(output_size, Sequence) else n,
            "output_size",
            op,
        )
        if len(requested) == array.ndim:
            requested = tuple(requested[a] for a in axes)
        if len(requested) != n:
            raise ValueError(
                f"{op}: output_size should be a sequence containing {n} elements (or the full "
                f"output shape of {array.ndim}), but it has a length of {len(requested)}: "
                f"output_size={output_size!r}"
            )
        for d in range(n):
            low, high = default[d] - strides[d], default[d] + strides[d]
            if not low < requested[d] < high:
                raise ValueError(
                    f'{op}: invalid output_size "{output_size}" (dim {d} must be between '
                    f"{low} and {high})"
                )
        out_size = requested
    if any(s <= 0 for s in out_size):
        raise ValueError(
            f"{op}: the output would have spatial size {out_size} (kernel_size={kernel_size!r}, "
            f"stride={stride!r}, padding={padding!r}); every entry must be positive"
        )
    volume = math.prod(out_size)
    if not internals.is_tracer(index):
        concrete = np.asarray(index)
        if concrete.size and (concrete.min() < 0 or concrete.max() >= volume):
            bad = concrete[(concrete < 0) | (concrete >= volume)].flat[0]
            raise ValueError(
                f"{op}: Found an invalid max index: {int(bad)} (output volumes are of size "
                f"{'x'.join(map(str, out_size))})"
            )
    return _unpool_impl(array, index, axes=axes, out_size=out_size)


@functools.partial(jax.jit, static_argnames=("axes", "out_size"))
def _unpool_impl(x, index, *, axes, out_size):
    rest = [a for a in range(x.ndim) if a not in axes]
    perm = tuple(rest + list(axes))
    lead_shape = tuple(x.shape[a] for a in rest)
    values = jnp.transpose(x, perm).reshape(*lead_shape, -1)
    positions = jnp.transpose(index, perm).reshape(*lead_shape, -1)
    flat = _scatter_last(values, positions, math.prod(out_size))
    out = flat.reshape(*lead_shape, *out_size)
    return jnp.transpose(out, tuple(int(a) for a in np.argsort(perm)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _scatter_last(values, positions, size):
    """Writes ``values`` at ``positions`` along the last axis of zeros (torch's unpool)."""
    lead = values.shape[:-1]
    out = jnp.zeros((*lead, size), values.dtype)
    grids = jnp.meshgrid(*(jnp.arange(s) for s in lead), indexing="ij") if lead else []
    index = (*(g[..., None] for g in grids), positions)
    return out.at[index].set(values, mode="drop")


def _scatter_last_fwd(values, positions, size):
    return _scatter_last(values, positions, size), positions


def _scatter_last_bwd(size, positions, cotangent):
    # torch: grad_input[i] = grad_output[indices[i]] (every duplicate receives it).
    safe = jnp.clip(positions, 0, size - 1)
    gathered = jnp.take_along_axis(cotangent, safe, axis=-1)
    valid = (positions >= 0) & (positions < size)
    return jnp.where(valid, gathered, 0), None


_scatter_last.defvjp(_scatter_last_fwd, _scatter_last_bwd)


# ----------------------------------------------------------------------------------
# Fractional max pooling


def _fractional_max_pool(
    op: str,
    n: int,
    x: ArrayLike,
    kernel_size,
    output_size,
    output_ratio,
    return_indices,
    key,
    random_samples,
    channels_first,
):
    array = as_array(x, "input", op)
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    return_indices = geometry.as_bool(return_indices, "return_indices", op)
    axes = geometry.spatial_axes(array.shape, n, channels_first, op)
    fractional = geometry.check_fractional(op, n, kernel_size, output_size, output_ratio)
    kernel = fractional.kernel
    size = _spatial_size(array, axes)
    out = fractional.output(size)
    if any(o < 1 for o in out):
        raise ValueError(
            f"{op}: output_size must be positive in every dimension, but got {out} "
            f"(output_size={output_size!r}, output_ratio={output_ratio!r}, input size {size})"
        )
    for i in range(n):
        if out[i] + kernel[i] - 1 > size[i]:
            raise ValueError(
                f"{op}: kernel_size {kernel[i]} too large relative to input size {size[i]} in "
                f"spatial dimension {i} (output_size + kernel_size - 1 must not exceed the input "
                f"size; output_size={out})"
            )
    channel_axis = axes[0] - 1 if channels_first else array.ndim - 1
    batch_shape = array.shape[: min(min(axes), channel_axis)]
    samples_shape = (*batch_shape, array.shape[channel_axis], n)
    if (key is None) == (random_samples is None):
        raise ValueError(
            f"{op}: pass exactly one of key (a jax.random key) or random_samples (an array of "
            f"shape {samples_shape}), but got key={key!r} and random_samples="
            f"{'an array' if random_samples is not None else None}"
        )
    if random_samples is not None:
        samples = as_array(random_samples, "random_samples", op, kind="float")
        if samples.shape != samples_shape:
            raise ValueError(
                f"{op}: random_samples must have shape (*batch, C, {n}) = {samples_shape}, but "
                f"got shape {tuple(samples.shape)}"
            )
    else:
        samples = jax.random.uniform(key, samples_shape, jnp.float32)
    result = _fractional_impl(
        array, samples.astype(jnp.float32), axes=axes, kernel=kernel, out=out,
        channels_first=channels_first,
    )
    return result if return_indices else result[0]


@functools.partial(jax.jit, static_argnames=("axes", "kernel", "out", "channels_first"))
def _fractional_impl(x, samples, *, axes, kernel, out, channels_first):
    starts = []
    n = len(axes)
    for i, axis in enumerate(axes):
        length = x.shape[axis]
        sequence = fractional_intervals(samples[..., i], length, out[i], kernel[i])  # (*b, C, O)
        # Place (..., C, O) into the input layout with every other spatial axis of size 1.
        if channels_first:
            shape = (*sequence.shape[:-1], *[out[i] if j == i else 1 for j in range(n)])
            start = sequence.reshape(shape)
        else:
            moved = jnp.moveaxis(sequence, -1, -2)  # (*b, O, C)
            spatial = [out[i] if j == i else 1 for j in range(n)]
            shape = (*moved.shape[:-2], *spatial, moved.shape[-1])
            start = moved.reshape(shape)
        starts.append(start)
    return kernels.gather_window_max(x, axes, starts, kernel)


def fractional_intervals(sample: jax.Array, length: int, out: int, kernel: int) -> jax.Array:
    """torch's window starts: ``floor((i+u)*a) - floor(u*a)``, ``a = (L-k)/(O-1)``, last ``L-k``.

    Computed in float32, as torch does for float32 inputs.
    """
    sample = sample.astype(jnp.float32)[..., None]
    if out == 1:
        return jnp.full((*sample.shape[:-1], 1), length - kernel, jnp.int32)
    alpha = np.float32(length - kernel) / np.float32(out - 1)
    index = np.arange(out - 1, dtype=np.float32).reshape((1,) * (sample.ndim - 1) + (out - 1,))
    head = (jnp.floor((index + sample) * alpha) - jnp.floor(sample * alpha)).astype(jnp.int32)
    tail = jnp.full((*sample.shape[:-1], 1), length - kernel, jnp.int32)
    return jnp.concatenate([head, tail], axis=-1)


# ----------------------------------------------------------------------------------
# Docstring templates

_MAX_DOC = """{n}D max pooling, as ``torch.nn.functional.max_pool{n}d``.

    Each output is the maximum of a window of ``kernel_size`` elements spaced
    ``dilation`` apart, windows ``stride`` apart, over the input padded by ``padding``
    (padding never wins). Ties go to the first maximum in row-major window order, a
    window with a NaN gives NaN, and the gradient flows to the chosen element only —
    torch's rules, also for dilated windows (which JAX cannot differentiate itself).

{layout}

{size}

    Args:
      x: input array, floating or integer dtype.
      kernel_size: window size, an int or a tuple of {n} ints.
      stride: window stride; defaults to ``kernel_size``.
      padding: implicit padding: an int or tuple of {n} ints (torch: at most half the
        effective kernel), or Flax's 'SAME', 'VALID' or {n} ``(lo, hi)`` pairs.
      dilation: spacing between window elements.
      ceil_mode: use ceil instead of floor for the output size.
      return_indices: also return the flat index of each maximum in the unpadded
        spatial volume (int32; int64 with ``jax_enable_x64``), as torch's indices.
      channels_first: whether ``x`` is channels-first.

    Returns:
      The pooled array, or ``(pooled, indices)`` when ``return_indices``.

    Raises:
      TypeError: for a non-array input, a bool/complex dtype, or non-int sizes.
      ValueError: for invalid sizes (the message says which argument and value).

    Example:
      {example}
    """

# Concrete examples per rank (doctested).
_MAX_EXAMPLES = {
    1: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.array([1.0, 3.0, 2.0, 5.0, 4.0])[:, None]   # (L, C)
      >>> jaxpool.max_pool1d(x, 2)[:, 0]
      Array([3., 5.], dtype=float32)
      >>> jaxpool.max_pool1d(x, 2, ceil_mode=True)[:, 0]
      Array([3., 5., 4.], dtype=float32)""",
    2: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(1.0, 17.0).reshape(4, 4, 1)   # (H, W, C)
      >>> jaxpool.max_pool2d(x, 2)[..., 0]
      Array([[ 6.,  8.],
             [14., 16.]], dtype=float32)
      >>> y, i = jaxpool.max_pool2d(x, 2, return_indices=True)
      >>> i[..., 0]
      Array([[ 5,  7],
             [13, 15]], dtype=int32)""",
    3: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2, 1)   # (N, D, H, W, C)
      >>> jaxpool.max_pool3d(x, 2).reshape(-1)
      Array([7.], dtype=float32)""",
}


_MIN_DOC = """{n}D min pooling (Flax's ``min_pool``), with max pooling's options and rules.

    The minimum of each window; ties go to the first minimum in row-major window order,
    NaN propagates, and the gradient flows to the chosen element only. Equals
    ``-max_pool{n}d(-x)`` for floats (integers use ``~x``, which cannot overflow).

{layout}

{size}

    Args:
      x: input array, floating or integer dtype.
      kernel_size: window size, an int or a tuple of {n} ints.
      stride: window stride; defaults to ``kernel_size``.
      padding: as :func:`jaxpool.max_pool{n}d`.
      dilation: spacing between window elements.
      ceil_mode: use ceil instead of floor for the output size.
      return_indices: also return the flat index of each minimum.
      channels_first: whether ``x`` is channels-first.

    Returns:
      The pooled array, or ``(pooled, indices)`` when ``return_indices``.

    Raises:
      TypeError, ValueError: as :func:`jaxpool.max_pool{n}d`.

    Example:
      {example}
    """

_MIN_EXAMPLES = {
    1: """>>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.min_pool1d(jnp.array([[4.0], [2.0], [3.0], [1.0]]), 2)[:, 0]
      Array([2., 1.], dtype=float32)""",
    2: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(1.0, 17.0).reshape(4, 4, 1)
      >>> jaxpool.min_pool2d(x, 2)[..., 0]
      Array([[ 1.,  3.],
             [ 9., 11.]], dtype=float32)""",
    3: """>>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.min_pool3d(jnp.arange(8.0).reshape(2, 2, 2, 1), 2).reshape(-1)
      Array([0.], dtype=float32)""",
}

_AVG_DOC = """{n}D average pooling, as ``torch.nn.functional.avg_pool{n}d``.

    Each output is the sum of its window divided by: ``divisor_override`` when given;
    else, with ``count_include_pad``, the window's length including padding (clipped at
    the end of the right padding, so a ceil-mode overhang does not count); else the
    number of real elements. Sums accumulate in float32 for bfloat16/float16 inputs.

{layout}

{size}

    Args:
      x: input array, floating dtype.
      kernel_size: window size, an int or a tuple of {n} ints.
      stride: window stride; defaults to ``kernel_size``.
      padding: implicit zero padding: an int or tuple of {n} ints (at most half the
        kernel), or Flax's 'SAME', 'VALID' or {n} ``(lo, hi)`` pairs.
      ceil_mode: use ceil instead of floor for the output size.
      count_include_pad: whether padding counts in the divisor.
      divisor_override: if given (a non-zero int), the divisor for every window.
      channels_first: whether ``x`` is channels-first.

    Returns:
      The pooled array, same dtype as ``x``.

    Raises:
      TypeError: for a non-floating input or non-int sizes.
      ValueError: for invalid sizes, or ``divisor_override=0``.

    Example:
      {example}
    """

_AVG_EXAMPLES = {
    1: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0])[:, None]
      >>> jaxpool.avg_pool1d(x, 2)[:, 0]
      Array([1.5, 3.5], dtype=float32)
      >>> jaxpool.avg_pool1d(x, 2, ceil_mode=True)[:, 0]
      Array([1.5, 3.5, 5. ], dtype=float32)""",
    2: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(1.0, 17.0).reshape(4, 4, 1)
      >>> jaxpool.avg_pool2d(x, 2)[..., 0]
      Array([[ 3.5,  5.5],
             [11.5, 13.5]], dtype=float32)
      >>> jaxpool.avg_pool2d(x, 3, 1, 1, count_include_pad=False)[0, 0, 0]
      Array(3.5, dtype=float32)""",
    3: """>>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.avg_pool3d(jnp.arange(8.0).reshape(2, 2, 2, 1), 2).reshape(-1)
      Array([3.5], dtype=float32)""",
}

_LP_DOC = """{n}D power-average pooling, as ``torch.nn.functional.lp_pool{n}d``.

    Computes torch's formula exactly::

        S = avg_pool{n}d(x ** p, kernel_size, stride, 0, ceil_mode) * prod(kernel_size)
        out = (sign(S) * relu(|S|)) ** (1 / p)

    so a ceil-mode partial window is scaled by the full kernel size (as torch), a
    window whose sum is zero gets zero gradient, and ``p = inf`` is max pooling of
    ``|x|``. There is no padding.

{layout}

    Args:
      x: input array, floating dtype.
      norm_type: the power ``p`` > 0 (``float('inf')`` allowed).
      kernel_size: window size, an int or a tuple of {n} ints.
      stride: window stride; defaults to ``kernel_size``.
      ceil_mode: use ceil instead of floor for the output size.
      channels_first: whether ``x`` is channels-first.

    Returns:
      The pooled array, same dtype as ``x``.

    Raises:
      TypeError: for a non-floating input or a non-number ``norm_type``.
      ValueError: for ``norm_type <= 0`` or NaN, or invalid sizes.

    Example:
      {example}
    """

_LP_EXAMPLES = {
    1: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.array([3.0, 4.0, 6.0, 8.0])[:, None]
      >>> jaxpool.lp_pool1d(x, 2, 2)[:, 0]
      Array([ 5., 10.], dtype=float32)""",
    2: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.full((2, 2, 1), 3.0)
      >>> jaxpool.lp_pool2d(x, 2, 2)[..., 0]
      Array([[6.]], dtype=float32)""",
    3: """>>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.lp_pool3d(jnp.ones((2, 2, 2, 1)), 1, 2).reshape(-1)
      Array([8.], dtype=float32)""",
}

_UNPOOL_DOC = """{n}D max unpooling, as ``torch.nn.functional.max_unpool{n}d``.

    The partial inverse of :func:`jaxpool.max_pool{n}d`: every value is written at its
    flat index in an output of zeros; all other positions are zero. The default
    output size per spatial dim is ``(L - 1)*stride - 2*padding + kernel_size``; an
    explicit ``output_size`` must lie strictly within ``stride`` of it. The gradient
    of each value is the output gradient at its index (torch's rule). If two values
    share an index, which one is written is unspecified (torch's CPU kernel writes the
    last); duplicates from overlapping max pooling carry equal values.

{layout}

    Args:
      x: pooled values.
      indices: integer array of the same shape, as returned by
        ``max_pool{n}d(..., return_indices=True)``.
      kernel_size: the pooling window size.
      stride: the pooling stride; defaults to ``kernel_size``.
      padding: the pooling padding (ints).
      output_size: the spatial output size ({n} ints, or the full output shape).
      channels_first: whether ``x`` is channels-first.

    Returns:
      The unpooled array: ``x``'s shape with the spatial dims set to the output size.

    Raises:
      TypeError: for a non-integer ``indices``.
      ValueError: for shape mismatches, invalid sizes, or (when ``indices`` is concrete)
        an index outside the output volume. Under ``jit`` out-of-range indices cannot be
        checked and are dropped.

    Example:
      {example}
    """

_UNPOOL_EXAMPLES = {
    1: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.array([1.0, 3.0, 2.0, 5.0])[:, None]
      >>> y, i = jaxpool.max_pool1d(x, 2, return_indices=True)
      >>> jaxpool.max_unpool1d(y, i, 2)[:, 0]
      Array([0., 3., 0., 5.], dtype=float32)""",
    2: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(1.0, 17.0).reshape(4, 4, 1)
      >>> y, i = jaxpool.max_pool2d(x, 2, return_indices=True)
      >>> jaxpool.max_unpool2d(y, i, 2)[..., 0]
      Array([[ 0.,  0.,  0.,  0.],
             [ 0.,  6.,  0.,  8.],
             [ 0.,  0.,  0.,  0.],
             [ 0., 14.,  0., 16.]], dtype=float32)""",
    3: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(8.0).reshape(2, 2, 2, 1)
      >>> y, i = jaxpool.max_pool3d(x, 2, return_indices=True)
      >>> jaxpool.max_unpool3d(y, i, 2).reshape(-1)
      Array([0., 0., 0., 0., 0., 0., 0., 7.], dtype=float32)""",
}

_FRACTIONAL_DOC = """{n}D fractional max pooling: ``torch.nn.functional.fractional_max_pool{n}d``.

    Graham's pseudo-random pooling regions: along each spatial dim, window ``i`` starts
    at ``floor((i + u)*a) - floor(u*a)`` with ``a = (L - k)/(O - 1)``, the last window at
    ``L - k``, and one uniform sample ``u`` per (batch, channel, dim) — torch's
    formula, computed in float32. The randomness is explicit: pass a PRNG ``key``, or
    the samples themselves as ``random_samples`` of shape ``(*batch, C, {n})`` in spatial
    order ({spatial}). (torch's ``_random_samples`` for 2D lists W before H.)

{layout}

    Args:
      x: input array.
      kernel_size: window size, an int or a tuple of {n} ints.
      output_size: output spatial size (exactly one of this and ``output_ratio``).
      output_ratio: output size as a fraction in (0, 1) of the input size.
      return_indices: also return flat indices (as torch).
      key: a ``jax.random`` key to draw the samples.
      random_samples: explicit samples in [0, 1), shape ``(*batch, C, {n})``.
      channels_first: whether ``x`` is channels-first.

    Returns:
      The pooled array, or ``(pooled, indices)`` when ``return_indices``.

    Raises:
      TypeError, ValueError: for invalid arguments, e.g. a kernel too large for the
        output size (``output_size + kernel_size - 1`` must not exceed the input).

    Example:
      {example}
    """

_FRACTIONAL_EXAMPLES = {
    2: """>>> import jax, jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(25.0).reshape(1, 5, 5, 1)
      >>> y = jaxpool.fractional_max_pool2d(x, 2, output_size=3, key=jax.random.key(0))
      >>> y.shape
      (1, 3, 3, 1)
      >>> float(y.max())
      24.0""",
    3: """>>> import jax, jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(125.0).reshape(1, 5, 5, 5, 1)
      >>> jaxpool.fractional_max_pool3d(x, 2, output_ratio=0.5, key=jax.random.key(0)).shape
      (1, 2, 2, 2, 1)""",
}


# ----------------------------------------------------------------------------------
# Public functions


@per_rank(_MAX_DOC, _MAX_EXAMPLES, 1)
def max_pool1d(x: ArrayLike, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, channels_first=False):
    return _max_pool("max_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, channels_first)


@per_rank(_MAX_DOC, _MAX_EXAMPLES, 2)
def max_pool2d(x: ArrayLike, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, channels_first=False):
    return _max_pool("max_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, channels_first)


@per_rank(_MAX_DOC, _MAX_EXAMPLES, 3)
def max_pool3d(x: ArrayLike, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, channels_first=False):
    return _max_pool("max_pool3d", 3, x, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, channels_first)


@per_rank(_MIN_DOC, _MIN_EXAMPLES, 1)
def min_pool1d(x: ArrayLike, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, channels_first=False):
    return _max_pool("min_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, channels_first, negate=True)


@per_rank(_MIN_DOC, _MIN_EXAMPLES, 2)
def min_pool2d(x: ArrayLike, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, channels_first=False):
    return _max_pool("min_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, channels_first, negate=True)


@per_rank(_MIN_DOC, _MIN_EXAMPLES, 3)
def min_pool3d(x: ArrayLike, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, channels_first=False):
    return _max_pool("min_pool3d", 3, x, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, channels_first, negate=True)


@per_rank(_AVG_DOC, _AVG_EXAMPLES, 1)
def avg_pool1d(x: ArrayLike, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, channels_first=False) -> jax.Array:
    return _avg_pool("avg_pool1d", 1, x, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, channels_first)


@per_rank(_AVG_DOC, _AVG_EXAMPLES, 2)
def avg_pool2d(x: ArrayLike, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, channels_first=False) -> jax.Array:
    return _avg_pool("avg_pool2d", 2, x, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, channels_first)


@per_rank(_AVG_DOC, _AVG_EXAMPLES, 3)
def avg_pool3d(x: ArrayLike, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, channels_first=False) -> jax.Array:
    return _avg_pool("avg_pool3d", 3, x, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, channels_first)


@per_rank(_LP_DOC, _LP_EXAMPLES, 1)
def lp_pool1d(x: ArrayLike, norm_type, kernel_size, stride=None, ceil_mode=False, *,
              channels_first=False) -> jax.Array:
    return _lp_pool("lp_pool1d", 1, x, norm_type, kernel_size, stride, ceil_mode, channels_first)


@per_rank(_LP_DOC, _LP_EXAMPLES, 2)
def lp_pool2d(x: ArrayLike, norm_type, kernel_size, stride=None, ceil_mode=False, *,
              channels_first=False) -> jax.Array:
    return _lp_pool("lp_pool2d", 2, x, norm_type, kernel_size, stride, ceil_mode, channels_first)


@per_rank(_LP_DOC, _LP_EXAMPLES, 3)
def lp_pool3d(x: ArrayLike, norm_type, kernel_size, stride=None, ceil_mode=False, *,
              channels_first=False) -> jax.Array:
    return _lp_pool("lp_pool3d", 3, x, norm_type, kernel_size, stride, ceil_mode, channels_first)


@per_rank(_UNPOOL_DOC, _UNPOOL_EXAMPLES, 1)
def max_unpool1d(x: ArrayLike, indices: ArrayLike, kernel_size, stride=None, padding=0,
                 output_size=None, *, channels_first=False) -> jax.Array:
    return _max_unpool("max_unpool1d", 1, x, indices, kernel_size, stride, padding, output_size,
                       channels_first)


@per_rank(_UNPOOL_DOC, _UNPOOL_EXAMPLES, 2)
def max_unpool2d(x: ArrayLike, indices: ArrayLike, kernel_size, stride=None, padding=0,
                 output_size=None, *, channels_first=False) -> jax.Array:
    return _max_unpool("max_unpool2d", 2, x, indices, kernel_size, stride, padding, output_size,
                       channels_first)


@per_rank(_UNPOOL_DOC, _UNPOOL_EXAMPLES, 3)
def max_unpool3d(x: ArrayLike, indices: ArrayLike, kernel_size, stride=None, padding=0,
                 output_size=None, *, channels_first=False) -> jax.Array:
    return _max_unpool("max_unpool3d", 3, x, indices, kernel_size, stride, padding, output_size,
                       channels_first)


@per_rank(_FRACTIONAL_DOC, _FRACTIONAL_EXAMPLES, 2)
def fractional_max_pool2d(x: ArrayLike, kernel_size, output_size=None, output_ratio=None,
                          return_indices=False, *, key=None, random_samples=None,
                          channels_first=False):
    return _fractional_max_pool("fractional_max_pool2d", 2, x, kernel_size, output_size,
                                output_ratio, return_indices, key, random_samples, channels_first)


@per_rank(_FRACTIONAL_DOC, _FRACTIONAL_EXAMPLES, 3)
def fractional_max_pool3d(x: ArrayLike, kernel_size, output_size=None, output_ratio=None,
                          return_indices=False, *, key=None, random_samples=None,
                          channels_first=False):
    return _fractional_max_pool("fractional_max_pool3d", 3, x, kernel_size, output_size,
                                output_ratio, return_indices, key, random_samples, channels_first)

