"""The ``cpu`` kernel family: window reductions tuned for XLA:CPU.

One of jaxpool's two kernel families (see :mod:`jaxpool._kernels`, which chooses per
lowering platform); measured faster than ``lax.reduce_window`` and XLA's
``select_and_scatter_add`` on CPUs. Each op describes its windows with
:class:`~jaxpool._geometry.AxisWindows` (one per spatial axis, static Python data) and
the dispatch calls a reduction here:

* :func:`window_max`: the maximum of each window with torch's semantics (the first
  maximum in row-major window order wins ties; a window holding NaN gives NaN and points
  at its last NaN), its gradient, and on request torch's flat indices;
* :func:`window_sum` / :func:`window_average`: float32 window sums, divided as torch
  divides them;
* :func:`window_hybrid`: ``alpha * max + (1 - alpha) * average`` (fused for windows
  reduced in one stage).

**Stages.** A window is reduced in stages, each over one or more spatial axes, the
innermost axis first (separable max keeps torch's row-major first maximum, stage by
stage). A stage is one of

* ``taps``: every window element ("tap") is a strided slice of the input. Outputs whose
  windows overlap the padding are cut into a few border *blocks*; within a block each
  valid tap is a plain strided slice and invalid taps are left out, so no tap is
  padded (XLA evaluates ``pad`` element by element, and it keeps a padded tap from
  fusing). The blocks are joined by concatenation, which fuses. Long padded windows
  (more than :data:`MAX_RUNS` blocks along an axis) keep one block per border, whose
  taps are padded: small, and the concatenation of three blocks still fuses.
* ``blocks``: the windows tile the axis (stride == kernel, no dilation): a reshape splits
  the axis into (windows, taps) and an axis reduction does the work (global pooling,
  divisible adaptive pooling, large non-overlapping kernels).
* ``adaptive``: torch's adaptive windows that do not tile the axis; taps are static
  gathers, a short window repeats its last element.

Each kind is one class (:class:`_Taps`, :class:`_Blocks`, :class:`_Adaptive`, behind the
interface :class:`_StageKind`) holding every operation the reductions and primitives
need: the window sum and its transpose, the maximum, the chosen tap, and the selection
of the chosen element and its transpose. A new way of reducing windows is a new kind:
one class, and the rule in :func:`plan_stages` that picks it.

**Gradients.** The linear maps under the reductions are JAX primitives with their own
transpose rules: :data:`window_sum_p` (transpose: every input element gathers the window
sums it belongs to, computed phase by phase of the stride as stride-1 window sums of the
cotangent, then interleaved), :data:`select_tap_p` (the element at each window's chosen
tap; the tangent of the max) and its transpose :data:`scatter_tap_p`. So forward mode,
reverse mode, ``vmap`` and higher derivatives all work, and no backward pass goes
through XLA's ``select_and_scatter_add`` or interior padding.

**What a max-pooling gradient stores.** Each stage's scan gives, in one loop, its window
maxima (the next stage's input, and the last stage's are the output) and its chosen taps
in the narrowest integer type (int8 up to 127 taps); the backward pass reads the choices
once per tap. A separable 5x5 max pooling is four passes: two scans forward, two
scatters backward.
"""

from __future__ import annotations

import abc
import functools
import itertools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpool import _jax_internals as internals
from jaxpool import _kernel_common as common
from jaxpool._geometry import AxisWindows, along
from jaxpool._jax_internals import Primitive
from jaxpool._kernel_common import (
    Stage,
    divisor_array,
    flat_index,
    log_path,
    lowest,
    pad_axis,
    tap_coordinates,
)

# Tiling windows at least this long are reduced by reshape + axis reduction (``blocks``)
# rather than by combining strided slices (measured faster for 2x2 and 3x3 on XLA:CPU).
BLOCKS_MIN_KERNEL = 4


def plan_stages(axes, windows, *, joint_blocks: bool = False) -> tuple[Stage, ...]:
    """:func:`jaxpool._kernel_common.plan_stages` with this family's ``blocks`` threshold."""
    return common.plan_stages(
        axes, windows, joint_blocks=joint_blocks, blocks_min_kernel=BLOCKS_MIN_KERNEL
    )


# ----------------------------------------------------------------------------------
# Helpers of every kind


def _sum(terms: Sequence[jax.Array]) -> jax.Array:
    """The sum of one or more arrays, in order."""
    return functools.reduce(jnp.add, terms)


def _maximum(values: Sequence[jax.Array]) -> jax.Array:
    """The elementwise maximum of one or more arrays (NaN propagates)."""
    return functools.reduce(jnp.maximum, values)


def _choice_dtype(stage: Stage) -> np.dtype:
    """The narrowest integer type that holds every tap number of ``stage``.

    The chosen taps are stored between the forward and the backward pass and read once
    per tap there: int8 (up to 127 taps) moves a quarter of int32's bytes.
    """
    taps = math.prod(w.kernel for w in stage.windows)
    return np.dtype(next(t for t in (np.int8, np.int16, np.int32) if taps <= np.iinfo(t).max))


def _materialize(values: jax.Array) -> jax.Array:
    """Returns ``values`` unchanged, computed once into memory (see
    :func:`_materialize_choices`); NaN stays NaN."""

    def keep(a, b):  # either copy, or the one that is not the initial value
        return lax.select((a != a) | (a > b), a, b)

    return lax.reduce(
        jnp.stack([values, values]), np.array(lowest(values.dtype), values.dtype), keep, (0,)
    )


