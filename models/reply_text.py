"""What a customer newly wrote in a mail: pure rules built from how mail clients write replies.

`extract` takes a mail body as text (HTML already converted, with the client's quote container
marked by `mark_html_quotes`) and returns the customer's new text, the kind of cut made and the
language of the client strings that matched. The rules, in order:

1. Docket's own "reply above this line" marker.
2. The first quoted-history start: a quote container found in the HTML structure, an
   attribution line ("On ... wrote:", "Am ... schrieb ...:", "Le ... a écrit :", "W dniu ...
   pisze:", "... 님이 작성:", on its own line, wrapped, or at the end of the customer's line),
   an Outlook header block ("From:/Sent:/To:/Subject:" in many languages, bold or merged
   onto one line), or an "Original Message" separator. A forwarded message is kept whole.
3. Below an attribution, quoted (">") lines are history; unquoted text after them is a
   bottom-posted or interleaved answer and is kept, each answer with at most a short quote.
4. A "-- " signature and a trailing device signature ("Sent from my iPhone") are dropped;
   "- " bullets and sentences that merely start like a device signature are not.

When the rules would leave nothing of a non-empty text, the whole text is kept. Every step is
linear in the input (only the first few hundred characters of a line are ever examined), so a
crafted body costs no more than reading it.
"""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "QUOTE_END",
    "QUOTE_NESTED",
    "QUOTE_REST",
    "REPLY_MARKER",
    "Cut",
    "Extraction",
    "extract",
    "extract_reply",
    "mark_html_quotes",
    "strip_marks",
]

REPLY_MARKER = "##- Please type your reply above this line -##"

# Lines put into HTML before conversion to text: private-use characters no client writes.
QUOTE_NESTED = "\ue000docket-quote-start\ue000"
QUOTE_REST = "\ue000docket-history\ue000"
QUOTE_END = "\ue000docket-quote-end\ue000"
_MARKS = (QUOTE_NESTED, QUOTE_REST, QUOTE_END)

_KEY_CHARS = 300  # only the start of a line decides
_ENDS = (".", "!", "?", "。", "！", "？", ":", "：")
_STARTERS = frozenset("-_=~>\ue000")
_MAX_SCAN_LINES = 5_000  # past this many lines, no history start is looked for (keep more)
_CONTEXT_LINES = 2  # quoted lines kept above each bottom-posted or inline answer


class Cut(StrEnum):
    """Where the new text ended."""

    QUOTE = "quote"  # an attribution, a quote container or quoted lines
    HEADER = "header"  # an Outlook-style header block or an "Original Message" separator
    SIGNATURE = "signature"  # only a signature or device line was dropped
    NONE = "none"  # the whole text is new (forwards included)


@dataclass(frozen=True)
class Extraction:
    """The customer's new text, how it was cut, and the language of the strings that matched."""

    reply: str
    cut: Cut
    language: str | None


# --------------------------------------------------------------------------- client strings
# Sources of every string: tests/mail_corpus/README.md.

# Attribution verbs (the word before the colon, or before the author's name), per language.
_VERBS: tuple[tuple[str, str], ...] = (
    ("en", r"wrote|writes"),
    ("de", r"schrieb|folgendes geschrieben|geschrieben"),
    ("fr", r"a écrit|a ecrit|écrit"),
    ("es", r"escribió|escribio"),
    ("it", r"ha scritto|scritto"),
    ("nl", r"schreef|het volgende geschreven"),
    ("pt", r"escreveu"),
    ("ca", r"ha escrit|va escriure"),
    ("sv", r"skrev"),  # also da, nb
    ("fi", r"kirjoitti"),
    ("pl", r"napisał\(a\)|napisała|napisał|napisana|pisze"),
    ("cs", r"napsal\(a\)|napsala|napsal"),
    ("ru", r"написал\(-?а\)|написала|написал|пишет"),
    ("uk", r"пише|написав"),
    ("tr", r"şunu yazdı|şunları yazdı|yazdı|yazmış"),
    ("hu", r"ezt írta|írta"),
    ("ro", r"a scris"),
    ("el", r"έγραψε"),
)
_VERB_RE = re.compile(
    r"(?<![\w])(" + "|".join(f"(?P<{lang}>{alts})" for lang, alts in _VERBS) + r")(?![\w])",
    re.IGNORECASE,
)
# Scripts without spaces: the verb is glued to the name or date.
_CJK_VERBS: tuple[tuple[str, str], ...] = (
    ("zh", "写道"),
    ("zh", "寫道"),
    ("ja", "のメッセージ"),
    ("ja", "のメール"),
    ("ja", "さんは書きました"),
    ("ko", "님이 작성"),
    ("ko", "작성"),
    ("ko", "쓴 글"),
)
# Openers of a same-line attribution ("reply text On Wed, ... wrote:"), case-sensitive.
_OPENERS = re.compile(r"(?:^|\s)(On|Am|Le|El|Il|Op|Em|Den|Dne|W dniu|Dnia|Στις|В|Il giorno)\s")
_EMAILISH = re.compile(r"@|<[^<>]{1,200}>|\[mailto:")
_DIGIT = re.compile(r"\d")
# Gmail's date-only form, and others that end in "<address>:" after a date.
_ADDRESS_COLON_END = re.compile(r"(?:<[^<>\s]{1,200}@[^<>\s]{1,200}>|\)|\])\s?[:：]$")

