"""Mixed and learnable pooling, functional: hybrid max/avg, gated, GeM, SoftPool, avg+max heads.

Every op pools windows laid out as torch's pooling lays them out (``kernel_size``,
``stride``, ``padding``, ``ceil_mode``; see :func:`jaxpool.pool_output_shape`), or, in
the global forms, one window covering the whole spatial map. For a window ``R`` of
the input ``x``:

* hybrid: ``alpha * max_R(x) + (1 - alpha) * mean_R(x)``, ``alpha`` a scalar, a
  per-channel vector or any array broadcastable to the output (the PyTorch module
  ``HybridPooling`` with ``alpha = sigmoid(weight)``);
* gated (Lee et al., 2016): the same mix with ``alpha = sigmoid(sum_{j in R} w_j x_j)``,
  one weight per window position (per channel, optionally);
* GeM (generalised mean; Radenović et al., 2018): ``mean_R(max(x, eps) ** p) ** (1/p)``:
  ``p = 1`` is average pooling, ``p -> inf`` tends to max pooling;
* SoftPool (Stergiou et al., 2021): ``sum_{i in R} softmax_R(x)_i * x_i`` with weights
  ``exp(x_i) / sum_{j in R} exp(x_j)``, computed stably (minus the window maximum);
* avg+max heads (timm's ``avgmax`` and ``catavgmax``): ``0.5 * (mean + max)`` and
  ``concat([mean, max])`` over the whole map.

Means follow average pooling's divisor rules (``count_include_pad``); maxima follow max
pooling's tie, NaN and gradient rules. Layout is channels-last ``(*batch, *spatial,
C)`` by default, ``(*batch, C, *spatial)`` with ``channels_first=True``; the output
keeps it. bfloat16 and float16 inputs are accumulated in float32 and the result is
cast back to the input's dtype.

Windowed ops support 1, 2 and 3 spatial dims: ``hybrid_pool{1,2,3}d`` carry the rank in
their name (as torch's ops); ``gem_pool``, ``soft_pool``, ``gated_pool`` and the global
ops take ``spatial_dims`` (default 2).

Example:
  >>> import jax.numpy as jnp, jaxpool
  >>> x = jnp.arange(1.0, 17.0).reshape(4, 4, 1)          # (H, W, C)
  >>> jaxpool.hybrid_pool2d(x, 0.5, 2)[..., 0]             # halfway between max and mean
  Array([[ 4.75,  6.75],
         [12.75, 14.75]], dtype=float32)
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxpool import _geometry as geometry
from jaxpool import _kernels as kernels
from jaxpool import _masked as masked
from jaxpool._checks import as_array
from jaxpool._docs import per_rank
from jaxpool._functional import _spatial_size, average_windows
from jaxpool._geometry import check_keepdims

_window_hybrid = jax.jit(
    kernels.window_hybrid, static_argnames=("axes", "windows", "divisor", "family")
)


# ----------------------------------------------------------------------------------
# Shared validation


def _channel_axis(ndim: int, n: int, channels_first: bool) -> int:
    return ndim - n - 1 if channels_first else ndim - 1


def _output_shape(shape: tuple[int, ...], axes: tuple[int, ...], sizes: tuple[int, ...]) -> tuple:
    out = list(shape)
    for axis, size in zip(axes, sizes, strict=True):
        out[axis] = size
    return tuple(out)


def _floating_argument(value: Any, name: str, op: str) -> jax.Array:
    """A floating array from an array or a real number; Python ints (e.g. alpha=1) are
    accepted as float32, strings refused."""
    if isinstance(value, (str, bytes)):
        raise TypeError(
            f"{op}: {name} must be an array or a real number, but got {value!r} of type "
            f"{type(value).__name__}"
        )
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        value = np.float32(value)
    return as_array(value, name, op, kind="float")


def _alpha_operand(alpha: jax.Array, out_shape: tuple, channel_axis: int, op: str) -> jax.Array:
    """Reshapes ``alpha`` to the output's rank so that it broadcasts without rank promotion.

    Accepted: a scalar; a vector of the channel count (per channel, in either layout —
    this reading wins when a 1-D alpha could also broadcast along the last spatial
    dim); any array that broadcasts to ``out_shape`` by NumPy's rules.
    """
    ndim = len(out_shape)
    channels = out_shape[channel_axis]
    if alpha.ndim == 0:
        return alpha.reshape((1,) * ndim)
    if alpha.ndim == 1 and alpha.shape[0] == channels:
        shape = [1] * ndim
        shape[channel_axis] = channels
        return alpha.reshape(shape)
    if alpha.ndim <= ndim:
        padded = (1,) * (ndim - alpha.ndim) + tuple(alpha.shape)
        if all(a in (1, o) for a, o in zip(padded, out_shape, strict=True)):
            return alpha.reshape(padded)
    raise ValueError(
        f"{op}: alpha must be a scalar, a per-channel vector of shape (C,) = ({channels},), or an "
        f"array broadcastable to the output shape {tuple(out_shape)}, but got alpha of shape "
        f"{tuple(alpha.shape)}"
    )


def _windows(op, n, array, kernel_size, stride, padding, ceil_mode, channels_first):
    """Spatial axes and window configuration: sliding windows, or one global window."""
    axes = geometry.spatial_axes(array.shape, n, channels_first, op)
    size = _spatial_size(array, axes)
    if kernel_size is None:
        geometry.check_global_form(op, stride, padding, ceil_mode)
        return axes, geometry.global_windows(size)
    return axes, geometry.sliding_windows(op, size, kernel_size, stride, padding, 1, ceil_mode)


def _squeeze_global(out: jax.Array, axes: tuple[int, ...], is_global: bool, keepdims: bool):
    return jnp.squeeze(out, axis=axes) if is_global and not keepdims else out


def _compute_dtype(dtype) -> Any:
    """float32 for narrow floats (and float32), float64 for float64."""
    return jnp.promote_types(dtype, jnp.float32)


# ----------------------------------------------------------------------------------
# Hybrid max/avg pooling


def _hybrid_pool(op, n, x, alpha, kernel_size, stride, padding, ceil_mode, count_include_pad,
                 channels_first) -> jax.Array:
    windows = average_windows(op, n, x, kernel_size, stride, padding, ceil_mode,
                              count_include_pad, channels_first)
    weight = _floating_argument(alpha, "alpha", op)
    array, axes = windows.array, windows.axes
    out_shape = _output_shape(array.shape, axes, windows.config.output_size)
    weight = _alpha_operand(
        weight, out_shape, _channel_axis(array.ndim, n, windows.channels_first), op
    )
    return _window_hybrid(array, weight, axes=axes, windows=windows.config.windows,
                          divisor=windows.divisor, family=kernels.kernel_family())


_HYBRID_DOC = """{n}D hybrid pooling: ``alpha * max_pool{n}d(x) + (1 - alpha) * avg_pool{n}d(x)``.

    One op for the mix of torch's max and average pooling over the same windows, as the
    PyTorch module ``HybridPooling`` computes it (there ``alpha = sigmoid(weight)``). Values
    and gradients (for ``x`` and ``alpha``) equal torch's for the formula
    ``a * F.max_pool{n}d(x, ...) + (1 - a) * F.avg_pool{n}d(x, ...)``: the maximum's
    gradient goes to the first maximum of each window, the mean's is spread over the
    window. bfloat16/float16 inputs are mixed in float32.

    Layout: ``x`` is ``(*batch, {spatial}, C)`` or, with ``channels_first=True``,
    ``(*batch, C, {spatial})``; the output keeps the layout. Output size per spatial
    dim: ``O = floor((L + 2p - k + (s-1 if ceil_mode else 0)) / s) + 1`` (see
    :func:`jaxpool.pool_output_shape`).

    Args:
      x: input array, floating dtype.
      alpha: the weight of the maximum: a scalar, a per-channel vector of shape
        ``(C,)`` (in either layout), or an array broadcastable to the output (e.g.
        ``(N, 1, ..., 1, C)`` for a per-example attention). Differentiable.
      kernel_size: window size, an int or a tuple of {n} ints.
      stride: window stride; defaults to ``kernel_size``.
      padding: implicit padding (an int or tuple of {n} ints, at most half the kernel;
        or Flax's 'SAME', 'VALID' or ``(lo, hi)`` pairs). The maximum ignores it; the
        mean counts it as zeros.
      ceil_mode: use ceil instead of floor for the output size.
      count_include_pad: whether padding counts in the mean's divisor.
      channels_first: whether ``x`` is channels-first.

    Returns:
      The pooled array, same dtype as ``x``.

    Raises:
      TypeError: for a non-floating ``x`` or ``alpha``, or non-int sizes.
      ValueError: for invalid sizes, or an ``alpha`` shape that is neither a scalar,
        ``(C,)``, nor broadcastable to the output.

    Example:
      {example}
    """

_HYBRID_EXAMPLES = {
    1: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.array([1.0, 3.0, 2.0, 6.0])[:, None]   # (L, C)
      >>> jaxpool.hybrid_pool1d(x, 0.25, 2)[:, 0]          # 0.25*max + 0.75*mean
      Array([2.25, 4.5 ], dtype=float32)""",
    2: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)   # (N, H, W, C)
      >>> jaxpool.hybrid_pool2d(x, 1.0, 2)[0, ..., 0]     # alpha = 1: max pooling
      Array([[ 6.,  8.],
             [14., 16.]], dtype=float32)
      >>> alpha = jnp.array([0.0, 1.0])                     # per channel: mean, max
      >>> y = jaxpool.hybrid_pool2d(jnp.concatenate([x, x], -1), alpha, 2)
      >>> y[0, 0, 0]
      Array([3.5, 6. ], dtype=float32)""",
    3: """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2, 1)
      >>> jaxpool.hybrid_pool3d(x, 0.5, 2).reshape(-1)     # 0.5*7 + 0.5*3.5
      Array([5.25], dtype=float32)""",
}


@per_rank(_HYBRID_DOC, _HYBRID_EXAMPLES, 1)
def hybrid_pool1d(x: ArrayLike, alpha: ArrayLike, kernel_size, stride=None, padding=0,
                  ceil_mode=False, count_include_pad=True, *, channels_first=False) -> jax.Array:
    return _hybrid_pool("hybrid_pool1d", 1, x, alpha, kernel_size, stride, padding, ceil_mode,
                        count_include_pad, channels_first)


@per_rank(_HYBRID_DOC, _HYBRID_EXAMPLES, 2)
def hybrid_pool2d(x: ArrayLike, alpha: ArrayLike, kernel_size, stride=None, padding=0,
                  ceil_mode=False, count_include_pad=True, *, channels_first=False) -> jax.Array:
    return _hybrid_pool("hybrid_pool2d", 2, x, alpha, kernel_size, stride, padding, ceil_mode,
                        count_include_pad, channels_first)


@per_rank(_HYBRID_DOC, _HYBRID_EXAMPLES, 3)
def hybrid_pool3d(x: ArrayLike, alpha: ArrayLike, kernel_size, stride=None, padding=0,
                  ceil_mode=False, count_include_pad=True, *, channels_first=False) -> jax.Array:
    return _hybrid_pool("hybrid_pool3d", 3, x, alpha, kernel_size, stride, padding, ceil_mode,
                        count_include_pad, channels_first)


class _GlobalHead(NamedTuple):
    """A global head's checked input and options (mask included)."""

    array: jax.Array
    axes: tuple[int, ...]
    channel_axis: int
    config: geometry.WindowConfig
    keepdims: bool
    kept: jax.Array | None  # the mask, as masked.check_mask returns it, or None


