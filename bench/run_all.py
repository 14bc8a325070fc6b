"""Run every benchmark scenario in one run and write one report with the headlines.

    python bench/run_all.py [--smoke] [--thumbor-python PY] [--avif-plugin-python PY]
                            [--only NAME ...] [--skip NAME ...] [--output-dir DIR]

The scenarios run one after another, each as its own child process, into
``<output-dir>/<name>/``, so that no scenario's servers, workers or imports linger
into the next. ``report.md`` starts with the figures the suite exists to show
(conversion throughput per core against bare Pillow and thumbor, job overhead,
ingest rate, denoise speed and memory, and the load scenarios' lost and duplicated
jobs), taken from each scenario's results, and then includes every scenario's own
tables. ``summary.json`` holds the same figures and, per step, the command, exit
status, duration and the 1-minute load average before and after it. A step that
fails is reported as failed and the run goes on; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import benchkit  # noqa: E402, F401  (adds the PixTools source roots to sys.path)
from benchkit.headlines import headline_figures, headline_markdown  # noqa: E402
from benchkit.machine import describe_machine, machine_line  # noqa: E402
from benchkit.platform import child_environment  # noqa: E402
from benchkit.report import DEFAULT_RESULTS_ROOT, write_json  # noqa: E402


@dataclass(frozen=True)
class Step:
    """One scenario: the script, its extra options and the file it reports in."""

    name: str
    script: str
    options: tuple[str, ...] = ()
    smoke_options: tuple[str, ...] = ("--smoke",)
    report: str = "results.md"
    takes: tuple[str, ...] = field(default=())
    """Options among --thumbor-python and --avif-plugin-python that the script takes."""


STEPS = (
    Step("operations", "bench_operations.py", takes=("--avif-plugin-python",)),
    Step("peer_thumbor", "bench_peer_thumbor.py", takes=("--thumbor-python",)),
    Step("job_overhead", "bench_job_overhead.py"),
    Step("ingest", "bench_ingest.py"),
    Step(
        "ingest_with_worker",
        "bench_ingest.py",
        options=("--with-worker",),
    ),
    Step("load_scenarios", "bench_load_scenarios.py"),
    Step(
        "denoise_1_thread",
        "bench_denoise.py",
        options=("--threads", "1", "--check-whole"),
        report="denoise.md",
    ),
    Step(
        "denoise",
        "bench_denoise.py",
        options=("--check-whole",),
        report="denoise.md",
    ),
)
STEP_NAMES = tuple(step.name for step in STEPS)


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run_all.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--smoke", action="store_true", help="run every scenario with tiny counts"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_RESULTS_ROOT / "run_all",
        help="folder for the scenario folders, report.md and summary.json",
    )
    parser.add_argument("--thumbor-python", type=Path)
    parser.add_argument("--avif-plugin-python", type=Path)
    parser.add_argument("--only", nargs="+", choices=STEP_NAMES, default=None)
    parser.add_argument("--skip", nargs="+", choices=STEP_NAMES, default=[])
    return parser.parse_args(argv)


def selected_steps(arguments: argparse.Namespace) -> list[Step]:
    requested = set(arguments.only or STEP_NAMES) - set(arguments.skip)
    return [step for step in STEPS if step.name in requested]


def step_command(step: Step, arguments: argparse.Namespace, folder: Path) -> list[str]:
    command = [sys.executable, str(BENCH_DIR / step.script), *step.options]
    if arguments.smoke:
        command += step.smoke_options
    command += ["--output-dir", str(folder)]
    for option in step.takes:
        value = getattr(arguments, option.lstrip("-").replace("-", "_"))
        if value is not None:
            command += [option, str(value)]
    return command


def run_step(step: Step, arguments: argparse.Namespace) -> dict[str, Any]:
    folder = arguments.output_dir / step.name
    folder.mkdir(parents=True, exist_ok=True)
    command = step_command(step, arguments, folder)
    record: dict[str, Any] = {
        "name": step.name,
        "command": " ".join(command[1:]).replace(str(BENCH_DIR.parent) + "/", ""),
        "folder": step.name,
        "report": step.report,
        "load_average_before_1m": round(os.getloadavg()[0], 2),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(f"== {step.name}: {record['command']}", flush=True)
    started = time.monotonic()
    with (folder / "run.log").open("w", encoding="utf-8") as log:
        # The argv is this suite's own scripts and options, never outside input.
        completed = subprocess.run(  # noqa: S603
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_environment({}),
            check=False,
        )
    record["returncode"] = completed.returncode
    record["seconds"] = round(time.monotonic() - started, 1)
    record["load_average_after_1m"] = round(os.getloadavg()[0], 2)
    status = "ok" if completed.returncode == 0 else f"FAILED ({completed.returncode})"
    print(f"   {status} in {record['seconds']} s", flush=True)
    return record


def read_step_results(folder: Path, step: Step) -> dict[str, Any] | None:
    name = "denoise.json" if step.report == "denoise.md" else "results.json"
    path = folder / step.name / name
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def demote_headings(markdown: str) -> str:
    """Turn a scenario report's headings into subsections of the combined report."""
    lines = []
    for line in markdown.splitlines():
        lines.append("#" + line if line.startswith("#") else line)
    return "\n".join(lines)


def write_report(
    folder: Path,
    records: list[dict[str, Any]],
    figures: dict[str, Any],
    header: dict[str, Any],
) -> None:
    sections = [
        "# PixTools benchmarks, one run",
        f"Machine: {machine_line(header['machine'], header['load_average_end_1m'])}.",
        f"Started {header['started_at']}, finished {header['finished_at']} "
        f"({header['seconds']:.0f} s). Command: `{header['command']}`.",
        *headline_markdown(figures),
        "## Steps",
        "| step | exit | seconds | load before | load after | command |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for record in records:
        sections.append(
            f"| {record['name']} | {record['returncode']} | {record['seconds']} | "
            f"{record['load_average_before_1m']} | {record['load_average_after_1m']} "
            f"| `{record['command']}` |"
        )
    for record in records:
        report = folder / record["folder"] / record["report"]
        if report.is_file():
            sections.append(demote_headings(report.read_text(encoding="utf-8")))
    text = "\n\n".join(section.strip() for section in sections if section.strip())
    # Table rows were joined with blank lines; put each table back together.
    text = text.replace("|\n\n|", "|\n|")
    (folder / "report.md").write_text(text + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    arguments.output_dir.mkdir(parents=True, exist_ok=True)
    steps = selected_steps(arguments)
    header: dict[str, Any] = {
        "smoke": arguments.smoke,
        "command": "python bench/run_all.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": describe_machine(),
    }
    started = time.monotonic()

    records = [run_step(step, arguments) for step in steps]

    header["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    header["seconds"] = round(time.monotonic() - started, 1)
    header["load_average_end_1m"] = round(os.getloadavg()[0], 2)
    results = {
        step.name: read_step_results(arguments.output_dir, step) for step in steps
    }
    figures = headline_figures(results)
    summary = {**header, "steps": records, "headlines": figures}
    write_json(arguments.output_dir / "summary.json", summary)
    write_report(arguments.output_dir, records, figures, header)
    failed = [record["name"] for record in records if record["returncode"] != 0]
    print(f"report in {arguments.output_dir / 'report.md'}", flush=True)
    if failed:
        print(f"failed steps: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
