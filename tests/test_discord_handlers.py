"""The Discord adapter's handlers, driven with small stand-ins for discord.py's objects (no connection).

Interaction, Message, User, Channel and Guild below carry only what the adapter reads and record
what it sends. The last section runs the real discord.py client, and the CLI as a process,
against a fake of Discord's REST API and gateway on loopback (tests/discord_fake.py).
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import discord
import discord.gateway
import discord.http
from discord import app_commands
import pytest
import yarl

from adapters import console
from adapters import discord_app as da
from adapters import discord_embeds as de
from adapters import discord_payloads as dp
from adapters import discord_settings as ds
from adapters import slack_payloads
from adapters.secrets import SecretFilter, SettingsError
from bot.replies import Reply, Suggestion
from tests import discord_fake
from tests.conftest import MINI
from tests.discord_fake import TOKEN, FakeDiscord
from tests.slack_fake import fixture

ROOT = Path(__file__).resolve().parents[1]


# -- stand-ins ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: int
    name: str
    bot: bool = False

    @property
    def display_name(self) -> str:
        return self.name.title()

    def __str__(self) -> str:
        return self.name


BOT = User(1000, "trendbot", bot=True)
ALICE = User(2000, "alice")
BOB = User(2001, "bob")
OTHER_BOT = User(3000, "otherbot", bot=True)


class Channel:
    """A text channel (or a thread, with parent_id); records what is sent to it."""

    def __init__(self, id: int = 500, *, parent_id: int | None = None, embed_links: bool = True,
                 fail: Exception | None = None, name: str = "general"):
        self.id, self.parent_id, self.name = id, parent_id, name
        self.embed_links, self.fail = embed_links, fail
        self.sent: list[dict] = []

    async def send(self, **kw) -> None:
        self.sent.append(kw)
        if self.fail is not None:
            raise self.fail

    def permissions_for(self, member) -> SimpleNamespace:
        assert member.id == BOT.id
        return SimpleNamespace(embed_links=self.embed_links)


GUILD = SimpleNamespace(id=42, me=SimpleNamespace(id=BOT.id))


class Message:
    """A message as on_message gets it."""

    _ids = iter(range(9000, 99999))

    def __init__(self, content: str, *, author: User = ALICE, channel: Channel | None = None, guild=GUILD,
                 mentions: tuple[User, ...] = (), role_mentions=(), channel_mentions=(), webhook_id=None,
                 type: discord.MessageType = discord.MessageType.default):
        self.id = next(self._ids)
        self.content, self.author, self.guild = content, author, guild
        self.channel = channel or Channel()
        self.mentions, self.role_mentions, self.channel_mentions = list(mentions), list(role_mentions), list(channel_mentions)
        self.webhook_id, self.type = webhook_id, type

    def to_reference(self, *, fail_if_not_exists: bool = True) -> tuple:
        return ("reference", self.id, fail_if_not_exists)


def mention(text: str, **kw) -> Message:
    return Message(f"<@{BOT.id}> {text}", mentions=(BOT,), **kw)


class Interaction:
    """A slash command or button press; `calls` lists every response call in order."""

    _ids = iter(range(70000, 99999))

    def __init__(self, data: dict, *, user: User = ALICE, channel_id: int = 500, guild_id: int | None = GUILD.id,
                 channel=None, fail: Exception | None = None, client=None):
        self.id, self.application_id, self.token = next(self._ids), 4242, "interaction-token"
        self.client = client
        self.data, self.user, self.channel_id, self.guild_id = data, user, channel_id, guild_id
        self.channel = channel or Channel(channel_id)
        self.calls: list[tuple[str, dict]] = []
        self.deferred = asyncio.Event()
        self.fail = fail
        outer = self

        class Response:
            async def send_message(self, **kw):
                outer._record("send_message", kw)

            async def defer(self, **kw):
                outer._record("defer", kw)
                outer.deferred.set()

            async def edit_message(self, **kw):
                outer._record("edit_message", kw)

            def is_done(self):
                return any(what in ("send_message", "defer", "edit_message") for what, _ in outer.calls)

        class Followup:
            async def send(self, **kw):
                outer._record("followup", kw)

        self.response, self.followup = Response(), Followup()

    def _record(self, what: str, kw: dict) -> None:
        self.calls.append((what, kw))
        if self.fail is not None:
            raise self.fail

    async def edit_original_response(self, **kw):
        self._record("edit", kw)

    async def delete_original_response(self):
        self._record("delete", {})

    @property
    def sends(self) -> list[tuple[str, dict]]:
        """The calls that put text in front of someone."""
        return [(what, kw) for what, kw in self.calls if what in ("send_message", "followup", "edit", "edit_message")]


def command(name: str, **options: str) -> dict:
    return {"id": "1", "name": name, "type": 1, "options": [{"name": k, "type": 3, "value": v} for k, v in options.items()]}


def press(query: str) -> dict:
    return {"custom_id": de.BUTTON_PREFIX + query, "component_type": 2}


class RecordingCore:
    """Wraps the real bot: remembers every Incoming; can hold answers until released, or answer with a fixed reply."""

    def __init__(self, bot, *, gate: threading.Event | None = None, reply: Reply | None = None):
        self.bot, self.gate, self.reply = bot, gate, reply
        self.kb = bot.kb
        self.seen = []
        self.finished = threading.Event()

    def handle(self, incoming):
        self.seen.append(incoming)
        if self.gate is not None and not self.gate.wait(10):
            raise AssertionError("gate never opened")
        self.finished.set()
        return self.reply or self.bot.handle(incoming)

    def find_topic(self, name):
        return self.bot.find_topic(name)


class Client(da.DiscordClient):
    user = BOT  # what discord.py sets at login
    application_id = 4242


def client_for(core, *, settings: ds.Settings | None = None, defer_after: float = 5.0, announce=None) -> Client:
    return Client(core, settings or ds.Settings(TOKEN), defer_after=defer_after, announce=announce or (lambda _: None))


def title(kw: dict) -> str:
    return kw["embeds"][0].title


def assert_no_mentions(kw: dict) -> None:
    am = kw["allowed_mentions"]
    assert (am.everyone, am.users, am.roles, am.replied_user) == (False, False, False, False), am.to_dict()
    assert am.to_dict() == {"parse": []}  # what Discord gets: nothing may be pinged


# -- events -> Incoming ---------------------------------------------------------------------------


def test_slash_commands_become_incoming():
    inc = dp.to_incoming(Interaction(command("trend", topic="serverless")))
    assert (inc.text, inc.platform, inc.channel_id, inc.user_id) == ("serverless", "discord", "500", "2000")
    assert inc.is_command and not inc.is_dm and not inc.is_mention and inc.thread_id is None
    assert dp.to_incoming(Interaction(command("trend"))).text == ""  # the core shows usage for a bare /trend
    assert dp.to_incoming(Interaction(command("trend", topic="  "))).text == ""
    ask = dp.to_incoming(Interaction(command("ask", question="is serverless cheaper?")))
    assert ask.text == "is serverless cheaper?" and not ask.is_command  # a free question, as in the console
    tip = dp.to_incoming(Interaction(command("tip")))
    assert tip.text == "tip" and tip.is_command
    assert dp.to_incoming(Interaction(command("tip"), guild_id=None)).is_dm


def test_button_press_asks_its_query():
    inc = dp.to_incoming(Interaction(press("kubernetes")))
    assert (inc.text, inc.is_command, inc.user_id) == ("kubernetes", True, "2000")


def test_thread_belongs_to_its_parent_channel():
    thread = Channel(777, parent_id=500)
    inc = dp.to_incoming(Interaction(command("tip"), channel_id=777, channel=thread))
    assert (inc.channel_id, inc.thread_id) == ("500", "777")
    msg = dp.to_incoming(mention("k8s?", channel=thread), bot_id=BOT.id)
    assert (msg.channel_id, msg.thread_id) == ("500", "777")


@pytest.mark.parametrize("data", [command("weather"), {"custom_id": "someone_elses_button", "component_type": 2}])
def test_unknown_interactions_are_errors(data):
    with pytest.raises(ValueError):
        dp.to_incoming(Interaction(data))


def test_mention_drops_the_bot_and_names_the_rest():
    roles = [SimpleNamespace(id=77, name="ops")]
    channels = [SimpleNamespace(id=88, name="dev")]
    msg = Message(f"<@{BOT.id}> ask <@{BOB.id}> and <@&77> in <#88> <:party:123> <a:wave:456> <@!{BOT.id}>",
                  mentions=(BOT, BOB), role_mentions=roles, channel_mentions=channels)
    inc = dp.to_incoming(msg, bot_id=BOT.id)
    assert inc.text == "ask @Bob and @ops in #dev :party: :wave:"
    assert inc.is_mention and not inc.is_dm and (inc.user_id, inc.channel_id) == ("2000", "500")
    unknown = Message(f"<@!{BOT.id}> what about <@5555> <@&6666> <#7777>?", mentions=(BOT,))
    assert dp.to_incoming(unknown, bot_id=BOT.id).text == "what about @user @role #channel?"


def test_dm_is_a_dm_not_a_mention():
    inc = dp.to_incoming(Message("k8s?", guild=None), bot_id=BOT.id)
    assert inc.is_dm and not inc.is_mention and inc.text == "k8s?"


def test_wants_reply_only_for_people_talking_to_the_bot():
    assert dp.wants_reply(mention("hi"), BOT.id)
    assert dp.wants_reply(Message("hi", guild=None), BOT.id)
    assert dp.wants_reply(mention("hi", type=discord.MessageType.reply), BOT.id)
    ignored = {
        "not mentioned": Message("serverless?"),
        "another user mentioned": Message(f"<@{BOB.id}> hi", mentions=(BOB,)),
        "another bot": mention("hi", author=OTHER_BOT),
        "another bot's DM": Message("hi", author=OTHER_BOT, guild=None),
        "itself": Message(f"<@{BOT.id}> echo", author=BOT, mentions=(BOT,)),
        "itself, not flagged as a bot": Message("hi", author=User(BOT.id, "trendbot"), guild=None),
        "a webhook": mention("hi", webhook_id=123),
        "a system message": mention("pinned", type=discord.MessageType.pins_add),
    }
    for why, msg in ignored.items():
        assert not dp.wants_reply(msg, BOT.id), why


# -- the same entry on every surface ------------------------------------------------------------


@pytest.mark.parametrize("question", ["is serverless cheaper?", "k8s vs plain docker?", "what are devs paid?",
                                      "mircoservices", "best pizza in naples"])
def test_same_question_same_entry_as_console_and_slack(shipped_bot, question):
    console_reply = shipped_bot.handle(console.to_incoming(question))
    slack_reply = shipped_bot.handle(slack_payloads.to_incoming(fixture("slash_command") | {"text": question}))
    surfaces = {
        "/ask": Interaction(command("ask", question=question)),
        "/trend": Interaction(command("trend", topic=question)),
        "mention": mention(question),
        "dm": Message(question, guild=None),
    }
    for surface, source in surfaces.items():
        reply = shipped_bot.handle(dp.to_incoming(source, bot_id=BOT.id))
        assert (reply.entry_id, reply.answered) == (console_reply.entry_id, console_reply.answered), surface
        assert reply.entry_id == slack_reply.entry_id, surface
        assert de.render(reply)[0].embeds[0]["title"] == console_reply.title, surface


# -- slash commands and buttons ------------------------------------------------------------------


async def test_trend_answers_in_public_at_once(mini_bot):
    interaction = Interaction(command("trend", topic="serverless"))
    await client_for(mini_bot).answer_interaction(interaction)
    ((what, kw),) = interaction.calls
    assert what == "send_message" and kw["ephemeral"] is False
    assert title(kw) == "Serverless computing" and "view" not in kw
    assert_no_mentions(kw)


@pytest.mark.parametrize("data, expect", [
    (command("trend"), "trendbot help"),
    (command("trend", topic="help"), "trendbot help"),
    (command("trend", topic="best pizza in naples"), "No good answer"),
    (command("ask", question="x" * 2500), "That message is too long"),
])
async def test_help_errors_and_declines_are_ephemeral(mini_bot, data, expect):
    interaction = Interaction(data)
    await client_for(mini_bot).answer_interaction(interaction)
    ((what, kw),) = interaction.calls
    assert what == "send_message" and kw["ephemeral"] is True and title(kw) == expect
    assert_no_mentions(kw)


async def test_ask_and_tip_are_public(mini_bot):
    for data, expect in ((command("ask", question="is serverless cheaper?"), "Is serverless cheaper than running servers?"),
                         (command("tip"), "Backend tip")):
        interaction = Interaction(data)
        await client_for(mini_bot).answer_interaction(interaction)
        ((what, kw),) = interaction.calls
        assert kw["ephemeral"] is False and title(kw) == expect


async def test_decline_buttons_answer_the_topic_when_pressed(mini_bot):
    client = client_for(mini_bot)
    interaction = Interaction(command("trend", topic="best pizza in naples"))
    await client.answer_interaction(interaction)
    ((_, kw),) = interaction.calls
    buttons = kw["view"].children
    assert all(isinstance(b, da.SuggestionButton) for b in buttons) and buttons
    assert [b.item.label for b in buttons] == ["Serverless computing", "Kubernetes"][: len(buttons)]
    assert all(b.custom_id.startswith(de.BUTTON_PREFIX) for b in buttons)
    assert kw["view"].timeout is None  # buttons keep working; the custom_id carries the query

    pressed = Interaction(press(buttons[0].custom_id[len(de.BUTTON_PREFIX):]), user=BOB, client=client)
    await buttons[0].callback(pressed)  # what discord.py runs on a press
    ((what, kw),) = pressed.calls
    assert what == "send_message" and kw["ephemeral"] is False and title(kw) == "Serverless computing"
    assert_no_mentions(kw)


async def test_more_edits_the_short_answer_into_the_whole_entry_in_place(mini_bot):
    client = client_for(mini_bot)
    interaction = Interaction(command("ask", question="does serverless scale with traffic"))
    await client.answer_interaction(interaction)
    ((_, kw),) = interaction.calls
    (more,) = kw["view"].children
    assert isinstance(more, da.MoreButton) and more.item.label == "More"
    assert more.custom_id == de.MORE_PREFIX + "serverless" and kw["view"].timeout is None

    pressed = Interaction({"custom_id": more.custom_id, "component_type": 2}, user=BOB, client=client)
    await more.callback(pressed)  # what discord.py runs on a press, also after a restart (dynamic item)
    ((what, kw),) = pressed.calls
    assert what == "edit_message" and kw["view"] is None  # in place, and the button is gone
    embed = kw["embeds"][0].to_dict()
    assert embed["title"] == "Serverless computing"
    assert [f["name"] for f in embed["fields"]] == ["Key points", "Tools", "Sources"]
    assert_no_mentions(kw)


async def test_a_command_that_raises_gets_a_private_apology_not_a_timeout(mini_bot, caplog):
    client = client_for(mini_bot)
    assert client.tree.on_error == client._on_command_error  # discord.py calls it for any command that raises
    interaction = Interaction(command("trend", topic="k8s"))
    await client.tree.on_error(interaction, app_commands.AppCommandError("boom"))
    ((what, kw),) = interaction.calls
    assert what == "send_message" and kw["ephemeral"] is True and "went wrong" in kw["content"]
    assert_no_mentions(kw)
    deferred = Interaction(command("trend", topic="k8s"))
    await deferred.response.defer(thinking=True)
    await client.tree.on_error(deferred, app_commands.AppCommandError("boom"))
    assert deferred.calls[-1][0] == "followup" and deferred.calls[-1][1]["ephemeral"] is True


async def test_a_mention_is_recorded_before_it_is_answered_and_answered_once(mini_bot, tmp_path):
    from adapters.inbox import Inbox
    from bot.sqlite_store import SQLiteStore

    with SQLiteStore(tmp_path / "t.db") as store:
        client = Client(mini_bot, ds.Settings(TOKEN), inbox=Inbox(store, "discord"))
        msg = mention("k8s")
        await client.on_message(msg)
        await client.on_message(msg)  # the same message again (another replica, a resumed session)
        assert len(msg.channel.sent) == 1
        assert store.record(f"discord:msg:{msg.id}", "discord", "{}", time.time(), 30) == "answered"
        interaction = Interaction(command("trend", topic="k8s"))
        await client.answer_interaction(interaction)
        assert store.record(f"discord:int:{interaction.id}", "discord", "{}", time.time(), 30) == "answered"


@pytest.fixture
def learnbot(mini_kb, tmp_path):
    from bot.core import TrendBot
    from bot.learning import Learning
    from bot.sqlite_store import SQLiteStore

    store = SQLiteStore(tmp_path / "learn.db")
    bot = TrendBot(mini_kb)
    bot.enable_learning(Learning(store))
    yield bot
    store.close()


async def test_an_answer_can_be_rated_privately_with_buttons_that_outlive_a_restart(learnbot):
    client = client_for(learnbot)
    interaction = Interaction(command("ask", question="is serverless cheaper?"))
    await client.answer_interaction(interaction)
    ((_, kw),) = interaction.calls
    rate = {b.item.label: b for b in kw["view"].children}
    assert {"Helpful", "Not helpful"} <= set(rate) and kw["view"].timeout is None
    assert all(isinstance(rate[k], da.SuggestionButton) for k in ("Helpful", "Not helpful"))  # dynamic: custom_id carries it
    for label, user, says in (("Not helpful", ALICE, "noted"), ("Not helpful", ALICE, "already"),
                              ("Helpful", ALICE, "changed"), ("Not helpful", BOB, "noted")):
        button = rate[label]
        pressed = Interaction({"custom_id": button.custom_id, "component_type": 2}, user=user, client=client)
        await button.callback(pressed)
        ((what, kw),) = pressed.calls
        assert what == "send_message" and kw["ephemeral"] is True and says in kw["embeds"][0].description
        assert_no_mentions(kw)
    (entry,) = learnbot.report(7).feedback
    assert (entry.helpful, entry.not_helpful) == (1, 1)


async def test_teach_and_report_are_for_managers(learnbot):
    from types import SimpleNamespace as NS

    client = client_for(learnbot)
    plain = Interaction(command("teach", entry="kubernetes", question="what about monorepos"))
    plain.permissions = NS(manage_guild=False, manage_channels=False)
    await client.answer_interaction(plain)
    assert "Not allowed" in plain.calls[0][1]["embeds"][0].title
    boss = Interaction(command("teach", entry="kubernetes", question="what about monorepos"))
    boss.permissions = NS(manage_guild=True, manage_channels=False)
    await client.answer_interaction(boss)
    ((_, kw),) = boss.calls
    assert kw["ephemeral"] is True and kw["embeds"][0].title == "Taught"
    assert learnbot.learning.phrasings() == {"kubernetes": ("what about monorepos",)}
    choices = await client.entry_choices(boss, "cheap")
    assert [c.value for c in choices] == ["serverless-cheaper"]
    report = Interaction(command("report"))
    report.permissions = NS(manage_guild=False, manage_channels=True)
    await client.answer_interaction(report)
    assert report.calls[0][1]["ephemeral"] is True and "trendbot report" in report.calls[0][1]["embeds"][0].title


async def test_long_answers_continue_in_followups_with_the_same_visibility(mini_bot):
    long = Reply(title="Long", text="\n\n".join("w " * 2000 for _ in range(3)), answered=False, kind="decline",
                 private=True, suggestions=(Suggestion("Kubernetes", "kubernetes"),))
    interaction = Interaction(command("ask", question="anything"))
    await client_for(RecordingCore(mini_bot, reply=long)).answer_interaction(interaction)
    assert [what for what, _ in interaction.calls] == ["send_message", "followup", "followup"]
    assert all(kw["ephemeral"] is True for _, kw in interaction.calls)
    assert ["view" in kw for _, kw in interaction.calls] == [False, False, True]
    for _, kw in interaction.calls:
        assert_no_mentions(kw)


async def test_slow_answer_is_deferred_then_edited_in(mini_bot):
    gate = threading.Event()
    core = RecordingCore(mini_bot, gate=gate)
    interaction = Interaction(command("trend", topic="kubernetes"))
    task = asyncio.create_task(client_for(core, defer_after=0.005).answer_interaction(interaction))
    await asyncio.wait_for(interaction.deferred.wait(), 5)
    assert not core.finished.is_set()  # deferred while the answer was still being worked on
    assert interaction.calls == [("defer", {"thinking": True})]
    gate.set()
    await asyncio.wait_for(task, 5)
    (what, kw) = interaction.calls[1]
    assert what == "edit" and title(kw) == "Kubernetes" and len(interaction.calls) == 2
    assert_no_mentions(kw)


async def test_slow_private_answer_replaces_the_public_thinking_message(mini_bot):
    gate = threading.Event()
    interaction = Interaction(command("trend", topic="best pizza in naples"))
    task = asyncio.create_task(client_for(RecordingCore(mini_bot, gate=gate), defer_after=0.005).answer_interaction(interaction))
    await asyncio.wait_for(interaction.deferred.wait(), 5)
    gate.set()
    await asyncio.wait_for(task, 5)
    assert [what for what, _ in interaction.calls] == ["defer", "edit", "followup", "delete"]
    _, followup = interaction.calls[2]
    assert followup["ephemeral"] is True and title(followup) == "No good answer" and "view" in followup
    for _, kw in interaction.sends:
        assert_no_mentions(kw)


async def test_fast_answer_is_not_deferred(mini_bot):
    interaction = Interaction(command("trend", topic="kubernetes"))
    await client_for(RecordingCore(mini_bot), defer_after=5).answer_interaction(interaction)
    assert [what for what, _ in interaction.calls] == ["send_message"]


async def test_an_expired_interaction_is_logged_not_raised(mini_bot, caplog):
    expired = discord.NotFound(SimpleNamespace(status=404, reason="Not Found"), {"code": 10062, "message": "Unknown interaction"})
    interaction = Interaction(command("tip"), fail=expired)
    await client_for(mini_bot).answer_interaction(interaction)
    assert interaction.calls and "could not answer an interaction in 500: 404" in caplog.text


async def test_autocomplete_is_registered_and_answers_choices(mini_bot):
    client = client_for(mini_bot)
    commands = {c.name: c.to_dict(client.tree) for c in client.tree.get_commands()}
    assert set(commands) == {"trend", "ask", "tip", "subscribe", "unsubscribe", "subscription", "teach", "report"}
    (topic,) = commands["trend"]["options"]
    assert topic["name"] == "topic" and topic["autocomplete"] is True and topic["required"] is False
    (question,) = commands["ask"]["options"]
    assert question["name"] == "question" and question["required"] is True and not commands["tip"]["options"]
    choices = await client.topic_choices(Interaction(command("trend")), "kubernets")
    assert [(c.name, c.value) for c in choices] == [("Kubernetes", "kubernetes")]


# -- mentions and DMs -----------------------------------------------------------------------------


async def test_mention_is_answered_with_a_reply_to_the_question(mini_bot):
    msg = mention("is serverless cheaper?")
    await client_for(mini_bot).on_message(msg)
    (kw,) = msg.channel.sent
    ref = kw["reference"]  # a reply, even if the question is deleted meanwhile
    assert (ref.message_id, ref.channel_id, ref.fail_if_not_exists) == (msg.id, msg.channel.id, False)
    assert title(kw) == "Is serverless cheaper than running servers?" and "view" not in kw
    assert_no_mentions(kw)


async def test_dm_is_answered(mini_bot):
    msg = Message("k8s?", guild=None)
    await client_for(mini_bot).on_message(msg)
    (kw,) = msg.channel.sent
    assert title(kw) == "Kubernetes" and kw["reference"].message_id == msg.id
    assert_no_mentions(kw)


async def test_mention_decline_is_public_with_buttons(mini_bot):
    msg = mention("best pizza in naples")
    await client_for(mini_bot).on_message(msg)
    (kw,) = msg.channel.sent
    assert title(kw) == "No good answer" and [b.custom_id for b in kw["view"].children][0].startswith(de.BUTTON_PREFIX)


async def test_other_messages_are_ignored(mini_bot):
    core = RecordingCore(mini_bot)
    client = client_for(core)
    channel = Channel()
    for msg in (Message("serverless?", channel=channel), mention("hi", author=OTHER_BOT, channel=channel),
                Message(f"<@{BOT.id}> echo", author=BOT, mentions=(BOT,), channel=channel),
                mention("hi", webhook_id=1, channel=channel), mention("x", type=discord.MessageType.pins_add, channel=channel)):
        await client.on_message(msg)
    assert not channel.sent and not core.seen
    await client.on_message(mention("k8s", channel=channel))  # then a person
    assert len(channel.sent) == 1 and [i.user_id for i in core.seen] == ["2000"]


async def test_echoed_input_cannot_ping(mini_bot):
    echo = RecordingCore(mini_bot)
    echo.handle = lambda inc: Reply(title=f"You said {inc.text}", text=f"You said: {inc.text}", answered=True, kind="answer")
    msg = Message(f"<@{BOT.id}> @everyone @here <@{BOB.id}> <@&77>", mentions=(BOT, BOB))
    for embeds in (True, False):
        msg.channel.embed_links = embeds
        msg.channel.sent.clear()
        await client_for(echo).on_message(msg)
        (kw,) = msg.channel.sent
        shown = kw["content"] if not embeds else kw["embeds"][0].description + kw["embeds"][0].title
        assert "@\u200beveryone" in shown and "@\u200bhere" in shown and "@Bob" in shown
        assert not re.search(r"@(everyone|here)\b|(?<!\\)<@", shown)
        assert_no_mentions(kw)


async def test_without_embed_links_the_answer_is_plain_content(mini_bot):
    msg = mention("k8s?", channel=Channel(embed_links=False))
    await client_for(mini_bot).on_message(msg)
    (kw,) = msg.channel.sent
    assert "embeds" not in kw and kw["content"].startswith("**Kubernetes**\n\nKubernetes schedules")
    assert len(kw["content"]) <= 2000
    assert_no_mentions(kw)


async def test_missing_send_permission_is_logged_not_raised(mini_bot, caplog):
    forbidden = discord.Forbidden(SimpleNamespace(status=403, reason="Forbidden"), {"code": 50013, "message": "Missing Permissions"})
    msg = mention("k8s?", channel=Channel(fail=forbidden))
    await client_for(mini_bot).on_message(msg)
    assert len(msg.channel.sent) == 1 and "Send Messages" in caplog.text


# -- start-up ---------------------------------------------------------------------------------------


class SyncRecorder:
    def __init__(self, fail: Exception | None = None):
        self.calls: list = []
        self.fail = fail

    async def __call__(self, *, guild=None):
        self.calls.append(guild)
        if self.fail is not None:
            raise self.fail
        return []


async def test_commands_sync_once_across_repeated_ready(mini_bot):
    said: list[str] = []
    client = client_for(mini_bot, announce=said.append)
    client.tree.sync = sync = SyncRecorder()
    await client.setup_hook()  # discord.py: once, at login
    for _ in range(3):  # on_ready: after the first connection and again after every full reconnect
        await client.on_ready()
    await client.sync_commands()
    assert sync.calls == [None]  # once, globally
    assert said[0] == "connected to Discord as trendbot (1000) in 0 servers"
    assert said[1] == f"invite it to a server: {ds.invite_url(4242)}" and len(said) == 2


async def test_guild_flag_syncs_to_that_server_only(mini_bot):
    client = client_for(mini_bot, settings=ds.Settings(TOKEN, guild_id=123456789012345678))
    client.tree.sync = sync = SyncRecorder()
    await client.setup_hook()
    await client.on_ready()
    (guild,) = sync.calls
    assert guild.id == 123456789012345678
    assert {c.name for c in client.tree.get_commands(guild=guild)} == {"trend", "ask", "tip", "subscribe", "unsubscribe",
                                                                   "subscription", "teach", "report"}


async def test_sync_refused_for_the_guild_names_the_flag(mini_bot):
    client = client_for(mini_bot, settings=ds.Settings(TOKEN, guild_id=99))
    client.tree.sync = SyncRecorder(discord.Forbidden(SimpleNamespace(status=403, reason="Forbidden"),
                                                      {"code": 50001, "message": "Missing Access"}))
    with pytest.raises(SettingsError, match=r"server 99 \(--guild\).*applications\.commands"):
        await client.setup_hook()


async def test_an_interactions_endpoint_url_stops_the_start(mini_bot):
    class WithEndpoint(Client):
        application = SimpleNamespace(interactions_endpoint_url="https://example.com/interactions")

    client = WithEndpoint(mini_bot, ds.Settings(TOKEN))
    client.tree.sync = sync = SyncRecorder()
    with pytest.raises(SettingsError, match="Interactions Endpoint URL"):
        await client.setup_hook()
    assert not sync.calls


def _failing_client(core, where: str, error: Exception) -> da.DiscordClient:
    class Failing(da.DiscordClient):
        async def login(self, token):
            assert token == TOKEN
            if where == "login":
                raise error

        async def connect(self, *, reconnect=True):
            raise error

    return Failing(core, ds.Settings(TOKEN))


@pytest.mark.parametrize("where, error, says", [
    ("login", discord.LoginFailure("Improper token has been passed."), r"DISCORD_TOKEN was rejected.*Bot → Reset Token"),
    ("connect", discord.PrivilegedIntentsRequired(None), r"privileged intent.*Bot → Privileged Gateway Intents"),
    ("connect", discord.ConnectionClosed(SimpleNamespace(close_code=4004), shard_id=None, code=4004),
     r"DISCORD_TOKEN was rejected by Discord's gateway"),
    ("login", OSError("Name or service not known"), r"cannot reach Discord: OSError"),
])
async def test_start_failures_say_what_to_fix(mini_bot, where, error, says):
    with pytest.raises(SettingsError, match=says) as caught:
        await _failing_client(mini_bot, where, error).serve()
    assert TOKEN not in str(caught.value)
    assert caught.value.__suppress_context__  # the CLI prints one line, not a chain of tracebacks


# -- settings ---------------------------------------------------------------------------------------


def test_settings_read_the_token_and_hide_it():
    st = ds.Settings.from_env({"DISCORD_TOKEN": f"  {TOKEN}\n"})
    assert st.token == TOKEN and st.guild_id is None and TOKEN not in repr(st) and st.secrets == (TOKEN,)


def test_settings_token_from_a_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    assert ds.Settings.from_env({"DISCORD_TOKEN_FILE": str(path)}).token == TOKEN
    with pytest.raises(SettingsError, match="DISCORD_TOKEN_FILE"):
        ds.Settings.from_env({"DISCORD_TOKEN_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize("env, says", [
    ({}, "DISCORD_TOKEN is not set"),
    ({"DISCORD_TOKEN": "  "}, "DISCORD_TOKEN is not set"),
    ({"DISCORD_TOKEN": f"Bot {TOKEN}"}, "without the 'Bot ' prefix"),
    ({"DISCORD_TOKEN": "0123456789abcdefLEAKMEabcdef0123"}, "not the Client Secret"),  # a client secret's shape
    ({"DISCORD_TOKEN": "LEAKME has spaces.in.it"}, "DISCORD_TOKEN is malformed"),
])
def test_bad_tokens_are_named_never_shown(env, says):
    with pytest.raises(SettingsError, match=re.escape(says)) as caught:
        ds.Settings.from_env(env)
    assert "LEAKME" not in str(caught.value) and TOKEN not in str(caught.value)


def test_secret_filter_redacts_messages_and_tracebacks():
    filt = SecretFilter([TOKEN])
    record = logging.LogRecord("discord.http", logging.DEBUG, __file__, 1, "headers=%s", ({"Authorization": f"Bot {TOKEN}"},), None)
    try:
        raise RuntimeError(f"bad {TOKEN}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert filt.filter(record)
    assert record.getMessage() == "headers={'Authorization': 'Bot [redacted]'}"
    assert TOKEN not in record.exc_text and "[redacted]" in record.exc_text


def test_invite_url_asks_for_both_scopes_and_the_permissions_in_the_readme():
    url = ds.invite_url(4242)
    assert url == ("https://discord.com/oauth2/authorize?client_id=4242&scope=bot+applications.commands"
                   f"&permissions={ds.PERMISSIONS.value}")
    p = ds.PERMISSIONS
    assert p.view_channel and p.send_messages and p.send_messages_in_threads and p.embed_links and p.read_message_history
    assert not (p.administrator or p.mention_everyone or p.manage_messages)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"permissions={ds.PERMISSIONS.value}" in readme and "scope=bot+applications.commands" in readme


def test_no_privileged_intent_is_requested(mini_bot):
    intents = client_for(mini_bot).intents
    assert not (intents.message_content or intents.members or intents.presences)
    assert intents.guild_messages and intents.dm_messages


# -- the real discord.py client against a fake Discord on loopback -----------------------------------


class Watched(da.DiscordClient):
    """The real client; each on_ready also sets an event the test can await."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._connection.guild_ready_timeout = 0.01  # READY lists no guilds: don't wait 2 s for them
        self.ready_events = [asyncio.Event(), asyncio.Event()]

    async def on_ready(self) -> None:
        await super().on_ready()
        self.ready_events[min(self.readies, 2) - 1].set()

    async def before_identify_hook(self, shard_id, *, initial=False) -> None:
        pass  # discord.py waits 5 s before identifying again (Discord's identify rate limit); no need here