_FROM_LABELS = (
    "from",
    "von",
    "de",
    "van",
    "da",
    "från",
    "fra",
    "lähettäjä",
    "od",
    "от",
    "kimden",
    "feladó",
    "από",
    "від",
    "de la",
    "差出人",
    "发件人",
    "寄件者",
    "寄件人",
    "보낸 사람",
    "보낸사람",
)
_NEXT_LABELS = (
    # en
    "sent",
    "date",
    "to",
    "cc",
    "subject",
    # de
    "gesendet",
    "datum",
    "an",
    "betreff",
    # fr
    "envoyé",
    "envoyé le",
    "date",
    "à",
    "objet",
    # es / pt / ca
    "enviado",
    "enviado el",
    "enviada em",
    "fecha",
    "data",
    "para",
    "asunto",
    "assunto",
    "enviat el",
    "per a",
    "assumpte",
    # it
    "inviato",
    "a",
    "oggetto",
    # nl
    "verzonden",
    "aan",
    "onderwerp",
    # sv / da / nb
    "skickat",
    "till",
    "ämne",
    "sendt",
    "til",
    "emne",
    "dato",
    # fi
    "lähetetty",
    "vastaanottaja",
    "aihe",
    "päivämäärä",
    # pl / cs
    "wysłano",
    "wysłane",
    "do",
    "temat",
    "odesláno",
    "komu",
    "předmět",
    "datum",
    # ru / uk
    "отправлено",
    "дата",
    "кому",
    "тема",
    "надіслано",
    # tr / hu / el / ro
    "gönderildi",
    "tarih",
    "kime",
    "konu",
    "elküldve",
    "dátum",
    "címzett",
    "tárgy",
    "στάλθηκε",
    "προς",
    "θέμα",
    "trimis",
    "către",
    "subiect",
    # ja / zh / ko
    "送信日時",
    "日付",
    "날짜",
    "宛先",
    "件名",
    "发送时间",
    "日期",
    "收件人",
    "主题",
    "寄件日期",
    "收件者",
    "主旨",
    "傳送時間",
    "보낸 날짜",
    "받는 사람",
    "제목",
)
_LABEL_LANG = {
    "from": "en",
    "von": "de",
    "de": "fr",
    "van": "nl",
    "da": "it",
    "från": "sv",
    "fra": "da",
    "lähettäjä": "fi",
    "od": "pl",
    "от": "ru",
    "kimden": "tr",
    "feladó": "hu",
    "από": "el",
    "від": "uk",
    "de la": "ro",
    "差出人": "ja",
    "发件人": "zh",
    "寄件者": "zh",
    "寄件人": "zh",
    "보낸 사람": "ko",
    "보낸사람": "ko",
}


_SUBJECT_LANG = {
    "objet": "fr",
    "asunto": "es",
    "assunto": "pt",
    "assumpte": "ca",
    "temat": "pl",
    "předmět": "cs",
}


def _label_re(labels: tuple[str, ...]) -> str:
    ordered = sorted(set(labels), key=len, reverse=True)
    return "|".join(re.escape(label) for label in ordered)


_FROM_LINE = re.compile(rf"^(?P<label>{_label_re(_FROM_LABELS)})\s?[:：]", re.IGNORECASE)
_NEXT_LINE = re.compile(rf"^(?:{_label_re(_NEXT_LABELS)})\s?[:：]", re.IGNORECASE)
# html2text can merge a header block onto one line: "From: a Sent: b To: c Subject: d".
_NEXT_INLINE = re.compile(rf"\s(?:{_label_re(_NEXT_LABELS)})\s?[:：]\s", re.IGNORECASE)

