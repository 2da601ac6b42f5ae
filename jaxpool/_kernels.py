"""How windows are reduced: the array code under every pooling op.

Each op describes its windows with :class:`~jaxpool._geometry.AxisWindows` (one per
spatial axis, static Python data) and calls one of three reductions here:

* :func:`window_max`: maximum over each window, with torch's gradient (everything to
  the first maximum in row-major window order; a NaN window sends it to its last NaN)
  and, on request, torch's flat indices;
* :func:`window_sum`: float32 sum over each window (averages divide it);
* :func:`window_first_max_index`: the index alone, for custom windows.

A window reduction is split into *stages*, each reducing one or more spatial axes:

* ``blocks``: the windows tile the axis (stride == kernel, no dilation), so a reshape
  splits the axis into (windows, taps) and an axis reduction does the work. Used for
  global pooling, divisible adaptive pooling and large non-overlapping kernels.
* ``taps``: each tap of the window is a strided slice (or, for adaptive windows, a
  static gather) of the padded input; the taps are combined elementwise, which XLA fuses
  into one loop. Several axes share one stage while their tap count stays small;
  otherwise each axis is its own stage (separable: rows, then columns).

Separable max is exact, and so is its index: reducing the innermost axis first and
keeping the first maximum (last NaN) at every stage picks the same element as torch's
row-major scan. The gradient of the max is a custom JVP that selects the tangent at the
chosen tap of every stage (``lax.select_n``); JAX transposes that into strided pads, so
the backward pass is one fused scatter-free loop per stage instead of XLA's
``select_and_scatter_add``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpool._geometry import AxisWindows, along

# Largest number of taps combined in one joint multi-axis stage; beyond it each axis is
# reduced on its own (separable), which costs the sum of the kernels instead of their
# product.
JOINT_TAPS_LIMIT = 16
# Tiling windows at least this long are reduced by reshape + axis reduction rather than
# by combining strided slices.
BLOCKS_MIN_KERNEL = 4

# Set by tests to record which implementation ran (a list that receives path names).
_path_log: list[str] | None = None


def _log_path(name: str) -> None:
    if _path_log is not None:
        _path_log.append(name)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of a window reduction: the spatial axes it reduces and how."""

    kind: str  # "blocks" or "taps"
    axes: tuple[int, ...]  # positions in the array
    windows: tuple[AxisWindows, ...]


def plan_stages(
    axes: Sequence[int], windows: Sequence[AxisWindows], *, joint: bool = True
) -> tuple[Stage, ...]:
    """Splits a window reduction into stages, innermost axes first.

    Stages cover contiguous runs of axes ending at the innermost one, so that picking
    the first maximum stage by stage equals torch's row-major choice.
    """
    pairs = list(zip(axes, windows))
    stages: list[Stage] = []

    def blocks_kind(w: AxisWindows) -> bool:
        return w.is_blocks and (w.kernel >= BLOCKS_MIN_KERNEL or w.is_global)

    while pairs:
        axis, w = pairs[-1]
        if blocks_kind(w):
            pairs.pop()
            stages.append(Stage("blocks", (axis,), (w,)))
            continue
        group = [pairs.pop()]
        taps = w.kernel
        while joint and pairs and not blocks_kind(pairs[-1][1]):
            if taps * pairs[-1][1].kernel > JOINT_TAPS_LIMIT:
                break
            taps *= pairs[-1][1].kernel
            group.insert(0, pairs.pop())
        stages.append(Stage("taps", tuple(a for a, _ in group), tuple(v for _, v in group)))
    return tuple(stages)


# ----------------------------------------------------------------------------------
# Helpers on one axis


def _lowest(dtype) -> float | int:
    if jnp.issubdtype(dtype, jnp.floating):
        return -np.inf
    return int(jnp.iinfo(dtype).min)


def _pad_axis(x: jax.Array, axis: int, lo: int, hi: int, value) -> jax.Array:
    if lo == 0 and hi == 0:
        return x
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (lo, hi, 0)
    return lax.pad(x, jnp.asarray(value, x.dtype), config)


