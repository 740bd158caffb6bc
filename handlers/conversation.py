"""The customer conversation in Slack: "Reply to customer", `/ticket reply`, customer channels.

- The card's (or a DM copy's) "Reply to customer" button opens a modal quoting the customer's
  last message; sending queues the email (models.replies), a copy in the card's thread and the
  card update, all in one transaction. `/ticket reply 123 text` sends at once.
- A customer may have their own Slack channel (Customer.slack_channel). A top-level message
  there from someone who is not an active Docket member opens a ticket; their answers in its
  thread are customer replies (the assignee is told), a member's answers are agent replies.
  Events are processed from the stored event and are idempotent (TicketEvent.slack_ts).
- What a customer's message causes in Slack is queued by handlers.ticket_notifications.
- `/docket mail` lists quarantined and held mail for admins; `/docket mail retry <id>`.

Slack authenticates the app, not the person: the role is checked again on every submission.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.ack import Answer, answer_within_budget
from handlers.blocks.common import form_values
from handlers.blocks.conversation import (
    REPLY_BLOCK,
    MailLine,
    ReplyForm,
    ReplyTarget,
    build_mail_list,
    build_reply_modal,
    parse_reply_metadata,
    parse_reply_text,
    reply_copy_text,
    reply_sent_text,
)
from handlers.blocks.tickets import message_to_plain, title_from_text
from handlers.docket_cmd import split_subcommand, subcommand
from handlers.events import EventRouter
from handlers.ids import Action, Command, View
from handlers.listeners import Click, Slash, on_click, on_command
from handlers.people import resolve_member, user_of
from handlers.respond import SORRY, answering_failures, tell
from handlers.ticket_notifications import (
    SlackHooks,
    customer_permalink,
    post_in_card_thread,
    post_in_customer_thread,
    queue_notice,
    refresh_card,
)
from models.customer_channel import Notice, is_external, message_recorded, source_message
from models.inbound_apply import closed_too_long, open_customer_ticket, record_customer_reply
from models.inbound_store import HELD, QUARANTINED, list_mail, release_mail
from models.people import PermissionDenied, is_admin, member_by_slack_id, require_agent
from models.replies import (
    AgentReply,
    MailSettings,
    ReplyError,
    customer_address,
    last_customer_message,
    queue_email_reply,
    record_agent_reply,
)
from models.tables import Customer, EventKind, Member, Ticket
from models.tickets import (
    TicketNotFound,
    contact_by_slack_user,
    customer_by_channel,
    customer_by_id,
    event_by_slack_ts,
    get_ticket,
    ticket_by_card,
    ticket_by_number,
)

logger = logging.getLogger(__name__)

REPLY_USAGE = "Use `/ticket reply 123 your answer`, or `/ticket reply 123` to open the form."
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,30}$")
_REPLY_ARGS = re.compile(r"^#?(\d{1,9})(?:\s+(.*))?$", re.S)


# -- where a ticket's conversation happens ---------------------------------------------------


@dataclass(frozen=True)
class SlackThread:
    """A customer's Slack thread a ticket came from."""

    channel: str
    ts: str


async def source_thread(*, session: AsyncSession, ticket: Ticket) -> SlackThread | None:
    """The customer-channel message a ticket was opened from, if it was."""
    found = await source_message(session=session, ticket=ticket)
    return SlackThread(found.channel, found.ts) if found is not None else None


async def ticket_for_thread(
    *, session: AsyncSession, workspace_id: int, channel: str, thread_ts: str
) -> Ticket | None:
    """The ticket a customer-channel thread belongs to: its card's, or the message's that
    opened it."""
    ticket = await ticket_by_card(
        session=session, workspace_id=workspace_id, channel=channel, ts=thread_ts
    )
    if ticket is not None:
        return ticket
    created = await event_by_slack_ts(
        session=session, workspace_id=workspace_id, slack_ts=thread_ts, kind=EventKind.CREATED
    )
    if created is None or (created.data or {}).get("channel") != channel:
        return None
    return await get_ticket(session=session, workspace_id=workspace_id, ticket_id=created.ticket_id)


# -- sending a reply -----------------------------------------------------------------------------


