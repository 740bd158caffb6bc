"""`docket import KIND FILE.csv`: members, customers, contacts, contracts, rates and time."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from bot.config import Settings
from bot.reports import add_team_argument, open_shell
from models import exports
from models.accounting import parse_account_codes
from models.importer import COLUMNS, FULL_KINDS, KINDS, ImportFailed, import_csv

ACCOUNT_CODES = "account-codes"

BIG_FILE_BYTES = 1_000_000  # from here on the import shows a progress bar


def _configure(parser: argparse.ArgumentParser) -> None:
    columns = "; ".join(f"{k}: {','.join(COLUMNS[k][0] + COLUMNS[k][1])}" for k in KINDS)
    parser.description = (
        "Import a CSV file. All or nothing: every bad row is listed by line number and then "
        f"nothing is imported. Importing a file again changes nothing. Columns — {columns}."
    )
    parser.add_argument("kind", choices=(*KINDS, ACCOUNT_CODES))
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--full",
        action="store_true",
        help=f"the file is the complete list ({', '.join(FULL_KINDS)}): records missing from "
        "it are marked inactive (never deleted)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="check and show what would change; write nothing"
    )
    add_team_argument(parser)


async def _import(settings: Settings, args: argparse.Namespace, *, big: bool) -> int:
    path: Path = args.file
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int | None) -> None:
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[stage] = tqdm(
                desc=stage.capitalize(), unit="row", total=total, file=sys.stderr, disable=not big
            )
        bar.update(done - bar.n)

    def opener() -> TextIO:
        return path.open(encoding="utf-8-sig", newline="")

    if args.kind == ACCOUNT_CODES:
        return await _import_account_codes(settings, args)
    async with open_shell(settings, args.team, create=True) as shell:
        try:
            async with shell.sessions() as session, session.begin() as transaction:
                result = await import_csv(
                    session=session,
                    workspace_id=shell.workspace_id,
                    kind=args.kind,
                    opener=opener,
                    at=shell.now(),
                    today=shell.today(),
                    progress=progress,
                    full=args.full,
                )
                if args.dry_run:
                    await transaction.rollback()
        except ImportFailed as failed:
            for bar in bars.values():
                bar.close()
            for error in failed.errors:
                print(f"{path}:{error.line}: {error.message}", file=sys.stderr)
            if failed.more:
                print(f"... and {failed.more} more problem(s).", file=sys.stderr)
            print(f"Nothing was imported from {path}.", file=sys.stderr)
            return 1
        except UnicodeDecodeError as exc:
            print(f"{path}: not UTF-8 text ({exc.reason}); nothing was imported.", file=sys.stderr)
            return 1
        for bar in bars.values():
            bar.close()
    detail = f", {result.written} written" if args.kind == "time" else ""
    stale = f"; {result.stale_marked} period(s) to refresh" if result.stale_marked else ""
    if args.kind in FULL_KINDS:
        detail = f": {result.summary()}"
    verb = "Would import" if args.dry_run else "Imported"
    print(f"{verb} {result.rows} {args.kind} row(s) from {path}{detail}{stale}.")
    for label in result.retired:
        print(f"  {'would retire' if args.dry_run else 'retired'}: {label}")
    if args.dry_run:
        print("Dry run: nothing was written.")
    return 0


async def _import_account_codes(settings: Settings, args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.DictReader(stream)
            header = [h.strip().lower() for h in reader.fieldnames or ()]
            if not {"line_kind", "account_code"} <= set(header):
                print(
                    f"{path}:1: the columns are line_kind,account_code,name; nothing was imported.",
                    file=sys.stderr,
                )
                return 1
            rows = [
                (reader.line_num, {k.strip().lower(): (v or "") for k, v in row.items() if k})
                for row in reader
            ]
        codes = parse_account_codes(rows)
    except UnicodeDecodeError as exc:
        print(f"{path}: not UTF-8 text ({exc.reason}); nothing was imported.", file=sys.stderr)
        return 1
    except ValueError as exc:
        for problem in str(exc).split("; "):
            print(f"{path}: {problem}", file=sys.stderr)
        print(f"Nothing was imported from {path}.", file=sys.stderr)
        return 1
    async with open_shell(settings, args.team, create=True) as shell:
        async with shell.sessions() as session, session.begin():
            kept, removed = await exports.replace_account_codes(
                session=session, workspace_id=shell.workspace_id, codes=codes
            )
    print(f"Imported {kept} account code(s) from {path}; {removed} removed.")
    return 0


def command_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import members, customers, contacts, contracts, rates or time from a CSV file."""
    path: Path = args.file
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return 1
    return asyncio.run(_import(settings, args, big=path.stat().st_size >= BIG_FILE_BYTES))


command_import.configure = _configure  # type: ignore[attr-defined]