def _tap(x: jax.Array, axis: int, w: AxisWindows, j: int, fill) -> jax.Array:
    """Tap ``j`` of every window along ``axis`` (length ``w.size``), padding with ``fill``.

    The slice is taken from the unpadded input and only the (output-sized) tap is
    padded, which XLA fuses into its consumer; padding the input first would copy it.
    """
    positions = w.tap_positions()[j]
    if w.adaptive:
        step = np.diff(positions)
        if positions.size == 1 or (np.all(step == step[0]) and step[0] > 0):
            stride = int(step[0]) if positions.size > 1 else 1
            return lax.slice_in_dim(x, int(positions[0]), int(positions[-1]) + 1, stride, axis)
        return jnp.take(x, jnp.asarray(positions, np.int32), axis=axis)
    valid = np.flatnonzero((positions >= 0) & (positions < w.length))
    if valid.size == 0:  # this tap is padding in every window
        shape = list(x.shape)
        shape[axis] = w.size
        return jnp.full(shape, fill, x.dtype)
    first, last = int(valid[0]), int(valid[-1])
    tap = lax.slice_in_dim(
        x, int(positions[first]), int(positions[last]) + 1, w.stride, axis
    )
    return _pad_axis(tap, axis, first, w.size - 1 - last, fill)


def _take_taps(x: jax.Array, stage: Stage, tap: tuple[int, ...], fill) -> jax.Array:
    for axis, w, j in zip(stage.axes, stage.windows, tap):
        x = _tap(x, axis, w, j, fill)
    return x


def _stage_taps(stage: Stage) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(w.kernel) for w in stage.windows)))


def _split_blocks(x: jax.Array, stage: Stage, value) -> tuple[jax.Array, tuple[int, ...]]:
    """Pads each blocks axis to ``size*kernel`` and splits it into (windows, taps).

    Returns the reshaped array and the positions of the new tap axes.
    """
    for axis, w in zip(stage.axes, stage.windows):
        lo = w.pad_lo
        x = _pad_axis(x, axis, lo, w.size * w.kernel - w.length - lo, value)
    shape = list(x.shape)
    tap_axes = []
    for offset, (axis, w) in enumerate(sorted(zip(stage.axes, stage.windows))):
        position = axis + offset
        shape[position : position + 1] = [w.size, w.kernel]
        tap_axes.append(position + 1)
    return x.reshape(shape), tuple(tap_axes)


# ----------------------------------------------------------------------------------
# Sums (average pooling)


def window_sum(x: jax.Array, axes: Sequence[int], windows: Sequence[AxisWindows]) -> jax.Array:
    """Float32 sum of each window; padding adds zero. Differentiable by plain autodiff.

    Args:
      x: input; any dtype (accumulated in float32, float64 when x is float64).
      axes: the spatial axes of ``x``, one per window description.
      windows: the windows along each axis.

    Returns:
      ``x`` with each spatial axis replaced by its window count.
    """
    accumulate = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    x = x.astype(accumulate)
    for stage in plan_stages(axes, windows):
        if stage.kind == "blocks":
            _log_path("sum:blocks")
            split, tap_axes = _split_blocks(x, stage, 0)
            x = jnp.sum(split, axis=tap_axes)
            continue
        _log_path("sum:taps")
        total = None
        for tap in _stage_taps(stage):
            value = _take_taps(x, stage, tap, 0)
            # Adaptive windows shorter than the kernel repeat their last element.
            mask = _repeat_mask(stage, tap, x.ndim)
            if mask is not None:
                value = jnp.where(mask, value, 0)
            total = value if total is None else total + value
        x = total
    return x


def _repeat_mask(stage: Stage, tap: tuple[int, ...], ndim: int) -> np.ndarray | None:
    """Static mask of the windows for which a tap is a real, non-repeated element.

    Only adaptive windows shorter than the kernel repeat elements (their last); regular
    padding is handled by the pad value. None means every window.
    """
    mask = None
    for axis, w, j in zip(stage.axes, stage.windows, tap):
        if not w.adaptive:
            continue
        row = w.tap_valid()[j]
        if row.all():
            continue
        part = along(row, axis, ndim)
        mask = part if mask is None else mask & part
    return mask


def _first_real(stage: Stage, tap: tuple[int, ...], ndim: int) -> np.ndarray | bool:
    """Static mask of the windows whose first real element is this tap (True/False: all/none)."""
    mask: np.ndarray | bool = True
    for axis, w, j in zip(stage.axes, stage.windows, tap):
        row = np.argmax(w.tap_valid(), axis=0) == j
        if not row.any():
            return False
        if row.all():
            continue
        part = along(row, axis, ndim)
        mask = part if mask is True else mask & part
    return mask


