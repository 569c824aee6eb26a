"""The Discord renderer and autocomplete: embeds within every limit, splitting, escaping, buttons, choices."""
from __future__ import annotations

import random
import re

import discord
import pytest

from adapters import discord_embeds as de
from bot.core import Incoming, TrendBot
from bot.knowledge import Knowledge, Trend
from bot.replies import Reply, SourceRef, Suggestion


def answer(text: str, **kw) -> Reply:
    return Reply(title=kw.pop("title", "T"), text=text, answered=True, kind=kw.pop("kind", "answer"), **kw)


def descriptions(messages: list[de.Message]) -> list[str]:
    return [e["description"] for m in messages for e in m.embeds if "description" in e]


def fields(messages: list[de.Message]) -> list[dict]:
    return [f for m in messages for e in m.embeds for f in e.get("fields", ())]


def check_limits(messages: list[de.Message]) -> None:
    """Every limit Discord enforces on a message, checked by our count and by discord.py's own."""
    assert messages
    for m in messages:
        assert m.content or m.embeds
        assert de.discord_len(m.content) <= 2000
        assert len(m.embeds) <= 10
        assert sum(len(discord.Embed.from_dict(e)) for e in m.embeds) <= 6000
        assert sum(de.embed_len(e) for e in m.embeds) <= 6000
        for e in m.embeds:
            assert de.discord_len(e.get("title", "")) <= 256
            assert de.discord_len(e.get("description", "")) <= 4096
            assert len(e.get("fields", ())) <= 25
            for f in e.get("fields", ()):
                assert 0 < de.discord_len(f["name"]) <= 256 and 0 < de.discord_len(f["value"]) <= 1024
            assert de.discord_len(e.get("footer", {}).get("text", "")) <= 2048
        assert len(m.buttons) <= 5
        for b in m.buttons:
            assert 0 < len(b.label) <= 80 and len(b.custom_id) <= 100
    assert all(not m.buttons for m in messages[:-1]), "buttons only on the last message"


# -- the shipped knowledge ----------------------------------------------------------------------


def test_topic_card_is_an_embed_with_key_points_tools_and_sources(shipped_bot):
    reply = shipped_bot.handle(Incoming("serverless", platform="discord", is_command=True))
    (message,) = de.render(reply)
    (embed,) = message.embeds
    check_limits([message])
    assert embed["title"] == "Serverless computing" and embed["url"].startswith("https://")
    assert embed["description"].startswith("Serverless computing means you no longer manage servers")
    names = [f["name"] for f in embed["fields"]]
    assert names == ["Key points", "Tools", "Sources"]
    points = embed["fields"][0]["value"].split("\n")
    assert len(points) == len(shipped_bot.kb.trends["serverless"].points) and all(p.startswith("• ") for p in points)
    assert "70%" in points[0]
    assert embed["fields"][1]["value"] == "AWS Lambda, Azure Functions, Google Cloud Run"
    sources = embed["fields"][2]["value"]
    assert sources.startswith("[JetThoughts](https://dev.to/jetthoughts/") and "), Feb 2025 · [Nucamp](https://" in sources
    assert embed["footer"]["text"].startswith("Related: Microservices architecture")
    assert not message.buttons and not message.content


def test_every_shipped_entry_renders_within_limits(shipped_bot):
    for entry_id in [*shipped_bot.kb.trends, *shipped_bot.kb.faqs]:
        reply = shipped_bot.entry_reply(entry_id)
        check_limits(de.render(reply))
        check_limits(de.render(reply, embeds=False))
    for command in ("topics", "help", "sources", "tip"):
        reply = shipped_bot.handle(Incoming(command, is_command=True))
        check_limits(de.render(reply))


def test_a_paragraph_after_the_key_points_stays_after_them():
    text = "The average base is **$114,000**.\n\n- seniors earn more\n- bonuses add about $24,000\n\nNucamp calls $114,000 the average base."
    embed = de.render(answer(text))[0].embeds[0]
    assert embed["description"] == "The average base is **$114,000**."
    assert [f["name"] for f in embed["fields"]] == ["Key points", de.BLANK_NAME]
    assert embed["fields"][0]["value"] == "• seniors earn more\n• bonuses add about $24,000"
    assert embed["fields"][1]["value"] == "Nucamp calls $114,000 the average base."