# "-----Original Message-----" and its translations (Outlook, Thunderbird, Samsung, Yahoo).
_ORIGINAL_PHRASES = (
    ("en", "original message"),
    ("de", "ursprüngliche nachricht"),
    ("de", "originalnachricht"),
    ("fr", "message d'origine"),
    ("fr", "message original"),
    ("es", "mensaje original"),
    ("it", "messaggio originale"),
    ("nl", "oorspronkelijk bericht"),
    ("nl", "origineel bericht"),
    ("pt", "mensagem original"),
    ("ca", "missatge original"),
    ("sv", "ursprungligt meddelande"),
    ("sv", "originalmeddelande"),
    ("da", "oprindelig meddelelse"),
    ("da", "original meddelelse"),
    ("da", "oprindelig besked"),
    ("da", "original besked"),
    ("nb", "opprinnelig melding"),
    ("nb", "original melding"),
    ("fi", "alkuperäinen viesti"),
    ("pl", "wiadomość oryginalna"),
    ("pl", "oryginalna wiadomość"),
    ("cs", "původní zpráva"),
    ("ru", "исходное сообщение"),
    ("ru", "оригинальное сообщение"),
    ("uk", "початкове повідомлення"),
    ("tr", "orijinal mesaj"),
    ("tr", "özgün ileti"),
    ("hu", "eredeti üzenet"),
    ("el", "αρχικό μήνυμα"),
    ("ja", "元のメッセージ"),
    ("ja", "オリジナル メッセージ"),
    ("zh", "原始邮件"),
    ("zh", "原始郵件"),
    ("ko", "원본 메시지"),
    ("ko", "원래 메시지"),
)
_FORWARD_PHRASES = (
    ("en", "forwarded message"),
    ("en", "begin forwarded message"),
    ("de", "weitergeleitete nachricht"),
    ("de", "anfang der weitergeleiteten nachricht"),
    ("de", "anfang der weitergeleiteten e-mail"),
    ("fr", "message transféré"),
    ("fr", "début du message réexpédié"),
    ("fr", "début du message transféré"),
    ("es", "mensaje reenviado"),
    ("es", "inicio del mensaje reenviado"),
    ("it", "messaggio inoltrato"),
    ("it", "inizio messaggio inoltrato"),
    ("nl", "doorgestuurd bericht"),
    ("nl", "begin doorgestuurd bericht"),
    ("pt", "mensagem encaminhada"),
    ("pt", "início da mensagem reencaminhada"),
    ("pt", "mensagem reencaminhada"),
    ("ca", "missatge reenviat"),
    ("sv", "vidarebefordrat meddelande"),
    ("sv", "vidarebefordrat brev"),
    ("da", "videresendt meddelelse"),
    ("da", "videresendt besked"),
    ("nb", "videresendt melding"),
    ("fi", "välitetty viesti"),
    ("pl", "wiadomość przekazana dalej"),
    ("pl", "przekazana wiadomość"),
    ("pl", "początek przekazywanej wiadomości"),
    ("fi", "välitetty viesti alkaa"),
    ("ru", "начало переадресованного сообщения"),
    ("ca", "inici del missatge reenviat"),
    ("en", "forwarded message follows"),
    ("cs", "přeposlaná zpráva"),
    ("cs", "začátek přeposílané zprávy"),
    ("ru", "пересылаемое сообщение"),
    ("ru", "пересланное сообщение"),
    ("uk", "переслане повідомлення"),
    ("tr", "iletilen ileti"),
    ("tr", "iletilmiş ileti"),
    ("hu", "továbbított üzenet"),
    ("el", "προωθημένο μήνυμα"),
    ("ja", "転送されたメッセージ"),
    ("ja", "転送メッセージ"),
    ("zh", "转发的邮件"),
    ("zh", "轉寄的郵件"),
    ("zh", "转发邮件"),
    ("ko", "전달된 메시지"),
    ("ko", "전달된 메일"),
)


def _phrase_line(phrases: tuple[tuple[str, str], ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(p) for p in sorted({p for _, p in phrases}, key=len)[::-1])
    return re.compile(
        rf"^[-_=~\s]{{0,40}}(?P<phrase>{alternatives})\s?[:：]?[-_=~\s]{{0,40}}$", re.IGNORECASE
    )


_ORIGINAL_LINE = _phrase_line(_ORIGINAL_PHRASES)
_FORWARD_LINE = _phrase_line(_FORWARD_PHRASES)
_PHRASE_LANG = {p: lang for lang, p in (*_ORIGINAL_PHRASES, *_FORWARD_PHRASES)}
_UNDERSCORES = re.compile(r"^_{10,}$")

# Subject prefixes of a forward, in the clients' languages.
_FORWARD_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:fw|fwd|wg|tr|rv|i|enc|doorst|vs|vb|pd|pf|pfw|tov|"
    r"пересл|переслать|转发|轉寄|転送|전달|ilt|İlt|προώθ)\s?[:：]",
    re.IGNORECASE,
)

