"""Tests of jaxpool._roi_align against torchvision 0.28.0's pure-PyTorch RoIAlign,
``torchvision.ops.roi_align._roi_align`` (forward and gradient with respect to the
features), and against a transcription of its compiled kernel where the two differ.

``_roi_align`` and the compiled kernels (``torchvision/csrc/ops/cpu/roi_align_kernel.cpp``,
which ``torchvision.ops.roi_align`` runs on CPU and CUDA, and which jaxpool follows)
differ for boxes far outside the map:

1. a sample outside ``[-1, L]`` reads 0 in the kernels, the border in ``_roi_align``;
2. ``_roi_align`` computes an empty adaptive box's unused sample slots at 0 / 0 = NaN
   coordinates; its forward masks them, but their NaN weights reach its gradient
   (NaN * 0) at pixel (0, 0); the kernels have no such slots;
3. ``_roi_align`` takes at most ``L`` adaptive samples per bin along an axis of length
   ``L``; the kernels take them all.

``torchvision_roi_align(..., kernel_rules=True)`` is ``_roi_align`` with its bilinear
interpolation wrapped to apply the kernels' rules 1 and 2 (its own code otherwise); the
sweeps keep to boxes where rule 3 does not arise, and ``kernel_reference`` (a loop over
every sample, as the C++ kernel) covers it. Boxes where none of the three arises are
compared with ``_roi_align`` unchanged.
"""

import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import export

import jaxpool
from tests.torch_oracles import import_torchvision

