"""tftj.operator.workqueue: de-duplication, dirty keys run again, urgent keys first."""

from __future__ import annotations

import asyncio

from tftj.operator.workqueue import WorkQueue


def test_work_queue_deduplicates_and_reruns_dirty_keys() -> None:
    async def scenario() -> list[object]:
        q = WorkQueue()
        for key in ("a", "a", "b"):
            q.add(key)
        seen = [await q.get(), await q.get()]
        q.add("a")  # while "a" is being worked on
        q.done("a")
        q.done("b")
        seen.append(await asyncio.wait_for(q.get(), 1))
        q.done("a")
        q.add_after("c", 0.01)
        q.add_after("c", 10)  # the earliest request wins
        seen.append(await asyncio.wait_for(q.get(), 1))
        return seen

    assert asyncio.run(scenario()) == ["a", "b", "a", "c"]


def test_work_queue_serves_urgent_keys_first() -> None:
    async def scenario() -> list[object]:
        q = WorkQueue()
        for key in ("old-1", "old-2"):
            q.add(key)
        q.add("new", urgent=True)
        q.add("old-2", urgent=True)  # re-prioritised: served once, early
        seen = []
        for _ in range(3):
            key = await q.get()
            q.done(key)
            seen.append(key)
        assert len(q) == 0
        return seen

    assert asyncio.run(scenario()) == ["new", "old-2", "old-1"]
