"""Pooling benchmark: jaxpool's two kernel families against flax.linen / jnp, torch (NCHW
and channels-last) and a memory-bound floor, forward and forward+backward, in one process,
on whatever ``jax.devices()`` offers.

    PYTHONPATH=. python -m benchmarks.pooling            # full suite (5-8 min on 2 cores)
    PYTHONPATH=. python -m benchmarks.pooling --quick    # smoke test, small shapes
    PYTHONPATH=. python -m benchmarks.pooling --cases max_k2s2,global --candidates jaxpool,torch-cl
    PYTHONPATH=. python -m benchmarks.pooling --hugetlb  # second, kernel-only table

Writes ``pooling-<machine>.json`` (everything: all samples, versions, machine) and
``pooling-<machine>.md`` (the table) to ``--out`` (default ``benchmarks/results/``, whose
README.md indexes the newest run per machine); see benchmarks/README.md.

Each jaxpool family (``cpu`` and ``reduce_window``, jaxpool/_kernels.py) is its own
candidate; the ratio columns use the family that ``'auto'`` picks on this platform. Every
candidate's output and input gradient is checked against torch's before it is timed
(benchmarks/timing.py has the method); the jitted candidates also report XLA's compiled
temporary bytes.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks import report as rp
from benchmarks.timing import (
    BUSY_CORES,
    DIRECTIONS,
    FAMILIES,
    FORWARD,
    GRAD,
    TOLERANCE,
    NotAvailable,
    Runner,
    add_timing_options,
    allocator_text,
    check,
    compile_jax,
    cpu_snapshot,
    error_text,
    finish_timing_options,
    import_torch,
    measure,
    other_cores,
    start_run,
    to_float32,
    torch_device,
    torch_wait,
    wait_quiet,
)

# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One benchmark case. Shapes are channels-last (N, H, W, C); torch gets (N, C, H, W)."""

    name: str
    op: str  # max | avg | hybrid | adaptive_avg | adaptive_max | global_avg | global_max | sppf
    shape: tuple[int, ...]
    quick_shape: tuple[int, ...]
    dtype: str = "float32"  # float32 | bfloat16
    kernel: int | None = None
    stride: int | None = None
    padding: int = 0
    dilation: int = 1
    output_size: int | None = None
    description: str = ""
    scales: bool = True  # --batch replaces its batch size (not for the batch-1 case)

    def shape_for(self, quick: bool, batch: int | None) -> tuple[int, ...]:
        shape = self.quick_shape if quick else self.shape
        return (batch, *shape[1:]) if batch and self.scales else shape

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        if self.op in ("max", "avg", "hybrid", "sppf"):
            k, s, p, d = self.kernel, self.stride or self.kernel, self.padding, self.dilation
            f = lambda n: (n + 2 * p - d * (k - 1) - 1) // s + 1  # noqa: E731  (ceil_mode=False)
            return f(h), f(w)
        if self.op.startswith("adaptive"):
            return self.output_size, self.output_size
        raise ValueError(self.op)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        n, h, w, c = shape
        if self.op.startswith("global"):
            return (n, c)
        if self.op == "sppf":  # the input and three pooled maps, concatenated
            return (n, h, w, 4 * c)
        return (n, *self.out_hw(h, w), c)


_B = (32, 56, 56, 128)  # a ResNet stage-1 activation, batch 32
_Q = (4, 56, 56, 128)  # --quick
_D = (16, 40, 40, 256)  # a detector's SPP input (YOLOv5-s at 640x640: 20x20x512)
_DQ = (2, 40, 40, 256)  # --quick
CASES: list[Case] = [
    Case("max_k2s2", "max", _B, _Q, kernel=2, stride=2, description="max k2 s2 (VGG-style)"),
    Case("avg_k2s2", "avg", _B, _Q, kernel=2, stride=2, description="avg k2 s2"),
    Case(
        "max_k3s2p1",
        "max",
        _B,
        _Q,
        kernel=3,
        stride=2,
        padding=1,
        description="max k3 s2 p1 (ResNet stem, overlapping windows)",
    ),
    Case(
        "avg_k3s1p1",
        "avg",
        _B,
        _Q,
        kernel=3,
        stride=1,
        padding=1,
        description="avg k3 s1 p1, count_include_pad=True (Inception branch)",
    ),
    Case("global_avg", "global_avg", _B, _Q, description="global average -> (N, C)"),
    Case("global_max", "global_max", _B, _Q, description="global max -> (N, C)"),
    Case(
        "adaptive_avg_56to7",
        "adaptive_avg",
        _B,
        _Q,
        output_size=7,
        description="adaptive avg 56->7 (divisible: 8x8 windows)",
    ),
    Case(
        "adaptive_avg_7to3",
        "adaptive_avg",
        (32, 7, 7, 128),
        (4, 7, 7, 128),
        output_size=3,
        description="adaptive avg 7->3 (non-divisible, overlapping windows)",
    ),
    Case(
        "adaptive_max_56to5",
        "adaptive_max",
        _B,
        _Q,
        output_size=5,
        description="adaptive max 56->5 (non-divisible, overlapping windows)",
    ),
    Case(
        "max_k3s2d2",
        "max",
        _B,
        _Q,
        kernel=3,
        stride=2,
        padding=0,
        dilation=2,
        description="dilated max k3 s2 d2",
    ),
    Case(
        "hybrid_k2s2",
        "hybrid",
        _B,
        _Q,
        kernel=2,
        stride=2,
        description="alpha*max + (1-alpha)*avg, k2 s2, per-channel alpha",
    ),
    Case(
        "bf16_max_k2s2",
        "max",
        _B,
        _Q,
        dtype="bfloat16",
        kernel=2,
        stride=2,
        description="max k2 s2 on bfloat16",
    ),
    *[
        Case(
            f"max_k{k}s1p{k // 2}",
            "max",
            _D,
            _DQ,
            kernel=k,
            stride=1,
            padding=k // 2,
            description=f"max k{k} s1 p{k // 2}, 'same' size (YOLO's SPP)",
        )
        for k in (5, 9, 13)
    ],
    Case(
        "sppf_k5",
        "sppf",
        _D,
        _DQ,
        kernel=5,
        stride=1,
        padding=2,
        description="YOLO's SPPF: three max k5 s1 p2 in a row, concatenated with the input",
    ),
    Case(
        "small_max_k2s2",
        "max",
        (1, 32, 32, 64),
        (1, 32, 32, 64),
        kernel=2,
        stride=2,
        description="max k2 s2, batch 1: dispatch overhead dominates",
        scales=False,
    ),
]


