"""How an extractor does on the corpus: correct, lost customer text, failures, slowest case.

Shared by the table-driven test and `bench/mail_extract.py`. A case is correct when the
extracted text has the expected lines, in order (blank lines, trailing spaces, the spacing
after ">" and html2text's Markdown escapes aside). It loses customer text when a word of the
expected text is missing from the output.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tests.mail_corpus.cases import Case

_ESCAPE = re.compile(r"\\([-#*_.+!`\[\]()>])")
_SPACES = re.compile(r"\s+")
_QUOTE = re.compile(r"^(?:>\s?)+")
_WORD = re.compile(r"\w+")


def normalise(text: str) -> list[str]:
    """The lines that count: no blanks, single spaces, one "> " per quote level."""
    lines = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = _SPACES.sub(" ", _ESCAPE.sub(r"\1", raw)).strip()
        quote = _QUOTE.match(line)
        if quote:
            depth = quote.group(0).count(">")
            line = ">" * depth + " " + line[quote.end() :].strip()
        if line.strip("> "):
            lines.append(line.rstrip())
    return lines


def missing_words(expected: str, got: str) -> list[str]:
    """Words of the expected text that are not in the output (customer text lost)."""
    flat = " ".join(normalise(got))
    return [word for word in _WORD.findall(" ".join(normalise(expected))) if word not in flat]


@dataclass
class Outcome:
    case: Case
    got: str | None
    seconds: float
    error: str | None = None

    @property
    def correct(self) -> bool:
        return self.got is not None and normalise(self.got) == normalise(self.case.expected)

    @property
    def lost(self) -> list[str]:
        return missing_words(self.case.expected, self.got) if self.got is not None else ["?"]


@dataclass
class Score:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def correct(self) -> int:
        return sum(o.correct for o in self.outcomes)

    @property
    def lost(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is None and o.lost]

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def slowest(self) -> Outcome:
        return max(self.outcomes, key=lambda o: o.seconds)

    @property
    def rate(self) -> float:
        return self.correct / self.total if self.total else 0.0


def run(cases: Sequence[Case], extract: Callable[[Case], str]) -> Score:
    """Run `extract` on every case; exceptions are counted, never raised."""
    score = Score()
    for case in cases:
        started = time.perf_counter()
        try:
            got: str | None = extract(case)
            error = None
        except Exception as exc:  # a crash is a result to report
            got, error = None, f"{type(exc).__name__}: {exc}"
        score.outcomes.append(Outcome(case, got, time.perf_counter() - started, error))
    return score
