"""The SQLite store: one file shared by every process of one installation (the default store).

It implements bot/store.py's Store: the reply inbox, daily-tip subscriptions and the per-day tip
posts, the learning loop, leases, and installations with their OAuth states; features add their
tables as new entries in `MIGRATIONS`. Every "exactly
once" rests on a PRIMARY KEY / UNIQUE constraint, never on timing, and the SQL is plain (no
SQLite-only syntax in the statements themselves), so a PostgreSQL store can follow with the same
statements and another DB-API driver.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bot.schedule import Subscription
from bot.store import StoreError

log = logging.getLogger(__name__)

# Slack retries an event up to three times within minutes; a day of keys covers that with room.
CLAIM_TTL = 24 * 3600.0
EXPIRE_EVERY = 3600.0  # `record` deletes rows older than the TTL at most this often
MAX_KEY = 255

# (version, statements). Append, never edit: a database at version N runs the entries after N.
# bot/postgres_store.py runs the same statements on PostgreSQL, rewriting only the types in its
# SPELLING: keep them plain SQL (no SQLite-only syntax; an id column INTEGER PRIMARY KEY
# AUTOINCREMENT, never a bare INTEGER PRIMARY KEY, which only SQLite numbers by itself).
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        "CREATE TABLE claims (key VARCHAR(255) PRIMARY KEY, claimed_at BIGINT NOT NULL)",
        "CREATE INDEX claims_claimed_at ON claims (claimed_at)",
    )),
    (2, (
        "CREATE TABLE subscriptions (platform VARCHAR(32) NOT NULL, channel_id VARCHAR(255) NOT NULL,"
        " post_time CHAR(5) NOT NULL, zone VARCHAR(64) NOT NULL, topics VARCHAR(2000) NOT NULL,"
        " active INTEGER NOT NULL, failures INTEGER NOT NULL, updated_at BIGINT NOT NULL,"
        " PRIMARY KEY (platform, channel_id))",
        # One row per channel and local date: the claim that makes each daily post happen once.
        "CREATE TABLE tip_posts (platform VARCHAR(32) NOT NULL, channel_id VARCHAR(255) NOT NULL,"
        " local_date CHAR(10) NOT NULL, tip_id VARCHAR(255), claimed_at BIGINT NOT NULL, sent_at BIGINT,"
        " PRIMARY KEY (platform, channel_id, local_date))",
    )),
    (3, (
        # The reply inbox: a question is recorded before the platform gets its acknowledgement and
        # marked answered once the reply is posted; `leased_until` lets one process at a time work
        # on it, and another take it over once the lease has run out (a crash).
        "CREATE TABLE inbox (key VARCHAR(255) PRIMARY KEY, platform VARCHAR(32) NOT NULL,"
        " payload TEXT NOT NULL, received_at BIGINT NOT NULL, leased_until BIGINT NOT NULL,"
        " answered_at BIGINT)",
        "CREATE INDEX inbox_pending ON inbox (platform, answered_at, leased_until)",
        "CREATE INDEX inbox_received_at ON inbox (received_at)",
        # The claims of earlier versions were messages already answered: they carry over as such.
        "INSERT INTO inbox (key, platform, payload, received_at, leased_until, answered_at)"
        " SELECT key, 'slack', '', claimed_at, 0, claimed_at FROM claims",
        "DROP TABLE claims",
    )),
    (4, (
        # The learning loop. `asked`: one row per question answered or declined (the text only
        # when it is kept, and only until the retention purge); `votes`: one per person per answer,
        # changeable, the person a keyed hash; `learned`: phrasings taught in chat or with
        # `trendbot teach`, merged into the index like written alternates.
        "CREATE TABLE asked (id INTEGER PRIMARY KEY AUTOINCREMENT, platform VARCHAR(32) NOT NULL,"
        " channel_id VARCHAR(255) NOT NULL, asked_at BIGINT NOT NULL, entry_id VARCHAR(255),"
        " answered INTEGER NOT NULL, score REAL NOT NULL, question VARCHAR(2000) NOT NULL)",
        "CREATE INDEX asked_at ON asked (asked_at)",
        "CREATE TABLE votes (asked_id BIGINT NOT NULL, voter VARCHAR(64) NOT NULL, helpful INTEGER NOT NULL,"
        " voted_at BIGINT NOT NULL, PRIMARY KEY (asked_id, voter))",
        "CREATE TABLE learned (entry_id VARCHAR(255) NOT NULL, phrasing VARCHAR(500) NOT NULL,"
        " added_at BIGINT NOT NULL, added_by VARCHAR(64) NOT NULL, PRIMARY KEY (entry_id, phrasing))",
        "CREATE TABLE meta (name VARCHAR(64) PRIMARY KEY, value VARCHAR(255) NOT NULL)",
    )),
    (5, (
        # Named leases: one holder at a time until `expires_at`, renewed while it lives (the
        # replica that holds "discord" is the one connected to Discord; the others stand by).
        "CREATE TABLE leases (name VARCHAR(64) PRIMARY KEY, holder VARCHAR(255) NOT NULL,"
        " expires_at BIGINT NOT NULL)",
    )),
    (6, (
        # An app installed in several workspaces (Slack by OAuth): one installation per team, its
        # tokens inside `data`; the OAuth flow's states once used, until they run out anyway
        # (`expires_at`, ms), so each is good once; and the team each subscription, inbox row and
        # question belongs to ('' where there is one), so that an uninstall deletes that team's
        # rows and no other's.
        "CREATE TABLE installations (platform VARCHAR(32) NOT NULL, team_id VARCHAR(64) NOT NULL,"
        " data TEXT NOT NULL, installed_at BIGINT NOT NULL, PRIMARY KEY (platform, team_id))",
        "CREATE TABLE used_states (state VARCHAR(255) PRIMARY KEY, expires_at BIGINT NOT NULL)",
        "CREATE INDEX used_states_expires_at ON used_states (expires_at)",
        "ALTER TABLE subscriptions ADD COLUMN team_id VARCHAR(64) NOT NULL DEFAULT ''",
        "ALTER TABLE inbox ADD COLUMN team_id VARCHAR(64) NOT NULL DEFAULT ''",
        "ALTER TABLE asked ADD COLUMN team_id VARCHAR(64) NOT NULL DEFAULT ''",
        "CREATE INDEX subscriptions_team ON subscriptions (platform, team_id)",
        "CREATE INDEX inbox_team ON inbox (platform, team_id)",
        "CREATE INDEX asked_team ON asked (platform, team_id)",
    )),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class SQLiteStore:
    """One SQLite database: created with its schema on first use, WAL so processes can share it.

    Safe to call from several threads: one connection, one lock. `where` is how errors name it
    ("/data/trendbot.db (TRENDBOT_DB)").
    """

    def __init__(self, path: str | os.PathLike[str], *, ttl: float = CLAIM_TTL, where: str | None = None):
        self.path = Path(path).expanduser()
        self.ttl = ttl
        self._lock = threading.RLock()  # re-entered by the calls made inside `transaction()`
        self._last_expiry = float("-inf")
        where = where or str(self.path)
        try:
            # The store holds what people asked: readable by its owner only. A folder we create is
            # 0700 and a file 0600; SQLite gives the -wal and -shm files the database file's mode.
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
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

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """The calls made inside, from this thread, in one transaction: one commit for all (a group
        of inbox writes). Other threads wait for it; an exception rolls all of it back."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            expired = self._last_expiry
            try:
                yield
                self._db.execute("COMMIT")  # may fail too (a full disk shows at COMMIT in WAL mode)
            except BaseException:
                if self._db.in_transaction:  # after a failed COMMIT SQLite may leave it open
                    self._db.execute("ROLLBACK")
                self._last_expiry = expired  # an expiry run inside was rolled back with the rest
                raise

    # -- the reply inbox -------------------------------------------------------------------------

    def record(self, key: str, platform: str, payload: str, now: float, lease: float, team: str = "") -> str:
        """Record a question before it is acknowledged, and lease it to the caller.

        "new": first seen, leased to the caller; "taken": seen before but never answered and its
        lease had run out, now leased to the caller; "busy": another process holds its lease;
        "answered": its reply went out already. Only "new" and "taken" should be answered.
        """
        key = _key(key)
        with self._lock:
            if now - self._last_expiry >= EXPIRE_EVERY:
                self._expire(now)
            try:
                self._db.execute("INSERT INTO inbox (key, platform, payload, received_at, leased_until, team_id)"
                                 " VALUES (?, ?, ?, ?, ?, ?)",
                                 (key, platform, payload, int(now), int(now + lease), _team(team)))
                return "new"
            except sqlite3.IntegrityError:  # the PRIMARY KEY: seen before
                pass
            cur = self._db.execute("UPDATE inbox SET leased_until = ? WHERE key = ? AND answered_at IS NULL"
                                   " AND leased_until < ?", (int(now + lease), key, int(now)))
            if cur.rowcount == 1:
                return "taken"
            row = self._db.execute("SELECT answered_at FROM inbox WHERE key = ?", (key,)).fetchone()
            return "answered" if row and row[0] is not None else "busy"

    def answered(self, key: str, now: float) -> None:
        """The reply went out: mark it, and forget what was asked (only the key stays, against retries)."""
        with self._lock:
            self._db.execute("UPDATE inbox SET answered_at = ?, payload = '' WHERE key = ?", (int(now), _key(key)))

    def release(self, key: str) -> None:
        """Give the lease back (the reply could not go out now): the next replay pass may try again."""
        with self._lock:
            self._db.execute("UPDATE inbox SET leased_until = 0 WHERE key = ? AND answered_at IS NULL", (_key(key),))

    def pending(self, platform: str, now: float, since: float, lease: float, limit: int = 50) -> list[tuple[str, str]]:
        """Unanswered questions received after `since` whose lease has run out, each leased to the
        caller: (key, payload), oldest first. The UPDATE's WHERE makes each take exclusive."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, payload FROM inbox WHERE platform = ? AND answered_at IS NULL AND leased_until < ?"
                " AND received_at >= ? ORDER BY received_at LIMIT ?",
                (platform, int(now), int(since), limit)).fetchall()
            taken = []
            for key, payload in rows:
                cur = self._db.execute("UPDATE inbox SET leased_until = ? WHERE key = ? AND answered_at IS NULL"
                                       " AND leased_until < ?", (int(now + lease), key, int(now)))
                if cur.rowcount == 1:
                    taken.append((key, payload))
            return taken

    def expire(self, now: float | None = None) -> int:
        """Delete inbox rows older than the TTL; returns how many went."""
        with self._lock:
            return self._expire(time.time() if now is None else now)

    def _expire(self, now: float) -> int:
        self._last_expiry = now
        cur = self._db.execute("DELETE FROM inbox WHERE received_at < ?", (int(now - self.ttl),))
        if cur.rowcount:
            log.debug("store: %d old inbox rows deleted", cur.rowcount)
        return cur.rowcount

    # -- the learning loop -----------------------------------------------------------------------

    def record_question(self, platform: str, channel_id: str, asked_at: float, entry_id: str | None,
                        answered: bool, score: float, question: str, team: str = "") -> int:
        """One question answered or declined; its id is what a feedback button names."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO asked (platform, channel_id, asked_at, entry_id, answered, score, question, team_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (platform, channel_id[:255], int(asked_at), entry_id, int(answered), float(score), question[:2000],
                 _team(team)))
            return int(cur.lastrowid)

    def vote(self, asked_id: int, voter: str, helpful: bool, now: float) -> str:
        """One person's vote on one answer: "new", "changed", "same" or "unknown" (no such answer).

        The first vote is an INSERT that one caller wins; a change is an UPDATE that applies only
        when the vote differs: two presses at once, even in two processes, count once."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM asked WHERE id = ? AND answered = 1", (asked_id,)).fetchone() is None:
                return "unknown"
            cur = self._db.execute("INSERT INTO votes (asked_id, voter, helpful, voted_at) VALUES (?, ?, ?, ?)"
                                   " ON CONFLICT (asked_id, voter) DO NOTHING", (asked_id, voter, int(helpful), int(now)))
            if cur.rowcount == 1:
                return "new"
            cur = self._db.execute("UPDATE votes SET helpful = ?, voted_at = ? WHERE asked_id = ? AND voter = ?"
                                   " AND helpful <> ?", (int(helpful), int(now), asked_id, voter, int(helpful)))
            return "changed" if cur.rowcount == 1 else "same"

    def questions(self, since: float, team: str | None = None) -> list[tuple]:
        """(id, platform, channel_id, asked_at, entry_id, answered, score, question) asked since `since`
        (in one team only, when given)."""
        where, params = ("", ()) if team is None else (" AND team_id = ?", (_team(team),))
        with self._lock:
            return [tuple(r) for r in self._db.execute(
                "SELECT id, platform, channel_id, asked_at, entry_id, answered, score, question FROM asked"
                " WHERE asked_at >= ?" + where + " ORDER BY id", (int(since), *params)).fetchall()]

    def votes(self, since: float, team: str | None = None) -> list[tuple]:
        """(asked_id, entry_id, helpful, question) of the votes cast since `since` (on one team's answers only,
        when given)."""
        where, params = ("", ()) if team is None else (" AND a.team_id = ?", (_team(team),))
        with self._lock:
            return [tuple(r) for r in self._db.execute(
                "SELECT v.asked_id, a.entry_id, v.helpful, a.question FROM votes v JOIN asked a ON a.id = v.asked_id"
                " WHERE v.voted_at >= ?" + where + " ORDER BY v.asked_id", (int(since), *params)).fetchall()]

    def forget_before(self, before: float) -> int:
        """The retention purge: questions asked before `before`, and their votes, are deleted."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM votes WHERE asked_id IN (SELECT id FROM asked WHERE asked_at < ?)",
                                 (int(before),))
                cur = self._db.execute("DELETE FROM asked WHERE asked_at < ?", (int(before),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return cur.rowcount

    def teach(self, entry_id: str, phrasing: str, now: float, by: str) -> bool:
        """Add a learned phrasing; False if that entry has it already."""
        with self._lock:
            try:
                self._db.execute("INSERT INTO learned (entry_id, phrasing, added_at, added_by) VALUES (?, ?, ?, ?)",
                                 (entry_id, phrasing, int(now), by))
            except sqlite3.IntegrityError:
                return False
            return True

    def unteach(self, entry_id: str, phrasing: str) -> bool:
        """Take a learned phrasing back; False if there was none."""
        with self._lock:
            cur = self._db.execute("DELETE FROM learned WHERE entry_id = ? AND phrasing = ?", (entry_id, phrasing))
            return cur.rowcount > 0

    def learned(self) -> list[tuple[str, str, int]]:
        """(entry id, phrasing, added at) of every learned phrasing, oldest first."""
        with self._lock:
            return [tuple(r) for r in self._db.execute(
                "SELECT entry_id, phrasing, added_at FROM learned ORDER BY added_at, entry_id, phrasing").fetchall()]

    def meta(self, name: str, default: Callable[[], str]) -> str:
        """A value the store keeps for itself (the voter-hash key), made with `default()` the first time."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return row[0]
            self._db.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                             (name, default()))
            return self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]

    # -- leases -----------------------------------------------------------------------------------

    def lease(self, name: str, holder: str, now: float, ttl: float) -> bool:
        """Take or renew the named lease for `holder` until now + ttl: True if `holder` has it now
        (it was free, had run out, or was `holder`'s already). One statement, so two replicas
        asking at once cannot both win."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
                (name, holder, _ms(now + ttl), _ms(now)))
            return cur.rowcount == 1

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (a clean shutdown), so a standby takes over at once; no-op if not held."""
        with self._lock:
            self._db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def lease_holder(self, name: str, now: float) -> str | None:
        """Who holds the named lease now, if anyone."""
        with self._lock:
            row = self._db.execute("SELECT holder FROM leases WHERE name = ? AND expires_at > ?",
                                   (name, _ms(now))).fetchone()
        return row[0] if row else None

    # -- installations and their OAuth states ---------------------------------------------------

    def save_installation(self, platform: str, team: str, data: str, now: float) -> None:
        """Create or replace one team's installation; `data` is the adapter's record of it, tokens included."""
        if not team:
            raise ValueError("an installation needs a team")
        with self._lock:
            self._db.execute(
                "INSERT INTO installations (platform, team_id, data, installed_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (platform, team_id) DO UPDATE SET data = excluded.data,"
                " installed_at = excluded.installed_at", (platform, _team(team), data, int(now)))

    def installation(self, platform: str, team: str) -> str | None:
        """One team's installation as it was saved, or None."""
        with self._lock:
            row = self._db.execute("SELECT data FROM installations WHERE platform = ? AND team_id = ?",
                                   (platform, _team(team))).fetchone()
        return row[0] if row else None

    def delete_installation(self, platform: str, team: str) -> bool:
        """Delete one team's installation (its tokens) and nothing else; False if there was none."""
        with self._lock:
            cur = self._db.execute("DELETE FROM installations WHERE platform = ? AND team_id = ?",
                                   (platform, _team(team)))
            return cur.rowcount > 0

    def forget_team(self, platform: str, team: str) -> int:
        """Delete everything kept for one team, in one transaction: its installation, its channels'
        subscriptions and tip posts, its inbox rows, its questions and their votes. Returns the rows deleted."""
        if not team:
            raise ValueError("forget_team needs a team: '' is every row of a platform with one")
        p, t = platform, _team(team)
        steps = (
            ("DELETE FROM votes WHERE asked_id IN (SELECT id FROM asked WHERE platform = ? AND team_id = ?)", (p, t)),
            ("DELETE FROM asked WHERE platform = ? AND team_id = ?", (p, t)),
            ("DELETE FROM tip_posts WHERE platform = ? AND channel_id IN"
             " (SELECT channel_id FROM subscriptions WHERE platform = ? AND team_id = ?)", (p, p, t)),
            ("DELETE FROM subscriptions WHERE platform = ? AND team_id = ?", (p, t)),
            ("DELETE FROM inbox WHERE platform = ? AND team_id = ?", (p, t)),
            ("DELETE FROM installations WHERE platform = ? AND team_id = ?", (p, t)),
        )
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = sum(self._db.execute(statement, params).rowcount for statement, params in steps)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return gone

    def use_state(self, state: str, now: float, expires_at: float) -> bool:
        """Use a one-time state (an OAuth flow's) up: True the first time, for one caller only (the PRIMARY
        KEY decides), False ever after. It is kept until `expires_at`; those past it are dropped on the way."""
        with self._lock:
            self._db.execute("DELETE FROM used_states WHERE expires_at <= ?", (_ms(now),))
            try:
                self._db.execute("INSERT INTO used_states (state, expires_at) VALUES (?, ?)", (state, _ms(expires_at)))
            except sqlite3.IntegrityError:
                return False
            return True

    # -- daily tips ---------------------------------------------------------------------------

    def subscribe(self, sub: Subscription, now: float | None = None) -> None:
        """Create or replace a channel's subscription (and reactivate it)."""
        now = time.time() if now is None else now
        row = (sub.platform, sub.channel_id, sub.time.strftime("%H:%M"), sub.zone, ",".join(sub.topics), int(now),
               _team(sub.team))
        with self._lock:
            self._db.execute(
                "INSERT INTO subscriptions (platform, channel_id, post_time, zone, topics, active, failures, updated_at,"
                " team_id) VALUES (?, ?, ?, ?, ?, 1, 0, ?, ?)"
                " ON CONFLICT (platform, channel_id) DO UPDATE SET post_time = excluded.post_time,"
                " zone = excluded.zone, topics = excluded.topics, active = 1, failures = 0,"
                " updated_at = excluded.updated_at, team_id = excluded.team_id",
                row,
            )

    def unsubscribe(self, platform: str, channel_id: str) -> bool:
        """Remove a channel's subscription; False if it had none."""
        with self._lock:
            cur = self._db.execute("DELETE FROM subscriptions WHERE platform = ? AND channel_id = ?",
                                   (platform, channel_id))
            return cur.rowcount > 0

    def subscription(self, platform: str, channel_id: str) -> Subscription | None:
        """A channel's subscription, active or not."""
        with self._lock:
            row = self._db.execute(_SUBSCRIPTION + " WHERE platform = ? AND channel_id = ?",
                                   (platform, channel_id)).fetchone()
        return _subscription(row) if row else None

    def subscriptions(self, active_only: bool = True) -> list[Subscription]:
        """Every subscription, by platform and channel."""
        where = " WHERE active = 1" if active_only else ""
        with self._lock:
            rows = self._db.execute(_SUBSCRIPTION + where + " ORDER BY platform, channel_id").fetchall()
        return [_subscription(r) for r in rows]

    def claim_post(self, platform: str, channel_id: str, local_date: str, now: float,
                   stale_after: float) -> bool:
        """Claim the post of one channel on one local date; True for exactly one caller.

        A claim left unsent (a crash between claim and send) can be taken again once it is
        `stale_after` seconds old; the UPDATE's WHERE makes that re-take exclusive too.
        """
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO tip_posts (platform, channel_id, local_date, claimed_at) VALUES (?, ?, ?, ?)",
                    (platform, channel_id, local_date, int(now)),
                )
                return True
            except sqlite3.IntegrityError:
                cur = self._db.execute(
                    "UPDATE tip_posts SET claimed_at = ? WHERE platform = ? AND channel_id = ? AND local_date = ?"
                    " AND sent_at IS NULL AND claimed_at <= ?",
                    (int(now), platform, channel_id, local_date, int(now - stale_after)),
                )
                return cur.rowcount == 1

    def mark_sent(self, platform: str, channel_id: str, local_date: str, tip_id: str, now: float) -> None:
        """Record that the claimed post went out, with the tip it carried; clears failures."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "UPDATE tip_posts SET tip_id = ?, sent_at = ? WHERE platform = ? AND channel_id = ? AND local_date = ?",
                    (tip_id, int(now), platform, channel_id, local_date),
                )
                self._db.execute("UPDATE subscriptions SET failures = 0 WHERE platform = ? AND channel_id = ?",
                                 (platform, channel_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def release_post(self, platform: str, channel_id: str, local_date: str) -> None:
        """Give up an unsent claim so the next tick can try again (after a transient failure)."""
        with self._lock:
            self._db.execute(
                "DELETE FROM tip_posts WHERE platform = ? AND channel_id = ? AND local_date = ? AND sent_at IS NULL",
                (platform, channel_id, local_date),
            )

    def record_failure(self, platform: str, channel_id: str, deactivate_after: int) -> bool:
        """Count a permanent posting failure; True when it deactivated the subscription."""
        with self._lock:
            self._db.execute("UPDATE subscriptions SET failures = failures + 1 WHERE platform = ? AND channel_id = ?",
                             (platform, channel_id))
            cur = self._db.execute(
                "UPDATE subscriptions SET active = 0 WHERE platform = ? AND channel_id = ? AND active = 1"
                " AND failures >= ?",
                (platform, channel_id, deactivate_after),
            )
            return cur.rowcount == 1

    def sent_tips(self, platform: str, channel_id: str) -> list[tuple[str, str]]:
        """(local date, tip id) of every tip posted in a channel, oldest first."""
        with self._lock:
            return [tuple(r) for r in self._db.execute(
                "SELECT local_date, tip_id FROM tip_posts WHERE platform = ? AND channel_id = ?"
                " AND sent_at IS NOT NULL ORDER BY local_date", (platform, channel_id)).fetchall()]

    def posted_on(self, platform: str, channel_id: str, local_date: str) -> bool:
        """Whether the post for that local date went out."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM tip_posts WHERE platform = ? AND channel_id = ? AND local_date = ? AND sent_at IS NOT NULL",
                (platform, channel_id, local_date)).fetchone()
        return row is not None

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SUBSCRIPTION = "SELECT platform, channel_id, post_time, zone, topics, active, team_id FROM subscriptions"


def _subscription(row: tuple) -> Subscription:
    platform, channel_id, post_time, zone, topics, active, team = row
    hours, minutes = post_time.split(":")
    return Subscription(platform, channel_id, dt.time(int(hours), int(minutes)), zone,
                        tuple(t for t in topics.split(",") if t), bool(active), team)


def _team(team: str) -> str:
    """A team id as its column keeps it (a platform's ids are far shorter)."""
    return (team or "")[:64]


def _ms(t: float) -> int:
    """Lease times are kept in milliseconds: a lease of a few seconds must not round away."""
    return int(t * 1000)


def _key(key: str) -> str:
    """A key that fits the column: long ones (junk a platform sent) become their SHA-256."""
    if not key:
        raise ValueError("an inbox key must not be empty")
    if len(key) <= MAX_KEY:
        return key
    import hashlib

    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
