"""RoIAlign (He et al., 2017, "Mask R-CNN") with torchvision's numbers.

Each box is divided into ``output_size`` bins; each bin averages the feature map,
bilinearly interpolated, at a regular grid of sample points. The rules are those of
torchvision 0.28's compiled kernels (``torchvision/csrc/ops/cpu/roi_align_kernel.cpp``
and its CUDA twin), what ``torchvision.ops.roi_align`` computes on CPU and GPU:

* a box ``[x1, y1, x2, y2]`` in input coordinates covers ``[x1*s - o, x2*s - o]`` of the
  map (``s = spatial_scale``; ``o = 0.5`` when ``aligned``, else 0); without
  ``aligned`` its width and height are at least 1 (a malformed box becomes 1x1);
* bin ``p`` of ``P`` along an axis starts at ``start + p*b``, ``b = size / P``, and holds
  ``g`` samples at ``start + p*b + (i + 0.5)*b / g`` for ``i < g``; ``g`` is
  ``sampling_ratio`` if positive, else ``ceil(size / P)``, per box and axis;
* a sample is bilinear between the four pixels around it; coordinates in ``[-1, 0]``
  read the first row or column, in ``[L - 1, L]`` the last; a sample outside
  ``[-1, L]`` (or NaN) reads 0 but still counts;
* a bin's value is the sum over its samples divided by ``max(g_h * g_w, 1)``.

``torchvision.ops.roi_align._roi_align``, torchvision's pure-PyTorch version (used where
the compiled operators are missing, or for deterministic CUDA), differs in three places,
all for boxes outside or degenerate: it reads a sample outside ``[-1, L]`` at the border
instead of as 0; it takes at most ``L`` samples per bin along an axis of length ``L``;
and an empty adaptive box (no samples) gives it a NaN gradient at pixel (0, 0) (NaN
coordinates times a zero). Everywhere else the two agree; the tests compare jaxpool
with both.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxpool import _geometry as geometry
from jaxpool import _jax_internals as internals
from jaxpool._checks import as_array

_OP = "roi_align"


class _AxisSamples(NamedTuple):
    """The sample points of every box's bins along one axis (P bins, B sample slots)."""

    index: Any    # (K, P, B, 2) int32: the two pixels around each sample
    weight: Any   # (K, P, B, 2): their bilinear weights
    valid: Any    # (K, P, B) bool: the sample is one of the box's and inside [-1, L]
    grid: Any     # (K,): the box's sample count along the axis (a float)


def _extent(xp, start, end, *, pooled: int, ratio: int, aligned: bool, dtype):
    """Bin size and sample count per box along one axis, ``(K,)`` each."""
    size = end - start
    if not aligned:
        size = xp.maximum(size, dtype.type(1))  # malformed boxes become 1 pixel wide
    bin_size = size / dtype.type(pooled)
    if ratio > 0:
        return bin_size, xp.full(size.shape, ratio, dtype)
    return bin_size, xp.ceil(size / dtype.type(pooled))


def _axis_samples(xp, start, end, *, pooled: int, length: int, ratio: int, slots: int,
                  aligned: bool, dtype) -> _AxisSamples:
    """One axis of torchvision's sampling, in NumPy (concrete boxes) or jax.numpy.

    ``start`` and ``end`` are the box's scaled, offset coordinates, shape ``(K,)``; the
    arithmetic is torchvision's, operation by operation, in ``dtype``.
    """
    one = dtype.type(1)
    bin_size, grid = _extent(xp, start, end, pooled=pooled, ratio=ratio, aligned=aligned,
                             dtype=dtype)
    bins = xp.arange(pooled, dtype=dtype)[None, :, None]
    slot = xp.arange(slots, dtype=dtype)[None, None, :]
    box_start, box_bin, box_grid = (v[:, None, None] for v in (start, bin_size, grid))
    # torchvision's start + p*b + (i + 0.5)*b / g. Slots past the count are masked;
    # dividing them by at least 1 keeps them finite (an empty adaptive box has 0 / 0).
    spacing = xp.maximum(box_grid, one)
    point = box_start + bins * box_bin + (slot + dtype.type(0.5)) * box_bin / spacing
    valid = (point >= -1) & (point <= length) & (slot < box_grid)
    # Invalid samples are masked out; a finite stand-in keeps the casts below defined.
    point = xp.where(valid, xp.maximum(point, dtype.type(0)), dtype.type(0))
    last = dtype.type(length - 1)
    at_edge = point >= last
    point = xp.where(at_edge, last, point)
    low = xp.floor(point).astype(np.int32)
    high = xp.where(at_edge, low, low + 1)
    fraction = point - low.astype(dtype)
    weight = xp.stack([one - fraction, fraction], axis=-1)
    return _AxisSamples(xp.stack([low, high], axis=-1), weight, valid, grid)


