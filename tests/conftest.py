"""Shared fixtures: the small test knowledge base and bots built on it, and stores of both kinds."""
from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from bot import knowledge
from bot.core import TrendBot
from bot.schedule import UTC
from bot.sqlite_store import SQLiteStore as Store
from tests import pg

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


# -- stores of both kinds ----------------------------------------------------------------------------


class StoreDB:
    """One fresh store of either kind for a test: what TRENDBOT_DB says for it, a way to open it
    (as many times as there are "processes"), and plain SQL on it from outside the store."""

    def __init__(self, kind: str, target: str, server: pg.Server | None = None):
        self.kind = kind  # "sqlite" or "postgresql"
        self.target = target  # a file path, or a PostgreSQL URL
        self.server = server
        self._open: list = []

    def open(self, **options):
        """A store on this database (SQLiteStore or PostgresStore); closed after the test."""
        if self.kind == "sqlite":
            st = Store(self.target, **options)
        else:
            from bot.postgres_store import PostgresStore

            st = PostgresStore(self.target, **options)
        self._open.append(st)
        return st

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        """Run one statement, committed; the rows it returns. Parameters are ? placeholders (a
        statement without parameters may hold a ? of its own, in a string)."""
        if self.kind == "postgresql":
            return self.server.sql(statement.replace("?", "%s") if params else statement, self.target,
                                   params or None)
        import sqlite3

        raw = sqlite3.connect(self.target)
        try:
            rows = raw.execute(statement, params).fetchall()
            raw.commit()
            return rows
        finally:
            raw.close()

    def holds(self, text: str) -> bool:
        """Whether the text is anywhere in the store: in its files (SQLite: the database, its WAL),
        or in any row of any table (PostgreSQL)."""
        if self.kind == "sqlite":
            folder = Path(self.target).parent
            return any(text.encode() in p.read_bytes() for p in folder.glob(Path(self.target).name + "*"))
        tables = self.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        return any(self.sql(f'SELECT 1 FROM "{t}" AS row WHERE row::text LIKE ?', (f"%{text}%",)) for (t,) in tables)

    def close(self) -> None:
        for st in self._open:
            st.close()


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for the whole test run (tests/pg.py): started on first use, stopped at the end."""
    server = pg.server()
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server) -> str:
    """The URL of a new, empty database of the test's own."""
    return pg_server.database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_db(request, tmp_path) -> StoreDB:
    """A fresh store of each kind: the test runs once on SQLite and once on a real PostgreSQL."""
    if request.param == "sqlite":
        db = StoreDB("sqlite", str(tmp_path / "store" / "t.db"))
    else:
        db = StoreDB("postgresql", request.getfixturevalue("pg_url"), request.getfixturevalue("pg_server"))
    yield db
    db.close()
