"""Hybrid pooling benchmark: ``hybrid_pool2d`` against max pooling alone and against max and
average pooling computed separately, forward and forward+backward.

    python -m benchmarks.hybrid              # (32, 56, 56, 128) float32, k2s2 and k3s2p1
    python -m benchmarks.hybrid --quick      # batch 4, fewer repeats (writes hybrid-quick.*)

Writes ``hybrid.json`` (all samples, versions, machine) and ``hybrid.md`` (the table) to
``--out`` (default ``benchmarks/results/``). Timing conventions are benchmarks/pooling.py's
(its helpers are imported): each candidate is checked against torch once, warmed up, then
timed in interleaved rounds; the table shows the **minimum** over the repeats.

Candidates (channels-last, per-channel ``alpha`` of shape ``(C,)``, all jitted):

* ``hybrid``: ``jaxpool.hybrid_pool2d(x, alpha, k, s, p)``, the one fused entry point;
* ``max``: ``jaxpool.max_pool2d(x, k, s, p)`` alone, the target's yardstick;
* ``max+avg``: ``alpha * jaxpool.max_pool2d(...) + (1 - alpha) * jaxpool.avg_pool2d(...)``,
  the mix a user would write from the two ops, in one jit;
* ``avg``: ``jaxpool.avg_pool2d`` alone (with ``max`` it gives the cost of two passes);
* ``torch-cl``: the same formula in torch on ``channels_last`` tensors, for context.

fwd+bwd is the forward plus the vector-Jacobian product for a fixed random cotangent,
returning the output and the gradients: for ``x`` and ``alpha`` where there is an
``alpha`` (hybrid, max+avg, torch-cl), for ``x`` alone otherwise (max, avg).

Targets: hybrid forward <= 1.2x max forward; hybrid fwd+bwd <= 1.3x max fwd+bwd.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.pooling import (
    TOLERANCE,
    Runner,
    _fmt_ms,
    _strip,
    _write,
    check,
    cpu_snapshot,
    measure,
    other_cores,
)

FORWARD, GRAD = "forward", "fwd+bwd"
DIRECTIONS = (FORWARD, GRAD)
CANDIDATES = ("hybrid", "max", "max+avg", "avg", "torch-cl")
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


def _jax_runners(name: str, case: Case, x, alpha, g) -> dict[str, Runner]:
    import jaxpool

    k, s, p = case.kernel, case.stride, case.padding
    functions = {
        "hybrid": lambda v, a: jaxpool.hybrid_pool2d(v, a, k, s, p),
        "max+avg": lambda v, a: (a.reshape(1, 1, 1, -1) * jaxpool.max_pool2d(v, k, s, p)
                                 + (1 - a.reshape(1, 1, 1, -1)) * jaxpool.avg_pool2d(v, k, s, p)),
        "max": lambda v, a: jaxpool.max_pool2d(v, k, s, p),
        "avg": lambda v, a: jaxpool.avg_pool2d(v, k, s, p),
    }
    function = functions[name]
    with_alpha = name in ("hybrid", "max+avg")
    forward = jax.jit(function)

    def forward_backward(v, a, cotangent):
        if with_alpha:
            y, vjp = jax.vjp(function, v, a)
            return (y, *vjp(cotangent))
        y, vjp = jax.vjp(lambda u: function(u, a), v)
        return (y, *vjp(cotangent))

    forward_backward = jax.jit(forward_backward)
    to_numpy = lambda y: np.asarray(y, np.float32)  # noqa: E731
    return {
        FORWARD: Runner(lambda: forward(x, alpha).block_until_ready(), to_numpy),
        GRAD: Runner(lambda: jax.block_until_ready(forward_backward(x, alpha, g)),
                     lambda r: to_numpy(r[1])),
    }


def _torch_setup(case: Case, x_np, alpha_np, g_np, channels_last: bool):
    import torch
    import torch.nn.functional as F

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.from_numpy(np.moveaxis(x_np, -1, 1).copy()).contiguous(memory_format=fmt)
    g = torch.from_numpy(np.moveaxis(g_np, -1, 1).copy()).contiguous(memory_format=fmt)
    alpha = torch.from_numpy(alpha_np.copy())
    k, s, p = case.kernel, case.stride, case.padding

    def formula(v, a):
        a = a.view(1, -1, 1, 1)
        return a * F.max_pool2d(v, k, s, p) + (1 - a) * F.avg_pool2d(v, k, s, p)

    return torch, formula, x, alpha, g


def _torch_runners(case: Case, x_np, alpha_np, g_np, channels_last=True) -> dict[str, Runner]:
    torch, formula, x, alpha, g = _torch_setup(case, x_np, alpha_np, g_np, channels_last)
    xr, ar = x.detach().requires_grad_(True), alpha.detach().requires_grad_(True)
    nhwc = lambda t: np.moveaxis(t.detach().float().numpy(), 1, -1)  # noqa: E731

    def forward():
        with torch.no_grad():
            return formula(x, alpha)

    def forward_backward():
        y = formula(xr, ar)
        return (y, *torch.autograd.grad(y, (xr, ar), g))

    return {FORWARD: Runner(forward, nhwc), GRAD: Runner(forward_backward, lambda r: nhwc(r[1]))}


def _reference(case, x_np, alpha_np, g_np):
    """torch NCHW on the CPU, untimed: {direction: NHWC output / input gradient}, alpha grad."""
    runners = _torch_runners(case, x_np, alpha_np, g_np, channels_last=False)
    y = runners[FORWARD].call()
    grads = runners[GRAD].call()
    return {FORWARD: runners[FORWARD].to_nhwc(y), GRAD: runners[GRAD].to_nhwc(grads)}, grads[2].numpy()


# alpha's gradient is a float32 sum over N*H'*W' outputs per channel; summation order
# differs between implementations, so it is compared with a looser tolerance.
ALPHA_GRAD_TOLERANCE = dict(rtol=1e-4, atol=1e-4)


def _check_alpha_grad(result: np.ndarray, reference: np.ndarray) -> dict:
    error = np.abs(result.astype(np.float64) - reference)
    bad = ~np.isclose(result, reference, **ALPHA_GRAD_TOLERANCE)
    return {"ok": not bad.any(), "exact": bool(np.array_equal(result, reference)),
            "max_abs_err": float(error.max()), "mismatched": int(bad.sum()), "of": int(reference.size),
            "tolerance": ALPHA_GRAD_TOLERANCE}


def run_case(case: Case, shape, args, log) -> dict:
    rng = np.random.default_rng(args.seed)
    n, h, w, c = shape
    out_shape = (n, case.out_size(h), case.out_size(w), c)
    x = rng.standard_normal(shape, dtype=np.float32)
    alpha = rng.uniform(0.0, 1.0, size=(c,)).astype(np.float32)
    g = rng.standard_normal(out_shape, dtype=np.float32)
    reference, alpha_grad = _reference(case, x, alpha, g)
    jx, ja, jg = (jax.device_put(jnp.asarray(a)) for a in (x, alpha, g))
    built = {name: _jax_runners(name, case, jx, ja, jg) for name in CANDIDATES if name != "torch-cl"}
    import torch

    torch.set_num_threads(args.torch_threads or os.cpu_count() or 1)
    built["torch-cl"] = _torch_runners(case, x, alpha, g)
    record = {"name": case.name, "kernel": case.kernel, "stride": case.stride, "padding": case.padding,
              "shape_nhwc": list(shape), "out_shape_nhwc": list(out_shape), "results": {}}
    for direction in DIRECTIONS:
        runners = {name: b[direction] for name, b in built.items()}
        stats = measure(runners, args, log)
        for name, st in stats.items():
            first = st.pop("_first_result", None)
            if first is not None and name in ("hybrid", "max+avg", "torch-cl"):
                st["check"] = check(runners[name].to_nhwc(first), reference[direction], "float32", None)
                if direction == GRAD:
                    st["check_alpha_grad"] = _check_alpha_grad(np.asarray(first[2], np.float32), alpha_grad)
            record["results"].setdefault(name, {})[direction] = st
        log(f"  {case.name:8s} {direction:8s} " + "  ".join(
            f"{name}={st['min_ms']:.3g}ms" for name, st in stats.items() if st.get("status") == "ok"))
    return record


def _min(record, name, direction):
    st = record["results"].get(name, {}).get(direction, {})
    return st.get("min_ms") if st.get("status") == "ok" else None


def pooling_allocator_text(env: dict) -> str:
    from benchmarks import pooling

    return pooling._allocator_text(env)


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"# jaxpool hybrid pooling benchmark{' (--quick)' if env['args']['quick'] else ''}",
        "",
        f"- {env['date_utc']} · {env['cpu_model']} · {env['cpu_count']} cores · JAX platform "
        f"`{env['jax_platform']}`",
        f"- jax {env['versions']['jax']} · torch {env['versions']['torch']} (threads "
        f"{env['torch_threads']}) · python {env['python']}",
        f"- command: `{env['command']}`; other processes kept "
        f"{env.get('other_processes_cores') or 0:.2f} cores busy on average ({env['wall_s']:.0f} s)",
        f"- allocator: {pooling_allocator_text(env)}",
        "",
        "Milliseconds, the **minimum** over repeats (benchmarks/pooling.py's method); input "
        f"{'×'.join(map(str, report['cases'][0]['shape_nhwc']))} float32 NHWC, per-channel "
        "alpha. `max+avg`: `alpha*max_pool2d + (1-alpha)*avg_pool2d` from the two jaxpool "
        "ops in one jit. fwd+bwd differentiates x and alpha (hybrid, max+avg, torch-cl) or x "
        "(max, avg). Targets: hybrid/max ≤ 1.2 forward, ≤ 1.3 fwd+bwd.",
        "",
    ]
    busy = [f"{r['name']} {r['other_processes_cores']:.2f}" for r in report["cases"]
            if (r.get("other_processes_cores") or 0) > 0.25]
    if busy:
        lines += [f"**Warning: other processes were using the CPU** (cores busy: {', '.join(busy)}); "
                  "the minima are the more trustworthy numbers.", ""]
    head = ["case", "dir", "hybrid", "max", "max+avg", "avg", "max + avg (two calls)", "torch-cl",
            "hybrid/max", "target", "hybrid/(max+avg)", "hybrid/torch-cl", "other load"]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for record in report["cases"]:
        for direction in DIRECTIONS:
            v = {name: _min(record, name, direction) for name in CANDIDATES}
            two = v["max"] + v["avg"] if v["max"] and v["avg"] else None
            ratio = lambda a, b: "—" if a is None or b is None else f"{a / b:.2f}"  # noqa: E731
            met = v["hybrid"] and v["max"] and v["hybrid"] / v["max"] <= TARGETS[direction]
            cells = [record["name"], direction,
                     *[("—" if v[name] is None else _fmt_ms(v[name])) for name in ("hybrid", "max", "max+avg", "avg")],
                     "—" if two is None else _fmt_ms(two),
                     "—" if v["torch-cl"] is None else _fmt_ms(v["torch-cl"]),
                     ratio(v["hybrid"], v["max"]),
                     f"≤ {TARGETS[direction]} {'met' if met else 'MISSED'}",
                     ratio(v["hybrid"], v["max+avg"]), ratio(v["hybrid"], v["torch-cl"]),
                     f"{record.get('other_processes_cores') or 0:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Checks against torch (NCHW, CPU)", ""]
    for record in report["cases"]:
        for direction in DIRECTIONS:
            for name in ("hybrid", "max+avg", "torch-cl"):
                st = record["results"].get(name, {}).get(direction, {})
                for key, what in (("check", "output" if direction == FORWARD else "x gradient"),
                                  ("check_alpha_grad", "alpha gradient")):
                    ch = st.get(key)
                    if ch:
                        verdict = "bit-exact" if ch.get("exact") else (
                            f"ok, max abs err {ch['max_abs_err']:.2g}" if ch.get("ok") else
                            f"MISMATCH ({ch.get('mismatched')} of {ch.get('of')}, max abs err "
                            f"{ch.get('max_abs_err', float('nan')):.2g})")
                        lines.append(f"- {record['name']} {direction} {name} {what}: {verdict}")
    lines += ["", f"Tolerances: outputs and x gradients {TOLERANCE['float32']}; alpha gradients "
              f"(float32 sums over N×H'×W' terms, in a different order than torch's) "
              f"{ALPHA_GRAD_TOLERANCE}."]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.hybrid", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="batch 4, fewer repeats")
    p.add_argument("--cases", default="", help="comma-separated case names (k2s2, k3s2p1)")
    p.add_argument("--budget", type=float, default=None, help="seconds of timed calls per candidate (default 1.0; --quick 0.2)")
    p.add_argument("--repeats", type=int, default=20, help="repeats when --budget is 0")
    p.add_argument("--min-repeats", type=int, default=5)
    p.add_argument("--max-repeats", type=int, default=100)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--pause", type=float, default=0.002)
    p.add_argument("--wait-quiet", type=float, default=0.0,
                   help="before each case, wait up to this many seconds for an idle machine")
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output directory (default benchmarks/results/)")
    p.add_argument("--default-malloc", action="store_true",
                   help="keep glibc's default malloc (see benchmarks.pooling.use_hugepage_malloc)")
    args = p.parse_args(argv)
    if args.budget is None:
        args.budget = 0.2 if args.quick else 1.0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    import torch

    from benchmarks import pooling

    pooling.use_hugepage_malloc("benchmarks.hybrid", argv, args.default_malloc)

    cases = [c for c in CASES if not args.cases or c.name in args.cases.split(",")]
    shape = QUICK_SHAPE if args.quick else SHAPE
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    env = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.hybrid", *(sys.argv[1:] if argv is None else argv)]),
        "args": vars(args), "python": platform.python_version(), "cpu_model": cpu,
        "cpu_count": os.cpu_count(), "jax_platform": jax.devices()[0].platform,
        "versions": {"jax": jax.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "torch_threads": args.torch_threads or os.cpu_count(), "tolerance": TOLERANCE,
        "loadavg_start": list(os.getloadavg()),
        "env": {k: os.environ[k] for k in ("GLIBC_TUNABLES", "XLA_FLAGS") if k in os.environ},
    }
    start, snap_start = time.perf_counter(), cpu_snapshot()
    records = []
    for case in cases:
        gc.collect()
        if args.wait_quiet > 0 and hasattr(pooling, "wait_quiet"):
            pooling.wait_quiet(args.wait_quiet, log)
        snap = cpu_snapshot()
        records.append(run_case(case, shape, args, log))
        records[-1]["other_processes_cores"] = other_cores(snap, cpu_snapshot())
    env["wall_s"] = time.perf_counter() - start
    env["other_processes_cores"] = other_cores(snap_start, cpu_snapshot())
    env["loadavg_end"] = list(os.getloadavg())
    report = {"environment": env, "cases": records}
    text = markdown(report)
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = "hybrid-quick" if args.quick else "hybrid"
    _write(out / f"{stem}.json", json.dumps(_strip(report), indent=1) + "\n")
    _write(out / f"{stem}.md", text)
    print(text)
    log(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')} in {env['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
