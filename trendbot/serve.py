"""The one runner: every configured platform, the daily tips, /healthz (with /livez and /readyz for
probes) and /metrics, in one asyncio process. `trendbot serve` runs it with every platform whose
token is set; `trendbot slack` and `trendbot discord` run it limited to one.

- Each platform (Slack, Discord) runs under a supervisor: when it fails, the failure is logged
  and it is restarted with exponential backoff, while the other platforms carry on.
- The daily-tip scheduler posts through whichever platforms are connected; a post to one that is
  down is released and retried on a later pass (bot/tips.py).
- The knowledge folder is watched (and reloaded on SIGHUP); a version that fails validation is
  rejected and the last good one keeps answering (bot/live.py).
- SIGTERM or SIGINT stops it within SHUTDOWN_BOUND seconds: platforms stop taking new messages,
  replies in progress finish, then the connections close.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from adapters.platform import Platform, Standby
from adapters.secrets import SettingsError
from bot import events
from bot.config import Config
from bot.events import emit
from bot.knowledge import Knowledge
from bot.live import LiveBot, Reloader
from bot.metrics import CONTENT_TYPE_LATEST, Metrics
from bot.store import StoreError
from bot.tips import TICK, Poster
from trendbot import registry, wiring

log = logging.getLogger(__name__)

SHUTDOWN_BOUND = 10.0  # seconds from SIGTERM to exit, at most
DRAIN = 6.0  # of which replies in progress get this long to finish
BACKOFF = (1.0, 60.0)  # first and longest wait before restarting a failed platform
STABLE_AFTER = 60.0  # a platform that ran this long before failing starts its backoff over
DOWN_AFTER = 60.0  # a connection its library has not brought back within this long is restarted
CHECK_EVERY = 1.0  # seconds between looks at a platform's connection

__all__ = ["LivePosters", "Service", "check", "platforms_from", "run", "supervise"]


class LivePosters(Mapping[str, Poster]):
    """The scheduler's posters: each platform's current one. A platform not started has none, so its
    due tips are left unclaimed (no error) and go out on a later pass, once it is up."""

    def __init__(self, platforms: list[Platform]):
        self.platforms = {p.name: p for p in platforms}

    def __getitem__(self, name: str) -> Poster:
        poster = self.platforms[name].poster()
        if poster is None:
            raise KeyError(name)
        return poster

    def __iter__(self):
        return iter(self.platforms)

    def __len__(self) -> int:
        return len(self.platforms)


# -- supervision ------------------------------------------------------------------------------------


@dataclass
class Health:
    """What /healthz reports about one platform."""

    restarts: int = 0
    last_error: str | None = None
    since: float = field(default_factory=time.time)
    fatal: SettingsError | None = None  # a first start refused for a setting, when that ends the run


async def _until(stop: asyncio.Event, work: Awaitable[object]) -> bool:
    """Run `work` unless `stop` is set first (then cancel it); True when the work finished."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    await asyncio.wait({task})  # its CancelledError stays in it; ours, if we are cancelled, propagates
    return False


def _why(exc: BaseException) -> str:
    """A failure in one line: our settings errors say what to fix; others give their type and text."""
    if isinstance(exc, SettingsError):
        return str(exc)
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _hold(platform: Platform, down_after: float, every: float) -> None:
    """Raise when the platform's connection ends, or stays down for `down_after` seconds."""
    loop = asyncio.get_running_loop()
    ended = asyncio.ensure_future(platform.wait())
    down_since: float | None = None
    try:
        while True:
            done, _ = await asyncio.wait({ended}, timeout=every)
            if done:
                ended.result()
                raise ConnectionError("the connection ended")
            if await platform.connected():
                down_since = None
            elif down_since is None:
                down_since = loop.time()
            elif loop.time() - down_since >= down_after:
                raise ConnectionError(f"not connected for {down_after:g} s")
    finally:
        ended.cancel()