# --------------------------------------------------------------------------------------
# Inputs shared by all candidates of a case
# --------------------------------------------------------------------------------------


@dataclass
class Inputs:
    case: Case
    shape: tuple[int, ...]
    x: np.ndarray  # float32 NHWC; already rounded to the case dtype's values
    g: np.ndarray  # float32 cotangent, output shape (NHWC); rounded likewise
    alpha: np.ndarray | None  # (C,) for hybrid
    jax_dtype: Any
    _jax: dict | None = None

    @property
    def out_shape(self):
        return self.case.out_shape(self.shape)

    def jax_arrays(self):
        if self._jax is None:
            dev = jax.devices()[0]
            put = lambda a: jax.device_put(jnp.asarray(a, dtype=self.jax_dtype), dev)  # noqa: E731
            aux = {} if self.alpha is None else {"alpha": put(self.alpha)}
            self._jax = {"x": put(self.x), "g": put(self.g), "aux": aux}
        return self._jax

    @property
    def in_bytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.jax_dtype).itemsize

    @property
    def out_bytes(self) -> int:
        return int(np.prod(self.out_shape)) * np.dtype(self.jax_dtype).itemsize


def make_inputs(case: Case, shape, seed: int) -> Inputs:
    rng = np.random.default_rng(seed)
    jdt = jnp.bfloat16 if case.dtype == "bfloat16" else jnp.float32
    rnd = lambda a: np.asarray(np.asarray(a, dtype=jdt), dtype=np.float32)  # noqa: E731
    x = rnd(rng.standard_normal(shape, dtype=np.float32))
    if case.op in ("max", "sppf"):
        # An input element's max-pooling gradient is a sum of the cotangents of the
        # windows that chose it, which torch adds in output order and jaxpool's separable
        # stages in another; small integers sum exactly in any order, so the check can
        # demand torch's numbers (the time does not depend on the values).
        g = rng.integers(-3, 4, size=case.out_shape(shape)).astype(np.float32)
    else:
        g = rnd(rng.standard_normal(case.out_shape(shape), dtype=np.float32))
    alpha = (
        rnd(rng.uniform(0.0, 1.0, size=(shape[-1],)).astype(np.float32))
        if case.op == "hybrid"
        else None
    )
    return Inputs(case, tuple(shape), x, g, alpha, jdt)


# --------------------------------------------------------------------------------------
# Candidates. A build returns {direction: Runner | reason it is n/a (str) | the error}.
# --------------------------------------------------------------------------------------


def _jax_runners(make_fn: Callable[[], Callable], inp: Inputs, family: str | None = None) -> dict:
    """make_fn() -> fn(x, aux) -> y (NHWC); called once per direction, so that each jit
    traces a fresh function (the kernel family is read at trace time). Forward: jit(fn).
    Fwd+bwd: jit of the VJP with a fixed random cotangent (not jnp.sum, which XLA could
    special-case), returning (y, dx): returning dx alone would let XLA drop the forward
    wherever the backward does not need it (avg pooling), whereas in training the forward
    output feeds the next layer (and torch computes it)."""
    arrays = inp.jax_arrays()
    x, g, aux = arrays["x"], arrays["g"], arrays["aux"]

    def forward():
        fn = make_fn()
        return compile_jax(lambda x, aux: fn(x, aux), (x, aux), to_float32, family)

    def forward_backward():
        fn = make_fn()

        def fwd_bwd(x, aux, g):
            y, vjp = jax.vjp(lambda x_: fn(x_, aux), x)
            return y, vjp(g)[0]

        return compile_jax(fwd_bwd, (x, aux, g), lambda r: to_float32(r[1]), family)

    built = {}
    for direction, build in ((FORWARD, forward), (GRAD, forward_backward)):
        try:
            built[direction] = build()
        except NotAvailable:
            raise
        except Exception as e:
            built[direction] = e
    return built


def _import_jaxpool():
    try:
        import jaxpool

        return jaxpool, None
    except Exception as e:
        return None, f"import jaxpool failed: {type(e).__name__}: {e}"


def _jaxpool_fn(case: Case):
    jp, err = _import_jaxpool()
    if jp is None:
        raise NotAvailable(err)
    name = {
        "max": "max_pool2d",
        "sppf": "max_pool2d",
        "avg": "avg_pool2d",
        "hybrid": "hybrid_pool2d",
        "adaptive_avg": "adaptive_avg_pool2d",
        "adaptive_max": "adaptive_max_pool2d",
        "global_avg": "global_avg_pool",
        "global_max": "global_max_pool",
    }[case.op]
    f = getattr(jp, name, None)
    if f is None:
        raise NotAvailable(f"jaxpool has no attribute {name!r} (not implemented yet)")
    k, s, p, d = case.kernel, case.stride, case.padding, case.dilation
    if case.op == "max":
        return lambda x, aux: f(x, k, s, p, dilation=d)
    if case.op == "sppf":
        return _sppf(lambda x: f(x, k, s, p), jnp.concatenate)
    if case.op == "avg":
        return lambda x, aux: f(x, k, s, p)
    if case.op == "hybrid":
        return lambda x, aux: f(x, aux["alpha"], k, s, p)
    if case.op.startswith("adaptive"):
        return lambda x, aux: f(x, case.output_size)
    return lambda x, aux: f(x)


