"""The plain view of a question against the entries' phrasings, and its place among the confidence features."""
from __future__ import annotations

import pytest

from bot.core import Incoming, documents
from bot.retrieval import Document, Field
from bot.surface import Surface

VIEW = Surface([
    ("edge-what", ["What is edge computing?", "edge computing meaning"]),
    ("edge-worth", ["Is edge computing worth it?"]),
    ("salary", ["What do backend developers earn?"]),
])


def test_a_question_typed_as_a_phrasing_is_an_exact_match():
    assert VIEW.similarity("what is EDGE computing")("edge-what") == pytest.approx(1.0)


def test_how_the_question_is_put_tells_neighbours_apart():
    what = VIEW.similarity("what is edge computing, in short")
    worth = VIEW.similarity("is edge computing worth it for us")
    assert what("edge-what") > what("edge-worth")
    assert worth("edge-worth") > worth("edge-what")


def test_words_no_phrasing_uses_change_nothing_and_an_unknown_entry_is_zero():
    plain = VIEW.similarity("what is edge computing")
    noisy = VIEW.similarity("what is edge computing qwzx blorf")
    assert noisy("edge-what") == pytest.approx(plain("edge-what"))
    assert plain("no-such-entry") == 0.0
    assert VIEW.similarity("")("edge-what") == 0.0
    assert VIEW.similarity("qwzx blorf")("salary") == 0.0


def test_only_phrasing_fields_of_documents_count():
    view = Surface.of([Document("a", (Field(("kubernetes basics",), 2.0, phrasings=True),
                                      Field(("salaries are high",), 1.0)))])
    assert view.similarity("kubernetes basics")("a") == pytest.approx(1.0)
    assert view.similarity("salaries are high")("a") == 0.0


def test_taught_phrasings_are_part_of_the_view(shipped_kb):
    taught = "does the pipeline thingy fix flaky deploys"
    before = Surface.of(documents(shipped_kb)).similarity(taught)("ci-cd")
    after = Surface.of(documents(shipped_kb, {"ci-cd": (taught,)})).similarity(taught)("ci-cd")
    assert before < 0.9 and after == pytest.approx(1.0)


def test_the_model_sees_the_surface_feature_of_each_candidate(shipped_bot):
    decision = shipped_bot.explain(Incoming("what is edge computing"))
    judged = decision.judgement
    expected = shipped_bot.answers.surface.similarity("what is edge computing")(judged.entry_id)
    assert judged.features["surface"] == pytest.approx(expected)
    assert expected > 0.5


def test_any_text_is_read_without_error_folded_and_split_at_punctuation():
    sim = VIEW.similarity("what\u00a0is edge-computing?! \ud800 \U0001f680 ¿qué?")
    assert sim("edge-what") == pytest.approx(1.0)  # the words no phrasing uses are left out
    for typed in ("what is edge/computing", "What\u00a0is \u201cedge computing\u201d?", "whát is EDGE computing",
                  "<!here> @everyone what is edge computing <@U123>"):
        assert VIEW.similarity(typed)("edge-what") == pytest.approx(1.0), typed


def test_the_view_of_a_large_knowledge_base_is_counted_on_first_use_and_keeps_a_bounded_cache(monkeypatch):
    import bot.surface as surface

    monkeypatch.setattr(surface, "KEPT", 3)
    view = Surface([(f"e{i}", [f"question about kubernetes number{i}"]) for i in range(10)])
    assert view._idf is None
    sim = view.similarity("question about kubernetes number7")
    assert view._idf is not None
    assert sim("e7") == pytest.approx(1.0) and max(sim(f"e{i}") for i in range(10) if i != 7) < 1.0
    assert len(view._postings) <= 3


def _strict(kb, **options):
    """A bot whose model trusts no match: only a question that is one of an entry's phrasings is answered."""
    from bot.confidence import Confidence, Model
    from bot.core import TrendBot

    return TrendBot(kb, confidence=Confidence(Model.load(), threshold=1.01), **options)


def test_a_question_that_is_word_for_word_a_phrasing_is_answered_from_its_entry(mini_kb):
    bot = _strict(mini_kb)
    decision = bot.explain(Incoming("Does Lambda save money?!"))
    assert decision.reply.answered and decision.reply.entry_id == "serverless-cheaper"
    judged = decision.judgement
    assert judged.phrased and judged.entry_id == "serverless-cheaper"
    # The judgement describes the entry answered from, not the model's own candidate.
    assert judged.probability == pytest.approx(bot.answers.confidence.probability(judged.features))
    assert judged.features["surface"] == pytest.approx(bot.answers.surface.similarity("Does Lambda save money?!")(judged.entry_id))
    # Another question is the model's to decide, and this one trusts nothing: a word more or less,
    # a stop word that changes the question, a word that had to be corrected, a topic's alias.
    for text in ("does lambda save money in germany", "does lambda save", "when does lambda save money",
                 "does lambda save monney", "functions as a service", "does lambda save money \U0001f1ee\U0001f1f3",
                 "does lambda save money @faang", "does lambda save money \u5728\u5370\u5ea6"):
        assert not bot.explain(Incoming(text)).reply.answered, text


def test_a_taught_phrasing_is_answered_word_for_word(mini_kb):
    question = "is the pay as you go thing worth it"
    assert not _strict(mini_kb).explain(Incoming(question)).reply.answered
    taught = _strict(mini_kb, learned={"serverless-cheaper": (question,)})
    assert taught.explain(Incoming(question)).reply.entry_id == "serverless-cheaper"


def test_a_phrasing_two_entries_share_is_left_to_the_model(mini_kb):
    both = {"serverless-cheaper": ("zebra budget pipeline",), "kubernetes": ("zebra budget pipeline",)}
    assert _strict(mini_kb, learned={"kubernetes": ("zebra budget pipeline",)}).explain(
        Incoming("zebra budget pipeline")).reply.entry_id == "kubernetes"
    assert not _strict(mini_kb, learned=both).explain(Incoming("zebra budget pipeline")).reply.answered


def test_a_phrasing_is_answered_as_one_question_even_when_it_reads_as_two(shipped_bot):
    # An alternate of the FAQ, with an "and" in it: the model alone answers the topic and splits it in two.
    reply = shipped_bot.handle(Incoming("which emerging languages and frameworks are rising"))
    assert reply.entry_id == "emerging-backend-languages" and not reply.entries
