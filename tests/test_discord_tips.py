"""Daily tips in Discord: Manage Channels guards subscriptions; tips post as embeds with no mentions."""
from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

import discord
import pytest

from bot import config

from adapters import discord_app as da
from adapters import discord_commands as dc
from adapters import discord_payloads as dp
from adapters import discord_settings as ds
from bot.schedule import Subscription
from bot.tips import PostError
from tests.conftest import NINE_UTC
import discord.http

from tests.discord_fake import TOKEN, FakeDiscord
from tests.test_discord_handlers import Channel, Interaction, assert_no_mentions, client_for, command, title

@pytest.mark.parametrize("manage, expect", [(False, "Not allowed here"), (True, "Daily tips on")])
async def test_subscribe_needs_manage_channels(tipbot, manage, expect):
    interaction = Interaction(command("trend", topic="subscribe 08:00 Europe/Paris"))
    interaction.permissions = SimpleNamespace(manage_channels=manage)
    await client_for(tipbot).answer_interaction(interaction)
    ((what, kw),) = interaction.calls
    assert title(kw) == expect and kw["ephemeral"] is (not manage)
    assert_no_mentions(kw)
    sub = tipbot.tips.store.subscription("discord", "500")
    assert (sub == Subscription("discord", "500", dt.time(8, 0), "Europe/Paris")) is manage


class TipClient:
    """The two Client calls DiscordPoster makes."""

    def __init__(self, channels: dict[int, Channel]):
        self.channels = channels

    def get_channel(self, channel_id: int):
        return self.channels.get(channel_id)

    def get_partial_messageable(self, channel_id: int):  # a channel not in the cache: gone, here
        return Channel(channel_id, fail=discord.NotFound(SimpleNamespace(status=404, reason="Not Found"),
                                                         "Unknown Channel"))


def test_tips_post_as_embeds_without_mentions(tipbot):
    channel = Channel(777)
    tipbot.tips.store.subscribe(Subscription("discord", "777"))
    results = asyncio.run(tipbot.tips.run_once({"discord": da.DiscordPoster(TipClient({777: channel}))}, NINE_UTC))
    assert [r.outcome for r in results] == ["sent"]
    (sent,) = channel.sent
    assert title(sent) == "Daily backend tip"
    assert_no_mentions(sent)


def test_a_deleted_channel_is_a_permanent_failure(tipbot):
    poster = da.DiscordPoster(TipClient({}))
    with pytest.raises(PostError) as err:
        asyncio.run(poster.post("888", tipbot.tip()))
    assert err.value.permanent


def test_a_refused_send_is_permanent_and_a_server_error_is_not(tipbot):
    forbidden = Channel(1, fail=discord.Forbidden(SimpleNamespace(status=403, reason="Forbidden"), "Missing Access"))
    flaky = Channel(2, fail=discord.HTTPException(SimpleNamespace(status=500, reason="Server Error"), "oops"))
    poster = da.DiscordPoster(TipClient({1: forbidden, 2: flaky}))
    reply = tipbot.tip()
    for channel_id, permanent in (("1", True), ("2", False)):
        with pytest.raises(PostError) as err:
            asyncio.run(poster.post(channel_id, reply))
        assert err.value.permanent is permanent


# -- over Discord's REST API, against the loopback fake ----------------------------------------------


def rest_post(fake, reply, channel_id: str = "777"):
    """Post one reply through rest_poster, with discord.py pointed at the fake."""
    async def go():
        async with da.rest_poster(config.load({"DISCORD_TOKEN": TOKEN}, settings=ds.SETTINGS)) as poster:
            await poster.post(channel_id, reply)
    asyncio.run(go())


@pytest.fixture
def fake(monkeypatch):
    with FakeDiscord() as f:
        monkeypatch.setattr(discord.http.Route, "BASE", f.api_url)
        yield f


def test_rest_poster_posts_an_embed_by_channel_id_without_the_gateway(fake, tipbot):
    reply = tipbot.tip()
    rest_post(fake, reply)
    (post,) = fake.requests("POST", "/channels/777/messages")
    assert post.data["embeds"][0]["title"] == reply.title
    assert post.data["allowed_mentions"] == {"parse": []}
    assert post.headers["Authorization"] == f"Bot {TOKEN}"
    assert not fake.identifies  # no gateway connection was opened


