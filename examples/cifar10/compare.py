"""A fair comparison of poolings: every arm trained with the same seeds, paired statistics.

    python -m examples.cifar10.compare --compare max,avg,hybrid,attention --seeds 5

Seed ``s`` of each arm (a ``--pool``) trains into ``OUT/<arm>/seed-<s>/`` on every arm's
data order and augmentation. A run whose ``config.json`` matches and whose ``metrics.jsonl``
has every epoch is read back, checkpoints or not (commit those two files, and another
session resumes the rest). Scores: final-epoch test accuracies; against the baseline,
paired differences with their 95 % Student-t interval.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import math
import os
import pathlib
import platform
import shlex
import statistics
import sys
from collections.abc import Sequence

if __name__ == "__main__" and not __package__:
    # Run by path, this folder is first on sys.path (not with -P): the root takes its place.
    _folder = pathlib.Path(__file__).resolve().parent
    _first = bool(sys.path) and pathlib.Path(sys.path[0] or ".").resolve() == _folder
    sys.path[:int(_first)] = [str(_folder.parents[1])]

import jax
from scipy import stats

from examples.cifar10 import checkpoints, data, train


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """Mean and std of ``n`` paired differences; the confidence interval of the mean."""

    mean: float
    std: float
    n: int
    low: float
    high: float
    confidence: float



def paired_difference(values: Sequence[float], baseline: Sequence[float], *,
                      confidence: float = 0.95) -> PairedDifference:
    """The paired t interval ``mean(d) ± t_{(1 + c) / 2, n - 1} std(d) / sqrt(n)`` of the
    differences ``d_s = values[s] - baseline[s]``.

    Example:
      >>> d = paired_difference([0.91, 0.93, 0.92], [0.90, 0.90, 0.91])
      >>> round(d.mean, 4), round(d.low, 4), round(d.high, 4)
      (0.0167, -0.012, 0.0454)
    """
    if len(values) != len(baseline) or len(values) == 0 or not 0.0 < confidence < 1.0:
        raise ValueError(f"paired_difference: values and baseline must pair up, but have "
                         f"{len(values)} and {len(baseline)} entries, and confidence must be "
                         f"in (0, 1), got {confidence}")
    differences = [float(v) - float(b) for v, b in zip(values, baseline, strict=True)]
    n, mean = len(differences), statistics.fmean(differences)
    std = statistics.stdev(differences) if n > 1 else math.nan
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, max(n - 1, 1))) * std / math.sqrt(n)
    return PairedDifference(mean, std, n, mean - half, mean + half, confidence)


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """A run: its final (and best) test accuracy, parameters, median images/s and seconds."""

    arm: str
    seed: int
    test_accuracy: float
    best_test_accuracy: float
    num_params: int
    images_per_second: float
    seconds: float


@dataclasses.dataclass(frozen=True)
class ArmSummary:
    """An arm over the seeds; ``difference`` is from the baseline (None for it)."""

    arm: str
    accuracies: tuple[float, ...]
    mean: float
    std: float
    difference: PairedDifference | None
    num_params: int
    images_per_second: float


def summarize(runs: Sequence[RunSummary], arms: Sequence[str], baseline: str) -> list[ArmSummary]:
    """Per-arm statistics of ``runs``, seeds paired across arms by their number."""
    if baseline not in arms:
        raise ValueError(f"baseline {baseline!r} is not one of the arms {', '.join(arms)}")
    by_arm = {arm: {run.seed: run for run in runs if run.arm == arm} for arm in arms}
    seeds = sorted(by_arm[baseline])
    summaries = []
    for arm in arms:
        if sorted(by_arm[arm]) != seeds:
            raise ValueError(f"arm {arm!r} has seeds {sorted(by_arm[arm])} but the baseline "
                             f"{baseline!r} has {seeds}; a paired comparison needs the same "
                             "seeds in every arm")
        arm_runs = [by_arm[arm][seed] for seed in seeds]
        accuracies = tuple(run.test_accuracy for run in arm_runs)
        summaries.append(ArmSummary(
            arm, accuracies, statistics.fmean(accuracies),
            statistics.stdev(accuracies) if len(accuracies) > 1 else math.nan,
            None if arm == baseline else paired_difference(
                accuracies, [by_arm[baseline][seed].test_accuracy for seed in seeds]),
            arm_runs[0].num_params, statistics.median(run.images_per_second for run in arm_runs)))
    return summaries


def finished_run(folder: pathlib.Path, config: train.TrainConfig) -> tuple[list, int] | None:
    """``(history, num_params)`` of the finished run of ``config`` in ``folder``, or None."""
    try:
        saved = json.loads((folder / train.CONFIG_FILE).read_text())
        history = checkpoints.read_lines(folder / train.METRICS_FILE)
    except (OSError, ValueError):
        return None
    finished = [row.get("epoch") for row in history] == list(range(1, config.epochs + 1))
    return (history, saved["num_params"]) if finished and not train.settings_differences(
        saved, config) else None


def run_comparison(config: train.TrainConfig, arms: Sequence[str], seeds: Sequence[int],
                   out: os.PathLike | str, *, dataset: data.Dataset | None = None,
                   progress: bool = True, quiet: bool = False) -> list[RunSummary]:
    """Trains, reads back or resumes every arm with every seed into ``out/<arm>/seed-<s>``."""
    dataset = dataset or data.load_dataset(config.dataset, data_dir=config.data_dir)
    runs = []
    for index, seed in enumerate(seeds):
        for arm in arms:
            run_config = train.resolve_config(dataclasses.replace(config, pool=arm, seed=seed),
                                              dataset)
            folder = pathlib.Path(out) / arm / f"seed-{seed}"
            finished = finished_run(folder, run_config)
            train.log(f"== seed {seed} ({index + 1}/{len(seeds)}), arm {arm}" + (
                f": finished (test accuracy {finished[0][-1]['test_accuracy']:.4f} in "
                f"{folder / train.METRICS_FILE})" if finished else ""), quiet)
            if finished is None:
                result = train.train(run_config, out=folder, resume=True, dataset=dataset,
                                     progress=progress, quiet=quiet)
                finished = result.history, result.num_params
            history, num_params = finished
            runs.append(RunSummary(
                arm, seed, history[-1]["test_accuracy"],
                max(row["test_accuracy"] for row in history), num_params,
                statistics.median(row["images_per_second"] for row in history),
                sum(row["seconds"] for row in history)))
    return runs


def _percent(value: float, sign: str = "") -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:{sign}.2f}"


def _interval(d: PairedDifference) -> str:
    return f"[{_percent(d.low, '+')}, {_percent(d.high, '+')}]"


def verdict(summary: ArmSummary, baseline: str) -> str:
    """What the paired interval says about ``summary.arm`` against the baseline."""
    d = summary.difference
    if d is None or d.n < 2:
        return "baseline" if d is None else "one seed: no interval"
    if d.low <= 0 <= d.high:
        return f"no detectable difference from {baseline} (the CI includes 0)"
    return f"{'better' if d.mean > 0 else 'worse'} than {baseline} (the CI excludes 0)"


def markdown_report(summaries: Sequence[ArmSummary], runs: Sequence[RunSummary], *,
                    baseline: str, command: str, config: train.TrainConfig,
                    dataset_description: str) -> str:
    """The text of ``compare.md``."""
    seeds = sorted({run.seed for run in runs})
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    lines = [
        "# Pooling comparison", "", "Command:", "", "```bash", command, "```", "",
        f"- Data: {dataset_description}.",
        f"- Model: `{config.model}`, width {config.width}; {config.epochs} epochs, batch "
        f"{config.batch_size}, {config.optimizer} lr {config.lr:g} ({config.schedule}), weight "
        f"decay {config.weight_decay:g}, crop padding {config.crop_padding}, flip "
        f"{'on' if config.flip else 'off'}{', bfloat16' if config.bf16 else ''}.",
        f"- Seeds {', '.join(map(str, seeds))} in every arm (same data order and augmentation "
        "per seed).",
        "- Accuracy: test accuracy after the **final** epoch (not the best epoch), in %; mean ± "
        f"sample std over the {len(seeds)} seeds.",
        f"- Δ vs {baseline}: mean of the per-seed paired differences (percentage points) with a "
        f"95 % Student-t confidence interval ({len(seeds) - 1} degrees of freedom).",
        f"- Generated {now} on {platform.machine()} with {jax.device_count()} "
        f"{jax.devices()[0].platform} device(s), jax {jax.__version__}.", "",
        f"| pooling | test accuracy % (mean ± std) | Δ vs {baseline} (pp) | 95 % CI (pp) | "
        "verdict | parameters | images/s |", "|---|---|---|---|---|---|---|"]
    for s in summaries:
        d = s.difference
        lines.append(f"| {s.arm} | {_percent(s.mean)} ± {_percent(s.std)} | "
                     f"{_percent(d.mean, '+') if d else '—'} | {_interval(d) if d else '—'} | "
                     f"{verdict(s, baseline)} | {s.num_params:,} | {s.images_per_second:,.0f} |")
    lines += ["", "Every pair (row minus column, paired over seeds; 95 % t intervals, not "
              "corrected for multiple comparisons):", "", "| difference (pp) | Δ | CI |",
              "|---|---|---|"]
    lines += [f"| {first.arm} − {second.arm} | {_percent(pair.mean, '+')} | {_interval(pair)} |"
              for index, first in enumerate(summaries) for second in summaries[index + 1:]
              for pair in [paired_difference(first.accuracies, second.accuracies)]]
    return "\n".join([*lines, "", "Every seed's accuracy is in runs.csv. images/s is the median "
                      "over epochs and seeds of the training throughput on this machine (shared "
                      "with other work, so only roughly comparable between arms).", ""])


def _csv(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    return buffer.getvalue()


def summary_csv(summaries: Sequence[ArmSummary], baseline: str) -> str:
    """The text of ``compare.csv``: a row per arm, accuracies as fractions."""
    return _csv(
        ["pool", "seeds", "mean_test_accuracy", "std_test_accuracy", "baseline",
         "paired_difference_mean", "paired_difference_std", "ci_low", "ci_high", "confidence",
         "num_params", "images_per_second", "per_seed_test_accuracy"],
        [[s.arm, len(s.accuracies), f"{s.mean:.6f}", f"{s.std:.6f}", baseline,
          *(["", "", "", "", ""] if s.difference is None else
            [*(f"{getattr(s.difference, name):.6f}" for name in ("mean", "std", "low", "high")),
             f"{s.difference.confidence:g}"]),
          s.num_params, f"{s.images_per_second:.1f}", " ".join(f"{a:.6f}" for a in s.accuracies)]
         for s in summaries])


def plot_comparison(path: pathlib.Path, summaries: Sequence[ArmSummary], baseline: str,
                    title: str) -> None:
    """``compare.png``: accuracies and paired differences per seed, with means ± 95 % CI."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, nothing to close

    figure = Figure(figsize=(11, 4.2))
    panels = figure.subplots(1, 2)
    reference = next(s.accuracies for s in summaries if s.arm == baseline)
    for ax, shown, subtract, color in (
            (panels[0], summaries, 0, "tab:blue"),
            (panels[1], [s for s in summaries if s.difference], 1, "tab:orange")):
        for position, summary in enumerate(shown):
            points = [a - subtract * b for a, b in zip(summary.accuracies, reference, strict=True)]
            ax.scatter([position - 0.15 + 0.3 * i / max(1, len(points) - 1)  # seeds side by side
                        for i in range(len(points))], [100 * p for p in points], s=18, alpha=0.6,
                       color=color, label="one seed" if position == 0 else None)
            d = paired_difference(points, [0.0] * len(points))
            if not math.isnan(d.low):
                ax.errorbar([position + 0.3], [100 * d.mean], fmt="o", color="black", capsize=4,
                            yerr=[[100 * (d.mean - d.low)], [100 * (d.high - d.mean)]],
                            label="mean ± 95 % CI" if position == 0 else None)
        ax.set_xticks(range(len(shown)), [s.arm for s in shown])
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    panels[0].set(ylabel="final test accuracy (%)", title="accuracy per seed")
    panels[1].axhline(0.0, color="grey", linewidth=1)
    panels[1].set(ylabel=f"paired Δ vs {baseline} (pp)",
                  title=f"difference from {baseline}: seeds and mean ± 95 % CI")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    checkpoints.write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=110),
                                 binary=True)


