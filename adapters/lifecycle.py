"""Replies in progress, so that a shutdown can let them finish before it closes the connection; and
warnings that cannot flood the log."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator


class InFlight:
    """Counts the replies being worked on; `drain` waits until none is left (or a timeout).

    Once `closing` is set, new work is refused (`accepting` is False) while the old finishes.
    """

    def __init__(self) -> None:
        self.count = 0
        self.closing = False
        self._idle: asyncio.Event | None = None

    @property
    def accepting(self) -> bool:
        """Whether new messages should still be answered."""
        return not self.closing

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Around the work on one reply."""
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0 and self._idle is not None:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Stop accepting, then wait up to `timeout` seconds for the work in progress; True if it all finished."""
        self.closing = True
        if self.count == 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True


class RateLimitedLog:
    """At most one WARNING line every `every` seconds, whatever the rate of what it reports (junk on a
    public URL must not flood the logs); the text should carry a running count."""

    def __init__(self, log: logging.Logger, every: float = 10.0):
        self.log = log
        self.every = every
        self._last = float("-inf")

    def warn(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.log.warning("%s", text)
