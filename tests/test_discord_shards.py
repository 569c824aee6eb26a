"""Discord's shards: TRENDBOT_DISCORD_SHARDS, and the sharded client against the fake, which routes
each server's events to the shard that owns it and DMs to shard 0, as Discord does."""
from __future__ import annotations

import asyncio

import discord
import discord.gateway
import discord.http
import pytest
import yarl

from adapters import discord_app as da
from adapters import discord_settings as ds
from adapters.discord_shards import Shards, as_shards, shard_of
from tests import discord_fake
from tests.discord_fake import TOKEN, FakeDiscord, server_on
from trendbot import wiring

# -- the setting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, ids, count", [
    ("0,1/4", (0, 1), 4),
    ("2-3/4", (2, 3), 4),
    ("0-1, 5/8", (0, 1, 5), 8),
    ("3,0/4", (0, 3), 4),
    ("0/1", (0,), 1),
    (" 7 / 16 ", (7,), 16),
])
def test_shard_ids_and_count(text, ids, count):
    shards = as_shards(text)
    assert (shards.ids, shards.count, shards.auto) == (ids, count, False)
    assert shards.options() == {"shard_ids": list(ids), "shard_count": count}
    assert as_shards(str(shards)) == shards  # it prints as it is written


def test_auto_and_empty():
    assert as_shards("") is None and as_shards("  ") is None  # no sharding: one connection, under the lease
    auto = as_shards("Auto")
    assert auto.auto and auto.options() == {} and str(auto) == "auto" and auto.runs(0) and auto.runs(99)


@pytest.mark.parametrize("text, says", [
    ("4/4", "run from 0 to 3"),
    ("1,1/2", "listed twice"),
    ("0-1,1/4", "listed twice"),
    ("3-2/4", "goes down"),
    ("0,1", "must be auto, or this replica's shard ids and the shard count"),
    ("/4", "must be auto"),
    ("0-/4", "is not a shard id"),
    ("a/4", "must be auto"),
    ("0/0", "from 1 to"),
    ("0/99999999", "from 1 to"),
    ("yes", "must be auto"),
])
def test_bad_shards_are_refused_saying_why(text, says):
    with pytest.raises(ValueError, match=says):
        as_shards(text)


def test_a_bad_value_is_a_settings_problem_naming_the_setting():
    config, problems = wiring.settings({"DISCORD_TOKEN": TOKEN, "TRENDBOT_DISCORD_SHARDS": "2/2"})
    assert problems == ["TRENDBOT_DISCORD_SHARDS (environment): shard ids run from 0 to 1 for 2 shards; 2 is not one"]
    config, problems = wiring.settings({"DISCORD_TOKEN": TOKEN, "TRENDBOT_DISCORD_LEASE": "1"})
    assert problems == ["TRENDBOT_DISCORD_LEASE (environment): must be between 3 and 600 seconds"]


def test_settings_carry_the_shards_and_the_lease():
    settings = ds.Settings.from_env({"DISCORD_TOKEN": TOKEN, "TRENDBOT_DISCORD_SHARDS": "1/2",
                                     "TRENDBOT_DISCORD_LEASE": "12"})
    assert settings.shards == Shards((1,), 2) and settings.lease == 12.0
    plain = ds.Settings.from_env({"DISCORD_TOKEN": TOKEN})
    assert plain.shards is None and plain.lease == 30.0


