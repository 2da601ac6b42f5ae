"""Tests of the public surface (jaxpool/__init__.py): names, signatures, docstrings."""

import inspect

import torch.nn.functional as F

import jaxpool

FUNCTIONS = [name for name in jaxpool.__all__ if name[0].islower()]
MODULES = [name for name in jaxpool.__all__ if name[0].isupper()]


def test_all_lists_exactly_the_public_names():
    public = {name for name in vars(jaxpool) if not name.startswith("_")}
    submodules = {name for name in public if inspect.ismodule(getattr(jaxpool, name))}
    assert set(jaxpool.__all__) == public - submodules
    assert len(jaxpool.__all__) == len(set(jaxpool.__all__))


def test_every_public_name_has_a_docstring_with_a_runnable_example():
    for name in jaxpool.__all__:
        doc = inspect.getdoc(getattr(jaxpool, name)) or ""
        assert len(doc.splitlines()) > 3, name
        assert ">>> " in doc, f"{name}: no runnable example"


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
    for name in FUNCTIONS:
        if name == "pool_output_shape":
            continue
        parameter = inspect.signature(getattr(jaxpool, name)).parameters["channels_first"]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.default is False, name


def test_modules_document_their_attributes():
    for name in MODULES:
        doc = inspect.getdoc(getattr(jaxpool, name))
        assert "Attributes:" in doc, name


def test_annotations_use_arraylike_in():
    for name in FUNCTIONS:
        if name == "pool_output_shape":
            continue
        annotation = str(inspect.signature(getattr(jaxpool, name)).parameters["x"].annotation)
        assert "ArrayLike" in annotation, (name, annotation)