def test_a_rate_limited_post_is_retried_after_retry_after(fake, tipbot):
    fake.post_errors["777"] = [(429, {"message": "You are being rate limited.", "retry_after": 0.2, "global": False})]
    rest_post(fake, tipbot.tip())
    first, second = fake.requests("POST", "/channels/777/messages")
    assert second.at - first.at >= 0.2
    assert first.data == second.data


@pytest.mark.parametrize("status, code, permanent", [(404, 10003, True), (403, 50001, True), (503, 0, False)])
def test_rest_errors_are_permanent_only_when_the_channel_is_closed(fake, tipbot, status, code, permanent):
    # (503: discord.py retries 500, 502 and 504 itself for seconds first, and then fails the same way)
    fake.post_errors["777"] = [(status, {"message": "nope", "code": code})]
    with pytest.raises(PostError) as err:
        rest_post(fake, tipbot.tip())
    assert err.value.permanent is permanent


@pytest.mark.slow
def test_run_once_from_the_cli_posts_due_discord_tips_once(tmp_path):
    import subprocess
    import sys

    from bot.sqlite_store import SQLiteStore as Store
    from tests.conftest import MINI
    from tests.test_discord_handlers import ROOT, cli_env

    db = tmp_path / "cron.db"
    with Store(db) as st:
        st.subscribe(Subscription("discord", "777", dt.time(9, 0), "UTC"))
        st.subscribe(Subscription("discord", "888", dt.time(9, 0), "UTC"))
    with FakeDiscord() as fake:
        fake.post_errors["888"] = [(404, {"message": "Unknown Channel", "code": 10003})]
        cmd = [sys.executable, "-c", fake.launcher(), "--knowledge", str(MINI), "-v", "tips", "run-once",
               "--now", "2026-05-04T09:01:00Z"]
        env = cli_env(TRENDBOT_DB=str(db), DISCORD_TOKEN=TOKEN)
        runs = [subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60) for _ in range(2)]
        (post,) = fake.requests("POST", "/channels/777/messages")  # the second run found it posted
    assert post.data["embeds"][0]["title"] == "Daily backend tip"
    assert "discord:777 2026-05-04: sent" in runs[0].stderr and "discord:888 2026-05-04: failed" in runs[0].stderr
    assert runs[0].returncode == 1  # a channel failed: cron should hear of it
    assert "discord:777" not in runs[1].stderr
    for out in runs:
        assert TOKEN not in out.stdout + out.stderr and "Traceback" not in out.stderr
    assert not fake.identifies


# -- /subscribe, /unsubscribe, /subscription ---------------------------------------------------------


def test_subscription_commands_become_the_trend_words():
    inc = dp.to_incoming(Interaction(command("subscribe", time="08:30", zone="Europe/Paris", topics="serverless devops")))
    assert inc.text == "subscribe 08:30 Europe/Paris serverless devops" and inc.is_command
    assert dp.to_incoming(Interaction(command("subscribe", zone="Asia/Tokyo"))).text == "subscribe Asia/Tokyo"
    assert dp.to_incoming(Interaction(command("subscribe"))).text == "subscribe"
    assert dp.to_incoming(Interaction(command("unsubscribe"))).text == "unsubscribe"
    assert dp.to_incoming(Interaction(command("subscription"))).text == "subscription"


def test_changing_commands_are_shown_to_channel_managers_only(tipbot):
    client = client_for(tipbot)
    commands = {c.name: c.to_dict(client.tree) for c in client.tree.get_commands()}
    manage_channels = discord.Permissions(manage_channels=True).value
    assert commands["subscribe"]["default_member_permissions"] == manage_channels
    assert commands["unsubscribe"]["default_member_permissions"] == manage_channels
    assert commands["subscription"]["default_member_permissions"] is None
    options = {o["name"]: o for o in commands["subscribe"]["options"]}
    assert [o["name"] for o in commands["subscribe"]["options"]] == ["time", "zone", "topics"]
    assert options["zone"]["autocomplete"] and options["topics"]["autocomplete"]
    assert not any(o["required"] for o in options.values())


