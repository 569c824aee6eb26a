"""Daily tips: subscription commands, exactly-once posting, failures, and the console poster."""
from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import markup

from adapters import console
from bot.core import Incoming, TrendBot
from bot.schedule import Subscription
from bot.sqlite_store import SQLiteStore as Store
from bot.tips import DailyTips, PostError, tip_reply
from tests.conftest import MINI, NINE_UTC

ROOT = Path(__file__).resolve().parents[1]


class RecordingPoster:
    """A Poster that records what it posts; fails on the channels in `fail` with the given kind."""

    def __init__(self, fail: dict[str, bool] | None = None):
        self.posts: list[tuple[str, str]] = []
        self.fail = fail or {}

    async def post(self, channel_id, reply):
        if channel_id in self.fail:
            raise PostError(f"cannot post to {channel_id}", permanent=self.fail[channel_id])
        self.posts.append((channel_id, reply.entry_id))


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "tips.db"


@pytest.fixture
def bot(mini_kb, store_db):
    """A bot with daily tips over a store of each kind (SQLite, PostgreSQL), its clock at NINE_UTC."""
    bot = TrendBot(mini_kb)
    bot.enable_tips(store_db.open(), clock=lambda: NINE_UTC)
    return bot


def run(tips: DailyTips, poster, now=NINE_UTC, platform="slack"):
    return asyncio.run(tips.run_once({platform: poster}, now))


def command(bot, text, channel="C1", platform="slack", can_manage=True):
    return bot.handle(Incoming(text, platform=platform, channel_id=channel, is_command=True,
                               can_manage=lambda: can_manage))


# -- commands ---------------------------------------------------------------------------------


def test_subscribe_with_defaults_then_show_and_unsubscribe(bot):
    reply = command(bot, "subscribe")
    assert reply.answered and not reply.private and reply.title == "Daily tips on"
    assert "09:00 UTC" in reply.text and "all topics" in reply.text
    assert "Mon 04 May 09:00 UTC" in reply.text  # due right now: posts on the next tick
    assert bot.tips.store.subscription("slack", "C1") == Subscription("slack", "C1", dt.time(9, 0), "UTC", ())
    assert "09:00 UTC" in command(bot, "subscription", can_manage=False).text
    assert command(bot, "unsubscribe").title == "Daily tips stopped"
    assert bot.tips.store.subscription("slack", "C1") is None
    assert command(bot, "subscription").title == "No daily tips here"


def test_a_subscription_belongs_to_the_team_it_was_made_in(bot):
    bot.handle(Incoming("subscribe 08:00 UTC", platform="slack", channel_id="C1", team="T1", is_command=True,
                        can_manage=lambda: True))
    assert bot.tips.store.subscription("slack", "C1").team == "T1"
    assert command(bot, "subscribe 08:00 UTC").title == "Daily tips on"  # again where teams are not told apart
    assert bot.tips.store.subscription("slack", "C1").team == ""


def test_subscribe_time_zone_and_topics(bot):
    reply = command(bot, "subscribe 08:30 America/New_York k8s serverles")
    assert "08:30 America/New_York" in reply.text and "Kubernetes, Serverless computing" in reply.text
    assert "Mon 04 May 08:30 EDT" in reply.text  # 09:00 UTC is 05:00 in New York: today's is ahead
    assert bot.tips.store.subscription("slack", "C1").topics == ("kubernetes", "serverless")


@pytest.mark.parametrize("args, title", [
    ("25:00", "That time doesn't work"),
    ("9:00 Mars/Olympus", "Unknown time zone"),
    ("9:00 UTC basketweaving", "Unknown topic"),
])
def test_bad_subscribe_arguments_get_a_clear_private_message_with_an_example(bot, args, title):
    reply = command(bot, f"subscribe {args}")
    assert reply.private and reply.title == title
    assert "/trend subscribe" in reply.text or "/trend topics" in reply.text
    assert bot.tips.store.subscription("slack", "C1") is None


def test_changes_need_channel_management(bot):
    for verb in ("subscribe", "unsubscribe"):
        reply = command(bot, verb, can_manage=False)
        assert reply.private and reply.title == "Not allowed here"
    assert bot.tips.store.subscription("slack", "C1") is None


def test_without_a_store_subscriptions_are_explained(mini_bot):
    reply = command(mini_bot, "subscribe")
    assert reply.private and "store" in reply.text


# -- posting exactly once ---------------------------------------------------------------------


def test_due_tip_posts_once_per_day_and_reads_as_a_tip(bot):
    command(bot, "subscribe 09:00 UTC")
    poster = RecordingPoster()
    assert [r.outcome for r in run(bot.tips, poster)] == ["sent"]
    assert [r.outcome for r in run(bot.tips, poster, NINE_UTC + dt.timedelta(minutes=5))] == []
    assert len(poster.posts) == 1
    reply = tip_reply(bot.kb, bot.kb.tips[poster.posts[0][1]], daily=True)
    assert reply.title == "Daily backend tip" and reply.sources and "More on this: `/trend " in reply.text


