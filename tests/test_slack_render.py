"""The Slack adapter's pure functions: payloads to Incoming, Replies to Block Kit within Slack's limits, escaping, settings."""
from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import pytest

from adapters import console
from adapters import slack_app as s
from adapters import slack_payloads
from adapters import slack_settings
from adapters import slack_blocks as kit
from adapters.secrets import SecretFilter
from bot.replies import Reply, SourceRef, Suggestion
from tests.slack_fake import BOT_TOKEN, SIGNING_SECRET, fixture


def mrkdwn_texts(message: dict) -> list[str]:
    """Every mrkdwn string Slack will parse in a message, plus the top-level text."""
    out = [message["text"]]
    for block in message["blocks"]:
        if block["type"] == "section":
            out.append(block["text"]["text"])
        elif block["type"] == "context":
            out += [e["text"] for e in block["elements"] if e["type"] == "mrkdwn"]
    return out


def sections(message: dict) -> list[str]:
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]


def answer(text: str, **kw) -> Reply:
    return Reply(title=kw.pop("title", "T"), text=text, answered=True, kind="answer", **kw)


# -- payloads -> Incoming ---------------------------------------------------------------------


def test_slash_command_payload():
    inc = slack_payloads.to_incoming(fixture("slash_command"))
    assert (inc.text, inc.platform, inc.channel_id, inc.user_id) == ("is serverless cheaper?", "slack", "C0GENERAL", "U0ALICE")
    assert inc.is_command and not inc.is_dm and not inc.is_mention and inc.thread_id is None


def test_empty_slash_command_asks_for_usage(mini_bot):
    incoming = slack_payloads.to_incoming(fixture("slash_command") | {"text": "  "})
    assert incoming.text == "" and incoming.is_command
    assert mini_bot.handle(incoming).kind == "help"  # the core decides: a bare /trend is usage everywhere


def test_mention_payload_strips_the_bot_and_answers_in_its_thread():
    inc = slack_payloads.to_incoming(fixture("app_mention"))
    assert inc.text == "is serverless cheaper?"
    assert inc.is_mention and not inc.is_dm and inc.thread_id == "1715000000.000100"
    threaded = fixture("app_mention")
    threaded["event"]["thread_ts"] = "1714999999.000001"
    assert slack_payloads.to_incoming(threaded).thread_id == "1714999999.000001"


def test_dm_payload_is_answered_in_the_dm_not_a_thread():
    inc = slack_payloads.to_incoming(fixture("message_im"))
    assert inc.is_dm and not inc.is_mention and inc.text == "k8s?" and inc.channel_id == "D0ALICEDM"
    assert inc.thread_id is None


def test_button_payload_asks_the_suggestion_query():
    inc = slack_payloads.to_incoming(fixture("block_actions"))
    assert (inc.text, inc.user_id, inc.channel_id, inc.is_command) == ("serverless", "U0ALICE", "C0GENERAL", True)


def test_unknown_payload_is_an_error():
    with pytest.raises(ValueError):
        slack_payloads.to_incoming({"type": "view_submission"})


@pytest.mark.parametrize("raw, plain", [
    ("<@U0TRENDBOT> what about <@U0BOB>?", "what about @U0BOB?"),
    ("<@U0TRENDBOT|trendbot> ask <@U0BOB|bob> in <#C0DEV|dev>", "ask @bob in #dev"),
    ("<!here> is <https://example.com|this> &lt;b&gt; &amp; co", "@here is this <b> & co"),
    ("<!subteam^S0OPS|@ops> and <!channel>", "@ops and @channel"),
    ("see <https://example.com/x>", "see https://example.com/x"),
])
def test_slack_markup_becomes_plain_text(raw, plain):
    payload = fixture("app_mention")
    payload["event"]["text"] = raw
    assert slack_payloads.to_incoming(payload).text == plain


