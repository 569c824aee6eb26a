"""Answer quality on tests/eval/, the way `trendbot eval` measures it.

The floors below are regression guards set under today's figures, not the targets: the README
quotes the measured rates (`trendbot eval`). The held-out part is the one nothing is fitted on.
"""
from __future__ import annotations

import re

import pytest
from rapidfuzz import fuzz

from bot.evaluation import evaluate, format_report, load_part

# part: (in scope right at least, out of scope declined at least, confidently wrong at most)
FLOORS = {"tuning": (0.545, 0.97, 0.045), "held-out": (0.585, 0.98, 0.045)}
REPLY_MEDIAN, REPLY_P90 = 600, 760  # characters of an answered reply, sources line included: chat-sized


@pytest.mark.parametrize("part", sorted(FLOORS))
def test_each_part_is_big_enough_and_names_real_entries(shipped_kb, part):
    cases = load_part(part)
    in_scope = [c for c in cases if c.in_scope]
    assert len(in_scope) >= 200 and len(cases) - len(in_scope) >= 100
    assert all(c.facts or c.expect for c in in_scope)
    known = set(shipped_kb.trends) | set(shipped_kb.faqs)
    assert {e for c in in_scope for e in c.expect} <= known


def test_no_question_is_in_both_parts():
    tuning = {_plain(c.question) for c in load_part("tuning")}
    assert not [c.question for c in load_part("held-out") if _plain(c.question) in tuning]


def test_no_held_out_question_was_copied_into_the_knowledge(shipped_kb):
    # Phrasings only: a topic's own name ("Hyperautomation", the alias "mqtt") is what anyone types.
    phrasings = [_plain(p) for faq in shipped_kb.faqs.values() for p in (faq.question, *faq.alternates)]
    copied = []
    for case in load_part("held-out"):
        q = _plain(case.question)
        if any(fuzz.ratio(q, p) >= 95 for p in phrasings):
            copied.append(case.question)
    assert copied == []


@pytest.mark.parametrize("part", sorted(FLOORS))
def test_rates_stay_above_their_floors(shipped_bot, part):
    report = evaluate(shipped_bot, load_part(part))
    right, declined, wrong = FLOORS[part]
    summary = format_report(report, part, misses=False)
    assert report.accuracy >= right, summary
    assert report.decline_rate >= declined, summary
    assert report.wrong_rate <= wrong, summary
    median, p90 = report.lengths()
    assert median <= REPLY_MEDIAN and p90 <= REPLY_P90, summary


def test_every_trend_is_reachable_by_its_title(shipped_bot, shipped_kb):
    for trend in shipped_kb.trends.values():
        assert shipped_bot.answer(trend.title).reply.entry_id == trend.id


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())
