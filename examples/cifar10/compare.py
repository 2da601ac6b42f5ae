"""A fair comparison of poolings: every arm trained with the same seeds, paired statistics.

    python -m examples.cifar10.compare --compare max,avg,hybrid,attention --seeds 5
    python -m examples.cifar10.train --compare max,avg,hybrid,attention --seeds 5   # the same

Takes every option of ``examples.cifar10.train``. For each seed ``s`` and each arm (a
``--pool`` name) it trains one run into ``OUT/<arm>/seed-<s>/`` (resuming what an
interrupted comparison left). Seed ``s`` fixes the batch order and every augmentation key,
so all arms see identical data; initialisation is seeded by ``s`` too, but differs
between arms because their parameters differ.

Statistics use each run's test accuracy after the *final* epoch (not the best epoch, which
would select on the test set). Per arm: mean and standard deviation over seeds; against
the baseline arm: the mean of the per-seed paired differences with a 95 % confidence
interval from Student's t distribution with ``n - 1`` degrees of freedom (a paired t
interval; the pairing removes the between-seed variation both arms share). The t
quantile is computed here (:func:`student_t_quantile`) so the example needs no SciPy.

Outputs in ``OUT``: ``compare.md`` (the command, the settings and the tables),
``compare.csv`` (one row per arm), ``runs.csv`` (one row per arm and seed), and
``compare.png`` (per-seed accuracies with mean and 95 % CI per arm, and the paired
differences with their CIs).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import io
import math
import os
import pathlib
import platform
import shlex
import statistics
import sys
from collections.abc import Sequence
from typing import Any

if __name__ == "__main__" and not __package__:
    # Run by path (python examples/cifar10/compare.py): Python puts this file's folder first
    # on sys.path, not the working directory, so `examples` is not found (and this folder's
    # data.py and train.py could shadow other modules of those names). Put the repository's
    # root in its place, as `python -m examples.cifar10.compare` from the root has it.
    _here = pathlib.Path(__file__).resolve()
    if sys.path and pathlib.Path(sys.path[0] or ".").resolve() == _here.parent:
        sys.path[0] = str(_here.parents[2])
    else:  # python -P (safe path) adds no folder
        sys.path.insert(0, str(_here.parents[2]))

import jax

from examples.cifar10 import data, train

DEFAULT_ARMS = ("max", "avg", "hybrid", "attention")


# --------------------------------------------------------------------------- statistics


def _continued_fraction_beta(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz method)."""
    tiny, epsilon = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < epsilon:
            return fraction
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)``, the regularised incomplete beta function, for ``a, b > 0``.

    Example:
      >>> round(regularized_incomplete_beta(2.0, 3.0, 0.4), 10)   # 1 - 0.6**4 - 4*0.4*0.6**3
      0.5248
    """
    if not (a > 0 and b > 0):
        raise ValueError(f"regularized_incomplete_beta: need a > 0 and b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"regularized_incomplete_beta: x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    # The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _continued_fraction_beta(a, b, x) / a
    return 1.0 - math.exp(log_front) * _continued_fraction_beta(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t distribution with ``df > 0`` degrees of freedom.

    Example:
      >>> student_t_cdf(0.0, 4)
      0.5
    """
    if not df > 0:
        raise ValueError(f"student_t_cdf: df must be > 0, got {df}")
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t distribution (what ``scipy.stats.t.ppf`` gives).

    Bisection on :func:`student_t_cdf` to ~1e-12 relative precision.

    Args:
      p: probability in (0, 1).
      df: degrees of freedom, > 0.

    Returns:
      ``t`` with ``student_t_cdf(t, df) == p``.

    Raises:
      ValueError: if ``p`` is not in (0, 1) or ``df <= 0``.

    Example:
      >>> round(student_t_quantile(0.975, 4), 6)   # the 95 % two-sided value for 5 seeds
      2.776445
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"student_t_quantile: p must be in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"student_t_quantile: df must be > 0, got {df}")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:
        low, high = high, 2.0 * high
    for _ in range(200):
        middle = 0.5 * (low + high)
        if student_t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """Mean of per-seed differences ``arm - baseline`` with a t confidence interval.

    Attributes:
      mean: mean difference.
      std: sample standard deviation of the differences (``ddof=1``); NaN for one seed.
      n: number of seeds (pairs).
      low: lower end of the confidence interval (NaN for one seed).
      high: upper end of the confidence interval.
      confidence: the interval's confidence level, e.g. 0.95.
    """

    mean: float
    std: float
    n: int
    low: float
    high: float
    confidence: float

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely above or entirely below 0."""
        return self.low > 0 or self.high < 0


def paired_difference(
    values: Sequence[float], baseline: Sequence[float], *, confidence: float = 0.95
) -> PairedDifference:
    """Paired t confidence interval of ``mean(values - baseline)``.

    ``mean(d) ± t_{(1 + confidence) / 2, n - 1} * std(d, ddof=1) / sqrt(n)`` over the
    per-seed differences ``d_s = values[s] - baseline[s]``.

    Args:
      values: one number per seed for the arm.
      baseline: the baseline's number for the same seeds, in the same order.
      confidence: level of the two-sided interval, in (0, 1); default 0.95.

    Returns:
      A :class:`PairedDifference`.

    Raises:
      ValueError: if the lengths differ, there are no pairs, or ``confidence`` is out
        of range.

    Example:
      >>> d = paired_difference([0.91, 0.93, 0.92], [0.90, 0.90, 0.91])
      >>> round(d.mean, 4), round(d.low, 4), round(d.high, 4)
      (0.0167, -0.012, 0.0454)
    """
    if len(values) != len(baseline):
        raise ValueError(
            f"paired_difference: values and baseline must pair up, but have {len(values)} and "
            f"{len(baseline)} entries"
        )
    if not values:
        raise ValueError("paired_difference: no pairs")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"paired_difference: confidence must be in (0, 1), got {confidence}")
    differences = [float(v) - float(b) for v, b in zip(values, baseline, strict=True)]
    n = len(differences)
    mean = statistics.fmean(differences)
    if n < 2:
        return PairedDifference(mean, math.nan, n, math.nan, math.nan, confidence)
    std = statistics.stdev(differences)
    half_width = student_t_quantile((1.0 + confidence) / 2.0, n - 1) * std / math.sqrt(n)
    return PairedDifference(mean, std, n, mean - half_width, mean + half_width, confidence)


def mean_interval(values: Sequence[float], *, confidence: float = 0.95) -> tuple[float, float]:
    """Half-width-symmetric t confidence interval ``(low, high)`` of the mean of ``values``."""
    zeros = [0.0] * len(values)
    difference = paired_difference(values, zeros, confidence=confidence)
    return difference.low, difference.high


# ----------------------------------------------------------------------------- running


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One trained run of a comparison.

    Attributes:
      arm: the pooling name.
      seed: the seed.
      test_accuracy: test accuracy after the final epoch.
      best_test_accuracy: the best epoch's (for information only; not used in statistics).
      num_params: trainable parameters.
      images_per_second: median training throughput over the epochs.
      seconds: wall time of all epochs.
    """

    arm: str
    seed: int
    test_accuracy: float
    best_test_accuracy: float
    num_params: int
    images_per_second: float
    seconds: float