@jax.jit
def _pool_samples(features, batch, rows: _AxisSamples, columns: _AxisSamples):
    """``(K, PH, PW, C)``: every bin's average of its bilinear samples of ``features``
    ``(N, H, W, C)``; ``batch`` ``(K,)`` says which image each box reads.

    One sample slot ``(iy, ix)`` at a time, for every box and bin at once (a scan over
    the slots, rows outside, as torchvision's loops): memory stays at the output's size
    whatever the number of samples, and each sample is added as torchvision adds it,
    ``total += w1*v1 + w2*v2 + w3*v3 + w4*v4`` with ``w1 = hy*hx``, ... .
    """
    compute = jnp.promote_types(features.dtype, jnp.float32)
    image = batch[:, None, None]

    def read(row, column):
        return features[image, row, column].astype(compute)  # (K, PH, PW, C)

    def over_rows(total, row_slot):
        y_index, y_weight, y_valid = row_slot  # (K, PH, 2), (K, PH, 2), (K, PH)
        low_y, high_y = y_index[:, :, None, 0], y_index[:, :, None, 1]
        hy, ly = y_weight[:, :, None, 0], y_weight[:, :, None, 1]

        def over_columns(total, column_slot):
            x_index, x_weight, x_valid = column_slot  # (K, PW, 2), (K, PW, 2), (K, PW)
            low_x, high_x = x_index[:, None, :, 0], x_index[:, None, :, 1]
            hx, lx = x_weight[:, None, :, 0], x_weight[:, None, :, 1]
            pairs = ((hy, hx), (hy, lx), (ly, hx), (ly, lx))
            w1, w2, w3, w4 = ((y_part * x_part)[..., None] for y_part, x_part in pairs)
            value = (w1 * read(low_y, low_x) + w2 * read(low_y, high_x)
                     + w3 * read(high_y, low_x) + w4 * read(high_y, high_x))
            valid = (y_valid[:, :, None] & x_valid[:, None, :])[..., None]
            return total + jnp.where(valid, value, 0), None

        return lax.scan(over_columns, total, _slots_first(columns))[0], None

    shape = (batch.shape[0], rows.index.shape[1], columns.index.shape[1], features.shape[-1])
    total = lax.scan(over_rows, jnp.zeros(shape, compute), _slots_first(rows))[0]
    count = jnp.maximum(rows.grid * columns.grid, 1).astype(compute)
    return total / count[:, None, None, None]


def _slots_first(samples: _AxisSamples):
    """The per-slot arrays of one axis, the slot axis leading (what a scan steps over)."""
    return tuple(jnp.moveaxis(a, 2, 0) for a in (samples.index, samples.weight, samples.valid))


class _Boxes(NamedTuple):
    pieces: list[Any]   # arrays of (K_i, 4) coordinates [x1, y1, x2, y2]
    batch: Any          # (K,): NumPy ints for the list form, else column 0 as given
    per_image: bool     # the list form
    traced: bool        # some coordinates are traced


def _box_array(value: Any, name: str):
    """A checked array of boxes: traced as given, concrete ones as NumPy arrays (a JAX
    array made of them under a trace would be traced)."""
    array = as_array(value, name, _OP)
    return array if internals.is_tracer(value) else np.asarray(value)


