"""Convert PyTorch weights of pooling modules and their blocks into Flax variables.

PyTorch and Flax store the same layers differently:

* ``Conv{n}d.weight`` ``(O, I, *kernel)`` -> ``params/kernel`` ``(*kernel, I, O)``;
  ``Conv{n}d.bias`` -> ``params/bias``;
* ``Linear.weight`` ``(out, in)`` -> ``params/kernel`` ``(in, out)``; ``Linear.bias`` ->
  ``params/bias``;
* ``BatchNorm.weight`` / ``bias`` ``(C,)`` -> ``params/scale`` / ``params/bias``;
  ``running_mean`` / ``running_var`` -> ``batch_stats/mean`` / ``batch_stats/var``;
* ``HybridPooling.weight`` ``(1,)`` -> ``params/mix_logit`` ``()``;
* ``LayerNorm`` / timm's ``RmsNorm`` ``weight`` / ``bias`` -> ``params/scale`` / ``params/bias``.

(``num_batches_tracked`` has no Flax counterpart and is ignored.) The PyTorch modules of
the hybrid-pooling tutorial that jaxpool reproduces (see the README) map onto jaxpool's:
``HybridPooling`` -> :class:`jaxpool.HybridPool`, ``HybridPoolingWithAttention``
(``fc = Sequential(Linear, ReLU, Linear, Sigmoid)``) ->
:class:`jaxpool.AttentionHybridPool` (``fc.0`` -> ``squeeze``, ``fc.2`` -> ``excite``),
``HybridResNetBlock`` -> :class:`jaxpool.models.HybridResNetBlock`; timm's
``AttentionPoolLatent`` and ``AttentionPool2d`` -> :class:`jaxpool.AttentionPoolLatent`
and :class:`jaxpool.AttentionPool2d` (and their NNX twins).

Every function takes a ``state_dict`` (a mapping of names to torch tensors, NumPy or
JAX arrays) or a ``torch.nn.Module`` (its ``state_dict()`` is read), and an optional
``prefix`` for modules nested in a bigger model (``"layer1.0."``). torch is never
imported: tensors are recognised by their methods, so the conversion also works on
NumPy arrays saved elsewhere. Results are NumPy arrays (float32 stays float32;
bfloat16 tensors become ``ml_dtypes.bfloat16`` arrays), ready for ``apply``.

Example:
  >>> import numpy as np, jax.numpy as jnp, jaxpool
  >>> from jaxpool import torch_compat
  >>> state = {"weight": np.array([0.3], np.float32)}     # HybridPooling's state_dict
  >>> variables = torch_compat.hybrid_pool_variables(state)
  >>> variables
  {'params': {'mix_logit': array(0.3, dtype=float32)}}
  >>> y = jaxpool.HybridPool(kernel_size=(2, 2)).apply(variables, jnp.ones((1, 4, 4, 3)))
  >>> y.shape
  (1, 2, 2, 3)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "to_numpy",
    "state_dict_to_numpy",
    "conv_params",
    "linear_params",
    "batch_norm_variables",
    "hybrid_pool_variables",
    "attention_hybrid_pool_variables",
    "hybrid_resnet_block_variables",
    "attention_pool_latent_variables",
    "attention_pool_2d_variables",
    "BLOCK_LAYERS",
]

BLOCK_LAYERS = {
    "conv1": ("conv1", "conv"),
    "bn1": ("bn1", "batch_norm"),
    "conv2": ("conv2", "conv"),
    "bn2": ("bn2", "batch_norm"),
    "pool": ("pool", "attention_pool"),
    "shortcut_conv": ("shortcut.0", "conv"),  # only when in_channels != out_channels
    "shortcut_bn": ("shortcut.1", "batch_norm"),
}
"""The PyTorch ``HybridResNetBlock``: Flax submodule name -> (torch submodule name, layer
kind), as :func:`hybrid_resnet_block_variables` maps them; the two shortcut layers exist
only when the block changes the number of channels."""
_OPTIONAL_BLOCK_LAYERS = ("shortcut_conv", "shortcut_bn")


def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor, NumPy or JAX array (or Python number) as a NumPy array.

    torch tensors are detached and moved to the CPU; bfloat16 tensors, which NumPy
    cannot hold natively, become ``ml_dtypes.bfloat16`` arrays.

    Example:
      >>> from jaxpool import torch_compat
      >>> torch_compat.to_numpy([1.0, 2.0])
      array([1., 2.])
    """
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        tensor = value.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":
            import ml_dtypes

            return tensor.float().numpy().astype(ml_dtypes.bfloat16)
        return tensor.numpy().copy()
    return np.asarray(value)


