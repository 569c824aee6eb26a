"""The Discord settings: the variables trendbot reads for Discord, checked once at start, and the
link that invites the bot with the scopes and permissions it needs."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import discord

from adapters.discord_shards import Shards, as_shards
from adapters.secrets import SettingsError, read_secret
from bot.config import Config, ConfigError, Setting, load

PORTAL = "https://discord.com/developers/applications"
SCOPES = ("bot", "applications.commands")
# What the bot needs in a channel to answer mentions there (slash commands need no permission):
# Read Message History because an answer is a reply referencing the question.
PERMISSIONS = discord.Permissions(view_channel=True, send_messages=True, send_messages_in_threads=True,
                                  embed_links=True, read_message_history=True)


def as_server_id(text: str) -> int | None:
    """DISCORD_GUILD_ID (and `trendbot discord --guild`): a server id, or empty for none."""
    if not text.strip():
        return None
    if not text.strip().isdigit() or int(text) <= 0:
        raise ValueError("must be a Discord server id (digits): enable Developer Mode, right-click the server, "
                         "Copy Server ID")
    return int(text)


def as_lease(text: str) -> float:
    """TRENDBOT_DISCORD_LEASE: seconds, from 3 (renewed every second) to 600."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 3 <= value <= 600:
        raise ValueError("must be between 3 and 600 seconds")
    return value


SETTINGS = (
    Setting("DISCORD_TOKEN", "", "Discord: the bot token; set it to run in Discord", secret=True),
    Setting("DISCORD_GUILD_ID", "", "Discord: register the slash commands in this one server only (development)",
            as_server_id),
    Setting("TRENDBOT_DISCORD_SHARDS", "", "Discord: the shards this replica runs, as ids/count (0,1/4 or 2-3/4), "
            "or auto for Discord's recommended count in this one process; empty or auto: held by one replica "
            "at a time", as_shards),
    Setting("TRENDBOT_DISCORD_LEASE", "30", "Discord without shard ids: seconds after the connected replica stops "
            "renewing its lease (it died) before a standby takes over", as_lease),
)
LOGIN_REJECTED = (f"DISCORD_TOKEN was rejected by Discord: reset the token in {PORTAL} → your application → Bot → "
                  "Reset Token, and set DISCORD_TOKEN to the new one")


@dataclass(frozen=True)
class Settings:
    """The Discord settings, read once at start. The token stays out of repr() and so out of tracebacks."""

    token: str = field(repr=False)
    guild_id: int | None = None  # sync the commands to this server only (development)
    shards: Shards | None = None  # the shards this replica runs; None (or auto): all, under the leader lease
    lease: float = 30.0  # seconds the leader lease lasts without renewal (without shards)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values that must never reach a log."""
        return (self.token,) if self.token else ()

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        """Check DISCORD_TOKEN (or the file DISCORD_TOKEN_FILE names)."""
        token = read_secret(config.environ, "DISCORD_TOKEN")
        if not token:
            raise SettingsError(f"DISCORD_TOKEN is not set: give it the bot's token ({PORTAL} → your application "
                                "→ Bot → Reset Token)")
        if token.lower().startswith("bot "):
            raise SettingsError("DISCORD_TOKEN is malformed: set the token alone, without the 'Bot ' prefix")
        if not re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token):
            raise SettingsError("DISCORD_TOKEN is malformed: a bot token has three parts separated by dots; copy it "
                                f"from {PORTAL} → your application → Bot → Reset Token (not the Client Secret or "
                                "the Public Key)")
        return cls(token=token, guild_id=config["DISCORD_GUILD_ID"], shards=config["TRENDBOT_DISCORD_SHARDS"],
                   lease=config["TRENDBOT_DISCORD_LEASE"])

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides) -> Settings:
        """Settings from environment variables alone (tests and scripts), with fields overridden."""
        try:
            config = load(environ, settings=SETTINGS)
        except ConfigError as exc:
            raise SettingsError("; ".join(exc.problems)) from None
        return replace(cls.from_config(config), **overrides)


def invite_url(application_id: int | str) -> str:
    """The link that adds the bot to a server, with the scopes and permissions it needs."""
    return discord.utils.oauth_url(application_id, permissions=PERMISSIONS, scopes=SCOPES)
