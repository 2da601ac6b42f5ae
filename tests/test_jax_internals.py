"""Tests of jaxpool._jax_internals: the one module that touches JAX internals.

Run at both ends of the supported JAX range by CI; a JAX release that moves one of
these internals fails here first.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from jaxpool import _jax_internals as internals


@pytest.fixture(params=["public", "fallback"])
def barrier(request, monkeypatch):
    """Both implementations of the barrier, whatever this JAX has: the public one only
    where JAX differentiates it (0.5.3 and newer)."""
    if request.param == "public":
        if not internals._BARRIER_HAS_RULES:
            pytest.skip("jax.lax.optimization_barrier has no differentiation rules here")
        monkeypatch.setattr(internals, "_BARRIER_HAS_RULES", True)
    else:
        monkeypatch.setattr(internals, "_BARRIER_HAS_RULES", False)
    return internals.optimization_barrier


def test_barrier_is_the_identity_under_every_transform(barrier):
    x = jnp.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(barrier(x), x)
    np.testing.assert_array_equal(jax.jit(barrier)(x), x)
    np.testing.assert_array_equal(jax.vmap(barrier, in_axes=1)(x), x.T)
    function = lambda v: jnp.sum(barrier(v * v) / 3.0)  # noqa: E731
    np.testing.assert_allclose(jax.grad(function)(x), 2 * x / 3.0)
    _, tangent = jax.jvp(barrier, (x,), (jnp.ones_like(x),))
    np.testing.assert_array_equal(tangent, jnp.ones_like(x))
    np.testing.assert_allclose(jax.hessian(function)(x[0]), np.eye(3) * 2 / 3.0, rtol=1e-6)


def test_barrier_keeps_two_divisions_apart(barrier):
    # (s / 3) / 7 rounds twice; s / 21 once. Some values tell them apart in float32.
    s = jnp.asarray(np.random.default_rng(0).standard_normal(4096).astype(np.float32))
    twice = np.asarray(s) / np.float32(3) / np.float32(7)
    divisor_a = jnp.full_like(s, 3.0)
    divisor_b = jnp.full_like(s, 7.0)
    got = jax.jit(lambda v, a, b: barrier(barrier(v / a)) / b)(s, divisor_a, divisor_b)
    np.testing.assert_array_equal(np.asarray(got), twice)


def test_barrier_lowers_for_every_platform(barrier):
    exported = export.export(jax.jit(barrier), platforms=("cpu", "cuda", "tpu"))(
        jax.ShapeDtypeStruct((3,), jnp.float32))
    assert "optimization_barrier" in exported.mlir_module()


def test_is_tracer():
    assert not internals.is_tracer(jnp.ones(2))
    seen = []
    jax.jit(lambda v: seen.append(internals.is_tracer(v)) or v)(jnp.ones(2))
    assert seen == [True]


# One context per implementation, made once: JAX keeps every user context it makes.
_KEYED = internals.jit_keyed_context("jaxpool_test_keyed", None)
_STAND_IN = internals._ContextValue("jaxpool_test_stand_in", None)


@pytest.mark.parametrize("context", [_KEYED, _STAND_IN], ids=["this jax", "contextvars"])
def test_context_values_nest_and_are_restored(context):
    assert context.value is None
    with context("a"):
        assert context.value == "a"
        with context("b"):
            assert context.value == "b"
        assert context.value == "a"
    with pytest.raises(RuntimeError):
        with context("c"):
            raise RuntimeError("left on an error")
    assert context.value is None


@pytest.mark.parametrize(
    "context, keyed", [(_KEYED, internals.JIT_KEYED_CONTEXT), (_STAND_IN, False)],
    ids=["this jax", "contextvars"],
)
def test_jit_caches_on_the_context_where_jax_allows(context, keyed):
    assert internals.JIT_KEYED_CONTEXT == (internals.JAX_VERSION >= (0, 7, 2))
    traces = []

    @jax.jit
    def function(x):
        traces.append(context.value)
        return x + 1

    function(1.0)
    with context("a"):
        function(1.0)
    function(1.0)
    assert traces == ([None, "a"] if keyed else [None])
