"""Flax linen modules for attention pooling: timm's ``AttentionPoolLatent`` and
``AttentionPool2d``, with timm's options, parameters and initialisers.

Each module makes its parameters (shapes and initialisers from
``jaxpool/_module_rules.py``, the input's channel count inferred at ``init``) and calls
the op (:func:`jaxpool.attention_pool_latent`, :func:`jaxpool.attention_pool2d`); the
NNX twins (``jaxpool.nnx``) make the same parameters and call the same ops. Weights of
timm's modules load with :func:`jaxpool.torch_compat.attention_pool_latent_variables`
and :func:`jaxpool.torch_compat.attention_pool_2d_variables`.

Example:
  >>> import jax, jax.numpy as jnp, jaxpool
  >>> head = jaxpool.AttentionPoolLatent(num_heads=4)
  >>> tokens = jnp.ones((2, 10, 64))                    # (N, L, C)
  >>> variables = head.init(jax.random.key(0), tokens)
  >>> head.apply(variables, tokens, mask=jnp.arange(10) < 7).shape
  (2, 64)
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxpool import _attention_pool as attention
from jaxpool import _module_rules as rules
from jaxpool._module_rules import Dtype


def _make_params(module: nn.Module, specs: rules.SpecTree) -> dict[str, Any]:
    """One linen param per top-level entry (a Linear's ``{'kernel', 'bias'}`` is one
    param holding a dict), initialised by the shared rules."""
    return {
        name: module.param(
            name, lambda key, spec=spec: rules.init_parameters(key, spec, module.param_dtype)
        )
        for name, spec in specs.items()
    }


class AttentionPoolLatent(nn.Module):
    """Attention pooling with learned latent queries: timm's ``AttentionPoolLatent``
    (the MAP head of SigLIP and ViT).

    ``latent_len`` learned queries attend (``num_heads`` heads) over the input's tokens;
    an output projection and an MLP with a residual follow; ``pool_type`` keeps the
    first latent's output, their mean, or all of them. See
    :func:`jaxpool.attention_pool_latent` for the math. Input ``(N, L, C)`` tokens, or
    ``(N, *spatial, C)`` maps (their positions are the tokens, row-major); ``C`` is
    inferred (timm's ``in_features``). The call takes an optional key mask
    ``mask=(N, L)`` (or ``(N, *spatial)``, or broadcastable), True = attend.

    Parameters (timm's names; Linear layers are ``{'kernel' (in, out), 'bias'}``):
    ``latent (latent_len, latent_dim)``, ``q``, ``kv``, ``q_norm``/``k_norm``
    (``qk_norm``), ``pos_embed (feat_size, C)`` (``pos_embed='abs'``), ``proj``,
    ``norm`` (``norm_layer``), ``mlp/fc1``, ``mlp/fc2`` (the last three not with
    ``out_features=0``). Initialised as timm does: truncated normals for ``latent``
    and ``pos_embed``, torch's Linear default for the layers, ones and zeros for norms.

    Example:
      >>> import jax, jax.numpy as jnp, jaxpool
      >>> head = jaxpool.AttentionPoolLatent(num_heads=4, latent_len=2, pool_type="avg")
      >>> x = jax.random.normal(jax.random.key(0), (2, 7, 7, 64))   # a map: 49 tokens
      >>> variables = head.init(jax.random.key(1), x)
      >>> jax.tree.map(jnp.shape, variables["params"]["kv"])
      {'bias': (128,), 'kernel': (64, 128)}
      >>> head.apply(variables, x).shape
      (2, 64)

    Attributes:
      out_features: the output width; default None (``C``); 0 drops ``proj``,
        ``norm`` and ``mlp`` (timm's pre-logits mode: the attention's output, ``C``).
      embed_dim: the attention's width; default None (``C``; timm's forward needs it
        equal to ``C``, so another value is refused).
      num_heads: attention heads (divides ``C``); default 8.
      feat_size: the number of tokens, for ``pos_embed='abs'``; default None.
      mlp_ratio: the MLP's hidden width over ``out_features``; default 4.0.
      qkv_bias: biases in ``q`` and ``kv``; default True.
      q_proj: project the latent to the query (else the latent is the query and
        ``latent_dim`` must be ``C``); default True.
      qk_norm: normalise queries and keys per head (``norm_layer``, or LayerNorm);
        default False.
      latent_len: the number of latent queries; default 1.
      latent_dim: the latent's width; default None (``C``).
      pos_embed: ``''`` (none) or ``'abs'`` (a learned ``(feat_size, C)`` embedding
        added to the tokens); default ``''``.
      pool_type: ``'token'`` (first latent), ``'avg'`` (their mean) or ``''`` (all,
        ``(N, latent_len, out)``); default ``'token'``.
      norm_layer: None, ``'layernorm'`` (torch's ``nn.LayerNorm``) or ``'rmsnorm'``
        (timm's ``RmsNorm``): the norm before the MLP, and the kind of ``qk_norm``;
        default None (timm's classes are torch modules: name them here).
      act_layer: the MLP's activation: ``'gelu'`` (torch's exact ``nn.GELU``),
        ``'gelu_tanh'``, ``'quick_gelu'``, ``'relu'``, ``'silu'``; default ``'gelu'``.
      drop: dropout after ``proj``; only 0.0 (the default) is supported.
      norm_eps: the norms' epsilon; default 1e-5 (``nn.LayerNorm``'s; timm's ViT and
        SigLIP heads use ``partial(nn.LayerNorm, eps=1e-6)``: pass 1e-6).
      channels_first: input is ``(N, C, *spatial)``; default False.
      dtype: the computation dtype; default None (the input's and parameters'
        promoted dtype).
      param_dtype: the parameters' dtype; default float32.
    """

    out_features: int | None = None
    embed_dim: int | None = None
    num_heads: int = 8
    feat_size: int | None = None
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    q_proj: bool = True
    qk_norm: bool = False
    latent_len: int = 1
    latent_dim: int | None = None
    pos_embed: str = ""
    pool_type: str = "token"
    norm_layer: str | None = None
    act_layer: str = "gelu"
    drop: float = 0.0
    norm_eps: float = 1e-5
    channels_first: bool = False
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: ArrayLike, mask: ArrayLike | None = None) -> jax.Array:
        """Pools ``x (N, L, C)`` (or a map) to ``(N, out)`` (``(N, latent_len, out)``
        with ``pool_type=''``); ``mask`` as the input without channels, True = attend."""
        config = rules.latent_pool_config(
            self, **{name: getattr(self, name) for name in rules.LATENT_POOL_OPTIONS}
        )
        in_features = rules.channel_width(self, x, self.channels_first)
        params = _make_params(self, config.specs(self, in_features))
        return attention.attention_pool_latent(
            x, params, mask=mask, channels_first=self.channels_first, dtype=self.dtype,
            **config.op_options(),
        )


class AttentionPool2d(nn.Module):
    """Attention pooling of a 2D map: timm's ``AttentionPool2d`` (CLIP's ResNet head).

    The map's mean (or a learned class token) is prepended to its positions as a query
    token, a learned positional embedding (made for ``feat_size``, resized as timm does
    for other sizes) is added, and multi-head attention over all tokens gives the first
    token's output (``pool_type='token'``) or every position's (``''``). See
    :func:`jaxpool.attention_pool2d`. Input ``(N, H, W, C)`` (``(N, C, H, W)`` with
    ``channels_first``); ``C`` is inferred (timm's ``in_features``).

    Parameters (timm's names; Linear layers are ``{'kernel' (in, out), 'bias'}``):
    ``qkv`` (or ``q``, ``k``, ``v`` with ``qkv_separate``), ``pos_embed (1 + fh*fw,
    C)``, ``cls_token (C,)`` (``class_token``), ``proj`` (not with ``out_features=0``).
    Initialised as timm does: truncated normals of std ``C ** -0.5`` for the attention's
    weights and ``pos_embed``, zero biases, torch's Linear default for ``proj``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxpool
      >>> head = jaxpool.AttentionPool2d(feat_size=(7, 7), num_heads=4, out_features=32)
      >>> x = jax.random.normal(jax.random.key(0), (2, 7, 7, 64))
      >>> variables = head.init(jax.random.key(1), x)
      >>> head.apply(variables, x).shape
      (2, 32)
      >>> head.apply(variables, x, pre_logits=True).shape          # without proj
      (2, 64)

    Attributes:
      feat_size: the grid the positional embedding is made for, an int or ``(fh,
        fw)``; default 7.
      out_features: the output width; default None (``C``); 0 drops ``proj`` (the
        attention's output, ``embed_dim``).
      embed_dim: the attention's width; default None (``C``).
      head_dim: channels per head when ``num_heads`` is None; default 64.
      num_heads: attention heads; default None (``embed_dim // head_dim``).
      qkv_bias: biases in the query, key and value layers; default True.
      qkv_separate: three layers ``q``, ``k``, ``v`` instead of one ``qkv``; default
        False.
      pool_type: ``'token'`` (``(N, out)``) or ``''`` (every position, ``(N, H, W,
        out)``); default ``'token'``.
      class_token: a learned query token (``embed_dim`` must be ``C``) instead of the
        map's mean; default False.
      drop_rate: dropout of the attention's output; only 0.0 (the default) is
        supported.
      channels_first: input (and a map output) is channels-first; default False.
      dtype: the computation dtype; default None (the input's and parameters'
        promoted dtype).
      param_dtype: the parameters' dtype; default float32.
    """

    feat_size: int | tuple[int, int] = 7
    out_features: int | None = None
    embed_dim: int | None = None
    head_dim: int | None = 64
    num_heads: int | None = None
    qkv_bias: bool = True
    qkv_separate: bool = False
    pool_type: str = "token"
    class_token: bool = False
    drop_rate: float = 0.0
    channels_first: bool = False
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: ArrayLike, pre_logits: bool = False) -> jax.Array:
        """Pools ``x (N, H, W, C)`` to ``(N, out)`` (or a map with ``pool_type=''``);
        ``pre_logits=True`` skips ``proj``, as timm's ``forward(x, pre_logits=True)``."""
        config = rules.pool_2d_config(
            self, **{name: getattr(self, name) for name in rules.POOL_2D_OPTIONS}
        )
        in_features = rules.channel_width(self, x, self.channels_first, low_rank=4)
        params = _make_params(self, config.specs(self, in_features))
        return attention.attention_pool2d(
            x, params, pre_logits=pre_logits, channels_first=self.channels_first,
            dtype=self.dtype, **config.op_options(self, in_features),
        )
