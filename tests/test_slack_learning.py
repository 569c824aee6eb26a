"""The learning loop in Slack, over real HTTP against the Slack fake: votes, the report, the Teach
modal, and the App Home."""
from __future__ import annotations

import json
import time

import pytest

from adapters import slack_app
from adapters import slack_settings
from adapters.inbox import Inbox
from adapters.slack_blocks import TEACH_ACTION
from adapters.slack_home import HOME_ASK, TEACH_VIEW
from bot.core import TrendBot
from bot.learning import Learning
from bot.sqlite_store import SQLiteStore
from tests.slack_fake import (BOT_TOKEN, SIGNING_SECRET, AppThread, FakeSlack, fixture, form_body, interactive_body,
                              send_signed)

FORM, JSON = "application/x-www-form-urlencoded", "application/json"


@pytest.fixture
def fake():
    with FakeSlack() as f:
        yield f


@pytest.fixture
def learnbot(mini_kb, tmp_path):
    store = SQLiteStore(tmp_path / "t.db")
    bot = TrendBot(mini_kb)
    bot.enable_tips(store)
    bot.enable_learning(Learning(store))
    yield bot
    store.close()


@pytest.fixture
def app(fake, learnbot, tmp_path):
    settings = slack_settings.Settings.from_env({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                                            "SLACK_API_URL": fake.api_url, "TRENDBOT_SLACK_MANAGERS": "U0BOSS"},
                                           host="127.0.0.1", port=0)
    inbox_store = SQLiteStore(tmp_path / "inbox.db")
    thread = AppThread(lambda: slack_app.SlackApp(learnbot, Inbox(inbox_store, "slack"), settings))
    yield thread
    thread.close()
    inbox_store.close()


def slash(fake, text: str, user: str = "U0ALICE", name: str = "cmd") -> bytes:
    return form_body(fixture("slash_command") | {"text": text, "user_id": user, "response_url": fake.response_url(name),
                                                 "trigger_id": f"trigger-{name}-{time.monotonic_ns()}"})


def press(fake, action_id: str, value: str, user: str = "U0ALICE", name: str = "act") -> bytes:
    payload = fixture("block_actions") | {"response_url": fake.response_url(name),
                                          "trigger_id": f"trigger-{name}-{time.monotonic_ns()}"}
    payload["user"] = {**payload["user"], "id": user}
    payload["actions"] = [{**payload["actions"][0], "action_id": action_id, "value": value}]
    return interactive_body(payload)


def reply_at(fake, name: str):
    (reply,) = fake.wait_for(lambda f: [c for c in f.replies("response_url") if c.path == f"/response/{name}"])
    return reply


def buttons(reply) -> dict[str, dict]:
    return {e["text"]["text"]: e for b in reply.data["blocks"] if b["type"] == "actions" for e in b["elements"]}


def test_an_answer_has_helpful_and_not_helpful_and_a_vote_is_private_and_changeable(fake, app, learnbot):
    send_signed(app.port, slash(fake, "is serverless cheaper?", name="q"), FORM)
    answer = reply_at(fake, "q")
    helpful, unhelpful = buttons(answer)["Helpful"], buttons(answer)["Not helpful"]
    assert helpful["value"].startswith("good ") and unhelpful["value"] == "bad " + helpful["value"].split()[1]
    send_signed(app.port, press(fake, unhelpful["action_id"], unhelpful["value"], name="v1"), FORM)
    first = reply_at(fake, "v1")
    assert first.data["response_type"] == "ephemeral" and "noted" in first.data["text"]  # only the voter sees it
    assert "<@" not in first.data["text"] and "<!" not in first.data["text"]  # pings nobody
    send_signed(app.port, press(fake, unhelpful["action_id"], unhelpful["value"], name="v2"), FORM)
    assert "already" in reply_at(fake, "v2").data["text"]  # one vote per person per answer
    send_signed(app.port, press(fake, helpful["action_id"], helpful["value"], name="v3"), FORM)
    assert "changed" in reply_at(fake, "v3").data["text"]
    send_signed(app.port, press(fake, unhelpful["action_id"], unhelpful["value"], user="U0BOB", name="v4"), FORM)
    reply_at(fake, "v4")
    (entry,) = learnbot.report(7).feedback
    assert (entry.entry_id, entry.helpful, entry.not_helpful) == ("serverless-cheaper", 1, 1)
    raw = json.dumps(learnbot.learning.store.votes(0))
    assert "U0ALICE" not in raw and "U0BOB" not in raw  # no user id is kept in clear


