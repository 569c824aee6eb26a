"""`trendbot serve`: supervision with backoff, health and metrics over HTTP, clean shutdown, the whole process.

The first part drives the Service in-process with stand-in platforms; then the real Slack
platform against the loopback Slack fake (a reply in progress finishes during shutdown); last,
`trendbot serve` as a process with the Slack and Discord fakes, stopped with SIGTERM.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.inbox import Inbox
from adapters import slack_app
from adapters import slack_settings
from trendbot import serve
from bot.core import Incoming
from bot.live import LiveBot, Reloader
from bot.schedule import Subscription
from tests import discord_fake
from tests.conftest import MINI, NINE_UTC
from tests.discord_fake import FakeDiscord
from tests.slack_fake import BOT_TOKEN, SIGNING_SECRET, FakeSlack, fixture, send_signed

ROOT = Path(__file__).resolve().parents[1]
FAST = (0.02, 0.08)  # backoff for the tests: 20 ms doubling up to 80 ms


class StubPlatform:
    """A platform that can refuse its first `refuse` starts, and whose connection a test can drop."""

    def __init__(self, name: str, refuse: int = 0):
        self.name = name
        self.refuse = refuse
        self.starts: list[float] = []
        self.stops: list[float] = []
        self.up = False
        self.dropped = asyncio.Event()
        self.posted: list[str] = []

    async def start(self) -> None:
        self.starts.append(time.monotonic())
        if len(self.starts) <= self.refuse:
            raise ConnectionError(f"refused start {len(self.starts)}")
        self.dropped.clear()
        self.up = True

    async def wait(self) -> None:
        await self.dropped.wait()
        self.up = False
        raise ConnectionError("connection dropped")

    async def stop(self, drain: float) -> None:
        self.stops.append(drain)
        self.up = False

    async def connected(self) -> bool:
        return self.up

    def poster(self):
        outer = self

        class P:
            async def post(self, channel_id, reply):
                outer.posted.append(channel_id)

        return P() if self.up else None


async def until(predicate, timeout: float = 5.0):
    """Poll the event loop (not the wall clock) until predicate() is truthy."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)
    return value


def service_for(bot, platforms, knowledge=MINI, **kw) -> serve.Service:
    live = LiveBot(bot)
    kw = {"reload_interval": 0, "backoff": FAST, **kw}
    return serve.Service(live, Reloader(live, knowledge), platforms, http_host="127.0.0.1", http_port=0, **kw)


@contextlib.asynccontextmanager
async def started(service: serve.Service):
    """The service running, its HTTP endpoints up; stopped (within the bound) on the way out."""
    running = asyncio.create_task(service.run())
    try:
        await service.ready.wait()
        yield
    finally:
        service.stop.set()
        await asyncio.wait_for(running, serve.SHUTDOWN_BOUND)


def knowledge_copy(tmp_path) -> Path:
    folder = tmp_path / "knowledge"
    shutil.copytree(MINI, folder)
    return folder


async def test_a_failing_platform_is_restarted_with_backoff_and_the_other_keeps_running(tipbot):
    slack, discord = StubPlatform("slack"), StubPlatform("discord", refuse=3)
    service = service_for(tipbot, [slack, discord])
    running = asyncio.create_task(service.run())
    await until(lambda: discord.up)
    gaps = [b - a for a, b in zip(discord.starts, discord.starts[1:])]
    assert len(discord.starts) == 4 and all(g >= want * 0.9 for g, want in zip(gaps, (0.02, 0.04, 0.08)))
    assert len(slack.starts) == 1 and slack.up and not slack.stops  # never touched by Discord's trouble
    assert service.health["discord"].restarts == 3 and service.health["discord"].last_error is None

    discord.dropped.set()  # a connection lost later is restarted too
    await until(lambda: len(discord.starts) == 5 and discord.up)
    assert service.health["discord"].restarts == 4

    service.stop.set()
    await asyncio.wait_for(running, serve.SHUTDOWN_BOUND)
    assert slack.stops[-1] == serve.DRAIN and discord.stops[-1] == serve.DRAIN and not slack.up