_SIGNATURE_LINES = frozenset({"--", "-- ", "\\--", "\\-- ", "__", "—"})

# Device lines that start with these (Sent from my iPhone, Von meinem iPhone gesendet...).
_DEVICE_PREFIXES = (
    "sent from my ",
    "sent from ",
    "sent with ",
    "sent via ",
    "sent using ",
    "get outlook for ",
    "von meinem ",
    "gesendet von ",
    "gesendet mit ",
    "gesendet vom ",
    "envoyé de mon ",
    "envoyé depuis ",
    "envoyé à partir de ",
    "télécharger outlook pour ",
    "obtenir outlook pour ",
    "enviado desde ",
    "enviado do meu ",
    "enviado do ",
    "enviado de mi ",
    "obtener outlook para ",
    "obter o outlook para ",
    "inviato da ",
    "inviato dal ",
    "scarica outlook per ",
    "verzonden vanaf ",
    "verstuurd vanaf ",
    "verzonden met ",
    "enviat des del ",
    "enviat des de ",
    "skickat från ",
    "sendt fra ",
    "lähetetty ",
    "wysłane z ",
    "wysłano z ",
    "odesláno z ",
    "отправлено с ",
    "отправлено из ",
    "надіслано з ",
    "iphone'umdan ",
    "αποστολή από ",
    "trimis de pe ",
    "从我的",
    "發自我的",
    "发自我的",
    "寄件者為我的",
    "나의 ",
    "내 ",
)
# ... and the ones that end with a verb (Japanese, Korean, Turkish, German, Hungarian).
_DEVICE_SUFFIXES = (
    "gesendet",
    "gesendet.",
    "から送信",
    "에서 보냄",
    "gönderildi",
    "küldve",
    "küldve.",
    "发送",
    "傳送",
)
_DEVICE_WORDS = re.compile(
    r"iphon|ipad|ios|android|samsung|galaxy|mobile|phone|outlook|mail|typeapp|blackberry|"
    r"smartphone|handy|huawei|xiaomi|pixel|proton|yahoo|aol|gmail|appareil|dispositivo|"
    r"telefon|телефон|móvil|movil|cellulare|tablet|k-9|fairemail|spark|bluemail|windows|"
    r"モバイル|携帯|手机|手機|휴대폰|갤럭시",
    re.IGNORECASE,
)
_URL_IN_ANGLES = re.compile(r"<(?:https?:|mailto:)[^<>]{0,500}>")
_HTML_ESCAPE = re.compile(r"\\([-#*_.+!`\[\]()])")


@dataclass(frozen=True)
class _Start:
    """A quoted-history start found at line `index`."""

    index: int
    kind: str  # "attribution", "nested", "rest", "header", "forward"
    span: int  # how many lines the start itself takes
    language: str | None
    prefix: str = ""  # customer text before an attribution on the same line
    weak: bool = False  # an attribution naming neither an address nor a date ("Bob wrote:")


# --------------------------------------------------------------------------- line tests


@functools.lru_cache(maxsize=4096)
def _key(line: str) -> str:
    """A line as the rules compare it: start only, no emphasis, escapes or spaces around."""
    key = line[:_KEY_CHARS].strip().strip("*").strip()
    return _HTML_ESCAPE.sub(r"\1", key) if "\\" in key else key


def _is_quoted(line: str) -> bool:
    return line[:20].lstrip().startswith(">")


def _verb_language(text: str) -> str | None:
    for lang, verb in _CJK_VERBS:
        if verb in text:
            return lang
    match = _VERB_RE.search(text)
    if match is None:
        return None
    return next((lang for lang, value in match.groupdict().items() if value), "en")


def _script_language(text: str) -> str | None:
    for char in text:
        code = ord(char)
        if 0x3040 <= code <= 0x30FF:
            return "ja"
        if 0xAC00 <= code <= 0xD7AF:
            return "ko"
        if 0x0400 <= code <= 0x04FF:
            return "ru"
        if 0x0370 <= code <= 0x03FF:
            return "el"
    if any(0x4E00 <= ord(c) <= 0x9FFF for c in text):
        return "zh" if "年" not in text or "日(" not in text else "ja"
    return None


