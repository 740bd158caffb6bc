"""The reply-extraction corpus (tests/mail_corpus), table-driven through the product's path.

Every mail goes through `read_mail` (parse, mark HTML quote containers, extract). The corpus
as a whole must be at least 95% correct with no case losing a word of customer text and no
exception; each case is also its own test so a regression names the mail.
"""

from __future__ import annotations

from collections import Counter

import pytest

from models.inbound_read import read_mail
from tests.mail_corpus.cases import Case, all_cases
from tests.mail_corpus.score import missing_words, normalise, run

CASES = all_cases()
# Every kind of failure seen in real mail has at least one case.
REQUIRED_KINDS = {
    "bullets",
    "bottom-posting",
    "interleaved",
    "sent-from-sentence",
    "forward",
    "html-blockquote-kept",
    "attribution",
    "gmail-date-form",
    "same-line-attribution",
    "outlook-header",
    "wrapped-from",
    "bold-from",
    "html-merged-header",
    "gmail_quote",
    "blockquote-cite",
    "divRplyFwdMsg",
    "OLK_SRC_BODY_SECTION",
    "appendonsend",
    "moz-cite-prefix",
    "yahoo_quoted",
    "hr-separator",
    "device-signature",
    "signature",
    "original-message",
    "top-posting",
    "plain",
    "html",
}


def reply_of(case: Case) -> str:
    return read_mail(case.raw, envelope_from=None).reply_text


def test_corpus_shape() -> None:
    assert len(CASES) >= 200
    languages = Counter(case.language for case in CASES)
    assert len(languages) >= 15
    assert all(count >= 10 for count in languages.values()), languages
    kinds = {kind for case in CASES for kind in case.kinds}
    assert REQUIRED_KINDS <= kinds, REQUIRED_KINDS - kinds
    assert len({case.name for case in CASES}) == len(CASES)


def test_corpus_scores() -> None:
    score = run(CASES, reply_of)
    assert not score.errors, [(o.case.name, o.error) for o in score.errors]
    assert not score.lost, [(o.case.name, o.lost) for o in score.lost]
    assert score.rate >= 0.95, [o.case.name for o in score.outcomes if not o.correct]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_case(case: Case) -> None:
    got = reply_of(case)
    assert not missing_words(case.expected, got), got
    assert normalise(got) == normalise(case.expected)


def test_the_scorer_sees_lost_and_leaked_text() -> None:
    assert missing_words("keep every word", "keep word") == ["every"]
    assert normalise("a\n\n>b  \n>> c\n") == ["a", "> b", ">> c"]
    [case] = [c for c in CASES if c.name == "en-gmail-plain"]
    leaked = run([case], lambda c: c.expected + "\n> old quote")
    assert leaked.correct == 0 and not leaked.lost
    lost = run([case], lambda c: c.expected.split("\n")[0])
    assert lost.lost
