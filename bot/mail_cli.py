"""`docket mail extract [--json] FILE...`: the text an assignee's DM would quote, from the shell.

Each FILE is one RFC 822 message (an .eml as saved by a mail client, or a stored raw mail).
For operators checking why a DM showed what it showed, and for test suites of their own.
Nothing is stored and no database is needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from bot.config import Settings
from models.inbound_read import read_mail

MAX_FILE_BYTES = 50 * 1024 * 1024


def extract_files(paths: list[str], *, as_json: bool, out: TextIO, err: TextIO) -> int:
    """Print the extracted reply of every file; 1 when any file could not be read."""
    failed = 0
    for name in paths:
        try:
            path = Path(name)
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
            raw = path.read_bytes()
            if not raw.strip():
                raise ValueError("empty file")
            read = read_mail(raw, envelope_from=None)
            if read.parsed is None:
                raise ValueError(f"not a readable message ({read.rejected})")
        except (OSError, ValueError) as exc:
            failed += 1
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"docket mail extract: {name}: {reason}", file=err)
            continue
        if as_json:
            record = {
                "file": name,
                "reply": read.reply_text,
                "language": read.language,
                "cut": read.cut.value,
            }
            print(json.dumps(record, ensure_ascii=False), file=out)
        else:
            print(f"==> {name} <==\n{read.reply_text}\n", file=out)
    return 1 if failed else 0


def command_mail(settings: Settings, args: argparse.Namespace) -> int:
    """Show what Docket reads from customer mail files (`docket mail extract`)."""
    return extract_files(args.files, as_json=args.json, out=sys.stdout, err=sys.stderr)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `extract` to the `docket mail` parser."""
    sub = parser.add_subparsers(dest="mail_command", required=True)
    extract = sub.add_parser(
        "extract", help="print the new text the assignee's DM would quote, for each file"
    )
    extract.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per line: {"file", "reply", "language", "cut"}',
    )
    extract.add_argument("files", nargs="+", metavar="FILE", help="RFC 822 message files")


command_mail.configure = configure  # type: ignore[attr-defined]