async def wait(fake: FakeDiscord, predicate):
    return await asyncio.to_thread(fake.wait_for, predicate)


async def test_real_client_answers_dms_commands_autocomplete_and_buttons(mini_bot, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)  # everything discord.py logs, its gateway and HTTP dumps included
    with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_url)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
        said: list[str] = []
        client = Watched(mini_bot, ds.Settings(TOKEN), announce=said.append)
        serving = asyncio.create_task(client.serve())
        try:
            await asyncio.wait_for(client.ready_events[0].wait(), 10)
            assert said[0] == "connected to Discord as trendbot (1000) in 0 servers"
            (sync,) = fake.requests("PUT", "/commands")
            assert sync.path == f"/applications/{discord_fake.APP_ID}/commands"
            assert {c["name"] for c in sync.data} == {"trend", "ask", "tip", "subscribe", "unsubscribe", "subscription",
                                                      "teach", "report"}
            assert fake.identifies[0]["intents"] == client.intents.value and not client.intents.message_content

            # A DM: a reply referencing the question, pinging no one.
            fake.send("MESSAGE_CREATE", discord_fake.dm_message("k8s?"))
            (post,) = await wait(fake, lambda f: f.requests("POST", "/channels/600/messages"))
            assert post.data["allowed_mentions"] == {"parse": []}
            assert str(post.data["message_reference"]["message_id"]) == "5001"
            assert post.data["message_reference"]["fail_if_not_exists"] is False
            assert post.data["embeds"][0]["title"] == "Kubernetes"

            # Its own message and another bot's are ignored.
            fake.send("MESSAGE_CREATE", discord_fake.dm_message("echo", author=discord_fake.BOT, message_id="5002"))
            fake.send("MESSAGE_CREATE", discord_fake.dm_message("k8s?", message_id="5003",
                                                               author={**discord_fake.ALICE, "id": "3000", "bot": True}))

            # /trend with a topic: public; a decline: ephemeral, with buttons.
            fake.send("INTERACTION_CREATE", discord_fake.interaction(2, command("trend", topic="serverless")))
            fake.send("INTERACTION_CREATE", discord_fake.interaction(2, command("trend", topic="best pizza in naples"),
                                                                     interaction_id="7002"))
            card = (await wait(fake, lambda f: f.requests("POST", "/interactions/7001/")))[0].data
            assert card["type"] == 4 and card["data"]["embeds"][0]["title"] == "Serverless computing"
            assert not card["data"].get("flags") and card["data"]["allowed_mentions"] == {"parse": []}
            decline = (await wait(fake, lambda f: f.requests("POST", "/interactions/7002/")))[0].data
            assert decline["data"]["flags"] & 64 and decline["data"]["embeds"][0]["title"] == "No good answer"
            (row,) = decline["data"]["components"]
            button = row["components"][0]
            assert button["custom_id"].startswith(de.BUTTON_PREFIX) and button["label"]

            # Autocomplete: fuzzy choices for what was typed.
            typing = {"id": "1", "name": "trend", "type": 1,
                      "options": [{"name": "topic", "type": 3, "value": "kubernets", "focused": True}]}
            fake.send("INTERACTION_CREATE", discord_fake.interaction(4, typing, interaction_id="7003"))
            choices = (await wait(fake, lambda f: f.requests("POST", "/interactions/7003/")))[0].data
            assert choices == {"type": 8, "data": {"choices": [{"name": "Kubernetes", "value": "kubernetes"}]}}

            # Pressing the decline's first button answers that topic, in public.
            message = {**discord_fake.dm_message("", message_id="5004"), "author": discord_fake.BOT,
                       "components": decline["data"]["components"]}
            fake.send("INTERACTION_CREATE", discord_fake.interaction(
                3, {"custom_id": button["custom_id"], "component_type": 2}, interaction_id="7004", message=message))
            pressed = (await wait(fake, lambda f: f.requests("POST", "/interactions/7004/")))[0].data
            assert pressed["type"] == 4 and not pressed["data"].get("flags")
            assert pressed["data"]["embeds"][0]["title"] == button["label"]

            # A new session fires on_ready again: nothing is synced twice.
            fake.invalidate()
            await asyncio.wait_for(client.ready_events[1].wait(), 10)
            assert len(fake.identifies) == 2 and len(fake.requests("PUT", "/commands")) == 1
            assert len(said) == 2  # "connected" and the invite link, once

            assert len(fake.requests("POST", "/channels/600/messages")) == 1  # the bots' messages got nothing
        finally:
            await client.close()
            await asyncio.wait_for(serving, 10)
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "WebSocket Event" in text  # the gateway debug dumps did run
    assert TOKEN not in text


