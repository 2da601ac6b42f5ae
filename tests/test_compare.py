"""Tests of examples/cifar10/compare.py: the paired t intervals (against published table
values and SciPy's paired t test), the summaries and reports, a tiny comparison through
the command line, and resuming one from the runs' config.json and metrics.jsonl alone.
"""

import csv
import dataclasses
import io
import math
import shutil

import numpy as np
import pytest
from scipy import stats

from examples.cifar10 import checkpoints, compare, data, train
from tests.example_helpers import LAUNCHES, run_cli

# Two-sided 95 % critical values t_{0.975, df} from any statistics table.
T_TABLE_975 = {1: 12.706205, 2: 4.302653, 4: 2.776445, 9: 2.262157}


@pytest.mark.parametrize(("df", "critical"), sorted(T_TABLE_975.items()))
def test_the_interval_uses_the_t_table(df, critical):
    differences = np.linspace(-1.0, 2.0, df + 1)
    result = compare.paired_difference(differences, np.zeros(df + 1))
    half = critical * differences.std(ddof=1) / math.sqrt(df + 1)
    assert (result.low, result.high) == pytest.approx((differences.mean() - half,
                                                       differences.mean() + half), abs=1e-6)


def test_paired_difference_is_scipys_paired_t_interval():
    arm, baseline = [0.912, 0.905, 0.921, 0.899, 0.915], [0.901, 0.903, 0.907, 0.898, 0.906]
    result = compare.paired_difference(arm, baseline)
    assert result.mean == pytest.approx(np.mean(np.subtract(arm, baseline)), abs=1e-15)
    assert result.std == pytest.approx(np.std(np.subtract(arm, baseline), ddof=1), rel=1e-12)
    low, high = stats.ttest_rel(arm, baseline).confidence_interval(0.95)
    assert (result.low, result.high) == pytest.approx((low, high), abs=1e-12)
    assert result.n == 5 and result.low > 0


