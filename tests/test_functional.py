"""Tests of jaxpool._functional: max/min/avg/LP pooling, unpooling, fractional pooling.

torch.nn.functional is the oracle: forward values, indices and gradients are compared
over hypothesis-generated configurations (1D/2D/3D, every option, ties, NaN, both
layouts, unbatched and multi-batch inputs).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

import jaxpool
from tests.helpers import TUTORIAL_GRID
from tests.oracle import FamilyTestCase, compare_with_torch, sample_input

# Every test function runs once per kernel family (conftest.py); the TestCase classes
# have a subclass per family.
PER_KERNEL_FAMILY = True

# ----------------------------------------------------------------------------------
# The seed articles' examples, exactly

SIXTEEN = jnp.arange(1.0, 17.0).reshape(4, 4)


def test_seed_max_pool_example():
    out = jaxpool.max_pool2d(SIXTEEN[:, :, None], 2, 2)[..., 0]
    np.testing.assert_array_equal(out, [[6, 8], [14, 16]])


def test_seed_avg_pool_example():
    out = jaxpool.avg_pool2d(SIXTEEN[:, :, None], 2, 2)[..., 0]
    np.testing.assert_array_equal(out, [[3.5, 5.5], [11.5, 13.5]])


def test_seed_grid_max_pool_example():
    out = jaxpool.max_pool2d(TUTORIAL_GRID[None, :, :, None], 2, 2)[0, ..., 0]
    np.testing.assert_array_equal(out, [[6, 8], [9, 3]])


def test_seed_examples_channels_first_match():
    out = jaxpool.max_pool2d(TUTORIAL_GRID[None, None], 2, 2, channels_first=True)
    np.testing.assert_array_equal(out[0, 0], [[6, 8], [9, 3]])


# ----------------------------------------------------------------------------------
# Hypothesis strategies


@st.composite
def window_case(draw, *, dilated: bool, max_dims: int = 3, paddable: bool = True):
    """A valid sliding-window configuration plus an input shape."""
    n = draw(st.integers(1, max_dims))
    max_kernel = {1: 5, 2: 4, 3: 3}[n]
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(n)) if dilated else (1,) * n
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel) if paddable else (0,) * n
    max_extra = {1: 8, 2: 5, 3: 3}[n]
    sizes = []
    for k, d, p in zip(kernel, dilation, padding, strict=True):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)
        if n == 3 and not dilated:
            smallest = max(smallest, k)  # torch's avg_pool3d refuses inputs below the kernel
        sizes.append(draw(st.integers(smallest, smallest + max_extra)))
    stride_per_dim = stride
    for k, s, d, p, size in zip(kernel, stride, dilation, padding, sizes, strict=True):
        # Dilation can step over every real element of a window; jaxpool refuses that
        # configuration (see test_window_without_real_elements_is_refused).
        span = size + 2 * p - d * (k - 1) - 1
        outputs = span // s + 1 + 1  # ceil mode may add one
        for o in range(outputs):
            taps = [o * s - p + j * d for j in range(k)]
            assume(any(0 <= t < size for t in taps) or o * s >= size + p)
    del stride_per_dim
    batch = draw(st.sampled_from([(), (2,), (1, 2)]))
    channels = draw(st.integers(1, 3))
    channels_first = draw(st.booleans())
    shape = (*batch, channels, *sizes) if channels_first else (*batch, *sizes, channels)
    # Exercise every argument form torch accepts: default stride, ints, tuples.
    stride_arg = draw(st.sampled_from(["none", "tuple"] + (["int"] if len(set(stride)) == 1 else [])))
    stride_value = None if stride_arg == "none" else (stride[0] if stride_arg == "int" else stride)
    if stride_value is None:
        stride = kernel
    return dict(
        n=n,
        kernel=kernel,
        stride=stride_value,
        dilation=dilation,
        padding=padding,
        ceil_mode=draw(st.booleans()),
        shape=shape,
        channels_first=channels_first,
        ties=draw(st.booleans()),
        nan=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def _torch_max(n):
    return {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]


def _jax_max(n):
    return {1: jaxpool.max_pool1d, 2: jaxpool.max_pool2d, 3: jaxpool.max_pool3d}[n]


# ----------------------------------------------------------------------------------
# Max pooling


@given(window_case(dilated=True))
def test_max_pool_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    x = sample_input(rng, case["shape"], ties=case["ties"], nan=case["nan"])
    args = (case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    n = case["n"]
    compare_with_torch(
        lambda v: _jax_max(n)(v, *args, True, channels_first=case["channels_first"]),
        lambda t: _torch_max(n)(t, *args, True),
        x,
        n,
        case["channels_first"],
        indices=True,
        exact=True,
        seed=case["seed"],
    )


@given(window_case(dilated=True))
def test_min_pool_is_negated_max_pool_of_negation(case):
    rng = np.random.default_rng(case["seed"])
    x = sample_input(rng, case["shape"], ties=case["ties"], nan=case["nan"])
    args = (case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    n = case["n"]
    jax_min = {1: jaxpool.min_pool1d, 2: jaxpool.min_pool2d, 3: jaxpool.min_pool3d}[n]

    def torch_min(t):
        values, index = _torch_max(n)(-t, *args, True)
        return -values, index

    compare_with_torch(
        lambda v: jax_min(v, *args, True, channels_first=case["channels_first"]),
        torch_min,
        x,
        n,
        case["channels_first"],
        indices=True,
        exact=True,
        seed=case["seed"],
    )


def test_max_pool_ties_give_whole_gradient_to_first_maximum():
    x = jnp.ones((4, 4, 1))
    grad = jax.grad(lambda v: jaxpool.max_pool2d(v, 2).sum())(x)[..., 0]
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(grad, expected)
    # jnp.max would split it: the rule differs from JAX's own.
    split = jax.grad(lambda v: v.reshape(2, 2, 2, 2).max(axis=(1, 3)).sum())(x[..., 0])
    assert not np.array_equal(split, expected)


def test_max_pool_nan_window_gives_nan_and_points_at_last_nan():
    x = jnp.array([[1.0, jnp.nan], [jnp.nan, 2.0]])[..., None]
    value, index = jaxpool.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(value[0, 0, 0])
    assert index[0, 0, 0] == 2
    grad = jax.grad(lambda v: jaxpool.max_pool2d(v, 2).sum())(x)[..., 0]
    np.testing.assert_array_equal(grad, [[0, 0], [1, 0]])


def test_dilated_max_pool_has_a_gradient():
    x = jnp.arange(25.0).reshape(5, 5, 1)
    grad = jax.grad(lambda v: jaxpool.max_pool2d(v, 3, 1, 0, 2).sum())(x)
    assert grad[4, 4, 0] == 1 and grad.sum() == 1
    with pytest.raises(NotImplementedError):  # what JAX itself does
        jax.grad(
            lambda v: jax.lax.reduce_window(
                v, -jnp.inf, jax.lax.max, (3, 3, 1), (1, 1, 1), "VALID", window_dilation=(2, 2, 1)
            ).sum()
        )(x)


# Long windows at stride 1 with "same" padding (YOLO's SPP and SPPF), and other long
# windows whose padding puts many outputs at a border: separable stages, border outputs
# in merged blocks with padded taps (see jaxpool._kernels_cpu._segments).
LONG_WINDOWS = [
    (2, (20, 20), 5, 1, 2, 1),
    (2, (20, 17), 9, 1, 4, 1),
    (2, (19, 21), 13, 1, 6, 1),
    (2, (6, 7), 13, 1, 6, 1),  # every output at a border
    (2, (23, 18), 11, 2, 5, 1),
    (2, (16, 15), 7, 1, 3, 2),
    (1, (30,), 17, 1, 8, 1),
    (3, (11, 10, 9), 7, 1, 3, 1),
]


# Ties and NaNs in every configuration; windows of -inf and integers in a 2D one, the one
# where every output is at a border, and the 3D one.
LONG_WINDOW_CASES = [(*window, values) for window in LONG_WINDOWS for values in ("ties", "nan")] + [
    (*LONG_WINDOWS[i], values) for i in (0, 3, 7) for values in ("-inf", "int32")
]


@pytest.mark.parametrize("n, sizes, kernel, stride, padding, dilation, values", LONG_WINDOW_CASES)
def test_long_windows_match_torch(n, sizes, kernel, stride, padding, dilation, values):
    rng = np.random.default_rng(kernel)
    x = rng.integers(-2, 3, (2, *sizes, 3)).astype(np.float32)  # many equal maxima
    if values == "nan":
        x[rng.random(x.shape) < 0.05] = np.nan
    if values == "-inf":  # whole windows of -inf: torch points at the first real element
        x[rng.random(x.shape) < 0.9] = -np.inf
    args = (kernel, stride, padding, dilation)
    if values == "int32":  # torch has no integer max_pool1d: its float result, exact here
        expected = _torch_max(n)(torch.tensor(np.moveaxis(x, -1, 1)), *args).numpy()
        ours = _jax_max(n)(jnp.asarray(x.astype(np.int32)), *args)
        assert ours.dtype == jnp.int32
        np.testing.assert_array_equal(np.moveaxis(np.asarray(ours), -1, 1), expected.astype(np.int32))
        return
    compare_with_torch(
        lambda v: _jax_max(n)(v, *args, return_indices=True),
        lambda t: _torch_max(n)(t, *args, return_indices=True),
        x, n, False, indices=True, exact=True,
    )
    # The plain maxima (no gradient taken) are torch's too.
    plain = jax.jit(lambda v: _jax_max(n)(v, *args))(jnp.asarray(x))
    expected = _torch_max(n)(torch.tensor(np.moveaxis(x, -1, 1)), *args).numpy()
    np.testing.assert_array_equal(np.moveaxis(np.asarray(plain), -1, 1), expected)


def test_sppf_cascade_matches_torch():
    """YOLO's SPPF: three 5x5 stride-1 max poolings in a row, concatenated."""
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (2, 12, 12, 4)).astype(np.float32)

    def sppf(v, pool, join):
        a = pool(v)
        b = pool(a)
        return join([v, a, b, pool(b)])

    def ours(v):
        return sppf(v, lambda u: jaxpool.max_pool2d(u, 5, 1, 2), lambda p: jnp.concatenate(p, -1))

    def theirs(t):
        return sppf(t, lambda u: F.max_pool2d(u, 5, 1, 2), lambda p: torch.cat(p, 1))

    compare_with_torch(jax.jit(ours), theirs, x, 2, False, exact=True)


