"""What a jaxpool module does besides holding parameters, written once for linen and NNX.

A linen module (``jaxpool/_linen.py``, ``_learnable.py``) and its NNX twin
(``jaxpool/nnx``) have the same configuration (names, defaults) and hand it, with the
parameters they hold, to the functions here: the check of the configuration at
construction (:func:`check_config`, over :func:`jaxpool._geometry.check_pooling_config`),
the call of the op (:func:`pool`), the attention and the mixes of the learnable
modules, the parameter shapes and the default initialisers. The modules make the
parameters (``self.param`` in linen, ``nnx.Param`` in NNX) and nothing else, so the two
APIs compute with the same code. Nothing here imports Flax.

How to add a module
-------------------
A module is its configuration plus the op it calls. The op comes first, at the ops
floor (``jaxpool/_<what it does>.py``), with torch's argument names; the module's
configuration uses the op's names, so :func:`pool` passes each one by name
(``spatial_dims`` gets the module's rank). Then, in both APIs:

* linen (``jaxpool/_linen.py`` or a file of its own): subclass
  :class:`jaxpool._linen.PoolingModule`, declare the fields (typed, with torch's
  defaults) and ``op``::

      class BlurPool(PoolingModule):
          \"\"\"... Example: ... Attributes: ...\"\"\"

          kernel_size: Size
          stride: int | Size = 2
          channels_first: bool = False

          op = rules.BLUR_POOL  # {rank: op}, or staticmethod(op) for a rank-free op

* NNX (``jaxpool/nnx``): subclass :class:`jaxpool.nnx._common.PoolingModule`; its
  ``__init__`` takes the same arguments (flags keyword-only) and hands them to
  :func:`jaxpool.nnx._common.configure`::

      class BlurPool(PoolingModule):
          \"\"\"The NNX twin of :class:`jaxpool.BlurPool`. Example: ...\"\"\"

          op = rules.BLUR_POOL

          def __init__(self, kernel_size: Size, stride: int | Size = 2, *,
                       channels_first: bool = False):
              configure(self, locals())

``configure(self, locals())`` comes first in ``__init__``, while ``locals()`` holds just
the arguments; it stores each one (lists frozen to tuples) but ``rngs``.

The base checks the configuration at construction (every argument
:func:`jaxpool._geometry.check_pooling_config` knows by name; give a new kind of
argument its rule there), stores the rank once (the op's when its table has one rank,
as ``ROI_ALIGN``; else from ``kernel_size``, ``spatial_dims`` for a global form, or
``output_size``; a module with none of them declares ``spatial_dims``), and its
``__call__(x, **options)`` calls the op: every configuration entry whose name is one of
the op's parameters, and the call's keyword arguments (``mask=...``) as they are. So a
field named like an op parameter must be that parameter; a field the op does not take
(``rng_collection``, ``param_dtype``) is the module's own. To document a call argument,
or to take a second input, override ``__call__`` in one line: ``def __call__(self, x, *,
mask=None): return super().__call__(x, mask=mask)``; RoIAlign's boxes: ``def
__call__(self, x, boxes): return super().__call__(x, boxes=boxes)``. A module with
parameters makes them in its own ``__call__`` (linen, ``@nn.compact``) or ``__init__``
(NNX) and passes them to :func:`pool` (``pool(self, x, alpha=...)``) or to a function
here that both APIs call. Then: the name in ``jaxpool/__init__.py`` and
``jaxpool/nnx/__init__.py``, a twin test (``tests/test_nnx_pooling.py`` has one for a
module defined in the test itself), and the docs.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxpool import _adaptive as adaptive
from jaxpool import _antialias as blur
from jaxpool import _attention_pool as attention
from jaxpool import _functional as functional
from jaxpool import _geometry as geometry
from jaxpool import _hybrid as hybrid
from jaxpool import _roi_align as roi
from jaxpool._geometry import as_real

# A module's op: one function, or one per spatial rank.
Op = Callable[..., Any] | Mapping[int, Callable[..., Any]]

# The types of the modules' arguments, as linen's fields and NNX's arguments annotate them.
Size = Sequence[int]
OptionalSize = Sequence[int | None]
PaddingLike = int | Sequence[int] | str | Sequence[tuple[int, int]]
Initializer = Callable[..., Any]
Dtype = Any

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
BLUR_POOL = {1: blur.blur_pool1d, 2: blur.blur_pool2d, 3: blur.blur_pool3d}
MAX_BLUR_POOL = {1: blur.max_blur_pool1d, 2: blur.max_blur_pool2d, 3: blur.max_blur_pool3d}
ROI_ALIGN = {2: roi.roi_align}  # one rank: output_size may be an int, as torchvision's

# Default initialisers: a mix logit and gate weights of 0 (sigmoid 0.5, an even mix of
# max and mean); GeM's power starts at 3 (timm's).
MIX_LOGIT_INIT = jax.nn.initializers.zeros
GATE_INIT = jax.nn.initializers.zeros
GEM_INITIAL_P = 3.0

# Options of the modules (not of the ops) that are flags.
MODULE_FLAGS = ("per_channel", "learn_p")


def module_kind(where: Any) -> str:
    """A module's class name (linen and NNX twins share it), for messages."""
    return where if isinstance(where, str) else type(where).__name__


