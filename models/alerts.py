"""Monitoring alerts: sources, stored deliveries, and turning alerts into tickets.

A delivery is stored (unique on source and body hash) before the sender gets its 202, then
claimed by a worker and processed in one transaction that also marks it done, so each
delivery changes tickets exactly once, across crashes and replicas. Per alert:

- firing, and its fingerprint (per source) is on an active ticket: one more occurrence (the
  counter and latest details on the card), a notification only when the severity rises;
- firing, otherwise: a new ticket, unless more than the source's `storm_per_minute` new
  alerts arrived in the last minute, when it folds into that customer's storm ticket;
- resolved: a "cleared" note; when the ticket's last firing alert clears, the ticket is
  resolved if the source auto-resolves and no person has touched it, else its assignee hears.

Slack side effects are queued through `AlertHooks` (the Block Kit lives in the adapters).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.alert_formats import (
    FIRING,
    RESOLVED,
    Alert,
    is_storm,
    parse_alerts,
    priority_for,
    rises,
    secret_hash,
)
from models.lifecycle import ACTIVE
from models.notify import ordering_key
from models.sql import dialect, insert_ignore, lease_pending
from models.tables import (
    AlertCustomerMap,
    AlertDelivery,
    AlertSource,
    AlertState,
    Customer,
    EventKind,
    Member,
    OutboxMessage,
    OutboxStatus,
    Priority,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from models.tickets import (
    TicketCreate,
    TicketUpdate,
    active_contracts,
    create_ticket,
    created_event,
    get_ticket,
    update_ticket,
    workspace_today,
)

MAX_ATTEMPTS = 5
STORM_WINDOW = timedelta(minutes=1)
STORM_LIST_MAX = 200
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_ACTIVE = [s.value for s in ACTIVE]


class AlertSourceError(ValueError):
    """A source that cannot be created (bad or taken name, bad setting)."""


@dataclass(frozen=True)
class AlertInfo:
    """What an alert's card shows beside the ticket: plain values for the Block Kit builders."""

    source: str
    kind: str
    status: str
    severity: str
    occurrences: int
    details: str
    url: str | None
    customer_unknown: bool
    customer_value: str | None
    last_at: datetime
    listed: tuple[str, ...] = ()
    listed_total: int = 0


class AlertHooks(Protocol):
    """Slack side effects, queued in the processing transaction."""

    async def opened(
        self, *, session: AsyncSession, ticket: Ticket, info: AlertInfo, at: datetime
    ) -> None:
        """A new alert (or storm) ticket: post its card in triage."""
        ...

    async def changed(
        self, *, session: AsyncSession, ticket: Ticket, info: AlertInfo, at: datetime
    ) -> None:
        """Occurrences, details or status changed: refresh the card."""
        ...

    async def severity_rose(
        self, *, session: AsyncSession, ticket: Ticket, info: AlertInfo, at: datetime
    ) -> None:
        """An open alert became more urgent: tell the assignee, or the card's thread."""
        ...

    async def cleared(
        self,
        *,
        session: AsyncSession,
        ticket: Ticket,
        info: AlertInfo,
        assignee: Member,
        at: datetime,
    ) -> None:
        """A ticket a person works on has no firing alert left: tell its assignee."""
        ...


@dataclass
class Outcome:
    """What processing one delivery did (stored on the delivery for admins)."""

    opened: list[int] = field(default_factory=list)
    occurrences: int = 0
    cleared: int = 0
    resolved: list[int] = field(default_factory=list)
    storm: list[int] = field(default_factory=list)
    ignored: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "occurrences": self.occurrences,
            "cleared": self.cleared,
            "resolved": self.resolved,
            "storm": self.storm,
            "ignored": self.ignored,
        }


# -- sources ---------------------------------------------------------------------------------


def new_secret() -> str:
    return secrets.token_urlsafe(32)


