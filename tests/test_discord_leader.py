"""Discord without shards: one replica holds the store's "discord" lease and connects, the others
stand by. First the lease loop on a fake clock (adapters/leader.py), then two DiscordPlatforms on
one store against the Discord fake, then what /healthz and /metrics say about a standby.
The same with two processes and kill -9 is in tests/test_discord_replicas.py."""
from __future__ import annotations

import asyncio
import time

import discord
import discord.gateway
import discord.http
import pytest
import yarl

from adapters import discord_app as da
from adapters import discord_settings as ds
from adapters.discord_shards import Shards
from adapters.inbox import Inbox
from adapters.leader import Leader, LeaseLost, must_let_go, replica_id
from bot.sqlite_store import SQLiteStore
from tests import discord_fake
from tests.discord_fake import TOKEN, FakeDiscord

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


# -- two DiscordPlatforms on one store, against the fake -----------------------------------------------


@pytest.fixture
def pointed(monkeypatch):
    """Point discord.py at a fake (call with it), as FakeDiscord.launcher does for a process."""
    def point(fake: FakeDiscord) -> FakeDiscord:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_url)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
        init = discord.Client.__init__

        def fast(self, *args, **kw):
            kw.setdefault("guild_ready_timeout", 0.05)  # READY lists no servers: don't wait 2 s for them
            init(self, *args, **kw)
        monkeypatch.setattr(discord.Client, "__init__", fast)
        return fake
    return point


def replica(mini_bot, tmp_path, name: str, ttl: float = 3.0) -> da.DiscordPlatform:
    """One replica's Discord platform over its own connection to the shared store."""
    store = SQLiteStore(tmp_path / "shared.db")
    inbox = Inbox(store, "discord", lease=2)
    leader = Leader(store, da.LEASE, name, ttl=ttl, poll=0.2)
    return da.DiscordPlatform(mini_bot, inbox, ds.Settings(TOKEN, lease=ttl), leader=leader)


async def until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
    return value


async def test_only_the_lease_holder_connects_and_a_clean_stop_hands_over(mini_bot, tmp_path, pointed):
    with FakeDiscord() as fake:
        pointed(fake)
        a, b = replica(mini_bot, tmp_path, "A"), replica(mini_bot, tmp_path, "B")
        await a.start()
        standing = asyncio.create_task(b.start())
        await until(b.standing_by)
        try:
            assert await a.connected() and not await b.connected() and not a.standing_by()
            assert len(fake.open_sessions()) == 1 and b.poster() is None  # tips go out through A
            fake.send("MESSAGE_CREATE", discord_fake.dm_message("k8s?"))
            await asyncio.to_thread(fake.wait_for, lambda f: f.requests("POST", "/channels/600/messages"))

            await a.stop(1.0)  # SIGTERM: A closes, then gives the lease up
            stopped = time.monotonic()
            await asyncio.wait_for(standing, 10)
            took = time.monotonic() - stopped
            assert await b.connected() and not b.standing_by() and took < 2, took
            assert len(fake.open_sessions()) == 1 and not fake.overlaps()
            fake.send("MESSAGE_CREATE", discord_fake.dm_message("serverless?", message_id="5002"))
            await asyncio.to_thread(fake.wait_for, lambda f: len(f.requests("POST", "/channels/600/messages")) == 2)
        finally:
            await a.stop(0)
            await b.stop(0)
        assert len(fake.requests("POST", "/channels/600/messages")) == 2  # each answered once


async def test_a_leader_that_loses_the_lease_disconnects_at_once(mini_bot, tmp_path, pointed):
    with FakeDiscord() as fake:
        pointed(fake)
        a = replica(mini_bot, tmp_path, "A")
        await a.start()
        try:
            ending = asyncio.create_task(a.wait())
            # Another replica holds it now (as after a pause longer than the lease).
            store = a.leader.store
            store.release_lease(da.LEASE, "A")
            assert store.lease(da.LEASE, "intruder", time.time(), 30)
            with pytest.raises(LeaseLost, match="replica intruder holds"):
                await asyncio.wait_for(ending, 5)  # within a renewal (a third of 3 s), not at the end
            assert not await a.connected()
            await until(lambda: not fake.open_sessions())
        finally:
            await a.stop(0)
        assert store.lease_holder(da.LEASE, time.time()) == "intruder"  # stopping did not give up a lease A no longer held


async def test_with_shard_ids_there_is_no_lease(mini_bot, tmp_path):
    store = SQLiteStore(tmp_path / "t.db")
    platform = da.DiscordPlatform(mini_bot, Inbox(store, "discord"), ds.Settings(TOKEN, shards=Shards((0,), 2)))
    assert platform.leader is None and not platform.standing_by()
    plain = da.DiscordPlatform(mini_bot, Inbox(store, "discord"), ds.Settings(TOKEN, lease=12))
    assert plain.leader is not None and plain.leader.name == "discord" and plain.leader.ttl == 12
    # `auto` runs every shard in this process: the whole bot again, so one replica at a time.
    auto = da.DiscordPlatform(mini_bot, Inbox(store, "discord"), ds.Settings(TOKEN, shards=Shards()))
    assert auto.leader is not None and auto.leader.name == "discord"
    store.close()


# -- /healthz and /metrics on a standby ------------------------------------------------------------------


async def test_health_and_metrics_say_standby_and_a_standby_is_healthy(tipbot):
    from tests.test_serve import StubPlatform, get, metric, service_for, started

    class Standing(StubPlatform):
        def __init__(self, name):
            super().__init__(name)
            self.standby = True

        def standing_by(self) -> bool:
            return self.standby and not self.up

        async def start(self):  # a standby waits here until it holds the lease
            await asyncio.Event().wait()

    discord_platform = Standing("discord")
    service = service_for(tipbot, [discord_platform])
    async with started(service):
        status, _, body = await get(service.port, "/healthz")
        import json

        health = json.loads(body)
        assert status == 200 and health["status"] == "standby"
        assert health["platforms"]["discord"] | {"since": None} == {"connected": False, "standby": True,
                                                                    "restarts": 0, "last_error": None, "since": None}
        status, _, body = await get(service.port, "/readyz")
        assert status == 200 and json.loads(body) == {"ready": True, "status": "standby"}
        _, _, text = await get(service.port, "/metrics")
        assert metric(text, "trendbot_platform_standby", platform="discord") == 1
        assert metric(text, "trendbot_platform_connected", platform="discord") == 0
        discord_platform.standby = False  # no longer standing by, and not connected: down
        status, _, body = await get(service.port, "/healthz")
        assert status == 503 and json.loads(body)["status"] == "down"
        assert (await get(service.port, "/readyz"))[0] == 503
        assert (await get(service.port, "/livez"))[0] == 200


async def test_a_connected_platform_and_a_standby_are_ok(tipbot):
    from tests.test_serve import StubPlatform, service_for, started

    class Standing(StubPlatform):
        def standing_by(self) -> bool:
            return True

        async def start(self):
            await asyncio.Event().wait()

    slack, discord_platform = StubPlatform("slack"), Standing("discord")
    service = service_for(tipbot, [slack, discord_platform])
    async with started(service):
        await until(lambda: slack.up)
        code, body = await service.report()
        assert code == 200 and body["status"] == "ok"
        assert body["platforms"]["discord"]["standby"] and not body["platforms"]["slack"]["standby"]
