"""Tests of jaxpool.torch_compat: PyTorch layers' weights in Flax layers give torch's outputs."""

import subprocess
import sys

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

from jaxpool import torch_compat
from jaxpool.models import BatchNorm
from tests.oracle import nhwc


@pytest.mark.parametrize("n", [1, 2, 3])
def test_conv_weights_give_torch_outputs(n):
    torch.manual_seed(n)
    conv = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[n](3, 5, 3, padding=1)
    x = np.random.default_rng(n).standard_normal((2, *(5,) * n, 3)).astype(np.float32)
    params = torch_compat.conv_params(conv)
    chex.assert_shape(params["kernel"], (*(3,) * n, 3, 5))
    out = nn.Conv(5, (3,) * n, padding=1).apply({"params": params}, x)
    expected = np.moveaxis(conv(torch.tensor(np.moveaxis(x, -1, 1))).detach().numpy(), 1, -1)
    chex.assert_trees_all_close(out, expected, rtol=1e-5, atol=1e-5)


def test_conv_without_bias_and_grouped():
    conv = torch.nn.Conv2d(4, 6, 1, bias=False, groups=2)
    params = torch_compat.conv_params(conv.state_dict())
    assert set(params) == {"kernel"}
    chex.assert_shape(params["kernel"], (1, 1, 2, 6))


def test_linear_weights_give_torch_outputs():
    torch.manual_seed(0)
    linear = torch.nn.Linear(6, 4)
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    params = torch_compat.linear_params(linear)
    out = nn.Dense(4).apply({"params": params}, x)
    chex.assert_trees_all_close(out, linear(torch.tensor(x)).detach().numpy(), rtol=1e-6, atol=1e-6)


def test_batch_norm_variables_give_torch_outputs():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
    bn.eval()
    params, stats = torch_compat.batch_norm_variables(bn)
    x = np.random.default_rng(1).standard_normal((2, 4, 4, 3)).astype(np.float32)
    expected = nhwc(bn(torch.tensor(np.moveaxis(x, -1, 1))))
    for flax_bn in (nn.BatchNorm(use_running_average=True, epsilon=1e-5), BatchNorm(use_running_average=True)):
        out = flax_bn.apply({"params": params, "batch_stats": stats}, x)
        chex.assert_trees_all_close(out, expected, rtol=1e-5, atol=1e-5)
    no_affine = torch.nn.BatchNorm2d(3, affine=False)
    assert torch_compat.batch_norm_variables(no_affine)[0] == {}


def test_prefix_selects_a_submodule_and_numpy_input_works():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    from_numpy = torch_compat.linear_params(state, prefix="2.")
    from_module = torch_compat.linear_params(model, prefix="2.")
    chex.assert_trees_all_equal(from_numpy, from_module)
    chex.assert_shape(from_numpy["kernel"], (3, 1))
    assert set(torch_compat.state_dict_to_numpy(model, "0.")) == {"weight", "bias"}


def test_hybrid_pool_variables_shapes():
    assert torch_compat.hybrid_pool_variables({"weight": torch.tensor([0.25])})["params"]["mix_logit"].shape == ()
    per_channel = torch_compat.hybrid_pool_variables({"w.weight": torch.ones(1, 4, 1, 1)}, "w.", per_channel=True)
    chex.assert_shape(per_channel["params"]["mix_logit"], (4,))


def test_conversion_does_not_keep_torch_storage():
    linear = torch.nn.Linear(2, 2)
    params = torch_compat.linear_params(linear)
    with torch.no_grad():
        linear.bias.fill_(7.0)
    assert not np.any(params["bias"] == 7.0)


def test_bfloat16_tensors_become_ml_dtypes_bfloat16():
    value = torch_compat.to_numpy(torch.tensor([1.5, 2.0], dtype=torch.bfloat16))
    assert value.dtype == ml_dtypes.bfloat16
    chex.assert_trees_all_equal(jnp.asarray(value), jnp.array([1.5, 2.0], jnp.bfloat16))


def test_requires_grad_and_jax_arrays_are_accepted():
    weight = torch.ones(2, 3, requires_grad=True)
    params = torch_compat.linear_params({"weight": weight})
    chex.assert_shape(params["kernel"], (3, 2))
    params = torch_compat.linear_params({"weight": jnp.ones((2, 3))})
    assert isinstance(params["kernel"], np.ndarray)