async def test_a_platform_that_never_starts_does_not_block_shutdown(tipbot):
    broken = StubPlatform("slack", refuse=10**6)
    service = service_for(tipbot, [broken])
    running = asyncio.create_task(service.run())
    await until(lambda: len(broken.starts) >= 3)
    began = time.monotonic()
    service.stop.set()
    await asyncio.wait_for(running, serve.SHUTDOWN_BOUND)
    assert time.monotonic() - began < 1.0


async def test_tips_go_out_through_connected_platforms_and_wait_for_the_others(tipbot):
    up, down = StubPlatform("slack"), StubPlatform("discord", refuse=10**6)
    for sub in (Subscription("slack", "C1"), Subscription("discord", "D1")):
        tipbot.tips.store.subscribe(sub)
    service = service_for(tipbot, [up, down], tick=0.02)
    running = asyncio.create_task(service.run())
    await until(lambda: up.posted)
    service.stop.set()
    await asyncio.wait_for(running, serve.SHUTDOWN_BOUND)
    assert up.posted == ["C1"]
    day = NINE_UTC.date().isoformat()
    assert tipbot.tips.store.posted_on("slack", "C1", day)
    assert not tipbot.tips.store.posted_on("discord", "D1", day)  # left for when Discord is up
    assert tipbot.tips.store.claim_post("discord", "D1", day, now=NINE_UTC.timestamp(), stale_after=600)  # unclaimed
    assert service.metrics.errors.labels("discord", "tip")._value.get() == 0  # waiting is not an error
    posters = serve.LivePosters([up, down])
    assert posters.get("discord") is None and posters.get("slack") is None  # both stopped now


async def get(port: int, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}") as r:
            return r.status, r.headers["Content-Type"], await r.text()


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


async def test_health_and_metrics_over_http(tipbot):
    slack, discord = StubPlatform("slack"), StubPlatform("discord", refuse=10**6)
    service = service_for(tipbot, [slack, discord])
    async with started(service):
        await until(lambda: slack.up and service.health["discord"].restarts)
        status, kind, body = await get(service.port, "/healthz")
        health = json.loads(body)
        assert status == 200 and kind.startswith("application/json") and health["status"] == "degraded"
        assert health["knowledge"]["loaded"] and health["knowledge"]["entries"]["faqs"] == 1
        assert health["platforms"]["slack"]["connected"] is True
        assert health["platforms"]["discord"]["connected"] is False
        assert "refused start" in health["platforms"]["discord"]["last_error"]

        service.live.handle(Incoming("is serverless cheaper?", platform="slack"))
        service.live.handle(Incoming("best pizza in naples", platform="slack"))
        status, kind, text = await get(service.port, "/metrics")
        assert status == 200 and kind.startswith("text/plain; version=")
        assert metric(text, "trendbot_questions_total", platform="slack", outcome="answered") == 1
        assert metric(text, "trendbot_questions_total", platform="slack", outcome="declined") == 1
        assert metric(text, "trendbot_answer_latency_seconds_count", platform="slack") == 2
        assert metric(text, "trendbot_platform_connected", platform="slack") == 1
        assert metric(text, "trendbot_platform_connected", platform="discord") == 0
        assert metric(text, "trendbot_errors_total", platform="discord", kind="connection") >= 1

        slack.up = False  # nothing connected: unhealthy
        status, _, body = await get(service.port, "/healthz")
        assert status == 503 and json.loads(body)["status"] == "down"


async def test_livez_stays_up_through_an_outage_and_readyz_follows_healthz(tipbot):
    slack, discord = StubPlatform("slack", refuse=10**6), StubPlatform("discord", refuse=10**6)
    service = service_for(tipbot, [slack, discord])
    async with started(service):
        await until(lambda: service.health["slack"].restarts and service.health["discord"].restarts)
        # every platform down and being restarted: alive (a liveness probe must not restart the pod),
        # not ready (a load balancer sends it nothing), and /healthz unchanged
        status, kind, body = await get(service.port, "/livez")
        assert status == 200 and kind.startswith("application/json") and json.loads(body)["status"] == "alive"
        status, _, body = await get(service.port, "/readyz")
        assert status == 503 and json.loads(body) == {"ready": False, "status": "down"}
        status, _, body = await get(service.port, "/healthz")
        assert status == 503 and json.loads(body)["status"] == "down"

        slack.refuse = 0  # Slack comes back: ready, while Discord is still down
        await until(lambda: slack.up)
        status, _, body = await get(service.port, "/readyz")
        assert status == 200 and json.loads(body) == {"ready": True, "status": "degraded"}
        assert (await get(service.port, "/livez"))[0] == 200
        assert (await get(service.port, "/healthz"))[0] == 200


