"""The JAX internals jaxpool uses, in one place, and why.

Everything else in jaxpool uses only JAX's public API (``jax``, ``jax.numpy``,
``jax.lax``, ``jax.custom_jvp``, ``jax.export``). The ``cpu`` kernel family
(:mod:`jaxpool._kernels_cpu`) defines its own *linear primitives* with explicit
transpose rules: a window sum whose transpose is computed phase by phase of the stride,
and the selection of each window's chosen element whose transpose is a scatter. Public
``jax.custom_jvp``/``custom_vjp`` cannot say "this function is linear, here is its
transpose" (needed for forward mode, reverse mode and higher derivatives from one
rule), so those primitives need JAX's extension points:

* :class:`Primitive` (``jax.extend.core.Primitive``): a new primitive.
* ``jax.interpreters.ad``: ``deflinear2`` (a linear primitive and its transpose),
  ``primitive_jvps`` / ``primitive_transposes`` (bilinear mixes), ``Zero`` /
  ``instantiate_zeros`` / ``is_undefined_primal`` (symbolic zeros and undefined
  primals seen by those rules).
* ``jax.interpreters.batching.primitive_batchers``: ``vmap`` rules.
* ``jax.interpreters.mlir``: ``register_lowering`` with ``lower_fun``, which lowers a
  primitive by tracing a plain JAX function (so the primitives lower on every platform
  and export for CUDA and TPU like any JAX code).
* ``jax.core.ShapedArray``: the abstract value returned by abstract evaluation.

And three version differences:

* :func:`jit_keyed_context`: a value set for a ``with`` block that ``jax.jit``'s caches
  key on, so that a function jitted before the block retraces inside it:
  ``jax.make_user_context`` from jax 0.7.2 on (public); before, a ``contextvars`` value
  with the same interface, which jit does not see (:data:`JIT_KEYED_CONTEXT` is False).
* :data:`PLATFORM_DEPENDENT_PRUNES`: from jax 0.6.1 on, ``lax.platform_dependent``
  lowers only the branches of the platforms a program is lowered for; before, a
  program lowered for one platform holds every branch behind a constant index, which
  XLA resolves when it compiles (a CUDA export of ``auto`` then carries the ``cpu``
  kernel family's code too, never run).
* :func:`optimization_barrier` keeps XLA from merging two consecutive divisions into one
  (``(s / a) / b`` into ``s / (a * b)``, which rounds differently from torch's
  adaptive averages). ``jax.lax.optimization_barrier`` is public, but JAX only has
  differentiation and batching rules for it from 0.5.3 on; with older JAX, a primitive
  of ours with the same meaning (identity, lowered to the same barrier) supplies them.

Tested at both ends of the supported range (``.ci/run``: jax 0.4.36, the floor pinned
in ``.ci/lower-bounds.txt``, and the newest release). When JAX moves one of these, this
is the only file to change.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

import jax
from jax import lax
from jax.core import ShapedArray
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

__all__ = [
    "JIT_KEYED_CONTEXT",
    "PLATFORM_DEPENDENT_PRUNES",
    "Primitive",
    "ShapedArray",
    "define_batching",
    "define_jvp",
    "define_linear",
    "define_transpose",
    "instantiate_zeros",
    "is_tracer",
    "is_undefined_primal",
    "is_zero",
    "jit_keyed_context",
    "lowered_by",
    "optimization_barrier",
]

# Every supported release (jax >= 0.4.36) has jax.__version_info__.
JAX_VERSION: tuple[int, ...] = tuple(jax.__version_info__)

PLATFORM_DEPENDENT_PRUNES = JAX_VERSION >= (0, 6, 1)
"""Whether ``lax.platform_dependent`` lowers only the lowering platforms' branches."""


def lowered_by(
    primitive: Primitive, function: Callable[..., Any], *, multiple_results: bool
) -> None:
    """Lowers ``primitive`` on every platform by tracing ``function`` (plain JAX code)."""
    mlir.register_lowering(primitive, mlir.lower_fun(function, multiple_results=multiple_results))


def define_linear(primitive: Primitive, transpose: Callable[..., list]) -> None:
    """Declares ``primitive`` linear in its first operand, with ``transpose(ct, *operands,
    **params) -> [cotangent of each operand]``; its JVP follows."""
    ad.deflinear2(primitive, transpose)


