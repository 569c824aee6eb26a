"""Slack HTTP mode under load: `trendbot serve` as one process against the loopback Slack fake.

Prints figures (medians of several runs); it passes or fails nothing. From the repository:

    python benchmarks/bench_slack_http.py                     # 3 runs of 2,000 mentions at concurrency 50
    python benchmarks/bench_slack_http.py --events 5000 --runs 5
    python benchmarks/bench_slack_http.py --concurrency 10
    python benchmarks/bench_slack_http.py --baseline /tmp/before   # paired with another checkout

With --baseline, each run also serves from that checkout (e.g. `git worktree add /tmp/before
HEAD~3`), the two taking turns, so a change is measured against what it replaced in the same run.

Each run starts the Slack fake (tests/slack_fake.py: Slack's Web API on 127.0.0.1, in this
process), then `trendbot serve` in HTTP mode as a subprocess on a fresh SQLite store and the
shipped knowledge (its index cache shared by the runs, so each start is warm), answers a few
warm-up mentions, and then sends `--events` signed app_mention events (distinct event_ids, the
payload of tests/fixtures/slack/app_mention.json with the questions below) over aiohttp at
`--concurrency` requests at a time. It prints:

- acks/s: events acknowledged (HTTP 200) per second, first request sent to last 200 received;
- ack p50 and p99: milliseconds from sending one event to its 200 (the inbox insert included);
- answers/s: events per second from the first request sent until the fake has received the
  chat.postMessage of every one of them;
- core/s: `TrendBot.handle` per question per second in a loop in this process, the same questions,
  on a store of its own (the learning loop records each question, as in the server): the ceiling.

Targets (this machine, 2 cores shared with the fake and the load): answers/s >= 1,000 from one
process, with ack p99 <= 100 ms at concurrency 50. The load generator and the fake share this
process, so what is measured is the whole loop on one machine, not the server alone.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.slack_fake import BOT_TOKEN, SIGNING_SECRET, FakeSlack, fixture, signature_headers  # noqa: E402

QUESTIONS = (
    "is serverless cheaper?", "k8s", "What is DevOps?", "how often should we deploy",
    "kubernetes or plain docker, which do we need?", "is rust worth learning for backends",
    "what is platform engineering", "are devops skills in demand?",
)
WARM_UP = 50


def mention(run: int, i: int) -> bytes:
    """One app_mention event as Slack posts it, with an event_id and ts of its own."""
    payload = fixture("app_mention")
    payload["event_id"] = f"Ev{run:02d}{i:07d}"
    payload["event_time"] = int(time.time())
    payload["event"].update(ts=f"1715{run:02d}0000.{i:06d}", event_ts=f"1715{run:02d}0000.{i:06d}",
                            client_msg_id=f"msg-{run}-{i}",
                            text=f"<@U0TRENDBOT> {QUESTIONS[i % len(QUESTIONS)]}")
    payload["event"]["blocks"][0]["elements"][0]["elements"][1]["text"] = " " + QUESTIONS[i % len(QUESTIONS)]
    return json.dumps(payload).encode()


class Serve:
    """`trendbot serve` in Slack HTTP mode as a subprocess; stderr read in a thread."""

    def __init__(self, fake: FakeSlack, db: Path, cache: Path, root: Path = ROOT):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRENDBOT_", "SLACK_", "DISCORD_"))}
        env |= {"PYTHONPATH": str(root), "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": fake.api_url, "TRENDBOT_DB": str(db), "TRENDBOT_CACHE_DIR": str(cache),
                "TRENDBOT_HTTP_HOST": "127.0.0.1", "TRENDBOT_HTTP_PORT": "0", "TRENDBOT_SLACK_HOST": "127.0.0.1",
                "TRENDBOT_SLACK_PORT": "0", "TRENDBOT_RELOAD_INTERVAL": "0"}
        self.proc = subprocess.Popen([sys.executable, "-m", "trendbot", "serve"], env=env, cwd=root,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.port: int | None = None
        ready = threading.Event()

        def read() -> None:
            for line in self.proc.stderr:
                self.lines.append(line)
                m = re.search(r"listening for Slack on http://127\.0\.0\.1:(\d+)/slack/events", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(120):
            self.stop()
            raise SystemExit("trendbot serve did not start:\n" + "".join(self.lines))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def send_all(port: int, bodies: list[bytes], concurrency: int) -> tuple[float, float, list[float], int]:
    """POST every body, `concurrency` at a time: (first sent and last acknowledged, monotonic; ack
    latencies in s; how many were not answered 200)."""
    import aiohttp

    url = f"http://127.0.0.1:{port}/slack/events"
    latencies: list[float] = []
    failed = 0
    todo = iter(bodies)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            nonlocal failed
            for body in todo:
                headers = {"Content-Type": "application/json", **signature_headers(body)}
                began = time.monotonic()
                async with session.post(url, data=body, headers=headers) as res:
                    await res.read()
                    if res.status != 200:
                        failed += 1
                latencies.append(time.monotonic() - began)

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        t1 = time.monotonic()
    return t0, t1, latencies, failed


def answered_at(fake: FakeSlack, threads: set[str], timeout: float) -> float | None:
    """Monotonic time of the last chat.postMessage answering one of `threads`, once all have one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with fake._cond:
            calls = list(fake.calls)
        seen = {}
        for c in calls:
            ts = c.data.get("thread_ts")
            if c.method == "chat.postMessage" and c.status == 200 and ts in threads and ts not in seen:
                seen[ts] = c.at
        if len(seen) == len(threads):
            return max(seen.values())
        time.sleep(0.05)
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_run(run: int, events: int, concurrency: int, cache: Path, root: Path = ROOT) -> dict[str, float]:
    """One serve process (of the checkout at `root`): warm up, then `events` mentions; its figures."""
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as fake:
        serve = Serve(fake, Path(tmp) / "bench.db", cache, root)
        try:
            warm = [mention(run, events + i) for i in range(WARM_UP)]
            asyncio.run(send_all(serve.port, warm, 10))
            if answered_at(fake, {json.loads(b)["event"]["ts"] for b in warm}, 60) is None:
                raise SystemExit("the warm-up was not answered:\n" + "".join(serve.lines[-20:]))
            bodies = [mention(run, i) for i in range(events)]
            t0, acked, latencies, failed = asyncio.run(send_all(serve.port, bodies, concurrency))
            last = answered_at(fake, {json.loads(b)["event"]["ts"] for b in bodies}, 300)
        finally:
            serve.stop()
    if failed:
        print(f"  run {run}: {failed} of {events} requests were not acknowledged with 200", file=sys.stderr)
    return {"acks/s": events / (acked - t0), "ack p50 ms": 1000 * percentile(latencies, 0.50),
            "ack p99 ms": 1000 * percentile(latencies, 0.99),
            "answers/s": events / (last - t0) if last else 0.0}


