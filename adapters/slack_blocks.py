"""Replies as Slack Block Kit messages, within Slack's limits, with every piece of text escaped.

`render(reply)` gives {"blocks": [...], "text": fallback}: a header, the answer in mrkdwn
sections, suggestion buttons for a decline, and a context line with the sources and the date
the knowledge is current as of. Pure functions; no Slack library is needed here.
"""
from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from adapters.textfit import Seg, fit, source_lines, span_seg, split
from bot import markup
from bot.replies import Reply, to_text

log = logging.getLogger(__name__)

ACTION_PREFIX = "trendbot_suggest"  # action_id of the suggestion buttons (slack_app listens for it)
MORE_ACTION = "trendbot_more"  # the "More" button of a short answer: its value is the entry id
VOTE_ACTION = "trendbot_vote"  # "Helpful" (_good) and "Not helpful" (_bad): the value names the answer
TEACH_ACTION = "trendbot_teach"  # a manager's "Teach" under a decline: the value is the question

# Block Kit limits: https://docs.slack.dev/reference/block-kit/blocks
SECTION_LIMIT = 3000  # a section's text object
HEADER_LIMIT = 150  # a header's plain_text
CONTEXT_LIMIT = 3000  # each text element of a context block
BUTTON_LIMIT = 75  # a button's label
VALUE_LIMIT = 2000  # a button's value
MAX_BLOCKS = 50  # blocks in one message
MAX_BUTTONS = 5
TEXT_LIMIT = 3000  # the plain `text` fallback: notifications and previews show only its start
ELLIPSIS = "…"
SHORTENED = "_The rest of this answer is too long for one Slack message._"


def slack_len(text: str) -> int:
    """Length as Slack counts it, in UTF-16 code units: never less than the code-point count."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    """Escape Slack's control characters so text cannot mention, link or format a <...> sequence."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(reply: Reply) -> dict:
    """The reply as a Slack message: {"blocks": [...], "text": fallback}, within Slack's limits.

    Header, answer sections (split at 3,000 characters between lines or words, never inside a
    character, an escape or a link), suggestion buttons for a decline, and a context line with
    the sources and the date the knowledge is current as of.
    """
    # Header and button labels are plain_text, which Slack shows as given and never parses for
    # mentions or links, so they are not entity-escaped (that would show "&amp;" literally).
    # Everything mrkdwn, the fallback `text` included, is escaped.
    head: list[dict] = []
    if reply.title.strip():
        title = " ".join(reply.title.split())
        head.append({"type": "header", "text": {"type": "plain_text", "text": clip(title, HEADER_LIMIT), "emoji": True}})
    tail = [b for b in (_actions(reply), _context(reply)) if b]
    sections = sections_of(reply.text)
    room = MAX_BLOCKS - len(head) - len(tail)
    if len(sections) > room:
        log.warning("reply %r needs %d sections; showing %d", reply.entry_id or reply.title, len(sections), room - 1)
        sections = sections[: room - 1] + [SHORTENED]
    body = [{"type": "section", "text": _mrkdwn(s)} for s in sections]
    return {"blocks": head + body + tail, "text": _fallback(reply)}


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` UTF-16 units at a character boundary, with an ellipsis when cut."""
    if slack_len(text) <= limit:
        return text
    k = fit(text, lambda s: slack_len(s) + 1 <= limit)
    return text[:k].rstrip() + ELLIPSIS


def sections_of(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """The answer markup as mrkdwn section texts, each at most `limit` long.

    Lines (paragraphs, bullets) are packed whole while they fit; a line longer than a section is
    split between words where it can, else between characters.
    """
    sections: list[str] = []
    current = ""
    for sep, segs in _lines(text):
        line = "".join(_seg_mrkdwn(s) for s in segs)
        if current and slack_len(current) + slack_len(sep) + slack_len(line) <= limit:
            current += sep + line
            continue
        if current:
            sections.append(current)
        parts = [line] if slack_len(line) <= limit else split(segs, limit, lambda seg, _: _seg_mrkdwn(seg), slack_len)
        sections.extend(parts[:-1])
        current = parts[-1] if parts else ""
    if current:
        sections.append(current)
    return [s for s in sections if s.strip()]


def _lines(text: str) -> list[tuple[str, list[Seg]]]:
    out: list[tuple[str, list[Seg]]] = []
    for block in markup.parse(text):
        for i, item in enumerate(block.items):
            sep = "" if not out else ("\n" if i else "\n\n")
            segs = [Seg("• ")] if block.bullets else []
            segs += [span_seg(s) for s in item]
            out.append((sep, segs))
    return out


_FORMATTING = re.compile(r"([*_~`])")


