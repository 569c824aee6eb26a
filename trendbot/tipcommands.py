"""`trendbot tips list|preview|run-once`: the daily-tip subscriptions from the command line."""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys

from adapters import console
from adapters.secrets import SettingsError
from bot.config import Config
from bot.core import TrendBot
from bot.schedule import UTC, local_date, next_post
from bot.store import StoreError
from bot.tips import DailyTips, PostResult, tip_reply
from trendbot import registry, wiring


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `tips` command and its three actions."""
    tips = sub.add_parser("tips", help="daily tips: list subscriptions, preview the next tip, post what is due")
    actions = tips.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="subscriptions, their next post times and last posts")
    preview = actions.add_parser("preview", help="the tip a channel gets next")
    preview.add_argument("--channel", required=True, help="channel id (`console` for the console)")
    preview.add_argument("--platform", default="console", choices=("console", *registry.PLATFORMS))
    once = actions.add_parser("run-once", help="post what is due now (or at --now), then exit")
    once.add_argument("--now", metavar="ISO-8601", help="pretend it is this instant, e.g. 2026-05-04T09:00:00+02:00")


def run(bot: TrendBot, config: Config, args: argparse.Namespace) -> int:
    """Run one `tips` action; a store that cannot be opened is exit code 2."""
    try:
        if args.action == "list":
            return _list(bot.tips)
        if args.action == "preview":
            return _preview(bot, args.platform, args.channel)
        return _run_once(bot.tips, args.now)
    except StoreError as exc:
        print(f"trendbot tips: {exc}", file=sys.stderr)
        return 2


def _list(tips: DailyTips) -> int:
    subs = tips.store.subscriptions(active_only=False)
    if not subs:
        print("No channel is subscribed to daily tips.")
    now = dt.datetime.now(UTC)
    for sub in subs:
        sent = tips.store.sent_tips(sub.platform, sub.channel_id)
        posted = bool(sent) and sent[-1][0] == local_date(sub, now).isoformat()
        when = next_post(sub, now, posted).astimezone(sub.tz).strftime("%Y-%m-%d %H:%M %Z")
        last = f"{sent[-1][0]} {sent[-1][1]}" if sent else "never"
        state = "" if sub.active else " (paused: posting kept failing)"
        print(f"{sub.platform}:{sub.channel_id}  {sub.time:%H:%M} {sub.zone}  topics: {','.join(sub.topics) or 'all'}"
              f"  next: {when}  last: {last}{state}")
    return 0


def _preview(bot: TrendBot, platform: str, channel: str) -> int:
    sub = bot.tips.store.subscription(platform, channel)
    if sub is None:
        print(f"{platform}:{channel} is not subscribed to daily tips.", file=sys.stderr)
        return 1
    tip = bot.tips.next_tip(sub)
    if tip is None:
        print("No tips match this channel's topics.", file=sys.stderr)
        return 1
    print(console.render(tip_reply(bot.kb, tip, daily=True), console.wants_color(sys.stdout)))
    return 0


def _run_once(tips: DailyTips, when: str | None) -> int:
    now = dt.datetime.now(UTC)
    if when:
        try:
            now = dt.datetime.fromisoformat(when)
        except ValueError:
            print("trendbot tips run-once: --now must be an ISO-8601 time, e.g. 2026-05-04T09:00:00+02:00",
                  file=sys.stderr)
            return 2
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
    config, problems = wiring.settings(os.environ)
    if problems:
        for problem in problems:
            print(f"trendbot tips: {problem}", file=sys.stderr)
        return 2
    import asyncio  # only `tips run-once` starts a loop; this module is imported by every command

    try:
        results = asyncio.run(post_due(tips, config, now.astimezone(UTC)))
    except SettingsError as exc:
        print(f"trendbot tips: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print(f"{r.platform}:{r.channel_id} {r.local_date}: {r.outcome}" + (f" ({r.tip_id})" if r.tip_id else ""),
              file=sys.stderr)
    if any(r.outcome == "no-poster" for r in results):
        ways = ", ".join(f"{s.how} to post to {s.name.title()}" for s in registry.surfaces())
        print(f"Channels of a platform with no settings here were skipped: set {ways}.", file=sys.stderr)
    return 1 if any(r.outcome in ("failed", "deactivated") for r in results) else 0


async def post_due(tips: DailyTips, config: Config, now: dt.datetime) -> list[PostResult]:
    """One pass of the scheduler with a poster for the console and each configured platform."""
    wiring.redact_logs(wiring.secrets(config))
    async with contextlib.AsyncExitStack() as stack:
        posters = {"console": console.ConsolePoster(sys.stdout, console.wants_color(sys.stdout))}
        for surface in (s for s in registry.surfaces() if s.configured(config)):
            posters[surface.name] = await stack.enter_async_context(surface.post_once(config))
        return await tips.run_once(posters, now)
