"""Replies as Discord messages, within Discord's limits, with every piece of text made inert.

`render(reply)` gives a list of `Message`s: embeds (title, description, fields for the key
points, a footer with the sources and the date the knowledge is current as of) and, for a
decline, suggestion buttons; `render(reply, embeds=False)` gives the same as plain content, for
a channel where the bot may not embed. `choices(bot, current)` is the /trend autocomplete.
Pure functions: no discord.py here (adapters/discord_app.py turns a Message into its objects).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol
from urllib.parse import urlsplit

from rapidfuzz import fuzz, process
from rapidfuzz.utils import default_process

from adapters.textfit import Seg, fit, source_lines, span_seg, split
from bot import markup
from bot.replies import Reply

log = logging.getLogger(__name__)

# Discord's limits: https://discord.com/developers/docs/resources/message#embed-object-embed-limits
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
MAX_FIELDS = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
EMBED_TOTAL = 6000  # title + description + field names and values + footer, over all embeds of a message
MAX_EMBEDS = 10  # per message
CONTENT_LIMIT = 2000  # a message's plain content
BUTTON_LABEL_LIMIT = 80
CUSTOM_ID_LIMIT = 100
MAX_BUTTONS = 5  # one action row
MAX_CHOICES = 25  # autocomplete choices
CHOICE_LIMIT = 100  # a choice's name and its value

BUTTON_PREFIX = "trendbot:suggest:"  # custom_id of a suggestion button; the rest is the query to ask
MORE_PREFIX = "trendbot:more:"  # custom_id of a short answer's "More" button; the rest is the entry id
SOURCES_FIELD = "Sources"
KEY_POINTS = "Key points"
BLANK_NAME = "\u200b"  # a field name that shows nothing: the field continues the one above
ELLIPSIS = "…"
SHORTENED = "*The rest of this answer is too long for Discord.*"
MAX_MESSAGES = 5  # a reply longer than this many messages is cut, with SHORTENED at the end
# Embed colours by reply kind: answers in Discord's blurple, declines amber, errors red.
COLORS = {"decline": 0xF0B232, "error": 0xED4245, "help": 0x99AAB5}
COLOR = 0x5865F2
KEY_POINT_KINDS = ("trend", "answer")  # replies whose bullets are key points (not a list of topics)


@dataclass(frozen=True)
class Button:
    """A suggestion button (pressing it asks `query`) or a "More" button (it shows the whole
    entry in place of the short answer); the custom_id carries either."""

    label: str
    custom_id: str

    @property
    def query(self) -> str:
        """The question the button asks ("more <entry id>" for a More button)."""
        if self.custom_id.startswith(MORE_PREFIX):
            return "more " + self.custom_id[len(MORE_PREFIX):]
        return self.custom_id[len(BUTTON_PREFIX):]


@dataclass(frozen=True)
class Message:
    """One Discord message: plain content and/or embeds (as API dicts), and buttons."""

    content: str = ""
    embeds: tuple[dict, ...] = ()
    buttons: tuple[Button, ...] = ()


def discord_len(text: str) -> int:
    """Length counted in UTF-16 units: never less than the code points Discord counts."""
    return len(text.encode("utf-16-le")) // 2


# -- making text inert ---------------------------------------------------------------------------

_MENTION = re.compile(r"@(?=(everyone|here)\b)", re.IGNORECASE)
_MARKDOWN = re.compile(r"([\\*_~`|<>\[\]])")
_LINE_START = re.compile(r"^(?:[#+-]|\d+\.)")
_URL = re.compile(r"https?://[^\s<>]+[^\s<>.,:;\"')\]*_~`|]")


def inert(text: str) -> str:
    """`text` with @everyone and @here broken by a zero-width space, so they can never ping."""
    return _MENTION.sub("@\u200b", text)


def escape(text: str, *, at_start: bool = False) -> str:
    """Text Discord shows as written: markdown and <...> (mentions, channels, emoji) escaped.

    Bare URLs stay as they are, so they stay links. `at_start`: the text begins a line, where
    "#", "-", "+" and "1." would start a heading, a list or a subtext.
    """
    out, pos = [], 0
    for m in _URL.finditer(text):
        out.append(_MARKDOWN.sub(r"\\\1", inert(text[pos:m.start()])))
        out.append(inert(m.group()))  # a link stays a link, unless it would ping everyone
        pos = m.end()
    out.append(_MARKDOWN.sub(r"\\\1", inert(text[pos:])))
    escaped = "".join(out)
    m = _LINE_START.match(escaped) if at_start else None
    if m:
        escaped = escaped[: m.end() - 1] + "\\" + escaped[m.end() - 1:]
    return escaped


def plain(text: str) -> str:
    """Text for a field Discord never parses (footer, button label): control characters out, mentions inert."""
    return inert("".join(ch if ch >= " " or ch == "\n" else " " for ch in text))


def clip(text: str, limit: int, render: Callable[[str], str] = lambda s: s) -> str:
    """render(text) within `limit`, cut at a character boundary with an ellipsis when it is too long."""
    if discord_len(render(text)) <= limit:
        return render(text)
    k = fit(text, lambda s: discord_len(render(s)) + 1 <= limit)
    return render(text[:k].rstrip()) + ELLIPSIS


# -- rendering -----------------------------------------------------------------------------------


def render(reply: Reply, *, embeds: bool = True) -> list[Message]:
    """The reply as Discord messages within Discord's limits; buttons on the last one.

    With embeds: one embed per part (title on the first, footer on the last), parts packed
    into messages of at most 6,000 characters. Without: plain content of at most 2,000
    characters a message. Long text is split between lines, else words, never inside a
    character, an escape or a link.
    """
    messages = _embed_messages(reply) if embeds else _content_messages(reply)
    if not messages:  # a reply with no text at all: Discord rejects an empty message
        messages = [Message(content=ELLIPSIS)]
    if len(messages) > MAX_MESSAGES:
        log.warning("reply %r needs %d messages; sending %d", reply.entry_id or reply.title, len(messages), MAX_MESSAGES)
        messages = messages[: MAX_MESSAGES - 1] + [_shortened(reply, embeds)]
    buttons = _buttons(reply)
    if buttons:
        messages[-1] = replace(messages[-1], buttons=buttons)
    return messages


def embed_len(embed: dict) -> int:
    """The characters of an embed that count towards Discord's 6,000 total."""
    n = discord_len(embed.get("title", "")) + discord_len(embed.get("description", ""))
    n += sum(discord_len(f["name"]) + discord_len(f["value"]) for f in embed.get("fields", ()))
    return n + discord_len(embed.get("footer", {}).get("text", ""))