BAD = [
    (lambda: torch_compat.linear_params({"bias": np.ones(2)}, prefix=""), ValueError,
     r"linear_params\(prefix=''\): the state_dict has no entry 'weight' \(entries under prefix '': bias\)"),
    (lambda: torch_compat.linear_params({"fc.weight": np.ones(3)}, prefix="fc."), ValueError,
     r"'fc.weight' must have 2 dimensions, but got shape \(3,\)"),
    (lambda: torch_compat.conv_params({"weight": np.ones((2, 3))}), ValueError,
     r"'weight' must have shape \(O, I, \*kernel\), but got shape \(2, 3\)"),
    (lambda: torch_compat.batch_norm_variables({"weight": np.ones(2), "bias": np.ones(2)}), ValueError,
     "no entry 'running_mean'"),
    (lambda: torch_compat.hybrid_pool_variables({"weight": np.ones(3)}), ValueError,
     r"'weight' has shape \(3,\); a per-layer HybridPool takes one weight"),
    (lambda: torch_compat.attention_hybrid_pool_variables({"pool.fc.0.weight": np.ones((2, 8))}, "pool."), ValueError,
     "no entry 'pool.fc.2.weight'"),
    (lambda: torch_compat.hybrid_resnet_block_variables({}, names={"conv3": "x"}), ValueError,
     r"unknown names \['conv3'\]"),
    (lambda: torch_compat.state_dict_to_numpy([1, 2]), TypeError, "state must be a state_dict .* but got list"),
    (lambda: torch_compat.attention_pool_latent_variables({"kv.weight": np.ones((4, 2))}), ValueError,
     r"attention_pool_latent_variables\(prefix=''\): the state_dict has no entry 'latent'"),
    (lambda: torch_compat.attention_pool_latent_variables(
        {"head.latent": np.ones((1, 1, 2)), "head.kv.weight": np.ones((4, 2)), "head.fc.weight": np.ones((2, 2))},
        "head."), ValueError, r"unexpected entries \['head.fc.weight'\] \(is the prefix right\?\)"),
    (lambda: torch_compat.attention_pool_latent_variables({"latent": np.ones((1, 2)), "kv.weight": np.ones((4, 2))}),
     ValueError, r"'latent' must have 3 dimensions"),
    (lambda: torch_compat.attention_pool_2d_variables({"pos_embed": np.ones((5, 2)), "q.weight": np.ones((2, 2))}),
     ValueError, "no entry 'k.weight'"),
    (lambda: torch_compat.attention_pool_2d_variables({"qkv.weight": np.ones((6, 2))}), ValueError,
     "no entry 'pos_embed'"),
]


@pytest.mark.parametrize("call, error, message", BAD)
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_block_with_renamed_submodules():
    class Renamed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.bn1 = torch.nn.BatchNorm2d(4)
            self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.bn2 = torch.nn.BatchNorm2d(4)
            self.attention = torch.nn.Module()
            self.attention.fc = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.ReLU(), torch.nn.Linear(1, 4))

    model = torch.nn.Sequential(Renamed())
    variables = torch_compat.hybrid_resnet_block_variables(model, "0.", names={"pool": "attention"})
    chex.assert_shape(variables["params"]["pool"]["squeeze"]["kernel"], (4, 1))
    assert "shortcut_conv" not in variables["params"]


def test_import_does_not_import_torch():
    code = "import sys, jaxpool.torch_compat; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_variables_are_usable_by_jax():
    variables = torch_compat.hybrid_pool_variables({"weight": torch.tensor([0.0])})
    out = jax.jit(lambda v: jax.nn.sigmoid(v["params"]["mix_logit"]))(variables)
    assert float(out) == 0.5


def test_attention_pool_weights_inside_a_bigger_model():
    from tests import attention_oracle

    model = torch.nn.Module()
    model.head = attention_oracle.timm_latent(16, num_heads=2, qk_norm=True, norm_layer="rmsnorm")
    model.stem = torch.nn.Linear(3, 16)
    variables = torch_compat.attention_pool_latent_variables(model, prefix="head.")
    direct = torch_compat.attention_pool_latent_variables(model.head)
    chex.assert_trees_all_equal(variables, direct)
    params = variables["params"]
    assert sorted(params["q_norm"]) == ["scale"]  # timm's RmsNorm has no bias
    chex.assert_shape(params["latent"], (1, 16))
    chex.assert_shape(params["mlp"]["fc1"]["kernel"], (16, 64))
    pool2d = attention_oracle.timm_pool2d(8, feat_size=3, num_heads=2, class_token=True)
    params = torch_compat.attention_pool_2d_variables(pool2d.state_dict())["params"]
    chex.assert_shape(params["cls_token"], (8,))
    chex.assert_shape(params["qkv"]["kernel"], (8, 24))
    np.testing.assert_array_equal(params["pos_embed"], pool2d.pos_embed.detach().numpy())
