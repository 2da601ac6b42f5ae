"""What every kernel family shares: stage planning, padding, exact division, flat
indices, averages and the hybrid mix built on a family's sums and maxima, tiling
windows, and the reductions that do not depend on the family.

* :func:`plan_stages` splits a window reduction into stages (the innermost axes first),
  so that keeping the first maximum stage by stage equals torch's row-major choice;
* :func:`divide` and :func:`average_of_sums`: window sums divided as torch divides them
  (IEEE division, never a multiplication by a reciprocal); :func:`window_average` and
  :func:`composed_hybrid` build a family's average and hybrid mix from its
  ``window_sum`` and ``window_max``;
* :func:`split_blocks`, :func:`first_max_in_blocks` and :func:`select_in_blocks`: the
  windows of a ``blocks`` stage (they tile the axis) as a (windows, taps) split, the tap
  torch chooses in each, and the element at a chosen tap;
* :func:`window_taps` (every tap of regular windows: gated pooling, SoftPool) and
  :func:`gather_window_max` (windows whose starts are data: fractional pooling) are plain
  JAX, the same on every platform.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpool._geometry import AxisWindows, along
from jaxpool._jax_internals import optimization_barrier

# Largest number of taps combined in one joint multi-axis ``taps`` stage; beyond it each
# axis is reduced on its own (separable: the sum of the kernels instead of their product).
JOINT_TAPS_LIMIT = 16

# Tests set this to a list to record which implementations ran ("max:taps", ...).
_path_log: list[str] | None = None


def log_path(name: str) -> None:
    """Records ``name`` in :data:`_path_log` when a test is recording."""
    if _path_log is not None:
        _path_log.append(name)


# ----------------------------------------------------------------------------------
# Stages


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of a window reduction: the spatial axes it reduces and how.

    Attributes:
      kind: 'taps' (regular windows: every tap is a strided slice), 'blocks' (the
        windows tile the axis: a reshape splits it into (windows, taps)) or 'adaptive'
        (torch's adaptive windows that do not tile the axis: taps are static gathers).
      axes: positions of the reduced axes in the array.
      windows: the windows along each of those axes.
    """

    kind: str
    axes: tuple[int, ...]
    windows: tuple[AxisWindows, ...]

    def shifted(self, offset: int) -> Stage:
        """The same stage for an array with ``offset`` more leading axes (vmap)."""
        return dataclasses.replace(self, axes=tuple(a + offset for a in self.axes))

    @property
    def taps(self) -> list[tuple[int, ...]]:
        """Every tap of a window, in row-major order."""
        return list(itertools.product(*(range(w.kernel) for w in self.windows)))

    def out_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = list(shape)
        for axis, w in zip(self.axes, self.windows, strict=True):
            shape[axis] = w.size
        return tuple(shape)

    def in_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = list(shape)
        for axis, w in zip(self.axes, self.windows, strict=True):
            shape[axis] = w.length
        return tuple(shape)


def plan_stages(
    axes: Sequence[int],
    windows: Sequence[AxisWindows],
    *,
    joint_blocks: bool = False,
    blocks_min_kernel: int = 1,
) -> tuple[Stage, ...]:
    """Splits a window reduction into stages, innermost axes first.

    Stages cover contiguous runs of axes ending at the innermost remaining one, so that
    keeping the first maximum stage by stage equals torch's row-major choice. With
    ``joint_blocks``, neighbouring ``blocks`` axes share one stage (one reduction over
    several axes: right for sums and plain maxima, not for a chosen index). Tiling
    windows shorter than ``blocks_min_kernel`` (and not global) become ``taps`` stages.
    """

    def kind_of(w: AxisWindows) -> str:
        if w.adaptive:
            return "adaptive"
        if w.is_blocks and (w.kernel >= blocks_min_kernel or w.is_global):
            return "blocks"
        return "taps"

    pairs = list(zip(axes, windows, strict=True))
    stages: list[Stage] = []
    while pairs:
        axis, w = pairs.pop()
        kind = kind_of(w)
        group = [(axis, w)]
        taps = w.kernel
        while kind == "taps" and pairs and kind_of(pairs[-1][1]) == "taps":
            if taps * pairs[-1][1].kernel > JOINT_TAPS_LIMIT:
                break
            taps *= pairs[-1][1].kernel
            group.insert(0, pairs.pop())
        while kind == "blocks" and joint_blocks and pairs and kind_of(pairs[-1][1]) == "blocks":
            group.insert(0, pairs.pop())
        stages.append(Stage(kind, tuple(a for a, _ in group), tuple(v for _, v in group)))
    return tuple(stages)


# ----------------------------------------------------------------------------------
# Helpers