def test_paired_difference_edge_cases():
    single = compare.paired_difference([0.9], [0.8])
    assert single.mean == pytest.approx(0.1) and math.isnan(single.low) and math.isnan(single.std)
    constant = compare.paired_difference([0.9, 0.8], [0.8, 0.7])
    assert (constant.low, constant.high) == pytest.approx((0.1, 0.1))
    straddling = compare.paired_difference([0.9, 0.8, 0.85], [0.85] * 3)
    assert straddling.low < 0 < straddling.high
    with pytest.raises(ValueError, match="must pair up, but have 2 and 3 entries"):
        compare.paired_difference([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 95"):
        compare.paired_difference([0.1, 0.2], [0.1, 0.2], confidence=95)


def _runs(accuracies: dict[str, list[float]]) -> list[compare.RunSummary]:
    return [compare.RunSummary(arm, seed, value, value, 1000 + len(arm), 100.0, 1.0)
            for arm, values in accuracies.items() for seed, value in enumerate(values)]


ACCURACIES = {"max": [0.90, 0.91, 0.92], "hybrid": [0.92, 0.935, 0.95], "avg": [0.89, 0.91, 0.91]}


def test_summarize_pairs_by_seed():
    by_arm = {s.arm: s for s in compare.summarize(_runs(ACCURACIES), ["max", "hybrid", "avg"],
                                                  "max")}
    assert by_arm["max"].difference is None and by_arm["hybrid"].mean == pytest.approx(0.935)
    assert by_arm["hybrid"].difference.mean == pytest.approx(0.025)
    assert compare.verdict(by_arm["hybrid"], "max").startswith("better than max")
    assert "includes 0" in compare.verdict(by_arm["avg"], "max")
    with pytest.raises(ValueError, match=r"arm 'avg' has seeds \[0, 1\] but the baseline 'max' "
                                         r"has \[0, 1, 2\]"):
        compare.summarize(_runs(ACCURACIES)[:-1], ["max", "hybrid", "avg"], "max")
    with pytest.raises(ValueError, match="baseline 'gem' is not one of the arms"):
        compare.summarize(_runs(ACCURACIES), ["max", "hybrid", "avg"], "gem")


def test_reports(tmp_path):
    config = train.resolve_config(train.TrainConfig(), data.load_digits())
    compare.write_reports(tmp_path, _runs(ACCURACIES), ["max", "hybrid", "avg"], "max",
                          command="python -m examples.cifar10.compare --seeds 3",
                          config=config, dataset_description="digits")
    markdown = (tmp_path / "compare.md").read_text()
    assert "python -m examples.cifar10.compare --seeds 3" in markdown
    assert "after the **final** epoch" in markdown and "(2 degrees of freedom)" in markdown
    assert "| hybrid | 93.50 ± 1.50 | +2.50 | [+1.26, +3.74] | better than max" in markdown
    assert "| hybrid − avg | +3.17 |" in markdown and "Every seed's accuracy is in runs.csv" in markdown
    rows = list(csv.DictReader(io.StringIO((tmp_path / "compare.csv").read_text())))
    assert [row["pool"] for row in rows] == ["max", "hybrid", "avg"] and rows[0]["ci_low"] == ""
    assert float(rows[1]["paired_difference_mean"]) == pytest.approx(0.025)
    assert (rows[1]["confidence"], rows[2]["per_seed_test_accuracy"]) == (
        "0.95", "0.890000 0.910000 0.910000")
    runs = list(csv.DictReader(io.StringIO((tmp_path / "runs.csv").read_text())))
    assert len(runs) == 9 and runs[0] == {"arm": "max", "seed": "0", "test_accuracy": "0.9",
                                          "best_test_accuracy": "0.9", "num_params": "1003",
                                          "images_per_second": "100.0", "seconds": "1.0"}
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"


ARGUMENTS = ["--compare", "max,avg", "--seeds", "2", "--dataset", "digits", "--width", "2",
             "--epochs", "1", "--batch-size", "256", "--no-progress", "--fast-compile"]


def test_comparison_end_to_end_and_resumed_from_two_files_per_run(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert compare.main([*ARGUMENTS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| avg |" in printed and "outputs in" in printed and printed.count("== seed") == 4
    assert sorted(path.name for path in out.iterdir()) == [
        "avg", "compare.csv", "compare.md", "compare.png", "max", "runs.csv"]
    runs = (out / "runs.csv").read_text()
    # The same seed gives every arm the same augmentation stream and data order.
    config = train.TrainConfig(width=2, epochs=1, batch_size=256, seed=1, fast_compile=True)
    states = {arm: train.train(dataclasses.replace(config, pool=arm), out=out / arm / "seed-1",
                               resume=True, quiet=True).state for arm in ("max", "avg")}
    np.testing.assert_array_equal(states["max"].rng, states["avg"].rng)
    # A session with each run's config.json and metrics.jsonl but no checkpoints (what is
    # committed) trains nothing: it reports the same numbers against another baseline.
    kept = tmp_path / "kept"
    for arm in ("max", "avg"):
        for seed in (0, 1):
            (kept / arm / f"seed-{seed}").mkdir(parents=True)
            for name in (train.CONFIG_FILE, train.METRICS_FILE):
                shutil.copy(out / arm / f"seed-{seed}" / name, kept / arm / f"seed-{seed}" / name)
    assert compare.main([*ARGUMENTS, "--out", str(kept), "--baseline", "avg"]) == 0
    printed = capsys.readouterr().out
    assert printed.count(": finished (test accuracy ") == 4 and "epoch   1/1" not in printed
    assert (kept / "runs.csv").read_text() == runs and "Δ vs avg" in printed
    assert not list(kept.glob("*/*/checkpoints"))
    # A run of other settings, or an unfinished one, is trained (and resumed) again.
    metrics = kept / "max" / "seed-1" / train.METRICS_FILE
    metrics.write_text(metrics.read_text().replace('"epoch": 1', '"epoch": 0'))
    assert compare.finished_run(kept / "max" / "seed-1", train.resolve_config(
        dataclasses.replace(config, pool="max"), data.load_digits())) is None
    assert compare.finished_run(kept / "avg" / "seed-1", train.resolve_config(
        dataclasses.replace(config, pool="avg", lr=0.2), data.load_digits())) is None
    assert compare.main([*ARGUMENTS, "--out", str(kept)]) == 0
    assert capsys.readouterr().out.count(": finished (test accuracy ") == 3
    accuracies = lambda text: [line.split(",")[:5] for line in text.splitlines()]  # noqa: E731
    assert accuracies((kept / "runs.csv").read_text()) == accuracies(runs)  # not the timings
    assert [row["epoch"] for row in checkpoints.read_lines(metrics)] == [1]


@pytest.mark.parametrize("launch", sorted(LAUNCHES))
def test_cli_help_by_module_and_by_path(launch, tmp_path):
    completed = run_cli("compare", launch, ["--help"], tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.startswith("usage: ") and "--baseline" in completed.stdout


def test_comparison_by_path_from_another_folder(tmp_path):
    completed = run_cli("compare", "path-elsewhere", [*ARGUMENTS[:3], "1", *ARGUMENTS[4:],
                                                      "--out", tmp_path / "cmp"], tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "| avg |" in completed.stdout and "warning: with one seed" in completed.stderr
    assert sorted(path.name for path in (tmp_path / "cmp").iterdir()) == [
        "avg", "compare.csv", "compare.md", "compare.png", "max", "runs.csv"]


def test_the_docstring_examples_run():
    import doctest

    assert doctest.testmod(compare).failed == 0 and doctest.testmod(compare).attempted >= 1
