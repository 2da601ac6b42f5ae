"""Attention pooling, functional: timm's ``AttentionPoolLatent`` and ``AttentionPool2d``.

Both pool a set of tokens into one vector (or a few) with multi-head attention, given
their parameters as a tree of arrays (the ``'params'`` of the linen modules
:class:`jaxpool.AttentionPoolLatent` and :class:`jaxpool.AttentionPool2d`, of their NNX
twins through :func:`jaxpool.nnx.variables`, or of PyTorch weights through
:mod:`jaxpool.torch_compat`). Linear layers hold ``kernel (in, out)`` and ``bias``.

* :func:`attention_pool_latent` (the MAP head of SigLIP and ViT; big_vision's
  ``MAPHead``): learned latent queries attend over the tokens, then an output
  projection and an MLP with a residual; an optional key mask (True = attend).
* :func:`attention_pool2d` (CLIP's ResNet head): the mean token (or a learned class
  token) is prepended to the map's positions, a learned positional embedding is added,
  and the first token's attention output is the pooled vector.

The attention is ``jax.nn.dot_product_attention`` (softmax in float32; the form XLA's
fused attention takes on GPU), scaled by ``head_dim ** -0.5`` as torch's
``scaled_dot_product_attention``. Which optional layers exist (a query projection,
biases, q/k norms, the positional embedding, the output projection, the norm, the
MLP, a class token) is read from the tree: a layer is used when its entry is there.
Computation runs in ``dtype`` (default: the input's and the parameters' promoted
dtype, as Flax's layers); layer norms and softmaxes in float32 for narrower floats.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxpool import _geometry as geometry
from jaxpool import _masked as masked
from jaxpool._checks import as_array

POOL_TYPES_LATENT = ("token", "avg", "")
"""``pool_type`` of :func:`attention_pool_latent`: the first latent, their mean, or all."""
POOL_TYPES_2D = ("token", "")
"""``pool_type`` of :func:`attention_pool2d`: the first token, or every position."""
NORM_LAYERS = ("layernorm", "rmsnorm")
"""``norm_layer`` names: torch's ``nn.LayerNorm`` and timm's ``RmsNorm``."""


def _quick_gelu(x: jax.Array) -> jax.Array:
    return x * jax.nn.sigmoid(1.702 * x)


ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # torch's nn.GELU()
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),  # nn.GELU(approximate='tanh')
    "quick_gelu": _quick_gelu,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}
"""``act_layer`` names (timm's ``get_act_layer`` names) -> the activation."""


# ----------------------------------------------------------------------------------
# Checks of the configuration and the parameter tree (static: shapes and names)


def check_choice(value: Any, name: str, choices, where: str) -> Any:
    """``value`` must be one of ``choices`` (strings, or None)."""
    if not any(value is choice or (isinstance(value, str) and value == choice)
               for choice in choices):
        listed = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"{where}: {name} must be one of {listed}, but got {name}={value!r}")
    return value


def check_num_heads(num_heads: Any, width: int, where: str, what: str = "embed_dim") -> int:
    """A positive int that divides ``width``."""
    heads = geometry.as_int(num_heads, "num_heads", where)
    if heads < 1:
        raise ValueError(f"{where}: num_heads must be at least 1, but got num_heads={num_heads!r}")
    if width % heads:
        raise ValueError(
            f"{where}: {what}={width} must be divisible by num_heads={heads} (each head gets "
            f"{what} // num_heads channels)"
        )
    return heads


def check_eps(eps: Any, where: str) -> float:
    """A positive real ``norm_eps``."""
    return geometry.check_positive_real(where, "norm_eps", eps)


def _require(tree: Mapping, name: str, op: str, prefix: str = "") -> Any:
    if not isinstance(tree, Mapping) or name not in tree:
        found = sorted(tree) if isinstance(tree, Mapping) else type(tree).__name__
        raise ValueError(f"{op}: params has no entry {prefix + name!r} (found {found})")
    return tree[name]


def _array(value: Any, path: str, op: str, shape: tuple[int, ...] | None = None) -> jax.Array:
    array = as_array(value, f"params[{path!r}]", op, kind="float")
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise ValueError(
            f"{op}: params[{path!r}] must have shape {tuple(shape)}, but got shape "
            f"{tuple(array.shape)}"
        )
    return array


