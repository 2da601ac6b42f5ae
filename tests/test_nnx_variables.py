"""Tests of jaxpool/nnx/_variables.py: linen variables dicts in and out of NNX modules."""

import re

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxpool
import jaxpool.nnx as jpn
from jaxpool import models
from tests.nnx_helpers import nnx_twin, random_variables

X = jnp.asarray(np.random.default_rng(0).standard_normal((2, 8, 8, 3)), jnp.float32)


def _block_and_variables():
    variables = random_variables(models.HybridResNetBlock(features=4), X)
    return nnx_twin(lambda: jpn.HybridResNetBlock(3, 4, rngs=nnx.Rngs(0)), variables), variables


def test_round_trip():
    block, variables = _block_and_variables()
    chex.assert_trees_all_equal(jpn.variables(block), variables)
    assert sorted(jpn.variables(block)) == ["batch_stats", "params"]
    # What linen's init gives, names and shapes: the block can go back to linen.
    linen = models.HybridResNetBlock(features=4)
    chex.assert_trees_all_equal_shapes_and_dtypes(
        jpn.variables(block), jax.eval_shape(linen.init, jax.random.key(0), X))
    block.eval()
    chex.assert_trees_all_close(linen.apply(jpn.variables(block), X),
                                nnx.jit(lambda m, x: m(x))(block, X), rtol=1e-6, atol=1e-6)


def test_only_collections_with_variables_and_no_rng_state():
    assert jpn.variables(jpn.MaxPool((2, 2))) == {}
    assert jpn.variables(jpn.GeMPool(learn_p=False)) == {}
    pool = jpn.FractionalMaxPool((2, 2), output_size=(3, 3), rngs=nnx.Rngs(fractional=0))
    assert jpn.variables(pool) == {}  # its rng stream is not a linen variable
    jpn.load_variables(pool, {})


def test_arrays_are_cast_to_the_variables_dtype():
    pool = jpn.HybridPool(param_dtype=jnp.bfloat16)
    jpn.load_variables(pool, {"params": {"mix_logit": np.float64(0.25)}})
    assert pool.mix_logit[...].dtype == jnp.bfloat16 and float(pool.mix_logit[...]) == 0.25


def test_works_for_any_nnx_module_named_as_its_linen_twin():
    class LinenNet(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jaxpool.HybridPool(kernel_size=(2, 2), name="pool")(x)
            return nn.Dense(5, name="dense")(jaxpool.GlobalAvgPool()(x))

    class NNXNet(nnx.Module):
        def __init__(self, rngs):
            self.pool = jpn.HybridPool(kernel_size=(2, 2))
            self.head = jpn.GlobalAvgPool()
            self.dense = nnx.Linear(3, 5, rngs=rngs)

        def __call__(self, x):
            return self.dense(self.head(self.pool(x)))

    variables = random_variables(LinenNet(), X)
    net = nnx_twin(lambda: NNXNet(nnx.Rngs(0)), variables)
    chex.assert_trees_all_close(net(X), LinenNet().apply(variables, X), rtol=1e-6, atol=1e-6)


def _error(make_variables):
    block, variables = _block_and_variables()
    before = jpn.variables(block)
    with pytest.raises(ValueError) as info:
        jpn.load_variables(block, make_variables(variables))
    chex.assert_trees_all_equal(jpn.variables(block), before)  # nothing was written
    return str(info.value)


def test_a_missing_entry_names_its_path_and_shape():
    def drop(variables):
        del variables["params"]["pool"]["squeeze"]["kernel"]
        return variables

    assert _error(drop) == (
        "load_variables: the variables do not fit HybridResNetBlock: params/pool/squeeze/kernel "
        "(shape (4, 1) in the module) is missing from variables")


def test_an_extra_entry_names_its_path_and_shape():
    def add(variables):
        variables["batch_stats"]["bn3"] = {"mean": np.zeros(4)}
        return variables

    assert _error(add) == (
        "load_variables: the variables do not fit HybridResNetBlock: batch_stats/bn3/mean (shape "
        "(4,) in variables) is not a variable of the module")


def test_a_mis_shaped_entry_names_its_path_and_both_shapes():
    def reshape(variables):
        variables["params"]["conv1"]["kernel"] = np.zeros((3, 3, 4, 4))
        return variables

    assert _error(reshape) == (
        "load_variables: the variables do not fit HybridResNetBlock: params/conv1/kernel has shape "
        "(3, 3, 3, 4) in the module but (3, 3, 4, 4) in variables")


def test_every_problem_is_listed():
    def break_three(variables):
        del variables["batch_stats"]["bn1"]
        variables["params"]["conv2"]["bias"] = np.zeros(5)
        variables["params"]["extra"] = np.zeros(2)
        return variables

    message = _error(break_three)
    for part in ("batch_stats/bn1/mean (shape (4,) in the module) is missing",
                 "batch_stats/bn1/var (shape (4,) in the module) is missing",
                 "params/conv2/bias has shape (4,) in the module but (5,) in variables",
                 "params/extra (shape (2,) in variables) is not a variable of the module"):
        assert part in message, (part, message)


def test_bad_arguments():
    block, variables = _block_and_variables()
    with pytest.raises(ValueError, match=re.escape(
            "load_variables: unknown collections ['intermediates']; expected ['batch_stats', 'params']")):
        jpn.load_variables(block, {**variables, "intermediates": {}})
    with pytest.raises(TypeError, match="variables must be a mapping"):
        jpn.load_variables(block, [variables])
    with pytest.raises(TypeError, match=r"expected an nnx\.Module, but got HybridResNetBlock"):
        jpn.load_variables(models.HybridResNetBlock(features=4), variables)
    with pytest.raises(TypeError, match=r"expected an nnx\.Module"):
        jpn.variables(variables)
