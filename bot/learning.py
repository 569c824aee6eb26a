"""The learning loop: what people asked and didn't get, what they found useless, and phrasings taught.

Every answer and every decline is a row in the store (the question's text only while
`keep_questions` is on, and only for `retention_days`); votes are one per person per answer,
changeable, the person kept as a keyed hash, never in clear. The report groups unanswered
questions that say the same thing and names the closest entries, so a maintainer can teach one
in a step; a taught phrasing joins its entry's phrasings in the index (bot/core.py `documents`).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from bot.store import Store

log = logging.getLogger(__name__)

RETENTION_DAYS = 90
GROUP_WORD_SIMILARITY = 80  # rapidfuzz ratio at which two content words are one word ("monorepo", "monorep")
GROUP_OVERLAP = 0.5  # two questions are one when the words they share are at least half of all their words:
# "monorepo?" and "how do monorepos work" are one; "ai coding tools for backend" and "tl;dr on backend tools"
# share two words of six and are two; a paragraph that happens to hold a short question's words is its own
GROUP_PREFILTER = 50  # token_set_ratio below which two questions are not compared word by word (half shared
# words score well above it: the sorted intersection plus either rest is close to the other)
RECORDED_KINDS = ("answer", "trend", "decline")


@dataclass(frozen=True)
class Unanswered:
    """A group of declined questions that ask the same thing."""

    question: str  # the most common wording
    count: int
    examples: tuple[str, ...]
    closest: tuple[tuple[str, str, float], ...]  # (entry id, its title, score)


@dataclass(frozen=True)
class Feedback:
    """The votes on one entry."""

    entry_id: str
    title: str
    helpful: int
    not_helpful: int
    questions: tuple[str, ...]  # what was asked where it was voted not helpful


@dataclass(frozen=True)
class Report:
    """What people asked over `days`, what they didn't get, and how they rated the answers."""

    days: int
    questions: int
    answered: int
    unanswered: tuple[Unanswered, ...]
    feedback: tuple[Feedback, ...]
    texts_kept: bool = True

    @property
    def answer_rate(self) -> float:
        """Share of questions answered."""
        return self.answered / self.questions if self.questions else 0.0

    def to_dict(self) -> dict:
        """The report as JSON-ready data (`trendbot report --json`)."""
        return {
            "days": self.days, "questions": self.questions, "answered": self.answered,
            "declined": self.questions - self.answered, "answer_rate": round(self.answer_rate, 4),
            "question_texts_kept": self.texts_kept,
            "unanswered": [{"question": u.question, "count": u.count, "examples": list(u.examples),
                            "closest": [{"entry_id": e, "title": t, "score": round(s, 4)} for e, t, s in u.closest]}
                           for u in self.unanswered],
            "feedback": [{"entry_id": f.entry_id, "title": f.title, "helpful": f.helpful,
                          "not_helpful": f.not_helpful, "questions": list(f.questions)} for f in self.feedback],
        }


