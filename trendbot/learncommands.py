"""`trendbot report`, `trendbot teach` and `trendbot learned`: the learning loop from the command line."""
from __future__ import annotations

import argparse
import json
import sys

import yaml

from bot.core import TrendBot
from bot.store import StoreError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The three commands."""
    report = sub.add_parser("report", help="what people asked and didn't get, and how they rated the answers")
    report.add_argument("--days", type=float, default=7, help="how far back to look (default 7)")
    report.add_argument("--json", action="store_true", help="one JSON object")
    teach = sub.add_parser("teach", help="teach a question as a phrasing of an entry (or take one back)")
    teach.add_argument("entry_id", help="the entry that answers it (`trendbot report` names the closest)")
    teach.add_argument("question", nargs="+", help="the question, as people ask it")
    teach.add_argument("--remove", action="store_true", help="take the phrasing back")
    learned = sub.add_parser("learned", help="the phrasings taught so far; `learned export` prints them as YAML")
    learned.add_argument("action", nargs="?", choices=("export",), help="print YAML alternates to paste into knowledge/")


def run(bot: TrendBot, args: argparse.Namespace) -> int:
    """Run one of the three; a store that cannot be opened is exit code 2."""
    try:
        if args.command == "report":
            return _report(bot, args.days, args.json)
        if args.command == "teach":
            return _teach(bot, args.entry_id.lower(), " ".join(args.question), args.remove)
        return _learned(bot, args.action == "export")
    except StoreError as exc:
        print(f"trendbot {args.command}: {exc}", file=sys.stderr)
        return 2


def _report(bot: TrendBot, days: float, as_json: bool) -> int:
    report = bot.report(days)
    data = report.to_dict()
    data["orphaned_phrasings"] = {e: list(p) for e, p in bot.orphans.items()}
    if as_json:
        print(json.dumps(data, ensure_ascii=False))
        return 0
    print(f"{report.questions} questions in the last {days:g} days: {report.answered} answered "
          f"({report.answer_rate:.0%}), {report.questions - report.answered} declined.")
    if not report.texts_kept:
        print("Question texts are not kept (TRENDBOT_KEEP_QUESTIONS=false): counts only.")
    if report.unanswered:
        print("\nAsked but not answered (teach one with `trendbot teach ENTRY_ID \"QUESTION\"`):")
        for u in report.unanswered:
            closest = ", ".join(f"{e} ({s:.2f})" for e, _, s in u.closest) or "none"
            print(f"  {u.count:>3}×  {u.question}\n        closest: {closest}")
            for other in u.examples[1:]:
                print(f"        also: {other}")
    if report.feedback:
        print("\nVotes on answers (most 'not helpful' first):")
        for f in report.feedback:
            print(f"  {f.entry_id}: {f.helpful} helpful, {f.not_helpful} not helpful")
            for q in f.questions:
                print(f"        asked: {q}")
    for entry_id, phrasings in bot.orphans.items():
        print(f"\nTaught for {entry_id}, which the knowledge no longer has: {'; '.join(phrasings)}")
    return 0


def _teach(bot: TrendBot, entry_id: str, question: str, remove: bool) -> int:
    if remove:
        if bot.learning.unteach(entry_id, question):
            print(f"trendbot: {entry_id} no longer learns {question!r}")
            return 0
        print(f"trendbot teach: {entry_id} has no learned phrasing {question!r}", file=sys.stderr)
        return 1
    reply = bot.teach_reply(entry_id, question, by="command line")
    stream = sys.stdout if reply.kind == "teach" else sys.stderr
    print(f"trendbot: {reply.title}: " + reply.text.replace("**", "").replace("\\", ""), file=stream)
    return 0 if reply.kind == "teach" else 1


def _learned(bot: TrendBot, export: bool) -> int:
    phrasings = bot.learning.phrasings()
    if not phrasings:
        print("No phrasing has been taught yet.", file=sys.stderr)
        return 0
    if export:
        print("# Taught phrasings, ready to paste into knowledge/ (a FAQ's alternates, a trend's aliases).")
        for entry_id, taught in sorted(phrasings.items()):
            entry = bot.kb.faqs.get(entry_id) or bot.kb.trends.get(entry_id)
            where = f" ({entry.file})" if entry else " (no such entry in the knowledge now)"
            field = "aliases" if entry_id in bot.kb.trends else "alternates"  # a trend's phrasings are its aliases
            print(f"\n# {entry_id}{where}")
            print(yaml.safe_dump({field: list(taught)}, allow_unicode=True, sort_keys=False).rstrip())
        return 0
    for entry_id, taught in sorted(phrasings.items()):
        missing = "" if entry_id not in bot.orphans else "  (no such entry in the knowledge now)"
        print(f"{entry_id}{missing}")
        for phrasing in taught:
            print(f"  - {phrasing}")
    return 0