def _sppf(pool: Callable, concatenate: Callable) -> Callable:
    """YOLOv5's SPPF pooling (its convolutions left out): the input and three poolings
    in a row, concatenated along the channels (the last axis; torch's dim 1)."""

    def sppf(x, aux):
        y1 = pool(x)
        y2 = pool(y1)
        return concatenate([x, y1, y2, pool(y2)], -1)

    return sppf


def build_jaxpool(family: str):
    def build(case: Case, inp: Inputs, ctx) -> dict:
        _jaxpool_fn(case)  # n/a before compiling anything
        return _jax_runners(lambda: _jaxpool_fn(case), inp, family)

    return build


def _flax_fn(case: Case):
    import flax.linen as nn

    k, s, p = case.kernel, case.stride or case.kernel, case.padding
    pad = ((p, p), (p, p))
    if case.op in ("max", "avg", "hybrid") and case.dilation != 1:
        raise NotAvailable("flax.linen.max_pool has no dilation argument")
    if case.op == "max":
        return lambda x, aux: nn.max_pool(x, (k, k), (s, s), pad)
    if case.op == "sppf":
        return _sppf(lambda x: nn.max_pool(x, (k, k), (s, s), pad), jnp.concatenate)
    if case.op == "avg":  # count_include_pad=True is flax's default too
        return lambda x, aux: nn.avg_pool(x, (k, k), (s, s), pad, count_include_pad=True)
    if case.op == "hybrid":

        def hybrid(x, aux):
            a = aux["alpha"]
            return a * nn.max_pool(x, (k, k), (s, s), pad) + (1 - a) * nn.avg_pool(
                x, (k, k), (s, s), pad, count_include_pad=True
            )

        return hybrid
    if case.op.startswith("adaptive"):
        raise NotAvailable("flax.linen has no adaptive pooling")
    raise NotAvailable("flax.linen has no global pooling (see the jnp candidate)")


def build_flax(case: Case, inp: Inputs, ctx) -> dict:
    _flax_fn(case)
    return _jax_runners(lambda: _flax_fn(case), inp)


