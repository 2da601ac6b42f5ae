"""Train-step throughput of the CIFAR ResNet-18 with max, hybrid and attention pooling.

    PYTHONPATH=. python -m benchmarks.train_step                 # width 64, batch 128 (minutes)
    PYTHONPATH=. python -m benchmarks.train_step --quick         # width 8, batch 32 (smoke test)
    PYTHONPATH=. python -m benchmarks.train_step --pools max,avg,hybrid --repeats 10

Times the example's real jitted train step (``examples/cifar10/train.py``: augmentation,
forward, backward, SGD update, donated state) of ``jaxpool.models.CifarResNet18`` on
synthetic 32x32x3 images, once per head pooling, and reports each one's step time and
images/s and its overhead over max pooling (the target for hybrid pooling is <= 5 %).

Method: each pooling's step is compiled and called twice untimed, then the poolings are
timed in interleaved rounds (one step each per round, rotating order), ``--repeats``
rounds; the table gives the **minimum** step time (robust to other processes on a shared
machine; medians and all samples are in the JSON) and the average number of cores other
processes kept busy meanwhile (helpers from ``benchmarks/timing.py``).

Writes ``train_step-<machine>.json`` and ``.md`` (``-quick`` with ``--quick``) into
``--out`` (default ``benchmarks/results/``) through benchmarks/report.py, like the other
benchmarks. jaxpool's kernel family is the one ``'auto'`` picks on this platform (or
``JAXPOOL_KERNELS``), recorded in the report.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import numpy as np

from benchmarks import report as rp
from benchmarks.timing import BUSY_CORES, allocator_text, cpu_snapshot, other_cores, wait_quiet
from examples.cifar10 import data, train


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.train_step", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--pools",
        default="max,hybrid,attention",
        help="head poolings to time; the first is the reference",
    )
    parser.add_argument("--width", type=int, default=64, help="ResNet-18 base width")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 compute")
    parser.add_argument("--quick", action="store_true", help="width 8, batch 32, 3 repeats")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        metavar="S",
        help="wait up to S seconds for other processes to go quiet first",
    )
    parser.add_argument(
        "--out", default=None, help="output directory (default benchmarks/results/)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.batch_size, args.repeats = 8, 32, 3
    args.pools = [name.strip() for name in args.pools.split(",") if name.strip()]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    run_started = time.perf_counter()
    rng = np.random.default_rng(0)  # random 32x32x3 images: only the step's time matters
    images = rng.integers(0, 256, (args.batch_size, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(args.batch_size) % 10).astype(np.int32)
    dataset = data.make_dataset(
        "cifar10", (images, labels), (images[:8], labels[:8]), 10, "random 32x32x3 images"
    )
    devices = tuple(jax.devices())
    steps, states, compile_s = {}, {}, {}
    batch = None
    for pool in args.pools:
        config = train.resolve_config(
            train.TrainConfig(
                dataset="cifar10",
                model="resnet18",
                pool=pool,
                width=args.width,
                batch_size=args.batch_size,
                eval_batch_size=8,
                bf16=args.bf16,
                epochs=1,
            ),
            dataset,
        )
        experiment = train.get_experiment(
            config,
            dataset.image_shape,
            dataset.num_classes,
            dataset.num_train,
            tuple(map(float, dataset.mean)),
            tuple(map(float, dataset.std)),
            devices,
        )
        batch = train.global_batch(experiment.batch_sharding, images, labels)
        state = experiment.init(jax.random.PRNGKey(0))
        count = sum(leaf.size for leaf in jax.tree.leaves(state.params))
        log(f"{pool}: compiling ({count:,} parameters)")
        started = time.perf_counter()
        compiled = experiment.train_step.lower(state, *batch).compile()
        compile_s[pool] = time.perf_counter() - started
        for _ in range(2):  # untimed: first execution and one warm call
            state, metrics = compiled(state, *batch)
        jax.block_until_ready(metrics)
        steps[pool], states[pool] = compiled, state

    waited = wait_quiet(args.wait_quiet, log)
    samples = {pool: [] for pool in args.pools}
    before = cpu_snapshot()
    for round_index in range(args.repeats):
        order = (
            args.pools[round_index % len(args.pools) :]
            + args.pools[: round_index % len(args.pools)]
        )
        for pool in order:
            started = time.perf_counter()
            states[pool], metrics = steps[pool](states[pool], *batch)
            jax.block_until_ready(metrics)
            samples[pool].append(time.perf_counter() - started)
        log(
            f"round {round_index + 1}/{args.repeats}: "
            + ", ".join(f"{pool} {1e3 * samples[pool][-1]:.0f} ms" for pool in args.pools)
        )
    load = other_cores(before, cpu_snapshot())

    reference = args.pools[0]
    results = {}
    for pool in args.pools:
        best = min(samples[pool])
        results[pool] = {
            "min_ms": 1e3 * best,
            "median_ms": 1e3 * statistics.median(samples[pool]),
            "images_per_second": args.batch_size / best,
            "overhead_vs_reference": best / min(samples[reference]) - 1.0,
            "compile_s": compile_s[pool],
            "samples_ms": [1e3 * value for value in samples[pool]],
        }
    env = rp.environment("train_step", args, argv)
    env["wall_s"] = time.perf_counter() - run_started
    env["kernel_family"] = env["env"].get(
        "JAXPOOL_KERNELS", f"auto ({env['machine']['auto_family']})"
    )
    report = {
        "environment": env,
        "model": f"CifarResNet18(width={args.width})",
        "input": f"({args.batch_size}, 32, 32, 3) uint8 synthetic, augmented on device",
        "reference": reference,
        "other_processes_cores": load,
        "waited_for_quiet_s": waited,
        "results": results,
    }
    lines = [
        "# Train step: CIFAR ResNet-18 with a choice of head pooling",
        "",
        rp.machine_line(env),
        f"- {env['date_utc']} · jax {jax.__version__} · "
        f"jaxpool kernel family {env['kernel_family']}",
        f"- command: {rp.command_text(env)}",
        f"- allocator: {allocator_text(env['allocator'], hugetlb_option=False)}",
        f"- {report['model']}, batch {args.batch_size} of 32x32x3"
        f"{', bfloat16 compute' if args.bf16 else ''}; the example's full train step "
        "(augmentation, forward, backward, SGD update).",
        f"- Minimum over {args.repeats} interleaved rounds; other processes kept "
        f"{load if load is not None else float('nan'):.2f} cores busy on average"
        + (" (**busy machine: rerun on a quiet one**)" if load and load > BUSY_CORES else "")
        + ".",
        "",
        "| head pooling | step (ms, min) | step (ms, median) | images/s | "
        f"overhead vs {reference} |",
        "|---|---|---|---|---|",
    ]
    for pool, result in results.items():
        lines.append(
            f"| {pool} | {result['min_ms']:.0f} | {result['median_ms']:.0f} | "
            f"{result['images_per_second']:.1f} | "
            f"{100 * result['overhead_vs_reference']:+.1f} % |"
        )
    lines.append("")
    rp.write_report("train_step", report, "\n".join(lines), out=args.out, quick=args.quick, log=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
