"""Flax linen modules for learnable and mixed pooling: parameters, then one call to an op.

For each window ``R`` (``max_R`` and ``mean_R`` as torch's max and average pooling):

* ``HybridPool``: ``a * max_R + (1 - a) * mean_R`` with ``a = sigmoid(mix_logit)``;
  ``mix_logit`` of shape ``()`` or ``(C,)``.
* ``AttentionHybridPool``: the same mix with ``a = sigmoid(excite(relu(squeeze(m))))``,
  ``m`` the input's mean over the map, so ``a`` is ``(*batch, C)``; Dense layers
  ``squeeze`` (``C -> max(1, C // reduction)``) and ``excite`` (back to ``C``).
* ``GatedPool``: the same mix with ``a = sigmoid(sum_{j in R} w_j x_j)``;
  ``gate_weight`` of shape ``kernel_size`` or ``kernel_size + (C,)``.
* ``GeMPool``: ``mean_R(max(x, eps) ** p) ** (1 / p)``; ``p`` of shape ``()``.
* ``SoftPool``: ``sum_{i in R} softmax_R(x)_i * x_i``; no parameters.
* ``AvgMaxPool`` / ``CatAvgMaxPool``: ``0.5 * (mean + max)`` / ``concat([mean, max])``
  over the whole map; no parameters.

Shapes: inputs are ``(*batch, *spatial, C)`` (channels-last) or, with
``channels_first=True``, ``(*batch, C, *spatial)``. Windowed pooling keeps the layout
and replaces each spatial size by torch's output size (see
:func:`jaxpool.pool_output_shape`). The spatial rank is ``len(kernel_size)``, so sizes
are tuples (``(2, 2)`` pools 2D).

Global form: ``kernel_size=None`` means one window covering the whole map (a CNN
head); ``spatial_dims`` then gives the rank and the output is ``(*batch, C)``, or the
input's rank with spatial dims of size 1 when ``keepdims=True``. GeMPool and SoftPool
default to the global form; HybridPool and AttentionHybridPool take either;
GatedPool is windowed only (its weights have the window's shape).

Example:
  >>> import jax, jax.numpy as jnp, jaxpool
  >>> pool = jaxpool.HybridPool(kernel_size=(2, 2))
  >>> x = jnp.ones((8, 32, 32, 16))
  >>> variables = pool.init(jax.random.key(0), x)
  >>> variables["params"]["mix_logit"]          # sigmoid(0) = 0.5: half max, half mean
  Array(0., dtype=float32)
  >>> pool.apply(variables, x).shape
  (8, 16, 16, 16)
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxpool import _hybrid as hybrid
from jaxpool import _module_rules as rules
from jaxpool._linen import GlobalPoolBase, PoolingModule
from jaxpool._module_rules import Dtype, Initializer, PaddingLike, Size


class HybridPool(PoolingModule):
    """Learnable mix of max and average pooling (the PyTorch module ``HybridPooling``).

    ``out = a * max_pool(x) + (1 - a) * avg_pool(x)`` with ``a = sigmoid(mix_logit)``,
    a scalar (one mix for the layer, as ``HybridPooling``) or one per channel.
    ``HybridPooling`` initialises its logit with ``torch.rand(1)`` (uniform in [0, 1));
    the default here is 0 (an even mix), and
    ``mix_logit_init=jax.nn.initializers.uniform(1.0)`` gives its initialisation. See
    :func:`jaxpool.hybrid_pool2d` for the windows and gradients.

    Example:
      >>> import jax, jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.HybridPool(kernel_size=(2, 2), per_channel=True)
      >>> x = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
      >>> variables = pool.init(jax.random.key(0), x)
      >>> variables["params"]["mix_logit"].shape
      (1,)
      >>> pool.apply(variables, x)[0, ..., 0]          # 0.5*max + 0.5*mean
      Array([[ 4.75,  6.75],
             [12.75, 14.75]], dtype=float32)
      >>> global_pool = jaxpool.HybridPool()            # kernel_size=None: whole map
      >>> global_pool.apply({"params": {"mix_logit": jnp.array(0.0)}}, x)
      Array([[12.25]], dtype=float32)

    Attributes:
      kernel_size: window size per spatial dim (its length sets the rank); default
        ``None``: one window over the whole map (global form).
      stride: window stride; default ``None`` means ``kernel_size``.
      padding: int, per-dim ints, 'SAME', 'VALID' or ``(lo, hi)`` pairs; default 0.
      ceil_mode: ceil instead of floor for the output size; default False.
      count_include_pad: padding counts in the mean's divisor; default True.
      per_channel: one mix logit per channel (shape ``(C,)``) instead of one for the
        layer (shape ``()``); default False.
      mix_logit_init: initialiser of ``mix_logit``; default zeros (mix 0.5).
      spatial_dims: global form only: the number of spatial dims; default 2.
      keepdims: global form only: keep size-1 spatial dims; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
      param_dtype: dtype of ``mix_logit``; default float32.
    """

    kernel_size: Size | None = None
    stride: int | Size | None = None
    padding: PaddingLike = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    per_channel: bool = False
    mix_logit_init: Initializer = rules.MIX_LOGIT_INIT
    spatial_dims: int = 2
    keepdims: bool = False
    channels_first: bool = False
    param_dtype: Dtype = jnp.float32

    op = staticmethod(rules.hybrid_mix)

    @nn.compact
    def __call__(self, x: ArrayLike, **options: Any) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        channels = (
            rules.channel_count(self, x, self._rank, self.channels_first)
            if self.per_channel else None
        )
        shape = rules.mix_logit_shape(self, channels, self.per_channel)
        mix_logit = self.param("mix_logit", self.mix_logit_init, shape, self.param_dtype)
        return rules.learned_mix(self, x, mix_logit, **options)


class AttentionHybridPool(PoolingModule):
    """Max/average mix set per example and channel by an SE-style attention (the PyTorch
    module ``HybridPoolingWithAttention``).

    ``attention = sigmoid(excite(relu(squeeze(mean over the map of x))))``, computed on
    the input before pooling, shape ``(*batch, C)``; then
    ``out = attention * max_pool(x) + (1 - attention) * avg_pool(x)``. ``squeeze`` is
    a Dense ``C -> max(1, C // reduction)`` (``HybridPoolingWithAttention``'s ``C // 4``
    is 0 for ``C < 4``)
    and ``excite`` a Dense back to ``C``, both with bias.

    Example:
      >>> import jax, jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.AttentionHybridPool(kernel_size=(2, 2), stride=(2, 2))
      >>> x = jnp.ones((4, 16, 16, 32))
      >>> variables = pool.init(jax.random.key(0), x)
      >>> jax.tree_util.tree_map(jnp.shape, variables["params"])
      {'excite': {'bias': (32,), 'kernel': (8, 32)}, 'squeeze': {'bias': (8,), 'kernel': (32, 8)}}
      >>> pool.apply(variables, x).shape
      (4, 8, 8, 32)

    Attributes:
      kernel_size: window size per spatial dim (its length sets the rank); default
        ``None``: global form (one window over the whole map).
      stride: window stride; default ``None`` means ``kernel_size``.
      padding: int, per-dim ints, 'SAME', 'VALID' or ``(lo, hi)`` pairs; default 0.
      ceil_mode: ceil instead of floor for the output size; default False.
      count_include_pad: padding counts in the mean's divisor; default True.
      reduction: channel reduction of the hidden layer; default 4 (the PyTorch module's).
      spatial_dims: global form only: the number of spatial dims; default 2.
      keepdims: global form only: keep size-1 spatial dims; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
      dtype: computation dtype of the Dense layers; default ``None`` (from the input).
      param_dtype: dtype of the Dense parameters; default float32.
    """

    kernel_size: Size | None = None
    stride: int | Size | None = None
    padding: PaddingLike = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    reduction: int = 4
    spatial_dims: int = 2
    keepdims: bool = False
    channels_first: bool = False
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    op = staticmethod(rules.hybrid_mix)

    @nn.compact
    def __call__(self, x: ArrayLike, **options: Any) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        channels = rules.channel_count(self, x, self._rank, self.channels_first)
        dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=self.param_dtype)
        hidden_features = rules.attention_hidden_features(self, channels, self.reduction)
        return rules.attention_mix(
            self, x, dense(hidden_features, name="squeeze"), dense(channels, name="excite"),
            **options,
        )


class GatedPool(PoolingModule):
    """Gated max-average pooling (Lee et al., 2016) with a learned gate per window.

    ``mix = sigmoid(sum_j w_j * x_j)`` over each window's positions ``j``, then
    ``out = mix * max_pool(x) + (1 - mix) * avg_pool(x)`` (see
    :func:`jaxpool.gated_pool`). ``gate_weight`` has the window's shape (one gate
    for the layer, as the paper's "per layer" variant) or the window's shape plus
    ``(C,)`` ("per layer/channel").

    Example:
      >>> import jax, jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.GatedPool(kernel_size=(3, 3), stride=(2, 2), padding=1, per_channel=True)
      >>> x = jnp.ones((2, 8, 8, 4))
      >>> variables = pool.init(jax.random.key(0), x)
      >>> variables["params"]["gate_weight"].shape
      (3, 3, 4)
      >>> pool.apply(variables, x).shape
      (2, 4, 4, 4)

    Attributes:
      kernel_size: window size per spatial dim; its length sets the rank (required:
        the gate's weights have this shape).
      stride: window stride; default ``None`` means ``kernel_size``.
      padding: int, per-dim ints, 'SAME', 'VALID' or ``(lo, hi)`` pairs; default 0.
      ceil_mode: ceil instead of floor for the output size; default False.
      count_include_pad: padding counts in the mean's divisor; default True.
      per_channel: weights of shape ``kernel_size + (C,)`` instead of
        ``kernel_size``; default False.
      gate_init: initialiser of ``gate_weight``; default zeros (mix 0.5 everywhere).
      channels_first: input is ``(*batch, C, *spatial)``; default False.
      param_dtype: dtype of ``gate_weight``; default float32.
    """

    kernel_size: Size
    stride: int | Size | None = None
    padding: PaddingLike = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    per_channel: bool = False
    gate_init: Initializer = rules.GATE_INIT
    channels_first: bool = False
    param_dtype: Dtype = jnp.float32

    op = staticmethod(hybrid.gated_pool)

    @nn.compact
    def __call__(self, x: ArrayLike, **options: Any) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        n = self._rank
        channels = (
            rules.channel_count(self, x, n, self.channels_first) if self.per_channel else None
        )
        shape = rules.gate_shape(self, self.kernel_size, n, channels, self.per_channel)
        gate_weight = self.param("gate_weight", self.gate_init, shape, self.param_dtype)
        return rules.pool(self, x, gate_weight=gate_weight, **options)


class GeMPool(PoolingModule):
    """Generalised-mean pooling with a learnable power ``p`` (timm's ``GeM``).

    ``out = mean(max(x, eps) ** p) ** (1 / p)`` over the whole map (default) or over
    windows; ``p = 1`` is the mean, large ``p`` approaches the maximum. See
    :func:`jaxpool.gem_pool`.

    Example:
      >>> import jax, jax.numpy as jnp, jaxpool
      >>> pool = jaxpool.GeMPool()
      >>> x = jnp.ones((8, 7, 7, 512))
      >>> variables = pool.init(jax.random.key(0), x)
      >>> variables["params"]["p"]
      Array(3., dtype=float32)
      >>> pool.apply(variables, x).shape
      (8, 512)

    Attributes:
      initial_p: initial value of the parameter ``p``; default 3.0.
      learn_p: whether ``p`` is a parameter; if False it is the constant
        ``initial_p``; default True.
      eps: lower clamp of the input; default 1e-6.
      kernel_size: ``None`` (default) for the global form, else the window size per
        spatial dim (its length sets the rank).
      stride: window stride; default ``None`` means ``kernel_size``.
      padding: int, per-dim ints, 'SAME', 'VALID' or ``(lo, hi)`` pairs; default 0.
      ceil_mode: ceil instead of floor for the output size; default False.
      count_include_pad: padding counts in the divisor; default True.
      spatial_dims: global form only: the number of spatial dims; default 2.
      keepdims: global form only: keep size-1 spatial dims; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
      param_dtype: dtype of ``p``; default float32.
    """

    initial_p: float = rules.GEM_INITIAL_P
    learn_p: bool = True
    eps: float = 1e-6
    kernel_size: Size | None = None
    stride: int | Size | None = None
    padding: PaddingLike = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    spatial_dims: int = 2
    keepdims: bool = False
    channels_first: bool = False
    param_dtype: Dtype = jnp.float32

    op = staticmethod(hybrid.gem_pool)

    @nn.compact
    def __call__(self, x: ArrayLike, **options: Any) -> jax.Array:
        """Pools ``x``: ``(*batch, *spatial, C)`` -> ``(*batch, C)`` in the global form."""
        learned = (
            self.param("p", rules.gem_p_init(self.initial_p), (), self.param_dtype)
            if self.learn_p else None
        )
        return rules.generalised_mean(self, x, learned, **options)


class SoftPool(PoolingModule):
    """SoftPool (Stergiou et al., 2021): softmax-weighted pooling; no parameters.

    ``out = sum_R softmax_R(x) * x`` per window (or over the whole map, the default);
    see :func:`jaxpool.soft_pool`.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.SoftPool(kernel_size=(2, 2)).apply({}, jnp.ones((2, 8, 8, 3))).shape
      (2, 4, 4, 3)
      >>> jaxpool.SoftPool().apply({}, jnp.ones((2, 8, 8, 3))).shape
      (2, 3)

    Attributes:
      kernel_size: ``None`` (default) for the global form, else the window size per
        spatial dim (its length sets the rank).
      stride: window stride; default ``None`` means ``kernel_size``.
      padding: int, per-dim ints, 'SAME', 'VALID' or ``(lo, hi)`` pairs (padding has
        no weight); default 0.
      ceil_mode: ceil instead of floor for the output size; default False.
      spatial_dims: global form only: the number of spatial dims; default 2.
      keepdims: global form only: keep size-1 spatial dims; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    kernel_size: Size | None = None
    stride: int | Size | None = None
    padding: PaddingLike = 0
    ceil_mode: bool = False
    spatial_dims: int = 2
    keepdims: bool = False
    channels_first: bool = False

    op = staticmethod(hybrid.soft_pool)


class AvgMaxPool(GlobalPoolBase):
    """timm's ``avgmax`` head: ``0.5 * (global mean + global max)``; no parameters.

    See :func:`jaxpool.global_avg_max_pool`.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.AvgMaxPool().apply({}, jnp.ones((8, 7, 7, 512))).shape
      (8, 512)

    Attributes:
      spatial_dims, keepdims, channels_first: as :class:`jaxpool.GlobalAvgPool`'s.
    """

    op = staticmethod(hybrid.global_avg_max_pool)


class CatAvgMaxPool(GlobalPoolBase):
    """timm's ``catavgmax`` head: ``concat([global mean, global max])``; no parameters.

    The output has twice the channels: means first, then maxima (see
    :func:`jaxpool.global_cat_avg_max_pool`), so ``(*batch, 2C)``.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.CatAvgMaxPool().apply({}, jnp.ones((8, 7, 7, 512))).shape
      (8, 1024)

    Attributes:
      spatial_dims, keepdims, channels_first: as :class:`jaxpool.GlobalAvgPool`'s.
    """

    op = staticmethod(hybrid.global_cat_avg_max_pool)

