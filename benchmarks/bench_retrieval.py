"""Speed and memory of the answer path: index build, per-question latency, peak memory, cold start.

Prints figures (medians of several runs); it passes or fails nothing. Run from the repository:

    python benchmarks/bench_retrieval.py            # shipped knowledge + generated 100,000 entries
    python benchmarks/bench_retrieval.py --quick     # shipped knowledge only

Targets: shipped p50 <= 0.5 ms, p99 <= 2 ms; 100k: build <= 30 s, p99 <= 20 ms;
`trendbot ask` cold start <= 1.5 s.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import string
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot import knowledge  # noqa: E402
from bot.core import Incoming, TrendBot  # noqa: E402
from bot.evaluation import load_cases  # noqa: E402
from bot.knowledge import Faq, Knowledge, Source, Trend  # noqa: E402

RUNS = 5


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def timed_build(kb: Knowledge) -> tuple[float, TrendBot]:
    """Seconds to build a TrendBot (analyser + TF-IDF index)."""
    gc.collect()
    t0 = time.perf_counter()
    bot = TrendBot(kb, rng=random.Random(0))
    return time.perf_counter() - t0, bot


def traced_peak(kb: Knowledge) -> float:
    """Peak MiB allocated while building, traced in a separate build (tracing slows it down)."""
    gc.collect()
    tracemalloc.start()
    TrendBot(kb, rng=random.Random(0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def latencies(bot: TrendBot, questions: list[str]) -> tuple[float, float]:
    """(p50, p99) in ms of bot.handle over the questions, medians over RUNS runs."""
    for q in questions[:20]:
        bot.handle(Incoming(q))  # warm caches
    p50s, p99s = [], []
    for _ in range(RUNS):
        times = []
        for q in questions:
            t0 = time.perf_counter()
            bot.handle(Incoming(q))
            times.append((time.perf_counter() - t0) * 1000)
        p50s.append(percentile(times, 50))
        p99s.append(percentile(times, 99))
    return statistics.median(p50s), statistics.median(p99s)


def report(name: str, kb: Knowledge, questions: list[str], builds: int) -> None:
    times, bot = [], None
    for _ in range(builds):
        bot = None
        elapsed, bot = timed_build(kb)
        times.append(elapsed)
    p50, p99 = latencies(bot, questions)
    print(f"{name}: {len(bot.index):,} entries, {len(bot.index.vocabulary):,} terms")
    print(f"  index build      median {statistics.median(times):8.3f} s   ({builds} builds)")
    bot = None
    peak = traced_peak(kb)
    print(f"  peak memory      {peak:8.1f} MiB traced during a build; process max RSS {max_rss_mib():.0f} MiB")
    print(f"  question latency p50 {p50:.3f} ms   p99 {p99:.3f} ms   ({len(questions)} questions x {RUNS} runs, medians)")


def max_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def shipped_questions(kb: Knowledge) -> list[str]:
    path = ROOT / "tests" / "eval" / "questions.yaml"
    if path.exists():
        return [c.question for c in load_cases(path)]
    return [q.question for q in kb.faqs.values()] + [t.title for t in kb.trends.values()]


def generated(n: int, seed: int = 42) -> tuple[Knowledge, list[str]]:
    """A synthetic knowledge base of n entries (2% trends, the rest FAQs) and questions about it."""
    rng = random.Random(seed)
    vocab = sorted({"".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10))) for _ in range(30000)})
    cum, total = [], 0.0
    for i in range(len(vocab)):  # Zipf-like word frequencies
        total += 1 / (i + 1)
        cum.append(total)

    def sentence(k: int) -> str:
        return " ".join(rng.choices(vocab, cum_weights=cum, k=k))

    src = Source("gen", "Generated", "Generated", "bench", "", "2025-01-01")
    n_trends = max(1, n // 50)
    trends = {f"t{i}": Trend(f"t{i}", sentence(3), (sentence(1),), sentence(25), (sentence(12), sentence(12)),
                             (sentence(2),), (), ("gen",), "gen.yaml") for i in range(n_trends)}
    faqs = {}
    for i in range(n - n_trends):
        faqs[f"f{i}"] = Faq(f"f{i}", sentence(8), tuple(sentence(5) for _ in range(4)), sentence(45),
                            f"t{i % n_trends}", ("gen",), "gen.yaml")
    kb = Knowledge({"gen": src}, trends, faqs, {}, {}, "generated")

    questions = []
    for f in rng.sample(list(faqs.values()), 500):
        words = rng.choice(f.alternates).split()
        if rng.random() < 0.3:  # a typo: drop one letter of one word
            i = rng.randrange(len(words))
            w = words[i]
            j = rng.randrange(len(w))
            words[i] = w[:j] + w[j + 1:]
        questions.append(" ".join(words))
    return kb, questions


def cold_start() -> float:
    """Median seconds from process start to a printed answer for `trendbot ask`."""
    times = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "trendbot", "ask", "is serverless cheaper?"],
                       check=True, capture_output=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shipped knowledge only")
    parser.add_argument("--entries", type=int, default=100_000, help="size of the generated knowledge base")
    args = parser.parse_args()

    kb = knowledge.load()
    print(f"cold start: `trendbot ask` median {cold_start():.2f} s over {RUNS} runs")
    report("shipped knowledge", kb, shipped_questions(kb), builds=RUNS)
    if not args.quick:
        t0 = time.perf_counter()
        big, questions = generated(args.entries)
        print(f"(generated {args.entries:,} entries in {time.perf_counter() - t0:.1f} s)")
        report("generated knowledge", big, questions, builds=3)


if __name__ == "__main__":
    main()