@pytest.mark.parametrize("manage", [False, True])
async def test_subscribe_unsubscribe_and_status_through_the_commands(tipbot, manage):
    client = client_for(tipbot)

    async def run(data):
        interaction = Interaction(data)
        interaction.permissions = SimpleNamespace(manage_channels=manage)
        await client.answer_interaction(interaction)
        ((_, kw),) = interaction.calls
        assert_no_mentions(kw)
        return kw

    kw = await run(command("subscribe", time="07:15", zone="Asia/Tokyo", topics="serverless"))
    assert (title(kw), kw["ephemeral"]) == (("Daily tips on", False) if manage else ("Not allowed here", True))
    sub = tipbot.tips.store.subscription("discord", "500")
    assert (sub == Subscription("discord", "500", dt.time(7, 15), "Asia/Tokyo", ("serverless",))) is manage
    status = await run(command("subscription"))  # anyone may look
    assert title(status) == ("Daily tips" if manage else "No daily tips here")
    if manage:
        assert "07:15 Asia/Tokyo" in status["embeds"][0].description
        assert title(await run(command("unsubscribe"))) == "Daily tips stopped"
        assert tipbot.tips.store.subscription("discord", "500") is None


async def test_a_city_instead_of_a_zone_gets_the_zone_name(tipbot):
    interaction = Interaction(command("subscribe", time="08:30", zone="Paris"))
    interaction.permissions = SimpleNamespace(manage_channels=True)
    await client_for(tipbot).answer_interaction(interaction)
    ((_, kw),) = interaction.calls
    assert title(kw) == "Unknown time zone" and "Europe/Paris" in kw["embeds"][0].description and kw["ephemeral"]
    assert tipbot.tips.store.subscription("discord", "500") is None


def test_zone_choices():
    assert dc.zone_choices("")[0] == "UTC" and len(dc.zone_choices("")) == 25
    assert dc.zone_choices("paris")[0] == "Europe/Paris"
    assert dc.zone_choices("new york") == ["America/New_York"]
    assert dc.zone_choices("europe/ber")[0] == "Europe/Berlin"
    assert dc.zone_choices("u")[0] == "UTC"
    assert dc.zone_choices("no such place") == []


async def test_topics_autocomplete_completes_the_last_word(tipbot):
    client = client_for(tipbot)
    picked = await client.topics_choices(Interaction(command("subscribe")), "serverless kubernets")
    assert (picked[0].name, picked[0].value) == ("serverless Kubernetes", "serverless kubernetes")
    first = await client.topics_choices(Interaction(command("subscribe")), "")
    assert first and all(" " not in c.value for c in first)


# -- the reply inbox: what a crash left unanswered is answered over REST after a restart -----------------


def test_a_question_a_crash_left_unanswered_is_answered_after_a_restart(fake, mini_bot, tmp_path):
    from adapters.inbox import Inbox
    from bot.core import Incoming
    from bot.sqlite_store import SQLiteStore

    async def go():
        with SQLiteStore(tmp_path / "t.db") as store:
            clock = [1000.0]
            inbox = Inbox(store, "discord", lease=5, clock=lambda: clock[0])
            # A mention and a slash command recorded by a process that then died before answering.
            mention = dp.stored(Incoming("k8s", platform="discord", channel_id="777", is_mention=True))
            assert await inbox.record("discord:msg:5001", {"kind": "message", "channel": 777, "message": 5001,
                                                           "embeds": True, "incoming": mention})
            command = dp.stored(Incoming("kubernetes", platform="discord", channel_id="777", is_command=True))
            assert await inbox.record("discord:int:7001", {"kind": "interaction", "application": 4242,
                                                           "token": "tok", "incoming": command})
            clock[0] += 10  # the dead process's leases ran out
            client = da.DiscordClient(mini_bot, ds.Settings(token=TOKEN), inbox=inbox)
            await client.login(TOKEN)
            try:
                for key, payload in await inbox.pending():
                    await client.replay(key, payload)
            finally:
                await client.close()
            assert await inbox.pending() == []  # both settled
            assert store.record("discord:msg:5001", "discord", "{}", clock[0], 5) == "answered"

    asyncio.run(go())
    (post,) = fake.requests("POST", "/channels/777/messages")
    assert str(post.data["message_reference"]["message_id"]) == "5001" and post.data["allowed_mentions"] == {"parse": []}
    assert post.data["embeds"][0]["title"] == "Kubernetes"
    (follow_up,) = fake.requests("POST", "/webhooks/4242/tok")
    assert follow_up.data["embeds"][0]["title"] == "Kubernetes"
