"""The kernel switch: which family reduces the windows, chosen per lowering platform.

jaxpool computes every windowed op with one of two kernel families, both exact against
torch (values, indices and gradients):

* ``'reduce_window'`` (:mod:`jaxpool._kernels_reduce_window`): forwards through
  ``lax.reduce_window``, the op XLA's GPU and TPU backends optimise, with custom
  gradient rules where XLA's differ from torch's;
* ``'cpu'`` (:mod:`jaxpool._kernels_cpu`): strided slices, reshapes and linear
  primitives with explicit transposes, measured faster on XLA:CPU.

``'auto'`` (the default) stages both into the program with ``lax.platform_dependent``:
the ``cpu`` family where the program is lowered for CPU, ``reduce_window`` elsewhere
(GPU, TPU). So one jitted or ``jax.export``\\ ed function carries the right kernel for each
platform, and a multi-platform export holds both. The choice is read when an op is
*traced*: :func:`kernels` (a context manager) wins over the environment variable
``JAXPOOL_KERNELS``, which wins over ``'auto'``. With jax 0.7.2 and newer the block's
family is part of what ``jax.jit`` caches on, so a function jitted before the block
retraces inside it and runs the block's family (as does every jitted function first
called inside a block: one more trace and compilation per family). With older JAX a
function already jitted keeps the kernels it was traced with (``jax.clear_caches()``
or a new function retraces); so does any function after ``JAXPOOL_KERNELS`` changes.

The ops call :func:`window_max`, :func:`window_average` and :func:`window_hybrid` with
the family from :func:`kernel_family`, as a static argument of their jitted
implementation, so changing the family never reuses a stale trace of jaxpool's own.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence

import jax
from jax import lax

from jaxpool import _jax_internals as internals
from jaxpool import _kernels_cpu as cpu
from jaxpool import _kernels_reduce_window as reduce_window
from jaxpool._geometry import AxisWindows
from jaxpool._kernel_common import gather_window_max, window_taps

__all__ = [
    "ENV_VAR",
    "FAMILIES",
    "gather_window_max",
    "kernel_family",
    "kernels",
    "window_average",
    "window_hybrid",
    "window_max",
    "window_taps",
]

FAMILIES = ("auto", "reduce_window", "cpu")
"""The accepted kernel family names."""

ENV_VAR = "JAXPOOL_KERNELS"
"""The environment variable that picks the family when no :func:`kernels` block does."""

# The family forced by the innermost kernels() block (None outside any): part of what
# jax.jit caches on where JAX allows it (see _jax_internals.jit_keyed_context).
_forced = internals.jit_keyed_context("jaxpool_kernels", None)


def _checked(family: object, where: str) -> str:
    if not isinstance(family, str) or family not in FAMILIES:
        raise ValueError(
            f"{where} must be one of {', '.join(repr(f) for f in FAMILIES)}, but got {family!r}"
        )
    return family


@contextlib.contextmanager
def kernels(family: str) -> Iterator[None]:
    """Uses one kernel family for the jaxpool ops traced inside the block.

    ``'auto'`` (the default outside any block, unless ``JAXPOOL_KERNELS`` says
    otherwise) picks per lowering platform: the ``cpu`` family for CPU, ``reduce_window``
    for GPU and TPU; ``'reduce_window'`` or ``'cpu'`` forces one family everywhere. Both
    give torch's values, indices and gradients; they differ in speed per platform, and
    sums may round differently in the last bit. Blocks nest; the innermost wins over the
    environment variable. The choice is read when an op is traced; with jax 0.7.2 and
    newer the block's family is also part of ``jax.jit``'s cache key, so a function
    jitted before the block retraces inside it. With older JAX a function that was
    jitted before keeps its kernels (``jax.clear_caches()`` retraces it).

    Args:
      family: ``'auto'``, ``'reduce_window'`` or ``'cpu'``.

    Raises:
      ValueError: for any other value.

    Example:
      >>> import jax.numpy as jnp, jaxpool
      >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
      >>> before = jaxpool.kernel_family()     # 'auto', unless JAXPOOL_KERNELS is set
      >>> with jaxpool.kernels("reduce_window"):
      ...     y = jaxpool.max_pool2d(x, 2)
      >>> y[0, ..., 0]
      Array([[ 5.,  7.],
             [13., 15.]], dtype=float32)
      >>> jaxpool.kernel_family() == before    # the block's end restores the choice
      True
    """
    with _forced(_checked(family, "jaxpool.kernels: family")):
        yield


def kernel_family() -> str:
    """The kernel family in force: the innermost :func:`kernels` block, else the
    ``JAXPOOL_KERNELS`` environment variable, else ``'auto'``.

    Raises:
      ValueError: if ``JAXPOOL_KERNELS`` holds anything but ``auto``, ``reduce_window``
        or ``cpu`` (an empty value means unset).

    Example:
      >>> import jaxpool
      >>> with jaxpool.kernels("cpu"):
      ...     jaxpool.kernel_family()
      'cpu'
    """
    forced = _forced.value
    if forced is not None:
        return forced
    value = os.environ.get(ENV_VAR, "")
    if value == "":
        return "auto"
    return _checked(value, f"the environment variable {ENV_VAR}")



def _dispatch(family: str, implementations: tuple[Callable, Callable], *operands, **static):
    """Calls the ``cpu`` or the ``reduce_window`` implementation (in that order in
    ``implementations``) with the same static arguments; ``auto`` stages both."""
    on_cpu, elsewhere = (functools.partial(f, **static) for f in implementations)
    if family == "cpu":
        return on_cpu(*operands)
    if family == "reduce_window":
        return elsewhere(*operands)
    return lax.platform_dependent(*operands, cpu=on_cpu, default=elsewhere)


def window_max(
    x: jax.Array,
    axes: Sequence[int],
    windows: Sequence[AxisWindows],
    *,
    return_index: bool = False,
    family: str = "auto",
):
    """Window maxima with torch's ties, NaN and gradients; optionally flat indices.

    See :func:`jaxpool._kernels_cpu.window_max` for the contract (both families keep it).
    """
    return _dispatch(
        family, (cpu.window_max, reduce_window.window_max), x,
        axes=tuple(axes), windows=tuple(windows), return_index=return_index,
    )


def window_average(
    x: jax.Array,
    axes: Sequence[int],
    windows: Sequence[AxisWindows],
    divisor: str | int,
    *,
    family: str = "auto",
) -> jax.Array:
    """Window sums divided as torch divides them; see
    :func:`jaxpool._kernel_common.average_of_sums` for ``divisor``."""
    return _dispatch(
        family, (cpu.window_average, reduce_window.window_average), x,
        axes=tuple(axes), windows=tuple(windows), divisor=divisor,
    )


def window_hybrid(
    x: jax.Array,
    alpha: jax.Array,
    axes: Sequence[int],
    windows: Sequence[AxisWindows],
    divisor: str | int,
    *,
    family: str = "auto",
) -> jax.Array:
    """``alpha * max + (1 - alpha) * average`` over each window (torch's rules for both)."""
    return _dispatch(
        family, (cpu.window_hybrid, reduce_window.window_hybrid), x, alpha,
        axes=tuple(axes), windows=tuple(windows), divisor=divisor,
    )
