"""Layers and blocks with PyTorch's numbers: torch's BatchNorm and the residual block
with attention-driven hybrid pooling, ``HybridResNetBlock``. Public through
:mod:`jaxpool.models`; see its docstring.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxpool._learnable import AttentionHybridPool
from jaxpool._module_rules import Dtype, Size

# torch.nn.BatchNorm2d(momentum=0.1, eps=1e-5) in Flax's convention.
TORCH_BN_MOMENTUM = 0.9
TORCH_BN_EPSILON = 1e-5


# ----------------------------------------------------------------------------------
# What the layers compute (linen here, NNX in jaxpool/nnx: the same functions)


def batch_norm(
    x: ArrayLike,
    running_mean: jax.Array,
    running_var: jax.Array,
    scale: jax.Array | None,
    bias: jax.Array | None,
    *,
    use_running_average: bool,
    update_running_stats: bool,
    momentum: float,
    epsilon: float,
    dtype: Dtype | None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    """torch's batch normalisation over the last axis: the output and new running stats.

    Args:
      x: ``(..., C)``.
      running_mean, running_var: ``(C,)`` float32 running statistics.
      scale, bias: ``(C,)`` or None (not learned).
      use_running_average: normalise with the running statistics instead of the batch's.
      update_running_stats: with the batch's statistics, also return the updated
        running ones (False while linen initialises).
      momentum, epsilon, dtype: as :class:`BatchNorm`'s attributes.

    Returns:
      ``(y, None)``, or ``(y, (mean, var))`` with the new running statistics (float32).

    Raises:
      ValueError: when updating from fewer than 2 values per channel (torch's error).
    """
    x = jnp.asarray(x)
    features = x.shape[-1]
    reduction_axes = tuple(range(x.ndim - 1))
    broadcast = (1,) * (x.ndim - 1) + (features,)
    compute = jnp.promote_types(x.dtype, jnp.float32)
    values = x.astype(compute)
    updated = None
    if use_running_average:
        mean, var = running_mean.astype(compute), running_var.astype(compute)
    else:
        count = math.prod(x.shape[a] for a in reduction_axes)
        if count < 2 and update_running_stats:
            raise ValueError(
                f"BatchNorm: Expected more than 1 value per channel when training, got input "
                f"shape {tuple(x.shape)}"
            )
        mean = jnp.mean(values, axis=reduction_axes)
        var = jnp.mean(jnp.square(values - mean.reshape(broadcast)), axis=reduction_axes)
        if update_running_stats:
            unbiased = var * (count / (count - 1))
            updated = (
                (momentum * running_mean + (1 - momentum) * mean).astype(jnp.float32),
                (momentum * running_var + (1 - momentum) * unbiased).astype(jnp.float32),
            )
    y = (values - mean.reshape(broadcast)) * lax.rsqrt(var + epsilon).reshape(broadcast)
    if scale is not None:
        y = y * scale.astype(compute).reshape(broadcast)
    if bias is not None:
        y = y + bias.astype(compute).reshape(broadcast)
    return y.astype(dtype or x.dtype), updated


def needs_projection(in_features: int, out_features: int, stride: int = 1) -> bool:
    """Whether a residual block's shortcut is a 1x1 convolution + BatchNorm (the shape
    changes) rather than the identity."""
    return stride != 1 or in_features != out_features


def residual_block(
    x: ArrayLike,
    conv1: Callable,
    bn1: Callable,
    conv2: Callable,
    bn2: Callable,
    shortcut_conv: Callable | None = None,
    shortcut_bn: Callable | None = None,
    pool: Callable | None = None,
) -> jax.Array:
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, then ``pool`` if given.

    The shortcut is ``shortcut_bn(shortcut_conv(x))``, or the identity when
    ``shortcut_conv`` is None. The layers are callables (linen or NNX modules).
    """
    x = jnp.asarray(x)
    y = jax.nn.relu(bn1(conv1(x)))
    y = bn2(conv2(y))
    shortcut = x
    if shortcut_conv is not None:
        shortcut = shortcut_conv(x)
        if shortcut_bn is not None:
            shortcut = shortcut_bn(shortcut)
    y = jax.nn.relu(y + shortcut.astype(y.dtype))
    return y if pool is None else pool(y)


