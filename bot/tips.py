"""Daily tips: the subscription commands, the tip post, and the loop that posts what is due.

Exactly once rests on the store: each post is claimed by inserting (platform, channel, local
date) under a PRIMARY KEY, then marked sent. Any number of schedulers, in any number of
processes sharing the database, produce one post per channel per local day.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from bot.events import emit
from bot.knowledge import Knowledge, Tip, Trend
from bot.markup import literal
from bot.replies import Reply, SourceRef, Suggestion
from bot.schedule import (CATCH_UP, DEFAULT_TIME, DEFAULT_ZONE, UTC, Subscription, choose_tip, due,
                          local_date, next_post, parse_time, parse_zone, zones_named)
from bot.store import Store
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # asyncio only where the loop runs: `trendbot ask` never starts one
    import asyncio

log = logging.getLogger(__name__)

CLAIM_TIMEOUT = dt.timedelta(minutes=10)  # an unsent claim older than this is retried
DEACTIVATE_AFTER = 3  # permanent posting failures in a row before a channel is switched off
TICK = 30.0  # seconds between scheduler passes
Spell = Callable[..., str]  # spell(verb, time=, zone=, topics=) -> the command as the platform writes it


def trend_spelling(verb: str, time: str = "", zone: str = "", topics: str = "") -> str:
    """How the commands are written where everything goes through /trend: `/trend subscribe 08:30 UTC`."""
    return " ".join(part for part in ("/trend", verb, time, zone, topics) if part)


def usage(spell: Spell) -> str:
    """How to use the subscription commands, in the platform's spelling."""
    return (f"`{spell('subscribe', '[HH:MM]', '[Area/City]', '[topic ...]')}`, e.g. "
            f"`{spell('subscribe', '08:30', 'Europe/Berlin', 'serverless devops')}`; `{spell('unsubscribe')}`; "
            f"`{spell('subscription')}`")


class PostError(Exception):
    """A tip could not be posted; `permanent` when retrying cannot help (channel gone, no access)."""

    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


class Poster(Protocol):
    """What an adapter implements so the scheduler can post to one of its channels."""

    async def post(self, channel_id: str, reply: Reply) -> None:
        """Post the reply to the channel, raising PostError on failure."""


@dataclass(frozen=True)
class PostResult:
    """What one scheduler pass did for one due channel."""

    platform: str
    channel_id: str
    local_date: str
    tip_id: str | None
    outcome: str  # sent | failed | deactivated | claimed-elsewhere | no-poster | no-tips


def tip_reply(kb: Knowledge, tip: Tip, daily: bool = False) -> Reply:
    """A tip as a reply: the tip, its source and its topic; the daily post also says how to ask more."""
    trend = kb.trends.get(tip.trend)
    text = tip.text
    if daily and trend is not None:
        text += f"\n\nMore on this: `/trend {trend.id}`"
    src = kb.sources[tip.source]
    return Reply(
        title="Daily backend tip" if daily else "Backend tip", text=text, answered=True, kind="tip",
        sources=(SourceRef(src.title, src.url, src.when, src.publisher, src.name),),
        suggestions=(Suggestion(trend.title, trend.id),) if trend else (), entry_id=tip.id,
        as_of=src.when,
    )