def _attribution(candidate: str, *, quote_follows: bool) -> str | None:
    """The language of an attribution line ("" when unknown), or None when it is not one.

    `candidate` is one line or a wrapped line joined to the next ones. A line naming an
    address or a date is an attribution on its own; a bare "Bob wrote:" only when quoted
    lines follow it.
    """
    text = candidate.strip().strip("*").strip()
    if text.startswith("--") and text.endswith("--"):
        # Zoho: "---- On Wed, 24 Feb 2021 14:02:50 +0530 john@example.com wrote ----"
        text = text.strip("- ") + ":"
    if len(text) < 6 or len(text) > 400 or not text.endswith((":", "：")):
        return None
    if text.startswith(">"):
        return None
    strong = bool(_EMAILISH.search(text)) or bool(_DIGIT.search(text))
    language = _verb_language(text)
    if language is not None:
        return language if (strong or quote_follows) else None
    # Verb-less forms: Gmail in Russian or Japanese, Apple Mail in Czech, Gmail's old
    # "2014-03-20 8:48 GMT+01:00 Name <addr>:".
    if _ADDRESS_COLON_END.search(text) and _DIGIT.search(text):
        return _script_language(text) or ""
    return None


def _same_line_attribution(line: str) -> tuple[str, str] | None:
    """(customer text, language) when a line ends with an attribution after the reply."""
    if len(line) > 600 or not line.rstrip().endswith((":", "：")):
        return None
    for match in _OPENERS.finditer(line):
        start = match.start(1)
        if start == 0 or not line[:start].strip():
            continue
        language = _attribution(line[start:], quote_follows=False)
        if language is not None and _VERB_RE.search(line[start:]):
            return line[:start].rstrip(), language
    return None


def _header_block(lines: list[str], index: int) -> str | None:
    """The language of an Outlook-style header block starting at `index`, else None."""
    key = _key(lines[index])
    match = _FROM_LINE.match(key)
    if match is None:
        return None
    language = _LABEL_LANG.get(match.group("label").lower(), "en")
    if len(_NEXT_INLINE.findall(key)) >= 2:
        return language
    seen = 0
    for line in lines[index + 1 : index + 7]:
        other = _key(line)
        label = _NEXT_LINE.match(other)
        if label:
            # "De:" and "Od:" are shared by several languages; the subject label tells them apart.
            name = label.group(0).rstrip(":： ").lower()
            language = _SUBJECT_LANG.get(name, language)
            seen += 1
        elif _FROM_LINE.match(other):
            break
    return language if seen >= 2 else None


def _phrase_language(match: re.Match[str]) -> str:
    return _PHRASE_LANG.get(match.group("phrase").lower(), "en")


def _next_nonblank(lines: list[str], index: int) -> int:
    while index < len(lines) and not lines[index].strip():
        index += 1
    return index


def _history_start(lines: list[str], index: int, forward_subject: bool) -> _Start | None:
    line = lines[index]
    key = _key(line)
    if not key:
        return None
    if len(key) < 30 and key[0] not in _STARTERS and ":" not in key and "：" not in key:
        # Too short to be the first half of a wrapped attribution, no colon, no separator:
        # only a bare "Original Message" or forward phrase line can start history here.
        if _FORWARD_LINE.match(key) or _ORIGINAL_LINE.match(key):
            return _history_start_slow(lines, index, forward_subject, line, key)
        return None
    return _history_start_slow(lines, index, forward_subject, line, key)


def _history_start_slow(
    lines: list[str], index: int, forward_subject: bool, line: str, key: str
) -> _Start | None:
    if key == QUOTE_NESTED:
        return _Start(index, "nested", 1, None)
    if key == QUOTE_REST:
        return _Start(index, "rest", 1, None)
    if _is_quoted(line):
        return None
    if len(key) < 120:
        forward = _FORWARD_LINE.match(key)
        if forward:
            return _Start(index, "forward", 1, _phrase_language(forward))
        original = _ORIGINAL_LINE.match(key)
        if original:
            kind = "forward" if forward_subject else "header"
            return _Start(index, kind, 1, _phrase_language(original))
        if _UNDERSCORES.match(key):
            following = _next_nonblank(lines, index + 1)
            if following < len(lines) and _header_block(lines, following) is not None:
                language = _header_block(lines, following)
                return _Start(index, "forward" if forward_subject else "header", 1, language)
    header = _header_block(lines, index)
    if header is not None:
        return _Start(index, "forward" if forward_subject else "header", 1, header)
    if len(line) < _KEY_CHARS:
        opener = _OPENERS.match(key)
        if opener is None or opener.start(1) > 0:
            same_line = _same_line_attribution(key)
            if same_line is not None:
                language = same_line[1] or None
                return _Start(index, "attribution", 1, language, prefix=same_line[0])
        # Clients wrap long attributions over two or three lines.
        joined = key
        for span in range(1, 4):
            if span > 1:
                extra = index + span - 1
                if extra >= len(lines) or not lines[extra].strip() or len(lines[extra]) > 300:
                    break
                # Only a long line that stops mid-sentence was wrapped by the client.
                previous = _key(lines[extra - 1])
                if _is_quoted(lines[extra]) or len(previous) < 30 or previous.endswith(_ENDS):
                    break
                joined = f"{joined} {_key(lines[extra])}"
            after = _next_nonblank(lines, index + span)
            quote_follows = after < len(lines) and (
                _is_quoted(lines[after]) or _key(lines[after]) == QUOTE_NESTED
            )
            language = _attribution(joined, quote_follows=quote_follows)
            if language is not None:
                weak = not (_EMAILISH.search(joined) or _DIGIT.search(joined))
                return _Start(index, "attribution", span, language or None, weak=weak)
            if joined.endswith((":", "：")):
                break
    return None


