"""Sphinx configuration: jaxpool's API reference from its docstrings, and its Markdown pages.

Build (what .ci/docs runs; warnings are errors):

    python -m sphinx -W --keep-going -c docs . build/docs/html

The source directory is the repository root, so that README.md, the benchmark tables
and the example's README are pages from where they live and their relative links work
unchanged; ``include_patterns`` below lists the pages. A link to a Markdown file that is
not a page fails the build: add a pattern here and a toctree entry in docs/index.md.

Each page under docs/api/ is one line, ``.. jaxpool-api:: MODULE`` (the directive
defined here), which documents every name in the module's ``__all__``; a new public
module is one more such file (docs/api/jaxpool.nnx.rst: ``.. jaxpool-api:: jaxpool.nnx``),
picked up by the index's glob; tests/test_api.py fails while it is missing.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import pathlib
import re
import sys
import tokenize

from docutils import nodes
from sphinx.util import inspect as sphinx_inspect
from sphinx.util.docutils import SphinxDirective
from sphinx.util.parsing import nested_parse_to_nodes

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # document this checkout, installed or not

from docs.docstrings import attribute_docstring  # noqa: E402 (needs the line above)

# -- Project -----------------------------------------------------------------------

project = "jaxpool"
author = "the jaxpool authors"
copyright = "the jaxpool authors"
_PYPROJECT = (REPO / "pyproject.toml").read_text(encoding="utf-8")
release = re.search(r'^version = "([^"]+)"', _PYPROJECT, flags=re.M).group(1)
version = release

# -- Sources -----------------------------------------------------------------------

root_doc = "docs/index"
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# The pages, where they live in the repository.
include_patterns = [
    "docs/**",
    "README.md",
    "CHANGELOG.md",
    "benchmarks/README.md",
    "benchmarks/results/*.md",
    "examples/cifar10/README.md",
    "examples/cifar10/results/**/*.md",  # committed comparisons the example may link to
]
# Not walked at all (include_patterns filters files; this prunes whole folders).
exclude_patterns = [
    ".git", ".venv", "**/.venv", "build", "dist", "runs", "data", ".hypothesis",
    ".pytest_cache", "**/__pycache__", "*.egg-info", "docs/_build",
]

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "myst_parser",
]

# -- MyST (Markdown) ---------------------------------------------------------------

myst_heading_anchors = 3  # the README links to its own sections (#performance)

# -- autodoc and napoleon (Google style, `Example:` blocks of >>> lines) -------------

autodoc_member_order = "bysource"
autodoc_preserve_defaults = True  # defaults as written, not reprs with addresses
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
# Shown as written, not expanded into the union of everything an array can be.
autodoc_type_aliases = {"ArrayLike": "jax.typing.ArrayLike"}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True

# -- HTML --------------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"jaxpool {release}"
html_theme_options = {"description": "Pooling for JAX and Flax with PyTorch's numbers"}


# -- The API directive -------------------------------------------------------------


def _groups(module) -> list[tuple[str | None, list[str]]]:
    """``__all__`` in order, split at the comments inside it (``# Flax linen modules.``).

    A module without such comments gives one untitled group.
    """
    names = list(module.__all__)
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return [(None, names)]
    groups: list[tuple[str | None, list[str]]] = [(None, [])]
    inside, depth = False, 0
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for index, token in enumerate(tokens):
        if not inside:
            inside = (
                token.type == tokenize.NAME and token.string == "__all__"
                and token.start[1] == 0 and tokens[index + 1].string == "="
            )
            continue
        if token.type == tokenize.OP and token.string in "([{":
            depth += 1
        elif token.type == tokenize.OP and token.string in ")]}":
            depth -= 1
            if depth == 0:
                break
        elif token.type == tokenize.COMMENT and depth == 1:
            groups.append((token.string.lstrip("# ").rstrip("."), []))
        elif token.type == tokenize.STRING and depth == 1:
            groups[-1][1].append(ast.literal_eval(token.string))
    listed = [name for _, group in groups for name in group]
    if sorted(listed) != sorted(names):  # __all__ is computed: no grouping
        return [(None, names)]
    return [(title, group) for title, group in groups if group]


class JaxpoolApi(SphinxDirective):
    """``.. jaxpool-api:: jaxpool.models``: the module's docstring, then every name in
    its ``__all__`` with signature and docstring, in sections named by the comments
    inside ``__all__``."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        module = importlib.import_module(module_name)
        lines = [
            module_name,
            "=" * (len(module_name) + 4),
            "",
            f".. automodule:: {module_name}",
            "   :no-members:",
            "",
        ]
        for title, names in _groups(module):
            if title:
                lines += [title, "-" * len(title), ""]
            for name in names:
                lines += self._entry(module, module_name, name)
        return nested_parse_to_nodes(self.state, "\n".join(lines), source=module_name)

    @staticmethod
    def _entry(module, module_name: str, name: str) -> list[str]:
        value = getattr(module, name)
        if inspect.isclass(value):
            # Dataclass fields (a Flax module's attributes) are described by the
            # docstring's Attributes section; autodoc would list some twice.
            fields = ", ".join(getattr(value, "__dataclass_fields__", {}))
            return [
                f".. autoclass:: {module_name}.{name}",
                "   :members:",
                "   :special-members: __call__",
                "   :show-inheritance:",
                *([f"   :exclude-members: {fields}"] if fields else []),
                "",
            ]
        if callable(value):
            return [f".. autofunction:: {module_name}.{name}", ""]
        doc = attribute_docstring(module, name) or ""
        return [
            f".. py:data:: {name}",
            f"   :module: {module_name}",
            f"   :value: {value!r}",
            "",
            *("   " + line if line else "" for line in doc.splitlines()),
            "",
        ]


def _class_signature(app, what, name, obj, options, signature, return_annotation):
    """Flax classes: the arguments a user passes.

    Linen modules lose ``parent`` (Flax's plumbing, not an option). NNX modules' metaclass
    ``__call__`` hides ``__init__`` behind ``(*args, **kwargs)``: show ``__init__``'s.
    """
    if what != "class" or not signature:
        return signature, return_annotation
    init_module = getattr(obj.__init__, "__module__", None) or "flax"
    if signature.startswith("(*args") and not init_module.startswith("flax"):
        init = sphinx_inspect.signature(
            obj.__init__, bound_method=True, type_aliases=app.config.autodoc_type_aliases
        )
        signature = sphinx_inspect.stringify_signature(init, show_return_annotation=False)
    signature = re.sub(r", parent: [^=]*= <flax\.linen\.module\._Sentinel object>", "",
                       signature)
    return signature, return_annotation


def _redirect_to_root(app, exception) -> None:
    """The site's pages keep the repository's layout; index.html leads to docs/index."""
    if exception is None and app.builder.format == "html":
        target = app.builder.get_target_uri(app.config.root_doc)
        page = f'<!DOCTYPE html><meta http-equiv="refresh" content="0; url={target}">\n'
        (pathlib.Path(app.outdir) / "index.html").write_text(page, encoding="utf-8")


def setup(app):
    app.add_directive("jaxpool-api", JaxpoolApi)
    app.connect("autodoc-process-signature", _class_signature)
    app.connect("build-finished", _redirect_to_root)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