def _global_head(op, x, spatial_dims, keepdims, channels_first, mask) -> _GlobalHead:
    """The checks every global head starts with (a floating input)."""
    n = geometry.check_spatial_dims(spatial_dims, op)
    array = as_array(x, "input", op, kind="float")
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    keepdims = geometry.as_bool(keepdims, "keepdims", op)
    axes = geometry.spatial_axes(array.shape, n, channels_first, op)
    channel_axis = _channel_axis(array.ndim, n, channels_first)
    kept = masked.check_mask(mask, array.shape, axes, channel_axis, op)
    config = geometry.global_windows(_spatial_size(array, axes))
    return _GlobalHead(array, axes, channel_axis, config, keepdims, kept)


def _global_mix(head: _GlobalHead, weight: jax.Array) -> jax.Array:
    """``weight * max + (1 - weight) * mean`` over the whole map (or the kept elements)."""
    family = kernels.kernel_family()
    if head.kept is not None:
        out = masked.masked_hybrid(head.array, weight, head.kept, axes=head.axes, family=family)
    else:
        out = _window_hybrid(head.array, weight, axes=head.axes, windows=head.config.windows,
                             divisor="adaptive", family=family)
    return _squeeze_global(out, head.axes, True, head.keepdims)


def global_hybrid_pool(
    x: ArrayLike,
    alpha: ArrayLike,
    *,
    spatial_dims: int = 2,
    keepdims: bool = False,
    channels_first: bool = False,
    mask: ArrayLike | None = None,
) -> jax.Array:
    """Hybrid pooling over the whole map: ``alpha * global_max + (1 - alpha) * global_mean``.

    The global form of :func:`jaxpool.hybrid_pool2d` (one window covering every spatial
    position), as a CNN head or inside attention blocks. With ``mask``, the maximum and
    the mean are over the kept elements (see :func:`jaxpool.global_avg_pool`); a row
    with nothing kept gives 0 and a zero gradient.

    Args:
      x: input ``(*batch, *spatial, C)`` (or ``(*batch, C, *spatial)`` with
        ``channels_first``), floating dtype.
      alpha: a scalar, a per-channel vector ``(C,)``, or an array broadcastable to the
        output (``(*batch, C)``, or keepdims' shape); differentiable.
      spatial_dims: number of spatial dims (1, 2 or 3).
      keepdims: keep the spatial dims with size 1 (torch's ``adaptive_*_pool(x, 1)``
        shape) instead of dropping them.
      channels_first: whether ``x`` is channels-first.
      mask: optional boolean array, True where the element counts: the input's shape
        without the channel axis, or any shape that broadcasts to it.

    Returns:
      ``(*batch, C)``, or with ``keepdims`` the input's rank with spatial dims of size 1;
      same dtype as ``x``.

    Raises:
      TypeError: for a non-floating ``x`` or ``alpha``, or a non-boolean mask.
      ValueError: for a bad ``spatial_dims``, input rank, ``alpha`` or mask shape.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
      >>> jaxpool.global_hybrid_pool(x, 0.5)     # 0.5*16 + 0.5*8.5
      Array([[12.25]], dtype=float32)
    """
    op = "global_hybrid_pool"
    head = _global_head(op, x, spatial_dims, keepdims, channels_first, mask)
    weight = _floating_argument(alpha, "alpha", op)
    kept_shape = _output_shape(head.array.shape, head.axes, head.config.output_size)
    if head.keepdims:
        weight = _alpha_operand(weight, kept_shape, head.channel_axis, op)
    else:
        visible = tuple(s for a, s in enumerate(kept_shape) if a not in head.axes)
        weight = jnp.expand_dims(_alpha_operand(weight, visible, len(visible) - 1, op),
                                 head.axes)
    return _global_mix(head, weight)


