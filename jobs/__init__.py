"""Scheduled and background work: outbox delivery, event processing, profitability, reports."""