def test_wants_reply_only_for_people():
    assert slack_payloads.wants_reply(fixture("app_mention")) and slack_payloads.wants_reply(fixture("message_im"))
    for change in ({"bot_id": "B0OTHER"}, {"subtype": "bot_message", "bot_id": "B0OTHER"},
                   {"subtype": "message_changed"}, {"user": "U0TRENDBOT"}, {"user": None},
                   {"channel_type": "channel", "channel": "C0GENERAL"}):
        payload = fixture("message_im")
        payload["event"].update(change)
        assert not slack_payloads.wants_reply(payload), change


def test_event_key_is_the_message():
    mention = fixture("app_mention")
    retry = fixture("app_mention")
    assert slack_payloads.event_key(mention) == slack_payloads.event_key(retry) == "slack:msg:T0TEST:C0GENERAL:1715000000.000100"
    dm = fixture("message_im")
    also_mention = fixture("app_mention")
    also_mention["event"].update(channel=dm["event"]["channel"], ts=dm["event"]["ts"])
    also_mention["event_id"] = "Ev0OTHER"
    assert slack_payloads.event_key(dm) == slack_payloads.event_key(also_mention)
    other = fixture("app_mention")
    other["event"]["ts"] = "1715000000.000200"
    assert slack_payloads.event_key(other) != slack_payloads.event_key(mention)


# -- the same entry as the console ------------------------------------------------------------


@pytest.mark.parametrize("question", ["is serverless cheaper?", "k8s vs plain docker?", "what are devs paid?",
                                      "mircoservices", "best pizza in naples"])
def test_same_question_same_entry_as_console(shipped_bot, question):
    console_reply = shipped_bot.handle(console.to_incoming(question))
    command = shipped_bot.handle(slack_payloads.to_incoming(fixture("slash_command") | {"text": question}))
    mention = fixture("app_mention")
    mention["event"]["text"] = f"<@U0TRENDBOT> {question}"
    mentioned = shipped_bot.handle(slack_payloads.to_incoming(mention))
    assert command.entry_id == mentioned.entry_id == console_reply.entry_id
    assert command.answered == console_reply.answered
    header = kit.render(command)["blocks"][0]["text"]["text"]
    assert header == console_reply.title


def test_shipped_topic_card_renders_header_sections_context(shipped_bot):
    message = kit.render(shipped_bot.handle(slack_payloads.to_incoming(fixture("slash_command") | {"text": "serverless"})))
    types = [b["type"] for b in message["blocks"]]
    assert types[0] == "header" and types[-1] == "context" and "section" in types
    assert "• " in "\n".join(sections(message))
    context = message["blocks"][-1]["elements"][0]["text"]
    assert re.match(r"Sources: <https://[^|>]+\|JetThoughts>, Feb 2025 · <https://[^|>]+\|Nucamp>, Jan 2025 · ", context)
    assert "as of" not in context and "(" not in context
    json.dumps(message)  # serialisable as the Web API needs
    assert message["text"].startswith("Serverless")


def test_a_short_answer_has_a_more_button_and_the_whole_entry_has_none(mini_bot):
    short = mini_bot.handle(slack_payloads.to_incoming(fixture("slash_command") | {"text": "does serverless scale with traffic"}))
    assert short.more
    message = kit.render(short)
    (actions,) = [b for b in message["blocks"] if b["type"] == "actions"]
    assert actions["elements"] == [{"type": "button", "action_id": kit.MORE_ACTION, "value": "more serverless",
                                    "text": {"type": "plain_text", "text": "More", "emoji": True}}]
    assert message["blocks"][-1]["type"] == "context"  # the sources stay last
    full = mini_bot.handle(slack_payloads.to_incoming(fixture("block_actions") | {"actions": [actions["elements"][0]]}))
    assert full.entry_id == "serverless" and not full.more and "Tools" in full.text
    assert not [b for b in kit.render(full)["blocks"] if b["type"] == "actions"]


