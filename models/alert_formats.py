"""Monitoring alerts as plain values: request authentication, the three accepted body formats,
severity -> priority, and the storm rule. Pure: no I/O, no clock.

Formats (told apart by shape):
- Prometheus Alertmanager webhook (version 4): `{"version": "4", "alerts": [{"status",
  "labels", "annotations", "fingerprint", "startsAt", "endsAt", "generatorURL"}, ...]}`;
- Grafana alerting webhook: the same `alerts[]` plus `orgId`, `state`, `title`, `message` at the
  top and `values`/`valueString`/`dashboardURL`/`panelURL`/`silenceURL` per alert;
- generic JSON, one alert: `{"title", "severity", "customer", "fingerprint", "status":
  "firing"|"resolved", "details", "url"}` (only `title` is required).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.tables import Priority

FIRING = "firing"
RESOLVED = "resolved"
ALERTMANAGER = "alertmanager"
GRAFANA = "grafana"
GENERIC = "generic"

SIGNATURE_HEADER = "X-Docket-Signature"  # "sha256=<hex HMAC-SHA256 of the body>"
GRAFANA_SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"  # hex HMAC-SHA256 of the body
MAX_ALERTS_PER_BODY = 5000
FINGERPRINT_MAX = 200
TITLE_MAX = 300
DETAILS_MAX = 4000

DEFAULT_SEVERITY_MAP: dict[str, str] = {
    "critical": Priority.URGENT,
    "fatal": Priority.URGENT,
    "emergency": Priority.URGENT,
    "page": Priority.URGENT,
    "p1": Priority.URGENT,
    "high": Priority.HIGH,
    "error": Priority.HIGH,
    "major": Priority.HIGH,
    "p2": Priority.HIGH,
    "warning": Priority.NORMAL,
    "warn": Priority.NORMAL,
    "medium": Priority.NORMAL,
    "p3": Priority.NORMAL,
    "minor": Priority.LOW,
    "low": Priority.LOW,
    "info": Priority.LOW,
    "informational": Priority.LOW,
    "none": Priority.LOW,
    "p4": Priority.LOW,
}
PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}


class AlertFormatError(ValueError):
    """A body Docket cannot read; the message is the reason given back with the 400."""


@dataclass(frozen=True)
class Alert:
    """One alert, whatever format it came in."""

    fingerprint: str
    status: str
    title: str
    severity: str = ""
    customer: str | None = None
    details: str = ""
    url: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


# -- authentication --------------------------------------------------------------------------


def secret_hash(secret: str) -> str:
    """What is compared for a bearer token (the SHA-256 of the secret, hex)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def body_hash(body: bytes) -> str:
    """The de-duplication key of a delivery: identical bodies are one delivery."""
    return hashlib.sha256(body).hexdigest()