def define_jvp(primitive: Primitive, rule: Callable[..., Any]) -> None:
    """``rule(primals, tangents, **params) -> (out, tangent_out)``."""
    ad.primitive_jvps[primitive] = rule


def define_transpose(primitive: Primitive, rule: Callable[..., list]) -> None:
    """``rule(ct, *operands, **params) -> [cotangent or None per operand]``."""
    ad.primitive_transposes[primitive] = rule


def define_batching(primitive: Primitive, rule: Callable[..., Any]) -> None:
    """``rule(arguments, dims, **params) -> (out, out_dim)``."""
    batching.primitive_batchers[primitive] = rule


def is_zero(tangent: Any) -> bool:
    """Whether ``tangent`` is a symbolic zero (no tangent flows there)."""
    return type(tangent) is ad.Zero


def instantiate_zeros(tangent: Any) -> Any:
    """A symbolic zero as an array of zeros; other tangents unchanged."""
    return ad.instantiate_zeros(tangent)


def is_undefined_primal(value: Any) -> bool:
    """In a transpose rule: whether ``value`` is the operand being transposed."""
    return ad.is_undefined_primal(value)


def is_tracer(value: Any) -> bool:
    """Whether ``value`` is traced (under jit, vmap, grad, ...) rather than concrete."""
    return isinstance(value, jax.core.Tracer)


# ----------------------------------------------------------------------------------
# optimization_barrier with differentiation rules on every supported JAX

_BARRIER_HAS_RULES = JAX_VERSION >= (0, 5, 3)

_barrier_p = Primitive("jaxpool_optimization_barrier")
_barrier_p.def_impl(lambda x: x)
_barrier_p.def_abstract_eval(lambda x: ShapedArray(x.shape, x.dtype))
lowered_by(_barrier_p, lax.optimization_barrier, multiple_results=False)
define_linear(_barrier_p, lambda ct, x: [_barrier_p.bind(ct)])
define_batching(_barrier_p, lambda arguments, dims: (_barrier_p.bind(*arguments), dims[0]))


def optimization_barrier(x: jax.Array) -> jax.Array:
    """``x`` unchanged; XLA may not move computation across it (nor merge through it).

    ``jax.lax.optimization_barrier`` where JAX differentiates and batches it (0.5.3 and
    newer), else an equivalent primitive with those rules (linear: the tangent and the
    cotangent pass through a barrier too).
    """
    if _BARRIER_HAS_RULES:
        return lax.optimization_barrier(x)
    return _barrier_p.bind(x)


# ----------------------------------------------------------------------------------
# A context value that jax.jit's caches key on

JIT_KEYED_CONTEXT = hasattr(jax, "make_user_context")  # jax >= 0.7.2
"""Whether :func:`jit_keyed_context` values are part of what ``jax.jit`` caches on."""


class _ContextValue:
    """A value set for the length of a ``with`` block, kept in a ``contextvars`` variable,
    with the interface of ``jax.make_user_context``'s: ``.value`` and ``context(value)``."""

    def __init__(self, name: str, default: Any):
        self._variable: contextvars.ContextVar[Any] = contextvars.ContextVar(name, default=default)

    @property
    def value(self) -> Any:
        return self._variable.get()

    @contextlib.contextmanager
    def __call__(self, value: Any) -> Iterator[None]:
        token = self._variable.set(value)
        try:
            yield
        finally:
            self._variable.reset(token)


def jit_keyed_context(name: str, default: Any) -> Any:
    """A value set for the length of ``with context(value):`` and read as ``context.value``.

    With :data:`JIT_KEYED_CONTEXT` (jax 0.7.2 and newer) it is ``jax.make_user_context``'s:
    ``jax.jit``'s tracing, lowering and compilation caches key on its value, so a
    function jitted before a block retraces inside it (every jitted function called
    inside the block does, once per value). With older JAX it is a ``contextvars``
    value: jit reuses a trace whatever the value. The value must be hashable. Create one
    per name, at import (JAX adds its contexts without locking).
    """
    if JIT_KEYED_CONTEXT:
        return jax.make_user_context(default)
    return _ContextValue(name, default)
