"""What happened, once: each event is one log line and reaches every registered sink (metrics).

`emit("answer", platform=..., channel=..., entry_id=..., score=..., latency_ms=...)` logs
through the `trendbot.events` logger with the fields attached, and calls each sink with the
same fields. The text people wrote is a field only when `log_questions` is on: by default no
log line carries what anyone asked (privacy).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("trendbot.events")

Sink = Callable[[str, dict[str, Any]], None]
_sinks: list[Sink] = []
PRIVATE_FIELDS = ("text",)  # dropped unless log_questions is on
log_questions = False

__all__ = ["JsonFormatter", "TextFormatter", "add_sink", "emit", "remove_sink"]


def add_sink(sink: Sink) -> None:
    """Call `sink(event, fields)` for every event from now on."""
    _sinks.append(sink)


def remove_sink(sink: Sink) -> None:
    """Stop calling `sink`."""
    if sink in _sinks:
        _sinks.remove(sink)


def emit(event: str, message: str = "", *, level: int = logging.INFO, **fields: Any) -> None:
    """Record one event: a log line (with `fields` attached) and a call to each sink. Never raises."""
    if not _sinks and not log.isEnabledFor(level):  # the usual case outside `trendbot serve`: nothing to do
        return
    if not log_questions:
        fields = {k: v for k, v in fields.items() if k not in PRIVATE_FIELDS}
    for sink in list(_sinks):
        try:
            sink(event, fields)
        except Exception:  # a broken sink must not break answering
            log.exception("event sink failed on %s", event)
    if log.isEnabledFor(level):
        log.log(level, message or event, extra={"event": event, "fields": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the event and its fields, any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if event:
            out["event"] = event
            for key, value in (getattr(record, "fields", None) or {}).items():
                out.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["error"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message key=value ...`, one line per event (tracebacks follow on their own lines)."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields and getattr(record, "event", None):
            head, _, rest = line.partition("\n")
            pairs = " ".join(f"{k}={_short(v)}" for k, v in fields.items())
            line = f"{head} {pairs}" + (f"\n{rest}" if rest else "")
        return line


def _short(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text