def window_average(
    x: jax.Array,
    axes: Sequence[int],
    windows: Sequence[AxisWindows],
    divisor: str | int,
) -> jax.Array:
    """Window sums divided as torch divides them; same dtype as ``x``.

    Args:
      x: floating input (sums accumulate in float32, float64 for float64).
      axes: spatial axes of ``x``.
      windows: windows per axis.
      divisor: ``'with_padding'`` (torch's count_include_pad: window length clipped at
        the right padding), ``'without_padding'`` (real elements only), ``'adaptive'``
        (torch's adaptive rule: ``sum / kh / kw`` per axis in turn, or one division by
        the volume when every output size is 1, as torch's mean), or an int
        (``divisor_override``).
    """
    axes, windows = tuple(axes), tuple(windows)
    sums = window_sum(x, axes, windows)
    if divisor == "adaptive":
        if all(w.size == 1 for w in windows):
            sums = divide(sums, float(math.prod(w.length for w in windows)), axes)
        else:
            for number, (axis, w) in enumerate(zip(axes, windows)):
                if number:
                    # XLA would merge (s / a) / b into s / (a * b), which rounds once.
                    sums = lax.optimization_barrier(sums)
                sums = divide(sums, along(w.divisor_with_padding(), axis, x.ndim), axes)
        return sums.astype(x.dtype)
    if isinstance(divisor, int):
        return divide(sums, float(divisor), axes).astype(x.dtype)
    per_axis = [
        w.divisor_with_padding() if divisor == "with_padding" else w.divisor_without_padding()
        for w in windows
    ]
    total = np.ones([1] * x.ndim, np.float64)
    for vector, axis in zip(per_axis, axes):
        total = total * along(vector.astype(np.float64), axis, x.ndim)
    return divide(sums, total, axes).astype(x.dtype)


def window_hybrid(
    x: jax.Array,
    alpha: jax.Array,
    axes: Sequence[int],
    windows: Sequence[AxisWindows],
    divisor: str | int,
) -> jax.Array:
    """``alpha * max + (1 - alpha) * average`` over each window (torch's rules for both).

    Args:
      x: floating input.
      alpha: mixing weight, broadcastable to the output (same rank); differentiable.
      axes: spatial axes of ``x``.
      windows: windows per axis.
      divisor: as :func:`window_average`.

    Returns:
      The mix, in ``x``'s dtype (computed in float32 for narrower floats).
    """
    maxima = window_max(x, axes, windows)
    averages = window_average(x, axes, windows, divisor)
    compute = jnp.promote_types(x.dtype, jnp.float32)
    alpha = alpha.astype(compute)
    mixed = alpha * maxima.astype(compute) + (1 - alpha) * averages.astype(compute)
    return mixed.astype(x.dtype)


def divide(numerator: jax.Array, divisor, axes: Sequence[int]) -> jax.Array:
    """``numerator / divisor`` rounded as IEEE division, as torch computes averages.

    XLA turns a division by a broadcast operand into a multiplication by its
    reciprocal, which is off by one ulp for divisors such as 9. Here the divisor,
    spread over the spatial ``axes``, meets ones-like values spread over the other axes
    in an elementwise maximum: a full-shape operand that XLA cannot rewrite, fused into
    the division loop at no memory cost. The gradient divides by the same operand.

    Args:
      numerator: the window sums.
      divisor: a number, or a static array broadcastable to ``numerator`` that varies
        only along ``axes``.
      axes: the spatial axes of ``numerator``.
    """
    shape = numerator.shape
    spatial = [shape[a] if a in axes else 1 for a in range(numerator.ndim)]
    rest = [1 if a in axes else shape[a] for a in range(numerator.ndim)]
    divisor = np.broadcast_to(np.asarray(divisor, numerator.dtype), spatial)
    if math.prod(rest) == 1:
        return numerator / lax.optimization_barrier(jnp.asarray(divisor))
    # max(d, -inf) == d for every divisor d.
    floor = np.full(rest, -np.inf, numerator.dtype)
    full = jnp.maximum(
        lax.optimization_barrier(jnp.asarray(divisor)), lax.optimization_barrier(jnp.asarray(floor))
    )
    return numerator / full


