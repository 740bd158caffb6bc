"""The mail worker: turns stored inbound mail into ticket changes.

The SMTP receiver (handlers/mail.py) stores each message before it answers 250. This worker
takes one mail at a time, reads it off the event loop (parsing is CPU work; a large mail in a
child process, jobs/mail_reader.py), applies it in one transaction
(models.inbound_apply.process_mail), and on failure keeps the error on the row, retries with
back-off, and quarantines the mail after a few attempts (`/docket mail` lists them).

What a mail causes in Slack (the card, the assignee's DM, thread copies) is queued through the
`InboundHooks` that bot/ hands in (handlers.ticket_notifications.SlackHooks).
"""

from __future__ import annotations

import asyncio
import logging

from bot.services import Services
from jobs.loop import run_worker
from jobs.mail_reader import CHILD_BYTES, ChildRead
from models.inbound_apply import InboundConfig, InboundHooks, MailOutcome, process_mail
from models.inbound_read import read_mail
from models.inbound_store import (
    QUARANTINED,
    claim_received,
    next_retry_at,
    raw_pieces,
    record_failure,
)
from models.tables import EmailMessage

logger = logging.getLogger(__name__)

BATCH = 10


def inbound_config(services: Services) -> InboundConfig:
    """The mail rules' settings, from Docket's settings."""
    settings = services.settings
    return InboundConfig(
        support_address=settings.docket_support_address,
        secret=settings.mail_secret(),
        reopen_days=settings.docket_reopen_days,
        hold_unknown=settings.docket_hold_unknown_senders,
        trusted_authserv_id=settings.docket_mail_trusted_authserv_id or None,
    )


async def process_one(
    services: Services, email_id: int, *, hooks: InboundHooks
) -> MailOutcome | None:
    """Process one claimed mail; failures are recorded on the row, never raised."""
    config = inbound_config(services)
    try:
        child: ChildRead | None = None
        async with services.read() as session:
            row = await session.get(EmailMessage, email_id)
            if row is None:
                return None
            envelope_from = row.envelope_from
            pieces = raw_pieces(
                session=session, workspace_id=services.workspace_id, email_id=email_id
            )
            if row.size > CHILD_BYTES:
                child = await ChildRead.start(pieces, envelope_from=envelope_from)
            else:
                raw = b"".join([piece async for piece in pieces])
        if child is not None:
            read = await child.result()
        else:
            read = await asyncio.to_thread(read_mail, raw, envelope_from=envelope_from)
        async with services.transaction() as session:
            outcome = await process_mail(
                session=session,
                workspace_id=services.workspace_id,
                email_id=email_id,
                read=read,
                config=config,
                hooks=hooks,
                at=services.now(),
            )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        logger.exception("processing inbound mail %s failed", email_id)
        error = f"{type(exc).__name__}: {exc}"
        async with services.transaction() as session:
            status = await record_failure(
                session=session, email_id=email_id, error=error, at=services.now()
            )
        if status == QUARANTINED:
            logger.error("inbound mail %s quarantined after repeated failures", email_id)
        return None
    log = logger.warning if outcome.status == QUARANTINED else logger.info
    # The outcome's reasons name the sender: they stay on the row (`/docket mail`), not in logs.
    log("inbound mail %s: %s (%s)", email_id, outcome.status, outcome.decision or "no decision")
    return outcome


async def run_batch(services: Services, *, hooks: InboundHooks, batch: int = BATCH) -> float | None:
    """Process one batch of stored mail; returns when to look again (0: at once)."""
    now = services.now()
    async with services.transaction() as session:
        ids = await claim_received(
            session=session, workspace_id=services.workspace_id, now=now, limit=batch
        )
        due = (
            None
            if ids
            else await next_retry_at(session=session, workspace_id=services.workspace_id)
        )
    for email_id in ids:
        await process_one(services, email_id, hooks=hooks)
    if ids:
        # Look again at once: mail stored while this batch ran may have woken nobody.
        return 0
    if due is not None:
        return max(0.0, (due - services.now()).total_seconds())
    return None


class MailWorker:
    """Processes stored mail until stopped, woken by `services.wake.mail`."""

    def __init__(self, services: Services, *, hooks: InboundHooks, batch: int = BATCH) -> None:
        self.services = services
        self.hooks = hooks
        self.batch = batch

    async def step(self) -> float | None:
        return await run_batch(self.services, hooks=self.hooks, batch=self.batch)

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until `stop` is set."""
        await run_worker("mail", self.step, self.services.wake.mail, stop)
