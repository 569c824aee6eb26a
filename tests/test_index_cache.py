"""The built index on disk: loaded when its version matches, fitted again when anything that shapes
it changed, never trusted when damaged or foreign; a warm start imports neither scikit-learn nor scipy."""
from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot import fitting, index_cache, knowledge
from bot.analysis import Analyzer
from bot.core import Incoming, TrendBot, documents
from bot.index_cache import IndexCache
from bot.live import LiveBot, Reloader
from bot.postings import IndexData
from tests.conftest import MINI

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["is serverless cheaper?", "kubernets vs docker", "salary of a junior backend dev", "what is gitops",
             "best pizza in town"]


@pytest.fixture
def fits(monkeypatch):
    """Counts the fits the cache asks for."""
    calls = []
    real = fitting.fit

    def counted(docs, analyzer):
        calls.append(len(docs))
        return real(docs, analyzer)

    monkeypatch.setattr(fitting, "fit", counted)
    return calls


def index_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("index-*.npz"))


def answers(bot: TrendBot) -> list[tuple]:
    out = []
    for q in QUESTIONS:
        r = bot.index.search(q)
        out.append((tuple(r.hits), r.words, r.terms, bot.handle(Incoming(q)).to_dict()))
    return out


def test_a_second_start_loads_the_index_instead_of_fitting(mini_kb, tmp_path, fits):
    first = TrendBot(mini_kb, cache=IndexCache(tmp_path))
    assert len(fits) == 1 and len(index_files(tmp_path)) == 1
    second = TrendBot(mini_kb, cache=IndexCache(tmp_path))
    assert len(fits) == 1
    assert answers(second) == answers(first) == answers(TrendBot(mini_kb))


def test_a_changed_knowledge_file_a_taught_phrasing_or_format_fits_again(mini_kb, tmp_path, fits, monkeypatch):
    cache = IndexCache(tmp_path)
    TrendBot(mini_kb, cache=cache)
    folder = tmp_path / "knowledge"
    shutil.copytree(MINI, folder)
    entries = folder / "entries.yaml"
    text = entries.read_text(encoding="utf-8")
    entries.write_text(text.replace("you pay only while code runs", "you pay only while your code runs", 1), encoding="utf-8")
    edited = knowledge.load(folder)
    TrendBot(edited, cache=cache)
    assert len(fits) == 2
    faq = next(iter(mini_kb.faqs))
    taught = TrendBot(mini_kb, cache=cache, learned={faq: ("how much are the lambdas",)})
    assert len(fits) == 3 and taught.index.column("lambda") is not None
    monkeypatch.setattr(index_cache, "FORMAT", index_cache.FORMAT + 1)
    TrendBot(mini_kb, cache=cache)
    assert len(fits) == 4 and len(index_files(tmp_path)) == 4
    monkeypatch.setattr(index_cache, "FORMAT", index_cache.FORMAT - 1)
    TrendBot(edited, cache=cache)  # every version stays until KEEP newer ones push it out
    assert len(fits) == 4


def test_the_key_covers_aliases_and_library_versions(mini_kb, monkeypatch):
    docs = documents(mini_kb)
    key = index_cache.version(docs, Analyzer(mini_kb.aliases))
    assert index_cache.version(docs, Analyzer({**mini_kb.aliases, "lambdas": "serverless"})) != key
    assert "sklearn 1." in index_cache.libraries() and "snowballstemmer " in index_cache.libraries()
    monkeypatch.setattr(index_cache, "libraries", lambda: "sklearn 0.1")
    assert index_cache.version(docs, Analyzer(mini_kb.aliases)) != key


