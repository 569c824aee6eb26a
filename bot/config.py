"""The settings of a running trendbot: environment variables, optionally a YAML config file.

Every setting has one name, its environment variable; a config file uses the same name in lower
case without the `TRENDBOT_` prefix (`TRENDBOT_HTTP_PORT` -> `http_port`, `SLACK_API_URL` ->
`slack_api_url`). The environment wins over the file, the file over the default. Secrets (the
tokens) come from the environment only, or from a file named by NAME_FILE: a config file that
holds one is refused. `load` checks everything and lists every problem at once.

This module holds the mechanism and the core's own settings (`SETTINGS`); each platform adapter
declares its settings next to the code that uses them, and the app layer reads them all together.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SETTINGS", "Config", "ConfigError", "Setting", "as_choice", "as_count", "as_flag", "as_folder", "as_path", "as_port",
           "as_seconds", "as_store", "as_text", "load", "read"]


class ConfigError(ValueError):
    """The settings are not usable; `problems` lists each one, naming the variable and what to do."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def as_choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value
    return parse


def as_port(text: str) -> int:
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError("must be a port number from 0 to 65535 (0 picks a free one)")
    return int(text)


def as_seconds(limit: float, least: float = 0.0) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("must be a number") from None
        if not math.isfinite(value) or not 0 <= value <= limit or 0 < value < least:
            raise ValueError(f"must be 0 or between {least:g} and {limit:g}" if least else
                             f"must be between 0 and {limit:g}")
        return value
    return parse


def as_count(least: int, most: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.strip().isdigit() or not least <= int(text) <= most:
            raise ValueError(f"must be a whole number from {least:,} to {most:,}")
        return int(text)
    return parse


def as_flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def as_text(text: str) -> str:
    return text.strip()


def as_path(text: str) -> str:
    return str(Path(text.strip()).expanduser()) if text.strip() else ""


def as_folder(value: str) -> str:
    found = as_path(value)
    if found and not Path(found).is_dir():
        raise ValueError(f"{found} is not a folder")
    return found


_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.I)
STORE_FORMS = "a file path or sqlite:///PATH for SQLite, or postgresql://USER@HOST/DB for PostgreSQL"


def as_store(text: str) -> str:
    """TRENDBOT_DB: '' (the default file), a SQLite file's path (also written sqlite:///PATH), or a
    PostgreSQL URL, kept as it is. Any other URL is refused: it must never become a folder named
    after its scheme."""
    from bot.postgres_store import SCHEMES

    value = text.strip()
    m = _URL.match(value)
    if m is None:
        return as_path(value)
    scheme = m.group(1).lower()
    if scheme in SCHEMES:
        return scheme + value[len(scheme):]  # libpq reads the scheme in lower case only
    if scheme == "sqlite" and value[m.end():].startswith("/"):
        return as_path("/" + value[m.end():].lstrip("/"))  # sqlite:///data/t.db is /data/t.db, as in file://
    if scheme == "sqlite":
        raise ValueError("sqlite:// takes an absolute path (sqlite:///data/trendbot.db); give a relative path alone")
    raise ValueError(f"{scheme}:// is not a store trendbot knows; use {STORE_FORMS}")


# Slack's tokens (xoxb-, xoxp-, xapp-, ...) and Discord's three-part bot tokens.
_TOKEN_SHAPED = re.compile(r"\bxox[a-z]-|\bxapp-|[\w-]{20,}\.[\w-]{5,}\.[\w-]{20,}")


@dataclass(frozen=True)
class Setting:
    """One setting: its environment variable, default, meaning, and how its text is read."""

    name: str
    default: str
    help: str
    parse: Callable[[str], Any] = as_text
    secret: bool = False
    many: bool = False  # a comma-separated list; a config file may give it as a YAML list
    show: Callable[[str], str] | None = None  # how `trendbot config` prints it (a URL's password masked)

    @property
    def key(self) -> str:
        """Its name in a config file."""
        return self.name.lower().removeprefix("trendbot_")


def _masked(url: str) -> str:
    from bot.postgres_store import masked

    return masked(url)


SETTINGS: tuple[Setting, ...] = (
    Setting("TRENDBOT_KNOWLEDGE", "", "knowledge folder; empty: the knowledge shipped with trendbot", as_folder),
    Setting("TRENDBOT_KNOWLEDGE_MAX_BYTES", "4194304", "a knowledge file larger than this many bytes is refused",
            as_count(1024, 1 << 30)),
    Setting("TRENDBOT_DB", "", "the store (subscriptions, tip history, the reply inbox, the learning loop): a SQLite "
            "file, or postgresql://USER:PASSWORD@HOST:PORT/DB for one PostgreSQL database shared by several replicas; "
            "empty: ~/.local/state/trendbot/trendbot.db", as_store, show=_masked),
    Setting("TRENDBOT_CACHE_DIR", "", "folder for the built index (a file per knowledge version) and the English word "
            "list; empty: ~/.cache/trendbot (XDG_CACHE_HOME)", as_path),
    Setting("TRENDBOT_LOG_FORMAT", "text", "text or json (one JSON object per line)", as_choice("text", "json")),
    Setting("TRENDBOT_LOG_LEVEL", "info", "debug, info, warning or error", as_choice("debug", "info", "warning", "error")),
    Setting("TRENDBOT_LOG_QUESTIONS", "false", "true puts the text of questions in the logs (off for privacy)", as_flag),
    Setting("TRENDBOT_HTTP_HOST", "0.0.0.0", "address of the /healthz and /metrics endpoints"),
    Setting("TRENDBOT_HTTP_PORT", "8080", "port of the /healthz and /metrics endpoints", as_port),
    Setting("TRENDBOT_RELOAD_INTERVAL", "2", "seconds between checks of the knowledge folder for changes; "
            "0: reload on SIGHUP only", as_seconds(3600, least=0.5)),
    Setting("TRENDBOT_TIPS_CATCH_UP_HOURS", "6", "after downtime, post today's missed tip if at most this many "
            "hours late", as_seconds(23)),
    Setting("TRENDBOT_KEEP_QUESTIONS", "true", "keep the text of questions (declined ones for the report, rated "
            "ones with their votes); false: counts only", as_flag),
    Setting("TRENDBOT_QUESTION_RETENTION_DAYS", "90", "days questions, their votes and counts are kept before they "
            "are deleted", as_seconds(3650, least=1)),
    Setting("TRENDBOT_REPLY_WINDOW", "600", "seconds during which a question a crash left unanswered is still "
            "answered after a restart", as_seconds(86400, least=1)),
    Setting("TRENDBOT_INBOX_LEASE", "30", "seconds a process may work on a question before another (or a restart) "
            "takes it over", as_seconds(3600, least=1)),
)


