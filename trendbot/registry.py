"""The platforms trendbot runs on, one line each: the only list that knows every platform.

Each line names the adapter module that brings the platform's `SURFACE` (adapters/platform.py):
its settings, how to connect it and how to post a tip without a connection. Modules are imported
only when asked for, so the console path never loads a chat library. Adding a platform is one
adapter module and one line here.
"""
from __future__ import annotations

import importlib

from adapters.platform import Surface
from bot.config import SETTINGS, Setting

PLATFORMS = {
    "slack": "adapters.slack_app",
    "discord": "adapters.discord_app",
}


def surface(name: str) -> Surface:
    """The platform called `name` (importing its adapter)."""
    return importlib.import_module(PLATFORMS[name]).SURFACE


def surfaces() -> list[Surface]:
    """Every platform, in the registry's order."""
    return [surface(name) for name in PLATFORMS]


def settings(platforms: bool = True) -> tuple[Setting, ...]:
    """The core's settings, and with `platforms` every platform's too (which imports the adapters)."""
    return SETTINGS + (tuple(s for p in surfaces() for s in p.settings) if platforms else ())