def _linear(params: Mapping, name: str, op: str, in_features: int | None,
            out_features: int | None = None) -> dict[str, jax.Array]:
    """A Linear layer's ``kernel (in, out)`` and optional ``bias (out,)``, checked."""
    layer = _require(params, name, op)
    kernel = _array(_require(layer, "kernel", op, f"{name}/"), f"{name}/kernel", op)
    expected = (in_features if in_features is not None else kernel.shape[0],
                out_features if out_features is not None else kernel.shape[-1])
    if kernel.ndim != 2 or tuple(kernel.shape) != expected:
        raise ValueError(
            f"{op}: params['{name}/kernel'] must have shape (in, out) = {expected}, but got "
            f"shape {tuple(kernel.shape)}"
        )
    out = {"kernel": kernel}
    if "bias" in layer:
        out["bias"] = _array(layer["bias"], f"{name}/bias", op, (kernel.shape[1],))
    return out


def _norm(params: Mapping, name: str, op: str, width: int) -> dict[str, jax.Array]:
    layer = _require(params, name, op)
    out = {"scale": _array(_require(layer, "scale", op, f"{name}/"), f"{name}/scale", op,
                           (width,))}
    if "bias" in layer:
        out["bias"] = _array(layer["bias"], f"{name}/bias", op, (width,))
    return out


def _known(params: Mapping, names: tuple[str, ...], op: str) -> None:
    if not isinstance(params, Mapping):
        raise TypeError(
            f"{op}: params must be a mapping of parameter names to arrays (the 'params' of "
            f"the linen module's variables), but got {type(params).__name__}"
        )
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(
            f"{op}: params has unknown entries {unknown}; expected some of {list(names)}"
        )


def _compute_dtype(dtype: Any, x: jax.Array, tree: Any) -> Any:
    if dtype is not None:
        return jnp.dtype(dtype)
    return jnp.result_type(x.dtype, *(leaf.dtype for leaf in jax.tree.leaves(tree)))


def _tokens(x: ArrayLike, channels_first: Any, op: str, spatial_dims: int | None = None):
    """``(N, *spatial, C)`` (or ``(N, C, *spatial)``) -> ``(N, L, C)`` tokens, row-major."""
    array = as_array(x, "input", op, kind="float")
    channels_first = geometry.as_bool(channels_first, "channels_first", op)
    low = 3 if spatial_dims is None else spatial_dims + 2
    if array.ndim < low or (spatial_dims is not None and array.ndim != low):
        layout = ("(N, C, " if channels_first else "(N, ") + (
            "H, W" if spatial_dims == 2 else "L or *spatial") + (")" if channels_first else ", C)")
        raise ValueError(
            f"{op}: expected an input of shape {layout}, but got shape {tuple(array.shape)}"
        )
    if 0 in array.shape[1:]:
        raise ValueError(
            f"{op}: Expected input to have non-zero size for non-batch dimensions, but got "
            f"shape {tuple(array.shape)}"
        )
    if channels_first:
        array = jnp.moveaxis(array, 1, -1)
    spatial = tuple(array.shape[1:-1])
    return array.reshape(array.shape[0], -1, array.shape[-1]), spatial, channels_first


# ----------------------------------------------------------------------------------
# Building blocks


def _last_axis(vector: jax.Array, ndim: int) -> jax.Array:
    """A vector shaped to broadcast along the last axis of an ``ndim`` array."""
    return vector.reshape((1,) * (ndim - 1) + (-1,))


def _dense(x: jax.Array, layer: Mapping[str, jax.Array], dtype) -> jax.Array:
    y = jnp.matmul(x, layer["kernel"].astype(dtype))
    return y + _last_axis(layer["bias"].astype(dtype), y.ndim) if "bias" in layer else y


