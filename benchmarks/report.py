"""The one report writer of the benchmarks: the environment record, the per-machine file
names, the atomic writes, and the index of results (``benchmarks/results/README.md``).

Each run writes ``<benchmark>-<machine>[-hugetlb][-quick].json`` (everything) and ``.md``
(the table) into its output folder, then regenerates that folder's ``README.md``: the
newest run per machine and benchmark with its date and command. ``<machine>`` is
:func:`benchmarks.machine.describe`'s slug (CPU model, or the accelerator's device kind),
so runs on different machines never overwrite each other.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from benchmarks import machine
from benchmarks.timing import allocator_record

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = ("pooling", "hybrid", "train_step", "profile", "attention_pool")
INDEX = "README.md"
ENV_VARS = (
    "XLA_FLAGS",
    "OMP_NUM_THREADS",
    "JAX_PLATFORMS",
    "MKL_NUM_THREADS",
    "GLIBC_TUNABLES",
    "JAXPOOL_KERNELS",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "CUDA_VISIBLE_DEVICES",
)


def _version(module: str) -> str:
    try:
        return getattr(__import__(module), "__version__", "?")
    except Exception as e:
        return f"unavailable ({type(e).__name__})"


def _git_head() -> str | None:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).resolve().parent,
                timeout=5,
            ).stdout.strip()
            or None
        )
    except Exception:
        return None


def environment(benchmark: str, args, argv=None) -> dict:
    """What every report records: date, command, machine, allocator, versions, git HEAD."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        import jaxpool

        jaxpool_path, jaxpool_error = jaxpool.__file__, None
    except Exception as e:
        jaxpool_path, jaxpool_error = None, f"{type(e).__name__}: {e}"
    info = machine.describe()
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": f"python -m benchmarks.{benchmark} {shlex.join(arguments)}".strip(),
        "launcher": os.environ.get(
            "BENCHMARK_LAUNCHER"
        ),  # e.g. benchmarks/gpu/run.sh, which sets it
        "argv": sys.argv,
        "python_executable": sys.executable,
        "args": vars(args),
        "machine": info,
        "allocator": allocator_record(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": info["cpu_model"],
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "versions": {
            m: _version(m) for m in ("jax", "jaxlib", "flax", "torch", "numpy", "optax", "chex")
        },
        "jaxpool": {"path": jaxpool_path, "import_error": jaxpool_error},
        "git_head": _git_head(),
        "jax_devices": [str(d) for d in jax.devices()],
        "jax_platform": info["platform"],
        "env": {k: os.environ[k] for k in ENV_VARS if os.environ.get(k)},
        "loadavg_start": list(os.getloadavg()),
    }


def command_text(env: dict) -> str:
    """The command in backticks, and the script that ran it, if any."""
    launcher = env.get("launcher")
    return f"`{env.get('command', '?')}`" + (f" (run by `{launcher}`)" if launcher else "")


def machine_line(env: dict) -> str:
    """One Markdown line naming the machine (for every table's header)."""
    m = env.get("machine") or {}
    where = f"{env.get('cpu_model', '?')} · {env.get('cpu_count', '?')} cores"
    if m.get("platform", "cpu") != "cpu":
        peak = (
            f"peak {m['peak_gbps']:.0f} GB/s ({m['gpu_card']})"
            if m.get("peak_gbps")
            else "peak bandwidth unknown (not in benchmarks/machine.py's table)"
        )
        where = f"{m['device_kind']} ×{m.get('device_count', 1)}, {peak} · host {where}"
    return (
        f"- machine `{m.get('slug', '?')}`: {where} · JAX platform `{env.get('jax_platform', '?')}`"
    )


# --------------------------------------------------------------------------------------
# Formatting shared by the tables
# --------------------------------------------------------------------------------------


def fmt_ms(v: float) -> str:
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def fmt_ratio(r) -> str:
    return "—" if r is None else f"{r:.2f}"


def fmt_mib(n) -> str:
    return "?" if n is None else f"{n / 2**20:.3g}"


def ratio(a, b) -> float | None:
    return a / b if a is not None and b else None


def geomean(xs) -> tuple[float | None, int]:
    xs = [x for x in xs if x is not None and x > 0]
    return (math.exp(sum(math.log(x) for x in xs) / len(xs)), len(xs)) if xs else (None, 0)


