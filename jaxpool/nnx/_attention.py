"""Flax NNX modules for attention pooling: the twins of ``jaxpool/_attention_modules.py``.

Same options (timm's names and defaults), parameters (names, shapes, timm's
initialisers: ``jaxpool/_module_rules.py``) and ops as the linen modules. NNX makes the
parameters at construction, so the input's channel count is an argument,
``in_features`` (timm's first argument), and ``rngs`` is required (the initialisers are
random). A Linear layer is a small module holding ``kernel`` and ``bias``, so that the
attribute paths are the linen variables' (``jaxpool.nnx.load_variables`` and
:mod:`jaxpool.torch_compat` work as for every other module).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike

from jaxpool import _attention_pool as attention
from jaxpool import _module_rules as rules
from jaxpool._module_rules import Dtype
from jaxpool.nnx import _common as common


class ParameterGroup(nnx.Module):
    """Parameters under one name, e.g. a Linear layer's ``kernel`` and ``bias``: each
    entry is an attribute (an ``nnx.Param``, or a nested group), named as linen names
    the variables."""

    def __init__(self, values: Mapping[str, Any]):
        for name, value in values.items():
            setattr(self, name, _node(value))


def _node(value: Any) -> Any:
    return ParameterGroup(value) if isinstance(value, Mapping) else nnx.Param(value)


def _value(node: Any) -> Any:
    """The arrays under a Param or a group, as the op's parameter tree."""
    if isinstance(node, ParameterGroup):
        return {name: _value(entry) for name, entry in vars(node).items()
                if isinstance(entry, (ParameterGroup, nnx.Param))}
    return common.read(node)


class _AttentionPoolBase(nnx.Module):
    """What both heads do at construction: keep the configuration and make the
    parameters (one attribute per top-level entry of the shared specs, each initialised
    with a key from ``rngs.params()``, as linen's one ``param`` per entry); and, at the
    call, hand the op its parameter tree."""

    def __init__(self, in_features: Any, config: Any, channels_first: bool, dtype: Any,
                 param_dtype: Any, rngs: Any):
        self.in_features = rules.check_features(self, "in_features", in_features)
        self.config = config
        self.channels_first = channels_first
        self.dtype = dtype
        self.param_dtype = param_dtype
        specs = config.specs(self, self.in_features)
        rngs = common.require_rngs(self, rngs)
        for name, spec in specs.items():
            setattr(self, name, _node(rules.init_parameters(rngs.params(), spec, param_dtype)))
        self.parameter_names = tuple(specs)

    def _parameters(self, x: ArrayLike) -> dict[str, Any]:
        """The op's parameter tree, after checking the input's channel count."""
        rules.check_input_width(self, x, self.channels_first, self.in_features)
        return {name: _value(getattr(self, name)) for name in self.parameter_names}


