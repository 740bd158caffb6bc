"""Alert bodies, authentication and the severity and storm rules (pure, table-driven)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from models.alert_formats import (
    ALERTMANAGER,
    GENERIC,
    GRAFANA,
    AlertFormatError,
    check_auth,
    decode_body,
    detect_format,
    is_storm,
    parse_alerts,
    priority_for,
    rises,
    secret_hash,
    sign,
)
from tests.alerts.support import am_alert, am_payload, grafana_payload

SECRET = "s3cret-s3cret-s3cret"
BODY = b'{"title": "x"}'


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Authorization": f"Bearer {SECRET}"}, None),
        ({"Authorization": f"bearer  {SECRET} "}, None),
        ({"Authorization": "Bearer wrong"}, "bad bearer token"),
        ({"X-Docket-Signature": sign(SECRET, BODY)}, None),
        ({"X-Docket-Signature": sign(SECRET, BODY)[7:]}, None),
        ({"X-Docket-Signature": sign(SECRET, BODY + b" ")}, "bad signature"),
        ({"X-Docket-Signature": sign("other-secret-value", BODY)}, "bad signature"),
        ({"X-Docket-Signature": "sha256=é"}, "bad signature"),
        ({"X-Grafana-Alerting-Signature": sign(SECRET, BODY)[7:]}, None),
        ({"X-Grafana-Alerting-Signature": "00"}, "bad signature"),
        ({"Authorization": "Basic abc"}, "missing credentials"),
        ({}, "missing credentials"),
    ],
)
def test_check_auth(headers: dict[str, str], reason: str | None) -> None:
    got = check_auth(secret=SECRET, stored_hash=secret_hash(SECRET), body=BODY, headers=headers)
    assert got == reason


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (am_payload([am_alert("A", "Acme")]), ALERTMANAGER),
        (grafana_payload("Acme"), GRAFANA),
        ({"alerts": [{"status": "firing", "labels": {}, "panelURL": ""}]}, GRAFANA),
        ({"title": "Backup failed"}, GENERIC),
    ],
)
def test_detect_format(body: dict[str, Any], kind: str) -> None:
    assert detect_format(body) == kind


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"foo": 1}', "unknown format"),
        (b'{"alerts": {}}', "must be a list"),
        (b'{"alerts": []}', "is empty"),
        (b'{"alerts": [1]}', "alerts[0] must be an object"),
        (b'{"alerts": [{"status": "boom"}]}', "status must be"),
        (b'{"alerts": [{"labels": []}]}', "labels must be an object"),
        (b'{"title": ""}', "must not be empty"),
        (b'{"title": "x", "status": "ok"}', "status must be"),
    ],
)
def test_malformed_bodies_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(AlertFormatError, match=re.escape(reason)):
        parse_alerts(decode_body(raw))


def test_alertmanager_alerts_carry_customer_severity_fingerprint_and_link() -> None:
    body = am_payload(
        [am_alert("DiskFull", "Acme", severity="critical"), am_alert("Up", None, status="resolved")]
    )
    first, second = parse_alerts(body)
    assert (first.fingerprint, first.status, first.severity, first.customer) == (
        "fp-DiskFull-host-1",
        "firing",
        "critical",
        "Acme",
    )
    assert first.title == "DiskFull: DiskFull on host-1"
    assert first.url and first.url.startswith("http://prometheus")
    assert (second.status, second.customer) == ("resolved", None)


def test_customer_label_is_per_source_and_missing_fingerprints_are_stable() -> None:
    alert = {"status": "firing", "labels": {"alertname": "A", "tenant": "Globex"}}
    [one] = parse_alerts({"alerts": [alert]}, customer_label="tenant")
    [two] = parse_alerts({"alerts": [dict(alert)]}, customer_label="tenant")
    assert one.customer == "Globex"
    assert one.fingerprint == two.fingerprint and one.fingerprint.startswith("h:")


def test_grafana_values_and_panel_link_are_kept() -> None:
    [alert] = parse_alerts(grafana_payload("Acme"))
    assert "44.2" in alert.details and alert.url and "viewPanel" in alert.url


def test_generic_details_may_be_structured_and_control_characters_are_dropped() -> None:
    body = {"title": "Backup\x00 failed", "details": {"exit": 2}, "customer": "Acme"}
    [alert] = parse_alerts(json.loads(json.dumps(body)))
    assert alert.title == "Backup failed"
    assert json.loads(alert.details) == {"exit": 2}
    assert alert.status == "firing" and alert.fingerprint.startswith("h:")


@pytest.mark.parametrize(
    ("severity", "overrides", "priority"),
    [
        ("critical", None, "urgent"),
        ("CRITICAL ", None, "urgent"),
        ("warning", None, "normal"),
        ("info", None, "low"),
        ("error", None, "high"),
        ("", None, "normal"),
        ("weird", None, "normal"),
        ("warning", {"warning": "high"}, "high"),
        ("sev1", {"sev1": "urgent"}, "urgent"),
        ("info", {"info": "nonsense"}, "low"),
    ],
)
def test_priority_for(severity: str, overrides: dict[str, str] | None, priority: str) -> None:
    assert priority_for(severity, overrides) == priority


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [("low", "normal", True), ("urgent", "high", False), ("high", "high", False)],
)
def test_rises(before: str, after: str, expected: bool) -> None:
    assert rises(before, after) is expected


@pytest.mark.parametrize(
    ("recent", "incoming", "limit", "storm"),
    [(0, 20, 20, False), (0, 21, 20, True), (19, 1, 20, False), (20, 1, 20, True), (0, 2, 1, True)],
)
def test_is_storm(recent: int, incoming: int, limit: int, storm: bool) -> None:
    assert is_storm(recent_new=recent, incoming_new=incoming, per_minute=limit) is storm
