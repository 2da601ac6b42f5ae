"""Pooling benchmark: jaxpool against flax.linen / jnp, torch (NCHW and channels-last) and a
memory-bound floor, forward and forward+backward, all in one process run.

    PYTHONPATH=. python -m benchmarks.pooling            # full suite (~5 min on 2 cores)
    PYTHONPATH=. python -m benchmarks.pooling --quick    # smoke test, small shapes
    PYTHONPATH=. python -m benchmarks.pooling --cases max_k2s2,global --candidates jaxpool,torch-cl

Writes ``pooling.json`` (everything: all samples, versions, machine) and ``pooling.md``
(the table) to ``--out`` (default ``benchmarks/results/``; ``--quick`` writes
``pooling-quick.*`` so a smoke test never overwrites a full run). See benchmarks/README.md.

Method: every candidate is first called once and its output (forward) or input gradient
(forward+backward) is compared with torch's (the check), then warmed up, then timed in
interleaved rounds (one call of each candidate per round, rotating order, a short pause at
each switch). Times are the *minimum* over the repeats, which is robust to interference
from other processes; medians and all samples go to the JSON.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import jax
import jax.numpy as jnp
from jax import lax

FORWARD = "forward"
GRAD = "fwd+bwd"
DIRECTIONS = (FORWARD, GRAD)


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One benchmark case. Shapes are channels-last (N, H, W, C); torch gets (N, C, H, W)."""

    name: str
    op: str  # max | avg | hybrid | adaptive_avg | adaptive_max | global_avg | global_max
    shape: tuple[int, ...]
    quick_shape: tuple[int, ...]
    dtype: str = "float32"  # float32 | bfloat16
    kernel: int | None = None
    stride: int | None = None
    padding: int = 0
    dilation: int = 1
    output_size: int | None = None
    description: str = ""

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        if self.op in ("max", "avg", "hybrid"):
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
        return (n, *self.out_hw(h, w), c)


_B = (32, 56, 56, 128)  # a ResNet stage-1 activation, batch 32
_Q = (4, 56, 56, 128)  # --quick
CASES: list[Case] = [
    Case("max_k2s2", "max", _B, _Q, kernel=2, stride=2, description="max k2 s2 (VGG-style)"),
    Case("avg_k2s2", "avg", _B, _Q, kernel=2, stride=2, description="avg k2 s2"),
    Case("max_k3s2p1", "max", _B, _Q, kernel=3, stride=2, padding=1,
         description="max k3 s2 p1 (ResNet stem, overlapping windows)"),
    Case("avg_k3s1p1", "avg", _B, _Q, kernel=3, stride=1, padding=1,
         description="avg k3 s1 p1, count_include_pad=True (Inception branch)"),
    Case("global_avg", "global_avg", _B, _Q, description="global average -> (N, C)"),
    Case("global_max", "global_max", _B, _Q, description="global max -> (N, C)"),
    Case("adaptive_avg_56to7", "adaptive_avg", _B, _Q, output_size=7,
         description="adaptive avg 56->7 (divisible: 8x8 windows)"),
    Case("adaptive_avg_7to3", "adaptive_avg", (32, 7, 7, 128), (4, 7, 7, 128), output_size=3,
         description="adaptive avg 7->3 (non-divisible, overlapping windows)"),
    Case("adaptive_max_56to5", "adaptive_max", _B, _Q, output_size=5,
         description="adaptive max 56->5 (non-divisible, overlapping windows)"),
    Case("max_k3s2d2", "max", _B, _Q, kernel=3, stride=2, padding=0, dilation=2,
         description="dilated max k3 s2 d2"),
    Case("hybrid_k2s2", "hybrid", _B, _Q, kernel=2, stride=2,
         description="alpha*max + (1-alpha)*avg, k2 s2, per-channel alpha"),
    Case("bf16_max_k2s2", "max", _B, _Q, dtype="bfloat16", kernel=2, stride=2,
         description="max k2 s2 on bfloat16"),
    Case("small_max_k2s2", "max", (1, 32, 32, 64), (1, 32, 32, 64), kernel=2, stride=2,
         description="max k2 s2, batch 1: dispatch overhead dominates"),
]


class NotAvailable(Exception):
    """The candidate has no such operation (reported as ``n/a: <reason>``)."""


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
    g = rnd(rng.standard_normal(case.out_shape(shape), dtype=np.float32))
    alpha = rnd(rng.uniform(0.0, 1.0, size=(shape[-1],)).astype(np.float32)) if case.op == "hybrid" else None
    return Inputs(case, tuple(shape), x, g, alpha, jdt)


# --------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------

@dataclass
class Runner:
    call: Callable[[], Any]  # one call, blocks until the result is ready, returns it
    to_nhwc: Callable[[Any], np.ndarray] | None  # result -> float32 numpy (NHWC); None: not checked


