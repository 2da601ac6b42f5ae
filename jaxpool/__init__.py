"""jaxpool: PyTorch-exact pooling for JAX and Flax."""
from jaxpool._functional import (
    avg_pool1d, avg_pool2d, avg_pool3d, max_pool1d, max_pool2d, max_pool3d,
    min_pool1d, min_pool2d, min_pool3d, lp_pool1d, lp_pool2d, lp_pool3d,
    max_unpool1d, max_unpool2d, max_unpool3d, fractional_max_pool2d, fractional_max_pool3d,
)
from jaxpool._geometry import pool_output_shape
from jaxpool._adaptive import (
    adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d,
    adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d,
    global_avg_pool, global_max_pool,
)
