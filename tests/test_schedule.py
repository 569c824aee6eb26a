"""When tips are due and which tip comes next: pure functions of `now`, no clock, no sleeping."""
from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bot.schedule import (UTC, Subscription, choose_tip, due, next_post, parse_time, parse_zone,
                          scheduled_at)

NY = "America/New_York"
ROOT = Path(__file__).resolve().parents[1]


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def minutes(start: str, end: str, step: int = 1):
    t, stop = at(start), at(end)
    while t < stop:
        yield t
        t += dt.timedelta(minutes=step)


def test_parse_time_and_zone():
    assert parse_time("9:05") == dt.time(9, 5) and parse_time("23:59") == dt.time(23, 59)
    assert parse_time("24:00") is None and parse_time("9") is None and parse_time("7:5") is None
    assert parse_zone("Europe/Berlin") == "Europe/Berlin" and parse_zone("utc") == "UTC"
    assert parse_zone("Mars/Olympus") is None and parse_zone("../etc/passwd") is None and parse_zone("") is None


def test_due_at_local_time_in_each_zone():
    berlin = Subscription("slack", "C1", dt.time(9, 0), "Europe/Berlin")
    tokyo = Subscription("slack", "C2", dt.time(9, 0), "Asia/Tokyo")
    now = at("2026-03-10T08:00:00+00:00")  # 09:00 in Berlin (CET), 17:00 in Tokyo
    assert due(berlin, now) == dt.date(2026, 3, 10)
    assert due(tokyo, now) is None  # 17:00 in Tokyo: 8 hours late, past the 6-hour catch-up
    assert due(berlin, now - dt.timedelta(minutes=1)) is None
    assert due(tokyo, at("2026-03-10T05:59:00+00:00")) == dt.date(2026, 3, 10)  # 14:59 Tokyo
    assert due(tokyo, at("2026-03-10T06:00:00+00:00")) is None  # 15:00 Tokyo


def test_catch_up_window_and_same_local_day_only():
    sub = Subscription("discord", "C", dt.time(20, 0), NY)
    start = at("2026-06-01T20:00:00-04:00")
    assert due(sub, start + dt.timedelta(hours=3, minutes=59)) == dt.date(2026, 6, 1)
    assert due(sub, at("2026-06-02T00:00:00-04:00")) is None  # midnight: new local day, nothing owed
    assert due(sub, start + dt.timedelta(hours=1), catch_up=dt.timedelta(minutes=30)) is None
    morning = Subscription("discord", "C", dt.time(9, 0), NY)
    assert due(morning, at("2026-06-01T14:59:00-04:00")) == dt.date(2026, 6, 1)
    assert due(morning, at("2026-06-01T15:00:00-04:00")) is None  # 6 hours later: too late


def test_spring_forward_time_in_the_gap_posts_once_at_the_next_valid_time():
    sub = Subscription("slack", "C", dt.time(2, 30), NY)  # 2026-03-08 02:00 -> 03:00 in New York
    instant = scheduled_at(sub, dt.date(2026, 3, 8))
    assert instant.astimezone(sub.tz).strftime("%H:%M %Z") == "03:30 EDT"
    due_minutes = [t for t in minutes("2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00") if due(sub, t)]
    assert due_minutes[0] == instant and {due(sub, t) for t in due_minutes} == {dt.date(2026, 3, 8)}


def test_fall_back_repeated_hour_is_one_local_date():
    sub = Subscription("slack", "C", dt.time(1, 30), NY)  # 2026-11-01 01:00-02:00 happens twice
    instant = scheduled_at(sub, dt.date(2026, 11, 1))
    assert instant == at("2026-11-01T01:30:00-04:00")  # the first 01:30 (EDT)
    dates = {due(sub, t) for t in minutes("2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00")} - {None}
    assert dates == {dt.date(2026, 11, 1)}
    assert due(sub, at("2026-11-01T01:30:00-05:00")) == dt.date(2026, 11, 1)  # still the same claim key


def test_inactive_is_never_due():
    sub = Subscription("slack", "C", dt.time(9, 0), "UTC", active=False)
    assert due(sub, at("2026-01-01T09:00:00+00:00")) is None


def test_next_post():
    sub = Subscription("slack", "C", dt.time(9, 0), "Europe/Berlin")
    before = at("2026-01-05T07:00:00+00:00")
    assert next_post(sub, before, posted_today=False) == at("2026-01-05T09:00:00+01:00")
    assert next_post(sub, before, posted_today=True) == at("2026-01-06T09:00:00+01:00")
    during = at("2026-01-05T09:30:00+01:00")
    assert next_post(sub, during, posted_today=False) == during
    assert next_post(sub, at("2026-01-05T23:00:00+01:00"), posted_today=False) == at("2026-01-06T09:00:00+01:00")


def test_choose_tip_never_repeats_until_the_pool_is_used_up():
    pool = [f"tip-{i}" for i in range(7)]
    history: list[str] = []
    for _ in range(21):
        history.append(choose_tip(pool, history, "slack:C1"))
    for start in (0, 7, 14):
        assert sorted(history[start:start + 7]) == sorted(pool)
    assert history[:7] != history[7:14]  # each round is shuffled anew


def test_choose_tip_order_differs_between_channels_and_ignores_retired_tips():
    pool = [f"tip-{i}" for i in range(20)]
    firsts = {choose_tip(pool, [], f"slack:C{i}") for i in range(10)}
    assert len(firsts) > 3
    assert choose_tip(pool, ["gone-tip"], "slack:C1") == choose_tip(pool, [], "slack:C1")
    assert choose_tip([], [], "x") is None


@pytest.mark.slow  # starts a process
def test_zones_resolve_without_the_systems_zone_database(tmp_path):
    """With no zone folder on TZPATH (a slim image, Windows) zoneinfo falls back to the tzdata package."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert any(re.match(r"tzdata\b", d) for d in dependencies), "tzdata is not a runtime dependency"
    empty = tmp_path / "no-zones"
    empty.mkdir()
    code = ("import zoneinfo; from bot.schedule import parse_zone; "
            f"assert zoneinfo.TZPATH == ({str(empty)!r},), zoneinfo.TZPATH; "
            "zoneinfo.ZoneInfo('US/Central'); "
            "print(parse_zone('US/Central'), parse_zone('Europe/Berlin'), parse_zone('Mars/Olympus'))")
    env = {**os.environ, "PYTHONTZPATH": str(empty)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["US/Central", "Europe/Berlin", "None"]
