"""Anti-aliased pooling (Zhang, 2019): blur with a binomial kernel, then subsample.

"Making Convolutional Networks Shift-Invariant Again" low-pass filters a feature map
before every subsampling. The ops follow kornia 0.9.0 (``kornia.filters.blur_pool2d``,
``max_blur_pool2d``), whose numbers they reproduce:

* the kernel along an axis of size ``k`` is row ``k - 1`` of Pascal's triangle divided
  by its sum ``2**(k - 1)`` (``1 2 1 / 4`` for ``k = 3``), rounded to the input's dtype;
  the nD kernel is the outer product of the per-axis rows (kornia's 2D kernel is the
  outer product of two);
* the input is zero-padded by ``(k - 1) // 2`` before and ``k // 2`` after each spatial
  axis (so a constant map comes out darker at the border; timm's ``BlurPool2d`` pads by
  reflection instead), correlated with the kernel and sampled every ``stride``
  positions from index 0: the output length is ``ceil(L / stride)``;
* ``max_blur_pool`` first takes torch's max pooling with window ``max_pool_size`` at
  stride 1 without padding (length ``L - max_pool_size + 1``), then blurs and
  subsamples that: ``ceil((L - max_pool_size + 1) / stride)``.

kornia has no 1D or 3D blur pooling; ``blur_pool1d/3d`` and ``max_blur_pool1d/3d``
apply the same definition along one or three axes. A kernel size or stride may differ
per axis (a tuple), which kornia's square-kernel ops refuse.

The correlation is computed one axis after the other (the kernel is separable), with
``k`` strided taps per axis instead of ``k**n`` — the same sum as kornia's ``conv2d``
up to the order of its terms, so values agree with kornia's to a few units in the last
place. bfloat16 and float16 inputs are blurred in float32 and rounded back once.

Example:
  >>> import jax.numpy as jnp, jaxpool
  >>> x = jnp.eye(5)[:, :, None]                           # (H, W, C)
  >>> jaxpool.blur_pool2d(x, 3)[..., 0]                     # kornia's docstring example
  Array([[0.3125, 0.0625, 0.    ],
         [0.0625, 0.375 , 0.0625],
         [0.    , 0.0625, 0.3125]], dtype=float32)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxpool import _geometry as geometry
from jaxpool._checks import as_array
from jaxpool._functional import _max_pool, _spatial_size


@functools.lru_cache(maxsize=64)
def binomial_row(size: int) -> tuple[float, ...]:
    """Row ``size - 1`` of Pascal's triangle over its sum, in float64 (kornia's
    ``get_pascal_kernel_1d(size, norm=True)`` before its cast to the input's dtype)."""
    row = [1.0]
    for _ in range(size - 1):
        row = [left + right for left, right in zip([0.0, *row], [*row, 0.0], strict=True)]
    total = sum(row)
    return tuple(value / total for value in row)


def _taps(size: int, dtype) -> np.ndarray:
    """The 1-D kernel rounded as kornia rounds it: ``torch.tensor(floats, dtype=dtype)``
    goes through float32 on its way to a narrower float, so this does too."""
    row = np.asarray(binomial_row(size), np.float64)
    if np.dtype(dtype).itemsize < 8:
        row = row.astype(np.float32)
    return row.astype(dtype)