def sign(secret: str, body: bytes) -> str:
    """The `X-Docket-Signature` value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_auth(
    *, secret: str, stored_hash: str, body: bytes, headers: Mapping[str, str]
) -> str | None:
    """None when the request carries the source's secret, else why it is refused.

    Accepted: `Authorization: Bearer <secret>`, or an HMAC-SHA256 of the raw body keyed with
    the secret in `X-Docket-Signature: sha256=<hex>` (or Grafana's
    `X-Grafana-Alerting-Signature: <hex>`). Every comparison is constant-time.
    """
    auth = headers.get("Authorization") or ""
    scheme, _, token = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        given = secret_hash(token.strip())
        return None if hmac.compare_digest(given, stored_hash) else "bad bearer token"
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    signature = headers.get(SIGNATURE_HEADER)
    if signature:
        value = signature.strip()
        value = value[7:] if value.lower().startswith("sha256=") else value
        ok = hmac.compare_digest(expected.encode(), value.lower().encode("utf-8", "replace"))
        return None if ok else "bad signature"
    grafana = headers.get(GRAFANA_SIGNATURE_HEADER)
    if grafana:
        ok = hmac.compare_digest(
            expected.encode(), grafana.strip().lower().encode("utf-8", "replace")
        )
        return None if ok else "bad signature"
    return "missing credentials"


# -- parsing ----------------------------------------------------------------------------------


def _text(value: Any, limit: int) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())
    return text.strip()[:limit]


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AlertFormatError(f"{what} must be an object")
    return {str(k)[:200]: _text(v, 1000) for k, v in value.items()}


def _fingerprint(given: Any, basis: Mapping[str, str]) -> str:
    text = _text(given, 1000) if given not in (None, "") else ""
    if not text or len(text) > FINGERPRINT_MAX:
        source = text or json.dumps(dict(sorted(basis.items())), sort_keys=True)
        return "h:" + hashlib.sha256(source.encode()).hexdigest()[:40]
    return text


def _status(value: Any, where: str) -> str:
    status = str(value or FIRING).strip().lower()
    if status not in (FIRING, RESOLVED):
        raise AlertFormatError(f"{where}: status must be 'firing' or 'resolved'")
    return status


def detect_format(data: Mapping[str, Any]) -> str:
    """Which of the three formats a decoded body is (AlertFormatError when none)."""
    if "alerts" in data:
        alerts = data["alerts"]
        if not isinstance(alerts, list):
            raise AlertFormatError("'alerts' must be a list")
        grafana_keys = {"valueString", "values", "dashboardURL", "panelURL", "silenceURL"}
        if "orgId" in data or any(isinstance(a, dict) and grafana_keys & set(a) for a in alerts):
            return GRAFANA
        return ALERTMANAGER
    if "title" in data:
        return GENERIC
    raise AlertFormatError(
        "unknown format: expected an Alertmanager or Grafana body ('alerts' list) "
        "or a generic alert ('title')"
    )


def _from_list(data: Mapping[str, Any], kind: str, customer_label: str) -> list[Alert]:
    raw = data["alerts"]
    if not raw:
        raise AlertFormatError("'alerts' is empty")
    if len(raw) > MAX_ALERTS_PER_BODY:
        raise AlertFormatError(f"more than {MAX_ALERTS_PER_BODY} alerts in one body")
    alerts = []
    for i, item in enumerate(raw):
        where = f"alerts[{i}]"
        if not isinstance(item, dict):
            raise AlertFormatError(f"{where} must be an object")
        labels = _str_map(item.get("labels"), f"{where}.labels")
        annotations = _str_map(item.get("annotations"), f"{where}.annotations")
        title = (
            annotations.get("summary")
            or labels.get("alertname")
            or (_text(data.get("title"), TITLE_MAX) if kind == GRAFANA else "")
            or "Alert"
        )
        if labels.get("alertname") and annotations.get("summary"):
            title = f"{labels['alertname']}: {annotations['summary']}"
        parts = [annotations.get("description", "")]
        if kind == GRAFANA and item.get("valueString"):
            parts.append(f"Values: {_text(item.get('valueString'), 1000)}")
        url = item.get("panelURL") or item.get("dashboardURL") or item.get("generatorURL")
        alerts.append(
            Alert(
                fingerprint=_fingerprint(item.get("fingerprint"), labels),
                status=_status(item.get("status"), where),
                title=_text(title, TITLE_MAX),
                severity=(labels.get("severity") or labels.get("priority") or "").lower()[:32],
                customer=labels.get(customer_label) or None,
                details=_text("\n".join(p for p in parts if p), DETAILS_MAX),
                url=_text(url, 500) or None,
                labels=labels,
            )
        )
    return alerts


def _generic(data: Mapping[str, Any]) -> list[Alert]:
    title = _text(data.get("title"), TITLE_MAX)
    if not title:
        raise AlertFormatError("'title' must not be empty")
    customer = _text(data.get("customer"), 200) or None
    basis = {"title": title, "customer": customer or ""}
    return [
        Alert(
            fingerprint=_fingerprint(data.get("fingerprint"), basis),
            status=_status(data.get("status"), "body"),
            title=title,
            severity=_text(data.get("severity"), 32).lower(),
            customer=customer,
            details=_text(data.get("details"), DETAILS_MAX),
            url=_text(data.get("url"), 500) or None,
        )
    ]


def decode_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body (AlertFormatError with the reason otherwise)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AlertFormatError(f"body is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise AlertFormatError("body must be a JSON object")
    return data


def parse_alerts(data: Mapping[str, Any], *, customer_label: str = "customer") -> list[Alert]:
    """Every alert in a decoded body (AlertFormatError with the reason when it is not one)."""
    kind = detect_format(data)
    if kind == GENERIC:
        return _generic(data)
    return _from_list(data, kind, customer_label)


# -- rules ------------------------------------------------------------------------------------


def priority_for(severity: str, overrides: Mapping[str, Any] | None = None) -> Priority:
    """The ticket priority of a severity: the source's own mapping first, then the defaults;
    an unknown severity is normal."""
    key = severity.strip().lower()
    for table in (overrides or {}, DEFAULT_SEVERITY_MAP):
        value = table.get(key)
        if value is not None:
            try:
                return Priority(str(value))
            except ValueError:
                continue
    return Priority.NORMAL


def rises(before: str, after: str) -> bool:
    """Whether priority `after` is more urgent than `before`."""
    return PRIORITY_RANK.get(Priority(after), 1) > PRIORITY_RANK.get(Priority(before), 1)


def is_storm(*, recent_new: int, incoming_new: int, per_minute: int) -> bool:
    """New alerts fold into a storm ticket when the last minute's new alerts, with this
    delivery's, exceed the source's limit."""
    return recent_new + incoming_new > per_minute
