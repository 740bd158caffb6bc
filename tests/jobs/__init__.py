"""Tests of background jobs: outbox, rate limiter, scheduler, reports."""