def _apply_norm(x: jax.Array, layer: Mapping[str, jax.Array], kind: str, eps: float):
    """torch's ``LayerNorm`` or timm's ``RmsNorm`` over the last axis, in float32 for
    narrower floats."""
    compute = jnp.promote_types(x.dtype, jnp.float32)
    values = x.astype(compute)
    if kind == "layernorm":
        mean = jnp.mean(values, axis=-1, keepdims=True)
        centred = values - mean
        variance = jnp.mean(jnp.square(centred), axis=-1, keepdims=True)
        normed = centred * lax.rsqrt(variance + jnp.asarray(eps, compute))
    else:
        mean_square = jnp.mean(jnp.square(values), axis=-1, keepdims=True)
        normed = values * lax.rsqrt(mean_square + jnp.asarray(eps, compute))
    normed = normed * _last_axis(layer["scale"].astype(compute), normed.ndim)
    if "bias" in layer:
        normed = normed + _last_axis(layer["bias"].astype(compute), normed.ndim)
    return normed.astype(x.dtype)


def _attend(query, key, value, keep) -> jax.Array:
    """Multi-head attention ``(N, T, H, D)`` x ``(N, S, H, D)`` -> ``(N, T, H, D)``.

    ``keep`` (``(N, S)`` booleans or None): True = attend. A query whose keys are all
    masked gets 0 (torch's ``scaled_dot_product_attention`` too) and no gradient: the
    attention itself would fall back to a uniform softmax there.
    """
    if keep is None:
        return jax.nn.dot_product_attention(query, key, value)
    mask = keep[:, None, None, :]
    out = jax.nn.dot_product_attention(query, key, value, mask=mask)
    anything = jnp.any(keep, axis=-1)[:, None, None, None]
    return jnp.where(anything, out, jnp.zeros((), out.dtype))


def _key_mask(mask: Any, tokens_shape: tuple[int, int, int], spatial: tuple[int, ...],
              channels_first: bool, op: str) -> jax.Array | None:
    """The mask ``(N, *spatial)`` (or broadcastable) as ``(N, L)`` booleans."""
    if mask is None:
        return None
    batch, length, channels = tokens_shape
    n = len(spatial)
    shape = (batch, *spatial, channels)
    kept = masked.check_mask(mask, shape, tuple(range(1, n + 1)), n + 1, op)
    if kept is None:  # not reached: mask is not None
        return None
    flat = jnp.reshape(kept, (-1, length))  # (1 or N, L)
    return jnp.broadcast_to(flat, (batch, length))


# ----------------------------------------------------------------------------------
# AttentionPoolLatent

LATENT_ENTRIES = ("latent", "pos_embed", "q", "kv", "q_norm", "k_norm", "proj", "norm", "mlp")
"""The entries of :func:`attention_pool_latent`'s parameter tree."""