async def test_sighup_reloads_and_a_broken_edit_keeps_answering(tipbot, tmp_path):
    folder = knowledge_copy(tmp_path)
    service = service_for(tipbot, [StubPlatform("slack")], knowledge=folder)
    live = service.live
    async with started(service):
        (folder / "entries.yaml").write_text("faqs: [\n")
        service.reload_now.set()  # what SIGHUP does
        await until(lambda: service.reloader.rejected, timeout=10)
        assert live.handle(Incoming("is serverless cheaper?")).entry_id == "serverless-cheaper"
        _, _, text = await get(service.port, "/metrics")
        assert metric(text, "trendbot_knowledge_reloads_total", result="rejected") == 1
        _, _, body = await get(service.port, "/healthz")
        assert json.loads(body)["knowledge"]["rejected"]


# -- the real Slack platform: a reply in progress at SIGTERM still goes out ------------------------------


class SlowBot:
    """The mini bot, holding each answer until `release` is set."""

    def __init__(self, bot):
        self.bot, self.tips = bot, None
        self.entered, self.release = threading.Event(), threading.Event()

    def handle(self, incoming):
        self.entered.set()
        self.release.wait(10)
        return self.bot.handle(incoming)


async def test_stopping_finishes_the_reply_in_progress_then_closes(mini_bot, tmp_path):
    from bot.sqlite_store import SQLiteStore as Store

    slow = SlowBot(mini_bot)
    with FakeSlack() as fake, Store(tmp_path / "s.db") as store:
        settings = slack_settings.Settings(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=fake.api_url,
                                      host="127.0.0.1", port=0)
        platform = slack_app.SlackPlatform(slow, Inbox(store, "slack"), settings)
        service = service_for(mini_bot, [platform])
        running = asyncio.create_task(service.run())
        await until(lambda: platform.app is not None and platform.app.port)
        port = platform.app.port
        sent = asyncio.create_task(asyncio.to_thread(send_signed, port, json.dumps(fixture("message_im")).encode(),
                                                     "application/json"))
        assert await asyncio.to_thread(slow.entered.wait, 5)
        assert (await sent)[0] == 200  # acknowledged at once; the answer is in progress
        began = time.monotonic()
        service.stop.set()
        await asyncio.sleep(0.3)
        assert not running.done()  # waiting for the reply
        slow.release.set()
        await asyncio.wait_for(running, serve.SHUTDOWN_BOUND)
        assert time.monotonic() - began < serve.SHUTDOWN_BOUND
        (reply,) = fake.replies("chat.postMessage")
        assert reply.data["channel"] == "D0ALICEDM"
        with pytest.raises(OSError):  # and the HTTP endpoint is closed
            send_signed(port, b"{}", "application/json")


# -- the whole process ------------------------------------------------------------------------------------


