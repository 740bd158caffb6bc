"""People see only what they may: every role against every action, over signed HTTP.

Roles: an agent, a manager, an admin, a customer in a shared channel (a Slack user of the
customer's organisation who is a Contact, not a Member) and a user of another workspace (a
request signed for another team). Each denied action writes nothing (row counts of every table
before and after), says why, and opens no modal; cost, revenue and margin reach nobody but
managers and admins, in Slack or in the logs. A second test puts two workspaces in one
database and calls every read function in models/ for one of them.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import pkgutil
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select

import models
from handlers import directory_admin, outbox_admin, profit_cmd, settings_admin, time_cmd
from handlers.blocks.conversation import REPLY_BLOCK, REPLY_INPUT
from handlers.blocks.members import ACCESS_BLOCK, USER_BLOCK
from handlers.blocks.settings import Field as SettingsField
from handlers.ids import Action, View
from handlers.people import resolve_member
from models.tables import Contact, ContractKind, Customer, Member, Role, Ticket, Workspace
from models.timelog import TimeRefused
from tests.conftest import SIGNING_SECRET
from tests.models.profit_world import World
from tests.slack_signing import SlackRequests

pytestmark = pytest.mark.e2e

AGENT, MANAGER, ADMIN, CUSTOMER, OUTSIDER = "UAGENT", "UMANAGER", "UADMIN", "UCUST", "UOTHER"
ROLES = (AGENT, MANAGER, ADMIN, CUSTOMER)
MONEY_ROLES = (MANAGER, ADMIN)

# What each handler answers when it refuses (one of these must reach the person).
REFUSALS = (
    profit_cmd.REFUSAL,
    "Only Docket admins can do that.",
    settings_admin.NOT_ADMIN,
    directory_admin.REFUSAL,
    outbox_admin.DENIED,
    "Only members of the support team can update tickets.",
    "Only Docket admins can see held and quarantined mail.",
    "Your Docket membership is inactive",
    time_cmd.ONLY_TEAM,
)
# Currency amounts, and the words for money (the brief: cost, margin, revenue).
MONEY = re.compile(
    r"(?i)\b(costs?|margins?|revenues?)\b|[€$£]\s?\d|\d\s?[€$£]|\b(EUR|USD|GBP)\s?\d|\d\s?(EUR|USD|GBP)\b"
)


@dataclass(frozen=True)
class Act:
    """One action a person can take in Slack, and who may take it."""

    name: str
    allowed: tuple[str, ...]
    kind: str  # "command", "action" or "view"
    build: Callable[[SlackRequests, str, str, dict[str, Any]], Any]


def _command(command: str, text: str) -> Callable[..., Any]:
    def build(req: SlackRequests, user: str, url: str, ids: dict[str, Any]) -> Any:
        channel = "CACME" if user == CUSTOMER else "CTRIAGE"
        return req.slash_command(
            command=command,
            text=text.format(**ids),
            user_id=user,
            channel_id=channel,
            response_url=url,
        )

    return build


def _button(action: Action, value: str, **extra: Any) -> Callable[..., Any]:
    def build(req: SlackRequests, user: str, url: str, ids: dict[str, Any]) -> Any:
        payload = req.block_actions(
            action, value.format(**ids), user_id=user, response_url=url, **extra
        )
        return req.interactivity(payload)

    return build


def _status(req: SlackRequests, user: str, url: str, ids: dict[str, Any]) -> Any:
    payload = req.block_actions(
        Action.STATUS,
        selected_option=f"{ids['ticket']}:waiting",
        action_type="static_select",
        user_id=user,
        response_url=url,
    )
    return req.interactivity(payload)


def _view(callback: str, values: dict[str, Any], metadata: str = "") -> Callable[..., Any]:
    def build(req: SlackRequests, user: str, url: str, ids: dict[str, Any]) -> Any:
        text = json.dumps(values).replace("TICKET_ID", str(ids["ticket"]))
        meta = metadata.replace("TICKET_ID", str(ids["ticket"]))
        return req.interactivity(
            req.view_submission(callback, json.loads(text), meta, user_id=user)
        )

    return build


def _text(block: str, value: str) -> dict[str, Any]:
    return {block: {f"{block}_input": {"type": "plain_text_input", "value": value}}}


SETTINGS_VALUES: dict[str, Any] = {
    SettingsField.TIMEZONE: {SettingsField.TIMEZONE: {"value": "Europe/Berlin"}},
    SettingsField.WEEKDAY: {SettingsField.WEEKDAY: {"selected_option": {"value": "0"}}},
    SettingsField.TIME: {SettingsField.TIME: {"selected_time": "08:00"}},
    SettingsField.CHANNEL: {SettingsField.CHANNEL: {"selected_conversation": "CMANAGERS"}},
    SettingsField.TARGET: {SettingsField.TARGET: {"value": "30"}},
    SettingsField.CURRENCY: {SettingsField.CURRENCY: {"value": "EUR"}},
    SettingsField.MONTHLY: {SettingsField.MONTHLY: {"selected_options": []}},
}
EVERYONE = (AGENT, MANAGER, ADMIN)
ACTIONS = (
    Act("/profit", MONEY_ROLES, "command", _command("/profit", "2025-06")),
    Act("/profit export", MONEY_ROLES, "command", _command("/profit", "export 2025-06")),
    Act("/docket members", (ADMIN,), "command", _command("/docket", "members")),
    Act("/docket settings", (ADMIN,), "command", _command("/docket", "settings")),
    Act("/docket customers", MONEY_ROLES, "command", _command("/docket", "customers")),
    Act("/docket customers list", MONEY_ROLES, "command", _command("/docket", "customers list")),
    Act("/docket rates list", MONEY_ROLES, "command", _command("/docket", "rates list")),
    Act("/docket outbox", (ADMIN,), "command", _command("/docket", "outbox")),
    Act("/docket mail", (ADMIN,), "command", _command("/docket", "mail")),
    Act("/time (cost display)", EVERYONE, "command", _command("/time", "30m #{number} fixed")),
    Act("/ticket list", EVERYONE, "command", _command("/ticket", "list")),
    Act("/ticket <number>", EVERYONE, "command", _command("/ticket", "{number}")),
    Act("assign to me", EVERYONE, "action", _button(Action.ASSIGN_TO_ME, "{ticket}")),
    Act("status", EVERYONE, "action", _status),
    Act("close", EVERYONE, "action", _button(Action.CLOSE, "{ticket}")),
    Act("reply to customer", EVERYONE, "action", _button(Action.REPLY, "{ticket}")),
    Act(
        "reply modal",
        EVERYONE,
        "view",
        _view(
            View.REPLY,
            {REPLY_BLOCK: {REPLY_INPUT: {"type": "plain_text_input", "value": "On it."}}},
            '{"ticket_id": TICKET_ID}',
        ),
    ),
    Act(
        "members modal",
        (ADMIN,),
        "view",
        _view(
            View.MEMBER,
            {
                USER_BLOCK: {"user_input": {"selected_user": "USPARE"}},
                ACCESS_BLOCK: {"access_input": {"selected_option": {"value": "admin"}}},
            },
        ),
    ),
    Act("settings modal", (ADMIN,), "view", _view(View.SETTINGS, SETTINGS_VALUES)),
    Act(
        "customer modal",
        MONEY_ROLES,
        "view",
        _view(View.CUSTOMER, {**_text("name", "Zeta Corp"), **_text("domains", "zeta.test")}),
    ),
    Act(
        "cost rate modal",
        MONEY_ROLES,
        "view",
        _view(
            View.COST_RATE,
            {
                "default": {"default_input": {"selected_options": [{"value": "default"}]}},
                "since": {"since_input": {"selected_date": "2025-01-01"}},
                **_text("hourly_cost", "61.00"),
            },
        ),
    ),
)


@dataclass
class Seen:
    """What one request showed its sender, and what it logged."""

    status: int
    slack: str  # the HTTP answer and every Slack call it caused, as text
    opened_modal: bool
    logs: str


async def _row_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            table.name: int(
                (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
            )
            for table in SQLModel.metadata.sorted_tables
            # The intake stores every request that may write before it is acknowledged;
            # what counts is what the request changed.
            if table.name != "slack_intake"
        }


async def _seed(docket: Any) -> dict[str, Any]:
    emulator, services = docket.emulator, docket.services
    for user, name in ((AGENT, "Agent"), (MANAGER, "Manager"), (ADMIN, "Admin")):
        emulator.add_user(user, name=name.lower(), real_name=name, email=f"{name}@provider.test")
    emulator.add_user("USPARE", name="spare", real_name="Spare", email="spare@provider.test")
    # Slack Connect: the customer's account lives in their own organisation.
    emulator.add_user(CUSTOMER, name="carol", real_name="Carol", email="carol@acme.test")
    emulator.users[CUSTOMER]["team_id"] = "TCUSTOMER"
    w = World(services.engine, services.workspace_id)
    agent = await w.member("Agent")
    await w.member("Manager", role=Role.MANAGER)
    await w.member("Admin", role=Role.ADMIN)
    await w.cost_rate(6000, date(2025, 1, 1))
    acme = await w.customer("Acme")
    support = await w.contract(
        acme, "Support", ContractKind.HOURLY, date(2025, 1, 1), hourly_rate_minor=12000
    )
    card = emulator.add_message("CTRIAGE", "Ticket #1")
    async with services.transaction() as session:
        customer = await session.get(Customer, acme)
        assert customer is not None
        customer.slack_channel = "CACME"
        customer.email_domains = "acme.test"
        session.add(customer)
        contact = Contact(
            workspace_id=services.workspace_id,
            customer_id=acme,
            email="carol@acme.test",
            name="Carol",
            slack_user_id=CUSTOMER,
        )
        session.add(contact)
        await session.flush()
        ticket = Ticket(
            workspace_id=services.workspace_id,
            number=1,
            title="Printer on fire",
            customer_id=acme,
            contact_id=contact.id,
            contract_id=support,
            requester_email="carol@acme.test",
            card_channel="CTRIAGE",
            card_ts=card["ts"],
        )
        session.add(ticket)
        ws = await session.get(Workspace, services.workspace_id)
        assert ws is not None
        ws.next_ticket_number = 2
        session.add(ws)
        await session.flush()
        ticket_id = ticket.id
    await w.log(agent, 90, date(2025, 6, 3), contract_id=support, ticket_id=ticket_id)
    await w.refresh()
    # The customer is seen once (as the first request of theirs would): recorded, inactive.
    first_sight = await resolve_member(services, CUSTOMER)
    assert first_sight.active is False
    return {"ticket": ticket_id, "number": 1}


def _attributable(call: Any, user: str, name: str) -> bool:
    """Whether `call` shows something to `user` (or to anyone but the managers' channel)."""
    if call.method == "response_url":
        return bool(call.path.endswith("/" + name))
    channel = call.args.get("channel") or call.args.get("channel_id")
    return channel != "CMANAGERS"


async def _do(
    docket: Any, req: SlackRequests, act: Act, user: str, ids: dict[str, Any], caplog: Any
) -> Seen:
    emulator = docket.emulator
    name = f"{act.name.replace(' ', '-').strip('/')}-{user}-{time.monotonic_ns()}"
    mark, log_mark = len(emulator.calls), len(caplog.records)
    body, headers = act.build(req, user, emulator.response_url(name), ids)
    sent = time.monotonic()
    reply = await docket.send(body, headers)
    if act.kind != "view" and reply.status == 200:
        # The answer comes after the ack: a response_url post, a modal, or (a card button) the
        # card's update and the App Home refresh.
        answers = ("views.open", "views.publish")
        await emulator.wait_for(
            lambda c: c.at >= sent and (c.path.endswith("/" + name) or c.method in answers),
            timeout=10,
        )
    await asyncio.sleep(0.15)  # anything else this request causes arrives now
    calls = [c for c in emulator.calls[mark:] if _attributable(c, user, name)]
    shown = reply.body.decode("utf-8", "replace") + json.dumps(
        [[c.method, c.args] for c in calls], default=str, ensure_ascii=False
    )
    logs = "\n".join(r.getMessage() for r in caplog.records[log_mark:] if r.levelno >= logging.INFO)
    return Seen(reply.status, shown, any(c.method == "views.open" for c in calls), logs)


async def test_every_role_against_every_action(docket: Any, caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    ids = await _seed(docket)
    engine = docket.services.engine
    ours = docket.requests
    theirs = SlackRequests(SIGNING_SECRET, team_id="TOTHER")
    problems: list[str] = []

    # Denied first, while the world is as seeded; then the allowed ones as positive controls.
    cells = [(act, user) for act in ACTIONS for user in (*ROLES, OUTSIDER)]
    cells.sort(key=lambda cell: cell[1] in cell[0].allowed)
    for act, user in cells:
        allowed = user in act.allowed
        where = f"{act.name} by {user}"
        before = await _row_counts(engine)
        seen = await _do(docket, theirs if user == OUTSIDER else ours, act, user, ids, caplog)
        refused = any(text in seen.slack for text in REFUSALS)
        if user == OUTSIDER:
            if seen.status != 403:
                problems.append(f"{where}: HTTP {seen.status}, not 403")
        elif seen.status != 200:
            problems.append(f"{where}: HTTP {seen.status}")
        if not allowed:
            if await _row_counts(engine) != before:
                after = await _row_counts(engine)
                changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
                problems.append(f"{where}: denied but wrote {changed}")
            if user != OUTSIDER and not refused:
                problems.append(f"{where}: denied without saying why: {seen.slack[:300]}")
            if '"in_channel"' in seen.slack:
                problems.append(f"{where}: the refusal was posted for the whole channel")
            if seen.opened_modal:
                problems.append(f"{where}: denied but a modal opened")
        elif refused:
            problems.append(f"{where}: refused although allowed: {seen.slack[:300]}")
        if user not in MONEY_ROLES:
            for source, text in (("Slack", seen.slack), ("logs", seen.logs)):
                if found := MONEY.search(text):
                    context = text[max(0, found.start() - 80) : found.end() + 80]
                    problems.append(f"{where}: money in {source}: …{context}…")
        if act.name in ("/profit", "/time (cost display)") and user in MONEY_ROLES:
            # The detector works: managers do see the amounts.
            if not MONEY.search(seen.slack):
                problems.append(f"{where}: a manager saw no amounts: {seen.slack[:300]}")
    assert problems == [], "\n".join(problems)


# -- two workspaces in one database ------------------------------------------------------------

BRAVO = "BRAVO"  # every name and text of the second workspace carries it


async def _fill(engine: AsyncEngine, ws: int, mark: str) -> dict[str, int]:
    """A workspace with people, a customer, a contract, rates, a ticket, time and mail."""
    from models import inbound_store, outbox, timelog
    from models.tables import EmailMessage, EventKind, TicketEvent

    w = World(engine, ws)
    agent = await w.member(f"Agent{mark}", group=f"Group {mark}")
    await w.member(f"Boss{mark}", role=Role.ADMIN)
    await w.cost_rate(5000, date(2025, 1, 1))
    await w.cost_rate(7000, date(2025, 1, 1), member_id=agent)
    customer = await w.customer(f"Customer {mark}")
    contract = await w.contract(
        customer, f"Support {mark}", ContractKind.HOURLY, date(2025, 1, 1), hourly_rate_minor=9000
    )
    # A fixed fee and contract-less ticket time of its own size, for the weekly figures.
    fee = 100_000 if mark != BRAVO else 777_700
    await w.contract(
        customer, f"Managed {mark}", ContractKind.FIXED, date(2025, 1, 1), monthly_fee_minor=fee
    )
    ticket = await w.ticket(1, customer, contract)
    loose = await w.ticket(2, None, None)
    await w.log(agent, 30 if mark != BRAVO else 47, date(2025, 6, 4), ticket_id=loose)
    entry = await w.log(agent, 60, date(2025, 6, 3), ticket_id=ticket)
    await w.refresh()
    async with w.sessions() as s, s.begin():
        c = await s.get(Customer, customer)
        assert c is not None
        c.slack_channel = f"C{mark}"
        c.email_domains = f"{mark.lower()}.test"
        s.add(c)
        s.add(
            Contact(
                workspace_id=ws,
                customer_id=customer,
                email=f"pat@{mark.lower()}.test",
                name=f"Pat {mark}",
                slack_user_id=f"UPAT{mark}",
            )
        )
        t = await s.get(Ticket, ticket)
        assert t is not None
        t.assignee_id = agent
        t.card_channel, t.card_ts = "CTRIAGE", f"1.{len(mark)}"
        t.title = f"Printer {mark}"
        t.requester_email = f"pat@{mark.lower()}.test"
        s.add(t)
        s.add(
            TicketEvent(
                workspace_id=ws,
                ticket_id=ticket,
                kind=EventKind.CUSTOMER_REPLY,
                body=f"hello {mark}",
                actor_label=f"pat {mark}",
                slack_ts=f"9.{len(mark)}",
            )
        )
        mail_id = await inbound_store.store_received(
            session=s,
            workspace_id=ws,
            raw=f"From: pat@{mark.lower()}.test\r\nSubject: {mark}\r\n\r\nhi".encode(),
            envelope_from=f"pat@{mark.lower()}.test",
            envelope_to=["support@example.com"],
            at=w.at,
        )
        row = await s.get(EmailMessage, mail_id)
        assert row is not None
        row.status, row.from_addr, row.subject = "quarantined", f"pat@{mark.lower()}.test", mark
        row.message_id = f"<{mark}@x.test>"
        row.ticket_id = ticket
        s.add(row)
        await outbox.enqueue(
            session=s,
            workspace_id=ws,
            kind=outbox.SLACK,
            key=f"dead-{mark}",
            payload=outbox.slack_call("chat.postMessage", channel=f"C{mark}", text=mark),
            at=w.at,
        )
        await s.flush()
        await s.execute(
            sa.text("UPDATE outbox_message SET status = 'dead' WHERE workspace_id = :ws"),
            {"ws": ws},
        )
        assert await timelog.get_entry(session=s, workspace_id=ws, entry_id=entry) is not None
    return {
        "agent": agent,
        "customer": customer,
        "contract": contract,
        "ticket": ticket,
        "entry": entry,
        "mail": mail_id,
    }


# Functions with a workspace_id that write (or are only called inside a write); the read
# functions are all called below, and a new one fails the completeness check until it is.
WRITES = {
    "alerts.create_source",
    "alerts.fail_delivery",
    "alerts.map_customer",
    "alerts.process_claimed",
    "alerts.store_delivery",
    "profit_store.execute_plan",
    "profit_bulk.rebuild",
    "profit_store.lock_customer",
    "profit_store.store_customer",
    "profit_bulk.recompute_customers",
    "profit_bulk.refresh_many",
    "profit_bulk.refresh_step",
    "profit_bulk.settle",
    "profit_bulk.apply_cost_changes",
    "cost_changes.record",
    "cost_changes.hold",  # a lock only
    "cost_changes.guard",
    "sla_store.remove_holiday",
    "sla_store.set_contract_policy",
    "directory.change_member_access",
    "directory.save_charge_rate",
    "directory.save_contact",
    "directory.save_contract",
    "directory.save_cost_rate",
    "directory.save_customer",
    "directory.save_member",
    "profit_refresh.ensure_horizon",
    "profit_report.mark_restatements_reported",
    "engine.rebuild",
    "engine.rebuild_customer",
    "profit_report.record_report_run",
    "profit_refresh.refresh_some",
    "exports.replace_account_codes",
    "exports.set_labour_allocation",
    "importer.import_csv",
    "importer.write_time_rows",
    "inbound_store.claim_received",
    "inbound_apply.move_status",
    "inbound_apply.open_customer_ticket",
    "inbound_apply.process_mail",
    "inbound_apply.record_customer_reply",
    "inbound_store.release_mail",
    "inbound_store.store_received",
    "intake.claim_requests",  # a leasing write; scoped per workspace in tests/models/test_intake.py
    "intake.store_request",
    "intake.store_requests",
    "notify.notify_customer_reply",
    "notify.queue_customer_reply",
    "outbox.enqueue",
    "outbox.enqueue_many",
    "outbox.retry_dead",
    "people.ensure_group",
    "people.ensure_member",
    "replies.queue_email_reply",
    "replies.record_agent_reply",
    "report_runs.claim_run",
    "slack_directory.apply_slack_users",
    "tickets.store_card_location",
    "tickets.add_note",
    "tickets.create_ticket",
    "tickets.create_tickets",
    "tickets.delete_note",
    "tickets.edit_note",
    "tickets.next_ticket_number",
    "tickets.update_ticket",
    "tickets.update_with_retry",
    "timelog.delete_time",
    "timelog.edit_time",
    "timelog.log_time",
    "timelog.mark_contract_change",
    "timelog.mark_contract_time_from",
    "timelog.mark_entry_changes",
    "timelog.mark_members_from",
    "timelog.mark_stale",
    "timelog.retarget_ticket_time",
    "workspaces.probe_write",
    "sla_import.apply_sla_row",
    "sla_import.start_sla_import",
    "sla_store.queue_card_refresh",
    "sla_store.queue_notice",
    "sla_store.queue_notices",
    "sla_store.refresh_open_tickets",
    "sla_store.refresh_ticket_sla",
    "sla_store.refresh_tickets_sla",
    "sla_store.replace_business_hours",
    "sla_store.save_holiday",
    "sla_store.save_policy",
    "sla_store.scan_due",
    "sla_store.set_next_check",
    "sla_store.set_warning_pct",
    "sla_store.store_states",
}


def _export_reads(ws: int, june: Any, at: datetime) -> list[tuple[str, Callable[[Any], Any]]]:
    """The journal and invoice reads (a journal without `final` records nothing)."""
    from models import engine as per_customer
    from models import exports

    async def usage(s: Any) -> Any:
        contracts = await per_customer.load_contracts(session=s, workspace_id=ws)
        return await exports.block_usage_in(
            session=s, workspace_id=ws, month=june, contracts=contracts
        )

    return [
        ("exports.block_usage_in", usage),
        (
            "exports.build_invoices",
            lambda s: exports.build_invoices(session=s, workspace_id=ws, month=june),
        ),
        (
            "exports.export_journal",
            lambda s: exports.export_journal(
                session=s, workspace_id=ws, month=june, final=False, at=at
            ),
        ),
        (
            "exports.labour_allocation",
            lambda s: exports.labour_allocation(session=s, workspace_id=ws),
        ),
        ("exports.load_accounts", lambda s: exports.load_accounts(session=s, workspace_id=ws)),
        (
            "exports.month_amounts",
            lambda s: exports.month_amounts(session=s, workspace_id=ws, month=june, labour=True),
        ),
        (
            "exports.month_data",
            lambda s: exports.month_data(session=s, workspace_id=ws, month=june),
        ),
        (
            "exports.report_run_label",
            lambda s: exports.report_run_label(session=s, workspace_id=ws, month=june),
        ),
    ]


def _workspace_functions() -> set[str]:
    found = set()
    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"models.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.iscoroutinefunction):
            if fn.__module__ == module.__name__ and not name.startswith("_"):
                if "workspace_id" in inspect.signature(fn).parameters:
                    found.add(f"{info.name}.{name}")
    return found


def _leaks(value: Any, ours: int, path: str = "result") -> list[str]:
    """Rows (or text) of the other workspace anywhere inside `value`."""
    found: list[str] = []
    if isinstance(value, SQLModel):
        ws = getattr(value, "workspace_id", ours)
        if ws != ours:
            found.append(f"{path}: {type(value).__name__} of workspace {ws}")
    if BRAVO in repr(value):
        found.append(f"{path}: mentions {BRAVO}: {repr(value)[:200]}")
    return found


async def test_no_read_function_returns_another_workspaces_rows(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    from models import (
        cost_changes,
        customer_channel,
        directory,
        inbound_apply,
        inbound_store,
        notify,
        outbox,
        people,
        profit_bulk,
        profit_refresh,
        profit_report,
        profit_store,
        replies,
        report_runs,
        tickets,
        timelog,
        weekly_data,
        workspaces,
    )
    from models import engine as per_customer
    from models.inbound_apply import InboundConfig
    from models.periods import parse_period
    from models.tables import EventKind, TicketEvent
    from models.threading import MailFacts
    from models.tickets import TicketQuery

    assert workspace.id is not None
    alpha = workspace.id
    async with World(engine, alpha).sessions() as s, s.begin():
        other = Workspace(team_id="TBRAVO", name=BRAVO, currency="USD")
        s.add(other)
        await s.flush()
        assert other.id is not None
        bravo = other.id
    a = await _fill(engine, alpha, "ALPHA")
    b = await _fill(engine, bravo, BRAVO)
    at = datetime(2025, 6, 20, 10, 0, tzinfo=UTC)
    june = parse_period("2025-06", today=date(2025, 6, 20))
    config = InboundConfig(
        support_address="support@example.com", secret=b"s", reopen_days=14, hold_unknown=False
    )

    sessions = World(engine, alpha).sessions
    problems: list[str] = []
    covered: set[str] = set()

    async def check(name: str, call: Callable[[Any], Any], *, expect_none: bool = False) -> None:
        covered.add(name)
        async with sessions() as s:
            try:
                value = await call(s)
            except (LookupError, TimeRefused) as exc:
                value = exc  # "not found" is the right answer for the other's ids
        problems.extend(f"{name}: {leak}" for leak in _leaks(value, alpha))

    ws = alpha
    bt, bc, bm = b["ticket"], b["customer"], b["agent"]
    async with sessions() as s:
        alpha_ticket = await s.get(Ticket, a["ticket"])
        bravo_ticket = await s.get(Ticket, bt)
        bravo_member = await s.get(Member, bm)
    assert alpha_ticket is not None and bravo_ticket is not None and bravo_member is not None
    async with sessions() as s, s.begin():
        # A Slack message only the other workspace has recorded.
        s.add(
            TicketEvent(workspace_id=bravo, ticket_id=bt, kind=EventKind.NOTE, slack_ts="8.BRAVO")
        )
    mail = MailFacts(
        from_addr=f"pat@{BRAVO.lower()}.test",
        to_addrs=("support@example.com",),
        in_reply_to=f"<{BRAVO}@x.test>",
        references=(),
        subject=f"Re: [#1] {BRAVO}",
        auto_kind=None,
    )
    reads: list[tuple[str, Callable[[Any], Any]]] = [
        (
            "directory.contract_by_name",
            lambda s: directory.contract_by_name(
                session=s, workspace_id=ws, customer_id=bc, name=f"Support {BRAVO}"
            ),
        ),
        (
            "directory.customer_by_name",
            lambda s: directory.customer_by_name(
                session=s, workspace_id=ws, name=f"Customer {BRAVO}"
            ),
        ),
        (
            "directory.group_by_name",
            lambda s: directory.group_by_name(session=s, workspace_id=ws, name=f"Group {BRAVO}"),
        ),
        (
            "directory.list_contracts",
            lambda s: directory.list_contracts(session=s, workspace_id=ws),
        ),
        (
            "directory.list_cost_rates",
            lambda s: directory.list_cost_rates(session=s, workspace_id=ws),
        ),
        (
            "directory.list_customers",
            lambda s: directory.list_customers(session=s, workspace_id=ws, active_only=False),
        ),
        ("directory.list_groups", lambda s: directory.list_groups(session=s, workspace_id=ws)),
        (
            "directory.match_customers",
            lambda s: directory.match_customers(session=s, workspace_id=ws, text="Customer"),
        ),
        (
            "directory.member_by_email",
            lambda s: directory.member_by_email(
                session=s, workspace_id=ws, email=f"agent{BRAVO.lower()}@provider.test"
            ),
        ),
        (
            "directory.workspace_today",
            lambda s: directory.workspace_today(session=s, workspace_id=ws, at=at),
        ),
        (
            "profit_report.build_report",
            lambda s: profit_report.build_report(session=s, workspace_id=ws, period=june),
        ),
        (
            "engine.compute_customer_period",
            lambda s: _no_minutes(
                per_customer.compute_customer_period(
                    session=s, workspace_id=ws, customer_id=bc, period=june
                )
            ),
        ),
        (
            "engine.compute_customer_periods",
            lambda s: _no_minutes(
                per_customer.compute_customer_periods(
                    session=s, workspace_id=ws, customer_id=bc, periods=[june]
                ),
                nested=True,
            ),
        ),
        (
            "weekly_data.fixed_fees",
            lambda s: _no_bravo_fee(weekly_data.fixed_fees(session=s, workspace_id=ws)),
        ),
        (
            "weekly_data.ticket_gaps",
            lambda s: _exactly(
                weekly_data.ticket_gaps(session=s, workspace_id=ws, period=june), minutes=30
            ),
        ),
        (
            "engine.customers_with_data",
            lambda s: per_customer.customers_with_data(session=s, workspace_id=ws),
        ),
        (
            "engine.load_contracts",
            lambda s: per_customer.load_contracts(session=s, workspace_id=ws),
        ),
        (
            "cost_changes.load_cost_rates",
            lambda s: cost_changes.load_cost_rates(session=s, workspace_id=ws),
        ),
        (
            "engine.load_entries",
            lambda s: per_customer.load_entries(
                session=s,
                workspace_id=ws,
                customer_id=bc,
                start=date(2025, 1, 1),
                end=date(2025, 12, 31),
            ),
        ),
        (
            "profit_report.pending_restatements",
            lambda s: profit_report.pending_restatements(session=s, workspace_id=ws),
        ),
        (
            "profit_store.reported_period_keys",
            lambda s: profit_store.reported_period_keys(session=s, workspace_id=ws),
        ),
        (
            "profit_refresh.stale_count",
            lambda s: profit_refresh.stale_count(session=s, workspace_id=ws),
        ),
        (
            "profit_bulk.time_span",
            lambda s: profit_bulk.time_span(session=s, workspace_id=ws),
        ),
        (
            "profit_report.stored_rows",
            lambda s: profit_report.stored_rows(session=s, workspace_id=ws, period=june),
        ),
        (
            "inbound_apply.contact_by_email",
            lambda s: inbound_apply.contact_by_email(
                session=s, workspace_id=ws, email=f"pat@{BRAVO.lower()}.test"
            ),
        ),
        (
            "inbound_apply.count_recent_from",
            lambda s: _zero(
                inbound_apply.count_recent_from(
                    session=s,
                    workspace_id=ws,
                    sender=f"pat@{BRAVO.lower()}.test",
                    subject=BRAVO,
                    since=datetime(2000, 1, 1, tzinfo=UTC),
                    until=datetime(2100, 1, 1, tzinfo=UTC),
                )
            ),
        ),
        (
            "inbound_apply.customer_by_domain",
            lambda s: inbound_apply.customer_by_domain(
                session=s, workspace_id=ws, domain=f"{BRAVO.lower()}.test"
            ),
        ),
        ("inbound_store.list_mail", lambda s: inbound_store.list_mail(session=s, workspace_id=ws)),
        (
            "inbound_store.next_retry_at",
            lambda s: inbound_store.next_retry_at(session=s, workspace_id=ws),
        ),
        (
            "inbound_apply.thread_lookup",
            lambda s: inbound_apply.thread_lookup(
                session=s, workspace_id=ws, mail=mail, config=config
            ),
        ),
        ("notify.admin_slack_ids", lambda s: notify.admin_slack_ids(session=s, workspace_id=ws)),
        ("notify.plan_customer_reply", lambda s: _plan(s, notify, ws, alpha_ticket, at)),
        ("outbox.list_dead", lambda s: outbox.list_dead(session=s, workspace_id=ws)),
        (
            "outbox.status_counts",
            lambda s: _counted(outbox.status_counts(session=s, workspace_id=ws), 1),
        ),
        (
            "people.member_by_slack_id",
            lambda s: people.member_by_slack_id(
                session=s, workspace_id=ws, slack_user_id=f"UAGENT{BRAVO}"
            ),
        ),
        (
            "people.members_by_slack_ids",
            lambda s: people.members_by_slack_ids(
                session=s, workspace_id=ws, slack_user_ids=[f"UAGENT{BRAVO}"]
            ),
        ),
        (
            "replies.last_customer_message",
            lambda s: replies.last_customer_message(
                session=s, workspace_id=ws, ticket=bravo_ticket
            ),
        ),
        (
            "tickets.active_contracts",
            lambda s: tickets.active_contracts(
                session=s, workspace_id=ws, customer_id=bc, on=date(2025, 6, 1)
            ),
        ),
        (
            "tickets.contact_by_slack_user",
            lambda s: tickets.contact_by_slack_user(
                session=s, workspace_id=ws, slack_user_id=f"UPAT{BRAVO}"
            ),
        ),
        (
            "tickets.contacts_of",
            lambda s: tickets.contacts_of(session=s, workspace_id=ws, customer_id=bc),
        ),
        (
            "tickets.customer_by_channel",
            lambda s: tickets.customer_by_channel(session=s, workspace_id=ws, channel=f"C{BRAVO}"),
        ),
        (
            "tickets.customer_by_name",
            lambda s: tickets.customer_by_name(
                session=s, workspace_id=ws, name=f"Customer {BRAVO}"
            ),
        ),
        (
            "tickets.get_ticket",
            lambda s: tickets.get_ticket(session=s, workspace_id=ws, ticket_id=bt),
        ),
        (
            "tickets.home_data",
            lambda s: _home(
                tickets.home_data(session=s, workspace_id=ws, member=bravo_member, at=at)
            ),
        ),
        (
            "tickets.last_changed_by",
            lambda s: tickets.last_changed_by(session=s, workspace_id=ws, ticket_id=bt),
        ),
        (
            "tickets.list_tickets",
            lambda s: tickets.list_tickets(session=s, workspace_id=ws, query=TicketQuery()),
        ),
        (
            "tickets.load_card",
            lambda s: tickets.load_card(session=s, workspace_id=ws, ticket=alpha_ticket),
        ),
        (
            "tickets.load_cards",
            lambda s: tickets.load_cards(session=s, workspace_id=ws, tickets=[alpha_ticket]),
        ),
        (
            "tickets.minutes_logged",
            lambda s: _zero(
                tickets.minutes_logged(
                    session=s,
                    workspace_id=ws,
                    member_id=bm,
                    start=date(2025, 1, 1),
                    end=date(2025, 12, 31),
                )
            ),
        ),
        (
            "tickets.search_customers",
            lambda s: tickets.search_customers(session=s, workspace_id=ws, text=""),
        ),
        (
            "tickets.ticket_by_card",
            lambda s: tickets.ticket_by_card(
                session=s, workspace_id=ws, channel="CTRIAGE", ts=f"1.{len(BRAVO)}"
            ),
        ),
        (
            "tickets.ticket_by_number",
            lambda s: tickets.ticket_by_number(session=s, workspace_id=ws, number=1),
        ),
        (
            "tickets.ticket_events",
            lambda s: tickets.ticket_events(session=s, workspace_id=ws, ticket_id=bt),
        ),
        (
            "tickets.workspace_today",
            lambda s: tickets.workspace_today(session=s, workspace_id=ws, at=at),
        ),
        (
            "timelog.get_entry",
            lambda s: timelog.get_entry(session=s, workspace_id=ws, entry_id=b["entry"]),
        ),
        (
            "timelog.minutes_on_day",
            lambda s: _zero(
                timelog.minutes_on_day(
                    session=s, workspace_id=ws, member_id=bm, day=date(2025, 6, 3)
                )
            ),
        ),
        (
            "timelog.recent_entries",
            lambda s: timelog.recent_entries(session=s, workspace_id=ws, member_id=bm),
        ),
        (
            "workspaces.get_workspace",
            lambda s: workspaces.get_workspace(session=s, workspace_id=ws),
        ),
        *_export_reads(ws, june, at),
        (
            "people.member_by_id",
            lambda s: people.member_by_id(session=s, workspace_id=ws, member_id=bm),
        ),
        (
            "replies.sent_mail",
            lambda s: replies.sent_mail(session=s, workspace_id=ws, message_id=f"<{BRAVO}@x.test>"),
        ),
        (
            "report_runs.runs_of",
            lambda s: report_runs.runs_of(session=s, workspace_id=ws, kinds=["weekly"]),
        ),
        (
            "report_runs.abandoned_runs",
            lambda s: report_runs.abandoned_runs(
                session=s, workspace_id=ws, kinds=["weekly"], now=at, older_than=None
            ),
        ),
        (
            "tickets.announce_channel",
            lambda s: tickets.announce_channel(
                session=s, workspace_id=ws, ticket=bravo_ticket, creator_slack_id=None
            ),
        ),
        (
            "tickets.announce_channels",
            lambda s: tickets.announce_channels(
                session=s, workspace_id=ws, tickets=[(bravo_ticket, None)]
            ),
        ),
        (
            "tickets.default_contract_id",
            lambda s: tickets.default_contract_id(
                session=s, workspace_id=ws, customer_id=bc, on=date(2025, 6, 20)
            ),
        ),
        (
            "tickets.customer_by_id",
            lambda s: tickets.customer_by_id(session=s, workspace_id=ws, customer_id=bc),
        ),
        (
            "tickets.contract_by_id",
            lambda s: tickets.contract_by_id(session=s, workspace_id=ws, contract_id=b["contract"]),
        ),
        (
            "tickets.ticket_by_id",
            lambda s: tickets.ticket_by_id(session=s, workspace_id=ws, ticket_id=bt),
        ),
        (
            "tickets.event_by_slack_ts",
            lambda s: tickets.event_by_slack_ts(session=s, workspace_id=ws, slack_ts="1.0"),
        ),
        (
            "tickets.names_by_id",
            lambda s: tickets.names_by_id(
                session=s,
                workspace_id=ws,
                ticket_ids=[bt],
                customer_ids=[bc],
                contract_ids=[b["contract"]],
            ),
        ),
        (
            "people.roster",
            lambda s: people.roster(session=s, workspace_id=ws),
        ),
        (
            "tickets.card_location",
            lambda s: tickets.card_location(session=s, workspace_id=ws, ticket_id=bt),
        ),
        (
            "tickets.card_thread_target",
            lambda s: tickets.card_thread_target(session=s, workspace_id=ws, ticket_id=bt),
        ),
        (
            "customer_channel.message_recorded",
            lambda s: _zero(
                customer_channel.message_recorded(session=s, workspace_id=ws, slack_ts="8.BRAVO")
            ),
        ),
    ]
    reads += await _sla_reads(engine, ws, bravo, bravo_ticket, june, at)
    reads += _new_reads(ws, bravo_ticket, b["mail"])
    for name, call in reads:
        await check(name, call)

    unclassified = _workspace_functions() - covered - WRITES - CLAIMS
    assert not unclassified, (
        f"functions with a workspace_id not classified here: {sorted(unclassified)}; call a "
        "read function in `reads` above, or add a write to WRITES"
    )
    assert problems == [], "\n".join(problems)


async def _zero(value: Any) -> Any:
    """Counts and sums over the other workspace's rows must be zero."""
    result = await value
    return BRAVO if result else result


async def _home(value: Any) -> Any:
    """What App Home lists (the member's own name comes from the caller's object)."""
    data = await value
    return (data.mine, data.waiting, data.unassigned, _zero_value(data.minutes_this_week))


def _zero_value(result: Any) -> Any:
    return BRAVO if result else result


async def _no_minutes(value: Any, *, nested: bool = False) -> Any:
    """Figures computed for the other workspace's customer must be empty."""
    result = await value
    rows = [r for inner in result.values() for r in inner.values()] if nested else result.values()
    return BRAVO if any(fig.minutes for fig in rows) else result


async def _no_bravo_fee(value: Any) -> Any:
    fees = await value
    return BRAVO if any(fee == 777_700 for fee, _ in fees.values()) else fees


async def _exactly(value: Any, **expected: Any) -> Any:
    result = await value
    return BRAVO if any(getattr(result, k) != v for k, v in expected.items()) else result


async def _counted(value: Any, expected: int) -> Any:
    counts = await value
    return BRAVO if sum(counts.values()) != expected else counts


async def _plan(session: Any, notify: Any, ws: int, ticket: Ticket, at: datetime) -> Any:
    from models.tables import EventKind, TicketEvent

    event = (
        await session.exec(
            select(TicketEvent).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.kind == EventKind.CUSTOMER_REPLY
            )
        )
    ).first()
    return await notify.plan_customer_reply(
        session=session,
        workspace_id=ws,
        ticket=ticket,
        event=event,
        text="x",
        at=at,
        fold_updates=3,
        fold_minutes=10,
    )


async def test_a_person_slack_cannot_describe_gets_no_agent_rights(docket: Any) -> None:
    """A first-time user whose users.info look-up fails (an error, a rate limit) is not made an
    active agent: Docket cannot tell a colleague from a customer in a shared channel."""
    emulator = docket.emulator
    emulator.add_user(CUSTOMER, name="carol", real_name="Carol", email="carol@acme.test")
    emulator.users[CUSTOMER]["team_id"] = "TCUSTOMER"
    emulator.fail_next("users.info", "ratelimited")  # the one look-up of a new person fails
    name = f"list-{time.monotonic_ns()}"
    reply = await docket.command(
        "/ticket", "list", user_id=CUSTOMER, response_url=emulator.response_url(name)
    )
    assert reply.status == 200
    answer = await emulator.wait_for(lambda c: c.path.endswith("/" + name), timeout=10)
    assert "Only members of the support team" in json.dumps(answer.args)


async def test_a_colleague_whose_first_look_up_failed_is_recognised_next_time(docket: Any) -> None:
    """The failed look-up stores nothing: the next request asks Slack again."""
    emulator = docket.emulator
    emulator.add_user("UCOLLEAGUE", name="cole", real_name="Cole", email="cole@provider.test")
    emulator.fail_next("users.info", "ratelimited")
    first = f"first-{time.monotonic_ns()}"
    await docket.command(
        "/ticket", "list", user_id="UCOLLEAGUE", response_url=emulator.response_url(first)
    )
    refused = await emulator.wait_for(lambda c: c.path.endswith("/" + first), timeout=10)
    assert "Only members of the support team" in json.dumps(refused.args)
    second = f"second-{time.monotonic_ns()}"
    await docket.command(
        "/ticket", "list", user_id="UCOLLEAGUE", response_url=emulator.response_url(second)
    )
    answer = await emulator.wait_for(lambda c: c.path.endswith("/" + second), timeout=10)
    assert "Only members of the support team" not in json.dumps(answer.args)


# Claims and scans of background work: each takes the scope of the process that runs it (its
# workspace, or its Slack team for stored events); tested below with both workspaces' work due.
CLAIMS = {
    "alerts.claim_deliveries",
    "outbox.claim_due",
    "outbox.next_due_at",
    "inbound_store.claim_received",
    "inbound_store.next_retry_at",
    "profit_refresh.claim_stale",
    "cost_changes.has_pending",
    "cost_changes.take_pending",
}

# Functions of models/ that take a session but no workspace: each acts only on the rows or ids
# it is handed (found through a scoped function first) or creates the workspace itself.
GIVEN_ROWS = {
    "customer_channel.source_message",  # the ticket it is given
    "engine.block_usage_before",  # the contracts it is given
    "profit_store.bulk_insert",  # the rows it is given
    "profit_store.bulk_insert_rows",
    "intake.finish_claimed",  # the stored request this worker claimed (by id and owner)
    "intake.finish_claims",  # the stored requests this worker claimed (by ids and owner)
    "intake.release_claim",
    "intake.settle_failure",
    "tickets.created_event",  # one ticket's first event, the ticket found scoped first
    "inbound_store.record_failure",  # one mail by id (claimed for the workspace)
    "outbox.extend_leases",  # rows this worker holds (by id and owner)
    "outbox.is_queued",  # one idempotency key (keys name their workspace)
    "outbox.mark_dead",
    "outbox.mark_delivered",
    "outbox.mark_retry",
    "outbox.release",
    "outbox.replace_pending_payload",
    "replies.customer_address",  # the ticket it is given
    "report_runs.finish_run",  # one claimed run by id
    "replies.thread_message_ids",
    "slack_events.finish_event",  # one event by id (claimed for the team)
    "slack_events.store_event",  # the team is in the body, checked by the server first
    "sql.insert_ignore",
    "sql.insert_ignore_many",
    "sql.lease_pending",  # the scope (a workspace or team) is given by its caller
}
SCOPES = ("workspace_id", "team_id", "workspace")


def test_every_models_function_is_scoped_or_acts_on_given_rows() -> None:
    """A new claim or scan that forgets its workspace fails here until it takes one."""
    unscoped = set()
    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"models.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.iscoroutinefunction):
            if fn.__module__ != module.__name__ or name.startswith("_"):
                continue
            params = inspect.signature(fn).parameters
            if "session" in params and not any(scope in params for scope in SCOPES):
                unscoped.add(f"{info.name}.{name}")
    assert unscoped - GIVEN_ROWS == set(), "functions of models/ with no workspace scope"
    assert GIVEN_ROWS - unscoped == set(), "GIVEN_ROWS lists functions that are now scoped"
    assert "team_id" in inspect.signature(models.slack_events.claim_pending).parameters


async def test_claims_take_only_their_workspaces_rows(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    """Outbox rows, stored events and received mails of two workspaces, all due: each claim
    takes its own workspace's (its team's) only, and the next-due scans see only those."""
    from models import inbound_store, outbox, slack_events
    from models.tables import EmailMessage

    assert workspace.id is not None
    sessions = World(engine, workspace.id).sessions
    at = datetime(2025, 6, 20, 10, 0, tzinfo=UTC)
    async with sessions() as s, s.begin():
        other = Workspace(team_id="TBRAVO", name=BRAVO, currency="USD")
        s.add(other)
        await s.flush()
        assert other.id is not None
        teams = {workspace.id: workspace.team_id, other.id: other.team_id}
        for ws, team in teams.items():
            await outbox.enqueue(
                session=s,
                workspace_id=ws,
                kind=outbox.SLACK,
                key=f"claim-{ws}",
                payload=outbox.slack_call("chat.postMessage", channel=f"C{ws}", text="x"),
                at=at,
            )
            await slack_events.store_event(
                session=s,
                body={"team_id": team, "event_id": f"Ev{ws}", "event": {"type": "app_mention"}},
                at=at,
            )
            await inbound_store.store_received(
                session=s,
                workspace_id=ws,
                raw=b"Subject: x\r\n\r\nx",
                envelope_from="a@b.test",
                envelope_to=["support@example.com"],
                at=at,
            )
    for ws, team in teams.items():
        async with sessions() as s, s.begin():
            rows = await outbox.claim_due(session=s, workspace_id=ws, now=at, owner=f"w{ws}")
            assert [r.workspace_id for r in rows] == [ws]
            due = await outbox.next_due_at(session=s, workspace_id=ws, exclude=[rows[0].id or 0])
            assert due is None
            events = await slack_events.claim_pending(session=s, team_id=team, now=at)
            assert [e.team_id for e in events] == [team]
            assert await inbound_store.next_retry_at(session=s, workspace_id=ws) is None
            mails = await inbound_store.claim_received(session=s, workspace_id=ws, now=at)
        assert len(mails) == 1
        async with sessions() as s:
            mail = await s.get(EmailMessage, mails[0])
            assert mail is not None and mail.workspace_id == ws


def _new_reads(
    ws: int, bravo_ticket: Ticket, bravo_mail: int
) -> list[tuple[str, Callable[[Any], Any]]]:
    """Reads of alerts, mail and holidays, asked for the other workspace's rows by id."""
    from models import alerts, inbound_store, sla_store

    assert bravo_ticket.id is not None
    return [
        ("alerts.list_sources", lambda s: alerts.list_sources(session=s, workspace_id=ws)),
        (
            "alerts.source_by_name",
            lambda s: alerts.source_by_name(session=s, workspace_id=ws, name=BRAVO),
        ),
        ("alerts.pending_count", lambda s: _zero(alerts.pending_count(session=s, workspace_id=ws))),
        (
            "alerts.alert_info_for_ticket",
            lambda s: alerts.alert_info_for_ticket(
                session=s, workspace_id=ws, ticket_id=bravo_ticket.id
            ),
        ),
        (
            "alerts.waiting_card_refresh",
            lambda s: alerts.waiting_card_refresh(
                session=s, workspace_id=ws, ticket_id=bravo_ticket.id
            ),
        ),
        (
            "inbound_store.full_message",
            lambda s: inbound_store.full_message(session=s, workspace_id=ws, event_id=1),
        ),
        (
            "inbound_store.stored_raw",
            lambda s: inbound_store.stored_raw(session=s, workspace_id=ws, email_id=bravo_mail),
        ),
        ("sla_store.list_holidays", lambda s: sla_store.list_holidays(session=s, workspace_id=ws)),
    ]


async def _sla_reads(
    engine: AsyncEngine, ws: int, bravo: int, bravo_ticket: Ticket, june: Any, at: datetime
) -> list[tuple[str, Callable[[Any], Any]]]:
    """The other workspace gets a policy, a holiday and a clock named after it; none of them
    may show through the SLA read functions."""
    from models import sla_import, sla_report, sla_store
    from models.sla import PriorityTargets

    async with World(engine, bravo).sessions() as s, s.begin():
        await sla_store.save_policy(
            session=s,
            workspace_id=bravo,
            name=BRAVO,
            calendar="24x7",
            targets={"normal": PriorityTargets("1h", "1d")},
        )
        await sla_store.save_holiday(session=s, workspace_id=bravo, day=at.date(), name=BRAVO)
        await sla_store.refresh_open_tickets(session=s, workspace_id=bravo, at=at)
    later = at + timedelta(days=30)
    return [
        (
            "sla_store.due_checks",
            lambda s: sla_store.due_checks(session=s, workspace_id=ws, now=later),
        ),
        (
            "sla_store.has_policies",
            lambda s: _zero(sla_store.has_policies(session=s, workspace_id=ws)),
        ),
        (
            "sla_store.sla_inputs",
            lambda s: sla_store.sla_inputs(session=s, workspace_id=ws, tickets=[bravo_ticket]),
        ),
        ("sla_store.sla_settings", lambda s: sla_store.sla_settings(session=s, workspace_id=ws)),
        (
            "sla_store.ticket_clocks",
            lambda s: sla_store.ticket_clocks(session=s, workspace_id=ws, tickets=[bravo_ticket]),
        ),
        (
            "sla_store.ticket_states",
            lambda s: sla_store.ticket_states(
                session=s, workspace_id=ws, tickets=[bravo_ticket], now=later
            ),
        ),
        (
            "sla_store.workspace_calendar",
            lambda s: sla_store.workspace_calendar(session=s, workspace_id=ws),
        ),
        (
            "sla_store.workspace_policies",
            lambda s: sla_store.workspace_policies(session=s, workspace_id=ws),
        ),
        (
            "sla_import.policy_exists",
            lambda s: _zero(sla_import.policy_exists(session=s, workspace_id=ws, name=BRAVO)),
        ),
        (
            "sla_report.build_sla_report",
            lambda s: sla_report.build_sla_report(
                session=s, workspace_id=ws, period=june, now=later
            ),
        ),
    ]
