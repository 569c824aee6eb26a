"""Shared fixtures: the small test knowledge base and bots built on it."""
from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from bot import knowledge
from bot.core import TrendBot
from bot.schedule import UTC
from bot.sqlite_store import SQLiteStore as Store

MINI = Path(__file__).parent / "fixtures" / "mini"
NINE_UTC = dt.datetime(2026, 5, 4, 9, 0, tzinfo=UTC)  # the daily-tip tests' "now"


@pytest.fixture(scope="session", autouse=True)
def private_state(tmp_path_factory):
    """No test, and no process a test starts, touches the user's own store (~/.local/state) or
    cache (~/.cache: built indexes); the processes of one run share a cache, as one user's do."""
    import os

    saved = {name: os.environ.get(name) for name in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "TRENDBOT_CACHE_DIR")}
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.pop("TRENDBOT_CACHE_DIR", None)
    yield
    for name, old in saved.items():
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@pytest.fixture(scope="session")
def mini_kb() -> knowledge.Knowledge:
    return knowledge.load(MINI)


@pytest.fixture
def mini_bot(mini_kb) -> TrendBot:
    return TrendBot(mini_kb, rng=random.Random(7))


@pytest.fixture(scope="session")
def shipped_kb() -> knowledge.Knowledge:
    return knowledge.load()


@pytest.fixture(scope="session")
def shipped_bot(shipped_kb) -> TrendBot:
    return TrendBot(shipped_kb, rng=random.Random(7))


@pytest.fixture
def tipbot(mini_kb, tmp_path) -> TrendBot:
    """A bot on the small knowledge base with daily tips over tmp_path/tips.db, its clock at NINE_UTC."""
    bot = TrendBot(mini_kb)
    store = Store(tmp_path / "tips.db")
    bot.enable_tips(store, clock=lambda: NINE_UTC)
    yield bot
    store.close()