# ----------------------------------------------------------------------------------
# Gated pooling


@functools.partial(
    jax.jit, static_argnames=("axes", "windows", "divisor", "channel_axis", "family")
)
def _gated_impl(x, gate_weight, axes, windows, divisor, channel_axis, family):
    compute = _compute_dtype(x.dtype)
    values = x.astype(compute)
    weights = gate_weight.astype(compute)
    terms = []
    # Padding reads zero: the gate is a zero-padded depthwise correlation of x with w.
    for tap, tap_values, _ in kernels.window_taps(values, axes, windows, 0):
        weight = weights[tap]
        if weight.ndim == 1:
            shape = [1] * x.ndim
            shape[channel_axis] = weight.shape[0]
            weight = weight.reshape(shape)
        terms.append(tap_values * weight)
    logits = functools.reduce(jnp.add, terms)
    return kernels.window_hybrid(x, jax.nn.sigmoid(logits), axes, windows, divisor, family=family)


def gated_pool(
    x: ArrayLike,
    gate_weight: ArrayLike,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    *,
    spatial_dims: int = 2,
    channels_first: bool = False,
) -> jax.Array:
    """Gated max-average pooling (Lee, Gallagher and Tu, 2016), with torch's windows.

    For each window ``R`` (the windows of ``avg_pool``/``max_pool`` with the same
    arguments)::

        mix = sigmoid(sum_{j in R} w_j * x_j)          # a region-dependent gate
        out = mix * max_R(x) + (1 - mix) * mean_R(x)

    with one weight per window position ``j`` (per layer), or per position and channel.
    Padding reads as zero in the gate (a zero-padded depthwise correlation), is ignored
    by the maximum and counted by the mean as ``count_include_pad`` says.

    Args:
      x: input ``(*batch, *spatial, C)`` (or ``(*batch, C, *spatial)``), floating.
      gate_weight: the gate's weights, shape ``kernel_size`` (shared by all channels)
        or ``kernel_size + (C,)`` (per channel); differentiable.
      kernel_size: window size, an int or a tuple of ``spatial_dims`` ints.
      stride: window stride; defaults to ``kernel_size``.
      padding: implicit padding, as :func:`jaxpool.avg_pool2d`.
      ceil_mode: use ceil instead of floor for the output size.
      count_include_pad: whether padding counts in the mean's divisor.
      spatial_dims: number of spatial dims (1, 2 or 3).
      channels_first: whether ``x`` is channels-first.

    Returns:
      The pooled array, same dtype as ``x`` (the gate is computed in float32 for
      narrower floats).

    Raises:
      TypeError: for non-floating ``x`` or ``gate_weight``, or non-int sizes.
      ValueError: for invalid sizes or a ``gate_weight`` shape other than
        ``kernel_size`` or ``kernel_size + (C,)``.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(1.0, 17.0).reshape(4, 4, 1)
      >>> w = jnp.zeros((2, 2))                  # gate sigmoid(0) = 0.5
      >>> jaxpool.gated_pool(x, w, 2)[..., 0]
      Array([[ 4.75,  6.75],
             [12.75, 14.75]], dtype=float32)
    """
    op = "gated_pool"
    n = geometry.check_spatial_dims(spatial_dims, op)
    windows = average_windows(op, n, x, kernel_size, stride, padding, ceil_mode,
                              count_include_pad, channels_first)
    array, axes, config = windows.array, windows.axes, windows.config
    weight = as_array(gate_weight, "gate_weight", op, kind="float")
    kernel = tuple(w.kernel for w in config.windows)
    channel_axis = _channel_axis(array.ndim, n, windows.channels_first)
    channels = array.shape[channel_axis]
    if tuple(weight.shape) not in (kernel, (*kernel, channels)):
        raise ValueError(
            f"{op}: gate_weight must have shape kernel_size = {kernel} (per layer) or "
            f"kernel_size + (C,) = {(*kernel, channels)} (per channel), but got gate_weight of "
            f"shape {tuple(weight.shape)}"
        )
    return _gated_impl(array, weight, axes=axes, windows=config.windows, divisor=windows.divisor,
                       channel_axis=channel_axis, family=kernels.kernel_family())


