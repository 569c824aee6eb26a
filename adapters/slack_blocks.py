"""Replies as Slack Block Kit messages, within Slack's limits, with every piece of text escaped.

`render(reply)` gives {"blocks": [...], "text": fallback}: a header, the answer in mrkdwn
sections, suggestion buttons for a decline, and a context line with the sources and the date
the knowledge is current as of. Pure functions; no Slack library is needed here.
"""
from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from bot import markup
from bot.replies import Reply, to_text

log = logging.getLogger(__name__)

ACTION_PREFIX = "trendbot_suggest"  # action_id of the suggestion buttons (slack_app listens for it)

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
    k = _fit(text, lambda s: slack_len(s) + 1 <= limit)
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
        parts = [line] if slack_len(line) <= limit else _split(segs, limit)
        sections.extend(parts[:-1])
        current = parts[-1] if parts else ""
    if current:
        sections.append(current)
    return [s for s in sections if s.strip()]


@dataclass(frozen=True)
class _Seg:
    """A run of text with one style: plain, bold (b), code (c) or a link (a)."""

    text: str
    style: str = ""
    url: str = ""


def _lines(text: str) -> list[tuple[str, list[_Seg]]]:
    out: list[tuple[str, list[_Seg]]] = []
    for block in markup.parse(text):
        for i, item in enumerate(block.items):
            sep = "" if not out else ("\n" if i else "\n\n")
            segs = [_Seg("• ")] if block.bullets else []
            segs += [_span_seg(s) for s in item]
            out.append((sep, segs))
    return out


def _span_seg(span: markup.Span) -> _Seg:
    if span.url:
        return _Seg(span.text, "a", span.url)
    return _Seg(span.text, "b" if span.bold else "c" if span.code else "")


def _seg_mrkdwn(seg: _Seg) -> str:
    if seg.style == "a":
        target = _link_target(seg.url)
        if target is None:
            return escape(f"{seg.text} ({seg.url})")
        return f"<{target}|{escape(seg.text)}>"
    body = escape(seg.text)
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


def _split(segs: list[_Seg], limit: int) -> list[str]:
    """One over-long line as several chunks of mrkdwn, each within `limit`."""
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    queue = list(segs)

    def flush() -> None:
        nonlocal used
        if current:
            chunks.append("".join(current))
            current.clear()
        used = 0

    while queue:
        seg = queue.pop(0)
        rendered = _seg_mrkdwn(seg)
        if used + slack_len(rendered) <= limit:
            current.append(rendered)
            used += slack_len(rendered)
            continue
        if seg.style == "a":
            if current and slack_len(rendered) <= limit:
                flush()  # a link is never split: it starts the next chunk
                queue.insert(0, seg)
            else:  # a link longer than a whole section: its label and address as text
                queue.insert(0, _Seg(f"{seg.text} ({seg.url})"))
            continue
        room = limit - used
        k = _fit(seg.text, lambda s: slack_len(_seg_mrkdwn(replace(seg, text=s))) <= room, prefer_space=True)
        if k == 0 and not current:  # one "character" longer than a section: cut between code points
            k = _fit(seg.text, lambda s: slack_len(_seg_mrkdwn(replace(seg, text=s))) <= room, boundaries=False) or 1
        if k:
            current.append(_seg_mrkdwn(replace(seg, text=seg.text[:k].rstrip() or seg.text[:k])))
        flush()
        rest = seg.text[k:].lstrip()
        if rest:
            queue.insert(0, replace(seg, text=rest))
    flush()
    return chunks


