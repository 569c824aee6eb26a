"""The `trendbot` command line: ask, chat, topics, tip, check, eval, tips, slack, discord, serve, config."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from bot import knowledge

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trendbot", description="Answers questions about backend-development trends.")
    p.add_argument("--knowledge", metavar="DIR",
                   default=os.path.expanduser(os.environ.get("TRENDBOT_KNOWLEDGE", "")) or None,
                   help="knowledge folder (default: the one shipped with trendbot; env TRENDBOT_KNOWLEDGE)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    ask = sub.add_parser("ask", help="answer one question, or one per stdin line with '-'")
    ask.add_argument("question", nargs="*", help="the question; '-' reads one question per line from stdin")
    ask.add_argument("--json", action="store_true", help="print one JSON object per question")
    ask.add_argument("--explain", action="store_true", help="show the matched entry, score, corrections, runners-up")

    chat = sub.add_parser("chat", help="interactive console chat")
    chat.add_argument("--no-color", action="store_true", help="plain text output")
    sub.add_parser("topics", help="list the topics")
    sub.add_parser("tip", help="print a random tip")
    sub.add_parser("check", help="validate the knowledge base and print counts")
    ev = sub.add_parser("eval", help="measure answer quality: the tuning and held-out parts, or one file")
    ev.add_argument("file", nargs="?", help="YAML file with `questions:` and `out_of_scope:` "
                                          "(default: both parts of tests/eval/, reported separately)")
    ev.add_argument("--misses", action="store_true", help="list the questions answered wrongly")
    ev.add_argument("--fit", action="store_true",
                    help="refit the confidence model on the tuning part and write bot/confidence.json")
    sl = sub.add_parser("slack", help="run in Slack: Socket Mode if SLACK_APP_TOKEN is set, else HTTP mode",
                        description="Settings come from the environment: SLACK_BOT_TOKEN, SLACK_APP_TOKEN (Socket Mode) "
                                    "or SLACK_SIGNING_SECRET (HTTP mode), SLACK_API_URL, TRENDBOT_DB.")
    sl.add_argument("--port", type=int, default=3000, help="HTTP mode: port for /slack/events (default 3000)")
    sl.add_argument("--host", default="0.0.0.0", help="HTTP mode: address to listen on (default 0.0.0.0)")
    tips = sub.add_parser("tips", help="daily tips: list subscriptions, preview the next tip, post what is due")
    tips_sub = tips.add_subparsers(dest="action", metavar="ACTION", required=True)
    tips_sub.add_parser("list", help="subscriptions, their next post times and last posts")
    preview = tips_sub.add_parser("preview", help="the tip a channel gets next")
    preview.add_argument("--channel", required=True, help="channel id (`console` for the console)")
    preview.add_argument("--platform", default="console", choices=("console", "slack", "discord"))
    once = tips_sub.add_parser("run-once", help="post what is due now (or at --now), then exit")
    once.add_argument("--now", metavar="ISO-8601", help="pretend it is this instant, e.g. 2026-05-04T09:00:00+02:00")
    serve = sub.add_parser("serve", help="run every configured platform, the daily tips, /healthz and /metrics",
                           description="Runs Slack and/or Discord (whichever tokens are set), the daily-tip "
                                       "scheduler, and /healthz and /metrics, in one process, until SIGTERM. "
                                       "Settings: environment variables (see .env.example), optionally a YAML file.")
    serve.add_argument("--config", metavar="FILE", help="YAML settings file; the environment overrides it")
    cfg = sub.add_parser("config", help="print the effective settings (secrets masked) and any problems")
    cfg.add_argument("--config", metavar="FILE", help="YAML settings file; the environment overrides it")
    dc = sub.add_parser("discord", help="run in Discord (DISCORD_TOKEN)",
                        description="The bot token comes from the environment: DISCORD_TOKEN (or DISCORD_TOKEN_FILE).")
    dc.add_argument("--guild", type=_server_id, metavar="SERVER_ID",
                    help="register the slash commands in this one server only: they show up at once (for development)")
    return p


def _server_id(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError("must be a server id (digits): in Discord, enable Developer Mode, "
                                         "right-click the server, Copy Server ID")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `trendbot` console script."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`trendbot ask ... | head`): stop quietly, as Unix tools do.
        # https://docs.python.org/3/library/signal.html#note-on-sigpipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        args.command, args.no_color = "chat", False
    if args.command in ("serve", "config"):
        return _serve(args)
    try:
        kb = knowledge.load(args.knowledge)
    except knowledge.KnowledgeError as exc:
        print("The knowledge base is invalid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.command == "check":
        counts = kb.counts()
        print("knowledge OK: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
        return 0

    from adapters import console
    from bot.core import Incoming, TrendBot

    from bot.store import Store, StoreError

    bot = TrendBot(kb)
    bot.enable_tips(Store)  # the store (TRENDBOT_DB) opens only when a tip command needs it
    color = console.wants_color(sys.stdout)
    if args.command == "ask":
        if args.question == ["-"]:
            return _ask_lines(bot, args.json, args.explain)
        question = " ".join(args.question)
        _ask_one(bot, Incoming(question) if not question.strip().startswith("/") else console.to_incoming(question),
                 args.json, args.explain, color)
        return 0
    if args.command == "chat":
        return console.chat(bot, sys.stdin, sys.stdout, color=False if args.no_color else None)
    if args.command == "topics":
        print(console.render(bot.topics(), color))
        return 0
    if args.command == "tip":
        print(console.render(bot.tip(), color))
        return 0
    if args.command == "eval":
        return _eval(bot, args)
    if args.command == "slack":
        return _slack(bot, args)
    if args.command == "discord":
        return _discord(bot, args)
    if args.command == "tips":
        try:
            return _tips(bot, args)
        except StoreError as exc:
            print(f"trendbot tips: {exc}", file=sys.stderr)
            return 2
    return 2


def _eval(bot, args) -> int:
    """`trendbot eval`: answer quality of one file, or of the tuning and held-out parts side by side."""
    from bot.evaluation import EVAL_DIR, PARTS, evaluate, format_report, load_cases, load_part

    if args.file:
        print(format_report(evaluate(bot, load_cases(args.file)), misses=args.misses))
        return 0
    if not (EVAL_DIR / PARTS["held-out"][0]).exists():
        print(f"trendbot eval: no evaluation set at {EVAL_DIR} (it ships with the source, not the wheel); "
              "name a questions file", file=sys.stderr)
        return 2
    if args.fit:
        from bot.confidence import MODEL_FILE, Confidence
        from bot.evaluation import fit_confidence

        tuning = load_part("tuning")
        model = fit_confidence(bot, tuning)
        MODEL_FILE.write_text(model.to_json(fitted_on=f"{len(tuning)} tuning questions", knowledge=bot.kb.digest[:12])
                              + "\n", encoding="utf-8")
        print(f"wrote {MODEL_FILE} (threshold {model.threshold})")
        bot.answers.confidence = Confidence(model)
    reports = [(part, evaluate(bot, load_part(part))) for part in PARTS]
    print("\n\n".join(format_report(r, part, misses=args.misses and part != "held-out") for part, r in reports))
    return 0


def _tips(bot, args) -> int:
    """`trendbot tips list|preview|run-once`: the daily-tip subscriptions from the command line."""
    import asyncio
    import datetime as dt

    from adapters import console
    from adapters.secrets import SettingsError
    from bot.schedule import UTC, local_date, next_post
    from bot.tips import tip_post

    tips = bot.tips
    if args.action == "list":
        subs = tips.store.subscriptions(active_only=False)
        if not subs:
            print("No channel is subscribed to daily tips.")
        now = dt.datetime.now(UTC)
        for sub in subs:
            sent = tips.store.sent_tips(sub.platform, sub.channel_id)
            posted = bool(sent) and sent[-1][0] == local_date(sub, now).isoformat()
            when = next_post(sub, now, posted).astimezone(sub.tz).strftime("%Y-%m-%d %H:%M %Z")
            last = f"{sent[-1][0]} {sent[-1][1]}" if sent else "never"
            state = "" if sub.active else " (paused: posting kept failing)"
            print(f"{sub.platform}:{sub.channel_id}  {sub.time:%H:%M} {sub.zone}  topics: {','.join(sub.topics) or 'all'}"
                  f"  next: {when}  last: {last}{state}")
        return 0
    if args.action == "preview":
        sub = tips.store.subscription(args.platform, args.channel)
        if sub is None:
            print(f"{args.platform}:{args.channel} is not subscribed to daily tips.", file=sys.stderr)
            return 1
        tip = tips.next_tip(sub)
        if tip is None:
            print("No tips match this channel's topics.", file=sys.stderr)
            return 1
        print(console.render(tip_post(bot.kb, tip), console.wants_color(sys.stdout)))
        return 0
    now = dt.datetime.now(UTC)
    if args.now:
        try:
            now = dt.datetime.fromisoformat(args.now)
        except ValueError:
            print("trendbot tips run-once: --now must be an ISO-8601 time, e.g. 2026-05-04T09:00:00+02:00",
                  file=sys.stderr)
            return 2
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
    try:
        results = asyncio.run(_post_due(tips, now.astimezone(UTC)))
    except SettingsError as exc:
        print(f"trendbot tips: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print(f"{r.platform}:{r.channel_id} {r.local_date}: {r.outcome}" + (f" ({r.tip_id})" if r.tip_id else ""),
              file=sys.stderr)
    if any(r.outcome == "no-poster" for r in results):
        print("Channels of a platform with no settings here were skipped: set SLACK_BOT_TOKEN to post to Slack "
              "and DISCORD_TOKEN to post to Discord.", file=sys.stderr)
    return 1 if any(r.outcome in ("failed", "deactivated") for r in results) else 0


async def _post_due(tips, now) -> list:
    """One pass of the scheduler with a poster for the console and each platform whose token is set."""
    import contextlib

    from adapters import console

    async with contextlib.AsyncExitStack() as stack:
        posters = {"console": console.ConsolePoster(sys.stdout, console.wants_color(sys.stdout))}
        if os.environ.get("SLACK_BOT_TOKEN") or os.environ.get("SLACK_BOT_TOKEN_FILE"):
            from adapters import slack_app  # only when Slack is configured

            posters["slack"] = slack_app.poster_from_env(os.environ)
        if os.environ.get("DISCORD_TOKEN") or os.environ.get("DISCORD_TOKEN_FILE"):
            from adapters import discord_app  # only when Discord is configured

            settings = discord_app.Settings.from_env(os.environ)
            _redact_logs(settings.secrets)
            posters["discord"] = await stack.enter_async_context(discord_app.rest_poster(settings))
        return await tips.run_once(posters, now)


def _slack(bot, args) -> int:
    """`trendbot slack`: every bad setting ends in one line naming it, never a traceback or a token."""
    try:  # imported here so that no other command loads slack_bolt, slack_sdk or aiohttp
        from adapters import slack_app
    except ImportError as exc:
        print(f"trendbot slack: missing dependency {exc.name!r}; reinstall trendbot", file=sys.stderr)
        return 1
    from bot.store import Store, StoreError

    try:
        settings = slack_app.Settings.from_env(os.environ, host=args.host, port=args.port)
    except slack_app.SettingsError as exc:
        print(f"trendbot slack: {exc}", file=sys.stderr)
        return 2
    _redact_logs(settings.secrets)
    try:
        store = Store()
    except StoreError as exc:
        print(f"trendbot slack: {exc}", file=sys.stderr)
        return 2
    bot.enable_tips(store)
    try:
        slack_app.run(bot, store, settings, lambda what: print(f"trendbot: {what}", file=sys.stderr, flush=True))
    except slack_app.SettingsError as exc:
        print(f"trendbot slack: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0


def _serve(args) -> int:
    """`trendbot serve` and `trendbot config`: settings checked with every problem listed at once."""
    from adapters import serve
    from bot import config, events

    cfg, problems = config.read(os.environ, args.config)
    knowledge_dir = args.knowledge or cfg["TRENDBOT_KNOWLEDGE"] or None
    found, kb, more = serve.check(cfg, knowledge_dir)
    problems += more
    if args.command == "serve":
        from bot.store import Store, StoreError

        try:  # the store too, so that a path it cannot use is reported with the rest
            Store(cfg["TRENDBOT_DB"] or None).close()
        except StoreError as exc:
            problems.append(str(exc))
    if args.command == "config":
        print("\n".join(cfg.lines()))
        print(f"# platforms: {', '.join(found) or 'none'}; knowledge: {knowledge_dir or 'shipped'}"
              + (f" ({sum(kb.counts().values())} entries)" if kb else ""))
    if problems:
        print(f"trendbot {args.command}: {len(problems)} problem{'s' if len(problems) > 1 else ''} in the settings:",
              file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if args.command == "config":
        return 0
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(events.JsonFormatter() if cfg["TRENDBOT_LOG_FORMAT"] == "json" else events.TextFormatter())
    root.setLevel(logging.DEBUG if args.verbose else getattr(logging, cfg["TRENDBOT_LOG_LEVEL"].upper()))
    if not args.verbose:  # the libraries' chatter stays at warnings unless asked for with -v
        for name in ("discord", "slack_bolt", "slack_sdk", "aiohttp"):
            logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    events.log_questions = cfg["TRENDBOT_LOG_QUESTIONS"]
    _redact_logs(serve.secrets_of(found))
    return serve.run(cfg, found, kb, knowledge_dir)


def _redact_logs(secrets) -> None:
    """Keep the platform's secrets out of every log line this process writes."""
    from adapters.secrets import SecretFilter

    secret_filter = SecretFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)


