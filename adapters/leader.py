"""A connection only one replica may hold at a time, held through a named lease in the store.

Discord without shards is one gateway session for the whole bot: two replicas connected at once
would both receive every event. So each replica asks the store for the lease (bot/store.py's
`lease`); the one that gets it connects and renews it every third of its time to live, the
others stand by and look again every second. A holder that dies (kill -9) stops renewing, and
a standby takes over once the lease has run out; one that stops cleanly gives it up at once.

A holder that cannot renew in time (the store unreachable, the process paused) lets go before
the lease runs out, and one that finds another holder (it was paused past the end) lets go at
once: the lease never has two holders, so two replicas are never both connected for long, and
what one of them might still answer in that moment the inbox's UNIQUE key answers once.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from adapters.lifecycle import RateLimitedLog
from bot.store import Store

log = logging.getLogger(__name__)

TTL = 30.0  # seconds a lease lasts unless renewed; a standby takes over this long after the holder died
POLL = 1.0  # seconds between a standby's looks at the lease (a read; it asks for the lease only when free)


class LeaseLost(Exception):
    """This replica no longer holds the lease: another one does, or it could not renew it in time."""


def replica_id() -> str:
    """This process among the replicas: host, pid and a random part (pids repeat across containers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def must_let_go(renewed_at: float, now: float, ttl: float, every: float) -> bool:
    """After a failed renewal: whether the next try would come too late, the lease having run out by then."""
    return now + every >= renewed_at + ttl


class Leader:
    """One replica's hold on the lease called `name`: `wait` for it, `keep` it, `release` it.

    Time is a parameter: `clock` is the wall clock the store compares leases with (shared by every
    host, so their clocks must agree to well within `ttl / 3`), `sleep` waits.
    """

    def __init__(self, store: Store, name: str, holder: str | None = None, *, ttl: float = TTL, poll: float = POLL,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep):
        self.store, self.name = store, name
        self.holder = holder or replica_id()
        self.ttl, self.poll = ttl, min(poll, ttl / 3)
        self.every = ttl / 3  # renew this often: two renewals may fail before the lease runs out
        self.clock, self.sleep = clock, sleep
        self.renewed_at: float | None = None  # when this replica last took or renewed it

    async def _call(self, method: Callable[..., object], *args: object) -> object:
        return await asyncio.to_thread(method, *args)

    async def take(self) -> bool:
        """One try: True if this replica holds the lease now (taken, or renewed)."""
        now = self.clock()
        if await self._call(self.store.lease, self.name, self.holder, now, self.ttl):
            self.renewed_at = now
            return True
        return False

    async def current(self) -> str | None:
        """Who holds the lease now (None: nobody, so the next `take` should get it)."""
        return await self._call(self.store.lease_holder, self.name, self.clock())  # type: ignore[return-value]

    async def wait(self, standing_by: Callable[[str], None] = lambda _: None) -> None:
        """Return once this replica holds the lease; `standing_by(holder)` is called once if another has it first.

        Looks every `poll` seconds; only a free lease is asked for, so standbys only read. A store
        error is logged and the next look tries again.
        """
        told = False
        warn = RateLimitedLog(log, every=30.0)
        while True:
            try:
                holder = await self.current()
                if holder in (None, self.holder) and await self.take():
                    return
                if holder is not None and not told:
                    told = True
                    standing_by(holder)
            except Exception as exc:  # the store is unreachable: stand by until it is back
                warn.warn(f"cannot read the {self.name} lease ({type(exc).__name__}); standing by until the store is back")
            await self.sleep(self.poll)

    async def keep(self) -> None:
        """Renew the lease every `ttl / 3` seconds while it is held; raises LeaseLost when it no longer is."""
        while True:
            await self.sleep(self.every)
            try:
                if await self.take():
                    continue
            except Exception as exc:
                now = self.clock()
                if self.renewed_at is not None and not must_let_go(self.renewed_at, now, self.ttl, self.every):
                    log.warning("cannot renew the %s lease (%s); trying again in %g s", self.name,
                                type(exc).__name__, self.every)
                    continue
                raise LeaseLost(f"could not renew the {self.name} lease before it ran out "
                                f"({type(exc).__name__})") from None
            holder = None
            try:
                holder = await self.current()
            except Exception:
                pass
            raise LeaseLost(f"replica {holder or 'another replica'} holds the {self.name} lease now")

    async def release(self) -> None:
        """Give the lease up (a no-op unless this replica holds it), so a standby takes over at once."""
        self.renewed_at = None
        try:
            await self._call(self.store.release_lease, self.name, self.holder)
        except Exception as exc:  # it runs out by itself within ttl
            log.warning("cannot give the %s lease up (%s); it runs out within %g s", self.name,
                        type(exc).__name__, self.ttl)