def write_reports(out: pathlib.Path, runs: Sequence[RunSummary], arms: Sequence[str],
                  baseline: str, *, command: str, config: train.TrainConfig,
                  dataset_description: str) -> list[ArmSummary]:
    """Writes ``compare.md``, ``compare.csv``, ``runs.csv`` and ``compare.png`` into ``out``."""
    summaries = summarize(runs, arms, baseline)
    fields = [field.name for field in dataclasses.fields(RunSummary)]
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("compare.md", markdown_report(
            summaries, runs, baseline=baseline, command=command, config=config,
            dataset_description=dataset_description)),
            ("compare.csv", summary_csv(summaries, baseline)),
            ("runs.csv", _csv(fields, [[getattr(run, name) for name in fields] for run in runs]))):
        checkpoints.write_atomically(out / name, lambda file, text=text: file.write(text))
    plot_comparison(out / "compare.png", summaries, baseline,
                    f"{config.model} width {config.width} on {config.dataset}, {config.epochs} "
                    f"epochs, {len({run.seed for run in runs})} seeds")
    return summaries


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m examples.cifar10.compare`` (and of ``train --compare``)."""
    parser = train.build_parser()
    parser.prog = "python -m examples.cifar10.compare"
    parser.set_defaults(compare=("max", "avg", "hybrid", "attention"))
    args = parser.parse_args(argv)
    train.join_distributed(parser, args)
    if args.baseline not in args.compare:
        parser.error(f"--baseline {args.baseline!r} must be one of the compared poolings "
                     f"({', '.join(args.compare)})")
    if args.seeds < 2:
        print("warning: with one seed there is no confidence interval", file=sys.stderr)
    try:
        config = train.config_from_args(args)
        dataset = data.load_dataset(config.dataset, data_dir=config.data_dir)
        out = pathlib.Path(args.out or f"runs/compare-{config.dataset}-{config.model}")
        runs = run_comparison(config, args.compare, range(args.seed, args.seed + args.seeds),
                              out, dataset=dataset, progress=not args.no_progress)
    except (ValueError, TypeError, data.DatasetUnavailableError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    if jax.process_index() == 0:
        command = shlex.join(sys.argv[1:] if argv is None else argv)
        write_reports(out, runs, args.compare, args.baseline,
                      command=f"python -m examples.cifar10.compare {command}",
                      config=train.resolve_config(config, dataset),
                      dataset_description=dataset.description)
        print((out / "compare.md").read_text())
        print(f"outputs in {out}: compare.md, compare.csv, runs.csv, compare.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