@functools.partial(jax.jit, static_argnames=("axes", "kernel", "stride"))
def _blur(x: jax.Array, *, axes: tuple[int, ...], kernel: tuple[int, ...],
          stride: tuple[int, ...]) -> jax.Array:
    compute = jnp.promote_types(x.dtype, jnp.float32)
    out = x.astype(compute)
    for axis, size, step in zip(axes, kernel, stride, strict=True):
        taps = _taps(size, x.dtype).astype(compute)
        length = out.shape[axis]
        outputs = -(-length // step)
        span = (outputs - 1) * step + 1
        before = (size - 1) // 2
        # Past the last tap the padding is not read: a negative amount crops instead.
        after = span + size - 1 - length - before
        config = [(0, 0, 0)] * out.ndim
        config[axis] = (before, after, 0)
        padded = lax.pad(out, jnp.zeros((), compute), config)
        total = lax.slice_in_dim(padded, 0, span, step, axis) * taps[0]
        for index in range(1, size):
            total = total + lax.slice_in_dim(padded, index, index + span, step, axis) * taps[index]
        out = total
    return out.astype(x.dtype)


def _blur_pool(op: str, n: int, x: ArrayLike, kernel_size, stride, channels_first) -> jax.Array:
    array = as_array(x, "input", op, kind="float")
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    axes = geometry.spatial_axes(array.shape, n, channels_first, op)
    kernel = geometry.check_positive_sizes(op, n, "kernel_size", kernel_size)
    strides = geometry.check_positive_sizes(op, n, "stride", stride)
    return _blur(array, axes=axes, kernel=kernel, stride=strides)


def _max_blur_pool(op: str, n: int, x: ArrayLike, kernel_size, stride, max_pool_size,
                   channels_first) -> jax.Array:
    array = as_array(x, "input", op, kind="float")
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    axes = geometry.spatial_axes(array.shape, n, channels_first, op)
    kernel = geometry.check_positive_sizes(op, n, "kernel_size", kernel_size)
    strides = geometry.check_positive_sizes(op, n, "stride", stride)
    window = geometry.check_positive_sizes(op, n, "max_pool_size", max_pool_size)
    size = _spatial_size(array, axes)
    if any(w > length for w, length in zip(window, size, strict=True)):
        raise ValueError(
            f"{op}: max_pool_size={max_pool_size!r} is larger than the input's spatial size "
            f"{size}; the stride-1 max pooling would have no output"
        )
    pooled = _max_pool(op, n, array, window, 1, 0, 1, False, False, channels_first)
    return _blur(pooled, axes=axes, kernel=kernel, stride=strides)


_LAYOUT = """\
    Layout: ``x`` is ``(*batch, {spatial}, C)`` (channels-last) or, with
    ``channels_first=True``, ``(*batch, C, {spatial})`` (torch's and kornia's); any
    number of batch dims, zero included. The output keeps the input's layout."""

_BLUR_DOC = """{n}D blur pooling{kornia}: a binomial blur, then every ``stride``-th sample.

    Each output is the correlation of the zero-padded input (``(k - 1) // 2`` before,
    ``k // 2`` after each spatial axis) with the normalised binomial kernel of size
    ``kernel_size`` (the outer product of Pascal-triangle rows divided by their sums,
    ``[1, 2, 1] / 4`` per axis for 3), sampled at positions ``0, stride, 2*stride, ...``.
    {origin}

{layout}

    Output size per spatial dim: ``ceil(L / stride)``.

    Args:
      x: input array, floating dtype.
      kernel_size: blur kernel size, an int or a tuple of {n} ints.
      stride: subsampling step, an int or a tuple of {n} ints (default 2).
      channels_first: whether ``x`` is channels-first.

    Returns:
      The blurred and subsampled array, same dtype as ``x`` (bfloat16 and float16 are
      blurred in float32).

    Raises:
      TypeError: for a non-floating input or non-int sizes.
      ValueError: for a non-positive ``kernel_size`` or ``stride``, or a wrong input rank.

    Example:
      {example}
    """

_MAX_BLUR_DOC = """{n}D max-blur pooling{kornia}: stride-1 max pooling, then blur pooling.

    ``blur_pool{n}d(max_pool{n}d(x, max_pool_size, stride=1), kernel_size, stride)``: the
    max pooling (torch's ties, NaN and gradient rules: the first maximum of a window gets
    its gradient) keeps the local peaks, the blur removes the aliasing that a strided
    max pooling would cause. {origin}

{layout}

    Output size per spatial dim: ``ceil((L - max_pool_size + 1) / stride)``.

    Args:
      x: input array, floating dtype.
      kernel_size: blur kernel size, an int or a tuple of {n} ints.
      stride: subsampling step of the blur, an int or a tuple of {n} ints (default 2).
      max_pool_size: max-pooling window (at stride 1, no padding), an int or a tuple of
        {n} ints (default 2); at most the input's size.
      channels_first: whether ``x`` is channels-first.

    Returns:
      The pooled array, same dtype as ``x``.

    Raises:
      TypeError: for a non-floating input or non-int sizes.
      ValueError: for non-positive sizes, a ``max_pool_size`` larger than the input, or a
        wrong input rank.

    Example:
      {example}
    """

_KORNIA = {1: "", 2: ", as ``kornia.filters.blur_pool2d``", 3: ""}
_KORNIA_MAX = {1: "", 2: ", as ``kornia.filters.max_blur_pool2d``", 3: ""}
_ORIGIN = {
    1: "kornia has no 1D op; this is its 2D definition along one axis.",
    2: "kornia's numbers (its kernels are square: a tuple with two different\n    sizes "
       "goes beyond it, with the same definition per axis).",
    3: "kornia has no 3D op; this is its 2D definition along three axes.",
}
_EXAMPLES = {
    ("blur", 1): """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.array([0.0, 0.0, 4.0, 0.0, 0.0, 8.0])[:, None]    # (L, C)
      >>> jaxpool.blur_pool1d(x, 3)[:, 0]                            # [1, 2, 1] / 4, stride 2
      Array([0., 2., 2.], dtype=float32)""",
    ("blur", 2): """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.eye(5)[None, :, :, None]                           # (N, H, W, C)
      >>> jaxpool.blur_pool2d(x, 3)[0, ..., 0]
      Array([[0.3125, 0.0625, 0.    ],
             [0.0625, 0.375 , 0.0625],
             [0.    , 0.0625, 0.3125]], dtype=float32)""",
    ("blur", 3): """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.ones((1, 4, 4, 4, 2))                              # (N, D, H, W, C)
      >>> jaxpool.blur_pool3d(x, 3).shape
      (1, 2, 2, 2, 2)""",
    ("max", 1): """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.array([0.0, 4.0, 0.0, 0.0, 0.0, 8.0])[:, None]
      >>> jaxpool.max_blur_pool1d(x, 3)[:, 0]        # max pooled: [4, 4, 0, 0, 8]
      Array([3., 1., 4.], dtype=float32)""",
    ("max", 2): """>>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.eye(5)[None, None]                                 # (N, C, H, W)
      >>> jaxpool.max_blur_pool2d(x, 3, channels_first=True)[0, 0]
      Array([[0.5625, 0.3125],
             [0.3125, 0.875 ]], dtype=float32)""",
    ("max", 3): """>>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.max_blur_pool3d(jnp.ones((2, 5, 5, 5, 3)), 3).shape
      (2, 2, 2, 2, 3)""",
}


def _doc(template: str, kind: str, n: int):
    spatial = {1: "L", 2: "H, W", 3: "D, H, W"}[n]

    def decorate(function):
        function.__doc__ = template.format(
            n=n,
            kornia=(_KORNIA if kind == "blur" else _KORNIA_MAX)[n],
            origin=_ORIGIN[n],
            layout=_LAYOUT.format(spatial=spatial),
            example=_EXAMPLES[kind, n],
        )
        return function

    return decorate


@_doc(_BLUR_DOC, "blur", 1)
def blur_pool1d(x: ArrayLike, kernel_size, stride=2, *, channels_first=False) -> jax.Array:
    return _blur_pool("blur_pool1d", 1, x, kernel_size, stride, channels_first)


@_doc(_BLUR_DOC, "blur", 2)
def blur_pool2d(x: ArrayLike, kernel_size, stride=2, *, channels_first=False) -> jax.Array:
    return _blur_pool("blur_pool2d", 2, x, kernel_size, stride, channels_first)


@_doc(_BLUR_DOC, "blur", 3)
def blur_pool3d(x: ArrayLike, kernel_size, stride=2, *, channels_first=False) -> jax.Array:
    return _blur_pool("blur_pool3d", 3, x, kernel_size, stride, channels_first)


@_doc(_MAX_BLUR_DOC, "max", 1)
def max_blur_pool1d(x: ArrayLike, kernel_size, stride=2, max_pool_size=2, *,
                    channels_first=False) -> jax.Array:
    return _max_blur_pool("max_blur_pool1d", 1, x, kernel_size, stride, max_pool_size,
                          channels_first)


@_doc(_MAX_BLUR_DOC, "max", 2)
def max_blur_pool2d(x: ArrayLike, kernel_size, stride=2, max_pool_size=2, *,
                    channels_first=False) -> jax.Array:
    return _max_blur_pool("max_blur_pool2d", 2, x, kernel_size, stride, max_pool_size,
                          channels_first)


@_doc(_MAX_BLUR_DOC, "max", 3)
def max_blur_pool3d(x: ArrayLike, kernel_size, stride=2, max_pool_size=2, *,
                    channels_first=False) -> jax.Array:
    return _max_blur_pool("max_blur_pool3d", 3, x, kernel_size, stride, max_pool_size,
                          channels_first)
