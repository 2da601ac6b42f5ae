"""Shared test helpers: run torch as the oracle on jaxpool's layouts.

jaxpool takes ``(*batch, *spatial, C)`` (or ``(*batch, C, *spatial)``); torch takes
``(N, C, *spatial)``. These helpers move between the two, call both, and compare
forward values, indices and vector-Jacobian products; they also hold the PyTorch
modules of the hybrid-pooling tutorial (``HybridPooling``, ``HybridPoolingWithAttention``,
``HybridResNetBlock``) that jaxpool's learnable modules reproduce.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import jaxpool
from jaxpool import _kernel_common


def to_torch_layout(x: np.ndarray, n: int, channels_first: bool) -> np.ndarray:
    """``(*batch, *spatial, C)`` or ``(*batch, C, *spatial)`` -> ``(N, C, *spatial)``."""
    if not channels_first:
        x = np.moveaxis(x, -1, -n - 1)
    batch = x.shape[: x.ndim - n - 1]
    return x.reshape((math.prod(batch), *x.shape[x.ndim - n - 1 :]))


def from_torch_layout(y: np.ndarray, batch: tuple, n: int, channels_first: bool) -> np.ndarray:
    """Inverse of :func:`to_torch_layout` for an output of torch."""
    y = y.reshape((*batch, *y.shape[1:]))
    if not channels_first:
        y = np.moveaxis(y, -n - 1, -1)
    return y


def compare_with_torch(
    jax_fn: Callable,
    torch_fn: Callable,
    x: np.ndarray,
    n: int,
    channels_first: bool,
    *,
    indices: bool = False,
    exact: bool = True,
    grad: bool = True,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    seed: int = 0,
) -> None:
    """Checks forward (and indices, and VJP) of ``jax_fn(x)`` against ``torch_fn``.

    ``jax_fn`` takes the jaxpool-layout array; ``torch_fn`` takes an ``(N, C, *spatial)``
    tensor. With ``indices``, both return ``(values, indices)``. The cotangent holds small
    integers, so sums of it are exact in any order; ``exact`` then demands bit equality
    of values and gradients (max pooling), else ``rtol``/``atol`` apply.
    """
    batch = x.shape[: x.ndim - n - 1]
    t_in = torch.tensor(to_torch_layout(x, n, channels_first), requires_grad=grad)
    t_out = torch_fn(t_in)
    t_values, t_index = t_out if indices else (t_out, None)
    j_out = jax_fn(jnp.asarray(x))
    j_values, j_index = j_out if indices else (j_out, None)

    expected = from_torch_layout(t_values.detach().numpy(), batch, n, channels_first)
    chex.assert_shape(j_values, expected.shape)
    assert j_values.dtype == jnp.asarray(x).dtype, (j_values.dtype, x.dtype)
    _assert_close(np.asarray(j_values), expected, exact, rtol, atol, "forward")
    if indices:
        expected_index = from_torch_layout(t_index.numpy(), batch, n, channels_first)
        np.testing.assert_array_equal(np.asarray(j_index), expected_index, err_msg="indices")
    if not grad:
        return
    rng = np.random.default_rng(seed)
    cotangent = rng.integers(-3, 4, size=expected.shape).astype(x.dtype)
    (t_grad,) = torch.autograd.grad(
        t_values,
        t_in,
        torch.tensor(to_torch_layout(cotangent, n, channels_first)),
    )
    values_only = (lambda v: jax_fn(v)[0]) if indices else jax_fn
    _, vjp = jax.vjp(values_only, jnp.asarray(x))
    (j_grad,) = vjp(jnp.asarray(cotangent))
    expected_grad = from_torch_layout(t_grad.numpy(), batch, n, channels_first)
    _assert_close(np.asarray(j_grad), expected_grad, exact, rtol, atol, "gradient")


def _assert_close(actual, expected, exact, rtol, atol, what):
    if exact:
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def sample_input(
    rng: np.random.Generator,
    shape: tuple,
    *,
    ties: bool,
    nan: bool,
    dtype=np.float32,
) -> np.ndarray:
    """Random input; ``ties`` draws from few integers (many equal maxima), ``nan`` adds NaNs."""
    if ties:
        x = rng.integers(-2, 3, size=shape).astype(dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    if nan and x.size:
        flat = x.reshape(-1)
        count = max(1, flat.size // 25)
        flat[rng.choice(flat.size, size=count, replace=False)] = np.nan
    return x


class FamilyTestCase(chex.TestCase):
    """A ``chex.TestCase`` whose tests run under one kernel family.

    unittest classes cannot take pytest's parametrised fixtures, so a parity suite
    subclasses its TestCase once per family: ``class T(FamilyTestCase)`` runs with the
    ``cpu`` family, ``class TReduceWindow(T): family = "reduce_window"`` with the other.
    """

    family = "cpu"

    def setUp(self):
        super().setUp()
        # chex counts traces per function's code: the other family's run of the same
        # test must not count against this one.
        chex.clear_trace_counter()
        context = jaxpool.kernels(self.family)
        context.__enter__()
        self.addCleanup(context.__exit__, None, None, None)


@contextlib.contextmanager
def recorded_paths():
    """The kernel implementation paths traced inside the block ("max:taps",
    "reduce_window:max", ...); jit caches are cleared first so that everything traces."""
    jax.clear_caches()
    _kernel_common._path_log = []
    try:
        yield _kernel_common._path_log
    finally:
        _kernel_common._path_log = None


TOLERANCE = dict(rtol=1e-5, atol=1e-5)  # the learnable modules against the tutorial's


# ----------------------------------------------------------------------------------
# The PyTorch modules of the hybrid-pooling tutorial that jaxpool reproduces


class HybridPooling(nn.Module):
    def __init__(self, kernel_size=2, stride=2):
        super().__init__()
        self.max_pool = nn.MaxPool2d(kernel_size, stride)
        self.avg_pool = nn.AvgPool2d(kernel_size, stride)
        self.weight = nn.Parameter(torch.rand(1))

    def forward(self, x):
        alpha = torch.sigmoid(self.weight)
        return alpha * self.max_pool(x) + (1 - alpha) * self.avg_pool(x)


class HybridPoolingWithAttention(nn.Module):
    def __init__(self, channels, kernel_size=2, stride=2, reduction=4):
        super().__init__()
        self.max_pool = nn.MaxPool2d(kernel_size, stride)
        self.avg_pool = nn.AvgPool2d(kernel_size, stride)
        hidden = max(1, channels // reduction)  # the tutorial's channels // 4 is 0 for C < 4
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(),
            nn.Linear(hidden, channels),
            nn.Sigmoid(),
        )

    def forward(self, x):
        b, c, _, _ = x.size()
        attention = self.fc(x.mean(dim=(2, 3))).view(b, c, 1, 1)
        return attention * self.max_pool(x) + (1 - attention) * self.avg_pool(x)


class TorchHybridResNetBlock(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.pool = HybridPoolingWithAttention(out_channels)
        self.shortcut = nn.Identity()
        if in_channels != out_channels:  # the tutorial's residual addition fails here
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        residual = self.shortcut(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + residual
        out = F.relu(out)
        return self.pool(out)


def nhwc(t: torch.Tensor) -> np.ndarray:
    """A torch output ``(N, C, H, W)`` as a NumPy array in jaxpool's ``(N, H, W, C)``."""
    return np.moveaxis(t.detach().numpy(), 1, -1)


def run_torch(module, x_nhwc, cotangent_nhwc):
    """Output, input gradient and {name: gradient} of every parameter."""
    x = torch.tensor(np.moveaxis(x_nhwc, -1, 1), requires_grad=True)
    out = module(x)
    module.zero_grad()
    out.backward(torch.tensor(np.moveaxis(cotangent_nhwc, -1, 1)))
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    return out, x.grad, grads


def torch_grads_as_flax(converter, torch_module, grads):
    """Converts torch parameter gradients to the Flax params layout (same converter)."""
    state = dict(grads)
    for name, buffer in torch_module.named_buffers():
        state.setdefault(name, torch.zeros_like(buffer))  # running stats: not gradients
    return converter(state)["params"]
