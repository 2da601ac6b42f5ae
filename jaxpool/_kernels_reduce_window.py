"""The ``reduce_window`` kernel family: what XLA's GPU and TPU backends optimise.

One of jaxpool's two kernel families (see :mod:`jaxpool._kernels`, which chooses per
lowering platform). Forwards are one ``lax.reduce_window`` over every regular window
(the op flax.linen's pooling and nearly every JAX CNN use, which XLA's GPU and TPU
backends fuse and tile well): a maximum, or a float32 sum for averages, LP pooling and
the hybrid's average. Whole axes (global pooling) are plain axis reductions; torch's
adaptive windows that are not regular are static gathers along their axis.

Gradients keep torch's rules, which XLA's ``select_and_scatter_add`` (JAX's gradient
of max pooling) does not: torch sends the whole gradient of a window to its *first*
maximum in row-major window order, and a window holding NaN to its *last* NaN (XLA's
choice depends on the traversal, and a NaN window sends the gradient elsewhere), an
all ``-inf`` window to its first real element (XLA may choose a padding element), and
dilated max pooling has a gradient (JAX raises ``NotImplementedError``). So the maximum
is a ``jax.custom_jvp``: its tangent picks, in each window, the element at the tap torch
chooses (:func:`_choose`: a comparison of every tap with the window's maximum, in
row-major order), written with plain JAX operations (strided slices, ``select_n``,
reshapes), whose transposes JAX derives: the gradient is each tap's masked cotangent
padded back into place (``lax.pad`` with interior padding), summed in one fusion. Large
overlapping windows are reduced in stages, innermost axes first
(:func:`jaxpool._kernel_common.plan_stages`), which keeps torch's row-major choice.
Sums differentiate through JAX's own ``reduce_window`` sum transpose.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpool import _kernel_common as common
from jaxpool._geometry import AxisWindows, along
from jaxpool._kernel_common import (
    Stage,
    flat_index,
    log_path,
    lowest,
    pad_axis,
    plan_stages,
    tap_coordinates,
)

# ----------------------------------------------------------------------------------
# Window values: reduce_window, axis reductions, gathers


def _reduce_window(x: jax.Array, axes, windows, init, computation) -> jax.Array:
    """One ``lax.reduce_window`` over the regular windows of ``axes``."""
    ndim = x.ndim
    dims, strides, dilation, padding = [1] * ndim, [1] * ndim, [1] * ndim, [(0, 0)] * ndim
    for axis, w in zip(axes, windows, strict=True):
        lo, hi = w.padded_extent()
        if hi < 0:  # the last elements lie in no window
            x = lax.slice_in_dim(x, 0, w.length + hi, axis=axis)
            hi = 0
        dims[axis], strides[axis], dilation[axis] = w.kernel, w.stride, w.dilation
        padding[axis] = (lo, hi)
    # A NumPy scalar init lets JAX recognise the monoid (reduce_window_max / _sum, which
    # it lowers, batches and differentiates); a traced one would make a generic,
    # non-differentiable reduce_window.
    return lax.reduce_window(
        x, np.array(init, x.dtype), computation, tuple(dims), tuple(strides), tuple(padding),
        window_dilation=tuple(dilation),
    )


def _gather_taps(x: jax.Array, axis: int, w: AxisWindows):
    """Each tap of torch's adaptive windows along ``axis``: a static gather; yields
    ``(tap, values, real)`` with ``real`` the static mask of windows that hold the tap
    (a short window repeats its last element), or None."""
    positions = w.tap_positions()
    valid = w.tap_valid()
    for j in range(w.kernel):
        values = jnp.take(x, jnp.asarray(positions[j], np.int32), axis=axis)
        yield j, values, None if valid[j].all() else along(valid[j], axis, x.ndim)


def _values(x: jax.Array, axes, windows, kind: str) -> jax.Array:
    """The maximum (``kind='max'``) or the sum (``'sum'``) of every window, no gradient
    rule of its own: global axes by an axis reduction, regular windows by one
    ``reduce_window``, adaptive axes by gathers."""
    whole = tuple(a for a, w in zip(axes, windows, strict=True) if w.is_global)
    regular = [
        (a, w) for a, w in zip(axes, windows, strict=True) if not (w.is_global or w.adaptive)
    ]
    adaptive = [(a, w) for a, w in zip(axes, windows, strict=True) if w.adaptive]
    combine = jnp.maximum if kind == "max" else jnp.add
    if regular:
        regular_axes = tuple(a for a, _ in regular)
        regular_windows = tuple(w for _, w in regular)
        if kind == "max":
            x = _reduce_window(x, regular_axes, regular_windows, lowest(x.dtype), lax.max)
        else:
            x = _reduce_window(x, regular_axes, regular_windows, 0, lax.add)
    if whole:
        x = (jnp.max if kind == "max" else jnp.sum)(x, axis=whole, keepdims=True)
    for axis, w in adaptive:
        taps = []
        for _, values, real in _gather_taps(x, axis, w):
            if kind == "sum" and real is not None:  # a repeated element counts once
                values = jnp.where(real, values, jnp.zeros((), x.dtype))
            taps.append(values)
        x = functools.reduce(combine, taps)
    return x


# ----------------------------------------------------------------------------------
# Taps of one stage


def _padded_taps(x: jax.Array, stage: Stage, fill):
    """Every tap of a regular stage as an output-shaped strided slice of ``x`` padded
    with ``fill``; yields ``(number, values, real)`` in row-major tap order, ``real``
    the static mask of windows where the tap is an input element (None: all)."""
    padded = x
    for axis, w in zip(stage.axes, stage.windows, strict=True):
        lo, hi = w.padded_extent()
        padded = pad_axis(padded, axis, lo, hi, fill)  # hi < 0 crops
    for number, tap in enumerate(stage.taps):
        start, limit, strides = [0] * x.ndim, list(padded.shape), [1] * x.ndim
        real = None
        for axis, w, j in zip(stage.axes, stage.windows, tap, strict=True):
            start[axis] = j * w.dilation
            limit[axis] = start[axis] + (w.size - 1) * w.stride + 1
            strides[axis] = w.stride
            row = w.tap_valid()[j]
            if not row.all():
                mask = along(row, axis, x.ndim)
                real = mask if real is None else real & mask
        yield number, lax.slice(padded, start, limit, strides), real


def _taps(x: jax.Array, stage: Stage, fill):
    if stage.kind == "adaptive":
        ((axis,), (w,)) = stage.axes, stage.windows
        return list(_gather_taps(x, axis, w))
    return list(_padded_taps(x, stage, fill))


def _choose(x: jax.Array, best: jax.Array, stage: Stage) -> jax.Array:
    """torch's chosen tap (row-major number) of each window of one stage.

    ``best`` holds the stage's window maxima. The first tap equal to it wins (ties keep
    the first maximum; padding never wins, so an all ``-inf`` window points at its first
    real element); a window holding NaN points at its last NaN.
    """
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    if stage.kind == "blocks":
        split, (tap_axis,) = common.split_blocks(x, stage, lowest(x.dtype))
        return common.first_max_in_blocks(split, tap_axis, best, stage, nan_aware=floating)
    taps = _taps(x, stage, lowest(x.dtype))
    chosen = jnp.zeros(best.shape, jnp.int32)
    for number, values, real in reversed(taps):  # the last assignment is the first hit
        hit = values == best
        chosen = jnp.where(hit if real is None else hit & real, number, chosen)
    if floating:
        for number, values, real in taps:  # the last assignment is the last NaN
            nan = jnp.isnan(values)
            chosen = jnp.where(nan if real is None else nan & real, number, chosen)
    return chosen


def _select(x: jax.Array, chosen: jax.Array, stage: Stage) -> jax.Array:
    """The element of each window at its chosen tap: linear in ``x`` (its transpose,
    derived by JAX, sends each window's cotangent back to that element)."""
    if stage.kind == "blocks":
        return common.select_in_blocks(x, chosen, stage)
    cases = [values for _, values, _ in _taps(x, stage, 0)]
    return cases[0] if len(cases) == 1 else lax.select_n(chosen, *cases)


# ----------------------------------------------------------------------------------
# Maxima


def _stages(axes, windows) -> tuple[Stage, ...]:
    return plan_stages(axes, windows)


def _choices(x: jax.Array, stages: tuple[Stage, ...], final: jax.Array | None, want_index: bool):
    """Every stage's chosen taps (and, with ``want_index``, the input coordinates of
    each window's maximum). ``final`` is the last stage's maxima if already known."""
    x = lax.stop_gradient(x)
    coords: dict[int, jax.Array] = {}
    choices = []
    for number, stage in enumerate(stages):
        last = number + 1 == len(stages)
        best = final if last and final is not None else _values(x, stage.axes, stage.windows, "max")
        chosen = _choose(x, best, stage)
        choices.append(chosen)
        if want_index:
            coords = {axis: _select(c, chosen, stage) for axis, c in coords.items()}
            coords.update(tap_coordinates(stage, chosen, x.ndim))
        x = best
    return tuple(choices), coords


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _max_values(x: jax.Array, axes: tuple[int, ...], windows: tuple[AxisWindows, ...]) -> jax.Array:
    return _values(x, axes, windows, "max")


@_max_values.defjvp
def _max_values_jvp(axes, windows, primals, tangents):
    (x,), (dx,) = primals, tangents
    out = _max_values(x, axes, windows)  # itself: higher derivatives follow torch's rule too
    stages = _stages(axes, windows)
    choices, _ = _choices(x, stages, lax.stop_gradient(out), want_index=False)
    for stage, chosen in zip(stages, choices, strict=True):
        dx = _select(dx, chosen, stage)
    return out, dx


def window_max(
    x: jax.Array,
    axes: Sequence[int],
    windows: Sequence[AxisWindows],
    *,
    return_index: bool = False,
):
    """Maximum of each window with torch's semantics; optionally its flat index.

    Same contract as :func:`jaxpool._kernels_cpu.window_max`: padding never wins, ties go
    to the first element in row-major window order, a NaN window gives NaN and points at
    its last NaN, and the gradient follows the index (dilated windows included).
    """
    axes, windows = tuple(axes), tuple(windows)
    log_path("reduce_window:max")
    differentiable = jnp.issubdtype(x.dtype, jnp.floating)
    values = _max_values(x, axes, windows) if differentiable else _values(x, axes, windows, "max")
    if not return_index:
        return values
    _, coords = _choices(x, _stages(axes, windows), lax.stop_gradient(values), want_index=True)
    lengths = tuple((axis, w.length) for axis, w in zip(axes, windows, strict=True))
    return values, flat_index(coords, lengths)


# ----------------------------------------------------------------------------------
# Sums, averages, hybrid


def window_sum(x: jax.Array, axes: Sequence[int], windows: Sequence[AxisWindows]) -> jax.Array:
    """Float32 sum of each window (float64 for float64 input); padding adds nothing."""
    log_path("reduce_window:sum")
    return _values(x.astype(common.accumulation_dtype(x.dtype)), tuple(axes), tuple(windows), "sum")


# ``window_average(x, axes, windows, divisor)``: the sums divided as torch divides them.
window_average = functools.partial(common.window_average, window_sum)

# ``window_hybrid(x, alpha, axes, windows, divisor)``: a max and a sum ``reduce_window``
# over the same windows, mixed (in float32 for narrower floats).
window_hybrid = functools.partial(common.composed_hybrid, window_max, window_sum)