def _embed_messages(reply: Reply) -> list[Message]:
    footer = _footer(reply, sources=False)
    if reply.teach:  # a decline shown to a manager
        footer = (footer + "\n" if footer else "") + "Teach me this one with /teach."
    title = clip(" ".join(reply.title.split()), TITLE_LIMIT, escape) if reply.title.strip() else ""
    description, fields = _body(reply.text, reply.kind)
    fields += _sources_field(reply)
    # Each part's text must fit beside the title and footer in one 6,000-character embed.
    room = min(DESCRIPTION_LIMIT, EMBED_TOTAL - discord_len(title) - discord_len(footer))
    parts = _pack(description, room) if description else []
    color = _color(reply)
    embeds: list[dict] = [{"color": color}]
    if title:
        embeds[0]["title"] = title
        url = next((s.url for s in reply.sources if _link_target(s.url)), "")
        if url:
            embeds[0]["url"] = _link_target(url)
    for i, part in enumerate(parts):
        if i:
            embeds.append({"color": color})
        embeds[-1]["description"] = part
    for name, value in fields:
        current = embeds[-1]
        if (len(current.get("fields", ())) == MAX_FIELDS
                or embed_len(current) + discord_len(name) + discord_len(value) + discord_len(footer) > EMBED_TOTAL):
            current = {"color": color}
            embeds.append(current)
        current.setdefault("fields", []).append({"name": name, "value": value, "inline": False})
    if footer:
        embeds[-1]["footer"] = {"text": footer}
    messages: list[list[dict]] = [[]]
    for embed in (e for e in embeds if embed_len(e)):
        if (len(messages[-1]) == MAX_EMBEDS
                or sum(map(embed_len, messages[-1])) + embed_len(embed) > EMBED_TOTAL):
            messages.append([])
        messages[-1].append(embed)
    return [Message(embeds=tuple(m)) for m in messages if m]


def _content_messages(reply: Reply) -> list[Message]:
    lines = _lines(markup.parse(reply.text))
    if reply.title.strip():
        # The title shares the first line, so a long first paragraph never leaves it alone in a message.
        title = [Seg(" ".join(reply.title.split()), "b"), Seg("\n\n", "raw")]
        lines = [("", title + lines[0][1]), *lines[1:]] if lines else [("", title[:1])]
    for i, segs in enumerate(source_lines(reply)):
        # "-# " is Discord's subtext: the small grey line under a message, like an embed footer.
        lines.append(("\n\n" if i == 0 and lines else "\n" if lines else "", [Seg("-# ", "raw"), *segs]))
    return [Message(content=part) for part in _pack(lines, CONTENT_LIMIT, links="content")]