def attention_pool_latent(
    x: ArrayLike,
    params: Mapping[str, Any],
    *,
    num_heads: int,
    pool_type: str = "token",
    norm_layer: str = "layernorm",
    norm_eps: float = 1e-5,
    act_layer: str = "gelu",
    mask: ArrayLike | None = None,
    channels_first: bool = False,
    dtype: Any = None,
) -> jax.Array:
    """Attention pooling with learned latent queries: timm's ``AttentionPoolLatent``.

    For tokens ``x (N, L, C)`` (``C = embed_dim``), with ``head_dim = C // num_heads``::

        x   = x + pos_embed                        # if params has 'pos_embed' (L, C)
        q   = q(latent)                            # (latent_len, C); latent itself without 'q'
        k,v = split(kv(x))                         # (N, L, C) each
        q,k = q_norm(q), k_norm(k)                 # per head, if params has them
        y   = proj(softmax(q k^T / sqrt(head_dim)) v)          # heads concatenated
        y   = y + mlp(norm(y))                     # mlp = fc2(act(fc1(.))); without 'proj',
                                                   # neither (timm's out_features=0)
        out = y[:, 0] | mean(y, 1) | y             # pool_type 'token' | 'avg' | ''

    ``mask`` (True = attend) masks keys: it has the input's shape without channels
    (``(N, L)``, or ``(N, *spatial)`` for maps, or broadcasts to it). A row with no key
    kept gets an attention output of 0 (as torch's ``scaled_dot_product_attention``)
    and no gradient through the attention.

    Args:
      x: tokens ``(N, L, C)``, or a map ``(N, *spatial, C)`` whose positions are the
        tokens in row-major order (``(N, C, *spatial)`` / ``(N, C, L)`` with
        ``channels_first``); floating.
      params: the tree: ``latent (latent_len, latent_dim)``; Linear layers (``kernel
        (in, out)``, optional ``bias``) ``q`` (optional: ``latent_dim -> C``), ``kv``
        (``C -> 2C``: keys, then values), ``proj`` (optional, ``C -> out``), ``mlp``
        (``{'fc1', 'fc2'}``, with ``proj``); norms (``scale``, optional ``bias``)
        ``q_norm``/``k_norm`` (``head_dim``, optional) and ``norm`` (``out``,
        optional); ``pos_embed (L, C)`` (optional).
      num_heads: the number of heads; divides ``C``.
      pool_type: ``'token'`` (the first latent's output), ``'avg'`` (the latents'
        mean) or ``''`` (all latents, ``(N, latent_len, out)``).
      norm_layer: the kind of ``q_norm``, ``k_norm`` and ``norm``: ``'layernorm'``
        (torch's ``nn.LayerNorm``) or ``'rmsnorm'`` (timm's ``RmsNorm``).
      norm_eps: their epsilon; torch's ``nn.LayerNorm`` default ``1e-5`` (timm's ViT
        and SigLIP heads use ``1e-6``).
      act_layer: the MLP's activation: ``'gelu'`` (torch's exact ``nn.GELU``),
        ``'gelu_tanh'``, ``'quick_gelu'``, ``'relu'``, ``'silu'`` / ``'swish'``.
      mask: optional boolean key mask, True = attend.
      channels_first: whether ``x`` is ``(N, C, *spatial)``.
      dtype: the computation and output dtype; default: ``x``'s and the parameters'
        promoted dtype.

    Returns:
      ``(N, out)`` (``'token'``, ``'avg'``) or ``(N, latent_len, out)`` (``''``), with
      ``out`` the width of ``proj`` (``C`` without it).

    Raises:
      TypeError: for a non-floating input or parameter, or a non-boolean mask.
      ValueError: for an input that is not ``(N, *spatial, C)``, a parameter tree whose
        entries or shapes do not fit it (naming the entry), a bad option or mask shape.

    Example:
      >>> import jax, jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.AttentionPoolLatent(num_heads=4)
      >>> tokens = jnp.ones((2, 10, 64))
      >>> params = pool.init(jax.random.key(0), tokens)["params"]
      >>> sorted(params)
      ['kv', 'latent', 'mlp', 'proj', 'q']
      >>> jaxpool.attention_pool_latent(tokens, params, num_heads=4).shape
      (2, 64)
    """
    op = "attention_pool_latent"
    tokens, spatial, channels_first = _tokens(x, channels_first, op)
    _, length, width = tokens.shape
    _known(params, LATENT_ENTRIES, op)
    heads = check_num_heads(num_heads, width, op, "the input's channel count C")
    head_dim = width // heads
    check_choice(pool_type, "pool_type", POOL_TYPES_LATENT, op)
    check_choice(norm_layer, "norm_layer", NORM_LAYERS, op)
    check_choice(act_layer, "act_layer", tuple(ACTIVATIONS), op)
    eps = check_eps(norm_eps, op)
    latent = _array(_require(params, "latent", op), "latent", op)
    if latent.ndim != 2:
        raise ValueError(
            f"{op}: params['latent'] must have shape (latent_len, latent_dim), but got shape "
            f"{tuple(latent.shape)}"
        )
    layers: dict[str, Any] = {"latent": latent}
    if "q" in params:
        layers["q"] = _linear(params, "q", op, latent.shape[1], width)
    elif latent.shape[1] != width:
        raise ValueError(
            f"{op}: without a query projection ('q') the latent is the query, so its width "
            f"must be C={width}, but params['latent'] has shape {tuple(latent.shape)}"
        )
    layers["kv"] = _linear(params, "kv", op, width, 2 * width)
    if "pos_embed" in params:
        layers["pos_embed"] = _array(params["pos_embed"], "pos_embed", op, (length, width))
    for name in ("q_norm", "k_norm"):
        if name in params:
            layers[name] = _norm(params, name, op, head_dim)
    if ("q_norm" in params) != ("k_norm" in params):
        raise ValueError(f"{op}: params must hold both q_norm and k_norm (qk_norm), or neither")
    out_width = width
    if "proj" in params:
        layers["proj"] = _linear(params, "proj", op, width)
        out_width = layers["proj"]["kernel"].shape[1]
        mlp = _require(params, "mlp", op)
        fc1 = _linear(mlp, "fc1", op, out_width)
        layers["mlp"] = {"fc1": fc1,
                         "fc2": _linear(mlp, "fc2", op, fc1["kernel"].shape[1], out_width)}
        if "norm" in params:
            layers["norm"] = _norm(params, "norm", op, out_width)
    elif "mlp" in params or "norm" in params:
        raise ValueError(
            f"{op}: params has 'mlp' or 'norm' but no 'proj'; timm makes all three with "
            "out_features > 0 and none with out_features=0"
        )
    keep = _key_mask(mask, tokens.shape, spatial, channels_first, op)
    compute = _compute_dtype(dtype, tokens, layers)
    return _latent_impl(tokens.astype(compute), layers, keep, heads=heads, pool_type=pool_type,
                        norm_layer=norm_layer, eps=eps, act_layer=act_layer)


