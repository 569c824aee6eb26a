"""Calibrated confidence: whether to trust a match, from features of it, by a fitted linear model.

One threshold on one score cannot tell "a short question that matches well" from "a backend
question about something the articles never mention". The features below can: how well the entry
matches (three scores), its margin over the runner-up, how much of what the question names the
entry holds (weighted by how specific each word is: "germany", "helm" and "2018" weigh more than
"best" or "actually"), years the question asks about that the entry doesn't have, and how
close the question as typed is to the entry's phrasings (bot/surface.py: "what is" against "is
it worth it", which the index's content words cannot see). A
logistic regression fitted on the tuning part of the evaluation set (`trendbot eval --fit`)
turns them into the probability that the reply is right; the operating point is chosen for
precision. The model is a JSON file of coefficients; answering needs no scikit-learn.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.analysis import english_frequency, stem
from bot.retrieval import Hit, Index, Results

MODEL_FILE = Path(__file__).with_name("confidence.json")
CANDIDATES = 3  # how many of the top hits the model may choose between
FEATURES = ("score", "doc", "cover", "phrase", "margin", "coverage", "uncovered", "uncovered_max",
            "years_missing", "words", "faq", "first", "surface")
FALLBACK_THRESHOLD = 0.22  # with no fitted model: the blended score an answer needs


Dated = Callable[[str], Collection[str]]  # entry id -> the years it is current as of
Similar = Callable[[str], float]  # entry id -> how close the question as typed is to its phrasings (bot/surface.py)


def undated(entry_id: str) -> tuple[str, ...]:
    """No entry is dated (the knowledge's dates unknown)."""
    return ()


def specificity(word: str) -> float:
    """How much a word names a particular thing: 1 for words English doesn't use, less for common ones."""
    if word.isdigit():
        return 1.0
    return 1.0 / (1.0 + math.log10(1.0 + english_frequency(word) / 1000.0))


@dataclass(frozen=True)
class Judgement:
    """The model's verdict on a question's best candidate."""

    answer: bool
    entry_id: str | None
    probability: float
    needed: float = 0.0  # the probability an answer needs
    features: dict[str, float] = field(default_factory=dict)
    missing: tuple[str, ...] = ()  # specific words of the question that no entry holds
    phrased: bool = False  # answered because the question is word for word one of the entry's phrasings


@dataclass(frozen=True)
class Model:
    """A fitted logistic regression over standardised features, and its answer threshold."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float

    def probability(self, x: Sequence[float]) -> float:
        """P(the reply is right | features)."""
        z = self.intercept + sum(c * (v - m) / s for c, v, m, s in zip(self.coef, x, self.mean, self.scale))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def to_json(self, **about) -> str:
        """The model as JSON, with a note of what it was fitted on."""
        return json.dumps({"features": FEATURES, "mean": self.mean, "scale": self.scale, "coef": self.coef,
                           "intercept": self.intercept, "threshold": self.threshold, **about}, indent=1)

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> "Model | None":
        """The model in `path`, or None when there is none or it was fitted on other features."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if tuple(data.get("features", ())) != FEATURES:
            return None
        return cls(tuple(data["mean"]), tuple(data["scale"]), tuple(data["coef"]), float(data["intercept"]),
                   float(data["threshold"]))


class Confidence:
    """Judges matches with a fitted model, or with a plain score threshold when there is none."""

    def __init__(self, model: Model | None = None, threshold: float | None = None):
        self.model = model
        self.threshold = threshold

    def judge(self, index: Index, results: Results, dated: Dated, similar: Similar) -> Judgement:
        """The best candidate by the model, and whether it clears the threshold. `dated(entry_id)`
        is the years an entry is current as of (its sources' years): asking about one of them is
        asking what the entry says. `similar(entry_id)` is the question's closeness to the entry's
        phrasings, word for word as typed."""
        hits = results.hits[:CANDIDATES]
        if not hits:
            return Judgement(False, None, 0.0, self.cutoff, missing=_missing(index, results, None))
        if self.model is None:
            hits = hits[:1]  # the plain threshold only ever trusts the top hit
        words = _Words(index, results, [h.entry_id for h in hits])
        scored = []
        for rank, hit in enumerate(hits):
            f = features(index, results, hit, rank, dated, similar, words)
            scored.append((self.probability(f), -rank, hit, f))
        p, _, hit, f = max(scored, key=lambda s: s[:2])
        answer = p >= self.cutoff
        return Judgement(answer, hit.entry_id, p, self.cutoff, f, () if answer else _missing(index, results, hit, dated))

    @property
    def cutoff(self) -> float:
        """The probability (or, without a model, the score) an answer needs."""
        if self.threshold is not None:
            return self.threshold
        return self.model.threshold if self.model else FALLBACK_THRESHOLD

    def probability(self, f: dict[str, float]) -> float:
        """The model's probability for one candidate, or its score when there is no model."""
        if self.model is None:
            return f["score"]
        return self.model.probability([f[name] for name in FEATURES])


def features(index: Index, results: Results, hit: Hit, rank: int, dated: Dated, similar: Similar,
             words: "_Words | None" = None) -> dict[str, float]:
    """The features of one candidate entry for one question (`words`: the question's words, when
    already weighed for this and the other candidates)."""
    if words is None or hit.entry_id not in words.held:
        words = _Words(index, results, [hit.entry_id])
    others = [h.score for h in results.hits[:CANDIDATES + 1] if h is not hit]
    weights = words.weights
    holds = words.held[hit.entry_id]
    years = dated(hit.entry_id) if words.years else ()
    held = {w: holds[w] or (w in words.years and w in years) for w in weights}
    total = words.total
    uncovered = [w for w in weights if not held[w]]
    numbers = words.numbers
    return {
        "score": hit.score,
        "doc": hit.doc,
        "cover": hit.cover,
        "phrase": hit.phrase,
        "margin": hit.score - max(others, default=0.0),
        "coverage": results.coverage,
        "uncovered": sum(weights[w] for w in uncovered) / total,
        "uncovered_max": max((weights[w] for w in uncovered), default=0.0) / index.max_idf,
        "years_missing": float(any(not held[w] for w in numbers)),
        "words": min(len(set(results.words)), 15) / 10.0,
        "faq": float(index.kind(hit.entry_id) == "faq"),
        "first": float(rank == 0),
        "surface": similar(hit.entry_id),
    }


class _Words:
    """A question's content words, each weighed once (specificity x IDF; unknown words count as the
    rarest), and which of them each candidate entry holds."""

    def __init__(self, index: Index, results: Results, entry_ids: Sequence[str]):
        self.weights: dict[str, float] = {}
        columns: dict[str, int] = {}
        for word in dict.fromkeys(results.words):
            column = index.column(stem(word))
            idf = index.max_idf if column is None else index.idf(column)
            self.weights[word] = specificity(word) * idf
            if column is not None:
                columns[word] = column
        holding = index.holding(entry_ids, list(columns.values()))
        self.held = {e: {w: columns.get(w) in found for w in self.weights} for e, found in zip(entry_ids, holding)}
        self.total = sum(self.weights.values()) or 1.0
        self.numbers = [w for w in results.words if _year(w)]  # years asked about, as often as asked
        self.years = frozenset(self.numbers)


def _missing(index: Index, results: Results, hit: Hit | None, dated: Dated = undated) -> tuple[str, ...]:
    """What to say the knowledge has nothing on: specific words no entry holds, and years the
    closest entry neither has nor is dated ("2018")."""
    unknown = [w for w in dict.fromkeys(results.unknown) if specificity(w) >= 0.5]
    if hit is not None:
        years = dated(hit.entry_id)
        for w in dict.fromkeys(results.words):
            column = index.column(w)
            if _year(w) and w not in years and (column is None or not index.has(hit.entry_id, column)):
                unknown.append(w)
    return tuple(unknown)


def _year(word: str) -> bool:
    """A year a question may ask about ("in 2018"): the one kind of number that changes the answer."""
    return len(word) == 4 and word.isdigit() and 1990 <= int(word) <= 2039


def fit(rows: Sequence[Sequence[float]], labels: Sequence[int], threshold: float) -> Model:
    """Fit the model on feature rows and 0/1 labels (1: the reply would be right)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression  # only when fitting

    x = np.asarray(rows, dtype=float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=1.0, max_iter=5000).fit((x - mean) / scale, np.asarray(labels))
    return Model(tuple(mean.round(6).tolist()), tuple(scale.round(6).tolist()), tuple(lr.coef_[0].round(6).tolist()),
                 round(float(lr.intercept_[0]), 6), threshold)