def test_sources_line_names_link_to_the_articles_with_their_dates():
    reply = Reply(title="T", text="x", answered=True, kind="answer", sources=(
        SourceRef("Title A", "https://example.com/a?x=1&y=<2>", "Jan 2025", name="Nucamp"),
        SourceRef("Title B", "", "2025", name="an untitled trends article")))
    context = kit.render(reply)["blocks"][-1]["elements"][0]["text"]
    assert context == ("Sources: <https://example.com/a?x=1&amp;y=%3C2%3E|Nucamp>, Jan 2025 · "
                       "an untitled trends article, 2025")


# -- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n, count", [(2999, 1), (3000, 1), (3001, 2)])
def test_section_limit_boundary(n, count):
    parts = sections(kit.render(answer("a" * n)))
    assert len(parts) == count
    assert all(len(p) <= 3000 for p in parts)
    assert "".join(parts) == "a" * n


def test_long_paragraph_splits_between_words():
    words = [f"word{i:04d}" for i in range(700)]  # ~6,300 characters
    parts = sections(kit.render(answer(" ".join(words))))
    assert len(parts) == 3 and all(kit.slack_len(p) <= 3000 for p in parts)
    assert " ".join(parts).split() == words  # no word cut in two


def test_lines_pack_into_sections_and_never_split_when_they_fit():
    lines = [f"- item {i} " + "x" * 990 for i in range(7)]  # seven bullets of 999 characters once rendered
    parts = sections(kit.render(answer("\n".join(lines))))
    assert [p.count("• item") for p in parts] == [3, 3, 1]  # 3 x 999 + 2 newlines = 2,999 fits
    for part in parts:
        assert kit.slack_len(part) <= 3000
        assert all(line.startswith("• item ") for line in part.split("\n"))


@pytest.mark.parametrize("cluster", ["👍🏽", "👩\u200d👩\u200d👧", "🇫🇷", "e\u0301", "❤\ufe0f", "1\ufe0f\u20e3"])
def test_emoji_at_the_cut_stays_whole(cluster):
    for pad in (2996, 2997, 2998, 2999, 3000):
        text = "a" * pad + cluster + "b" * 10
        parts = sections(kit.render(answer(text)))
        assert "".join(parts) == text
        assert all(kit.slack_len(p) <= 3000 for p in parts)
        assert sum(cluster in p for p in parts) == 1, (pad, parts[0][-5:])  # whole in exactly one section


def test_limit_counts_utf16_units():
    assert len(sections(kit.render(answer("😀" * 1500)))) == 1  # 3,000 UTF-16 units
    parts = sections(kit.render(answer("😀" * 1501)))
    assert len(parts) == 2 and "".join(parts) == "😀" * 1501


def test_escapes_are_never_cut():
    parts = sections(kit.render(answer("&" * 1000)))  # 5,000 characters once escaped
    assert len(parts) == 2
    assert all(re.fullmatch(r"(&amp;)+", p) and len(p) <= 3000 for p in parts)


def test_links_are_never_cut_and_bold_stays_balanced():
    text = "x " * 1480 + "[the article](https://example.com/a) and **" + "bold " * 300 + "end**"
    parts = sections(kit.render(answer(text)))
    assert all(kit.slack_len(p) <= 3000 for p in parts)
    joined = "".join(parts)
    assert joined.count("<https://example.com/a|the article>") == 1
    assert all(p.count("*") % 2 == 0 for p in parts)


@pytest.mark.parametrize("n, expect", [(149, "a" * 149), (150, "a" * 150), (151, "a" * 149 + "…")])
def test_header_limit(n, expect):
    header = kit.render(answer("x", title="a" * n))["blocks"][0]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert header["text"]["text"] == expect


def test_header_cut_keeps_emoji_whole():
    title = "a" * 147 + "👩\u200d👩\u200d👧"
    text = kit.render(answer("x", title=title))["blocks"][0]["text"]["text"]
    assert text == "a" * 147 + "…"