def test_lists_that_are_the_answer_stay_in_the_description(shipped_bot):
    embed = de.render(shipped_bot.handle(Incoming("topics", is_command=True)))[0].embeds[0]
    assert "fields" not in embed
    assert embed["description"].count("\n• **") == len(shipped_bot.kb.trends)


# -- limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, parts", [(4095, 1), (4096, 1), (4097, 2)])
def test_description_limit_boundary(n, parts):
    messages = de.render(answer("a" * n))
    check_limits(messages)
    assert len(descriptions(messages)) == parts
    assert "".join(descriptions(messages)) == "a" * n


def test_description_splits_between_words_into_several_messages():
    words = [f"word{i:05d}" for i in range(1500)]  # 14,999 characters: 4 parts, each near 4,096
    messages = de.render(answer(" ".join(words)))
    check_limits(messages)
    assert len(descriptions(messages)) == 4 and len(messages) == 4  # no two parts fit one 6,000 message
    assert all(len(d) > 4000 for d in descriptions(messages)[:3])
    assert " ".join(descriptions(messages)).split() == words
    assert messages[0].embeds[0]["title"] == "T" and all("title" not in e for m in messages[1:] for e in m.embeds)


@pytest.mark.parametrize("n, count", [(1022, 1), (1023, 2)])
def test_field_value_limit_boundary(n, count):
    values = [f["value"] for f in fields(de.render(answer("intro\n\n- " + "b" * n)))]
    assert len(values) == count  # "• " + 1,022 characters is exactly 1,024
    assert "".join(values) == "• " + "b" * n
    assert all(len(v) <= 1024 for v in values)


def test_bullets_pack_into_fields_whole():
    bullets = [f"- point {i} " + "x" * 330 for i in range(9)]  # each "• point i xxx…" is 340 characters
    got = fields(de.render(answer("intro\n\n" + "\n".join(bullets))))
    assert [f["value"].count("• point") for f in got] == [3, 3, 3]  # 3 x 340 + 2 newlines = 1,022; 4 would not fit
    assert [f["name"] for f in got] == ["Key points", de.BLANK_NAME, de.BLANK_NAME]
    for f in got:
        assert all(line.startswith("• point ") for line in f["value"].split("\n"))


@pytest.mark.parametrize("labels, per_embed", [(24, [25]), (25, [25, 1])])
def test_a_26th_field_moves_to_the_next_embed(labels, per_embed):
    text = "intro\n\n- the key point\n\n" + "\n\n".join(f"**L{i}:** " + "y" * 200 for i in range(labels))
    messages = de.render(answer(text))
    check_limits(messages)
    embeds = [e for m in messages for e in m.embeds]
    assert [len(e.get("fields", ())) for e in embeds] == per_embed
    assert [f["name"] for f in fields(messages)] == ["Key points"] + [f"L{i}" for i in range(labels)]
    assert len(messages) == 1  # ~5,300 characters in all: one message


def test_fields_past_6000_move_to_the_next_embed_and_the_footer_ends_the_last():
    bullets = "\n".join(f"- {i:03d} " + "y" * 1000 for i in range(12))  # one field each: 1,006 characters
    messages = de.render(answer("intro\n\n" + bullets, sources=(SourceRef("A", "https://example.com/a", "2025", name="A"),),
                                as_of="2025"))
    check_limits(messages)
    got = fields(messages)
    assert [f["value"][2:5] for f in got[:-1]] == [f"{i:03d}" for i in range(12)]
    embeds = [e for m in messages for e in m.embeds]
    assert [len(e.get("fields", ())) for e in embeds] == [5, 5, 3]  # 5 x 1,006 + the rest fit; a 6th would not
    assert embeds[-1]["fields"][-1] == {"name": "Sources", "value": "[A](https://example.com/a), 2025", "inline": False}
    assert all("footer" not in e for e in embeds) and len(messages) == 3