def lowest(dtype) -> float | int:
    """The pad value that never wins a maximum."""
    if jnp.issubdtype(dtype, jnp.floating):
        return -np.inf
    return int(jnp.iinfo(dtype).min)


def pad_axis(x: jax.Array, axis: int, lo: int, hi: int, value) -> jax.Array:
    if lo == 0 and hi == 0:
        return x
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (lo, hi, 0)
    return lax.pad(x, jnp.asarray(value, x.dtype), config)


# ----------------------------------------------------------------------------------
# Exact division


def divisor_array(ndim: int, axes, windows, divisor: str | int) -> np.ndarray | float:
    """The divisor of every window as one static array (or number), for non-adaptive rules."""
    if isinstance(divisor, int):
        return float(divisor)
    total = np.ones([1] * ndim, np.float64)
    for axis, w in zip(axes, windows, strict=True):
        if divisor == "without_padding":
            per_axis = w.divisor_without_padding()
        else:  # "with_padding" and "adaptive" (one window per output: its length)
            per_axis = w.divisor_with_padding()
        total = total * along(per_axis.astype(np.float64), axis, ndim)
    return total


def divide(numerator: jax.Array, divisor, axes: Sequence[int]) -> jax.Array:
    """``numerator / divisor`` rounded as IEEE division, as torch computes averages.

    XLA turns a division by a broadcast operand into a multiplication by its
    reciprocal, which is off by one ulp for divisors such as 9. Here the divisor is a
    constant over every axis from the first spatial one on (the spatial axes and, in
    the channels-last layout, the channels), and it meets an equally constant floor
    over the leading batch axes in an elementwise maximum: a full-shape operand that
    XLA cannot rewrite, fused into the division loop at no memory cost. Each operand
    spans a contiguous run of axes (jaxlib 0.10.2's YNNPACK fusions corrupt memory
    with a broadcast over interleaved axes, such as one over batch and channels). The
    gradient divides by the same operand.

    Args:
      numerator: the window sums.
      divisor: a number, or a static array broadcastable to ``numerator`` that varies
        only along ``axes``.
      axes: the spatial axes of ``numerator``.
    """
    shape = numerator.shape
    first = min(axes)
    spatial = [shape[a] if a in axes else 1 for a in range(numerator.ndim)]
    divisor = np.broadcast_to(np.asarray(divisor, numerator.dtype), spatial)
    divisor = np.broadcast_to(divisor, (1,) * first + tuple(shape[first:]))
    if math.prod(shape[:first]) == 1:
        return numerator / optimization_barrier(jnp.asarray(divisor))
    # max(d, -inf) == d for every divisor d.
    floor_shape = tuple(shape[:first]) + (1,) * (numerator.ndim - first)
    floor = np.full(floor_shape, -np.inf, numerator.dtype)
    full = jnp.maximum(
        optimization_barrier(jnp.asarray(divisor)), optimization_barrier(jnp.asarray(floor))
    )
    return numerator / full


def average_of_sums(
    sums: jax.Array, axes: Sequence[int], windows: Sequence[AxisWindows], divisor: str | int
) -> jax.Array:
    """Window sums divided as torch divides them (same dtype as ``sums``).

    Args:
      sums: window sums (float32, or float64).
      axes: spatial axes of ``sums``.
      windows: windows per axis.
      divisor: ``'with_padding'`` (torch's count_include_pad: window length clipped at
        the right padding), ``'without_padding'`` (real elements only), ``'adaptive'``
        (torch's adaptive rule: ``sum / kh / kw`` per axis in turn, or one division by
        the volume when every output size is 1, as torch's mean), or an int
        (``divisor_override``).
    """
    axes, windows = tuple(axes), tuple(windows)
    if divisor != "adaptive":
        return divide(sums, divisor_array(sums.ndim, axes, windows, divisor), axes)
    if all(w.size == 1 for w in windows):
        return divide(sums, float(math.prod(w.length for w in windows)), axes)
    divided = False
    for axis, w in zip(axes, windows, strict=True):
        lengths = w.divisor_with_padding()
        if (lengths == 1).all():
            continue  # x / 1 == x exactly (an output size of None keeps the axis)
        if divided:
            # XLA would merge (s / a) / b into s / (a * b), which rounds once.
            sums = optimization_barrier(sums)
        sums = divide(sums, along(lengths, axis, sums.ndim), axes)
        divided = True
    return sums


def accumulation_dtype(dtype) -> type:
    """The dtype window sums accumulate in: float64 for float64 input, else float32."""
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


