"""TrendBot: turns an Incoming message into a Reply. No I/O; every platform calls this."""
from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from rapidfuzz import fuzz, process

from bot.analysis import Analyzer, clean, fold
from bot.answers import Answers, Decision
from bot.confidence import Confidence, Model
from bot.events import emit
from bot.knowledge import Faq, Knowledge, Trend
from bot.replies import Reply, SourceRef, Suggestion
from bot.index_cache import IndexCache
from bot.retrieval import Document, Field, Index
from bot.store import Store
from bot.surface import Surface
from bot import teaching
from bot.learning import RECORDED_KINDS, Learning
from bot.tips import DailyTips, Spell, tip_reply, trend_spelling

log = logging.getLogger(__name__)

MAX_INPUT = 2000
TOPIC_MATCH = 86  # rapidfuzz ratio a /trend argument needs to name a topic directly
COMMAND_PREFIX = re.compile(r"^\s*/?trend(?:bot)?\b\s*", re.IGNORECASE)


def _no() -> bool:
    return False


@dataclass(frozen=True)
class Incoming:
    """A message from any surface, in the core's terms.

    `is_manager` answers whether the sender may read the report and teach the bot, asked only for
    those commands and for a decline (which then offers "Teach").
    `can_manage` answers whether the sender may change this channel's settings (daily tips); the
    core calls it only for a command that changes them, so a platform whose check costs API calls
    pays only then. `channel_problem` says why the bot could not post here (not a member), or
    None; it is asked before a channel subscribes. `spell` writes a command the way the platform
    does (Discord has /subscribe). `team` is the workspace it came from where one app serves several
    (Slack installed by OAuth), '' elsewhere: what it creates (a subscription, a recorded question)
    belongs to that team, and the report it asks for covers that team only.
    """

    text: str
    platform: str = "console"
    channel_id: str = "console"
    user_id: str = "console"
    thread_id: str | None = None
    is_command: bool = False  # a slash command: text is what follows the command name
    is_mention: bool = False
    is_dm: bool = False
    can_manage: Callable[[], bool] = _no
    channel_problem: Callable[[], str | None] = lambda: None
    spell: Spell = trend_spelling
    is_manager: Callable[[], bool] = _no  # may see the report and teach the bot (the platform's rule)
    team: str = ""


def documents(kb: Knowledge, learned: Mapping[str, tuple[str, ...]] | None = None) -> list[Document]:
    """The index documents for every trend and FAQ, with their field weights; a learned phrasing
    counts like a written alternate of its entry."""
    learned = learned or {}
    docs = []
    for t in kb.trends.values():
        docs.append(Document(t.id, (
            Field((t.title,), 2.0, phrasings=True),
            Field(t.aliases, 1.5, phrasings=True),
            Field((t.id.replace("-", " "),), 0.0, phrasings=True),  # matched as a name only
            Field((t.summary,), 1.0),
            Field(t.points, 0.8),
            Field(t.tools, 0.8),
            Field(learned.get(t.id, ()), 1.5, phrasings=True),
        ), kind="trend"))
    for q in kb.faqs.values():
        trend = kb.trends.get(q.trend)
        docs.append(Document(q.id, (
            Field((q.question,), 2.0, phrasings=True),
            Field(q.alternates + learned.get(q.id, ()), 1.5, phrasings=True),
            Field((q.answer,), 1.0),
            Field((trend.title,) if trend else (), 0.4),
        ), kind="faq"))
    return docs