def test_several_embeds_share_a_message_up_to_6000():
    messages = de.render(answer("\n\n".join("p" * 2500 for _ in range(4))))  # 4 parts: 2 + 2 paragraphs fit 6,000
    check_limits(messages)
    assert [len(m.embeds) for m in messages] == [2, 2]
    assert descriptions(messages) == ["p" * 2500] * 4


@pytest.mark.parametrize("n, expect", [(255, "a" * 255), (256, "a" * 256), (257, "a" * 255 + "…")])
def test_title_limit(n, expect):
    assert de.render(answer("x", title="a" * n))[0].embeds[0]["title"] == expect


def test_title_is_cut_outside_escapes_and_emoji():
    title = de.render(answer("x", title="_" * 300))[0].embeds[0]["title"]
    assert len(title) <= 256 and re.fullmatch(r"(\\_)+…", title)
    title = de.render(answer("x", title="a" * 253 + "👩\u200d👩\u200d👧"))[0].embeds[0]["title"]
    assert title == "a" * 253 + "…"


@pytest.mark.parametrize("cluster", ["👍🏽", "👩\u200d👩\u200d👧", "🇫🇷", "e\u0301", "1\ufe0f\u20e3"])
def test_emoji_at_the_cut_stays_whole(cluster):
    for pad in range(4090, 4097):
        text = "a" * pad + cluster + "b" * 10
        parts = descriptions(de.render(answer(text)))
        assert "".join(parts) == text
        assert sum(cluster in p for p in parts) == 1, pad


def test_limit_counts_utf16_units():
    assert len(descriptions(de.render(answer("😀" * 2048)))) == 1  # 4,096 UTF-16 units
    parts = descriptions(de.render(answer("😀" * 2049)))
    assert len(parts) == 2 and "".join(parts) == "😀" * 2049


def test_escapes_are_never_cut():
    parts = descriptions(de.render(answer("*" * 3000)))  # 6,000 characters once escaped
    assert len(parts) == 2 and all(re.fullmatch(r"(\\\*)+", p) for p in parts)
    assert sum(len(p) for p in parts) == 6000


def test_links_are_never_cut_and_bold_stays_balanced():
    text = "x " * 2040 + "[the article](https://example.com/a) and **" + "bold " * 600 + "end**"
    parts = descriptions(de.render(answer(text)))
    assert all(de.discord_len(p) <= 4096 for p in parts) and len(parts) >= 2
    assert "".join(parts).count("[the article](https://example.com/a)") == 1
    assert all(p.count("**") % 2 == 0 for p in parts)


def test_very_long_reply_is_cut_with_a_note_and_keeps_its_sources():
    reply = answer("\n\n".join("q" * 4000 for _ in range(40)),
                   sources=(SourceRef("Article A", "https://example.com/a", "Feb 2025", name="Example"),))
    messages = de.render(reply)
    check_limits(messages)
    assert len(messages) == de.MAX_MESSAGES
    assert messages[-1].embeds[-1]["description"] == de.SHORTENED
    assert messages[-1].embeds[-1]["footer"]["text"] == "Source: Example, Feb 2025"
    content = de.render(reply, embeds=False)
    check_limits(content)
    assert len(content) == de.MAX_MESSAGES
    assert content[-1].content == de.SHORTENED + "\n\n-# Source: [Example](<https://example.com/a>), Feb 2025"


@pytest.mark.parametrize("n, count", [(1900, 1), (2100, 2)])
def test_content_mode_splits_at_2000(n, count):
    reply = answer("c" * n, sources=(SourceRef("Article A", "https://example.com/a", "Feb 2025", name="Example"),),
                   as_of="Feb 2025")
    messages = de.render(reply, embeds=False)
    check_limits(messages)
    assert len(messages) == count and all(not m.embeds for m in messages)
    assert messages[0].content.startswith("**T**\n\n")
    assert messages[-1].content.endswith("-# Source: [Example](<https://example.com/a>), Feb 2025")