def _materialize_choices(maxima: jax.Array, chosen: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns a stage's window maxima and chosen taps unchanged, computed once into
    memory by one loop.

    A variadic reduction over a stack of two copies makes XLA emit both from one loop
    over the scan that computes them (two plain outputs would each run the scan), and
    keeps it from fusing the scan into consumers that read each element several times;
    an optimization barrier does not survive XLA's CPU pipeline. (A plain ``jnp.max``
    over a stack would go to YNNPACK in XLA:CPU from jax 0.8 on, which does not fuse it
    and reads 8-bit stacks many times slower.)
    """

    def keep(a, b):
        # Either copy: the initial value's tap number is below every tap's. The choice
        # also compares the values (equal in the two copies), so that XLA cannot split
        # the reduction into one per output and fuse the taps' half into its consumers.
        # lax.select, not jnp.where: jnp.where may lower to a function call, which XLA
        # cannot compile inside a reduction's body.
        (a_value, a_tap), (b_value, b_tap) = a, b
        take_a = (a_tap > b_tap) | ((a_tap == b_tap) & (a_value > b_value))
        return lax.select(take_a, a_value, b_value), lax.select(take_a, a_tap, b_tap)

    initial = (
        np.array(lowest(maxima.dtype), maxima.dtype),
        np.array(np.iinfo(chosen.dtype).min, chosen.dtype),
    )
    return lax.reduce(
        (jnp.stack([maxima, maxima]), jnp.stack([chosen, chosen])), initial, keep, (0,)
    )


def _first_max(values: Sequence[tuple], nan_aware: bool) -> tuple[jax.Array, jax.Array]:
    """The maximum of ``(number, tap values[, real])`` entries and the number torch
    chooses.

    The first entry starts the scan (so an all -inf window points at its first real
    element); a later one replaces the choice when it is greater (so ties keep the first
    maximum) or, with ``nan_aware``, NaN (so a NaN window ends at its last NaN). An
    entry's ``real`` (a static mask, or None: everywhere) says where it is an input
    element: padding never replaces a real choice, and a real element always replaces
    padding.
    """
    number, best, *rest = values[0]
    chosen = jnp.full(best.shape, number, jnp.int32)
    have_real = rest[0] if rest and rest[0] is not None else None
    for number, value, *rest in values[1:]:
        real = rest[0] if rest else None
        better = value > best
        if nan_aware:
            better = better | jnp.isnan(value)
        if real is not None:
            better = better & real
        if have_real is not None:
            better = better | (~have_real & (True if real is None else real))
            have_real = None if real is None else have_real | real
        best = jnp.where(better, value, best)
        chosen = jnp.where(better, number, chosen)
    return best, chosen


def _tap_number(stage: Stage, tap: tuple[int, ...]) -> int:
    number = 0
    for w, j in zip(stage.windows, tap, strict=True):
        number = number * w.kernel + j
    return number


def _nested(counts: Sequence[int], parts: dict, join: Callable) -> jax.Array:
    """Joins ``parts[index]`` (``index`` over every combination of ``range(count)`` per
    level) level by level: ``join(level, pieces)`` joins the pieces of one level."""

    def build(prefix: list[int], level: int) -> jax.Array:
        if level == len(counts):
            return parts[tuple(prefix)]
        return join(level, [build([*prefix, i], level + 1) for i in range(counts[level])])

    return build([], 0)


# ----------------------------------------------------------------------------------
# Stage kinds


class _StageKind(abc.ABC):
    """How this family computes each window operation over one kind of stage.

    Every method takes the stage (static) and arrays laid out as the op's: inputs have
    the stage axes at input length, outputs (and chosen taps) at window count.
    """

    @abc.abstractmethod
    def sum(self, x: jax.Array, stage: Stage) -> jax.Array:
        """Sum of the valid elements of each window."""

    @abc.abstractmethod
    def sum_transpose(self, c: jax.Array, stage: Stage) -> jax.Array:
        """Transpose of :meth:`sum`: each input element sums the windows holding it."""

    @abc.abstractmethod
    def max(self, x: jax.Array, stage: Stage) -> jax.Array:
        """Window maxima (NaN propagates), no index."""

    @abc.abstractmethod
    def max_choice(
        self, x: jax.Array, stage: Stage, nan_aware: bool
    ) -> tuple[jax.Array, jax.Array]:
        """Window maxima and the chosen tap (row-major number), as torch chooses.

        Ties keep the first maximum, an all -inf window points at its first real
        element and, with ``nan_aware``, a window holding NaN at its last NaN. Without
        ``nan_aware`` a window holding NaN gets an arbitrary choice: callers use it only
        when no window does.
        """

    @abc.abstractmethod
    def select(self, x: jax.Array, chosen: jax.Array, stage: Stage) -> jax.Array:
        """The element of each window at its chosen tap (row-major tap number)."""

    @abc.abstractmethod
    def scatter(
        self, c: jax.Array, chosen: jax.Array, stage: Stage, dense: jax.Array | None = None
    ) -> jax.Array:
        """Transpose of :meth:`select`: each window's value goes to its chosen tap.

        With ``dense`` (output-shaped), every element also receives the ``dense`` value
        of each window that holds it (the transpose of :meth:`sum`), in the same pass.
        """


# Tiling windows up to this long choose their maximum by a scan over the taps (a loop
# XLA:CPU vectorises); longer ones by reductions over a (windows, taps) split.
SCAN_TAPS_LIMIT = 64


def _expand_blocks(c: jax.Array, stage: Stage, tap_values=None) -> jax.Array:
    """Broadcasts window values over their taps and merges back to the input layout.

    ``tap_values(split_shape, tap_axes, expanded)`` may replace the broadcast values
    (e.g. keep only a chosen tap); the inverse of
    :func:`~jaxpool._kernel_common.split_blocks`'s padding is cut.
    """
    split_shape = []
    tap_axes = []
    for axis, length in enumerate(c.shape):
        split_shape.append(length)
        if axis in stage.axes:
            split_shape.append(stage.windows[stage.axes.index(axis)].kernel)
            tap_axes.append(len(split_shape) - 1)
    expanded = jnp.broadcast_to(jnp.expand_dims(c, tap_axes), split_shape)
    if tap_values is not None:
        expanded = tap_values(split_shape, tuple(tap_axes), expanded)
    merged_shape = list(c.shape)
    for axis, w in zip(stage.axes, stage.windows, strict=True):
        merged_shape[axis] = w.size * w.kernel
    merged = expanded.reshape(merged_shape)
    for axis, w in zip(stage.axes, stage.windows, strict=True):
        merged = pad_axis(merged, axis, -w.pad_lo, w.length + w.pad_lo - w.size * w.kernel, 0)
    return merged


class _Blocks(_StageKind):
    """Windows that tile their axes: a reshape splits each axis into (windows, taps),
    and reductions over the tap axes do the work. Sums and plain maxima reduce several
    axes at once; the chosen tap, selection and scatter work on one axis."""

    def sum(self, x, stage):
        split, tap_axes = common.split_blocks(x, stage, 0)
        return jnp.sum(split, axis=tap_axes)

    def sum_transpose(self, c, stage):
        return _expand_blocks(c, stage)

    def max(self, x, stage):
        split, tap_axes = common.split_blocks(x, stage, lowest(x.dtype))
        return jnp.max(split, axis=tap_axes)

    def max_choice(self, x, stage, nan_aware):
        (w,) = stage.windows
        split, (tap_axis,) = common.split_blocks(x, stage, lowest(x.dtype))
        if w.tap_valid().all() and w.kernel <= SCAN_TAPS_LIMIT:
            # A scan, not a reduction: XLA:CPU hands reductions to YNNPACK, which cannot
            # fuse the comparisons and would materialise them at the input's size.
            taps = [lax.index_in_dim(split, j, tap_axis, keepdims=False) for j in range(w.kernel)]
            return _first_max(list(enumerate(taps)), nan_aware)
        best = jnp.max(split, axis=tap_axis)
        return best, common.first_max_in_blocks(split, tap_axis, best, stage, nan_aware=nan_aware)

    def select(self, x, chosen, stage):
        return common.select_in_blocks(x, chosen, stage)

    def scatter(self, c, chosen, stage, dense=None):
        zero = jnp.zeros((), c.dtype)

        def keep_chosen(split_shape, tap_axes, expanded):
            (tap_axis,) = tap_axes
            iota = lax.broadcasted_iota(jnp.int32, split_shape, tap_axis)
            hit = iota == jnp.expand_dims(chosen, tap_axis)
            return jnp.where(hit, expanded, zero)

        out = _expand_blocks(c, stage, keep_chosen)
        return out if dense is None else out + _expand_blocks(dense, stage)


@functools.lru_cache(maxsize=256)
def _adaptive_inverse(w: AxisWindows) -> tuple[np.ndarray, np.ndarray]:
    """For each input position, the windows that hold it: ``(length, count)`` indices
    (-1 where a position belongs to fewer windows)."""
    positions = w.tap_positions()
    valid = w.tap_valid()
    members: list[list[int]] = [[] for _ in range(w.length)]
    for i in range(w.size):
        for j in range(w.kernel):
            if valid[j, i]:
                members[positions[j, i]].append(i)
    count = max(len(m) for m in members)
    table = np.full((w.length, count), -1, np.int32)
    for position, owners in enumerate(members):
        table[position, : len(owners)] = owners
    return table, table >= 0


class _Adaptive(_StageKind):
    """torch's adaptive windows along one axis that do not tile it: each tap is a static
    gather (a short window repeats its last element, which sums count once); the
    transposes gather, for every input position, the windows that hold it."""

    @staticmethod
    def _tap(x: jax.Array, stage: Stage, j: int) -> jax.Array:
        ((axis,), (w,)) = stage.axes, stage.windows
        return jnp.take(x, jnp.asarray(w.tap_positions()[j], np.int32), axis=axis)

    def sum(self, x, stage):
        ((axis,), (w,)) = stage.axes, stage.windows
        valid = w.tap_valid()
        terms = []
        for j in range(w.kernel):
            value = self._tap(x, stage, j)
            if not valid[j].all():
                value = jnp.where(along(valid[j], axis, x.ndim), value, 0)
            terms.append(value)
        return _sum(terms)

    def sum_transpose(self, c, stage):
        ((axis,), (w,)) = stage.axes, stage.windows
        table, valid = _adaptive_inverse(w)
        terms = []
        for k in range(table.shape[1]):
            value = jnp.take(c, jnp.asarray(np.maximum(table[:, k], 0)), axis=axis)
            if not valid[:, k].all():
                value = jnp.where(along(valid[:, k], axis, c.ndim), value, 0)
            terms.append(value)
        return _sum(terms)

    def max(self, x, stage):
        return _maximum([self._tap(x, stage, j) for j in range(stage.windows[0].kernel)])

    def max_choice(self, x, stage, nan_aware):
        taps = [(j, self._tap(x, stage, j)) for j in range(stage.windows[0].kernel)]
        return _first_max(taps, nan_aware)

    def select(self, x, chosen, stage):
        cases = [self._tap(x, stage, j) for j in range(stage.windows[0].kernel)]
        return cases[0] if len(cases) == 1 else lax.select_n(chosen.astype(np.int32), *cases)

    def scatter(self, c, chosen, stage, dense=None):
        zero = jnp.zeros((), c.dtype)
        ((axis,), (w,)) = stage.axes, stage.windows
        table, valid = _adaptive_inverse(w)
        starts = w.tap_positions()[0]
        ends = w.tap_positions()[-1]
        position = along(np.arange(w.length), axis, c.ndim)
        terms = []
        for k in range(table.shape[1]):
            owner = jnp.asarray(np.maximum(table[:, k], 0))
            owner_chosen = jnp.take(chosen, owner, axis=axis)
            target = jnp.minimum(
                along(starts[np.maximum(table[:, k], 0)], axis, c.ndim) + owner_chosen,
                along(ends[np.maximum(table[:, k], 0)], axis, c.ndim),
            )
            value = jnp.where(target == position, jnp.take(c, owner, axis=axis), zero)
            if dense is not None:
                value = value + jnp.take(dense, owner, axis=axis)
            if not valid[:, k].all():
                value = jnp.where(along(valid[:, k], axis, c.ndim), value, zero)
            terms.append(value)
        return _sum(terms)


# An axis whose windows fall into more runs than this (long kernels with padding: one run
# per border output) keeps three blocks: each border's outputs together, their taps
# padded, and the interior. Many blocks keep XLA from fusing their concatenation (it
# writes each block, then copies them), and a tap padded in a small border block costs
# little.
MAX_RUNS = 5


@functools.lru_cache(maxsize=1024)
def _segments(w: AxisWindows) -> tuple[tuple[int, int, tuple[int, ...], bool], ...]:
    """Runs of outputs ``[o0, o1)`` and the taps computed there: ``(o0, o1, taps,
    padded)``. A run whose outputs have the same valid taps computes just those
    (``padded`` False); a merged border run computes every tap valid in one of its
    outputs, padded where an output's tap lies outside the input (``padded`` True)."""
    valid = w.tap_valid()
    runs = []
    start = 0
    for o in range(1, w.size + 1):
        if o == w.size or not np.array_equal(valid[:, o], valid[:, start]):
            runs.append((start, o, tuple(np.flatnonzero(valid[:, start]).tolist()), False))
            start = o
    full = [i for i, (o0, o1, taps, _) in enumerate(runs) if len(taps) == w.kernel]
    if len(runs) <= MAX_RUNS or not full:
        return tuple(runs)
    interior = max(full, key=lambda i: runs[i][1] - runs[i][0])

    def merged(part):
        if len(part) < 2:
            return part
        taps = sorted({j for _, _, run_taps, _ in part for j in run_taps})
        return [(part[0][0], part[-1][1], tuple(taps), True)]

    return (*merged(runs[:interior]), runs[interior], *merged(runs[interior + 1 :]))


