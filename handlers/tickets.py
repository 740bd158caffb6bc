"""Tickets in Slack: `/ticket`, the create/edit modal, the message shortcut, the card's
buttons, and notes from a card's thread.

Every listener acks first (modal submissions ack with their validation result), then reads
or writes the database, builds blocks with handlers.blocks.tickets, and makes one Slack call
(or queues the side effect in the outbox, in the same transaction as the change). Slack
authenticates the app, not the person: each button and submission re-checks the member.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.ack import tell_by_dm, within_ack_budget
from handlers.blocks.common import escape, safe
from handlers.blocks.tickets import (
    Choice,
    Field,
    FormMeta,
    ParsedForm,
    TicketForm,
    build_saved_view,
    build_ticket_card,
    build_ticket_help,
    build_ticket_list,
    build_ticket_modal,
    card_text,
    contact_label,
    customer_options,
    form_errors,
    message_to_plain,
    parse_list_page_value,
    parse_status_value,
    parse_ticket_form,
    ref,
    source_reply_text,
    title_from_text,
)
from handlers.docket_cmd import split_subcommand
from handlers.events import EventRouter
from handlers.home import refresh_homes
from handlers.ids import Action, Command, Shortcut, View
from handlers.people import assignee_member, on_team, resolve_member, team_member
from handlers.quick_create import QuickCreate, create_quick_tickets, quick_create_answer
from handlers.respond import for_stored_request, tell
from handlers.ticket_notifications import (
    Notified,
    announce_ticket,
    notify_change,
    reply_in_thread,
)
from handlers.ticket_text import parse_ticket_text
from handlers.time_cmd import open_log_time_modal
from models.lifecycle import LifecycleError
from models.lifecycle import label as status_label
from models.people import PermissionDenied, require_agent
from models.tables import Customer, Member, Ticket, TicketStatus
from models.tickets import (
    KEEP,
    TicketCard,
    TicketChange,
    TicketConflict,
    TicketCreate,
    TicketInputError,
    TicketNotFound,
    TicketQuery,
    TicketUpdate,
    active_contracts,
    add_note,
    contact_by_slack_user,
    contacts_of,
    contract_by_id,
    create_ticket,
    customer_by_channel,
    customer_by_id,
    customer_by_name,
    delete_note,
    edit_note,
    get_ticket,
    list_tickets,
    load_card,
    search_customers,
    sole_option,
    ticket_by_card,
    ticket_by_number,
    update_ticket,
    update_with_retry,
    workspace_today,
)

logger = logging.getLogger(__name__)

# A modal submission must be answered within 3 s; past this the modal is closed and the
# outcome arrives as a DM instead of in the form.
PER_PAGE = 10
NOTE_MAX = 20_000
SORRY = "Sorry, Docket could not do that just now. Please try again."


async def _not_reply(command: dict[str, Any]) -> bool:
    # `/ticket reply ...` belongs to the customer conversation module.
    return split_subcommand(command.get("text"))[0] != "reply"


# -- small helpers -----------------------------------------------------------------------


async def _agent(
    services: Services, user_id: str, client: AsyncWebClient, respond: AsyncRespond | None
) -> Member | None:
    """The acting member if they may update tickets; otherwise say why and return None."""
    member = await resolve_member(services, user_id, client=client)
    try:
        require_agent(member)
    except PermissionDenied as exc:
        await tell(respond, f":no_entry: {escape(str(exc))}")
        return None
    return member


def _user(body: dict[str, Any]) -> tuple[str, str]:
    user = body.get("user") or {}
    return str(user.get("id") or ""), str(user.get("name") or user.get("username") or "")


def _contract_label(name: str, kind: str) -> str:
    return f"{name} ({kind})"


async def _choices(
    session: AsyncSession,
    services: Services,
    customer: Customer | None,
    today: date,
    keep_contract: int | None = None,
) -> tuple[tuple[Choice, ...], tuple[Choice, ...]]:
    """Contacts and active contracts of a customer for the form (plus the ticket's current
    contract when it has since ended, so editing never drops it silently)."""
    if customer is None or customer.id is None:
        return (), ()
    contacts = await contacts_of(
        session=session, workspace_id=services.workspace_id, customer_id=customer.id
    )
    contracts = await active_contracts(
        session=session, workspace_id=services.workspace_id, customer_id=customer.id, on=today
    )
    contract_choices = [Choice(c.id, _contract_label(c.name, c.kind)) for c in contracts if c.id]
    if keep_contract and all(c.id != keep_contract for c in contract_choices):
        current = await contract_by_id(
            session=session, workspace_id=services.workspace_id, contract_id=keep_contract
        )
        if current is not None and current.customer_id == customer.id:
            contract_choices.append(
                Choice(keep_contract, _contract_label(current.name, current.kind) + " (ended)")
            )
    return (
        tuple(Choice(c.id, contact_label(c.name, c.email)) for c in contacts if c.id),
        tuple(contract_choices),
    )


def _notice(meta: FormMeta) -> str | None:
    if meta.source_channel and re.match(r"^[CGD][A-Z0-9]+$", meta.source_channel):
        where = f" in <#{meta.source_channel}>" if meta.source_channel[0] in "CG" else ""
        return f":speech_balloon: From a message{where}; Docket answers in its thread."
    return None


async def _form_for_customer(
    services: Services,
    session: AsyncSession,
    base: TicketForm,
    customer: Customer | None,
    *,
    contact_id: int | None = None,
) -> TicketForm:
    today = await workspace_today(
        session=session, workspace_id=services.workspace_id, at=services.now()
    )
    contacts, contracts = await _choices(session, services, customer, today)
    return replace(
        base,
        customer=Choice(customer.id, customer.name) if customer and customer.id else None,
        contacts=contacts,
        contact_id=contact_id,
        contracts=contracts,
        contract_id=sole_option([c.id for c in contracts]),
    )


# -- opening the form ----------------------------------------------------------------------


async def open_ticket_form(
    services: Services,
    client: AsyncWebClient,
    trigger_id: str,
    *,
    channel_id: str | None = None,
    title: str = "",
    user_id: str | None = None,
) -> None:
    """Open the new-ticket modal; in a customer's own channel that customer is preselected.

    Someone not on the support team (`user_id` given) gets no directory: their own customer
    when they are a known contact, and no contacts or contracts to choose from.
    """
    form = TicketForm(title=title)
    if user_id is not None and not on_team(await resolve_member(services, user_id, client=client)):
        async with services.read() as session:
            own = await _own_customer(services, session, user_id)
        if own is not None and own.id is not None:
            form = replace(form, customer=Choice(own.id, own.name))
        await client.views_open(trigger_id=trigger_id, view=build_ticket_modal(form))
        return
    async with services.read() as session:
        customer = None
        if channel_id:
            customer = await customer_by_channel(
                session=session, workspace_id=services.workspace_id, channel=channel_id
            )
        form = await _form_for_customer(services, session, form, customer)
    await client.views_open(trigger_id=trigger_id, view=build_ticket_modal(form))


async def _own_customer(
    services: Services, session: AsyncSession, slack_user_id: str
) -> Customer | None:
    """The customer whose contact this Slack user is, if any."""
    contact = await contact_by_slack_user(
        session=session, workspace_id=services.workspace_id, slack_user_id=slack_user_id
    )
    if contact is None:
        return None
    return await customer_by_id(
        session=session, workspace_id=services.workspace_id, customer_id=contact.customer_id
    )


async def _edit_form(services: Services, ticket_id: int) -> TicketForm:
    async with services.read() as session:
        ticket = await get_ticket(
            session=session, workspace_id=services.workspace_id, ticket_id=ticket_id
        )
        card = await load_card(session=session, workspace_id=services.workspace_id, ticket=ticket)
        customer = await customer_by_id(
            session=session, workspace_id=services.workspace_id, customer_id=ticket.customer_id
        )
        today = await workspace_today(
            session=session, workspace_id=services.workspace_id, at=services.now()
        )
        contacts, contracts = await _choices(
            session, services, customer, today, keep_contract=ticket.contract_id
        )
    return TicketForm(
        meta=FormMeta(ticket_id=card.id, version=card.version, number=card.number),
        title=card.title,
        description=card.description,
        priority=card.priority,
        customer=Choice(customer.id, customer.name) if customer and customer.id else None,
        contacts=contacts,
        contact_id=ticket.contact_id,
        contracts=contracts,
        contract_id=ticket.contract_id,
        assignee_slack_id=card.assignee_slack_id,
    )


# -- /ticket -------------------------------------------------------------------------------


async def handle_ticket_command(
    ack: AsyncAck,
    command: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
    context: AsyncBoltContext | None = None,
) -> None:
    """`/ticket [text]`: ack at once, then do the work and answer with respond()."""
    await ack()
    respond = for_stored_request(respond, context or {})
    parsed = parse_ticket_text(command.get("text"))
    user_id = str(command.get("user_id") or "")
    try:
        if parsed.kind == "form":
            await open_ticket_form(
                services,
                client,
                command["trigger_id"],
                channel_id=command.get("channel_id"),
                user_id=user_id,
            )
        elif parsed.kind == "create":
            await _quick_create(services, client, respond, command, parsed.title)
        elif parsed.kind == "show" and parsed.number is not None:
            await _show(services, client, respond, user_id, parsed.number)
        elif parsed.kind == "list":
            await _list(services, client, respond, user_id, parsed.query, 1, replace=False)
        else:
            await respond(
                blocks=build_ticket_help(parsed.problem),
                text="How to use /ticket",
                response_type="ephemeral",
            )
    except TicketInputError as exc:
        # Too long, no title: the person can fix it, so say what the limit is.
        await tell(respond, f"Not created: {exc}")
    except Exception:
        logger.exception("/ticket %s failed", parsed.kind)
        await tell(respond, SORRY)


async def _quick_create(
    services: Services,
    client: AsyncWebClient,
    respond: AsyncRespond,
    command: dict[str, Any],
    title: str,
) -> None:
    (created,) = await create_quick_tickets(
        services, client, [QuickCreate.of_command(command, title)]
    )
    await respond(**quick_create_answer(services, created))


async def _show(
    services: Services,
    client: AsyncWebClient,
    respond: AsyncRespond,
    user_id: str,
    number: int,
) -> None:
    if await _agent(services, user_id, client, respond) is None:
        return
    async with services.read() as session:
        ticket = await ticket_by_number(
            session=session, workspace_id=services.workspace_id, number=number
        )
        card = (
            await load_card(session=session, workspace_id=services.workspace_id, ticket=ticket)
            if ticket
            else None
        )
    if card is None:
        await tell(respond, f"There is no ticket #{number}.")
        return
    await respond(
        blocks=build_ticket_card(card, now=services.now()),
        text=card_text(card),
        response_type="ephemeral",
    )


_LIST_KINDS: dict[str, tuple[Any, str]] = {
    "": ("active", "Active tickets"),
    "all": ("active", "Active tickets"),
    "active": ("active", "Active tickets"),
    "mine": ("mine", "My tickets"),
    "open": ("open", "Open tickets"),
    "waiting": ("waiting", "Waiting on the customer"),
    "unassigned": ("unassigned", "Unassigned tickets"),
    "overdue": ("overdue", "Overdue (an SLA target has passed)"),
    "due-today": ("due-today", "SLA targets due today"),
}


async def _list(
    services: Services,
    client: AsyncWebClient,
    respond: AsyncRespond,
    user_id: str,
    query_text: str,
    page: int,
    *,
    replace: bool,
) -> None:
    member = await _agent(services, user_id, client, respond)
    if member is None:
        return
    key = query_text.strip().lower()
    async with services.read() as session:
        if key in _LIST_KINDS:
            kind, heading = _LIST_KINDS[key]
            now = services.now()
            query = TicketQuery(
                kind=kind, member_id=member.id, at=now, until=end_of_day(now, services.timezone)
            )
        else:
            customer = await customer_by_name(
                session=session, workspace_id=services.workspace_id, name=query_text
            )
            if customer is None:
                await respond(
                    blocks=build_ticket_help(f"No customer matches “{query_text}”."),
                    text="No such customer",
                    response_type="ephemeral",
                    replace_original=False,
                )
                return
            query = TicketQuery(kind="customer", customer_id=customer.id)
            heading = f"Tickets of {safe(customer.name, 200)}"
        result = await list_tickets(
            session=session,
            workspace_id=services.workspace_id,
            query=query,
            page=page,
            per_page=PER_PAGE,
        )
    blocks = build_ticket_list(result, heading=heading, query=query_text, now=services.now())
    await respond(
        blocks=blocks,
        text=heading,
        response_type="ephemeral",
        replace_original=replace,
    )


async def handle_list_page(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Previous/Next under a ticket list: replace the list with the requested page."""
    await ack()
    parsed = parse_list_page_value(action.get("value"))
    if parsed is None:
        return
    try:
        await _list(services, client, respond, _user(body)[0], parsed[0], parsed[1], replace=True)
    except Exception:
        logger.exception("paging a ticket list failed")
        await tell(respond, SORRY)


