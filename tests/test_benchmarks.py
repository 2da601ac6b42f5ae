"""The benchmark helpers (benchmarks/): machine names, report files and index, checks,
the timing loop's bookkeeping, the kernel-family switch, and one tiny end-to-end run of
the pooling and hybrid benchmarks. Behaviour only: nothing here asserts a speed."""

from __future__ import annotations

import doctest
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpool
from benchmarks import hybrid, machine, pooling, report, timing

# ---- machine -------------------------------------------------------------------------

@pytest.mark.parametrize("model, expected", [
    ("Intel(R) Xeon(R) Platinum 8488C", "intel-xeon-platinum-8488c"),
    ("Intel(R) Xeon(R) Processor", "intel-xeon"),
    ("Intel(R) Xeon(R) CPU @ 2.20GHz", "intel-xeon"),
    ("AMD EPYC", "amd-epyc"),
    ("AMD EPYC 7B13 64-Core Processor", "amd-epyc-7b13"),
    ("NVIDIA H200", "nvidia-h200"),
    ("", "unknown"),
])
def test_machine_slug(model, expected):
    assert machine.slug(model) == expected


@pytest.mark.parametrize("kind, card, gbps", [
    ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM (HBM3)", 3350),
    ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe (HBM2e)", 2000),
    ("NVIDIA H200", "NVIDIA H200 (HBM3e)", 4800),
    ("NVIDIA A100-SXM4-40GB", "NVIDIA A100 40GB", 1555),
    ("NVIDIA A100-PCIE-40GB", "NVIDIA A100 40GB", 1555),
    ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB SXM", 2039),
    ("NVIDIA A100 80GB PCIe", "NVIDIA A100 80GB PCIe", 1935),
    ("NVIDIA L4", "NVIDIA L4", 300),
    ("NVIDIA L40S", "NVIDIA L40S", 864),
    ("NVIDIA A10G", "NVIDIA A10G", 600),
    ("Tesla V100-SXM2-16GB", "NVIDIA V100", 900),
    ("NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090", 1008),
])
def test_gpu_peak_bandwidth_of_known_cards(kind, card, gbps):
    assert machine.gpu_peak(kind) == (card, gbps)


@pytest.mark.parametrize("kind", ["NVIDIA B200", "TPU v4", "cpu", ""])
def test_gpu_peak_bandwidth_of_unknown_devices_is_none(kind):
    assert machine.gpu_peak(kind) is None


def test_machine_doctests():
    assert doctest.testmod(machine).failed == 0


def test_machine_description_on_this_platform():
    info = machine.describe()
    assert info["platform"] == jax.devices()[0].platform
    assert info["auto_family"] == machine.auto_family(info["platform"])
    assert info["slug"] == machine.slug(info["cpu_model"] if info["platform"] == "cpu" else info["device_kind"])
    assert machine.auto_family("cpu") == "cpu"
    assert machine.auto_family("gpu") == machine.auto_family("tpu") == "reduce_window"


# ---- allocator -----------------------------------------------------------------------

@pytest.mark.parametrize("tunables, active", [
    (None, False), ("", False), ("glibc.malloc.hugetlb=1", True), ("glibc.malloc.hugetlb=0", False),
    ("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2", True), ("glibc.malloc.arena_max=2", False),
])
def test_hugetlb_active_reads_glibc_tunables(tunables, active):
    environ = {} if tunables is None else {"GLIBC_TUNABLES": tunables}
    assert timing.hugetlb_active(environ) is active


def test_allocator_text_labels_the_kernel_only_table():
    assert "kernel-only" in timing.allocator_text({"variant": "hugetlb", "glibc_tunables": "x"})
    assert "what a user measures" in timing.allocator_text({"variant": "default"})
    assert "--hugetlb" not in timing.allocator_text({"variant": "default"}, hugetlb_option=False)


# ---- checks and compiled memory ------------------------------------------------------

def test_check_reports_mismatches_nan_and_shapes():
    ref = np.array([1.0, 2.0, np.nan], np.float32)
    assert timing.check(ref.copy(), ref, "float32", None)["exact"]
    near = timing.check(ref + np.float32(1e-7), ref, "float32", None)
    assert near["ok"] and not near["exact"]
    bad = timing.check(np.array([1.0, 3.0, 0.0], np.float32), ref, "float32", None)
    assert not bad["ok"] and bad["mismatched"] == 2  # a wrong value and a lost NaN
    assert timing.check(ref[:2], ref, "float32", None)["ok"] is False
    assert timing.check(ref, None, "float32", "no torch")["ok"] is None


