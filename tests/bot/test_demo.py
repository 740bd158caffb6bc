"""`docket demo`: runs from the installed command with no Slack, prints real figures, draws."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from bot.config import ConfigError
from bot.demo import DEMO_TEAM, run_demo
from jobs.chart import png_size

ROOT = Path(__file__).resolve().parents[2]
DOCKET = Path(sys.executable).parent / "docket"
TODAY = date(2025, 6, 11)  # a Wednesday: "last week" is 2025-W23


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DOCKET_")) and k != "DATABASE_URL"
    }


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _amount(text: str, label: str) -> str:
    match = re.search(rf"^{label}\s+(-?[\d,]+\.\d\d) EUR", text, re.MULTILINE)
    assert match, f"no {label} line in:\n{text}"
    return match.group(1)


def test_docket_demo_prints_last_weeks_report_and_writes_the_chart(tmp_path: Path) -> None:
    assert DOCKET.exists(), "install Docket first (make test installs it)"
    started = time.monotonic()
    result = subprocess.run(
        [str(DOCKET), "demo", "--out", "tmp"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Profitability: Week" in out
    assert re.search(r"^Service levels \d{4}-W\d\d", out, re.MULTILINE)
    assert "Median FR (min)" in out
    for label in ("Revenue", "Labour cost", "Contribution"):
        assert _amount(out, label) not in ("0.00", "-0.00"), label
    for section in ("Top customers", "Under the 30 % target", "Data quality", "Restated"):
        assert section in out, section
    assert "no cost rate for Sam Contractor" in out  # the deliberate gap
    charts = list((tmp_path / "tmp").glob("docket-weekly-*.png"))
    assert len(charts) == 1
    png = charts[0].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png_size(png) == (1200, 675)
    assert (tmp_path / "demo.db").exists()
    assert elapsed < 30, f"the demo took {elapsed:.1f} s"


async def test_each_run_recreates_the_demo_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    texts = []
    for _ in range(2):
        text = await run_demo(
            url=url, out=tmp_path / "out", today=TODAY, timezone="Europe/Berlin", currency="EUR"
        )
        texts.append(text.rsplit("\n", 1)[0])  # without the timing line
    assert texts[0] == texts[1]  # the same data, not twice as much
    assert "Week 2025-W23 (2 Jun – 8 Jun 2025)" in texts[0]
    with sqlite3.connect(tmp_path / "demo.db") as conn:
        assert conn.execute("SELECT team_id FROM workspace").fetchall() == [(DEMO_TEAM,)]


async def test_the_demo_will_not_wipe_a_real_database(tmp_path: Path, sqlite_url: str) -> None:
    target = Path(sqlite_url.split("///", 1)[1])  # a migrated Docket database
    with sqlite3.connect(target) as conn:
        conn.execute(
            "INSERT INTO workspace (team_id, name, timezone, currency, report_weekday, "
            "report_time, monthly_post, target_margin_pct, next_ticket_number, settings, "
            "created_at) VALUES ('TREAL', 'Real', 'UTC', 'EUR', 0, '08:00', 1, 30, 1, '{}', "
            "'2025-01-01 00:00:00')"
        )
    before = _read(target)
    with pytest.raises(ConfigError, match="real workspaces"):
        await run_demo(
            url=f"sqlite+aiosqlite:///{target}",
            out=tmp_path / "out",
            today=TODAY,
            timezone="UTC",
            currency="EUR",
        )
    assert _read(target) == before
