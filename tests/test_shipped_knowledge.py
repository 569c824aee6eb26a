"""The shipped knowledge base: complete, cited, and readable in chat."""
from __future__ import annotations

import re
from pathlib import Path

from bot.core import Incoming


def test_counts_meet_the_floor(shipped_kb):
    counts = shipped_kb.counts()
    assert counts["sources"] == 5
    assert counts["tips"] >= 60 and counts["trends"] >= 30 and counts["faqs"] >= 100


def test_every_answer_is_cited_and_dated(shipped_bot, shipped_kb):
    for entry_id in list(shipped_kb.trends) + list(shipped_kb.faqs):
        reply = shipped_bot.entry_reply(entry_id)
        assert reply.sources, entry_id
        assert re.fullmatch(r"(\w{3} )?\d{4}", reply.as_of), entry_id


def test_faq_answers_fit_chat_and_have_alternates(shipped_kb):
    for faq in shipped_kb.faqs.values():
        assert len(faq.answer) <= 900, faq.id
        assert len(faq.alternates) >= 3, faq.id


def test_no_internal_source_ids_leak_into_text(shipped_kb):
    ids = re.compile("|".join(map(re.escape, shipped_kb.sources)))
    texts = [f.answer for f in shipped_kb.faqs.values()] + [t.text for t in shipped_kb.tips.values()]
    texts += [t.summary + " ".join(t.points) for t in shipped_kb.trends.values()]
    assert not [t for t in texts if ids.search(t)]


def test_conflicting_aws_share_is_stated_with_both_figures(shipped_bot):
    reply = shipped_bot.handle(Incoming("which cloud provider has the biggest market share"))
    assert "31%" in reply.text and "32%" in reply.text
    assert {"Nucamp", "JetThoughts"} <= {s.name for s in reply.sources}


def test_figures_survive_exactly(shipped_bot):
    expectations = {
        "what are backend devs paid": "$114,000",
        "how big is the cloud market": "$313 billion",
        "what percentage of companies run containers in production": "80%",
        "how many backend jobs are remote": "44%",
    }
    for question, figure in expectations.items():
        assert figure in shipped_bot.handle(Incoming(question)).text, question


def test_no_reply_shows_an_entry_id(shipped_bot, shipped_kb):
    from adapters import console
    from bot import markup

    # One-word ids ("serverless") and hyphenated words the articles use ("real-time") are plain words.
    articles = " ".join(p.read_text(encoding="utf-8").lower()
                        for p in (Path(__file__).parent / "fixtures" / "seeds").iterdir())
    ids = [i for i in (*shipped_kb.trends, *shipped_kb.faqs) if "-" in i and i not in articles]
    pattern = re.compile(r"(?<![\w/-])(" + "|".join(map(re.escape, ids)) + r")(?![\w-])")
    shown = []
    for faq in shipped_kb.faqs.values():
        for reply in (shipped_bot.entry_reply(faq.id), shipped_bot.handle(Incoming(faq.question))):
            text = "\n".join((reply.title, markup.to_plain(reply.text), console.render(reply, color=False)))
            shown += [(faq.id, m.group(1)) for m in pattern.finditer(text)]
    for trend in shipped_kb.trends.values():
        reply = shipped_bot.entry_reply(trend.id)
        shown += [(trend.id, m.group(1)) for m in pattern.finditer(markup.to_plain(reply.text))]
    assert shown == []