# ----------------------------------------------------------------------------------
# Configuration: read, checked and its rank, the same way in both APIs


def configuration(module: Any) -> dict[str, Any]:
    """A module's configuration by name: the fields of a linen module (a dataclass), the
    constructor's arguments of an NNX module (which stores each under its name)."""
    return {name: getattr(module, name) for name in _configuration_names(type(module))}


_NAMES: dict[type, tuple[str, ...]] = {}


def _configuration_names(cls: type) -> tuple[str, ...]:
    if cls not in _NAMES:
        if dataclasses.is_dataclass(cls):  # linen; parent and name are Flax's own fields
            names = [f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")]
        else:  # NNX: the class's own __init__ (its metaclass's __call__ hides it)
            names = [name for name in inspect.signature(cls.__init__).parameters  # type: ignore[misc]
                     if name not in ("self", "rngs")]
        _NAMES[cls] = tuple(names)
    return _NAMES[cls]


def spatial_rank(where: Any, name: str, value: Any, ranks: Sequence[int] = (1, 2, 3)) -> int:
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


def config_rank(where: Any, config: Mapping[str, Any], ranks: Sequence[int] = (1, 2, 3)) -> int:
    """The rank a configuration sets: the op's, when it has only one (RoIAlign's 2, so
    its sizes may be ints); else ``len(kernel_size)``; ``spatial_dims`` in the global
    form (``kernel_size=None``) of a module that has one; ``len(output_size)`` for
    adaptive pooling.

    Raises:
      TypeError: for a configuration with none of the three (a module's definition
        must give one), or a size that is not a tuple.
      ValueError: for a rank not in ``ranks``.
    """
    if len(ranks) == 1:
        return ranks[0]
    kernel_size = config.get("kernel_size")
    if "kernel_size" in config and (kernel_size is not None or "spatial_dims" not in config):
        return spatial_rank(where, "kernel_size", kernel_size, ranks)
    if "spatial_dims" in config:
        return geometry.check_spatial_dims(config["spatial_dims"], module_kind(where))
    if "output_size" in config:
        return spatial_rank(where, "output_size", config["output_size"], ranks)
    raise TypeError(
        f"{module_kind(where)}: a jaxpool module's rank comes from kernel_size, spatial_dims "
        f"or output_size, and its configuration has none of them: {sorted(config)}"
    )


def check_config(module: Any) -> int:
    """Checks a module's configuration at construction and returns its rank.

    The rank (:func:`config_rank`, among the op's ranks), every pooling argument
    (:func:`jaxpool._geometry.check_pooling_config`, with the module's name in the
    messages), the module's own flags and the attention's ``reduction``.

    Raises:
      TypeError, ValueError: for a configuration the op or the module refuses.
    """
    kind = module_kind(module)
    config = configuration(module)
    op = type(module).op
    n = config_rank(kind, config, tuple(op) if isinstance(op, Mapping) else (1, 2, 3))
    geometry.check_pooling_config(kind, n, config)
    if op is BLUR_POOL or op is MAX_BLUR_POOL:
        # The window rule takes stride=None (torch's "the kernel size"); kornia's blur does not.
        geometry.check_positive_sizes(kind, n, "stride", config["stride"])
    for name in MODULE_FLAGS:
        if name in config:
            geometry.as_bool(config[name], name, kind)
    if "reduction" in config:
        _reduction(kind, config["reduction"])
    if "rng_collection" in config and not isinstance(config["rng_collection"], str):
        raise TypeError(
            f"{kind}: rng_collection must be a str, but got {config['rng_collection']!r}"
        )
    return n


@functools.cache
def _parameters(op: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(op).parameters)


def pool(module: Any, x: ArrayLike, **options: Any) -> Any:
    """``module.op`` on ``x``: every configuration entry the op takes, by name, with
    ``spatial_dims`` set to the module's rank, and ``options`` (the call's keyword
    arguments, parameters) as they are.

    ``module`` is a linen or NNX module whose constructor stored its rank
    (:func:`check_config`) as ``_rank``.
    """
    rank = module._rank
    op = type(module).op
    function = op[rank] if isinstance(op, Mapping) else op
    accepted = _parameters(function)
    arguments = {name: value for name, value in configuration(module).items() if name in accepted}
    if "spatial_dims" in accepted:
        arguments["spatial_dims"] = rank
    return function(x, **arguments, **options)


# ----------------------------------------------------------------------------------
# Shapes


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
    x: ArrayLike, alpha: ArrayLike, kernel_size=None, stride=None, padding=0, ceil_mode=False,
    count_include_pad=True, *, spatial_dims: int, keepdims: bool, channels_first: bool,
) -> jax.Array:
    """``alpha * max + (1 - alpha) * mean`` over windows, or over the whole map when
    ``kernel_size`` is None: the op of HybridPool and AttentionHybridPool, ``alpha`` as
    :func:`jaxpool.hybrid_pool2d` takes it."""
    if kernel_size is None:
        return hybrid.global_hybrid_pool(
            x, alpha, spatial_dims=spatial_dims, keepdims=keepdims, channels_first=channels_first
        )
    return HYBRID_POOL[spatial_dims](
        x, alpha, kernel_size, stride, padding, ceil_mode, count_include_pad,
        channels_first=channels_first,
    )


