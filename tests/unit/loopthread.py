"""An asyncio server run on an event loop of its own in a thread, as the operator runs its loop:
for tests that talk to a real server over loopback from the test's own thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable


class LoopThread:
    """Runs `start()` on a new loop in a thread, serves until stop(), then runs `finish()`."""

    def __init__(
        self, start: Callable[[], Awaitable[object]], finish: Callable[[], Awaitable[object]]
    ) -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(start())
            started.set()
            self.loop.run_forever()
            self.loop.run_until_complete(finish())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(30), "the server did not start"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