import_torchvision()
REFERENCE = sys.modules["torchvision.ops.roi_align"]  # the module; the package exports the function
RTOL, ATOL = 1e-5, 2e-6
SWEEP = settings(max_examples=max(settings.default.max_examples // 3, 5))


def _kernel_rules_interpolate(original):
    def interpolate(features, batch, y, x, ymask, xmask):
        height, width = features.shape[-2:]
        if ymask is not None:  # rule 2: unused slots at a finite stand-in
            y = torch.where(ymask[:, None, :], y, 0)
            x = torch.where(xmask[:, None, :], x, 0)
        values = original(features, batch, y, x, ymask, xmask)  # (K, C, PH, PW, IY, IX)
        inside_y = (y >= -1) & (y <= height)  # rule 1
        inside_x = (x >= -1) & (x <= width)
        inside = inside_y[:, None, :, None, :, None] & inside_x[:, None, None, :, None, :]
        return torch.where(inside, values, 0)

    return interpolate


def torchvision_roi_align(x, rois, output_size, scale, ratio, aligned, *, kernel_rules):
    """torchvision's ``_roi_align`` on ``(N, C, H, W)`` and ``(K, 5)`` tensors."""
    original = REFERENCE._bilinear_interpolate
    if kernel_rules:
        REFERENCE._bilinear_interpolate = _kernel_rules_interpolate(original)
    try:
        return REFERENCE._roi_align(x, rois, scale, output_size[0], output_size[1], ratio, aligned)
    finally:
        REFERENCE._bilinear_interpolate = original


def kernel_reference(x, rois, output_size, scale, ratio, aligned):
    """The compiled kernel's forward, sample by sample, in float64 (NumPy)."""
    _, channels, height, width = x.shape
    out = np.zeros((len(rois), channels, *output_size))
    for k, (index, *box) in enumerate(np.asarray(rois, np.float64)):
        offset = 0.5 if aligned else 0.0
        x1, y1, x2, y2 = (c * scale - offset for c in box)
        sizes = [y2 - y1, x2 - x1]
        if not aligned:
            sizes = [max(s, 1.0) for s in sizes]
        bins = [s / p for s, p in zip(sizes, output_size, strict=True)]
        grid = [ratio if ratio > 0 else int(np.ceil(s / p)) for s, p in zip(sizes, output_size, strict=True)]
        image = x[int(index)].astype(np.float64)
        for ph in range(output_size[0]):
            for pw in range(output_size[1]):
                total = np.zeros(channels)
                for iy in range(grid[0]):
                    y = y1 + ph * bins[0] + (iy + 0.5) * bins[0] / grid[0]
                    for ix in range(grid[1]):
                        xx = x1 + pw * bins[1] + (ix + 0.5) * bins[1] / grid[1]
                        if not (-1 <= y <= height and -1 <= xx <= width):
                            continue
                        yc, xc = max(y, 0.0), max(xx, 0.0)
                        y0, x0 = min(int(yc), height - 1), min(int(xc), width - 1)
                        yc, xc = (float(y0) if y0 == height - 1 else yc), (float(x0) if x0 == width - 1 else xc)
                        y_hi, x_hi = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
                        ly, lx = yc - y0, xc - x0
                        total += ((1 - ly) * (1 - lx) * image[:, y0, x0] + (1 - ly) * lx * image[:, y0, x_hi]
                                  + ly * (1 - lx) * image[:, y_hi, x0] + ly * lx * image[:, y_hi, x_hi])
                out[k, :, ph, pw] = total / max(grid[0] * grid[1], 1)
    return out


def _rois(boxes, batch):
    return np.concatenate([np.asarray(batch, np.float32)[:, None], boxes], axis=1)


def compare(x, boxes, batch, output_size, scale, ratio, aligned, *, channels_first, form="array",
            kernel_rules=True, traced=False, bound=None, seed=0):
    """jaxpool against the torchvision reference: forward, and the vector-Jacobian product
    with respect to the features. ``x`` is ``(N, C, H, W)``; ``boxes`` ``(K, 4)``."""
    rois = _rois(boxes, batch)
    t_x = torch.tensor(x, requires_grad=True)
    t_out = torchvision_roi_align(t_x, torch.tensor(rois), output_size, scale, ratio, aligned,
                                  kernel_rules=kernel_rules)
    cotangent = np.random.default_rng(seed).integers(-3, 4, size=t_out.shape).astype(np.float32)
    (t_grad,) = torch.autograd.grad(t_out, t_x, torch.tensor(cotangent), allow_unused=True)
    t_grad = np.zeros_like(x) if t_grad is None else t_grad.numpy()
    if form == "list":
        given = [boxes[batch.astype(int) == i] for i in range(x.shape[0])]
        order = np.argsort(batch.astype(int), kind="stable")  # the list form is image-major
    else:
        given, order = rois, np.arange(len(rois))

    def pool(v, b):
        return jaxpool.roi_align(v, b, output_size, scale, ratio, aligned, channels_first=channels_first,
                                 max_sampling_ratio=bound)

    features = x if channels_first else np.moveaxis(x, 1, -1)
    function = jax.jit(pool) if traced else (lambda v, b: pool(v, b))
    out, vjp = jax.vjp(lambda v: function(v, given), jnp.asarray(features))
    expected = t_out.detach().numpy()[order]
    if not channels_first:
        expected, cotangent = np.moveaxis(expected, 1, -1), np.moveaxis(cotangent, 1, -1)
    chex.assert_shape(out, expected.shape)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=RTOL, atol=ATOL, err_msg="forward")
    (grad,) = vjp(jnp.asarray(cotangent[order]))
    expected_grad = t_grad if channels_first else np.moveaxis(t_grad, 1, -1)
    np.testing.assert_allclose(np.asarray(grad), expected_grad, rtol=RTOL, atol=ATOL, err_msg="gradient")


def _extents(rng, kind, length, bins):
    """``(start, end)`` in map coordinates; sizes stay within ``bins * length`` (rule 3)."""
    limit = bins * length
    if kind == "inside":
        start = rng.uniform(0, length - 1) if length > 1 else 0.0
        return start, min(rng.uniform(start, length - 1) if length > 1 else 0.5, start + limit)
    if kind == "partly":
        start = rng.uniform(-4, 0)
        return start, start + rng.uniform(0.5, limit)
    if kind == "far":
        start = rng.uniform(length + 1.5, length + 6)
        return start, start + rng.uniform(0.0, limit)
    if kind == "empty":
        start = rng.uniform(-1, length)
        return start, start
    if kind == "inverted":
        start = rng.uniform(0, length)
        return start, start - rng.uniform(0.1, 2)
    start = rng.uniform(0, length - 1) if length > 1 else 0.0  # small: inside too
    return start, start + rng.uniform(0.01, 0.99)


KINDS = ("inside", "partly", "far", "empty", "inverted", "small")


@st.composite
def roi_case(draw, kinds=KINDS):
    images, channels = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    pooled = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    count = draw(st.integers(0, 5))
    box_kinds = [(draw(st.sampled_from(kinds)), draw(st.sampled_from(kinds))) for _ in range(count)]
    return dict(
        images=images, channels=channels, height=height, width=width, pooled=pooled,
        kinds=box_kinds, ratio=draw(st.sampled_from([-1, 0, 1, 2, 3])), aligned=draw(st.booleans()),
        scale=draw(st.sampled_from([1.0, 0.5, 0.75, 2.0])), channels_first=draw(st.booleans()),
        form=draw(st.sampled_from(["array", "list"])), traced=draw(st.booleans()),
        fractional_index=draw(st.booleans()), seed=draw(st.integers(0, 2**16)),
    )


def _materialise(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["images"], case["channels"], case["height"], case["width"]))
    boxes = np.zeros((len(case["kinds"]), 4), np.float32)
    for k, (kind_y, kind_x) in enumerate(case["kinds"]):
        boxes[k, [0, 2]] = _extents(rng, kind_x, case["width"], case["pooled"][1])
        boxes[k, [1, 3]] = _extents(rng, kind_y, case["height"], case["pooled"][0])
    boxes /= case["scale"]
    batch = rng.integers(0, case["images"], size=len(boxes)).astype(np.float32)
    if case["fractional_index"] and case["form"] == "array":
        batch += 0.4  # truncated, as torchvision's int cast
    return x.astype(np.float32), boxes, batch


