"""The terminal as a chat surface: plain or colored text wrapped to the terminal, with line
editing, history and Tab completion of commands and topics."""
from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from bot import markup
from bot.core import Incoming, TrendBot
from bot.replies import Reply, sources_line, suggestions_line

log = logging.getLogger(__name__)

BOLD, DIM, CYAN, YELLOW, RESET = "\033[1m", "\033[2m", "\033[36m", "\033[33m", "\033[0m"
PROMPT = "you> "
_ANSI = re.compile(r"\033\[[0-9;]*m")
COMMANDS = ("help", "topics", "tip", "sources", "more", "good", "bad", "report", "teach", "subscribe", "unsubscribe",
            "subscription")


def wants_color(stream: TextIO) -> bool:
    """Color for a terminal, unless NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def width_of(stream: TextIO) -> int | None:
    """The terminal's width for wrapping, or None when the stream is not a terminal."""
    return shutil.get_terminal_size().columns if stream.isatty() else None


def to_incoming(line: str) -> Incoming:
    """A typed line: '/trend ...' is a command, anything else a question."""
    stripped = line.strip()
    head, _, rest = stripped.partition(" ")
    # The person at the terminal manages the console's one channel, `console`, and the bot itself.
    if head.lower() in ("/trend", "/trendbot"):
        return Incoming(rest.strip(), platform="console", is_command=True, is_dm=True, can_manage=_yes, is_manager=_yes)
    return Incoming(stripped, platform="console", is_dm=True, can_manage=_yes, is_manager=_yes)


def _yes() -> bool:
    return True


def _spans(items: tuple[markup.Span, ...], color: bool) -> str:
    out = []
    for s in items:
        text = _safe(s.text)
        if s.url:
            out.append(f"{text} <{_safe(s.url)}>")
        elif s.bold and color:
            out.append(f"{BOLD}{text}{RESET}")
        else:
            out.append(text)
    return "".join(out)


def _safe(text: str) -> str:
    """Drop escape and other control characters so knowledge text cannot drive the terminal."""
    return "".join(ch for ch in text if ch >= " " and ch != "\x7f")


def render(reply: Reply, color: bool = False, width: int | None = None) -> str:
    """The reply as terminal text; `color` adds ANSI bold and dim styling; `width` wraps lines
    at word boundaries (bullets keep their indent)."""
    def wrap(text: str, indent: str = "", first: str = "") -> str:
        return _wrap(text, width, first or indent, indent) if width else first + text

    parts = [wrap(f"{BOLD}{CYAN}{_safe(reply.title)}{RESET}" if color else _safe(reply.title))]
    for block in markup.parse(reply.text):
        if block.bullets:
            parts.append("\n".join(wrap(_spans(item, color), "    ", "  • ") for item in block.items))
        else:
            parts.append(wrap(_spans(block.items[0], color)))
    more = "More: /trend more" if reply.more and reply.entry_id else ""  # the last short answer
    rate = "Helpful? /trend good or /trend bad" if reply.asked_id is not None else ""
    teach = f"Teach it: /trend teach ENTRY_ID {_safe(reply.teach)}" if reply.teach else ""
    for line, style in ((sources_line(reply), DIM), (suggestions_line(reply), YELLOW), (more, DIM), (rate, DIM),
                        (teach, DIM)):
        if line:
            parts.append(wrap(f"{style}{_safe(line)}{RESET}" if color else _safe(line)))
    return "\n\n".join(parts)


def _wrap(text: str, width: int, first: str, indent: str) -> str:
    """Greedy word wrap that measures without ANSI codes; a word longer than a line stays whole."""
    lines, line, used = [], first, len(first)
    for word in text.split(" "):
        size = len(_ANSI.sub("", word))
        if used > len(indent if lines else first) and used + 1 + size > width:
            lines.append(line)
            line, used = indent + word, len(indent) + size
        else:
            gap = "" if used == len(indent if lines else first) else " "
            line, used = line + gap + word, used + len(gap) + size
    lines.append(line)
    return "\n".join(lines)


def _history_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "trendbot" / "history"


