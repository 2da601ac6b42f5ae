"""Tests of examples/cifar10/compare.py: the t quantile and paired confidence intervals
(against SciPy where it is installed, and against published table values), the summaries
and reports, and a tiny end-to-end comparison through the CLI.
"""

import csv
import dataclasses
import io
import math

import numpy as np
import pytest

from examples.cifar10 import compare, data, train
from tests.helpers import LAUNCHES, run_cli

# Two-sided 95 % critical values t_{0.975, df} from any statistics table.
T_TABLE_975 = {1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445, 9: 2.262157, 29: 2.045230}


@pytest.mark.parametrize(("df", "expected"), sorted(T_TABLE_975.items()))
def test_t_quantile_matches_the_table(df, expected):
    assert compare.student_t_quantile(0.975, df) == pytest.approx(expected, abs=5e-7)
    assert compare.student_t_quantile(0.025, df) == pytest.approx(-expected, abs=5e-7)


def test_t_quantile_and_cdf_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 7, 19, 100, 2.5):
        for p in (0.5, 0.6, 0.9, 0.95, 0.975, 0.995, 0.9999, 0.01):
            assert compare.student_t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df),
                                                                      rel=1e-9, abs=1e-10)
        for t in (-30.0, -2.0, -0.3, 0.0, 0.7, 4.0):
            assert compare.student_t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df),
                                                                 rel=1e-10, abs=1e-14)


def test_incomplete_beta_matches_scipy():
    special = pytest.importorskip("scipy.special")
    for a, b, x in [(0.5, 0.5, 0.3), (2.0, 3.0, 0.4), (10.0, 0.5, 0.99), (0.5, 50.0, 0.001)]:
        assert compare.regularized_incomplete_beta(a, b, x) == pytest.approx(
            special.betainc(a, b, x), rel=1e-11)


def test_paired_difference_on_known_numbers():
    arm = [0.912, 0.905, 0.921, 0.899, 0.915]
    baseline = [0.901, 0.903, 0.907, 0.898, 0.906]
    result = compare.paired_difference(arm, baseline)
    differences = np.subtract(arm, baseline)
    assert result.mean == pytest.approx(differences.mean(), abs=1e-15)
    assert result.std == pytest.approx(differences.std(ddof=1), rel=1e-12)
    half = T_TABLE_975[4] * differences.std(ddof=1) / math.sqrt(5)
    assert (result.low, result.high) == pytest.approx((result.mean - half, result.mean + half),
                                                      abs=1e-8)
    assert result.n == 5 and result.excludes_zero
    stats = pytest.importorskip("scipy.stats")
    low, high = stats.ttest_rel(arm, baseline).confidence_interval(0.95)
    assert (result.low, result.high) == pytest.approx((low, high), abs=1e-12)


