"""Tests of the public surface (jaxpool/__init__.py and the public submodules): names,
signatures, docstrings, and the API reference pages."""

import importlib
import inspect
import pkgutil

import pytest
import torch.nn.functional as F

import jaxpool
from docs.docstrings import attribute_docstring
from tests.helpers import REPO

FUNCTIONS = [name for name in jaxpool.__all__ if name[0].islower()]
MODULES = [name for name in jaxpool.__all__ if name[0].isupper()]
# Public functions that are not pooling ops (no input array, no layout).
NOT_OPS = {"pool_output_shape", "kernels", "kernel_family"}
OPS = [name for name in FUNCTIONS if name not in NOT_OPS]
# jaxpool and its public submodules (models, torch_compat, nnx once it exists).
PUBLIC_MODULES = ["jaxpool"] + [
    f"jaxpool.{info.name}" for info in pkgutil.iter_modules(jaxpool.__path__)
    if not info.name.startswith("_")
]
# Public names whose docstring has no `>>>` example yet. Add the example, then remove the
# name here (the test below fails while a listed name has one, so the list stays true).
MISSING_EXAMPLES = {"jaxpool.models.BasicBlock", "jaxpool.models.PoolingResNetBlock"}


def test_all_lists_exactly_the_public_names():
    public = {name for name in vars(jaxpool) if not name.startswith("_")}
    submodules = {name for name in public if inspect.ismodule(getattr(jaxpool, name))}
    assert set(jaxpool.__all__) == public - submodules
    assert len(jaxpool.__all__) == len(set(jaxpool.__all__))


def _import(module_name):
    # No skip on an ImportError: every supported Flax (>= 0.10.2) has nnx, so a public
    # module that does not import is broken.
    return importlib.import_module(module_name)


def _own_docstring(module, name):
    """The docstring written for this name: not inherited, not a dataclass's generated one."""
    value = getattr(module, name)
    if inspect.isclass(value):
        doc = vars(value).get("__doc__")
        if doc and _dataclass_generated(value, doc):
            return None
    elif callable(value):
        doc = value.__doc__
    else:  # data: the string literal under its assignment, which Sphinx documents
        doc = attribute_docstring(module, name)
    return inspect.cleandoc(doc) if doc else None


def _dataclass_generated(cls, doc):
    return doc.startswith(f"{cls.__name__}(") and doc.rstrip().endswith(")") and "\n" not in doc


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_module_lists_its_names(module_name):
    module = _import(module_name)
    assert len(module.__all__) == len(set(module.__all__)), module_name
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ lists names it lacks: {missing}"
    assert (inspect.getdoc(module) or "").strip(), f"{module_name}: no module docstring"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_a_docstring(module_name):
    module = _import(module_name)
    undocumented = [name for name in module.__all__ if not _own_docstring(module, name)]
    assert not undocumented, f"{module_name}: no docstring for {undocumented}"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_function_and_class_has_a_runnable_example(module_name):
    module = _import(module_name)
    lacking, listed_with_example = [], []
    for name in module.__all__:
        if not callable(getattr(module, name)):
            continue  # constants: a one-line description is their whole documentation
        doc = _own_docstring(module, name) or ""
        has_example = ">>> " in doc and len(doc.splitlines()) > 3
        qualified = f"{module_name}.{name}"
        if qualified in MISSING_EXAMPLES:
            if has_example:
                listed_with_example.append(qualified)
        elif not has_example:
            lacking.append(name)
    assert not lacking, f"{module_name}: no runnable example for {lacking}"
    assert not listed_with_example, f"remove from MISSING_EXAMPLES: {listed_with_example}"


def test_every_public_module_has_an_api_page():
    """docs/api/MODULE.rst holds `.. jaxpool-api:: MODULE`, which documents its __all__."""
    for module_name in PUBLIC_MODULES:
        page = REPO / "docs" / "api" / f"{module_name}.rst"
        assert page.is_file(), f"no API page for {module_name}: create {page.relative_to(REPO)}"
        assert f".. jaxpool-api:: {module_name}" in page.read_text(), page


# torch's C builtins carry no Python signature; their documented argument order:
TORCH_BUILTIN_ORDER = {
    "avg_pool1d": ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"],
    "avg_pool2d": ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                   "divisor_override"],
    "avg_pool3d": ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                   "divisor_override"],
    "adaptive_avg_pool1d": ["output_size"],
}


