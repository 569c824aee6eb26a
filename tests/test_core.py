"""TrendBot.handle: commands, free questions, declines and bad input, on the small knowledge base."""
from __future__ import annotations

import pytest

from bot.core import MAX_INPUT, Incoming, TrendBot
from bot.replies import to_text


def ask(bot: TrendBot, text: str, **kw):
    return bot.handle(Incoming(text, **kw))


def test_free_question_answers_faq_with_source_and_date(mini_bot):
    reply = ask(mini_bot, "is serverless cheaper?")
    assert reply.answered and reply.entry_id == "serverless-cheaper"
    assert reply.sources[0].title == "Article A" and reply.sources[0].url == "https://example.com/a"
    assert reply.as_of == "Feb 2025"
    assert "Source: Example, Feb 2025" in to_text(reply) and "https://" not in to_text(reply)
    assert not reply.private


def test_alias_and_typo_reach_the_same_entry(mini_bot):
    assert ask(mini_bot, "k8s").entry_id == "kubernetes"
    assert ask(mini_bot, "tell me about kubernets").entry_id == "kubernetes"
    results = mini_bot.index.search("serverles pricing")
    assert ("serverles", "serverless") in results.corrections


@pytest.mark.parametrize("text", ["/trend serverless", "/trend Serverless computing", "/trend serverles", "/trend faas"])
def test_trend_command_shows_card(mini_bot, text):
    reply = ask(mini_bot, text)
    assert reply.kind == "trend" and reply.entry_id == "serverless"
    assert "Pay only for what runs." in reply.text
    assert [s.query for s in reply.suggestions] == ["kubernetes"]


def test_slash_command_text_without_prefix(mini_bot):
    assert ask(mini_bot, "serverless", is_command=True).kind == "trend"
    assert ask(mini_bot, "", is_command=True).kind == "help"  # a bare /trend: how to use it, on every surface
    assert ask(mini_bot, "help", is_command=True).kind == "help"


def test_topics_help_tip_sources(mini_bot):
    topics = ask(mini_bot, "/trend topics")
    assert topics.kind == "topics" and "`/trend kubernetes`" in topics.text
    assert ask(mini_bot, "/trend").kind == "help"
    helped = ask(mini_bot, "/trend help")
    assert helped.kind == "help" and helped.private and not helped.answered
    tip = ask(mini_bot, "/trend tip")
    assert tip.kind == "tip" and tip.entry_id in ("tip-one", "tip-two") and tip.sources
    sources = ask(mini_bot, "trend sources")
    assert sources.kind == "sources" and "Article B" in sources.text and "[Article A](https://example.com/a)" in sources.text


def test_command_with_a_question_is_answered(mini_bot):
    reply = ask(mini_bot, "/trend does lambda save money")
    assert reply.entry_id == "serverless-cheaper"


def test_out_of_scope_declines_privately_with_suggestions(mini_bot):
    reply = ask(mini_bot, "best pizza oven for a small flat")
    assert not reply.answered and reply.kind == "decline" and reply.private
    assert 1 <= len(reply.suggestions) <= 3
    assert "rather not guess" in reply.text


@pytest.mark.parametrize("text, says", [
    ("what's the weather in paris tomorrow", "weather"),
    ("whats 19 times 21", "sums"),
    ("what time is it in tokyo", "time"),
])
def test_weather_sums_and_the_time_are_declined_outright(mini_bot, text, says):
    reply = ask(mini_bot, text)
    assert not reply.answered and reply.kind == "decline" and reply.private
    assert says in reply.text and reply.suggestions


def test_near_miss_suggests_related_topic(mini_bot):
    reply = ask(mini_bot, "orchestration of my pizza oven fleet")
    assert not reply.answered
    assert "kubernetes" in [s.query for s in reply.suggestions]


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\u200b\u200b"])
def test_empty_or_contentless_input_gets_help(mini_bot, text):
    reply = ask(mini_bot, text)
    assert reply.kind == "help" and reply.private


@pytest.mark.parametrize("text, says", [
    ("hi", "Hi!"), ("hey bot", "Hi!"), ("thanks!", "welcome"), ("who are you?", "I'm trendbot"),
    ("what can you do", "/trend help"), ("good bot", "Thanks!"),
])
def test_small_talk_gets_a_short_friendly_reply_pointing_to_help(mini_bot, text, says):
    reply = ask(mini_bot, text)
    assert reply.kind == "smalltalk" and not reply.answered and reply.private
    assert says in reply.text and len(reply.text) < 300