def test_paired_difference_edge_cases():
    single = compare.paired_difference([0.9], [0.8])
    assert single.mean == pytest.approx(0.1) and math.isnan(single.low) and math.isnan(single.std)
    constant = compare.paired_difference([0.9, 0.8], [0.8, 0.7])
    assert constant.low == pytest.approx(0.1) and constant.high == pytest.approx(0.1)
    straddling = compare.paired_difference([0.9, 0.8, 0.85], [0.85, 0.85, 0.85])
    assert not straddling.excludes_zero
    with pytest.raises(ValueError, match="must pair up, but have 2 and 3 entries"):
        compare.paired_difference([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="confidence must be in"):
        compare.paired_difference([0.1, 0.2], [0.1, 0.2], confidence=95)
    with pytest.raises(ValueError, match="p must be in"):
        compare.student_t_quantile(1.0, 3)


def _runs(accuracies: dict[str, list[float]]) -> list[compare.RunSummary]:
    return [compare.RunSummary(arm, seed, value, value, 1000 + len(arm), 100.0, 1.0)
            for arm, values in accuracies.items() for seed, value in enumerate(values)]


ACCURACIES = {"max": [0.90, 0.91, 0.92], "hybrid": [0.92, 0.935, 0.95], "avg": [0.89, 0.91, 0.91]}


def test_summarize_pairs_by_seed():
    summaries = compare.summarize(_runs(ACCURACIES), ["max", "hybrid", "avg"], "max")
    by_arm = {s.arm: s for s in summaries}
    assert by_arm["max"].difference is None
    assert by_arm["hybrid"].mean == pytest.approx(0.935)
    assert by_arm["hybrid"].difference.mean == pytest.approx(0.025)
    assert compare.verdict(by_arm["hybrid"], "max").startswith("better than max")
    assert "includes 0" in compare.verdict(by_arm["avg"], "max")
    runs = _runs(ACCURACIES)[:-1]  # avg lacks seed 2
    with pytest.raises(ValueError, match=r"arm 'avg' has seeds \[0, 1\] but the baseline 'max' has \[0, 1, 2\]"):
        compare.summarize(runs, ["max", "hybrid", "avg"], "max")
    with pytest.raises(ValueError, match="baseline 'gem' is not one of the arms"):
        compare.summarize(_runs(ACCURACIES), ["max", "hybrid", "avg"], "gem")


def test_reports(tmp_path):
    config = train.resolve_config(train.TrainConfig(), data.load_digits())
    compare.write_reports(tmp_path, _runs(ACCURACIES), ["max", "hybrid", "avg"], "max",
                          command="python -m examples.cifar10.compare --seeds 3",
                          config=config, dataset_description="digits")
    markdown = (tmp_path / "compare.md").read_text()
    assert "python -m examples.cifar10.compare --seeds 3" in markdown
    assert "after the **final** epoch" in markdown
    assert "| hybrid | 93.50 ± 1.50 | +2.50 | [+1.26, +3.74] | better than max" in markdown
    assert "| hybrid − avg | +3.17 |" in markdown
    rows = list(csv.DictReader(io.StringIO((tmp_path / "compare.csv").read_text())))
    assert [row["pool"] for row in rows] == ["max", "hybrid", "avg"]
    assert float(rows[1]["paired_difference_mean"]) == pytest.approx(0.025)
    assert rows[0]["ci_low"] == ""
    assert len((tmp_path / "runs.csv").read_text().splitlines()) == 1 + 9
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_comparison_end_to_end(tmp_path, capsys):
    """Two arms x two seeds, one epoch, through ``python -m examples.cifar10.compare``."""
    out = tmp_path / "cmp"
    arguments = ["--compare", "max,avg", "--seeds", "2", "--dataset", "digits", "--width", "2",
                 "--epochs", "1", "--batch-size", "256", "--out", str(out), "--no-progress",
                 "--fast-compile"]
    assert compare.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "| avg |" in printed and "outputs in" in printed
    for name in ("compare.md", "compare.csv", "runs.csv", "compare.png"):
        assert (out / name).is_file()
    assert sorted(p.name for p in (out / "avg").iterdir()) == ["seed-0", "seed-1"]
    # The same seed gives every arm the same augmentation stream (the data order is a
    # function of the seed alone, see data.epoch_batches).
    config = train.TrainConfig(width=2, epochs=1, batch_size=256, seed=1, fast_compile=True)
    states = {arm: train.train(dataclasses.replace(config, pool=arm), out=out / arm / "seed-1",
                               resume=True, quiet=True).state
              for arm in ("max", "avg")}
    np.testing.assert_array_equal(states["max"].rng, states["avg"].rng)
    # Rerunning reuses the finished runs instead of training again.
    assert compare.main([*arguments, "--baseline", "avg"]) == 0
    assert "Δ vs avg" in (out / "compare.md").read_text()


@pytest.mark.parametrize("launch", sorted(LAUNCHES))
def test_cli_help_by_module_and_by_path(launch, tmp_path):
    completed = run_cli("compare", launch, ["--help"], tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.startswith("usage: ") and "--baseline" in completed.stdout


def test_comparison_by_path_from_another_folder(tmp_path):
    out = tmp_path / "cmp"
    completed = run_cli("compare", "path-elsewhere", [
        "--compare", "max,avg", "--seeds", "1", "--dataset", "digits", "--width", "2",
        "--epochs", "1", "--batch-size", "256", "--out", out, "--no-progress",
        "--fast-compile"], tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "| avg |" in completed.stdout
    assert sorted(path.name for path in out.iterdir()) == [
        "avg", "compare.csv", "compare.md", "compare.png", "max", "runs.csv"]