def _long_reply(sections_needed: int) -> Reply:
    paragraphs = "\n\n".join("p" * 2990 for _ in range(sections_needed))
    return answer(paragraphs, sources=(SourceRef("Article A", "https://example.com/a", "Feb 2025", name="Example"),),
                  as_of="Feb 2025")


def test_blocks_at_the_limit_are_kept_whole():
    message = kit.render(_long_reply(48))  # header + 48 sections + context = 50
    assert len(message["blocks"]) == 50
    assert kit.SHORTENED not in sections(message)


def test_51_blocks_are_cut_to_50_with_a_note():
    message = kit.render(_long_reply(49))  # would be 51
    blocks = message["blocks"]
    assert len(blocks) == 50
    assert blocks[0]["type"] == "header" and blocks[-1]["type"] == "context"
    assert sections(message)[-1] == kit.SHORTENED and len(sections(message)) == 48
    assert len(kit.render(_long_reply(80))["blocks"]) == 50


def test_fallback_text_is_plain_and_bounded():
    message = kit.render(_long_reply(3))
    assert kit.slack_len(message["text"]) <= kit.TEXT_LIMIT and message["text"].endswith("…")
    short = kit.render(answer("**bold** and [a link](https://example.com)"))
    assert short["text"] == "T\n\nbold and a link &lt;https://example.com&gt;"


# -- escaping -----------------------------------------------------------------------------------

HOSTILE = ["<!channel>", "<!here>", "<!everyone>", "<@U0BOSS>", "<#C0SECRET|secret>", "<https://evil.example|click>",
           "<!subteam^S0ALL>", "a & b", "1 < 2 > 0"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_text_cannot_ping_or_link(hostile):
    reply = Reply(
        title=f"Title {hostile}", answered=False, kind="decline",
        text=f"plain {hostile}\n\n**bold {hostile}** `code {hostile}` [label {hostile}](https://example.com/ok)\n\n- bullet {hostile}",
        sources=(SourceRef(f"Source {hostile}", "https://example.com/src", "Feb 2025", name=f"Name {hostile}"),),
        suggestions=(Suggestion(f"Topic {hostile}", "serverless"),), as_of="Feb 2025",
    )
    message = kit.render(reply)
    for text in mrkdwn_texts(message):
        assert not re.search(r"<[!@#]", text), text
        links = re.findall(r"<[^>]*>", text)
        assert all(re.fullmatch(r"<https://example\.com/(ok|src)\|[^<>]*>", link) for link in links), links
    escaped = kit.escape(hostile)
    assert all(escaped in t for t in mrkdwn_texts(message)[1:]), "every mrkdwn field shows the input, escaped"
    if "&" in hostile:
        assert "a &amp; b" in message["text"]


def test_answered_reply_echoing_user_text_is_escaped():
    message = kit.render(answer("You asked: <!here> <@U0BOSS> & more"))
    assert sections(message) == ["You asked: &lt;!here&gt; &lt;@U0BOSS&gt; &amp; more"]


@pytest.mark.parametrize("url, expect", [
    ("https://example.com/a?x=1&y=2", "<https://example.com/a?x=1&amp;y=2|A>"),
    ("https://example.com/a|b>c", "<https://example.com/a%7Cb%3Ec|A>"),
])
def test_link_targets_cannot_break_out(url, expect):
    reply = answer("x", sources=(SourceRef("A", url, "2025", name="A"),))
    assert expect in kit.render(reply)["blocks"][-1]["elements"][0]["text"]


def test_non_http_source_url_is_text_not_link():
    reply = answer("x", sources=(SourceRef("A", "javascript:alert(1)", "2025", name="A"),))
    context = kit.render(reply)["blocks"][-1]["elements"][0]["text"]
    assert "<" not in context and "javascript:alert(1)" in context


# -- buttons ------------------------------------------------------------------------------------


def test_decline_shows_suggestions_as_buttons(mini_bot):
    reply = mini_bot.handle(slack_payloads.to_incoming(fixture("slash_command") | {"text": "best pizza in naples"}))
    assert not reply.answered and reply.private
    actions = [b for b in kit.render(reply)["blocks"] if b["type"] == "actions"]
    assert len(actions) == 1
    buttons = actions[0]["elements"]
    assert [b["value"] for b in buttons] == [x.query for x in reply.suggestions]
    assert len({b["action_id"] for b in buttons}) == len(buttons)
    assert all(b["action_id"].startswith(kit.ACTION_PREFIX) and len(b["text"]["text"]) <= 75 for b in buttons)


def test_answers_list_related_topics_as_text_not_buttons(mini_bot):
    message = kit.render(mini_bot.handle(slack_payloads.to_incoming(fixture("slash_command"))))
    assert not [b for b in message["blocks"] if b["type"] == "actions"]
    assert "Related: Serverless computing" in [e["text"] for e in message["blocks"][-1]["elements"]]


def test_long_button_label_is_clipped():
    reply = Reply(title="No", text="x", answered=False, kind="decline", suggestions=(Suggestion("L" * 100, "q"),))
    label = [b for b in kit.render(reply)["blocks"] if b["type"] == "actions"][0]["elements"][0]["text"]["text"]
    assert len(label) == 75 and label.endswith("…")


# -- settings -------------------------------------------------------------------------------------

GOOD = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}


