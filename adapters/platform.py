"""What each chat surface brings to the app layer: its settings, a connection the runner supervises,
and a poster for daily tips. trendbot/registry.py lists one `Surface` per platform module."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bot.config import Config, Setting
from bot.tips import Poster


class Platform(Protocol):
    """One platform's connection as the runner supervises it."""

    name: str

    async def start(self) -> None:
        """Connect (raising if that fails); returns once messages can arrive."""

    async def wait(self) -> None:
        """Return or raise when the connection has ended for good."""

    async def stop(self, drain: float) -> None:
        """Take no new messages, give replies in progress `drain` seconds, then disconnect. Idempotent."""

    async def connected(self) -> bool:
        """Whether messages can arrive now."""

    def poster(self) -> Poster | None:
        """The daily-tip poster of the current connection, None while there is none."""


@runtime_checkable
class Standby(Protocol):
    """A platform whose connection one replica at a time may hold (Discord without shards): while
    another replica holds it, this one is not connected but standing by, ready to take over."""

    def standing_by(self) -> bool:
        """Whether another replica holds the connection and this one waits to take over."""


@dataclass(frozen=True)
class Surface:
    """One platform as the registry knows it.

    `settings` are its variables (checked with the rest at start, listed by `trendbot config`);
    it is configured when any of `tokens` is set, and `how` tells a person what to set. `read` turns the checked settings into the
    platform's own settings object (raising SettingsError for what only it can check); `connect`
    builds its Platform over the bot, its reply inbox (adapters/inbox.py), those settings and an
    `announce(text)` for the lines a person starting it wants to see; `post_once` opens a poster without a live
    connection, for `trendbot tips run-once`.
    """

    name: str
    settings: tuple[Setting, ...]
    tokens: tuple[str, ...]
    how: str
    read: Callable[[Config], Any]
    connect: Callable[[Any, Any, Any, Callable[[str], None]], Platform]
    post_once: Callable[[Config], AbstractAsyncContextManager[Poster]]

    def configured(self, config: Config) -> bool:
        """Whether the settings ask for this platform (one of its tokens is set)."""
        return any(config.has(name) for name in self.tokens)
