"""Which machine a benchmark ran on: CPU model, accelerator, a file-name slug, and the
peak memory bandwidth of known GPUs.

Results are kept per machine (``benchmarks/results/<benchmark>-<slug>.md``), so the slug
must be stable for one kind of machine and differ between kinds: on CPU it comes from the
CPU model (``/proc/cpuinfo``), on an accelerator from ``jax.devices()[0].device_kind``.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

import jax

# Peak memory bandwidth in GB/s (10^9 bytes per second), from the vendors' data sheets.
# Matched in order against the lower-cased device kind (jax.devices()[0].device_kind): the
# first entry whose every word occurs wins, so the specific entries come first.
GPU_PEAK_GBPS: tuple[tuple[tuple[str, ...], str, float], ...] = (
    (("h200",), "NVIDIA H200 (HBM3e)", 4800.0),
    (("gh200",), "NVIDIA GH200 (HBM3)", 4000.0),
    (("h100", "nvl"), "NVIDIA H100 NVL", 3900.0),
    (("h100", "pcie"), "NVIDIA H100 PCIe (HBM2e)", 2000.0),
    (("h100",), "NVIDIA H100 SXM (HBM3)", 3350.0),
    (("a100", "80gb", "pcie"), "NVIDIA A100 80GB PCIe", 1935.0),
    (("a100", "80gb"), "NVIDIA A100 80GB SXM", 2039.0),
    (("a100",), "NVIDIA A100 40GB", 1555.0),
    (("l40s",), "NVIDIA L40S", 864.0),
    (("l4",), "NVIDIA L4", 300.0),
    (("a10g",), "NVIDIA A10G", 600.0),
    (("a10",), "NVIDIA A10", 600.0),
    (("v100s",), "NVIDIA V100S PCIe", 1134.0),
    (("v100",), "NVIDIA V100", 900.0),
    (("t4",), "NVIDIA T4", 320.0),
    (("rtx", "4090"), "NVIDIA GeForce RTX 4090", 1008.0),
    (("rtx", "3090"), "NVIDIA GeForce RTX 3090", 936.0),
)


def gpu_peak(device_kind: str) -> tuple[str, float] | None:
    """(card, peak GB/s) for a known GPU's device kind, else None.

    >>> gpu_peak("NVIDIA H100 80GB HBM3")
    ('NVIDIA H100 SXM (HBM3)', 3350.0)
    >>> gpu_peak("NVIDIA A100-SXM4-40GB")
    ('NVIDIA A100 40GB', 1555.0)
    >>> gpu_peak("TPU v5 lite") is None
    True
    """
    words = set(re.split(r"[^a-z0-9]+", device_kind.lower()))
    for needed, card, gbps in GPU_PEAK_GBPS:
        if all(w in words for w in needed):
            return card, gbps
    return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


_NOISE = re.compile(
    r"\((r|tm)\)|\b(cpu|processor|\d+-core|with radeon graphics)\b|@\s*[\d.]+\s*[gm]hz", re.I
)


def slug(name: str) -> str:
    """A file-name-safe, lower-case slug of a CPU model or device kind.

    >>> slug("Intel(R) Xeon(R) Platinum 8488C")
    'intel-xeon-platinum-8488c'
    >>> slug("AMD EPYC 7B13 64-Core Processor")
    'amd-epyc-7b13'
    >>> slug("Intel(R) Xeon(R) CPU @ 2.20GHz")
    'intel-xeon'
    >>> slug("NVIDIA H100 80GB HBM3")
    'nvidia-h100-80gb-hbm3'
    """
    s = re.sub(r"[^a-z0-9]+", "-", _NOISE.sub(" ", name).lower()).strip("-")
    return s or "unknown"


def auto_family(jax_platform: str) -> str:
    """The kernel family jaxpool's ``'auto'`` uses when lowering for ``jax_platform``
    (the rule of jaxpool/_kernels.py: ``cpu`` on CPU, ``reduce_window`` elsewhere)."""
    return "cpu" if jax_platform == "cpu" else "reduce_window"


def describe() -> dict:
    """The machine record every benchmark stores: platform, device kind, CPU model, slug,
    and for a known GPU its peak memory bandwidth (``peak_gbps`` None when unknown)."""
    device = jax.devices()[0]
    kind = getattr(device, "device_kind", device.platform)
    cpu = cpu_model()
    info = {
        "platform": device.platform,
        "device_kind": kind,
        "device_count": len(jax.devices()),
        "cpu_model": cpu,
        "slug": slug(cpu if device.platform == "cpu" else kind),
        "auto_family": auto_family(device.platform),
        "gpu_card": None,
        "peak_gbps": None,
    }
    if device.platform == "gpu":
        known = gpu_peak(kind)
        if known:
            info["gpu_card"], info["peak_gbps"] = known
    return info
