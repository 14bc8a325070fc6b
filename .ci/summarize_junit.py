"""Print one "N passed, N failed, N skipped" line from Pants' JUnit reports."""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def summarize(report_dir: Path) -> tuple[int, int, int]:
    """Count passed, failed (failures plus errors) and skipped test cases."""
    passed = failed = skipped = 0
    for report in sorted(report_dir.glob("*.xml")):
        root = ET.parse(report).getroot()  # noqa: S314 (reports written by pytest)
        for case in root.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            elif case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    return passed, failed, skipped


def main() -> int:
    report_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/test/reports")
    if not report_dir.is_dir():
        print(f"no JUnit reports in {report_dir}", file=sys.stderr)
        print("0 passed, 1 failed, 0 skipped")
        return 1
    passed, failed, skipped = summarize(report_dir)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