def _blocks_of(stage: Stage):
    """Every border block of a taps stage: (index, per-axis (o0, o1, valid taps))."""
    runs = [_segments(w) for w in stage.windows]
    for index in itertools.product(*(range(len(r)) for r in runs)):
        yield index, [runs[level][i] for level, i in enumerate(index)]


def _block_tap(x: jax.Array, stage: Stage, block, tap, fill=0) -> jax.Array:
    """Tap ``tap`` of the windows of one block: a strided slice of ``x``; in a merged
    border block, padded with ``fill`` where the tap lies outside the input."""
    start = [0] * x.ndim
    limit = list(x.shape)
    strides = [1] * x.ndim
    pads = [(0, 0, 0)] * x.ndim
    for axis, w, (o0, o1, _, padded), j in zip(
        stage.axes, stage.windows, block, tap, strict=True
    ):
        first = o0 * w.stride - w.pad_lo + j * w.dilation
        count = o1 - o0
        if padded:  # positions first + i * stride (i < count) outside [0, length)
            positions = first + np.arange(count) * w.stride
            inside = np.flatnonzero((positions >= 0) & (positions < w.length))
            if not inside.size:
                return jnp.full(_block_shape(x.shape, stage, block), fill, x.dtype)
            pads[axis] = (int(inside[0]), count - 1 - int(inside[-1]), 0)
            first, count = int(positions[inside[0]]), inside.size
        start[axis] = first
        limit[axis] = first + (count - 1) * w.stride + 1
        strides[axis] = w.stride
    values = lax.slice(x, start, limit, strides)
    if any(pad != (0, 0, 0) for pad in pads):
        values = lax.pad(values, jnp.asarray(fill, x.dtype), pads)
    return values


