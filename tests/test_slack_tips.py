"""Daily tips in Slack: who may subscribe a channel, and posting tips through the Web API fake."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.inbox import Inbox
from adapters import slack_app
from adapters import slack_settings
from bot.schedule import Subscription
from bot.sqlite_store import SQLiteStore as Store
from tests.conftest import NINE_UTC
from tests.slack_fake import BOT_TOKEN, SIGNING_SECRET, AppThread, FakeSlack, fixture, form_body, send_signed

FORM = "application/x-www-form-urlencoded"
@pytest.fixture
def fake():
    with FakeSlack() as f:
        yield f


def serve(fake, bot, tmp_path, managers: str = ""):
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url,
           "TRENDBOT_SLACK_MANAGERS": managers}
    settings = slack_settings.Settings.from_env(env, host="127.0.0.1", port=0)
    store = Store(tmp_path / "events.db")
    return AppThread(lambda: slack_app.SlackApp(bot, Inbox(store, "slack"), settings)), store


def subscribe(fake, app, user="U0ALICE", text="subscribe 08:00 Europe/Berlin"):
    body = form_body(fixture("slash_command") | {"text": text, "user_id": user, "response_url": fake.response_url(user)})
    assert send_signed(app.port, body, FORM)[0] == 200
    (reply,) = fake.wait_for(lambda f: [c for c in f.replies("response_url") if c.path == f"/response/{user}"])
    return reply


@pytest.mark.parametrize("who, allowed", [("plain", False), ("admin", True), ("creator", True), ("listed", True)])
def test_only_admins_creators_and_the_allow_list_change_subscriptions(fake, tipbot, tmp_path, who, allowed):
    user = {"plain": "U0BOB", "admin": "U0ADMIN", "creator": "U0MAKER", "listed": "U0LISTED"}[who]
    fake.admins.add("U0ADMIN")
    fake.creators["C0GENERAL"] = "U0MAKER"
    app, store = serve(fake, tipbot, tmp_path, managers="U0LISTED")
    try:
        reply = subscribe(fake, app, user)
    finally:
        app.close()
        store.close()
    sub = tipbot.tips.store.subscription("slack", "C0GENERAL")
    if allowed:
        assert reply.data["response_type"] == "in_channel" and "08:00 Europe/Berlin" in reply.data["text"]
        assert sub == Subscription("slack", "C0GENERAL", dt.time(8, 0), "Europe/Berlin")
    else:
        assert reply.data["response_type"] == "ephemeral" and "Not allowed here" in reply.data["text"]
        assert sub is None


def test_anyone_may_see_the_subscription(fake, tipbot, tmp_path):
    tipbot.tips.store.subscribe(Subscription("slack", "C0GENERAL", dt.time(7, 15), "Asia/Tokyo"))
    app, store = serve(fake, tipbot, tmp_path)
    try:
        reply = subscribe(fake, app, "U0BOB", text="subscription")
    finally:
        app.close()
        store.close()
    assert "07:15 Asia/Tokyo" in reply.data["text"] and "JST" in reply.data["text"]
    assert not [c for c in fake.calls if c.method in ("users.info", "conversations.info")]


def test_malformed_allow_list_names_the_variable():
    with pytest.raises(slack_settings.SettingsError, match="TRENDBOT_SLACK_MANAGERS"):
        slack_settings.Settings.from_env({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                                     "TRENDBOT_SLACK_MANAGERS": "alice"})


def poster(fake) -> slack_app.SlackPoster:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url, retry_handlers=slack_app.retry_handlers())
    return slack_app.SlackPoster(client)


def test_tips_post_as_block_kit_once_and_survive_a_rate_limit(fake, tipbot):
    for ch in ("C1", "C2"):
        tipbot.tips.store.subscribe(Subscription("slack", ch))
    fake.rate_limit_once("chat.postMessage", retry_after=0, channel="C1")
    results = asyncio.run(tipbot.tips.run_once({"slack": poster(fake)}, NINE_UTC))
    assert sorted(r.outcome for r in results) == ["sent", "sent"]
    posts = fake.replies("chat.postMessage")
    assert sorted(c.data["channel"] for c in posts) == ["C1", "C2"]
    assert posts[0].data["blocks"][0]["text"]["text"] == "Daily backend tip"
    assert [c.status for c in fake.calls if c.method == "chat.postMessage"].count(429) == 1
    asyncio.run(tipbot.tips.run_once({"slack": poster(fake)}, NINE_UTC + dt.timedelta(minutes=1)))
    assert len(fake.replies("chat.postMessage")) == 2


def test_channel_gone_is_deactivated_after_repeated_permanent_errors(fake, tipbot):
    tipbot.tips.store.subscribe(Subscription("slack", "CGONE"))
    fake.post_errors["CGONE"] = "channel_not_found"
    outcomes = [asyncio.run(tipbot.tips.run_once({"slack": poster(fake)}, NINE_UTC + dt.timedelta(minutes=m)))[0].outcome
                for m in range(3)]
    assert outcomes == ["failed", "failed", "deactivated"]
    assert not tipbot.tips.store.subscription("slack", "CGONE").active


def test_transient_error_keeps_the_channel(fake, tipbot):
    tipbot.tips.store.subscribe(Subscription("slack", "CFLAKY"))
    fake.post_errors["CFLAKY"] = "internal_error"
    for m in range(4):
        asyncio.run(tipbot.tips.run_once({"slack": poster(fake)}, NINE_UTC + dt.timedelta(minutes=m)))
    assert tipbot.tips.store.subscription("slack", "CFLAKY").active
    del fake.post_errors["CFLAKY"]
    results = asyncio.run(tipbot.tips.run_once({"slack": poster(fake)}, NINE_UTC + dt.timedelta(minutes=5)))
    assert [r.outcome for r in results] == ["sent"]


@pytest.mark.slow
def test_run_once_from_the_cli_posts_due_slack_tips(fake, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import MINI

    root = Path(__file__).resolve().parents[1]
    db = tmp_path / "cron.db"
    with Store(db) as st:
        st.subscribe(Subscription("slack", "C0CRON", dt.time(9, 0), "UTC"))
    env = {**os.environ, "PYTHONPATH": str(root), "TRENDBOT_DB": str(db), "SLACK_BOT_TOKEN": BOT_TOKEN,
           "SLACK_API_URL": fake.api_url}
    cmd = [sys.executable, "-m", "trendbot", "--knowledge", str(MINI), "tips", "run-once", "--now", "2026-05-04T09:01:00Z"]
    for _ in range(2):  # the second run finds today's tip already posted
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        assert BOT_TOKEN not in out.stderr + out.stdout
    (post,) = fake.replies("chat.postMessage")
    assert post.data["channel"] == "C0CRON" and post.data["blocks"][0]["text"]["text"] == "Daily backend tip"


@pytest.mark.parametrize("private, join_error, joined", [(False, "", True), (False, "missing_scope", False),
                                                         (True, "", False)])
def test_subscribing_where_trendbot_is_not_a_member_joins_or_asks_for_an_invite(fake, tipbot, tmp_path, private,
                                                                               join_error, joined):
    fake.admins.add("U0ADMIN")
    fake.outside["C0GENERAL"] = private
    fake.join_error = join_error
    app, store = serve(fake, tipbot, tmp_path)
    try:
        reply = subscribe(fake, app, "U0ADMIN")
    finally:
        app.close()
        store.close()
    sub = tipbot.tips.store.subscription("slack", "C0GENERAL")
    if joined:  # a public channel: trendbot joins it by itself (channels:join)
        assert sub is not None and "08:00 Europe/Berlin" in reply.data["text"]
        assert [c.data["channel"] for c in fake.calls if c.method == "conversations.join"] == ["C0GENERAL"]
    else:
        assert sub is None and reply.data["response_type"] == "ephemeral"
        assert "Invite me first with /invite @trendbot" in reply.data["text"]


def test_the_manifest_asks_for_the_scopes_the_code_uses():
    import yaml

    from tests.slack_fake import ROOT_MANIFEST

    manifest = yaml.safe_load(ROOT_MANIFEST.read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"chat:write", "commands", "app_mentions:read", "im:history", "users:read", "channels:read",
            "groups:read", "channels:join"} <= scopes
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert {"app_mention", "message.im", "app_home_opened"} <= set(manifest["settings"]["event_subscriptions"]["bot_events"])
    readme = (ROOT_MANIFEST.parents[1] / "README.md").read_text()
    assert all(f"`{scope}`" in readme for scope in scopes)  # the README names every scope the app asks for