# ----------------------------------------------------------------------------------
# Generalised mean (GeM)


def _gem_clamped(x, p, eps):
    compute = _compute_dtype(x.dtype)
    values = x.astype(compute)
    # torch's clamp(min=eps): NaN stays NaN; the gradient passes where x >= eps.
    return jnp.where(values < eps, jnp.asarray(eps, compute), values), p.astype(compute)


@functools.partial(jax.jit, static_argnames=("axes", "windows", "divisor", "eps", "family"))
def _gem_impl(x, p, axes, windows, divisor, eps, family):
    clamped, power = _gem_clamped(x, p, eps)
    mean = kernels.window_average(clamped**power, axes, windows, divisor, family=family)
    return (mean ** (1 / power)).astype(x.dtype)


@functools.partial(jax.jit, static_argnames=("axes", "eps"))
def _gem_masked_impl(x, p, mask, axes, eps):
    clamped, power = _gem_clamped(x, p, eps)
    return masked.masked_power_mean(clamped, power, mask, axes).astype(x.dtype)


def gem_pool(
    x: ArrayLike,
    p: ArrayLike,
    kernel_size=None,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    *,
    eps: float = 1e-6,
    spatial_dims: int = 2,
    keepdims: bool = False,
    channels_first: bool = False,
    mask: ArrayLike | None = None,
) -> jax.Array:
    """Generalised-mean (GeM) pooling: ``avg_pool(max(x, eps) ** p) ** (1 / p)``.

    Radenović, Tolias and Chum (2018); timm's ``GeneralizedMeanPooling``. ``p = 1`` is
    average pooling (of ``max(x, eps)``), large ``p`` approaches max pooling. ``p`` is
    an array, so it can be learned (its gradient is ``d/dp``). The power and the mean
    are computed in float32 for narrower floats.

    With ``kernel_size=None`` (the default) it is global: one window covering the
    whole map, output ``(*batch, C)`` (or keepdims' shape). Otherwise the windows are
    :func:`jaxpool.avg_pool2d`'s (padding reads as zero after the clamp). The global
    form takes a ``mask``: the mean is over the kept elements (see
    :func:`jaxpool.global_avg_pool`), and a row with nothing kept gives 0 and a zero
    gradient.

    Args:
      x: input ``(*batch, *spatial, C)`` (or ``(*batch, C, *spatial)``), floating.
      p: the power, a scalar array (or shape ``(1,)``, as a torch parameter); must be
        positive (not checked: it may be traced).
      kernel_size: ``None`` for the global form, else the window size (an int or a
        tuple of ``spatial_dims`` ints).
      stride: window stride; defaults to ``kernel_size``.
      padding: implicit padding, as :func:`jaxpool.avg_pool2d`.
      ceil_mode: use ceil instead of floor for the output size.
      count_include_pad: whether padding counts in the divisor.
      eps: the clamp's lower bound (> 0), which keeps ``x ** p`` and its gradients
        finite.
      spatial_dims: number of spatial dims (1, 2 or 3).
      keepdims: global form only: keep the spatial dims with size 1.
      channels_first: whether ``x`` is channels-first.
      mask: global form only: an optional boolean array, True where the element
        counts: the input's shape without the channel axis, or any shape that
        broadcasts to it.

    Returns:
      The pooled array, same dtype as ``x``.

    Raises:
      TypeError: for non-floating ``x`` or ``p``, a non-number ``eps``, non-int sizes or
        a non-boolean mask.
      ValueError: for a non-scalar ``p``, ``eps <= 0``, invalid sizes, windowed options
        with the global form, a mask with the windowed form, or a bad mask shape.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.array([[1.0, 2.0], [2.0, 3.0]])[None, :, :, None]
      >>> jaxpool.gem_pool(x, jnp.array(1.0))           # the mean
      Array([[2.]], dtype=float32)
      >>> jaxpool.gem_pool(x, jnp.array(3.0), 2, keepdims=False).shape
      (1, 1, 1, 1)
    """
    op = "gem_pool"
    n = geometry.check_spatial_dims(spatial_dims, op)
    array = as_array(x, "input", op, kind="float")
    power = _scalar_parameter(p, "p", op)
    eps = geometry.check_positive_real(op, "eps", eps)
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    count_include_pad = geometry.as_bool(count_include_pad, "count_include_pad", op)
    keepdims = check_keepdims(keepdims, kernel_size, op)
    axes, config = _windows(op, n, array, kernel_size, stride, padding, ceil_mode, channels_first)
    is_global = kernel_size is None
    if mask is not None and not is_global:
        raise ValueError(
            f"{op}: mask only applies to the global form (kernel_size=None), but got "
            f"kernel_size={kernel_size!r}"
        )
    kept = masked.check_mask(
        mask, array.shape, axes, _channel_axis(array.ndim, n, channels_first), op
    )
    if kept is not None:
        out = _gem_masked_impl(array, power, kept, axes=axes, eps=eps)
        return _squeeze_global(out, axes, True, keepdims)
    if is_global:
        divisor = "adaptive"
    else:
        # A windowed GeM is an average pooling of x ** p: the same refusals.
        geometry.check_average_input(op, _spatial_size(array, axes), kernel_size)
        divisor = "with_padding" if count_include_pad else "without_padding"
    out = _gem_impl(array, power, axes=axes, windows=config.windows, divisor=divisor, eps=eps,
                    family=kernels.kernel_family())
    return _squeeze_global(out, axes, is_global, keepdims)


