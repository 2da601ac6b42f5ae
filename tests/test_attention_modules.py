"""Tests of jaxpool._attention_modules: the linen AttentionPoolLatent and AttentionPool2d
against timm's modules (parameters of the same names and shapes, timm's initialisers,
timm's outputs and input gradients given timm's weights), and their refusals."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxpool
from jaxpool import torch_compat
from tests import attention_oracle as oracle
from tests.attention_oracle import LATENT_CASES, POOL2D_CASES, assert_close

KEY = jax.random.key(0)


def _shapes(tree):
    return jax.tree.map(lambda leaf: tuple(np.shape(leaf)), tree)


def _latent_input(seed=0, shape=(3, 12, oracle.CHANNELS)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("case", sorted(LATENT_CASES))
def test_latent_parameters_have_timms_names_and_shapes(case):
    options = LATENT_CASES[case]
    x = _latent_input()
    made = jax.eval_shape(jaxpool.AttentionPoolLatent(**options).init, KEY, x)
    timm_params = torch_compat.attention_pool_latent_variables(oracle.timm_latent(**options))
    assert _shapes(made) == _shapes(timm_params)


@pytest.mark.parametrize("case", sorted(POOL2D_CASES))
def test_pool2d_parameters_have_timms_names_and_shapes(case):
    options = POOL2D_CASES[case]
    x = np.zeros((2, 7, 7, oracle.CHANNELS), np.float32)
    made = jax.eval_shape(jaxpool.AttentionPool2d(**options).init, KEY, x)
    timm_params = torch_compat.attention_pool_2d_variables(oracle.timm_pool2d(**options))
    assert _shapes(made) == _shapes(timm_params)


@pytest.mark.parametrize("case", ["defaults", "heads4-latents3-avg", "qk_norm-rmsnorm",
                                  "pos_embed", "pre_logits", "out32-mlp2-gelu_tanh"])
def test_latent_module_with_timms_weights_equals_timm(case):
    options = LATENT_CASES[case]
    module = oracle.timm_latent(**options)
    variables = torch_compat.attention_pool_latent_variables(module)
    x = _latent_input(1)
    mask = np.arange(12)[None, :] < np.array([12, 3, 8])[:, None]
    cotangent = np.ones(oracle.run(module, x)[0].shape, np.float32)
    expected, expected_grad = oracle.run(module, x, cotangent, attn_mask=oracle.key_mask(mask))
    head = jaxpool.AttentionPoolLatent(**options)
    got, vjp = jax.vjp(lambda v: head.apply(variables, v, mask=mask), x)
    assert_close(got, expected)
    assert_close(vjp(jnp.asarray(cotangent))[0], expected_grad)


@pytest.mark.parametrize("case", ["defaults", "qkv_separate", "class_token", "unpooled",
                                  "embed32-head_dim16"])
def test_pool2d_module_with_timms_weights_equals_timm(case):
    options = POOL2D_CASES[case]
    module = oracle.timm_pool2d(**options)
    variables = torch_compat.attention_pool_2d_variables(module)
    x = np.random.default_rng(2).standard_normal((2, 6, 8, oracle.CHANNELS)).astype(np.float32)
    expected, _ = oracle.run(module, x)
    unpooled = options.get("pool_type") == ""
    cotangent = np.ones(expected.shape, np.float32)
    _, expected_grad = oracle.run(module, x, cotangent)
    head = jaxpool.AttentionPool2d(**options)
    got, vjp = jax.vjp(lambda v: head.apply(variables, v), x)
    assert_close(got, np.moveaxis(expected, 1, -1) if unpooled else expected)
    assert_close(vjp(jnp.ones(got.shape))[0], expected_grad)


def test_the_issues_calls_equal_timm():
    x = np.random.default_rng(3).standard_normal((2, 7, 7, 64)).astype(np.float32)
    tokens = x.reshape(2, 49, 64)
    latent = oracle.timm_latent(64, num_heads=4)
    got = jaxpool.AttentionPoolLatent(num_heads=4).apply(
        torch_compat.attention_pool_latent_variables(latent.state_dict()), tokens)
    assert_close(got, oracle.run(latent, tokens)[0])
    pool2d = oracle.timm_pool2d(64, feat_size=(7, 7), num_heads=4)
    got = jaxpool.AttentionPool2d(feat_size=(7, 7), num_heads=4).apply(
        torch_compat.attention_pool_2d_variables(pool2d.state_dict()), x)
    assert_close(got, oracle.run(pool2d, x)[0])


def test_the_shared_configurations_hold_the_modules_options_without_defaults():
    """The defaults are the modules' alone (tests/test_api.py holds NNX's equal to
    linen's): a shared configuration with defaults of its own could drift from them."""
    import dataclasses

    from jaxpool import _module_rules as rules

    for config, module, names in (
        (rules.LatentPoolConfig, jaxpool.AttentionPoolLatent, rules.LATENT_POOL_OPTIONS),
        (rules.Pool2dConfig, jaxpool.AttentionPool2d, rules.POOL_2D_OPTIONS),
    ):
        fields = dataclasses.fields(config)
        assert tuple(field.name for field in fields) == names
        assert all(field.default is dataclasses.MISSING for field in fields), config
        assert set(names) <= {field.name for field in dataclasses.fields(module)}