# --------------------------------------------------------------------------- signatures


def _is_device_line(line: str) -> bool:
    text = _URL_IN_ANGLES.sub("", _key(line)).strip()
    if not text or len(text) > 90:
        return False
    low = text.lower()
    prefix = next((p for p in _DEVICE_PREFIXES if low.startswith(p)), None)
    if prefix is not None and _device_rest(prefix, low[len(prefix) :].strip()):
        return True
    if low.endswith(_DEVICE_SUFFIXES) and len(low.split()) <= 6 and "," not in low:
        return bool(_DEVICE_WORDS.search(low))
    return False


def _device_rest(prefix: str, rest: str) -> bool:
    """Whether what follows "Sent from ..." names a device rather than going on a sentence."""
    # "Sent from my laptop, the error shows again." is a sentence, not a device.
    if not rest or "," in rest or "?" in rest or "!" in rest or ";" in rest:
        return False
    words = len(rest.split())
    if words > 7 or "." in rest.rstrip(".").replace("k-9", "").split(" with ")[0]:
        return bool(_DEVICE_WORDS.search(rest)) and rest.count(".") <= 2 and words <= 12
    return bool(_DEVICE_WORDS.search(rest)) or (
        prefix in ("sent from my ", "von meinem ", "envoyé de mon ") and words <= 3
    )


def _strip_signature(lines: list[str]) -> tuple[list[str], bool]:
    """Cut at a "-- " line and drop a trailing device line; True when something was cut."""
    cut = False
    for index, line in enumerate(lines):
        if _is_quoted(line):
            continue
        if line.rstrip("\n") in _SIGNATURE_LINES or line[:10].strip() in ("--", "\\--"):
            lines, cut = lines[:index], True
            break
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    if last >= 0 and _is_device_line(lines[last]):
        # Only a device line that closes the text and stands apart from it.
        before = last - 1
        if before < 0 or not lines[before].strip() or len(lines[last]) < 60:
            lines, cut = lines[:last], True
    return lines, cut


# --------------------------------------------------------------------------- extraction


