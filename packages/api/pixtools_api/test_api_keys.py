"""Tests of the API key command."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys

import pytest

from pixtools_api.api_keys import main
from pixtools_api.auth import KeyRing
from pixtools_shared.settings import Settings


def test_create_prints_key_and_matching_entry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["create", "--id", "ci"]) == 0

    lines = capsys.readouterr().out.splitlines()
    key = lines[0].removeprefix("key:   ")
    entry = lines[1].removeprefix("entry: ")
    assert key.startswith("pxt_")
    assert len(key) >= 40
    assert entry == "ci:" + hashlib.sha256(key.encode()).hexdigest()
    assert KeyRing.from_settings(Settings(API_KEYS=[entry])).match(key) == "ci"


def test_hash_reads_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("my-existing-key\n"))

    assert main(["hash", "--id", "web"]) == 0

    expected = "web:" + hashlib.sha256(b"my-existing-key").hexdigest()
    assert capsys.readouterr().out.strip() == expected


def test_invalid_id_rejected() -> None:
    with pytest.raises(SystemExit):
        main(["create", "--id", "has space"])


def test_runs_as_module() -> None:
    output = subprocess.run(
        [sys.executable, "-m", "pixtools_api.api_keys", "hash", "--id", "x"],
        input="k\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )

    assert output.stdout.strip() == "x:" + hashlib.sha256(b"k").hexdigest()
