"""Discord: a thin discord.py client wiring Discord's events to the core, its Platform and its tip poster.

The pure parts hold what is worth testing: adapters/discord_payloads.py (messages and
interactions to Incoming), adapters/discord_settings.py, adapters/discord_embeds.py (`render`
and `choices`) and adapters/discord_commands.py (the slash commands). `DiscordClient` only
connects them to discord.py: `/trend`, `/ask` and `/tip`, mentions, DMs and suggestion buttons.
Only the registry names this module, lazily, so the console path never loads discord.py.

No privileged intent is needed: Discord gives an app without Message Content the content of
the messages that mention it and of DMs to it, which are the only messages trendbot answers.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import aiohttp
import discord
from discord import app_commands

from adapters.discord_commands import slash_commands, zone_choices
from adapters.discord_embeds import BUTTON_PREFIX, MORE_PREFIX, Message, choices, render
from adapters.discord_payloads import restored, stored, to_incoming, wants_reply
from adapters.discord_settings import LOGIN_REJECTED, PORTAL, SETTINGS, Settings, invite_url
from adapters.discord_shards import Shards
from adapters.inbox import Inbox
from adapters.leader import Leader, LeaseLost
from adapters.lifecycle import InFlight
from adapters.platform import Surface
from adapters.secrets import SettingsError
from bot.config import Config
from bot.core import Incoming
from bot.events import emit
from bot.tips import PostError
from bot.replies import Reply

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()  # no reply pings anyone, the asker included
# Discord drops an interaction not answered within 3 s; an answer not ready after this long is
# deferred ("trendbot is thinking…"), leaving time for the defer call itself to arrive.
DEFER_AFTER = 1.5
RATE_LIMIT_WAIT = 30.0  # seconds discord.py may wait out a 429 itself before it raises RateLimited

__all__ = ["SURFACE", "DiscordClient", "DiscordPlatform", "DiscordPoster", "NO_MENTIONS", "MoreButton",
           "SuggestionButton", "rest_poster"]


class Answerer(Protocol):
    """What the adapter needs from the core: `TrendBot.handle`, and for autocomplete its topics."""

    kb: Any

    def handle(self, incoming: Incoming) -> Reply: ...

    def find_topic(self, name: str) -> Any: ...


# -- the discord.py client ----------------------------------------------------------------------


class SuggestionButton(discord.ui.DynamicItem[discord.ui.Button], template=re.escape(BUTTON_PREFIX) + r"(?P<query>.+)"):
    """A suggestion button; its custom_id carries the query, so it works after a restart too."""

    def __init__(self, label: str, custom_id: str):
        super().__init__(discord.ui.Button(label=label, custom_id=custom_id, style=discord.ButtonStyle.secondary))

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> SuggestionButton:
        """Rebuild the button from a press (discord.py's dynamic items)."""
        return cls(item.label or match["query"], item.custom_id or "")

    async def callback(self, interaction: discord.Interaction) -> None:
        """A press asks the button's topic."""
        client = interaction.client
        if isinstance(client, DiscordClient):
            await client.answer_interaction(interaction)


class MoreButton(discord.ui.DynamicItem[discord.ui.Button], template=re.escape(MORE_PREFIX) + r"(?P<entry>[a-z0-9-]+)"):
    """A short answer's "More": shows the whole entry in place of the short answer (also after a restart)."""

    def __init__(self, label: str, custom_id: str):
        super().__init__(discord.ui.Button(label=label, custom_id=custom_id, style=discord.ButtonStyle.secondary))

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> MoreButton:
        """Rebuild the button from a press (discord.py's dynamic items)."""
        return cls(item.label or "More", item.custom_id or "")

    async def callback(self, interaction: discord.Interaction) -> None:
        """A press replaces the message it is on with the whole entry."""
        client = interaction.client
        if isinstance(client, DiscordClient):
            await client.expand(interaction)


def view_of(message: Message) -> discord.ui.View | None:
    """The buttons of a rendered message as a discord.py View (None without buttons)."""
    if not message.buttons:
        return None
    view = discord.ui.View(timeout=None)
    for b in message.buttons:
        kind = MoreButton if b.custom_id.startswith(MORE_PREFIX) else SuggestionButton
        view.add_item(kind(b.label, b.custom_id))
    return view


def send_args(message: Message) -> dict[str, Any]:
    """A rendered message as keyword arguments for any discord.py send or edit; mentions always off."""
    args: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
    if message.content:
        args["content"] = message.content
    if message.embeds:
        args["embeds"] = [discord.Embed.from_dict(e) for e in message.embeds]
    view = view_of(message)
    if view is not None:
        args["view"] = view
    return args


class DiscordClient(discord.Client):
    """discord.py's Client wired to the core: the thin part of this adapter.

    Slash commands are registered once per start, in setup_hook (discord.py calls it once, at
    login), never in on_ready, which fires again after every full reconnect.
    """

    def __init__(self, core: Answerer, settings: Settings, *, announce: Callable[[str], None] = lambda _: None,
                 defer_after: float = DEFER_AFTER, inbox: Inbox | None = None):
        # trendbot never joins voice: without this, discord.py warns on every start that voice
        # libraries are missing.
        discord.VoiceClient.warn_nacl = False
        if hasattr(discord.VoiceClient, "warn_dave"):
            discord.VoiceClient.warn_dave = False
        intents = discord.Intents.none()
        intents.guilds = True  # channels and permissions, to know whether we may embed
        intents.guild_messages = True  # mentions (their content arrives without Message Content)
        intents.dm_messages = True
        # max_ratelimit_timeout: discord.py waits out a 429 by itself up to this long; a longer one
        # raises RateLimited, which the tip poster turns into "try later" rather than block the loop.
        super().__init__(intents=intents, allowed_mentions=NO_MENTIONS, max_ratelimit_timeout=RATE_LIMIT_WAIT,
                         **self._options(settings))
        self.core = core
        self.settings = settings
        self.announce = announce
        self.defer_after = defer_after
        self.inbox = inbox
        self.tree = app_commands.CommandTree(self)
        self.tree.on_error = self._on_command_error
        for command in slash_commands(self):
            self.tree.add_command(command)
        self.synced = 0  # times the commands were synced (once per start)
        self.readies = 0
        self.inflight = InFlight()
        self._session_up = False  # READY or RESUMED seen since the last disconnect

    @staticmethod
    def _options(settings: Settings) -> dict[str, Any]:
        """discord.py's client options that depend on the settings (the sharded client's shards)."""
        return {}

    # -- start-up ------------------------------------------------------------------------------

    async def setup_hook(self) -> None:
        """Once, after login: make old suggestion buttons work, check the application, sync commands.

        With shards, only the replica that runs shard 0 syncs: the commands are the application's,
        one set for every shard.
        """
        self.add_dynamic_items(SuggestionButton, MoreButton)
        app = self.application
        if app is not None and app.interactions_endpoint_url:
            raise SettingsError(f"the application has an Interactions Endpoint URL, so Discord sends slash commands "
                                f"there instead of to trendbot: clear it in {PORTAL} → your application → General "
                                "Information → Interactions Endpoint URL")
        if self.settings.shards is None or self.settings.shards.runs(0):
            await self.sync_commands()

    async def sync_commands(self) -> None:
        """Register /trend, /ask and /tip with Discord, once: globally, or in --guild only."""
        if self.synced:
            return
        self.synced += 1
        guild = discord.Object(id=self.settings.guild_id) if self.settings.guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        try:
            commands = await self.tree.sync(guild=guild)
        except discord.Forbidden:
            if guild is not None:
                raise SettingsError(f"cannot register the commands in server {guild.id} (--guild): trendbot is not "
                                    "in that server, or was invited without the applications.commands scope; invite "
                                    "it with the link in the README") from None
            raise SettingsError("Discord refused to register the slash commands: re-invite trendbot with the "
                                "applications.commands scope (see the README)") from None
        except discord.HTTPException as exc:
            raise SettingsError(f"could not register the slash commands with Discord ({exc.status}: {exc.text})") from None
        log.info("synced %d slash commands %s", len(commands), f"to server {guild.id}" if guild else "globally")

    async def on_ready(self) -> None:
        """Announce the first connection; later ones are reconnects and change nothing."""
        self._session_up = True
        self.readies += 1
        if self.readies > 1:
            log.info("reconnected to Discord (ready #%d); commands were synced at start", self.readies)
            return
        user = self.user
        servers = len(self.guilds)
        self.announce(f"connected to Discord as {user} ({user.id if user else '?'}) in {servers} "
                      f"server{'' if servers == 1 else 's'}{self._which_shards()}")
        if self.application_id:
            self.announce(f"invite it to a server: {invite_url(self.application_id)}")

    async def serve(self) -> None:
        """Log in, sync commands, connect and run until closed; bad settings raise SettingsError."""
        try:
            async with self:
                await self.start(self.settings.token)
        except discord.LoginFailure:
            raise SettingsError(LOGIN_REJECTED) from None
        except discord.PrivilegedIntentsRequired:
            raise SettingsError(f"Discord refused a privileged intent the application has not enabled: turn it on in "
                                f"{PORTAL} → your application → Bot → Privileged Gateway Intents") from None
        except discord.ConnectionClosed as exc:
            if exc.code == 4004:
                raise SettingsError(f"DISCORD_TOKEN was rejected by Discord's gateway: reset the token in {PORTAL} "
                                    "→ your application → Bot → Reset Token") from None
            raise SettingsError(f"Discord closed the connection (code {exc.code})") from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, discord.GatewayNotFound) as exc:
            raise SettingsError(f"cannot reach Discord: {type(exc).__name__}") from None

    def _which_shards(self) -> str:
        return ""

    def connected(self) -> bool:
        """Whether the gateway session is up: not while it reconnects (discord.py keeps is_ready() then), nor after close."""
        return self._session_up and not self.is_closed()

    async def on_disconnect(self) -> None:
        """The gateway connection dropped; discord.py reconnects by itself."""
        self._session_up = False

    async def on_resumed(self) -> None:
        """A dropped session was resumed."""
        self._session_up = True

    async def shutdown(self, drain: float = 5.0) -> None:
        """Answer nothing new, let replies in progress finish (up to `drain` s), then close.

        The connection closes last because discord.py's HTTP session closes with it, and the
        replies in progress still need it.
        """
        if not await self.inflight.drain(drain):
            log.warning("stopped with %d Discord replies unfinished", self.inflight.count)
        await self.close()

    # -- answering -----------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """Answer a mention or a DM with a reply referencing the question."""
        me = self.user
        if me is None or not self.inflight.accepting or not wants_reply(message, me.id):
            return
        with self.inflight.track():
            await self._answer_message(message, me.id)

    async def _answer_message(self, message: discord.Message, me_id: int) -> None:
        incoming = to_incoming(message, bot_id=me_id)
        key = f"discord:msg:{message.id}"
        payload = {"kind": "message", "channel": message.channel.id, "message": message.id,
                   "embeds": _may_embed(message), "incoming": stored(incoming)}
        if self.inbox is not None and not await self.inbox.record(key, payload):
            return
        await self._settle(key, await self._reply_to_message(incoming, message.channel, message.id,
                                                             payload["embeds"]))

    async def _reply_to_message(self, incoming: Incoming, channel: Any, message_id: int, embeds: bool) -> str:
        """Answer a mention or DM with a reply referencing it: "ok", "retry" or "gone"."""
        reply = await asyncio.to_thread(self.core.handle, incoming)
        reference = discord.MessageReference(message_id=message_id, channel_id=channel.id, fail_if_not_exists=False)
        for part in render(reply, embeds=embeds):
            try:
                await channel.send(reference=reference, **send_args(part))
            except discord.Forbidden:
                emit("reply_failed", f"no permission to answer in channel {incoming.channel_id}: give trendbot View "
                     "Channel, Send Messages and Read Message History there", level=logging.WARNING,
                     platform="discord", channel=incoming.channel_id)
                return "gone"
            except discord.HTTPException as exc:
                emit("reply_failed", f"could not answer in channel {incoming.channel_id}: {exc.status} {exc.text}",
                     level=logging.WARNING, platform="discord", channel=incoming.channel_id)
                return "retry" if exc.status >= 500 else "gone"
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                emit("reply_failed", f"could not reach Discord to answer in channel {incoming.channel_id}: "
                     f"{type(exc).__name__}", level=logging.WARNING, platform="discord", channel=incoming.channel_id)
                return "retry"
        return "ok"

    async def _settle(self, key: str, outcome: str) -> None:
        """Mark the question answered (or given up), or give it back for a later try."""
        if self.inbox is None:
            return
        if outcome == "retry":
            await self.inbox.release(key)
        else:
            await self.inbox.done(key)

    async def replay(self, key: str, payload: dict) -> None:
        """The inbox's replay: answer what a crash or a failed send left unanswered, over REST."""
        with self.inflight.track():
            incoming = restored(payload.get("incoming") or {})
            if payload.get("kind") == "message":
                channel = self.get_partial_messageable(int(payload["channel"]))
                outcome = await self._reply_to_message(incoming, channel, int(payload["message"]),
                                                       bool(payload.get("embeds", True)))
            else:  # an interaction: a follow-up through its webhook, while its token lasts (15 minutes)
                outcome = await self._follow_up(incoming, payload)
            await self._settle(key, outcome)

    async def _follow_up(self, incoming: Incoming, payload: dict) -> str:
        reply = await asyncio.to_thread(self.core.handle, incoming)
        webhook = discord.Webhook.partial(int(payload["application"]), payload["token"], client=self)
        try:
            for part in render(reply):
                await webhook.send(ephemeral=reply.private, **send_args(part))
        except discord.HTTPException as exc:  # the token expired, or the interaction was never acknowledged
            log.info("could not answer a Discord interaction after a restart: %s", exc.status)
            return "retry" if exc.status >= 500 else "gone"
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return "retry"
        return "ok"

    async def answer_interaction(self, interaction: discord.Interaction) -> None:
        """Answer a slash command or a suggestion button, deferring when the answer is slow."""
        if not self.inflight.accepting:
            return
        with self.inflight.track():
            await self._answer_interaction(interaction)

    async def _answer_interaction(self, interaction: discord.Interaction) -> None:
        try:
            incoming = to_incoming(interaction)
        except ValueError as exc:
            log.warning("ignored an interaction: %s", exc)
            return
        key = f"discord:int:{interaction.id}"
        payload = {"kind": "interaction", "application": interaction.application_id, "token": interaction.token,
                   "incoming": stored(incoming)}
        if self.inbox is not None and not await self.inbox.record(key, payload):
            return
        work = asyncio.ensure_future(asyncio.to_thread(self.core.handle, incoming))
        done, _ = await asyncio.wait({work}, timeout=self.defer_after)
        deferred = False
        if not done:
            try:
                await interaction.response.defer(thinking=True)
                deferred = True
            except discord.HTTPException as exc:
                log.warning("could not defer a slow answer: %s %s", exc.status, exc.text)
        reply = await work
        outcome = "ok"
        try:
            await self._respond(interaction, reply, deferred)
        except discord.HTTPException as exc:  # e.g. 10062 Unknown interaction: answered too late
            emit("reply_failed", f"could not answer an interaction in {incoming.channel_id}: {exc.status} {exc.text}",
                 level=logging.WARNING, platform="discord", channel=incoming.channel_id)
            outcome = "retry" if exc.status >= 500 and deferred else "gone"
        await self._settle(key, outcome)

    async def _on_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """A command that raised gets a private apology instead of "The application did not respond"."""
        log.error("a Discord command failed: %s", type(getattr(error, "original", error)).__name__,
                  exc_info=getattr(error, "original", error))
        text = "Something went wrong on my side while answering that. Please try again."
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():
                await interaction.followup.send(content=text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            else:
                await interaction.response.send_message(content=text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def expand(self, interaction: discord.Interaction) -> None:
        """"More": edit the short answer into the whole entry, in place; nobody is pinged or notified."""
        if not self.inflight.accepting:
            return
        with self.inflight.track():
            try:
                incoming = to_incoming(interaction)
            except ValueError as exc:
                log.warning("ignored an interaction: %s", exc)
                return
            reply = await asyncio.to_thread(self.core.handle, incoming)
            parts = render(reply)
            try:
                # view=None takes the "More" button off; discord.py keeps the old view otherwise.
                await interaction.response.edit_message(**{"view": None, **send_args(parts[0])})
                for part in parts[1:]:
                    await interaction.followup.send(ephemeral=reply.private, **send_args(part))
            except discord.HTTPException as exc:
                emit("reply_failed", f"could not show more in {incoming.channel_id}: {exc.status} {exc.text}",
                     level=logging.WARNING, platform="discord", channel=incoming.channel_id)

    async def entry_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """The /teach entry autocomplete: topics and FAQs whose id or title holds what was typed."""
        kb = self.core.kb
        typed = current.strip().lower()
        entries = [(t.id, t.title) for t in kb.trends.values()] + [(q.id, q.question) for q in kb.faqs.values()]
        found = [(i, label) for i, label in entries if not typed or typed in i or typed in label.lower()]
        return [app_commands.Choice(name=f"{label} ({i})"[:100], value=i[:100]) for i, label in found[:25]]

    async def topic_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """The /trend topic autocomplete: topics matching what was typed so far (fuzzy)."""
        return [app_commands.Choice(name=name, value=value) for name, value in choices(self.core, current)]

    async def zone_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """The /subscribe zone autocomplete: IANA zone names containing what was typed."""
        return [app_commands.Choice(name=z, value=z) for z in zone_choices(current)]

    async def topics_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """The /subscribe topics autocomplete: the words typed so far, the last one completed to a topic id."""
        done, _, last = current.rpartition(" ")
        head = " ".join(done.split())
        out = []
        for name, value in choices(self.core, last):
            full = f"{head} {value}".strip()
            if len(full) <= 100:
                out.append(app_commands.Choice(name=f"{head} {name}".strip()[:100], value=full))
        return out

    async def _respond(self, interaction: discord.Interaction, reply: Reply, deferred: bool) -> None:
        parts = render(reply)
        private = reply.private  # help, errors, declines: only the asker sees them
        first = send_args(parts[0])
        if not deferred:
            await interaction.response.send_message(ephemeral=private, **first)
        elif not private:
            await interaction.edit_original_response(**first)
        else:
            # The deferred "thinking…" message is public and cannot become ephemeral, and the first
            # follow-up after a defer only edits it; so resolve it, answer privately, then delete it.
            # https://github.com/discord/discord-api-docs/pull/3466
            await interaction.edit_original_response(content="…", allowed_mentions=NO_MENTIONS)
            await interaction.followup.send(ephemeral=True, **first)
            await interaction.delete_original_response()
        for part in parts[1:]:
            await interaction.followup.send(ephemeral=private, **send_args(part))


class ShardedDiscordClient(DiscordClient, discord.AutoShardedClient):
    """The same client over the shards TRENDBOT_DISCORD_SHARDS names: discord.py's AutoShardedClient,
    one gateway session per shard, in this one process."""

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self._shards_up: set[int] = set()  # shards whose session is up (READY or RESUMED since their last drop)

    @staticmethod
    def _options(settings: Settings) -> dict[str, Any]:
        return settings.shards.options() if settings.shards is not None else {}

    def _which_shards(self) -> str:
        ids = sorted(self._connection.shard_ids)
        return f" (shards {Shards(tuple(ids), self.shard_count)})" if ids else ""

    def connected(self) -> bool:
        """Whether every shard this replica runs has its session up."""
        ids = set(self._connection.shard_ids)
        return bool(ids) and ids <= self._shards_up and not self.is_closed()

    async def on_shard_ready(self, shard_id: int) -> None:
        """One shard's session is up (discord.py's on_ready fires once, when all are)."""
        self._shards_up.add(shard_id)

    async def on_shard_resumed(self, shard_id: int) -> None:
        """One shard's dropped session was resumed."""
        self._shards_up.add(shard_id)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        """One shard's connection dropped; discord.py reconnects it by itself."""
        self._shards_up.discard(shard_id)


def build_client(core: Answerer, settings: Settings, **kw: Any) -> DiscordClient:
    """The client the settings ask for: sharded when TRENDBOT_DISCORD_SHARDS is set."""
    return (ShardedDiscordClient if settings.shards is not None else DiscordClient)(core, settings, **kw)


def _may_embed(message: Any) -> bool:
    """Whether the bot may post embeds where the message was written (always in DMs)."""
    guild = message.guild
    if guild is None or guild.me is None:
        return True
    return bool(message.channel.permissions_for(guild.me).embed_links)


class DiscordPoster:
    """Posts daily tips to Discord channels (the scheduler's Poster)."""

    def __init__(self, client: discord.Client):
        self.client = client

    async def post(self, channel_id: str, reply: Reply) -> None:
        """Send the tip; a channel that is gone or closed to the bot is a permanent PostError."""
        # A channel the gateway has not cached (or, for `tips run-once`, no gateway at all) is
        # posted to by id alone: one REST call, and Discord's 404 or 403 says whether it still exists.
        channel = self.client.get_channel(int(channel_id)) or self.client.get_partial_messageable(int(channel_id))
        try:
            for part in render(reply, embeds=_may_embed_in(channel, self.client)):
                await channel.send(**send_args(part))
        except (discord.NotFound, discord.Forbidden) as exc:
            raise PostError(f"Discord said {exc.status} {exc.text or type(exc).__name__}", permanent=True) from None
        except discord.RateLimited as exc:  # discord.py retries 429s itself; this one asked for too long a wait
            raise PostError(f"rate limited by Discord for {exc.retry_after:.0f} s", permanent=False) from None
        except (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise PostError(f"cannot post to Discord: {type(exc).__name__}", permanent=False) from None


def _may_embed_in(channel: Any, client: discord.Client) -> bool:
    """Whether the bot may send embeds in a channel (DMs: always)."""
    guild = getattr(channel, "guild", None)
    if guild is None or guild.me is None:
        return True
    return channel.permissions_for(guild.me).embed_links


@contextlib.asynccontextmanager
async def _logged_in(settings: Settings) -> AsyncIterator[discord.Client]:
    """A discord.py client logged in over REST alone, without the gateway; SettingsError says what to fix."""
    intents = discord.Intents.none()
    intents.guilds = True  # never used without the gateway; without it discord.py warns on every start
    client = discord.Client(intents=intents, allowed_mentions=NO_MENTIONS)
    try:
        try:
            await client.login(settings.token)
        except discord.LoginFailure:
            raise SettingsError(LOGIN_REJECTED) from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise SettingsError(f"cannot reach Discord: {type(exc).__name__}") from None
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def rest_poster(config: Config) -> AsyncIterator[DiscordPoster]:
    """A DiscordPoster over Discord's REST API alone, without the gateway (`trendbot tips run-once`)."""
    async with _logged_in(Settings.from_config(config)) as client:
        yield DiscordPoster(client)


# -- the platform ---------------------------------------------------------------------------------

LEASE = "discord"  # the store's lease on the one gateway connection of a bot without shards


class DiscordPlatform:
    """Discord as the runner supervises it; discord.py resumes and reconnects the gateway itself.

    Without shards (or with `auto`, every shard in this process) the whole bot is this one
    connection, so of several replicas on one store only the one holding the "discord" lease
    connects (adapters/leader.py): `start` stands by until this replica holds it, and the
    connection is closed the moment the lease is lost, which ends `wait` with LeaseLost (the
    runner then stands by again). With shard ids in TRENDBOT_DISCORD_SHARDS each replica runs its
    own shards and takes no lease.
    """

    name = "discord"

    def __init__(self, bot: Answerer, inbox: Inbox, settings: Settings, announce: Callable[[str], None] = lambda _: None,
                 *, leader: Leader | None = None):
        self.bot, self.inbox, self.settings, self.announce = bot, inbox, settings, announce
        self.client: DiscordClient | None = None
        self.task: asyncio.Task | None = None
        self._replaying: tuple[asyncio.Event, asyncio.Task] | None = None
        if leader is None and (settings.shards is None or settings.shards.auto):
            # The lease lives in the store the inbox keeps its questions in: the one all replicas share.
            leader = Leader(inbox.store, LEASE, ttl=settings.lease)
        self.leader = leader
        self._keeping: asyncio.Task | None = None
        self._standby = False
        self._token_checked = False

    async def start(self) -> None:
        """Log in and connect, then answer what a crash left unanswered; returns once the gateway
        session is up (SettingsError says what to fix). Without shards, first wait for the lease."""
        if self.leader is not None:
            await self._lead()
        self.client = build_client(self.bot, self.settings, announce=self.announce, inbox=self.inbox)
        self.task = asyncio.create_task(self.client.serve())
        while not self.client.connected():
            done, _ = await asyncio.wait({self.task}, timeout=0.05)
            if done:
                self.task.result()  # raises why it ended
                raise ConnectionError("the Discord connection ended before it was ready")
        if self.leader is not None:
            self._keeping = asyncio.create_task(self._keep(), name="discord-lease")
        stop = asyncio.Event()
        self._replaying = stop, asyncio.create_task(self.inbox.replay(self.client.replay, stop), name="discord-replay")

    async def _lead(self) -> None:
        """Return once this replica holds the lease; while another holds it, stand by.

        A standby logs in over REST once first, so that a token Discord rejects is found at start
        rather than at a takeover hours later.
        """
        assert self.leader is not None
        holder = await self.leader.current()
        if holder not in (None, self.leader.holder) and not self._token_checked:
            async with _logged_in(self.settings):
                self._token_checked = True

        def standing_by(holder: str) -> None:
            self._standby = True
            self.announce(f"standing by: replica {holder} is connected to Discord; this one ({self.leader.holder}) "
                          f"takes over within {self.leader.ttl + self.leader.poll:g} s of it stopping")

        try:
            await self.leader.wait(standing_by)
        finally:
            was, self._standby = self._standby, False
        if was:
            self.announce(f"took over the Discord connection ({self.leader.holder})")

    async def _keep(self) -> None:
        """Renew the lease while connected; when it is lost, close the connection at once."""
        assert self.leader is not None
        try:
            await self.leader.keep()
        except LeaseLost as exc:
            emit("discord_lease_lost", f"disconnecting from Discord: {exc}", level=logging.WARNING,
                 platform="discord")
            if self.client is not None:
                await self.client.close()
            raise

    def standing_by(self) -> bool:
        """Whether another replica holds the Discord connection and this one waits to take over."""
        return self._standby

    async def wait(self) -> None:
        """Until the client ends for good, or (LeaseLost) another replica took the connection over."""
        if self.task is None:
            return
        tasks = {self.task} | ({self._keeping} if self._keeping is not None else set())
        # asyncio.wait, not gather: a cancelled wait must not cut the client off mid-reply.
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if self._keeping in done:
            self._keeping.result()  # raises LeaseLost
        await asyncio.shield(self.task)

    async def stop(self, drain: float) -> None:
        """Answer nothing new, let replies in progress finish (up to `drain` s), then close and give
        the lease up, so that a standby takes over at once."""
        if self._replaying is not None:
            stop, replaying = self._replaying
            self._replaying = None
            stop.set()
            await asyncio.wait({replaying}, timeout=drain or 0.1)
        client, task, self.client, self.task = self.client, self.task, None, None
        if client is not None:
            await client.shutdown(drain)
        if task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 2.0)
        keeping, self._keeping = self._keeping, None  # renewed until closed: never two replicas connected
        if keeping is not None:
            keeping.cancel()
            await asyncio.wait({keeping})
            if not keeping.cancelled():
                keeping.exception()  # a LeaseLost, reported by `wait` already
        if self.leader is not None:
            await self.leader.release()

    async def connected(self) -> bool:
        """Whether the gateway session is up (every shard's, with shards)."""
        return self.client is not None and self.client.connected()

    def poster(self) -> DiscordPoster | None:
        """The tip poster over the live client; none on a standby, so the replica that is connected posts."""
        return DiscordPoster(self.client) if self.client is not None else None


SURFACE = Surface("discord", SETTINGS, ("DISCORD_TOKEN",), "DISCORD_TOKEN", Settings.from_config, DiscordPlatform,
                  rest_poster)
