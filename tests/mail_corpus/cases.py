"""The reply-extraction corpus: realistic customer mails with the text the assignee must see.

Each `Case` is a whole RFC 822 message (plain text, HTML or both) as a client sends it, and
the expected new text. Cases are built from the per-language client strings in
`languages.py` (19 languages) and from hand-written mails for the shapes one language is
enough to show. `kinds` names what a case covers (see README.md for the list).
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP

from tests.mail_corpus.languages import AGENT, AGENT_ADDR, LANGUAGES, Language

CUSTOMER = "customer@acme.example"
SUBJECT = "Re: [#42] Printer on floor 2"


@dataclass(frozen=True)
class Case:
    """One mail and the text the assignee's DM must quote."""

    name: str
    language: str
    kinds: tuple[str, ...]
    raw: bytes
    expected: str
    subject: str = SUBJECT
    notes: str = field(default="", compare=False)


def build(*, plain: str | None = None, markup: str | None = None, subject: str = SUBJECT) -> bytes:
    """A message as a client sends it: text/plain, text/html, or multipart/alternative."""
    message = EmailMessage()
    message["From"] = f"Customer <{CUSTOMER}>"
    message["To"] = AGENT_ADDR
    message["Subject"] = subject
    message["Date"] = "Mon, 03 Mar 2025 11:02:00 +0100"
    message["Message-ID"] = "<case@acme.example>"
    if plain is not None:
        message.set_content(plain, charset="utf-8")
        if markup is not None:
            message.add_alternative(markup, subtype="html", charset="utf-8")
    else:
        assert markup is not None
        message.set_content(markup, subtype="html", charset="utf-8")
    return message.as_bytes(policy=SMTP)


def _lines(*parts: tuple[str, ...] | list[str] | str) -> list[str]:
    out: list[str] = []
    for part in parts:
        out.extend([part] if isinstance(part, str) else part)
    return out


def _quoted(lines: tuple[str, ...] | list[str]) -> list[str]:
    return [f"> {line}" for line in lines]


def _divs(lines: tuple[str, ...] | list[str]) -> str:
    return "".join(f"<div>{html.escape(line)}</div>" for line in lines)


def _text(*blocks: list[str]) -> str:
    return "\n\n".join("\n".join(block) for block in blocks) + "\n"


def _customer(lang: Language) -> list[str]:
    return _lines(lang.greeting, list(lang.reply), list(lang.closing))


def _outlook_block(lang: Language, subject: str = "RE: [#42] Printer") -> list[str]:
    f, s, t, subj = lang.outlook
    return [
        f"{f}: {AGENT} <{AGENT_ADDR}>",
        f"{s}: {lang.outlook_date}",
        f"{t}: Customer <{CUSTOMER}>",
        f"{subj}: {subject}",
    ]


def _android_block(lang: Language) -> list[str]:
    f, d, t, subj = lang.android_labels
    return [
        f"{f}: {AGENT} <{AGENT_ADDR}>",
        f"{d}: 03.03.2025 10:15 (GMT+01:00)",
        f"{t}: {CUSTOMER}",
        f"{subj}: [#42] Printer",
    ]