async def supervise(platform: Platform, stop: asyncio.Event, health: Health, *, backoff: tuple[float, float] = BACKOFF,
                    stable_after: float = STABLE_AFTER, drain: float = DRAIN, down_after: float = DOWN_AFTER,
                    check_every: float = CHECK_EVERY, fail_fast: bool = False) -> None:
    """Keep `platform` running until `stop`: each failure is logged and followed by a restart after a backoff.

    With `fail_fast`, a first start refused for a setting (a rejected token, a port in use) ends
    the run instead (`trendbot slack` and `trendbot discord`: there is nothing else to keep up).
    """
    loop = asyncio.get_running_loop()
    delay = backoff[0]
    started = False
    while not stop.is_set():
        began = loop.time()
        try:
            if not await _until(stop, platform.start()):
                break
            emit("platform_up", f"{platform.name} connected", platform=platform.name)
            started = True
            health.last_error, health.since = None, time.time()
            if not await _until(stop, _hold(platform, down_after, check_every)):
                break
            raise ConnectionError("the connection ended")
        except Exception as exc:
            if fail_fast and not started and isinstance(exc, SettingsError):
                health.fatal = exc
                stop.set()
                break
            if loop.time() - began >= stable_after:
                delay = backoff[0]
            health.restarts += 1
            health.last_error, health.since = _why(exc), time.time()
            emit("platform_down", f"{platform.name} failed ({health.last_error}); restarting in {delay:g} s",
                 level=logging.ERROR, platform=platform.name, error=health.last_error, retry_in=delay)
            with contextlib.suppress(Exception):
                await platform.stop(0)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, backoff[1])
    await platform.stop(drain)


# -- the service ------------------------------------------------------------------------------------