def _jax_runners(fn: Callable, inp: Inputs) -> dict:
    """fn(x, aux) -> y (NHWC). Forward: jit(fn). Fwd+bwd: jit of the VJP with a fixed random
    cotangent (not jnp.sum, which XLA could special-case), returning (y, dx): returning dx
    alone would let XLA drop the forward wherever the backward does not need it (avg pooling),
    whereas in training the forward output feeds the next layer (and torch computes it)."""
    arrays = inp.jax_arrays()
    x, g, aux = arrays["x"], arrays["g"], arrays["aux"]
    fwd = jax.jit(fn)

    def fwd_bwd(x, aux, g):
        y, vjp = jax.vjp(lambda x_: fn(x_, aux), x)
        return y, vjp(g)[0]

    fb = jax.jit(fwd_bwd)
    to_np = lambda y: np.asarray(y).astype(np.float32)  # noqa: E731
    return {
        FORWARD: Runner(lambda: fwd(x, aux).block_until_ready(), to_np),
        GRAD: Runner(lambda: jax.block_until_ready(fb(x, aux, g)), lambda r: to_np(r[1])),
    }


def _import_jaxpool():
    try:
        import jaxpool  # noqa: F401
        return jaxpool, None
    except Exception as e:  # noqa: BLE001 - the library may be half-written
        return None, f"import jaxpool failed: {type(e).__name__}: {e}"


def _jaxpool_fn(case: Case):
    jp, err = _import_jaxpool()
    if jp is None:
        raise NotAvailable(err)
    name = {
        "max": "max_pool2d", "avg": "avg_pool2d", "hybrid": "hybrid_pool2d",
        "adaptive_avg": "adaptive_avg_pool2d", "adaptive_max": "adaptive_max_pool2d",
        "global_avg": "global_avg_pool", "global_max": "global_max_pool",
    }[case.op]
    f = getattr(jp, name, None)
    if f is None:
        raise NotAvailable(f"jaxpool has no attribute {name!r} (not implemented yet)")
    k, s, p, d = case.kernel, case.stride, case.padding, case.dilation
    if case.op == "max":
        return lambda x, aux: f(x, k, s, p, dilation=d)
    if case.op == "avg":
        return lambda x, aux: f(x, k, s, p)
    if case.op == "hybrid":
        return lambda x, aux: f(x, aux["alpha"], k, s, p)
    if case.op.startswith("adaptive"):
        return lambda x, aux: f(x, case.output_size)
    return lambda x, aux: f(x)


def build_jaxpool(case: Case, inp: Inputs, ctx) -> dict:
    return _jax_runners(_jaxpool_fn(case), inp)


def _flax_fn(case: Case):
    import flax.linen as nn

    k, s, p = case.kernel, case.stride or case.kernel, case.padding
    pad = ((p, p), (p, p))
    if case.op in ("max", "avg", "hybrid") and case.dilation != 1:
        raise NotAvailable("flax.linen.max_pool has no dilation argument")
    if case.op == "max":
        return lambda x, aux: nn.max_pool(x, (k, k), (s, s), pad)
    if case.op == "avg":  # count_include_pad=True is flax's default too
        return lambda x, aux: nn.avg_pool(x, (k, k), (s, s), pad, count_include_pad=True)
    if case.op == "hybrid":
        def hybrid(x, aux):
            a = aux["alpha"]
            return (a * nn.max_pool(x, (k, k), (s, s), pad)
                    + (1 - a) * nn.avg_pool(x, (k, k), (s, s), pad, count_include_pad=True))
        return hybrid
    if case.op.startswith("adaptive"):
        raise NotAvailable("flax.linen has no adaptive pooling")
    raise NotAvailable("flax.linen has no global pooling (see the jnp candidate)")


def build_flax(case: Case, inp: Inputs, ctx) -> dict:
    return _jax_runners(_flax_fn(case), inp)


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
    raise NotAvailable("jnp baseline only for global and divisible adaptive pooling (flax covers the rest)")


def build_jnp(case: Case, inp: Inputs, ctx) -> dict:
    return _jax_runners(_jnp_fn(case, inp.shape), inp)


def build_memory_jnp(reduce_name: str):
    def build(case: Case, inp: Inputs, ctx) -> dict:
        x = inp.jax_arrays()["x"]
        f = jax.jit(getattr(jnp, reduce_name))
        return {FORWARD: Runner(lambda: f(x).block_until_ready(), None),
                GRAD: "forward-only reference"}
    return build


# ---- torch ---------------------------------------------------------------------------

def _import_torch():
    try:
        import torch
        return torch, None
    except Exception as e:  # noqa: BLE001
        return None, f"import torch failed: {type(e).__name__}: {e}"


