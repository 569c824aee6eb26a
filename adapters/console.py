"""The terminal as a chat surface: plain or colored text, with line editing and history."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from bot import markup
from bot.core import Incoming, TrendBot
from bot.replies import Reply, sources_line, suggestions_line

log = logging.getLogger(__name__)

BOLD, DIM, CYAN, YELLOW, RESET = "\033[1m", "\033[2m", "\033[36m", "\033[33m", "\033[0m"
PROMPT = "you> "


def to_incoming(line: str) -> Incoming:
    """A typed line: '/trend ...' is a command, anything else a question."""
    stripped = line.strip()
    head, _, rest = stripped.partition(" ")
    # The person at the terminal manages the console's one channel, `console`.
    if head.lower() in ("/trend", "/trendbot"):
        return Incoming(rest.strip(), platform="console", is_command=True, is_dm=True, can_manage=True)
    return Incoming(stripped, platform="console", is_dm=True, can_manage=True)


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


def render(reply: Reply, color: bool = False) -> str:
    """The reply as terminal text; `color` adds ANSI bold and dim styling."""
    parts = [f"{BOLD}{CYAN}{_safe(reply.title)}{RESET}" if color else _safe(reply.title)]
    for block in markup.parse(reply.text):
        if block.bullets:
            parts.append("\n".join(f"  • {_spans(item, color)}" for item in block.items))
        else:
            parts.append(_spans(block.items[0], color))
    for line, style in ((sources_line(reply), DIM), (suggestions_line(reply), YELLOW)):
        if line:
            parts.append(f"{style}{_safe(line)}{RESET}" if color else _safe(line))
    return "\n\n".join(parts)


def _history_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "trendbot" / "history"


def chat(bot: TrendBot, stdin: TextIO, stdout: TextIO, color: bool | None = None,
         read: Callable[[str], str] | None = None) -> int:
    """Interactive loop until EOF, 'quit' or 'exit'. Uses readline for editing when interactive."""
    interactive = stdin.isatty() and stdout.isatty()
    color = interactive if color is None else color
    history = None
    if read is None:
        if interactive:
            history = _setup_readline()
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
            stdout.write(render(bot.handle(to_incoming(line)), color=color) + "\n\n")
            stdout.flush()
    finally:
        if history is not None:
            _save_history(history)
    return 0


def _setup_readline() -> Path | None:
    try:
        import readline
    except ImportError:  # no GNU readline (e.g. Windows): plain input still works
        return None
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
