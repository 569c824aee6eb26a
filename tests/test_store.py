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
        assert st.version == store.SCHEMA_VERSION == 2
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"schema_version", "claims", "subscriptions", "tip_posts"} <= tables
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


def test_claim_is_true_once_and_survives_a_restart(tmp_path):
    path = tmp_path / "t.db"
    with Store(path) as st:
        assert st.claim("slack:msg:T:C:1") is True
        assert st.claim("slack:msg:T:C:1") is False
        assert st.claim("slack:msg:T:C:2") is True
    with Store(path) as again:  # a new process would open it the same way
        assert again.version == store.SCHEMA_VERSION
        assert again.claim("slack:msg:T:C:1") is False


def test_older_schema_is_migrated_without_losing_rows(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    monkeypatch.setattr(store, "MIGRATIONS", store.MIGRATIONS[:1])
    monkeypatch.setattr(store, "SCHEMA_VERSION", 1)
    with Store(path) as old:
        assert old.version == 1 and old.claim("kept", now=1000.0)
    monkeypatch.undo()
    with Store(path) as new:
        assert new.version == store.SCHEMA_VERSION
        assert new.claim("kept", now=1001.0) is False  # the v1 row survived the migration
        assert new.subscriptions() == []


def test_two_connections_share_one_file(tmp_path):
    path = tmp_path / "t.db"
    with Store(path) as a, Store(path) as b:
        assert a.claim("k") is True
        assert b.claim("k") is False
        assert b.claim("j") is True and a.claim("j") is False


WORKER = """
import sys
from bot.sqlite_store import SQLiteStore as Store
st = Store(sys.argv[1])
won = [k for k in range(300) if st.claim(f"key-{k}")]
print(" ".join(map(str, won)))
"""


@pytest.mark.slow
def test_processes_racing_claim_each_key_exactly_once(tmp_path):
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
    assert sum(len(w) for w in wins) == 300  # no key won twice


def test_old_keys_expire(tmp_path):
    with Store(tmp_path / "t.db", ttl=100) as st:
        assert st.claim("old", now=1_000)
        assert st.claim("new", now=1_090)
        assert st.expire(now=1_150) == 1  # "old" is 150 s old, "new" 60 s
        assert st.claim("old", now=1_150) is True
        assert st.claim("new", now=1_150) is False


def test_claim_expires_old_keys_by_itself(tmp_path):
    with Store(tmp_path / "t.db", ttl=100) as st:
        assert st.claim("a", now=0)
        assert st.claim("a", now=50) is False
        # an hour later the next claim clears the expired keys first
        assert st.claim("b", now=store.EXPIRE_EVERY + 10)
        assert st.claim("a", now=store.EXPIRE_EVERY + 11) is True


def test_bad_keys_are_refused(tmp_path):
    with Store(tmp_path / "t.db") as st:
        with pytest.raises(ValueError):
            st.claim("")
        with pytest.raises(ValueError):
            st.claim("k" * 256)


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