def _torch_fn(case: Case):
    torch, err = _import_torch()
    if torch is None:
        raise NotAvailable(err)
    F = torch.nn.functional
    k, s, p, d = case.kernel, case.stride or case.kernel, case.padding, case.dilation
    if case.op == "max":
        return lambda x, aux: F.max_pool2d(x, k, s, p, d)
    if case.op == "avg":
        return lambda x, aux: F.avg_pool2d(x, k, s, p)
    if case.op == "hybrid":
        return lambda x, aux: aux["alpha"] * F.max_pool2d(x, k, s, p) + (1 - aux["alpha"]) * F.avg_pool2d(x, k, s, p)
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
    torch = _import_torch()[0]
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
    torch = _import_torch()[0]
    x, g, aux = _torch_tensors(inp, channels_last, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    xr = x.detach().requires_grad_(True)

    def forward():
        with torch.no_grad():
            y = fn(x, aux)
        sync()
        return y

    def fwd_bwd():
        y = fn(xr, aux)
        (dx,) = torch.autograd.grad(y, xr, g)
        sync()
        return dx

    return {FORWARD: Runner(forward, _torch_nhwc), GRAD: Runner(fwd_bwd, _torch_nhwc)}


def build_torch(channels_last: bool):
    def build(case: Case, inp: Inputs, ctx) -> dict:
        fn = _torch_fn(case)
        if ctx.torch_device is None:
            raise NotAvailable(ctx.torch_skip_reason)
        return _torch_runners(fn, inp, channels_last, ctx.torch_device)
    return build


def build_memory_torch(case: Case, inp: Inputs, ctx) -> dict:
    torch, err = _import_torch()
    if torch is None:
        raise NotAvailable(err)
    if ctx.torch_device is None:
        raise NotAvailable(ctx.torch_skip_reason)
    x, _, _ = _torch_tensors(inp, False, ctx.torch_device)
    sync = torch.cuda.synchronize if ctx.torch_device == "cuda" else (lambda: None)

    def call():
        r = x.sum()
        sync()
        return r

    return {FORWARD: Runner(call, None), GRAD: "forward-only reference"}


@dataclass(frozen=True)
class Candidate:
    name: str
    build: Callable  # (case, inputs, ctx) -> {direction: Runner | reason str}; may raise
    checked: bool = True  # compare its outputs with torch's


CANDIDATES: list[Candidate] = [
    Candidate("jaxpool", build_jaxpool),
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
# Reference (torch NCHW on CPU, untimed) and checks
# --------------------------------------------------------------------------------------

TOLERANCE = {"float32": dict(rtol=1e-5, atol=1e-6), "bfloat16": dict(rtol=2 ** -7, atol=2 ** -7)}


def torch_reference(case: Case, inp: Inputs) -> tuple[dict, str | None]:
    """{direction: NHWC float32 numpy} from torch NCHW on CPU, or ({}, reason)."""
    try:
        fn = _torch_fn(case)
        runners = _torch_runners(fn, inp, channels_last=False, device="cpu")
        return {d: runners[d].to_nhwc(runners[d].call()) for d in DIRECTIONS}, None
    except Exception as e:  # noqa: BLE001
        return {}, f"no torch reference: {type(e).__name__}: {e}"


def check(result: np.ndarray, ref: np.ndarray | None, dtype: str, ref_reason: str | None) -> dict:
    if ref is None:
        return {"ok": None, "reason": ref_reason or "no reference"}
    if result.shape != ref.shape:
        return {"ok": False, "exact": False, "reason": f"shape {result.shape} != torch {ref.shape}"}
    tol = TOLERANCE[dtype]
    diff = np.abs(result.astype(np.float64) - ref.astype(np.float64))
    bad = ~np.isclose(result, ref, **tol)
    nan_mismatch = np.isnan(result) != np.isnan(ref)
    n_bad = int(bad.sum() + nan_mismatch.sum())
    return {
        "ok": n_bad == 0,
        "exact": bool(np.array_equal(result, ref, equal_nan=True)),
        "max_abs_err": float(np.nanmax(diff)) if diff.size else 0.0,
        "mismatched": n_bad,
        "of": int(ref.size),
        "tolerance": tol,
    }


def dilated_grad_probe() -> str:
    """JAX's own reduce_window max with window_dilation: forward works, does the VJP?"""
    x = jnp.ones((1, 9, 9, 2), jnp.float32)
    f = lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID",  # noqa: E731
                                    window_dilation=(1, 2, 2, 1))
    try:
        f(x).block_until_ready()
    except Exception as e:  # noqa: BLE001
        return f"JAX lax.reduce_window max with window_dilation fails even forward: {type(e).__name__}: {e}"
    try:
        jax.grad(lambda x: f(x).sum())(x).block_until_ready()
    except Exception as e:  # noqa: BLE001
        return (f"flax.linen.max_pool has no dilation, and JAX has no gradient for dilated max pooling: "
                f"jax.grad of lax.reduce_window(max, window_dilation=2) raises `{type(e).__name__}: "
                f"{str(e).splitlines()[0]}` (verified in this run, jax {jax.__version__}).")
    return (f"flax.linen.max_pool has no dilation; note: jax.grad of lax.reduce_window(max, "
            f"window_dilation=2) works in jax {jax.__version__}.")


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------

def _err(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:400]


REWARM_BELOW_S = 2e-3  # calls shorter than this get one untimed call right before each timed one


def measure(runners: dict[str, Runner], args, log) -> dict[str, dict]:
    """Warm up each runner, then time them in interleaved rounds. Returns per-name stats."""
    out: dict[str, dict] = {}
    est: dict[str, float] = {}
    first_results: dict[str, Any] = {}
    for name, r in runners.items():
        try:
            t0 = time.perf_counter()
            first_results[name] = r.call()  # compiles; its result is checked
            first = time.perf_counter() - t0
            times = []
            for _ in range(max(args.warmup - 1, 1)):
                t0 = time.perf_counter()
                r.call()
                times.append(time.perf_counter() - t0)
            est[name] = min(times)
            out[name] = {"status": "ok", "first_call_ms": first * 1e3}
        except Exception as e:  # noqa: BLE001
            out[name] = {"status": "error", "reason": _err(e), "traceback": traceback.format_exc()}
            log(f"    {name}: ERROR {_err(e)}")
    live = [n for n in runners if n in est]
    n_rep = {}
    for n in live:
        n_rep[n] = args.repeats
        if args.budget > 0:  # toward ~budget seconds: slow calls fewer repeats, fast calls more
            n_rep[n] = int(min(max(math.floor(args.budget / max(est[n], 1e-9)), args.min_repeats),
                               args.max_repeats))
        out[n]["warm_estimate_ms"] = est[n] * 1e3
    samples: dict[str, list[float]] = {n: [] for n in live}
    gc.collect()
    gc_was = gc.isenabled()
    gc.disable()
    try:
        prev = None
        for rnd in range(max(n_rep.values(), default=0)):
            order = live[rnd % len(live):] + live[:rnd % len(live)]
            for n in order:
                if len(samples[n]) >= n_rep[n] or out[n]["status"] != "ok":
                    continue
                r = runners[n]
                try:
                    if prev is not None and prev != n and args.pause > 0:
                        time.sleep(args.pause)  # let the other runtime's spinning threads sleep
                    if est[n] < REWARM_BELOW_S:
                        r.call()  # short call: re-warm caches/threads after the switch, untimed
                    t0 = time.perf_counter()
                    r.call()
                    samples[n].append(time.perf_counter() - t0)
                except Exception as e:  # noqa: BLE001
                    out[n] = {"status": "error", "reason": _err(e), "traceback": traceback.format_exc()}
                prev = n
    finally:
        if gc_was:
            gc.enable()
    for n in live:
        if out[n]["status"] != "ok":
            continue
        ms = [round(t * 1e3, 5) for t in samples[n]]  # 10 ns resolution keeps the JSON small
        out[n].update({
            "min_ms": min(ms), "median_ms": statistics.median(ms), "mean_ms": statistics.fmean(ms),
            "repeats": len(ms), "samples_ms": ms,
        })
    for n, res in first_results.items():
        out[n]["_first_result"] = res
    return out


# --------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------

def cpu_snapshot() -> tuple[float, float, float] | None:
    """(wall s, machine busy CPU-s, this process's CPU-s), to measure other processes' load."""
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")  # all but idle, iowait
        t = os.times()
        return time.perf_counter(), busy, t.user + t.system
    except (OSError, ValueError, IndexError):
        return None


def other_cores(a, b) -> float | None:
    """Average number of cores busy with *other* processes between two snapshots."""
    if a is None or b is None or b[0] <= a[0]:
        return None
    return max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / (b[0] - a[0]))


