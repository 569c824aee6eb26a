"""The trendbot command line, run as a real process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import MINI

pytestmark = pytest.mark.slow  # every test here starts a process or builds a wheel

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, stdin: str | None = None, knowledge: Path | None = MINI) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "trendbot"]
    if knowledge is not None:
        cmd += ["--knowledge", str(knowledge)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TRENDBOT_KNOWLEDGE", None)
    return subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)


def test_ask_prints_answer():
    out = run("ask", "is serverless cheaper?")
    assert out.returncode == 0
    assert out.stdout.startswith("Is serverless cheaper than running servers?")
    assert "Source: Example, Feb 2025" in out.stdout


def test_ask_json_stdin_one_object_per_line_in_order():
    out = run("ask", "--json", "-", stdin="k8s\nwhat's the weather in paris\n\n/trend serverless\n")
    assert out.returncode == 0
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert {"answered", "title", "text", "score", "entry_id", "sources", "suggestions"} <= row.keys()
    assert [r["entry_id"] for r in rows] == ["kubernetes", None, None, "serverless"]
    assert [r["answered"] for r in rows] == [True, False, False, True]
    assert rows[0]["text"].startswith("Kubernetes\n\nKubernetes schedules")
    assert "**" not in rows[3]["text"] and "Tools: AWS Lambda" in rows[3]["text"]
    assert rows[0]["sources"][0]["title"] == "Article A"


def test_ask_json_flushes_each_line():
    """An answer must arrive before the next question is written (a pipe, not a batch)."""
    cmd = [sys.executable, "-m", "trendbot", "--knowledge", str(MINI), "ask", "--json", "-"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        proc.stdin.write("k8s\n")
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())
        assert first["entry_id"] == "kubernetes"
        proc.stdin.write("faas\n")
        proc.stdin.close()
        assert json.loads(proc.stdout.readline())["entry_id"] == "serverless"
    finally:
        proc.kill()
        proc.wait()


def test_ask_explain_shows_ranking_and_corrections():
    out = run("ask", "--explain", "serverles pricing")
    assert "matched: " in out.stdout and "corrected: serverles -> serverless" in out.stdout
    assert "  1. " in out.stdout


def test_check_prints_counts_and_fails_on_bad_knowledge(tmp_path):
    ok = run("check")
    assert ok.returncode == 0 and "2 trends" in ok.stdout and "1 faqs" in ok.stdout
    (tmp_path / "bad.yaml").write_text("tips:\n  - id: t\n    text: yes\n", encoding="utf-8")
    bad = run("check", knowledge=tmp_path)
    assert bad.returncode == 1
    assert "bad.yaml: entry 't': field 'text'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_topics_and_tip_commands():
    assert "`/trend kubernetes`" not in run("topics").stdout  # code spans print without backticks
    assert "Kubernetes: /trend kubernetes" in run("topics").stdout
    assert run("tip").stdout.startswith("Backend tip")


def test_eval_prints_rates(tmp_path):
    qfile = tmp_path / "q.yaml"
    qfile.write_text("questions:\n  - q: k8s\n    expect: kubernetes\n  - q: lambda cost\n    expect: kubernetes\n"
                     "  - q: is serverless cheaper\n    facts: ['idle time|idle hours']\n"
                     "  - q: is serverless cheaper\n    facts: ['reserved instances']\n"
                     "out_of_scope:\n  - best pizza in naples\n", encoding="utf-8")
    out = run("eval", "--misses", str(qfile))
    assert out.returncode == 0
    assert "in scope: 2/4 right (50.0%)" in out.stdout
    assert "out of scope: 1/1 declined (100.0%)" in out.stdout
    assert "confidently wrong: 2/5 (40.0%)" in out.stdout
    assert "'lambda cost': want kubernetes" in out.stdout
    assert "want reserved instances" in out.stdout and "want idle" not in out.stdout
    assert "misses" not in run("eval", str(qfile)).stdout


def test_console_path_imports_no_chat_platform():
    code = ("import sys, trendbot.cli; trendbot.cli.main(['--knowledge', %r, 'ask', 'k8s']);"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('slack_bolt', 'slack_sdk', 'discord', 'aiohttp')];"
            "print('LOADED', bad)") % str(MINI)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "LOADED []" in out.stdout


def test_console_daily_tips_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TRENDBOT_DB", str(tmp_path / "tips.db"))
    sub = run("ask", "/trend subscribe 09:00 Europe/Berlin")
    assert sub.returncode == 0 and sub.stdout.startswith("Daily tips on") and "09:00 Europe/Berlin" in sub.stdout
    listed = run("tips", "list")
    assert "console:console  09:00 Europe/Berlin  topics: all  next: " in listed.stdout and "last: never" in listed.stdout
    preview = run("tips", "preview", "--channel", "console")
    assert preview.stdout.startswith("Daily backend tip")
    first = run("tips", "run-once", "--now", "2026-05-04T09:00:00+02:00")
    assert first.returncode == 0 and first.stdout.startswith("Daily backend tip")
    assert "console:console 2026-05-04: sent" in first.stderr
    again = run("tips", "run-once", "--now", "2026-05-04T10:00:00+02:00")
    assert again.returncode == 0 and again.stdout == ""  # exactly once per local day
    assert "last: 2026-05-04 tip-" in run("tips", "list").stdout
    early = run("tips", "run-once", "--now", "2026-05-05T08:59:00+02:00")
    assert early.stdout == ""
    bad = run("tips", "run-once", "--now", "tomorrow-ish")
    assert bad.returncode == 2 and "ISO-8601" in bad.stderr and "Traceback" not in bad.stderr


def test_only_questions_open_the_store_and_a_store_that_fails_costs_no_answer(tmp_path, monkeypatch):
    monkeypatch.setenv("TRENDBOT_DB", str(tmp_path / "t.db"))
    for command in (("topics",), ("tip",), ("check",), ("ask", "/trend help")):
        assert run(*command).returncode == 0
    assert not (tmp_path / "t.db").exists()
    assert run("ask", "k8s").returncode == 0  # recorded for the learning loop (trendbot report)
    assert (tmp_path / "t.db").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("TRENDBOT_DB", str(blocker / "t.db"))
    out = run("ask", "k8s")
    assert out.returncode == 0 and out.stdout.startswith("Kubernetes") and "Traceback" not in out.stderr


def test_a_closed_pipe_ends_quietly():
    cmd = [sys.executable, "-m", "trendbot", "--knowledge", str(MINI), "chat"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    proc.stdout.close()  # the reader is gone before the answer is written
    _, err = proc.communicate(b"k8s\n" * 200, timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err


def test_version_from_the_command_and_the_module():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    script = Path(sys.executable).with_name("trendbot")  # the console script installed beside this python
    assert script.exists(), f"{script}: trendbot is not installed in this environment"
    for cmd in ([str(script), "--version"], [sys.executable, "-m", "trendbot", "--version"]):
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"trendbot {version}\n", cmd


def test_explain_says_what_the_judgement_decided_not_what_its_rounded_figures_suggest():
    from trendbot import cli

    base = {"entry_id": None, "score": 0.7, "answered": False, "kind": "decline"}
    close = {"candidate": "x", "probability": 0.6988, "needed": 0.6988, "missing": [], "features": {}}
    declined = cli._format_explanation({**base, "confidence": {**close, "answer": False}})
    answered = cli._format_explanation({**base, "confidence": {**close, "answer": True}})
    assert declined.splitlines()[1].endswith("-> decline") and answered.splitlines()[1].endswith("-> answer")