def mail_settings(services: Services) -> MailSettings:
    return MailSettings(
        support_address=services.settings.docket_support_address,
        secret=services.settings.mail_secret(),
    )


@dataclass(frozen=True)
class SentReply:
    """What the agent is told after a reply: the ticket number and where it went."""

    number: int
    to: str


async def send_reply(services: Services, *, ticket_id: int, member: Member, text: str) -> SentReply:
    """Send an agent's reply where the customer wrote: in their Slack thread for a ticket
    opened there, else by email. One transaction: the reply, its copy in the card's thread,
    the card update.

    Raises ReplyError (shown to the agent), PermissionDenied or TicketNotFound.
    """
    require_agent(member)
    at = services.now()
    async with services.transaction() as session:
        ticket = await get_ticket(
            session=session, workspace_id=services.workspace_id, ticket_id=ticket_id
        )
        reply: AgentReply | None
        thread = await source_thread(session=session, ticket=ticket)
        if thread is not None:
            reply = await record_agent_reply(
                session=session,
                workspace_id=services.workspace_id,
                ticket_id=ticket_id,
                member=member,
                text=text,
                at=at,
                data={"via": "slack", "channel": thread.channel, "thread_ts": thread.ts},
            )
            assert reply is not None
            await post_in_customer_thread(
                session,
                services,
                ticket_id=ticket_id,
                event=reply.event,
                channel=thread.channel,
                thread_ts=thread.ts,
                at=at,
            )
            to = "the customer's Slack thread"
        elif await customer_address(session=session, ticket=ticket):
            reply = await queue_email_reply(
                session=session,
                workspace_id=services.workspace_id,
                ticket_id=ticket_id,
                member=member,
                text=text,
                mail=mail_settings(services),
                at=at,
            )
            to = reply.to_addr or "the customer"
        else:
            raise ReplyError(
                f"#{ticket.number} has no customer email address or Slack thread to "
                "reply to. Edit the ticket to add the customer's contact."
            )
        copy = reply_copy_text(
            agent_slack_id=member.slack_user_id,
            agent_name=member.name,
            text=reply.event.body,
            to=to,
        )
        await post_in_card_thread(
            session, services, reply.ticket, copy, key=f"reply:{reply.event.id}"
        )
        if reply.change is not None:
            await refresh_card(session, services, reply.change.ticket, at)
    return SentReply(number=reply.ticket.number, to=to)


async def _member(services: Services, user_id: str, client: AsyncWebClient | None) -> Member:
    return await resolve_member(services, user_id, client=client)


async def reply_form(services: Services, ticket_id: int, text: str = "") -> ReplyForm:
    """What the reply modal shows for a ticket."""
    async with services.read() as session:
        ticket = await get_ticket(
            session=session, workspace_id=services.workspace_id, ticket_id=ticket_id
        )
        assert ticket.id is not None
        customer = await customer_by_id(
            session=session, workspace_id=services.workspace_id, customer_id=ticket.customer_id
        )
        thread = await source_thread(session=session, ticket=ticket)
        email = None if thread else await customer_address(session=session, ticket=ticket)
        last = await last_customer_message(
            session=session, workspace_id=services.workspace_id, ticket=ticket
        )
    channel = thread.channel if thread and _CHANNEL_ID.match(thread.channel) else None
    return ReplyForm(
        ticket_id=ticket.id,
        number=ticket.number,
        title=ticket.title,
        customer_name=customer.name if customer else None,
        last_message=last,
        target=ReplyTarget(email=email, channel=channel),
        support_address=services.settings.docket_support_address,
        text=text,
    )


async def open_reply_modal(
    services: Services,
    client: AsyncWebClient,
    trigger_id: str,
    respond: AsyncRespond | None,
    *,
    user_id: str,
    ticket_id: int,
) -> None:
    member = await _member(services, user_id, client)
    try:
        require_agent(member)
    except PermissionDenied as exc:
        await tell(respond, f":no_entry: {exc}")
        return
    try:
        form = await reply_form(services, ticket_id)
    except TicketNotFound:
        await tell(respond, "That ticket no longer exists.")
        return
    if not form.target.email and not form.target.channel:
        await tell(
            respond,
            f"#{form.number} has no customer email address or Slack thread to reply to. "
            "Edit the ticket to add the customer's contact.",
        )
        return
    await client.views_open(trigger_id=trigger_id, view=build_reply_modal(form))


