"""Several replicas on one real PostgreSQL (tests/pg.py): two `trendbot serve` processes in Slack's
HTTP mode, each sent every event (as a load balancer retrying, or Slack redelivering, would), answer
each question once; four `trendbot tips run-once` at once post one tip per channel; a phrasing
taught through one replica is answered by the other; and everything lives in PostgreSQL, none
of it in a local SQLite file."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot import sqlite_store
from bot.postgres_store import PostgresStore
from bot.schedule import Subscription
from tests.conftest import MINI
from tests.slack_fake import BOT_TOKEN, FakeSlack, fixture, form_body, post, signature_headers
from tests.test_crash import Serve

pytestmark = pytest.mark.slow  # every test here starts processes

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = 60
COMMANDS = 20
TABLES = {"schema_version", "inbox", "subscriptions", "tip_posts", "asked", "votes", "learned", "meta", "leases",
          "installations", "used_states"}


class Replicas:
    """Two `trendbot serve` replicas (Slack HTTP mode) on one PostgreSQL database and one Slack fake."""

    def __init__(self, fake: FakeSlack, server, folder: Path):
        self.fake, self.server, self.url = fake, server, server.database()
        self.cwd, self.state = folder / "cwd", folder / "state"  # where a local store would show up
        self.cwd.mkdir()
        self.state.mkdir()
        self.procs = [Serve(fake, self.url, cwd=self.cwd, XDG_STATE_HOME=str(self.state), TRENDBOT_RELOAD_INTERVAL="0.5",
                            TRENDBOT_SLACK_MANAGERS="U0BOSS", TRENDBOT_LOG_FORMAT="json") for _ in range(2)]

    def sql(self, statement: str) -> list[tuple]:
        """Plain SQL on the replicas' database."""
        return self.server.sql(statement, self.url)

    def events(self, i: int) -> list[dict]:
        """The JSON log lines of replica i so far."""
        out = []
        for line in list(self.procs[i].lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self) -> None:
        for p in self.procs:
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.proc.wait(20)


@pytest.fixture(scope="module")
def replicas(pg_server, tmp_path_factory):
    with FakeSlack() as fake:
        running = Replicas(fake, pg_server, tmp_path_factory.mktemp("replicas"))
        try:
            yield running
        finally:
            running.stop()


def mention(ts: str, text: str = "k8s") -> bytes:
    payload = fixture("app_mention")
    payload["event_id"] = f"Ev{ts.replace('.', '')}"
    payload["event"].update(ts=ts, text=f"<@U0TRENDBOT> {text}", client_msg_id=f"msg-{ts}")
    return json.dumps(payload).encode()


def slash(fake: FakeSlack, name: str, text: str, user: str = "U0ALICE") -> bytes:
    return form_body(fixture("slash_command") | {"text": text, "user_id": user, "response_url": fake.response_url(name),
                                                 "trigger_id": f"trigger-{name}"})


