"""CIFAR-sized classifiers with a pooling choice: a CIFAR ResNet-18 and a network of
the seed's ``HybridResNetBlock``\\ s, plus :func:`make_pooling`, which maps the example's
``--pool`` names to jaxpool modules.

Public through :mod:`jaxpool.models`. Everything is channels-last, ``(N, H, W, C)``, and
every model takes ``train`` (BatchNorm uses batch statistics and updates its running
averages when true). Shapes without computing anything:

    >>> import jax, jax.numpy as jnp
    >>> from jaxpool import models
    >>> model = models.make_model("hybrid_resnet", pool="hybrid", width=8)
    >>> x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
    >>> sorted(variables)
    ['batch_stats', 'params']
    >>> jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x).shape
    (2, 10)
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxpool import _functional as functional
from jaxpool import _hybrid as hybrid
from jaxpool import _learnable, _linen
from jaxpool._blocks import BatchNorm

POOLING_NAMES = (
    "max", "avg", "hybrid", "attention", "gated", "gem", "softpool", "avgmax", "catavgmax",
)
"""Every name :func:`make_pooling` (and the example's ``--pool``) accepts."""

POOLING_KINDS = ("global", "downsample")

MODEL_NAMES = ("resnet18", "hybrid_resnet")
"""Every name :func:`make_model` (and the example's ``--model``) accepts."""

# torch's ResNet initialises convolutions with kaiming_normal_(mode='fan_out', relu).
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _check_name(value: Any, name: str, known: tuple[str, ...], where: str) -> str:
    if not isinstance(value, str) or value not in known:
        raise ValueError(
            f"{where}: unknown {name} {value!r}; expected one of {', '.join(known)}"
        )
    return value


def _check_positive_int(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: {name} must be an int, but got {type(value).__name__}: {value!r}")
    if value < 1:
        raise ValueError(f"{where}: {name} must be >= 1, but got {value}")
    return value


def pooled_channels(name: str, channels: int) -> int:
    """Channels a pooling of this name outputs for ``channels`` input channels.

    ``'catavgmax'`` concatenates the average and the maximum, doubling the channels;
    every other pooling keeps them.

    Example:
      >>> pooled_channels("catavgmax", 64), pooled_channels("max", 64)
      (128, 64)
    """
    _check_name(name, "pooling", POOLING_NAMES, "pooled_channels")
    return 2 * channels if name == "catavgmax" else channels


class _WholeMapGatedPool(nn.Module):
    """:class:`jaxpool.GatedPool` with one window over the whole map, ``(N, H, W, C) -> (N, C)``.

    GatedPool is windowed only (its gate weights have the window's shape); here the
    window is the map, so the gate weights have shape ``(H, W)``, set at the first call.
    """

    @nn.compact
    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x`` over all spatial positions with a learned gate."""
        window = tuple(jnp.shape(x)[1:3])
        pooled = _learnable.GatedPool(kernel_size=window, name="gated")(x)
        return pooled.reshape(pooled.shape[0], pooled.shape[-1])


class _WindowedAvgMaxPool(nn.Module):
    """``0.5 * (avg_pool + max_pool)`` over windows: timm's ``avgmax`` as a downsampling.

    The same as :func:`jaxpool.hybrid_pool2d` with ``alpha = 0.5``, which computes it.
    """

    kernel_size: tuple[int, int]
    stride: tuple[int, int]

    def __call__(self, x: ArrayLike) -> jax.Array:
        """``(N, H, W, C) -> (N, H', W', C)``."""
        return hybrid.hybrid_pool2d(x, 0.5, self.kernel_size, self.stride)


class _WindowedCatAvgMaxPool(nn.Module):
    """``concat([avg_pool, max_pool])`` over windows: timm's ``catavgmax`` as a downsampling.

    ``(N, H, W, C) -> (N, H', W', 2C)``: averages first, then maxima, as the head.
    """

    kernel_size: tuple[int, int]
    stride: tuple[int, int]

    def __call__(self, x: ArrayLike) -> jax.Array:
        """``(N, H, W, C) -> (N, H', W', 2C)``."""
        return jnp.concatenate([
            functional.avg_pool2d(x, self.kernel_size, self.stride),
            functional.max_pool2d(x, self.kernel_size, self.stride),
        ], axis=-1)


def make_pooling(
    name: str,
    *,
    kind: str = "global",
    kernel_size: int = 2,
    stride: Optional[int] = None,
    module_name: Optional[str] = None,
) -> nn.Module:
    """The pooling module for a ``--pool`` name.

    ==============  =====================================  ==================================
    name            ``kind='global'`` (a head)             ``kind='downsample'`` (windows)
    ==============  =====================================  ==================================
    ``max``         :class:`jaxpool.GlobalMaxPool`         :class:`jaxpool.MaxPool`
    ``avg``         :class:`jaxpool.GlobalAvgPool`         :class:`jaxpool.AvgPool`
    ``hybrid``      :class:`jaxpool.HybridPool` (global)   :class:`jaxpool.HybridPool`
    ``attention``   :class:`jaxpool.AttentionHybridPool`   :class:`jaxpool.AttentionHybridPool`
    ``gated``       :class:`jaxpool.GatedPool`, one        :class:`jaxpool.GatedPool`
                    window over the whole map
    ``gem``         :class:`jaxpool.GeMPool` (global)      :class:`jaxpool.GeMPool`
    ``softpool``    :class:`jaxpool.SoftPool` (global)     :class:`jaxpool.SoftPool`
    ``avgmax``      :class:`jaxpool.AvgMaxPool`            ``hybrid_pool2d`` with alpha 0.5
    ``catavgmax``   :class:`jaxpool.CatAvgMaxPool`         avg and max pooling, concatenated
    ==============  =====================================  ==================================

    Every module keeps its own defaults (e.g. one scalar ``mix_logit`` for ``hybrid``,
    as the seed's ``HybridPooling``; ``reduction=4`` for ``attention``; ``p = 3`` for
    ``gem``).

    Args:
      name: one of :data:`POOLING_NAMES`.
      kind: ``'global'``: over all spatial positions, ``(N, H, W, C) -> (N, C')``, a
        classifier head; ``'downsample'``: ``kernel_size`` windows with ``stride``,
        ``(N, H, W, C) -> (N, H', W', C')`` with ``H' = floor((H - k) / s) + 1``.
        ``C' = C`` except for ``'catavgmax'`` (``2C``); see :func:`pooled_channels`.
      kernel_size: window height and width for ``'downsample'``; default 2.
      stride: window stride for ``'downsample'``; default ``kernel_size``.
      module_name: the module's name inside a parent module; default automatic.

    Returns:
      A Flax module whose ``__call__`` takes the channels-last input alone.

    Raises:
      ValueError: for an unknown ``name`` or ``kind`` (the message lists the valid ones),
        or a size below 1.
      TypeError: for a non-int size.

    Example:
      >>> import jax.numpy as jnp
      >>> pool = make_pooling("max", kind="downsample")
      >>> pool.apply({}, jnp.ones((2, 8, 8, 3))).shape
      (2, 4, 4, 3)
      >>> make_pooling("catavgmax").apply({}, jnp.ones((2, 8, 8, 3))).shape
      (2, 6)
    """
    _check_name(name, "pooling", POOLING_NAMES, "make_pooling")
    _check_name(kind, "kind", POOLING_KINDS, "make_pooling")
    kernel_size = _check_positive_int(kernel_size, "kernel_size", "make_pooling")
    stride = kernel_size if stride is None else _check_positive_int(stride, "stride", "make_pooling")
    if kind == "global":
        return {
            "max": _linen.GlobalMaxPool,
            "avg": _linen.GlobalAvgPool,
            "hybrid": _learnable.HybridPool,
            "attention": _learnable.AttentionHybridPool,
            "gated": _WholeMapGatedPool,
            "gem": _learnable.GeMPool,
            "softpool": _learnable.SoftPool,
            "avgmax": _learnable.AvgMaxPool,
            "catavgmax": _learnable.CatAvgMaxPool,
        }[name](name=module_name)
    window = dict(kernel_size=(kernel_size, kernel_size), stride=(stride, stride))
    return {
        "max": _linen.MaxPool,
        "avg": _linen.AvgPool,
        "hybrid": _learnable.HybridPool,
        "attention": _learnable.AttentionHybridPool,
        "gated": _learnable.GatedPool,
        "gem": _learnable.GeMPool,
        "softpool": _learnable.SoftPool,
        "avgmax": _WindowedAvgMaxPool,
        "catavgmax": _WindowedCatAvgMaxPool,
    }[name](**window, name=module_name)


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions with BatchNorm, plus a shortcut.

    ``y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` with
    ``(N, H, W, C) -> (N, ceil(H / stride), ceil(W / stride), features)``; the shortcut
    is a strided 1x1 convolution with BatchNorm where the shape changes (He et al. 2016,
    option B), else the identity. Convolutions have no bias and torch's ResNet
    initialisation (``kaiming_normal_``, fan-out); BatchNorm is
    :class:`jaxpool.models.BatchNorm` (torch's running statistics).

    Attributes:
      features: output channels.
      stride: stride of the first convolution and the shortcut; default 1.
      dtype: computation dtype (parameters stay float32); default float32.
    """

    features: int
    stride: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: ArrayLike, train: bool = False) -> jax.Array:
        """Applies the block; ``train`` uses and updates batch statistics."""
        norm = functools.partial(BatchNorm, use_running_average=not train,
                                 dtype=self.dtype)
        conv = functools.partial(nn.Conv, use_bias=False, kernel_init=_conv_init,
                                 dtype=self.dtype)
        strides = (self.stride, self.stride)
        y = conv(self.features, (3, 3), strides, padding=1, name="conv1")(x)
        y = nn.relu(norm(name="bn1")(y))
        y = norm(name="bn2")(conv(self.features, (3, 3), padding=1, name="conv2")(y))
        shortcut = jnp.asarray(x)
        if self.stride != 1 or shortcut.shape[-1] != self.features:
            shortcut = conv(self.features, (1, 1), strides, name="shortcut_conv")(shortcut)
            shortcut = norm(name="shortcut_bn")(shortcut)
        return nn.relu(y + shortcut.astype(y.dtype))


class CifarResNet18(nn.Module):
    """ResNet-18 for 32x32 images, with a choice of pooling at its head.

    The CIFAR variant (He et al. 2016; the common ``kuangliu/pytorch-cifar`` layout): a
    3x3 stride-1 stem convolution without the ImageNet stem's max pooling, four stages of
    two :class:`BasicBlock`\\ s with ``width * (1, 2, 4, 8)`` channels (64-128-256-512 at
    the default width), strides 1, 2, 2, 2, then global pooling and a linear classifier.
    The head is the only pooling in the network, so the choice of pooling matters less
    here than in :class:`HybridResNet`, which pools at every downsampling.

    Shapes: ``(N, H, W, C_in) -> (N, num_classes)`` float32 logits, for any ``H, W``
    (32x32 reaches the head as 4x4, 8x8 as 1x1).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = CifarResNet18(num_classes=10, pool="max")      # width 64: 11.2 M parameters
      >>> x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)  # shapes only: no compute
      >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
      >>> sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))
      11173962
      >>> jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x).shape
      (2, 10)

    Attributes:
      num_classes: classes; default 10.
      width: channels of the first stage (the others have 2, 4 and 8 times as many);
        default 64 (the standard ResNet-18). Small widths make CPU runs and tests fast.
      pool: the head's pooling, a name from :data:`POOLING_NAMES` (see
        :func:`make_pooling`, ``kind='global'``); default 'avg' (the standard head).
      dtype: computation dtype, e.g. ``jnp.bfloat16``; parameters stay float32 and the
        logits are float32. Default float32.
    """

    num_classes: int = 10
    width: int = 64
    pool: str = "avg"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: ArrayLike, train: bool = False) -> jax.Array:
        """Logits ``(N, num_classes)`` for images ``(N, H, W, C)``."""
        _check_name(self.pool, "pool", POOLING_NAMES, "CifarResNet18")
        _check_positive_int(self.width, "width", "CifarResNet18")
        x = jnp.asarray(x, self.dtype)
        x = nn.Conv(self.width, (3, 3), padding=1, use_bias=False, kernel_init=_conv_init,
                    dtype=self.dtype, name="stem_conv")(x)
        x = nn.relu(BatchNorm(use_running_average=not train, dtype=self.dtype,
                                        name="stem_bn")(x))
        for stage, multiplier in enumerate((1, 2, 4, 8)):
            for block in range(2):
                stride = 2 if stage > 0 and block == 0 else 1
                x = BasicBlock(self.width * multiplier, stride, self.dtype,
                               name=f"stage{stage + 1}_block{block + 1}")(x, train=train)
        x = make_pooling(self.pool, kind="global", module_name="pool")(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(x)
        return x.astype(jnp.float32)


class PoolingResNetBlock(nn.Module):
    """:class:`jaxpool.models.HybridResNetBlock` with a choice of the pooling it ends with.

    ``y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, then 2x2 stride-2
    pooling named by ``pool``: ``(N, H, W, C_in) -> (N, H // 2, W // 2, C_out)`` with
    ``C_out = features`` (``2 * features`` for 'catavgmax'). The layers, their names,
    initialisation and defaults are HybridResNetBlock's, which hard-wires the seed's
    ``AttentionHybridPool``: with ``pool='attention'`` this block computes exactly what
    HybridResNetBlock computes from the same variables (a test checks it).

    Attributes:
      features: channels of the convolutions.
      pool: a name from :data:`POOLING_NAMES` (:func:`make_pooling`,
        ``kind='downsample'``); default 'attention' (the seed's).
      dtype: computation dtype; default ``None`` (the input's).
    """

    features: int
    pool: str = "attention"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: ArrayLike, train: bool = False) -> jax.Array:
        """``(N, H, W, C_in) -> (N, H // 2, W // 2, C_out)``."""
        norm = functools.partial(BatchNorm, use_running_average=not train,
                                 dtype=self.dtype)
        conv3x3 = functools.partial(nn.Conv, self.features, (3, 3), padding=1, dtype=self.dtype)
        x = jnp.asarray(x)
        y = nn.relu(norm(name="bn1")(conv3x3(name="conv1")(x)))
        y = norm(name="bn2")(conv3x3(name="conv2")(y))
        shortcut = x
        if x.shape[-1] != self.features:
            shortcut = nn.Conv(self.features, (1, 1), use_bias=False, dtype=self.dtype,
                               name="shortcut_conv")(x)
            shortcut = norm(name="shortcut_bn")(shortcut)
        y = nn.relu(y + shortcut.astype(y.dtype))
        return make_pooling(self.pool, kind="downsample", module_name="pool")(y)


class HybridResNet(nn.Module):
    """A stack of the seed's residual blocks, each ending in a 2x2 pooling of choice.

    ``len(stage_multipliers)`` :class:`PoolingResNetBlock`\\ s (the seed's
    ``HybridResNetBlock`` with the pooling chosen by ``pool``) with ``width * m``
    channels each, every one halving the height and width, then the same kind of pooling
    over the whole map (:func:`make_pooling`, ``kind='global'``) and a linear
    classifier. With the default three blocks a 32x32 image reaches the head as 4x4 and
    an 8x8 digit as 1x1: the pooling choice acts at every downsampling, where it
    matters most.

    Shapes: ``(N, H, W, C_in) -> (N, num_classes)`` float32 logits; ``H`` and ``W`` must
    be at least ``2 ** len(stage_multipliers)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = HybridResNet(num_classes=10, width=4, pool="gem")
      >>> x = jax.ShapeDtypeStruct((2, 8, 8, 1), jnp.float32)   # shapes only: no compute
      >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
      >>> sorted(variables["params"])
      ['block1', 'block2', 'block3', 'classifier', 'head_pool']
      >>> train_step = lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"])
      >>> logits, updates = jax.eval_shape(train_step, variables, x)
      >>> logits.shape
      (2, 10)

    Attributes:
      num_classes: classes; default 10.
      width: channels of the first block; default 32.
      stage_multipliers: channels of each block as multiples of ``width``; default
        ``(1, 2, 4)``.
      pool: a name from :data:`POOLING_NAMES`; default 'attention' (the seed's block).
      dtype: computation dtype, e.g. ``jnp.bfloat16``; parameters stay float32 and the
        logits are float32. Default float32.
    """

    num_classes: int = 10
    width: int = 32
    stage_multipliers: tuple[int, ...] = (1, 2, 4)
    pool: str = "attention"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: ArrayLike, train: bool = False) -> jax.Array:
        """Logits ``(N, num_classes)`` for images ``(N, H, W, C)``."""
        _check_name(self.pool, "pool", POOLING_NAMES, "HybridResNet")
        _check_positive_int(self.width, "width", "HybridResNet")
        x = jnp.asarray(x, self.dtype)
        smallest = 2 ** len(self.stage_multipliers)
        if min(x.shape[1:3]) < smallest:
            raise ValueError(
                f"HybridResNet: images of {x.shape[1]}x{x.shape[2]} are too small for "
                f"{len(self.stage_multipliers)} blocks that each halve them; they must be at "
                f"least {smallest}x{smallest} (input shape {x.shape})"
            )
        for index, multiplier in enumerate(self.stage_multipliers):
            x = PoolingResNetBlock(self.width * multiplier, self.pool, self.dtype,
                                   name=f"block{index + 1}")(x, train=train)
        x = make_pooling(self.pool, kind="global", module_name="head_pool")(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(x)
        return x.astype(jnp.float32)


_MODELS = {"resnet18": CifarResNet18, "hybrid_resnet": HybridResNet}


def make_model(
    name: str,
    *,
    num_classes: int = 10,
    pool: str = "max",
    width: Optional[int] = None,
    dtype: Any = jnp.float32,
) -> nn.Module:
    """The classifier for a ``--model`` name.

    Args:
      name: 'resnet18' (:class:`CifarResNet18`) or 'hybrid_resnet' (:class:`HybridResNet`).
      num_classes: classes.
      pool: a name from :data:`POOLING_NAMES`: the head's pooling for 'resnet18'; every
        downsampling's and the head's for 'hybrid_resnet'.
      width: the model's ``width``; default that model's own default.
      dtype: computation dtype.

    Returns:
      The Flax module; call it as ``model.apply(variables, images, train=...)``.

    Raises:
      ValueError: for an unknown ``name`` or ``pool`` (the message lists the valid ones).

    Example:
      >>> make_model("resnet18", pool="avg", width=8).width
      8
      >>> make_model("hybrid_resnet").width      # the model's default
      32
    """
    _check_name(name, "model", MODEL_NAMES, "make_model")
    _check_name(pool, "pool", POOLING_NAMES, "make_model")
    options = {} if width is None else {"width": _check_positive_int(width, "width", "make_model")}
    return _MODELS[name](num_classes=num_classes, pool=pool, dtype=dtype, **options)
