"""trendbot in several Slack workspaces, over real HTTP on loopback against the Slack fake: bolt's
OAuth flow (/slack/install, then Slack's redirect to /slack/oauth_redirect with the code and the
state), each workspace answered with its own bot token, uninstalls that delete that workspace's
rows and no other's, and no token in any log line."""
from __future__ import annotations

import asyncio
import datetime as dt
import html
import json
import logging
import os
import queue
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from adapters import slack_app, slack_settings
from adapters.inbox import Inbox
from adapters.slack_installs import States
from adapters.slack_payloads import minimal
from bot.core import TrendBot
from bot.learning import Learning
from bot.schedule import Subscription
from bot.sqlite_store import SQLiteStore
from tests.conftest import MINI, NINE_UTC
from tests.slack_fake import (CLIENT_ID, CLIENT_SECRET, SIGNING_SECRET, AppThread, FakeSlack, fixture, form_body,
                              interactive_body, send_signed)

FORM, JSON = "application/x-www-form-urlencoded", "application/json"
STATE_SECRET = "5f0c1e2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100"
ONE, TWO = "T0ONE", "T0TWO"
INSTALLER = {ONE: "U0ANN", TWO: "U0BEN"}
COOKIE = "slack-app-oauth-state"


@pytest.fixture
def fake():
    with FakeSlack(scopes=slack_settings.BOT_SCOPES) as f:
        yield f


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "t.db") as st:
        yield st


@pytest.fixture
def bot(mini_kb, store):
    bot = TrendBot(mini_kb)
    bot.enable_tips(store, clock=lambda: NINE_UTC)
    bot.enable_learning(Learning(store))
    return bot


