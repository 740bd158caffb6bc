"""The customer-channel model: what the team sees and what the customer sees.

A customer may have a shared (Slack Connect) channel linked to Docket. The conversation with
the customer happens there, in the thread of the message that opened a ticket; everything
internal (the ticket card with its buttons, contract, priority and assignee, the copies of
replies, internal notes) lives in the team's own channel: the customer's internal channel
when one is set, else the triage channel. Nothing internal is ever posted in the customer's
channel.

What the customer sees, in their thread, each switchable per customer:
- an acknowledgement with the ticket number (ACK);
- "taken by <name>" when someone takes the ticket (TAKEN);
- "waiting on you" when the team puts the ticket on the customer (WAITING);
- "resolved, reply here to reopen" (RESOLVED).

Pure rules, and the look-up of the message a ticket came from; the adapters in handlers/
queue the messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import Customer, EventKind, Ticket, TicketEvent, TicketStatus


class Notice(StrEnum):
    """A customer-facing message in the thread of the customer's channel message."""

    ACK = "ack"
    TAKEN = "taken"
    WAITING = "waiting"
    RESOLVED = "resolved"


def notice_enabled(customer: Customer, notice: Notice) -> bool:
    """Whether the customer gets `notice` (each can be switched off per customer)."""
    return bool(getattr(customer, f"notify_{notice.value}", True))


def status_notices(
    *,
    before_status: str | None,
    after_status: str,
    assignee_changed: bool,
    has_assignee: bool,
) -> list[Notice]:
    """The customer-facing notices a team member's change of a ticket calls for."""
    notices: list[Notice] = []
    if assignee_changed and has_assignee and after_status not in _DONE:
        notices.append(Notice.TAKEN)
    if before_status != after_status:
        if after_status == TicketStatus.WAITING:
            notices.append(Notice.WAITING)
        elif after_status in _DONE and before_status not in _DONE:
            notices.append(Notice.RESOLVED)
    return notices


_DONE = (TicketStatus.RESOLVED, TicketStatus.CLOSED)


def is_ticket_reaction(reaction: str, configured: str) -> bool:
    """Whether a reaction name (as Slack sends it, maybe with a skin tone) is the ticket emoji."""
    name = reaction.split("::", 1)[0].strip(":").lower()
    return bool(name) and name == configured.strip().strip(":").lower()


def is_external(*, user_team: str | None, our_team: str) -> bool:
    """A Slack Connect sender: their `user_team` (or `source_team`) is another organisation."""
    return bool(user_team) and user_team != our_team


@dataclass(frozen=True)
class SourceMessage:
    """The customer-channel message a ticket was opened from (its thread is the conversation)."""

    channel: str
    ts: str


async def source_message(*, session: AsyncSession, ticket: Ticket) -> SourceMessage | None:
    """Where the ticket came from in a customer's channel; None for other tickets."""
    created = (
        await session.exec(
            select(TicketEvent).where(
                TicketEvent.workspace_id == ticket.workspace_id,
                TicketEvent.ticket_id == ticket.id,
                TicketEvent.kind == EventKind.CREATED,
            )
        )
    ).first()
    data = (created.data or {}) if created is not None else {}
    channel, ts = data.get("channel"), data.get("thread_ts") or data.get("ts")
    if data.get("source") == "slack" and isinstance(channel, str) and isinstance(ts, str):
        return SourceMessage(channel, ts)
    return None


async def message_recorded(*, session: AsyncSession, workspace_id: int, slack_ts: str) -> bool:
    """Whether a Slack message is in some ticket's history already (redelivery, a second
    reaction): it then opens or adds nothing."""
    stmt = select(TicketEvent.id).where(
        TicketEvent.workspace_id == workspace_id, TicketEvent.slack_ts == slack_ts
    )
    return (await session.exec(stmt)).first() is not None
