"""Speed and memory of the answer path, trendbot beside bm25s and bare scikit-learn TF-IDF, in one run.

Prints figures and ratios (medians of several runs); it passes or fails nothing. From the
repository, with the benchmark extra installed (`pip install -e '.[bench]'`):

    python benchmarks/bench_retrieval.py                        # shipped, 10k, 100k and 1M entries
    python benchmarks/bench_retrieval.py --sizes 10000,100000   # skip the million
    python benchmarks/bench_retrieval.py --sizes 0 --runs 3     # shipped knowledge and the start only

Each (library, corpus) run is a process of its own, so its peak RSS is its own: it loads the
corpus, builds the index (timed), measures what the index holds (RSS growth after the build,
freed memory given back), answers the questions (p50 and p99 of one search each, top 5), and
reports its peak RSS (corpus included: the `corpus` column is the process before the build).
On the shipped knowledge, trendbot's whole answer path (search, confidence model, two-part split,
short reply) is timed too, over the evaluation questions: its p99 is to stay within 2 ms.
The three libraries read the same generated texts: trendbot its fields, bm25s and scikit-learn
(TfidfVectorizer, unigrams, sublinear TF) one text per entry, all fields joined.

The start: `trendbot ask "k8s"` with no cache (a fresh cache folder: the index is fitted) and with
the cache filled, each paired run for run against benchmarks/bare_sklearn.py (imports scikit-learn,
fits the same shipped texts, answers once): the ratio is taken pair by pair, then the median.

Targets (this machine, as ratios in one run): start with a warm cache <= 0.4x the bare script;
shipped p50 <= 0.1 ms; 100k: p50 below bm25s's, index memory at most bm25s's, build <= 5 s;
1M: p99 <= 20 ms and peak RSS <= 6 GB.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import random
import resource
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENGINES = ("trendbot", "bm25s", "sklearn")
SIZES = (0, 10_000, 100_000, 1_000_000)  # 0: the shipped knowledge
QUESTIONS = 500
PASSES = 3  # each question is asked this many times; p50 and p99 are medians over the passes


# -- the corpus ---------------------------------------------------------------------------------


def generate(n: int, seed: int = 42) -> dict:
    """A synthetic knowledge base of n entries (2% trends, the rest FAQs) over 30,000 made-up words with
    Zipf frequencies, and questions about it: an alternate phrasing of a FAQ, a third with a typo."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list(string.ascii_lowercase))
    vocab: set[str] = set()
    while len(vocab) < 30_000:
        lengths = rng.integers(4, 11, size=40_000)
        chars = letters[rng.integers(0, 26, size=(40_000, 10))]
        vocab.update("".join(row[:k]) for row, k in zip(chars.tolist(), lengths.tolist()))
    words = np.array(sorted(vocab)[:30_000])
    cumulative = np.cumsum(1.0 / np.arange(1, len(words) + 1))
    cumulative /= cumulative[-1]

    def sentences(count: int, length: int) -> list[str]:
        picks = words[np.minimum(np.searchsorted(cumulative, rng.random((count, length))), len(words) - 1)]
        return [" ".join(row) for row in picks.tolist()]

    n_trends = max(1, n // 50)
    n_faqs = n - n_trends
    titles = sentences(n_trends, 3)
    trends = [[t, a, s, p1, p2, tool] for t, a, s, p1, p2, tool in zip(
        titles, sentences(n_trends, 1), sentences(n_trends, 25), sentences(n_trends, 12), sentences(n_trends, 12),
        sentences(n_trends, 2))]
    alternates = sentences(n_faqs * 4, 5)
    faqs = [[q, alternates[4 * i:4 * i + 4], a, i % n_trends]
            for i, (q, a) in enumerate(zip(sentences(n_faqs, 8), sentences(n_faqs, 45)))]
    pick = random.Random(seed)
    questions = []
    for i in pick.sample(range(n_faqs), min(QUESTIONS, n_faqs)):
        typed = pick.choice(faqs[i][1]).split()
        if pick.random() < 0.3:  # a typo: one letter of one word dropped
            w = pick.randrange(len(typed))
            at = pick.randrange(len(typed[w]))
            typed[w] = typed[w][:at] + typed[w][at + 1:]
        questions.append(" ".join(typed))
    return {"trends": trends, "faqs": faqs, "questions": questions}


def knowledge_of(corpus: dict):
    """The corpus as trendbot's Knowledge."""
    from bot.knowledge import Faq, Knowledge, Source, Trend

    src = Source("gen", "Generated", "Generated", "bench", "", "2025-01-01")
    trends = {f"t{i}": Trend(f"t{i}", t, (a,), s, (p1, p2), (tool,), (), ("gen",), "gen.yaml")
              for i, (t, a, s, p1, p2, tool) in enumerate(corpus["trends"])}
    faqs = {f"f{i}": Faq(f"f{i}", q, tuple(alts), a, f"t{t}", ("gen",), "gen.yaml")
            for i, (q, alts, a, t) in enumerate(corpus["faqs"])}
    return Knowledge({"gen": src}, trends, faqs, {}, {}, "generated")


def shipped() -> tuple:
    """The shipped knowledge and the evaluation questions."""
    from bot import knowledge
    from bot.evaluation import PARTS, load_part

    return knowledge.load(), [c.question for part in PARTS for c in load_part(part)]


def texts_of(kb) -> list[str]:
    """One text per entry, every field joined: what bm25s and bare scikit-learn index."""
    out = [" ".join([t.title, *t.aliases, t.summary, *t.points, *t.tools]) for t in kb.trends.values()]
    for f in kb.faqs.values():
        trend = kb.trends.get(f.trend)
        out.append(" ".join([f.question, *f.alternates, f.answer, trend.title if trend else ""]))
    return out


# -- one measurement, in a process of its own ---------------------------------------------------


def rss_mib() -> float:
    """Resident memory now, after handing freed memory back to the system."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def worker(engine: str, corpus_file: str | None) -> dict:
    """Build one engine's index over the corpus and measure it."""
    if corpus_file:
        corpus = json.loads(Path(corpus_file).read_text(encoding="utf-8"))
        kb, questions = knowledge_of(corpus), corpus["questions"]
        del corpus
    else:
        kb, questions = shipped()
    out: dict = {}
    if engine == "trendbot":
        from bot import fitting, index_cache
        from bot.analysis import Analyzer, english_frequency
        from bot.core import documents

        english_frequency("warm")  # the English word list is the bot's, not the index's
        before = rss_mib()
        t0 = time.perf_counter()
        analyzer = Analyzer(kb.aliases)
        index = fitting.build(documents(kb), analyzer)
        out["build_s"] = time.perf_counter() - t0
        out["index_mib"] = rss_mib() - before
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "index-k.npz"
            index_cache.save(path, "k", index.data)
            kind = type(index)
            del index  # the loaded copy replaces it: never two in memory
            gc.collect()
            t0 = time.perf_counter()
            index = kind(analyzer, index_cache.load(path, "k"))
            out["load_s"] = time.perf_counter() - t0
        search = index.search
    elif engine == "bm25s":
        import bm25s

        texts = texts_of(kb)
        before = rss_mib()
        t0 = time.perf_counter()
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        out["build_s"] = time.perf_counter() - t0
        out["index_mib"] = rss_mib() - before

        def search(q: str):
            k = min(5, len(texts))
            return retriever.retrieve(bm25s.tokenize(q, stopwords="en", show_progress=False), k=k,
                                      show_progress=False, n_threads=1)
    else:
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = texts_of(kb)
        before = rss_mib()
        t0 = time.perf_counter()
        vectorizer = TfidfVectorizer(sublinear_tf=True)
        matrix = vectorizer.fit_transform(texts)
        out["build_s"] = time.perf_counter() - t0
        out["index_mib"] = rss_mib() - before

        def search(q: str):
            scores = (matrix @ vectorizer.transform([q]).T).toarray().ravel()
            top = np.argpartition(-scores, 4)[:5]
            return top[np.argsort(-scores[top])]
    out["corpus_mib"] = before
    for q in questions[:20]:
        search(q)  # warm caches
    out["p50_ms"], out["p99_ms"] = per_question(search, questions)
    if engine == "trendbot" and not corpus_file:
        out["answer_p50_ms"], out["answer_p99_ms"] = whole_answers(kb, questions)
    out["entries"] = len(kb.trends) + len(kb.faqs)
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def whole_answers(kb, questions: list[str]) -> tuple[float, float]:
    """p50 and p99 (ms) of the whole answer path on the shipped knowledge: search, the confidence
    model, the two-part split and the short reply, as `trendbot ask` runs it."""
    from bot.core import TrendBot

    bot = TrendBot(kb)
    for q in questions:
        bot.answer(q)  # warm caches: the surface view, each entry's answer pieces
    return per_question(bot.answer, questions)


def per_question(ask, questions: list[str]) -> tuple[float, float]:
    """p50 and p99 (ms) of one call of `ask` per question: medians over PASSES passes."""
    p50s, p99s = [], []
    for _ in range(PASSES):
        times = []
        for q in questions:
            t0 = time.perf_counter()
            ask(q)
            times.append((time.perf_counter() - t0) * 1000)
        p50s.append(percentile(times, 50))
        p99s.append(percentile(times, 99))
    return statistics.median(p50s), statistics.median(p99s)


def measure(engine: str, corpus_file: str | None, timeout: float) -> dict | None:
    """One measurement in a fresh process; None when it failed (its error is printed)."""
    cmd = [sys.executable, __file__, "--worker", engine] + (["--corpus", corpus_file] if corpus_file else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env(), cwd=ROOT)
    if done.returncode != 0:
        print(f"  ({engine} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode})",
              flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_env() -> dict[str, str]:
    """The environment of measured processes: bytecode written and read, as an installed trendbot has it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    return env


# -- the start ------------------------------------------------------------------------------------


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    proc.wait()
    return time.perf_counter() - t0


def cold_start(runs: int) -> list[tuple[str, float, float, float]]:
    """(label, trendbot median s, bare script median s, median of paired ratios) for no cache and a warm cache."""
    ask = [sys.executable, "-m", "trendbot", "ask", "k8s"]
    bare = [sys.executable, str(ROOT / "benchmarks" / "bare_sklearn.py"), "k8s"]
    env = child_env()
    env.pop("TRENDBOT_CACHE_DIR", None)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        warm = {**env, "XDG_CACHE_HOME": str(Path(scratch) / "warm")}
        timed(ask, warm), timed(bare, env)  # fills the warm cache, writes bytecode, warms the disk cache
        for label in ("no cache", "warm cache"):
            a, b = [], []
            for i in range(runs):
                mine = warm if label == "warm cache" else {**env, "XDG_CACHE_HOME": str(Path(scratch) / f"cold{i}")}
                if i % 2:  # alternate which goes first, so drift and caches favour neither
                    b.append(timed(bare, env))
                    a.append(timed(ask, mine))
                else:
                    a.append(timed(ask, mine))
                    b.append(timed(bare, env))
            ratios = [x / y for x, y in zip(a, b)]
            rows.append((label, statistics.median(a), statistics.median(b), statistics.median(ratios)))
    return rows


# -- the report -----------------------------------------------------------------------------------

COLUMNS = (("build_s", "build s", "{:9.2f}"), ("p50_ms", "p50 ms", "{:9.3f}"), ("p99_ms", "p99 ms", "{:9.3f}"),
           ("index_mib", "index MiB", "{:10.1f}"), ("peak_mib", "peak MiB", "{:9.0f}"))


def report(size: int, results: dict[str, list[dict]]) -> None:
    name = "shipped" if not size else f"{size:,} entries"
    medians = {e: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for e, rs in results.items() if rs}
    if not medians:
        return
    entries = int(next(iter(medians.values()))["entries"])
    print(f"\n{name} ({entries:,} entries; medians of {max(len(r) for r in results.values())} runs)")
    print(f"  {'':12}" + "".join(f"{label:>10}" for _, label, _ in COLUMNS) + f"{'corpus MiB':>12}")
    for engine, m in medians.items():
        extra = f"   (load from cache {m['load_s']:.2f} s)" if "load_s" in m else ""
        print(f"  {engine:12}" + "".join(" " + fmt.format(m[key]) for key, _, fmt in COLUMNS)
              + f"{m['corpus_mib']:12.0f}{extra}")
    mine = medians.get("trendbot")
    if mine and "answer_p50_ms" in mine:
        print(f"  whole answer (trendbot: search, confidence, two-part split, short reply): "
              f"p50 {mine['answer_p50_ms']:.3f} ms, p99 {mine['answer_p99_ms']:.3f} ms")
    for engine, m in medians.items():
        if engine != "trendbot" and mine:
            print(f"  {'÷ ' + engine:12}" + "".join(f"{mine[key] / m[key]:10.2f}" if m[key] else f"{'-':>10}"
                                                   for key, _, _ in COLUMNS))
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="corpus sizes, comma-separated; 0 is "
                        "the shipped knowledge (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (default: %(default)s)")
    parser.add_argument("--start-runs", type=int, default=10, help="paired runs of the start (0: skip it)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="default: %(default)s")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one measurement may take")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.corpus)))
        return

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; trendbot vs bm25s vs scikit-learn TF-IDF")
    if args.start_runs:
        print(f"\nstart: `trendbot ask k8s` vs benchmarks/bare_sklearn.py, medians of {args.start_runs} paired runs")
        for label, a, b, ratio in cold_start(args.start_runs):
            print(f"  {label:12} trendbot {a:6.3f} s   bare scikit-learn {b:6.3f} s   ratio {ratio:5.2f}")
        sys.stdout.flush()
    engines = args.engines.split(",")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as scratch:
            corpus_file = None
            if size:
                t0 = time.perf_counter()
                corpus_file = str(Path(scratch) / "corpus.json")
                Path(corpus_file).write_text(json.dumps(generate(size)), encoding="utf-8")
                print(f"\n(generated {size:,} entries in {time.perf_counter() - t0:.0f} s)", flush=True)
            results: dict[str, list[dict]] = {e: [] for e in engines}
            for _ in range(args.runs):
                for engine in engines:  # interleaved: drift of the machine touches each alike
                    found = measure(engine, corpus_file, args.timeout)
                    if found:
                        results[engine].append(found)
            report(size, results)


if __name__ == "__main__":
    main()
