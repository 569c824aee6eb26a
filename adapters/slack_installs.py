"""Slack installations in the store: slack_sdk's installation store and OAuth state store over
bot/store.py's Store, so that trendbot installed in several workspaces keeps each one's bot token
in the same database as everything else, shared by every replica.

bolt's OAuth flow saves what oauth.v2.access returned (`Installations.async_save`), and its
authorize step finds the team's bot token for each request (`async_find_bot`); the adapter finds
it the same way for what bolt does not see: a question replayed after a crash, a daily tip.
Tokens are secrets: they are in no repr, and no log line or error message written here holds one.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_bolt.error import BoltError
from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions, AsyncFailureArgs, AsyncSuccessArgs
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_settings import BOT_SCOPES, Settings
from bot.store import Store

log = logging.getLogger(__name__)

PLATFORM = "slack"
STATE_TTL = 600  # seconds an install link stays good (bolt's state cookie lives as long)
INSTALL_PATH = "/slack/install"  # the "Add to Slack" page
REDIRECT_PATH = "/slack/oauth_redirect"  # where Slack sends the installer back (the manifest's redirect_urls)

# What an installation keeps: what trendbot needs to answer in the workspace, and no user token
# (it asks for no user scopes, so Slack gives none; one that came anyway is not kept).
_KEEP = ("app_id", "enterprise_id", "enterprise_name", "team_id", "team_name", "bot_token", "bot_id", "bot_user_id",
         "bot_refresh_token", "bot_token_expires_at", "user_id", "is_enterprise_install", "token_type", "installed_at")


@dataclass(frozen=True)
class Workspace:
    """One workspace trendbot is installed in, as the adapter talks to it."""

    team_id: str
    bot_token: str = field(repr=False)
    bot_user_id: str = ""
    installer: str = ""  # who installed trendbot there: a manager of that workspace


def to_data(installation: Installation) -> str:
    """An installation as the store keeps it (JSON; the bot token inside)."""
    data = {name: getattr(installation, name, None) for name in _KEEP}
    data["bot_scopes"] = ",".join(installation.bot_scopes or ())
    return json.dumps(data, sort_keys=True)


def to_installation(data: str) -> Installation:
    """The installation a stored record describes (for bolt)."""
    fields = json.loads(data)
    return Installation(**{k: v for k, v in fields.items() if k in _KEEP or k == "bot_scopes"})


def to_workspace(data: str) -> Workspace:
    """The workspace a stored record describes (for the adapter)."""
    fields = json.loads(data)
    return Workspace(fields["team_id"], fields["bot_token"], fields.get("bot_user_id") or "",
                     fields.get("user_id") or "")


class Installations(AsyncInstallationStore):
    """slack_sdk's AsyncInstallationStore over the store: one installation per workspace (the latest).

    Org-wide installs (Enterprise Grid) are refused: slack/manifest-oauth.yaml does not offer them,
    and a workspace is what trendbot keeps its rows by.
    """

    def __init__(self, store: Store, clock: Callable[[], float] = time.time):
        self.store = store
        self.clock = clock

    @property
    def logger(self) -> logging.Logger:
        return log

    async def _data(self, team_id: str | None) -> str | None:
        return await asyncio.to_thread(self.store.installation, PLATFORM, team_id) if team_id else None

    async def async_save(self, installation: Installation) -> None:
        """Keep what oauth.v2.access returned for the workspace, replacing an earlier install."""
        if installation.is_enterprise_install or not installation.team_id:
            raise BoltError("an org-wide install is not supported: install trendbot in each workspace")
        if not installation.bot_token:
            raise BoltError("the install gave no bot token")
        await asyncio.to_thread(self.store.save_installation, PLATFORM, installation.team_id, to_data(installation),
                                self.clock())
        log.info("installed in Slack workspace %s by %s", installation.team_id, installation.user_id)

    async def async_save_bot(self, bot: Bot) -> None:
        """A rotated bot token (token rotation is off in the manifests; kept for the interface)."""
        data = await self._data(bot.team_id)
        if data is None:
            raise BoltError("no installation to update")
        fields = json.loads(data) | {"bot_token": bot.bot_token, "bot_refresh_token": bot.bot_refresh_token,
                                "bot_token_expires_at": bot.bot_token_expires_at}
        await asyncio.to_thread(self.store.save_installation, PLATFORM, bot.team_id, json.dumps(fields, sort_keys=True),
                                self.clock())

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        """The workspace's bot (its token), or None where trendbot is not installed."""
        data = await self._data(team_id)
        return to_installation(data).to_bot() if data else None

    async def async_find_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                      user_id: str | None = None,
                                      is_enterprise_install: bool | None = False) -> Installation | None:
        """The workspace's installation; with `user_id`, only the one that person made."""
        data = await self._data(team_id)
        if data is None:
            return None
        installation = to_installation(data)
        return None if user_id is not None and user_id != installation.user_id else installation

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Drop the workspace's bot token."""
        if team_id:
            await asyncio.to_thread(self.store.delete_installation, PLATFORM, team_id)

    async def async_delete_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                        user_id: str | None = None) -> None:
        """Drop the workspace's installation; a person's alone holds nothing (no user tokens are kept)."""
        if user_id is None:
            await self.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Everything kept for the workspace (see `forget`)."""
        if team_id:
            await self.forget(team_id)

    async def workspace(self, team_id: str) -> Workspace | None:
        """The installed workspace `team_id`, or None."""
        data = await self._data(team_id)
        return to_workspace(data) if data else None

    async def for_channel(self, channel_id: str) -> Workspace | None:
        """The workspace of a subscribed channel (the team its subscription was made in), or None."""
        sub = await asyncio.to_thread(self.store.subscription, PLATFORM, channel_id)
        return await self.workspace(sub.team) if sub is not None and sub.team else None

    async def forget(self, team_id: str) -> int:
        """Delete the workspace's installation and every row kept for it; returns how many rows went."""
        gone = await asyncio.to_thread(self.store.forget_team, PLATFORM, team_id)
        log.info("Slack workspace %s: its installation and %d rows deleted", team_id, gone)
        return gone