def residual(
    x: ArrayLike,
    features: int,
    train: bool,
    *,
    stride: int = 1,
    use_bias: bool = True,
    kernel_init: Callable = nn.linear.default_kernel_init,
    momentum: float = TORCH_BN_MOMENTUM,
    epsilon: float = TORCH_BN_EPSILON,
    dtype: Dtype | None = None,
    param_dtype: Dtype = jnp.float32,
    pool: Callable | None = None,
) -> jax.Array:
    """The linen residual blocks' layers, made and applied (call it from a compact method).

    :func:`residual_block` with ``conv1`` (3x3, ``stride``, padding 1), ``bn1``,
    ``conv2`` (3x3, padding 1), ``bn2`` and, where the shape changes, ``shortcut_conv``
    (1x1, ``stride``, no bias) and ``shortcut_bn``, then ``pool``. The 3x3 convolutions
    have a bias when ``use_bias``; every convolution has ``kernel_init``, ``dtype`` and
    ``param_dtype``, every BatchNorm ``momentum``, ``epsilon``, ``dtype`` and
    ``param_dtype``; ``train`` normalises with (and updates) the batch statistics.
    """
    conv = functools.partial(nn.Conv, features, kernel_init=kernel_init, dtype=dtype,
                             param_dtype=param_dtype)
    norm = functools.partial(BatchNorm, use_running_average=not train, momentum=momentum,
                             epsilon=epsilon, dtype=dtype, param_dtype=param_dtype)
    strides = (stride, stride)
    projection = needs_projection(jnp.shape(x)[-1], features, stride)
    return residual_block(
        x,
        conv1=conv((3, 3), strides, padding=1, use_bias=use_bias, name="conv1"),
        bn1=norm(name="bn1"),
        conv2=conv((3, 3), padding=1, use_bias=use_bias, name="conv2"),
        bn2=norm(name="bn2"),
        shortcut_conv=(conv((1, 1), strides, use_bias=False, name="shortcut_conv")
                       if projection else None),
        shortcut_bn=norm(name="shortcut_bn") if projection else None,
        pool=pool,
    )


# ----------------------------------------------------------------------------------
# Layers


class BatchNorm(nn.Module):
    """Batch normalisation over the last axis with ``torch.nn.BatchNorm2d``'s numbers.

    Training (``use_running_average=False``): ``y = (x - mean) / sqrt(var + eps) *
    scale + bias`` with the batch's mean and biased variance over every axis but the
    last, and the running statistics updated as torch does::

        mean_run = momentum * mean_run + (1 - momentum) * mean
        var_run  = momentum * var_run  + (1 - momentum) * var * n / (n - 1)

    (``n`` values per channel; torch's momentum 0.1 is ``momentum=0.9`` here). Not
    updated while initialising. Evaluation uses the running statistics. Statistics are
    computed in float32 for narrower inputs.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxpool.models import BatchNorm
      >>> x = jnp.array([[1.0], [3.0]])
      >>> variables = BatchNorm().init(jax.random.key(0), x, use_running_average=False)
      >>> y, updates = BatchNorm().apply(variables, x, use_running_average=False,
      ...                                mutable=["batch_stats"])
      >>> updates["batch_stats"]["var"]   # 0.9 * 1 + 0.1 * 2 (unbiased variance)
      Array([1.1], dtype=float32)

    Attributes:
      use_running_average: use the running statistics; may instead be passed to
        ``__call__``; default None.
      momentum: weight of the old running value; default 0.9 (torch's 0.1).
      epsilon: added to the variance; default 1e-5 (torch's).
      dtype: output dtype; default ``None`` (the input's).
      param_dtype: dtype of ``scale`` and ``bias``; default float32.
      use_bias: learn ``bias``; default True.
      use_scale: learn ``scale``; default True.
      bias_init: initialiser of ``bias``; default zeros.
      scale_init: initialiser of ``scale``; default ones.
    """

    use_running_average: bool | None = None
    momentum: float = TORCH_BN_MOMENTUM
    epsilon: float = TORCH_BN_EPSILON
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32
    use_bias: bool = True
    use_scale: bool = True
    bias_init: Any = nn.initializers.zeros
    scale_init: Any = nn.initializers.ones

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
        """Normalises ``x`` of shape ``(..., C)``; same shape, dtype ``dtype or x.dtype``."""
        use_running_average = nn.merge_param(
            "use_running_average", self.use_running_average, use_running_average
        )
        x = jnp.asarray(x)
        features = x.shape[-1]
        running_mean = self.variable(
            "batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32)
        )
        running_var = self.variable(
            "batch_stats", "var", lambda: jnp.ones((features,), jnp.float32)
        )
        scale = (
            self.param("scale", self.scale_init, (features,), self.param_dtype)
            if self.use_scale else None
        )
        bias = (
            self.param("bias", self.bias_init, (features,), self.param_dtype)
            if self.use_bias else None
        )
        y, updated = batch_norm(
            x, running_mean.value, running_var.value, scale, bias,
            use_running_average=use_running_average,
            # Initialising must not count as a training step.
            update_running_stats=not self.is_initializing(),
            momentum=self.momentum, epsilon=self.epsilon, dtype=self.dtype,
        )
        if updated is not None:
            running_mean.value, running_var.value = updated
        return y


