"""Tests of jaxpool._linen: the modules are thin and equal their ops."""

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpool

X = jax.random.normal(jax.random.key(0), (2, 12, 10, 3))


@pytest.mark.parametrize(
    "module, op",
    [
        (jaxpool.MaxPool((3, 3), 2, 1), lambda v: jaxpool.max_pool2d(v, 3, 2, 1)),
        (jaxpool.MaxPool((3,), 2, dilation=2, ceil_mode=True), lambda v: jaxpool.max_pool1d(v[0], 3, 2, 0, 2, True)),
        (jaxpool.AvgPool((2, 3), (2, 1), (1, 1), count_include_pad=False), lambda v: jaxpool.avg_pool2d(v, (2, 3), (2, 1), 1, False, False)),
        (jaxpool.LPPool(2.0, (2, 2)), lambda v: jaxpool.lp_pool2d(v, 2.0, 2)),
        (jaxpool.AdaptiveAvgPool((5, None)), lambda v: jaxpool.adaptive_avg_pool2d(v, (5, None))),
        (jaxpool.AdaptiveMaxPool((4, 3)), lambda v: jaxpool.adaptive_max_pool2d(v, (4, 3))),
        (jaxpool.GlobalAvgPool(), jaxpool.global_avg_pool),
        (jaxpool.GlobalMaxPool(keepdims=True), lambda v: jaxpool.global_max_pool(v, keepdims=True)),
    ],
)
def test_module_equals_its_op(module, op):
    x = X[0] if isinstance(module, jaxpool.MaxPool) and len(module.kernel_size) == 1 else X
    variables = module.init(jax.random.key(1), x)
    assert variables == {}  # no parameters, no state
    chex.assert_trees_all_equal(module.apply(variables, x), op(X))


def test_channels_first_module():
    pool = jaxpool.MaxPool((2, 2), channels_first=True)
    chex.assert_trees_all_equal(
        pool.apply({}, jnp.moveaxis(X, -1, 1)), jnp.moveaxis(jaxpool.max_pool2d(X, 2), -1, 1)
    )


def test_return_indices_module():
    values, indices = jaxpool.MaxPool((2, 2), return_indices=True).apply({}, X)
    chex.assert_trees_all_equal((values, indices), jaxpool.max_pool2d(X, 2, return_indices=True))


def test_fractional_module_draws_from_its_rng_stream():
    pool = jaxpool.FractionalMaxPool((2, 2), output_size=(5, 4), return_indices=True)
    first = pool.apply({}, X, rngs={"fractional": jax.random.key(0)})
    again = pool.apply({}, X, rngs={"fractional": jax.random.key(0)})
    other = pool.apply({}, X, rngs={"fractional": jax.random.key(1)})
    chex.assert_trees_all_equal(first, again)
    assert not np.array_equal(first[1], other[1])
    chex.assert_shape(first, ((2, 5, 4, 3), (2, 5, 4, 3)))
    with pytest.raises(flax.errors.InvalidRngError, match="fractional"):
        pool.apply({}, X)  # no rng stream given


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(8, (3, 3))(x)
        x = jaxpool.MaxPool((3, 3), 2, 1)(x)
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        x = jaxpool.AvgPool((2, 2))(x)
        return nn.Dense(4)(jaxpool.GlobalAvgPool()(x))


class ModuleTransformTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_in_a_model_with_gradients(self):
        model = CNN()
        params = model.init(jax.random.key(0), X)

        def loss(p, v):
            return jnp.mean(model.apply(p, v) ** 2)

        value, grads = self.variant(jax.value_and_grad(loss))(params, X)
        assert np.isfinite(value)
        chex.assert_trees_all_equal_shapes(grads, params)
        chex.assert_tree_all_finite(grads)

    def test_no_retracing(self):
        model = CNN()
        params = model.init(jax.random.key(0), X)

        @jax.jit
        @chex.assert_max_traces(n=1)
        def forward(p, v):
            return model.apply(p, v)

        forward(params, X)
        forward(params, X + 1)

    def test_bfloat16_model(self):
        model = CNN()
        x = X.astype(jnp.bfloat16)
        params = model.init(jax.random.key(0), x)
        out = model.apply(params, x)
        chex.assert_tree_all_finite(out)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: jaxpool.MaxPool(2), TypeError, r"MaxPool: kernel_size must be a tuple with one entry per spatial dimension .* got kernel_size=2"),
        (lambda: jaxpool.AvgPool((2, 2, 2, 2)), ValueError, "must have 1 or 2 or 3 entries"),
        (lambda: jaxpool.AdaptiveAvgPool(7), TypeError, "output_size must be a tuple"),
        (lambda: jaxpool.FractionalMaxPool((2,), output_size=(3,)), ValueError, "must have 2 or 3 entries"),
        (lambda: jaxpool.MaxPool((2, 2), stride=0), ValueError, "MaxPool: stride should be greater than zero"),
        (lambda: jaxpool.MaxPool((2, 2), padding=2), ValueError, "pad should be at most half of effective kernel size"),
        (lambda: jaxpool.AvgPool((2, 2), divisor_override=0), ValueError, "divisor must be not zero"),
        (lambda: jaxpool.LPPool(0.0, (2, 2)), ValueError, "norm_type must be positive"),
        (lambda: jaxpool.AdaptiveMaxPool((0, 2)), ValueError, "elements of output_size must be greater than 0"),
        (lambda: jaxpool.GlobalAvgPool(keepdims="yes"), TypeError, "GlobalAvgPool: keepdims must be a bool"),
        (lambda: jaxpool.FractionalMaxPool((2, 2), output_ratio=1.5), ValueError, "output_ratio must be between 0 and 1"),
        (lambda: jaxpool.FractionalMaxPool((2, 2), output_size=(3, 3), rng_collection=0), TypeError, "rng_collection must be a str"),
    ],
)
def test_bad_configuration_fails_at_construction(make, error, message):
    """The same rules as the ops' and the NNX twins' (jaxpool._geometry's), checked where
    the configuration is written, before any input."""
    with pytest.raises(error, match=message):
        make()


def test_a_bad_input_fails_at_the_call_with_the_op_s_message():
    with pytest.raises(ValueError, match=r"max_pool2d: Given input size: .* Output size is too small"):
        jaxpool.MaxPool((11, 11)).init(jax.random.key(0), X)  # X is 12x10