# -- the form: customer type-ahead, dependent selects, submission ------------------------


async def handle_customer_options(
    ack: AsyncAck, payload: dict[str, Any], services: Services
) -> None:
    """Customers whose name contains what was typed (the options are the ack itself).

    Someone not on the support team sees only their own customer (when they are a contact).
    """
    try:
        user_id = str((payload.get("user") or {}).get("id") or "")
        async with services.read() as session:
            if await team_member(services, user_id) is None:
                own = await _own_customer(services, session, user_id)
                found = [own] if own is not None else []
            else:
                found = await search_customers(
                    session=session,
                    workspace_id=services.workspace_id,
                    text=str(payload.get("value") or "")[:100],
                )
        options = customer_options([Choice(c.id, c.name) for c in found if c.id])
    except Exception:
        logger.exception("customer search failed")
        options = []
    await ack(options=options)


async def handle_customer_changed(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, services: Services
) -> None:
    """The customer select changed: show that customer's contacts and contracts."""
    await ack()
    view = body.get("view") or {}
    # Slack puts the modal's state in view.state; some payloads carry it at the top level too.
    values = {
        **(((view.get("state") or {}).get("values")) or {}),
        **(((body.get("state") or {}).get("values")) or {}),
    }
    form = parse_ticket_form(values)
    meta = FormMeta.decode(view.get("private_metadata"))
    try:
        if await team_member(services, _user(body)[0], client=client) is None:
            return  # no contacts or contracts for people outside the team
        async with services.read() as session:
            customer = await customer_by_id(
                session=session, workspace_id=services.workspace_id, customer_id=form.customer_id
            )
            base = TicketForm(
                meta=meta,
                title=form.title,
                description=form.description or "",
                priority=form.priority,
                assignee_slack_id=form.assignee_slack_id,
                notice=_notice(meta),
            )
            updated = await _form_for_customer(services, session, base, customer)
        await client.views_update(
            view_id=view["id"], hash=view.get("hash"), view=build_ticket_modal(updated)
        )
    except SlackApiError as exc:
        # hash_conflict: the person changed the customer again; the later update wins.
        logger.info("ticket form update refused: %s", exc.response.get("error"))
    except Exception:
        logger.exception("updating the ticket form failed")


