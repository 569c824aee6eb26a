"""Daily tips in Discord: Manage Channels guards subscriptions; tips post as embeds with no mentions."""
from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

import discord
import pytest

from adapters import discord_app as da
from bot.schedule import Subscription
from bot.tips import PostError
from tests.conftest import NINE_UTC
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

    async def fetch_channel(self, channel_id: int):
        raise discord.NotFound(SimpleNamespace(status=404, reason="Not Found"), "Unknown Channel")


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
