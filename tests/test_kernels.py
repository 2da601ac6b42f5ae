"""Tests of jaxpool._kernels: the kernel switch (context manager, environment variable,
per-platform ``auto``), and that every public op and module exports for CUDA and TPU.

No accelerator is needed: ``jax.export`` lowers for any platform on a CPU-only machine.
The parity suites (test_functional, test_adaptive, test_hybrid) check both families'
numbers against torch.
"""

import collections
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

import jaxpool
from jaxpool import _jax_internals as internals
from jaxpool import models
from tests.oracle import recorded_paths


def _compiled_cpu_text(function, *args):
    # Before jax 0.7.2 JAX caches traces per function, not per kernel family (the family
    # is read when tracing): start from empty caches so that the block in force is traced.
    jax.clear_caches()
    return jax.jit(function).lower(*args).compile().as_text()


@pytest.fixture(autouse=True)
def _default_choice(monkeypatch):
    """These tests check what the default, ``auto``, does: a ``JAXPOOL_KERNELS`` set in
    the shell that runs the suite (``JAXPOOL_KERNELS=cpu pytest``) must not change it.
    The tests of the variable set it themselves."""
    monkeypatch.delenv("JAXPOOL_KERNELS", raising=False)


X2 = jnp.asarray(np.random.default_rng(0).standard_normal((2, 9, 9, 3)).astype(np.float32))


# ----------------------------------------------------------------------------------
# The switch


def test_default_is_auto_and_blocks_nest():
    assert jaxpool.kernel_family() == "auto"
    with jaxpool.kernels("reduce_window"):
        assert jaxpool.kernel_family() == "reduce_window"
        with jaxpool.kernels("cpu"):
            assert jaxpool.kernel_family() == "cpu"
        assert jaxpool.kernel_family() == "reduce_window"
    assert jaxpool.kernel_family() == "auto"


def test_block_is_left_on_error():
    with pytest.raises(RuntimeError):
        with jaxpool.kernels("cpu"):
            raise RuntimeError("boom")
    assert jaxpool.kernel_family() == "auto"


@pytest.mark.parametrize("bad", ["gpu", "CPU", "", None, 1])
def test_unknown_family_is_refused_naming_the_allowed_ones(bad):
    with pytest.raises(ValueError, match=r"'auto', 'reduce_window', 'cpu', but got"):
        with jaxpool.kernels(bad):
            pass


def test_environment_variable_is_read_when_an_op_is_traced(monkeypatch):
    monkeypatch.setenv("JAXPOOL_KERNELS", "reduce_window")
    assert jaxpool.kernel_family() == "reduce_window"
    with recorded_paths() as paths:
        jaxpool.max_pool2d(X2, 3, 2, 1)
    assert paths == ["reduce_window:max"]
    monkeypatch.setenv("JAXPOOL_KERNELS", "cpu")
    with recorded_paths() as paths:
        jaxpool.max_pool2d(X2, 3, 2, 1)
    assert paths and all(not p.startswith("reduce_window") for p in paths)
    with jaxpool.kernels("reduce_window"):  # the block wins over the variable
        assert jaxpool.kernel_family() == "reduce_window"
    monkeypatch.setenv("JAXPOOL_KERNELS", "")  # empty means unset
    assert jaxpool.kernel_family() == "auto"


def test_bad_environment_variable_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("JAXPOOL_KERNELS", "triton")
    with pytest.raises(ValueError, match="environment variable JAXPOOL_KERNELS must be one of "
                                         "'auto', 'reduce_window', 'cpu', but got 'triton'"):
        jaxpool.avg_pool2d(X2, 2)


def test_a_family_change_retraces_jaxpools_own_jit():
    with recorded_paths() as paths:
        with jaxpool.kernels("cpu"):
            first = jaxpool.max_pool2d(X2, 3, 2, 1)
        with jaxpool.kernels("reduce_window"):
            second = jaxpool.max_pool2d(X2, 3, 2, 1)
    assert "reduce_window:max" in paths and any(p.startswith("max:") for p in paths)
    np.testing.assert_array_equal(first, second)


