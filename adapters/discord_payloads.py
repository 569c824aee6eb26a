"""Discord's messages and interactions as the core's Incoming, and what the inbox keeps of them.

Pure functions over what discord.py hands the client (a Message, or an Interaction and its
data): they read it and send nothing.
"""
from __future__ import annotations

import re
from typing import Any

import discord

from adapters.discord_embeds import BUTTON_PREFIX, MORE_PREFIX, Button
from bot.core import Incoming

_TOKEN = re.compile(r"<(@[!&]?|#)(\d+)>|<a?:(\w+):\d+>")


def to_incoming(source: Any, *, bot_id: int | None = None) -> Incoming:
    """A slash command or button press (an Interaction) or a mention or DM (a Message) as an Incoming.

    `/trend topic` and a suggestion button ask the core's /trend command; `/ask question` asks
    a free question, exactly as the console does; `/tip` asks for a tip. Raises ValueError for
    an interaction trendbot does not handle.
    """
    if hasattr(source, "author"):  # a Message
        is_dm = source.guild is None
        channel, thread = _place(source.channel, source.channel.id)
        return Incoming(plain_text(source, bot_id), platform="discord", channel_id=channel,
                        user_id=str(source.author.id), thread_id=thread, is_mention=not is_dm, is_dm=is_dm,
                        spell=spelling)
    data = source.data or {}
    channel, thread = _place(source.channel, source.channel_id)
    # Daily-tip subscriptions need Manage Channels in this channel (Discord resolves the member's
    # permissions into the interaction; in a DM there is no channel to manage but the DM itself).
    permissions = getattr(source, "permissions", None)
    allowed = source.guild_id is None or bool(getattr(permissions, "manage_channels", False))
    # The report and teaching: Manage Server or Manage Channels (in a DM nobody manages the bot).
    manager = source.guild_id is not None and (bool(getattr(permissions, "manage_guild", False)) or allowed)
    where = dict(platform="discord", channel_id=channel, user_id=str(source.user.id), thread_id=thread,
                 is_dm=source.guild_id is None, can_manage=lambda: allowed, spell=spelling,
                 is_manager=lambda: manager)
    if "custom_id" in data:
        custom_id = data["custom_id"]
        if not custom_id.startswith((BUTTON_PREFIX, MORE_PREFIX)):
            raise ValueError(f"not a trendbot button: {custom_id[:40]!r}")
        return Incoming(Button("", custom_id).query, is_command=True, **where)
    options = {o.get("name"): o.get("value") for o in data.get("options") or ()}
    name = data.get("name")
    if name == "trend":
        return Incoming(str(options.get("topic") or "").strip(), is_command=True, **where)
    if name == "ask":
        return Incoming(str(options.get("question") or ""), **where)
    if name == "tip":
        return Incoming("tip", is_command=True, **where)
    if name == "subscribe":  # the same words as `/trend subscribe [HH:MM] [Area/City] [topic ...]`
        words = [str(options.get(k) or "").strip() for k in ("time", "zone", "topics")]
        return Incoming(" ".join(["subscribe", *filter(None, words)]), is_command=True, **where)
    if name in ("unsubscribe", "subscription", "report"):
        return Incoming(name, is_command=True, **where)
    if name == "teach":
        entry, question = str(options.get("entry") or "").strip(), " ".join(str(options.get("question") or "").split())
        return Incoming(f"teach {entry} {question}", is_command=True, **where)
    raise ValueError(f"not a command trendbot answers: {name!r}")


_STORED = ("text", "platform", "channel_id", "user_id", "thread_id", "is_command", "is_mention", "is_dm")


def stored(incoming: Incoming) -> dict[str, Any]:
    """What the inbox keeps of an Incoming, to answer it after a restart; whether the sender may
    manage the channel is kept as it was decided, since the interaction that told us is gone."""
    out = {k: getattr(incoming, k) for k in _STORED}
    out["can_manage"] = bool(incoming.can_manage()) if incoming.is_command else False
    return out


def restored(kept: dict[str, Any]) -> Incoming:
    """The Incoming again from what `stored` kept of it."""
    allowed = bool(kept.get("can_manage"))
    fields = {k: kept[k] for k in _STORED if k in kept}
    return Incoming(**{"text": "", **fields}, can_manage=lambda: allowed, spell=spelling)


def spelling(verb: str, time: str = "", zone: str = "", topics: str = "") -> str:
    """Discord's own commands for daily tips: `/subscribe time:08:30 zone:Europe/Berlin topics:serverless`."""
    if verb != "subscribe":
        return f"/{verb}"
    options = (("time", time), ("zone", zone), ("topics", topics))
    return " ".join(["/subscribe", *(f"{name}:{value}" for name, value in options if value)])


def _place(channel: Any, channel_id: Any) -> tuple[str, str | None]:
    """(channel id, thread id): a thread's messages belong to its parent channel, as Slack's do."""
    parent = getattr(channel, "parent_id", None)
    if parent is not None and channel is not None:
        return str(parent), str(channel.id)
    return str(channel_id or ""), None


def wants_reply(message: Any, bot_id: int) -> bool:
    """Whether a message is a person's new DM to the bot or a mention of it.

    Never a bot's message (trendbot's own included), a webhook's, or a system message (joins,
    pins, thread starts).
    """
    if message.author.bot or message.author.id == bot_id or message.webhook_id is not None:
        return False
    if message.type not in (discord.MessageType.default, discord.MessageType.reply):
        return False
    return message.guild is None or any(u.id == bot_id for u in message.mentions)


def plain_text(message: Any, bot_id: int | None = None) -> str:
    """A message's content as the core reads it: the bot's mention dropped, others as @name, #channel, :emoji:."""
    users = {u.id: getattr(u, "display_name", None) or u.name for u in message.mentions}
    roles = {r.id: r.name for r in getattr(message, "role_mentions", ())}
    channels = {c.id: c.name for c in getattr(message, "channel_mentions", ())}

    def token(m: re.Match) -> str:
        kind, ident = m.group(1), m.group(2)
        if kind is None:
            return f":{m.group(3)}:"
        ident = int(ident)
        if kind in ("@", "@!"):
            return " " if ident == bot_id else "@" + users.get(ident, "user")
        if kind == "@&":
            return "@" + roles.get(ident, "role")
        return "#" + channels.get(ident, "channel")

    return " ".join(_TOKEN.sub(token, message.content or "").split())