def _block_real(stage: Stage, block, tap, ndim: int) -> np.ndarray | None:
    """Where tap ``tap`` is an input element in a merged border block (None: all)."""
    real = None
    for axis, w, (o0, o1, _, padded), j in zip(
        stage.axes, stage.windows, block, tap, strict=True
    ):
        if padded:
            row = along(w.tap_valid()[j, o0:o1], axis, ndim)
            real = row if real is None else real & row
    return real


def _block_of(x: jax.Array, stage: Stage, block) -> jax.Array:
    """The part of an output-shaped array that belongs to one block."""
    start = [0] * x.ndim
    limit = list(x.shape)
    for axis, (o0, o1, _, _) in zip(stage.axes, block, strict=True):
        start[axis], limit[axis] = o0, o1
    return lax.slice(x, start, limit)


def _block_shape(shape, stage: Stage, block) -> tuple[int, ...]:
    shape = list(shape)
    for axis, (o0, o1, _, _) in zip(stage.axes, block, strict=True):
        shape[axis] = o1 - o0
    return tuple(shape)


def _valid_in_block(block, tap) -> bool:
    return all(j in valid for (_, _, valid, _), j in zip(block, tap, strict=True))


def _assemble(parts: dict, stage: Stage) -> jax.Array:
    """Joins per-block arrays back into one output by nested concatenation."""

    def join(level: int, pieces: list[jax.Array]) -> jax.Array:
        return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, stage.axes[level])

    return _nested([len(_segments(w)) for w in stage.windows], parts, join)


