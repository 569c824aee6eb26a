"""The SQLite store: created on first use with its schema, shared by processes, claims exactly once, keys expire."""
from __future__ import annotations

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


def test_a_question_is_recorded_once_and_answered_once_across_a_restart(tmp_path):
    path = tmp_path / "t.db"
    with Store(path) as st:
        assert rec(st, "slack:msg:T:C:1") == "new"
        assert rec(st, "slack:msg:T:C:1", now=1001) == "busy"  # a retry while the first is being answered
        st.answered("slack:msg:T:C:1", now=1002)
        assert rec(st, "slack:msg:T:C:1", now=1003) == "answered"
        assert rec(st, "slack:msg:T:C:2") == "new"
    with Store(path) as again:  # a new process would open it the same way
        assert again.version == store.SCHEMA_VERSION
        assert rec(again, "slack:msg:T:C:1", now=1004) == "answered"
        assert rec(again, "slack:msg:T:C:2", now=1040) == "taken"  # never answered, lease run out: take it over
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT payload FROM inbox WHERE key = 'slack:msg:T:C:1'").fetchone() == ("",)  # text dropped
    raw.close()


def test_pending_questions_are_leased_to_one_taker_within_the_window(tmp_path):
    with Store(tmp_path / "t.db") as a, Store(tmp_path / "t.db") as b:
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


def test_older_schema_is_migrated_without_losing_rows(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    monkeypatch.setattr(store, "MIGRATIONS", store.MIGRATIONS[:2])
    monkeypatch.setattr(store, "SCHEMA_VERSION", 2)
    with Store(path) as old:
        assert old.version == 2
    raw = sqlite3.connect(path)  # a claim as version 2 kept them: an answered Slack message
    raw.execute("INSERT INTO claims (key, claimed_at) VALUES ('slack:msg:T:C:9', 1000)")
    raw.commit()
    raw.close()
    monkeypatch.undo()
    with Store(path) as new:
        assert new.version == store.SCHEMA_VERSION
        assert rec(new, "slack:msg:T:C:9", now=1001) == "answered"  # the v2 row survived the migration
        assert new.subscriptions() == []


WORKER = """
import sys
from bot.sqlite_store import SQLiteStore as Store
st = Store(sys.argv[1])
won = [k for k in range(300) if st.record(f"key-{k}", "slack", "{}", 1000.0, 30.0) == "new"]
print(" ".join(map(str, won)))
"""


@pytest.mark.slow
def test_processes_racing_record_each_question_exactly_once(tmp_path):
    path = tmp_path / "race.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(3)]
    wins = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        wins.append({int(k) for k in out.split()})
    assert set().union(*wins) == set(range(300))
    assert sum(len(w) for w in wins) == 300  # no question went to two processes


def test_old_rows_expire_by_themselves(tmp_path):
    with Store(tmp_path / "t.db", ttl=100) as st:
        assert rec(st, "old", now=1_000) == "new"
        assert rec(st, "new", now=1_090) == "new"
        assert st.expire(now=1_150) == 1  # "old" is 150 s old, "new" 60 s
        assert rec(st, "old", now=1_150) == "new"
        assert rec(st, "a", now=2_000) == "new"
        # an hour later the next record clears the expired rows first
        assert rec(st, "b", now=2_000 + store.EXPIRE_EVERY) == "new"
        assert rec(st, "a", now=2_001 + store.EXPIRE_EVERY) == "new"


def test_long_keys_are_hashed_and_empty_ones_refused(tmp_path):
    with Store(tmp_path / "t.db") as st:
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


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "t.db"
    Store(path).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE schema_version SET version = 99")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        Store(path)


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


def test_a_lease_has_one_holder_until_it_runs_out_or_is_given_up(tmp_path):
    with Store(tmp_path / "t.db") as a, Store(tmp_path / "t.db") as b:
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
