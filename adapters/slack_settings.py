"""The Slack settings: the variables trendbot reads for Slack, checked once at start.

Two ways to run: one workspace with its bot token (SLACK_BOT_TOKEN), or several, each installed
through Slack's OAuth flow (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_STATE_SECRET, HTTP mode
only), its bot token then kept in the store.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from adapters.secrets import SettingsError, read_secret
from bot.config import Config, ConfigError, Setting, as_port, load

DEFAULT_API_URL = "https://slack.com/api/"
# The bot scopes an OAuth install asks for: the same as slack/manifest.yaml and slack/manifest-oauth.yaml.
BOT_SCOPES = ("app_mentions:read", "chat:write", "commands", "im:history", "users:read", "channels:read",
              "groups:read", "channels:join")
OAUTH = ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_STATE_SECRET")  # set together, for several workspaces
MIN_STATE_SECRET = 32


def as_user_ids(text: str) -> frozenset[str]:
    """TRENDBOT_SLACK_MANAGERS: comma-separated Slack user ids."""
    ids = frozenset(m.strip() for m in text.split(",") if m.strip())
    if any(not re.fullmatch(r"[UW][A-Z0-9]+", m) for m in ids):
        raise ValueError("must be a comma-separated list of Slack user ids (U...)")
    return ids


SETTINGS = (
    Setting("SLACK_BOT_TOKEN", "", "Slack: the Bot User OAuth Token (xoxb-...); set it to run in Slack", secret=True),
    Setting("SLACK_APP_TOKEN", "", "Slack: an app-level token (xapp-...) for Socket Mode; unset: HTTP mode",
            secret=True),
    Setting("SLACK_SIGNING_SECRET", "", "Slack HTTP mode: the app's Signing Secret", secret=True),
    Setting("SLACK_CLIENT_ID", "", "Slack in several workspaces (instead of SLACK_BOT_TOKEN): the app's Client ID; "
            "installs go through /slack/install"),
    Setting("SLACK_CLIENT_SECRET", "", "Slack in several workspaces: the app's Client Secret", secret=True),
    Setting("SLACK_STATE_SECRET", "", f"Slack in several workspaces: {MIN_STATE_SECRET}+ random characters that sign "
            "the one-time OAuth states (openssl rand -hex 32)", secret=True),
    Setting("SLACK_API_URL", DEFAULT_API_URL, "Slack Web API base URL"),
    Setting("TRENDBOT_SLACK_HOST", "0.0.0.0", "Slack HTTP mode: address for /slack/events"),
    Setting("TRENDBOT_SLACK_PORT", "3000", "Slack HTTP mode: port for /slack/events", as_port),
    Setting("TRENDBOT_SLACK_MANAGERS", "", "Slack user ids (comma-separated) who may change daily tips in any "
            "channel", as_user_ids, many=True),
)


def read_bot_token(environ: Mapping[str, str]) -> str:
    """SLACK_BOT_TOKEN (or the file SLACK_BOT_TOKEN_FILE names), checked."""
    token = read_secret(environ, "SLACK_BOT_TOKEN")
    if not token:
        raise SettingsError("SLACK_BOT_TOKEN is not set: give it the app's Bot User OAuth Token (xoxb-...)")
    if not re.fullmatch(r"xoxb-[\w-]+", token):
        raise SettingsError("SLACK_BOT_TOKEN is malformed: a bot token starts with xoxb- and has no spaces")
    return token


def read_oauth(config: Config) -> tuple[str, str, str] | None:
    """(client id, client secret, state secret) when trendbot is to be installed in several workspaces,
    None when none of them is set; SettingsError when only some are, or with SLACK_BOT_TOKEN too."""
    environ = config.environ
    values = (config["SLACK_CLIENT_ID"], read_secret(environ, "SLACK_CLIENT_SECRET"),
              read_secret(environ, "SLACK_STATE_SECRET"))
    if not any(values):
        return None
    missing = [name for name, value in zip(OAUTH, values) if not value]
    if missing:
        raise SettingsError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: installing "
                            "trendbot in several workspaces needs SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and "
                            "SLACK_STATE_SECRET together")
    if read_secret(environ, "SLACK_BOT_TOKEN"):
        raise SettingsError("SLACK_BOT_TOKEN is set with SLACK_CLIENT_ID: set SLACK_BOT_TOKEN for one workspace, or "
                            "SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_STATE_SECRET for several, not both")
    client_id, client_secret, state_secret = values
    if not re.fullmatch(r"\d+\.\d+", client_id):
        raise SettingsError("SLACK_CLIENT_ID is malformed: the app's Client ID is two numbers joined by a dot "
                            "(Basic Information -> App Credentials)")
    if not re.fullmatch(r"[A-Za-z0-9]+", client_secret):
        raise SettingsError("SLACK_CLIENT_SECRET is malformed: a client secret is letters and digits only")
    if len(state_secret) < MIN_STATE_SECRET or not state_secret.isascii() or any(c.isspace() for c in state_secret):
        raise SettingsError(f"SLACK_STATE_SECRET is too weak: give it at least {MIN_STATE_SECRET} random characters "
                            "without spaces, e.g. the output of `openssl rand -hex 32`")
    return values


def read_api_url(text: str) -> str:
    """SLACK_API_URL, checked, ending in a slash."""
    url = text or DEFAULT_API_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError("SLACK_API_URL is malformed: it must be an http(s) URL such as https://slack.com/api/")
    return url.rstrip("/") + "/"


@dataclass(frozen=True)
class Settings:
    """The Slack settings, read once at start. Secrets stay out of repr() and so out of tracebacks."""

    bot_token: str = field(repr=False)  # '' when installed in several workspaces (each token is in the store)
    signing_secret: str = field(default="", repr=False)
    app_token: str = field(default="", repr=False)
    api_url: str = DEFAULT_API_URL
    host: str = "0.0.0.0"
    port: int = 3000
    managers: frozenset[str] = frozenset()  # user ids allowed to change daily tips in any channel
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    state_secret: str = field(default="", repr=False)

    @property
    def socket_mode(self) -> bool:
        """Socket Mode when an app-level token is set, else HTTP mode."""
        return bool(self.app_token)

    @property
    def oauth(self) -> bool:
        """Installed in several workspaces through the OAuth flow (a client id), rather than one bot token."""
        return bool(self.client_id)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values that must never reach a log."""
        return tuple(s for s in (self.bot_token, self.app_token, self.signing_secret, self.client_secret,
                                 self.state_secret) if s)

    @property
    def listens(self) -> dict[str, int]:
        """The port it serves on (HTTP mode), by the variable that sets it."""
        return {} if self.socket_mode else {"TRENDBOT_SLACK_PORT": self.port}

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        """Check SLACK_BOT_TOKEN (or the three OAuth settings), SLACK_APP_TOKEN, SLACK_SIGNING_SECRET
        and SLACK_API_URL.

        Each secret may instead sit in a file named by NAME_FILE (Docker and systemd secrets).
        """
        environ = config.environ
        oauth = read_oauth(config)
        bot_token = read_bot_token(environ) if oauth is None else ""
        app_token = read_secret(environ, "SLACK_APP_TOKEN")
        if oauth is not None and app_token:
            raise SettingsError("SLACK_APP_TOKEN is set with SLACK_CLIENT_ID: installing trendbot in several "
                                "workspaces works in HTTP mode only; unset SLACK_APP_TOKEN and set SLACK_SIGNING_SECRET")
        if app_token and not re.fullmatch(r"xapp-[\w-]+", app_token):
            raise SettingsError("SLACK_APP_TOKEN is malformed: an app-level token starts with xapp- and has no spaces")
        secret = read_secret(environ, "SLACK_SIGNING_SECRET")
        if not app_token and not secret:
            raise SettingsError("SLACK_SIGNING_SECRET is not set: HTTP mode (no SLACK_APP_TOKEN) needs the app's "
                                "Signing Secret to verify requests")
        if secret and not re.fullmatch(r"[A-Za-z0-9]+", secret):
            raise SettingsError("SLACK_SIGNING_SECRET is malformed: a signing secret is letters and digits only")
        client_id, client_secret, state_secret = oauth or ("", "", "")
        return cls(bot_token=bot_token, signing_secret=secret, app_token=app_token,
                   api_url=read_api_url(config["SLACK_API_URL"]), host=config["TRENDBOT_SLACK_HOST"],
                   port=config["TRENDBOT_SLACK_PORT"], managers=config["TRENDBOT_SLACK_MANAGERS"],
                   client_id=client_id, client_secret=client_secret, state_secret=state_secret)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides) -> Settings:
        """Settings from environment variables alone (tests and scripts), with fields overridden."""
        try:
            config = load(environ, settings=SETTINGS)
        except ConfigError as exc:
            raise SettingsError("; ".join(exc.problems)) from None
        return replace(cls.from_config(config), **overrides)
