"""Docket's tables. Every row is scoped by workspace; money is integer minor units; times are UTC.

Inputs (what a person or an import supplies) live beside the persistence functions that take
them; these classes are the stored shape only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Field, SQLModel


def utcnow() -> datetime:
    """The current instant, tz-aware UTC (the default for created/updated columns)."""
    return datetime.now(UTC)


def _enum(length: int = 32) -> Any:
    # Enums are stored as plain strings: no database enum types to migrate.
    return sa.String(length)


class Role(StrEnum):
    """What a member may do. Anyone may create tickets."""

    AGENT = "agent"  # works tickets, logs time
    MANAGER = "manager"  # also sees cost, revenue and margin
    ADMIN = "admin"  # also manages people, rates, contracts and settings


class TicketStatus(StrEnum):
    """Ticket lifecycle; the allowed moves are in models.lifecycle."""

    NEW = "new"
    OPEN = "open"
    WAITING = "waiting"  # waiting on the customer
    RESOLVED = "resolved"
    CLOSED = "closed"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class EventKind(StrEnum):
    """Kinds of entries in a ticket's audit trail."""

    CREATED = "created"
    EDITED = "edited"
    STATUS = "status"
    ASSIGNMENT = "assignment"
    NOTE = "note"  # internal, never sent to the customer
    CUSTOMER_REPLY = "customer_reply"
    AGENT_REPLY = "agent_reply"
    TIME_LOGGED = "time_logged"
    MAIL_NOTICE = "mail_notice"  # auto-replies and bounces, recorded only


class ContractKind(StrEnum):
    HOURLY = "hourly"
    FIXED = "fixed"  # fixed monthly fee
    BLOCK = "block"  # prepaid block of hours


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class Workspace(SQLModel, table=True):
    """A Slack workspace (team) and its Docket settings."""

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32, unique=True)
    name: str = Field(default="", max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    currency: str = Field(default="EUR", max_length=3)
    triage_channel: str | None = Field(default=None, max_length=32)
    managers_channel: str | None = Field(default=None, max_length=32)
    report_weekday: int = 0  # Monday
    report_time: str = Field(default="08:00", max_length=5)
    monthly_post: bool = True
    target_margin_pct: int = 30
    bot_user_id: str | None = Field(default=None, max_length=32)
    next_ticket_number: int = 1
    settings: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow)
    # The reaction (emoji name, no colons) that turns a customer-channel message into a ticket.
    ticket_reaction: str = Field(
        default="ticket", max_length=64, sa_column_kwargs={"server_default": "ticket"}
    )
    # Share of an SLA target's time at which the person working the ticket is warned.
    sla_warning_pct: int = 75


class MemberGroup(SQLModel, table=True):
    __tablename__ = "member_group"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    name: str = Field(max_length=100)


class Member(SQLModel, table=True):
    """A person on the provider's team (a Slack user, or imported before they join)."""

    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "slack_user_id"),
        sa.Index("ix_member_ws_email", "workspace_id", "email"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    slack_user_id: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=320)
    name: str = Field(default="", max_length=200)
    role: str = Field(default=Role.AGENT, sa_type=_enum())
    group_id: int | None = Field(default=None, foreign_key="member_group.id")
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    # The person's id in the HR or directory system they come from (imports match on it first).
    external_id: str | None = Field(default=None, max_length=100)


class Customer(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("workspace_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    name: str = Field(max_length=200)
    email_domains: str = Field(default="", max_length=1000)  # comma-separated, lower case
    slack_channel: str | None = Field(default=None, max_length=32, index=True)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    # The customer's id in the CRM or accounting system (imports match on it first).
    external_id: str | None = Field(default=None, max_length=100)
    # Where this customer's ticket cards go (the team's own channel); None: the triage channel.
    internal_channel: str | None = Field(default=None, max_length=32)
    # Which customer-facing messages Docket posts in the thread of their channel message.
    notify_ack: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    notify_taken: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    notify_waiting: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    notify_resolved: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})