def _trim_blank(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _context(quote: list[str]) -> list[str]:
    """The last few quoted lines above an answer: enough to see what it answers."""
    quote = [line for line in _trim_blank(quote) if line.strip().strip(">").strip()]
    return quote[-_CONTEXT_LINES:]


def _answers_below(lines: list[str], nested: bool) -> list[str]:
    """Bottom-posted and inline answers in the history below an attribution.

    Returns the kept lines: each answer after at most a short quote. `nested` means the
    history is an HTML quote container, which ends at its end mark; inside it, unquoted lines
    before the first quoted one are the attribution (or a quote without ">"), later ones are
    the customer's inline answers. Below a plain attribution, unquoted lines before any quoted
    one are unquoted history: nothing of it is kept.
    """
    kept: list[str] = []
    quote: list[str] = []
    answer: list[str] = []
    inside = nested
    seen_quote = False

    def flush() -> None:
        body = _trim_blank(answer)
        if body:
            if kept:
                kept.append("")
            kept.extend(_context(quote))
            kept.extend(body)
            quote.clear()
        answer.clear()

    for index, line in enumerate(lines):
        key = _key(line)
        if key == QUOTE_END:
            inside = False
            continue
        if key in (QUOTE_NESTED, QUOTE_REST):
            break
        if _is_quoted(line):
            flush()
            quote.append(line)
            seen_quote = True
            continue
        if not key:
            if answer:
                answer.append(line)
            continue
        if not seen_quote and (inside or not nested):
            if not nested:
                break
            continue
        if index < _MAX_SCAN_LINES and _history_start(lines, index, False) is not None:
            break
        answer.append(line)
    flush()
    return kept


def _find_start(lines: list[str], forward_subject: bool) -> _Start | None:
    for index in range(min(len(lines), _MAX_SCAN_LINES)):
        start = _history_start(lines, index, forward_subject)
        if start is not None:
            return start
    return None


def _cut_marker(lines: list[str], marker: str) -> tuple[list[str], bool]:
    core = marker.strip("#- \t").lower()
    if not core:
        return lines, False
    for index, line in enumerate(lines):
        if core not in line[:_KEY_CHARS].lower().replace("\\", ""):
            continue
        below = lines[index + 1 :]
        answered = any(
            line.strip() and not _is_quoted(line) and _key(line) not in _MARKS for line in below
        )
        if _is_quoted(line) and answered:
            # Bottom-posted under our quoted mail: the quote rules below keep the answer.
            return [*lines[:index], ">", *lines[index + 1 :]], False
        return lines[:index], True
    return lines, False


def extract(text: str, *, subject: str = "", marker: str = REPLY_MARKER) -> Extraction:
    """The customer's new text in `text`, with the kind of cut and the matched language.

    `text` may carry the marks `mark_html_quotes` put into HTML before its conversion.
    `subject` tells a forward ("Fwd:", "WG:", "TR:"...) whose header block must be kept.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    original = strip_marks(text)
    lines = text.split("\n")
    lines, marker_cut = _cut_marker(lines, marker)
    if marker_cut:
        # The attribution above our quoted mail ("On Mon, Agnes wrote:") goes with it.
        lines = _drop_trailing_attribution(lines)
        if not strip_marks("\n".join(lines)).strip():
            return Extraction("", Cut.QUOTE, None)
    forward_subject = bool(_FORWARD_SUBJECT.match(subject or ""))
    start = _find_start(lines, forward_subject)
    cut = Cut.QUOTE if marker_cut else Cut.NONE
    language: str | None = None
    if start is not None and start.kind != "forward":
        language = start.language
        above = _trim_blank(lines[: start.index])
        if start.prefix:
            above = [*above, start.prefix]
        if start.kind in ("rest", "header"):
            body = above
            cut = Cut.HEADER if start.kind == "header" else Cut.QUOTE
        else:
            below = _answers_below(lines[start.index + start.span :], start.kind == "nested")
            if below and start.weak:
                # "My colleague wrote:" may be the customer's own words: keep it with the
                # answers it introduces.
                below = [*lines[start.index : start.index + start.span], *below]
            body = [*above, *([""] if above and below else []), *below]
            cut = Cut.QUOTE
    elif start is not None:
        language = start.language
        body = [line for line in lines if _key(line) not in _MARKS]
    else:
        body = lines
    body = [line for line in body if _key(line) not in _MARKS]
    if start is None:
        # Quoted lines that end the text are history (inline answers keep theirs), unless
        # they hold a forwarded message.
        trimmed = _trim_blank(body)
        end = len(trimmed)
        while end > 0 and (_is_quoted(trimmed[end - 1]) or not trimmed[end - 1].strip()):
            end -= 1
        forwarded = any(
            _FORWARD_LINE.match(_key(line.lstrip(" >"))) for line in trimmed[end : end + 5]
        )
        if 0 < end < len(trimmed) and not forwarded:
            cut = Cut.QUOTE
            body = trimmed[:end]
            body = _drop_trailing_attribution(body)
    if start is None or start.kind != "forward":
        body, signed = _strip_signature(body)
        if signed and cut is Cut.NONE:
            cut = Cut.SIGNATURE
    reply = "\n".join(_trim_blank([line.rstrip() for line in body]))
    if not reply.strip():
        whole = original.strip("\n").rstrip()
        return Extraction(whole, Cut.NONE, language)
    return Extraction(reply, cut, language)


def _drop_trailing_attribution(body: list[str]) -> list[str]:
    """An attribution left above trailing quoted lines that were removed."""
    trimmed = _trim_blank(body)
    if trimmed and _attribution(_key(trimmed[-1]), quote_follows=True) is not None:
        return trimmed[:-1]
    return trimmed


def extract_reply(text: str, *, subject: str = "", marker: str = REPLY_MARKER) -> str:
    """Only what the customer newly wrote (see `extract`)."""
    return extract(text, subject=subject, marker=marker).reply


def strip_marks(text: str) -> str:
    """The text without the quote-container marks (what the customer's mail says)."""
    if "\ue000" not in text:
        return text
    kept = [line for line in text.split("\n") if _key(line) not in _MARKS]
    return "\n".join(kept)


# --------------------------------------------------------------------------- HTML structure

# Quote containers as the clients write them: (attribute text, how far the history runs).
# "nested": the element holds the quote and ends; "rest": history runs to the end of the body.
_CONTAINERS: tuple[tuple[str, str], ...] = (
    ("gmail_quote", "nested"),  # Gmail: <div class="gmail_quote">
    ("moz-cite-prefix", "cite-prefix"),  # Thunderbird: prefix div + <blockquote type="cite">
    ('type="cite"', "nested"),  # Apple Mail, Thunderbird: <blockquote type="cite">
    ("type=cite", "nested"),
    ("yahoo_quoted", "nested"),  # Yahoo: <div class="yahoo_quoted">
    ("protonmail_quote", "nested"),  # Proton Mail
    ("zmail_extra", "nested"),  # Zoho
    ("divrplyfwdmsg", "rest"),  # Outlook on the web / new Outlook: <div id="divRplyFwdMsg">
    ("appendonsend", "rest"),  # Outlook on the web: <div id="appendonsend">
    ("olk_src_body_section", "rest"),  # Outlook for Mac: <div id="OLK_SRC_BODY_SECTION">
    ("mail-editor-reference-message-container", "rest"),  # Outlook mobile
    ("ms-outlook-mobile-reference-message", "rest"),
    ("stopspelling", "rest"),  # Hotmail / Windows Live: <hr id="stopSpelling">
)
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]{0,15})\b[^<>]{0,4000}>")
_TAG_STRIP = re.compile(r"<[^<>]{0,4000}>")
_HR = re.compile(r"<hr\b[^<>]{0,2000}>", re.IGNORECASE)
_MAX_SCAN = 2_000_000
_MAX_LOOKS = 50


