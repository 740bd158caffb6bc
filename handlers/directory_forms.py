"""Saving the directory forms: customer, contact, contract, cost rate, charge rate and the
loaded-cost calculator.

Every submission checks the submitter's role again (Slack vouches for the app, not for the
person who clicked) and saves through models.directory within the ack budget: done in time,
problems go back into the form; otherwise the form closes and the outcome comes by DM.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from handlers.ack import Answer, answer_within_budget
from handlers.blocks.common import form_values, safe
from handlers.blocks.directory import (
    amount_of,
    build_calculator_modal,
    build_done_view,
    date_of,
    field,
    read_contract,
    read_subject,
    selected,
    text_of,
)
from handlers.directory_admin import REFUSAL, allowed, today_in_workspace, workspace_groups
from handlers.ids import View
from handlers.people import resolve_member, user_of
from models import directory as d
from models.costcalc import loaded_hourly_cost
from models.money import format_amount, to_decimal_string
from models.sla_import import policy_exists
from models.sla_store import set_contract_policy
from models.workspaces import get_workspace

logger = logging.getLogger(__name__)


def _refused(errors: dict[str, str]) -> Answer:
    return Answer.refused(errors, what="form")


def _done(title: str, text: str) -> Answer:
    return Answer(view=build_done_view(title, text), late=text)


SaveForm = Callable[
    [Services, dict[str, Any], dict[str, Any], AsyncWebClient], Coroutine[Any, Any, Answer]
]


def _answering(save: SaveForm, *, refuse_at: str) -> Callable[..., Coroutine[Any, Any, None]]:
    """A view-submission listener that answers with `save`'s outcome within the ack budget;
    a submitter who may not manage the directory is refused in the form's `refuse_at` field."""

    async def allowed_save(
        services: Services, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> Answer:
        if not await allowed(services, user_of(body)[0], client):
            return _refused({refuse_at: REFUSAL})
        return await save(services, body, view, client)

    async def handle(
        ack: AsyncAck,
        body: dict[str, Any],
        view: dict[str, Any],
        client: AsyncWebClient,
        services: Services,
    ) -> None:
        await answer_within_budget(
            ack, client, user_of(body)[0], allowed_save(services, body, view, client)
        )

    return handle


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _values(view: dict[str, Any]) -> dict[str, Any]:
    return dict(form_values(view))


async def _save_customer(
    services: Services, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
) -> Answer:
    """Save the customer form."""
    values = _values(view)
    errors: dict[str, str] = {}
    try:
        name = d.clean_name(text_of(values, "name"), "customer name")
    except d.DirectoryError as exc:
        errors["name"] = str(exc)
    try:
        domains = d.parse_domains(text_of(values, "domains"))
    except d.DirectoryError as exc:
        errors["domains"] = str(exc)
    if errors:
        return _refused(errors)
    channel = field(values, "channel").get("selected_conversation") or None
    internal = field(values, "internal").get("selected_conversation") or None
    if internal and internal == channel:
        return _refused({"internal": "Choose the team's own channel, not the customer's."})
    picked = {o.get("value") for o in field(values, "notices").get("selected_options") or []}
    try:
        async with services.transaction() as session:
            await d.save_customer(
                session=session,
                workspace_id=services.workspace_id,
                name=name,
                email_domains=domains,
                slack_channel=channel,
                internal_channel=internal,
                notices={n: n in picked for n in d.CUSTOMER_NOTICES},
                customer_id=_metadata(view).get("customer_id"),
                at=services.now(),
            )
    except d.DirectoryError as exc:
        return _refused({"name": str(exc)})
    return _done("Customer saved", f"Saved *{safe(name, 200)}*.")


async def _save_contact(
    services: Services, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
) -> Answer:
    """Save the contact form."""
    values = _values(view)
    customer = selected(values, "customer")
    if customer is None:
        return _refused({"customer": "Choose the customer."})
    try:
        async with services.transaction() as session:
            contact = await d.save_contact(
                session=session,
                workspace_id=services.workspace_id,
                customer_id=int(customer),
                email=text_of(values, "email"),
                name=text_of(values, "name"),
            )
    except d.DirectoryError as exc:
        return _refused({"email": str(exc)})
    return _done("Contact saved", f"Saved {safe(contact.email, 320)}.")


async def _save_contract(
    services: Services, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
) -> Answer:
    """Save the contract form (the affected periods are recomputed in the background)."""
    customer_id, terms, errors = read_contract(_values(view))
    policy = text_of(_values(view), "sla_policy") or None
    if policy and not errors:
        async with services.read() as session:
            if not await policy_exists(
                session=session, workspace_id=services.workspace_id, name=policy
            ):
                errors["sla_policy"] = f"No SLA policy is named {policy}: see /docket sla."
    if errors or terms is None or customer_id is None:
        return _refused(errors)
    try:
        async with services.transaction() as session:
            contract = await d.save_contract(
                session=session,
                workspace_id=services.workspace_id,
                customer_id=customer_id,
                terms=terms,
                contract_id=_metadata(view).get("contract_id"),
                at=services.now(),
            )
            await set_contract_policy(
                session=session,
                workspace_id=services.workspace_id,
                contract=contract,
                policy=policy,
                at=services.now(),
            )
    except d.DirectoryError as exc:
        return _refused({"name": str(exc)})
    return _done(
        "Contract saved",
        f"Saved *{safe(terms.name, 200)}*. Profitability is being recomputed.",
    )


async def _subject_ids(
    services: Services, subject: dict[str, Any], client: AsyncWebClient
) -> tuple[int | None, int | None, str]:
    """(member id, group id, label) of a chosen rate subject (creating a new group)."""
    if "user" in subject:
        member = await resolve_member(services, subject["user"], client=client)
        return member.id, None, member.name or member.email or "that member"
    if "group_id" in subject:
        return None, int(subject["group_id"]), "the group"
    if "new_group" in subject:
        async with services.transaction() as session:
            group = await d.ensure_group(
                session=session,
                workspace_id=services.workspace_id,
                name=d.clean_name(subject["new_group"], "group name"),
            )
        return None, group.id, f"group {group.name}"
    return None, None, "everyone without their own or a group rate"


def _hourly_from(
    values: dict[str, Any], errors: dict[str, str], block: str, missing: str
) -> tuple[int | None, date | None]:
    """A rate form's amount per hour (in `block`) and the date it applies from; what is missing
    or wrong goes into `errors`."""
    minor = amount_of(values, block, errors)
    if minor is None and block not in errors:
        errors[block] = missing
    since = date_of(values, "since")
    if since is None:
        errors["since"] = "Pick the date it applies from."
    return minor, since


async def _save_cost_rate(
    services: Services, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
) -> Answer:
    """Save a cost rate for a member, a group or the default."""
    values = _values(view)
    errors: dict[str, str] = {}
    subject = read_subject(values, errors, required=True)
    minor, since = _hourly_from(
        values, errors, "hourly_cost", "Write the cost per hour, e.g. 55.00."
    )
    if errors or subject is None or minor is None or since is None:
        return _refused(errors)
    try:
        member_id, group_id, label = await _subject_ids(services, subject, client)
        async with services.transaction() as session:
            await d.save_cost_rate(
                session=session,
                workspace_id=services.workspace_id,
                effective_from=since,
                minor_per_hour=minor,
                member_id=member_id,
                group_id=group_id,
                at=services.now(),
            )
    except d.DirectoryError as exc:
        return _refused({"member": str(exc)})
    return _done(
        "Cost rate saved",
        f"{to_decimal_string(minor)}/h for {safe(label, 200)} from {since.isoformat()}. "
        "Profitability from that date is being recomputed.",
    )


async def _save_charge_rate(
    services: Services, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
) -> Answer:
    """Save an hourly contract's charge rate from a date."""
    values = _values(view)
    errors: dict[str, str] = {}
    contract = selected(values, "contract")
    if contract is None:
        errors["contract"] = "Choose the contract."
    minor, since = _hourly_from(
        values, errors, "hourly_rate", "Write the charge per hour, e.g. 120.00."
    )
    if errors or contract is None or minor is None or since is None:
        return _refused(errors)
    try:
        async with services.transaction() as session:
            await d.save_charge_rate(
                session=session,
                workspace_id=services.workspace_id,
                contract_id=int(contract),
                effective_from=since,
                minor_per_hour=minor,
                at=services.now(),
            )
    except d.DirectoryError as exc:
        return _refused({"contract": str(exc)})
    return _done("Charge rate saved", f"{to_decimal_string(minor)}/h from {since.isoformat()}.")


def _decimal(values: dict[str, Any], block: str, errors: dict[str, str]) -> Decimal | None:
    raw = text_of(values, block).replace(",", ".")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        errors[block] = "Write a number, e.g. 21.5."
        return None
    return value


async def _save_calculator(
    services: Services, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
) -> Answer:
    """Work out the loaded hourly cost; with a member, group or default chosen, save it as a
    dated cost rate keeping the inputs for audit."""
    values = _values(view)
    errors: dict[str, str] = {}
    salary = amount_of(values, "salary", errors)
    if salary is None and "salary" not in errors:
        errors["salary"] = "Write the yearly salary."
    on_costs = _decimal(values, "on_costs", errors)
    benefits = amount_of(values, "benefits", errors) or 0
    overhead = amount_of(values, "overhead", errors) or 0
    days_text = text_of(values, "days")
    if not days_text.isdigit():
        errors["days"] = "Write a whole number of days, e.g. 220."
    hours = _decimal(values, "hours", errors)
    subject = read_subject(values, errors, required=False)
    if errors or salary is None or on_costs is None or hours is None:
        return _refused(errors)
    try:
        breakdown = loaded_hourly_cost(
            yearly_salary_minor=salary,
            on_costs_pct=on_costs,
            benefits_minor_per_year=benefits,
            overhead_minor_per_year=overhead,
            working_days=int(days_text),
            hours_per_day=hours,
        )
    except (ValueError, TypeError) as exc:
        return _refused({"salary": str(exc)})
    async with services.read() as session:
        ws = await get_workspace(session=session, workspace_id=services.workspace_id)
    currency = ws.currency
    result = (
        f":abacus: *{format_amount(breakdown.hourly_cost_minor, currency)} per hour* — "
        f"{format_amount(breakdown.total_yearly_minor, currency)} a year "
        f"(salary {format_amount(breakdown.yearly_salary_minor, currency)}, on-costs "
        f"{format_amount(breakdown.on_costs_minor, currency)}, benefits "
        f"{format_amount(breakdown.benefits_minor, currency)}, overheads "
        f"{format_amount(breakdown.overhead_minor, currency)}) over "
        f"{breakdown.yearly_hours} hours."
    )
    if subject is None:
        typed = {
            k: text_of(values, k) for k in ("salary", "on_costs", "benefits", "overhead", "days")
        }
        typed["hours"] = text_of(values, "hours")
        view = build_calculator_modal(
            await workspace_groups(services),
            await today_in_workspace(services),
            values=typed,
            result=result,
        )
        return Answer(view=view, late=result)
    since = date_of(values, "since") or await today_in_workspace(services)
    try:
        member_id, group_id, label = await _subject_ids(services, subject, client)
        async with services.transaction() as session:
            await d.save_cost_rate(
                session=session,
                workspace_id=services.workspace_id,
                effective_from=since,
                minor_per_hour=breakdown.hourly_cost_minor,
                member_id=member_id,
                group_id=group_id,
                inputs=breakdown.as_json(),
                at=services.now(),
            )
    except d.DirectoryError as exc:
        return _refused({"member": str(exc)})
    return _done(
        "Cost rate saved",
        f"{result}\nSaved for {safe(label, 200)} from {since.isoformat()}.",
    )


handle_customer_submission = _answering(_save_customer, refuse_at="name")
handle_contact_submission = _answering(_save_contact, refuse_at="customer")
handle_contract_submission = _answering(_save_contract, refuse_at="name")
handle_cost_rate_submission = _answering(_save_cost_rate, refuse_at="hourly_cost")
handle_charge_rate_submission = _answering(_save_charge_rate, refuse_at="hourly_rate")
handle_calculator_submission = _answering(_save_calculator, refuse_at="salary")


def register(app: AsyncApp) -> None:
    """Wire the directory forms' submissions."""
    app.view(View.CUSTOMER.value)(handle_customer_submission)
    app.view(View.CONTACT.value)(handle_contact_submission)
    app.view(View.CONTRACT.value)(handle_contract_submission)
    app.view(View.COST_RATE.value)(handle_cost_rate_submission)
    app.view(View.CHARGE_RATE.value)(handle_charge_rate_submission)
    app.view(View.CALCULATOR.value)(handle_calculator_submission)
