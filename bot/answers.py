"""Free questions: find the entry, decide whether to trust it, and write a short answer or decline.

The flow for one question: small talk and off-topic requests are recognised first; a question
that is only a topic's name gets that topic's card; anything else is searched, and the match's
features go to the confidence model (bot/confidence.py), which answers or declines. A question
with two parts ("salary and remote stats?") whose parts two different entries answer gets both.
A decline names what the question asked that the knowledge doesn't hold, and offers the closest
entry as a button.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot import compose, smalltalk
from bot.analysis import fold
from bot.confidence import Confidence, Judgement, Similar, features
from bot.knowledge import Faq, Knowledge, Trend
from bot.replies import Reply, SourceRef, Suggestion
from bot.retrieval import Index, Results
from bot.surface import Surface

SUGGEST_FLOOR = 0.03  # hits below this are not "related" enough to suggest
PART_HOLD = 0.6  # share of a part's weight the whole question's entry must hold to answer that part too
# Where a message joins two questions: "x and y", "x + y", "x? y", "x; also y", "two things: x, y".
_JOINS = re.compile(r"\s*(?:\?+\s+|;\s*|\s\+\s|\s&\s|,?\s+(?:and also|and|also|plus|as well as)\s+)", re.IGNORECASE)


def _plain_latin(text: str) -> bool:
    """Whether the words of a text are all it says: no mention or markup, and no letter, number or
    symbol that folding leaves outside ASCII (the words would silently drop it)."""
    if "@" in text or "<" in text:
        return False
    folded = fold(text)
    return folded.isascii() or not any(unicodedata.category(c)[0] in "LNS" for c in folded if not c.isascii())


@dataclass(frozen=True)
class Decision:
    """How a question was answered: the reply, what the index made of it, and the judgement."""

    reply: Reply
    results: Results | None
    judgement: Judgement | None = None


class Answers:
    """Answers free questions from one knowledge base and its index."""

    def __init__(self, kb: Knowledge, index: Index, confidence: Confidence,
                 sources: Callable[[tuple[str, ...]], tuple[SourceRef, ...]],
                 related: Callable[[tuple[str, ...]], tuple[Suggestion, ...]], surface: Surface,
                 taught: Mapping[str, tuple[str, ...]] | None = None):
        self.kb = kb
        self.taught = dict(taught or {})  # entry id -> the phrasings managers taught for it
        self.surface = surface
        self.index = index
        self.confidence = confidence
        self._sources = sources
        self._related = related
        self._units: dict[str, tuple[compose.Unit, ...]] = {}
        self._years: dict[str, frozenset[str]] = {}
        self._asked: dict[str, frozenset[tuple[str, ...]]] = {}

    def dated(self, entry_id: str) -> frozenset[str]:
        """The years an entry is current as of: those its sources were published in."""
        years = self._years.get(entry_id)
        if years is None:
            entry = self.kb.trends.get(entry_id) or self.kb.faqs.get(entry_id)
            ids = entry.sources if entry is not None else ()
            years = frozenset(self.kb.sources[i].date[:4] for i in ids if i in self.kb.sources)
            self._years[entry_id] = years
        return years

    def similar(self, question: str) -> Similar:
        """The question's closeness to each entry's phrasings as typed."""
        return self.surface.similarity(question)

    # -- the decision -------------------------------------------------------------------------

    def answer(self, question: str, results: Results | None = None) -> Decision:
        """Answer one free question, or decline it (`results`: its search, when already made)."""
        kind = smalltalk.classify(question)
        if kind is not None:
            return Decision(self.small_talk(kind), None)
        if results is None:
            results = self.index.search(question)
        similar = self.similar(question)
        judgement = self.confidence.judge(self.index, results, self.dated, similar)
        phrased = self.phrased(question, results)
        if phrased is not None:
            if not (judgement.answer and judgement.entry_id == results.hits[phrased].entry_id):
                judgement = self._judged(results, phrased, similar, judgement.needed)
            return Decision(self.short_reply(judgement.entry_id, results, judgement.probability), results, judgement)
        parts = self._two_parts(question, results, judgement)
        if parts is not None:
            return Decision(self.both(parts), results, judgement)
        if judgement.answer:
            return Decision(self.short_reply(judgement.entry_id, results, judgement.probability), results, judgement)
        if not results.words:
            return Decision(self.small_talk("greeting"), results, judgement)
        return Decision(self.decline(results, judgement), results, judgement)

    def phrased(self, question: str, results: Results) -> int | None:
        """Where among the hits is the one entry that has the question, word for word, as a way of asking
        for it: a FAQ's question or alternate, or a phrasing taught for the entry. The knowledge says
        so: it is answered from that entry, as one question, whatever the model makes of it. Every
        word counts, stop words too ("when should we ..." is not "should we ..."), after aliases and
        folding; a question whose words had to be corrected is never one, nor one holding what the
        words leave out (a mention, a letter or symbol outside the Latin alphabet: "... earn 🇮🇳?"),
        nor a bare title or alias (a topic's name is not a narrower FAQ's question)."""
        if results.corrections or not results.words or not _plain_latin(question):
            return None
        asked = self.index.analyzer.typed(question)
        found = [rank for rank, h in enumerate(results.hits) if asked in self._said(h.entry_id)]
        return found[0] if len(found) == 1 else None

    def _said(self, entry_id: str) -> frozenset[tuple[str, ...]]:
        """The words of each way of asking for an entry, read once."""
        said = self._asked.get(entry_id)
        if said is None:
            faq = self.kb.faqs.get(entry_id)
            texts = ((faq.question, *faq.alternates) if faq else ()) + tuple(self.taught.get(entry_id, ()))
            said = frozenset(self.index.analyzer.typed(t) for t in texts)
            self._asked[entry_id] = said
        return said

    def _judged(self, results: Results, rank: int, similar: Similar, needed: float) -> Judgement:
        """The judgement of an answer from the hit at `rank` that the question is a phrasing of: its own
        features and probability, answered whatever they are."""
        hit = results.hits[rank]
        f = features(self.index, results, hit, rank, self.dated, similar)
        return Judgement(True, hit.entry_id, self.confidence.probability(f), needed, f, phrased=True)

    def _two_parts(self, question: str, whole: Results, judgement: Judgement) -> list[tuple[str, Results, float]] | None:
        """The parts of a two-part question that different entries answer, if it is one."""
        pieces = [p for p in _JOINS.split(question) if p and p.strip(" ?!.,")]
        if len(pieces) < 2:
            return None
        found: list[tuple[str, Results, float]] = []
        pieces = pieces[:3]
        for n, piece in enumerate(pieces):
            if len(found) + len(pieces) - n < 2:
                break  # the pieces left can no longer make two answered parts
            results = self.index.search(piece)
            part = self.confidence.judge(self.index, results, self.dated, self.similar(piece))
            if part.answer and all(part.entry_id != f[0] for f in found):
                found.append((part.entry_id, results, part.probability))
        if len(found) < 2:
            return None
        if judgement.answer and all(self.index.holds(judgement.entry_id, r.terms) >= PART_HOLD for _, r, _ in found):
            return None  # one entry answers every part ("python and node for apis": the comparison)
        return found[:2]

    # -- replies ------------------------------------------------------------------------------

    def short_reply(self, entry_id: str, results: Results, score: float) -> Reply:
        """The short answer for one entry: what was asked first, and "More" when there is more."""
        trend = entry_id in self.kb.trends
        entry = self.kb.trends[entry_id] if trend else self.kb.faqs[entry_id]
        short = compose.shorten(self.units(entry_id), dict(results.terms), self.subject(entry_id),
                                max_bullets=2 if trend else compose.MAX_BULLETS, fill=not trend)
        return Reply(
            title=entry.title if trend else entry.question, text=short.markup(), answered=True,
            kind="trend" if trend else "answer", sources=self._sources(self.cited(entry.sources, short.markup())),
            suggestions=self._related(((entry.related[:2] if trend else (entry.trend,)))),
            score=score, entry_id=entry_id, as_of=self.kb.as_of(entry.sources),
            more=short.cut or trend,
        )

    def both(self, parts: list[tuple[str, Results, float]]) -> Reply:
        """One reply answering two parts briefly, each under its entry's title."""
        paragraphs, source_ids, entries = [], [], []
        for entry_id, results, _ in parts:
            entry = self.kb.trends.get(entry_id) or self.kb.faqs[entry_id]
            title = entry.title if isinstance(entry, Trend) else entry.question
            short = compose.shorten(self.units(entry_id), dict(results.terms), self.subject(entry_id),
                                    max_bullets=1, budget=260)
            body = short.lead + ("".join(f" {b}" for b in short.bullets))
            paragraphs.append(f"**{title}** {body}")
            source_ids += [s for s in entry.sources if s not in source_ids]
            entries.append(entry_id)
        first = parts[0][0]
        return Reply(
            title="Two answers", text="\n\n".join(paragraphs), answered=True, kind="answer",
            sources=self._sources(tuple(source_ids)),
            suggestions=tuple(Suggestion(f"More: {self.label(e)}", e) for e in entries),
            score=min(p for _, _, p in parts), entry_id=first, as_of=self.kb.as_of(tuple(source_ids)),
            entries=tuple(entries),
        )

    def decline(self, results: Results, judgement: Judgement) -> Reply:
        """No confident answer: say what is missing, and offer the closest topics."""
        suggestions: list[Suggestion] = []
        closest = results.best
        missing = judgement.missing
        if closest is not None and missing and closest.score >= 2 * SUGGEST_FLOOR:
            # The question names something the knowledge doesn't hold, next to something it does.
            named = ", ".join(f"“{w}”" for w in missing[:3])
            text = (f"My sources say nothing about {named}, so I'd rather not guess. "
                    f"The closest I have is below.")
            suggestions.append(Suggestion(self.label(closest.entry_id), closest.entry_id))
        else:
            text = "I don't have a good answer to that in my backend-trends knowledge, and I'd rather not guess."
        trend_ids: list[str] = []
        for hit in results.hits:
            if hit.score < SUGGEST_FLOOR:
                break
            trend_ids.append(hit.entry_id if hit.entry_id in self.kb.trends else self.kb.faqs[hit.entry_id].trend)
        related = bool(trend_ids)
        if not related:
            trend_ids = [t for t in ("backend-trends-overview", "serverless", "salaries") if t in self.kb.trends]
            trend_ids = trend_ids or list(self.kb.trends)[:3]
        for s in self._related(tuple(dict.fromkeys(trend_ids))):
            if len(suggestions) < 3 and all(s.query != x.query for x in suggestions):
                suggestions.append(s)
        if not missing:
            text += (" These topics look closest" if related else " Some topics I can talk about are below")
            text += "; type `/trend topics` for the full list."
        return Reply(
            title="No good answer", text=text, answered=False, kind="decline",
            suggestions=tuple(suggestions), score=closest.score if closest else 0.0, private=True,
        )

    def small_talk(self, kind: str) -> Reply:
        """A short friendly reply to small talk; off-topic requests are declines."""
        off_topic = kind in ("arithmetic", "clock", "weather")
        suggestions = self._related(tuple(t for t in ("backend-trends-overview", "serverless", "salaries")
                                          if t in self.kb.trends)) if off_topic else ()
        return Reply(
            title="No good answer" if off_topic else "trendbot", text=smalltalk.REPLIES[kind], answered=False,
            kind="decline" if off_topic else "smalltalk", suggestions=suggestions, private=True,
        )

    # -- entries ------------------------------------------------------------------------------

    def units(self, entry_id: str) -> tuple[compose.Unit, ...]:
        """An entry's answer pieces, cut once and kept."""
        found = self._units.get(entry_id)
        if found is None:
            if entry_id in self.kb.trends:
                t = self.kb.trends[entry_id]
                texts = [t.summary, "\n".join(f"- {p}" for p in t.points)]
            else:
                texts = [self.kb.faqs[entry_id].answer]
            found = self._units[entry_id] = compose.units(texts, self.index.columns)
        return found

    def cited(self, source_ids: tuple[str, ...], text: str) -> tuple[str, ...]:
        """The entry's sources that the shown text names ("... (Nucamp)"), or all of them when it names none."""
        folded = text.lower()
        named = tuple(s for s in source_ids if self.kb.sources[s].name.lower() in folded)
        return named or source_ids

    def subject(self, entry_id: str) -> frozenset[int]:
        """The term columns of an entry's own question (FAQ) or title (trend)."""
        return frozenset(self.index.columns(self.label(entry_id)))

    def label(self, entry_id: str) -> str:
        """An entry as a person reads it: a trend's title, a FAQ's question."""
        entry: Trend | Faq = self.kb.trends.get(entry_id) or self.kb.faqs[entry_id]
        return entry.title if isinstance(entry, Trend) else entry.question