def test_trendbot_config_shows_the_shards(monkeypatch, capsys):
    from trendbot import cli

    for name in [n for n in __import__("os").environ if n.startswith(("TRENDBOT_", "SLACK_", "DISCORD_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("TRENDBOT_DISCORD_SHARDS", "0,1/4")
    assert cli.main(["config"]) == 0
    out = capsys.readouterr().out
    assert "TRENDBOT_DISCORD_SHARDS=0,1/4" in out and "# environment" in out.split("TRENDBOT_DISCORD_SHARDS")[1]
    assert "TRENDBOT_DISCORD_LEASE=30" in out


def test_shard_of_follows_discords_formula():
    assert shard_of(81384788765712384, 17) == 7  # the example of serenity's docs
    assert shard_of(None, 4) == 0  # DMs go to shard 0
    assert [shard_of(server_on(s, 4, n), 4) for s in range(4) for n in (0, 9)] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_the_client_is_sharded_only_when_shards_are_set(mini_bot):
    plain = da.build_client(mini_bot, ds.Settings(TOKEN))
    assert type(plain) is da.DiscordClient and not isinstance(plain, discord.AutoShardedClient)
    sharded = da.build_client(mini_bot, ds.Settings(TOKEN, shards=Shards((0, 1), 4)))
    assert isinstance(sharded, discord.AutoShardedClient)
    assert sharded.shard_ids == [0, 1] and sharded.shard_count == 4
    auto = da.build_client(mini_bot, ds.Settings(TOKEN, shards=Shards()))
    assert auto.shard_ids is None and auto.shard_count is None  # discord.py asks /gateway/bot


# -- the sharded client against the fake ------------------------------------------------------------------


class Sharded(da.ShardedDiscordClient):
    """The real sharded client, without the waits that only matter against Discord itself."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._connection.guild_ready_timeout = 0.01  # don't wait 2 s after the last GUILD_CREATE

    async def before_identify_hook(self, shard_id, *, initial=False) -> None:
        pass  # discord.py waits 5 s between shards' IDENTIFYs (Discord's rate limit); no need here


@pytest.fixture
def pointed(monkeypatch):
    """Point discord.py at a fake (call with it)."""
    def point(fake: FakeDiscord) -> FakeDiscord:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_url)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
        return fake
    return point


async def connect(client: da.DiscordClient) -> asyncio.Task:
    serving = asyncio.create_task(client.serve())
    for _ in range(400):
        if client.connected():
            return serving
        assert not serving.done(), serving.result()
        await asyncio.sleep(0.025)
    raise AssertionError("not connected in 10 s")


async def posts(fake: FakeDiscord, channel: str, n: int = 1) -> list:
    await asyncio.to_thread(fake.wait_for, lambda f: len(f.requests("POST", f"/channels/{channel}/")) >= n)
    return fake.requests("POST", f"/channels/{channel}/")


async def test_one_client_on_two_shards_answers_both_and_dms(mini_bot, pointed):
    on0, on1 = server_on(0, 2), server_on(1, 2)
    with FakeDiscord(servers=(on0, on1)) as fake:
        pointed(fake)
        said: list[str] = []
        client = Sharded(mini_bot, ds.Settings(TOKEN, shards=Shards((0, 1), 2)), announce=said.append)
        serving = await connect(client)
        try:
            assert sorted(i["shard"] for i in fake.identifies) == [[0, 2], [1, 2]]
            assert said[0] == "connected to Discord as trendbot (1000) in 2 servers (shards 0-1/2)"
            assert {g.id: g.shard_id for g in client.guilds} == {on0: 0, on1: 1}
            for server, message in ((on0, "5101"), (on1, "5102")):
                assert fake.send("MESSAGE_CREATE", discord_fake.mention("k8s?", server, message_id=message)) == 1
            assert fake.send("MESSAGE_CREATE", discord_fake.dm_message("k8s?")) == 1
            for channel in (discord_fake.channel_of(on0), discord_fake.channel_of(on1), discord_fake.DM_CHANNEL):
                (post,) = await posts(fake, channel)
                assert post.data["embeds"][0]["title"] == "Kubernetes"
            assert len(fake.requests("PUT", "/commands")) == 1  # it runs shard 0: it syncs the commands
        finally:
            await client.close()
            await asyncio.wait_for(serving, 10)


async def test_a_replica_on_one_shard_gets_only_that_shards_servers(mini_bot, pointed):
    on0, on1 = server_on(0, 2), server_on(1, 2)
    with FakeDiscord(servers=(on0, on1)) as fake:
        pointed(fake)
        client = Sharded(mini_bot, ds.Settings(TOKEN, shards=Shards((1,), 2)))
        serving = await connect(client)
        try:
            assert [i["shard"] for i in fake.identifies] == [[1, 2]]
            assert [g.id for g in client.guilds] == [on1]
            # Shard 0's server and the DM have no session to go to: Discord drops them.
            assert fake.send("MESSAGE_CREATE", discord_fake.mention("k8s?", on0, message_id="5101")) == 0
            assert fake.send("MESSAGE_CREATE", discord_fake.dm_message("k8s?")) == 0
            assert fake.send("MESSAGE_CREATE", discord_fake.mention("k8s?", on1, message_id="5102")) == 1
            (post,) = await posts(fake, discord_fake.channel_of(on1))
            assert str(post.data["message_reference"]["message_id"]) == "5102"
            assert [e for e, _ in fake.dropped] == ["MESSAGE_CREATE", "MESSAGE_CREATE"]
            assert not fake.requests("PUT", "/commands")  # the replica on shard 0 syncs them, not this one
        finally:
            await client.close()
            await asyncio.wait_for(serving, 10)


async def test_auto_takes_discords_recommended_count(mini_bot, pointed):
    with FakeDiscord(servers=(server_on(0, 3), server_on(2, 3)), recommended_shards=3) as fake:
        pointed(fake)
        client = Sharded(mini_bot, ds.Settings(TOKEN, shards=Shards()))
        serving = await connect(client)
        try:
            assert fake.requests("GET", "/gateway/bot")
            assert sorted(i["shard"] for i in fake.identifies) == [[0, 3], [1, 3], [2, 3]]
            assert client.shard_count == 3 and len(client.guilds) == 2
        finally:
            await client.close()
            await asyncio.wait_for(serving, 10)


async def test_connected_only_while_every_shard_is_up(mini_bot, pointed):
    with FakeDiscord() as fake:
        pointed(fake)
        client = Sharded(mini_bot, ds.Settings(TOKEN, shards=Shards((0, 1), 2)))
        serving = await connect(client)
        try:
            await client.on_shard_disconnect(1)  # what discord.py dispatches when shard 1's socket drops
            assert not client.connected()
            fake.invalidate()  # both shards identify again, and come back
            for _ in range(400):
                if client.connected() and len(fake.identifies) == 4:
                    break
                await asyncio.sleep(0.025)
            assert client.connected() and len(fake.open_sessions()) == 2
        finally:
            await client.close()
            await asyncio.wait_for(serving, 10)