def wait_quiet(max_s: float, log, window_s: float = 1.0, need: int = 3) -> float:
    """Wait (at most max_s) until other processes kept < BUSY_CORES cores busy for `need`
    consecutive windows; returns the seconds waited."""
    t0 = time.perf_counter()
    quiet = 0
    told = False
    while time.perf_counter() - t0 < max_s:
        a = cpu_snapshot()
        time.sleep(window_s)
        load = other_cores(a, cpu_snapshot())
        if load is None:
            break
        quiet = quiet + 1 if load < BUSY_CORES else 0
        if quiet >= need:
            break
        if not told and quiet == 0:
            log(f"    waiting for a quiet machine (other processes use {load:.2f} cores; up to {max_s:.0f} s)")
            told = True
    return time.perf_counter() - t0


@dataclass
class Context:
    platform: str
    torch_device: str | None
    torch_skip_reason: str | None


def run_case(case: Case, cands: list[Candidate], ctx: Context, args, log) -> dict:
    shape = case.quick_shape if args.quick else case.shape
    inp = make_inputs(case, shape, args.seed)
    rec: dict[str, Any] = {
        "name": case.name, "op": case.op, "description": case.description,
        "shape_nhwc": list(shape), "shape_torch_nchw": [shape[0], shape[3], shape[1], shape[2]],
        "out_shape_nhwc": list(inp.out_shape), "dtype": case.dtype,
        "params": {k: getattr(case, k) for k in ("kernel", "stride", "padding", "dilation", "output_size")
                   if getattr(case, k) not in (None,)},
        "in_bytes": inp.in_bytes, "out_bytes": inp.out_bytes, "notes": [], "results": {},
    }
    if case.op in ("max", "avg", "hybrid") and case.dilation != 1:
        rec["notes"].append(dilated_grad_probe())
    if case.op == "hybrid":
        rec["notes"].append("fwd+bwd differentiates w.r.t. x only (alpha is an input, not differentiated).")
    ref, ref_reason = (torch_reference(case, inp) if not args.no_check else ({}, "--no-check"))
    built: dict[str, dict] = {}
    for c in cands:
        res = rec["results"].setdefault(c.name, {})
        try:
            b = c.build(case, inp, ctx)
        except NotAvailable as e:
            for d in DIRECTIONS:
                res[d] = {"status": "n/a", "reason": str(e)}
            continue
        except Exception as e:  # noqa: BLE001
            for d in DIRECTIONS:
                res[d] = {"status": "error", "reason": _err(e), "traceback": traceback.format_exc()}
            continue
        built[c.name] = b
        for d in DIRECTIONS:
            if isinstance(b[d], str):
                res[d] = {"status": "n/a", "reason": b[d]}
    by_name = {c.name: c for c in cands}
    for d in DIRECTIONS:
        runners = {n: b[d] for n, b in built.items() if isinstance(b[d], Runner)}
        stats = measure(runners, args, log)
        for n, st in stats.items():
            first = st.pop("_first_result", None)
            r = runners[n]
            if by_name[n].checked and r.to_nhwc is not None and first is not None and not args.no_check:
                try:
                    st["check"] = check(r.to_nhwc(first), ref.get(d), case.dtype, ref_reason)
                except Exception as e:  # noqa: BLE001
                    st["check"] = {"ok": False, "reason": f"check failed: {_err(e)}"}
                res = first[-1] if isinstance(first, tuple) else first
                st["check"]["result_dtype"] = str(getattr(res, "dtype", "?"))
            if st.get("status") == "ok":
                secs = st["min_ms"] / 1e3
                if n.startswith("memory-bound"):
                    st["gbps"] = inp.in_bytes / secs / 1e9
                elif d == FORWARD:
                    st["gbps"] = (inp.in_bytes + inp.out_bytes) / secs / 1e9  # read x, write y
                else:
                    st["gbps"] = 2 * (inp.in_bytes + inp.out_bytes) / secs / 1e9  # read x, g; write y, dx
            rec["results"][n][d] = st
        del runners, stats
    # one-line progress
    for d in DIRECTIONS:
        parts = []
        for c in cands:
            st = rec["results"][c.name].get(d, {})
            if st.get("status") == "ok":
                ok = st.get("check", {}).get("ok")
                parts.append(f"{c.name}={st['min_ms']:.3g}ms" + ("" if ok in (True, None) else " MISMATCH"))
        log(f"  {case.name:20s} {d:8s} " + "  ".join(parts))
    return rec


