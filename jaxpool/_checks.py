"""Checks on array arguments (dtype, shape), shared by the public ops.

These look only at static facts (shape, dtype), so they run at trace time and raise
before any computation.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def as_array(x: Any, name: str, op: str, *, kind: str = "any") -> jax.Array:
    """Converts ``x`` to a JAX array and checks its dtype.

    Args:
      x: the argument.
      name: its name, for messages.
      op: the op's name, for messages.
      kind: 'float' (floating dtypes only: averages, LP, learnable pooling), 'any'
        (floating or integer: max/min pooling), 'int' (indices) or 'bool' (masks).

    Raises:
      TypeError: if ``x`` is not array-like or its dtype is not accepted.
    """
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{op}: {name} must be an array, but got {x!r} of type {type(x).__name__}")
    try:
        array = jnp.asarray(x)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{op}: {name} must be an array, but got {type(x).__name__}: {error}"
        ) from None
    dtype = array.dtype
    floating = jnp.issubdtype(dtype, jnp.floating)
    integer = jnp.issubdtype(dtype, jnp.integer)
    if kind == "bool":
        if dtype != jnp.bool_:
            raise TypeError(
                f"{op}: {name} must be a boolean array, but got dtype {dtype}; convert it with "
                f"{name}.astype(bool) (or {name} != 0)"
            )
        return array
    if kind == "int":
        if not integer:
            raise TypeError(f"{op}: {name} must have an integer dtype, but got dtype {dtype}")
        return array
    if kind == "float" and not floating:
        raise TypeError(
            f"{op}: {name} must have a floating dtype (float32, bfloat16, float16, float64), "
            f"but got dtype {dtype}"
            + (" (cast integers with x.astype(jnp.float32))" if integer else "")
        )
    if kind == "any" and not (floating or integer):
        raise TypeError(
            f"{op}: {name} must have a floating or integer dtype, but got dtype {dtype}"
        )
    return array