class AttentionPoolLatent(_AttentionPoolBase):
    """The NNX twin of :class:`jaxpool.AttentionPoolLatent`: attention pooling with
    learned latent queries, timm's ``AttentionPoolLatent`` (the MAP head of SigLIP and
    ViT). The twin's docstring has the options (names, meanings, defaults) and the
    shapes, :func:`jaxpool.attention_pool_latent` the math.

    What differs: ``in_features`` (``C``, timm's first argument) is given, and ``rngs``
    required, at construction, where NNX makes the parameters: attributes of the linen
    variables' names (``latent``, ``q``, ``kv``, ``proj``, ``mlp.fc1``, ...). The call
    takes the same optional key mask, ``mask=(N, L)``, True = attend.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxpool.nnx as jpn
      >>> head = jpn.AttentionPoolLatent(in_features=64, num_heads=4, rngs=nnx.Rngs(0))
      >>> head.latent[...].shape, head.kv.kernel[...].shape
      ((1, 64), (64, 128))
      >>> tokens = jnp.ones((2, 10, 64))
      >>> head(tokens, mask=jnp.arange(10) < 6).shape
      (2, 64)

    Attributes:
      in_features: the input's channel count ``C`` (= ``embed_dim``).
      config: the checked options (timm's names: ``num_heads``, ``latent_len``, ...).
      channels_first, dtype, param_dtype: as the linen twin's.

    Args:
      rngs: an ``nnx.Rngs`` for the (random) initialisers; required.

    Raises:
      TypeError, ValueError: at construction, for an option timm's module refuses or
        jaxpool does not support (each named), or no ``rngs``; at the call, for an
        input without ``in_features`` channels or a bad mask.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int | None = None,
        embed_dim: int | None = None,
        num_heads: int = 8,
        feat_size: int | None = None,
        mlp_ratio: float = 4.0,
        *,
        qkv_bias: bool = True,
        q_proj: bool = True,
        qk_norm: bool = False,
        latent_len: int = 1,
        latent_dim: int | None = None,
        pos_embed: str = "",
        pool_type: str = "token",
        norm_layer: str | None = None,
        act_layer: str = "gelu",
        drop: float = 0.0,
        norm_eps: float = 1e-5,
        channels_first: bool = False,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        config = rules.latent_pool_config(
            self, out_features=out_features, embed_dim=embed_dim, num_heads=num_heads,
            feat_size=feat_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, q_proj=q_proj,
            qk_norm=qk_norm, latent_len=latent_len, latent_dim=latent_dim,
            pos_embed=pos_embed, pool_type=pool_type, norm_layer=norm_layer,
            act_layer=act_layer, drop=drop, norm_eps=norm_eps,
        )
        super().__init__(in_features, config, channels_first, dtype, param_dtype, rngs)

    def __call__(self, x: ArrayLike, mask: ArrayLike | None = None) -> jax.Array:
        """Pools ``x``; ``mask`` as the input without channels, True = attend."""
        return attention.attention_pool_latent(
            x, self._parameters(x), mask=mask, channels_first=self.channels_first,
            dtype=self.dtype, **self.config.op_options(),
        )


class AttentionPool2d(_AttentionPoolBase):
    """The NNX twin of :class:`jaxpool.AttentionPool2d`: attention pooling of a 2D map,
    timm's ``AttentionPool2d`` (CLIP's ResNet head). The twin's docstring has the
    options and the shapes, :func:`jaxpool.attention_pool2d` the math.

    What differs is what differs for :class:`jaxpool.nnx.AttentionPoolLatent`:
    ``in_features`` and ``rngs`` at construction; the parameters are attributes (``qkv``
    or ``q``, ``k``, ``v``; ``pos_embed``; ``cls_token``; ``proj``). The call takes
    ``pre_logits``, as the twin's.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxpool.nnx as jpn
      >>> head = jpn.AttentionPool2d(in_features=64, feat_size=(7, 7), num_heads=4,
      ...                            rngs=nnx.Rngs(0))
      >>> head.pos_embed[...].shape
      (50, 64)
      >>> head(jnp.ones((2, 7, 7, 64))).shape
      (2, 64)

    Attributes:
      in_features: the input's channel count ``C``.
      config: the checked options (timm's names: ``feat_size``, ``num_heads``,
        ``head_dim``, ...).
      channels_first, dtype, param_dtype: as the linen twin's.

    Args:
      rngs: as :class:`jaxpool.nnx.AttentionPoolLatent`'s; required.

    Raises:
      TypeError, ValueError: as :class:`jaxpool.nnx.AttentionPoolLatent`'s (there is
        no mask to refuse here).
    """

    def __init__(
        self,
        in_features: int,
        feat_size: int | tuple[int, int] = 7,
        out_features: int | None = None,
        embed_dim: int | None = None,
        head_dim: int | None = 64,
        num_heads: int | None = None,
        *,
        qkv_bias: bool = True,
        qkv_separate: bool = False,
        pool_type: str = "token",
        class_token: bool = False,
        drop_rate: float = 0.0,
        channels_first: bool = False,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        config = rules.pool_2d_config(
            self, feat_size=common.freeze(feat_size), out_features=out_features,
            embed_dim=embed_dim, head_dim=head_dim, num_heads=num_heads, qkv_bias=qkv_bias,
            qkv_separate=qkv_separate, pool_type=pool_type, class_token=class_token,
            drop_rate=drop_rate,
        )
        super().__init__(in_features, config, channels_first, dtype, param_dtype, rngs)

    def __call__(self, x: ArrayLike, pre_logits: bool = False) -> jax.Array:
        """Pools ``x``; ``pre_logits=True`` skips ``proj``."""
        return attention.attention_pool2d(
            x, self._parameters(x), pre_logits=pre_logits, channels_first=self.channels_first,
            dtype=self.dtype, **self.config.op_options(self, self.in_features),
        )
