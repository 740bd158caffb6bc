"""The report scheduler: triggers at local time across DST, wiring, catch-up, rescheduling."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from freezegun import freeze_time
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import make_sessionmaker
from bot.runtime import start_reports
from bot.services import Services
from jobs.scheduler import ReportScheduler, monthly_trigger, weekly_trigger
from jobs.weekly import RunOutcome
from models.tables import ReportRun, Workspace
from models.weekly import effective_report_time
from tests.conftest import make_settings
from tests.jobs.report_data import counts, seed

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def fire_times(trigger: CronTrigger, start: datetime, count: int) -> list[datetime]:
    """The trigger's next `count` fire times after `start`, as APScheduler computes them."""
    times: list[datetime] = []
    previous: datetime | None = None
    now = start
    for _ in range(count):
        nxt = trigger.get_next_fire_time(previous, now)
        assert nxt is not None
        times.append(nxt)
        previous, now = nxt, nxt + timedelta(microseconds=1)
    return times


# --- triggers ----------------------------------------------------------------------------


def test_weekly_trigger_keeps_local_time_when_clocks_go_forward() -> None:
    trigger = weekly_trigger(weekday=0, at=time(8), tz=BERLIN)
    fires = fire_times(trigger, datetime(2025, 3, 20, tzinfo=UTC), 3)
    assert [f.astimezone(BERLIN).replace(tzinfo=None) for f in fires] == [
        datetime(2025, 3, 24, 8),
        datetime(2025, 3, 31, 8),  # the day after the change (30 March)
        datetime(2025, 4, 7, 8),
    ]
    assert [f.astimezone(UTC).hour for f in fires] == [7, 6, 6]


def test_weekly_trigger_keeps_local_time_when_clocks_go_back() -> None:
    trigger = weekly_trigger(weekday=0, at=time(8), tz=BERLIN)
    fires = fire_times(trigger, datetime(2025, 10, 16, tzinfo=UTC), 3)
    assert [f.astimezone(BERLIN).date() for f in fires] == [
        date(2025, 10, 20),
        date(2025, 10, 27),  # the day after the change (26 October)
        date(2025, 11, 3),
    ]
    assert [f.astimezone(UTC).hour for f in fires] == [6, 7, 7]
    assert len(set(fires)) == 3


def test_a_sunday_report_on_the_night_clocks_change_fires_once_at_local_time() -> None:
    # New York changes on Sunday 2 November 2025 at 02:00; 04:00 is the earliest time allowed.
    trigger = weekly_trigger(weekday=6, at=time(4), tz=NEW_YORK)
    fires = fire_times(trigger, datetime(2025, 10, 31, tzinfo=UTC), 2)
    assert [f.astimezone(NEW_YORK).replace(tzinfo=None) for f in fires] == [
        datetime(2025, 11, 2, 4),
        datetime(2025, 11, 9, 4),
    ]
    spring = fire_times(trigger, datetime(2025, 3, 7, tzinfo=UTC), 2)
    assert [f.astimezone(NEW_YORK).replace(tzinfo=None) for f in spring] == [
        datetime(2025, 3, 9, 4),  # the night of the change
        datetime(2025, 3, 16, 4),
    ]


def test_the_quiet_window_is_why_a_stored_0230_is_moved() -> None:
    # What APScheduler 3.11 does with 02:30 on the night clocks go back: it fires twice.
    naive = CronTrigger(day_of_week="sun", hour=2, minute=30, timezone=BERLIN)
    fires = fire_times(naive, datetime(2025, 10, 25, 12, tzinfo=UTC), 2)
    assert fires[0].date() == fires[1].date() == date(2025, 10, 26)
    # Docket never schedules it: a stored 02:30 runs at 04:00, once that night.
    at, why = effective_report_time("02:30")
    assert at == time(4) and why is not None
    safe = fire_times(weekly_trigger(weekday=6, at=at, tz=BERLIN), fires[0] - timedelta(hours=3), 2)
    assert [f.astimezone(BERLIN).replace(tzinfo=None) for f in safe] == [
        datetime(2025, 10, 26, 4),
        datetime(2025, 11, 2, 4),
    ]


def test_monthly_trigger_includes_the_first_working_day_of_each_month() -> None:
    trigger = monthly_trigger(at=time(9), tz=BERLIN)
    fires = fire_times(trigger, datetime(2025, 5, 20, tzinfo=UTC), 8)
    days = [f.astimezone(BERLIN).date() for f in fires]
    # June 2025 starts on a Sunday, November on a Saturday.
    assert date(2025, 6, 2) in days and date(2025, 6, 1) not in days
    assert all(d.day <= 3 and d.weekday() < 5 for d in days)
    assert all(f.astimezone(BERLIN).time() == time(9) for f in fires)


