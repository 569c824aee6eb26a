"""The learning loop's chat commands: votes, the report, and teaching (bot/learning.py keeps the data)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from bot.analysis import clean, stem
from bot.learning import Report
from bot.markup import literal
from bot.replies import Reply


class Asker(Protocol):
    """What these commands read of a message (bot.core.Incoming has it)."""
    platform: str
    user_id: str
    is_manager: Callable[[], bool]
    team: str


class TrendBot(Protocol):
    """What these commands use of the bot (bot.core.TrendBot has it); kept here so core imports this, not the reverse."""
    learning: Any
    kb: Any
    answers: Any
    index: Any
    analyzer: Any

TEACH_LIMIT = 300  # characters of a question a "Teach" control carries, and of a taught phrasing


def command(bot: TrendBot, verb: str, rest: str, incoming: Asker) -> Reply:
    """`good`/`bad ID` (a vote), `report` and `teach ENTRY_ID QUESTION` (managers only)."""
    if bot.learning is None:
        return _private("Learning is off", "This trendbot runs without a store, so it keeps no votes, "
                                           "report or taught phrasings.")
    if verb in ("good", "bad"):
        if not rest.strip().isdigit():
            return _private("Which answer?", "Rate an answer with the Helpful or Not helpful under it "
                                             "(in a terminal, `/trend good` or `/trend bad` right after it).")
        outcome = bot.learning.vote(incoming.platform, incoming.user_id, int(rest), verb == "good")
        if outcome == "unknown":
            return _private("That answer is gone", "It is too old to rate now; thanks all the same.")
        text = {"new": "Thanks: noted.", "changed": "Thanks: your vote is changed.",
                "same": "You rated it that way already."}[outcome]
        return Reply(title="Thanks for the feedback", text=text, answered=False, kind="feedback", private=True)
    if not safe_check(incoming.is_manager):
        return _private("Not allowed here", "Only people who manage trendbot here can see the report and "
                                            "teach it; ask a workspace or server admin.")
    if verb == "report":  # a manager of one workspace sees that workspace's questions only
        return report_reply(bot, 7, team=incoming.team or None)
    entry_id, _, question = rest.strip().partition(" ")
    return teach(bot, entry_id.lower(), question, by=bot.learning.voter(incoming.platform, incoming.user_id))


def teach(bot: TrendBot, entry_id: str, question: str, by: str = "") -> Reply:
    """Teach `question` as a phrasing of an entry, and say so (or what is wrong)."""
    if entry_id not in bot.kb.faqs and entry_id not in bot.kb.trends:
        return _private("Unknown entry", f"There is no entry {literal(entry_id[:60])!r}. Pick one of the "
                                         "closest entries offered under the question, or see `/trend topics`.")
    question = clean(question)
    if not question:
        return _private("What should it learn?", "Give the question too: `/trend teach ENTRY_ID the question`.")
    if len(question) > TEACH_LIMIT:
        return _private("That question is too long", f"A taught phrasing may be up to {TEACH_LIMIT} characters.")
    added = bot.learning.teach(entry_id, question, by)
    label = bot.answers.label(entry_id)
    text = (f"From now on \"{literal(question)}\" is answered with **{literal(label)}**."
            if added else f"\"{literal(question)}\" was taught to **{literal(label)}** already.")
    return Reply(title="Taught" if added else "Known already", text=text, answered=False, kind="teach",
                 private=True)


def report_reply(bot: TrendBot, days: int, team: str | None = None) -> Reply:
    """The week's top five unanswered questions and the most down-voted answers (of one team, when
    given), for managers."""
    week = report(bot, days, top=5, team=team)
    lines = [f"{week.questions} questions in the last {days} days, {week.answer_rate:.0%} answered."]
    if week.unanswered:
        lines.append("**Asked, not answered:**\n" + "\n".join(
            f"- {literal(u.question)} ({u.count}×); closest: " + (", ".join(literal(e) for e, _, _ in u.closest[:2])
                                                                 or "none") for u in week.unanswered))
    elif not week.texts_kept:
        lines.append("Question texts are not kept here (TRENDBOT_KEEP_QUESTIONS=false), so only counts show.")
    disliked = [f for f in week.feedback if f.not_helpful]
    if disliked:
        lines.append("**Rated not helpful:**\n" + "\n".join(
            f"- {literal(f.title)}: {f.not_helpful} not helpful, {f.helpful} helpful" for f in disliked))
    lines.append("Teach one: `/trend teach ENTRY_ID the question`.")
    return Reply(title=f"trendbot report: the last {days} days", text="\n\n".join(lines), answered=False,
                 kind="report", private=True)


def report(bot: TrendBot, days: float, top: int = 10, team: str | None = None) -> Report:
    """The learning loop's report (of one team, when given), with the closest entries of each unanswered question."""
    def closest(question: str) -> list[tuple[str, str, float]]:
        return [(h.entry_id, bot.answers.label(h.entry_id), h.score) for h in bot.index.search(question).hits[:3]]

    return bot.learning.report(days, lambda q: [stem(w) for w in bot.analyzer.words(q)], closest,
                                bot.answers.label, top, team=team)


def _private(title: str, text: str) -> Reply:
    return Reply(title=title, text=text, answered=False, kind="error", private=True)


def safe_check(check: Callable[[], bool]) -> bool:
    """A platform's permission check; one that fails means no."""
    try:
        return bool(check())
    except Exception:
        return False