@functools.lru_cache(maxsize=1024)
def _phases(w: AxisWindows) -> tuple[tuple[int, AxisWindows | None, tuple[int, ...]], ...]:
    """The transpose of a strided window, phase by phase of the stride.

    Input position ``s*m + r`` (phase ``r``) receives, from tap ``j`` with
    ``j*d - pad = s*q + r``, the value of window ``m - q``. So phase ``r`` is a stride-1
    window over the output axis whose taps are those ``j`` (in increasing position of
    the window they read). Returns per phase: (its length, that window or None when no
    tap lands on the phase, the original taps in the window's tap order). Rows past the
    input hold garbage for sums (never for the chosen taps) and are cut off.
    """
    phases: list[tuple[int, AxisWindows | None, tuple[int, ...]]] = []
    # Every phase gets ceil(L / s) rows, so that the phases interleave by a plain reshape;
    # rows past the input's end are cut off after interleaving.
    length = -(-w.length // w.stride)
    for r in range(w.stride):
        taps = [j for j in range(w.kernel) if (j * w.dilation - w.pad_lo) % w.stride == r]
        if not taps:
            phases.append((length, None, ()))
            continue
        offsets = {j: -((j * w.dilation - w.pad_lo - r) // w.stride) for j in taps}
        order = sorted(taps, key=lambda j: offsets[j])
        step = offsets[order[1]] - offsets[order[0]] if len(order) > 1 else 1
        window = AxisWindows(
            length=w.size,
            size=length,
            kernel=len(order),
            stride=1,
            dilation=step,
            pad_lo=-offsets[order[0]],
        )
        phases.append((length, window, tuple(order)))
    return tuple(phases)


def _interleave(parts: dict, stage: Stage) -> jax.Array:
    """Joins phase arrays back into input order along each stage axis."""

    def join(level: int, pieces: list[jax.Array]) -> jax.Array:
        axis, w = stage.axes[level], stage.windows[level]
        rows = -(-w.length // w.stride)
        if w.stride == 1:
            return pieces[0]
        stacked = jnp.stack(pieces, axis=axis + 1)
        shape = list(stacked.shape)
        shape[axis : axis + 2] = [rows * w.stride]
        joined = stacked.reshape(shape)
        if rows * w.stride != w.length:
            joined = lax.slice_in_dim(joined, 0, w.length, 1, axis)
        return joined

    return _nested([w.stride for w in stage.windows], parts, join)


def _phase_stage(stage: Stage, choice) -> tuple[Stage, tuple[int, ...], list[tuple[int, ...]]]:
    """The stride-1 stage of one phase combination, its shape, and original taps."""
    per_axis = [_phases(w)[r] for w, r in zip(stage.windows, choice, strict=True)]
    windows = tuple(p[1] for p in per_axis)
    lengths = tuple(p[0] for p in per_axis)
    return Stage("taps", stage.axes, windows), lengths, [p[2] for p in per_axis]


# Strides above this use the tiled transpose (one fused pass over all taps) instead of
# phase by phase: past it XLA materialises every phase before interleaving them.
PHASE_STRIDE_LIMIT = 3


def _tiled_transpose(
    c: jax.Array, chosen: jax.Array | None, stage: Stage, dense: jax.Array | None = None
) -> jax.Array:
    """Transpose of a strided taps stage in one pass over a tiled layout.

    Each stage axis of the input is viewed as (rows, stride); input element (m, r) of
    tap ``j`` (with ``j*d - pad = s*q + r``) receives window ``m - q``. Every tap adds its
    term, masked to its phase (and, with ``chosen``, to the windows that chose it).
    """
    layout, pads = [], []
    for axis, w in zip(stage.axes, stage.windows, strict=True):
        rows = -(-w.length // w.stride)
        shifts = [divmod(j * w.dilation - w.pad_lo, w.stride) for j in range(w.kernel)]
        lo = max(0, max(q for q, _ in shifts))
        hi = max(0, rows - 1 - min(q for q, _ in shifts) - (w.size - 1))
        pads.append((axis, lo, hi))
        layout.append((rows, shifts, lo))

    def padded(array: jax.Array, fill) -> jax.Array:
        for axis, lo, hi in pads:
            array = pad_axis(array, axis, lo, hi, fill)
        return array

    padded_c = padded(c, 0)
    padded_chosen = None if chosen is None else padded(chosen, -1)  # -1 matches no tap
    padded_dense = None if dense is None else padded(dense, 0)
    tiled_shape, unit_shape, phase_axes = [], [], []
    for axis, length in enumerate(c.shape):
        if axis in stage.axes:
            rows, _, _ = layout[stage.axes.index(axis)]
            tiled_shape += [rows, stage.windows[stage.axes.index(axis)].stride]
            phase_axes.append(len(tiled_shape) - 1)
            unit_shape += [rows, 1]
        else:
            tiled_shape.append(length)
            unit_shape.append(length)
    terms = []
    for number, tap in enumerate(stage.taps):
        start = [0] * c.ndim
        limit = list(padded_c.shape)
        hits = []
        for level, (axis, j) in enumerate(zip(stage.axes, tap, strict=True)):
            rows, shifts, lo = layout[level]
            q, r = shifts[j]
            start[axis], limit[axis] = lo - q, lo - q + rows
            phase = lax.broadcasted_iota(jnp.int32, tiled_shape, phase_axes[level]) == r
            hits.append(phase)
        value = lax.slice(padded_c, start, limit).reshape(unit_shape)
        if padded_chosen is not None:
            chosen_here = lax.slice(padded_chosen, start, limit).reshape(unit_shape) == number
            value = jnp.where(chosen_here, value, jnp.zeros((), c.dtype))
        if padded_dense is not None:
            value = value + lax.slice(padded_dense, start, limit).reshape(unit_shape)
        hit = functools.reduce(jnp.logical_and, hits)
        terms.append(jnp.where(hit, value, jnp.zeros((), c.dtype)))
    merged = list(c.shape)
    for axis, (rows, _, _), w in zip(stage.axes, layout, stage.windows, strict=True):
        merged[axis] = rows * w.stride
    out = _sum(terms).reshape(merged)
    for axis, w in zip(stage.axes, stage.windows, strict=True):
        if out.shape[axis] != w.length:
            out = lax.slice_in_dim(out, 0, w.length, 1, axis)
    return out


def _phase_shape(shape, stage: Stage, lengths) -> list[int]:
    shape = list(shape)
    for axis, length in zip(stage.axes, lengths, strict=True):
        shape[axis] = length
    return shape


class _Taps(_StageKind):
    """Regular windows whose every tap is a strided slice of the input, cut into border
    blocks (:func:`_blocks_of`) so that few taps are padded. The transposes run phase by
    phase of the stride (stride-1 windows over the cotangent, then interleaved), or for
    strides past :data:`PHASE_STRIDE_LIMIT` in one pass over a tiled layout."""

    def sum(self, x, stage):
        parts = {}
        for index, block in _blocks_of(stage):
            terms = [
                _block_tap(x, stage, block, tap)
                for tap in stage.taps
                if _valid_in_block(block, tap)
            ]
            # A transposed window may hold no element (inputs that no window reads).
            empty = jnp.zeros(_block_shape(x.shape, stage, block), x.dtype) if not terms else None
            parts[index] = _sum(terms) if empty is None else empty
        return _assemble(parts, stage)

    def sum_transpose(self, c, stage):
        if max(w.stride for w in stage.windows) > PHASE_STRIDE_LIMIT:
            return _tiled_transpose(c, None, stage)
        parts = {}
        for choice in itertools.product(*(range(w.stride) for w in stage.windows)):
            phase, lengths, _ = _phase_stage(stage, choice)
            if any(w is None for w in phase.windows):
                parts[choice] = jnp.zeros(_phase_shape(c.shape, stage, lengths), c.dtype)
            else:
                parts[choice] = self.sum(c, phase)
        return _interleave(parts, stage)

    def max(self, x, stage):
        parts = {}
        for index, block in _blocks_of(stage):
            parts[index] = _maximum([
                _block_tap(x, stage, block, tap, lowest(x.dtype))
                for tap in stage.taps
                if _valid_in_block(block, tap)
            ])
        return _assemble(parts, stage)

    def max_choice(self, x, stage, nan_aware):
        best_parts, chosen_parts = {}, {}
        for index, block in _blocks_of(stage):
            best_parts[index], chosen_parts[index] = _first_max(
                [
                    (
                        _tap_number(stage, tap),
                        _block_tap(x, stage, block, tap, lowest(x.dtype)),
                        _block_real(stage, block, tap, x.ndim),
                    )
                    for tap in stage.taps
                    if _valid_in_block(block, tap)
                ],
                nan_aware,
            )
        return _assemble(best_parts, stage), _assemble(chosen_parts, stage)

    def select(self, x, chosen, stage):
        parts = {}
        for index, block in _blocks_of(stage):
            shape = _block_shape(x.shape, stage, block)
            cases = [
                _block_tap(x, stage, block, tap)
                if _valid_in_block(block, tap)
                else jnp.zeros(shape, x.dtype)
                for tap in stage.taps
            ]
            if len(cases) == 1:
                parts[index] = cases[0]
            else:
                which = _block_of(chosen, stage, block).astype(np.int32)
                parts[index] = lax.select_n(which, *cases)
        return _assemble(parts, stage)

    def scatter(self, c, chosen, stage, dense=None):
        zero = jnp.zeros((), c.dtype)
        if max(w.stride for w in stage.windows) > PHASE_STRIDE_LIMIT:
            return _tiled_transpose(c, chosen, stage, dense)
        parts = {}
        for choice in itertools.product(*(range(w.stride) for w in stage.windows)):
            phase, lengths, originals = _phase_stage(stage, choice)
            shape = _phase_shape(c.shape, stage, lengths)
            if any(w is None for w in phase.windows):
                parts[choice] = jnp.zeros(shape, c.dtype)
                continue
            blocks = {}
            for index, block in _blocks_of(phase):
                terms = []
                for ptap in phase.taps:
                    if not _valid_in_block(block, ptap):
                        continue
                    tap = tuple(order[k] for order, k in zip(originals, ptap, strict=True))
                    hit = _block_tap(chosen, phase, block, ptap, -1) == _tap_number(stage, tap)
                    value = jnp.where(hit, _block_tap(c, phase, block, ptap), zero)
                    if dense is not None:
                        value = value + _block_tap(dense, phase, block, ptap)
                    terms.append(value)
                blocks[index] = (
                    _sum(terms) if terms else jnp.zeros(_block_shape(shape, phase, block), c.dtype)
                )
            parts[choice] = _assemble(blocks, phase)
        return _interleave(parts, stage)


_KINDS: dict[str, _StageKind] = {"taps": _Taps(), "blocks": _Blocks(), "adaptive": _Adaptive()}


def _kind(stage: Stage) -> _StageKind:
    """The implementation of a stage's kind."""
    return _KINDS[stage.kind]


# ----------------------------------------------------------------------------------
# The hybrid's mix of a chosen element and a window sum


def _mix_impl(x, chosen, tap_weight, sum_weight, stage: Stage) -> jax.Array:
    """``tap_weight * select(x) + sum_weight * window_sum(x)`` (the hybrid's tangent)."""
    kind = _kind(stage)
    return tap_weight * kind.select(x, chosen, stage) + sum_weight * kind.sum(x, stage)


def _mix_transpose_impl(c, chosen, tap_weight, sum_weight, stage: Stage) -> jax.Array:
    """Transpose of :func:`_mix_impl` in x, in one pass over the input.

    Each window sends ``c * (tap_weight + sum_weight)`` to its chosen element and
    ``c * sum_weight`` to the others.
    """
    return _kind(stage).scatter(c * tap_weight, chosen, stage, dense=c * sum_weight)


# ----------------------------------------------------------------------------------
# Linear maps: primitives with transpose rules


def _jitted(impl: Callable) -> Callable:
    return jax.jit(impl, static_argnames=("stage",))


def _linear_primitive(name: str, impl: Callable, out_shape: Callable) -> Primitive:
    primitive = Primitive(name)
    primitive.def_impl(_jitted(impl))
    primitive.def_abstract_eval(
        lambda x, *rest, stage: internals.ShapedArray(out_shape(stage, x.shape), x.dtype)
    )
    internals.lowered_by(primitive, impl, multiple_results=False)
    return primitive


window_sum_p = _linear_primitive(
    "jaxpool_window_sum",
    lambda x, *, stage: _kind(stage).sum(x, stage),
    lambda s, shape: s.out_shape(shape),
)
window_sum_transpose_p = _linear_primitive(
    "jaxpool_window_sum_transpose",
    lambda c, *, stage: _kind(stage).sum_transpose(c, stage),
    lambda s, shape: s.in_shape(shape),
)
select_tap_p = _linear_primitive(
    "jaxpool_select_tap",
    lambda x, chosen, *, stage: _kind(stage).select(x, chosen, stage),
    lambda s, shape: s.out_shape(shape),
)
scatter_tap_p = _linear_primitive(
    "jaxpool_scatter_tap",
    lambda c, chosen, *, stage: _kind(stage).scatter(c, chosen, stage),
    lambda s, shape: s.in_shape(shape),
)

internals.define_linear(
    window_sum_p, lambda ct, x, *, stage: [window_sum_transpose_p.bind(ct, stage=stage)]
)
internals.define_linear(
    window_sum_transpose_p, lambda ct, c, *, stage: [window_sum_p.bind(ct, stage=stage)]
)


window_mix_p = _linear_primitive(
    "jaxpool_window_mix",
    lambda x, chosen, tap_weight, sum_weight, *, stage: _mix_impl(
        x, chosen, tap_weight, sum_weight, stage
    ),
    lambda s, shape: s.out_shape(shape),
)
window_mix_transpose_p = _linear_primitive(
    "jaxpool_window_mix_transpose",
    lambda c, chosen, tap_weight, sum_weight, *, stage: _mix_transpose_impl(
        c, chosen, tap_weight, sum_weight, stage
    ),
    lambda s, shape: s.in_shape(shape),
)


def _mix_jvp(primitive: Primitive):
    # Both mixes are bilinear in (values, (tap_weight, sum_weight)). JAX calls a JVP
    # rule only when some tangent is nonzero, so at least one term below exists.
    def jvp(primals, tangents, *, stage):
        x, chosen, tap_weight, sum_weight = primals
        dx, _, d_tap, d_sum = tangents
        out = primitive.bind(x, chosen, tap_weight, sum_weight, stage=stage)
        terms = []
        if not internals.is_zero(dx):
            terms.append(primitive.bind(dx, chosen, tap_weight, sum_weight, stage=stage))
        if not (internals.is_zero(d_tap) and internals.is_zero(d_sum)):
            d_tap = internals.instantiate_zeros(d_tap)
            d_sum = internals.instantiate_zeros(d_sum)
            terms.append(primitive.bind(x, chosen, d_tap, d_sum, stage=stage))
        return out, functools.reduce(jnp.add, terms)

    return jvp


def _mix_transpose(other: Primitive, forward: bool):
    def transpose(ct, x, chosen, tap_weight, sum_weight, *, stage):
        if internals.is_zero(ct):
            return [None] * 4
        if internals.is_undefined_primal(x):
            return [other.bind(ct, chosen, tap_weight, sum_weight, stage=stage), None, None, None]
        # Linear in the weights: the mix of x is tap_weight * a + sum_weight * b with
        # a, b the selected elements and window sums (forward), or their transposes.
        values = x if forward else ct
        taps = _kind(stage).select(values, chosen, stage)
        sums = _kind(stage).sum(values, stage)
        factor = ct if forward else x
        d_tap = factor * taps if internals.is_undefined_primal(tap_weight) else None
        d_sum = factor * sums if internals.is_undefined_primal(sum_weight) else None
        return [None, None, d_tap, d_sum]

    return transpose


internals.define_jvp(window_mix_p, _mix_jvp(window_mix_p))
internals.define_jvp(window_mix_transpose_p, _mix_jvp(window_mix_transpose_p))
internals.define_transpose(window_mix_p, _mix_transpose(window_mix_transpose_p, forward=True))
internals.define_transpose(window_mix_transpose_p, _mix_transpose(window_mix_p, forward=False))


def _tap_jvp(primitive: Primitive):
    # The chosen taps are integers (their tangent is always zero), so JAX calls this
    # rule only with a nonzero ``dx``.
    def jvp(primals, tangents, *, stage):
        x, chosen = primals
        dx, _ = tangents
        out = primitive.bind(x, chosen, stage=stage)
        return out, primitive.bind(internals.instantiate_zeros(dx), chosen, stage=stage)

    return jvp


def _tap_transpose(other: Primitive):
    def transpose(ct, x, chosen, *, stage):
        if internals.is_undefined_primal(chosen):
            raise ValueError("jaxpool: the chosen taps of a window are not differentiable")
        if internals.is_zero(ct):
            return [None, None]
        return [other.bind(ct, chosen, stage=stage), None]

    return transpose


internals.define_jvp(select_tap_p, _tap_jvp(select_tap_p))
internals.define_jvp(scatter_tap_p, _tap_jvp(scatter_tap_p))
internals.define_transpose(select_tap_p, _tap_transpose(scatter_tap_p))
internals.define_transpose(scatter_tap_p, _tap_transpose(select_tap_p))


def _batch_rule(primitive: Primitive):
    def rule(arguments, dims, *, stage):
        size = next(a.shape[d] for a, d in zip(arguments, dims, strict=True) if d is not None)
        moved = []
        for a, d in zip(arguments, dims, strict=True):
            if d is None:
                moved.append(jnp.broadcast_to(a, (size, *a.shape)))
            else:
                moved.append(jnp.moveaxis(a, d, 0))
        return primitive.bind(*moved, stage=stage.shifted(1)), 0

    return rule


for _primitive in (
    window_sum_p,
    window_sum_transpose_p,
    select_tap_p,
    scatter_tap_p,
    window_mix_p,
    window_mix_transpose_p,
):
    internals.define_batching(_primitive, _batch_rule(_primitive))


# ----------------------------------------------------------------------------------
# Sums and averages


def window_sum(x: jax.Array, axes: Sequence[int], windows: Sequence[AxisWindows]) -> jax.Array:
    """Float32 sum of each window (float64 for float64 input); padding adds nothing.

    Args:
      x: input.
      axes: the spatial axes of ``x``, one per window description.
      windows: the windows along each axis.

    Returns:
      ``x`` with each spatial axis replaced by its window count.
    """
    x = x.astype(common.accumulation_dtype(x.dtype))
    for stage in plan_stages(axes, windows, joint_blocks=True):
        log_path(f"sum:{stage.kind}")
        x = window_sum_p.bind(x, stage=stage)
    return x


# ``window_average(x, axes, windows, divisor)``: the sums divided as torch divides them
# (:func:`jaxpool._kernel_common.average_of_sums`), in ``x``'s dtype.
window_average = functools.partial(common.window_average, window_sum)


# ----------------------------------------------------------------------------------
# Maxima


def _staged_choices(x: jax.Array, stages: tuple[Stage, ...], want_index: bool, nan_aware: bool):
    """The final window maxima, every stage's chosen taps (narrow integers) and, with
    ``want_index``, the input coordinates of each window's maximum.

    Each stage's scan gives its maxima and choices in one loop (:func:`_materialize_choices`);
    its maxima are the next stage's input. The maxima are torch's values, the first of
    equal elements (``-0.0`` or ``+0.0`` as torch returns them).
    """
    nan_aware = nan_aware and jnp.issubdtype(x.dtype, jnp.floating)
    coords: dict[int, jax.Array] = {}
    choices = []
    for stage in stages:
        best, chosen = _kind(stage).max_choice(x, stage, nan_aware)
        x, stored = _materialize_choices(best, chosen.astype(_choice_dtype(stage)))
        choices.append(stored)
        if want_index:
            coords = {axis: _kind(stage).select(c, chosen, stage) for axis, c in coords.items()}
            coords.update(tap_coordinates(stage, chosen, x.ndim))
    return x, tuple(choices), coords


def _max_with_choices(
    x: jax.Array, stages: tuple[Stage, ...], want_index: bool, maxima: jax.Array | None
) -> tuple[jax.Array, tuple[jax.Array, ...], dict[int, jax.Array]]:
    """:func:`_staged_choices`: the maxima, every stage's chosen taps and, with
    ``want_index``, input coordinates.

    ``maxima`` are the final window maxima (NaN where a window holds NaN), if known.
    Where a stage tiles its axis (``blocks``: global and divisible adaptive pooling,
    long tiling windows), the choices look for NaN only when one of the maxima is NaN
    (a ``lax.cond``): torch's rule for NaN windows costs a comparison and a select per
    tap that other inputs do not need, and there the scan is a pass of its own anyway.

    Not differentiable (the callers differentiate :func:`_max_values`): the choices are
    integers, materialised so that a backward pass reads them instead of recomputing
    the comparisons for every input element.
    """
    x = lax.stop_gradient(x)
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    if not _checks_nan_first(stages, x.dtype):
        # Taps and gathers: the NaN rule is a comparison and a select per tap inside
        # the scan, which a conditional would split (measured 40-70 % slower for 2x2
        # and 3x3 windows).
        return _staged_choices(x, stages, want_index, nan_aware=floating)
    if maxima is None:
        maxima = _max_values(x, stages)
    has_nan = jnp.any(jnp.isnan(lax.stop_gradient(maxima)))
    return lax.cond(
        has_nan,
        functools.partial(_staged_choices, stages=stages, want_index=want_index, nan_aware=True),
        functools.partial(_staged_choices, stages=stages, want_index=want_index, nan_aware=False),
        x,
    )


def _checks_nan_first(stages: tuple[Stage, ...], dtype) -> bool:
    """Whether :func:`_max_with_choices` first looks for NaN among the maxima (floats
    with a ``blocks`` stage)."""
    return jnp.issubdtype(dtype, jnp.floating) and any(s.kind == "blocks" for s in stages)


def _joined_blocks(stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
    """Merges neighbouring single-axis blocks stages (one reduction for plain maxima)."""
    joined: list[Stage] = []
    for stage in stages:
        if stage.kind == "blocks" and joined and joined[-1].kind == "blocks":
            last = joined.pop()
            stage = Stage("blocks", stage.axes + last.axes, stage.windows + last.windows)
        joined.append(stage)
    return tuple(joined)


# Plain maxima (no choice) over up to this many taps are one joint stage even where the
# choices are separable: a 5x5 window's 24 maxima per element cost less than writing and
# reading back an intermediate of the input's size (2.5x faster, (16, 40, 40, 256) f32).
VALUES_JOINT_TAPS_LIMIT = 25


def _value_stages(stages: tuple[Stage, ...], dtype) -> tuple[Stage, ...]:
    """Stages for plain maxima: tiling windows of 16-bit floats go through one reshape
    reduction (XLA's strided slices of bfloat16 are about twice slower); separable taps
    stages of at most :data:`VALUES_JOINT_TAPS_LIMIT` taps in all, through one joint
    stage."""
    windows = [w for stage in stages for w in stage.windows]
    if jnp.dtype(dtype).itemsize < 4 and all(w.is_blocks for w in windows):
        axes = tuple(a for stage in reversed(stages) for a in stage.axes)
        ordered = tuple(w for stage in reversed(stages) for w in stage.windows)
        return (Stage("blocks", axes, ordered),)
    if len(stages) > 1 and all(stage.kind == "taps" for stage in stages):
        if math.prod(w.kernel for w in windows) <= VALUES_JOINT_TAPS_LIMIT:
            axes = tuple(a for stage in reversed(stages) for a in stage.axes)
            ordered = tuple(w for stage in reversed(stages) for w in stage.windows)
            return (Stage("taps", axes, ordered),)
    return _joined_blocks(stages)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max_values(x: jax.Array, stages: tuple[Stage, ...]) -> jax.Array:
    for stage in _value_stages(stages, x.dtype):
        x = _kind(stage).max(x, stage)
    if stage.kind == "taps":
        # Computed once into memory: XLA would otherwise fuse the taps into a consumer
        # that reads each element many times (the next max pooling of a cascade, as in
        # YOLO's SPPF: 25 x 25 taps per element, measured 30x slower).
        x = _materialize(x)
    return x


@_max_values.defjvp
def _max_values_jvp(stages, primals, tangents):
    (x,), (dx,) = primals, tangents
    # Where the choices need the maxima first, the plain reduction gives them. Otherwise
    # the choices' scans give them too: the same operations on the same input, which
    # XLA computes once (a plain reduction would be another pass over the input).
    # Either way the maxima are differentiable functions of ``x`` with this rule, so
    # higher derivatives follow torch's rule too.
    if _checks_nan_first(stages, x.dtype):
        out = _max_values(x, stages)
        _, choices, _ = _max_with_choices(x, stages, want_index=False, maxima=out)
    else:
        out = _scanned_maxima(x, stages)
        _, choices, _ = _max_with_choices(x, stages, want_index=False, maxima=None)
    for stage, chosen in zip(stages, choices, strict=True):
        dx = select_tap_p.bind(dx, chosen, stage=stage)
    return out, dx


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _scanned_maxima(x: jax.Array, stages: tuple[Stage, ...]) -> jax.Array:
    """The window maxima as the choices' scans give them (see :func:`_max_values_jvp`)."""
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    return _staged_choices(x, stages, want_index=False, nan_aware=floating)[0]


_scanned_maxima.defjvp(_max_values_jvp)


def window_max(
    x: jax.Array,
    axes: Sequence[int],
    windows: Sequence[AxisWindows],
    *,
    return_index: bool = False,
):
    """Maximum of each window with torch's semantics; optionally its flat index.

    Padding never wins (it is left out of every window). Ties go to the first element in
    row-major window order; a window holding NaN gives NaN and points at its last NaN.
    The gradient follows the index (torch's rule), also for dilated windows, which JAX
    itself cannot differentiate.

    Returns:
      The maxima, or ``(maxima, indices)`` with int32 indices (int64 under x64) into the
      flattened unpadded spatial volume.
    """
    axes, windows = tuple(axes), tuple(windows)
    stages = plan_stages(axes, windows)
    for stage in stages:
        log_path(f"max:{stage.kind}")
    lengths = tuple((axis, w.length) for axis, w in zip(axes, windows, strict=True))
    differentiable = jnp.issubdtype(x.dtype, jnp.floating)
    if differentiable:
        values = _max_values(x, stages)
    else:
        values = x
        for stage in _value_stages(stages, x.dtype):
            values = _kind(stage).max(values, stage)
    if not return_index:
        return values
    _, _, coords = _max_with_choices(x, stages, want_index=True, maxima=values)
    return values, flat_index(coords, lengths)


def _fused_hybrid(x: jax.Array, alpha: jax.Array, axes, windows, divisor) -> jax.Array | None:
    """The hybrid mix in one pass where the plan has one stage, else None.

    A plan of one stage (:func:`plan_stages`: windows of at most 16 taps, or one axis
    that tiles or is adaptive) takes a fused path: the gradient is one pass over the
    input that sends ``alpha * g`` to each window's chosen element and
    ``(1 - alpha) * g / divisor`` to all of its elements. Multi-stage plans (more than
    16 taps, or an axis that tiles with 4 or more taps or is adaptive beside another
    axis, as in 2-D global pooling) compose :func:`window_max` and
    :func:`window_average`.
    """
    stages = plan_stages(axes, windows)
    if len(stages) != 1:
        log_path("hybrid:composed")
        return None
    log_path(f"hybrid:{stages[0].kind}")
    compute = jnp.promote_types(x.dtype, jnp.float32)
    return _hybrid_fused(x, alpha.astype(compute), stages[0], divisor)


# ``window_hybrid(x, alpha, axes, windows, divisor)``: ``alpha * max + (1 - alpha) *
# average`` over each window (torch's rules for both), in ``x``'s dtype (mixed in
# float32 for narrower floats); fused where :func:`_fused_hybrid` can.
window_hybrid = functools.partial(
    common.composed_hybrid, window_max, window_sum, fused=_fused_hybrid
)


def _hybrid_parts(x: jax.Array, stage: Stage, divisor) -> tuple[jax.Array, jax.Array]:
    compute = jnp.promote_types(x.dtype, jnp.float32)
    maxima = _kind(stage).max(x, stage).astype(compute)
    averages = window_average(x.astype(compute), stage.axes, stage.windows, divisor)
    return maxima, averages


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _hybrid_fused(x: jax.Array, alpha: jax.Array, stage: Stage, divisor) -> jax.Array:
    maxima, averages = _hybrid_parts(x, stage, divisor)
    return common.mix(alpha, maxima, averages).astype(x.dtype)


@_hybrid_fused.defjvp
def _hybrid_fused_jvp(stage, divisor, primals, tangents):
    (x, alpha), (dx, d_alpha) = primals, tangents
    maxima, averages = _hybrid_parts(x, stage, divisor)
    out = common.mix(alpha, maxima, averages)
    _, (chosen,), _ = _max_with_choices(x, (stage,), want_index=False, maxima=maxima)
    shape = out.shape
    tap_weight = jnp.broadcast_to(alpha, shape)
    total = divisor_array(x.ndim, stage.axes, stage.windows, divisor)
    sum_weight = jnp.broadcast_to((1 - alpha) / jnp.asarray(total, out.dtype), shape)
    d_out = window_mix_p.bind(dx.astype(out.dtype), chosen, tap_weight, sum_weight, stage=stage)
    d_out = d_out + d_alpha * (maxima - averages)
    return out.astype(x.dtype), d_out.astype(x.dtype)