def language_cases(lang: Language) -> Iterator[Case]:
    """Every client and posting style in one language."""
    code = lang.code
    mine = _customer(lang)
    expected = "\n".join(mine)
    quote = list(lang.quote)

    def case(name: str, kinds: tuple[str, ...], raw: bytes, want: str, **kw: str) -> Case:
        return Case(f"{code}-{name}", code, kinds, raw, want, **kw)

    yield case(
        "gmail-plain",
        ("attribution", "top-posting", "plain"),
        build(plain=_text(mine, [lang.gmail], _quoted(quote))),
        expected,
    )
    gmail_html = (
        f'<div dir="ltr">{_divs(mine)}</div><br><div class="gmail_quote">'
        f'<div dir="ltr" class="gmail_attr">{html.escape(lang.gmail)}<br></div>'
        '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex">'
        f"{_divs(quote)}</blockquote></div>"
    )
    yield case(
        "gmail-html",
        ("html-structure", "gmail_quote", "top-posting", "html"),
        build(plain=None, markup=gmail_html),
        expected,
    )
    yield case(
        "apple-plain-device",
        ("attribution", "device-signature", "top-posting", "plain"),
        build(plain=_text(mine, [lang.device], [lang.apple], _quoted(quote))),
        expected,
    )
    apple_html = (
        f"<html><body>{_divs(mine)}<div><br><div>{html.escape(lang.device)}</div>"
        f'<div><br><blockquote type="cite"><div>{html.escape(lang.apple)}</div><br>'
        f"{_divs(quote)}</blockquote></div></div></body></html>"
    )
    yield case(
        "apple-html-cite",
        ("html-structure", "blockquote-cite", "device-signature", "html"),
        build(markup=apple_html),
        expected,
    )
    bottom = _text(
        [lang.thunderbird],
        _quoted(quote),
        list(lang.answer),
        ["-- ", lang.closing[-1], "ACME GmbH"],
    )
    yield case(
        "thunderbird-bottom",
        ("attribution", "bottom-posting", "signature", "plain"),
        build(plain=bottom),
        "\n".join([*_quoted(quote[-2:]), *lang.answer]),
    )
    tb_html = (
        f"<html><body><p>{'<br>'.join(html.escape(x) for x in mine)}</p>"
        f'<div class="moz-cite-prefix">{html.escape(lang.thunderbird)}<br></div>'
        f'<blockquote type="cite">{_divs(quote)}</blockquote></body></html>'
    )
    yield case(
        "thunderbird-html",
        ("html-structure", "moz-cite-prefix", "top-posting", "html"),
        build(markup=tb_html),
        expected,
    )
    yield case(
        "outlook-plain",
        ("outlook-header", "top-posting", "plain"),
        build(plain=_text(mine, ["_" * 32, *_outlook_block(lang)], quote)),
        expected,
    )
    f, s, t, subj = lang.outlook
    owa = (
        f"<html><body><div>{_divs(mine)}</div>"
        '<div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1">'
        f'<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri"><b>{f}:</b> {AGENT} '
        f"&lt;{AGENT_ADDR}&gt;<br><b>{s}:</b> {html.escape(lang.outlook_date)}<br>"
        f"<b>{t}:</b> {CUSTOMER}<br><b>{subj}:</b> RE: [#42] Printer</font>"
        f"<div>&nbsp;</div></div>{_divs(quote)}</body></html>"
    )
    yield case(
        "outlook-web-html",
        ("html-structure", "divRplyFwdMsg", "appendonsend", "outlook-header", "html"),
        build(markup=owa),
        expected,
    )
    yield case(
        "outlook-original",
        ("original-message", "outlook-header", "plain"),
        build(plain=_text(mine, [lang.original, *_outlook_block(lang)], quote)),
        expected,
    )
    forwarded = [f"{lang.reply[0]}", ""]
    fwd_body = _lines(
        lang.forward,
        f"From: {AGENT} <{AGENT_ADDR}>",
        "Date: Mon, 3 Mar 2025 at 10:15",
        f"Subject: {lang.forward_subject[lang.forward_subject.index(':') + 1 :].strip()}",
        f"To: <{CUSTOMER}>",
        "",
        *quote,
    )
    yield case(
        "gmail-forward",
        ("forward", "plain"),
        build(plain="\n".join([*forwarded, *fwd_body]) + "\n", subject=lang.forward_subject),
        "\n".join([*forwarded, *fwd_body]),
        subject=lang.forward_subject,
    )
    apple_fwd = _lines(
        lang.reply[1],
        "",
        lang.apple_forward,
        "",
        *_outlook_block(lang, lang.forward_subject),
        "",
        *quote,
    )
    yield case(
        "apple-forward",
        ("forward", "plain"),
        build(plain="\n".join(apple_fwd) + "\n", subject=lang.forward_subject),
        "\n".join(apple_fwd),
        subject=lang.forward_subject,
    )
    interleaved = _text(
        [lang.greeting],
        [lang.gmail],
        _quoted(quote[:1]),
        [lang.reply[0]],
        _quoted(quote[1:]),
        list(lang.answer),
    )
    yield case(
        "interleaved",
        ("attribution", "interleaved", "plain"),
        build(plain=interleaved),
        "\n".join(
            [lang.greeting, *_quoted(quote[:1]), lang.reply[0], *_quoted(quote[1:]), *lang.answer]
        ),
    )
    yahoo = (
        f'<html><body><div class="ydp1"><div>{_divs(mine)}</div></div>'
        '<div id="yahoo_quoted_4711" class="yahoo_quoted">'
        '<div style="font-family:Helvetica;font-size:13px;color:#26282a;">'
        f"<div>{html.escape(lang.yahoo)}</div><div><br></div><div><br></div>"
        f'<div><div dir="ltr">{_divs(quote)}</div></div></div></div></body></html>'
    )
    yield case(
        "yahoo-html",
        ("html-structure", "yahoo_quoted", "html"),
        build(markup=yahoo),
        expected,
    )
    yield case(
        "android-original",
        ("original-message", "outlook-header", "plain"),
        build(plain=_text(mine, [lang.android, *_android_block(lang)], quote)),
        expected,
    )
    bullets = _lines(lang.greeting, *(f"- {line}" for line in lang.reply), *lang.answer)
    yield case(
        "bullets",
        ("bullets", "top-posting", "plain"),
        build(plain=_text(bullets, [lang.apple], _quoted(quote))),
        "\n".join(bullets),
    )