def test_a_function_jitted_before_a_block_follows_the_block():
    traces = []

    def pool(x):
        traces.append(jaxpool.kernel_family())
        return jaxpool.max_pool2d(x, 3, 2, 1)

    jitted = jax.jit(pool)
    outside = jitted(X2)
    outside_text = jitted.lower(X2).compile().as_text()
    with jaxpool.kernels("reduce_window"):
        inside = jitted(X2)
        inside_text = jitted.lower(X2).compile().as_text()
    after = jitted(X2)
    assert "reduce-window" not in outside_text  # auto: the cpu family, on CPU
    np.testing.assert_array_equal(inside, outside)
    np.testing.assert_array_equal(after, outside)
    if internals.JIT_KEYED_CONTEXT:
        # The block's family is part of jit's cache key: one more trace, the other
        # family's program, and the first trace again after the block.
        assert traces == ["auto", "reduce_window"]
        assert "reduce-window" in inside_text
    else:
        # jax < 0.7.2: jit reuses the trace made before the block (documented in
        # jaxpool.kernels and the README).
        assert traces == ["auto"]
        assert inside_text == outside_text


def test_subprocess_environment_variable_selects_the_family():
    program = (
        "import jax, jax.numpy as jnp, jaxpool\n"
        "f = lambda x: jaxpool.max_pool2d(x, 3, 2, 1)\n"
        "print('reduce-window' in jax.jit(f).lower(jnp.ones((1, 9, 9, 2))).compile().as_text())\n"
    )
    outputs = {}
    for value in ("reduce_window", "cpu", "auto"):
        env = {**os.environ, "JAXPOOL_KERNELS": value}
        result = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs[value] = result.stdout.strip()
    assert outputs == {"reduce_window": "True", "cpu": "False", "auto": "False"}


@pytest.mark.parametrize(
    "function",
    [
        lambda x: jaxpool.max_pool2d(x, 3, 2, 1),
        lambda x: jaxpool.avg_pool2d(x, 3, 1, 1),
        lambda x: jaxpool.hybrid_pool2d(x, 0.5, 2),
        lambda x: jax.grad(lambda v: jaxpool.max_pool2d(v, 2).sum())(x),
    ],
)
def test_auto_compiles_the_cpu_family_for_cpu(function):
    with jaxpool.kernels("reduce_window"):
        assert "reduce-window" in _compiled_cpu_text(function, X2)
    with jaxpool.kernels("auto"):
        auto = _compiled_cpu_text(function, X2)
    assert "reduce-window" not in auto
    assert "select-and-scatter" not in auto


def test_auto_equals_each_family_on_cpu():
    def everything(x):
        values, index = jaxpool.max_pool2d(x, 3, 2, 1, return_indices=True)
        return (values, index, jaxpool.avg_pool2d(x, 3, 2, 1), jaxpool.lp_pool2d(x, 2, 3, 2),
                jax.grad(lambda v: jaxpool.hybrid_pool2d(v, 0.3, 2).sum())(x))

    with jaxpool.kernels("auto"):
        auto = jax.jit(everything)(X2)
    jax.clear_caches()
    with jaxpool.kernels("cpu"):
        cpu = jax.jit(everything)(X2)
    jax.tree.map(np.testing.assert_array_equal, auto, cpu)


# ----------------------------------------------------------------------------------
# Export for CUDA and TPU: every public op and module, forward and gradient

S1, S2, S3 = (2, 12, 3), (2, 12, 12, 3), (1, 6, 6, 6, 2)
# Masks (the input without channels) for the masked global ops, with a row that keeps
# nothing; the global ops' entries export the unmasked and the masked path together.
M1 = np.arange(12)[None, :] < np.array([7, 0])[:, None]
M2 = np.broadcast_to(M1[:, :, None], (2, 12, 12))


def _zero_variables(module, shape, *inputs):
    """Variables of the shapes ``module.init`` gives, all zeros: exporting only lowers,
    so the values do not matter (and an eager ``init`` would compile every operation)."""
    rngs = {"params": jax.random.key(0), "fractional": jax.random.key(1)}
    shapes = jax.eval_shape(lambda: module.init(rngs, jnp.zeros(shape, jnp.float32), *inputs))
    return jax.tree.map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), shapes)


