"""Slack: a thin slack-bolt app wiring Slack's payloads to the core, its Platform and its tip poster.

The pure parts hold what is worth testing: adapters/slack_payloads.py (payloads to Incoming,
the checks before bolt), adapters/slack_settings.py, adapters/slack_blocks.py (Replies to Block
Kit) and adapters/slack_home.py (the Teach modal, the App Home). `SlackApp` only connects them
to slack-bolt's AsyncApp, in Socket Mode or over HTTP. Only the registry names this module,
lazily, so the console path never loads slack_bolt, slack_sdk or aiohttp.

One workspace (SLACK_BOT_TOKEN) or several (SLACK_CLIENT_ID...: bolt's OAuth flow, the
installations in the store, adapters/slack_installs.py): every Web API call goes out with the
token of the workspace the payload came from (`SlackApp.team`), and what trendbot keeps for a
workspace is deleted when it uninstalls trendbot.

Why asyncio (AsyncApp + aiohttp) rather than the threaded App: a 429 from the Web API is
retried with slack_sdk's async retry handlers, which `await asyncio.sleep(Retry-After)` and so
hold up no other conversation, and the daily-tip scheduler is planned as an asyncio loop that
can share this one.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

import aiohttp
from aiohttp import ClientError, web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.inbox import Inbox
from adapters.lifecycle import InFlight, RateLimitedLog
from adapters.platform import Surface
from adapters.secrets import SecretFilter, SettingsError
from adapters.slack_blocks import ACTION_PREFIX, MORE_ACTION, TEACH_ACTION, VOTE_ACTION, render
from adapters.slack_home import HOME_ASK, TEACH_VIEW, home_view, taught, teach_modal
from adapters.slack_installs import INSTALL_PATH, REDIRECT_PATH, Installations, oauth_flow
from adapters.slack_payloads import (MAX_BODY, dm_channel, inbox_key, minimal, read_capped, signed, team_of,
                                     to_incoming, wants_reply, well_formed)
from adapters.slack_settings import OAUTH, SETTINGS, Settings, read_api_url, read_bot_token
from bot.config import Config
from bot.core import Incoming
from bot.events import emit
from bot.replies import Reply
from bot.tips import PostError

log = logging.getLogger(__name__)
# The Web API clients that hold a workspace's token from the store, and the one that exchanges an
# install's code for it: slack_sdk's debug dump of oauth.v2.access's answer holds the new token.
WEB_LOG = logging.getLogger(__name__ + ".web")
WEB_LOG.addFilter(SecretFilter(()))

COMMAND = "/trend"
PATH = "/slack/events"
SENDING = 4  # replies being sent at once: a crash can repeat at most these (sent, not yet marked answered)
NOT_INSTALLED = ("trendbot is not installed in this workspace any more. Someone who manages the workspace can "
                 "add it again from its install page.")

__all__ = ["SURFACE", "SlackApp", "SlackPlatform", "SlackPoster", "post_once"]


class Answerer(Protocol):
    """What the adapter needs from the core: `TrendBot.handle`."""

    def handle(self, incoming: Incoming) -> Reply: ...


@dataclass(frozen=True)
class Team:
    """The workspace a payload came from, as trendbot answers there: a Web API client with that
    workspace's bot token, and who installed trendbot there (a manager of it). With one
    SLACK_BOT_TOKEN, one Team with id '' stands for the one workspace."""

    id: str
    client: AsyncWebClient
    installer: str = ""


# Errors after which posting to a channel cannot work until someone changes something in Slack.
PERMANENT_ERRORS = frozenset({
    "channel_not_found", "is_archived", "not_in_channel", "account_inactive", "invalid_auth",
    "token_revoked", "missing_scope", "restricted_action", "not_allowed_token_type", "team_access_not_granted",
    "ekm_access_denied", "channel_is_archived",
})


def _api_error(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error"))
    return type(exc).__name__


class SlackPoster:
    """Posts daily tips to Slack channels (the scheduler's Poster): with one client, or with the
    client of the channel's workspace (`clients`, trendbot installed in several)."""

    def __init__(self, client: AsyncWebClient | None,
                 clients: Callable[[str], Awaitable[AsyncWebClient | None]] | None = None):
        self.client = client
        self.clients = clients

    async def post(self, channel_id: str, reply: Reply) -> None:
        """chat.postMessage; a permanent Slack error or any other failure becomes PostError."""
        client = self.client if self.clients is None else await self.clients(channel_id)
        if client is None:
            raise PostError("no installation of trendbot for the channel's workspace (uninstalled, or subscribed "
                            "before trendbot was installed there)", permanent=True)
        try:
            await client.chat_postMessage(channel=channel_id, unfurl_links=False, unfurl_media=False, **render(reply))
        except SlackApiError as exc:
            error = _api_error(exc)
            raise PostError(f"Slack said {error}", permanent=error in PERMANENT_ERRORS) from None
        except (ClientError, asyncio.TimeoutError) as exc:  # 429s were already retried by the client
            raise PostError(f"cannot reach Slack: {type(exc).__name__}", permanent=False) from None


# -- the slack-bolt app -------------------------------------------------------------------------


def retry_handlers() -> list[AsyncRetryHandler]:
    """Connection errors once, 429 after its Retry-After (awaited: other conversations go on)."""
    return [AsyncConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(max_retry_count=3)]


class SlackApp:
    """slack-bolt's AsyncApp wired to a bot and the store: the thin part of this adapter.

    Acknowledging: the app runs with process_before_response=False (bolt's default for a
    long-running process). Bolt answers Slack's HTTP request (or Socket Mode envelope) as soon
    as a listener calls `ack()`, and acknowledges events by itself before the listener starts;
    the listener then carries on in its own asyncio task. So every listener acks first and does
    the answer work after, and the answer itself runs in a worker thread, so a slow answer
    holds up neither the ack nor other conversations. Lazy listeners exist for FaaS hosts,
    which may freeze the process after the response; a server like this one does not need them.
    """

    def __init__(self, bot: Answerer, inbox: Inbox, settings: Settings):
        self.bot = bot
        self.inbox = inbox
        self.settings = settings
        self.counts: Counter[str] = Counter()  # answered / duplicate / ignored / failed, for tests and logs
        # Installed in several workspaces: their installations live in the one store of the
        # process, the inbox's. Bolt's authorize step then finds each request's bot token there.
        self.installs: Installations | None = Installations(inbox.store) if settings.oauth else None
        self.session: aiohttp.ClientSession | None = None  # the Web API's, while the app runs (open_session)
        if self.installs is None:
            self.bolt = AsyncApp(token=settings.bot_token, signing_secret=settings.signing_secret,
                                 process_before_response=False, name="trendbot-slack")
        else:
            flow = oauth_flow(settings, self.installs, inbox.store, self.web_client(None))
            self.bolt = AsyncApp(signing_secret=settings.signing_secret, oauth_flow=flow,
                                 installation_store_bot_only=True, process_before_response=False,
                                 name="trendbot-slack", user_facing_authorize_error_message=NOT_INSTALLED)
        # Point bolt's own client at SLACK_API_URL with our retry handlers. Handing AsyncApp a
        # client of ours instead makes it warn on every start, as it also reads SLACK_BOT_TOKEN
        # from the environment and then ignores it. Bolt's per-request clients copy both.
        self.client: AsyncWebClient = self.bolt.client
        self.client.base_url = settings.api_url
        self.client.retry_handlers = retry_handlers()
        self._single = Team("", self.client)
        self.bolt.middleware(self._record_first)
        self.bolt.command(COMMAND)(self._on_command)
        self.bolt.event("app_mention")(self._on_event)
        self.bolt.event("message")(self._on_event)
        self.bolt.action(re.compile(f"^({ACTION_PREFIX}|{MORE_ACTION}|{VOTE_ACTION}|{HOME_ASK})"))(self._on_action)
        self.bolt.action(TEACH_ACTION)(self._on_teach)
        self.bolt.view(TEACH_VIEW)(self._on_taught)
        self.bolt.event("app_home_opened")(self._on_home)
        if self.installs is not None:
            self.bolt.event("app_uninstalled")(self._on_uninstalled)
            self.bolt.event("tokens_revoked")(self._on_tokens_revoked)
        self._runner: web.AppRunner | None = None
        self._socket = None
        self.inflight = InFlight()
        self.port: int | None = None  # HTTP mode: the port bound once started
        self._warnings = RateLimitedLog(log, every=10.0)
        self._sending = asyncio.Semaphore(SENDING)

    # -- listeners ---------------------------------------------------------------------------
    #
    # `_record_first` runs as bolt middleware, after bolt has checked the signature and before it
    # acknowledges (HTTP 200, or the Socket Mode envelope ack): every question is in the inbox
    # before Slack can consider it delivered. Each listener answers only what the inbox gave it
    # (`context["inbox_key"]`), marks it done once the reply is out, and gives it back when
    # Slack could not be reached; after a crash the replay loop answers what is left.

    async def _record_first(self, body: dict, context: dict, next) -> None:
        key = inbox_key(body)
        if key is not None:
            team = team_of(body) if self.installs is not None else ""
            context["inbox_key"] = key if await self.inbox.record(key, {"body": minimal(body)}, team) else None
        await next()

    async def _on_command(self, ack, body: dict, context: dict) -> None:
        await ack()  # an empty 200 within Slack's 3 s; the answer follows through response_url
        with self.inflight.track():
            await self.answer(context.get("inbox_key"), body)

    async def _on_event(self, body: dict, context: dict) -> None:
        # Events are acknowledged by bolt before this runs (see the class docstring).
        with self.inflight.track():
            if not wants_reply(body):
                self.counts["ignored"] += 1
                return
            await self.answer(context.get("inbox_key"), body)

    async def _on_action(self, ack, body: dict, context: dict) -> None:
        await ack()
        with self.inflight.track():
            await self.answer(context.get("inbox_key"), body)

    async def answer(self, key: str | None, body: dict) -> None:
        """Answer one recorded payload (live or replayed), then settle it in the inbox."""
        if key is None:  # answered already, or another process is on it
            self.counts["duplicate"] += 1
            log.info("%s %s was answered already or is being answered; skipped", body.get("type") or "command",
                     body.get("event_id") or body.get("trigger_id") or "")
            return
        try:
            team = await self.team(body)
            if team is None:
                self.counts["not installed"] += 1
                log.warning("a Slack %s from workspace %s, where trendbot is not installed, was not answered",
                            body.get("type") or "command", team_of(body)[:20] or "(none)")
                await self.inbox.done(key)
                return
            send = await self._reply_to(body, team)
            # Between a post and its mark a crash repeats the reply: few replies are ever in that state.
            async with self._sending:
                outcome = await send()
                if outcome == "retry":
                    await self.inbox.release(key)
                else:
                    await self.inbox.done(key)
        except Exception:
            log.exception("answering a Slack %s failed", body.get("type") or "command")
            await self.inbox.done(key)  # a payload that breaks the answer must not be replayed for ever

    async def replay(self, key: str, payload: dict) -> None:
        """The inbox's replay: answer a question a crash or a failed post left unanswered."""
        with self.inflight.track():
            await self.answer(key, payload.get("body") or {})

    # -- workspaces ----------------------------------------------------------------------------

    def web_client(self, token: str | None) -> AsyncWebClient:
        """A Web API client at SLACK_API_URL with `token` (a workspace's, from the store), on the app's
        HTTP session once it has one."""
        return AsyncWebClient(token=token, base_url=self.settings.api_url, retry_handlers=retry_handlers(),
                              logger=WEB_LOG, session=self.session)

    def open_session(self) -> None:
        """One HTTP session (a pool of kept-alive connections) for every Web API call while the app
        runs. Without one, slack_sdk opens a session per call, and with it a new TCP and TLS
        connection, and closes it after.
        Bolt's per-request clients copy the session from its own client."""
        if self.session is None or self.session.closed:
            # A session's own timeout stands in for the one slack_sdk gives the sessions it opens.
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.client.timeout))
        self.client.session = self.session

    async def close_session(self) -> None:
        """Close the Web API session (the calls after it open sessions of their own again)."""
        session, self.session = self.session, None
        self.client.session = None
        if session is not None:
            await session.close()

    async def team(self, body: dict) -> Team | None:
        """The workspace a payload came from, or None where trendbot is not installed (any more)."""
        if self.installs is None:
            return self._single
        workspace = await self.installs.workspace(team_of(body))
        if workspace is None:
            return None
        return Team(workspace.team_id, self.web_client(workspace.bot_token), workspace.installer)

    async def client_for_channel(self, channel_id: str) -> AsyncWebClient | None:
        """The client for a subscribed channel's workspace (daily tips), or None where trendbot is not installed."""
        if self.installs is None:
            return self.client
        workspace = await self.installs.for_channel(channel_id)
        return self.web_client(workspace.bot_token) if workspace is not None else None

    async def _on_uninstalled(self, body: dict, context: dict) -> None:
        """app_uninstalled: Slack revoked the workspace's tokens; delete everything kept for it."""
        with self.inflight.track():
            team = context.get("team_id") or team_of(body)
            if team:
                await self.installs.forget(team)

    async def _on_tokens_revoked(self, body: dict, event: dict, context: dict) -> None:
        """tokens_revoked: without its bot token trendbot can do nothing in the workspace, so it forgets
        the workspace as if uninstalled (a revoked user token alone changes nothing: none is kept)."""
        with self.inflight.track():
            team = context.get("team_id") or team_of(body)
            if team and ((event.get("tokens") or {}).get("bot")):
                await self.installs.forget(team)

    # -- teaching and the App Home --------------------------------------------------------------

    async def _on_teach(self, ack, body: dict) -> None:
        """A manager's "Teach" under a decline opens the modal, the closest entry preselected."""
        await ack()
        user = (body.get("user") or {}).get("id", "")
        question = ((body.get("actions") or [{}])[0].get("value") or "")[:300]
        team = await self.team(body)
        if team is None or not await self.is_manager(user, team):
            return
        core = self.bot.current if hasattr(self.bot, "current") else self.bot
        groups, closest = await asyncio.to_thread(_teach_choices, core, question)
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
        try:
            await team.client.views_open(trigger_id=body.get("trigger_id", ""),
                                         view=teach_modal(question, groups, closest, json.dumps({"channel": channel})))
        except (SlackApiError, ClientError, asyncio.TimeoutError) as exc:
            log.warning("could not open the Teach modal: %s", _api_error(exc))

    async def _on_taught(self, ack, body: dict, view: dict) -> None:
        """The Teach modal submitted: teach, then tell the manager (privately, where they pressed Teach)."""
        user = (body.get("user") or {}).get("id", "")
        entry_id, question = taught(view)
        team = await self.team(body)
        if team is None or not await self.is_manager(user, team):
            await ack(response_action="errors", errors={"trendbot_teach_entry": "Only managers can teach trendbot."})
            return
        await ack()
        core = self.bot.current if hasattr(self.bot, "current") else self.bot
        reply = await asyncio.to_thread(core.teach_reply, entry_id, question, core.learning.voter("slack", user))
        try:
            channel = json.loads(view.get("private_metadata") or "{}").get("channel") or user
            message = render(reply)
            if channel.startswith("D") or channel == user:
                await team.client.chat_postMessage(channel=user, **message)
            else:
                await team.client.chat_postEphemeral(channel=channel, user=user, **message)
        except (SlackApiError, ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("could not confirm a taught phrasing: %s", _api_error(exc))

    async def _on_home(self, body: dict, event: dict) -> None:
        """The App Home tab: how to ask, example questions, visible tip subscriptions, and the report."""
        user = event.get("user", "")
        if event.get("tab") not in (None, "home") or not user:
            return
        with self.inflight.track():
            team = await self.team(body)
            if team is None:
                return
            try:
                view = await self._home(user, team)
                await team.client.views_publish(user_id=user, view=view)
            except (SlackApiError, ClientError, asyncio.TimeoutError) as exc:
                log.warning("could not publish the App Home of %s: %s", user, _api_error(exc))

    async def _home(self, user: str, team: Team) -> dict:
        core = self.bot.current if hasattr(self.bot, "current") else self.bot
        shown: list[tuple[str, str]] = []
        if core.tips is not None:
            subs = [s for s in await asyncio.to_thread(core.tips.store.subscriptions)
                    if s.platform == "slack" and (team.id == "" or s.team == team.id)]
            if subs:
                mine = await self._channels_of(user, team.client)
                shown = [(s.channel_id, f"{s.time:%H:%M} {s.zone}" + (f", {', '.join(s.topics)}" if s.topics else ""))
                         for s in subs if s.channel_id in mine]
        report = None
        if core.learning is not None and await self.is_manager(user, team):
            week = await asyncio.to_thread(core.report, 7, 3, team.id or None)
            report = [f"{week.questions} questions, {week.answer_rate:.0%} answered"]
            report += [f"not answered ({u.count}×): {u.question}" for u in week.unanswered]
            report += [f"rated not helpful: {f.title} ({f.not_helpful}×)" for f in week.feedback if f.not_helpful]
        return home_view(shown, report)

    async def _channels_of(self, user: str, client: AsyncWebClient) -> set[str]:
        """The channels this person is in (what their App Home may show)."""
        try:
            result = await client.users_conversations(user=user, types="public_channel,private_channel",
                                                      exclude_archived=True, limit=1000)
            return {c.get("id") for c in result.get("channels") or ()}
        except (SlackApiError, ClientError, asyncio.TimeoutError) as exc:
            log.warning("could not list the channels of %s: %s", user, _api_error(exc))
            return set()

    async def _reply_to(self, body: dict, team: Team) -> Callable[[], Awaitable[str]]:
        """Work out the reply (in a worker thread), and return how to send it."""
        incoming = self._with_permission(to_incoming(body), team)
        reply = await asyncio.to_thread(self.bot.handle, incoming)
        if "command" in body:
            return lambda: self._respond(body.get("response_url"), reply)
        if body.get("type") == "block_actions" and (body.get("container") or {}).get("type") == "view":
            # A button in the App Home: no channel to answer in, so the answer goes to a DM.
            user = (body.get("user") or {}).get("id", "")
            return lambda: self._post(replace(incoming, channel_id=user, thread_id=None, is_dm=True), reply, team.client)
        if body.get("type") == "block_actions":
            if (body.get("actions") or [{}])[0].get("action_id") == MORE_ACTION:
                # "More" replaces the short answer in place: no new message, no ping.
                return lambda: self._respond(body.get("response_url"), reply, replace=True)
            return lambda: self._respond(body.get("response_url"), reply, thread_ts=incoming.thread_id)
        return lambda: self._post(incoming, reply, team.client)

    def _with_permission(self, incoming: Incoming, team: Team) -> Incoming:
        """The core asks whether the sender may change the channel's tips, and whether the bot can post
        there, only when a command needs it; the answer runs in a worker thread, so the checks (Web
        API calls) go back to this loop. What the message creates belongs to its workspace."""
        loop = asyncio.get_running_loop()

        def on_loop(check):  # check() makes the coroutine, only when the core asks
            return lambda: asyncio.run_coroutine_threadsafe(check(), loop).result(timeout=15)

        return replace(incoming, team=team.id,
                       can_manage=on_loop(lambda: self.can_manage(incoming.user_id, incoming.channel_id, team)),
                       channel_problem=on_loop(lambda: self.channel_problem(incoming.channel_id, team.client)),
                       is_manager=on_loop(lambda: self.is_manager(incoming.user_id, team)))

    async def channel_problem(self, channel_id: str, client: AsyncWebClient) -> str | None:
        """Why tips could not be posted in this channel, or None: trendbot must be a member. It joins a
        public channel by itself (channels:join); a private one has to invite it."""
        if dm_channel(channel_id, None):
            return None
        try:
            channel = (await client.conversations_info(channel=channel_id)).get("channel") or {}
            if channel.get("is_member", True):
                return None
            if not channel.get("is_private"):
                await client.conversations_join(channel=channel_id)
                return None
        except SlackApiError as exc:
            if exc.response.get("error") not in ("missing_scope", "method_not_supported_for_channel_type"):
                log.warning("could not check whether trendbot is in %s: %s", channel_id, _api_error(exc))
                return None  # unknown: let the subscription stand, and posting will say
        except (ClientError, asyncio.TimeoutError) as exc:
            log.warning("could not check whether trendbot is in %s: %s", channel_id, _api_error(exc))
            return None
        return ("I'm not in this channel, so daily tips could not be posted here. Invite me first with "
                "`/invite @trendbot`, then subscribe again.")

    async def is_manager(self, user_id: str, team: Team) -> bool:
        """May this person read the report and teach trendbot: allow-listed (TRENDBOT_SLACK_MANAGERS),
        the person who installed trendbot in the workspace, or a workspace admin or owner (users.info).
        Any API error means no."""
        if user_id in self.settings.managers or (team.installer and user_id == team.installer):
            return True
        try:
            user = (await team.client.users_info(user=user_id)).get("user") or {}
            return bool(user.get("is_admin") or user.get("is_owner"))
        except (SlackApiError, ClientError, asyncio.TimeoutError) as exc:
            log.warning("could not check whether %s manages trendbot: %s", user_id, _api_error(exc))
            return False

    async def can_manage(self, user_id: str, channel_id: str, team: Team) -> bool:
        """May this person change the channel's daily tips: a manager (above), or the channel's
        creator (conversations.info). Any API error means no."""
        if await self.is_manager(user_id, team):
            return True
        try:
            channel = (await team.client.conversations_info(channel=channel_id)).get("channel") or {}
            return bool(channel.get("creator")) and channel.get("creator") == user_id
        except (SlackApiError, ClientError, asyncio.TimeoutError) as exc:
            log.warning("could not check who may manage %s: %s", channel_id, _api_error(exc))
            return False

    # -- output ----------------------------------------------------------------------------

    async def _post(self, incoming: Incoming, reply: Reply, client: AsyncWebClient) -> str:
        """Post the reply in the channel (or privately); "ok", "retry" (Slack unreachable) or "gone"."""
        message = render(reply)
        args: dict = {"channel": incoming.channel_id, **message}
        if incoming.thread_id:
            args["thread_ts"] = incoming.thread_id
        try:
            if reply.private and not incoming.is_dm:  # help, errors, declines: only the asker sees them
                await client.chat_postEphemeral(user=incoming.user_id, **args)
            else:
                await client.chat_postMessage(unfurl_links=False, unfurl_media=False, **args)
        except SlackApiError as exc:
            self.counts["failed"] += 1
            emit("reply_failed", f"could not post a reply in {incoming.channel_id}: {exc.response.get('error')}",
                 level=logging.WARNING, platform="slack", channel=incoming.channel_id)
            return "gone"  # Slack answered: trying again cannot change its mind
        except (ClientError, asyncio.TimeoutError) as exc:
            self.counts["failed"] += 1
            emit("reply_failed", f"could not reach Slack to post a reply in {incoming.channel_id}: "
                 f"{type(exc).__name__}", level=logging.WARNING, platform="slack", channel=incoming.channel_id)
            return "retry"
        self.counts["answered"] += 1
        return "ok"

    async def _respond(self, response_url: str | None, reply: Reply, thread_ts: str | None = None,
                       replace: bool = False) -> str:
        """Answer through the request's response_url; "ok", "retry" (Slack unreachable) or "gone"."""
        if not response_url:
            log.warning("a Slack request had no response_url; nothing to answer through")
            return "gone"
        message = {**render(reply), "replace_original": replace}
        if not replace:  # a replaced message keeps who could see it
            message["response_type"] = "ephemeral" if reply.private else "in_channel"
        if thread_ts:
            message["thread_ts"] = thread_ts
        try:
            response = await AsyncWebhookClient(response_url, retry_handlers=retry_handlers()).send_dict(message)
        except (ClientError, asyncio.TimeoutError) as exc:
            self.counts["failed"] += 1
            emit("reply_failed", f"could not reach Slack's response_url: {type(exc).__name__}",
                 level=logging.WARNING, platform="slack")
            return "retry"
        if response.status_code != 200:
            self.counts["failed"] += 1
            emit("reply_failed", f"Slack's response_url answered {response.status_code}: {response.body[:200]}",
                 level=logging.WARNING, platform="slack")
            return "retry" if response.status_code >= 500 else "gone"
        self.counts["answered"] += 1
        return "ok"

    # -- running ---------------------------------------------------------------------------

    async def check_token(self) -> str:
        """Call auth.test; the bot's user id, or SettingsError naming the variable at fault."""
        try:
            result = await self.client.auth_test()
        except SlackApiError as exc:
            raise SettingsError(f"SLACK_BOT_TOKEN was rejected by Slack ({exc.response.get('error')})") from None
        except (ClientError, asyncio.TimeoutError, OSError) as exc:
            raise SettingsError(f"cannot reach the Slack Web API at {self.settings.api_url} (SLACK_API_URL): "
                                f"{type(exc).__name__}") from None
        return result.get("user_id", "")

    async def start_http(self, host: str | None = None, port: int | None = None) -> int:
        """Serve POST /slack/events (events, commands, interactivity), and for several workspaces GET
        /slack/install and /slack/oauth_redirect (bolt's OAuth flow); returns the bound port."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(PATH, self._http)
        if self.bolt.oauth_flow is not None:
            app.router.add_get(INSTALL_PATH, self._oauth)
            app.router.add_get(REDIRECT_PATH, self._oauth)
        # A client that never finishes its request must not hold up a shutdown (aiohttp waits 60 s).
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host if host is None else host,
                           self.settings.port if port is None else port)
        await site.start()
        return self._runner.addresses[0][1]

    async def _http(self, request: web.Request) -> web.Response:
        """Check the request before bolt parses it: too big is 413, a bad signature 401, a body that
        is not what Slack sends 400; each with one rate-limited WARNING line and no traceback."""
        if (request.content_length or 0) > MAX_BODY:
            return self._junk(413, "request body too large")
        body = await read_capped(request)
        if body is None:
            return self._junk(413, "request body too large")
        if not signed(body, request.headers, self.settings.signing_secret):
            return self._junk(401, "bad or missing signature")
        if not well_formed(body, request.headers.get("Content-Type", "")):
            return self._junk(400, "malformed body")
        bolt_request = AsyncBoltRequest(body=body.decode("utf-8"), query=request.query_string,
                                        headers=request.headers)  # what bolt's aiohttp adapter builds
        return await to_aiohttp_response(await self.bolt.async_dispatch(bolt_request))

    async def _oauth(self, request: web.Request) -> web.Response:
        """The install page (an "Add to Slack" link carrying a new state, set in a cookie too) and the
        redirect back from Slack (the state checked and used up, the code exchanged with
        oauth.v2.access, the installation stored); bolt's OAuth flow does both, as its own aiohttp
        server would (slack_bolt/app/async_server.py)."""
        flow = self.bolt.oauth_flow
        bolt_request = AsyncBoltRequest(body="", query=request.query_string, headers=request.headers)
        if request.path == INSTALL_PATH:
            response = await flow.handle_installation(bolt_request)
        else:
            response = await flow.handle_callback(bolt_request)
        return await to_aiohttp_response(response)

    def _junk(self, status: int, why: str) -> web.Response:
        self.counts["refused"] += 1
        self._warnings.warn(f"refused {self.counts['refused']} request(s) to {PATH} so far; the last: {why} "
                            f"(HTTP {status})")
        return web.Response(status=status, text=why)

    def socket_handler(self):
        """bolt's asyncio Socket Mode handler for this app (not yet connected)."""
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        return AsyncSocketModeHandler(self.bolt, self.settings.app_token, web_client=self.client)

    async def start_socket_mode(self) -> None:
        """Open the Socket Mode WebSocket (apps.connections.open with the app-level token)."""
        # Ask for the WebSocket URL ourselves first: slack_sdk's client retries a failed connect
        # forever, so a revoked app token would otherwise never surface as an error.
        try:
            opened = await self.client.apps_connections_open(app_token=self.settings.app_token)
        except SlackApiError as exc:
            raise SettingsError(f"SLACK_APP_TOKEN was rejected by Slack ({exc.response.get('error')})") from None
        socket = self.socket_handler()
        socket.client.wss_uri = opened["url"]
        self._socket = socket
        await socket.connect_async()

    async def connected(self) -> bool:
        """Whether the app can receive: its Socket Mode connection is up, or its HTTP server listens."""
        if self._socket is not None:
            return await self._socket.client.is_connected()
        return self._runner is not None

    async def stop(self, drain: float = 0.0) -> None:
        """Close the HTTP server or the connection, then let replies in progress finish (up to `drain` s).

        Everything received was acknowledged at once, so what is left to finish is the answers
        themselves, which go out through the Web API or response_url, not the closed receiver.
        """
        self.inflight.closing = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if drain:
            await asyncio.sleep(0.05)  # listeners bolt has scheduled but not yet started get to count themselves
        if not await self.inflight.drain(drain):
            log.warning("stopped with %d Slack replies unfinished", self.inflight.count)
        await self.close_session()

    async def start(self, announce: Callable[[str], None] = lambda _: None) -> None:
        """Check the token and start in Socket Mode or HTTP mode; SettingsError says what to fix.
        Installed in several workspaces there is no one token to check: each comes with its install."""
        self.open_session()
        user_id = await self.check_token() if self.installs is None else ""
        if self.settings.socket_mode:
            await self.start_socket_mode()
            announce(f"connected to Slack in Socket Mode as {user_id}")
        else:
            try:
                port = await self.start_http()
            except OSError as exc:
                raise SettingsError(f"cannot listen on {self.settings.host}:{self.settings.port} (--host/--port): "
                                    f"{exc.strerror or exc}") from None
            self.port = port
            if self.installs is None:
                announce(f"listening for Slack on http://{self.settings.host}:{port}{PATH} (HTTP mode) as {user_id}")
            else:
                announce(f"listening for Slack on http://{self.settings.host}:{port}{PATH} (HTTP mode, several "
                         f"workspaces: each installs trendbot at {INSTALL_PATH})")


def _teach_choices(core, question: str) -> tuple[list[tuple[str, list[tuple[str, str]]]], str | None]:
    """The Teach modal's entries grouped by topic, and the entry closest to the question."""
    kb = core.kb
    groups = []
    for trend in kb.trends.values():
        entries = [(trend.id, trend.title)] + [(q.id, q.question) for q in kb.faqs.values() if q.trend == trend.id]
        groups.append((trend.title, entries))
    best = core.index.search(question).best
    return groups, best.entry_id if best else None


# -- the platform ---------------------------------------------------------------------------------


class SlackPlatform:
    """Slack as the runner supervises it; Socket Mode reconnects by itself (slack_sdk)."""

    name = "slack"

    def __init__(self, bot: Answerer, inbox: Inbox, settings: Settings,
                 announce: Callable[[str], None] = lambda _: None):
        self.bot, self.inbox, self.settings, self.announce = bot, inbox, settings, announce
        self.app: SlackApp | None = None
        self._replaying: tuple[asyncio.Event, asyncio.Task] | None = None

    async def start(self) -> None:
        """Check the token and start receiving (Socket Mode or HTTP), then answer what a crash left
        unanswered; SettingsError says what to fix."""
        self.app = SlackApp(self.bot, self.inbox, self.settings)
        await self.app.start(self.announce)
        stop = asyncio.Event()
        self._replaying = stop, asyncio.create_task(self.inbox.replay(self.app.replay, stop), name="slack-replay")

    async def wait(self) -> None:
        """Run until stopped: slack_sdk reconnects a dropped socket itself, and HTTP mode has none."""
        await asyncio.Event().wait()

    async def stop(self, drain: float) -> None:
        """Stop receiving and replaying, let answers in progress finish (up to `drain` s)."""
        app, self.app = self.app, None
        if self._replaying is not None:
            stop, task = self._replaying
            self._replaying = None
            stop.set()
            await asyncio.wait({task}, timeout=drain or 0.1)
        if app is not None:
            await app.stop(drain)

    async def connected(self) -> bool:
        """Whether events can arrive: the socket is up, or the HTTP server listens."""
        return self.app is not None and await self.app.connected()

    def poster(self) -> SlackPoster | None:
        """The tip poster over the app's Web API client (each channel's workspace's, with several)."""
        if self.app is None:
            return None
        if self.app.installs is None:
            return SlackPoster(self.app.client)
        return SlackPoster(None, self.app.client_for_channel)


@contextlib.asynccontextmanager
async def post_once(config: Config) -> AsyncIterator[SlackPoster]:
    """A tip poster over the Web API alone, without receiving anything (`trendbot tips run-once`):
    it needs SLACK_BOT_TOKEN and SLACK_API_URL only."""
    if config.has("SLACK_CLIENT_ID"):
        raise SettingsError("SLACK_CLIENT_ID is set: `trendbot tips run-once` posts with one SLACK_BOT_TOKEN; with "
                            "trendbot in several workspaces, `trendbot serve` posts each one's tips with its own token")
    yield SlackPoster(AsyncWebClient(token=read_bot_token(config.environ), base_url=read_api_url(config["SLACK_API_URL"]),
                                     retry_handlers=retry_handlers()))


SURFACE = Surface("slack", SETTINGS, ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", *OAUTH),
                  "SLACK_BOT_TOKEN (and SLACK_APP_TOKEN for Socket Mode or SLACK_SIGNING_SECRET for HTTP mode; or "
                  "SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, SLACK_STATE_SECRET and SLACK_SIGNING_SECRET for several "
                  "workspaces)", Settings.from_config, SlackPlatform, post_once)
