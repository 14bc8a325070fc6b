"""benchkit's source roots: every PixTools package is importable from a checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchkit import SOURCE_ROOTS

BENCH_DIR = Path(__file__).resolve().parent
PACKAGES = [package for _, package in SOURCE_ROOTS]
PROBE = (
    "import importlib.util, benchkit\n"
    "for name in {packages!r}:\n"
    "    print(name, importlib.util.find_spec(name) is not None)\n"
)


def test_partial_pythonpath_still_finds_all_packages(tmp_path: Path) -> None:
    shared_root = next(root for root, name in SOURCE_ROOTS if name == "pixtools_shared")
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), str(shared_root)])

    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(packages=PACKAGES)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    found = dict(line.split() for line in result.stdout.splitlines())
    assert found == dict.fromkeys(PACKAGES, "True")
