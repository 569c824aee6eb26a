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
    kind: str  # answer | trend | topics | tip | help | sources | decline | smalltalk | feedback | teach | report | error
    sources: tuple[SourceRef, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()
    score: float = 0.0
    entry_id: str | None = None
    private: bool = False
    as_of: str = ""  # "Feb 2025": the date the knowledge behind this reply is current as of
    more: bool = False  # a short answer: `/trend more <entry_id>` (a "More" control) shows the whole entry
    entries: tuple[str, ...] = ()  # every entry a two-part answer draws on (entry_id is the first)
    asked_id: int | None = None  # a recorded answer: "Helpful" / "Not helpful" (`/trend good|bad ID`) rate it
    teach: str = ""  # a decline shown to a manager: the question a "Teach" control offers to teach

    def to_dict(self) -> dict:
        """JSON-ready form, including the whole reply as plain text."""
        d = asdict(self)
        d["score"] = round(self.score, 4)
        d["suggestions"] = [s.label for s in self.suggestions]
        d["text"] = to_text(self)
        d["markup"] = self.text
        return d


def sources_line(reply: Reply) -> str:
    """'Sources: Nucamp, Jan 2025 · JetThoughts, Feb 2025', or ''. Titles and URLs are in `sources`;
    rich renderers make each name the link."""
    if not reply.sources:
        return ""
    label = "Source" if len(reply.sources) == 1 else "Sources"
    return f"{label}: " + SOURCE_SEPARATOR.join(source_label(s) for s in reply.sources)


SOURCE_SEPARATOR = " · "


def source_label(source: SourceRef) -> str:
    """'Nucamp, Jan 2025': the short name and the month the article is dated."""
    name = source.name or source.title
    return f"{name}, {source.date}" if source.date else name



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