# ----------------------------------------------------------------------------------
# Parity


@SWEEP
@given(roi_case())
def test_roi_align_matches_torchvision(case):
    x, boxes, batch = _materialise(case)
    bound = max(case["height"], case["width"]) if case["traced"] and case["ratio"] <= 0 else None
    compare(x, boxes, batch, case["pooled"], case["scale"], case["ratio"], case["aligned"],
            channels_first=case["channels_first"], form=case["form"], traced=case["traced"],
            bound=bound, seed=case["seed"])


@SWEEP
@given(roi_case(kinds=("inside", "small")))
def test_boxes_inside_the_map_match_the_unchanged_reference(case):
    """Where none of the three differences arises, ``_roi_align`` as it is."""
    x, boxes, batch = _materialise(case)
    compare(x, boxes, batch, case["pooled"], case["scale"], case["ratio"], case["aligned"],
            channels_first=case["channels_first"], form=case["form"], kernel_rules=False,
            seed=case["seed"])


@pytest.mark.parametrize("ratio", [-1, 0, 1, 2, 5])
@pytest.mark.parametrize("aligned", [False, True])
def test_every_sampling_ratio_form_with_boxes_partly_outside(ratio, aligned):
    rng = np.random.default_rng(ratio + 1 + 10 * aligned)
    x = rng.standard_normal((2, 3, 11, 13)).astype(np.float32)
    boxes = np.array([[-2.5, -1.2, 6.3, 4.0], [8.0, 7.0, 16.5, 14.0], [3.1, 2.2, 9.9, 10.4],
                      [-3.0, 5.0, -0.6, 6.5], [10.0, -4.0, 14.0, 0.5]], np.float32)
    batch = np.array([0, 1, 1, 0, 1], np.float32)
    for output_size in ((2, 2), (3, 5), (7, 7)):
        compare(x, boxes, batch, output_size, 1.0, ratio, aligned, channels_first=True)
        compare(x, boxes * 4, batch, output_size, 0.25, ratio, aligned, channels_first=False)


def test_empty_boxes():
    x = np.random.default_rng(1).standard_normal((2, 2, 6, 6)).astype(np.float32)
    degenerate = np.array([[2.0, 2.0, 2.0, 2.0], [1.0, 3.0, 4.0, 3.0], [5.5, 0.0, 5.5, 4.0]], np.float32)
    for ratio in (-1, 2):
        for aligned in (False, True):
            compare(x, degenerate, np.array([0, 1, 1], np.float32), (2, 3), 1.0, ratio, aligned,
                    channels_first=True)
    # An aligned empty box with adaptive sampling has no samples: zeros, and no gradient.
    out = jaxpool.roi_align(jnp.asarray(x), [degenerate[:1]], 2, aligned=True, channels_first=True)
    np.testing.assert_array_equal(out, np.zeros((1, 2, 2, 2)))
    for no_boxes in (np.zeros((0, 5), np.float32), [], [np.zeros((0, 4)), np.zeros((0, 4))]):
        chex.assert_shape(jaxpool.roi_align(jnp.asarray(x), no_boxes, (3, 2), channels_first=True), (0, 2, 3, 2))
        grad = jax.grad(lambda v, b=no_boxes: jaxpool.roi_align(v, b, 2).sum())(jnp.ones((2, 6, 6, 2)))
        np.testing.assert_array_equal(grad, np.zeros((2, 6, 6, 2)))


