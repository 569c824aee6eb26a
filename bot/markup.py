"""The tiny markup the core hands out: paragraphs, bullets, **bold**, `code` and [links](url).

Renderers walk `parse(text)` and escape each piece of plain text for their platform, so no
knowledge text or echoed input ever reaches a platform as live markup. Text a person typed is put
in with `literal(text)`, which backslash-escapes the markup characters: it stays plain text on
every surface, whatever it holds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_INLINE = re.compile(
    r"\\(?P<escaped>[\\*`\[\]()_-])"
    r"|\*\*(?P<bold>(?:\\.|[^*\n\\])+?)\*\*"
    r"|`(?P<code>[^`\n]+)`"
    r"|\[(?P<label>(?:\\.|[^\]\n\\])+)\]\((?P<url>https?://[^\s)]+)\)"
)
_ESCAPABLE = re.compile(r"([\\*`\[\]()_-])")
_UNESCAPE = re.compile(r"\\([\\*`\[\]()_-])")


def literal(text: str) -> str:
    """`text` as markup that shows exactly `text`: no bold, code, link or bullet can come of it."""
    return _ESCAPABLE.sub(r"\\\1", " ".join(text.split()))


@dataclass(frozen=True)
class Span:
    """A run of text: plain, bold, code (a command to type), or a link (url set)."""

    text: str
    bold: bool = False
    url: str = ""
    code: bool = False


@dataclass(frozen=True)
class Block:
    """A paragraph (one item) or a bullet list (one item per bullet); items are span lists."""

    bullets: bool
    items: tuple[tuple[Span, ...], ...]


def spans(line: str) -> tuple[Span, ...]:
    """Split one line into plain, bold, code and link spans; escaped characters are plain text."""
    out: list[Span] = []
    plain_run: list[str] = []
    pos = 0

    def flush() -> None:
        if plain_run:
            out.append(Span("".join(plain_run)))
            plain_run.clear()

    for m in _INLINE.finditer(line):
        plain_run.append(line[pos : m.start()])
        if m.group("escaped") is not None:
            plain_run.append(m.group("escaped"))
        else:
            flush()
            if m.group("bold") is not None:
                out.append(Span(_UNESCAPE.sub(r"\1", m.group("bold")), bold=True))
            elif m.group("code") is not None:
                out.append(Span(m.group("code"), code=True))
            else:
                out.append(Span(_UNESCAPE.sub(r"\1", m.group("label")), url=m.group("url")))
        pos = m.end()
    plain_run.append(line[pos:])
    flush()
    return tuple(s for s in out if s.text)


def parse(text: str) -> list[Block]:
    """Paragraphs are separated by blank lines; lines starting with '- ' or '* ' are bullets."""
    blocks: list[Block] = []
    para: list[str] = []
    bullets: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block(False, (spans(" ".join(para)),)))
            para.clear()
        if bullets:
            blocks.append(Block(True, tuple(spans(b) for b in bullets)))
            bullets.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith(("- ", "* ")):  # an escaped "\\- " is text, not a bullet
            if para:
                flush()
            bullets.append(line[2:].strip())
        elif bullets and raw[:1].isspace():
            bullets[-1] += " " + line  # continuation of a wrapped bullet
        else:
            if bullets:
                flush()
            para.append(line)
    flush()
    return blocks


def plain(items: tuple[Span, ...]) -> str:
    """Spans as plain text; a link keeps its address in brackets."""
    return "".join(f"{s.text} <{s.url}>" if s.url else s.text for s in items)


def to_plain(text: str, bullet: str = "•") -> str:
    """The whole markup as plain text: bullets become '•' lines, bold loses its stars."""
    parts = []
    for block in parse(text):
        if block.bullets:
            parts.append("\n".join(f"{bullet} {plain(item)}" for item in block.items))
        else:
            parts.append(plain(block.items[0]))
    return "\n\n".join(parts)