def _fit(text: str, fits: Callable[[str], bool], *, prefer_space: bool = False, boundaries: bool = True) -> int:
    """The largest cut k such that fits(text[:k]), at a character boundary (0 if none).

    `fits` must be monotone (a shorter prefix never costs more). With prefer_space, a cut after
    the last space is taken when it keeps at least half of what fits.
    """
    lo, hi = 0, len(text)
    while lo < hi:  # largest k with fits(text[:k])
        mid = (lo + hi + 1) // 2
        if fits(text[:mid]):
            lo = mid
        else:
            hi = mid - 1
    k = lo
    if boundaries:
        while k > 0 and not is_boundary(text, k):
            k -= 1
    if prefer_space and k < len(text):
        space = max(text.rfind(" ", 0, k), text.rfind("\n", 0, k))
        if space >= k // 2 and space > 0:
            k = space + 1
    return k


_ZWJ = "\u200d"


def is_boundary(text: str, i: int) -> bool:
    """Whether cutting `text` at index i keeps every user-perceived character whole.

    An approximation of Unicode grapheme clusters that covers combining marks, variation
    selectors, emoji skin tones and ZWJ sequences, flags (regional-indicator pairs and tag
    sequences), Hangul jamo and CR LF.
    """
    if i <= 0 or i >= len(text):
        return True
    prev, ch = text[i - 1], text[i]
    c = ord(ch)
    if (prev == "\r" and ch == "\n") or prev == _ZWJ or ch == _ZWJ:
        return False
    if unicodedata.category(ch) in ("Mn", "Me", "Mc"):
        return False
    if 0xFE00 <= c <= 0xFE0F or 0xE0100 <= c <= 0xE01EF or 0x1F3FB <= c <= 0x1F3FF or 0xE0020 <= c <= 0xE007F:
        return False
    if 0x1160 <= c <= 0x11FF:
        return False
    if _is_ri(ch) and _is_ri(prev):
        run = 0
        while i - 1 - run >= 0 and _is_ri(text[i - 1 - run]):
            run += 1
        return run % 2 == 0
    return True


def _is_ri(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _mrkdwn(text: str) -> dict:
    # verbatim: Slack does not auto-link bare URLs, channel names or mentions in our text; the
    # links we write as <url|label> still work.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _context(reply: Reply) -> dict | None:
    lines: list[list[_Seg]] = []
    if reply.sources:
        segs = [_Seg("Source: " if len(reply.sources) == 1 else "Sources: ")]
        for i, s in enumerate(reply.sources):
            if i:
                segs.append(_Seg("; "))
            name = s.name or s.title
            segs.append(_Seg(name, "a", s.url) if s.url else _Seg(name))
            if s.date:
                segs.append(_Seg(f" ({s.date})"))
        if reply.as_of:
            segs.append(_Seg(f" · as of {reply.as_of}"))
        lines.append(segs)
    if reply.answered and reply.suggestions:
        lines.append([_Seg("Related: " + ", ".join(s.label for s in reply.suggestions))])
    if not lines:
        return None
    return {"type": "context", "elements": [_mrkdwn(_clip_line(segs, CONTEXT_LIMIT)) for segs in lines]}


def _clip_line(segs: list[_Seg], limit: int) -> str:
    parts = _split(segs, limit - 2)
    return parts[0] + (" " + ELLIPSIS if len(parts) > 1 else "") if parts else ""


def _actions(reply: Reply) -> dict | None:
    if reply.answered or not reply.suggestions:
        return None
    buttons = [
        {"type": "button", "action_id": f"{ACTION_PREFIX}_{i}", "value": s.query,
         "text": {"type": "plain_text", "text": clip(s.label, BUTTON_LIMIT), "emoji": True}}
        for i, s in enumerate(reply.suggestions[:MAX_BUTTONS])
        if s.query and len(s.query) <= VALUE_LIMIT and s.label.strip()
    ]
    return {"type": "actions", "block_id": "trendbot_suggestions", "elements": buttons} if buttons else None


def _fallback(reply: Reply) -> str:
    plain = to_text(reply)
    if slack_len(escape(plain)) <= TEXT_LIMIT:
        return escape(plain)
    k = _fit(plain, lambda s: slack_len(escape(s)) + 1 <= TEXT_LIMIT)
    return escape(plain[:k].rstrip()) + ELLIPSIS