def _scalar_parameter(value: Any, name: str, op: str) -> jax.Array:
    array = _floating_argument(value, name, op)
    if array.size != 1 or array.ndim > 1:
        raise ValueError(
            f"{op}: {name} must be a scalar (shape () or (1,)), but got {name} of shape "
            f"{tuple(array.shape)}"
        )
    return array.reshape(())


# ----------------------------------------------------------------------------------
# SoftPool


@functools.partial(jax.jit, static_argnames=("axes", "windows", "is_global"))
def _soft_impl(x, axes, windows, is_global):
    compute = _compute_dtype(x.dtype)
    values = x.astype(compute)
    if is_global:
        # The softmax is unchanged by a shift; the plane's maximum keeps exp <= 1, and
        # the element that attains it contributes exp(0) = 1, so the sum is >= 1.
        shift = lax.stop_gradient(jnp.max(values, axis=axes, keepdims=True))
        weights = jnp.exp(values - shift)
        out = jnp.sum(weights * values, axis=axes, keepdims=True) / jnp.sum(
            weights, axis=axes, keepdims=True
        )
        return out.astype(x.dtype)
    taps = list(kernels.window_taps(values, axes, windows, 0))
    candidates = []
    for _, tap_values, real in taps:
        candidate = lax.stop_gradient(tap_values)
        if real is not None:
            candidate = jnp.where(real, candidate, -jnp.inf)
        candidates.append(candidate)
    shift = functools.reduce(jnp.maximum, candidates)
    tap_weights = []
    for _, tap_values, real in taps:
        weight = jnp.exp(tap_values - shift)
        if real is not None:
            weight = jnp.where(real, weight, 0)  # padding has no weight
        tap_weights.append(weight)
    weighted = [w * v for w, (_, v, _) in zip(tap_weights, taps, strict=True)]
    numerator = functools.reduce(jnp.add, weighted)
    denominator = functools.reduce(jnp.add, tap_weights)
    return (numerator / denominator).astype(x.dtype)