# -- the CLI as a process --------------------------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "TRENDBOT_"))}
    # A store of its own and /healthz on a free port: `trendbot discord` is the runner, like serve.
    import tempfile

    db = os.path.join(tempfile.mkdtemp(prefix="trendbot-cli-"), "t.db")
    return {**env, "PYTHONPATH": str(ROOT), "TRENDBOT_DB": db, "TRENDBOT_HTTP_HOST": "127.0.0.1",
            "TRENDBOT_HTTP_PORT": "0", **extra}


def start_cli(fake: FakeDiscord | None, *args: str, **env: str) -> subprocess.Popen:
    code = fake.launcher() if fake else "import sys, trendbot.cli; sys.exit(trendbot.cli.main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "--knowledge", str(MINI), *args], env=cli_env(**env),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_cli_start_failures_are_one_line_saying_what_to_fix():
    """Missing, malformed and rejected token, and a refused privileged intent; started together to stay fast."""
    with FakeDiscord(token="MTAwMA.other.token-the-app-really-has") as rejecting, FakeDiscord(gateway="intent") as intent:
        cases = [
            (start_cli(None, "-v", "discord"), "DISCORD_TOKEN is not set"),
            (start_cli(None, "discord", DISCORD_TOKEN="not-a-token-LEAKME"), "DISCORD_TOKEN is malformed"),
            (start_cli(rejecting, "-v", "discord", DISCORD_TOKEN=TOKEN), "DISCORD_TOKEN was rejected by Discord"),
            (start_cli(intent, "-v", "discord", DISCORD_TOKEN=TOKEN), "Privileged Gateway Intents"),
        ]
        for proc, says in cases:
            try:
                out, err = proc.communicate(timeout=60)
            finally:
                proc.kill()
            assert proc.returncode == 2, (says, err)
            problems = [line for line in err.splitlines() if not line.startswith(("DEBUG ", "INFO "))]
            assert problems == [f"trendbot discord: {problems[0].split(': ', 1)[1]}"] and says in problems[0], err
            assert "Traceback" not in err and TOKEN not in out + err and "LEAKME" not in out + err
        assert rejecting.requests("GET", "/users/@me") and not rejecting.identifies
        assert len(intent.identifies) == 1 and intent.identifies[0]["token"] == TOKEN  # it did get that far