def _shortened(reply: Reply, embeds: bool) -> Message:
    """The last message of a cut reply: a note that it was cut, and the sources all the same."""
    if embeds:
        embed: dict = {"description": SHORTENED, "color": _color(reply)}
        footer = _footer(reply)
        if footer:
            embed["footer"] = {"text": footer}
        return Message(embeds=(embed,))
    lines = [("", [Seg(SHORTENED, "raw")])]
    lines += [("\n\n" if i == 0 else "\n", [Seg("-# ", "raw"), *segs]) for i, segs in enumerate(source_lines(reply))]
    return Message(content=_pack(lines, CONTENT_LIMIT, links="content")[0])


def _color(reply: Reply) -> int:
    return COLORS.get(reply.kind, COLOR)


def _body(text: str, kind: str) -> tuple[list[tuple[str, list[Seg]]], list[tuple[str, str]]]:
    """The description's lines, and the (name, value) fields: the key points and what follows them."""
    blocks = markup.parse(text)
    first_list = next((i for i, b in enumerate(blocks) if b.bullets), len(blocks))
    if kind not in KEY_POINT_KINDS:
        first_list = len(blocks)  # a list of topics or sources is the answer itself, kept in order
    fields: list[tuple[str, str]] = []
    for block in blocks[first_list:]:
        label = _label(block)
        if label:
            name, lines = label
        else:  # the first list is the key points; what follows continues under them
            name = KEY_POINTS if block.bullets and not fields else BLANK_NAME
            lines = _lines([block])
        for i, value in enumerate(_pack(lines, FIELD_VALUE_LIMIT)):
            fields.append((name if i == 0 else BLANK_NAME, value))
    return _lines(blocks[:first_list]), fields


def _label(block: markup.Block) -> tuple[str, list[tuple[str, list[Seg]]]] | None:
    """'**Tools:** a, b' -> ("Tools", the rest as a line); None for any other block."""
    items = block.items[0]
    if block.bullets or len(items) < 2 or not items[0].bold or not items[0].text.rstrip().endswith(":"):
        return None
    name = clip(items[0].text.rstrip().rstrip(":").strip(), FIELD_NAME_LIMIT, escape)
    rest = [span_seg(s) for s in items[1:]]
    rest[0] = replace(rest[0], text=rest[0].text.lstrip())
    return name, [("", rest)]


def _footer(reply: Reply, sources: bool = True) -> str:
    """The footer's plain text: the related topics, and the sources too where no field holds them."""
    lines = source_lines(reply)[0 if sources or not reply.sources else 1:]
    text = "\n".join("".join(s.text for s in segs) for segs in lines)
    return clip(plain(text), FOOTER_LIMIT) if text else ""


def _sources_field(reply: Reply) -> list[tuple[str, str]]:
    """The sources as an embed field, each article's name the link to it: [Nucamp](url), Jan 2025."""
    if not reply.sources:
        return []
    segs = source_lines(reply)[0][1:]  # without the "Sources: " label: the field's name says it
    values = _pack([("", segs)], FIELD_VALUE_LIMIT)
    return [(SOURCES_FIELD if i == 0 else BLANK_NAME, v) for i, v in enumerate(values)]


def _buttons(reply: Reply) -> tuple[Button, ...]:
    if reply.answered:
        out = []
        more = MORE_PREFIX + (reply.entry_id or "")
        if reply.more and reply.entry_id and len(more) <= CUSTOM_ID_LIMIT:
            out.append(Button("More", more))
        if reply.asked_id is not None:  # feedback: the press is answered privately, and may be changed
            out += [Button("Helpful", f"{BUTTON_PREFIX}good {reply.asked_id}"),
                    Button("Not helpful", f"{BUTTON_PREFIX}bad {reply.asked_id}")]
        return tuple(out)
    out = []
    for s in reply.suggestions[:MAX_BUTTONS]:
        custom_id = BUTTON_PREFIX + s.query
        if s.query.strip() and s.label.strip() and len(custom_id) <= CUSTOM_ID_LIMIT:
            out.append(Button(clip(" ".join(s.label.split()), BUTTON_LABEL_LIMIT, plain), custom_id))
    return tuple(out)


# -- splitting -------------------------------------------------------------------------------------


def _lines(blocks: Iterable[markup.Block]) -> list[tuple[str, list[Seg]]]:
    """Each paragraph and bullet as (separator before it, segments)."""
    out: list[tuple[str, list[Seg]]] = []
    for block in blocks:
        for i, item in enumerate(block.items):
            sep = "" if not out else ("\n" if i else "\n\n")
            segs = [Seg("• ", "raw")] if block.bullets else []
            out.append((sep, segs + [span_seg(s) for s in item]))
    return out