def chat(bot: TrendBot, stdin: TextIO, stdout: TextIO, color: bool | None = None,
         read: Callable[[str], str] | None = None) -> int:
    """Interactive loop until EOF, 'quit' or 'exit'. Uses readline for editing when interactive.

    `/trend more` (or just `more`) shows the whole entry behind the last short answer.
    """
    interactive = stdin.isatty() and stdout.isatty()
    color = (interactive and wants_color(stdout)) if color is None else color
    width = width_of(stdout) if interactive else None
    history = None
    last: str | None = None  # the entry behind the last short answer, for `/trend more`
    rated: int | None = None  # the last answer, for `/trend good` and `/trend bad`
    if read is None:
        if interactive:
            history = _setup_readline(completions(bot))
            read = input
        else:
            def read(prompt: str) -> str:
                line = stdin.readline()
                if not line:
                    raise EOFError
                return line
    if interactive:
        stdout.write("trendbot: ask about backend trends. /trend help for commands, Ctrl-D to quit.\n")
    try:
        while True:
            try:
                line = read(PROMPT if interactive else "")
            except EOFError:
                break
            except KeyboardInterrupt:
                stdout.write("\n")
                continue
            if line.strip().lower() in ("quit", "exit", "/quit", "/exit"):
                break
            if not line.strip():
                continue
            words = line.strip().lower().removeprefix("/trendbot ").removeprefix("/trend ").split()
            if words in (["more"],) and last:
                line = f"/trend more {last}"
            elif words in (["good"], ["bad"]) and rated is not None:  # rate the last answer
                line = f"/trend {words[0]} {rated}"
            reply = bot.handle(to_incoming(line))
            if reply.answered and reply.entry_id:
                last = reply.entry_id
            if words not in (["good"], ["bad"]):
                rated = reply.asked_id  # a vote rates the reply just before it, never an older one
            stdout.write(render(reply, color=color, width=width) + "\n\n")
            stdout.flush()
    finally:
        if history is not None:
            _save_history(history)
    return 0


def candidates(bot: TrendBot, line: str) -> list[str]:
    """What Tab may complete the last word of `line` to: `/trend`, then its subcommands and topic
    ids, topic ids after `/trend subscribe HH:MM Zone`, and entry ids after `/trend teach`."""
    head, _, last = line.rpartition(" ")
    words = head.split()
    if not words:
        return [w for w in ("/trend",) if w.startswith(last)] if line.startswith("/") else []
    if words[0].lower() not in ("/trend", "/trendbot"):
        return []
    topics = sorted(bot.kb.trends)
    if len(words) == 1:
        return [w for w in (*COMMANDS, *topics) if w.startswith(last.lower())]
    if words[1].lower() == "teach" and len(words) == 2:
        return [e for e in sorted([*bot.kb.trends, *bot.kb.faqs]) if e.startswith(last.lower())]
    return [t for t in topics if t.startswith(last.lower())] if words[1].lower() == "subscribe" else []


def completions(bot: TrendBot) -> Callable[[str, int], str | None]:
    """A readline completer over `candidates`."""
    def complete(text: str, state: int) -> str | None:
        import readline

        options = candidates(bot, readline.get_line_buffer()[: readline.get_endidx()])
        return options[state] + " " if state < len(options) else None

    return complete


def _setup_readline(complete: Callable[[str, int], str | None] | None = None) -> Path | None:
    try:
        import readline
    except ImportError:  # no GNU readline (e.g. Windows): plain input still works
        return None
    if complete is not None:
        readline.set_completer(complete)
        readline.set_completer_delims(" ")
        readline.parse_and_bind("tab: complete")
    path = _history_file()
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)
    return path


def _save_history(path: Path) -> None:
    import readline

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(path)
    except OSError as exc:
        log.warning("could not save chat history: %s", exc.strerror)


class ConsolePoster:
    """Posts daily tips for the console's channel by printing them."""

    def __init__(self, stdout: TextIO, color: bool = False):
        self.stdout = stdout
        self.color = color

    async def post(self, channel_id: str, reply: Reply) -> None:
        """Print the tip (the console has one channel, so channel_id is only shown)."""
        self.stdout.write(render(reply, color=self.color) + "\n\n")
        self.stdout.flush()
