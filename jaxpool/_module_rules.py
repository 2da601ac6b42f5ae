"""What a jaxpool module computes besides holding parameters, shared by linen and NNX.

A linen module (``jaxpool/_linen.py``, ``_learnable.py``) and its NNX twin
(``jaxpool/nnx``) hold the same parameters and hand them, with their configuration, to
the functions here: the op of each rank, the rank and shape rules, the checks and the
default initialisers. Neither API computes anything on its own, so the two cannot
disagree. Nothing here imports Flax.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxpool import _adaptive as adaptive
from jaxpool import _functional as functional
from jaxpool import _geometry as geometry
from jaxpool import _hybrid as hybrid

# The ops of each spatial rank.
MAX_POOL = {1: functional.max_pool1d, 2: functional.max_pool2d, 3: functional.max_pool3d}
AVG_POOL = {1: functional.avg_pool1d, 2: functional.avg_pool2d, 3: functional.avg_pool3d}
LP_POOL = {1: functional.lp_pool1d, 2: functional.lp_pool2d, 3: functional.lp_pool3d}
ADAPTIVE_AVG_POOL = {
    1: adaptive.adaptive_avg_pool1d,
    2: adaptive.adaptive_avg_pool2d,
    3: adaptive.adaptive_avg_pool3d,
}
ADAPTIVE_MAX_POOL = {
    1: adaptive.adaptive_max_pool1d,
    2: adaptive.adaptive_max_pool2d,
    3: adaptive.adaptive_max_pool3d,
}
FRACTIONAL_MAX_POOL = {2: functional.fractional_max_pool2d, 3: functional.fractional_max_pool3d}
HYBRID_POOL = {1: hybrid.hybrid_pool1d, 2: hybrid.hybrid_pool2d, 3: hybrid.hybrid_pool3d}

# Default initialisers: a mix logit and gate weights of 0 (sigmoid 0.5, an even mix of
# max and mean); GeM's power starts at 3 (timm's).
MIX_LOGIT_INIT = jax.nn.initializers.zeros
GATE_INIT = jax.nn.initializers.zeros
GEM_INITIAL_P = 3.0


def module_kind(where: Any) -> str:
    """A module's class name (linen and NNX twins share it), for messages."""
    return where if isinstance(where, str) else type(where).__name__


def spatial_rank(where: Any, name: str, value: Any, ranks=(1, 2, 3)) -> int:
    """The number of spatial dims, read from a size argument that must be a tuple.

    Args:
      where: the module (or its class name), for messages.
      name: the argument's name (``kernel_size``, ``output_size``).
      value: its value; its length is the rank.
      ranks: the accepted ranks.

    Raises:
      TypeError: if ``value`` is not a sequence (an int cannot say the rank).
      ValueError: if its length is not in ``ranks``.
    """
    kind = module_kind(where)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(
            f"{kind}: {name} must be a tuple with one entry per spatial dimension (its length "
            f"sets the rank), e.g. (2, 2) for 2D pooling, but got {name}={value!r}"
        )
    if len(value) not in ranks:
        raise ValueError(
            f"{kind}: {name} must have {' or '.join(map(str, ranks))} entries (one per spatial "
            f"dimension), but got {name}={value!r}"
        )
    return len(value)


def pooling_rank(where: Any, kernel_size: Any, spatial_dims: Any, keepdims: Any) -> int:
    """Rank of a module with a global form: ``len(kernel_size)``, or ``spatial_dims``
    when ``kernel_size`` is None (one window over the whole map)."""
    kind = module_kind(where)
    if kernel_size is None:
        return geometry.check_spatial_dims(spatial_dims, kind)
    hybrid.check_keepdims(keepdims, kernel_size, kind)
    return spatial_rank(kind, "kernel_size", kernel_size)


def channel_count(where: Any, x: ArrayLike, n: int, channels_first: bool) -> int:
    """The channel count of ``x`` (checks the input's rank first, with the op's message)."""
    shape = tuple(jnp.shape(x))
    geometry.spatial_axes(shape, n, channels_first, module_kind(where))
    return shape[len(shape) - n - 1] if channels_first else shape[-1]