def test_temp_bytes_handles_missing_analysis():
    class Raises:
        def memory_analysis(self):
            raise NotImplementedError

    assert timing.temp_bytes(Raises()) is None
    assert timing.temp_bytes(types.SimpleNamespace(memory_analysis=lambda: None)) is None
    assert timing.temp_bytes(types.SimpleNamespace(memory_analysis=lambda: object())) is None
    analysis = types.SimpleNamespace(temp_size_in_bytes=123)
    assert timing.temp_bytes(types.SimpleNamespace(memory_analysis=lambda: analysis)) == 123
    compiled = jax.jit(lambda x: x * 2).lower(jnp.ones(4)).compile()
    assert isinstance(timing.temp_bytes(compiled), int)


def test_compile_jax_traces_each_fresh_function_with_its_family():
    seen = []

    def make():
        def fn(x):
            seen.append(jaxpool.kernel_family())
            return jaxpool.max_pool2d(x, 2)
        return fn

    x = jnp.ones((1, 4, 4, 1))
    runners = [timing.compile_jax(make(), (x,), timing.to_float32, family) for family in timing.FAMILIES]
    assert seen == list(timing.FAMILIES)
    for runner in runners:
        np.testing.assert_array_equal(runner.to_nhwc(runner.call()), np.ones((1, 2, 2, 1)))
        assert runner.compile_ms > 0


# ---- timing loop bookkeeping ---------------------------------------------------------

def _args(**overrides):
    args = dict(warmup=2, repeats=4, min_repeats=1, max_repeats=4, budget=0.0, pause=0.0, burst=1)
    return types.SimpleNamespace(**(args | overrides))


@pytest.mark.parametrize("burst", [1, 3])
def test_measure_counts_calls_and_keeps_the_first_result(burst, monkeypatch):
    monkeypatch.setattr(timing, "REWARM_BELOW_S", float("inf"))  # every sample re-warmed: a fixed count
    calls = {"a": 0, "b": 0}

    def runner(name):
        def start():
            calls[name] += 1
            return calls[name]
        return timing.Runner(start, lambda result: None, None, temp_bytes=7)

    def broken():
        raise RuntimeError("boom")

    runners = {"a": runner("a"), "b": runner("b"), "bad": timing.Runner(broken, lambda r: None, None)}
    stats = timing.measure(runners, _args(burst=burst), log=lambda s: None)
    assert stats["bad"]["status"] == "error" and "boom" in stats["bad"]["reason"]
    for name in ("a", "b"):
        st = stats[name]
        assert st["status"] == "ok" and st["repeats"] == 4 and len(st["samples_ms"]) == 4
        assert st["calls_per_sample"] == burst and st["temp_bytes"] == 7
        assert st["_first_result"] == 1
        assert st["min_ms"] <= st["median_ms"]
        # first call, warm-up, 4 samples of `burst` calls, each short call re-warmed first
        assert calls[name] == 1 + 1 + 4 * (burst + 1)


# ---- report files and index ----------------------------------------------------------

def _environment(slug, variant="default", date="2026-01-01T00:00:00+00:00", platform="cpu"):
    return {"machine": {"slug": slug, "platform": platform, "device_kind": slug, "auto_family": "cpu"},
            "allocator": {"variant": variant}, "cpu_model": slug.upper(), "date_utc": date,
            "command": f"python -m benchmarks.pooling  # {date}", "wall_s": 1.0}


def test_stem_names_machine_allocator_and_quick():
    assert report.stem("pooling", _environment("amd-epyc"), quick=False) == "pooling-amd-epyc"
    assert report.stem("hybrid", _environment("amd-epyc", "hugetlb"), quick=True) == "hybrid-amd-epyc-hugetlb-quick"
    assert report.stem("train_step", {"cpu_model": "Intel(R) Xeon(R) Processor"}, quick=False) == "train_step-intel-xeon"