def _special_cases() -> Iterator[Case]:
    """Shapes one language is enough to show, from the failures seen in real mail."""
    quote = ["Hi Alice,", "please restart the printer and check the cable."]
    q = _quoted(quote)

    def case(name: str, kinds: tuple[str, ...], raw: bytes, want: str, **kw: str) -> Case:
        return Case(f"en-{name}", "en", kinds, raw, want, **kw)

    yield case(
        "gmail-date-only",
        ("gmail-date-form", "attribution", "plain"),
        build(
            plain=_text(
                ["Works now, thank you!"], [f"2014-03-20 8:48 GMT+01:00 {AGENT} <{AGENT_ADDR}>:"], q
            )
        ),
        "Works now, thank you!",
    )
    yield case(
        "same-line-attribution",
        ("same-line-attribution", "plain"),
        build(
            plain=_text([f"Great, thanks! On Wed, Apr 4, 2012 at 3:59 PM, {AGENT_ADDR} wrote:"], q)
        ),
        "Great, thanks!",
    )
    yield case(
        "outlook-wrapped-from",
        ("outlook-header", "wrapped-from", "plain"),
        build(
            plain=_text(
                ["Please send the technician on Tuesday."],
                [
                    "_" * 32,
                    f'From: "{AGENT} (Docket Support Team of Help Example Ltd)"',
                    f"<{AGENT_ADDR}>",
                    "Sent: Monday, March 3, 2025 10:15 AM",
                    "To: Customer <customer@acme.example>",
                    "Subject: RE: [#42] Printer",
                ],
                quote,
            )
        ),
        "Please send the technician on Tuesday.",
    )
    yield case(
        "outlook-bold-from",
        ("outlook-header", "bold-from", "plain"),
        build(
            plain=_text(
                ["Tuesday works for us."],
                [
                    f"*From:* {AGENT} [mailto:{AGENT_ADDR}]",
                    "*Sent:* Monday, March 3, 2025 10:15 AM",
                    "*To:* Customer",
                    "*Subject:* RE: [#42] Printer",
                ],
                quote,
            )
        ),
        "Tuesday works for us.",
    )
    merged = (
        "<html><body><div>The invoice number is 2025-0042.</div>"
        f"<div>From: {AGENT} &lt;{AGENT_ADDR}&gt; Date: Mon, 3 Mar 2025 10:15 "
        "Subject: Re: [#42] Printer To: customer@acme.example</div>"
        f"<div>{html.escape(quote[1])}</div></body></html>"
    )
    yield case(
        "html-merged-header",
        ("html-merged-header", "outlook-header", "html"),
        build(markup=merged),
        "The invoice number is 2025-0042.",
    )
    olk = (
        "<html><body><div>Approved, go ahead.</div><div><br></div>"
        '<span id="OLK_SRC_BODY_SECTION"><div style="border-top:solid #B5C4DF 1.0pt">'
        f"<b>From: </b>{AGENT} &lt;{AGENT_ADDR}&gt;<br><b>Date: </b>Monday, 3 March 2025 at "
        f"10:15<br><b>To: </b>Customer<br><b>Subject: </b>Re: Quote</div><div>{_divs(quote)}"
        "</div></span></body></html>"
    )
    yield case(
        "outlook-mac-olk",
        ("html-structure", "OLK_SRC_BODY_SECTION", "html"),
        build(markup=olk),
        "Approved, go ahead.",
    )
    hr = (
        "<html><body><p>We moved the printer to room 3.</p><hr>"
        f"<b>From:</b> {AGENT} &lt;{AGENT_ADDR}&gt;<br><b>Sent:</b> Monday, March 3, 2025"
        f"<br><b>To:</b> Customer<br><b>Subject:</b> Re: Printer<br><br>{_divs(quote)}"
        "</body></html>"
    )
    yield case(
        "hr-separator",
        ("html-structure", "hr-separator", "html"),
        build(markup=hr),
        "We moved the printer to room 3.",
    )
    hotmail = (
        '<html><body><div>Yes, that fixed it.</div><br><hr id="stopSpelling">'
        f"Date: Mon, 3 Mar 2025 10:15:00 +0100<br>From: {AGENT_ADDR}<br>To: {CUSTOMER}"
        f"<br>Subject: Re: Printer<br><br>{_divs(quote)}</body></html>"
    )
    yield case(
        "hotmail-stopspelling",
        ("html-structure", "hr-separator", "html"),
        build(markup=hotmail),
        "Yes, that fixed it.",
    )
    for device in (
        "Sent from Mail for Windows 10",
        "Sent from Mail<https://go.microsoft.com/fwlink/?LinkId=550986> for Windows 10",
        "Sent from TypeApp",
        "Get Outlook for iOS<https://aka.ms/o0ukef>",
        "Get Outlook for Android",
        "Sent from Yahoo Mail on Android",
        "Sent from my Samsung Galaxy smartphone.",
        "Sent from my Android device with K-9 Mail. Please excuse my brevity.",
        "Sent with Proton Mail secure email.",
        "Sent from FairEmail",
    ):
        slug = "".join(c for c in device.lower() if c.isalnum())[:24]
        yield case(
            f"device-{slug}",
            ("device-signature", "plain"),
            build(plain=_text(["The new toner arrived.", "Thanks!"], [device])),
            "The new toner arrived.\nThanks!",
        )
    sentences = [
        "Sent from my laptop, the error shows again after the update.",
        "Sent from my phone it works, from the desktop it does not.",
        "Sent from my iPhone the PDF opens fine; on Windows it is blank.",
    ]
    for index, sentence in enumerate(sentences):
        yield case(
            f"sent-from-sentence-{index}",
            ("sent-from-sentence", "plain"),
            build(plain=_text(["Hi,", sentence, "Can you check?"], [quote[0]])),
            "\n".join(["Hi,", sentence, "Can you check?", quote[0]]),
        )
    listing = [
        "Here is the listing you asked for:",
        "",
        "-rw-r--r-- 1 root root 4096 Mar  3 10:00 printer.conf",
        "- the spooler was stopped",
        "- the queue had 14 jobs",
        "drwxr-xr-x 2 root root 4096 Mar  3 10:00 spool",
        "",
        "Does that help?",
    ]
    yield case(
        "ls-output",
        ("bullets", "plain"),
        build(
            plain=_text(listing, [f"On Mon, 3 Mar 2025 at 10:15, {AGENT} <{AGENT_ADDR}> wrote:"], q)
        ),
        "\n".join(listing),
    )
    own_quote = (
        "<html><body><div>The server answers with this error:</div>"
        "<blockquote>Error 0x80070005: access denied while spooling job 17</blockquote>"
        "<div>It started after the Windows update yesterday.</div>"
        "<div>Regards, Alice</div></body></html>"
    )
    yield case(
        "html-own-blockquote",
        ("html-blockquote-kept", "html"),
        build(markup=own_quote),
        "The server answers with this error:\n"
        "> Error 0x80070005: access denied while spooling job 17\n"
        "It started after the Windows update yesterday.\nRegards, Alice",
    )
    gmail_bottom = (
        '<div dir="ltr"><br></div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
        f"On Mon, 3 Mar 2025 at 10:15, {AGENT} &lt;{AGENT_ADDR}&gt; wrote:<br></div>"
        f'<blockquote class="gmail_quote">{_divs(quote)}</blockquote></div>'
        "<div>I restarted it, the cable was loose.</div><div>Now it prints again.</div>"
    )
    yield case(
        "gmail-html-bottom",
        ("html-structure", "bottom-posting", "html"),
        build(markup=gmail_bottom),
        "> Hi Alice,\n> please restart the printer and check the cable.\n"
        "I restarted it, the cable was loose.\nNow it prints again.",
    )
    gmail_inline = (
        '<div dir="ltr">Answers below.</div><br><div class="gmail_quote">'
        f'<div dir="ltr" class="gmail_attr">On Mon, 3 Mar 2025 at 10:15, {AGENT} '
        f"&lt;{AGENT_ADDR}&gt; wrote:<br></div>"
        '<blockquote class="gmail_quote">Which model is it?</blockquote>'
        "<div>An HP LaserJet 4000.</div>"
        '<blockquote class="gmail_quote">Since when?</blockquote>'
        "<div>Since Monday morning.</div></div>"
    )
    yield case(
        "gmail-html-interleaved",
        ("html-structure", "interleaved", "html"),
        build(markup=gmail_inline),
        "Answers below.\n> Which model is it?\nAn HP LaserJet 4000.\n> Since when?\n"
        "Since Monday morning.",
    )
    multi_plain = _text(
        ["Confirmed for Thursday.", "Alice"],
        [f"On Mon, 3 Mar 2025 at 10:15, {AGENT} <{AGENT_ADDR}> wrote:"],
        q,
    )
    multi_html = (
        '<div dir="ltr">Confirmed for Thursday.<div>Alice</div></div><br>'
        '<div class="gmail_quote">quote</div>'
    )
    yield case(
        "gmail-multipart",
        ("attribution", "multipart", "plain"),
        build(plain=multi_plain, markup=multi_html),
        "Confirmed for Thursday.\nAlice",
    )
    desktop = (
        '<html><body><div class="WordSection1"><p class="MsoNormal">The part number is '
        'CF226X.</p><p class="MsoNormal">&nbsp;</p><div><div style="border:none;'
        'border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p class="MsoNormal">'
        f"<b>From:</b> {AGENT} &lt;{AGENT_ADDR}&gt; <br><b>Sent:</b> Monday, March 3, 2025 "
        "10:15 AM<br><b>To:</b> Customer &lt;customer@acme.example&gt;<br><b>Subject:</b> RE: "
        f'[#42] Printer</p></div></div><p class="MsoNormal">{html.escape(quote[1])}</p>'
        "</div></body></html>"
    )
    yield case(
        "outlook-desktop-html",
        ("outlook-header", "html"),
        build(markup=desktop),
        "The part number is CF226X.",
    )
    marker = (
        f"On Mon, 3 Mar 2025 at 10:15, {AGENT} <{AGENT_ADDR}> wrote:\n"
        "> ##- Please type your reply above this line -##\n>\n> Please restart it.\n\n"
        "Restarted, still jammed.\n"
    )
    yield case(
        "marker-bottom-posted",
        ("bottom-posting", "marker", "plain"),
        build(plain=marker),
        "> Please restart it.\nRestarted, still jammed.",
    )
    tb_forward = _lines(
        "See the supplier's answer below.",
        "",
        "-------- Forwarded Message --------",
        "Subject: \tToner delivery",
        "Date: \tMon, 3 Mar 2025 09:00:00 +0100",
        "From: \tSupplier <orders@supplier.example>",
        "To: \tcustomer@acme.example",
        "",
        "The toner ships on Friday.",
    )
    yield case(
        "thunderbird-forward",
        ("forward", "plain"),
        build(plain="\n".join(tb_forward) + "\n", subject="Fwd: Toner delivery"),
        "\n".join(tb_forward),
        subject="Fwd: Toner delivery",
    )
    outlook_fw = _lines(
        "FYI, the supplier confirmed.",
        "",
        "_" * 32,
        "From: Supplier <orders@supplier.example>",
        "Sent: Monday, March 3, 2025 9:00 AM",
        f"To: Customer <{CUSTOMER}>",
        "Subject: Toner delivery",
        "",
        "The toner ships on Friday.",
    )
    yield case(
        "outlook-forward",
        ("forward", "outlook-header", "plain"),
        build(plain="\n".join(outlook_fw) + "\n", subject="FW: Toner delivery"),
        "\n".join(outlook_fw),
        subject="FW: Toner delivery",
    )
    gmail_fwd_html = (
        '<div dir="ltr">Forwarding the supplier mail.<br><br><div class="gmail_quote">'
        '<div dir="ltr" class="gmail_attr">---------- Forwarded message ---------<br>'
        "From: <b>Supplier</b> &lt;orders@supplier.example&gt;<br>Date: Mon, 3 Mar 2025 at "
        "09:00<br>Subject: Toner delivery<br>To: &lt;customer@acme.example&gt;<br></div><br>"
        '<div dir="ltr">The toner ships on Friday.</div></div></div>'
    )
    yield case(
        "gmail-forward-html",
        ("forward", "html-structure", "html"),
        build(markup=gmail_fwd_html, subject="Fwd: Toner delivery"),
        "Forwarding the supplier mail.\n---------- Forwarded message ---------\n"
        "From: Supplier <orders@supplier.example>\nDate: Mon, 3 Mar 2025 at 09:00\n"
        "Subject: Toner delivery\nTo: <customer@acme.example>\nThe toner ships on Friday.",
        subject="Fwd: Toner delivery",
    )
    yield case(
        "nothing-new",
        ("attribution", "plain"),
        build(plain=_text([f"On Mon, 3 Mar 2025, {AGENT} <{AGENT_ADDR}> wrote:"], q)),
        f"On Mon, 3 Mar 2025, {AGENT} <{AGENT_ADDR}> wrote:\n" + "\n".join(q),
    )
    yield case(
        "wrapped-attribution",
        ("attribution", "wrapped-attribution", "plain"),
        build(
            plain=_text(
                ["It works now."],
                [
                    "On Mon, 3 Mar 2025 at 10:15, Agnes Agent from Docket Support <",
                    f"{AGENT_ADDR}> wrote:",
                ],
                q,
            )
        ),
        "It works now.",
    )
    yield case(
        "wrote-sentence-kept",
        ("attribution", "plain"),
        build(plain=_text(["Here is what my colleague wrote:", "The tray is broken, not jammed."])),
        "Here is what my colleague wrote:\nThe tray is broken, not jammed.",
    )
    yield case(
        "k9-attribution",
        ("attribution", "plain"),
        build(
            plain=_text(
                ["Thanks, closing this."],
                [f"On March 3, 2025 10:15:00 AM GMT+01:00, {AGENT} <{AGENT_ADDR}> wrote:"],
                q,
            )
        ),
        "Thanks, closing this.",
    )
    yield case(
        "outlook-mobile-html",
        ("html-structure", "outlook-mobile", "html"),
        build(
            markup=(
                "<html><body><div>On my way to the office now.</div><br>"
                '<div id="ms-outlook-mobile-signature">Get Outlook for iOS</div>'
                '<div id="mail-editor-reference-message-container"><hr>'
                f"<b>From:</b> {AGENT} &lt;{AGENT_ADDR}&gt;<br><b>Sent:</b> Monday, March 3, "
                f"2025 10:15<br><b>Subject:</b> Re: Printer<br>{_divs(quote)}</div></body></html>"
            )
        ),
        "On my way to the office now.",
    )