def _box_arrays(boxes: Any, images: int) -> _Boxes:
    """The boxes in either of torchvision's forms, their shapes checked."""
    if isinstance(boxes, (list, tuple)):
        if len(boxes) > images:
            raise ValueError(
                f"{_OP}: boxes is a list of {len(boxes)} per-image box arrays, but x holds "
                f"{images} images"
            )
        pieces = [_box_array(piece, f"boxes[{i}]") for i, piece in enumerate(boxes)]
        for i, piece in enumerate(pieces):
            if piece.ndim != 2 or piece.shape[1] != 4:
                raise ValueError(
                    f"{_OP}: each array of a list of boxes must have shape (K_i, 4) "
                    f"([x1, y1, x2, y2] per row), but boxes[{i}] has shape {tuple(piece.shape)}"
                )
        counts = [piece.shape[0] for piece in pieces]
        batch = np.repeat(np.arange(len(pieces), dtype=np.int32), counts)
        traced = any(internals.is_tracer(piece) for piece in pieces)
        return _Boxes(pieces, batch, True, traced)
    array = _box_array(boxes, "boxes")
    if array.ndim != 2 or array.shape[1] != 5:
        raise ValueError(
            f"{_OP}: boxes must be an array of shape (K, 5) ([batch_index, x1, y1, x2, y2] "
            f"per row) or a list of per-image (K_i, 4) arrays, but got an array of shape "
            f"{tuple(array.shape)}"
        )
    return _Boxes([array[:, 1:]], array[:, 0], False, internals.is_tracer(array))


def _concrete_boxes(boxes: _Boxes, images: int, scale, offset,
                    dtype) -> tuple[np.ndarray, np.ndarray]:
    """Scaled coordinates ``(K, 4)`` and batch indices of concrete boxes, checked."""
    coordinates = np.concatenate(
        [np.asarray(piece).astype(dtype) for piece in boxes.pieces] or [np.zeros((0, 4), dtype)]
    )
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = coordinates * scale - offset
    rows = np.arange(coordinates.shape[0])
    finite = np.isfinite(scaled).all(axis=1)
    if not finite.all():
        k = int(rows[~finite][0])
        raise ValueError(
            f"{_OP}: box {k} has a coordinate that is not finite in {dtype} once scaled by "
            f"spatial_scale: {coordinates[k].tolist()}"
        )
    if boxes.per_image:
        return scaled, boxes.batch
    index = np.asarray(boxes.batch, np.float64)
    whole = np.trunc(index)  # torchvision casts the float index to int
    bad = ~(np.isfinite(whole) & (whole >= 0) & (whole < images))
    if bad.any():
        k = int(rows[bad][0])
        raise ValueError(
            f"{_OP}: box {k} has batch index {float(index[k])}, but x holds {images} images "
            f"(indices 0 to {images - 1})"
        )
    return scaled, whole.astype(np.int32)


def _traced_boxes(boxes: _Boxes, images: int, scale, offset, dtype):
    """Scaled coordinates ``(K, 4)``, batch indices and (for a traced batch column) which
    boxes read an image of ``x``; the boxes get no gradient."""
    coordinates = lax.stop_gradient(
        jnp.concatenate([jnp.asarray(piece).astype(dtype) for piece in boxes.pieces])
    )
    if coordinates.shape[0] and not images:
        raise ValueError(f"{_OP}: x holds no images, but boxes has {coordinates.shape[0]} rows")
    scaled = coordinates * scale - offset
    if boxes.per_image:
        return scaled, jnp.asarray(boxes.batch), None
    index = jnp.trunc(lax.stop_gradient(boxes.batch).astype(dtype))
    usable = (index >= 0) & (index < images)
    return scaled, jnp.clip(index, 0, max(images - 1, 0)).astype(jnp.int32), usable


def _check_counts(grids: tuple[np.ndarray, np.ndarray], bound: tuple[int, int],
                  pooled: tuple[int, int]) -> None:
    over = (grids[0] > bound[0]) | (grids[1] > bound[1])
    if over.any():
        k = int(np.flatnonzero(over)[0])
        raise ValueError(
            f"{_OP}: box {k} takes {int(grids[0][k])} x {int(grids[1][k])} sampling points "
            f"per bin (ceil(roi_height / {pooled[0]}) x ceil(roi_width / {pooled[1]})), more "
            f"than max_sampling_ratio={bound} allows; fewer points would change its "
            "values. Raise the bound, or leave max_sampling_ratio=None for concrete boxes"
        )