@functools.partial(
    jax.jit, static_argnames=("heads", "pool_type", "norm_layer", "eps", "act_layer")
)
def _latent_impl(x, layers, keep, *, heads, pool_type, norm_layer, eps, act_layer):
    dtype = x.dtype
    batch, length, width = x.shape
    head_dim = width // heads
    if "pos_embed" in layers:
        x = x + layers["pos_embed"].astype(dtype)[None]
    latent = layers["latent"].astype(dtype)
    query = _dense(latent, layers["q"], dtype) if "q" in layers else latent
    latent_len = query.shape[0]
    query = jnp.broadcast_to(query.reshape(1, latent_len, heads, head_dim),
                             (batch, latent_len, heads, head_dim))
    key_value = _dense(x, layers["kv"], dtype).reshape(batch, length, 2, heads, head_dim)
    key, value = key_value[:, :, 0], key_value[:, :, 1]
    if "q_norm" in layers:
        query = _apply_norm(query, layers["q_norm"], norm_layer, eps)
        key = _apply_norm(key, layers["k_norm"], norm_layer, eps)
    y = _attend(query, key, value, keep).reshape(batch, latent_len, width)
    if "proj" in layers:
        y = _dense(y, layers["proj"], dtype)
        hidden = y if "norm" not in layers else _apply_norm(y, layers["norm"], norm_layer, eps)
        hidden = ACTIVATIONS[act_layer](_dense(hidden, layers["mlp"]["fc1"], dtype))
        y = y + _dense(hidden, layers["mlp"]["fc2"], dtype)
    if pool_type == "token":
        return y[:, 0]
    if pool_type == "avg":
        return jnp.mean(y, axis=1).astype(dtype)
    return y


# ----------------------------------------------------------------------------------
# AttentionPool2d

POOL2D_ENTRIES = ("qkv", "q", "k", "v", "pos_embed", "cls_token", "proj")
"""The entries of :func:`attention_pool2d`'s parameter tree."""


def _cubic_aa(distance: np.ndarray) -> np.ndarray:
    """torch's antialiased bicubic filter (Keys, a = -0.5)."""
    a = -0.5
    t = np.abs(distance)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t < 1, near, np.where(t < 2, far, 0.0))


def resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """``(out_size, in_size)`` weights of torch's ``F.interpolate(mode='bicubic',
    antialias=True, align_corners=False)`` along one axis (what timm's
    ``resample_abs_pos_embed`` calls): the filter widens by the scale when shrinking,
    and each row's weights are normalised over the taps inside the input."""
    scale = in_size / out_size
    support = 2.0 * scale if scale >= 1 else 2.0
    inverse = 1.0 / scale if scale >= 1 else 1.0
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = scale * (i + 0.5)
        low = max(int(center - support + 0.5), 0)
        high = min(int(center + support + 0.5), in_size)
        taps = np.arange(low, high)
        row = _cubic_aa((taps - center + 0.5) * inverse)
        total = row.sum()
        weights[i, low:high] = row / total if total != 0 else row
    return weights


