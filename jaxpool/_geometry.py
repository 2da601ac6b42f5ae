"""Pure-Python pooling geometry: argument normalisation, torch's checks, window sizes.

Nothing here touches an array. Every function works on Python ints and tuples, so it
runs once per configuration at trace time and raises before any computation starts.

The rules follow PyTorch's ATen sources (``Pool.h``, ``AdaptivePooling.h``):

* output length per dimension, with ``L`` the input length, ``k`` the kernel, ``s`` the
  stride, ``lo``/``hi`` the padding and ``d`` the dilation::

      O = floor((L + lo + hi - d*(k-1) - 1 + (s-1 if ceil_mode else 0)) / s) + 1
      if ceil_mode and (O-1)*s >= L + lo:  O -= 1   # last window must start inside

* adaptive windows: ``start(i) = floor(i*L/O)``, ``end(i) = ceil((i+1)*L/O)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

import numpy as np

__all__ = [
    "AxisWindows",
    "pool_output_shape",
]

_PADDING_STRINGS = ("SAME", "VALID")


# ----------------------------------------------------------------------------------
# Argument normalisation


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def as_int(value: Any, name: str, op: str) -> int:
    """Returns ``value`` as a Python int, or raises TypeError naming ``name``."""
    if not _is_int(value):
        raise TypeError(
            f"{op}: {name} must be an int, but got {value!r} of type {type(value).__name__}"
        )
    return int(value)


def as_tuple(value: Any, n: int, name: str, op: str, *, allow_none: bool = False) -> tuple:
    """Normalises an ``int | Sequence[int]`` argument to a tuple of ``n`` Python ints.

    Args:
      value: an int (broadcast to every dimension) or a sequence of ``n`` ints (a
        sequence of length 1 is broadcast too, as torch does).
      n: the number of spatial dimensions.
      name: the argument's name, for error messages.
      op: the calling op's name, for error messages.
      allow_none: whether ``None`` entries are accepted (adaptive ``output_size``).

    Raises:
      TypeError: if an entry is not an int (bools and floats are refused).
      ValueError: if the sequence has the wrong length.
    """

    def check(entry: Any) -> int | None:
        if entry is None and allow_none:
            return None
        if not _is_int(entry):
            kind = "an int or None" if allow_none else "an int"
            raise TypeError(
                f"{op}: {name} must be {kind} or a tuple of {n} such values, but got "
                f"{value!r} (an entry of type {type(entry).__name__})"
            )
        return int(entry)

    if _is_int(value) or (value is None and allow_none):
        return (check(value),) * n
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | np.ndarray):
        if allow_none:
            kind = "an int or None, or a tuple of such values"
        else:
            kind = f"an int or a tuple of {n} ints"
        raise TypeError(
            f"{op}: {name} must be {kind}, but got {value!r} of type {type(value).__name__}"
        )
    entries = tuple(value)
    if len(entries) == 1 and n > 1:
        entries = entries * n
    if len(entries) != n:
        noun = "a single int" if n == 1 else f"a single int, or a tuple of {n} ints"
        raise ValueError(f"{op}: {name} must either be {noun}, but got {name}={value!r}")
    return tuple(check(entry) for entry in entries)


def as_real(value: Any, name: str, op: str) -> float:
    """A real Python number (not bool, not NaN)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{op}: {name} must be a real number, but got {value!r} of type {type(value).__name__}"
        )
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{op}: {name} must not be NaN, but got {name}={value!r}")
    return value


