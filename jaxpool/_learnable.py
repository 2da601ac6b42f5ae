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

from typing import Any, Callable, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxpool import _adaptive as adaptive
from jaxpool import _geometry as geometry
from jaxpool import _hybrid as hybrid
from jaxpool._linen import GlobalPoolBase, spatial_rank

Size = Sequence[int]
PaddingLike = Union[int, Sequence[int], str, Sequence[tuple[int, int]]]
Initializer = Callable[..., Any]
Dtype = Any

_HYBRID = {1: hybrid.hybrid_pool1d, 2: hybrid.hybrid_pool2d, 3: hybrid.hybrid_pool3d}


def _rank(module: nn.Module) -> int:
    """Spatial rank: ``len(kernel_size)``, or ``spatial_dims`` for the global form."""
    name = type(module).__name__
    if module.kernel_size is None:
        return geometry.check_spatial_dims(module.spatial_dims, name)
    hybrid.check_keepdims(module.keepdims, module.kernel_size, name)
    return spatial_rank(module, "kernel_size", module.kernel_size)


def _channels(module: nn.Module, x: ArrayLike, n: int) -> int:
    """The channel count of ``x`` (checks the input's rank first, with the op's message)."""
    shape = tuple(jnp.shape(x))
    geometry.spatial_axes(shape, n, module.channels_first, type(module).__name__)
    return shape[len(shape) - n - 1] if module.channels_first else shape[-1]


def _expand_to_input_rank(values: jax.Array, n: int, channels_first: bool) -> jax.Array:
    """``(*batch, C)`` -> ``(*batch, 1.., C)`` or ``(*batch, C, 1..)``: broadcasts to pooled maps."""
    if channels_first:
        return values.reshape((*values.shape, *(1,) * n))
    return values.reshape((*values.shape[:-1], *(1,) * n, values.shape[-1]))