# ----------------------------------------------------------------------------------
# Blocks


class HybridResNetBlock(nn.Module):
    """A residual block with attention-driven hybrid pooling (the PyTorch module of the
    same name).

    ``y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` then
    ``AttentionHybridPool`` (2×2, stride 2 by default): ``(N, H, W, C_in) ->
    (N, H', W', features)`` with ``H' = floor((H - k)/s) + 1`` for the pool's kernel
    ``k`` and stride ``s``. The convolutions are 3×3 with padding 1 and a bias (torch's
    ``Conv2d`` default, as in the PyTorch block). The shortcut is the identity when
    ``C_in == features``; otherwise a 1×1 convolution (no bias) and a BatchNorm (the
    PyTorch block's residual addition fails there). Submodule names follow its:
    ``conv1``, ``bn1``, ``conv2``, ``bn2``, ``shortcut_conv``, ``shortcut_bn``, ``pool``
    (its Dense layers ``squeeze`` and ``excite``). :class:`PoolingResNetBlock` is the
    same block with a choice of pooling.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxpool.models import HybridResNetBlock
      >>> block = HybridResNetBlock(features=64)
      >>> x = jnp.ones((2, 32, 32, 3))
      >>> variables = block.init(jax.random.key(0), x)
      >>> sorted(variables["params"])
      ['bn1', 'bn2', 'conv1', 'conv2', 'pool', 'shortcut_bn', 'shortcut_conv']
      >>> block.apply(variables, x).shape          # eval mode: running statistics
      (2, 16, 16, 64)
      >>> y, updates = block.apply(variables, x, train=True, mutable=["batch_stats"])
      >>> sorted(updates["batch_stats"])           # the updated running statistics
      ['bn1', 'bn2', 'shortcut_bn']

    Attributes:
      features: output channels.
      reduction: the attention's channel reduction; default 4.
      pool_kernel_size: the pool's window; default ``(2, 2)``.
      pool_stride: the pool's stride; default ``None`` (the window).
      use_bias: whether the 3×3 convolutions have a bias; default True (as in PyTorch).
      momentum: BatchNorm momentum in Flax's convention; default 0.9 (torch's 0.1).
      epsilon: BatchNorm epsilon; default 1e-5.
      dtype: computation dtype (e.g. ``jnp.bfloat16``); default ``None`` (the input's).
      param_dtype: parameter dtype; default float32.
    """

    features: int
    reduction: int = 4
    pool_kernel_size: Size = (2, 2)
    pool_stride: int | Size | None = None
    use_bias: bool = True
    momentum: float = TORCH_BN_MOMENTUM
    epsilon: float = TORCH_BN_EPSILON
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """``(N, H, W, C_in) -> (N, H', W', features)``; ``train`` uses and updates batch stats."""
        return residual(
            x, self.features, train, use_bias=self.use_bias, momentum=self.momentum,
            epsilon=self.epsilon, dtype=self.dtype, param_dtype=self.param_dtype,
            pool=AttentionHybridPool(
                kernel_size=tuple(self.pool_kernel_size), stride=self.pool_stride,
                reduction=self.reduction, dtype=self.dtype, param_dtype=self.param_dtype,
                name="pool",
            ),
        )
