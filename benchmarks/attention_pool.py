"""Sequence and attention pooling benchmark: jaxpool's attention heads and masked mean
against timm's modules and torch's idiom on the CPU, forward and forward+backward.

    python -m benchmarks.attention_pool            # the cases below, batch 8
    python -m benchmarks.attention_pool --quick    # batch 2, fewer repeats

Writes ``attention_pool-<machine>.json`` (all samples, versions, machine) and ``.md``
(the table) to ``--out`` (default ``benchmarks/results/``). Timing conventions are
benchmarks/timing.py's: each candidate's first result is checked against torch's,
warmed up, then the candidates are timed in interleaved rounds; the table shows the
**minimum** and the median over the repeats, and jaxpool's compiled temporary bytes.

Cases (float32; the heads with the sizes of the models that use them):

* ``latent-siglip-b``: timm's ``AttentionPoolLatent`` as in SigLIP ViT-B/16: 196 tokens
  of 768 channels, 12 heads, MLP ratio 4, LayerNorm (eps 1e-6);
* ``latent-siglip-b-masked``: the same with a key mask (random lengths from 49 to 196);
* ``pool2d-clip-rn50``: timm's ``AttentionPool2d`` as CLIP's ResNet-50 head: a 7×7 map
  of 2048 channels, 32 heads, output 1024;
* ``masked-mean``: the sentence-embedding mean of 128 tokens of 768 channels under a
  mask, ``jaxpool.global_avg_pool(x, spatial_dims=1, mask=m)`` against torch's
  ``(x * m).sum(1) / m.sum(1)``.

Candidates: ``jaxpool`` (the linen module's apply, or the op, jitted; channels-last) and
``torch`` (timm's module in eval mode, or the idiom; torch's layout). fwd+bwd is the
forward and the vector-Jacobian product for a fixed random cotangent with respect to the
input and every parameter (a training step's work), returning all of them.
"""

from __future__ import annotations

import argparse
import functools
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
    FORWARD,
    GRAD,
    Runner,
    add_timing_options,
    allocator_text,
    check,
    compile_jax,
    cpu_snapshot,
    error_text,
    finish_timing_options,
    measure,
    other_cores,
    start_run,
    to_float32,
    torch_device,
    torch_wait,
    wait_quiet,
)

CANDIDATES = ("jaxpool", "torch")
# Outputs of order 1 after sums over 768-2048 channels: float32 roundings in a different
# order than torch's.
CHECK_TOLERANCE = dict(rtol=1e-4, atol=1e-4)


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # 'latent', 'pool2d' or 'mean'
    shape: tuple[int, ...]  # jaxpool's input shape without the batch
    options: tuple[tuple[str, object], ...] = ()
    masked: bool = False


CASES = (
    Case("latent-siglip-b", "latent", (196, 768),
         (("num_heads", 12), ("norm_layer", "layernorm"), ("norm_eps", 1e-6))),
    Case("latent-siglip-b-masked", "latent", (196, 768),
         (("num_heads", 12), ("norm_layer", "layernorm"), ("norm_eps", 1e-6)), masked=True),
    Case("pool2d-clip-rn50", "pool2d", (7, 7, 2048),
         (("feat_size", 7), ("num_heads", 32), ("out_features", 1024))),
    Case("masked-mean", "mean", (128, 768), masked=True),
)
BATCH, QUICK_BATCH = 8, 2


def import_timm():
    """timm, imported as the tests import it (tests/torch_oracles.py: torchvision's
    compiled operators do not load beside torch's CPU build)."""
    from tests.torch_oracles import import_timm as load

    return load()


def _timm_module(case: Case):
    import torch

    timm = import_timm()
    options = dict(case.options)
    torch.manual_seed(0)
    if case.kind == "latent":
        eps = options.pop("norm_eps")
        options.pop("norm_layer")
        return timm.layers.AttentionPoolLatent(
            case.shape[-1], norm_layer=functools.partial(torch.nn.LayerNorm, eps=eps), **options
        ).eval()
    return timm.layers.AttentionPool2d(case.shape[-1], **options).eval()


def _jax_runners(case: Case, x, mask, params, g) -> dict[str, Runner]:
    import jaxpool

    if case.kind == "mean":
        def function(p, v):
            return jaxpool.global_avg_pool(v, spatial_dims=1, mask=mask)
    elif case.kind == "latent":
        module = jaxpool.AttentionPoolLatent(**dict(case.options))

        def function(p, v):
            return module.apply({"params": p}, v, mask=mask)
    else:
        module = jaxpool.AttentionPool2d(**dict(case.options))

        def function(p, v):
            return module.apply({"params": p}, v)

    def forward(p, v):
        return function(p, v)

    def forward_backward(p, v, cotangent):
        y, vjp = jax.vjp(function, p, v)
        return (y, *vjp(cotangent))

    return {
        FORWARD: compile_jax(forward, (params, x), to_float32),
        GRAD: compile_jax(forward_backward, (params, x, g), lambda r: to_float32(r[2])),
    }