class HybridPool(nn.Module):
    """Learnable mix of max and average pooling: the seed's ``HybridPooling``.

    ``out = a * max_pool(x) + (1 - a) * avg_pool(x)`` with ``a = sigmoid(mix_logit)``,
    a scalar (one mix for the layer, as the seed) or one per channel. The seed
    initialises its logit with ``torch.rand(1)`` (uniform in [0, 1)); the default here
    is 0 (an even mix), and ``mix_logit_init=jax.nn.initializers.uniform(1.0)`` gives
    the seed's. See :func:`jaxpool.hybrid_pool2d` for the windows and gradients.

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

    kernel_size: Optional[Size] = None
    stride: Optional[Union[int, Size]] = None
    padding: PaddingLike = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    per_channel: bool = False
    mix_logit_init: Initializer = nn.initializers.zeros
    spatial_dims: int = 2
    keepdims: bool = False
    channels_first: bool = False
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        n = _rank(self)
        shape = (_channels(self, x, n),) if self.per_channel else ()
        mix_logit = self.param("mix_logit", self.mix_logit_init, shape, self.param_dtype)
        alpha = jax.nn.sigmoid(mix_logit)
        if self.kernel_size is None:
            return hybrid.global_hybrid_pool(
                x, alpha, spatial_dims=n, keepdims=self.keepdims, channels_first=self.channels_first
            )
        return _HYBRID[n](
            x, alpha, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, channels_first=self.channels_first,
        )


class AttentionHybridPool(nn.Module):
    """Max/average mix set per example and channel by an SE-style attention: the seed's
    ``HybridPoolingWithAttention``.

    ``attention = sigmoid(excite(relu(squeeze(mean over the map of x))))``, computed on
    the input before pooling, shape ``(*batch, C)``; then
    ``out = attention * max_pool(x) + (1 - attention) * avg_pool(x)``. ``squeeze`` is
    a Dense ``C -> max(1, C // reduction)`` (the seed's ``C // 4`` is 0 for ``C < 4``)
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
      reduction: channel reduction of the hidden layer; default 4 (the seed's).
      spatial_dims: global form only: the number of spatial dims; default 2.
      keepdims: global form only: keep size-1 spatial dims; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
      dtype: computation dtype of the Dense layers; default ``None`` (from the input).
      param_dtype: dtype of the Dense parameters; default float32.
    """

    kernel_size: Optional[Size] = None
    stride: Optional[Union[int, Size]] = None
    padding: PaddingLike = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    reduction: int = 4
    spatial_dims: int = 2
    keepdims: bool = False
    channels_first: bool = False
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        n = _rank(self)
        channels = _channels(self, x, n)
        reduction = geometry.as_int(self.reduction, "reduction", type(self).__name__)
        if reduction < 1:
            raise ValueError(
                f"{type(self).__name__}: reduction must be at least 1, but got "
                f"reduction={self.reduction!r}"
            )
        context = adaptive.global_avg_pool(x, spatial_dims=n, channels_first=self.channels_first)
        hidden = nn.Dense(max(1, channels // reduction), dtype=self.dtype,
                          param_dtype=self.param_dtype, name="squeeze")(context)
        logits = nn.Dense(channels, dtype=self.dtype, param_dtype=self.param_dtype,
                          name="excite")(nn.relu(hidden))
        attention = nn.sigmoid(logits)  # (*batch, C)
        if self.kernel_size is None:
            if self.keepdims:
                attention = _expand_to_input_rank(attention, n, self.channels_first)
            return hybrid.global_hybrid_pool(
                x, attention, spatial_dims=n, keepdims=self.keepdims,
                channels_first=self.channels_first,
            )
        return _HYBRID[n](
            x, _expand_to_input_rank(attention, n, self.channels_first), self.kernel_size,
            self.stride, self.padding, self.ceil_mode, self.count_include_pad,
            channels_first=self.channels_first,
        )


class GatedPool(nn.Module):
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
    stride: Optional[Union[int, Size]] = None
    padding: PaddingLike = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    per_channel: bool = False
    gate_init: Initializer = nn.initializers.zeros
    channels_first: bool = False
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        n = spatial_rank(self, "kernel_size", self.kernel_size)
        kernel = geometry.as_tuple(self.kernel_size, n, "kernel_size", type(self).__name__)
        shape = (*kernel, _channels(self, x, n)) if self.per_channel else kernel
        gate_weight = self.param("gate_weight", self.gate_init, shape, self.param_dtype)
        return hybrid.gated_pool(
            x, gate_weight, kernel, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, spatial_dims=n, channels_first=self.channels_first,
        )


class GeMPool(nn.Module):
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

    initial_p: float = 3.0
    learn_p: bool = True
    eps: float = 1e-6
    kernel_size: Optional[Size] = None
    stride: Optional[Union[int, Size]] = None
    padding: PaddingLike = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    spatial_dims: int = 2
    keepdims: bool = False
    channels_first: bool = False
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``: ``(*batch, *spatial, C)`` -> ``(*batch, C)`` in the global form."""
        n = _rank(self)
        if self.learn_p:
            p = self.param(
                "p", nn.initializers.constant(self.initial_p), (), self.param_dtype
            )
        else:
            p = jnp.asarray(self.initial_p, self.param_dtype)
        return hybrid.gem_pool(
            x, p, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, eps=self.eps, spatial_dims=n, keepdims=self.keepdims,
            channels_first=self.channels_first,
        )


class SoftPool(nn.Module):
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

    kernel_size: Optional[Size] = None
    stride: Optional[Union[int, Size]] = None
    padding: PaddingLike = 0
    ceil_mode: bool = False
    spatial_dims: int = 2
    keepdims: bool = False
    channels_first: bool = False

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        n = _rank(self)
        return hybrid.soft_pool(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode, spatial_dims=n,
            keepdims=self.keepdims, channels_first=self.channels_first,
        )


class AvgMaxPool(GlobalPoolBase):
    """timm's ``avgmax`` head: ``0.5 * (global mean + global max)``; no parameters.

    See :func:`jaxpool.global_avg_max_pool`.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.AvgMaxPool().apply({}, jnp.ones((8, 7, 7, 512))).shape
      (8, 512)

    Attributes:
      spatial_dims: number of spatial dims (1, 2 or 3); default 2.
      keepdims: keep the spatial dims with size 1; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    pool_function = staticmethod(hybrid.global_avg_max_pool)


class CatAvgMaxPool(GlobalPoolBase):
    """timm's ``catavgmax`` head: ``concat([global mean, global max])``; no parameters.

    The output has twice the channels: means first, then maxima (see
    :func:`jaxpool.global_cat_avg_max_pool`), so ``(*batch, 2C)``.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> jaxpool.CatAvgMaxPool().apply({}, jnp.ones((8, 7, 7, 512))).shape
      (8, 1024)

    Attributes:
      spatial_dims: number of spatial dims (1, 2 or 3); default 2.
      keepdims: keep the spatial dims with size 1; default False.
      channels_first: input is ``(*batch, C, *spatial)``; default False.
    """

    pool_function = staticmethod(hybrid.global_cat_avg_max_pool)