def environment(args, ctx: Context, argv=None) -> dict:
    def version(mod):
        try:
            m = __import__(mod)
            return getattr(m, "__version__", "?")
        except Exception as e:  # noqa: BLE001
            return f"unavailable ({type(e).__name__})"

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    torch, _ = _import_torch()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip() or None
    except Exception:  # noqa: BLE001
        commit = None
    jp, jp_err = _import_jaxpool()
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": ("python -m benchmarks.pooling "
                    + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))).strip(),
        "argv": sys.argv, "python_executable": sys.executable,
        "args": vars(args),
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu_model": cpu, "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "versions": {m: version(m) for m in ("jax", "jaxlib", "flax", "torch", "numpy", "optax", "chex")},
        "jaxpool": {"path": getattr(jp, "__file__", None), "import_error": jp_err,
                    "has_hybrid_pool2d": hasattr(jp, "hybrid_pool2d") if jp else None},
        "git_head": commit,
        "jax_devices": [str(d) for d in jax.devices()], "jax_platform": ctx.platform,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "torch_device": ctx.torch_device, "torch_skip_reason": ctx.torch_skip_reason,
        "env": {k: os.environ.get(k) for k in ("XLA_FLAGS", "OMP_NUM_THREADS", "JAX_PLATFORMS",
                                               "MKL_NUM_THREADS", "GLIBC_TUNABLES") if os.environ.get(k)},
        "loadavg_start": list(os.getloadavg()),
    }


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------

def _fmt_ms(v: float) -> str:
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def _cell(st: dict | None) -> str:
    if not st:
        return "—"
    if st["status"] == "n/a":
        return "n/a"
    if st["status"] == "error":
        return "ERR"
    s = _fmt_ms(st["min_ms"])
    if st.get("check", {}).get("ok") is False:
        s += " ✗MISMATCH"
    return s


def _min(st: dict | None) -> float | None:
    return st["min_ms"] if st and st.get("status") == "ok" else None


def _ratio(a, b) -> float | None:
    return a / b if a is not None and b is not None else None


def _fmt_ratio(r) -> str:
    return "—" if r is None else f"{r:.2f}"


def _geomean(xs):
    xs = [x for x in xs if x is not None and x > 0]
    return (math.exp(sum(math.log(x) for x in xs) / len(xs)), len(xs)) if xs else (None, 0)


BUSY_CORES = 0.25  # flag cases where other processes kept this many cores busy on average

RATIO_COLS = ("jaxpool/flax", "jaxpool/torch-cl", "jaxpool/torch-nchw", "jaxpool/torch-best", "jaxpool/mem-bound")