@pytest.mark.slow
def test_cli_runs_answers_and_stops_on_sigterm_without_logging_the_token():
    with FakeDiscord() as fake:
        proc = start_cli(fake, "-v", "discord", "--guild", "123456789012345678", DISCORD_TOKEN=TOKEN)
        err: list[str] = []
        connected = threading.Event()

        def read() -> None:
            for line in proc.stderr:
                err.append(line)
                if "connected to Discord as trendbot" in line:
                    connected.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert connected.wait(30), "".join(err)
            (sync,) = fake.requests("PUT", "/commands")
            assert sync.path == f"/applications/{discord_fake.APP_ID}/guilds/123456789012345678/commands"
            fake.send("MESSAGE_CREATE", discord_fake.dm_message("is serverless cheaper?"))
            (post,) = fake.wait_for(lambda f: f.requests("POST", "/channels/600/messages"))
            assert post.data["embeds"][0]["title"] == "Is serverless cheaper than running servers?"
            assert post.headers["Authorization"] == f"Bot {TOKEN}"  # the token was in use all along
            proc.terminate()  # SIGTERM: the bot stops cleanly
            assert proc.wait(timeout=15) == 0
        finally:
            proc.kill()
            reader.join(5)
            proc.stdout.close()
            proc.stderr.close()
    text = "".join(err)
    assert "DEBUG" in text and "invite it to a server: https://discord.com/oauth2/authorize?client_id=4242" in text
    assert TOKEN not in text and "Traceback" not in text
