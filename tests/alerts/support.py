"""Alert payloads as monitoring systems send them, and helpers to post and wait."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlmodel import col, select

from bot.services import Services
from models.alert_formats import sign
from models.tables import AlertDelivery, OutboxMessage, OutboxStatus

AM_URL = "http://prometheus.provider.test:9090/graph?g0.expr=up"


def am_alert(
    name: str,
    customer: str | None,
    *,
    status: str = "firing",
    severity: str = "warning",
    fingerprint: str | None = None,
    instance: str = "host-1",
    description: str = "",
) -> dict[str, Any]:
    """One alert of an Alertmanager webhook (version 4)."""
    labels = {"alertname": name, "severity": severity, "instance": instance}
    if customer is not None:
        labels["customer"] = customer
    return {
        "status": status,
        "labels": labels,
        "annotations": {
            "summary": f"{name} on {instance}",
            "description": description or f"{name} is {status} on {instance}",
        },
        "startsAt": "2026-12-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-01T11:00:00Z",
        "generatorURL": AM_URL,
        "fingerprint": fingerprint or f"fp-{name}-{instance}",
    }


def am_payload(alerts: list[dict[str, Any]], *, status: str = "firing") -> dict[str, Any]:
    """An Alertmanager webhook body around `alerts`."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="x"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "docket",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.provider.test:9093",
        "alerts": alerts,
    }


def grafana_payload(customer: str, *, state: str = "alerting") -> dict[str, Any]:
    """A Grafana alerting webhook body with one alert (the documented shape)."""
    return {
        "receiver": "docket",
        "status": "firing",
        "orgId": 1,
        "state": state,
        "title": "[FIRING:1] High memory usage",
        "message": "High memory usage",
        "groupLabels": {"alertname": "High memory usage"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "https://grafana.provider.test/",
        "version": "1",
        "groupKey": "{}/{}:{}",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "High memory usage", "customer": customer},
                "annotations": {"description": "The system has high memory usage"},
                "startsAt": "2026-12-01T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "https://grafana.provider.test/alerting/1/edit",
                "fingerprint": "c6eadffa33fcdf37",
                "silenceURL": "https://grafana.provider.test/alerting/silence/new",
                "dashboardURL": "",
                "panelURL": "https://grafana.provider.test/d/abc?viewPanel=2",
                "values": {"B": 44.2, "C": 1},
                "valueString": "[ var='B' labels={} value=44.2 ]",
            }
        ],
    }


def encode(body: dict[str, Any] | bytes) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def headers_for(body: bytes, secret: str, mode: str = "bearer") -> dict[str, str]:
    """Request headers carrying `secret` as a bearer token or as an HMAC of the body."""
    headers = {"Content-Type": "application/json"}
    if mode == "bearer":
        headers["Authorization"] = f"Bearer {secret}"
    elif mode == "hmac":
        headers["X-Docket-Signature"] = sign(secret, body)
    return headers


async def post_alerts(
    base_url: str,
    body: dict[str, Any] | bytes,
    secret: str,
    *,
    source: str = "prom",
    mode: str = "bearer",
    http: aiohttp.ClientSession | None = None,
) -> tuple[int, Any]:
    """POST a body to the alert intake; returns the status and the decoded answer."""
    data = encode(body)
    own = http is None
    session = http or aiohttp.ClientSession()
    try:
        async with session.post(
            f"{base_url}/integrations/alerts/{source}",
            data=data,
            headers=headers_for(data, secret, mode),
        ) as resp:
            text = await resp.text()
            try:
                answer = json.loads(text)
            except ValueError:
                answer = text
            return resp.status, answer
    finally:
        if own:
            await session.close()


async def wait_until(predicate: Any, timeout: float = 20.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


async def deliveries(services: Services) -> list[AlertDelivery]:
    async with services.read() as session:
        rows = await session.exec(select(AlertDelivery).order_by(col(AlertDelivery.id)))
        return list(rows.all())


async def wait_processed(services: Services, timeout: float = 30.0) -> None:
    """Until no stored delivery is pending and the outbox has nothing left to send."""

    async def idle() -> bool:
        async with services.read() as session:
            pending = (
                await session.exec(
                    select(sa.func.count())
                    .select_from(AlertDelivery)
                    .where(AlertDelivery.status == "pending")
                )
            ).one()
            queued = (
                await session.exec(
                    select(sa.func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status == OutboxStatus.PENDING)
                )
            ).one()
        return int(pending) == 0 and int(queued) == 0

    await wait_until(idle, timeout)