def row_values(rec: dict, d: str) -> dict:
    R = rec["results"]
    get = lambda n: R.get(n, {}).get(d)  # noqa: E731
    jp = _min(get("jaxpool"))
    base_name = "flax" if _min(get("flax")) is not None else ("jnp" if _min(get("jnp")) is not None else None)
    base = _min(get(base_name)) if base_name else None
    tcl, tnc = _min(get("torch-cl")), _min(get("torch-nchw"))
    tbest = min([t for t in (tcl, tnc) if t is not None], default=None)
    mems = [(n, _min(get(n))) for n in MEMORY_JAX if _min(get(n)) is not None]
    mem_name, mem = min(mems, key=lambda t: t[1]) if mems else (None, None)
    return {
        "jaxpool": jp, "base_name": base_name, "base": base, "torch-cl": tcl, "torch-nchw": tnc,
        "memory-bound": mem, "memory-bound_op": mem_name,
        "memory-bound:torch.sum": _min(get("memory-bound:torch.sum")),
        "jaxpool/flax": _ratio(jp, base), "jaxpool/torch-cl": _ratio(jp, tcl),
        "jaxpool/torch-nchw": _ratio(jp, tnc), "jaxpool/torch-best": _ratio(jp, tbest),
        "jaxpool/mem-bound": _ratio(jp, mem) if d == FORWARD else None,
        "jaxpool_gbps": (get("jaxpool") or {}).get("gbps"),
    }


def _repeat_text(a: dict) -> str:
    if a["budget"] > 0:
        return (f"repeats sized to ~{a['budget']:g} s per candidate and direction "
                f"({a['min_repeats']} to {a['max_repeats']} repeats)")
    return f"{a['repeats']} repeats"