def deliver(port: int, body: bytes, content_type: str = "application/json", retry: int = 0) -> int:
    headers = signature_headers(body) | ({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
                                          if retry else {})
    return post(port, body, content_type, headers)[0]


def threads(fake: FakeSlack, prefix: str) -> collections.Counter:
    """chat.postMessage replies per thread (the question's ts), for the questions whose ts starts so."""
    return collections.Counter(c.data.get("thread_ts") for c in fake.replies("chat.postMessage")
                               if str(c.data.get("thread_ts", "")).startswith(prefix))


def test_two_replicas_each_sent_every_event_answer_each_question_once(replicas):
    fake, (a, b) = replicas.fake, replicas.procs
    mentions = [f"1715000700.{i:06d}" for i in range(QUESTIONS)]
    commands = [f"cmd{i}" for i in range(COMMANDS)]

    def both(i: int) -> list[int]:
        """One event to both replicas: half at the same instant, half as a retry after the first got its 200."""
        ts = mentions[i]
        if i % 2:
            with ThreadPoolExecutor(2) as pair:
                return list(pair.map(lambda p: deliver(p.port, mention(ts)), (a, b)))
        first, second = (a, b) if i % 4 == 0 else (b, a)
        return [deliver(first.port, mention(ts)), deliver(second.port, mention(ts), retry=1)]

    def command_to_both(i: int) -> list[int]:
        body = slash(fake, commands[i], "kubernetes")
        with ThreadPoolExecutor(2) as pair:
            return list(pair.map(lambda p: deliver(p.port, body, "application/x-www-form-urlencoded"), (a, b)))

    with ThreadPoolExecutor(10) as pool:
        statuses = [s for pair in pool.map(both, range(QUESTIONS)) for s in pair]
        statuses += [s for pair in pool.map(command_to_both, range(COMMANDS)) for s in pair]
    assert statuses == [200] * (2 * (QUESTIONS + COMMANDS))  # every delivery acknowledged, by both replicas

    fake.wait_for(lambda f: len(threads(f, "1715000700.")) == QUESTIONS, timeout=60)
    fake.wait_for(lambda f: {c.path for c in f.replies("response_url")} >= {f"/response/{n}" for n in commands},
                  timeout=60)
    # A second reply could only come from a question still unanswered in the inbox (a replay, or a
    # retry taking over a lease run out): once every row is answered, the count is final.
    unanswered = "SELECT COUNT(*) FROM inbox WHERE answered_at IS NULL"
    deadline = time.monotonic() + 30
    while replicas.sql(unanswered) != [(0,)]:
        assert time.monotonic() < deadline, replicas.sql("SELECT key, leased_until FROM inbox WHERE answered_at IS NULL")
        time.sleep(0.05)
    per_question = threads(fake, "1715000700.")
    per_command = collections.Counter(c.path for c in fake.replies("response_url")
                                      if c.path.startswith("/response/cmd"))
    answered_by = [sum(1 for e in replicas.events(i) if e.get("event") == "answer") for i in (0, 1)]
    print(f"{QUESTIONS} mentions and {COMMANDS} commands, each sent to both replicas: replies per mention "
          f"{sorted(set(per_question.values()))}, per command {sorted(set(per_command.values()))}; "
          f"answered by replica A {answered_by[0]}, by replica B {answered_by[1]}")
    assert set(per_question) == set(mentions) and set(per_question.values()) == {1}
    assert set(per_command) == {f"/response/{n}" for n in commands} and set(per_command.values()) == {1}
    assert sum(answered_by) == QUESTIONS + COMMANDS
    assert "Traceback" not in "".join(a.lines + b.lines)
    # INFO is trendbot's own: the pool's line per connection lent stays out (psycopg logs warnings only)
    assert not [e for i in (0, 1) for e in replicas.events(i) if e.get("logger", "").startswith("psycopg")]


def test_the_store_is_in_postgresql_and_no_local_file_was_written(replicas):
    fake, (a, _) = replicas.fake, replicas.procs
    assert deliver(a.port, mention("1715000800.000001")) == 200
    fake.wait_for(lambda f: threads(f, "1715000800.000001"), timeout=30)
    tables = {t for (t,) in replicas.sql("SELECT table_name FROM information_schema.tables"
                                         " WHERE table_schema = 'public'")}
    assert TABLES <= tables
    assert replicas.sql("SELECT version FROM schema_version") == [(sqlite_store.SCHEMA_VERSION,)]
    assert replicas.sql("SELECT COUNT(*) FROM inbox WHERE key = 'slack:msg:T0TEST:C0GENERAL:1715000800.000001'"
                        " AND answered_at IS NOT NULL") == [(1,)]
    assert replicas.sql("SELECT COUNT(*) FROM asked")[0][0] >= 1  # the learning loop's rows too
    assert list(replicas.cwd.iterdir()) == []  # no folder named postgresql:, no database file
    assert not list(replicas.state.rglob("*.db*"))  # nor the default SQLite store


def test_a_phrasing_taught_through_one_replica_is_answered_by_the_other(replicas):
    fake, (a, b) = replicas.fake, replicas.procs
    question = "how do monorepos work"

    def answer_from(proc: Serve, ts: str) -> str:
        assert deliver(proc.port, mention(ts, question)) == 200
        # an answer is a message in the thread; a decline is shown to the asker only (chat.postEphemeral)
        (reply,) = fake.wait_for(lambda f: [c for c in f.replies() if c.data.get("thread_ts") == ts], timeout=30)
        return f"{reply.method}: {reply.data['blocks'][0]['text']['text']}"

    assert answer_from(b, "1715000900.000001").startswith("chat.postEphemeral")  # declined: not known yet
    reloads = sum(1 for e in replicas.events(1) if e.get("event") == "knowledge_reloaded")
    assert deliver(a.port, slash(fake, "teach", f"teach kubernetes {question}", user="U0BOSS"),
                   "application/x-www-form-urlencoded") == 200
    (taught,) = fake.wait_for(lambda f: [c for c in f.replies("response_url") if c.path == "/response/teach"],
                              timeout=30)
    assert "Taught" in json.dumps(taught.data)
    # Replica B's reload tick (TRENDBOT_RELOAD_INTERVAL=0.5) finds the new phrasing in the database.
    deadline = time.monotonic() + 30
    while sum(1 for e in replicas.events(1) if e.get("event") == "knowledge_reloaded") == reloads:
        assert time.monotonic() < deadline, "replica B never picked up the taught phrasing"
        time.sleep(0.1)
    answer = answer_from(b, "1715000900.000002")
    assert answer.startswith("chat.postMessage") and "Kubernetes" in answer


TIPS_CHANNELS = [f"C0TIP{i}" for i in range(8)]


def test_four_tips_run_once_at_the_same_time_post_one_tip_per_channel(pg_url, tmp_path):
    with PostgresStore(pg_url) as st:
        for channel in TIPS_CHANNELS:
            st.subscribe(Subscription("slack", channel))  # 09:00 UTC, all topics
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRENDBOT_", "SLACK_", "DISCORD_"))}
    with FakeSlack() as fake:
        env |= {"PYTHONPATH": str(ROOT), "TRENDBOT_DB": pg_url, "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_API_URL": fake.api_url, "XDG_STATE_HOME": str(tmp_path / "state")}
        cmd = [sys.executable, "-m", "trendbot", "--knowledge", str(MINI), "tips", "run-once",
               "--now", "2026-05-04T09:01:00Z"]
        procs = [subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        posts = collections.Counter(c.data["channel"] for c in fake.replies("chat.postMessage"))
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    sent = [line for _, err in outs for line in err.splitlines() if line.endswith(")") and ": sent (" in line]
    print(f"4 processes, {len(TIPS_CHANNELS)} channels due: tips per channel {sorted(set(posts.values()))}; "
          f"posts per process {[sum(': sent (' in line for line in err.splitlines()) for _, err in outs]}")
    assert posts == {channel: 1 for channel in TIPS_CHANNELS}
    assert len(sent) == len(TIPS_CHANNELS)
    assert not (tmp_path / "state").exists() and not list(tmp_path.glob("*.db*"))