def test_no_repeat_until_every_eligible_tip_posted_and_topics_filter(bot):
    command(bot, "subscribe 09:00 UTC", channel="ALL")
    command(bot, "subscribe 09:00 UTC kubernetes", channel="K8S")
    poster = RecordingPoster()
    for day in range(4):
        run(bot.tips, poster, NINE_UTC + dt.timedelta(days=day))
    all_posts = [tip for ch, tip in poster.posts if ch == "ALL"]
    assert sorted(all_posts[:2]) == ["tip-one", "tip-two"] and sorted(all_posts[2:]) == ["tip-one", "tip-two"]
    assert [tip for ch, tip in poster.posts if ch == "K8S"] == ["tip-two"] * 4


def test_two_schedulers_on_one_database_post_once(mini_kb, store_db):
    first, second = TrendBot(mini_kb), TrendBot(mini_kb)
    a, b = first.enable_tips(store_db.open()), second.enable_tips(store_db.open())
    for ch in ("C1", "C2", "C3"):
        a.store.subscribe(Subscription("slack", ch))
    poster = RecordingPoster()

    async def both():
        return await asyncio.gather(a.run_once({"slack": poster}, NINE_UTC), b.run_once({"slack": poster}, NINE_UTC))

    asyncio.run(both())
    assert sorted(ch for ch, _ in poster.posts) == ["C1", "C2", "C3"]


