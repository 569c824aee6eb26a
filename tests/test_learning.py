"""The learning loop in the core: what is recorded, privacy, the report, teaching, and the whole loop
from the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core import Incoming, TrendBot
from bot.learning import Learning
from bot.live import LiveBot, Reloader
from tests.conftest import MINI

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(store_db):
    """A store of each kind (the tests run on SQLite and on PostgreSQL)."""
    return store_db.open()


def bot_with(kb, store, **options) -> TrendBot:
    bot = TrendBot(kb, learned=Learning(store).phrasings())
    bot.enable_learning(Learning(store, **options))
    return bot


def test_answers_and_declines_are_recorded_and_commands_are_not(mini_kb, store):
    bot = bot_with(mini_kb, store)
    answer = bot.handle(Incoming("is serverless cheaper?", platform="slack", channel_id="C1"))
    decline = bot.handle(Incoming("what about monorepos", platform="slack", channel_id="C1"))
    bot.handle(Incoming("help", is_command=True))
    bot.handle(Incoming("topics", is_command=True))
    assert answer.asked_id is not None and decline.asked_id is None  # only answers can be rated
    rows = store.questions(0)
    assert [(r[1], r[2], r[4], r[5], r[7]) for r in rows] == [
        ("slack", "C1", "serverless-cheaper", 1, "is serverless cheaper?"),
        ("slack", "C1", None, 0, "what about monorepos")]


def test_with_keep_questions_off_no_question_text_reaches_the_store(mini_kb, store, store_db):
    bot = bot_with(mini_kb, store, keep_questions=False)
    reply = bot.handle(Incoming("is serverless cheaper than running servers"))
    bot.handle(Incoming("what about monorepos"))
    bot.handle(Incoming(f"good {reply.asked_id}", is_command=True))
    report = bot.report(7)
    assert report.questions == 2 and report.answered == 1 and report.unanswered == () and not report.texts_kept
    store.close()
    # SQLite: the database and its WAL; PostgreSQL: every row of every table. The words are nowhere.
    assert store_db.holds("serverless-cheaper")  # what is kept is found (the entry id)...
    assert not store_db.holds("cheaper than running") and not store_db.holds("monorepos")  # ...and the words are not


def test_old_questions_and_their_votes_are_purged(mini_kb, store):
    clock = [1_000_000.0]
    bot = TrendBot(mini_kb)
    bot.enable_learning(Learning(store, retention_days=1, clock=lambda: clock[0]))
    reply = bot.handle(Incoming("is serverless cheaper?"))
    bot.handle(Incoming(f"bad {reply.asked_id}", is_command=True, user_id="U1"))
    assert len(store.questions(0)) == 1 and len(store.votes(0)) == 1
    clock[0] += 2 * 86400  # two days on: the next question purges what is older than a day
    bot.handle(Incoming("what about monorepos"))
    assert [r[7] for r in store.questions(0)] == ["what about monorepos"] and store.votes(0) == []


def test_one_vote_per_person_per_answer_changeable_and_never_in_clear(mini_kb, store, store_db):
    bot = bot_with(mini_kb, store)
    asked = bot.handle(Incoming("is serverless cheaper?")).asked_id
    says = [bot.handle(Incoming(f"{v} {asked}", is_command=True, platform="slack", user_id=u)).text
            for v, u in (("bad", "U0SECRETUSER"), ("bad", "U0SECRETUSER"), ("good", "U0SECRETUSER"), ("bad", "U0OTHER"))]
    assert [s.split(":")[0] for s in says] == ["Thanks", "You rated it that way already.", "Thanks", "Thanks"]
    assert "changed" in says[2]
    (entry,) = bot.report(7).feedback
    assert (entry.entry_id, entry.helpful, entry.not_helpful, entry.questions) == (
        "serverless-cheaper", 1, 1, ("is serverless cheaper?",))
    assert bot.handle(Incoming("good 999999", is_command=True)).title == "That answer is gone"
    store.close()
    assert not store_db.holds("U0SECRETUSER")


def test_the_report_groups_near_duplicates_and_names_the_closest_entries(mini_kb, store):
    bot = bot_with(mini_kb, store)
    long = ("our team keeps arguing about monorepos versus many repositories, half of us think the switch is "
            "overkill and the others say builds get slower every month: what do people actually report?")
    for q in ("monorepo?", "what about monorepos", "Monorepos?", "how do monorepos work", "best pizza oven", long,
              "ai coding tools for pizza ovens", "the tl;dr on pizza ovens for 2025"):
        bot.handle(Incoming(q))
    bot.handle(Incoming("is serverless cheaper?"))
    report = bot.report(7)
    assert report.questions == 9 and report.answered == 1 and abs(report.answer_rate - 1 / 9) < 1e-9
    first, *others = report.unanswered
    assert first.count == 4 and set(first.examples) == {"monorepo?", "what about monorepos", "Monorepos?",
                                                       "how do monorepos work"}
    # a long question that holds the word is a question of its own, not one more "monorepo?"; two that share
    # two words of six are two questions
    assert sorted((u.question, u.count) for u in others) == sorted(
        [("best pizza oven", 1), (long, 1), ("ai coding tools for pizza ovens", 1), ("the tl;dr on pizza ovens for 2025", 1)])
    data = report.to_dict()
    assert {"question", "count", "closest"} <= set(data["unanswered"][0]) and "feedback" in data


def test_a_taught_phrasing_is_answered_and_so_is_a_rewording_and_it_survives_a_reload(mini_kb, store, store_db,
                                                                                     tmp_path):
    import shutil

    folder = tmp_path / "knowledge"
    shutil.copytree(MINI, folder)
    live = LiveBot(bot_with(mini_kb, store))
    reloader = Reloader(live, folder)
    assert not live.handle(Incoming("how do monorepos work")).answered
    other = store_db.open()  # another process on the same store teaches it
    assert Learning(other).teach("kubernetes", "how do monorepos work")
    other.close()
    assert reloader.check() == "reloaded"  # the next reload tick: no restart
    assert live.handle(Incoming("how do monorepos work")).entry_id == "kubernetes"
    assert live.handle(Incoming("monorepos, how do they work?")).entry_id == "kubernetes"
    (folder / "entries.yaml").write_text((folder / "entries.yaml").read_text() + "\n")  # a knowledge edit
    assert reloader.check() == "reloaded"
    assert live.handle(Incoming("how do monorepos work")).entry_id == "kubernetes"  # still taught


def test_a_phrasing_for_an_entry_that_is_gone_is_reported_not_fatal(mini_kb, store):
    Learning(store).teach("no-such-entry", "an old question")
    bot = bot_with(mini_kb, store)
    assert bot.orphans == {"no-such-entry": ("an old question",)}
    assert bot.handle(Incoming("is serverless cheaper?")).answered


def test_a_manager_of_one_workspace_sees_only_that_workspaces_questions(mini_kb, store):
    bot = bot_with(mini_kb, store)
    ask = lambda text, team, **kw: bot.handle(Incoming(text, platform="slack", channel_id=f"C{team}", team=team, **kw))
    voted = ask("is serverless cheaper?", "T1")
    ask("what about monorepos", "T1")
    ask("best pizza oven in town", "T2")
    ask(f"bad {voted.asked_id}", "T1", is_command=True)
    assert [r[7] for r in store.questions(0, team="T2")] == ["best pizza oven in town"]  # recorded with its team
    report = ask("report", "T2", is_command=True, is_manager=lambda: True)
    assert "pizza" in report.text and "monorepos" not in report.text and "not helpful" not in report.text
    report = ask("report", "T1", is_command=True, is_manager=lambda: True)
    assert "monorepos" in report.text and "pizza" not in report.text and "1 not helpful" in report.text
    everything = bot.report(7)  # `trendbot report` on the host: every workspace
    assert everything.questions == 3


def test_teaching_in_chat_is_for_managers_and_checks_the_entry(mini_kb, store):
    bot = bot_with(mini_kb, store)
    refused = bot.handle(Incoming("teach kubernetes what about monorepos", is_command=True))
    assert "Not allowed" in refused.title
    boss = {"is_command": True, "is_manager": lambda: True}
    assert bot.handle(Incoming("teach no-such-entry what about monorepos", **boss)).title == "Unknown entry"
    assert bot.handle(Incoming("teach kubernetes", **boss)).title == "What should it learn?"
    taught = bot.handle(Incoming("teach kubernetes what about [monorepos](https://evil.example)", **boss))
    assert taught.title == "Taught" and "\\[monorepos\\]" in taught.text  # echoed as plain text
    assert bot.handle(Incoming("teach kubernetes what about [monorepos](https://evil.example)", **boss)).title == "Known already"
    decline = bot.handle(Incoming("what about gitlab runners", is_manager=lambda: True))
    assert decline.teach == "what about gitlab runners"
    assert bot.handle(Incoming("what about gitlab runners")).teach == ""  # not a manager: no Teach


@pytest.mark.slow
def test_the_whole_loop_from_the_command_line_without_a_restart(store_db):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRENDBOT_")}
    env |= {"PYTHONPATH": str(ROOT), "TRENDBOT_DB": store_db.target}

    def trendbot(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "trendbot", "--knowledge", str(MINI), *args], input=stdin,
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)

    asked = trendbot("ask", "--json", "-", stdin="monorepos for our containers?\ncontainers in monorepos?\n")
    assert [json.loads(line)["answered"] for line in asked.stdout.splitlines()] == [False, False]
    report = json.loads(trendbot("report", "--json").stdout)
    (group,) = report["unanswered"]
    assert group["count"] == 2 and group["question"] in ("monorepos for our containers?", "containers in monorepos?")
    assert group["closest"][0]["entry_id"] == "kubernetes"  # what to teach it to, in one step
    taught = trendbot("teach", "kubernetes", "monorepos for our containers?")
    assert taught.returncode == 0 and "Taught" in taught.stdout
    again = trendbot("ask", "--json", "-", stdin="monorepos for our containers?\nour containers and monorepos?\n")
    assert [json.loads(line)["entry_id"] for line in again.stdout.splitlines()] == ["kubernetes", "kubernetes"]
    assert "kubernetes" in trendbot("learned").stdout
    export = trendbot("learned", "export").stdout
    assert "alternates:" not in export and "aliases:\n- monorepos for our containers?" in export  # a trend: aliases
    removed = trendbot("teach", "--remove", "kubernetes", "monorepos for our containers?")
    assert removed.returncode == 0
    assert json.loads(trendbot("ask", "--json", "monorepos for our containers?").stdout)["answered"] is False
    assert store_db.sql("SELECT COUNT(*) FROM learned") == [(0,)]
