"""PostgreSQL's own side of the store (the shared semantics are tests/test_store.py, on both stores):
TRENDBOT_DB chooses it, its tables and types, migrations under a lock, and the errors a start gives
for a URL of no known store or a database out of reach, never with the password."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot import config
from bot import sqlite_store
from bot.postgres_store import MIGRATION_LOCK, PostgresStore, masked, password, postgres_sql
from bot.store import StoreError
from trendbot import cli, wiring

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"schema_version", "inbox", "subscriptions", "tip_posts", "asked", "votes", "learned", "meta", "leases"}
SECRET = "s3cret-Pa55word"


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_trendbot_db_postgresql_url_opens_postgresql_and_no_local_file(pg_url, pg_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in (pg_url, pg_url.replace("postgresql://", "postgres://", 1)):
        with wiring.open_db(config.load({"TRENDBOT_DB": url, "XDG_STATE_HOME": str(tmp_path / "state")})) as st:
            assert isinstance(st, PostgresStore) and st.version == sqlite_store.SCHEMA_VERSION
    tables = {t for (t,) in pg_server.sql("SELECT table_name FROM information_schema.tables"
                                          " WHERE table_schema = 'public'", pg_url)}
    assert tables == TABLES
    assert list(tmp_path.iterdir()) == []  # no folder named postgresql:, no default SQLite file
    assert wiring.db_exists(config.load({"TRENDBOT_DB": pg_url}))  # a database may hold taught phrasings


def test_the_types_postgresql_spells_differently_are_rewritten_and_nothing_else(pg_url, pg_server):
    PostgresStore(pg_url).close()
    columns = dict(((t, c), (ty, ident)) for t, c, ty, ident in pg_server.sql(
        "SELECT table_name, column_name, data_type, is_identity FROM information_schema.columns"
        " WHERE table_schema = 'public'", pg_url))
    assert columns["asked", "id"] == ("bigint", "YES")  # never reused, like SQLite's AUTOINCREMENT
    assert columns["asked", "score"] == ("double precision", "NO")  # 8 bytes, like SQLite's REAL
    assert columns["leases", "expires_at"] == ("bigint", "NO") and columns["inbox", "payload"] == ("text", "NO")
    changed = [(s, postgres_sql(s)) for _, statements in sqlite_store.MIGRATIONS for s in statements
               if postgres_sql(s) != s]
    assert len(changed) == 1 and "AUTOINCREMENT" not in changed[0][1] and " REAL " not in changed[0][1]


def test_a_url_of_no_known_store_is_refused_naming_the_setting_and_never_made_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for url in ("mysql://bot:pw@db/trendbot", "http://example.invalid/db", "redis+tls://cache:6379",
                "sqlite://relative.db"):
        with pytest.raises(config.ConfigError) as err:
            config.load({"TRENDBOT_DB": url})
        (problem,) = err.value.problems
        assert problem.startswith("TRENDBOT_DB (environment): ") and "pw" not in problem
        assert "sqlite:///" in problem or "sqlite:///PATH" in problem
        settings, _ = config.read({"TRENDBOT_DB": url})  # a command that goes on despite settings problems
        with pytest.raises(StoreError, match="TRENDBOT_DB"):
            wiring.open_db(settings)
    assert list(tmp_path.iterdir()) == []
    assert config.as_store("sqlite:///data/t.db") == "/data/t.db" == config.as_store("sqlite:////data/t.db")
    assert config.as_store("PostgreSQL://u@h/db") == "postgresql://u@h/db"
    for name in ("TRENDBOT_DB", "TRENDBOT_KNOWLEDGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRENDBOT_DB", "mysql://bot:pw@db/trendbot")
    assert cli.main(["tips", "run-once"]) == 2
    err = capsys.readouterr().err
    assert "TRENDBOT_DB" in err and "postgresql://USER@HOST/DB" in err and "Traceback" not in err


def test_an_unreachable_database_is_one_line_naming_the_setting_and_address_never_the_password(monkeypatch, capsys,
                                                                                              tmp_path):
    port = closed_port()
    url = f"postgresql://trendbot:{SECRET}@127.0.0.1:{port}/trendbot"
    with pytest.raises(StoreError) as err:
        wiring.open_db(config.load({"TRENDBOT_DB": url}))
    message = str(err.value)
    assert "TRENDBOT_DB" in message and f"127.0.0.1 port {port}" in message and "refused" in message.lower()
    assert SECRET not in message and "trendbot:***@" in message
    for name in [n for n in os.environ if n.startswith(("TRENDBOT_", "SLACK_", "DISCORD_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TRENDBOT_DB", url)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for command in (["config"], ["serve"], ["tips", "run-once"], ["tips", "list"], ["report"], ["learned"]):
        code = cli.main(command)
        out, err = capsys.readouterr()
        assert code == 2, command
        assert f"127.0.0.1 port {port}" in err and "TRENDBOT_DB" in err and "Traceback" not in err, command
        assert SECRET not in out + err, command
    cli.main(["config"])
    assert f"TRENDBOT_DB=postgresql://trendbot:***@127.0.0.1:{port}/trendbot" in capsys.readouterr().out
    assert SECRET in wiring.secrets(config.load({"TRENDBOT_DB": url}))  # and the log filter redacts it
    assert not (tmp_path / "state").exists()


def test_a_server_that_never_answers_is_given_up_after_the_connect_timeout():
    with socket.socket() as silent:  # accepts the connection, then says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        began = time.monotonic()
        with pytest.raises(StoreError, match=f"127.0.0.1 port {port}: .*timeout"):
            PostgresStore(f"postgresql://u:{SECRET}@127.0.0.1:{port}/db", connect_timeout=2)
        assert time.monotonic() - began < 10


def test_passwords_are_masked_wherever_they_sit():
    assert masked(f"postgresql://bot:{SECRET}@db:5432/t") == "postgresql://bot:***@db:5432/t"
    assert masked(f"postgresql://bot:p@ss/w@db/t") == "postgresql://bot:***@db/t"  # unescaped @ and / in it
    assert masked(f"postgresql://db/t?sslmode=require&password={SECRET}") == \
        "postgresql://db/t?sslmode=require&password=***"
    assert masked("postgresql://bot@db/t") == "postgresql://bot@db/t" and masked("/data/t.db") == "/data/t.db"
    assert password(f"postgresql://bot:{SECRET}@db/t") == SECRET == password(f"postgresql://db/t?password={SECRET}")


def test_migrations_wait_for_the_lock_another_replica_holds(pg_url, pg_server):
    import psycopg

    opened: list[PostgresStore] = []
    with psycopg.connect(pg_url) as holder:  # another replica, in the middle of its migration
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        opener = threading.Thread(target=lambda: opened.append(PostgresStore(pg_url)))
        opener.start()
        opener.join(1.0)
        assert opener.is_alive() and not opened  # waiting for the lock
        assert pg_server.sql("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted", pg_url) == [(1,)]
    opener.join(30)  # the holder committed: the lock is free
    (st,) = opened
    assert st.version == sqlite_store.SCHEMA_VERSION
    st.close()


MIGRATE = """
import sys, time
from bot.postgres_store import PostgresStore
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all start at the same instant
with PostgresStore(sys.argv[1]) as st:
    print(st.version)