def _resampled_positions(pos_embed: jax.Array, feat_size: tuple[int, int],
                         size: tuple[int, int]) -> jax.Array:
    """timm's ``resample_abs_pos_embed``: the grid part resized to ``size`` (in float32,
    back to its dtype), the prefix token's row kept."""
    if tuple(size) == tuple(feat_size):
        return pos_embed
    prefix, grid = pos_embed[:1], pos_embed[1:].astype(jnp.float32)
    grid = grid.reshape(*feat_size, -1)
    rows = jnp.asarray(resize_weights(feat_size[0], size[0]), jnp.float32)
    cols = jnp.asarray(resize_weights(feat_size[1], size[1]), jnp.float32)
    grid = jnp.einsum("hH,HWc->hWc", rows, grid, precision=lax.Precision.HIGHEST)
    grid = jnp.einsum("wW,hWc->hwc", cols, grid, precision=lax.Precision.HIGHEST)
    grid = grid.reshape(size[0] * size[1], -1).astype(pos_embed.dtype)
    return jnp.concatenate([prefix, grid], axis=0)


def check_feat_size(feat_size: Any, where: str) -> tuple[int, int]:
    """timm's ``to_2tuple``: an int or a pair of positive ints."""
    size = geometry.as_tuple(feat_size, 2, "feat_size", where)
    if any(s < 1 for s in size):
        raise ValueError(f"{where}: feat_size must be positive, but got feat_size={feat_size!r}")
    return size


def attention_pool2d(
    x: ArrayLike,
    params: Mapping[str, Any],
    *,
    num_heads: int,
    feat_size: int | tuple[int, int] = 7,
    pool_type: str = "token",
    pre_logits: bool = False,
    channels_first: bool = False,
    dtype: Any = None,
) -> jax.Array:
    """Attention pooling of a 2D map: timm's ``AttentionPool2d`` (CLIP's ResNet head).

    For a map ``x (N, H, W, C)`` with ``E = embed_dim`` and ``head_dim = E // num_heads``::

        t   = concat([mean over H, W of x, x as H*W tokens])   # (N, 1 + H*W, C);
                                                             # cls_token for the mean if given
        t   = t + pos_embed                  # resized as timm does if (H, W) != feat_size
        q,k,v = split(qkv(t))                # or the layers q, k, v; (N, 1 + H*W, E) each
        y   = proj(softmax(q k^T / sqrt(head_dim)) v)     # heads concatenated
        out = y[:, 0]  |  y[:, 1:] as a map               # pool_type 'token' | ''

    The positional embedding was learned for ``feat_size``; another input size resizes
    its grid part as timm's ``resample_abs_pos_embed`` (antialiased bicubic, in
    float32).

    Args:
      x: the map ``(N, H, W, C)`` (``(N, C, H, W)`` with ``channels_first``), floating.
      params: the tree: ``qkv`` (a Linear ``C -> 3E``: queries, keys, values) or
        ``q``, ``k``, ``v`` (``C -> E`` each); ``pos_embed (1 + fh*fw, C)`` (the
        prefix token's row first, then the ``feat_size`` grid row-major);
        ``cls_token (E,)`` (optional; then ``E = C``); ``proj`` (optional, ``E ->
        out``). Linear layers are ``kernel (in, out)`` with an optional ``bias``.
      num_heads: the number of heads; divides ``E``.
      feat_size: the grid ``(fh, fw)`` (or an int for a square) that ``pos_embed``
        was made for.
      pool_type: ``'token'`` (the first token's output, ``(N, out)``) or ``''`` (every
        position's, as a map ``(N, H, W, out)``, or ``(N, out, H, W)`` with
        ``channels_first``).
      pre_logits: skip ``proj`` (``out = E``), as timm's ``forward(pre_logits=True)``.
      channels_first: whether ``x`` (and a map output) is channels-first.
      dtype: the computation and output dtype; default: ``x``'s and the parameters'
        promoted dtype.

    Returns:
      ``(N, out)``, or the map of every position's output; ``out`` is the width of
      ``proj``, or ``E`` without it.

    Raises:
      TypeError: for a non-floating input or parameter.
      ValueError: for an input that is not a 2D map, a parameter tree whose entries or
        shapes do not fit it (naming the entry), or a bad option.

    Example:
      >>> import jax, jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.AttentionPool2d(feat_size=(7, 7), num_heads=4)
      >>> features = jnp.ones((2, 7, 7, 64))
      >>> params = pool.init(jax.random.key(0), features)["params"]
      >>> jax.tree.map(jnp.shape, params)["pos_embed"]
      (50, 64)
      >>> jaxpool.attention_pool2d(features, params, num_heads=4, feat_size=7).shape
      (2, 64)
    """
    op = "attention_pool2d"
    tokens, spatial, channels_first = _tokens(x, channels_first, op, spatial_dims=2)
    batch, _, width = tokens.shape
    _known(params, POOL2D_ENTRIES, op)
    grid = check_feat_size(feat_size, op)
    check_choice(pool_type, "pool_type", POOL_TYPES_2D, op)
    pre_logits = geometry.as_bool(pre_logits, "pre_logits", op)
    layers: dict[str, Any] = {}
    separate = [name for name in ("q", "k", "v") if name in params]
    if "qkv" in params:
        if separate:
            raise ValueError(f"{op}: params must hold either 'qkv' or 'q', 'k', 'v', not both")
        layers["qkv"] = _linear(params, "qkv", op, width)
        embed, rest = divmod(layers["qkv"]["kernel"].shape[1], 3)
        if rest:
            raise ValueError(
                f"{op}: params['qkv/kernel'] must have 3 * embed_dim outputs, but got shape "
                f"{tuple(layers['qkv']['kernel'].shape)}"
            )
    else:
        if len(separate) != 3:
            _require(params, "qkv", op)
        layers["q"] = _linear(params, "q", op, width)
        embed = layers["q"]["kernel"].shape[1]
        layers["k"] = _linear(params, "k", op, width, embed)
        layers["v"] = _linear(params, "v", op, width, embed)
    heads = check_num_heads(num_heads, embed, op)
    layers["pos_embed"] = _array(_require(params, "pos_embed", op), "pos_embed", op,
                                 (1 + grid[0] * grid[1], width))
    if "cls_token" in params:
        if embed != width:
            raise ValueError(
                f"{op}: a class token is prepended to the input, so embed_dim must be the "
                f"input's channel count C={width}, but the attention has embed_dim={embed}"
            )
        layers["cls_token"] = _array(params["cls_token"], "cls_token", op, (width,))
    if "proj" in params and not pre_logits:
        layers["proj"] = _linear(params, "proj", op, embed)
    compute = _compute_dtype(dtype, tokens, layers)
    out = _pool2d_impl(tokens.astype(compute), layers, heads=heads, grid=grid,
                       size=tuple(spatial), pool_type=pool_type)
    if pool_type == "token":
        return out
    out = out.reshape(batch, *spatial, out.shape[-1])
    return jnp.moveaxis(out, -1, 1) if channels_first else out


