import asyncio, time
from collections import Counter
from tests.jobs.outbox_support import *
from tests.jobs.test_outbox_e2e import svc  # noqa
from jobs.ratelimit import RateLimiter
from models.outbox import SLACK, enqueue, slack_call

async def test_dbg(svc, emulator):
    clock = ScaledTime(speed=600)
    svc.clock = clock.now
    async with svc.transaction() as session:
        for t in range(50):
            ticket = await make_ticket(session, svc.workspace_id, t + 1, card=("CTRIAGE", f"1700000000.{t:06d}"))
            for i in range(10):
                payload = slack_call("chat.postMessage", channel=f"U{t:03d}", text=f"T{t}#{i}")
                await enqueue(session=session, workspace_id=svc.workspace_id, kind=SLACK, key=f"n:{t}:{i}", payload=payload, at=clock.now(), ordering_key=f"ticket:{ticket.id}")
    await emulator.set_down(True)
    async with running_worker(svc, clock=clock, limiter=RateLimiter(clock=clock.monotonic)) as w:
        t0 = time.monotonic()
        await asyncio.sleep(1.0)
        print("counts", w.counts, "lanes", len(w._lanes), "waiting", len(w._waiting), "elapsed", time.monotonic()-t0)
        for rid, task in list(w._lanes.items())[:4]:
            print("LANE", rid); task.print_stack(limit=30)
        rs = await rows(svc)
        heads = [r for r in rs if r.idempotency_key.endswith(":0")]
        print(Counter(r.attempts for r in heads))
        print([(r.id, r.lease_owner, r.next_attempt_at.time(), r.attempts) for r in heads if r.attempts == 0][:5], clock.now().time())
        await emulator.set_down(False)
