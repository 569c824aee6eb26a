"""The `trendbot` command line: ask, chat, topics, tip, check, eval, tips, report, teach, learned, config,
serve, slack, discord.

`serve`, `slack` and `discord` are one runner (trendbot/serve.py): `slack` and `discord` run it
limited to that platform. The console commands load no chat library.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from trendbot import wiring

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trendbot", description="Answers questions about backend-development trends.")
    p.add_argument("--version", action=_Version, help="show the version and exit")
    p.add_argument("--knowledge", metavar="DIR",
                   default=os.path.expanduser(os.environ.get("TRENDBOT_KNOWLEDGE", "")) or None,
                   help="knowledge folder (default: the one shipped with trendbot; env TRENDBOT_KNOWLEDGE)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    ask = sub.add_parser("ask", help="answer one question, or one per stdin line with '-'")
    ask.add_argument("question", nargs="*", help="the question; '-' reads one question per line from stdin")
    ask.add_argument("--json", action="store_true", help="print one JSON object per question")
    ask.add_argument("--explain", action="store_true",
                     help="show the matched entry, corrections, runners-up, and the confidence features")

    chat = sub.add_parser("chat", help="interactive console chat")
    chat.add_argument("--no-color", action="store_true", help="plain text output")
    sub.add_parser("topics", help="list the topics")
    sub.add_parser("tip", help="print a random tip")
    sub.add_parser("check", help="validate the knowledge base and print counts")
    ev = sub.add_parser("eval", help="measure answer quality: the tuning and held-out parts, or one file")
    ev.add_argument("file", nargs="?", help="YAML file with `questions:` and `out_of_scope:` "
                                          "(default: both parts of tests/eval/, reported separately)")
    ev.add_argument("--misses", action="store_true", help="list the questions answered wrongly (not held-out ones)")
    ev.add_argument("--fit", action="store_true",
                    help="refit the confidence model on the tuning part and write bot/confidence.json")

    from trendbot import learncommands, tipcommands

    tipcommands.add_parser(sub)
    learncommands.add_parsers(sub)
    serve = sub.add_parser("serve", help="run every configured platform, the daily tips, /healthz and /metrics",
                           description="Runs Slack and/or Discord (whichever tokens are set), the daily-tip "
                                       "scheduler, and /healthz and /metrics, in one process, until SIGTERM. "
                                       "Settings: environment variables (see .env.example), optionally a YAML file.")
    serve.add_argument("--config", metavar="FILE", help="YAML settings file; the environment overrides it")
    cfg = sub.add_parser("config", help="print the effective settings (secrets masked) and any problems")
    cfg.add_argument("--config", metavar="FILE", help="YAML settings file; the environment overrides it")
    sl = sub.add_parser("slack", help="run in Slack only: Socket Mode if SLACK_APP_TOKEN is set, else HTTP mode",
                        description="`trendbot serve` limited to Slack. Settings come from the environment: "
                                    "SLACK_BOT_TOKEN, SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP "
                                    "mode), SLACK_API_URL, TRENDBOT_DB.")
    sl.add_argument("--port", help="HTTP mode: port for /slack/events (TRENDBOT_SLACK_PORT, default 3000)")
    sl.add_argument("--host", help="HTTP mode: address to listen on (TRENDBOT_SLACK_HOST, default 0.0.0.0)")
    sl.add_argument("--config", metavar="FILE", help="YAML settings file; the environment overrides it")
    dc = sub.add_parser("discord", help="run in Discord only (DISCORD_TOKEN)",
                        description="`trendbot serve` limited to Discord. The bot token comes from the environment: "
                                    "DISCORD_TOKEN (or DISCORD_TOKEN_FILE).")
    dc.add_argument("--guild", metavar="SERVER_ID",
                    help="register the slash commands in this one server only: they show up at once (for development; "
                         "DISCORD_GUILD_ID)")
    dc.add_argument("--config", metavar="FILE", help="YAML settings file; the environment overrides it")
    return p


class _Version(argparse.Action):
    """--version, looked up only when asked for (importlib.metadata costs a start ~20 ms)."""

    def __init__(self, option_strings, dest, help=None):
        super().__init__(option_strings, dest, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {_version()}")  # on stdout, as argparse's own version action prints it
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trendbot")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `trendbot` console script."""
    from bot.store import StoreError

    try:
        return _main(argv)
    except StoreError as exc:  # each command says this itself; here only what reaches no command
        print(f"trendbot: {exc}", file=sys.stderr)
        return 2
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
    if args.command in ("serve", "config", "slack", "discord"):
        return _run(args)
    config, _ = wiring.settings(os.environ, platforms=False)
    kb, problems = wiring.knowledge(args.knowledge, config["TRENDBOT_KNOWLEDGE_MAX_BYTES"])
    if kb is None:
        print("The knowledge base is invalid:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem.removeprefix('knowledge: ')}", file=sys.stderr)
        return 1
    if args.command == "check":
        print("knowledge OK: " + ", ".join(f"{n} {kind}" for kind, n in kb.counts().items()))
        return 0

    from adapters import console

    bot = wiring.bot(kb, config, wiring.db_opener(config))  # the store opens only when a tip command needs it
    color = console.wants_color(sys.stdout)
    if args.command == "ask":
        if args.question == ["-"]:
            for line in sys.stdin:
                _ask_one(bot, console.to_incoming(line.rstrip("\n")), args.json, args.explain, False)
                if not args.json:
                    print("-" * 40, flush=True)
            return 0
        _ask_one(bot, console.to_incoming(" ".join(args.question)), args.json, args.explain, color)
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
    if args.command in ("report", "teach", "learned"):
        from trendbot import learncommands

        return learncommands.run(bot, args)
    from trendbot import tipcommands

    return tipcommands.run(bot, config, args)


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


