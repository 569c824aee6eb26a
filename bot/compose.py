"""Short answers: an entry's pieces (sentences and bullets) chosen and ordered by what was asked.

An entry's text is cut into units: the sentences of its opening paragraph count as one unit, each
later paragraph sentence and each bullet as one more. A question's answer leads with the unit
that holds most of what the question asks for (the figure it names, the tool it asks about),
then keeps at most `MAX_BULLETS` more units, the most relevant ones in their original order.
Whatever is left out is what "More" shows.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bot import markup

MAX_BULLETS = 3
BODY_BUDGET = 700  # characters of answer text a short reply stays within: room for the lead and three bullets of
# ordinary length (a tighter cut drops the bullet holding what was asked: `trendbot eval`), none for giant ones
LEAD_MARGIN = 0.12  # how much more of the question a later unit must hold to lead instead
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9*\"'(])")


@dataclass(frozen=True)
class Unit:
    """One piece of an entry's text, in markup, with the index terms it holds."""

    text: str
    terms: frozenset[str]


@dataclass(frozen=True)
class Short:
    """A short answer: the lead, the kept bullets, and whether anything was left out."""

    lead: str
    bullets: tuple[str, ...]
    cut: bool

    def markup(self) -> str:
        """The short answer as markup: the lead paragraph, then the bullets."""
        parts = [self.lead]
        if self.bullets:
            parts.append("\n".join(f"- {b}" for b in self.bullets))
        return "\n\n".join(parts)


def units(texts: Sequence[str], terms: Callable[[str], list[str]]) -> tuple[Unit, ...]:
    """The units of an entry: `texts` are its answer (or summary) followed by its points."""
    out: list[Unit] = []
    first = True
    for text in texts:
        for block in markup.parse(text):
            items = [_markup(item) for item in block.items]
            if not block.bullets:
                items = [items[0]] if first else _SENTENCE.split(items[0])
                first = False
            out.extend(Unit(i, frozenset(terms(_plain(i)))) for i in items if i.strip())
    return tuple(out)


def shorten(entry_units: Sequence[Unit], weights: Mapping[str, float], subject: frozenset = frozenset(),
            max_bullets: int = MAX_BULLETS, budget: int = BODY_BUDGET, fill: bool = True) -> Short:
    """Lead with the unit that answers most of the question, then the most relevant others.

    Terms of the entry's own question or title (`subject`) are left out of the relevance: the
    opening answers those by construction, so only what the question asks beyond them ("google"
    in "google cloud market share", for the market-share entry) can move a later unit first.
    With `fill` off, only units that hold something the question asks are kept after the lead
    (a topic card's points), and a card's opening is dropped when a point leads.
    """
    if not entry_units:
        return Short("", (), False)
    relevance = [sum(weights.get(t, 0.0) for t in u.terms if t not in subject) for u in entry_units]
    best = max(range(len(entry_units)), key=lambda i: (relevance[i], -i))
    lead = best if relevance[best] >= relevance[0] + LEAD_MARGIN else 0
    rest = [i for i in range(len(entry_units)) if i != lead]
    if not fill:
        rest = [i for i in rest if relevance[i] > 0 and i != 0]
    # The most relevant of the rest, shown in their original order; ties keep the earlier one.
    chosen = sorted(sorted(rest, key=lambda i: (-relevance[i], i))[:max_bullets])
    while chosen and len(entry_units[lead].text) + sum(len(entry_units[i].text) + 3 for i in chosen) > budget:
        chosen.remove(min(chosen, key=lambda i: (relevance[i], -i)))
    bullets = tuple(_as_bullet(entry_units[i].text) for i in chosen)
    return Short(entry_units[lead].text, bullets, len(chosen) < len(entry_units) - 1)


def _as_bullet(text: str) -> str:
    return " ".join(text.split())


def _markup(items: tuple[markup.Span, ...]) -> str:
    """Spans back to markup text."""
    out = []
    for s in items:
        if s.url:
            out.append(f"[{s.text}]({s.url})")
        elif s.bold:
            out.append(f"**{s.text}**")
        elif s.code:
            out.append(f"`{s.text}`")
        else:
            out.append(s.text)
    return "".join(out)


def _plain(text: str) -> str:
    return markup.plain(markup.spans(text))
