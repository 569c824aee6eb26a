"""When a subscribed channel's daily tip is due, and which tip it gets: pure functions of `now`.

A subscription posts once per local day at its local time. The instant is computed in the
channel's zone, so daylight-saving changes need no special case to post *once*:

- spring forward: a time inside the skipped hour (02:30) does not exist that day; zoneinfo reads
  it with the offset from before the change, which is the same wall-clock distance after it
  (03:30), so the tip posts once, at the next valid time;
- fall back: a time inside the repeated hour (01:30) happens twice; the first one is used,
  and since a post is claimed per local *date*, the second can never post again.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

UTC = dt.timezone.utc
DEFAULT_TIME = dt.time(9, 0)
DEFAULT_ZONE = "UTC"
CATCH_UP = dt.timedelta(hours=6)  # a tip missed by downtime still posts within this, same local day
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Subscription:
    """A channel's daily-tip settings."""

    platform: str
    channel_id: str
    time: dt.time = DEFAULT_TIME
    zone: str = DEFAULT_ZONE
    topics: tuple[str, ...] = ()  # trend ids; empty means every topic
    active: bool = True
    team: str = ""  # the workspace the channel belongs to, where one app serves several (Slack by OAuth)

    @property
    def tz(self) -> ZoneInfo:
        """The channel's time zone."""
        return ZoneInfo(self.zone)


def parse_time(text: str) -> dt.time | None:
    """'9:00' or '09:00' -> time(9, 0); None for anything else."""
    m = _TIME.match(text.strip())
    return dt.time(int(m.group(1)), int(m.group(2))) if m else None


@functools.cache
def zone_names() -> tuple[str, ...]:
    """Every Area/City zone name, sorted (read from the time-zone database once)."""
    return tuple(sorted(z for z in available_timezones() if "/" in z))


def zones_named(city: str) -> list[str]:
    """IANA zones whose last part is `city` ('paris' -> ['Europe/Paris']), to suggest the full name."""
    key = "_".join(city.strip().lower().split())
    if not key:
        return []
    return [z for z in zone_names() if z.lower().rsplit("/", 1)[-1] == key]


def parse_zone(text: str) -> str | None:
    """A valid IANA zone name ('Europe/Berlin', 'UTC'), exactly as zoneinfo spells it, or None."""
    name = text.strip()
    if not name or ".." in name or name.startswith("/"):
        return None
    if name.upper() in ("UTC", "Z", "GMT"):
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError, OSError):
        return None
    return name


def scheduled_at(sub: Subscription, local_date: dt.date) -> dt.datetime:
    """The UTC instant of the post for one local date (see the module docstring for DST days)."""
    local = dt.datetime.combine(local_date, sub.time).replace(tzinfo=sub.tz)  # fold=0: first occurrence
    return local.astimezone(UTC)


def local_date(sub: Subscription, now: dt.datetime) -> dt.date:
    """The channel's calendar date at `now`."""
    return now.astimezone(sub.tz).date()


def due(sub: Subscription, now: dt.datetime, catch_up: dt.timedelta = CATCH_UP) -> dt.date | None:
    """The local date whose tip should post at `now`, or None.

    Due from the scheduled instant until `catch_up` later, and only while it is still the same
    local day: after downtime, today's missed tip posts once; older days never do.
    """
    if not sub.active:
        return None
    today = local_date(sub, now)
    at = scheduled_at(sub, today)
    if at <= now < at + catch_up:
        return today
    return None


def next_post(sub: Subscription, now: dt.datetime, posted_today: bool) -> dt.datetime:
    """The next instant a tip will post (UTC): today's if still ahead and not yet posted, else tomorrow's."""
    today = local_date(sub, now)
    if not posted_today:
        if due(sub, now) == today:
            return now  # due now: the next tick posts it
        if now < scheduled_at(sub, today):
            return scheduled_at(sub, today)
    return scheduled_at(sub, today + dt.timedelta(days=1))


def choose_tip(pool: Iterable[str], history: Sequence[str], channel_key: str) -> str | None:
    """The next tip for a channel: none repeats until every tip in the pool has been posted there.

    `history` lists the tip ids already posted in the channel, oldest first. The order within each
    round is a shuffle seeded by the channel and the round number, so channels differ and rounds
    differ, yet the choice is reproducible.
    """
    pool = sorted(set(pool))
    if not pool:
        return None
    members = set(pool)
    seen: set[str] = set()
    rounds = 0
    for tip in history:
        if tip in members:
            seen.add(tip)
            if len(seen) == len(pool):
                rounds += 1
                seen = set()

    def rank(tip: str) -> bytes:
        return hashlib.sha256(f"{channel_key}\0{rounds}\0{tip}".encode()).digest()

    return min((t for t in pool if t not in seen), key=rank)
