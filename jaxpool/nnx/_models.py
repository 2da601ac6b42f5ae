"""Flax NNX models with PyTorch's numbers: the twins of :mod:`jaxpool.models`.

:class:`BatchNorm` (torch's running statistics), :class:`HybridResNetBlock` (residual,
with attention-driven hybrid pooling), :class:`BasicBlock`, :class:`PoolingResNetBlock`,
:class:`CifarResNet18`, :class:`HybridResNet`, and :func:`make_model` /
:func:`make_pooling` for the CIFAR example's ``--model`` / ``--pool`` names. They
compute with the linen modules' own functions (``jaxpool/_blocks.py``,
``jaxpool/_cifar_models.py``), and their attribute names are the linen variables' paths,
so :func:`jaxpool.nnx.load_variables` moves weights between the two. Each docstring says
what differs from its linen twin, whose docstring has the rest.

NNX differences: channel counts are given at construction (``in_features``,
``out_features``, as ``nnx.Conv``; ``num_features`` for BatchNorm), ``rngs`` too, and
the mode is the module's state rather than a ``train`` argument: ``model.train()``
makes every BatchNorm normalise with the batch's statistics and update its running
ones (the mode a module is constructed in, as ``nnx.BatchNorm``), ``model.eval()``
makes them use the running statistics.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike

from jaxpool import _blocks as blocks
from jaxpool import _cifar_models as cifar
from jaxpool import _module_rules as rules
from jaxpool._module_rules import Dtype, Size
from jaxpool.nnx import _common as common
from jaxpool.nnx import _learnable as learnable
from jaxpool.nnx import _pooling as pooling
from jaxpool.nnx._common import PoolingModule, configure

# nnx.Conv's default kernel initialiser, as linen's nn.Conv's.
LECUN_NORMAL = jax.nn.initializers.lecun_normal()


class BatchNorm(nnx.Module):
    """The NNX twin of :class:`jaxpool.models.BatchNorm`: batch normalisation over the
    last axis with ``torch.nn.BatchNorm2d``'s numbers, ``(..., C) -> (..., C)``.

    What differs: the channel count is an argument, the mode is the module's state
    (training, as ``nnx.BatchNorm`` is constructed; ``eval()`` switches to the running
    statistics), and the running statistics are updated in place.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxpool.nnx as jpn
      >>> bn = jpn.BatchNorm(num_features=1)     # training mode, as nnx.BatchNorm
      >>> bn(jnp.array([[1.0], [3.0]]))
      Array([[-0.999995],
             [ 0.999995]], dtype=float32)
      >>> bn.var[...]                            # 0.9 * 1 + 0.1 * 2 (unbiased variance)
      Array([1.1], dtype=float32)
      >>> bn.eval()                              # the running statistics from now on
      >>> bn.use_running_average
      True

    Attributes:
      num_features: the channel count ``C``.
      use_running_average: normalise with the running statistics (evaluation mode);
        ``train()`` / ``eval()`` set it, ``__call__`` may override it; default False.
      mean, var: the running statistics (``nnx.BatchStat``, float32, ``(C,)``).
      scale, bias: the ``nnx.Param``\\ s (None when not learned).

    Args:
      rngs: an ``nnx.Rngs`` for random ``scale_init`` / ``bias_init``; default None.
    """

    def __init__(
        self,
        num_features: int,
        *,
        use_running_average: bool = False,
        momentum: float = blocks.TORCH_BN_MOMENTUM,
        epsilon: float = blocks.TORCH_BN_EPSILON,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        use_bias: bool = True,
        use_scale: bool = True,
        bias_init: Any = jax.nn.initializers.zeros,
        scale_init: Any = jax.nn.initializers.ones,
        rngs: nnx.Rngs | None = None,
    ):
        self.num_features = rules.check_features(self, "num_features", num_features)
        self.use_running_average = use_running_average
        self.momentum = momentum
        self.epsilon = epsilon
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.use_bias = use_bias
        self.use_scale = use_scale
        self.bias_init = bias_init
        self.scale_init = scale_init
        shape = (self.num_features,)
        self.mean = nnx.BatchStat(jnp.zeros(shape, jnp.float32))
        self.var = nnx.BatchStat(jnp.ones(shape, jnp.float32))
        self.scale = (
            common.make_param(self, "scale", scale_init, shape, param_dtype, rngs)
            if use_scale else None
        )
        self.bias = (
            common.make_param(self, "bias", bias_init, shape, param_dtype, rngs)
            if use_bias else None
        )

    def __call__(self, x: ArrayLike, use_running_average: bool | None = None) -> jax.Array:
        """Normalises ``x`` of shape ``(..., C)``; same shape, dtype ``dtype or x.dtype``.

        In training mode (``use_running_average`` False, from the argument or else the
        attribute) the running statistics are updated in place.
        """
        if use_running_average is None:
            use_running_average = self.use_running_average
        shape = tuple(jnp.shape(x))
        if not shape or shape[-1] != self.num_features:
            raise ValueError(
                f"BatchNorm: expected an input of shape (..., C) with C = num_features = "
                f"{self.num_features}, but got shape {shape}"
            )
        y, updated = blocks.batch_norm(
            x, common.read(self.mean), common.read(self.var),
            None if self.scale is None else common.read(self.scale),
            None if self.bias is None else common.read(self.bias),
            use_running_average=use_running_average, update_running_stats=True,
            momentum=self.momentum, epsilon=self.epsilon, dtype=self.dtype,
        )
        if updated is not None:
            common.write(self.mean, updated[0])
            common.write(self.var, updated[1])
        return y


class _ResidualBlock(nnx.Module):
    """The NNX residual blocks' layers, made once by :meth:`_make_layers` and applied by
    :func:`jaxpool._blocks.residual_block`, the linen blocks' function: ``conv1``,
    ``bn1``, ``conv2``, ``bn2``, ``shortcut_conv`` and ``shortcut_bn`` (None for the
    identity shortcut), then ``pool`` where the block has one."""

    pool: nnx.Module | None = None

    def _make_layers(
        self,
        in_features: int,
        features: int,
        *,
        stride: int = 1,
        use_bias: bool = True,
        kernel_init: Any = LECUN_NORMAL,
        momentum: float = blocks.TORCH_BN_MOMENTUM,
        epsilon: float = blocks.TORCH_BN_EPSILON,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        """The twin of :func:`jaxpool._blocks.residual`'s layers (the same options)."""
        conv = functools.partial(nnx.Conv, kernel_init=kernel_init, dtype=dtype,
                                 param_dtype=param_dtype, rngs=rngs)
        norm = functools.partial(BatchNorm, features, momentum=momentum, epsilon=epsilon,
                                 dtype=dtype, param_dtype=param_dtype)
        strides = (stride, stride)
        self.conv1 = conv(in_features, features, (3, 3), strides, padding=1, use_bias=use_bias)
        self.bn1 = norm()
        self.conv2 = conv(features, features, (3, 3), padding=1, use_bias=use_bias)
        self.bn2 = norm()
        projection = blocks.needs_projection(in_features, features, stride)
        self.shortcut_conv = (
            conv(in_features, features, (1, 1), strides, use_bias=False) if projection else None
        )
        self.shortcut_bn = norm() if projection else None

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Applies the block (batch statistics in training mode)."""
        return blocks.residual_block(
            x, self.conv1, self.bn1, self.conv2, self.bn2, self.shortcut_conv,
            self.shortcut_bn, self.pool,
        )


class HybridResNetBlock(_ResidualBlock):
    """The NNX twin of :class:`jaxpool.models.HybridResNetBlock`: a residual block with
    attention-driven hybrid pooling, ``(N, H, W, in_features) -> (N, H', W',
    out_features)``; the submodules are the twin's variables (``shortcut_conv`` and
    ``shortcut_bn`` None for the identity shortcut).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxpool.nnx as jpn
      >>> block = jpn.HybridResNetBlock(in_features=3, out_features=64, rngs=nnx.Rngs(0))
      >>> forward = nnx.jit(lambda block, x: block(x))
      >>> x = jnp.ones((2, 32, 32, 3))
      >>> forward(block, x).shape               # training mode: batch statistics
      (2, 16, 16, 64)
      >>> block.eval()                          # the running statistics
      >>> forward(block, x).shape
      (2, 16, 16, 64)
      >>> sorted(jpn.variables(block)["batch_stats"])
      ['bn1', 'bn2', 'shortcut_bn']

    Attributes:
      in_features: input channels.
      out_features: output channels (the twin's ``features``).

    Args:
      rngs: an ``nnx.Rngs`` for the convolutions and the attention (required).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        reduction: int = 4,
        pool_kernel_size: Size = (2, 2),
        pool_stride: int | Size | None = None,
        use_bias: bool = True,
        momentum: float = blocks.TORCH_BN_MOMENTUM,
        epsilon: float = blocks.TORCH_BN_EPSILON,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.in_features = rules.check_features(self, "in_features", in_features)
        self.out_features = rules.check_features(self, "out_features", out_features)
        self.reduction = reduction
        self.pool_kernel_size = common.freeze(pool_kernel_size)
        self.pool_stride = common.freeze(pool_stride)
        self.use_bias = use_bias
        self.momentum = momentum
        self.epsilon = epsilon
        self.dtype = dtype
        self.param_dtype = param_dtype
        rngs = common.require_rngs(self, rngs)
        layer = dict(dtype=dtype, param_dtype=param_dtype)
        self._make_layers(self.in_features, self.out_features, use_bias=use_bias,
                          momentum=momentum, epsilon=epsilon, **layer, rngs=rngs)
        self.pool = learnable.AttentionHybridPool(
            self.out_features, kernel_size=self.pool_kernel_size, stride=self.pool_stride,
            reduction=reduction, **layer, rngs=rngs,
        )


class _WholeMapGatedPool(nnx.Module):
    """:class:`GatedPool` with one window over the whole ``map_size`` map,
    ``(N, H, W, C) -> (N, C)``; the gate weights have shape ``map_size`` (the map
    reaching a model's head, which NNX must know at construction)."""

    def __init__(self, map_size: Sequence[int], *, rngs: nnx.Rngs | None = None):
        if map_size is None:
            raise ValueError(
                "make_pooling: 'gated' pools the whole map with one gate weight per position: "
                "pass map_size=(H, W), the size of the map it pools"
            )
        self.map_size = common.freeze(map_size)
        self.gated = learnable.GatedPool(kernel_size=self.map_size, rngs=rngs)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Pools ``x`` over all spatial positions with a learned gate."""
        window = tuple(jnp.shape(x)[1:3])
        if window != self.map_size:
            raise ValueError(
                f"the gated head was built for {self.map_size[0]}x{self.map_size[1]} maps "
                f"(map_size={self.map_size}), but got an input of shape {tuple(jnp.shape(x))}"
            )
        return cifar.flatten_whole_map(self.gated(x))


class _WindowedAvgMaxPool(PoolingModule):
    """The twin of linen's: timm's ``avgmax`` as a downsampling."""

    op = staticmethod(cifar.windowed_avg_max_pool)

    def __init__(self, kernel_size: tuple[int, int], stride: tuple[int, int]):
        configure(self, locals())


class _WindowedCatAvgMaxPool(_WindowedAvgMaxPool):
    """The twin of linen's: timm's ``catavgmax`` as a downsampling."""

    op = staticmethod(cifar.windowed_cat_avg_max_pool)


def make_pooling(
    name: str,
    *,
    kind: str = "global",
    kernel_size: int = 2,
    stride: int | None = None,
    num_features: int | None = None,
    map_size: Sequence[int] | None = None,
    dtype: Any = None,
    rngs: nnx.Rngs | None = None,
) -> nnx.Module:
    """The NNX twin of :func:`jaxpool.models.make_pooling`: the same names, kinds, sizes
    and table of modules (their NNX twins), and what NNX needs at construction.

    Args:
      num_features: the input's channel count; needed by ``'attention'``.
      map_size: ``(H, W)`` of the map a ``'gated'`` head pools (its gate weights have
        that shape).
      rngs: an ``nnx.Rngs``; needed by ``'attention'`` (random Linear layers).

    Returns:
      An NNX module whose ``__call__`` takes the channels-last input alone.

    Raises:
      ValueError, TypeError: as the twin's, and for a missing ``num_features`` /
        ``map_size`` / ``rngs`` that the pooling needs.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxpool.nnx as jpn
      >>> jpn.make_pooling("max", kind="downsample")(jnp.ones((2, 8, 8, 3))).shape
      (2, 4, 4, 3)
      >>> pool = jpn.make_pooling("attention", num_features=3, rngs=nnx.Rngs(0))
      >>> pool(jnp.ones((2, 8, 8, 3))).shape
      (2, 3)
    """
    class_name, sizes = cifar.pooling_recipe(name, kind, kernel_size, stride)
    module = cifar.pooling_class(class_name, pooling, learnable, sys.modules[__name__])
    given = {"num_features": num_features, "map_size": map_size, "dtype": dtype, "rngs": rngs}
    # The class's own __init__: the NNX metaclass's __call__ shows only *args, **kwargs.
    accepted = inspect.signature(module.__init__).parameters
    return module(**sizes, **{key: value for key, value in given.items() if key in accepted})


class BasicBlock(_ResidualBlock):
    """The NNX twin of :class:`jaxpool.models.BasicBlock`: ResNet's basic block,
    ``(N, H, W, in_features) -> (N, ceil(H / stride), ceil(W / stride), out_features)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxpool.nnx as jpn
      >>> block = nnx.eval_shape(lambda: jpn.BasicBlock(4, 8, stride=2, rngs=nnx.Rngs(0)))
      >>> nnx.eval_shape(lambda block, x: block(x), block, jnp.ones((2, 8, 8, 4))).shape
      (2, 4, 4, 8)

    Attributes:
      in_features: input channels.
      out_features: output channels (the twin's ``features``).

    Args:
      rngs: an ``nnx.Rngs`` for the convolutions (required).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        stride: int = 1,
        *,
        dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.in_features = rules.check_features(self, "in_features", in_features)
        self.out_features = rules.check_features(self, "out_features", out_features)
        self.stride = cifar.check_positive_int(stride, "stride", "BasicBlock")
        self.dtype = dtype
        self._make_layers(self.in_features, self.out_features, stride=stride, use_bias=False,
                          kernel_init=cifar.conv_init, dtype=dtype,
                          rngs=common.require_rngs(self, rngs))


class PoolingResNetBlock(_ResidualBlock):
    """The NNX twin of :class:`jaxpool.models.PoolingResNetBlock`: the residual block
    with a choice of the pooling it ends with, ``(N, H, W, in_features) -> (N, H // 2,
    W // 2, C_out)``; with ``pool='attention'`` it computes what
    :class:`HybridResNetBlock` computes.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxpool.nnx as jpn
      >>> block = nnx.eval_shape(lambda: jpn.PoolingResNetBlock(3, 8, pool="gem", rngs=nnx.Rngs(0)))
      >>> nnx.eval_shape(lambda block, x: block(x), block, jnp.ones((2, 8, 8, 3))).shape
      (2, 4, 4, 8)
      >>> block.pool_name, type(block.pool).__name__
      ('gem', 'GeMPool')

    Attributes:
      in_features: input channels.
      out_features: channels of the convolutions (the twin's ``features``).
      pool_name: the ``pool`` argument; ``pool`` is the pooling module (its variables'
        path is linen's ``pool``).

    Args:
      pool: the pooling's name, from :data:`jaxpool.models.POOLING_NAMES`.
      rngs: an ``nnx.Rngs`` for the convolutions (and the attention) (required).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        pool: str = "attention",
        *,
        dtype: Dtype | None = None,
        rngs: nnx.Rngs,
    ):
        self.in_features = rules.check_features(self, "in_features", in_features)
        self.out_features = rules.check_features(self, "out_features", out_features)
        self.pool_name = cifar.check_name(pool, "pool", cifar.POOLING_NAMES, "PoolingResNetBlock")
        self.dtype = dtype
        rngs = common.require_rngs(self, rngs)
        self._make_layers(self.in_features, self.out_features, dtype=dtype, rngs=rngs)
        self.pool = make_pooling(pool, kind="downsample", num_features=self.out_features,
                                 dtype=dtype, rngs=rngs)


def _head(
    where: str, pool: str, features: int, num_classes: int, head_size, dtype, rngs
) -> tuple[nnx.Module, nnx.Linear]:
    """A model's global pooling of ``features`` channels and its linear classifier."""
    if pool == "gated" and head_size is None:
        raise ValueError(
            f"{where}: pool='gated' learns one gate weight per position of the map reaching "
            "the head: pass image_size=(H, W), the size of the input images"
        )
    head = make_pooling(pool, kind="global", num_features=features, map_size=head_size,
                        dtype=dtype, rngs=rngs)
    classifier = nnx.Linear(cifar.pooled_channels(pool, features), num_classes, dtype=dtype,
                            rngs=rngs)
    return head, classifier


def _classifier_options(where: str, in_features, num_classes, width, pool, image_size):
    """The options both classifiers take, checked: ``(in_features, num_classes, width,
    pool_name, image_size)``."""
    return (
        rules.check_features(where, "in_features", in_features),
        cifar.check_positive_int(num_classes, "num_classes", where),
        cifar.check_positive_int(width, "width", where),
        cifar.check_name(pool, "pool", cifar.POOLING_NAMES, where),
        _image_size(where, image_size),
    )


def _image_size(where: str, image_size: Any) -> tuple[int, ...] | None:
    if image_size is None:
        return None
    if not isinstance(image_size, Sequence) or len(image_size) != 2:
        raise ValueError(f"{where}: image_size must be (H, W), but got image_size={image_size!r}")
    return tuple(cifar.check_positive_int(s, "image_size", where) for s in image_size)


class CifarResNet18(nnx.Module):
    """The NNX twin of :class:`jaxpool.models.CifarResNet18`: ResNet-18 for 32x32 images,
    with a choice of pooling at its head, ``(N, H, W, in_features) -> (N, num_classes)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxpool.nnx as jpn
      >>> make = lambda: jpn.CifarResNet18(in_features=3, rngs=nnx.Rngs(0))  # width 64
      >>> model = nnx.eval_shape(make)                 # shapes only: nothing initialised
      >>> sum(leaf.size for leaf in jax.tree.leaves(jpn.variables(model)["params"]))
      11173962
      >>> x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
      >>> nnx.eval_shape(lambda model, x: model(x), model, x).shape
      (2, 10)

    Attributes:
      in_features: image channels.
      pool_name: the ``pool`` argument; ``pool`` is the head's pooling module (its
        variables' path is linen's ``pool``).
      image_size: ``(H, W)`` of the images, or None; needed by ``pool='gated'`` (its
        gate weights have the shape of the map reaching the head).

    Args:
      pool: the head's pooling name.
      rngs: an ``nnx.Rngs`` (required).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int = 10,
        width: int = 64,
        pool: str = "avg",
        dtype: Dtype = jnp.float32,
        *,
        image_size: tuple[int, int] | None = None,
        rngs: nnx.Rngs,
    ):
        (self.in_features, self.num_classes, self.width, self.pool_name, self.image_size) = (
            _classifier_options("CifarResNet18", in_features, num_classes, width, pool,
                                image_size))
        self.dtype = dtype
        rngs = common.require_rngs(self, rngs)
        self.stem_conv = nnx.Conv(in_features, width, (3, 3), padding=1, use_bias=False,
                                  kernel_init=cifar.conv_init, dtype=dtype, rngs=rngs)
        self.stem_bn = BatchNorm(width, dtype=dtype)
        features = width
        for name, out_features, stride in cifar.resnet18_blocks(width):
            setattr(self, name, BasicBlock(features, out_features, stride, dtype=dtype, rngs=rngs))
            features = out_features
        head_size = None if self.image_size is None else cifar.resnet18_head_size(self.image_size)
        self.pool, self.classifier = _head(
            "CifarResNet18", pool, features, num_classes, head_size, dtype, rngs
        )

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Logits ``(N, num_classes)`` for images ``(N, H, W, in_features)``."""
        x = jnp.asarray(x, self.dtype)
        x = jax.nn.relu(self.stem_bn(self.stem_conv(x)))
        for name, _, _ in cifar.resnet18_blocks(self.width):
            x = getattr(self, name)(x)
        return cifar.classifier_head(x, self.pool, self.classifier)


class HybridResNet(nnx.Module):
    """The NNX twin of :class:`jaxpool.models.HybridResNet`: a stack of
    :class:`PoolingResNetBlock`\\ s (``block1``, ``block2``, ...) and a pooling head
    (``head_pool``), ``(N, H, W, in_features) -> (N, num_classes)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxpool.nnx as jpn
      >>> model = nnx.eval_shape(lambda: jpn.HybridResNet(   # shapes only: nothing initialised
      ...     in_features=1, width=4, pool="gated", image_size=(8, 8), rngs=nnx.Rngs(0)))
      >>> sorted(jpn.variables(model)["params"])
      ['block1', 'block2', 'block3', 'classifier', 'head_pool']
      >>> jpn.variables(model)["params"]["head_pool"]["gated"]["gate_weight"].shape
      (1, 1)
      >>> x = jax.ShapeDtypeStruct((2, 8, 8, 1), jnp.float32)
      >>> nnx.eval_shape(lambda model, x: model(x), model, x).shape
      (2, 10)

    Attributes:
      in_features: image channels.
      pool_name: the ``pool`` argument (the blocks' and the head's pooling name).
      image_size: ``(H, W)`` of the images, or None; needed by ``pool='gated'`` (the
        head's gate weights have the shape of the map reaching it).

    Args:
      pool: the pooling name.
      rngs: an ``nnx.Rngs`` (required).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int = 10,
        width: int = 32,
        stage_multipliers: tuple[int, ...] = (1, 2, 4),
        pool: str = "attention",
        dtype: Dtype = jnp.float32,
        *,
        image_size: tuple[int, int] | None = None,
        rngs: nnx.Rngs,
    ):
        (self.in_features, self.num_classes, self.width, self.pool_name, self.image_size) = (
            _classifier_options("HybridResNet", in_features, num_classes, width, pool,
                                image_size))
        self.dtype = dtype
        self.stage_multipliers = tuple(
            cifar.check_positive_int(m, "stage_multipliers", "HybridResNet")
            for m in stage_multipliers
        )
        rngs = common.require_rngs(self, rngs)
        num_blocks = len(self.stage_multipliers)
        if self.image_size is not None:
            image_height, image_width = self.image_size
            cifar.check_image_size("HybridResNet", image_height, image_width, num_blocks,
                                   ("N", image_height, image_width, in_features))
        features = self.in_features
        for name, out_features in cifar.hybrid_resnet_blocks(width, self.stage_multipliers):
            setattr(self, name, PoolingResNetBlock(features, out_features, pool, dtype=dtype,
                                                   rngs=rngs))
            features = cifar.pooled_channels(pool, out_features)
        head_size = (
            None if self.image_size is None
            else cifar.hybrid_resnet_head_size(self.image_size, num_blocks)
        )
        self.head_pool, self.classifier = _head(
            "HybridResNet", pool, features, num_classes, head_size, dtype, rngs
        )

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Logits ``(N, num_classes)`` for images ``(N, H, W, in_features)``."""
        x = jnp.asarray(x, self.dtype)
        cifar.check_image_size("HybridResNet", x.shape[1], x.shape[2],
                               len(self.stage_multipliers), x.shape)
        for name, _ in cifar.hybrid_resnet_blocks(self.width, self.stage_multipliers):
            x = getattr(self, name)(x)
        return cifar.classifier_head(x, self.head_pool, self.classifier)


_MODELS = {"resnet18": CifarResNet18, "hybrid_resnet": HybridResNet}


def make_model(
    name: str,
    *,
    in_features: int,
    num_classes: int = 10,
    pool: str = "max",
    width: int | None = None,
    dtype: Any = jnp.float32,
    image_size: tuple[int, int] | None = None,
    rngs: nnx.Rngs,
) -> nnx.Module:
    """The NNX classifier for a ``--model`` name: the twin of :func:`jaxpool.models.make_model`.

    Args:
      name: 'resnet18' (:class:`CifarResNet18`) or 'hybrid_resnet' (:class:`HybridResNet`).
      in_features: image channels.
      num_classes: classes.
      pool: a name from :data:`jaxpool.models.POOLING_NAMES`: the head's pooling for
        'resnet18'; every downsampling's and the head's for 'hybrid_resnet'.
      width: the model's ``width``; default that model's own default.
      dtype: computation dtype.
      image_size: ``(H, W)`` of the images; needed by ``pool='gated'``.
      rngs: an ``nnx.Rngs``.

    Returns:
      The NNX module, in training mode (``model.eval()`` for evaluation); call it as
      ``model(images)``.

    Raises:
      ValueError: for an unknown ``name`` or ``pool`` (the message lists the valid ones).

    Example:
      >>> from flax import nnx
      >>> import jaxpool.nnx as jpn
      >>> model = nnx.eval_shape(lambda: jpn.make_model("resnet18", in_features=3, pool="avg",
      ...                                               width=8, rngs=nnx.Rngs(0)))
      >>> model.width, model.pool_name, type(model.pool).__name__
      (8, 'avg', 'GlobalAvgPool')
    """
    cifar.check_name(name, "model", cifar.MODEL_NAMES, "make_model")
    cifar.check_name(pool, "pool", cifar.POOLING_NAMES, "make_model")
    options = {} if width is None else {
        "width": cifar.check_positive_int(width, "width", "make_model")
    }
    return _MODELS[name](in_features, num_classes=num_classes, pool=pool, dtype=dtype,
                         image_size=image_size, rngs=rngs, **options)
