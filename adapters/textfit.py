"""Pure text pieces both chat renderers use: styled segments, the sources line, and cutting
text to a limit without splitting a character a person sees as one."""
from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot import markup
from bot.replies import SOURCE_SEPARATOR, Reply


@dataclass(frozen=True)
class Seg:
    """A run of text with one style: plain, bold (b), code (c), a link (a), or raw (markup a
    renderer wrote itself and must not escape)."""

    text: str
    style: str = ""
    url: str = ""


def span_seg(span: markup.Span) -> Seg:
    """A markup span as a segment."""
    if span.url:
        return Seg(span.text, "a", span.url)
    return Seg(span.text, "b" if span.bold else "c" if span.code else "")


def source_lines(reply: Reply) -> list[list[Seg]]:
    """The sources line ("Sources: Nucamp, Jan 2025 · JetThoughts, Feb 2025", each name the link
    to its article) and, for answers, the related-topics line."""
    lines: list[list[Seg]] = []
    if reply.sources:
        segs = [Seg("Source: " if len(reply.sources) == 1 else "Sources: ")]
        for i, s in enumerate(reply.sources):
            if i:
                segs.append(Seg(SOURCE_SEPARATOR))
            name = s.name or s.title
            segs.append(Seg(name, "a", s.url) if s.url else Seg(name))
            if s.date:
                segs.append(Seg(f", {s.date}"))
        lines.append(segs)
    if reply.answered and reply.suggestions:
        lines.append([Seg("Related: " + ", ".join(s.label for s in reply.suggestions))])
    return lines


def split(segs: list[Seg], limit: int, render: Callable[[Seg, bool], str], length: Callable[[str], int], *,
          breaks: str = " \n") -> list[str]:
    """One over-long line as several chunks, each within `limit` and each valid markup on its own.

    `render(seg, at_line_start)` turns a segment into the platform's markup; `length` measures
    it as the platform counts. A link is never split: it starts the next chunk, or, if longer
    than a whole chunk, becomes its label and address as text. Other text is cut between words.
    """
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    queue = list(segs)

    def md(seg: Seg) -> str:
        return render(seg, not current or current[-1].endswith("\n"))

    def flush() -> None:
        nonlocal used
        if current:
            chunks.append("".join(current))
            current.clear()
        used = 0

    while queue:
        seg = queue.pop(0)
        rendered = md(seg)
        if used + length(rendered) <= limit:
            current.append(rendered)
            used += length(rendered)
            continue
        if seg.style == "a":
            if current and length(render(seg, True)) <= limit:
                flush()  # a link is never split: it starts the next chunk
                queue.insert(0, seg)
            else:  # a link longer than a whole chunk: its label and address as text
                queue.insert(0, Seg(f"{seg.text} ({seg.url})"))
            continue
        room = limit - used

        def fits(s: str) -> bool:
            return length(md(replace(seg, text=s))) <= room

        k = fit(seg.text, fits, prefer_space=True, breaks=breaks)
        if k == 0 and not current:  # one "character" longer than a chunk: cut between code points
            k = fit(seg.text, fits, boundaries=False) or 1
        if k:
            current.append(md(replace(seg, text=seg.text[:k].rstrip() or seg.text[:k])))
        flush()
        rest = seg.text[k:].lstrip()
        if rest:
            queue.insert(0, replace(seg, text=rest))
    flush()
    return chunks


def fit(text: str, fits: Callable[[str], bool], *, prefer_space: bool = False, boundaries: bool = True,
        breaks: str = " \n") -> int:
    """The largest cut k such that fits(text[:k]), at a character boundary (0 if none).

    `fits` must be monotone (a shorter prefix never costs more). With prefer_space, a cut after
    the last of `breaks` is taken when it keeps at least half of what fits.
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
        space = max(text.rfind(b, 0, k) for b in breaks)
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