def soft_pool(
    x: ArrayLike,
    kernel_size=None,
    stride=None,
    padding=0,
    ceil_mode=False,
    *,
    spatial_dims: int = 2,
    keepdims: bool = False,
    channels_first: bool = False,
) -> jax.Array:
    """SoftPool (Stergiou, Poppe and Kalliatakis, 2021): a softmax-weighted window sum.

    For each window ``R`` and channel::

        out = sum_{i in R} w_i * x_i,   w_i = exp(x_i) / sum_{j in R} exp(x_j)

    Computed stably as the same ratio with ``exp(x_i - m)``, ``m`` the window's
    maximum (which cancels exactly; it carries no gradient), in float32 for narrower
    floats. Large activations dominate, as in max pooling, but every element gets a
    gradient. Padding elements have no weight (they are not in the window), as are the
    overhanging positions of ``ceil_mode``. (The authors' CPU reference sums ``exp``
    over channels too; this follows the paper's per-channel formula.)

    With ``kernel_size=None`` (the default) it is global: the softmax runs over the
    whole map, output ``(*batch, C)`` (or keepdims' shape).

    Args:
      x: input ``(*batch, *spatial, C)`` (or ``(*batch, C, *spatial)``), floating.
      kernel_size: ``None`` for the global form, else the window size.
      stride: window stride; defaults to ``kernel_size``.
      padding: implicit padding (ignored positions), as :func:`jaxpool.max_pool2d`.
      ceil_mode: use ceil instead of floor for the output size.
      spatial_dims: number of spatial dims (1, 2 or 3).
      keepdims: global form only: keep the spatial dims with size 1.
      channels_first: whether ``x`` is channels-first.

    Returns:
      The pooled array, same dtype as ``x``.

    Raises:
      TypeError: for a non-floating input or non-int sizes.
      ValueError: for invalid sizes, or windowed options with the global form.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.log(jnp.array([1.0, 3.0]))[:, None]     # (L, C); weights 1/4 and 3/4
      >>> y = jaxpool.soft_pool(x, 2, spatial_dims=1)      # 0.25 * 0 + 0.75 * log(3)
      >>> round(float(y[0, 0]), 4), round(0.75 * float(jnp.log(3.0)), 4)
      (0.824, 0.824)
      >>> jaxpool.soft_pool(jnp.ones((2, 8, 8, 3))).shape
      (2, 3)
    """
    op = "soft_pool"
    n = geometry.check_spatial_dims(spatial_dims, op)
    array = as_array(x, "input", op, kind="float")
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    keepdims = check_keepdims(keepdims, kernel_size, op)
    axes, config = _windows(op, n, array, kernel_size, stride, padding, ceil_mode, channels_first)
    is_global = kernel_size is None
    out = _soft_impl(array, axes=axes, windows=config.windows, is_global=is_global)
    return _squeeze_global(out, axes, is_global, keepdims)


