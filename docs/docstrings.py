"""How the API reference finds a public constant's docstring, without Sphinx: kept apart
from docs/conf.py so that tests/test_api.py checks docstrings exactly as the reference
reads them (the tests do not install Sphinx)."""

from __future__ import annotations

import ast
import importlib
import inspect


def attribute_docstring(module, name: str) -> str | None:
    """The string literal after ``NAME = ...`` where ``NAME`` is defined (PEP 257 style).

    Follows one ``from jaxpool._x import NAME`` re-export to the defining module.
    """
    tree = ast.parse(inspect.getsource(module))
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if any((alias.asname or alias.name) == name for alias in node.names):
                return attribute_docstring(importlib.import_module(node.module), name)
    for node, following in zip(tree.body, [*tree.body[1:], None], strict=True):
        targets = (
            node.targets if isinstance(node, ast.Assign)
            else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            if (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                return inspect.cleandoc(following.value.value)
            return None
    return None