@pytest.mark.parametrize("text", ["hi, is serverless cheaper?", "thanks, and does lambda save money"])
def test_a_question_after_a_greeting_is_still_answered(mini_bot, text):
    assert ask(mini_bot, text).entry_id == "serverless-cheaper"


@pytest.mark.parametrize("text, kind", [("help", "help"), ("topics", "topics"), ("tip", "tip"), ("sources?", "sources")])
def test_a_bare_command_word_is_the_command(mini_bot, text, kind):
    assert ask(mini_bot, text).kind == kind


def test_control_and_zero_width_characters_are_stripped(mini_bot):
    reply = ask(mini_bot, "is server\u200bless\x00 cheap\x07er\u202e?")
    assert reply.entry_id == "serverless-cheaper"


def test_input_over_limit_is_refused_clearly(mini_bot):
    reply = ask(mini_bot, "serverless " * 299 + "serverless")
    assert reply.kind == "error" and reply.private and not reply.answered
    assert f"{MAX_INPUT:,}" in reply.text and "3,299" in reply.text
    assert ask(mini_bot, "x" * MAX_INPUT).kind != "error"


def test_handle_never_raises(mini_bot, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("index exploded")

    monkeypatch.setattr(mini_bot.index, "search", boom)
    reply = ask(mini_bot, "is serverless cheaper")
    assert reply.kind == "error" and not reply.answered and "index exploded" not in reply.text


@pytest.mark.parametrize("text", ["@everyone serverless", "<!channel> k8s", "<@U123> is serverless cheaper"])
def test_mentions_in_input_do_not_break_answers(mini_bot, text):
    assert ask(mini_bot, text).answered


def test_same_question_same_entry_on_every_platform(mini_bot):
    ids = {ask(mini_bot, "does lambda save money", platform=p).entry_id for p in ("console", "slack", "discord")}
    assert ids == {"serverless-cheaper"}


def test_tip_is_random_but_reproducible(mini_kb):
    import random

    a = [TrendBot(mini_kb, rng=random.Random(1)).tip().entry_id for _ in range(5)]
    b = [TrendBot(mini_kb, rng=random.Random(1)).tip().entry_id for _ in range(5)]
    assert a == b
    bot = TrendBot(mini_kb, rng=random.Random(3))
    assert {bot.tip().entry_id for _ in range(30)} == {"tip-one", "tip-two"}


def test_english_words_are_not_corrected_into_jargon(shipped_bot):
    words, corrections, unknown = shipped_bot.index.read("who is playing at wembley this weekend")
    assert corrections == [] and "playing" in unknown
    assert not shipped_bot.handle(Incoming("who is playing at wembley this weekend")).answered
    _, corrections, _ = shipped_bot.index.read("mircoservices serverles")
    assert ("mircoservices", "microservices") in corrections and ("serverles", "serverless") in corrections


def test_hyphenated_jargon_matches_its_alias(shipped_bot):
    assert shipped_bot.analyzer.expand("functions-as-a-service") == shipped_bot.analyzer.expand("faas")


def test_corrected_word_completes_an_alias(shipped_bot):
    words, _, _ = shipped_bot.index.read("continous integration")
    assert words == shipped_bot.analyzer.words("continuous integration")


def test_help_lists_the_daily_tip_commands_in_the_platforms_form(mini_bot):
    text = ask(mini_bot, "help").text
    assert "`/trend subscribe`" in text and "`/trend subscribe 09:00 Europe/Berlin serverless`" in text
    assert "/trend more" in text

    def spell(verb, time="", zone="", topics=""):
        return f"!{verb}" + "".join(f" {p}" for p in (time, zone, topics) if p)

    text = ask(mini_bot, "help", spell=spell).text
    assert "`!subscribe`" in text and "`!subscribe 09:00 Europe/Berlin serverless`" in text and "`!unsubscribe`" in text
    assert "/trend subscribe" not in text


def test_a_near_miss_of_a_topic_name_that_is_a_faqs_alternate_gets_that_faq(shipped_bot, shipped_kb):
    # "aws monitoring" is one fuzzy step from the "AI monitoring" topic, and an alternate of cloud monitoring.
    assert "aws monitoring" in shipped_kb.faqs["cloud-monitoring"].alternates
    assert shipped_bot.handle(Incoming("aws monitoring")).entry_id == "cloud-monitoring"
    assert shipped_bot.handle(Incoming("ai monitoring")).entry_id == "ai-monitoring"  # the topic's own name
    assert shipped_bot.handle(Incoming("kubernets")).entry_id == "kubernetes"  # a typo of one still finds it