@dataclass
class SaveResult:
    """The outcome of a form submission: field errors, or the saved ticket's card."""

    errors: dict[str, str] | None = None
    card: TicketCard | None = None
    created: bool = False
    channel: str | None = None
    homes: set[str | None] = field(default_factory=set)


def _error_block(field_name: str, form: ParsedForm) -> str:
    if field_name == "contact":
        return form.contact_block()
    if field_name == "contract":
        return form.contract_block()
    known = {f.value for f in Field}
    return field_name if field_name in known else Field.TITLE


async def handle_ticket_submission(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Create or save a ticket from the modal; problems go back into the form."""
    form = parse_ticket_form(((view.get("state") or {}).get("values")) or {})
    meta = FormMeta.decode(view.get("private_metadata"))
    errors = form_errors(form)
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    user_id, user_name = _user(body)
    task = await within_ack_budget(_save_form(services, client, user_id, user_name, form, meta))
    if not task.done():
        # Slack stops waiting at 3 s: close the form and report the outcome by DM.
        await ack()
        result = await task
        if result.errors:
            await tell_by_dm(
                client,
                user_id,
                safe("Your ticket form was not saved: " + " ".join(result.errors.values()), 2000),
            )
    else:
        result = task.result()
        if result.errors:
            await ack(response_action="errors", errors=result.errors)
            return
        assert result.card is not None
        await ack(
            response_action="update",
            view=build_saved_view(result.card, created=result.created, channel=result.channel),
        )
    await refresh_homes(services, result.homes)


async def _save_form(
    services: Services,
    client: AsyncWebClient,
    user_id: str,
    user_name: str,
    form: ParsedForm,
    meta: FormMeta,
) -> SaveResult:
    try:
        actor = await resolve_member(services, user_id, client=client, name_hint=user_name)
        assignee = await assignee_member(services, form.assignee_slack_id)
        if meta.ticket_id is None:
            return await _save_new(services, client, actor, assignee, form, meta)
        return await _save_edit(services, actor, assignee, form, meta)
    except TicketInputError as exc:
        return SaveResult(errors={_error_block(exc.field, form): str(exc)})
    except Exception:
        logger.exception("saving the ticket form failed")
        return SaveResult(errors={Field.TITLE: SORRY})


async def _permalink(client: AsyncWebClient, meta: FormMeta) -> str | None:
    if meta.permalink or not (meta.source_channel and meta.source_ts):
        return meta.permalink
    try:
        response = await client.chat_getPermalink(
            channel=meta.source_channel, message_ts=meta.source_ts
        )
    except Exception:
        logger.exception("chat.getPermalink for a ticket's source message failed")
        return None
    link = response.get("permalink")
    return link if isinstance(link, str) and len(link) <= 500 else None


async def _save_new(
    services: Services,
    client: AsyncWebClient,
    actor: Member,
    assignee: Member | None,
    form: ParsedForm,
    meta: FormMeta,
) -> SaveResult:
    permalink = await _permalink(client, meta)
    outsider = not on_team(actor)
    data = TicketCreate(
        title=form.title,
        description=form.description or "",
        priority=form.priority,
        customer_id=form.customer_id,
        contact_id=form.contact_id,
        contract_id=form.contract_id,
        assignee_id=assignee.id if assignee else None,
        requester_email=None if form.contact_id else meta.requester_email,
        source_permalink=permalink,
    )
    async with services.transaction() as session:
        if outsider:
            data = await _for_themselves(session, services, actor, data)
        ticket = await create_ticket(
            session=session,
            workspace_id=services.workspace_id,
            data=data,
            actor=actor,
            at=services.now(),
        )
        card, channel = await announce_ticket(
            session, services, ticket, creator_slack_id=actor.slack_user_id
        )
        # Answer under the source message in channels only (Docket cannot post in people's DMs).
        source = meta.source_channel
        if not outsider and source and source[0] in "CG" and meta.source_ts:
            await reply_in_thread(
                session=session,
                workspace_id=services.workspace_id,
                ticket=ticket,
                channel=source,
                thread_ts=meta.source_thread_ts or meta.source_ts,
                text=source_reply_text(card),
                at=services.now(),
            )
    return SaveResult(
        card=card,
        created=True,
        channel=channel,
        homes={assignee.slack_user_id if assignee and not outsider else None},
    )


async def _for_themselves(
    session: AsyncSession, services: Services, actor: Member, data: TicketCreate
) -> TicketCreate:
    """A ticket from someone not on the support team is for themselves only: their own
    customer (when they are a contact) whatever the form says, no assignee, no contract, and
    no answer in another channel, so the card goes where their own tickets go."""
    contact = None
    if actor.slack_user_id:
        contact = await contact_by_slack_user(
            session=session, workspace_id=services.workspace_id, slack_user_id=actor.slack_user_id
        )
    return replace(
        data,
        customer_id=contact.customer_id if contact else None,
        contact_id=contact.id if contact else None,
        contract_id=None,
        assignee_id=None,
        requester_email=None if contact else actor.email,
    )


async def _save_edit(
    services: Services,
    actor: Member,
    assignee: Member | None,
    form: ParsedForm,
    meta: FormMeta,
) -> SaveResult:
    try:
        require_agent(actor)
    except PermissionDenied as exc:
        return SaveResult(errors={Field.TITLE: str(exc)})
    assert meta.ticket_id is not None
    if meta.version is None:
        return SaveResult(errors={Field.TITLE: "This form is out of date; reopen the ticket."})
    changes = TicketUpdate(
        title=form.title,
        description=KEEP if form.description is None else form.description,
        priority=form.priority,
        customer_id=form.customer_id,
        contact_id=form.contact_id,
        contract_id=form.contract_id,
        assignee_id=assignee.id if assignee else None,
    )
    notified = Notified()
    try:
        async with services.transaction() as session:
            change = await update_ticket(
                session=session,
                workspace_id=services.workspace_id,
                ticket_id=meta.ticket_id,
                expected_version=meta.version,
                changes=changes,
                actor=actor,
                at=services.now(),
            )
            if change.changed:
                await notify_change(session, services, change, actor, notified)
            else:
                notified.card = await load_card(
                    session=session, workspace_id=services.workspace_id, ticket=change.ticket
                )
    except TicketConflict as exc:
        return SaveResult(
            errors={
                Field.TITLE: f"Ticket #{exc.number} was changed by {exc.changed_by} since you "
                "opened this form; reopen it to see the latest."
            }
        )
    except (LifecycleError, TicketNotFound) as exc:
        return SaveResult(errors={Field.TITLE: str(exc)})
    return SaveResult(card=notified.card, created=False, homes=notified.homes)


# -- the message shortcut --------------------------------------------------------------------


async def handle_create_from_message(
    ack: AsyncAck, shortcut: dict[str, Any], client: AsyncWebClient, services: Services
) -> None:
    """ "Create ticket" on a message: open the form at once (the trigger lasts 3 s), then
    fill in the requester, customer and permalink."""
    await ack()
    message = shortcut.get("message") or {}
    channel = str((shortcut.get("channel") or {}).get("id") or "")
    ts = str(message.get("ts") or shortcut.get("message_ts") or "")
    text = message_to_plain(message.get("text"))
    meta = FormMeta(
        source_channel=channel or None,
        source_ts=ts or None,
        source_thread_ts=message.get("thread_ts")
        if isinstance(message.get("thread_ts"), str)
        else None,
    )
    form = TicketForm(
        meta=meta,
        title=title_from_text(text),
        description=text[:3000],
        notice=_notice(meta),
    )
    try:
        opened = await client.views_open(
            trigger_id=shortcut["trigger_id"], view=build_ticket_modal(form)
        )
    except Exception:
        logger.exception("opening the ticket form from a message failed")
        return
    try:
        await _prefill_from_message(services, client, opened.get("view") or {}, form, message)
    except Exception:
        logger.exception("prefilling the ticket form from a message failed")


async def _prefill_from_message(
    services: Services,
    client: AsyncWebClient,
    opened: dict[str, Any],
    form: TicketForm,
    message: dict[str, Any],
) -> None:
    permalink = await _permalink(client, form.meta)
    author = message.get("user")
    async with services.read() as session:
        contact = None
        if isinstance(author, str) and author:
            contact = await contact_by_slack_user(
                session=session, workspace_id=services.workspace_id, slack_user_id=author
            )
        customer = None
        if contact is not None:
            customer = await customer_by_id(
                session=session,
                workspace_id=services.workspace_id,
                customer_id=contact.customer_id,
            )
        elif form.meta.source_channel:
            customer = await customer_by_channel(
                session=session,
                workspace_id=services.workspace_id,
                channel=form.meta.source_channel,
            )
        meta = replace(
            form.meta,
            permalink=permalink,
            requester_email=contact.email if contact else None,
        )
        updated = await _form_for_customer(
            services,
            session,
            replace(form, meta=meta),
            customer,
            contact_id=contact.id if contact else None,
        )
    await client.views_update(
        view_id=opened["id"], hash=opened.get("hash"), view=build_ticket_modal(updated)
    )


# -- card buttons ------------------------------------------------------------------------------


def _is_card_copy(message: dict[str, Any]) -> bool:
    """Whether a clicked message is a ticket card (only cards carry the Edit button)."""
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("action_id") == Action.EDIT.value:
                return True
    return False


async def _refresh_clicked(
    body: dict[str, Any], respond: AsyncRespond | None, card: TicketCard | None, now: datetime
) -> None:
    """A copy of the card other than the main one (ephemeral, DM) is replaced in place."""
    container = body.get("container") or {}
    if respond is None or card is None or container.get("type") != "message":
        return
    if not container.get("is_ephemeral") and container.get("message_ts") == card.card_ts:
        return
    if not _is_card_copy(body.get("message") or {}):
        # A DM or thread notice with ticket buttons keeps its own text (the customer's reply).
        return
    try:
        await respond(
            blocks=build_ticket_card(card, now=now),
            text=card_text(card),
            replace_original=True,
        )
    except Exception:
        logger.exception("refreshing a copy of a ticket card failed")


async def change_ticket(
    services: Services,
    *,
    ticket_id: int,
    actor: Member,
    delta: Callable[[Ticket], TicketUpdate],
) -> tuple[TicketChange, Notified]:
    """Apply a button's small change with retries; the card update is queued with it."""
    notified = Notified()

    async def after(session: AsyncSession, change: TicketChange) -> None:
        await notify_change(session, services, change, actor, notified)

    change = await update_with_retry(
        transaction=services.transaction,
        workspace_id=services.workspace_id,
        ticket_id=ticket_id,
        delta=delta,
        actor=actor,
        at=services.now(),
        after=after,
    )
    return change, notified


async def _button_change(
    services: Services,
    body: dict[str, Any],
    respond: AsyncRespond | None,
    client: AsyncWebClient,
    *,
    ticket_id: int,
    delta: Callable[[Member], Callable[[Ticket], TicketUpdate]],
    unchanged: Callable[[Ticket], str],
) -> None:
    actor = await _agent(services, _user(body)[0], client, respond)
    if actor is None:
        return
    try:
        change, notified = await change_ticket(
            services, ticket_id=ticket_id, actor=actor, delta=delta(actor)
        )
    except LifecycleError as exc:
        # The target status comes from the payload: escape it like any typed text.
        await tell(respond, f":no_entry: {escape(str(exc))}")
        return
    except TicketNotFound:
        await tell(respond, "That ticket no longer exists.")
        return
    except TicketConflict as exc:
        await tell(respond, f"Ticket #{exc.number} is changing fast; please try again.")
        return
    if not change.changed:
        await tell(respond, unchanged(change.ticket))
        return
    await _refresh_clicked(body, respond, notified.card, services.now())
    await refresh_homes(services, notified.homes | {actor.slack_user_id})


def _ticket_id(action: dict[str, Any]) -> int | None:
    value = str(action.get("value") or "")
    return int(value) if value.isdigit() else None


async def handle_assign_to_me(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """The card's (or Home's) "Assign to me" button."""
    await ack()
    ticket_id = _ticket_id(action)
    if ticket_id is None:
        return
    try:
        await _button_change(
            services,
            body,
            respond,
            client,
            ticket_id=ticket_id,
            delta=lambda me: lambda _t: TicketUpdate(assignee_id=me.id),
            unchanged=lambda t: f"{ref(t.number)} is already yours.",
        )
    except Exception:
        logger.exception("assigning a ticket failed")
        await tell(respond, SORRY)


async def handle_status(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """The card's status select; moves outside the lifecycle are refused ephemerally."""
    await ack()
    parsed = parse_status_value(str((action.get("selected_option") or {}).get("value") or ""))
    if parsed is None:
        return
    ticket_id, status = parsed
    try:
        await _button_change(
            services,
            body,
            respond,
            client,
            ticket_id=ticket_id,
            delta=lambda _me: lambda _t: TicketUpdate(status=status),
            unchanged=lambda t: f"{ref(t.number)} is already {status_label(t.status).lower()}.",
        )
    except Exception:
        logger.exception("changing a ticket's status failed")
        await tell(respond, SORRY)


async def handle_close(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """The card's "Close" button (behind a confirmation)."""
    await ack()
    ticket_id = _ticket_id(action)
    if ticket_id is None:
        return
    try:
        await _button_change(
            services,
            body,
            respond,
            client,
            ticket_id=ticket_id,
            delta=lambda _me: lambda _t: TicketUpdate(status=TicketStatus.CLOSED.value),
            unchanged=lambda t: f"{ref(t.number)} is already closed.",
        )
    except Exception:
        logger.exception("closing a ticket failed")
        await tell(respond, SORRY)


async def handle_edit(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Open the edit form; it carries the ticket's version to detect later changes."""
    await ack()
    ticket_id = _ticket_id(action)
    if ticket_id is None:
        return
    try:
        if await _agent(services, _user(body)[0], client, respond) is None:
            return
        form = await _edit_form(services, ticket_id)
        await client.views_open(trigger_id=body["trigger_id"], view=build_ticket_modal(form))
    except TicketNotFound:
        await tell(respond, "That ticket no longer exists.")
    except Exception:
        logger.exception("opening the edit form failed")
        await tell(respond, SORRY)


async def handle_log_time(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """The card's "Log time": the time-logging modal, for this ticket."""
    await ack()
    ticket_id = _ticket_id(action)
    if ticket_id is None:
        return
    try:
        if await _agent(services, _user(body)[0], client, respond) is None:
            return
        await open_log_time_modal(client, body["trigger_id"], services, ticket_id)
    except Exception:
        logger.exception("opening the log-time modal failed")
        await tell(respond, SORRY)


async def handle_new_ticket(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, services: Services
) -> None:
    """App Home's "New ticket"."""
    await ack()
    try:
        await open_ticket_form(services, client, body["trigger_id"], user_id=_user(body)[0])
    except Exception:
        logger.exception("opening the new-ticket form failed")


# -- notes from a card's thread ---------------------------------------------------------------


async def _card_ticket(services: Services, channel: str, thread_ts: str) -> Ticket | None:
    """The ticket whose card starts this thread, unless the channel is a customer's own
    (thread replies there are customer conversation, handled elsewhere)."""
    async with services.read() as session:
        ticket = await ticket_by_card(
            session=session, workspace_id=services.workspace_id, channel=channel, ts=thread_ts
        )
        if ticket is None:
            return None
        if await customer_by_channel(
            session=session, workspace_id=services.workspace_id, channel=channel
        ):
            return None
    return ticket


def _from_bot(message: dict[str, Any], services: Services) -> bool:
    return bool(message.get("bot_id")) or message.get("user") == services.bot_user_id


async def _record_note(services: Services, message: dict[str, Any], channel: str) -> None:
    ts, thread_ts, user = message.get("ts"), message.get("thread_ts"), message.get("user")
    if not (isinstance(ts, str) and isinstance(thread_ts, str) and isinstance(user, str)):
        return
    if thread_ts == ts or _from_bot(message, services):
        return
    ticket = await _card_ticket(services, channel, thread_ts)
    if ticket is None or ticket.id is None:
        return
    author = await resolve_member(services, user)
    body = str(message.get("text") or "") or "(attachment)"
    async with services.transaction() as session:
        await add_note(
            session=session,
            workspace_id=services.workspace_id,
            ticket_id=ticket.id,
            actor=author,
            body=body[:NOTE_MAX],
            slack_ts=ts,
            at=services.now(),
        )


async def process_message(services: Services, body: dict[str, Any]) -> None:
    """Event processor for `message`: thread replies under a card become internal notes;
    edits change the note and deletions mark it deleted. Safe to run twice."""
    event = body.get("event") or {}
    channel = str(event.get("channel") or "")
    subtype = event.get("subtype")
    if not channel:
        return
    if subtype in (None, "thread_broadcast", "file_share"):
        await _record_note(services, event, channel)
    elif subtype == "message_changed":
        message = event.get("message") or {}
        ts = message.get("ts")
        if not isinstance(ts, str) or _from_bot(message, services):
            return
        async with services.transaction() as session:
            found = await edit_note(
                session=session,
                workspace_id=services.workspace_id,
                slack_ts=ts,
                body=str(message.get("text") or "")[:NOTE_MAX],
                at=services.now(),
            )
        if not found:
            # The edit overtook the original message: record the note as it is now.
            await _record_note(services, message, channel)
    elif subtype == "message_deleted":
        previous = event.get("previous_message") or {}
        ts = event.get("deleted_ts") or previous.get("ts")
        if isinstance(ts, str):
            async with services.transaction() as session:
                await delete_note(
                    session=session,
                    workspace_id=services.workspace_id,
                    slack_ts=ts,
                    at=services.now(),
                )


# -- wiring -------------------------------------------------------------------------------------


def register(app: AsyncApp) -> None:
    """Wire the /ticket command, the form, the shortcut and the card's buttons."""
    app.command(Command.TICKET.value, matchers=[_not_reply])(handle_ticket_command)
    app.view(View.TICKET.value)(handle_ticket_submission)
    app.options(Action.TICKET_CUSTOMER.value)(handle_customer_options)
    app.action(Action.TICKET_CUSTOMER.value)(handle_customer_changed)
    app.shortcut(Shortcut.CREATE_TICKET_FROM_MESSAGE.value)(handle_create_from_message)
    app.action(Action.ASSIGN_TO_ME.value)(handle_assign_to_me)
    # "I'll take it" on an unassigned customer reply is the same move as Assign to me.
    app.action(Action.TAKE_TICKET.value)(handle_assign_to_me)
    app.action(Action.STATUS.value)(handle_status)
    app.action(Action.EDIT.value)(handle_edit)
    app.action(Action.LOG_TIME.value)(handle_log_time)
    app.action(Action.CLOSE.value)(handle_close)
    app.action(Action.NEW_TICKET.value)(handle_new_ticket)
    app.action(re.compile(rf"^{re.escape(Action.LIST_PAGE.value)}-(prev|next)$"))(handle_list_page)


def register_events(router: EventRouter) -> None:
    """Thread replies under cards become notes (processed from stored events)."""
    router.on("message", process_message)


def end_of_day(at: datetime, zone: ZoneInfo) -> datetime:
    """The next local midnight after `at`, in the workspace's zone."""
    day = at.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=zone)