async def _reply_button(click: Click) -> None:
    """ "Reply to customer" on a card (or its DM copy): open the reply modal."""
    value = str(click.action.get("value") or "")
    if not value.isdigit():
        return
    say = functools.partial(tell, click.respond)
    async with answering_failures(say, log=logger, doing="opening the reply modal", sorry=SORRY):
        await open_reply_modal(
            click.services,
            click.client,
            click.body["trigger_id"],
            click.respond,
            user_id=user_of(click.body)[0],
            ticket_id=int(value),
        )


handle_reply_button = on_click(_reply_button)


async def handle_reply_submission(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, services: Services
) -> None:
    """Send the reply typed in the modal; problems go back into the modal as field errors.

    The send gets most of Slack's 3 s; if it takes longer the modal closes and the outcome
    arrives as a DM, and the send itself is never cut off half-way.
    """
    view = body.get("view") or {}
    user_id = user_of(body)[0]
    text = parse_reply_text(form_values(view))
    ticket_id = parse_reply_metadata(view.get("private_metadata"))
    if not text:
        await ack(response_action="errors", errors={REPLY_BLOCK: "Write a reply first."})
        return
    if ticket_id is None:
        await ack(response_action="errors", errors={REPLY_BLOCK: "This form is out of date."})
        return

    async def attempt() -> Answer:
        try:
            member = await _member(services, user_id, client)
            sent = await send_reply(services, ticket_id=ticket_id, member=member, text=text)
        except (ReplyError, PermissionDenied, TicketNotFound) as exc:
            shown = "That ticket no longer exists." if isinstance(exc, TicketNotFound) else str(exc)
            late = f":no_entry: Your reply was not sent: {exc}"
            return Answer(errors={REPLY_BLOCK: shown}, late=late)
        except Exception:
            logger.exception("sending a reply failed")
            late = f":no_entry: Your reply was not sent. {SORRY}"
            return Answer(errors={REPLY_BLOCK: SORRY}, late=late)
        return Answer(late=reply_sent_text(sent.number, sent.to))

    await answer_within_budget(ack, client, user_id, attempt())


def parse_reply_command(text: str | None) -> tuple[int, str] | None:
    """`"reply 123 some text"` -> `(123, "some text")`; `(123, "")` opens the modal."""
    _sub, rest = split_subcommand(text)
    match = _REPLY_ARGS.match(rest.strip())
    if match is None:
        return None
    return int(match.group(1)), (match.group(2) or "").strip()


async def _reply_command(slash: Slash) -> None:
    """`/ticket reply 123 text` sends at once; `/ticket reply 123` opens the modal."""
    command, respond, client, services = slash
    parsed = parse_reply_command(command.get("text"))
    user_id = str(command.get("user_id") or "")
    if parsed is None:
        await tell(respond, REPLY_USAGE)
        return
    number, text = parsed
    async with answering_failures(
        functools.partial(tell, respond),
        log=logger,
        doing="/ticket reply",
        sorry=SORRY,
        refusals=(ReplyError, PermissionDenied),
    ):
        async with services.read() as session:
            ticket = await ticket_by_number(
                session=session, workspace_id=services.workspace_id, number=number
            )
        if ticket is None or ticket.id is None:
            await tell(respond, f"There is no ticket #{number}.")
            return
        if not text:
            await open_reply_modal(
                services,
                client,
                command["trigger_id"],
                respond,
                user_id=user_id,
                ticket_id=ticket.id,
            )
            return
        member = await _member(services, user_id, client)
        sent = await send_reply(services, ticket_id=ticket.id, member=member, text=text)
        await tell(respond, reply_sent_text(sent.number, sent.to))


handle_reply_command = on_command(_reply_command)


# -- customer channels ---------------------------------------------------------------------------

_HUMAN_SUBTYPES = (None, "thread_broadcast", "file_share")