# ----------------------------------------------------------------------------------
# Average + max heads


@functools.partial(jax.jit, static_argnames=("axes", "windows", "channel_axis", "family"))
def _cat_avg_max_impl(x, axes, windows, channel_axis, family):
    mean = kernels.window_average(x, axes, windows, "adaptive", family=family)
    maximum = kernels.window_max(x, axes, windows, family=family)
    return jnp.concatenate([mean, maximum], axis=channel_axis)




def global_avg_max_pool(
    x: ArrayLike,
    *,
    spatial_dims: int = 2,
    keepdims: bool = False,
    channels_first: bool = False,
    mask: ArrayLike | None = None,
) -> jax.Array:
    """timm's ``avgmax`` head: ``0.5 * (global_avg_pool(x) + global_max_pool(x))``.

    Computed as the hybrid mix with ``alpha = 0.5`` (``0.5*max + 0.5*mean`` equals
    ``0.5*(mean + max)`` exactly in floating point: halving is exact).

    Args:
      x: input ``(*batch, *spatial, C)`` (or ``(*batch, C, *spatial)``), floating.
      spatial_dims: number of spatial dims (1, 2 or 3).
      keepdims: keep the spatial dims with size 1 instead of dropping them.
      channels_first: whether ``x`` is channels-first.
      mask: optional boolean array, True where the element counts: the input's shape
        without the channel axis, or any shape that broadcasts to it. Both the mean and
        the maximum are over the kept elements; a row with nothing kept gives 0.

    Returns:
      ``(*batch, C)`` (or keepdims' shape), same dtype as ``x``.

    Raises:
      TypeError: for a non-floating input or a non-boolean mask.
      ValueError: for a bad ``spatial_dims``, input rank or mask shape.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
      >>> jaxpool.global_avg_max_pool(x)       # 0.5 * (8.5 + 16)
      Array([[12.25]], dtype=float32)
    """
    head = _global_head("global_avg_max_pool", x, spatial_dims, keepdims, channels_first, mask)
    return _global_mix(head, jnp.full((1,) * head.array.ndim, 0.5, jnp.float32))


