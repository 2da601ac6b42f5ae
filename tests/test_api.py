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
        assert ours == ["x"] + _torch_positional(name) + extension, name
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


# ----------------------------------------------------------------------------------
# jaxpool.nnx: the NNX twins


def test_nnx_all_lists_exactly_the_public_names():
    import jaxpool.nnx as jpn

    public = {name for name in vars(jpn) if not name.startswith("_")}
    submodules = {name for name in public if inspect.ismodule(getattr(jpn, name))}
    assert set(jpn.__all__) == public - submodules
    assert len(jpn.__all__) == len(set(jpn.__all__))


def test_every_linen_module_and_model_has_an_nnx_twin_with_a_runnable_example():
    import jaxpool.models
    import jaxpool.nnx as jpn

    linen = MODULES + [name for name in jaxpool.models.__all__ if name[0].isupper()
                       and not name.isupper()] + ["make_model", "make_pooling"]
    assert set(linen) <= set(jpn.__all__)
    for name in jpn.__all__:
        doc = inspect.getdoc(getattr(jpn, name)) or ""
        assert ">>> " in doc, f"jaxpool.nnx.{name}: no runnable example"
        if name[0].isupper():
            assert "Attributes:" in doc, name


# What NNX adds or renames, on purpose: channel counts at construction, and a mode that
# is the module's state (nnx.BatchNorm's default) rather than an argument.
NNX_RENAMED = {"features": "out_features"}
NNX_DEFAULTS = {("BatchNorm", "use_running_average"): False}


def test_nnx_twins_take_the_linen_attributes_with_the_same_defaults():
    import dataclasses

    import jaxpool.models
    import jaxpool.nnx as jpn

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