async def process_customer_channel_message(services: Services, body: dict[str, Any]) -> None:
    """A message in a customer's own channel: a new ticket, or a reply on one. Idempotent."""
    event = body.get("event") or {}
    if event.get("subtype") not in _HUMAN_SUBTYPES or event.get("bot_id"):
        return
    channel, ts, user = event.get("channel"), event.get("ts"), event.get("user")
    if not (isinstance(channel, str) and isinstance(ts, str) and isinstance(user, str)):
        return
    if user == services.bot_user_id:
        return
    thread_ts = event.get("thread_ts")
    text = message_to_plain(str(event.get("text") or "")) or "(attachment)"
    async with services.read() as session:
        customer = await customer_by_channel(
            session=session, workspace_id=services.workspace_id, channel=channel
        )
        if customer is None or customer.id is None:
            return
        member = await member_by_slack_id(
            session=session, workspace_id=services.workspace_id, slack_user_id=user
        )
        done = await message_recorded(
            session=session, workspace_id=services.workspace_id, slack_ts=ts
        )
    if done:
        return
    # Slack Connect: someone of another organisation is a customer, whatever else we know.
    external = is_external(
        user_team=event.get("user_team") or event.get("source_team"), our_team=services.team_id
    )
    is_agent = member is not None and member.active and not external
    if not isinstance(thread_ts, str) or thread_ts == ts:
        if not is_agent:
            await _open_from_channel(
                services, customer, channel=channel, ts=ts, user=user, text=text
            )
        return
    async with services.read() as session:
        ticket = await ticket_for_thread(
            session=session,
            workspace_id=services.workspace_id,
            channel=channel,
            thread_ts=thread_ts,
        )
    if ticket is None or ticket.id is None:
        return
    if is_agent:
        assert member is not None
        async with services.transaction() as session:
            reply = await record_agent_reply(
                session=session,
                workspace_id=services.workspace_id,
                ticket_id=ticket.id,
                member=member,
                text=text,
                at=services.now(),
                slack_ts=ts,
                data={"via": "slack", "channel": channel, "thread_ts": thread_ts, "public": True},
            )
            if reply is not None:
                # The team sees the public reply under the card too.
                copy = reply_copy_text(
                    agent_slack_id=member.slack_user_id,
                    agent_name=member.name,
                    text=reply.event.body,
                    to="the customer's Slack thread",
                )
                await post_in_card_thread(
                    session, services, reply.ticket, copy, key=f"reply:{reply.event.id}"
                )
            if reply is not None and reply.change is not None:
                await refresh_card(session, services, reply.change.ticket, services.now())
        return
    await _customer_reply_from_channel(
        services,
        customer,
        ticket,
        channel=channel,
        ts=ts,
        thread_ts=thread_ts,
        user=user,
        text=text,
    )


async def _who(session: AsyncSession, services: Services, user: str) -> tuple[int | None, str]:
    contact = await contact_by_slack_user(
        session=session, workspace_id=services.workspace_id, slack_user_id=user
    )
    if contact is not None:
        return contact.id, (contact.name or contact.email)
    return None, f"Slack user {user}"


async def _open_from_channel(
    services: Services,
    customer: Customer,
    *,
    channel: str,
    ts: str,
    user: str,
    text: str,
    thread_ts: str | None = None,
) -> Ticket:
    # Asked before the transaction: a Slack call never holds the database open.
    permalink = await customer_permalink(services, channel, ts)
    at = services.now()
    async with services.transaction() as session:
        return await _channel_ticket(
            session,
            services,
            customer,
            title=title_from_text(text) or "(no text)",
            channel=channel,
            ts=ts,
            user=user,
            text=text,
            at=at,
            permalink=permalink,
            thread_ts=thread_ts,
        )


