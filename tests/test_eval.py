"""Answer quality on tests/eval/questions.yaml, the way `trendbot eval` measures it."""
from __future__ import annotations

from pathlib import Path

from bot.evaluation import evaluate, format_report, load_cases

QUESTIONS = Path(__file__).parent / "eval" / "questions.yaml"


def test_eval_set_is_big_enough_and_names_real_entries(shipped_kb):
    cases = load_cases(QUESTIONS)
    in_scope = [c for c in cases if c.expect]
    assert len(in_scope) >= 150 and len(cases) - len(in_scope) >= 30
    known = set(shipped_kb.trends) | set(shipped_kb.faqs)
    assert {e for c in in_scope for e in c.expect} <= known


def test_top1_accuracy_and_out_of_scope_declines(shipped_bot):
    report = evaluate(shipped_bot, load_cases(QUESTIONS))
    assert report.accuracy >= 0.90, format_report(report)
    assert report.decline_rate >= 0.90, format_report(report)


def test_every_trend_is_reachable_by_its_title(shipped_bot, shipped_kb):
    for trend in shipped_kb.trends.values():
        assert shipped_bot.answer(trend.title).reply.entry_id == trend.id