def roi_align(
    x: ArrayLike,
    boxes,
    output_size,
    spatial_scale=1.0,
    sampling_ratio=-1,
    aligned=False,
    *,
    max_sampling_ratio=None,
    channels_first=False,
) -> jax.Array:
    """RoIAlign, as ``torchvision.ops.roi_align``: bilinear averages over box bins.

    Box ``k`` covers ``[x1, x2] x [y1, y2]`` times ``spatial_scale`` (minus 0.5 with
    ``aligned``, Detectron2's pixel model; without it the box is at least 1x1). It is
    divided into ``output_size`` bins; each bin averages ``g_h x g_w`` bilinear samples
    of image ``batch_index`` at the centres of a regular grid: ``g = sampling_ratio`` if
    positive, else (adaptive) ``ceil(box size / bins)`` per axis and box. A sample more
    than one pixel outside the map reads 0 (torchvision's compiled kernels; see the
    module docstring for where its pure-PyTorch ``_roi_align`` differs). The gradient
    flows to the features, as torchvision's; the boxes get none (zero, as torchvision's
    compiled operator, which returns no box gradient).

    **Adaptive sampling under jit.** The adaptive count depends on the boxes' values,
    but array shapes must be static, so jaxpool takes ``max_sampling_ratio`` slots per
    axis (an int, or ``(rows, columns)``) and masks the unused ones: every box still
    uses exactly its own count, and the cost grows with the bound's square.

    * Concrete boxes (NumPy arrays, or JAX arrays not traced: also those a jitted
      function closes over): without a bound, the bound is the boxes' largest count
      (each new largest count compiles anew); with one, a box that needs more is a
      ``ValueError`` naming the box, its count and the bound — never fewer points.
    * Traced boxes (arguments of ``jit``, ``vmap``, ``grad``): the bound is required (a
      ``ValueError`` says so), and a box that needs more than the bound, or has a
      non-finite size, cannot be refused at trace time: its output is NaN (all bins,
      all channels), never a silently different average. A traced ``(K, 5)`` batch
      index outside ``[0, N)`` gives NaN too.
    * ``sampling_ratio > 0`` needs no bound (and refuses one).

    Layout: ``x`` is ``(N, H, W, C)`` (channels-last) or, with ``channels_first=True``,
    ``(N, C, H, W)`` (torch's). bfloat16 and float16 features are interpolated and
    averaged in float32 (torchvision's CPU kernel has no bfloat16), with box geometry
    in float32 (float64 for float64 features).

    Args:
      x: feature maps, floating dtype.
      boxes: an array ``(K, 5)`` of ``[batch_index, x1, y1, x2, y2]`` rows (the index is
        truncated to an int, as torchvision's), or a list of up to ``N`` per-image arrays
        ``(K_i, 4)`` of ``[x1, y1, x2, y2]`` (image ``i`` for list entry ``i``). Floating
        or integer dtype; not differentiated.
      output_size: bins per box, an int or ``(height, width)``.
      spatial_scale: factor from box coordinates to the map's (e.g. 1/16 for a stride-16
        feature map); a positive finite number.
      sampling_ratio: samples per bin and axis; ``<= 0`` for the adaptive count.
      aligned: shift boxes by -0.5 pixel (Detectron2's ``ROIAlignV2``).
      max_sampling_ratio: static bound on the adaptive count (keyword-only), see above.
      channels_first: whether ``x`` is channels-first.

    Returns:
      ``(K, PH, PW, C)``, or ``(K, C, PH, PW)`` with ``channels_first``; ``x``'s dtype.

    Raises:
      TypeError: for a non-floating ``x``, a non-array box, or non-int sizes.
      ValueError: for a wrong shape of ``x`` or ``boxes``, non-positive sizes, a bad
        ``spatial_scale``; for concrete boxes a non-finite coordinate, a batch index
        outside ``x``, or an adaptive count over ``max_sampling_ratio``; for traced boxes
        with adaptive sampling, a missing ``max_sampling_ratio``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)      # (N, H, W, C): x[0, i, j, 0] = 4i + j
      >>> boxes = jnp.array([[0.0, 0.0, 0.0, 2.0, 2.0]])  # image 0, (x1, y1) to (x2, y2)
      >>> jaxpool.roi_align(x, boxes, 2)[0, ..., 0]      # one sample per bin, at its centre
      Array([[2.5, 3.5],
             [6.5, 7.5]], dtype=float32)
      >>> per_image = [jnp.array([[0.0, 0.0, 4.0, 4.0]])]  # the list form: image 0's boxes
      >>> pool = jax.jit(lambda b: jaxpool.roi_align(x, b, 2, max_sampling_ratio=2))
      >>> pool(per_image)[0, ..., 0]     # 2 x 2 samples per bin; those at 3.5 read row/column 3
      Array([[ 5.  ,  6.75],
             [12.  , 13.75]], dtype=float32)
    """
    array = as_array(x, "input", _OP, kind="float")
    channels_first = geometry.as_bool(channels_first, "channels_first", _OP)
    aligned = geometry.as_bool(aligned, "aligned", _OP)
    if array.ndim != 4:
        layout = "(N, C, H, W)" if channels_first else "(N, H, W, C)"
        raise ValueError(
            f"{_OP}: expected an input of shape {layout}, but got shape {tuple(array.shape)}"
            + ("" if channels_first else " (pass channels_first=True for torch's layout)")
        )
    axes = geometry.spatial_axes(array.shape, 2, channels_first, _OP)
    images, (height, width) = array.shape[0], (array.shape[axes[0]], array.shape[axes[1]])
    pooled, scale, ratio, bound = geometry.check_roi_align(
        _OP, output_size, spatial_scale, sampling_ratio, max_sampling_ratio)
    given = _box_arrays(boxes, images)
    dtype = np.dtype(jnp.promote_types(array.dtype, jnp.float32))
    offset = dtype.type(0.5 if aligned else 0.0)
    xp: Any
    if given.traced:
        if ratio <= 0 and bound is None:
            raise ValueError(
                f"{_OP}: with traced boxes (under jit, vmap or grad) the adaptive sampling "
                "count (sampling_ratio <= 0) depends on their values; pass "
                "max_sampling_ratio=, a static bound on it (boxes that need more give NaN), "
                "or a fixed sampling_ratio > 0"
            )
        scaled, image, usable = _traced_boxes(given, images, dtype.type(scale), offset, dtype)
        xp = jnp
    else:
        scaled, image = _concrete_boxes(given, images, dtype.type(scale), offset, dtype)
        usable, xp = None, np
    # Along y: [x1, y1, x2, y2] columns 1 and 3 and the bins' height; along x: 0 and 2.
    extents = [dict(start=scaled[:, lo], end=scaled[:, hi], pooled=p, ratio=ratio,
                    aligned=aligned, dtype=dtype)
               for lo, hi, p in ((1, 3, pooled[0]), (0, 2, pooled[1]))]
    slots: tuple[int, ...]
    if ratio > 0:
        slots = (ratio, ratio)
    elif bound is not None:
        slots = bound
    else:  # concrete boxes: the largest count they need
        slots = tuple(max(int(_extent(np, **e)[1].max(initial=1)), 1) for e in extents)
    rows, columns = (
        _axis_samples(xp, **e, length=length, slots=slot)
        for e, length, slot in zip(extents, (height, width), slots, strict=True)
    )
    if ratio <= 0 and bound is not None:
        if given.traced:
            fits = (rows.grid <= slots[0]) & (columns.grid <= slots[1])
            usable = fits if usable is None else usable & fits
        else:
            _check_counts((rows.grid, columns.grid), bound, pooled)

    features = jnp.moveaxis(array, 1, -1) if channels_first else array
    out = _pool_samples(features, jnp.asarray(image, jnp.int32), rows, columns)
    if usable is not None:
        out = jnp.where(usable[:, None, None, None], out, jnp.nan)
    out = out.astype(array.dtype)
    return jnp.moveaxis(out, -1, 1) if channels_first else out
