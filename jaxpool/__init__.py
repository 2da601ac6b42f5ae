"""jaxpool: pooling for JAX and Flax with exactly PyTorch's numbers.

Functional ops mirror ``torch.nn.functional`` (names and argument order) with a
channels-last layout by default; Flax linen modules wrap them. See the README for the
table of ops and their torch counterparts.
"""

from importlib import metadata as _metadata

from jaxpool._adaptive import adaptive_avg_pool1d as adaptive_avg_pool1d
from jaxpool._adaptive import adaptive_avg_pool2d as adaptive_avg_pool2d
from jaxpool._adaptive import adaptive_avg_pool3d as adaptive_avg_pool3d
from jaxpool._adaptive import adaptive_max_pool1d as adaptive_max_pool1d
from jaxpool._adaptive import adaptive_max_pool2d as adaptive_max_pool2d
from jaxpool._adaptive import adaptive_max_pool3d as adaptive_max_pool3d
from jaxpool._adaptive import global_avg_pool as global_avg_pool
from jaxpool._adaptive import global_max_pool as global_max_pool
from jaxpool._antialias import blur_pool1d as blur_pool1d
from jaxpool._antialias import blur_pool2d as blur_pool2d
from jaxpool._antialias import blur_pool3d as blur_pool3d
from jaxpool._antialias import max_blur_pool1d as max_blur_pool1d
from jaxpool._antialias import max_blur_pool2d as max_blur_pool2d
from jaxpool._antialias import max_blur_pool3d as max_blur_pool3d
from jaxpool._attention_modules import AttentionPool2d as AttentionPool2d
from jaxpool._attention_modules import AttentionPoolLatent as AttentionPoolLatent
from jaxpool._attention_pool import attention_pool2d as attention_pool2d
from jaxpool._attention_pool import attention_pool_latent as attention_pool_latent
from jaxpool._functional import avg_pool1d as avg_pool1d
from jaxpool._functional import avg_pool2d as avg_pool2d
from jaxpool._functional import avg_pool3d as avg_pool3d
from jaxpool._functional import fractional_max_pool2d as fractional_max_pool2d
from jaxpool._functional import fractional_max_pool3d as fractional_max_pool3d
from jaxpool._functional import lp_pool1d as lp_pool1d
from jaxpool._functional import lp_pool2d as lp_pool2d
from jaxpool._functional import lp_pool3d as lp_pool3d
from jaxpool._functional import max_pool1d as max_pool1d
from jaxpool._functional import max_pool2d as max_pool2d
from jaxpool._functional import max_pool3d as max_pool3d
from jaxpool._functional import max_unpool1d as max_unpool1d
from jaxpool._functional import max_unpool2d as max_unpool2d
from jaxpool._functional import max_unpool3d as max_unpool3d
from jaxpool._functional import min_pool1d as min_pool1d
from jaxpool._functional import min_pool2d as min_pool2d
from jaxpool._functional import min_pool3d as min_pool3d
from jaxpool._geometry import pool_output_shape as pool_output_shape
from jaxpool._hybrid import gated_pool as gated_pool
from jaxpool._hybrid import gem_pool as gem_pool
from jaxpool._hybrid import global_avg_max_pool as global_avg_max_pool
from jaxpool._hybrid import global_cat_avg_max_pool as global_cat_avg_max_pool
from jaxpool._hybrid import global_hybrid_pool as global_hybrid_pool
from jaxpool._hybrid import hybrid_pool1d as hybrid_pool1d
from jaxpool._hybrid import hybrid_pool2d as hybrid_pool2d
from jaxpool._hybrid import hybrid_pool3d as hybrid_pool3d
from jaxpool._hybrid import soft_pool as soft_pool
from jaxpool._kernels import kernel_family as kernel_family
from jaxpool._kernels import kernels as kernels
from jaxpool._learnable import AttentionHybridPool as AttentionHybridPool
from jaxpool._learnable import AvgMaxPool as AvgMaxPool
from jaxpool._learnable import CatAvgMaxPool as CatAvgMaxPool
from jaxpool._learnable import GatedPool as GatedPool
from jaxpool._learnable import GeMPool as GeMPool
from jaxpool._learnable import HybridPool as HybridPool
from jaxpool._learnable import SoftPool as SoftPool
from jaxpool._linen import AdaptiveAvgPool as AdaptiveAvgPool
from jaxpool._linen import AdaptiveMaxPool as AdaptiveMaxPool
from jaxpool._linen import AvgPool as AvgPool
from jaxpool._linen import FractionalMaxPool as FractionalMaxPool
from jaxpool._linen import GlobalAvgPool as GlobalAvgPool
from jaxpool._linen import GlobalMaxPool as GlobalMaxPool
from jaxpool._linen import LPPool as LPPool
from jaxpool._linen import MaxPool as MaxPool
from jaxpool._pyramid import spatial_pyramid_pool as spatial_pyramid_pool
from jaxpool._roi_align import roi_align as roi_align
from jaxpool._vision_modules import BlurPool as BlurPool
from jaxpool._vision_modules import MaxBlurPool as MaxBlurPool
from jaxpool._vision_modules import RoIAlign as RoIAlign
from jaxpool._vision_modules import SpatialPyramidPool as SpatialPyramidPool

try:  # declared once, in pyproject.toml; read from the installed distribution's metadata
    __version__ = _metadata.version("jaxpool")
except _metadata.PackageNotFoundError:  # a source checkout on sys.path, never installed
    __version__ = "0+unknown"

__all__ = (
    # Functional ops (torch.nn.functional names).
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "min_pool1d",
    "min_pool2d",
    "min_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "lp_pool1d",
    "lp_pool2d",
    "lp_pool3d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "global_avg_pool",
    "global_max_pool",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "fractional_max_pool2d",
    "fractional_max_pool3d",
    "pool_output_shape",
    # Mixed and learnable pooling (functional).
    "hybrid_pool1d",
    "hybrid_pool2d",
    "hybrid_pool3d",
    "global_hybrid_pool",
    "gated_pool",
    "gem_pool",
    "soft_pool",
    "global_avg_max_pool",
    "global_cat_avg_max_pool",
    # Vision pooling: anti-aliased (blur) pooling, RoIAlign, spatial pyramid pooling.
    "blur_pool1d",
    "blur_pool2d",
    "blur_pool3d",
    "max_blur_pool1d",
    "max_blur_pool2d",
    "max_blur_pool3d",
    "roi_align",
    "spatial_pyramid_pool",
    # Attention pooling (functional; timm's AttentionPoolLatent and AttentionPool2d).
    "attention_pool_latent",
    "attention_pool2d",
    # Kernel families (lax.reduce_window on GPU/TPU, CPU-tuned kernels on CPU).
    "kernels",
    "kernel_family",
    # Flax linen modules.
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
)
