"""The `pixtools` CLI against a real API and standard worker (embedded profile).

The API and the worker run as child processes on 127.0.0.1 with SQLite,
filesystem storage and the filesystem broker in a temporary folder. The CLI
runs in this process through `main()`, and once as `python -m pixtools_cli`.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from e2e_images import GPS_LATITUDE, build_photo_exif
from e2e_processes import (
    child_environment,
    start_service,
    stop_service,
    wait_for_health,
)
from e2e_servers import free_port
from PIL import Image

from pixtools_cli.__main__ import main
from pixtools_cli.exit_codes import ExitCode
from pixtools_shared.db import upgrade_database
from pixtools_shared.settings import Settings

STARTUP_TIMEOUT_SECONDS = 120.0
RESULT_WIDTH = 64


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("cli-platform")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    data_dir = folder / "data"
    environment = child_environment(
        {
            "ENVIRONMENT": "test",
            "DATA_DIR": str(data_dir),
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "PUBLIC_BASE_URL": base_url,
            "WORKER_CONCURRENCY": "1",
        }
    )
    upgrade_database(Settings(DATA_DIR=data_dir).database_url)
    services = [
        start_service(
            "worker-standard",
            ["pixtools_worker_standard", "worker"],
            environment,
            folder,
        ),
        start_service("api", ["pixtools_api"], environment, folder),
    ]
    try:
        wait_for_health(base_url, services, STARTUP_TIMEOUT_SECONDS)
        yield base_url
    finally:
        for service in reversed(services):
            stop_service(service)


def gradient(size: tuple[int, int], mode: str) -> Image.Image:
    width, height = size
    pixels = np.zeros((height, width, len(mode)), dtype=np.uint8)
    pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    pixels[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    if mode == "RGBA":
        pixels[..., 3] = 200
    return Image.fromarray(pixels, mode)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three images: a JPEG with EXIF and GPS, an RGBA PNG and a WebP."""
    folder = tmp_path_factory.mktemp("cli-inputs")
    gradient((320, 240), "RGB").save(
        folder / "camera.jpg", "JPEG", quality=90, exif=build_photo_exif().tobytes()
    )
    gradient((200, 100), "RGBA").save(folder / "logo.png", "PNG")
    gradient((160, 160), "RGB").save(folder / "tile.webp", "WEBP", quality=90)
    return folder


def run_cli(*argv: str) -> CliRun:
    stdout = io.StringIO()
    stderr = io.StringIO()
    code = main(list(argv), stdout=stdout, stderr=stderr)
    return CliRun(code, stdout.getvalue(), stderr.getvalue())


def job_lines(stdout: str) -> dict[str, str]:
    """Map file name to job id from submit's `JOB_ID<TAB>FILE` lines."""
    jobs = {}
    for line in stdout.splitlines():
        job_id, path = line.split("\t")
        jobs[Path(path).name] = job_id
    return jobs


@pytest.fixture(scope="module")
def batch(
    api_url: str, inputs: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[CliRun, Path]:
    out = tmp_path_factory.mktemp("cli-out")
    run = run_cli(
        "submit",
        f"{inputs}/*",
        "--op",
        "jpg,webp",
        "--op",
        "metadata",
        "--quality",
        "webp=70",
        "--width",
        str(RESULT_WIDTH),
        "--out",
        str(out),
        "--poll-interval",
        "0.3",
        "--timeout",
        "120",
        "--api-url",
        api_url,
    )
    return run, out


def test_batch_completes_with_outputs(batch: tuple[CliRun, Path]) -> None:
    run, out = batch

    assert run.code == ExitCode.OK, run.stderr
    assert sorted(job_lines(run.stdout)) == ["camera.jpg", "logo.png", "tile.webp"]
    expected = {
        f"{stem}-{suffix}"
        for stem in ("camera", "logo", "tile")
        for suffix in ("jpg.jpg", "webp.webp", "metadata.json", "results.zip")
    }
    assert {path.name for path in out.iterdir()} == expected
    for stem in ("camera", "logo", "tile"):
        with Image.open(out / f"{stem}-jpg.jpg") as image:
            assert image.format == "JPEG"
            assert image.width == RESULT_WIDTH
        with Image.open(out / f"{stem}-webp.webp") as image:
            assert image.format == "WEBP"
            assert image.width == RESULT_WIDTH
        with zipfile.ZipFile(out / f"{stem}-results.zip") as archive:
            assert len(archive.namelist()) == 3
    camera = json.loads((out / "camera-metadata.json").read_text("utf-8"))
    assert camera["gps"]["latitude"] == pytest.approx(GPS_LATITUDE, abs=1e-6)
    assert "camera.jpg: COMPLETED, 3 results" in run.stderr


def test_status_metadata_and_download(
    api_url: str, batch: tuple[CliRun, Path], tmp_path: Path
) -> None:
    job_id = job_lines(batch[0].stdout)["camera.jpg"]

    status = run_cli("status", job_id, "--api-url", api_url)
    metadata = run_cli("metadata", job_id, "--api-url", api_url)
    download = run_cli(
        "download", job_id, "--out", str(tmp_path), "--no-archive", "--api-url", api_url
    )

    assert status.code == ExitCode.OK
    assert status.stdout.splitlines()[0] == f"{job_id}  COMPLETED  camera.jpg"
    assert metadata.code == ExitCode.OK
    assert "Camera       PixTestCam Model X1" in metadata.stdout
    assert f"Location     {GPS_LATITUDE:.6f}," in metadata.stdout
    assert "PRIVATE: the file records where it was taken" in metadata.stdout
    assert download.code == ExitCode.OK
    assert download.stdout.splitlines() == [
        str(tmp_path / "camera-jpg.jpg"),
        str(tmp_path / "camera-webp.webp"),
        str(tmp_path / "camera-metadata.json"),
    ]


def test_bad_file_gives_exit_code_3(api_url: str, inputs: Path, tmp_path: Path) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not an image\n", "utf-8")

    run = run_cli(
        "submit",
        str(bad),
        str(inputs / "logo.png"),
        "--op",
        "png",
        "--wait",
        "--poll-interval",
        "0.3",
        "--api-url",
        api_url,
    )

    assert run.code == ExitCode.REJECTED
    assert list(job_lines(run.stdout)) == ["logo.png"]
    assert f"pixtools: {bad}: rejected, HTTP 415 unsupported-format:" in run.stderr
    assert "Convert the file to JPEG, PNG, WebP, AVIF, GIF or TIFF." in run.stderr
    assert "logo.png: COMPLETED, 1 results" in run.stderr


def test_unknown_job_gives_exit_code_3(api_url: str) -> None:
    run = run_cli(
        "status", "00000000-0000-4000-8000-000000000000", "--api-url", api_url
    )

    assert run.code == ExitCode.REJECTED
    assert "HTTP 404 job-not-found" in run.stderr


def test_unreachable_api_gives_exit_code_4(inputs: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    run = run_cli("submit", str(inputs / "logo.png"), "--op", "png", "--api-url", url)

    assert run.code == ExitCode.UNAVAILABLE
    assert "failed after 4 attempts (ConnectError" in run.stderr


def test_module_entry_point_help() -> None:
    environment = child_environment({})

    completed = subprocess.run(
        [sys.executable, "-m", "pixtools_cli", "--help"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0
    assert "exit codes:" in completed.stdout
    assert "  5  a job was not finished" in completed.stdout
