"""A de-duplicating, rate-friendly work queue of TFTrainingJob keys (what controller-runtime
calls a workqueue), on asyncio.

Many events about one job (its pods starting one by one) collapse into one pending reconcile;
a key is never reconciled by two workers at once (an event arriving meanwhile marks it dirty
and it runs again afterwards); `add_after` schedules a level-based resync, keeping only the
earliest one requested. Urgent keys (a job never reconciled) go before the others, so a
new job's workers are not created only after every pod event of hundreds of running jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        # (priority, sequence, key); entries whose priority no longer matches _pending are
        # stale duplicates left by a re-prioritisation and are skipped.
        self._queue: asyncio.PriorityQueue[tuple[int, int, K]] = asyncio.PriorityQueue()
        self._pending: dict[K, int] = {}
        self._sequence = 0
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def scheduled(self) -> int:
        """Keys waiting on a timer (add_after)."""
        return len(self._timers)

    def add(self, key: K, urgent: bool = False) -> None:
        priority = 0 if urgent else 1
        if key in self._active:
            self._dirty.add(key)
        elif priority < self._pending.get(key, 2):
            self._pending[key] = priority
            self._sequence += 1
            self._queue.put_nowait((priority, self._sequence, key))

    def add_after(self, key: K, delay: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, delay)
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def forget(self, key: K) -> None:
        """The object is gone: drop its resync timer."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    async def get(self) -> K:
        while True:
            priority, _, key = await self._queue.get()
            if self._pending.get(key) == priority:
                break
        del self._pending[key]
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
