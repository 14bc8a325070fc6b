from __future__ import annotations

import time
from pathlib import Path

import pytest

from pixtools_worker_ml.runtime import (
    cgroup_cpu_limit,
    choose_threads,
    cpu_share,
    fastest_choice,
    resolve_precision,
)


@pytest.mark.parametrize(
    ("content", "expected"),
    [("150000 100000\n", 1.5), ("max 100000\n", None), ("garbage\n", None)],
)
def test_cgroup_cpu_limit_parses_quota(
    tmp_path: Path, content: str, expected: float | None
) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(content)

    assert cgroup_cpu_limit(path) == expected


def test_cgroup_cpu_limit_missing_file(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path / "absent") is None


def test_choose_threads_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_THREADS", "3")
    assert choose_threads(2) == 2
    assert choose_threads(None) == 3

    monkeypatch.setenv("TORCH_THREADS", "many")
    assert choose_threads(None) == cpu_share()

    monkeypatch.delenv("TORCH_THREADS")
    assert choose_threads(None) == cpu_share()
    assert cpu_share() >= 1


def test_resolve_precision_values() -> None:
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("BF16") == "bf16"
    assert resolve_precision("float32") == "fp32"
    assert resolve_precision("auto") in {"bf16", "fp32"}
    assert resolve_precision("auto", int8_available=True) in {"bf16", "int8"}
    assert resolve_precision("INT8", int8_available=True) == "int8"
    with pytest.raises(ValueError, match="needs quantized weights"):
        resolve_precision("int8")
    with pytest.raises(ValueError, match="auto, bf16, fp32 or int8"):
        resolve_precision("fp16")


def test_fastest_choice_picks_the_quickest() -> None:
    calls: list[str] = []

    def slow() -> None:
        calls.append("slow")
        time.sleep(0.02)

    def quick() -> None:
        calls.append("quick")

    chosen, seconds = fastest_choice({"slow": slow, "quick": quick}, rounds=2)

    assert chosen == "quick"
    assert seconds["slow"] >= 0.02 > seconds["quick"]
    # One warm-up call and two timed rounds each.
    assert calls.count("slow") == calls.count("quick") == 3


def test_fastest_choice_pauses_outside_timing() -> None:
    started = time.perf_counter()

    _, seconds = fastest_choice({"quick": lambda: None}, rounds=3, pause_seconds=0.02)

    assert time.perf_counter() - started >= 0.06
    assert seconds["quick"] < 0.02


def test_fastest_choice_needs_candidates() -> None:
    with pytest.raises(ValueError, match="at least one"):
        fastest_choice({})
