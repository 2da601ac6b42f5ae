"""What every jaxpool NNX module does at construction: store its configuration (frozen,
checked by the rules linen's twin follows) and make its parameters (with a key only
where something is random); the base of the pooling modules; and the two calls whose
spelling changed between flax 0.10 and 0.12.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike

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


def configure(module: nnx.Module, arguments: Mapping[str, Any]) -> None:
    """Stores a constructor's arguments as the module's attributes and checks them.

    ``arguments`` is the constructor's ``locals()``, taken first thing: every argument
    but ``self`` and ``rngs`` is stored under its name (lists frozen to tuples), then
    :func:`jaxpool._module_rules.check_config` checks the configuration as the linen
    twin does and the rank is stored once, as ``_rank``.
    """
    for name, value in arguments.items():
        if name not in ("self", "rngs", "__class__"):
            setattr(module, name, freeze(value))
    module._rank = rules.check_config(module)  # type: ignore[attr-defined]


class PoolingModule(nnx.Module):
    """The base of jaxpool's NNX modules: the configuration stored and checked at
    construction, and ``op``, the op per rank or one op.

    A subclass's ``__init__`` takes the linen twin's fields as arguments (flags
    keyword-only) and calls ``configure(self, locals())`` first ("How to add a module"
    in ``jaxpool/_module_rules.py``); ``__call__`` calls the op, as the linen twin's does.
    """

    op: ClassVar[rules.Op]

    if TYPE_CHECKING:  # the configuration's attributes, which configure() sets by name
        def __getattr__(self, name: str) -> Any: ...

    def __call__(self, x: ArrayLike, **options: Any) -> Any:
        """Pools ``x`` with the module's op; keyword arguments go to the op."""
        return rules.pool(self, x, **options)


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
