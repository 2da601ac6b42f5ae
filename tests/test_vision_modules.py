"""Tests of jaxpool/_vision_modules.py: BlurPool, MaxBlurPool, RoIAlign and
SpatialPyramidPool are their ops (tests/test_antialias.py, test_roi_align.py and
test_pyramid.py compare the ops with kornia, torchvision and torch), with the
configuration checked at construction, in linen and NNX alike (the NNX twins' numbers:
tests/test_nnx_vision.py)."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpool
import jaxpool.nnx as jpn

X = jnp.asarray(np.random.default_rng(0).standard_normal((2, 12, 10, 3)), jnp.float32)
BOXES = np.array([[0, 1.0, 2.0, 9.0, 11.0], [1, -2.0, 0.5, 4.0, 6.0], [1, 3.0, 3.0, 3.5, 8.0]],
                 np.float32)
PER_IMAGE = [BOXES[:1, 1:], BOXES[1:, 1:]]

# (module, the op call it must equal, input)
CASES = [
    (jaxpool.BlurPool((3, 3)), lambda v: jaxpool.blur_pool2d(v, 3), X),
    (jaxpool.BlurPool((4, 2), (2, 3)), lambda v: jaxpool.blur_pool2d(v, (4, 2), (2, 3)), X),
    (jaxpool.BlurPool((3,), channels_first=True),
     lambda v: jaxpool.blur_pool1d(v, 3, channels_first=True), X[0]),
    (jaxpool.BlurPool((3, 3, 3), 1), lambda v: jaxpool.blur_pool3d(v, 3, 1), X[..., None]),
    (jaxpool.MaxBlurPool((3, 3)), lambda v: jaxpool.max_blur_pool2d(v, 3), X),
    (jaxpool.MaxBlurPool((5, 3), 3, (2, 4)), lambda v: jaxpool.max_blur_pool2d(v, (5, 3), 3, (2, 4)), X),
    (jaxpool.MaxBlurPool((2,), max_pool_size=3), lambda v: jaxpool.max_blur_pool1d(v, 2, 2, 3), X[0]),
    (jaxpool.SpatialPyramidPool(), jaxpool.spatial_pyramid_pool, X),
    (jaxpool.SpatialPyramidPool(((2, 3), 1), "avg", channels_first=True),
     lambda v: jaxpool.spatial_pyramid_pool(v, ((2, 3), 1), "avg", channels_first=True), X),
    (jaxpool.SpatialPyramidPool((1, 3), spatial_dims=1),
     lambda v: jaxpool.spatial_pyramid_pool(v, (1, 3), spatial_dims=1), X),
]
IDS = [f"{type(case[0]).__name__}{i}" for i, case in enumerate(CASES)]

ROI_CASES = [
    (jaxpool.RoIAlign(3, 0.5, -1), lambda v, b: jaxpool.roi_align(v, b, 3, 0.5), BOXES),
    (jaxpool.RoIAlign((2, 4), 1.0, 2, True),
     lambda v, b: jaxpool.roi_align(v, b, (2, 4), 1.0, 2, True), PER_IMAGE),
    (jaxpool.RoIAlign(2, 0.8, 0, max_sampling_ratio=(5, 6), channels_first=True),
     lambda v, b: jaxpool.roi_align(v, b, 2, 0.8, 0, max_sampling_ratio=(5, 6), channels_first=True),
     BOXES),
]


@pytest.mark.parametrize("module, op, x", CASES, ids=IDS)
def test_module_equals_its_op(module, op, x):
    variables = module.init(jax.random.key(0), x)
    assert variables == {}  # no parameters, no state
    chex.assert_trees_all_equal(module.apply(variables, x), op(x))


@pytest.mark.parametrize("module, op, boxes", ROI_CASES)
def test_roi_align_takes_the_boxes_as_its_second_input(module, op, boxes):
    x = jnp.moveaxis(X, -1, 1) if module.channels_first else X
    assert module.init(jax.random.key(0), x, boxes) == {}
    chex.assert_trees_all_equal(module.apply({}, x, boxes), op(x, boxes))
    chex.assert_trees_all_equal(module.apply({}, x, boxes=boxes), op(x, boxes))


def test_traced_boxes_under_jit_compile_once():
    pool = jaxpool.RoIAlign(2, 1.0, -1, max_sampling_ratio=6)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def forward(x, boxes):
        return pool.apply({}, x, boxes)

    for shift in (0.0, 0.5, 1.5):  # new box values, the same shapes: no new trace
        boxes = jnp.asarray(BOXES).at[:, 1:].add(shift)
        chex.assert_trees_all_close(forward(X, boxes), jaxpool.roi_align(X, boxes, 2),
                                    rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"with traced boxes .* pass max_sampling_ratio="):
        jax.jit(lambda x, b: jaxpool.RoIAlign(2, 1.0, -1).apply({}, x, b))(X, BOXES)


class Head(nn.Module):
    """A classifier over maps of any size: anti-aliased downsampling, then a pyramid."""

    @nn.compact
    def __call__(self, x):
        x = jaxpool.MaxBlurPool((3, 3))(nn.relu(nn.Conv(4, (3, 3))(x)))
        x = jaxpool.BlurPool((3, 3), 1)(x)
        return nn.Dense(5)(jaxpool.SpatialPyramidPool((1, 2))(x))


class ModelTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_in_a_model_with_gradients(self):
        model = Head()
        params = model.init(jax.random.key(0), X)

        def loss(p, v):
            return jnp.mean(model.apply(p, v) ** 2)

        value, grads = self.variant(jax.value_and_grad(loss, argnums=(0, 1)))(params, X)
        assert np.isfinite(value)
        chex.assert_trees_all_equal_shapes(grads, (params, X))
        chex.assert_tree_all_finite(grads)

    def test_no_retracing_and_any_input_size(self):
        model = Head()
        params = model.init(jax.random.key(0), X)

        @jax.jit
        @chex.assert_max_traces(n=2)
        def forward(p, v):
            return model.apply(p, v)

        forward(params, X)
        forward(params, X + 1)  # the same shapes: no new trace
        chex.assert_shape(forward(params, jnp.ones((2, 17, 23, 3))), (2, 5))  # a new size


# ----------------------------------------------------------------------------------
# The configuration, checked at construction in both APIs (flags given by keyword, as
# NNX wants them)

BAD = [
    ("BlurPool", (3,), {}, TypeError, r"BlurPool: kernel_size must be a tuple with one entry per spatial dimension .* got kernel_size=3"),
    ("BlurPool", ((3, 3, 3, 3),), {}, ValueError, "kernel_size must have 1 or 2 or 3 entries"),
    ("BlurPool", ((0, 3),), {}, ValueError, "BlurPool: kernel size should be greater than zero"),
    ("BlurPool", ((3, 3), 0), {}, ValueError, "BlurPool: stride should be greater than zero"),
    ("BlurPool", ((3, 3), None), {}, TypeError, "BlurPool: stride must be an int or a tuple of 2 ints, but got None"),
    ("BlurPool", ((3, 3), (2, 2, 2)), {}, ValueError, "stride must either be a single int, or a tuple of 2 ints"),
    ("BlurPool", ((3, 3),), dict(channels_first=1), TypeError, "BlurPool: channels_first must be a bool"),
    ("MaxBlurPool", ((3, 3), 2, 0), {}, ValueError, "MaxBlurPool: max_pool_size must be positive, but got max_pool_size=0"),
    ("MaxBlurPool", ((3, 3), 2, 2.5), {}, TypeError, "MaxBlurPool: max_pool_size must be an int"),
    ("MaxBlurPool", ((3,), 2, (2, 2)), {}, ValueError, "max_pool_size must either be a single int, but got max_pool_size=\\(2, 2\\)"),
    ("MaxBlurPool", ((3, 3), None), {}, TypeError, "MaxBlurPool: stride must be an int"),
    ("RoIAlign", (0, 1.0, -1), {}, ValueError, "RoIAlign: output_size must be positive, but got output_size=0"),
    ("RoIAlign", ((7, None), 1.0, -1), {}, TypeError, "RoIAlign: output_size must be an int"),
    ("RoIAlign", ((2, 2, 2), 1.0, -1), {}, ValueError, "output_size must either be a single int, or a tuple of 2 ints"),
    ("RoIAlign", (7, 0.0, -1), {}, ValueError, "RoIAlign: spatial_scale must be a positive finite number, but got spatial_scale=0.0"),
    ("RoIAlign", (7, "1", -1), {}, TypeError, "RoIAlign: spatial_scale must be a real number"),
    ("RoIAlign", (7, 1.0, 2.0), {}, TypeError, "RoIAlign: sampling_ratio must be an int"),
    ("RoIAlign", (7, 1.0, -1), dict(aligned=1), TypeError, "RoIAlign: aligned must be a bool"),
    ("RoIAlign", (7, 1.0, -1), dict(max_sampling_ratio=0), ValueError, "RoIAlign: max_sampling_ratio must be at least 1, but got max_sampling_ratio=0"),
    ("RoIAlign", (7, 1.0, 2), dict(max_sampling_ratio=4), ValueError, r"max_sampling_ratio only applies to adaptive sampling \(sampling_ratio <= 0\)"),
    ("RoIAlign", (7, 1.0, -1), dict(channels_first="no"), TypeError, "RoIAlign: channels_first must be a bool"),
    ("SpatialPyramidPool", (4,), {}, TypeError, "SpatialPyramidPool: levels must be a non-empty sequence .* but got levels=4"),
    ("SpatialPyramidPool", ((),), {}, TypeError, "levels must be a non-empty sequence"),
    ("SpatialPyramidPool", ((1, 0),), {}, ValueError, r"every level's output size must be positive, but got levels=\(1, 0\)"),
    ("SpatialPyramidPool", ((1, (2, 2, 2)),), {}, ValueError, "levels must either be a single int, or a tuple of 2 ints"),
    ("SpatialPyramidPool", ((1, (2, 2)),), dict(spatial_dims=1), ValueError, "levels must either be a single int, but got levels=\\(2, 2\\)"),
    ("SpatialPyramidPool", ((1, 2), "mean"), {}, ValueError, "SpatialPyramidPool: mode must be 'max' or 'avg', but got mode='mean'"),
    ("SpatialPyramidPool", ((1, 2), max), {}, TypeError, "mode must be 'max' or 'avg', but got <built-in function max>"),
    ("SpatialPyramidPool", (), dict(spatial_dims=4), ValueError, "SpatialPyramidPool: spatial_dims must be 1, 2 or 3, but got spatial_dims=4"),
]


@pytest.mark.parametrize("api", ["linen", "nnx"])
@pytest.mark.parametrize("name, args, kwargs, error, message", BAD)
def test_bad_configuration_fails_at_construction(api, name, args, kwargs, error, message):
    """The ops' own rules (jaxpool._geometry's), with the module's name, before any input."""
    make = getattr(jaxpool if api == "linen" else jpn, name)
    with pytest.raises(error, match=message):
        make(*args, **kwargs)


@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_valid_configurations_are_not_refused(api):
    namespace = jaxpool if api == "linen" else jpn
    namespace.RoIAlign((7, 7), 1 / 32, 0, max_sampling_ratio=(2, 3), aligned=True)
    namespace.RoIAlign(1, 3, 4)  # an int scale, one bin
    namespace.MaxBlurPool((3, 5, 1), (1, 2, 3), 1)
    namespace.SpatialPyramidPool([[2, 3], 1])  # lists of lists
    namespace.SpatialPyramidPool(((1, 2, 3),), "avg", spatial_dims=3)


def test_a_bad_input_fails_at_the_call_with_the_op_s_message():
    with pytest.raises(ValueError, match=r"max_blur_pool2d: max_pool_size=\(13, 2\) is larger"):
        jaxpool.MaxBlurPool((3, 3), max_pool_size=(13, 2)).init(jax.random.key(0), X)
    with pytest.raises(ValueError, match=r"roi_align: expected an input of shape \(N, H, W, C\)"):
        jpn.RoIAlign(2, 1.0, -1)(X[0], BOXES)
