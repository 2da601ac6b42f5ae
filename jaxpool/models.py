"""Models built from jaxpool's layers (Flax linen), with PyTorch's numbers.

Contents:

* :class:`BatchNorm` — ``torch.nn.BatchNorm{1,2,3}d`` in Flax: the batch's biased
  variance normalises, the *unbiased* one updates the running variance (Flax's own
  ``nn.BatchNorm`` uses the biased one for both, so its running statistics drift from
  torch's by ``n / (n - 1)``). Variables as ``nn.BatchNorm``'s: ``params/{scale,bias}``,
  ``batch_stats/{mean,var}``.
* :class:`HybridResNetBlock` — the residual block with attention-driven hybrid pooling
  of the hybrid-pooling tutorial (see the README):
  ``conv3x3 -> BN -> ReLU -> conv3x3 -> BN -> + shortcut -> ReLU -> AttentionHybridPool``.
* :class:`CifarResNet18` (pooling choice at its head), :class:`HybridResNet` (a stack of
  :class:`PoolingResNetBlock`\\ s, that block with a pooling choice at every
  downsampling), :class:`BasicBlock`, and :func:`make_model` / :func:`make_pooling`,
  which map the CIFAR example's ``--model`` / ``--pool`` names (:data:`MODEL_NAMES`,
  :data:`POOLING_NAMES`) to modules.

Every model takes channels-last input ``(N, H, W, C)`` and ``train: bool`` in
``__call__`` (batch statistics and their update when True, running statistics when
False; call ``apply(..., mutable=['batch_stats'])`` to train). torch's BatchNorm
momentum 0.1 is Flax's 0.9 (the weight of the old running value); eps is 1e-5.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxpool.models import HybridResNetBlock
  >>> block = HybridResNetBlock(features=32)
  >>> x = jnp.ones((2, 16, 16, 16))
  >>> shapes = jax.eval_shape(block.init, jax.random.key(0), x)    # no computation
  >>> shapes["batch_stats"]["bn1"]["var"].shape
  (32,)
  >>> jax.eval_shape(block.apply, shapes, x).shape   # the pool halves H and W
  (2, 8, 8, 32)
"""

from jaxpool._blocks import BatchNorm as BatchNorm
from jaxpool._blocks import HybridResNetBlock as HybridResNetBlock
from jaxpool._cifar_models import MODEL_NAMES as MODEL_NAMES
from jaxpool._cifar_models import POOLING_NAMES as POOLING_NAMES
from jaxpool._cifar_models import BasicBlock as BasicBlock
from jaxpool._cifar_models import CifarResNet18 as CifarResNet18
from jaxpool._cifar_models import HybridResNet as HybridResNet
from jaxpool._cifar_models import PoolingResNetBlock as PoolingResNetBlock
from jaxpool._cifar_models import make_model as make_model
from jaxpool._cifar_models import make_pooling as make_pooling
from jaxpool._cifar_models import pooled_channels as pooled_channels

__all__ = [
    "BatchNorm",
    "HybridResNetBlock",
    "BasicBlock",
    "CifarResNet18",
    "HybridResNet",
    "MODEL_NAMES",
    "POOLING_NAMES",
    "PoolingResNetBlock",
    "make_model",
    "make_pooling",
    "pooled_channels",
]