@dataclasses.dataclass(frozen=True)
class ArmSummary:
    """Statistics of one arm over the seeds; ``difference`` is against the baseline."""

    arm: str
    accuracies: tuple[float, ...]
    mean: float
    std: float
    difference: PairedDifference | None
    num_params: int
    images_per_second: float


def summarize(runs: Sequence[RunSummary], arms: Sequence[str], baseline: str,
              *, confidence: float = 0.95) -> list[ArmSummary]:
    """Per-arm statistics of ``runs``; seeds are paired across arms by their number.

    Raises:
      ValueError: if ``baseline`` is not an arm, or an arm lacks a seed another has.
    """
    if baseline not in arms:
        raise ValueError(f"baseline {baseline!r} is not one of the arms {', '.join(arms)}")
    by_arm = {arm: {run.seed: run for run in runs if run.arm == arm} for arm in arms}
    seeds = sorted(by_arm[baseline])
    for arm in arms:
        if sorted(by_arm[arm]) != seeds:
            raise ValueError(
                f"arm {arm!r} has seeds {sorted(by_arm[arm])} but the baseline {baseline!r} "
                f"has {seeds}; a paired comparison needs the same seeds in every arm"
            )
    baseline_accuracies = [by_arm[baseline][seed].test_accuracy for seed in seeds]
    summaries = []
    for arm in arms:
        arm_runs = [by_arm[arm][seed] for seed in seeds]
        accuracies = tuple(run.test_accuracy for run in arm_runs)
        summaries.append(ArmSummary(
            arm=arm,
            accuracies=accuracies,
            mean=statistics.fmean(accuracies),
            std=statistics.stdev(accuracies) if len(accuracies) > 1 else math.nan,
            difference=None if arm == baseline else paired_difference(
                accuracies, baseline_accuracies, confidence=confidence),
            num_params=arm_runs[0].num_params,
            images_per_second=statistics.median(run.images_per_second for run in arm_runs),
        ))
    return summaries