def test_second_derivative_through_separable_max_pool():
    x = jax.random.normal(jax.random.key(3), (9, 9, 2))

    def loss(v):
        return jnp.sum(jaxpool.max_pool2d(v, 5, 1, 2) ** 3)

    hessian_vector = jax.jvp(jax.grad(loss), (x,), (jnp.ones_like(x),))[1]
    pooled, index = jaxpool.max_pool2d(x, 5, 1, 2, return_indices=True)
    # d2/dx2 of sum(max ** 3) along ones: 6 * max at each chosen element, summed.
    expected = np.zeros((81, 2))
    for channel in range(2):
        np.add.at(expected[:, channel], np.asarray(index[..., channel]).reshape(-1),
                  6 * np.asarray(pooled[..., channel]).reshape(-1))
    np.testing.assert_allclose(np.asarray(hessian_vector).reshape(81, 2), expected, rtol=1e-5)


def test_max_pool_all_negative_infinity_window_points_at_first_real_element():
    x = jnp.full((3, 3, 1), -jnp.inf)
    _, index = jaxpool.max_pool2d(x, 2, 2, 1, return_indices=True)
    expected = F.max_pool2d(torch.full((1, 3, 3), -float("inf")), 2, 2, 1, return_indices=True)[1]
    np.testing.assert_array_equal(index[..., 0], expected[0].numpy())


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.int8, jnp.uint8])
def test_max_pool_integers_match_torch(dtype):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, size=(2, 3, 9, 8), endpoint=True).astype(dtype)
    x[0, 0, :3, :3] = info.min
    torch_x = torch.tensor(x.astype(np.int64) if dtype == jnp.uint8 else x)
    values, index = F.max_pool2d(torch_x, 3, 2, 1, return_indices=True)
    j_values, j_index = jaxpool.max_pool2d(x, 3, 2, 1, return_indices=True, channels_first=True)
    assert j_values.dtype == dtype
    np.testing.assert_array_equal(j_values, values.numpy().astype(dtype))
    np.testing.assert_array_equal(j_index, index.numpy())
    j_min = jaxpool.min_pool2d(x, 3, 2, 1, channels_first=True)
    # ~x reverses integer order without the overflow of -x at the minimum.
    expected_min = torch.bitwise_not(F.max_pool2d(torch.bitwise_not(torch_x), 3, 2, 1))
    np.testing.assert_array_equal(j_min, expected_min.numpy().astype(dtype))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_max_pool_low_precision_matches_torch(dtype):
    rng = np.random.default_rng(1)
    x32 = rng.standard_normal((2, 3, 10, 10)).astype(np.float32)
    t = torch.tensor(x32).to(getattr(torch, dtype))
    expected = F.max_pool2d(t, 3, 2, 1).float().numpy()
    got = jaxpool.max_pool2d(jnp.asarray(x32).astype(dtype), 3, 2, 1, channels_first=True)
    assert got.dtype == jnp.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(got.astype(jnp.float32)), expected)