class Process:
    """`trendbot serve` as a process (discord.py pointed at the fake), its JSON log lines collected."""

    def __init__(self, discord: FakeDiscord, **env: str):
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TRENDBOT_", "SLACK_", "DISCORD_"))}
        env = {**base, "PYTHONPATH": str(ROOT), "TRENDBOT_LOG_FORMAT": "json", "TRENDBOT_HTTP_HOST": "127.0.0.1",
               "TRENDBOT_HTTP_PORT": "0", "TRENDBOT_SLACK_HOST": "127.0.0.1", "TRENDBOT_SLACK_PORT": "0", **env}
        self.proc = subprocess.Popen([sys.executable, "-c", discord.launcher(), "serve"], env=env, cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_log(self, needle: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if needle in line:
                        return json.loads(line)
                left = deadline - time.monotonic()
                assert left > 0 and self.proc.poll() is None, "".join(self.lines)
                self._cond.wait(min(left, 0.5))

    def port(self, needle: str) -> int:
        message = self.wait_log(needle)["message"]
        return int(message.split("http://127.0.0.1:")[1].split("/")[0])

    def health(self, port: int) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def close(self) -> str:
        self.proc.kill()
        self._reader.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return "".join(self.lines)


def poll(check, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


@pytest.mark.slow
def test_serve_runs_both_platforms_reloads_on_sighup_and_stops_on_sigterm(tmp_path):
    folder = knowledge_copy(tmp_path)
    with FakeSlack() as slack, FakeDiscord() as discord:
        p = Process(discord, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                    SLACK_API_URL=slack.api_url, DISCORD_TOKEN=discord_fake.TOKEN, TRENDBOT_DB=str(tmp_path / "t.db"),
                    TRENDBOT_KNOWLEDGE=str(folder), TRENDBOT_RELOAD_INTERVAL="0")
        try:
            http = p.port("health and metrics on")
            slack_port = p.port("listening for Slack on")
            poll(lambda: p.health(http)[1]["status"] == "ok")

            question = "is serverless cheaper than running servers? asking for a friend"
            event = fixture("message_im")
            event["event"]["text"] = question
            assert send_signed(slack_port, json.dumps(event).encode(), "application/json")[0] == 200
            slack.wait_replies(1, "chat.postMessage", timeout=10)
            discord.send("MESSAGE_CREATE", discord_fake.dm_message(question))
            (post,) = discord.wait_for(lambda f: f.requests("POST", "/channels/600/messages"))
            assert post.data["embeds"][0]["title"] == "Is serverless cheaper than running servers?"

            (folder / "entries.yaml").write_text("faqs: [\n")  # a broken edit, then SIGHUP
            p.proc.send_signal(signal.SIGHUP)
            rejected = p.wait_log('"knowledge_rejected"')
            assert rejected["level"] == "error" and "last good version" in rejected["message"]
            event["event"].update(ts="1715000300.000400", client_msg_id="other-message", text="k8s")
            send_signed(slack_port, json.dumps(event).encode(), "application/json")
            second = slack.wait_replies(2, "chat.postMessage", timeout=10)[1]
            assert second.data["blocks"][0]["text"]["text"] == "Kubernetes"  # the old knowledge still answers

            began = time.monotonic()
            p.proc.send_signal(signal.SIGTERM)
            assert p.proc.wait(timeout=serve.SHUTDOWN_BOUND + 5) == 0
            assert time.monotonic() - began < serve.SHUTDOWN_BOUND
        finally:
            log = p.close()
    records = [json.loads(line) for line in log.splitlines()]  # every line is one JSON object
    answers = [r for r in records if r.get("event") == "answer"]
    assert {a["platform"] for a in answers} == {"slack", "discord"}
    assert all({"channel", "entry_id", "score", "latency_ms"} <= set(a) for a in answers)
    assert "asking for a friend" not in log and BOT_TOKEN not in log and SIGNING_SECRET not in log and discord_fake.TOKEN not in log
    assert records[-1]["message"] == "stopped"


@pytest.mark.slow
def test_a_rejected_discord_token_leaves_slack_answering(tmp_path):
    with FakeSlack() as slack, FakeDiscord(gateway="auth") as discord:
        p = Process(discord, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                    SLACK_API_URL=slack.api_url, DISCORD_TOKEN=discord_fake.TOKEN, TRENDBOT_DB=str(tmp_path / "t.db"))
        try:
            http = p.port("health and metrics on")
            slack_port = p.port("listening for Slack on")
            down = p.wait_log('"platform_down"')
            assert down["platform"] == "discord" and "rejected" in down["error"] and down["level"] == "error"
            status, health = poll(lambda: (h := p.health(http))[1]["platforms"]["discord"]["restarts"] and h)
            assert status == 200 and health["status"] == "degraded" and health["platforms"]["slack"]["connected"]
            assert send_signed(slack_port, json.dumps(fixture("message_im")).encode(), "application/json")[0] == 200
            slack.wait_replies(1, "chat.postMessage", timeout=10)
            p.proc.send_signal(signal.SIGTERM)
            assert p.proc.wait(timeout=serve.SHUTDOWN_BOUND + 5) == 0
        finally:
            log = p.close()
    assert discord_fake.TOKEN not in log and BOT_TOKEN not in log


async def test_the_knowledge_folder_is_watched(tipbot, tmp_path):
    from tests.test_reload import add_faq

    folder = knowledge_copy(tmp_path)
    service = service_for(tipbot, [StubPlatform("slack")], knowledge=folder, reload_interval=0.05)
    async with started(service):
        add_faq(folder)
        await until(lambda: service.live.handle(Incoming("webassembly edge runtime")).entry_id == "wasm-edge",
                    timeout=10)


async def test_discord_shutdown_lets_the_answer_in_progress_finish_before_closing(mini_bot):
    from tests.test_discord_handlers import Interaction, client_for, command

    slow = SlowBot(mini_bot)
    client = client_for(slow)
    closed: list[int] = []

    async def close() -> None:
        closed.append(len(interaction.calls))

    client.close = close
    interaction = Interaction(command("ask", question="is serverless cheaper?"))
    answering = asyncio.create_task(client.answer_interaction(interaction))
    assert await asyncio.to_thread(slow.entered.wait, 5)
    stopping = asyncio.create_task(client.shutdown(drain=5))
    await asyncio.sleep(0.2)
    assert not stopping.done() and not closed
    late = Interaction(command("ask", question="k8s"))
    await client.answer_interaction(late)  # arrives while stopping: not taken
    slow.release.set()
    await asyncio.wait_for(asyncio.gather(answering, stopping), 5)
    assert closed == [1] and not late.calls  # answered first, closed after


async def test_a_connection_that_stays_down_is_restarted(tipbot):
    flaky = StubPlatform("discord")
    service = service_for(tipbot, [flaky], down_after=0.1, check_every=0.01)
    running = asyncio.create_task(service.run())
    await until(lambda: flaky.up)
    flaky.up = False  # the library is reconnecting, and does not manage to
    await until(lambda: len(flaky.starts) == 2 and flaky.up)
    assert service.health["discord"].restarts == 1
    flaky.up = False
    await asyncio.sleep(0.05)
    flaky.up = True  # back within down_after: left alone
    await asyncio.sleep(0.2)
    assert len(flaky.starts) == 2
    service.stop.set()
    await asyncio.wait_for(running, serve.SHUTDOWN_BOUND)


async def test_discord_reports_a_dropped_gateway_as_disconnected(mini_bot):
    from tests.test_discord_handlers import client_for

    client = client_for(mini_bot)
    client.announce = lambda _: None
    assert not client.connected()
    await client.on_ready()
    assert client.connected()
    await client.on_disconnect()  # discord.py keeps is_ready() true while it reconnects; this does not
    assert not client.connected()
    await client.on_resumed()
    assert client.connected()


async def test_a_client_that_never_finishes_its_request_does_not_hold_up_shutdown(mini_bot, tmp_path):
    from bot.sqlite_store import SQLiteStore as Store

    with FakeSlack() as fake, Store(tmp_path / "s.db") as store:
        settings = slack_settings.Settings(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=fake.api_url,
                                      host="127.0.0.1", port=0)
        platform = slack_app.SlackPlatform(mini_bot, Inbox(store, "slack"), settings)
        service = service_for(mini_bot, [platform])
        running = asyncio.create_task(service.run())
        await until(lambda: platform.app is not None and platform.app.port)
        writers = []
        for port in (platform.app.port, service.port):  # Slack's endpoint and /healthz
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
            await writer.drain()
            writers.append(writer)
        await asyncio.sleep(0.1)
        began = time.monotonic()
        service.stop.set()
        await asyncio.wait_for(running, serve.SHUTDOWN_BOUND)
        assert time.monotonic() - began < 3.0
        for writer in writers:
            writer.close()