def run_comparison(
    config: train.TrainConfig,
    arms: Sequence[str],
    seeds: Sequence[int],
    out: os.PathLike | str,
    *,
    dataset: data.Dataset | None = None,
    progress: bool = True,
    quiet: bool = False,
) -> list[RunSummary]:
    """Trains every arm with every seed (seed-major order) into ``out/<arm>/seed-<s>``.

    A run already complete in its folder is read back, not retrained; a partial one is
    resumed; so an interrupted comparison can be restarted with the same command.

    Args:
      config: the settings shared by all runs (its ``pool`` and ``seed`` are replaced).
      arms: pooling names.
      seeds: seeds; every arm gets each of them.
      out: the comparison's folder.
      dataset: the data, already loaded (default: load ``config.dataset``).
      progress: progress bars.
      quiet: no per-epoch lines.

    Returns:
      One :class:`RunSummary` per run.
    """
    if dataset is None:
        dataset = data.load_dataset(config.dataset, data_dir=config.data_dir)
    out = pathlib.Path(out)
    runs = []
    for index, seed in enumerate(seeds):
        for arm in arms:
            if not quiet:
                print(f"== seed {seed} ({index + 1}/{len(seeds)}), arm {arm}", flush=True)
            result = train.train(
                dataclasses.replace(config, pool=arm, seed=seed),
                out=out / arm / f"seed-{seed}", resume=True, dataset=dataset,
                progress=progress, quiet=quiet,
            )
            history = result.history
            runs.append(RunSummary(
                arm=arm, seed=seed,
                test_accuracy=history[-1]["test_accuracy"],
                best_test_accuracy=max(row["test_accuracy"] for row in history),
                num_params=result.num_params,
                images_per_second=statistics.median(row["images_per_second"] for row in history),
                seconds=sum(row["seconds"] for row in history),
            ))
    return runs


# ------------------------------------------------------------------------------ reports


def _percent(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.{digits}f}"


def _signed_percent(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:+.{digits}f}"


def verdict(summary: ArmSummary, baseline: str) -> str:
    """One sentence on what the paired interval says about ``summary.arm`` vs the baseline."""
    difference = summary.difference
    if difference is None:
        return "baseline"
    if difference.n < 2:
        return "one seed: no interval"
    if not difference.excludes_zero:
        return f"no detectable difference from {baseline} (the CI includes 0)"
    direction = "better" if difference.mean > 0 else "worse"
    return f"{direction} than {baseline} (the CI excludes 0)"