# Parameters of the attention pooling ops: every optional layer (q/k norms, the norm
# before the MLP, a positional embedding resized from 6x6 to the input's 12x12).
LATENT_PARAMS = _zero_variables(jaxpool.AttentionPoolLatent(
    num_heads=3, qk_norm=True, norm_layer="layernorm", latent_len=2, pool_type="avg"), S1)["params"]
POOL2D_PARAMS = _zero_variables(
    jaxpool.AttentionPool2d(feat_size=6, num_heads=3, class_token=True), S2)["params"]

# name -> (input shape, function of x). Integer outputs (indices) are not differentiated.
OPS = {
    "max_pool1d": (S1, lambda x: jaxpool.max_pool1d(x, 3, 2, 1)),
    "max_pool2d": (S2, lambda x: jaxpool.max_pool2d(x, 3, 2, 1, 2, True)),
    "max_pool3d": (S3, lambda x: jaxpool.max_pool3d(x, 2)),
    "min_pool1d": (S1, lambda x: jaxpool.min_pool1d(x, 2)),
    "min_pool2d": (S2, lambda x: jaxpool.min_pool2d(x, 3, 2, 1)),
    "min_pool3d": (S3, lambda x: jaxpool.min_pool3d(x, 2)),
    "avg_pool1d": (S1, lambda x: jaxpool.avg_pool1d(x, 3, 2, 1)),
    "avg_pool2d": (S2, lambda x: jaxpool.avg_pool2d(x, 3, 2, 1, True, False)),
    "avg_pool3d": (S3, lambda x: jaxpool.avg_pool3d(x, 2, divisor_override=3)),
    "lp_pool1d": (S1, lambda x: jaxpool.lp_pool1d(x, 2, 3)),
    "lp_pool2d": (S2, lambda x: jaxpool.lp_pool2d(x, 3, 2)),
    "lp_pool3d": (S3, lambda x: jaxpool.lp_pool3d(x, 2, 2)),
    "adaptive_avg_pool1d": (S1, lambda x: jaxpool.adaptive_avg_pool1d(x, 5)),
    "adaptive_avg_pool2d": (S2, lambda x: jaxpool.adaptive_avg_pool2d(x, (5, 4))),
    "adaptive_avg_pool3d": (S3, lambda x: jaxpool.adaptive_avg_pool3d(x, 4)),
    "adaptive_max_pool1d": (S1, lambda x: jaxpool.adaptive_max_pool1d(x, 5)),
    "adaptive_max_pool2d": (S2, lambda x: jaxpool.adaptive_max_pool2d(x, (5, 4))),
    "adaptive_max_pool3d": (S3, lambda x: jaxpool.adaptive_max_pool3d(x, 4)),
    "global_avg_pool": (S2, lambda x: (jaxpool.global_avg_pool(x),
                                       jaxpool.global_avg_pool(x, mask=M2))),
    "global_max_pool": (S2, lambda x: (jaxpool.global_max_pool(x),
                                       jaxpool.global_max_pool(x, mask=M2))),
    "max_unpool1d": (S1, lambda x: jaxpool.max_unpool1d(*jaxpool.max_pool1d(x, 2, return_indices=True), 2)),
    "max_unpool2d": (S2, lambda x: jaxpool.max_unpool2d(*jaxpool.max_pool2d(x, 2, return_indices=True), 2)),
    "max_unpool3d": (S3, lambda x: jaxpool.max_unpool3d(*jaxpool.max_pool3d(x, 2, return_indices=True), 2)),
    "fractional_max_pool2d": (S2, lambda x: jaxpool.fractional_max_pool2d(
        x, 2, output_size=5, key=jax.random.key(0))),
    "fractional_max_pool3d": (S3, lambda x: jaxpool.fractional_max_pool3d(
        x, 2, output_ratio=0.5, key=jax.random.key(0))),
    "hybrid_pool1d": (S1, lambda x: jaxpool.hybrid_pool1d(x, 0.3, 2)),
    "hybrid_pool2d": (S2, lambda x: jaxpool.hybrid_pool2d(x, jnp.full((3,), 0.3), 3, 2, 1)),
    "hybrid_pool3d": (S3, lambda x: jaxpool.hybrid_pool3d(x, 0.3, 2)),
    "global_hybrid_pool": (S2, lambda x: (jaxpool.global_hybrid_pool(x, 0.3),
                                          jaxpool.global_hybrid_pool(x, 0.3, mask=M2))),
    "gated_pool": (S2, lambda x: jaxpool.gated_pool(x, jnp.full((2, 2), 0.1), 2)),
    "gem_pool": (S2, lambda x: (jaxpool.gem_pool(x, jnp.float32(3.0)),
                                jaxpool.gem_pool(x, jnp.float32(3.0), mask=M2))),
    "soft_pool": (S2, lambda x: jaxpool.soft_pool(x, 2)),
    "global_avg_max_pool": (S2, lambda x: (jaxpool.global_avg_max_pool(x),
                                           jaxpool.global_avg_max_pool(x, mask=M2))),
    "global_cat_avg_max_pool": (S2, lambda x: (
        jaxpool.global_cat_avg_max_pool(x),
        jaxpool.global_cat_avg_max_pool(x, spatial_dims=1, mask=M1[:, :, None]))),
    "attention_pool_latent": (S1, lambda x: (
        jaxpool.attention_pool_latent(x, LATENT_PARAMS, num_heads=3, pool_type="avg"),
        jaxpool.attention_pool_latent(x, LATENT_PARAMS, num_heads=3, mask=M1))),
    "attention_pool2d": (S2, lambda x: (
        jaxpool.attention_pool2d(x, POOL2D_PARAMS, num_heads=3, feat_size=6),
        jaxpool.attention_pool2d(x, POOL2D_PARAMS, num_heads=3, feat_size=6, pool_type=""))),
    "blur_pool1d": (S1, lambda x: jaxpool.blur_pool1d(x, 3)),
    "blur_pool2d": (S2, lambda x: jaxpool.blur_pool2d(x, 4, (2, 3))),
    "blur_pool3d": (S3, lambda x: jaxpool.blur_pool3d(x, 3)),
    "max_blur_pool1d": (S1, lambda x: jaxpool.max_blur_pool1d(x, 3)),
    "max_blur_pool2d": (S2, lambda x: jaxpool.max_blur_pool2d(x, 3, 2, 2)),
    "max_blur_pool3d": (S3, lambda x: jaxpool.max_blur_pool3d(x, 2, 2, 3)),
    "roi_align": (S2, lambda x: jaxpool.roi_align(x, np.array(
        [[0, 1.0, 2.0, 20.0, 18.0], [1, -3.0, 4.5, 9.0, 30.0]], np.float32), 3, 0.5, -1, True)),
    "spatial_pyramid_pool": (S2, lambda x: jaxpool.spatial_pyramid_pool(x, (1, 2, 4))),
}
INDEX_OPS = {
    "max_pool2d_indices": (S2, lambda x: jaxpool.max_pool2d(x, 3, 2, 1, return_indices=True)[1]),
    "adaptive_max_pool2d_indices": (S2, lambda x: jaxpool.adaptive_max_pool2d(x, 5, True)[1]),
    "global_max_pool_indices": (S2, lambda x: jaxpool.global_max_pool(x, return_indices=True)[1]),
    "fractional_max_pool2d_indices": (S2, lambda x: jaxpool.fractional_max_pool2d(
        x, 2, output_size=5, return_indices=True, key=jax.random.key(0))[1]),
}
SLIDING = [name for name in OPS if name.split("_pool")[0] in ("max", "avg", "lp", "hybrid")]

