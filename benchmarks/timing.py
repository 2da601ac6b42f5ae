"""How the benchmarks measure: runners, interleaved timing, checks against torch, other
processes' load, compiled memory, the allocator, and the command-line options they share.

Method: each runner is called once (its result is checked against torch's), warmed up,
then all runners of a case are timed in interleaved rounds (one sample of each per round,
rotating order, a short pause at each switch). Tables use the *minimum* over the samples:
robust to interference from other processes; medians and all samples go to the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

FORWARD = "forward"
GRAD = "fwd+bwd"
DIRECTIONS = (FORWARD, GRAD)
FAMILIES = ("cpu", "reduce_window")  # jaxpool's kernel families (jaxpool/_kernels.py)
BUSY_CORES = 0.25  # flag runs where other processes kept this many cores busy on average
REWARM_BELOW_S = 2e-3  # calls shorter than this get one untimed call right before each timed one


class NotAvailable(Exception):
    """The candidate has no such operation (reported as ``n/a: <reason>``)."""


# --------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------


@dataclass
class Runner:
    """One timed operation. ``start()`` launches it (JAX dispatches asynchronously) and
    returns its result; ``wait(result)`` blocks until that result (or a list of them) is
    ready. ``to_nhwc(result)`` gives float32 NHWC numpy for the check (None: unchecked).
    ``temp_bytes``: compiled temporary bytes (XLA's memory analysis) of a jitted runner."""

    start: Callable[[], Any]
    wait: Callable[[Any], Any]
    to_nhwc: Callable[[Any], np.ndarray] | None
    temp_bytes: int | None = None
    compile_ms: float | None = None

    def call(self):
        result = self.start()
        self.wait(result)
        return result


@contextlib.contextmanager
def kernel_family(family: str | None):
    """Traces jaxpool's ops with one kernel family inside the block (None: leave as is).
    The family is read at trace time, so compile inside the block (see compile_jax)."""
    if family is None:
        yield
        return
    import jaxpool

    with jaxpool.kernels(family):
        yield


def temp_bytes(compiled) -> int | None:
    """``temp_size_in_bytes`` of a compiled executable's memory analysis; None where the
    backend gives none."""
    try:
        analysis = compiled.memory_analysis()
    except Exception:
        return None
    value = getattr(analysis, "temp_size_in_bytes", None) if analysis is not None else None
    return int(value) if value is not None and value >= 0 else None


def compile_jax(fn: Callable, operands: tuple, to_nhwc, family: str | None = None) -> Runner:
    """Runner of ``jax.jit(fn)`` compiled ahead for ``operands`` with the kernel family
    ``family``. ``fn`` must be a fresh function object: JAX caches traces per function, and
    before jax 0.7.2 the family is no part of its cache key."""
    started = time.perf_counter()
    with kernel_family(family):
        compiled = jax.jit(fn).lower(*operands).compile()
    compile_ms = (time.perf_counter() - started) * 1e3
    return Runner(
        lambda: compiled(*operands),
        jax.block_until_ready,
        to_nhwc,
        temp_bytes=temp_bytes(compiled),
        compile_ms=compile_ms,
    )


def to_float32(y) -> np.ndarray:
    return np.asarray(y).astype(np.float32)


def import_torch():
    """(torch, None), or (None, why not): the benchmarks run without torch too."""
    try:
        import torch

        return torch, None
    except Exception as e:
        return None, f"import torch failed: {type(e).__name__}: {e}"


def torch_device(platform: str, threads: int | None) -> tuple[str | None, str | None]:
    """(device torch is timed on, None) or (None, why torch is not timed): the CPU beside
    JAX's CPU, CUDA beside a GPU where torch has it; sets torch's thread count."""
    torch, err = import_torch()
    if torch is None:
        return None, err
    torch.set_num_threads(threads or os.cpu_count() or 1)
    if platform == "cpu":
        return "cpu", None
    if torch.cuda.is_available():
        return "cuda", None
    return (
        None,
        f"torch {torch.__version__} has no CUDA; JAX runs on {platform}, "
        "CPU torch is not timed against it",
    )


def torch_wait(device: str):
    """``Runner.wait`` for torch on ``device``: synchronise CUDA, nothing on the CPU."""
    if device == "cuda":
        torch = import_torch()[0]
        return lambda result: torch.cuda.synchronize()
    return lambda result: None


# --------------------------------------------------------------------------------------
# Checks against torch
# --------------------------------------------------------------------------------------

TOLERANCE = {"float32": dict(rtol=1e-5, atol=1e-6), "bfloat16": dict(rtol=2**-7, atol=2**-7)}


def check(
    result: np.ndarray,
    ref: np.ndarray | None,
    dtype: str,
    ref_reason: str | None,
    tolerance: dict | None = None,
) -> dict:
    """Compares a result with torch's: ``np.isclose`` within the dtype's tolerance, NaN
    where torch has NaN and nowhere else."""
    if ref is None:
        return {"ok": None, "reason": ref_reason or "no reference"}
    if result.shape != ref.shape:
        return {"ok": False, "exact": False, "reason": f"shape {result.shape} != torch {ref.shape}"}
    tol = tolerance or TOLERANCE[dtype]
    diff = np.abs(result.astype(np.float64) - ref.astype(np.float64))
    n_bad = int((~np.isclose(result, ref, equal_nan=True, **tol)).sum())  # NaN must meet NaN
    return {
        "ok": n_bad == 0,
        "exact": bool(np.array_equal(result, ref, equal_nan=True)),
        "max_abs_err": float(np.nanmax(diff)) if diff.size else 0.0,
        "mismatched": n_bad,
        "of": int(ref.size),
        "tolerance": tol,
    }


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


def error_text(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:400]


def _error(e: BaseException) -> dict:
    return {"status": "error", "reason": error_text(e), "traceback": traceback.format_exc()}


def _sample(runner: Runner, burst: int) -> float:
    """Seconds per call: one call, or ``burst`` calls launched back to back and waited for
    together (on an accelerator this hides the host's dispatch behind the device's work)."""
    if burst <= 1:
        started = time.perf_counter()
        runner.call()
        return time.perf_counter() - started
    started = time.perf_counter()
    runner.wait([runner.start() for _ in range(burst)])
    return (time.perf_counter() - started) / burst


def measure(runners: dict[str, Runner], args, log) -> dict[str, dict]:
    """Warms up each runner, then times them in interleaved rounds. Returns per-name
    stats; ``_first_result`` holds each runner's first result (for the check)."""
    out: dict[str, dict] = {}
    est: dict[str, float] = {}
    first_results: dict[str, Any] = {}
    burst = max(1, getattr(args, "burst", 1))
    for name, r in runners.items():
        try:
            t0 = time.perf_counter()
            first_results[name] = r.call()  # its result is checked
            first = time.perf_counter() - t0
            est[name] = min(_sample(r, 1) for _ in range(max(args.warmup - 1, 1)))
            out[name] = {"status": "ok", "first_call_ms": first * 1e3}
            if r.compile_ms is not None:
                out[name]["compile_ms"] = r.compile_ms
            if r.temp_bytes is not None:
                out[name]["temp_bytes"] = r.temp_bytes
        except Exception as e:
            out[name] = _error(e)
            log(f"    {name}: ERROR {error_text(e)}")
    live = [n for n in runners if n in est]
    n_rep = {}
    for n in live:
        n_rep[n] = args.repeats
        if args.budget > 0:  # toward ~budget seconds: slow calls fewer repeats, fast calls more
            n_rep[n] = int(
                min(
                    max(math.floor(args.budget / max(est[n] * burst, 1e-9)), args.min_repeats),
                    args.max_repeats,
                )
            )
        out[n]["warm_estimate_ms"] = est[n] * 1e3
    samples: dict[str, list[float]] = {n: [] for n in live}
    gc.collect()
    gc_was = gc.isenabled()
    gc.disable()
    try:
        prev = None
        for rnd in range(max(n_rep.values(), default=0)):
            order = live[rnd % len(live) :] + live[: rnd % len(live)]
            for n in order:
                if len(samples[n]) >= n_rep[n] or out[n]["status"] != "ok":
                    continue
                try:
                    if prev is not None and prev != n and args.pause > 0:
                        time.sleep(args.pause)  # let the other runtime's spinning threads sleep
                    if est[n] < REWARM_BELOW_S:
                        runners[n].call()  # short call: re-warm caches/threads after the switch
                    samples[n].append(_sample(runners[n], burst))
                except Exception as e:
                    out[n] = _error(e)
                prev = n
    finally:
        if gc_was:
            gc.enable()
    for n in live:
        if out[n]["status"] != "ok":
            continue
        ms = [round(t * 1e3, 5) for t in samples[n]]  # 10 ns resolution keeps the JSON small
        out[n].update(
            {
                "min_ms": min(ms),
                "median_ms": statistics.median(ms),
                "mean_ms": statistics.fmean(ms),
                "repeats": len(ms),
                "calls_per_sample": burst,
                "samples_ms": ms,
            }
        )
    for n, res in first_results.items():
        out[n]["_first_result"] = res
    return out


# --------------------------------------------------------------------------------------
# Other processes' load
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
    """Waits (at most max_s) until other processes kept < BUSY_CORES cores busy for
    ``need`` consecutive windows; returns the seconds waited."""
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
            log(
                f"    waiting for a quiet machine (other processes use {load:.2f} cores; "
                f"up to {max_s:.0f} s)"
            )
            told = True
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------
# Allocator: glibc's default (the headline) or huge-page malloc (a kernel-only table)
# --------------------------------------------------------------------------------------

HUGETLB_TUNABLE = "glibc.malloc.hugetlb=1"


def hugetlb_active(environ=os.environ) -> bool:
    """Whether glibc's malloc was told to use transparent huge pages (GLIBC_TUNABLES)."""
    for item in environ.get("GLIBC_TUNABLES", "").split(":"):
        key, _, value = item.partition("=")
        if key.strip() == "glibc.malloc.hugetlb" and value.strip() not in ("", "0"):
            return True
    return False


def reexec_with_hugetlb(module: str, argv) -> None:
    """Re-runs ``python -m module argv`` with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``
    (added to any tunables already set); returns only if it is already in force or this
    is not Linux.

    Every timed call returns fresh output buffers; in 4 KiB pages a 51 MB gradient costs
    ~12,500 page faults (20-35 ms on a small VM), for torch and XLA alike. That is what a
    user measures, so it is the headline; huge-page malloc takes most of it away and
    leaves the kernels: the optional second, kernel-only table (``--hugetlb``).
    """
    if hugetlb_active() or not sys.platform.startswith("linux"):
        return
    tunables = ":".join(t for t in (os.environ.get("GLIBC_TUNABLES", ""), HUGETLB_TUNABLE) if t)
    env = dict(os.environ, GLIBC_TUNABLES=tunables)
    arguments = list(sys.argv[1:] if argv is None else argv)
    os.execve(sys.executable, [sys.executable, "-m", module, *arguments], env)


def allocator_record() -> dict:
    """What the allocator was: variant (``default`` / ``hugetlb``), GLIBC_TUNABLES and the
    kernel's transparent-huge-page mode (hugetlb=1 needs ``madvise`` or ``always``)."""
    try:
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        thp = None
    return {
        "variant": "hugetlb" if hugetlb_active() else "default",
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
        "transparent_hugepage": thp,
    }


def allocator_text(alloc: dict | None, hugetlb_option: bool = True) -> str:
    """The allocator line of a table's header (``hugetlb_option``: the benchmark has
    ``--hugetlb``)."""
    alloc = alloc or {}
    tunables = alloc.get("glibc_tunables")
    if alloc.get("variant") == "hugetlb":
        return (
            f"**huge-page malloc** (`GLIBC_TUNABLES={tunables}`, transparent huge pages "
            f"`{alloc.get('transparent_hugepage')}`): a kernel-only table, large buffers in 2 MiB "
            "pages so fresh outputs skip most page faults; **not what a user measures** (the "
            "headline is the run without `--hugetlb`)"
        )
    extra = f"; `GLIBC_TUNABLES={tunables}`" if tunables else ""
    return (
        "glibc's default malloc, what a user measures: fresh large outputs pay 4 KiB page "
        f"faults{extra}" + (" (`--hugetlb`: a second, kernel-only table)" if hugetlb_option else "")
    )


# --------------------------------------------------------------------------------------
# Options shared by pooling.py and hybrid.py
# --------------------------------------------------------------------------------------

ACCELERATOR_BATCH = (256, 32)  # default --batch off the CPU (full run, --quick)
# option: (full run, --quick) defaults
TIMING_DEFAULTS = {
    "repeats": (20, 5),
    "min_repeats": (5, 3),
    "max_repeats": (100, 20),
    "budget": (1.0, 0.2),
    "warmup": (3, 2),
}


def add_timing_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="smoke test: small batch, fewer repeats")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="about this many seconds of timed calls per candidate and direction "
        "(default 1.0; --quick 0.2; 0 = exactly --repeats)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed repeats when --budget is 0 (default 20; --quick 5)",
    )
    p.add_argument(
        "--min-repeats", type=int, default=None, help="never fewer repeats (default 5; --quick 3)"
    )
    p.add_argument(
        "--max-repeats", type=int, default=None, help="never more repeats (default 100; --quick 20)"
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed calls first, after compiling (default 3; --quick 2)",
    )
    p.add_argument(
        "--burst",
        type=int,
        default=None,
        help="calls launched back to back per timed sample, waited for together (default "
        "1 on CPU, 10 on an accelerator, where it hides the host's dispatch)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        help="batch size of the inputs (default: the cases' own, 32 and --quick 4, on CPU; "
        f"{ACCELERATOR_BATCH[0]} and --quick {ACCELERATOR_BATCH[1]} on an accelerator, where "
        "a batch-32 forward takes about as long as one dispatch)",
    )
    p.add_argument(
        "--pause", type=float, default=0.002, help="seconds slept when switching candidate"
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each case, wait up to S seconds for other processes to leave the "
        "CPU idle (default 0: don't wait)",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default os.cpu_count())",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output directory (default benchmarks/results/)")
    p.add_argument(
        "--hugetlb",
        action="store_true",
        help="the kernel-only table: re-run under GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "
        "(writes <benchmark>-<machine>-hugetlb.*; the headline is without it)",
    )


def finish_timing_options(a: argparse.Namespace) -> argparse.Namespace:
    for key, (full, quick) in TIMING_DEFAULTS.items():
        if getattr(a, key) is None:
            setattr(a, key, quick if a.quick else full)
    a.repeats, a.min_repeats, a.warmup = (max(1, v) for v in (a.repeats, a.min_repeats, a.warmup))
    a.max_repeats = max(a.min_repeats, a.max_repeats)
    return a


def start_run(a: argparse.Namespace, module: str, argv) -> None:
    """First thing in a benchmark's main: re-executes under huge-page malloc for
    ``--hugetlb``, then settles the defaults that depend on the platform (``--burst``,
    ``--batch``)."""
    if a.hugetlb:
        reexec_with_hugetlb(module, argv)
    on_cpu = jax.devices()[0].platform == "cpu"
    if a.burst is None:
        a.burst = 1 if on_cpu else 10
    a.burst = max(1, a.burst)
    if a.batch is None and not on_cpu:
        a.batch = ACCELERATOR_BATCH[1] if a.quick else ACCELERATOR_BATCH[0]