def test_an_empty_reply_is_still_a_message():
    for embeds in (True, False):
        (message,) = de.render(Reply(title=" ", text="", answered=False, kind="error"), embeds=embeds)
        assert message.content == "…" and not message.embeds


# -- escaping -----------------------------------------------------------------------------------

HOSTILE = ["@everyone", "@here", "@EVERYONE", "<@123456789012345678>", "<@!123456789012345678>", "<@&234567890123456789>",
           "<#345678901234567890>", "</trend:1>", "<t:1700000000:R>", "**loud**", "__under__", "~~gone~~", "||spoiler||",
           "`tick`", "<https://evil.example>"]
LINE_STARTS = ["# Heading", "### Small", "-# subtext", "> quote", ">>> quote", "1. numbered", "+ plus"]

_LINK = re.compile(r"(?<!\\)\[(?:\\.|[^\]\\])*\]\(([^)\s]*)\)")
_LIVE_MENTION = re.compile(r"(?<!\\)<(@[!&]?|#|/|t:)|@(everyone|here)\b", re.IGNORECASE)


def parsed_texts(messages: list[de.Message]) -> list[str]:
    """Every text Discord parses as markdown: titles, descriptions, field names and values, content."""
    out = []
    for m in messages:
        out.append(m.content)
        for e in m.embeds:
            out += [e.get("title", ""), e.get("description", "")]
            out += [t for f in e.get("fields", ()) for t in (f["name"], f["value"])]
    return [t for t in out if t]


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text).replace("\u200b", "")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_text_cannot_ping_format_or_link(hostile):
    reply = Reply(
        title=f"Title {hostile}", answered=False, kind="decline",
        text=f"plain {hostile}\n\n**bold {hostile}** `code {hostile}` [label {hostile}](https://example.com/ok)\n\n- bullet {hostile}",
        sources=(SourceRef(f"Source {hostile}", "https://example.com/src", "Feb 2025", name=f"Name {hostile}"),),
        suggestions=(Suggestion(f"Topic {hostile}", "serverless"),), as_of="Feb 2025",
    )
    for messages in (de.render(reply), de.render(reply, embeds=False)):
        for text in parsed_texts(messages):
            outside_code = re.sub(r"(?<!\\)`[^`]*(?<!\\)`", "", text)  # code shows <@1> as typed: inert
            assert not _LIVE_MENTION.search(outside_code), text
            assert not re.search(r"@(everyone|here)\b", text, re.IGNORECASE), text
            # The only masked links are the ones we wrote, to our own addresses.
            targets = _LINK.findall(outside_code)
            assert set(targets) <= {"https://example.com/ok", "<https://example.com/ok>", "https://example.com/src",
                                    "<https://example.com/src>"}, targets
        footer = messages[-1].embeds[-1].get("footer", {}).get("text", "") if messages[-1].embeds else ""
        assert not re.search(r"@(everyone|here)\b", footer, re.IGNORECASE)
        assert all(not re.search(r"@(everyone|here)\b", b.label, re.IGNORECASE) for b in messages[-1].buttons)
    embed = de.render(reply)[0].embeds[0]
    assert unescape(embed["title"]) == f"Title {hostile}"
    assert f"plain {hostile}" in unescape(embed["description"])


def test_masked_links_outside_the_answer_text_are_text():
    hostile = "[click](https://evil.example)"
    reply = Reply(title=f"T {hostile}", text="x", answered=False, kind="decline",
                  sources=(SourceRef("A", "https://example.com/a", "2025", name=f"A {hostile}"),),
                  suggestions=(Suggestion(f"S {hostile}", "serverless"),))
    for messages in (de.render(reply), de.render(reply, embeds=False)):
        for text in parsed_texts(messages):
            assert "evil" not in " ".join(_LINK.findall(text)), text
    embed = de.render(reply)[0].embeds[0]
    assert embed["title"] == "T \\[click\\](https://evil.example)"
    assert "[Name" not in de.render(reply, embeds=False)[0].content
    assert "[A \\[click\\](https://evil.example)](<https://example.com/a>)" in de.render(reply, embeds=False)[0].content