def test_write_report_keeps_one_file_per_machine_and_indexes_the_newest(tmp_path, capsys):
    def write(benchmark, env, quick=False):
        report.write_report(benchmark, {"environment": env, "x": float("nan")}, f"# {env['date_utc']}\n",
                            out=tmp_path, quick=quick, log=lambda s: None)

    write("pooling", _environment("amd-epyc", date="2026-01-01T00:00:00+00:00"))
    write("pooling", _environment("intel-xeon"))
    write("pooling", _environment("amd-epyc", date="2026-02-02T00:00:00+00:00"))  # replaces its own
    write("pooling", _environment("amd-epyc", "hugetlb"))
    write("hybrid", _environment("nvidia-h200", platform="gpu"))
    write("pooling", _environment("amd-epyc"), quick=True)
    assert "# 2026-02-02" in capsys.readouterr().out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["README.md", "hybrid-nvidia-h200.json", "hybrid-nvidia-h200.md",
                     "pooling-amd-epyc-hugetlb.json", "pooling-amd-epyc-hugetlb.md",
                     "pooling-amd-epyc-quick.json", "pooling-amd-epyc-quick.md",
                     "pooling-amd-epyc.json", "pooling-amd-epyc.md",
                     "pooling-intel-xeon.json", "pooling-intel-xeon.md"]
    assert json.loads((tmp_path / "pooling-amd-epyc.json").read_text())["x"] is None  # NaN -> null
    assert (tmp_path / "pooling-amd-epyc.md").read_text() == "# 2026-02-02T00:00:00+00:00\n"
    index = (tmp_path / "README.md").read_text()
    rows = [line for line in index.splitlines() if line.startswith("| `")]
    assert len(rows) == 4  # quick runs are not listed
    assert "2026-02-02" in index and "2026-01-01T00:00:00+00:00 |" in index  # intel-xeon's date
    assert any("nvidia-h200" in r and "hybrid" in r for r in rows)
    assert any("huge-page malloc (kernel-only)" in r and "pooling-amd-epyc-hugetlb.md" in r for r in rows)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_committed_results_are_named_after_their_machine():
    names = {p.name for p in report.RESULTS.iterdir()}
    assert {"pooling.md", "pooling.json", "hybrid.md", "train_step.md"}.isdisjoint(names)
    for path in report.RESULTS.glob("*.json"):
        if path.stem.endswith("-quick"):
            continue  # a local smoke run (ignored by git)
        summary = report._run_summary(path)
        assert summary is not None, path.name
        assert summary["benchmark"] in report.BENCHMARKS


# ---- pooling: goals and one tiny end-to-end run ---------------------------------------

def _summary(auto, base, base_name="flax", temp=None, peak=None):
    return {"auto_family": "cpu", "auto": auto, "base": base, "base_name": base_name,
            "auto/flax": auto / base, "temp_bytes": {"cpu": temp}, "auto_peak_fraction": peak}


def test_goals_report_met_and_missed_per_case():
    cases = [
        {"name": "max_a", "op": "max", "in_bytes": 100,
         "summary": {timing.FORWARD: _summary(1.0, 2.0), timing.GRAD: _summary(1.0, 4.0, temp=50)}},
        {"name": "max_b", "op": "max", "in_bytes": 100,
         "summary": {timing.FORWARD: _summary(3.0, 2.0), timing.GRAD: _summary(1.0, 2.0, temp=150)}},
        {"name": "glob", "op": "global_avg", "in_bytes": 100,
         "summary": {timing.FORWARD: _summary(1.0, 1.0, "jnp"), timing.GRAD: _summary(1.0, 1.0, "jnp", temp=None)}},
    ]
    env = {"jax_platform": "cpu", "machine": {"auto_family": "cpu"}}
    text = "\n".join(pooling.goal_lines(cases, env))
    temp, forward, grad = [line for line in text.splitlines() if line.startswith("| every") or line.startswith("| max")]
    assert "max_a (0.50× input)" in temp and "**max_b (1.50× input)**" in temp and "glob" not in temp
    assert "max_a (0.50×)" in forward and "**max_b (1.50×)**" in forward and "glob" not in forward
    assert "max_a (4.0× faster)" in grad and "**max_b (2.0× faster)**" in grad
    assert "peak" not in text  # the bandwidth goal is judged on accelerators only
    env = {"jax_platform": "gpu", "machine": {"auto_family": "reduce_window", "device_kind": "X", "peak_gbps": None}}
    assert "peak bandwidth of `X` unknown" in "\n".join(pooling.goal_lines(cases, env))


