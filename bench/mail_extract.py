"""Reply extraction: Docket's rules against the wrapped mail-parser-reply library, side by side.

Both run on the same corpus (tests/mail_corpus: realistic mails from the major clients in 19
languages, each with the text the assignee must see) and on crafted bodies that make reply
parsers backtrack. Docket's path is the product's: `parse_message` (HTML quote containers
marked before conversion) then `models.reply_text.extract`. The library's path is the one
Docket used before: the parsed text, Docket's marker cut, then mail-parser-reply in a child
process under a 1 s limit (`jobs.reply_extract.ReplyLibrary`), the whole text on failure.

A case is correct when the output has exactly the expected lines; it loses customer text when
a word of the expected text is missing.

    python -m bench.mail_extract [--small]
"""

from __future__ import annotations

import argparse
import time

from bench._common import Row, machine, print_table
from jobs.reply_extract import ReplyLibrary
from models.inbound_read import read_mail
from models.mail import parse_message
from models.reply_text import extract
from tests.mail_corpus.cases import Case, all_cases
from tests.mail_corpus.score import Score, run

CRAFTED = {
    "'On ' x 6000": "On " * 6000,
    "'> ' lines x 4000": "> a\n" * 4000,
    "'From: ' x 3000": "From: x\n" * 3000,
    "one 100 KB line": "wrote " * 17_000 + ":",
    "200 KB of 'From: x<n>' lines": "".join(f"From: x{i}\n" for i in range(20_000)),
}


def docket(case: Case) -> str:
    return read_mail(case.raw, envelope_from=None).reply_text


def describe(score: Score) -> dict[str, str]:
    slowest = score.slowest
    return {
        "pass": f"{score.correct}/{score.total} ({score.rate:.1%})",
        "lost": str(len(score.lost)),
        "errors": str(len(score.errors)),
        "slowest": f"{slowest.seconds * 1000:.1f} ms ({slowest.case.name})",
    }


def crafted_worst(extractor: object, small: bool) -> tuple[float, str]:
    worst, name = 0.0, ""
    for label, body in CRAFTED.items():
        text = body[: len(body) // 4] if small else body
        started = time.perf_counter()
        if isinstance(extractor, ReplyLibrary):
            extractor.reply(text, time_limit=1.0)
        else:
            extract(text)
        took = time.perf_counter() - started
        if took > worst:
            worst, name = took, label
    return worst, name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Docket reply-extraction benchmark")
    parser.add_argument("--small", action="store_true", help="a quarter of the corpus, fast")
    args = parser.parse_args(argv)
    cases = all_cases()
    if args.small:
        cases = cases[::4]
    print(f"machine: {machine()}")
    print(f"corpus: {len(cases)} mails in {len({c.language for c in cases})} languages")

    with ReplyLibrary() as library:
        library.start(wait=30)
        mine = run(cases, docket)
        theirs = run(
            cases, lambda case: library.reply(parse_message(case.raw).text, time_limit=1.0)
        )
        my_crafted = crafted_worst(None, args.small)
        their_crafted = crafted_worst(library, args.small)

    ours, lib = describe(mine), describe(theirs)
    rows = [
        Row("corpus pass rate", ours["pass"], lib["pass"], target=">= 95%", met=mine.rate >= 0.95),
        Row("cases losing customer text", ours["lost"], lib["lost"], target="0", met=not mine.lost),
        Row("exceptions", ours["errors"], lib["errors"], target="0", met=not mine.errors),
        Row("slowest corpus case", ours["slowest"], lib["slowest"]),
        Row(
            "worst crafted body",
            f"{my_crafted[0] * 1000:.1f} ms ({my_crafted[1]})",
            f"{their_crafted[0] * 1000:.1f} ms ({their_crafted[1]})",
            target="< 1000 ms",
            met=my_crafted[0] < 1.0,
        ),
    ]
    print_table("Reply extraction (Docket rules vs mail-parser-reply alone)", rows)
    for label, score in (("Docket", mine), ("library", theirs)):
        failed = [o.case.name for o in score.outcomes if not o.correct]
        print(f"{label} incorrect ({len(failed)}): {', '.join(failed[:40])}")
        lost = [o.case.name for o in score.lost]
        print(f"{label} losing customer text ({len(lost)}): {', '.join(lost[:40])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
