"""Tests of jaxpool._docs: one docstring template filled per rank."""

import pytest

import jaxpool
from jaxpool import _docs

TEMPLATE = """{n}D op over ``{spatial}``.

{layout}

{size}

    Example:
      {example}
    """


@pytest.mark.parametrize("n, spatial", [(1, "L"), (2, "H, W"), (3, "D, H, W")])
def test_every_field_is_filled_for_the_rank(n, spatial):
    @_docs.per_rank(TEMPLATE, {1: ">>> 1", 2: ">>> 2", 3: ">>> 3"}, n)
    def op():
        pass

    assert op.__doc__.startswith(f"{n}D op over ``{spatial}``.")
    assert f"``(*batch, {spatial}, C)``" in op.__doc__ and f"``(*batch, C, {spatial})``" in op.__doc__
    assert _docs.SIZE in op.__doc__
    assert op.__doc__.endswith(f"    Example:\n      >>> {n}\n    ")
    assert "{" not in op.__doc__


def test_examples_are_inserted_as_written():
    @_docs.per_rank("{example}", {2: ">>> {'n': 2} == {n}"}, 2)
    def op():
        pass

    assert op.__doc__ == ">>> {'n': 2} == {n}"


def test_a_rank_without_an_example_is_a_key_error():
    with pytest.raises(KeyError):
        _docs.per_rank(TEMPLATE, {2: ">>> 2"}, 3)


@pytest.mark.parametrize("name", ["max_pool1d", "avg_pool3d", "adaptive_max_pool2d", "hybrid_pool2d"])
def test_the_ops_docstrings_are_filled(name):
    doc = getattr(jaxpool, name).__doc__
    assert "{" not in doc and ">>>" in doc
