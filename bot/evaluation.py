"""Answer-quality evaluation: top-1 accuracy on in-scope questions, decline rate out of scope."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.core import Incoming, TrendBot


@dataclass(frozen=True)
class Case:
    """One evaluation question; `expect` is empty for an out-of-scope question."""

    question: str
    expect: tuple[str, ...]


@dataclass(frozen=True)
class Miss:
    """A question the bot got wrong, with what it did instead."""

    case: Case
    got: str | None  # entry id answered, or None when it declined
    score: float


@dataclass(frozen=True)
class Report:
    """Rates and misses of one evaluation run."""

    in_scope: int
    correct: int
    out_of_scope: int
    declined: int
    misses: tuple[Miss, ...]

    @property
    def accuracy(self) -> float:
        """Share of in-scope questions answered with an expected entry."""
        return self.correct / self.in_scope if self.in_scope else 0.0

    @property
    def decline_rate(self) -> float:
        """Share of out-of-scope questions declined."""
        return self.declined / self.out_of_scope if self.out_of_scope else 0.0


def load_cases(path: Path | str) -> list[Case]:
    """Read `questions:` (q + expect) and `out_of_scope:` (plain strings) from a YAML file."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    cases = []
    for item in data.get("questions", []):
        expect = item["expect"]
        cases.append(Case(str(item["q"]), tuple(expect) if isinstance(expect, list) else (str(expect),)))
    for q in data.get("out_of_scope", []):
        cases.append(Case(str(q), ()))
    return cases


def evaluate(bot: TrendBot, cases: list[Case]) -> Report:
    """Ask every case as a free question and score the answers."""
    correct = declined = 0
    misses = []
    for case in cases:
        reply = bot.handle(Incoming(case.question))
        got = reply.entry_id if reply.answered else None
        if case.expect:
            if got in case.expect:
                correct += 1
            else:
                misses.append(Miss(case, got, reply.score))
        elif got is None:
            declined += 1
        else:
            misses.append(Miss(case, got, reply.score))
    in_scope = sum(1 for c in cases if c.expect)
    return Report(in_scope, correct, len(cases) - in_scope, declined, tuple(misses))


def format_report(report: Report) -> str:
    """Human-readable rates and the list of misses."""
    lines = [
        f"in scope: {report.correct}/{report.in_scope} top-1 correct ({report.accuracy:.1%})",
        f"out of scope: {report.declined}/{report.out_of_scope} declined ({report.decline_rate:.1%})",
    ]
    if report.misses:
        lines.append("misses:")
        for m in report.misses:
            want = ", ".join(m.case.expect) if m.case.expect else "(decline)"
            lines.append(f"  {m.case.question!r}: want {want}, got {m.got or '(declined)'} [{m.score:.3f}]")
    return "\n".join(lines)
