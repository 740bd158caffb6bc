"""Every action id, callback id, command and event type, in one place.

Builders and register() functions both use these, so an id is never spelled twice.
"""

from __future__ import annotations

from enum import StrEnum


class Command(StrEnum):
    TICKET = "/ticket"
    TIME = "/time"
    PROFIT = "/profit"
    DOCKET = "/docket"


class Shortcut(StrEnum):
    CREATE_TICKET_FROM_MESSAGE = "create_ticket_from_message"


class Action(StrEnum):
    """Block action ids (buttons, selects)."""

    ASSIGN_TO_ME = "ticket_assign_me"
    STATUS = "ticket_status"
    EDIT = "ticket_edit"
    LOG_TIME = "ticket_log_time"
    REPLY = "ticket_reply"
    CLOSE = "ticket_close"
    NEW_TICKET = "home_new_ticket"
    HOME_LOG_TIME = "home_log_time"
    LIST_PAGE = "ticket_list_page"
    OUTBOX_RETRY = "outbox_retry"
    TAKE_TICKET = "ticket_take"
    TICKET_CUSTOMER = "ticket_customer"  # customer select in the ticket form (options + dispatch)
    TIME_TARGET = "time_target"  # customer or contract select in the log-time form (options)
    DIRECTORY_CUSTOMER = "directory_customer"  # customer select in /docket forms (options)
    DIRECTORY_CONTRACT = "directory_contract"  # contract select in /docket forms (options)
    SHOW_FULL_MESSAGE = "reply_show_full"  # the whole customer mail in a modal (reply DM)


class View(StrEnum):
    """Modal callback ids."""

    TICKET = "ticket_modal"
    LOG_TIME = "log_time_modal"
    REPLY = "reply_modal"
    MEMBER = "member_modal"
    SETTINGS = "settings_modal"
    CUSTOMER = "customer_modal"
    CONTRACT = "contract_modal"
    COST_RATE = "cost_rate_modal"
    CONTACT = "contact_modal"
    CHARGE_RATE = "charge_rate_modal"
    CALCULATOR = "calculator_modal"
    FULL_MESSAGE = "full_message_modal"


# Event types the manifest subscribes to; each has a listener (Bolt answers 404 otherwise).
EVENT_TYPES: tuple[str, ...] = (
    "app_home_opened",
    "message",
    "app_mention",
    "member_joined_channel",
    "reaction_added",
)