def check_features(where: Any, name: str, value: Any) -> int:
    """A channel count given at construction: a positive int."""
    count = geometry.as_int(value, name, module_kind(where))
    if count < 1:
        raise ValueError(
            f"{module_kind(where)}: {name} must be at least 1, but got {name}={value!r}"
        )
    return count


def expand_to_input_rank(values: jax.Array, n: int, channels_first: bool) -> jax.Array:
    """``(*batch, C)`` -> ``(*batch, 1.., C)`` or ``(*batch, C, 1..)``, which broadcasts
    to pooled maps."""
    if channels_first:
        return values.reshape((*values.shape, *(1,) * n))
    return values.reshape((*values.shape[:-1], *(1,) * n, values.shape[-1]))


# ----------------------------------------------------------------------------------
# Learnable pooling: parameter shapes and the computation given the parameters


def _per_channel(where: Any, channels: int | None, name: str) -> int:
    if channels is None:  # the modules check it first, with their own message
        raise ValueError(f"{module_kind(where)}: a per-channel {name} needs the channel count")
    return channels


def mix_logit_shape(where: Any, channels: int | None, per_channel: bool) -> tuple[int, ...]:
    """HybridPool's ``mix_logit``: one per channel, or one for the layer."""
    return (_per_channel(where, channels, "mix_logit"),) if per_channel else ()


def hybrid_mix(
    x: ArrayLike, alpha: ArrayLike, n: int, kernel_size, stride, padding, ceil_mode,
    count_include_pad, keepdims: bool, channels_first: bool,
) -> jax.Array:
    """``alpha * max + (1 - alpha) * mean`` over windows, or over the whole map when
    ``kernel_size`` is None; ``alpha`` as :func:`jaxpool.hybrid_pool2d` takes it."""
    if kernel_size is None:
        return hybrid.global_hybrid_pool(
            x, alpha, spatial_dims=n, keepdims=keepdims, channels_first=channels_first
        )
    return HYBRID_POOL[n](
        x, alpha, kernel_size, stride, padding, ceil_mode, count_include_pad,
        channels_first=channels_first,
    )


def attention_hidden_features(where: Any, channels: int, reduction: Any) -> int:
    """Units of the attention's hidden layer: ``max(1, C // reduction)`` (the seed's
    ``C // 4`` is 0 for ``C < 4``); ``reduction`` must be an int >= 1."""
    kind = module_kind(where)
    value = geometry.as_int(reduction, "reduction", kind)
    if value < 1:
        raise ValueError(f"{kind}: reduction must be at least 1, but got reduction={reduction!r}")
    return max(1, channels // value)


def attention_context(x: ArrayLike, n: int, channels_first: bool) -> jax.Array:
    """What the attention sees: the input's mean over the map, ``(*batch, C)``."""
    return adaptive.global_avg_pool(x, spatial_dims=n, channels_first=channels_first)


def attention_mix(
    x: ArrayLike, attention: jax.Array, n: int, kernel_size, stride, padding, ceil_mode,
    count_include_pad, keepdims: bool, channels_first: bool,
) -> jax.Array:
    """The hybrid mix with a per-example, per-channel ``attention`` of shape ``(*batch, C)``."""
    if kernel_size is not None or keepdims:
        attention = expand_to_input_rank(attention, n, channels_first)
    return hybrid_mix(x, attention, n, kernel_size, stride, padding, ceil_mode,
                      count_include_pad, keepdims, channels_first)


def gate_shape(
    where: Any, kernel_size: Any, n: int, channels: int | None, per_channel: bool
) -> tuple[int, ...]:
    """GatedPool's ``gate_weight``: the window's shape, plus ``(C,)`` per channel."""
    kernel = geometry.as_tuple(kernel_size, n, "kernel_size", module_kind(where))
    return (*kernel, _per_channel(where, channels, "gate_weight")) if per_channel else kernel


def gem_power(learned: ArrayLike | None, initial_p: Any, param_dtype: Any) -> jax.Array:
    """GeM's ``p``: the parameter, or the constant ``initial_p`` when it is not learned."""
    return jnp.asarray(initial_p, param_dtype) if learned is None else jnp.asarray(learned)


def gem_p_init(initial_p: Any):
    """The initialiser of GeM's ``p``: the constant ``initial_p``."""
    return jax.nn.initializers.constant(initial_p)
