"""Where the time of a max-pooling gradient goes: the cpu family's phases, page faults and
what XLA emitted, beside torch and a bare write of the same size.

    PYTHONPATH=. python -m benchmarks.profile            # (32, 56, 56, 128) float32, ~1 min
    PYTHONPATH=. python -m benchmarks.profile --cases max_k5s1p2  # (16, 40, 40, 256)
    PYTHONPATH=. python -m benchmarks.profile --quick    # batch 4

For each case, jaxpool's ``cpu`` family (the one ``auto`` picks on CPU) is split into the
phases of its gradient, each jitted and timed on its own: the forward (window maxima),
the *choices* (the tap torch picks in every window, computed once and kept for the
backward), the *backward* (each window's cotangent written to its chosen element: a
fresh input-sized output), and the whole forward + backward. Beside them:

* ``write probe``: ``jax.jit(lambda x: x * 2)``: one pass that writes a fresh output of
  the input's size, the floor of any gradient under the same allocator; ``write probe,
  2 outputs``: ``(x * 2, g * 3)``, the floor of a forward + backward that returns the
  output and the input's gradient (two fresh arrays);
* ``torch-cl``: torch's forward + backward (channels_last, its faster layout here) in a
  plain loop, as a user's training loop calls it;
* page faults per call (``getrusage``'s minor faults) and CPU time per wall time
  (how many cores were busy) of the jaxpool gradient, the probe and torch;
* the fusions XLA compiled for the jaxpool gradient (loop fusions, YNNPACK fusions).

Times are the minimum over ``--repeats`` calls after warm-up. Writes
``profile-<machine>.json|md`` through benchmarks/report.py.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import report as rp
from benchmarks.timing import allocator_text, import_torch

# name -> (kind of windows, their parameters), on (N, 56, 56, C) channels-last input
# unless SHAPES says otherwise.
CASES = {
    "max_k2s2": ("sliding", dict(kernel_size=2, stride=2, padding=0, dilation=1)),
    "max_k3s2p1": ("sliding", dict(kernel_size=3, stride=2, padding=1, dilation=1)),
    "max_k3s2d2": ("sliding", dict(kernel_size=3, stride=2, padding=0, dilation=2)),
    "global_max": ("global", {}),
    "adaptive_max_56to5": ("adaptive", dict(output_size=5)),
    "max_k5s1p2": ("sliding", dict(kernel_size=5, stride=1, padding=2, dilation=1)),
}
# Cases on another input than (N, 56, 56, C): (N, H, W, C) for the full run, N for --quick.
SHAPES = {"max_k5s1p2": ((16, 40, 40, 256), 2)}


def _windows(kind: str, params: dict, size: tuple[int, int]):
    from jaxpool import _geometry as geometry

    if kind == "sliding":
        p = params
        return geometry.sliding_windows(
            "profile", size, p["kernel_size"], p["stride"], p["padding"], p["dilation"], False
        ).windows
    if kind == "global":
        return geometry.global_windows(size).windows
    return geometry.adaptive_windows("profile", size, params["output_size"]).windows


def _torch_call(kind: str, params: dict):
    torch, _ = import_torch()
    functional = torch.nn.functional
    if kind == "sliding":
        p = params
        return lambda t: functional.max_pool2d(
            t, p["kernel_size"], p["stride"], p["padding"], p["dilation"]
        )
    if kind == "global":
        return lambda t: functional.adaptive_max_pool2d(t, 1)
    return lambda t: functional.adaptive_max_pool2d(t, params["output_size"])


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _profile(call, repeats: int) -> dict:
    """Minimum wall ms, page faults and busy cores per call of ``call`` (which waits)."""
    call()
    call()
    times = []
    faults_before, cpu_before = _faults(), os.times()
    started = time.perf_counter()
    for _ in range(repeats):
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    wall = time.perf_counter() - started
    cpu_after = os.times()
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return {
        "ms": min(times) * 1e3,
        "faults": (_faults() - faults_before) / repeats,
        "cores": cpu / wall if wall > 0 else None,
    }


def _fusions(compiled_text: str) -> dict[str, int]:
    kinds: dict[str, int] = {}
    entry = compiled_text[compiled_text.index("ENTRY") :]
    for line in entry.splitlines():
        if " fusion(" in line:
            match = re.search(r"kind=(k\w+)", line)
            kind = "ynnpack" if "__ynn_fusion" in line else (match.group(1) if match else "other")
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def profile_case(name: str, shape: tuple, repeats: int, seed: int) -> dict:
    from jaxpool import _kernels_cpu as cpu

    kind, params = CASES[name]
    axes = (1, 2)
    windows = _windows(kind, params, shape[1:3])
    stages = cpu.plan_stages(axes, windows)
    x = jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))
    forward = jax.jit(lambda v: cpu.window_max(v, axes, windows))
    y = forward(x)
    g = jnp.asarray(np.random.default_rng(seed + 1).standard_normal(y.shape).astype(np.float32))
    choose = jax.jit(lambda v, m: cpu._max_with_choices(v, stages, False, m)[1])
    choices = choose(x, y)

    def scatter(c, chosen):
        for stage, picked in reversed(list(zip(stages, chosen, strict=True))):
            c = cpu.scatter_tap_p.bind(c, picked, stage=stage)
        return c

    backward = jax.jit(scatter)

    def gradient(v, c):
        out, vjp = jax.vjp(lambda w: cpu.window_max(w, axes, windows), v)
        return out, vjp(c)[0]

    whole = jax.jit(gradient)
    probe = jax.jit(lambda v: v * 2)
    probe_two = jax.jit(lambda v, c: (v * 2, c * 3))
    rows = {
        "forward": _profile(lambda: forward(x).block_until_ready(), repeats),
        "choices": _profile(lambda: jax.block_until_ready(choose(x, y)), repeats),
        "backward": _profile(lambda: backward(g, choices).block_until_ready(), repeats),
        "fwd+bwd": _profile(lambda: jax.block_until_ready(whole(x, g)), repeats),
        "write probe": _profile(lambda: probe(x).block_until_ready(), repeats),
        "write probe, 2 outputs": _profile(
            lambda: jax.block_until_ready(probe_two(x, g)), repeats
        ),
    }
    torch, reason = import_torch()
    if torch is not None:
        fn = _torch_call(kind, params)
        tx = (
            torch.from_numpy(np.moveaxis(np.asarray(x), -1, 1).copy())
            .contiguous(memory_format=torch.channels_last)
            .requires_grad_(True)
        )
        tg = torch.from_numpy(np.moveaxis(np.asarray(g), -1, 1).copy()).contiguous(
            memory_format=torch.channels_last
        )
        rows["torch-cl fwd+bwd"] = _profile(lambda: torch.autograd.grad(fn(tx), tx, tg), repeats)
    fusions = _fusions(whole.lower(x, g).compile().as_text())
    return {
        "name": name,
        "shape": list(shape),
        "stages": [
            f"{s.kind} over axes {s.axes}, kernel {[w.kernel for w in s.windows]}" for s in stages
        ],
        "rows": rows,
        "fusions": fusions,
        "torch": reason or "ok",
    }


def markdown(report: dict) -> str:
    env = report["environment"]
    v = env["versions"]
    lines = [
        "# Where a max-pooling gradient's time goes (jaxpool's cpu family)",
        "",
        rp.machine_line(env),
        f"- {env['date_utc']} · jax {v['jax']} · torch {v['torch']} · command "
        f"{rp.command_text(env)}",
        f"- allocator: {allocator_text(env['allocator'])}",
        "",
        "Minimum ms per call; faults: minor page faults per call; cores: CPU time / wall "
        "time while repeating the call. `write probe`: `x * 2`, a fresh output of the "
        "input's size (every gradient writes one).",
        "",
    ]
    head = ["case", "phase", "ms", "faults / call", "cores"]
    rows = []
    for case in report["cases"]:
        for phase, row in case["rows"].items():
            cores = "—" if row["cores"] is None else f"{row['cores']:.2f}"
            rows.append([case["name"], phase, rp.fmt_ms(row["ms"]), f"{row['faults']:.0f}", cores])
    lines += rp.table(head, rows, left=2)
    lines += ["", "Stages and XLA fusions of the compiled gradient:", ""]
    for case in report["cases"]:
        fusions = ", ".join(f"{count} {kind}" for kind, count in sorted(case["fusions"].items()))
        lines.append(
            f"- {case['name']}, input {tuple(case['shape'])}: {'; '.join(case['stages'])}; "
            f"fusions: {fusions}"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="batch 4, 5 repeats")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=None, help="output directory (default benchmarks/results/)"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    repeats = 5 if args.quick else args.repeats

    def shape(name: str) -> tuple[int, ...]:
        full, quick_batch = SHAPES.get(name, ((32, 56, 56, 128), 4))
        return (quick_batch, *full[1:]) if args.quick else full

    torch, _ = import_torch()
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
    env = rp.environment("profile", args, argv)
    started = time.perf_counter()
    cases = [profile_case(name, shape(name), repeats, args.seed) for name in names]
    env["wall_s"] = time.perf_counter() - started
    report = {"environment": env, "cases": cases}
    rp.write_report("profile", report, markdown(report), out=args.out, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
