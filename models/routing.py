"""Where a ticket's messages go: pure rules over plain values (no I/O).

- The card: the customer's own channel when they have one, else the team's triage channel,
  else the DM of the person who created the ticket (so a new ticket is never silent).
- A post "in the card's thread": the card's channel and ts once it is posted; before that (or
  when it never could be), the triage channel, unthreaded.
"""

from __future__ import annotations

from dataclasses import dataclass


def card_channel(
    *, customer_channel: str | None, triage_channel: str | None, creator_slack_id: str | None
) -> str | None:
    """The channel a new ticket's card is posted in; None when there is nowhere to post it."""
    return customer_channel or triage_channel or creator_slack_id


@dataclass(frozen=True)
class ThreadTarget:
    """Where a message about a ticket is posted: a channel, threaded under `thread_ts` if set."""

    channel: str
    thread_ts: str | None


def card_thread(
    *, card_channel: str | None, card_ts: str | None, triage_channel: str | None
) -> ThreadTarget | None:
    """The card's thread, or the triage channel (no thread) when the card was never posted;
    None when there is neither."""
    if card_channel and card_ts:
        return ThreadTarget(card_channel, card_ts)
    if triage_channel:
        return ThreadTarget(triage_channel, None)
    return None