@dataclass
class Learning:
    """The learning loop over a store (or a function that opens one, on first use)."""

    store_or_opener: Store | Callable[[], Store]
    keep_questions: bool = True
    retention_days: float = RETENTION_DAYS
    clock: Callable[[], float] = time.time
    _key: bytes | None = field(default=None, repr=False)
    _purged_at: float = float("-inf")

    @property
    def store(self) -> Store:
        """The store, opened on first use when a function was given."""
        if not hasattr(self.store_or_opener, "record_question"):
            self.store_or_opener = self.store_or_opener()
        return self.store_or_opener

    # -- recording ----------------------------------------------------------------------------------

    def record(self, platform: str, channel_id: str, question: str, entry_id: str | None, answered: bool,
               score: float, team: str = "") -> int:
        """One answer or decline (in `team`); returns its id (what "Helpful" / "Not helpful" name)."""
        now = self.clock()
        if now - self._purged_at > 3600:  # the retention purge, at most hourly, on the way
            self.purge(now)
        text = question if self.keep_questions else ""
        return self.store.record_question(platform, channel_id, now, entry_id, answered, score, text, team=team)

    def vote(self, platform: str, user_id: str, asked_id: int, helpful: bool) -> str:
        """One person's vote on one answer: "new", "changed", "same" or "unknown"."""
        return self.store.vote(asked_id, self.voter(platform, user_id), helpful, self.clock())

    def voter(self, platform: str, user_id: str) -> str:
        """A keyed hash of the person: the same person gets one vote per answer, and no id is stored."""
        if self._key is None:
            self._key = bytes.fromhex(self.store.meta("voter_key", lambda: secrets.token_hex(32)))
        return hmac.new(self._key, f"{platform}:{user_id}".encode(), hashlib.sha256).hexdigest()[:32]

    def purge(self, now: float | None = None) -> int:
        """Delete what is older than the retention period."""
        now = self.clock() if now is None else now
        self._purged_at = now
        gone = self.store.forget_before(now - self.retention_days * 86400)
        if gone:
            log.info("forgot %d questions older than %g days", gone, self.retention_days)
        return gone

    # -- teaching -------------------------------------------------------------------------------

    def teach(self, entry_id: str, phrasing: str, by: str = "") -> bool:
        """Add a learned phrasing of an entry; False when it has it already."""
        return self.store.teach(entry_id, " ".join(phrasing.split()), self.clock(), by)

    def unteach(self, entry_id: str, phrasing: str) -> bool:
        """Take a learned phrasing back."""
        return self.store.unteach(entry_id, " ".join(phrasing.split()))

    def phrasings(self) -> dict[str, tuple[str, ...]]:
        """Every learned phrasing by entry id."""
        out: dict[str, list[str]] = defaultdict(list)
        for entry_id, phrasing, _ in self.store.learned():
            out[entry_id].append(phrasing)
        return {k: tuple(v) for k, v in out.items()}

    # -- the report -------------------------------------------------------------------------------

    def report(self, days: float, words: Callable[[str], list[str]],
               closest: Callable[[str], Sequence[tuple[str, str, float]]], title: Callable[[str], str],
               top: int = 10, team: str | None = None) -> Report:
        """What was asked over the last `days` (in one team, when given): answer rate, the unanswered
        grouped, the votes per entry."""
        since = self.clock() - days * 86400
        rows = self.store.questions(since, team=team)
        answered = sum(1 for r in rows if r[5])
        declined = [r[7] for r in rows if not r[5] and r[7]]
        groups = _group(declined, words)[:top]
        unanswered = tuple(Unanswered(g[0], len(g), tuple(dict.fromkeys(g))[:5], tuple(closest(g[0])))
                           for g in groups)
        tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        disliked: dict[str, list[str]] = defaultdict(list)
        for _, entry_id, helpful, question in self.store.votes(since, team=team):
            if not entry_id:
                continue
            tally[entry_id][0 if helpful else 1] += 1
            if not helpful and question and question not in disliked[entry_id]:
                disliked[entry_id].append(question)
        ranked = sorted(tally.items(), key=lambda kv: (-kv[1][1], kv[1][0], kv[0]))
        feedback = tuple(Feedback(e, title(e), up, down, tuple(disliked[e][:5])) for e, (up, down) in ranked[:top])
        return Report(int(days), len(rows), answered, unanswered, feedback, self.keep_questions)


def _group(questions: list[str], words: Callable[[str], list[str]]) -> list[list[str]]:
    """Near-duplicate questions together ("monorepo?" and "what about monorepos"), biggest group first."""
    keys = {q: " ".join(sorted(set(words(q)))) for q in set(questions)}
    counts = Counter(questions)
    groups: list[list[str]] = []
    heads: list[str] = []  # each group's key
    for q in sorted(counts, key=lambda q: (-counts[q], q)):
        key = keys[q]
        # token_set_ratio in one C pass over the heads picks the few worth the word-by-word check
        near = sorted(i for _, _, i in process.extract(key, heads, scorer=fuzz.token_set_ratio,
                                                           score_cutoff=GROUP_PREFILTER, limit=None))
        for i in near:
            if key == heads[i] or _alike(key, heads[i]):
                groups[i].extend([q] * counts[q])
                break
        else:
            heads.append(key)
            groups.append([q] * counts[q])
    groups.sort(key=lambda g: -len(g))
    return groups


def _alike(key: str, head: str) -> bool:
    """Two questions' sorted content words are one question: most of their words are (nearly) the same,
    counted both ways (a word of one matching two of the other counts once)."""
    if not key or not head:
        return False
    mine, theirs = key.split(), head.split()
    if 3 * min(len(mine), len(theirs)) < len(mine) + len(theirs):
        return False  # even every word of the shorter shared would be under half of all their words
    close = process.cdist(mine, theirs, scorer=fuzz.ratio, score_cutoff=GROUP_WORD_SIMILARITY) > 0
    shared = min(int(close.any(axis=1).sum()), int(close.any(axis=0).sum()))
    return shared >= GROUP_OVERLAP * (len(mine) + len(theirs) - shared)
