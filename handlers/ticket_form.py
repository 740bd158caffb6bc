"""The ticket form: opening it (from `/ticket`, App Home or a message), the customer
type-ahead and its dependent selects, and saving a new or edited ticket.

A submission acks with its validation result when the save finishes within the ack budget;
otherwise the form closes and the outcome arrives as a DM. Slack authenticates the app, not
the person: a save re-checks the member (editing needs a support-team role).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.ack import Answer, answer_within_budget
from handlers.blocks.common import form_values
from handlers.blocks.tickets import (
    Choice,
    Field,
    FormMeta,
    ParsedForm,
    TicketForm,
    build_saved_view,
    build_ticket_modal,
    contact_label,
    customer_options,
    form_errors,
    message_to_plain,
    parse_ticket_form,
    source_reply_text,
    title_from_text,
)
from handlers.home import refresh_homes
from handlers.ids import Action, Shortcut, View
from handlers.people import assignee_member, on_team, resolve_member, team_member, user_of
from handlers.respond import SORRY
from handlers.ticket_notifications import Notified, announce_ticket, notify_change, reply_in_thread
from models.lifecycle import LifecycleError
from models.people import PermissionDenied, require_agent
from models.tables import Customer, Member
from models.tickets import (
    KEEP,
    TicketCard,
    TicketConflict,
    TicketCreate,
    TicketInputError,
    TicketNotFound,
    TicketUpdate,
    active_contracts,
    contact_by_slack_user,
    contacts_of,
    contract_by_id,
    create_ticket,
    customer_by_channel,
    customer_by_id,
    get_ticket,
    load_card,
    search_customers,
    sole_option,
    update_ticket,
    workspace_today,
)

logger = logging.getLogger(__name__)


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


async def edit_form(services: Services, ticket_id: int) -> TicketForm:
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
        **form_values(view),
        **form_values(body),
    }
    form = parse_ticket_form(values)
    meta = FormMeta.decode(view.get("private_metadata"))
    try:
        if await team_member(services, user_of(body)[0], client=client) is None:
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
    form = parse_ticket_form(form_values(view))
    meta = FormMeta.decode(view.get("private_metadata"))
    errors = form_errors(form)
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    user_id, user_name = user_of(body)
    saved = SaveResult()

    async def save() -> Answer:
        nonlocal saved
        saved = await _save_form(services, client, user_id, user_name, form, meta)
        if saved.errors:
            return Answer.refused(saved.errors, what="ticket form")
        assert saved.card is not None
        return Answer(
            view=build_saved_view(saved.card, created=saved.created, channel=saved.channel)
        )

    await answer_within_budget(ack, client, user_id, save())
    await refresh_homes(services, saved.homes)


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


async def handle_new_ticket(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, services: Services
) -> None:
    """App Home's "New ticket"."""
    await ack()
    try:
        await open_ticket_form(services, client, body["trigger_id"], user_id=user_of(body)[0])
    except Exception:
        logger.exception("opening the new-ticket form failed")


def register(app: AsyncApp) -> None:
    """Wire the form's submission, its customer select, the message shortcut and Home's
    "New ticket"."""
    app.view(View.TICKET.value)(handle_ticket_submission)
    app.options(Action.TICKET_CUSTOMER.value)(handle_customer_options)
    app.action(Action.TICKET_CUSTOMER.value)(handle_customer_changed)
    app.shortcut(Shortcut.CREATE_TICKET_FROM_MESSAGE.value)(handle_create_from_message)
    app.action(Action.NEW_TICKET.value)(handle_new_ticket)
