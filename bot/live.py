"""Knowledge that can change under a running bot: a core swapped whole, and a folder watcher.

`LiveBot` stands where a `TrendBot` does and hands each call to the current one, so a reload
is one reference swap: a question being answered finishes on the knowledge it started with,
the next one gets the new. `Reloader` loads a changed folder off to the side; a version that
fails validation is rejected with its problems logged, and the last good one stays in use.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import knowledge
from bot.core import Incoming, TrendBot
from bot.events import emit
from bot.replies import Reply

log = logging.getLogger(__name__)

__all__ = ["LiveBot", "Reloader", "fingerprint"]


class LiveBot:
    """A TrendBot whose knowledge can be replaced while it runs; other attributes are the current bot's."""

    def __init__(self, bot: TrendBot):
        self.current = bot

    def handle(self, incoming: Incoming) -> Reply:
        """Answer with the knowledge current when the question arrived."""
        return self.current.handle(incoming)

    def replace(self, bot: TrendBot) -> None:
        """Answer from `bot` from now on; the daily tips and the learning loop carry on with their store."""
        old = self.current
        if old.tips is not None:
            bot.tips = old.tips
            bot.tips.use(bot.kb, bot.find_topic)
        if old.learning is not None:
            bot.learning = old.learning
        self.current = bot

    def __getattr__(self, name: str) -> Any:  # kb, tips, find_topic, topics, tip, ...
        return getattr(self.current, name)


def _taught_version(learned: dict[str, tuple[str, ...]]) -> str:
    return hashlib.sha256(repr(sorted(learned.items())).encode()).hexdigest()[:16]


def fingerprint(root: Path) -> str:
    """A digest of the YAML files under `root` (names, sizes, modification times): changes when one does."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.yaml")):
        try:
            st = path.stat()
        except OSError:
            continue
        h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Loaded:
    """What the bot answers from now: its version (fingerprint), when it loaded, and its counts."""

    version: str
    loaded_at: float
    counts: dict[str, int]
    warnings: tuple[str, ...] = ()  # what is odd in it but not wrong (an empty file)


class Reloader:
    """Reloads the knowledge folder into a LiveBot when its files change (or when asked, on SIGHUP)."""

    def __init__(self, live: LiveBot, root: Path | str | None, max_bytes: int = knowledge.MAX_BYTES):
        self.live = live
        self.root = Path(root) if root else knowledge.default_path()
        self.max_bytes = max_bytes
        self.seen = fingerprint(self.root)  # the files in use, or the last ones rejected
        self.taught = _taught_version(self._learned())  # the taught phrasings in use
        self.loaded = Loaded(self.seen, time.time(), live.kb.counts(), live.kb.warnings)
        self.rejected: list[str] = []  # the problems of the last rejected version
        self._lock = threading.Lock()

    def check(self, force: bool = False) -> str:
        """Reload if the files changed since last seen (or `force`): 'reloaded', 'rejected' or 'unchanged'.

        Blocking (it builds a whole index): run it in a worker thread.
        """
        with self._lock:
            now = fingerprint(self.root)
            learned = self._learned()
            taught = _taught_version(learned)
            files_changed = now != self.seen or force
            if not files_changed and taught == self.taught:
                return "unchanged"
            self.seen, self.taught = now, taught
            kb = self.live.kb
            if files_changed:
                try:
                    kb = knowledge.load(self.root, self.max_bytes)
                except knowledge.KnowledgeError as exc:
                    self.rejected = list(exc.problems)
                    emit("knowledge_rejected", f"the knowledge in {self.root} has {len(exc.problems)} problem(s); "
                         "still answering from the last good version: " + "; ".join(exc.problems[:20]),
                         level=logging.ERROR, version=now, problems=len(exc.problems))
                    return "rejected"
            bot = TrendBot(kb, confidence=self.live.current.answers.confidence, learned=learned,
                           cache=self.live.current.cache)
            bot.answers.surface.warm()  # in this thread, not on the first question the new version answers
            self.live.replace(bot)
            self.loaded = Loaded(now, time.time(), kb.counts(), kb.warnings)
            self.rejected = []
            emit("knowledge_reloaded", f"reloaded the knowledge from {self.root}" if files_changed else
                 "taught phrasings changed: the index now has them", version=now, **kb.counts())
            return "reloaded"

    def _learned(self) -> dict[str, tuple[str, ...]]:
        learning = self.live.current.learning
        if learning is None:
            return {}
        try:
            return learning.phrasings()
        except Exception as exc:  # the store is away: keep answering with what the index has
            log.warning("could not read the taught phrasings: %s", exc)
            return self.live.current.learned