def _torch_runners(case: Case, module, x_np, mask_np, g_np, device: str) -> dict[str, Runner]:
    import torch

    layout = (lambda a: np.moveaxis(a, -1, 1)) if case.kind == "pool2d" else (lambda a: a)
    x = torch.from_numpy(np.ascontiguousarray(layout(x_np))).to(device)
    g = torch.from_numpy(g_np.copy()).to(device)
    mask = None if mask_np is None else torch.from_numpy(mask_np.copy()).to(device)
    parameters = [] if module is None else list(module.parameters())
    if case.kind == "mean":
        weights = mask[..., None].to(x.dtype)

        def formula(v):
            return (v * weights).sum(1) / weights.sum(1)
    elif case.kind == "latent":
        attn_mask = None if mask is None else mask[:, None, None, :]

        def formula(v):
            return module(v, attn_mask=attn_mask)
    else:
        formula = module

    xr = x.detach().requires_grad_(True)
    back = (lambda t: np.moveaxis(t, 1, -1)) if case.kind == "pool2d" else (lambda t: t)

    def forward():
        with torch.no_grad():
            return formula(x)

    def forward_backward():
        y = formula(xr)
        return (y, *torch.autograd.grad(y, (xr, *parameters), g))

    wait = torch_wait(device)
    return {
        FORWARD: Runner(forward, wait, lambda y: y.detach().float().cpu().numpy()),
        GRAD: Runner(forward_backward, wait,
                     lambda r: back(r[1].detach().float().cpu().numpy())),
    }