def window_average(
    window_sum: Callable[..., jax.Array],
    x: jax.Array,
    axes: Sequence[int],
    windows: Sequence[AxisWindows],
    divisor: str | int,
) -> jax.Array:
    """A family's window sums (``window_sum(x, axes, windows)``) divided as torch divides
    them (:func:`average_of_sums`); same dtype as ``x``."""
    sums = window_sum(x, axes, windows)
    return average_of_sums(sums, axes, windows, divisor).astype(x.dtype)


def mix(alpha: jax.Array, maxima: jax.Array, averages: jax.Array) -> jax.Array:
    """The hybrid's ``alpha * max + (1 - alpha) * average``."""
    return alpha * maxima + (1 - alpha) * averages


def composed_hybrid(
    window_max: Callable[..., jax.Array],
    window_sum: Callable[..., jax.Array],
    x: jax.Array,
    alpha: jax.Array,
    axes: Sequence[int],
    windows: Sequence[AxisWindows],
    divisor: str | int,
    *,
    fused: Callable[..., jax.Array | None] | None = None,
) -> jax.Array:
    """``alpha * max + (1 - alpha) * average`` from a family's ``window_max`` and
    ``window_sum``: each part keeps its own gradient rule (torch's), mixed in float32
    for narrower floats; the result has ``x``'s dtype. A family's ``fused(x, alpha,
    axes, windows, divisor)`` computes it in one pass where it can (else None)."""
    axes, windows = tuple(axes), tuple(windows)
    if fused is not None:
        out = fused(x, alpha, axes, windows, divisor)
        if out is not None:
            return out
    compute = jnp.promote_types(x.dtype, jnp.float32)
    maxima = window_max(x, axes, windows).astype(compute)
    averages = window_average(window_sum, x.astype(compute), axes, windows, divisor)
    return mix(alpha.astype(compute), maxima, averages).astype(x.dtype)