def _jnp_fn(case: Case, shape):
    if case.op == "global_avg":
        return lambda x, aux: jnp.mean(x, axis=(1, 2))
    if case.op == "global_max":
        return lambda x, aux: jnp.max(x, axis=(1, 2))
    if case.op.startswith("adaptive"):
        n, h, w, c = shape
        o = case.output_size
        if h % o or w % o:
            raise NotAvailable(f"jnp reshape baseline needs divisible sizes ({h}x{w} -> {o})")
        red = jnp.mean if case.op == "adaptive_avg" else jnp.max
        return lambda x, aux: red(x.reshape(n, o, h // o, o, w // o, c), axis=(2, 4))
    raise NotAvailable(
        "jnp baseline only for global and divisible adaptive pooling (flax covers the rest)"
    )


def build_jnp(case: Case, inp: Inputs, ctx) -> dict:
    _jnp_fn(case, inp.shape)
    return _jax_runners(lambda: _jnp_fn(case, inp.shape), inp)


def build_memory_jnp(reduce_name: str):
    def build(case: Case, inp: Inputs, ctx) -> dict:
        reduce = getattr(jnp, reduce_name)
        runner = compile_jax(lambda x: reduce(x), (inp.jax_arrays()["x"],), None)
        return {FORWARD: runner, GRAD: "forward-only reference"}

    return build


# ---- torch ---------------------------------------------------------------------------


def _torch_fn(case: Case):
    torch, err = import_torch()
    if torch is None:
        raise NotAvailable(err)
    F = torch.nn.functional
    k, s, p, d = case.kernel, case.stride or case.kernel, case.padding, case.dilation
    if case.op == "max":
        return lambda x, aux: F.max_pool2d(x, k, s, p, d)
    if case.op == "sppf":  # NCHW: the channels are dim 1
        return _sppf(lambda x: F.max_pool2d(x, k, s, p), lambda xs, _: torch.cat(xs, 1))
    if case.op == "avg":
        return lambda x, aux: F.avg_pool2d(x, k, s, p)
    if case.op == "hybrid":
        return lambda x, aux: (
            aux["alpha"] * F.max_pool2d(x, k, s, p) + (1 - aux["alpha"]) * F.avg_pool2d(x, k, s, p)
        )
    if case.op == "adaptive_avg":
        return lambda x, aux: F.adaptive_avg_pool2d(x, case.output_size)
    if case.op == "adaptive_max":
        return lambda x, aux: F.adaptive_max_pool2d(x, case.output_size)
    if case.op == "global_avg":
        return lambda x, aux: F.adaptive_avg_pool2d(x, 1).flatten(1)
    if case.op == "global_max":
        return lambda x, aux: F.adaptive_max_pool2d(x, 1).flatten(1)
    raise ValueError(case.op)


def _torch_nhwc(t) -> np.ndarray:
    t = t.detach().float().cpu()
    if t.dim() == 4:
        t = t.permute(0, 2, 3, 1)
    return t.contiguous().numpy()


def _torch_tensors(inp: Inputs, channels_last: bool, device: str):
    torch = import_torch()[0]
    tdt = torch.bfloat16 if inp.case.dtype == "bfloat16" else torch.float32
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def conv(a):  # NHWC numpy -> NCHW torch in the requested memory format
        t = torch.from_numpy(np.ascontiguousarray(a))
        if t.dim() == 4:
            t = t.permute(0, 3, 1, 2).contiguous(memory_format=fmt)
        return t.to(device=device, dtype=tdt)

    aux = {}
    if inp.alpha is not None:
        aux["alpha"] = torch.from_numpy(inp.alpha).to(device=device, dtype=tdt).view(1, -1, 1, 1)
    return conv(inp.x), conv(inp.g), aux


def _torch_runners(fn, inp: Inputs, channels_last: bool, device: str) -> dict:
    torch = import_torch()[0]
    x, g, aux = _torch_tensors(inp, channels_last, device)
    xr = x.detach().requires_grad_(True)

    def forward():
        with torch.no_grad():
            return fn(x, aux)

    def fwd_bwd():
        (dx,) = torch.autograd.grad(fn(xr, aux), xr, g)
        return dx

    wait = torch_wait(device)
    return {FORWARD: Runner(forward, wait, _torch_nhwc), GRAD: Runner(fwd_bwd, wait, _torch_nhwc)}


def build_torch(channels_last: bool):
    def build(case: Case, inp: Inputs, ctx) -> dict:
        fn = _torch_fn(case)
        if ctx.torch_device is None:
            raise NotAvailable(ctx.torch_skip_reason)
        return _torch_runners(fn, inp, channels_last, ctx.torch_device)

    return build


def build_memory_torch(case: Case, inp: Inputs, ctx) -> dict:
    torch, err = import_torch()
    if torch is None:
        raise NotAvailable(err)
    if ctx.torch_device is None:
        raise NotAvailable(ctx.torch_skip_reason)
    x, _, _ = _torch_tensors(inp, False, ctx.torch_device)
    return {
        FORWARD: Runner(lambda: x.sum(), torch_wait(ctx.torch_device), None),
        GRAD: "forward-only reference",
    }


@dataclass(frozen=True)
class Candidate:
    name: str
    build: Callable  # (case, inputs, ctx) -> {direction: Runner | str | Exception}; may raise
    checked: bool = True  # compare its outputs with torch's


def jaxpool_name(family: str) -> str:
    return f"jaxpool-{family}"


CANDIDATES: list[Candidate] = [
    *[Candidate(jaxpool_name(f), build_jaxpool(f)) for f in FAMILIES],
    Candidate("flax", build_flax),
    Candidate("jnp", build_jnp),
    Candidate("torch-nchw", build_torch(channels_last=False)),
    Candidate("torch-cl", build_torch(channels_last=True)),
    Candidate("memory-bound:jnp.sum", build_memory_jnp("sum"), checked=False),
    Candidate("memory-bound:jnp.max", build_memory_jnp("max"), checked=False),
    Candidate("memory-bound:torch.sum", build_memory_torch, checked=False),
]
MEMORY_JAX = ("memory-bound:jnp.sum", "memory-bound:jnp.max")


# --------------------------------------------------------------------------------------
# Reference (torch NCHW on CPU, untimed)
# --------------------------------------------------------------------------------------


def torch_reference(case: Case, inp: Inputs) -> tuple[dict, str | None]:
    """{direction: NHWC float32 numpy} from torch NCHW on CPU, or ({}, reason)."""
    try:
        fn = _torch_fn(case)
        runners = _torch_runners(fn, inp, channels_last=False, device="cpu")
        return {d: runners[d].to_nhwc(runners[d].call()) for d in DIRECTIONS}, None
    except Exception as e:
        return {}, f"no torch reference: {type(e).__name__}: {e}"


def dilated_grad_probe() -> str:
    """JAX's own reduce_window max with window_dilation: forward works, does the VJP?"""
    x = jnp.ones((1, 9, 9, 2), jnp.float32)
    def f(x):
        return lax.reduce_window(
            x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID", window_dilation=(1, 2, 2, 1)
        )

    try:
        f(x).block_until_ready()
    except Exception as e:
        return (
            "JAX lax.reduce_window max with window_dilation fails even forward: "
            f"{type(e).__name__}: {e}"
        )
    try:
        jax.grad(lambda x: f(x).sum())(x).block_until_ready()
    except Exception as e:
        return (
            f"flax.linen.max_pool has no dilation, and JAX has no gradient "
            f"for dilated max pooling: "
            f"jax.grad of lax.reduce_window(max, window_dilation=2) raises `{type(e).__name__}: "
            f"{str(e).splitlines()[0]}` (verified in this run, jax {jax.__version__})."
        )
    return (
        f"flax.linen.max_pool has no dilation; note: jax.grad of lax.reduce_window(max, "
        f"window_dilation=2) works in jax {jax.__version__}."
    )


# --------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------


@dataclass
class Context:
    platform: str
    auto_family: str
    torch_device: str | None
    torch_skip_reason: str | None


def _build_all(case: Case, inp: Inputs, cands: list[Candidate], ctx: Context, rec: dict) -> dict:
    """Builds (and compiles) every candidate; records n/a and errors in rec["results"]."""
    built: dict[str, dict] = {}
    for c in cands:
        res = rec["results"].setdefault(c.name, {})
        try:
            b = c.build(case, inp, ctx)
        except NotAvailable as e:
            b = {d: str(e) for d in DIRECTIONS}
        except Exception as e:
            b = dict.fromkeys(DIRECTIONS, e)
        for d in DIRECTIONS:
            if isinstance(b[d], str):
                res[d] = {"status": "n/a", "reason": b[d]}
            elif isinstance(b[d], BaseException):
                res[d] = {
                    "status": "error",
                    "reason": error_text(b[d]),
                    "traceback": "".join(traceback.format_exception(b[d])),
                }
        built[c.name] = {d: r for d, r in b.items() if isinstance(r, Runner)}
    return built


def _gbps(name: str, direction: str, inp: Inputs, ms: float) -> float:
    if name.startswith("memory-bound"):
        return inp.in_bytes / ms / 1e6  # read x
    moved = inp.in_bytes + inp.out_bytes  # forward: read x, write y
    return (
        (moved if direction == FORWARD else 2 * moved) / ms / 1e6
    )  # fwd+bwd: also read g, write dx


def run_case(case: Case, cands: list[Candidate], ctx: Context, args, log) -> dict:
    shape = case.shape_for(args.quick, args.batch)
    inp = make_inputs(case, shape, args.seed)
    rec: dict[str, Any] = {
        "name": case.name,
        "op": case.op,
        "description": case.description,
        "shape_nhwc": list(shape),
        "shape_torch_nchw": [shape[0], shape[3], shape[1], shape[2]],
        "out_shape_nhwc": list(inp.out_shape),
        "dtype": case.dtype,
        "params": {
            k: getattr(case, k)
            for k in ("kernel", "stride", "padding", "dilation", "output_size")
            if getattr(case, k) is not None
        },
        "in_bytes": inp.in_bytes,
        "out_bytes": inp.out_bytes,
        "notes": [],
        "results": {},
    }
    if case.op in ("max", "avg", "hybrid") and case.dilation != 1:
        rec["notes"].append(dilated_grad_probe())
    if case.op == "hybrid":
        rec["notes"].append(
            "fwd+bwd differentiates w.r.t. x only (alpha is an input, not differentiated)."
        )
    ref, ref_reason = torch_reference(case, inp) if not args.no_check else ({}, "--no-check")
    built = _build_all(case, inp, cands, ctx, rec)
    checked = {c.name for c in cands if c.checked}
    for d in DIRECTIONS:
        runners = {n: b[d] for n, b in built.items() if d in b}
        stats = measure(runners, args, log)
        for n, st in stats.items():
            first = st.pop("_first_result", None)
            to_nhwc = runners[n].to_nhwc
            if n in checked and to_nhwc is not None and first is not None and not args.no_check:
                try:
                    st["check"] = check(to_nhwc(first), ref.get(d), case.dtype, ref_reason)
                except Exception as e:
                    st["check"] = {"ok": False, "reason": f"check failed: {error_text(e)}"}
                res = first[-1] if isinstance(first, tuple) else first
                st["check"]["result_dtype"] = str(getattr(res, "dtype", "?"))
            if st.get("status") == "ok":
                st["gbps"] = _gbps(n, d, inp, st["min_ms"])
            rec["results"][n][d] = st
        del runners, stats
    for d in DIRECTIONS:  # one line of progress per direction
        parts = []
        for c in cands:
            st = rec["results"][c.name].get(d, {})
            if st.get("status") == "ok":
                ok = st.get("check", {}).get("ok")
                parts.append(
                    f"{c.name}={st['min_ms']:.3g}ms" + ("" if ok in (True, None) else " MISMATCH")
                )
        log(f"  {case.name:20s} {d:8s} " + "  ".join(parts))
    return rec


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def _min(st: dict | None) -> float | None:
    return st["min_ms"] if st and st.get("status") == "ok" else None


def _cell(st: dict | None) -> str:
    if not st:
        return "—"
    if st["status"] == "n/a":
        return "n/a"
    if st["status"] == "error":
        return "ERR"
    s = rp.fmt_ms(st["min_ms"])
    if st.get("check", {}).get("ok") is False:
        s += " ✗MISMATCH"
    return s


RATIO_COLS = ("auto/flax", "auto/torch-best", "auto/mem-bound", "auto/other family")
LARGE_BYTES = 32 * 2**20  # "large" cases for the bandwidth goal: inputs of at least 32 MiB


def row_values(rec: dict, d: str, auto: str, peak_gbps: float | None = None) -> dict:
    """The numbers of one table row: times, ratios (the family ``auto`` over the others),
    GB/s and compiled temporary bytes."""
    R = rec["results"]
    get = lambda n: R.get(n, {}).get(d)  # noqa: E731
    auto_name = jaxpool_name(auto)
    other_name = jaxpool_name(next(f for f in FAMILIES if f != auto))
    jp, other = _min(get(auto_name)), _min(get(other_name))
    base_name = (
        "flax"
        if _min(get("flax")) is not None
        else ("jnp" if _min(get("jnp")) is not None else None)
    )
    base = _min(get(base_name)) if base_name else None
    tcl, tnc = _min(get("torch-cl")), _min(get("torch-nchw"))
    tbest = min([t for t in (tcl, tnc) if t is not None], default=None)
    mems = [(n, _min(get(n))) for n in MEMORY_JAX if _min(get(n)) is not None]
    mem_name, mem = min(mems, key=lambda t: t[1]) if mems else (None, None)
    gbps = (get(auto_name) or {}).get("gbps")
    temp = lambda n: (get(n) or {}).get("temp_bytes") if n else None  # noqa: E731
    return {
        "auto_family": auto,
        "auto": jp,
        "other_family": other,
        "base_name": base_name,
        "base": base,
        "torch-cl": tcl,
        "torch-nchw": tnc,
        "memory-bound": mem,
        "memory-bound_op": mem_name,
        "memory-bound:torch.sum": _min(get("memory-bound:torch.sum")),
        "auto/flax": rp.ratio(jp, base),
        "auto/torch-cl": rp.ratio(jp, tcl),
        "auto/torch-nchw": rp.ratio(jp, tnc),
        "auto/torch-best": rp.ratio(jp, tbest),
        "auto/mem-bound": rp.ratio(jp, mem) if d == FORWARD else None,
        "auto/other family": rp.ratio(jp, other),
        "auto_gbps": gbps,
        "auto_peak_fraction": rp.ratio(gbps, peak_gbps),
        "temp_bytes": {f: temp(jaxpool_name(f)) for f in FAMILIES} | {"base": temp(base_name)},
        "in_bytes": rec["in_bytes"],
    }


@dataclass(frozen=True)
class Goal:
    text: str
    direction: str
    value: Callable[[dict, dict], float | None]  # (case record, row values) -> number, None: n/a
    met: Callable[[float], bool]
    shown: Callable[[float], str]
    accelerator_only: bool = False


GOALS = (
    Goal(
        "every gradient's compiled temporary bytes ≤ the input's size",
        GRAD,
        lambda rec, rv: rp.ratio(rv["temp_bytes"][rv["auto_family"]], rec["in_bytes"]),
        lambda v: v <= 1.0,
        lambda v: f"{v:.2f}× input",
    ),
    Goal(
        "every forward ≤ 1.0× flax.linen",
        FORWARD,
        lambda rec, rv: rv["auto/flax"] if rv["base_name"] == "flax" else None,
        lambda v: v <= 1.0,
        lambda v: f"{v:.2f}×",
    ),
    Goal(
        "max-pooling gradients ≥ 3× faster than flax.linen's",
        GRAD,
        lambda rec, rv: (
            rp.ratio(rv["base"], rv["auto"])
            if rec["op"] == "max" and rv["base_name"] == "flax"
            else None
        ),
        lambda v: v >= 3.0,
        lambda v: f"{v:.1f}× faster",
    ),
    Goal(
        f"forward ≥ 70 % of peak memory bandwidth on the large cases"
        f" (input ≥ {LARGE_BYTES >> 20} MiB)",
        FORWARD,
        lambda rec, rv: rv["auto_peak_fraction"] if rec["in_bytes"] >= LARGE_BYTES else None,
        lambda v: v >= 0.7,
        lambda v: f"{100 * v:.0f} %",
        accelerator_only=True,
    ),
)


def goal_lines(cases: list[dict], env: dict) -> list[str]:
    """The goals table: per goal, the cases that met it and those that missed it."""
    m = env.get("machine") or {}
    on_accelerator = env["jax_platform"] != "cpu"
    rows = []
    for goal in GOALS:
        if goal.accelerator_only and not on_accelerator:
            continue
        if goal.accelerator_only and not m.get("peak_gbps"):
            rows.append(
                [
                    goal.text,
                    "—",
                    f"not judged: peak bandwidth of `{m.get('device_kind')}` unknown "
                    "(add it to GPU_PEAK_GBPS in benchmarks/machine.py)",
                ]
            )
            continue
        met, missed = [], []
        for rec in cases:
            v = goal.value(rec, rec["summary"][goal.direction])
            if v is not None:
                (met if goal.met(v) else missed).append(f"{rec['name']} ({goal.shown(v)})")
        rows.append(
            [goal.text, ", ".join(met) or "—", ", ".join(f"**{x}**" for x in missed) or "—"]
        )
    auto = env["machine"]["auto_family"]
    return [
        f"## Goals (jaxpool's `{auto}` family, the one `auto` uses here)",
        "",
        *rp.table(["goal", "met", "missed"], rows, left=3),
        "",
    ]


def _header_lines(env: dict, cases: list[dict]) -> list[str]:
    v, a = env["versions"], env["args"]
    auto = env["machine"]["auto_family"]
    repeats = (
        f"repeats sized to ~{a['budget']:g} s per candidate and direction ({a['min_repeats']} to "
        f"{a['max_repeats']})"
        if a["budget"] > 0
        else f"{a['repeats']} repeats"
    )
    burst = f", each sample {a['burst']} calls launched back to back" if a["burst"] > 1 else ""
    hugetlb = env["allocator"]["variant"] == "hugetlb"
    lines = [
        f"# jaxpool pooling benchmark{' — huge-page malloc, kernel-only' if hugetlb else ''}"
        f"{' (--quick)' if a['quick'] else ''}",
        "",
        rp.machine_line(env),
        f"- {env['date_utc']} · jax {v['jax']} · jaxlib {v['jaxlib']} · flax {v['flax']}"
        f" · torch {v['torch']} "
        f"(threads {env['torch_threads']}, device {env['torch_device']}) · numpy {v['numpy']} · "
        f"python {env['python']}",
        f"- command: {rp.command_text(env)}",
        f"- allocator: {allocator_text(env['allocator'])}",
        f"- jaxpool kernel families: `cpu` and `reduce_window` timed side by side; **`auto` uses "
        f"`{auto}` on `{env['jax_platform']}`**, and the ratio columns are that family's",
        f"- load average at start / end: {', '.join(f'{x:.2f}' for x in env['loadavg_start'])} / "
        f"{', '.join(f'{x:.2f}' for x in env.get('loadavg_end', []))}; other processes kept "
        f"{env.get('other_processes_cores') or 0:.2f} cores busy on average during the run "
        f"({env.get('wall_s', 0):.0f} s)",
        "",
        f"Milliseconds, the **minimum** over {repeats}{burst}, after {a['warmup']} warm-up calls "
        "(compiled ahead); the candidates of a case run interleaved round-robin in one process. "
        "Ratios are jaxpool (`auto`'s family) time / other time: **< 1 means jaxpool is faster**; "
        "`auto/other family` < 1 means `auto` picked the faster family. `flax (jnp)`: "
        "flax.linen, or a plain-jnp baseline marked (jnp) where flax has no such op. "
        "`mem-bound`: one jitted read pass over the input (fastest of jnp.sum / jnp.max), the "
        "floor for a forward pass. GB/s (`auto`'s family) = (input + output bytes) / time "
        "forward, 2 × that fwd+bwd"
        + (", with the share of the card's peak bandwidth" if env["jax_platform"] != "cpu" else "")
        + ". `temp MiB`: XLA's compiled temporary bytes (`memory_analysis().temp_size_in_bytes`) "
        "of the jitted forward or forward+backward, beside the input's size. ✗MISMATCH: that "
        "output (forward) or input gradient (fwd+bwd) disagrees with torch's. `other load`: "
        "cores kept busy by other processes while the case ran (near 0: a quiet machine).",
        "",
    ]
    if env.get("skipped_cases"):
        lines += [
            f"**Stopped early** (`--time-limit {a['time_limit']:g}`): not run: "
            f"{', '.join(env['skipped_cases'])}.",
            "",
        ]
    busy = [
        f"{rec['name']} {rec['other_processes_cores']:.2f}"
        for rec in cases
        if (rec.get("other_processes_cores") or 0) > BUSY_CORES
    ]
    if busy:
        lines += [
            f"**Warning: other processes were using the CPU during this run** (average cores "
            f"busy with other processes, where above {BUSY_CORES}: {', '.join(busy)}). Those "
            "cases' timings carry interference; torch's OpenMP threads suffer most from it. "
            "Rerun on a quiet machine before drawing conclusions.",
            "",
        ]
    failures = []
    for rec in cases:
        for cand, dirs in rec["results"].items():
            for d, st in dirs.items():
                ch = st.get("check") or {}
                if ch.get("ok") is False:
                    failures.append(
                        f"- **{rec['name']} / {cand} / {d}**: "
                        + (
                            ch.get("reason")
                            or f"{ch['mismatched']} of {ch['of']} elements differ, "
                            f"max abs err {ch['max_abs_err']:.3g}"
                        )
                    )
    if failures:
        lines += ["## ✗ CHECK FAILURES (these timings are of wrong results)", "", *failures, ""]
    return lines


def _table_lines(env: dict, cases: list[dict]) -> list[str]:
    auto = env["machine"]["auto_family"]
    peak = env["machine"].get("peak_gbps")
    fam = lambda f: f"jaxpool {f}" + (" (auto)" if f == auto else "")  # noqa: E731
    head = [
        "case",
        "input (NHWC)",
        "dir",
        *[fam(f) for f in FAMILIES],
        "flax (jnp)",
        "torch-nchw",
        "torch-cl",
        "mem-bound",
        *RATIO_COLS,
        "GB/s" + (" (% peak)" if peak else ""),
        *[f"temp MiB {f}" for f in FAMILIES],
        "temp MiB flax (jnp)",
        "other load",
    ]
    rows = []
    ratios = {d: {c: [] for c in RATIO_COLS} for d in DIRECTIONS}
    for rec in cases:
        dt = {"float32": "f32", "bfloat16": "bf16"}[rec["dtype"]]
        size = f"{'×'.join(map(str, rec['shape_nhwc']))} {dt}, {rp.fmt_mib(rec['in_bytes'])} MiB"
        for d in DIRECTIONS:
            rv = rec["summary"][d]
            g = functools.partial(_result_of, rec, d)
            if rv["base_name"]:
                base = _cell(g(rv["base_name"])) + (" (jnp)" if rv["base_name"] == "jnp" else "")
            else:  # neither ran: say why flax did not (n/a or ERR), or — if not selected
                base = _cell(g("flax")) if g("flax") else _cell(g("jnp"))
            mem = _cell(g(rv["memory-bound_op"])) if d == FORWARD and rv["memory-bound_op"] else "—"
            gb = rv["auto_gbps"]
            gb = (
                "—"
                if gb is None
                else f"{gb:.1f}"
                + (
                    f" ({100 * rv['auto_peak_fraction']:.0f} %)"
                    if rv["auto_peak_fraction"] is not None
                    else ""
                )
            )
            temps = rv["temp_bytes"]
            rows.append(
                [
                    rec["name"],
                    size,
                    d,
                    *[_cell(g(jaxpool_name(f))) for f in FAMILIES],
                    base,
                    _cell(g("torch-nchw")),
                    _cell(g("torch-cl")),
                    mem,
                    *[rp.fmt_ratio(rv[c]) for c in RATIO_COLS],
                    gb,
                    *[rp.fmt_mib(temps[f]) if g(jaxpool_name(f)) else "—" for f in FAMILIES],
                    rp.fmt_mib(temps["base"]) if rv["base_name"] else "—",
                    ""
                    if rec.get("other_processes_cores") is None
                    else f"{rec['other_processes_cores']:.2f}",
                ]
            )
            for c in RATIO_COLS:
                ratios[d][c].append(rv[c])
    for d in DIRECTIONS:
        gms = [rp.geomean(ratios[d][c]) for c in RATIO_COLS]
        cells = [
            f"**geomean** ({len(cases)} cases)",
            "",
            d,
            *[""] * (len(FAMILIES) + 4),
            *[("—" if gm is None else f"**{gm:.2f}** (n={n})") for gm, n in gms],
            *[""] * (len(FAMILIES) + 3),
        ]
        rows.append(cells)
    return [*rp.table(head, rows, left=3), ""]


def _notes_lines(cases: list[dict]) -> list[str]:
    notes = [f"- {rec['name']}: {n}" for rec in cases for n in rec["notes"]]
    missing: dict[tuple[str, str, str], list[str]] = {}  # (candidate, status, reason) -> cases
    for rec in cases:
        for cand, dirs in rec["results"].items():
            for d, st in dirs.items():
                if st["status"] in ("n/a", "error") and st["reason"] != "forward-only reference":
                    both = all(dirs.get(x, {}).get("reason") == st["reason"] for x in DIRECTIONS)
                    if both and d != DIRECTIONS[0]:
                        continue
                    key = (cand, st["status"], st["reason"])
                    missing.setdefault(key, []).append(rec["name"] + ("" if both else f" ({d})"))
    notes += [
        f"- {cand}: {status}: {reason} — {', '.join(where)}"
        for (cand, status, reason), where in missing.items()
    ]
    lines = ["## Notes", "", *notes, ""]
    for family in FAMILIES:
        exact, close = [], []
        for rec in cases:
            for d in DIRECTIONS:
                ch = (rec["results"].get(jaxpool_name(family), {}).get(d) or {}).get("check") or {}
                if ch.get("ok"):
                    (exact if ch["exact"] else close).append(
                        f"{rec['name']} {d}"
                        + ("" if ch["exact"] else f" (max abs err {ch['max_abs_err']:.2g})")
                    )
        if exact or close:
            lines += [f"## jaxpool `{family}` against torch (checks passed)", ""]
            lines += [f"- bit-exact: {', '.join(exact)}"] if exact else []
            lines += [f"- within tolerance {TOLERANCE}: {', '.join(close)}"] if close else []
            lines.append("")
    return lines



def _result_of(rec: dict, direction: str, name: str) -> dict | None:
    """One candidate's result in one direction of a case record (None if absent)."""
    return rec["results"].get(name, {}).get(direction)

def markdown(report: dict) -> str:
    env, cases = report["environment"], report["cases"]
    lines = [
        *_header_lines(env, cases),
        *_table_lines(env, cases),
        *goal_lines(cases, env),
        *_notes_lines(cases),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.pooling",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--cases", default="", help="comma-separated substrings; run cases whose name contains one"
    )
    p.add_argument(
        "--candidates",
        default="",
        help="comma-separated substrings of candidate names (jaxpool-cpu, jaxpool-reduce_window, "
        "flax, jnp, torch-nchw, torch-cl, memory-bound); default all",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        default=0.0,
        metavar="S",
        help="start no new case after S seconds; the report lists the cases not run (0: no limit)",
    )
    p.add_argument(
        "--no-check", action="store_true", help="skip the correctness checks against torch"
    )
    p.add_argument("--list", action="store_true", help="list cases and candidates and exit")
    add_timing_options(p)
    return finish_timing_options(p.parse_args(argv))


def _select(items, spec):
    pats = [s.strip() for s in spec.split(",") if s.strip()]
    return [i for i in items if not pats or any(pt in i.name for pt in pats)]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for c in CASES:
            print(
                f"{c.name:20s} {c.op:13s} {c.dtype:9s} {c.shape}"
                f" quick {c.quick_shape}  {c.description}"
            )
        print("candidates:", ", ".join(c.name for c in CANDIDATES))
        return 0
    start_run(args, "benchmarks.pooling", argv)
    cases, cands = _select(CASES, args.cases), _select(CANDIDATES, args.candidates)
    if not cases or not cands:
        print("no case or no candidate selected (see --list)", file=sys.stderr)
        return 2
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    env = rp.environment("pooling", args, argv)
    plat, auto = env["machine"]["platform"], env["machine"]["auto_family"]
    tdev, treason = torch_device(plat, args.torch_threads)
    ctx = Context(plat, auto, tdev, treason)
    torch = import_torch()[0]
    env.update(
        {
            "torch_threads": torch.get_num_threads() if torch is not None else None,
            "torch_device": tdev,
            "torch_skip_reason": treason,
            "tolerance": TOLERANCE,
        }
    )
    log(
        f"jax {env['versions']['jax']} on {plat} ({env['machine']['device_kind']}; machine "
        f"{env['machine']['slug']}); auto family: {auto}; "
        f"torch {env['versions']['torch']} on {tdev}; "
        f"allocator: {env['allocator']['variant']}; "
        f"jaxpool: {env['jaxpool']['path'] or env['jaxpool']['import_error']}"
    )
    t_start = time.perf_counter()
    snap_start = cpu_snapshot()
    recs, skipped = [], []
    for case in cases:
        if args.time_limit > 0 and time.perf_counter() - t_start > args.time_limit:
            skipped.append(case.name)
            continue
        gc.collect()
        waited = wait_quiet(args.wait_quiet, log) if args.wait_quiet > 0 else None
        snap = cpu_snapshot()
        rec = run_case(case, cands, ctx, args, log)
        snap2 = cpu_snapshot()
        rec.update(
            other_processes_cores=other_cores(snap, snap2),
            waited_for_quiet_s=waited,
            wall_s=snap2[0] - snap[0] if snap and snap2 else None,
        )
        rec["summary"] = {
            d: row_values(rec, d, auto, env["machine"]["peak_gbps"]) for d in DIRECTIONS
        }
        recs.append(rec)
    env.update(
        loadavg_end=list(os.getloadavg()),
        other_processes_cores=other_cores(snap_start, cpu_snapshot()),
        wall_s=time.perf_counter() - t_start,
        skipped_cases=skipped,
    )
    report = {"environment": env, "cases": recs}
    rp.write_report("pooling", report, markdown(report), out=args.out, quick=args.quick, log=log)
    if any(
        (st.get("check") or {}).get("ok") is False
        for rec in recs
        for dirs in rec["results"].values()
        for st in dirs.values()
    ):
        log("WARNING: some candidates disagree with torch; see CHECK FAILURES in the table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
