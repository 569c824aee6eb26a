"""The composition root: settings, store, knowledge and the bot, built once from the environment.

Nothing below the app layer reads the environment or opens a store; these functions do, and
hand the results down.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bot import analysis
from bot import knowledge as knowledge_base
from bot.config import Config, read
from bot.core import TrendBot
from bot.index_cache import IndexCache
from bot.learning import Learning
from bot.sqlite_store import SQLiteStore
from bot.store import Store
from trendbot import registry

if TYPE_CHECKING:  # the inbox brings asyncio: only the runner needs it, not `trendbot ask`
    from adapters.inbox import Inbox

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
    return tuple(v for v in values if v)


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


def open_db(config: Config) -> Store:
    """The store TRENDBOT_DB names (or the default one); StoreError names the setting."""
    target = config[DB]
    where = f"{target} ({DB})" if target else None
    return SQLiteStore(target or default_db(config.environ), where=where)


def db_opener(config: Config) -> Callable[[], Store]:
    """A function that opens the store on first use (so `trendbot ask` creates no file)."""
    return lambda: open_db(config)


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
        learned = learning.phrasings()
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
    """Whether the SQLite store TRENDBOT_DB names (or the default one) is there already."""
    return Path(config[DB] or default_db(config.environ)).exists()
