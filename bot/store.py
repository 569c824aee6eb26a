"""The persistent store: one SQLite file shared by every process of one installation.

It starts with event de-duplication (`claim`); later features add their tables as new entries in
`MIGRATIONS`. Every "exactly once" rests on a PRIMARY KEY / UNIQUE constraint, never on timing,
and the SQL is plain (no SQLite-only syntax in the statements themselves), so a PostgreSQL
backend can follow with the same statements and another DB-API driver.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "TRENDBOT_DB"
# Slack retries an event up to three times within minutes; a day of keys covers that with room.
CLAIM_TTL = 24 * 3600.0
EXPIRE_EVERY = 3600.0  # `claim` deletes expired keys at most this often
MAX_KEY = 255

# (version, statements). Append, never edit: a database at version N runs the entries after N.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        "CREATE TABLE claims (key VARCHAR(255) PRIMARY KEY, claimed_at BIGINT NOT NULL)",
        "CREATE INDEX claims_claimed_at ON claims (claimed_at)",
    )),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class StoreError(Exception):
    """The store cannot be opened or used; the message names the file and, if set, TRENDBOT_DB."""


def default_path(environ: Mapping[str, str] = os.environ) -> Path:
    """$TRENDBOT_DB, else trendbot/trendbot.db in the user's state directory."""
    if environ.get(ENV):
        return Path(environ[ENV]).expanduser()
    if os.name == "nt" and environ.get("LOCALAPPDATA"):
        base = Path(environ["LOCALAPPDATA"])
    elif environ.get("XDG_STATE_HOME"):
        base = Path(environ["XDG_STATE_HOME"])
    else:
        base = Path(os.path.expanduser("~")) / ".local" / "state"
    return base / "trendbot" / "trendbot.db"


class Store:
    """One SQLite database: created with its schema on first use, WAL so processes can share it.

    Safe to call from several threads: one connection, one lock.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, ttl: float = CLAIM_TTL,
                 environ: Mapping[str, str] = os.environ):
        self.path = Path(path) if path is not None else default_path(environ)
        self.ttl = ttl
        self._lock = threading.Lock()
        self._last_expiry = float("-inf")
        where = f"{self.path}" + (f" (from {ENV})" if path is None and environ.get(ENV) else "")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: each statement commits on its own unless we BEGIN explicitly.
            # timeout: wait up to 5 s for another process's write lock instead of failing.
            self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store at {where}: {_reason(exc)}") from None
        try:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                log.warning("store %s is in %s journal mode, not WAL; other processes may wait", self.path, mode)
            self._db.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; fsync at checkpoints
            self._migrate()
        except StoreError as exc:
            self._db.close()
            raise StoreError(f"{where}: {exc}") from None
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"cannot use the store at {where}: {_reason(exc)}") from None

    # -- schema -----------------------------------------------------------------------------

    def _migrate(self) -> None:
        # BEGIN IMMEDIATE takes the write lock first, so two processes starting at once cannot
        # both see "no schema" and both create it.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > SCHEMA_VERSION:
                raise StoreError(f"schema version {current} is newer than this trendbot knows ({SCHEMA_VERSION})")
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    self._db.execute(statement)
                if current == 0:
                    self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                else:
                    self._db.execute("UPDATE schema_version SET version = ?", (version,))
                current = version
                log.info("store %s: schema at version %d", self.path, version)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    @property
    def version(self) -> int:
        """The schema version of the open database."""
        with self._lock:
            return self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]

    # -- de-duplication -----------------------------------------------------------------------

    def claim(self, key: str, now: float | None = None) -> bool:
        """Record `key`; True the first time any process claims it, False ever after (until it expires)."""
        if not key or len(key) > MAX_KEY:
            raise ValueError(f"a claim key must be 1 to {MAX_KEY} characters")
        now = time.time() if now is None else now
        with self._lock:
            if now - self._last_expiry >= EXPIRE_EVERY:
                self._expire(now)
            try:
                self._db.execute("INSERT INTO claims (key, claimed_at) VALUES (?, ?)", (key, int(now)))
            except sqlite3.IntegrityError:  # the PRIMARY KEY says someone already has it
                return False
            return True

    def expire(self, now: float | None = None) -> int:
        """Delete claims older than the TTL; returns how many went."""
        with self._lock:
            return self._expire(time.time() if now is None else now)

    def _expire(self, now: float) -> int:
        self._last_expiry = now
        cur = self._db.execute("DELETE FROM claims WHERE claimed_at < ?", (int(now - self.ttl),))
        if cur.rowcount:
            log.debug("store: %d expired claims deleted", cur.rowcount)
        return cur.rowcount

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