# --- wiring ------------------------------------------------------------------------------


class Recorder:
    """A stand-in for jobs.weekly.run_due that records each call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.called = asyncio.Event()

    async def __call__(self, services: Services, **kwargs: Any) -> list[RunOutcome]:
        self.calls.append(kwargs)
        self.called.set()
        return []


async def _set_workspace(engine: AsyncEngine, workspace: Workspace, **values: Any) -> None:
    async with make_sessionmaker(engine)() as session, session.begin():
        ws = await session.get(Workspace, workspace.id)
        assert ws is not None
        for key, value in values.items():
            setattr(ws, key, value)
        session.add(ws)


@pytest.mark.parametrize(
    ("frozen", "expected_utc"),
    [
        # Monday 31 March 2025 08:00 CEST, the first Monday after clocks went forward.
        (datetime(2025, 3, 31, 5, 59, 59), datetime(2025, 3, 31, 6, 0, tzinfo=UTC)),
        # Monday 27 October 2025 08:00 CET, the first Monday after clocks went back.
        (datetime(2025, 10, 27, 6, 59, 59), datetime(2025, 10, 27, 7, 0, tzinfo=UTC)),
    ],
    ids=["spring-forward", "fall-back"],
)
async def test_the_scheduler_fires_the_run_at_local_eight(
    services: Services, workspace: Workspace, frozen: datetime, expected_utc: datetime
) -> None:
    recorder = Recorder()
    with freeze_time(frozen, tick=True, real_asyncio=True):
        services.clock = lambda: datetime.now(UTC)
        reports = ReportScheduler(services, run_due=recorder)
        await reports.start()
        try:
            # The clock ticks: on a busy machine the run may already have fired by the time
            # start() returns, so what is checked is the run itself and the one after it.
            await asyncio.wait_for(recorder.called.wait(), timeout=5)
            job = reports.scheduler.get_job(reports.job_id(workspace.id or 0, "weekly"))
        finally:
            await reports.stop()
    [call] = recorder.calls
    assert call["workspace_id"] == workspace.id and call["kinds"] == ("weekly",)
    assert expected_utc <= call["now"] < expected_utc + timedelta(seconds=5)
    # The next run is a week later at local eight again, whatever the offset then.
    assert job is not None and job.next_run_time == expected_utc + timedelta(days=7)


# --- catch-up and rescheduling -------------------------------------------------------------


async def _wait_for_runs(engine: AsyncEngine, count: int, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        runs, _rows = await counts(engine)
        if len(runs) >= count and all(r.status != "claimed" for r in runs):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"expected {count} finished runs, have {runs}")
        await asyncio.sleep(0.05)


async def test_after_three_weeks_down_start_up_posts_the_missed_weeks_once_oldest_first(
    services: Services, engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    await seed(engine, workspace.id, weeks=8, since=datetime(2025, 4, 1, tzinfo=UTC))
    await _set_workspace(engine, workspace, monthly_post=False)
    # Reported up to W20 (posted Monday 19 May), then the service was down for three weeks.
    async with make_sessionmaker(engine)() as session, session.begin():
        for key in (
            "2025-W14",
            "2025-W15",
            "2025-W16",
            "2025-W17",
            "2025-W18",
            "2025-W19",
            "2025-W20",
        ):
            session.add(
                ReportRun(workspace_id=workspace.id, kind="weekly", period_key=key, status="queued")
            )
    settings = make_settings(docket_scheduler=True)
    services.settings = settings
    # Back on Monday 9 June 2025 at 10:00 in Berlin, after W23's post time.
    with freeze_time(datetime(2025, 6, 9, 8, 0), real_asyncio=True):
        services.clock = lambda: datetime.now(UTC)
        reports = await start_reports(services)
        assert reports is not None and services.on_reschedule is not None
        try:
            await _wait_for_runs(engine, 10)
        finally:
            await reports.stop()
        runs, rows = await counts(engine)
        new = [r.period_key for r in runs[7:]]
        assert new == ["2025-W21", "2025-W22", "2025-W23"]
        assert all(r.status == "queued" for r in runs)
        posts = [r.idempotency_key for r in rows if r.kind == "slack"]
        assert posts == [f"report:{workspace.id}:weekly:2025-W{n}" for n in (21, 22, 23)]
        assert len(rows) == 6  # and a chart each, after its post

        # Restarting again posts nothing twice.
        again = ReportScheduler(services)
        await again.start()
        try:
            await again.catch_up()
        finally:
            await again.stop()
    assert [len(x) for x in await counts(engine)] == [10, 6]


async def test_start_is_off_when_the_setting_says_so(services: Services) -> None:
    assert await start_reports(services) is None
    assert services.on_reschedule is None


async def test_a_monthly_post_goes_out_on_the_first_working_day(
    services: Services, engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    await seed(engine, workspace.id, since=datetime(2025, 5, 20, tzinfo=UTC))
    reports = ReportScheduler(services)
    # Friday 30 May: nothing monthly is due yet; Monday 2 June 08:00 (Berlin) May is due.
    services.clock = lambda: datetime(2025, 5, 30, 12, 0, tzinfo=UTC)
    await reports.fire(workspace.id, "monthly")
    assert await counts(engine) == ([], [])
    services.clock = lambda: datetime(2025, 6, 2, 6, 0, tzinfo=UTC)
    await reports.fire(workspace.id, "monthly")
    await reports.fire(workspace.id, "monthly")  # a second fire (the 3rd) does nothing
    runs, rows = await counts(engine)
    assert [(r.kind, r.period_key) for r in runs] == [("monthly", "2025-05")]
    assert rows[0].idempotency_key == f"report:{workspace.id}:monthly:2025-05"
    assert "May 2025" in rows[0].payload["args"]["text"]


async def test_a_settings_change_reschedules_at_once(
    services: Services, engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    recorder = Recorder()
    with freeze_time(datetime(2025, 6, 4, 12, 0), real_asyncio=True):  # Wednesday
        reports = ReportScheduler(services, run_due=recorder)
        await reports.start()
        services.on_reschedule = reports.request_reschedule
        try:
            weekly_id = reports.job_id(workspace.id, "weekly")
            monthly_id = reports.job_id(workspace.id, "monthly")
            job = reports.scheduler.get_job(weekly_id)
            assert job is not None
            assert job.next_run_time == datetime(2025, 6, 9, 6, 0, tzinfo=UTC)
            assert reports.scheduler.get_job(monthly_id) is not None

            await _set_workspace(
                engine,
                workspace,
                report_weekday=4,
                report_time="16:30",
                monthly_post=False,
                timezone="America/New_York",
            )
            services.on_reschedule(workspace.id)
            await reports.idle()
            job = reports.scheduler.get_job(weekly_id)
            assert job is not None
            # Friday 6 June 16:30 in New York (EDT) is 20:30 UTC.
            assert job.next_run_time == datetime(2025, 6, 6, 20, 30, tzinfo=UTC)
            assert reports.scheduler.get_job(monthly_id) is None
            # And whatever the new schedule makes due is looked at straight away.
            assert recorder.calls[-1]["kinds"] == ("weekly",)
        finally:
            await reports.stop()


async def test_a_stored_time_in_the_quiet_window_is_scheduled_at_four(
    services: Services, engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    await _set_workspace(engine, workspace, report_time="02:30")
    with freeze_time(datetime(2025, 10, 22, 12, 0), real_asyncio=True):
        reports = ReportScheduler(services, run_due=Recorder())
        await reports.start()
        try:
            job = reports.scheduler.get_job(reports.job_id(workspace.id, "weekly"))
            assert job is not None
            assert job.next_run_time.astimezone(BERLIN) == datetime(
                2025, 10, 27, 4, 0, tzinfo=BERLIN
            )
        finally:
            await reports.stop()


async def test_a_failed_run_is_tried_again_soon_not_next_week(
    services: Services, workspace: Workspace
) -> None:
    assert workspace.id is not None

    async def broken(services: Services, **kwargs: Any) -> list[RunOutcome]:
        raise ConnectionError("database away")

    with freeze_time(datetime(2025, 6, 9, 6, 0), real_asyncio=True):
        reports = ReportScheduler(services, run_due=broken)
        await reports.start()
        try:
            await reports.fire(workspace.id, "weekly")
            retry = reports.scheduler.get_job(f"report-retry:{workspace.id}:weekly")
            assert retry is not None
            assert retry.next_run_time == datetime(2025, 6, 9, 6, 15, tzinfo=UTC)
            assert retry.args == (workspace.id, "weekly")
        finally:
            await reports.stop()
