"""Description of the machine and software that a benchmark ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import PIL
from PIL import features

CPUINFO = Path("/proc/cpuinfo")
MEMINFO = Path("/proc/meminfo")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cpu_model() -> str:
    """Return the first "model name" of /proc/cpuinfo, or the platform's name."""
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    """Return MemTotal of /proc/meminfo in GiB, or None where it is unreadable."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return round(kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def cgroup_cpu_limit() -> str | None:
    """Return the cgroup v2 cpu.max line ("max 100000" means no limit)."""
    try:
        return CGROUP_CPU_MAX.read_text().strip()
    except OSError:
        return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def describe_machine() -> dict[str, Any]:
    """Collect CPU, memory, load and library versions for a results file."""
    load_1m, load_5m, _load_15m = os.getloadavg()
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "cgroup_cpu_max": cgroup_cpu_limit(),
        "memory_gib": memory_gib(),
        "load_average_1m": round(load_1m, 2),
        "load_average_5m": round(load_5m, 2),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "libwebp": features.version("webp"),
        "libavif": features.version("avif"),
        "zlib": features.version("zlib"),
    }


def machine_line(machine: dict[str, Any], end_load: float | None = None) -> str:
    """One-line summary of describe_machine() for markdown output."""
    line = (
        f"{machine['usable_cores']} cores ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB RAM, Python {machine['python']}, "
        f"Pillow {machine['pillow']}, load average {machine['load_average_1m']} "
        "at start"
    )
    if end_load is not None:
        line += f" and {end_load} at the end"
    return line


def machine_summary(results: dict[str, Any]) -> str:
    """Return the "Machine: ..." sentence of a results.md, with start and end load."""
    line = machine_line(results["machine"], results.get("load_average_end_1m"))
    return f"Machine: {line}."