def test_settings_http_mode_and_defaults():
    st = slack_settings.Settings.from_env(GOOD)
    assert not st.socket_mode and st.api_url == "https://slack.com/api/" and st.port == 3000
    assert BOT_TOKEN not in repr(st) and SIGNING_SECRET not in repr(st)


def test_settings_socket_mode_needs_no_signing_secret():
    st = slack_settings.Settings.from_env({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": "xapp-1-A1-2-abc"})
    assert st.socket_mode


def test_settings_api_url_gets_a_trailing_slash():
    assert slack_settings.Settings.from_env(GOOD | {"SLACK_API_URL": "http://127.0.0.1:9/api"}).api_url == "http://127.0.0.1:9/api/"


def test_settings_secret_from_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(BOT_TOKEN + "\n", encoding="utf-8")
    st = slack_settings.Settings.from_env({"SLACK_BOT_TOKEN_FILE": str(path), "SLACK_SIGNING_SECRET": SIGNING_SECRET})
    assert st.bot_token == BOT_TOKEN


@pytest.mark.parametrize("env, variable", [
    ({}, "SLACK_BOT_TOKEN"),
    ({"SLACK_BOT_TOKEN": "xoxp-user-token-123"}, "SLACK_BOT_TOKEN"),
    ({"SLACK_BOT_TOKEN": "xoxb-has space"}, "SLACK_BOT_TOKEN"),
    ({"SLACK_BOT_TOKEN": BOT_TOKEN}, "SLACK_SIGNING_SECRET"),
    (GOOD | {"SLACK_SIGNING_SECRET": "not/a/secret"}, "SLACK_SIGNING_SECRET"),
    (GOOD | {"SLACK_APP_TOKEN": "xoxb-wrong-kind"}, "SLACK_APP_TOKEN"),
    (GOOD | {"SLACK_API_URL": "ftp://example.com/api/"}, "SLACK_API_URL"),
    (GOOD | {"SLACK_API_URL": "not a url"}, "SLACK_API_URL"),
    ({"SLACK_BOT_TOKEN_FILE": "/nonexistent/trendbot/token"}, "SLACK_BOT_TOKEN_FILE"),
])
def test_settings_errors_name_the_variable_not_the_value(env, variable):
    with pytest.raises(slack_settings.SettingsError) as err:
        slack_settings.Settings.from_env(env)
    message = str(err.value)
    assert message.startswith(variable) and "\n" not in message
    for value in env.values():
        assert value not in message


OAUTH = {"SLACK_CLIENT_ID": "1234567890.9876543210", "SLACK_CLIENT_SECRET": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
         "SLACK_STATE_SECRET": "f" * 64, "SLACK_SIGNING_SECRET": SIGNING_SECRET}


def test_settings_for_several_workspaces_need_no_bot_token_and_hide_their_secrets():
    st = slack_settings.Settings.from_env(OAUTH)
    assert st.oauth and st.bot_token == "" and not st.socket_mode and st.client_id == OAUTH["SLACK_CLIENT_ID"]
    assert OAUTH["SLACK_CLIENT_SECRET"] not in repr(st) and OAUTH["SLACK_STATE_SECRET"] not in repr(st)
    assert {OAUTH["SLACK_CLIENT_SECRET"], OAUTH["SLACK_STATE_SECRET"], SIGNING_SECRET} <= set(st.secrets)
    assert not slack_settings.Settings.from_env(GOOD).oauth  # one workspace, as before


@pytest.mark.parametrize("env, variable", [
    ({"SLACK_CLIENT_ID": "1234567890.9876543210", "SLACK_SIGNING_SECRET": SIGNING_SECRET},
     "SLACK_CLIENT_SECRET and SLACK_STATE_SECRET are not set"),
    ({k: v for k, v in OAUTH.items() if k != "SLACK_CLIENT_ID"}, "SLACK_CLIENT_ID is not set"),
    ({k: v for k, v in OAUTH.items() if k != "SLACK_STATE_SECRET"}, "SLACK_STATE_SECRET is not set"),
    (OAUTH | {"SLACK_BOT_TOKEN": BOT_TOKEN}, "SLACK_BOT_TOKEN is set with SLACK_CLIENT_ID"),
    (OAUTH | {"SLACK_APP_TOKEN": "xapp-1-A1-2-abc"}, "SLACK_APP_TOKEN is set with SLACK_CLIENT_ID"),
    ({k: v for k, v in OAUTH.items() if k != "SLACK_SIGNING_SECRET"}, "SLACK_SIGNING_SECRET is not set"),
    (OAUTH | {"SLACK_CLIENT_ID": "trendbot-app"}, "SLACK_CLIENT_ID is malformed"),
    (OAUTH | {"SLACK_CLIENT_SECRET": "not/a/secret"}, "SLACK_CLIENT_SECRET is malformed"),
    (OAUTH | {"SLACK_STATE_SECRET": "short-and-guessable"}, "SLACK_STATE_SECRET is too weak"),
    (OAUTH | {"SLACK_STATE_SECRET": "f" * 40 + " " + "f" * 40}, "SLACK_STATE_SECRET is too weak"),
])
def test_oauth_settings_errors_say_what_is_missing_or_wrong_never_the_value(env, variable):
    with pytest.raises(slack_settings.SettingsError) as err:
        slack_settings.Settings.from_env(env)
    message = str(err.value)
    assert message.startswith(variable) and "\n" not in message
    for name, value in env.items():
        if name != "SLACK_CLIENT_ID":  # the client id is not a secret (it is in every install link)
            assert value not in message


def test_secret_filter_redacts_messages_and_tracebacks():
    filt = SecretFilter([BOT_TOKEN, SIGNING_SECRET])
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "token=%s", (BOT_TOKEN,), None)
    try:
        raise RuntimeError(f"bad {SIGNING_SECRET}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert filt.filter(record)
    assert record.getMessage() == "token=[redacted]"
    assert SIGNING_SECRET not in record.exc_text and "[redacted]" in record.exc_text


def test_secret_filter_redacts_any_slack_token_even_one_it_was_not_given():
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "body: %s", (
        {"ok": True, "access_token": "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
         "refresh_token": "xoxe-1-My0xLTE3NjUzNjcyNDgxLTE", "user": "xoxp-1234-abc", "app": "xapp-1-A1-2-abc"},), None)
    assert SecretFilter(()).filter(record)
    message = record.getMessage()
    assert "xox" not in message and "xapp" not in message and message.count("[redacted]") == 4
    assert "'ok': True" in message  # the rest of the line stays


# -- the app manifest -------------------------------------------------------------------------


def test_manifest_matches_what_the_app_listens_to():
    import yaml

    manifest = yaml.safe_load((Path(__file__).resolve().parents[1] / "slack" / "manifest.yaml").read_text(encoding="utf-8"))
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [s.COMMAND]
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im", "app_home_opened"}
    assert {"app_mentions:read", "chat:write", "commands", "im:history"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    assert manifest["settings"]["socket_mode_enabled"] is True and manifest["settings"]["interactivity"]["is_enabled"]
    assert manifest["features"]["app_home"]["messages_tab_enabled"] and not manifest["features"]["app_home"]["messages_tab_read_only_enabled"]
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == set(slack_settings.BOT_SCOPES)


def test_the_manifest_for_several_workspaces_matches_what_the_app_listens_to_and_the_other_manifest():
    from urllib.parse import urlsplit

    import yaml

    from adapters import slack_installs

    folder = Path(__file__).resolve().parents[1] / "slack"
    single = yaml.safe_load((folder / "manifest.yaml").read_text(encoding="utf-8"))
    manifest = yaml.safe_load((folder / "manifest-oauth.yaml").read_text(encoding="utf-8"))
    settings = manifest["settings"]
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == s.COMMAND and urlsplit(command["url"]).path == s.PATH
    assert set(settings["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im", "app_home_opened",
                                                                  "app_uninstalled", "tokens_revoked"}
    assert urlsplit(settings["event_subscriptions"]["request_url"]).path == s.PATH
    assert urlsplit(settings["interactivity"]["request_url"]).path == s.PATH and settings["interactivity"]["is_enabled"]
    (redirect,) = manifest["oauth_config"]["redirect_urls"]
    assert urlsplit(redirect).scheme == "https" and urlsplit(redirect).path == slack_installs.REDIRECT_PATH
    # what the install asks for is what the app is configured with: the scopes, bot only
    assert manifest["oauth_config"]["scopes"] == {"bot": list(slack_settings.BOT_SCOPES)} == {"bot": single[
        "oauth_config"]["scopes"]["bot"]}
    assert settings["socket_mode_enabled"] is False and settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False  # a token that never expires: nothing to refresh
    # otherwise it is the same app
    del command["url"]
    assert manifest["features"] == single["features"] and manifest["display_information"] == single["display_information"]


# -- which workspace a payload is for --------------------------------------------------------------


def test_the_workspace_of_a_payload_is_the_one_bolt_authorizes_it_for():
    from slack_bolt.request.internals import extract_team_id

    payloads = [fixture(name) for name in ("app_mention", "message_im", "app_home_opened", "slash_command",
                                           "block_actions", "view_submission")]
    shared = fixture("app_mention")  # a channel shared with another workspace: the installation's team answers
    shared["team_id"], shared["event"]["team"] = "T0OTHER", "T0OTHER"
    payloads.append(shared)
    modal = fixture("view_submission")  # a modal opened from a shared channel
    modal["team"]["id"], modal["view"]["app_installed_team_id"] = "T0OTHER", "T0HOME"
    payloads.append(modal)
    assert [slack_payloads.team_of(p) for p in payloads] == ["T0TEST"] * 7 + ["T0HOME"]
    assert [slack_payloads.team_of(p) for p in payloads] == [extract_team_id(p) for p in payloads]
    assert slack_payloads.team_of({"type": "event_callback"}) == ""
    assert slack_payloads.team_of(slack_payloads.minimal(fixture("block_actions"))) == "T0TEST"  # a replay finds it too