"""


@pytest.mark.slow
def test_processes_starting_at_once_migrate_once(pg_url, pg_server, monkeypatch):
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", sqlite_store.MIGRATIONS[:2])  # a database at version 2...
    monkeypatch.setattr(sqlite_store, "SCHEMA_VERSION", 2)
    with PostgresStore(pg_url) as old:
        old.claim_post("slack", "C1", "2026-05-04", now=1000, stale_after=600)
    monkeypatch.undo()
    pg_server.sql("INSERT INTO claims (key, claimed_at) VALUES ('slack:msg:T:C:1', 1000)", pg_url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    at = str(time.time() + 3)
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, pg_url, at], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outs]
    assert [out.strip() for out, _ in outs] == [str(sqlite_store.SCHEMA_VERSION)] * 4
    assert pg_server.sql("SELECT version FROM schema_version", pg_url) == [(sqlite_store.SCHEMA_VERSION,)]
    assert pg_server.sql("SELECT key, answered_at FROM inbox", pg_url) == [("slack:msg:T:C:1", 1000)]  # kept
    assert pg_server.sql("SELECT channel_id FROM tip_posts", pg_url) == [("C1",)]


def test_threads_of_one_process_share_the_pool(pg_url):
    with PostgresStore(pg_url, pool_size=(1, 3)) as st:
        wins: list[str] = []
        lock = threading.Lock()

        def race(worker: int) -> None:
            for k in range(40):
                if st.record(f"key-{k}", "slack", "{}", 1000.0, 30.0) == "new":
                    with lock:
                        wins.append(f"key-{k}")

        workers = [threading.Thread(target=race, args=(i,)) for i in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert sorted(wins) == sorted(f"key-{k}" for k in range(40))  # eight threads, three connections


@pytest.mark.slow
def test_a_sqlite_start_does_not_load_psycopg(tmp_path):
    code = ("import sys, trendbot.cli; trendbot.cli.main(['--knowledge', %r, 'ask', 'k8s']);"
            "from trendbot import wiring; from bot import config;"
            "wiring.open_db(config.load({'TRENDBOT_DB': %r})).close();"
            "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool')))"
            ) % (str(ROOT / "tests" / "fixtures" / "mini"), str(tmp_path / "t.db"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRENDBOT_DB": str(tmp_path / "t.db")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert "LOADED []" in out.stdout, out.stderr