@pytest.mark.parametrize("start", LINE_STARTS)
def test_line_starts_cannot_become_headings_lists_or_quotes(start):
    reply = answer(f"{start} text\n\n- {start} in a bullet", kind="help")
    description = de.render(reply)[0].embeds[0]["description"]
    first = description.split("\n")[0]
    assert first.startswith("\\") or re.match(r"\d+\\\.", first), first
    assert unescape(first) == f"{start} text"
    assert "• " + start[0] in unescape(description)


def test_user_mentions_inside_code_are_inert_too():
    text = de.render(answer("run `@everyone now`"))[0].embeds[0]["description"]
    assert text == "run `@\u200beveryone now`"


def test_bare_urls_stay_links():
    text = de.render(answer("see https://example.com/a_b_c and more_here"))[0].embeds[0]["description"]
    assert text == "see https://example.com/a_b_c and more\\_here"
    text = de.render(answer("see https://example.com/@everyone"))[0].embeds[0]["description"]
    assert text == "see https://example.com/@\u200beveryone"


def test_link_targets_cannot_break_out():
    reply = answer("see [A](https://example.com/x)", sources=(SourceRef("A", "https://example.com/a_(b) c", "2025", name="A"),))
    embed = de.render(reply)[0].embeds[0]
    assert embed["url"] == "https://example.com/a_%28b%29%20c"
    assert embed["description"] == "see [A](https://example.com/x)"
    content = de.render(reply, embeds=False)[0].content
    assert "[A](<https://example.com/a_%28b%29%20c>), 2025" in content and "[A](<https://example.com/x>)" in content
    assert {"name": "Sources", "value": "[A](https://example.com/a_%28b%29%20c), 2025", "inline": False} in embed["fields"]


def test_non_http_links_are_text():
    reply = answer("[A](https://example.com/ok)", sources=(SourceRef("A", "javascript:alert(1)", "2025", name="A"),))
    embed = de.render(reply)[0].embeds[0]
    assert "url" not in embed and embed["fields"][-1]["value"] == "A (javascript:alert(1)), 2025"
    content = de.render(reply, embeds=False)[0].content
    assert "-# Source: A \\(javascript:alert(1)\\)" not in content and "javascript" in content
    assert content.count("](") == 1


# -- buttons ------------------------------------------------------------------------------------


def test_decline_offers_suggestions_as_buttons(mini_bot):
    reply = mini_bot.handle(Incoming("best pizza in naples", platform="discord", is_command=True))
    assert not reply.answered and reply.private
    messages = de.render(reply)
    buttons = messages[-1].buttons
    assert [b.query for b in buttons] == [s.query for s in reply.suggestions] and buttons
    assert [b.label for b in buttons] == [s.label for s in reply.suggestions]
    assert all(b.custom_id.startswith(de.BUTTON_PREFIX) for b in buttons)
    assert messages[0].embeds[0]["color"] == de.COLORS["decline"]


def test_answers_show_related_topics_as_text_not_buttons(mini_bot):
    (message,) = de.render(mini_bot.handle(Incoming("is serverless cheaper?")))
    assert not message.buttons
    assert message.embeds[0]["footer"]["text"].endswith("Related: Serverless computing")


def test_buttons_clip_labels_and_skip_queries_too_long_for_a_custom_id():
    reply = Reply(title="No", text="x", answered=False, kind="decline",
                  suggestions=(Suggestion("L" * 100, "q"), Suggestion("Long query", "z" * 90), Suggestion("  ", "w")))
    (button,) = de.render(reply)[-1].buttons
    assert len(button.label) == 80 and button.label.endswith("…") and button.query == "q"


# -- autocomplete -------------------------------------------------------------------------------


def test_choices_with_no_input_list_topics_a_to_z(shipped_bot):
    got = de.choices(shipped_bot, "")
    assert len(got) == 25
    titles = [name for name, _ in got]
    assert titles == sorted(titles, key=str.lower)
    assert all(value in shipped_bot.kb.trends for _, value in got)


