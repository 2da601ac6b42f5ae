"""jaxpool's Flax NNX modules: the twins of every linen module, with the same numbers.

``import jaxpool.nnx as jpn``. Each module has its linen twin's name, arguments,
defaults and parameters (names, shapes, initialisers), and calls the same functional
op, so the two APIs cannot disagree. As NNX wants, everything a parameter's shape
depends on is given at construction (``num_features``; ``in_features`` /
``out_features`` for blocks and models, as ``nnx.Conv``), ``rngs`` is taken where
something is initialised randomly, and configurations are checked at construction.
BatchNorm and the models containing it switch with ``.train()`` / ``.eval()``.

:func:`load_variables` puts a linen variables dict (``{'params': ...,
'batch_stats': ...}``, e.g. from :mod:`jaxpool.torch_compat`) into an NNX module and
:func:`variables` reads it back.

Example:
  >>> import jax.numpy as jnp
  >>> from flax import nnx
  >>> import jaxpool.nnx as jpn
  >>> pool = jpn.HybridPool(kernel_size=(2, 2), stride=(2, 2))
  >>> pool(jnp.ones((8, 32, 32, 16))).shape
  (8, 16, 16, 16)
  >>> jpn.variables(pool)
  {'params': {'mix_logit': Array(0., dtype=float32)}}
"""

from jaxpool.nnx._attention import AttentionPool2d as AttentionPool2d
from jaxpool.nnx._attention import AttentionPoolLatent as AttentionPoolLatent
from jaxpool.nnx._learnable import AttentionHybridPool as AttentionHybridPool
from jaxpool.nnx._learnable import AvgMaxPool as AvgMaxPool
from jaxpool.nnx._learnable import CatAvgMaxPool as CatAvgMaxPool
from jaxpool.nnx._learnable import GatedPool as GatedPool
from jaxpool.nnx._learnable import GeMPool as GeMPool
from jaxpool.nnx._learnable import HybridPool as HybridPool
from jaxpool.nnx._learnable import SoftPool as SoftPool
from jaxpool.nnx._models import BasicBlock as BasicBlock
from jaxpool.nnx._models import BatchNorm as BatchNorm
from jaxpool.nnx._models import CifarResNet18 as CifarResNet18
from jaxpool.nnx._models import HybridResNet as HybridResNet
from jaxpool.nnx._models import HybridResNetBlock as HybridResNetBlock
from jaxpool.nnx._models import PoolingResNetBlock as PoolingResNetBlock
from jaxpool.nnx._models import make_model as make_model
from jaxpool.nnx._models import make_pooling as make_pooling
from jaxpool.nnx._pooling import AdaptiveAvgPool as AdaptiveAvgPool
from jaxpool.nnx._pooling import AdaptiveMaxPool as AdaptiveMaxPool
from jaxpool.nnx._pooling import AvgPool as AvgPool
from jaxpool.nnx._pooling import FractionalMaxPool as FractionalMaxPool
from jaxpool.nnx._pooling import GlobalAvgPool as GlobalAvgPool
from jaxpool.nnx._pooling import GlobalMaxPool as GlobalMaxPool
from jaxpool.nnx._pooling import LPPool as LPPool
from jaxpool.nnx._pooling import MaxPool as MaxPool
from jaxpool.nnx._variables import load_variables as load_variables
from jaxpool.nnx._variables import variables as variables
from jaxpool.nnx._vision import BlurPool as BlurPool
from jaxpool.nnx._vision import MaxBlurPool as MaxBlurPool
from jaxpool.nnx._vision import RoIAlign as RoIAlign
from jaxpool.nnx._vision import SpatialPyramidPool as SpatialPyramidPool

__all__ = (
    # Pooling modules (twins of jaxpool.MaxPool, ...).
    "MaxPool",
    "AvgPool",
    "LPPool",
    "AdaptiveAvgPool",
    "AdaptiveMaxPool",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "FractionalMaxPool",
    # Learnable pooling modules.
    "HybridPool",
    "AttentionHybridPool",
    "GatedPool",
    "GeMPool",
    "SoftPool",
    "AvgMaxPool",
    "CatAvgMaxPool",
    # Vision pooling modules.
    "BlurPool",
    "MaxBlurPool",
    "RoIAlign",
    "SpatialPyramidPool",
    # Attention pooling modules.
    "AttentionPoolLatent",
    "AttentionPool2d",
    # Models (twins of jaxpool.models).
    "BatchNorm",
    "HybridResNetBlock",
    "BasicBlock",
    "PoolingResNetBlock",
    "CifarResNet18",
    "HybridResNet",
    "make_model",
    "make_pooling",
    # Linen variables in and out.
    "load_variables",
    "variables",
)