@pytest.mark.slow
def test_two_processes_post_once_per_channel(store_db):
    with store_db.open() as st:
        for i in range(10):
            st.subscribe(Subscription("slack", f"C{i}"))
    code = f"""
import asyncio, datetime as dt, json, sys
from bot import config, knowledge
from bot.core import TrendBot
from trendbot import wiring
kb = knowledge.load({str(MINI)!r})
tips = TrendBot(kb).enable_tips(wiring.open_db(config.load({{"TRENDBOT_DB": {store_db.target!r}}})))
posted = []
class P:
    async def post(self, channel_id, reply):
        posted.append(channel_id)
now = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.timezone.utc)
asyncio.run(tips.run_once({{"slack": P()}}, now))
print(json.dumps(posted))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert sorted(outs[0] + outs[1]) == sorted(f"C{i}" for i in range(10))


def test_failure_part_way_reposts_only_the_rest(bot):
    for i in range(10):
        bot.tips.store.subscribe(Subscription("slack", f"C{i}"))
    broken = RecordingPoster(fail={f"C{i}": False for i in range(3, 10)})
    results = run(bot.tips, broken)
    assert [r.outcome for r in results].count("sent") == 3
    healed = RecordingPoster()
    run(bot.tips, healed, NINE_UTC + dt.timedelta(minutes=1))
    assert sorted(ch for ch, _ in healed.posts) == [f"C{i}" for i in range(3, 10)]


def test_crash_between_claim_and_send_is_retried_after_the_timeout(bot):
    bot.tips.store.subscribe(Subscription("slack", "C1"))
    assert bot.tips.store.claim_post("slack", "C1", "2026-05-04", NINE_UTC.timestamp(), stale_after=600)
    poster = RecordingPoster()  # ...and the process that claimed it died before sending
    assert [r.outcome for r in run(bot.tips, poster, NINE_UTC + dt.timedelta(minutes=5))] == ["claimed-elsewhere"]
    assert [r.outcome for r in run(bot.tips, poster, NINE_UTC + dt.timedelta(minutes=11))] == ["sent"]
    assert [r.outcome for r in run(bot.tips, poster, NINE_UTC + dt.timedelta(minutes=30))] == []
    assert len(poster.posts) == 1


def test_catch_up_after_downtime_posts_today_once_never_old_days(bot):
    bot.tips.store.subscribe(Subscription("slack", "C1"))
    poster = RecordingPoster()
    run(bot.tips, poster, NINE_UTC + dt.timedelta(days=2, hours=3))  # down for two days; back at 12:00
    run(bot.tips, poster, NINE_UTC + dt.timedelta(days=2, hours=4))
    assert len(poster.posts) == 1
    assert bot.tips.store.sent_tips("slack", "C1")[0][0] == "2026-05-06"


def test_permanent_failures_deactivate_the_channel(bot, caplog):
    bot.tips.store.subscribe(Subscription("slack", "GONE"))
    poster = RecordingPoster(fail={"GONE": True})
    outcomes = [run(bot.tips, poster, NINE_UTC + dt.timedelta(minutes=m))[0].outcome for m in range(3)]
    assert outcomes == ["failed", "failed", "deactivated"]
    assert run(bot.tips, poster, NINE_UTC + dt.timedelta(minutes=4)) == []
    assert not bot.tips.store.subscription("slack", "GONE").active
    assert "deactivated" in caplog.text
    assert "Paused" in command(bot, "subscription", channel="GONE").text
    command(bot, "subscribe", channel="GONE")
    assert bot.tips.store.subscription("slack", "GONE").active


def test_console_channel_is_a_platform_too(mini_kb, db):
    bot = TrendBot(mini_kb)
    bot.enable_tips(lambda: Store(db), clock=lambda: NINE_UTC)
    reply = bot.handle(console.to_incoming("/trend subscribe 09:00 UTC"))
    assert reply.title == "Daily tips on"
    out = io.StringIO()
    assert [r.outcome for r in run(bot.tips, console.ConsolePoster(out), platform="console")] == ["sent"]
    assert out.getvalue().startswith("Daily backend tip\n\n")
    assert [r.outcome for r in run(bot.tips, console.ConsolePoster(out), platform="console")] == []


def test_store_is_opened_only_when_needed(mini_kb, db):
    opened = []
    bot = TrendBot(mini_kb)
    bot.enable_tips(lambda: opened.append(1) or Store(db))
    bot.handle(Incoming("k8s"))
    assert opened == [] and not db.exists()
    bot.handle(Incoming("subscription", is_command=True))
    assert opened == [1]


def test_run_loop_posts_each_tick_until_stopped(bot):
    bot.tips.store.subscribe(Subscription("slack", "C1"))
    poster = RecordingPoster()
    ticks = []

    async def main():
        stop = asyncio.Event()

        async def sleep(seconds):
            ticks.append(seconds)
            if len(ticks) == 3:
                stop.set()

        await bot.tips.run({"slack": poster}, stop, sleep=sleep, tick=30.0)

    asyncio.run(main())
    assert ticks == [30.0, 30.0, 30.0] and len(poster.posts) == 1


def test_run_loop_survives_a_failing_pass(bot, monkeypatch, caplog):
    calls = []

    async def broken(posters, now=None, stop=None):
        calls.append(1)
        raise RuntimeError("database went away")

    monkeypatch.setattr(bot.tips, "run_once", broken)

    async def main():
        stop = asyncio.Event()

        async def sleep(seconds):
            if len(calls) == 2:
                stop.set()

        await bot.tips.run({}, stop, sleep=sleep)

    asyncio.run(main())
    assert len(calls) == 2 and "daily tips pass failed" in caplog.text


def test_a_post_cancelled_midway_gives_its_claim_back(bot):
    bot.tips.store.subscribe(Subscription("slack", "C0STUCK"))

    class Stuck:
        async def post(self, channel_id, reply):
            await asyncio.Event().wait()

    async def go():
        task = asyncio.create_task(bot.tips.run_once({"slack": Stuck()}, NINE_UTC))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    day = NINE_UTC.date().isoformat()
    assert not bot.tips.store.posted_on("slack", "C0STUCK", day)
    assert bot.tips.store.claim_post("slack", "C0STUCK", day, now=NINE_UTC.timestamp(), stale_after=600)


def test_a_pass_stops_between_channels_when_asked(bot):
    for channel in ("C1", "C2", "C3"):
        bot.tips.store.subscribe(Subscription("slack", channel))
    stop = asyncio.Event()

    class StopAfterOne(RecordingPoster):
        async def post(self, channel_id, reply):
            await super().post(channel_id, reply)
            stop.set()

    poster = StopAfterOne()
    results = asyncio.run(bot.tips.run_once({"slack": poster}, NINE_UTC, stop=stop))
    assert len(poster.posts) == 1 and [r.outcome for r in results] == ["sent"]


@pytest.mark.parametrize("hostile", ["[Reset](https://evil.example)", "**urgent**", "`rm`",
                                     "<https://evil.example|click>", "@everyone", "_under_", "~gone~"])
def test_an_echoed_topic_is_plain_text_on_every_surface(tipbot, hostile):
    import re

    from adapters import console, discord_embeds, slack_blocks

    reply = command(tipbot, f"subscribe 09:00 UTC {hostile}")
    assert reply.title == "Unknown topic"
    spans = [s for b in markup.parse(reply.text) for item in b.items for s in item]
    (echoed,) = [s for s in spans if hostile in s.text]
    assert not (echoed.bold or echoed.code or echoed.url)  # the input stays one plain span
    slack = "\n".join(b["text"]["text"] for b in slack_blocks.render(reply)["blocks"] if b["type"] == "section")
    assert "<https" not in slack and "|click>" not in slack and "<!" not in slack  # no live link or mention
    assert not re.search(r"[*_~`](?!\u200b)\w", slack.replace("`/trend topics`", "").replace(
        "`/trend subscribe 09:00 UTC serverless`", ""))  # no formatting mark left live
    discord = discord_embeds.render(reply)[0].embeds[0]["description"]
    assert not re.search(r"(?<!\\)\]\(", discord) and "@everyone" not in discord  # no masked link, no ping
    assert hostile in console.render(reply)  # the terminal shows it as typed