class States(AsyncOAuthStateStore):
    """slack_sdk's AsyncOAuthStateStore: signed one-time states that run out.

    A state is a random nonce, the time it runs out and their HMAC under SLACK_STATE_SECRET, so
    any replica (same secret) can tell a state this deployment issued, still good, from anything
    else without asking the store, and opening the install page writes nothing. The store makes
    each good once (`use_state`, a PRIMARY KEY), however many replicas see it come back.
    """

    def __init__(self, store: Store, secret: str, ttl: float = STATE_TTL, clock: Callable[[], float] = time.time):
        self.store = store
        self._key = hashlib.sha256(b"trendbot-oauth-state:" + secret.encode()).digest()
        self.ttl = ttl
        self.clock = clock

    @property
    def logger(self) -> logging.Logger:
        return log

    def _sign(self, nonce: str) -> str:
        digest = hmac.new(self._key, nonce.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    async def async_issue(self, *args, **kwargs) -> str:
        """A new state for one install link: nonce.expiry.signature (cookie- and URL-safe characters only)."""
        body = f"{secrets.token_urlsafe(24)}.{int(self.clock() + self.ttl)}"
        return f"{body}.{self._sign(body)}"

    async def async_consume(self, state: str) -> bool:
        """True once for a state issued here that has not run out; False for anything else."""
        body, _, signature = (state or "")[:200].rpartition(".")
        _, _, expires = body.partition(".")
        if not expires.isdigit() or not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return False
        now = self.clock()
        if int(expires) <= now:
            return False
        return await asyncio.to_thread(self.store.use_state, body, now, int(expires))


def oauth_flow(settings: Settings, installations: Installations, store: Store, client: AsyncWebClient) -> AsyncOAuthFlow:
    """bolt's OAuth flow for trendbot: its scopes, bot tokens only, installations and states in the
    store, the code exchanged through `client` (SLACK_API_URL)."""
    return AsyncOAuthFlow(client=client, settings=AsyncOAuthSettings(
        client_id=settings.client_id, client_secret=settings.client_secret, scopes=list(BOT_SCOPES), user_scopes=[],
        install_path=INSTALL_PATH, redirect_uri_path=REDIRECT_PATH, callback_options=callback_options(),
        installation_store=installations, installation_store_bot_only=True,
        state_store=States(store, settings.state_secret), state_expiration_seconds=STATE_TTL, logger=log))


def callback_options() -> AsyncCallbackOptions:
    """bolt's pages after the OAuth redirect, with one log line for each install and each refusal."""

    async def success(args: AsyncSuccessArgs) -> BoltResponse:
        return await args.default.success(args)

    async def failure(args: AsyncFailureArgs) -> BoltResponse:
        # The reason is bolt's (invalid_state, ...) or the `error` Slack put in the redirect.
        reason = "".join(c for c in str(args.reason)[:60] if c.isprintable())
        log.warning("refused a Slack install (%s); nothing was stored", reason)
        return await args.default.failure(args)

    return AsyncCallbackOptions(success=success, failure=failure)
