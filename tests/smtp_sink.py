"""A local SMTP sink for tests: the mail relay Docket delivers to, on a loopback port.

`async with SmtpSink() as sink:` listens on 127.0.0.1 (a port the OS picks) inside the running
event loop; give Docket `sink.relay_url` as DOCKET_SMTP_RELAY. Every accepted message is kept in
`sink.messages` (envelope and raw bytes, parsed on demand); `wait_for(pred)` waits for one.
`fail_next(code)` answers the next DATA with an SMTP error to exercise the outbox's retries.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class SunkMessage:
    """One message the sink accepted."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def header(self, name: str) -> str | None:
        value = self.message[name]
        return None if value is None else str(value)

    @property
    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        return "" if body is None else str(body.get_content())


@dataclass
class _Handler:
    sink: SmtpSink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink.failures:
            return self.sink.failures.pop(0)
        raw = envelope.original_content or b""
        self.sink.messages.append(
            SunkMessage(str(envelope.mail_from or ""), list(envelope.rcpt_tos), bytes(raw))
        )
        async with self.sink.cond:
            self.sink.cond.notify_all()
        return "250 2.0.0 OK: queued"


@dataclass
class SmtpSink:
    """An SMTP server on loopback that records what it is sent."""

    host: str = "127.0.0.1"
    messages: list[SunkMessage] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cond: asyncio.Condition = field(default_factory=asyncio.Condition)
    port: int = 0
    _server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        self._server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.test", enable_SMTPUTF8=True, loop=loop),
            self.host,
            0,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SmtpSink:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    @property
    def relay_url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def fail_next(self, reply: str = "451 4.3.0 Try again later", count: int = 1) -> None:
        """Answer the next `count` messages with `reply` instead of accepting them."""
        self.failures.extend([reply] * count)

    async def wait_for(
        self, predicate: Callable[[SunkMessage], bool] = lambda m: True, timeout: float = 10.0
    ) -> SunkMessage:
        """The first accepted message matching `predicate`, waiting up to `timeout` seconds."""

        def match() -> SunkMessage | None:
            return next((m for m in self.messages if predicate(m)), None)

        async with self.cond:
            try:
                await asyncio.wait_for(self.cond.wait_for(lambda: match() is not None), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"no matching message within {timeout}s ({len(self.messages)} received)"
                ) from None
        found = match()
        assert found is not None
        return found


def build_mail(
    *,
    sender: str = "alice@customer.example",
    to: str = "support@example.com",
    subject: str = "Printer on fire",
    body: str = "The printer on floor 2 is on fire.",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """A customer's mail as the bytes an SMTP client sends (attachments: name, type, data)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Mon, 02 Jun 2025 09:00:00 +0000"
    if message_id is not None:
        message["Message-ID"] = message_id
    if in_reply_to is not None:
        message["In-Reply-To"] = in_reply_to
    if references is not None:
        message["References"] = references
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes(policy=email.policy.SMTP)