MODULES = {
    "MaxPool": (S2, jaxpool.MaxPool(kernel_size=(3, 3), stride=2, padding=1)),
    "AvgPool": (S2, jaxpool.AvgPool(kernel_size=(2, 2))),
    "LPPool": (S2, jaxpool.LPPool(norm_type=2, kernel_size=(2, 2))),
    "AdaptiveAvgPool": (S2, jaxpool.AdaptiveAvgPool(output_size=(5, 5))),
    "AdaptiveMaxPool": (S2, jaxpool.AdaptiveMaxPool(output_size=(5, 5))),
    "GlobalAvgPool": (S2, jaxpool.GlobalAvgPool()),
    "GlobalMaxPool": (S2, jaxpool.GlobalMaxPool()),
    "FractionalMaxPool": (S2, jaxpool.FractionalMaxPool(kernel_size=(2, 2), output_size=(5, 5))),
    "HybridPool": (S2, jaxpool.HybridPool(kernel_size=(2, 2), per_channel=True)),
    "AttentionHybridPool": (S2, jaxpool.AttentionHybridPool(kernel_size=(2, 2))),
    "GatedPool": (S2, jaxpool.GatedPool(kernel_size=(3, 3), stride=(2, 2), padding=1)),
    "GeMPool": (S2, jaxpool.GeMPool()),
    "SoftPool": (S2, jaxpool.SoftPool(kernel_size=(2, 2))),
    "AvgMaxPool": (S2, jaxpool.AvgMaxPool()),
    "CatAvgMaxPool": (S2, jaxpool.CatAvgMaxPool()),
    "BlurPool": (S2, jaxpool.BlurPool(kernel_size=(4, 3), stride=(2, 3))),
    "MaxBlurPool": (S2, jaxpool.MaxBlurPool(kernel_size=(3, 3))),
    # A third entry: the call's further inputs (RoIAlign's boxes, held fixed).
    "RoIAlign": (S2, jaxpool.RoIAlign(3, 0.5, -1, aligned=True, max_sampling_ratio=5), (np.array(
        [[0, 1.0, 2.0, 20.0, 18.0], [1, -3.0, 4.5, 9.0, 30.0]], np.float32),)),
    "SpatialPyramidPool": (S2, jaxpool.SpatialPyramidPool(levels=(1, 2, 4), mode="avg")),
    "AttentionPoolLatent": (S1, jaxpool.AttentionPoolLatent(num_heads=3, qk_norm=True)),
    "AttentionPool2d": (S2, jaxpool.AttentionPool2d(feat_size=6, num_heads=3)),
    "models.BatchNorm": (S2, models.BatchNorm(use_running_average=True)),
    "models.HybridResNetBlock": ((2, 8, 8, 3), models.HybridResNetBlock(features=4)),
    "models.BasicBlock": ((2, 8, 8, 4), models.BasicBlock(features=4, stride=2)),
    "models.PoolingResNetBlock": ((2, 8, 8, 3), models.PoolingResNetBlock(features=4, pool="max")),
    "models.CifarResNet18": ((2, 8, 8, 3), models.CifarResNet18(width=2, pool="hybrid")),
    "models.HybridResNet": ((2, 8, 8, 1), models.HybridResNet(width=2, pool="attention")),
}


