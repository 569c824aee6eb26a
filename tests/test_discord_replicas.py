"""Two `trendbot discord` processes on one store against the Discord fake.

Without shards only the replica holding the leader lease connects: a mention is answered once, a
kill -9 hands the connection to the standby once the lease has run out (and the standby answers
what the dead one had recorded but not answered), a SIGTERM hands it over at once, and two
sessions are never open together. With TRENDBOT_DISCORD_SHARDS each replica runs its own shard and
answers its own servers; a dead replica's servers go unanswered (Discord drops their events) until
it is back. The lease runs with its default of 30 s here, so the times printed are the real ones.
"""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests import discord_fake
from tests.conftest import MINI
from tests.discord_fake import TOKEN, FakeDiscord, channel_of, server_on

ROOT = Path(__file__).resolve().parents[1]
TAKEOVER = 60.0  # the bound: a standby takes over within a minute of the leader dying


class Replica:
    """`trendbot discord` as a process pointed at the fake, on the shared store; its JSON log kept."""

    def __init__(self, fake: FakeDiscord, db: Path, name: str, **env: str):
        self.name = name
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TRENDBOT_", "SLACK_", "DISCORD_"))}
        env = {**base, "PYTHONPATH": str(ROOT), "DISCORD_TOKEN": TOKEN, "TRENDBOT_DB": str(db),
               "TRENDBOT_KNOWLEDGE": str(MINI), "TRENDBOT_LOG_FORMAT": "json", "TRENDBOT_HTTP_HOST": "127.0.0.1",
               "TRENDBOT_HTTP_PORT": "0", "TRENDBOT_RELOAD_INTERVAL": "0", "TRENDBOT_LOG_LEVEL": "info", **env}
        self.proc = subprocess.Popen([sys.executable, "-c", fake.launcher(), "discord"], env=env, cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = self.wait_log("health and metrics on")
        self.http = int(line.split("http://127.0.0.1:")[1].split("/")[0])

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def records(self) -> list[dict]:
        """The JSON log lines (the `trendbot: ...` lines a person starting it reads are plain text)."""
        with self._cond:
            return [json.loads(line) for line in self.lines if line.startswith("{")]

    def wait_log(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                left = deadline - time.monotonic()
                assert left > 0 and self.proc.poll() is None, f"{self.name}: {needle!r} not logged:\n" + "".join(self.lines)
                self._cond.wait(min(left, 0.5))

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def answered(self) -> list[str]:
        """The channels this replica answered in (its `answer` events)."""
        return [r["channel"] for r in self.records() if r.get("event") == "answer"]

    def close(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)
        self.proc.stderr.close()
        return "".join(self.lines)


def replies(fake: FakeDiscord) -> collections.Counter:
    """How many replies each message got: message id -> count."""
    return collections.Counter(str(c.data["message_reference"]["message_id"])
                               for c in fake.requests("POST", "/messages") if c.data.get("message_reference"))


def ask(fake: FakeDiscord, server: int, message_id: str, question: str = "k8s?") -> int:
    """Mention the bot in a server; how many sessions the event went to."""
    return fake.send("MESSAGE_CREATE", discord_fake.mention(question, server, message_id=message_id))


def answered_once(fake: FakeDiscord, message_id: str, timeout: float = 15) -> None:
    fake.wait_for(lambda f: replies(f)[message_id] >= 1, timeout)
    time.sleep(0.5)  # a second reply, if there were one, would be on its way by now
    assert replies(fake)[message_id] == 1, replies(fake)


def new_session(fake: FakeDiscord, after: int, timeout: float) -> discord_fake.Session:
    """Wait for a session identified after the first `after` sessions, open now."""
    def found(f: FakeDiscord):
        return next((x for x in f.sessions[after:] if x.closed is None), None)
    return fake.wait_for(found, timeout)


@pytest.mark.slow
def test_without_shards_one_replica_connects_and_the_standby_takes_over(tmp_path):
    db, server = tmp_path / "shared.db", server_on(0, 1)
    channel = channel_of(server)
    with FakeDiscord(servers=(server,)) as fake:
        a = Replica(fake, db, "a")
        replicas = [a]
        try:
            a.wait_log("connected to Discord as trendbot")
            b = Replica(fake, db, "b")
            replicas.append(b)
            standby = b.wait_log("standing by")
            assert standby.startswith("trendbot: standing by: replica ") and f":{a.proc.pid}:" in standby
            assert a.health() == (200, a.health()[1]) and a.health()[1]["status"] == "ok"
            code, health = b.health()
            assert code == 200 and health["status"] == "standby"
            assert health["platforms"]["discord"]["standby"] and not health["platforms"]["discord"]["connected"]
            assert len(fake.open_sessions()) == 1 and len(fake.identifies) == 1  # b never identified

            assert ask(fake, server, "5101") == 1
            answered_once(fake, "5101")
            assert a.answered() == [channel] and b.answered() == []

            # a records the next mention, then dies before its reply reaches Discord.
            fake.stall.add(channel)
            assert ask(fake, server, "5102") == 1
            fake.wait_for(lambda f: f.stalled)
            a.proc.kill()  # SIGKILL: no chance to give the lease up
            killed = time.monotonic()
            fake.stall.discard(channel)
            session = new_session(fake, 1, timeout=TAKEOVER + 15)
            after_kill = session.opened - killed
            b.wait_log("connected to Discord as trendbot")
            b.wait_log("took over the Discord connection")
            # The question a recorded and never answered: b answers it from the store's inbox.
            answered_once(fake, "5102", timeout=60)
            replayed = fake.requests("POST", f"/channels/{channel}/messages")[-1].at - killed
            assert ask(fake, server, "5103") == 1
            answered_once(fake, "5103")
            assert b.answered() == [channel, channel]  # the replayed one and the new one

            # a comes back and stands by; a SIGTERM to b hands the connection back at once.
            a2 = Replica(fake, db, "a2")
            replicas.append(a2)
            a2.wait_log("standing by")
            sessions = len(fake.sessions)
            b.proc.terminate()
            stopped = time.monotonic()
            session = new_session(fake, sessions, timeout=30)
            after_sigterm = session.opened - stopped
            assert b.proc.wait(15) == 0
            a2.wait_log("connected to Discord as trendbot")
            assert ask(fake, server, "5104") == 1
            answered_once(fake, "5104")
            assert a2.answered() == [channel]
        finally:
            logs = [r.close() for r in replicas]
        print(f"\nleader/standby: takeover {after_kill:.1f} s after kill -9 (lease 30 s), the question the dead "
              f"leader left unanswered answered {replayed:.1f} s after it, takeover {after_sigterm:.1f} s after "
              f"SIGTERM; replies per mention: {dict(replies(fake))}")
        assert after_kill < TAKEOVER and after_sigterm < 5
        assert replies(fake) == {"5101": 1, "5102": 1, "5103": 1, "5104": 1}
        assert not fake.overlaps(), fake.overlaps()  # never two replicas connected at once
        assert len(fake.sessions) == 3 and not fake.dropped
        assert all("Traceback" not in log and TOKEN not in log for log in logs), logs


@pytest.mark.slow
def test_with_shards_each_replica_answers_its_own_servers(tmp_path):
    db = tmp_path / "shared.db"
    on0, on0b, on1, on1b = server_on(0, 2), server_on(0, 2, 1), server_on(1, 2), server_on(1, 2, 1)
    with FakeDiscord(servers=(on0, on0b, on1, on1b)) as fake:
        r0 = Replica(fake, db, "r0", TRENDBOT_DISCORD_SHARDS="0/2")
        r1 = Replica(fake, db, "r1", TRENDBOT_DISCORD_SHARDS="1/2")
        replicas = [r0, r1]
        try:
            for r, shard in ((r0, "0/2"), (r1, "1/2")):
                line = r.wait_log("connected to Discord as trendbot")
                assert line.rstrip().endswith(f"in 2 servers (shards {shard})")
                assert r.health()[1]["status"] == "ok"  # no lease, no standby: both connected
            assert sorted(x.shard for x in fake.open_sessions()) == [(0, 2), (1, 2)]
            assert len(fake.requests("PUT", "/commands")) == 1  # synced by the replica on shard 0 only

            for i, server in enumerate((on0, on0b, on1, on1b)):
                assert ask(fake, server, f"520{i}") == 1
            assert fake.send("MESSAGE_CREATE", discord_fake.dm_message("k8s?", message_id="5210")) == 1
            for message_id in ("5200", "5201", "5202", "5203", "5210"):
                answered_once(fake, message_id)
            assert sorted(r0.answered()) == sorted([channel_of(on0), channel_of(on0b), discord_fake.DM_CHANNEL])
            assert sorted(r1.answered()) == sorted([channel_of(on1), channel_of(on1b)])

            # Shard 1's replica dies: its servers' events have no session to go to, shard 0 carries on.
            r1.proc.kill()
            fake.wait_for(lambda f: len(f.open_sessions()) == 1)
            assert ask(fake, on1, "5220") == 0  # dropped by Discord: nobody will answer it
            assert ask(fake, on0, "5221") == 1
            answered_once(fake, "5221")
            restarted = time.monotonic()
            r1b = Replica(fake, db, "r1b", TRENDBOT_DISCORD_SHARDS="1/2")
            replicas.append(r1b)
            r1b.wait_log("connected to Discord as trendbot")
            back = time.monotonic() - restarted
            assert ask(fake, on1, "5222") == 1
            answered_once(fake, "5222")
            assert r1b.answered() == [channel_of(on1)]
        finally:
            logs = [r.close() for r in replicas]
        print(f"\nshards: replies per mention {dict(replies(fake))}; shard 1 answering again {back:.1f} s after "
              "its replica was restarted")
        assert replies(fake) == {m: 1 for m in ("5200", "5201", "5202", "5203", "5210", "5221", "5222")}
        assert [e for e, d in fake.dropped] == ["MESSAGE_CREATE"] and fake.dropped[0][1]["id"] == "5220"
        assert not fake.overlaps()  # no shard ever had two sessions
        assert all("Traceback" not in log and TOKEN not in log for log in logs), logs