class Service:
    """The running process: platforms under supervision, the tip scheduler, the knowledge watcher, HTTP."""

    def __init__(self, live: LiveBot, reloader: Reloader, platforms: list[Platform], *, metrics: Metrics | None = None,
                 http_host: str = "0.0.0.0", http_port: int = 8080, reload_interval: float = 2.0,
                 backoff: tuple[float, float] = BACKOFF, drain: float = DRAIN, tick: float = TICK,
                 down_after: float = DOWN_AFTER, check_every: float = CHECK_EVERY, fail_fast: bool = False):
        self.live = live
        self.fail_fast = fail_fast
        self.reloader = reloader
        self.platforms = platforms
        self.metrics = metrics or Metrics()
        self.http_host, self.http_port = http_host, http_port
        self.reload_interval = reload_interval
        self.backoff, self.drain, self.tick = backoff, drain, tick
        self.down_after, self.check_every = down_after, check_every
        self.health = {p.name: Health() for p in platforms}
        self.stop = asyncio.Event()
        self.reload_now = asyncio.Event()
        self.started = time.time()
        self.port: int | None = None  # the HTTP port bound (useful with port 0)
        self.ready = asyncio.Event()  # set once the HTTP endpoints listen
        self._runner: web.AppRunner | None = None

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `self.stop` is set, then shut down within SHUTDOWN_BOUND seconds."""
        events.add_sink(self.metrics.sink)
        try:
            await self._start_http()
            tasks = [asyncio.create_task(supervise(p, self.stop, self.health[p.name], backoff=self.backoff,
                                                   drain=self.drain, down_after=self.down_after,
                                                   check_every=self.check_every, fail_fast=self.fail_fast),
                                         name=f"supervise-{p.name}")
                     for p in self.platforms]
            tips = self.live.tips
            if tips is not None:
                tasks.append(asyncio.create_task(tips.run(LivePosters(self.platforms), self.stop, tick=self.tick),
                                                 name="tips"))
            tasks.append(asyncio.create_task(self._watch(), name="knowledge-watch"))
            self.ready.set()
            await self.stop.wait()
            if not self.fatal:
                emit("stopping", "stopping: finishing replies in progress")
            # Every step of the shutdown shares one deadline, a little inside the bound.
            deadline = asyncio.get_running_loop().time() + SHUTDOWN_BOUND - 1.0
            done, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_BOUND - 2.0)
            for task in pending:
                log.warning("%s did not stop in time; cancelled", task.get_name())
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=max(0.1, deadline - asyncio.get_running_loop().time() - 0.5))
        finally:
            events.remove_sink(self.metrics.sink)
            if self._runner is not None:
                await self._runner.cleanup()  # shutdown_timeout bounds a client that never finishes

    @property
    def fatal(self) -> SettingsError | None:
        """The setting that ended the run at start (fail_fast), if one did."""
        return next((h.fatal for h in self.health.values() if h.fatal), None)

    def install_signals(self) -> None:
        """SIGTERM and SIGINT stop the service; SIGHUP reloads the knowledge (main thread, Unix only)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, self.stop.set)
            loop.add_signal_handler(signal.SIGINT, self.stop.set)
            loop.add_signal_handler(signal.SIGHUP, self.reload_now.set)

    async def _watch(self) -> None:
        """Reload the knowledge when its files change (every reload_interval s) or on SIGHUP."""
        while not self.stop.is_set():
            waits = [asyncio.ensure_future(self.stop.wait()), asyncio.ensure_future(self.reload_now.wait())]
            try:
                await asyncio.wait(waits, timeout=self.reload_interval or None, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            if self.stop.is_set():
                return
            forced = self.reload_now.is_set()
            self.reload_now.clear()
            if forced or self.reload_interval:
                try:
                    await asyncio.to_thread(self.reloader.check, forced)
                except Exception:
                    log.exception("reloading the knowledge failed; still answering from the last good version")

    # -- HTTP -------------------------------------------------------------------------------

    async def _start_http(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.http_host, self.http_port).start()
        except OSError as exc:
            raise SettingsError(f"cannot listen on {self.http_host}:{self.http_port} (TRENDBOT_HTTP_HOST/"
                                f"TRENDBOT_HTTP_PORT): {exc.strerror or exc}") from None
        self.port = self._runner.addresses[0][1]
        log.info("health and metrics on http://%s:%d/healthz (/livez, /readyz) and /metrics", self.http_host,
                 self.port)

    async def connected(self) -> dict[str, bool]:
        """Each platform: connected now or not."""
        return {p.name: bool(await p.connected()) for p in self.platforms}

    async def states(self) -> dict[str, str]:
        """Each platform: "connected", "standby" (another replica holds its connection; this one
        takes over when that one stops) or "down"."""
        out = {}
        for p in self.platforms:
            if await p.connected():
                out[p.name] = "connected"
            else:
                out[p.name] = "standby" if isinstance(p, Standby) and p.standing_by() else "down"
        return out

    async def report(self) -> tuple[int, dict[str, Any]]:
        """/healthz: 200 while the knowledge is loaded and a platform is connected or standing by, else 503."""
        states = await self.states()
        loaded = self.reloader.loaded
        platforms = {}
        for name, state in states.items():
            h = self.health[name]
            platforms[name] = {"connected": state == "connected", "standby": state == "standby",
                               "restarts": h.restarts, "last_error": h.last_error, "since": _iso(h.since)}
        well = [state != "down" for state in states.values()]  # a standby is doing its job
        status = ("down" if not any(well) else "degraded" if not all(well)
                  else "ok" if "connected" in states.values() else "standby")
        body = {
            "status": status,
            "uptime_seconds": round(time.time() - self.started, 1),
            "knowledge": {"loaded": True, "version": loaded.version, "loaded_at": _iso(loaded.loaded_at),
                          "entries": loaded.counts, "warnings": list(loaded.warnings),
                          "rejected": self.reloader.rejected},
            "platforms": platforms,
        }
        return (200 if status != "down" else 503), body

    async def _healthz(self, request: web.Request) -> web.Response:
        code, body = await self.report()
        return web.json_response(body, status=code, dumps=lambda d: json.dumps(d, ensure_ascii=False))

    async def _livez(self, request: web.Request) -> web.Response:
        """/livez: 200 whenever the event loop answers, also while every platform is down or reconnecting.

        A liveness probe restarts what fails it; a platform outage is not cured by a restart (the
        supervisor already reconnects with backoff), so only a process that no longer answers fails.
        """
        return web.json_response({"status": "alive", "uptime_seconds": round(time.time() - self.started, 1)})

    async def _readyz(self, request: web.Request) -> web.Response:
        """/readyz: /healthz's rule (knowledge loaded, a platform connected or standing by) without its details."""
        code, body = await self.report()
        return web.json_response({"ready": code == 200, "status": body["status"]}, status=code)

    async def _metrics(self, request: web.Request) -> web.Response:
        states = await self.states()
        text = self.metrics.render({n: s == "connected" for n, s in states.items()}, self.reloader.loaded.counts,
                                   standby={n: s == "standby" for n, s in states.items()})
        return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _watchdog(stop: asyncio.Event, timers: list[threading.Timer]) -> None:
    """Once stopping, end the process at SHUTDOWN_BOUND whatever still runs (a worker thread deep in a reload)."""
    await stop.wait()

    def force() -> None:
        log.error("shutdown took longer than %g s; exiting now", SHUTDOWN_BOUND)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(SHUTDOWN_BOUND - 0.2, force)
    timer.daemon = True
    timer.start()
    timers.append(timer)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds")


# -- from settings to a running service -------------------------------------------------------------


def platforms_from(config: Config, only: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Each configured platform (or just `only`) with its settings checked: ({name: settings}, problems)."""
    found: dict[str, Any] = {}
    problems: list[str] = []
    for surface in registry.surfaces():
        if only is not None and surface.name != only:
            continue
        if only is None and not surface.configured(config):
            continue
        try:
            found[surface.name] = surface.read(config)
        except SettingsError as exc:
            problems.append(f"{surface.name.title()}: {exc}" if only is None else str(exc))
    for name, settings in found.items():
        for variable, port in getattr(settings, "listens", {}).items():
            if port and port == config["TRENDBOT_HTTP_PORT"]:
                problems.append(f"{variable} and TRENDBOT_HTTP_PORT are both {port}: {name.title()} and /healthz "
                                "need ports of their own")
    if not found and not problems:
        ways = [f"{s.how} to run in {s.name.title()}" for s in registry.surfaces()]
        problems.append("no platform to run: set " + ", ".join(ways) + (", or several" if len(ways) > 1 else ""))
    return found, problems


def check(config: Config, knowledge_dir: str | None, only: str | None = None
          ) -> tuple[dict[str, Any], Knowledge | None, list[str]]:
    """Every start-up problem at once: the platforms' settings, the knowledge and the store."""
    found, problems = platforms_from(config, only)
    kb, more = wiring.knowledge(knowledge_dir, config["TRENDBOT_KNOWLEDGE_MAX_BYTES"])
    problems += more
    try:  # the store too, so that a path it cannot use, or a database it cannot reach, is reported with the rest
        wiring.db_target(config)
    except StoreError:
        pass  # a URL of no store trendbot knows: the settings' own check lists it already
    else:
        try:
            wiring.open_db(config).close()
        except StoreError as exc:
            problems.append(str(exc))
    return found, kb, problems


def run(config: Config, found: Mapping[str, Any], kb: Knowledge, knowledge_dir: str | None, *,
        announce: Callable[[str], None] = lambda what: log.info("%s", what),
        refuse: Callable[[str], None] = lambda why: log.error("%s", why), fail_fast: bool = False,
        on_ready: Callable[[Service], None] = lambda _: None) -> int:
    """Run the service until SIGTERM or SIGINT: 0 after a clean stop, 2 when a setting stops it
    (the store cannot be opened, or with `fail_fast` a platform refuses its first start), after
    `refuse(why)` has said which."""
    try:
        store = wiring.open_db(config)
    except StoreError as exc:
        refuse(str(exc))
        return 2
    try:
        live = LiveBot(wiring.bot(kb, config, store))
        live.current.answers.surface.warm()
        platforms = [registry.surface(name).connect(live, wiring.inbox(store, name, config), settings, announce)
                     for name, settings in found.items()]

        async def main() -> Service:
            reloader = Reloader(live, knowledge_dir, config["TRENDBOT_KNOWLEDGE_MAX_BYTES"])
            service = Service(live, reloader, platforms, http_host=config["TRENDBOT_HTTP_HOST"],
                              http_port=config["TRENDBOT_HTTP_PORT"], reload_interval=config["TRENDBOT_RELOAD_INTERVAL"],
                              fail_fast=fail_fast)
            service.install_signals()
            asyncio.create_task(_watchdog(service.stop, timers))
            runner = asyncio.create_task(service.run())
            ready = asyncio.create_task(service.ready.wait())
            await asyncio.wait({runner, ready}, return_when=asyncio.FIRST_COMPLETED)
            if ready.done():
                on_ready(service)
            else:
                ready.cancel()
            await runner
            return service

        timers: list[threading.Timer] = []
        try:
            service = asyncio.run(main())
        except SettingsError as exc:
            refuse(str(exc))
            return 2
        finally:
            for timer in timers:
                timer.cancel()
        if service.fatal is not None:
            refuse(str(service.fatal))
            return 2
        log.info("stopped")
        return 0
    finally:
        store.close()
