"""Answer-quality evaluation: right answers in scope, declines out of scope, confidently wrong replies.

A question file holds `questions:` (in scope) and `out_of_scope:`. An in-scope question is graded
by content where it lists `facts` (every fact, or one of its `a|b` alternatives, must appear in
the plain reply), and by entry id where it lists `expect`. An out-of-scope question must be
declined (small talk gets a friendly non-answer, which counts as declined).
"""
from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.core import Incoming, TrendBot
from bot.replies import Reply, sources_line

# The two parts of the shipped evaluation set. Held-out questions are never tuned on.
EVAL_DIR = Path(__file__).resolve().parent.parent / "tests" / "eval"
PARTS = {
    "tuning": ("tuning.yaml", "questions.yaml", "tuning2.yaml", "tuning3.yaml", "tuning4.yaml", "tuning5.yaml",
               "tuning6.yaml"),
    "held-out": ("heldout.yaml",),
}


@dataclass(frozen=True)
class Case:
    """One evaluation question; `expect` and `facts` are both empty for an out-of-scope question."""

    question: str
    expect: tuple[str, ...] = ()  # entry ids that hold the answer
    facts: tuple[tuple[str, ...], ...] = ()  # each fact as its alternatives
    near: bool = False  # out of scope, but a backend question near the domain
    smalltalk: bool = False

    @property
    def in_scope(self) -> bool:
        """Whether the question should be answered."""
        return bool(self.expect or self.facts)


@dataclass(frozen=True)
class Outcome:
    """What the bot did with one case."""

    case: Case
    reply: Reply

    @property
    def right(self) -> bool:
        """Answered in scope with the expected entry and facts, or declined out of scope."""
        if not self.case.in_scope:
            return not self.reply.answered
        if not self.reply.answered:
            return False
        if self.case.expect and self.reply.entry_id not in self.case.expect:
            return False
        text = _normal(reply_text(self.reply))
        return all(any(_normal(alt) in text for alt in fact) for fact in self.case.facts)

    @property
    def wrong(self) -> bool:
        """Confidently wrong: answered, but out of scope or without what was asked."""
        return self.reply.answered and not self.right


@dataclass(frozen=True)
class Report:
    """Rates of one evaluation run over a list of cases."""

    outcomes: tuple[Outcome, ...]

    def _share(self, keep) -> tuple[int, int]:
        chosen = [o for o in self.outcomes if keep(o.case)]
        return sum(o.right for o in chosen), len(chosen)

    @property
    def in_scope(self) -> tuple[int, int]:
        """(right, total) of in-scope questions."""
        return self._share(lambda c: c.in_scope)

    @property
    def out_of_scope(self) -> tuple[int, int]:
        """(declined, total) of out-of-scope questions."""
        return self._share(lambda c: not c.in_scope)

    @property
    def accuracy(self) -> float:
        """Share of in-scope questions answered right."""
        return _rate(*self.in_scope)

    @property
    def decline_rate(self) -> float:
        """Share of out-of-scope questions declined."""
        return _rate(*self.out_of_scope)

    @property
    def wrong_rate(self) -> float:
        """Share of all questions answered confidently wrong."""
        return _rate(sum(o.wrong for o in self.outcomes), len(self.outcomes))

    @property
    def misses(self) -> tuple[Outcome, ...]:
        """The cases the bot got wrong."""
        return tuple(o for o in self.outcomes if not o.right)

    def lengths(self) -> tuple[int, int]:
        """Median and 90th percentile of the plain text of answered replies, in characters."""
        sizes = sorted(len(_plain(o.reply)) for o in self.outcomes if o.reply.answered)
        if not sizes:
            return 0, 0
        return int(statistics.median(sizes)), sizes[min(len(sizes) - 1, int(0.9 * len(sizes)))]


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _plain(reply: Reply) -> str:
    return reply.to_dict()["text"]


def reply_text(reply: Reply) -> str:
    """What a grader reads: the plain reply without its suggestion line (a topic name is not an answer)."""
    from bot import markup

    return "\n".join((reply.title, markup.to_plain(reply.text), sources_line(reply)))


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.translate(_QUOTES).lower()).strip()