def test_the_export_tables_cover_every_public_op_and_module():
    functions = {name for name in jaxpool.__all__ if name[0].islower()}
    assert functions - {"pool_output_shape", "kernels", "kernel_family"} == set(OPS)
    modules = {name for name in jaxpool.__all__ if name[0].isupper()}
    modules |= {f"models.{name}" for name in models.__all__ if isinstance(getattr(models, name), type)}
    assert modules == set(MODULES)


def _export(function, shapes, platforms):
    specs = [jax.ShapeDtypeStruct(shape, jnp.float32) for shape in shapes]
    return export.export(jax.jit(function), platforms=platforms)(*specs)


def _gradient(function):
    def loss(x):
        out = function(x)
        return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(out))

    return jax.grad(loss)


# One export lowers for both platforms (every platform's lowering rules run); both take
# the reduce_window family under 'auto'.
ACCELERATORS = ("cuda", "tpu")


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_exports_for_cuda_and_tpu_forward_and_gradient(name):
    shape, function = OPS[name]
    forward = _export(function, [shape], ACCELERATORS)
    assert forward.platforms == ACCELERATORS
    if name in SLIDING:
        assert "stablehlo.reduce_window" in forward.mlir_module(), name
    _export(_gradient(function), [shape], ACCELERATORS)


