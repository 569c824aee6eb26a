"""The store, SQLite and PostgreSQL alike: created on first use with its schema, shared by processes,
claims exactly once, keys expire. Tests taking `store_db` run on both (tests/conftest.py); the
rest are about the SQLite file itself. tests/test_postgres_store.py has PostgreSQL's own."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot import config
from bot import sqlite_store as store
from bot.sqlite_store import SQLiteStore as Store
from bot.store import StoreError
from trendbot import wiring

ROOT = Path(__file__).resolve().parents[1]


def test_created_on_first_use_with_schema_version_and_wal(tmp_path):
    path = tmp_path / "deep" / "er" / "trendbot.db"
    with Store(path) as st:
        assert st.version == store.SCHEMA_VERSION == 6
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("SELECT version FROM schema_version").fetchall() == [(6,)]
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"schema_version", "inbox", "subscriptions", "tip_posts", "asked", "votes", "learned", "meta", "leases",
            "installations", "used_states"} <= tables
    raw.close()


def test_path_from_trendbot_db_else_state_dir(tmp_path):
    assert wiring.default_db({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "trendbot" / "trendbot.db"
    st = wiring.open_db(config.load({"TRENDBOT_DB": str(tmp_path / "env.db")}))
    assert st.path == tmp_path / "env.db"
    st.close()
    assert (tmp_path / "env.db").exists()
    st = wiring.open_db(config.load({"XDG_STATE_HOME": str(tmp_path / "state")}))
    assert st.path == tmp_path / "state" / "trendbot" / "trendbot.db"
    st.close()


def rec(st, key, now=1000.0, lease=30.0, payload='{"q": "k8s"}', platform="slack"):
    return st.record(key, platform, payload, now, lease)


def test_a_question_is_recorded_once_and_answered_once_across_a_restart(store_db):
    st = store_db.open()
    assert rec(st, "slack:msg:T:C:1") == "new"
    assert rec(st, "slack:msg:T:C:1", now=1001) == "busy"  # a retry while the first is being answered
    st.answered("slack:msg:T:C:1", now=1002)
    assert rec(st, "slack:msg:T:C:1", now=1003) == "answered"
    assert rec(st, "slack:msg:T:C:2") == "new"
    st.close()
    again = store_db.open()  # a new process would open it the same way
    assert again.version == store.SCHEMA_VERSION
    assert rec(again, "slack:msg:T:C:1", now=1004) == "answered"
    assert rec(again, "slack:msg:T:C:2", now=1040) == "taken"  # never answered, lease run out: take it over
    assert rec(again, "slack:msg:T:C:2", now=1041) == "busy"
    again.release("slack:msg:T:C:2")
    assert rec(again, "slack:msg:T:C:2", now=1042) == "taken"  # given back: the next one may try
    assert store_db.sql("SELECT payload FROM inbox WHERE key = 'slack:msg:T:C:1'") == [("",)]  # text dropped


def test_pending_questions_are_leased_to_one_taker_within_the_window(store_db):
    with store_db.open() as a, store_db.open() as b:
        rec(a, "old", now=100)
        rec(a, "k1", now=1000)
        rec(a, "k2", now=1001)
        rec(a, "other", now=1001, platform="discord")
        a.answered("k2", now=1002)
        assert a.pending("slack", now=1010, since=500, lease=30) == []  # k1's first lease still runs
        assert a.pending("slack", now=1031, since=500, lease=30) == [("k1", '{"q": "k8s"}')]  # "old" is too old
        assert b.pending("slack", now=1032, since=500, lease=30) == []  # leased to a, for another 30 s
        a.release("k1")
        assert b.pending("slack", now=1033, since=500, lease=30) == [("k1", '{"q": "k8s"}')]


def test_older_schema_is_migrated_without_losing_rows(store_db, monkeypatch):
    monkeypatch.setattr(store, "MIGRATIONS", store.MIGRATIONS[:2])
    monkeypatch.setattr(store, "SCHEMA_VERSION", 2)
    old = store_db.open()
    assert old.version == 2
    old.close()
    # rows as version 2 wrote them: a subscription, its tip post, and a claim (an answered Slack message)
    store_db.sql("INSERT INTO subscriptions VALUES ('slack', 'C1', '09:00', 'UTC', '', 1, 0, 900)")
    store_db.sql("INSERT INTO tip_posts VALUES ('slack', 'C1', '2026-05-04', 'tip-one', 950, 960)")
    store_db.sql("INSERT INTO claims (key, claimed_at) VALUES ('slack:msg:T:C:9', 1000)")
    monkeypatch.undo()
    new = store_db.open()
    assert new.version == store.SCHEMA_VERSION
    assert rec(new, "slack:msg:T:C:9", now=1001) == "answered"  # the v2 rows survived the migration
    assert [s.channel_id for s in new.subscriptions()] == ["C1"]
    assert new.sent_tips("slack", "C1") == [("2026-05-04", "tip-one")]
    assert new.teach("kubernetes", "what is k8s", now=1002, by="x")  # and the new tables work
    assert new.record_question("slack", "C1", 1003, "kubernetes", True, 0.5, "k8s?") >= 1


# Each process does every kind of claim on the same keys; the parent checks each was won once.
WORKER = """
import json, sys
from bot import config
from trendbot import wiring
st = wiring.open_db(config.load({"TRENDBOT_DB": sys.argv[1]}))
asked = [int(a) for a in sys.argv[2].split(",")]
won = {
    "record": [k for k in range(200) if st.record(f"key-{k}", "slack", "{}", 1000.0, 30.0) == "new"],
    "taken": [k for k in range(200) if st.record(f"stale-{k}", "slack", "{}", 2000.0, 30.0) == "taken"],
    "pending": [k for k, _ in st.pending("discord", 2000.0, 0.0, 30.0, limit=500)],
    "claim_post": [c for c in range(50) if st.claim_post("slack", f"C{c}", "2026-05-04", 1000.0, 600.0)],
    "teach": [p for p in range(50) if st.teach("kubernetes", f"phrasing {p}", 1000.0, "x")],
    "vote": [a for a in asked if st.vote(a, "same-person", True, 1000.0) == "new"],
    "lease": [n for n in range(20) if st.lease(f"lease-{n}", sys.argv[3], 1000.0, 30.0)],
    "use_state": [n for n in range(50) if st.use_state(f"state-{n}", 1000.0, 1600.0)],
}
print(json.dumps(won))
"""


@pytest.mark.slow
def test_processes_racing_win_each_claim_exactly_once(store_db):
    setup = store_db.open()
    for k in range(200):  # questions a crashed process left: their leases ran out at 1030
        setup.record(f"stale-{k}", "slack", "{}", 1000.0, 30.0)
        setup.record(f"lost-{k}", "discord", "{}", 1000.0, 30.0)
    asked = [setup.record_question("slack", "C1", 1000, "kubernetes", True, 0.9, "k8s?") for _ in range(30)]
    setup.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, store_db.target, ",".join(map(str, asked)), f"p{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in range(4)]
    wins = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        wins.append(json.loads(out))
    expected = {"record": range(200), "taken": range(200), "pending": [f"lost-{k}" for k in range(200)],
                "claim_post": range(50), "teach": range(50), "vote": asked, "lease": range(20),
                "use_state": range(50)}
    for kind, items in expected.items():
        won = [x for w in wins for x in w[kind]]
        assert sorted(won, key=str) == sorted(items, key=str), kind  # every one won, none by two processes


def test_old_rows_expire_by_themselves(store_db):
    with store_db.open(ttl=100) as st:
        assert rec(st, "old", now=1_000) == "new"
        assert rec(st, "new", now=1_090) == "new"
        assert st.expire(now=1_150) == 1  # "old" is 150 s old, "new" 60 s
        assert rec(st, "old", now=1_150) == "new"
        assert rec(st, "a", now=2_000) == "new"
        # an hour later the next record clears the expired rows first
        assert rec(st, "b", now=2_000 + store.EXPIRE_EVERY) == "new"
        assert rec(st, "a", now=2_001 + store.EXPIRE_EVERY) == "new"


def test_long_keys_are_hashed_and_empty_ones_refused(store_db):
    with store_db.open() as st:
        with pytest.raises(ValueError):
            rec(st, "")
        long = "slack:msg:T:C:" + "1" * 300
        assert rec(st, long) == "new" and rec(st, long, now=1001) == "busy"
        assert rec(st, long[:-1] + "2") == "new"  # a different long key is a different question


def test_the_store_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "state" / "t.db"
    with Store(path) as st:
        rec(st, "k")
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    for f in path.parent.iterdir():  # the database and its -wal and -shm files
        assert (f.stat().st_mode & 0o777) == 0o600, f


def test_newer_schema_is_refused(store_db):
    store_db.open().close()
    store_db.sql("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        store_db.open()
    assert store_db.sql("SELECT version FROM schema_version") == [(99,)]  # and left as it was


def test_unusable_path_is_a_store_error_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(StoreError) as err:
        wiring.open_db(config.load({"TRENDBOT_DB": str(blocker / "t.db")}))
    assert str(blocker / "t.db") in str(err.value) and "TRENDBOT_DB" in str(err.value)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="garbage.db"):
        Store(garbage)


def test_a_lease_has_one_holder_until_it_runs_out_or_is_given_up(store_db):
    with store_db.open() as a, store_db.open() as b:
        assert a.lease("discord", "replica-a", now=1000.0, ttl=30.0)
        assert not b.lease("discord", "replica-b", now=1010.0, ttl=30.0)  # a holds it
        assert a.lease("discord", "replica-a", now=1020.0, ttl=30.0)  # renewed to 1050
        assert not b.lease("discord", "replica-b", now=1049.5, ttl=30.0)
        assert b.lease_holder("discord", now=1049.5) == "replica-a"
        assert b.lease("discord", "replica-b", now=1050.0, ttl=30.0)  # ran out: b takes over
        assert not a.lease("discord", "replica-a", now=1051.0, ttl=30.0)
        a.release_lease("discord", "replica-a")  # not a's any more: nothing happens
        assert a.lease_holder("discord", now=1051.0) == "replica-b"
        b.release_lease("discord", "replica-b")
        assert a.lease_holder("discord", now=1051.0) is None
        assert a.lease("discord", "replica-a", now=1051.0, ttl=30.0)
        assert a.lease("other", "replica-b", now=1051.0, ttl=30.0)  # leases are per name


async def test_the_inbox_over_either_store_answers_once_and_takes_over_after_a_crash(store_db):
    from adapters.inbox import Inbox

    clock = [1000.0]
    a, b = (Inbox(store_db.open(), "slack", lease=5, useful_for=600, clock=lambda: clock[0]) for _ in range(2))
    assert await a.record("slack:msg:T:C:1", {"text": "k8s"})
    assert not await b.record("slack:msg:T:C:1", {"text": "k8s"})  # the same event at the other replica: busy
    await a.done("slack:msg:T:C:1")
    clock[0] += 10
    assert not await b.record("slack:msg:T:C:1", {"text": "k8s"})  # answered, also once the lease ran out
    assert await a.record("slack:msg:T:C:2", {"text": "serverless"})  # ...and then a dies before answering
    assert await b.pending() == []  # a's lease still runs
    clock[0] += 6
    assert await b.pending() == [("slack:msg:T:C:2", {"text": "serverless"})]  # b takes it over
    assert await a.pending() == []  # once
    await b.done("slack:msg:T:C:2")
    clock[0] += 6
    assert await a.pending() == [] and await b.pending() == []


async def test_a_burst_of_records_is_committed_together_and_each_caller_gets_its_own_answer(store_db):
    import asyncio

    from adapters.inbox import Inbox

    inbox = Inbox(store_db.open(), "slack", lease=30, useful_for=600)
    keys = [f"slack:event:Ev{i}" for i in range(100)] + ["slack:event:Ev7"] * 5  # five retries of one event
    results = await asyncio.gather(*(inbox.record(k, {"text": "k8s"}) for k in keys),
                                   inbox.record("", {"text": "no key"}), return_exceptions=True)
    assert results[:100] == [True] * 100  # each event once, however the calls were grouped
    assert results[100:105] == [False] * 5  # the retries find it recorded (busy: leased to us)
    assert isinstance(results[105], ValueError)  # the one bad call fails alone, the others are kept
    other = store_db.open()  # another connection sees every recorded row: they were committed
    assert {other.record(k, "slack", "{}", 0, 30) for k in keys[:100]} == {"busy"}


async def test_a_group_whose_commit_fails_is_recorded_call_by_call_and_nothing_is_lost(tmp_path):
    import asyncio
    import sqlite3
    import threading

    from adapters.inbox import Inbox

    class FullDisk:  # the connection, with its first COMMIT failing as on a full disk
        def __init__(self, db):
            self.db, self.failures = db, 1

        def execute(self, sql, *args):
            if sql == "COMMIT" and self.failures:
                self.failures -= 1
                raise sqlite3.OperationalError("database or disk is full")
            return self.db.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.db, name)

    db = store.SQLiteStore(tmp_path / "t.db")
    real = db._db
    db._db = FullDisk(real)
    inbox = Inbox(db, "slack", lease=30, useful_for=600)
    hold = threading.Event()
    held = asyncio.ensure_future(inbox._call(0, hold.wait))  # the worker waits here: the records pile up into a group
    await asyncio.sleep(0.05)
    records = [asyncio.ensure_future(inbox.record(f"slack:event:Ev{i}", {"text": "k8s"})) for i in range(3)]
    await asyncio.sleep(0.05)
    hold.set()
    await held
    assert await asyncio.gather(*records) == [True, True, True]  # each recorded and to be answered, not "busy"
    assert db._db.failures == 0 and not real.in_transaction  # the failed group was rolled back
    other = sqlite3.connect(tmp_path / "t.db")
    assert sorted(k for (k,) in other.execute("SELECT key FROM inbox")) == [f"slack:event:Ev{i}" for i in range(3)]
    other.close()
    db.close()