def markdown_report(summaries: Sequence[ArmSummary], runs: Sequence[RunSummary], *,
                    baseline: str, command: str, config: train.TrainConfig,
                    dataset_description: str) -> str:
    """The text of ``compare.md``."""
    seeds = sorted({run.seed for run in runs})
    confidence = next((s.difference.confidence for s in summaries if s.difference), 0.95)
    level = f"{100 * confidence:.0f} %"
    lines = [
        "# Pooling comparison",
        "",
        "Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"- Data: {dataset_description}.",
        f"- Model: `{config.model}`, width {config.width}; {config.epochs} epochs, batch "
        f"{config.batch_size}, {config.optimizer} lr {config.lr:g} ({config.schedule}), "
        f"weight decay {config.weight_decay:g}, crop padding {config.crop_padding}, "
        f"flip {'on' if config.flip else 'off'}{', bfloat16' if config.bf16 else ''}.",
        f"- Seeds {', '.join(map(str, seeds))} in every arm (same data order and augmentation "
        "per seed).",
        f"- Accuracy: test accuracy after the **final** epoch (not the best epoch), in %; "
        f"mean ± sample std over the {len(seeds)} seeds.",
        f"- Δ vs {baseline}: mean of the per-seed paired differences (percentage points) with "
        f"a {level} Student-t confidence interval ({len(seeds) - 1} degrees of freedom).",
        f"- Generated {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}"
        f" on {platform.machine()} with {jax.device_count()} {jax.devices()[0].platform} "
        f"device(s), jax {jax.__version__}.",
        "",
        f"| pooling | test accuracy % (mean ± std) | Δ vs {baseline} (pp) | {level} CI (pp) | "
        "verdict | parameters | images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for summary in summaries:
        difference = summary.difference
        interval = (f"[{_signed_percent(difference.low)}, {_signed_percent(difference.high)}]"
                    if difference else "—")
        lines.append(
            f"| {summary.arm} | {_percent(summary.mean)} ± {_percent(summary.std)} | "
            f"{_signed_percent(difference.mean) if difference else '—'} | {interval} | "
            f"{verdict(summary, baseline)} | {summary.num_params:,} | "
            f"{summary.images_per_second:,.0f} |"
        )
    by_arm = {summary.arm: summary for summary in summaries}
    lines += [
        "",
        f"Every pair (row minus column, paired over seeds; {level} t intervals, not corrected "
        "for multiple comparisons):",
        "",
        "| difference (pp) | Δ | CI |",
        "|---|---|---|",
    ]
    for first_index, first in enumerate(summaries):
        for second in summaries[first_index + 1:]:
            pair = paired_difference(first.accuracies, by_arm[second.arm].accuracies,
                                     confidence=confidence)
            lines.append(f"| {first.arm} − {second.arm} | {_signed_percent(pair.mean)} | "
                         f"[{_signed_percent(pair.low)}, {_signed_percent(pair.high)}] |")
    lines += [
        "",
        "Per seed (final-epoch test accuracy, %):",
        "",
        "| pooling | " + " | ".join(f"seed {seed}" for seed in seeds) + " |",
        "|---|" + "---|" * len(seeds),
    ]
    for summary in summaries:
        lines.append(f"| {summary.arm} | "
                     + " | ".join(_percent(value) for value in summary.accuracies) + " |")
    lines += [
        "",
        "images/s is the median over epochs and seeds of the training throughput on this "
        "machine (shared with other work, so only roughly comparable between arms).",
        "",
    ]
    return "\n".join(lines)


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def summary_csv(summaries: Sequence[ArmSummary], baseline: str) -> str:
    """The text of ``compare.csv``: one row per arm, accuracies as fractions."""
    rows = []
    for s in summaries:
        d = s.difference
        rows.append([
            s.arm, len(s.accuracies), f"{s.mean:.6f}", f"{s.std:.6f}", baseline,
            "" if d is None else f"{d.mean:.6f}", "" if d is None else f"{d.std:.6f}",
            "" if d is None else f"{d.low:.6f}", "" if d is None else f"{d.high:.6f}",
            "" if d is None else f"{d.confidence:g}", s.num_params, f"{s.images_per_second:.1f}",
            " ".join(f"{value:.6f}" for value in s.accuracies),
        ])
    return _csv_text(
        ["pool", "seeds", "mean_test_accuracy", "std_test_accuracy", "baseline",
         "paired_difference_mean", "paired_difference_std", "ci_low", "ci_high", "confidence",
         "num_params", "images_per_second", "per_seed_test_accuracy"], rows)


def runs_csv(runs: Sequence[RunSummary]) -> str:
    """The text of ``runs.csv``: one row per arm and seed."""
    fields = [field.name for field in dataclasses.fields(RunSummary)]
    return _csv_text(fields, [[getattr(run, name) for name in fields] for run in runs])


def plot_comparison(path: pathlib.Path, summaries: Sequence[ArmSummary], baseline: str,
                    title: str) -> None:
    """``compare.png``: accuracies per seed with mean ± CI, and paired differences ± CI."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    def spread(position: float, count: int) -> list[float]:
        # Seeds side by side (accuracies on a small test set repeat exactly).
        return [position - 0.15 + 0.3 * i / max(1, count - 1) for i in range(count)]

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    baseline_accuracies = next(s.accuracies for s in summaries if s.arm == baseline)
    for position, summary in enumerate(summaries):
        left.scatter(spread(position, len(summary.accuracies)),
                     [100 * a for a in summary.accuracies], s=18, alpha=0.6,
                     color="tab:blue", label="one seed" if position == 0 else None)
        low, high = mean_interval(summary.accuracies)
        if not math.isnan(low):
            left.errorbar([position + 0.3], [100 * summary.mean],
                          yerr=[[100 * (summary.mean - low)], [100 * (high - summary.mean)]],
                          fmt="o", color="black", capsize=4,
                          label="mean ± 95 % CI" if position == 0 else None)
    left.set_xticks(range(len(summaries)), [s.arm for s in summaries])
    left.set(ylabel="final test accuracy (%)", title="accuracy per seed")
    left.legend(fontsize=8)
    others = [s for s in summaries if s.difference is not None]
    for position, summary in enumerate(others):
        d = summary.difference
        right.scatter(spread(position, len(summary.accuracies)),
                      [100 * (a - b) for a, b in
                       zip(summary.accuracies, baseline_accuracies, strict=True)],
                      s=18, alpha=0.6, color="tab:orange",
                      label="one seed" if position == 0 else None)
        if not math.isnan(d.low):
            right.errorbar([position + 0.3], [100 * d.mean],
                           yerr=[[100 * (d.mean - d.low)], [100 * (d.high - d.mean)]],
                           fmt="o", color="black", capsize=4,
                           label="mean ± 95 % CI" if position == 0 else None)
    right.axhline(0.0, color="grey", linewidth=1)
    if others:
        right.legend(fontsize=8)
    right.set_xticks(range(len(others)), [s.arm for s in others])
    right.set(ylabel=f"paired Δ vs {baseline} (pp)",
              title=f"difference from {baseline}: seeds and mean ± 95 % CI")
    for axes in (left, right):
        axes.grid(alpha=0.3, axis="y")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    train.write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=110), binary=True)
    plt.close(figure)


def write_reports(out: pathlib.Path, runs: Sequence[RunSummary], arms: Sequence[str],
                  baseline: str, *, command: str, config: train.TrainConfig,
                  dataset_description: str) -> list[ArmSummary]:
    """Writes compare.md, compare.csv, runs.csv and compare.png into ``out`` atomically."""
    summaries = summarize(runs, arms, baseline)
    out.mkdir(parents=True, exist_ok=True)
    report = markdown_report(summaries, runs, baseline=baseline, command=command, config=config,
                             dataset_description=dataset_description)
    train.write_atomically(out / "compare.md", lambda f: f.write(report))
    train.write_atomically(out / "compare.csv", lambda f: f.write(summary_csv(summaries, baseline)))
    train.write_atomically(out / "runs.csv", lambda f: f.write(runs_csv(runs)))
    plot_comparison(out / "compare.png", summaries, baseline,
                    f"{config.model} width {config.width} on {config.dataset}, {config.epochs} "
                    f"epochs, {len({r.seed for r in runs})} seeds")
    return summaries


# ---------------------------------------------------------------------------------- CLI


def main_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace,
                   argv: Sequence[str] | None = None) -> int:
    """Runs the comparison described by parsed ``train`` arguments (``--compare`` set)."""
    arms = tuple(args.compare)
    if args.baseline not in arms:
        parser.error(f"--baseline {args.baseline!r} must be one of the compared poolings "
                     f"({', '.join(arms)})")
    seeds = list(range(args.seed, args.seed + args.seeds))
    if args.seeds < 2:
        print("warning: with one seed there is no confidence interval", file=sys.stderr)
    try:
        config = train.config_from_args(args)
        dataset = data.load_dataset(config.dataset, data_dir=config.data_dir)
        default_out = os.path.join("runs", f"compare-{config.dataset}-{config.model}")
        out = pathlib.Path(args.out or default_out)
        runs = run_comparison(config, arms, seeds, out, dataset=dataset,
                              progress=not args.no_progress)
    except (ValueError, TypeError, data.DatasetUnavailableError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    resolved = train.resolve_config(config, dataset)
    command = "python -m examples.cifar10.compare " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    if jax.process_index() == 0:
        write_reports(out, runs, arms, args.baseline, command=command, config=resolved,
                      dataset_description=dataset.description)
        print((out / "compare.md").read_text())
        print(f"outputs in {out}: compare.md, compare.csv, runs.csv, compare.png")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m examples.cifar10.compare`` (``--compare`` defaults to
    max,avg,hybrid,attention)."""
    parser = train.build_parser()
    parser.prog = "python -m examples.cifar10.compare"
    parser.set_defaults(compare=DEFAULT_ARMS)
    args = parser.parse_args(argv)
    join = train.distributed_options(parser, args)
    if join is not None:
        train.initialize_distributed(parser, **join)
    return main_from_args(parser, args, argv)


if __name__ == "__main__":
    sys.exit(main())
