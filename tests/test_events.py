"""Events: one log line each (JSON or text) with their fields, never the question or a secret; metrics from them."""
from __future__ import annotations

import io
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.secrets import SecretFilter
from bot import events
from bot.confidence import Confidence
from bot.core import Incoming, TrendBot
from bot.metrics import Metrics
from tests.slack_fake import BOT_TOKEN


@pytest.fixture
def logged():
    """The trendbot.events lines, formatted as `trendbot serve` formats them, JSON and text."""
    streams = {"json": io.StringIO(), "text": io.StringIO()}
    handlers = []
    for kind, stream in streams.items():
        h = logging.StreamHandler(stream)
        h.setFormatter(events.JsonFormatter() if kind == "json" else events.TextFormatter())
        h.addFilter(SecretFilter([BOT_TOKEN]))
        handlers.append(h)
        events.log.addHandler(h)
    old = events.log.level
    events.log.setLevel(logging.INFO)
    yield streams
    events.log.setLevel(old)
    for h in handlers:
        events.log.removeHandler(h)
    events.log_questions = False


def test_an_answer_is_one_json_line_with_its_fields_and_without_the_question(mini_kb, logged):
    # A plain score threshold: whether a question with a card number in it clears the fitted
    # model is not what this checks.
    mini_bot = TrendBot(mini_kb, confidence=Confidence(None, threshold=0.3))
    mini_bot.handle(Incoming("is serverless cheaper? my card is 4111", platform="slack", channel_id="C0GENERAL"))
    (line,) = logged["json"].getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "answer" and record["level"] == "info" and record["logger"] == "trendbot.events"
    assert record["platform"] == "slack" and record["channel"] == "C0GENERAL"
    assert record["entry_id"] == "serverless-cheaper" and record["answered"] is True
    assert 0 < record["score"] <= 1 and record["latency_ms"] >= 0
    assert "serverless cheaper" not in line and "4111" not in line
    (text_line,) = logged["text"].getvalue().splitlines()
    assert text_line.startswith("INFO trendbot.events: answer platform=slack channel=C0GENERAL")
    assert "entry_id=serverless-cheaper" in text_line and "4111" not in text_line


def test_the_question_is_logged_only_when_asked_for(mini_bot, logged):
    events.log_questions = True
    mini_bot.handle(Incoming("is serverless cheaper?", platform="discord", channel_id="500"))
    record = json.loads(logged["json"].getvalue())
    assert record["text"] == "is serverless cheaper?"


def test_secrets_are_redacted_from_event_fields(logged):
    events.emit("platform_down", f"slack failed with {BOT_TOKEN}", level=logging.ERROR, platform="slack",
                error=f"rejected {BOT_TOKEN}")
    out = logged["json"].getvalue() + logged["text"].getvalue()
    assert BOT_TOKEN not in out and out.count("[redacted]") == 4


def test_a_traceback_stays_inside_its_json_line(logged):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        events.log.exception("it failed")
    (line,) = logged["json"].getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "it failed" and "RuntimeError: boom" in record["error"]


def test_a_broken_sink_does_not_break_answering(mini_bot, logged):
    def broken(event, fields):
        raise ValueError("sink down")

    events.add_sink(broken)
    try:
        reply = mini_bot.handle(Incoming("is serverless cheaper?"))
    finally:
        events.remove_sink(broken)
    assert reply.answered


def samples(metrics: Metrics, **state) -> dict[tuple, float]:
    """The metrics as Prometheus reads them: {(name, sorted labels): value}."""
    text = metrics.render(state.get("connected", {}), state.get("counts", {})).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_answers_declines_latency_tips_and_errors(mini_bot):
    m = Metrics()
    events.add_sink(m.sink)
    try:
        mini_bot.handle(Incoming("is serverless cheaper?", platform="slack"))
        mini_bot.handle(Incoming("k8s", platform="slack"))
        mini_bot.handle(Incoming("best pizza in naples", platform="discord"))
        events.emit("tip_posted", platform="discord", channel="1", tip_id="tip:x")
        events.emit("tip_failed", platform="slack", channel="C1", tip_id="tip:x", permanent=False)
        events.emit("reply_failed", platform="discord", channel="2")
        events.emit("platform_down", platform="discord", error="x", retry_in=1)
    finally:
        events.remove_sink(m.sink)
    got = samples(m, connected={"slack": True, "discord": False}, counts={"faqs": 3})
    assert got[("trendbot_questions_total", (("outcome", "answered"), ("platform", "slack")))] == 2
    assert got[("trendbot_questions_total", (("outcome", "declined"), ("platform", "discord")))] == 1
    assert got[("trendbot_answer_latency_seconds_count", (("platform", "slack"),))] == 2
    assert got[("trendbot_answer_latency_seconds_bucket", (("le", "+Inf"), ("platform", "slack")))] == 2
    assert got[("trendbot_tips_posted_total", (("platform", "discord"),))] == 1
    assert got[("trendbot_errors_total", (("kind", "tip"), ("platform", "slack")))] == 1
    assert got[("trendbot_errors_total", (("kind", "reply"), ("platform", "discord")))] == 1
    assert got[("trendbot_errors_total", (("kind", "connection"), ("platform", "discord")))] == 1
    assert got[("trendbot_platform_connected", (("platform", "slack"),))] == 1
    assert got[("trendbot_platform_connected", (("platform", "discord"),))] == 0
    assert got[("trendbot_knowledge_entries", (("kind", "faqs"),))] == 3
