"""Flax NNX modules for learnable and mixed pooling: the twins of ``jaxpool/_learnable.py``.

Same parameters (names, shapes, initialisers), arguments, defaults and numbers as the
linen modules (see that module's docstring for the math). NNX makes parameters at
construction, so everything their shapes depend on is an argument:
``num_features`` (the channel count ``C``) for per-channel parameters and the
attention's layers. ``rngs`` is needed only where something is initialised randomly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike

from jaxpool import _geometry as geometry
from jaxpool import _hybrid as hybrid
from jaxpool import _module_rules as rules
from jaxpool.nnx import _common as common
from jaxpool.nnx._pooling import GlobalPoolBase

Size = Sequence[int]
PaddingLike = int | Sequence[int] | str | Sequence[tuple[int, int]]
Initializer = Callable[..., Any]
Dtype = Any


def _window_or_global(module: Any, n: int) -> tuple[int, ...]:
    """A placeholder spatial size for the module's check: one whole window, or any map
    in the global form."""
    if module.kernel_size is None:
        return (1,) * n
    return common.window_placeholder(n, module.kernel_size, module.stride, module.padding)


class HybridPool(nnx.Module):
    """Learnable mix of max and average pooling: the seed's ``HybridPooling``.

    ``out = a * max_pool(x) + (1 - a) * avg_pool(x)`` with ``a = sigmoid(mix_logit)``,
    one mix for the layer (``mix_logit`` of shape ``()``, as the seed) or one per
    channel (shape ``(C,)``, ``per_channel=True`` with ``num_features=C``). Windowed:
    ``(*batch, *spatial, C) -> (*batch, *out, C)``; global (``kernel_size=None``):
    ``-> (*batch, C)``. The default initialiser (zeros: an even mix) needs no ``rngs``;
    ``mix_logit_init=jax.nn.initializers.uniform(1.0)`` (the seed's ``torch.rand(1)``)
    does.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.HybridPool(kernel_size=(2, 2), stride=(2, 2))
      >>> pool.mix_logit[...]                           # sigmoid(0) = 0.5
      Array(0., dtype=float32)
      >>> x = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
      >>> pool(x)[0, ..., 0]                            # 0.5*max + 0.5*mean
      Array([[ 4.75,  6.75],
             [12.75, 14.75]], dtype=float32)
      >>> jpn.HybridPool(per_channel=True, num_features=1)(x)   # global form
      Array([[12.25]], dtype=float32)

    Attributes:
      kernel_size: window size per spatial dim (its length sets the rank); default
        ``None``: one window over the whole map (global form).
      stride: window stride; default ``None`` means ``kernel_size``.
      padding: int, per-dim ints, 'SAME', 'VALID' or ``(lo, hi)`` pairs; default 0.
      ceil_mode: ceil instead of floor for the output size; default False.
      count_include_pad: padding counts in the mean's divisor; default True.
      per_channel: one mix logit per channel (shape ``(C,)``); default False.
      num_features: the channel count ``C``; needed with ``per_channel=True``; default
        None.
      mix_logit_init: initialiser of ``mix_logit``; default zeros (mix 0.5).
      spatial_dims: global form only: the number of spatial dims; default 2.
      keepdims: global form only: keep size-1 spatial dims; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
      param_dtype: dtype of ``mix_logit``; default float32.
      mix_logit: the ``nnx.Param``.

    Args:
      rngs: an ``nnx.Rngs`` for a random ``mix_logit_init``; default None.

    Raises:
      TypeError, ValueError: at construction, for a configuration the op refuses, or
        ``per_channel=True`` without ``num_features``.
    """

    def __init__(
        self,
        kernel_size: Size | None = None,
        stride: int | Size | None = None,
        padding: PaddingLike = 0,
        *,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        per_channel: bool = False,
        num_features: int | None = None,
        mix_logit_init: Initializer = rules.MIX_LOGIT_INIT,
        spatial_dims: int = 2,
        keepdims: bool = False,
        channels_first: bool = False,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        self.kernel_size = common.freeze(kernel_size)
        self.stride = common.freeze(stride)
        self.padding = common.freeze(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.per_channel = geometry.as_bool(per_channel, "per_channel", "HybridPool")
        self.num_features = num_features
        self.mix_logit_init = mix_logit_init
        self.spatial_dims = spatial_dims
        self.keepdims = keepdims
        self.channels_first = channels_first
        self.param_dtype = param_dtype
        n = rules.pooling_rank(self, self.kernel_size, spatial_dims, keepdims)
        if self.per_channel:
            common.check_features(self, "num_features", num_features,
                                  needed_for="per_channel=True makes mix_logit of shape (C,)")
        elif num_features is not None:
            rules.check_features(self, "num_features", num_features)
        shape = rules.mix_logit_shape(self, num_features, self.per_channel)
        self.mix_logit = common.make_param(
            self, "mix_logit", mix_logit_init, shape, param_dtype, rngs
        )
        common.check_config(self, _window_or_global(self, n), num_features)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        n = rules.pooling_rank(self, self.kernel_size, self.spatial_dims, self.keepdims)
        return rules.hybrid_mix(
            x, jax.nn.sigmoid(common.read(self.mix_logit)), n, self.kernel_size, self.stride,
            self.padding, self.ceil_mode, self.count_include_pad, self.keepdims,
            self.channels_first,
        )


class AttentionHybridPool(nnx.Module):
    """Max/average mix set per example and channel by an SE-style attention: the seed's
    ``HybridPoolingWithAttention``.

    ``attention = sigmoid(excite(relu(squeeze(mean over the map of x))))``, shape
    ``(*batch, C)``, then ``out = attention * max_pool(x) + (1 - attention) *
    avg_pool(x)``. ``squeeze`` is an ``nnx.Linear`` ``C -> max(1, C // reduction)``
    and ``excite`` one back to ``C``, both with bias, initialised randomly (``rngs``).
    Windowed: ``(*batch, *spatial, C) -> (*batch, *out, C)``; global: ``-> (*batch, C)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.AttentionHybridPool(num_features=32, kernel_size=(2, 2), stride=(2, 2),
      ...                                rngs=nnx.Rngs(0))
      >>> pool.squeeze.kernel[...].shape, pool.excite.kernel[...].shape
      ((32, 8), (8, 32))
      >>> pool(jnp.ones((4, 16, 16, 32))).shape
      (4, 8, 8, 32)

    Attributes:
      num_features: the channel count ``C``.
      kernel_size: window size per spatial dim (its length sets the rank); default
        ``None``: global form (one window over the whole map).
      stride: window stride; default ``None`` means ``kernel_size``.
      padding: int, per-dim ints, 'SAME', 'VALID' or ``(lo, hi)`` pairs; default 0.
      ceil_mode: ceil instead of floor for the output size; default False.
      count_include_pad: padding counts in the mean's divisor; default True.
      reduction: channel reduction of the hidden layer; default 4 (the seed's).
      spatial_dims: global form only: the number of spatial dims; default 2.
      keepdims: global form only: keep size-1 spatial dims; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
      dtype: computation dtype of the Linear layers; default ``None`` (from the input).
      param_dtype: dtype of the Linear parameters; default float32.
      squeeze, excite: the ``nnx.Linear`` layers.

    Args:
      rngs: an ``nnx.Rngs`` for the Linear layers' initialisers (required).

    Raises:
      TypeError, ValueError: at construction, for a configuration the op refuses, a bad
        ``num_features`` or ``reduction``, or no ``rngs``; at the call, for an input
        without ``num_features`` channels.
    """

    def __init__(
        self,
        num_features: int,
        kernel_size: Size | None = None,
        stride: int | Size | None = None,
        padding: PaddingLike = 0,
        *,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        reduction: int = 4,
        spatial_dims: int = 2,
        keepdims: bool = False,
        channels_first: bool = False,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.num_features = common.check_features(
            self, "num_features", num_features, needed_for="the attention's layers have C inputs"
        )
        self.kernel_size = common.freeze(kernel_size)
        self.stride = common.freeze(stride)
        self.padding = common.freeze(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.reduction = reduction
        self.spatial_dims = spatial_dims
        self.keepdims = keepdims
        self.channels_first = channels_first
        self.dtype = dtype
        self.param_dtype = param_dtype
        n = rules.pooling_rank(self, self.kernel_size, spatial_dims, keepdims)
        hidden = rules.attention_hidden_features(self, self.num_features, reduction)
        rngs = common.require_rngs(self, rngs)
        self.squeeze = nnx.Linear(self.num_features, hidden, dtype=dtype,
                                  param_dtype=param_dtype, rngs=rngs)
        self.excite = nnx.Linear(hidden, self.num_features, dtype=dtype,
                                 param_dtype=param_dtype, rngs=rngs)
        common.check_config(self, _window_or_global(self, n), self.num_features)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        n = rules.pooling_rank(self, self.kernel_size, self.spatial_dims, self.keepdims)
        common.check_input_channels(self, x, n, self.channels_first, self.num_features)
        context = rules.attention_context(x, n, self.channels_first)
        attention = jax.nn.sigmoid(self.excite(jax.nn.relu(self.squeeze(context))))
        return rules.attention_mix(
            x, attention, n, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.keepdims, self.channels_first,
        )


class GatedPool(nnx.Module):
    """Gated max-average pooling (Lee et al., 2016) with a learned gate per window.

    ``mix = sigmoid(sum_j w_j * x_j)`` over each window's positions ``j``, then
    ``out = mix * max_pool(x) + (1 - mix) * avg_pool(x)`` (see
    :func:`jaxpool.gated_pool`). ``gate_weight`` has the window's shape, or the
    window's shape plus ``(C,)`` with ``per_channel=True`` (and ``num_features=C``).
    ``(*batch, *spatial, C) -> (*batch, *out, C)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.GatedPool(kernel_size=(3, 3), stride=(2, 2), padding=1, per_channel=True,
      ...                      num_features=4)
      >>> pool.gate_weight[...].shape
      (3, 3, 4)
      >>> pool(jnp.ones((2, 8, 8, 4))).shape
      (2, 4, 4, 4)

    Attributes:
      kernel_size: window size per spatial dim; its length sets the rank (required:
        the gate's weights have this shape).
      stride: window stride; default ``None`` means ``kernel_size``.
      padding: int, per-dim ints, 'SAME', 'VALID' or ``(lo, hi)`` pairs; default 0.
      ceil_mode: ceil instead of floor for the output size; default False.
      count_include_pad: padding counts in the mean's divisor; default True.
      per_channel: weights of shape ``kernel_size + (C,)``; default False.
      num_features: the channel count ``C``; needed with ``per_channel=True``; default
        None.
      gate_init: initialiser of ``gate_weight``; default zeros (mix 0.5 everywhere).
      channels_first: input is ``(*batch, C, *spatial)``; default False.
      param_dtype: dtype of ``gate_weight``; default float32.
      gate_weight: the ``nnx.Param``.

    Args:
      rngs: an ``nnx.Rngs`` for a random ``gate_init``; default None.

    Raises:
      TypeError, ValueError: at construction, for a configuration the op refuses, or
        ``per_channel=True`` without ``num_features``.
    """

    def __init__(
        self,
        kernel_size: Size,
        stride: int | Size | None = None,
        padding: PaddingLike = 0,
        *,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        per_channel: bool = False,
        num_features: int | None = None,
        gate_init: Initializer = rules.GATE_INIT,
        channels_first: bool = False,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        self.kernel_size = common.freeze(kernel_size)
        self.stride = common.freeze(stride)
        self.padding = common.freeze(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.per_channel = geometry.as_bool(per_channel, "per_channel", "GatedPool")
        self.num_features = num_features
        self.gate_init = gate_init
        self.channels_first = channels_first
        self.param_dtype = param_dtype
        n = rules.spatial_rank(self, "kernel_size", self.kernel_size)
        if self.per_channel:
            common.check_features(self, "num_features", num_features,
                                  needed_for="per_channel=True makes gate_weight of shape "
                                             "kernel_size + (C,)")
        elif num_features is not None:
            rules.check_features(self, "num_features", num_features)
        shape = rules.gate_shape(self, self.kernel_size, n, num_features, self.per_channel)
        self.gate_weight = common.make_param(
            self, "gate_weight", gate_init, shape, param_dtype, rngs
        )
        common.check_config(self, _window_or_global(self, n), num_features)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        return hybrid.gated_pool(
            x, common.read(self.gate_weight), self.kernel_size, self.stride, self.padding,
            self.ceil_mode, self.count_include_pad, spatial_dims=len(self.kernel_size),
            channels_first=self.channels_first,
        )


class GeMPool(nnx.Module):
    """Generalised-mean pooling with a learnable power ``p`` (timm's ``GeM``).

    ``out = mean(max(x, eps) ** p) ** (1 / p)`` over the whole map (default:
    ``(*batch, *spatial, C) -> (*batch, C)``) or over windows; ``p = 1`` is the mean,
    large ``p`` approaches the maximum. See :func:`jaxpool.gem_pool`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.GeMPool()
      >>> pool.p[...]
      Array(3., dtype=float32)
      >>> pool(jnp.ones((8, 7, 7, 512))).shape
      (8, 512)

    Attributes:
      initial_p: initial value of the parameter ``p``; default 3.0.
      learn_p: whether ``p`` is a parameter; if False it is the constant
        ``initial_p`` (and ``p`` is None); default True.
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
      p: the ``nnx.Param`` of shape ``()``, or None when not learned.

    Raises:
      TypeError, ValueError: at construction, for a configuration the op refuses.
    """

    def __init__(
        self,
        initial_p: float = rules.GEM_INITIAL_P,
        *,
        learn_p: bool = True,
        eps: float = 1e-6,
        kernel_size: Size | None = None,
        stride: int | Size | None = None,
        padding: PaddingLike = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        spatial_dims: int = 2,
        keepdims: bool = False,
        channels_first: bool = False,
        param_dtype: Dtype = jnp.float32,
    ):
        self.initial_p = initial_p
        self.learn_p = geometry.as_bool(learn_p, "learn_p", "GeMPool")
        self.eps = eps
        self.kernel_size = common.freeze(kernel_size)
        self.stride = common.freeze(stride)
        self.padding = common.freeze(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.spatial_dims = spatial_dims
        self.keepdims = keepdims
        self.channels_first = channels_first
        self.param_dtype = param_dtype
        n = rules.pooling_rank(self, self.kernel_size, spatial_dims, keepdims)
        self.p = (
            nnx.Param(rules.gem_p_init(initial_p)(None, (), param_dtype))
            if self.learn_p else None
        )
        common.check_config(self, _window_or_global(self, n), None)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``: ``(*batch, *spatial, C)`` -> ``(*batch, C)`` in the global form."""
        n = rules.pooling_rank(self, self.kernel_size, self.spatial_dims, self.keepdims)
        learned = None if self.p is None else common.read(self.p)
        return hybrid.gem_pool(
            x, rules.gem_power(learned, self.initial_p, self.param_dtype), self.kernel_size,
            self.stride, self.padding, self.ceil_mode, self.count_include_pad, eps=self.eps,
            spatial_dims=n, keepdims=self.keepdims, channels_first=self.channels_first,
        )


class SoftPool(nnx.Module):
    """SoftPool (Stergiou et al., 2021): softmax-weighted pooling; no parameters.

    ``out = sum_R softmax_R(x) * x`` per window, or over the whole map (the default:
    ``(*batch, *spatial, C) -> (*batch, C)``); see :func:`jaxpool.soft_pool`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> jpn.SoftPool(kernel_size=(2, 2))(jnp.ones((2, 8, 8, 3))).shape
      (2, 4, 4, 3)
      >>> jpn.SoftPool()(jnp.ones((2, 8, 8, 3))).shape
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

    Raises:
      TypeError, ValueError: at construction, for a configuration the op refuses.
    """

    def __init__(
        self,
        kernel_size: Size | None = None,
        stride: int | Size | None = None,
        padding: PaddingLike = 0,
        *,
        ceil_mode: bool = False,
        spatial_dims: int = 2,
        keepdims: bool = False,
        channels_first: bool = False,
    ):
        self.kernel_size = common.freeze(kernel_size)
        self.stride = common.freeze(stride)
        self.padding = common.freeze(padding)
        self.ceil_mode = ceil_mode
        self.spatial_dims = spatial_dims
        self.keepdims = keepdims
        self.channels_first = channels_first
        n = rules.pooling_rank(self, self.kernel_size, spatial_dims, keepdims)
        common.check_config(self, _window_or_global(self, n), None)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        n = rules.pooling_rank(self, self.kernel_size, self.spatial_dims, self.keepdims)
        return hybrid.soft_pool(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode, spatial_dims=n,
            keepdims=self.keepdims, channels_first=self.channels_first,
        )


class AvgMaxPool(GlobalPoolBase):
    """timm's ``avgmax`` head: ``0.5 * (global mean + global max)``; no parameters.

    ``(*batch, *spatial, C) -> (*batch, C)``; see :func:`jaxpool.global_avg_max_pool`.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> jpn.AvgMaxPool()(jnp.ones((8, 7, 7, 512))).shape
      (8, 512)

    Attributes:
      spatial_dims: number of spatial dims (1, 2 or 3); default 2.
      keepdims: keep the spatial dims with size 1; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    pool_function = staticmethod(hybrid.global_avg_max_pool)


class CatAvgMaxPool(GlobalPoolBase):
    """timm's ``catavgmax`` head: ``concat([global mean, global max])``; no parameters.

    ``(*batch, *spatial, C) -> (*batch, 2C)``: means first, then maxima (see
    :func:`jaxpool.global_cat_avg_max_pool`).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> jpn.CatAvgMaxPool()(jnp.ones((8, 7, 7, 512))).shape
      (8, 1024)

    Attributes:
      spatial_dims: number of spatial dims (1, 2 or 3); default 2.
      keepdims: keep the spatial dims with size 1; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    pool_function = staticmethod(hybrid.global_cat_avg_max_pool)
