"""Shared helpers for Docket's benchmark scripts: statistics, tables, child processes."""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for an empty sample)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return float(ordered[rank - 1])


def missing_part(module: str, *attrs: str) -> str | None:
    """None when `module` imports and has `attrs`, else why the measurement is skipped."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return f"{module} is not in the tree yet"
        raise
    absent = [a for a in attrs if not hasattr(mod, a)]
    if absent:
        return f"{module} has no {', '.join(absent)} yet"
    return None


@dataclass
class Row:
    """One line of a result table."""

    name: str
    figure: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None


def print_table(title: str, rows: Sequence[Row]) -> None:
    """Print a fixed-width table with a target met/missed column."""
    print(f"\n== {title} ==")
    header = ("measure", "Docket", "baseline", "ratio", "target", "result")
    lines = [header]
    for r in rows:
        verdict = "" if r.met is None else ("met" if r.met else "MISSED")
        lines.append((r.name, r.figure, r.baseline, r.ratio, r.target, verdict))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for n, line in enumerate(lines):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def machine() -> str:
    """A one-line description of where the numbers were taken."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"nproc={os.cpu_count()} python={platform.python_version()} "
        f"platform={platform.platform(terse=True)} loadavg(1,5,15 min)={load}"
    )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def run_json_child(args: Sequence[str], *, timeout: float) -> dict[str, Any]:
    """Run `python -m ...` in a child process and parse the last stdout line as JSON."""
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    last = proc.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(last)
    return result


def max_rss_mb() -> float:
    """Peak resident memory of this process image so far, in MB.

    VmHWM belongs to the current address space, so a child started with exec reports its own
    peak; ru_maxrss would carry the parent's peak across vfork+exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    """`with Timer() as t: ...; t.seconds`."""

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.started


def free_port() -> int:
    """A free loopback TCP port."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