def learned_mix(module: Any, x: ArrayLike, mix_logit: ArrayLike, **options: Any) -> jax.Array:
    """HybridPool: the hybrid mix with ``alpha = sigmoid(mix_logit)``."""
    return pool(module, x, alpha=jax.nn.sigmoid(mix_logit), **options)


def _reduction(kind: str, reduction: Any) -> int:
    value = geometry.as_int(reduction, "reduction", kind)
    if value < 1:
        raise ValueError(f"{kind}: reduction must be at least 1, but got reduction={reduction!r}")
    return value


def attention_hidden_features(where: Any, channels: int, reduction: Any) -> int:
    """Units of the attention's hidden layer: ``max(1, C // reduction)`` (PyTorch
    ``HybridPoolingWithAttention``'s ``C // 4`` is 0 for ``C < 4``); ``reduction`` must
    be an int >= 1."""
    return max(1, channels // _reduction(module_kind(where), reduction))


def attention_mix(
    module: Any, x: ArrayLike, squeeze: Callable[[jax.Array], jax.Array],
    excite: Callable[[jax.Array], jax.Array], **options: Any,
) -> jax.Array:
    """AttentionHybridPool given its two dense layers (linen's or NNX's): the hybrid mix
    with ``alpha = sigmoid(excite(relu(squeeze(m))))``, ``m`` the input's mean over the
    map, one ``alpha`` per example and channel ``(*batch, C)``."""
    n, channels_first = module._rank, module.channels_first
    context = adaptive.global_avg_pool(x, spatial_dims=n, channels_first=channels_first)
    attention = jax.nn.sigmoid(excite(jax.nn.relu(squeeze(context))))
    if module.kernel_size is not None or module.keepdims:
        attention = expand_to_input_rank(attention, n, channels_first)
    return pool(module, x, alpha=attention, **options)


def gate_shape(
    where: Any, kernel_size: Any, n: int, channels: int | None, per_channel: bool
) -> tuple[int, ...]:
    """GatedPool's ``gate_weight``: the window's shape, plus ``(C,)`` per channel."""
    kernel = geometry.as_tuple(kernel_size, n, "kernel_size", module_kind(where))
    return (*kernel, _per_channel(where, channels, "gate_weight")) if per_channel else kernel


def gem_power(learned: ArrayLike | None, initial_p: Any, param_dtype: Any) -> jax.Array:
    """GeM's ``p``: the parameter, or the constant ``initial_p`` when it is not learned."""
    return jnp.asarray(initial_p, param_dtype) if learned is None else jnp.asarray(learned)


def generalised_mean(
    module: Any, x: ArrayLike, learned: ArrayLike | None, **options: Any
) -> jax.Array:
    """GeMPool given its parameter ``p`` (None when not learned: the constant
    ``initial_p``)."""
    return pool(module, x, p=gem_power(learned, module.initial_p, module.param_dtype), **options)


def gem_p_init(initial_p: Any):
    """The initialiser of GeM's ``p``: the constant ``initial_p``."""
    return jax.nn.initializers.constant(initial_p)


# ----------------------------------------------------------------------------------
# Attention pooling (timm's AttentionPoolLatent and AttentionPool2d): the constructor's
# options, checked once; the parameters' shapes and timm's initialisers; the op's options


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One parameter: its shape and initialiser ``init(key, shape, dtype)``."""

    shape: tuple[int, ...]
    init: Callable[..., jax.Array]


SpecTree = dict[str, Any]  # nested dicts of ParamSpec


def _torch_uniform(fan_in: int) -> Callable[..., jax.Array]:
    """torch's default ``nn.Linear`` init: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, for
    the weight and the bias alike."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _trunc_normal(std: float, *, absolute_bounds: bool) -> Callable[..., jax.Array]:
    """timm's truncated normals at ``[-2, 2]``: ``trunc_normal_tf_`` truncates in units
    of the standard deviation, ``trunc_normal_`` at the absolute values -2 and 2."""
    bound = 2.0 / std if absolute_bounds else 2.0
    return jax.nn.initializers.truncated_normal(std, lower=-bound, upper=bound)


def _linear_spec(in_features: int, out_features: int, bias: bool, kernel_init=None,
                 bias_init=None) -> SpecTree:
    """A Linear layer's ``kernel (in, out)`` and ``bias (out,)``; torch's default init
    unless given."""
    spec = {"kernel": ParamSpec((in_features, out_features),
                                kernel_init or _torch_uniform(in_features))}
    if bias:
        spec["bias"] = ParamSpec((out_features,), bias_init or _torch_uniform(in_features))
    return spec


def _norm_spec(kind: str, width: int) -> SpecTree:
    """torch's ``LayerNorm`` (scale 1, bias 0) or timm's ``RmsNorm`` (scale 1)."""
    spec = {"scale": ParamSpec((width,), jax.nn.initializers.ones)}
    if kind == "layernorm":
        spec["bias"] = ParamSpec((width,), jax.nn.initializers.zeros)
    return spec


def init_parameters(key: jax.Array, spec: Any, dtype: Any) -> Any:
    """Initialises a ParamSpec, or a tree of them (a key per entry, in sorted order)."""
    if isinstance(spec, ParamSpec):
        return spec.init(key, spec.shape, dtype)
    names = sorted(spec)
    keys = jax.random.split(key, len(names))
    return {name: init_parameters(keys[i], spec[name], dtype) for i, name in enumerate(names)}


def spec_shapes(spec: Any) -> Any:
    """The shapes of a ParamSpec tree (for messages and tests)."""
    if isinstance(spec, ParamSpec):
        return spec.shape
    return {name: spec_shapes(entry) for name, entry in spec.items()}


def _positive_int(where: str, name: str, value: Any, *, allow_none: bool = False,
                  minimum: int = 1) -> int | None:
    if value is None and allow_none:
        return None
    count = geometry.as_int(value, name, where)
    if count < minimum:
        raise ValueError(f"{where}: {name} must be at least {minimum}, but got {name}={value!r}")
    return count


def _no_dropout(where: str, name: str, value: Any) -> None:
    rate = as_real(value, name, where)
    if rate != 0:
        raise ValueError(
            f"{where}: {name}={value!r}: dropout is not supported (it only acts in training, "
            f"and these modules have no training mode); pass {name}=0.0"
        )


def channel_width(where: Any, x: ArrayLike, channels_first: bool, low_rank: int = 3) -> int:
    """The channel count of an input ``(N, *spatial, C)`` (``(N, C, *spatial)``)."""
    shape = tuple(jnp.shape(x))
    if len(shape) < low_rank:
        layout = "(N, C, *spatial)" if channels_first else "(N, *spatial, C)"
        raise ValueError(
            f"{module_kind(where)}: expected an input of shape {layout} with at least "
            f"{low_rank} dimensions, but got shape {shape}"
        )
    return shape[1] if channels_first else shape[-1]


def check_input_width(where: Any, x: ArrayLike, channels_first: bool, expected: int) -> None:
    """The input's channel count must be the ``in_features`` the parameters were made for."""
    width = channel_width(where, x, channels_first)
    if width != expected:
        raise ValueError(
            f"{module_kind(where)}: expected an input with in_features={expected} channels, but "
            f"got shape {tuple(jnp.shape(x))} ({width} channels)"
        )


def _feat_size_for_abs(kind: str, feat_size: int | None) -> int:
    if feat_size is None:
        raise ValueError(
            f"{kind}: pos_embed='abs' learns one embedding per token, so it needs "
            "feat_size, the number of tokens"
        )
    return feat_size


@dataclasses.dataclass(frozen=True)
class LatentPoolConfig:
    """The checked options of an ``AttentionPoolLatent``, timm's names in timm's order.

    No defaults here: every module passes all of its options, and the defaults are the
    modules' own (:class:`jaxpool.AttentionPoolLatent`'s fields and its NNX twin's
    arguments, which tests/test_api.py holds equal)."""

    out_features: int | None
    embed_dim: int | None
    num_heads: int
    feat_size: int | None
    mlp_ratio: float
    qkv_bias: bool
    q_proj: bool
    qk_norm: bool
    latent_len: int
    latent_dim: int | None
    pos_embed: str
    pool_type: str
    norm_layer: str | None
    act_layer: str
    drop: float
    norm_eps: float

    def specs(self, where: Any, in_features: int) -> SpecTree:
        """The parameters for an input of ``in_features`` channels, as timm makes them."""
        kind = module_kind(where)
        embed = self.embed_dim or in_features
        if embed != in_features:
            raise ValueError(
                f"{kind}: embed_dim must equal in_features (timm's keys and values are a "
                f"Linear of embed_dim inputs applied to the input itself, and its forward "
                f"fails otherwise), but got embed_dim={self.embed_dim} for in_features="
                f"{in_features}"
            )
        attention.check_num_heads(self.num_heads, embed, kind)
        head_dim = embed // self.num_heads
        latent_dim = self.latent_dim or embed
        if not self.q_proj and latent_dim != embed:
            raise ValueError(
                f"{kind}: q_proj=False uses the latent directly as the query, so latent_dim "
                f"must equal embed_dim, but got latent_dim={latent_dim}, embed_dim={embed}"
            )
        norm = self.norm_layer or "layernorm"
        spec: SpecTree = {
            "latent": ParamSpec((self.latent_len, latent_dim),
                                _trunc_normal(latent_dim**-0.5, absolute_bounds=False)),
            "kv": _linear_spec(embed, 2 * embed, self.qkv_bias),
        }
        if self.pos_embed == "abs":
            spec["pos_embed"] = ParamSpec(
                (_feat_size_for_abs(kind, self.feat_size), in_features),
                _trunc_normal(in_features**-0.5, absolute_bounds=False),
            )
        if self.q_proj:
            spec["q"] = _linear_spec(latent_dim, embed, self.qkv_bias)
        if self.qk_norm:
            spec["q_norm"] = _norm_spec(norm, head_dim)
            spec["k_norm"] = _norm_spec(norm, head_dim)
        out = in_features if self.out_features is None else self.out_features
        if out > 0:
            hidden = int(out * self.mlp_ratio) or out  # timm's Mlp: hidden or in_features
            spec["proj"] = _linear_spec(embed, out, True)
            spec["mlp"] = {"fc1": _linear_spec(out, hidden, True),
                           "fc2": _linear_spec(hidden, out, True)}
            if self.norm_layer is not None:
                spec["norm"] = _norm_spec(norm, out)
        return spec

    def op_options(self) -> dict[str, Any]:
        """The keyword options of :func:`jaxpool.attention_pool_latent`."""
        return dict(num_heads=self.num_heads, pool_type=self.pool_type,
                    norm_layer=self.norm_layer or "layernorm", norm_eps=self.norm_eps,
                    act_layer=self.act_layer)


LATENT_POOL_OPTIONS = tuple(field.name for field in dataclasses.fields(LatentPoolConfig))
"""timm's ``AttentionPoolLatent`` options (after ``in_features``), plus ``norm_eps``."""


def latent_pool_config(where: Any, **options: Any) -> LatentPoolConfig:
    """Checks timm's ``AttentionPoolLatent`` options (see :data:`LATENT_POOL_OPTIONS`);
    every refusal names the option and its value."""
    kind = module_kind(where)
    unknown = sorted(set(options) - set(LATENT_POOL_OPTIONS))
    if unknown:
        raise TypeError(f"{kind}: unknown options {unknown}")
    config = LatentPoolConfig(**options)
    _positive_int(kind, "out_features", config.out_features, allow_none=True, minimum=0)
    _positive_int(kind, "embed_dim", config.embed_dim, allow_none=True)
    _positive_int(kind, "num_heads", config.num_heads)
    _positive_int(kind, "latent_len", config.latent_len)
    _positive_int(kind, "latent_dim", config.latent_dim, allow_none=True)
    for flag in ("qkv_bias", "q_proj", "qk_norm"):
        geometry.as_bool(getattr(config, flag), flag, kind)
    ratio = as_real(config.mlp_ratio, "mlp_ratio", kind)
    if ratio < 0:
        raise ValueError(f"{kind}: mlp_ratio must be >= 0, but got mlp_ratio={config.mlp_ratio!r}")
    attention.check_choice(config.pos_embed, "pos_embed", ("", "abs"), kind)
    if config.pos_embed == "abs":
        _feat_size_for_abs(kind, config.feat_size)
    _positive_int(kind, "feat_size", config.feat_size, allow_none=True)
    attention.check_choice(config.pool_type, "pool_type", attention.POOL_TYPES_LATENT, kind)
    attention.check_choice(config.norm_layer, "norm_layer", (None, *attention.NORM_LAYERS), kind)
    attention.check_choice(config.act_layer, "act_layer", tuple(attention.ACTIVATIONS), kind)
    attention.check_eps(config.norm_eps, kind)
    _no_dropout(kind, "drop", config.drop)
    return config


@dataclasses.dataclass(frozen=True)
class Pool2dConfig:
    """The checked options of an ``AttentionPool2d``, timm's names in timm's order; the
    defaults are the modules' own, as :class:`LatentPoolConfig`'s."""

    feat_size: int | tuple[int, int]
    out_features: int | None
    embed_dim: int | None
    head_dim: int | None
    num_heads: int | None
    qkv_bias: bool
    qkv_separate: bool
    pool_type: str
    class_token: bool
    drop_rate: float

    def heads(self, where: Any, embed: int) -> int:
        """timm's rule: ``num_heads`` if given (then ``head_dim = embed_dim //
        num_heads``), else ``embed_dim // head_dim``."""
        kind = module_kind(where)
        if self.num_heads is not None:
            return attention.check_num_heads(self.num_heads, embed, kind)
        if self.head_dim is None:
            raise ValueError(f"{kind}: pass num_heads or head_dim (both are None)")
        if embed % self.head_dim:
            raise ValueError(
                f"{kind}: embed_dim={embed} must be divisible by head_dim={self.head_dim} "
                "(or pass num_heads)"
            )
        return embed // self.head_dim

    def specs(self, where: Any, in_features: int) -> SpecTree:
        """The parameters for an input of ``in_features`` channels, as timm makes them."""
        kind = module_kind(where)
        embed = self.embed_dim or in_features
        self.heads(kind, embed)
        if self.class_token and embed != in_features:
            raise ValueError(
                f"{kind}: class_token=True prepends a token of embed_dim channels to the "
                f"input's in_features channels, so they must be equal, but got embed_dim="
                f"{embed}, in_features={in_features}"
            )
        # timm's init_weights: truncated normals (absolute bounds) of std in_features**-0.5
        # for the attention's weights and the positional embedding, zero biases.
        weight_init = _trunc_normal(in_features**-0.5, absolute_bounds=True)
        zeros = jax.nn.initializers.zeros
        grid = attention.check_feat_size(self.feat_size, kind)
        spec: SpecTree = {
            "pos_embed": ParamSpec((1 + grid[0] * grid[1], in_features), weight_init),
        }
        if self.qkv_separate:
            for name in ("q", "k", "v"):
                spec[name] = _linear_spec(in_features, embed, self.qkv_bias, weight_init, zeros)
        else:
            spec["qkv"] = _linear_spec(in_features, 3 * embed, self.qkv_bias, weight_init,
                                       zeros)
        if self.class_token:
            spec["cls_token"] = ParamSpec((embed,), zeros)
        if self.out_features != 0:
            out = in_features if self.out_features is None else self.out_features
            spec["proj"] = _linear_spec(embed, out, True)
        return spec

    def op_options(self, where: Any, in_features: int) -> dict[str, Any]:
        """The keyword options of :func:`jaxpool.attention_pool2d`."""
        return dict(num_heads=self.heads(where, self.embed_dim or in_features),
                    feat_size=self.feat_size, pool_type=self.pool_type)


POOL_2D_OPTIONS = tuple(field.name for field in dataclasses.fields(Pool2dConfig))
"""timm's ``AttentionPool2d`` options (after ``in_features``)."""


def pool_2d_config(where: Any, **options: Any) -> Pool2dConfig:
    """Checks timm's ``AttentionPool2d`` options (see :data:`POOL_2D_OPTIONS`)."""
    kind = module_kind(where)
    unknown = sorted(set(options) - set(POOL_2D_OPTIONS))
    if unknown:
        raise TypeError(f"{kind}: unknown options {unknown}")
    config = Pool2dConfig(**options)
    # A tuple: NNX keeps the configuration in its (hashable) graph definition.
    grid = attention.check_feat_size(config.feat_size, kind)
    config = dataclasses.replace(config, feat_size=grid)
    _positive_int(kind, "out_features", config.out_features, allow_none=True, minimum=0)
    _positive_int(kind, "embed_dim", config.embed_dim, allow_none=True)
    _positive_int(kind, "head_dim", config.head_dim, allow_none=True)
    _positive_int(kind, "num_heads", config.num_heads, allow_none=True)
    for flag in ("qkv_bias", "qkv_separate", "class_token"):
        geometry.as_bool(getattr(config, flag), flag, kind)
    attention.check_choice(config.pool_type, "pool_type", attention.POOL_TYPES_2D, kind)
    _no_dropout(kind, "drop_rate", config.drop_rate)
    return config