@pytest.mark.parametrize("name", sorted(INDEX_OPS))
def test_indices_export_for_cuda_and_tpu(name):
    shape, function = INDEX_OPS[name]
    _export(function, [shape], ACCELERATORS)


def _module_functions(module, shape, inputs=()):
    variables = _zero_variables(module, shape, *inputs)
    trains = "train" in module.__call__.__code__.co_varnames

    def forward(params, x):
        full = {**variables, "params": params}
        kwargs = {"train": False} if trains else {}
        return module.apply(full, x, *inputs, rngs={"fractional": jax.random.key(2)}, **kwargs)

    return variables.get("params", {}), forward


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_exports_for_cuda_and_tpu_forward_and_gradient(name):
    shape, module, *inputs = MODULES[name]
    params, forward = _module_functions(module, shape, *inputs)

    def loss(params, x):
        return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(forward(params, x)))

    specs = (jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params),
             jax.ShapeDtypeStruct(shape, jnp.float32))
    export.export(jax.jit(forward), platforms=ACCELERATORS)(*specs)
    export.export(jax.jit(jax.grad(loss, argnums=(0, 1))), platforms=ACCELERATORS)(*specs)


def test_multi_platform_export_carries_both_families_and_runs_on_cpu():
    def function(x):
        values, index = jaxpool.max_pool2d(x, 3, 2, 1, return_indices=True)
        return values, index, jaxpool.avg_pool2d(x, 3, 1, 1), _gradient(
            lambda v: jaxpool.hybrid_pool2d(v, 0.25, 2))(x)

    exported = _export(function, [X2.shape], ("cpu", "cuda", "tpu"))
    assert exported.platforms == ("cpu", "cuda", "tpu")
    assert "stablehlo.reduce_window" in exported.mlir_module()
    # Called here, it runs the cpu family's branch: the cpu family's numbers.
    jax.clear_caches()
    with jaxpool.kernels("cpu"):
        expected = jax.jit(function)(X2)
    jax.tree.map(np.testing.assert_array_equal, exported.call(X2), expected)


# What platform_dependent adds around its branches: the branch index (clamped on old
# JAX), a case over it, and broadcasts of constants. Everything else comes from kernels.
_CASE_WRAPPER = {"stablehlo.case", "stablehlo.return", "stablehlo.constant",
                 "stablehlo.broadcast_in_dim", "stablehlo.clamp"}


def _kernel_ops(exported) -> collections.Counter:
    ops = collections.Counter(re.findall(r"\bstablehlo\.[a-z_]+", exported.mlir_module()))
    return collections.Counter({op: n for op, n in ops.items() if op not in _CASE_WRAPPER})


@pytest.mark.parametrize("gradient", [False, True], ids=["forward", "gradient"])
@pytest.mark.parametrize(
    "name", ["max_pool2d", "avg_pool2d", "hybrid_pool2d", "adaptive_max_pool2d", "global_avg_pool"]
)
def test_cuda_export_of_auto_lowers_only_the_reduce_window_family(name, gradient):
    shape, function = OPS[name]
    function = _gradient(function) if gradient else function

    def kernel_ops(family):
        jax.clear_caches()
        with jaxpool.kernels(family):
            return _kernel_ops(_export(function, [shape], ("cuda",)))

    reduce_window, cpu, auto = kernel_ops("reduce_window"), kernel_ops("cpu"), kernel_ops("auto")
    # The families lower to different programs (the cpu family's strided slices, border
    # blocks and reshape reductions), so auto's program says which family it holds: the
    # reduce_window family's, op for op, and nothing of the cpu family's beside it.
    assert cpu != reduce_window
    if internals.PLATFORM_DEPENDENT_PRUNES:
        assert auto == reduce_window, (auto - reduce_window, reduce_window - auto)
    else:
        # JAX before 0.6.1 lowers every branch of platform_dependent (XLA drops the cpu
        # one when it compiles, by its constant index): the reduce_window family's ops,
        # and beyond them the cpu family's.
        assert auto != reduce_window, "jax < 0.6.1 pruned: PLATFORM_DEPENDENT_PRUNES is wrong"
        assert reduce_window <= auto and auto - reduce_window <= cpu, auto - reduce_window
