"""Settings errors, secrets read from the environment (or a file it names), and log redaction."""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

# A Slack token of any kind (bot, user, refresh, app-level): redacted wherever it shows, also one
# this process never read from its settings (a workspace's bot token from the store).
TOKEN_PATTERN = re.compile(r"\b(?:xox[a-z](?:\.xox[a-z])?|xapp)-[A-Za-z0-9-]+")


class SettingsError(ValueError):
    """A setting is missing, malformed or rejected; the message names what to fix, never the value."""


def read_secret(environ: Mapping[str, str], name: str) -> str:
    """$NAME, or the contents of the file $NAME_FILE names (Docker and systemd secrets); '' if neither."""
    value = environ.get(name, "")
    path = environ.get(f"{name}_FILE", "")
    if not value and path:
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read()
        except OSError as exc:
            raise SettingsError(f"{name}_FILE names a file that cannot be read ({exc.strerror})") from None
    return value.strip()


class SecretFilter(logging.Filter):
    """Replaces the given secrets, and anything shaped like a Slack token, in log records (message,
    event fields, traceback) with [redacted].

    The platform libraries do not log tokens themselves, except slack_sdk's debug dump of a response,
    which for oauth.v2.access holds the new bot token; this is the second line, for anything else that
    might echo one (an exception text, a library's debug dump).
    """

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._holds(message):
            record.msg, record.args = self._redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self._holds(record.exc_text):
            record.exc_text = self._redact(record.exc_text)
        fields = getattr(record, "fields", None)  # an event's fields (bot/events.py)
        if fields and any(self._holds(str(v)) for v in fields.values()):
            record.fields = {k: self._redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        return True

    def _holds(self, text: str) -> bool:
        return any(s in text for s in self.secrets) or TOKEN_PATTERN.search(text) is not None

    def _redact(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "[redacted]")
        return TOKEN_PATTERN.sub("[redacted]", text)