# ----------------------------------------------------------------------------------
# Average pooling


def _torch_avg(n, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    if n == 1:
        # torch's avg_pool1d has no divisor_override: use 2D with a unit height.
        def avg1d(t):
            out = F.avg_pool2d(
                t[:, :, None, :],
                (1, kernel[0]),
                None if stride is None else (1, stride if isinstance(stride, int) else stride[0]),
                (0, padding[0]),
                ceil_mode,
                count_include_pad,
                divisor_override,
            )
            return out[:, :, 0, :]

        return avg1d
    fn = F.avg_pool2d if n == 2 else F.avg_pool3d
    return lambda t: fn(t, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)


@given(
    window_case(dilated=False),
    st.booleans(),
    st.sampled_from([None, None, 1, 3, -2]),
)
def test_avg_pool_matches_torch(case, count_include_pad, divisor_override):
    rng = np.random.default_rng(case["seed"])
    x = sample_input(rng, case["shape"], ties=case["ties"], nan=case["nan"])
    n = case["n"]
    jax_avg = {1: jaxpool.avg_pool1d, 2: jaxpool.avg_pool2d, 3: jaxpool.avg_pool3d}[n]
    args = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"], count_include_pad,
            divisor_override)
    compare_with_torch(
        lambda v: jax_avg(v, *args, channels_first=case["channels_first"]),
        _torch_avg(n, *args),
        x,
        n,
        case["channels_first"],
        exact=False,
        rtol=2e-6,
        atol=2e-6,
        seed=case["seed"],
    )