def test_a_manager_sees_teach_on_a_decline_and_the_modal_teaches_it(fake, app, learnbot):
    send_signed(app.port, slash(fake, "what about monorepos", user="U0ALICE", name="plain"), FORM)
    assert "Teach trendbot this" not in buttons(reply_at(fake, "plain"))  # not a manager: no Teach
    send_signed(app.port, slash(fake, "what about monorepos", user="U0BOSS", name="boss"), FORM)
    teach = buttons(reply_at(fake, "boss"))["Teach trendbot this"]
    assert teach["action_id"] == TEACH_ACTION and teach["value"] == "what about monorepos"
    send_signed(app.port, press(fake, teach["action_id"], teach["value"], user="U0BOSS", name="t"), FORM)
    (opened,) = fake.wait_for(lambda f: [c for c in f.calls if c.method == "views.open" and c.status == 200])
    view = json.loads(opened.data["view"]) if isinstance(opened.data["view"], str) else opened.data["view"]
    assert view["callback_id"] == TEACH_VIEW and view["blocks"][0]["element"]["initial_value"] == "what about monorepos"
    entries = [o["value"] for g in view["blocks"][1]["element"]["option_groups"] for o in g["options"]]
    assert set(entries) == {"serverless", "kubernetes", "serverless-cheaper"}  # every entry, searchable
    submission = fixture("view_submission")
    submission["user"]["id"] = "U0BOSS"
    status, _ = send_signed(app.port, interactive_body(submission), FORM)
    assert status == 200
    (confirmed,) = fake.wait_for(lambda f: f.replies("chat.postEphemeral"))
    assert confirmed.data["user"] == "U0BOSS" and "Kubernetes" in confirmed.data["text"]
    assert learnbot.learning.phrasings() == {"kubernetes": ("what about monorepos",)}


def test_someone_else_cannot_submit_the_teach_modal(fake, app, learnbot):
    submission = fixture("view_submission")
    submission["user"]["id"] = "U0ALICE"
    status, body = send_signed(app.port, interactive_body(submission), FORM)
    assert status == 200 and json.loads(body)["response_action"] == "errors"
    assert learnbot.learning.phrasings() == {}


def test_the_report_is_for_managers_and_private(fake, app, learnbot):
    for q in ("what about monorepos", "monorepo?", "how do monorepos work"):
        send_signed(app.port, slash(fake, q, name=f"q{len(q)}"), FORM)
        reply_at(fake, f"q{len(q)}")
    send_signed(app.port, slash(fake, "report", user="U0ALICE", name="r1"), FORM)
    assert "Not allowed here" in reply_at(fake, "r1").data["text"]
    send_signed(app.port, slash(fake, "report", user="U0BOSS", name="r2"), FORM)
    report = reply_at(fake, "r2")
    assert report.data["response_type"] == "ephemeral"
    assert "3 questions" in report.data["text"] and "(3×)" in report.data["text"]  # one group of three


def test_the_app_home_shows_how_to_ask_examples_subscriptions_and_for_managers_the_report(fake, app, learnbot):
    import datetime as dt

    from bot.schedule import Subscription

    learnbot.tips.store.subscribe(Subscription("slack", "C0GENERAL", dt.time(8, 30), "Europe/Berlin", ("serverless",)))
    learnbot.tips.store.subscribe(Subscription("slack", "C0SECRET", dt.time(9, 0), "UTC"))
    fake.members_of["U0ALICE"] = {"C0GENERAL"}
    fake.members_of["U0BOSS"] = {"C0GENERAL", "C0SECRET"}
    for user in ("U0ALICE", "U0BOSS"):
        event = fixture("app_home_opened")
        event["event"]["user"] = user
        event["event_id"] = f"Ev{user}"
        assert send_signed(app.port, json.dumps(event).encode(), JSON)[0] == 200
    published = fake.wait_for(lambda f: (p := [c for c in f.calls if c.method == "views.publish"]) and len(p) == 2 and p)
    views = {c.data["user_id"]: (json.loads(c.data["view"]) if isinstance(c.data["view"], str) else c.data["view"])
             for c in published}
    alice, boss = (json.dumps(views[u]) for u in ("U0ALICE", "U0BOSS"))
    assert "<#C0GENERAL>" in alice and "C0SECRET" not in alice  # only the channels she is in
    assert "<#C0SECRET>" in boss and "managers only" in boss and "managers only" not in alice
    examples = [e for b in views["U0ALICE"]["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert examples and all(e["action_id"].startswith(HOME_ASK) for e in examples)
    payload = fixture("block_actions") | {"container": {"type": "view", "view_id": "V0HOME"},
                                          "trigger_id": "trigger-home-1"}
    payload.pop("response_url")
    payload.pop("channel")
    payload["actions"] = [{"action_id": examples[0]["action_id"], "value": examples[0]["value"], "type": "button"}]
    send_signed(app.port, interactive_body(payload), FORM)
    (dm,) = fake.wait_replies(1, "chat.postMessage")
    assert dm.data["channel"] == "U0ALICE"  # pressed in the App Home: answered in the DM