def run_case(case: Case, batch: int, args, torch_dev: str | None, log) -> dict:
    from jaxpool import torch_compat

    rng = np.random.default_rng(args.seed)
    shape = (batch, *case.shape)
    x = rng.standard_normal(shape, dtype=np.float32)
    mask = None
    if case.masked:
        tokens = case.shape[0]
        lengths = rng.integers(tokens // 4, tokens + 1, size=batch)
        mask = np.arange(tokens)[None, :] < lengths[:, None]
    module = None if case.kind == "mean" else _timm_module(case)
    if case.kind == "latent":
        params = torch_compat.attention_pool_latent_variables(module)["params"]
    elif case.kind == "pool2d":
        params = torch_compat.attention_pool_2d_variables(module)["params"]
    else:
        params = {}
    width = dict(case.options).get("out_features") or case.shape[-1]
    g = rng.standard_normal((batch, width), dtype=np.float32)
    jx, jg = jax.device_put(jnp.asarray(x)), jax.device_put(jnp.asarray(g))
    jparams = jax.tree.map(jnp.asarray, params)
    jmask = None if mask is None else jnp.asarray(mask)
    built = {"jaxpool": _jax_runners(case, jx, jmask, jparams, jg)}
    reference = {}
    if torch_dev is not None:
        built["torch"] = _torch_runners(case, module, x, mask, g, torch_dev)
    record = {
        "name": case.name,
        "kind": case.kind,
        "shape": list(shape),
        "options": dict(case.options),
        "masked": case.masked,
        "in_bytes": x.nbytes,
        "results": {},
    }
    for direction in DIRECTIONS:
        runners = {key: b[direction] for key, b in built.items()}
        stats = measure(runners, args, log)
        if "torch" in stats and "_first_result" in stats["torch"]:
            reference[direction] = runners["torch"].to_nhwc(stats["torch"]["_first_result"])
        for key, st in stats.items():
            first = st.pop("_first_result", None)
            if first is not None and key == "jaxpool":
                st["check"] = check(runners[key].to_nhwc(first), reference.get(direction),
                                    "float32", "torch not timed", CHECK_TOLERANCE)
            record["results"].setdefault(key, {})[direction] = st
        log(f"  {case.name:24s} {direction:8s} " + "  ".join(
            f"{key}={st['min_ms']:.3g}ms" for key, st in stats.items() if st.get("status") == "ok"
        ))
    return record


def _result(record, key, direction) -> dict:
    st = record["results"].get(key, {}).get(direction, {})
    return st if st.get("status") == "ok" else {}


def _verdict(ch: dict | None) -> str:
    if not ch:
        return "—"
    if ch.get("ok") is None:
        return ch.get("reason", "unchecked")
    if ch.get("exact"):
        return "bit-exact"
    if ch.get("ok"):
        return f"ok ({ch['max_abs_err']:.2g})"
    return f"MISMATCH ({ch.get('mismatched')} of {ch.get('of')})"


def _table_lines(report: dict) -> list[str]:
    head = ["case", "dir", "jaxpool min", "jaxpool median", "torch min", "torch median",
            "jaxpool/torch (min)", "temp MiB jaxpool", "check", "other load"]
    rows = []
    for record in report["cases"]:
        for direction in DIRECTIONS:
            ours = _result(record, "jaxpool", direction)
            theirs = _result(record, "torch", direction)
            ms = lambda v: "—" if v is None else rp.fmt_ms(v)  # noqa: E731
            rows.append([
                record["name"], direction, ms(ours.get("min_ms")), ms(ours.get("median_ms")),
                ms(theirs.get("min_ms")), ms(theirs.get("median_ms")),
                rp.fmt_ratio(rp.ratio(ours.get("min_ms"), theirs.get("min_ms"))),
                rp.fmt_mib(ours.get("temp_bytes")) if ours else "—",
                _verdict(ours.get("check")),
                f"{record.get('other_processes_cores') or 0:.2f}",
            ])
    return rp.table(head, rows, left=2)


def markdown(report: dict) -> str:
    env = report["environment"]
    batch = report["cases"][0]["shape"][0] if report["cases"] else "?"
    lines = [
        "# jaxpool sequence and attention pooling benchmark"
        f"{' (--quick)' if env['args']['quick'] else ''}",
        "",
        rp.machine_line(env),
        f"- {env['date_utc']} · jax {env['versions']['jax']} · torch "
        f"{env['versions']['torch']} · timm {env.get('timm_version', '?')} (threads "
        f"{env['torch_threads']}, device {env['torch_device']}) · python {env['python']}",
        f"- command: {rp.command_text(env)}; other processes kept "
        f"{env.get('other_processes_cores') or 0:.2f} cores busy on average "
        f"({env['wall_s']:.0f} s)",
        f"- allocator: {allocator_text(env['allocator'])}",
        "",
        f"Milliseconds over the repeats (benchmarks/timing.py's method), batch {batch}, "
        "float32. `jaxpool`: the linen module's apply (or the op) under `jax.jit`, "
        "channels-last; `torch`: timm 1.0.31's module in eval mode (or the idiom "
        "`(x * m).sum(1) / m.sum(1)`), torch's layout. fwd+bwd: the forward and the "
        "vector-Jacobian product with respect to the input and every parameter. "
        "`check`: jaxpool's output (forward) or input gradient (fwd+bwd) against torch's, "
        f"within {CHECK_TOLERANCE}.",
        "",
    ]
    busy = [f"{r['name']} {r['other_processes_cores']:.2f}" for r in report["cases"]
            if (r.get("other_processes_cores") or 0) > BUSY_CORES]
    if busy:
        lines += [
            f"**Warning: other processes were using the CPU** (cores busy: {', '.join(busy)}); "
            "the minima are the more trustworthy numbers.",
            "",
        ]
    if env.get("torch_skip_reason"):
        lines += [f"torch not timed: {env['torch_skip_reason']}.", ""]
    return "\n".join(lines + _table_lines(report)) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.attention_pool", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--cases", default="",
                   help="comma-separated case names (" + ", ".join(c.name for c in CASES) + ")")
    add_timing_options(p)
    return finish_timing_options(p.parse_args(argv))


def main(argv=None) -> int:
    args = parse_args(argv)
    start_run(args, "benchmarks.attention_pool", argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    cases = [c for c in CASES if not args.cases or c.name in args.cases.split(",")]
    batch = args.batch or (QUICK_BATCH if args.quick else BATCH)
    env = rp.environment("attention_pool", args, argv)
    torch_dev, torch_reason = torch_device(env["jax_platform"], args.torch_threads)
    try:
        timm_version = import_timm().__version__
    except Exception as e:
        timm_version, torch_dev, torch_reason = None, None, f"no timm: {error_text(e)}"
    env.update(torch_threads=args.torch_threads or os.cpu_count(), torch_device=torch_dev,
               torch_skip_reason=torch_reason, timm_version=timm_version,
               tolerance=CHECK_TOLERANCE)
    start, snap_start = time.perf_counter(), cpu_snapshot()
    records = []
    for case in cases:
        gc.collect()
        if args.wait_quiet > 0:
            wait_quiet(args.wait_quiet, log)
        snap = cpu_snapshot()
        records.append(run_case(case, batch, args, torch_dev, log))
        records[-1]["other_processes_cores"] = other_cores(snap, cpu_snapshot())
    env.update(wall_s=time.perf_counter() - start,
               other_processes_cores=other_cores(snap_start, cpu_snapshot()),
               loadavg_end=list(os.getloadavg()))
    report = {"environment": env, "cases": records}
    rp.write_report("attention_pool", report, markdown(report), out=args.out, quick=args.quick,
                    log=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
