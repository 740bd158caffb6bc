"""What a person sees while a stored request waits for its turn, and when it failed for good."""

from __future__ import annotations

from typing import Any

from handlers.blocks.common import plain, safe, section


def build_received_message(text: str) -> dict[str, Any]:
    """The acknowledgement of a slash command: an ephemeral the result will replace."""
    return {"response_type": "ephemeral", "text": text}


def build_received_view(title: str, text: str) -> dict[str, Any]:
    """The modal shown after a valid submission until its work is done (then replaced)."""
    return {
        "response_action": "update",
        "view": {
            "type": "modal",
            "title": plain(title, 24),
            "close": plain("Close"),
            "blocks": [section(f":hourglass_flowing_sand: {safe(text, 500)}")],
        },
    }


def build_clear_view() -> dict[str, Any]:
    """Close the modal (the result comes as a message)."""
    return {"response_action": "clear"}


def failure_text(what: str) -> str:
    """Told once to the person whose stored request failed for good."""
    return (
        f":warning: Docket could not finish {safe(what, 200)}: it failed several times and was "
        "not done. Please check whether it happened (e.g. `/ticket list`) and try again; if it "
        "fails again, ask an admin to look at Docket's log."
    )


def form_not_saved_text(errors: dict[str, str]) -> str:
    """Sent by DM when a stored form submission turns out invalid while being processed."""
    return "Your form was not saved: " + safe(" ".join(errors.values()), 1500)
