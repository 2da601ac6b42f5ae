"""Flax NNX modules for learnable and mixed pooling: the twins of ``jaxpool/_learnable.py``.

Each has its linen twin's parameters (names, shapes, initialisers), arguments, defaults
and numbers; see the twin's docstring for the math, the shapes and the attributes. What
differs: NNX makes parameters at construction, so everything their shapes depend on is
an argument (``num_features``, the channel count ``C``, for per-channel parameters and
the attention's layers), the parameters are attributes (``nnx.Param``), ``rngs`` is
needed only where something is initialised randomly, and the flags are keyword-only.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike

from jaxpool import _hybrid as hybrid
from jaxpool import _module_rules as rules
from jaxpool._module_rules import Dtype, Initializer, PaddingLike, Size
from jaxpool.nnx import _common as common
from jaxpool.nnx._common import PoolingModule, configure
from jaxpool.nnx._pooling import GlobalPoolBase


def _per_channel_features(module: Any, parameter: str, shape: str) -> int | None:
    """``num_features``, which a per-channel parameter's shape needs (else optional)."""
    if module.per_channel:
        return common.check_features(
            module, "num_features", module.num_features,
            needed_for=f"per_channel=True makes {parameter} of shape {shape}",
        )
    if module.num_features is not None:
        rules.check_features(module, "num_features", module.num_features)
    return module.num_features


class HybridPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.HybridPool`: a learnable mix of max and average
    pooling, ``sigmoid(mix_logit) * max_pool(x) + (1 - sigmoid(mix_logit)) * avg_pool(x)``.

    The logit is the ``nnx.Param`` ``mix_logit``; ``per_channel=True`` (one logit per
    channel, shape ``(C,)``) needs ``num_features=C``. The default initialiser (zeros:
    an even mix) needs no ``rngs``; a random one, e.g.
    ``jax.nn.initializers.uniform(1.0)``, does.

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
    """

    op = staticmethod(rules.hybrid_mix)

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
        configure(self, locals())
        channels = _per_channel_features(self, "mix_logit", "(C,)")
        shape = rules.mix_logit_shape(self, channels, per_channel)
        self.mix_logit = common.make_param(
            self, "mix_logit", mix_logit_init, shape, param_dtype, rngs
        )

    def __call__(self, x: ArrayLike, **options: Any) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        return rules.learned_mix(self, x, common.read(self.mix_logit), **options)


class AttentionHybridPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.AttentionHybridPool`: the max/average mix set per
    example and channel by an SE-style attention on the input's mean over the map.

    ``squeeze`` and ``excite`` are ``nnx.Linear`` layers (linen's ``Dense`` twins,
    initialised alike) with ``num_features`` inputs and outputs, so ``num_features``
    and ``rngs`` are required, and the input must have ``num_features`` channels.

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
      squeeze, excite: the ``nnx.Linear`` layers.

    Args:
      rngs: an ``nnx.Rngs`` for the Linear layers' initialisers (required).
    """

    op = staticmethod(rules.hybrid_mix)

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
        configure(self, locals())
        self.num_features = common.check_features(
            self, "num_features", num_features, needed_for="the attention's layers have C inputs"
        )
        hidden = rules.attention_hidden_features(self, self.num_features, reduction)
        rngs = common.require_rngs(self, rngs)
        self.squeeze = nnx.Linear(self.num_features, hidden, dtype=dtype,
                                  param_dtype=param_dtype, rngs=rngs)
        self.excite = nnx.Linear(hidden, self.num_features, dtype=dtype,
                                 param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: ArrayLike, **options: Any) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        common.check_input_channels(self, x, self._rank, self.channels_first, self.num_features)
        return rules.attention_mix(self, x, self.squeeze, self.excite, **options)


class GatedPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.GatedPool`: gated max-average pooling (Lee et al.,
    2016) with a learned gate per window.

    The weights are the ``nnx.Param`` ``gate_weight``, of the window's shape, or the
    window's shape plus ``(C,)`` with ``per_channel=True``, which needs
    ``num_features=C``; a random ``gate_init`` needs ``rngs``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.GatedPool(kernel_size=(3, 3), stride=(2, 2), padding=1, per_channel=True,
      ...                      num_features=4)
      >>> pool.gate_weight[...].shape
      (3, 3, 4)
      >>> pool(jnp.ones((2, 8, 8, 4))).shape
      (2, 4, 4, 4)
    """

    op = staticmethod(hybrid.gated_pool)

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
        configure(self, locals())
        channels = _per_channel_features(self, "gate_weight", "kernel_size + (C,)")
        shape = rules.gate_shape(self, self.kernel_size, self._rank, channels, per_channel)
        self.gate_weight = common.make_param(
            self, "gate_weight", gate_init, shape, param_dtype, rngs
        )

    def __call__(self, x: ArrayLike, **options: Any) -> jax.Array:
        """Pools ``x``; the output keeps its layout and dtype."""
        return rules.pool(self, x, gate_weight=common.read(self.gate_weight), **options)


class GeMPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.GeMPool`: generalised-mean pooling with a
    learnable power ``p`` (timm's ``GeM``).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> pool = jpn.GeMPool()
      >>> pool.p[...]
      Array(3., dtype=float32)
      >>> pool(jnp.ones((8, 7, 7, 512))).shape
      (8, 512)

    Attributes:
      p: the ``nnx.Param`` of shape ``()``, or None when not learned (``learn_p=False``).
    """

    op = staticmethod(hybrid.gem_pool)

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
        configure(self, locals())
        self.p = (
            nnx.Param(rules.gem_p_init(initial_p)(None, (), param_dtype)) if learn_p else None
        )

    def __call__(self, x: ArrayLike, **options: Any) -> jax.Array:
        """Pools ``x``: ``(*batch, *spatial, C)`` -> ``(*batch, C)`` in the global form."""
        learned = None if self.p is None else common.read(self.p)
        return rules.generalised_mean(self, x, learned, **options)


class SoftPool(PoolingModule):
    """The NNX twin of :class:`jaxpool.SoftPool`: softmax-weighted pooling (Stergiou et
    al., 2021); no parameters.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> jpn.SoftPool(kernel_size=(2, 2))(jnp.ones((2, 8, 8, 3))).shape
      (2, 4, 4, 3)
      >>> jpn.SoftPool()(jnp.ones((2, 8, 8, 3))).shape
      (2, 3)
    """

    op = staticmethod(hybrid.soft_pool)

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
        configure(self, locals())


class AvgMaxPool(GlobalPoolBase):
    """The NNX twin of :class:`jaxpool.AvgMaxPool`: timm's ``avgmax`` head, ``0.5 *
    (global mean + global max)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> x = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
      >>> jpn.AvgMaxPool()(x)                          # 0.5 * (8.5 + 16)
      Array([[12.25]], dtype=float32)
    """

    op = staticmethod(hybrid.global_avg_max_pool)


class CatAvgMaxPool(GlobalPoolBase):
    """The NNX twin of :class:`jaxpool.CatAvgMaxPool`: timm's ``catavgmax`` head, the
    global mean and maximum concatenated, ``(*batch, 2C)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> x = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
      >>> jpn.CatAvgMaxPool(keepdims=True)(x)          # the mean, then the maximum
      Array([[[[ 8.5, 16. ]]]], dtype=float32)
    """

    op = staticmethod(hybrid.global_cat_avg_max_pool)