def test_where_the_unchanged_reference_differs():
    """Rules 1 and 2 of the module docstring, shown on the reference itself."""
    x = torch.arange(100.0).reshape(1, 1, 10, 10)
    far = torch.tensor([[0.0, 20.0, 0.0, 30.0, 4.0]])  # entirely right of the map
    border = REFERENCE._roi_align(x, far, 1.0, 2, 2, 2, False)
    np.testing.assert_array_equal(border.numpy()[0, 0], [[19, 19], [39, 39]])  # the last column
    ours = jaxpool.roi_align(x.numpy(), far.numpy(), 2, 1.0, 2, channels_first=True)
    np.testing.assert_array_equal(ours[0, 0], np.zeros((2, 2)))
    compare(x.numpy(), far.numpy()[:, 1:], np.zeros(1, np.float32), (2, 2), 1.0, 2, False,
            channels_first=True)
    t_x = x.clone().requires_grad_(True)
    empty = torch.tensor([[0.0, 3.0, 3.0, 3.0, 3.0]])
    REFERENCE._roi_align(t_x, empty, 1.0, 2, 2, -1, True).sum().backward()
    assert torch.isnan(t_x.grad[0, 0, 0, 0])  # rule 2
    grad = jax.grad(lambda v: jaxpool.roi_align(v, empty.numpy(), 2, aligned=True,
                                                channels_first=True).sum())(jnp.asarray(x.numpy()))
    np.testing.assert_array_equal(grad, np.zeros((1, 1, 10, 10)))


@pytest.mark.parametrize("aligned", [False, True])
def test_boxes_far_larger_than_the_map_take_every_sample(aligned):
    """Rule 3: the adaptive count exceeds the map's size; compared with the kernel's loop."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 2, 4, 5)).astype(np.float32)
    rois = np.array([[0, -30.3, -2.1, 41.7, 37.3], [0, 1.0, 1.0, 3.0, 3.0]], np.float32)
    for ratio in (-1, 3):
        expected = kernel_reference(x, rois, (2, 3), 1.0, ratio, aligned)
        out = jaxpool.roi_align(x, rois, (2, 3), 1.0, ratio, aligned, channels_first=True)
        np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-6)
    # The loop is the kernel: it agrees with the reference where rule 3 does not arise.
    reference = torchvision_roi_align(torch.tensor(x), torch.tensor(rois[1:]), (2, 3), 1.0, -1, aligned,
                                      kernel_rules=True)
    np.testing.assert_allclose(kernel_reference(x, rois[1:], (2, 3), 1.0, -1, aligned), reference.numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_narrow_floats_are_sampled_in_float32(dtype):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((2, 9, 9, 4)), dtype)
    rois = np.array([[0, 1.5, 0.5, 7.0, 8.2], [1, -1.0, 2.0, 5.0, 4.0]], np.float32)
    out = jaxpool.roi_align(x, rois, 3, 0.9)
    assert out.dtype == dtype
    wide = jaxpool.roi_align(x.astype(jnp.float32), rois, 3, 0.9)
    np.testing.assert_allclose(np.asarray(out, np.float32), wide, rtol=float(jnp.finfo(dtype).eps), atol=1e-6)
    grad = jax.grad(lambda v: jaxpool.roi_align(v, rois, 3).astype(jnp.float32).sum())(x)
    assert grad.dtype == dtype


# ----------------------------------------------------------------------------------
# The static bound of adaptive sampling

X = jnp.asarray(np.random.default_rng(4).standard_normal((2, 12, 12, 3)), jnp.float32)
ROIS = jnp.array([[0, 0.0, 0.0, 3.0, 3.0], [1, 0.0, 0.0, 11.0, 7.0], [0, 2.0, 2.0, 4.0, 9.0]])


def moved(rois, shift=0.0, scale=1.0):
    """The boxes' coordinates scaled and shifted, their batch indices kept."""
    return rois.at[:, 1:].set(rois[:, 1:] * scale + shift)


