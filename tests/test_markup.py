"""The markup subset and the plain-text form of replies."""
from __future__ import annotations

from bot import markup
from bot.replies import Reply, SourceRef, Suggestion, to_text


def test_parse_paragraphs_bullets_bold_links_code():
    blocks = markup.parse("First **bold** line\ncontinues.\n\n- one [site](https://x.io/a)\n- two `cmd`\n\nEnd.")
    assert [b.bullets for b in blocks] == [False, True, False]
    assert blocks[0].items[0] == (markup.Span("First "), markup.Span("bold", bold=True), markup.Span(" line continues."))
    assert blocks[1].items[0][1] == markup.Span("site", url="https://x.io/a")
    assert blocks[1].items[1][1] == markup.Span("cmd", code=True)


def test_non_http_links_stay_text():
    spans = markup.spans("[x](javascript:alert(1))")
    assert spans == (markup.Span("[x](javascript:alert(1))"),)


def test_to_plain():
    assert markup.to_plain("Lead **bold**.\n\n- a\n- b") == "Lead bold.\n\n• a\n• b"


def test_reply_text_has_title_body_sources_and_suggestions():
    reply = Reply(
        title="T", text="Body.", answered=True, kind="answer",
        sources=(SourceRef("Art", "https://a.b", "Feb 2025", "Pub", "Pubname"),),
        suggestions=(Suggestion("Serverless", "serverless"),), as_of="Feb 2025",
    )
    assert to_text(reply) == "T\n\nBody.\n\nSource: Pubname, Feb 2025\n\nRelated: Serverless"
    d = reply.to_dict()
    assert d["text"] == to_text(reply) and d["suggestions"] == ["Serverless"] and d["entry_id"] is None