@pytest.mark.parametrize("typed, first", [
    ("serverl", "serverless"), ("kubernets", "kubernetes"), ("kubrnetes", "kubernetes"), ("k8s", "kubernetes"),
    ("mircoservices", "microservices"), ("Micro", "microservices"), ("salary", "salaries"), ("faas", "serverless"),
    ("observ", "observability"), ("gitop", "gitops"),
])
def test_choices_are_fuzzy_on_partial_and_misspelt_input(shipped_bot, typed, first):
    got = de.choices(shipped_bot, typed)
    assert got and got[0][1] == first, got[:3]


def test_choice_for_what_trend_would_pick_comes_first(shipped_bot):
    for typed in ("serverles", "container orchestration", "ci cd"):
        picked = shipped_bot.find_topic(typed)
        assert picked is not None and de.choices(shipped_bot, typed)[0][1] == picked.id


def test_no_match_gives_no_choices(shipped_bot):
    assert de.choices(shipped_bot, "qwertyuiopzxcv") == []
    assert de.choices(shipped_bot, "zzzq xxjj") == []


def test_exactly_one_match(mini_bot):
    assert de.choices(mini_bot, "kubernets") == [("Kubernetes", "kubernetes")]


def _big_bot(n: int) -> TrendBot:
    trends = {}
    for i in range(n):
        tid = f"topic-{i:04d}"
        trends[tid] = Trend(tid, f"Topic {i:04d} " + "long title " * (15 if i == 7 else 0), (f"thing {i}",),
                            "s", ("p",), (), (), (), "gen.yaml")
    long_id = "x" * 101
    trends[long_id] = Trend(long_id, "Topic with an id too long", (), "s", ("p",), (), (), (), "gen.yaml")
    kb = Knowledge(sources={}, trends=trends, faqs={}, tips={}, aliases={}, digest="gen")
    return TrendBot(kb, rng=random.Random(1))


def test_a_thousand_matches_give_25_choices_within_discord_limits():
    bot = _big_bot(1000)
    for typed in ("topic", "Topic 00", "topc", ""):
        got = de.choices(bot, typed)
        assert len(got) == 25, typed
        assert all(0 < len(name) <= 100 and 0 < len(value) <= 100 for name, value in got)
        assert len({value for _, value in got}) == 25
        assert "x" * 101 not in [value for _, value in got]
    assert de.choices(bot, "topic 0007")[0][1] == "topic-0007"
    assert len(de.choices(bot, "topic 0007")[0][0]) <= 100


def test_typed_text_longer_than_discord_allows_is_cut(shipped_bot):
    assert de.choices(shipped_bot, "serverless " * 60)[0][1] == "serverless"


def test_a_short_answer_has_a_more_button_and_the_whole_entry_has_none(mini_bot):
    short = mini_bot.handle(Incoming("does serverless scale with traffic", platform="discord"))
    (message,) = de.render(short)
    assert [(b.label, b.custom_id, b.query) for b in message.buttons] == [
        ("More", de.MORE_PREFIX + "serverless", "more serverless")]
    full = mini_bot.handle(Incoming(message.buttons[0].query, platform="discord", is_command=True))
    assert full.entry_id == "serverless" and not full.more
    assert not de.render(full)[0].buttons


def test_sources_are_a_field_of_linked_names_with_dates():
    reply = answer("x", sources=(SourceRef("Title A", "https://example.com/a", "Jan 2025", name="Nucamp"),
                                 SourceRef("Title B", "", "2025", name="an untitled trends article")))
    embed = de.render(reply)[0].embeds[0]
    assert embed["fields"][-1] == {"name": "Sources", "inline": False,
                                   "value": "[Nucamp](https://example.com/a), Jan 2025 · an untitled trends article, 2025"}
    content = de.render(reply, embeds=False)[0].content
    assert content.endswith("-# Sources: [Nucamp](<https://example.com/a>), Jan 2025 · an untitled trends article, 2025")