async def create_source(
    *,
    session: AsyncSession,
    workspace_id: int,
    name: str,
    at: datetime,
    secret: str | None = None,
    customer_label: str = "customer",
    auto_resolve: bool = False,
    storm_per_minute: int = 20,
    severity_map: dict[str, str] | None = None,
) -> AlertSource:
    """Create a source (its secret is generated unless given). Raises AlertSourceError."""
    name = name.strip().lower()
    if not _NAME.match(name):
        raise AlertSourceError(
            "A source name is 1-64 characters: lower-case letters, digits, '-' and '_'."
        )
    secret = new_secret() if secret is None else secret.strip()
    if len(secret) < 16 or len(secret) > 128:
        raise AlertSourceError("A secret must be 16 to 128 characters long.")
    label = customer_label.strip()
    if not label or len(label) > 100:
        raise AlertSourceError("The customer label must be 1-100 characters.")
    if storm_per_minute < 1:
        raise AlertSourceError("The storm limit must be at least 1 alert a minute.")
    for severity, priority in (severity_map or {}).items():
        try:
            Priority(priority)
        except ValueError:
            raise AlertSourceError(f"'{priority}' (for {severity}) is not a priority.") from None
    new_id = await insert_ignore(
        session,
        AlertSource,
        {
            "workspace_id": workspace_id,
            "name": name,
            "secret": secret,
            "secret_hash": secret_hash(secret),
            "customer_label": label,
            "auto_resolve": auto_resolve,
            "storm_per_minute": storm_per_minute,
            "severity_map": dict(severity_map or {}),
            "active": True,
            "created_at": at,
        },
        conflict=["workspace_id", "name"],
    )
    if new_id is None:
        raise AlertSourceError(f"There is already a source called {name}.")
    source = await session.get(AlertSource, new_id)
    assert source is not None
    return source


async def source_by_name(
    *, session: AsyncSession, workspace_id: int, name: str
) -> AlertSource | None:
    """The active source called `name` in this workspace."""
    stmt = select(AlertSource).where(
        AlertSource.workspace_id == workspace_id,
        AlertSource.name == name.strip().lower(),
        col(AlertSource.active).is_(True),
    )
    return (await session.exec(stmt)).first()


async def list_sources(*, session: AsyncSession, workspace_id: int) -> list[AlertSource]:
    """The workspace's sources, by name."""
    stmt = (
        select(AlertSource)
        .where(AlertSource.workspace_id == workspace_id)
        .order_by(col(AlertSource.name))
    )
    return list((await session.exec(stmt)).all())


async def map_customer(
    *, session: AsyncSession, workspace_id: int, source_id: int, value: str, customer_id: int
) -> None:
    """Map a source's label value to a customer (replacing an earlier mapping)."""
    customer = await session.get(Customer, customer_id)
    if customer is None or customer.workspace_id != workspace_id:
        raise AlertSourceError("That customer does not exist.")
    await session.execute(
        sa.delete(AlertCustomerMap).where(
            col(AlertCustomerMap.source_id) == source_id, col(AlertCustomerMap.value) == value
        )
    )
    session.add(
        AlertCustomerMap(
            workspace_id=workspace_id, source_id=source_id, value=value, customer_id=customer_id
        )
    )
    await session.flush()


# -- deliveries ------------------------------------------------------------------------------


async def store_delivery(
    *,
    session: AsyncSession,
    workspace_id: int,
    source_id: int,
    body_hash: str,
    body: dict[str, Any],
    alert_count: int,
    at: datetime,
) -> int | None:
    """Store an accepted body; None when the same body from this source is already stored."""
    new_id = await insert_ignore(
        session,
        AlertDelivery,
        {
            "workspace_id": workspace_id,
            "source_id": source_id,
            "body_hash": body_hash,
            "body": body,
            "alert_count": alert_count,
            "status": "pending",
            "attempts": 0,
            "outcome": {},
            "received_at": at,
        },
        conflict=["source_id", "body_hash"],
    )
    session.info["alerts_dirty"] = True
    return new_id


async def claim_deliveries(
    *,
    session: AsyncSession,
    workspace_id: int,
    owner: str,
    now: datetime,
    limit: int = 10,
    lease_seconds: int = 120,
) -> list[int]:
    """Lease pending deliveries of one workspace to `owner`; `processed_at` is the deadline."""
    rows = await lease_pending(
        session,
        AlertDelivery,
        AlertDelivery.workspace_id == workspace_id,
        now=now,
        limit=limit,
        lease_seconds=lease_seconds,
    )
    for row in rows:
        row.lease_owner = owner
    await session.flush()
    return [row.id for row in rows if row.id is not None]


async def _take(
    session: AsyncSession, workspace_id: int, delivery_id: int, owner: str
) -> AlertDelivery | None:
    """The delivery, locked, if `owner` still holds its lease (else another worker took it)."""
    stmt = (
        select(AlertDelivery)
        .where(
            AlertDelivery.id == delivery_id,
            AlertDelivery.workspace_id == workspace_id,
            AlertDelivery.status == "pending",
            AlertDelivery.lease_owner == owner,
        )
        .execution_options(populate_existing=True)
    )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update()
    return (await session.exec(stmt)).first()


