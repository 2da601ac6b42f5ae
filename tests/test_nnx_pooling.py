"""Tests of jaxpool/nnx/_pooling.py: the NNX twins of the pooling modules of _linen.py.

Each NNX module gives its linen twin's numbers (outputs and input gradients, float32 and
bfloat16, under ``nnx.jit``), refuses a bad configuration at construction with the op's
message, and round-trips through ``nnx.split`` / ``nnx.merge``.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxpool
import jaxpool.nnx as jpn
from jaxpool import _linen
from jaxpool.nnx import _common as nnx_common
from tests.nnx_helpers import assert_parameter_free_twin

X2 = np.random.default_rng(0).standard_normal((2, 9, 8, 3)).astype(np.float32)

# (linen module, its NNX twin, input)
CASES = [
    (jaxpool.MaxPool((3, 3), 2, 1), lambda: jpn.MaxPool((3, 3), 2, 1), X2),
    (jaxpool.MaxPool((2, 3), stride=(1, 2), dilation=(2, 1), ceil_mode=True),
     lambda: jpn.MaxPool((2, 3), stride=(1, 2), dilation=(2, 1), ceil_mode=True), X2),
    (jaxpool.MaxPool((3,), padding="SAME", channels_first=True),
     lambda: jpn.MaxPool((3,), padding="SAME", channels_first=True), X2[:, 0]),
    (jaxpool.AvgPool((3, 3), 2, 1, count_include_pad=False, ceil_mode=True),
     lambda: jpn.AvgPool((3, 3), 2, 1, count_include_pad=False, ceil_mode=True), X2),
    (jaxpool.AvgPool((2, 2, 2), divisor_override=3),
     lambda: jpn.AvgPool((2, 2, 2), divisor_override=3), X2[..., None]),
    (jaxpool.LPPool(2.0, (2, 2)), lambda: jpn.LPPool(2.0, (2, 2)), X2),
    (jaxpool.AdaptiveAvgPool((4, None)), lambda: jpn.AdaptiveAvgPool((4, None)), X2),
    (jaxpool.AdaptiveAvgPool((5, 3)), lambda: jpn.AdaptiveAvgPool((5, 3)), X2),
    (jaxpool.AdaptiveMaxPool((5, 5)), lambda: jpn.AdaptiveMaxPool((5, 5)), X2),
    (jaxpool.GlobalAvgPool(), lambda: jpn.GlobalAvgPool(), X2),
    (jaxpool.GlobalMaxPool(keepdims=True, channels_first=True),
     lambda: jpn.GlobalMaxPool(keepdims=True, channels_first=True), X2),
    (jaxpool.GlobalAvgPool(spatial_dims=1), lambda: jpn.GlobalAvgPool(spatial_dims=1), X2),
]
IDS = [f"{type(case[0]).__name__}{i}" for i, case in enumerate(CASES)]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("linen, make, x", CASES, ids=IDS)
def test_nnx_module_is_its_linen_twin(linen, make, x, dtype):
    assert_parameter_free_twin(linen, make, x, dtype)


def test_indices_are_the_linen_twins():
    x = jnp.asarray(X2)
    for linen, twin in ((jaxpool.MaxPool((3, 3), 2, 1, return_indices=True),
                         jpn.MaxPool((3, 3), 2, 1, return_indices=True)),
                        (jaxpool.AdaptiveMaxPool((4, 3), return_indices=True),
                         jpn.AdaptiveMaxPool((4, 3), return_indices=True))):
        values, indices = twin(x)
        chex.assert_trees_all_equal((values, indices), linen.apply({}, x))
        assert indices.dtype == jnp.int32


def test_the_issue_s_constructor_calls():
    x = jnp.asarray(X2)
    chex.assert_shape(jpn.MaxPool(kernel_size=(3, 3), stride=2, padding=1)(x), (2, 5, 4, 3))
    chex.assert_shape(jpn.GlobalAvgPool()(x), (2, 3))
    chex.assert_shape(jpn.AdaptiveMaxPool(output_size=(5, 5))(x), (2, 5, 5, 3))


def test_configuration_is_kept_hashable_and_documented_defaults_hold():
    pool = jpn.MaxPool([3, 3], [2, 2], [[1, 1], [0, 1]])  # lists: NNX keeps config in the graphdef
    assert (pool.kernel_size, pool.stride, pool.padding) == ((3, 3), (2, 2), ((1, 1), (0, 1)))
    hash(nnx.graphdef(pool))
    default = jpn.AvgPool((2, 2))
    assert (default.stride, default.padding, default.ceil_mode, default.count_include_pad,
            default.divisor_override, default.channels_first) == (None, 0, False, True, None, False)


BAD = [
    (lambda: jpn.MaxPool(2), TypeError, r"MaxPool: kernel_size must be a tuple with one entry per spatial dimension.*kernel_size=2"),
    (lambda: jpn.MaxPool((2, 2, 2, 2)), ValueError, r"kernel_size must have 1 or 2 or 3 entries"),
    (lambda: jpn.MaxPool((2, 2), stride=0), ValueError, "stride should be greater than zero"),
    (lambda: jpn.MaxPool((2, 2), padding=2), ValueError, "pad should be at most half of effective kernel size"),
    (lambda: jpn.MaxPool((2, 2), padding="FULL"), ValueError, "padding must be an int, a tuple of ints, 'SAME', 'VALID'"),
    (lambda: jpn.MaxPool((2, 2), ceil_mode=1), TypeError, "ceil_mode must be a bool, but got 1"),
    (lambda: jpn.MaxPool((2, 2), dilation=(1, 2, 3)), ValueError, r"dilation must either be a single int, or a tuple of 2 ints"),
    (lambda: jpn.AvgPool((2, 2), divisor_override=0), ValueError, "divisor must be not zero"),
    (lambda: jpn.AvgPool((2.5, 2)), TypeError, "kernel_size must be an int"),
    (lambda: jpn.LPPool(0.0, (2, 2)), ValueError, "norm_type must be positive"),
    (lambda: jpn.AdaptiveAvgPool((0, 2)), ValueError, "elements of output_size must be greater than 0"),
    (lambda: jpn.AdaptiveMaxPool(7), TypeError, "AdaptiveMaxPool: output_size must be a tuple"),
    (lambda: jpn.GlobalAvgPool(spatial_dims=4), ValueError, "spatial_dims must be 1, 2 or 3, but got spatial_dims=4"),
    (lambda: jpn.GlobalMaxPool(keepdims="yes"), TypeError, "keepdims must be a bool"),
    (lambda: jpn.FractionalMaxPool((2,), output_size=(3,)), ValueError, "kernel_size must have 2 or 3 entries"),
    (lambda: jpn.FractionalMaxPool((2, 2)), ValueError, "exactly one of output_size or output_ratio"),
    (lambda: jpn.FractionalMaxPool((2, 2), output_ratio=1.5), ValueError, r"output_ratio must be between 0 and 1"),
    (lambda: jpn.FractionalMaxPool((2, 2), output_size=(3, 3), rngs=7), TypeError, "rngs must be an nnx.Rngs, an nnx.RngStream or a jax.random key, but got int: 7"),
]


@pytest.mark.parametrize("make, error, message", BAD)
def test_bad_configuration_fails_at_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_valid_configurations_are_not_refused():
    # Dilation that would leave a small input's first window empty, and a large kernel.
    jpn.MaxPool((2, 2), padding=1, dilation=3)
    jpn.AvgPool((56, 56))
    jpn.FractionalMaxPool((3, 3), output_ratio=(0.9, 0.95))
    jpn.FractionalMaxPool((2, 2, 2), output_size=(40, 1, 3))


# ----------------------------------------------------------------------------------
# FractionalMaxPool: the 'fractional' rng stream


def test_fractional_pool_is_the_op_with_the_key_it_draws():
    x = jnp.asarray(X2)
    pool = jpn.FractionalMaxPool((2, 2), output_size=(4, 3))
    key = jax.random.key(5)
    expected = jaxpool.fractional_max_pool2d(x, (2, 2), (4, 3), key=key)
    chex.assert_trees_all_equal(pool(x, rngs=key), expected)
    # From an Rngs (or one of its streams): the stream's next key.
    chex.assert_trees_all_equal(pool(x, rngs=nnx.Rngs(fractional=3)),
                                pool(x, rngs=nnx.Rngs(fractional=3).fractional()))
    chex.assert_trees_all_equal(pool(x, rngs=nnx.Rngs(fractional=3).fractional), pool(x, rngs=nnx.Rngs(fractional=3)))
    # The module's own stream is seeded from the construction's Rngs, not shared with it.
    outer = nnx.Rngs(fractional=3)
    owned = jpn.FractionalMaxPool((2, 2), output_size=(4, 3), rngs=outer)
    chex.assert_trees_all_equal(owned(x), pool(x, rngs=nnx.Rngs(fractional=nnx.Rngs(fractional=3).fractional())))
    assert not np.array_equal(owned(x), pool(x, rngs=outer))


def test_fractional_pool_own_stream_gives_fresh_regions_and_survives_nnx_jit():
    # 11 -> 5 with a 2-window: the regions' starts depend on the samples.
    x = jnp.asarray(np.random.default_rng(2).standard_normal((4, 11, 11, 2)), jnp.float32)
    pool = jpn.FractionalMaxPool((2, 2), output_size=(5, 5), return_indices=True,
                                 rngs=nnx.Rngs(0, fractional=1))
    forward = nnx.jit(lambda module, v: module(v))
    first, second = forward(pool, x), forward(pool, x)
    assert not np.array_equal(first[1], second[1])  # the module's stream advanced
    chex.assert_shape(first[0], (4, 5, 5, 2))
    # The same seed gives the same draws.
    again = jpn.FractionalMaxPool((2, 2), output_size=(5, 5), return_indices=True,
                                  rngs=nnx.Rngs(0, fractional=1))
    chex.assert_trees_all_equal(forward(again, x), first)


def test_fractional_pool_without_a_stream_says_what_to_pass():
    with pytest.raises(ValueError, match=r"draws its regions from the 'fractional' rng stream: "
                                         r"pass rngs=nnx.Rngs\(fractional=0\)"):
        jpn.FractionalMaxPool((2, 2), output_size=(3, 3))(jnp.asarray(X2))


# ----------------------------------------------------------------------------------
# NNX graph operations


def test_split_merge_round_trip():
    def make():
        return jpn.FractionalMaxPool((2, 2), output_ratio=0.5, rngs=nnx.Rngs(fractional=0))

    graphdef, state = nnx.split(make())
    restored = nnx.merge(graphdef, state)
    assert restored.kernel_size == (2, 2) and restored.output_ratio == 0.5
    x = jnp.asarray(X2)
    chex.assert_trees_all_equal(restored(x), make()(x))  # the stream's state came along
    max_pool = jpn.MaxPool((3, 3), 2, 1)
    chex.assert_trees_all_equal(nnx.merge(*nnx.split(max_pool))(x), max_pool(x))


# ----------------------------------------------------------------------------------
# The bases: a module is its configuration and its op, in both APIs

MIN_POOL = {1: jaxpool.min_pool1d, 2: jaxpool.min_pool2d, 3: jaxpool.min_pool3d}


class LinenMinPool(_linen.PoolingModule):
    """A module written as jaxpool/_module_rules.py says: fields and op."""

    kernel_size: tuple[int, ...]
    stride: int | tuple[int, ...] | None = None
    channels_first: bool = False

    op = MIN_POOL


class NNXMinPool(nnx_common.PoolingModule):
    op = MIN_POOL

    def __init__(self, kernel_size, stride=None, *, channels_first=False):
        nnx_common.configure(self, locals())


def test_a_module_is_its_configuration_and_its_op():
    x = jnp.asarray(X2)
    expected = jaxpool.min_pool2d(x, (3, 2), 2)
    chex.assert_trees_all_equal(LinenMinPool((3, 2), 2).apply({}, x), expected)
    chex.assert_trees_all_equal(NNXMinPool([3, 2], 2)(x), expected)
    assert NNXMinPool([3, 2], 2).kernel_size == (3, 2)  # frozen
    # The call's keyword arguments go to the op.
    values, indices = NNXMinPool((3,))(x[:, 0], return_indices=True)
    chex.assert_trees_all_equal((values, indices),
                                jaxpool.min_pool1d(x[:, 0], 3, return_indices=True))
    chex.assert_trees_all_equal(
        LinenMinPool((3,)).apply({}, x[:, 0], return_indices=True), (values, indices))
    # The configuration is checked at construction, with the op's rules.
    for make in (LinenMinPool, NNXMinPool):
        with pytest.raises(ValueError, match="MinPool: stride should be greater than zero"):
            make((2, 2), 0)
        with pytest.raises(ValueError, match="kernel_size must have 1 or 2 or 3 entries"):
            make((2, 2, 2, 2))


def test_call_options_reach_the_op_in_both_apis():
    x = jnp.asarray(X2)
    expected = jaxpool.global_max_pool(x, return_indices=True)
    chex.assert_trees_all_equal(jpn.GlobalMaxPool()(x, return_indices=True), expected)
    chex.assert_trees_all_equal(jaxpool.GlobalMaxPool().apply({}, x, return_indices=True),
                                expected)
    with pytest.raises(TypeError, match="unexpected keyword argument 'mask'"):
        jpn.AvgPool((2, 2))(x, mask=None)
