"""The store's rows per team (schema 6): the installations of an app in several workspaces, one-time
OAuth states, and the team each subscription, inbox row and question belongs to, so that one team's
rows are deleted and no other's. `store` opens the store the tests run on (two on one file are two
processes), SQLite and PostgreSQL alike (tests/conftest.py's store_db)."""
from __future__ import annotations

import datetime as dt

import pytest

from bot import sqlite_store
from bot.schedule import Subscription


@pytest.fixture
def store(store_db):
    return store_db.open  # each call opens the store again, closed after the test


def rec(st, key, now=1000.0, lease=30.0):
    return st.record(key, "slack", "{}", now, lease)


def test_version_5_rows_carry_over_to_6_as_rows_of_no_team(store, store_db, monkeypatch):
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", sqlite_store.MIGRATIONS[:5])
    monkeypatch.setattr(sqlite_store, "SCHEMA_VERSION", 5)
    store().close()
    # rows as version 5 wrote them
    store_db.sql("INSERT INTO subscriptions VALUES ('slack', 'C1', '08:00', 'UTC', '', 1, 0, 1000)")
    store_db.sql("INSERT INTO inbox VALUES ('slack:msg:T:C:1', 'slack', '{}', 1000, 1030, NULL)")
    store_db.sql("INSERT INTO asked (platform, channel_id, asked_at, entry_id, answered, score, question)"
                 " VALUES ('slack', 'C1', 1000, 'k8s', 1, 0.9, 'k8s?')")
    monkeypatch.undo()
    with store() as new:
        assert new.version == 6
        assert new.subscription("slack", "C1") == Subscription("slack", "C1", dt.time(8, 0), "UTC", team="")
        assert rec(new, "slack:msg:T:C:1", now=1001) == "busy"
        assert [q[-1] for q in new.questions(0)] == ["k8s?"] and new.questions(0, team="T1") == []


def test_an_installation_per_team_saved_replaced_and_deleted(store):
    st = store()
    assert st.installation("slack", "T1") is None
    st.save_installation("slack", "T1", '{"bot_token": "xoxb-1"}', now=1000.0)
    st.save_installation("slack", "T2", '{"bot_token": "xoxb-2"}', now=1000.0)
    st.save_installation("slack", "T1", '{"bot_token": "xoxb-1b"}', now=1001.0)  # installed again
    assert st.installation("slack", "T1") == '{"bot_token": "xoxb-1b"}'
    assert st.installation("discord", "T1") is None  # per platform
    assert st.delete_installation("slack", "T1") and not st.delete_installation("slack", "T1")
    assert st.installation("slack", "T1") is None and st.installation("slack", "T2") == '{"bot_token": "xoxb-2"}'
    with pytest.raises(ValueError):
        st.save_installation("slack", "", "{}", now=1000.0)


def test_an_oauth_state_is_used_once_by_one_replica(store, store_db):
    a, b = store(), store()
    assert b.use_state("s1", now=1000.0, expires_at=1600.0)  # one replica finishes the flow
    assert not a.use_state("s1", now=1001.0, expires_at=1600.0)  # replayed, on another
    assert not b.use_state("s1", now=1002.0, expires_at=1600.0)
    assert a.use_state("s2", now=1003.0, expires_at=1603.0)
    assert a.use_state("s3", now=1700.0, expires_at=2300.0)  # and the ones past their time are dropped on the way
    assert store_db.sql("SELECT state FROM used_states") == [("s3",)]


def test_forgetting_a_team_deletes_its_rows_and_no_other_teams(store):
    st = store()
    for team in ("T1", "T2", ""):
        st.save_installation("slack", team or "T0", "{}", now=1000.0)
        st.subscribe(Subscription("slack", f"C{team}", team=team))
        assert st.claim_post("slack", f"C{team}", "2026-05-04", now=1000.0, stale_after=600)
        st.mark_sent("slack", f"C{team}", "2026-05-04", "tip-1", now=1001.0)
        st.record(f"slack:msg:{team}:C:1", "slack", "{}", 1000.0, 30.0, team=team)
        st.record(f"slack:msg:{team}:C:2", "slack", "{}", 1000.0, 30.0, team=team)
        st.answered(f"slack:msg:{team}:C:2", now=1001.0)
        asked = st.record_question("slack", f"C{team}", 1000.0, "k8s", True, 0.9, f"k8s in {team}?", team=team)
        st.vote(asked, "voter", True, now=1002.0)
    st.record_question("discord", "G1", 1000.0, "k8s", True, 0.9, "k8s?", team="T1")  # another platform
    # installation, subscription, tip post, two inbox rows, question, vote
    assert st.forget_team("slack", "T1") == 7
    assert st.installation("slack", "T1") is None and st.installation("slack", "T2") == "{}"
    assert [s.channel_id for s in st.subscriptions()] == ["C", "CT2"]
    assert st.sent_tips("slack", "CT1") == [] and st.sent_tips("slack", "CT2") == [("2026-05-04", "tip-1")]
    assert rec(st, "slack:msg:T1:C:1", now=1003) == "new"  # its inbox rows went
    assert rec(st, "slack:msg:T2:C:1", now=1003) == "busy" and rec(st, "slack:msg:T2:C:2", now=1003) == "answered"
    assert sorted(q[-1] for q in st.questions(0)) == ["k8s in ?", "k8s in T2?", "k8s?"]
    assert len(st.votes(0)) == 2
    assert st.forget_team("slack", "T1") == 0
    with pytest.raises(ValueError):
        st.forget_team("slack", "")  # '' is every row of a single-workspace install: never "one team"


def test_questions_and_votes_of_one_team(store):
    st = store()
    a = st.record_question("slack", "C1", 1000.0, "k8s", True, 0.9, "in one", team="T1")
    b = st.record_question("slack", "C2", 1000.0, None, False, 0.1, "in two", team="T2")
    st.vote(a, "v", False, now=1001.0)
    assert [q[-1] for q in st.questions(0, team="T1")] == ["in one"]
    assert [q[-1] for q in st.questions(0, team="T2")] == ["in two"]
    assert [q[-1] for q in st.questions(0)] == ["in one", "in two"]
    assert st.votes(0, team="T1") == [(a, "k8s", 0, "in one")] and st.votes(0, team="T2") == []
    assert b > a


def test_a_subscription_keeps_its_team_when_it_changes(store):
    st = store()
    st.subscribe(Subscription("slack", "C1", dt.time(8, 0), "UTC", team="T1"))
    st.subscribe(Subscription("slack", "C1", dt.time(9, 30), "Europe/Berlin", team="T1"))
    assert st.subscription("slack", "C1") == Subscription("slack", "C1", dt.time(9, 30), "Europe/Berlin", team="T1")
    assert [s.team for s in st.subscriptions()] == ["T1"]
