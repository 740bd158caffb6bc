"""Child process for the SQLite pressure tests: write outbox rows in many small transactions."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from bot.db import make_engine, make_sessionmaker
from models.outbox import SLACK, enqueue, slack_call
from models.tables import TicketEvent


async def main(url: str, writer: str, count: int) -> None:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    for i in range(count):
        async with sessions() as session, session.begin():
            at = datetime.now(UTC)
            await enqueue(
                session=session,
                workspace_id=1,
                kind=SLACK,
                key=f"{writer}:{i}",
                payload=slack_call("chat.postMessage", channel="C1", text="x" * 200),
                at=at,
                ordering_key=f"ticket:{i % 7}",
            )
            session.add(TicketEvent(workspace_id=1, ticket_id=1, kind="note", body="y" * 500))
        if i == 0:
            print("writing", flush=True)
    await engine.dispose()
    print(f"{writer} done", flush=True)


if __name__ == "__main__":
    count = int(sys.argv[3])
    asyncio.run(main(sys.argv[1], sys.argv[2], count))