def load_cases(path: Path | str) -> list[Case]:
    """Read `questions:` (q with facts and/or expect) and `out_of_scope:` (strings or q mappings)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    cases = []
    for item in data.get("questions", []):
        expect = item.get("expect", ())
        expect = tuple(expect) if isinstance(expect, list) else ((str(expect),) if expect else ())
        facts = tuple(tuple(a.strip() for a in str(f).split("|") if a.strip()) for f in item.get("facts", ()))
        cases.append(Case(str(item["q"]), expect, facts))
    for item in data.get("out_of_scope", []):
        if isinstance(item, str):
            cases.append(Case(item))
        else:
            cases.append(Case(str(item["q"]), near=bool(item.get("near")), smalltalk=bool(item.get("smalltalk"))))
    return cases


def load_part(name: str, folder: Path = EVAL_DIR) -> list[Case]:
    """The cases of one part of the shipped set ("tuning" or "held-out")."""
    return [c for file in PARTS[name] if (folder / file).exists() for c in load_cases(folder / file)]


def evaluate(bot: TrendBot, cases: Iterable[Case]) -> Report:
    """Ask every case as a free question and grade the replies."""
    return Report(tuple(Outcome(c, bot.handle(Incoming(c.question))) for c in cases))


def format_report(report: Report, name: str = "", misses: bool = True) -> str:
    """Human-readable rates, reply lengths and (optionally) the list of misses."""
    right, total = report.in_scope
    declined, oos = report.out_of_scope
    median, p90 = report.lengths()
    head = f"{name}: " if name else ""
    lines = [
        f"{head}in scope: {right}/{total} right ({report.accuracy:.1%})",
        f"{head}out of scope: {declined}/{oos} declined ({report.decline_rate:.1%})",
        f"{head}confidently wrong: {sum(o.wrong for o in report.outcomes)}/{len(report.outcomes)} ({report.wrong_rate:.1%})",
        f"{head}answered reply length: median {median} characters, p90 {p90}",
    ]
    if misses and report.misses:
        lines.append(f"{head}misses:")
        for o in report.misses:
            c = o.case
            if c.in_scope:
                want = ", ".join(c.expect) if c.expect else " + ".join("|".join(f) for f in c.facts)
            else:
                want = "(decline)"
            got = o.reply.entry_id if o.reply.answered else f"({o.reply.kind})"
            lines.append(f"  {c.question!r}: want {want}, got {got} [{o.reply.score:.3f}]")
    return "\n".join(lines)


# -- fitting the confidence model -----------------------------------------------------------------

WRONG_COST = 3.0  # a confidently wrong reply costs this many right ones: the operating point's precision


def candidate_rows(bot: TrendBot, cases: Iterable[Case]) -> list[tuple[int, list[float], int]]:
    """(case number, features, label) for each candidate the model chooses between, on every case
    the model decides (small talk and bare topic names never reach it)."""
    from bot import confidence, smalltalk

    rows = []
    for n, case in enumerate(cases):
        if smalltalk.classify(case.question) or bot.find_topic(case.question, bot._title_names):
            continue
        results = bot.index.search(case.question)
        similar = bot.answers.similar(case.question)
        for rank, hit in enumerate(results.hits[:confidence.CANDIDATES]):
            f = confidence.features(bot.index, results, hit, rank, bot.answers.dated, similar)
            reply = bot.answers.short_reply(hit.entry_id, results, hit.score)
            label = int(case.in_scope and Outcome(case, reply).right)
            rows.append((n, [f[name] for name in confidence.FEATURES], label))
    return rows


def choose_threshold(rows: list[tuple[int, list[float], int]], probabilities: list[float]) -> float:
    """The probability cut that maximises right answers minus WRONG_COST x wrong ones, where each
    case answers with its most probable candidate."""
    best: dict[int, tuple[float, int]] = {}
    for (n, _, label), p in zip(rows, probabilities):
        if n not in best or p > best[n][0]:
            best[n] = (p, label)
    ranked = sorted(best.values(), key=lambda pl: -pl[0])
    gain, top, cut = 0.0, 0.0, 1.0
    for i, (p, label) in enumerate(ranked):
        gain += 1.0 if label else -WRONG_COST
        nxt = ranked[i + 1][0] if i + 1 < len(ranked) else 0.0
        if gain > top and p > nxt:
            top, cut = gain, (p + nxt) / 2
    return cut


def fit_confidence(bot: TrendBot, cases: list[Case], folds: int = 5):
    """Fit the confidence model on `cases` (the tuning part) and choose its threshold on
    out-of-fold probabilities, so the cut is set on answers the model did not see."""
    from bot import confidence

    rows = candidate_rows(bot, cases)
    out_of_fold = [0.0] * len(rows)
    for k in range(folds):
        train = [r for r in rows if r[0] % folds != k]
        model = confidence.fit([r[1] for r in train], [r[2] for r in train], threshold=0.5)
        for i, r in enumerate(rows):
            if r[0] % folds == k:
                out_of_fold[i] = model.probability(r[1])
    cut = choose_threshold(rows, out_of_fold)
    return confidence.fit([r[1] for r in rows], [r[2] for r in rows], threshold=round(cut, 4))
