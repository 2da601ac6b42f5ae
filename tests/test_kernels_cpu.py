"""Tests of jaxpool._kernels_cpu (the ``cpu`` kernel family): stage planning, every
implementation path, the linear primitives' transposes, batching and forward mode.

The parity suites (test_functional, test_adaptive, test_hybrid) compare both families
with torch; here we make sure they reach every path of this family, and check the
primitives against dense references. Every test here runs with the ``cpu`` family.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxpool
from jaxpool import _geometry as geometry
from jaxpool import _kernels_cpu as kernels
from tests.helpers import axis_windows
from tests.oracle import recorded_paths


@pytest.fixture(autouse=True)
def _cpu_family():
    with jaxpool.kernels("cpu"):
        yield


def test_plan_joint_small_kernels():
    (stage,) = kernels.plan_stages((1, 2), axis_windows((9, 9), 3, 2, 1))
    assert stage.kind == "taps" and stage.axes == (1, 2)


def test_plan_separable_large_kernels_innermost_first():
    stages = kernels.plan_stages((1, 2), axis_windows((20, 20), 5, 1, 2))
    assert [s.axes for s in stages] == [(2,), (1,)]
    assert all(s.kind == "taps" for s in stages)


def test_plan_blocks_and_adaptive():
    global_config = geometry.global_windows((7, 7))
    assert [s.kind for s in kernels.plan_stages((1, 2), global_config.windows)] == ["blocks", "blocks"]
    adaptive = geometry.adaptive_windows("t", (56, 13), (7, 5))
    kinds = [s.kind for s in kernels.plan_stages((1, 2), adaptive.windows)]
    assert kinds == ["adaptive", "blocks"]  # 13 -> 5 is irregular; 56 -> 7 tiles by 8
    joint = kernels.plan_stages((1, 2), geometry.global_windows((7, 7)).windows, joint_blocks=True)
    assert [s.axes for s in joint] == [(1, 2)]


def test_long_kernels_keep_three_blocks_per_axis():
    (w,) = axis_windows((20,), 13, 1, 6)
    runs = kernels._segments(w)
    assert [(o0, o1, padded) for o0, o1, _, padded in runs] == [(0, 6, True), (6, 14, False), (14, 20, True)]
    assert runs[0][2] == tuple(range(1, 13))  # every tap real in one of its outputs, padded
    (short,) = axis_windows((20,), 5, 1, 2)
    assert len(kernels._segments(short)) == 5 and not any(run[3] for run in kernels._segments(short))


def test_choices_are_stored_in_the_narrowest_integer_type():
    assert kernels._choice_dtype(kernels.Stage("taps", (1,), axis_windows((40,), 13, 1, 6))) == np.int8
    joint = kernels.Stage("taps", (1, 2), axis_windows((40, 40), 13, 1, 6))
    assert kernels._choice_dtype(joint) == np.int16
    x = jnp.zeros((1, 20, 20, 2))
    jaxpr = jax.make_jaxpr(jax.grad(lambda v: jaxpool.max_pool2d(v, 9, 1, 4).sum()))(x)
    assert "i8[1,20,20,2]" in str(jaxpr)


# Configurations that reach every stage kind, both in the forward pass and in the
# transposes (window_sum_transpose_p, scatter_tap_p), compared with torch.
PATH_CASES = [
    ("taps", lambda v: jaxpool.max_pool2d(v, 3, 2, 1), lambda t: F.max_pool2d(t, 3, 2, 1)),
    ("taps", lambda v: jaxpool.avg_pool2d(v, 3, 1, 1), lambda t: F.avg_pool2d(t, 3, 1, 1)),
    ("blocks", lambda v: jaxpool.max_pool2d(v, 4), lambda t: F.max_pool2d(t, 4)),
    ("blocks", lambda v: jaxpool.avg_pool2d(v, 4, padding=2, ceil_mode=True), lambda t: F.avg_pool2d(t, 4, padding=2, ceil_mode=True)),
    ("adaptive", lambda v: jaxpool.adaptive_max_pool2d(v, 5), lambda t: F.adaptive_max_pool2d(t, 5)),
    ("adaptive", lambda v: jaxpool.adaptive_avg_pool2d(v, (5, 17)), lambda t: F.adaptive_avg_pool2d(t, (5, 17))),
]


@pytest.mark.parametrize("kind, ours, theirs", PATH_CASES)
def test_every_path_is_reached_and_matches_torch(kind, ours, theirs):
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (2, 13, 12, 3)).astype(np.float32)  # ties included
    t = torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)
    expected = theirs(t)
    cotangent = rng.integers(-3, 4, expected.shape).astype(np.float32)
    (expected_grad,) = torch.autograd.grad(expected, t, torch.tensor(cotangent))
    with recorded_paths() as paths:
        out, vjp = jax.vjp(ours, jnp.asarray(x))
        (grad,) = vjp(jnp.asarray(np.moveaxis(cotangent, 1, -1)))
    assert any(p.endswith(f":{kind}") for p in paths), paths
    np.testing.assert_allclose(np.moveaxis(np.asarray(out), -1, 1), expected.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.moveaxis(np.asarray(grad), -1, 1), expected_grad.numpy(), rtol=1e-6, atol=1e-6)


def _dense(function, shape):
    """The matrix of a linear function of an array of ``shape`` (columns = basis images)."""
    size = int(np.prod(shape))
    basis = jnp.eye(size, dtype=jnp.float32).reshape((size, *shape))
    return jax.vmap(lambda b: function(b).reshape(-1))(basis).T


STAGES = [
    kernels.Stage("taps", (0, 1), axis_windows((7, 6), 3, 2, 1)),
    kernels.Stage("taps", (0, 1), axis_windows((7, 6), (2, 3), (3, 1), (1, 1), (2, 1), True)),
    kernels.Stage("taps", (1,), axis_windows((9,), 2, 3, 0)),  # stride > kernel: gaps
    kernels.Stage("taps", (1,), geometry.adaptive_windows("t", (56,), 5).windows),  # tiled: stride 11
    kernels.Stage("taps", (0, 1), axis_windows((13, 9), (5, 2), 4, (2, 1), 1, True)),  # tiled, 2-D
    kernels.Stage("taps", (1,), axis_windows((16,), 9, 1, 4)),  # merged border blocks
    kernels.Stage("taps", (0,), axis_windows((19,), 11, 2, 5)),  # merged, stride 2
    kernels.Stage("blocks", (1,), axis_windows((10,), 4, 4, 1, 1, True)),
    kernels.Stage("adaptive", (0,), geometry.adaptive_windows("t", (10,), 4).windows),
    kernels.Stage("adaptive", (1,), geometry.adaptive_windows("t", (3,), 7).windows),  # upsampling
]


def _shape(stage):
    shape = [5, 4]
    for axis, w in zip(stage.axes, stage.windows, strict=True):
        shape[axis] = w.length
    return tuple(shape)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: f"{s.kind}-{s.axes}")
def test_window_sum_transpose_is_the_transpose(stage):
    shape = _shape(stage)
    forward = _dense(lambda v: kernels.window_sum_p.bind(v, stage=stage), shape)
    out_shape = stage.out_shape(shape)
    backward = _dense(lambda c: kernels.window_sum_transpose_p.bind(c, stage=stage), out_shape)
    np.testing.assert_array_equal(backward, forward.T)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: f"{s.kind}-{s.axes}")
def test_scatter_is_the_transpose_of_select(stage):
    shape = _shape(stage)
    out_shape = stage.out_shape(shape)
    taps = int(np.prod([w.kernel for w in stage.windows]))
    chosen = jax.random.randint(jax.random.key(0), out_shape, 0, taps)
    forward = _dense(lambda v: kernels.select_tap_p.bind(v, chosen, stage=stage), shape)
    backward = _dense(lambda c: kernels.scatter_tap_p.bind(c, chosen, stage=stage), out_shape)
    np.testing.assert_array_equal(backward, forward.T)
    # JAX's own transposition goes through the registered rule too.
    transposed = _dense(
        lambda c: jax.linear_transpose(
            lambda v: kernels.select_tap_p.bind(v, chosen, stage=stage), jnp.zeros(shape)
        )(c)[0],
        out_shape,
    )
    np.testing.assert_array_equal(transposed, backward)


def test_primitives_batch_under_vmap():
    stage = STAGES[0]
    xs = jax.random.normal(jax.random.key(1), (3, *_shape(stage)))
    batched = jax.vmap(lambda v: kernels.window_sum_p.bind(v, stage=stage))(xs)
    looped = jnp.stack([kernels.window_sum_p.bind(v, stage=stage) for v in xs])
    chex.assert_trees_all_close(batched, looped)
    chosen = jnp.zeros(stage.out_shape(_shape(stage)), jnp.int32)
    # Unbatched choice with batched values, and batch axis not first.
    selected = jax.vmap(lambda v: kernels.select_tap_p.bind(v, chosen, stage=stage), in_axes=1)(
        jnp.moveaxis(xs, 0, 1)
    )
    chex.assert_trees_all_close(selected, jnp.stack([kernels.select_tap_p.bind(v, chosen, stage=stage) for v in xs]))


def test_forward_and_reverse_mode_agree_on_every_path():
    x = jax.random.normal(jax.random.key(2), (9, 8, 2))
    for function in [
        lambda v: jaxpool.max_pool2d(v, 3, 2, 1, 2),
        lambda v: jaxpool.avg_pool2d(v, 3, 2, 1, True),
        lambda v: jaxpool.adaptive_max_pool2d(v, (4, 3)),
        lambda v: jaxpool.global_max_pool(v[None])[0],
    ]:
        chex.assert_trees_all_close(jax.jacfwd(function)(x), jax.jacrev(function)(x), atol=1e-6)


def test_second_derivative_through_max_pool():
    x = jax.random.normal(jax.random.key(3), (6, 6, 1))

    def loss(v):
        return jnp.sum(jaxpool.max_pool2d(v, 2) ** 3)

    hessian_vector = jax.jvp(jax.grad(loss), (x,), (jnp.ones_like(x),))[1]
    pooled, index = jaxpool.max_pool2d(x, 2, return_indices=True)
    expected = np.zeros(36)
    expected[np.asarray(index).reshape(-1)] = 6 * np.asarray(pooled).reshape(-1)
    np.testing.assert_allclose(np.asarray(hessian_vector).reshape(-1), expected, rtol=1e-5)


def test_chosen_taps_are_not_differentiable():
    stage = STAGES[0]
    chosen = jnp.full(stage.out_shape(_shape(stage)), 4, jnp.int32)  # the centre: always real
    x = jnp.ones(_shape(stage))
    grad = jax.grad(lambda v: kernels.select_tap_p.bind(v, chosen, stage=stage).sum())(x)
    assert float(grad.sum()) == np.prod(stage.out_shape(_shape(stage)))


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: f"{s.kind}-{s.axes}")
def test_mix_transpose_is_the_transpose(stage):
    shape = _shape(stage)
    out_shape = stage.out_shape(shape)
    taps = int(np.prod([w.kernel for w in stage.windows]))
    chosen = jax.random.randint(jax.random.key(4), out_shape, 0, taps)
    tap_weight = jax.random.uniform(jax.random.key(5), out_shape)
    sum_weight = jax.random.uniform(jax.random.key(6), out_shape)
    forward = _dense(
        lambda v: kernels.window_mix_p.bind(v, chosen, tap_weight, sum_weight, stage=stage), shape
    )
    backward = _dense(
        lambda c: kernels.window_mix_transpose_p.bind(c, chosen, tap_weight, sum_weight, stage=stage),
        out_shape,
    )
    np.testing.assert_allclose(backward, forward.T, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "kernel_size, stride, padding, path",
    [(2, 2, 0, "hybrid:taps"), (3, 2, 1, "hybrid:taps"), (6, 6, 0, "hybrid:composed"), (5, 1, 2, "hybrid:composed")],
)
def test_hybrid_paths_agree_with_the_composed_formula(kernel_size, stride, padding, path):
    x = jax.random.normal(jax.random.key(7), (2, 12, 12, 3))
    alpha = jax.random.uniform(jax.random.key(8), (3,))

    def hybrid(v, a):
        return jaxpool.hybrid_pool2d(v, a, kernel_size, stride, padding)

    def reference(v, a):
        maxima = jaxpool.max_pool2d(v, kernel_size, stride, padding)
        a = a.reshape(1, 1, 1, -1)
        return a * maxima + (1 - a) * jaxpool.avg_pool2d(v, kernel_size, stride, padding)

    with recorded_paths() as paths:
        out, vjp = jax.vjp(hybrid, x, alpha)
    assert path in paths, paths
    expected, reference_vjp = jax.vjp(reference, x, alpha)
    chex.assert_trees_all_close(out, expected, rtol=1e-6, atol=1e-6)
    cotangent = jax.random.normal(jax.random.key(9), out.shape)
    chex.assert_trees_all_close(vjp(cotangent), reference_vjp(cotangent), rtol=2e-5, atol=2e-5)
    # Forward mode and second order through the fused path (jitted: one compilation each,
    # not one per operation).
    chex.assert_trees_all_close(
        jax.jit(jax.jacfwd(hybrid, argnums=(0, 1)))(x[:1, :6, :6], alpha),
        jax.jit(jax.jacrev(hybrid, argnums=(0, 1)))(x[:1, :6, :6], alpha),
        atol=1e-5,
    )
    hessian = jax.jit(jax.hessian(lambda a: jnp.sum(hybrid(x, a) ** 2)))(alpha)
    expected_hessian = jax.jit(jax.hessian(lambda a: jnp.sum(reference(x, a) ** 2)))(alpha)
    chex.assert_trees_all_close(hessian, expected_hessian, rtol=1e-4, atol=1e-4)


def test_hybrid_blocks_path_in_one_dimension():
    x = jax.random.normal(jax.random.key(10), (2, 12, 3))
    alpha = jnp.float32(0.25)
    with recorded_paths() as paths:
        out, vjp = jax.vjp(lambda v: jaxpool.hybrid_pool1d(v, alpha, 6), x)
    assert "hybrid:blocks" in paths, paths
    expected, expected_vjp = jax.vjp(
        lambda v: 0.25 * jaxpool.max_pool1d(v, 6) + 0.75 * jaxpool.avg_pool1d(v, 6), x
    )
    chex.assert_trees_all_close(out, expected, rtol=1e-6)
    cotangent = jnp.ones_like(out)
    chex.assert_trees_all_close(vjp(cotangent), expected_vjp(cotangent), rtol=1e-6)


def test_programs_that_corrupted_memory_run_cleanly():
    """Averages feeding a reduction, both layouts: jaxlib 0.10.2's YNNPACK fusions of
    our exact division corrupted memory here (a segfault at exit or later)."""
    program = textwrap.dedent("""
        import flax.linen as nn
        import jax, jax.numpy as jnp
        import jaxpool

        print(jaxpool.adaptive_avg_pool2d(jnp.ones((2, 56, 56, 64)), (7, None)).shape)
        print(jax.jit(lambda x: jaxpool.avg_pool2d(x, 3, 1, 1, channels_first=True).mean())(
            jnp.ones((2, 8, 16, 16))).shape)

        class CNN(nn.Module):
            @nn.compact
            def __call__(self, x):
                x = nn.relu(nn.Conv(64, (3, 3))(x))
                return jaxpool.GlobalAvgPool()(jaxpool.HybridPool(kernel_size=(2, 2))(x))

        images = jnp.ones((4, 32, 32, 3))
        params = CNN().init(jax.random.key(0), images)
        print(jax.jit(CNN().apply)(params, images).shape)
        for _ in range(20):
            jax.jit(lambda a: jnp.sin(a) * 2)(jnp.ones((1000, 1000))).block_until_ready()
        print("done")
    """)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # XLA's defaults
    result = subprocess.run([sys.executable, "-c", program], cwd=pathlib.Path(__file__).resolve().parents[1], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["(2,", "7,", "56,", "64)", "()", "(4,", "64)", "done"]
