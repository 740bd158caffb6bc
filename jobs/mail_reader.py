"""Reading a large stored mail in a short-lived child process.

Python's email parser needs about eight times a message's size while it reads it (the text,
its lines, the joined payload, the decoded body); for a 16 MB mail that is more than the SMTP
receiver holds for four sessions, and the allocator keeps much of it after the mail is done.
A mail over `CHILD_BYTES` is therefore read by a child process with the same function
(`models.inbound_read.read_mail`), handed over a few stored pieces at a time: Docket's process
never holds the whole message, and the child's memory goes back to the system when it exits.
A read that takes longer than `TIME_LIMIT` seconds is killed and fails like any other
processing error (retried, then the mail is quarantined). Smaller mails are read in a thread
(jobs/mail.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pickle
import sys
from collections.abc import AsyncIterable, Awaitable
from typing import TypeVar

from models.inbound_read import ReadMail, read_mail

CHILD_BYTES = 1024 * 1024
TIME_LIMIT = 120.0
_ERROR_MAX = 500
# `-P`: nothing from the working directory is imported in the child.
_T = TypeVar("_T")
_CHILD = (sys.executable, "-P", "-c", "from jobs.mail_reader import main; main()")


def _without_attachment_bytes(read: ReadMail) -> ReadMail:
    """Processing keeps only attachment metadata: do not send the bytes back."""
    if read.parsed is None:
        return read
    attachments = tuple(dataclasses.replace(a, content=None) for a in read.parsed.attachments)
    return dataclasses.replace(
        read, parsed=dataclasses.replace(read.parsed, attachments=attachments)
    )


def main() -> None:
    """The child: a JSON line with the envelope sender, then the raw mail; a pickled ReadMail
    on stdout."""
    envelope_from = json.loads(sys.stdin.buffer.readline())
    raw = sys.stdin.buffer.read()
    read = _without_attachment_bytes(read_mail(raw, envelope_from=envelope_from))
    del raw
    sys.stdout.buffer.write(pickle.dumps(read))


class ChildRead:
    """One large mail read by a child process: `start` hands the mail over piece by piece (the
    caller's database session may close afterwards), `result` waits for the child's answer."""

    def __init__(self, proc: asyncio.subprocess.Process, deadline: float) -> None:
        self._proc = proc
        self._deadline = deadline

    @classmethod
    async def start(cls, pieces: AsyncIterable[bytes], *, envelope_from: str | None) -> ChildRead:
        """Start the child and write the mail to it; the child reads all of it before parsing."""
        loop = asyncio.get_running_loop()
        proc = await asyncio.create_subprocess_exec(
            *_CHILD,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        reading = cls(proc, loop.time() + TIME_LIMIT)
        stdin = proc.stdin
        assert stdin is not None

        async def feed() -> None:
            stdin.write(json.dumps(envelope_from).encode() + b"\n")
            async for piece in pieces:
                stdin.write(piece)
                await stdin.drain()
            stdin.close()

        try:
            await reading._within(feed())
        except BaseException:
            await reading._stop()
            raise
        return reading

    async def result(self) -> ReadMail:
        """The child's reading of the mail; raises when it failed or ran out of time."""
        proc = self._proc
        assert proc.stdout is not None and proc.stderr is not None
        try:
            out, err = await self._within(asyncio.gather(proc.stdout.read(), proc.stderr.read()))
            code = await self._within(proc.wait())
        finally:
            await self._stop()
        if code != 0:
            detail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"reading the mail failed (exit {code}): {detail[0][:_ERROR_MAX]}")
        read = pickle.loads(out)
        assert isinstance(read, ReadMail)
        return read

    async def _within(self, step: Awaitable[_T]) -> _T:
        remaining = self._deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(step, max(0.0, remaining))
        except TimeoutError:
            raise TimeoutError(f"reading the mail took more than {TIME_LIMIT:.0f} s") from None

    async def _stop(self) -> None:
        if self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