def _tag_start(lower: str, position: int) -> int | None:
    """The '<' of the tag whose attributes hold `position`, or None when it is in text."""
    opening = lower.rfind("<", max(0, position - 4000), position)
    if opening < 0 or lower.find(">", opening, position) >= 0:
        return None
    return opening


def _element_end(markup: str, start: int) -> int:
    """The end of the element opened at `start` (its matching close tag), else len(markup)."""
    first = _TAG.match(markup, start)
    if first is None:
        return len(markup)
    name = first.group(2).lower()
    depth = 0
    for match in _TAG.finditer(markup, start):
        if match.group(2).lower() != name or match.group(0).endswith("/>"):
            continue
        depth += -1 if match.group(1) else 1
        if depth == 0:
            return match.end()
    return len(markup)


def _hr_before_header(markup: str, lower: str) -> int | None:
    """An <hr> followed by an Outlook-style header block ("From: ... Sent: ...")."""
    for count, match in enumerate(_HR.finditer(lower)):
        if count >= _MAX_LOOKS:
            break
        following = _TAG_STRIP.sub("\n", markup[match.end() : match.end() + 3000])
        lines = [line.strip() for line in following.split("\n") if line.strip()]
        for index in range(min(len(lines), 3)):
            if _header_block(lines, index) is not None:
                return match.start()
    return None


def mark_html_quotes(markup: str) -> str:
    """Markup with the client's first quote container marked for `extract`, or unchanged.

    The marks are paragraphs holding `QUOTE_NESTED`/`QUOTE_REST` (and `QUOTE_END` after a
    nested container) that survive conversion to text. A forwarded message's container is
    left alone: its body is what the customer wants to show.
    """
    if len(markup) > _MAX_SCAN:
        return markup
    lower = markup.lower()
    best: tuple[int, str] | None = None
    for needle, kind in _CONTAINERS:
        position = lower.find(needle)
        # A needle in the text rather than in a tag: look a little further, not forever.
        for _ in range(_MAX_LOOKS):
            if position < 0:
                break
            tag = _tag_start(lower, position)
            if tag is not None:
                if best is None or tag < best[0]:
                    best = (tag, kind)
                break
            position = lower.find(needle, position + 1)
    hr = _hr_before_header(markup, lower)
    if hr is not None and (best is None or hr < best[0]):
        best = (hr, "rest")
    if best is None:
        return markup
    start, kind = best
    head = html.unescape(_TAG_STRIP.sub("\n", markup[start : start + 3000]))
    head_lines = [line for line in head.split("\n") if line.strip()]
    if any(_FORWARD_LINE.match(_key(line)) for line in head_lines[:3]):
        return markup
    if kind == "rest":
        return f"{markup[:start]}<p>{QUOTE_REST}</p>{markup[start:]}"
    end = _element_end(markup, start)
    if kind == "cite-prefix":
        following = lower.find("<blockquote", end)
        if 0 <= following and not _TAG_STRIP.sub("", markup[end:following]).strip():
            end = _element_end(markup, following)
    return (
        f"{markup[:start]}<p>{QUOTE_NESTED}</p>{markup[start:end]}<p>{QUOTE_END}</p>{markup[end:]}"
    )
