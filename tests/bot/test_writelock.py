"""The SQLite writer lock: one holder, FIFO, urgent waiters first, cancellation-safe."""

from __future__ import annotations

import asyncio

from bot.writelock import WriterLock


async def test_urgent_waiters_go_first_and_order_is_kept() -> None:
    lock = WriterLock()
    order: list[str] = []
    gate = asyncio.Event()

    async def holder() -> None:
        async with lock.hold():
            await gate.wait()

    async def writer(name: str, urgent: bool) -> None:
        async with lock.hold(urgent=urgent):
            order.append(name)
            await asyncio.sleep(0)

    first = asyncio.ensure_future(holder())
    await asyncio.sleep(0)
    tasks = [
        asyncio.ensure_future(writer(name, urgent))
        for name, urgent in (("n1", False), ("u1", True), ("n2", False), ("u2", True))
    ]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *tasks)
    assert order == ["u1", "u2", "n1", "n2"]
    assert not lock.locked


async def test_a_cancelled_waiter_does_not_keep_the_lock() -> None:
    lock = WriterLock()
    gate = asyncio.Event()

    async def holder() -> None:
        async with lock.hold():
            await gate.wait()

    async def waiter() -> None:
        async with lock.hold():
            raise AssertionError("never granted")

    first = asyncio.ensure_future(holder())
    await asyncio.sleep(0)
    cancelled = asyncio.ensure_future(waiter())
    await asyncio.sleep(0)
    cancelled.cancel()
    gate.set()
    await first
    assert cancelled.cancelled() or isinstance(cancelled.exception(), asyncio.CancelledError)
    async with lock.hold(urgent=True):
        assert lock.locked
    assert not lock.locked