def test_avg_pool_integer_inputs_are_exact():
    # Small integers sum exactly in any order, so the division is torch's, bit for bit.
    x = np.random.default_rng(2).integers(-9, 10, (2, 3, 11, 9)).astype(np.float32)
    for kwargs in [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                   dict(kernel_size=(2, 3), stride=1, padding=(1, 0), count_include_pad=False)]:
        expected = F.avg_pool2d(torch.tensor(x), **kwargs).numpy()
        np.testing.assert_array_equal(jaxpool.avg_pool2d(x, **kwargs, channels_first=True), expected)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_avg_pool_low_precision_accumulates_in_float32(dtype):
    x32 = np.random.default_rng(3).standard_normal((2, 64, 64, 4)).astype(np.float32)
    low = jnp.asarray(x32).astype(dtype)
    got = jaxpool.avg_pool2d(low, 8)
    assert got.dtype == jnp.dtype(dtype)
    # Reference: the same low-precision values summed in float64, rounded once.
    reference = np.asarray(low.astype(jnp.float32), np.float64).reshape(2, 8, 8, 8, 8, 4).mean((2, 4))
    np.testing.assert_array_equal(np.asarray(got), np.asarray(jnp.asarray(reference).astype(dtype)))
    torch_out = F.avg_pool2d(torch.tensor(np.moveaxis(x32, -1, 1)).to(getattr(torch, dtype)), 8)
    np.testing.assert_allclose(
        np.moveaxis(torch_out.float().numpy(), 1, -1), np.asarray(got.astype(jnp.float32)),
        rtol=1e-2,
    )


# ----------------------------------------------------------------------------------
# LP pooling


@given(window_case(dilated=False, paddable=False), st.sampled_from([1, 2, 3, 1.5, 4.0]))
def test_lp_pool_matches_torch(case, norm_type):
    rng = np.random.default_rng(case["seed"])
    x = sample_input(rng, case["shape"], ties=case["ties"], nan=case["nan"])
    n = case["n"]
    jax_lp = {1: jaxpool.lp_pool1d, 2: jaxpool.lp_pool2d, 3: jaxpool.lp_pool3d}[n]
    torch_lp = {1: F.lp_pool1d, 2: F.lp_pool2d, 3: F.lp_pool3d}[n]
    kernel = case["kernel"][0] if n == 1 else case["kernel"]
    stride = case["stride"]
    if n == 1 and isinstance(stride, tuple):
        stride = stride[0]
    compare_with_torch(
        lambda v: jax_lp(v, norm_type, kernel, stride, case["ceil_mode"],
                         channels_first=case["channels_first"]),
        lambda t: torch_lp(t, norm_type, kernel, stride, case["ceil_mode"]),
        x,
        n,
        case["channels_first"],
        exact=False,
        rtol=1e-5,
        atol=1e-5,
        seed=case["seed"],
    )


def test_lp_pool_infinity_is_max_of_absolute_values():
    x = jnp.array([[-5.0], [1.0], [2.0], [-1.0]])
    np.testing.assert_array_equal(jaxpool.lp_pool1d(x, float("inf"), 2)[:, 0], [5.0, 2.0])


def test_lp_pool_zero_window_has_zero_gradient():
    x = jnp.array([[0.0], [0.0], [1.0], [2.0]])
    grad = jax.grad(lambda v: jaxpool.lp_pool1d(v, 2, 2).sum())(x)
    assert np.all(np.isfinite(grad)) and grad[0, 0] == 0 and grad[1, 0] == 0


# Inputs smaller than the kernel in some dimension: each op accepts exactly what torch
# accepts (torch's avg_pool3d, and lp_pool3d through it, refuse them even in ceil mode),
# with the same numbers when accepted.
SMALL_INPUTS = [
    (1, (1,), 2), (2, (1, 3), 2), (2, (3, 1), (2, 2)), (3, (4, 6, 1), (1, 2, 2)),
    (3, (1, 3, 3), 2), (3, (3, 3, 3), 4),
]


