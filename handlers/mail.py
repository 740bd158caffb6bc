"""Inbound mail: the SMTP receiver and the worker that turns stored mail into ticket changes.

The receiver (aiosmtpd, inside Docket's event loop) accepts mail for DOCKET_SUPPORT_ADDRESS and
its plus-addresses only (others: 550 5.1.1), advertises SIZE and refuses bigger mail (552), and
stores the raw message before it answers 250: a mail it accepted is never lost. When storing
fails the sender is told to try again later (451), so the mail stays with them.

The worker reads stored mail off the event loop (parsing is CPU work), applies it in one
transaction (models.inbound.process_mail), and on failure keeps the error on the row, retries
with back-off, and quarantines the mail after a few attempts (`/docket mail` lists them).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from bot.services import Services
from handlers.conversation import SlackHooks
from jobs.loop import run_worker
from models.inbound import (
    QUARANTINED,
    InboundConfig,
    MailOutcome,
    claim_received,
    next_retry_at,
    process_mail,
    read_mail,
    record_failure,
    store_received,
)
from models.mail import shutdown_reply_worker, start_reply_worker
from models.tables import EmailMessage
from models.threading import is_support_recipient

if TYPE_CHECKING:
    from bot.runtime import Runtime

logger = logging.getLogger(__name__)

MAX_RECIPIENTS = 50
BATCH = 10
SESSION_TIMEOUT_SECONDS = 120
# RFC 5321 allows 998 octets a line, but some real senders write longer lines; refusing them
# would bounce real customer mail. Lines longer than this are refused with 500.
LINE_LENGTH_LIMIT = 64 * 1024
TOO_MANY_SESSIONS = b"421 4.3.2 Too many connections; try again later\r\n"


def inbound_config(services: Services) -> InboundConfig:
    settings = services.settings
    return InboundConfig(
        support_address=settings.docket_support_address,
        secret=settings.mail_secret(),
        reopen_days=settings.docket_reopen_days,
        hold_unknown=settings.docket_hold_unknown_senders,
        trusted_authserv_id=settings.docket_mail_trusted_authserv_id or None,
    )


class MailReceiver:
    """aiosmtpd handler: check recipients, store the message, answer."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not is_support_recipient(address, self.services.settings.docket_support_address):
            return "550 5.1.1 Recipient address rejected: no such mailbox here"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content if isinstance(envelope.content, bytes) else b""
        try:
            async with self.services.transaction() as db:
                email_id = await store_received(
                    session=db,
                    workspace_id=self.services.workspace_id,
                    raw=bytes(raw),
                    envelope_from=str(envelope.mail_from or ""),
                    envelope_to=list(envelope.rcpt_tos),
                    at=self.services.now(),
                )
        except Exception:
            logger.exception("could not store an inbound mail; the sender will retry")
            return "451 4.3.0 Could not store the message; please try again later"
        logger.info("stored inbound mail %s (%d bytes)", email_id, len(raw))
        return f"250 2.0.0 OK: queued as {email_id}"


class _SMTP(SMTP):
    line_length_limit = LINE_LENGTH_LIMIT


def _tls_context(services: Services) -> ssl.SSLContext | None:
    settings = services.settings
    if not settings.docket_smtp_tls_cert or not settings.docket_smtp_tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.docket_smtp_tls_cert, settings.docket_smtp_tls_key)
    return context


async def process_one(services: Services, email_id: int) -> MailOutcome | None:
    """Process one claimed mail; failures are recorded on the row, never raised."""
    config = inbound_config(services)
    try:
        async with services.read() as session:
            row = await session.get(EmailMessage, email_id)
            if row is None:
                return None
            raw, envelope_from = row.raw, row.envelope_from
        read = await asyncio.to_thread(read_mail, raw, envelope_from=envelope_from)
        async with services.transaction() as session:
            outcome = await process_mail(
                session=session,
                workspace_id=services.workspace_id,
                email_id=email_id,
                read=read,
                config=config,
                hooks=SlackHooks(services),
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


async def run_batch(services: Services, *, batch: int = BATCH) -> float | None:
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
        await process_one(services, email_id)
    if ids:
        # Look again at once: mail stored while this batch ran may have woken nobody.
        return 0
    if due is not None:
        return max(0.0, (due - services.now()).total_seconds())
    return None


async def start(runtime: Runtime) -> Callable[[], Awaitable[None]] | None:
    """Start the mail worker, and the SMTP receiver unless DOCKET_SMTP_PORT is 0."""
    services = runtime.services
    settings = services.settings
    runtime.spawn(
        "mail",
        run_worker("mail", lambda: run_batch(services), services.wake.mail, runtime.stop_event),
    )
    if settings.docket_smtp_port == 0:
        return None
    # aiosmtpd logs every command, addresses included, at INFO: keep its log to problems.
    smtp_log = logging.getLogger("mail.log")
    if smtp_log.level == logging.NOTSET:
        smtp_log.setLevel(logging.WARNING)
    # The reply parser runs in its own process; start it now so the first mail is not slow.
    await asyncio.to_thread(start_reply_worker, wait=0.0)
    loop = asyncio.get_running_loop()
    handler = MailReceiver(services)
    tls = _tls_context(services)
    hostname = settings.docket_support_address.rpartition("@")[2] or "docket"
    connections: set[asyncio.BaseTransport] = set()

    limit = settings.docket_smtp_max_sessions

    class _Tracked(_SMTP):
        refused = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            for known in list(connections):
                if known.is_closing():
                    connections.discard(known)
            if len(connections) >= limit:
                # Each session may hold a whole message in memory: at most `limit` of them.
                self.refused = True
                logger.warning("refused an SMTP connection: %d sessions open", len(connections))
                if isinstance(transport, asyncio.WriteTransport):
                    transport.write(TOO_MANY_SESSIONS)
                transport.close()
                return
            connections.add(transport)
            super().connection_made(transport)

        def connection_lost(self, error: Exception | None) -> None:
            if self.refused:
                return
            for transport in list(connections):
                if transport.is_closing():
                    connections.discard(transport)
            super().connection_lost(error)

    def factory() -> SMTP:
        options: dict[str, Any] = {
            "data_size_limit": settings.docket_smtp_max_bytes,
            "enable_SMTPUTF8": True,
            "decode_data": False,
            "hostname": hostname,
            "ident": "Docket ESMTP",
            "timeout": SESSION_TIMEOUT_SECONDS,
            "loop": loop,
        }
        if tls is not None:
            options["tls_context"] = tls
        return _Tracked(handler, **options)

    server = await loop.create_server(factory, settings.docket_smtp_host, settings.docket_smtp_port)
    runtime.smtp_port = int(server.sockets[0].getsockname()[1])
    logger.info(
        "receiving mail for %s on %s:%s%s",
        settings.docket_support_address,
        settings.docket_smtp_host,
        runtime.smtp_port,
        " (STARTTLS)" if tls else "",
    )

    async def stop() -> None:
        server.close()
        for transport in list(connections):
            transport.close()
        try:
            await asyncio.wait_for(server.wait_closed(), timeout=5)
        except TimeoutError:
            logger.warning("SMTP connections did not close in time")
        await asyncio.to_thread(shutdown_reply_worker)

    return stop
