"""CSV rows of the SLA settings: business hours, holidays and policies (models.importer calls
these; the file is all or nothing, so a bad row leaves the settings as they were)."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.sla import PRIORITIES, WEEKDAYS, PriorityTargets
from models.sla_store import SlaInputError, check_clock, save_holiday, save_policy
from models.tables import SlaHours, SlaPolicy

SLA_KINDS = ("business-hours", "holidays", "sla-policies")

SLA_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "business-hours": (("weekday", "start", "end"), ()),
    "holidays": (("date",), ("name",)),
    "sla-policies": (("policy", "calendar", "priority"), ("first_response", "resolution")),
}

_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def parse_weekday(text: str) -> int:
    """0 for Monday: `mon`, `Monday` or the ISO number `1`..`7`."""
    value = text.strip().lower()
    if value.isdigit() and 1 <= int(value) <= 7:
        return int(value) - 1
    for index, (short, full) in enumerate(zip(WEEKDAYS, _FULL_DAYS, strict=True)):
        if value in (short, full):
            return index
    raise ValueError(f"weekday {text!r} is not Monday..Sunday (or 1..7)")


async def start_sla_import(*, session: AsyncSession, workspace_id: int, kind: str) -> None:
    """Business hours are replaced as a whole: a weekday with no row is closed."""
    if kind == "business-hours":
        await session.execute(sa.delete(SlaHours).where(col(SlaHours.workspace_id) == workspace_id))


async def apply_sla_row(
    *, session: AsyncSession, workspace_id: int, kind: str, row: dict[str, str]
) -> str:
    """Write one row; returns its key (a repeated key is reported by the importer)."""
    try:
        if kind == "business-hours":
            weekday = parse_weekday(row["weekday"])
            start, end = check_clock(row["start"]), check_clock(row["end"])
            if end <= start:
                raise ValueError(f"end ({end}) must be after start ({start})")
            hours = (
                await session.exec(
                    select(SlaHours).where(
                        SlaHours.workspace_id == workspace_id, SlaHours.weekday == weekday
                    )
                )
            ).first() or SlaHours(workspace_id=workspace_id, weekday=weekday, start=start, end=end)
            hours.start, hours.end = start, end
            session.add(hours)
            await session.flush()
            return f"weekday:{weekday}"
        if kind == "holidays":
            try:
                day = date.fromisoformat(row["date"])
            except ValueError:
                raise ValueError(f"date {row['date']!r} is not a date like 2025-12-25") from None
            await save_holiday(
                session=session, workspace_id=workspace_id, day=day, name=row.get("name", "")
            )
            return f"holiday:{day.isoformat()}"
        if kind == "sla-policies":
            name = row["policy"].strip()
            priority = row["priority"].strip().lower()
            if priority not in PRIORITIES:
                raise ValueError(f"priority {row['priority']!r} is not {', '.join(PRIORITIES)}")
            calendar = row["calendar"].strip().lower()
            existing = (
                await session.exec(
                    select(SlaPolicy).where(
                        SlaPolicy.workspace_id == workspace_id, SlaPolicy.name == name
                    )
                )
            ).first()
            before = existing.calendar if existing is not None else None
            targets = PriorityTargets(
                row.get("first_response") or None, row.get("resolution") or None
            )
            await save_policy(
                session=session,
                workspace_id=workspace_id,
                name=name,
                calendar=calendar,
                targets={priority: targets},
            )
            if before is not None and before != calendar and _seen(session, name):
                raise ValueError(f"policy {name!r} has another calendar on an earlier line")
            _seen(session, name, mark=True)
            return f"policy:{name.casefold()}:{priority}"
    except SlaInputError as exc:
        raise ValueError(str(exc)) from None
    raise ValueError(f"unknown kind {kind!r}")  # pragma: no cover - checked by the caller


def _seen(session: AsyncSession, name: str, *, mark: bool = False) -> bool:
    # Policies written by this import (so a calendar mismatch between two lines is caught).
    seen: set[str] = session.info.setdefault("sla_import_policies", set())
    if mark:
        seen.add(name.casefold())
    return name.casefold() in seen


async def policy_exists(*, session: AsyncSession, workspace_id: int, name: str) -> bool:
    """Whether the workspace has a policy of that name (a contract's `sla_policy`)."""
    stmt = select(SlaPolicy.id).where(
        SlaPolicy.workspace_id == workspace_id, SlaPolicy.name == name
    )
    return (await session.exec(stmt)).first() is not None