def tap_coordinates(stage: Stage, chosen: jax.Array, ndim: int) -> dict[int, jax.Array]:
    """Input coordinate along each stage axis of every window's chosen tap."""
    coords: dict[int, jax.Array] = {}
    for position, (axis, w) in enumerate(zip(stage.axes, stage.windows, strict=True)):
        later = math.prod(v.kernel for v in stage.windows[position + 1 :])
        tap = (chosen // later) % w.kernel
        table = w.tap_positions()
        if w.adaptive:
            last = along(table[-1], axis, ndim)
            coords[axis] = jnp.minimum(along(table[0], axis, ndim) + tap, last)
        else:
            coords[axis] = jnp.asarray(along(table[0], axis, ndim)) + tap * w.dilation
    return coords


def index_dtype() -> np.dtype:
    """The dtype of torch-style indices: int32, or int64 under ``jax_enable_x64``."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.int64))


def flat_index(coords: dict[int, jax.Array], lengths: tuple[tuple[int, int], ...]) -> jax.Array:
    """Flat position in the unpadded spatial volume (row-major), as torch reports.

    Args:
      coords: the input coordinate along each spatial axis (integer arrays).
      lengths: ``(axis, length)`` of every spatial axis, outermost first.
    """
    dtype = index_dtype()
    terms = []
    multiplier = 1
    for axis, length in reversed(lengths):
        terms.append(coords[axis].astype(dtype) * multiplier)
        multiplier *= length
    return functools.reduce(jnp.add, terms)


# ----------------------------------------------------------------------------------
# Tiling windows (``blocks`` stages)


def split_blocks(x: jax.Array, stage: Stage, fill) -> tuple[jax.Array, tuple[int, ...]]:
    """Pads each axis of a ``blocks`` stage to ``size * kernel`` with ``fill`` and splits
    it into (windows, taps).

    Returns the reshaped array and the positions of the new tap axes (each right after
    its window axis).
    """
    shape = []
    tap_axes = []
    for axis, w in zip(stage.axes, stage.windows, strict=True):
        x = pad_axis(x, axis, w.pad_lo, w.size * w.kernel - w.length - w.pad_lo, fill)
    for axis, length in enumerate(x.shape):
        if axis in stage.axes:
            w = stage.windows[stage.axes.index(axis)]
            shape += [w.size, w.kernel]
            tap_axes.append(len(shape) - 1)
        else:
            shape.append(length)
    return x.reshape(shape), tuple(tap_axes)


def first_max_in_blocks(
    split: jax.Array, tap_axis: int, best: jax.Array, stage: Stage, *, nan_aware: bool
) -> jax.Array:
    """torch's chosen tap of each window of a one-axis ``blocks`` stage, by reductions
    over the (windows, taps) split of :func:`split_blocks` (padded with :func:`lowest`).

    ``best`` holds the window maxima. The first tap equal to it wins (ties keep the
    first maximum; padding never wins, so an all ``-inf`` window points at its first
    real element); with ``nan_aware``, a window holding NaN points at its last NaN.
    """
    ((axis,), (w,)) = stage.axes, stage.windows
    iota = lax.broadcasted_iota(jnp.int32, split.shape, tap_axis)
    hit = split == jnp.expand_dims(best, tap_axis)
    valid = w.tap_valid().T  # (size, kernel)
    if not valid.all():
        shape = [1] * split.ndim
        shape[axis], shape[tap_axis] = valid.shape
        hit = hit & np.reshape(valid, shape)
    chosen = jnp.min(jnp.where(hit, iota, w.kernel), axis=tap_axis)
    if nan_aware:
        last_nan = jnp.max(jnp.where(jnp.isnan(split), iota, -1), axis=tap_axis)
        chosen = jnp.where(last_nan >= 0, last_nan, chosen)
    return chosen


def select_in_blocks(x: jax.Array, chosen: jax.Array, stage: Stage) -> jax.Array:
    """The element of each window of a one-axis ``blocks`` stage at its chosen tap:
    linear in ``x`` (a masked sum over the taps)."""
    split, (tap_axis,) = split_blocks(x, stage, 0)
    hit = lax.broadcasted_iota(jnp.int32, split.shape, tap_axis) == jnp.expand_dims(
        chosen, tap_axis
    )
    return jnp.sum(jnp.where(hit, split, jnp.zeros((), x.dtype)), axis=tap_axis)


# ----------------------------------------------------------------------------------
# Taps one by one (for poolings that weight each element: gated, SoftPool)


def window_taps(x: jax.Array, axes: Sequence[int], windows: Sequence[AxisWindows], fill):
    """Every tap of regular windows, in row-major order: ``(tap, values, real)``.

    ``values`` is output-shaped: element ``o`` is tap ``tap`` of window ``o``, ``fill``
    where that tap is padding. ``real`` is a static boolean mask of the windows for
    which the tap is a real input element (``None``: all of them). Each tap is a
    strided slice of the unpadded input; only the output-sized tap is padded. Plain
    JAX operations, so any reduction built from the taps differentiates by autodiff.
    """
    for tap in itertools.product(*(range(w.kernel) for w in windows)):
        values = x
        real = None
        for axis, w, j in zip(axes, windows, tap, strict=True):
            positions = w.tap_positions()[j]
            inside = np.flatnonzero((positions >= 0) & (positions < w.length))
            if inside.size == 0:  # padding in every window
                shape = list(values.shape)
                shape[axis] = w.size
                values = jnp.full(shape, fill, x.dtype)
            else:
                first, last = int(inside[0]), int(inside[-1])
                values = lax.slice_in_dim(
                    values, int(positions[first]), int(positions[last]) + 1, w.stride, axis
                )
                values = pad_axis(values, axis, first, w.size - 1 - last, fill)
            row = w.tap_valid()[j]
            if not row.all():
                part = along(row, axis, x.ndim)
                real = part if real is None else real & part
        yield tap, values, real


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
    for axis, start, k in reversed(list(zip(axes, starts, kernel, strict=True))):
        shape = list(values.shape)
        shape[axis] = start.shape[axis]
        base = jnp.broadcast_to(start, shape).astype(jnp.int32)
        best = jnp.take_along_axis(values, base, axis=axis)
        chosen = base
        follow = {a: jnp.take_along_axis(c, base, axis=axis) for a, c in coords.items()}
        for j in range(1, k):
            position = base + j
            value = jnp.take_along_axis(values, position, axis=axis)
            taken = {a: jnp.take_along_axis(c, position, axis=axis) for a, c in coords.items()}
            better = value > best
            if floating:
                better = better | jnp.isnan(value)
            best = jnp.where(better, value, best)
            chosen = jnp.where(better, position, chosen)
            follow = {a: jnp.where(better, taken[a], follow[a]) for a in coords}
        values = best
        coords = {**follow, axis: chosen}
    flat = flat_index(coords, tuple((axis, x.shape[axis]) for axis in axes))
    # Gather the maxima from x itself so that the gradient reaches the chosen element.
    rest = [a for a in range(x.ndim) if a not in axes]
    perm = rest + list(axes)
    moved = jnp.transpose(x, perm).reshape(*(x.shape[a] for a in rest), -1)
    moved_index = jnp.transpose(flat, perm)
    out_shape = moved_index.shape
    maxima = jnp.take_along_axis(moved, moved_index.reshape(*out_shape[: len(rest)], -1), axis=-1)
    maxima = jnp.transpose(maxima.reshape(out_shape), tuple(int(a) for a in np.argsort(perm)))
    return maxima, flat
