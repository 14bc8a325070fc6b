"""CPU share and precision choices for torch in this process."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import structlog
import torch

logger = structlog.get_logger(__name__)

THREADS_ENV = "TORCH_THREADS"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_cpu_limit(path: Path = CGROUP_CPU_MAX) -> float | None:
    """Return the cgroup v2 CPU quota in cores, or None when unlimited or unreadable."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def cpu_share() -> int:
    """Return the number of CPUs this process may really use (at least 1).

    The count is the CPU affinity mask, capped by the cgroup v2 ``cpu.max`` quota
    rounded down, because threads beyond the quota only wait for each other.
    """
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        available = min(available, max(1, math.floor(quota)))
    return max(1, available)


def choose_threads(requested: int | None = None) -> int:
    """Return the thread count: the argument, else TORCH_THREADS, else the CPU share."""
    if requested is not None and requested > 0:
        return requested
    env_value = os.environ.get(THREADS_ENV, "").strip()
    if env_value:
        try:
            value = int(env_value)
        except ValueError:
            logger.warning("torch_threads_invalid", value=env_value)
        else:
            if value > 0:
                return value
    return cpu_share()


def configure_threads(requested: int | None = None) -> int:
    threads = choose_threads(requested)
    torch.set_num_threads(threads)
    return threads


ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def to_channels_last(module: ModuleT) -> ModuleT:
    """Move a module's 4-D parameters to the channels-last memory format."""
    # torch's stubs for Module.to omit memory_format, which it accepts at run time.
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def _time_conv(dtype: torch.dtype, repeats: int) -> float:
    conv = to_channels_last(torch.nn.Conv2d(64, 64, 3, padding=1))
    sample = torch.rand(1, 64, 96, 96).to(memory_format=torch.channels_last)
    enabled = dtype == torch.bfloat16
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=enabled):
        conv(sample)
        start = time.perf_counter()
        for _ in range(repeats):
            conv(sample)
        return time.perf_counter() - start


def bfloat16_is_fast(repeats: int = 4, rounds: int = 5) -> bool:
    """Time a 64-channel 3x3 convolution in bfloat16 and float32 and compare.

    bfloat16 only pays off on CPUs with native support (AMX or AVX-512 BF16). On
    others oneDNN emulates it and it runs slower than float32, so it is chosen only
    when it is at least 1.3 times faster here. The two are timed in alternating
    rounds and the fastest round of each counts, because other processes on a
    shared CPU slow single rounds at random.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    bf16_times: list[float] = []
    fp32_times: list[float] = []
    for _ in range(rounds):
        try:
            bf16_times.append(_time_conv(torch.bfloat16, repeats))
        except RuntimeError as error:
            logger.warning("bfloat16_probe_failed", error=str(error))
            return False
        fp32_times.append(_time_conv(torch.float32, repeats))
    bf16_seconds, fp32_seconds = min(bf16_times), min(fp32_times)
    fast = bf16_seconds * 1.3 < fp32_seconds
    logger.info(
        "bfloat16_probe",
        bf16_seconds=round(bf16_seconds, 4),
        fp32_seconds=round(fp32_seconds, 4),
        use_bfloat16=fast,
    )
    return fast


PRECISIONS = ("auto", "bf16", "fp32", "int8")


def parse_precision(setting: str) -> str:
    """Normalise a precision setting to one of PRECISIONS."""
    value = setting.strip().lower()
    aliases = {"bfloat16": "bf16", "float32": "fp32"}
    value = aliases.get(value, value)
    if value not in PRECISIONS:
        raise ValueError(f"precision must be auto, bf16, fp32 or int8, got {setting!r}")
    return value


def resolve_precision(setting: str, int8_available: bool = False) -> str:
    """Map a precision setting to the precision to run in.

    auto picks bf16 where it measures fast, else int8 when quantized weights are
    available, else fp32. An explicit int8 needs ``int8_available``.
    """
    value = parse_precision(setting)
    if value == "int8" and not int8_available:
        raise ValueError("precision int8 needs quantized weights, and none are loaded")
    if value != "auto":
        return value
    if bfloat16_is_fast():
        return "bf16"
    return "int8" if int8_available else "fp32"


def fastest_choice(
    candidates: Mapping[str, Callable[[], object]],
    rounds: int = 3,
    pause_seconds: float = 0.0,
) -> tuple[str, dict[str, float]]:
    """Run every candidate once to warm it up, then in alternating rounds.

    Returns the name with the lowest fastest round and the fastest round of each
    in seconds. Alternating rounds and the minimum discount short bursts of other
    work on a shared CPU, but not a load that lasts through every round. A pause
    before each round spreads the rounds over a longer time, so that one of them
    is more likely to miss such a burst.
    """
    if not candidates:
        raise ValueError("fastest_choice needs at least one candidate")
    for run in candidates.values():
        run()
    best: dict[str, float] = dict.fromkeys(candidates, math.inf)
    for _ in range(rounds):
        time.sleep(pause_seconds)
        for name, run in candidates.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return min(best, key=lambda name: best[name]), best