async def process_claimed(
    *,
    session: AsyncSession,
    workspace_id: int,
    delivery_ids: Sequence[int],
    owner: str,
    hooks: AlertHooks,
    at: datetime,
) -> list[Outcome]:
    """Process leased deliveries in order and mark each done, in the caller's one transaction.

    A delivery whose lease was lost (another worker took it over) is left alone. Each card
    touched is refreshed once, after all of them, so a burst of repeats costs one refresh.
    """
    outcomes = []
    changed: set[int] = set()
    for delivery_id in delivery_ids:
        delivery = await _take(session, workspace_id, delivery_id, owner)
        if delivery is None:
            continue
        source = await session.get(AlertSource, delivery.source_id)
        outcome = Outcome()
        if source is not None:
            alerts = parse_alerts(delivery.body, customer_label=source.customer_label)
            await _apply(session, source, alerts, hooks, at, outcome, changed)
        delivery.status = "done"
        delivery.processed_at = at
        delivery.outcome = outcome.as_dict()
        session.add(delivery)
        await session.flush()
        outcomes.append(outcome)
    for ticket_id in sorted(changed):
        fresh = await session.get(Ticket, ticket_id, populate_existing=True)
        info = await alert_info_for_ticket(
            session=session, workspace_id=workspace_id, ticket_id=ticket_id
        )
        if fresh is not None and info is not None:
            await hooks.changed(session=session, ticket=fresh, info=info, at=at)
    return outcomes


async def fail_delivery(
    *, session: AsyncSession, workspace_id: int, delivery_id: int, at: datetime, error: str
) -> None:
    """Record a failed attempt: retried after a back-off, parked as failed after a few."""
    row = await session.get(AlertDelivery, delivery_id)
    if row is None or row.workspace_id != workspace_id or row.status != "pending":
        return
    row.last_error = error[:2000]
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
        row.processed_at = at
    else:
        row.processed_at = at + timedelta(seconds=5 * row.attempts)
    session.add(row)


async def pending_count(*, session: AsyncSession, workspace_id: int) -> int:
    """Deliveries still waiting to be processed."""
    stmt = (
        select(sa.func.count())
        .select_from(AlertDelivery)
        .where(AlertDelivery.workspace_id == workspace_id, AlertDelivery.status == "pending")
    )
    return int((await session.exec(stmt)).one())


# -- processing ------------------------------------------------------------------------------


def _info(source: AlertSource, state: AlertState) -> AlertInfo:
    details = state.details or {}
    listed = tuple(str(t) for t in details.get("listed", []))
    return AlertInfo(
        source=source.name,
        kind=state.kind,
        status=state.status,
        severity=state.severity,
        occurrences=state.occurrences,
        details=str(details.get("text") or ""),
        url=details.get("url"),
        customer_unknown=state.customer_id is None,
        customer_value=state.customer_value,
        last_at=state.last_at,
        listed=listed,
        listed_total=int(details.get("listed_total") or len(listed)),
    )


async def _customer_for(
    session: AsyncSession, source: AlertSource, value: str | None, cache: dict[str, int | None]
) -> int | None:
    """The source's own mapping, then a customer's external id (when customers have one),
    then a customer's exact name (any case)."""
    if not value:
        return None
    if value in cache:
        return cache[value]
    found = (
        await session.exec(
            select(AlertCustomerMap.customer_id).where(
                AlertCustomerMap.source_id == source.id, AlertCustomerMap.value == value
            )
        )
    ).first()
    external = getattr(Customer, "external_id", None)
    if found is None and external is not None:
        found = (
            await session.exec(
                select(Customer.id).where(
                    Customer.workspace_id == source.workspace_id, external == value
                )
            )
        ).first()
    if found is None:
        found = (
            await session.exec(
                select(Customer.id).where(
                    Customer.workspace_id == source.workspace_id,
                    sa.func.lower(col(Customer.name)) == value.strip().lower(),
                )
            )
        ).first()
    cache[value] = found
    return found


async def _recent_new(session: AsyncSession, source: AlertSource, at: datetime) -> int:
    stmt = (
        select(sa.func.count())
        .select_from(AlertState)
        .where(
            AlertState.workspace_id == source.workspace_id,
            AlertState.source_id == source.id,
            AlertState.kind == "alert",
            col(AlertState.opened_at) > at - STORM_WINDOW,
        )
    )
    return int((await session.exec(stmt)).one())


