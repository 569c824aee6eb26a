"""The composition root: settings, store, knowledge and the bot, built once from the environment.

Nothing below the app layer reads the environment or opens a store; these functions do, and
hand the results down.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bot import analysis
from bot import knowledge as knowledge_base
from bot.config import Config, as_store, read
from bot.core import TrendBot
from bot.index_cache import IndexCache
from bot.learning import Learning
from bot.sqlite_store import SQLiteStore
from bot.store import Store, StoreError
from trendbot import registry

if TYPE_CHECKING:  # the inbox brings asyncio: only the runner needs it, not `trendbot ask`
    from adapters.inbox import Inbox

log = logging.getLogger(__name__)

DB = "TRENDBOT_DB"


def settings(environ: Mapping[str, str] = os.environ, path: str | None = None,
             platforms: bool = True) -> tuple[Config, list[str]]:
    """The settings in effect and their problems; with `platforms`, every platform's settings too."""
    return read(environ, path, registry.settings(platforms))


def secrets(config: Config) -> tuple[str, ...]:
    """Every secret setting's value (from its variable or NAME_FILE), for the log filter."""
    from adapters.secrets import SettingsError, read_secret

    values = []
    for setting in config.settings:
        if setting.secret:
            try:
                values.append(read_secret(config.environ, setting.name))
            except SettingsError:
                pass  # an unreadable NAME_FILE holds no secret this process knows
    values += db_passwords(config)
    return tuple(v for v in values if v)


def db_passwords(config: Config) -> list[str]:
    """The password in a TRENDBOT_DB URL, as written and decoded; too short a one would blank out
    ordinary words of the logs, so only passwords of six characters or more."""
    from urllib.parse import unquote

    from bot.postgres_store import password

    found = password(config.environ.get(DB, ""))
    return [p for p in dict.fromkeys((found, unquote(found))) if len(p) >= 6]


def redact_logs(secrets: tuple[str, ...]) -> None:
    """Keep the secrets out of every log line this process writes."""
    import logging

    from adapters.secrets import SecretFilter

    secret_filter = SecretFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)


def default_db(environ: Mapping[str, str]) -> Path:
    """trendbot/trendbot.db in the user's state directory (where TRENDBOT_DB is unset)."""
    if os.name == "nt" and environ.get("LOCALAPPDATA"):
        base = Path(environ["LOCALAPPDATA"])
    elif environ.get("XDG_STATE_HOME"):
        base = Path(environ["XDG_STATE_HOME"])
    else:
        base = Path(os.path.expanduser("~")) / ".local" / "state"
    return base / "trendbot" / "trendbot.db"


def cache_dir(config: Config) -> Path:
    """TRENDBOT_CACHE_DIR, or trendbot/ in the user's cache directory: built indexes, the English word list."""
    if config["TRENDBOT_CACHE_DIR"]:
        return Path(config["TRENDBOT_CACHE_DIR"])
    environ = config.environ
    if os.name == "nt" and environ.get("LOCALAPPDATA"):
        base = Path(environ["LOCALAPPDATA"])
    elif environ.get("XDG_CACHE_HOME"):
        base = Path(environ["XDG_CACHE_HOME"])
    else:
        base = Path(os.path.expanduser("~")) / ".cache"
    return base / "trendbot"


def db_target(config: Config) -> str:
    """TRENDBOT_DB as given: '' (the default SQLite file), a file path, or a PostgreSQL URL.

    Read from the text, not the parsed setting: a command that goes on despite problems in the
    settings must not take the default file for a URL it cannot use."""
    try:
        return as_store(config.environ.get(DB, ""))
    except ValueError as exc:
        raise StoreError(f"{DB}: {exc}") from None


def open_db(config: Config) -> Store:
    """The store TRENDBOT_DB names (or the default one): PostgreSQL for a postgresql:// URL,
    SQLite otherwise. StoreError names the setting, and never a password."""
    from bot.postgres_store import is_postgres

    target = db_target(config)
    if is_postgres(target):
        from bot.postgres_store import PostgresStore, masked

        return PostgresStore(target, where=f"{masked(target)} ({DB})")
    where = f"{target} ({DB})" if target else None
    return SQLiteStore(target or default_db(config.environ), where=where)


def db_opener(config: Config) -> Callable[[], Store]:
    """A function that opens the store on first use (so `trendbot ask` creates no file). Once it
    failed it fails again at once: a console chat does not wait for an unreachable server
    on every question."""
    failed: list[StoreError] = []

    def opener() -> Store:
        if failed:
            raise failed[0]
        try:
            return open_db(config)
        except StoreError as exc:
            failed.append(exc)
            raise

    return opener


def inbox(store: Store, platform: str, config: Config) -> Inbox:
    """One platform's reply inbox over the store, with the lease and window the settings give."""
    from adapters.inbox import Inbox

    return Inbox(store, platform, lease=config["TRENDBOT_INBOX_LEASE"], useful_for=config["TRENDBOT_REPLY_WINDOW"])


def knowledge(folder: str | None, max_bytes: int = knowledge_base.MAX_BYTES
              ) -> tuple[knowledge_base.Knowledge | None, list[str]]:
    """The knowledge in `folder` (or the shipped one), or None and every problem in it."""
    try:
        return knowledge_base.load(folder or None, max_bytes), []
    except knowledge_base.KnowledgeError as exc:
        return None, [f"knowledge: {p}" for p in exc.problems]


def bot(kb: knowledge_base.Knowledge, config: Config, store: Store | Callable[[], Store]) -> TrendBot:
    """The bot over the knowledge, with daily tips and the learning loop over the store (the
    phrasings taught so far in its index). With a function that opens the store, nothing is
    opened before it is needed, and a store that does not exist yet has taught nothing."""
    learning = Learning(store, keep_questions=config["TRENDBOT_KEEP_QUESTIONS"],
                        retention_days=config["TRENDBOT_QUESTION_RETENTION_DAYS"])
    learned: dict[str, tuple[str, ...]] = {}
    if not callable(store) or hasattr(store, "record_question") or db_exists(config):
        try:
            learned = learning.phrasings()
        except StoreError as exc:  # said again where the store is needed: a command's error line, a warning
            log.debug("no taught phrasings: %s", exc)
    folder = cache_dir(config)
    analysis.cache_folder = folder
    bot = TrendBot(kb, learned=learned, cache=IndexCache(folder))
    bot.enable_tips(learning.store_or_opener if not callable(learning.store_or_opener) else _shared(learning),
                    catch_up=dt.timedelta(hours=config["TRENDBOT_TIPS_CATCH_UP_HOURS"]))
    bot.enable_learning(learning)
    return bot


def _shared(learning: Learning) -> Callable[[], Store]:
    """One store for tips and learning, opened by whichever needs it first."""
    return lambda: learning.store


def db_exists(config: Config) -> bool:
    """Whether the store may hold something already: a PostgreSQL database always may; a SQLite
    store if the file TRENDBOT_DB names (or the default one) is there."""
    from bot.postgres_store import is_postgres

    try:
        target = db_target(config)
    except StoreError:
        return False
    return is_postgres(target) or Path(target or default_db(config.environ)).exists()