def settings(fake, managers: str = "") -> slack_settings.Settings:
    return slack_settings.Settings.from_env(
        {"SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET, "SLACK_STATE_SECRET": STATE_SECRET,
         "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url, "TRENDBOT_SLACK_MANAGERS": managers},
        host="127.0.0.1", port=0)


@pytest.fixture
def app(fake, bot, store):
    """The app in HTTP mode for several workspaces, its inbox and installations in the bot's store."""
    thread = AppThread(lambda: slack_app.SlackApp(bot, Inbox(store, "slack"), settings(fake)))
    yield thread
    thread.close()


# -- a browser, and Slack's side of the install ----------------------------------------------------


def get(port: int, path: str, cookie: str | None = None) -> tuple[int, dict[str, list[str]], str]:
    """GET a page of the app as a browser would (no redirects followed): (status, headers, body)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            status, headers, body = res.status, res.headers, res.read()
    except urllib.error.HTTPError as err:
        status, headers, body = err.code, err.headers, err.read()
    found: dict[str, list[str]] = {}
    for name, value in headers.items():
        found.setdefault(name.lower(), []).append(value)
    return status, found, body.decode()


def start_install(port: int) -> tuple[str, str, dict[str, list[str]]]:
    """Open /slack/install: (state, the cookie that carries it, the Add to Slack link's query)."""
    status, headers, page = get(port, "/slack/install")
    assert status == 200 and "Add to Slack" in page
    link = html.unescape(re.search(r'<a href="([^"]+)"', page).group(1))
    assert link.startswith("https://slack.com/oauth/v2/authorize?")
    query = parse_qs(urlsplit(link).query)
    (state,) = query["state"]
    (cookie,) = [c for c in headers["set-cookie"] if c.startswith(f"{COOKIE}=")]
    return state, cookie.split(";")[0], query


def install(fake, port: int, team: str, user: str | None = None) -> str:
    """One workspace installs trendbot: the install page, Slack's approval, the redirect back. Its bot token."""
    state, cookie, _ = start_install(port)
    code = fake.grant(team, user or INSTALLER[team])
    status, _, page = get(port, "/slack/oauth_redirect?" + urlencode({"code": code, "state": state}), cookie)
    assert status == 200 and "Thank you!" in page, page
    return fake.token_of(team)


# -- payloads from a workspace ----------------------------------------------------------------------


def as_team(payload: dict, team: str) -> dict:
    """A recorded payload as workspace `team` would send it (its bot user, its ids)."""
    bot_user = f"U0BOT{team[1:]}"
    text = json.dumps(payload).replace("T0TEST", team).replace("U0TRENDBOT", bot_user)
    return json.loads(text)


def mention(team: str, text: str = "is serverless cheaper?", ts: str = "1715000000.000100") -> bytes:
    payload = as_team(fixture("app_mention"), team)
    payload["event"].update(text=f"<@U0BOT{team[1:]}> {text}", ts=ts, channel=f"C{team}")
    payload["event_id"] = f"Ev{team}{ts.replace('.', '')}"
    return json.dumps(payload).encode()


def slash(fake, team: str, text: str, user: str, name: str) -> bytes:
    fields = fixture("slash_command") | {"team_id": team, "channel_id": f"C{team}", "text": text, "user_id": user,
                                         "response_url": fake.response_url(name),
                                         "trigger_id": f"trigger-{name}-{time.monotonic_ns()}"}
    return form_body(fields)


def uninstalled(team: str, kind: str = "app_uninstalled", tokens: dict | None = None) -> bytes:
    """The event Slack sends when a workspace uninstalls the app, or revokes its tokens (the shape of
    https://docs.slack.dev/reference/events/app_uninstalled and .../tokens_revoked)."""
    event = {"type": kind} if tokens is None else {"type": kind, "tokens": tokens}
    return json.dumps({"token": "verification-token", "team_id": team, "api_app_id": "A0TRENDBOT", "event": event,
                       "type": "event_callback", "event_id": f"Ev{kind}{team}", "event_time": 1715000000}).encode()


def replies_in(fake, channel: str) -> list:
    return [c for c in fake.replies("chat.postMessage") + fake.replies("chat.postEphemeral")
            if c.data.get("channel") == channel]


def response(fake, name: str):
    (reply,) = fake.wait_for(lambda f: [c for c in f.replies("response_url") if c.path == f"/response/{name}"])
    return reply


def rows(store_path, sql: str, *params) -> list[tuple]:
    raw = sqlite3.connect(store_path)
    try:
        return raw.execute(sql, params).fetchall()
    finally:
        raw.close()


# -- installing -------------------------------------------------------------------------------------


def test_two_workspaces_install_and_each_is_answered_with_its_own_token(fake, app, store):
    tokens = {team: install(fake, app.port, team) for team in (ONE, TWO)}
    assert tokens[ONE] != tokens[TWO]
    for team, token in tokens.items():
        saved = json.loads(store.installation("slack", team))
        assert (saved["bot_token"], saved["user_id"], saved["team_id"]) == (token, INSTALLER[team], team)
    for i, team in enumerate((ONE, TWO, ONE)):
        assert send_signed(app.port, mention(team, ts=f"1715000000.00010{i}"), JSON)[0] == 200
    replies = fake.wait_replies(3)
    for team in (ONE, TWO):
        mine = replies_in(fake, f"C{team}")
        assert mine and all(c.token == tokens[team] for c in mine)  # the Authorization header at the fake
        assert mine[0].data["blocks"][0]["text"]["text"] == "Is serverless cheaper than running servers?"
    assert len(replies) == 3
    # bolt's authorize step checked each request with that workspace's token, and nothing else was used
    assert {c.token for c in fake.calls if c.method == "auth.test"} == set(tokens.values())
    assert {c.token for c in fake.calls if c.method not in ("oauth.v2.access", "response_url")} == set(tokens.values())
    keys = rows(store.path, "SELECT team_id FROM inbox ORDER BY key")
    assert sorted(keys) == [(ONE,), (ONE,), (TWO,)]  # each recorded question knows its workspace


def test_the_install_page_links_to_slack_with_the_apps_scopes_and_a_state_cookie(fake, app):
    state, cookie, query = start_install(app.port)
    assert query["client_id"] == [CLIENT_ID]
    assert query["scope"][0].split(",") == list(slack_settings.BOT_SCOPES)
    assert "user_scope" not in query or query["user_scope"] == [""]
    assert cookie == f"{COOKIE}={state}"
    _, headers, _ = get(app.port, "/slack/install")
    (set_cookie,) = headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "Secure" in set_cookie and "Max-Age=600" in set_cookie
    assert start_install(app.port)[0] != state  # a new one-time state for every visit


def test_a_bad_missing_or_replayed_state_is_refused_with_a_clear_page_and_stores_nothing(fake, app, store, caplog):
    caplog.set_level(logging.WARNING)
    state, cookie, _ = start_install(app.port)
    forged = "forged-nonce.c2lnbmF0dXJl"
    cases = {
        "no state": ({"code": fake.grant(ONE, "U0ANN")}, cookie, 400, "invalid_browser"),
        "no cookie": ({"code": fake.grant(ONE, "U0ANN"), "state": state}, None, 400, "invalid_browser"),
        "another browser's cookie": ({"code": fake.grant(ONE, "U0ANN"), "state": state}, f"{COOKIE}=someone-else",
                                     400, "invalid_browser"),
        "a state never issued": ({"code": fake.grant(ONE, "U0ANN"), "state": forged}, f"{COOKIE}={forged}", 401,
                                 "invalid_state"),
        "cancelled on Slack's page": ({"error": "access_denied", "state": state}, cookie, 200, "access_denied"),
    }
    for name, (params, sent_cookie, status, reason) in cases.items():
        got, headers, page = get(app.port, "/slack/oauth_redirect?" + urlencode(params), sent_cookie)
        assert (got, reason in page, "Something Went Wrong" in page) == (status, True, True), name
        assert headers["content-type"][0].startswith("text/html"), name
    assert rows(store.path, "SELECT COUNT(*) FROM installations") == [(0,)]
    assert not [c for c in fake.calls if c.method == "oauth.v2.access"]  # no code was exchanged
    # the state itself is still good once, and only once
    status, _, page = get(app.port, "/slack/oauth_redirect?" + urlencode({"code": fake.grant(ONE, "U0ANN"),
                                                                          "state": state}), cookie)
    assert status == 200 and "Thank you!" in page
    status, _, page = get(app.port, "/slack/oauth_redirect?" + urlencode({"code": fake.grant(TWO, "U0BEN"),
                                                                          "state": state}), cookie)
    assert status == 401 and "invalid_state" in page  # replayed
    assert store.installation("slack", TWO) is None and store.installation("slack", ONE) is not None
    refusals = [r for r in caplog.records if "refused a Slack install" in r.getMessage()]
    assert len(refusals) == len(cases) + 1


def test_a_code_slack_refuses_is_a_clear_page_and_stores_nothing(fake, app, store):
    state, cookie, _ = start_install(app.port)
    status, _, page = get(app.port, "/slack/oauth_redirect?" + urlencode({"code": "made-up", "state": state}), cookie)
    assert status == 401 and "invalid_code" in page
    assert rows(store.path, "SELECT COUNT(*) FROM installations") == [(0,)]


def test_a_state_is_signed_runs_out_and_is_good_once(store):
    now = [1000.0]
    states = States(store, STATE_SECRET, ttl=600, clock=lambda: now[0])
    other = States(store, "another-deployment-" + "x" * 32, ttl=600, clock=lambda: now[0])

    async def go():
        early, late, theirs = await states.async_issue(), await states.async_issue(), await other.async_issue()
        assert rows(store.path, "SELECT COUNT(*) FROM used_states") == [(0,)]  # an install page writes nothing
        nonce, expires, signature = early.split(".")
        assert not await states.async_consume(theirs)  # signed with another secret
        assert not await states.async_consume(f"{nonce}.{int(expires) + 3600}.{signature}")  # a longer life, forged
        assert not await states.async_consume(f"{nonce}.{expires}.AAAA")
        assert not await states.async_consume("") and not await states.async_consume("x" * 5000)
        assert await states.async_consume(early)
        assert not await states.async_consume(early)  # used up
        now[0] += 601
        assert not await states.async_consume(late)  # ran out

    asyncio.run(go())


def test_an_installation_keeps_the_bot_token_and_no_user_token_and_org_installs_are_refused(store):
    from slack_bolt.error import BoltError
    from slack_sdk.oauth.installation_store import Installation

    from adapters.slack_installs import Installations

    installs = Installations(store, clock=lambda: 1000.0)
    given = Installation(app_id="A0TRENDBOT", team_id=ONE, team_name="One", bot_token="xoxb-1-2-bot", bot_id="B1",
                         bot_user_id="U0BOTONE", bot_scopes="chat:write,commands", user_id="U0ANN",
                         user_token="xoxp-1-2-user", user_scopes="search:read")

    async def go():
        await installs.async_save(given)
        bot = await installs.async_find_bot(enterprise_id=None, team_id=ONE)
        assert (bot.bot_token, bot.bot_user_id, bot.bot_scopes) == ("xoxb-1-2-bot", "U0BOTONE", ["chat:write", "commands"])
        found = await installs.async_find_installation(enterprise_id=None, team_id=ONE)
        assert found.user_id == "U0ANN" and found.user_token is None  # a user token is never kept
        assert await installs.async_find_installation(enterprise_id=None, team_id=ONE, user_id="U0BEN") is None
        assert await installs.async_find_bot(enterprise_id=None, team_id=TWO) is None
        assert (await installs.workspace(ONE)).installer == "U0ANN"
        assert "xoxb" not in repr(await installs.workspace(ONE))
        with pytest.raises(BoltError):
            await installs.async_save(Installation(enterprise_id="E1", is_enterprise_install=True, bot_token="xoxb-9",
                                                   user_id="U0ORG"))
        await installs.async_delete_installation(enterprise_id=None, team_id=ONE, user_id="U0ANN")  # no user token
        assert await installs.workspace(ONE) is not None
        await installs.async_delete_bot(enterprise_id=None, team_id=ONE)
        assert await installs.workspace(ONE) is None

    asyncio.run(go())
    for path in store.path.parent.iterdir():  # the database and its WAL
        assert b"xoxp-1-2-user" not in path.read_bytes(), path


# -- answering per workspace ------------------------------------------------------------------------


def test_a_workspace_that_never_installed_trendbot_gets_no_answer_and_no_row(fake, app, store):
    install(fake, app.port, ONE)
    assert send_signed(app.port, mention("T0STRANGER"), JSON)[0] == 200
    assert send_signed(app.port, mention(ONE), JSON)[0] == 200
    (reply,) = fake.wait_replies(1)
    assert reply.data["channel"] == f"C{ONE}"
    time.sleep(0.2)
    assert not replies_in(fake, "CT0STRANGER") and rows(store.path, "SELECT team_id FROM inbox") == [(ONE,)]


def test_the_installer_manages_trendbot_in_their_workspace_only(fake, app, store):
    install(fake, app.port, ONE)
    install(fake, app.port, TWO)
    send_signed(app.port, slash(fake, ONE, "subscribe 08:00 Europe/Berlin", "U0ANN", "ann-one"), FORM)
    assert "08:00 Europe/Berlin" in response(fake, "ann-one").data["text"]
    send_signed(app.port, slash(fake, TWO, "subscribe 08:00 Europe/Berlin", "U0ANN", "ann-two"), FORM)
    assert "Not allowed here" in response(fake, "ann-two").data["text"]  # Ann installed it in ONE, not in TWO
    assert store.subscription("slack", f"C{ONE}") == Subscription("slack", f"C{ONE}", dt.time(8, 0), "Europe/Berlin",
                                                                  team=ONE)
    assert store.subscription("slack", f"C{TWO}") is None
    # each check asked the workspace it was about, with that workspace's token: Ann is no admin in TWO
    checks = [(c.method, c.data.get("user") or c.data.get("channel"), c.token) for c in fake.calls
              if c.method in ("users.info", "conversations.info")]
    assert ("users.info", "U0ANN", fake.token_of(TWO)) in checks
    assert ("conversations.info", f"C{ONE}", fake.token_of(ONE)) in checks  # is trendbot in the channel?
    assert all(token == fake.token_of(TWO) for method, _, token in checks if method == "users.info")
    send_signed(app.port, slash(fake, ONE, "best pizza oven in town", "U0CAT", "q-one"), FORM)
    send_signed(app.port, slash(fake, TWO, "what about monorepos", "U0DAN", "q-two"), FORM)
    response(fake, "q-one"), response(fake, "q-two")
    send_signed(app.port, slash(fake, TWO, "report", "U0BEN", "report-two"), FORM)
    report = response(fake, "report-two").data["text"]
    assert "monorepos" in report and "pizza" not in report  # Ben sees his workspace's questions only


def test_a_question_left_by_a_crash_is_replayed_with_its_workspaces_token(fake, app, store):
    install(fake, app.port, ONE)
    token = install(fake, app.port, TWO)
    body = json.loads(mention(TWO, text="k8s"))
    app.call(app.app.replay("slack:msg:replayed", {"body": minimal(body)}))
    (reply,) = fake.wait_replies(1)
    assert reply.token == token and reply.data["channel"] == f"C{TWO}"


def test_app_home_and_the_teach_modal_use_the_workspaces_token(fake, app, store):
    install(fake, app.port, ONE)
    token = install(fake, app.port, TWO)
    store.subscribe(Subscription("slack", f"C{ONE}", team=ONE))
    store.subscribe(Subscription("slack", f"C{TWO}", team=TWO))
    fake.members_of["U0BEN"] = {f"C{ONE}", f"C{TWO}"}  # even in both channels, Ben's App Home shows his workspace's
    home = as_team(fixture("app_home_opened"), TWO)
    home["event"]["user"] = "U0BEN"
    assert send_signed(app.port, json.dumps(home).encode(), JSON)[0] == 200
    (published,) = fake.wait_for(lambda f: [c for c in f.calls if c.method == "views.publish"])
    assert published.token == token
    text = json.dumps(published.data)
    assert f"C{TWO}" in text and f"C{ONE}" not in text and "This week (managers only)" in text
    press = as_team(fixture("block_actions"), TWO) | {"response_url": fake.response_url("teach")}
    press["user"] = {**press["user"], "id": "U0BEN"}
    press["actions"] = [{**press["actions"][0], "action_id": "trendbot_teach", "value": "what about monorepos"}]
    assert send_signed(app.port, interactive_body(press), FORM)[0] == 200
    (opened,) = fake.wait_for(lambda f: [c for c in f.calls if c.method == "views.open"])
    assert opened.token == token
    submission = as_team(fixture("view_submission"), TWO)
    submission["user"]["id"] = "U0BEN"
    submission["view"]["private_metadata"] = json.dumps({"channel": f"C{TWO}"})
    assert send_signed(app.port, interactive_body(submission), FORM)[0] == 200
    (confirmed,) = fake.wait_for(lambda f: f.replies("chat.postEphemeral"))
    assert confirmed.token == token and confirmed.data["user"] == "U0BEN" and "Kubernetes" in confirmed.data["text"]
    submission["user"]["id"] = "U0ANN"  # she installed trendbot in ONE: in TWO she may not teach it
    status, body = send_signed(app.port, interactive_body(submission), FORM)
    assert status == 200 and json.loads(body)["response_action"] == "errors"


def test_daily_tips_go_out_with_each_workspaces_token(fake, app, store, bot):
    tokens = {team: install(fake, app.port, team) for team in (ONE, TWO)}
    for team in (ONE, TWO):
        store.subscribe(Subscription("slack", f"C{team}", dt.time(9, 0), "UTC", team=team))
    store.subscribe(Subscription("slack", "COLD", dt.time(9, 0), "UTC"))  # made before trendbot was installed by OAuth
    poster = slack_app.SlackPoster(None, app.app.client_for_channel)
    results = app.call(bot.tips.run_once({"slack": poster}, NINE_UTC))
    assert sorted((r.channel_id, r.outcome) for r in results) == [("COLD", "failed"), (f"C{ONE}", "sent"),
                                                                   (f"C{TWO}", "sent")]
    for team in (ONE, TWO):
        (post,) = replies_in(fake, f"C{team}")
        assert post.token == tokens[team] and post.data["blocks"][0]["text"]["text"] == "Daily backend tip"


# -- uninstalling -----------------------------------------------------------------------------------


def fill(fake, app, store, team: str) -> None:
    """What a workspace leaves in the store: a subscription with a tip posted, a question asked and
    voted on, a question still pending in the inbox."""
    send_signed(app.port, slash(fake, team, "subscribe 09:00 UTC", INSTALLER[team], f"sub-{team}"), FORM)
    response(fake, f"sub-{team}")
    assert store.claim_post("slack", f"C{team}", "2026-05-04", now=1000.0, stale_after=600)
    store.mark_sent("slack", f"C{team}", "2026-05-04", "tip-1", now=1001.0)
    send_signed(app.port, slash(fake, team, "is serverless cheaper?", "U0ASKER", f"q-{team}"), FORM)
    answer = response(fake, f"q-{team}")
    vote = next(e for b in answer.data["blocks"] if b["type"] == "actions" for e in b["elements"]
                if e["text"]["text"] == "Helpful")
    press = as_team(fixture("block_actions"), team) | {"response_url": fake.response_url(f"v-{team}"),
                                                        "trigger_id": f"trigger-v-{team}"}
    press["actions"] = [{**press["actions"][0], "action_id": vote["action_id"], "value": vote["value"]}]
    send_signed(app.port, interactive_body(press), FORM)
    response(fake, f"v-{team}")
    store.record(f"slack:msg:{team}:C{team}:pending", "slack", "{}", time.time(), 30.0, team=team)


def counts(store, team: str) -> dict[str, int]:
    """The rows kept for one workspace, by table."""
    path = store.path
    return {
        "installations": rows(path, "SELECT COUNT(*) FROM installations WHERE team_id = ?", team)[0][0],
        "subscriptions": rows(path, "SELECT COUNT(*) FROM subscriptions WHERE team_id = ?", team)[0][0],
        "tip_posts": rows(path, "SELECT COUNT(*) FROM tip_posts WHERE channel_id = ?", f"C{team}")[0][0],
        "inbox": rows(path, "SELECT COUNT(*) FROM inbox WHERE team_id = ?", team)[0][0],
        "asked": rows(path, "SELECT COUNT(*) FROM asked WHERE team_id = ?", team)[0][0],
        "votes": rows(path, "SELECT COUNT(*) FROM votes v JOIN asked a ON a.id = v.asked_id WHERE a.team_id = ?",
                      team)[0][0],
    }


@pytest.mark.parametrize("kind, tokens", [("app_uninstalled", None),
                                          ("tokens_revoked", {"oauth": [], "bot": ["U0BOTONE"]})])
def test_an_uninstall_deletes_that_workspaces_rows_and_token_and_the_other_is_still_answered(fake, app, store, kind,
                                                                                             tokens):
    install(fake, app.port, ONE)
    two = install(fake, app.port, TWO)
    fill(fake, app, store, ONE)
    fill(fake, app, store, TWO)
    before = counts(store, TWO)
    assert counts(store, ONE) == before and all(before.values()), before
    fake.revoke(ONE)  # Slack revokes the workspace's tokens, then tells the app
    assert send_signed(app.port, uninstalled(ONE, kind, tokens), JSON)[0] == 200
    fake.wait_for(lambda f: store.installation("slack", ONE) is None)
    assert counts(store, ONE) == dict.fromkeys(before, 0)
    assert counts(store, TWO) == before  # nothing of the other workspace
    fake.calls.clear()
    send_signed(app.port, mention(ONE, ts="1715000900.000001"), JSON)
    send_signed(app.port, mention(TWO, ts="1715000900.000002"), JSON)
    (reply,) = fake.wait_replies(1)
    assert reply.token == two and reply.data["channel"] == f"C{TWO}"
    time.sleep(0.2)
    assert len(fake.replies()) == 1  # the uninstalled workspace's mention was not answered (no token to do it)
    send_signed(app.port, slash(fake, ONE, "k8s", "U0ANN", "after"), FORM)  # a command can still be told why
    assert response(fake, "after").data["text"] == slack_app.NOT_INSTALLED
    assert counts(store, ONE) == dict.fromkeys(before, 0)


def test_a_revoked_user_token_alone_forgets_nothing(fake, app, store):
    install(fake, app.port, ONE)
    assert send_signed(app.port, uninstalled(ONE, "tokens_revoked", {"oauth": ["U0ANN"], "bot": []}), JSON)[0] == 200
    send_signed(app.port, mention(ONE), JSON)
    fake.wait_replies(1)  # events after it are still answered: it was handled, and changed nothing
    time.sleep(0.3)  # bolt runs the listener after the ack: give it time to do what it would
    assert store.installation("slack", ONE) is not None


# -- secrets ----------------------------------------------------------------------------------------


def test_tokens_and_secrets_never_reach_the_logs(fake, app, store, caplog):
    caplog.set_level(logging.DEBUG)  # every library's debug dumps, oauth.v2.access's answer among them
    tokens = [install(fake, app.port, team) for team in (ONE, TWO)]
    for i, team in enumerate((ONE, TWO)):
        send_signed(app.port, mention(team, ts=f"1715000000.00020{i}"), JSON)
    fake.wait_replies(2)
    send_signed(app.port, uninstalled(ONE), JSON)
    fake.wait_for(lambda f: any("rows deleted" in r.getMessage() for r in caplog.records))
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "Received the following response" in text and "oauth.v2.access" in text  # the dumps did run
    assert "[redacted]" in text  # ... and the one holding a token was redacted where it was written
    for secret in (*tokens, CLIENT_SECRET, STATE_SECRET, SIGNING_SECRET):
        assert secret not in text
    assert "installed in Slack workspace T0ONE by U0ANN" in text
    assert re.search(r"Slack workspace T0ONE: its installation and \d+ rows deleted", text)


def test_tips_run_once_says_that_serve_posts_the_tips_of_several_workspaces(fake):
    from bot.config import load

    config = load({"SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET, "SLACK_STATE_SECRET": STATE_SECRET,
                   "SLACK_SIGNING_SECRET": SIGNING_SECRET}, settings=slack_settings.SETTINGS)

    async def open_poster():
        async with slack_app.post_once(config):
            pass

    with pytest.raises(slack_settings.SettingsError, match=r"^SLACK_CLIENT_ID is set: `trendbot tips run-once` posts"):
        asyncio.run(open_poster())


# -- the done-when, as a process ---------------------------------------------------------------------


@pytest.mark.slow
def test_trendbot_serve_installs_two_workspaces_answers_each_with_its_token_and_an_uninstall_removes_its_rows(
        fake, tmp_path):
    root = Path(__file__).resolve().parents[1]
    db = tmp_path / "t.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TRENDBOT_", "DISCORD_"))}
    env |= {"PYTHONPATH": str(root), "SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET,
            "SLACK_STATE_SECRET": STATE_SECRET, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url,
            "TRENDBOT_DB": str(db), "TRENDBOT_KNOWLEDGE": str(MINI), "TRENDBOT_HTTP_HOST": "127.0.0.1",
            "TRENDBOT_HTTP_PORT": "0", "TRENDBOT_SLACK_HOST": "127.0.0.1", "TRENDBOT_SLACK_PORT": "0",
            "TRENDBOT_RELOAD_INTERVAL": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "trendbot", "-v", "serve"], env=env, cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    err: list[str] = []

    def read() -> None:
        for line in proc.stderr:
            err.append(line)
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        port, deadline = None, time.monotonic() + 60
        while port is None:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            m = re.search(r"listening for Slack on http://127\.0\.0\.1:(\d+)/slack/events \(HTTP mode, several", line)
            port = int(m.group(1)) if m else None
        tokens = {team: install(fake, port, team) for team in (ONE, TWO)}
        for i, team in enumerate((ONE, TWO)):
            send_signed(port, slash(fake, team, "subscribe 09:00 UTC", INSTALLER[team], f"sub-{team}"), FORM)
            response(fake, f"sub-{team}")
            assert send_signed(port, mention(team, ts=f"1715000000.00030{i}"), JSON)[0] == 200
        fake.wait_replies(2, "chat.postMessage", timeout=20)
        for team in (ONE, TWO):
            (reply,) = [c for c in fake.replies("chat.postMessage") if c.data["channel"] == f"C{team}"]
            assert reply.token == tokens[team]
        assert send_signed(port, uninstalled(ONE), JSON)[0] == 200
        fake.wait_for(lambda f: rows(db, "SELECT team_id FROM installations") == [(TWO,)], timeout=20)
        for table in ("subscriptions", "inbox", "asked"):
            assert rows(db, f"SELECT DISTINCT team_id FROM {table}") == [(TWO,)], table
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        reader.join(5)
        proc.stderr.close()
    text = "".join(err)
    assert "DEBUG" in text and "oauth.v2.access" in text  # verbose: the exchange was logged, and redacted
    for secret in (*tokens.values(), CLIENT_SECRET, STATE_SECRET, SIGNING_SECRET):
        assert secret not in text