def inert(text: str) -> str:
    """Escaped text whose *, _, ~ and ` cannot format: Slack has no escape for them, so each is
    followed by a zero-width space, which breaks the pair Slack would read as markup."""
    return _FORMATTING.sub("\\1\u200b", escape(text))


def _seg_mrkdwn(seg: Seg) -> str:
    if seg.style == "a":
        target = _link_target(seg.url)
        if target is None:
            return inert(f"{seg.text} ({seg.url})")
        return f"<{target}|{inert(seg.text)}>"
    if seg.style == "raw":
        return seg.text
    body = escape(seg.text) if seg.style == "c" else inert(seg.text)  # inside `code` nothing formats
    if seg.style in ("b", "c") and body.strip():
        mark = "*" if seg.style == "b" else "`"
        core = body.strip()
        lead, trail = body[: len(body) - len(body.lstrip())], body[len(body.rstrip()):]
        return f"{lead}{mark}{core}{mark}{trail}"  # Slack needs the marks against the words
    return body


def _link_target(url: str) -> str | None:
    """A URL safe inside <...|...>: http(s) only; characters that would end the link percent-encoded."""
    if urlsplit(url).scheme not in ("http", "https"):
        return None
    return (url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E")
            .replace("|", "%7C").replace(" ", "%20"))


def _mrkdwn(text: str) -> dict:
    # verbatim: Slack does not auto-link bare URLs, channel names or mentions in our text; the
    # links we write as <url|label> still work.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _context(reply: Reply) -> dict | None:
    lines = source_lines(reply)
    if not lines:
        return None
    return {"type": "context", "elements": [_mrkdwn(_clip_line(segs, CONTEXT_LIMIT)) for segs in lines]}


def _clip_line(segs: list[Seg], limit: int) -> str:
    parts = split(segs, limit - 2, lambda seg, _: _seg_mrkdwn(seg), slack_len)
    return parts[0] + (" " + ELLIPSIS if len(parts) > 1 else "") if parts else ""


def _button(action_id: str, label: str, value: str) -> dict:
    return {"type": "button", "action_id": action_id, "value": value,
            "text": {"type": "plain_text", "text": clip(label, BUTTON_LIMIT), "emoji": True}}


def _actions(reply: Reply) -> dict | None:
    if reply.answered:
        buttons = []
        if reply.more and reply.entry_id:
            buttons.append(_button(MORE_ACTION, "More", f"more {reply.entry_id}"))
        if reply.asked_id is not None:  # feedback: answered privately, and changeable
            buttons.append(_button(VOTE_ACTION + "_good", "Helpful", f"good {reply.asked_id}"))
            buttons.append(_button(VOTE_ACTION + "_bad", "Not helpful", f"bad {reply.asked_id}"))
        return {"type": "actions", "block_id": "trendbot_answer", "elements": buttons} if buttons else None
    buttons = [
        _button(f"{ACTION_PREFIX}_{i}", s.label, s.query)
        for i, s in enumerate(reply.suggestions[:MAX_BUTTONS])
        if s.query and len(s.query) <= VALUE_LIMIT and s.label.strip()
    ]
    if reply.teach and len(reply.teach) <= VALUE_LIMIT and len(buttons) < MAX_BUTTONS:  # only a manager sees it
        buttons.append(_button(TEACH_ACTION, "Teach trendbot this", reply.teach))
    return {"type": "actions", "block_id": "trendbot_suggestions", "elements": buttons} if buttons else None


def _fallback(reply: Reply) -> str:
    plain = to_text(reply)
    if slack_len(inert(plain)) <= TEXT_LIMIT:
        return inert(plain)
    k = fit(plain, lambda s: slack_len(inert(s)) + 1 <= TEXT_LIMIT)
    return inert(plain[:k].rstrip()) + ELLIPSIS