# ----------------------------------------------------------------------------------
# timm's initialisers


def _statistics(values):
    values = np.asarray(values, np.float64).reshape(-1)
    return np.array([values.mean(), values.std(), values.min(), values.max()])


def _compare_initialisation(made, fresh, name):
    """Same distribution: mean (within a quarter of the spread: the sample mean of 256
    values varies by 1/16 of it), spread and range (within 12%) of a freshly
    initialised timm's."""
    ours, theirs = _statistics(made), _statistics(fresh)
    scale = max(theirs[1], 1e-3)
    np.testing.assert_allclose(ours[0], theirs[0], atol=0.25 * scale, err_msg=f"{name} mean")
    np.testing.assert_allclose(ours[1:], theirs[1:], atol=0.12 * scale + 1e-6, rtol=0.12,
                               err_msg=f"{name} std, min, max")


def _fresh_timm(factory, **options):
    torch.manual_seed(1)
    return factory(**options)


def test_latent_initialisers_are_timms():
    width = 256
    options = dict(num_heads=8, latent_len=16, qk_norm=True, pos_embed="abs", feat_size=64,
                   norm_layer="layernorm")
    made = jaxpool.AttentionPoolLatent(**options).init(
        KEY, jnp.zeros((1, 64, width)))["params"]
    timm_options = dict(options, norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-5))
    fresh = _fresh_timm(oracle.timm.layers.AttentionPoolLatent, in_features=width, **timm_options)
    expected = torch_compat.attention_pool_latent_variables(fresh)["params"]
    for (path, leaf), (_, want) in zip(jax.tree_util.tree_leaves_with_path(made),
                                       jax.tree_util.tree_leaves_with_path(expected),
                                       strict=True):
        _compare_initialisation(leaf, want, jax.tree_util.keystr(path))


def test_pool2d_initialisers_are_timms():
    width = 256
    options = dict(feat_size=(8, 8), num_heads=8, class_token=True, out_features=128)
    made = jaxpool.AttentionPool2d(**options).init(KEY, jnp.zeros((1, 8, 8, width)))["params"]
    fresh = _fresh_timm(oracle.timm.layers.AttentionPool2d, in_features=width, **options)
    expected = torch_compat.attention_pool_2d_variables(fresh)["params"]
    for (path, leaf), (_, want) in zip(jax.tree_util.tree_leaves_with_path(made),
                                       jax.tree_util.tree_leaves_with_path(expected),
                                       strict=True):
        _compare_initialisation(leaf, want, jax.tree_util.keystr(path))


# ----------------------------------------------------------------------------------
# Dtypes, jit and refusals


def test_param_dtype_and_dtype():
    x = jnp.ones((2, 5, 64), jnp.bfloat16)
    head = jaxpool.AttentionPoolLatent(num_heads=4, param_dtype=jnp.bfloat16)
    variables = head.init(KEY, x)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.bfloat16)}
    assert head.apply(variables, x).dtype == jnp.bfloat16
    promoted = jaxpool.AttentionPoolLatent(num_heads=4)  # float32 parameters
    assert promoted.apply(promoted.init(KEY, x), x).dtype == jnp.float32
    forced = jaxpool.AttentionPoolLatent(num_heads=4, dtype=jnp.bfloat16)
    assert forced.apply(forced.init(KEY, x), x).dtype == jnp.bfloat16


class ModulesJitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_apply_under_jit_and_without(self):
        head = jaxpool.AttentionPool2d(feat_size=4, num_heads=2)
        x = jnp.asarray(np.random.default_rng(4).standard_normal((2, 4, 4, 8)), jnp.float32)
        variables = head.init(KEY, x)
        apply = self.variant(head.apply)
        np.testing.assert_allclose(apply(variables, x), head.apply(variables, x), rtol=1e-6,
                                   atol=1e-6)

    def test_a_new_mask_does_not_retrace(self):
        head = jaxpool.AttentionPoolLatent(num_heads=2)
        x = jnp.ones((2, 6, 8))
        variables = head.init(KEY, x)

        @jax.jit
        @chex.assert_max_traces(n=1)
        def apply(variables, x, mask):
            return head.apply(variables, x, mask=mask)

        for length in range(1, 6):
            apply(variables, x, jnp.arange(6) < length)


@pytest.mark.parametrize("options, error, match", [
    (dict(num_heads=5), ValueError, r"embed_dim=64 must be divisible by num_heads=5"),
    (dict(embed_dim=32), ValueError, r"embed_dim must equal in_features .*embed_dim=32"),
    (dict(drop=0.1), ValueError, r"drop=0.1: dropout is not supported"),
    (dict(pos_embed="abs"), ValueError, "pos_embed='abs' .* needs feat_size"),
    (dict(pos_embed="learned"), ValueError, r"pos_embed must be one of '', 'abs'"),
    (dict(pool_type="max"), ValueError, "pool_type must be one of 'token', 'avg', ''"),
    (dict(norm_layer=torch.nn.LayerNorm), ValueError,
     r"norm_layer must be one of None, 'layernorm', 'rmsnorm'"),
    (dict(act_layer="gelu_new"), ValueError, "act_layer must be one of 'gelu'"),
    (dict(q_proj=False, latent_dim=32), ValueError, "q_proj=False uses the latent directly"),
    (dict(latent_len=0), ValueError, "latent_len must be at least 1"),
    (dict(out_features=-1), ValueError, "out_features must be at least 0"),
    (dict(qkv_bias=1), TypeError, "qkv_bias must be a bool"),
    (dict(mlp_ratio="4"), TypeError, "mlp_ratio must be a real number"),
])
def test_latent_refuses_options_naming_them(options, error, match):
    with pytest.raises(error, match=match):
        jaxpool.AttentionPoolLatent(**options).init(KEY, jnp.ones((1, 5, 64)))


@pytest.mark.parametrize("options, error, match", [
    (dict(num_heads=3), ValueError, r"embed_dim=64 must be divisible by num_heads=3"),
    (dict(head_dim=48), ValueError, r"embed_dim=64 must be divisible by head_dim=48"),
    (dict(head_dim=None), ValueError, "pass num_heads or head_dim"),
    (dict(class_token=True, embed_dim=32, head_dim=16), ValueError,
     "class_token=True prepends a token"),
    (dict(drop_rate=0.5), ValueError, "drop_rate=0.5: dropout is not supported"),
    (dict(pool_type="avg"), ValueError, "pool_type must be one of 'token', ''"),
    (dict(feat_size=(7, 0)), ValueError, "feat_size must be positive"),
    (dict(feat_size=(7, 7, 7)), ValueError, "feat_size"),
])
def test_pool2d_refuses_options_naming_them(options, error, match):
    with pytest.raises(error, match=match):
        jaxpool.AttentionPool2d(**options).init(KEY, jnp.ones((1, 7, 7, 64)))


def test_the_docs_page_examples_run_in_order(capsys):
    """docs/attention.md's Python blocks, pasted in order as a new user would (``import
    timm`` finds the module tests/torch_oracles.py imported)."""
    import pathlib
    import re

    page = pathlib.Path(__file__).resolve().parents[1] / "docs" / "attention.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert len(blocks) == 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/attention.md", "exec"), namespace)
    out = capsys.readouterr().out.split()
    assert out == ["(4,", "16)", "True", "(4,", "16)", "(4,", "32)", "(2,", "64)", "True",
                   "(2,", "64)", "(2,", "64)", "(2,", "64)", "True"]
