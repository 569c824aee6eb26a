"""Discord without shards: one replica holds the store's "discord" lease and connects, the others
stand by. The lease loop on a fake clock (adapters/leader.py)."""
from __future__ import annotations

import asyncio

import pytest

from adapters.leader import Leader, LeaseLost, must_let_go, replica_id
from bot.sqlite_store import SQLiteStore

# -- the lease loop, on a fake clock ----------------------------------------------------------------


class Clock:
    """Wall-clock time that moves only when a leader sleeps."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class Flaky:
    """A store whose lease calls fail while `down` (PostgreSQL unreachable, say)."""

    def __init__(self, store):
        self.store, self.down = store, False

    def __getattr__(self, name):
        method = getattr(self.store, name)

        def call(*args):
            if self.down:
                raise ConnectionError("store unreachable")
            return method(*args)
        return call


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "t.db") as s:
        yield s


def leader(store, name: str, clock: Clock, **kw) -> Leader:
    return Leader(store, "discord", name, ttl=30, poll=2, clock=clock, sleep=clock.sleep, **kw)


def test_a_replica_id_is_unique_per_process_start():
    a, b = replica_id(), replica_id()
    assert a != b and a.split(":")[:2] == b.split(":")[:2]  # host and pid, then a random part


@pytest.mark.parametrize("renewed, now, lets_go", [(0, 10, False), (0, 19.9, False), (0, 20, True), (0, 35, True)])
def test_a_failed_renewal_lets_go_when_the_next_would_be_too_late(renewed, now, lets_go):
    assert must_let_go(renewed, now, ttl=30, every=10) is lets_go


async def test_the_first_takes_it_and_the_second_stands_by_until_it_runs_out(store):
    clock = Clock()
    a, b = leader(store, "A", clock), leader(store, "B", clock)
    await a.wait()
    assert store.lease_holder("discord", clock()) == "A"
    seen: list[str] = []
    start = clock()
    await b.wait(seen.append)  # A never renews: it died
    assert seen == ["A"]  # told once who holds it, not at every look
    took = clock() - start
    assert 30 <= took < 32, took  # the lease ran out at 30 s; B looks every 2 s
    assert store.lease_holder("discord", clock()) == "B"


async def test_a_clean_stop_hands_over_at_the_next_look(store):
    clock = Clock()  # standing still: A's lease never runs out here
    looks: list[float] = []

    async def sleep(seconds: float) -> None:
        looks.append(seconds)
        await asyncio.sleep(0.005)

    a = leader(store, "A", clock)
    b = Leader(store, "discord", "B", ttl=30, poll=2, clock=clock, sleep=sleep)
    await a.wait()
    waiting = asyncio.create_task(b.wait())
    await until(lambda: len(looks) >= 3)
    assert not waiting.done()
    before = len(looks)
    await a.release()
    await asyncio.wait_for(waiting, 5)
    assert len(looks) - before <= 1 and set(looks) == {2}  # the next look, 2 s later, took it


async def test_a_held_lease_is_renewed_and_kept(store):
    clock = Clock()
    a, b = leader(store, "A", clock), leader(store, "B", clock)
    await a.wait()
    keeping = asyncio.create_task(a.keep())
    await until(lambda: clock() - 1_000_000 >= 200 or keeping.done())  # 20 renewals: far beyond one lease's 30 s
    assert not keeping.done() and a.renewed_at >= clock() - 10
    assert not await b.take() and store.lease_holder("discord", clock()) == "A"
    keeping.cancel()


async def test_finding_another_holder_lets_go_at_once(store):
    clock = Clock()
    a, b = leader(store, "A", clock), leader(store, "B", clock)
    await a.wait()
    clock.now += 45  # A was paused past the end of its lease, and B took it
    await b.wait()
    with pytest.raises(LeaseLost, match="replica B holds the discord lease"):
        await a.keep()


async def test_a_store_that_cannot_be_reached_lets_go_before_the_lease_runs_out(store):
    clock = Clock()
    flaky = Flaky(store)
    a, b = leader(flaky, "A", clock), leader(store, "B", clock)
    await a.wait()
    renewed = clock()
    flaky.down = True
    with pytest.raises(LeaseLost, match="could not renew"):
        await a.keep()
    gave_up = clock() - renewed
    assert gave_up == 20  # one failed renewal at 10 s is tried again; at 20 s the next would be too late
    assert not await b.take()  # others still cannot take it: A let go 10 s before the end
    clock.now = renewed + 30
    assert await b.take()


async def test_a_standby_waits_out_a_store_that_cannot_be_reached(store):
    clock = Clock()
    flaky = Flaky(store)
    b = leader(flaky, "B", clock)
    flaky.down = True
    waiting = asyncio.create_task(b.wait())
    await until(lambda: clock() - 1_000_000 >= 60)  # it kept looking, in vain, for a minute
    assert not waiting.done()
    flaky.down = False
    await asyncio.wait_for(waiting, 5)
    assert store.lease_holder("discord", clock()) == "B"


async def test_release_only_gives_up_ones_own(store):
    clock = Clock()
    a, b = leader(store, "A", clock), leader(store, "B", clock)
    await a.wait()
    await b.release()  # B never held it
    assert store.lease_holder("discord", clock()) == "A"


async def until(check, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := check()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
    return value