def _lookalike_cases() -> Iterator[Case]:
    """Customer text that looks like client strings, and client strings in odd places."""

    def case(name: str, kinds: tuple[str, ...], body: str, want: str) -> Case:
        return Case(f"en-{name}", "en", kinds, build(plain=body), want)

    on_lines = (
        "On the whole the new firmware is better.\n\nOn Monday we saw two jams, on Tuesday "
        "none.\nOn balance we can close the ticket."
    )
    yield case("on-sentences", ("lookalike", "plain"), on_lines + "\n", on_lines)
    stamps = (
        "The jams happened at:\n\n2025-03-01 14:30:25\n2025/03/02 09:12:00\n03.03.2025 "
        "10:15\nMar 4, 2025 at 2:30 PM\n\nAll four on the second floor."
    )
    yield case("timestamps", ("lookalike", "plain"), stamps + "\n", stamps)
    from_words = (
        "The error comes from: the spooler, not from: the driver.\nTo: be sure, I checked "
        "both logs."
    )
    yield case("from-words", ("lookalike", "plain"), from_words + "\n", from_words)
    markdown = "Findings:\n\n----\n\n1. Toner low\n2. Drum worn\n\n====\n\nThat is all."
    yield case("markdown-rules", ("lookalike", "plain"), markdown + "\n", markdown)
    url = "See https://example.org/blog/on-monday-someone-wrote-this for the same fault."
    yield case("url-with-wrote", ("lookalike", "plain"), url + "\n", url)
    yield case(
        "no-blank-before-attribution",
        ("attribution", "plain"),
        "Fixed by the update.\nThanks.\nOn Mar 3, 2025, at 10:15 AM, Agnes Agent "
        "<support@help.example.com> wrote:\n> Please update the driver.\n",
        "Fixed by the update.\nThanks.",
    )
    yield case(
        "zoho-dashed-attribution",
        ("attribution", "plain"),
        "The driver is version 4.2.\n\n---- On Mon, 03 Mar 2025 10:15:00 +0100 "
        "support@help.example.com wrote ----\n\nWhich driver version is installed?\n",
        "The driver is version 4.2.",
    )
    yield case(
        "inline-with-blank-lines",
        ("attribution", "interleaved", "plain"),
        "On Mar 3, 2025, at 10:15 AM, Agnes <support@help.example.com> wrote:\n"
        "> Which floor?\n\nThe second floor.\n\n> Which model?\n\nAn HP 4000.\n\n"
        "> Since when?\n\nSince Monday.\n",
        "> Which floor?\nThe second floor.\n> Which model?\nAn HP 4000.\n> Since when?\n"
        "Since Monday.",
    )
    quoted_forward = (
        "Please see what the supplier wrote.\n\n> Začátek přeposílané zprávy:\n>\n"
        "> Od: Dodavatel <orders@supplier.example>\n> Předmět: Toner\n>\n"
        "> Toner odešleme v pátek.\n"
    )
    yield Case(
        "cs-apple-quoted-forward",
        "cs",
        ("forward", "plain"),
        build(plain=quoted_forward, subject="Fwd: Toner"),
        quoted_forward.strip(),
        subject="Fwd: Toner",
    )
    yield Case(
        "fr-outlook-envoye-le",
        "fr",
        ("outlook-header", "plain"),
        build(
            plain="Parfait, merci pour la réponse rapide.\n\n"
            "De : Agnes Agent <support@help.example.com>\n"
            "Envoyé le : lundi 3 mars 2025 10:15\nÀ : client@acme.example\n"
            "Objet : RE: [#42] Imprimante\n\nBonjour,\nmerci de redémarrer l'imprimante.\n"
        ),
        "Parfait, merci pour la réponse rapide.",
    )
    yield Case(
        "da-oprindelig-besked",
        "da",
        ("original-message", "plain"),
        build(
            plain="Det virker nu.\n\n-------- Oprindelig besked --------\n"
            "Fra: Agnes <a@help.example>\nDato: 03.03.2025 10.15 (GMT+01:00)\n"
            "Til: kunde@acme.example\nEmne: Printer\n\ngammel\n"
        ),
        "Det virker nu.",
    )


def all_cases() -> list[Case]:
    """The whole corpus, in a stable order."""
    cases = [case for lang in LANGUAGES for case in language_cases(lang)]
    cases.extend(_special_cases())
    cases.extend(_lookalike_cases())
    return cases
