"""Run test suites several rounds in a row and report every test that failed in any round (`make test-stress`).

Each round is one ``pytest`` run writing a JUnit XML report under ``--out``; the summary at the end lists
per round whether it passed, its duration and the tests that failed, and the exit status is non-zero if
any round failed. The CPU load comes from the make target (tests/cpu_hog.py), not from here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Round:
    number: int
    exit_code: int
    seconds: float
    tests: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.failed


def _node_id(case: ET.Element) -> str:
    """``tests/integration/test_x.py::test_y`` from a JUnit test case (classname is the dotted module)."""
    module = case.get("classname", "")
    path = module.replace(".", "/") + ".py" if module else "?"
    return f"{path}::{case.get('name', '?')}"


def parse(report: Path) -> tuple[int, list[str], list[str]]:
    """(tests run, skipped node ids, failed or errored node ids) of one JUnit XML report."""
    if not report.exists():
        return 0, [], []
    cases = list(ET.parse(report).getroot().iter("testcase"))
    failed = [_node_id(c) for c in cases if c.find("failure") is not None or c.find("error") is not None]
    skipped = [_node_id(c) for c in cases if c.find("skipped") is not None]
    return len(cases), skipped, failed


def run_round(number: int, paths: list[str], out: Path, pytest_args: list[str]) -> Round:
    report = out / f"round-{number}.xml"
    report.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *pytest_args, *paths]
    print(f"\n===== stress round {number}: {' '.join(cmd[2:])}", flush=True)
    started = time.monotonic()
    code = subprocess.call(cmd)
    seconds = time.monotonic() - started
    tests, skipped, failed = parse(report)
    return Round(number, code, seconds, tests, skipped, failed)


def summary(rounds: list[Round], seconds: float) -> str:
    lines = [f"===== stress summary: {len(rounds)} rounds in {seconds / 60:.1f} min"]
    for r in rounds:
        state = "PASS" if r.passed else "FAIL"
        extra = f", {len(r.skipped)} skipped" if r.skipped else ""
        code = f", pytest exit code {r.exit_code}" if r.exit_code else ""
        lines.append(f"round {r.number}: {state}  {r.tests} tests{extra}, {r.seconds / 60:.1f} min{code}")
        lines += [f"    FAILED {name}" for name in r.failed]
        lines += [f"    skipped {name}" for name in r.skipped]
    failing = sorted({name for r in rounds for name in r.failed})
    if failing:
        lines.append(f"{len(failing)} test(s) failed in at least one round:")
        lines += [f"    {name}  (rounds {[r.number for r in rounds if name in r.failed]})" for name in failing]
    elif all(r.passed for r in rounds):
        lines.append("no test failed in any round")
    else:
        lines.append("a round failed without a failing test (see its pytest exit code above)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="artifacts/stress", help="directory of the per-round JUnit reports")
    ap.add_argument("paths", nargs="+", help="test paths (options this script does not know go to pytest)")
    args, pytest_args = ap.parse_known_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rounds = [run_round(n, args.paths, out, pytest_args) for n in range(1, args.rounds + 1)]
    text = summary(rounds, time.monotonic() - started)
    print("\n" + text, flush=True)
    (out / "summary.txt").write_text(text + "\n")
    return 0 if all(r.passed for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