def test_concrete_boxes_without_a_bound_take_their_own_counts():
    # Box 1 needs ceil(7 / 2) x ceil(11 / 2) = 4 x 6 samples per bin.
    # More slots change only the order of the sum (masked terms are zeros).
    free = jaxpool.roi_align(X, ROIS, 2)
    np.testing.assert_allclose(jaxpool.roi_align(X, ROIS, 2, max_sampling_ratio=(4, 6)), free,
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jaxpool.roi_align(X, ROIS, 2, max_sampling_ratio=9), free,
                               rtol=1e-6, atol=1e-6)
    traced = jax.jit(lambda b: jaxpool.roi_align(X, b, 2, max_sampling_ratio=6))(ROIS)
    np.testing.assert_allclose(traced, free, rtol=1e-6, atol=1e-6)
    # Boxes closed over by a jitted function stay concrete: no bound needed.
    closed = jax.jit(lambda v: jaxpool.roi_align(v, ROIS, 2))(X)
    np.testing.assert_allclose(closed, free, rtol=1e-6, atol=1e-6)


def test_a_concrete_box_over_the_bound_is_refused():
    message = (r"roi_align: box 1 takes 4 x 6 sampling points per bin \(ceil\(roi_height / 2\) x "
               r"ceil\(roi_width / 2\)\), more than max_sampling_ratio=\(5, 5\) allows")
    with pytest.raises(ValueError, match=message):
        jaxpool.roi_align(X, ROIS, 2, max_sampling_ratio=5)


def test_traced_boxes_need_a_bound_and_give_nan_past_it():
    with pytest.raises(ValueError, match=r"with traced boxes .* pass max_sampling_ratio="):
        jax.jit(lambda b: jaxpool.roi_align(X, b, 2))(ROIS)
    out = jax.jit(lambda b: jaxpool.roi_align(X, b, 2, max_sampling_ratio=(4, 5)))(ROIS)
    assert np.isnan(np.asarray(out[1])).all()
    expected = jaxpool.roi_align(X, ROIS, 2)
    np.testing.assert_allclose(out[0::2], expected[0::2], rtol=1e-6, atol=1e-6)
    # A fixed sampling ratio needs none.
    fixed = jax.jit(lambda b: jaxpool.roi_align(X, b, 2, sampling_ratio=2))(ROIS)
    np.testing.assert_allclose(fixed, jaxpool.roi_align(X, ROIS, 2, sampling_ratio=2), rtol=1e-6, atol=1e-6)


def test_traced_batch_index_outside_the_input_gives_nan():
    rois = ROIS.at[0, 0].set(2.0).at[2, 0].set(-1.0)
    out = jax.jit(lambda b: jaxpool.roi_align(X, b, 2, sampling_ratio=2))(rois)
    assert np.isnan(np.asarray(out[0])).all() and np.isnan(np.asarray(out[2])).all()
    assert np.isfinite(np.asarray(out[1])).all()


# ----------------------------------------------------------------------------------
# Transformations


def test_boxes_get_no_gradient():
    grad = jax.grad(lambda b: jaxpool.roi_align(X, b, 2, sampling_ratio=2).sum())(ROIS)
    np.testing.assert_array_equal(grad, np.zeros(ROIS.shape))


class TransformTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_variants(self):
        pooled = self.variant(lambda v, b: jaxpool.roi_align(v, b, (2, 3), 0.5, -1, True,
                                                             max_sampling_ratio=6))(X, moved(ROIS, scale=2))
        np.testing.assert_allclose(pooled, jaxpool.roi_align(X, moved(ROIS, scale=2), (2, 3), 0.5, -1, True),
                                   rtol=1e-6, atol=1e-6)

    def test_no_retracing_for_new_boxes(self):
        @jax.jit
        @chex.assert_max_traces(n=1)
        def pooled(v, b):
            return jaxpool.roi_align(v, b, 2, max_sampling_ratio=8)

        for shift in (0.0, 1.0, 2.5):
            pooled(X, moved(ROIS, shift))

    def test_vmap_over_box_sets(self):
        sets = jnp.stack([ROIS, moved(ROIS, 1.5)])
        mapped = jax.vmap(lambda b: jaxpool.roi_align(X, b, 2, sampling_ratio=2))(sets)
        for i in range(2):
            np.testing.assert_allclose(mapped[i], jaxpool.roi_align(X, sets[i], 2, sampling_ratio=2),
                                       rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------
# Errors

BAD_INPUTS = [
    (lambda: jaxpool.roi_align(X.astype(jnp.int32), ROIS, 2), TypeError, "roi_align: input must have a floating dtype"),
    (lambda: jaxpool.roi_align(X[0], ROIS, 2), ValueError, r"expected an input of shape \(N, H, W, C\), but got shape \(12, 12, 3\)"),
    (lambda: jaxpool.roi_align(X, ROIS[:, 1:], 2), ValueError, r"boxes must be an array of shape \(K, 5\) .* but got an array of shape \(3, 4\)"),
    (lambda: jaxpool.roi_align(X, [ROIS], 2), ValueError, r"boxes\[0\] has shape \(3, 5\)"),
    (lambda: jaxpool.roi_align(X, [ROIS[:, 1:]] * 3, 2), ValueError, "a list of 3 per-image box arrays, but x holds 2 images"),
    (lambda: jaxpool.roi_align(X, "boxes", 2), TypeError, "boxes must be an array"),
    (lambda: jaxpool.roi_align(X, ROIS > 0, 2), TypeError, "boxes must have a floating or integer dtype"),
    (lambda: jaxpool.roi_align(X, ROIS, 0), ValueError, "output_size must be positive, but got output_size=0"),
    (lambda: jaxpool.roi_align(X, ROIS, (2, 2, 2)), ValueError, "output_size must either be a single int"),
    (lambda: jaxpool.roi_align(X, ROIS, 2, 0.0), ValueError, "spatial_scale must be a positive finite number"),
    (lambda: jaxpool.roi_align(X, ROIS, 2, float("inf")), ValueError, "spatial_scale must be a positive finite number"),
    (lambda: jaxpool.roi_align(X, ROIS, 2, "1"), TypeError, "spatial_scale must be a real number"),
    (lambda: jaxpool.roi_align(X, ROIS, 2, 1.0, 2.0), TypeError, "sampling_ratio must be an int"),
    (lambda: jaxpool.roi_align(X, ROIS, 2, aligned=1), TypeError, "aligned must be a bool"),
    (lambda: jaxpool.roi_align(X, ROIS, 2, max_sampling_ratio=0), ValueError, "max_sampling_ratio must be at least 1"),
    (lambda: jaxpool.roi_align(X, ROIS, 2, sampling_ratio=2, max_sampling_ratio=4), ValueError, r"max_sampling_ratio only applies to adaptive sampling \(sampling_ratio <= 0\)"),
    (lambda: jaxpool.roi_align(X, ROIS.at[1, 0].set(2.0), 2), ValueError, r"box 1 has batch index 2.0, but x holds 2 images \(indices 0 to 1\)"),
    (lambda: jaxpool.roi_align(X, ROIS.at[2, 3].set(jnp.nan), 2), ValueError, "box 2 has a coordinate that is not finite"),
    (lambda: jaxpool.roi_align(X, ROIS.at[0, 1].set(3e38), 2, 2.0), ValueError, "box 0 has a coordinate that is not finite in float32 once scaled"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_traced_boxes_export_for_cuda_and_tpu():
    """The export table of tests/test_kernels.py holds concrete boxes; here they are an
    argument of the exported function (adaptive sampling with its bound), with the gradient."""
    def pooled(v, b):
        return jaxpool.roi_align(v, b, 3, 0.5, -1, True, max_sampling_ratio=4)

    def loss(v, b):
        return jnp.sum(jnp.sin(pooled(v, b)))

    specs = (jax.ShapeDtypeStruct((2, 12, 12, 3), jnp.float32), jax.ShapeDtypeStruct((5, 5), jnp.float32))
    for function in (pooled, jax.grad(loss)):
        exported = export.export(jax.jit(function), platforms=("cuda", "tpu"))(*specs)
        assert exported.platforms == ("cuda", "tpu")