def _discord(bot, args) -> int:
    """`trendbot discord`: a bad or rejected setting ends in one line saying what to fix, never a traceback or a token."""
    try:  # imported here so that no other command loads discord.py
        from adapters import discord_app
    except ImportError as exc:
        print(f"trendbot discord: missing dependency {exc.name!r}; reinstall trendbot", file=sys.stderr)
        return 1
    try:
        settings = discord_app.Settings.from_env(os.environ, guild_id=args.guild)
    except discord_app.SettingsError as exc:
        print(f"trendbot discord: {exc}", file=sys.stderr)
        return 2
    _redact_logs(settings.secrets)
    try:
        discord_app.run(bot, settings, lambda what: print(f"trendbot: {what}", file=sys.stderr, flush=True))
    except discord_app.SettingsError as exc:
        print(f"trendbot discord: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _ask_one(bot, incoming, as_json: bool, explain: bool, color: bool) -> None:
    from adapters import console

    decision = bot.explain(incoming) if explain else None
    reply = decision.reply if decision else bot.handle(incoming)
    if as_json:
        data = reply.to_dict()
        if decision:
            data["explain"] = _explanation(decision)
        print(json.dumps(data, ensure_ascii=False), flush=True)
        return
    print(console.render(reply, color, console.width_of(sys.stdout)))
    if decision:
        print()
        print(_format_explanation(_explanation(decision)))


def _ask_lines(bot, as_json: bool, explain: bool) -> int:
    from adapters import console

    for line in sys.stdin:
        line = line.rstrip("\n")
        _ask_one(bot, console.to_incoming(line), as_json, explain, False)
        if not as_json:
            print("-" * 40, flush=True)
    return 0


def _explanation(decision) -> dict:
    r = decision.results
    reply = decision.reply
    out = {"entry_id": reply.entry_id, "answered": reply.answered, "score": round(reply.score, 4), "kind": reply.kind}
    if r is not None:
        out["words"] = list(r.words)
        out["corrected"] = {a: b for a, b in r.corrections}
        out["unknown"] = list(r.unknown)
        out["coverage"] = round(r.coverage, 3)
        out["ranking"] = [{"entry_id": h.entry_id, "score": round(h.score, 4)} for h in r.hits]
    j = decision.judgement
    if j is not None:
        out["confidence"] = {"candidate": j.entry_id, "probability": round(j.probability, 4),
                             "needed": round(j.needed, 4), "missing": list(j.missing),
                             "features": {k: round(v, 4) for k, v in j.features.items()}}
    if reply.entries:
        out["parts"] = list(reply.entries)
    return out


def _format_explanation(e: dict) -> str:
    lines = [f"matched: {e['entry_id'] or '(none)'}  score={e['score']}  answered={e['answered']}  kind={e['kind']}"]
    if "words" in e:
        lines.append(f"read as: {' '.join(e['words']) or '(no content words)'}  coverage={e['coverage']}")
        if e["corrected"]:
            lines.append("corrected: " + ", ".join(f"{a} -> {b}" for a, b in e["corrected"].items()))
        if e["unknown"]:
            lines.append("unknown: " + ", ".join(e["unknown"]))
        for i, h in enumerate(e["ranking"], 1):
            lines.append(f"  {i}. {h['entry_id']}  {h['score']}")
    c = e.get("confidence")
    if c:
        verdict = "answer" if c["probability"] >= c["needed"] else "decline"
        lines.append(f"confidence: {c['candidate'] or '(none)'} p={c['probability']} needs {c['needed']} -> {verdict}")
        lines.append("features: " + "  ".join(f"{k}={v}" for k, v in c["features"].items()))
        if c["missing"]:
            lines.append("nothing known about: " + ", ".join(c["missing"]))
    if e.get("parts"):
        lines.append("two parts: " + ", ".join(e["parts"]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