@dataclass(frozen=True)
class Config:
    """The effective settings. `values` holds each one read, `origins` where it came from, and
    `environ` the merged text of everything (what the platforms' own settings read)."""

    values: Mapping[str, Any]
    origins: Mapping[str, str]  # environment | NAME_FILE | config file | default
    environ: Mapping[str, str] = field(repr=False)  # holds the secrets: never in a repr or traceback
    settings: tuple[Setting, ...] = SETTINGS

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def has(self, name: str) -> bool:
        """Whether a secret is set (in its variable or through NAME_FILE)."""
        return self.origins.get(name) not in (None, "default")

    def lines(self) -> list[str]:
        """The settings as NAME=value lines, secrets masked, each with where it came from."""
        out = []
        for s in self.settings:
            origin = self.origins[s.name]
            if s.secret:
                shown, origin = ("********", origin) if self.has(s.name) else ("", "not set")
            else:
                shown = self.environ.get(s.name, s.default)  # empty variables never reach environ
                if s.show is not None:
                    shown = s.show(shown)
                if _TOKEN_SHAPED.search(shown):  # a token pasted under the wrong name is still a token
                    shown = "******** (looks like a token: not shown)"
            out.append(f"{s.name}={shown}".ljust(40) + f"  # {origin}")
        return out


def load(environ: Mapping[str, str], path: str | os.PathLike[str] | None = None,
         settings: tuple[Setting, ...] = SETTINGS) -> Config:
    """Read `settings` from `environ` and the YAML file at `path`; ConfigError lists every problem."""
    config, problems = read(environ, path, settings)
    if problems:
        raise ConfigError(problems)
    return config


def read(environ: Mapping[str, str], path: str | os.PathLike[str] | None = None,
         settings: tuple[Setting, ...] = SETTINGS) -> tuple[Config, list[str]]:
    """The settings and their problems; a setting with a problem takes its default, so checks can go on."""
    by_name = {s.name: s for s in settings}
    problems: list[str] = []
    merged: dict[str, str] = {}
    origins: dict[str, str] = {}
    if path is not None:
        for name, text in _read_file(Path(path), problems, settings).items():
            merged[name], origins[name] = text, "config file"
    for key, text in environ.items():
        if key in by_name and not text.strip():
            continue  # an empty variable means "not set" (a whole .env file copied in), so the file or default stands
        merged[key] = text
        if key in by_name:
            origins[key] = "environment"
    values: dict[str, Any] = {}
    for s in settings:
        if s.secret:
            if environ.get(s.name, "").strip():
                origins[s.name] = "environment"
            elif environ.get(f"{s.name}_FILE", "").strip():
                origins[s.name] = f"{s.name}_FILE"
            else:
                origins[s.name] = "default"
            continue
        origins.setdefault(s.name, "default")
        text = merged.get(s.name, s.default)
        try:
            values[s.name] = s.parse(text)
        except ValueError as exc:
            problems.append(f"{s.name} ({origins[s.name]}): {exc}")
            values[s.name] = s.parse(s.default)
    return Config(values, origins, merged, settings), problems


def _read_file(path: Path, problems: list[str], settings: tuple[Setting, ...]) -> dict[str, str]:
    """A config file's settings by variable name; its problems go to `problems`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"--config {path}: cannot read it ({exc.strerror})")
        return {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problems.append(f"--config {path}: not valid YAML{where}")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"--config {path}: must be a mapping of settings, e.g. `log_format: json`")
        return {}
    by_key = {s.key: s for s in settings}
    out = {}
    for key, value in data.items():
        setting = by_key.get(str(key).lower())
        if setting is None:
            close = difflib.get_close_matches(str(key).lower(), by_key, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.append(f"--config {path}: unknown setting {str(key)[:60]!r}{hint}")
        elif setting.secret:
            problems.append(f"--config {path}: {key} is a secret; secrets come from the environment only "
                            f"({setting.name} or {setting.name}_FILE), never from a file that may be committed")
        elif isinstance(value, dict) or (isinstance(value, list) and not setting.many):
            problems.append(f"--config {path}: {key} must be a single value")
        elif isinstance(value, list):
            out[setting.name] = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            out[setting.name] = "true" if value else "false"
        else:
            out[setting.name] = "" if value is None else str(value)
    return out
