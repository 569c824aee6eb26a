"""Knowledge reload: a changed folder is loaded whole; a broken edit is rejected and the old knowledge keeps answering."""
from __future__ import annotations

import logging
import os
import shutil
import threading

import pytest

from bot import knowledge
from bot.core import Incoming, TrendBot
from bot.live import LiveBot, Reloader, fingerprint
from bot.sqlite_store import SQLiteStore as Store
from tests.conftest import MINI

NEW_FAQ = """
  - id: wasm-edge
    question: What is WebAssembly at the edge?
    alternates: [wasm on edge servers, webassembly edge runtime, run wasm at the edge]
    answer: Small sandboxed modules that start in microseconds close to users.
    trend: serverless
    sources: [src-a]
"""


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "knowledge"
    shutil.copytree(MINI, path)
    return path


@pytest.fixture
def live(folder, tmp_path):
    bot = TrendBot(knowledge.load(folder))
    bot.enable_tips(Store(tmp_path / "t.db"))
    return LiveBot(bot)


def edit(path, text: str) -> None:
    """Write and move the modification time on, as an editor saving twice within a tick would not."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 10**9, before + 10**9))


def add_faq(folder) -> None:
    entries = folder / "entries.yaml"
    edit(entries, entries.read_text().replace("\ntips:", NEW_FAQ.rstrip() + "\ntips:"))


def test_unchanged_files_are_not_reloaded(live, folder):
    reloader = Reloader(live, folder)
    first = live.current
    assert reloader.check() == "unchanged" and live.current is first


def test_a_good_edit_is_answered_from_at_once(live, folder, caplog):
    reloader = Reloader(live, folder)
    assert not live.handle(Incoming("webassembly edge runtime")).answered
    before = reloader.loaded.version
    add_faq(folder)
    caplog.set_level(logging.INFO)
    assert reloader.check() == "reloaded"
    assert live.handle(Incoming("webassembly edge runtime")).entry_id == "wasm-edge"
    assert reloader.loaded.version != before and reloader.loaded.counts["faqs"] == 2
    assert live.tips.kb is live.kb  # the daily tips draw from the new knowledge too
    assert any(getattr(r, "event", None) == "knowledge_reloaded" for r in caplog.records)


def test_a_broken_edit_is_rejected_and_the_old_knowledge_keeps_answering(live, folder, caplog):
    reloader = Reloader(live, folder)
    good = live.current
    entries = folder / "entries.yaml"
    edit(entries, entries.read_text().replace("trend: serverless\n", "trend: no-such-trend\n", 1))
    assert reloader.check() == "rejected"
    assert live.current is good
    assert live.handle(Incoming("is serverless cheaper?")).entry_id == "serverless-cheaper"
    assert any("no-such-trend" in p for p in reloader.rejected)
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "knowledge_rejected"]
    assert record.levelno == logging.ERROR and "no-such-trend" in record.getMessage()
    assert reloader.check() == "unchanged"  # the same broken version is not retried on every poll

    edit(entries, entries.read_text() + "::: not yaml [")  # still broken, differently
    assert reloader.check() == "rejected" and live.current is good

    shutil.copy(MINI / "entries.yaml", entries)  # mended
    add_faq(folder)
    assert reloader.check() == "reloaded" and not reloader.rejected
    assert live.handle(Incoming("webassembly edge runtime")).entry_id == "wasm-edge"


def test_a_deleted_folder_keeps_the_old_knowledge(live, folder):
    reloader = Reloader(live, folder)
    good = live.current
    shutil.rmtree(folder)
    assert reloader.check() == "rejected" and live.current is good
    assert live.handle(Incoming("k8s")).answered


def test_forced_reload_reads_even_unchanged_files(live, folder):
    reloader = Reloader(live, folder)
    first = live.current
    assert reloader.check(force=True) == "reloaded" and live.current is not first


def test_questions_answered_during_a_reload_use_one_whole_version(live, folder):
    """Many questions while the knowledge is swapped back and forth: each reply comes whole from one version."""
    reloader = Reloader(live, folder)
    stop = threading.Event()
    bad: list[str] = []

    def ask() -> None:
        while not stop.is_set():
            reply = live.handle(Incoming("is serverless cheaper?"))
            if reply.entry_id != "serverless-cheaper":
                bad.append(reply.title)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(10):
            add_faq(folder) if "wasm-edge" not in (folder / "entries.yaml").read_text() else \
                edit(folder / "entries.yaml", (MINI / "entries.yaml").read_text())
            assert reloader.check() == "reloaded"
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not bad


def test_fingerprint_changes_with_any_yaml_file(folder):
    first = fingerprint(folder)
    edit(folder / "extra.yaml", "aliases:\n  wasm: webassembly\n")
    assert fingerprint(folder) != first


def test_a_hostile_edit_is_rejected_fast_with_every_reason_and_the_old_knowledge_answers(live, folder):
    from tests.test_knowledge_loader import alias_bomb

    reloader = Reloader(live, folder, max_bytes=100_000)
    first = live.current
    edit(folder / "bomb.yaml", alias_bomb())
    edit(folder / "huge.yaml", "tips: []\n# " + "x" * 200_000 + "\n")
    import time

    began = time.perf_counter()
    assert reloader.check() == "rejected"
    assert time.perf_counter() - began < 1.0
    assert live.current is first and live.handle(Incoming("is serverless cheaper?")).entry_id == "serverless-cheaper"
    assert [p.split(":")[0] for p in reloader.rejected] == ["bomb.yaml", "huge.yaml"]
    (folder / "bomb.yaml").unlink()
    (folder / "huge.yaml").unlink()
    edit(folder / "empty.yaml", "")
    assert reloader.check() == "reloaded" and reloader.rejected == []
    assert reloader.loaded.warnings == ("empty.yaml: the file is empty, so it adds nothing",)