def markdown(report: dict) -> str:
    env, cases = report["environment"], report["cases"]
    v = env["versions"]
    lines = [
        f"# jaxpool pooling benchmark{' (--quick)' if env['args']['quick'] else ''}",
        "",
        f"- {env['date_utc']} · {env['cpu_model']} · {env['cpu_count']} cores · JAX platform "
        f"`{env['jax_platform']}` ({', '.join(env['jax_devices'])})",
        f"- jax {v['jax']} · jaxlib {v['jaxlib']} · flax {v['flax']} · torch {v['torch']} "
        f"(threads {env['torch_threads']}, device {env['torch_device']}) · numpy {v['numpy']} · "
        f"python {env['python']}",
        f"- command: `{env['command']}`",
        f"- allocator: {_allocator_text(env)}",
        f"- load average at start / end: {', '.join(f'{x:.2f}' for x in env['loadavg_start'])} / "
        f"{', '.join(f'{x:.2f}' for x in env.get('loadavg_end', []))}; other processes kept "
        f"{env.get('other_processes_cores') or 0:.2f} cores busy on average during the run "
        f"({env.get('wall_s', 0):.0f} s)",
        "",
        f"Times are milliseconds, the **minimum** over {_repeat_text(env['args'])}, after "
        f"{env['args']['warmup']} warm-up calls (the first compiles); the candidates of a case run "
        "interleaved round-robin in one process. Minima are used because they are robust to "
        "interference from other processes sharing the machine; medians and all samples are in "
        "the JSON. "
        "Ratios are jaxpool time / other time: **< 1 means jaxpool is faster**. "
        "`flax (jnp)`: flax.linen, or a plain-jnp baseline marked (jnp) where flax has no such op. "
        "`mem-bound`: one jitted read pass over the input (fastest of jnp.sum / jnp.max), the "
        "floor for a forward pass; `torch.sum` the same in torch. GB/s = (input + output bytes) / "
        "time for forward, 2 × (input + output bytes) / time for fwd+bwd. "
        "✗MISMATCH: that output (forward) or input gradient (fwd+bwd) disagrees with torch's. "
        "`other load`: average number of cores other processes kept busy while the case ran "
        "(from /proc/stat minus this process's CPU time); near 0 means a quiet machine.",
        "",
    ]
    busy = [f"{rec['name']} {rec['other_processes_cores']:.2f}" for rec in cases
            if (rec.get("other_processes_cores") or 0) > BUSY_CORES]
    if busy:
        lines += [f"**Warning: other processes were using the CPU during this run** (average cores "
                  f"busy with other processes, where above {BUSY_CORES}: {', '.join(busy)}). Those "
                  "cases' timings carry interference; torch's OpenMP threads suffer most from it. "
                  "The minima are the more trustworthy numbers; rerun on a quiet machine to confirm.", ""]
    failures = []
    for rec in cases:
        for cand, dirs in rec["results"].items():
            for d, st in dirs.items():
                ch = st.get("check") or {}
                if ch.get("ok") is False:
                    failures.append(f"- **{rec['name']} / {cand} / {d}**: "
                                    + (ch.get("reason") or f"{ch['mismatched']} of {ch['of']} elements differ, "
                                       f"max abs err {ch['max_abs_err']:.3g}"))
    if failures:
        lines += ["## ✗ CHECK FAILURES (these timings are of wrong results)", "", *failures, ""]
    head = ["case", "input (NHWC)", "dir", "jaxpool", "flax (jnp)", "torch-nchw", "torch-cl",
            "mem-bound", "torch.sum", *RATIO_COLS, "jaxpool GB/s", "other load"]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    ratios = {d: {c: [] for c in RATIO_COLS} for d in DIRECTIONS}
    for rec in cases:
        R = rec["results"]
        dt = {"float32": "f32", "bfloat16": "bf16"}[rec["dtype"]]
        for d in DIRECTIONS:
            rv = row_values(rec, d)
            g = lambda n: R.get(n, {}).get(d)  # noqa: E731
            if rv["base_name"]:
                base = _cell(g(rv["base_name"])) + (" (jnp)" if rv["base_name"] == "jnp" else "")
            else:  # neither ran: say why flax did not (n/a or ERR), or — if not selected
                base = _cell(g("flax")) if g("flax") else _cell(g("jnp"))
            mem = "—"
            if d == FORWARD and rv["memory-bound_op"]:
                mem = _cell(g(rv["memory-bound_op"]))
            tsum = _cell(g("memory-bound:torch.sum")) if d == FORWARD else "—"
            gb = rv["jaxpool_gbps"]
            cells = [rec["name"], "×".join(map(str, rec["shape_nhwc"])) + " " + dt, d,
                     _cell(g("jaxpool")), base, _cell(g("torch-nchw")), _cell(g("torch-cl")), mem, tsum,
                     *[_fmt_ratio(rv[c]) for c in RATIO_COLS], "—" if gb is None else f"{gb:.1f}",
                     "" if rec.get("other_processes_cores") is None else f"{rec['other_processes_cores']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
            for c in RATIO_COLS:
                ratios[d][c].append(rv[c])
    for d in DIRECTIONS:
        gms = [_geomean(ratios[d][c]) for c in RATIO_COLS]
        ncases = max((n for _, n in gms), default=0)
        cells = [f"**geomean** ({ncases} cases)", "", d, "", "", "", "", "", "",
                 *[("—" if gm is None else f"**{gm:.2f}** (n={n})") for gm, n in gms], "", ""]
        lines.append("| " + " | ".join(cells) + " |")
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
    notes += [f"- {cand}: {status}: {reason} — {', '.join(where)}"
              for (cand, status, reason), where in missing.items()]
    exact, close = [], []
    for rec in cases:
        for d in DIRECTIONS:
            ch = (rec["results"].get("jaxpool", {}).get(d) or {}).get("check") or {}
            if ch.get("ok"):
                if ch["exact"]:
                    exact.append(f"{rec['name']} {d}")
                else:
                    close.append(f"{rec['name']} {d} (max abs err {ch['max_abs_err']:.2g})")
    lines += ["", "## Notes", "", *notes]
    if exact or close:
        lines += ["", "## jaxpool against torch (checks passed)", ""]
        if exact:
            lines.append(f"- bit-exact: {', '.join(exact)}")
        if close:
            lines.append(f"- within tolerance {TOLERANCE}: {', '.join(close)}")
    return "\n".join(lines) + "\n"


def _strip(obj):
    """JSON-safe copy: numpy scalars to Python, non-finite floats to null."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strip(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb=1"


def use_hugepage_malloc(module: str, argv, default_malloc: bool) -> None:
    """Re-runs the benchmark with glibc's transparent-huge-page malloc, unless told not to.

    Every timed call returns fresh output buffers; a 51 MB gradient in 4 KiB pages costs
    ~12,500 page faults, 20-35 ms on this kind of VM, for torch and for XLA alike, which
    would bury the kernels being compared. ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` backs
    large allocations with 2 MiB pages (the same setting for every candidate, in one
    process). ``--default-malloc`` measures the plain allocator instead.
    """
    if default_malloc or os.environ.get("GLIBC_TUNABLES") or not sys.platform.startswith("linux"):
        return
    env = dict(os.environ, GLIBC_TUNABLES=HUGEPAGE_TUNABLE)
    arguments = list(sys.argv[1:] if argv is None else argv)
    os.execve(sys.executable, [sys.executable, "-m", module, *arguments], env)


def _allocator_text(env: dict) -> str:
    tunables = env.get("env", {}).get("GLIBC_TUNABLES")
    if tunables:
        return (f"`GLIBC_TUNABLES={tunables}` (large buffers in 2 MiB pages, so fresh outputs do "
                "not pay a page fault per 4 KiB; the same for every candidate)")
    return "glibc default (`--default-malloc`): fresh large outputs pay 4 KiB page faults"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.pooling", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="", help="comma-separated substrings; run cases whose name contains one")
    p.add_argument("--candidates", default="",
                   help="comma-separated substrings of candidate names (jaxpool, flax, jnp, torch-nchw, "
                        "torch-cl, memory-bound); default all")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per candidate and direction when --budget is 0 (default 20; --quick 5); "
                        "otherwise the repeats go toward --budget seconds, between --min-repeats and --max-repeats")
    p.add_argument("--min-repeats", type=int, default=None, help="slow calls: never fewer repeats (default 5; --quick 3)")
    p.add_argument("--max-repeats", type=int, default=None, help="fast calls: never more repeats (default 100; --quick 20)")
    p.add_argument("--budget", type=float, default=None,
                   help="about this many seconds of timed calls per candidate and direction "
                        "(default 1.0; --quick 0.2; 0 = exactly --repeats)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first, incl. compile (default 3; --quick 2)")
    p.add_argument("--pause", type=float, default=0.002, help="seconds slept when switching candidate (default 0.002)")
    p.add_argument("--wait-quiet", type=float, default=0.0,
                   help="before each case, wait up to this many seconds for other processes to "
                        "leave the CPU idle (default 0: don't wait)")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch.set_num_threads (default os.cpu_count())")
    p.add_argument("--quick", action="store_true", help="smoke test: batch 4 instead of 32, fewer repeats")
    p.add_argument("--out", default=None, help="output directory (default benchmarks/results/)")
    p.add_argument("--no-check", action="store_true", help="skip the correctness checks against torch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list", action="store_true", help="list cases and candidates and exit")
    p.add_argument("--default-malloc", action="store_true",
                   help="keep glibc's default malloc (by default the run re-executes itself with "
                        f"GLIBC_TUNABLES={HUGEPAGE_TUNABLE}; see use_hugepage_malloc)")
    a = p.parse_args(argv)
    for k, full, quick in (("repeats", 20, 5), ("min_repeats", 5, 3), ("max_repeats", 100, 20),
                           ("budget", 1.0, 0.2), ("warmup", 3, 2)):
        if getattr(a, k) is None:
            setattr(a, k, quick if a.quick else full)
    a.repeats = max(1, a.repeats)
    a.min_repeats = max(1, a.min_repeats)
    a.max_repeats = max(a.min_repeats, a.max_repeats)
    a.warmup = max(1, a.warmup)
    return a


def _select(items, spec):
    pats = [s.strip() for s in spec.split(",") if s.strip()]
    return [i for i in items if not pats or any(pt in i.name for pt in pats)]


def main(argv=None) -> int:
    args = parse_args(argv)
    use_hugepage_malloc("benchmarks.pooling", argv, args.default_malloc or args.list)
    cases, cands = _select(CASES, args.cases), _select(CANDIDATES, args.candidates)
    if args.list:
        for c in CASES:
            print(f"{c.name:20s} {c.op:13s} {c.dtype:9s} {c.shape} quick {c.quick_shape}  {c.description}")
        print("candidates:", ", ".join(c.name for c in CANDIDATES))
        return 0
    if not cases or not cands:
        print("no case or no candidate selected (see --list)", file=sys.stderr)
        return 2
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    plat = jax.devices()[0].platform
    torch, terr = _import_torch()
    tdev, treason = None, terr
    if torch is not None:
        torch.set_num_threads(args.torch_threads or os.cpu_count() or 1)
        if plat == "cpu":
            tdev, treason = "cpu", None
        elif torch.cuda.is_available():
            tdev, treason = "cuda", None
        else:
            treason = f"torch {torch.__version__} has no CUDA; JAX runs on {plat}, CPU torch is not timed against it"
    ctx = Context(plat, tdev, treason)
    env = environment(args, ctx, argv)
    log(f"jax {env['versions']['jax']} on {plat} ({env['cpu_model']}, {env['cpu_count']} cores); "
        f"torch {env['versions']['torch']} threads={env['torch_threads']}; "
        f"jaxpool: {env['jaxpool']['path'] or env['jaxpool']['import_error']}")
    t_start = time.perf_counter()
    snap_start = cpu_snapshot()
    recs = []
    for case in cases:
        gc.collect()
        waited = wait_quiet(args.wait_quiet, log) if args.wait_quiet > 0 else None
        snap = cpu_snapshot()
        recs.append(run_case(case, cands, ctx, args, log))
        snap2 = cpu_snapshot()
        recs[-1]["other_processes_cores"] = other_cores(snap, snap2)
        recs[-1]["waited_for_quiet_s"] = waited
        recs[-1]["wall_s"] = snap2[0] - snap[0] if snap and snap2 else None
    env["loadavg_end"] = list(os.getloadavg())
    env["other_processes_cores"] = other_cores(snap_start, cpu_snapshot())
    env["wall_s"] = time.perf_counter() - t_start
    report = {"environment": env, "cases": recs}
    for rec in recs:
        for d in DIRECTIONS:
            rec.setdefault("summary", {})[d] = row_values(rec, d)
    md = markdown(report)
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = "pooling-quick" if args.quick else "pooling"
    _write(out / f"{stem}.json", json.dumps(_strip(report), indent=1) + "\n")
    _write(out / f"{stem}.md", md)
    print(md)
    log(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')} in {env['wall_s']:.0f} s")
    bad = any((st.get("check") or {}).get("ok") is False
              for rec in recs for dirs in rec["results"].values() for st in dirs.values())
    if bad:
        log("WARNING: some candidates disagree with torch; see CHECK FAILURES in the table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