def _description(alert: Alert) -> str:
    parts = [alert.details] if alert.details else []
    if alert.url:
        parts.append(f"Source: {alert.url}")
    if alert.labels:
        parts.append("Labels: " + ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())))
    return "\n\n".join(parts)[:4000]


async def _open_ticket(
    session: AsyncSession,
    source: AlertSource,
    *,
    title: str,
    description: str,
    priority: Priority,
    customer_id: int | None,
    data: dict[str, Any],
    at: datetime,
) -> Ticket:
    """A ticket through the ticket rules; the customer's only active contract is preselected
    (so its SLA applies)."""
    contract_id = None
    if customer_id is not None:
        today = await workspace_today(session=session, workspace_id=source.workspace_id, at=at)
        contracts = await active_contracts(
            session=session,
            workspace_id=source.workspace_id,
            customer_id=customer_id,
            on=today,
            limit=2,
        )
        if len(contracts) == 1:
            contract_id = contracts[0].id
    ticket = await create_ticket(
        session=session,
        workspace_id=source.workspace_id,
        data=TicketCreate(
            title=title or "Alert",
            description=description,
            priority=priority,
            customer_id=customer_id,
            contract_id=contract_id,
        ),
        actor=None,
        at=at,
    )
    assert ticket.id is not None
    created = await created_event(session=session, ticket_id=ticket.id)
    if created is not None:
        created.actor_label = f"{source.name} (monitoring)"
        created.data = {**(created.data or {}), "via": "alert", "source": source.name, **data}
        session.add(created)
    await session.flush()
    return ticket


async def _touched(session: AsyncSession, ticket: Ticket) -> bool:
    """Whether a person has worked on the ticket (assigned it, changed it, noted, logged)."""
    if ticket.assignee_id is not None:
        return True
    stmt = select(TicketEvent.id).where(
        TicketEvent.workspace_id == ticket.workspace_id,
        TicketEvent.ticket_id == ticket.id,
        col(TicketEvent.actor_id).is_not(None),
    )
    return (await session.exec(stmt.limit(1))).first() is not None


async def _apply(
    session: AsyncSession,
    source: AlertSource,
    alerts: Sequence[Alert],
    hooks: AlertHooks,
    at: datetime,
    outcome: Outcome,
    changed: set[int],
) -> None:
    # The last word on each fingerprint in one body wins.
    latest: dict[str, Alert] = {}
    for alert in alerts:
        latest.pop(alert.fingerprint, None)
        latest[alert.fingerprint] = alert
    stmt = (
        select(AlertState)
        .where(
            AlertState.source_id == source.id,
            col(AlertState.fingerprint).in_(list(latest)),
        )
        .order_by(col(AlertState.id))
        .execution_options(populate_existing=True)
    )
    if dialect(session) == "postgresql":
        # Two replicas counting occurrences of one alert must not both add to the same count.
        stmt = stmt.with_for_update()
    states = {s.fingerprint: s for s in (await session.exec(stmt)).all()}
    ticket_ids = {s.ticket_id for s in states.values() if s.ticket_id is not None}
    tickets: dict[int, Ticket] = {}
    if ticket_ids:
        rows = await session.exec(select(Ticket).where(col(Ticket.id).in_(ticket_ids)))
        tickets = {t.id: t for t in rows.all() if t.id is not None}

    def active_ticket(state: AlertState | None) -> Ticket | None:
        if state is None or state.ticket_id is None:
            return None
        ticket = tickets.get(state.ticket_id)
        return ticket if ticket is not None and ticket.status in _ACTIVE else None

    cache: dict[str, int | None] = {}
    new: list[Alert] = []
    for alert in latest.values():
        state = states.get(alert.fingerprint)
        current = active_ticket(state)
        if alert.status == FIRING and (state is None or current is None):
            new.append(alert)
        elif alert.status == FIRING and state is not None and current is not None:
            await _occurrence(session, source, state, current, alert, hooks, at)
            outcome.occurrences += 1
            changed.add(current.id or 0)
        elif alert.status == RESOLVED and state is not None and state.status == FIRING:
            state.status = RESOLVED
            state.cleared_at = at
            state.last_at = at
            session.add(state)
            outcome.cleared += 1
            if current is not None:
                await _clear(session, source, state, current, alert, hooks, at, outcome)
                changed.add(current.id or 0)
        else:
            outcome.ignored += 1
    if new:
        recent = await _recent_new(session, source, at)
        storm = is_storm(
            recent_new=recent, incoming_new=len(new), per_minute=source.storm_per_minute
        )
        for alert in new:
            customer_id = await _customer_for(session, source, alert.customer, cache)
            if storm:
                storm_ticket = await _storm_ticket(
                    session, source, customer_id, alert, hooks, at, outcome
                )
                changed.add(storm_ticket)
                await _reset_state(
                    session,
                    source,
                    states.get(alert.fingerprint),
                    alert,
                    customer_id,
                    storm_ticket,
                    at,
                    kind="alert",
                )
                continue
            ticket = await _open_ticket(
                session,
                source,
                title=alert.title,
                description=_description(alert),
                priority=priority_for(alert.severity, source.severity_map),
                customer_id=customer_id,
                data={"fingerprint": alert.fingerprint, "customer_value": alert.customer},
                at=at,
            )
            outcome.opened.append(ticket.number)
            state = await _reset_state(
                session,
                source,
                states.get(alert.fingerprint),
                alert,
                customer_id,
                ticket.id,
                at,
                kind="alert",
            )
            await hooks.opened(session=session, ticket=ticket, info=_info(source, state), at=at)