@functools.partial(jax.jit, static_argnames=("heads", "grid", "size", "pool_type"))
def _pool2d_impl(x, layers, *, heads, grid, size, pool_type):
    dtype = x.dtype
    batch, length, width = x.shape
    if "cls_token" in layers:
        prefix = jnp.broadcast_to(layers["cls_token"].astype(dtype), (batch, 1, width))
    else:
        prefix = jnp.mean(x, axis=1, keepdims=True).astype(dtype)
    x = jnp.concatenate([prefix, x], axis=1)
    x = x + _resampled_positions(layers["pos_embed"], grid, size).astype(dtype)[None]
    total = length + 1
    queries = x[:, :1] if pool_type == "token" else x
    if "qkv" in layers:
        embed = layers["qkv"]["kernel"].shape[1] // 3
        qkv = _dense(x, layers["qkv"], dtype).reshape(batch, total, 3, heads, embed // heads)
        query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if pool_type == "token":
            query = query[:, :1]
    else:
        embed = layers["q"]["kernel"].shape[1]
        split = (heads, embed // heads)
        query = _dense(queries, layers["q"], dtype).reshape(batch, -1, *split)
        key = _dense(x, layers["k"], dtype).reshape(batch, total, *split)
        value = _dense(x, layers["v"], dtype).reshape(batch, total, *split)
    y = _attend(query, key, value, None)
    y = y.reshape(batch, y.shape[1], embed)
    if "proj" in layers:
        y = _dense(y, layers["proj"], dtype)
    return y[:, 0] if pool_type == "token" else y[:, 1:]