# -- the runner -----------------------------------------------------------------------------------

_FLAGS = {"host": "TRENDBOT_SLACK_HOST", "port": "TRENDBOT_SLACK_PORT", "guild": "DISCORD_GUILD_ID"}


def _run(args) -> int:
    """`serve`, `slack`, `discord` (the runner, for every platform or one) and `config`: the settings
    are checked first, with every problem listed at once (exit code 2)."""
    from trendbot import serve

    only = args.command if args.command in ("slack", "discord") else None
    cfg, problems = wiring.settings(_with_flags(args), args.config)
    knowledge_dir = args.knowledge or cfg["TRENDBOT_KNOWLEDGE"] or None
    found, kb, more = serve.check(cfg, knowledge_dir, only)
    problems += more
    if args.command == "config":
        print("\n".join(cfg.lines()))
        print(f"# platforms: {', '.join(found) or 'none'}; knowledge: {knowledge_dir or 'shipped'}"
              + (f" ({sum(kb.counts().values())} entries)" if kb else ""))
    if problems:
        _report(args.command, only, problems)
        return 2
    if args.command == "config":
        return 0
    _configure_logs(cfg, args.verbose, quiet=bool(only))
    if not only:
        from bot import events

        return serve.run(cfg, found, kb, knowledge_dir, announce=lambda what: events.emit("platform_ready", what))

    def announce(what: str) -> None:  # one platform: say what it is doing, as a person starting it expects
        print(f"trendbot: {what}", file=sys.stderr, flush=True)

    def refuse(why: str) -> None:
        print(f"trendbot {only}: {why}", file=sys.stderr, flush=True)

    return serve.run(cfg, found, kb, knowledge_dir, announce=announce, refuse=refuse, fail_fast=True)


def _with_flags(args) -> dict[str, str]:
    """The environment with the command's flags as the settings they stand for (`slack --port 3001`)."""
    environ = dict(os.environ)
    for flag, variable in _FLAGS.items():
        if getattr(args, flag, None) is not None:
            environ[variable] = str(getattr(args, flag))
    return environ


def _report(command: str, only: str | None, problems: list[str]) -> None:
    if only:
        for problem in problems:
            print(f"trendbot {only}: {problem}", file=sys.stderr)
        return
    print(f"trendbot {command}: {len(problems)} problem{'s' if len(problems) > 1 else ''} in the settings:",
          file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)


def _configure_logs(cfg, verbose: bool, quiet: bool) -> None:
    """The log format and level the settings ask for, secrets filtered out. `quiet`: one platform in a
    terminal, whose own `trendbot: ...` lines say what it does, logs warnings unless a level is set."""
    from bot import events

    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(events.JsonFormatter() if cfg["TRENDBOT_LOG_FORMAT"] == "json" else events.TextFormatter())
    level = cfg["TRENDBOT_LOG_LEVEL"]
    if quiet and cfg.origins["TRENDBOT_LOG_LEVEL"] == "default":
        level = "warning"
    root.setLevel(logging.DEBUG if verbose else getattr(logging, level.upper()))
    if not verbose:  # the libraries' chatter stays at warnings unless asked for with -v
        for name in ("discord", "slack_bolt", "slack_sdk", "aiohttp"):
            logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    events.log_questions = cfg["TRENDBOT_LOG_QUESTIONS"]
    wiring.redact_logs(wiring.secrets(cfg))


# -- ask ------------------------------------------------------------------------------------------


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
    j = getattr(decision, "judgement", None)
    if j is not None:
        out["confidence"] = {"candidate": j.entry_id, "probability": round(j.probability, 4),
                             "needed": round(j.needed, 4), "answer": j.answer, "missing": list(j.missing),
                             "phrased": j.phrased,
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
        verdict = "answer" if c["answer"] else "decline"  # the judgement's own, not the rounded figures
        if c.get("phrased"):
            verdict = "answer (the question is one of its phrasings, word for word)"
        lines.append(f"confidence: {c['candidate'] or '(none)'} p={c['probability']} needs {c['needed']} -> {verdict}")
        lines.append("features: " + "  ".join(f"{k}={v}" for k, v in c["features"].items()))
        if c["missing"]:
            lines.append("nothing known about: " + ", ".join(c["missing"]))
    if e.get("parts"):
        lines.append("two parts: " + ", ".join(e["parts"]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