def state_dict_to_numpy(state: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """The entries of a state_dict (or a module's) whose names start with ``prefix``.

    Args:
      state: a mapping of names to tensors/arrays, or an object with a
        ``state_dict()`` method (a ``torch.nn.Module``).
      prefix: keep only names starting with it, and strip it.

    Returns:
      ``{name without prefix: numpy array}``.

    Raises:
      TypeError: if ``state`` is neither a mapping nor has ``state_dict()``.

    Example:
      >>> import numpy as np
      >>> from jaxpool import torch_compat
      >>> torch_compat.state_dict_to_numpy({"a.w": np.ones(2), "b": 0}, prefix="a.")
      {'w': array([1., 1.])}
    """
    if not isinstance(state, Mapping) and callable(getattr(state, "state_dict", None)):
        state = state.state_dict()
    if not isinstance(state, Mapping):
        raise TypeError(
            "state must be a state_dict (a mapping of names to tensors or arrays) or a module "
            f"with a state_dict() method, but got {type(state).__name__}"
        )
    return {
        name[len(prefix):]: to_numpy(value)
        for name, value in state.items()
        if name.startswith(prefix)
    }


def _get(
    state: Mapping[str, np.ndarray], name: str, what: str, prefix: str, ndim: int | None = None
):
    """``state[name]`` (``state`` holds the names after ``prefix``), with clear errors."""
    if name not in state:
        found = ", ".join(prefix + key for key in sorted(state)) or "none"
        raise ValueError(
            f"{what}: the state_dict has no entry {prefix + name!r} (entries under "
            f"prefix {prefix!r}: {found})"
        )
    value = state[name]
    if ndim is not None and value.ndim != ndim:
        raise ValueError(
            f"{what}: {prefix + name!r} must have {ndim} dimensions, but got shape "
            f"{tuple(value.shape)}"
        )
    return value


def conv_params(state: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """``torch.nn.Conv{1,2,3}d`` -> ``flax.linen.Conv`` params.

    ``weight (O, I/groups, *kernel)`` becomes ``kernel (*kernel, I/groups, O)``;
    ``bias`` is copied when present.

    Args:
      state: the conv's state_dict (or a model's with ``prefix``), or the module.
      prefix: the conv's name in a bigger state_dict, with its dot (``"conv1."``).

    Returns:
      ``{'kernel': ..., 'bias': ...}`` (no ``bias`` if the conv has none).

    Raises:
      ValueError: if ``weight`` is missing or has fewer than 3 dimensions.

    Example:
      >>> import numpy as np
      >>> from jaxpool import torch_compat
      >>> params = torch_compat.conv_params({"weight": np.zeros((8, 3, 3, 3), np.float32)})
      >>> params["kernel"].shape
      (3, 3, 3, 8)
    """
    state = state_dict_to_numpy(state, prefix)
    weight = _get(state, "weight", f"conv_params(prefix={prefix!r})", prefix)
    if weight.ndim < 3:
        raise ValueError(
            f"conv_params(prefix={prefix!r}): 'weight' must have shape (O, I, *kernel), but got "
            f"shape {tuple(weight.shape)}"
        )
    params = {"kernel": np.ascontiguousarray(np.moveaxis(weight, (0, 1), (-1, -2)))}
    if "bias" in state:
        params["bias"] = _get(state, "bias", f"conv_params(prefix={prefix!r})", prefix, ndim=1)
    return params


def linear_params(state: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """``torch.nn.Linear`` -> ``flax.linen.Dense``: ``weight (out, in)`` -> ``kernel (in, out)``.

    Args:
      state: the layer's state_dict (or a model's with ``prefix``), or the module.
      prefix: the layer's name in a bigger state_dict, with its dot (``"fc.0."``).

    Returns:
      ``{'kernel': ..., 'bias': ...}`` (no ``bias`` if the layer has none).

    Raises:
      ValueError: if ``weight`` is missing or not 2-D.

    Example:
      >>> import numpy as np
      >>> from jaxpool import torch_compat
      >>> w = np.arange(6.0, dtype=np.float32).reshape(2, 3)      # Linear(3, 2)
      >>> torch_compat.linear_params({"weight": w})["kernel"].shape
      (3, 2)
    """
    state = state_dict_to_numpy(state, prefix)
    what = f"linear_params(prefix={prefix!r})"
    params = {"kernel": np.ascontiguousarray(_get(state, "weight", what, prefix, ndim=2).T)}
    if "bias" in state:
        params["bias"] = _get(state, "bias", what, prefix, ndim=1)
    return params


def batch_norm_variables(state: Any, prefix: str = "") -> tuple[dict, dict]:
    """``torch.nn.BatchNorm{1,2,3}d`` -> (params, batch_stats) of a Flax BatchNorm.

    ``weight``/``bias`` become ``scale``/``bias``; ``running_mean``/``running_var``
    become ``mean``/``var``. Works for ``flax.linen.BatchNorm`` and
    :class:`jaxpool.models.BatchNorm` (same variables). Layers built with
    ``affine=False`` have no params.

    Args:
      state: the layer's state_dict (or a model's with ``prefix``), or the module.
      prefix: the layer's name in a bigger state_dict, with its dot (``"bn1."``).

    Returns:
      ``(params, batch_stats)``: ``{'scale', 'bias'}`` and ``{'mean', 'var'}``.

    Raises:
      ValueError: if the running statistics are missing (``track_running_stats=False``).

    Example:
      >>> import numpy as np
      >>> from jaxpool import torch_compat
      >>> bn = {"weight": np.ones(4), "bias": np.zeros(4), "running_mean": np.zeros(4),
      ...       "running_var": np.ones(4), "num_batches_tracked": np.array(0)}
      >>> params, stats = torch_compat.batch_norm_variables(bn)
      >>> sorted(params), sorted(stats)
      (['bias', 'scale'], ['mean', 'var'])
    """
    state = state_dict_to_numpy(state, prefix)
    what = f"batch_norm_variables(prefix={prefix!r})"
    params = {}
    if "weight" in state:
        params["scale"] = _get(state, "weight", what, prefix, ndim=1)
    if "bias" in state:
        params["bias"] = _get(state, "bias", what, prefix, ndim=1)
    stats = {
        "mean": _get(state, "running_mean", what, prefix, ndim=1),
        "var": _get(state, "running_var", what, prefix, ndim=1),
    }
    return params, stats


def hybrid_pool_variables(state: Any, prefix: str = "", *, per_channel: bool = False) -> dict:
    """PyTorch ``HybridPooling`` -> :class:`jaxpool.HybridPool` variables.

    ``weight`` (the logit whose sigmoid weighs the maximum) becomes ``mix_logit``:
    shape ``()`` for a single weight (torch's ``(1,)``), or ``(C,)`` with
    ``per_channel=True`` (for ``HybridPool(per_channel=True)``).

    Args:
      state: the module's state_dict (or a model's with ``prefix``), or the module.
      prefix: the module's name in a bigger state_dict, with its dot.
      per_channel: keep the weight as a vector (flattened) even if it has one entry.

    Returns:
      ``{'params': {'mix_logit': ...}}``.

    Raises:
      ValueError: if ``weight`` is missing, or has several entries without
        ``per_channel=True``.

    Example:
      >>> import numpy as np
      >>> from jaxpool import torch_compat
      >>> torch_compat.hybrid_pool_variables({"weight": np.array([0.5, 1.0])}, per_channel=True)
      {'params': {'mix_logit': array([0.5, 1. ])}}
    """
    state = state_dict_to_numpy(state, prefix)
    weight = _get(state, "weight", f"hybrid_pool_variables(prefix={prefix!r})", prefix)
    if per_channel:
        return {"params": {"mix_logit": weight.reshape(-1)}}
    if weight.size != 1:
        raise ValueError(
            f"hybrid_pool_variables(prefix={prefix!r}): 'weight' has shape {tuple(weight.shape)}; "
            "a per-layer HybridPool takes one weight (pass per_channel=True for one per channel)"
        )
    return {"params": {"mix_logit": weight.reshape(())}}


def attention_hybrid_pool_variables(
    state: Any, prefix: str = "", *, squeeze: str = "fc.0", excite: str = "fc.2"
) -> dict:
    """PyTorch ``HybridPoolingWithAttention`` -> :class:`jaxpool.AttentionHybridPool` variables.

    The attention ``fc = Sequential(Linear(C, C/r), ReLU, Linear(C/r, C), Sigmoid)``
    maps to the Dense layers ``squeeze`` (``fc.0``) and ``excite`` (``fc.2``).

    Args:
      state: the module's state_dict (or a model's with ``prefix``), or the module.
      prefix: the module's name in a bigger state_dict, with its dot (``"pool."``).
      squeeze: the torch name of the first Linear; default ``"fc.0"``.
      excite: the torch name of the second Linear; default ``"fc.2"``.

    Returns:
      ``{'params': {'squeeze': {'kernel', 'bias'}, 'excite': {'kernel', 'bias'}}}``.

    Raises:
      ValueError: if a Linear's weight is missing or not 2-D.

    Example:
      >>> import numpy as np
      >>> from jaxpool import torch_compat
      >>> state = {"fc.0.weight": np.zeros((2, 8)), "fc.0.bias": np.zeros(2),
      ...          "fc.2.weight": np.zeros((8, 2)), "fc.2.bias": np.zeros(8)}
      >>> params = torch_compat.attention_hybrid_pool_variables(state)["params"]
      >>> params["squeeze"]["kernel"].shape, params["excite"]["kernel"].shape
      ((8, 2), (2, 8))
    """
    state = state_dict_to_numpy(state)
    return {
        "params": {
            "squeeze": linear_params(state, f"{prefix}{squeeze}."),
            "excite": linear_params(state, f"{prefix}{excite}."),
        }
    }


def hybrid_resnet_block_variables(
    state: Any, prefix: str = "", *, names: Mapping[str, str] | None = None
) -> dict:
    """PyTorch ``HybridResNetBlock`` -> :class:`jaxpool.models.HybridResNetBlock` variables.

    Converts ``conv1``, ``bn1``, ``conv2``, ``bn2``, the attention pool ``pool`` and,
    when present, the projection shortcut ``shortcut.0`` (1×1 conv) and
    ``shortcut.1`` (BatchNorm) (see :data:`BLOCK_LAYERS`).

    Args:
      state: the block's state_dict (or a model's with ``prefix``), or the module.
      prefix: the block's name in a bigger state_dict, with its dot (``"layer1.0."``).
      names: Flax submodule name -> torch submodule name, for the layers whose torch
        names differ from the tutorial's, e.g. ``{"pool": "attention"}``.

    Returns:
      ``{'params': ..., 'batch_stats': ...}`` for ``HybridResNetBlock.apply``.

    Raises:
      ValueError: if a required entry is missing or has the wrong rank, or ``names``
        holds an unknown Flax name.

    Example:
      >>> import numpy as np
      >>> from jaxpool import torch_compat
      >>> def bn(c):
      ...     return {"weight": np.ones(c), "bias": np.zeros(c),
      ...             "running_mean": np.zeros(c), "running_var": np.ones(c)}
      >>> state = {"conv1.weight": np.zeros((8, 8, 3, 3)), "conv1.bias": np.zeros(8),
      ...          "conv2.weight": np.zeros((8, 8, 3, 3)), "conv2.bias": np.zeros(8),
      ...          "pool.fc.0.weight": np.zeros((2, 8)), "pool.fc.0.bias": np.zeros(2),
      ...          "pool.fc.2.weight": np.zeros((8, 2)), "pool.fc.2.bias": np.zeros(8)}
      >>> state.update({f"bn1.{k}": v for k, v in bn(8).items()})
      >>> state.update({f"bn2.{k}": v for k, v in bn(8).items()})
      >>> variables = torch_compat.hybrid_resnet_block_variables(state)
      >>> sorted(variables["params"]), sorted(variables["batch_stats"])
      (['bn1', 'bn2', 'conv1', 'conv2', 'pool'], ['bn1', 'bn2'])
    """
    state = state_dict_to_numpy(state)
    renamed = dict(names or {})
    unknown = sorted(set(renamed) - set(BLOCK_LAYERS))
    if unknown:
        raise ValueError(
            f"hybrid_resnet_block_variables: names must map Flax submodule names "
            f"({', '.join(BLOCK_LAYERS)}) to torch names, but got unknown names {unknown}"
        )
    params: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    for flax_name, (torch_name, kind) in BLOCK_LAYERS.items():
        torch_prefix = f"{prefix}{renamed.get(flax_name, torch_name)}."
        present = any(key.startswith(torch_prefix) for key in state)
        if flax_name in _OPTIONAL_BLOCK_LAYERS and not present:
            continue
        if kind == "conv":
            params[flax_name] = conv_params(state, torch_prefix)
        elif kind == "batch_norm":
            params[flax_name], stats[flax_name] = batch_norm_variables(state, torch_prefix)
        else:
            params[flax_name] = attention_hybrid_pool_variables(state, torch_prefix)["params"]
    return {"params": params, "batch_stats": stats}


def _norm_params(state: Mapping[str, np.ndarray], prefix: str, what: str) -> dict:
    """``LayerNorm`` / ``RmsNorm``: ``weight`` -> ``scale``, ``bias`` (if any) -> ``bias``."""
    params = {"scale": _get(state, "weight", what, prefix, ndim=1)}
    if "bias" in state:
        params["bias"] = _get(state, "bias", what, prefix, ndim=1)
    return params


def _layers(state: Mapping[str, np.ndarray], prefix: str, what: str, tensors: tuple[str, ...],
            linears: tuple[str, ...], norms: tuple[str, ...]) -> dict:
    """The parameters of a module built of tensors, Linear layers and norms, each
    converted when the state_dict has it; any other entry is refused."""
    params: dict[str, Any] = {}
    known = set()
    for name in tensors:
        if name in state:
            params[name] = state[name]
            known.add(name)
    for kind, names in (("linear", linears), ("norm", norms)):
        for name in names:
            entries = {key[len(name) + 1:]: value for key, value in state.items()
                       if key.startswith(name + ".")}
            if not entries:
                continue
            known.update(f"{name}.{key}" for key in entries)
            path = name.split(".")
            node = params
            for key in path[:-1]:
                node = node.setdefault(key, {})
            # linear_params reads the entries by their full names, for its messages.
            named = {f"{prefix}{name}.{key}": value for key, value in entries.items()}
            node[path[-1]] = (linear_params(named, f"{prefix}{name}.") if kind == "linear"
                              else _norm_params(entries, f"{prefix}{name}.", what))
    unknown = sorted(set(state) - known)
    if unknown:
        raise ValueError(
            f"{what}: unexpected entries {[prefix + key for key in unknown]} (is the prefix right?)"
        )
    return params


def attention_pool_latent_variables(state: Any, prefix: str = "") -> dict:
    """timm's ``AttentionPoolLatent`` -> :class:`jaxpool.AttentionPoolLatent` variables.

    ``latent (1, latent_len, latent_dim)`` becomes ``latent (latent_len, latent_dim)``;
    ``pos_embed`` is copied; the Linear layers ``q``, ``kv``, ``proj``, ``mlp.fc1``,
    ``mlp.fc2`` become ``{'kernel' (in, out), 'bias'}`` (``mlp/fc1``, ``mlp/fc2``);
    the norms ``q_norm``, ``k_norm``, ``norm`` become ``{'scale', 'bias'}`` (no bias
    for ``RmsNorm``). Layers the module does not have (``q_proj=False``, no
    ``qk_norm``, ``out_features=0``) are simply absent.

    Args:
      state: the module's state_dict (or a model's with ``prefix``), or the module.
      prefix: the module's name in a bigger state_dict, with its dot (``"attn_pool."``
        in timm's ViT and SigLIP models).

    Returns:
      ``{'params': ...}`` for ``AttentionPoolLatent.apply`` (or
      :func:`jaxpool.nnx.load_variables`).

    Raises:
      ValueError: if ``latent`` or ``kv`` is missing, an entry has the wrong rank, or
        the state_dict holds entries under ``prefix`` that are not the module's.

    Example:
      >>> import numpy as np
      >>> from jaxpool import torch_compat
      >>> state = {"latent": np.zeros((1, 1, 8)), "kv.weight": np.zeros((16, 8)),
      ...          "kv.bias": np.zeros(16), "q.weight": np.zeros((8, 8))}
      >>> params = torch_compat.attention_pool_latent_variables(state)["params"]
      >>> params["latent"].shape, params["kv"]["kernel"].shape, sorted(params["q"])
      ((1, 8), (8, 16), ['kernel'])
    """
    state = state_dict_to_numpy(state, prefix)
    what = f"attention_pool_latent_variables(prefix={prefix!r})"
    latent = _get(state, "latent", what, prefix, ndim=3)
    _get(state, "kv.weight", what, prefix, ndim=2)
    params = _layers(state, prefix, what, ("latent", "pos_embed"),
                     ("q", "kv", "proj", "mlp.fc1", "mlp.fc2"), ("q_norm", "k_norm", "norm"))
    params["latent"] = latent.reshape(latent.shape[1:])
    if "pos_embed" in params:
        _get(state, "pos_embed", what, prefix, ndim=2)
    return {"params": params}


def attention_pool_2d_variables(state: Any, prefix: str = "") -> dict:
    """timm's ``AttentionPool2d`` -> :class:`jaxpool.AttentionPool2d` variables.

    ``pos_embed (1 + fh*fw, C)`` is copied; ``cls_token (1, E)`` becomes ``(E,)``; the
    Linear layers ``qkv`` (or ``q``, ``k``, ``v``) and ``proj`` become ``{'kernel' (in,
    out), 'bias'}``.

    Args:
      state: the module's state_dict (or a model's with ``prefix``), or the module.
      prefix: the module's name in a bigger state_dict, with its dot
        (``"head.attn_pool."`` for example).

    Returns:
      ``{'params': ...}`` for ``AttentionPool2d.apply`` (or
      :func:`jaxpool.nnx.load_variables`).

    Raises:
      ValueError: if ``pos_embed`` or the attention's layers are missing, an entry has
        the wrong rank, or the state_dict holds entries under ``prefix`` that are not
        the module's.

    Example:
      >>> import numpy as np
      >>> from jaxpool import torch_compat
      >>> state = {"pos_embed": np.zeros((50, 64)), "qkv.weight": np.zeros((192, 64)),
      ...          "qkv.bias": np.zeros(192), "proj.weight": np.zeros((10, 64))}
      >>> params = torch_compat.attention_pool_2d_variables(state)["params"]
      >>> params["qkv"]["kernel"].shape, params["proj"]["kernel"].shape
      ((64, 192), (64, 10))
    """
    state = state_dict_to_numpy(state, prefix)
    what = f"attention_pool_2d_variables(prefix={prefix!r})"
    _get(state, "pos_embed", what, prefix, ndim=2)
    if "qkv.weight" not in state:
        for name in ("q", "k", "v"):
            _get(state, f"{name}.weight", what, prefix, ndim=2)
    params = _layers(state, prefix, what, ("pos_embed", "cls_token"),
                     ("qkv", "q", "k", "v", "proj"), ())
    if "cls_token" in params:
        params["cls_token"] = _get(state, "cls_token", what, prefix, ndim=2).reshape(-1)
    return {"params": params}
