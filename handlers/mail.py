"""Inbound mail: the SMTP receiver (jobs/mail.py turns stored mail into ticket changes).

The receiver (aiosmtpd, inside Docket's event loop) accepts mail for DOCKET_SUPPORT_ADDRESS and
its plus-addresses only (others: 550 5.1.1), advertises SIZE and refuses bigger mail (552), and
stores the raw message before it answers 250: a mail it accepted is never lost. When storing
fails the sender is told to try again later (451), so the mail stays with them.

At most DOCKET_SMTP_MAX_SESSIONS sessions run at once (421 beyond them; senders retry). A
session writes the message to a spool file as it arrives and the store reads it back in
pieces, so the receiver holds no whole-message copy: its memory is bounded by the session
count, not by the size of the mails (RELIABILITY.md, point 6 of the hardening).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
from typing import IO, Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from bot.services import Services
from models.inbound_store import store_received
from models.threading import is_support_recipient

logger = logging.getLogger(__name__)

MAX_RECIPIENTS = 50
SESSION_TIMEOUT_SECONDS = 120
# RFC 5321 allows 998 octets a line, but some real senders write longer lines; refusing them
# would bounce real customer mail. Lines longer than this are refused with 500.
LINE_LENGTH_LIMIT = 64 * 1024
TOO_MANY_SESSIONS = b"421 4.3.2 Too many connections; try again later\r\n"
TOO_LONG_LINE = "500 Line too long (see RFC5321 4.5.3.1.6)"
TOO_MUCH_DATA = "552 Error: Too much mail data"
# A session keeps this much of a message in memory; beyond it the spool is a temporary file.
SPOOL_IN_MEMORY = 256 * 1024


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

    async def store(self, envelope: Envelope, spool: IO[bytes]) -> str:
        """Store the message spooled in `spool` (at its start); the reply to send."""
        try:
            async with self.services.transaction() as db:
                email_id = await store_received(
                    session=db,
                    workspace_id=self.services.workspace_id,
                    raw=spool,
                    envelope_from=str(envelope.mail_from or ""),
                    envelope_to=list(envelope.rcpt_tos),
                    at=self.services.now(),
                )
        except Exception:
            logger.exception("could not store an inbound mail; the sender will retry")
            return "451 4.3.0 Could not store the message; please try again later"
        logger.info("stored inbound mail %s (%d bytes)", email_id, spool.tell())
        return f"250 2.0.0 OK: queued as {email_id}"


class _SMTP(SMTP):
    """aiosmtpd's session with DATA written to a spool file as it arrives.

    aiosmtpd's own DATA keeps every line in a list, joins them and keeps two copies of the
    result; this one writes each line (dot-unstuffed) to a temporary file that stays in
    memory up to `SPOOL_IN_MEMORY` bytes, and the store reads it back in pieces. A session
    holds at most `SPOOL_IN_MEMORY` plus one line of a message, whatever its size. Its rules are
    aiosmtpd's: a line longer than the limit gets 500 and a message over
    DOCKET_SMTP_MAX_BYTES 552, each after the rest of the data is read; 250 only once the
    message is committed, 451 when storing fails.
    """

    line_length_limit = LINE_LENGTH_LIMIT

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        receiver = self.event_handler
        assert isinstance(receiver, MailReceiver) and not self._decode_data
        with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, prefix="docket-mail-") as spool:
            reply = await self._spool_data(spool)
            if reply is None:
                return  # the connection is gone: nothing to store, nobody to answer
            if not reply:
                spool.seek(0)
                reply = await receiver.store(self.envelope, spool)
        self._set_post_data_state()
        await self.push(reply)

    async def _spool_data(self, spool: IO[bytes]) -> str | None:
        """Read DATA up to the lone dot into `spool`: "" when it all arrived, the refusal when
        a line was too long or the data too much (the rest is read and dropped first), None
        when the connection closed before the end."""
        limit = self.data_size_limit
        received = 0
        refusal = ""
        mid_line = False  # the last read ended inside a line over the length limit
        while self.transport is not None:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.CancelledError:
                # The connection was lost during DATA.
                self._writer.close()
                raise
            except asyncio.LimitOverrunError as exc:
                refusal = refusal or TOO_LONG_LINE
                line = await self._reader.read(exc.consumed)
            if not mid_line and line == b".\r\n":
                return refusal
            mid_line = not line.endswith(b"\r\n")
            received += len(line)
            if not refusal and limit and received > limit:
                refusal = TOO_MUCH_DATA
            elif not refusal and len(line) > self.line_length_limit:
                refusal = TOO_LONG_LINE
            elif not refusal:
                # RFC 5321 4.5.2: a line starting with a dot had one added by the sender.
                spool.write(line[1:] if line.startswith(b".") else line)
        return None


def _tls_context(services: Services) -> ssl.SSLContext | None:
    settings = services.settings
    if not settings.docket_smtp_tls_cert or not settings.docket_smtp_tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.docket_smtp_tls_cert, settings.docket_smtp_tls_key)
    return context


class SmtpServer:
    """The SMTP receiver inside Docket's event loop: `start()` listens, `stop()` closes."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.BaseTransport] = set()

    async def start(self) -> int:
        """Listen on DOCKET_SMTP_HOST:DOCKET_SMTP_PORT; returns the bound port."""
        services = self.services
        settings = services.settings
        # aiosmtpd logs every command, addresses included, at INFO: keep its log to problems.
        smtp_log = logging.getLogger("mail.log")
        if smtp_log.level == logging.NOTSET:
            smtp_log.setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        handler = MailReceiver(services)
        tls = _tls_context(services)
        hostname = settings.docket_support_address.rpartition("@")[2] or "docket"
        connections = self._connections
        limit = settings.docket_smtp_max_sessions

        class _Tracked(_SMTP):
            refused = False

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                for known in list(connections):
                    if known.is_closing():
                        connections.discard(known)
                if len(connections) >= limit:
                    # Each session holds a spool and a disk file: at most `limit` of them.
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

        server = await loop.create_server(
            factory, settings.docket_smtp_host, settings.docket_smtp_port
        )
        self._server = server
        self.port = int(server.sockets[0].getsockname()[1])
        logger.info(
            "receiving mail for %s on %s:%s%s",
            settings.docket_support_address,
            settings.docket_smtp_host,
            self.port,
            " (STARTTLS)" if tls else "",
        )
        return self.port

    async def stop(self) -> None:
        """Close the listener and open connections, then the reply parser's process."""
        server = self._server
        if server is None:
            return
        server.close()
        for transport in list(self._connections):
            transport.close()
        try:
            await asyncio.wait_for(server.wait_closed(), timeout=5)
        except TimeoutError:
            logger.warning("SMTP connections did not close in time")
