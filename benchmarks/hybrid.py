"""Hybrid pooling benchmark: ``hybrid_pool2d`` against max pooling alone and against max and
average pooling computed separately, forward and forward+backward, for each of jaxpool's
kernel families.

    python -m benchmarks.hybrid              # (32, 56, 56, 128) float32, k2s2 and k3s2p1
    python -m benchmarks.hybrid --quick      # batch 4, fewer repeats: hybrid-<machine>-quick.*

Writes ``hybrid-<machine>.json`` (all samples, versions, machine) and ``.md`` (the table)
to ``--out`` (default ``benchmarks/results/``). Timing conventions are
benchmarks/timing.py's (shared with benchmarks/pooling.py): each candidate is checked
against torch once, warmed up, then timed in interleaved rounds; the table shows the
**minimum** over the repeats, and each jitted candidate's compiled temporary bytes.

Candidates (channels-last, per-channel ``alpha`` of shape ``(C,)``, all jitted), each
traced once per kernel family (``cpu``: the fused hybrid kernel; ``reduce_window``: a max
and an average ``lax.reduce_window`` composed):

* ``hybrid``: ``jaxpool.hybrid_pool2d(x, alpha, k, s, p)``, the one fused entry point;
* ``max``: ``jaxpool.max_pool2d(x, k, s, p)`` alone, the target's yardstick;
* ``max+avg``: ``alpha * jaxpool.max_pool2d(...) + (1 - alpha) * jaxpool.avg_pool2d(...)``,
  the mix a user would write from the two ops, in one jit;
* ``avg``: ``jaxpool.avg_pool2d`` alone (with ``max`` it gives the cost of two passes);
* ``torch-cl``: the same formula in torch on ``channels_last`` tensors, for context (on
  CUDA beside a GPU where torch has it, else not timed there).

fwd+bwd is the forward plus the vector-Jacobian product for a fixed random cotangent,
returning the output and the gradients: for ``x`` and ``alpha`` where there is an
``alpha`` (hybrid, max+avg, torch-cl), for ``x`` alone otherwise (max, avg).

Targets: hybrid forward <= 1.2x max forward; hybrid fwd+bwd <= 1.3x max fwd+bwd.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import report as rp
from benchmarks.timing import (
    BUSY_CORES,
    DIRECTIONS,
    FAMILIES,
    FORWARD,
    GRAD,
    TOLERANCE,
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

OPS = ("hybrid", "max", "max+avg", "avg")
WITH_ALPHA = ("hybrid", "max+avg")  # differentiated w.r.t. alpha too; checked against torch
TARGETS = {FORWARD: 1.2, GRAD: 1.3}


@dataclass(frozen=True)
class Case:
    name: str
    kernel: int
    stride: int
    padding: int

    def out_size(self, length: int) -> int:
        return (length + 2 * self.padding - self.kernel) // self.stride + 1


CASES = (Case("k2s2", 2, 2, 0), Case("k3s2p1", 3, 2, 1))
SHAPE, QUICK_SHAPE = (32, 56, 56, 128), (4, 56, 56, 128)


def name(op: str, family: str) -> str:
    return f"{op}-{family}"


def _jax_runners(op: str, family: str, case: Case, x, alpha, g) -> dict[str, Runner]:
    """Forward and fwd+bwd of one op, traced with one kernel family (a fresh function per
    compile: JAX caches traces per function, and the family is no part of the key)."""
    import jaxpool

    k, s, p = case.kernel, case.stride, case.padding

    def make():
        return {
            "hybrid": lambda v, a: jaxpool.hybrid_pool2d(v, a, k, s, p),
            "max+avg": lambda v, a: (
                a.reshape(1, 1, 1, -1) * jaxpool.max_pool2d(v, k, s, p)
                + (1 - a.reshape(1, 1, 1, -1)) * jaxpool.avg_pool2d(v, k, s, p)
            ),
            "max": lambda v, a: jaxpool.max_pool2d(v, k, s, p),
            "avg": lambda v, a: jaxpool.avg_pool2d(v, k, s, p),
        }[op]

    function = make()

    def forward_backward(v, a, cotangent):
        if op in WITH_ALPHA:
            y, vjp = jax.vjp(function, v, a)
        else:
            y, vjp = jax.vjp(lambda u: function(u, a), v)
        return (y, *vjp(cotangent))

    return {
        FORWARD: compile_jax(make(), (x, alpha), to_float32, family),
        GRAD: compile_jax(forward_backward, (x, alpha, g), lambda r: to_float32(r[1]), family),
    }


def _torch_runners(
    case: Case, x_np, alpha_np, g_np, channels_last: bool, device: str
) -> dict[str, Runner]:
    torch = import_torch()[0]
    F = torch.nn.functional
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    def to_torch(a):
        return torch.from_numpy(np.moveaxis(a, -1, 1).copy()).contiguous(memory_format=fmt).to(
            device
        )

    x, g = to_torch(x_np), to_torch(g_np)
    alpha = torch.from_numpy(alpha_np.copy()).to(device)
    k, s, p = case.kernel, case.stride, case.padding

    def formula(v, a):
        a = a.view(1, -1, 1, 1)
        return a * F.max_pool2d(v, k, s, p) + (1 - a) * F.avg_pool2d(v, k, s, p)

    xr, ar = x.detach().requires_grad_(True), alpha.detach().requires_grad_(True)
    nhwc = lambda t: np.moveaxis(t.detach().float().cpu().numpy(), 1, -1)  # noqa: E731

    def forward():
        with torch.no_grad():
            return formula(x, alpha)

    def forward_backward():
        y = formula(xr, ar)
        return (y, *torch.autograd.grad(y, (xr, ar), g))

    wait = torch_wait(device)
    return {
        FORWARD: Runner(forward, wait, nhwc),
        GRAD: Runner(forward_backward, wait, lambda r: nhwc(r[1])),
    }


def _reference(case, x_np, alpha_np, g_np):
    """torch NCHW on the CPU, untimed: {direction: NHWC output / input gradient}, alpha grad."""
    runners = _torch_runners(case, x_np, alpha_np, g_np, channels_last=False, device="cpu")
    y = runners[FORWARD].call()
    grads = runners[GRAD].call()
    return {FORWARD: runners[FORWARD].to_nhwc(y), GRAD: runners[GRAD].to_nhwc(grads)}, grads[
        2
    ].numpy()


def _numpy(a) -> np.ndarray:
    """float32 numpy of a JAX array or a torch tensor (on any device)."""
    if hasattr(a, "detach"):
        return a.detach().float().cpu().numpy()
    return np.asarray(a, np.float32)


# alpha's gradient is a float32 sum over N*H'*W' outputs per channel; summation order
# differs between implementations, so it is compared with a looser tolerance.
ALPHA_GRAD_TOLERANCE = dict(rtol=1e-4, atol=1e-4)


def run_case(case: Case, shape, args, torch_dev: str | None, log) -> dict:
    rng = np.random.default_rng(args.seed)
    n, h, w, c = shape
    out_shape = (n, case.out_size(h), case.out_size(w), c)
    x = rng.standard_normal(shape, dtype=np.float32)
    alpha = rng.uniform(0.0, 1.0, size=(c,)).astype(np.float32)
    g = rng.standard_normal(out_shape, dtype=np.float32)
    try:
        (reference, alpha_grad), no_reference = _reference(case, x, alpha, g), None
    except Exception as e:
        (reference, alpha_grad), no_reference = ({}, None), f"no torch reference: {error_text(e)}"
    jx, ja, jg = (jax.device_put(jnp.asarray(a)) for a in (x, alpha, g))
    built = {name(op, f): _jax_runners(op, f, case, jx, ja, jg) for f in FAMILIES for op in OPS}
    if torch_dev is not None:
        built["torch-cl"] = _torch_runners(case, x, alpha, g, channels_last=True, device=torch_dev)
    checked = {name(op, f) for f in FAMILIES for op in WITH_ALPHA} | {"torch-cl"}
    record = {
        "name": case.name,
        "kernel": case.kernel,
        "stride": case.stride,
        "padding": case.padding,
        "shape_nhwc": list(shape),
        "out_shape_nhwc": list(out_shape),
        "in_bytes": x.nbytes,
        "results": {},
    }
    for direction in DIRECTIONS:
        runners = {key: b[direction] for key, b in built.items()}
        stats = measure(runners, args, log)
        for key, st in stats.items():
            first = st.pop("_first_result", None)
            if first is not None and key in checked:
                st["check"] = check(
                    runners[key].to_nhwc(first), reference.get(direction), "float32", no_reference
                )
                if direction == GRAD:
                    st["check_alpha_grad"] = check(
                        _numpy(first[2]), alpha_grad, "float32", no_reference, ALPHA_GRAD_TOLERANCE
                    )
            record["results"].setdefault(key, {})[direction] = st
        log(
            f"  {case.name:8s} {direction:8s} "
            + "  ".join(
                f"{key}={st['min_ms']:.3g}ms"
                for key, st in stats.items()
                if st.get("status") == "ok"
            )
        )
    return record


def _result(record, key, direction) -> dict:
    st = record["results"].get(key, {}).get(direction, {})
    return st if st.get("status") == "ok" else {}


def _table_lines(report: dict) -> list[str]:
    env = report["environment"]
    auto = env["machine"]["auto_family"]
    head = [
        "case",
        "dir",
        "family",
        *OPS,
        "max + avg (two calls)",
        "torch-cl",
        "hybrid/max",
        "target",
        "hybrid/(max+avg)",
        "hybrid/torch-cl",
        *[f"temp MiB {op}" for op in ("hybrid", "max", "max+avg")],
        "input MiB",
        "other load",
    ]
    rows = []
    for record in report["cases"]:
        for direction in DIRECTIONS:
            torch_ms = _result(record, "torch-cl", direction).get("min_ms")
            for family in FAMILIES:
                st = {op: _result(record, name(op, family), direction) for op in OPS}
                v = {op: st[op].get("min_ms") for op in OPS}
                two = v["max"] + v["avg"] if v["max"] and v["avg"] else None
                over_max = rp.ratio(v["hybrid"], v["max"])
                met = over_max is not None and over_max <= TARGETS[direction]
                ms = lambda t: "—" if t is None else rp.fmt_ms(t)  # noqa: E731
                rows.append(
                    [
                        record["name"],
                        direction,
                        family + (" (auto)" if family == auto else ""),
                        *[ms(v[op]) for op in OPS],
                        ms(two),
                        ms(torch_ms),
                        rp.fmt_ratio(over_max),
                        f"≤ {TARGETS[direction]} {'met' if met else 'MISSED'}",
                        rp.fmt_ratio(rp.ratio(v["hybrid"], v["max+avg"])),
                        rp.fmt_ratio(rp.ratio(v["hybrid"], torch_ms)),
                        *[
                            rp.fmt_mib(st[op].get("temp_bytes")) if st[op] else "—"
                            for op in ("hybrid", "max", "max+avg")
                        ],
                        rp.fmt_mib(record["in_bytes"]),
                        f"{record.get('other_processes_cores') or 0:.2f}",
                    ]
                )
    return rp.table(head, rows, left=3)


def _check_lines(report: dict) -> list[str]:
    lines = []
    for record in report["cases"]:
        for direction in DIRECTIONS:
            for key in [name(op, f) for f in FAMILIES for op in WITH_ALPHA] + ["torch-cl"]:
                st = record["results"].get(key, {}).get(direction, {})
                for field, what in (
                    ("check", "output" if direction == FORWARD else "x gradient"),
                    ("check_alpha_grad", "alpha gradient"),
                ):
                    ch = st.get(field)
                    if ch:
                        verdict = (
                            "bit-exact"
                            if ch.get("exact")
                            else (
                                f"ok, max abs err {ch['max_abs_err']:.2g}"
                                if ch.get("ok")
                                else f"MISMATCH ({ch.get('mismatched')} of {ch.get('of')}, "
                                "max abs err "
                                f"{ch.get('max_abs_err', float('nan')):.2g})"
                            )
                        )
                        lines.append(f"- {record['name']} {direction} {key} {what}: {verdict}")
    return lines


def markdown(report: dict) -> str:
    env = report["environment"]
    hugetlb = env["allocator"]["variant"] == "hugetlb"
    lines = [
        f"# jaxpool hybrid pooling benchmark{' — huge-page malloc, kernel-only' if hugetlb else ''}"
        f"{' (--quick)' if env['args']['quick'] else ''}",
        "",
        rp.machine_line(env),
        f"- {env['date_utc']} · jax {env['versions']['jax']} · "
        f"torch {env['versions']['torch']} (threads "
        f"{env['torch_threads']}, device {env['torch_device']}) · python {env['python']}",
        f"- command: {rp.command_text(env)}; other processes kept "
        f"{env.get('other_processes_cores') or 0:.2f} cores busy on average "
        f"({env['wall_s']:.0f} s)",
        f"- allocator: {allocator_text(env['allocator'])}",
        "- jaxpool kernel families side by side; "
        f"`auto` uses `{env['machine']['auto_family']}` here",
        "",
        "Milliseconds, the **minimum** over repeats (benchmarks/timing.py's method); input "
        f"{'×'.join(map(str, report['cases'][0]['shape_nhwc']))} float32 NHWC, per-channel "
        "alpha. `max+avg`: `alpha*max_pool2d + (1-alpha)*avg_pool2d` from the two jaxpool "
        "ops in one jit. fwd+bwd differentiates x and alpha (hybrid, max+avg, torch-cl) or x "
        "(max, avg). `temp MiB`: XLA's compiled temporary bytes of the jitted candidate. "
        "Targets: hybrid/max ≤ 1.2 forward, ≤ 1.3 fwd+bwd.",
        "",
    ]
    busy = [
        f"{r['name']} {r['other_processes_cores']:.2f}"
        for r in report["cases"]
        if (r.get("other_processes_cores") or 0) > BUSY_CORES
    ]
    if busy:
        lines += [
            f"**Warning: other processes were using the CPU** (cores busy: {', '.join(busy)}); "
            "the minima are the more trustworthy numbers.",
            "",
        ]
    if env.get("torch_skip_reason"):
        lines += [f"torch-cl not timed: {env['torch_skip_reason']}.", ""]
    lines += [
        *_table_lines(report),
        "",
        "## Checks against torch (NCHW, CPU)",
        "",
        *_check_lines(report),
        "",
        f"Tolerances: outputs and x gradients {TOLERANCE['float32']}; alpha gradients "
        f"(float32 sums over N×H'×W' terms, in a different order than torch's) "
        f"{ALPHA_GRAD_TOLERANCE}.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.hybrid", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--cases", default="", help="comma-separated case names (k2s2, k3s2p1)")
    add_timing_options(p)
    return finish_timing_options(p.parse_args(argv))


def main(argv=None) -> int:
    args = parse_args(argv)
    start_run(args, "benchmarks.hybrid", argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    cases = [c for c in CASES if not args.cases or c.name in args.cases.split(",")]
    shape = QUICK_SHAPE if args.quick else SHAPE
    if args.batch:
        shape = (args.batch, *shape[1:])
    env = rp.environment("hybrid", args, argv)
    torch_dev, torch_reason = torch_device(env["jax_platform"], args.torch_threads)
    env.update(
        torch_threads=args.torch_threads or os.cpu_count(),
        torch_device=torch_dev,
        torch_skip_reason=torch_reason,
        tolerance=TOLERANCE,
    )
    start, snap_start = time.perf_counter(), cpu_snapshot()
    records = []
    for case in cases:
        gc.collect()
        if args.wait_quiet > 0:
            wait_quiet(args.wait_quiet, log)
        snap = cpu_snapshot()
        records.append(run_case(case, shape, args, torch_dev, log))
        records[-1]["other_processes_cores"] = other_cores(snap, cpu_snapshot())
    env.update(
        wall_s=time.perf_counter() - start,
        other_processes_cores=other_cores(snap_start, cpu_snapshot()),
        loadavg_end=list(os.getloadavg()),
    )
    report = {"environment": env, "cases": records}
    rp.write_report("hybrid", report, markdown(report), out=args.out, quick=args.quick, log=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