def _torch_positional(name):
    if name in TORCH_BUILTIN_ORDER:
        return TORCH_BUILTIN_ORDER[name]
    function = getattr(F, name)
    signature = inspect.signature(function)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values()):
        # boolean_dispatch wrappers: the real signature is on the _with_indices twin.
        signature = inspect.signature(getattr(F, f"{name}_with_indices"))
    return [
        p.name for p in list(signature.parameters.values())[1:]
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and not p.name.startswith("_")
    ]


def test_functional_signatures_mirror_torch():
    """Same positional parameters as torch (input renamed x), then keyword-only options."""
    compared = 0
    for name in FUNCTIONS:
        if not hasattr(F, name):
            continue
        ours = [
            p.name for p in inspect.signature(getattr(jaxpool, name)).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
        # avg_pool1d also takes divisor_override, as the 2D/3D ops do (torch's 1D lacks it).
        extension = ["divisor_override"] if name == "avg_pool1d" else []
        assert ours == ["x", *_torch_positional(name), *extension], name
        compared += 1
    assert compared >= 20


def test_every_op_takes_channels_first_keyword_only():
    for name in OPS:
        parameter = inspect.signature(getattr(jaxpool, name)).parameters["channels_first"]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.default is False, name


def test_modules_document_their_attributes():
    for name in MODULES:
        doc = inspect.getdoc(getattr(jaxpool, name))
        assert "Attributes:" in doc, name


def test_annotations_use_arraylike_in():
    for name in OPS:
        annotation = str(inspect.signature(getattr(jaxpool, name)).parameters["x"].annotation)
        assert "ArrayLike" in annotation, (name, annotation)


# ----------------------------------------------------------------------------------
# jaxpool.nnx: the NNX twins


def test_every_linen_module_and_model_has_an_nnx_twin():
    import jaxpool.models

    jpn = _import("jaxpool.nnx")
    linen = [*MODULES, "make_model", "make_pooling"] + [
        name for name in jaxpool.models.__all__ if name[0].isupper() and not name.isupper()]
    assert set(linen) <= set(jpn.__all__)


def test_nnx_docstrings_point_at_the_linen_twin():
    """An NNX twin's docstring says what differs and names its linen twin, whose
    docstring has the rest (the shapes, the attributes); its example is checked above."""
    jpn = _import("jaxpool.nnx")
    for name in jpn.__all__:
        twin = getattr(jpn, name)
        if not inspect.isclass(twin) and name not in ("make_model", "make_pooling"):
            continue  # load_variables and variables have no linen twin
        home = "jaxpool" if hasattr(jaxpool, name) else "jaxpool.models"
        assert f":{'class' if inspect.isclass(twin) else 'func'}:`{home}.{name}`" in (
            _own_docstring(jpn, name) or ""), name


# What NNX adds or renames, on purpose: channel counts at construction, and a mode that
# is the module's state (nnx.BatchNorm's default) rather than an argument.
NNX_RENAMED = {"features": "out_features"}
NNX_DEFAULTS = {("BatchNorm", "use_running_average"): False}


def test_nnx_twins_take_the_linen_attributes_with_the_same_defaults():
    import dataclasses

    import jaxpool.models

    jpn = _import("jaxpool.nnx")

    for name in jpn.__all__:
        twin = getattr(jpn, name)
        original = getattr(jaxpool, name, None) or getattr(jaxpool.models, name, None)
        if not inspect.isclass(twin) or original is None:
            continue
        parameters = inspect.signature(twin.__init__).parameters
        for field in dataclasses.fields(original):
            if field.name in ("parent", "name"):
                continue
            argument = parameters[NNX_RENAMED.get(field.name, field.name)]
            default = NNX_DEFAULTS.get((name, field.name), field.default)
            if default is not dataclasses.MISSING:
                assert argument.default == default, (name, field.name)
        if "rngs" in parameters:
            assert parameters["rngs"].kind is inspect.Parameter.KEYWORD_ONLY, name
        for argument in parameters.values():  # flags are keyword-only
            if isinstance(argument.default, bool):
                assert argument.kind is inspect.Parameter.KEYWORD_ONLY, (name, argument.name)
