"""Shared helpers of the NNX tests: one set of variables, both APIs' outputs and gradients.

A linen module and its NNX twin are compared given the same variables: random values of
the shapes linen's ``init`` gives (filled from NumPy, so no initialiser is compiled),
loaded into an NNX module built under ``nnx.eval_shape`` (shapes only). Both sides run
jitted (``jax.jit`` / ``nnx.jit``) and differentiate ``sum(output * cotangent)``, which
gives the vector-Jacobian products for the input and every parameter.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxpool.nnx as jpn


def random_variables(module, *inputs, seed: int = 0, scale: float = 0.5, **kwargs) -> dict:
    """Variables of the shapes ``module.init`` gives, with random values: normal with
    standard deviation ``scale``, uniform in [0.5, 1.5) for BatchNorm's ``scale`` and
    ``var``."""
    shapes = jax.eval_shape(lambda *a: module.init(jax.random.key(0), *a, **kwargs), *inputs)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "'var'" in name or "'scale'" in name:
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), leaf.dtype)
        return jnp.asarray(scale * rng.standard_normal(leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def nnx_twin(factory: Callable[[], nnx.Module], variables: dict) -> nnx.Module:
    """The NNX module ``factory`` builds, holding ``variables`` (nothing initialised)."""
    module = nnx.eval_shape(factory)
    jpn.load_variables(module, variables)
    return module


def assert_twins_agree(got, expected, dtype=jnp.float32, tolerance: float = 1e-6) -> None:
    """The two APIs run the same ops, but XLA may fuse the two programs differently:
    allow a few float32 ulps (more for deep models), or one bfloat16 rounding."""
    if jnp.dtype(dtype) == jnp.bfloat16:
        tolerance = 1e-2
    chex.assert_trees_all_close(got, expected, rtol=tolerance, atol=tolerance)


def _loss(y, cotangent):
    return jnp.sum(y.astype(jnp.float32) * cotangent)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _linen_run(module, linen_kwargs, variables, x, cotangent):
    rest = {k: v for k, v in variables.items() if k != "params"}
    mutable = ["batch_stats"] if "batch_stats" in variables else False

    def loss(params, x):
        result = module.apply({"params": params, **rest}, x, mutable=mutable, **dict(linen_kwargs))
        y, updates = result if mutable else (result, {})
        return _loss(y, cotangent), (y, updates)

    (_, (y, updates)), (params_grad, x_grad) = jax.value_and_grad(
        loss, argnums=(0, 1), has_aux=True)(variables.get("params", {}), x)
    return y, x_grad, params_grad, updates.get("batch_stats", {})


def linen_run(module, variables: dict, x, cotangent, **kwargs):
    """Output, input gradient, params gradient and updated batch stats of a linen module
    (jitted once per module, options and shapes)."""
    return _linen_run(module, tuple(sorted(kwargs.items())), variables, jnp.asarray(x),
                      jnp.asarray(cotangent, jnp.float32))


@nnx.jit
def _nnx_run(module, x, cotangent):
    def loss(module, x):
        y = module(x)
        return _loss(y, cotangent), y

    (_, y), (grads, x_grad) = nnx.value_and_grad(loss, argnums=(0, 1), has_aux=True)(module, x)
    return y, x_grad, grads


def nnx_run(module: nnx.Module, x, cotangent):
    """The same for an NNX module, under ``nnx.jit`` (updates its batch stats in place;
    compiled once per module configuration and shapes)."""
    y, x_grad, grads = _nnx_run(module, jnp.asarray(x), jnp.asarray(cotangent, jnp.float32))
    return y, x_grad, pure_dict(grads), jpn.variables(module).get("batch_stats", {})


def assert_parameter_free_twin(linen, make: Callable[[], nnx.Module], x, dtype) -> None:
    """A parameter-free NNX module built by ``make()`` computes what its linen twin
    ``linen`` computes on ``x`` (as ``dtype``): output, its dtype, and input gradient."""
    x = jnp.asarray(x, dtype)
    y = jax.eval_shape(linen.apply, {}, x)
    cotangent = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    out, x_grad, params_grad, _ = nnx_run(make(), x, cotangent)
    expected_out, expected_grad, _, _ = linen_run(linen, {}, x, cotangent)
    assert out.dtype == dtype and params_grad == {}
    assert_twins_agree((out, x_grad), (expected_out, expected_grad), dtype)


def pure_dict(state: nnx.State) -> dict:
    """An ``nnx.State`` as nested dicts of arrays: ``nnx.to_pure_dict`` from flax 0.11
    (``State.to_pure_dict`` warns there), the method on flax 0.10, whose layers also keep
    an absent bias as ``Param(None)`` (dropped here: linen has no such variable)."""
    tree = nnx.to_pure_dict(state) if hasattr(nnx, "to_pure_dict") else state.to_pure_dict()

    def drop_none(node):
        if isinstance(node, dict):
            return {key: drop_none(value) for key, value in node.items() if value is not None}
        return node

    return drop_none(tree)


def make_optimizer(model: nnx.Module, tx) -> nnx.Optimizer:
    """``nnx.Optimizer`` over the model's ``nnx.Param``\\ s (flax 0.11 made ``wrt`` a
    required keyword; flax 0.10 takes it too)."""
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


def optimizer_update(optimizer: nnx.Optimizer, model: nnx.Module, grads: Any) -> None:
    """``optimizer.update``: flax 0.11 takes ``(model, grads)``, flax 0.10 ``(grads)``."""
    if "model" in inspect.signature(optimizer.update).parameters:
        optimizer.update(model, grads)
    else:
        optimizer.update(grads)
