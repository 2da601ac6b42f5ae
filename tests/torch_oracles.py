"""Imports of the oracle libraries built on torch that do not import as they are here:
torchvision, and timm (which imports torchvision).

The test extra pins ``torch==2.13.0`` (the CPU build) and ``torchvision==0.28.0``;
torchvision's wheel is built against torch's CUDA build, so its compiled operators
(``torchvision::nms``, ``roi_align``, ...) are not registered beside the CPU build. Its
``__init__`` then fails while registering their fake (meta) kernels with
``torch.library.register_fake``: "operator torchvision::nms does not exist". The Python
parts (transforms, timm's layers) never need those kernels, so :func:`import_torchvision`
lets ``register_fake`` do nothing for the duration of the import and restores it after.
Anything that calls torchvision's compiled operators (``torchvision.ops.nms``,
``roi_align``) still fails, with torch's own error.

``TORCHDYNAMO_DISABLE=1`` is set (unless already set) so that any function that timm
or torchvision wraps in ``torch.compile`` runs eagerly: no compiler threads on the
shared 2-core machine, and the oracle computes what eager torch computes. torch reads
the variable when ``torch.compile`` is called, not when torch is imported, so setting it
here works even after conftest or another test module imported torch.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from types import ModuleType

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import torch  # after the environment variable, for clarity


@contextlib.contextmanager
def _fake_kernels_ignored():
    original = torch.library.register_fake

    def register_fake(*args, **kwargs):
        # The decorator form register_fake("torchvision::nms") returns a decorator;
        # the direct form register_fake(name, function) returns the function.
        if len(args) >= 2 and callable(args[1]):
            return args[1]
        return lambda function: function

    torch.library.register_fake = register_fake
    try:
        yield
    finally:
        torch.library.register_fake = original


def import_torchvision() -> ModuleType:
    """``import torchvision``, with its compiled operators' fake kernels not registered
    (see the module docstring). Importing it twice is free."""
    with _fake_kernels_ignored():
        return importlib.import_module("torchvision")


def import_timm() -> ModuleType:
    """``import timm`` (after :func:`import_torchvision`, which timm imports)."""
    import_torchvision()
    return importlib.import_module("timm")