# ----------------------------------------------------------------------------------
# Maxima


def _max_value_fast(x: jax.Array, axes: Sequence[int], windows: Sequence[AxisWindows]) -> jax.Array:
    """Window maxima without indices: reshape-reduce for tiling windows, else reduce_window."""
    if all(w.is_blocks for w in windows):
        _log_path("max:blocks")
        stage = Stage("blocks", tuple(axes), tuple(windows))
        split, tap_axes = _split_blocks(x, stage, _lowest(x.dtype))
        return jnp.max(split, axis=tap_axes)
    if any(w.adaptive for w in windows):
        _log_path("max:taps")
        for stage in plan_stages(axes, windows):
            x = _max_stage(x, stage, (), want_taps=False)[0]
        return x
    _log_path("max:reduce_window")
    dims = [1] * x.ndim
    strides = [1] * x.ndim
    dilation = [1] * x.ndim
    padding = [(0, 0)] * x.ndim
    for axis, w in zip(axes, windows):
        lo, hi = w.padded_extent()
        if hi < 0:
            x = lax.slice_in_dim(x, 0, w.length + hi, 1, axis)
            hi = 0
        dims[axis], strides[axis], dilation[axis] = w.kernel, w.stride, w.dilation
        padding[axis] = (lo, hi)
    return lax.reduce_window(
        x,
        jnp.asarray(_lowest(x.dtype), x.dtype),
        lax.max,
        tuple(dims),
        tuple(strides),
        tuple(padding),
        window_dilation=tuple(dilation),
    )


def _max_stage(
    x: jax.Array, stage: Stage, carried: tuple[jax.Array, ...], *, want_taps: bool
) -> tuple[jax.Array, jax.Array | None, tuple[jax.Array, ...]]:
    """Reduces one stage, tracking the first maximum (last NaN) as torch does.

    Args:
      x: values.
      stage: what to reduce.
      carried: int arrays shaped like ``x`` (input coordinates chosen by earlier stages)
        that follow the choice made here.
      want_taps: whether to return the chosen tap of every window.

    Returns:
      ``(maxima, chosen_tap or None, carried)``; ``chosen_tap`` numbers the stage's taps
      in row-major order.
    """
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    lowest = _lowest(x.dtype)
    if stage.kind == "blocks":
        return _max_blocks_stage(x, stage, carried, want_taps=want_taps, floating=floating)
    taps = _stage_taps(stage)
    best = _take_taps(x, stage, taps[0], lowest)
    chosen = jnp.zeros(best.shape, jnp.int32) if want_taps else None
    follow = [_take_taps(c, stage, taps[0], 0) for c in carried]
    for number, tap in enumerate(taps[1:], start=1):
        value = _take_taps(x, stage, tap, lowest)
        better = value > best
        if floating:
            better = better | jnp.isnan(value)
        first_real = _first_real(stage, tap, x.ndim)
        if first_real is True:
            better = jnp.ones_like(better)
        elif first_real is not False:
            # A window whose leading taps are padding starts at its first real element,
            # even when that element is -inf (torch's initial index).
            better = better | first_real
        best = jnp.where(better, value, best)
        if want_taps:
            chosen = jnp.where(better, number, chosen)
        follow = [
            jnp.where(better, _take_taps(c, stage, tap, 0), f) for c, f in zip(carried, follow)
        ]
    return best, chosen, tuple(follow)


def _max_blocks_stage(x, stage, carried, *, want_taps, floating):
    (axis,), (w,) = stage.axes, stage.windows
    split, (tap_axis,) = _split_blocks(x, stage, _lowest(x.dtype))
    best = jnp.max(split, axis=tap_axis)
    if not want_taps and not carried:
        return best, None, ()
    iota = lax.broadcasted_iota(jnp.int32, split.shape, tap_axis)
    hit = split == jnp.expand_dims(best, tap_axis)
    valid = w.tap_valid().T  # (size, kernel)
    if not valid.all():
        shape = [1] * split.ndim
        shape[axis], shape[tap_axis] = valid.shape
        hit = hit & np.reshape(valid, shape)
    chosen = jnp.min(jnp.where(hit, iota, w.kernel), axis=tap_axis)
    if floating:
        last_nan = jnp.max(jnp.where(jnp.isnan(split), iota, -1), axis=tap_axis)
        chosen = jnp.where(last_nan >= 0, last_nan, chosen)
    one_hot = iota == jnp.expand_dims(chosen, tap_axis)
    follow = tuple(
        jnp.sum(jnp.where(one_hot, _split_blocks(c, stage, 0)[0], 0), axis=tap_axis)
        for c in carried
    )
    return best, chosen, follow