class Contact(SQLModel, table=True):
    """A person at a customer who may raise tickets."""

    __table_args__ = (sa.UniqueConstraint("workspace_id", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    slack_user_id: str | None = Field(default=None, max_length=32)
    external_id: str | None = Field(default=None, max_length=100)
    active: bool = True


class Contract(SQLModel, table=True):
    """What a customer pays for: hourly, a fixed monthly fee, or a prepaid block of hours."""

    __table_args__ = (sa.UniqueConstraint("workspace_id", "customer_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    name: str = Field(max_length=200)
    kind: str = Field(sa_type=_enum())
    start_date: date
    end_date: date | None = None
    monthly_fee_minor: int = Field(default=0, sa_type=sa.BigInteger)
    block_minutes: int = 0
    block_price_minor: int = Field(default=0, sa_type=sa.BigInteger)
    overage_minor_per_hour: int = Field(default=0, sa_type=sa.BigInteger)
    monthly_direct_cost_minor: int = Field(default=0, sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow)
    external_id: str | None = Field(default=None, max_length=100)
    # The product (item) code invoice lines of this contract carry in the accounting system.
    product_code: str | None = Field(default=None, max_length=100)
    active: bool = True  # retired contracts keep their time and figures
    # The SLA policy's name; None: the workspace default policy (named "default").
    sla_policy: str | None = Field(default=None, max_length=100)


class ChargeRate(SQLModel, table=True):
    """An hourly contract's price per hour from a date on."""

    __tablename__ = "charge_rate"
    __table_args__ = (sa.UniqueConstraint("contract_id", "effective_from"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    contract_id: int = Field(foreign_key="contract.id", index=True)
    effective_from: date
    minor_per_hour: int = Field(sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow)


class CostRate(SQLModel, table=True):
    """A fully loaded hourly cost for a member, a group, or the workspace default (neither set)."""

    __tablename__ = "cost_rate"
    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "subject", "effective_from"),
        sa.Index("ix_cost_rate_member", "member_id"),
        sa.Index("ix_cost_rate_group", "group_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    # "member:<id>", "group:<id>" or "default": one key makes the uniqueness rule simple.
    subject: str = Field(max_length=64)
    member_id: int | None = Field(default=None, foreign_key="member.id")
    group_id: int | None = Field(default=None, foreign_key="member_group.id")
    effective_from: date
    minor_per_hour: int = Field(sa_type=sa.BigInteger)
    inputs: dict[str, Any] | None = Field(default=None, sa_type=JSON)  # calculator audit
    created_at: datetime = Field(default_factory=utcnow)


class Ticket(SQLModel, table=True):
    """A support request. `version` guards concurrent edits (optimistic locking)."""

    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "number"),
        sa.Index("ix_ticket_ws_status", "workspace_id", "status"),
        sa.Index("ix_ticket_ws_assignee", "workspace_id", "assignee_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    number: int
    title: str = Field(max_length=300)
    description: str = Field(default="", sa_type=sa.Text)
    status: str = Field(default=TicketStatus.NEW, sa_type=_enum())
    priority: str = Field(default=Priority.NORMAL, sa_type=_enum())
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    contract_id: int | None = Field(default=None, foreign_key="contract.id")
    assignee_id: int | None = Field(default=None, foreign_key="member.id")
    created_by_id: int | None = Field(default=None, foreign_key="member.id")
    requester_email: str | None = Field(default=None, max_length=320)
    verified: bool = True  # False for mail from unknown senders
    follow_up_of_id: int | None = Field(default=None, foreign_key="ticket.id")
    source_permalink: str | None = Field(default=None, max_length=500)
    card_channel: str | None = Field(default=None, max_length=32)
    card_ts: str | None = Field(default=None, max_length=32, index=True)
    last_customer_message_id: str | None = Field(default=None, max_length=998)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None


class TicketEvent(SQLModel, table=True):
    """One entry of a ticket's history (the audit trail)."""

    __tablename__ = "ticket_event"
    __table_args__ = (
        sa.Index("ix_ticket_event_ticket", "ticket_id", "id"),
        # A Slack message becomes at most one history entry, however often it is delivered.
        sa.UniqueConstraint("workspace_id", "slack_ts", name="uq_ticket_event_slack_ts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    ticket_id: int = Field(foreign_key="ticket.id")
    kind: str = Field(sa_type=_enum())
    actor_id: int | None = Field(default=None, foreign_key="member.id")
    actor_label: str = Field(default="", max_length=320)
    body: str = Field(default="", sa_type=sa.Text)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    slack_ts: str | None = Field(default=None, max_length=32)
    email_id: int | None = Field(default=None, foreign_key="email_message.id")
    deleted: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class TimeEntry(SQLModel, table=True):
    """Minutes worked by a member on a date, against a ticket and/or a customer and contract."""

    __tablename__ = "time_entry"
    __table_args__ = (
        sa.Index("ix_time_ws_date", "workspace_id", "work_date"),
        # Covers every column profitability sums: a block of customers is one index range.
        sa.Index(
            "ix_time_ws_customer_cover",
            "workspace_id",
            "customer_id",
            "work_date",
            "member_id",
            "contract_id",
            "billable",
            "minutes",
        ),
        sa.Index("ix_time_contract_date", "contract_id", "work_date"),
        sa.UniqueConstraint("workspace_id", "source_key", name="uq_time_source_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    member_id: int = Field(foreign_key="member.id", index=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id")
    contract_id: int | None = Field(default=None, foreign_key="contract.id")
    work_date: date
    minutes: int
    billable: bool = True
    note: str = Field(default="", max_length=2000)
    source_key: str | None = Field(default=None, max_length=200)  # idempotent imports
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class OutboxMessage(SQLModel, table=True):
    """A Slack or email side effect, written in the same transaction as its cause."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        sa.Index("ix_outbox_due", "status", "next_attempt_at"),
        sa.Index("ix_outbox_order", "ordering_key", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    kind: str = Field(max_length=40)
    ordering_key: str | None = Field(default=None, max_length=100)
    # Where it goes ("slack:<channel>", "email"), when known at enqueue: the worker holds only
    # a few rows per target, so one rate-limited channel cannot crowd out the others.
    target: str | None = Field(default=None, max_length=100)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = Field(default=OutboxStatus.PENDING, sa_type=_enum(16))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_until: datetime | None = None
    lease_owner: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, max_length=2000)
    result: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None
    # Delivery lane: 0 for a person's DM (claimed first), 1 for cards and channel posts.
    lane: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # Rows with the same key may be folded while pending: a newer card update replaces an
    # older one; thread copies for one thread are sent as one message.
    coalesce_key: str | None = Field(default=None, max_length=100, index=True)


class SlackEvent(SQLModel, table=True):
    """An Events API delivery, stored before Slack gets its 200 and processed from here."""

    __tablename__ = "slack_event"
    __table_args__ = (
        sa.UniqueConstraint("team_id", "event_id"),
        sa.Index("ix_slack_event_pending", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    event_id: str = Field(max_length=64)
    event_type: str = Field(max_length=64)
    body: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=2000)
    received_at: datetime = Field(default_factory=utcnow)
    processed_at: datetime | None = None


class EmailMessage(SQLModel, table=True):
    """A mail received or sent. The raw bytes are kept first; processing comes after."""

    __tablename__ = "email_message"
    __table_args__ = (
        sa.Index("ix_email_ws_msgid", "workspace_id", "message_id"),
        sa.Index("ix_email_status", "status", "id"),
        sa.Index("ix_email_sender_time", "workspace_id", "from_addr", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    direction: str = Field(default="in", max_length=3)
    status: str = Field(default="received", max_length=16)  # received/processed/quarantined
    outcome: str | None = Field(default=None, max_length=2000)
    message_id: str | None = Field(default=None, max_length=998)
    in_reply_to: str | None = Field(default=None, max_length=998)
    from_addr: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, max_length=998)
    envelope_from: str | None = Field(default=None, max_length=320)
    envelope_to: str = Field(default="", max_length=2000)
    size: int = 0
    raw: bytes = Field(sa_type=sa.LargeBinary)
    text: str | None = Field(default=None, sa_type=sa.Text)
    attachments: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    attempts: int = 0
    received_at: datetime = Field(default_factory=utcnow)
    processed_at: datetime | None = None
    # The trusted mail server authenticated the From domain (models.mailauth); the flood rule
    # counts a sender's authenticated and unauthenticated mail apart.
    sender_verified: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


class EmailChunk(SQLModel, table=True):
    """One piece of a received mail's raw bytes; `seq` orders them (models.inbound_store).

    Received mail is stored in pieces so that neither the receiver nor the database driver
    holds a whole-message copy; its `EmailMessage.raw` stays empty. Mail stored before keeps
    its bytes in `raw` and has no pieces.
    """

    __tablename__ = "email_chunk"

    email_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("email_message.id", ondelete="CASCADE"), primary_key=True
        )
    )
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_type=sa.LargeBinary)


class ProfitResult(SQLModel, table=True):
    """Stored profitability of one customer (and contract) in one period, as exact integers.

    Amounts ending in `_60` are sixtieths of a minor unit (see models.money); minutes are hours.
    `contract_key` is the contract id, or 0 for time without a contract; `customer_id` is None
    for time logged against no customer.
    """

    __tablename__ = "profit_result"
    __table_args__ = (
        sa.UniqueConstraint(
            "workspace_id", "period_kind", "period_start", "customer_id", "contract_key"
        ),
        sa.Index("ix_profit_period", "workspace_id", "period_kind", "period_start"),
        sa.Index("ix_profit_customer", "workspace_id", "customer_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    period_kind: str = Field(max_length=8)
    period_start: date
    # None holds time logged against no customer (internal work: a cost, never revenue).
    customer_id: int | None = Field(default=None, foreign_key="customer.id")
    contract_key: int = 0
    minutes: int = Field(default=0, sa_type=sa.BigInteger)
    billable_minutes: int = Field(default=0, sa_type=sa.BigInteger)
    uncosted_minutes: int = Field(default=0, sa_type=sa.BigInteger)
    unattributed_minutes: int = Field(default=0, sa_type=sa.BigInteger)
    unpriced_minutes: int = Field(default=0, sa_type=sa.BigInteger)
    revenue_60: int = Field(default=0, sa_type=sa.BigInteger)
    labour_cost_60: int = Field(default=0, sa_type=sa.BigInteger)
    direct_cost_60: int = Field(default=0, sa_type=sa.BigInteger)
    missing_rates: list[int] = Field(default_factory=list, sa_type=JSON)  # member ids
    computed_at: datetime = Field(default_factory=utcnow)


class StalePeriod(SQLModel, table=True):
    """A customer-period whose stored results must be recomputed (the refresh queue)."""

    __tablename__ = "stale_period"
    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "period_kind", "period_start", "customer_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    period_kind: str = Field(max_length=8)
    period_start: date
    # None holds time logged against no customer (internal work: a cost, never revenue).
    customer_id: int | None = Field(default=None, foreign_key="customer.id")
    marked_at: datetime = Field(default_factory=utcnow)


class CostChange(SQLModel, table=True):
    """A cost-rate change not yet added to the stored results (models.cost_changes).

    `deltas` holds, per member, the date ranges whose resolved rate changed, with the rate
    before and after: the refresh adds (after - before) x minutes to the labour cost of every
    stored row those days count in, instead of recomputing every period of every customer.
    """

    __tablename__ = "cost_change"

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    # [[member id, from (ISO), until (ISO, exclusive), rate before, rate after], ...]
    deltas: list[list[Any]] = Field(sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow)


class ReportRun(SQLModel, table=True):
    """A claimed report (weekly post, monthly post, or a final report) for one period.

    The unique key makes a period's post happen once, across restarts and replicas. `snapshot`
    keeps the reported figures so later changes show as restatements.
    """

    __tablename__ = "report_run"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "kind", "period_key"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    kind: str = Field(max_length=16)  # weekly / monthly / final
    period_key: str = Field(max_length=16)
    status: str = Field(default="claimed", max_length=16)
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    claimed_at: datetime = Field(default_factory=utcnow)
    posted_at: datetime | None = None


class Restatement(SQLModel, table=True):
    """A change to a reported period's figures, listed in the next report."""

    __table_args__ = (sa.Index("ix_restatement_ws", "workspace_id", "reported_in_run_id"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    period_kind: str = Field(max_length=8)
    period_start: date
    # None holds time logged against no customer (internal work: a cost, never revenue).
    customer_id: int | None = Field(default=None, foreign_key="customer.id")
    before: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    after: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    reported_in_run_id: int | None = Field(default=None, foreign_key="report_run.id")
    created_at: datetime = Field(default_factory=utcnow)


class SlackIntake(SQLModel, table=True):
    """A slash command, button press, modal submission or shortcut that will change state.

    Stored (the verified raw body) before Slack gets its acknowledgement, unique on the team
    and a key derived from Slack's own identifiers, so a retried delivery stores nothing new;
    a worker processes it from here. While pending, `lease_until` and `owner` say who holds it.
    """

    __tablename__ = "slack_intake"
    __table_args__ = (
        sa.UniqueConstraint("team_id", "intake_key"),
        sa.Index("ix_slack_intake_pending", "workspace_id", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # No foreign key: storing a request must not wait on a lock of the workspace row.
    workspace_id: int
    team_id: str = Field(max_length=32)
    intake_key: str = Field(max_length=128)
    kind: str = Field(max_length=32)  # slash_command / block_actions / view_submission / shortcut
    name: str = Field(max_length=255)  # the command, action_id or callback_id
    user_id: str = Field(default="", max_length=32)
    response_url: str | None = Field(default=None, max_length=1000)
    trigger_id: str | None = Field(default=None, max_length=255)
    content_type: str = Field(max_length=64)
    body: str = Field(sa_type=sa.Text)
    status: str = Field(default="pending", max_length=16)  # pending / done / failed
    attempts: int = 0
    owner: str | None = Field(default=None, max_length=32)
    lease_until: datetime | None = None
    last_error: str | None = Field(default=None, max_length=2000)
    received_at: datetime = Field(default_factory=utcnow)
    processed_at: datetime | None = None
    # When the person was told that their request failed for good (they are told once).
    notified_at: datetime | None = None


class AlertSource(SQLModel, table=True):
    """A monitoring system allowed to post alerts to `/integrations/alerts/<name>`.

    `secret` signs request bodies (HMAC-SHA256), so it is kept; bearer tokens are compared
    by their SHA-256 (`secret_hash`). `severity_map` overrides the default severity ->
    priority mapping; `storm_per_minute` is how many new alerts a minute open their own
    tickets before the rest fold into one storm ticket per customer.
    """

    __tablename__ = "alert_source"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    name: str = Field(max_length=64)
    secret: str = Field(max_length=128)
    secret_hash: str = Field(max_length=64)
    customer_label: str = Field(default="customer", max_length=100)
    auto_resolve: bool = False
    storm_per_minute: int = 20
    severity_map: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class AlertCustomerMap(SQLModel, table=True):
    """A source's own name for a customer (the label value) -> the customer."""

    __tablename__ = "alert_customer_map"
    __table_args__ = (sa.UniqueConstraint("source_id", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    source_id: int = Field(foreign_key="alert_source.id")
    value: str = Field(max_length=200)
    customer_id: int = Field(foreign_key="customer.id")


class AlertDelivery(SQLModel, table=True):
    """One accepted webhook body, stored before the 202 and processed from here once.

    Unique on source and body hash: an identical body sent again is not stored twice.
    `processed_at` is the lease deadline while pending (as for Slack events).
    """

    __tablename__ = "alert_delivery"
    __table_args__ = (
        sa.UniqueConstraint("source_id", "body_hash"),
        sa.Index("ix_alert_delivery_pending", "workspace_id", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    source_id: int = Field(foreign_key="alert_source.id")
    body_hash: str = Field(max_length=64)
    body: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    alert_count: int = 0
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    lease_owner: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, max_length=2000)
    outcome: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    received_at: datetime = Field(default_factory=utcnow)
    processed_at: datetime | None = None


class AlertState(SQLModel, table=True):
    """One alert (a source's fingerprint) and the ticket it is on now.

    `kind` is "alert", or "storm" for the row that stands for a storm ticket (its fingerprint
    is "storm:<customer id>"). `opened_at` is when the current episode began: new alerts per
    minute are counted from it.
    """

    __tablename__ = "alert_state"
    __table_args__ = (
        sa.UniqueConstraint("source_id", "fingerprint"),
        sa.Index("ix_alert_state_opened", "workspace_id", "source_id", "opened_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    source_id: int = Field(foreign_key="alert_source.id")
    fingerprint: str = Field(max_length=200)
    kind: str = Field(default="alert", max_length=8)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id")
    customer_value: str | None = Field(default=None, max_length=200)
    status: str = Field(default="firing", max_length=16)
    severity: str = Field(default="", max_length=32)
    title: str = Field(default="", max_length=300)
    occurrences: int = 0
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    card_row_id: int | None = None
    opened_at: datetime = Field(default_factory=utcnow)
    last_at: datetime = Field(default_factory=utcnow)
    cleared_at: datetime | None = None


class AccountCode(SQLModel, table=True):
    """The ledger account a kind of journal line posts to (imported; defaults until then)."""

    __tablename__ = "account_code"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "line_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    line_kind: str = Field(max_length=40)
    account_code: str = Field(max_length=40)
    name: str = Field(default="", max_length=200)


class JournalExport(SQLModel, table=True):
    """Amounts of one month as exported in a final journal (`kind` "final"), or the change to
    them carried by a later month's final journal (`kind` "adjustment").

    `amounts` maps "customer_id:contract_key:line_kind" to signed minor units (debit positive);
    the unique key makes a month's final journal happen once.
    """

    __tablename__ = "journal_export"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "month", "exported_in"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    month: str = Field(max_length=7)  # the month whose figures these are
    exported_in: str = Field(max_length=7)  # the month whose final journal carried them
    kind: str = Field(max_length=16)
    amounts: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    report_run: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class SlaHours(SQLModel, table=True):
    """A weekday's business hours (0 = Monday), wall-clock in the workspace time zone.

    A workspace without any row has the default Monday-Friday 09:00-17:00; once it has rows, a
    weekday without one is closed.
    """

    __tablename__ = "sla_hours"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "weekday"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    weekday: int
    start: str = Field(max_length=5)  # "09:00"
    end: str = Field(max_length=5)  # "17:00"


class SlaHoliday(SQLModel, table=True):
    """A whole date on which business time does not count."""

    __tablename__ = "sla_holiday"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    day: date
    name: str = Field(default="", max_length=200)


class SlaPolicy(SQLModel, table=True):
    """Named targets per priority; `calendar` is "business" or "24x7"."""

    __tablename__ = "sla_policy"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    name: str = Field(max_length=100)
    calendar: str = Field(default="business", max_length=16)
    created_at: datetime = Field(default_factory=utcnow)


class SlaTarget(SQLModel, table=True):
    """A policy's targets for one priority, as typed (`30m`, `4h`, `2d`); None: no target."""

    __tablename__ = "sla_target"
    __table_args__ = (sa.UniqueConstraint("policy_id", "priority"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    policy_id: int = Field(foreign_key="sla_policy.id")
    priority: str = Field(sa_type=_enum())
    first_response: str | None = Field(default=None, max_length=16)
    resolution: str | None = Field(default=None, max_length=16)


class TicketSla(SQLModel, table=True):
    """A ticket's SLA clocks as last evaluated, and when the scan must look at it next.

    The rules run on the ticket's history (models.sla); this row keeps the result so lists
    and the scan need no history, and `next_check_at` is indexed so the scan reads only the
    tickets that have something due.
    """

    __tablename__ = "ticket_sla"
    __table_args__ = (
        sa.UniqueConstraint("ticket_id"),
        sa.Index("ix_ticket_sla_next", "workspace_id", "next_check_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id")
    ticket_id: int = Field(foreign_key="ticket.id")
    policy_id: int | None = Field(default=None, foreign_key="sla_policy.id")
    first_response_status: str = Field(default="none", sa_type=_enum(16))
    first_response_due: datetime | None = None
    resolution_status: str = Field(default="none", sa_type=_enum(16))
    resolution_due: datetime | None = None
    next_check_at: datetime | None = None
    evaluated_at: datetime = Field(default_factory=utcnow)


class SlaNotice(SQLModel, table=True):
    """A warning or breach notice claimed for a ticket, target and reopening (sent once)."""

    __tablename__ = "sla_notice"
    __table_args__ = (sa.UniqueConstraint("ticket_id", "target", "kind", "round"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", index=True)
    ticket_id: int = Field(foreign_key="ticket.id")
    target: str = Field(max_length=16)
    kind: str = Field(max_length=8)  # warning / breach
    round: int = 0
    created_at: datetime = Field(default_factory=utcnow)
