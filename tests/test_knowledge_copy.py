"""The shipped knowledge is written in the project's own words: no text repeats a run of
RUN or more consecutive words from any of the articles it comes from.

The articles are read from ../shared/seeds next to the repository; a clean clone without
that folder uses the copies in tests/fixtures/seeds.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

RUN = 10  # consecutive words shared with an article that count as copying
HERE = Path(__file__).resolve().parent
SHARED_SEEDS = HERE.parent.parent / "shared" / "seeds"  # /work/main/tests -> /work/shared/seeds
FIXTURE_SEEDS = HERE / "fixtures" / "seeds"
WORD = re.compile(r"[a-z0-9%$]+")


def seeds_folder() -> Path:
    for folder in (SHARED_SEEDS, FIXTURE_SEEDS):
        if folder.is_dir() and any(folder.glob("*.txt")):
            return folder
    pytest.fail(f"no seed articles in {SHARED_SEEDS} or {FIXTURE_SEEDS}")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def runs(tokens: list[str], n: int = RUN):
    for i in range(len(tokens) - n + 1):
        yield tuple(tokens[i : i + n])


def knowledge_texts(kb) -> list[tuple[str, str]]:
    """(where, text) for every text users read or ask with: answers, summaries, points, tips,
    questions and alternates."""
    out = []
    for t in kb.trends.values():
        out.append((f"{t.file}: {t.id}.summary", t.summary))
        out += [(f"{t.file}: {t.id}.points[{i}]", p) for i, p in enumerate(t.points)]
    for q in kb.faqs.values():
        out.append((f"{q.file}: {q.id}.question", q.question))
        out += [(f"{q.file}: {q.id}.alternates[{i}]", a) for i, a in enumerate(q.alternates)]
        out.append((f"{q.file}: {q.id}.answer", q.answer))
    for tip in kb.tips.values():
        out.append((f"{tip.file}: {tip.id}.text", tip.text))
    return out


@pytest.fixture(scope="module")
def article_runs() -> dict[tuple[str, ...], str]:
    """Every run of RUN consecutive words in the articles, mapped to the article it is from."""
    found: dict[tuple[str, ...], str] = {}
    for path in sorted(seeds_folder().glob("*.txt")):
        for run in runs(words(path.read_text(encoding="utf-8"))):
            found.setdefault(run, path.name)
    return found


def copied(text: str, article_runs: dict[tuple[str, ...], str]) -> list[str]:
    """The longest shared stretches of text, each as 'article: "words ..."'."""
    tokens = words(text)
    hits = [i for i, run in enumerate(runs(tokens)) if run in article_runs]
    stretches, start, end = [], None, None
    for i in hits:
        if start is not None and i <= end:
            end = i + RUN
            continue
        if start is not None:
            stretches.append((start, end))
        start, end = i, i + RUN
    if start is not None:
        stretches.append((start, end))
    return [f'{article_runs[tuple(tokens[s:s + RUN])]}: "{" ".join(tokens[s:e])}"' for s, e in stretches]


def test_the_articles_are_there():
    assert len(list(seeds_folder().glob("*.txt"))) == 5


def test_the_fixture_copy_matches_the_shared_articles():
    if not SHARED_SEEDS.is_dir():
        pytest.skip("no ../shared/seeds next to this clone; the fixture copy is all there is")
    shared = {p.name: p.read_bytes() for p in SHARED_SEEDS.glob("*.txt")}
    fixture = {p.name: p.read_bytes() for p in FIXTURE_SEEDS.glob("*.txt")}
    assert fixture == shared, "tests/fixtures/seeds is out of date: copy ../shared/seeds/*.txt there"


def test_the_check_catches_a_copied_sentence(article_runs):
    sentence = "teams using DevOps deploy code 200 times more frequently and fix problems 80% faster"
    assert copied(sentence, article_runs)
    assert not copied("DevOps teams ship 200 times as often and recover 80% faster.", article_runs)


def test_no_text_copies_a_run_of_words_from_an_article(shipped_kb, article_runs):
    problems = []
    for where, text in knowledge_texts(shipped_kb):
        problems += [f"{where}: {hit}" for hit in copied(text, article_runs)]
    assert not problems, f"{len(problems)} text(s) share {RUN}+ consecutive words with an article:\n" + "\n".join(problems)
