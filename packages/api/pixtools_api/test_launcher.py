"""Tests of the launcher's process supervision with small Python child processes."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from pixtools_api.launcher import ChildSpec, Launcher, build_child_specs, main
from pixtools_shared.settings import reset_settings_cache

# Writes a marker file when SIGTERM arrives, then exits 0 (a warm shutdown).
GRACEFUL_CHILD = """
import signal, sys, time
def stop(signum, frame):
    open(sys.argv[1], "w").write("stopped")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
while True:
    time.sleep(0.05)
"""

# Ignores SIGTERM, so only SIGKILL ends it.
STUBBORN_CHILD = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(0.05)
"""


def python_child(name: str, code: str, *args: str) -> ChildSpec:
    return ChildSpec(name, [sys.executable, "-c", code, *args])


def wait_until_started(launcher: Launcher) -> None:
    # Give each interpreter time to install its signal handler.
    time.sleep(1.0)
    assert launcher.find_exited_child() is None


def test_child_specs_use_production_entry_points() -> None:
    specs = build_child_specs("/opt/python")

    assert [(spec.name, spec.argv) for spec in specs] == [
        ("api", ["/opt/python", "-m", "pixtools_api"]),
        (
            "worker-standard",
            ["/opt/python", "-m", "pixtools_worker_standard", "worker"],
        ),
        ("worker-ml", ["/opt/python", "-m", "pixtools_worker_ml", "worker"]),
        ("beat", ["/opt/python", "-m", "pixtools_worker_standard", "beat"]),
    ]


def test_stop_request_terminates_children_gracefully(tmp_path: Path) -> None:
    markers = [tmp_path / "first", tmp_path / "second"]
    launcher = Launcher(
        [
            python_child(f"child-{i}", GRACEFUL_CHILD, str(m))
            for i, m in enumerate(markers)
        ],
        dict(os.environ),
        grace_seconds=10,
    )
    launcher.start_all()
    wait_until_started(launcher)

    launcher.request_stop(signal.SIGTERM, None)
    status = launcher.watch()

    assert status == 0
    assert [marker.read_text() for marker in markers] == ["stopped", "stopped"]
    assert [child.process.returncode for child in launcher.children] == [0, 0]


def test_child_ignoring_sigterm_is_killed_after_grace(tmp_path: Path) -> None:
    launcher = Launcher(
        [python_child("stubborn", STUBBORN_CHILD)], dict(os.environ), grace_seconds=1
    )
    launcher.start_all()
    wait_until_started(launcher)

    started = time.monotonic()
    launcher.request_stop(signal.SIGINT, None)
    status = launcher.watch()

    assert status == 0
    assert launcher.children[0].process.returncode == -signal.SIGKILL
    assert time.monotonic() - started >= 1


def test_unexpected_child_exit_stops_others(tmp_path: Path) -> None:
    marker = tmp_path / "survivor"
    launcher = Launcher(
        [
            python_child("survivor", GRACEFUL_CHILD, str(marker)),
            python_child("crasher", "import time, sys; time.sleep(1.5); sys.exit(3)"),
        ],
        dict(os.environ),
        grace_seconds=10,
    )
    launcher.start_all()

    status = launcher.watch()

    assert status == 1
    assert launcher.children[1].process.returncode == 3
    assert marker.read_text() == "stopped"
    assert launcher.children[0].process.returncode == 0


def test_second_stop_request_skips_grace_period() -> None:
    launcher = Launcher(
        [python_child("stubborn", STUBBORN_CHILD)], dict(os.environ), grace_seconds=60
    )
    launcher.start_all()
    wait_until_started(launcher)

    launcher.request_stop(signal.SIGINT, None)
    launcher.request_stop(signal.SIGINT, None)
    started = time.monotonic()
    launcher.watch()

    assert launcher.force_requested is True
    assert launcher.children[0].process.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10


def test_main_fails_when_database_cannot_be_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file where the database folder should be makes SQLite fail to open it.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{blocker}/pixtools.db")
    reset_settings_cache()
    try:
        status = main([])
    finally:
        reset_settings_cache()

    assert status == 1