def global_cat_avg_max_pool(
    x: ArrayLike,
    *,
    spatial_dims: int = 2,
    keepdims: bool = False,
    channels_first: bool = False,
    mask: ArrayLike | None = None,
) -> jax.Array:
    """timm's ``catavgmax`` head: the global mean and maximum, concatenated over channels.

    ``concat([global_avg_pool(x), global_max_pool(x)])`` along the channel axis: the
    first ``C`` channels are the means, the next ``C`` the maxima.

    Args:
      x: input ``(*batch, *spatial, C)`` (or ``(*batch, C, *spatial)``), floating.
      spatial_dims: number of spatial dims (1, 2 or 3).
      keepdims: keep the spatial dims with size 1 instead of dropping them.
      channels_first: whether ``x`` is channels-first.
      mask: optional boolean array, True where the element counts: the input's shape
        without the channel axis, or any shape that broadcasts to it. Both the mean and
        the maximum are over the kept elements; a row with nothing kept gives 0s.

    Returns:
      ``(*batch, 2C)``, or with ``keepdims`` the input's rank with spatial dims of size
      1 and ``2C`` channels; same dtype as ``x``.

    Raises:
      TypeError: for a non-floating input or a non-boolean mask.
      ValueError: for a bad ``spatial_dims``, input rank or mask shape.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
      >>> jaxpool.global_cat_avg_max_pool(x)
      Array([[ 8.5, 16. ]], dtype=float32)
    """
    head = _global_head("global_cat_avg_max_pool", x, spatial_dims, keepdims, channels_first,
                        mask)
    family = kernels.kernel_family()
    if head.kept is not None:
        out = masked.masked_mean_and_max(head.array, head.kept, axes=head.axes,
                                         channel_axis=head.channel_axis, family=family)
    else:
        out = _cat_avg_max_impl(head.array, axes=head.axes, windows=head.config.windows,
                                channel_axis=head.channel_axis, family=family)
    return _squeeze_global(out, head.axes, True, head.keepdims)

