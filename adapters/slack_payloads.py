"""Slack's payloads as the core's Incoming, and the checks a request passes before bolt parses it.

Pure functions over what Slack sends (events, slash commands, button presses): no Slack library.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl

from aiohttp import web

from bot.core import Incoming

MAX_BODY = 1024 * 1024  # Slack's own payloads are far smaller; anything over this is refused with 413


_SLACK_TOKEN = re.compile(r"<([^<>\n]*)>")


def to_incoming(payload: Mapping) -> Incoming:
    """A slash command, Events API or block_actions payload (as Slack sends it) as an Incoming.

    Raises ValueError for any other payload.
    """
    if "command" in payload:  # slash command: the form fields
        text = plain_text(payload.get("text") or "")
        channel = payload.get("channel_id", "")
        return Incoming(
            text, platform="slack", channel_id=channel, user_id=payload.get("user_id", ""),
            is_command=True, is_dm=dm_channel(channel, payload.get("channel_name")),
        )
    if payload.get("type") == "event_callback":
        event = payload.get("event") or {}
        channel = event.get("channel", "")
        is_dm = dm_channel(channel, event.get("channel_type"))
        text = _strip_mentions(event.get("text") or "", _bot_user_ids(payload))
        if is_dm:
            thread = event.get("thread_ts")  # answer in the DM itself unless the user wrote in a thread
        else:
            thread = event.get("thread_ts") or event.get("ts")  # a mention is answered in its thread
        return Incoming(
            plain_text(text), platform="slack", channel_id=channel, user_id=event.get("user", ""),
            thread_id=thread, is_mention=event.get("type") == "app_mention" and not is_dm, is_dm=is_dm,
        )
    if payload.get("type") == "block_actions":
        actions = payload.get("actions") or [{}]
        container = payload.get("container") or {}
        message = payload.get("message") or {}
        channel = (payload.get("channel") or {}).get("id") or container.get("channel_id", "")
        return Incoming(
            actions[0].get("value") or "", platform="slack", channel_id=channel,
            user_id=(payload.get("user") or {}).get("id", ""),
            thread_id=container.get("thread_ts") or message.get("thread_ts"),
            is_command=True, is_dm=dm_channel(channel, None),
        )
    raise ValueError(f"not a payload trendbot answers: {payload.get('type') or 'unknown type'}")


def wants_reply(payload: Mapping) -> bool:
    """Whether an Events API payload is a person's new message the bot should answer.

    A mention, or a message in a DM with the bot; never a bot's message (its own included), an
    edit, a deletion or any other message subtype.
    """
    event = payload.get("event") or {}
    user = event.get("user")
    if not user or event.get("bot_id") or event.get("bot_profile") or event.get("subtype"):
        return False
    if user in _bot_user_ids(payload):
        return False
    if event.get("type") == "app_mention":
        return True
    return event.get("type") == "message" and dm_channel(event.get("channel", ""), event.get("channel_type"))


def inbox_key(payload: Mapping) -> str | None:
    """The inbox key of a payload trendbot answers, or None for one it doesn't (a bot's message,
    an edit, url_verification). Commands and button presses are keyed by their trigger_id."""
    if "command" in payload or payload.get("type") == "block_actions":
        trigger = payload.get("trigger_id") or ""
        return f"slack:{'cmd' if 'command' in payload else 'act'}:{payload.get('team_id') or ''}:{trigger}" if trigger else None
    if payload.get("type") == "event_callback" and wants_reply(payload):
        return event_key(payload)
    return None


def team_of(payload: Mapping) -> str:
    """The workspace a payload is for: the team whose installation answers it ('' if it names none).

    The order is bolt's own (slack_bolt/request/internals.py `extract_team_id`), so the adapter and
    bolt's authorize step pick the same workspace: a modal's `app_installed_team_id`, an interactive
    payload's `team`, then an event's `authorizations` (right in a channel shared between
    workspaces), then a command's `team_id`, then the event's or the user's team.
    """
    view = payload.get("view")
    if isinstance(view, Mapping) and view.get("app_installed_team_id"):
        return str(view["app_installed_team_id"])
    team = payload.get("team")
    if isinstance(team, str) and team:
        return team
    if isinstance(team, Mapping) and team.get("id"):
        return str(team["id"])
    authorizations = payload.get("authorizations")
    if isinstance(authorizations, list) and authorizations and isinstance(authorizations[0], Mapping):
        return str(authorizations[0].get("team_id") or "")
    if payload.get("team_id"):
        return str(payload["team_id"])
    for inner in (payload.get("event"), payload.get("user"), view):
        if isinstance(inner, Mapping) and (inner.get("team") or inner.get("team_id")):
            found = inner.get("team") or inner.get("team_id")
            return str(found if isinstance(found, str) else "")
    return ""


# What a recorded payload keeps: what to_incoming, the reply and the workspace lookup need, nothing else.
_KEEP = ("type", "team_id", "team", "enterprise_id", "command", "text", "channel_id", "channel_name", "user_id",
         "response_url", "trigger_id", "event_id", "authorizations", "actions", "container", "channel", "user",
         "message")


def minimal(payload: Mapping) -> dict:
    """The parts of a payload needed to answer it later (a block_actions message keeps only its thread)."""
    out = {k: payload[k] for k in _KEEP if k in payload}
    if "event" in payload:
        event = payload["event"] or {}
        out["event"] = {k: event[k] for k in ("type", "channel", "channel_type", "text", "user", "ts", "thread_ts",
                                              "bot_id", "subtype") if k in event}
    if isinstance(out.get("message"), dict):
        out["message"] = {k: out["message"][k] for k in ("ts", "thread_ts") if k in out["message"]}
    if isinstance(out.get("actions"), list):
        out["actions"] = [{k: a[k] for k in ("action_id", "value") if k in a} for a in out["actions"][:1]]
    return out


def event_key(payload: Mapping) -> str:
    """The de-duplication key of an event: the message it is about.

    Keyed on the message (team, channel, ts) rather than on `event_id` alone: a retry carries the
    same event_id and the same message, and a DM that mentions the bot can arrive both as
    `message.im` and as `app_mention` with different event ids; either way one reply.
    """
    event = payload.get("event") or {}
    if event.get("channel") and event.get("ts"):
        return f"slack:msg:{payload.get('team_id', '')}:{event['channel']}:{event['ts']}"
    return f"slack:event:{payload.get('event_id', '')}"


def plain_text(text: str) -> str:
    """Slack's message markup as plain text: <@U1|ann> -> @ann, <!here> -> @here, <url|label> -> label, &amp; -> &."""

    def token(m: re.Match) -> str:
        target, _, label = m.group(1).partition("|")
        if target.startswith(("@", "#")):
            return target[0] + (label.lstrip("@#") or target[1:])
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        return label or target

    text = _SLACK_TOKEN.sub(token, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def _strip_mentions(text: str, bot_ids: set[str]) -> str:
    if bot_ids:
        return re.sub(r"<@(?:%s)(?:\|[^>]*)?>" % "|".join(map(re.escape, bot_ids)), " ", text).strip()
    return re.sub(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>", " ", text).strip()  # no authorizations: the leading mention


def _bot_user_ids(payload: Mapping) -> set[str]:
    return {a["user_id"] for a in payload.get("authorizations") or () if a.get("is_bot") and a.get("user_id")}


def dm_channel(channel: str, channel_type: str | None) -> bool:
    return channel_type in ("im", "directmessage") or channel.startswith("D")


async def read_capped(request: web.Request) -> bytes | None:
    """The body, or None once it grows past MAX_BODY (a chunked body has no Content-Length to check)."""
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def signed(body: bytes, headers: Mapping[str, str], secret: str, now: float | None = None) -> bool:
    """Slack's v0 signature over the raw bytes, with a timestamp at most five minutes off.
    https://docs.slack.dev/authentication/verifying-requests-from-slack/ (slack_sdk's verifier
    decodes the body first, and so raises on bytes that are not UTF-8)."""
    timestamp, signature = headers.get("X-Slack-Request-Timestamp", ""), headers.get("X-Slack-Signature", "")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12 or not signature.isascii():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > 300:
        return False
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v0={digest}", signature)


def well_formed(body: bytes, content_type: str) -> bool:
    """Whether a signed body is what Slack sends: UTF-8 JSON (events) or a form (commands, a
    JSON `payload` field for interactivity)."""
    try:
        text = body.decode("utf-8")
        if content_type.startswith("application/json"):
            return isinstance(json.loads(text), dict)
        fields = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
        return "payload" not in fields or isinstance(json.loads(fields["payload"]), dict)
    except (UnicodeDecodeError, ValueError):
        return False