async def _set(
    session: AsyncSession, ticket: Ticket, changes: TicketUpdate, at: datetime
) -> Ticket:
    """Apply a change made by the monitoring system at the ticket's current version."""
    assert ticket.id is not None
    current = await get_ticket(
        session=session, workspace_id=ticket.workspace_id, ticket_id=ticket.id
    )
    change = await update_ticket(
        session=session,
        workspace_id=ticket.workspace_id,
        ticket_id=ticket.id,
        expected_version=current.version,
        changes=changes,
        actor=None,
        at=at,
    )
    return change.ticket


async def _reset_state(
    session: AsyncSession,
    source: AlertSource,
    state: AlertState | None,
    alert: Alert,
    customer_id: int | None,
    ticket_id: int | None,
    at: datetime,
    *,
    kind: str,
) -> AlertState:
    """Start a new episode of an alert (first firing, or firing again after its ticket ended)."""
    if state is None:
        assert source.id is not None
        state = AlertState(workspace_id=source.workspace_id, source_id=source.id, fingerprint="")
    state.fingerprint = alert.fingerprint
    state.kind = kind
    state.ticket_id = ticket_id
    state.customer_id = customer_id
    state.customer_value = (alert.customer or None) and alert.customer[:200]
    state.status = FIRING
    state.severity = alert.severity
    state.title = alert.title[:300]
    state.occurrences = 1
    state.details = {"text": alert.details, "url": alert.url}
    state.card_row_id = None
    state.opened_at = at
    state.last_at = at
    state.cleared_at = None
    session.add(state)
    await session.flush()
    return state


async def _occurrence(
    session: AsyncSession,
    source: AlertSource,
    state: AlertState,
    ticket: Ticket,
    alert: Alert,
    hooks: AlertHooks,
    at: datetime,
) -> None:
    state.occurrences += 1
    state.status = FIRING
    state.cleared_at = None
    state.last_at = at
    state.details = {**(state.details or {}), "text": alert.details, "url": alert.url}
    before = priority_for(state.severity, source.severity_map)
    after = priority_for(alert.severity, source.severity_map)
    state.severity = alert.severity
    session.add(state)
    if rises(before, after) and rises(ticket.priority, after):
        fresh = await _set(session, ticket, TicketUpdate(priority=after), at)
        await hooks.severity_rose(session=session, ticket=fresh, info=_info(source, state), at=at)


async def _clear(
    session: AsyncSession,
    source: AlertSource,
    state: AlertState,
    ticket: Ticket,
    alert: Alert,
    hooks: AlertHooks,
    at: datetime,
    outcome: Outcome,
) -> None:
    assert ticket.id is not None
    session.add(
        TicketEvent(
            workspace_id=ticket.workspace_id,
            ticket_id=ticket.id,
            kind=EventKind.NOTE,
            actor_label=f"{source.name} (monitoring)",
            body=f"Cleared: {alert.title}",
            data={"alert": "cleared", "fingerprint": alert.fingerprint},
            created_at=at,
        )
    )
    still_firing = (
        await session.exec(
            select(sa.func.count())
            .select_from(AlertState)
            .where(
                AlertState.ticket_id == ticket.id,
                AlertState.kind == "alert",
                AlertState.status == FIRING,
            )
        )
    ).one()
    if still_firing:
        return
    if not await _touched(session, ticket):
        if source.auto_resolve:
            await _set(session, ticket, TicketUpdate(status=TicketStatus.RESOLVED), at)
            outcome.resolved.append(ticket.number)
        return
    if ticket.assignee_id is not None:
        assignee = await session.get(Member, ticket.assignee_id)
        if assignee is not None:
            await hooks.cleared(
                session=session, ticket=ticket, info=_info(source, state), assignee=assignee, at=at
            )