def as_bool(value: Any, name: str, op: str) -> bool:
    """Accepts Python and NumPy bools only; an int like 2 is a likely mistake."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise TypeError(
        f"{op}: {name} must be a bool, but got {value!r} of type {type(value).__name__}"
    )


@dataclasses.dataclass(frozen=True)
class Padding:
    """Normalised padding: per-dimension ``(lo, hi)`` pairs, or a Flax string.

    Attributes:
      pairs: per-dimension ``(lo, hi)``; ``None`` when ``mode`` is 'SAME' (which needs
        the input size to resolve).
      mode: 'torch' (symmetric ints, torch's checks apply), 'pairs' (Flax-style
        explicit ``(lo, hi)``), 'SAME' or 'VALID'.
    """

    pairs: tuple[tuple[int, int], ...] | None
    mode: str


def normalize_padding(padding: Any, n: int, op: str) -> Padding:
    """Accepts torch's ``int | tuple[int, ...]`` and Flax's 'SAME', 'VALID', ``((lo, hi), ...)``."""
    if isinstance(padding, str):
        mode = padding.upper()
        if mode not in _PADDING_STRINGS:
            raise ValueError(
                f"{op}: padding must be an int, a tuple of ints, 'SAME', 'VALID' or a sequence "
                f"of (lo, hi) pairs, but got padding={padding!r}"
            )
        return Padding(pairs=((0, 0),) * n if mode == "VALID" else None, mode=mode)
    is_pairs = (
        isinstance(padding, Sequence)
        and len(padding) > 0
        and all(isinstance(p, Sequence) and not isinstance(p, str) for p in padding)
    )
    if is_pairs:
        if len(padding) != n or any(len(p) != 2 for p in padding):
            raise ValueError(
                f"{op}: padding given as (lo, hi) pairs must hold {n} pairs, one per spatial "
                f"dimension, but got padding={padding!r}"
            )
        pairs = tuple(
            (as_int(lo, "padding", op), as_int(hi, "padding", op)) for lo, hi in padding
        )
        if any(lo < 0 or hi < 0 for lo, hi in pairs):
            raise ValueError(f"{op}: pad must be non-negative, but got padding={padding!r}")
        return Padding(pairs=pairs, mode="pairs")
    values = as_tuple(padding, n, "padding", op)
    if any(p < 0 for p in values):
        raise ValueError(f"{op}: pad must be non-negative, but got padding={padding!r}")
    return Padding(pairs=tuple((p, p) for p in values), mode="torch")


# ----------------------------------------------------------------------------------
# Output sizes


def _output_length(
    length: int, kernel: int, stride: int, lo: int, hi: int, dilation: int, ceil_mode: bool
) -> int:
    span = length + lo + hi - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = (span + stride - 1) // stride + 1
    # The last window must start inside the input or the left padding.
    if (out - 1) * stride >= length + lo:
        out -= 1
    return out


def _same_padding(length: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Flax/XLA 'SAME': output ``ceil(L/s)``, padding split with the extra on the right."""
    out = -(-length // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - length, 0)
    return total // 2, total - total // 2


def pool_output_shape(
    input_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: Any = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
) -> int | tuple[int, ...]:
    """The spatial output size of a pooling window, torch's formula with its ceil_mode rule.

    For each spatial dimension of length ``L``, with kernel ``k``, stride ``s``,
    padding ``(lo, hi)`` (``p`` means ``(p, p)``) and dilation ``d``::

        O = floor((L + lo + hi - d*(k - 1) - 1 + (s - 1 if ceil_mode else 0)) / s) + 1

    and in ceil mode, if ``(O - 1)*s >= L + lo`` then ``O -= 1``: the last window must
    start inside the input or the left padding (windows starting in the right padding
    are dropped). ``padding='SAME'`` gives ``ceil(L/s)`` and ``'VALID'`` no padding.

    Args:
      input_size: the spatial size, an int or a tuple (one entry per spatial dim).
      kernel_size: window size, an int or a tuple of the same length.
      stride: window stride; defaults to ``kernel_size``, as in torch.
      padding: an int or tuple of ints (torch), 'SAME', 'VALID', or ``(lo, hi)`` pairs.
      dilation: spacing between window elements.
      ceil_mode: use ceil instead of floor (partial windows at the end).

    Returns:
      An int when ``input_size`` is an int, else a tuple of ints. The result may be
      smaller than 1; pooling ops refuse such configurations.

    Raises:
      TypeError, ValueError: for malformed arguments.

    Example:
      >>> import jaxpool
      >>> jaxpool.pool_output_shape(5, 2, 2)
      2
      >>> jaxpool.pool_output_shape(5, 2, 2, ceil_mode=True)
      3
      >>> jaxpool.pool_output_shape((56, 56), 3, 2, 1)
      (28, 28)
    """
    op = "pool_output_shape"
    scalar = _is_int(input_size)
    sizes: tuple[int, ...]
    if scalar:
        sizes = (as_int(input_size, "input_size", op),)
    else:
        sizes = tuple(as_int(v, "input_size", op) for v in cast("Sequence[int]", input_size))
    n = len(sizes)
    kernel = as_tuple(kernel_size, n, "kernel_size", op)
    strides = kernel if stride is None else as_tuple(stride, n, "stride", op)
    dilations = as_tuple(dilation, n, "dilation", op)
    pad = normalize_padding(padding, n, op)
    ceil = as_bool(ceil_mode, "ceil_mode", op)
    if any(s <= 0 for s in strides):
        raise ValueError(f"{op}: stride should be greater than zero, but got stride={stride!r}")
    out = []
    for i, length in enumerate(sizes):
        if pad.pairs is None:  # 'SAME'
            out.append(-(-length // strides[i]))
            continue
        lo, hi = pad.pairs[i]
        out.append(_output_length(length, kernel[i], strides[i], lo, hi, dilations[i], ceil))
    return out[0] if scalar else tuple(out)


# ----------------------------------------------------------------------------------
# Windows along one axis


@dataclasses.dataclass(frozen=True)
class AxisWindows:
    """The pooling windows along one spatial axis, as static Python data.

    Regular windows (``adaptive=False``): window ``o`` holds input positions
    ``o*stride - pad_lo + j*dilation`` for ``j < kernel``; positions outside
    ``[0, length)`` are padding. Adaptive windows (``adaptive=True``): window ``o``
    is ``[floor(o*L/O), ceil((o+1)*L/O))`` and ``kernel`` is the largest window.

    Attributes:
      length: input length ``L`` along the axis.
      size: number of windows ``O`` (the output length).
      kernel: taps per window (the largest window for adaptive).
      stride: step between window starts (1 for adaptive, unused there).
      dilation: step between taps of one window.
      pad_lo: padding before the input.
      pad_hi: padding after the input, as the user gave it (bounds average divisors).
      adaptive: whether windows follow torch's adaptive rule.
    """

    length: int
    size: int
    kernel: int
    stride: int = 1
    dilation: int = 1
    pad_lo: int = 0
    pad_hi: int = 0
    adaptive: bool = False

    @staticmethod
    def make_adaptive(length: int, size: int) -> AxisWindows:
        """Adaptive windows; when they are regular (equal lengths, evenly spaced starts,
        as for 56 -> 7 or 56 -> 5) they become regular windows with the same positions."""
        starts, ends = adaptive_bounds(length, size)
        lengths = ends - starts
        steps = np.diff(starts)
        evenly_spaced = size == 1 or (np.all(steps == steps[0]) and steps[0] > 0)
        if np.all(lengths == lengths[0]) and evenly_spaced:
            stride = int(steps[0]) if size > 1 else int(lengths[0])
            return AxisWindows(length=length, size=size, kernel=int(lengths[0]), stride=stride)
        return AxisWindows(length=length, size=size, kernel=int(lengths.max()), adaptive=True)

    @property
    def is_global(self) -> bool:
        """One window that covers the whole axis exactly."""
        return self.size == 1 and self.kernel == self.length and self.pad_lo == 0

    @property
    def is_blocks(self) -> bool:
        """Non-overlapping, gap-free windows: a reshape splits the axis into them."""
        return not self.adaptive and self.dilation == 1 and self.stride == self.kernel

    def starts(self) -> np.ndarray:
        """Input position of each window's first tap (may be negative: padding)."""
        if self.adaptive:
            return adaptive_bounds(self.length, self.size)[0]
        return np.arange(self.size) * self.stride - self.pad_lo

    def tap_positions(self) -> np.ndarray:
        """``(kernel, size)`` input positions; adaptive short windows repeat their last."""
        taps = np.arange(self.kernel)[:, None]
        if self.adaptive:
            starts, ends = adaptive_bounds(self.length, self.size)
            return np.minimum(starts[None, :] + taps, ends[None, :] - 1)
        return self.starts()[None, :] + taps * self.dilation

    def tap_valid(self) -> np.ndarray:
        """``(kernel, size)``: whether a tap is a real element of its window."""
        if self.adaptive:
            starts, ends = adaptive_bounds(self.length, self.size)
            return np.arange(self.kernel)[:, None] < (ends - starts)[None, :]
        positions = self.tap_positions()
        return (positions >= 0) & (positions < self.length)

    def padded_extent(self) -> tuple[int, int]:
        """``(lo, hi)`` padding that makes every tap a strided slice (hi may be < 0: crop)."""
        if self.adaptive:
            return 0, 0
        needed = (self.size - 1) * self.stride + (self.kernel - 1) * self.dilation + 1
        return self.pad_lo, needed - self.length - self.pad_lo

    def divisor_with_padding(self) -> np.ndarray:
        """Window lengths counting padding, clipped at the user's right padding (torch)."""
        starts = self.starts()
        if self.adaptive:
            return adaptive_bounds(self.length, self.size)[1] - starts
        ends = np.minimum(starts + self.kernel, self.length + self.pad_hi)
        return ends - starts

    def divisor_without_padding(self) -> np.ndarray:
        """Number of real elements in each window."""
        return self.tap_valid().sum(axis=0) if not self.adaptive else self.divisor_with_padding()


@functools.lru_cache(maxsize=256)
def _adaptive_bounds_cached(length: int, size: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    index = np.arange(size)
    starts = (index * length) // size
    ends = -((-(index + 1) * length) // size)
    return tuple(starts.tolist()), tuple(ends.tolist())


def adaptive_bounds(length: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """torch's adaptive windows: ``[floor(i*L/O), ceil((i+1)*L/O))`` for ``i < O``."""
    starts, ends = _adaptive_bounds_cached(length, size)
    return np.asarray(starts), np.asarray(ends)


# ----------------------------------------------------------------------------------
# Configuration checks: what can be refused before any input is seen
#
# The ops run these at trace time (through the window builders below); the Flax modules
# of both APIs run them at construction, through check_pooling_config, so a bad
# configuration fails where it is written, with the same message.


class Window(NamedTuple):
    """A sliding window's arguments as :func:`check_window` accepts them, normalised."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    padding: Padding
    ceil_mode: bool


def check_window(
    op: str, n: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: Any
) -> Window:
    """torch's checks of a sliding window over ``n`` spatial dims that need no input.

    Kernel, stride and dilation must be positive ints (or tuples of ``n``), padding
    non-negative and, for torch's int padding, at most half the effective kernel (and
    half the plain kernel, as torch checks both); 'SAME' padding has no ceil mode.
    The output size, which needs the input's, is :func:`sliding_windows`'s check.
    """
    kernel = as_tuple(kernel_size, n, "kernel_size", op)
    no_stride = stride is None or (isinstance(stride, Sequence) and len(stride) == 0)
    strides = kernel if no_stride else as_tuple(stride, n, "stride", op)  # torch: [] means None
    dilations = as_tuple(dilation, n, "dilation", op)
    ceil = as_bool(ceil_mode, "ceil_mode", op)
    if any(k <= 0 for k in kernel):
        raise ValueError(
            f"{op}: kernel size should be greater than zero, but got kernel_size={kernel_size!r}"
        )
    if any(s <= 0 for s in strides):
        raise ValueError(f"{op}: stride should be greater than zero, but got stride={stride!r}")
    if any(d <= 0 for d in dilations):
        raise ValueError(
            f"{op}: dilation should be greater than zero, but got dilation={dilation!r}"
        )
    pad = normalize_padding(padding, n, op)
    if pad.mode == "SAME" and ceil:
        raise ValueError(
            f"{op}: ceil_mode=True has no meaning with padding='SAME' (whose output size is "
            "ceil(L / stride)); use explicit padding with ceil_mode"
        )
    if pad.mode == "torch" and pad.pairs is not None:
        for i, (p, _) in enumerate(pad.pairs):
            if p > (dilations[i] * (kernel[i] - 1) + 1) // 2:
                raise ValueError(
                    f"{op}: pad should be at most half of effective kernel size, but got "
                    f"padding={padding!r}, kernel_size={kernel_size!r} and dilation={dilation!r}"
                )
            if p > kernel[i] // 2:  # torch checks the plain kernel too, dilated or not
                raise ValueError(
                    f"{op}: pad should be smaller than or equal to half of kernel size, but got "
                    f"padding={padding!r} and kernel_size={kernel_size!r}"
                )
    return Window(kernel, strides, dilations, pad, ceil)


def check_global_form(op: str, stride: Any, padding: Any, ceil_mode: Any) -> None:
    """The global form of a pooling (``kernel_size=None``, one window over the map) takes
    no window arguments: ``stride``, ``padding`` and ``ceil_mode`` must keep their
    defaults (None, 0, False)."""
    ceil_mode = as_bool(ceil_mode, "ceil_mode", op)
    zero_padding = _is_int(padding) and padding == 0
    for name, value, unset in (("stride", stride, stride is None),
                               ("padding", padding, zero_padding),
                               ("ceil_mode", ceil_mode, not ceil_mode)):
        if not unset:
            raise ValueError(
                f"{op}: {name} only applies to windowed pooling, not to the global form "
                f"(kernel_size=None), but got {name}={value!r}"
            )


def check_keepdims(keepdims: Any, kernel_size: Any, op: str) -> bool:
    """``keepdims`` as a bool; True is refused for windowed pooling (it has no meaning there)."""
    keepdims = as_bool(keepdims, "keepdims", op)
    if keepdims and kernel_size is not None:
        raise ValueError(
            f"{op}: keepdims=True only applies to the global form (kernel_size=None); windowed "
            f"pooling always keeps the spatial dims, but got kernel_size={kernel_size!r}"
        )
    return keepdims


def check_adaptive_output_size(op: str, n: int, output_size: Any) -> tuple[int | None, ...]:
    """An adaptive pooling's ``output_size``: positive ints, ``None`` keeping a dim."""
    sizes = as_tuple(output_size, n, "output_size", op, allow_none=True)
    if any(s is not None and s <= 0 for s in sizes):
        raise ValueError(
            f"{op}: elements of output_size must be greater than 0, but got "
            f"output_size={output_size!r}"
        )
    return sizes


class Fractional(NamedTuple):
    """Fractional max pooling's arguments as :func:`check_fractional` accepts them."""

    kernel: tuple[int, ...]
    output_size: tuple[int, ...] | None
    output_ratio: tuple[float, ...] | None

    def output(self, spatial_size: tuple[int, ...]) -> tuple[int, ...]:
        """The output size: ``output_size``, or ``floor(L * output_ratio)`` per dim."""
        if self.output_ratio is None:
            return cast("tuple[int, ...]", self.output_size)
        return tuple(int(length * r) for length, r in zip(spatial_size, self.output_ratio,
                                                          strict=True))


def check_fractional(
    op: str, n: int, kernel_size: Any, output_size: Any, output_ratio: Any
) -> Fractional:
    """Fractional max pooling's kernel and exactly one of ``output_size`` (ints >= 1)
    and ``output_ratio`` (in (0, 1)); the other is None."""
    kernel = as_tuple(kernel_size, n, "kernel_size", op)
    if any(k <= 0 for k in kernel):
        raise ValueError(
            f"{op}: kernel size should be greater than zero, but got kernel_size={kernel_size!r}"
        )
    if (output_size is None) == (output_ratio is None):
        raise ValueError(
            f"{op} requires specifying exactly one of output_size or output_ratio, but got "
            f"output_size={output_size!r} and output_ratio={output_ratio!r}"
        )
    if output_size is not None:
        sizes = as_tuple(output_size, n, "output_size", op)
        if any(o < 1 for o in sizes):
            raise ValueError(
                f"{op}: output_size must be positive in every dimension, but got "
                f"output_size={output_size!r}"
            )
        return Fractional(kernel, sizes, None)
    ratios = output_ratio if isinstance(output_ratio, Sequence) else (output_ratio,) * n
    if len(ratios) != n:
        raise ValueError(
            f"{op}: output_ratio must be a number or a tuple of {n} numbers, but got "
            f"output_ratio={output_ratio!r}"
        )
    ratios = tuple(as_real(r, "output_ratio", op) for r in ratios)
    if not all(0 < r < 1 for r in ratios):
        raise ValueError(
            f"{op}: output_ratio must be between 0 and 1 (exclusive), but got "
            f"output_ratio={output_ratio!r}"
        )
    return Fractional(kernel, None, ratios)


def check_divisor_override(op: str, divisor_override: Any) -> int | None:
    """Average pooling's ``divisor_override``: None or a non-zero int (torch's rule)."""
    if divisor_override is None:
        return None
    divisor = as_int(divisor_override, "divisor_override", op)
    if divisor == 0:
        raise ValueError(f"{op}: divisor must be not zero, but got divisor_override=0")
    return divisor


def check_norm_type(op: str, norm_type: Any) -> float:
    """LP pooling's power: a real number > 0 (``inf`` is max pooling of ``|x|``)."""
    value = as_real(norm_type, "norm_type", op)
    if value <= 0:
        raise ValueError(
            f"{op}: norm_type must be positive (p > 0; use float('inf') for max pooling), "
            f"but got norm_type={value!r}"
        )
    return value


def check_positive_real(op: str, name: str, value: Any) -> float:
    """A real number > 0 (GeM's clamp ``eps``, a norm's ``norm_eps``)."""
    number = as_real(value, name, op)
    if not number > 0:
        raise ValueError(f"{op}: {name} must be positive, but got {name}={value!r}")
    return number


def check_positive_sizes(op: str, n: int, name: str, value: Any) -> tuple[int, ...]:
    """Sizes that must be positive ints: an int or a tuple of ``n`` (blur pooling's
    ``kernel_size``, ``stride`` and ``max_pool_size``, RoIAlign's ``output_size``)."""
    sizes = as_tuple(value, n, name, op)
    if any(size <= 0 for size in sizes):
        raise ValueError(f"{op}: {name} must be positive, but got {name}={value!r}")
    return sizes


def check_levels(op: str, n: int, levels: Any) -> tuple[tuple[int, ...], ...]:
    """Spatial pyramid pooling's ``levels``: a non-empty sequence of output sizes, each an
    int or a tuple of ``n`` positive ints."""
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
        raise TypeError(
            f"{op}: levels must be a non-empty sequence of output sizes (an int, or a tuple "
            f"of {n} ints, per level), e.g. (1, 2, 4), but got levels={levels!r}"
        )
    sizes = tuple(as_tuple(level, n, "levels", op) for level in levels)
    if any(s < 1 for size in sizes for s in size):
        raise ValueError(
            f"{op}: every level's output size must be positive, but got levels={levels!r}"
        )
    return sizes


def check_pyramid_mode(op: str, mode: Any) -> str:
    """Spatial pyramid pooling's ``mode``: ``'max'`` or ``'avg'``."""
    if not isinstance(mode, str):
        raise TypeError(f"{op}: mode must be 'max' or 'avg', but got {mode!r} of type "
                        f"{type(mode).__name__}")
    if mode not in ("max", "avg"):
        raise ValueError(f"{op}: mode must be 'max' or 'avg', but got mode={mode!r}")
    return mode


class RoIAlignArguments(NamedTuple):
    """RoIAlign's arguments as :func:`check_roi_align` accepts them."""

    output_size: tuple[int, int]
    spatial_scale: float
    sampling_ratio: int
    max_sampling_ratio: tuple[int, int] | None


def check_roi_align(
    op: str, output_size: Any, spatial_scale: Any, sampling_ratio: Any, max_sampling_ratio: Any
) -> RoIAlignArguments:
    """RoIAlign's bins per box (positive), ``spatial_scale`` (positive, finite),
    ``sampling_ratio`` (an int) and ``max_sampling_ratio`` (None, or ints >= 1, only with
    adaptive sampling: ``sampling_ratio <= 0``)."""
    pooled = cast("tuple[int, int]", check_positive_sizes(op, 2, "output_size", output_size))
    scale = as_real(spatial_scale, "spatial_scale", op)
    if not (0 < scale < math.inf):
        raise ValueError(
            f"{op}: spatial_scale must be a positive finite number, but got "
            f"spatial_scale={spatial_scale!r}"
        )
    ratio = as_int(sampling_ratio, "sampling_ratio", op)
    if max_sampling_ratio is None:
        return RoIAlignArguments(pooled, scale, ratio, None)
    bound = as_tuple(max_sampling_ratio, 2, "max_sampling_ratio", op)
    if any(b < 1 for b in bound):
        raise ValueError(
            f"{op}: max_sampling_ratio must be at least 1, but got "
            f"max_sampling_ratio={max_sampling_ratio!r}"
        )
    if ratio > 0:
        raise ValueError(
            f"{op}: max_sampling_ratio only applies to adaptive sampling (sampling_ratio <= "
            f"0), but got sampling_ratio={ratio} and max_sampling_ratio={max_sampling_ratio!r}"
        )
    return RoIAlignArguments(pooled, scale, ratio, cast("tuple[int, int]", bound))


# The options that are flags, in every op and module that takes them.
FLAGS = (
    "ceil_mode", "count_include_pad", "return_indices", "keepdims", "channels_first", "aligned",
)


def _check_sizes(op: str, n: int, config: Mapping[str, Any]) -> None:
    """The window, global form, adaptive or fractional sizes in ``config``."""
    if "kernel_size" not in config:
        if "output_size" in config:
            check_adaptive_output_size(op, n, config["output_size"])
        return
    kernel_size = config["kernel_size"]
    if "output_ratio" in config:
        check_fractional(op, n, kernel_size, config.get("output_size"), config["output_ratio"])
    elif kernel_size is None:
        check_global_form(op, config.get("stride"), config.get("padding", 0),
                          config.get("ceil_mode", False))
    else:
        check_window(op, n, kernel_size, config.get("stride"), config.get("padding", 0),
                     config.get("dilation", 1), config.get("ceil_mode", False))
    if "keepdims" in config:
        check_keepdims(config["keepdims"], kernel_size, op)


def check_pooling_config(op: str, n: int, config: Mapping[str, Any]) -> None:
    """Checks a pooling configuration over ``n`` spatial dims before any input is seen.

    Every argument in ``config`` that the rules above can judge from its value alone is
    checked by its name, with the op's messages: the flags, a window (``kernel_size``
    with ``stride``, ``padding``, ``dilation``, ``ceil_mode``; ``kernel_size=None`` is
    the global form), ``keepdims``, an adaptive ``output_size``, fractional pooling's
    ``output_size``/``output_ratio``, ``divisor_override``, ``norm_type``, ``eps``, blur
    pooling's ``max_pool_size``, spatial pyramid pooling's ``levels`` and ``mode``, and
    RoIAlign's arguments (``sampling_ratio`` tells them: its ``output_size`` is bins per
    box). Other names are left to the op, which checks them with the input. The Flax
    modules of both APIs call this at construction, where ``op`` is the module's name.

    Raises:
      TypeError, ValueError: as the op would for the same arguments.
    """
    for name in FLAGS:
        if name in config:
            as_bool(config[name], name, op)
    if "sampling_ratio" in config:
        check_roi_align(op, config.get("output_size"), config.get("spatial_scale", 1.0),
                        config["sampling_ratio"], config.get("max_sampling_ratio"))
    else:
        _check_sizes(op, n, config)
    if "max_pool_size" in config:
        check_positive_sizes(op, n, "max_pool_size", config["max_pool_size"])
    if "levels" in config:
        check_levels(op, n, config["levels"])
    if "mode" in config:
        check_pyramid_mode(op, config["mode"])
    if "divisor_override" in config:
        check_divisor_override(op, config["divisor_override"])
    if "norm_type" in config:
        check_norm_type(op, config["norm_type"])
    if "eps" in config:
        check_positive_real(op, "eps", config["eps"])


# ----------------------------------------------------------------------------------
# Whole-input checks


def spatial_axes(
    shape: tuple[int, ...], n: int, channels_first: bool, op: str, *, batch_zero_ok: bool = True
) -> tuple[int, ...]:
    """Checks the rank and sizes of an input and returns its spatial axes (non-negative).

    Channels-last inputs are ``(*batch, *spatial, C)``; channels-first inputs are
    ``(*batch, C, *spatial)``. Any number of batch dims (zero included) is accepted.
    Batch dims may be empty; spatial and channel dims may not (as torch).
    """
    layout = "(*batch, C, " if channels_first else "(*batch, "
    layout += ", ".join("DHW"[3 - n :]) + (")" if channels_first else ", C)")
    if len(shape) < n + 1:
        raise ValueError(
            f"{op}: expected an input of shape {layout} with at least {n + 1} dimensions, but got "
            f"shape {tuple(shape)}"
            + ("" if channels_first else " (pass channels_first=True for torch's layout)")
        )
    ndim = len(shape)
    axes = tuple(range(ndim - n, ndim)) if channels_first else tuple(range(ndim - n - 1, ndim - 1))
    channel_axis = ndim - n - 1 if channels_first else ndim - 1
    for axis in (*axes, channel_axis):
        if shape[axis] == 0:
            raise ValueError(
                f"{op}: Expected input to have non-zero size for non-batch dimensions, but input "
                f"has shape {tuple(shape)} with dimension {axis} being empty"
            )
    return axes


@dataclasses.dataclass(frozen=True)
class WindowConfig:
    """Validated configuration of a sliding-window pooling op along every spatial axis.

    Attributes:
      windows: the windows along each spatial axis, outermost first.
    """

    windows: tuple[AxisWindows, ...]

    @property
    def output_size(self) -> tuple[int, ...]:
        return tuple(w.size for w in self.windows)


def sliding_windows(
    op: str,
    spatial_size: tuple[int, ...],
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: Any,
) -> WindowConfig:
    """Validates torch-style pooling arguments and builds the windows of every axis.

    :func:`check_window`'s checks first (those that need no input), then the output at
    least 1 in every dimension. Flax-style padding ('SAME', 'VALID', explicit pairs)
    skips the half-kernel rule but must not create a window that lies entirely in
    padding (it would give -inf or 0/0).
    """
    n = len(spatial_size)
    kernel, strides, dilations, pad, ceil = check_window(
        op, n, kernel_size, stride, padding, dilation, ceil_mode
    )
    if pad.pairs is None:  # 'SAME'
        pairs = tuple(
            _same_padding(spatial_size[i], kernel[i], strides[i], dilations[i]) for i in range(n)
        )
    else:
        pairs = pad.pairs
    outputs = tuple(
        _output_length(spatial_size[i], kernel[i], strides[i], *pairs[i], dilations[i], ceil)
        if pad.mode != "SAME"
        else -(-spatial_size[i] // strides[i])
        for i in range(n)
    )
    if any(o < 1 for o in outputs):
        raise ValueError(
            f"{op}: Given input size: {tuple(spatial_size)}. Calculated output size: {outputs}. "
            f"Output size is too small (kernel_size={kernel_size!r}, stride={stride!r}, "
            f"padding={padding!r}, dilation={dilation!r}, ceil_mode={ceil})"
        )
    windows = tuple(
        AxisWindows(
            length=spatial_size[i],
            size=outputs[i],
            kernel=kernel[i],
            stride=strides[i],
            dilation=dilations[i],
            pad_lo=pairs[i][0],
            pad_hi=pairs[i][1],
        )
        for i in range(n)
    )
    # Flax-style padding, or dilation that steps over the only real elements (torch
    # accepts that and answers -inf with an index outside the input), can leave a
    # window without a single real element.
    for i, w in enumerate(windows):
        empty = ~w.tap_valid().any(axis=0)
        if empty.any():
            raise ValueError(
                f"{op}: padding={padding!r} puts output window {int(np.argmax(empty))} of "
                f"spatial dimension {i} entirely in padding (kernel_size={kernel_size!r}, "
                f"stride={stride!r}, dilation={dilation!r}, input size {tuple(spatial_size)}); "
                "it would have no element to pool"
            )
    return WindowConfig(windows=windows)


def check_average_input(op: str, spatial_size: tuple[int, ...], kernel_size: Any) -> None:
    """torch's ``avg_pool3d`` (so also ``lp_pool3d``) refuses an input smaller than the
    kernel in any dimension, padding and ceil mode or not, before any other size check;
    in 1D and 2D only an output size below 1 is refused (by :func:`sliding_windows`)."""
    if len(spatial_size) != 3:
        return
    kernel = as_tuple(kernel_size, 3, "kernel_size", op)
    if all(length >= k for length, k in zip(spatial_size, kernel, strict=True)):
        return
    size = spatial_size
    raise ValueError(
        f"{op}: input image (T: {size[0]} H: {size[1]} W: {size[2]}) smaller than kernel "
        f"size (kT: {kernel[0]} kH: {kernel[1]} kW: {kernel[2]}), kernel_size={kernel_size!r}"
    )


def adaptive_windows(op: str, spatial_size: tuple[int, ...], output_size: Any) -> WindowConfig:
    """Validates ``output_size`` (``None`` entries keep a dim) and builds adaptive windows."""
    n = len(spatial_size)
    sizes = check_adaptive_output_size(op, n, output_size)
    resolved = tuple(spatial_size[i] if s is None else s for i, s in enumerate(sizes))
    return WindowConfig(
        windows=tuple(AxisWindows.make_adaptive(spatial_size[i], resolved[i]) for i in range(n))
    )


def global_windows(spatial_size: tuple[int, ...]) -> WindowConfig:
    """One window per axis covering all of it."""
    return WindowConfig(
        windows=tuple(AxisWindows(length=L, size=1, kernel=L, stride=L) for L in spatial_size)
    )


def check_spatial_dims(spatial_dims: Any, op: str) -> int:
    n = as_int(spatial_dims, "spatial_dims", op)
    if n not in (1, 2, 3):
        raise ValueError(
            f"{op}: spatial_dims must be 1, 2 or 3, but got spatial_dims={spatial_dims!r}"
        )
    return n


def index_dtype_bits(volume: int, x64: bool, op: str) -> int:
    """Bits of the index dtype; refuses volumes that int32 cannot index."""
    if volume < 2**31:
        return 32
    if x64:
        return 64
    raise ValueError(
        f"{op}: the spatial volume {volume} is too large for int32 indices; enable "
        "jax_enable_x64 for int64 indices"
    )


def along(vector: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """Shapes a 1-D static array to broadcast along ``axis`` of an ``ndim`` array."""
    shape = [1] * ndim
    shape[axis] = vector.shape[0]
    return np.reshape(vector, shape)