def test_pooling_end_to_end_on_a_tiny_case(tmp_path, capsys):
    argv = ["--quick", "--cases", "small_max_k2s2", "--candidates", "jaxpool,flax,torch-cl,memory-bound:jnp.sum",
            "--budget", "0", "--repeats", "2", "--warmup", "1", "--pause", "0", "--out", str(tmp_path)]
    assert pooling.main(argv) == 0
    (path,) = tmp_path.glob("pooling-*-quick.json")
    data = json.loads(path.read_text())
    env, (case,) = data["environment"], data["cases"]
    assert env["machine"]["slug"] in path.name and env["allocator"]["variant"] == "default"
    results = case["results"]
    for family in timing.FAMILIES:
        for direction in timing.DIRECTIONS:
            st = results[pooling.jaxpool_name(family)][direction]
            assert st["status"] == "ok" and st["check"]["ok"] and st["repeats"] == 2
            assert isinstance(st["temp_bytes"], int)
    assert results["flax"][timing.GRAD]["check"]["ok"]
    assert results["memory-bound:jnp.sum"][timing.GRAD]["status"] == "n/a"
    assert case["summary"][timing.GRAD]["auto_family"] == env["machine"]["auto_family"]
    md = path.with_suffix(".md").read_text()
    assert f"jaxpool {env['machine']['auto_family']} (auto)" in md
    assert "temp MiB flax (jnp)" in md and "## Goals" in md and "CHECK FAILURES" not in md
    assert md in capsys.readouterr().out


def test_hybrid_end_to_end_on_a_tiny_input(tmp_path):
    argv = ["--quick", "--cases", "k2s2", "--batch", "1", "--budget", "0", "--repeats", "1", "--warmup", "1",
            "--pause", "0", "--out", str(tmp_path)]
    assert hybrid.main(argv) == 0
    (path,) = tmp_path.glob("hybrid-*-quick.json")
    (case,) = json.loads(path.read_text())["cases"]
    for family in timing.FAMILIES:
        for op in hybrid.OPS:
            st = case["results"][hybrid.name(op, family)][timing.GRAD]
            assert st["status"] == "ok" and isinstance(st["temp_bytes"], int)
        st = case["results"][hybrid.name("hybrid", family)][timing.GRAD]
        assert st["check"]["ok"] and st["check_alpha_grad"]["ok"]
    md = path.with_suffix(".md").read_text()
    assert all(f"| k2s2 | fwd+bwd | {family}" in md for family in timing.FAMILIES)
    assert "MISMATCH (" not in md


def test_attention_pool_end_to_end_on_tiny_inputs(tmp_path):
    from benchmarks import attention_pool

    argv = ["--quick", "--cases", "masked-mean,latent-siglip-b-masked", "--batch", "1",
            "--budget", "0", "--repeats", "1", "--warmup", "1", "--pause", "0",
            "--out", str(tmp_path)]
    assert attention_pool.main(argv) == 0
    (path,) = tmp_path.glob("attention_pool-*-quick.json")
    cases = json.loads(path.read_text())["cases"]
    assert [case["name"] for case in cases] == ["latent-siglip-b-masked", "masked-mean"]
    for case in cases:
        for direction in timing.DIRECTIONS:
            ours = case["results"]["jaxpool"][direction]
            assert ours["status"] == "ok" and ours["check"]["ok"], (case["name"], direction)
            assert case["results"]["torch"][direction]["status"] == "ok"
    md = path.with_suffix(".md").read_text()
    assert "| masked-mean | fwd+bwd |" in md and "MISMATCH" not in md


def test_profile_end_to_end_on_one_case(tmp_path):
    from benchmarks import profile

    assert profile.main(["--quick", "--cases", "global_max", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("profile-*-quick.json")
    (case,) = json.loads(path.read_text())["cases"]
    assert set(case["rows"]) >= {
        "forward", "choices", "backward", "fwd+bwd", "write probe", "write probe, 2 outputs"
    }
    assert all(row["ms"] > 0 and row["faults"] >= 0 for row in case["rows"].values())
    assert case["fusions"] and case["stages"][0].startswith("blocks")
    assert "| global_max | write probe |" in path.with_suffix(".md").read_text()


def test_profile_counts_fusions_by_kind():
    from benchmarks import profile

    text = ("HloModule m\n\nENTRY %main {\n"
            "  %a = f32[2] fusion(%p), kind=kLoop, calls=%f\n"
            "  %b = f32[2] fusion(%a), kind=kCustom, calls=%g, backend_config={\"kind\":\"__ynn_fusion\"}\n"
            "  %c = f32[2] fusion(%b), kind=kLoop, calls=%h\n}\n")
    assert profile._fusions(text) == {"kLoop": 2, "ynnpack": 1}