async def _storm_ticket(
    session: AsyncSession,
    source: AlertSource,
    customer_id: int | None,
    alert: Alert,
    hooks: AlertHooks,
    at: datetime,
    outcome: Outcome,
) -> int:
    """The customer's open storm ticket for this source (opened now if there is none), with
    `alert` added to its list; returns the ticket's id."""
    assert source.id is not None
    key = f"storm:{customer_id or 0}"
    stmt = (
        select(AlertState)
        .where(AlertState.source_id == source.id, AlertState.fingerprint == key)
        .execution_options(populate_existing=True)
    )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update()
    state = (await session.exec(stmt)).first()
    ticket = None
    if state is not None and state.ticket_id is not None:
        ticket = await session.get(Ticket, state.ticket_id)
        if ticket is not None and ticket.status not in _ACTIVE:
            ticket = None
    line = alert.title if not alert.customer or customer_id else f"{alert.title} ({alert.customer})"
    priority = priority_for(alert.severity, source.severity_map)
    if state is not None and ticket is not None:
        details = dict(state.details or {})
        listed = list(details.get("listed", []))
        if len(listed) < STORM_LIST_MAX:
            listed.append(line)
        details["listed"] = listed
        details["listed_total"] = int(details.get("listed_total") or 0) + 1
        state.details = details
        state.occurrences += 1
        state.last_at = at
        session.add(state)
        if rises(ticket.priority, priority):
            await _set(session, ticket, TicketUpdate(priority=priority), at)
        return ticket.id or 0
    name = None
    if customer_id is not None:
        customer = await session.get(Customer, customer_id)
        name = customer.name if customer else None
    title = f"Alert storm from {source.name}" + (f" for {name}" if name else "")
    ticket = await _open_ticket(
        session,
        source,
        title=title,
        description=(
            f"More than {source.storm_per_minute} new alerts a minute came from {source.name}; "
            "they are listed on this ticket instead of opening one ticket each."
        ),
        priority=priority,
        customer_id=customer_id,
        data={"storm": True},
        at=at,
    )
    outcome.storm.append(ticket.number)
    storm_alert = Alert(
        fingerprint=key, status=FIRING, title=title, severity=alert.severity, customer=None
    )
    state = await _reset_state(
        session, source, state, storm_alert, customer_id, ticket.id, at, kind="storm"
    )
    state.customer_value = alert.customer[:200] if alert.customer and not customer_id else None
    state.details = {"listed": [line], "listed_total": 1}
    session.add(state)
    await session.flush()
    await hooks.opened(session=session, ticket=ticket, info=_info(source, state), at=at)
    return ticket.id or 0


async def alert_info_for_ticket(
    *, session: AsyncSession, workspace_id: int, ticket_id: int
) -> AlertInfo | None:
    """The alert (or storm) a ticket stands for, for its card; None for other tickets."""
    stmt = (
        select(AlertState, AlertSource)
        .join(AlertSource, col(AlertSource.id) == col(AlertState.source_id))
        .where(AlertState.workspace_id == workspace_id, AlertState.ticket_id == ticket_id)
        .order_by(sa.case((col(AlertState.kind) == "storm", 0), else_=1), col(AlertState.id))
        .limit(1)
    )
    row = (await session.exec(stmt)).first()
    if row is None:
        return None
    state, source = row
    return _info(source, state)


def card_refresh_prefix(ticket_id: int) -> str:
    """The idempotency-key prefix of an alert card's refreshes."""
    return f"ticket:{ticket_id}:alert-card:"


async def waiting_card_refresh(
    *, session: AsyncSession, workspace_id: int, ticket_id: int
) -> int | None:
    """The newest refresh of the ticket's card still waiting in the outbox (not yet leased)."""
    stmt = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.ordering_key == ordering_key(ticket_id),
            OutboxMessage.workspace_id == workspace_id,
            col(OutboxMessage.idempotency_key).startswith(card_refresh_prefix(ticket_id)),
            OutboxMessage.status == OutboxStatus.PENDING,
            col(OutboxMessage.lease_until).is_(None),
        )
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    )
    return (await session.exec(stmt)).first()
