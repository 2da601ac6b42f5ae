"""Docstrings written once for the 1-D, 2-D and 3-D forms of an op.

Pure Python, importing nothing of jaxpool: any floor may use it. A template is a
docstring with fields that :func:`per_rank` fills for one rank:

* ``{n}``: the number of spatial dims (``1``, ``2`` or ``3``);
* ``{spatial}``: their names (``L``; ``H, W``; ``D, H, W``);
* ``{layout}``: the layout paragraph (:data:`LAYOUT`);
* ``{size}``: torch's output-size formula for sliding windows (:data:`SIZE`);
* ``{example}``: that rank's runnable ``>>>`` example, inserted as written (its braces
  are not fields).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

_Function = TypeVar("_Function", bound=Callable)

SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}
"""The names of the spatial dims per rank, as the docstrings write shapes."""

LAYOUT = """\
    Layout: ``x`` is ``(*batch, {spatial}, C)`` (channels-last, Flax's default) or, with
    ``channels_first=True``, ``(*batch, C, {spatial})`` (torch's); any number of batch
    dims, zero included. The output keeps the input's layout."""
"""The layout paragraph (its own ``{spatial}`` filled for the rank)."""

SIZE = """\
    Output size per spatial dim (``L`` input, ``k`` kernel, ``s`` stride, ``p`` padding,
    ``d`` dilation)::

        O = floor((L + 2p - d*(k-1) - 1 + (s-1 if ceil_mode else 0)) / s) + 1

    and in ceil mode the last window must start inside the input or the left padding
    (see :func:`jaxpool.pool_output_shape`)."""
"""torch's output size of sliding windows."""


def per_rank(
    template: str, examples: Mapping[int, str], n: int
) -> Callable[[_Function], _Function]:
    """A decorator that sets a function's docstring to ``template`` filled for rank ``n``.

    Args:
      template: the docstring, with the fields listed in this module's docstring.
      examples: the runnable example of each rank (the text after ``Example:``).
      n: the rank, 1, 2 or 3.

    Example:
      >>> from jaxpool._docs import per_rank
      >>> @per_rank("{n}D pooling of ``(*batch, {spatial}, C)``. Example: {example}",
      ...           {1: "pool1d(x)", 2: "pool2d(x)  # {braces} stay"}, 2)
      ... def pool2d(x):
      ...     pass
      >>> pool2d.__doc__
      '2D pooling of ``(*batch, H, W, C)``. Example: pool2d(x)  # {braces} stay'
    """
    spatial = SPATIAL[n]
    doc = template.format(
        n=n, spatial=spatial, layout=LAYOUT.format(spatial=spatial), size=SIZE,
        example=examples[n],
    )

    def decorate(function: _Function) -> _Function:
        function.__doc__ = doc
        return function

    return decorate