class TrendBot:
    """The platform-neutral bot: `handle(Incoming) -> Reply`, never raising."""

    def __init__(self, kb: Knowledge, index: Index | None = None, *, rng: random.Random | None = None,
                 confidence: Confidence | None = None, learned: Mapping[str, tuple[str, ...]] | None = None,
                 cache: IndexCache | None = None):
        self.kb = kb
        self.analyzer = Analyzer(kb.aliases)
        learned = dict(learned or {})
        self.learned = learned
        # A phrasing taught for an entry the knowledge no longer has is reported, never fatal.
        self.orphans = {e: p for e, p in learned.items() if e not in kb.trends and e not in kb.faqs}
        self.cache = cache  # where built indexes are kept (None: fitted in memory each time)
        docs = documents(kb, learned)
        self.index = index or self._index(docs)
        self.rng = rng or random.Random()
        self.tips: DailyTips | None = None
        self.learning: Learning | None = None
        self.answers = Answers(kb, self.index, confidence or Confidence(Model.load()), self._sources, self._related,
                               Surface.of(docs), learned)
        # `/trend <name>` accepts a trend's title, id or any of its aliases; a free question that
        # is only a name must be a title, an id or an alias the title itself names ("docker" for
        # "Containers and Docker"), since other aliases name narrower things ("rbac" is an alias
        # of security-by-design but has a FAQ of its own).
        self._topic_names: dict[str, str] = {}
        self._title_names: dict[str, str] = {}
        for t in kb.trends.values():
            title = f" {fold(self.analyzer.expand(t.title))} "
            for name in (t.title, t.id.replace("-", " "), *t.aliases):
                key = fold(self.analyzer.expand(name))
                self._topic_names.setdefault(key, t.id)
                if name in (t.title, t.id.replace("-", " ")) or f" {key} " in title:
                    self._title_names.setdefault(key, t.id)

    def _index(self, docs: list[Document]) -> Index:
        """The index of the documents: from the cache when it has them, else fitted."""
        if self.cache is not None:
            return self.cache.index(docs, self.analyzer)
        from bot import fitting  # scikit-learn: only when fitting

        return fitting.build(docs, self.analyzer)

    def enable_tips(self, store: Store | Callable[[], Store], **options) -> DailyTips:
        """Turn on the daily-tip commands and scheduler over a store (or a function opening one)."""
        self.tips = DailyTips(self.kb, store, self.find_topic, **options)
        return self.tips

    def enable_learning(self, learning: Learning) -> Learning:
        """Record answers and declines, take votes, teach: the learning loop over its store."""
        self.learning = learning
        return learning

    # -- entry points ---------------------------------------------------------------------

    def handle(self, incoming: Incoming) -> Reply:
        """Answer one message: a /trend command or a free question. Each answer is an `answer` event."""
        started = time.perf_counter()
        try:
            reply = self._handle(incoming).reply
        except Exception:  # the caller gets a reply whatever happens; details go to the log
            log.exception("failed to handle a %s message", incoming.platform)
            reply = Reply(
                title="Something went wrong",
                text="I couldn't answer that because of a problem on my side. Please try again.",
                answered=False, kind="error", private=True,
            )
        if self.learning is not None and reply.kind in RECORDED_KINDS:
            reply = self._recorded(incoming, reply)
        emit("answer", platform=incoming.platform, channel=incoming.channel_id, kind=reply.kind,
             answered=reply.answered, entry_id=reply.entry_id, score=round(reply.score, 4),
             latency_ms=round((time.perf_counter() - started) * 1000, 3), text=incoming.text)
        return reply

    def _recorded(self, incoming: Incoming, reply: Reply) -> Reply:
        """The reply with the id its feedback buttons name, and for a manager a "Teach" on a decline."""
        try:
            asked_id = self.learning.record(incoming.platform, incoming.channel_id, clean(incoming.text),
                                            reply.entry_id, reply.answered, reply.score, team=incoming.team)
        except Exception as exc:  # the store failing must not cost the answer
            log.warning("could not record a %s question: %s", incoming.platform, exc)
            return reply
        teach = ""
        if not reply.answered and teaching.safe_check(incoming.is_manager):
            teach = clean(incoming.text)[:teaching.TEACH_LIMIT]
        return replace(reply, asked_id=asked_id if reply.answered else None, teach=teach)

    def explain(self, incoming: Incoming) -> Decision:
        """Like handle, but also returns how the index read the question (for --explain)."""
        return self._handle(incoming)

    def _handle(self, incoming: Incoming) -> Decision:
        text = clean(incoming.text or "")
        if len(text) > MAX_INPUT:
            return Decision(self.too_long(len(text)), None)
        command = incoming.is_command
        m = COMMAND_PREFIX.match(text)
        if m and (command or text.lstrip().startswith("/") or m.end() == len(text) or _is_keyword(text[m.end():])):
            text, command = text[m.end():], True
        if command or text.strip(" ?!.").lower() in _BARE:  # a bare "help" or "tip" is the command
            return self._command(text.strip() if command else text.strip(" ?!."), incoming)
        if not text:
            return Decision(self.help(incoming.spell), None)
        return self.answer(text)

    def _command(self, arg: str, incoming: Incoming) -> Decision:
        word = arg.lower()
        verb, *args = arg.split() or [""]
        if verb.lower() in SUBSCRIPTION_VERBS:
            if self.tips is None:
                return Decision(Reply(title="Daily tips are off", answered=False, kind="error", private=True,
                                      text="This trendbot runs without a store, so it can't keep subscriptions."), None)
            return Decision(self.tips.command(verb.lower(), args, incoming.platform, incoming.channel_id,
                                              incoming.can_manage, incoming.spell, incoming.channel_problem,
                                              team=incoming.team), None)
        if not word:  # a bare /trend, on every surface: how to use it
            return Decision(self.help(incoming.spell), None)
        if word in TOPICS_WORDS:
            return Decision(self.topics(), None)
        if word in HELP_WORDS:
            return Decision(self.help(incoming.spell), None)
        if word in TIP_WORDS:
            return Decision(self.tip(), None)
        if word in SOURCES_WORDS:
            return Decision(self.source_list(), None)
        if verb.lower() in MORE_WORDS:
            return Decision(self.more(args[0] if args else ""), None)
        if verb.lower() in LEARNING_VERBS:
            return Decision(self.learning_command(verb.lower(), arg.split(None, 1)[1] if args else "", incoming), None)
        if word in self.kb.faqs:  # a suggestion button names an entry by id
            return Decision(self.entry_reply(word), None)
        trend = self.find_topic(arg)
        if trend is not None:
            return Decision(self.trend_card(trend), None)
        return self.answer(arg)

    # -- answers --------------------------------------------------------------------------

    def answer(self, question: str) -> Decision:
        """Answer a free question from the index, or decline with suggestions.

        A question that is just a topic's name ("serverless", "k8s?", "mircoservices") gets
        that topic's summary with "More" for the card (`/trend <topic>` shows the card at once).
        """
        trend = self.find_topic(question, self._title_names)
        if trend is None:
            return self.answers.answer(question)
        results = self.index.search(question)
        # A near miss of a topic's name that is word for word a FAQ's question or alternate is that
        # FAQ's ("aws monitoring" is cloud monitoring's, not the AI-monitoring topic's).
        if self._topic_key(question) in self._title_names or self.answers.phrased(question, results) is None:
            return Decision(self.answers.short_reply(trend.id, results, 1.0), None)
        return self.answers.answer(question, results)

    def learning_command(self, verb: str, rest: str, incoming: Incoming) -> Reply:
        """`good`/`bad ID` (a vote), `report` and `teach ENTRY_ID QUESTION` (managers only)."""
        return teaching.command(self, verb, rest, incoming)

    def teach_reply(self, entry_id: str, question: str, by: str = "") -> Reply:
        """Teach `question` as a phrasing of an entry, and say so (or what is wrong)."""
        return teaching.teach(self, entry_id, question, by)

    def report(self, days: float, top: int = 10, team: str | None = None):
        """The learning loop's report (of one team, when given), with the closest entries of each unanswered question."""
        return teaching.report(self, days, top, team)

    def more(self, entry_id: str) -> Reply:
        """The whole entry behind a short answer: what "More" shows."""
        if entry_id in self.kb.trends or entry_id in self.kb.faqs:
            return self.entry_reply(entry_id)
        return Reply(title="Nothing more to show", answered=False, kind="error", private=True,
                     text="Ask a question first; `/trend more` then shows the whole answer.")

    def entry_reply(self, entry_id: str, score: float = 1.0) -> Reply:
        """The whole reply for one trend or FAQ entry (a topic card, or the full answer)."""
        if entry_id in self.kb.trends:
            return self.trend_card(self.kb.trends[entry_id], score)
        return self.faq_reply(self.kb.faqs[entry_id], score)

    def trend_card(self, t: Trend, score: float = 1.0) -> Reply:
        """The card `/trend <topic>` shows."""
        body = [t.summary, "\n".join(f"- {p}" for p in t.points)]
        if t.tools:
            body.append("**Tools:** " + ", ".join(t.tools))
        return Reply(
            title=t.title, text="\n\n".join(body), answered=True, kind="trend",
            sources=self._sources(t.sources), suggestions=self._related(t.related),
            score=score, entry_id=t.id, as_of=self.kb.as_of(t.sources),
        )

    def faq_reply(self, q: Faq, score: float = 1.0) -> Reply:
        """The reply for a FAQ entry."""
        trend = self.kb.trends.get(q.trend)
        return Reply(
            title=q.question, text=q.answer, answered=True, kind="answer",
            sources=self._sources(q.sources), suggestions=self._related((q.trend,) if trend else ()),
            score=score, entry_id=q.id, as_of=self.kb.as_of(q.sources),
        )

    # -- commands ---------------------------------------------------------------------------

    def find_topic(self, name: str, names: dict[str, str] | None = None) -> Trend | None:
        """The trend a /trend argument names (fuzzy on titles, ids and aliases), if any."""
        names = self._topic_names if names is None else names
        key = self._topic_key(name)
        if not key:
            return None
        if key in names:
            return self.kb.trends[names[key]]
        found = process.extractOne(key, names.keys(), scorer=fuzz.ratio, score_cutoff=TOPIC_MATCH)
        return self.kb.trends[names[found[0]]] if found else None

    def _topic_key(self, name: str) -> str:
        """How a topic name is looked up: expanded, without trailing punctuation."""
        return self.analyzer.expand(name).strip(" ?!.")

    def topics(self) -> Reply:
        """The list of trend topics."""
        lines = [f"- **{t.title}**: `/trend {t.id}`" for t in self.kb.trends.values()]
        return Reply(
            title="Topics I know", answered=True, kind="topics",
            text="Ask me anything about these, or type `/trend <topic>` for a topic card.\n\n" + "\n".join(lines),
        )

    def help(self, spell: Spell = trend_spelling) -> Reply:
        """How to use the bot, with the daily-tip commands in the platform's own form."""
        subscribe, unsubscribe, subscription = spell("subscribe"), spell("unsubscribe"), spell("subscription")
        example = spell("subscribe", "09:00", "Europe/Berlin", "serverless")
        text = (
            "I answer questions about backend-development trends from a curated, cited knowledge base.\n\n"
            "- Ask a question: \"is serverless cheaper?\", \"k8s vs plain docker?\", \"what are devs paid?\"\n"
            "- `/trend <topic>`: a topic card, e.g. `/trend serverless`\n"
            "- `/trend more`: the whole answer behind a short one\n"
            "- `/trend topics`: every topic I know\n"
            "- `/trend tip`: a random backend tip\n"
            "- `/trend sources`: the articles my answers come from\n"
            f"- `{subscribe}`: a daily tip in this channel (e.g. `{example}`); "
            f"`{subscription}` shows it, `{unsubscribe}` stops it\n"
            "- `/trend help`: this message"
        )
        return Reply(title="trendbot help", text=text, answered=False, kind="help", private=True)

    def tip(self) -> Reply:
        """A random tip."""
        if not self.kb.tips:
            return Reply(title="No tips yet", text="The knowledge base has no tips.", answered=False, kind="tip", private=True)
        return tip_reply(self.kb, self.kb.tips[self.rng.choice(sorted(self.kb.tips))])

    def source_list(self) -> Reply:
        """The articles the knowledge comes from."""
        lines = []
        for s in self.kb.sources.values():
            title = f"[{s.title}]({s.url})" if s.url else s.title
            lines.append(f"- {title}: {s.publisher}, {s.when}")
        return Reply(
            title="Where my answers come from", answered=True, kind="sources",
            text="Every answer cites one or more of these articles:\n\n" + "\n".join(lines),
        )

    def too_long(self, length: int) -> Reply:
        """Refusal for input over MAX_INPUT characters."""
        return Reply(
            title="That message is too long",
            text=f"Your message has {length:,} characters; I read up to {MAX_INPUT:,}. "
                 "Please ask a shorter question.",
            answered=False, kind="error", private=True,
        )

    # -- helpers --------------------------------------------------------------------------

    def _sources(self, ids: tuple[str, ...]) -> tuple[SourceRef, ...]:
        return tuple(
            SourceRef(s.title, s.url, s.when, s.publisher, s.name) for s in (self.kb.sources[i] for i in ids)
        )

    def _related(self, trend_ids: tuple[str, ...]) -> tuple[Suggestion, ...]:
        out = []
        for tid in trend_ids[:3]:
            t = self.kb.trends.get(tid)
            if t is not None:
                out.append(Suggestion(t.title, t.id))
        return tuple(out)


# The /trend subcommands; anything else after /trend is a topic or a question.
TOPICS_WORDS = ("topics", "list", "ls")
HELP_WORDS = ("help", "?", "h", "usage")
TIP_WORDS = ("tip", "tips", "random")
SOURCES_WORDS = ("sources", "source", "about")
SUBSCRIPTION_VERBS = ("subscribe", "unsubscribe", "subscription")
MORE_WORDS = ("more",)
LEARNING_VERBS = ("good", "bad", "report", "teach")
_KEYWORDS = frozenset(TOPICS_WORDS + HELP_WORDS + TIP_WORDS + SOURCES_WORDS + SUBSCRIPTION_VERBS + MORE_WORDS
                      + LEARNING_VERBS) - {""}
_BARE = frozenset(("topics", "help", "tip", "sources", "more"))  # these alone are the command, anywhere


def _is_keyword(rest: str) -> bool:
    """Whether the text after a bare 'trend' is a subcommand ('trend tip'), not a question."""
    return rest.strip().lower() in _KEYWORDS
