"""Imports of the torch libraries beyond torch itself that the tests use as oracles.

One place for each, because the import needs care that every test module would
otherwise repeat (and get subtly different).
"""

from __future__ import annotations

import functools
import os


@functools.cache
def import_torchvision():
    """``torchvision``, importable beside the CPU build of torch, its Python ops usable.

    The test extra pins ``torchvision==0.28.0``, whose wheel carries compiled operators
    built against a CUDA build of torch; beside the CPU build they do not load, and
    ``import torchvision`` then fails while registering their fake (meta) kernels with
    ``RuntimeError: operator torchvision::nms does not exist``. The tests use only
    torchvision's pure-PyTorch code (``torchvision.ops.roi_align._roi_align``), which needs
    neither, so ``torch.library.register_fake`` is a no-op decorator for the length of
    the import (and restored after it, also on failure).

    torchvision wraps ``_roi_align`` in a ``torch.compile`` made on its first call;
    ``TORCHDYNAMO_DISABLE=1`` (set here, for this process, before that call; torch reads
    it when the compile is made) keeps it eager: no compiler in the tests (minutes on
    two cores, and a C++ toolchain), the reference's own arithmetic.
    """
    os.environ["TORCHDYNAMO_DISABLE"] = "1"
    import torch.library

    register_fake = torch.library.register_fake

    def skip_registration(*args, **kwargs):
        return lambda function: function

    torch.library.register_fake = skip_registration
    try:
        import torchvision
    finally:
        torch.library.register_fake = register_fake
    return torchvision
