"""A throwaway PostgreSQL for the tests: initdb in a temporary folder, on loopback, a free port.

The server is started once per test run, when a test first needs it, and each test gets a
database of its own. PostgreSQL's `initdb` and `pg_ctl` are looked for in TRENDBOT_TEST_PG_BIN,
/usr/lib/postgresql/15/bin (the version these machines have), Debian's folders of other versions,
and on PATH; .ci/run installs PostgreSQL 15 where there is none. They refuse to run as root, so as
root they run as the `postgres` user (which owns the data folder).

- TRENDBOT_TEST_PG_URL=postgresql://USER@HOST:PORT/DB uses that server instead (the user must
  be allowed to create databases); each test's database is dropped at the end of the run.
- TRENDBOT_TEST_PG=off skips the PostgreSQL tests, and says so. Without it, a machine with no
  PostgreSQL fails those tests: CI must never pass by leaving them out.
"""
from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

PG_BIN = ("/usr/lib/postgresql/15/bin",)
# Fast, not durable: this server's data is thrown away at the end of the test run.
SETTINGS = ("-c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB")


def wanted() -> bool:
    """False when TRENDBOT_TEST_PG=off asks to skip the PostgreSQL tests."""
    return os.environ.get("TRENDBOT_TEST_PG", "").strip().lower() not in ("off", "0", "false", "no")


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, if there is one: 15 first, else Debian's newest, else PATH's."""
    others = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: -int(p.parent.name)
                    if p.parent.name.isdigit() else 0)
    folders = [os.environ.get("TRENDBOT_TEST_PG_BIN", ""), *PG_BIN, *map(str, others)]
    found = shutil.which("initdb")
    if found:
        folders.append(str(Path(found).resolve().parent))
    for folder in filter(None, folders):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


class Server:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_url: str, stop=None):
        self.admin_url = admin_url  # a URL of a database to run CREATE DATABASE from
        self._stop = stop
        # Copying the template's files is four times faster than PostgreSQL 15's default WAL_LOG
        # for small databases; a server of someone else's may be older and not know STRATEGY.
        self._strategy = " STRATEGY FILE_COPY" if stop is not None else ""
        self._count = itertools.count(1)
        self._made: list[str] = []

    def url(self, database: str) -> str:
        """The URL of one database on this server."""
        base, _, rest = self.admin_url.partition("?")
        return base.rsplit("/", 1)[0] + "/" + database + (f"?{rest}" if rest else "")

    def database(self) -> str:
        """A new, empty database: its URL."""
        name = f"trendbot_test_{os.getpid()}_{next(self._count)}"
        self.sql(f'CREATE DATABASE "{name}"{self._strategy}')
        self._made.append(name)
        return self.url(name)

    def sql(self, statement: str, url: str | None = None, params: tuple | None = None) -> list[tuple]:
        """Run one statement (autocommit) on the admin database or `url`; the rows it returns."""
        import psycopg

        with psycopg.connect(url or self.admin_url, autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def close(self) -> None:
        """Stop the server we started, or drop the databases we made on someone else's."""
        if self._stop is not None:
            self._stop()
            return
        for name in self._made:
            try:
                self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:  # noqa: BLE001 (the run is over; a leftover database is harmless)
                pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the `postgres` user."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        if shutil.which("runuser"):
            return ["runuser", "-u", "postgres", "--", *argv]
        import shlex

        return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(argv)]
    return argv


def start(bin_dir: Path) -> Server:
    """initdb and pg_ctl start a server in a new temporary folder; Server.close() stops it and removes it."""
    # Not under pytest's tmp_path: that is private to root, and the server may run as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="trendbot-pg-"))
    data, log = base / "data", base / "server.log"
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
    run = lambda argv, **kw: subprocess.run(_as_postgres(argv), capture_output=True, text=True, **kw)  # noqa: E731
    made = run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                "--locale=C.UTF-8", "--no-sync"], timeout=120)
    if made.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"initdb failed:\n{made.stdout}\n{made.stderr}", pytrace=False)

    def stop() -> None:
        run([str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w"], timeout=60)
        shutil.rmtree(base, ignore_errors=True)

    for _ in range(5):  # a port found free can be taken by someone else before the server binds it
        port = _free_port()
        began = run([str(bin_dir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w", "-t", "60",
                     "-o", f"-p {port} {SETTINGS}"], timeout=90)
        if began.returncode == 0:
            return Server(f"postgresql://postgres@127.0.0.1:{port}/postgres", stop)
        time.sleep(0.2)
    text = log.read_text(errors="replace") if log.exists() else ""
    stop()
    pytest.fail(f"pg_ctl start failed:\n{began.stdout}\n{began.stderr}\n{text[-3000:]}", pytrace=False)


def server() -> Server:
    """The server the tests use: TRENDBOT_TEST_PG_URL's, or one started here; skip or fail as set."""
    if not wanted():
        pytest.skip("TRENDBOT_TEST_PG=off: the PostgreSQL tests are skipped")
    url = os.environ.get("TRENDBOT_TEST_PG_URL", "").strip()
    if url:
        return Server(url)
    bin_dir = binaries()
    if bin_dir is None:
        pytest.fail("PostgreSQL 15 is not installed (no initdb and pg_ctl in TRENDBOT_TEST_PG_BIN, "
                    f"{', '.join(PG_BIN)} or on PATH): install it (apt-get install postgresql-15), point "
                    "TRENDBOT_TEST_PG_URL at a server, or set TRENDBOT_TEST_PG=off to skip these tests",
                    pytrace=False)
    return start(bin_dir)
