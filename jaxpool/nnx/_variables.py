"""Linen variables dicts in and out of NNX modules.

jaxpool's NNX modules name their attributes as the linen twins name their variables,
so an NNX module's state, read as ``{collection: {path...: array}}`` with
``nnx.Param`` under ``'params'`` and ``nnx.BatchStat`` under ``'batch_stats'``, *is*
the linen variables dict. That works for any NNX module built the same way, not only
jaxpool's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxpool.nnx import _common as common

# Linen collection -> the NNX variable type that holds it.
COLLECTIONS = {"params": nnx.Param, "batch_stats": nnx.BatchStat}

Path = tuple[str, ...]


def _module_variables(module: nnx.Module) -> dict[Path, nnx.Variable]:
    """``{(collection, *path): variable}`` for every Param and BatchStat of ``module``."""
    if not isinstance(module, nnx.Module):
        raise TypeError(f"expected an nnx.Module, but got {type(module).__name__}: {module!r}")
    found = {}
    for path, node in nnx.iter_graph(module):
        for collection, kind in COLLECTIONS.items():
            # flax 0.10's layers keep an absent bias as Param(None): no linen variable.
            if isinstance(node, kind) and common.read(node) is not None:
                key = (collection, *map(str, path))
                found[key] = node
    return found


def _flatten(tree: Any, prefix: Path = ()) -> dict[Path, Any]:
    """A nested mapping's leaves by path (an empty mapping has none)."""
    if isinstance(tree, Mapping):
        leaves = {}
        for key, value in tree.items():
            leaves.update(_flatten(value, (*prefix, str(key))))
        return leaves
    return {prefix: tree}


def _name(path: Path) -> str:
    return "/".join(path)


def variables(module: nnx.Module) -> dict[str, dict]:
    """The linen variables dict of an NNX module: ``{'params': ..., 'batch_stats': ...}``.

    ``nnx.Param``\\ s go under ``'params'``, ``nnx.BatchStat``\\ s under
    ``'batch_stats'``, nested by attribute path (other state, such as rng streams, is
    left out); a collection without variables is left out too, as linen's ``init``
    does. For jaxpool's NNX modules this is exactly what the linen twin's ``init``
    returns (names, shapes and meaning), ready for its ``apply``.

    Args:
      module: an NNX module.

    Returns:
      Nested dicts of the variables' arrays (the current values; not copies that
      follow later updates).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxpool, jaxpool.nnx as jpn
      >>> pool = jpn.AttentionHybridPool(num_features=8, kernel_size=(2, 2), rngs=nnx.Rngs(0))
      >>> weights = jpn.variables(pool)
      >>> jax.tree.map(jnp.shape, weights["params"]["squeeze"])
      {'bias': (2,), 'kernel': (8, 2)}
      >>> x = jnp.ones((1, 4, 4, 8))
      >>> linen = jaxpool.AttentionHybridPool(kernel_size=(2, 2))
      >>> bool(jnp.all(linen.apply(weights, x) == pool(x)))
      True
    """
    out: dict[str, dict] = {}
    for (collection, *path), variable in sorted(_module_variables(module).items()):
        node = out.setdefault(collection, {})
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = common.read(variable)
    return out


def load_variables(module: nnx.Module, variables: Mapping[str, Any]) -> None:
    """Puts a linen variables dict into an NNX module, in place.

    ``variables`` is ``{'params': ..., 'batch_stats': ...}`` as a linen module's
    ``init`` returns it, or :mod:`jaxpool.torch_compat` from PyTorch weights. Every
    ``nnx.Param`` and ``nnx.BatchStat`` of ``module`` must get exactly one array of its
    shape, found by its attribute path; arrays are cast to the variable's dtype.
    Nothing is written unless everything matches.

    Args:
      module: an NNX module (e.g. from :mod:`jaxpool.nnx`).
      variables: a mapping of collection names (``'params'``, ``'batch_stats'``) to
        nested mappings of arrays.

    Raises:
      ValueError: naming every missing, extra or mis-shaped entry by its path, with
        the module's and the given shapes; or an unknown collection.
      TypeError: if ``module`` is not an NNX module or ``variables`` not a mapping.

    Example:
      >>> import numpy as np
      >>> import jaxpool.nnx as jpn
      >>> from jaxpool import torch_compat
      >>> pool = jpn.HybridPool(kernel_size=(2, 2))
      >>> state = {"weight": np.array([0.3], np.float32)}     # a PyTorch HybridPooling's
      >>> jpn.load_variables(pool, torch_compat.hybrid_pool_variables(state))
      >>> pool.mix_logit[...]
      Array(0.3, dtype=float32)
      >>> jpn.load_variables(pool, {"params": {"mix_logit": np.zeros(3)}})
      Traceback (most recent call last):
        ...
      ValueError: load_variables: the variables do not fit HybridPool: params/mix_logit has
      shape () in the module but (3,) in variables
    """
    expected = _module_variables(module)
    if not isinstance(variables, Mapping):
        raise TypeError(
            "load_variables: variables must be a mapping {'params': ..., 'batch_stats': ...}, "
            f"but got {type(variables).__name__}"
        )
    unknown = sorted(str(key) for key in variables if key not in COLLECTIONS)
    if unknown:
        raise ValueError(
            f"load_variables: unknown collections {unknown}; expected {sorted(COLLECTIONS)}"
        )
    given = _flatten(variables)
    problems = []
    for path, variable in expected.items():
        shape = tuple(common.read(variable).shape)
        if path not in given:
            problems.append(
                f"{_name(path)} (shape {shape} in the module) is missing from variables"
            )
        elif tuple(np.shape(given[path])) != shape:
            problems.append(
                f"{_name(path)} has shape {shape} in the module but "
                f"{tuple(np.shape(given[path]))} in variables"
            )
    for path in given:
        if path not in expected:
            problems.append(
                f"{_name(path)} (shape {tuple(np.shape(given[path]))} in variables) is not a "
                "variable of the module"
            )
    if problems:
        raise ValueError(
            f"load_variables: the variables do not fit {type(module).__name__}: "
            + "; ".join(problems)
        )
    for path, variable in expected.items():
        common.write(variable, jnp.asarray(given[path], dtype=common.read(variable).dtype))