def _torch_pool(kind, n):
    return {"avg": {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d},
            "max": {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d},
            "lp": {1: F.lp_pool1d, 2: F.lp_pool2d, 3: F.lp_pool3d}}[kind][n]


def _jax_pool(kind, n):
    return getattr(jaxpool, f"{kind}_pool{n}d")


@pytest.mark.parametrize("n, size, kernel", SMALL_INPUTS)
@pytest.mark.parametrize("kind", ["avg", "max", "lp"])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_inputs_smaller_than_the_kernel_are_refused_exactly_as_torch(n, size, kernel, kind,
                                                                      ceil_mode):
    x = np.random.default_rng(0).standard_normal((2, 3, *size)).astype(np.float32) + 3.0
    if kind == "lp":
        ours = lambda v: _jax_pool(kind, n)(v, 2, kernel, None, ceil_mode, channels_first=True)  # noqa: E731
        theirs = lambda t: _torch_pool(kind, n)(t, 2, kernel, None, ceil_mode)  # noqa: E731
    else:
        ours = lambda v: _jax_pool(kind, n)(v, kernel, None, 0, ceil_mode=ceil_mode,  # noqa: E731
                                            channels_first=True)
        theirs = lambda t: _torch_pool(kind, n)(t, kernel, None, 0, ceil_mode=ceil_mode)  # noqa: E731
    try:
        theirs(torch.tensor(x))
    except RuntimeError as error:
        with pytest.raises(ValueError) as raised:
            ours(jnp.asarray(x))
        message = str(error).splitlines()[0]
        if "smaller than kernel size" in message:
            assert message.split(")")[0] in str(raised.value)  # torch's wording
        return
    compare_with_torch(ours, theirs, x, n, True, exact=kind == "max", rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------
# Unpooling


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("channels_first", [False, True])
def test_max_unpool_matches_torch(n, channels_first):
    rng = np.random.default_rng(n)
    shape = (2, 3) + (7,) * n if n < 3 else (2, 3, 5, 6, 7)
    x = rng.standard_normal(shape).astype(np.float32)
    t = torch.tensor(x)
    values, index = _torch_max(n)(t, 3, 2, 1, return_indices=True)
    unpool = {1: F.max_unpool1d, 2: F.max_unpool2d, 3: F.max_unpool3d}[n]
    j_unpool = {1: jaxpool.max_unpool1d, 2: jaxpool.max_unpool2d, 3: jaxpool.max_unpool3d}[n]
    out_size = shape[2:]
    expected = unpool(values, index, 3, 2, 1, output_size=out_size).numpy()
    j_values, j_index = values.numpy(), index.numpy().astype(np.int32)
    if not channels_first:
        j_values, j_index = np.moveaxis(j_values, 1, -1), np.moveaxis(j_index, 1, -1)
    got = j_unpool(j_values, j_index, 3, 2, 1, out_size, channels_first=channels_first)
    if not channels_first:
        got = np.moveaxis(np.asarray(got), -1, 1)
    np.testing.assert_array_equal(got, expected)

    # Gradient: each value receives the output gradient at its index (duplicates too).
    t_values = values.clone().requires_grad_()
    cotangent = rng.integers(-3, 4, expected.shape).astype(np.float32)
    (t_grad,) = torch.autograd.grad(
        unpool(t_values, index, 3, 2, 1, output_size=out_size), t_values, torch.tensor(cotangent)
    )
    j_cot = cotangent if channels_first else np.moveaxis(cotangent, 1, -1)
    _, vjp = jax.vjp(
        lambda v: j_unpool(v, j_index, 3, 2, 1, out_size, channels_first=channels_first),
        jnp.asarray(j_values),
    )
    (j_grad,) = vjp(jnp.asarray(j_cot))
    if not channels_first:
        j_grad = np.moveaxis(np.asarray(j_grad), -1, 1)
    np.testing.assert_array_equal(j_grad, t_grad.numpy())


def test_max_unpool_default_output_size_and_round_trip():
    x = jnp.arange(1.0, 17.0).reshape(4, 4, 1)
    values, index = jaxpool.max_pool2d(x, 2, return_indices=True)
    restored = jaxpool.max_unpool2d(values, index, 2)
    chex.assert_shape(restored, (4, 4, 1))
    np.testing.assert_array_equal(jaxpool.max_pool2d(restored, 2), values)


# ----------------------------------------------------------------------------------
# Fractional max pooling


@given(
    st.integers(2, 3),
    st.integers(1, 3),
    st.integers(0, 4),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_fractional_max_pool_matches_torch(n, kernel, extra, channels_first, ties, seed):
    rng = np.random.default_rng(seed)
    out = tuple(int(v) for v in rng.integers(1, 5, n))
    sizes = tuple(o + kernel - 1 + int(rng.integers(0, extra + 1)) + (1 if n == 3 else 0) for o in out)
    batch = (2,)
    shape = (*batch, 3, *sizes) if channels_first else (*batch, *sizes, 3)
    x = sample_input(rng, shape, ties=ties, nan=ties)
    samples = rng.random((*batch, 3, n)).astype(np.float32)
    # torch's 2D samples list W before H; its 3D samples are in (T, H, W) order.
    torch_samples = torch.tensor(samples[..., ::-1].copy() if n == 2 else samples)
    torch_fn = F.fractional_max_pool2d if n == 2 else F.fractional_max_pool3d
    jax_fn = jaxpool.fractional_max_pool2d if n == 2 else jaxpool.fractional_max_pool3d
    compare_with_torch(
        lambda v: jax_fn(v, kernel, out, None, True, random_samples=samples,
                         channels_first=channels_first),
        lambda t: torch_fn(t, kernel, out, None, True, _random_samples=torch_samples),
        x,
        n,
        channels_first,
        indices=True,
        exact=True,
        seed=seed,
    )


def test_fractional_max_pool_key_is_deterministic_and_varies():
    x = jnp.arange(2 * 9 * 9 * 4, dtype=jnp.float32).reshape(2, 9, 9, 4)
    first = jaxpool.fractional_max_pool2d(x, 2, output_size=4, return_indices=True, key=jax.random.key(0))
    again = jaxpool.fractional_max_pool2d(x, 2, output_size=4, return_indices=True, key=jax.random.key(0))
    other = jaxpool.fractional_max_pool2d(x, 2, output_size=4, return_indices=True, key=jax.random.key(1))
    chex.assert_trees_all_equal(first, again)
    assert not np.array_equal(first[1], other[1])


def test_fractional_output_ratio():
    x = jnp.zeros((1, 10, 8, 2))
    out = jaxpool.fractional_max_pool2d(x, 2, output_ratio=(0.5, 0.75), key=jax.random.key(0))
    chex.assert_shape(out, (1, 5, 6, 2))


# ----------------------------------------------------------------------------------
# Transformations: jit, vmap, grad, no retracing


class TransformTest(FamilyTestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_variants_agree_with_torch(self):
        x = np.random.default_rng(4).standard_normal((2, 9, 9, 3)).astype(np.float32)
        expected = F.max_pool2d(torch.tensor(np.moveaxis(x, -1, 1)), 3, 2, 1).numpy()
        pool = self.variant(functools.partial(jaxpool.max_pool2d, kernel_size=3, stride=2, padding=1))
        got = pool(x)
        chex.assert_shape(got, (2, 5, 5, 3))
        chex.assert_trees_all_close(np.moveaxis(np.asarray(got), -1, 1), expected, rtol=0, atol=0)
        avg = self.variant(functools.partial(jaxpool.avg_pool2d, kernel_size=3, stride=2, padding=1))
        expected_avg = F.avg_pool2d(torch.tensor(np.moveaxis(x, -1, 1)), 3, 2, 1).numpy()
        chex.assert_trees_all_close(np.moveaxis(np.asarray(avg(x)), -1, 1), expected_avg, rtol=1e-6)

    def test_no_retracing_for_a_repeated_configuration(self):
        @jax.jit
        @chex.assert_max_traces(n=1)
        def pooled(v):
            return jaxpool.max_pool2d(v, (3, 3), 2, 1) + jaxpool.avg_pool2d(v, 3, 2, 1)

        x = jnp.ones((2, 8, 8, 3))
        pooled(x)
        pooled(x + 1)
        pooled(jnp.zeros((2, 8, 8, 3)))

    def test_vmap_over_an_extra_axis(self):
        x = jax.random.normal(jax.random.key(0), (5, 2, 8, 8, 3))
        per_example = jax.vmap(lambda v: jaxpool.max_pool2d(v, 2, return_indices=True))(x)
        batched = jaxpool.max_pool2d(x, 2, return_indices=True)
        chex.assert_trees_all_equal(per_example, batched)
        grads = jax.vmap(jax.grad(lambda v: jaxpool.avg_pool2d(v, 3, 1, 1).sum()))(x)
        chex.assert_trees_all_close(grads, jax.grad(lambda v: jaxpool.avg_pool2d(v, 3, 1, 1).sum())(x))

    def test_forward_mode_matches_reverse_mode(self):
        x = jax.random.normal(jax.random.key(1), (7, 7, 2))
        pool = functools.partial(jaxpool.max_pool2d, kernel_size=3, stride=2, padding=1, dilation=1)
        forward = jax.jacfwd(pool)(x)
        reverse = jax.jacrev(pool)(x)
        chex.assert_trees_all_equal(forward, reverse)

    def test_unbatched_input(self):
        x = jax.random.normal(jax.random.key(2), (6, 6, 3))
        chex.assert_trees_all_equal(jaxpool.max_pool2d(x, 2), jaxpool.max_pool2d(x[None], 2)[0])

    def test_zero_size_batch(self):
        out = jaxpool.max_pool2d(jnp.zeros((0, 6, 6, 3)), 2)
        chex.assert_shape(out, (0, 3, 3, 3))


# ----------------------------------------------------------------------------------
# Bad input: everything torch refuses, and what would silently go wrong


X2 = jnp.zeros((1, 6, 6, 2))

BAD_INPUTS = [
    (lambda: jaxpool.max_pool2d(X2, 2, stride=0), ValueError, "stride should be greater than zero, but got stride=0"),
    (lambda: jaxpool.avg_pool2d(X2, 2, stride=(1, -1)), ValueError, r"stride=\(1, -1\)"),
    (lambda: jaxpool.max_pool2d(X2, 0), ValueError, "kernel size should be greater than zero, but got kernel_size=0"),
    (lambda: jaxpool.max_pool2d(X2, 2, padding=-1), ValueError, "pad must be non-negative, but got padding=-1"),
    (lambda: jaxpool.max_pool2d(X2, 3, padding=2), ValueError, "pad should be at most half of effective kernel size, but got padding=2, kernel_size=3"),
    (lambda: jaxpool.max_pool2d(X2, 3, padding=2, dilation=2), ValueError, "pad should be smaller than or equal to half of kernel size, but got padding=2 and kernel_size=3"),
    (lambda: jaxpool.avg_pool1d(jnp.zeros((6, 1)), 2, padding=2), ValueError, "at most half"),
    (lambda: jaxpool.max_pool2d(X2, 2, dilation=0), ValueError, "dilation should be greater than zero, but got dilation=0"),
    (lambda: jaxpool.max_pool2d(X2, 7), ValueError, r"Given input size: \(6, 6\). Calculated output size: \(0, 0\). Output size is too small"),
    (lambda: jaxpool.avg_pool3d(jnp.zeros((2, 4, 4, 4, 1)), 5), ValueError, r"input image \(T: 4 H: 4 W: 4\) smaller than kernel size \(kT: 5 kH: 5 kW: 5\)"),  # torch checks this first
    (lambda: jaxpool.avg_pool3d(jnp.zeros((1, 1, 1, 1)), (1, 1, 2), padding=(0, 0, 1)), ValueError, r"input image \(T: 1 H: 1 W: 1\) smaller than kernel size"),
    (lambda: jaxpool.max_pool2d(jnp.zeros((6, 6)), 2), ValueError, r"at least 3 dimensions, but got shape \(6, 6\)"),
    (lambda: jaxpool.max_pool3d(jnp.zeros((6, 6, 6)), 2, channels_first=True), ValueError, r"\(\*batch, C, D, H, W\)"),
    (lambda: jaxpool.max_pool2d(jnp.zeros((1, 0, 6, 2)), 2), ValueError, "non-zero size for non-batch dimensions.*dimension 1 being empty"),
    (lambda: jaxpool.max_pool2d(jnp.zeros((1, 6, 6, 0)), 2), ValueError, "dimension 3 being empty"),
    (lambda: jaxpool.avg_pool2d(X2, 2, divisor_override=0), ValueError, "divisor must be not zero, but got divisor_override=0"),
    (lambda: jaxpool.avg_pool2d(X2, 2, divisor_override=1.5), TypeError, "divisor_override must be an int"),
    (lambda: jaxpool.lp_pool2d(X2, 0, 2), ValueError, "norm_type must be positive.*norm_type=0"),
    (lambda: jaxpool.lp_pool2d(X2, -1, 2), ValueError, "norm_type=-1"),
    (lambda: jaxpool.lp_pool2d(X2, float("nan"), 2), ValueError, "norm_type must not be NaN"),
    (lambda: jaxpool.lp_pool2d(X2, "2", 2), TypeError, "norm_type must be a real number"),
    (lambda: jaxpool.max_pool2d(X2, (2, 2, 2)), ValueError, r"kernel_size must either be a single int, or a tuple of 2 ints, but got kernel_size=\(2, 2, 2\)"),
    (lambda: jaxpool.max_pool2d(X2, 2.0), TypeError, "kernel_size must be an int or a tuple of 2 ints, but got 2.0"),
    (lambda: jaxpool.max_pool2d(X2, True), TypeError, "kernel_size must be an int"),
    (lambda: jaxpool.max_pool2d(X2, 2, ceil_mode=1), TypeError, "ceil_mode must be a bool, but got 1"),
    (lambda: jaxpool.max_pool2d(X2.astype(bool), 2), TypeError, "floating or integer dtype, but got dtype bool"),
    (lambda: jaxpool.avg_pool2d(X2.astype(jnp.int32), 2), TypeError, "must have a floating dtype.*int32"),
    (lambda: jaxpool.lp_pool1d(jnp.zeros((4, 1), jnp.int32), 2, 2), TypeError, "floating dtype"),
    (lambda: jaxpool.max_pool2d("abc", 2), TypeError, "input must be an array"),
    (lambda: jaxpool.max_pool2d(X2, 2, padding="FULL"), ValueError, "padding=.FULL."),
    (lambda: jaxpool.max_pool2d(X2, 2, padding=((1, 1),)), ValueError, "must hold 2 pairs"),
    (lambda: jaxpool.max_pool2d(X2, 2, padding=((0, 3), (0, 0))), ValueError, "entirely in padding"),
    (lambda: jaxpool.avg_pool2d(X2, 2, padding="SAME", ceil_mode=True), ValueError, "ceil_mode=True has no meaning with padding='SAME'"),
    (lambda: jaxpool.max_unpool2d(X2, jnp.zeros((1, 6, 6, 2), jnp.int32), 2, output_size=(20, 20)), ValueError, r"invalid output_size .* \(dim 0 must be between 10 and 14\)"),
    (lambda: jaxpool.max_unpool2d(X2, jnp.zeros((1, 6, 5, 2), jnp.int32), 2), ValueError, "Expected shape of indices to be same"),
    (lambda: jaxpool.max_unpool2d(X2, jnp.zeros((1, 6, 6, 2)), 2), TypeError, "indices must have an integer dtype"),
    (lambda: jaxpool.max_unpool2d(X2, jnp.full((1, 6, 6, 2), 144, jnp.int32), 2), ValueError, "Found an invalid max index: 144"),
    (lambda: jaxpool.fractional_max_pool2d(X2, 2, key=jax.random.key(0)), ValueError, "exactly one of output_size or output_ratio"),
    (lambda: jaxpool.fractional_max_pool2d(X2, 3, output_size=5, key=jax.random.key(0)), ValueError, "kernel_size 3 too large relative to input size 6"),
    (lambda: jaxpool.fractional_max_pool2d(X2, 2, output_size=3), ValueError, "exactly one of key"),
    (lambda: jaxpool.fractional_max_pool2d(X2, 2, output_ratio=1.5, key=jax.random.key(0)), ValueError, "output_ratio must be between 0 and 1"),
    (lambda: jaxpool.fractional_max_pool2d(X2, 2, output_size=3, random_samples=jnp.zeros((1, 2, 3))), ValueError, r"random_samples must have shape \(\*batch, C, 2\) = \(1, 2, 2\)"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_window_without_real_elements_is_refused():
    # torch answers -inf (and an index outside the input) when dilation skips the only
    # element; jaxpool refuses the configuration instead of returning -inf silently.
    assert torch.isinf(F.max_pool1d(torch.zeros(1, 1), 2, 1, 1, 2)).all()
    with pytest.raises(ValueError, match="entirely in padding"):
        jaxpool.max_pool1d(jnp.zeros((1, 1)), 2, 1, 1, 2)


def test_errors_happen_before_computation_under_jit():
    @jax.jit
    def bad(v):
        return jaxpool.max_pool2d(v, 2, stride=0)

    with pytest.raises(ValueError, match="stride"):
        bad(X2)


def test_channels_last_and_first_agree():
    x = jax.random.normal(jax.random.key(3), (2, 7, 9, 4))
    last = jaxpool.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
    first = jaxpool.avg_pool2d(jnp.moveaxis(x, -1, 1), 3, 2, 1, ceil_mode=True, channels_first=True)
    chex.assert_trees_all_close(jnp.moveaxis(first, 1, -1), last)


@pytest.mark.parametrize(
    "padding, expected",
    [("VALID", (3, 3)), ("SAME", (4, 4)), (((1, 0), (0, 1)), (4, 4))],
)
def test_flax_padding_forms(padding, expected):
    import flax.linen as nn

    x = jax.random.normal(jax.random.key(5), (2, 7, 7, 3))
    ours = jaxpool.max_pool2d(x, 2, 2, padding)
    chex.assert_shape(ours, (2, *expected, 3))
    chex.assert_trees_all_equal(ours, nn.max_pool(x, (2, 2), (2, 2), padding))
    # Flax's avg_pool divides by the full window (count_include_pad=True) as we do. Its
    # window sums (lax.reduce_window) add in an order XLA picks per CPU, so a sum that
    # nearly cancels differs in its last bits: an absolute tolerance too.
    chex.assert_trees_all_close(
        jaxpool.avg_pool2d(x, 2, 2, padding), nn.avg_pool(x, (2, 2), (2, 2), padding),
        rtol=1e-6, atol=1e-6,
    )


class TransformTestReduceWindow(TransformTest):
    """The same transforms with the ``reduce_window`` kernel family."""

    family = "reduce_window"