async def _channel_ticket(
    session: AsyncSession,
    services: Services,
    customer: Customer,
    *,
    title: str,
    channel: str,
    ts: str,
    user: str,
    text: str,
    at: datetime,
    follow_up_of: Ticket | None = None,
    permalink: str | None = None,
    thread_ts: str | None = None,
) -> Ticket:
    """Open a ticket (or a follow-up) from a customer's channel message; say so in its thread.

    The card goes to the team's channel (announce_ticket); the customer only gets the
    acknowledgement, in the thread of their message (`thread_ts` when it was a reply).
    """
    contact_id, label = await _who(session, services, user)
    ticket = await open_customer_ticket(
        session=session,
        workspace_id=services.workspace_id,
        title=title,
        description=text,
        customer_id=customer.id,
        contact_id=contact_id,
        requester_email=None,
        verified=True,
        label=label,
        at=at,
        hooks=SlackHooks(services),
        source={
            "source": "slack",
            "channel": channel,
            "ts": ts,
            "slack_user": user,
            **({"thread_ts": thread_ts} if thread_ts and thread_ts != ts else {}),
        },
        follow_up_of=follow_up_of,
        slack_ts=ts,
        source_permalink=permalink,
    )
    await queue_notice(session, services, ticket, Notice.ACK, at=at, customer=customer)
    return ticket


async def _customer_reply_from_channel(
    services: Services,
    customer: Customer,
    ticket: Ticket,
    *,
    channel: str,
    ts: str,
    thread_ts: str,
    user: str,
    text: str,
) -> None:
    at = services.now()
    hooks = SlackHooks(services)
    async with services.transaction() as session:
        if closed_too_long(ticket, at=at, reopen_days=services.settings.docket_reopen_days):
            await _channel_ticket(
                session,
                services,
                customer,
                title=ticket.title,
                channel=channel,
                ts=ts,
                user=user,
                text=text,
                at=at,
                follow_up_of=ticket,
                thread_ts=thread_ts,
            )
            return
        _contact_id, label = await _who(session, services, user)
        await record_customer_reply(
            session=session,
            workspace_id=services.workspace_id,
            ticket=ticket,
            body=text,
            label=label,
            at=at,
            hooks=hooks,
            data={
                "source": "slack",
                "channel": channel,
                "thread_ts": thread_ts,
                "slack_user": user,
            },
            slack_ts=ts,
        )


# -- /docket mail (admins) -------------------------------------------------------------------


async def _mail_admin(slash: Slash) -> None:
    """`/docket mail`: quarantined and held mail; `/docket mail retry <id>` releases one."""
    command, respond, client, services = slash
    member = await _member(services, str(command.get("user_id") or ""), client)
    if not is_admin(member):
        await tell(respond, ":no_entry: Only Docket admins can see held and quarantined mail.")
        return
    _sub, rest = split_subcommand(command.get("text"))
    words = rest.split()
    say = functools.partial(tell, respond)
    async with answering_failures(say, log=logger, doing="/docket mail", sorry=SORRY):
        if len(words) == 2 and words[0].lower() == "retry" and words[1].isdigit():
            async with services.transaction() as session:
                released = await release_mail(
                    session=session,
                    workspace_id=services.workspace_id,
                    email_id=int(words[1]),
                    at=services.now(),
                )
            await tell(
                respond,
                f"Mail {words[1]} is queued again."
                if released
                else f"Mail {words[1]} is not quarantined.",
            )
            return
        async with services.read() as session:
            rows = await list_mail(
                session=session, workspace_id=services.workspace_id, statuses=(QUARANTINED, HELD)
            )
        lines = [
            MailLine(
                id=row.id or 0,
                status=row.status,
                received=row.received_at.strftime("%Y-%m-%d %H:%M UTC"),
                sender=row.from_addr or row.envelope_from,
                subject=row.subject,
                outcome=row.outcome,
            )
            for row in rows
        ]
        await respond(
            blocks=build_mail_list(lines, heading="Mail that needs an admin"),
            text="Held and quarantined mail",
            response_type="ephemeral",
        )


handle_mail_admin = on_command(_mail_admin)


def register(app: AsyncApp) -> None:
    app.action(Action.REPLY.value)(handle_reply_button)
    app.view(View.REPLY.value)(handle_reply_submission)
    app.command(Command.TICKET.value, matchers=[subcommand("reply")])(handle_reply_command)
    app.command(Command.DOCKET.value, matchers=[subcommand("mail")])(handle_mail_admin)


def register_events(router: EventRouter) -> None:
    router.on("message", process_customer_channel_message)