class DailyTips:
    """Subscriptions and posting for every platform, over one store."""

    def __init__(self, kb: Knowledge, store: Store | Callable[[], Store], find_topic: Callable[[str], Trend | None], *,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
                 catch_up: dt.timedelta = CATCH_UP, claim_timeout: dt.timedelta = CLAIM_TIMEOUT,
                 deactivate_after: int = DEACTIVATE_AFTER):
        self._knowledge = (kb, find_topic)  # one tuple, so a reload swaps both at once (use())
        self._store = store
        self.clock = clock
        self.catch_up = catch_up
        self.claim_timeout = claim_timeout
        self.deactivate_after = deactivate_after

    @property
    def kb(self) -> Knowledge:
        """The knowledge tips are drawn from."""
        return self._knowledge[0]

    @property
    def find_topic(self) -> Callable[[str], Trend | None]:
        """How a topic name is read (the bot's)."""
        return self._knowledge[1]

    def use(self, kb: Knowledge, find_topic: Callable[[str], Trend | None]) -> None:
        """Draw from reloaded knowledge from now on; a post in progress finishes on the knowledge it began with."""
        self._knowledge = (kb, find_topic)

    @property
    def store(self) -> Store:
        """The store, opened on first use when a factory was given (so `trendbot ask` makes no file)."""
        if not hasattr(self._store, "claim_post"):  # a function that opens the store
            self._store = self._store()
        return self._store

    # -- commands ---------------------------------------------------------------------------

    def command(self, verb: str, args: list[str], platform: str, channel_id: str,
                may_manage: Callable[[], bool], spell: Spell = trend_spelling,
                channel_problem: Callable[[], str | None] = lambda: None, team: str = "") -> Reply:
        """`subscribe`, `unsubscribe` or `subscription` for the channel the command came from.

        `may_manage()` asks the platform whether the sender may change the channel's tips; it is
        called only for a change. `channel_problem()` says why the bot could not post in the
        channel (asked before it subscribes). `spell` writes the commands the way the platform does.
        A subscription belongs to `team` (the workspace, where one app serves several).
        """
        if verb == "subscription":
            return self.describe(platform, channel_id, spell=spell)
        if not may_manage():
            return _private("Not allowed here", "Only people who can manage this channel can change its daily "
                                                "tips; ask one of them, or a workspace or server admin.")
        if verb == "unsubscribe":
            if self.store.unsubscribe(platform, channel_id):
                return Reply(title="Daily tips stopped", answered=True, kind="subscription",
                             text=f"This channel will get no more daily tips. `{spell('subscribe')}` starts them again.")
            return _private("Not subscribed", "This channel has no daily tips to stop. " + usage(spell))
        sub = self.parse_subscribe(args, platform, channel_id, spell)
        if isinstance(sub, Reply):
            return sub
        sub = replace(sub, team=team)
        problem = channel_problem()
        if problem:
            return _private("I can't post here", problem)
        self.store.subscribe(sub)
        return self.describe(platform, channel_id, title="Daily tips on", spell=spell)

    def parse_subscribe(self, args: list[str], platform: str, channel_id: str,
                        spell: Spell = trend_spelling) -> Subscription | Reply:
        """Read `[HH:MM] [Area/City] [topic ...]`, or explain what is wrong with an example."""
        time, zone, topics = DEFAULT_TIME, DEFAULT_ZONE, []
        rest = list(args)
        if rest and ":" in rest[0]:
            parsed = parse_time(rest.pop(0))
            if parsed is None:
                return _private("That time doesn't work", "Give the time as 24-hour HH:MM, e.g. "
                                f"`{spell('subscribe', '08:30', 'Europe/Berlin')}`.")
            time = parsed
        if rest and ("/" in rest[0] or rest[0].upper() in ("UTC", "GMT", "Z")):
            parsed_zone = parse_zone(rest.pop(0))
            if parsed_zone is None:
                return _private("Unknown time zone", "Use an Area/City zone name, e.g. `Europe/Berlin`, "
                                f"`America/New_York` or `UTC`: `{spell('subscribe', '08:30', 'America/New_York')}`.")
            zone = parsed_zone
        for word in rest:
            trend = self.find_topic(word)
            if trend is None and (zones := zones_named(word)):
                return _private("Unknown time zone", f"Give the zone's full Area/City name, e.g. `{zones[0]}`: "
                                f"`{spell('subscribe', '08:30', zones[0])}`.")
            if trend is None:
                return _private("Unknown topic", f"I don't know a topic called \"{literal(word[:60])}\". "
                                f"`/trend topics` lists them; e.g. `{spell('subscribe', '09:00', 'UTC', 'serverless')}`.")
            if trend.id not in topics:
                topics.append(trend.id)
        if topics and not self.pool(topics):
            return _private("No tips for those topics", "None of those topics has tips yet; pick others or none.")
        return Subscription(platform, channel_id, time, zone, tuple(topics))

    def describe(self, platform: str, channel_id: str, title: str = "Daily tips",
                 spell: Spell = trend_spelling) -> Reply:
        """The channel's settings and its next post time in its own zone."""
        sub = self.store.subscription(platform, channel_id)
        if sub is None:
            return _private("No daily tips here", "This channel isn't subscribed. " + usage(spell))
        now = self.clock()
        posted = self.store.posted_on(platform, channel_id, local_date(sub, now).isoformat())
        when = next_post(sub, now, posted).astimezone(sub.tz)
        topics = ", ".join(self.kb.trends[t].title for t in sub.topics if t in self.kb.trends) or "all topics"
        state = "" if sub.active else f"\n\n**Paused:** posting here kept failing; `{spell('subscribe')}` turns it back on."
        text = (f"One tip a day at **{sub.time:%H:%M} {sub.zone}** on {topics}.\n\n"
                f"- Next tip: {when:%a %d %b %H:%M %Z}\n- `{spell('unsubscribe')}` stops it{state}")
        return Reply(title=title, text=text, answered=True, kind="subscription")

    # -- posting ------------------------------------------------------------------------------

    def pool(self, topics: tuple[str, ...] | list[str], kb: Knowledge | None = None) -> list[str]:
        """Tip ids a subscription draws from: all, or those of its topics."""
        return [t.id for t in (kb or self.kb).tips.values() if not topics or t.trend in topics]

    def next_tip(self, sub: Subscription, kb: Knowledge | None = None) -> Tip | None:
        """The tip the channel gets next (none repeats until all eligible ones were posted)."""
        kb = kb or self.kb
        history = [tip for _, tip in self.store.sent_tips(sub.platform, sub.channel_id)]
        tip_id = choose_tip(self.pool(sub.topics, kb), history, f"{sub.platform}:{sub.channel_id}")
        return kb.tips.get(tip_id) if tip_id else None

    async def run_once(self, posters: Mapping[str, Poster], now: dt.datetime | None = None,
                       stop: asyncio.Event | None = None) -> list[PostResult]:
        """Post every tip due at `now` (default: the clock) through the platform's poster, until `stop` is set."""
        now = now or self.clock()
        results = []
        for sub in self.store.subscriptions():
            if stop is not None and stop.is_set():
                break
            day = due(sub, now, self.catch_up)
            if day is None or self.store.posted_on(sub.platform, sub.channel_id, day.isoformat()):
                continue
            poster = posters.get(sub.platform)
            if poster is None:
                results.append(PostResult(sub.platform, sub.channel_id, day.isoformat(), None, "no-poster"))
                continue
            results.append(await self._post(sub, day.isoformat(), poster, now))
        return results

    async def _post(self, sub: Subscription, day: str, poster: Poster, now: dt.datetime) -> PostResult:
        key = (sub.platform, sub.channel_id, day)
        if not self.store.claim_post(*key, now=now.timestamp(), stale_after=self.claim_timeout.total_seconds()):
            return PostResult(*key, None, "claimed-elsewhere")
        kb = self.kb
        tip = self.next_tip(sub, kb)
        if tip is None:
            self.store.release_post(*key)
            return PostResult(*key, None, "no-tips")
        where = dict(platform=sub.platform, channel=sub.channel_id, tip_id=tip.id)
        import asyncio  # loaded already: a coroutine is running

        try:
            await poster.post(sub.channel_id, tip_reply(kb, tip, daily=True))
        except asyncio.CancelledError:  # stopped mid-post: the claim goes back rather than wait out its timeout
            self.store.release_post(*key)
            raise
        except Exception as exc:  # one channel's failure never stops the others
            if not isinstance(exc, PostError):
                log.exception("posting a tip to %s:%s failed", sub.platform, sub.channel_id)
                exc = PostError(str(exc) or type(exc).__name__, permanent=False)
            self.store.release_post(*key)  # the claim goes back: the next tick may retry
            if not exc.permanent:  # rate limits and outages
                emit("tip_failed", f"tip for {sub.platform}:{sub.channel_id} not posted, will retry: {exc}",
                     level=logging.WARNING, permanent=False, **where)
                return PostResult(*key, tip.id, "failed")
            if self.store.record_failure(sub.platform, sub.channel_id, self.deactivate_after):
                emit("tip_failed", f"daily tips for {sub.platform}:{sub.channel_id} deactivated after "
                     f"{self.deactivate_after} permanent failures: {exc}", level=logging.WARNING, permanent=True,
                     deactivated=True, **where)
                return PostResult(*key, tip.id, "deactivated")
            emit("tip_failed", f"tip for {sub.platform}:{sub.channel_id} failed: {exc}", level=logging.WARNING,
                 permanent=True, **where)
            return PostResult(*key, tip.id, "failed")
        self.store.mark_sent(*key, tip_id=tip.id, now=now.timestamp())
        emit("tip_posted", f"tip {tip.id} posted to {sub.platform}:{sub.channel_id}", **where)
        return PostResult(*key, tip.id, "sent")

    async def run(self, posters: Mapping[str, Poster], stop: asyncio.Event,
                  sleep: Callable[[float], Awaitable[object]] | None = None, tick: float = TICK) -> None:
        """Post what is due every `tick` seconds until `stop` is set; errors are logged, not raised."""
        import asyncio  # loaded already: a coroutine is running

        while not stop.is_set():
            try:
                await self.run_once(posters, stop=stop)
            except Exception:
                log.exception("daily tips pass failed")
            try:
                await asyncio.wait_for(stop.wait(), tick) if sleep is None else await sleep(tick)
            except asyncio.TimeoutError:
                pass


def _private(title: str, text: str) -> Reply:
    return Reply(title=title, text=text, answered=False, kind="error", private=True)
