"""timm's attention-pooling modules as the oracle of jaxpool's: build one from jaxpool's
options, give it non-trivial weights, run it (values and input gradients).

jaxpool names timm's ``norm_layer`` and ``act_layer`` classes by strings (a torch class
cannot run in JAX); :func:`timm_latent` maps them back. Weights: timm's own initialiser,
then noise on every parameter (so that biases, norm scales and the class token are not
their trivial initial values).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from tests.torch_oracles import import_timm

timm = import_timm()

CHANNELS = 64

# float32: outputs and input gradients within 2e-5, relative to each element and to the
# array's largest magnitude (a gradient of order 5 summed over a hundred queries may
# differ from torch's by a few ulps of 5).
TOLERANCE = 2e-5
BF16_TOLERANCE = 6e-2  # bfloat16: a few roundings of values of order 1

# jaxpool's options (timm's names; norm_layer / act_layer as strings).
LATENT_CASES = {
    "defaults": dict(),
    "heads4-latents3-avg": dict(num_heads=4, latent_len=3, pool_type="avg"),
    "latents2-unpooled": dict(num_heads=4, latent_len=2, pool_type=""),
    "qk_norm": dict(num_heads=2, qk_norm=True),
    "qk_norm-layernorm-1e-6": dict(num_heads=4, qk_norm=True, norm_layer="layernorm",
                                   norm_eps=1e-6),
    "qk_norm-rmsnorm": dict(num_heads=4, qk_norm=True, norm_layer="rmsnorm", norm_eps=1e-6),
    "out32-mlp2-gelu_tanh": dict(num_heads=4, out_features=32, mlp_ratio=2.0,
                                 act_layer="gelu_tanh"),
    "pre_logits": dict(num_heads=4, out_features=0),
    "pos_embed": dict(num_heads=4, pos_embed="abs", feat_size=12),
    "no-q_proj-no-bias": dict(num_heads=4, q_proj=False, qkv_bias=False),
    "latent_dim24": dict(num_heads=4, latent_dim=24),
    "quick_gelu-norm": dict(num_heads=4, act_layer="quick_gelu", norm_layer="layernorm"),
    "silu-mlp1.5": dict(num_heads=8, act_layer="silu", mlp_ratio=1.5),
    "relu": dict(num_heads=4, act_layer="relu"),
}
POOL2D_CASES = {
    "defaults": dict(),  # head_dim 64: one head
    "heads4": dict(num_heads=4),
    "qkv_separate": dict(num_heads=4, qkv_separate=True),
    "out10": dict(num_heads=4, out_features=10),
    "no-proj": dict(num_heads=4, out_features=0),
    "class_token": dict(num_heads=2, class_token=True),
    "unpooled": dict(num_heads=4, pool_type=""),
    "embed32-head_dim16": dict(head_dim=16, embed_dim=32),
    "grid4x6": dict(num_heads=4, feat_size=(4, 6)),
}


def assert_close(got, expected, tolerance=TOLERANCE, what=""):
    """Within ``tolerance`` of ``expected`` relative to each element and to the array's
    largest magnitude (at least 1)."""
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(np.asarray(got, np.float32), expected, rtol=tolerance,
                               atol=tolerance * scale, err_msg=what)


def _norm_class(name: str | None, eps: float):
    if name is None:
        return None
    if name == "layernorm":
        return functools.partial(torch.nn.LayerNorm, eps=eps)
    return functools.partial(timm.layers.RmsNorm, eps=eps)


_ACTIVATIONS = {
    "gelu": torch.nn.GELU,
    "gelu_tanh": functools.partial(torch.nn.GELU, approximate="tanh"),
    "quick_gelu": timm.layers.QuickGELU,
    "relu": torch.nn.ReLU,
    "silu": torch.nn.SiLU,
}


def _perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
            parameter.add_(0.2 * noise)
    return module.eval()


def timm_latent(in_features: int = CHANNELS, seed: int = 0, **options) -> torch.nn.Module:
    """timm's ``AttentionPoolLatent`` with jaxpool's options (``norm_layer`` and
    ``act_layer`` as strings, ``norm_eps``)."""
    options = dict(options)
    eps = options.pop("norm_eps", 1e-5)
    # Without norm_layer, timm's qk_norm is nn.LayerNorm (eps 1e-5, jaxpool's default).
    options["norm_layer"] = _norm_class(options.pop("norm_layer", None), eps)
    options["act_layer"] = _ACTIVATIONS[options.pop("act_layer", "gelu")]
    torch.manual_seed(seed)
    return _perturbed(timm.layers.AttentionPoolLatent(in_features, **options), seed)


def timm_pool2d(in_features: int = CHANNELS, seed: int = 0, **options) -> torch.nn.Module:
    """timm's ``AttentionPool2d`` with jaxpool's options."""
    torch.manual_seed(seed)
    return _perturbed(timm.layers.AttentionPool2d(in_features, **options), seed)


def run(module: torch.nn.Module, x: np.ndarray, cotangent: np.ndarray | None = None,
        channels_first_input: bool = False, **forward):
    """``module(x)`` on jaxpool's channels-last ``x`` (moved to torch's layout for maps
    unless ``channels_first_input``), and the input's gradient for ``cotangent``."""
    dtype = next(module.parameters()).dtype
    array = x if channels_first_input or x.ndim == 3 else np.moveaxis(x, -1, 1)
    tensor = torch.tensor(np.asarray(array, np.float32), dtype=dtype, requires_grad=True)
    out = module(tensor, **forward)
    if cotangent is None:
        return out.detach().float().numpy(), None
    (grad,) = torch.autograd.grad(out, tensor, torch.tensor(cotangent, dtype=out.dtype))
    grad = grad.float().numpy()
    if not (channels_first_input or x.ndim == 3):
        grad = np.moveaxis(grad, 1, -1)
    return out.detach().float().numpy(), grad


def key_mask(mask: np.ndarray) -> torch.Tensor:
    """``(N, L)`` True = attend -> torch's ``attn_mask`` ``(N, 1, 1, L)``."""
    return torch.tensor(mask)[:, None, None, :]
