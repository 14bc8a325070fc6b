"""The headline figures of a whole benchmark run, read from each scenario's results.

``headline_figures`` takes the parsed results of each step of bench/run_all.py (None
for a step that wrote none) and picks out what the suite is judged by.
``headline_markdown`` renders them as the first sections of the combined report.
"""

from __future__ import annotations

from typing import Any

from benchkit.report import markdown_table

Results = dict[str, dict[str, Any] | None]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def conversion_figures(results: Results) -> dict[str, Any]:
    """Throughput per core of resize + WebP, and the worker/bare CPU ratios."""
    figures: dict[str, Any] = {"per_core": [], "operation_cpu_ratios": None}
    peer = results.get("peer_thumbor")
    for row in (peer or {}).get("rows", []):
        systems = row["systems"]
        worker = systems.get("pixtools-worker-path", {}).get("images_per_cpu_second")
        bare = systems.get("bare-pillow", {}).get("images_per_cpu_second")
        thumbor = systems.get("thumbor", {}).get("images_per_cpu_second")
        figures["per_core"].append(
            {
                "image": row["image"],
                "pixtools": worker,
                "bare_pillow": bare,
                "thumbor": thumbor,
                "pixtools_to_bare": _ratio(worker, bare),
                "pixtools_to_thumbor": _ratio(worker, thumbor),
            }
        )
    operations = results.get("operations")
    ratios = [
        row["ratio_cpu"]
        for row in (operations or {}).get("operations", [])
        if row["operation"] != "metadata" and row.get("ratio_cpu")
    ]
    if ratios:
        figures["operation_cpu_ratios"] = {
            "conversions": len(ratios),
            "min": min(ratios),
            "median": sorted(ratios)[len(ratios) // 2],
            "max": max(ratios),
        }
    return figures


def overhead_figures(results: Results) -> list[dict[str, Any]]:
    data = results.get("job_overhead")
    rows = []
    for kind, summary in (data or {}).get("summary", {}).items():
        overhead = summary["overhead_ms"]
        rows.append(
            {
                "kind": kind,
                "count": overhead["count"],
                "p50_ms": overhead["p50"],
                "p99_ms": overhead["p99"],
            }
        )
    return rows


def ingest_figures(results: Results) -> list[dict[str, Any]]:
    rows = []
    for name in ("ingest", "ingest_with_worker"):
        data = results.get(name)
        for run in (data or {}).get("runs", []):
            rows.append(
                {
                    "worker": bool(data and data.get("with_worker")),
                    "users": run["users"],
                    "accepted": run["accepted"],
                    "failures": sum(run["failures"].values()),
                    "jobs_per_second": run["accepted_per_second"],
                    "p50_ms": run["latency_ms"]["p50"],
                    "p99_ms": run["latency_ms"]["p99"],
                    "lost": (data or {}).get("integrity", {}).get("lost_jobs"),
                }
            )
    return rows


def denoise_figures(results: Results) -> list[dict[str, Any]]:
    rows = []
    for name in ("denoise_1_thread", "denoise"):
        for record in (results.get(name) or {}).get("results", []):
            rows.append(
                {
                    "megapixels": record["megapixels"],
                    "threads": record["threads"],
                    "precision": record["precision"],
                    "views": record.get("views", 1),
                    "seconds_per_megapixel": record["seconds_per_megapixel"],
                    "peak_rss_mib": record["peak_rss_mib"],
                    "tiled_vs_whole_db": record.get(
                        "tiled_vs_whole_psnr_difference_db"
                    ),
                }
            )
    return rows


def load_figures(results: Results) -> list[dict[str, Any]]:
    rows = []
    for scenario in (results.get("load_scenarios") or {}).get("scenarios", []):
        check = scenario["integrity"]
        rows.append(
            {
                "scenario": scenario["scenario"],
                "requests": check["requests"],
                "accepted": check["accepted_requests"],
                "http_failures": check["http_failures"],
                "lost": check["lost_jobs"],
                "duplicated": check["duplicate_jobs"],
                "unfinished": check["unfinished_jobs"],
                "ok": check["ok"],
            }
        )
    return rows


def headline_figures(results: Results) -> dict[str, Any]:
    return {
        "conversion": conversion_figures(results),
        "job_overhead": overhead_figures(results),
        "ingest": ingest_figures(results),
        "denoise": denoise_figures(results),
        "load_scenarios": load_figures(results),
    }


def headline_markdown(figures: dict[str, Any]) -> list[str]:
    """Return the headline sections of report.md, one markdown string each."""
    sections = ["## Headlines"]
    conversion = figures["conversion"]
    if conversion["per_core"]:
        sections.append(
            "Resize to 1920 px + WebP q80, images per CPU second of the process "
            "doing the work (bench_peer_thumbor):\n\n"
            + markdown_table(
                [
                    "image",
                    "PixTools worker",
                    "bare Pillow",
                    "thumbor",
                    "PixTools / bare",
                    "PixTools / thumbor",
                ],
                [
                    [
                        row["image"],
                        row["pixtools"],
                        row["bare_pillow"],
                        row["thumbor"],
                        row["pixtools_to_bare"],
                        row["pixtools_to_thumbor"],
                    ]
                    for row in conversion["per_core"]
                ],
            )
        )
    ratios = conversion["operation_cpu_ratios"]
    if ratios:
        sections.append(
            f"Worker path / bare Pillow CPU time over {ratios['conversions']} "
            f"conversions (bench_operations): min {ratios['min']}, median "
            f"{ratios['median']}, max {ratios['max']}."
        )
    if figures["job_overhead"]:
        sections.append(
            "Job overhead, POST to final state minus the operations' own time "
            "(bench_job_overhead):\n\n"
            + markdown_table(
                ["job kind", "jobs", "p50 ms", "p99 ms"],
                [
                    [row["kind"], row["count"], row["p50_ms"], row["p99_ms"]]
                    for row in figures["job_overhead"]
                ],
            )
        )
    if figures["ingest"]:
        sections.append(
            "API ingest (bench_ingest, Locust closed loop):\n\n"
            + markdown_table(
                [
                    "worker running",
                    "users",
                    "accepted",
                    "failures",
                    "jobs/s",
                    "p50 ms",
                    "p99 ms",
                    "lost jobs",
                ],
                [
                    [
                        "yes" if row["worker"] else "no",
                        row["users"],
                        row["accepted"],
                        row["failures"],
                        row["jobs_per_second"],
                        row["p50_ms"],
                        row["p99_ms"],
                        row["lost"],
                    ]
                    for row in figures["ingest"]
                ],
            )
        )
    if figures["denoise"]:
        sections.append(
            "Denoise, tiled (bench_denoise):\n\n"
            + markdown_table(
                [
                    "MP",
                    "threads",
                    "precision",
                    "views",
                    "ms/MP",
                    "peak RSS MiB",
                    "tiled vs whole dB",
                ],
                [
                    [
                        row["megapixels"],
                        row["threads"],
                        row["precision"],
                        row["views"],
                        round(row["seconds_per_megapixel"] * 1000),
                        row["peak_rss_mib"],
                        None
                        if row["tiled_vs_whole_db"] is None
                        else f"{row['tiled_vs_whole_db']:.5f}",
                    ]
                    for row in figures["denoise"]
                ],
            )
        )
    if figures["load_scenarios"]:
        sections.append(
            "Load scenarios (bench_load_scenarios):\n\n"
            + markdown_table(
                [
                    "scenario",
                    "requests",
                    "accepted",
                    "HTTP failures",
                    "lost",
                    "duplicated",
                    "unfinished",
                    "check",
                ],
                [
                    [
                        row["scenario"],
                        row["requests"],
                        row["accepted"],
                        row["http_failures"],
                        row["lost"],
                        row["duplicated"],
                        row["unfinished"],
                        "ok" if row["ok"] else "FAILED",
                    ]
                    for row in figures["load_scenarios"]
                ],
            )
        )
    return sections
