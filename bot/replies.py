"""Reply: the one thing the core hands to adapters, and its plain-text form."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from bot import markup


@dataclass(frozen=True)
class SourceRef:
    """A cited article as a reply shows it."""

    title: str
    url: str
    date: str  # as people read it: "Feb 2025"
    publisher: str = ""
    name: str = ""  # short name answers use: "Nucamp"


@dataclass(frozen=True)
class Suggestion:
    """A topic the user may want instead (did-you-mean or related); `query` is what to ask."""

    label: str
    query: str


@dataclass(frozen=True)
class Reply:
    """A platform-neutral answer. `text` uses the markup in bot.markup."""

    title: str
    text: str
    answered: bool
    kind: str  # answer | trend | topics | tip | help | sources | decline | error
    sources: tuple[SourceRef, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()
    score: float = 0.0
    entry_id: str | None = None
    private: bool = False
    as_of: str = ""  # "Feb 2025": the date the knowledge behind this reply is current as of

    def to_dict(self) -> dict:
        """JSON-ready form, including the whole reply as plain text."""
        d = asdict(self)
        d["score"] = round(self.score, 4)
        d["suggestions"] = [s.label for s in self.suggestions]
        d["text"] = to_text(self)
        d["markup"] = self.text
        return d


def sources_line(reply: Reply) -> str:
    """'Sources: Nucamp (Jan 2025) <url>; ... · as of Feb 2025', or ''. Titles are in `sources`."""
    if not reply.sources:
        return ""
    cited = []
    for s in reply.sources:
        item = f"{s.name or s.title} ({s.date})" if s.date else (s.name or s.title)
        cited.append(f"{item} <{s.url}>" if s.url else item)
    label = "Source" if len(cited) == 1 else "Sources"
    line = f"{label}: " + "; ".join(cited)
    if reply.as_of:
        line += f" · as of {reply.as_of}"
    return line


def suggestions_line(reply: Reply) -> str:
    """'Did you mean: a, b, c' for declines, 'Related: ...' for answers, or ''."""
    if not reply.suggestions:
        return ""
    label = "Related" if reply.answered else "Did you mean"
    return f"{label}: " + ", ".join(s.label for s in reply.suggestions)


def to_text(reply: Reply) -> str:
    """The whole reply as a user reads it, in plain text."""
    parts = [reply.title, markup.to_plain(reply.text)]
    parts += [line for line in (sources_line(reply), suggestions_line(reply)) if line]
    return "\n\n".join(p for p in parts if p)