def _seg_md(seg: Seg, at_start: bool, links: str) -> str:
    if seg.style == "raw":
        return seg.text
    if seg.style == "a":
        target = _link_target(seg.url)
        if target is None:
            return escape(f"{seg.text} ({seg.url})", at_start=at_start)
        # In content, <url> keeps Discord from adding a preview of every cited article.
        return f"[{escape(seg.text)}]({'<' + target + '>' if links == 'content' else target})"
    if seg.style in ("b", "c") and seg.text.strip():
        core = seg.text.strip()
        lead, trail = seg.text[: len(seg.text) - len(seg.text.lstrip())], seg.text[len(seg.text.rstrip()):]
        body = f"**{escape(core)}**" if seg.style == "b" else f"`{inert(core)}`"  # no escapes inside code
        return f"{lead}{body}{trail}"
    return escape(seg.text, at_start=at_start)


def _link_target(url: str) -> str | None:
    """A URL safe inside [label](...): http(s) only; characters that would end the link percent-encoded."""
    if urlsplit(url).scheme not in ("http", "https"):
        return None
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")


def _pack(lines: list[tuple[str, list[Seg]]], limit: int, *, links: str = "embed") -> list[str]:
    """Lines as texts of at most `limit`: whole lines packed while they fit; a longer line split."""
    out: list[str] = []
    current = ""
    for sep, segs in lines:
        line = "".join(_seg_md(s, _starts_line(segs, i), links) for i, s in enumerate(segs))
        if current and discord_len(current) + discord_len(sep) + discord_len(line) <= limit:
            current += sep + line
            continue
        if current:
            out.append(current)
        parts = [line] if discord_len(line) <= limit else split(segs, limit, lambda seg, at_start: _seg_md(seg, at_start, links), discord_len, breaks=" ")
        out.extend(parts[:-1])
        current = parts[-1] if parts else ""
    if current:
        out.append(current)
    return [p for p in out if p.strip()]


def _starts_line(segs: list[Seg], i: int) -> bool:
    return i == 0 or (segs[i - 1].style == "raw" and segs[i - 1].text.endswith("\n"))


# -- autocomplete ----------------------------------------------------------------------------------


class _Topics(Protocol):
    """What the autocomplete needs from the core: the trends and how a name finds one."""

    kb: object  # .trends: {id: Trend}

    def find_topic(self, name: str): ...


CHOICE_CUTOFF = 68  # rapidfuzz WRatio a name needs to be offered for what was typed


def choices(bot: _Topics, current: str, limit: int = MAX_CHOICES) -> list[tuple[str, str]]:
    """The /trend autocomplete: at most `limit` (name, value) pairs, best first.

    The name is the topic's title, the value its id (both within Discord's 100 characters).
    Empty input lists the topics A-Z; otherwise names (titles, ids, aliases) that start with
    or contain what was typed come first, then fuzzy matches, so partial and misspelt input
    ("serverl", "kubernets") still finds its topic. The topic `/trend` itself would pick for
    this text is always first.
    """
    trends = [t for t in bot.kb.trends.values() if 0 < len(t.id) <= CHOICE_LIMIT and t.title.strip()]
    query = default_process(current)[:CHOICE_LIMIT]
    if not query:
        ranked = sorted(trends, key=lambda t: default_process(t.title))
    else:
        names: list[str] = []
        owners: list[int] = []
        for i, t in enumerate(trends):
            for name in {default_process(n) for n in (t.title, t.id.replace("-", " "), *t.aliases)}:
                names.append(name)
                owners.append(i)
        best: dict[int, float] = {}
        for _, score, j in process.extract(query, names, scorer=fuzz.WRatio, processor=None,
                                           limit=None, score_cutoff=CHOICE_CUTOFF):
            name = names[j]
            if name.startswith(query):
                score += 200
            elif f" {query}" in f" {name}":
                score += 100  # a word of the name starts with it
            owner = owners[j]
            best[owner] = max(best.get(owner, 0.0), score)
        picked = bot.find_topic(current)
        if picked is not None:
            for i, t in enumerate(trends):
                if t.id == picked.id:
                    best[i] = 1000.0
        ranked = [trends[i] for i in sorted(best, key=lambda i: (-best[i], default_process(trends[i].title)))]
    return [(clip(" ".join(t.title.split()), CHOICE_LIMIT), t.id) for t in ranked[:limit]]
