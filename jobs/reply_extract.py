"""The mail-parser-reply library, run in a child process under a time limit.

Docket's own rules (models.reply_text) find the customer's new text; this runner keeps the
library at hand for comparison (`bench/mail_extract.py`) and for anyone who wants its second
opinion. The library backtracks catastrophically on crafted 5-30 KB bodies, so it runs in one
lazily started child process that is killed and replaced when a call runs out of time; a call
never takes longer than its time limit, and a failure answers None.

Whoever constructs a `ReplyLibrary` owns it: call `shutdown()` (or use it as a context manager)
when done. Nothing is registered at exit and nothing starts on import.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from types import TracebackType

from models.reply_text import REPLY_MARKER

LIBRARY_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "it", "nl")

# The child runs this with `python -P -c`: no `__main__` re-import (as spawn would do,
# re-running an unguarded script), no import of Docket, nothing from the cwd. Stray output
# from the library goes to stderr so it cannot corrupt the pipe.
_WORKER_CODE = """
import os
from multiprocessing.connection import Connection
out = os.dup(1)
os.dup2(2, 1)
rx, tx = Connection(0, writable=False), Connection(out, readable=False)
from mailparser_reply import EmailReplyParser
parsers = {}
tx.send(("ready",))
while True:
    try:
        seq, text, languages = rx.recv()
    except (EOFError, OSError):
        break
    try:
        parser = parsers.get(languages)
        if parser is None:
            parser = parsers[languages] = EmailReplyParser(languages=list(languages))
        replies = parser.read(text).replies
        tx.send((seq, True, replies[0].body if replies else ""))
    except Exception as exc:
        tx.send((seq, False, type(exc).__name__))
"""


class ReplyLibrary:
    """One child process running mail-parser-reply, killed and replaced on timeout.

    A thread cannot be stopped mid-regex and a process pool per call costs too much: one
    child serves calls one at a time, and a replacement starts as soon as one is killed so
    the next call finds it warm.
    """

    max_tasks = 500  # recycle now and then so a slow leak in the library cannot grow forever

    def __init__(self, languages: Sequence[str] = LIBRARY_LANGUAGES) -> None:
        self.languages = tuple(languages)
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._rx: Connection | None = None
        self._tx: Connection | None = None
        self._ready = False
        self._seq = 0
        self._tasks = 0

    def __enter__(self) -> ReplyLibrary:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def _start(self) -> None:
        process = subprocess.Popen(
            [sys.executable, "-P", "-c", _WORKER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert process.stdin is not None and process.stdout is not None
        self._tx = Connection(os.dup(process.stdin.fileno()), readable=False)
        self._rx = Connection(os.dup(process.stdout.fileno()), writable=False)
        process.stdin.close()
        process.stdout.close()
        self._process, self._ready, self._tasks = process, False, 0

    def _stop(self) -> None:
        process, rx, tx = self._process, self._rx, self._tx
        self._process, self._rx, self._tx, self._ready = None, None, None, False
        for conn in (rx, tx):
            if conn is not None:
                conn.close()
        if process is not None:
            process.kill()
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass

    def _await_ready(self, deadline: float) -> bool:
        if self._process is None or self._process.poll() is not None:
            self._stop()
            self._start()
        if self._ready:
            return True
        assert self._rx is not None
        if not self._rx.poll(max(0.0, deadline - time.monotonic())):
            return False  # still starting: leave it to finish for the next call
        if self._rx.recv() != ("ready",):
            raise EOFError("reply parser did not start")
        self._ready = True
        return True

    def start(self, wait: float = 0.0) -> bool:
        """Start the child ahead of the first call; True once it is ready."""
        with self._lock:
            try:
                return self._await_ready(time.monotonic() + wait)
            except Exception:
                self._stop()
                return False

    def parse(self, text: str, *, deadline: float) -> str | None:
        """The library's reply text, or None when it failed or ran out of time."""
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return None
        try:
            if not self._await_ready(deadline):
                return None
            assert self._rx is not None and self._tx is not None
            self._seq += 1
            self._tx.send((self._seq, text, self.languages))
            if not self._rx.poll(max(0.0, deadline - time.monotonic())):
                # Stuck in a regex: kill it and have the next one warming up already.
                self._stop()
                self._start()
                return None
            seq, ok, value = self._rx.recv()
            self._tasks += 1
            if self._tasks >= self.max_tasks:
                self._stop()
                self._start()
            if seq != self._seq or not ok or not isinstance(value, str):
                return None
            return value
        except Exception:
            self._stop()
            return None
        finally:
            self._lock.release()

    def reply(self, text: str, *, time_limit: float = 1.0, max_chars: int = 20_000) -> str:
        """The new text as the library alone finds it (Docket's marker cut first).

        Longer texts than `max_chars`, a failure or a timeout give the text above the marker.
        """
        started = time.monotonic()
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
        above = _above_marker(text)
        if not above.strip():
            return ""
        if len(above) > max_chars or time_limit <= 0:
            return above.strip("\n").rstrip()
        body = self.parse(above, deadline=started + time_limit)
        if body is None or not body.strip():
            return above.strip("\n").rstrip()
        return _restore_indentation(above, body).strip("\n").rstrip()

    def shutdown(self) -> None:
        """Stop the child (a later call starts a new one)."""
        with self._lock:
            self._stop()


def _above_marker(text: str) -> str:
    core = REPLY_MARKER.strip("#- \t").lower()
    lines = text.split("\n")
    for index, line in enumerate(lines):
        # html2text escapes '#' and '-'; the marker's words are what count.
        if core in line.lower().replace("\\", ""):
            return "\n".join(lines[:index])
    return text


def _restore_indentation(original: str, body: str) -> str:
    """The library strips every line; give the lines back as the customer typed them."""
    body_lines = body.split("\n")
    original_lines = original.split("\n")
    if len(body_lines) > len(original_lines):
        return body
    for got, mine in zip(body_lines, original_lines, strict=False):
        if got.strip() != mine.strip():
            return body
    return "\n".join(original_lines[: len(body_lines)])