def _select_stage(dx: jax.Array, stage: Stage, chosen: jax.Array) -> jax.Array:
    """Linear in ``dx``: the element of every window at the chosen tap."""
    if stage.kind == "blocks":
        split, (tap_axis,) = _split_blocks(dx, stage, 0)
        iota = lax.broadcasted_iota(jnp.int32, split.shape, tap_axis)
        one_hot = iota == jnp.expand_dims(chosen, tap_axis)
        return jnp.sum(jnp.where(one_hot, split, 0), axis=tap_axis)
    cases = [_take_taps(dx, stage, tap, 0) for tap in _stage_taps(stage)]
    if len(cases) == 1:
        return cases[0]
    return lax.select_n(chosen, *cases)


def _max_with_taps(
    x: jax.Array, axes: tuple[int, ...], windows: tuple[AxisWindows, ...], want_index: bool
):
    """Runs every stage; returns maxima, per-stage chosen taps, and coordinates."""
    stages = plan_stages(axes, windows)
    _log_path("max-index:" + "+".join(s.kind for s in stages))
    coords: dict[int, jax.Array] = {}
    chosen_taps = []
    for stage in stages:
        carried_axes = tuple(coords)
        x, chosen, follow = _max_stage(
            x, stage, tuple(coords[a] for a in carried_axes), want_taps=True
        )
        chosen_taps.append(chosen)
        coords = dict(zip(carried_axes, follow))
        if want_index:
            for position, (axis, w) in enumerate(zip(stage.axes, stage.windows)):
                if stage.kind == "blocks":
                    tap_of_axis = chosen
                else:
                    # Row-major tap number -> this axis's tap.
                    later = math.prod(v.kernel for v in stage.windows[position + 1 :])
                    tap_of_axis = (chosen // later) % w.kernel
                table = w.tap_positions()  # (kernel, size)
                if w.adaptive or stage.kind == "blocks":
                    starts = along(table[0], axis, x.ndim)
                    if w.adaptive:
                        # Short windows repeat their last tap: clip like the table does.
                        ends = along(table[-1], axis, x.ndim)
                        coords[axis] = jnp.minimum(starts + tap_of_axis, ends)
                    else:
                        coords[axis] = starts + tap_of_axis
                else:
                    coords[axis] = along(table[0], axis, x.ndim) + tap_of_axis * w.dilation
    return x, tuple(chosen_taps), stages, coords


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _max_values(x: jax.Array, axes: tuple[int, ...], windows: tuple[AxisWindows, ...]) -> jax.Array:
    return _max_value_fast(x, axes, windows)


@_max_values.defjvp
def _max_values_jvp(axes, windows, primals, tangents):
    (x,), (dx,) = primals, tangents
    values, chosen_taps, stages, _ = _max_with_taps(x, axes, windows, want_index=False)
    for stage, chosen in zip(stages, chosen_taps):
        dx = _select_stage(dx, stage, chosen)
    return values, dx


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _max_values_and_index(x, axes, windows):
    values, _, _, coords = _max_with_taps(x, axes, windows, want_index=True)
    return values, _flat_index(coords, axes, windows)


@_max_values_and_index.defjvp
def _max_values_and_index_jvp(axes, windows, primals, tangents):
    (x,), (dx,) = primals, tangents
    values, chosen_taps, stages, coords = _max_with_taps(x, axes, windows, want_index=True)
    for stage, chosen in zip(stages, chosen_taps):
        dx = _select_stage(dx, stage, chosen)
    index = _flat_index(coords, axes, windows)
    return (values, index), (dx, np.zeros(index.shape, jax.dtypes.float0))


def _flat_index(coords: dict[int, jax.Array], axes, windows) -> jax.Array:
    """Flat position in the unpadded spatial volume (row-major), as torch reports."""
    index_dtype = jnp.int64 if jax.config.jax_enable_x64 else jnp.int32
    flat = None
    multiplier = 1
    for axis, w in reversed(list(zip(axes, windows))):
        term = coords[axis].astype(index_dtype) * multiplier
        flat = term if flat is None else flat + term
        multiplier *= w.length
    return flat


def window_max(
    x: jax.Array,
    axes: Sequence[int],
    windows: Sequence[AxisWindows],
    *,
    return_index: bool = False,
):
    """Maximum of each window with torch's semantics; optionally its flat index.

    Padding never wins (it is -inf, or the dtype's minimum for integers). Ties go to the
    first element in row-major window order; a window holding NaN gives NaN and points
    at its last NaN. The gradient follows the index (torch's rule), also for dilated
    windows, which JAX itself cannot differentiate.

    Returns:
      The maxima, or ``(maxima, indices)`` with int32 indices (int64 under x64) into the
      flattened unpadded spatial volume.
    """
    axes, windows = tuple(axes), tuple(windows)
    differentiable = jnp.issubdtype(x.dtype, jnp.floating)
    if return_index:
        if differentiable:
            return _max_values_and_index(x, axes, windows)
        values, _, _, coords = _max_with_taps(x, axes, windows, want_index=True)
        return values, _flat_index(coords, axes, windows)
    if differentiable:
        return _max_values(x, axes, windows)
    return _max_value_fast(x, axes, windows)


# ----------------------------------------------------------------------------------
# Windows that vary per example (fractional max pooling)


def gather_window_max(
    x: jax.Array,
    axes: Sequence[int],
    starts: Sequence[jax.Array],
    kernel: Sequence[int],
) -> tuple[jax.Array, jax.Array]:
    """Max over windows whose starts are arrays (one start per output and plane).

    Args:
      x: input.
      axes: spatial axes of ``x``.
      starts: per spatial axis, int32 window starts shaped like ``x`` except that every
        spatial axis has length 1 and this axis has the output length; windows must lie
        inside the input.
      kernel: window length per axis.

    Returns:
      ``(maxima, flat_index)`` with torch's choice (first maximum in row-major window
      order, last NaN). Separable: one pass per axis, innermost first, carrying the
      coordinates chosen so far. The maxima are gathered at the index, so their gradient
      is torch's scatter-add.
    """
    axes = tuple(axes)
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    values = lax.stop_gradient(x)
    coords: dict[int, jax.Array] = {}
    for axis, start, k in reversed(list(zip(axes, starts, kernel))):
        shape = list(values.shape)
        shape[axis] = start.shape[axis]
        base = jnp.broadcast_to(start, shape).astype(jnp.int32)
        best = chosen = None
        follow: dict[int, jax.Array] = {}
        for j in range(k):
            position = base + j
            value = jnp.take_along_axis(values, position, axis=axis)
            taken = {a: jnp.take_along_axis(c, position, axis=axis) for a, c in coords.items()}
            if best is None:
                best, chosen, follow = value, position, taken
                continue
            better = value > best
            if floating:
                better = better | jnp.isnan(value)
            best = jnp.where(better, value, best)
            chosen = jnp.where(better, position, chosen)
            follow = {a: jnp.where(better, taken[a], follow[a]) for a in coords}
        values = best
        coords = {**follow, axis: chosen}
    index_dtype = jnp.int64 if jax.config.jax_enable_x64 else jnp.int32
    flat = jnp.zeros(values.shape, index_dtype)
    multiplier = 1
    for axis in reversed(axes):
        flat = flat + coords[axis].astype(index_dtype) * multiplier
        multiplier *= x.shape[axis]
    # Gather the maxima from x itself so that the gradient reaches the chosen element.
    rest = [a for a in range(x.ndim) if a not in axes]
    perm = rest + list(axes)
    moved = jnp.transpose(x, perm).reshape(*(x.shape[a] for a in rest), -1)
    moved_index = jnp.transpose(flat, perm)
    out_shape = moved_index.shape
    maxima = jnp.take_along_axis(moved, moved_index.reshape(*out_shape[: len(rest)], -1), axis=-1)
    maxima = jnp.transpose(maxima.reshape(out_shape), np.argsort(perm))
    return maxima, flat


def lowest_value(dtype) -> float | int:
    """The pad value that never wins a maximum."""
    return _lowest(dtype)