def _path(kb: knowledge.Knowledge, folder: Path) -> Path:
    return folder / f"index-{index_cache.version(documents(kb), Analyzer(kb.aliases))}.npz"


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flipped(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_bytes(b"not an index at all" * 100)


def _rewritten(path: Path, change) -> None:
    """The file written again with `change(parts, meta)` applied to its arrays and its JSON metadata."""
    with np.load(path, allow_pickle=False) as z:
        parts = {name: z[name] for name in z.files}
    meta = json.loads(bytes(parts["meta"]).decode())
    change(parts, meta)
    parts["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as out:
        np.savez(out, **parts)


def _out_of_bounds(path: Path) -> None:
    """A well-formed file of the right version whose postings point past the last entry."""
    def change(parts, meta):
        rows = parts["entries.rows"].copy()
        rows[-1] = np.iinfo(rows.dtype).max
        parts["entries.rows"] = rows
    _rewritten(path, change)


def _lowered_bound(path: Path) -> None:
    """A file whose per-term maxima understate the postings: a search would skip entries it must score."""
    _rewritten(path, lambda parts, meta: parts.update(doc_max=parts["doc_max"] * np.float32(0.5)))


def _wrong_key(path: Path) -> None:
    """Another knowledge version's file under this version's name (a foreign file)."""
    _rewritten(path, lambda parts, meta: meta.update(key="0" * 32))


def _strings_for_arrays(path: Path) -> None:
    """A file of the right version that names an array part among its strings."""
    _rewritten(path, lambda parts, meta: meta["strings"].update(presence_levels=["x"]))


class _Marker:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("damage", [_truncated, _flipped, _garbage, _out_of_bounds, _lowered_bound, _wrong_key,
                                    _strings_for_arrays])
def test_a_damaged_or_foreign_file_is_ignored_fitted_again_and_overwritten(mini_kb, tmp_path, fits, damage, caplog):
    TrendBot(mini_kb, cache=IndexCache(tmp_path))
    path = _path(mini_kb, tmp_path)
    damage(path)
    with caplog.at_level(logging.INFO, logger="bot.index_cache"):
        bot = TrendBot(mini_kb, cache=IndexCache(tmp_path))
    assert len(fits) == 2
    assert answers(bot) == answers(TrendBot(mini_kb))
    assert index_cache.load(path, path.stem.removeprefix("index-")) is not None  # written over with a good one
    assert damage is _wrong_key or "ignoring the cached index" in caplog.text


def test_a_pickle_in_the_cache_folder_runs_no_code(mini_kb, tmp_path, fits):
    path = _path(mini_kb, tmp_path)
    marker = tmp_path / "ran"
    tmp_path.mkdir(exist_ok=True)
    path.write_bytes(pickle.dumps(_Marker(str(marker))))
    with open(tmp_path / "as-npy", "wb") as out:  # and an object array saved the way numpy allows
        np.save(out, np.array([_Marker(str(marker))], dtype=object), allow_pickle=True)
    shutil.copy(tmp_path / "as-npy", path.with_name(path.name + ".npy"))
    bot = TrendBot(mini_kb, cache=IndexCache(tmp_path))
    assert not marker.exists() and len(fits) == 1
    path.write_bytes((tmp_path / "as-npy").read_bytes())
    TrendBot(mini_kb, cache=IndexCache(tmp_path))
    assert not marker.exists() and len(fits) == 2
    assert answers(bot) == answers(TrendBot(mini_kb))


def test_an_unwritable_cache_folder_still_answers_and_says_so_once(mini_kb, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cache = IndexCache(blocker / "cache")  # a folder under a file can never be made
    with caplog.at_level(logging.DEBUG, logger="bot.index_cache"):
        first = TrendBot(mini_kb, cache=cache)
        TrendBot(mini_kb, cache=cache)
    said = [r for r in caplog.records if "cannot store the built index" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.INFO, logging.DEBUG]
    assert answers(first) == answers(TrendBot(mini_kb))
    assert first.handle(Incoming("is serverless cheaper?")).answered


def test_old_versions_are_pruned_to_the_most_recently_used(tmp_path):
    for i in range(index_cache.KEEP + 2):
        (tmp_path / f"index-{i}.npz").write_bytes(b"")
        os.utime(tmp_path / f"index-{i}.npz", (1000 + i, 1000 + i))
    (tmp_path / ".index-x.npz.1.2.tmp").write_bytes(b"")
    os.utime(tmp_path / ".index-x.npz.1.2.tmp", (1000, 1000))
    index_cache._prune(tmp_path, index_cache.KEEP)
    assert [p.name for p in index_files(tmp_path)] == [f"index-{i}.npz" for i in range(2, index_cache.KEEP + 2)]
    assert not (tmp_path / ".index-x.npz.1.2.tmp").exists()


def test_a_reload_builds_the_new_version_beside_the_old_through_the_cache(tmp_path, fits):
    folder = tmp_path / "knowledge"
    shutil.copytree(MINI, folder)
    cache = IndexCache(tmp_path / "cache")
    live = LiveBot(TrendBot(knowledge.load(folder), cache=cache))
    reloader = Reloader(live, folder)
    old = live.current
    entries = folder / "entries.yaml"
    before = entries.stat().st_mtime_ns
    entries.write_text(entries.read_text(encoding="utf-8").replace("you pay only while code runs", "you pay only while your code runs", 1), encoding="utf-8")
    os.utime(entries, ns=(before + 10**9, before + 10**9))
    assert reloader.check() == "reloaded"
    assert live.current is not old and live.current.cache is cache and old.index is not live.current.index
    assert live.current.answers.surface._idf is not None  # counted by the reload, not by the next question
    assert len(fits) == 2 and len(index_files(tmp_path / "cache")) == 2


def test_both_ways_of_scoring_give_the_same_results(shipped_bot):
    """Reading every posting at once and opening terms one by one must agree bit for bit."""
    from bot.evaluation import load_part

    index = shipped_bot.index
    for case in load_part("held-out")[:150]:
        cols, q = index.vector(index.read(case.question)[0])
        if not len(cols):
            continue
        gathered = index.scores(cols, q, 5)
        opened = index.scores(cols, q, 5, gather_limit=0)
        top = lambda s: sorted(zip(s[0], s[1].tolist(), s[2].tolist(), s[3].tolist()),
                               key=lambda t: -(0.25 * t[1] + 0.35 * t[2] + 0.4 * t[3]))[:5]
        assert top(opened) == top(gathered), case.question


def test_holding_agrees_with_a_lookup_per_entry_and_term(shipped_bot):
    index = shipped_bot.index
    results = index.search("is kubernetes overkill for a small team, or is plain docker enough in 2025")
    entries = [h.entry_id for h in results.hits] + ["ci-cd"]
    columns = [c for c, _ in results.terms] + [index.column("salari")]
    found = index.holding(entries, columns)
    assert found == [{c for c in columns if index.has(e, c)} for e in entries]
    assert any(found) and not all(len(f) == len(set(columns)) for f in found)
    assert index.holding([], columns) == [] and index.holding(entries, []) == [set()] * len(entries)


def test_a_term_used_by_few_entries_answers_from_its_kept_set_as_the_postings_do(shipped_bot, monkeypatch):
    from bot import retrieval

    index = shipped_bot.index
    entries = index.ids[::7]
    columns = list(range(0, len(index.vocabulary), 3))
    by_sets = index.holding(entries, columns), [[index.has(e, c) for c in columns] for e in entries]
    assert index._held and any(by_sets[0]) and not all(all(row) for row in by_sets[1])
    monkeypatch.setattr(retrieval, "HELD_ROWS", -1)  # every term looked up in its postings instead
    assert (index.holding(entries, columns), [[index.has(e, c) for c in columns] for e in entries]) == by_sets


def test_bigrams_found_through_the_dict_are_those_of_the_sorted_keys(shipped_bot, monkeypatch):
    from bot import retrieval

    vocabulary = shipped_bot.index.vocabulary
    stems = [t for t in vocabulary if " " not in t][:300]
    known = [t for t in vocabulary if " " in t][:300]
    asked = [w for t in known for w in t.split()] + stems + ["nosuchword", stems[0]]
    by_dict, known_by_dict = vocabulary.terms(asked), [vocabulary.get(t) for t in known]
    assert vocabulary._bigram_dict and None not in known_by_dict
    assert sum(c is not None for c in by_dict[len(asked):]) >= 150  # the pairs that are bigrams were found
    monkeypatch.setattr(retrieval, "BIGRAMS_AS_DICT", -1)  # the sorted keys only
    assert vocabulary.terms(asked) == by_dict and [vocabulary.get(t) for t in known] == known_by_dict


def test_summing_over_every_row_or_over_the_rows_found_gives_the_same_bits(shipped_bot, monkeypatch):
    from bot import retrieval
    from bot.evaluation import load_part

    questions = [c.question for c in load_part("held-out")][:120]
    dense = [shipped_bot.index.search(q) for q in questions]
    monkeypatch.setattr(retrieval, "DENSE_ROWS", -1)  # as in an index of more than DENSE_ROWS entries
    assert [shipped_bot.index.search(q) for q in questions] == dense
    assert sum(len(r.hits) for r in dense) > 300


def test_the_kept_sets_are_bounded(shipped_bot, monkeypatch):
    from bot import retrieval

    index = shipped_bot.index
    monkeypatch.setattr(retrieval, "HELD_KEPT", 10)
    monkeypatch.setattr(index, "_held", {})
    for column in range(50):
        index.has(index.ids[0], column)
        assert len(index._held) <= 10


def test_the_arrays_round_trip_through_a_file(mini_kb, tmp_path):
    data = fitting.fit(documents(mini_kb), Analyzer(mini_kb.aliases))
    index_cache.save(tmp_path / "index-k.npz", "k", data)
    loaded = index_cache.load(tmp_path / "index-k.npz", "k")
    assert isinstance(loaded, IndexData) and loaded.strings() == data.strings()
    assert all(np.array_equal(a, loaded.arrays()[n]) and a.dtype == loaded.arrays()[n].dtype
               for n, a in data.arrays().items())
    assert index_cache.load(tmp_path / "index-k.npz", "other") is None


@pytest.mark.slow
def test_a_warm_start_imports_neither_scikit_learn_nor_scipy(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("TRENDBOT_CACHE_DIR", None)
    probe = ("import sys\nfrom trendbot import cli\n"
             "cli.main(['ask', sys.argv[1]])\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))\n")
    cold = subprocess.run([sys.executable, "-c", probe, "is serverless cheaper?"], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert cold.returncode == 0, cold.stderr
    assert cold.stdout.rstrip().endswith("['scipy', 'sklearn']")  # the first start fits, and stores it
    assert len(list((tmp_path / "trendbot").glob("index-*.npz"))) == 1
    for question in ("is serverless cheaper?", "k8s", "kubernets vs docker swarm for a small team"):
        warm = subprocess.run([sys.executable, "-X", "importtime", "-c", probe, question], env=env,
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert warm.returncode == 0, warm.stderr
        assert warm.stdout.rstrip().endswith("[]"), warm.stdout
        imported = [line.split("|")[-1].strip() for line in warm.stderr.splitlines() if line.startswith("import time:")]
        assert imported and not [m for m in imported if m.split(".")[0] in ("sklearn", "scipy")]
        if question == "is serverless cheaper?":  # the same answer as the start that fitted
            assert warm.stdout.rsplit("\n", 2)[0] == cold.stdout.rsplit("\n", 2)[0]


def test_the_fitting_sorts_agree_with_numpys():
    rng = np.random.default_rng(7)
    cases = [rng.integers(0, 50, 2000), rng.integers(0, 2**40, 3000), rng.integers(-5, 5, 100),
             rng.integers(2**60, 2**62, 50), np.zeros(0, dtype=np.int64), rng.integers(0, 3, 10).astype(np.uint16),
             rng.choice(np.float32([0.2, 0.5, 1.0]), 500)]
    for values in cases:
        assert np.array_equal(fitting._stable_order(values), np.argsort(values, kind="stable")), values.dtype
        assert np.array_equal(fitting._distinct(values), np.unique(values))
        if values.dtype.kind == "f" and len(values):
            levels = fitting._distinct(values)
            for chunk in (1, 7, 1 << 20):
                codes = fitting._codes(values, levels, chunk=chunk)
                assert codes.dtype == np.uint8 and np.array_equal(levels[codes], values)
        found, first, inverse, counts = fitting._unique(values)
        expected = np.unique(values, return_index=True, return_inverse=True, return_counts=True)
        for mine, theirs in zip((found, first, inverse, counts), expected):
            assert np.array_equal(mine, theirs.ravel())
