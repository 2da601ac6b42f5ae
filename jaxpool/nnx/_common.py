"""What every jaxpool NNX module does at construction: freeze its configuration, make
its parameters (with a key only where something is random), and run the op's own
checks on a placeholder input, so bad arguments fail at construction with the op's
messages. Also the two calls whose spelling changed between flax 0.10 and 0.12.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxpool import _module_rules as rules


def read(variable: nnx.Variable) -> Any:
    """A variable's value (an array; a ``jax.ShapeDtypeStruct`` under ``nnx.eval_shape``).

    flax 0.12 deprecates ``.value`` (a warning, an error under strict test settings) in
    favour of ``get_value`` / ``set_value``, which flax 0.10 does not have.
    """
    getter = getattr(variable, "get_value", None)
    return getter() if getter is not None else variable.value


def write(variable: nnx.Variable, value: Any) -> None:
    """Replaces a variable's value (see :func:`read` for the two spellings)."""
    setter = getattr(variable, "set_value", None)
    if setter is not None:
        setter(value)
    else:
        variable.value = value


def freeze(value: Any) -> Any:
    """Lists become tuples (recursively): NNX keeps configuration in the graph
    definition, which must be hashable for ``nnx.jit``'s cache."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(entry) for entry in value)
    return value


def require_rngs(where: Any, rngs: Any) -> nnx.Rngs:
    """``rngs`` for a module that always initialises something randomly."""
    if rngs is None:
        raise ValueError(
            f"{rules.module_kind(where)} initialises parameters randomly: pass "
            "rngs=nnx.Rngs(0) (any seed)"
        )
    return _rngs(where, rngs)


def check_rngs(where: Any, rngs: Any) -> nnx.Rngs | None:
    """``rngs`` must be an ``nnx.Rngs``, or None where nothing needs it."""
    return None if rngs is None else _rngs(where, rngs)


def _rngs(where: Any, rngs: Any) -> nnx.Rngs:
    if not isinstance(rngs, nnx.Rngs):
        raise TypeError(
            f"{rules.module_kind(where)}: rngs must be an nnx.Rngs, but got "
            f"{type(rngs).__name__}: {rngs!r}"
        )
    return rngs


def make_param(
    where: Any, name: str, initializer: Callable, shape: tuple[int, ...], dtype: Any,
    rngs: nnx.Rngs | None,
) -> nnx.Param:
    """``nnx.Param(initializer(key, shape, dtype))``, the key from ``rngs.params()``.

    Without ``rngs`` the initialiser gets no key: deterministic ones (zeros, ones,
    constant — the defaults) need none; a random one fails, and the error says to pass
    ``rngs``.
    """
    kind = rules.module_kind(where)
    rngs = check_rngs(where, rngs)
    if rngs is not None:
        return nnx.Param(initializer(rngs.params(), shape, dtype))
    try:
        value = initializer(None, shape, dtype)
    except Exception as error:
        try:  # with a key it works: the initialiser is random
            jax.eval_shape(lambda: initializer(jax.random.key(0), shape, dtype))
        except Exception:
            raise error from None  # not a matter of the key: the initialiser's own error
        raise ValueError(
            f"{kind}: the initialiser of {name} is random: pass rngs=nnx.Rngs(0) (any seed)"
        ) from error
    return nnx.Param(value)


def check_features(where: Any, name: str, value: Any, *, needed_for: str) -> int:
    """A channel count that a parameter's shape needs: a positive int, not None."""
    if value is None:
        raise ValueError(
            f"{rules.module_kind(where)}: {needed_for}; pass {name}=C, the input's channel count"
        )
    return rules.check_features(where, name, value)


def check_input_channels(where: Any, x: Any, n: int, channels_first: bool, expected: int) -> None:
    """The input's channel count must be the one the parameters were made for."""
    channels = rules.channel_count(where, x, n, channels_first)
    if channels != expected:
        raise ValueError(
            f"{rules.module_kind(where)}: expected an input with num_features={expected} channels, "
            f"but got shape {tuple(jnp.shape(x))} ({channels} channels)"
        )


def largest_int(value: Any, default: int = 1) -> int:
    """The largest int in a (nested) size argument; ``default`` if it holds none."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return max(abs(int(value)), default)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return max((largest_int(entry, default) for entry in value), default=default)
    return default


def window_placeholder(n: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1):
    """A spatial size at which only the window configuration itself can be wrong: it
    holds a whole dilated window plus both paddings and a stride."""
    length = (
        largest_int(kernel_size) * largest_int(dilation) + 2 * largest_int(padding, 0)
        + largest_int(stride) + 1
    )
    return (length,) * n


def fractional_placeholder(n: int, kernel_size: Any, output_size: Any, output_ratio: Any):
    """A spatial size at which fractional pooling's own rules can hold: ``output +
    kernel - 1 <= L`` and, for ``output_ratio`` r, ``floor(L * r) >= 1``."""
    kernel = largest_int(kernel_size)
    if output_ratio is None:
        return (largest_int(output_size) + kernel,) * n
    ratios = output_ratio if isinstance(output_ratio, Sequence) else (output_ratio,)
    numbers_ = [float(r) for r in ratios if isinstance(r, numbers.Real) and 0 < float(r) < 1]
    if not numbers_:
        return (kernel + 1,) * n  # the op refuses the ratio itself
    length = math.ceil(kernel / (1 - max(numbers_))) + math.ceil(1 / min(numbers_)) + 1
    return (length,) * n


def check_config(
    module: Any, spatial_size: tuple[int, ...], channels: int | None,
    call: Callable | None = None,
) -> None:
    """Runs ``module`` (or ``call``) on a placeholder input with ``jax.eval_shape``:
    every check of the op runs, with its own message, and nothing is computed."""
    channels = channels or 1
    shape = (
        (1, channels, *spatial_size) if module.channels_first else (1, *spatial_size, channels)
    )
    jax.eval_shape(call or module, jax.ShapeDtypeStruct(shape, jnp.float32))