def core_rate(seconds: float = 2.0) -> float:
    """TrendBot.handle per question per second, in a loop, on a store of its own."""
    from bot.core import Incoming
    from trendbot import wiring

    with tempfile.TemporaryDirectory() as tmp:
        config, _ = wiring.settings({"TRENDBOT_DB": str(Path(tmp) / "core.db"), "TRENDBOT_CACHE_DIR": tmp},
                                    platforms=False)
        kb, problems = wiring.knowledge(None)
        assert kb is not None, problems
        store = wiring.open_db(config)
        try:
            bot = wiring.bot(kb, config, store)
            incoming = [Incoming(q, platform="slack", channel_id="C0GENERAL", user_id="U0ALICE",
                                 thread_id=f"1.{i}", is_mention=True) for i, q in enumerate(QUESTIONS)]
            for m in incoming:
                bot.handle(m)
            n, began = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - began) < seconds:
                for m in incoming:
                    bot.handle(m)
                n += len(incoming)
            return n / elapsed
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="mentions per run (default 2000)")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight at once (default 50)")
    parser.add_argument("--runs", type=int, default=3, help="runs; the figures are their medians (default 3)")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="another checkout of trendbot (an earlier commit): each run serves from it too, "
                             "alternating with this one, and its medians are printed beside")
    args = parser.parse_args()
    roots = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in roots}
    with tempfile.TemporaryDirectory() as cache:
        for run in range(args.runs):
            for name, root in (roots.items() if run % 2 == 0 else reversed(roots.items())):
                figures = one_run(run, args.events, args.concurrency, Path(cache), root)
                figures["core/s"] = core_rate()
                rows[name].append(figures)
                print(f"run {run + 1} {name:>8}: " + "  ".join(f"{k} {v:,.0f}" for k, v in figures.items()), flush=True)
    print(f"\n{args.events} app_mention events at concurrency {args.concurrency}, medians of {args.runs} runs:")
    print(f"  {'':>11}  " + "  ".join(f"{name:>9}" for name in roots))
    for key in rows["this"][0]:
        print(f"  {key:>11}  " + "  ".join(f"{statistics.median(r[key] for r in rows[name]):>9,.1f}" for name in roots))


if __name__ == "__main__":
    main()
