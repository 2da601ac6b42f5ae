"""Tests of jaxpool/nnx/_vision.py: the NNX twins of BlurPool, MaxBlurPool, RoIAlign and
SpatialPyramidPool give their linen twins' numbers (outputs and input gradients, float32
and bfloat16, under ``nnx.jit``), keep their configuration hashable, and do not retrace.
Both APIs' construction checks: tests/test_vision_modules.py."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxpool
import jaxpool.nnx as jpn
from tests.nnx_helpers import assert_parameter_free_twin, assert_twins_agree

X = np.random.default_rng(0).standard_normal((2, 11, 9, 3)).astype(np.float32)
BOXES = np.array([[0, 1.0, 2.0, 8.0, 10.0], [1, -2.0, 0.5, 4.0, 6.0]], np.float32)

# (linen module, its NNX twin, input)
CASES = [
    (jaxpool.BlurPool((3, 3)), lambda: jpn.BlurPool((3, 3)), X),
    (jaxpool.BlurPool((2, 4), (1, 2), channels_first=True),
     lambda: jpn.BlurPool((2, 4), (1, 2), channels_first=True), X),
    (jaxpool.MaxBlurPool((3,)), lambda: jpn.MaxBlurPool((3,)), X[0]),
    (jaxpool.MaxBlurPool((3, 3, 2), 1, (2, 1, 2)), lambda: jpn.MaxBlurPool((3, 3, 2), 1, (2, 1, 2)),
     X[..., None]),
    (jaxpool.SpatialPyramidPool(), lambda: jpn.SpatialPyramidPool(), X),
    (jaxpool.SpatialPyramidPool(((3, 2), 1), "avg", spatial_dims=2, channels_first=True),
     lambda: jpn.SpatialPyramidPool([[3, 2], 1], "avg", spatial_dims=2, channels_first=True), X),
]
IDS = [f"{type(case[0]).__name__}{i}" for i, case in enumerate(CASES)]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("linen, make, x", CASES, ids=IDS)
def test_nnx_module_is_its_linen_twin(linen, make, x, dtype):
    assert_parameter_free_twin(linen, make, x, dtype)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_roi_align_is_its_linen_twin_under_jit(dtype):
    chex.clear_trace_counter()  # the other dtype's run traced the same function
    x = jnp.asarray(X, dtype)
    twin = jpn.RoIAlign((2, 3), 0.75, -1, aligned=True, max_sampling_ratio=(5, 4))
    linen = jaxpool.RoIAlign((2, 3), 0.75, -1, True, max_sampling_ratio=(5, 4))

    @nnx.jit
    @chex.assert_max_traces(n=1)
    def nnx_forward(module, v, boxes):
        return nnx.value_and_grad(lambda w: jnp.sum(module(w, boxes) ** 2))(v)

    @jax.jit
    def linen_forward(v, boxes):
        return jax.value_and_grad(lambda w: jnp.sum(linen.apply({}, w, boxes) ** 2))(v)

    for shift in (0.0, 0.25):  # other box values, the same trace
        boxes = jnp.asarray(BOXES).at[:, 1:].add(shift)
        assert_twins_agree(nnx_forward(twin, x, boxes), linen_forward(x, boxes), dtype)
    chex.assert_trees_all_equal(twin(x, BOXES), jaxpool.roi_align(
        x, BOXES, (2, 3), 0.75, aligned=True, max_sampling_ratio=(5, 4)))


def test_configuration_is_kept_hashable_and_documented_defaults_hold():
    pyramid = jpn.SpatialPyramidPool([[2, 3], 1])  # lists: NNX keeps config in the graphdef
    assert pyramid.levels == ((2, 3), 1) and (pyramid.mode, pyramid.spatial_dims) == ("max", 2)
    roi = jpn.RoIAlign([7, 7], 1 / 16, 2)
    assert (roi.output_size, roi.aligned, roi.max_sampling_ratio, roi.channels_first) == (
        (7, 7), False, None, False)
    blur, max_blur = jpn.BlurPool([3, 3]), jpn.MaxBlurPool((3, 3))
    assert (blur.kernel_size, blur.stride, max_blur.max_pool_size) == ((3, 3), 2, 2)
    for module in (pyramid, roi, blur, max_blur):
        hash(nnx.graphdef(module))
        x = jnp.asarray(X)
        args = (x, BOXES) if module is roi else (x,)
        chex.assert_trees_all_equal(nnx.merge(*nnx.split(module))(*args), module(*args))
