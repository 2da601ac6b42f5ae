"""CIFAR-sized classifiers with a pooling choice: a CIFAR ResNet-18 and a network of
residual blocks with hybrid pooling (``HybridResNetBlock``), plus :func:`make_pooling`,
which maps the example's ``--pool`` names to jaxpool modules.

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

import sys
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxpool import _functional as functional
from jaxpool import _geometry as geometry
from jaxpool import _hybrid as hybrid
from jaxpool import _learnable, _linen
from jaxpool._blocks import BatchNorm, residual

POOLING_NAMES = (
    "max", "avg", "hybrid", "attention", "gated", "gem", "softpool", "avgmax", "catavgmax",
)
"""Every name :func:`make_pooling` (and the example's ``--pool``) accepts."""

POOLING_KINDS = ("global", "downsample")

MODEL_NAMES = ("resnet18", "hybrid_resnet")
"""Every name :func:`make_model` (and the example's ``--model``) accepts."""

# torch's ResNet initialises convolutions with kaiming_normal_(mode='fan_out', relu).
conv_init = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def check_name(value: Any, name: str, known: tuple[str, ...], where: str) -> str:
    if not isinstance(value, str) or value not in known:
        raise ValueError(
            f"{where}: unknown {name} {value!r}; expected one of {', '.join(known)}"
        )
    return value


def check_positive_int(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{where}: {name} must be an int, but got {type(value).__name__}: {value!r}"
        )
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
    check_name(name, "pooling", POOLING_NAMES, "pooled_channels")
    return 2 * channels if name == "catavgmax" else channels


# ----------------------------------------------------------------------------------
# What the models are made of, shared with their NNX twins (jaxpool/nnx)


def pooling_recipe(
    name: str, kind: str, kernel_size: Any, stride: Any, where: str = "make_pooling"
) -> tuple[str, dict[str, Any]]:
    """The module class name and its size arguments for a ``--pool`` name and kind.

    Both APIs resolve the class name among their own modules (the NNX twin of a linen
    module has its name), so :func:`make_pooling` and its NNX twin cannot drift.

    Raises:
      ValueError, TypeError: as :func:`make_pooling`.
    """
    check_name(name, "pooling", POOLING_NAMES, where)
    check_name(kind, "kind", POOLING_KINDS, where)
    kernel_size = check_positive_int(kernel_size, "kernel_size", where)
    stride = kernel_size if stride is None else check_positive_int(stride, "stride", where)
    if kind == "global":
        return {
            "max": "GlobalMaxPool",
            "avg": "GlobalAvgPool",
            "hybrid": "HybridPool",
            "attention": "AttentionHybridPool",
            "gated": "_WholeMapGatedPool",
            "gem": "GeMPool",
            "softpool": "SoftPool",
            "avgmax": "AvgMaxPool",
            "catavgmax": "CatAvgMaxPool",
        }[name], {}
    window = dict(kernel_size=(kernel_size, kernel_size), stride=(stride, stride))
    return {
        "max": "MaxPool",
        "avg": "AvgPool",
        "hybrid": "HybridPool",
        "attention": "AttentionHybridPool",
        "gated": "GatedPool",
        "gem": "GeMPool",
        "softpool": "SoftPool",
        "avgmax": "_WindowedAvgMaxPool",
        "catavgmax": "_WindowedCatAvgMaxPool",
    }[name], window


def pooling_class(class_name: str, *namespaces: Any) -> Any:
    """The class :func:`pooling_recipe` names, from the first of an API's ``namespaces``
    (its modules) that has it."""
    for namespace in namespaces:
        if hasattr(namespace, class_name):
            return getattr(namespace, class_name)
    raise LookupError(f"no pooling module {class_name!r} in {namespaces}")


def flatten_whole_map(pooled: jax.Array) -> jax.Array:
    """A gated head's output, ``(N, 1, 1, C) -> (N, C)``: its one window covers the map."""
    return pooled.reshape(pooled.shape[0], pooled.shape[-1])


def windowed_avg_max_pool(x: ArrayLike, kernel_size, stride) -> jax.Array:
    """``0.5 * (avg_pool + max_pool)``: the hybrid mix with ``alpha = 0.5``, which computes it."""
    return hybrid.hybrid_pool2d(x, 0.5, kernel_size, stride)


def windowed_cat_avg_max_pool(x: ArrayLike, kernel_size, stride) -> jax.Array:
    """``concat([avg_pool, max_pool])`` over channels: averages first, then maxima, as the head."""
    return jnp.concatenate([
        functional.avg_pool2d(x, kernel_size, stride),
        functional.max_pool2d(x, kernel_size, stride),
    ], axis=-1)


def resnet18_blocks(width: int) -> tuple[tuple[str, int, int], ...]:
    """CifarResNet18's :class:`BasicBlock`\\ s: ``(name, features, stride)`` each.

    Four stages of two blocks with ``width * (1, 2, 4, 8)`` channels; the first block of
    every stage but the first halves the map (stride 2).
    """
    return tuple(
        (f"stage{stage + 1}_block{block + 1}", width * multiplier,
         2 if stage > 0 and block == 0 else 1)
        for stage, multiplier in enumerate((1, 2, 4, 8))
        for block in range(2)
    )


def resnet18_head_size(image_size: Sequence[int]) -> tuple[int, ...]:
    """The map CifarResNet18's head pools, for ``(H, W)`` images: every stride-2 block's
    3x3 convolution with padding 1 maps ``L`` to ``floor((L - 1) / 2) + 1``."""
    size: Any = tuple(image_size)
    for _, _, stride in resnet18_blocks(1):
        if stride != 1:
            size = geometry.pool_output_shape(size, 3, stride, 1)
    return size


def hybrid_resnet_head_size(image_size: Sequence[int], num_blocks: int) -> tuple[int, ...]:
    """The map HybridResNet's head pools: each block's 2x2 stride-2 pooling maps ``L`` to
    ``floor(L / 2)``."""
    size: Any = tuple(image_size)
    for _ in range(num_blocks):
        size = geometry.pool_output_shape(size, 2, 2)
    return size


def hybrid_resnet_blocks(width: int, stage_multipliers) -> tuple[tuple[str, int], ...]:
    """HybridResNet's :class:`PoolingResNetBlock`\\ s: ``(name, features)`` each."""
    return tuple(
        (f"block{index + 1}", width * multiplier)
        for index, multiplier in enumerate(stage_multipliers)
    )


def check_image_size(where: str, height: int, width: int, num_blocks: int, shape: Any) -> None:
    """Refuses images too small for ``num_blocks`` blocks that each halve them."""
    smallest = 2 ** num_blocks
    if min(height, width) < smallest:
        raise ValueError(
            f"{where}: images of {height}x{width} are too small for {num_blocks} blocks that "
            f"each halve them; they must be at least {smallest}x{smallest} (input shape {shape})"
        )


def classifier_images(model: Any, x: ArrayLike) -> jax.Array:
    """A classifier's images in its computation dtype, after the checks of its ``pool``
    and ``width`` (the linen models check their fields at the call)."""
    where = type(model).__name__
    check_name(model.pool, "pool", POOLING_NAMES, where)
    check_positive_int(model.width, "width", where)
    return jnp.asarray(x, model.dtype)


def classifier_head(x: ArrayLike, pool, classifier) -> jax.Array:
    """``classifier(pool(x))`` as float32 logits (the computation may be narrower)."""
    return classifier(pool(x)).astype(jnp.float32)


# ----------------------------------------------------------------------------------
# Linen modules


class _WholeMapGatedPool(nn.Module):
    """:class:`jaxpool.GatedPool` with one window over the whole map, ``(N, H, W, C) -> (N, C)``.

    GatedPool is windowed only (its gate weights have the window's shape); here the
    window is the map, so the gate weights have shape ``(H, W)``, set at the first call.
    """

    @nn.compact
    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x`` over all spatial positions with a learned gate."""
        window = tuple(jnp.shape(x)[1:3])
        return flatten_whole_map(_learnable.GatedPool(kernel_size=window, name="gated")(x))


class _WindowedAvgMaxPool(_linen.PoolingModule):
    """``0.5 * (avg_pool + max_pool)`` over windows: timm's ``avgmax`` as a downsampling,
    ``(N, H, W, C) -> (N, H', W', C)``."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]

    op = staticmethod(windowed_avg_max_pool)


class _WindowedCatAvgMaxPool(_WindowedAvgMaxPool):
    """``concat([avg_pool, max_pool])`` over windows: timm's ``catavgmax`` as a
    downsampling, ``(N, H, W, C) -> (N, H', W', 2C)``: averages first, then maxima."""

    op = staticmethod(windowed_cat_avg_max_pool)


def make_pooling(
    name: str,
    *,
    kind: str = "global",
    kernel_size: int = 2,
    stride: int | None = None,
    dtype: Any = None,
    module_name: str | None = None,
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
    as the PyTorch ``HybridPooling``; ``reduction=4`` for ``attention``; ``p = 3`` for
    ``gem``).

    Args:
      name: one of :data:`POOLING_NAMES`.
      kind: ``'global'``: over all spatial positions, ``(N, H, W, C) -> (N, C')``, a
        classifier head; ``'downsample'``: ``kernel_size`` windows with ``stride``,
        ``(N, H, W, C) -> (N, H', W', C')`` with ``H' = floor((H - k) / s) + 1``.
        ``C' = C`` except for ``'catavgmax'`` (``2C``); see :func:`pooled_channels`.
      kernel_size: window height and width for ``'downsample'``; default 2.
      stride: window stride for ``'downsample'``; default ``kernel_size``.
      dtype: computation dtype of the modules that have one (the attention's dense
        layers); default ``None`` (the input's).
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
    class_name, sizes = pooling_recipe(name, kind, kernel_size, stride)
    module = pooling_class(class_name, _linen, _learnable, sys.modules[__name__])
    options = {"dtype": dtype} if "dtype" in module.__dataclass_fields__ else {}
    return module(**sizes, **options, name=module_name)


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
        return residual(x, self.features, train, stride=self.stride, use_bias=False,
                        kernel_init=conv_init, dtype=self.dtype)


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
        x = classifier_images(self, x)
        x = nn.Conv(self.width, (3, 3), padding=1, use_bias=False, kernel_init=conv_init,
                    dtype=self.dtype, name="stem_conv")(x)
        x = nn.relu(BatchNorm(use_running_average=not train, dtype=self.dtype,
                                        name="stem_bn")(x))
        for name, features, stride in resnet18_blocks(self.width):
            x = BasicBlock(features, stride, self.dtype, name=name)(x, train=train)
        return classifier_head(
            x, make_pooling(self.pool, kind="global", dtype=self.dtype, module_name="pool"),
            nn.Dense(self.num_classes, dtype=self.dtype, name="classifier"),
        )


class PoolingResNetBlock(nn.Module):
    """:class:`jaxpool.models.HybridResNetBlock` with a choice of the pooling it ends with.

    ``y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, then 2x2 stride-2
    pooling named by ``pool``: ``(N, H, W, C_in) -> (N, H // 2, W // 2, C_out)`` with
    ``C_out = features`` (``2 * features`` for 'catavgmax'). The layers, their names,
    initialisation and defaults are HybridResNetBlock's, which hard-wires
    ``AttentionHybridPool``: with ``pool='attention'`` this block computes exactly what
    HybridResNetBlock computes from the same variables (a test checks it).

    Attributes:
      features: channels of the convolutions.
      pool: a name from :data:`POOLING_NAMES` (:func:`make_pooling`,
        ``kind='downsample'``); default 'attention' (HybridResNetBlock's).
      dtype: computation dtype; default ``None`` (the input's).
    """

    features: int
    pool: str = "attention"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: ArrayLike, train: bool = False) -> jax.Array:
        """``(N, H, W, C_in) -> (N, H // 2, W // 2, C_out)``."""
        pool = make_pooling(self.pool, kind="downsample", dtype=self.dtype, module_name="pool")
        return residual(x, self.features, train, dtype=self.dtype, pool=pool)


class HybridResNet(nn.Module):
    """A stack of residual blocks, each ending in a 2x2 pooling of choice.

    ``len(stage_multipliers)`` :class:`PoolingResNetBlock`\\ s
    (:class:`HybridResNetBlock` with the pooling chosen by ``pool``) with ``width * m``
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
      pool: a name from :data:`POOLING_NAMES`; default 'attention' (HybridResNetBlock's).
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
        x = classifier_images(self, x)
        check_image_size("HybridResNet", x.shape[1], x.shape[2], len(self.stage_multipliers),
                         x.shape)
        for name, features in hybrid_resnet_blocks(self.width, self.stage_multipliers):
            x = PoolingResNetBlock(features, self.pool, self.dtype, name=name)(x, train=train)
        return classifier_head(
            x, make_pooling(self.pool, kind="global", dtype=self.dtype, module_name="head_pool"),
            nn.Dense(self.num_classes, dtype=self.dtype, name="classifier"),
        )


_MODELS = {"resnet18": CifarResNet18, "hybrid_resnet": HybridResNet}


def make_model(
    name: str,
    *,
    num_classes: int = 10,
    pool: str = "max",
    width: int | None = None,
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
    check_name(name, "model", MODEL_NAMES, "make_model")
    check_name(pool, "pool", POOLING_NAMES, "make_model")
    options = {} if width is None else {"width": check_positive_int(width, "width", "make_model")}
    return _MODELS[name](num_classes=num_classes, pool=pool, dtype=dtype, **options)
