"""The reply inbox as an adapter uses it: record a question before the platform gets its
acknowledgement, mark it answered once the reply is posted, and after a crash answer what was
acknowledged but never answered, while that is still useful.

The store holds the rows (bot/store.py); each is leased to the one process working on it, so
after a crash (the lease runs out) the restarted process, or another replica, takes it over.
A retry of an answered question is skipped. A duplicate can only come from a reply that was in
flight at the instant of a crash (posted, but not yet marked).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import itertools
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from bot.events import emit
from bot.store import Store

log = logging.getLogger(__name__)

LEASE = 30.0  # seconds a process may work on a question before another may take it over
USEFUL_FOR = 600.0  # a question left unanswered by a crash is answered only this long after it arrived
REPLAY_EVERY = 5.0  # seconds between looks for questions to take over
GROUP = 64  # store calls run in one transaction at most (one commit for a burst of questions)

Answer = Callable[[str, dict[str, Any]], Awaitable[None]]  # answer(key, payload); marks done or releases


class Inbox:
    """One platform's view of the store's reply inbox."""

    def __init__(self, store: Store, platform: str, *, lease: float = LEASE, useful_for: float = USEFUL_FOR,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.platform = platform
        self.lease = lease
        self.useful_for = useful_for
        self.clock = clock
        self._work: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._worker: threading.Thread | None = None

    async def _call(self, priority: int, method: Callable[..., Any], *args: Any) -> Any:
        """Run a store call on the inbox's own thread, more urgent calls (lower `priority`) first.

        The mark that a reply went out must follow the reply as closely as possible: a crash in
        between repeats that reply. Queued behind the answers in the shared thread pool, or
        behind the records of a burst of new questions, it could lag by many replies.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._serve, name=f"{self.platform}-inbox", daemon=True)
            self._worker.start()
        self._work.put((priority, next(self._order), method, args, loop, done))
        return await done

    def _serve(self) -> None:
        """Run the calls queued, as many as are waiting (up to GROUP) in one store transaction where
        the store has them (a group commit: one commit for a burst of new questions, not one each).
        Each caller hears back only once the transaction holding its call has committed."""
        transaction = getattr(self.store, "transaction", None)
        while True:
            group = [self._work.get()]
            while len(group) < GROUP:
                try:
                    group.append(self._work.get_nowait())
                except queue.Empty:
                    break
            group.sort(key=lambda item: item[:2])
            outcomes = None
            if transaction is not None and len(group) > 1:
                try:
                    with transaction():
                        outcomes = [(method(*args), None) for _, _, method, args, _, _ in group]
                except Exception:  # rolled back: each call again on its own, so each caller gets its own answer
                    outcomes = None
            if outcomes is None:
                outcomes = [_outcome(method, args) for _, _, method, args, _, _ in group]
            loops: dict[asyncio.AbstractEventLoop, list] = {}
            for (_, _, _, _, loop, done), (result, error) in zip(group, outcomes):
                loops.setdefault(loop, []).append((done, result, error))
            for loop, settled in loops.items():
                loop.call_soon_threadsafe(_settle_all, settled)

    async def record(self, key: str, payload: dict[str, Any], team: str = "") -> bool:
        """Record before the ack (as a question of `team`, where one app serves several); True when
        this process should answer it (new, or taken over)."""
        state = await self._call(1, self.store.record, key, self.platform, json.dumps(payload), self.clock(),
                                 self.lease, team)
        if state in ("answered", "busy"):
            log.info("%s %s is %s; not answered again", self.platform, key[:80], state)
        return state in ("new", "taken")

    async def done(self, key: str) -> None:
        """The reply went out (or can never go out): nothing more to do for this question."""
        await self._call(0, self.store.answered, key, self.clock())

    async def release(self, key: str) -> None:
        """The reply could not go out now: let a later pass try again."""
        await self._call(0, self.store.release, key)

    async def pending(self) -> list[tuple[str, dict[str, Any]]]:
        """Questions left unanswered (a crash, a failed post) and still worth answering, leased to us."""
        now = self.clock()
        rows = await self._call(2, self.store.pending, self.platform, now, now - self.useful_for, self.lease)
        out = []
        for key, payload in rows:
            try:
                out.append((key, json.loads(payload)))
            except ValueError:  # not ours to read: never try it again
                await self.done(key)
        return out

    async def replay(self, answer: Answer, stop: asyncio.Event, every: float = REPLAY_EVERY) -> None:
        """Until `stop`: answer what is pending, now and every `every` seconds. Errors are logged, not raised."""
        while not stop.is_set():
            try:
                for key, payload in await self.pending():
                    if stop.is_set():
                        break
                    emit("reply_replayed", f"answering a {self.platform} question left unanswered",
                         platform=self.platform)
                    await answer(key, payload)
            except Exception:
                log.exception("answering the %s questions left unanswered failed", self.platform)
            try:
                await asyncio.wait_for(stop.wait(), every)
            except asyncio.TimeoutError:
                pass


def _outcome(method: Callable[..., Any], args: tuple) -> tuple[Any, BaseException | None]:
    try:
        return method(*args), None
    except Exception as exc:  # handed to the caller
        return None, exc


def _settle_all(settled: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    for done, result, error in settled:
        if done.cancelled():
            continue
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)