def table(head: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Markdown table lines; the first ``left`` columns left-aligned, the rest right."""
    return [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * left + ["---:"] * (len(head) - left)) + "|",
        *["| " + " | ".join(r) + " |" for r in rows],
    ]


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def json_safe(obj):
    """JSON-safe copy: numpy scalars to Python, non-finite floats to null."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def stem(benchmark: str, env: dict, quick: bool) -> str:
    """``<benchmark>-<machine>[-hugetlb][-quick]``."""
    slug = (env.get("machine") or {}).get("slug") or machine.slug(env.get("cpu_model", "unknown"))
    hugetlb = (env.get("allocator") or {}).get("variant") == "hugetlb"
    return f"{benchmark}-{slug}" + ("-hugetlb" if hugetlb else "") + ("-quick" if quick else "")


def write_report(
    benchmark: str, report: dict, markdown: str, *, out=None, quick=False, log=None
) -> Path:
    """Writes ``<stem>.json`` and ``<stem>.md`` atomically into ``out`` (default
    benchmarks/results/), regenerates the folder's index, prints the Markdown and logs
    where it went. ``report["environment"]`` is :func:`environment`'s record. Returns the
    Markdown file's path."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    folder = Path(out) if out else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    name = stem(benchmark, report["environment"], quick)
    write_atomically(folder / f"{name}.json", json.dumps(json_safe(report), indent=1) + "\n")
    write_atomically(folder / f"{name}.md", markdown)
    write_index(folder)
    print(markdown)
    wall = report["environment"].get("wall_s")
    log(
        f"wrote {folder / name}.json and .md" + (f" after {wall:.0f} s" if wall is not None else "")
    )
    return folder / f"{name}.md"


def _run_summary(path: Path) -> dict | None:
    """(benchmark, machine, variant, date, command, machine text) of one result file;
    None for quick runs and files that are no benchmark's. Older files (before the
    per-machine names) lack some fields: the file name is the fallback."""
    benchmark, _, rest = path.stem.partition("-")
    if benchmark not in BENCHMARKS or not rest or rest.endswith("-quick"):
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    env = data.get("environment", data)  # train_step's files once kept it at the top level
    variant = "hugetlb" if rest.endswith("-hugetlb") else "default"
    if "allocator" not in env and "env" not in env:
        variant = "unrecorded"
    slug = rest.removesuffix("-hugetlb")
    m = env.get("machine") or {}
    what = m.get("device_kind") if m.get("platform", "cpu") != "cpu" else None
    what = what or env.get("cpu_model") or "(not recorded)"
    return {
        "benchmark": benchmark,
        "slug": slug,
        "variant": variant,
        "what": what,
        "date": env.get("date_utc", "?"),
        "command": command_text(env),
        "stem": path.stem,
    }


def write_index(folder: Path) -> None:
    """Regenerates ``folder/README.md``: every machine's newest run of each benchmark
    (each run replaces its machine's files, so the files *are* the newest runs)."""
    runs = [r for p in sorted(folder.glob("*.json")) if (r := _run_summary(p))]
    runs.sort(
        key=lambda r: (r["slug"], BENCHMARKS.index(r["benchmark"]), r["variant"] == "hugetlb")
    )
    allocator = {
        "default": "glibc default (headline)",
        "hugetlb": "huge-page malloc (kernel-only)",
        "unrecorded": "not recorded",
    }
    rows = [
        [
            f"`{r['slug']}`",
            r["what"],
            r["benchmark"],
            allocator[r["variant"]],
            r["date"],
            r["command"],
            f"[md]({r['stem']}.md) · [json]({r['stem']}.json)",
        ]
        for r in runs
    ]
    lines = [
        "# Benchmark results, one file per machine",
        "",
        "Regenerated by the benchmarks (`benchmarks/report.py`) whenever one writes into this "
        "folder; do not edit by hand. A run replaces the files of its own machine, benchmark "
        "and allocator only: `<benchmark>-<machine>[-hugetlb].md|json`, the machine named by "
        "its CPU model or, on an accelerator, its device kind. `--quick` smoke runs "
        "(`*-quick.*`) are not listed. How to run and read them: "
        "[benchmarks/README.md](../README.md).",
        "",
        *(
            table(
                ["machine", "model", "benchmark", "allocator", "date (UTC)", "command", "files"],
                rows,
                left=7,
            )
            if rows
            else ["(no runs yet)"]
        ),
        "",
    ]
    write_atomically(folder / INDEX, "\n".join(lines))
